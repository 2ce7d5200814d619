//! Kernel routing for the K-quants (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, and Q8_K as a weight type).
//!
//! [`crate::Kernels`] sends every K-quant `vec_dot` / `matmul` here instead of to the per-ISA
//! modules, whose legacy-type kernels do not know the 256-element super-blocks. Every path gives
//! results bitwise equal to a scalar function of [`crate::reference`] (`tests/simd_conformance.rs`
//! checks it). On x86 (AVX2 and AVX-512 paths) that is the order llama.cpp computes in on the same
//! CPU, which depends on the product as ggml-cpu's dispatch does:
//!
//! | product (x86) | llama.cpp | reference |
//! |---|---|---|
//! | Q4_K, and on AVX-512 Q2_K, with a multiple of 8 rows ("repacked" by ggml at load): the tokens of whole groups of four | `ggml_gemm_q*_K_8x8_q8_K` | `vec_dot_q4_k_q8_k_repack_gemm`, `vec_dot_q2_k_q8_k_repack(.., true)` |
//! | the same matrices, other tokens | `ggml_gemv_q*_K_8x8_q8_K` | `vec_dot_q4_k_q8_k_repack`, `vec_dot_q2_k_q8_k_repack(.., false)` |
//! | any other K-quant matrix, 8+ tokens | the tiled matmul (`ggml-cpu/tiled/`) | `vec_dot_k_q8_k_tiled`, `vec_dot_q6_k_q8_k_tiled` |
//! | any other K-quant matrix, 1..7 tokens; [`crate::Kernels::vec_dot`] | `ggml_vec_dot_q*_K_q8_K` (x86) | `vec_dot_q*_k_q8_k_x86` |
//! | Q8_K (as a weight: never in model files) | - | scalar reference |
//!
//! Whether ggml repacks a matrix depends on its *whole* row count (`ne[1] % 8 == 0`, checked in
//! `ggml_repack_get_optimal_repack_type`), so [`matmul`] takes it separately from the rows of the
//! part it computes ([`crate::Kernels::matmul_part`]). The repacked products quantize the
//! activations of whole groups of four tokens as `ggml_quantize_mat_q8_K_4x8`
//! ([`crate::Kernels::quantize_batch`], [`quantizes_in_fours`]). With these orders (and Q8_K
//! activations quantized with the FMA ggml-base is compiled with, `reference::quantize_row_q8_k_fma`)
//! the logits of Q6_K, Q4_K_M, Q5_K_M, Q3_K_M and Q2_K files equal llama.cpp's bit for bit on an
//! AVX-512 machine (`tests/kquants.rs`).
//!
//! The AVX-512 path uses the AVX2 kernels (its token implies AVX2), as ggml's AVX-512 build runs its
//! AVX2 K-quant code. Other paths run ggml's `_generic` order: the scalar reference, and on
//! aarch64 the NEON kernels of `aarch64/kquants.rs` (both NEON tokens, `SDOT` for Q4_K / Q5_K with
//! dotprod; bitwise equal to it).

#[cfg(target_arch = "x86_64")]
#[path = "x86_64/avx2_kquants.rs"]
mod avx2_kquants;

use crate::dispatch::{check_matmul, Isa};
use crate::reference::check_row;
use crate::QuantType;

