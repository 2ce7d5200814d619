//! ingot-kernels: ggml-compatible tensor element formats and the kernels that compute on them.
//!
//! - [`quant_type`]: [`QuantType`] (ggml ids and names) and its [`TypeInfo`] table row per type.
//! - [`blocks`]: `#[repr(C)]` block layouts of the quantized types, decoded safely from bytes.
//! - [`reference`](mod@reference): scalar reference kernels that reproduce llama.cpp's CPU results; every faster
//!   kernel path is tested against these.
//!
//! This crate knows nothing of models, files or threads: slices in, `&mut` slice out, sizes explicit,
//! no allocation. Dimension letters used in shape comments: `n` elements per row (the reduction
//! dimension), `d` rows (output length).

pub mod blocks;
pub mod quant_type;
pub mod reference;

pub use quant_type::{QuantType, TypeInfo};
pub use reference::{matvec, quantize_activations};
