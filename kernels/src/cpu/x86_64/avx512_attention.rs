//! Attention dot products of several query heads that share one key/value head (grouped-query
//! attention), each result bitwise [`Avx512Vnni::dot_f16_ggml`]: every cached row is loaded and
//! widened once for the whole group, and the final horizontal sums of 16 rows are done together
//! (a transposed reduction: 15 vector adds for 16 rows instead of a shuffle chain per row), in
//! exactly the addition tree of gcc's `_mm512_reduce_add_ps`.

use core::arch::x86_64::*;

use core::array::from_fn;

use super::avx512::{load_f16x16, prefetch_tile, Avx512Vnni};
use super::{assert_rows_fit, rows_heads_shape};

/// Rows per transposed reduction.
const TILE: usize = 16;

/// How far ahead of the rows being summed their successors are fetched, in elements of row data
/// (`rows_ahead`): a decode step streams more weights than L2 holds between two visits of a layer's
/// cache, so the cache comes from L3 or memory. Each row's lines are asked for while the rows
/// before it are summed, a line per 64 bytes summed, so the requests are spread over the work
/// (a burst of a whole row's prefetches at once is mostly dropped by the core). Measured on one
/// layer at 2048 cached positions read from memory: the key rows 24 ahead (64-element rows) and
/// the value rows one pass ahead took 183 -> 157-163 us (9 heads; the values alone 98 -> 61).
const PREFETCH_ELEMS: usize = 1536;

/// Rows ahead to fetch for rows of `n` elements, at least the `r` rows of the next pass.
#[inline]
fn rows_ahead(n: usize, r: usize) -> usize {
    r.max(PREFETCH_ELEMS / n.max(1))
}

impl Avx512Vnni {
    /// `dst[i] = f32(src[i])` (`vcvtph2ps`, exact).
    pub fn widen_f16(self, src: &[half::f16], dst: &mut [f32]) {
        assert_eq!(src.len(), dst.len(), "widen_f16: lengths differ");
        let mut i = 0;
        while i < src.len() {
            let len = (src.len() - i).min(16);
            // SAFETY: `self` proves the features; i + len <= len of both slices; masked lanes
            // are neither read nor written.
            unsafe {
                let v = load_f16x16(src.as_ptr().add(i).cast(), len);
                _mm512_mask_storeu_ps(dst.as_mut_ptr().add(i), ((1u32 << len) - 1) as u16, v);
            }
            i += 16;
        }
    }

