//! The AVX-512 f32 GEMM micro-kernel: a 12 x 32 tile of `C` in 24 zmm accumulators (12 rows x two
//! 16-lane vectors). Per step `p` of the packed panels: two loads of B's 32 values, then for each of
//! the 12 rows a broadcast of `A[i][p]` and two FMAs. 24 independent FMA chains cover the FMA latency
//! on both Intel (2 x 512-bit ports) and Zen 4 (512-bit ops on 2 x 256-bit pipes); loads are 2 + 12
//! per 24 FMAs. Drives and numerics: `crate::sgemm` (each lane is one fused chain over `p`, exactly
//! `f32::mul_add` in order, so the result is bitwise the reference's).

#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::*;

use super::avx512::Avx512Vnni;
use crate::sgemm::MicroKernel;

const MR: usize = 12;
const NR: usize = 32;

impl MicroKernel for Avx512Vnni {
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
        // SAFETY: forwarded from the caller (pointer ranges); the token proves AVX-512 F.
        unsafe { tile_12x32(kc, a, b, c, ldc, load_c) }
    }
}

/// # Safety
/// As [`MicroKernel::tile`] with `MR = 12`, `NR = 32`, on a CPU with AVX-512 F.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile_12x32(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    load_c: bool,
) {
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    if load_c {
        for (i, row) in acc.iter_mut().enumerate() {
            // SAFETY: row i < MR of the tile, 32 floats from its start (the caller's guarantee).
            unsafe {
                row[0] = _mm512_loadu_ps(c.add(i * ldc));
                row[1] = _mm512_loadu_ps(c.add(i * ldc + 16));
            }
        }
    }
    let (mut ap, mut bp) = (a, b);
    for _ in 0..kc {
        // SAFETY: p < kc: B's panel has kc * 32 floats, A's kc * 12 (the caller's guarantee).
        unsafe {
            let b0 = _mm512_loadu_ps(bp);
            let b1 = _mm512_loadu_ps(bp.add(16));
            for (i, row) in acc.iter_mut().enumerate() {
                let ai = _mm512_set1_ps(*ap.add(i));
                row[0] = _mm512_fmadd_ps(ai, b0, row[0]);
                row[1] = _mm512_fmadd_ps(ai, b1, row[1]);
            }
            ap = ap.add(MR);
            bp = bp.add(NR);
        }
    }
    for (i, row) in acc.iter().enumerate() {
        // SAFETY: as for the loads of C.
        unsafe {
            _mm512_storeu_ps(c.add(i * ldc), row[0]);
            _mm512_storeu_ps(c.add(i * ldc + 16), row[1]);
        }
    }
}
