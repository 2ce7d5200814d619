//! The AVX-512 f32 GEMM micro-kernel: a 12 x 32 tile of `C` in 24 zmm accumulators (12 rows x two
//! 16-lane vectors). Per step `p` of the packed panels: two loads of B's 32 values, then for each of
//! the 12 rows a broadcast of `A[i][p]` and two FMAs. 24 independent FMA chains cover the FMA latency
//! on both Intel (2 x 512-bit ports) and Zen 4 (512-bit ops on 2 x 256-bit pipes); loads are 2 + 12
//! per 24 FMAs. Drives and numerics: `crate::sgemm` (each lane is one fused chain over `p`, exactly
//! `f32::mul_add` in order, so the result is bitwise the reference's).

#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::*;

use super::avx512::Avx512Vnni;
use crate::sgemm::{MicroKernel, Panels};

const MR: usize = 12;
const NR: usize = 32;

impl MicroKernel for Avx512Vnni {
    const MR: usize = MR;
    const NR: usize = NR;

    unsafe fn tile(self, kc: usize, p: Panels, c: *mut f32, ldc: usize, load_c: bool) {
        // SAFETY: forwarded from the caller (operand addresses); the token proves AVX-512 F.
        // Rows of A one float apart (a packed or column-major panel) get the variant with constant
        // offsets; a row-major panel the one with `a_rs` (12 row pointers would not fit the GPRs).
        unsafe {
            if p.a_rs == 1 {
                tile_12x32_unit(kc, p, c, ldc, load_c)
            } else {
                tile_12x32_strided(kc, p, c, ldc, load_c)
            }
        }
    }
}

/// # Safety
/// As [`MicroKernel::tile`] with `a_rs == 1`, on a CPU with AVX-512 F.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile_12x32_unit(kc: usize, p: Panels, c: *mut f32, ldc: usize, load_c: bool) {
    // SAFETY: forwarded.
    unsafe { tile::<true>(kc, p, c, ldc, load_c) }
}

/// # Safety
/// As [`MicroKernel::tile`], on a CPU with AVX-512 F.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile_12x32_strided(kc: usize, p: Panels, c: *mut f32, ldc: usize, load_c: bool) {
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
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        if load_c {
            for (i, row) in acc.iter_mut().enumerate() {
                row[0] = _mm512_loadu_ps(c.add(i * ldc));
                row[1] = _mm512_loadu_ps(c.add(i * ldc + 16));
            }
        }
        let (mut ap, mut bp) = (p.a, p.b);
        for _ in 0..kc {
            let b0 = _mm512_loadu_ps(bp);
            let b1 = _mm512_loadu_ps(bp.add(16));
            for (i, row) in acc.iter_mut().enumerate() {
                let ai = _mm512_set1_ps(*ap.add(i * a_rs));
                row[0] = _mm512_fmadd_ps(ai, b0, row[0]);
                row[1] = _mm512_fmadd_ps(ai, b1, row[1]);
            }
            ap = ap.add(p.a_cs);
            bp = bp.add(p.b_rs);
        }
        for (i, row) in acc.iter().enumerate() {
            _mm512_storeu_ps(c.add(i * ldc), row[0]);
            _mm512_storeu_ps(c.add(i * ldc + 16), row[1]);
        }
    }
}
