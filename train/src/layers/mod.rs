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
    cross_entropy_backward, cross_entropy_backward_weighted, cross_entropy_forward,
};
pub use linear::{dot, linear_backward, linear_forward};
pub use rmsnorm::{rmsnorm_backward, rmsnorm_forward};
pub use rope::{rope_backward, rope_forward, rope_table};
pub use swiglu::{swiglu_backward, swiglu_forward};

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
