//! Reference kernels for ggml's K-quants Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and their activation type Q8_K.
//!
//! This file: the reference quantizers `quantize_row_*_ref` (ggml-quants.c) and the bit-packing
//! helpers; `kquants_dot.rs`: `dequantize_row_*` and `vec_dot_*_q8_K` (ggml-cpu/quants.c
//! `ggml_vec_dot_*_q8_K_generic`, including its eight f32 lane sums). The quantizers are ggml's float searches for the best sub-block scale (`make_qkx2_quants` for the
//! types with a minimum, `make_qx_quants` for Q6_K, `make_q3_quants` for Q3_K) followed by a
//! requantization against the f16/6-bit rounded scales; they are written as ggml's C with no fused
//! multiply-add and in the same order of operations, so they match a ggml compiled without
//! contraction bit for bit. ggml on x86-64 uses `quantize_row_q8_K_ref` itself as the activation
//! quantizer, so Q8_K has one quantizer.
//!
//! Integer conversions follow C: `nearest_int` is ggml's `+ 12582912.f` bit trick (round to nearest
//! even, defined for every f32), and stores into `uint8_t` / `int8_t` keep the low byte.
//! Bit layouts are documented on the block structs in [`crate::blocks`].

use super::{abs, check_row};
use crate::blocks::{
    BlockQ2_K, BlockQ3_K, BlockQ4_K, BlockQ5_K, BlockQ6_K, BlockQ8_K, K_SCALE_SIZE, QK_K,
};
#[cfg(not(feature = "std"))]
use crate::math::FloatExt;
use crate::QuantType;
use half::f16;

/// ggml `GROUP_MAX_EPS`: a group whose largest |x| is below this quantizes to zeros.
const GROUP_MAX_EPS: f32 = 1e-15;

/// ggml's `nearest_int`: adds 1.5 * 2^23 so the FPU rounds to an integer (ties to even) in the low
/// mantissa bits, then reads them back. Exact for |x| < 2^22; for larger or non-finite inputs it
/// returns whatever those bits hold, exactly as ggml does (its `assert` is compiled out).
#[inline]
fn nearest_int(x: f32) -> i32 {
    let v = x + 12_582_912.0;
    (v.to_bits() as i32 & 0x007f_ffff) - 0x0040_0000
}

