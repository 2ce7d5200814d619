//! Kernel routing for the K-quants (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, and Q8_K as a weight type).
//!
//! [`crate::Kernels`] sends every K-quant `vec_dot` / `matmul` here instead of to the per-ISA
//! modules, whose legacy-type kernels do not know the 256-element super-blocks. Every path gives
//! results bitwise equal to the scalar reference ([`crate::reference`], ggml's `_generic` dot
//! products; `tests/simd_conformance.rs` checks it):
//!
//! | type | x86_64 AVX2 and AVX-512 paths | other paths |
//! |---|---|---|
//! | Q2_K, Q3_K, Q4_K, Q5_K, Q6_K | `x86_64/avx2_kquants.rs` (AVX2, the reference's lane order) | scalar reference |
//! | Q8_K (as a weight: never in model files) | scalar reference | scalar reference |
//!
//! The AVX-512 path uses the AVX2 kernels (its token implies AVX2); NEON has no K-quant kernels
//! yet and runs the reference.

#[cfg(target_arch = "x86_64")]
#[path = "x86_64/avx2_kquants.rs"]
mod avx2_kquants;

use crate::dispatch::{check_matmul, Isa};
use crate::reference::check_row;
use crate::QuantType;

/// Dot product of one K-quant row with one Q8_K row, as [`crate::TypeInfo::vec_dot`].
#[inline]
pub(crate) fn vec_dot(isa: Isa, ty: QuantType, n: usize, w: &[u8], x: &[u8]) -> f32 {
    debug_assert!(ty.is_k_quant());
    check_row(ty, n, w.len());
    check_row(ty.info().vec_dot_type, n, x.len());
    #[cfg(target_arch = "x86_64")]
    if matches!(isa, Isa::Avx2 | Isa::Avx512Vnni) && avx2().is_some() {
        match ty {
            // SAFETY: avx2() proved AVX2 + FMA + F16C on this CPU; w and x hold exactly n / 256
            // blocks of Q4_K and Q8_K (checked above).
            QuantType::Q4_K => return unsafe { avx2_kquants::dot_q4_k(w, x) },
            // SAFETY: as above, for Q6_K.
            QuantType::Q6_K => return unsafe { avx2_kquants::dot_q6_k(w, x) },
            // SAFETY: as above, for Q5_K.
            QuantType::Q5_K => return unsafe { avx2_kquants::dot_q5_k(w, x) },
            // SAFETY: as above, for Q3_K.
            QuantType::Q3_K => return unsafe { avx2_kquants::dot_q3_k(w, x) },
            // SAFETY: as above, for Q2_K.
            QuantType::Q2_K => return unsafe { avx2_kquants::dot_q2_k(w, x) },
            _ => {}
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = isa;
    (ty.info().vec_dot)(n, w, x)
}

/// The AVX2 token, detected once.
#[cfg(target_arch = "x86_64")]
fn avx2() -> Option<crate::cpu::x86_64::avx2::Avx2> {
    crate::detect_once!(
        Option<crate::cpu::x86_64::avx2::Avx2>,
        crate::cpu::x86_64::avx2::Avx2::detect
    )
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
