//! Hugging Face model directories in, GGUF out: `LlamaForCausalLM` checkpoints saved by
//! `save_pretrained` (`config.json`, `model.safetensors` or sharded `model-0000i-of-0000n.safetensors`
//! with `model.safetensors.index.json`, `tokenizer.json`, `tokenizer_config.json`).
//!
//! What it does, following llama.cpp's `convert_hf_to_gguf.py` for `LlamaModel`:
//!
//! - **Names**: `model.embed_tokens` → `token_embd`, `model.layers.N.self_attn.{q,k,v,o}_proj` →
//!   `blk.N.attn_{q,k,v,output}`, `mlp.{gate,up,down}_proj` → `blk.N.ffn_{gate,up,down}`,
//!   `input_layernorm` → `attn_norm`, `post_attention_layernorm` → `ffn_norm`, `model.norm` →
//!   `output_norm`, `lm_head` → `output` (skipped when `tie_word_embeddings`). `rotary_emb.inv_freq`
//!   buffers are ignored; any other tensor is an error, as is a missing one or a wrong shape.
//! - **Q/K permutation**: HF's `rotate_half` RoPE pairs element `i` of a head with `i + D/2`; ggml's
//!   llama RoPE (ingot's too) pairs adjacent elements `2i, 2i+1`. The rows of `q_proj` (with
//!   `num_attention_heads`) and `k_proj` (with `num_key_value_heads`) are reordered as
//!   `w.reshape(n_head, 2, D/2, in).swapaxes(1, 2).reshape(...)` — llama.cpp's `permute`.
//! - **dtypes**: F32, F16 and BF16 tensors are read (exactly widened to f32), then written in the
//!   type the [`Policy`] chooses, through the same row converter as GGUF inputs.
//! - **Metadata**: `general.*` (architecture `llama`, name from the directory, file type,
//!   quantization version), `llama.*` hyperparameters from `config.json` (rope theta from
//!   `rope_theta`, or from `rope_parameters` as transformers >= 5 writes it), and the tokenizer:
//!   `tokenizer.json` must hold a `BPE` model, written as `tokenizer.ggml.model = "gpt2"` with tokens
//!   (ids with no token become `[PADi]`, as llama.cpp does), merges (both the `"a b"` and the
//!   `["a", "b"]` forms), token types (added tokens marked `special` are control tokens, other added
//!   tokens user-defined, the rest normal), bos/eos/pad/unk ids from `tokenizer_config.json` (falling
//!   back to `config.json`'s `bos_token_id` / `eos_token_id`), `add_bos_token` / `add_eos_token` when
//!   `tokenizer_config.json` states them, and `tokenizer.chat_template` (from `chat_template.jinja`,
//!   where transformers >= 4.51 saves it, else `tokenizer_config.json`'s `chat_template`).
//!   `tokenizer.ggml.pre` is `"smollm"` when the pre-tokenizer is exactly `Digits` (individual digits)
//!   followed by `ByteLevel` — SmolLM/StarCoder's — and `"gpt-2"` otherwise. llama.cpp instead hashes
//!   the tokenization of a probe text to recognise the pre-tokenizer; this structural check only
//!   knows these two.
//!
//! - **Memory**: shards are memory-mapped (through the runtime's `GgufFile`, so this crate stays
//!   free of `unsafe`), and each tensor is widened, permuted and quantized in batches of rows
//!   ([`SCRATCH_ELEMS`] f32 per thread) written straight to the output; each batch's source pages
//!   are then released (`madvise DONTNEED`). Peak memory is a few batches, not the checkpoint
//!   (`tests/convert_memory.rs` converts a synthetic 2 GiB checkpoint and measures it).
//!
//! Limits (not yet done): `rope_scaling` other than `null` is refused; only the llama architecture.

