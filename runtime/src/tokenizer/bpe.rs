//! Byte-level BPE (`tokenizer.ggml.model = "gpt2"`): merges applied by rank inside each pre-tokenized
//! word, as llama.cpp's `llm_tokenizer_bpe_session::tokenize` does.
//!
//! Owns: the merge table and the merge loop. Does not own: special tokens, pre-tokenization
//! (`pretokenize`), the vocabulary (`mod.rs`).
//!
//! llama.cpp works on strings: every byte of a word becomes its GPT-2 byte-level character, a symbol
//! is a string, and merges are looked up by `(left, right)` string pairs. Here every string that can
//! ever be a symbol (the 256 byte-level characters and every merge result) is interned once, as its
//! token id when it is in the vocabulary and as an id past the vocabulary otherwise, and a merge is
//! a lookup `(left id, right id) -> (rank, merged id)`. Symbols point into the word's original
//! bytes, so no strings are built while encoding.

use crate::prelude::*;
use alloc::collections::BinaryHeap;
use core::hash::{BuildHasherDefault, Hasher};
use hashbrown::HashMap;

use super::pretokenize::{PreTokenizer, Scratch};
use super::unicode::BYTE_TO_CHAR;

/// FxHash-style hasher for the `u64` pair keys (the std SipHash costs more than the merge itself).
#[derive(Debug, Default, Clone, Copy)]
struct PairHasher(u64);

impl Hasher for PairHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

type PairMap = HashMap<u64, Merge, BuildHasherDefault<PairHasher>>;

#[derive(Debug, Clone, Copy)]
struct Merge {
    rank: u32,
    /// Symbol id of the merged string.
    result: u32,
}

fn pair_key(left: u32, right: u32) -> u64 {
    (u64::from(left) << 32) | u64::from(right)
}

/// The byte-level BPE algorithm over one vocabulary.
#[derive(Debug)]
pub(super) struct Bpe {
    merges: PairMap,
    /// Symbol id of each byte's byte-level character.
    byte_symbol: [u32; 256],
    /// Ids below this are tokens; ids at or above it are merge results missing from the vocabulary.
    n_vocab: u32,
    /// Token whose text is this one printable ASCII character (llama.cpp's last-resort lookup).
    ascii_token: [Option<u32>; 128],
    pre: PreTokenizer,
}

/// Splits a merge line at its first space after the first byte, as llama.cpp does
/// (`word.find(' ', 1)`); `None` for a line without one (llama.cpp keeps it as an unusable
/// `("", "")` pair).
fn split_merge(line: &str) -> Option<(&str, &str)> {
    let p = line.bytes().skip(1).position(|b| b == b' ')? + 1;
    Some((&line[..p], &line[p + 1..]))
}

impl Bpe {
    /// Builds the merge table. Like llama.cpp, merges are not checked against the vocabulary: a
    /// merge whose sides can never be symbols is never applied, the first of duplicate pairs wins,
    /// and a merge result missing from the vocabulary may still be formed (its bytes then fall
    /// back as in [`Bpe::encode`]).
    pub(super) fn new(
        token_to_id: &HashMap<String, u32>,
        n_vocab: u32,
        merges: &[String],
        pre: PreTokenizer,
    ) -> Bpe {
        let mut extra: HashMap<String, u32> = HashMap::new();
        let intern = |s: &str, extra: &mut HashMap<String, u32>| -> u32 {
            if let Some(&id) = token_to_id.get(s) {
                return id;
            }
            let next = n_vocab + extra.len() as u32;
            *extra.entry(s.to_owned()).or_insert(next)
        };

        let mut byte_symbol = [0u32; 256];
        let mut buf = [0u8; 4];
        for (b, sym) in byte_symbol.iter_mut().enumerate() {
            *sym = intern(BYTE_TO_CHAR[b].encode_utf8(&mut buf), &mut extra);
        }
        // Every merge result can be a symbol, whatever its rank; intern them all before resolving
        // the sides (a side may be the result of a later line).
        let mut joined = String::new();
        for line in merges {
            if let Some((l, r)) = split_merge(line) {
                joined.clear();
                joined.push_str(l);
                joined.push_str(r);
                intern(&joined, &mut extra);
            }
        }
        let lookup = |s: &str, extra: &HashMap<String, u32>| -> Option<u32> {
            token_to_id.get(s).or_else(|| extra.get(s)).copied()
        };
        let mut table = PairMap::default();
        table.reserve(merges.len());
        for (rank, line) in merges.iter().enumerate() {
            let Some((l, r)) = split_merge(line) else {
                continue;
            };
            let (Some(left), Some(right)) = (lookup(l, &extra), lookup(r, &extra)) else {
                continue;
            };
            joined.clear();
            joined.push_str(l);
            joined.push_str(r);
            let result = lookup(&joined, &extra).expect("merge results were interned above");
            table.entry(pair_key(left, right)).or_insert(Merge {
                rank: rank as u32,
                result,
            });
        }

        let mut ascii_token = [None; 128];
        for b in 0x21u8..=0x7E {
            ascii_token[b as usize] = token_to_id.get((b as char).encode_utf8(&mut buf)).copied();
        }
        Bpe {
            merges: table,
            byte_symbol,
            n_vocab,
            ascii_token,
            pre,
        }
    }

