//! NEON + dotprod kernels (ARMv8.2 `SDOT`: Cortex-A55/A76/X1, Neoverse N1/V1, Apple M1 and
//! later), following ggml-cpu's ARM `quants.c` with `__ARM_FEATURE_DOTPROD`: the integer block
//! dot is two `SDOT`s (16 signed byte products per instruction, four per i32 lane), the rest as
//! in [`super::neon`] (see [`super::int_kernels`]). The float types and activation quantizers have
//! no use for `SDOT` and run the [`Neon`] kernels, which this token implies.
//!
//! `SDOT` is emitted with `asm!` because `vdotq_s32` is still unstable (`stdarch_neon_dotprod`);
//! the asm sits in a `#[target_feature(enable = "neon,dotprod")]` function, so the assembler
//! accepts it and it is only ever inlined into kernels compiled with the same features.

use core::arch::aarch64::*;
use core::arch::asm;

use super::neon::Neon;
use super::{codes, f16_at, int_kernels};
use crate::blocks::QK;
use crate::cpu::driver::{product_with, ProductFn};
use crate::reference::check_row;
use crate::QuantType;

/// Proof that the CPU has NEON and the dotprod extension: the only constructor is
/// [`NeonDotprod::detect`].
#[derive(Clone, Copy, Debug)]
pub struct NeonDotprod {
    neon: Neon,
}

impl NeonDotprod {
    /// `Some` iff the running CPU reports dotprod (`HWCAP_ASIMDDP`) besides NEON.
    pub fn detect() -> Option<NeonDotprod> {
        let neon = Neon::detect()?;
        crate::aarch64_feature!("dotprod").then_some(NeonDotprod { neon })
    }

    /// The NEON token this one implies.
    pub fn neon(self) -> Neon {
        self.neon
    }

    /// Same contract as [`crate::TypeInfo::vec_dot`] for `ty` (every [`QuantType`]).
    pub fn vec_dot(self, ty: QuantType, n: usize, w: &[u8], x: &[u8]) -> f32 {
        check_row(ty, n, w.len());
        check_row(ty.info().vec_dot_type, n, x.len());
        let (wp, xp) = (w.as_ptr(), [x.as_ptr()]);
        // SAFETY: `self` proves neon+dotprod (only `detect` builds it); `w` and `x` hold exactly
        // one row of `n` elements in `ty` / its vec_dot_type, checked just above.
        let [v] = unsafe {
            match ty {
                QuantType::Q4_0 => dot_q4_0::<1>(n, wp, xp),
                QuantType::Q4_1 => dot_q4_1::<1>(n, wp, xp),
                QuantType::Q5_0 => dot_q5_0::<1>(n, wp, xp),
                QuantType::Q5_1 => dot_q5_1::<1>(n, wp, xp),
                QuantType::Q8_0 => dot_q8_0::<1>(n, wp, xp),
                QuantType::Q8_1 => dot_q8_1::<1>(n, wp, xp),
                QuantType::F32 | QuantType::F16 | QuantType::BF16 => {
                    return self.neon.vec_dot(ty, n, w, x)
                }
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
            QuantType::Q4_0 => mm_q4_0,
            QuantType::Q4_1 => mm_q4_1,
            QuantType::Q5_0 => mm_q5_0,
            QuantType::Q5_1 => mm_q5_1,
            QuantType::Q8_0 => mm_q8_0,
            QuantType::Q8_1 => mm_q8_1,
            QuantType::F32 | QuantType::F16 | QuantType::BF16 => {
                return self.neon.matmul(ty, out, w, rows, x_act, act_stride, t, n)
            }
            // K-quants: `Kernels` routes them to `cpu::kquants` before calling this module.
            _ => unreachable!("{ty} is dispatched by cpu::kquants"),
        };
        // SAFETY: `self` proves neon+dotprod (only `detect` builds it), the kernels' features;
        // each computes the row-major product of its type under `ProductFn`'s contract.
        unsafe { product_with::<false>(kernel, ty, out, w, rows, x_act, act_stride, t, n) }
    }

    /// Same contract and bytes as [`crate::reference::quantize_activations`] (the NEON
    /// quantizers).
    pub fn quantize_activations(self, ty: QuantType, x: &[f32], out: &mut [u8]) {
        self.neon.quantize_activations(ty, x, out)
    }
}

/// `acc += a · b` over 16 signed bytes: `SDOT Vd.4S, Vn.16B, Vm.16B` adds the four products of
/// bytes `4l..4l+4` into lane `l`. Exact: |lane| grows by at most 4 * 2^14 per call.
#[inline]
#[target_feature(enable = "neon,dotprod")]
pub(super) fn idot_sdot(mut acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    // SAFETY: SDOT reads and writes only the three named registers; this function is compiled
    // with `dotprod`, and every caller holds a `NeonDotprod` token (or is itself compiled with
    // `neon,dotprod` and reached only through one).
    unsafe {
        asm!("sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b", acc = inout(vreg) acc, a = in(vreg) a,
             b = in(vreg) b, options(pure, nomem, nostack, preserves_flags))
    };
    acc
}

int_kernels!("neon,dotprod", idot_sdot);
