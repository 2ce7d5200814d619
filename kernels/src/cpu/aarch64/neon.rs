//! Advanced SIMD (NEON) kernels, baseline on every AArch64 core, following ggml-cpu's ARM
//! `quants.c` without `__ARM_FEATURE_DOTPROD` and its `GGML_F32x4` / `GGML_F16x4` loops:
//!
//! - quantized types: the integer block dot is `vmull_s8` (i8 x i8 -> i16, exact even for
//!   -128 * -128) and `vpadalq_s16` (pairwise add into i32), one f32 FMA per block into a 4-lane
//!   accumulator (see [`super::int_kernels`]);
//! - F32 / F16 / BF16: 4 chains of 4 f32 lanes with `vfmaq_f32`, f16 widened by `FCVTL`, bf16 by a
//!   16-bit shift, a scalar tail;
//! - activation quantizers Q8_0 / Q8_1 / F16 byte-identical to [`crate::reference`], which models
//!   ggml's *x86* `quantize_row_q8_*` (ties to even via `FCVTNS`; `maxps` NaN semantics and
//!   x86's out-of-range integer `i32::MIN` reproduced lane for lane).
//!
//! The f32 sums are reassociated (lanes, chains, then a tree), so `vec_dot` agrees with the
//! reference to rounding; the integer part of every block dot is exact.

use core::arch::aarch64::*;
use core::arch::asm;

use half::f16;

use super::{codes, f16_at, int_kernels};
use crate::blocks::QK;
use crate::cpu::driver::{product_with, ProductFn};
use crate::reference::{self, check_row, maxps};
use crate::QuantType;

/// Proof that the CPU has Advanced SIMD (always true on AArch64 Linux): the only constructor is
/// [`Neon::detect`].
#[derive(Clone, Copy, Debug)]
pub struct Neon {
    _proof: (),
}

impl Neon {
    /// `Some` iff the CPU has NEON, which every AArch64 core running Linux does (it is part of
    /// the `aarch64-unknown-linux-gnu` baseline).
    pub fn detect() -> Option<Neon> {
        crate::aarch64_feature!("neon").then_some(Neon { _proof: () })
    }

    /// Same contract as [`crate::TypeInfo::vec_dot`] for `ty` (every [`QuantType`]).
    pub fn vec_dot(self, ty: QuantType, n: usize, w: &[u8], x: &[u8]) -> f32 {
        check_row(ty, n, w.len());
        check_row(ty.info().vec_dot_type, n, x.len());
        let (w, x) = (w.as_ptr(), [x.as_ptr()]);
        // SAFETY: `self` proves NEON (only `detect` builds it); `w` and `x` hold exactly one row of
        // `n` elements in `ty` / its vec_dot_type, checked just above.
        let [v] = unsafe {
            match ty {
                QuantType::F32 => dot_f32::<1>(n, w, x),
                QuantType::F16 => dot_f16::<1>(n, w, x),
                QuantType::BF16 => dot_bf16::<1>(n, w, x),
                QuantType::Q4_0 => dot_q4_0::<1>(n, w, x),
                QuantType::Q4_1 => dot_q4_1::<1>(n, w, x),
                QuantType::Q5_0 => dot_q5_0::<1>(n, w, x),
                QuantType::Q5_1 => dot_q5_1::<1>(n, w, x),
                QuantType::Q8_0 => dot_q8_0::<1>(n, w, x),
                QuantType::Q8_1 => dot_q8_1::<1>(n, w, x),
                // K-quants: `Kernels` routes them to `cpu::kquants` before calling this module.
                _ => unreachable!("{ty} is dispatched by cpu::kquants"),
            }
        };
        v
    }

