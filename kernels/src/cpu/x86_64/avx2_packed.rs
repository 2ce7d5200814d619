//! AVX2 kernel for the packed Q4_0 layout of [`crate::packed`] (CPUs without AVX-512): one weight
//! row per 32-bit lane, eight rows per register, a group's 16 rows in two halves. Without VNNI the
//! integer dot is `vpmaddubsw` (unsigned codes 0..15 x signed activations, pairs into i16: at most
//! 2 * 15 * 128 = 3840 in magnitude, so the eight 4-byte steps of a block also add up in i16
//! without saturation, 8 * 3840 < 32768) and one `vpmaddwd` by ones into i32 per row, minus the
//! exact `8 * sum(y)`. Exact for every byte pattern; the float steps are the reference's, so the
//! result is bitwise [`crate::packed::matmul_packed_reference`].

use core::arch::x86_64::*;

use super::avx2::Avx2;
use crate::blocks::QK;
use crate::packed::{check_matmul_packed, q8_0_scale_and_sum, PACK_ROWS};
use crate::QuantType;

/// Bytes of one packed Q4_0 group-block (16 rows).
const GB: usize = 16 * 18;
/// Bytes of one Q8_0 activation block.
const XB: usize = 34;
/// Tokens per tile (16 ymm registers: eight of codes, the rest for accumulators).
const TT: usize = 4;
/// Blocks per scale-table chunk (the tables live on the stack).
const CHUNK_NB: usize = 128;
/// Weight bytes per row panel, revisited once per token group: sized to stay in L2.
const PANEL_BYTES: usize = 512 * 1024;

impl Avx2 {
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
        assert_eq!(ty, QuantType::Q4_0, "AVX2 packed products are Q4_0 only");
        let rb = check_matmul_packed(ty, out.len(), w.len(), rows, x.len(), stride, t, n);
        // SAFETY: `self` proves avx2/fma/f16c (only `detect` builds it); `check_matmul_packed`
        // established a packable Q4_0 matrix of rows * rb bytes, t activation rows of n / QK Q8_0
        // blocks `stride` bytes apart in x, and out.len() == t * rows.
        unsafe { mm_q4_0x16(out, w.as_ptr(), rb, rows, x.as_ptr(), stride, t, n) }
    }
}

/// One 16-row group x `K` tokens over blocks `b0..b1`, continuing from `acc[h][k]` (rows
/// `8h..8h + 8`, token `k`). Tables as in the AVX-512 kernel, `TT` entries per block.
///
/// # Safety
/// `b1` group-blocks at `g`; `b1` Q8_0 blocks at each `x[k]`; `(b1 - b0) * TT` entries in both
/// tables; the CPU has AVX2, FMA and F16C.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile<const K: usize>(
    g: *const u8,
    x: [*const u8; K],
    (b0, b1): (usize, usize),
    dx: *const f32,
    cy: *const i32,
    mut acc: [[__m256; K]; 2],
) -> [[__m256; K]; 2] {
    let m = _mm256_set1_epi8(0x0f);
    let ones = _mm256_set1_epi16(1);
    // Activation byte offset of each code register's 4-byte steps (low, high nibbles per chunk).
    const OFFS: [usize; 8] = [0, 16, 4, 20, 8, 24, 12, 28];
    for b in b0..b1 {
        let e = (b - b0) * TT;
        for (h, acc_h) in acc.iter_mut().enumerate() {
            // SAFETY: b < b1 group-blocks at g, Q8_0 blocks at each x[k], table entries (caller).
            unsafe {
                let gb = g.add(b * GB);
                let dw = _mm256_cvtph_ps(_mm_loadu_si128(gb.add(16 * h).cast()));
                let mut codes = [_mm256_setzero_si256(); 8];
                for c in 0..4 {
                    let v = _mm256_loadu_si256(gb.add(32 + 64 * c + 32 * h).cast());
                    codes[2 * c] = _mm256_and_si256(v, m);
                    codes[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16::<4>(v), m);
                }
                for k in 0..K {
                    let y = x[k].add(b * XB + 2);
                    let ys =
                        |o: usize| _mm256_set1_epi32(core::ptr::read_unaligned(y.add(o).cast()));
                    let mut s16 = _mm256_maddubs_epi16(codes[0], ys(OFFS[0]));
                    for i in 1..8 {
                        s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(codes[i], ys(OFFS[i])));
                    }
                    let s32 = _mm256_madd_epi16(s16, ones);
                    let sumi = _mm256_add_epi32(s32, _mm256_set1_epi32(*cy.add(e + k)));
                    let p = _mm256_mul_ps(dw, _mm256_set1_ps(*dx.add(e + k)));
                    acc_h[k] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), p, acc_h[k]);
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
#[target_feature(enable = "avx2,fma,f16c")]
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
    let mut cy = [core::mem::MaybeUninit::<i32>::uninit(); CHUNK_NB * TT];
    let mut b0 = 0;
    while b0 < nb {
        let b1 = (b0 + CHUNK_NB).min(nb);
        for b in b0..b1 {
            for k in 0..K {
                // SAFETY: block b < nb of token j0 + k < t is in bounds (caller).
                let (d, s) = unsafe { q8_0_scale_and_sum(xs[k].add(b * XB)) };
                dx[(b - b0) * TT + k].write(d);
                cy[(b - b0) * TT + k].write(-8 * s);
            }
        }
        let mut g = r0;
        while g < r1 {
            let grp = w.wrapping_add(g * rb);
            let mut acc = [[_mm256_setzero_ps(); K]; 2];
            if b0 > 0 {
                for (h, acc_h) in acc.iter_mut().enumerate() {
                    for (k, a) in acc_h.iter_mut().enumerate() {
                        let at = (j0 + k) * rows + g + 8 * h;
                        // SAFETY: at + 8 <= t * rows = out.len() (caller: g + 16 <= rows,
                        // j0 + k < t); loadu accepts any alignment.
                        *a = unsafe { _mm256_loadu_ps(out.as_ptr().add(at)) };
                    }
                }
            }
            let tables = (dx.as_ptr().cast::<f32>(), cy.as_ptr().cast::<i32>());
            // SAFETY: rows g..g + 16 are a whole group in bounds, tokens in bounds, the tables'
            // entries (b - b0) * TT + k for b0 <= b < b1, k < K written just above; the CPU has
            // the features (this function's).
            acc = unsafe { tile::<K>(grp, xs, (b0, b1), tables.0, tables.1, acc) };
            for (h, acc_h) in acc.iter().enumerate() {
                for (k, a) in acc_h.iter().enumerate() {
                    let at = (j0 + k) * rows + g + 8 * h;
                    // SAFETY: as for the load above.
                    unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(at), *a) };
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
/// has AVX2, FMA and F16C.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma,f16c")]
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