use crate::error::io;
use crate::gguf_input::{Options, Progress, Summary, TensorPlan};
use crate::output::AtomicFile;
use crate::policy;
use crate::quantize::{quantize_rows, SCRATCH_ELEMS};
use crate::{Error, Result};
use ingot_kernels::QuantType;
use ingot_runtime::gguf::keys::{GENERAL_FILE_TYPE, GENERAL_QUANTIZATION_VERSION};
use ingot_runtime::gguf::writer::OwnedValue;
use ingot_runtime::gguf::{GgufFile, GgufStreamWriter, TensorDecl};
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// The hyperparameters read from `config.json`.
#[derive(Clone, Debug, PartialEq)]
pub struct HfConfig {
    pub hidden_size: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub intermediate_size: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub max_position_embeddings: usize,
    pub vocab_size: usize,
    pub tie_word_embeddings: bool,
}

fn bad(path: &Path, what: impl Into<String>) -> Error {
    Error::UnsupportedInput {
        path: path.display().to_string(),
        what: what.into(),
    }
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| io(path, e))?;
    serde_json::from_str(&text).map_err(|e| bad(path, format!("malformed JSON: {e}")))
}

impl HfConfig {
    /// Parses and checks `config.json`.
    pub fn from_json(path: &Path, v: &Value) -> Result<HfConfig> {
        let arch_ok = v["architectures"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == "LlamaForCausalLM"))
            || v["model_type"] == "llama";
        if !arch_ok {
            return Err(bad(
                path,
                format!(
                    "unsupported architecture {} (model_type {}): only LlamaForCausalLM is converted",
                    v["architectures"], v["model_type"]
                ),
            ));
        }
        let uint = |k: &str| -> Result<usize> {
            v[k].as_u64()
                .filter(|&n| n > 0)
                .map(|n| n as usize)
                .ok_or_else(|| bad(path, format!("`{k}` is missing or not a positive integer")))
        };
        let float = |k: &str, default: Option<f64>| -> Result<f64> {
            match (&v[k], default) {
                (Value::Null, Some(d)) => Ok(d),
                (x, _) => x
                    .as_f64()
                    .ok_or_else(|| bad(path, format!("`{k}` is missing or not a number"))),
            }
        };
        if !v["rope_scaling"].is_null() {
            return Err(bad(
                path,
                format!("rope_scaling {} is not supported yet", v["rope_scaling"]),
            ));
        }
        // transformers >= 5 writes `rope_parameters: {rope_type, rope_theta, ...}` in place of
        // `rope_theta` and `rope_scaling`.
        let rope = &v["rope_parameters"];
        if !rope.is_null() {
            if !rope.is_object() {
                return Err(bad(
                    path,
                    format!("rope_parameters {rope} is not an object"),
                ));
            }
            if !(rope["rope_type"].is_null() || rope["rope_type"] == "default") {
                return Err(bad(
                    path,
                    format!("rope_parameters {rope}: only rope_type `default` is supported yet"),
                ));
            }
        }
        let rope_theta = match (&v["rope_theta"], &rope["rope_theta"]) {
            (Value::Null, Value::Null) => 10000.0,
            (Value::Null, t) | (t, Value::Null) => t
                .as_f64()
                .ok_or_else(|| bad(path, format!("rope_theta {t} is not a number")))?,
            (a, b) => {
                return Err(bad(
                    path,
                    format!("rope_theta {a} and rope_parameters.rope_theta {b} both given"),
                ))
            }
        };
        if let Some(act) = v["hidden_act"].as_str() {
            if act != "silu" {
                return Err(bad(
                    path,
                    format!("hidden_act `{act}` is not supported (silu only)"),
                ));
            }
        }
        let hidden_size = uint("hidden_size")?;
        let n_head = uint("num_attention_heads")?;
        let n_head_kv = match v["num_key_value_heads"] {
            Value::Null => n_head,
            _ => uint("num_key_value_heads")?,
        };
        let head_dim = match v["head_dim"] {
            Value::Null => hidden_size / n_head,
            _ => uint("head_dim")?,
        };
        if head_dim * n_head != hidden_size && v["head_dim"].is_null() {
            return Err(bad(
                path,
                format!(
                    "hidden_size {hidden_size} is not a multiple of num_attention_heads {n_head}"
                ),
            ));
        }
        if n_head % n_head_kv != 0 || head_dim % 2 != 0 {
            return Err(bad(
                path,
                format!("num_attention_heads {n_head} / num_key_value_heads {n_head_kv} / head_dim {head_dim}: heads must group evenly and head_dim be even"),
            ));
        }
        Ok(HfConfig {
            hidden_size,
            n_layer: uint("num_hidden_layers")?,
            n_head,
            n_head_kv,
            head_dim,
            intermediate_size: uint("intermediate_size")?,
            rms_norm_eps: float("rms_norm_eps", None)?,
            rope_theta,
            max_position_embeddings: uint("max_position_embeddings")?,
            vocab_size: uint("vocab_size")?,
            tie_word_embeddings: v["tie_word_embeddings"].as_bool().unwrap_or(false),
        })
    }
}

