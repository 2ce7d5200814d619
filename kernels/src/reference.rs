//! Scalar reference kernels: the definition of "correct" for every other kernel path.
//!
//! Each function reproduces what llama.cpp computes for the same bytes, in the same order of
//! floating-point operations, so results are bit-identical where ggml is deterministic:
//!
//! - `to_f32` = ggml's `dequantize_row_*` (ggml-quants.c) / `ggml_fp16_to_fp32_row` etc.;
//! - `from_f32` = ggml's `quantize_row_*_ref` (ggml-quants.c), what `llama-quantize` writes;
//! - [`quantize_activations`] = ggml-cpu's `type_traits_cpu[..].from_float` as built for x86 with
//!   AVX2/AVX-512, i.e. `quantize_row_q8_0` / `quantize_row_q8_1` in `ggml-cpu/arch/x86/quants.c`
//!   (ties to even, `127/amax`), which differ from the `_ref` quantizers (ties away, `1/d`), and
//!   `quantize_row_q8_K` (= `quantize_row_q8_K_ref`) for the K-quants as GCC compiles it with FMA
//!   enabled (`quantize_row_q8_k_fma`: `nearest_int`'s add contracted into one FMA; see there);
//! - `vec_dot` = ggml-cpu's scalar `ggml_vec_dot_*_generic` (quants.c) and `ggml_vec_dot_f16` etc.
//!   (vec.cpp): an exact integer dot per block, then one f32 multiply-add per block. ggml's SIMD
//!   versions reassociate that f32 sum, so they agree with this only to rounding; where ingot's x86
//!   paths reproduce an x86 order bit for bit, it is written out here too (`vec_dot_*_x86`,
//!   `vec_dot_*_tiled`).
//!
//! Expressions are written as in ggml's C with no fused multiply-add: Rust never contracts, and
//! ggml-base (where the `_ref` quantizers and dequantizers live) is built for baseline x86-64,
//! which has no FMA. Non-finite inputs follow the x86 instruction semantics where ggml's x86 code is
//! reproduced (`maxps`, `cvtps2dq`) and Rust's saturating casts where ggml's C is undefined.
//!
//! Every entry point asserts its slice lengths (a wrong length is a caller bug) and takes byte
//! slices at any alignment. Nothing here allocates or uses `unsafe`.

#![forbid(unsafe_code)]

mod float;
mod kquants;
mod kquants_dot;
pub mod ops;
mod quants;

pub use float::{
    bf16_from_f32, bf16_to_f32, f16_from_f32, f16_to_f32, f32_from_f32, f32_to_f32, fp32_to_bf16,
    vec_dot_bf16, vec_dot_f16, vec_dot_f32,
};
pub use kquants::{
    quantize_row_q2_k_ref, quantize_row_q3_k_ref, quantize_row_q4_k_ref, quantize_row_q5_k_ref,
    quantize_row_q6_k_ref, quantize_row_q8_k_4x8_x86, quantize_row_q8_k_fma, quantize_row_q8_k_ref,
};
pub use kquants_dot::{
    dequantize_row_q2_k, dequantize_row_q3_k, dequantize_row_q4_k, dequantize_row_q5_k,
    dequantize_row_q6_k, dequantize_row_q8_k, vec_dot_k_q8_k_tiled, vec_dot_q2_k_q8_k,
    vec_dot_q2_k_q8_k_repack, vec_dot_q2_k_q8_k_x86, vec_dot_q3_k_q8_k, vec_dot_q3_k_q8_k_x86,
    vec_dot_q4_k_q8_k, vec_dot_q4_k_q8_k_repack, vec_dot_q4_k_q8_k_repack_gemm,
    vec_dot_q4_k_q8_k_x86, vec_dot_q5_k_q8_k, vec_dot_q5_k_q8_k_x86, vec_dot_q6_k_q8_k,
    vec_dot_q6_k_q8_k_tiled, vec_dot_q6_k_q8_k_x86, vec_dot_q8_k_q8_k, TILED_MIN_TOKENS,
};
pub use quants::{
    dequantize_row_q4_0, dequantize_row_q4_1, dequantize_row_q5_0, dequantize_row_q5_1,
    dequantize_row_q8_0, dequantize_row_q8_1, quantize_row_q4_0_ref, quantize_row_q4_1_ref,
    quantize_row_q5_0_ref, quantize_row_q5_1_ref, quantize_row_q8_0_ref, quantize_row_q8_0_x86,
    quantize_row_q8_1_ref, quantize_row_q8_1_x86, vec_dot_q4_0_q8_0, vec_dot_q4_1_q8_1,
    vec_dot_q5_0_q8_0, vec_dot_q5_1_q8_1, vec_dot_q8_0_q8_0, vec_dot_q8_1_q8_1,
};