/// ggml `get_scale_min_k4`: the 6-bit scale and minimum of 32-element sub-block `j` (0..8) of a
/// Q4_K / Q5_K block.
#[inline]
pub(super) fn scale_min_k4(j: usize, q: &[u8; K_SCALE_SIZE]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// The 6-bit scale of 16-element sub-block `j` (0..16) of a Q3_K block, minus 32.
#[inline]
pub(super) fn scale_q3(j: usize, s: &[u8; 12]) -> i32 {
    let low = if j < 8 { s[j] & 0xf } else { s[j - 8] >> 4 };
    let high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
    (low | (high << 4)) as i32 - 32
}

/// `make_qkx2_quants`: for one sub-block, the scale and minimum minimising the weighted error of
/// `x ≈ scale * L + min` with `L` in `0..=nmax`, searching `nstep + 1` candidate scales around
/// `nmax / (max - min)`. Writes `L`; returns `(scale, -min)` (ggml's `the_min`).
#[allow(clippy::too_many_arguments)]
fn make_qkx2_quants(
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    l_out: &mut [u8],
    laux: &mut [u8],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
    use_mad: bool,
) -> (f32, f32) {
    let n = x.len();
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l_out.fill(0);
        return (0.0, -min);
    }
    let err = |d: f32| if use_mad { abs(d) } else { d * d };
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0.0f32;
    for i in 0..n {
        let l = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
        l_out[i] = l as u8;
        let diff = scale * l as f32 + min - x[i];
        best_error += weights[i] * err(diff);
    }
    if nstep < 1 {
        return (scale, -min);
    }
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmax as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for i in 0..n {
            let l = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
            laux[i] = l as u8;
            let (w, lf) = (weights[i], l as f32);
            sum_l += w * lf;
            sum_l2 += w * lf * lf;
            sum_xl += w * lf * x[i];
        }
        let det = sum_w * sum_l2 - sum_l * sum_l;
        if det > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0.0f32;
            for i in 0..n {
                let diff = this_scale * laux[i] as f32 + this_min - x[i];
                cur_error += weights[i] * err(diff);
            }
            if cur_error < best_error {
                l_out[..n].copy_from_slice(&laux[..n]);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// `make_qx_quants` with `rmse_type = 1` and no importance weights (the only use by a `_ref`
/// quantizer: Q6_K): symmetric quants `L - nmax` in `-nmax..nmax`, error weighted by `x²`, 18
/// candidate scales `-(nmax ± 0.1 k) / max`. Writes `L` (offset by `nmax`); returns the scale.
fn make_qx_quants(nmax: i32, x: &[f32], l_out: &mut [i8]) -> f32 {
    let n = x.len();
    let (mut max, mut amax) = (0.0f32, 0.0f32);
    for &v in x {
        let ax = abs(v);
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l_out[..n].fill(0);
        return 0.0;
    }
    let q = |iscale: f32, v: f32| nearest_int(iscale * v).clamp(-nmax, nmax - 1);
    let mut iscale = -nmax as f32 / max;
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for i in 0..n {
        let l = q(iscale, x[i]);
        l_out[i] = (l + nmax) as i8;
        let w = x[i] * x[i];
        sumlx += w * x[i] * l as f32;
        suml2 += w * l as f32 * l as f32;
    }
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in -9i32..=9 {
        if is == 0 {
            continue;
        }
        iscale = -(nmax as f32 + 0.1 * is as f32) / max;
        sumlx = 0.0;
        suml2 = 0.0;
        for &v in x {
            let l = q(iscale, v) as f32;
            let w = v * v;
            sumlx += w * v * l;
            suml2 += w * l * l;
        }
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for i in 0..n {
                l_out[i] = (nmax + q(iscale, x[i])) as i8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// `make_q3_quants` with `do_rmse = true` (Q3_K): starts from `-nmax / max` and then moves single
/// quants while that lowers the `x²`-weighted error, up to 5 sweeps. Writes `L` (offset by
/// `nmax`); returns the scale.
fn make_q3_quants(nmax: i32, x: &[f32], l_out: &mut [i8]) -> f32 {
    let n = x.len();
    let (mut max, mut amax) = (0.0f32, 0.0f32);
    for &v in x {
        let ax = abs(v);
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l_out[..n].fill(0);
        return 0.0;
    }
    let iscale = -nmax as f32 / max;
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for i in 0..n {
        let l = nearest_int(iscale * x[i]).clamp(-nmax, nmax - 1);
        l_out[i] = l as i8;
        let w = x[i] * x[i];
        sumlx += w * x[i] * l as f32;
        suml2 += w * l as f32 * l as f32;
    }
    for _ in 0..5 {
        let mut n_changed = 0;
        for i in 0..n {
            let w = x[i] * x[i];
            let li = l_out[i] as f32;
            let mut slx = sumlx - w * x[i] * li;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * li * li;
                let new_l = nearest_int(x[i] * sl2 / slx).clamp(-nmax, nmax - 1);
                if new_l != l_out[i] as i32 {
                    let nl = new_l as f32;
                    slx += w * x[i] * nl;
                    sl2 += w * nl * nl;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        l_out[i] = new_l as i8;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed += 1;
                    }
                }
            }
        }
        if n_changed == 0 {
            break;
        }
    }
    for l in l_out[..n].iter_mut() {
        *l += nmax as i8;
    }
    if suml2 > 0.0 {
        sumlx / suml2
    } else {
        0.0
    }
}

/// Packs 2-bit values the way Q2_K / Q3_K `qs` hold them (see [`BlockQ2_K`]).
#[inline]
fn pack_2bit(l: &[u8; QK_K]) -> [u8; QK_K / 4] {
    let mut qs = [0u8; QK_K / 4];
    for h in 0..2 {
        for i in 0..32 {
            let j = 128 * h + i;
            qs[32 * h + i] = l[j] | (l[j + 32] << 2) | (l[j + 64] << 4) | (l[j + 96] << 6);
        }
    }
    qs
}

/// The 2-bit value of element `128h + 32p + i` (`p` the bit pair) from `qs`.
#[inline]
pub(super) fn unpack_2bit(qs: &[u8; QK_K / 4]) -> [u8; QK_K] {
    core::array::from_fn(|e| {
        let (h, p, i) = (e / 128, (e / 32) % 4, e % 32);
        (qs[32 * h + i] >> (2 * p)) & 3
    })
}

/// Packs the 6-bit scales and minimums of Q4_K / Q5_K (inverse of [`scale_min_k4`]).
#[inline]
fn pack_scales_k4(ls: &[u8; 8], lm: &[u8; 8]) -> [u8; K_SCALE_SIZE] {
    let mut s = [0u8; K_SCALE_SIZE];
    for j in 0..8 {
        if j < 4 {
            s[j] = ls[j];
            s[j + 4] = lm[j];
        } else {
            s[j + 4] = (ls[j] & 0xf) | ((lm[j] & 0xf) << 4);
            s[j - 4] |= (ls[j] >> 4) << 6;
            s[j] |= (lm[j] >> 4) << 6;
        }
    }
    s
}

/// The common part of `quantize_row_q{4,5}_K_ref`: per 32-element sub-block `make_qkx2_quants` with
/// weights `sqrt(mean(x²)) + |x|`, 6-bit scales and minimums relative to their maxima, then the
/// quants recomputed against the rounded scales. Returns `(d, dmin, scales, L)`.
fn quantize_k4_super(
    x: &[f32],
    nmax: i32,
    rmin: f32,
    nstep: i32,
) -> (f16, f16, [u8; K_SCALE_SIZE], [u8; QK_K]) {
    let mut l = [0u8; QK_K];
    let mut laux = [0u8; 32];
    let mut weights = [0f32; 32];
    let mut mins = [0f32; 8];
    let mut scales = [0f32; 8];
    let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
    for j in 0..8 {
        let xs = &x[32 * j..32 * j + 32];
        let mut sum_x2 = 0.0f32;
        for &v in xs {
            sum_x2 += v * v;
        }
        let av_x = (sum_x2 / 32.0).sqrt();
        for (w, &v) in weights.iter_mut().zip(xs) {
            *w = av_x + abs(v);
        }
        let (s, m) = make_qkx2_quants(
            nmax,
            xs,
            &weights,
            &mut l[32 * j..32 * j + 32],
            &mut laux,
            rmin,
            0.1,
            nstep,
            false,
        );
        scales[j] = s;
        mins[j] = m;
        if s > max_scale {
            max_scale = s;
        }
        if m > max_min {
            max_min = m;
        }
    }
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let ls: [u8; 8] = core::array::from_fn(|j| (nearest_int(inv_scale * scales[j]) as u8).min(63));
    let lm: [u8; 8] = core::array::from_fn(|j| (nearest_int(inv_min * mins[j]) as u8).min(63));
    let packed = pack_scales_k4(&ls, &lm);
    let d = f16::from_f32(max_scale / 63.0);
    let dmin = f16::from_f32(max_min / 63.0);
    for j in 0..8 {
        let (sc, m) = scale_min_k4(j, &packed);
        let dj = d.to_f32() * sc as f32;
        if dj == 0.0 {
            continue;
        }
        let dm = dmin.to_f32() * m as f32;
        for i in 32 * j..32 * j + 32 {
            l[i] = nearest_int((x[i] + dm) / dj).clamp(0, nmax) as u8;
        }
    }
    (d, dmin, packed, l)
}

// ---------------------------------------------------------------------------------------------
// Reference quantizers (ggml-quants.c `quantize_row_*_ref`).

/// `quantize_row_q2_K_ref`: per 16-element sub-block `make_qkx2_quants(nmax 3, weights |x|, mean
/// absolute error, 16 steps from -0.5)`, then 4-bit scales and minimums relative to their maxima.
pub fn quantize_row_q2_k_ref(src: &[f32], dst: &mut [u8]) {
    check_row(QuantType::Q2_K, src.len(), dst.len());
    for (x, out) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(BlockQ2_K::SIZE))
    {
        let mut l = [0u8; QK_K];
        let mut laux = [0u8; 16];
        let mut weights = [0f32; 16];
        let mut mins = [0f32; 16];
        let mut scales = [0f32; 16];
        let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
        for j in 0..16 {
            let xs = &x[16 * j..16 * j + 16];
            for (w, &v) in weights.iter_mut().zip(xs) {
                *w = abs(v);
            }
            let (s, m) = make_qkx2_quants(
                3,
                xs,
                &weights,
                &mut l[16 * j..16 * j + 16],
                &mut laux,
                -0.5,
                0.1,
                15,
                true,
            );
            scales[j] = s;
            mins[j] = m;
            if s > max_scale {
                max_scale = s;
            }
            if m > max_min {
                max_min = m;
            }
        }
        let q4scale = 15.0f32;
        let mut sc = [0u8; 16];
        let d = if max_scale > 0.0 {
            let iscale = q4scale / max_scale;
            for j in 0..16 {
                sc[j] = nearest_int(iscale * scales[j]) as u8;
            }
            f16::from_f32(max_scale / q4scale)
        } else {
            f16::from_f32(0.0)
        };
        let dmin = if max_min > 0.0 {
            let iscale = q4scale / max_min;
            for j in 0..16 {
                sc[j] |= (nearest_int(iscale * mins[j]) << 4) as u8;
            }
            f16::from_f32(max_min / q4scale)
        } else {
            f16::from_f32(0.0)
        };
        for (j, &s) in sc.iter().enumerate() {
            let dj = d.to_f32() * (s & 0xf) as f32;
            if dj == 0.0 {
                continue;
            }
            let dm = dmin.to_f32() * (s >> 4) as f32;
            for i in 16 * j..16 * j + 16 {
                l[i] = nearest_int((x[i] + dm) / dj).clamp(0, 3) as u8;
            }
        }
        BlockQ2_K {
            scales: sc,
            qs: pack_2bit(&l),
            d,
            dmin,
        }
        .write(out);
    }
}

/// `quantize_row_q3_K_ref`: per 16-element sub-block `make_q3_quants(nmax 4)`, 6-bit signed scales
/// relative to the scale of largest magnitude, then the quants recomputed against them.
pub fn quantize_row_q3_k_ref(src: &[f32], dst: &mut [u8]) {
    check_row(QuantType::Q3_K, src.len(), dst.len());
    for (x, out) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(BlockQ3_K::SIZE))
    {
        let mut l = [0i8; QK_K];
        let mut scales = [0f32; 16];
        let (mut max_scale, mut amax) = (0.0f32, 0.0f32);
        for j in 0..16 {
            scales[j] = make_q3_quants(4, &x[16 * j..16 * j + 16], &mut l[16 * j..16 * j + 16]);
            let s = abs(scales[j]);
            if s > amax {
                amax = s;
                max_scale = scales[j];
            }
        }
        let mut sc = [0u8; 12];
        let d = if max_scale != 0.0 {
            let iscale = -32.0 / max_scale;
            for j in 0..16 {
                // int8_t l = nearest_int(..); l = MAX(-32, MIN(31, l)) + 32;
                let lj = ((nearest_int(iscale * scales[j]) as i8).clamp(-32, 31) + 32) as u8;
                if j < 8 {
                    sc[j] = lj & 0xf;
                } else {
                    sc[j - 8] |= (lj & 0xf) << 4;
                }
                sc[j % 4 + 8] |= (lj >> 4) << (2 * (j / 4));
            }
            f16::from_f32(1.0 / iscale)
        } else {
            f16::from_f32(0.0)
        };
        for j in 0..16 {
            let dj = d.to_f32() * scale_q3(j, &sc) as f32;
            if dj == 0.0 {
                continue;
            }
            for i in 16 * j..16 * j + 16 {
                l[i] = (nearest_int(x[i] / dj).clamp(-4, 3) + 4) as i8;
            }
        }
        // Bit 2 of element 32b + i goes to hmask[i] bit b; the low two bits to qs.
        let mut hmask = [0u8; 32];
        let mut low = [0u8; QK_K];
        for (j, &q) in l.iter().enumerate() {
            let mut q = q as u8;
            if q > 3 {
                hmask[j % 32] |= 1 << (j / 32);
                q -= 4;
            }
            low[j] = q;
        }
        BlockQ3_K {
            hmask,
            qs: pack_2bit(&low),
            scales: sc,
            d,
        }
        .write(out);
    }
}

/// `quantize_row_q4_K_ref`: [`quantize_k4_super`] with `nmax 15`, 21 steps from -1.
pub fn quantize_row_q4_k_ref(src: &[f32], dst: &mut [u8]) {
    check_row(QuantType::Q4_K, src.len(), dst.len());
    for (x, out) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(BlockQ4_K::SIZE))
    {
        let (d, dmin, scales, l) = quantize_k4_super(x, 15, -1.0, 20);
        let mut qs = [0u8; QK_K / 2];
        for c in 0..4 {
            for i in 0..32 {
                qs[32 * c + i] = l[64 * c + i] | (l[64 * c + 32 + i] << 4);
            }
        }
        BlockQ4_K {
            d,
            dmin,
            scales,
            qs,
        }
        .write(out);
    }
}

