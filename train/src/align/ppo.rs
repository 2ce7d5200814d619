//! PPO with a KL penalty to a frozen reference (InstructGPT; TRL's classic `PPOTrainer` with
//! `AutoModelForCausalLMWithValueHead`): the policy and the critic share the trunk; the critic is a
//! scalar head `v = w_v · h` on the hidden state that predicts each response token, initialised to zero
//! so the first values are 0 and the shared trunk starts exactly at SFT (a critic initialised from the
//! reward model would need a second trunk, twice the memory and compute on two cores).
//!
//! One iteration ([`Ppo::iteration`]), with TRL's defaults in [`PpoConfig`]:
//! 1. rollouts: answers sampled from the policy with the KV cache ([`generate`]), scored by the caller
//!    (the reward model; the labeler never appears here);
//! 2. one forward each of the policy and the reference over the rollouts: old log-probabilities, values,
//!    reference log-probabilities;
//! 3. per-token rewards `-kl_coef * kl_t`, plus the score on the last token, with `kl_t` the k1
//!    (`log π - log π_ref`) or k3 (`(r - 1) - log r`, `r = π_ref / π`) estimator;
//! 4. GAE(γ, λ) advantages and returns; advantages whitened over the batch;
//! 5. `epochs` passes over shuffled minibatches: clipped surrogate `max(-A ρ, -A clip(ρ, 1±ε))` and
//!    clipped value loss `½ max((v - R)², (v_old + clip(v - v_old, ±ε_v) - R)²)` weighted by `vf_coef`,
//!    both averaged over response tokens; global-norm clipping; AdamW;
//! 6. the adaptive KL controller (Ziegler et al. 2019): `kl_coef *= 1 + clip(KL / target - 1, ±0.2) *
//!    n / horizon`, when a target is set.

use crate::align::sample::{generate, GenerateConfig};
use crate::error::Result;
use crate::layers::dot;
use crate::model::Model;
use crate::optim::AdamW;
use crate::rng::Rng;

/// Which per-token KL estimator the penalty uses (Schulman's k1 and k3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KlEstimator {
    K1,
    K3,
}

/// PPO's knobs; `Default` is TRL's.
#[derive(Debug, Clone, PartialEq)]
pub struct PpoConfig {
    pub kl_coef: f64,
    /// `(target, horizon)` of the adaptive controller; `None`: a fixed coefficient.
    pub adaptive_kl: Option<(f64, f64)>,
    pub kl_estimator: KlEstimator,
    pub gamma: f64,
    pub lam: f64,
    pub cliprange: f64,
    pub cliprange_value: f64,
    pub vf_coef: f64,
    /// Passes over each batch of rollouts.
    pub epochs: usize,
    /// Rollouts per minibatch.
    pub minibatch: usize,
    pub whiten: bool,
    pub lr: f64,
    pub grad_clip: f64,
    pub seed: u64,
}

impl Default for PpoConfig {
    fn default() -> Self {
        PpoConfig {
            kl_coef: 0.05,
            adaptive_kl: None,
            kl_estimator: KlEstimator::K1,
            gamma: 1.0,
            lam: 0.95,
            cliprange: 0.2,
            cliprange_value: 0.2,
            vf_coef: 0.1,
            epochs: 4,
            minibatch: 8,
            whiten: true,
            lr: 1e-5,
            grad_clip: 1.0,
            seed: 1337,
        }
    }
}

/// One rollout: the sequence and, per response token, what the update needs.
#[derive(Debug, Clone)]
struct Rollout {
    seq: Vec<u32>, // prompt ++ response
    prompt_len: usize,
    old_logp: Vec<f64>, // (R,)
    values: Vec<f64>,   // (R,)
    adv: Vec<f64>,      // (R,)
    returns: Vec<f64>,  // (R,)
}

/// An iteration's figures.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PpoStats {
    /// Mean score of the rollouts (the reward model's, before the KL penalty).
    pub score: f64,
    /// Mean over rollouts of the summed per-token KL estimate to the reference.
    pub kl: f64,
    pub kl_coef: f64,
    /// Mean per-token entropy of the policy on its rollouts.
    pub entropy: f64,
    pub clipfrac: f64,
    pub approx_kl: f64,
    pub pg_loss: f64,
    pub vf_loss: f64,
    pub explained_variance: f64,
    pub response_len: f64,
}

