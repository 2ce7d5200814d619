//! `ingot convert` on a Hugging Face `LlamaForCausalLM` directory.
//!
//! `testdata/hf/tiny-llama/` is a tiny random checkpoint (two safetensors shards with an index, a
//! byte-level BPE tokenizer.json, tokenizer_config.json with a chat template) and
//! `testdata/hf/tiny-llama-logits.json` the last-position logits of Hugging Face's llama math on
//! it, computed in numpy; both are made by `tools/oracles/make_hf_fixture.py`. Converting to F32 and
//! running ingot must reproduce those logits, which checks the name mapping, the shapes and the
//! Q/K row permutation (rotate_half → adjacent-pair RoPE). Errors: a missing config.json, a tensor
//! with a wrong shape, a missing tensor, a malformed safetensors header; none leaves an output.

mod common;

use common::testdata;
use ingot_runtime::gguf::{GgufFile, Value};
use ingot_runtime::model::{tokenizer_config, Model, Session, SessionParams};
use ingot_runtime::tokenizer::Tokenizer;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ingot-convert-hf-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn convert(input: &Path, output: &Path, ty: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ingot"))
        .args([
            "convert",
            input.to_str().unwrap(),
            "-o",
            output.to_str().unwrap(),
            "--type",
            ty,
            "-q",
        ])
        .output()
        .expect("run ingot")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A copy of the fixture directory that a test may alter.
fn fixture_copy(dir: &Path) -> PathBuf {
    let src = testdata("hf/tiny-llama");
    let dst = dir.join("tiny-llama");
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
    dst
}

#[test]
fn tiny_llama_f32_matches_hf_logits() {
    let dir = scratch("logits");
    let out = dir.join("tiny.gguf");
    let o = convert(&testdata("hf/tiny-llama"), &out, "F32");
    assert!(o.status.success(), "{}", stderr(&o));

    let file = GgufFile::open(&out).unwrap();
    let g = file.parse().unwrap();
    let meta = |k: &str| g.metadata().iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
    assert!(matches!(
        meta("general.architecture"),
        Some(Value::String("llama"))
    ));
    assert!(matches!(
        meta("tokenizer.ggml.model"),
        Some(Value::String("gpt2"))
    ));
    assert!(matches!(
        meta("tokenizer.ggml.pre"),
        Some(Value::String("smollm"))
    ));
    assert!(matches!(
        meta("tokenizer.ggml.bos_token_id"),
        Some(Value::U32(258))
    ));
    assert!(matches!(
        meta("tokenizer.ggml.eos_token_id"),
        Some(Value::U32(259))
    ));
    assert!(
        matches!(meta("tokenizer.chat_template"), Some(Value::String(t)) if t.contains("<|im_start|>"))
    );
    assert!(matches!(
        meta("llama.attention.head_count_kv"),
        Some(Value::U32(2))
    ));
    assert_eq!(g.tensors().len(), 1 + 2 * 9 + 2);
    assert!(g.tensors().iter().any(|t| t.name == "output.weight"));
    // The runtime's tokenizer reads the converted vocabulary: merges, bytes and special tokens.
    let tok = Tokenizer::new(tokenizer_config(&g).unwrap()).unwrap();
    assert_eq!(
        tok.encode("<|im_start|>hello 42", false, true),
        vec![258, 257, 108, 111, 32, 52, 50]
    );

    let refs: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(testdata("hf/tiny-llama-logits.json")).unwrap(),
    )
    .unwrap();
    let model = Model::from_gguf(g).unwrap();
    // `logits_f16_attn` is HF's math with q, k, v and the attention probabilities rounded to f16,
    // where ingot's KV cache and attention products hold them; `logits` is HF's math in f64.
    let (mut worst, mut worst_hf) = (0f32, 0f32);
    let floats = |v: &serde_json::Value| -> Vec<f32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    };
    for case in refs["cases"].as_array().unwrap() {
        let ids: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let (want, hf) = (floats(&case["logits_f16_attn"]), floats(&case["logits"]));
        let mut s = Session::new(
            &model,
            SessionParams {
                n_ctx: 32,
                n_batch: 16,
                n_threads: 1,
            },
        )
        .unwrap();
        let got = s.prefill(&ids).unwrap();
        assert_eq!(got.len(), want.len());
        let max_diff = |w: &[f32]| {
            got.iter()
                .zip(w)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max)
        };
        let (d, d_hf) = (max_diff(&want), max_diff(&hf));
        eprintln!(
            "ids {ids:?}: max |ingot - ref(f16 attn)| = {d:e}, max |ingot - hf(f64)| = {d_hf:e}"
        );
        worst = worst.max(d);
        worst_hf = worst_hf.max(d_hf);
    }
    assert!(
        worst <= 1e-4,
        "max logit difference {worst:e} (f16-attention reference)"
    );
    // Against pure HF math only the f16 rounding of attention remains (logits are O(5)).
    assert!(
        worst_hf <= 1e-2,
        "max logit difference {worst_hf:e} (f64 HF reference)"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn missing_config_json_is_a_clear_error() {
    let dir = scratch("noconfig");
    let m = fixture_copy(&dir);
    std::fs::remove_file(m.join("config.json")).unwrap();
    let out = dir.join("out.gguf");
    let o = convert(&m, &out, "F32");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no config.json"), "{}", stderr(&o));
    assert!(!out.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Edits the header of the second shard: `model.layers.1.self_attn.k_proj.weight` gets its rows and
/// columns swapped (same byte count, wrong shape), or is renamed (so it is missing).
fn alter_k_proj(m: &Path, rename: bool) {
    let shard = m.join("model-00002-of-00002.safetensors");
    let bytes = std::fs::read(&shard).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let name = "model.layers.1.self_attn.k_proj.weight";
    let mut entry = header.remove(name).unwrap();
    if rename {
        header.insert("model.layers.1.self_attn.k_proj.renamed".into(), entry);
    } else {
        let shape = entry["shape"].as_array().unwrap().clone();
        entry["shape"] = serde_json::json!([shape[1], shape[0]]);
        header.insert(name.into(), entry);
    }
    let mut h = serde_json::to_vec(&header).unwrap();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend_from_slice(&bytes[8 + n..]);
    std::fs::write(&shard, out).unwrap();
}

#[test]
fn wrong_shape_and_missing_tensor_are_errors() {
    for drop in [false, true] {
        let dir = scratch(if drop { "missing" } else { "shape" });
        let m = fixture_copy(&dir);
        alter_k_proj(&m, drop);
        let out = dir.join("out.gguf");
        let o = convert(&m, &out, "F32");
        assert!(!o.status.success());
        let e = stderr(&o);
        if drop {
            assert!(
                e.contains("missing tensors: model.layers.1.self_attn.k_proj.weight"),
                "{e}"
            );
        } else {
            assert!(
                e.contains("model.layers.1.self_attn.k_proj.weight")
                    && e.contains("shape [32, 16]"),
                "{e}"
            );
        }
        assert!(!out.exists());
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "no temporary file left"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn malformed_safetensors_header_is_an_error() {
    let dir = scratch("header");
    let m = fixture_copy(&dir);
    let shard = m.join("model-00001-of-00002.safetensors");
    let mut bytes = std::fs::read(&shard).unwrap();
    bytes[8] = b'!'; // the header's opening `{`
    std::fs::write(&shard, bytes).unwrap();
    let out = dir.join("out.gguf");
    let o = convert(&m, &out, "Q8_0");
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("malformed safetensors file"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn quantized_targets_load_and_run() {
    let dir = scratch("q");
    for ty in ["F16", "BF16", "Q8_0", "Q4_0"] {
        let out = dir.join(format!("tiny-{ty}.gguf"));
        let o = convert(&testdata("hf/tiny-llama"), &out, ty);
        assert!(o.status.success(), "{ty}: {}", stderr(&o));
        let file = GgufFile::open(&out).unwrap();
        let model = Model::from_gguf(file.parse().unwrap()).unwrap();
        let mut s = Session::new(
            &model,
            SessionParams {
                n_ctx: 16,
                n_batch: 8,
                n_threads: 1,
            },
        )
        .unwrap();
        assert!(
            s.prefill(&[104, 101, 108])
                .unwrap()
                .iter()
                .all(|v| v.is_finite()),
            "{ty}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
