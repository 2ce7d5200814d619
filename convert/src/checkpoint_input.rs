//! ingot training checkpoints in, GGUF out. The format is defined in one place, `train/README.md`,
//! section "Checkpoint format" (versions 1 and 2); this reader needs nothing else and does not depend
//! on `ingot-train` (the trainer writes checkpoints, the converter reads them).
//!
//! Input: a checkpoint directory (it holds `checkpoint.json`) or a run directory (its `latest` file
//! names the checkpoint). Checked before anything is written: `format`, `version` (1 or 2),
//! `architecture` (`llama`), the model configuration (positive sizes, heads dividing the width and
//! each other, an even head size), the tokenizer, the size and SHA-256 of `model.safetensors` against
//! `checkpoint.json`'s record, and every tensor's presence, dtype (F32) and shape, with none left
//! over. `optimizer.safetensors` is not read (it is not needed to run the model).
//!
//! Tensors are already under GGUF names, `(out, in)` row-major, with RoPE on adjacent pairs: they are
//! written as they are (no permutation), in the type the [`crate::Policy`] chooses.
//!
//! Tokenizers, both written as `tokenizer.ggml.model = "gpt2"` (byte-level BPE), which the runtime and
//! llama.cpp both implement:
//!
//! - **`char`** (one token per Unicode scalar value): each token's text is its UTF-8 bytes in GPT-2's
//!   byte-level alphabet (`' '` → `Ġ`, `é` → `Ã©`). Byte-level BPE starts every word as its bytes, so a
//!   one-byte character is already its token; a character of `k > 1` bytes is rebuilt by `k - 1`
//!   merges `prefix next-byte` (the prefix always begins with a UTF-8 lead byte and the right side is
//!   a continuation byte, so no merge can join two characters, and the pre-tokenizer, which splits at
//!   character boundaries, cannot change the result). Every character of the vocabulary therefore
//!   encodes to exactly its id, as the trainer's tokenizer does. A vocabulary with no multi-byte
//!   character gets one merge `ø ø` (bytes 0xF8 0xF8, which never occur in UTF-8) because GGUF
//!   needs a typed, here non-empty, merges array. There is no BOS or EOS token (llama.cpp then
//!   defaults EOS to id 11 for `gpt2` vocabularies; the runtime has none).
//! - **`bpe`** (format version 2): tokens, token types, merges and pre-tokenizer as trained
//!   (`train/src/bpe.rs`, pre-tokenizer `gpt-2`); BOS = EOS = `<|endoftext|>`; no BOS is added.
//!
//! When the vocabulary holds the control tokens `<|im_start|>` and `<|im_end|>`, a ChatML
//! `tokenizer.chat_template` is written ([`CHATML_TEMPLATE`]).

use crate::error::io;
use crate::gguf_input::{Options, Progress, Summary, TensorPlan};
use crate::output::AtomicFile;
use crate::policy;
use crate::quantize::write_converted;
use crate::{Error, Result};
use ingot_kernels::QuantType;
use ingot_runtime::gguf::keys::{GENERAL_FILE_TYPE, GENERAL_QUANTIZATION_VERSION};
use ingot_runtime::gguf::writer::OwnedValue;
use ingot_runtime::gguf::{GgufFile, GgufStreamWriter, TensorDecl};
use ingot_runtime::tokenizer::byte_to_char;
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// `checkpoint.json`'s `format`.
pub const FORMAT: &str = "ingot-checkpoint";
/// The checkpoint format versions this reader understands.
pub const VERSIONS: [u64; 2] = [1, 2];
pub const META_FILE: &str = "checkpoint.json";
pub const MODEL_FILE: &str = "model.safetensors";
pub const LATEST_FILE: &str = "latest";

