//! `ingot perplexity`: llama.cpp's `llama-perplexity` method. The text is tokenized as a whole and cut
//! into non-overlapping chunks of `--ctx` tokens; each chunk is evaluated from an empty cache and only
//! the second half of its positions is scored (the first half gives every scored token at least
//! `ctx/2` tokens of context). PPL = exp(mean negative log-likelihood over all scored tokens).

use super::{load_model, open};
use crate::PerplexityArgs;
use anyhow::{bail, Context, Result};
use ingot_runtime::model::{Session, SessionParams};
use std::time::Instant;

pub fn run(a: &PerplexityArgs) -> Result<()> {
    let file = open(&a.model)?;
    let model = load_model(&file)?;
    let text = std::fs::read_to_string(&a.file)
        .with_context(|| format!("cannot read `{}`", a.file.display()))?;
    if a.ctx < 4 {
        bail!("--ctx must be at least 4");
    }
    let tokens = model.tokenizer.encode(&text, true, false);
    let available = tokens.len() / a.ctx;
    if available == 0 {
        bail!(
            "`{}` has {} tokens; at least {} (one chunk of --ctx) are needed",
            a.file.display(),
            tokens.len(),
            a.ctx
        );
    }
    let n_chunks = a.chunks.map_or(available, |c| c.min(available));
    eprintln!(
        "perplexity: {} tokens, {} chunks of {} (scoring the second half of each)",
        tokens.len(),
        n_chunks,
        a.ctx
    );
    if let Some(w) = super::oversubscribed(a.threads) {
        eprintln!("{w}");
    }
    let mut session = Session::new(
        &model,
        SessionParams {
            n_ctx: a.ctx,
            n_batch: a.batch,
            n_threads: a.threads,
            kv_type: a.kv_type,
        },
    )?;
    let first = a.ctx / 2;
    let (mut nll, mut count) = (0.0f64, 0usize);
    let start = Instant::now();
    for chunk in 0..n_chunks {
        let toks = &tokens[chunk * a.ctx..(chunk + 1) * a.ctx];
        session.reset();
        session.eval_all(toks, |i, logits| {
            if i >= first && i + 1 < toks.len() {
                nll -= log_softmax_at(logits, toks[i + 1] as usize);
                count += 1;
            }
        })?;
        eprintln!(
            "[{}/{}] running PPL = {:.4} ({:.1} s)",
            chunk + 1,
            n_chunks,
            (nll / count as f64).exp(),
            start.elapsed().as_secs_f64()
        );
    }
    let mean = nll / count as f64;
    // Standard error of the mean NLL, propagated to PPL as llama.cpp reports it, is omitted: one number.
    println!("scored tokens: {count}");
    println!("PPL = {:.4}", mean.exp());
    Ok(())
}

/// log softmax(logits)[tok], in f64 like llama.cpp's `log_softmax`.
fn log_softmax_at(logits: &[f32], tok: usize) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
    f64::from(logits[tok] - max) - sum.ln()
}
