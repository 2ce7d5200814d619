//! The non-matmul operations of llama.cpp's CPU forward pass that need fused multiply-adds, as
//! methods of [`Kernels`]: ggml's `expf`, soft_max, SwiGLU, RoPE rotation, f32 -> f16, the two f16
//! dot orders of attention, and attention built from them: one head ([`Kernels::attention_head_ggml`]),
//! or the query heads that share a key/value head read each cached row once
//! ([`Kernels::attention_group_ggml`], bitwise the same as one head at a time).
//!
//! [`crate::reference::ops`] defines each op (scalar, `f32::mul_add`, which is a libm `fmaf` call
//! without the FMA target feature). The AVX2 and AVX-512 paths run the same per-lane operations
//! with inline FMA and are bit-identical to it for every input (NaN payloads aside), so the choice
//! of path never changes a result. Other ISAs (and targets) run the scalar definition.
//!
//! Nothing here allocates. Dispatch goes through [`Kernels::isa`]; the ISA token is detected once
//! per process.

use half::f16;

use crate::reference::ops as reference;
#[cfg(target_arch = "x86_64")]
use crate::Isa;
use crate::Kernels;

#[cfg(target_arch = "x86_64")]
use crate::cpu::x86_64::{avx2::Avx2, avx512::Avx512Vnni};

/// The implementation behind one call: the ISA token when there is a SIMD version.
#[derive(Clone, Copy)]
enum Path {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx2(Avx2),
    #[cfg(target_arch = "x86_64")]
    Avx512(Avx512Vnni),
}

#[cfg(target_arch = "x86_64")]
fn avx2_token() -> Option<Avx2> {
    crate::detect_once!(Option<Avx2>, Avx2::detect)
}

#[cfg(target_arch = "x86_64")]
fn avx512_token() -> Option<Avx512Vnni> {
    crate::detect_once!(Option<Avx512Vnni>, Avx512Vnni::detect)
}

impl Path {
    fn dot_f16_ggml(self, x: &[f16], y: &[f16], n_pad: usize) -> f32 {
        match self {
            Path::Scalar => reference::dot_f16_ggml(x, y, n_pad),
            #[cfg(target_arch = "x86_64")]
            Path::Avx2(k) => k.dot_f16_ggml(x, y, n_pad),
            #[cfg(target_arch = "x86_64")]
            Path::Avx512(k) => k.dot_f16_ggml(x, y, n_pad),
        }
    }

    fn dot_f16_sgemm(self, a: &[f16], b: &[f16]) -> f32 {
        match self {
            Path::Scalar => reference::dot_f16_sgemm(a, b),
            #[cfg(target_arch = "x86_64")]
            Path::Avx2(k) => k.dot_f16_sgemm(a, b),
            #[cfg(target_arch = "x86_64")]
            Path::Avx512(k) => k.dot_f16_sgemm(a, b),
        }
    }

    /// `out[r] = dot(x[r * stride..][..len], y)` for every `r < out.len()`, with `len = y.len()`:
    /// [`Path::dot_f16_sgemm`] when `batched`, else [`Path::dot_f16_ggml`] with `n_pad`. The
    /// caller has checked that `x` holds every row.
    fn dot_f16_rows(
        self,
        batched: bool,
        x: &[f16],
        stride: usize,
        y: &[f16],
        n_pad: usize,
        out: &mut [f32],
    ) {
        let len = y.len();
        match self {
            #[cfg(target_arch = "x86_64")]
            Path::Avx512(k) => k.dot_f16_rows(batched, x, stride, y, n_pad, out),
            _ => {
                for (r, o) in out.iter_mut().enumerate() {
                    let xr = &x[r * stride..][..len];
                    *o = if batched {
                        self.dot_f16_sgemm(xr, y)
                    } else {
                        self.dot_f16_ggml(xr, y, n_pad)
                    };
                }
            }
        }
    }

