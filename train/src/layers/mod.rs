//! The decoder's layers, each a pair of plain functions in the manner of llm.c's `train_gpt2.c`:
//! `*_forward` writes its outputs (overwriting them) and saves what the backward needs; `*_backward`
//! **accumulates** (`+=`) into the input and parameter gradients, so a tensor used twice (the tied
//! embedding) or a residual branch simply adds up, and the caller zeroes gradients once per step.
//! Slices in, sizes explicit, no allocation on the forward path, no `Result`: lengths are asserted at
//! entry. Generic over [`Float`] so the finite-difference tests (`tests/finite_difference.rs`) run the
//! very same code in `f64`. This module owns the math of one layer; the model (`model.rs`) owns the
//! buffers and the order.
//!
//! Shapes use the crate's dimension letters (see the crate docs); `N = B*T` rows.

mod attention;
mod cross_entropy;
mod linear;
mod rmsnorm;
mod rope;
mod swiglu;

pub use attention::{
    attention_backward, attention_backward_reference, attention_forward,
    attention_forward_reference, AttentionShape, TB as ATTENTION_ROW_BLOCK,
};
pub use cross_entropy::{
    cross_entropy_backward, cross_entropy_backward_par, cross_entropy_backward_weighted,
    cross_entropy_forward, cross_entropy_forward_par,
};
pub use linear::{dot, linear_backward, linear_backward_into, linear_forward};
pub use rmsnorm::{rmsnorm_backward, rmsnorm_backward_par, rmsnorm_forward, rmsnorm_forward_par};
pub use rope::{rope_backward, rope_forward, rope_par, rope_table};
pub use swiglu::{
    swiglu_backward, swiglu_backward_par, swiglu_backward_saved_par, swiglu_forward,
    swiglu_forward_par, swiglu_forward_saving_par,
};

use crate::parallel::{par_rows1, ThreadPool};
use crate::Float;

/// `out (N, C) = wte[tokens[n]]`: the token embedding lookup.
pub fn embedding_forward<F: Float>(out: &mut [F], tokens: &[u32], wte: &[F], c: usize) {
    let n = tokens.len();
    assert_eq!(out.len(), n * c);
    for (row, &tok) in out.chunks_exact_mut(c).zip(tokens) {
        let tok = tok as usize;
        row.copy_from_slice(&wte[tok * c..(tok + 1) * c]);
    }
}

/// `dwte (V, C) [tokens[n]] += dout (N, C) [n]`, in token order (deterministic).
pub fn embedding_backward<F: Float>(dwte: &mut [F], dout: &[F], tokens: &[u32], c: usize) {
    assert_eq!(dout.len(), tokens.len() * c);
    for (drow, &tok) in dout.chunks_exact(c).zip(tokens) {
        let tok = tok as usize;
        for (dw, &d) in dwte[tok * c..(tok + 1) * c].iter_mut().zip(drow) {
            *dw += d;
        }
    }
}

/// `out = a + b`, elementwise: the residual connection. Its backward is the identity on both
/// branches, which the model does by letting both branches accumulate into one gradient buffer.
pub fn residual_forward<F: Float>(out: &mut [F], a: &[F], b: &[F]) {
    assert!(out.len() == a.len() && out.len() == b.len());
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = x + y;
    }
}

/// [`embedding_forward`] with the rows spread over `pool`.
pub fn embedding_forward_par<F: Float>(
    out: &mut [F],
    tokens: &[u32],
    wte: &[F],
    c: usize,
    pool: &ThreadPool,
) {
    assert_eq!(out.len(), tokens.len() * c);
    par_rows1(pool, tokens.len(), c, (out, c), |r0, out| {
        embedding_forward(out, &tokens[r0..][..out.len() / c], wte, c)
    });
}

/// [`embedding_backward`] spread over `pool` by vocabulary rows: each item scans every token in
/// order and adds those in its rows, so every element sums in token order, as the serial loop does
/// (the same bits for any thread count).
pub fn embedding_backward_par<F: Float>(
    dwte: &mut [F],
    dout: &[F],
    tokens: &[u32],
    c: usize,
    pool: &ThreadPool,
) {
    assert_eq!(dout.len(), tokens.len() * c);
    assert!(c > 0 && dwte.len().is_multiple_of(c));
    let v = dwte.len() / c;
    // each vocabulary row costs a scan of the tokens plus its share of the additions
    let cost = (tokens.len() + tokens.len() * c / v.max(1)).max(1);
    par_rows1(pool, v, cost, (dwte, c), |v0, dwte| {
        let v1 = v0 + dwte.len() / c;
        for (drow, &tok) in dout.chunks_exact(c).zip(tokens) {
            let tok = tok as usize;
            if (v0..v1).contains(&tok) {
                let dw = &mut dwte[(tok - v0) * c..][..c];
                for (dw, &d) in dw.iter_mut().zip(drow) {
                    *dw += d;
                }
            }
        }
    });
}

/// [`residual_forward`] spread over `pool`.
pub fn residual_forward_par<F: Float>(out: &mut [F], a: &[F], b: &[F], pool: &ThreadPool) {
    assert!(out.len() == a.len() && out.len() == b.len());
    par_rows1(pool, out.len(), 1, (out, 1), |i0, out| {
        let n = out.len();
        residual_forward(out, &a[i0..][..n], &b[i0..][..n])
    });
}
