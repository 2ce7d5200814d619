//! `ingot convert` on a Hugging Face `LlamaForCausalLM` directory.
//!
//! `testdata/hf/tiny-llama/` is a tiny random checkpoint written by Hugging Face `transformers`
//! (`save_pretrained`: two safetensors shards with an index, config.json in transformers 5's layout,
//! a byte-level BPE tokenizer.json, tokenizer_config.json, chat_template.jinja) and
//! `testdata/hf/tiny-llama-logits.json` holds, per prompt, the ids of the HF tokenizer and the
//! last-position logits of the transformers model in float32; both are made by
//! `tools/oracles/make_hf_fixture.py`. Converting to F32, ingot's tokenizer must give the same ids
//! and ingot's logits must match transformers', which checks the name mapping, the shapes, the
//! hyperparameters and the Q/K row permutation (rotate_half → adjacent-pair RoPE). Errors: a missing
//! config.json, a tensor with a wrong shape, a missing tensor, a malformed safetensors header; none
//! leaves an output.

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
    // transformers saves the chat template as chat_template.jinja.
    let template = std::fs::read_to_string(testdata("hf/tiny-llama/chat_template.jinja")).unwrap();
    assert!(
        matches!(meta("tokenizer.chat_template"), Some(Value::String(t)) if t == template && t.contains("<|im_start|>"))
    );
    // Hyperparameters as config.json states them (rope theta inside transformers 5's
    // `rope_parameters`).
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(testdata("hf/tiny-llama/config.json")).unwrap(),
    )
    .unwrap();
    let theta = config["rope_parameters"]["rope_theta"].as_f64().unwrap() as f32;
    let eps = config["rms_norm_eps"].as_f64().unwrap() as f32;
    assert!(matches!(meta("llama.rope.freq_base"), Some(Value::F32(t)) if t == theta));
    assert!(matches!(
        meta("llama.attention.layer_norm_rms_epsilon"),
        Some(Value::F32(e)) if e == eps
    ));
    assert!(matches!(
        meta("llama.attention.head_count_kv"),
        Some(Value::U32(2))
    ));
    assert_eq!(g.tensors().len(), 1 + 2 * 9 + 2);
    assert!(g.tensors().iter().any(|t| t.name == "output.weight"));
    let refs: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(testdata("hf/tiny-llama-logits.json")).unwrap(),
    )
    .unwrap();
    eprintln!("reference: {}", refs["versions"]);
    // The runtime's tokenizer reads the converted vocabulary (merges, bytes, special tokens) and
    // must give the ids of the HF tokenizer (no BOS added, special tokens in the text parsed).
    let tok = Tokenizer::new(tokenizer_config(&g).unwrap()).unwrap();
    let model = Model::from_gguf(g).unwrap();
    // `logits` is transformers in f32 with eager attention; `logits_f16_attn` the same model with
    // the roped q and k, v and the attention probabilities rounded to f16, where ingot's KV cache
    // and attention products hold them (ingot, like llama.cpp's CPU backend, has no f32 cache).
    let (mut worst, mut worst_hf) = (0f32, 0f32);
    let floats = |v: &serde_json::Value| -> Vec<f32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    };
    let cases = refs["cases"].as_array().unwrap();
    assert!(cases.len() >= 3);
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let ids: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(tok.encode(text, false, true), ids, "ids of {text:?}");
        let (want, hf) = (floats(&case["logits_f16_attn"]), floats(&case["logits"]));
        let mut s = Session::new(
            &model,
            SessionParams {
                n_ctx: 32,
                n_batch: 16,
                n_threads: 1,
                ..Default::default()
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
        // An f16 rounding whose input lies within 1e-6 (relative) of a midpoint may go either way
        // between two correct f32 implementations; the script lists those whose flip moves a
        // logit by more than 1e-4, with the logits of transformers with that rounding flipped.
        let mut d = max_diff(&want);
        let mut matched = "as rounded by transformers".to_string();
        for alt in case["f16_alternatives"].as_array().unwrap() {
            let da = max_diff(&floats(&alt["logits_f16_attn"]));
            if da < d {
                d = da;
                matched = format!("with {} rounded the other way", alt["flip"]);
            }
        }
        let d_hf = max_diff(&hf);
        eprintln!(
            "{text:?} ({} tokens): max |ingot - transformers(f16 attn)| = {d:e} ({matched}), max |ingot - transformers(eager f32)| = {d_hf:e}",
            ids.len()
        );
        worst = worst.max(d);
        worst_hf = worst_hf.max(d_hf);
    }
    assert!(
        worst <= 1e-4,
        "max logit difference {worst:e} (transformers with f16 attention)"
    );
    // Against plain f32 transformers only the f16 rounding of q, k, v and the probabilities
    // remains: it moves transformers' own logits by up to 4.5e-3 (|logits| <= 4.7, printed by the
    // script), and ingot's must stay within twice that.
    assert!(
        worst_hf <= 1e-2,
        "max logit difference {worst_hf:e} (transformers, eager f32)"
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

/// Edits the header of the shard that holds `model.layers.1.self_attn.k_proj.weight` (per the
/// index): the tensor gets its rows and columns swapped (same byte count, wrong shape), or is
/// renamed (so it is missing).
fn alter_k_proj(m: &Path, rename: bool) {
    let name = "model.layers.1.self_attn.k_proj.weight";
    let index: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(m.join("model.safetensors.index.json")).unwrap(),
    )
    .unwrap();
    let shard = m.join(index["weight_map"][name].as_str().unwrap());
    let bytes = std::fs::read(&shard).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..8 + n]).unwrap();
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
                ..Default::default()
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
