//! NEON + dotprod kernel for the packed Q4_0 layout of [`crate::packed`]: one weight row per
//! 32-bit lane, a group's 16 rows in four registers of four. `SDOT` adds the four products of a
//! row's 4-byte step into its lane, so a block's integer dot for four rows is eight `SDOT`s of the
//! signed codes `q - 8` against a broadcast 4-byte slice of the activation block (exact: no
//! correction term needed); the scaling is one multiply and one FMA per four rows, the
//! reference's float steps, so the result is bitwise [`crate::packed::matmul_packed_reference`].

use core::arch::aarch64::*;

use super::dotprod::{idot_sdot, NeonDotprod};
use super::neon::f16x4;
use crate::blocks::QK;
use crate::packed::{check_matmul_packed, q8_0_scale_and_sum, PACK_ROWS};
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
    /// `out[j * rows + r]` for a packed Q4_0 `w`: see [`crate::Kernels::matmul_packed`].
    ///
    /// # Panics
    /// As [`crate::Kernels::matmul_packed`], or for a type other than Q4_0.
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
        assert_eq!(ty, QuantType::Q4_0, "NEON packed products are Q4_0 only");
        let rb = check_matmul_packed(ty, out.len(), w.len(), rows, x.len(), stride, t, n);
        // SAFETY: `self` proves neon+dotprod (only `detect` builds it); `check_matmul_packed`
        // established a packable Q4_0 matrix of rows * rb bytes, t activation rows of n / QK Q8_0
        // blocks `stride` bytes apart in x, and out.len() == t * rows.
        unsafe { mm_q4_0x16(out, w.as_ptr(), rb, rows, x.as_ptr(), stride, t, n) }
    }
}

/// One 16-row group x `K` tokens over blocks `b0..b1`, continuing from `acc[q][k]` (rows
/// `4q..4q + 4`, token `k`). `dx[(b - b0) * TT + k]` is token `k`'s f32 scale of block `b`.
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
    mut acc: [[float32x4_t; K]; 4],
) -> [[float32x4_t; K]; 4] {
    let m = vdupq_n_u8(0x0f);
    let eight = vdupq_n_s8(8);
    // Activation byte offset of each code register's 4-byte steps (low, high nibbles per chunk).
    const OFFS: [usize; 8] = [0, 16, 4, 20, 8, 24, 12, 28];
    for b in b0..b1 {
        let e = (b - b0) * TT;
        for (q, acc_q) in acc.iter_mut().enumerate() {
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
    acc
}

/// Tokens `j0..j0 + K` against the row groups `r0..r1`, as the AVX-512 kernel's `tokens`.
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
    (r0, r1): (usize, usize),
    x: *const u8,
    stride: usize,
    j0: usize,
    nb: usize,
) {
    let xs: [*const u8; K] = core::array::from_fn(|k| x.wrapping_add((j0 + k) * stride));
    // Only the entries of the current chunk are read, each after it is written.
    let mut dx = [core::mem::MaybeUninit::<f32>::uninit(); CHUNK_NB * TT];
    let mut b0 = 0;
    while b0 < nb {
        let b1 = (b0 + CHUNK_NB).min(nb);
        for b in b0..b1 {
            for (k, xk) in xs.iter().enumerate() {
                // SAFETY: block b < nb of token j0 + k < t is in bounds (caller).
                let (d, _) = unsafe { q8_0_scale_and_sum(xk.add(b * XB)) };
                dx[(b - b0) * TT + k].write(d);
            }
        }
        let mut g = r0;
        while g < r1 {
            let grp = w.wrapping_add(g * rb);
            let mut acc = [[vdupq_n_f32(0.0); K]; 4];
            if b0 > 0 {
                for (q, acc_q) in acc.iter_mut().enumerate() {
                    for (k, a) in acc_q.iter_mut().enumerate() {
                        let at = (j0 + k) * rows + g + 4 * q;
                        // SAFETY: at + 4 <= t * rows = out.len() (caller: g + 16 <= rows,
                        // j0 + k < t).
                        *a = unsafe { vld1q_f32(out.as_ptr().add(at)) };
                    }
                }
            }
            // SAFETY: rows g..g + 16 are a whole group in bounds, tokens in bounds, the table's
            // entries (b - b0) * TT + k for b0 <= b < b1, k < K written just above; the CPU has
            // the features (this function's).
            acc = unsafe { tile::<K>(grp, xs, (b0, b1), dx.as_ptr().cast::<f32>(), acc) };
            for (q, acc_q) in acc.iter().enumerate() {
                for (k, a) in acc_q.iter().enumerate() {
                    let at = (j0 + k) * rows + g + 4 * q;
                    // SAFETY: as for the load above.
                    unsafe { vst1q_f32(out.as_mut_ptr().add(at), *a) };
                }
            }
            g += PACK_ROWS;
        }
        b0 = b1;
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
    debug_assert_eq!(rows % PACK_ROWS, 0);
    let nb = n / QK;
    let panel = ((PANEL_BYTES / rb.max(1)) / PACK_ROWS * PACK_ROWS).max(PACK_ROWS);
    let mut r0 = 0;
    while r0 < rows {
        let rr = (r0, (r0 + panel).min(rows));
        let mut j0 = 0;
        while j0 < t {
            let k = (t - j0).min(TT);
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
            j0 += k;
        }
        r0 = rr.1;
    }
}
