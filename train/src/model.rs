//! The llama-style decoder: parameters and gradients (one flat buffer each, named views from
//! `params.rs`), activations planned once for a `(B, T)`, and the forward and backward passes written
//! out layer by layer in the manner of llm.c's `gpt2_forward` / `gpt2_backward`. The layer math lives in
//! `layers/`; this file owns the buffers and the order.
//!
//! One block, with `x` the residual stream `(N, C)`, `N = B*T`:
//! ```text
//! ln1 = rmsnorm(x) * attn_norm
//! q, k, v = ln1 Wq^T, ln1 Wk^T, ln1 Wv^T        then RoPE on q and k (adjacent pairs)
//! xa = x + attention(q, k, v) Wo^T              causal, GQA
//! ln2 = rmsnorm(xa) * ffn_norm
//! x' = xa + (silu(ln2 Wgate^T) * (ln2 Wup^T)) Wdown^T
//! ```
//! then `logits = (rmsnorm(x_L) * output_norm) Wout^T` with `Wout = token_embd` when tied, and the
//! mean cross-entropy over the `N` tokens.
//!
//! The alignment stages (`align/`) need three more entry points, all additive: a loss mask
//! ([`Model::forward_masked`]: the mean over the unmasked tokens only, SFT), a weight per token's loss
//! ([`Model::backward_token_weights`]: DPO's and PPO's per-sequence coefficients), and a gradient that
//! enters at the final norm's output instead of the logits ([`Model::backward_hidden`]: a scalar head
//! such as the reward model's reads [`Model::hidden`]).

use crate::config::Config;
use crate::error::{Error, Result};
use crate::layers::*;
use crate::optim::{clip_grad_norm_par, AdamW};
use crate::parallel::{par_rows1, Engine, ThreadPool};
use crate::params::{self, Tensors};
use crate::rng::Rng;
use crate::Float;

/// Activations for one `(B, T)`: what the forward saves for the backward, and the backward's scratch.
#[derive(Debug)]
struct Activations<F> {
    b: usize,
    t: usize,
    tokens: Vec<u32>,  // (N,)
    targets: Vec<u32>, // (N,); empty when the forward had none
    weights: Vec<F>,   // (N,) d(loss)/d(losses[n]) of a masked forward; empty: uniform 1/N
    x: Vec<F>,         // (L+1, N, C) residual stream entering each block; x[L] leaves the last
    ln1: Vec<F>,       // (L, N, C)
    rstd1: Vec<F>,     // (L, N)
    q: Vec<F>,         // (L, N, H*D) after RoPE
    k: Vec<F>,         // (L, N, Hkv*D) after RoPE
    v: Vec<F>,         // (L, N, Hkv*D)
    att: Vec<F>,       // (L, B, H, T, T) attention probabilities
    atty: Vec<F>,      // (L, N, H*D) attention output before Wo
    xa: Vec<F>,        // (L, N, C) residual stream after the attention branch
    ln2: Vec<F>,       // (L, N, C)
    rstd2: Vec<F>,     // (L, N)
    gate: Vec<F>,      // (L, N, F)
    up: Vec<F>,        // (L, N, F)
    hidden: Vec<F>,    // (L, N, F) silu(gate) * up
    sig: Vec<F>,       // (L, N, F) sigmoid(gate), so the backward needs no second exp
    lnf: Vec<F>,       // (N, C)
    rstdf: Vec<F>,     // (N,)
    logits: Vec<F>,    // (N, V)
    probs: Vec<F>,     // (N, V)
    losses: Vec<F>,    // (N,)
    proj: Vec<F>,      // (N, C) scratch: a branch's output before the residual add
    // backward scratch, reused by every block
    dx: Vec<F>,      // (N, C) gradient of the residual stream
    dln: Vec<F>,     // (N, C) gradient of a norm's output
    dq: Vec<F>,      // (N, H*D)
    dk: Vec<F>,      // (N, Hkv*D)
    dv: Vec<F>,      // (N, Hkv*D)
    datty: Vec<F>,   // (N, H*D)
    dgate: Vec<F>,   // (N, F)
    dup: Vec<F>,     // (N, F)
    dhidden: Vec<F>, // (N, F)
    dlogits: Vec<F>, // (N, V)
}