/// `quantize_row_q5_K_ref`: [`quantize_k4_super`] with `nmax 31`, 16 steps from -0.5.
pub fn quantize_row_q5_k_ref(src: &[f32], dst: &mut [u8]) {
    check_row(QuantType::Q5_K, src.len(), dst.len());
    for (x, out) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(BlockQ5_K::SIZE))
    {
        let (d, dmin, scales, l) = quantize_k4_super(x, 31, -0.5, 15);
        let mut qs = [0u8; QK_K / 2];
        let mut qh = [0u8; QK_K / 8];
        for c in 0..4 {
            for i in 0..32 {
                let (l1, l2) = (l[64 * c + i], l[64 * c + 32 + i]);
                qh[i] |= ((l1 >> 4) << (2 * c)) | ((l2 >> 4) << (2 * c + 1));
                qs[32 * c + i] = (l1 & 0xf) | ((l2 & 0xf) << 4);
            }
        }
        BlockQ5_K {
            d,
            dmin,
            scales,
            qh,
            qs,
        }
        .write(out);
    }
}

/// `quantize_row_q6_K_ref`: per 16-element sub-block `make_qx_quants(nmax 32)`, i8 scales relative
/// to the scale of largest magnitude (`-128 / max_scale`), then the quants recomputed against them.
pub fn quantize_row_q6_k_ref(src: &[f32], dst: &mut [u8]) {
    check_row(QuantType::Q6_K, src.len(), dst.len());
    for (x, out) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(BlockQ6_K::SIZE))
    {
        let mut l = [0i8; QK_K];
        let mut scales = [0f32; 16];
        let (mut max_scale, mut max_abs_scale) = (0.0f32, 0.0f32);
        for ib in 0..16 {
            let s = make_qx_quants(32, &x[16 * ib..16 * ib + 16], &mut l[16 * ib..16 * ib + 16]);
            scales[ib] = s;
            if abs(s) > max_abs_scale {
                max_abs_scale = abs(s);
                max_scale = s;
            }
        }
        if max_abs_scale < GROUP_MAX_EPS {
            out[..BlockQ6_K::SIZE].fill(0);
            continue;
        }
        let iscale = -128.0 / max_scale;
        let d = f16::from_f32(1.0 / iscale);
        let sc: [i8; 16] =
            core::array::from_fn(|ib| nearest_int(iscale * scales[ib]).min(127) as i8);
        for (j, &s) in sc.iter().enumerate() {
            let dj = d.to_f32() * s as f32;
            if dj == 0.0 {
                continue;
            }
            for i in 16 * j..16 * j + 16 {
                l[i] = (nearest_int(x[i] / dj).clamp(-32, 31) + 32) as i8;
            }
        }
        let mut ql = [0u8; QK_K / 2];
        let mut qh = [0u8; QK_K / 4];
        for h in 0..2 {
            for i in 0..32 {
                let q = |k: usize| l[128 * h + 32 * k + i] as u8;
                ql[64 * h + i] = (q(0) & 0xf) | ((q(2) & 0xf) << 4);
                ql[64 * h + 32 + i] = (q(1) & 0xf) | ((q(3) & 0xf) << 4);
                qh[32 * h + i] =
                    (q(0) >> 4) | ((q(1) >> 4) << 2) | ((q(2) >> 4) << 4) | ((q(3) >> 4) << 6);
            }
        }
        BlockQ6_K {
            ql,
            qh,
            scales: sc,
            d,
        }
        .write(out);
    }
}

