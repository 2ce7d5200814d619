//! Byte-level BPE tokenizer training (GPT-2 style), producing a vocabulary and merges that the
//! runtime's `gpt2` tokenizer (and llama.cpp) load as `tokenizer.ggml.model = "gpt2"`,
//! `tokenizer.ggml.pre = "gpt-2"`.
//!
//! Owns: counting pre-tokenized words and the merge loop. Does not own: pre-tokenization or the
//! GPT-2 byte-to-unicode table — both come from the runtime (`ingot_runtime::tokenizer::
//! WordSplitter`, `byte_to_char`), so training splits words exactly as encoding does.
//!
//! Vocabulary layout (ids are stable for a given number of special tokens): ids `0..256` are the
//! 256 bytes as their GPT-2 byte-level characters (a space is `Ġ`, byte `b` is id `b`), then the
//! special tokens in the order given (by default [`SPECIAL_TOKENS`]: `<|endoftext|>` 256,
//! `<|im_start|>` 257, `<|im_end|>` 258, control tokens that text never encodes to unless
//! special-token parsing is asked for), then one token per merge in merge order.
//!
//! Algorithm: the text is split into words by the GPT-2 pre-tokenizer and the distinct words are
//! counted. Every word starts as its bytes. Then, until the vocabulary is full, the most frequent
//! adjacent pair of symbols (ties: the lexicographically smallest `(left, right)` token texts) is
//! merged everywhere. Pair counts are updated incrementally: only the words holding the merged pair
//! are rescanned (an index from pair to words), and a lazy max-heap finds the next pair.

use std::collections::{BinaryHeap, HashMap};

use ingot_runtime::tokenizer::{byte_to_char, Tokenizer, TokenizerConfig, WordSplitter};

use crate::{Error, Result};

/// The `tokenizer.ggml.pre` value of trained tokenizers (llama.cpp's name for the GPT-2 splitter).
pub const PRE: &str = "gpt-2";

/// The default special tokens, ids 256, 257, 258: end of text (also BOS/EOS), and ChatML's turn
/// delimiters, reserved at pretraining so that SFT and chat can use ChatML without resizing.
pub const SPECIAL_TOKENS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];
/// The id of the first special token (`<|endoftext|>` by default).
pub const FIRST_SPECIAL: u32 = 256;

/// Training options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BpeOptions {
    /// Final vocabulary size: 256 byte tokens + special tokens + merges (fewer when training
    /// stops early, see `min_frequency`).
    pub vocab_size: usize,
    /// Special tokens placed right after the 256 byte tokens (ids 256, 257, ...) as control
    /// tokens (type 3). The first one is also the BOS/EOS token of [`TrainedBpe::config`].
    pub special_tokens: Vec<String>,
    /// Pairs seen fewer times than this are not merged (training stops early). At least 1.
    pub min_frequency: u64,
}

impl Default for BpeOptions {
    fn default() -> Self {
        BpeOptions {
            vocab_size: 4096,
            special_tokens: SPECIAL_TOKENS.iter().map(|s| s.to_string()).collect(),
            min_frequency: 2,
        }
    }
}

/// A trained byte-level BPE vocabulary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainedBpe {
    /// Token texts in id order (byte-level encoded): bytes, special tokens, merged tokens.
    pub tokens: Vec<String>,
    /// `"left right"` merges in rank order.
    pub merges: Vec<String>,
    /// `tokenizer.ggml.token_type` per token: 1 normal, 3 control.
    pub token_types: Vec<i32>,
    /// Number of special tokens, ids `256..256 + n_special`.
    pub n_special: usize,
}

impl TrainedBpe {
    /// The id of the first special token (BOS/EOS), if any.
    pub fn eos(&self) -> Option<u32> {
        (self.n_special > 0).then_some(FIRST_SPECIAL)
    }

    /// The GGUF tokenizer metadata: model `gpt2`, pre `gpt-2`, BOS = EOS = the first special
    /// token (if any), nothing added when encoding (what `ingot convert` writes for a trained
    /// checkpoint).
    pub fn config(&self) -> TokenizerConfig {
        TokenizerConfig {
            model: "gpt2".to_owned(),
            pre: PRE.to_owned(),
            tokens: self.tokens.clone(),
            token_types: self.token_types.clone(),
            merges: self.merges.clone(),
            bos: self.eos(),
            eos: self.eos(),
            ..TokenizerConfig::default()
        }
    }
}

/// Splits `text` into GPT-2 pre-tokenizer words, exactly as the runtime does before applying merges.
pub fn pretokenize(text: &str) -> Vec<&str> {
    let mut words = Vec::new();
    splitter().split(text, &mut words);
    words
}

fn splitter() -> WordSplitter {
    WordSplitter::new(PRE).expect("gpt-2 is a known pre-tokenizer")
}

