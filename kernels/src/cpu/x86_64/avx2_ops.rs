//! AVX2 + FMA versions of the ggml-exact ops of [`crate::reference::ops`], as methods of [`Avx2`].
//! They reproduce the *AVX-512* build of ggml (the reference), not ggml's own AVX2 code: a 16-lane
//! vector is two `__m256` halves with the same lane-wise FMAs, and `vscalefps` (`j * 2^n`, one
//! rounding) is computed as the scalar definition does, in f64 (exact product, one rounding to
//! f32). So every lane runs the same operations as the scalar definition, bit for bit. Partial
//! blocks go through a zero-filled stack buffer.

use core::arch::x86_64::*;

use half::f16;

use super::avx2::Avx2;
use super::{assert_rows_fit, rows_heads_shape};
use crate::reference::ops as reference;

impl Avx2 {
    /// `x[i] = v_expf(x[i])`: see [`crate::reference::ops::v_expf`].
    pub fn expf_ggml(self, x: &mut [f32]) {
        let mut blocks = x.chunks_exact_mut(8);
        for b in &mut blocks {
            // SAFETY: `self` proves avx2 + fma; `b` holds 8 floats.
            unsafe { store8(b, v_expf8(load8(b))) };
        }
        let tail = blocks.into_remainder();
        if !tail.is_empty() {
            let mut buf = [0.0f32; 8];
            buf[..tail.len()].copy_from_slice(tail);
            // SAFETY: as above, on the 8-float buffer.
            unsafe {
                let v = v_expf8(load8(&buf));
                store8(&mut buf, v);
            }
            tail.copy_from_slice(&buf[..tail.len()]);
        }
    }

    /// See [`crate::reference::ops::soft_max`].
    pub fn soft_max_ggml(self, x: &mut [f32], max: f32) -> f64 {
        let mut sum = 0.0f64;
        for block in x.chunks_mut(16) {
            let mut buf = [0.0f32; 16];
            buf[..block.len()].copy_from_slice(block);
            // SAFETY: `self` proves avx2 + fma; `buf` holds 16 floats.
            unsafe { soft_max16(&mut buf, max) };
            // Lanes past the row are ggml's masked cells: exactly 0 in the block sum.
            buf[block.len()..].fill(0.0);
            block.copy_from_slice(&buf[..block.len()]);
            // SAFETY: as above.
            sum += f64::from(unsafe { reduce_add16(load8(&buf[..8]), load8(&buf[8..])) });
        }
        sum
    }

    /// See [`crate::reference::ops::swiglu`].
    pub fn swiglu_ggml(self, g: &mut [f32], u: &[f32]) {
        assert!(u.len() >= g.len(), "swiglu: u shorter than g");
        let vec_end = g.len() / 16 * 16;
        // SAFETY: `self` proves avx2 + fma; vec_end <= g.len() <= u.len().
        unsafe { swiglu(&mut g[..vec_end], &u[..vec_end]) };
        // ggml's tail (fewer than 16 elements) uses libm expf: the reference on a tail this short
        // takes exactly that path.
        reference::swiglu(&mut g[vec_end..], &u[vec_end..]);
    }

    /// See [`crate::reference::ops::rope`].
    pub fn rope_ggml(self, head: &mut [f32], cache: &[f32]) {
        let m = head.len().min(cache.len()) & !1;
        let (head, cache) = (&mut head[..m], &cache[..m]);
        let v = m / 8 * 8;
        // SAFETY: `self` proves avx2 + fma; both slices hold v floats.
        unsafe { rope(&mut head[..v], &cache[..v]) };
        if v < m {
            let (mut hb, mut cb) = ([0.0f32; 8], [0.0f32; 8]);
            hb[..m - v].copy_from_slice(&head[v..]);
            cb[..m - v].copy_from_slice(&cache[v..]);
            // SAFETY: as above, on the 8-float buffers.
            unsafe { rope(&mut hb, &cb) };
            head[v..].copy_from_slice(&hb[..m - v]);
        }
    }

    /// `dst[i] = f16(src[i])` (`vcvtps2ph`, round to nearest even, as `half` and ggml).
    pub fn to_f16(self, src: &[f32], dst: &mut [f16]) {
        assert_eq!(src.len(), dst.len(), "to_f16: lengths differ");
        let v = src.len() / 8 * 8;
        // SAFETY: `self` proves avx2 + f16c; both slices hold v elements.
        unsafe { to_f16(&src[..v], &mut dst[..v]) };
        reference::to_f16(&src[v..], &mut dst[v..]);
    }

