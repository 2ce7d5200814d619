//! NEON dot products of Q2_K, Q3_K, Q4_K, Q5_K and Q6_K weights with Q8_K activations, **bitwise
//! equal** to ggml's `ggml_vec_dot_q*_K_q8_K_generic` order as [`crate::reference`] writes it out
//! (`reference::vec_dot_q*_k_q8_k`), which is what the scalar path computes too.
//!
//! The generic order keeps eight i32 lanes per super-block, lane `l` summing the scaled products of
//! the elements `e ≡ l (mod 8)`, then `sums[l] += d * (float)lane[l]` in f32 (no FMA) and adds the
//! eight sums in order at the very end. Integer sums are exact in any order, so the kernel only has
//! to keep each product in its lane, which widening multiplies do directly:
//!
//! ```text
//! per 16 elements e0..e0+16 (one scale: Q2_K, Q3_K, Q6_K per 16, Q4_K / Q5_K per 32 elements):
//!     q   = the signed codes (Q3_K q - 4, Q6_K q - 32), y = the activations     16 x i8
//!     p   = vmull_s8(q[0..8], y[0..8]) + vmull_high_s8(q, y)   8 x i16, lane e mod 8
//!                                                               exact: |p| <= 2 * 32 * 128
//!     lanes[0..4] += widen(p[0..4]) * scale, lanes[4..8] += widen(p[4..8]) * scale   (vmlal_s16)
//! ```
//!
//! and the float epilogue per block is the reference's scalar code on the eight lanes.
//!
//! With dotprod, Q4_K and Q5_K (one scale per 32 elements) use `SDOT` instead: it adds four
//! *adjacent* bytes into one i32 lane, so a table lookup first gathers, for each lane `l`, the four
//! elements `l, l + 8, l + 16, l + 24` of the 32 (codes and activations alike), which keeps every
//! product in its generic lane ([`lanes8_sdot`]). The 16-element scales of Q2_K, Q3_K and Q6_K would
//! leave half of each `SDOT` empty, so those stay on the widening multiplies.

use core::arch::aarch64::*;

use half::f16;

use crate::blocks::{BlockQ2_K, BlockQ3_K, BlockQ4_K, BlockQ5_K, BlockQ6_K, BlockQ8_K, QK_K};

/// The K-quant weight types of this module, as const parameters.
pub(crate) const Q2: u8 = 2;
pub(crate) const Q3: u8 = 3;
pub(crate) const Q4: u8 = 4;
pub(crate) const Q5: u8 = 5;
pub(crate) const Q6: u8 = 6;

const Q8K_QS: usize = 4;
const Q8K_BSUMS: usize = 4 + QK_K;

/// Block size in bytes of K-quant type `t`.
const fn block_size(t: u8) -> usize {
    match t {
        Q2 => BlockQ2_K::SIZE,
        Q3 => BlockQ3_K::SIZE,
        Q4 => BlockQ4_K::SIZE,
        Q5 => BlockQ5_K::SIZE,
        _ => BlockQ6_K::SIZE,
    }
}

#[inline]
fn f16_at(p: &[u8], at: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([p[at], p[at + 1]])).to_f32()
}

#[inline]
fn f32_at(p: &[u8], at: usize) -> f32 {
    f32::from_le_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]])
}

/// `bsums[j]` of a Q8_K block.
#[inline]
fn bsum(bx: &[u8], j: usize) -> i32 {
    i16::from_le_bytes([bx[Q8K_BSUMS + 2 * j], bx[Q8K_BSUMS + 2 * j + 1]]) as i32
}

/// ggml `get_scale_min_k4` for all 8 sub-blocks of a Q4_K / Q5_K block (`s`: its 12 scale bytes).
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

/// The 6-bit scale of 16-element sub-block `j` of a Q3_K block (`s`: its 12 scale bytes), minus 32.
#[inline]
fn scale_q3(j: usize, s: &[u8]) -> i32 {
    let low = if j < 8 { s[j] & 0xf } else { s[j - 8] >> 4 };
    let high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
    (low | (high << 4)) as i32 - 32
}

