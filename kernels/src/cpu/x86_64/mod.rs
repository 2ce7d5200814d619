//! x86_64 kernels: [`avx2::Avx2`] (AVX2 + FMA + F16C, Haswell and later),
//! [`avxvnni::AvxVnni`] (AVX2 with the VEX `vpdpbusd` of AVX-VNNI, Alder Lake / Sapphire Rapids and
//! later) and [`avx512::Avx512Vnni`] (AVX-512 F/BW/VL + VNNI, Ice Lake / Zen 4 and later).
//!
//! Kernel shape shared by both modules: a block kernel is an
//! `unsafe fn k<const T: usize>(n, w: *const u8, x: [*const u8; T]) -> [f32; T]` that dots one
//! weight row with `T` activation rows, decoding each weight block once and running the *same*
//! sequence of operations for every token as the `T = 1` instance does. So `matmul`, which calls
//! `k::<4>` for groups of four tokens and `k::<1>` for the rest, is bitwise identical to one
//! `vec_dot` per (row, token).

pub mod avx2;
mod avx2_ops;
mod avx2_packed;
mod avx2_sgemm;
pub mod avx512;
mod avx512_attention;
mod avx512_ops;
mod avx512_packed;
mod avx512_sgemm;
pub mod avxvnni;

/// Rows x tokens driver shared by the ISA modules. Expands to the body of a `#[target_feature]`
/// `unsafe fn` with parameters `(out: &mut [f32], w: *const u8, rb: usize, rows: usize,
/// x: *const u8, stride: usize, t: usize, n: usize)` whose caller guarantees that `w` holds `rows`
/// rows of `rb` bytes, `x` holds `t` activation rows `stride` bytes apart, and
/// `out.len() == t * rows`. Weights are streamed once: each row is dotted with every token while it
/// is hot in L1, four tokens per kernel call. `$kern[A, B]` calls `$kern::<A, B, 4>` (generic
/// kernels).
macro_rules! matmul_body {
    ($kern:ident, $out:ident, $w:ident, $rb:ident, $rows:ident, $x:ident, $stride:ident, $t:ident, $n:ident) => {
        matmul_body!($kern[], $out, $w, $rb, $rows, $x, $stride, $t, $n)
    };
    ($kern:ident [$($g:ident),*], $out:ident, $w:ident, $rb:ident, $rows:ident, $x:ident, $stride:ident, $t:ident, $n:ident) => {{
        debug_assert_eq!($out.len(), $t * $rows);
        for r in 0..$rows {
            // In bounds by the caller's guarantees (r < rows, j < t); wrapping_add keeps the
            // pointer arithmetic itself safe.
            let wr = $w.wrapping_add(r * $rb);
            let xrow = |j: usize| $x.wrapping_add(j * $stride);
            let mut j = 0;
            while j + 4 <= $t {
                let xs = [xrow(j), xrow(j + 1), xrow(j + 2), xrow(j + 3)];
                // SAFETY: the caller's guarantees above cover row r and tokens j..j+4, and the
                // enclosing function has the kernel's target features.
                let v = unsafe { $kern::<$($g,)* 4>($n, wr, xs) };
                for (k, v) in v.into_iter().enumerate() {
                    $out[(j + k) * $rows + r] = v;
                }
                j += 4;
            }
            while j < $t {
                // SAFETY: as above, for token j alone.
                let [v] = unsafe { $kern::<$($g,)* 1>($n, wr, [xrow(j)]) };
                $out[j * $rows + r] = v;
                j += 1;
            }
        }
    }};
}
pub(crate) use matmul_body;