impl<F: Float> Activations<F> {
    fn new(cfg: &Config, b: usize, t: usize) -> Self {
        let (n, c, l, v, f) = (b * t, cfg.dim, cfg.n_layers, cfg.vocab_size, cfg.ffn_dim);
        let (qd, kvd) = (cfg.n_heads * cfg.head_dim(), cfg.kv_dim());
        let z = |len: usize| vec![F::ZERO; len];
        Activations {
            b,
            t,
            tokens: vec![0; n],
            targets: Vec::new(),
            weights: Vec::new(),
            x: z((l + 1) * n * c),
            ln1: z(l * n * c),
            rstd1: z(l * n),
            q: z(l * n * qd),
            k: z(l * n * kvd),
            v: z(l * n * kvd),
            att: z(l * b * cfg.n_heads * t * t),
            atty: z(l * n * qd),
            xa: z(l * n * c),
            ln2: z(l * n * c),
            rstd2: z(l * n),
            gate: z(l * n * f),
            up: z(l * n * f),
            hidden: z(l * n * f),
            sig: z(l * n * f),
            lnf: z(n * c),
            rstdf: z(n),
            logits: z(n * v),
            probs: z(n * v),
            losses: z(n),
            proj: z(n * c),
            dx: z(n * c),
            dln: z(n * c),
            dq: z(n * qd),
            dk: z(n * kvd),
            dv: z(n * kvd),
            datty: z(n * qd),
            dgate: z(n * f),
            dup: z(n * f),
            dhidden: z(n * f),
            dlogits: z(n * v),
        }
    }
}

/// The model: configuration, parameters, gradients, activations. `F = f32` for training; the tests
/// also run it in `f64`.
#[derive(Debug)]
pub struct Model<F: Float = f32> {
    pub config: Config,
    /// All parameters, laid out by [`params::layout`].
    pub params: Vec<F>,
    /// Gradients, same layout; [`Model::backward`] accumulates into them.
    pub grads: Vec<F>,
    /// The thread pool (for the batch and the matmuls; results are bit-identical for any thread
    /// count) and the matrix products' scratch.
    engine: Engine<F>,
    rope: Vec<F>, // (T, D/2, 2) cos/sin
    acts: Option<Activations<F>>,
    /// Each tensor's range in `params` / `grads` (built once: the step slices with it).
    ranges: Tensors<std::ops::Range<usize>>,
    /// The training loop's batch `(tokens, targets)`, kept so a step allocates nothing.
    pub(crate) batch: (Vec<u32>, Vec<u32>),
}

impl<F: Float> Model<F> {
    /// A model with all parameters zero (see [`Model::init`]).
    pub fn new(config: Config, n_threads: usize) -> Result<Self> {
        config.validate()?;
        let np = params::num_params(&config);
        let rope = rope_table(
            config.max_seq_len,
            config.head_dim(),
            config.rope_base as f64,
        );
        Ok(Model {
            params: vec![F::ZERO; np],
            grads: vec![F::ZERO; np],
            engine: Engine::new(n_threads),
            rope,
            acts: None,
            ranges: params::ranges(&config),
            batch: (Vec::new(), Vec::new()),
            config,
        })
    }

    /// Initialises as GPT-2 / nanoGPT do: matrices `N(0, 0.02)`, the two projections that write into the
    /// residual stream (`attn_output`, `ffn_down`) `N(0, 0.02 / sqrt(2L))`, norm gains 1.
    pub fn init(&mut self, seed: u64) {
        let mut rng = Rng::new(seed);
        let residual_std = 0.02 / (2.0 * self.config.n_layers as f64).sqrt();
        for spec in params::layout(&self.config) {
            let p = &mut self.params[spec.offset..spec.offset + spec.len];
            if !spec.is_matrix() {
                p.iter_mut().for_each(|x| *x = F::ONE);
                continue;
            }
            let residual =
                spec.name.ends_with("attn_output.weight") || spec.name.ends_with("ffn_down.weight");
            let std = if residual { residual_std } else { 0.02 };
            p.iter_mut()
                .for_each(|x| *x = F::from_f64(std * rng.normal()));
        }
    }

    /// Threads for the batch and the matmuls, the caller included.
    pub fn n_threads(&self) -> usize {
        self.engine.n_threads()
    }

    /// The model's thread pool (the caller plus `n_threads - 1` workers).
    pub fn pool(&self) -> &ThreadPool {
        &self.engine.pool
    }

    /// The parameter tensor called `name` (GGUF naming), if any.
    pub fn param(&self, name: &str) -> Option<&[F]> {
        let spec = params::layout(&self.config)
            .into_iter()
            .find(|s| s.name == name)?;
        Some(&self.params[spec.offset..spec.offset + spec.len])
    }

