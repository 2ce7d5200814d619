//! NEON + dotprod kernels for the packed layouts of [`crate::packed`]: one weight row per 32-bit
//! lane, a group's 16 rows in four registers of four. `SDOT` adds the four products of a row's
//! 4-byte step into its lane.
//!
//! - Q4_0: a block's integer dot for four rows is eight `SDOT`s of the signed codes `q - 8`
//!   against a broadcast 4-byte slice of the activation block (exact: no correction term
//!   needed); the scaling is one multiply and one FMA per four rows.
//! - Q8_0 and Q4_1 ([`crate::packed::LaneOrder::Four`], the order of the row-major dotprod
//!   kernels): four lane sums per row, lane `l` two `SDOT`s (Q8_0: the signed codes of chunks `l`
//!   and `l + 4`; Q4_1: the low and the high nibbles of chunk `l`), one FMA per lane and block;
//!   a group is done a quarter (four rows) at a time so that the lane sums of four tokens stay
//!   in registers.
//! - Q5_0 and Q5_1 (the same order): as Q4_1 with bit 4 of each code from `qh` (`TBL`,
//!   `CMTST`); Q5_0's codes signed (`q - 16`), so no correction term.
//!
//! The float steps are the reference's, so the result is bitwise
//! [`crate::packed::matmul_packed_reference_in`] in [`crate::packed::LaneOrder::Four`] (for Q4_0
//! the order does not matter), and for Q8_0, Q4_1, Q5_0 and Q5_1 bitwise this path's row-major
//! product.

use core::arch::aarch64::*;

use super::dotprod::{idot_sdot, NeonDotprod};
use super::neon::f16x4;
use crate::blocks::QK;
use crate::cpu::driver::{panels_x_tiles, product_with, q4_0_tokens, GroupLanes, ProductFn};
use crate::packed::{PACK_ROWS, Q8_0_MAX_BLOCKS};
use crate::QuantType;

/// Bytes of one packed Q4_0 group-block (16 rows).
const GB: usize = 16 * 18;
/// Bytes of one Q8_0 activation block.
const XB: usize = 34;
/// Tokens per tile.
const TT: usize = 4;
/// Blocks per scale-table chunk (the tables live on the stack).
const CHUNK_NB: usize = 128;
/// Weight bytes per row panel, revisited once per token group: sized to stay in L2.
const PANEL_BYTES: usize = 256 * 1024;

impl NeonDotprod {
    /// `out[j * rows + r]` for a packed `w` (any packed type): see
    /// [`crate::Kernels::matmul_packed`].
    ///
    /// # Panics
    /// As [`crate::Kernels::matmul_packed`].
    #[allow(clippy::too_many_arguments)]
    pub fn matmul_packed(
        self,
        ty: QuantType,
        out: &mut [f32],
        w: &[u8],
        rows: usize,
        x: &[u8],
        stride: usize,
        t: usize,
        n: usize,
    ) {
        let kernel: ProductFn = match ty {
            QuantType::Q8_0 => mm_lanes::<Q8_0>,
            QuantType::Q4_1 => mm_lanes::<Q4_1>,
            QuantType::Q5_0 => mm_lanes::<Q5_0>,
            QuantType::Q5_1 => mm_lanes::<Q5_1>,
            _ => mm_q4_0x16,
        };
        // SAFETY: `self` proves neon+dotprod (only `detect` builds it), the kernels' features;
        // each computes the packed product of its type under `ProductFn`'s contract (Q4_0 for
        // any other type: `check_matmul_packed` rejects what is not packable).
        unsafe { product_with::<true>(kernel, ty, out, w, rows, x, stride, t, n) }
    }
}

/// One token's sums of one 16-row group: rows `4q..4q + 4` in register `q`.
impl GroupLanes for [float32x4_t; 4] {
    #[inline]
    #[target_feature(enable = "neon,dotprod")]
    unsafe fn zero() -> Self {
        [vdupq_n_f32(0.0); 4]
    }

