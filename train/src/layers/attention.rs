//! Causal multi-head scaled dot-product attention with grouped-query sharing (GQA, Ainslie et al. 2023):
//! query head `h` reads key/value head `h / (H / Hkv)`, so consecutive query heads share one KV head, the
//! grouping of Hugging Face's `repeat_kv` and llama.cpp. `Hkv == H` is plain multi-head attention.
//!
//! Work splits over the batch: everything one batch element reads and writes is contiguous, so each
//! thread owns whole slices and the result does not depend on the thread count.

use super::linear::dot;
use crate::parallel::{par_for_each, ThreadPool};
use crate::Float;

/// Sizes of one attention call.
#[derive(Debug, Clone, Copy)]
pub struct AttentionShape {
    pub b: usize,
    pub t: usize,
    /// Query heads `H`.
    pub nh: usize,
    /// Key/value heads `Hkv`, dividing `H`.
    pub nkv: usize,
    /// Head size `D`.
    pub d: usize,
}

impl AttentionShape {
    fn check(&self) {
        assert!(
            self.nkv > 0 && self.nh.is_multiple_of(self.nkv),
            "Hkv must divide H"
        );
    }
}

/// `out (B, T, H, D)` = softmax(q k^T / sqrt(D), causal) v, saving the probabilities `att (B, H, T, T)`
/// (zero above the diagonal). `q (B, T, H, D)`, `k` and `v (B, T, Hkv, D)`, all after RoPE.
pub fn attention_forward<F: Float>(
    out: &mut [F],
    att: &mut [F],
    q: &[F],
    k: &[F],
    v: &[F],
    s: AttentionShape,
    pool: &ThreadPool,
) {
    s.check();
    let AttentionShape { b, t, nh, nkv, d } = s;
    let (qs, kvs) = (t * nh * d, t * nkv * d); // per-batch strides
    assert!(out.len() == b * qs && q.len() == b * qs && k.len() == b * kvs && v.len() == b * kvs);
    assert_eq!(att.len(), b * nh * t * t);
    let group = nh / nkv;
    let scale = F::ONE / F::from_f64(d as f64).sqrt();
    let items = out
        .chunks_mut(qs.max(1))
        .zip(att.chunks_mut((nh * t * t).max(1)))
        .enumerate();
    par_for_each(items, pool, |(bi, (out, att))| {
        let (q, k, v) = (
            &q[bi * qs..][..qs],
            &k[bi * kvs..][..kvs],
            &v[bi * kvs..][..kvs],
        );
        for h in 0..nh {
            let kh = h / group;
            for ti in 0..t {
                let qv = &q[(ti * nh + h) * d..][..d];
                let a = &mut att[(h * t + ti) * t..][..t];
                let mut max = F::NEG_INFINITY;
                for (t2, a2) in a.iter_mut().enumerate().take(ti + 1) {
                    *a2 = dot(qv, &k[(t2 * nkv + kh) * d..][..d]) * scale;
                    max = max.max(*a2);
                }
                let mut sum = F::ZERO;
                for a2 in &mut a[..=ti] {
                    *a2 = (*a2 - max).exp();
                    sum += *a2;
                }
                let inv = F::ONE / sum;
                a[..=ti].iter_mut().for_each(|a2| *a2 *= inv);
                a[ti + 1..].iter_mut().for_each(|a2| *a2 = F::ZERO);
                let o = &mut out[(ti * nh + h) * d..][..d];
                o.iter_mut().for_each(|x| *x = F::ZERO);
                for (t2, &w) in a[..=ti].iter().enumerate() {
                    for (x, &vv) in o.iter_mut().zip(&v[(t2 * nkv + kh) * d..][..d]) {
                        *x += w * vv;
                    }
                }
            }
        }
    });
}

/// Accumulates `dq (B, T, H, D)`, `dk`, `dv (B, T, Hkv, D)` from `dout (B, T, H, D)`, given the saved
/// probabilities `att`. With `s` the scaled scores and `p = softmax(s)`:
/// `dp[t2] = dout . v[t2]`, `dv[t2] += p[t2] dout`, `ds[t2] = p[t2] (dp[t2] - sum_j p[j] dp[j])`,
/// `dq += scale ds[t2] k[t2]`, `dk[t2] += scale ds[t2] q`.
#[allow(clippy::too_many_arguments)] // buffers then sizes, as the forward
pub fn attention_backward<F: Float>(
    dq: &mut [F],
    dk: &mut [F],
    dv: &mut [F],
    dout: &[F],
    q: &[F],
    k: &[F],
    v: &[F],
    att: &[F],
    s: AttentionShape,
    pool: &ThreadPool,
) {
    s.check();
    let AttentionShape { b, t, nh, nkv, d } = s;
    let (qs, kvs) = (t * nh * d, t * nkv * d);
    assert!(dq.len() == b * qs && dout.len() == b * qs && q.len() == b * qs);
    assert!(dk.len() == b * kvs && dv.len() == b * kvs && k.len() == b * kvs && v.len() == b * kvs);
    assert_eq!(att.len(), b * nh * t * t);
    let group = nh / nkv;
    let scale = F::ONE / F::from_f64(d as f64).sqrt();
    let items = dq
        .chunks_mut(qs.max(1))
        .zip(dk.chunks_mut(kvs.max(1)))
        .zip(dv.chunks_mut(kvs.max(1)));
    par_for_each(items.enumerate(), pool, |(bi, ((dq, dk), dv))| {
        let (q, k, v) = (
            &q[bi * qs..][..qs],
            &k[bi * kvs..][..kvs],
            &v[bi * kvs..][..kvs],
        );
        let dout = &dout[bi * qs..][..qs];
        let mut dp = vec![F::ZERO; t]; // (T,) gradient of one row of probabilities
        for h in 0..nh {
            let kh = h / group;
            for ti in 0..t {
                let a = &att[((bi * nh + h) * t + ti) * t..][..t];
                let dy = &dout[(ti * nh + h) * d..][..d];
                for t2 in 0..=ti {
                    let kv = (t2 * nkv + kh) * d;
                    dp[t2] = dot(dy, &v[kv..][..d]);
                    for (g, &y) in dv[kv..][..d].iter_mut().zip(dy) {
                        *g += a[t2] * y;
                    }
                }
                let pdp: F = (0..=ti).map(|t2| a[t2] * dp[t2]).sum();
                let qv = &q[(ti * nh + h) * d..][..d];
                for t2 in 0..=ti {
                    let ds = a[t2] * (dp[t2] - pdp) * scale;
                    let kv = (t2 * nkv + kh) * d;
                    for (g, &kk) in dq[(ti * nh + h) * d..][..d].iter_mut().zip(&k[kv..][..d]) {
                        *g += ds * kk;
                    }
                    for (g, &qq) in dk[kv..][..d].iter_mut().zip(qv) {
                        *g += ds * qq;
                    }
                }
            }
        }
    });
}
