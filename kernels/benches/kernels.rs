//! Criterion benchmarks of kernel throughput per weight type and ISA path:
//! `cargo bench -p ingot-kernels --bench kernels [-- FILTER]` (FILTER a regular expression over the
//! ids below, e.g. `-- matvec/Q4_1` or `-- 'matmul16/Q8_0/avx512'`; `-- --test` runs each once).
//!
//! Every ISA path this CPU offers (`Isa::ALL` through `Kernels::for_isa`: scalar, AVX2, AVX-512
//! here; NEON and NEON+dotprod on aarch64; a new path shows up by itself) and every weight type the
//! runtime reads. Ids and what they measure:
//!
//! - `matvec/<TYPE>/<isa>[+packed]/<rows>x<n>`: one token (decode), W (rows, n) · x (n,), on the
//!   SmolLM2-135M FFN shapes 1536x576 and 576x1536 (K-quants: only 576x1536, since 576 is not whole
//!   256-element super-blocks). Throughput = weight bytes, so criterion prints GB/s of weights. The
//!   matrices (~0.5-3.5 MB) stay in L2/L3: this is the kernel, not DRAM. `+packed`: the
//!   16-rows-interleaved layout of `ingot_kernels::packed`, wherever the path repacks the type
//!   (`Kernels::packs`), as the runtime does at load.
//! - `matmul16/<TYPE>/<isa>[+packed]/<rows>x<n>`: 16 tokens (the prefill path), same shapes.
//!   Throughput = `2 * rows * n * 16` elements, i.e. **criterion's `elem/s` reads as FLOP/s**
//!   (multiply and add counted separately).
//! - `calls/<TYPE>/<isa>+packed/<rows>x<n>/<R>`: the packed `matvec` above, done as `rows / R`
//!   calls of `R` rows each (`R` = 32, the smallest piece a thread takes of a decode step's product,
//!   and 256), for the types a path repacks: what a call costs besides its rows (building the
//!   activation tables, the entry checks). GB/s of weights, comparable with `matvec`.
//! - `stream/<TYPE>/<isa>[+packed]`: one token against a 134 MB (128 MiB) matrix (four times
//!   this machine's L3), so the weights come from DRAM: GB/s of weights, best path only
//!   (`Kernels::best()`, which honours `INGOT_ISA`). `stream/<TYPE>/<isa>[+packed]/read`,
//!   measured just before each, reads as many bytes with a plain sum of u64 words (the probe of
//!   `ingot bench --roofline`): the kernel's fraction of the memory roofline is the ratio of the
//!   pair.
//! - `attention/decode/<isa>/n_kv=<N>`: `Kernels::attention_group_ggml` for one SmolLM2 layer of
//!   one token (3 KV heads of 3 query heads each, head dim 64, f16 cache) over 128 and 512 cached
//!   positions, in the single-token order; `attention/batch/...` the same in the batch (prefill)
//!   order; both in cache. `attention/memory/<isa>/n_kv=2048`: the single-token order over 30
//!   layers' caches in turn (47 MB, on huge pages as the session's), so the cache comes from DRAM
//!   as in a decode step at a long context; best path only. Throughput = `4 * 64 * N * 9` elements
//!   per layer (q·k and p·v of the 9 query heads over the N positions used), so `elem/s` reads as
//!   FLOP/s.
//! - `sgemm/<isa>/<N>x<in>x<out>`: the trainer's f32 GEMM, forward `x · Wᵀ` (N tokens, in, out)
//!   of its "baby" and "large" configurations, one thread; `elem/s` = FLOP/s (`2 * N * in * out`).
//!
//! Inputs are random with a fixed seed; activations are quantized by each path's own
//! `Kernels::quantize_batch` to the type's `vec_dot_type`, as the runtime does. The scalar path
//! (the reference) is measured with few, flat samples so that the whole suite takes 5-8 minutes
//! on two cores. Data is built when a benchmark first runs, so a filter skips the cost.

use std::cell::OnceCell;
use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode, Throughput,
};
use half::f16;
use ingot_kernels::{packed, Isa, Kernels, MatRef, QuantType, SgemmScratch, ThreadPool};

