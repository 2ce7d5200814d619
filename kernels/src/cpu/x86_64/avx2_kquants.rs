//! AVX2 dot products of Q2_K, Q3_K, Q4_K, Q5_K and Q6_K weights with Q8_K activations, **bitwise
//! equal** to [`crate::reference`]: Q2_K..Q5_K to ggml's `ggml_vec_dot_q*_K_q8_K_generic`; Q6_K to
//! ggml's x86 order (`dot_q6_k`: `ggml_vec_dot_q6_K_q8_K`'s AVX2 code, instruction for instruction,
//! = `reference::vec_dot_q6_k_q8_k_x86`; `dot_q6_k_tiled`: the tiled matmul's per-block order,
//! = `reference::vec_dot_q6_k_q8_k_tiled`), which is what llama.cpp computes on x86.
//!
//! The generic order, for the other four types:
//!
//! The generic code keeps eight i32 lanes per super-block, lane `l` summing the scaled products of
//! the elements `e ≡ l (mod 8)`, then does `sums[l] += d * (float)lane[l]` in f32 and adds the
//! eight sums in order at the very end. Integer sums are exact in any order, so this module only
//! has to keep each product in its lane:
//!
//! ```text
//! per 16 elements e0..e0+16 (e0 a multiple of 16; one Q6_K scale, half a Q4_K scale):
//!     q16 = widen(unpacked codes), y16 = widen(activations)        16 x i16
//!     p   = q16 * y16                                              exact: |p| <= 15*128, 32*128
//!     s   = widen_i32(p[0..8]) + widen_i32(p[8..16])               lanes 0..7 = e mod 8
//! lanes  += s * scale                                              (vpmulld; Q4_K: per 32 elements)
//! sums    = sums + d * cvt_f32(lanes)                              vmulps then vaddps: no FMA
//! ```
//!
//! and the per-block `sumf -= dmin * sum(bsums * mins)` (Q4_K, Q5_K) and the final ordered sum are
//! the reference's scalar code. Q2_K's generic code has no lanes: one exact i32 sum per block, then
//! `sumf += dall * isum - dmin * summs`; here the lanes are summed to that i32.

use core::arch::x86_64::*;

#[cfg(not(feature = "std"))]
use crate::math::FloatExt;

use half::f16;

use crate::blocks::{BlockQ2_K, BlockQ3_K, BlockQ4_K, BlockQ5_K, BlockQ6_K, BlockQ8_K, QK_K};

const Q8K_QS: usize = 4;
const Q8K_BSUMS: usize = 4 + QK_K;

#[inline]
fn f16_at(p: &[u8], at: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([p[at], p[at + 1]])).to_f32()
}

#[inline]
fn f32_at(p: &[u8], at: usize) -> f32 {
    f32::from_le_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]])
}

/// `lanes + scale * (widen(p[0..8]) + widen(p[8..16]))` for 16 i16 products `p`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn lanes_add(lanes: __m256i, p: __m256i, scale: i32) -> __m256i {
    let lo = _mm256_cvtepi16_epi32(_mm256_castsi256_si128(p));
    let hi = _mm256_cvtepi16_epi32(_mm256_extracti128_si256::<1>(p));
    _mm256_add_epi32(
        lanes,
        _mm256_mullo_epi32(_mm256_add_epi32(lo, hi), _mm256_set1_epi32(scale)),
    )
}

/// 16 activations at `y` widened to i16.
///
/// # Safety
/// 16 readable bytes at `y`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load_y16(y: *const u8) -> __m256i {
    // SAFETY: the caller guarantees 16 readable bytes; loadu accepts any alignment.
    _mm256_cvtepi8_epi16(unsafe { _mm_loadu_si128(y.cast()) })
}

/// `sums + d * cvt(lanes)`, as two roundings.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn sums_add(sums: __m256, d: f32, lanes: __m256i) -> __m256 {
    _mm256_add_ps(
        sums,
        _mm256_mul_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(lanes)),
    )
}

/// `sumf + sums[0] + ... + sums[7]`, left to right.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn ordered_sum(sumf: f32, sums: __m256) -> f32 {
    let mut a = [0f32; 8];
    // SAFETY: `a` holds 8 f32; storeu accepts any alignment.
    unsafe { _mm256_storeu_ps(a.as_mut_ptr(), sums) };
    a.iter().fold(sumf, |s, &v| s + v)
}