/// The scale of each 16 elements of a block of type `T`.
#[inline]
fn scales16<const T: u8>(bw: &[u8]) -> [i16; 16] {
    match T {
        Q2 => core::array::from_fn(|s| (bw[s] & 0xf) as i16),
        Q3 => core::array::from_fn(|s| scale_q3(s, &bw[96..108]) as i16),
        Q4 | Q5 => {
            let (sc, _) = scales_mins(&bw[4..16]);
            core::array::from_fn(|s| sc[s / 2] as i16)
        }
        _ => core::array::from_fn(|s| bw[192 + s] as i8 as i16),
    }
}

/// `(v >> s) & mask` on each byte (`s` a runtime shift).
#[inline]
#[target_feature(enable = "neon")]
fn shr_and(v: uint8x16_t, s: usize, mask: u8) -> uint8x16_t {
    vandq_u8(vshlq_u8(v, vdupq_n_s8(-(s as i8))), vdupq_n_u8(mask))
}

/// The signed codes of elements `16g..16g + 16` of one block of type `T` (Q3_K `q - 4`, Q6_K
/// `q - 32`, the others `q`), in element order.
///
/// # Safety
/// `bw` is one whole block of type `T` (checked by a `debug_assert`); `g < 16`.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn codes16<const T: u8>(bw: &[u8], g: usize) -> int8x16_t {
    debug_assert!(bw.len() == block_size(T) && g < 16);
    let e = 16 * g;
    let p = bw.as_ptr();
    // SAFETY: every load reads 16 bytes inside the block. Q2_K qs at 16..80 and Q3_K qs at 32..96:
    // 32 * (e / 128) + e % 32 + 16 <= 64; Q3_K hmask at 0..32 and Q5_K qh at 16..48: e % 32 + 16
    // <= 32; Q4_K qs at 16..144, Q5_K qs at 48..176: 32 * (e / 64) + e % 32 + 16 <= 128; Q6_K ql
    // at 0..128: 64 * (e / 128) + 32 * k + e % 32 + 16 <= 128, qh at 128..192: 32 * (e / 128) +
    // e % 32 + 16 <= 64.
    unsafe {
        match T {
            Q2 | Q3 => {
                let (h, k, i) = (e / 128, (e / 32) % 4, e % 32);
                let at = if T == Q2 { 16 } else { 32 } + 32 * h + i;
                let low = shr_and(vld1q_u8(p.add(at)), 2 * k, 3);
                if T == Q2 {
                    vreinterpretq_s8_u8(low)
                } else {
                    let bit = shr_and(vld1q_u8(p.add(i)), 4 * h + k, 1);
                    let q = vorrq_u8(low, vshlq_n_u8::<2>(bit));
                    vsubq_s8(vreinterpretq_s8_u8(q), vdupq_n_s8(4))
                }
            }
            Q4 | Q5 => {
                let (c, half, i) = (e / 64, (e / 32) % 2, e % 32);
                let at = if T == Q4 { 16 } else { 48 } + 32 * c + i;
                let mut q = shr_and(vld1q_u8(p.add(at)), 4 * half, 0xf);
                if T == Q5 {
                    let bit = shr_and(vld1q_u8(p.add(16 + i)), e / 32, 1);
                    q = vorrq_u8(q, vshlq_n_u8::<4>(bit));
                }
                vreinterpretq_s8_u8(q)
            }
            _ => {
                let (h, k, i) = (e / 128, (e / 32) % 4, e % 32);
                let low = shr_and(vld1q_u8(p.add(64 * h + 32 * (k % 2) + i)), 4 * (k / 2), 0xf);
                let high = shr_and(vld1q_u8(p.add(128 + 32 * h + i)), 2 * k, 3);
                let q = vorrq_u8(low, vshlq_n_u8::<4>(high));
                vsubq_s8(vreinterpretq_s8_u8(q), vdupq_n_s8(32))
            }
        }
    }
}

