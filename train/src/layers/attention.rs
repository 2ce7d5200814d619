//! Causal multi-head scaled dot-product attention with grouped-query sharing (GQA, Ainslie et al. 2023):
//! query head `h` reads key/value head `h / (H / Hkv)`, so consecutive query heads share one KV head, the
//! grouping of Hugging Face's `repeat_kv` and llama.cpp. `Hkv == H` is plain multi-head attention.
//!
//! [`attention_forward`] / [`attention_backward`] compute each head's products as small matrix
//! products on strided views of `q`, `k`, `v` (no copies; `f32` through ingot-kernels' GEMM), in
//! blocks of [`TB`] query rows so the causal zeros above the diagonal are mostly skipped. Each pass
//! splits over the batch, one pool work item per batch element writing only that element's slice of
//! one output, so the result does not depend on the thread count. The `*_reference` pair is the
//! plain per-element loop these were derived from, kept as the tests' reference.

use super::linear::dot;
use crate::parallel::{for_each_item, par_for_each, Engine, ThreadPool, View};
use crate::Float;

/// Query rows per block of the causal products: a block of rows `[i0, i1)` only reads key rows
/// `< i1`.
pub const TB: usize = 64;

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
///
/// Two passes over the batch: `att = softmax(scale * Q_h K_h^T)` per head, then `out_h = P V_h`.
#[allow(clippy::too_many_arguments)] // buffers then sizes, as the other layers
pub fn attention_forward<F: Float>(
    out: &mut [F],
    att: &mut [F],
    q: &[F],
    k: &[F],
    v: &[F],
    s: AttentionShape,
    e: &mut Engine<F>,
) {
    s.check();
    let AttentionShape { b, t, nh, nkv, d } = s;
    let (qs, kvs) = (t * nh * d, t * nkv * d); // per-batch strides
    assert!(out.len() == b * qs && q.len() == b * qs && k.len() == b * kvs && v.len() == b * kvs);
    assert_eq!(att.len(), b * nh * t * t);
    if out.is_empty() || att.is_empty() {
        return;
    }
    let group = nh / nkv;
    let scale = F::ONE / F::from_f64(d as f64).sqrt();
    let (qd, kvd) = (nh * d, nkv * d); // row strides of q and k/v
                                       // att (H, T, T) of batch element bi
    for_each_item(&e.pool, &mut e.items, att, nh * t * t, |bi, att, w| {
        let (q, k) = (&q[bi * qs..][..qs], &k[bi * kvs..][..kvs]);
        for h in 0..nh {
            let kh = h / group;
            let a = &mut att[h * t * t..][..t * t];
            for i0 in (0..t).step_by(TB) {
                let i1 = (i0 + TB).min(t);
                // scores of rows i0..i1 against keys 0..i1: Q_h[i0..i1] (i1-i0, D) K_h^T (D, i1)
                let qv = View::new(&q[i0 * qd + h * d..], qd, 1);
                let kt = View::new(&k[kh * d..], 1, kvd);
                w.gemm(false, i1 - i0, i1, d, qv, kt, &mut a[i0 * t..], t);
                for ti in i0..i1 {
                    let row = &mut a[ti * t..][..t];
                    let mut max = F::NEG_INFINITY;
                    for x in &mut row[..=ti] {
                        *x *= scale;
                        max = max.max(*x);
                    }
                    let mut sum = F::ZERO;
                    for x in &mut row[..=ti] {
                        *x = (*x - max).exp();
                        sum += *x;
                    }
                    let inv = F::ONE / sum;
                    row[..=ti].iter_mut().for_each(|x| *x *= inv);
                    row[ti + 1..].iter_mut().for_each(|x| *x = F::ZERO);
                }
            }
        }
    });
    let att = &*att;
    // out (T, H, D) of batch element bi
    for_each_item(&e.pool, &mut e.items, out, qs, |bi, out, w| {
        let v = &v[bi * kvs..][..kvs];
        for h in 0..nh {
            let kh = h / group;
            let a = &att[(bi * nh + h) * t * t..][..t * t];
            for i0 in (0..t).step_by(TB) {
                let i1 = (i0 + TB).min(t);
                // out_h[i0..i1] = P[i0..i1, 0..i1] (i1-i0, i1) V_h[0..i1] (i1, D)
                let p = View::new(&a[i0 * t..], t, 1);
                let vh = View::new(&v[kh * d..], kvd, 1);
                w.gemm(
                    false,
                    i1 - i0,
                    d,
                    i1,
                    p,
                    vh,
                    &mut out[i0 * qd + h * d..],
                    qd,
                );
            }
        }
    });
}