    /// `out[j * rows + r] = vec_dot(ty, n, W[r], X[j])`: see [`crate::Kernels::matmul`].
    #[allow(clippy::too_many_arguments)]
    pub fn matmul(
        self,
        ty: QuantType,
        out: &mut [f32],
        w: &[u8],
        rows: usize,
        x_act: &[u8],
        act_stride: usize,
        t: usize,
        n: usize,
    ) {
        let kernel: ProductFn = match ty {
            QuantType::F32 => mm_f32,
            QuantType::F16 => mm_f16,
            QuantType::BF16 => mm_bf16,
            QuantType::Q4_0 => mm_q4_0,
            QuantType::Q4_1 => mm_q4_1,
            QuantType::Q5_0 => mm_q5_0,
            QuantType::Q5_1 => mm_q5_1,
            QuantType::Q8_0 => mm_q8_0,
            QuantType::Q8_1 => mm_q8_1,
            // K-quants: `Kernels` routes them to `cpu::kquants` before calling this module.
            _ => unreachable!("{ty} is dispatched by cpu::kquants"),
        };
        // SAFETY: `self` proves NEON (only `detect` builds it), the kernels' features; each
        // computes the row-major product of its type under `ProductFn`'s contract.
        unsafe { product_with::<false>(kernel, ty, out, w, rows, x_act, act_stride, t, n) }
    }

    /// Same contract and bytes as [`crate::reference::quantize_activations`]: Q8_0, Q8_1 and F16
    /// are vectorized, F32 and BF16 use the reference.
    pub fn quantize_activations(self, ty: QuantType, x: &[f32], out: &mut [u8]) {
        check_row(ty, x.len(), out.len());
        match ty {
            // SAFETY: `self` proves NEON; out is exactly row_bytes(x.len()) (checked above).
            QuantType::Q8_0 => unsafe { quantize_q8::<false>(x, out) },
            // SAFETY: as above.
            QuantType::Q8_1 => unsafe { quantize_q8::<true>(x, out) },
            // SAFETY: as above.
            QuantType::F16 => unsafe { quantize_f16(x, out) },
            _ => reference::quantize_activations(ty, x, out),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Quantized types.

/// `acc += a · b` over 16 signed bytes without SDOT (ggml's `ggml_vdotq_s32` fallback): products
/// widened to i16 (`SMULL`/`SMULL2`, exact: |a * b| <= 2^14) and pairwise added into i32.
#[inline]
#[target_feature(enable = "neon")]
fn idot_neon(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    let acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b)));
    vpadalq_s16(acc, vmull_high_s8(a, b))
}

int_kernels!("neon", idot_neon);

// ---------------------------------------------------------------------------------------------
// Float types.

/// Float dot products: 4 lanes x 4 independent FMA chains per token over 16-element steps, then
/// 4-element steps into chain 0, then a scalar f32 tail (`n % 4` elements). `$load4(p, i)` widens
/// elements `i..i+4` at `p` to f32; `$load1(p, i)` widens element `i`.
macro_rules! dot_float {
    ($name:ident, $load4:ident, $load1:ident) => {
        /// Safety contract: the CPU has NEON; `w` and each `x[k]` hold `n` elements.
        #[target_feature(enable = "neon")]
        unsafe fn $name<const T: usize>(n: usize, w: *const u8, x: [*const u8; T]) -> [f32; T] {
            let mut acc = [[vdupq_n_f32(0.0); 4]; T];
            let mut i = 0;
            while i + 16 <= n {
                for u in 0..4 {
                    // SAFETY: i + 4u + 4 <= n and w holds n elements (kernel contract).
                    let wv = unsafe { $load4(w, i + 4 * u) };
                    for k in 0..T {
                        // SAFETY: as for w; x[k] holds n elements.
                        let xv = unsafe { $load4(x[k], i + 4 * u) };
                        acc[k][u] = vfmaq_f32(acc[k][u], wv, xv);
                    }
                }
                i += 16;
            }
            while i + 4 <= n {
                // SAFETY: i + 4 <= n and w holds n elements (kernel contract).
                let wv = unsafe { $load4(w, i) };
                for k in 0..T {
                    // SAFETY: as for w; x[k] holds n elements.
                    let xv = unsafe { $load4(x[k], i) };
                    acc[k][0] = vfmaq_f32(acc[k][0], wv, xv);
                }
                i += 4;
            }
            let mut out = [0.0f32; T];
            for k in 0..T {
                let a = &acc[k];
                let s = vaddq_f32(vaddq_f32(a[0], a[1]), vaddq_f32(a[2], a[3]));
                let mut tail = 0.0f32;
                for j in i..n {
                    // SAFETY: j < n and both operands hold n elements (kernel contract).
                    tail += unsafe { $load1(w, j) * $load1(x[k], j) };
                }
                out[k] = vaddvq_f32(s) + tail;
            }
            out
        }
    };
}

