//! Hand-vectorized CPU kernel paths, one module per architecture and ISA level.
//!
//! Each ISA module exports the same shape of API: a zero-sized token type whose only constructor
//! is `detect()` (so holding one proves the CPU has the features) and safe methods on it that run
//! whole inner loops inside `#[target_feature]` functions. [`crate::dispatch::Kernels`] picks one.
//! Every path is tested against [`crate::reference`] in `tests/simd_conformance.rs`.
//!
//! The loops around the arithmetic are written once, in `driver`: the entry of a product (shape
//! check, then the ISA's kernel for the type), the row-major rows x tokens loop (`matmul_body!`)
//! and the packed kernels' row panels, token tiles, scale tables and stores. An ISA module holds
//! its tiles (the per-type inner arithmetic) and calls the driver from inside its
//! `#[target_feature]` functions, where the `#[inline(always)]` driver is monomorphised.

/// Rows x tokens driver of the row-major kernels, shared by every ISA module: expands to the body
/// of a `#[target_feature]` `unsafe fn` with parameters `(out: &mut [f32], w: *const u8, rb: usize,
/// rows: usize, x: *const u8, stride: usize, t: usize, n: usize)` whose caller guarantees that `w`
/// holds `rows` rows of `rb` bytes, `x` holds `t` activation rows `stride` bytes apart, and
/// `out.len() == t * rows`: [`driver::rows_x_tokens`] over the block kernel
/// `$kern<const T: usize>(n, w, x: [*const u8; T]) -> [f32; T]` (`$kern[A, B]` calls
/// `$kern::<A, B, T>`, generic kernels), monomorphised inside that function so that the kernel
/// inlines with its features.
macro_rules! matmul_body {
    ($kern:ident $([$($g:ident),*])?, $out:ident, $w:ident, $rb:ident, $rows:ident, $x:ident, $stride:ident, $t:ident, $n:ident) => {
        // SAFETY: the enclosing function's caller guarantees `rows_x_tokens`'s contract for W, X
        // and out, and the enclosing function has the kernel's target features, so the kernel
        // is sound for every row and token the driver passes.
        unsafe {
            $crate::cpu::driver::rows_x_tokens(
                $out,
                ($w, $rb, $rows),
                ($x, $stride, $t),
                |wr, xs| $kern::<$($($g,)*)? 4>($n, wr, xs),
                |wr, xs| $kern::<$($($g,)*)? 1>($n, wr, xs),
            )
        }
    };
}
// The ISA modules below see the macro by textual scope; the path is for the doc links.
#[allow(unused_imports)]
pub(crate) use matmul_body;

#[cfg(target_arch = "aarch64")]
pub mod aarch64;
pub(crate) mod driver;
pub(crate) mod kquants;
#[cfg(target_arch = "x86_64")]
pub mod x86_64;