/// The GPT-2 byte-level text of raw bytes (each byte as its printable stand-in character).
pub fn byte_level(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| byte_to_char(b)).collect()
}

/// Counts the pre-tokenized words of `texts` (each text is split on its own).
pub fn count_words<'a>(texts: impl IntoIterator<Item = &'a str>) -> HashMap<&'a str, u64> {
    let mut split = splitter();
    let mut words = Vec::new();
    let mut counts: HashMap<&'a str, u64> = HashMap::new();
    for text in texts {
        words.clear();
        split.split(text, &mut words);
        for &w in &words {
            *counts.entry(w).or_insert(0) += 1;
        }
    }
    counts
}

/// Trains on `texts` (e.g. the files of a corpus; words never span two texts).
pub fn train<'a>(
    texts: impl IntoIterator<Item = &'a str>,
    opts: &BpeOptions,
) -> Result<TrainedBpe> {
    train_counts(&count_words(texts), opts)
}

/// Heap entry: a pair and the count it had when pushed (stale once the count changed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    count: u64,
    pair: (u32, u32),
}

/// Trains on word counts (see [`count_words`]).
pub fn train_counts(counts: &HashMap<&str, u64>, opts: &BpeOptions) -> Result<TrainedBpe> {
    let n_special = opts.special_tokens.len();
    if opts.vocab_size < 256 + n_special {
        return Err(Error::Config {
            what: format!(
                "BPE vocabulary size {} is below 256 byte tokens + {n_special} special tokens",
                opts.vocab_size
            ),
        });
    }
    let min_freq = opts.min_frequency.max(1);

    // Token texts: raw bytes (for ordering) and their byte-level strings.
    let mut tok_bytes: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
    let mut tokens: Vec<String> = tok_bytes.iter().map(|b| byte_level(b)).collect();
    let mut by_bytes: HashMap<Vec<u8>, u32> = tok_bytes
        .iter()
        .enumerate()
        .map(|(i, b)| (b.clone(), i as u32))
        .collect();
    let mut merges = Vec::new();
    // The special tokens (ids 256..): never symbols of a word, so absent from `by_bytes`.
    for sp in &opts.special_tokens {
        tok_bytes.push(sp.as_bytes().to_vec());
        tokens.push(sp.clone());
    }

    // Distinct words in a fixed order (sorted), as symbol sequences.
    let mut list: Vec<(&str, u64)> = counts.iter().map(|(&w, &c)| (w, c)).collect();
    list.sort_unstable();
    let freq: Vec<u64> = list.iter().map(|&(_, c)| c).collect();
    let mut words: Vec<Vec<u32>> = list
        .iter()
        .map(|(w, _)| w.bytes().map(u32::from).collect())
        .collect();

    let mut pair_count: HashMap<(u32, u32), u64> = HashMap::new();
    let mut pair_words: HashMap<(u32, u32), Vec<u32>> = HashMap::new();
    for (wi, w) in words.iter().enumerate() {
        for p in w.windows(2) {
            let key = (p[0], p[1]);
            *pair_count.entry(key).or_insert(0) += freq[wi];
            let ws = pair_words.entry(key).or_default();
            if ws.last() != Some(&(wi as u32)) {
                ws.push(wi as u32);
            }
        }
    }
    let mut heap: BinaryHeap<Entry> = pair_count
        .iter()
        .map(|(&pair, &count)| Entry { count, pair })
        .collect();

    let mut delta: HashMap<(u32, u32), i64> = HashMap::new();
    let mut new_word = Vec::new();
    let mut ties = Vec::new();
    while tokens.len() < opts.vocab_size {
        // The most frequent pair; among equal counts, the smallest (left, right) texts.
        let valid = |e: &Entry, pc: &HashMap<(u32, u32), u64>| pc.get(&e.pair) == Some(&e.count);
        let best = loop {
            match heap.pop() {
                None => break None,
                Some(e) if valid(&e, &pair_count) => break Some(e),
                Some(_) => {}
            }
        };
        let Some(best) = best else { break };
        if best.count < min_freq {
            break;
        }
        ties.clear();
        ties.push(best);
        while let Some(e) = heap.peek().copied() {
            if e.count != best.count {
                break;
            }
            heap.pop();
            if valid(&e, &pair_count) && !ties.contains(&e) {
                ties.push(e);
            }
        }
        let key = |e: &Entry| {
            (
                tok_bytes[e.pair.0 as usize].clone(),
                tok_bytes[e.pair.1 as usize].clone(),
            )
        };
        let chosen = *ties.iter().min_by_key(|e| key(e)).expect("not empty");
        for &e in &ties {
            if e != chosen {
                heap.push(e);
            }
        }
        let (a, b) = chosen.pair;

        // The merged token (an existing one when another pair already spelled the same bytes).
        let mut merged = tok_bytes[a as usize].clone();
        merged.extend_from_slice(&tok_bytes[b as usize]);
        merges.push(format!("{} {}", tokens[a as usize], tokens[b as usize]));
        let c = match by_bytes.get(&merged) {
            Some(&id) => id,
            None => {
                let id = tokens.len() as u32;
                tokens.push(byte_level(&merged));
                by_bytes.insert(merged.clone(), id);
                tok_bytes.push(merged);
                id
            }
        };

        // Rewrite every word holding (a, b); count the change of every pair.
        delta.clear();
        let holders = pair_words.remove(&(a, b)).unwrap_or_default();
        for &wi in &holders {
            let w = &mut words[wi as usize];
            if !w.windows(2).any(|p| p[0] == a && p[1] == b) {
                continue; // stale index entry
            }
            let f = freq[wi as usize] as i64;
            for p in w.windows(2) {
                *delta.entry((p[0], p[1])).or_insert(0) -= f;
            }
            new_word.clear();
            let mut i = 0;
            while i < w.len() {
                if i + 1 < w.len() && w[i] == a && w[i + 1] == b {
                    new_word.push(c);
                    i += 2;
                } else {
                    new_word.push(w[i]);
                    i += 1;
                }
            }
            core::mem::swap(w, &mut new_word);
            for p in w.windows(2) {
                *delta.entry((p[0], p[1])).or_insert(0) += f;
                if p[0] == c || p[1] == c {
                    let ws = pair_words.entry((p[0], p[1])).or_default();
                    if ws.last() != Some(&wi) {
                        ws.push(wi);
                    }
                }
            }
        }
        let mut changed: Vec<((u32, u32), i64)> = delta
            .iter()
            .filter(|(_, &d)| d != 0)
            .map(|(&k, &d)| (k, d))
            .collect();
        changed.sort_unstable();
        for (pair, d) in changed {
            let cnt = pair_count.entry(pair).or_insert(0);
            *cnt = (*cnt as i64 + d) as u64;
            if *cnt == 0 {
                pair_count.remove(&pair);
                pair_words.remove(&pair);
            } else {
                heap.push(Entry { count: *cnt, pair });
            }
        }
    }

    let mut token_types = vec![1; tokens.len()];
    let specials = 256..256 + n_special;
    for (id, t) in tokens.iter().enumerate() {
        if !specials.contains(&id) && opts.special_tokens.contains(t) {
            return Err(Error::Config {
                what: format!("special token {t:?} is also a merged token (id {id})"),
            });
        }
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = opts.special_tokens.iter().find(|s| !seen.insert(*s)) {
        return Err(Error::Config {
            what: format!("special token {dup:?} is given twice"),
        });
    }
    token_types[specials].fill(3);
    Ok(TrainedBpe {
        tokens,
        merges,
        token_types,
        n_special,
    })
}

/// A trained byte-level BPE vocabulary with its encoder (the runtime's `gpt2` tokenizer, so the
/// trainer tokenizes exactly as the converted model will be tokenized by ingot and llama.cpp).
pub struct BpeTokenizer {
    pub trained: TrainedBpe,
    tokenizer: Tokenizer,
}

impl core::fmt::Debug for BpeTokenizer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BpeTokenizer")
            .field("n_vocab", &self.trained.tokens.len())
            .field("merges", &self.trained.merges.len())
            .field("n_special", &self.trained.n_special)
            .finish()
    }
}

