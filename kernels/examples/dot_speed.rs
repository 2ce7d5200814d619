//! Weight-streaming speed of each kernel path: `cargo run --release -p ingot-kernels --example
//! dot_speed [TYPE...]` (default Q4_1 Q4_0 Q8_0). For SmolLM2-135M-shaped matrices (576 x 1536 and
//! 1536 x 576, the FFN shapes) it prints, per available ISA, GB/s of weight bytes for
//! `matvec` (decode: one token) and the effective rate of `matmul` over 16 tokens (weight bytes x
//! tokens / time, the prefill path), and for types the path repacks (`+packed`), the same over the
//! packed layout. The matrices are ~0.55 MB, so they sit in L2: this measures
//! the kernels, not DRAM.

use std::hint::black_box;
use std::time::Instant;

use ingot_kernels::{Isa, Kernels, QuantType};

/// Seconds per call: the minimum over 200 samples of a few calls each. The minimum is robust to
/// interference from other processes, which can only slow a sample down.
fn time_per_iter(mut f: impl FnMut()) -> f64 {
    f();
    let t0 = Instant::now();
    f();
    let once = t0.elapsed().as_secs_f64();
    let reps = ((2e-4 / once) as u32).max(1);
    (0..200)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..reps {
                f();
            }
            t.elapsed().as_secs_f64() / reps as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let types: Vec<QuantType> = if args.is_empty() {
        vec![QuantType::Q4_1, QuantType::Q4_0, QuantType::Q8_0]
    } else {
        args.iter()
            .map(|a| {
                *QuantType::ALL
                    .iter()
                    .find(|t| t.name().eq_ignore_ascii_case(a))
                    .unwrap_or_else(|| panic!("unknown type {a}"))
            })
            .collect()
    };
    let mut seed = 0x1234_5678_9abc_def0u64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        ((seed >> 40) as f32 / (1u32 << 23) as f32) - 1.0
    };
    const T: usize = 16;
    println!("type  rows x n     isa      matvec GB/s   matmul(T={T}) GB/s x tokens");
    for ty in types {
        let act = ty.info().vec_dot_type;
        for (rows, n) in [(1536usize, 576usize), (576, 1536)] {
            let wf: Vec<f32> = (0..rows * n).map(|_| rand()).collect();
            let mut w = vec![0u8; ty.row_bytes(rows * n).unwrap()];
            (ty.info().from_f32)(&wf, &mut w);
            let arb = act.row_bytes(n).unwrap();
            let xf: Vec<f32> = (0..T * n).map(|_| rand()).collect();
            let mut xa = vec![0u8; T * arb];
            for j in 0..T {
                ingot_kernels::quantize_activations(
                    act,
                    &xf[j * n..(j + 1) * n],
                    &mut xa[j * arb..(j + 1) * arb],
                );
            }
            for isa in Isa::ALL {
                let Some(k) = Kernels::for_isa(isa) else {
                    println!("{ty:<5} {rows:>4} x {n:<5}  {isa:<8} (not available)");
                    continue;
                };
                let mut out = vec![0f32; T * rows];
                let tv = time_per_iter(|| {
                    k.matvec(ty, &mut out[..rows], black_box(&w), &xa[..arb], n);
                    black_box(&out);
                });
                let tm = time_per_iter(|| {
                    k.matmul(ty, &mut out, black_box(&w), rows, &xa, arb, T, n);
                    black_box(&out);
                });
                let gb = w.len() as f64 / 1e9;
                println!(
                    "{ty:<5} {rows:>4} x {n:<5}  {isa:<8} {:>8.2} ({:>6.1} us)  {:>8.2} ({:>7.1} us)",
                    gb / tv,
                    tv * 1e6,
                    gb * T as f64 / tm,
                    tm * 1e6
                );
                if k.packs(ty) {
                    let mut p = vec![0u8; w.len()];
                    ingot_kernels::packed::pack(ty, &w, rows, n, &mut p);
                    let pv = time_per_iter(|| {
                        k.matmul_packed(ty, &mut out[..rows], black_box(&p), rows, &xa, arb, 1, n);
                        black_box(&out);
                    });
                    let pm = time_per_iter(|| {
                        k.matmul_packed(ty, &mut out, black_box(&p), rows, &xa, arb, T, n);
                        black_box(&out);
                    });
                    println!(
                        "{ty:<5} {rows:>4} x {n:<5}  {:<8} {:>8.2} ({:>6.1} us)  {:>8.2} ({:>7.1} us)",
                        "+packed",
                        gb / pv,
                        pv * 1e6,
                        gb * T as f64 / pm,
                        pm * 1e6
                    );
                }
            }
        }
    }
}
