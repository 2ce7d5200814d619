//! Kernel routing for the K-quants (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, and Q8_K as a weight type).
//!
//! [`crate::Kernels`] sends every K-quant `vec_dot` / `matmul` here instead of to the per-ISA
//! modules, whose legacy-type kernels do not know the 256-element super-blocks. For now every ISA
//! runs the scalar reference ([`crate::reference`], ggml's `_generic` dot products) here: correct
//! and bit-identical on every path, but not vectorized. A SIMD kernel for a type and ISA is added
//! as one arm of [`vec_dot`] and tested against the reference in `tests/simd_conformance.rs`.

use crate::dispatch::{check_matmul, Isa};
use crate::reference::check_row;
use crate::QuantType;

/// Dot product of one K-quant row with one Q8_K row, as [`crate::TypeInfo::vec_dot`].
#[inline]
pub(crate) fn vec_dot(_isa: Isa, ty: QuantType, n: usize, w: &[u8], x: &[u8]) -> f32 {
    debug_assert!(ty.is_k_quant());
    check_row(ty, n, w.len());
    check_row(ty.info().vec_dot_type, n, x.len());
    (ty.info().vec_dot)(n, w, x)
}

/// [`crate::Kernels::matmul`] for a K-quant weight type: each weight row dotted with every token
/// while it is in L1.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    isa: Isa,
    ty: QuantType,
    out: &mut [f32],
    w: &[u8],
    rows: usize,
    x_act: &[u8],
    act_stride: usize,
    t: usize,
    n: usize,
) {
    let rb = check_matmul(ty, out.len(), w.len(), rows, x_act.len(), act_stride, t, n);
    let arb = ty.info().vec_dot_type.row_bytes(n).unwrap_or(0);
    for r in 0..rows {
        let wr = &w[r * rb..(r + 1) * rb];
        for j in 0..t {
            let x = &x_act[j * act_stride..j * act_stride + arb];
            out[j * rows + r] = vec_dot(isa, ty, n, wr, x);
        }
    }
}