    /// `out[h * rows + r] = dot_f16_ggml(x[r * stride..][..n], y_h, n_pad)` (or, when `batched`,
    /// `dot_f16_sgemm(x[r * stride..][..n], y_h)`: tinyBLAS's order) for every head
    /// `h < y.len() / n` and row `r < rows`, where `y_h = y[h * n..][..n]` holds f16 values widened
    /// to f32 (so each product is the one ggml forms from two f16). `rows = out.len() / heads`.
    ///
    /// # Panics
    /// If `n == 0`, `y.len()` is not a multiple of `n`, `out.len()` not a multiple of the number of
    /// heads, `n_pad < n`, or `x` is shorter than the last row's end.
    #[allow(clippy::too_many_arguments)]
    pub fn dot_f16_rows_heads(
        self,
        batched: bool,
        x: &[half::f16],
        stride: usize,
        y: &[f32],
        n: usize,
        n_pad: usize,
        out: &mut [f32],
    ) {
        let (heads, rows) = rows_heads_shape(y.len(), n, out.len());
        assert!(n_pad >= n, "dot_f16_rows_heads: n_pad < n");
        assert_rows_fit("dot_f16_rows_heads", x.len(), rows, stride, n);
        if rows == 0 {
            return;
        }
        let xp = x.as_ptr().cast::<u16>();
        // Written by each tile before it is read (zeroed once here, not per tile).
        let mut tile = [[0.0f32; TILE]; 4];
        let mut h0 = 0;
        while h0 < heads {
            let g = (heads - h0).min(4);
            let yp = |h: usize| y[(h0 + h.min(g - 1)) * n..].as_ptr();
            let mut r0 = 0;
            while r0 < rows {
                let k = (rows - r0).min(TILE);
                let xt = xp.wrapping_add(r0 * stride);
                // Rows of 64 (one ggml step) keep the queries in registers; otherwise `R` rows go
                // side by side (as many as the registers hold for `G` heads).
                let short = n == 64 && n_pad < 128;
                let w = &mut tile;
                // SAFETY: `self` proves the features; rows r0..r0 + k hold n f16 each in x (asserted
                // above) and each y_h holds n f32 (`yp` clamps h to the group's last head).
                unsafe {
                    match (short, batched, g) {
                        (true, false, 1) => {
                            tile_heads_64::<1, false>(xt, stride, k, from_fn(yp), w)
                        }
                        (true, false, 2) => {
                            tile_heads_64::<2, false>(xt, stride, k, from_fn(yp), w)
                        }
                        (true, false, 3) => {
                            tile_heads_64::<3, false>(xt, stride, k, from_fn(yp), w)
                        }
                        (true, false, _) => {
                            tile_heads_64::<4, false>(xt, stride, k, from_fn(yp), w)
                        }
                        (true, true, 1) => tile_heads_64::<1, true>(xt, stride, k, from_fn(yp), w),
                        (true, true, 2) => tile_heads_64::<2, true>(xt, stride, k, from_fn(yp), w),
                        (true, true, 3) => tile_heads_64::<3, true>(xt, stride, k, from_fn(yp), w),
                        (true, true, _) => tile_heads_64::<4, true>(xt, stride, k, from_fn(yp), w),
                        (false, false, 1) => {
                            tile_heads::<1, 4>(xt, stride, k, from_fn(yp), n, n_pad, w)
                        }
                        (false, false, 2) => {
                            tile_heads::<2, 2>(xt, stride, k, from_fn(yp), n, n_pad, w)
                        }
                        (false, false, 3) => {
                            tile_heads::<3, 2>(xt, stride, k, from_fn(yp), n, n_pad, w)
                        }
                        (false, false, _) => {
                            tile_heads::<4, 1>(xt, stride, k, from_fn(yp), n, n_pad, w)
                        }
                        (false, true, 1) => {
                            tile_heads_sgemm::<1, 8>(xt, stride, k, from_fn(yp), n, w)
                        }
                        (false, true, 2) => {
                            tile_heads_sgemm::<2, 4>(xt, stride, k, from_fn(yp), n, w)
                        }
                        (false, true, 3) => {
                            tile_heads_sgemm::<3, 4>(xt, stride, k, from_fn(yp), n, w)
                        }
                        (false, true, _) => {
                            tile_heads_sgemm::<4, 4>(xt, stride, k, from_fn(yp), n, w)
                        }
                    }
                }
                for (h, t) in tile.iter().enumerate().take(g) {
                    out[(h0 + h) * rows + r0..][..k].copy_from_slice(&t[..k]);
                }
                r0 += k;
            }
            h0 += g;
        }
    }
}