/// The generic order's eight exact i32 lanes of one block of type `T` times one Q8_K block: lane
/// `l` = `sum over e ≡ l (mod 8)` of `scale(e) * q_e * y_e`.
///
/// # Safety
/// `bw` is one whole block of type `T`, `bx` one whole Q8_K block (checked by `debug_assert`s).
#[inline]
#[target_feature(enable = "neon")]
unsafe fn lanes8<const T: u8>(bw: &[u8], bx: &[u8]) -> [i32; 8] {
    debug_assert!(bw.len() == block_size(T) && bx.len() == BlockQ8_K::SIZE);
    let sc = scales16::<T>(bw);
    let y = bx[Q8K_QS..].as_ptr();
    let (mut lo, mut hi) = (vdupq_n_s32(0), vdupq_n_s32(0));
    for (g, &s) in sc.iter().enumerate() {
        // SAFETY: `bw` is a whole block (caller), g < 16; y has 256 bytes, 16g + 16 <= 256.
        let (q, y) = unsafe { (codes16::<T>(bw, g), vld1q_s8(y.add(16 * g).cast())) };
        // |q * y| <= 32 * 128 per product, two per i16 lane: exact.
        let p = vaddq_s16(
            vmull_s8(vget_low_s8(q), vget_low_s8(y)),
            vmull_high_s8(q, y),
        );
        lo = vmlal_s16(lo, vget_low_s16(p), vdup_n_s16(s));
        hi = vmlal_high_s16(hi, p, vdupq_n_s16(s));
    }
    let mut out = [0i32; 8];
    // SAFETY: `out` holds 8 i32; vst1q_s32 writes 4 each at offsets 0 and 4.
    unsafe {
        vst1q_s32(out.as_mut_ptr(), lo);
        vst1q_s32(out.as_mut_ptr().add(4), hi);
    }
    out
}

/// [`lanes8`] for Q4_K / Q5_K (`T` = [`Q4`], [`Q5`]) with `SDOT`: per 32-element sub-block, `TBL`
/// gathers bytes `l, l + 8, l + 16, l + 24` into `SDOT` lane `l` (lanes 0..4 from the first gather,
/// 4..8 from the second), for the codes and the activations, then `lanes += scale * sdot`. Exact: a
/// lane's four products are at most `4 * 31 * 128`, times a scale of at most 63.
///
/// # Safety
/// The CPU has NEON and dotprod; `bw` is one whole block of type `T`, `bx` one whole Q8_K block
/// (checked by `debug_assert`s).
#[inline]
#[target_feature(enable = "neon,dotprod")]
unsafe fn lanes8_sdot<const T: u8>(bw: &[u8], bx: &[u8]) -> [i32; 8] {
    debug_assert!(T == Q4 || T == Q5);
    debug_assert!(bw.len() == block_size(T) && bx.len() == BlockQ8_K::SIZE);
    const GATHER: [[u8; 16]; 2] = [
        [0, 8, 16, 24, 1, 9, 17, 25, 2, 10, 18, 26, 3, 11, 19, 27],
        [4, 12, 20, 28, 5, 13, 21, 29, 6, 14, 22, 30, 7, 15, 23, 31],
    ];
    let (sc, _) = scales_mins(&bw[4..16]);
    let y = bx[Q8K_QS..].as_ptr();
    // SAFETY: GATHER rows are 16 bytes each.
    let (ga, gb) = unsafe { (vld1q_u8(GATHER[0].as_ptr()), vld1q_u8(GATHER[1].as_ptr())) };
    let (mut lo, mut hi) = (vdupq_n_s32(0), vdupq_n_s32(0));
    for (j, &s) in sc.iter().enumerate() {
        // SAFETY: `bw` is a whole block (caller), 2j + 1 < 16; y has 256 bytes, 32j + 32 <= 256.
        let (q, yv) = unsafe {
            (
                int8x16x2_t(codes16::<T>(bw, 2 * j), codes16::<T>(bw, 2 * j + 1)),
                int8x16x2_t(
                    vld1q_s8(y.add(32 * j).cast()),
                    vld1q_s8(y.add(32 * j + 16).cast()),
                ),
            )
        };
        let zero = vdupq_n_s32(0);
        let da = super::dotprod::idot_sdot(zero, vqtbl2q_s8(q, ga), vqtbl2q_s8(yv, ga));
        let db = super::dotprod::idot_sdot(zero, vqtbl2q_s8(q, gb), vqtbl2q_s8(yv, gb));
        lo = vmlaq_n_s32(lo, da, s as i32);
        hi = vmlaq_n_s32(hi, db, s as i32);
    }
    let mut out = [0i32; 8];
    // SAFETY: `out` holds 8 i32; vst1q_s32 writes 4 each at offsets 0 and 4.
    unsafe {
        vst1q_s32(out.as_mut_ptr(), lo);
        vst1q_s32(out.as_mut_ptr().add(4), hi);
    }
    out
}

