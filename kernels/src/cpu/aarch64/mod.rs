//! aarch64 kernels: [`neon::Neon`] (Advanced SIMD, every AArch64 core) and
//! [`dotprod::NeonDotprod`] (plus the ARMv8.2 `SDOT` instruction: Cortex-A55/A76, Neoverse N1,
//! Apple M1 and later). Modelled on ggml-cpu's `arch/arm/quants.c` (`ggml_vec_dot_*` with and
//! without `__ARM_FEATURE_DOTPROD`) and `vec.h` / `simd-mappings.h`.
//!
//! Kernel shape, as in [`crate::cpu::x86_64`]: a block kernel is an
//! `unsafe fn k<const T: usize>(n, w: *const u8, x: [*const u8; T]) -> [f32; T]` that dots one
//! weight row with `T` activation rows, decoding each weight block once and running the *same*
//! sequence of operations for every token as the `T = 1` instance does. So `matmul`, which calls
//! `k::<4>` for groups of four tokens and `k::<1>` for the rest, is bitwise identical to one
//! `vec_dot` per (row, token).
//!
//! The integer block kernels of both tokens come from one macro, [`int_kernels`], instantiated
//! with the token's target features and its 16-byte signed dot (`vmull_s8` + `vpadalq_s16`, or
//! `SDOT`); the float kernels and activation quantizers are NEON only and live in [`neon`].
//!
//! Two stable-Rust constraints shape the code: `vdotq_s32` is still unstable (`stdarch_neon_dotprod`),
//! so `SDOT` is inline `asm!` inside a `#[target_feature(enable = "neon,dotprod")]` function; and
//! the f16 vector types (`float16x4_t`) are newer than the workspace's `rust-version`, so f16
//! conversions are `FCVT`/`FCVTL`/`FCVTN` in `asm!` on `u16` lanes (base ARMv8 instructions, exact
//! and round-to-nearest-even like F16C). Loads of f32/f16 data go through byte loads
//! (`vld1q_u8`), because the typed `vld1*` intrinsics require element alignment and GGUF rows
//! have none.

use core::arch::aarch64::*;
use core::arch::asm;

pub mod dotprod;
mod dotprod_packed;
pub(crate) mod kquants;
pub mod neon;

/// f16 bits -> f32 with `FCVT Sd, Hn` (exact; base ARMv8 FP, no FEAT_FP16 needed).
#[inline]
#[target_feature(enable = "neon")]
pub(super) fn f16_to_f32(h: u16) -> f32 {
    let f: f32;
    // SAFETY: FCVT reads and writes only the two named registers; FP is part of the `neon`
    // feature this function is compiled with.
    unsafe {
        asm!("fcvt {f:s}, {h:h}", f = lateout(vreg) f, h = in(vreg) h,
             options(pure, nomem, nostack, preserves_flags))
    };
    f
}

/// The f16 at `p` (any alignment) as f32.
///
/// # Safety
/// 2 readable bytes at `p`.
#[inline]
#[target_feature(enable = "neon")]
pub(super) unsafe fn f16_at(p: *const u8) -> f32 {
    // SAFETY: the caller guarantees 2 readable bytes; read_unaligned accepts any alignment.
    f16_to_f32(unsafe { core::ptr::read_unaligned(p.cast::<u16>()) })
}

/// 32 codes of a 4-bit block from its 16 `qs` bytes at `p`: elements 0..16 (low nibbles) and
/// 16..32 (high nibbles), as unsigned bytes 0..16 (see [`crate::blocks`]).
///
/// # Safety
/// 16 readable bytes at `p`.
#[inline]
#[target_feature(enable = "neon")]
pub(super) unsafe fn nibbles(p: *const u8) -> (uint8x16_t, uint8x16_t) {
    // SAFETY: the caller guarantees 16 readable bytes; vld1q_u8 needs no alignment.
    let v = unsafe { vld1q_u8(p) };
    (vandq_u8(v, vdupq_n_u8(0x0f)), vshrq_n_u8::<4>(v))
}