    /// `out[h * rows + r] = dot_f16_ggml(x[r * stride..][..n], y16_h, n_pad)` for each head
    /// `h` (`y16_h = y16[h * n..][..n]`, `y32` the same values widened to f32) and row `r`. The
    /// caller has checked that `x` holds every row.
    #[allow(clippy::too_many_arguments)]
    fn dot_f16_rows_heads(
        self,
        batched: bool,
        x: &[f16],
        stride: usize,
        y16: &[f16],
        y32: &[f32],
        n: usize,
        n_pad: usize,
        out: &mut [f32],
    ) {
        match self {
            #[cfg(target_arch = "x86_64")]
            Path::Avx512(k) => k.dot_f16_rows_heads(batched, x, stride, y32, n, n_pad, out),
            #[cfg(target_arch = "x86_64")]
            Path::Avx2(k) if batched => k.dot_f16_rows_heads_sgemm(x, stride, y32, n, out),
            #[cfg(target_arch = "x86_64")]
            Path::Avx2(k) => k.dot_f16_rows_heads_ggml(x, stride, y32, n, n_pad, out),
            _ => {
                let _ = y32; // the same values as y16, for the paths that take f32
                let rows = out.len() / (y16.len() / n);
                for (y, o) in y16.chunks_exact(n).zip(out.chunks_exact_mut(rows)) {
                    self.dot_f16_rows(batched, x, stride, y, n_pad, o);
                }
            }
        }
    }

    fn widen_f16(self, src: &[f16], dst: &mut [f32]) {
        match self {
            #[cfg(target_arch = "x86_64")]
            Path::Avx512(k) => k.widen_f16(src, dst),
            #[cfg(target_arch = "x86_64")]
            Path::Avx2(k) => k.widen_f16(src, dst),
            _ => {
                for (d, s) in dst.iter_mut().zip(src) {
                    *d = s.to_f32();
                }
            }
        }
    }

    fn soft_max(self, x: &mut [f32], max: f32) -> f64 {
        match self {
            Path::Scalar => reference::soft_max(x, max),
            #[cfg(target_arch = "x86_64")]
            Path::Avx2(k) => k.soft_max_ggml(x, max),
            #[cfg(target_arch = "x86_64")]
            Path::Avx512(k) => k.soft_max_ggml(x, max),
        }
    }

    /// `x[i] *= scale`, [`softmax`], `p16[i] = f16(x[i])`, and `x[i]` that value widened back.
    fn softmax_f16(self, x: &mut [f32], scale: f32, p16: &mut [f16]) {
        match self {
            #[cfg(target_arch = "x86_64")]
            Path::Avx512(k) => k.softmax_f16(x, scale, p16),
            _ => {
                for v in x.iter_mut() {
                    *v *= scale;
                }
                softmax(self, x);
                self.to_f16(x, p16);
                self.widen_f16(p16, x);
            }
        }
    }

    fn to_f16(self, src: &[f32], dst: &mut [f16]) {
        match self {
            Path::Scalar => reference::to_f16(src, dst),
            #[cfg(target_arch = "x86_64")]
            Path::Avx2(k) => k.to_f16(src, dst),
            #[cfg(target_arch = "x86_64")]
            Path::Avx512(k) => k.to_f16(src, dst),
        }
    }
}

impl Kernels {
    fn ops_path(&self) -> Path {
        match self.isa() {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni => avx512_token().map_or(Path::Scalar, Path::Avx512),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 | Isa::AvxVnni => avx2_token().map_or(Path::Scalar, Path::Avx2),
            _ => Path::Scalar,
        }
    }

