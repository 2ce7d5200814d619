//! The reward model: the SFT trunk plus a scalar head `r = w · h` (`w (C,)`, no bias, as Hugging
//! Face's `LlamaForSequenceClassification` score head) read at the **last token** of each sequence, and
//! the Bradley–Terry loss over ranked pairs with TRL's `RewardTrainer` options:
//!
//! ```text
//! loss = mean_p [ -log σ(r_c - r_r - margin) ] + center * mean_p [ (r_c + r_r)² ]
//! ```
//!
//! (`margin` 0 by default; `center` is TRL's `center_rewards_coefficient`, off by default.) The head's
//! gradient and the trunk's (through [`Model::backward_hidden`]) are exact; `tests/align.rs` checks
//! both by finite differences in `f64` and the loss gradient against PyTorch.
//!
//! A pair's two sequences are `prompt ++ answer` token ids; the answer ends with `<|im_end|>\n`, so the
//! reward reads the same kind of token everywhere. A batch of `P` pairs runs as `(2P, T)` rows, chosen
//! first, padded with token 0 after each sequence (causal attention: padding never reaches the last
//! token).

use crate::error::{Error, Result};
use crate::layers::dot;
use crate::model::Model;
use crate::rng::Rng;
use crate::Float;

/// A ranked pair of answers to one prompt (token ids; answers include the end marker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub prompt: Vec<u32>,
    pub chosen: Vec<u32>,
    pub rejected: Vec<u32>,
}

impl Pair {
    /// The full sequences `(chosen, rejected)`.
    pub fn sequences(&self) -> (Vec<u32>, Vec<u32>) {
        let cat = |a: &[u32]| [self.prompt.as_slice(), a].concat();
        (cat(&self.chosen), cat(&self.rejected))
    }
}

/// The Bradley–Terry loss's options.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BtConfig {
    pub margin: f64,
    /// TRL's `center_rewards_coefficient` (0: off).
    pub center: f64,
}

/// `(loss, dloss/dr_c, dloss/dr_r)` of the Bradley–Terry loss over `P` pairs (see the module docs).
pub fn bt_loss(rc: &[f64], rr: &[f64], cfg: BtConfig) -> (f64, Vec<f64>, Vec<f64>) {
    assert_eq!(rc.len(), rr.len());
    let p = rc.len() as f64;
    let (mut loss, mut dc, mut dr) = (
        0.0,
        Vec::with_capacity(rc.len()),
        Vec::with_capacity(rc.len()),
    );
    for (&c, &r) in rc.iter().zip(rr) {
        let z = c - r - cfg.margin;
        // -log σ(z) = softplus(-z), written to stay finite for large |z|
        loss += (-z).max(0.0) + (-z.abs()).exp().ln_1p();
        let s = 1.0 / (1.0 + z.exp()); // σ(-z)
        let center = 2.0 * cfg.center * (c + r);
        loss += cfg.center * (c + r) * (c + r);
        dc.push((-s + center) / p);
        dr.push((s + center) / p);
    }
    (loss / p, dc, dr)
}

/// Lays out `seqs` as `(S, T)` rows padded with token 0; returns the rows and each one's last index.
pub fn pad_rows(seqs: &[&[u32]], t: usize) -> Result<(Vec<u32>, Vec<usize>)> {
    let mut x = vec![0u32; seqs.len() * t];
    let mut last = Vec::with_capacity(seqs.len());
    for (i, s) in seqs.iter().enumerate() {
        if s.is_empty() || s.len() > t {
            return Err(Error::Data {
                what: format!(
                    "a sequence of {} tokens does not fit the context of {t}: raise --ctx",
                    s.len()
                ),
            });
        }
        x[i * t..i * t + s.len()].copy_from_slice(s);
        last.push(i * t + s.len() - 1);
    }
    Ok((x, last))
}

/// The rewards of `seqs` (one forward, no gradient).
pub fn rewards<F: Float>(
    model: &mut Model<F>,
    head: &[F],
    seqs: &[&[u32]],
    t: usize,
) -> Result<Vec<f64>> {
    let (x, last) = pad_rows(seqs, t)?;
    model.forward(&x, None, seqs.len(), t)?;
    let c = model.config.dim;
    let h = model.hidden();
    Ok(last
        .iter()
        .map(|&row| dot(&h[row * c..(row + 1) * c], head).to_f64())
        .collect())
}

