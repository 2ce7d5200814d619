//! Character classes and the GPT-2 byte-to-character map, as llama.cpp's `src/unicode.cpp` defines them.
//!
//! Owns: the per-code-point class bits the pre-tokenizer splitters test (`\p{L}`, `\p{N}`, `\p{P}`,
//! whitespace) and `bytes_to_unicode`. Does not own: any splitting logic (see `pretokenize`).
//!
//! The classes come from a table generated from Unicode 15.1, the version llama.cpp's
//! `unicode-data.cpp` was generated from, so that newer Unicode versions (Rust's `char` methods track
//! the compiler's) cannot move a code point between classes. Whitespace is the `White_Space` property
//! (llama.cpp's `unicode_set_whitespace`, which is Python `regex`'s `\s`): exactly the set of
//! [`char::is_whitespace`]; note it excludes U+001C..U+001F, which Python's `str.isspace` includes.

use super::unicode_tables::CLASS_RANGES;

/// `\p{L}`.
pub(super) const LETTER: u8 = 1;
/// `\p{N}`.
pub(super) const NUMBER: u8 = 2;
/// `\s` (the `White_Space` property).
pub(super) const SPACE: u8 = 4;
/// `\p{P}`.
pub(super) const PUNCT: u8 = 8;
/// Set on every code point inside the segment being split. llama.cpp's splitters read "no flags" past
/// the end of a segment, and every real code point has at least one flag (unassigned ones are
/// `UNDEFINED`), so `[^\s\p{L}\p{N}]` is "in range and not space, letter or number".
pub(super) const IN: u8 = 16;

/// The class bits of `c` (without [`IN`]).
pub(super) fn class(c: char) -> u8 {
    if c.is_ascii_alphabetic() {
        return LETTER;
    }
    if c.is_ascii_digit() {
        return NUMBER;
    }
    if c.is_whitespace() {
        // No White_Space code point is a letter, number or punctuation.
        return SPACE;
    }
    let cp = c as u32;
    match CLASS_RANGES.binary_search_by(|&(first, last, _)| {
        if last < cp {
            core::cmp::Ordering::Less
        } else if first > cp {
            core::cmp::Ordering::Greater
        } else {
            core::cmp::Ordering::Equal
        }
    }) {
        Ok(i) => CLASS_RANGES[i].2,
        Err(_) => 0,
    }
}

/// GPT-2's `bytes_to_unicode`: printable Latin-1 bytes map to themselves, the other 68 bytes to
/// U+0100.. in byte order (llama.cpp `unicode_byte_to_utf8_map`).
pub(super) const fn byte_to_char_table() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut n = 0u32;
    let mut b = 0usize;
    while b < 256 {
        let printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        let cp = if printable {
            b as u32
        } else {
            n += 1;
            255 + n
        };
        table[b] = match char::from_u32(cp) {
            Some(c) => c,
            None => '\0',
        };
        b += 1;
    }
    table
}

/// Byte -> byte-level character.
pub(super) static BYTE_TO_CHAR: [char; 256] = byte_to_char_table();

/// The bytes that `bytes_to_unicode` remaps to U+0100.., in that order.
const REMAPPED: [u8; 68] = {
    let table = byte_to_char_table();
    let mut out = [0u8; 68];
    let mut b = 0usize;
    while b < 256 {
        let cp = table[b] as u32;
        if cp >= 0x100 {
            out[(cp - 0x100) as usize] = b as u8;
        }
        b += 1;
    }
    out
};

/// Byte-level character -> byte, or `None` for a character outside the 256-character alphabet.
pub(super) fn char_to_byte(c: char) -> Option<u8> {
    let cp = c as u32;
    match cp {
        0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF => Some(cp as u8),
        0x100..=0x143 => Some(REMAPPED[(cp - 0x100) as usize]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_map_is_a_bijection_matching_gpt2() {
        assert_eq!(BYTE_TO_CHAR[b' ' as usize], 'Ġ');
        assert_eq!(BYTE_TO_CHAR[b'\n' as usize], 'Ċ');
        assert_eq!(BYTE_TO_CHAR[b'a' as usize], 'a');
        assert_eq!(BYTE_TO_CHAR[0xAD], '\u{143}'); // the last remapped byte
        for b in 0..=255u8 {
            assert_eq!(char_to_byte(BYTE_TO_CHAR[b as usize]), Some(b));
        }
        assert_eq!(char_to_byte(' '), None);
        assert_eq!(char_to_byte('中'), None);
    }

    #[test]
    fn classes_follow_unicode_15_1() {
        assert_eq!(class('a'), LETTER);
        assert_eq!(class('é'), LETTER);
        assert_eq!(class('中'), LETTER);
        assert_eq!(class('\u{2EBF0}'), LETTER); // CJK Extension I (Unicode 15.1)
        assert_eq!(class('\u{1C89}'), 0); // assigned only in Unicode 16
        assert_eq!(class('7'), NUMBER);
        assert_eq!(class('½'), NUMBER);
        assert_eq!(class('Ⅻ'), NUMBER);
        assert_eq!(class('٣'), NUMBER);
        assert_eq!(class('①'), NUMBER);
        assert_eq!(class('!'), PUNCT);
        assert_eq!(class('«'), PUNCT);
        assert_eq!(class('$'), 0); // Sc, a symbol
        assert_eq!(class('😀'), 0);
        assert_eq!(class('\u{3000}'), SPACE);
        assert_eq!(class('\u{85}'), SPACE);
        assert_eq!(class('\u{1C}'), 0); // not White_Space, unlike Python's str.isspace
        assert_eq!(class('\u{200B}'), 0); // zero-width space is Cf, not White_Space
    }
}
