//! AVX2 dot products of Q2_K, Q3_K, Q4_K, Q5_K and Q6_K weights with Q8_K activations in the orders
//! llama.cpp computes them in on x86, each **bitwise equal** to a scalar function of
//! [`crate::reference`]:
//!
//! | kernel | llama.cpp (ggml-cpu) | reference |
//! |---|---|---|
//! | `dot_x86::<T>`, `dot_q6_k` | `ggml_vec_dot_q*_K_q8_K` (arch/x86/quants.c, AVX2 branch) | `vec_dot_q*_k_q8_k_x86` |
//! | `dot_tiled::<T>`, `dot_q6_k_tiled` | the tiled matmul (`tiled/tiled-kernel.cpp`) | `vec_dot_k_q8_k_tiled`, `vec_dot_q6_k_q8_k_tiled` |
//! | `dot_repack::<Q4, 8 / 2>` | `ggml_gemv/gemm_q4_K_8x8_q8_K` (arch/x86/repack.cpp) | `vec_dot_q4_k_q8_k_repack{,_gemm}` |
//! | `dot_repack::<Q2, 8 / 4>` | `ggml_gemv/gemm_q2_K_8x8_q8_K` (AVX-512 builds) | `vec_dot_q2_k_q8_k_repack` |
//!
//! All of them start from ggml's x86 integer lanes ([`k_lanes`]: `maddubs` + `madd`, exact), which
//! the `vec_dot` orders keep as eight f32 lanes (one FMA per block, `hsum_float_8` at the end) and
//! the tiled and repacked orders sum to one exact integer per block (or per 64 / 128 elements).

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

/// The K-quant weight types of this module, as const parameters.
pub(crate) const Q2: u8 = 2;
pub(crate) const Q3: u8 = 3;
pub(crate) const Q4: u8 = 4;
pub(crate) const Q5: u8 = 5;

/// Block size in bytes of K-quant type `T` ([`Q2`]..[`Q5`]).
const fn block_size(t: u8) -> usize {
    match t {
        Q2 => BlockQ2_K::SIZE,
        Q3 => BlockQ3_K::SIZE,
        Q4 => BlockQ4_K::SIZE,
        _ => BlockQ5_K::SIZE,
    }
}

/// Byte offsets of `d` and (Q2_K, Q4_K, Q5_K) `dmin` in a block of type `t`.
const fn d_at(t: u8) -> (usize, usize) {
    match t {
        Q2 => (80, 82),
        Q3 => (108, 108),
        _ => (0, 2),
    }
}

/// The sub-block scales of a block of type `T` per 16 elements (Q4_K / Q5_K: each 32-element
/// scale twice), and the minimums per 16 elements (zero for Q3_K).
#[inline]
fn scales16<const T: u8>(bw: &[u8]) -> ([i16; 16], [i16; 16]) {
    match T {
        Q2 => (
            core::array::from_fn(|s| (bw[s] & 0xf) as i16),
            core::array::from_fn(|s| (bw[s] >> 4) as i16),
        ),
        Q3 => (
            core::array::from_fn(|s| scale_q3(s, &bw[96..108]) as i16),
            [0; 16],
        ),
        _ => {
            let (sc, m) = scales_mins(&bw[4..16]);
            (
                core::array::from_fn(|s| sc[s / 2] as i16),
                core::array::from_fn(|s| m[s / 2] as i16),
            )
        }
    }
}