/// What one reward-model batch gave.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RmStats {
    pub loss: f64,
    /// Fraction of pairs with `r_c > r_r`.
    pub accuracy: f64,
    /// Mean `r_c - r_r`.
    pub margin: f64,
}

/// Forward and backward of the Bradley–Terry loss on `pairs`: accumulates the trunk's gradient into
/// `model.grads` and the head's into `dhead (C,)`.
pub fn rm_loss_and_grad<F: Float>(
    model: &mut Model<F>,
    head: &[F],
    dhead: &mut [F],
    pairs: &[Pair],
    t: usize,
    cfg: BtConfig,
) -> Result<RmStats> {
    let seqs: Vec<(Vec<u32>, Vec<u32>)> = pairs.iter().map(Pair::sequences).collect();
    let rows: Vec<&[u32]> = seqs
        .iter()
        .map(|s| s.0.as_slice())
        .chain(seqs.iter().map(|s| s.1.as_slice()))
        .collect();
    let (x, last) = pad_rows(&rows, t)?;
    let np = pairs.len();
    model.forward(&x, None, 2 * np, t)?;
    let c = model.config.dim;
    let h = model.hidden();
    let r: Vec<f64> = last
        .iter()
        .map(|&row| dot(&h[row * c..(row + 1) * c], head).to_f64())
        .collect();
    let (rc, rr) = r.split_at(np);
    let (loss, dc, dr) = bt_loss(rc, rr, cfg);
    let mut dh = vec![F::ZERO; h.len()]; // (2P*T, C)
    for (&row, &d) in last.iter().zip(dc.iter().chain(&dr)) {
        let d = F::from_f64(d);
        let hrow = &h[row * c..(row + 1) * c];
        for ((g, dhi), (&hi, &wi)) in dhead
            .iter_mut()
            .zip(&mut dh[row * c..(row + 1) * c])
            .zip(hrow.iter().zip(head))
        {
            *g += d * hi;
            *dhi = d * wi;
        }
    }
    model.backward_hidden(&dh);
    let wins = rc.iter().zip(rr).filter(|(c, r)| c > r).count();
    let margin = rc.iter().zip(rr).map(|(c, r)| c - r).sum::<f64>() / np as f64;
    Ok(RmStats {
        loss,
        accuracy: wins as f64 / np as f64,
        margin,
    })
}

/// `r_c - r_r` of each of `pairs`, `batch` pairs at a time.
pub fn rm_margins<F: Float>(
    model: &mut Model<F>,
    head: &[F],
    pairs: &[Pair],
    t: usize,
    batch: usize,
) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(pairs.len());
    for chunk in pairs.chunks(batch.max(1)) {
        let seqs: Vec<(Vec<u32>, Vec<u32>)> = chunk.iter().map(Pair::sequences).collect();
        let rows: Vec<&[u32]> = seqs
            .iter()
            .map(|s| s.0.as_slice())
            .chain(seqs.iter().map(|s| s.1.as_slice()))
            .collect();
        let r = rewards(model, head, &rows, t)?;
        let (rc, rr) = r.split_at(chunk.len());
        out.extend(rc.iter().zip(rr).map(|(c, r)| c - r));
    }
    Ok(out)
}

/// Pairwise accuracy and mean margin of the reward model on `pairs`, `batch` pairs at a time.
pub fn rm_eval<F: Float>(
    model: &mut Model<F>,
    head: &[F],
    pairs: &[Pair],
    t: usize,
    batch: usize,
) -> Result<RmStats> {
    let (mut wins, mut margin, mut loss) = (0usize, 0.0f64, 0.0f64);
    for chunk in pairs.chunks(batch.max(1)) {
        let seqs: Vec<(Vec<u32>, Vec<u32>)> = chunk.iter().map(Pair::sequences).collect();
        let rows: Vec<&[u32]> = seqs
            .iter()
            .map(|s| s.0.as_slice())
            .chain(seqs.iter().map(|s| s.1.as_slice()))
            .collect();
        let r = rewards(model, head, &rows, t)?;
        let (rc, rr) = r.split_at(chunk.len());
        let (l, _, _) = bt_loss(
            rc,
            rr,
            BtConfig {
                margin: 0.0,
                center: 0.0,
            },
        );
        loss += l * chunk.len() as f64;
        wins += rc.iter().zip(rr).filter(|(c, r)| c > r).count();
        margin += rc.iter().zip(rr).map(|(c, r)| c - r).sum::<f64>();
    }
    let n = pairs.len().max(1) as f64;
    Ok(RmStats {
        loss: loss / n,
        accuracy: wins as f64 / n,
        margin: margin / n,
    })
}