/// `quantize_row_q8_K_ref` (also ggml-cpu's x86 `quantize_row_q8_K`): `d = max / -127` for the
/// signed value of largest magnitude, `q = min(127, nearest_int(x * (-127 / max)))`, plus the sums
/// of each 16 quants.
pub fn quantize_row_q8_k_ref(src: &[f32], dst: &mut [u8]) {
    q8_k(src, dst, |iscale, v| nearest_int(iscale * v));
}

/// [`quantize_row_q8_k_ref`] as a compiler that contracts `nearest_int(iscale * x)` (an add of
/// `12582912.f` to the product) into one FMA builds it: `fma(iscale, x, 12582912.f)`, rounded once.
/// This is what llama.cpp computes when ggml-base is compiled with FMA enabled (tools/peer's build
/// passes `-C target-cpu=x86-64-v4` to every C file, and GCC contracts by default), and so what the
/// K-quant logits fixtures were made with; upstream's default build compiles ggml-base for baseline
/// x86-64, without FMA, which gives [`quantize_row_q8_k_ref`]. The two differ only where `iscale * x`
/// lies within one rounding of a half-integer.
pub fn quantize_row_q8_k_fma(src: &[f32], dst: &mut [u8]) {
    q8_k(src, dst, |iscale, v| {
        let r = iscale.mul_add(v, 12_582_912.0);
        (r.to_bits() as i32 & 0x007f_ffff) - 0x0040_0000
    });
}

