//! The training corpus on disk: which files make it up, their concatenated text, a content hash that
//! identifies it, and a cache of its token ids keyed by that hash and the tokenizer. Sampling windows
//! and the train/validation split live in `data.rs`.
//!
//! Sources: each path is a text file (any name) or a directory, of which every `*.txt` directly inside
//! is taken, in byte order of the file names. The corpus is the files' UTF-8 texts concatenated in the
//! order given, with nothing inserted between them.
//!
//! Token cache file (`tokens-<first 16 hex digits of the key>.bin`, little-endian):
//! ```text
//! 0   8  magic "INGOTTOK"
//! 8   4  u32 version = 1
//! 12  4  u32 reserved = 0
//! 16 32  key: SHA-256 of "ingot-token-cache 1\n", the tokenizer's fingerprint, "\n", the corpus hash
//!        (fingerprint: "char " + the characters, or "bpe " + SHA-256 of the tokens, types and merges)
//! 48  8  u64 n: number of ids
//! 56 32  SHA-256 of the ids' bytes
//! 88 4n  ids, u32 each
//! ```
//! An entry whose header, length or checksum disagrees is ignored and rewritten, never trusted.

use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::data::TextTokenizer;
use crate::error::{Error, Result};
use crate::files;

const CACHE_MAGIC: &[u8; 8] = b"INGOTTOK";
const CACHE_VERSION: u32 = 1;
const CACHE_HEADER: usize = 88;

/// The files of a corpus and their text.
#[derive(Debug, Clone)]
pub struct Corpus {
    /// The files read, in concatenation order.
    pub files: Vec<PathBuf>,
    /// Their texts, concatenated.
    pub text: String,
    /// SHA-256 (hex) over each file's byte length (u64 LE) and bytes, in order: the corpus's identity
    /// (file names do not enter it).
    pub sha256: String,
}

/// The files `sources` name: a file as itself, a directory as its `*.txt` files sorted by name.
pub fn list_files(sources: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for src in sources {
        let meta = fs::metadata(src).map_err(|e| Error::io(src, e))?;
        if !meta.is_dir() {
            out.push(src.clone());
            continue;
        }
        let mut txt: Vec<PathBuf> = fs::read_dir(src)
            .map_err(|e| Error::io(src, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "txt"))
            .collect();
        if txt.is_empty() {
            return Err(Error::Data {
                what: format!("directory {} holds no .txt file", src.display()),
            });
        }
        txt.sort();
        out.extend(txt);
    }
    if out.is_empty() {
        return Err(Error::Data {
            what: "no data sources given".into(),
        });
    }
    Ok(out)
}

/// Reads the corpus `sources` name (see [`list_files`]); every file must be UTF-8.
pub fn read_corpus(sources: &[PathBuf]) -> Result<Corpus> {
    let files = list_files(sources)?;
    let mut text = String::new();
    let mut hash = Sha256::new();
    for f in &files {
        let bytes = files::read(f)?;
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(&bytes);
        let s = String::from_utf8(bytes).map_err(|e| Error::Data {
            what: format!(
                "{} is not UTF-8 text (invalid byte at offset {})",
                f.display(),
                e.utf8_error().valid_up_to()
            ),
        })?;
        text.push_str(&s);
    }
    if text.is_empty() {
        return Err(Error::Data {
            what: "the corpus is empty".into(),
        });
    }
    Ok(Corpus {
        files,
        text,
        sha256: files::hex(&hash.finalize()),
    })
}

/// The text a tokenizer is trained on: the first `1 - val_fraction` of the corpus's bytes, cut back
/// to a character boundary, so that validation text does not shape the vocabulary. (The token
/// stream is split at `1 - val_fraction` of its *tokens*, so the two cuts are near each other, not
/// at the same byte.)
pub fn tokenizer_text(text: &str, val_fraction: f64) -> &str {
    let mut cut = ((text.len() as f64) * (1.0 - val_fraction)).round() as usize;
    cut = cut.min(text.len());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    &text[..cut]
}

/// Where the ids came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Read from a valid cache entry.
    Hit,
    /// Tokenized now and written to the cache.
    Stored,
    /// Tokenized now; no cache directory was given.
    Uncached,
}

