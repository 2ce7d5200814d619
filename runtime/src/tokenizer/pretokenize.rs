//! Pre-tokenizers: split raw text into the words that byte-level BPE then merges inside.
//!
//! Owns: the `tokenizer.ggml.pre` name table and the hand-written scanners that stand in for each
//! pre-tokenizer's regex list, as llama.cpp's `llm_tokenizer_bpe` (src/llama-vocab.cpp) and
//! `unicode_regex_split` (src/unicode.cpp) apply them. Does not own: special-token splitting (done
//! before, in `mod.rs`) or the byte-level mapping and merges (`bpe`).
//!
//! llama.cpp applies a list of regexes in order; each one splits every segment the previous ones
//! produced, keeping both the matches and the text between them, and never looks across a segment
//! boundary (lookaheads see the end of the segment as the end of input). The GPT-2 and Llama-3
//! patterns run through hand-written scanners there (`unicode_regex_split_custom_gpt2` and `_llama3`);
//! the others run through `std::regex` on a "collapsed" text in which every non-ASCII code point
//! stands for its category. Each pass below reproduces one of those, quirks included.

use super::unicode::{class, IN, LETTER, NUMBER, PUNCT, SPACE};
use crate::prelude::*;

/// One regex of a pre-tokenizer's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)` (llama.cpp's custom
    /// GPT-2 scanner; the trailing `|\s+` is implied).
    Gpt2,
    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max_digits}|
    /// ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+` (Llama 3 with 3 digits; Qwen2 with 1).
    Llama3 { max_digits: usize },
    /// `\p{N}`: every number code point alone.
    EachNumber,
    /// `\p{N}+`.
    NumberRuns,
    /// `[0-9][0-9][0-9]`.
    AsciiDigitTriples,
    /// `[\p{P}\$\+<=>\^~\|]+`, with `` ` `` added when `backtick` (Falcon).
    PunctRuns { backtick: bool },
}

/// A pre-tokenizer: its regex list and whether a word that is already a token skips the merges
/// (llama.cpp `ignore_merges`, set for the Llama-3 family).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PreTokenizer {
    passes: &'static [Pass],
    pub(super) ignore_merges: bool,
}

const DEFAULT: &[Pass] = &[
    Pass::PunctRuns { backtick: false },
    Pass::Gpt2,
    Pass::NumberRuns,
    Pass::AsciiDigitTriples,
];
const GPT2: &[Pass] = &[Pass::Gpt2];
const FALCON: &[Pass] = &[
    Pass::PunctRuns { backtick: true },
    Pass::Gpt2,
    Pass::AsciiDigitTriples,
];
const SMOLLM: &[Pass] = &[Pass::EachNumber, Pass::Gpt2];
const LLAMA3: &[Pass] = &[Pass::Llama3 { max_digits: 3 }];
const QWEN2: &[Pass] = &[Pass::Llama3 { max_digits: 1 }];

impl PreTokenizer {
    /// The pre-tokenizer llama.cpp selects for `tokenizer.ggml.pre` = `name` (an empty name is
    /// llama.cpp's fallback, "default"), or `None` for a name not supported here.
    pub(super) fn from_name(name: &str) -> Option<PreTokenizer> {
        let (passes, ignore_merges) = match name {
            "" | "default" => (DEFAULT, false),
            // "gpt-2" is llama.cpp's name; "gpt2" is accepted as an alias.
            "gpt2" | "gpt-2" | "phi-2" | "mpt" | "olmo" => (GPT2, false),
            "falcon" => (FALCON, false),
            "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone"
            | "minerva-7b" => (SMOLLM, false),
            "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "pixtral" => (LLAMA3, true),
            "dbrx" | "smaug-bpe" => (LLAMA3, false),
            "qwen2" | "deepseek-r1-qwen" | "megrez" | "stablelm2" => (QWEN2, false),
            _ => return None,
        };
        Some(PreTokenizer {
            passes,
            ignore_merges,
        })
    }

    /// Splits `text` into words and appends their byte ranges (in order, covering all of `text`)
    /// to `words`.
    pub(super) fn split(
        &self,
        text: &str,
        scratch: &mut Scratch,
        words: &mut Vec<core::ops::Range<usize>>,
    ) {
        let Scratch {
            cps,
            cls,
            offs,
            ends,
            next,
        } = scratch;
        cps.clear();
        cls.clear();
        offs.clear();
        for (off, c) in text.char_indices() {
            cps.push(c);
            cls.push(class(c) | IN);
            offs.push(off);
        }
        offs.push(text.len());
        if cps.is_empty() {
            return;
        }

        // Segments are kept as their end positions (code point indices); the first starts at 0.
        ends.clear();
        ends.push(cps.len());
        for &pass in self.passes {
            next.clear();
            let mut ini = 0;
            for &end in ends.iter() {
                let mut seg = Segment {
                    cps,
                    cls,
                    end,
                    last: ini,
                    out: next,
                };
                seg.run(pass, ini);
                debug_assert_eq!(seg.last, end, "a pass must cover its segment");
                ini = end;
            }
            core::mem::swap(ends, next);
        }

        let mut ini = 0;
        for &end in ends.iter() {
            words.push(offs[ini]..offs[end]);
            ini = end;
        }
    }
}