/// Bit 4 of the 32 Q5 codes from the `qh` u32 (LE) at `p`: byte `j` of the pair is `0x10` iff bit
/// `j` (elements 0..16) or bit `16 + j` (elements 16..32) is set. Each qh byte is broadcast over
/// 8 lanes and tested against `1 << (lane % 8)` (ggml uses a 256-entry table instead).
///
/// # Safety
/// 4 readable bytes at `p`.
#[inline]
#[target_feature(enable = "neon")]
pub(super) unsafe fn q5_high_bits(p: *const u8) -> (uint8x16_t, uint8x16_t) {
    // SAFETY: the caller guarantees 4 readable bytes.
    let qh = unsafe { core::ptr::read_unaligned(p.cast::<[u8; 4]>()) };
    let bits = vreinterpretq_u8_u64(vdupq_n_u64(0x8040_2010_0804_0201));
    let c16 = vdupq_n_u8(0x10);
    let lo = vcombine_u8(vdup_n_u8(qh[0]), vdup_n_u8(qh[1]));
    let hi = vcombine_u8(vdup_n_u8(qh[2]), vdup_n_u8(qh[3]));
    (
        vandq_u8(vtstq_u8(lo, bits), c16),
        vandq_u8(vtstq_u8(hi, bits), c16),
    )
}

/// Weight codes of one block at `wb` as two signed 16-byte halves (elements 0..16, 16..32), each
/// in i8 range so that any signed 8-bit dot is exact: Q4_0 `q - 8`, Q4_1 `q`, Q5_0 `q - 16`,
/// Q5_1 `q`, Q8_0/Q8_1 the stored bytes.
pub(super) mod codes {
    use super::*;

    /// # Safety
    /// One Q4_0 block (18 bytes) readable at `wb`.
    #[inline]
    #[target_feature(enable = "neon")]
    pub unsafe fn q4_0(wb: *const u8) -> (int8x16_t, int8x16_t) {
        // SAFETY: qs is bytes 2..18 of the block the caller guarantees.
        let (lo, hi) = unsafe { nibbles(wb.add(2)) };
        let c8 = vdupq_n_s8(8);
        (
            vsubq_s8(vreinterpretq_s8_u8(lo), c8),
            vsubq_s8(vreinterpretq_s8_u8(hi), c8),
        )
    }

    /// # Safety
    /// One Q4_1 block (20 bytes) readable at `wb`.
    #[inline]
    #[target_feature(enable = "neon")]
    pub unsafe fn q4_1(wb: *const u8) -> (int8x16_t, int8x16_t) {
        // SAFETY: qs is bytes 4..20 of the block the caller guarantees.
        let (lo, hi) = unsafe { nibbles(wb.add(4)) };
        (vreinterpretq_s8_u8(lo), vreinterpretq_s8_u8(hi))
    }

    /// # Safety
    /// One Q5_0 block (22 bytes) readable at `wb`.
    #[inline]
    #[target_feature(enable = "neon")]
    pub unsafe fn q5_0(wb: *const u8) -> (int8x16_t, int8x16_t) {
        // SAFETY: qh is bytes 2..6 and qs bytes 6..22 of the block the caller guarantees.
        let ((lo, hi), (hlo, hhi)) = unsafe { (nibbles(wb.add(6)), q5_high_bits(wb.add(2))) };
        let c16 = vdupq_n_s8(16);
        (
            vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(lo, hlo)), c16),
            vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(hi, hhi)), c16),
        )
    }

    /// # Safety
    /// One Q5_1 block (24 bytes) readable at `wb`.
    #[inline]
    #[target_feature(enable = "neon")]
    pub unsafe fn q5_1(wb: *const u8) -> (int8x16_t, int8x16_t) {
        // SAFETY: qh is bytes 4..8 and qs bytes 8..24 of the block the caller guarantees.
        let ((lo, hi), (hlo, hhi)) = unsafe { (nibbles(wb.add(8)), q5_high_bits(wb.add(4))) };
        (
            vreinterpretq_s8_u8(vorrq_u8(lo, hlo)),
            vreinterpretq_s8_u8(vorrq_u8(hi, hhi)),
        )
    }

    /// # Safety
    /// One Q8_0 block (34 bytes) readable at `wb`.
    #[inline]
    #[target_feature(enable = "neon")]
    pub unsafe fn q8_0(wb: *const u8) -> (int8x16_t, int8x16_t) {
        // SAFETY: qs is bytes 2..34 of the block the caller guarantees.
        unsafe { (vld1q_s8(wb.add(2).cast()), vld1q_s8(wb.add(18).cast())) }
    }

    /// # Safety
    /// One Q8_1 block (36 bytes) readable at `wb`.
    #[inline]
    #[target_feature(enable = "neon")]
    pub unsafe fn q8_1(wb: *const u8) -> (int8x16_t, int8x16_t) {
        // SAFETY: qs is bytes 4..36 of the block the caller guarantees.
        unsafe { (vld1q_s8(wb.add(4).cast()), vld1q_s8(wb.add(20).cast())) }
    }
}