/// The weight types the runtime reads.
const TYPES: [QuantType; 13] = [
    QuantType::Q4_0,
    QuantType::Q4_1,
    QuantType::Q5_0,
    QuantType::Q5_1,
    QuantType::Q8_0,
    QuantType::F16,
    QuantType::BF16,
    QuantType::F32,
    QuantType::Q2_K,
    QuantType::Q3_K,
    QuantType::Q4_K,
    QuantType::Q5_K,
    QuantType::Q6_K,
];

/// SmolLM2-135M's FFN matrices (rows, n): the up/gate projections and the down projection.
const SHAPES: [(usize, usize); 2] = [(1536, 576), (576, 1536)];

/// Tokens of the batched (prefill) product.
const T: usize = 16;

/// Bytes of the DRAM-streaming matrices and of the read probe: four times the 32 MiB L3 here.
const STREAM_BYTES: usize = 128 << 20;

/// Every path this CPU offers, slowest first.
fn paths() -> Vec<Kernels> {
    Isa::ALL.into_iter().filter_map(Kernels::for_isa).collect()
}

/// Sampling for one path: the SIMD paths take 20 samples over about a second; the scalar reference
/// (up to ~100 ms a call) 10 flat samples (the same iteration count each) over about a second.
fn configure(g: &mut BenchmarkGroup<'_, WallTime>, isa: Isa) {
    if isa == Isa::Scalar {
        g.sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_millis(100))
            .measurement_time(Duration::from_secs(1));
    } else {
        g.sample_size(20)
            .sampling_mode(SamplingMode::Auto)
            .warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_secs(1));
    }
}

/// Uniform values in [-1, 1) from a fixed-seed xorshift64 (the generator of `examples/dot_speed`).
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        Rng(0x1234_5678_9abc_def0)
    }

    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u32 << 23) as f32) - 1.0
    }

    fn vec(&mut self, len: usize) -> Vec<f32> {
        (0..len).map(|_| self.next()).collect()
    }
}

/// A weight matrix (rows, n) in `ty`, random values quantized by the type's own `from_f32`.
fn weights(ty: QuantType, rows: usize, n: usize, rng: &mut Rng) -> Vec<u8> {
    let wf = rng.vec(rows * n);
    let mut w = vec![0u8; ty.row_bytes(rows * n).expect("whole blocks")];
    (ty.info().from_f32)(&wf, &mut w);
    w
}

/// `t` rows of random activations (t, n) quantized by `k` for a product with `ty` weights of
/// `rows` rows, `arb` bytes apart.
fn activations(k: &Kernels, ty: QuantType, rows: usize, n: usize, t: usize) -> Vec<u8> {
    let mut rng = Rng(0x0dd_ba11 + t as u64);
    let arb = ty.info().vec_dot_type.row_bytes(n).expect("whole blocks");
    let mut xa = vec![0u8; t * arb];
    k.quantize_batch(ty, rows, &rng.vec(t * n), n, &mut xa, arb);
    xa
}

/// The weights of one (type, shape), row-major and packed, built on first use.
struct Matrix {
    w: Vec<u8>,
    packed: OnceCell<Vec<u8>>,
}

impl Matrix {
    fn packed(&self, ty: QuantType, rows: usize, n: usize) -> &[u8] {
        self.packed.get_or_init(|| {
            let mut p = vec![0u8; self.w.len()];
            packed::pack(ty, &self.w, rows, n, &mut p);
            p
        })
    }
}

