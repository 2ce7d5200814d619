//! The AVX2 + FMA f32 GEMM micro-kernel: a 6 x 16 tile of `C` in 12 ymm accumulators (6 rows x two
//! 8-lane vectors), the classic Haswell shape (BLIS `bli_sgemm_haswell_asm_6x16`): per step `p`, two
//! loads of B, six broadcasts of A, twelve FMAs; 12 + 2 + 1 of the 16 ymm registers. Drives and
//! numerics: `crate::sgemm` (each lane is one fused chain over `p`, bitwise the reference's).

#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::*;

use super::avx2::Avx2;
use crate::sgemm::{MicroKernel, Panels};

const MR: usize = 6;
const NR: usize = 16;

impl MicroKernel for Avx2 {
    const MR: usize = MR;
    const NR: usize = NR;

    unsafe fn tile(self, kc: usize, p: Panels, c: *mut f32, ldc: usize, load_c: bool) {
        // SAFETY: forwarded from the caller (operand addresses); the token proves AVX2 + FMA.
        // Rows of A one float apart (a packed or column-major panel) get the variant with constant
        // offsets; a row-major panel the one with `a_rs` (12 row pointers would not fit the GPRs).
        unsafe {
            if p.a_rs == 1 {
                tile_6x16_unit(kc, p, c, ldc, load_c)
            } else {
                tile_6x16_strided(kc, p, c, ldc, load_c)
            }
        }
    }
}

/// # Safety
/// As [`MicroKernel::tile`] with `a_rs == 1`, on a CPU with AVX2 + FMA.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile_6x16_unit(kc: usize, p: Panels, c: *mut f32, ldc: usize, load_c: bool) {
    // SAFETY: forwarded.
    unsafe { tile::<true>(kc, p, c, ldc, load_c) }
}

/// # Safety
/// As [`MicroKernel::tile`], on a CPU with AVX2 + FMA.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile_6x16_strided(kc: usize, p: Panels, c: *mut f32, ldc: usize, load_c: bool) {
    // SAFETY: forwarded.
    unsafe { tile::<false>(kc, p, c, ldc, load_c) }
}

/// The tile body, inlined into the two target-feature functions above (`UNIT`: `a_rs == 1`).
///
/// # Safety
/// As [`MicroKernel::tile`]; only called from functions with the target features.
#[inline(always)]
unsafe fn tile<const UNIT: bool>(kc: usize, p: Panels, c: *mut f32, ldc: usize, load_c: bool) {
    let a_rs = if UNIT { 1 } else { p.a_rs };
    // SAFETY: every address in this body is one the caller guarantees: A[i][k] at
    // a + i * a_rs + k * a_cs, B[k][0..NR] at b + k * b_rs, C rows i < MR of NR floats at c + i * ldc;
    // the enclosing function has the target features.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); 2]; MR];
        if load_c {
            for (i, row) in acc.iter_mut().enumerate() {
                row[0] = _mm256_loadu_ps(c.add(i * ldc));
                row[1] = _mm256_loadu_ps(c.add(i * ldc + 8));
            }
        }
        let (mut ap, mut bp) = (p.a, p.b);
        for _ in 0..kc {
            let b0 = _mm256_loadu_ps(bp);
            let b1 = _mm256_loadu_ps(bp.add(8));
            for (i, row) in acc.iter_mut().enumerate() {
                let ai = _mm256_set1_ps(*ap.add(i * a_rs));
                row[0] = _mm256_fmadd_ps(ai, b0, row[0]);
                row[1] = _mm256_fmadd_ps(ai, b1, row[1]);
            }
            ap = ap.add(p.a_cs);
            bp = bp.add(p.b_rs);
        }
        for (i, row) in acc.iter().enumerate() {
            _mm256_storeu_ps(c.add(i * ldc), row[0]);
            _mm256_storeu_ps(c.add(i * ldc + 8), row[1]);
        }
    }
}