    #[inline]
    #[target_feature(enable = "neon,dotprod")]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: 16 readable floats at p (caller); vld1q_f32 accepts any alignment of f32.
        core::array::from_fn(|q| unsafe { vld1q_f32(p.add(4 * q)) })
    }

    #[inline]
    #[target_feature(enable = "neon,dotprod")]
    unsafe fn store(self, p: *mut f32) {
        for (q, v) in self.into_iter().enumerate() {
            // SAFETY: 16 writable floats at p (caller).
            unsafe { vst1q_f32(p.add(4 * q), v) };
        }
    }
}

/// One 16-row group x `K` tokens over blocks `b0..b1`, continuing from `acc[k][q]` (token `k`,
/// rows `4q..4q + 4`). `dx[(b - b0) * TT + k]` is token `k`'s f32 scale of block `b`.
///
/// # Safety
/// `b1` group-blocks at `g`; `b1` Q8_0 blocks at each `x[k]`; `(b1 - b0) * TT` entries in `dx`;
/// the CPU has NEON and dotprod.
#[inline]
#[target_feature(enable = "neon,dotprod")]
unsafe fn tile<const K: usize>(
    g: *const u8,
    x: [*const u8; K],
    (b0, b1): (usize, usize),
    dx: *const f32,
    acc: [[float32x4_t; 4]; K],
) -> [[float32x4_t; 4]; K] {
    // Quarter-major inside the loop (`a[q][k]`), as the registers are used.
    let mut a: [[float32x4_t; K]; 4] =
        core::array::from_fn(|q| core::array::from_fn(|k| acc[k][q]));
    let m = vdupq_n_u8(0x0f);
    let eight = vdupq_n_s8(8);
    // Activation byte offset of each code register's 4-byte steps (low, high nibbles per chunk).
    const OFFS: [usize; 8] = [0, 16, 4, 20, 8, 24, 12, 28];
    for b in b0..b1 {
        let e = (b - b0) * TT;
        for (q, acc_q) in a.iter_mut().enumerate() {
            // SAFETY: b < b1 group-blocks at g, Q8_0 blocks at each x[k], table entries (caller).
            unsafe {
                let gb = g.add(b * GB);
                let dw = f16x4(gb, 4 * q);
                let mut codes = [vdupq_n_s8(0); 8];
                for c in 0..4 {
                    let v = vld1q_u8(gb.add(32 + 64 * c + 16 * q));
                    let lo = vreinterpretq_s8_u8(vandq_u8(v, m));
                    let hi = vreinterpretq_s8_u8(vshrq_n_u8::<4>(v));
                    codes[2 * c] = vsubq_s8(lo, eight);
                    codes[2 * c + 1] = vsubq_s8(hi, eight);
                }
                for k in 0..K {
                    let y = x[k].add(b * XB + 2);
                    let ys = |o: usize| {
                        vreinterpretq_s8_s32(vdupq_n_s32(core::ptr::read_unaligned(
                            y.add(o).cast::<i32>(),
                        )))
                    };
                    let mut s0 = vdupq_n_s32(0);
                    let mut s1 = vdupq_n_s32(0);
                    for i in (0..8).step_by(2) {
                        s0 = idot_sdot(s0, codes[i], ys(OFFS[i]));
                        s1 = idot_sdot(s1, codes[i + 1], ys(OFFS[i + 1]));
                    }
                    let sumi = vaddq_s32(s0, s1);
                    let p = vmulq_n_f32(dw, *dx.add(e + k));
                    acc_q[k] = vfmaq_f32(acc_q[k], vcvtq_f32_s32(sumi), p);
                }
            }
        }
    }
    core::array::from_fn(|k| [a[0][k], a[1][k], a[2][k], a[3][k]])
}