/// Accumulates `dq (B, T, H, D)`, `dk`, `dv (B, T, Hkv, D)` from `dout (B, T, H, D)`, given the saved
/// probabilities `att` (the math of [`attention_backward_reference`]). Four passes over the batch,
/// per head: `dS = P * (dO V^T - rowsum(P * dO V^T)) * scale` into the engine's scratch, then
/// `dq += dS K`, `dk += dS^T Q`, `dv += P^T dO`.
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
    e: &mut Engine<F>,
) {
    s.check();
    let AttentionShape { b, t, nh, nkv, d } = s;
    let (qs, kvs) = (t * nh * d, t * nkv * d);
    assert!(dq.len() == b * qs && dout.len() == b * qs && q.len() == b * qs);
    assert!(dk.len() == b * kvs && dv.len() == b * kvs && k.len() == b * kvs && v.len() == b * kvs);
    assert_eq!(att.len(), b * nh * t * t);
    if dq.is_empty() || att.is_empty() {
        return;
    }
    let group = nh / nkv;
    let scale = F::ONE / F::from_f64(d as f64).sqrt();
    let (qd, kvd) = (nh * d, nkv * d);
    let mut ds = std::mem::take(&mut e.att_grad);
    ds.resize(att.len(), F::ZERO); // (B, H, T, T); grows once, then reused
                                   // dS (H, T, T) of batch element bi
    for_each_item(&e.pool, &mut e.items, &mut ds, nh * t * t, |bi, ds, w| {
        let (v, dout) = (&v[bi * kvs..][..kvs], &dout[bi * qs..][..qs]);
        for h in 0..nh {
            let kh = h / group;
            let a = &att[(bi * nh + h) * t * t..][..t * t];
            let g = &mut ds[h * t * t..][..t * t];
            for i0 in (0..t).step_by(TB) {
                let i1 = (i0 + TB).min(t);
                // dP[i0..i1, 0..i1] = dO_h[i0..i1] (i1-i0, D) V_h^T (D, i1)
                let dy = View::new(&dout[i0 * qd + h * d..], qd, 1);
                let vt = View::new(&v[kh * d..], 1, kvd);
                w.gemm(false, i1 - i0, i1, d, dy, vt, &mut g[i0 * t..], t);
                for ti in i0..i1 {
                    let (p, dp) = (&a[ti * t..][..t], &mut g[ti * t..][..t]);
                    let pdp: F = (0..=ti).map(|j| p[j] * dp[j]).sum();
                    for j in 0..=ti {
                        dp[j] = p[j] * (dp[j] - pdp) * scale;
                    }
                    dp[ti + 1..].iter_mut().for_each(|x| *x = F::ZERO);
                }
            }
        }
    });
    let dsr = &ds;
    // dq_h[i0..i1] += dS[i0..i1, 0..i1] K_h[0..i1]
    for_each_item(&e.pool, &mut e.items, dq, qs, |bi, dq, w| {
        let k = &k[bi * kvs..][..kvs];
        for h in 0..nh {
            let kh = h / group;
            let g = &dsr[(bi * nh + h) * t * t..][..t * t];
            for i0 in (0..t).step_by(TB) {
                let i1 = (i0 + TB).min(t);
                let gv = View::new(&g[i0 * t..], t, 1);
                let kv = View::new(&k[kh * d..], kvd, 1);
                w.gemm(true, i1 - i0, d, i1, gv, kv, &mut dq[i0 * qd + h * d..], qd);
            }
        }
    });
    // dk_kh[j0..j1] += dS[j0..T, j0..j1]^T Q_h[j0..T]  (query rows before j0 do not see these keys)
    for_each_item(&e.pool, &mut e.items, dk, kvs, |bi, dk, w| {
        let q = &q[bi * qs..][..qs];
        for h in 0..nh {
            let kh = h / group;
            let g = &dsr[(bi * nh + h) * t * t..][..t * t];
            for j0 in (0..t).step_by(TB) {
                let j1 = (j0 + TB).min(t);
                let gt = View::new(&g[j0 * t + j0..], 1, t);
                let qv = View::new(&q[j0 * qd + h * d..], qd, 1);
                w.gemm(
                    true,
                    j1 - j0,
                    d,
                    t - j0,
                    gt,
                    qv,
                    &mut dk[j0 * kvd + kh * d..],
                    kvd,
                );
            }
        }
    });
    // dv_kh[j0..j1] += P[j0..T, j0..j1]^T dO_h[j0..T]
    for_each_item(&e.pool, &mut e.items, dv, kvs, |bi, dv, w| {
        let dout = &dout[bi * qs..][..qs];
        for h in 0..nh {
            let kh = h / group;
            let a = &att[(bi * nh + h) * t * t..][..t * t];
            for j0 in (0..t).step_by(TB) {
                let j1 = (j0 + TB).min(t);
                let pt = View::new(&a[j0 * t + j0..], 1, t);
                let dy = View::new(&dout[j0 * qd + h * d..], qd, 1);
                w.gemm(
                    true,
                    j1 - j0,
                    d,
                    t - j0,
                    pt,
                    dy,
                    &mut dv[j0 * kvd + kh * d..],
                    kvd,
                );
            }
        }
    });
    e.att_grad = ds;
}

/// [`attention_forward`] as one loop per element (dot products, then the weighted sum of `v`).
pub fn attention_forward_reference<F: Float>(
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

/// [`attention_backward`] as one loop per element. With `s` the scaled scores and `p = softmax(s)`:
/// `dp[t2] = dout . v[t2]`, `dv[t2] += p[t2] dout`, `ds[t2] = p[t2] (dp[t2] - sum_j p[j] dp[j])`,
/// `dq += scale ds[t2] k[t2]`, `dk[t2] += scale ds[t2] q`.
#[allow(clippy::too_many_arguments)] // buffers then sizes, as the forward
pub fn attention_backward_reference<F: Float>(
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
