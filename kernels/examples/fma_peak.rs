//! Peak f32 multiply-add throughput of this machine's cores: the ceiling any f32 trainer (ingot's or
//! PyTorch's) runs under. `cargo run --release -p ingot-kernels --example fma_peak [THREADS...]`
//! (default: 1 then 2 threads).
//!
//! Each thread runs `ACC` independent chains of `vfmadd` on 512-bit (AVX-512 F) and on 256-bit (AVX2 +
//! FMA) vectors: enough chains in flight to cover the FMA latency (4 cycles on Zen 4 and on Intel) on
//! two pipes, so the loop is bound by FMA throughput alone, the way a register-tiled GEMM micro-kernel
//! is at best. It prints GFLOP/s (2 FLOP per lane per FMA) from the thread's time **on the CPU**
//! (`/proc/thread-self/schedstat`; wall time elsewhere), the best of several samples, so other
//! processes on a busy machine do not lower the figure; with several threads, each thread's on-CPU
//! rate and their sum (the machine's peak when every thread has a core), and the wall-clock rate.

use std::time::Instant;

/// Independent accumulators: 12 (latency 4 x 2 pipes needs 8; 12 leaves margin for a core with
/// longer latency), so that with the two constants they fit the 16 ymm registers of AVX2 too.
const ACC: usize = 12;
/// FMA instructions per accumulator per sample: ~0.7 s at one FMA per cycle, so the scheduler-tick
/// granularity of the on-CPU clock (4 ms) is below 1%.
const ITERS: u64 = 200_000_000;

/// Seconds this thread has run on a CPU (Linux `/proc/thread-self/schedstat`); `None` elsewhere.
fn on_cpu() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    Some(s.split_whitespace().next()?.parse::<f64>().ok()? * 1e-9)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::ACC;
    use core::arch::x86_64::*;

    /// `ACC` chains of `iters` 512-bit FMAs; returns a value depending on all of them.
    ///
    /// # Safety
    /// The CPU must have AVX-512 F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn fma512(iters: u64) -> f32 {
        let mut acc = [_mm512_set1_ps(1.0); ACC];
        let (m, a) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
        for _ in 0..iters {
            for x in &mut acc {
                *x = _mm512_fmadd_ps(*x, m, a);
            }
        }
        acc.iter().map(|&x| _mm512_reduce_add_ps(x)).sum()
    }

    /// As [`fma512`] on 256-bit vectors.
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn fma256(iters: u64) -> f32 {
        let mut acc = [_mm256_set1_ps(1.0); ACC];
        let (m, a) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
        for _ in 0..iters {
            for x in &mut acc {
                *x = _mm256_fmadd_ps(*x, m, a);
            }
        }
        let mut lanes = [0f32; 8];
        let mut sum = 0.0;
        for &x in &acc {
            // SAFETY: `lanes` holds 8 floats; unaligned store.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), x) };
            sum += lanes.iter().sum::<f32>();
        }
        sum
    }
}

/// One FMA loop: its lane count and the function running `iters` iterations of `ACC` FMAs.
type Probe = (&'static str, usize, fn(u64) -> f32);

#[cfg(target_arch = "x86_64")]
fn probes() -> Vec<Probe> {
    let mut v: Vec<Probe> = Vec::new();
    if is_x86_feature_detected!("avx512f") {
        // SAFETY: AVX-512 F detected on the line above.
        v.push(("AVX-512 (zmm)", 16, |n| unsafe { x86::fma512(n) }));
    }
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: AVX2 and FMA detected on the line above.
        v.push(("AVX2 (ymm)", 8, |n| unsafe { x86::fma256(n) }));
    }
    v
}

#[cfg(not(target_arch = "x86_64"))]
fn probes() -> Vec<Probe> {
    Vec::new()
}

/// Runs `f` on `threads` threads at once, `samples` times; returns per thread its best on-CPU rate
/// (GFLOP/s), and the best wall-clock rate of all threads together.
fn measure(f: fn(u64) -> f32, lanes: usize, threads: usize, samples: usize) -> (Vec<f64>, f64) {
    let flops = (2 * lanes * ACC) as f64 * ITERS as f64;
    let mut best = vec![0f64; threads];
    let mut best_wall = 0f64;
    for _ in 0..samples {
        let t0 = Instant::now();
        let rates: Vec<f64> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(move || {
                        let (t, c) = (Instant::now(), on_cpu());
                        std::hint::black_box(f(std::hint::black_box(ITERS)));
                        let secs = match (c, on_cpu()) {
                            (Some(c0), Some(c1)) if c1 > c0 => c1 - c0,
                            _ => t.elapsed().as_secs_f64(),
                        };
                        flops / secs / 1e9
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().expect("probe thread"))
                .collect()
        });
        let wall = flops * threads as f64 / t0.elapsed().as_secs_f64() / 1e9;
        best_wall = best_wall.max(wall);
        for (b, r) in best.iter_mut().zip(rates) {
            *b = b.max(r);
        }
    }
    (best, best_wall)
}

fn main() {
    let threads: Vec<usize> = std::env::args()
        .skip(1)
        .map(|s| s.parse().expect("THREADS must be numbers"))
        .collect();
    let threads = if threads.is_empty() {
        vec![1, 2]
    } else {
        threads
    };
    let probes = probes();
    if probes.is_empty() {
        println!("no x86-64 FMA probe for this CPU");
        return;
    }
    println!("{ACC} independent FMA chains per thread, {ITERS} iterations per sample, best of 5");
    for (name, lanes, f) in probes {
        for &t in &threads {
            let (rates, wall) = measure(f, lanes, t, 5);
            let per: Vec<String> = rates.iter().map(|r| format!("{r:.1}")).collect();
            println!(
                "{name:>14} {t} thread(s): on-CPU {} GFLOP/s (sum {:.1}); wall-clock {wall:.1} GFLOP/s",
                per.join(" + "),
                rates.iter().sum::<f64>()
            );
        }
    }
}