/// Tokens `j0..j0 + K` against the row groups `r0..r1`: [`q4_0_tokens`] (no correction table:
/// the codes are signed) with [`tile`].
///
/// # Safety
/// As [`mm_q4_0x16`]; `r0 <= r1 <= rows` multiples of 16, `j0 + K <= t`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "neon,dotprod")]
unsafe fn tokens<const K: usize>(
    out: &mut [f32],
    w: *const u8,
    rb: usize,
    rows: usize,
    rr: (usize, usize),
    x: *const u8,
    stride: usize,
    j0: usize,
    nb: usize,
) {
    // SAFETY: the caller's contract is `q4_0_tokens`'s; this function has NEON and dotprod; the
    // tile gets the chunk's scale table for k < K, which is its contract.
    unsafe {
        q4_0_tokens::<[float32x4_t; 4], K, TT, { CHUNK_NB * TT }, false>(
            out,
            (w, rb, rows),
            rr,
            (x, stride, j0),
            nb,
            |g, xs, bb, (dx, _), acc| tile::<K>(g, xs, bb, dx, acc),
        )
    }
}

/// Packed Q4_0 x Q8_0.
///
/// # Safety
/// `w` holds `rows` (a multiple of 16) packed Q4_0 rows of `rb` bytes (`n / QK` blocks each), `x`
/// holds `t` rows of `n / QK` Q8_0 blocks `stride` bytes apart, `out.len() == t * rows`; the CPU
/// has NEON and dotprod.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "neon,dotprod")]
unsafe fn mm_q4_0x16(
    out: &mut [f32],
    w: *const u8,
    rb: usize,
    rows: usize,
    x: *const u8,
    stride: usize,
    t: usize,
    n: usize,
) {
    debug_assert_eq!(out.len(), t * rows);
    let nb = n / QK;
    panels_x_tiles((rows, rb, PANEL_BYTES), t, TT, |rr, j0, k| {
        // SAFETY: rr are multiples of 16 within rows, tokens j0..j0 + k <= t; the caller's
        // guarantees cover the rest.
        unsafe {
            match k {
                1 => tokens::<1>(out, w, rb, rows, rr, x, stride, j0, nb),
                2 => tokens::<2>(out, w, rb, rows, rr, x, stride, j0, nb),
                3 => tokens::<3>(out, w, rb, rows, rr, x, stride, j0, nb),
                _ => tokens::<4>(out, w, rb, rows, rr, x, stride, j0, nb),
            }
        }
    });
}

/// Bytes of one packed Q8_0 group-block and of one Q4_1 group-block (16 rows).
const GB8: usize = 16 * 34;
const GB41: usize = 16 * 20;
/// Bytes of one Q8_1 activation block.
const XB1: usize = 36;
/// Tokens per Q8_0 tile (four lane sums per token: 16 accumulators, eight code registers).
const TT8: usize = 4;
/// Tokens per Q4_1 tile (four lane sums and `summs` per token).
const TT41: usize = 3;
/// Entries of the per-block table of a token tile: one scale per token (Q8_0) or `d` and `s`
/// (Q4_1), for rows of up to [`Q8_0_MAX_BLOCKS`] blocks.
const TAB: usize = Q8_0_MAX_BLOCKS * if TT8 > 2 * TT41 { TT8 } else { 2 * TT41 };

/// `(a0 + a1) + (a2 + a3)` of four rows at once: `vaddvq_f32` of each row's four lane sums.
#[inline]
#[target_feature(enable = "neon")]
fn hsum4_lanes(a: &[float32x4_t; 4]) -> float32x4_t {
    vaddq_f32(vaddq_f32(a[0], a[1]), vaddq_f32(a[2], a[3]))
}

/// The 4-byte activation slice at `p` in every 32-bit lane.
///
/// # Safety
/// 4 readable bytes at `p`.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn bcast4(p: *const u8) -> int8x16_t {
    // SAFETY: 4 readable bytes at p (caller); read_unaligned accepts any alignment.
    vreinterpretq_s8_s32(vdupq_n_s32(unsafe {
        core::ptr::read_unaligned(p.cast::<i32>())
    }))
}

