//! Hand-vectorized CPU kernel paths, one module per architecture and ISA level.
//!
//! Each ISA module exports the same shape of API: a zero-sized token type whose only constructor
//! is `detect()` (so holding one proves the CPU has the features) and safe methods on it that run
//! whole inner loops inside `#[target_feature]` functions. [`crate::dispatch::Kernels`] picks one.
//! Every path is tested against [`crate::reference`] in `tests/simd_conformance.rs`.

#[cfg(target_arch = "aarch64")]
pub mod aarch64;
pub(crate) mod kquants;
pub(crate) mod packed_driver;
#[cfg(target_arch = "x86_64")]
pub mod x86_64;
