//! A loaded model: hyperparameters ([`Config`]), weight views ([`Weights`]), its tokenizer and chat
//! template, all borrowed from or built once from a parsed GGUF file. The model is read-only and can
//! be shared by many [`Session`]s, which own the mutable state.

mod config;
#[doc(hidden)]
pub mod ops;
mod session;
pub mod weights;

pub use config::{Config, LLAMA_LIKE};
pub use session::{kv_cache_bytes, session_bytes, Session, SessionParams, SESSION_ARENA_ALIGN};
pub use weights::{Layer, Matrix, Weights};

use crate::gguf::{keys, Gguf};
use crate::tokenizer::{Tokenizer, TokenizerConfig};
use crate::{Error, Result};

/// A llama-architecture model over the bytes of a GGUF file.
#[derive(Debug)]
pub struct Model<'a> {
    pub gguf: Gguf<'a>,
    pub config: Config,
    pub weights: Weights<'a>,
    pub tokenizer: Tokenizer,
    /// `tokenizer.chat_template`, when the file has one.
    pub chat_template: Option<&'a str>,
}

impl<'a> Model<'a> {
    /// Validates everything the forward pass and tokenizer will rely on: hyperparameters, every tensor's
    /// presence, type and shape, and the tokenizer's consistency with the embedding.
    pub fn from_gguf(gguf: Gguf<'a>) -> Result<Model<'a>> {
        let config = Config::from_gguf(&gguf)?;
        let weights = Weights::from_gguf(&gguf, &config)?;
        let tokenizer = Tokenizer::new(tokenizer_config(&gguf)?)?;
        if tokenizer.n_vocab() > config.n_vocab {
            return Err(Error::Model {
                what: format!(
                    "the tokenizer has {} tokens but the embedding only {} rows",
                    tokenizer.n_vocab(),
                    config.n_vocab
                ),
            });
        }
        let chat_template = gguf.get_str(keys::TOKENIZER_CHAT_TEMPLATE)?;
        Ok(Model {
            gguf,
            config,
            weights,
            tokenizer,
            chat_template,
        })
    }

    /// Bytes of all weight tensors (what a decode step reads, roughly).
    pub fn weight_bytes(&self) -> u64 {
        self.gguf.tensor_bytes()
    }
}

/// Collects the `tokenizer.ggml.*` metadata into a [`TokenizerConfig`].
pub fn tokenizer_config(gguf: &Gguf<'_>) -> Result<TokenizerConfig> {
    let model = gguf
        .get_str(keys::TOKENIZER_MODEL)?
        .ok_or_else(|| Error::MissingKey {
            key: keys::TOKENIZER_MODEL.into(),
        })?
        .to_string();
    let pre = gguf
        .get_str(keys::TOKENIZER_PRE)?
        .unwrap_or("default")
        .to_string();
    let tokens_arr = gguf
        .get_array(keys::TOKENIZER_TOKENS)?
        .ok_or_else(|| Error::MissingKey {
            key: keys::TOKENIZER_TOKENS.into(),
        })?;
    let tokens: Vec<String> = tokens_arr
        .strings()
        .ok_or_else(|| Error::BadMetadata {
            key: keys::TOKENIZER_TOKENS.into(),
            what: "not an array of strings".into(),
        })?
        .map(str::to_string)
        .collect();
    let token_types = match gguf.get_array(keys::TOKENIZER_TOKEN_TYPE)? {
        None => Vec::new(),
        Some(a) => {
            let v: Option<Vec<i32>> = a
                .iter()
                .map(|x| x.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i32))
                .collect();
            let v = v.ok_or_else(|| Error::BadMetadata {
                key: keys::TOKENIZER_TOKEN_TYPE.into(),
                what: "not an array of integers".into(),
            })?;
            if v.len() != tokens.len() {
                return Err(Error::BadMetadata {
                    key: keys::TOKENIZER_TOKEN_TYPE.into(),
                    what: format!("{} entries for {} tokens", v.len(), tokens.len()),
                });
            }
            v
        }
    };
    let scores = match gguf.get_array(keys::TOKENIZER_SCORES)? {
        None => Vec::new(),
        Some(a) => {
            let v: Option<Vec<f32>> = a.iter().map(|x| x.as_f64().map(|f| f as f32)).collect();
            v.ok_or_else(|| Error::BadMetadata {
                key: keys::TOKENIZER_SCORES.into(),
                what: "not an array of numbers".into(),
            })?
        }
    };
    let merges = match gguf.get_array(keys::TOKENIZER_MERGES)? {
        None if model == "gpt2" => {
            return Err(Error::MissingKey {
                key: keys::TOKENIZER_MERGES.into(),
            })
        }
        None => Vec::new(),
        Some(a) => a
            .strings()
            .ok_or_else(|| Error::BadMetadata {
                key: keys::TOKENIZER_MERGES.into(),
                what: "not an array of strings".into(),
            })?
            .map(str::to_string)
            .collect(),
    };
    let id = |key: &str| -> Result<Option<u32>> {
        match gguf.get_u64(key)? {
            None => Ok(None),
            Some(v) if (v as usize) < tokens.len() => Ok(Some(v as u32)),
            Some(v) => Err(Error::BadMetadata {
                key: key.into(),
                what: format!("token id {v} is outside the vocabulary of {}", tokens.len()),
            }),
        }
    };
    let add_bos = match gguf.get_bool(keys::TOKENIZER_ADD_BOS)? {
        Some(b) => b,
        None => TokenizerConfig::default_add_bos(&model, &pre),
    };
    Ok(TokenizerConfig {
        model,
        pre,
        bos: id(keys::TOKENIZER_BOS_ID)?,
        eos: id(keys::TOKENIZER_EOS_ID)?,
        eot: id(keys::TOKENIZER_EOT_ID)?,
        unk: id(keys::TOKENIZER_UNK_ID)?,
        pad: id(keys::TOKENIZER_PAD_ID)?,
        add_bos,
        add_eos: gguf.get_bool(keys::TOKENIZER_ADD_EOS)?.unwrap_or(false),
        tokens,
        token_types,
        merges,
        scores,
    })
}
