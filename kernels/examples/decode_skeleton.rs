//! The ceiling that a decode step's meetings put on two threads, measured with no arithmetic: two
//! threads stream the bytes of SmolLM2-135M Q4_1 (the weights layer by layer, the key/value cache at
//! 192 positions, the Q8_0 output head), each its half of every product, and meet at a spin barrier
//! where a forward pass must (the next product needs all of the previous one's outputs). Plain
//! sums of the bytes stand in for the products, so what it reports is what the meetings, the cold
//! start of every product's stream and the serial part cost on this machine's memory, whatever the
//! kernels.
//!
//! ```sh
//! cargo run --release -p ingot-kernels --example decode_skeleton -- [ROUNDS] [LAYERS] [ATTENTION_NS]
//! ```
//!
//! `ATTENTION_NS` (default 0) adds attention's arithmetic as a busy wait of that many nanoseconds a
//! layer, after the cache is read: on the caller alone in `ingot`, half on each thread in `minimal`
//! and `five` (as attention split over the key positions would be); `stream` stays the bound.
//!
//! Each round runs 64 "tokens" of each structure, then tags the round with where the host had the two
//! threads (the round trip of a cache line between them, before and after; apart above 180 ns, as
//! `ingot bench` does), and the report gives, per placement, the median over rounds of each
//! structure's tokens/s as a fraction of `stream`'s in the same round:
//! - `stream`: no meeting inside a token (one at its end): the bandwidth bound;
//! - `minimal`: two meetings a layer (after attention and its output projection, after the FFN):
//!   what any layer-by-layer forward pass on two threads needs at least;
//! - `ingot`: ingot's structure while the threads are apart (`AttentionPlace::Caller`): q/k/v split,
//!   then the caller alone reads the key/value cache and the o-projection while the worker reads
//!   its share of gate/up ahead, then gate/up and down split, four meetings a layer;
//! - `five`: every one of the five parts split, each followed by a meeting.
//!
//! With the default 30 layers the per-thread share (~50 MB) partly survives in each core's last-level
//! cache from one token to the next, as a real model's does; `LAYERS` 120 (four times the bytes)
//! defeats that, as `ingot bench --roofline`'s 512 MiB probe does. Also printed: the `ingot`
//! structure's parts in GB/s (the caller's time for each).

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// SmolLM2-135M: model width, FFN width, key/value heads x head size, vocabulary.
const D: usize = 576;
const F: usize = 1536;
const KV: usize = 3 * 64;
const VOCAB: usize = 49152;
/// Q4_1: 20 bytes a block of 32; Q8_0: 34.
const fn q4_1(n: usize) -> usize {
    n / 32 * 20
}
/// A layer's parts in the order a forward pass reads them.
const PARTS: [usize; 5] = [
    q4_1((D + 2 * KV) * D), // q/k/v
    KV * 2 * 2 * 192,       // key/value cache, f16, 192 positions
    q4_1(D * D),            // o-projection
    q4_1(2 * F * D),        // gate/up
    q4_1(D * F),            // down
];
const HEAD: usize = VOCAB * D / 32 * 34;
const TOKENS: usize = 64;
const STRUCTURES: [&str; 4] = ["stream", "minimal", "ingot", "five"];
/// Round trips of a cache line per placement check.
const TRIPS: u64 = 20_000;
/// Apart above this round trip: the session's threshold (`THREADS_APART_NS` in ingot-runtime,
/// which this crate does not depend on).
const APART_NS: f64 = 180.0;

/// Sense-reversing spin barrier for two threads.
struct Barrier {
    count: AtomicUsize,
    sense: AtomicBool,
    /// Bumped by the caller when it has done its part alone (the `ingot` structure).
    alone_done: AtomicU64,
}

impl Barrier {
    fn wait(&self, local: &mut bool) {
        *local = !*local;
        if self.count.fetch_add(1, Ordering::AcqRel) == 1 {
            self.count.store(0, Ordering::Relaxed);
            self.sense.store(*local, Ordering::Release);
        } else {
            while self.sense.load(Ordering::Acquire) != *local {
                std::hint::spin_loop();
            }
        }
    }
}

/// Sum of the words of `w`: a read of every byte, in one sequential stream (eight lanes, so that the
/// additions vectorize and never bound the read).
fn read(w: &[u64]) -> u64 {
    let mut lanes = [0u64; 8];
    for line in w.chunks_exact(8) {
        for (a, &x) in lanes.iter_mut().zip(line) {
            *a = a.wrapping_add(x);
        }
    }
    lanes.iter().fold(0, |a, &x| a.wrapping_add(x))
}