    /// `dst[i] = f32(src[i])` (`vcvtph2ps`, exact).
    pub fn widen_f16(self, src: &[f16], dst: &mut [f32]) {
        assert_eq!(src.len(), dst.len(), "widen_f16: lengths differ");
        let v = src.len() / 8 * 8;
        // SAFETY: `self` proves avx2 + f16c; both slices hold v elements.
        unsafe { widen_f16(&src[..v], &mut dst[..v]) };
        for (d, s) in dst[v..].iter_mut().zip(&src[v..]) {
            *d = s.to_f32();
        }
    }

    /// See [`crate::reference::ops::dot_f16_ggml`] (ggml's AVX-512 order, on two halves).
    pub fn dot_f16_ggml(self, x: &[f16], y: &[f16], n_pad: usize) -> f32 {
        assert_eq!(x.len(), y.len(), "dot_f16_ggml: lengths differ");
        assert!(n_pad >= x.len(), "dot_f16_ggml: n_pad < len");
        // SAFETY: `self` proves avx2 + fma + f16c; both slices hold x.len() elements.
        unsafe { dot_f16_ggml(x, y, n_pad) }
    }

    /// See [`crate::reference::ops::dot_f16_sgemm`] (tinyBLAS's AVX-512 order, on two halves).
    pub fn dot_f16_sgemm(self, a: &[f16], b: &[f16]) -> f32 {
        assert_eq!(a.len(), b.len(), "dot_f16_sgemm: lengths differ");
        // SAFETY: `self` proves avx2 + fma + f16c; both slices hold a.len() elements.
        unsafe { dot_f16_sgemm(a, b) }
    }

    /// `out[h * rows + r] = dot_f16_ggml(x[r * stride..][..n], y_h, n_pad)` (ggml's single-token
    /// order) for every head `h < y.len() / n` and row `r < rows = out.len() / heads`, where
    /// `y_h = y[h * n..][..n]` holds f16 values widened to f32: bitwise those dots. One head at a
    /// time (its eight accumulators, two per ggml accumulator, fill half the sixteen registers),
    /// eight rows at a time: each row's sixteen lanes are folded to eight as `reduce_add16` does,
    /// and the rest of the tree is done for the eight rows together (`reduce_add8x8`), instead
    /// of a chain of shuffles per row.
    ///
    /// # Panics
    /// If `n == 0`, `y.len()` is not a multiple of `n`, `out.len()` not a multiple of the number of
    /// heads, `n_pad < n`, or `x` is shorter than the last row's end.
    pub fn dot_f16_rows_heads_ggml(
        self,
        x: &[f16],
        stride: usize,
        y: &[f32],
        n: usize,
        n_pad: usize,
        out: &mut [f32],
    ) {
        let (_, rows) = rows_heads_shape(y.len(), n, out.len());
        assert!(n_pad >= n, "dot_f16_rows_heads: n_pad < n");
        assert_rows_fit("dot_f16_rows_heads", x.len(), rows, stride, n);
        for (yh, o) in y.chunks_exact(n).zip(out.chunks_exact_mut(rows.max(1))) {
            for (t, o) in o[..rows].chunks_mut(8).enumerate() {
                // SAFETY: `self` proves the features; rows 8t..8t + o.len() of x hold n elements
                // each (asserted above), and yh holds n.
                unsafe { rows8_ggml(x.as_ptr().add(8 * t * stride), stride, yh, n_pad, o) };
            }
        }
    }