/// How a tensor's rows are reordered on the way out.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Permute {
    None,
    /// llama.cpp's `permute(w, n_head)`.
    Heads(usize),
}

/// One output tensor: its HF name, GGUF name, HF shape (outermost first) and row permutation.
#[derive(Clone, Debug)]
struct Expected {
    hf: String,
    gguf: String,
    shape: Vec<usize>,
    permute: Permute,
}

fn expected(c: &HfConfig) -> Vec<Expected> {
    let e = |hf: String, gguf: String, shape: Vec<usize>, permute| Expected {
        hf,
        gguf,
        shape,
        permute,
    };
    let (h, f, v) = (c.hidden_size, c.intermediate_size, c.vocab_size);
    let (qd, kvd) = (c.n_head * c.head_dim, c.n_head_kv * c.head_dim);
    let mut out = vec![e(
        "model.embed_tokens.weight".into(),
        "token_embd.weight".into(),
        vec![v, h],
        Permute::None,
    )];
    for l in 0..c.n_layer {
        let p = |s: &str| format!("model.layers.{l}.{s}.weight");
        let g = |s: &str| format!("blk.{l}.{s}.weight");
        out.extend([
            e(p("input_layernorm"), g("attn_norm"), vec![h], Permute::None),
            e(
                p("self_attn.q_proj"),
                g("attn_q"),
                vec![qd, h],
                Permute::Heads(c.n_head),
            ),
            e(
                p("self_attn.k_proj"),
                g("attn_k"),
                vec![kvd, h],
                Permute::Heads(c.n_head_kv),
            ),
            e(
                p("self_attn.v_proj"),
                g("attn_v"),
                vec![kvd, h],
                Permute::None,
            ),
            e(
                p("self_attn.o_proj"),
                g("attn_output"),
                vec![h, qd],
                Permute::None,
            ),
            e(
                p("post_attention_layernorm"),
                g("ffn_norm"),
                vec![h],
                Permute::None,
            ),
            e(p("mlp.gate_proj"), g("ffn_gate"), vec![f, h], Permute::None),
            e(p("mlp.up_proj"), g("ffn_up"), vec![f, h], Permute::None),
            e(p("mlp.down_proj"), g("ffn_down"), vec![h, f], Permute::None),
        ]);
    }
    out.push(e(
        "model.norm.weight".into(),
        "output_norm.weight".into(),
        vec![h],
        Permute::None,
    ));
    if !c.tie_word_embeddings {
        out.push(e(
            "lm_head.weight".into(),
            "output.weight".into(),
            vec![v, h],
            Permute::None,
        ));
    }
    out
}

/// Whether an HF tensor with no GGUF counterpart is dropped silently (as llama.cpp does).
fn ignored(name: &str, c: &HfConfig) -> bool {
    name.ends_with(".rotary_emb.inv_freq") || (c.tie_word_embeddings && name == "lm_head.weight")
}

