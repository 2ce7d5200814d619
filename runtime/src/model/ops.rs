//! The non-matmul operations of the forward pass (RMSNorm, RoPE, SwiGLU, attention), written to
//! reproduce llama.cpp's CPU backend bit for bit as the peer builds it (ggml 0.26, gcc 12 -O3,
//! x86-64-v4 + AVX-512, flash attention off, F16 KV cache). SmolLM2 is numerically chaotic enough
//! that a single differently-rounded op moves logits by tenths, so each function names the ggml
//! code it follows and the compiled instruction choices that matter (gcc contracts `a*b + c` to FMA).
//!
//! The f16 dot products of attention and the exp of softmax/SiLU follow ggml's AVX-512 code lane
//! by lane. With an AVX-512 token they run in `ingot_kernels`; otherwise a scalar emulation of the
//! same lanes runs here (identical bits, slower). This module owns no buffers and allocates nothing.
//! It is public (hidden) only so that `tools/peer kernel-parity` can check it against ggml.

use half::f16;
#[cfg(target_arch = "x86_64")]
use ingot_kernels::cpu::x86_64::avx512::Avx512Vnni;
use ingot_kernels::{Isa, Kernels};

/// Which implementation of the ggml-exact f16 dot products runs.
#[derive(Clone, Copy, Debug)]
pub struct Ops {
    #[cfg(target_arch = "x86_64")]
    avx512: Option<Avx512Vnni>,
}

impl Ops {
    /// The AVX-512 path when `kernels` is the AVX-512 path, else the scalar emulation.
    pub fn new(kernels: &Kernels) -> Ops {
        let _ = kernels;
        Ops {
            #[cfg(target_arch = "x86_64")]
            avx512: if kernels.isa() == Isa::Avx512Vnni {
                Avx512Vnni::detect()
            } else {
                None
            },
        }
    }

    /// `ggml_vec_dot_f16` (AVX-512 build) over a row ggml sees as `n_pad` elements, zero past
    /// `x.len()`.
    pub fn dot_f16_ggml(&self, x: &[f16], y: &[f16], n_pad: usize) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if let Some(k) = self.avx512 {
            return k.dot_f16_ggml(x, y, n_pad);
        }
        dot_f16_ggml_emulated(x, y, n_pad)
    }

    /// One element of tinyBLAS's F16 x F16 product (AVX-512 build).
    pub fn dot_f16_sgemm(&self, a: &[f16], b: &[f16]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if let Some(k) = self.avx512 {
            return k.dot_f16_sgemm(a, b);
        }
        dot_f16_sgemm_emulated(a, b)
    }
}