/// The scalar head and its Adam state (no weight decay: a head of `C` numbers).
#[derive(Debug, Clone)]
pub struct Head {
    pub w: Vec<f32>, // (C,)
    /// Adam's moments (C,) and step (saved for `--resume`).
    pub m: Vec<f32>,
    pub v: Vec<f32>,
    pub step: u64,
}

impl Head {
    /// `N(0, 0.02)`, Hugging Face's `initializer_range` for a fresh score head.
    pub fn new(c: usize, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        Head {
            w: (0..c).map(|_| (0.02 * rng.normal()) as f32).collect(),
            m: vec![0.0; c],
            v: vec![0.0; c],
            step: 0,
        }
    }

    pub fn from_weights(w: Vec<f32>) -> Self {
        let c = w.len();
        Head {
            w,
            m: vec![0.0; c],
            v: vec![0.0; c],
            step: 0,
        }
    }

    /// One Adam step (betas 0.9 / 0.999 as PyTorch's default, eps 1e-8).
    pub fn update(&mut self, g: &[f32], lr: f64) {
        self.step += 1;
        let t = self.step as i32;
        let (b1, b2) = (0.9f64, 0.999f64);
        let bc1 = 1.0 - b1.powi(t);
        let bc2 = (1.0 - b2.powi(t)).sqrt();
        let step = (lr / bc1) as f32;
        for (((w, m), v), &g) in self.w.iter_mut().zip(&mut self.m).zip(&mut self.v).zip(g) {
            *m += (1.0 - b1 as f32) * (g - *m);
            *v = *v * b2 as f32 + (1.0 - b2 as f32) * g * g;
            let denom = v.sqrt() / bc2 as f32 + 1e-8;
            *w -= step * *m / denom;
        }
    }
}

/// The file beside a reward model checkpoint's tensors that holds its head.
pub const HEAD_FILE: &str = "reward_head.safetensors";
const HEAD_TENSOR: &str = "score.weight";

/// Writes `w (C,)` as `dir/reward_head.safetensors` (tensor `score.weight`, shape `(1, C)`, F32),
/// atomically.
pub fn save_head(dir: &std::path::Path, w: &[f32]) -> Result<()> {
    let bytes: Vec<u8> = w.iter().flat_map(|x| x.to_le_bytes()).collect();
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![1, w.len()], &bytes)
            .map_err(|e| Error::Checkpoint {
                path: dir.display().to_string(),
                what: format!("cannot serialize the reward head: {e}"),
            })?;
    let file =
        safetensors::serialize([(HEAD_TENSOR, view)], None).map_err(|e| Error::Checkpoint {
            path: dir.display().to_string(),
            what: format!("cannot serialize the reward head: {e}"),
        })?;
    crate::files::atomic_write(&dir.join(HEAD_FILE), &file)
}

/// Reads the head of width `c` that [`save_head`] wrote into `dir`.
pub fn load_head(dir: &std::path::Path, c: usize) -> Result<Vec<f32>> {
    let path = dir.join(HEAD_FILE);
    let bytes = crate::files::read(&path)?;
    let err = |what: String| Error::Checkpoint {
        path: path.display().to_string(),
        what,
    };
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| err(format!("not a safetensors file: {e}")))?;
    let t = st
        .tensor(HEAD_TENSOR)
        .map_err(|_| err(format!("has no tensor {HEAD_TENSOR}")))?;
    if t.dtype() != safetensors::Dtype::F32 || t.shape() != [1, c] {
        return Err(err(format!(
            "{HEAD_TENSOR} is {:?} {:?}, expected F32 [1, {c}]",
            t.dtype(),
            t.shape()
        )));
    }
    Ok(t.data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
        .collect())
}