/// The safetensors files of the checkpoint: the index's shards, or `model.safetensors`.
fn shard_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    if index.exists() {
        let v = read_json(&index)?;
        let map = v["weight_map"]
            .as_object()
            .ok_or_else(|| bad(&index, "no `weight_map` object"))?;
        let mut files = BTreeSet::new();
        for (name, file) in map {
            let file = file
                .as_str()
                .filter(|f| !f.contains('/') && !f.contains('\\') && f.ends_with(".safetensors"))
                .ok_or_else(|| {
                    bad(
                        &index,
                        format!(
                            "weight_map entry for `{name}` is not a safetensors file name: {file}"
                        ),
                    )
                })?;
            files.insert(file.to_string());
        }
        return Ok(files.into_iter().map(|f| dir.join(f)).collect());
    }
    let single = dir.join("model.safetensors");
    if single.exists() {
        return Ok(vec![single]);
    }
    Err(bad(
        dir,
        "no model.safetensors and no model.safetensors.index.json (sharded checkpoint) in the directory",
    ))
}

fn dtype_type(d: Dtype) -> Option<QuantType> {
    match d {
        Dtype::F32 => Some(QuantType::F32),
        Dtype::F16 => Some(QuantType::F16),
        Dtype::BF16 => Some(QuantType::BF16),
        _ => None,
    }
}

/// llama.cpp's `permute(w, n_head)` (`w.reshape(n_head, 2, hd/2, n).swapaxes(1, 2)`) as a map from
/// a destination row to its source row, for heads of `hd` rows: within a head, destination row
/// `2i + j` is source row `j * hd/2 + i`.
fn permuted_source(dst: usize, hd: usize) -> usize {
    let (h, d) = (dst / hd, dst % hd);
    h * hd + (d % 2) * (hd / 2) + d / 2
}

fn token_str(v: &Value) -> Option<&str> {
    v.as_str().or_else(|| v["content"].as_str())
}

