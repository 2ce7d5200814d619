//! Scalar definitions of the non-matmul operations of llama.cpp's CPU forward pass, reproducing the
//! AVX-512 build of ggml 0.26 (gcc 12 -O3, which contracts `a*b + c` to FMA) lane by lane with
//! [`f32::mul_add`]. These are the truth for [`crate::Kernels`]' SIMD versions of the same ops
//! (`crate::ops`), which must agree bit for bit.
//!
//! Owns no buffers and allocates nothing. RMSNorm and the RoPE cos/sin cache need no FMA and stay
//! with the model code in the runtime.

#[cfg(not(feature = "std"))]
use crate::math::FloatExt;
use half::f16;

/// gcc 12's `_mm512_reduce_add_ps` on 16 lanes: 8 + 8, 4 + 4, `[0]+[2]`, `[1]+[3]`, then the two.
pub fn reduce_add16(v: &[f32; 16]) -> f32 {
    let mut t3 = [0.0f32; 8];
    for i in 0..8 {
        t3[i] = v[8 + i] + v[i];
    }
    let mut t6 = [0.0f32; 4];
    for i in 0..4 {
        t6[i] = t3[4 + i] + t3[i];
    }
    (t6[0] + t6[2]) + (t6[1] + t6[3])
}

/// One lane of ggml's AVX-512 `ggml_v_expf` (vec.h; ARM's optimized-routines expf with
/// `vscalefps`): FMA range reduction, a degree-5 polynomial, scale by `2^n`, and 0 / inf
/// outside `|n| <= 192`.
pub fn v_expf(x: f32) -> f32 {
    let c = |bits: u32| f32::from_bits(bits);
    let r = 12_582_912.0f32; // 0x1.8p23
    let z = x.mul_add(c(0x3fb8_aa3b), r); // 0x1.715476p+0 = log2(e)
    let n = z - r;
    let b = (-n).mul_add(c(0x35bf_be8e), (-n).mul_add(c(0x3f31_7200), x)); // ln2 lo, hi
    let u = b * b;
    let j = c(0x3c07_2010)
        .mul_add(b, c(0x3d2b_9f17))
        .mul_add(u, c(0x3e2a_af33).mul_add(b, c(0x3eff_fedb)))
        .mul_add(u, c(0x3f7f_fff6).mul_add(b, 1.0));
    if n.abs() > 192.0 {
        return if n <= 0.0 { 0.0 } else { f32::INFINITY };
    }
    // vscalefps: j * 2^n with one rounding (the f64 product is exact).
    (f64::from(j) * 2f64.powi(n as i32)) as f32
}

/// `x[i] = v_expf(x[i])` for every element.
pub fn expf(x: &mut [f32]) {
    for v in x {
        *v = v_expf(*v);
    }
}

/// ggml's `ggml_vec_soft_max_f32` (AVX-512) over the scores of a padded row: `exp(x - max)` by
/// [`v_expf`] in 16-lane blocks, each block's [`reduce_add16`] added in f64. The masked cells
/// past `x.len()` give exactly 0 and only fill the last block. Returns the sum.
pub fn soft_max(x: &mut [f32], max: f32) -> f64 {
    let mut sum = 0.0f64;
    for block in x.chunks_mut(16) {
        let mut lanes = [0.0f32; 16];
        for (l, v) in lanes.iter_mut().zip(block.iter_mut()) {
            *v = v_expf(*v - max);
            *l = *v;
        }
        sum += f64::from(reduce_add16(&lanes));
    }
    sum
}

/// ggml's `ggml_vec_swiglu_f32` in place: `g = silu(g) * u`, with the AVX-512 `ggml_v_silu`
/// (`x / (1 + v_expf(0 - x))`) on 16-element blocks and libm `expf` on the tail.
///
/// # Panics
/// If `u` is shorter than `g`.
pub fn swiglu(g: &mut [f32], u: &[f32]) {
    assert!(u.len() >= g.len(), "swiglu: u shorter than g");
    let vec_end = g.len() / 16 * 16;
    for (i, (x, &up)) in g.iter_mut().zip(u).enumerate() {
        let e = if i < vec_end {
            v_expf(0.0 - *x)
        } else {
            (-*x).exp()
        };
        *x = (*x / (1.0 + e)) * up;
    }
}