/// Rows `4q..4q + 4` of one 16-row Q8_0 group (`g`) x `K` tokens over all `nb` blocks in
/// [`crate::packed::LaneOrder::Four`]: lane `l` of a row is `SDOT` of chunks `l` and `l + 4`.
/// `dx[b * TT8 + k]` is token `k`'s f32 scale of block `b`.
///
/// # Safety
/// `nb` group-blocks at `g`; `nb` Q8_0 blocks at each `x[k]`; the table entries for `b < nb`,
/// `k < K`; `q < 4`; the CPU has NEON and dotprod.
#[inline]
#[target_feature(enable = "neon,dotprod")]
unsafe fn quarter_q8_0<const K: usize>(
    g: *const u8,
    q: usize,
    x: [*const u8; K],
    nb: usize,
    dx: *const f32,
) -> [float32x4_t; K] {
    let mut acc = [[vdupq_n_f32(0.0); 4]; K];
    for b in 0..nb {
        // SAFETY: b < nb group-blocks at g, Q8_0 blocks at each x[k], table entries (caller).
        unsafe {
            let gb = g.add(b * GB8);
            let dw = f16x4(gb, 4 * q);
            let codes: [int8x16_t; 8] =
                core::array::from_fn(|c| vld1q_s8(gb.add(32 + 64 * c + 16 * q).cast()));
            for k in 0..K {
                let y = x[k].add(b * XB + 2);
                let p = vmulq_n_f32(dw, *dx.add(b * TT8 + k));
                for (l, a) in acc[k].iter_mut().enumerate() {
                    let s = idot_sdot(vdupq_n_s32(0), codes[l], bcast4(y.add(4 * l)));
                    let s = idot_sdot(s, codes[l + 4], bcast4(y.add(16 + 4 * l)));
                    *a = vfmaq_f32(*a, vcvtq_f32_s32(s), p);
                }
            }
        }
    }
    core::array::from_fn(|k| hsum4_lanes(&acc[k]))
}

/// Rows `4q..4q + 4` of one 16-row Q4_1 group x `K` Q8_1 tokens over all `nb` blocks in
/// [`crate::packed::LaneOrder::Four`]: lane `l` of a row is `SDOT` of the low and the high
/// nibbles of chunk `l`. `ds[(b * TT41 + k) * 2]` is token `k`'s f32 `d` of block `b`, the next
/// entry its `s`.
///
/// # Safety
/// `nb` group-blocks at `g`; `nb` Q8_1 blocks at each `x[k]`; the table entries for `b < nb`,
/// `k < K`; `q < 4`; the CPU has NEON and dotprod.
#[inline]
#[target_feature(enable = "neon,dotprod")]
unsafe fn quarter_q4_1<const K: usize>(
    g: *const u8,
    q: usize,
    x: [*const u8; K],
    nb: usize,
    ds: *const f32,
) -> [float32x4_t; K] {
    let m = vdupq_n_u8(0x0f);
    let mut acc = [[vdupq_n_f32(0.0); 4]; K];
    let mut summs = [vdupq_n_f32(0.0); K];
    for b in 0..nb {
        // SAFETY: b < nb group-blocks at g, Q8_1 blocks at each x[k], table entries (caller).
        unsafe {
            let gb = g.add(b * GB41);
            let dw = f16x4(gb, 4 * q);
            let mw = f16x4(gb.add(32), 4 * q);
            let mut lo = [vdupq_n_s8(0); 4];
            let mut hi = [vdupq_n_s8(0); 4];
            for c in 0..4 {
                let v = vld1q_u8(gb.add(64 + 64 * c + 16 * q));
                lo[c] = vreinterpretq_s8_u8(vandq_u8(v, m));
                hi[c] = vreinterpretq_s8_u8(vshrq_n_u8::<4>(v));
            }
            for k in 0..K {
                let e = (b * TT41 + k) * 2;
                let y = x[k].add(b * XB1 + 4);
                let p = vmulq_n_f32(dw, *ds.add(e));
                // A rounded product, then the sum (no FMA: the row-major kernels' order).
                summs[k] = vaddq_f32(summs[k], vmulq_n_f32(mw, *ds.add(e + 1)));
                for (l, a) in acc[k].iter_mut().enumerate() {
                    let s = idot_sdot(vdupq_n_s32(0), lo[l], bcast4(y.add(4 * l)));
                    let s = idot_sdot(s, hi[l], bcast4(y.add(16 + 4 * l)));
                    *a = vfmaq_f32(*a, vcvtq_f32_s32(s), p);
                }
            }
        }
    }
    core::array::from_fn(|k| vaddq_f32(hsum4_lanes(&acc[k]), summs[k]))
}