    /// The gradient of the parameter tensor called `name`, if any.
    pub fn grad(&self, name: &str) -> Option<&[F]> {
        let spec = params::layout(&self.config)
            .into_iter()
            .find(|s| s.name == name)?;
        Some(&self.grads[spec.offset..spec.offset + spec.len])
    }

    /// The logits `(B, T, V)` of the last forward.
    pub fn logits(&self) -> &[F] {
        self.acts.as_ref().map_or(&[], |a| &a.logits)
    }

    pub fn zero_grad(&mut self) {
        zero(&mut self.grads, &self.engine.pool);
    }

    /// Clips the gradients to global norm `max_norm` ([`crate::clip_grad_norm`], on the model's
    /// threads; the same bits) and returns the norm before clipping.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> f64 {
        clip_grad_norm_par(&mut self.grads, max_norm, &self.engine.pool)
    }

    /// One AdamW update of the parameters from the gradients ([`AdamW::update`], on the model's
    /// threads; the same bits).
    pub fn adamw_update(&mut self, opt: &mut AdamW<F>, lr: f64) {
        opt.update_par(&mut self.params, &self.grads, lr, &self.engine.pool);
    }

    /// Runs the model on `tokens (B, T)`; with `targets (B, T)` also computes the mean loss, which it
    /// returns and which [`Model::backward`] then differentiates.
    pub fn forward(
        &mut self,
        tokens: &[u32],
        targets: Option<&[u32]>,
        b: usize,
        t: usize,
    ) -> Result<Option<F>> {
        let cfg = &self.config;
        let n = b * t;
        let batch_err = |what: String| Err(Error::Batch { what });
        if t == 0 || b == 0 || t > cfg.max_seq_len {
            return batch_err(format!(
                "shape ({b}, {t}) needs B > 0 and 0 < T <= {}",
                cfg.max_seq_len
            ));
        }
        for (what, ids) in [("tokens", Some(tokens)), ("targets", targets)] {
            let Some(ids) = ids else { continue };
            if ids.len() != n {
                return batch_err(format!("{what} has {} ids, expected B*T = {n}", ids.len()));
            }
            if let Some(&bad) = ids.iter().find(|&&id| id as usize >= cfg.vocab_size) {
                return batch_err(format!(
                    "{what} id {bad} out of range for vocabulary {}",
                    cfg.vocab_size
                ));
            }
        }
        if self.acts.as_ref().is_none_or(|a| a.b != b || a.t != t) {
            self.acts = Some(Activations::new(cfg, b, t));
        }
        let Model {
            config: cfg,
            params,
            engine: e,
            rope,
            acts,
            ranges: w,
            ..
        } = self;
        let a = acts.as_mut().expect("planned above");
        let (c, v, f) = (cfg.dim, cfg.vocab_size, cfg.ffn_dim);
        let (nh, nkv, d) = (cfg.n_heads, cfg.n_kv_heads, cfg.head_dim());
        let (qd, kvd) = (nh * d, nkv * d);
        let eps = F::from_f64(cfg.norm_eps as f64);
        let shape = AttentionShape { b, t, nh, nkv, d };
        let p = |r: &std::ops::Range<usize>| &params[r.clone()];

        a.tokens.copy_from_slice(tokens);
        a.targets.clear();
        a.targets.extend_from_slice(targets.unwrap_or(&[]));
        a.weights.clear();
        embedding_forward_par(&mut a.x[..n * c], tokens, p(&w.token_embd), c, &e.pool);
        for (l, lw) in w.layers.iter().enumerate() {
            let (x_in, x_out) = a.x[l * n * c..(l + 2) * n * c].split_at_mut(n * c); // (N, C) each
            let ln1 = &mut a.ln1[l * n * c..][..n * c];
            let q = &mut a.q[l * n * qd..][..n * qd];
            let k = &mut a.k[l * n * kvd..][..n * kvd];
            let vv = &mut a.v[l * n * kvd..][..n * kvd];
            let att = &mut a.att[l * b * nh * t * t..][..b * nh * t * t];
            let atty = &mut a.atty[l * n * qd..][..n * qd];
            let xa = &mut a.xa[l * n * c..][..n * c];
            let ln2 = &mut a.ln2[l * n * c..][..n * c];
            let gate = &mut a.gate[l * n * f..][..n * f];
            let up = &mut a.up[l * n * f..][..n * f];
            let hidden = &mut a.hidden[l * n * f..][..n * f];
            let sig = &mut a.sig[l * n * f..][..n * f];
            let rstd1 = &mut a.rstd1[l * n..][..n];
            let rstd2 = &mut a.rstd2[l * n..][..n];

            rmsnorm_forward_par(ln1, rstd1, x_in, p(&lw.attn_norm), c, eps, &e.pool);
            linear_forward(q, ln1, p(&lw.attn_q), n, c, qd, e);
            linear_forward(k, ln1, p(&lw.attn_k), n, c, kvd, e);
            linear_forward(vv, ln1, p(&lw.attn_v), n, c, kvd, e);
            rope_par(q, rope, b, t, nh, d, false, &e.pool);
            rope_par(k, rope, b, t, nkv, d, false, &e.pool);
            attention_forward(atty, att, q, k, vv, shape, e);
            linear_forward(&mut a.proj, atty, p(&lw.attn_output), n, qd, c, e);
            residual_forward_par(xa, x_in, &a.proj, &e.pool);

            rmsnorm_forward_par(ln2, rstd2, xa, p(&lw.ffn_norm), c, eps, &e.pool);
            linear_forward(gate, ln2, p(&lw.ffn_gate), n, c, f, e);
            linear_forward(up, ln2, p(&lw.ffn_up), n, c, f, e);
            swiglu_forward_saving_par(hidden, sig, gate, up, &e.pool);
            linear_forward(&mut a.proj, hidden, p(&lw.ffn_down), n, f, c, e);
            residual_forward_par(x_out, xa, &a.proj, &e.pool);
        }
        let x_last = &a.x[cfg.n_layers * n * c..];
        let (lnf, rstdf) = (&mut a.lnf, &mut a.rstdf);
        rmsnorm_forward_par(lnf, rstdf, x_last, p(&w.output_norm), c, eps, &e.pool);
        let wout = p(w.output.as_ref().unwrap_or(&w.token_embd));
        linear_forward(&mut a.logits, &a.lnf, wout, n, c, v, e);

        let Some(targets) = targets else {
            return Ok(None);
        };
        let (probs, losses) = (&mut a.probs, &mut a.losses);
        cross_entropy_forward_par(probs, losses, &a.logits, targets, v, &e.pool);
        let mean = a.losses.iter().map(|l| l.to_f64()).sum::<f64>() / n as f64;
        Ok(Some(F::from_f64(mean)))
    }

    /// Accumulates into [`Model::grads`] the gradient of the last forward's mean loss.
    ///
    /// Panics if the last forward had no targets.
    pub fn backward(&mut self) {
        self.backward_scaled(F::ONE)
    }

    /// As [`Model::backward`], for `scale * loss`: gradient accumulation over `k` micro-batches passes
    /// `1/k` so the sum is the gradient of the mean.
    pub fn backward_scaled(&mut self, scale: F) {
        let v = self.config.vocab_size;
        let a = self.acts.as_mut().expect("backward before forward");
        assert!(
            !a.targets.is_empty(),
            "backward needs a forward with targets"
        );
        let n = a.b * a.t;
        let pool = &self.engine.pool;

        // loss -> logits
        zero(&mut a.dlogits, pool);
        let (dlogits, probs, targets) = (&mut a.dlogits, &a.probs, &a.targets);
        if a.weights.is_empty() {
            let dloss = scale / F::from_f64(n as f64);
            cross_entropy_backward_par(dlogits, probs, targets, v, None, dloss, pool);
        } else {
            let weights = Some(&a.weights[..]);
            cross_entropy_backward_par(dlogits, probs, targets, v, weights, scale, pool);
        }
        self.backward_from_logits();
    }

    /// Accumulates into [`Model::grads`] the gradient of `sum_n weights[n] * losses[n]` over the last
    /// forward's per-token losses ([`Model::token_losses`]), `weights (B, T)`. Masked positions are
    /// weight 0; a per-sequence objective of log-probabilities (DPO, PPO) passes `-dObjective/dlogp`.
    ///
    /// Panics if the last forward had no targets or `weights` is not `B*T` long.
    pub fn backward_token_weights(&mut self, weights: &[F]) {
        let v = self.config.vocab_size;
        let a = self.acts.as_mut().expect("backward before forward");
        assert!(
            !a.targets.is_empty(),
            "backward needs a forward with targets"
        );
        assert_eq!(weights.len(), a.b * a.t, "one weight per token");
        let pool = &self.engine.pool;
        zero(&mut a.dlogits, pool);
        let (dlogits, probs, targets) = (&mut a.dlogits, &a.probs, &a.targets);
        cross_entropy_backward_par(dlogits, probs, targets, v, Some(weights), F::ONE, pool);
        self.backward_from_logits();
    }

    /// Accumulates into [`Model::grads`] the gradient of `sum dhidden * hidden` for the last forward's
    /// final-norm output ([`Model::hidden`], `(B, T, C)`): the trunk's share of a head that reads the
    /// hidden states (the reward model's scalar head, a value head). The LM head gets no gradient.
    ///
    /// Panics if `dhidden` is not `B*T*C` long.
    pub fn backward_hidden(&mut self, dhidden: &[F]) {
        let a = self.acts.as_mut().expect("backward before forward");
        a.dln.copy_from_slice(dhidden);
        self.backward_trunk();
    }

    /// The per-token losses `(B, T)` of the last forward with targets.
    pub fn token_losses(&self) -> &[F] {
        self.acts.as_ref().map_or(&[], |a| &a.losses)
    }

    /// The final norm's output `(B, T, C)` of the last forward: what the LM head (and any other head)
    /// reads.
    pub fn hidden(&self) -> &[F] {
        self.acts.as_ref().map_or(&[], |a| &a.lnf)
    }

    /// As [`Model::forward`] with targets, but the loss is the mean over the positions where `mask`
    /// is true only (`mask (B, T)`): masked positions contribute neither loss nor gradient, and the
    /// following [`Model::backward`] differentiates that mean. At least one position must be unmasked.
    pub fn forward_masked(
        &mut self,
        tokens: &[u32],
        targets: &[u32],
        mask: &[bool],
        b: usize,
        t: usize,
    ) -> Result<F> {
        if mask.len() != b * t {
            return Err(Error::Batch {
                what: format!("mask has {} entries, expected B*T = {}", mask.len(), b * t),
            });
        }
        let count = mask.iter().filter(|&&m| m).count();
        if count == 0 {
            return Err(Error::Batch {
                what: "the loss mask leaves no token to train on".into(),
            });
        }
        self.forward(tokens, Some(targets), b, t)?;
        let a = self.acts.as_mut().expect("forward ran");
        let inv = F::from_f64(1.0 / count as f64);
        a.weights.clear();
        a.weights
            .extend(mask.iter().map(|&m| if m { inv } else { F::ZERO }));
        let sum: f64 = a
            .losses
            .iter()
            .zip(mask)
            .filter(|(_, &m)| m)
            .map(|(l, _)| l.to_f64())
            .sum();
        Ok(F::from_f64(sum / count as f64))
    }

    /// From `dlogits` to the final norm's output gradient (`dln`), then the trunk.
    fn backward_from_logits(&mut self) {
        let Model {
            config: cfg,
            params,
            grads,
            engine: e,
            acts,
            ranges: w,
            ..
        } = self;
        let a = acts.as_mut().expect("backward before forward");
        let n = a.b * a.t;
        let (c, v) = (cfg.dim, cfg.vocab_size);
        let rout = w.output.as_ref().unwrap_or(&w.token_embd).clone();
        let (wout, dwout) = (&params[rout.clone()], &mut grads[rout]);
        linear_backward_into(&mut a.dln, dwout, &a.dlogits, &a.lnf, wout, n, c, v, e);
        self.backward_trunk();
    }

    /// From `dln` (the gradient of the final norm's output) through the final norm, the blocks and
    /// the embedding.
    fn backward_trunk(&mut self) {
        let Model {
            config: cfg,
            params,
            grads,
            engine: e,
            rope,
            acts,
            ranges: w,
            ..
        } = self;
        let a = acts.as_mut().expect("backward before forward");
        let (b, t) = (a.b, a.t);
        let n = b * t;
        let (c, f) = (cfg.dim, cfg.ffn_dim);
        let (nh, nkv, d) = (cfg.n_heads, cfg.n_kv_heads, cfg.head_dim());
        let (qd, kvd) = (nh * d, nkv * d);
        let shape = AttentionShape { b, t, nh, nkv, d };
        let p = |r: &std::ops::Range<usize>| &params[r.clone()];

        zero(&mut a.dx, &e.pool);
        let x_last = &a.x[cfg.n_layers * n * c..];
        let (dx, dln) = (&mut a.dx, &a.dln);
        let (wn, dwn) = (p(&w.output_norm), &mut grads[w.output_norm.clone()]);
        rmsnorm_backward_par(dx, dwn, dln, x_last, wn, &a.rstdf, c, &e.pool);

        // blocks, last to first; `dx` holds d(x_out) on entry and d(x_in) on exit
        for (l, lw) in w.layers.iter().enumerate().rev() {
            let x_in = &a.x[l * n * c..][..n * c];
            let ln1 = &a.ln1[l * n * c..][..n * c];
            let q = &a.q[l * n * qd..][..n * qd];
            let k = &a.k[l * n * kvd..][..n * kvd];
            let vv = &a.v[l * n * kvd..][..n * kvd];
            let att = &a.att[l * b * nh * t * t..][..b * nh * t * t];
            let atty = &a.atty[l * n * qd..][..n * qd];
            let xa = &a.xa[l * n * c..][..n * c];
            let ln2 = &a.ln2[l * n * c..][..n * c];
            let gate = &a.gate[l * n * f..][..n * f];
            let up = &a.up[l * n * f..][..n * f];
            let hidden = &a.hidden[l * n * f..][..n * f];
            let sig = &a.sig[l * n * f..][..n * f];
            let (rstd1, rstd2) = (&a.rstd1[l * n..][..n], &a.rstd2[l * n..][..n]);

            // MLP branch: x_out = xa + mlp(ln2), so d(xa) = d(x_out) + the norm's share. The first
            // writer of each scratch gradient overwrites it (`*_into`, `*_saved`): nothing to zero.
            let (wt, dw) = (p(&lw.ffn_down), &mut grads[lw.ffn_down.clone()]);
            linear_backward_into(&mut a.dhidden, dw, &a.dx, hidden, wt, n, f, c, e);
            let (dgate, dup) = (&mut a.dgate, &mut a.dup);
            swiglu_backward_saved_par(dgate, dup, &a.dhidden, sig, gate, up, &e.pool);
            let (wt, dw) = (p(&lw.ffn_gate), &mut grads[lw.ffn_gate.clone()]);
            linear_backward_into(&mut a.dln, dw, &a.dgate, ln2, wt, n, c, f, e);
            let (wt, dw) = (p(&lw.ffn_up), &mut grads[lw.ffn_up.clone()]);
            linear_backward(&mut a.dln, dw, &a.dup, ln2, wt, n, c, f, e);
            let (wt, dw) = (p(&lw.ffn_norm), &mut grads[lw.ffn_norm.clone()]);
            rmsnorm_backward_par(&mut a.dx, dw, &a.dln, xa, wt, rstd2, c, &e.pool);

            // attention branch: xa = x_in + attn(ln1)
            let (wt, dw) = (p(&lw.attn_output), &mut grads[lw.attn_output.clone()]);
            linear_backward_into(&mut a.datty, dw, &a.dx, atty, wt, n, qd, c, e);
            zero(&mut a.dq, &e.pool);
            zero(&mut a.dk, &e.pool);
            zero(&mut a.dv, &e.pool);
            attention_backward(
                &mut a.dq, &mut a.dk, &mut a.dv, &a.datty, q, k, vv, att, shape, e,
            );
            rope_par(&mut a.dq, rope, b, t, nh, d, true, &e.pool);
            rope_par(&mut a.dk, rope, b, t, nkv, d, true, &e.pool);
            let (wt, dw) = (p(&lw.attn_q), &mut grads[lw.attn_q.clone()]);
            linear_backward_into(&mut a.dln, dw, &a.dq, ln1, wt, n, c, qd, e);
            let (wt, dw) = (p(&lw.attn_k), &mut grads[lw.attn_k.clone()]);
            linear_backward(&mut a.dln, dw, &a.dk, ln1, wt, n, c, kvd, e);
            let (wt, dw) = (p(&lw.attn_v), &mut grads[lw.attn_v.clone()]);
            linear_backward(&mut a.dln, dw, &a.dv, ln1, wt, n, c, kvd, e);
            let (wt, dw) = (p(&lw.attn_norm), &mut grads[lw.attn_norm.clone()]);
            rmsnorm_backward_par(&mut a.dx, dw, &a.dln, x_in, wt, rstd1, c, &e.pool);
        }
        let dwte = &mut grads[w.token_embd.clone()];
        embedding_backward_par(dwte, &a.dx, &a.tokens, c, &e.pool);
    }
}

/// `buf = 0`, spread over `pool`.
fn zero<F: Float>(buf: &mut [F], pool: &ThreadPool) {
    let n = buf.len();
    par_rows1(pool, n, 1, (buf, 1), |_, b| b.fill(F::ZERO));
}