/// gcc 12's `_mm512_reduce_add_ps` on 16 lanes: 8 + 8, 4 + 4, `[0]+[2]`, `[1]+[3]`, then the two.
fn reduce_add16(v: &[f32; 16]) -> f32 {
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

/// Scalar emulation of [`Ops::dot_f16_ggml`]: four 16-lane FMA accumulators over 64-element
/// steps, `(a0 + a2) + (a1 + a3)`, [`reduce_add16`], then the leftovers in f64.
fn dot_f16_ggml_emulated(x: &[f16], y: &[f16], n_pad: usize) -> f32 {
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

/// Scalar emulation of [`Ops::dot_f16_sgemm`]: one 16-lane FMA accumulator, [`reduce_add16`].
fn dot_f16_sgemm_emulated(a: &[f16], b: &[f16]) -> f32 {
    let mut acc = [0.0f32; 16];
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        acc[i % 16] = x.to_f32().mul_add(y.to_f32(), acc[i % 16]);
    }
    reduce_add16(&acc)
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

/// ggml's `ggml_vec_swiglu_f32` in place: `g = silu(g) * u`, with the AVX-512 `ggml_v_silu`
/// (`x / (1 + v_expf(0 - x))`) on 16-element blocks and libm `expf` on the tail.
pub fn swiglu(g: &mut [f32], u: &[f32]) {
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

/// `out = rmsnorm(x) * w` as ggml's `rms_norm` then `mul`: squares summed in f64, the mean
/// rounded to f32, then `scale = 1 / sqrtf(mean + eps)` in f32.
pub fn rms_norm(out: &mut [f32], x: &[f32], w: &super::weights::Vector<'_>, eps: f32) {
    let sum: f64 = x.iter().map(|&v| f64::from(v * v)).sum();
    let mean = (sum / x.len() as f64) as f32;
    let scale = 1.0 / (mean + eps).sqrt();
    for (i, (o, &v)) in out.iter_mut().zip(x).enumerate() {
        *o = (v * scale) * w.get(i);
    }
}

/// cos/sin pairs for position `pos` (ggml_rope_cache_init with ext_factor 0 and mscale 1): the angle
/// of pair i is `pos * freq_scale * base^(-2i/n_rot)`, built by repeated multiplication as ggml does.
pub fn rope_cache(cache: &mut [f32], pos: usize, base: f32, freq_scale: f32, n_rot: usize) {
    let theta_scale = base.powf(-2.0 / n_rot as f32);
    let mut theta = pos as f32;
    for pair in cache.chunks_exact_mut(2) {
        let angle = freq_scale * theta;
        pair[0] = angle.cos();
        pair[1] = angle.sin();
        theta *= theta_scale;
    }
}

/// Rotates adjacent pairs of one head (GGUF llama tensors are permuted for this "normal" RoPE
/// mode); dimensions past `n_rot` are left alone. gcc compiles ggml's `rotate_pairs` to
/// `vfmaddsub231ps` (scalar loop: `vfmsub231ss` / `vfmadd132ss`) with x0 as the fused operand:
/// `x0' = fma(x0, cos, -(x1 * sin))`, `x1' = fma(x0, sin, x1 * cos)`.
pub fn rope(head: &mut [f32], cache: &[f32]) {
    for (x, cs) in head.chunks_exact_mut(2).zip(cache.chunks_exact(2)) {
        let (x0, x1) = (x[0], x[1]);
        x[0] = x0.mul_add(cs[0], -(x1 * cs[1]));
        x[1] = x0.mul_add(cs[1], x1 * cs[0]);
    }
}

/// llama.cpp's KV-cell count for attention (`llama_kv_cache::get_n_kv`): the used cells rounded up
/// to 256, at least 256. Cells past the used ones are masked (probability exactly 0) but fix the
/// length, hence the summation structure, of ggml's dot products.
fn llama_n_kv(n_used: usize) -> usize {
    n_used.div_ceil(256).max(1) * 256
}

/// Grouped-query attention of one token over `n_kv` cached positions, as llama.cpp's non-flash
/// graph: `kq = mul_mat(k, q)` (q rounded to f16), `soft_max_ext(kq, mask, 1/sqrt(D))`,
/// `kqv = mul_mat(v^T, kq)` (kq rounded to f16). ggml runs both products through tinyBLAS when the
/// batch has two or more tokens (`batched`) and through `ggml_vec_dot_f16` otherwise.
#[allow(clippy::too_many_arguments)]
pub fn attention(
    ops: &Ops,           //
    out: &mut [f32],     // (H*D,)
    q: &[f32],           // (H*D,)
    k_cache: &[f16],     // (>= n_kv, Hkv*D) one layer's keys
    vt_cache: &[f16],    // (Hkv*D, n_ctx) one layer's values, transposed as llama.cpp stores them
    n_ctx: usize,        // row stride of vt_cache
    cfg: &super::Config, //
    scores: &mut [f32],  // (n_kv,)
    q16: &mut [f16],     // (D,)
    p16: &mut [f16],     // (n_kv,)
    batched: bool,       //
) {
    let d = cfg.head_dim;
    let kvd = cfg.kv_dim();
    let n_kv = scores.len();
    let n_pad = llama_n_kv(n_kv);
    let group = cfg.n_head / cfg.n_head_kv;
    let scale = 1.0 / (d as f32).sqrt();
    for h in 0..cfg.n_head {
        let kvh = h / group;
        for (dst, &src) in q16.iter_mut().zip(&q[h * d..(h + 1) * d]) {
            *dst = f16::from_f32(src);
        }
        for (j, sc) in scores.iter_mut().enumerate() {
            let k = &k_cache[j * kvd + kvh * d..][..d];
            let dot = if batched {
                ops.dot_f16_sgemm(k, q16)
            } else {
                ops.dot_f16_ggml(k, q16, d)
            };
            *sc = dot * scale;
        }
        let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum = soft_max(scores, max);
        let inv = (1.0 / sum) as f32;
        for (p, sc) in p16.iter_mut().zip(scores.iter()) {
            *p = f16::from_f32(sc * inv);
        }
        let o = &mut out[h * d..(h + 1) * d];
        for (i, o) in o.iter_mut().enumerate() {
            let v = &vt_cache[(kvh * d + i) * n_ctx..][..n_kv];
            *o = if batched {
                ops.dot_f16_sgemm(v, p16)
            } else {
                ops.dot_f16_ggml(v, p16, n_pad)
            };
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v_expf_is_close_to_exp() {
        for i in -2000..1760 {
            let x = i as f32 * 0.05;
            let (a, b) = (v_expf(x), x.exp());
            assert!(
                (a - b).abs() <= 4e-7 * b.max(f32::MIN_POSITIVE),
                "{x}: {a} vs {b}"
            );
        }
        assert_eq!(v_expf(f32::NEG_INFINITY), 0.0);
        assert_eq!(v_expf(-200.0), 0.0);
    }

    #[test]
    fn emulated_f16_dots_match_the_simd_ones() {
        let k = Kernels::best();
        let ops = Ops::new(&k);
        let mut s = 1u64;
        let mut rnd = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            f16::from_f32(((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0)
        };
        for n in [1usize, 15, 16, 17, 63, 64, 65, 100, 255, 256, 300] {
            let a: Vec<f16> = (0..n).map(|_| rnd()).collect();
            let b: Vec<f16> = (0..n).map(|_| rnd()).collect();
            for n_pad in [n, n.div_ceil(64) * 64, llama_n_kv(n)] {
                assert_eq!(
                    ops.dot_f16_ggml(&a, &b, n_pad).to_bits(),
                    dot_f16_ggml_emulated(&a, &b, n_pad).to_bits(),
                    "ggml n={n} pad={n_pad}"
                );
            }
            assert_eq!(
                ops.dot_f16_sgemm(&a, &b).to_bits(),
                dot_f16_sgemm_emulated(&a, &b).to_bits(),
                "sgemm n={n}"
            );
        }
    }
}