/// ggml `get_scale_min_k4` for all 8 sub-blocks.
#[inline]
fn scales_mins(s: &[u8]) -> ([u8; 8], [u8; 8]) {
    let mut sc = [0u8; 8];
    let mut m = [0u8; 8];
    for j in 0..8 {
        if j < 4 {
            sc[j] = s[j] & 63;
            m[j] = s[j + 4] & 63;
        } else {
            sc[j] = (s[j + 4] & 0xf) | ((s[j - 4] >> 6) << 4);
            m[j] = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
        }
    }
    (sc, m)
}

/// Q4_K · Q8_K in the order of ggml's x86 repacked Q4_K kernels (`ggml_gemv_q4_K_8x8_q8_K` and
/// `ggml_gemm_q4_K_8x8_q8_K`, which llama.cpp runs on x86 for every Q4_K matrix whose row count is a
/// multiple of 8): per super-block the exact integers `isum = sum_j scale_j * dot_j` and
/// `imin = sum_j min_j * (bsums[2j] + bsums[2j+1])`, then `acc = fma(isum, x.d * y.d, acc)`,
/// `acc_min = fma(imin, x.dmin * y.d, acc_min)`, and `acc - acc_min` at the end
/// (= `reference::vec_dot_q4_k_q8_k_repack`).
///
/// # Safety
/// The CPU has AVX2, FMA and F16C; `x` holds as many Q8_K blocks as `w` holds Q4_K blocks.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_q4_k_repack(w: &[u8], x: &[u8]) -> f32 {
    debug_assert_eq!(x.len() / BlockQ8_K::SIZE, w.len() / BlockQ4_K::SIZE);
    // SAFETY: forwarded caller guarantees; Q4_K has no high bits.
    unsafe { dot_k4::<false, GEMV>(w, x) }
}

/// Q4_K · Q8_K in the order of `ggml_gemm_q4_K_8x8_q8_K` (the tokens of whole groups of four):
/// as [`dot_q4_k_repack`] with one FMA per 64 elements instead of per super-block
/// (= `reference::vec_dot_q4_k_q8_k_repack_gemm`).
///
/// # Safety
/// As [`dot_q4_k_repack`].
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_q4_k_repack_gemm(w: &[u8], x: &[u8]) -> f32 {
    debug_assert_eq!(x.len() / BlockQ8_K::SIZE, w.len() / BlockQ4_K::SIZE);
    // SAFETY: forwarded caller guarantees; Q4_K has no high bits.
    unsafe { dot_k4::<false, GEMM>(w, x) }
}

/// [`dot_k4`] float orders.
const GENERIC: u8 = 0;
const GEMV: u8 = 1;
const GEMM: u8 = 2;

/// Q5_K · Q8_K over `w.len() / 176` super-blocks.
///
/// # Safety
/// The CPU has AVX2, FMA and F16C; `x` holds as many Q8_K blocks as `w` holds Q5_K blocks.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_q5_k(w: &[u8], x: &[u8]) -> f32 {
    debug_assert_eq!(x.len() / BlockQ8_K::SIZE, w.len() / BlockQ5_K::SIZE);
    // SAFETY: forwarded caller guarantees.
    unsafe { dot_k4::<true, GENERIC>(w, x) }
}

