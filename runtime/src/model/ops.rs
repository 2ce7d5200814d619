//! The non-matmul operations of the forward pass that reproduce llama.cpp's CPU backend bit for bit
//! as the peer builds it (ggml 0.26, gcc 12 -O3, x86-64-v4 + AVX-512, flash attention off, F16 KV
//! cache). SmolLM2 is numerically chaotic enough that a single differently-rounded op moves logits
//! by tenths, so each function names the ggml code it follows.
//!
//! The ops that need fused multiply-adds (ggml's expf, soft_max, SwiGLU, RoPE rotation, the f16
//! dot products of attention) live in `ingot_kernels::ops`, with their scalar definitions in
//! `ingot_kernels::reference::ops` and SIMD paths bit-identical to them; this module keeps the
//! model-side helpers (RMSNorm, the RoPE cos/sin cache, llama.cpp's KV length) and thin wrappers
//! over the kernels. It owns no buffers and allocates nothing. It is public (hidden) only so that
//! `tools/peer kernel-parity` / `op-parity` can check it against ggml.

use half::f16;
#[cfg(not(feature = "std"))]
use ingot_kernels::math::FloatExt;
use ingot_kernels::Kernels;

pub use ingot_kernels::reference::ops::v_expf;

/// The f16 dot products of attention on one kernel path.
#[derive(Clone, Copy, Debug)]
pub struct Ops {
    kernels: Kernels,
}

impl Ops {
    /// The dot products of `kernels`' path (each path gives the same bits).
    pub fn new(kernels: &Kernels) -> Ops {
        Ops { kernels: *kernels }
    }

    /// `ggml_vec_dot_f16` (AVX-512 build) over a row ggml sees as `n_pad` elements, zero past
    /// `x.len()`.
    pub fn dot_f16_ggml(&self, x: &[f16], y: &[f16], n_pad: usize) -> f32 {
        self.kernels.dot_f16_ggml(x, y, n_pad)
    }

    /// One element of tinyBLAS's F16 x F16 product (AVX-512 build).
    pub fn dot_f16_sgemm(&self, a: &[f16], b: &[f16]) -> f32 {
        self.kernels.dot_f16_sgemm(a, b)
    }
}

/// ggml's `ggml_vec_swiglu_f32` in place: `g = silu(g) * u` (see `Kernels::swiglu_ggml`).
pub fn swiglu(g: &mut [f32], u: &[f32]) {
    Kernels::best().swiglu_ggml(g, u)
}

/// ggml's `ggml_vec_soft_max_f32`: `x = exp(x - max)`, returns the sum (see
/// `Kernels::soft_max_ggml`).
pub fn soft_max(x: &mut [f32], max: f32) -> f64 {
    Kernels::best().soft_max_ggml(x, max)
}

/// Rotates adjacent pairs of one head by `cache`'s cos/sin pairs (see `Kernels::rope_ggml`).
pub fn rope(head: &mut [f32], cache: &[f32]) {
    Kernels::best().rope_ggml(head, cache)
}

/// `out = rmsnorm(x) * w` as ggml's `rms_norm` then `mul`: squares summed in f64, the mean
/// rounded to f32, then `scale = 1 / sqrtf(mean + eps)` in f32.
///
/// In a decode step the weights and `out` were last touched a layer ago, and the weight stream of
/// the products in between has pushed them out of the caches. So their lines are asked for first
/// ([`Kernels::prefetch`]) and arrive while the sum's chain of dependent f64 additions (ggml's
/// order, so not split) runs; the scaling loop after it then reads and writes cached lines, 4-16
/// at a time (a loop the compiler vectorizes), instead of stalling its stores on one miss after
/// another. Decode, SmolLM2 Q8_0 (60 norms a token), timed by throwaway timestamps around each
/// norm: 1.8-1.9 -> 1.2-1.3 us at 1 thread, 1.7-1.8 -> 1.1 us at 2.
///
/// # Panics
/// If `out` or `w` is shorter than `x`.
pub fn rms_norm(k: &Kernels, out: &mut [f32], x: &[f32], w: &[u8], eps: f32) {
    let (out, w) = (&mut out[..x.len()], &w[..4 * x.len()]);
    k.prefetch(out);
    k.prefetch(w);
    let sum: f64 = x.iter().map(|&v| f64::from(v * v)).sum();
    let mean = (sum / x.len() as f64) as f32;
    let scale = 1.0 / (mean + eps).sqrt();
    for ((o, &v), w) in out.iter_mut().zip(x).zip(w.chunks_exact(4)) {
        *o = (v * scale) * f32::from_le_bytes([w[0], w[1], w[2], w[3]]);
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

/// llama.cpp's KV-cell count for attention (`llama_kv_cache::get_n_kv`): the used cells rounded up
/// to 256, at least 256. Cells past the used ones are masked (probability exactly 0) but fix the
/// length, hence the summation structure, of ggml's dot products.
pub(crate) fn llama_n_kv(n_used: usize) -> usize {
    n_used.div_ceil(256).max(1) * 256
}
