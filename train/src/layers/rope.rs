//! Rotary position embedding (Su et al. 2021) on **adjacent pairs**: dimensions `(2i, 2i+1)` of each head
//! rotate by `pos * base^(-2i/D)`. This is the pairing GGUF llama files use (ggml `rope` mode 0,
//! `rope_ggml` in the runtime): Hugging Face's llama rotates the halves `(i, i + D/2)` instead and its
//! converter permutes the Q and K rows into the GGUF order. A model trained here is already in that
//! order, so its Q and K weights go to GGUF unpermuted.
//!
//! The angles are computed in `f64` and rounded once, so the table is the same in `f32` and `f64`
//! runs and in the PyTorch oracle (`tools/oracles/train_golden.py`).

use crate::parallel::{par_rows1, ThreadPool};
use crate::Float;

/// The cos/sin table `(T, D/2, 2)`: `[cos, sin]` of `t * base^(-2i/D)` for position `t`, pair `i`.
pub fn rope_table<F: Float>(t: usize, d: usize, base: f64) -> Vec<F> {
    assert!(d.is_multiple_of(2), "RoPE needs an even head size, got {d}");
    let mut table = Vec::with_capacity(t * d);
    for pos in 0..t {
        for i in 0..d / 2 {
            let inv_freq = base.powf(-((2 * i) as f64) / d as f64);
            let angle = pos as f64 * inv_freq;
            table.push(F::from_f64(angle.cos()));
            table.push(F::from_f64(angle.sin()));
        }
    }
    table
}

/// Rotates `x (B, T, NH, D)` in place: `(x0, x1) -> (x0 c - x1 s, x0 s + x1 c)`; `table` from
/// [`rope_table`] with at least `T` positions.
pub fn rope_forward<F: Float>(x: &mut [F], table: &[F], b: usize, t: usize, nh: usize, d: usize) {
    assert!(x.len() == b * t * nh * d && table.len() >= t * d);
    rotate::<F, false>(x, 0, table, t, nh, d);
}

/// The backward of [`rope_forward`] in place: a rotation's transpose is the rotation by `-angle`, so
/// `(d0, d1) -> (d0 c + d1 s, -d0 s + d1 c)` turns `dL/d(rotated)` into `dL/d(input)`.
pub fn rope_backward<F: Float>(dx: &mut [F], table: &[F], b: usize, t: usize, nh: usize, d: usize) {
    assert!(dx.len() == b * t * nh * d && table.len() >= t * d);
    rotate::<F, true>(dx, 0, table, t, nh, d);
}

/// [`rope_forward`] (`inverse` false) or [`rope_backward`] (true) with the heads spread over `pool`;
/// the same bits for any thread count.
#[allow(clippy::too_many_arguments)] // buffer, table, sizes, as the serial versions
pub fn rope_par<F: Float>(
    x: &mut [F],
    table: &[F],
    b: usize,
    t: usize,
    nh: usize,
    d: usize,
    inverse: bool,
    pool: &ThreadPool,
) {
    assert!(x.len() == b * t * nh * d && table.len() >= t * d);
    par_rows1(pool, b * t * nh, d, (x, d), |r0, x| {
        if inverse {
            rotate::<F, true>(x, r0, table, t, nh, d)
        } else {
            rotate::<F, false>(x, r0, table, t, nh, d)
        }
    });
}

/// Rotates the heads `x (rows, D)`, whose first is head row `row0` of `(B, T, NH)`, forward or back
/// (`INVERSE`).
fn rotate<F: Float, const INVERSE: bool>(
    x: &mut [F],
    row0: usize,
    table: &[F],
    t: usize,
    nh: usize,
    d: usize,
) {
    for (row, head) in x.chunks_exact_mut(d).enumerate() {
        let pos = (row0 + row) / nh % t;
        let cs = &table[pos * d..(pos + 1) * d];
        for (p, c) in head.chunks_exact_mut(2).zip(cs.chunks_exact(2)) {
            let (x0, x1) = (p[0], p[1]);
            if INVERSE {
                p[0] = x0 * c[0] + x1 * c[1];
                p[1] = x1 * c[0] - x0 * c[1];
            } else {
                p[0] = x0 * c[0] - x1 * c[1];
                p[1] = x0 * c[1] + x1 * c[0];
            }
        }
    }
}