/// `k <= 16` rows from `x` (`stride` elements apart) dotted with `G` heads `y[h]` in ggml's
/// order ([`super::avx512::dot_f16_ggml4`]'s per-row operations): `out[h][r]` for `r < k`. `R` rows
/// are summed side by side, so that each load of a head's `y` serves `R` rows (`R` divides 16 and
/// `R * G * 4` accumulators fit the 32 registers beside the `R` widened rows and one `y`).
///
/// # Safety
/// `n` readable f16 at `x + r * stride` for `r < k` (`k >= 1`), `n` readable f32 at each `y[h]`;
/// `n_pad >= n`; the CPU has this module's features.
// Constant-bound index loops: fully unrolled, so every accumulator stays in a register.
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile_heads<const G: usize, const R: usize>(
    x: *const u16,
    stride: usize,
    k: usize,
    y: [*const f32; G],
    n: usize,
    n_pad: usize,
    out: &mut [[f32; TILE]; 4],
) {
    let np = n_pad & !63;
    let vec_end = n.min(np);
    let zero = _mm512_setzero_ps();
    let ahead = rows_ahead(n, R);
    // Per head, each row's four ggml accumulators folded to one vector, row by row: every entry
    // is written by the row loop below before the reduction reads it (no zeroing: 3 KiB a tile).
    let mut rowsum = [[core::mem::MaybeUninit::<__m512>::uninit(); TILE]; G];
    let mut r0 = 0;
    while r0 < TILE {
        // Rows past k repeat the last one; their sums are dropped.
        let xr: [*const u16; R] =
            core::array::from_fn(|q| x.wrapping_add((r0 + q).min(k - 1) * stride));
        // Rows `ahead` on (past this tile too: the caller's next tile continues the stride), into
        // L1 as these are summed: strided rows (the transposed value cache) each start a new page,
        // where the hardware prefetcher does not follow. A prefetch never faults.
        let next: [*const u8; R] =
            core::array::from_fn(|q| x.wrapping_add((r0 + q + ahead) * stride).cast());
        let mut acc = [[[zero; 4]; G]; R];
        let mut i = 0;
        while i + 64 <= vec_end {
            for p in next {
                prefetch_tile(p, 2 * i, 128);
            }
            for j in 0..4 {
                // SAFETY: i + 64 <= n elements at every xr[q] and y[h] (caller).
                unsafe {
                    let xv: [__m512; R] =
                        core::array::from_fn(|q| load_f16x16(xr[q].add(i + 16 * j), 16));
                    for h in 0..G {
                        let yv = _mm512_loadu_ps(y[h].add(i + 16 * j));
                        for q in 0..R {
                            acc[q][h][j] = _mm512_fmadd_ps(xv[q], yv, acc[q][h][j]);
                        }
                    }
                }
            }
            i += 64;
        }
        for p in next {
            prefetch_tile(p, 2 * i, 2 * (n - i));
        }
        // The last steps (fewer than four; the last may be partial) go to accumulators 0, 1, 2, 3
        // in turn, zero-filled past vec_end.
        for j in 0..4 {
            if i >= vec_end {
                break;
            }
            let len = (vec_end - i).min(16);
            let m = ((1u32 << len) - 1) as u16;
            // SAFETY: i + len <= n elements at every xr[q] and y[h] (caller); masked lanes are not
            // read.
            unsafe {
                let xv: [__m512; R] = core::array::from_fn(|q| load_f16x16(xr[q].add(i), len));
                for h in 0..G {
                    let yv = _mm512_maskz_loadu_ps(m, y[h].add(i));
                    for q in 0..R {
                        acc[q][h][j] = _mm512_fmadd_ps(xv[q], yv, acc[q][h][j]);
                    }
                }
            }
            i += 16;
        }
        for q in 0..R {
            for h in 0..G {
                let s0 = _mm512_add_ps(acc[q][h][0], acc[q][h][2]);
                let s1 = _mm512_add_ps(acc[q][h][1], acc[q][h][3]);
                rowsum[h][r0 + q].write(_mm512_add_ps(s0, s1));
            }
        }
        r0 += R;
    }
    for h in 0..G {
        // SAFETY: the loop over r0 above wrote every rowsum[h][r] (R divides TILE).
        let rows: [__m512; TILE] = core::array::from_fn(|r| unsafe { rowsum[h][r].assume_init() });
        let sums = reduce_add16x16(&rows);
        // SAFETY: `out[h]` holds 16 f32.
        unsafe { _mm512_storeu_ps(out[h].as_mut_ptr(), sums) };
    }
    if np < n {
        // ggml sums the elements past the last 64-element step in f64, after the vector part.
        for (h, &yh) in y.iter().enumerate() {
            for (r, o) in out[h].iter_mut().enumerate().take(k) {
                let xr = x.wrapping_add(r * stride);
                let mut sumf = f64::from(*o);
                for i in np..n {
                    // SAFETY: i < n (caller).
                    let (a, b) = unsafe { (*xr.add(i), *yh.add(i)) };
                    sumf += f64::from(half::f16::from_bits(a).to_f32() * b);
                }
                *o = sumf as f32;
            }
        }
    }
}

