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
