//! The trainer's one error type. Bad input (a configuration, a corpus, a token id) becomes an `Error`;
//! a broken internal contract (mismatched buffer lengths) is a bug and panics.

use core::fmt;

/// Everything that can go wrong while setting up or running training.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// The model configuration is inconsistent (e.g. heads that do not divide the width).
    Config { what: String },
    /// A batch that does not fit the model: token id out of range, sequence too long, wrong length.
    Batch { what: String },
    /// The training data is unusable (too short for one window, empty).
    Data { what: String },
    /// Reading or writing a file failed (`path` names it).
    Io { path: String, what: String },
    /// A checkpoint is missing, truncated, corrupted, of another version or inconsistent with itself.
    Checkpoint { path: String, what: String },
}

/// `Result` with the trainer's [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config { what } => write!(f, "model configuration: {what}"),
            Error::Batch { what } => write!(f, "batch: {what}"),
            Error::Data { what } => write!(f, "training data: {what}"),
            Error::Io { path, what } => write!(f, "{path}: {what}"),
            Error::Checkpoint { path, what } => write!(f, "checkpoint {path}: {what}"),
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    /// An I/O failure on `path`.
    pub fn io(path: &std::path::Path, e: impl fmt::Display) -> Self {
        Error::Io {
            path: path.display().to_string(),
            what: e.to_string(),
        }
    }
}