/// The exact i32 lanes of ggml's x86 `vec_dot` for the 32-element chunks `chunks` (of 0..8) of one
/// block of type `T` times one Q8_K block: per chunk `c` the codes of elements `32c..32c + 32` as
/// unsigned bytes, `maddubs` with the activations (i16, adjacent pairs; exact: `2 * 31 * 128` at
/// most), for Q3_K minus `maddubs` of the `4 * (1 - high bit)` offsets, then `madd` with the scale of
/// each 16 elements: lane `l` holds the elements `e` with `(e mod 32) / 4 == l`, times their scale
/// (`reference::vec_dot_q*_k_q8_k_x86`'s `lanes_x86`).
///
/// # Safety
/// AVX2; `bw` is one block of type `T` and `bx` one Q8_K block (checked by `debug_assert`s; the
/// callers pass `chunks_exact` pieces).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn k_lanes<const T: u8>(
    bw: &[u8],
    bx: &[u8],
    sc: &[i16; 16],
    chunks: core::ops::Range<usize>,
) -> __m256i {
    debug_assert!(bw.len() == block_size(T) && bx.len() == BlockQ8_K::SIZE && chunks.end <= 8);
    let one = _mm256_set1_epi8(1);
    let y = bx[Q8K_QS..].as_ptr();
    let mut lanes = _mm256_setzero_si256();
    for c in chunks {
        let shift = |v: __m256i, s: usize| _mm256_srl_epi16(v, _mm_cvtsi32_si128(s as i32));
        // SAFETY: all loads read 32 bytes inside the block: Q2_K qs at 16..80 and Q3_K qs at
        // 32..96 (32 * (c / 4) + 32 <= 64), Q3_K hmask at 0..32, Q4_K qs at 16..144 and Q5_K qs at
        // 48..176 (32 * (c / 2) + 32 <= 128), Q5_K qh at 16..48; y has 256 bytes (32c + 32 <= 256).
        let (q, sub) = unsafe {
            match T {
                Q2 | Q3 => {
                    let at = if T == Q2 { 16 } else { 32 } + 32 * (c / 4);
                    let raw = _mm256_loadu_si256(bw[at..].as_ptr().cast());
                    let q = _mm256_and_si256(shift(raw, 2 * (c % 4)), _mm256_set1_epi8(3));
                    let sub = if T == Q3 {
                        let hm = _mm256_loadu_si256(bw.as_ptr().cast());
                        let h = _mm256_and_si256(shift(hm, c), one);
                        _mm256_slli_epi16::<2>(_mm256_xor_si256(h, one))
                    } else {
                        _mm256_setzero_si256()
                    };
                    (q, sub)
                }
                _ => {
                    let at = if T == Q4 { 16 } else { 48 } + 32 * (c / 2);
                    let raw = _mm256_loadu_si256(bw[at..].as_ptr().cast());
                    let mut q = _mm256_and_si256(shift(raw, 4 * (c % 2)), _mm256_set1_epi8(15));
                    if T == Q5 {
                        let qh = _mm256_loadu_si256(bw[16..].as_ptr().cast());
                        let h = _mm256_and_si256(shift(qh, c), one);
                        q = _mm256_or_si256(q, _mm256_slli_epi16::<4>(h));
                    }
                    (q, _mm256_setzero_si256())
                }
            }
        };
        // SAFETY: see above.
        let y32 = unsafe { _mm256_loadu_si256(y.add(32 * c).cast()) };
        let mut p16 = _mm256_maddubs_epi16(q, y32);
        if T == Q3 {
            p16 = _mm256_sub_epi16(p16, _mm256_maddubs_epi16(sub, y32));
        }
        let scale = _mm256_set_m128i(_mm_set1_epi16(sc[2 * c + 1]), _mm_set1_epi16(sc[2 * c]));
        lanes = _mm256_add_epi32(lanes, _mm256_madd_epi16(scale, p16));
    }
    lanes
}

/// `sum_s mins[s] * bsums[s]` over the 16-element sub-blocks `s` of `range`, exact.
#[inline]
fn min_sum(bx: &[u8], mins: &[i16; 16], range: core::ops::Range<usize>) -> i32 {
    range.map(|s| bsum(bx, s) * mins[s] as i32).sum()
}