/// The ChatML template written for vocabularies with `<|im_start|>` / `<|im_end|>` (the template
/// SmolLM2 and Qwen use without their default system prompt; llama.cpp recognises it as `chatml`).
pub const CHATML_TEMPLATE: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/// The model configuration of `checkpoint.json` (`model`).
#[derive(Clone, Debug, PartialEq)]
pub struct CheckpointConfig {
    pub vocab_size: usize,
    pub dim: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub ffn_dim: usize,
    pub max_seq_len: usize,
    pub rope_base: f64,
    pub norm_eps: f64,
    pub tied_embeddings: bool,
}

/// A tokenizer as GGUF `tokenizer.ggml.*` values.
#[derive(Clone, Debug, PartialEq)]
pub struct GgufTokenizer {
    pub pre: String,
    pub tokens: Vec<String>,
    pub token_types: Vec<i32>,
    pub merges: Vec<String>,
    /// BOS = EOS id, if the vocabulary has one.
    pub eos: Option<u32>,
    /// Whether `<|im_start|>` and `<|im_end|>` are control tokens (a ChatML template is written).
    pub chatml: bool,
}

fn bad(path: &Path, what: impl Into<String>) -> Error {
    Error::UnsupportedInput {
        path: path.display().to_string(),
        what: what.into(),
    }
}

/// The checkpoint directory `path` designates: itself when it holds `checkpoint.json`, else the one
/// its `latest` file names (a run directory).
pub fn resolve(path: &Path) -> Result<PathBuf> {
    if path.join(META_FILE).is_file() {
        return Ok(path.to_path_buf());
    }
    let latest = path.join(LATEST_FILE);
    if !latest.is_file() {
        return Err(bad(
            path,
            format!("holds neither {META_FILE} (an ingot checkpoint) nor {LATEST_FILE} (an ingot run directory)"),
        ));
    }
    let name = std::fs::read_to_string(&latest).map_err(|e| io(&latest, e))?;
    let name = name.trim();
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(bad(
            &latest,
            format!("holds {name:?}, not a checkpoint name"),
        ));
    }
    let dir = path.join(name);
    if !dir.join(META_FILE).is_file() {
        return Err(bad(
            &latest,
            format!("names {name}, which holds no {META_FILE}"),
        ));
    }
    Ok(dir)
}

/// Whether `dir` looks like an ingot checkpoint or run directory (rather than a Hugging Face one).
pub fn is_checkpoint_dir(dir: &Path) -> bool {
    dir.join(META_FILE).is_file() || dir.join(LATEST_FILE).is_file()
}

impl CheckpointConfig {
    /// Parses and checks `checkpoint.json`'s `model` object.
    pub fn from_json(path: &Path, m: &Value) -> Result<CheckpointConfig> {
        let uint = |k: &str| -> Result<usize> {
            m[k].as_u64()
                .filter(|&n| n > 0 && n <= 1 << 40)
                .map(|n| n as usize)
                .ok_or_else(|| {
                    bad(
                        path,
                        format!("model.{k} is missing or not a positive integer: {}", m[k]),
                    )
                })
        };
        let float = |k: &str| -> Result<f64> {
            m[k].as_f64()
                .filter(|x| x.is_finite() && *x > 0.0)
                .ok_or_else(|| {
                    bad(
                        path,
                        format!("model.{k} is missing or not a positive number: {}", m[k]),
                    )
                })
        };
        let c = CheckpointConfig {
            vocab_size: uint("vocab_size")?,
            dim: uint("dim")?,
            n_layers: uint("n_layers")?,
            n_heads: uint("n_heads")?,
            n_kv_heads: uint("n_kv_heads")?,
            ffn_dim: uint("ffn_dim")?,
            max_seq_len: uint("max_seq_len")?,
            rope_base: float("rope_base")?,
            norm_eps: float("norm_eps")?,
            tied_embeddings: m["tied_embeddings"]
                .as_bool()
                .ok_or_else(|| bad(path, "model.tied_embeddings is missing or not a boolean"))?,
        };
        if c.vocab_size > u32::MAX as usize
            || !c.dim.is_multiple_of(c.n_heads)
            || !c.n_heads.is_multiple_of(c.n_kv_heads)
            || !(c.dim / c.n_heads).is_multiple_of(2)
        {
            return Err(bad(
                path,
                format!(
                    "model: vocab_size {}, dim {}, n_heads {}, n_kv_heads {}: heads must divide the \
                     width and each other, the head size be even, the vocabulary fit u32 ids",
                    c.vocab_size, c.dim, c.n_heads, c.n_kv_heads
                ),
            ));
        }
        Ok(c)
    }