/// The `tokenizer.ggml.*` and `tokenizer.chat_template` metadata.
fn tokenizer_meta(dir: &Path, c: &HfConfig, config: &Value) -> Result<Vec<(String, OwnedValue)>> {
    let tj = dir.join("tokenizer.json");
    if !tj.exists() {
        return Err(bad(
            dir,
            "no tokenizer.json: a byte-level BPE tokenizer.json is needed to write tokenizer.ggml.* (SentencePiece tokenizer.model is not supported yet)",
        ));
    }
    let tok = read_json(&tj)?;
    let model = &tok["model"];
    if model["type"] != "BPE" {
        return Err(bad(
            &tj,
            format!(
                "tokenizer model type {} is not supported (BPE only)",
                model["type"]
            ),
        ));
    }
    let vocab = model["vocab"]
        .as_object()
        .ok_or_else(|| bad(&tj, "model.vocab is not an object"))?;
    let mut by_id: BTreeMap<usize, String> = BTreeMap::new();
    for (t, id) in vocab {
        let id = id
            .as_u64()
            .ok_or_else(|| bad(&tj, format!("vocab id of `{t}` is not an integer")))?;
        by_id.insert(id as usize, t.clone());
    }
    let mut added: HashMap<usize, bool> = HashMap::new();
    for a in tok["added_tokens"].as_array().into_iter().flatten() {
        let (Some(id), Some(content)) = (a["id"].as_u64(), a["content"].as_str()) else {
            return Err(bad(&tj, format!("malformed added token {a}")));
        };
        by_id.insert(id as usize, content.to_string());
        added.insert(id as usize, a["special"].as_bool().unwrap_or(false));
    }
    let n_vocab = c.vocab_size;
    if let Some((&max, t)) = by_id.last_key_value() {
        if max >= n_vocab {
            return Err(bad(
                &tj,
                format!("token `{t}` has id {max}, past config.json vocab_size {n_vocab}"),
            ));
        }
    }
    let s = |v: &str| OwnedValue::String(v.to_string());
    let mut tokens = Vec::with_capacity(n_vocab);
    let mut types = Vec::with_capacity(n_vocab);
    for i in 0..n_vocab {
        match by_id.get(&i) {
            Some(t) => {
                tokens.push(s(t));
                types.push(OwnedValue::I32(match added.get(&i) {
                    Some(true) => 3,  // CONTROL
                    Some(false) => 4, // USER_DEFINED
                    None => 1,        // NORMAL
                }));
            }
            None => {
                tokens.push(s(&format!("[PAD{i}]")));
                types.push(OwnedValue::I32(4));
            }
        }
    }
    let mut merges = Vec::new();
    for m in model["merges"].as_array().into_iter().flatten() {
        let m = match m {
            Value::String(x) => x.clone(),
            Value::Array(p) if p.len() == 2 && p.iter().all(Value::is_string) => {
                format!("{} {}", p[0].as_str().unwrap(), p[1].as_str().unwrap())
            }
            _ => return Err(bad(&tj, format!("malformed merge {m}"))),
        };
        merges.push(s(&m));
    }
    let pre_ok = {
        let p = &tok["pre_tokenizer"];
        let list = p["pretokenizers"].as_array();
        p["type"] == "Sequence"
            && list.is_some_and(|l| {
                l.len() == 2
                    && l[0]["type"] == "Digits"
                    && l[0]["individual_digits"] == true
                    && l[1]["type"] == "ByteLevel"
            })
    };
    let mut meta = vec![
        ("tokenizer.ggml.model".to_string(), s("gpt2")),
        (
            "tokenizer.ggml.pre".to_string(),
            s(if pre_ok { "smollm" } else { "gpt-2" }),
        ),
        (
            "tokenizer.ggml.tokens".to_string(),
            OwnedValue::Array(tokens),
        ),
        (
            "tokenizer.ggml.token_type".to_string(),
            OwnedValue::Array(types),
        ),
        (
            "tokenizer.ggml.merges".to_string(),
            OwnedValue::Array(merges),
        ),
    ];
    let tc_path = dir.join("tokenizer_config.json");
    let tc = if tc_path.exists() {
        read_json(&tc_path)?
    } else {
        Value::Null
    };
    let id_of = |t: &str| {
        by_id
            .iter()
            .find(|(_, v)| v.as_str() == t)
            .map(|(&i, _)| i as u32)
    };
    for (key, field, fallback) in [
        ("bos", "bos_token", "bos_token_id"),
        ("eos", "eos_token", "eos_token_id"),
        ("unknown", "unk_token", ""),
        ("padding", "pad_token", "pad_token_id"),
    ] {
        let id = match token_str(&tc[field]) {
            Some(t) => Some(id_of(t).ok_or_else(|| {
                bad(
                    &tc_path,
                    format!("{field} `{t}` is not a token of tokenizer.json"),
                )
            })?),
            None => config[fallback].as_u64().map(|i| i as u32),
        };
        if let Some(id) = id {
            meta.push((
                format!("tokenizer.ggml.{key}_token_id"),
                OwnedValue::U32(id),
            ));
        }
    }
    for key in ["add_bos_token", "add_eos_token"] {
        if let Some(b) = tc[key].as_bool() {
            meta.push((format!("tokenizer.ggml.{key}"), OwnedValue::Bool(b)));
        }
    }
    // transformers >= 4.51 saves the template as `chat_template.jinja` beside tokenizer_config.json
    // (which then has no `chat_template`); that file wins, as in llama.cpp's gguf-py.
    let jinja = dir.join("chat_template.jinja");
    let template = match &tc["chat_template"] {
        _ if jinja.exists() => Some(std::fs::read_to_string(&jinja).map_err(|e| io(&jinja, e))?),
        Value::String(t) => Some(t.clone()),
        // A list of named templates: the one named "default", else the first.
        Value::Array(l) => l
            .iter()
            .find(|t| t["name"] == "default")
            .or(l.first())
            .and_then(|t| t["template"].as_str())
            .map(str::to_string),
        _ => None,
    };
    if let Some(t) = template {
        meta.push(("tokenizer.chat_template".into(), OwnedValue::String(t)));
    }
    Ok(meta)
}