use crate::QuantType;

/// Converts activations `x` (n,) to the activation format `ty` (one of F32, F16, BF16, Q8_0, Q8_1, Q8_K:
/// a `vec_dot_type` of some weight type) the way ggml-cpu's x86 `from_float` does before a matmul.
/// `out.len()` must be `ty.row_bytes(x.len())`.
///
/// # Panics
/// If `ty` is not an activation format or the lengths disagree.
pub fn quantize_activations(ty: QuantType, x: &[f32], out: &mut [u8]) {
    check_row(ty, x.len(), out.len());
    match ty {
        QuantType::F32 => f32_from_f32(x, out),
        QuantType::F16 => f16_from_f32(x, out),
        QuantType::BF16 => bf16_from_f32(x, out),
        QuantType::Q8_0 => quantize_row_q8_0_x86(x, out),
        QuantType::Q8_1 => quantize_row_q8_1_x86(x, out),
        // ggml-cpu's x86 `quantize_row_q8_K` is the `_ref` quantizer itself, compiled with FMA.
        QuantType::Q8_K => quantize_row_q8_k_fma(x, out),
        _ => panic!("quantize_activations: {ty} is not an activation (vec_dot) type"),
    }
}

/// `out[r] = vec_dot(n, W[r], x)`: W (d, n) in `ty` @ x (n,) -> out (d,), with `d = out.len()`,
/// row stride `ty.row_bytes(n)`, and `x_act` already converted by
/// `quantize_activations(ty.info().vec_dot_type, ..)`.
///
/// # Panics
/// If `n` is not a whole number of blocks or a slice length disagrees with `n` and `out.len()`.
pub fn matvec(ty: QuantType, out: &mut [f32], w: &[u8], x_act: &[u8], n: usize) {
    let info = ty.info();
    let rb = ty.row_bytes(n);
    assert!(
        rb.is_some(),
        "matvec: {ty} row of {n} elements is not whole blocks"
    );
    let rb = rb.unwrap_or(0);
    assert_eq!(
        rb.checked_mul(out.len()),
        Some(w.len()),
        "matvec: W must be {} rows of {rb} bytes",
        out.len()
    );
    check_row(info.vec_dot_type, n, x_act.len());
    for (r, o) in out.iter_mut().enumerate() {
        *o = (info.vec_dot)(n, &w[r * rb..(r + 1) * rb], x_act);
    }
}

/// Asserts that `bytes` is exactly the encoded size of `n` elements of `ty`.
#[track_caller]
#[inline]
pub(crate) fn check_row(ty: QuantType, n: usize, bytes: usize) {
    assert!(
        ty.row_bytes(n) == Some(bytes),
        "{ty}: {n} elements need {:?} bytes, got {bytes}",
        ty.row_bytes(n)
    );
}

/// `|x|` by clearing the sign bit, as ggml's `fabsf` and the x86 `andnot(-0.0, x)` both do.
#[inline]
pub(crate) fn abs(x: f32) -> f32 {
    f32::from_bits(x.to_bits() & 0x7fff_ffff)
}

/// C `roundf`: nearest integer, ties away from zero. Exact for every f32 (no `std` needed).
#[inline]
pub(crate) fn round_half_away(x: f32) -> f32 {
    // |x| >= 2^23 is already integral; NaN and inf pass through (the test is false for NaN).
    if abs(x) >= 8_388_608.0 || x.is_nan() {
        return x;
    }
    let t = (x as i32) as f32; // truncation, exact below 2^23
    let f = x - t; // exact: the fraction bits of x
    if f >= 0.5 {
        t + 1.0
    } else if f <= -0.5 {
        t - 1.0
    } else {
        t
    }
}