/// `matvec/<TYPE>/...` and `matmul16/<TYPE>/...` for every type, shape and path.
fn products(c: &mut Criterion) {
    let paths = paths();
    for ty in TYPES {
        for (kind, t) in [("matvec", 1usize), ("matmul16", T)] {
            let mut g = c.benchmark_group(format!("{kind}/{ty}"));
            for (rows, n) in SHAPES {
                if ty.row_bytes(n).is_none() {
                    continue; // K-quants: n = 576 is not whole super-blocks
                }
                let matrix = OnceCell::new();
                let matrix = || {
                    matrix.get_or_init(|| Matrix {
                        w: weights(ty, rows, n, &mut Rng::new()),
                        packed: OnceCell::new(),
                    })
                };
                let wbytes = ty.row_bytes(rows * n).expect("whole blocks") as u64;
                g.throughput(if t == 1 {
                    Throughput::BytesDecimal(wbytes)
                } else {
                    Throughput::Elements((2 * rows * n * t) as u64)
                });
                let arb = ty.info().vec_dot_type.row_bytes(n).expect("whole blocks");
                for k in &paths {
                    let isa = k.isa();
                    configure(&mut g, isa);
                    let xa = OnceCell::new();
                    let xa = || xa.get_or_init(|| activations(k, ty, rows, n, t));
                    let mut out = vec![0f32; t * rows];
                    g.bench_function(format!("{isa}/{rows}x{n}"), |b| {
                        let (w, xa) = (&matrix().w, xa());
                        b.iter(|| {
                            if t == 1 {
                                k.matvec(ty, &mut out, black_box(w), xa, n);
                            } else {
                                k.matmul(ty, &mut out, black_box(w), rows, xa, arb, t, n);
                            }
                            black_box(&out);
                        })
                    });
                    if k.packs(ty) && packed::packable(ty, rows, n) {
                        g.bench_function(format!("{isa}+packed/{rows}x{n}"), |b| {
                            let (w, xa) = (matrix().packed(ty, rows, n), xa());
                            b.iter(|| {
                                k.matmul_packed(ty, &mut out, black_box(w), rows, xa, arb, t, n);
                                black_box(&out);
                            })
                        });
                    }
                }
            }
            g.finish();
        }
    }
}

/// `calls/<TYPE>/...`: the packed one-token product in calls of 32 and 256 rows.
fn calls(c: &mut Criterion) {
    let paths = paths();
    for ty in [QuantType::Q4_0, QuantType::Q4_1, QuantType::Q8_0] {
        let mut g = c.benchmark_group(format!("calls/{ty}"));
        for (rows, n) in SHAPES {
            let matrix = OnceCell::new();
            let matrix = || {
                matrix.get_or_init(|| Matrix {
                    w: weights(ty, rows, n, &mut Rng::new()),
                    packed: OnceCell::new(),
                })
            };
            let rb = ty.row_bytes(n).expect("whole blocks");
            g.throughput(Throughput::BytesDecimal((rows * rb) as u64));
            let arb = ty.info().vec_dot_type.row_bytes(n).expect("whole blocks");
            for k in paths
                .iter()
                .filter(|k| k.packs(ty) && packed::packable(ty, rows, n))
            {
                let isa = k.isa();
                configure(&mut g, isa);
                let xa = OnceCell::new();
                let xa = || xa.get_or_init(|| activations(k, ty, rows, n, 1));
                let mut out = vec![0f32; rows];
                for r in [32, 256] {
                    g.bench_function(format!("{isa}+packed/{rows}x{n}/{r}"), |b| {
                        let (w, xa) = (matrix().packed(ty, rows, n), xa());
                        b.iter(|| {
                            for (o, w) in out.chunks_mut(r).zip(black_box(w).chunks(r * rb)) {
                                k.matmul_packed(ty, o, w, o.len(), xa, arb, 1, n);
                            }
                            black_box(&out);
                        })
                    });
                }
            }
        }
        g.finish();
    }
}

/// `bytes` of zeros on transparent huge pages where the OS grants them (Linux: `madvise`), as the
/// runtime keeps its packed weights: with 4 KiB pages the hardware prefetchers restart at every page
/// and both the products and the probe read DRAM at a fraction of its speed. A heap buffer if the
/// mapping fails.
fn huge_buffer(bytes: usize) -> HugeBuffer {
    match memmap2::MmapMut::map_anon(bytes) {
        Ok(m) => {
            #[cfg(target_os = "linux")]
            let _ = m.advise(memmap2::Advice::HugePage); // a hint: fine if refused
            HugeBuffer::Map(m)
        }
        Err(_) => HugeBuffer::Heap(vec![0u8; bytes]),
    }
}

enum HugeBuffer {
    Map(memmap2::MmapMut),
    Heap(Vec<u8>),
}

impl core::ops::Deref for HugeBuffer {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            HugeBuffer::Map(m) => m,
            HugeBuffer::Heap(v) => v,
        }
    }
}

impl core::ops::DerefMut for HugeBuffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        match self {
            HugeBuffer::Map(m) => m,
            HugeBuffer::Heap(v) => v,
        }
    }
}