/// The Q4_K (`Q5 = false`) / Q5_K (`Q5 = true`) body: same scales and minimums at bytes 4..16,
/// quants at 16 (Q4_K) or 48 (Q5_K, high bits `qh` at 16..48). `MODE`: the float order, generic
/// ([`GENERIC`]), of ggml's repacked Q4_K gemv ([`GEMV`], [`dot_q4_k_repack`]) or gemm ([`GEMM`],
/// [`dot_q4_k_repack_gemm`]); the integer lanes are the same.
///
/// # Safety
/// As [`dot_q4_k_repack`] / [`dot_q5_k`].
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_k4<const Q5: bool, const MODE: u8>(w: &[u8], x: &[u8]) -> f32 {
    let bs = if Q5 { BlockQ5_K::SIZE } else { BlockQ4_K::SIZE };
    let mask = _mm_set1_epi8(0x0f);
    let one = _mm_set1_epi8(1);
    let mut sums = _mm256_setzero_ps();
    let mut sumf = 0.0f32;
    let (mut acc, mut acc_min) = (0.0f32, 0.0f32); // GEMV, GEMM
    for (bw, bx) in w.chunks_exact(bs).zip(x.chunks_exact(BlockQ8_K::SIZE)) {
        let (sc, mins) = scales_mins(&bw[4..16]);
        let qs = bw[if Q5 { 48 } else { 16 }..].as_ptr();
        let qh = bw[16..].as_ptr();
        let y = bx[Q8K_QS..].as_ptr();
        let dy = f32_at(bx, 0);
        let (dd, dm) = (f16_at(bw, 0) * dy, f16_at(bw, 2) * dy);
        let mut lanes = _mm256_setzero_si256();
        for c in 0..4 {
            for half in 0..2 {
                // 16-byte pieces of qs[32c..32c+32]: low nibbles are elements 64c + i, high
                // nibbles 64c + 32 + i (i < 32); for Q5_K bit 4 is qh[i] bit 2c (low), 2c+1 (high).
                // SAFETY: qs has 128 bytes (a whole block, checked by the caller's lengths);
                // 32c + 16half + 16 <= 128.
                let raw = unsafe { _mm_loadu_si128(qs.add(32 * c + 16 * half).cast()) };
                let mut lo8 = _mm_and_si128(raw, mask);
                let mut hi8 = _mm_and_si128(_mm_srli_epi16::<4>(raw), mask);
                if Q5 {
                    // SAFETY: qh has 32 bytes; 16half + 16 <= 32.
                    let h = unsafe { _mm_loadu_si128(qh.add(16 * half).cast()) };
                    let bit = |s: i32| _mm_and_si128(_mm_srl_epi16(h, _mm_cvtsi32_si128(s)), one);
                    lo8 = _mm_or_si128(lo8, _mm_slli_epi16::<4>(bit(2 * c as i32)));
                    hi8 = _mm_or_si128(hi8, _mm_slli_epi16::<4>(bit(2 * c as i32 + 1)));
                }
                let lo = _mm256_cvtepu8_epi16(lo8);
                let hi = _mm256_cvtepu8_epi16(hi8);
                let e_lo = 64 * c + 16 * half;
                let e_hi = e_lo + 32;
                // SAFETY: y has 256 bytes; e + 16 <= 256.
                let (y_lo, y_hi) = unsafe { (load_y16(y.add(e_lo)), load_y16(y.add(e_hi))) };
                lanes = lanes_add(lanes, _mm256_mullo_epi16(lo, y_lo), sc[2 * c] as i32);
                lanes = lanes_add(lanes, _mm256_mullo_epi16(hi, y_hi), sc[2 * c + 1] as i32);
            }
            if MODE == GEMM {
                // One FMA per 64 elements (sub-blocks 2c, 2c + 1), as ggml's repacked gemm.
                let imin: i32 = (4 * c..4 * c + 4)
                    .map(|j| bsum(bx, j) * mins[j / 2] as i32)
                    .sum();
                acc = (hsum_i32_8(lanes) as f32).mul_add(dd, acc);
                acc_min = (imin as f32).mul_add(dm, acc_min);
                lanes = _mm256_setzero_si256();
            }
        }
        let sumi: i32 = (0..16).map(|j| bsum(bx, j) * mins[j / 2] as i32).sum();
        match MODE {
            GEMV => {
                acc = (hsum_i32_8(lanes) as f32).mul_add(dd, acc);
                acc_min = (sumi as f32).mul_add(dm, acc_min);
            }
            GEMM => {}
            _ => {
                sums = sums_add(sums, dd, lanes);
                sumf -= dm * sumi as f32;
            }
        }
    }
    if MODE != GENERIC {
        acc - acc_min
    } else {
        ordered_sum(sumf, sums)
    }
}

/// `bsums[j]` of a Q8_K block.
#[inline]
fn bsum(bx: &[u8], j: usize) -> i32 {
    i16::from_le_bytes([bx[Q8K_BSUMS + 2 * j], bx[Q8K_BSUMS + 2 * j + 1]]) as i32
}

