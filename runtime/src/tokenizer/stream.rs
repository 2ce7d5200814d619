//! Incremental decoding for streaming output: token pieces in, complete UTF-8 text out.
//!
//! Owns: holding back the bytes of a character split across tokens (an emoji's four bytes often
//! arrive as two byte-level tokens). Does not own: the pieces themselves ([`Tokenizer::token_bytes`]).

use super::Tokenizer;
use crate::prelude::*;

/// Turns a stream of token ids into text, never splitting a UTF-8 character.
///
/// The concatenation of everything [`StreamDecoder::push`] and [`StreamDecoder::flush`] return equals
/// `String::from_utf8_lossy` of all the pieces pushed: bytes that can never start or continue a valid
/// character become U+FFFD as soon as that is certain, one per maximal invalid sequence.
#[derive(Debug, Default, Clone)]
pub struct StreamDecoder {
    /// Bytes received but not yet returned: at most the start of one incomplete character
    /// between calls.
    pending: Vec<u8>,
    /// The text returned by the last `push` (its capacity is reused).
    out: String,
}

impl StreamDecoder {
    /// A decoder whose buffers grow on first use; see [`StreamDecoder::for_tokenizer`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A decoder with buffers already sized for the longest piece of `tok`, so that [`Self::push`]
    /// never allocates (the decode loop's allocation-free guarantee relies on this).
    pub fn for_tokenizer(tok: &Tokenizer) -> Self {
        let longest = (0..tok.n_vocab() as u32)
            .map(|id| tok.token_bytes(id).len())
            .max()
            .unwrap_or(0);
        // Pending: an incomplete character (< 4 bytes) plus one piece. Output: every byte of that
        // may become a 3-byte U+FFFD.
        let pending = longest + 4;
        StreamDecoder {
            pending: Vec::with_capacity(pending),
            out: String::with_capacity(3 * pending),
        }
    }

    /// Appends the piece of `id` (left out if it is a control or unknown token and not
    /// `render_special`, as in [`Tokenizer::decode`]) and returns the text now complete. Allocates
    /// only while its buffers grow to the longest piece seen.
    pub fn push<'a>(&'a mut self, tok: &Tokenizer, id: u32, render_special: bool) -> &'a str {
        self.out.clear();
        if tok.renders(id, render_special) {
            self.pending.extend_from_slice(tok.token_bytes(id));
        }
        let mut start = 0;
        loop {
            match core::str::from_utf8(&self.pending[start..]) {
                Ok(s) => {
                    self.out.push_str(s);
                    start = self.pending.len();
                    break;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    let ok = &self.pending[start..start + valid];
                    // `from_utf8` has just validated this prefix.
                    self.out
                        .push_str(core::str::from_utf8(ok).unwrap_or_default());
                    start += valid;
                    match e.error_len() {
                        Some(bad) => {
                            self.out.push(char::REPLACEMENT_CHARACTER);
                            start += bad;
                        }
                        // An incomplete character at the end: wait for the next piece.
                        None => break,
                    }
                }
            }
        }
        self.pending.drain(..start);
        &self.out
    }

    /// Returns whatever is left (an incomplete character becomes U+FFFD) and resets the decoder.
    pub fn flush(&mut self) -> String {
        self.finish().to_string()
    }

    /// [`StreamDecoder::flush`] into the decoder's own buffer: the text stays borrowed until the
    /// next call, and nothing is allocated (what is left is at most one incomplete character).
    pub fn finish(&mut self) -> &str {
        self.out.clear();
        for chunk in self.pending.utf8_chunks() {
            self.out.push_str(chunk.valid());
            if !chunk.invalid().is_empty() {
                self.out.push(char::REPLACEMENT_CHARACTER);
            }
        }
        self.pending.clear();
        &self.out
    }

    /// Drops any pending bytes without returning them, keeping the buffers.
    pub fn reset(&mut self) {
        self.pending.clear();
        self.out.clear();
    }
}