    /// `out[h * rows + r] = dot_f16_sgemm(x[r * stride..][..n], y_h)` (tinyBLAS's order, the
    /// batch's) for every head `h < y.len() / n` and row `r < rows = out.len() / heads`, where
    /// `y_h = y[h * n..][..n]` holds f16 values widened to f32: bitwise those dots. Each row is
    /// widened once for up to four heads (two accumulators each), and the heads' values are never
    /// widened again.
    ///
    /// # Panics
    /// If `n == 0`, `y.len()` is not a multiple of `n`, `out.len()` not a multiple of the number of
    /// heads, or `x` is shorter than the last row's end.
    pub fn dot_f16_rows_heads_sgemm(
        self,
        x: &[f16],
        stride: usize,
        y: &[f32],
        n: usize,
        out: &mut [f32],
    ) {
        let (heads, rows) = rows_heads_shape(y.len(), n, out.len());
        assert_rows_fit("dot_f16_rows_heads", x.len(), rows, stride, n);
        let mut h0 = 0;
        while h0 < heads {
            let g = (heads - h0).min(4);
            let yh = |h: usize| &y[(h0 + h.min(g - 1)) * n..][..n];
            for r in 0..rows {
                let xr = &x[r * stride..][..n];
                // SAFETY: `self` proves the features; xr and every y_h hold n elements.
                let sums = unsafe {
                    match g {
                        1 => pad4(dot_sgemm_heads::<1>(xr, core::array::from_fn(yh))),
                        2 => pad4(dot_sgemm_heads::<2>(xr, core::array::from_fn(yh))),
                        3 => pad4(dot_sgemm_heads::<3>(xr, core::array::from_fn(yh))),
                        _ => dot_sgemm_heads::<4>(xr, core::array::from_fn(yh)),
                    }
                };
                for (h, &v) in sums.iter().enumerate().take(g) {
                    out[(h0 + h) * rows + r] = v;
                }
            }
            h0 += g;
        }
    }
}

/// `out[r] = dot_f16_ggml(x[r * stride..][..n], y, n_pad)` for the `k = out.len() <= 8` rows at
/// `x` (`n = y.len()`): per row the four ggml accumulators as two halves each, folded
/// `(a0 + a2) + (a1 + a3)` and to eight lanes (`hi + lo`, `reduce_add16`'s first level); then the
/// rest of the tree for the eight rows at once; then the elements past the last 64-element step of
/// `n_pad` in f64, as ggml does.
///
/// # Safety
/// `1 <= k <= 8`; `n` readable f16 at `x + r * stride` for `r < k`; `n_pad >= n`; the CPU has
/// avx2 + fma + f16c.
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn rows8_ggml(x: *const f16, stride: usize, y: &[f32], n_pad: usize, out: &mut [f32]) {
    let (n, k) = (y.len(), out.len());
    debug_assert!((1..=8).contains(&k) && n_pad >= n);
    let np = n_pad & !63;
    let vec_end = n.min(np);
    let zero = _mm256_setzero_ps();
    let yp = y.as_ptr();
    let mut t3 = [zero; 8];
    // Rows of exactly one 64-element step (a 64-wide head's keys): ggml's `a_j = fma(x_j, y_j, +0)`
    // folded `(a0 + a2) + (a1 + a3)` as `fma(x2, y2, x0 * y0) + fma(x3, y3, x1 * y1)`, then `+0` on
    // the totals: the same bits (see the AVX-512 path's `plus_zero`), half the additions. (With
    // `n_pad >= n`, a row of 64 has no elements past its step for the f64 tail.)
    let one_step = n == 64;
    for r in 0..8 {
        // Rows past k repeat the last one; their sums are dropped.
        let xr = x.wrapping_add(r.min(k - 1) * stride);
        if one_step {
            let half = |o: usize| {
                // SAFETY: o + 48 + 8 <= 64 = n elements at xr and y (caller).
                unsafe {
                    let xy = |j: usize| {
                        let xj = _mm256_cvtph_ps(_mm_loadu_si128(xr.add(o + 16 * j).cast()));
                        (xj, _mm256_loadu_ps(yp.add(o + 16 * j)))
                    };
                    let ((x0, y0), (x1, y1), (x2, y2), (x3, y3)) = (xy(0), xy(1), xy(2), xy(3));
                    let s02 = _mm256_fmadd_ps(x2, y2, _mm256_mul_ps(x0, y0));
                    let s13 = _mm256_fmadd_ps(x3, y3, _mm256_mul_ps(x1, y1));
                    _mm256_add_ps(s02, s13)
                }
            };
            let (lo, hi) = (half(0), half(8));
            t3[r] = _mm256_add_ps(hi, lo);
            continue;
        }
        // Eight f16 at xr + i, widened.
        let load = |i: usize| {
            // SAFETY: every use below has i + 8 <= vec_end <= n elements at xr (caller).
            unsafe { _mm256_cvtph_ps(_mm_loadu_si128(xr.add(i).cast())) }
        };
        let mut acc = [[zero; 2]; 4];
        let mut i = 0;
        while i + 64 <= vec_end {
            for j in 0..4 {
                let o = i + 16 * j;
                // SAFETY: o + 16 <= vec_end <= n elements at xr and y.
                unsafe {
                    acc[j][0] = _mm256_fmadd_ps(load(o), _mm256_loadu_ps(yp.add(o)), acc[j][0]);
                    acc[j][1] =
                        _mm256_fmadd_ps(load(o + 8), _mm256_loadu_ps(yp.add(o + 8)), acc[j][1]);
                }
            }
            i += 64;
        }
        // The last steps (fewer than four; the last may be partial) go to accumulators 0, 1, 2, 3
        // in turn, zero-filled past vec_end.
        for a in acc.iter_mut() {
            if i >= vec_end {
                break;
            }
            let e = (i + 16).min(vec_end);
            // SAFETY: xr + i.. holds e - i <= 16 elements (caller); the features as above.
            let (xl, xh) =
                unsafe { load_f16x16(core::slice::from_raw_parts(xr.add(i).cast::<f16>(), e - i)) };
            // SAFETY: the features as above.
            let (yl, yh) = unsafe { load_f32x16(&y[i..e]) };
            a[0] = _mm256_fmadd_ps(xl, yl, a[0]);
            a[1] = _mm256_fmadd_ps(xh, yh, a[1]);
            i += 16;
        }
        let (lo, hi) = fold_ggml(&acc);
        t3[r] = _mm256_add_ps(hi, lo);
    }
    let mut sums = [0f32; 8];
    let total = reduce_add8x8(&t3);
    let total = if one_step {
        _mm256_add_ps(total, zero)
    } else {
        total
    };
    // SAFETY: `sums` holds 8 floats.
    unsafe { _mm256_storeu_ps(sums.as_mut_ptr(), total) };
    for (r, o) in out.iter_mut().enumerate() {
        *o = sums[r];
        if np < n {
            // SAFETY: row r < k holds n elements (caller).
            let xr = unsafe { core::slice::from_raw_parts(x.add(r * stride), n) };
            let mut sumf = f64::from(sums[r]);
            for (a, b) in xr.iter().zip(y).skip(np) {
                sumf += f64::from(a.to_f32() * b);
            }
            *o = sumf as f32;
        }
    }
}