/// Dot product of one K-quant row with one Q8_K row, as [`crate::TypeInfo::vec_dot`]: on x86,
/// ggml's x86 `vec_dot` order.
#[inline]
pub(crate) fn vec_dot(isa: Isa, ty: QuantType, n: usize, w: &[u8], x: &[u8]) -> f32 {
    debug_assert!(ty.is_k_quant());
    check_row(ty, n, w.len());
    check_row(ty.info().vec_dot_type, n, x.len());
    #[cfg(target_arch = "x86_64")]
    if x86(isa) {
        use avx2_kquants::{dot_x86, Q2, Q3, Q4, Q5};
        // SAFETY: x86() proved AVX2 + FMA + F16C on this CPU; w and x hold exactly n / 256 blocks
        // of `ty` and Q8_K (checked above).
        let v = unsafe {
            match ty {
                QuantType::Q6_K => Some(avx2_kquants::dot_q6_k(w, x)),
                QuantType::Q5_K => Some(dot_x86::<Q5>(w, x)),
                QuantType::Q4_K => Some(dot_x86::<Q4>(w, x)),
                QuantType::Q3_K => Some(dot_x86::<Q3>(w, x)),
                QuantType::Q2_K => Some(dot_x86::<Q2>(w, x)),
                _ => None,
            }
        };
        if let Some(v) = v {
            return v;
        }
    }
    #[cfg(target_arch = "aarch64")]
    if matches!(isa, Isa::Neon | Isa::NeonDotprod) {
        use crate::cpu::aarch64::kquants::{dot_generic, Q2, Q3, Q4, Q5, Q6};
        let dp = isa == Isa::NeonDotprod;
        // SAFETY: the NEON paths exist only where `Neon::detect` found NEON, the dotprod path
        // only where `NeonDotprod::detect` found dotprod too (`dp`); w and x hold exactly n / 256
        // blocks of `ty` and Q8_K (checked above).
        let v = unsafe {
            match (ty, dp) {
                (QuantType::Q6_K, _) => Some(dot_generic::<Q6, false>(w, x)),
                (QuantType::Q5_K, false) => Some(dot_generic::<Q5, false>(w, x)),
                (QuantType::Q5_K, true) => Some(dot_generic::<Q5, true>(w, x)),
                (QuantType::Q4_K, false) => Some(dot_generic::<Q4, false>(w, x)),
                (QuantType::Q4_K, true) => Some(dot_generic::<Q4, true>(w, x)),
                (QuantType::Q3_K, _) => Some(dot_generic::<Q3, false>(w, x)),
                (QuantType::Q2_K, _) => Some(dot_generic::<Q2, false>(w, x)),
                _ => None,
            }
        };
        if let Some(v) = v {
            return v;
        }
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = isa;
    (ty.info().vec_dot)(n, w, x)
}

/// Whether `isa` is an x86 path with the AVX2 K-quant kernels (AVX2, AVX-VNNI or AVX-512, AVX2 +
/// FMA + F16C detected). AVX-VNNI computes K-quants as AVX2 does (llama.cpp's `__AVXVNNI__`
/// builds repack and order them as its AVX2 builds do).
#[cfg(target_arch = "x86_64")]
fn x86(isa: Isa) -> bool {
    matches!(isa, Isa::Avx2 | Isa::AvxVnni | Isa::Avx512Vnni) && avx2().is_some()
}

/// The AVX2 token, detected once.
#[cfg(target_arch = "x86_64")]
fn avx2() -> Option<crate::cpu::x86_64::avx2::Avx2> {
    crate::detect_once!(
        Option<crate::cpu::x86_64::avx2::Avx2>,
        crate::cpu::x86_64::avx2::Avx2::detect
    )
}

/// Whether llama.cpp on this path repacks a `ty` matrix of `whole_rows` rows at load
/// (`ggml_repack_get_optimal_repack_type`: Q4_K with AVX2, Q2_K with AVX-512, rows a multiple of 8)
/// and so runs its repacked gemv / gemm on it.
fn repacked(isa: Isa, ty: QuantType, whole_rows: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    if x86(isa) && whole_rows.is_multiple_of(8) {
        return ty == QuantType::Q4_K || (ty == QuantType::Q2_K && isa == Isa::Avx512Vnni);
    }
    let _ = (isa, ty, whole_rows);
    false
}

/// [`crate::Kernels::matmul_part`] for a K-quant weight type: rows of a matrix of `whole_rows`
/// rows, each weight row dotted with every token while it is in L1, in the order llama.cpp uses for
/// the product (see the module table).
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    isa: Isa,
    ty: QuantType,
    whole_rows: usize,
    out: &mut [f32],
    w: &[u8],
    rows: usize,
    x_act: &[u8],
    act_stride: usize,
    t: usize,
    n: usize,
) {
    let rb = check_matmul(ty, out.len(), w.len(), rows, x_act.len(), act_stride, t, n);
    assert!(
        rows <= whole_rows,
        "matmul: part of {rows} rows of a {whole_rows}-row matrix"
    );
    let arb = ty.info().vec_dot_type.row_bytes(n).unwrap_or(0);
    let (gemm, gemv) = match repacked_dots(isa, ty, whole_rows) {
        Some((gemm, gemv)) => (Some(gemm), Some(gemv)),
        None => (None, None),
    };
    let tiled = if gemv.is_none() {
        tiled_dot(isa, ty, t)
    } else {
        None
    };
    // llama.cpp's repacked gemm takes the tokens of whole groups of four, its gemv the rest.
    let t_gemm = t - t % 4;
    for r in 0..rows {
        let wr = &w[r * rb..(r + 1) * rb];
        for j in 0..t {
            let x = &x_act[j * act_stride..j * act_stride + arb];
            out[j * rows + r] = match (gemm, gemv, tiled) {
                (Some(f), _, _) if j < t_gemm => f(n, wr, x),
                (_, Some(f), _) => f(n, wr, x),
                (_, _, Some(f)) => f(n, wr, x),
                _ => vec_dot(isa, ty, n, wr, x),
            };
        }
    }
}