    fn head_dim(&self) -> usize {
        self.dim / self.n_heads
    }

    /// Every tensor `model.safetensors` must hold: GGUF name and shape `(out, in)`.
    pub fn tensors(&self) -> Vec<(String, Vec<usize>)> {
        let (c, v, f) = (self.dim, self.vocab_size, self.ffn_dim);
        let (qd, kvd) = (
            self.n_heads * self.head_dim(),
            self.n_kv_heads * self.head_dim(),
        );
        let mut out = vec![("token_embd.weight".to_string(), vec![v, c])];
        for l in 0..self.n_layers {
            let g = |s: &str, shape: Vec<usize>| (format!("blk.{l}.{s}.weight"), shape);
            out.extend([
                g("attn_norm", vec![c]),
                g("attn_q", vec![qd, c]),
                g("attn_k", vec![kvd, c]),
                g("attn_v", vec![kvd, c]),
                g("attn_output", vec![c, qd]),
                g("ffn_norm", vec![c]),
                g("ffn_gate", vec![f, c]),
                g("ffn_up", vec![f, c]),
                g("ffn_down", vec![c, f]),
            ]);
        }
        out.push(("output_norm.weight".into(), vec![c]));
        if !self.tied_embeddings {
            out.push(("output.weight".into(), vec![v, c]));
        }
        out
    }
}

/// The GPT-2 byte-level text of `s`'s UTF-8 bytes.
fn byte_level(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| byte_to_char(b)).collect()
}

fn strings(path: &Path, v: &Value, what: &str) -> Result<Vec<String>> {
    v.as_array()
        .and_then(|a| a.iter().map(|t| t.as_str().map(str::to_string)).collect())
        .ok_or_else(|| {
            bad(
                path,
                format!("tokenizer.{what} is missing or not an array of strings"),
            )
        })
}

/// The GGUF form of a character-level tokenizer (module docs): `tokens[id]` one character each,
/// strictly increasing.
pub fn char_tokenizer(path: &Path, chars: &[String]) -> Result<GgufTokenizer> {
    let mut tokens = Vec::with_capacity(chars.len());
    let mut merges = Vec::new();
    let mut seen = BTreeSet::new();
    let mut last: Option<char> = None;
    for (id, t) in chars.iter().enumerate() {
        let mut it = t.chars();
        let (Some(ch), None) = (it.next(), it.next()) else {
            return Err(bad(
                path,
                format!("character token {id} is {t:?}, not one character"),
            ));
        };
        if last.is_some_and(|l| l >= ch) {
            return Err(bad(
                path,
                format!("character tokens are not strictly increasing at id {id} ({t:?})"),
            ));
        }
        last = Some(ch);
        let b = t.as_bytes();
        tokens.push(byte_level(b));
        for k in 1..b.len() {
            let m = format!("{} {}", byte_level(&b[..k]), byte_level(&b[k..k + 1]));
            if seen.insert(m.clone()) {
                merges.push(m);
            }
        }
    }
    if merges.is_empty() {
        // Two bytes that never occur in UTF-8: a merge that cannot fire (see the module docs).
        merges.push(format!("{0} {0}", byte_to_char(0xF8)));
    }
    Ok(GgufTokenizer {
        pre: "gpt-2".into(),
        token_types: vec![1; tokens.len()],
        tokens,
        merges,
        eos: None,
        chatml: false,
    })
}

