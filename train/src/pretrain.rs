//! The pretraining loop: random windows, forward, backward (with gradient accumulation), global-norm
//! clipping, scheduled AdamW, and [`Trainer`], the state a checkpoint saves. Progress lines, metrics
//! files and the checkpoint schedule belong to the CLI command built on this (`ingot train pretrain`).

use crate::data::random_batch_into;
use crate::error::Result;
use crate::model::Model;
use crate::optim::{lr_schedule, AdamW, Schedule};
use crate::rng::Rng;

/// What one run does.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    /// `B`: sequences per micro-batch.
    pub batch: usize,
    /// `T`: tokens per sequence.
    pub seq_len: usize,
    /// Micro-batches per optimizer step.
    pub grad_accum: usize,
    pub steps: u64,
    pub schedule: Schedule,
    /// Global gradient-norm limit (`f64::INFINITY`: off).
    pub grad_clip: f64,
    /// Seed of the batch sampler.
    pub seed: u64,
}

/// One optimizer step's figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    pub step: u64,
    /// Mean training loss over the step's micro-batches.
    pub loss: f32,
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
}

/// A pretraining run's whole state between two steps: everything a checkpoint stores and a resumed
/// run needs to continue bit-identically (parameters, moments, step, sampler). Gradients and
/// activations are not state: each step recomputes them from zero.
#[derive(Debug)]
pub struct Trainer {
    pub model: Model<f32>,
    pub opt: AdamW<f32>,
    pub config: TrainConfig,
    /// Optimizer steps taken (the next step's 0-based index).
    pub step: u64,
    /// The batch sampler: draws every window's start.
    pub sampler: Rng,
}

impl Trainer {
    /// A run at step 0 whose sampler is seeded with `config.seed`.
    pub fn new(model: Model<f32>, opt: AdamW<f32>, config: TrainConfig) -> Self {
        let sampler = Rng::new(config.seed);
        Trainer {
            model,
            opt,
            config,
            step: 0,
            sampler,
        }
    }

    /// Whether `config.steps` steps have been taken.
    pub fn done(&self) -> bool {
        self.step >= self.config.steps
    }

    /// One optimizer step on random windows of `ids`.
    pub fn train_step(&mut self, ids: &[u32]) -> Result<StepStats> {
        let s = train_step(
            &mut self.model,
            &mut self.opt,
            &mut self.sampler,
            &self.config,
            self.step,
            ids,
        )?;
        self.step += 1;
        Ok(s)
    }

    /// Mean loss over `batches` windows of `ids` drawn from a fresh generator seeded with `seed`, so
    /// every evaluation sees the same windows and the training state (sampler, gradients) is untouched.
    pub fn evaluate(&mut self, ids: &[u32], batches: usize, seed: u64) -> Result<f32> {
        let (b, t) = (self.config.batch, self.config.seq_len);
        let mut rng = Rng::new(seed);
        let mut sum = 0.0f64;
        let (mut x, mut y) = std::mem::take(&mut self.model.batch);
        for _ in 0..batches.max(1) {
            random_batch_into(ids, b, t, &mut rng, &mut x, &mut y)?;
            let loss = self
                .model
                .forward(&x, Some(&y), b, t)?
                .expect("targets given");
            sum += loss as f64;
        }
        self.model.batch = (x, y);
        Ok((sum / batches.max(1) as f64) as f32)
    }
}

/// One optimizer step (0-based `step`, which sets the learning rate): `grad_accum` micro-batches from
/// `rng`, forward and backward, global-norm clipping, AdamW.
pub fn train_step(
    model: &mut Model<f32>,
    opt: &mut AdamW<f32>,
    rng: &mut Rng,
    cfg: &TrainConfig,
    step: u64,
    ids: &[u32],
) -> Result<StepStats> {
    let accum = cfg.grad_accum.max(1);
    model.zero_grad();
    let mut loss = 0.0f64;
    let (mut x, mut y) = std::mem::take(&mut model.batch); // reused: no allocation per step
    for _ in 0..accum {
        random_batch_into(ids, cfg.batch, cfg.seq_len, rng, &mut x, &mut y)?;
        let l = model
            .forward(&x, Some(&y), cfg.batch, cfg.seq_len)?
            .expect("targets given");
        loss += l as f64 / accum as f64;
        model.backward_scaled(1.0 / accum as f32);
    }
    model.batch = (x, y);
    let grad_norm = model.clip_grad_norm(cfg.grad_clip);
    let lr = lr_schedule(&cfg.schedule, step);
    model.adamw_update(opt, lr);
    Ok(StepStats {
        step,
        loss: loss as f32,
        lr,
        grad_norm,
    })
}

/// Runs `cfg.steps` optimizer steps on windows of `ids`, calling `on_step` after each.
pub fn pretrain(
    model: &mut Model<f32>,
    opt: &mut AdamW<f32>,
    ids: &[u32],
    cfg: &TrainConfig,
    mut on_step: impl FnMut(&StepStats),
) -> Result<Vec<StepStats>> {
    let mut rng = Rng::new(cfg.seed);
    let mut stats = Vec::with_capacity(cfg.steps as usize);
    for step in 0..cfg.steps {
        let s = train_step(model, opt, &mut rng, cfg, step, ids)?;
        on_step(&s);
        stats.push(s);
    }
    Ok(stats)
}