/// # Safety
/// Elements `i..i+4` (16 bytes) readable at `p`.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn f32x4(p: *const u8, i: usize) -> float32x4_t {
    // SAFETY: the caller guarantees 16 readable bytes at p + 4i; byte loads need no alignment.
    vreinterpretq_f32_u8(unsafe { vld1q_u8(p.add(4 * i)) })
}

/// # Safety
/// Element `i` readable at `p`.
#[inline]
unsafe fn f32x1(p: *const u8, i: usize) -> f32 {
    // SAFETY: the caller guarantees 4 readable bytes at p + 4i.
    unsafe { core::ptr::read_unaligned(p.add(4 * i).cast::<f32>()) }
}

/// Four f16 (as bits) -> f32 with `FCVTL` (exact).
#[inline]
#[target_feature(enable = "neon")]
fn cvt_f16x4(h: uint16x4_t) -> float32x4_t {
    let f: float32x4_t;
    // SAFETY: FCVTL reads and writes only the two named registers; it is base Advanced SIMD.
    unsafe {
        asm!("fcvtl {f:v}.4s, {h:v}.4h", f = lateout(vreg) f, h = in(vreg) h,
             options(pure, nomem, nostack, preserves_flags))
    };
    f
}

/// Four f32 -> f16 bits with `FCVTN`: round to nearest even (the FPCR default Rust assumes),
/// NaN quieted with its top payload bits kept, exactly as `half::f16::from_f32` and F16C's
/// `vcvtps2ph` do.
#[inline]
#[target_feature(enable = "neon")]
fn cvt_f32x4_f16(f: float32x4_t) -> uint16x4_t {
    let h: uint16x4_t;
    // SAFETY: FCVTN reads and writes only the two named registers; it is base Advanced SIMD.
    unsafe {
        asm!("fcvtn {h:v}.4h, {f:v}.4s", h = lateout(vreg) h, f = in(vreg) f,
             options(pure, nomem, nostack, preserves_flags))
    };
    h
}

/// # Safety
/// Elements `i..i+4` (8 bytes) readable at `p`.
#[inline]
#[target_feature(enable = "neon")]
pub(super) unsafe fn f16x4(p: *const u8, i: usize) -> float32x4_t {
    // SAFETY: the caller guarantees 8 readable bytes at p + 2i; byte loads need no alignment.
    cvt_f16x4(vreinterpret_u16_u8(unsafe { vld1_u8(p.add(2 * i)) }))
}

/// # Safety
/// Element `i` readable at `p`.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn f16x1(p: *const u8, i: usize) -> f32 {
    // SAFETY: the caller guarantees 2 readable bytes at p + 2i.
    unsafe { f16_at(p.add(2 * i)) }
}

/// # Safety
/// Elements `i..i+4` (8 bytes) readable at `p`.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn bf16x4(p: *const u8, i: usize) -> float32x4_t {
    // SAFETY: the caller guarantees 8 readable bytes at p + 2i; byte loads need no alignment.
    let h = vreinterpret_u16_u8(unsafe { vld1_u8(p.add(2 * i)) });
    vreinterpretq_f32_u32(vshll_n_u16::<16>(h))
}