/// Buffers reused across calls to [`PreTokenizer::split`].
#[derive(Debug, Default)]
pub(super) struct Scratch {
    cps: Vec<char>,
    /// Class bits of each code point, with [`IN`] set.
    cls: Vec<u8>,
    /// Byte offset of each code point, then the text length.
    offs: Vec<usize>,
    ends: Vec<usize>,
    next: Vec<usize>,
}

/// One segment `[start, end)` being split by one pass.
struct Segment<'a> {
    cps: &'a [char],
    cls: &'a [u8],
    end: usize,
    /// End of the last piece emitted.
    last: usize,
    out: &'a mut Vec<usize>,
}

impl Segment<'_> {
    /// Class bits at `i`, or 0 past the segment (llama.cpp `_get_flags` returns empty flags there).
    #[inline]
    fn f(&self, i: usize) -> u8 {
        if i < self.end {
            self.cls[i]
        } else {
            0
        }
    }

    /// Ends the current piece at `pos` (empty pieces are dropped, as `_add_token` does).
    #[inline]
    fn emit(&mut self, pos: usize) {
        debug_assert!(self.last <= pos && pos <= self.end);
        if pos > self.last {
            self.out.push(pos);
            self.last = pos;
        }
    }

    fn run(&mut self, pass: Pass, start: usize) {
        match pass {
            Pass::Gpt2 => self.gpt2(start),
            Pass::Llama3 { max_digits } => self.llama3(start, max_digits),
            Pass::EachNumber => self.runs(start, |_, f| f & NUMBER != 0, true),
            Pass::NumberRuns => self.runs(start, |_, f| f & NUMBER != 0, false),
            Pass::PunctRuns { backtick } => self.runs(
                start,
                move |c, f| {
                    if c.is_ascii() {
                        c.is_ascii_punctuation() && (backtick || c != '`')
                    } else {
                        f & PUNCT != 0
                    }
                },
                false,
            ),
            Pass::AsciiDigitTriples => {
                let mut pos = start;
                while pos < self.end {
                    if pos + 3 <= self.end
                        && self.cps[pos..pos + 3].iter().all(char::is_ascii_digit)
                    {
                        self.emit(pos);
                        pos += 3;
                        self.emit(pos);
                    } else {
                        pos += 1;
                    }
                }
            }
        }
        let end = self.end;
        self.emit(end);
    }

    /// Matches of a one-class regex (`[class]+`, or `[class]` when `single`), with the text between
    /// them kept as pieces of their own.
    fn runs(&mut self, start: usize, is_in: impl Fn(char, u8) -> bool, single: bool) {
        let mut pos = start;
        while pos < self.end {
            if is_in(self.cps[pos], self.cls[pos]) {
                self.emit(pos);
                pos += 1;
                while !single && pos < self.end && is_in(self.cps[pos], self.cls[pos]) {
                    pos += 1;
                }
                self.emit(pos);
            } else {
                pos += 1;
            }
        }
    }

    /// `'s|'t|'re|'ve|'m|'ll|'d` (case-sensitive, or ASCII-case-insensitive for Llama 3: llama.cpp
    /// lowercases with `unicode_tolower`, and only ASCII capitals lowercase to these letters).
    /// Returns the contraction's length in code points, or 0.
    fn contraction(&self, pos: usize, fold: bool) -> usize {
        if self.cps[pos] != '\'' || pos + 1 >= self.end {
            return 0;
        }
        let low = |c: char| if fold { c.to_ascii_lowercase() } else { c };
        let c1 = low(self.cps[pos + 1]);
        if matches!(c1, 's' | 't' | 'm' | 'd') {
            return 2;
        }
        if pos + 2 < self.end {
            let c2 = low(self.cps[pos + 2]);
            if matches!((c1, c2), ('r', 'e') | ('v', 'e') | ('l', 'l')) {
                return 3;
            }
        }
        0
    }

    /// Length of the whitespace run at `pos`.
    fn spaces(&self, pos: usize) -> usize {
        let mut n = 0;
        while self.f(pos + n) & SPACE != 0 {
            n += 1;
        }
        n
    }

    /// llama.cpp `unicode_regex_split_custom_gpt2`.
    fn gpt2(&mut self, start: usize) {
        const WORDISH: u8 = SPACE | LETTER | NUMBER;
        let mut pos = start;
        while pos < self.end {
            let c = self.cps[pos];
            let n = self.contraction(pos, false);
            if n > 0 {
                pos += n;
                self.emit(pos);
                continue;
            }
            // ` ?X+` for X in {letter, number, other}: an optional leading space joins the run.
            let f2 = if c == ' ' {
                self.f(pos + 1)
            } else {
                self.f(pos)
            };
            let run_of = if f2 & LETTER != 0 {
                Some(LETTER)
            } else if f2 & NUMBER != 0 {
                Some(NUMBER)
            } else if f2 & WORDISH == 0 && f2 & IN != 0 {
                Some(0)
            } else {
                None
            };
            if let Some(kind) = run_of {
                pos += usize::from(c == ' ');
                loop {
                    let g = self.f(pos);
                    let more = if kind == 0 {
                        g & WORDISH == 0 && g & IN != 0
                    } else {
                        g & kind != 0
                    };
                    if !more {
                        break;
                    }
                    pos += 1;
                }
                self.emit(pos);
                continue;
            }
            let n = self.spaces(pos);
            if n > 1 && pos + n < self.end {
                // `\s+(?!\S)`: leave the last space to prefix the next word.
                pos += n - 1;
            } else if n > 0 {
                pos += n;
            } else {
                pos += 1;
            }
            self.emit(pos);
        }
    }

    /// llama.cpp `unicode_regex_split_custom_llama3`, with the digit group length a parameter
    /// (Qwen2's `\p{N}` runs through `std::regex` there, with the same result as `max_digits` = 1).
    fn llama3(&mut self, start: usize, max_digits: usize) {
        const WORDISH: u8 = SPACE | LETTER | NUMBER;
        let mut pos = start;
        while pos < self.end {
            let c = self.cps[pos];
            let f = self.f(pos);
            let n = self.contraction(pos, true);
            if n > 0 {
                pos += n;
                self.emit(pos);
                continue;
            }
            // `[^\r\n\p{L}\p{N}]?\p{L}+`
            if !(c == '\r' || c == '\n' || f & NUMBER != 0)
                && (f & LETTER != 0 || self.f(pos + 1) & LETTER != 0)
            {
                pos += 1;
                while self.f(pos) & LETTER != 0 {
                    pos += 1;
                }
                self.emit(pos);
                continue;
            }
            // `\p{N}{1,max_digits}`
            if f & NUMBER != 0 {
                let mut group = pos;
                while self.f(pos) & NUMBER != 0 {
                    pos += 1;
                    if pos - group >= max_digits {
                        self.emit(pos);
                        group = pos;
                    }
                }
                self.emit(pos);
                continue;
            }
            // ` ?[^\s\p{L}\p{N}]+[\r\n]*` (llama.cpp tests the first code point's own flags here,
            // so a lone space at the end of a segment becomes a piece of its own).
            let f2 = if c == ' ' { self.f(pos + 1) } else { f };
            if f2 & WORDISH == 0 && f & IN != 0 {
                pos += usize::from(c == ' ');
                while self.f(pos) & WORDISH == 0 && self.f(pos) & IN != 0 {
                    pos += 1;
                }
                while pos < self.end && matches!(self.cps[pos], '\r' | '\n') {
                    pos += 1;
                }
                self.emit(pos);
                continue;
            }
            let mut n = 0;
            let mut after_newline = None;
            while self.f(pos + n) & SPACE != 0 {
                if matches!(self.cps[pos + n], '\r' | '\n') {
                    after_newline = Some(pos + n + 1);
                }
                n += 1;
            }
            if let Some(p) = after_newline {
                // `\s*[\r\n]+`
                pos = p;
            } else if n > 1 && pos + n < self.end {
                // `\s+(?!\S)`
                pos += n - 1;
            } else if n > 0 {
                pos += n;
            } else {
                pos += 1;
            }
            self.emit(pos);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(pre: &str, text: &str) -> Vec<String> {
        let p = PreTokenizer::from_name(pre).unwrap();
        let mut out = Vec::new();
        p.split(text, &mut Scratch::default(), &mut out);
        out.into_iter().map(|r| text[r].to_string()).collect()
    }

    #[test]
    fn gpt2_pattern() {
        assert_eq!(
            words("gpt2", "Hello world's  end!! 123\n\n x"),
            ["Hello", " world", "'s", " ", " end", "!!", " 123", "\n\n", " x"]
        );
        assert_eq!(words("gpt2", "a  "), ["a", "  "]);
        assert_eq!(words("gpt2", " "), [" "]);
        assert_eq!(words("gpt2", "'S"), ["'", "S"]);
        assert_eq!(words("gpt2", "😀😀 x"), ["😀😀", " x"]);
    }

    #[test]
    fn smollm_splits_each_digit_first() {
        assert_eq!(words("smollm", "  123"), ["  ", "1", "2", "3"]);
        assert_eq!(words("smollm", "a½b ٣4"), ["a", "½", "b", " ", "٣", "4"]);
    }

    #[test]
    fn llama3_and_qwen2_patterns() {
        assert_eq!(
            words("llama3", "I'M 12345 ok\r\n\n  hi ...\n"),
            ["I", "'M", " ", "123", "45", " ok", "\r\n\n", " ", " hi", " ...\n"]
        );
        assert_eq!(words("qwen2", "x 123"), ["x", " ", "1", "2", "3"]);
        assert_eq!(words("llama3", "a "), ["a", " "]);
    }

    #[test]
    fn default_pattern() {
        assert_eq!(
            words("default", "a+b 12345"),
            ["a", "+", "b", " ", "123", "45"]
        );
        assert_eq!(words("default", "x...`y"), ["x", "...", "`", "y"]);
        assert_eq!(words("falcon", "x...`y"), ["x", "...`", "y"]);
    }
}