/// K-quant (`T` = [`Q2`]..[`Q6`]) · Q8_K in ggml's generic order, bitwise equal to
/// `reference::vec_dot_q*_k_q8_k`:
///
/// ```text
/// Q2_K:        sumf += (y.d * x.d) * sum(lanes) - (y.d * x.dmin) * sum(mins * bsums)
/// Q3_K, Q6_K:  sums[l] += (x.d * y.d) * lanes[l];                   result 0 + sums[0] + .. + sums[7]
/// Q4_K, Q5_K:  sums[l] += (x.d * y.d) * lanes[l]; sumf -= (x.dmin * y.d) * sum(mins * bsums);
///              result sumf + sums[0] + .. + sums[7]
/// ```
///
/// `DP`: the integer lanes of Q4_K and Q5_K by [`lanes8_sdot`] (same values).
///
/// # Safety
/// The CPU has NEON, and with `DP` dotprod; `x` holds as many Q8_K blocks as `w` holds blocks of
/// type `T`.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn dot_generic<const T: u8, const DP: bool>(w: &[u8], x: &[u8]) -> f32 {
    debug_assert_eq!(x.len() / BlockQ8_K::SIZE, w.len() / block_size(T));
    let mut sums = [0f32; 8];
    let mut sumf = 0f32;
    for (bw, bx) in w
        .chunks_exact(block_size(T))
        .zip(x.chunks_exact(BlockQ8_K::SIZE))
    {
        let lanes = if DP && (T == Q4 || T == Q5) {
            // SAFETY: whole blocks (chunks_exact); NEON and dotprod by the caller (DP).
            unsafe { lanes8_sdot::<T>(bw, bx) }
        } else {
            // SAFETY: whole blocks (chunks_exact); NEON by the caller.
            unsafe { lanes8::<T>(bw, bx) }
        };
        let dy = f32_at(bx, 0);
        match T {
            Q2 => {
                let isum: i32 = lanes.iter().sum();
                let summs: i32 = (0..16).map(|j| bsum(bx, j) * (bw[j] >> 4) as i32).sum();
                let dall = dy * f16_at(bw, 80);
                let dmin = dy * f16_at(bw, 82);
                sumf += dall * isum as f32 - dmin * summs as f32;
                continue;
            }
            Q4 | Q5 => {
                let (_, m) = scales_mins(&bw[4..16]);
                let sumi: i32 = (0..16).map(|j| bsum(bx, j) * m[j / 2] as i32).sum();
                let dm = f16_at(bw, 2) * dy;
                sumf -= dm * sumi as f32;
            }
            _ => {}
        }
        let d_at = match T {
            Q3 => 108,
            Q6 => 208,
            _ => 0,
        };
        let d = f16_at(bw, d_at) * dy;
        for (s, &a) in sums.iter_mut().zip(&lanes) {
            *s += d * a as f32;
        }
    }
    if T == Q2 {
        return sumf;
    }
    sums.iter().fold(sumf, |acc, &s| acc + s)
}