/// # Safety
/// Element `i` readable at `p`.
#[inline]
unsafe fn bf16x1(p: *const u8, i: usize) -> f32 {
    // SAFETY: the caller guarantees 2 readable bytes at p + 2i.
    f32::from_bits((unsafe { core::ptr::read_unaligned(p.add(2 * i).cast::<u16>()) } as u32) << 16)
}

dot_float!(dot_f32, f32x4, f32x1);
dot_float!(dot_f16, f16x4, f16x1);
dot_float!(dot_bf16, bf16x4, bf16x1);

macro_rules! matmul_fns {
    ($($mm:ident => $kern:ident),* $(,)?) => {$(
        /// Rows x tokens driver for one type: see `cpu::matmul_body!` for the safety contract.
        #[allow(clippy::too_many_arguments)]
        #[target_feature(enable = "neon")]
        unsafe fn $mm(
            out: &mut [f32], w: *const u8, rb: usize, rows: usize,
            x: *const u8, stride: usize, t: usize, n: usize,
        ) {
            matmul_body!($kern, out, w, rb, rows, x, stride, t, n)
        }
    )*};
}
matmul_fns!(mm_f32 => dot_f32, mm_f16 => dot_f16, mm_bf16 => dot_bf16);

// ---------------------------------------------------------------------------------------------
// Activation quantizers.

/// `maxps` lane semantics on four lanes: `a` where `a > b`, else `b` (so a NaN in either operand
/// gives `b`), unlike NEON's `FMAX` (NaN wins) and `FMAXNM` (the number wins).
#[inline]
#[target_feature(enable = "neon")]
fn maxps4(a: float32x4_t, b: float32x4_t) -> float32x4_t {
    vbslq_f32(vcgtq_f32(a, b), a, b)
}

/// x86 `cvtps_epi32` after rounding to nearest even: `FCVTNS`, except that NaN and values outside
/// `[-2^31, 2^31)` give `i32::MIN` (x86's "integer indefinite") where `FCVTNS` gives 0 or
/// saturates.
#[inline]
#[target_feature(enable = "neon")]
fn cvtnps_epi32(v: float32x4_t) -> int32x4_t {
    let in_range = vandq_u32(
        vcgeq_f32(v, vdupq_n_f32(-2_147_483_648.0)),
        vcltq_f32(v, vdupq_n_f32(2_147_483_648.0)),
    );
    vbslq_s32(in_range, vcvtnq_s32_f32(v), vdupq_n_s32(i32::MIN))
}

