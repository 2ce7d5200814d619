//! AVX-512 VNNI kernels for the packed layouts of [`crate::packed`]: one weight row per 32-bit
//! lane, 16 rows per register, so a block's integer dot for 16 rows is 8 `vpdpbusd` (Q4_0: four
//! 4-byte steps of low nibbles and four of high nibbles; Q8_0: eight 4-byte steps of codes biased
//! to unsigned by `^ 0x80`), each against a broadcast 4-byte slice of the activation block, started
//! from the exact correction `-bias * sum(y)` (bias 8 or 128); its scaling is one multiply and one
//! FMA. Bitwise equal to [`crate::packed::matmul_packed_reference`].

use core::arch::x86_64::*;

use super::avx512::Avx512Vnni;
use crate::blocks::QK;
use crate::packed::{check_matmul_packed, q8_0_scale_and_sum, PACK_ROWS};
use crate::QuantType;

/// Bytes of one packed group-block (16 rows): Q8_0 when `Q8`, else Q4_0.
const fn group_block_bytes(q8: bool) -> usize {
    if q8 {
        16 * 34
    } else {
        16 * 18
    }
}
/// Bytes of one Q8_0 activation block.
const XB: usize = 34;
/// Tokens per tile.
const TT: usize = 8;
/// Blocks per scale-table chunk (the tables live on the stack).
const CHUNK_NB: usize = 128;
/// Weight bytes per row panel, revisited once per token group: sized to stay in L2.
const PANEL_BYTES: usize = 512 * 1024;

impl Avx512Vnni {
    /// `out[j * rows + r]` for a packed `w`: see [`crate::Kernels::matmul_packed`].
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
        let rb = check_matmul_packed(ty, out.len(), w.len(), rows, x.len(), stride, t, n);
        // SAFETY: `self` proves avx512f/bw/vl/vnni + avx2/fma/f16c (only `detect` builds it);
        // `check_matmul_packed` established a packable matrix of `ty` (Q4_0 or Q8_0) of
        // rows * rb bytes, t activation rows of n / QK Q8_0 blocks `stride` bytes apart in x,
        // and out.len() == t * rows.
        unsafe {
            let (w, x) = (w.as_ptr(), x.as_ptr());
            if ty == QuantType::Q8_0 {
                mm_packed::<true>(out, w, rb, rows, x, stride, t, n)
            } else {
                mm_packed::<false>(out, w, rb, rows, x, stride, t, n)
            }
        }
    }
}

/// One 16-row group (`g`: its first group-block) x `K` tokens over blocks `b0..b1`, continuing
/// from `acc`; Q8_0 weights when `Q8`, else Q4_0. `dx[(b - b0) * TT + k]` is token `k`'s f32 scale
/// of block `b`, `cy[..]` its `-bias * sum(y)`.
///
/// # Safety
/// `b1` group-blocks at `g`; `b1` Q8_0 blocks at each `x[k]`; `(b1 - b0) * TT` entries in both
/// tables; the CPU has AVX-512 F/BW/VL + VNNI and F16C.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile<const Q8: bool, const K: usize>(
    g: *const u8,
    x: [*const u8; K],
    (b0, b1): (usize, usize),
    dx: *const f32,
    cy: *const i32,
    mut acc: [__m512; K],
) -> [__m512; K] {
    let m = _mm512_set1_epi8(0x0f);
    let bias = _mm512_set1_epi8(-128);
    // Activation byte offset of each code register's 4-byte steps.
    let offs: [usize; 8] = if Q8 {
        [0, 4, 8, 12, 16, 20, 24, 28]
    } else {
        [0, 16, 4, 20, 8, 24, 12, 28]
    };
    for b in b0..b1 {
        // SAFETY: b < b1 group-blocks at g, Q8_0 blocks at each x[k], table entries (caller).
        unsafe {
            let gb = g.add(b * group_block_bytes(Q8));
            let dw = _mm512_cvtph_ps(_mm256_loadu_si256(gb.cast()));
            let mut codes = [_mm512_setzero_si512(); 8];
            if Q8 {
                for (c, code) in codes.iter_mut().enumerate() {
                    let v = _mm512_loadu_si512(gb.add(32 + 64 * c).cast());
                    *code = _mm512_xor_si512(v, bias);
                }
            } else {
                for c in 0..4 {
                    let v = _mm512_loadu_si512(gb.add(32 + 64 * c).cast());
                    codes[2 * c] = _mm512_and_si512(v, m);
                    codes[2 * c + 1] = _mm512_and_si512(_mm512_srli_epi16::<4>(v), m);
                }
            }
            let e = (b - b0) * TT;
            for k in 0..K {
                let y = x[k].add(b * XB + 2);
                let ys = |o: usize| _mm512_set1_epi32(core::ptr::read_unaligned(y.add(o).cast()));
                let mut s0 = _mm512_set1_epi32(*cy.add(e + k));
                let mut s1 = _mm512_setzero_si512();
                for i in (0..8).step_by(2) {
                    s0 = _mm512_dpbusd_epi32(s0, codes[i], ys(offs[i]));
                    s1 = _mm512_dpbusd_epi32(s1, codes[i + 1], ys(offs[i + 1]));
                }
                let sumi = _mm512_add_epi32(s0, s1);
                let p = _mm512_mul_ps(dw, _mm512_set1_ps(*dx.add(e + k)));
                acc[k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi), p, acc[k]);
            }
        }
    }
    acc
}