/// Bytes of one packed Q5_0 / Q5_1 group-block (16 rows).
const GB50: usize = 16 * 22;
const GB51: usize = 16 * 24;

/// Rows `4q..4q + 4` of one 16-row Q5_0 (`Q51 = false`, Q8_0 tokens) or Q5_1 (`Q51`, Q8_1
/// tokens) group x `K` tokens over all `nb` blocks in [`crate::packed::LaneOrder::Four`], as
/// the row-major dotprod kernels: lane `l` of a row is `SDOT` of codes `4l..4l + 4` (low nibbles
/// of chunk `l`) and `16 + 4l..16 + 4l + 4` (high nibbles), bit 4 of each code from the row's
/// `qh` (`TBL` of the `qh` byte into the row's four bytes, `CMTST` against the four bits, `& 16`);
/// Q5_0 codes signed (`q - 16`), Q5_1 codes `q` plus `summs`. Tables as [`quarter_q8_0`] (Q5_0)
/// or [`quarter_q4_1`] (Q5_1).
///
/// # Safety
/// `nb` group-blocks at `g`; `nb` activation blocks at each `x[k]`; the table entries for
/// `b < nb`, `k < K`; `q < 4`; the CPU has NEON and dotprod.
#[inline]
#[target_feature(enable = "neon,dotprod")]
unsafe fn quarter_q5<const Q51: bool, const K: usize>(
    g: *const u8,
    q: usize,
    x: [*const u8; K],
    nb: usize,
    tab: *const f32,
) -> [float32x4_t; K] {
    let (gbb, qh_at, xbb, tt) = if Q51 {
        (GB51, 64, XB1, TT41)
    } else {
        (GB50, 32, XB, TT8)
    };
    let m = vdupq_n_u8(0x0f);
    let b16 = vdupq_n_u8(0x10);
    let c16 = vdupq_n_s8(16);
    const BASE: [u8; 16] = [0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8, 8, 12, 12, 12, 12];
    // SAFETY: BASE is 16 readable bytes.
    let base = unsafe { vld1q_u8(BASE.as_ptr()) };
    // Byte s of each row's qh (u32) into all four bytes of the row's lane, s = 0..4.
    let index: [uint8x16_t; 4] = core::array::from_fn(|s| vaddq_u8(base, vdupq_n_u8(s as u8)));
    // Bits 4p + 0..4 of the selected byte, one per byte of a lane.
    let bits = [
        vreinterpretq_u8_u32(vdupq_n_u32(0x0804_0201)),
        vreinterpretq_u8_u32(vdupq_n_u32(0x8040_2010)),
    ];
    let code = |nib: uint8x16_t, qh: uint8x16_t, bit0: usize| {
        // Codes bit0..bit0 + 4 of each row: qh byte bit0 / 8, bits bit0 % 8 + 0..4.
        let sel = vqtbl1q_u8(qh, index[bit0 / 8]);
        let high = vandq_u8(vtstq_u8(sel, bits[bit0 % 8 / 4]), b16);
        let c = vreinterpretq_s8_u8(vorrq_u8(nib, high));
        if Q51 {
            c
        } else {
            vsubq_s8(c, c16)
        }
    };
    let mut acc = [[vdupq_n_f32(0.0); 4]; K];
    let mut summs = [vdupq_n_f32(0.0); K];
    for b in 0..nb {
        // SAFETY: b < nb group-blocks at g, activation blocks at each x[k], table entries
        // (caller).
        unsafe {
            let gb = g.add(b * gbb);
            let dw = f16x4(gb, 4 * q);
            let qh = vld1q_u8(gb.add(qh_at + 16 * q));
            let mut lo = [vdupq_n_s8(0); 4];
            let mut hi = [vdupq_n_s8(0); 4];
            for c in 0..4 {
                let v = vld1q_u8(gb.add(qh_at + 64 + 64 * c + 16 * q));
                lo[c] = code(vandq_u8(v, m), qh, 4 * c);
                hi[c] = code(vshrq_n_u8::<4>(v), qh, 16 + 4 * c);
            }
            for k in 0..K {
                let y = x[k].add(b * xbb + xbb - 32);
                let e = b * tt + k;
                let p = if Q51 {
                    let mw = f16x4(gb.add(32), 4 * q);
                    // A rounded product, then the sum (no FMA: the row-major kernels' order).
                    summs[k] = vaddq_f32(summs[k], vmulq_n_f32(mw, *tab.add(2 * e + 1)));
                    vmulq_n_f32(dw, *tab.add(2 * e))
                } else {
                    vmulq_n_f32(dw, *tab.add(e))
                };
                for (l, a) in acc[k].iter_mut().enumerate() {
                    let s = idot_sdot(vdupq_n_s32(0), lo[l], bcast4(y.add(4 * l)));
                    let s = idot_sdot(s, hi[l], bcast4(y.add(16 + 4 * l)));
                    *a = vfmaq_f32(*a, vcvtq_f32_s32(s), p);
                }
            }
        }
    }
    core::array::from_fn(|k| {
        let s = hsum4_lanes(&acc[k]);
        if Q51 {
            vaddq_f32(s, summs[k])
        } else {
            s
        }
    })
}

