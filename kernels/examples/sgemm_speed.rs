//! f32 GEMM speed per ISA path on the trainer's shapes: `cargo run --release -p ingot-kernels
//! --example sgemm_speed [THREADS [TOKENS]]` (default 1 thread, all shapes). For the forward `x · Wᵀ`, the input gradient
//! `dY · W` and the weight gradient `dYᵀ · X` of the "baby" (N = 768 tokens, width 128, SwiGLU 352)
//! and "large" (N = 2048, width 384, SwiGLU 1024) configurations it prints GFLOP/s (2 M N K per
//! product) from the minimum time over many samples; with one thread, time on the CPU
//! (`/proc/thread-self/schedstat`), so other processes on a busy machine do not count.

use std::hint::black_box;
use std::time::Instant;

use ingot_kernels::{Isa, Kernels, MatRef, SgemmScratch, ThreadPool};

/// Seconds this thread has run on a CPU (Linux `/proc/thread-self/schedstat`), so time the OS gave
/// to other processes does not count; `None` elsewhere.
fn on_cpu() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    Some(s.split_whitespace().next()?.parse::<f64>().ok()? * 1e-9)
}

/// Seconds per call: the minimum over samples of the wall time, or with one thread of the time on
/// the CPU (robust to a busy machine).
fn best_time(threads: usize, mut f: impl FnMut()) -> f64 {
    f();
    let t0 = Instant::now();
    f();
    let once = t0.elapsed().as_secs_f64();
    // schedstat advances in scheduler ticks: samples of ~50 ms keep its rounding small.
    let reps = ((5e-2 / once) as u32).max(1);
    (0..12)
        .map(|_| {
            let (t, c) = (Instant::now(), on_cpu());
            for _ in 0..reps {
                f();
            }
            match (threads, c, on_cpu()) {
                (1, Some(c0), Some(c1)) => (c1 - c0) / reps as f64,
                _ => t.elapsed().as_secs_f64() / reps as f64,
            }
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let threads: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("THREADS must be a number"))
        .unwrap_or(1);
    let only: Option<usize> = std::env::args().nth(2).and_then(|s| s.parse().ok());
    let pool = ThreadPool::new(threads).expect("threads");
    // (tokens, in, out)
    let shapes = [
        (768, 128, 352),
        (768, 352, 128),
        (2048, 384, 1024),
        (2048, 1024, 384),
    ];
    for isa in Isa::ALL {
        let Some(kern) = Kernels::for_isa(isa) else {
            continue;
        };
        if isa == Isa::Scalar {
            continue; // minutes per shape on x86 without FMA in the build
        }
        let mut s = SgemmScratch::default();
        for (n, ic, oc) in shapes {
            if only.is_some_and(|t| t != n) {
                continue;
            }
            let x: Vec<f32> = (0..n * ic).map(|i| (i % 7) as f32 * 0.1).collect();
            let w: Vec<f32> = (0..oc * ic).map(|i| (i % 5) as f32 * 0.1).collect();
            let dy: Vec<f32> = (0..n * oc).map(|i| (i % 3) as f32 * 0.1).collect();
            let mut y = vec![0f32; n * oc];
            let mut dx = vec![0f32; n * ic];
            let mut dw = vec![0f32; oc * ic];
            let flops = 2.0 * (n * ic * oc) as f64;
            let fwd = best_time(threads, || {
                let (a, b) = (MatRef::rows(&x, ic), MatRef::transposed(&w, ic));
                kern.sgemm(&pool, &mut s, false, n, oc, ic, a, b, &mut y, oc);
                black_box(&y);
            });
            let bwd_x = best_time(threads, || {
                let (a, b) = (MatRef::rows(&dy, oc), MatRef::rows(&w, ic));
                kern.sgemm(&pool, &mut s, true, n, ic, oc, a, b, &mut dx, ic);
                black_box(&dx);
            });
            let bwd_w = best_time(threads, || {
                let (a, b) = (MatRef::transposed(&dy, oc), MatRef::rows(&x, ic));
                kern.sgemm(&pool, &mut s, true, oc, ic, n, a, b, &mut dw, ic);
                black_box(&dw);
            });
            println!(
                "{isa:>7} {threads}t  N {n:>4} in {ic:>4} out {oc:>4}:  x·Wᵀ {:6.1}  dY·W {:6.1}  dYᵀ·X {:6.1} GFLOP/s",
                flops / fwd / 1e9,
                flops / bwd_x / 1e9,
                flops / bwd_w / 1e9
            );
        }
    }
}