/// Tokens `j0..j0 + K` against the row groups of `rows` (`r0..r1`), blocks in chunks of
/// [`CHUNK_NB`] with the scale tables rebuilt per chunk and the partial sums carried in `out`.
///
/// # Safety
/// As [`mm_packed`]; `r0 <= r1 <= rows` multiples of 16, `j0 + K <= t`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tokens<const Q8: bool, const K: usize>(
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
                cy[(b - b0) * TT + k].write(if Q8 { -128 * s } else { -8 * s });
            }
        }
        let mut g = r0;
        while g < r1 {
            let grp = w.wrapping_add(g * rb);
            let mut acc = [_mm512_setzero_ps(); K];
            if b0 > 0 {
                for (k, a) in acc.iter_mut().enumerate() {
                    // SAFETY: (j0 + k) * rows + g + 16 <= t * rows = out.len() (caller: g + 16
                    // <= rows, j0 + k < t); loadu accepts any alignment.
                    *a = unsafe { _mm512_loadu_ps(out.as_ptr().add((j0 + k) * rows + g)) };
                }
            }
            let tables = (dx.as_ptr().cast::<f32>(), cy.as_ptr().cast::<i32>());
            // SAFETY: rows g..g + 16 are a whole group in bounds, tokens in bounds, the tables'
            // entries (b - b0) * TT + k for b0 <= b < b1, k < K written just above; the CPU has
            // the features (this function's).
            acc = unsafe { tile::<Q8, K>(grp, xs, (b0, b1), tables.0, tables.1, acc) };
            for (k, a) in acc.iter().enumerate() {
                // SAFETY: as for the load above.
                unsafe { _mm512_storeu_ps(out.as_mut_ptr().add((j0 + k) * rows + g), *a) };
            }
            g += PACK_ROWS;
        }
        b0 = b1;
    }
}

/// Packed Q8_0 (`Q8`) or Q4_0 weights x Q8_0 activations.
///
/// # Safety
/// `w` holds `rows` (a multiple of 16) packed rows of `rb` bytes (`n / QK` blocks each), `x`
/// holds `t` rows of `n / QK` Q8_0 blocks `stride` bytes apart, `out.len() == t * rows`; the CPU
/// has AVX-512 F/BW/VL + VNNI and F16C.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn mm_packed<const Q8: bool>(
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
                    1 => tokens::<Q8, 1>(out, w, rb, rows, rr, x, stride, j0, nb),
                    2 => tokens::<Q8, 2>(out, w, rb, rows, rr, x, stride, j0, nb),
                    3 => tokens::<Q8, 3>(out, w, rb, rows, rr, x, stride, j0, nb),
                    4 => tokens::<Q8, 4>(out, w, rb, rows, rr, x, stride, j0, nb),
                    5 => tokens::<Q8, 5>(out, w, rb, rows, rr, x, stride, j0, nb),
                    6 => tokens::<Q8, 6>(out, w, rb, rows, rr, x, stride, j0, nb),
                    7 => tokens::<Q8, 7>(out, w, rb, rows, rr, x, stride, j0, nb),
                    _ => tokens::<Q8, 8>(out, w, rb, rows, rr, x, stride, j0, nb),
                }
            }
            j0 += k;
        }
        r0 = rr.1;
    }
}
