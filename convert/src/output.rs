//! Atomic output files: everything is written to a temporary file in the destination's directory,
//! which is flushed, `fsync`ed and renamed over the destination only when complete. An error (or a
//! panic, or dropping the [`AtomicFile`] without [`AtomicFile::commit`]) deletes the temporary file, so
//! a failed conversion never leaves a partial output, and an existing file at the destination is
//! untouched until the rename replaces it whole. A process killed outright (SIGKILL, power loss) can
//! leave the temporary file behind: its name starts with `.` and ends in `.ingot-tmp`.

use crate::error::io;
use crate::Result;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// A file being written to a temporary path next to its destination.
#[derive(Debug)]
pub struct AtomicFile {
    dest: PathBuf,
    tmp: PathBuf,
    /// `None` once committed.
    file: Option<BufWriter<File>>,
}

impl AtomicFile {
    /// Creates the temporary file `.{name}.{pid}-{n}.ingot-tmp` in the directory of `dest`.
    pub fn create(dest: &Path) -> Result<AtomicFile> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = dest.file_name().ok_or_else(|| crate::Error::Io {
            path: dest.display().to_string(),
            what: "output path has no file name".into(),
        })?;
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp = dir.join(format!(
            ".{}.{}-{}.ingot-tmp",
            name.to_string_lossy(),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| io(dest, e))?;
        Ok(AtomicFile {
            dest: dest.to_path_buf(),
            tmp,
            file: Some(BufWriter::with_capacity(1 << 20, file)),
        })
    }

    /// The writer for the contents.
    pub fn writer(&mut self) -> &mut BufWriter<File> {
        self.file.as_mut().expect("not committed")
    }

    /// The temporary path (for tests and messages).
    pub fn temp_path(&self) -> &Path {
        &self.tmp
    }

    /// Flushes, `fsync`s and renames the temporary file to the destination, then `fsync`s the
    /// directory so the rename itself is durable (best effort: not every platform can open a
    /// directory).
    pub fn commit(mut self) -> Result<()> {
        let w = self.file.take().expect("not committed");
        let file = w.into_inner().map_err(|e| io(&self.tmp, e.into_error()))?;
        file.sync_all().map_err(|e| io(&self.tmp, e))?;
        drop(file);
        std::fs::rename(&self.tmp, &self.dest).map_err(|e| io(&self.dest, e))?;
        if let Some(dir) = self.dest.parent().filter(|p| !p.as_os_str().is_empty()) {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.writer().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.writer().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ingot-atomic-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn commit_renames_and_drop_removes() {
        let d = dir("a");
        let dest = d.join("out.gguf");
        let mut f = AtomicFile::create(&dest).unwrap();
        f.write_all(b"hello").unwrap();
        assert!(!dest.exists());
        f.commit().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello");

        let mut f = AtomicFile::create(&dest).unwrap();
        f.write_all(b"partial").unwrap();
        let tmp = f.temp_path().to_path_buf();
        assert!(tmp.exists());
        drop(f);
        assert!(!tmp.exists());
        // The earlier file is untouched.
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello");
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn missing_directory_is_an_error() {
        let d = dir("b");
        assert!(AtomicFile::create(&d.join("no/such/dir/out.gguf")).is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