/// Converts the Hugging Face model directory `dir` to `output` (written atomically).
pub fn convert_hf(
    dir: &Path,
    output: &Path,
    opts: &Options,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Summary> {
    let cfg_path = dir.join("config.json");
    if !cfg_path.exists() {
        return Err(bad(
            dir,
            "no config.json: not a Hugging Face model directory (expected config.json and *.safetensors)",
        ));
    }
    let config = read_json(&cfg_path)?;
    let c = HfConfig::from_json(&cfg_path, &config)?;
    let tok_meta = tokenizer_meta(dir, &c, &config)?;

    // Map every shard (read-only; `GgufFile::open` maps any file, only its `parse` is GGUF's) and
    // index its tensors by name. `SafeTensors::deserialize` reads the header and checks every
    // tensor's offsets against the mapping; no tensor byte is touched until it is converted.
    let files = shard_files(dir)?;
    let mut maps = Vec::with_capacity(files.len());
    for f in &files {
        maps.push(GgufFile::open(f)?);
    }
    let mut parsed = Vec::with_capacity(files.len());
    for (f, m) in files.iter().zip(&maps) {
        parsed.push(
            SafeTensors::deserialize(m.bytes())
                .map_err(|e| bad(f, format!("malformed safetensors file: {e}")))?,
        );
    }
    let mut where_: HashMap<String, usize> = HashMap::new();
    for (i, st) in parsed.iter().enumerate() {
        for name in st.names() {
            if let Some(j) = where_.insert(name.to_string(), i) {
                return Err(bad(
                    dir,
                    format!(
                        "tensor `{name}` is in both {} and {}",
                        files[j].display(),
                        files[i].display()
                    ),
                ));
            }
        }
    }
    let want = expected(&c);
    let want_names: BTreeSet<&str> = want.iter().map(|e| e.hf.as_str()).collect();
    let missing: Vec<&str> = want
        .iter()
        .map(|e| e.hf.as_str())
        .filter(|n| !where_.contains_key(*n))
        .collect();
    if !missing.is_empty() {
        return Err(bad(dir, format!("missing tensors: {}", missing.join(", "))));
    }
    let mut extra: Vec<&str> = where_
        .keys()
        .map(String::as_str)
        .filter(|n| !want_names.contains(n) && !ignored(n, &c))
        .collect();
    extra.sort_unstable();
    if !extra.is_empty() {
        return Err(bad(
            dir,
            format!(
                "unexpected tensors (not part of a LlamaForCausalLM): {}",
                extra.join(", ")
            ),
        ));
    }

    // Plan every tensor before creating the output.
    let gguf_dims: Vec<(String, Vec<u64>)> = want
        .iter()
        .map(|e| {
            (
                e.gguf.clone(),
                e.shape.iter().rev().map(|&d| d as u64).collect(),
            )
        })
        .collect();
    let policy = opts
        .policy
        .for_model(gguf_dims.iter().map(|(n, d)| (n.as_str(), d.as_slice())));
    let mut plans = Vec::with_capacity(want.len());
    let mut views = Vec::with_capacity(want.len());
    for e in &want {
        let i = where_[&e.hf];
        let view = parsed[i].tensor(&e.hf).expect("indexed above");
        if view.shape() != e.shape.as_slice() {
            return Err(Error::Tensor {
                name: e.hf.clone(),
                what: format!(
                    "shape {:?} in {}, expected {:?} from config.json",
                    view.shape(),
                    files[i].display(),
                    e.shape
                ),
            });
        }
        let from = dtype_type(view.dtype()).ok_or_else(|| Error::Tensor {
            name: e.hf.clone(),
            what: format!(
                "dtype {:?} is not supported (F32, F16 and BF16 are)",
                view.dtype()
            ),
        })?;
        let dims: Vec<u64> = e.shape.iter().rev().map(|&d| d as u64).collect();
        let (to, reason) = policy.choose(&e.gguf, &dims, QuantType::F32)?;
        let decl = TensorDecl {
            name: e.gguf.clone(),
            dims: dims.clone(),
            ty: to,
        };
        let bytes_out = decl.n_bytes().ok_or_else(|| Error::Tensor {
            name: e.gguf.clone(),
            what: format!("size of {dims:?} as {to} overflows"),
        })?;
        plans.push(TensorPlan {
            name: e.gguf.clone(),
            dims,
            from,
            to,
            reason,
            bytes_in: view.data().len() as u64,
            bytes_out,
        });
        views.push(view);
    }

    let file_type = opts
        .policy
        .file_type()
        .ok_or_else(|| Error::UnsupportedType {
            name: opts.policy.target.name().into(),
            what: "not a file type".into(),
        })?;
    let name = dir
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "model".into());
    let u = |n: usize| OwnedValue::U32(n as u32);
    let mut meta: Vec<(String, OwnedValue)> = vec![
        (
            "general.architecture".into(),
            OwnedValue::String("llama".into()),
        ),
        ("general.name".into(), OwnedValue::String(name)),
        ("llama.vocab_size".into(), u(c.vocab_size)),
        ("llama.context_length".into(), u(c.max_position_embeddings)),
        ("llama.embedding_length".into(), u(c.hidden_size)),
        ("llama.block_count".into(), u(c.n_layer)),
        ("llama.feed_forward_length".into(), u(c.intermediate_size)),
        ("llama.rope.dimension_count".into(), u(c.head_dim)),
        ("llama.attention.head_count".into(), u(c.n_head)),
        ("llama.attention.head_count_kv".into(), u(c.n_head_kv)),
        (
            "llama.rope.freq_base".into(),
            OwnedValue::F32(c.rope_theta as f32),
        ),
        (
            "llama.attention.layer_norm_rms_epsilon".into(),
            OwnedValue::F32(c.rms_norm_eps as f32),
        ),
    ];
    if c.head_dim * c.n_head != c.hidden_size {
        meta.push(("llama.attention.key_length".into(), u(c.head_dim)));
        meta.push(("llama.attention.value_length".into(), u(c.head_dim)));
    }
    meta.push((GENERAL_FILE_TYPE.into(), OwnedValue::U32(file_type)));
    meta.push((
        GENERAL_QUANTIZATION_VERSION.into(),
        OwnedValue::U32(policy::QUANTIZATION_VERSION),
    ));
    meta.extend(tok_meta);

    let decls: Vec<TensorDecl> = plans.iter().map(TensorPlan::decl).collect();
    let mut out = AtomicFile::create(output)?;
    let tmp = out.temp_path().to_path_buf();
    let mut w = GgufStreamWriter::new(&mut out, &meta, &decls).map_err(|e| io(&tmp, e))?;
    let mut x: Vec<f32> = Vec::new(); // (batch rows, n)
    let mut buf = Vec::new();
    for (i, ((plan, view), e)) in plans.iter().zip(&views).zip(&want).enumerate() {
        progress(Progress {
            index: i,
            count: plans.len(),
            tensor: plan,
        });
        let n = plan.dims[0] as usize;
        let rows = plan.dims[1..].iter().product::<u64>() as usize;
        let (sb, db) = (
            plan.from.row_bytes(n).expect("F32, F16 and BF16 rows"),
            plan.to.row_bytes(n).expect("validated by the plan"),
        );
        let data = view.data(); // (rows, n) in `plan.from`, in the mapping
        let map = &maps[where_[&e.hf]];
        // Batches of whole heads when the rows are permuted (the permutation stays inside a head,
        // so a batch's source rows are the same range as its destination rows).
        let unit = match e.permute {
            Permute::Heads(h) => rows / h,
            Permute::None => 1,
        };
        let batch = (SCRATCH_ELEMS * opts.threads.max(1) / n)
            .max(1)
            .div_ceil(unit)
            * unit;
        let to_f32 = plan.from.info().to_f32;
        for r0 in (0..rows).step_by(batch) {
            let r1 = (r0 + batch).min(rows);
            x.resize((r1 - r0) * n, 0.0);
            for (r, xs) in (r0..r1).zip(x.chunks_exact_mut(n)) {
                let s = match e.permute {
                    Permute::Heads(_) => permuted_source(r, unit),
                    Permute::None => r,
                };
                to_f32(&data[s * sb..(s + 1) * sb], xs);
            }
            buf.resize((r1 - r0) * db, 0);
            quantize_rows(&plan.name, plan.to, n, r0, &x, &mut buf, opts.threads)?;
            w.write(&buf).map_err(|e| io(&tmp, e))?;
            // Drop this batch's source pages from the resident set (they are not read again).
            map.release(&data[r0 * sb..r1 * sb]);
        }
    }
    w.finish().map_err(|e| io(&tmp, e))?;
    out.commit()?;
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).map_err(|e| io(p, e));
    let mut file_bytes_in = 0;
    for f in &files {
        file_bytes_in += size(f)?;
    }
    Ok(Summary {
        tensors: plans,
        file_bytes_in,
        file_bytes_out: size(output)?,
        file_type,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rope_theta_from_either_config_layout() {
        let base = serde_json::json!({
            "architectures": ["LlamaForCausalLM"], "hidden_size": 32, "num_hidden_layers": 2,
            "num_attention_heads": 4, "intermediate_size": 64, "rms_norm_eps": 1e-5,
            "max_position_embeddings": 256, "vocab_size": 260,
        });
        let p = Path::new("config.json");
        let with = |k: &str, v: Value| {
            let mut c = base.clone();
            c[k] = v;
            HfConfig::from_json(p, &c)
        };
        assert_eq!(HfConfig::from_json(p, &base).unwrap().rope_theta, 10000.0);
        assert_eq!(
            with("rope_theta", serde_json::json!(500000.0))
                .unwrap()
                .rope_theta,
            500000.0
        );
        let v5 = serde_json::json!({"rope_type": "default", "rope_theta": 100000.0});
        assert_eq!(with("rope_parameters", v5).unwrap().rope_theta, 100000.0);
        let yarn = serde_json::json!({"rope_type": "yarn", "rope_theta": 1e4, "factor": 4.0});
        let e = with("rope_parameters", yarn).unwrap_err().to_string();
        assert!(e.contains("only rope_type `default`"), "{e}");
        let mut both = base.clone();
        both["rope_theta"] = serde_json::json!(1e4);
        both["rope_parameters"] = serde_json::json!({"rope_theta": 2e4});
        assert!(HfConfig::from_json(p, &both).is_err());
    }

    #[test]
    fn permute_matches_llama_cpp() {
        // 1 head of 4 rows: reshape(1, 2, 2, n).swapaxes(1, 2) -> rows [0, 2, 1, 3].
        let rows: Vec<usize> = (0..4).map(|r| permuted_source(r, 4)).collect();
        assert_eq!(rows, vec![0, 2, 1, 3]);
        // 2 heads of 4.
        let rows: Vec<usize> = (0..8).map(|r| permuted_source(r, 4)).collect();
        assert_eq!(rows, vec![0, 2, 1, 3, 4, 6, 5, 7]);
        // 1 head of 6: [0, 3, 1, 4, 2, 5].
        let rows: Vec<usize> = (0..6).map(|r| permuted_source(r, 6)).collect();
        assert_eq!(rows, vec![0, 3, 1, 4, 2, 5]);
    }
}