/// Q3_K · Q8_K over `w.len() / 110` super-blocks.
///
/// # Safety
/// The CPU has AVX2, FMA and F16C; `x` holds as many Q8_K blocks as `w` holds Q3_K blocks.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_q3_k(w: &[u8], x: &[u8]) -> f32 {
    debug_assert_eq!(x.len() / BlockQ8_K::SIZE, w.len() / BlockQ3_K::SIZE);
    let m2 = _mm_set1_epi8(0x03);
    let one = _mm_set1_epi8(1);
    let four = _mm_set1_epi8(4);
    let mut sums = _mm256_setzero_ps();
    for (bw, bx) in w
        .chunks_exact(BlockQ3_K::SIZE)
        .zip(x.chunks_exact(BlockQ8_K::SIZE))
    {
        let (hm, qs, s) = (bw.as_ptr(), bw[32..].as_ptr(), &bw[96..108]);
        let y = bx[Q8K_QS..].as_ptr();
        let mut lanes = _mm256_setzero_si256();
        for h in 0..2 {
            for k in 0..4 {
                for i0 in [0usize, 16] {
                    // Element 128h + 32k + i: low bits (qs[32h + i] >> 2k) & 3, bit 2 in hmask[i]
                    // bit 4h + k; q = low + 4 * bit - 4.
                    // SAFETY: qs has 64 bytes (32h + i0 + 16 <= 64), hmask 32 (i0 + 16 <= 32).
                    let (l, b) = unsafe {
                        (
                            _mm_loadu_si128(qs.add(32 * h + i0).cast()),
                            _mm_loadu_si128(hm.add(i0).cast()),
                        )
                    };
                    let low = _mm_and_si128(_mm_srl_epi16(l, _mm_cvtsi32_si128(2 * k as i32)), m2);
                    let bit =
                        _mm_and_si128(_mm_srl_epi16(b, _mm_cvtsi32_si128((4 * h + k) as i32)), one);
                    let q = _mm_sub_epi8(_mm_or_si128(low, _mm_slli_epi16::<2>(bit)), four);
                    let e = 128 * h + 32 * k + i0;
                    // SAFETY: y has 256 bytes; e + 16 <= 256.
                    let y16 = unsafe { load_y16(y.add(e)) };
                    let p = _mm256_mullo_epi16(_mm256_cvtepi8_epi16(q), y16);
                    lanes = lanes_add(lanes, p, scale_q3(e / 16, s));
                }
            }
        }
        let d = f16_at(bw, 108) * f32_at(bx, 0);
        sums = sums_add(sums, d, lanes);
    }
    ordered_sum(0.0, sums)
}

/// The 6-bit scale of 16-element sub-block `j` of a Q3_K block, minus 32.
#[inline]
fn scale_q3(j: usize, s: &[u8]) -> i32 {
    let low = if j < 8 { s[j] & 0xf } else { s[j - 8] >> 4 };
    let high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
    (low | (high << 4)) as i32 - 32
}

/// Q2_K · Q8_K over `w.len() / 84` super-blocks.
///
/// # Safety
/// The CPU has AVX2, FMA and F16C; `x` holds as many Q8_K blocks as `w` holds Q2_K blocks.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_q2_k(w: &[u8], x: &[u8]) -> f32 {
    debug_assert_eq!(x.len() / BlockQ8_K::SIZE, w.len() / BlockQ2_K::SIZE);
    let m2 = _mm_set1_epi8(0x03);
    let mut sumf = 0.0f32;
    for (bw, bx) in w
        .chunks_exact(BlockQ2_K::SIZE)
        .zip(x.chunks_exact(BlockQ8_K::SIZE))
    {
        let (sc, qs) = (&bw[..16], bw[16..].as_ptr());
        let y = bx[Q8K_QS..].as_ptr();
        let mut lanes = _mm256_setzero_si256();
        for h in 0..2 {
            for p in 0..4 {
                for i0 in [0usize, 16] {
                    // Element 128h + 32p + i: (qs[32h + i] >> 2p) & 3.
                    // SAFETY: qs has 64 bytes; 32h + i0 + 16 <= 64.
                    let l = unsafe { _mm_loadu_si128(qs.add(32 * h + i0).cast()) };
                    let q = _mm_and_si128(_mm_srl_epi16(l, _mm_cvtsi32_si128(2 * p as i32)), m2);
                    let e = 128 * h + 32 * p + i0;
                    // SAFETY: y has 256 bytes; e + 16 <= 256.
                    let y16 = unsafe { load_y16(y.add(e)) };
                    let prod = _mm256_mullo_epi16(_mm256_cvtepu8_epi16(q), y16);
                    lanes = lanes_add(lanes, prod, (sc[e / 16] & 0xf) as i32);
                }
            }
        }
        let mut l = [0i32; 8];
        // SAFETY: `l` holds 8 i32; storeu accepts any alignment.
        unsafe { _mm256_storeu_si256(l.as_mut_ptr().cast(), lanes) };
        let isum: i32 = l.iter().sum();
        let summs: i32 = (0..16).map(|j| bsum(bx, j) * (sc[j] >> 4) as i32).sum();
        let dy = f32_at(bx, 0);
        let dall = dy * f16_at(bw, 80);
        let dmin = dy * f16_at(bw, 82);
        sumf += dall * isum as f32 - dmin * summs as f32;
    }
    sumf
}