/// [`tile_heads`] in tinyBLAS's order ([`Avx512Vnni::dot_f16_sgemm`], llama.cpp's products for a
/// batch of tokens): per row and head one accumulator over 16-element steps (the last zero-filled),
/// then gcc's `_mm512_reduce_add_ps` tree, done for 16 rows at once by [`reduce_add16x16`]. `R` rows
/// side by side share each load of a head's `y`.
///
/// # Safety
/// As [`tile_heads`].
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile_heads_sgemm<const G: usize, const R: usize>(
    x: *const u16,
    stride: usize,
    k: usize,
    y: [*const f32; G],
    n: usize,
    out: &mut [[f32; TILE]; 4],
) {
    let zero = _mm512_setzero_ps();
    let ahead = rows_ahead(n, R);
    // Every entry is written by the row loop before the reduction reads it.
    let mut rowsum = [[core::mem::MaybeUninit::<__m512>::uninit(); TILE]; G];
    let mut r0 = 0;
    while r0 < TILE {
        // Rows past k repeat the last one; their sums are dropped.
        let xr: [*const u16; R] =
            core::array::from_fn(|q| x.wrapping_add((r0 + q).min(k - 1) * stride));
        // As in `tile_heads`: a line of each row `ahead` on per 32 elements summed.
        let next: [*const u8; R] =
            core::array::from_fn(|q| x.wrapping_add((r0 + q + ahead) * stride).cast());
        let mut acc = [[zero; G]; R];
        let mut i = 0;
        while i + 16 <= n {
            if i % 32 == 0 {
                for p in next {
                    prefetch_tile(p, 2 * i, 64);
                }
            }
            // SAFETY: i + 16 <= n elements at every xr[q] and y[h] (caller).
            unsafe {
                let xv: [__m512; R] = core::array::from_fn(|q| load_f16x16(xr[q].add(i), 16));
                for h in 0..G {
                    let yv = _mm512_loadu_ps(y[h].add(i));
                    for q in 0..R {
                        acc[q][h] = _mm512_fmadd_ps(xv[q], yv, acc[q][h]);
                    }
                }
            }
            i += 16;
        }
        if i < n {
            for p in next {
                prefetch_tile(p, 2 * i, 2 * (n - i));
            }
            let len = n - i;
            let m = ((1u32 << len) - 1) as u16;
            // SAFETY: i + len <= n elements at every xr[q] and y[h] (caller); masked lanes are not
            // read (zeros, as tinyBLAS's zero-padded last step).
            unsafe {
                let xv: [__m512; R] = core::array::from_fn(|q| load_f16x16(xr[q].add(i), len));
                for h in 0..G {
                    let yv = _mm512_maskz_loadu_ps(m, y[h].add(i));
                    for q in 0..R {
                        acc[q][h] = _mm512_fmadd_ps(xv[q], yv, acc[q][h]);
                    }
                }
            }
        }
        for q in 0..R {
            for h in 0..G {
                rowsum[h][r0 + q].write(acc[q][h]);
            }
        }
        r0 += R;
    }
    for h in 0..G {
        // SAFETY: the loop over r0 above wrote every rowsum[h][r] (R divides TILE).
        let rows: [__m512; TILE] = core::array::from_fn(|r| unsafe { rowsum[h][r].assume_init() });
        // SAFETY: `out[h]` holds 16 f32.
        unsafe { _mm512_storeu_ps(out[h].as_mut_ptr(), reduce_add16x16(&rows)) };
    }
}

/// [`tile_heads`] (`BATCHED == false`, with `n_pad < 128`) or [`tile_heads_sgemm`] (`BATCHED`) for
/// rows of exactly 64 elements (one ggml step of four vectors; four tinyBLAS steps): the `G` heads'
/// 64 values stay in registers for all 16 rows, so each row costs its own four loads only.
///
/// # Safety
/// 64 readable f16 at `x + r * stride` for `r < k` (`k >= 1`), 64 readable f32 at each `y[h]`;
/// the CPU has this module's features.
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile_heads_64<const G: usize, const BATCHED: bool>(
    x: *const u16,
    stride: usize,
    k: usize,
    y: [*const f32; G],
    out: &mut [[f32; TILE]; 4],
) {
    let zero = _mm512_setzero_ps();
    let ahead = rows_ahead(64, 1);
    let yv: [[__m512; 4]; G] = core::array::from_fn(|h| {
        // SAFETY: 64 readable f32 at each y[h] (caller).
        core::array::from_fn(|j| unsafe { _mm512_loadu_ps(y[h].add(16 * j)) })
    });
    // Every entry is written by the row loop before the reduction reads it.
    let mut rowsum = [[core::mem::MaybeUninit::<__m512>::uninit(); TILE]; G];
    for r in 0..TILE {
        // Rows past k repeat the last one; their sums are dropped.
        let xr = x.wrapping_add(r.min(k - 1) * stride);
        prefetch_tile(x.wrapping_add((r + ahead) * stride).cast(), 0, 128);
        // SAFETY: 64 readable f16 at xr (caller).
        let xv: [__m512; 4] = core::array::from_fn(|j| unsafe { load_f16x16(xr.add(16 * j), 16) });
        for h in 0..G {
            let sum = if BATCHED {
                // tinyBLAS: one accumulator over the four 16-element steps.
                let mut acc = zero;
                for j in 0..4 {
                    acc = _mm512_fmadd_ps(xv[j], yv[h][j], acc);
                }
                acc
            } else {
                // ggml: four accumulators of one step each, `a_j = fma(x_j, y_j, +0)`, folded
                // (a0 + a2) + (a1 + a3). Here `fma(x2, y2, x0 * y0) + fma(x3, y3, x1 * y1)`:
                // the same bits once `+0` is added to the row's total (see `plus_zero`), and
                // one addition instead of three, which (beside the conversions and the
                // reduction) bounded this tile on the FP add pipes.
                let s02 = _mm512_fmadd_ps(xv[2], yv[h][2], _mm512_mul_ps(xv[0], yv[h][0]));
                let s13 = _mm512_fmadd_ps(xv[3], yv[h][3], _mm512_mul_ps(xv[1], yv[h][1]));
                _mm512_add_ps(s02, s13)
            };
            rowsum[h][r].write(sum);
        }
    }
    for h in 0..G {
        // SAFETY: the loop over r in 0..TILE above wrote every rowsum[h][r].
        let rows: [__m512; TILE] = core::array::from_fn(|r| unsafe { rowsum[h][r].assume_init() });
        let sums = reduce_add16x16(&rows);
        // (The batch order keeps tinyBLAS's FMA chain from `+0`: nothing to map back.)
        let sums = if BATCHED { sums } else { plus_zero(sums) };
        // SAFETY: `out[h]` holds 16 f32.
        unsafe { _mm512_storeu_ps(out[h].as_mut_ptr(), sums) };
    }
}

