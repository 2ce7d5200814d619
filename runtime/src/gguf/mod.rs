//! GGUF: the file format of ggml and llama.cpp. [`reader`] parses and validates a byte slice without
//! copying; [`writer`] (feature `std`) builds files (for tests and the converter); [`keys`] names the
//! metadata keys; [`GgufFile`] (feature `std`) maps a file from disk.

pub mod keys;
pub mod reader;
#[cfg(feature = "std")]
pub mod writer;

pub use reader::{Array, Gguf, TensorInfo, Value, ValueType, DEFAULT_ALIGNMENT, MAX_DIMS};
#[cfg(feature = "std")]
pub use writer::{GgufStreamWriter, GgufWriter, TensorDecl};

#[cfg(feature = "std")]
mod file;
#[cfg(feature = "std")]
pub use file::GgufFile;
