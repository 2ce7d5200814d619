//! Dequantization and dot products of ggml's K-quants (the other half of `kquants.rs`, which has
//! the quantizers and the layout helpers shared by both): `dequantize_row_*` (ggml-quants.c) and
//! `vec_dot_*_q8_K` (ggml-cpu/quants.c `ggml_vec_dot_*_q8_K_generic`), in ggml's order of
//! operations with no fused multiply-add.

use super::check_row;
use super::kquants::{scale_min_k4, scale_q3, unpack_2bit};
use crate::blocks::{
    BlockQ2_K, BlockQ3_K, BlockQ4_K, BlockQ5_K, BlockQ6_K, BlockQ8_K, K_SCALE_SIZE, QK_K,
};
#[cfg(not(feature = "std"))]
use crate::math::FloatExt;
use crate::QuantType;
use half::f16;

// ---------------------------------------------------------------------------------------------
// Dequantization (ggml-quants.c `dequantize_row_*`).

/// `dequantize_row_q2_K`: `d * sc * q - dmin * m` (two roundings, no FMA).
pub fn dequantize_row_q2_k(src: &[u8], dst: &mut [f32]) {
    check_row(QuantType::Q2_K, dst.len(), src.len());
    for (b, y) in src
        .chunks_exact(BlockQ2_K::SIZE)
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let b = BlockQ2_K::read(b);
        let (d, min) = (b.d.to_f32(), b.dmin.to_f32());
        let q = unpack_2bit(&b.qs);
        for (s, (y, q)) in y.chunks_exact_mut(16).zip(q.chunks_exact(16)).enumerate() {
            let sc = b.scales[s];
            let dl = d * (sc & 0xf) as f32;
            let ml = min * (sc >> 4) as f32;
            for (y, &q) in y.iter_mut().zip(q) {
                *y = dl * q as f32 - ml;
            }
        }
    }
}

/// The 3-bit values of a Q3_K block as signed `q - 4` (bit 2 clear means -4).
#[inline]
fn q3_values(b: &BlockQ3_K) -> [i32; QK_K] {
    let low = unpack_2bit(&b.qs);
    core::array::from_fn(|e| {
        let high = (b.hmask[e % 32] >> (e / 32)) & 1;
        low[e] as i32 - if high != 0 { 0 } else { 4 }
    })
}

/// `dequantize_row_q3_K`: `d * (scale6 - 32) * (q - 4)`.
pub fn dequantize_row_q3_k(src: &[u8], dst: &mut [f32]) {
    check_row(QuantType::Q3_K, dst.len(), src.len());
    for (b, y) in src
        .chunks_exact(BlockQ3_K::SIZE)
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let b = BlockQ3_K::read(b);
        let d_all = b.d.to_f32();
        let q = q3_values(&b);
        for (s, (y, q)) in y.chunks_exact_mut(16).zip(q.chunks_exact(16)).enumerate() {
            let dl = d_all * scale_q3(s, &b.scales) as f32;
            for (y, &q) in y.iter_mut().zip(q) {
                *y = dl * q as f32;
            }
        }
    }
}

/// The 4-bit values of a Q4_K / Q5_K `qs` (see [`BlockQ4_K`]).
#[inline]
fn q4k_values(qs: &[u8; QK_K / 2]) -> [u8; QK_K] {
    core::array::from_fn(|e| {
        let (c, half, i) = (e / 64, (e / 32) % 2, e % 32);
        (qs[32 * c + i] >> (4 * half)) & 0xf
    })
}

/// The 5-bit values of a Q5_K block.
#[inline]
fn q5k_values(b: &BlockQ5_K) -> [u8; QK_K] {
    let low = q4k_values(&b.qs);
    core::array::from_fn(|e| low[e] | (((b.qh[e % 32] >> (e / 32)) & 1) << 4))
}

/// `dequantize_row_q4_K`: `d * sc * q - dmin * m` (two roundings, no FMA).
pub fn dequantize_row_q4_k(src: &[u8], dst: &mut [f32]) {
    check_row(QuantType::Q4_K, dst.len(), src.len());
    for (b, y) in src
        .chunks_exact(BlockQ4_K::SIZE)
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let b = BlockQ4_K::read(b);
        dequantize_k4(b.d, b.dmin, &b.scales, &q4k_values(&b.qs), y);
    }
}

/// `dequantize_row_q5_K`: as Q4_K with 5-bit quants.
pub fn dequantize_row_q5_k(src: &[u8], dst: &mut [f32]) {
    check_row(QuantType::Q5_K, dst.len(), src.len());
    for (b, y) in src
        .chunks_exact(BlockQ5_K::SIZE)
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let b = BlockQ5_K::read(b);
        dequantize_k4(b.d, b.dmin, &b.scales, &q5k_values(&b), y);
    }
}