/// `v + (+0)`: turns `-0` lanes into `+0` and leaves every other lane as it is.
///
/// Why [`tile_heads_64`]'s single-token sums, then `+0`, are exactly ggml's (NaN payloads aside):
/// - A product of two values widened from f16 (11-bit significands, exponents far inside f32's)
///   is exact in f32 and never underflows. So `x0 * y0` equals ggml's `a0 = fma(x0, y0, +0)` in
///   value, and `fma(x2, y2, x0 * y0)`, one rounding of the exact `x2 * y2 + x0 * y0`, equals ggml's
///   `a0 + a2` (the rounding of the same exact sum) in value.
/// - Only the sign of a zero can differ: ggml's terms are never `-0` (the FMA adds `+0` to an exact
///   product), so neither is any sum of them (an IEEE sum is `-0` only when both addends are),
///   while a product here may be `-0`. Through every step of the tree the partial sum here equals
///   ggml's, or is `-0` where ggml's is `+0`: with a non-zero exact result the signs of zero
///   operands do not matter, and an exact cancellation gives `+0` either way.
/// - Adding `+0` to the total maps that `-0` back to `+0` and changes nothing else.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn plus_zero(v: __m512) -> __m512 {
    _mm512_add_ps(v, _mm512_setzero_ps())
}

/// Lane `r` of the result is gcc's `_mm512_reduce_add_ps(v[r])` (lanes `i + 8`, then `i + 4`, then
/// `[0] + [2]`, `[1] + [3]`, then the two; IEEE addition commutes, so only this tree matters), for
/// 16 vectors at once: each level adds two shuffles of two vectors, halving their number.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn reduce_add16x16(v: &[__m512; TILE]) -> __m512 {
    // Level 1: w[k] lanes 0..8 = v[2k] lanes i + (i + 8), lanes 8..16 the same of v[2k + 1].
    let w: [__m512; 8] = core::array::from_fn(|k| {
        let (a, b) = (v[2 * k], v[2 * k + 1]);
        _mm512_add_ps(
            _mm512_shuffle_f32x4::<0b01_00_01_00>(a, b),
            _mm512_shuffle_f32x4::<0b11_10_11_10>(a, b),
        )
    });
    // Level 2: 128-bit lane m of x[k] = row 4k + m, elements i + (i + 4).
    let x: [__m512; 4] = core::array::from_fn(|k| {
        let (a, b) = (w[2 * k], w[2 * k + 1]);
        _mm512_add_ps(
            _mm512_shuffle_f32x4::<0b10_00_10_00>(a, b),
            _mm512_shuffle_f32x4::<0b11_01_11_01>(a, b),
        )
    });
    // Level 3: lane m of y[k] = [row 8k + m: [0] + [2], [1] + [3]; row 8k + 4 + m: the same].
    let y: [__m512; 2] = core::array::from_fn(|k| {
        let (a, b) = (x[2 * k], x[2 * k + 1]);
        _mm512_add_ps(
            _mm512_shuffle_ps::<0b01_00_01_00>(a, b),
            _mm512_shuffle_ps::<0b11_10_11_10>(a, b),
        )
    });
    // Level 4: element 4m + e = row 4e + m.
    let z = _mm512_add_ps(
        _mm512_shuffle_ps::<0b10_00_10_00>(y[0], y[1]),
        _mm512_shuffle_ps::<0b11_01_11_01>(y[0], y[1]),
    );
    // Row r = 4e + m sits at element 4m + e.
    let idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    _mm512_permutexvar_ps(idx, z)
}