/// Parses `checkpoint.json`'s `tokenizer` object.
pub fn tokenizer(path: &Path, version: u64, t: &Value) -> Result<GgufTokenizer> {
    match t["type"].as_str() {
        Some("char") => char_tokenizer(path, &strings(path, &t["tokens"], "tokens")?),
        Some("bpe") if version >= 2 => {
            let tokens = strings(path, &t["tokens"], "tokens")?;
            let merges = strings(path, &t["merges"], "merges")?;
            let pre = t["pre"]
                .as_str()
                .ok_or_else(|| bad(path, "tokenizer.pre is missing or not a string"))?
                .to_string();
            let token_types: Vec<i32> = t["token_types"]
                .as_array()
                .and_then(|a| {
                    a.iter()
                        .map(|x| x.as_i64().filter(|v| (1..=6).contains(v)).map(|v| v as i32))
                        .collect()
                })
                .ok_or_else(|| {
                    bad(
                        path,
                        "tokenizer.token_types is missing or not an array of integers 1..=6",
                    )
                })?;
            if token_types.len() != tokens.len() {
                return Err(bad(
                    path,
                    format!(
                        "tokenizer has {} token types for {} tokens",
                        token_types.len(),
                        tokens.len()
                    ),
                ));
            }
            let eos = match &t["eos"] {
                Value::Null => None,
                v => Some(
                    v.as_u64()
                        .filter(|&i| (i as usize) < tokens.len())
                        .ok_or_else(|| bad(path, format!("tokenizer.eos {v} is not a token id")))?
                        as u32,
                ),
            };
            let control = |s: &str| {
                tokens
                    .iter()
                    .zip(&token_types)
                    .any(|(t, &ty)| t == s && ty == 3)
            };
            let chatml = control("<|im_start|>") && control("<|im_end|>");
            Ok(GgufTokenizer {
                pre,
                tokens,
                token_types,
                merges,
                eos,
                chatml,
            })
        }
        other => Err(bad(
            path,
            format!(
                "tokenizer type {} is not supported in format version {version} (\"char\"; \"bpe\" from version 2)",
                other.map_or("missing".to_string(), |s| format!("{s:?}"))
            ),
        )),
    }
}

impl GgufTokenizer {
    /// The `tokenizer.ggml.*` (and `tokenizer.chat_template`) metadata.
    pub fn metadata(&self) -> Vec<(String, OwnedValue)> {
        let s = |v: &str| OwnedValue::String(v.to_string());
        let strs = |v: &[String]| OwnedValue::Array(v.iter().map(|x| s(x)).collect());
        let mut meta = vec![
            ("tokenizer.ggml.model".to_string(), s("gpt2")),
            ("tokenizer.ggml.pre".to_string(), s(&self.pre)),
            ("tokenizer.ggml.tokens".to_string(), strs(&self.tokens)),
            (
                "tokenizer.ggml.token_type".to_string(),
                OwnedValue::Array(
                    self.token_types
                        .iter()
                        .map(|&t| OwnedValue::I32(t))
                        .collect(),
                ),
            ),
            ("tokenizer.ggml.merges".to_string(), strs(&self.merges)),
        ];
        if let Some(eos) = self.eos {
            meta.push(("tokenizer.ggml.bos_token_id".into(), OwnedValue::U32(eos)));
            meta.push(("tokenizer.ggml.eos_token_id".into(), OwnedValue::U32(eos)));
        }
        meta.push((
            "tokenizer.ggml.add_bos_token".into(),
            OwnedValue::Bool(false),
        ));
        meta.push((
            "tokenizer.ggml.add_eos_token".into(),
            OwnedValue::Bool(false),
        ));
        if self.chatml {
            meta.push(("tokenizer.chat_template".into(), s(CHATML_TEMPLATE)));
        }
        meta
    }
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| io(path, e))?;
    serde_json::from_str(&text).map_err(|e| {
        bad(
            path,
            format!("malformed JSON ({e}): truncated or corrupted?"),
        )
    })
}