/// The PPO state: policy (trunk and LM head), value head, optimizer, reference, controller.
#[derive(Debug)]
pub struct Ppo {
    pub policy: Model<f32>,
    pub value_head: Vec<f32>, // (C,)
    pub reference: Model<f32>,
    pub opt: AdamW<f32>,
    /// The value head's Adam moments (C,); its step is the optimizer's.
    pub head_m: Vec<f32>,
    pub head_v: Vec<f32>,
    pub config: PpoConfig,
    pub rng: Rng,
    pub iterations: u64,
}

/// Runs `model` over the rollouts as `(S, T)` rows (inputs `seq[..n-1]`, targets `seq[1..]`) and returns,
/// per rollout, the rows whose targets are its response tokens.
fn forward_rows(model: &mut Model<f32>, rolls: &[&Rollout], t: usize) -> Result<Vec<Vec<usize>>> {
    let n = rolls.len() * t;
    let (mut x, mut y) = (vec![0u32; n], vec![0u32; n]);
    let mut rows = Vec::with_capacity(rolls.len());
    for (i, r) in rolls.iter().enumerate() {
        let k = r.seq.len() - 1;
        x[i * t..i * t + k].copy_from_slice(&r.seq[..k]);
        y[i * t..i * t + k].copy_from_slice(&r.seq[1..]);
        // response token j is target P-1+j
        rows.push((r.prompt_len - 1..k).map(|p| i * t + p).collect());
    }
    model.forward(&x, Some(&y), rolls.len(), t)?;
    Ok(rows)
}

impl Ppo {
    pub fn new(
        policy: Model<f32>,
        reference: Model<f32>,
        opt: AdamW<f32>,
        config: PpoConfig,
    ) -> Self {
        let c = policy.config.dim;
        let rng = Rng::new(config.seed);
        Ppo {
            policy,
            value_head: vec![0.0; c],
            reference,
            opt,
            head_m: vec![0.0; c],
            head_v: vec![0.0; c],
            config,
            rng,
            iterations: 0,
        }
    }

