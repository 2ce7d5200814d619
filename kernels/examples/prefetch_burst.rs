//! Does a burst of software prefetches bring data in? `cargo run --release -p ingot-kernels --example
//! prefetch_burst` (x86_64).
//!
//! A 1 GiB buffer (far beyond any cache); for each of several hundred random 256 KiB chunks: ask for
//! the chunk in one of the ways below, wait 30 us (so that what was asked for has had time to
//! arrive), then time a plain sum over the chunk. Printed: the median time of the sum per way.
//!
//! - `none`: no request, the sum reads DRAM (the hardware prefetchers follow the sum itself);
//! - `burst t0/t1/t2/nta`: one `prefetch*` instruction per 64-byte line, back to back;
//! - `spread t1`: the same instructions with a pause after every 16 of them;
//! - `touch`: one load per line.
//!
//! On this project's Zen 4 VM (2026-11-29, three runs): none 9.9-12.0 us; bursts: t0 6.1-9.4 us, t1
//! 10.7-11.8, t2 10.2-11.7, nta 6.3-11.5; spread 3.5-3.6 us; touch 2.5 us. The core drops most
//! prefetches of a burst once its miss buffers are full, which is why the
//! attention kernels ask for cache rows a line at a time while they sum the rows before them
//! (`kernels/src/cpu/x86_64/avx512_attention.rs`) rather than a row at a time.

#[cfg(target_arch = "x86_64")]
fn main() {
    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_NTA, _MM_HINT_T0, _MM_HINT_T1, _MM_HINT_T2};
    use std::time::Instant;

    const WORDS: usize = (1 << 30) / 8;
    const CHUNK: usize = (256 << 10) / 8; // u64 words
    const LINES: usize = CHUNK * 8 / 64;
    let buf: Vec<u64> = (0..WORDS as u64).collect();
    let spin = |ns: u128| {
        let t = Instant::now();
        while t.elapsed().as_nanos() < ns {
            std::hint::spin_loop();
        }
    };
    let ways = [
        "none",
        "burst t0",
        "burst t1",
        "burst t2",
        "burst nta",
        "spread t1",
        "touch",
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); ways.len()];
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for rep in 0..400 {
        for (w, t) in times.iter_mut().enumerate() {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let start = ((seed >> 20) as usize % (WORDS / CHUNK - 1)) * CHUNK;
            let chunk = &buf[start..start + CHUNK];
            let p = chunk.as_ptr().cast::<i8>();
            for l in 0..LINES {
                // `wrapping_add` keeps the address arithmetic safe; every line is inside `chunk`.
                let a = p.wrapping_add(l * 64);
                // SAFETY: SSE (and so every `prefetch*`) is part of the x86_64 baseline; a prefetch
                // reads nothing architecturally and never faults.
                unsafe {
                    match w {
                        1 => _mm_prefetch::<_MM_HINT_T0>(a),
                        2 => _mm_prefetch::<_MM_HINT_T1>(a),
                        3 => _mm_prefetch::<_MM_HINT_T2>(a),
                        4 => _mm_prefetch::<_MM_HINT_NTA>(a),
                        5 => _mm_prefetch::<_MM_HINT_T1>(a),
                        _ => {}
                    }
                }
                if w == 5 && l % 16 == 15 {
                    for _ in 0..40 {
                        std::hint::spin_loop();
                    }
                }
                if w == 6 {
                    std::hint::black_box(chunk[l * 8]);
                }
            }
            spin(30_000);
            let t0 = Instant::now();
            std::hint::black_box(chunk.iter().fold(0u64, |a, &x| a.wrapping_add(x)));
            if rep >= 10 {
                t.push(t0.elapsed().as_secs_f64() * 1e6);
            }
        }
    }
    for (name, t) in ways.iter().zip(&mut times) {
        t.sort_by(f64::total_cmp);
        let m = t[t.len() / 2];
        println!(
            "{name:10} sum of 256 KiB: median {m:5.1} us ({:5.1} GB/s)",
            (CHUNK * 8) as f64 / m / 1e3
        );
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn main() {
    eprintln!("prefetch_burst: x86_64 only");
}
