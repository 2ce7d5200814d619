//! The tokenizer llama.cpp builds from a GGUF file's `tokenizer.ggml.*` metadata, id for id.
//!
//! Owns: the vocabulary and token attributes, special-token partitioning
//! (llama.cpp `tokenizer_st_partition`), the end-of-generation set (`special_eog_ids`), encoding,
//! decoding (`token_to_piece`) and incremental decoding for streaming ([`StreamDecoder`]). The
//! algorithms live in submodules: `pretokenize` (the `tokenizer.ggml.pre` splitters), `bpe`
//! (byte-level BPE, `tokenizer.ggml.model = "gpt2"`), `unicode` (character classes).
//! Does not own: reading GGUF (the caller fills a [`TokenizerConfig`]) or chat templates.
//!
//! Reference: llama.cpp `src/llama-vocab.cpp` and `src/unicode.cpp`. SentencePiece (`"llama"`) is not
//! implemented yet; it will be a second [`Algorithm`] variant behind the same [`Tokenizer`].

mod bpe;
mod pretokenize;
mod special;
mod stream;
mod unicode;
mod unicode_tables;

use crate::prelude::*;
use hashbrown::HashMap;

use crate::{Error, Result};

pub use stream::StreamDecoder;

/// Tokenizer metadata as stored in GGUF (`tokenizer.ggml.*`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenizerConfig {
    /// `tokenizer.ggml.model`: `"gpt2"` (byte-level BPE) is supported; `"llama"` is not yet.
    pub model: String,
    /// `tokenizer.ggml.pre`, the pre-tokenizer name; empty means llama.cpp's fallback, `"default"`.
    pub pre: String,
    /// `tokenizer.ggml.tokens`.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.token_type` (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused,
    /// 6 byte); empty means all normal.
    pub token_types: Vec<i32>,
    /// `tokenizer.ggml.merges`, `"left right"`, in rank order.
    pub merges: Vec<String>,
    /// `tokenizer.ggml.scores` (used by `"llama"`; may be empty).
    pub scores: Vec<f32>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub eot: Option<u32>,
    pub unk: Option<u32>,
    pub pad: Option<u32>,
    /// `tokenizer.ggml.add_bos_token`; see [`TokenizerConfig::default_add_bos`] when it is absent.
    pub add_bos: bool,
    /// `tokenizer.ggml.add_eos_token`.
    pub add_eos: bool,
}

impl TokenizerConfig {
    /// llama.cpp's value of `add_bos` when `tokenizer.ggml.add_bos_token` is absent: true for
    /// SentencePiece and for the Llama-3-style pre-tokenizers, false otherwise.
    pub fn default_add_bos(model: &str, pre: &str) -> bool {
        model == "llama"
            || matches!(
                pre,
                "llama3"
                    | "llama-v3"
                    | "llama-bpe"
                    | "falcon3"
                    | "pixtral"
                    | "tekken"
                    | "chameleon"
            )
    }
}

// Token attributes, with llama.cpp's bit values (`llama_token_attr`).
const ATTR_UNKNOWN: u16 = 1 << 0;
const ATTR_UNUSED: u16 = 1 << 1;
const ATTR_NORMAL: u16 = 1 << 2;
const ATTR_CONTROL: u16 = 1 << 3;
const ATTR_USER_DEFINED: u16 = 1 << 4;
const ATTR_BYTE: u16 = 1 << 5;

/// The encoding algorithm behind a [`Tokenizer`].
#[derive(Debug)]
enum Algorithm {
    Bpe(bpe::Bpe),
}

/// A loaded tokenizer. Immutable and `Sync`: share it by reference.
pub struct Tokenizer {
    tokens: Vec<String>,
    token_to_id: HashMap<String, u32>,
    attrs: Vec<u16>,
    /// `token_to_piece(id, special = true)` of every token, concatenated; token `i` is
    /// `piece_bytes[piece_offs[i]..piece_offs[i + 1]]`.
    piece_bytes: Vec<u8>,
    piece_offs: Vec<u32>,
    /// Control, user-defined and unknown tokens, longest text first: the partitioning order.
    special: Vec<u32>,
    /// End-of-generation tokens, sorted.
    eog: Vec<u32>,
    bos: Option<u32>,
    eos: Option<u32>,
    add_bos: bool,
    add_eos: bool,
    algorithm: Algorithm,
}

impl core::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("n_vocab", &self.tokens.len())
            .field("n_special", &self.special.len())
            .field("eog", &self.eog)
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("add_bos", &self.add_bos)
            .field("add_eos", &self.add_eos)
            .finish_non_exhaustive()
    }
}