/// ggml-cpu's x86 `ggml_quantize_mat_q8_K_4x8` (AVX2), row by row: how llama.cpp quantizes the
/// activations of a repacked Q4_K product (`ggml_gemm_q4_K_8x8_q8_K`) in groups of four tokens (the
/// `t % 4` tokens left over go through `quantize_row_q8_K`). Per block, `amax = max |x|`,
/// `iscale = -127 / amax` when some element equals `+amax`, else `127 / amax`; `q =
/// round_ties_even(x * iscale)` (the product rounded first: `_mm256_mul_ps` then `_mm256_round_ps`)
/// saturated to i8; `d = 1 / iscale`; the sums of each 16 quants. It differs from
/// [`quantize_row_q8_k_fma`] where `x * iscale` lies within one rounding of a half-integer, and when
/// `-amax` comes before `+amax` in the block.
pub fn quantize_row_q8_k_4x8_x86(src: &[f32], dst: &mut [u8]) {
    check_row(QuantType::Q8_K, src.len(), dst.len());
    for (x, out) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(BlockQ8_K::SIZE))
    {
        let amax = x
            .iter()
            .fold(0.0f32, |m, &v| if abs(v) > m { abs(v) } else { m });
        let mut b = BlockQ8_K {
            d: 0.0,
            qs: [0; QK_K],
            bsums: [0; 16],
        };
        if amax != 0.0 {
            let iscale = if x.contains(&amax) {
                -127.0 / amax
            } else {
                127.0 / amax
            };
            for (q, &v) in b.qs.iter_mut().zip(x) {
                *q = ((v * iscale).round_ties_even() as i32).clamp(-128, 127) as i8;
            }
            for (g, s) in b.bsums.iter_mut().enumerate() {
                *s = b.qs[16 * g..16 * g + 16]
                    .iter()
                    .map(|&q| q as i32)
                    .sum::<i32>() as i16;
            }
            b.d = 1.0 / iscale;
        }
        b.write(out);
    }
}

