//! Llama-architecture hyperparameters, read from `{arch}.*` GGUF metadata and validated so that no
//! later arithmetic can divide by zero, overflow or index out of bounds.

use crate::gguf::keys::{self, arch_key};
use crate::gguf::Gguf;
use crate::prelude::*;
use crate::{Error, Result};

/// Architectures whose tensors and graph are the llama one (same names, same forward pass).
pub const LLAMA_LIKE: &[&str] = &["llama"];

/// Upper bounds that keep buffer sizes sane; a file claiming more is rejected at load.
const MAX_LAYERS: u64 = 1024;
const MAX_DIM: u64 = 1 << 20;
const MAX_HEADS: u64 = 4096;

/// Hyperparameters of a llama-style decoder.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub arch: String,
    /// C: model width.
    pub n_embd: usize,
    /// L: number of layers.
    pub n_layer: usize,
    /// H: query heads.
    pub n_head: usize,
    /// Hkv: key/value heads (GQA when fewer than `n_head`).
    pub n_head_kv: usize,
    /// D: head dimension of queries and keys.
    pub head_dim: usize,
    /// F: feed-forward width.
    pub n_ff: usize,
    /// V: vocabulary size (rows of the embedding).
    pub n_vocab: usize,
    /// Context length the model was trained for.
    pub n_ctx_train: usize,
    pub rms_eps: f32,
    pub rope_base: f32,
    /// Dimensions rotated by RoPE in each head (even, at most `head_dim`).
    pub n_rot: usize,
    /// Position scale for linear RoPE scaling (1 = none).
    pub rope_freq_scale: f32,
}

impl Config {
    /// Reads and validates the hyperparameters of `gguf`.
    pub fn from_gguf(gguf: &Gguf<'_>) -> Result<Config> {
        let arch = gguf
            .get_str(keys::GENERAL_ARCHITECTURE)?
            .ok_or_else(|| Error::MissingKey {
                key: keys::GENERAL_ARCHITECTURE.into(),
            })?
            .to_string();
        if !LLAMA_LIKE.contains(&arch.as_str()) {
            return Err(Error::Model {
                what: format!(
                    "unknown architecture `{arch}` (supported: {})",
                    LLAMA_LIKE.join(", ")
                ),
            });
        }
        let req = |suffix: &str, max: u64| -> Result<usize> {
            let key = arch_key(&arch, suffix);
            let v = gguf
                .get_u64(&key)?
                .ok_or_else(|| Error::MissingKey { key: key.clone() })?;
            check_range(&key, v, 1, max)
        };
        let opt = |suffix: &str, max: u64| -> Result<Option<usize>> {
            let key = arch_key(&arch, suffix);
            gguf.get_u64(&key)?
                .map(|v| check_range(&key, v, 1, max))
                .transpose()
        };

        let n_embd = req(keys::EMBEDDING_LENGTH, MAX_DIM)?;
        let n_layer = req(keys::BLOCK_COUNT, MAX_LAYERS)?;
        let n_head = req(keys::HEAD_COUNT, MAX_HEADS)?;
        let n_head_kv = opt(keys::HEAD_COUNT_KV, MAX_HEADS)?.unwrap_or(n_head);
        let n_ff = req(keys::FEED_FORWARD_LENGTH, MAX_DIM)?;
        let n_ctx_train = req(keys::CONTEXT_LENGTH, 1 << 24)?;
        let head_dim = match opt(keys::KEY_LENGTH, MAX_DIM)? {
            Some(d) => d,
            None => {
                if n_embd % n_head != 0 {
                    return Err(Error::Model {
                        what: format!("{n_head} attention heads do not divide the width {n_embd}"),
                    });
                }
                n_embd / n_head
            }
        };
        if let Some(dv) = opt(keys::VALUE_LENGTH, MAX_DIM)? {
            if dv != head_dim {
                return Err(Error::Model {
                    what: format!("value head size {dv} differs from key head size {head_dim} (not supported)"),
                });
            }
        }
        if n_head % n_head_kv != 0 {
            return Err(Error::Model {
                what: format!("{n_head_kv} key/value heads do not divide {n_head} query heads"),
            });
        }
        let n_rot = opt(keys::ROPE_DIMENSION_COUNT, MAX_DIM)?.unwrap_or(head_dim);
        if n_rot > head_dim || n_rot % 2 != 0 {
            return Err(Error::Model {
                what: format!("rope dimension count {n_rot} must be even and at most the head size {head_dim}"),
            });
        }
        let eps_key = arch_key(&arch, keys::RMS_EPS);
        let rms_eps = gguf.get_f32(&eps_key)?.ok_or_else(|| Error::MissingKey {
            key: eps_key.clone(),
        })?;
        if !(rms_eps.is_finite() && rms_eps > 0.0 && rms_eps < 1.0) {
            return Err(Error::BadMetadata {
                key: eps_key,
                what: format!("epsilon {rms_eps} is not in (0, 1)"),
            });
        }
        let base_key = arch_key(&arch, keys::ROPE_FREQ_BASE);
        let rope_base = gguf.get_f32(&base_key)?.unwrap_or(10000.0);
        if !(rope_base.is_finite() && rope_base > 1.0) {
            return Err(Error::BadMetadata {
                key: base_key,
                what: format!("rope base {rope_base} must exceed 1"),
            });
        }
        let rope_freq_scale = rope_scale(gguf, &arch)?;

        let n_vocab = match gguf.get_u64(&arch_key(&arch, keys::VOCAB_SIZE))? {
            Some(v) => check_range(&arch_key(&arch, keys::VOCAB_SIZE), v, 1, 1 << 24)?,
            None => match gguf.get_array(keys::TOKENIZER_TOKENS)? {
                Some(a) => a.len,
                None => {
                    let t = gguf
                        .tensor("token_embd.weight")
                        .ok_or_else(|| Error::Tensor {
                            name: "token_embd.weight".into(),
                            what: "missing".into(),
                        })?;
                    t.dims[1] as usize
                }
            },
        };
        // Scratch sizes multiply these; bound the products so buffer planning cannot overflow.
        let q_width = n_head
            .checked_mul(head_dim)
            .filter(|&w| w as u64 <= MAX_DIM);
        if q_width.is_none() {
            return Err(Error::Model {
                what: format!("{n_head} heads of size {head_dim} are too wide"),
            });
        }
        Ok(Config {
            arch,
            n_embd,
            n_layer,
            n_head,
            n_head_kv,
            head_dim,
            n_ff,
            n_vocab,
            n_ctx_train,
            rms_eps,
            rope_base,
            n_rot,
            rope_freq_scale,
        })
    }