fn err(what: impl Into<String>) -> Error {
    Error::Tokenizer { what: what.into() }
}

/// One piece of the input after special-token partitioning.
#[derive(Debug, Clone, Copy)]
enum Fragment {
    /// A byte range of the input holding no special token.
    Text(usize, usize),
    Token(u32),
}

/// The buffers of [`Tokenizer::encode_into`], kept between calls: once they have grown to a text's
/// needs, encoding that text again, or any text no longer and no richer in special tokens, allocates
/// nothing. `Default` allocates nothing either; the buffers grow on first use.
#[derive(Debug, Default)]
pub struct EncodeScratch {
    bpe: bpe::BpeScratch,
    frags: Vec<Fragment>,
    next: Vec<Fragment>,
}

impl Tokenizer {
    /// Builds the tokenizer, applying llama.cpp's load-time fix-ups (attributes of EOT/EOG/FIM tokens
    /// found by their text). Errors on an unsupported model or pre-tokenizer, a duplicate token,
    /// token types or scores shorter than the vocabulary, a special token id out of range, or
    /// `add_bos`/`add_eos` without the token. Merges are not validated (llama.cpp does not either).
    pub fn new(cfg: TokenizerConfig) -> Result<Tokenizer> {
        let pre = match cfg.model.as_str() {
            "gpt2" => pretokenize::PreTokenizer::from_name(&cfg.pre).ok_or_else(|| {
                err(format!(
                    "unknown or unsupported pre-tokenizer `{}` (tokenizer.ggml.pre)",
                    cfg.pre
                ))
            })?,
            "llama" => return Err(err(
                "SentencePiece tokenizers (tokenizer.ggml.model = \"llama\") are not supported yet",
            )),
            other => return Err(err(format!("unsupported tokenizer model `{other}`"))),
        };
        let n = cfg.tokens.len();
        if n == 0 {
            return Err(err("the vocabulary is empty"));
        }
        if n > i32::MAX as usize {
            return Err(err(format!("vocabulary of {n} tokens is too large")));
        }
        if !cfg.token_types.is_empty() && cfg.token_types.len() < n {
            return Err(err(format!(
                "{} token types for {n} tokens",
                cfg.token_types.len()
            )));
        }
        if !cfg.scores.is_empty() && cfg.scores.len() < n {
            return Err(err(format!("{} scores for {n} tokens", cfg.scores.len())));
        }
        for (name, id) in [
            ("bos", cfg.bos),
            ("eos", cfg.eos),
            ("eot", cfg.eot),
            ("unk", cfg.unk),
            ("pad", cfg.pad),
        ] {
            if let Some(id) = id.filter(|&id| id as usize >= n) {
                return Err(err(format!(
                    "{name} token id {id} is out of range (vocabulary of {n})"
                )));
            }
        }
        if cfg.add_bos && cfg.bos.is_none() {
            return Err(err("add_bos_token is true but there is no bos token id"));
        }
        if cfg.add_eos && cfg.eos.is_none() {
            return Err(err("add_eos_token is true but there is no eos token id"));
        }

        let mut tokens = cfg.tokens;
        let mut token_to_id = HashMap::with_capacity(n);
        for (i, t) in tokens.iter_mut().enumerate() {
            if t.is_empty() {
                *t = format!("[EMPTY_{i}]"); // llama.cpp's stand-in for an empty token
            }
            if let Some(prev) = token_to_id.insert(t.clone(), i as u32) {
                return Err(err(format!("duplicate token {t:?} at ids {prev} and {i}")));
            }
        }
        let mut attrs: Vec<u16> = (0..n)
            .map(|i| match cfg.token_types.get(i).copied().unwrap_or(1) {
                1 => ATTR_NORMAL,
                2 => ATTR_UNKNOWN,
                3 => ATTR_CONTROL,
                4 => ATTR_USER_DEFINED,
                5 => ATTR_UNUSED,
                6 => ATTR_BYTE,
                _ => 0, // undefined
            })
            .collect();
        let eog = special::fixups(&tokens, &mut attrs, cfg.eos, cfg.eot);

        let mut special: Vec<u32> = (0..n as u32)
            .filter(|&i| attrs[i as usize] & (ATTR_CONTROL | ATTR_USER_DEFINED | ATTR_UNKNOWN) != 0)
            .collect();
        // llama.cpp uses an unstable sort here; ties (equal lengths) are taken in id order.
        special.sort_by_key(|&i| core::cmp::Reverse(tokens[i as usize].len()));

        let mut piece_bytes = Vec::new();
        let mut piece_offs = Vec::with_capacity(n + 1);
        piece_offs.push(0u32);
        for (t, &a) in tokens.iter().zip(&attrs) {
            piece(t, a, &mut piece_bytes);
            let off =
                u32::try_from(piece_bytes.len()).map_err(|_| err("vocabulary text too large"))?;
            piece_offs.push(off);
        }

        let algorithm = Algorithm::Bpe(bpe::Bpe::new(&token_to_id, n as u32, &cfg.merges, pre));
        Ok(Tokenizer {
            tokens,
            token_to_id,
            attrs,
            piece_bytes,
            piece_offs,
            special,
            eog,
            bos: cfg.bos,
            eos: cfg.eos,
            add_bos: cfg.add_bos,
            add_eos: cfg.add_eos,
            algorithm,
        })
    }

