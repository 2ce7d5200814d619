//! AVX-512 versions of the ggml-exact element-wise ops of [`crate::reference::ops`] (`expf`,
//! `soft_max`, `swiglu`, `rope`, f32 -> f16), as methods of [`Avx512Vnni`]. These *are* ggml's
//! AVX-512 loops (`ggml_v_expf` with `vscalefps`, `ggml_vec_soft_max_f32`, `ggml_vec_swiglu_f32`,
//! gcc's `vfmaddsub231ps` for `rotate_pairs`), so each lane runs the same operations as the scalar
//! definition and the results are bit-identical to it. Tails use masked loads and stores, except
//! swiglu's, which ggml computes with libm `expf` (taken from the reference).

use core::arch::x86_64::*;

use half::f16;

use super::avx512::{reduce_add16, Avx512Vnni};
use crate::reference::ops as reference;

impl Avx512Vnni {
    /// `x[i] = v_expf(x[i])`: see [`crate::reference::ops::v_expf`].
    pub fn expf_ggml(self, x: &mut [f32]) {
        // SAFETY: `self` proves avx512f/bw/vl + fma; the pointer covers x.len() floats.
        unsafe { expf_slice(x.as_mut_ptr(), x.len()) }
    }

    /// See [`crate::reference::ops::soft_max`].
    pub fn soft_max_ggml(self, x: &mut [f32], max: f32) -> f64 {
        // SAFETY: `self` proves avx512f/bw/vl + fma; the pointer covers x.len() floats.
        unsafe { soft_max(x.as_mut_ptr(), x.len(), max) }
    }

    /// See [`crate::reference::ops::swiglu`].
    pub fn swiglu_ggml(self, g: &mut [f32], u: &[f32]) {
        assert!(u.len() >= g.len(), "swiglu: u shorter than g");
        let vec_end = g.len() / 16 * 16;
        // SAFETY: `self` proves avx512f + fma; both pointers cover vec_end <= g.len() <= u.len()
        // floats.
        unsafe { swiglu(g.as_mut_ptr(), u.as_ptr(), vec_end) };
        // ggml's tail (fewer than 16 elements) uses libm expf: the reference on a tail this short
        // takes exactly that path.
        reference::swiglu(&mut g[vec_end..], &u[vec_end..]);
    }

    /// See [`crate::reference::ops::rope`].
    pub fn rope_ggml(self, head: &mut [f32], cache: &[f32]) {
        let m = head.len().min(cache.len()) & !1;
        // SAFETY: `self` proves avx512f/vl + fma; both pointers cover m floats.
        unsafe { rope(head.as_mut_ptr(), cache.as_ptr(), m) }
    }

    /// Attention's softmax of one row of scores, as ggml computes it and rounds it for the value
    /// products: `x[i] *= scale`, ggml's soft_max over the row ([`Avx512Vnni::soft_max_ggml`] from
    /// the row's maximum, then one multiplication by `1 / sum`), `p16[i] = f16(x[i])`, and `x[i]`
    /// that value widened back to f32. Bitwise the passes it fuses (three passes over the row
    /// instead of six).
    ///
    /// # Panics
    /// If the lengths differ.
    pub fn softmax_f16(self, x: &mut [f32], scale: f32, p16: &mut [f16]) {
        assert_eq!(x.len(), p16.len(), "softmax_f16: lengths differ");
        let n = x.len();
        // SAFETY: `self` proves the features; both pointers cover n elements.
        unsafe {
            let max = scale_max(x.as_mut_ptr(), n, scale);
            let inv = (1.0 / soft_max(x.as_mut_ptr(), n, max)) as f32;
            scale_round_f16(x.as_mut_ptr(), p16.as_mut_ptr().cast(), n, inv);
        }
    }

    /// `dst[i] = f16(src[i])` (`vcvtps2ph`, round to nearest even, as `half` and ggml).
    pub fn to_f16(self, src: &[f32], dst: &mut [f16]) {
        assert_eq!(src.len(), dst.len(), "to_f16: lengths differ");
        // SAFETY: `self` proves avx512f/bw/vl + f16c; both pointers cover src.len() elements.
        unsafe { to_f16(src.as_ptr(), dst.as_mut_ptr().cast(), src.len()) }
    }
}