/// Q6_K · Q8_K over `w.len() / 210` super-blocks in ggml's x86 order
/// ([`crate::reference::vec_dot_q6_k_q8_k_x86`]): ggml-cpu's `ggml_vec_dot_q6_K_q8_K` AVX2 branch,
/// instruction for instruction.
///
/// ```text
/// per super-block, per 128 elements (j = 0, 1):
///     q[t] = 6-bit codes 0..63 of elements 128j + 32t .. +32 (t = 0..3)  ql nibbles | qh bits << 4
///     p16  = maddubs(q[t], y[t])            i16: adjacent pairs, exact (|p| <= 2*63*128)
///     p32  = madd(scale16(8j + 2t, +1), p16) i32 lane l: elements 4l..4l+3 of the 32
///     sumi += p32
/// sumi -= madd(bsums, scales) << 5           the -32 offset, lane by lane
/// acc   = fma(d, cvt(sumi), acc)             d = y.d * x.d
/// hsum_float_8(acc)
/// ```
///
/// # Safety
/// The CPU has AVX2, FMA and F16C; `x` holds as many Q8_K blocks as `w` holds Q6_K blocks.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_q6_k(w: &[u8], x: &[u8]) -> f32 {
    let nb = w.len() / BlockQ6_K::SIZE;
    debug_assert_eq!(x.len(), nb * BlockQ8_K::SIZE);
    let mut acc = _mm256_setzero_ps();
    for (bw, bx) in w
        .chunks_exact(BlockQ6_K::SIZE)
        .zip(x.chunks_exact(BlockQ8_K::SIZE))
    {
        let d = f32_at(bx, 0) * f16_at(bw, 208);
        // SAFETY: `bw` and `bx` are whole Q6_K and Q8_K blocks (chunks_exact).
        let sumi = unsafe { q6_k_lanes(bw, bx) };
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_float_8(acc)
}

/// Q6_K · Q8_K in the order of ggml-cpu's tiled matmul
/// ([`crate::reference::vec_dot_q6_k_q8_k_tiled`]): per super-block the exact integer dot (the
/// eight lanes of [`dot_q6_k`], summed), `r = (float)isum * x.d`, `acc = fma(r, y.d, acc)`.
///
/// # Safety
/// As [`dot_q6_k`].
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_q6_k_tiled(w: &[u8], x: &[u8]) -> f32 {
    let nb = w.len() / BlockQ6_K::SIZE;
    debug_assert_eq!(x.len(), nb * BlockQ8_K::SIZE);
    let mut acc = 0f32;
    for (bw, bx) in w
        .chunks_exact(BlockQ6_K::SIZE)
        .zip(x.chunks_exact(BlockQ8_K::SIZE))
    {
        // SAFETY: `bw` and `bx` are whole Q6_K and Q8_K blocks (chunks_exact).
        let sumi = unsafe { q6_k_lanes(bw, bx) };
        let r = hsum_i32_8(sumi) as f32 * f16_at(bw, 208);
        acc = r.mul_add(f32_at(bx, 0), acc);
    }
    acc
}

