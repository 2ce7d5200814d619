//! `ingot info`: what is in a GGUF model file and what running it will cost.

use super::{load_model, open};
use crate::InfoArgs;
use anyhow::Result;
use ingot_runtime::gguf::Value;
use ingot_runtime::model::{session_bytes, SessionParams};
use std::fmt::Write as _;
use std::io::Write as _;

pub fn run(a: &InfoArgs) -> Result<()> {
    let file = open(&a.model)?;
    let model = load_model(&file)?;
    let mut o = String::new();
    let g = &model.gguf;
    let c = &model.config;
    writeln!(
        o,
        "file:            {} (GGUF v{}, alignment {})",
        file.path(),
        g.version,
        g.alignment
    )?;
    if let Ok(Some(name)) = g.get_str("general.name") {
        writeln!(o, "name:            {name}")?;
    }
    writeln!(o, "architecture:    {}", c.arch)?;
    writeln!(o, "layers:          {}", c.n_layer)?;
    writeln!(o, "width:           {}", c.n_embd)?;
    writeln!(
        o,
        "heads:           {} query, {} key/value, head size {}",
        c.n_head, c.n_head_kv, c.head_dim
    )?;
    writeln!(o, "feed-forward:    {}", c.n_ff)?;
    writeln!(o, "vocabulary:      {}", c.n_vocab)?;
    writeln!(o, "context (train): {}", c.n_ctx_train)?;
    writeln!(o, "rms eps:         {:e}", c.rms_eps)?;
    writeln!(
        o,
        "rope:            base {}, {} dims, freq scale {}",
        c.rope_base, c.n_rot, c.rope_freq_scale
    )?;
    writeln!(
        o,
        "output:          {}",
        if model.weights.tied_output {
            "tied to token_embd"
        } else {
            "output.weight"
        }
    )?;
    let tok = &model.tokenizer;
    let model_str = g
        .get_str("tokenizer.ggml.model")
        .ok()
        .flatten()
        .unwrap_or("?");
    let pre = g
        .get_str("tokenizer.ggml.pre")
        .ok()
        .flatten()
        .unwrap_or("default");
    let show = |id: Option<u32>| match id {
        Some(id) => format!("{id} {:?}", tok.token_text(id).unwrap_or("")),
        None => "none".to_string(),
    };
    writeln!(
        o,
        "tokenizer:       {model_str} (pre {pre}), {} tokens",
        tok.n_vocab()
    )?;
    writeln!(
        o,
        "bos / eos:       {} / {}",
        show(tok.bos()),
        show(tok.eos())
    )?;
    writeln!(
        o,
        "chat template:   {}",
        if model.chat_template.is_some() {
            "yes"
        } else {
            "no (ChatML fallback)"
        }
    )?;
    writeln!(o)?;
    writeln!(o, "metadata:")?;
    for (k, v) in g.metadata() {
        let shown = match v {
            Value::String(s) if s.len() > 60 => format!(
                "{:?}... ({} bytes)",
                s.chars().take(60).collect::<String>(),
                s.len()
            ),
            Value::String(s) => format!("{s:?}"),
            Value::Array(arr) => format!("[{}; {}]", arr.elem.name(), arr.len),
            other => format!("{other:?}"),
        };
        writeln!(o, "  {k:<44} {shown}")?;
    }
    writeln!(o)?;
    writeln!(
        o,
        "{:<32} {:>20} {:>6} {:>12}",
        "tensor", "shape", "type", "bytes"
    )?;
    for t in g.tensors() {
        let shape = t
            .shape()
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(" x ");
        writeln!(
            o,
            "{:<32} {:>20} {:>6} {:>12}",
            t.name,
            shape,
            t.ty.name(),
            t.data.len()
        )?;
    }
    let weights = model.weight_bytes();
    writeln!(o)?;
    writeln!(
        o,
        "tensors:         {} ({:.1} MiB)",
        g.tensors().len(),
        mib(weights)
    )?;
    let session = session_bytes(
        &model,
        SessionParams {
            n_ctx: a.ctx,
            ..SessionParams::default()
        },
    );
    writeln!(o,
        "memory at --ctx {}: {:.1} MiB mapped weights + {:.1} MiB session (KV cache f16 + scratch) = {:.1} MiB",
        a.ctx,
        mib(weights),
        mib(session as u64),
        mib(weights + session as u64)
    )?;
    std::io::stdout().write_all(o.as_bytes())?;
    Ok(())
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}
