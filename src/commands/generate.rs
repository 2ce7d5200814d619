//! `ingot generate`: continue a raw prompt, streaming the new text to stdout and timings to stderr.

use super::device::Evaluator;
use super::{load_model, open, sampler_params};
use crate::GenerateArgs;
use anyhow::{bail, Result};
use ingot_runtime::model::SessionParams;
use ingot_runtime::sampler::Sampler;
use ingot_runtime::tokenizer::StreamDecoder;
use std::io::Write;
use std::time::Instant;

pub fn run(a: &GenerateArgs) -> Result<()> {
    let file = open(&super::chat::model_or_bundled(&a.model))?;
    let model = load_model(&file)?;
    let tok = &model.tokenizer;
    let prompt = tok.encode(&a.prompt, true, true);
    if prompt.is_empty() {
        bail!("the prompt is empty after tokenization; give some text with -p");
    }
    if prompt.len() >= a.ctx {
        bail!(
            "the prompt is {} tokens, which does not fit in the context of {} (raise --ctx)",
            prompt.len(),
            a.ctx
        );
    }
    let mut sampler = Sampler::new(sampler_params(&a.sampling), model.config.n_vocab)?;
    for &t in &prompt {
        sampler.accept(t);
    }
    let mut session = Evaluator::new(
        &model,
        SessionParams {
            n_ctx: a.ctx,
            n_batch: 64,
            n_threads: a.threads,
            kv_type: a.kv_type,
        },
        a.device,
    )?;
    let mut stream = StreamDecoder::for_tokenizer(tok);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();

    let t0 = Instant::now();
    let mut logits = session.prefill(&prompt)?;
    let prefill_s = t0.elapsed().as_secs_f64();

    let t1 = Instant::now();
    let mut generated = 0usize;
    let mut decode_steps = 0usize;
    let budget = a.n.min(a.ctx - prompt.len());
    while generated < budget {
        let next = sampler.sample(logits);
        sampler.accept(next);
        generated += 1;
        if tok.is_eog(next) {
            break;
        }
        out.write_all(stream.push(tok, next, false).as_bytes())?;
        out.flush()?;
        if generated == budget {
            break;
        }
        logits = session.decode(next)?;
        decode_steps += 1;
    }
    out.write_all(stream.flush().as_bytes())?;
    writeln!(out)?;
    out.flush()?;
    let decode_s = t1.elapsed().as_secs_f64();
    if a.n > budget {
        eprintln!("note: stopped at the context limit of {} tokens", a.ctx);
    }
    eprintln!(
        "prefill: {} tokens in {:.3} s ({:.1} tok/s) | decode: {} tokens in {:.3} s ({:.1} tok/s)",
        prompt.len(),
        prefill_s,
        prompt.len() as f64 / prefill_s,
        decode_steps,
        decode_s,
        if decode_steps > 0 {
            decode_steps as f64 / decode_s
        } else {
            0.0
        }
    );
    Ok(())
}
