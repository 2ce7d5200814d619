//! AdamW (Loshchilov & Hutter 2019), global-norm gradient clipping and the warmup + cosine learning-rate
//! schedule: the optimizer of nanoGPT, written to follow PyTorch's `torch.optim.AdamW` (single-tensor
//! path) operation for operation so the golden test can compare trajectories.
//!
//! Weight decay rule (nanoGPT's `configure_optimizers`): every tensor with two or more dimensions (the
//! embedding and all projection matrices) is decayed; one-dimensional tensors (the RMSNorm gains) are
//! not. The decay is decoupled: `p *= 1 - lr * wd` before the Adam step, not added to the gradient.

use crate::config::Config;
use crate::parallel::{par_rows1, par_rows3, ThreadPool};
use crate::params;
use crate::Float;

/// AdamW hyperparameters (the learning rate comes per step, from the schedule).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    /// nanoGPT's: betas (0.9, 0.95), eps 1e-8, weight decay 0.1.
    fn default() -> Self {
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.1,
        }
    }
}

/// AdamW state: first and second moments in the parameters' flat layout, and the step count.
#[derive(Debug, Clone)]
pub struct AdamW<F: Float = f32> {
    pub config: AdamWConfig,
    /// First moment, `(num_params,)`.
    pub m: Vec<F>,
    /// Second moment, `(num_params,)`.
    pub v: Vec<F>,
    /// Steps taken so far (the bias corrections use `step` after increment, from 1).
    pub step: u64,
    decayed: Vec<(usize, usize, bool)>, // (offset, len, weight-decayed) per tensor
}

impl<F: Float> AdamW<F> {
    pub fn new(config: AdamWConfig, model: &Config) -> Self {
        let layout = params::layout(model);
        let np = layout.iter().map(|s| s.len).sum();
        let decayed = layout
            .iter()
            .map(|s| (s.offset, s.len, s.is_matrix()))
            .collect();
        AdamW {
            config,
            m: vec![F::ZERO; np],
            v: vec![F::ZERO; np],
            step: 0,
            decayed,
        }
    }

    /// One update of `params` from `grads` at learning rate `lr`. As PyTorch: the scalar factors are
    /// computed in `f64` and rounded once; `m` moves toward `g` by `lerp`; `denom = sqrt(v) /
    /// sqrt(1 - beta2^t) + eps`; `p += -(lr / (1 - beta1^t)) * (m / denom)`.
    pub fn update(&mut self, params: &mut [F], grads: &[F], lr: f64) {
        assert!(params.len() == self.m.len() && grads.len() == self.m.len());
        self.step += 1;
        let k = self.factors(lr);
        let (m, v) = (&mut self.m[..], &mut self.v[..]);
        update_range(&self.decayed, &k, 0, params, grads, m, v);
    }

    /// [`AdamW::update`] with the elements spread over `pool`: every element goes through the same
    /// operations, so the same bits as [`AdamW::update`] for any thread count.
    pub fn update_par(&mut self, params: &mut [F], grads: &[F], lr: f64, pool: &ThreadPool) {
        assert!(params.len() == self.m.len() && grads.len() == self.m.len());
        self.step += 1;
        let k = self.factors(lr);
        let decayed = &self.decayed;
        let (m, v) = (&mut self.m[..], &mut self.v[..]);
        let n = params.len();
        par_rows3(pool, n, 8, (params, 1), (m, 1), (v, 1), |o0, p, m, v| {
            update_range(decayed, &k, o0, p, &grads[o0..][..p.len()], m, v)
        });
    }

    /// The step's scalar factors (after `step` was incremented).
    fn factors(&self, lr: f64) -> Factors<F> {
        let c = &self.config;
        let t = self.step as i32;
        Factors {
            one_minus_b1: F::from_f64(1.0 - c.beta1),
            b2: F::from_f64(c.beta2),
            one_minus_b2: F::from_f64(1.0 - c.beta2),
            neg_step_size: F::from_f64(-(lr / (1.0 - c.beta1.powi(t)))),
            bc2_sqrt: F::from_f64((1.0 - c.beta2.powi(t)).sqrt()),
            eps: F::from_f64(c.eps),
            decay: F::from_f64(1.0 - lr * c.weight_decay),
        }
    }
}

/// One AdamW step's scalars, rounded once to `F`.
struct Factors<F> {
    one_minus_b1: F,
    b2: F,
    one_minus_b2: F,
    neg_step_size: F,
    bc2_sqrt: F,
    eps: F,
    decay: F,
}

/// The update of the flat elements `o0..o0 + p.len()` (`p`, `g`, `m`, `v` are that range), tensor by
/// tensor so each knows whether it is decayed.
fn update_range<F: Float>(
    decayed: &[(usize, usize, bool)],
    k: &Factors<F>,
    o0: usize,
    p: &mut [F],
    g: &[F],
    m: &mut [F],
    v: &mut [F],
) {
    let o1 = o0 + p.len();
    for &(offset, len, decay) in decayed {
        let (s, e) = (offset.max(o0), (offset + len).min(o1));
        if s >= e {
            continue;
        }
        let r = s - o0..e - o0;
        let (p, g) = (&mut p[r.clone()], &g[r.clone()]);
        let (m, v) = (&mut m[r.clone()], &mut v[r]);
        // the decay as its own pass (same operations, same order per element): a loop without a
        // branch vectorizes
        if decay {
            p.iter_mut().for_each(|x| *x *= k.decay);
        }
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            *m += k.one_minus_b1 * (g - *m);
            *v = *v * k.b2 + k.one_minus_b2 * g * g;
            let denom = v.sqrt() / k.bc2_sqrt + k.eps;
            *p += k.neg_step_size * (*m / denom);
        }
    }
}