/// ggml's four 16-lane accumulators (each two halves) folded `(a0 + a2) + (a1 + a3)`, as the
/// low and the high half.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn fold_ggml(acc: &[[__m256; 2]; 4]) -> (__m256, __m256) {
    let half = |h: usize| {
        _mm256_add_ps(
            _mm256_add_ps(acc[0][h], acc[2][h]),
            _mm256_add_ps(acc[1][h], acc[3][h]),
        )
    };
    (half(0), half(1))
}

/// Lane `r` of the result is the rest of [`reduce_add16`]'s tree for `t3[r]` (its eight lanes
/// after the first level): `[i + 4] + [i]`, then `([0] + [2]) + ([1] + [3])`, for 8 vectors at
/// once: each level adds two shuffles of two vectors.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn reduce_add8x8(t3: &[__m256; 8]) -> __m256 {
    // u[k]: 128-bit lane 0 = row 2k's four sums `[i + 4] + [i]`, lane 1 = row 2k + 1's.
    let u: [__m256; 4] = core::array::from_fn(|k| {
        let (a, b) = (t3[2 * k], t3[2 * k + 1]);
        _mm256_add_ps(
            _mm256_permute2f128_ps::<0x31>(a, b),
            _mm256_permute2f128_ps::<0x20>(a, b),
        )
    });
    // v[k]: lane 0 = [row 4k: [0] + [2], [1] + [3]; row 4k + 2: the same], lane 1 the same of
    // rows 4k + 1 and 4k + 3.
    let v: [__m256; 2] = core::array::from_fn(|k| {
        let (a, b) = (u[2 * k], u[2 * k + 1]);
        _mm256_add_ps(
            _mm256_shuffle_ps::<0b01_00_01_00>(a, b),
            _mm256_shuffle_ps::<0b11_10_11_10>(a, b),
        )
    });
    // Lane 0 = rows 0, 2, 4, 6; lane 1 = rows 1, 3, 5, 7.
    let z = _mm256_add_ps(
        _mm256_shuffle_ps::<0b10_00_10_00>(v[0], v[1]),
        _mm256_shuffle_ps::<0b11_01_11_01>(v[0], v[1]),
    );
    _mm256_permutevar8x32_ps(z, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
}

