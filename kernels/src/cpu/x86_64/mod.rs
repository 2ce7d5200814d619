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

/// Panics (naming `what`) unless `x_len` elements hold `rows` rows of `n` elements whose starts are
/// `stride` elements apart.
pub(super) fn assert_rows_fit(what: &str, x_len: usize, rows: usize, stride: usize, n: usize) {
    assert!(
        rows == 0
            || (rows - 1)
                .checked_mul(stride)
                .and_then(|v| v.checked_add(n))
                .is_some_and(|need| x_len >= need),
        "{what}: x too short"
    );
}

/// `(heads, rows)` of a rows-by-heads dot product (`dot_f16_rows_heads`): `y` holds whole heads of
/// `n` values and `out` `rows` results per head.
///
/// # Panics
/// If `n == 0`, `y_len` is not a multiple of `n`, or `out_len` not a multiple of the heads.
pub(super) fn rows_heads_shape(y_len: usize, n: usize, out_len: usize) -> (usize, usize) {
    assert!(
        n > 0 && y_len.is_multiple_of(n),
        "dot_f16_rows_heads: y is not whole heads"
    );
    let heads = y_len / n;
    assert!(
        heads > 0 && out_len.is_multiple_of(heads),
        "dot_f16_rows_heads: out is not whole heads"
    );
    (heads, out_len / heads)
}
