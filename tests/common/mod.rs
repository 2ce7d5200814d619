//! Shared helpers for the workspace tests: where the real model is, and a tiny synthetic llama model
//! written with ingot's own GGUF writer.
#![allow(dead_code)]

use ingot_kernels::QuantType;
use ingot_runtime::gguf::writer::{GgufWriter, OwnedValue};
use std::path::PathBuf;

/// The SmolLM2 test model: `$INGOT_MODEL`, else `models/` (made by scripts/fetch-model.sh), else
/// `../shared/models`. Panics with a hint when it is missing: in CI a missing model is a failure.
pub fn model_path() -> PathBuf {
    if let Ok(p) = std::env::var("INGOT_MODEL") {
        return PathBuf::from(p);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let name = "SmolLM2-135M-Instruct.Q4_1.gguf";
    for cand in [
        root.join("models").join(name),
        root.join("../shared/models").join(name),
    ] {
        if cand.exists() {
            return cand;
        }
    }
    panic!("test model {name} not found: run scripts/fetch-model.sh (or set INGOT_MODEL)");
}

/// Path of a committed fixture under testdata/.
pub fn testdata(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(rel)
}

/// Deterministic pseudo-random floats in [-1, 1) (splitmix64).
pub fn random_f32(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            (z >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// GPT-2's byte-to-unicode table: printable bytes map to themselves, the rest to U+0100 onwards.
pub fn byte_tokens() -> Vec<String> {
    let printable = |b: u32| {
        (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b)
    };
    let mut next = 0x100u32;
    (0u32..256)
        .map(|b| {
            if printable(b) {
                char::from_u32(b).unwrap().to_string()
            } else {
                let c = char::from_u32(next).unwrap();
                next += 1;
                c.to_string()
            }
        })
        .collect()
}

/// Shape of the tiny model.
pub struct Tiny {
    pub n_embd: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub n_ff: usize,
    pub n_layer: usize,
    pub weight_type: QuantType,
}

impl Default for Tiny {
    fn default() -> Self {
        Tiny {
            n_embd: 64,
            n_head: 4,
            n_head_kv: 2,
            n_ff: 96,
            n_layer: 2,
            weight_type: QuantType::Q8_0,
        }
    }
}

fn quantized(ty: QuantType, rows: usize, cols: usize, seed: u64) -> Vec<u8> {
    let x: Vec<f32> = random_f32(rows * cols, seed)
        .iter()
        .map(|v| v * 0.2)
        .collect();
    let mut out = vec![0u8; ty.row_bytes(cols).unwrap() * rows];
    (ty.info().from_f32)(&x, &mut out);
    out
}

/// A complete, valid GGUF llama model (byte-level tokenizer with 256 byte tokens, 2 merges and 2
/// control tokens) as a writer, so tests can alter it before serializing.
pub fn tiny_model(t: &Tiny) -> GgufWriter {
    let mut w = GgufWriter::new();
    let mut tokens = byte_tokens();
    tokens.push("he".into());
    tokens.push("hel".into());
    tokens.push("<|im_start|>".into());
    tokens.push("<|im_end|>".into());
    let n_vocab = tokens.len();
    let mut types = vec![OwnedValue::I32(1); n_vocab];
    types[n_vocab - 2] = OwnedValue::I32(3);
    types[n_vocab - 1] = OwnedValue::I32(3);
    let s = |v: &str| OwnedValue::String(v.into());
    w.set("general.architecture", s("llama"))
        .set("general.name", s("tiny"))
        .set("llama.context_length", OwnedValue::U32(256))
        .set("llama.embedding_length", OwnedValue::U32(t.n_embd as u32))
        .set("llama.block_count", OwnedValue::U32(t.n_layer as u32))
        .set("llama.feed_forward_length", OwnedValue::U32(t.n_ff as u32))
        .set(
            "llama.attention.head_count",
            OwnedValue::U32(t.n_head as u32),
        )
        .set(
            "llama.attention.head_count_kv",
            OwnedValue::U32(t.n_head_kv as u32),
        )
        .set(
            "llama.attention.layer_norm_rms_epsilon",
            OwnedValue::F32(1e-5),
        )
        .set("llama.rope.freq_base", OwnedValue::F32(10000.0))
        .set("tokenizer.ggml.model", s("gpt2"))
        .set("tokenizer.ggml.pre", s("smollm"))
        .set(
            "tokenizer.ggml.tokens",
            OwnedValue::Array(tokens.iter().map(|t| s(t)).collect()),
        )
        .set("tokenizer.ggml.token_type", OwnedValue::Array(types))
        .set(
            "tokenizer.ggml.merges",
            OwnedValue::Array(vec![s("h e"), s("he l")]),
        )
        .set(
            "tokenizer.ggml.eos_token_id",
            OwnedValue::U32(n_vocab as u32 - 1),
        )
        .set("tokenizer.ggml.add_bos_token", OwnedValue::Bool(false));
    let (c, f) = (t.n_embd as u64, t.n_ff as u64);
    let hd = (t.n_embd / t.n_head) as u64;
    let qd = t.n_head as u64 * hd;
    let kvd = t.n_head_kv as u64 * hd;
    let ones = |n: u64| {
        (0..n)
            .flat_map(|_| 1.0f32.to_le_bytes())
            .collect::<Vec<u8>>()
    };
    let wt = t.weight_type;
    w.add_tensor(
        "token_embd.weight",
        &[c, n_vocab as u64],
        QuantType::Q8_0,
        quantized(QuantType::Q8_0, n_vocab, c as usize, 1),
    );
    w.add_tensor("output_norm.weight", &[c], QuantType::F32, ones(c));
    for l in 0..t.n_layer {
        let seed = 100 + l as u64 * 10;
        let n = |s: &str| format!("blk.{l}.{s}.weight");
        w.add_tensor(&n("attn_norm"), &[c], QuantType::F32, ones(c));
        w.add_tensor(
            &n("attn_q"),
            &[c, qd],
            wt,
            quantized(wt, qd as usize, c as usize, seed),
        );
        w.add_tensor(
            &n("attn_k"),
            &[c, kvd],
            wt,
            quantized(wt, kvd as usize, c as usize, seed + 1),
        );
        w.add_tensor(
            &n("attn_v"),
            &[c, kvd],
            wt,
            quantized(wt, kvd as usize, c as usize, seed + 2),
        );
        w.add_tensor(
            &n("attn_output"),
            &[qd, c],
            wt,
            quantized(wt, c as usize, qd as usize, seed + 3),
        );
        w.add_tensor(&n("ffn_norm"), &[c], QuantType::F32, ones(c));
        w.add_tensor(
            &n("ffn_gate"),
            &[c, f],
            wt,
            quantized(wt, f as usize, c as usize, seed + 4),
        );
        w.add_tensor(
            &n("ffn_up"),
            &[c, f],
            wt,
            quantized(wt, f as usize, c as usize, seed + 5),
        );
        w.add_tensor(
            &n("ffn_down"),
            &[f, c],
            wt,
            quantized(wt, c as usize, f as usize, seed + 6),
        );
    }
    w
}