/// Packed types with lane sums, the `KIND` of [`mm_lanes`].
const Q8_0: u8 = 0;
const Q4_1: u8 = 1;
const Q5_0: u8 = 2;
const Q5_1: u8 = 3;

/// Tokens `j0..j0 + K` of packed Q8_0, Q4_1, Q5_0 or Q5_1 (`KIND`) against the row groups
/// `r0..r1`: the token tile's per-block tables for whole rows (at most [`Q8_0_MAX_BLOCKS`]
/// blocks), then every group quarter by quarter.
///
/// # Safety
/// As [`mm_lanes`]; `r0 <= r1 <= rows` multiples of 16, `j0 + K <= t`, `K <= TT8` (Q8_0, Q5_0) or
/// `K <= TT41` (Q4_1, Q5_1).
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "neon,dotprod")]
unsafe fn tokens_lanes<const KIND: u8, const K: usize>(
    out: &mut [f32],
    w: *const u8,
    rb: usize,
    rows: usize,
    (r0, r1): (usize, usize),
    x: *const u8,
    stride: usize,
    j0: usize,
    nb: usize,
) {
    let q8_1 = KIND == Q4_1 || KIND == Q5_1;
    assert!(nb <= Q8_0_MAX_BLOCKS && K <= if q8_1 { TT41 } else { TT8 });
    let xs: [*const u8; K] = core::array::from_fn(|k| x.wrapping_add((j0 + k) * stride));
    // Q8_0 activations: `tab[b * TT8 + k]` the scale; Q8_1: `tab[(b * TT41 + k) * 2]` d, then s.
    // Only entries b < nb, k < K are read, each after it is written.
    let mut tab = [core::mem::MaybeUninit::<f32>::uninit(); TAB];
    for b in 0..nb {
        for (k, xk) in xs.iter().enumerate() {
            let xbb = if q8_1 { XB1 } else { XB };
            // SAFETY: block b < nb of token j0 + k < t is in bounds (caller): its first 4 bytes.
            let blk = unsafe { core::slice::from_raw_parts(xk.add(b * xbb), 4) };
            let f16 = |i: usize| half::f16::from_le_bytes([blk[i], blk[i + 1]]).to_f32();
            if q8_1 {
                tab[(b * TT41 + k) * 2].write(f16(0));
                tab[(b * TT41 + k) * 2 + 1].write(f16(2));
            } else {
                tab[b * TT8 + k].write(f16(0));
            }
        }
    }
    let tp = tab.as_ptr().cast::<f32>();
    let mut g = r0;
    while g < r1 {
        let grp = w.wrapping_add(g * rb);
        for q in 0..4 {
            // SAFETY: rows g..g + 16 are a whole group in bounds, tokens in bounds, the table's
            // entries for b < nb, k < K written just above; this function's features.
            let v = unsafe {
                match KIND {
                    Q8_0 => quarter_q8_0::<K>(grp, q, xs, nb, tp),
                    Q4_1 => quarter_q4_1::<K>(grp, q, xs, nb, tp),
                    Q5_0 => quarter_q5::<false, K>(grp, q, xs, nb, tp),
                    _ => quarter_q5::<true, K>(grp, q, xs, nb, tp),
                }
            };
            for (k, v) in v.iter().enumerate() {
                let at = (j0 + k) * rows + g + 4 * q;
                // SAFETY: at + 4 <= t * rows = out.len() (g + 16 <= rows, j0 + k < t).
                unsafe { vst1q_f32(out.as_mut_ptr().add(at), *v) };
            }
        }
        g += PACK_ROWS;
    }
}