fn q8_k(src: &[f32], dst: &mut [u8], nearest: impl Fn(f32, f32) -> i32) {
    check_row(QuantType::Q8_K, src.len(), dst.len());
    for (x, out) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(BlockQ8_K::SIZE))
    {
        let (mut max, mut amax) = (0.0f32, 0.0f32);
        for &v in x {
            if abs(v) > amax {
                amax = abs(v);
                max = v;
            }
        }
        let mut b = BlockQ8_K {
            d: 0.0,
            qs: [0; QK_K],
            bsums: [0; 16],
        };
        if amax != 0.0 {
            let iscale = -127.0 / max;
            for (q, &v) in b.qs.iter_mut().zip(x) {
                *q = nearest(iscale, v).min(127) as i8;
            }
            for (g, s) in b.bsums.iter_mut().enumerate() {
                *s = b.qs[16 * g..16 * g + 16]
                    .iter()
                    .map(|&q| q as i32)
                    .sum::<i32>() as i16;
            }
            b.d = 1.0 / iscale;
        }
        b.write(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_int_rounds_to_even() {
        for (x, want) in [
            (0.5f32, 0),
            (1.5, 2),
            (2.5, 2),
            (-0.5, 0),
            (-1.5, -2),
            (3.49, 3),
            (-7.6, -8),
        ] {
            assert_eq!(nearest_int(x), want, "{x}");
        }
    }

    #[test]
    fn scale_packing_round_trips() {
        let ls: [u8; 8] = core::array::from_fn(|j| (j as u8 * 9 + 5) % 64);
        let lm: [u8; 8] = core::array::from_fn(|j| (j as u8 * 23 + 60) % 64);
        let p = pack_scales_k4(&ls, &lm);
        for j in 0..8 {
            assert_eq!(scale_min_k4(j, &p), (ls[j], lm[j]));
        }
    }
}
