//! Character-level data for tiny experiments: a tokenizer whose vocabulary is the sorted set of the
//! characters of a text, a deterministic train/validation split, and random `(B, T)` windows with
//! next-token targets, and [`TextTokenizer`], a run's tokenizer (characters or byte-level BPE from
//! `bpe.rs`). Reading files and caching token ids is `corpus.rs`.
//!
//! Split: the validation set is the last `val_fraction` of the concatenated token stream (nanoGPT's
//! `shakespeare_char` keeps the last 10%); windows never cross from one part into the other.

use crate::bpe::BpeTokenizer;
use crate::error::{Error, Result};
use crate::rng::Rng;

/// One token per distinct character, ids in the order of the sorted characters (nanoGPT's
/// `shakespeare_char`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CharTokenizer {
    /// `chars[id]` is token `id`'s character.
    pub chars: Vec<char>,
}

impl CharTokenizer {
    pub fn from_text(text: &str) -> Self {
        let mut chars: Vec<char> = text.chars().collect();
        chars.sort_unstable();
        chars.dedup();
        CharTokenizer { chars }
    }

    /// The tokenizer from its tokens in id order (each one character, strictly increasing), as a
    /// checkpoint stores them.
    pub fn from_tokens(tokens: &[String]) -> Result<Self> {
        let mut chars = Vec::with_capacity(tokens.len());
        for (id, t) in tokens.iter().enumerate() {
            let mut it = t.chars();
            let (Some(ch), None) = (it.next(), it.next()) else {
                return Err(Error::Data {
                    what: format!("character token {id} is {t:?}, not one character"),
                });
            };
            if chars.last().is_some_and(|&last| last >= ch) {
                return Err(Error::Data {
                    what: format!(
                        "character tokens are not strictly increasing at id {id} ({t:?})"
                    ),
                });
            }
            chars.push(ch);
        }
        Ok(CharTokenizer { chars })
    }

    /// The tokens in id order, one character each.
    pub fn tokens(&self) -> Vec<String> {
        self.chars.iter().map(|c| c.to_string()).collect()
    }

    /// A string that identifies this tokenizer (the token cache's key includes it).
    pub fn fingerprint(&self) -> String {
        format!("char {}", self.chars.iter().collect::<String>())
    }

    pub fn vocab_size(&self) -> usize {
        self.chars.len()
    }

    /// Token ids of `text`; a character outside the vocabulary is an error.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        text.chars()
            .map(|ch| match self.chars.binary_search(&ch) {
                Ok(id) => Ok(id as u32),
                Err(_) => Err(Error::Data {
                    what: format!("character {ch:?} is not in the vocabulary"),
                }),
            })
            .collect()
    }

    /// The text of `ids` (ids out of range become U+FFFD).
    pub fn decode(&self, ids: &[u32]) -> String {
        ids.iter()
            .map(|&id| self.chars.get(id as usize).copied().unwrap_or('\u{FFFD}'))
            .collect()
    }
}

/// The tokenizer of a run: character-level (tiny experiments, the default) or trained byte-level
/// BPE ([`crate::bpe`]).
#[derive(Debug, PartialEq)]
pub enum TextTokenizer {
    Char(CharTokenizer),
    /// Boxed: the runtime tokenizer inside is large.
    Bpe(Box<BpeTokenizer>),
}

impl From<BpeTokenizer> for TextTokenizer {
    fn from(t: BpeTokenizer) -> Self {
        TextTokenizer::Bpe(Box::new(t))
    }
}

impl From<CharTokenizer> for TextTokenizer {
    fn from(t: CharTokenizer) -> Self {
        TextTokenizer::Char(t)
    }
}

impl TextTokenizer {
    /// A string that identifies this tokenizer (the token cache's key includes it).
    pub fn fingerprint(&self) -> String {
        match self {
            TextTokenizer::Char(t) => t.fingerprint(),
            TextTokenizer::Bpe(t) => t.fingerprint(),
        }
    }

    pub fn vocab_size(&self) -> usize {
        match self {
            TextTokenizer::Char(t) => t.vocab_size(),
            TextTokenizer::Bpe(t) => t.vocab_size(),
        }
    }

    /// Token ids of `text`. Character level: a character outside the vocabulary is an error. BPE:
    /// never fails (every byte is a token); special-token text is plain text.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        match self {
            TextTokenizer::Char(t) => t.encode(text),
            TextTokenizer::Bpe(t) => Ok(t.encode(text)),
        }
    }

    /// The text of `ids`.
    pub fn decode(&self, ids: &[u32]) -> String {
        match self {
            TextTokenizer::Char(t) => t.decode(ids),
            TextTokenizer::Bpe(t) => t.decode(ids),
        }
    }

    /// `"char"` or `"bpe"`.
    pub fn kind(&self) -> &'static str {
        match self {
            TextTokenizer::Char(_) => "char",
            TextTokenizer::Bpe(_) => "bpe",
        }
    }
}

/// Splits `ids` into the first `1 - val_fraction` for training and the rest for validation.
pub fn train_val_split(ids: &[u32], val_fraction: f64) -> (&[u32], &[u32]) {
    let n_train = ((ids.len() as f64) * (1.0 - val_fraction)).round() as usize;
    ids.split_at(n_train.min(ids.len()))
}

/// A batch of `b` random windows of `t + 1` consecutive ids: `tokens (B, T)` and `targets (B, T)`, the
/// same windows shifted by one.
pub fn random_batch(
    ids: &[u32],
    b: usize,
    t: usize,
    rng: &mut Rng,
) -> Result<(Vec<u32>, Vec<u32>)> {
    let (mut tokens, mut targets) = (Vec::with_capacity(b * t), Vec::with_capacity(b * t));
    random_batch_into(ids, b, t, rng, &mut tokens, &mut targets)?;
    Ok((tokens, targets))
}

/// As [`random_batch`], into `tokens` and `targets` (cleared first; they allocate only to grow, so a
/// training loop that keeps them allocates nothing per step). The same windows from the same `rng`.
pub fn random_batch_into(
    ids: &[u32],
    b: usize,
    t: usize,
    rng: &mut Rng,
    tokens: &mut Vec<u32>,
    targets: &mut Vec<u32>,
) -> Result<()> {
    if ids.len() < t + 1 {
        return Err(Error::Data {
            what: format!(
                "{} tokens is too few for one window of {}",
                ids.len(),
                t + 1
            ),
        });
    }
    tokens.clear();
    targets.clear();
    for _ in 0..b {
        let start = rng.below(ids.len() - t);
        tokens.extend_from_slice(&ids[start..start + t]);
        targets.extend_from_slice(&ids[start + 1..start + t + 1]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn char_round_trip_and_windows() {
        let tok = CharTokenizer::from_text("hello world");
        assert_eq!(tok.vocab_size(), 8);
        let ids = tok.encode("hello world").unwrap();
        assert_eq!(tok.decode(&ids), "hello world");
        assert!(tok.encode("z").is_err());
        let (x, y) = random_batch(&ids, 3, 4, &mut Rng::new(1)).unwrap();
        assert_eq!((x.len(), y.len()), (12, 12));
        for r in 0..3 {
            assert_eq!(x[r * 4 + 1..r * 4 + 4], y[r * 4..r * 4 + 3]);
        }
        assert!(random_batch(&ids, 1, 11, &mut Rng::new(1)).is_err());
        assert_eq!(CharTokenizer::from_tokens(&tok.tokens()).unwrap(), tok);
        assert!(CharTokenizer::from_tokens(&["b".into(), "a".into()]).is_err());
        assert!(CharTokenizer::from_tokens(&["ab".into()]).is_err());
    }
}
