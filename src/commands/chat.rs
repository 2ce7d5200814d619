//! `ingot chat`: a multi-turn conversation rendered with the model's own chat template.
//!
//! Each turn re-renders the whole conversation and evaluates only the tokens after the longest prefix
//! already in the KV cache, so earlier turns are not recomputed. When the rendered conversation plus
//! room for a reply no longer fits the context, `fit_history` keeps the system prompt and drops the
//! oldest turns (the policy is spelled out in `ingot chat --help`).

use super::device::Evaluator;
use super::{load_model, open, sampler_params};
use crate::ChatArgs;
use anyhow::{bail, Result};
use ingot_runtime::chat::{fit_history, ChatMessage, ChatTemplate};
use ingot_runtime::model::SessionParams;
use ingot_runtime::sampler::Sampler;
use ingot_runtime::tokenizer::StreamDecoder;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

/// The bundled chat model (`ingot pipeline`'s output, committed), relative to the repository root.
pub const BUNDLED_MODEL: &str = "assets/ingot-chat.Q8_0.gguf";

/// `-m` when given, else the bundled chat model: under the working directory when run from the
/// repository root, else where the repository was at build time.
pub fn model_or_bundled(model: &Option<PathBuf>) -> PathBuf {
    if let Some(m) = model {
        return m.clone();
    }
    let here = PathBuf::from(BUNDLED_MODEL);
    if here.is_file() {
        return here;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join(BUNDLED_MODEL)
}

pub fn run(a: &ChatArgs) -> Result<()> {
    if a.max_reply == 0 || a.max_reply >= a.ctx {
        bail!("--max-reply must be between 1 and --ctx - 1");
    }
    let file = open(&model_or_bundled(&a.model))?;
    let model = load_model(&file)?;
    let tok = &model.tokenizer;
    let text_of = |id: Option<u32>| id.and_then(|i| tok.token_text(i)).unwrap_or("").to_string();
    let template = match model.chat_template {
        Some(src) => ChatTemplate::new(src, &text_of(tok.bos()), &text_of(tok.eos()))?,
        None => {
            eprintln!("note: the model has no chat template; using ChatML");
            ChatTemplate::chatml()
        }
    };
    let mut sampler = Sampler::new(sampler_params(&a.sampling), model.config.n_vocab)?;
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
    let interactive = std::io::stdin().is_terminal();
    let mut history: Vec<ChatMessage> = Vec::new();
    let system = |h: &mut Vec<ChatMessage>| {
        if let Some(s) = &a.system {
            h.push(ChatMessage {
                role: "system".into(),
                content: s.clone(),
            });
        }
    };
    system(&mut history);
    // Tokens currently in the KV cache, to reuse the common prefix between turns.
    let mut cached: Vec<u32> = Vec::new();
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let mut lines = stdin.lock().lines();
    if interactive {
        eprintln!("ingot chat: type a message; /reset clears the conversation, /quit leaves.");
    }
    loop {
        if interactive {
            eprint!("> ");
            std::io::stderr().flush()?;
        }
        let Some(line) = lines.next() else { break };
        let line = line?;
        let input = line.trim();
        match input {
            "" => continue,
            "/quit" | "/exit" => break,
            "/reset" => {
                history.clear();
                system(&mut history);
                session.reset();
                cached.clear();
                sampler.reset();
                eprintln!("(conversation cleared)");
                continue;
            }
            _ => {}
        }
        history.push(ChatMessage {
            role: "user".into(),
            content: input.to_string(),
        });
        let budget = a.ctx - a.max_reply;
        let dropped = fit_history(&template, &mut history, budget, &|s: &str| {
            tok.encode(s, true, true).len()
        })?;
        if dropped > 0 {
            eprintln!("(context full: dropped the {dropped} oldest messages)");
        }
        let prompt = tok.encode(&template.render(&history, true)?, true, true);
        let common = cached
            .iter()
            .zip(&prompt)
            .take_while(|(a, b)| a == b)
            .count();
        // Re-evaluate at least the last prompt token so that its logits are fresh.
        let keep = common.min(prompt.len() - 1);
        session.truncate(keep);
        cached.truncate(keep);
        let mut logits = session.prefill(&prompt[keep..])?;
        let mut pos = prompt.len();
        cached.extend_from_slice(&prompt[keep..]);
        for &t in &prompt {
            sampler.accept(t);
        }
        let mut reply_ids: Vec<u32> = Vec::new();
        let mut stream = StreamDecoder::for_tokenizer(tok);
        let mut out = stdout.lock();
        while reply_ids.len() < a.max_reply {
            let next = sampler.sample(logits);
            sampler.accept(next);
            if tok.is_eog(next) {
                break;
            }
            reply_ids.push(next);
            out.write_all(stream.push(tok, next, false).as_bytes())?;
            out.flush()?;
            if pos == a.ctx {
                eprintln!("(context full: reply cut short)");
                break;
            }
            logits = session.decode(next)?;
            pos += 1;
            cached.push(next);
        }
        out.write_all(stream.flush().as_bytes())?;
        writeln!(out)?;
        history.push(ChatMessage {
            role: "assistant".into(),
            content: tok.decode(&reply_ids, false),
        });
    }
    Ok(())
}