#[inline]
fn dequantize_k4(d: f16, dmin: f16, scales: &[u8; K_SCALE_SIZE], q: &[u8; QK_K], y: &mut [f32]) {
    let (d, min) = (d.to_f32(), dmin.to_f32());
    for (s, (y, q)) in y.chunks_exact_mut(32).zip(q.chunks_exact(32)).enumerate() {
        let (sc, m) = scale_min_k4(s, scales);
        let (dl, ml) = (d * sc as f32, min * m as f32);
        for (y, &q) in y.iter_mut().zip(q) {
            *y = dl * q as f32 - ml;
        }
    }
}

/// The 6-bit values of a Q6_K block as signed `q - 32`.
#[inline]
fn q6_values(b: &BlockQ6_K) -> [i32; QK_K] {
    core::array::from_fn(|e| {
        let (h, k, i) = (e / 128, (e / 32) % 4, e % 32);
        let low = (b.ql[64 * h + 32 * (k % 2) + i] >> (4 * (k / 2))) & 0xf;
        let high = (b.qh[32 * h + i] >> (2 * k)) & 3;
        (low | (high << 4)) as i32 - 32
    })
}

/// `dequantize_row_q6_K`: `(d * scale) * (q - 32)`.
pub fn dequantize_row_q6_k(src: &[u8], dst: &mut [f32]) {
    check_row(QuantType::Q6_K, dst.len(), src.len());
    for (b, y) in src
        .chunks_exact(BlockQ6_K::SIZE)
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let b = BlockQ6_K::read(b);
        let d = b.d.to_f32();
        let q = q6_values(&b);
        for (s, (y, q)) in y.chunks_exact_mut(16).zip(q.chunks_exact(16)).enumerate() {
            let ds = d * b.scales[s] as f32;
            for (y, &q) in y.iter_mut().zip(q) {
                *y = ds * q as f32;
            }
        }
    }
}

