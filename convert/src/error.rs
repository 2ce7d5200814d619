//! The converter's one error type. Bad input (files, arguments, tensor data) is an [`Error`]; a
//! broken internal contract is a bug and may panic.

use core::fmt;
use ingot_kernels::QuantType;

/// Everything that can stop a conversion.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// The input could not be read or parsed (the runtime's GGUF errors carry the byte offset).
    Input(ingot_runtime::Error),
    /// An operating-system I/O failure on `path`.
    Io { path: String, what: String },
    /// A type name that is not a type, or one the converter cannot write yet.
    UnsupportedType { name: String, what: String },
    /// A `--tensor-type PATTERN=TYPE` argument that does not parse.
    BadOverride { spec: String, what: String },
    /// The tensor is already quantized and would be quantized again to another type, which loses
    /// precision twice; allowed only with `allow_requantize` (llama.cpp's rule).
    Requantize {
        tensor: String,
        from: QuantType,
        to: QuantType,
    },
    /// A tensor whose data cannot be converted (non-finite values, impossible shape).
    Tensor { name: String, what: String },
    /// An input format the converter does not read (yet).
    UnsupportedInput { path: String, what: String },
}

/// `Result` with the converter's [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Input(e) => write!(f, "{e}"),
            Error::Io { path, what } => write!(f, "{path}: {what}"),
            Error::UnsupportedType { name, what } => write!(f, "type `{name}`: {what}"),
            Error::BadOverride { spec, what } => write!(f, "tensor type override `{spec}`: {what}"),
            Error::Requantize { tensor, from, to } => write!(
                f,
                "tensor `{tensor}` is already quantized ({from}); requantizing it to {to} loses \
                 precision twice and is refused without --allow-requantize"
            ),
            Error::Tensor { name, what } => write!(f, "tensor `{name}`: {what}"),
            Error::UnsupportedInput { path, what } => write!(f, "{path}: {what}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Input(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ingot_runtime::Error> for Error {
    fn from(e: ingot_runtime::Error) -> Self {
        Error::Input(e)
    }
}

/// An [`Error::Io`] for `path`.
pub(crate) fn io(path: &std::path::Path, e: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        what: e.to_string(),
    }
}
