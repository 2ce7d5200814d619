//! Softmax cross-entropy over the vocabulary: `loss[n] = logsumexp(logits[n]) - logits[n][target]`,
//! computed with the row maximum subtracted. The model's loss is the mean over the `N` tokens
//! (PyTorch's `F.cross_entropy` default), so the backward takes `dloss = 1/N`.
//! A loss mask or per-token weights go through [`cross_entropy_backward_weighted`].

use crate::parallel::{par_rows1, par_rows2, ThreadPool};
use crate::Float;

/// Fills `probs (N, V)` with the softmax of `logits (N, V)` and `losses (N,)` with the per-token loss.
pub fn cross_entropy_forward<F: Float>(
    probs: &mut [F],
    losses: &mut [F],
    logits: &[F],
    targets: &[u32],
    v: usize,
) {
    let n = targets.len();
    assert!(probs.len() == n * v && logits.len() == n * v && losses.len() == n);
    for row in 0..n {
        let l = &logits[row * v..(row + 1) * v];
        let p = &mut probs[row * v..(row + 1) * v];
        let max = l.iter().fold(F::NEG_INFINITY, |m, &x| m.max(x));
        let mut sum = F::ZERO;
        for (pi, &li) in p.iter_mut().zip(l) {
            *pi = (li - max).exp();
            sum += *pi;
        }
        let inv = F::ONE / sum;
        p.iter_mut().for_each(|pi| *pi *= inv);
        losses[row] = sum.ln() + max - l[targets[row] as usize];
    }
}

/// `dlogits (N, V) += dloss * (probs - onehot(target))`, the same `dloss` for every token.
pub fn cross_entropy_backward<F: Float>(
    dlogits: &mut [F],
    probs: &[F],
    targets: &[u32],
    v: usize,
    dloss: F,
) {
    let n = targets.len();
    assert!(dlogits.len() == n * v && probs.len() == n * v);
    for row in 0..n {
        let (d, p) = (
            &mut dlogits[row * v..(row + 1) * v],
            &probs[row * v..(row + 1) * v],
        );
        for (di, &pi) in d.iter_mut().zip(p) {
            *di += dloss * pi;
        }
        d[targets[row] as usize] -= dloss;
    }
}

/// `dlogits (N, V) += scale * weights[n] * (probs - onehot(target))`: a weight per token, for a loss
/// mask (weight 0 contributes no gradient) or per-sequence coefficients (DPO, PPO).
pub fn cross_entropy_backward_weighted<F: Float>(
    dlogits: &mut [F],
    probs: &[F],
    targets: &[u32],
    v: usize,
    weights: &[F],
    scale: F,
) {
    let n = targets.len();
    assert!(dlogits.len() == n * v && probs.len() == n * v && weights.len() == n);
    for row in 0..n {
        let dloss = scale * weights[row];
        if dloss == F::ZERO {
            continue;
        }
        let (d, p) = (
            &mut dlogits[row * v..(row + 1) * v],
            &probs[row * v..(row + 1) * v],
        );
        for (di, &pi) in d.iter_mut().zip(p) {
            *di += dloss * pi;
        }
        d[targets[row] as usize] -= dloss;
    }
}

/// [`cross_entropy_forward`] with the rows spread over `pool`; the same bits for any thread count.
pub fn cross_entropy_forward_par<F: Float>(
    probs: &mut [F],
    losses: &mut [F],
    logits: &[F],
    targets: &[u32],
    v: usize,
    pool: &ThreadPool,
) {
    let n = targets.len();
    assert!(probs.len() == n * v && logits.len() == n * v && losses.len() == n);
    par_rows2(
        pool,
        n,
        4 * v,
        (probs, v),
        (losses, 1),
        |r0, probs, losses| {
            let rows = losses.len();
            let (logits, targets) = (&logits[r0 * v..][..rows * v], &targets[r0..][..rows]);
            cross_entropy_forward(probs, losses, logits, targets, v)
        },
    );
}

/// [`cross_entropy_backward`] (`weights` `None`) or [`cross_entropy_backward_weighted`] with the rows
/// spread over `pool`; the same bits for any thread count.
#[allow(clippy::too_many_arguments)] // buffers then sizes, as the serial versions
pub fn cross_entropy_backward_par<F: Float>(
    dlogits: &mut [F],
    probs: &[F],
    targets: &[u32],
    v: usize,
    weights: Option<&[F]>,
    scale: F,
    pool: &ThreadPool,
) {
    let n = targets.len();
    assert!(dlogits.len() == n * v && probs.len() == n * v);
    assert!(weights.is_none_or(|w| w.len() == n));
    par_rows1(pool, n, 2 * v, (dlogits, v), |r0, d| {
        let rows = d.len() / v;
        let (probs, targets) = (&probs[r0 * v..][..rows * v], &targets[r0..][..rows]);
        match weights {
            None => cross_entropy_backward(d, probs, targets, v, scale),
            Some(w) => {
                cross_entropy_backward_weighted(d, probs, targets, v, &w[r0..][..rows], scale)
            }
        }
    });
}