    /// Appends the tokens of `text` (a fragment with no special tokens in it) to `out`.
    pub(super) fn encode(
        &self,
        text: &str,
        token_to_id: &HashMap<String, u32>,
        scratch: &mut BpeScratch,
        out: &mut Vec<u32>,
    ) {
        scratch.words.clear();
        self.pre.split(text, &mut scratch.pre, &mut scratch.words);
        let words = core::mem::take(&mut scratch.words);
        for range in &words {
            self.encode_word(&text.as_bytes()[range.clone()], token_to_id, scratch, out);
        }
        scratch.words = words;
    }

    fn encode_word(
        &self,
        word: &[u8],
        token_to_id: &HashMap<String, u32>,
        scratch: &mut BpeScratch,
        out: &mut Vec<u32>,
    ) {
        if self.pre.ignore_merges {
            // A word that is already a token is taken whole (llama.cpp `ignore_merges`).
            let enc = &mut scratch.encoded;
            enc.clear();
            enc.extend(word.iter().map(|&b| BYTE_TO_CHAR[b as usize]));
            if let Some(&id) = token_to_id.get(enc.as_str()) {
                out.push(id);
                return;
            }
        }

        let syms = &mut scratch.symbols;
        syms.clear();
        let n = word.len();
        for (i, &b) in word.iter().enumerate() {
            syms.push(Symbol {
                id: self.byte_symbol[b as usize],
                start: i as u32,
                len: 1,
                prev: i as i32 - 1,
                next: if i + 1 == n { -1 } else { i as i32 + 1 },
            });
        }
        let heap = &mut scratch.heap;
        heap.clear();
        for i in 1..n {
            self.push_pair(syms, heap, i as i32 - 1, i as i32);
        }

        // Lowest rank first, then leftmost (llama.cpp `llm_bigram_bpe::comparator`).
        while let Some(core::cmp::Reverse(p)) = heap.pop() {
            let (l, r) = (p.left as usize, p.right as usize);
            let (ll, rl) = (syms[l].len, syms[r].len);
            // Stale: one side was merged away, or the right side has grown since the pair was queued.
            if ll == 0 || rl == 0 || ll + rl != p.len {
                continue;
            }
            let right_next = syms[r].next;
            syms[l].len += rl;
            syms[l].id = p.result;
            syms[l].next = right_next;
            syms[r].len = 0;
            if right_next >= 0 {
                syms[right_next as usize].prev = l as i32;
            }
            let prev = syms[l].prev;
            self.push_pair(syms, heap, prev, l as i32);
            self.push_pair(syms, heap, l as i32, right_next);
        }

        let mut i = 0i32;
        while i >= 0 {
            let s = &syms[i as usize];
            if s.id < self.n_vocab {
                out.push(s.id);
            } else {
                // Not a token: llama.cpp looks up each byte of the symbol's byte-level UTF-8 text as a
                // one-byte token, which can only succeed for printable ASCII; other bytes are dropped.
                let bytes = &word[s.start as usize..(s.start + s.len) as usize];
                out.extend(
                    bytes
                        .iter()
                        .filter_map(|&b| self.ascii_token.get(b as usize).copied().flatten()),
                );
            }
            i = s.next;
        }
    }

    fn push_pair(
        &self,
        syms: &[Symbol],
        heap: &mut BinaryHeap<core::cmp::Reverse<Pair>>,
        l: i32,
        r: i32,
    ) {
        if l < 0 || r < 0 {
            return;
        }
        let (a, b) = (&syms[l as usize], &syms[r as usize]);
        if let Some(m) = self.merges.get(&pair_key(a.id, b.id)) {
            heap.push(core::cmp::Reverse(Pair {
                rank: m.rank,
                left: l as u32,
                right: r as u32,
                len: a.len + b.len,
                result: m.result,
            }));
        }
    }
}

/// One symbol of the word being merged: a byte range of the word and the id of its text.
#[derive(Debug, Clone, Copy)]
struct Symbol {
    id: u32,
    start: u32,
    /// 0 once merged into its left neighbour.
    len: u32,
    prev: i32,
    next: i32,
}

/// A candidate merge of two adjacent symbols; ordered by rank, then position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Pair {
    rank: u32,
    left: u32,
    right: u32,
    len: u32,
    result: u32,
}

/// Buffers reused across the words of one `encode` call.
#[derive(Debug, Default)]
pub(super) struct BpeScratch {
    pre: Scratch,
    words: Vec<core::ops::Range<usize>>,
    symbols: Vec<Symbol>,
    heap: BinaryHeap<core::cmp::Reverse<Pair>>,
    encoded: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_lines_split_like_llama_cpp() {
        assert_eq!(split_merge("Ġ t"), Some(("Ġ", "t")));
        assert_eq!(split_merge("a b c"), Some(("a", "b c")));
        assert_eq!(split_merge(" a b"), Some((" a", "b")));
        assert_eq!(split_merge("ab"), None);
    }
}