/// `stream/...`: one token against matrices far larger than the caches, and the read probe.
fn stream(c: &mut Criterion) {
    let k = Kernels::best();
    let isa = k.isa();
    let mut g = c.benchmark_group("stream");
    // 5-10 ms a call: 10 flat samples of ~20 calls each.
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let n = 1536;
    let probe: OnceCell<HugeBuffer> = OnceCell::new();
    for (ty, packs) in [
        (QuantType::Q4_0, true),
        (QuantType::Q4_1, true),
        (QuantType::Q8_0, false),
        (QuantType::Q8_0, true),
    ] {
        if packs && !k.packs(ty) {
            continue;
        }
        let rb = ty.row_bytes(n).expect("whole blocks");
        // A multiple of 256 rows (whole packed groups of 16), about STREAM_BYTES.
        let rows = STREAM_BYTES / rb / 256 * 256;
        let bytes = rows * rb;
        g.throughput(Throughput::BytesDecimal(bytes as u64));
        let arb = ty.info().vec_dot_type.row_bytes(n).expect("whole blocks");
        let mut out = vec![0f32; rows];
        let id = format!("{ty}/{isa}{}", if packs { "+packed" } else { "" });
        // The read probe over as many bytes, just before the product: the bandwidth at hand moves
        // by ±20% within a minute here, so each product has its own roofline.
        g.bench_function(format!("{id}/read"), |b| {
            let buf = probe.get_or_init(|| {
                let mut buf = huge_buffer(STREAM_BYTES);
                for (i, w) in buf.chunks_exact_mut(8).enumerate() {
                    w.copy_from_slice(&(i as u64).to_le_bytes());
                }
                buf
            });
            let words = &buf[..bytes / 8 * 8];
            b.iter(|| {
                black_box(words).chunks_exact(8).fold(0u64, |acc, w| {
                    acc.wrapping_add(u64::from_le_bytes(w.try_into().expect("8 bytes")))
                })
            })
        });
        // Built on first use (criterion calls the closure once per sample) and dropped after.
        let data = OnceCell::new();
        g.bench_function(id, |b| {
            let (w, xa) = data.get_or_init(|| {
                // 256 random rows repeated: the bytes a product reads from DRAM do not depend on
                // their values, and quantizing 128 MB of floats would take seconds.
                let mut tile = weights(ty, 256, n, &mut Rng::new());
                if packs {
                    let mut p = vec![0u8; tile.len()];
                    packed::pack(ty, &tile, 256, n, &mut p);
                    tile = p;
                }
                let mut w = huge_buffer(bytes);
                for (d, s) in w.iter_mut().zip(tile.iter().cycle()) {
                    *d = *s;
                }
                (w, activations(&k, ty, rows, n, 1))
            });
            b.iter(|| {
                if packs {
                    k.matmul_packed(ty, &mut out, black_box(w), rows, xa, arb, 1, n);
                } else {
                    k.matvec(ty, &mut out, black_box(w), xa, n);
                }
                black_box(&out);
            })
        });
    }
    g.finish();
}