    /// One PPO iteration on `prompts` (token ids): sample, score with `score(prompt, response)` (token
    /// ids, the response with its end marker when it finished), update.
    pub fn iteration(
        &mut self,
        prompts: &[Vec<u32>],
        gen: &GenerateConfig,
        end: &[u32],
        mut score: impl FnMut(&[u32], &[u32]) -> Result<f64>,
    ) -> Result<PpoStats> {
        let cfg = self.config.clone();
        let mut g = gen.clone();
        g.sampler.seed = g
            .sampler
            .seed
            .wrapping_add(self.iterations.wrapping_mul(1 << 20));
        let gens = generate(&self.policy, prompts, &g)?;
        let tmax = self.policy.config.max_seq_len;
        let mut rolls = Vec::with_capacity(prompts.len());
        let mut scores = Vec::with_capacity(prompts.len());
        for (p, gtok) in prompts.iter().zip(gens) {
            let mut resp = gtok.tokens;
            if gtok.finished {
                resp.extend_from_slice(end);
            }
            if resp.is_empty() {
                resp.extend_from_slice(&end[..1]);
            }
            let mut seq = [p.as_slice(), &resp].concat();
            seq.truncate(tmax + 1);
            let r = seq.len() - p.len();
            scores.push(score(p, &seq[p.len()..])?);
            rolls.push(Rollout {
                seq,
                prompt_len: p.len(),
                old_logp: Vec::with_capacity(r),
                values: Vec::with_capacity(r),
                adv: Vec::new(),
                returns: Vec::new(),
            });
        }
        let t = rolls.iter().map(|r| r.seq.len() - 1).max().unwrap_or(1);
        let c = self.policy.config.dim;
        let v = self.policy.config.vocab_size;

        // old log-probabilities, values, entropy; reference log-probabilities; rewards; GAE
        let mut st = PpoStats {
            kl_coef: cfg.kl_coef,
            ..PpoStats::default()
        };
        let mut n_tokens = 0usize;
        let mb = cfg.minibatch.max(1);
        let mut kl_tokens: Vec<Vec<f64>> = Vec::with_capacity(rolls.len());
        for start in (0..rolls.len()).step_by(mb) {
            let end_i = (start + mb).min(rolls.len());
            let chunk: Vec<&Rollout> = rolls[start..end_i].iter().collect();
            let rows = forward_rows(&mut self.policy, &chunk, t)?;
            let (losses, h, logits) = (
                self.policy.token_losses(),
                self.policy.hidden(),
                self.policy.logits(),
            );
            let mut olds = Vec::new();
            for rr in &rows {
                let lp: Vec<f64> = rr.iter().map(|&row| -(losses[row] as f64)).collect();
                let vals: Vec<f64> = rr
                    .iter()
                    .map(|&row| dot(&h[row * c..(row + 1) * c], &self.value_head) as f64)
                    .collect();
                for &row in rr {
                    st.entropy += entropy(&logits[row * v..(row + 1) * v]);
                }
                n_tokens += rr.len();
                olds.push((lp, vals));
            }
            forward_rows(&mut self.reference, &chunk, t)?;
            let ref_losses = self.reference.token_losses();
            for (k, rr) in rows.iter().enumerate() {
                let (lp, vals) = olds[k].clone();
                let kl: Vec<f64> = rr
                    .iter()
                    .zip(&lp)
                    .map(|(&row, &l)| {
                        let lref = -(ref_losses[row] as f64);
                        match cfg.kl_estimator {
                            KlEstimator::K1 => l - lref,
                            KlEstimator::K3 => {
                                let lr = lref - l;
                                lr.exp() - 1.0 - lr
                            }
                        }
                    })
                    .collect();
                let roll = &mut rolls[start + k];
                roll.old_logp = lp;
                roll.values = vals;
                kl_tokens.push(kl);
            }
        }
        for (i, roll) in rolls.iter_mut().enumerate() {
            let kl = &kl_tokens[i];
            let r = kl.len();
            let mut rewards: Vec<f64> = kl.iter().map(|k| -cfg.kl_coef * k).collect();
            rewards[r - 1] += scores[i];
            st.kl += kl.iter().sum::<f64>();
            let mut adv = vec![0.0; r];
            let mut last = 0.0;
            for j in (0..r).rev() {
                let next = if j + 1 < r { roll.values[j + 1] } else { 0.0 };
                let delta = rewards[j] + cfg.gamma * next - roll.values[j];
                last = delta + cfg.gamma * cfg.lam * last;
                adv[j] = last;
            }
            roll.returns = adv.iter().zip(&roll.values).map(|(a, v)| a + v).collect();
            roll.adv = adv;
            st.response_len += r as f64;
        }
        let nr = rolls.len() as f64;
        st.score = scores.iter().sum::<f64>() / nr;
        st.kl /= nr;
        st.entropy /= n_tokens.max(1) as f64;
        st.response_len /= nr;
        st.explained_variance = explained_variance(&rolls);
        if cfg.whiten {
            let all: Vec<f64> = rolls.iter().flat_map(|r| r.adv.iter().copied()).collect();
            let mean = all.iter().sum::<f64>() / all.len() as f64;
            let var = all.iter().map(|a| (a - mean) * (a - mean)).sum::<f64>()
                / (all.len() as f64 - 1.0).max(1.0);
            let inv = 1.0 / (var.sqrt() + 1e-8);
            for r in &mut rolls {
                r.adv.iter_mut().for_each(|a| *a = (*a - mean) * inv);
            }
        }

        // epochs over shuffled minibatches
        let mut order: Vec<usize> = (0..rolls.len()).collect();
        let (mut updates, mut clipped, mut counted) = (0usize, 0usize, 0usize);
        for _ in 0..cfg.epochs {
            for i in (1..order.len()).rev() {
                order.swap(i, self.rng.below(i + 1));
            }
            for idx in order.chunks(mb) {
                let chunk: Vec<&Rollout> = idx.iter().map(|&i| &rolls[i]).collect();
                let count: usize = chunk.iter().map(|r| r.old_logp.len()).sum();
                let rows = forward_rows(&mut self.policy, &chunk, t)?;
                let losses = self.policy.token_losses().to_vec();
                let h = self.policy.hidden().to_vec();
                let mut w = vec![0.0f32; chunk.len() * t]; // (S, T) d(loss)/d(token loss)
                let mut dh = vec![0.0f32; chunk.len() * t * c]; // (S, T, C)
                let mut dhead = vec![0.0f32; c];
                let inv = 1.0 / count as f64;
                for (roll, rr) in chunk.iter().zip(&rows) {
                    for (j, &row) in rr.iter().enumerate() {
                        let logp = -(losses[row] as f64);
                        let a = roll.adv[j];
                        let ratio = (logp - roll.old_logp[j]).exp();
                        let pg1 = -a * ratio;
                        let pg2 = -a * ratio.clamp(1.0 - cfg.cliprange, 1.0 + cfg.cliprange);
                        st.pg_loss += pg1.max(pg2) * inv;
                        st.approx_kl += 0.5 * (logp - roll.old_logp[j]).powi(2) * inv;
                        clipped += (pg2 > pg1) as usize;
                        counted += 1;
                        // d(pg)/d(logp) = -A ρ on the unclipped branch, 0 where the clip is active;
                        // token loss = -logp
                        let dlogp = if pg1 >= pg2 { -a * ratio * inv } else { 0.0 };
                        w[row] = (-dlogp) as f32;

                        let hrow = &h[row * c..(row + 1) * c];
                        let vnew = dot(hrow, &self.value_head) as f64;
                        let (vold, ret) = (roll.values[j], roll.returns[j]);
                        let vclip =
                            vold + (vnew - vold).clamp(-cfg.cliprange_value, cfg.cliprange_value);
                        let (vf1, vf2) = ((vnew - ret).powi(2), (vclip - ret).powi(2));
                        st.vf_loss += 0.5 * vf1.max(vf2) * inv;
                        let dv = if vf1 >= vf2 {
                            vnew - ret
                        } else if (vnew - vold).abs() < cfg.cliprange_value {
                            vclip - ret
                        } else {
                            0.0
                        } * inv
                            * cfg.vf_coef;
                        let dv = dv as f32;
                        for ((g, d), (&hi, &wi)) in dhead
                            .iter_mut()
                            .zip(&mut dh[row * c..(row + 1) * c])
                            .zip(hrow.iter().zip(&self.value_head))
                        {
                            *g += dv * hi;
                            *d = dv * wi;
                        }
                    }
                }
                self.policy.zero_grad();
                self.policy.backward_token_weights(&w);
                self.policy.backward_hidden(&dh);
                // one global norm over the trunk's and the head's gradients
                let norm2: f64 = self
                    .policy
                    .grads
                    .iter()
                    .chain(&dhead)
                    .map(|&g| (g as f64) * (g as f64))
                    .sum();
                let norm = norm2.sqrt();
                if norm > cfg.grad_clip {
                    let s = (cfg.grad_clip / (norm + 1e-6)) as f32;
                    self.policy.grads.iter_mut().for_each(|g| *g *= s);
                    dhead.iter_mut().for_each(|g| *g *= s);
                }
                self.opt
                    .update(&mut self.policy.params, &self.policy.grads, cfg.lr);
                adam(
                    &mut self.value_head,
                    &mut self.head_m,
                    &mut self.head_v,
                    &dhead,
                    cfg.lr,
                    self.opt.step,
                );
                updates += 1;
            }
        }
        st.pg_loss /= updates.max(1) as f64;
        st.vf_loss /= updates.max(1) as f64;
        st.approx_kl /= updates.max(1) as f64;
        st.clipfrac = clipped as f64 / counted.max(1) as f64;

        if let Some((target, horizon)) = cfg.adaptive_kl {
            let err = (st.kl / target - 1.0).clamp(-0.2, 0.2);
            self.config.kl_coef *= 1.0 + err * prompts.len() as f64 / horizon;
        }
        self.iterations += 1;
        Ok(st)
    }
}