/// K-quant (`T` = [`Q2`], [`Q3`], [`Q4`], [`Q5`]) · Q8_K in ggml-cpu's x86 `vec_dot` order
/// (`ggml_vec_dot_q*_K_q8_K`, AVX2 branches; `reference::vec_dot_q*_k_q8_k_x86`):
///
/// ```text
/// per super-block:  lanes = k_lanes (exact i32, lane = (e mod 32) / 4)
///   Q2_K:  acc = fma(-(y.d * x.dmin), cvt(madd(mins16, bsums)), acc)    then as Q3_K
///   Q3_K:  acc = fma(y.d * x.d, cvt(lanes), acc)
///   Q4_K:  as Q3_K; acc_m[k] = fma(-(y.d * x.dmin), prod[k], acc_m[k])  four lanes of mins
///   Q5_K:  as Q3_K; summs = fma(-(y.d * x.dmin), (p0 + p1) + (p2 + p3), summs)
/// result: hsum_float_8(acc) [+ (acc_m0 + acc_m2) + (acc_m1 + acc_m3) | + summs]
/// ```
///
/// # Safety
/// The CPU has AVX2, FMA and F16C; `x` holds as many Q8_K blocks as `w` holds blocks of type `T`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_x86<const T: u8>(w: &[u8], x: &[u8]) -> f32 {
    debug_assert_eq!(x.len() / BlockQ8_K::SIZE, w.len() / block_size(T));
    let (d_off, dmin_off) = d_at(T);
    let mut acc = _mm256_setzero_ps();
    let mut acc_m = [0f32; 4];
    let mut summs = 0f32;
    for (bw, bx) in w
        .chunks_exact(block_size(T))
        .zip(x.chunks_exact(BlockQ8_K::SIZE))
    {
        let dy = f32_at(bx, 0);
        let d = dy * f16_at(bw, d_off);
        let dmin = -dy * f16_at(bw, dmin_off);
        let (sc, mins) = scales16::<T>(bw);
        if T == Q2 {
            let m16 = _mm256_set_epi16(
                mins[15], mins[14], mins[13], mins[12], mins[11], mins[10], mins[9], mins[8],
                mins[7], mins[6], mins[5], mins[4], mins[3], mins[2], mins[1], mins[0],
            );
            // SAFETY: a Q8_K block has 16 i16 bsums (32 bytes) at Q8K_BSUMS.
            let bsums = unsafe { _mm256_loadu_si256(bx[Q8K_BSUMS..].as_ptr().cast()) };
            let prod = _mm256_madd_epi16(m16, bsums);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(dmin), _mm256_cvtepi32_ps(prod), acc);
        }
        // SAFETY: whole blocks (chunks_exact), AVX2 by the caller.
        let lanes = unsafe { k_lanes::<T>(bw, bx, &sc, 0..8) };
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(lanes), acc);
        if T == Q4 || T == Q5 {
            // mins16 holds each 32-element minimum twice: prod[k] = sum over bsums 4k..4k+4.
            let prod: [i32; 4] = core::array::from_fn(|k| min_sum(bx, &mins, 4 * k..4 * k + 4));
            if T == Q4 {
                for (a, &p) in acc_m.iter_mut().zip(&prod) {
                    *a = dmin.mul_add(p as f32, *a);
                }
            } else {
                summs = dmin.mul_add(((prod[0] + prod[1]) + (prod[2] + prod[3])) as f32, summs);
            }
        }
    }
    match T {
        Q4 => hsum_float_8(acc) + ((acc_m[0] + acc_m[2]) + (acc_m[1] + acc_m[3])),
        Q5 => hsum_float_8(acc) + summs,
        _ => hsum_float_8(acc),
    }
}

