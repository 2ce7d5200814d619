//! ingot's runtime: reads GGUF files by memory map and runs llama-architecture models on them.
//!
//! Dimension letters used in shape comments throughout the crate:
//! `T` tokens in a batch, `C` model width (`n_embd`), `V` vocabulary, `L` layers, `H` query heads,
//! `Hkv` key/value heads, `D` head dimension, `F` feed-forward width, `S` context length (KV cache slots).
//!
//! What it owns: GGUF parsing ([`gguf`]), the tokenizer ([`tokenizer`]), model configuration and the
//! forward pass ([`model`]), sampling ([`sampler`]) and chat templates ([`chat`]). What it does not:
//! the kernels (crate `ingot-kernels`), training, conversion, the CLI.

#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

/// What `std`'s prelude gives and `core`'s does not: every module imports it, so the crate reads the
/// same with and without `std`.
#[allow(unused_imports)]
pub(crate) mod prelude {
    pub use alloc::borrow::ToOwned;
    pub use alloc::boxed::Box;
    pub use alloc::format;
    pub use alloc::string::{String, ToString};
    pub use alloc::vec;
    pub use alloc::vec::Vec;
}

pub mod chat;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod error;
pub mod gguf;
pub mod model;
pub mod sampler;
pub mod tokenizer;

pub use error::{Error, Result};