/// Entropy of the softmax of `logits`.
fn entropy(logits: &[f32]) -> f64 {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) as f64;
    let z: f64 = logits.iter().map(|&x| (x as f64 - max).exp()).sum();
    let lz = z.ln() + max;
    logits
        .iter()
        .map(|&x| {
            let lp = x as f64 - lz;
            -lp.exp() * lp
        })
        .sum()
}

/// `1 - Var(returns - values) / Var(returns)` over every response token.
fn explained_variance(rolls: &[Rollout]) -> f64 {
    let r: Vec<f64> = rolls
        .iter()
        .flat_map(|x| x.returns.iter().copied())
        .collect();
    let d: Vec<f64> = rolls
        .iter()
        .flat_map(|x| x.returns.iter().zip(&x.values).map(|(r, v)| r - v))
        .collect();
    let var = |xs: &[f64]| {
        let m = xs.iter().sum::<f64>() / xs.len() as f64;
        xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / xs.len() as f64
    };
    let vr = var(&r);
    if vr == 0.0 {
        return 0.0;
    }
    1.0 - var(&d) / vr
}

/// Adam (betas 0.9 / 0.999, eps 1e-8, no decay) for the value head, at step `t` (from 1).
fn adam(w: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], lr: f64, t: u64) {
    let t = t as i32;
    let bc1 = 1.0 - 0.9f64.powi(t);
    let bc2 = (1.0 - 0.999f64.powi(t)).sqrt();
    let step = (lr / bc1) as f32;
    for (((w, m), v), &g) in w.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
        *m += 0.1 * (g - *m);
        *v = *v * 0.999 + 0.001 * g * g;
        *w -= step * *m / (v.sqrt() / bc2 as f32 + 1e-8);
    }
}