/// Blocks of the gradient norm's sum: each block sums its squares in order, then the blocks' sums are
/// added in order. Fixed, so the norm has the same bits serial or spread over any number of threads.
const NORM_BLOCKS: usize = 64;

/// Scales `grads` so their global L2 norm is at most `max_norm` (as `torch.nn.utils.clip_grad_norm_`:
/// factor `max_norm / (norm + 1e-6)` when below 1). Returns the norm before clipping (its square
/// summed in `f64`, in [`NORM_BLOCKS`] blocks).
pub fn clip_grad_norm<F: Float>(grads: &mut [F], max_norm: f64) -> f64 {
    let per = grads.len().div_ceil(NORM_BLOCKS).max(1);
    let sum: f64 = grads.chunks(per).map(sum_squares).sum();
    scale_to(grads, sum.sqrt(), max_norm, None)
}

/// [`clip_grad_norm`] spread over `pool`; the same bits.
pub fn clip_grad_norm_par<F: Float>(grads: &mut [F], max_norm: f64, pool: &ThreadPool) -> f64 {
    let per = grads.len().div_ceil(NORM_BLOCKS).max(1);
    let mut partial = [0.0f64; NORM_BLOCKS];
    let blocks = grads.len().div_ceil(per);
    let g = &*grads;
    par_rows1(pool, blocks, per, (&mut partial[..blocks], 1), |b0, out| {
        for (i, s) in out.iter_mut().enumerate() {
            *s = sum_squares(&g[(b0 + i) * per..((b0 + i + 1) * per).min(g.len())]);
        }
    });
    let sum: f64 = partial[..blocks].iter().sum();
    scale_to(grads, sum.sqrt(), max_norm, Some(pool))
}

fn sum_squares<F: Float>(g: &[F]) -> f64 {
    g.iter().map(|g| g.to_f64() * g.to_f64()).sum()
}

fn scale_to<F: Float>(grads: &mut [F], norm: f64, max_norm: f64, pool: Option<&ThreadPool>) -> f64 {
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        let coef = F::from_f64(coef);
        let n = grads.len();
        match pool {
            Some(pool) => par_rows1(pool, n, 1, (grads, 1), |_, g| {
                g.iter_mut().for_each(|g| *g *= coef)
            }),
            None => grads.iter_mut().for_each(|g| *g *= coef),
        }
    }
    norm
}

/// Linear warmup then cosine decay (nanoGPT's `get_lr`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Schedule {
    pub max_lr: f64,
    pub min_lr: f64,
    pub warmup_steps: u64,
    /// The step at which the cosine reaches `min_lr` (and stays).
    pub decay_steps: u64,
}

/// The learning rate at 0-based `step`: `max_lr * (step + 1) / warmup` during warmup, then
/// `min + (max - min) * (1 + cos(pi * r)) / 2` with `r` going from 0 to 1 between the end of warmup and
/// `decay_steps`, then `min_lr`.
pub fn lr_schedule(s: &Schedule, step: u64) -> f64 {
    if step < s.warmup_steps {
        return s.max_lr * (step + 1) as f64 / s.warmup_steps as f64;
    }
    if step >= s.decay_steps {
        return s.min_lr;
    }
    let r = (step - s.warmup_steps) as f64 / (s.decay_steps - s.warmup_steps) as f64;
    s.min_lr + 0.5 * (1.0 + (std::f64::consts::PI * r).cos()) * (s.max_lr - s.min_lr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_shape() {
        let s = Schedule {
            max_lr: 1e-3,
            min_lr: 1e-4,
            warmup_steps: 10,
            decay_steps: 110,
        };
        assert!((lr_schedule(&s, 0) - 1e-4).abs() < 1e-12);
        assert!((lr_schedule(&s, 9) - 1e-3).abs() < 1e-12);
        assert!((lr_schedule(&s, 10) - 1e-3).abs() < 1e-12);
        assert!((lr_schedule(&s, 60) - 5.5e-4).abs() < 1e-12);
        assert_eq!(lr_schedule(&s, 110), 1e-4);
        assert_eq!(lr_schedule(&s, 10_000), 1e-4);
    }

    #[test]
    fn clip_scales_to_max_norm() {
        let mut g = vec![3.0f32, 4.0];
        assert_eq!(clip_grad_norm(&mut g, 1.0), 5.0);
        assert!((g[0] - 0.6).abs() < 1e-6 && (g[1] - 0.8).abs() < 1e-6);
        let mut g = vec![0.3f32, 0.4];
        clip_grad_norm(&mut g, 1.0);
        assert_eq!(g, vec![0.3, 0.4]);
    }
}