/// The six integer block kernels (`dot_q4_0` .. `dot_q8_1`) and their matmul drivers (`mm_q4_0`
/// .. `mm_q8_1`), compiled with target features `$feat` around the exact signed dot
/// `$idot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t` (adds the 16 products
/// `a[i] * b[i]` into the four i32 lanes of `acc`, in any lane pattern).
///
/// Per block, for each token (ggml's NEON `ggml_vec_dot_q*_q8_*`):
///
/// ```text
/// (q0, q1) = signed weight codes, elements 0..16 and 16..32    (decoded once per block)
/// i        = idot(idot(0, q0, y[0..16]), q1, y[16..32])        (exact: |lane| <= 8 * 128 * 128)
/// acc     += f32(i) * (dw * dx)                                 (4 f32 lanes, one FMA)
/// summs   += mw * sx                                            (Q4_1 / Q5_1 only)
/// result   = hsum(acc) + summs
/// ```
///
/// The caller (`use`) brings into scope: `core::arch::aarch64::*`, `QK`, `f16_at`, `codes`,
/// and `$idot` (`matmul_body!` is in scope from `crate::cpu`).
macro_rules! int_kernels {
    ($feat:literal, $idot:ident) => {
        int_kernels!(@dot $feat, $idot, dot_q4_0, codes::q4_0, 18, 34, 2, false);
        int_kernels!(@dot $feat, $idot, dot_q4_1, codes::q4_1, 20, 36, 4, true);
        int_kernels!(@dot $feat, $idot, dot_q5_0, codes::q5_0, 22, 34, 2, false);
        int_kernels!(@dot $feat, $idot, dot_q5_1, codes::q5_1, 24, 36, 4, true);
        int_kernels!(@dot $feat, $idot, dot_q8_0, codes::q8_0, 34, 34, 2, false);
        int_kernels!(@dot $feat, $idot, dot_q8_1, codes::q8_1, 36, 36, 4, false);
        int_kernels!(@mm $feat, mm_q4_0 => dot_q4_0, mm_q4_1 => dot_q4_1, mm_q5_0 => dot_q5_0,
                     mm_q5_1 => dot_q5_1, mm_q8_0 => dot_q8_0, mm_q8_1 => dot_q8_1);
    };
    // `$wbs`/`$xbs`: weight/activation block bytes; `$xqo`: offset of the activation's qs;
    // `$min`: add `mw * sx` (the `m` of Q4_1/Q5_1 times the cached `s` of Q8_1).
    (@dot $feat:literal, $idot:ident, $name:ident, $codes:path,
     $wbs:literal, $xbs:literal, $xqo:literal, $min:literal) => {
        /// Safety contract: the CPU has the features this is compiled with; `w` holds one row of
        /// `n` elements (whole blocks) of the weight type and each `x[k]` one row of its
        /// vec_dot_type.
        #[target_feature(enable = $feat)]
        unsafe fn $name<const T: usize>(n: usize, w: *const u8, x: [*const u8; T]) -> [f32; T] {
            let mut acc = [vdupq_n_f32(0.0); T];
            let mut summs = [0.0f32; T];
            for ib in 0..n / QK {
                // SAFETY: ib < n / QK whole blocks of $wbs bytes at w and $xbs bytes at each x[k]
                // (kernel contract).
                unsafe {
                    let wb = w.add(ib * $wbs);
                    let dw = f16_at(wb);
                    let (q0, q1) = $codes(wb);
                    for k in 0..T {
                        let xb = x[k].add(ib * $xbs);
                        let d = dw * f16_at(xb);
                        let y0 = vld1q_s8(xb.add($xqo).cast());
                        let y1 = vld1q_s8(xb.add($xqo + 16).cast());
                        let i = $idot($idot(vdupq_n_s32(0), q0, y0), q1, y1);
                        acc[k] = vfmaq_f32(acc[k], vcvtq_f32_s32(i), vdupq_n_f32(d));
                        if $min {
                            summs[k] += f16_at(wb.add(2)) * f16_at(xb.add(2));
                        }
                    }
                }
            }
            let mut out = [0.0f32; T];
            for k in 0..T {
                let s = vaddvq_f32(acc[k]);
                out[k] = if $min { s + summs[k] } else { s };
            }
            out
        }
    };
    (@mm $feat:literal, $($mm:ident => $kern:ident),*) => {$(
        /// Rows x tokens driver for one type: see `cpu::matmul_body!` for the safety contract.
        #[allow(clippy::too_many_arguments)]
        #[target_feature(enable = $feat)]
        unsafe fn $mm(
            out: &mut [f32], w: *const u8, rb: usize, rows: usize,
            x: *const u8, stride: usize, t: usize, n: usize,
        ) {
            matmul_body!($kern, out, w, rb, rows, x, stride, t, n)
        }
    )*};
}
pub(crate) use int_kernels;