/// Thread `t`'s half of `w` (cache-line aligned).
fn half(w: &[u64], t: usize) -> &[u64] {
    let h = w.len() / 2 / 8 * 8;
    if t == 0 {
        &w[..h]
    } else {
        &w[h..]
    }
}

struct Model<'a> {
    layers: Vec<[&'a [u64]; 5]>,
    head: &'a [u64],
    /// Attention's arithmetic a layer, as a busy wait: on the caller alone (`ingot`) or half on each
    /// thread (`minimal`, `five`), after the thread's read of the cache.
    attention: Duration,
}

/// Keeps this core busy (and off the memory bus) for `d`.
fn busy(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// One token of `structure` on thread `t`; the caller (t = 0) adds each part's cycles to `marks`.
fn token(m: &Model<'_>, s: usize, t: usize, bar: &Barrier, local: &mut bool, marks: &mut [u64; 5]) {
    let mut acc = 0u64;
    let mut mark = |i: usize, since: &mut Instant| {
        if t == 0 {
            let now = Instant::now();
            marks[i] += (now - *since).as_nanos() as u64;
            *since = now;
        }
    };
    let mut since = Instant::now();
    for p in &m.layers {
        match s {
            0 | 1 => {
                for (i, w) in p[..3].iter().enumerate() {
                    acc = acc.wrapping_add(read(half(w, t)));
                    if s == 1 && i == 1 {
                        busy(m.attention / 2);
                    }
                }
                if s == 1 {
                    bar.wait(local);
                }
                for w in &p[3..] {
                    acc = acc.wrapping_add(read(half(w, t)));
                }
                if s == 1 {
                    bar.wait(local);
                }
            }
            2 => {
                acc = acc.wrapping_add(read(half(p[0], t)));
                bar.wait(local);
                mark(0, &mut since);
                if t == 0 {
                    acc = acc.wrapping_add(read(p[1]));
                    busy(m.attention);
                    acc = acc.wrapping_add(read(p[2]));
                    bar.alone_done.fetch_add(1, Ordering::Release);
                } else {
                    // Meanwhile the worker reads its share of gate/up ahead, into its L2, until the
                    // caller is done, as ingot's does.
                    let seen = bar.alone_done.load(Ordering::Acquire);
                    for piece in half(p[3], t).chunks(512) {
                        if bar.alone_done.load(Ordering::Relaxed) != seen {
                            break;
                        }
                        acc = acc.wrapping_add(read(piece));
                    }
                }
                bar.wait(local);
                mark(1, &mut since);
                acc = acc.wrapping_add(read(half(p[3], t)));
                bar.wait(local);
                mark(2, &mut since);
                acc = acc.wrapping_add(read(half(p[4], t)));
                bar.wait(local);
                mark(3, &mut since);
            }
            _ => {
                for (i, w) in p.iter().enumerate() {
                    acc = acc.wrapping_add(read(half(w, t)));
                    if i == 1 {
                        busy(m.attention / 2);
                    }
                    bar.wait(local);
                }
            }
        }
    }
    acc = acc.wrapping_add(read(half(m.head, t)));
    bar.wait(local);
    mark(4, &mut since);
    black_box(acc);
}

/// Round trip of a cache line between this thread and the worker, ns (the worker answers while
/// `ping` is odd-numbered by this thread).
fn round_trip(ping: &AtomicU64, go: &AtomicU64, gen: &mut u64) -> f64 {
    ping.store(0, Ordering::SeqCst);
    *gen += 1;
    go.store(*gen | 1 << 63, Ordering::SeqCst);
    let t = Instant::now();
    for i in 1..=TRIPS {
        ping.store(2 * i - 1, Ordering::Release);
        while ping.load(Ordering::Acquire) != 2 * i {
            std::hint::spin_loop();
        }
    }
    t.elapsed().as_nanos() as f64 / TRIPS as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| {
            a.parse()
                .expect("ROUNDS, LAYERS and ATTENTION_NS are whole numbers")
        })
        .collect();
    let rounds = args.first().copied().unwrap_or(40).max(1);
    let n_layers = args.get(1).copied().unwrap_or(30).max(1);
    let attention = Duration::from_nanos(args.get(2).copied().unwrap_or(0) as u64);
    // Words a part of `b` bytes takes in the buffer: each part starts on a page of its own.
    let words_of = |b: usize| b.div_ceil(4096) * 4096 / 8;
    let words = n_layers * PARTS.iter().map(|&b| words_of(b)).sum::<usize>() + words_of(HEAD);
    // Transparent huge pages where the OS grants them, as the session's weights are.
    let mut map = memmap2::MmapMut::map_anon(words * 8).expect("anonymous map");
    // A hint: fine if refused.
    let _ = map.advise(memmap2::Advice::HugePage);
    // SAFETY: the map is page-aligned (so aligned for u64) and `words * 8` bytes long.
    let buf: &mut [u64] = unsafe { std::slice::from_raw_parts_mut(map.as_mut_ptr().cast(), words) };
    for (i, w) in buf.iter_mut().enumerate() {
        *w = i as u64;
    }
    let (mut rest, mut layers): (&[u64], _) = (buf, Vec::new());
    for _ in 0..n_layers {
        let mut l = [&[][..]; 5];
        for (slot, &b) in l.iter_mut().zip(&PARTS) {
            let (a, r) = rest.split_at(words_of(b));
            *slot = &a[..b / 8];
            rest = r;
        }
        layers.push(l);
    }
    let model = Model {
        layers,
        head: &rest[..HEAD / 8],
        attention,
    };
    let part_bytes = [
        n_layers * PARTS[0],
        n_layers * (PARTS[1] + PARTS[2]),
        n_layers * PARTS[3],
        n_layers * PARTS[4],
        HEAD,
    ];
    let token_bytes = n_layers * PARTS.iter().sum::<usize>() + HEAD;
    println!(
        "{n_layers} layers, {:.1} MB a token, attention {} ns a layer, {rounds} rounds of {TOKENS} \
         tokens per structure",
        token_bytes as f64 / 1e6,
        attention.as_nanos()
    );

    let bar = Barrier {
        count: AtomicUsize::new(0),
        sense: AtomicBool::new(false),
        alone_done: AtomicU64::new(0),
    };
    let (go, ping, structure) = (AtomicU64::new(0), AtomicU64::new(0), AtomicUsize::new(0));
    let mut rows: Vec<(&str, [f64; 4], [u64; 5])> = Vec::new();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let (mut seen, mut local) = (0u64, false);
            let mut marks = [0u64; 5];
            loop {
                let g = loop {
                    let g = go.load(Ordering::Acquire);
                    if g != seen {
                        break g;
                    }
                    std::hint::spin_loop();
                };
                seen = g;
                if g == u64::MAX {
                    return;
                }
                if g >> 63 == 1 {
                    for i in 1..=TRIPS {
                        while ping.load(Ordering::Acquire) != 2 * i - 1 {
                            std::hint::spin_loop();
                        }
                        ping.store(2 * i, Ordering::Release);
                    }
                    continue;
                }
                let s = structure.load(Ordering::Acquire);
                for _ in 0..TOKENS {
                    token(&model, s, 1, &bar, &mut local, &mut marks);
                }
            }
        });
        let (mut gen, mut local) = (0u64, false);
        for round in 0..rounds {
            let before = round_trip(&ping, &go, &mut gen);
            let mut rate = [0f64; 4];
            let mut marks = [0u64; 5];
            // Each round starts with another structure, so that none always follows the same one.
            for s in (0..4).map(|i| (i + round) % 4) {
                let mut m = [0u64; 5];
                structure.store(s, Ordering::Release);
                gen += 1;
                go.store(gen, Ordering::Release);
                let t = Instant::now();
                for _ in 0..TOKENS {
                    token(&model, s, 0, &bar, &mut local, &mut m);
                }
                rate[s] = TOKENS as f64 / t.elapsed().as_secs_f64();
                if s == 2 {
                    marks = m;
                }
            }
            let after = round_trip(&ping, &go, &mut gen);
            let place = match (before > APART_NS, after > APART_NS) {
                (true, true) => "apart",
                (false, false) => "together",
                _ => "changing",
            };
            rows.push((place, rate, marks));
        }
        go.store(u64::MAX, Ordering::Release);
    });

    for name in ["together", "apart"] {
        let sel: Vec<_> = rows.iter().filter(|r| r.0 == name).collect();
        if sel.is_empty() {
            println!("{name}: no round");
            continue;
        }
        let stream = median(sel.iter().map(|r| r.1[0]).collect());
        print!(
            "{name} ({} rounds): stream {stream:.0} tok/s ({:.1} GB/s)",
            sel.len(),
            stream * token_bytes as f64 / 1e9
        );
        for (s, label) in STRUCTURES.iter().enumerate().skip(1) {
            let f = median(sel.iter().map(|r| r.1[s] / r.1[0]).collect());
            print!(", {label} {:.1}%", 100.0 * f);
        }
        println!();
        print!("  ingot's parts, GB/s:");
        for (i, label) in ["q/k/v", "cache + o (caller)", "gate/up", "down", "head"]
            .iter()
            .enumerate()
        {
            let ns = median(sel.iter().map(|r| r.2[i] as f64).collect()) / TOKENS as f64;
            print!(" {label} {:.1}", part_bytes[i] as f64 / ns);
        }
        println!();
    }
}