/// `v` followed by zeros, as four values.
fn pad4<const G: usize>(v: [f32; G]) -> [f32; 4] {
    core::array::from_fn(|h| if h < G { v[h] } else { 0.0 })
}

/// Up to 16 floats from `p` into two vectors, zero-filled past `p.len()`.
///
/// # Safety
/// The CPU has avx2.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load_f32x16(p: &[f32]) -> (__m256, __m256) {
    debug_assert!(p.len() <= 16);
    let mut buf = [0f32; 16];
    let src = if p.len() == 16 {
        p
    } else {
        buf[..p.len()].copy_from_slice(p);
        &buf[..]
    };
    // SAFETY: `src` holds 16 floats.
    unsafe { (load8(src), load8(&src[8..])) }
}

/// [`dot_f16_sgemm`] of one row `x` with `G` heads `y[h]` (f16 values widened to f32): the row is
/// widened once for all of them; bitwise `G` calls of it.
///
/// # Safety
/// `y[h].len() == x.len()` for every head; the CPU has avx2 + fma + f16c.
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_sgemm_heads<const G: usize>(x: &[f16], y: [&[f32]; G]) -> [f32; G] {
    let (mut lo, mut hi) = ([_mm256_setzero_ps(); G], [_mm256_setzero_ps(); G]);
    let mut i = 0;
    while i < x.len() {
        let e = (i + 16).min(x.len());
        // SAFETY: the caller guarantees the features.
        let (xl, xh) = unsafe { load_f16x16(&x[i..e]) };
        for h in 0..G {
            // SAFETY: as above; y[h] holds x.len() >= e elements.
            let (yl, yh) = unsafe { load_f32x16(&y[h][i..e]) };
            lo[h] = _mm256_fmadd_ps(xl, yl, lo[h]);
            hi[h] = _mm256_fmadd_ps(xh, yh, hi[h]);
        }
        i += 16;
    }
    core::array::from_fn(|h| reduce_add16(lo[h], hi[h]))
}

/// # Safety
/// `p.len() >= 8`; AVX.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load8(p: &[f32]) -> __m256 {
    debug_assert!(p.len() >= 8);
    // SAFETY: 8 readable floats (caller); loadu accepts any alignment.
    unsafe { _mm256_loadu_ps(p.as_ptr()) }
}

/// # Safety
/// `p.len() >= 8`; AVX.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn store8(p: &mut [f32], v: __m256) {
    debug_assert!(p.len() >= 8);
    // SAFETY: 8 writable floats (caller); storeu accepts any alignment.
    unsafe { _mm256_storeu_ps(p.as_mut_ptr(), v) }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn splat(bits: u32) -> __m256 {
    _mm256_set1_ps(f32::from_bits(bits))
}

/// gcc 12's `_mm512_reduce_add_ps` of the 16 lanes `lo ++ hi`: 8 + 8, 4 + 4, `[0]+[2]`,
/// `[1]+[3]`, then the two.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn reduce_add16(lo: __m256, hi: __m256) -> f32 {
    let t3 = _mm256_add_ps(hi, lo);
    let t6 = _mm_add_ps(_mm256_extractf128_ps::<1>(t3), _mm256_castps256_ps128(t3));
    let t8 = _mm_add_ps(t6, _mm_shuffle_ps::<0b01_00_11_10>(t6, t6));
    _mm_cvtss_f32(_mm_add_ss(t8, _mm_movehdup_ps(t8)))
}