/// Packed Q8_0, Q4_1, Q5_0 or Q5_1 (`KIND`; Q8_1 activations for Q4_1 and Q5_1, else Q8_0) in
/// [`crate::packed::LaneOrder::Four`]: row panels, token tiles.
///
/// # Safety
/// `w` holds `rows` (a multiple of 16) packed rows of `rb` bytes (`n / QK` blocks each, at most
/// [`Q8_0_MAX_BLOCKS`]), `x` holds `t` activation rows of `n / QK` blocks `stride` bytes apart,
/// `out.len() == t * rows`; the CPU has NEON and dotprod.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "neon,dotprod")]
unsafe fn mm_lanes<const KIND: u8>(
    out: &mut [f32],
    w: *const u8,
    rb: usize,
    rows: usize,
    x: *const u8,
    stride: usize,
    t: usize,
    n: usize,
) {
    debug_assert_eq!(out.len(), t * rows);
    debug_assert_eq!(rows % PACK_ROWS, 0);
    let nb = n / QK;
    let tt = if KIND == Q4_1 || KIND == Q5_1 {
        TT41
    } else {
        TT8
    };
    panels_x_tiles((rows, rb, PANEL_BYTES), t, tt, |rr, j0, k| {
        // SAFETY: rr are multiples of 16 within rows, tokens j0..j0 + k <= t, k <= the type's
        // tile; the caller's guarantees cover the rest.
        unsafe {
            match k {
                1 => tokens_lanes::<KIND, 1>(out, w, rb, rows, rr, x, stride, j0, nb),
                2 => tokens_lanes::<KIND, 2>(out, w, rb, rows, rr, x, stride, j0, nb),
                3 => tokens_lanes::<KIND, 3>(out, w, rb, rows, rr, x, stride, j0, nb),
                4 if KIND == Q8_0 => {
                    tokens_lanes::<Q8_0, 4>(out, w, rb, rows, rr, x, stride, j0, nb)
                }
                4 if KIND == Q5_0 => {
                    tokens_lanes::<Q5_0, 4>(out, w, rb, rows, rr, x, stride, j0, nb)
                }
                _ => unreachable!("a tile of {k} tokens"),
            }
        }
    });
}