/// ggml-cpu's x86 `quantize_row_q8_0` (`Q81 = false`) / `quantize_row_q8_1` (`Q81 = true`) on
/// NEON, lane for lane as [`crate::reference::quantize_row_q8_0_x86`] models it:
///
/// ```text
/// v[0..8]  = the block as eight f32x4; the x86 ymm lanes 0..4 are v[0,2,4,6], lanes 4..8 v[1,3,5,7]
/// m4       = maxps(maxps-chain of |v[1,3,5,7]|, maxps-chain of |v[0,2,4,6]|)   (_mm_max_ps(hi, lo))
/// amax     = maxps(maxps(m4[0], m4[2]), maxps(m4[1], m4[3]))
/// q32      = cvtps_epi32(round_even(v * (127 / amax)))        (0 multiplier when amax == 0)
/// qs       = saturate to i8 (SQXTN twice); isum = wrapping sum of q32 (for Q8_1's s)
/// ```
///
/// # Safety
/// The CPU has NEON; `out.len() == ty.row_bytes(x.len())` (so x is whole blocks).
#[target_feature(enable = "neon")]
unsafe fn quantize_q8<const Q81: bool>(x: &[f32], out: &mut [u8]) {
    let (bs, qo) = if Q81 { (36, 4) } else { (34, 2) };
    debug_assert_eq!(out.len(), x.len() / QK * bs);
    for (xb, ob) in x.chunks_exact(QK).zip(out.chunks_exact_mut(bs)) {
        let p = xb.as_ptr().cast::<u8>();
        let mut v = [vdupq_n_f32(0.0); 8];
        for (i, v) in v.iter_mut().enumerate() {
            // SAFETY: xb has QK = 32 f32s = 128 bytes, so p..p+16(i+1) is readable.
            *v = unsafe { f32x4(p, 4 * i) };
        }
        let lo = maxps4(vabsq_f32(v[0]), vabsq_f32(v[2]));
        let lo = maxps4(maxps4(lo, vabsq_f32(v[4])), vabsq_f32(v[6]));
        let hi = maxps4(vabsq_f32(v[1]), vabsq_f32(v[3]));
        let hi = maxps4(maxps4(hi, vabsq_f32(v[5])), vabsq_f32(v[7]));
        let m4 = maxps4(hi, lo);
        let m02 = maxps(vgetq_lane_f32::<0>(m4), vgetq_lane_f32::<2>(m4));
        let m13 = maxps(vgetq_lane_f32::<1>(m4), vgetq_lane_f32::<3>(m4));
        let amax = maxps(m02, m13);

        let d = amax / 127.0;
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        let mul = vdupq_n_f32(id);
        let q: [int32x4_t; 8] = core::array::from_fn(|i| cvtnps_epi32(vmulq_f32(v[i], mul)));
        let half16 = |a: usize| {
            let lo = vcombine_s16(vqmovn_s32(q[a]), vqmovn_s32(q[a + 1]));
            let hi = vcombine_s16(vqmovn_s32(q[a + 2]), vqmovn_s32(q[a + 3]));
            vcombine_s8(vqmovn_s16(lo), vqmovn_s16(hi))
        };
        let (q0, q1) = (half16(0), half16(4));
        // SAFETY: ob has bs bytes and qo + 32 == bs.
        unsafe {
            vst1q_s8(ob.as_mut_ptr().add(qo).cast(), q0);
            vst1q_s8(ob.as_mut_ptr().add(qo + 16).cast(), q1);
        }
        ob[0..2].copy_from_slice(&f16::from_f32(d).to_bits().to_le_bytes());
        if Q81 {
            let s4 = vaddq_s32(
                vaddq_s32(vaddq_s32(q[0], q[1]), vaddq_s32(q[2], q[3])),
                vaddq_s32(vaddq_s32(q[4], q[5]), vaddq_s32(q[6], q[7])),
            );
            let isum = vaddvq_s32(s4); // ADDV wraps, as x86's hsum_i32_8 does
            let s = f16::from_f32(d * isum as f32);
            ob[2..4].copy_from_slice(&s.to_bits().to_le_bytes());
        }
    }
}

/// f32 -> F16 with `FCVTN` (round to nearest even, as `f16::from_f32`), 4 at a time, then a
/// scalar tail.
///
/// # Safety
/// The CPU has NEON; `out.len() == 2 * x.len()`.
#[target_feature(enable = "neon")]
unsafe fn quantize_f16(x: &[f32], out: &mut [u8]) {
    debug_assert_eq!(out.len(), 2 * x.len());
    let mut xs = x.chunks_exact(4);
    let mut os = out.chunks_exact_mut(8);
    for (xc, oc) in (&mut xs).zip(&mut os) {
        // SAFETY: xc has 4 f32s (16 bytes) and oc 8 bytes; byte loads/stores need no alignment.
        unsafe {
            let h = cvt_f32x4_f16(f32x4(xc.as_ptr().cast(), 0));
            vst1_u8(oc.as_mut_ptr(), vreinterpret_u8_u16(h));
        }
    }
    for (v, o) in xs
        .remainder()
        .iter()
        .zip(os.into_remainder().chunks_exact_mut(2))
    {
        o.copy_from_slice(&f16::from_f32(*v).to_bits().to_le_bytes());
    }
}