/// Converts the ingot checkpoint (or run directory) `input` to `output` (written atomically).
pub fn convert_checkpoint(
    input: &Path,
    output: &Path,
    opts: &Options,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Summary> {
    let dir = resolve(input)?;
    let meta_path = dir.join(META_FILE);
    let meta = read_json(&meta_path)?;
    if meta["format"] != FORMAT {
        return Err(bad(
            &meta_path,
            format!(
                "not an ingot checkpoint (\"format\" is {}, not \"{FORMAT}\")",
                meta["format"]
            ),
        ));
    }
    let version = meta["version"].as_u64().filter(|v| VERSIONS.contains(v)).ok_or_else(|| {
        bad(
            &meta_path,
            format!(
                "checkpoint format version {} is not supported (this converter reads versions {VERSIONS:?})",
                meta["version"]
            ),
        )
    })?;
    if meta["architecture"] != "llama" {
        return Err(bad(
            &meta_path,
            format!(
                "architecture {} is not supported (only \"llama\")",
                meta["architecture"]
            ),
        ));
    }
    let c = CheckpointConfig::from_json(&meta_path, &meta["model"])?;
    let tok = tokenizer(&meta_path, version, &meta["tokenizer"])?;
    if tok.tokens.len() != c.vocab_size {
        return Err(bad(
            &meta_path,
            format!(
                "the tokenizer has {} tokens but model.vocab_size is {}",
                tok.tokens.len(),
                c.vocab_size
            ),
        ));
    }

    // model.safetensors: size and hash against the record, then every tensor.
    let model_path = dir.join(MODEL_FILE);
    let record = &meta["files"][MODEL_FILE];
    let (Some(want_bytes), Some(want_sha)) = (record["bytes"].as_u64(), record["sha256"].as_str())
    else {
        return Err(bad(
            &meta_path,
            format!("no size and sha256 record of {MODEL_FILE} under \"files\""),
        ));
    };
    // Mapped, hashed chunk by chunk and then converted batch by batch, each part's pages released
    // once read, so memory does not grow with the checkpoint (see `crate::hf_input`).
    let file = GgufFile::open(&model_path)?;
    let bytes = file.bytes();
    if bytes.len() as u64 != want_bytes {
        return Err(bad(
            &model_path,
            format!(
                "{} bytes but {META_FILE} says {want_bytes}: truncated or replaced",
                bytes.len()
            ),
        ));
    }
    let mut hasher = Sha256::new();
    for part in bytes.chunks(16 << 20) {
        hasher.update(part);
        file.release(part);
    }
    let sha: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if sha != want_sha {
        return Err(bad(
            &model_path,
            format!("corrupted: its SHA-256 is {sha}, {META_FILE} says {want_sha}"),
        ));
    }
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| bad(&model_path, format!("malformed safetensors file: {e}")))?;
    let want = c.tensors();
    let names: BTreeSet<&str> = want.iter().map(|(n, _)| n.as_str()).collect();
    let mut extra: Vec<String> = st
        .names()
        .into_iter()
        .filter(|n| !names.contains(*n))
        .map(str::to_string)
        .collect();
    extra.sort_unstable();
    if !extra.is_empty() {
        return Err(bad(
            &model_path,
            format!(
                "unexpected tensors for this configuration (tied_embeddings = {}): {}",
                c.tied_embeddings,
                extra.join(", ")
            ),
        ));
    }
    let mut plans = Vec::with_capacity(want.len());
    let mut views = Vec::with_capacity(want.len());
    for (name, shape) in &want {
        let view = st.tensor(name).map_err(|_| Error::Tensor {
            name: name.clone(),
            what: format!(
                "missing from {} (shape {shape:?} by the configuration)",
                model_path.display()
            ),
        })?;
        if view.dtype() != Dtype::F32 || view.shape() != shape.as_slice() {
            return Err(Error::Tensor {
                name: name.clone(),
                what: format!(
                    "{:?} {:?} in {}, expected F32 {shape:?} from {META_FILE}",
                    view.dtype(),
                    view.shape(),
                    model_path.display()
                ),
            });
        }
        let dims: Vec<u64> = shape.iter().rev().map(|&d| d as u64).collect();
        let (to, reason) = opts.policy.choose(name, &dims, QuantType::F32)?;
        let decl = TensorDecl {
            name: name.clone(),
            dims: dims.clone(),
            ty: to,
        };
        let bytes_out = decl.n_bytes().ok_or_else(|| Error::Tensor {
            name: name.clone(),
            what: format!("size of {dims:?} as {to} overflows"),
        })?;
        plans.push(TensorPlan {
            name: name.clone(),
            dims,
            from: QuantType::F32,
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
    let run = input
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "ingot".into());
    let step = meta["step"].as_u64().unwrap_or(0);
    let u = |n: usize| OwnedValue::U32(n as u32);
    let s = |v: &str| OwnedValue::String(v.to_string());
    let mut gguf_meta: Vec<(String, OwnedValue)> = vec![
        ("general.architecture".into(), s("llama")),
        ("general.name".into(), s(&run)),
        (
            "general.description".into(),
            s(&format!("ingot training checkpoint, step {step}")),
        ),
        ("llama.vocab_size".into(), u(c.vocab_size)),
        ("llama.context_length".into(), u(c.max_seq_len)),
        ("llama.embedding_length".into(), u(c.dim)),
        ("llama.block_count".into(), u(c.n_layers)),
        ("llama.feed_forward_length".into(), u(c.ffn_dim)),
        ("llama.rope.dimension_count".into(), u(c.head_dim())),
        ("llama.attention.head_count".into(), u(c.n_heads)),
        ("llama.attention.head_count_kv".into(), u(c.n_kv_heads)),
        (
            "llama.rope.freq_base".into(),
            OwnedValue::F32(c.rope_base as f32),
        ),
        (
            "llama.attention.layer_norm_rms_epsilon".into(),
            OwnedValue::F32(c.norm_eps as f32),
        ),
        (GENERAL_FILE_TYPE.into(), OwnedValue::U32(file_type)),
        (
            GENERAL_QUANTIZATION_VERSION.into(),
            OwnedValue::U32(policy::QUANTIZATION_VERSION),
        ),
    ];
    gguf_meta.extend(tok.metadata());

    let decls: Vec<TensorDecl> = plans.iter().map(TensorPlan::decl).collect();
    let mut out = AtomicFile::create(output)?;
    let tmp = out.temp_path().to_path_buf();
    let mut w = GgufStreamWriter::new(&mut out, &gguf_meta, &decls).map_err(|e| io(&tmp, e))?;
    let mut buf = Vec::new();
    for (i, (plan, view)) in plans.iter().zip(&views).enumerate() {
        progress(Progress {
            index: i,
            count: plans.len(),
            tensor: plan,
        });
        let n = plan.dims[0] as usize;
        write_converted(
            &mut w,
            plan,
            QuantType::F32,
            n,
            view.data(),
            opts.threads,
            &mut buf,
            &tmp,
            &|part| {
                file.release(part);
            },
        )?;
    }
    w.finish().map_err(|e| io(&tmp, e))?;
    out.commit()?;
    let file_bytes_out = std::fs::metadata(output)
        .map(|m| m.len())
        .map_err(|e| io(output, e))?;
    Ok(Summary {
        tensors: plans,
        file_bytes_in: bytes.len() as u64,
        file_bytes_out,
        file_type,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn char_tokens_and_merges() {
        let chars: Vec<String> = ["\n", " ", "a", "é", "—"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let t = char_tokenizer(Path::new("x"), &chars).unwrap();
        assert_eq!(t.tokens, ["Ċ", "Ġ", "a", "Ã©", "âĢĶ"]);
        // é = C3 A9 (one merge); — = E2 80 94 (two).
        assert_eq!(t.merges, ["Ã ©", "â Ģ", "âĢ Ķ"]);
        let ascii: Vec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        assert_eq!(
            char_tokenizer(Path::new("x"), &ascii).unwrap().merges,
            ["ø ø"]
        );
        assert!(char_tokenizer(Path::new("x"), &["b".into(), "a".into()]).is_err());
        assert!(char_tokenizer(Path::new("x"), &["ab".into()]).is_err());
    }
}