/// Whether llama.cpp quantizes the activations of a product with a `ty` matrix of `whole_rows` rows
/// in groups of four tokens (its repacked gemm on x86, `ggml_quantize_mat_q8_K_4x8`) rather than
/// token by token.
pub(crate) fn quantizes_in_fours(isa: Isa, ty: QuantType, whole_rows: usize) -> bool {
    repacked(isa, ty, whole_rows)
}

/// A dot product of one weight row with one activation row of `n` elements.
type DotFn = fn(usize, &[u8], &[u8]) -> f32;

/// The dot products in the orders of llama.cpp's repacked x86 gemm (tokens of whole groups of
/// four) and gemv (the others) where it repacks the matrix; `None` elsewhere.
fn repacked_dots(isa: Isa, ty: QuantType, whole_rows: usize) -> Option<(DotFn, DotFn)> {
    if !repacked(isa, ty, whole_rows) {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    {
        use avx2_kquants::{dot_repack, Q2, Q4};
        // Each function below: repacked() is true only where x86() proved AVX2 + FMA + F16C
        // before these pointers were handed out; each checks that w and x hold exactly n / 256
        // blocks of its type and of Q8_K before the call.
        let q4: (DotFn, DotFn) = (
            |n, w, x| {
                check_dot(QuantType::Q4_K, n, w, x);
                // SAFETY: AVX2 + FMA + F16C and the lengths, as said above.
                unsafe { dot_repack::<Q4, 2>(w, x) }
            },
            |n, w, x| {
                check_dot(QuantType::Q4_K, n, w, x);
                // SAFETY: AVX2 + FMA + F16C and the lengths, as said above.
                unsafe { dot_repack::<Q4, 8>(w, x) }
            },
        );
        let q2: (DotFn, DotFn) = (
            |n, w, x| {
                check_dot(QuantType::Q2_K, n, w, x);
                // SAFETY: AVX2 + FMA + F16C and the lengths, as said above.
                unsafe { dot_repack::<Q2, 4>(w, x) }
            },
            |n, w, x| {
                check_dot(QuantType::Q2_K, n, w, x);
                // SAFETY: AVX2 + FMA + F16C and the lengths, as said above.
                unsafe { dot_repack::<Q2, 8>(w, x) }
            },
        );
        match ty {
            QuantType::Q4_K => return Some(q4),
            QuantType::Q2_K => return Some(q2),
            _ => {}
        }
    }
    None
}

/// Checks that `w` and `x` are `n` elements of `ty` and of Q8_K.
#[cfg(target_arch = "x86_64")]
#[inline]
#[track_caller]
fn check_dot(ty: QuantType, n: usize, w: &[u8], x: &[u8]) {
    check_row(ty, n, w.len());
    check_row(QuantType::Q8_K, n, x.len());
}

/// The dot product in the order of ggml-cpu's tiled K-quant matmul, where llama.cpp on x86 uses it
/// for a product of `t` activation rows (`t >= TILED_MIN_TOKENS`, weights not repacked); `None`
/// where it uses `vec_dot`.
fn tiled_dot(isa: Isa, ty: QuantType, t: usize) -> Option<DotFn> {
    if t < crate::reference::TILED_MIN_TOKENS {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    if x86(isa) {
        use avx2_kquants::{dot_tiled, Q2, Q3, Q4, Q5};
        // Each function below: x86() proved AVX2 + FMA + F16C before these pointers were handed
        // out; each checks that w and x hold exactly n / 256 blocks of its type and of Q8_K.
        let f: DotFn = match ty {
            QuantType::Q6_K => |n, w, x| {
                check_dot(QuantType::Q6_K, n, w, x);
                // SAFETY: AVX2 + FMA + F16C and the lengths, as said above.
                unsafe { avx2_kquants::dot_q6_k_tiled(w, x) }
            },
            QuantType::Q5_K => |n, w, x| {
                check_dot(QuantType::Q5_K, n, w, x);
                // SAFETY: AVX2 + FMA + F16C and the lengths, as said above.
                unsafe { dot_tiled::<Q5>(w, x) }
            },
            QuantType::Q4_K => |n, w, x| {
                check_dot(QuantType::Q4_K, n, w, x);
                // SAFETY: AVX2 + FMA + F16C and the lengths, as said above.
                unsafe { dot_tiled::<Q4>(w, x) }
            },
            QuantType::Q3_K => |n, w, x| {
                check_dot(QuantType::Q3_K, n, w, x);
                // SAFETY: AVX2 + FMA + F16C and the lengths, as said above.
                unsafe { dot_tiled::<Q3>(w, x) }
            },
            QuantType::Q2_K => |n, w, x| {
                check_dot(QuantType::Q2_K, n, w, x);
                // SAFETY: AVX2 + FMA + F16C and the lengths, as said above.
                unsafe { dot_tiled::<Q2>(w, x) }
            },
            _ => return None,
        };
        return Some(f);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (isa, ty);
    None
}