    /// Asks the CPU to bring `data` into its L2 cache ahead of use (x86_64: `prefetcht1` per
    /// 64-byte line; elsewhere nothing). Only a hint: no result ever depends on it.
    pub fn prefetch<T>(&self, data: &[T]) {
        #[cfg(target_arch = "x86_64")]
        {
            let (p, len) = (data.as_ptr().cast::<i8>(), core::mem::size_of_val(data));
            let mut o = 0;
            while o < len {
                // SAFETY: SSE (and so `prefetcht1`) is part of the x86_64 baseline; a prefetch
                // reads nothing architecturally and never faults, and the address is inside `data`.
                unsafe {
                    core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T1 }>(
                        p.wrapping_add(o),
                    )
                };
                o += 64;
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = data;
    }

    /// `x[i] = exp(x[i])` as ggml's AVX-512 `ggml_v_expf`: [`reference::v_expf`].
    pub fn expf_ggml(&self, x: &mut [f32]) {
        match self.ops_path() {
            Path::Scalar => reference::expf(x),
            #[cfg(target_arch = "x86_64")]
            Path::Avx2(k) => k.expf_ggml(x),
            #[cfg(target_arch = "x86_64")]
            Path::Avx512(k) => k.expf_ggml(x),
        }
    }

    /// ggml's `ggml_vec_soft_max_f32`: `x = exp(x - max)` in place, returns the sum (f64):
    /// [`reference::soft_max`].
    pub fn soft_max_ggml(&self, x: &mut [f32], max: f32) -> f64 {
        self.ops_path().soft_max(x, max)
    }

    /// ggml's `ggml_vec_swiglu_f32` in place, `g = silu(g) * u`: [`reference::swiglu`].
    ///
    /// # Panics
    /// If `u` is shorter than `g`.
    pub fn swiglu_ggml(&self, g: &mut [f32], u: &[f32]) {
        match self.ops_path() {
            Path::Scalar => reference::swiglu(g, u),
            #[cfg(target_arch = "x86_64")]
            Path::Avx2(k) => k.swiglu_ggml(g, u),
            #[cfg(target_arch = "x86_64")]
            Path::Avx512(k) => k.swiglu_ggml(g, u),
        }
    }

    /// Rotates the adjacent pairs of `head` by the `(cos, sin)` pairs of `cache` (ggml's normal
    /// RoPE mode): [`reference::rope`].
    pub fn rope_ggml(&self, head: &mut [f32], cache: &[f32]) {
        match self.ops_path() {
            Path::Scalar => reference::rope(head, cache),
            #[cfg(target_arch = "x86_64")]
            Path::Avx2(k) => k.rope_ggml(head, cache),
            #[cfg(target_arch = "x86_64")]
            Path::Avx512(k) => k.rope_ggml(head, cache),
        }
    }

    /// `dst[i] = f16(src[i])`, round to nearest even: [`reference::to_f16`].
    ///
    /// # Panics
    /// If the lengths differ.
    pub fn to_f16(&self, src: &[f32], dst: &mut [f16]) {
        self.ops_path().to_f16(src, dst)
    }

    /// ggml's `ggml_vec_dot_f16` (AVX-512 build) over a row of `n_pad >= x.len()` elements, zero
    /// past `x.len()`: [`reference::dot_f16_ggml`].
    ///
    /// # Panics
    /// If the lengths differ or `n_pad < x.len()`.
    pub fn dot_f16_ggml(&self, x: &[f16], y: &[f16], n_pad: usize) -> f32 {
        self.ops_path().dot_f16_ggml(x, y, n_pad)
    }

    /// One element of tinyBLAS's F16 x F16 product (AVX-512 build): [`reference::dot_f16_sgemm`].
    ///
    /// # Panics
    /// If the lengths differ.
    pub fn dot_f16_sgemm(&self, a: &[f16], b: &[f16]) -> f32 {
        self.ops_path().dot_f16_sgemm(a, b)
    }

    /// One query head of llama.cpp's non-flash attention over `n_kv = scores.len()` cached
    /// positions: `kq = mul_mat(k, q)` (q rounded to f16), `soft_max_ext(kq, mask, scale)`,
    /// `kqv = mul_mat(v^T, kq)` (kq rounded to f16). With `batched` both products take tinyBLAS's
    /// order ([`Kernels::dot_f16_sgemm`], ggml's choice for a batch of two or more tokens), else
    /// `ggml_vec_dot_f16`'s, the value products over rows of `v_pad` elements (llama.cpp's padded
    /// KV length, masked cells count as zeros).
    ///
    /// - `out` (D,), `q` (D,);
    /// - `k`: key `j` of this head at `k[j * k_stride..][..D]`;
    /// - `vt`: this head's values transposed, element `i` of position `j` at `vt[i * vt_stride + j]`;
    /// - scratch: `scores` (n_kv,), `q16` (D,), `p16` (n_kv,).
    ///
    /// # Panics
    /// If a length disagrees with the above or `v_pad < n_kv`.
    #[allow(clippy::too_many_arguments)]
    pub fn attention_head_ggml(
        &self,
        out: &mut [f32],
        q: &[f32],
        k: &[f16],
        k_stride: usize,
        vt: &[f16],
        vt_stride: usize,
        scale: f32,
        batched: bool,
        v_pad: usize,
        scores: &mut [f32],
        q16: &mut [f16],
        p16: &mut [f16],
    ) {
        let d = q.len();
        let n_kv = scores.len();
        assert_eq!(out.len(), d, "attention_head: out must be (D,)");
        assert_eq!(q16.len(), d, "attention_head: q16 must be (D,)");
        assert_eq!(p16.len(), n_kv, "attention_head: p16 must be (n_kv,)");
        assert!(v_pad >= n_kv, "attention_head: v_pad < n_kv");
        if n_kv == 0 || d == 0 {
            out.fill(0.0);
            return;
        }
        assert_kv_fits(
            "attention_head",
            (k.len(), k_stride),
            (vt.len(), vt_stride),
            d,
            n_kv,
        );
        let p = self.ops_path();
        p.to_f16(q, q16);
        p.dot_f16_rows(batched, k, k_stride, q16, d, scores);
        for sc in scores.iter_mut() {
            *sc *= scale;
        }
        softmax(p, scores);
        p.to_f16(scores, p16);
        p.dot_f16_rows(batched, vt, vt_stride, p16, v_pad, out);
    }

    /// [`Kernels::attention_head_ggml`] of `G` query heads that share one key/value head
    /// (grouped-query attention), bitwise equal to `G` calls of it with the same `batched` (the
    /// single-token or the batch order): each cached key and value row is read and widened once for
    /// the whole group, and the horizontal sums of 16 rows are done together. `G = q.len() / D` where
    /// `D = out.len() / G`; head `h` is `q[h * D..][..D]` and writes `out[h * D..][..D]`.
    ///
    /// - `k`, `vt`: as for [`Kernels::attention_head_ggml`];
    /// - scratch: `scores` (G * n_kv,), `q16` (G * D,), `p16` (G * n_kv,).
    ///
    /// # Panics
    /// If a length disagrees with the above or `v_pad < n_kv`.
    #[allow(clippy::too_many_arguments)]
    pub fn attention_group_ggml(
        &self,
        out: &mut [f32],
        q: &[f32],
        d: usize,
        k: &[f16],
        k_stride: usize,
        vt: &[f16],
        vt_stride: usize,
        scale: f32,
        batched: bool,
        v_pad: usize,
        scores: &mut [f32],
        q16: &mut [f16],
        p16: &mut [f16],
    ) {
        assert!(
            d > 0 && !q.is_empty() && q.len().is_multiple_of(d),
            "attention_group: q is not whole heads of D"
        );
        let g = q.len() / d;
        assert_eq!(out.len(), q.len(), "attention_group: out must be (G * D,)");
        assert_eq!(q16.len(), q.len(), "attention_group: q16 must be (G * D,)");
        assert_eq!(
            scores.len() % g,
            0,
            "attention_group: scores must be (G * n_kv,)"
        );
        let n_kv = scores.len() / g;
        assert_eq!(
            p16.len(),
            scores.len(),
            "attention_group: p16 must be (G * n_kv,)"
        );
        assert!(v_pad >= n_kv, "attention_group: v_pad < n_kv");
        if n_kv == 0 {
            out.fill(0.0);
            return;
        }
        assert_kv_fits(
            "attention_group",
            (k.len(), k_stride),
            (vt.len(), vt_stride),
            d,
            n_kv,
        );
        let p = self.ops_path();
        p.to_f16(q, q16);
        // `out` holds the rounded queries widened back to f32 until the value products.
        p.widen_f16(q16, out);
        p.dot_f16_rows_heads(batched, k, k_stride, q16, out, d, d, scores);
        for (sc, ph) in scores
            .chunks_exact_mut(n_kv)
            .zip(p16.chunks_exact_mut(n_kv))
        {
            p.softmax_f16(sc, scale, ph);
        }
        p.dot_f16_rows_heads(batched, vt, vt_stride, p16, scores, n_kv, v_pad, out);
    }

    /// One query head of attention over an f32 KV cache (llama.cpp's `--cache-type-k/v f32`; ingot's
    /// `KvType::F32`): nothing is rounded to f16. `scores[j] = dot(k_j, q) * scale`, ggml's softmax
    /// ([`Kernels::soft_max_ggml`], then one multiplication by `1 / sum`), `out[i] = dot(vt_i, p)`,
    /// every dot [`reference::dot_f32_lanes8`] (the same bits on every ISA).
    ///
    /// - `out` (D,), `q` (D,);
    /// - `k`: key `j` of this head at `k[j * k_stride..][..D]`;
    /// - `vt`: this head's values transposed, element `i` of position `j` at `vt[i * vt_stride + j]`;
    /// - scratch: `scores` (n_kv,).
    ///
    /// # Panics
    /// If a length disagrees with the above.
    #[allow(clippy::too_many_arguments)]
    pub fn attention_head_f32(
        &self,
        out: &mut [f32],
        q: &[f32],
        k: &[f32],
        k_stride: usize,
        vt: &[f32],
        vt_stride: usize,
        scale: f32,
        scores: &mut [f32],
    ) {
        let d = q.len();
        let n_kv = scores.len();
        assert_eq!(out.len(), d, "attention_head_f32: out must be (D,)");
        if n_kv == 0 || d == 0 {
            out.fill(0.0);
            return;
        }
        assert_kv_fits(
            "attention_head_f32",
            (k.len(), k_stride),
            (vt.len(), vt_stride),
            d,
            n_kv,
        );
        for (j, sc) in scores.iter_mut().enumerate() {
            *sc = reference::dot_f32_lanes8(&k[j * k_stride..][..d], q) * scale;
        }
        softmax(self.ops_path(), scores);
        for (i, o) in out.iter_mut().enumerate() {
            *o = reference::dot_f32_lanes8(&vt[i * vt_stride..][..n_kv], scores);
        }
    }
}

/// Attention probabilities from scaled scores, in place: ggml's `soft_max` (one pass of
/// `exp(x - max)` summed in f64), then one multiplication by `1 / sum`.
fn softmax(p: Path, scores: &mut [f32]) {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let inv = (1.0 / p.soft_max(scores, max)) as f32;
    for sc in scores.iter_mut() {
        *sc *= inv;
    }
}

/// Panics (naming `what`) unless `k` (`(len, stride)`) holds `n_kv` keys of `d` elements and `vt`
/// `d` value rows of `n_kv` elements, for `n_kv, d >= 1`.
fn assert_kv_fits(what: &str, k: (usize, usize), vt: (usize, usize), d: usize, n_kv: usize) {
    let fits = |(len, stride): (usize, usize), rows: usize, row: usize| {
        (rows - 1)
            .checked_mul(stride)
            .and_then(|v| v.checked_add(row))
            .is_some_and(|need| len >= need)
    };
    assert!(fits(k, n_kv, d), "{what}: k too short");
    assert!(fits(vt, d, n_kv), "{what}: vt too short");
}