    /// Width of all query heads together (`H * D`).
    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }

    /// Width of all key (or value) heads together (`Hkv * D`).
    pub fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }
}

fn check_range(key: &str, v: u64, min: u64, max: u64) -> Result<usize> {
    if v < min || v > max {
        return Err(Error::BadMetadata {
            key: key.into(),
            what: format!("value {v} is outside {min}..={max}"),
        });
    }
    Ok(v as usize)
}

/// The position scale of linear RoPE scaling; other scaling types are refused rather than ignored.
fn rope_scale(gguf: &Gguf<'_>, arch: &str) -> Result<f32> {
    let ty_key = arch_key(arch, keys::ROPE_SCALING_TYPE);
    let factor_key = arch_key(arch, keys::ROPE_SCALING_FACTOR);
    let factor = match gguf.get_f32(&factor_key)? {
        Some(f) => Some(f),
        None => gguf.get_f32(&arch_key(arch, keys::ROPE_SCALE_LINEAR))?,
    };
    match gguf.get_str(&ty_key)? {
        Some("none") => Ok(1.0),
        None if factor.is_none_or(|f| f == 0.0 || f == 1.0) => Ok(1.0),
        None | Some("linear") => {
            let f = factor.unwrap_or(1.0);
            if !(f.is_finite() && f >= 1.0) {
                return Err(Error::BadMetadata {
                    key: factor_key,
                    what: format!("scaling factor {f} must be >= 1"),
                });
            }
            Ok(1.0 / f)
        }
        Some(other) => Err(Error::BadMetadata {
            key: ty_key,
            what: format!("rope scaling `{other}` is not supported (supported: none, linear)"),
        }),
    }
}
