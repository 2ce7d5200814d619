//! x86_64 kernels: [`avx2::Avx2`] (AVX2 + FMA + F16C, Haswell and later),
//! [`avxvnni::AvxVnni`] (AVX2 with the VEX `vpdpbusd` of AVX-VNNI, Alder Lake / Sapphire Rapids and
//! later) and [`avx512::Avx512Vnni`] (AVX-512 F/BW/VL + VNNI, Ice Lake / Zen 4 and later).
//!
//! Kernel shape shared by both modules: a block kernel is an
//! `unsafe fn k<const T: usize>(n, w: *const u8, x: [*const u8; T]) -> [f32; T]` that dots one
//! weight row with `T` activation rows, decoding each weight block once and running the *same*
//! sequence of operations for every token as the `T = 1` instance does. So `matmul`, which calls
//! `k::<4>` for groups of four tokens and `k::<1>` for the rest, is bitwise identical to one
//! `vec_dot` per (row, token).

pub mod avx2;
mod avx2_ops;
mod avx2_packed;
mod avx2_sgemm;
pub mod avx512;
mod avx512_attention;
mod avx512_ops;
mod avx512_packed;
mod avx512_sgemm;
pub mod avxvnni;

/// The f16 at `p` (two little-endian bytes) as f32, by F16C: one instruction where `half`'s
/// conversion (built without `std`, so without run-time detection) is a software routine. The
/// packed kernels convert one activation scale per block per call; done in software it cost as
/// much as the products of 8 of a call's rows.
///
/// # Safety
/// Two readable bytes at `p`; the CPU has F16C (call it from a function that enables it).
#[inline(always)]
pub(crate) unsafe fn f16_at(p: *const u8) -> f32 {
    use core::arch::x86_64::*;
    // SAFETY: two readable bytes at p (caller); u16 unaligned read; F16C (caller).
    unsafe {
        let bits = core::ptr::read_unaligned(p.cast::<u16>());
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits))))
    }
}

/// [`crate::packed::q8_0_scale_and_sum`] with AVX2: the Q8_0 block at `xb`'s scale and the sum of
/// its 32 codes.
///
/// # Safety
/// 34 readable bytes at `xb`; the CPU has AVX2 and F16C (call it from a function that enables
/// them).
#[inline(always)]
pub(crate) unsafe fn q8_0_scale_and_sum(xb: *const u8) -> (f32, i32) {
    use core::arch::x86_64::*;
    // SAFETY: 34 readable bytes at xb (caller): the scale, then 32 codes; AVX2 and F16C (caller).
    unsafe {
        // Codes + 128 as unsigned bytes, summed in four 64-bit lanes by `vpsadbw`.
        let q = _mm256_loadu_si256(xb.add(2).cast());
        let u = _mm256_xor_si256(q, _mm256_set1_epi8(-128));
        let sad = _mm256_sad_epu8(u, _mm256_setzero_si256());
        let s = _mm_add_epi64(
            _mm256_castsi256_si128(sad),
            _mm256_extracti128_si256::<1>(sad),
        );
        let s = _mm_add_epi64(s, _mm_unpackhi_epi64(s, s));
        (f16_at(xb), _mm_cvtsi128_si32(s) - 32 * 128)
    }
}

/// `dst[c] = bias * (sum of the 4 signed codes at code + 4c)` for `c = 0..8`: the per-lane
/// corrections the packed Q8_0 and Q5_0 kernels subtract, for one block of 32 activation codes.
///
/// # Safety
/// 32 readable bytes at `code`, 8 writable `i32` at `dst` (any alignment); the CPU has AVX2
/// (call it from a function that enables it).
#[inline(always)]
pub(crate) unsafe fn quad_sums(code: *const u8, bias: i32, dst: *mut i32) {
    use core::arch::x86_64::*;
    // SAFETY: the reads and writes the caller guarantees; AVX2 (caller).
    unsafe {
        let q = _mm256_loadu_si256(code.cast());
        // Pairs (u8 1 x i8 code, exact in i16), then quads (i16 x 1, exact in i32), in order.
        let pairs = _mm256_maddubs_epi16(_mm256_set1_epi8(1), q);
        let quads = _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
        let v = _mm256_mullo_epi32(quads, _mm256_set1_epi32(bias));
        _mm256_storeu_si256(dst.cast(), v);
    }
}