/// K-quant (`T` = [`Q2`]..[`Q5`]) · Q8_K in the order of ggml-cpu's tiled matmul
/// (`reference::vec_dot_k_q8_k_tiled`): per super-block the exact integers `s1` (the lanes of
/// [`k_lanes`], summed) and `s2 = sum mins * bsums`, `r = (float)s1 * x.d`, for types with
/// minimums `r = fma(-x.dmin, (float)s2, r)`, then `acc = fma(r, y.d, acc)`.
///
/// # Safety
/// As [`dot_x86`].
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_tiled<const T: u8>(w: &[u8], x: &[u8]) -> f32 {
    debug_assert_eq!(x.len() / BlockQ8_K::SIZE, w.len() / block_size(T));
    let (d_off, dmin_off) = d_at(T);
    let mut acc = 0f32;
    for (bw, bx) in w
        .chunks_exact(block_size(T))
        .zip(x.chunks_exact(BlockQ8_K::SIZE))
    {
        let (sc, mins) = scales16::<T>(bw);
        // SAFETY: whole blocks (chunks_exact), AVX2 by the caller.
        let s1 = hsum_i32_8(unsafe { k_lanes::<T>(bw, bx, &sc, 0..8) });
        let mut r = s1 as f32 * f16_at(bw, d_off);
        if T != Q3 {
            let s2 = min_sum(bx, &mins, 0..16);
            r = (-f16_at(bw, dmin_off)).mul_add(s2 as f32, r);
        }
        acc = r.mul_add(f32_at(bx, 0), acc);
    }
    acc
}

/// Q4_K (`T` = [`Q4`]) or Q2_K ([`Q2`]) · Q8_K in the order of ggml's repacked x86 kernels
/// (`ggml_gemv/gemm_q4_K_8x8_q8_K`, `ggml_gemv/gemm_q2_K_8x8_q8_K`): per `CH` 32-element chunks
/// (8: the gemv, a whole super-block; Q4_K gemm 2, Q2_K gemm 4) the exact integers `isum` (the lanes
/// of [`k_lanes`], summed) and `imin = sum mins * bsums`, `acc = fma(isum, x.d * y.d, acc)`, `acc_min
/// = fma(imin, x.dmin * y.d, acc_min)`, and `acc - acc_min` at the end
/// (`reference::vec_dot_q4_k_q8_k_repack{,_gemm}`, `reference::vec_dot_q2_k_q8_k_repack`).
///
/// # Safety
/// As [`dot_x86`].
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_repack<const T: u8, const CH: usize>(w: &[u8], x: &[u8]) -> f32 {
    debug_assert_eq!(x.len() / BlockQ8_K::SIZE, w.len() / block_size(T));
    let (d_off, dmin_off) = d_at(T);
    let (mut acc, mut acc_min) = (0f32, 0f32);
    for (bw, bx) in w
        .chunks_exact(block_size(T))
        .zip(x.chunks_exact(BlockQ8_K::SIZE))
    {
        let dy = f32_at(bx, 0);
        let (dd, dm) = (f16_at(bw, d_off) * dy, f16_at(bw, dmin_off) * dy);
        let (sc, mins) = scales16::<T>(bw);
        for c in (0..8).step_by(CH) {
            // SAFETY: whole blocks (chunks_exact), AVX2 by the caller; c + CH <= 8.
            let isum = hsum_i32_8(unsafe { k_lanes::<T>(bw, bx, &sc, c..c + CH) });
            let imin = min_sum(bx, &mins, 2 * c..2 * (c + CH));
            acc = (isum as f32).mul_add(dd, acc);
            acc_min = (imin as f32).mul_add(dm, acc_min);
        }
    }
    acc - acc_min
}

/// `bsums[j]` of a Q8_K block.
#[inline]
fn bsum(bx: &[u8], j: usize) -> i32 {
    i16::from_le_bytes([bx[Q8K_BSUMS + 2 * j], bx[Q8K_BSUMS + 2 * j + 1]]) as i32
}

/// The 6-bit scale of 16-element sub-block `j` of a Q3_K block, minus 32.
#[inline]
fn scale_q3(j: usize, s: &[u8]) -> i32 {
    let low = if j < 8 { s[j] & 0xf } else { s[j - 8] >> 4 };
    let high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
    (low | (high << 4)) as i32 - 32
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
