//! Tensor-name patterns for `--tensor-type PATTERN=TYPE`: a small glob, searched anywhere in the name.
//!
//! llama.cpp's `llama-quantize --tensor-type` compiles PATTERN as a `std::regex` and applies it with
//! `std::regex_search` (`llama_tensor_get_type` in `src/llama-quant.cpp`), so a plain `attn_v` matches
//! every `blk.N.attn_v.weight`. ingot keeps that *search* behaviour but, instead of a regex engine,
//! reads PATTERN as a glob:
//!
//! | syntax | matches |
//! |---|---|
//! | `*` | any run of characters, including none |
//! | `?` | any one character |
//! | `[abc]`, `[0-9]`, `[!0-9]` | one character from (or, with `!`/`^`, not from) the set |
//! | `^` at the start, `$` at the end | anchors the match to the start / end of the name |
//! | `\x` | `x` literally |
//! | anything else, `.` included | itself |
//!
//! So `blk.1[0-5].ffn_down` selects the `ffn_down` of layers 10 to 15 and `^output.weight$` only the
//! output head. Differences from llama.cpp's regex: `.` is a literal dot (in tensor names a literal dot
//! is what one means), and there is no alternation or repetition of a sub-pattern.

use crate::{Error, Result};

/// One element of a compiled pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Atom {
    Char(char),
    Any,
    Star,
    /// Character ranges (single characters are `(c, c)`), negated or not.
    Set {
        ranges: Vec<(char, char)>,
        negated: bool,
    },
}

/// A compiled tensor-name pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    source: String,
    atoms: Vec<Atom>,
    anchored_start: bool,
    anchored_end: bool,
}

impl Pattern {
    /// Compiles `src`; errors on an empty pattern, an unclosed `[` or a trailing `\`.
    pub fn new(src: &str) -> Result<Pattern> {
        let bad = |what: &str| Error::BadOverride {
            spec: src.to_string(),
            what: what.to_string(),
        };
        let mut body = src;
        let anchored_start = body.starts_with('^');
        if anchored_start {
            body = &body[1..];
        }
        let anchored_end = body.ends_with('$') && !body.ends_with("\\$");
        if anchored_end {
            body = &body[..body.len() - 1];
        }
        let mut atoms = Vec::new();
        let mut it = body.chars();
        while let Some(c) = it.next() {
            atoms.push(match c {
                '*' => Atom::Star,
                '?' => Atom::Any,
                '\\' => Atom::Char(it.next().ok_or_else(|| bad("pattern ends with `\\`"))?),
                '[' => {
                    let mut ranges = Vec::new();
                    let mut negated = false;
                    let mut first = true;
                    loop {
                        let c = it.next().ok_or_else(|| bad("unclosed `[`"))?;
                        match c {
                            '!' | '^' if first => negated = true,
                            ']' if !first || !ranges.is_empty() => break,
                            _ => {
                                // `a-z` is a range unless `-` is last (`[a-]`).
                                let mut look = it.clone();
                                if look.next() == Some('-') {
                                    if let Some(hi) = look.next().filter(|&h| h != ']') {
                                        it = look;
                                        ranges.push((c, hi));
                                        first = false;
                                        continue;
                                    }
                                }
                                ranges.push((c, c));
                            }
                        }
                        first = false;
                    }
                    if ranges.is_empty() {
                        return Err(bad("empty character set `[]`"));
                    }
                    Atom::Set { ranges, negated }
                }
                c => Atom::Char(c),
            });
        }
        if atoms.is_empty() && !anchored_start && !anchored_end {
            return Err(bad("empty pattern"));
        }
        Ok(Pattern {
            source: src.to_string(),
            atoms,
            anchored_start,
            anchored_end,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the pattern occurs in `name` (anywhere, unless anchored).
    pub fn is_match(&self, name: &str) -> bool {
        let s: Vec<char> = name.chars().collect();
        if self.anchored_start {
            return self.match_here(0, &s, 0);
        }
        (0..=s.len()).any(|start| self.match_here(0, &s, start))
    }

    /// Backtracking match of `atoms[a..]` against `s[i..]`; stars try the shortest run first.
    fn match_here(&self, a: usize, s: &[char], i: usize) -> bool {
        let Some(atom) = self.atoms.get(a) else {
            return !self.anchored_end || i == s.len();
        };
        match atom {
            Atom::Star => (i..=s.len()).any(|j| self.match_here(a + 1, s, j)),
            _ => i < s.len() && atom_matches(atom, s[i]) && self.match_here(a + 1, s, i + 1),
        }
    }
}

fn atom_matches(atom: &Atom, c: char) -> bool {
    match atom {
        Atom::Char(x) => *x == c,
        Atom::Any => true,
        Atom::Set { ranges, negated } => {
            ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&c)) != *negated
        }
        Atom::Star => unreachable!("handled by the caller"),
    }
}

#[cfg(test)]
mod tests {
    use super::Pattern;

    fn m(p: &str, name: &str) -> bool {
        Pattern::new(p).unwrap().is_match(name)
    }

    #[test]
    fn plain_text_is_searched_anywhere() {
        assert!(m("attn_v", "blk.3.attn_v.weight"));
        assert!(!m("attn_v", "blk.3.attn_k.weight"));
        assert!(m("weight", "output.weight"));
    }

    #[test]
    fn wildcards_sets_and_anchors() {
        assert!(m("blk.*.ffn_down", "blk.12.ffn_down.weight"));
        assert!(m("blk.1[0-5].ffn_down", "blk.15.ffn_down.weight"));
        assert!(!m("blk.1[0-5].ffn_down", "blk.16.ffn_down.weight"));
        assert!(!m("blk.1[0-5].ffn_down", "blk.1.ffn_down.weight"));
        assert!(m("blk.[!0].attn_q", "blk.7.attn_q.weight"));
        assert!(!m("blk.[!0].attn_q", "blk.0.attn_q.weight"));
        assert!(m("^output.weight$", "output.weight"));
        assert!(!m("^output.weight$", "output_norm.weight"));
        assert!(!m("^output", "blk.0.attn_output.weight"));
        assert!(m("output.weight$", "blk.0.attn_output.weight"));
        assert!(m("attn_?.weight", "blk.0.attn_k.weight"));
        assert!(m("\\*", "a*b"));
        assert!(!m("\\*", "ab"));
        assert!(m("[a-]x", "-x"));
    }

    #[test]
    fn malformed_patterns_are_errors() {
        for p in ["", "[0-9", "abc\\", "[]"] {
            assert!(Pattern::new(p).is_err(), "{p:?}");
        }
    }
}
