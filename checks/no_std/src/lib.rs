//! Proof that ingot's embedded profile holds: this crate is `#![no_std]` and uses `ingot-kernels` and
//! `ingot-runtime` with default features off, so it builds only if they do without `std`. CI builds
//! it for a target that has no `std` at all (`cargo build -p ingot-check-no-std --target
//! aarch64-unknown-none`), and `tests/greedy.rs` runs the same code on the host against llama.cpp's
//! greedy tokens.
//!
//! [`generate`] is what a device integrator writes: the model image is a byte slice (flash, a
//! buffer), the session lives in a caller-owned arena, nothing touches a file system or a thread.

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

use ingot_runtime::chat::{ChatMessage, ChatTemplate};
use ingot_runtime::gguf::Gguf;
use ingot_runtime::model::{Model, Session, SessionParams};
use ingot_runtime::sampler::{Sampler, SamplerParams};
use ingot_runtime::Result;

/// Parses a GGUF model image in place (zero-copy).
pub fn load(image: &[u8]) -> Result<Model<'_>> {
    Model::from_gguf(Gguf::parse(image)?)
}

/// The arena [`generate`] needs for `n_ctx` positions (one thread, batches of up to 64 tokens).
pub fn arena_bytes(model: &Model<'_>, n_ctx: usize) -> Result<usize> {
    Session::arena_bytes(model, params(n_ctx))
}

fn params(n_ctx: usize) -> SessionParams {
    SessionParams {
        n_ctx,
        n_batch: 64,
        n_threads: 1,
        ..SessionParams::default()
    }
}

/// Continues `prompt` by up to `n` tokens (stopping at an end-of-generation token) with the session
/// in `arena`; `temperature` 0 is greedy. With `chat`, the prompt is the user turn of a conversation
/// rendered by the model's chat template (the built-in families, no Jinja engine here). Returns the
/// token ids generated; their text is appended to `out`.
pub fn generate(
    model: &Model<'_>,
    prompt: &str,
    chat: bool,
    n: usize,
    temperature: f32,
    arena: &mut [u8],
    out: &mut String,
) -> Result<Vec<u32>> {
    let tok = &model.tokenizer;
    let text = if chat {
        let piece = |id: Option<u32>| id.and_then(|t| tok.token_text(t)).unwrap_or("");
        let tpl = match model.chat_template {
            Some(src) => ChatTemplate::new(src, piece(tok.bos()), piece(tok.eos()))?,
            None => ChatTemplate::chatml(),
        };
        tpl.render(&[ChatMessage::new("user", prompt)], true)?
    } else {
        String::from(prompt)
    };
    let ids = tok.encode(&text, true, chat);
    let n_ctx = ids.len() + n;
    let mut session = Session::new_in_arena(model, params(n_ctx), arena)?;
    let mut sampler = Sampler::new(
        SamplerParams {
            temperature,
            ..SamplerParams::default()
        },
        model.config.n_vocab,
    )?;
    let mut logits = session.prefill(&ids)?;
    let mut generated = Vec::with_capacity(n);
    for _ in 0..n {
        let next = sampler.sample(logits);
        sampler.accept(next);
        if tok.is_eog(next) {
            break;
        }
        generated.push(next);
        logits = session.decode(next)?;
    }
    out.push_str(&tok.decode(&generated, false));
    Ok(generated)
}
