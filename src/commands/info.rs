//! `ingot info`: what is in a GGUF model file and what running it will cost.

use super::{load_model, open};
use crate::InfoArgs;
use anyhow::Result;
use ingot_runtime::gguf::Value;
use ingot_runtime::model::{session_bytes, SessionParams};

pub fn run(a: &InfoArgs) -> Result<()> {
    let file = open(&a.model)?;
    let model = load_model(&file)?;
    let g = &model.gguf;
    let c = &model.config;
    println!("file:            {} (GGUF v{}, alignment {})", file.path(), g.version, g.alignment);
    if let Ok(Some(name)) = g.get_str("general.name") {
        println!("name:            {name}");
    }
    println!("architecture:    {}", c.arch);
    println!("layers:          {}", c.n_layer);
    println!("width:           {}", c.n_embd);
    println!("heads:           {} query, {} key/value, head size {}", c.n_head, c.n_head_kv, c.head_dim);
    println!("feed-forward:    {}", c.n_ff);
    println!("vocabulary:      {}", c.n_vocab);
    println!("context (train): {}", c.n_ctx_train);
    println!("rms eps:         {:e}", c.rms_eps);
    println!("rope:            base {}, {} dims, freq scale {}", c.rope_base, c.n_rot, c.rope_freq_scale);
    println!("output:          {}", if model.weights.tied_output { "tied to token_embd" } else { "output.weight" });
    let tok = &model.tokenizer;
    let model_str = g.get_str("tokenizer.ggml.model").ok().flatten().unwrap_or("?");
    let pre = g.get_str("tokenizer.ggml.pre").ok().flatten().unwrap_or("default");
    let show = |id: Option<u32>| match id {
        Some(id) => format!("{id} {:?}", tok.token_text(id).unwrap_or("")),
        None => "none".to_string(),
    };
    println!("tokenizer:       {model_str} (pre {pre}), {} tokens", tok.n_vocab());
    println!("bos / eos:       {} / {}", show(tok.bos()), show(tok.eos()));
    println!("chat template:   {}", if model.chat_template.is_some() { "yes" } else { "no (ChatML fallback)" });
    println!();
    println!("metadata:");
    for (k, v) in g.metadata() {
        let shown = match v {
            Value::String(s) if s.len() > 60 => format!("{:?}... ({} bytes)", s.chars().take(60).collect::<String>(), s.len()),
            Value::String(s) => format!("{s:?}"),
            Value::Array(arr) => format!("[{}; {}]", arr.elem.name(), arr.len),
            other => format!("{other:?}"),
        };
        println!("  {k:<44} {shown}");
    }
    println!();
    println!("{:<32} {:>20} {:>6} {:>12}", "tensor", "shape", "type", "bytes");
    for t in g.tensors() {
        let shape = t.shape().iter().map(u64::to_string).collect::<Vec<_>>().join(" x ");
        println!("{:<32} {:>20} {:>6} {:>12}", t.name, shape, t.ty.name(), t.data.len());
    }
    let weights = model.weight_bytes();
    println!();
    println!("tensors:         {} ({:.1} MiB)", g.tensors().len(), mib(weights));
    let session = session_bytes(&model, SessionParams { n_ctx: a.ctx, ..SessionParams::default() });
    println!(
        "memory at --ctx {}: {:.1} MiB mapped weights + {:.1} MiB session (KV cache f16 + scratch) = {:.1} MiB",
        a.ctx,
        mib(weights),
        mib(session as u64),
        mib(weights + session as u64)
    );
    Ok(())
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}