/// The cache key of `corpus` under `tok`.
fn cache_key(corpus: &Corpus, tok: &TextTokenizer) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(format!("ingot-token-cache {CACHE_VERSION}\n").as_bytes());
    h.update(tok.fingerprint().as_bytes());
    h.update(b"\n");
    h.update(corpus.sha256.as_bytes());
    h.finalize().into()
}

/// The token ids of `corpus` under `tok`: from `cache_dir` when it holds a valid entry, otherwise
/// tokenized and (with a `cache_dir`) stored there atomically for next time.
pub fn tokenize_cached(
    corpus: &Corpus,
    tok: &TextTokenizer,
    cache_dir: Option<&Path>,
) -> Result<(Vec<u32>, CacheOutcome)> {
    let key = cache_key(corpus, tok);
    let Some(dir) = cache_dir else {
        return Ok((tok.encode(&corpus.text)?, CacheOutcome::Uncached));
    };
    let path = dir.join(format!("tokens-{}.bin", &files::hex(&key)[..16]));
    if let Ok(bytes) = fs::read(&path) {
        if let Some(ids) = parse_cache(&bytes, &key) {
            return Ok((ids, CacheOutcome::Hit));
        }
    }
    let ids = tok.encode(&corpus.text)?;
    let body: Vec<u8> = ids.iter().flat_map(|id| id.to_le_bytes()).collect();
    let mut bytes = Vec::with_capacity(CACHE_HEADER + body.len());
    bytes.extend_from_slice(CACHE_MAGIC);
    bytes.extend_from_slice(&CACHE_VERSION.to_le_bytes());
    bytes.extend_from_slice(&0u32.to_le_bytes());
    bytes.extend_from_slice(&key);
    bytes.extend_from_slice(&(ids.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&Sha256::digest(&body));
    bytes.extend_from_slice(&body);
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    files::atomic_write(&path, &bytes)?;
    Ok((ids, CacheOutcome::Stored))
}

/// The ids of a cache entry, if it is whole and made for `key`.
fn parse_cache(bytes: &[u8], key: &[u8; 32]) -> Option<Vec<u32>> {
    let header = bytes.get(..CACHE_HEADER)?;
    let u32_at = |o: usize| u32::from_le_bytes(header[o..o + 4].try_into().expect("4 bytes"));
    if &header[..8] != CACHE_MAGIC || u32_at(8) != CACHE_VERSION || &header[16..48] != key {
        return None;
    }
    let n = u64::from_le_bytes(header[48..56].try_into().expect("8 bytes"));
    let body = &bytes[CACHE_HEADER..];
    if n.checked_mul(4)? != body.len() as u64 || Sha256::digest(body)[..] != header[56..88] {
        return None;
    }
    Some(
        body.chunks_exact(4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_round_trip_and_rejects_damage() {
        let dir = std::env::temp_dir().join(format!("ingot-corpus-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("b.txt"), "second\n").unwrap();
        fs::write(dir.join("a.txt"), "first\n").unwrap();
        fs::write(dir.join("skip.md"), "not text data").unwrap();
        let corpus = read_corpus(std::slice::from_ref(&dir)).unwrap();
        assert_eq!(corpus.text, "first\nsecond\n");
        let tok = TextTokenizer::Char(crate::data::CharTokenizer::from_text(&corpus.text));
        let cache = dir.join("cache");
        let (ids, how) = tokenize_cached(&corpus, &tok, Some(&cache)).unwrap();
        assert_eq!(how, CacheOutcome::Stored);
        assert_eq!(tok.decode(&ids), corpus.text);
        let (again, how) = tokenize_cached(&corpus, &tok, Some(&cache)).unwrap();
        assert_eq!((again, how), (ids.clone(), CacheOutcome::Hit));
        // A damaged entry is rewritten, not trusted.
        let entry = fs::read_dir(&cache)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let mut bytes = fs::read(&entry).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        fs::write(&entry, &bytes).unwrap();
        let (fixed, how) = tokenize_cached(&corpus, &tok, Some(&cache)).unwrap();
        assert_eq!((fixed, how), (ids, CacheOutcome::Stored));
        fs::remove_dir_all(&dir).unwrap();
    }
}