/// `_mm256_round_ps(x, _MM_ROUND_NEAREST)`: nearest integer, ties to even.
#[inline]
pub(crate) fn round_half_even(x: f32) -> f32 {
    if abs(x) >= 8_388_608.0 || x.is_nan() {
        return x;
    }
    let ti = x as i32;
    let t = ti as f32;
    let f = x - t;
    let odd = ti & 1 != 0;
    if f > 0.5 || (f == 0.5 && odd) {
        t + 1.0
    } else if f < -0.5 || (f == -0.5 && odd) {
        t - 1.0
    } else {
        t
    }
}

/// `_mm256_cvtps_epi32` on an already integral value: NaN and out-of-range give `i32::MIN`
/// (the "integer indefinite" value).
#[inline]
pub(crate) fn cvtps_epi32(x: f32) -> i32 {
    if (-2_147_483_648.0..2_147_483_648.0).contains(&x) {
        x as i32
    } else {
        i32::MIN
    }
}

/// `maxps` lane semantics: returns `b` unless `a > b` (so a NaN in either operand yields `b`).
#[inline]
pub(crate) fn maxps(a: f32, b: f32) -> f32 {
    if a > b {
        a
    } else {
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundings() {
        let cases: [(f32, f32, f32); 12] = [
            // x, roundf (away), round-to-even
            (0.5, 1.0, 0.0),
            (1.5, 2.0, 2.0),
            (2.5, 3.0, 2.0),
            (-0.5, -1.0, 0.0),
            (-2.5, -3.0, -2.0),
            (-3.5, -4.0, -4.0),
            (2.4999998, 2.0, 2.0),
            (0.49999997, 0.0, 0.0),
            (126.5, 127.0, 126.0),
            (-127.0, -127.0, -127.0),
            (8_388_607.5, 8_388_608.0, 8_388_608.0),
            (1e30, 1e30, 1e30),
        ];
        for (x, away, even) in cases {
            assert_eq!(round_half_away(x), away, "roundf({x})");
            assert_eq!(round_half_even(x), even, "rint({x})");
        }
        assert!(round_half_even(f32::NAN).is_nan());
        assert_eq!(cvtps_epi32(f32::NAN), i32::MIN);
        assert_eq!(cvtps_epi32(3e9), i32::MIN);
        assert_eq!(cvtps_epi32(-2_147_483_648.0), i32::MIN);
        assert_eq!(cvtps_epi32(-127.0), -127);
    }

    #[test]
    fn maxps_prefers_second_operand() {
        assert_eq!(maxps(1.0, 2.0), 2.0);
        assert_eq!(maxps(2.0, 1.0), 2.0);
        assert!(maxps(1.0, f32::NAN).is_nan());
        assert_eq!(maxps(f32::NAN, 1.0), 1.0);
    }

    #[test]
    #[should_panic(expected = "not an activation")]
    fn quantize_activations_rejects_weight_types() {
        let mut out = [0u8; 18];
        quantize_activations(QuantType::Q4_0, &[0.0; 32], &mut out);
    }

    #[test]
    #[should_panic(expected = "elements need")]
    fn quantize_activations_checks_length() {
        let mut out = [0u8; 35];
        quantize_activations(QuantType::Q8_0, &[0.0; 32], &mut out);
    }

    #[test]
    #[should_panic(expected = "rows of")]
    fn matvec_checks_weight_length() {
        let w = [0u8; 34 * 2 - 1];
        let x = [0u8; 34];
        matvec(QuantType::Q8_0, &mut [0.0; 2], &w, &x, 32);
    }

    #[test]
    #[should_panic(expected = "not whole blocks")]
    fn matvec_checks_block_multiple() {
        matvec(QuantType::Q8_0, &mut [0.0; 1], &[], &[], 16);
    }
}