/// ggml's AVX-512 `ggml_v_expf` on 8 lanes, with `vscalefps` done in f64 (see the module doc).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn v_expf8(x: __m256) -> __m256 {
    let r = splat(0x4b40_0000); // 0x1.8p23
    let z = _mm256_fmadd_ps(x, splat(0x3fb8_aa3b), r);
    let n = _mm256_sub_ps(z, r);
    let b = _mm256_fnmadd_ps(
        n,
        splat(0x35bf_be8e),
        _mm256_fnmadd_ps(n, splat(0x3f31_7200), x),
    );
    let u = _mm256_mul_ps(b, b);
    let j = _mm256_fmadd_ps(
        _mm256_fmadd_ps(
            _mm256_fmadd_ps(splat(0x3c07_2010), b, splat(0x3d2b_9f17)),
            u,
            _mm256_fmadd_ps(splat(0x3e2a_af33), b, splat(0x3eff_fedb)),
        ),
        u,
        _mm256_fmadd_ps(splat(0x3f7f_fff6), b, _mm256_set1_ps(1.0)),
    );
    // j * 2^n: n is an integer in [-192, 192] wherever the result is kept, so 2^n is an exact
    // f64 built from its exponent bits; other lanes (|n| > 192 or NaN) are replaced below or
    // stay NaN through j.
    let ni = _mm256_cvtps_epi32(n);
    let bias = _mm256_set1_epi64x(1023);
    let pow = |h: __m128i| {
        _mm256_castsi256_pd(_mm256_slli_epi64::<52>(_mm256_add_epi64(
            _mm256_cvtepi32_epi64(h),
            bias,
        )))
    };
    let lo = _mm256_mul_pd(
        _mm256_cvtps_pd(_mm256_castps256_ps128(j)),
        pow(_mm256_castsi256_si128(ni)),
    );
    let hi = _mm256_mul_pd(
        _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(j)),
        pow(_mm256_extracti128_si256::<1>(ni)),
    );
    let res = _mm256_set_m128(_mm256_cvtpd_ps(hi), _mm256_cvtpd_ps(lo));
    let abs_n = _mm256_andnot_ps(_mm256_set1_ps(-0.0), n);
    let d = _mm256_cmp_ps::<_CMP_GT_OQ>(abs_n, _mm256_set1_ps(192.0));
    if _mm256_movemask_ps(d) == 0 {
        return res;
    }
    let zero = _mm256_setzero_ps();
    let le0 = _mm256_cmp_ps::<_CMP_LE_OQ>(n, zero);
    let alt = _mm256_blendv_ps(_mm256_set1_ps(f32::INFINITY), zero, le0);
    _mm256_blendv_ps(res, alt, d)
}

/// One 16-lane block of ggml's soft_max: `x = v_expf(x - max)`.
///
/// # Safety
/// The CPU has avx2 + fma.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn soft_max16(x: &mut [f32; 16], max: f32) {
    let vmax = _mm256_set1_ps(max);
    for h in x.chunks_exact_mut(8) {
        // SAFETY: `h` holds 8 floats; the caller guarantees the features.
        unsafe { store8(h, v_expf8(_mm256_sub_ps(load8(h), vmax))) };
    }
}

/// # Safety
/// `g.len() == u.len()`, a multiple of 8; the CPU has avx2 + fma.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn swiglu(g: &mut [f32], u: &[f32]) {
    debug_assert!(g.len() == u.len() && g.len().is_multiple_of(8));
    let (zero, one) = (_mm256_setzero_ps(), _mm256_set1_ps(1.0));
    for (gb, ub) in g.chunks_exact_mut(8).zip(u.chunks_exact(8)) {
        // SAFETY: 8 floats in each chunk; the caller guarantees the features.
        unsafe {
            let x = load8(gb);
            let e = v_expf8(_mm256_sub_ps(zero, x));
            store8(
                gb,
                _mm256_mul_ps(_mm256_div_ps(x, _mm256_add_ps(one, e)), load8(ub)),
            );
        }
    }
}

/// Pseudo-code per pair `(x0, x1)`, `(c, s)`: `p = x1 * (s, c)`, then `vfmaddsub`:
/// `x0' = x0 * c - p.0`, `x1' = x0 * s + p.1`, each with one rounding.
///
/// # Safety
/// `head.len() == cache.len()`, a multiple of 8; the CPU has avx2 + fma.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn rope(head: &mut [f32], cache: &[f32]) {
    debug_assert!(head.len() == cache.len() && head.len().is_multiple_of(8));
    for (h, c) in head.chunks_exact_mut(8).zip(cache.chunks_exact(8)) {
        // SAFETY: 8 floats in each chunk; the caller guarantees the features.
        unsafe {
            let x = load8(h);
            let cs = load8(c);
            let sc = _mm256_permute_ps::<0b10_11_00_01>(cs);
            let p = _mm256_mul_ps(_mm256_movehdup_ps(x), sc);
            store8(h, _mm256_fmaddsub_ps(_mm256_moveldup_ps(x), cs, p));
        }
    }
}

