//! The runtime's one error type. Bad input (files, metadata, prompts) becomes an `Error`; a broken
//! internal contract is a bug and may panic.

use crate::prelude::*;
use core::fmt;

/// Everything that can go wrong while loading or running a model.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// The GGUF container is malformed: `offset` is the byte position where the problem was found.
    Gguf { offset: u64, what: String },
    /// A required metadata key is absent.
    MissingKey { key: String },
    /// A metadata key holds a value of the wrong type or an unusable value.
    BadMetadata { key: String, what: String },
    /// A tensor is missing, has the wrong shape, or has an unsupported type.
    Tensor { name: String, what: String },
    /// The model's hyperparameters are inconsistent (e.g. heads that do not divide the width).
    Model { what: String },
    /// Tokenizer data in the file is unusable, or a token id is out of range.
    Tokenizer { what: String },
    /// The chat template failed to parse or render.
    Template { what: String },
    /// A request that cannot be served (prompt longer than the context, bad sampler parameter).
    Request { what: String },
    /// An operating-system I/O failure, with the path when known.
    Io { path: String, what: String },
}

/// `Result` with the runtime's [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Gguf { offset, what } => write!(f, "invalid GGUF at byte {offset}: {what}"),
            Error::MissingKey { key } => write!(f, "missing metadata key `{key}`"),
            Error::BadMetadata { key, what } => write!(f, "metadata key `{key}`: {what}"),
            Error::Tensor { name, what } => write!(f, "tensor `{name}`: {what}"),
            Error::Model { what } => write!(f, "unusable model: {what}"),
            Error::Tokenizer { what } => write!(f, "tokenizer: {what}"),
            Error::Template { what } => write!(f, "chat template: {what}"),
            Error::Request { what } => write!(f, "{what}"),
            Error::Io { path, what } => write!(f, "{path}: {what}"),
        }
    }
}

impl core::error::Error for Error {}
