//! The AVX2 + FMA f32 GEMM micro-kernel: a 6 x 16 tile of `C` in 12 ymm accumulators (6 rows x two
//! 8-lane vectors), the classic Haswell shape (BLIS `bli_sgemm_haswell_asm_6x16`): per step `p`, two
//! loads of B, six broadcasts of A, twelve FMAs; 12 + 2 + 1 of the 16 ymm registers. Drives and
//! numerics: `crate::sgemm` (each lane is one fused chain over `p`, bitwise the reference's).

#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::*;

use super::avx2::Avx2;
use crate::sgemm::MicroKernel;

const MR: usize = 6;
const NR: usize = 16;

impl MicroKernel for Avx2 {
    const MR: usize = MR;
    const NR: usize = NR;

    unsafe fn tile(
        self,
        kc: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        load_c: bool,
    ) {
        // SAFETY: forwarded from the caller (pointer ranges); the token proves AVX2 + FMA.
        unsafe { tile_6x16(kc, a, b, c, ldc, load_c) }
    }
}

/// # Safety
/// As [`MicroKernel::tile`] with `MR = 6`, `NR = 16`, on a CPU with AVX2 and FMA.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile_6x16(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    load_c: bool,
) {
    let mut acc = [[_mm256_setzero_ps(); 2]; MR];
    if load_c {
        for (i, row) in acc.iter_mut().enumerate() {
            // SAFETY: row i < MR of the tile, 16 floats from its start (the caller's guarantee).
            unsafe {
                row[0] = _mm256_loadu_ps(c.add(i * ldc));
                row[1] = _mm256_loadu_ps(c.add(i * ldc + 8));
            }
        }
    }
    let (mut ap, mut bp) = (a, b);
    for _ in 0..kc {
        // SAFETY: p < kc: B's panel has kc * 16 floats, A's kc * 6 (the caller's guarantee).
        unsafe {
            let b0 = _mm256_loadu_ps(bp);
            let b1 = _mm256_loadu_ps(bp.add(8));
            for (i, row) in acc.iter_mut().enumerate() {
                let ai = _mm256_broadcast_ss(&*ap.add(i));
                row[0] = _mm256_fmadd_ps(ai, b0, row[0]);
                row[1] = _mm256_fmadd_ps(ai, b1, row[1]);
            }
            ap = ap.add(MR);
            bp = bp.add(NR);
        }
    }
    for (i, row) in acc.iter().enumerate() {
        // SAFETY: as for the loads of C.
        unsafe {
            _mm256_storeu_ps(c.add(i * ldc), row[0]);
            _mm256_storeu_ps(c.add(i * ldc + 8), row[1]);
        }
    }
}