/// The eight exact i32 lanes of one Q6_K block times one Q8_K block, as ggml's x86
/// `ggml_vec_dot_q6_K_q8_K` leaves them before its FMA (see [`dot_q6_k`]).
///
/// # Safety
/// AVX2; `bw` is one 210-byte Q6_K block and `bx` one 292-byte Q8_K block.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q6_k_lanes(bw: &[u8], bx: &[u8]) -> __m256i {
    debug_assert!(bw.len() == BlockQ6_K::SIZE && bx.len() == BlockQ8_K::SIZE);
    let m3 = _mm256_set1_epi8(3);
    let m15 = _mm256_set1_epi8(15);
    let (ql, qh, y) = (bw.as_ptr(), bw[128..].as_ptr(), bx[Q8K_QS..].as_ptr());
    // SAFETY: a Q8_K block has 16 i16 bsums (32 bytes) at Q8K_BSUMS and a Q6_K block 16 i8
    // scales at 192; loadu accepts any alignment.
    let (q8sums, scales) = unsafe {
        (
            _mm256_loadu_si256(bx[Q8K_BSUMS..].as_ptr().cast()),
            _mm_loadu_si128(bw[192..].as_ptr().cast()),
        )
    };
    let q8sclsub = _mm256_slli_epi32::<5>(_mm256_madd_epi16(q8sums, _mm256_cvtepi8_epi16(scales)));
    let mut sumi = _mm256_setzero_si256();
    for j in 0..2 {
        // SAFETY: ql has 128 bytes (64j + 64 <= 128), qh 64 (32j + 32 <= 64), y 256
        // (128j + 128 <= 256).
        let (b1, b2, bh, y0, y1, y2, y3) = unsafe {
            let y = y.add(128 * j);
            (
                _mm256_loadu_si256(ql.add(64 * j).cast()),
                _mm256_loadu_si256(ql.add(64 * j + 32).cast()),
                _mm256_loadu_si256(qh.add(32 * j).cast()),
                _mm256_loadu_si256(y.cast()),
                _mm256_loadu_si256(y.add(32).cast()),
                _mm256_loadu_si256(y.add(64).cast()),
                _mm256_loadu_si256(y.add(96).cast()),
            )
        };
        let h0 = _mm256_slli_epi16::<4>(_mm256_and_si256(bh, m3));
        let h1 = _mm256_slli_epi16::<2>(_mm256_and_si256(bh, _mm256_set1_epi8(12)));
        let h2 = _mm256_and_si256(bh, _mm256_set1_epi8(48));
        let h3 = _mm256_srli_epi16::<2>(_mm256_and_si256(bh, _mm256_set1_epi8(-64)));
        let q0 = _mm256_or_si256(_mm256_and_si256(b1, m15), h0);
        let q1 = _mm256_or_si256(_mm256_and_si256(b2, m15), h1);
        let q2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16::<4>(b1), m15), h2);
        let q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16::<4>(b2), m15), h3);
        let scaled = |q: __m256i, y: __m256i, t: usize| {
            // Scales 8j + 2t (elements 0..16 of the 32) and 8j + 2t + 1 (16..32), as i16.
            let (a, b) = (
                bw[192 + 8 * j + 2 * t] as i8,
                bw[192 + 8 * j + 2 * t + 1] as i8,
            );
            let sc = _mm256_set_m128i(_mm_set1_epi16(b as i16), _mm_set1_epi16(a as i16));
            _mm256_madd_epi16(sc, _mm256_maddubs_epi16(q, y))
        };
        let (p0, p1) = (scaled(q0, y0, 0), scaled(q1, y1, 1));
        let (p2, p3) = (scaled(q2, y2, 2), scaled(q3, y3, 3));
        sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p1));
        sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p2, p3));
    }
    _mm256_sub_epi32(sumi, q8sclsub)
}

/// The exact sum of eight i32 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum_i32_8(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01>(s));
    _mm_cvtsi128_si32(s)
}

/// ggml's `hsum_float_8`: high half plus low half, then lanes 0 + 2 and 1 + 3, then their sum.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum_float_8(x: __m256) -> f32 {
    let mut r = _mm_add_ps(_mm256_extractf128_ps::<1>(x), _mm256_castps256_ps128(x));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    _mm_cvtss_f32(r)
}