/// # Safety
/// `src.len() == dst.len()`, a multiple of 8; the CPU has avx2 + f16c.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn to_f16(src: &[f32], dst: &mut [f16]) {
    debug_assert!(src.len() == dst.len() && src.len().is_multiple_of(8));
    for (s, d) in src.chunks_exact(8).zip(dst.chunks_exact_mut(8)) {
        // SAFETY: 8 elements in each chunk (16 bytes of f16); the caller guarantees the features.
        unsafe {
            let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(load8(s));
            _mm_storeu_si128(d.as_mut_ptr().cast(), h);
        }
    }
}

/// # Safety
/// `src.len() == dst.len()`, a multiple of 8; the CPU has avx2 + f16c.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn widen_f16(src: &[f16], dst: &mut [f32]) {
    debug_assert!(src.len() == dst.len() && src.len().is_multiple_of(8));
    for (s, d) in src.chunks_exact(8).zip(dst.chunks_exact_mut(8)) {
        // SAFETY: 8 elements in each chunk (16 bytes of f16); the caller guarantees the features.
        unsafe { store8(d, _mm256_cvtph_ps(_mm_loadu_si128(s.as_ptr().cast()))) };
    }
}

/// 16 f16 from `p` (zeros past `p.len()`, at most 16) as two 8-lane halves.
///
/// # Safety
/// The CPU has avx2 + f16c.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load_f16x16(p: &[f16]) -> (__m256, __m256) {
    debug_assert!(p.len() <= 16);
    let mut buf = [f16::ZERO; 16];
    let src = if p.len() == 16 {
        p
    } else {
        buf[..p.len()].copy_from_slice(p);
        &buf[..]
    };
    // SAFETY: `src` holds 16 f16 = 32 bytes; loadu accepts any alignment.
    unsafe {
        let lo = _mm_loadu_si128(src.as_ptr().cast());
        let hi = _mm_loadu_si128(src.as_ptr().add(8).cast());
        (_mm256_cvtph_ps(lo), _mm256_cvtph_ps(hi))
    }
}

/// See [`Avx2::dot_f16_ggml`].
///
/// # Safety
/// `x.len() == y.len() <= n_pad`; the CPU has avx2 + fma + f16c.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_f16_ggml(x: &[f16], y: &[f16], n_pad: usize) -> f32 {
    let n = x.len();
    let np = n_pad & !63;
    let vec_end = n.min(np);
    let mut sum = [[_mm256_setzero_ps(); 2]; 4];
    let mut i = 0;
    while i < vec_end {
        let e = (i + 16).min(vec_end);
        // SAFETY: the caller guarantees the features.
        let ((xl, xh), (yl, yh)) = unsafe { (load_f16x16(&x[i..e]), load_f16x16(&y[i..e])) };
        let s = &mut sum[(i / 16) % 4];
        s[0] = _mm256_fmadd_ps(xl, yl, s[0]);
        s[1] = _mm256_fmadd_ps(xh, yh, s[1]);
        i += 16;
    }
    let (lo, hi) = fold_ggml(&sum);
    let mut sumf = f64::from(reduce_add16(lo, hi));
    for (a, b) in x.iter().zip(y).skip(np) {
        sumf += f64::from(a.to_f32() * b.to_f32());
    }
    sumf as f32
}

/// See [`Avx2::dot_f16_sgemm`].
///
/// # Safety
/// `a.len() == b.len()`; the CPU has avx2 + fma + f16c.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_f16_sgemm(a: &[f16], b: &[f16]) -> f32 {
    let (mut lo, mut hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for (ac, bc) in a.chunks(16).zip(b.chunks(16)) {
        // SAFETY: the caller guarantees the features.
        let ((al, ah), (bl, bh)) = unsafe { (load_f16x16(ac), load_f16x16(bc)) };
        lo = _mm256_fmadd_ps(al, bl, lo);
        hi = _mm256_fmadd_ps(ah, bh, hi);
    }
    reduce_add16(lo, hi)
}
