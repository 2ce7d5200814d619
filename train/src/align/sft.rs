//! Supervised fine-tuning: chat conversations as padded `(B, T)` rows whose loss covers the assistant
//! tokens only ([`Model::forward_masked`]), trained with the pretraining loop's AdamW, clipping and
//! schedule ([`Trainer`], so SFT checkpoints are ordinary checkpoints).
//!
//! A row holds one conversation: inputs `ids[..n-1]`, targets `ids[1..]`, the mask of the targets,
//! then padding (token 0, masked) up to `T`. A conversation longer than `T + 1` tokens is an error
//! that names it.

use crate::error::{Error, Result};
use crate::model::Model;
use crate::optim::{clip_grad_norm, lr_schedule};
use crate::pretrain::{StepStats, Trainer};
use crate::Float;

/// One encoded conversation: token ids and whether each is a training target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub ids: Vec<u32>,
    pub mask: Vec<bool>,
}

/// Checks every conversation fits `T + 1` tokens.
pub fn check_lengths(data: &[Encoded], t: usize) -> Result<()> {
    if data.is_empty() {
        return Err(Error::Data {
            what: "no conversations".into(),
        });
    }
    if let Some((i, e)) = data
        .iter()
        .enumerate()
        .find(|(_, e)| e.ids.len() > t + 1 || e.ids.len() < 2)
    {
        return Err(Error::Data {
            what: format!(
                "conversation {i} has {} tokens; each needs 2 to {} (context {t} + 1): raise --ctx or \
                 shorten it",
                e.ids.len(),
                t + 1
            ),
        });
    }
    Ok(())
}

/// Fills row-major `(B, T)` inputs, targets and mask from `rows` (at most B; missing rows are padding).
pub fn fill_batch(
    rows: &[&Encoded],
    b: usize,
    t: usize,
    x: &mut Vec<u32>,
    y: &mut Vec<u32>,
    mask: &mut Vec<bool>,
) {
    x.clear();
    y.clear();
    mask.clear();
    x.resize(b * t, 0);
    y.resize(b * t, 0);
    mask.resize(b * t, false);
    for (r, e) in rows.iter().enumerate() {
        let n = e.ids.len() - 1;
        x[r * t..r * t + n].copy_from_slice(&e.ids[..n]);
        y[r * t..r * t + n].copy_from_slice(&e.ids[1..]);
        mask[r * t..r * t + n].copy_from_slice(&e.mask[1..]);
    }
}

/// One optimizer step on `B * grad_accum` conversations drawn at random from `data`.
pub fn sft_step(trainer: &mut Trainer, data: &[Encoded]) -> Result<StepStats> {
    let cfg = trainer.config.clone();
    let (b, t) = (cfg.batch, cfg.seq_len);
    let accum = cfg.grad_accum.max(1);
    let (mut x, mut y, mut mask) = (Vec::new(), Vec::new(), Vec::new());
    trainer.model.zero_grad();
    let mut loss = 0.0f64;
    for _ in 0..accum {
        let rows: Vec<&Encoded> = (0..b)
            .map(|_| &data[trainer.sampler.below(data.len())])
            .collect();
        fill_batch(&rows, b, t, &mut x, &mut y, &mut mask);
        let l = trainer.model.forward_masked(&x, &y, &mask, b, t)?;
        loss += l as f64 / accum as f64;
        trainer.model.backward_scaled(1.0 / accum as f32);
    }
    let grad_norm = clip_grad_norm(&mut trainer.model.grads, cfg.grad_clip);
    let lr = lr_schedule(&cfg.schedule, trainer.step);
    trainer
        .opt
        .update(&mut trainer.model.params, &trainer.model.grads, lr);
    let s = StepStats {
        step: trainer.step,
        loss: loss as f32,
        lr,
        grad_norm,
    };
    trainer.step += 1;
    Ok(s)
}

/// The mean loss over every assistant token of `data` (all of it, in order, `B` rows at a time).
pub fn sft_eval<F: Float>(
    model: &mut Model<F>,
    data: &[Encoded],
    b: usize,
    t: usize,
) -> Result<f64> {
    let (mut x, mut y, mut mask) = (Vec::new(), Vec::new(), Vec::new());
    let (mut sum, mut count) = (0.0f64, 0usize);
    for chunk in data.chunks(b) {
        let rows: Vec<&Encoded> = chunk.iter().collect();
        fill_batch(&rows, b, t, &mut x, &mut y, &mut mask);
        model.forward(&x, Some(&y), b, t)?;
        for (l, &m) in model.token_losses().iter().zip(&mask) {
            if m {
                sum += l.to_f64();
                count += 1;
            }
        }
    }
    Ok(sum / count.max(1) as f64)
}
