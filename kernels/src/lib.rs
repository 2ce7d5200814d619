//! ingot-kernels: ggml-compatible tensor element formats and the kernels that compute on them.
//!
//! - [`quant_type`]: [`QuantType`] (ggml ids and names) and its [`TypeInfo`] table row per type.
//! - [`blocks`]: `#[repr(C)]` block layouts of the quantized types, decoded safely from bytes.
//! - [`reference`](mod@reference): scalar reference kernels that reproduce llama.cpp's CPU results; every faster
//!   kernel path is tested against these.
//! - [`dispatch`]: [`Kernels`], the runtime-selected fast path ([`Isa`]),
//!   whose SIMD bodies live in [`cpu`] (x86_64: AVX2, AVX-512 VNNI; aarch64: NEON, NEON + dotprod).
//!
//! - [`ops`](mod@ops): ggml-exact non-matmul ops on [`Kernels`] (expf, soft_max, SwiGLU, RoPE,
//!   f16 dots, one attention head), bit-identical on every path to [`reference::ops`].
//! - [`packed`]: interleaved weight layouts made at load (Q4_0, 16 rows per register) and
//!   [`Kernels::matmul_packed`], the product over them.
//! - [`pool`]: [`ThreadPool`], a persistent spin-then-park worker pool, [`Kernels::matmul_par`],
//!   the matrix product split by rows across it (bit-identical for any thread count), and
//!   [`ThreadPool::for_each_chunk_with`], disjoint output chunks with per-thread scratch.
//!
//! - [`sgemm`]: [`Kernels::sgemm`], the blocked, packed, threaded f32 matrix product (the
//!   trainer's), bitwise equal on every path and thread count to [`sgemm::sgemm_reference`].
//!
//! - [`cuda`] (feature `cuda`): the CUDA kernels of `kernels/cuda/` and their launch wrappers.
//!
//! This crate knows nothing of models or files: slices in, `&mut` slice out, sizes explicit,
//! no allocation. Dimension letters used in shape comments: `n` elements per row (the reduction
//! dimension), `d` rows (output length), `T` tokens.

pub mod blocks;
pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod dispatch;
pub mod ops;
pub mod packed;
pub mod pool;
pub mod quant_type;
pub mod reference;
pub mod sgemm;

pub use dispatch::{Isa, Kernels};
pub use pool::ThreadPool;
pub use quant_type::{QuantType, TypeInfo};
pub use reference::{matvec, quantize_activations};
pub use sgemm::{MatRef, SgemmScratch};