/// `attention/{decode,batch}/...`: one token's attention over one SmolLM2 layer's f16 cache, in
/// the single-token and the batch order; `attention/memory/...`: the same over 30 layers' caches
/// in turn (a decode step's pattern), so that the cache comes from DRAM.
fn attention(c: &mut Criterion) {
    const D: usize = 64; // head dim
    const GROUP: usize = 3; // query heads per KV head
    const KV_HEADS: usize = 3;
    const N_CTX: usize = 2048; // cache capacity: the row stride of the transposed values
    const LAYERS: usize = 30;
    let kvd = KV_HEADS * D;
    let mut rng = Rng::new();
    // Per layer, as the session lays out its cache: k (KV_HEADS, N_CTX, D): key of head h at
    // position j at k[(h * N_CTX + j) * D..][..D]; vt (kvd, N_CTX): value element i of head h at
    // position j at vt[(h * D + i) * N_CTX + j]. On huge pages, as the session keeps its cache.
    let layer = N_CTX * kvd;
    let cache = |rng: &mut Rng| {
        let mut b = huge_buffer(LAYERS * layer * 2);
        let v: &mut [f16] = f16s_mut(&mut b);
        for (d, s) in v.iter_mut().zip(rng.vec(LAYERS * layer)) {
            *d = f16::from_f32(s);
        }
        b
    };
    let (kb, vb) = (cache(&mut rng), cache(&mut rng));
    let (k16, vt) = (f16s(&kb), f16s(&vb));
    let q = rng.vec(KV_HEADS * GROUP * D); // (9 heads, D)
    let scale = 1.0 / (D as f32).sqrt();
    for (name, batched, layers, lens) in [
        ("decode", false, 1, &[128usize, 512][..]),
        ("batch", true, 1, &[128, 512][..]),
        ("memory", false, LAYERS, &[2048][..]),
    ] {
        let mut g = c.benchmark_group(format!("attention/{name}"));
        for kern in paths() {
            if layers > 1 && kern.isa() != Kernels::best().isa() {
                continue; // DRAM-bound: the best path only
            }
            configure(&mut g, kern.isa());
            for &n_kv in lens {
                let v_pad = if batched {
                    n_kv
                } else {
                    n_kv.div_ceil(256) * 256
                };
                g.throughput(Throughput::Elements(
                    (4 * D * n_kv * KV_HEADS * GROUP * layers) as u64,
                ));
                let mut out = vec![0f32; q.len()];
                let mut scores = vec![0f32; GROUP * n_kv];
                let mut q16 = vec![f16::ZERO; GROUP * D];
                let mut p16 = vec![f16::ZERO; GROUP * n_kv];
                g.bench_function(format!("{}/n_kv={n_kv}", kern.isa()), |b| {
                    b.iter(|| {
                        for l in 0..layers {
                            let (k16, vt) = (&k16[l * layer..][..layer], &vt[l * layer..][..layer]);
                            for h in 0..KV_HEADS {
                                let heads = h * GROUP * D..(h + 1) * GROUP * D;
                                kern.attention_group_ggml(
                                    &mut out[heads.clone()],
                                    &q[heads],
                                    D,
                                    &k16[h * N_CTX * D..],
                                    D,
                                    &vt[h * D * N_CTX..],
                                    N_CTX,
                                    scale,
                                    batched,
                                    v_pad,
                                    &mut scores,
                                    &mut q16,
                                    &mut p16,
                                );
                            }
                        }
                        black_box(&out);
                    })
                });
            }
        }
        g.finish();
    }
}

/// The bytes of `b` as f16 (a mapping or a heap buffer of whole f16s).
fn f16s_mut(b: &mut HugeBuffer) -> &mut [f16] {
    let bytes: &mut [u8] = &mut b[..];
    assert!(bytes.len().is_multiple_of(2) && (bytes.as_ptr() as usize).is_multiple_of(2));
    // SAFETY: an even number of bytes at an even address; f16 is any 16 bits.
    unsafe { core::slice::from_raw_parts_mut(bytes.as_mut_ptr().cast(), bytes.len() / 2) }
}

/// [`f16s_mut`], shared.
fn f16s(b: &HugeBuffer) -> &[f16] {
    let bytes: &[u8] = &b[..];
    assert!(bytes.len().is_multiple_of(2) && (bytes.as_ptr() as usize).is_multiple_of(2));
    // SAFETY: as in `f16s_mut`.
    unsafe { core::slice::from_raw_parts(bytes.as_ptr().cast(), bytes.len() / 2) }
}

/// `sgemm/...`: the trainer's forward product `x · Wᵀ`, one thread.
fn sgemm(c: &mut Criterion) {
    let pool = ThreadPool::new(1).expect("one thread needs no worker");
    let mut g = c.benchmark_group("sgemm");
    // (tokens N, in, out): the "baby" and "large" training configurations' SwiGLU up projection.
    for (m, k, n) in [(768usize, 128usize, 352usize), (2048, 384, 1024)] {
        let mut rng = Rng::new();
        let (x, w) = (rng.vec(m * k), rng.vec(n * k));
        let mut y = vec![0f32; m * n];
        g.throughput(Throughput::Elements((2 * m * n * k) as u64));
        for kern in paths() {
            let isa = kern.isa();
            if isa == Isa::Scalar && m > 768 {
                continue; // the reference without hardware FMA: seconds per call
            }
            configure(&mut g, isa);
            if isa == Isa::Scalar {
                g.measurement_time(Duration::from_secs(2)); // ~90 ms a call
            }
            let mut scratch = SgemmScratch::default();
            g.bench_function(format!("{isa}/{m}x{k}x{n}"), |b| {
                b.iter(|| {
                    let (a, bt) = (MatRef::rows(&x, k), MatRef::transposed(&w, k));
                    kern.sgemm(&pool, &mut scratch, false, m, n, k, a, bt, &mut y, n);
                    black_box(&y);
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, products, calls, stream, attention, sgemm);
criterion_main!(benches);
