//! Direct preference optimisation (Rafailov et al. 2023, the sigmoid loss of TRL's `DPOTrainer`):
//!
//! ```text
//! z = β [ (log π(c|x) - log π_ref(c|x)) - (log π(r|x) - log π_ref(r|x)) ]      loss = mean_p -log σ(z)
//! ```
//!
//! with `log π(a|x)` the sum of the answer tokens' log-probabilities (end marker included) and the
//! reference the frozen SFT model, whose log-probabilities are computed once before training. The
//! gradient goes through [`Model::backward_token_weights`]: a token's loss is `-log p`, so its weight
//! is `-dloss/dlog π` of its sequence. `tests/align.rs` checks it by finite differences in `f64`.

use crate::align::reward::Pair;
use crate::error::Result;
use crate::model::Model;
use crate::Float;

/// `(S, T)` inputs, targets, and answer mask for `(prompt_len, sequence)` rows.
fn rows(seqs: &[(usize, &[u32])], t: usize) -> Result<(Vec<u32>, Vec<u32>, Vec<bool>)> {
    let n = seqs.len() * t;
    let (mut x, mut y, mut m) = (vec![0u32; n], vec![0u32; n], vec![false; n]);
    for (i, &(plen, s)) in seqs.iter().enumerate() {
        if s.len() < 2 || s.len() > t + 1 || plen == 0 || plen >= s.len() {
            return Err(crate::Error::Data {
                what: format!(
                    "a sequence of {} tokens (prompt {plen}) does not fit the context of {t}: raise --ctx",
                    s.len()
                ),
            });
        }
        let k = s.len() - 1;
        x[i * t..i * t + k].copy_from_slice(&s[..k]);
        y[i * t..i * t + k].copy_from_slice(&s[1..]);
        // target j is token j+1: the answer's tokens are targets plen-1 ..
        m[i * t + plen - 1..i * t + k]
            .iter_mut()
            .for_each(|v| *v = true);
    }
    Ok((x, y, m))
}

fn pair_rows(pairs: &[Pair]) -> Vec<(usize, Vec<u32>)> {
    let seqs: Vec<(Vec<u32>, Vec<u32>)> = pairs.iter().map(Pair::sequences).collect();
    let mut out: Vec<(usize, Vec<u32>)> = Vec::with_capacity(2 * pairs.len());
    out.extend(
        pairs
            .iter()
            .zip(&seqs)
            .map(|(p, s)| (p.prompt.len(), s.0.clone())),
    );
    out.extend(pairs.iter().zip(seqs).map(|(p, s)| (p.prompt.len(), s.1)));
    out
}

/// `(log π(c|x), log π(r|x))` of every pair under `model`, `batch` pairs at a time (no gradient).
pub fn pair_logps<F: Float>(
    model: &mut Model<F>,
    pairs: &[Pair],
    t: usize,
    batch: usize,
) -> Result<Vec<(f64, f64)>> {
    let mut out = Vec::with_capacity(pairs.len());
    for chunk in pairs.chunks(batch.max(1)) {
        let pr = pair_rows(chunk);
        let refs: Vec<(usize, &[u32])> = pr.iter().map(|(p, s)| (*p, s.as_slice())).collect();
        let (x, y, m) = rows(&refs, t)?;
        model.forward(&x, Some(&y), refs.len(), t)?;
        let lp = seq_logps(model.token_losses(), &m, t);
        let (c, r) = lp.split_at(chunk.len());
        out.extend(c.iter().copied().zip(r.iter().copied()));
    }
    Ok(out)
}

fn seq_logps<F: Float>(losses: &[F], mask: &[bool], t: usize) -> Vec<f64> {
    losses
        .chunks(t)
        .zip(mask.chunks(t))
        .map(|(l, m)| {
            -l.iter()
                .zip(m)
                .filter(|(_, &m)| m)
                .map(|(l, _)| l.to_f64())
                .sum::<f64>()
        })
        .collect()
}

/// What one DPO batch gave.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DpoStats {
    pub loss: f64,
    /// Mean implicit reward margin `z / β`.
    pub margin: f64,
    /// Fraction of pairs with `z > 0`.
    pub accuracy: f64,
}

/// Forward and backward of the DPO loss on `pairs` with reference log-probabilities `reference`
/// (from [`pair_logps`] on the frozen model); accumulates into `model.grads`.
pub fn dpo_loss_and_grad<F: Float>(
    model: &mut Model<F>,
    pairs: &[Pair],
    reference: &[(f64, f64)],
    beta: f64,
    t: usize,
) -> Result<DpoStats> {
    assert_eq!(pairs.len(), reference.len());
    let np = pairs.len();
    let pr = pair_rows(pairs);
    let refs: Vec<(usize, &[u32])> = pr.iter().map(|(p, s)| (*p, s.as_slice())).collect();
    let (x, y, m) = rows(&refs, t)?;
    model.forward(&x, Some(&y), 2 * np, t)?;
    let lp = seq_logps(model.token_losses(), &m, t);
    let (lc, lr) = lp.split_at(np);
    let mut dlogp = vec![0.0f64; 2 * np];
    let (mut loss, mut margin, mut wins) = (0.0, 0.0, 0usize);
    for i in 0..np {
        let h = (lc[i] - reference[i].0) - (lr[i] - reference[i].1);
        let z = beta * h;
        loss += (-z).max(0.0) + (-z.abs()).exp().ln_1p();
        margin += h;
        wins += (z > 0.0) as usize;
        let s = 1.0 / (1.0 + z.exp()); // σ(-z) = -dloss/dz per pair
        dlogp[i] = -beta * s / np as f64;
        dlogp[np + i] = beta * s / np as f64;
    }
    // token loss = -log p, so d(loss)/d(token loss) = -d(loss)/d(log π) of its row
    let weights: Vec<F> = m
        .iter()
        .enumerate()
        .map(|(j, &on)| {
            if on {
                F::from_f64(-dlogp[j / t])
            } else {
                F::ZERO
            }
        })
        .collect();
    model.backward_token_weights(&weights);
    Ok(DpoStats {
        loss: loss / np as f64,
        margin: margin / np as f64,
        accuracy: wins as f64 / np as f64,
    })
}