/// Mask of the first `len` (<= 16) lanes.
#[inline]
fn lanes(len: usize) -> __mmask16 {
    debug_assert!(len <= 16);
    ((1u32 << len) - 1) as __mmask16
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn splat(bits: u32) -> __m512 {
    _mm512_set1_ps(f32::from_bits(bits))
}

/// ggml's AVX-512 `ggml_v_expf` on 16 lanes (vec.h), constant for constant.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn v_expf16(x: __m512) -> __m512 {
    let r = splat(0x4b40_0000); // 0x1.8p23
    let z = _mm512_fmadd_ps(x, splat(0x3fb8_aa3b), r);
    let n = _mm512_sub_ps(z, r);
    let b = _mm512_fnmadd_ps(
        n,
        splat(0x35bf_be8e),
        _mm512_fnmadd_ps(n, splat(0x3f31_7200), x),
    );
    let d = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(_mm512_abs_ps(n), _mm512_set1_ps(192.0));
    let u = _mm512_mul_ps(b, b);
    let j = _mm512_fmadd_ps(
        _mm512_fmadd_ps(
            _mm512_fmadd_ps(splat(0x3c07_2010), b, splat(0x3d2b_9f17)),
            u,
            _mm512_fmadd_ps(splat(0x3e2a_af33), b, splat(0x3eff_fedb)),
        ),
        u,
        _mm512_fmadd_ps(splat(0x3f7f_fff6), b, _mm512_set1_ps(1.0)),
    );
    let res = _mm512_scalef_ps(j, n);
    if d == 0 {
        return res;
    }
    let zero = _mm512_setzero_ps();
    let le0 = _mm512_cmp_ps_mask::<_CMP_LE_OQ>(n, zero);
    let alt = _mm512_mask_blend_ps(le0, _mm512_set1_ps(f32::INFINITY), zero);
    _mm512_mask_blend_ps(d, res, alt)
}

/// # Safety
/// `n` readable and writable floats at `x`; the CPU has this module's features.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn expf_slice(x: *mut f32, n: usize) {
    let mut i = 0;
    while i < n {
        let k = lanes((n - i).min(16));
        // SAFETY: lanes i..min(i + 16, n) are in bounds (caller); masked-off lanes are not
        // accessed.
        unsafe {
            let v = _mm512_maskz_loadu_ps(k, x.add(i));
            _mm512_mask_storeu_ps(x.add(i), k, v_expf16(v));
        }
        i += 16;
    }
}

/// # Safety
/// `n` readable and writable floats at `x`; the CPU has this module's features.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn soft_max(x: *mut f32, n: usize, max: f32) -> f64 {
    let vmax = _mm512_set1_ps(max);
    let mut sum = 0.0f64;
    let mut i = 0;
    while i < n {
        let k = lanes((n - i).min(16));
        // SAFETY: lanes i..min(i + 16, n) are in bounds (caller); masked-off lanes are not
        // accessed.
        unsafe {
            let v = _mm512_maskz_loadu_ps(k, x.add(i));
            // Lanes past the row are ggml's masked cells: exactly 0 in the block sum.
            let e = _mm512_maskz_mov_ps(k, v_expf16(_mm512_sub_ps(v, vmax)));
            _mm512_mask_storeu_ps(x.add(i), k, e);
            sum += f64::from(reduce_add16(e));
        }
        i += 16;
    }
    sum
}

/// `x[i] *= scale` for `i < n`; returns the largest product (`f32::max`'s: a NaN lane is passed
/// over; `-inf` for `n == 0`).
///
/// # Safety
/// `n` readable and writable floats at `x`; the CPU has this module's features.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn scale_max(x: *mut f32, n: usize, scale: f32) -> f32 {
    let vs = _mm512_set1_ps(scale);
    let mut vmax = _mm512_set1_ps(f32::NEG_INFINITY);
    let mut i = 0;
    while i < n {
        let k = lanes((n - i).min(16));
        // SAFETY: lanes i..min(i + 16, n) are in bounds (caller); masked-off lanes are not
        // accessed.
        unsafe {
            let v = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x.add(i)), vs);
            _mm512_mask_storeu_ps(x.add(i), k, v);
            // vmaxps returns its second operand when either is NaN: the running maximum.
            vmax = _mm512_mask_max_ps(vmax, k, v, vmax);
        }
        i += 16;
    }
    let mut lanes = [0f32; 16];
    // SAFETY: 16 writable floats.
    unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), vmax) };
    lanes.iter().copied().fold(f32::NEG_INFINITY, f32::max)
}