/// `dequantize_row_q8_K`: `d * q`.
pub fn dequantize_row_q8_k(src: &[u8], dst: &mut [f32]) {
    check_row(QuantType::Q8_K, dst.len(), src.len());
    for (b, y) in src
        .chunks_exact(BlockQ8_K::SIZE)
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let b = BlockQ8_K::read(b);
        for (y, &q) in y.iter_mut().zip(&b.qs) {
            *y = b.d * q as f32;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Dot products (ggml-cpu/quants.c `ggml_vec_dot_*_q8_K_generic`).

#[track_caller]
fn check_dot(w_ty: QuantType, n: usize, w: &[u8], x: &[u8]) {
    check_row(w_ty, n, w.len());
    check_row(QuantType::Q8_K, n, x.len());
}

/// ggml's eight-lane integer accumulation: lane `l` sums `scale(g) * q[8g + l] * y[8g + l]` over
/// the 32 groups of 8 elements, where `scale` is constant per 16 (`per = 16`) or 32 (`per = 32`)
/// elements. Exact in i32.
#[inline]
fn lanes8(q: &[i32; QK_K], y: &[i8; QK_K], scale: impl Fn(usize) -> i32) -> [i32; 8] {
    let mut acc = [0i32; 8];
    for (g, (q, y)) in q.chunks_exact(8).zip(y.chunks_exact(8)).enumerate() {
        let s = scale(g);
        for l in 0..8 {
            acc[l] += s * (q[l] * y[l] as i32);
        }
    }
    acc
}

/// `ggml_vec_dot_q2_K_q8_K_generic`: per block `sumf += (dy * d) * isum - (dy * dmin) * summs`.
pub fn vec_dot_q2_k_q8_k(n: usize, w: &[u8], x: &[u8]) -> f32 {
    check_dot(QuantType::Q2_K, n, w, x);
    let mut sumf = 0.0f32;
    for (bw, bx) in w
        .chunks_exact(BlockQ2_K::SIZE)
        .zip(x.chunks_exact(BlockQ8_K::SIZE))
    {
        let (bw, bx) = (BlockQ2_K::read(bw), BlockQ8_K::read(bx));
        let summs: i32 = (0..16)
            .map(|j| bx.bsums[j] as i32 * (bw.scales[j] >> 4) as i32)
            .sum();
        let dall = bx.d * bw.d.to_f32();
        let dmin = bx.d * bw.dmin.to_f32();
        let q = unpack_2bit(&bw.qs);
        let mut isum = 0i32;
        for s in 0..16 {
            let isuml: i32 = (16 * s..16 * s + 16)
                .map(|e| bx.qs[e] as i32 * q[e] as i32)
                .sum();
            isum += (bw.scales[s] & 0xf) as i32 * isuml;
        }
        sumf += dall * isum as f32 - dmin * summs as f32;
    }
    sumf
}

/// `ggml_vec_dot_q3_K_q8_K_generic`: eight f32 lane sums `sums[l] += (d * dy) * aux32[l]`, added
/// to `sumf` in lane order at the end.
pub fn vec_dot_q3_k_q8_k(n: usize, w: &[u8], x: &[u8]) -> f32 {
    check_dot(QuantType::Q3_K, n, w, x);
    let mut sums = [0f32; 8];
    for (bw, bx) in w
        .chunks_exact(BlockQ3_K::SIZE)
        .zip(x.chunks_exact(BlockQ8_K::SIZE))
    {
        let (bw, bx) = (BlockQ3_K::read(bw), BlockQ8_K::read(bx));
        let aux32 = lanes8(&q3_values(&bw), &bx.qs, |g| scale_q3(g / 2, &bw.scales));
        let d = bw.d.to_f32() * bx.d;
        for (s, &a) in sums.iter_mut().zip(&aux32) {
            *s += d * a as f32;
        }
    }
    sums.iter().fold(0.0f32, |acc, &s| acc + s)
}

/// The shared body of the Q4_K and Q5_K dots: lane sums of the scaled products, and
/// `sumf -= (dmin * dy) * sum(bsums * m)` per block, the lane sums added last.
#[inline]
fn dot_k4(
    d: f16,
    dmin: f16,
    scales: &[u8; K_SCALE_SIZE],
    q: &[u8; QK_K],
    bx: &BlockQ8_K,
    sums: &mut [f32; 8],
) -> f32 {
    let q: [i32; QK_K] = core::array::from_fn(|e| q[e] as i32);
    let sm: [(u8, u8); 8] = core::array::from_fn(|j| scale_min_k4(j, scales));
    let sumi: i32 = (0..16)
        .map(|j| bx.bsums[j] as i32 * sm[j / 2].1 as i32)
        .sum();
    let aux32 = lanes8(&q, &bx.qs, |g| sm[g / 4].0 as i32);
    let dd = d.to_f32() * bx.d;
    for (s, &a) in sums.iter_mut().zip(&aux32) {
        *s += dd * a as f32;
    }
    let dm = dmin.to_f32() * bx.d;
    dm * sumi as f32
}

/// `ggml_vec_dot_q4_K_q8_K_generic`.
pub fn vec_dot_q4_k_q8_k(n: usize, w: &[u8], x: &[u8]) -> f32 {
    check_dot(QuantType::Q4_K, n, w, x);
    let mut sums = [0f32; 8];
    let mut sumf = 0.0f32;
    for (bw, bx) in w
        .chunks_exact(BlockQ4_K::SIZE)
        .zip(x.chunks_exact(BlockQ8_K::SIZE))
    {
        let (bw, bx) = (BlockQ4_K::read(bw), BlockQ8_K::read(bx));
        sumf -= dot_k4(
            bw.d,
            bw.dmin,
            &bw.scales,
            &q4k_values(&bw.qs),
            &bx,
            &mut sums,
        );
    }
    sums.iter().fold(sumf, |acc, &s| acc + s)
}

/// `ggml_vec_dot_q5_K_q8_K_generic`.
pub fn vec_dot_q5_k_q8_k(n: usize, w: &[u8], x: &[u8]) -> f32 {
    check_dot(QuantType::Q5_K, n, w, x);
    let mut sums = [0f32; 8];
    let mut sumf = 0.0f32;
    for (bw, bx) in w
        .chunks_exact(BlockQ5_K::SIZE)
        .zip(x.chunks_exact(BlockQ8_K::SIZE))
    {
        let (bw, bx) = (BlockQ5_K::read(bw), BlockQ8_K::read(bx));
        sumf -= dot_k4(bw.d, bw.dmin, &bw.scales, &q5k_values(&bw), &bx, &mut sums);
    }
    sums.iter().fold(sumf, |acc, &s| acc + s)
}

/// `ggml_vec_dot_q6_K_q8_K_generic`.
pub fn vec_dot_q6_k_q8_k(n: usize, w: &[u8], x: &[u8]) -> f32 {
    check_dot(QuantType::Q6_K, n, w, x);
    let mut sums = [0f32; 8];
    for (bw, bx) in w
        .chunks_exact(BlockQ6_K::SIZE)
        .zip(x.chunks_exact(BlockQ8_K::SIZE))
    {
        let (bw, bx) = (BlockQ6_K::read(bw), BlockQ8_K::read(bx));
        let aux32 = lanes8(&q6_values(&bw), &bx.qs, |g| bw.scales[g / 2] as i32);
        let d = bw.d.to_f32() * bx.d;
        for (s, &a) in sums.iter_mut().zip(&aux32) {
            *s += d * a as f32;
        }
    }
    sums.iter().fold(0.0f32, |acc, &s| acc + s)
}

// ---------------------------------------------------------------------------------------------
// ggml-cpu's x86 orders (arch/x86/quants.c, the `__AVX2__` branches, which AVX-512 builds also
// run): what llama.cpp computes on x86, so that the AVX2 and AVX-512 paths give llama.cpp's
// logits bit for bit. The integer parts are exact in any order; what the x86 code changes is which
// products land in which of eight f32 lanes, the FMA per block and the final horizontal sum.

/// `hsum_float_8`: `(a[4..] + a[..4])`, then lanes `0 + 2` and `1 + 3`, then their sum.
#[inline]
fn hsum_float_8(a: [f32; 8]) -> f32 {
    let r: [f32; 4] = core::array::from_fn(|i| a[4 + i] + a[i]);
    (r[0] + r[2]) + (r[1] + r[3])
}

/// ggml-cpu's x86 `ggml_vec_dot_q6_K_q8_K` (AVX2 branch). Per super-block, eight i32 lanes: lane
/// `l` holds the elements `e` with `(e mod 32) / 4 == l` (a `maddubs` + `madd` pair sums four
/// adjacent bytes), as `scale * (q + 32) * y` with the 6-bit code `q + 32` unsigned, minus
/// `32 * (bsums[2l] * scales[2l] + bsums[2l+1] * scales[2l+1])` (the `-32` offset through the
/// activation block sums, lane by lane); then `acc[l] = fma(d, (float)lane[l], acc[l])` with
/// `d = y.d * x.d`, and [`hsum_float_8`] at the end.
pub fn vec_dot_q6_k_q8_k_x86(n: usize, w: &[u8], x: &[u8]) -> f32 {
    check_dot(QuantType::Q6_K, n, w, x);
    let mut acc = [0f32; 8];
    for (bw, bx) in w
        .chunks_exact(BlockQ6_K::SIZE)
        .zip(x.chunks_exact(BlockQ8_K::SIZE))
    {
        let (bw, bx) = (BlockQ6_K::read(bw), BlockQ8_K::read(bx));
        let q = q6_values(&bw); // q - 32
        let mut lanes = [0i32; 8];
        for (e, (&q, &y)) in q.iter().zip(&bx.qs).enumerate() {
            lanes[e % 32 / 4] += bw.scales[e / 16] as i32 * ((q + 32) * y as i32);
        }
        for (l, lane) in lanes.iter_mut().enumerate() {
            let (a, b) = (2 * l, 2 * l + 1);
            *lane -= 32
                * (bx.bsums[a] as i32 * bw.scales[a] as i32
                    + bx.bsums[b] as i32 * bw.scales[b] as i32);
        }
        let d = bx.d * bw.d.to_f32();
        for (a, &l) in acc.iter_mut().zip(&lanes) {
            *a = d.mul_add(l as f32, *a);
        }
    }
    hsum_float_8(acc)
}

/// ggml-cpu's x86 repacked Q4_K kernels (`ggml_gemv_q4_K_8x8_q8_K`, `ggml_gemm_q4_K_8x8_q8_K` in
/// arch/x86/repack.cpp), which llama.cpp runs for every Q4_K matrix with a multiple of 8 rows on a
/// CPU with AVX2 (the weights are repacked into `block_q4_Kx8` at load): per super-block the exact
/// integers `isum = sum_j scale_j * sum_{e in j} q_e * y_e` and `imin = sum_j min_j * (bsums[2j] +
/// bsums[2j+1])`, then `acc = fma((float)isum, x.d * y.d, acc)` and `acc_min = fma((float)imin,
/// x.dmin * y.d, acc_min)`; the result is `acc - acc_min`. The same for one token (gemv) and for
/// groups of four (gemm).
pub fn vec_dot_q4_k_q8_k_repack(n: usize, w: &[u8], x: &[u8]) -> f32 {
    check_dot(QuantType::Q4_K, n, w, x);
    let (mut acc, mut acc_min) = (0f32, 0f32);
    for (bw, bx) in w
        .chunks_exact(BlockQ4_K::SIZE)
        .zip(x.chunks_exact(BlockQ8_K::SIZE))
    {
        let (bw, bx) = (BlockQ4_K::read(bw), BlockQ8_K::read(bx));
        let q = q4k_values(&bw.qs);
        let (mut isum, mut imin) = (0i32, 0i32);
        for j in 0..8 {
            let (sc, m) = scale_min_k4(j, &bw.scales);
            let dot: i32 = (32 * j..32 * j + 32)
                .map(|e| q[e] as i32 * bx.qs[e] as i32)
                .sum();
            isum += sc as i32 * dot;
            imin += m as i32 * (bx.bsums[2 * j] as i32 + bx.bsums[2 * j + 1] as i32);
        }
        acc = (isum as f32).mul_add(bw.d.to_f32() * bx.d, acc);
        acc_min = (imin as f32).mul_add(bw.dmin.to_f32() * bx.d, acc_min);
    }
    acc - acc_min
}

/// [`vec_dot_q4_k_q8_k_repack`] in the order of `ggml_gemm_q4_K_8x8_q8_K`, which llama.cpp uses for
/// the tokens of a batch that fill whole groups of four (the first `t - t % 4`; the others go
/// through the gemv, [`vec_dot_q4_k_q8_k_repack`]): the FMAs are per 64 elements (two 32-element
/// sub-blocks), `acc = fma(sc_2i * dot_2i + sc_2i+1 * dot_2i+1, x.d * y.d, acc)` and `acc_min =
/// fma(min_2i * bsum32_2i + min_2i+1 * bsum32_2i+1, x.dmin * y.d, acc_min)` for i = 0..4 in each
/// super-block; the result is `acc - acc_min`.
pub fn vec_dot_q4_k_q8_k_repack_gemm(n: usize, w: &[u8], x: &[u8]) -> f32 {
    check_dot(QuantType::Q4_K, n, w, x);
    let (mut acc, mut acc_min) = (0f32, 0f32);
    for (bw, bx) in w
        .chunks_exact(BlockQ4_K::SIZE)
        .zip(x.chunks_exact(BlockQ8_K::SIZE))
    {
        let (bw, bx) = (BlockQ4_K::read(bw), BlockQ8_K::read(bx));
        let q = q4k_values(&bw.qs);
        let (dd, dm) = (bw.d.to_f32() * bx.d, bw.dmin.to_f32() * bx.d);
        for sb in 0..4 {
            let (mut isum, mut imin) = (0i32, 0i32);
            for j in [2 * sb, 2 * sb + 1] {
                let (sc, m) = scale_min_k4(j, &bw.scales);
                let dot: i32 = (32 * j..32 * j + 32)
                    .map(|e| q[e] as i32 * bx.qs[e] as i32)
                    .sum();
                isum += sc as i32 * dot;
                imin += m as i32 * (bx.bsums[2 * j] as i32 + bx.bsums[2 * j + 1] as i32);
            }
            acc = (isum as f32).mul_add(dd, acc);
            acc_min = (imin as f32).mul_add(dm, acc_min);
        }
    }
    acc - acc_min
}

/// One element of ggml-cpu's *tiled* K-quant matmul (`ggml-cpu/tiled/`), which llama.cpp on x86 runs
/// instead of `vec_dot` when a product has at least [`TILED_MIN_TOKENS`] activation rows and the
/// weights are not repacked (Q6_K, Q5_K, Q3_K; Q4_K only where ggml does not repack it). Per
/// super-block, the exact integer `s1 = sum_s scale_s * sum_{e in s} q_e * y_e` (and, for types with
/// minimums, `s2 = sum_s min_s * bsum_s`), then `r = (float)s1 * d` (one rounding), `r = fma(-dmin,
/// (float)s2, r)`, and the row accumulates `acc = fma(r, y.d, acc)` block after block from 0 (the
/// microkernel's epilogue: `_mm256_fmadd_ps` in AVX2 builds, `mul` + `add` intrinsics that GCC
/// contracts to the same FMA in AVX-512 VNNI builds).
pub fn vec_dot_q6_k_q8_k_tiled(n: usize, w: &[u8], x: &[u8]) -> f32 {
    check_dot(QuantType::Q6_K, n, w, x);
    let mut acc = 0f32;
    for (bw, bx) in w
        .chunks_exact(BlockQ6_K::SIZE)
        .zip(x.chunks_exact(BlockQ8_K::SIZE))
    {
        let (bw, bx) = (BlockQ6_K::read(bw), BlockQ8_K::read(bx));
        let q = q6_values(&bw);
        let s1: i32 = lanes8(&q, &bx.qs, |g| bw.scales[g / 2] as i32).iter().sum();
        let r = s1 as f32 * bw.d.to_f32();
        acc = r.mul_add(bx.d, acc);
    }
    acc
}

/// The fewest activation rows (tokens) for which ggml-cpu takes its tiled K-quant matmul
/// (`ggml_tiled_min_batch`: `rows >= 8`).
pub const TILED_MIN_TOKENS: usize = 8;

/// Q8_K x Q8_K, which ggml never computes (Q8_K is only an activation format): an exact integer
/// dot per block times `dw * dx`, so that the Q8_K row of the type table is complete.
pub fn vec_dot_q8_k_q8_k(n: usize, w: &[u8], x: &[u8]) -> f32 {
    check_dot(QuantType::Q8_K, n, w, x);
    let mut sumf = 0.0f32;
    for (bw, bx) in w
        .chunks_exact(BlockQ8_K::SIZE)
        .zip(x.chunks_exact(BlockQ8_K::SIZE))
    {
        let (bw, bx) = (BlockQ8_K::read(bw), BlockQ8_K::read(bx));
        let sumi: i32 = bw
            .qs
            .iter()
            .zip(&bx.qs)
            .map(|(&a, &b)| a as i32 * b as i32)
            .sum();
        sumf += sumi as f32 * (bw.d * bx.d);
    }
    sumf
}

// ---------------------------------------------------------------------------------------------
// The x86 orders of Q2_K, Q3_K, Q4_K (not repacked) and Q5_K: `ggml_vec_dot_q*_K_q8_K` (AVX2
// branches of arch/x86/quants.c), ggml-cpu's tiled matmul (`tiled/tiled-kernel.cpp`), and for Q2_K
// on AVX-512 the repacked gemv/gemm (`ggml_gemv/gemm_q2_K_8x8_q8_K`, arch/x86/repack.cpp).

/// The x86 `vec_dot` integer lanes: `maddubs` sums adjacent byte products, `madd` with the
/// sub-block scale sums the next pair, so lane `l` of a 32-element chunk holds the elements
/// `e` with `(e mod 32) / 4 == l`, each times its scale (`scale(e)`). Exact in i32.
#[inline]
fn lanes_x86(q: &[i32; QK_K], y: &[i8; QK_K], scale: impl Fn(usize) -> i32) -> [i32; 8] {
    let mut lanes = [0i32; 8];
    for (e, (&q, &y)) in q.iter().zip(y).enumerate() {
        lanes[e % 32 / 4] += scale(e) * (q * y as i32);
    }
    lanes
}

/// `acc[l] = fma(d, (float)lanes[l], acc[l])` (`_mm256_fmadd_ps`).
#[inline]
fn fma_lanes(acc: &mut [f32; 8], d: f32, lanes: &[i32; 8]) {
    for (a, &l) in acc.iter_mut().zip(lanes) {
        *a = d.mul_add(l as f32, *a);
    }
}

/// The Q2_K codes `0..=3` as i32.
#[inline]
fn q2_values(b: &BlockQ2_K) -> [i32; QK_K] {
    let q = unpack_2bit(&b.qs);
    core::array::from_fn(|e| q[e] as i32)
}

/// ggml-cpu's x86 `ggml_vec_dot_q2_K_q8_K` (AVX2 branch): per super-block, the minimums first,
/// `acc[l] = fma(-(y.d * x.dmin), (float)(m[2l] * bsums[2l] + m[2l+1] * bsums[2l+1]), acc[l])`,
/// then the [`lanes_x86`] of `(scales & 15) * q * y`: `acc[l] = fma(y.d * x.d, (float)lane, acc[l])`;
/// [`hsum_float_8`] at the end.
pub fn vec_dot_q2_k_q8_k_x86(n: usize, w: &[u8], x: &[u8]) -> f32 {
    check_dot(QuantType::Q2_K, n, w, x);
    let mut acc = [0f32; 8];
    for (bw, bx) in w
        .chunks_exact(BlockQ2_K::SIZE)
        .zip(x.chunks_exact(BlockQ8_K::SIZE))
    {
        let (bw, bx) = (BlockQ2_K::read(bw), BlockQ8_K::read(bx));
        let d = bx.d * bw.d.to_f32();
        let dmin = -bx.d * bw.dmin.to_f32();
        let prod: [i32; 8] = core::array::from_fn(|l| {
            let (a, b) = (2 * l, 2 * l + 1);
            (bw.scales[a] >> 4) as i32 * bx.bsums[a] as i32
                + (bw.scales[b] >> 4) as i32 * bx.bsums[b] as i32
        });
        fma_lanes(&mut acc, dmin, &prod);
        let lanes = lanes_x86(&q2_values(&bw), &bx.qs, |e| {
            (bw.scales[e / 16] & 0xf) as i32
        });
        fma_lanes(&mut acc, d, &lanes);
    }
    hsum_float_8(acc)
}

/// ggml-cpu's x86 `ggml_vec_dot_q3_K_q8_K` (AVX2 branch): the [`lanes_x86`] of
/// `(scale6 - 32) * (q - 4) * y`, `acc[l] = fma(y.d * x.d, (float)lane, acc[l])`, [`hsum_float_8`].
pub fn vec_dot_q3_k_q8_k_x86(n: usize, w: &[u8], x: &[u8]) -> f32 {
    check_dot(QuantType::Q3_K, n, w, x);
    let mut acc = [0f32; 8];
    for (bw, bx) in w
        .chunks_exact(BlockQ3_K::SIZE)
        .zip(x.chunks_exact(BlockQ8_K::SIZE))
    {
        let (bw, bx) = (BlockQ3_K::read(bw), BlockQ8_K::read(bx));
        let d = bx.d * bw.d.to_f32();
        let lanes = lanes_x86(&q3_values(&bw), &bx.qs, |e| scale_q3(e / 16, &bw.scales));
        fma_lanes(&mut acc, d, &lanes);
    }
    hsum_float_8(acc)
}

/// The shared part of the x86 Q4_K / Q5_K dots: `acc[l] = fma(y.d * x.d, (float)lane, acc[l])` with
/// the [`lanes_x86`] of `scale * q * y`, and the four minimum products `prod[k] = m[2k] * (bsums[4k]
/// + bsums[4k+1]) + m[2k+1] * (bsums[4k+2] + bsums[4k+3])` (`_mm_hadd_epi16` then `_mm_madd_epi16`),
/// returned with `dmin = -(y.d * x.dmin)`.
#[inline]
fn k4_x86(
    d: f16,
    dmin: f16,
    scales: &[u8; K_SCALE_SIZE],
    q: &[u8; QK_K],
    bx: &BlockQ8_K,
    acc: &mut [f32; 8],
) -> (f32, [i32; 4]) {
    let q: [i32; QK_K] = core::array::from_fn(|e| q[e] as i32);
    let sm: [(u8, u8); 8] = core::array::from_fn(|j| scale_min_k4(j, scales));
    let lanes = lanes_x86(&q, &bx.qs, |e| sm[e / 32].0 as i32);
    fma_lanes(acc, bx.d * d.to_f32(), &lanes);
    let q8s = |j: usize| bx.bsums[2 * j] as i32 + bx.bsums[2 * j + 1] as i32;
    let prod = core::array::from_fn(|k| {
        sm[2 * k].1 as i32 * q8s(2 * k) + sm[2 * k + 1].1 as i32 * q8s(2 * k + 1)
    });
    (-bx.d * dmin.to_f32(), prod)
}

/// ggml-cpu's x86 `ggml_vec_dot_q4_K_q8_K` (AVX2 branch), which llama.cpp runs for Q4_K matrices it
/// does not repack (row count not a multiple of 8) below 8 tokens: the lanes as [`k4_x86`], the
/// minimums in four f32 lanes `acc_m[k] = fma(dmin, (float)prod[k], acc_m[k])`; the result is
/// `hsum_float_8(acc) + ((acc_m[0] + acc_m[2]) + (acc_m[1] + acc_m[3]))`.
pub fn vec_dot_q4_k_q8_k_x86(n: usize, w: &[u8], x: &[u8]) -> f32 {
    check_dot(QuantType::Q4_K, n, w, x);
    let mut acc = [0f32; 8];
    let mut acc_m = [0f32; 4];
    for (bw, bx) in w
        .chunks_exact(BlockQ4_K::SIZE)
        .zip(x.chunks_exact(BlockQ8_K::SIZE))
    {
        let (bw, bx) = (BlockQ4_K::read(bw), BlockQ8_K::read(bx));
        let q = q4k_values(&bw.qs);
        let (dmin, prod) = k4_x86(bw.d, bw.dmin, &bw.scales, &q, &bx, &mut acc);
        for (a, &p) in acc_m.iter_mut().zip(&prod) {
            *a = dmin.mul_add(p as f32, *a);
        }
    }
    hsum_float_8(acc) + ((acc_m[0] + acc_m[2]) + (acc_m[1] + acc_m[3]))
}

/// ggml-cpu's x86 `ggml_vec_dot_q5_K_q8_K` (AVX2 branch): the lanes as [`k4_x86`] with 5-bit codes;
/// the minimums summed exactly per block, `(prod[0] + prod[1]) + (prod[2] + prod[3])`, into a scalar
/// `summs = fma(dmin, (float)that, summs)` (gcc contracts `summs += dmin * x` in llama.cpp's x86
/// build: `vfmadd231ss`); the result is `hsum_float_8(acc) + summs`.
pub fn vec_dot_q5_k_q8_k_x86(n: usize, w: &[u8], x: &[u8]) -> f32 {
    check_dot(QuantType::Q5_K, n, w, x);
    let mut acc = [0f32; 8];
    let mut summs = 0f32;
    for (bw, bx) in w
        .chunks_exact(BlockQ5_K::SIZE)
        .zip(x.chunks_exact(BlockQ8_K::SIZE))
    {
        let (bw, bx) = (BlockQ5_K::read(bw), BlockQ8_K::read(bx));
        let q = q5k_values(&bw);
        let (dmin, p) = k4_x86(bw.d, bw.dmin, &bw.scales, &q, &bx, &mut acc);
        summs = dmin.mul_add(((p[0] + p[1]) + (p[2] + p[3])) as f32, summs);
    }
    hsum_float_8(acc) + summs
}

/// One super-block of a K-quant product as exact integers: `s1 = sum_s scale_s * sum_{e in s} q_e *
/// y_e` over the sub-blocks `s` (with the signed codes of Q3_K / Q6_K) in chunks of `chunk`
/// elements (`s1[c]`), and `s2 = sum_s min_s * bsum_s` likewise (0 for types without minimums),
/// with the weight block's `d` and `dmin` as f32.
struct KBlockInts {
    s1: [i32; 4],
    s2: [i32; 4],
    d: f32,
    dmin: f32,
}

/// [`KBlockInts`] of block `b` of `w` with Q8_K block `bx`, in chunks of `chunk` elements (64, 128
/// or 256).
fn k_block_ints(ty: QuantType, bw: &[u8], bx: &BlockQ8_K, chunk: usize) -> KBlockInts {
    // q, scale per element, min per 16-element bsum group, d, dmin
    let (q, scale, min, d, dmin): ([i32; QK_K], [i32; 16], [i32; 16], f32, f32) = match ty {
        QuantType::Q2_K => {
            let b = BlockQ2_K::read(bw);
            let sc = core::array::from_fn(|s| (b.scales[s] & 0xf) as i32);
            let m = core::array::from_fn(|s| (b.scales[s] >> 4) as i32);
            (q2_values(&b), sc, m, b.d.to_f32(), b.dmin.to_f32())
        }
        QuantType::Q3_K => {
            let b = BlockQ3_K::read(bw);
            let sc = core::array::from_fn(|s| scale_q3(s, &b.scales));
            (q3_values(&b), sc, [0; 16], b.d.to_f32(), 0.0)
        }
        QuantType::Q4_K | QuantType::Q5_K => {
            let (d, dmin, scales, q) = if ty == QuantType::Q4_K {
                let b = BlockQ4_K::read(bw);
                (b.d, b.dmin, b.scales, q4k_values(&b.qs))
            } else {
                let b = BlockQ5_K::read(bw);
                (b.d, b.dmin, b.scales, q5k_values(&b))
            };
            let sc = core::array::from_fn(|s| scale_min_k4(s / 2, &scales).0 as i32);
            let m = core::array::from_fn(|s| scale_min_k4(s / 2, &scales).1 as i32);
            let q = core::array::from_fn(|e| q[e] as i32);
            (q, sc, m, d.to_f32(), dmin.to_f32())
        }
        QuantType::Q6_K => {
            let b = BlockQ6_K::read(bw);
            let sc = core::array::from_fn(|s| b.scales[s] as i32);
            (q6_values(&b), sc, [0; 16], b.d.to_f32(), 0.0)
        }
        _ => unreachable!("k_block_ints: {ty} is not a K-quant weight type"),
    };
    let (mut s1, mut s2) = ([0i32; 4], [0i32; 4]);
    for g in 0..16 {
        let dot: i32 = (16 * g..16 * g + 16).map(|e| q[e] * bx.qs[e] as i32).sum();
        let c = 16 * g / chunk;
        s1[c] += scale[g] * dot;
        s2[c] += min[g] * bx.bsums[g] as i32;
    }
    KBlockInts { s1, s2, d, dmin }
}

/// One element of ggml-cpu's *tiled* K-quant matmul for any K-quant weight type (see
/// [`vec_dot_q6_k_q8_k_tiled`]): per super-block `r = (float)s1 * x.d`, for Q2_K, Q4_K and Q5_K
/// `r = fma(-x.dmin, (float)s2, r)` (`_mm512_fnmadd_ps`), then `acc = fma(r, y.d, acc)` from 0.
pub fn vec_dot_k_q8_k_tiled(ty: QuantType, n: usize, w: &[u8], x: &[u8]) -> f32 {
    check_dot(ty, n, w, x);
    let has_min = matches!(ty, QuantType::Q2_K | QuantType::Q4_K | QuantType::Q5_K);
    let bs = ty.block_bytes();
    let mut acc = 0f32;
    for (bw, bx) in w.chunks_exact(bs).zip(x.chunks_exact(BlockQ8_K::SIZE)) {
        let bx = BlockQ8_K::read(bx);
        let k = k_block_ints(ty, bw, &bx, QK_K);
        let mut r = k.s1[0] as f32 * k.d;
        if has_min {
            r = (-k.dmin).mul_add(k.s2[0] as f32, r);
        }
        acc = r.mul_add(bx.d, acc);
    }
    acc
}

/// ggml's x86 repacked Q2_K kernels (`ggml_gemv_q2_K_8x8_q8_K`, `ggml_gemm_q2_K_8x8_q8_K`), which
/// llama.cpp runs on a CPU with AVX-512 for every Q2_K matrix with a multiple of 8 rows: per chunk of
/// `chunk` elements (the whole super-block in the gemv, 128 in the gemm) `acc = fma((float)s1, x.d *
/// y.d, acc)` and `acc_min = fma((float)s2, x.dmin * y.d, acc_min)`; the result is `acc - acc_min`.
/// (The Q4_K kernels are [`vec_dot_q4_k_q8_k_repack`] and [`vec_dot_q4_k_q8_k_repack_gemm`], chunks
/// of 256 and 64.)
pub fn vec_dot_q2_k_q8_k_repack(n: usize, w: &[u8], x: &[u8], gemm: bool) -> f32 {
    check_dot(QuantType::Q2_K, n, w, x);
    let chunk = if gemm { 128 } else { QK_K };
    let (mut acc, mut acc_min) = (0f32, 0f32);
    for (bw, bx) in w
        .chunks_exact(BlockQ2_K::SIZE)
        .zip(x.chunks_exact(BlockQ8_K::SIZE))
    {
        let bx = BlockQ8_K::read(bx);
        let k = k_block_ints(QuantType::Q2_K, bw, &bx, chunk);
        let (dd, dm) = (k.d * bx.d, k.dmin * bx.d);
        for c in 0..QK_K / chunk {
            acc = (k.s1[c] as f32).mul_add(dd, acc);
            acc_min = (k.s2[c] as f32).mul_add(dm, acc_min);
        }
    }
    acc - acc_min
}