    /// Number of tokens in the vocabulary.
    pub fn n_vocab(&self) -> usize {
        self.tokens.len()
    }

    /// Tokenizes `text` as `llama_tokenize` does. `add_special` adds BOS/EOS as the model asks
    /// (`add_bos`/`add_eos`); `parse_special` turns control tokens written in the text into their
    /// ids (user-defined tokens are always recognised, as in llama.cpp and Hugging Face).
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        self.encode_into(
            text,
            add_special,
            parse_special,
            &mut EncodeScratch::default(),
            &mut out,
        );
        out
    }

    /// [`Tokenizer::encode`] into `out` (cleared first), with buffers the caller keeps: a loop
    /// that encodes prompt after prompt (`ingot_generate`) allocates nothing once `scratch` and
    /// `out` have grown to the prompts' size.
    pub fn encode_into(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
        scratch: &mut EncodeScratch,
        out: &mut Vec<u32>,
    ) {
        out.clear();
        if add_special && self.add_bos {
            out.extend(self.bos);
        }
        let EncodeScratch { bpe, frags, next } = scratch;
        self.partition(text, parse_special, frags, next);
        for &frag in frags.iter() {
            match frag {
                Fragment::Token(id) => out.push(id),
                Fragment::Text(a, b) => match &self.algorithm {
                    Algorithm::Bpe(algo) => algo.encode(&text[a..b], &self.token_to_id, bpe, out),
                },
            }
        }
        if add_special && self.add_eos {
            out.extend(self.eos);
        }
    }

    /// llama.cpp `tokenizer_st_partition`: for each special token, longest first, cut every
    /// occurrence out of the text fragments left so far. Control and unknown tokens take part only
    /// when `parse_special`. (llama.cpp's lstrip/rstrip attributes are set only for a few models by
    /// name, jina and phi-3, and are not supported here.) The fragments go to `frags` (cleared
    /// first); `next` is scratch.
    fn partition(
        &self,
        text: &str,
        parse_special: bool,
        frags: &mut Vec<Fragment>,
        next: &mut Vec<Fragment>,
    ) {
        frags.clear();
        if text.is_empty() {
            return;
        }
        frags.push(Fragment::Text(0, text.len()));
        for &id in &self.special {
            if !parse_special && self.attrs[id as usize] & (ATTR_CONTROL | ATTR_UNKNOWN) != 0 {
                continue;
            }
            let pat = self.tokens[id as usize].as_str();
            if !text.contains(pat) {
                continue;
            }
            next.clear();
            for &f in frags.iter() {
                let Fragment::Text(mut a, b) = f else {
                    next.push(f);
                    continue;
                };
                // Both are valid UTF-8, so a match always starts and ends on character boundaries.
                while let Some(p) = text[a..b].find(pat) {
                    if p > 0 {
                        next.push(Fragment::Text(a, a + p));
                    }
                    next.push(Fragment::Token(id));
                    a += p + pat.len();
                }
                if a < b {
                    next.push(Fragment::Text(a, b));
                }
            }
            core::mem::swap(frags, next);
        }
    }

    /// The bytes `id` decodes to (llama.cpp `token_to_piece` with `special = true`): the byte-level
    /// decoded text of a normal token, the text itself of control, user-defined and unknown tokens,
    /// and nothing for unused or undefined ones. Empty for an id out of range.
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        let i = id as usize;
        match (self.piece_offs.get(i), self.piece_offs.get(i + 1)) {
            (Some(&a), Some(&b)) => &self.piece_bytes[a as usize..b as usize],
            _ => &[],
        }
    }

    /// Whether `decode(.., render_special)` writes `id`: control and unknown tokens only when
    /// rendering special tokens; ids out of range never.
    fn renders(&self, id: u32, render_special: bool) -> bool {
        match self.attrs.get(id as usize) {
            Some(&a) => render_special || a & (ATTR_CONTROL | ATTR_UNKNOWN) == 0,
            None => false,
        }
    }

    /// Concatenates the pieces of `ids` and decodes them as UTF-8, replacing invalid bytes with
    /// U+FFFD. Control and unknown tokens are left out unless `render_special`. Unlike
    /// `llama_detokenize`, no `clean_up_tokenization_spaces` rewriting is applied, so
    /// `decode(encode(s)) == s`.
    pub fn decode(&self, ids: &[u32], render_special: bool) -> String {
        let mut bytes = Vec::new();
        for &id in ids {
            if self.renders(id, render_special) {
                bytes.extend_from_slice(self.token_bytes(id));
            }
        }
        match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }
    }

    /// The beginning-of-sequence token, if the model has one.
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    /// The end-of-sequence token, if the model has one.
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    /// Whether `id` ends generation: EOS, EOT, and the tokens llama.cpp recognises by their text
    /// (`<|im_end|>`, `<|endoftext|>`, `<|eot_id|>`, FIM pad/repo/file-separator, ...).
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.binary_search(&id).is_ok()
    }

    /// Whether `id` is a control token (after llama.cpp's fix-ups of EOT/EOG/FIM tokens).
    pub fn is_control(&self, id: u32) -> bool {
        self.attrs
            .get(id as usize)
            .is_some_and(|&a| a & ATTR_CONTROL != 0)
    }

    /// The id of the token whose vocabulary text is exactly `text`.
    pub fn token_to_id(&self, text: &str) -> Option<u32> {
        self.token_to_id.get(text).copied()
    }

    /// The vocabulary text of `id` (byte-level encoded for BPE: a space is `Ġ`).
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }
}