/// `x[i] = f32(f16(x[i] * inv))` and `p[i]` that f16 (round to nearest even) for `i < n`.
///
/// # Safety
/// `n` readable and writable floats at `x` and `n` writable f16 at `p`; the CPU has this module's
/// features.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn scale_round_f16(x: *mut f32, p: *mut u16, n: usize, inv: f32) {
    let vi = _mm512_set1_ps(inv);
    let mut i = 0;
    while i < n {
        let k = lanes((n - i).min(16));
        // SAFETY: elements i..min(i + 16, n) are in bounds (caller); masked-off lanes are not
        // accessed.
        unsafe {
            let v = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x.add(i)), vi);
            let h = _mm512_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v);
            _mm256_mask_storeu_epi16(p.add(i).cast(), k, h);
            _mm512_mask_storeu_ps(x.add(i), k, _mm512_cvtph_ps(h));
        }
        i += 16;
    }
}

/// The 16-element blocks of ggml's `ggml_vec_swiglu_f32`: `g = (g / (1 + v_expf(0 - g))) * u`.
///
/// # Safety
/// `n` (a multiple of 16) floats writable at `g` and readable at `u`; the CPU has this module's
/// features.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn swiglu(g: *mut f32, u: *const f32, n: usize) {
    debug_assert!(n.is_multiple_of(16));
    let (zero, one) = (_mm512_setzero_ps(), _mm512_set1_ps(1.0));
    let mut i = 0;
    while i < n {
        // SAFETY: i + 16 <= n (caller); loadu/storeu accept any alignment.
        unsafe {
            let x = _mm512_loadu_ps(g.add(i));
            let e = v_expf16(_mm512_sub_ps(zero, x));
            let y = _mm512_mul_ps(
                _mm512_div_ps(x, _mm512_add_ps(one, e)),
                _mm512_loadu_ps(u.add(i)),
            );
            _mm512_storeu_ps(g.add(i), y);
        }
        i += 16;
    }
}

/// Pseudo-code per pair `(x0, x1)`, `(c, s)`: `p = x1 * (s, c)`, then `vfmaddsub`:
/// `x0' = x0 * c - p.0`, `x1' = x0 * s + p.1`, each with one rounding.
///
/// # Safety
/// `m` (even) floats writable at `head` and readable at `cache`; the CPU has this module's
/// features.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn rope(head: *mut f32, cache: *const f32, m: usize) {
    let mut i = 0;
    while i < m {
        let k = lanes((m - i).min(16));
        // SAFETY: lanes i..min(i + 16, m) are in bounds (caller); masked-off lanes are not
        // accessed.
        unsafe {
            let x = _mm512_maskz_loadu_ps(k, head.add(i));
            let cs = _mm512_maskz_loadu_ps(k, cache.add(i));
            let x0 = _mm512_moveldup_ps(x);
            let x1 = _mm512_movehdup_ps(x);
            let sc = _mm512_permute_ps::<0b10_11_00_01>(cs);
            let y = _mm512_fmaddsub_ps(x0, cs, _mm512_mul_ps(x1, sc));
            _mm512_mask_storeu_ps(head.add(i), k, y);
        }
        i += 16;
    }
}

/// # Safety
/// `n` floats readable at `src`, `n` u16 writable at `dst`; the CPU has this module's features.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn to_f16(src: *const f32, dst: *mut u16, n: usize) {
    let mut i = 0;
    while i < n {
        let k = lanes((n - i).min(16));
        // SAFETY: elements i..min(i + 16, n) are in bounds (caller); masked-off lanes are not
        // accessed.
        unsafe {
            let v = _mm512_maskz_loadu_ps(k, src.add(i));
            let h = _mm512_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v);
            _mm256_mask_storeu_epi16(dst.add(i).cast(), k, h);
        }
        i += 16;
    }
}
