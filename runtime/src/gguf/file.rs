//! Memory-mapped GGUF files. The mapping is read-only and lives as long as the [`GgufFile`]; models
//! borrow their weights from it, so nothing is copied out of the file.

use crate::{Error, Result};
use std::path::Path;

/// A GGUF file mapped into memory.
#[derive(Debug)]
pub struct GgufFile {
    path: String,
    map: memmap2::Mmap,
}

impl GgufFile {
    /// Maps the file at `path` read-only. Parse it with [`GgufFile::parse`].
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile> {
        let path_ref = path.as_ref();
        let shown = path_ref.display().to_string();
        let io = |e: std::io::Error| Error::Io {
            path: shown.clone(),
            what: e.to_string(),
        };
        let file = std::fs::File::open(path_ref).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        if !meta.is_file() {
            return Err(Error::Io {
                path: shown,
                what: "not a regular file".into(),
            });
        }
        // SAFETY: the mapping is read-only and private to this process. Another process truncating or
        // rewriting the file while it is mapped would change the bytes under us (the usual caveat of
        // every mmap-based model loader, llama.cpp included); ingot never writes to files it maps, and
        // all bytes are validated by `Gguf::parse` before use.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        Ok(GgufFile { path: shown, map })
    }

    /// The mapped bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// The path the file was opened from.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Tells the OS that `part` (a sub-slice of [`GgufFile::bytes`]) will not be read for a while,
    /// so its pages leave this process's resident set (used for weights a model has repacked).
    /// The bytes stay valid: a later read faults them back in from the file. Returns false (and
    /// does nothing) when `part` is not inside the mapping or the OS refuses.
    pub fn release(&self, part: &[u8]) -> bool {
        let base = self.map.as_ptr() as usize;
        let start = part.as_ptr() as usize;
        let Some(off) = start.checked_sub(base) else {
            return false;
        };
        if part.is_empty() || off + part.len() > self.map.len() {
            return false;
        }
        // SAFETY: `map` is a read-only *shared* file mapping (`Mmap::map`). MADV_DONTNEED on it only
        // drops this process's page-table entries for the range (memmap2 widens it to whole
        // pages); the next access reads the same bytes back from the page cache or the file, so
        // every `&[u8]` borrowed from the mapping keeps seeing unchanged contents. (On private or
        // anonymous memory DONTNEED would zero pages; this mapping is neither.)
        unsafe {
            self.map
                .unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, off, part.len())
        }
        .is_ok()
    }

    /// Parses the mapped bytes. Errors are the parser's, with the file's path prepended to the message.
    pub fn parse(&self) -> Result<super::Gguf<'_>> {
        super::Gguf::parse(&self.map).map_err(|e| match e {
            Error::Gguf { offset, what } => Error::Gguf {
                offset,
                what: format!("{}: {what}", self.path),
            },
            other => other,
        })
    }
}
