//! The minimal pretraining loop: random windows, forward, backward (with gradient accumulation),
//! global-norm clipping, scheduled AdamW. Progress lines, metrics files, evaluation and checkpoints
//! belong to the CLI command built on this (later work).

use crate::data::random_batch;
use crate::error::Result;
use crate::model::Model;
use crate::optim::{clip_grad_norm, lr_schedule, AdamW, Schedule};
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

/// Runs `cfg.steps` optimizer steps on windows of `ids`, calling `on_step` after each.
pub fn pretrain(
    model: &mut Model<f32>,
    opt: &mut AdamW<f32>,
    ids: &[u32],
    cfg: &TrainConfig,
    mut on_step: impl FnMut(&StepStats),
) -> Result<Vec<StepStats>> {
    let mut rng = Rng::new(cfg.seed);
    let accum = cfg.grad_accum.max(1);
    let mut stats = Vec::with_capacity(cfg.steps as usize);
    for step in 0..cfg.steps {
        model.zero_grad();
        let mut loss = 0.0f64;
        for _ in 0..accum {
            let (x, y) = random_batch(ids, cfg.batch, cfg.seq_len, &mut rng)?;
            let l = model
                .forward(&x, Some(&y), cfg.batch, cfg.seq_len)?
                .expect("targets given");
            loss += l as f64 / accum as f64;
            model.backward_scaled(1.0 / accum as f32);
        }
        let grad_norm = clip_grad_norm(&mut model.grads, cfg.grad_clip);
        let lr = lr_schedule(&cfg.schedule, step);
        opt.update(&mut model.params, &model.grads, lr);
        let s = StepStats {
            step,
            loss: loss as f32,
            lr,
            grad_norm,
        };
        on_step(&s);
        stats.push(s);
    }
    Ok(stats)
}
