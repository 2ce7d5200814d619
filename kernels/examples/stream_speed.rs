//! Matrix-vector speed on matrices far larger than the caches (decode streams weights from DRAM,
//! which `dot_speed`'s L2-resident matrices do not show): `cargo run --release -p ingot-kernels
//! --example stream_speed -- q8_0|q4_0 [packed]` prints GB/s of weight bytes, best of 20 (a 30 MB
//! Q8_0 matrix shaped like SmolLM2's output projection, or a 57 MB Q4_0 one; `packed`: the
//! [`ingot_kernels::packed`] layout).

use ingot_kernels::{Kernels, QuantType};
use std::time::Instant;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let ty = if args.get(1).map(String::as_str) == Some("q4_0") {
        QuantType::Q4_0
    } else {
        QuantType::Q8_0
    };
    let packed = args.get(2).map(String::as_str) == Some("packed");
    let (rows, n) = (
        if ty == QuantType::Q4_0 {
            65536usize
        } else {
            49152
        },
        if ty == QuantType::Q4_0 { 1536 } else { 576 },
    );
    let wf: Vec<f32> = (0..rows * n)
        .map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0)
        .collect();
    let mut w = vec![0u8; ty.row_bytes(rows * n).unwrap()];
    (ty.info().from_f32)(&wf, &mut w);
    if packed {
        let mut p = vec![0u8; w.len()];
        ingot_kernels::packed::pack(ty, &w, rows, n, &mut p);
        w = p;
    }
    let xf: Vec<f32> = (0..n)
        .map(|i| ((i * 31 % 100) as f32 / 50.0) - 1.0)
        .collect();
    let mut xa = vec![0u8; QuantType::Q8_0.row_bytes(n).unwrap()];
    ingot_kernels::quantize_activations(QuantType::Q8_0, &xf, &mut xa);
    let k = Kernels::best();
    let mut out = vec![0f32; rows];
    let mut best = f64::INFINITY;
    for _ in 0..20 {
        let t = Instant::now();
        if packed {
            k.matmul_packed(ty, &mut out, &w, rows, &xa, xa.len(), 1, n);
        } else {
            k.matvec(ty, &mut out, &w, &xa, n);
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "{ty} packed={packed} {:.1} MB: {:.2} GB/s ({:.2} ms)",
        w.len() as f64 / 1e6,
        w.len() as f64 / best / 1e9,
        best * 1e3
    );
}
