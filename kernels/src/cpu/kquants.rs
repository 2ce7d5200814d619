//! Kernel routing for the K-quants (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, and Q8_K as a weight type).
//!
//! [`crate::Kernels`] sends every K-quant `vec_dot` / `matmul` here instead of to the per-ISA
//! modules, whose legacy-type kernels do not know the 256-element super-blocks. Every path gives
//! results bitwise equal to a scalar function of [`crate::reference`] (`tests/simd_conformance.rs`
//! checks it): ggml's `_generic` dot products, or, where the x86 paths reproduce what llama.cpp
//! computes on x86, ggml's x86 order written out in scalar code:
//!
//! | type | x86_64 AVX2 and AVX-512 paths | other paths |
//! |---|---|---|
//! | Q6_K, 1..7 tokens | `ggml_vec_dot_q6_K_q8_K` (x86): `reference::vec_dot_q6_k_q8_k_x86` | generic |
//! | Q6_K, 8+ tokens (`matmul`) | ggml's tiled matmul: `reference::vec_dot_q6_k_q8_k_tiled` | generic |
//! | Q4_K | ggml's repacked x86 gemv/gemm: `reference::vec_dot_q4_k_q8_k_repack` | generic |
//! | Q2_K, Q3_K, Q5_K | `x86_64/avx2_kquants.rs` in the generic order | generic |
//! | Q8_K (as a weight: never in model files) | scalar reference | scalar reference |
//!
//! llama.cpp on x86 runs its tiled matmul (`ggml-cpu/tiled/`) for every product of 8 or more tokens
//! whose K-quant weights it has not repacked (Q6_K, Q5_K, Q3_K; Q4_K and, with AVX-512, Q2_K are
//! repacked into `block_q4_Kx8` / `block_q2_Kx8` and run `ggml_gemv/gemm_*_8x8_q8_K`), and `vec_dot`
//! below 8 tokens; with the same orders (and Q8_K activations quantized with the FMA ggml-base is
//! compiled with, `reference::quantize_row_q8_k_fma`) the Q6_K logits equal llama.cpp's bit for bit
//! (`tests/kquants.rs`), and so do the Q4_K_M ones: Q4_K follows the repacked gemv/gemm, and the
//! session quantizes a Q4_K product's whole groups of four tokens as ggml's
//! `ggml_quantize_mat_q8_K_4x8` does ([`crate::Kernels::quantize_batch`]). ingot applies the Q4_K
//! orders to every Q4_K matrix; llama.cpp repacks only those with a multiple of 8 rows (others run
//! its tiled matmul or `vec_dot`, not reproduced). The other types keep the generic order until their
//! x86 orders are written (Q5_K, Q3_K: `vec_dot` and tiled; Q2_K: repacked on AVX-512).
//! The AVX-512 path uses the AVX2 kernels (its token implies AVX2), as ggml's AVX-512 build runs its
//! AVX2 K-quant code; NEON has no K-quant kernels yet and runs the reference.

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
            // blocks of Q4_K and Q8_K (checked above). The order of ggml's repacked x86 kernels.
            QuantType::Q4_K => return unsafe { avx2_kquants::dot_q4_k_repack(w, x) },
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
    let tiled = tiled_dot(isa, ty, t);
    let gemm = gemm_dot(isa, ty);
    // llama.cpp's repacked Q4_K gemm takes the tokens of whole groups of four, its gemv the rest.
    let t_gemm = t - t % 4;
    for r in 0..rows {
        let wr = &w[r * rb..(r + 1) * rb];
        for j in 0..t {
            let x = &x_act[j * act_stride..j * act_stride + arb];
            out[j * rows + r] = match (tiled, gemm) {
                (Some(f), _) => f(n, wr, x),
                (None, Some(f)) if j < t_gemm => f(n, wr, x),
                _ => vec_dot(isa, ty, n, wr, x),
            };
        }
    }
}

/// Whether llama.cpp quantizes the activations of a `ty` product in groups of four tokens (its
/// repacked Q4_K gemm on x86, `ggml_quantize_mat_q8_K_4x8`) rather than token by token.
pub(crate) fn quantizes_in_fours(isa: Isa, ty: QuantType) -> bool {
    gemm_dot(isa, ty).is_some()
}

/// The dot product in the order of llama.cpp's repacked x86 gemm for the tokens of a batch that fill
/// whole groups of four (Q4_K: `ggml_gemm_q4_K_8x8_q8_K`); `None` where there is no such kernel.
fn gemm_dot(isa: Isa, ty: QuantType) -> Option<DotFn> {
    #[cfg(target_arch = "x86_64")]
    if matches!(isa, Isa::Avx2 | Isa::Avx512Vnni) && avx2().is_some() && ty == QuantType::Q4_K {
        return Some(|n, w, x| {
            check_row(QuantType::Q4_K, n, w.len());
            check_row(QuantType::Q8_K, n, x.len());
            // SAFETY: avx2() proved AVX2 + FMA + F16C (checked before this function pointer was
            // handed out); w and x hold exactly n / 256 Q4_K and Q8_K blocks (checked above).
            unsafe { avx2_kquants::dot_q4_k_repack_gemm(w, x) }
        });
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (isa, ty);
    None
}

/// A dot product of one weight row with one activation row of `n` elements.
type DotFn = fn(usize, &[u8], &[u8]) -> f32;

/// The dot product in the order of ggml-cpu's tiled K-quant matmul, where llama.cpp on x86 uses it
/// for a product of `t` activation rows (`t >= TILED_MIN_TOKENS`, weights not repacked); `None`
/// where it uses `vec_dot`.
fn tiled_dot(isa: Isa, ty: QuantType, t: usize) -> Option<DotFn> {
    if t < crate::reference::TILED_MIN_TOKENS {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    if matches!(isa, Isa::Avx2 | Isa::Avx512Vnni) && avx2().is_some() && ty == QuantType::Q6_K {
        return Some(|n, w, x| {
            check_row(QuantType::Q6_K, n, w.len());
            check_row(QuantType::Q8_K, n, x.len());
            // SAFETY: avx2() proved AVX2 + FMA + F16C (checked before this function pointer was
            // handed out); w and x hold exactly n / 256 Q6_K and Q8_K blocks (checked above).
            unsafe { avx2_kquants::dot_q6_k_tiled(w, x) }
        });
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (isa, ty);
    None
}
