//! ingot-kernels: ggml-compatible tensor element formats and the kernels that compute on them.
//!
//! - [`quant_type`]: [`QuantType`] (ggml ids and names) and its [`TypeInfo`] table row per type.
//! - [`blocks`]: `#[repr(C)]` block layouts of the quantized types, decoded safely from bytes.
//! - [`reference`](mod@reference): scalar reference kernels that reproduce llama.cpp's CPU results; every faster
//!   kernel path is tested against these.
//! - [`dispatch`]: [`Kernels`], the runtime-selected fast path ([`Isa`]),
//!   whose SIMD bodies live in [`cpu`] (x86_64: AVX2, AVX-VNNI, AVX-512 VNNI; aarch64: NEON, NEON +
//!   dotprod).
//!
//! - [`ops`](mod@ops): ggml-exact non-matmul ops on [`Kernels`] (expf, soft_max, SwiGLU, RoPE,
//!   f16 dots, one attention head), bit-identical on every path to [`reference::ops`].
//! - [`packed`]: interleaved weight layouts made at load (Q4_0, Q8_0, Q4_1; 16 rows per register) and
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
//!
//! Feature `std` (default): the thread pool's workers, run-time CPU feature detection and
//! `INGOT_ISA`. Without it the crate is `#![no_std]` (+ `alloc`): [`ThreadPool`] is the calling thread
//! alone, a SIMD path is used when the build enables its target features (`-C target-feature=+avx2,+fma,+f16c`,
//! `-C target-cpu=...`), and the float functions std takes from the platform's libm (`exp`, `mul_add`,
//! ...) come from the `libm` crate ([`math`]).

#![cfg_attr(not(any(feature = "std", test)), no_std)]

extern crate alloc;

/// What `std`'s prelude gives and `core`'s does not; imported where needed so that every module reads
/// the same with and without `std`.
#[allow(unused_imports)]
pub(crate) mod prelude {
    pub use alloc::borrow::ToOwned;
    pub use alloc::boxed::Box;
    pub use alloc::format;
    pub use alloc::string::{String, ToString};
    pub use alloc::vec;
    pub use alloc::vec::Vec;
}

/// `is_x86_feature_detected!` with `std`; without it, whether the build enables the feature.
#[cfg(feature = "std")]
#[allow(unused_macros)]
macro_rules! x86_feature {
    ($f:tt) => {
        std::is_x86_feature_detected!($f)
    };
}
#[cfg(not(feature = "std"))]
#[allow(unused_macros)]
macro_rules! x86_feature {
    ($f:tt) => {
        cfg!(target_feature = $f)
    };
}
#[allow(unused_imports)]
pub(crate) use x86_feature;

/// `is_aarch64_feature_detected!` with `std`; without it, whether the build enables the feature.
#[cfg(feature = "std")]
#[allow(unused_macros)]
macro_rules! aarch64_feature {
    ($f:tt) => {
        std::arch::is_aarch64_feature_detected!($f)
    };
}
#[cfg(not(feature = "std"))]
#[allow(unused_macros)]
macro_rules! aarch64_feature {
    ($f:tt) => {
        cfg!(target_feature = $f)
    };
}
#[allow(unused_imports)]
pub(crate) use aarch64_feature;

/// A CPU token (`Option<Avx2>`, ...) detected once per process with `std`; without it the
/// detection is a compile-time constant, evaluated where used.
#[allow(unused_macros)]
macro_rules! detect_once {
    ($t:ty, $detect:expr) => {{
        #[cfg(feature = "std")]
        {
            static TOKEN: std::sync::OnceLock<$t> = std::sync::OnceLock::new();
            *TOKEN.get_or_init($detect)
        }
        #[cfg(not(feature = "std"))]
        {
            ($detect)()
        }
    }};
}
#[allow(unused_imports)]
pub(crate) use detect_once;

pub mod blocks;
pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod dispatch;
pub mod math;
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
