//! Writes the seed corpus to `fuzz/seeds/` (or the directory given as the first argument): tiny valid
//! llama models in several shapes and weight types, a file exercising every metadata type, and a few
//! degenerate headers. Run with `cargo run --manifest-path fuzz/Cargo.toml --bin make_seeds`.
//!
//! The models follow `tests/common/mod.rs::tiny_model` but are much smaller (a 16-token vocabulary,
//! widths of 8 or 32, one or two layers) so that the whole corpus stays well under 100 KB and every
//! seed runs in microseconds.

use ingot_kernels::QuantType;
use ingot_runtime::gguf::writer::{GgufWriter, OwnedValue};
use ingot_runtime::gguf::Gguf;
use ingot_runtime::model::{Model, Session, SessionParams};
use std::path::PathBuf;

/// Deterministic pseudo-random floats in [-1, 1) (splitmix64, as in the workspace tests).
fn random_f32(n: usize, seed: u64) -> Vec<f32> {
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

fn weights(ty: QuantType, rows: usize, cols: usize, seed: u64) -> Vec<u8> {
    let x: Vec<f32> = random_f32(rows * cols, seed).iter().map(|v| v * 0.2).collect();
    let mut out = vec![0u8; ty.row_bytes(cols).expect("whole blocks") * rows];
    (ty.info().from_f32)(&x, &mut out);
    out
}

fn ones(n: usize) -> Vec<u8> {
    (0..n).flat_map(|_| 1.0f32.to_le_bytes()).collect()
}

fn s(v: &str) -> OwnedValue {
    OwnedValue::String(v.into())
}

/// Shape and types of one seed model.
struct Shape {
    n_embd: usize,
    n_head: usize,
    n_head_kv: usize,
    n_ff: usize,
    n_layer: usize,
    embd_type: QuantType,
    /// `Some(t)`: a separate `output.weight` of type `t`; `None`: tied to the embedding.
    output_type: Option<QuantType>,
    /// Types of wq, wk, wv, wo, gate, up, down, cycled over layers.
    types: [QuantType; 7],
}

const VOCAB: [&str; 16] = [
    "h", "e", "l", "o", "Ġ", "w", "r", "d", "he", "hel", "hello", "Ġw", "1", "!", "<|im_start|>",
    "<|im_end|>",
];

fn model(sh: &Shape) -> GgufWriter {
    let mut w = GgufWriter::new();
    let n_vocab = VOCAB.len();
    let mut types = vec![OwnedValue::I32(1); n_vocab];
    types[n_vocab - 2] = OwnedValue::I32(3);
    types[n_vocab - 1] = OwnedValue::I32(3);
    w.set("general.architecture", s("llama"))
        .set("general.name", s("tiny"))
        .set("llama.context_length", OwnedValue::U32(64))
        .set("llama.embedding_length", OwnedValue::U32(sh.n_embd as u32))
        .set("llama.block_count", OwnedValue::U32(sh.n_layer as u32))
        .set("llama.feed_forward_length", OwnedValue::U32(sh.n_ff as u32))
        .set("llama.attention.head_count", OwnedValue::U32(sh.n_head as u32))
        .set("llama.attention.head_count_kv", OwnedValue::U32(sh.n_head_kv as u32))
        .set("llama.attention.layer_norm_rms_epsilon", OwnedValue::F32(1e-5))
        .set("llama.rope.freq_base", OwnedValue::F32(10000.0))
        .set("tokenizer.ggml.model", s("gpt2"))
        .set("tokenizer.ggml.pre", s("smollm"))
        .set(
            "tokenizer.ggml.tokens",
            OwnedValue::Array(VOCAB.iter().map(|t| s(t)).collect()),
        )
        .set("tokenizer.ggml.token_type", OwnedValue::Array(types))
        .set(
            "tokenizer.ggml.merges",
            OwnedValue::Array(vec![s("h e"), s("he l"), s("hel lo"), s("Ġ w")]),
        )
        .set("tokenizer.ggml.eos_token_id", OwnedValue::U32(n_vocab as u32 - 1))
        .set("tokenizer.ggml.add_bos_token", OwnedValue::Bool(false));
    let (c, f) = (sh.n_embd, sh.n_ff);
    let hd = sh.n_embd / sh.n_head;
    let (qd, kvd) = (sh.n_head * hd, sh.n_head_kv * hd);
    let d = |n: usize| n as u64;
    w.add_tensor(
        "token_embd.weight",
        &[d(c), d(n_vocab)],
        sh.embd_type,
        weights(sh.embd_type, n_vocab, c, 1),
    );
    w.add_tensor("output_norm.weight", &[d(c)], QuantType::F32, ones(c));
    if let Some(ot) = sh.output_type {
        w.add_tensor("output.weight", &[d(c), d(n_vocab)], ot, weights(ot, n_vocab, c, 2));
    }
    for l in 0..sh.n_layer {
        let seed = 100 + l as u64 * 10;
        let ty = |i: usize| sh.types[(i + l) % 7];
        let n = |s: &str| format!("blk.{l}.{s}.weight");
        let mat = |w: &mut GgufWriter, name: &str, i: usize, rows: usize, cols: usize| {
            w.add_tensor(&n(name), &[d(cols), d(rows)], ty(i), weights(ty(i), rows, cols, seed + i as u64));
        };
        w.add_tensor(&n("attn_norm"), &[d(c)], QuantType::F32, ones(c));
        mat(&mut w, "attn_q", 0, qd, c);
        mat(&mut w, "attn_k", 1, kvd, c);
        mat(&mut w, "attn_v", 2, kvd, c);
        mat(&mut w, "attn_output", 3, c, qd);
        w.add_tensor(&n("ffn_norm"), &[d(c)], QuantType::F32, ones(c));
        mat(&mut w, "ffn_gate", 4, f, c);
        mat(&mut w, "ffn_up", 5, f, c);
        mat(&mut w, "ffn_down", 6, c, f);
    }
    w
}

/// Every metadata value type, scalar and array (including an empty array and an array of strings),
/// and tensors of several types and ranks, at a non-default alignment. Not a model.
fn all_types() -> GgufWriter {
    use OwnedValue::*;
    let mut w = GgufWriter::new();
    w.set("general.alignment", U32(16))
        .set("u8", U8(200))
        .set("i8", I8(-3))
        .set("u16", U16(60000))
        .set("i16", I16(-30000))
        .set("u32", U32(4_000_000_000))
        .set("i32", I32(-2_000_000_000))
        .set("f32", F32(1.5))
        .set("bool", Bool(true))
        .set("string", s("héllo"))
        .set("u64", U64(u64::MAX))
        .set("i64", I64(i64::MIN))
        .set("f64", F64(-0.25))
        .set("arr.u8", Array(vec![U8(1), U8(2)]))
        .set("arr.i8", Array(vec![I8(-1)]))
        .set("arr.u16", Array(vec![U16(7)]))
        .set("arr.i16", Array(vec![I16(-7)]))
        .set("arr.i32", Array(vec![I32(-1), I32(5)]))
        .set("arr.f32", Array(vec![F32(0.5)]))
        .set("arr.bool", Array(vec![Bool(false), Bool(true)]))
        .set("arr.str", Array(vec![s("a"), s(""), s("ü")]))
        .set("arr.u64", Array(vec![U64(9)]))
        .set("arr.i64", Array(vec![I64(-9)]))
        .set("arr.f64", Array(vec![F64(2.0)]))
        .set("arr.empty", Array(vec![]));
    w.add_tensor("f32", &[3, 2], QuantType::F32, ones(6));
    w.add_tensor("q4_0", &[32, 1, 1, 2], QuantType::Q4_0, weights(QuantType::Q4_0, 2, 32, 7));
    w.add_tensor("f16", &[5], QuantType::F16, weights(QuantType::F16, 1, 5, 8));
    w
}

fn check_loads(name: &str, bytes: &[u8]) {
    let g = Gguf::parse(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    let m = Model::from_gguf(g).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut sess = Session::new(&m, SessionParams { n_ctx: 8, n_batch: 4, n_threads: 1, ..Default::default() }).unwrap();
    sess.prefill(&[0, 1]).unwrap_or_else(|e| panic!("{name}: {e}"));
}

fn main() {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("seeds"));
    std::fs::create_dir_all(&dir).unwrap();
    use QuantType::*;

    let mut seeds: Vec<(&str, Vec<u8>, bool)> = Vec::new();
    // The tests' tiny model, shrunk: Q8_0 everywhere, GQA 2:1, tied output.
    let q8 = model(&Shape {
        n_embd: 32,
        n_head: 2,
        n_head_kv: 1,
        n_ff: 32,
        n_layer: 1,
        embd_type: Q8_0,
        output_type: None,
        types: [Q8_0; 7],
    });
    seeds.push(("model_q8_0.gguf", q8.to_bytes(), true));
    // Float weights, width 8 (no block constraint), two layers, separate output.
    let f32m = model(&Shape {
        n_embd: 8,
        n_head: 2,
        n_head_kv: 2,
        n_ff: 12,
        n_layer: 2,
        embd_type: F32,
        output_type: Some(F16),
        types: [F32, F16, BF16, F32, F16, BF16, F32],
    });
    seeds.push(("model_float.gguf", f32m.to_bytes(), true));
    // Every quantized weight type in one model, plus the optional hyperparameter keys.
    let mut mixed = model(&Shape {
        n_embd: 32,
        n_head: 4,
        n_head_kv: 2,
        n_ff: 32,
        n_layer: 1,
        embd_type: Q4_1,
        output_type: Some(Q5_1),
        types: [Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, F16, BF16],
    });
    mixed
        .set("general.alignment", OwnedValue::U32(64))
        .set("llama.vocab_size", OwnedValue::U64(16))
        .set("llama.attention.key_length", OwnedValue::U32(8))
        .set("llama.attention.value_length", OwnedValue::U32(8))
        .set("llama.rope.dimension_count", OwnedValue::U32(4))
        .set("llama.rope.scaling.type", s("linear"))
        .set("llama.rope.scaling.factor", OwnedValue::F32(2.0))
        .set("tokenizer.ggml.bos_token_id", OwnedValue::U32(14))
        .set("tokenizer.ggml.add_bos_token", OwnedValue::Bool(true))
        .set(
            "tokenizer.ggml.scores",
            OwnedValue::Array((0..16).map(|i| OwnedValue::F32(-(i as f32))).collect()),
        )
        .set(
            "tokenizer.chat_template",
            s("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"),
        );
    seeds.push(("model_mixed.gguf", mixed.to_bytes(), true));

    let all = all_types().to_bytes();
    let mut v2 = all.clone();
    v2[4..8].copy_from_slice(&2u32.to_le_bytes());
    seeds.push(("all_types.gguf", all, false));
    seeds.push(("all_types_v2.gguf", v2, false));
    seeds.push(("empty.gguf", GgufWriter::new().to_bytes(), false));

    let mut total = 0;
    for (name, bytes, is_model) in &seeds {
        if *is_model {
            check_loads(name, bytes);
        } else {
            Gguf::parse(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        std::fs::write(dir.join(name), bytes).unwrap();
        println!("{name}: {} bytes", bytes.len());
        total += bytes.len();
    }
    println!("{} seeds, {total} bytes in {}", seeds.len(), dir.display());
    assert!(total < 100_000, "seed corpus too large");
}