/// Rotates adjacent pairs of one head by the `(cos, sin)` pairs of `cache` (ggml's "normal" RoPE
/// mode); pairs past either length are left alone. gcc compiles ggml's `rotate_pairs` to
/// `vfmaddsub231ps` with x0 as the fused operand: `x0' = fma(x0, cos, -(x1 * sin))`,
/// `x1' = fma(x0, sin, x1 * cos)`.
pub fn rope(head: &mut [f32], cache: &[f32]) {
    for (x, cs) in head.chunks_exact_mut(2).zip(cache.chunks_exact(2)) {
        let (x0, x1) = (x[0], x[1]);
        x[0] = x0.mul_add(cs[0], -(x1 * cs[1]));
        x[1] = x0.mul_add(cs[1], x1 * cs[0]);
    }
}

/// `ggml_vec_dot_f16` (AVX-512 build) over a row ggml sees as `n_pad >= x.len()` elements whose
/// tail past `x.len()` is zero (llama.cpp's padded KV cells): four 16-lane FMA accumulators over
/// 64-element steps up to `n_pad & !63`, `(a0 + a2) + (a1 + a3)`, [`reduce_add16`], then the
/// leftovers in f64.
///
/// # Panics
/// If the lengths differ or `n_pad < x.len()`.
pub fn dot_f16_ggml(x: &[f16], y: &[f16], n_pad: usize) -> f32 {
    assert_eq!(x.len(), y.len(), "dot_f16_ggml: lengths differ");
    assert!(n_pad >= x.len(), "dot_f16_ggml: n_pad < len");
    let np = n_pad & !63;
    let mut sum = [[0.0f32; 16]; 4];
    for (i, (a, b)) in x.iter().zip(y).enumerate().take(np) {
        let acc = &mut sum[(i / 16) % 4][i % 16];
        *acc = a.to_f32().mul_add(b.to_f32(), *acc);
    }
    let mut s = [0.0f32; 16];
    for l in 0..16 {
        s[l] = (sum[0][l] + sum[2][l]) + (sum[1][l] + sum[3][l]);
    }
    let mut sumf = f64::from(reduce_add16(&s));
    for (a, b) in x.iter().zip(y).skip(np) {
        sumf += f64::from(a.to_f32() * b.to_f32());
    }
    sumf as f32
}

/// One element of llamafile's `tinyBLAS<16, __m512, __m512, ggml_fp16_t, ggml_fp16_t, float>`
/// (ggml's F16 x F16 product when the batch has two or more columns): one 16-lane FMA
/// accumulator, then [`reduce_add16`]. Zero padding past `a.len()` does not change the result.
///
/// # Panics
/// If the lengths differ.
pub fn dot_f16_sgemm(a: &[f16], b: &[f16]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot_f16_sgemm: lengths differ");
    let mut acc = [0.0f32; 16];
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        acc[i % 16] = x.to_f32().mul_add(y.to_f32(), acc[i % 16]);
    }
    reduce_add16(&acc)
}

/// The f32 dot product of the f32 KV cache (not one of ggml's orders: ingot's own, for
/// [`crate::Kernels::attention_head_f32`]): eight lane sums `acc[i % 8] += x[i] * y[i]` (multiply,
/// then add: no FMA, so every build and ISA computes the same bits, and the compiler may still
/// vectorize the eight independent lanes), reduced `((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7))`.
///
/// # Panics
/// If the lengths differ.
pub fn dot_f32_lanes8(x: &[f32], y: &[f32]) -> f32 {
    assert_eq!(x.len(), y.len(), "dot_f32_lanes8: lengths differ");
    let mut acc = [0.0f32; 8];
    let (xc, yc) = (x.chunks_exact(8), y.chunks_exact(8));
    let (xr, yr) = (xc.remainder(), yc.remainder());
    for (a, b) in xc.zip(yc) {
        for l in 0..8 {
            acc[l] += a[l] * b[l];
        }
    }
    for (l, (a, b)) in xr.iter().zip(yr).enumerate() {
        acc[l] += a * b;
    }
    ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))
}

/// `dst[i] = f16(src[i])`, rounding to nearest even (ggml's `GGML_FP32_TO_FP16`).
///
/// # Panics
/// If the lengths differ.
pub fn to_f16(src: &[f32], dst: &mut [f16]) {
    assert_eq!(src.len(), dst.len(), "to_f16: lengths differ");
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = f16::from_f32(s);
    }
}