/// Appends llama.cpp's `token_to_piece(special = true)` of a token with text `text` and
/// attributes `attr` (byte-level BPE).
fn piece(text: &str, attr: u16, out: &mut Vec<u8>) {
    if attr & (ATTR_UNKNOWN | ATTR_CONTROL | ATTR_USER_DEFINED) != 0 {
        out.extend_from_slice(text.as_bytes());
    } else if attr & ATTR_NORMAL != 0 {
        let mut buf = [0u8; 4];
        for c in text.chars() {
            match unicode::char_to_byte(c) {
                Some(b) => out.push(b),
                // Outside the byte-level alphabet (a token added as "normal" by a converter):
                // llama.cpp writes an `[UNK_BYTE_0x..]` marker; the character itself is more useful.
                None => out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes()),
            }
        }
    } else if attr & ATTR_BYTE != 0 {
        // `<0xAB>` byte tokens (llama.cpp `token_to_byte` reads the two hex digits at offset 3).
        if let Some(b) = text.get(3..5).and_then(|h| u8::from_str_radix(h, 16).ok()) {
            out.push(b);
        }
    }
}

/// Splits text into the words a pre-tokenizer produces before any merge is applied: what a BPE
/// trainer counts, so that training and encoding agree on word boundaries.
pub struct WordSplitter {
    pre: pretokenize::PreTokenizer,
    scratch: pretokenize::Scratch,
    ranges: Vec<core::ops::Range<usize>>,
}

impl core::fmt::Debug for WordSplitter {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WordSplitter")
            .field("pre", &self.pre)
            .finish_non_exhaustive()
    }
}

impl WordSplitter {
    /// The splitter of `tokenizer.ggml.pre` value `pre`, or `None` for an unknown name.
    pub fn new(pre: &str) -> Option<WordSplitter> {
        Some(WordSplitter {
            pre: pretokenize::PreTokenizer::from_name(pre)?,
            scratch: pretokenize::Scratch::default(),
            ranges: Vec::new(),
        })
    }

    /// Appends the words of `text` (in order, covering all of it) to `out`.
    pub fn split<'t>(&mut self, text: &'t str, out: &mut Vec<&'t str>) {
        self.ranges.clear();
        self.pre.split(text, &mut self.scratch, &mut self.ranges);
        out.extend(self.ranges.drain(..).map(|r| &text[r]));
    }
}

/// GPT-2's byte-level character for byte `b` (printable bytes stand for themselves, the others map
/// to U+0100 and up): the alphabet of `gpt2`-model vocabularies.
pub fn byte_to_char(b: u8) -> char {
    unicode::BYTE_TO_CHAR[b as usize]
}

#[cfg(test)]
mod tests;