impl PartialEq for BpeTokenizer {
    fn eq(&self, other: &Self) -> bool {
        self.trained == other.trained
    }
}

impl BpeTokenizer {
    /// The encoder of `trained`; an error when the runtime refuses the vocabulary (duplicate
    /// tokens, bad token types).
    pub fn new(trained: TrainedBpe) -> Result<Self> {
        let tokenizer = Tokenizer::new(trained.config()).map_err(|e| Error::Data {
            what: format!("BPE tokenizer: {e}"),
        })?;
        Ok(BpeTokenizer { trained, tokenizer })
    }

    pub fn vocab_size(&self) -> usize {
        self.trained.tokens.len()
    }

    /// Token ids of `text`; special-token text is encoded as plain text.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        self.tokenizer.encode(text, false, false)
    }

    /// The text of `ids` (special tokens rendered).
    pub fn decode(&self, ids: &[u32]) -> String {
        self.tokenizer.decode(ids, true)
    }

    /// The runtime tokenizer behind this one.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// A string that identifies this tokenizer (the token cache's key includes it): the SHA-256 of
    /// its pre-tokenizer, tokens, types and merges.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(PRE.as_bytes());
        for (t, ty) in self.trained.tokens.iter().zip(&self.trained.token_types) {
            h.update(b"\0t");
            h.update(t.as_bytes());
            h.update(ty.to_le_bytes());
        }
        for m in &self.trained.merges {
            h.update(b"\0m");
            h.update(m.as_bytes());
        }
        format!("bpe {}", crate::files::hex(&h.finalize()))
    }
}
