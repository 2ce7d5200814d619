//! Reference kernels for ggml's 32-element block types Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and Q8_1.
//!
//! Per type: `dequantize_row_*` (ggml-quants.c), `quantize_row_*_ref` (ggml-quants.c), and
//! `vec_dot_*` (ggml-cpu/quants.c `ggml_vec_dot_*_generic`); plus the x86 activation quantizers
//! `quantize_row_q8_{0,1}_x86` (ggml-cpu/arch/x86/quants.c). Element order inside a block is
//! documented in [`crate::blocks`]. Scales are stored as f16 and widened exactly to f32 before use.
//!
//! The conversions `(int8_t)(v + 8.5f)` etc. in ggml truncate toward zero. Where C leaves them
//! undefined (NaN, out of range: reached when a block's scale is an f32 subnormal and `1/d` overflows),
//! `c_to_i8` reproduces what gcc and clang compile them to on x86-64, which is what ggml writes there.

use super::{abs, check_row, cvtps_epi32, maxps, round_half_away, round_half_even};
use crate::blocks::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1, QK};
use crate::QuantType;
use half::f16;

const HALF: usize = QK / 2;

/// The 5-bit values of a Q5 block: low nibble from `qs`, bit 4 from `qh` (see [`crate::blocks`]).
#[inline]
fn q5_values(qs: &[u8; HALF], qh: [u8; 4]) -> [i32; QK] {
    let qh = u32::from_le_bytes(qh);
    let mut q = [0i32; QK];
    for j in 0..HALF {
        q[j] = ((qs[j] & 0x0f) as u32 | ((qh >> j) << 4 & 0x10)) as i32;
        q[j + HALF] = ((qs[j] >> 4) as u32 | ((qh >> (j + 12)) & 0x10)) as i32;
    }
    q
}

/// The 4-bit values of a Q4 block, unsigned (0..16).
#[inline]
fn q4_values(qs: &[u8; HALF]) -> [i32; QK] {
    let mut q = [0i32; QK];
    for j in 0..HALF {
        q[j] = (qs[j] & 0x0f) as i32;
        q[j + HALF] = (qs[j] >> 4) as i32;
    }
    q
}

/// Packs 5-bit values the way `quantize_row_q5_{0,1}_ref` does.
#[inline]
fn q5_pack(q: &[u8; QK]) -> ([u8; HALF], [u8; 4]) {
    let mut qs = [0u8; HALF];
    let mut qh = 0u32;
    for j in 0..HALF {
        let (x0, x1) = (q[j], q[j + HALF]);
        qs[j] = (x0 & 0x0f) | ((x1 & 0x0f) << 4);
        qh |= ((x0 as u32 & 0x10) >> 4) << j;
        qh |= ((x1 as u32 & 0x10) >> 4) << (j + HALF);
    }
    (qs, qh.to_le_bytes())
}

/// C's `(int8_t)v` / `(uint8_t)v` as compiled for x86-64 (`cvttss2si`): truncation toward zero to
/// i32, NaN and values outside i32 becoming the "integer indefinite" `0x8000_0000`, then the low byte.
/// Rust's saturating `as` would give 127 / -128 for the ±inf that ggml's `quantize_row_*_ref` meets
/// when `d` is an f32 subnormal (every |x| in the block below ~1e-37) and `id = 1/d` overflows; ggml
/// stores 0 there (its f16 scale is 0 too, so the block dequantizes to zeros either way). Checked
/// against ggml by `ingot-peer quantize-parity` (set `tiny`).
#[inline]
fn c_to_i8(v: f32) -> i8 {
    let i = if v.is_nan() || !(-2_147_483_648.0..2_147_483_648.0).contains(&v) {
        i32::MIN
    } else {
        v as i32
    };
    i as i8 // the low byte
}

#[inline]
fn dot_i8(q: &[i32; QK], y: &[i8; QK]) -> i32 {
    let (mut sumi0, mut sumi1) = (0i32, 0i32);
    for j in 0..HALF {
        sumi0 += q[j] * y[j] as i32;
        sumi1 += q[j + HALF] * y[j + HALF] as i32;
    }
    sumi0 + sumi1
}

/// The `amax`/`max` scan of `quantize_row_q{4,5}_0_ref`: the signed value of largest magnitude,
/// first occurrence winning ties.
#[inline]
fn signed_absmax(x: &[f32]) -> f32 {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if amax < abs(v) {
            amax = abs(v);
            max = v;
        }
    }
    max
}

/// The `min`/`max` scan of `quantize_row_q{4,5}_1_ref`.
#[inline]
fn min_max(x: &[f32]) -> (f32, f32) {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

// ---------------------------------------------------------------------------------------------
// Dequantization (ggml-quants.c `dequantize_row_*`).

/// `dequantize_row_q4_0`: `(q - 8) * d`.
pub fn dequantize_row_q4_0(src: &[u8], dst: &mut [f32]) {
    check_row(QuantType::Q4_0, dst.len(), src.len());
    for (b, y) in src
        .chunks_exact(BlockQ4_0::SIZE)
        .zip(dst.chunks_exact_mut(QK))
    {
        let b = BlockQ4_0::read(b);
        let d = b.d.to_f32();
        for (y, q) in y.iter_mut().zip(q4_values(&b.qs)) {
            *y = (q - 8) as f32 * d;
        }
    }
}

/// `dequantize_row_q4_1`: `q * d + m` (two roundings, no FMA).
pub fn dequantize_row_q4_1(src: &[u8], dst: &mut [f32]) {
    check_row(QuantType::Q4_1, dst.len(), src.len());
    for (b, y) in src
        .chunks_exact(BlockQ4_1::SIZE)
        .zip(dst.chunks_exact_mut(QK))
    {
        let b = BlockQ4_1::read(b);
        let (d, m) = (b.d.to_f32(), b.m.to_f32());
        for (y, q) in y.iter_mut().zip(q4_values(&b.qs)) {
            *y = q as f32 * d + m;
        }
    }
}

/// `dequantize_row_q5_0`: `(q - 16) * d`.
pub fn dequantize_row_q5_0(src: &[u8], dst: &mut [f32]) {
    check_row(QuantType::Q5_0, dst.len(), src.len());
    for (b, y) in src
        .chunks_exact(BlockQ5_0::SIZE)
        .zip(dst.chunks_exact_mut(QK))
    {
        let b = BlockQ5_0::read(b);
        let d = b.d.to_f32();
        for (y, q) in y.iter_mut().zip(q5_values(&b.qs, b.qh)) {
            *y = (q - 16) as f32 * d;
        }
    }
}

/// `dequantize_row_q5_1`: `q * d + m` (two roundings, no FMA).
pub fn dequantize_row_q5_1(src: &[u8], dst: &mut [f32]) {
    check_row(QuantType::Q5_1, dst.len(), src.len());
    for (b, y) in src
        .chunks_exact(BlockQ5_1::SIZE)
        .zip(dst.chunks_exact_mut(QK))
    {
        let b = BlockQ5_1::read(b);
        let (d, m) = (b.d.to_f32(), b.m.to_f32());
        for (y, q) in y.iter_mut().zip(q5_values(&b.qs, b.qh)) {
            *y = q as f32 * d + m;
        }
    }
}

/// `dequantize_row_q8_0`: `q * d`.
pub fn dequantize_row_q8_0(src: &[u8], dst: &mut [f32]) {
    check_row(QuantType::Q8_0, dst.len(), src.len());
    for (b, y) in src
        .chunks_exact(BlockQ8_0::SIZE)
        .zip(dst.chunks_exact_mut(QK))
    {
        let b = BlockQ8_0::read(b);
        let d = b.d.to_f32();
        for (y, q) in y.iter_mut().zip(b.qs) {
            *y = q as f32 * d;
        }
    }
}

/// `q * d`, ignoring the cached sum `s`. ggml has no Q8_1 dequantizer (Q8_1 only ever exists as a
/// matmul activation); this one is ingot's, for tests and tooling.
pub fn dequantize_row_q8_1(src: &[u8], dst: &mut [f32]) {
    check_row(QuantType::Q8_1, dst.len(), src.len());
    for (b, y) in src
        .chunks_exact(BlockQ8_1::SIZE)
        .zip(dst.chunks_exact_mut(QK))
    {
        let b = BlockQ8_1::read(b);
        let d = b.d.to_f32();
        for (y, q) in y.iter_mut().zip(b.qs) {
            *y = q as f32 * d;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reference quantizers (ggml-quants.c `quantize_row_*_ref`): what model files contain.

/// `quantize_row_q4_0_ref`: `d = max / -8` where `max` is the signed value of largest magnitude,
/// so that value maps to q = 0 exactly; `q = min(15, trunc(x/d + 8.5))`.
pub fn quantize_row_q4_0_ref(src: &[f32], dst: &mut [u8]) {
    check_row(QuantType::Q4_0, src.len(), dst.len());
    for (x, out) in src
        .chunks_exact(QK)
        .zip(dst.chunks_exact_mut(BlockQ4_0::SIZE))
    {
        let d = signed_absmax(x) / -8.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut qs = [0u8; HALF];
        for j in 0..HALF {
            let xi0 = c_to_i8(x[j] * id + 8.5).min(15) as u8;
            let xi1 = c_to_i8(x[j + HALF] * id + 8.5).min(15) as u8;
            qs[j] = xi0 | (xi1 << 4);
        }
        BlockQ4_0 {
            d: f16::from_f32(d),
            qs,
        }
        .write(out);
    }
}

/// `quantize_row_q4_1_ref`: `d = (max - min) / 15`, `m = min`, `q = min(15, trunc((x - min)/d + 0.5))`.
pub fn quantize_row_q4_1_ref(src: &[f32], dst: &mut [u8]) {
    check_row(QuantType::Q4_1, src.len(), dst.len());
    for (x, out) in src
        .chunks_exact(QK)
        .zip(dst.chunks_exact_mut(BlockQ4_1::SIZE))
    {
        let (min, max) = min_max(x);
        let d = (max - min) / 15.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut qs = [0u8; HALF];
        for j in 0..HALF {
            let xi0 = c_to_i8((x[j] - min) * id + 0.5).min(15) as u8;
            let xi1 = c_to_i8((x[j + HALF] - min) * id + 0.5).min(15) as u8;
            qs[j] = xi0 | (xi1 << 4);
        }
        let b = BlockQ4_1 {
            d: f16::from_f32(d),
            m: f16::from_f32(min),
            qs,
        };
        b.write(out);
    }
}

/// `quantize_row_q5_0_ref`: as Q4_0 with `d = max / -16` and `q = min(31, trunc(x/d + 16.5))`.
pub fn quantize_row_q5_0_ref(src: &[f32], dst: &mut [u8]) {
    check_row(QuantType::Q5_0, src.len(), dst.len());
    for (x, out) in src
        .chunks_exact(QK)
        .zip(dst.chunks_exact_mut(BlockQ5_0::SIZE))
    {
        let d = signed_absmax(x) / -16.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let q: [u8; QK] = core::array::from_fn(|j| c_to_i8(x[j] * id + 16.5).min(31) as u8);
        let (qs, qh) = q5_pack(&q);
        BlockQ5_0 {
            d: f16::from_f32(d),
            qh,
            qs,
        }
        .write(out);
    }
}

/// `quantize_row_q5_1_ref`: as Q4_1 with `d = (max - min) / 31` and `q = trunc((x - min)/d + 0.5)`
/// (ggml applies no `min(31, ..)` here; only the low 5 bits are stored).
pub fn quantize_row_q5_1_ref(src: &[f32], dst: &mut [u8]) {
    check_row(QuantType::Q5_1, src.len(), dst.len());
    for (x, out) in src
        .chunks_exact(QK)
        .zip(dst.chunks_exact_mut(BlockQ5_1::SIZE))
    {
        let (min, max) = min_max(x);
        let d = (max - min) / 31.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let q: [u8; QK] = core::array::from_fn(|j| c_to_i8((x[j] - min) * id + 0.5) as u8);
        let (qs, qh) = q5_pack(&q);
        let b = BlockQ5_1 {
            d: f16::from_f32(d),
            m: f16::from_f32(min),
            qh,
            qs,
        };
        b.write(out);
    }
}

/// The scale and quants of `quantize_row_q8_{0,1}_ref`: `d = amax / 127`, `q = roundf(x * (1/d))`
/// (ties away from zero).
#[inline]
fn q8_ref_block(x: &[f32]) -> (f32, [i8; QK]) {
    let mut amax = 0.0f32;
    for &v in x {
        // MAX(amax, fabsf(v)) = amax > |v| ? amax : |v|
        amax = if amax > abs(v) { amax } else { abs(v) };
    }
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let qs = core::array::from_fn(|j| c_to_i8(round_half_away(x[j] * id)));
    (d, qs)
}

/// `quantize_row_q8_0_ref`: the quantizer for Q8_0 *weights*. See [`quantize_row_q8_0_x86`] for
/// the activation quantizer, which rounds differently.
pub fn quantize_row_q8_0_ref(src: &[f32], dst: &mut [u8]) {
    check_row(QuantType::Q8_0, src.len(), dst.len());
    for (x, out) in src
        .chunks_exact(QK)
        .zip(dst.chunks_exact_mut(BlockQ8_0::SIZE))
    {
        let (d, qs) = q8_ref_block(x);
        BlockQ8_0 {
            d: f16::from_f32(d),
            qs,
        }
        .write(out);
    }
}

/// `quantize_row_q8_1_ref`: as Q8_0 plus `s = fp16(sum(q) * d)`.
pub fn quantize_row_q8_1_ref(src: &[f32], dst: &mut [u8]) {
    check_row(QuantType::Q8_1, src.len(), dst.len());
    for (x, out) in src
        .chunks_exact(QK)
        .zip(dst.chunks_exact_mut(BlockQ8_1::SIZE))
    {
        let (d, qs) = q8_ref_block(x);
        let sum: i32 = qs.iter().map(|&q| q as i32).sum();
        let b = BlockQ8_1 {
            d: f16::from_f32(d),
            s: f16::from_f32(sum as f32 * d),
            qs,
        };
        b.write(out);
    }
}

// ---------------------------------------------------------------------------------------------
// Activation quantizers (ggml-cpu/arch/x86/quants.c, AVX2 and AVX-512 builds).

/// One block of x86 `quantize_row_q8_{0,1}`, lane for lane:
///
/// ```text
/// amax  = max over 4 ymm of |x| (andnot sign), then a max-tree across lanes   (maxps semantics)
/// d     = amax / 127
/// id    = amax != 0 ? 127 / amax : 0          (not 1/d: the rounding differs from the _ref path)
/// q32   = cvtps_epi32(round_nearest_even(x * id))
/// qs    = saturate_i8(q32)                    (packs_epi32 then packs_epi16)
/// isum  = wrapping sum of q32                 (hsum_i32_8, used for Q8_1's s)
/// ```
#[inline]
fn q8_x86_block(x: &[f32]) -> (f32, [i8; QK], i32) {
    // Lane l of the ymm max: |x[l]| vs |x[8+l]|, |x[16+l]|, |x[24+l]| in load order.
    let m8: [f32; 8] = core::array::from_fn(|l| {
        let m = maxps(abs(x[l]), abs(x[8 + l]));
        let m = maxps(m, abs(x[16 + l]));
        maxps(m, abs(x[24 + l]))
    });
    // _mm_max_ps(high half, low half); then with movehl (lanes 2,3); then max_ss with movehdup.
    let m4: [f32; 4] = core::array::from_fn(|l| maxps(m8[4 + l], m8[l]));
    let m2 = [maxps(m4[0], m4[2]), maxps(m4[1], m4[3])];
    let amax = maxps(m2[0], m2[1]);

    let d = amax / 127.0;
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    let mut qs = [0i8; QK];
    let mut isum = 0i32;
    for (q, &v) in qs.iter_mut().zip(x) {
        let q32 = cvtps_epi32(round_half_even(v * id));
        isum = isum.wrapping_add(q32);
        *q = q32.clamp(i8::MIN as i32, i8::MAX as i32) as i8;
    }
    (d, qs, isum)
}

/// ggml-cpu x86 `quantize_row_q8_0`: the activation quantizer paired with Q4_0/Q5_0/Q8_0 weights.
/// Ties round to even and the multiplier is `127 / amax` (see the module docs).
pub fn quantize_row_q8_0_x86(src: &[f32], dst: &mut [u8]) {
    check_row(QuantType::Q8_0, src.len(), dst.len());
    for (x, out) in src
        .chunks_exact(QK)
        .zip(dst.chunks_exact_mut(BlockQ8_0::SIZE))
    {
        let (d, qs, _) = q8_x86_block(x);
        BlockQ8_0 {
            d: f16::from_f32(d),
            qs,
        }
        .write(out);
    }
}

/// ggml-cpu x86 `quantize_row_q8_1`: as [`quantize_row_q8_0_x86`] plus `s = fp16(d * isum)` with
/// `d` the f32 scale before its own f16 rounding.
pub fn quantize_row_q8_1_x86(src: &[f32], dst: &mut [u8]) {
    check_row(QuantType::Q8_1, src.len(), dst.len());
    for (x, out) in src
        .chunks_exact(QK)
        .zip(dst.chunks_exact_mut(BlockQ8_1::SIZE))
    {
        let (d, qs, isum) = q8_x86_block(x);
        let b = BlockQ8_1 {
            d: f16::from_f32(d),
            s: f16::from_f32(d * isum as f32),
            qs,
        };
        b.write(out);
    }
}

// ---------------------------------------------------------------------------------------------
// Dot products (ggml-cpu/quants.c `ggml_vec_dot_*_generic`). Each keeps ggml's exact f32
// expression per block; they differ (sumi*dx*dy vs (dx*dy)*sumi) and so does the rounding.

#[track_caller]
fn check_dot(w_ty: QuantType, x_ty: QuantType, n: usize, w: &[u8], x: &[u8]) {
    check_row(w_ty, n, w.len());
    check_row(x_ty, n, x.len());
}

/// `ggml_vec_dot_q4_0_q8_0_generic`: `sumf += sumi * dw * dx` (left to right).
pub fn vec_dot_q4_0_q8_0(n: usize, w: &[u8], x: &[u8]) -> f32 {
    check_dot(QuantType::Q4_0, QuantType::Q8_0, n, w, x);
    let mut sumf = 0.0f32;
    for (bw, bx) in w
        .chunks_exact(BlockQ4_0::SIZE)
        .zip(x.chunks_exact(BlockQ8_0::SIZE))
    {
        let (bw, bx) = (BlockQ4_0::read(bw), BlockQ8_0::read(bx));
        let q = q4_values(&bw.qs).map(|q| q - 8);
        let sumi = dot_i8(&q, &bx.qs);
        sumf += sumi as f32 * bw.d.to_f32() * bx.d.to_f32();
    }
    sumf
}

/// `ggml_vec_dot_q4_1_q8_1_generic`: `sumf += (dw * dx) * sumi + mw * sx`.
pub fn vec_dot_q4_1_q8_1(n: usize, w: &[u8], x: &[u8]) -> f32 {
    check_dot(QuantType::Q4_1, QuantType::Q8_1, n, w, x);
    let mut sumf = 0.0f32;
    for (bw, bx) in w
        .chunks_exact(BlockQ4_1::SIZE)
        .zip(x.chunks_exact(BlockQ8_1::SIZE))
    {
        let (bw, bx) = (BlockQ4_1::read(bw), BlockQ8_1::read(bx));
        let sumi = dot_i8(&q4_values(&bw.qs), &bx.qs);
        sumf += (bw.d.to_f32() * bx.d.to_f32()) * sumi as f32 + bw.m.to_f32() * bx.s.to_f32();
    }
    sumf
}

/// `ggml_vec_dot_q5_0_q8_0_generic`: `sumf += (dw * dx) * sumi`.
pub fn vec_dot_q5_0_q8_0(n: usize, w: &[u8], x: &[u8]) -> f32 {
    check_dot(QuantType::Q5_0, QuantType::Q8_0, n, w, x);
    let mut sumf = 0.0f32;
    for (bw, bx) in w
        .chunks_exact(BlockQ5_0::SIZE)
        .zip(x.chunks_exact(BlockQ8_0::SIZE))
    {
        let (bw, bx) = (BlockQ5_0::read(bw), BlockQ8_0::read(bx));
        let q = q5_values(&bw.qs, bw.qh).map(|q| q - 16);
        let sumi = dot_i8(&q, &bx.qs);
        sumf += (bw.d.to_f32() * bx.d.to_f32()) * sumi as f32;
    }
    sumf
}

/// `ggml_vec_dot_q5_1_q8_1_generic`: `sumf += (dw * dx) * sumi + mw * sx`.
pub fn vec_dot_q5_1_q8_1(n: usize, w: &[u8], x: &[u8]) -> f32 {
    check_dot(QuantType::Q5_1, QuantType::Q8_1, n, w, x);
    let mut sumf = 0.0f32;
    for (bw, bx) in w
        .chunks_exact(BlockQ5_1::SIZE)
        .zip(x.chunks_exact(BlockQ8_1::SIZE))
    {
        let (bw, bx) = (BlockQ5_1::read(bw), BlockQ8_1::read(bx));
        let sumi = dot_i8(&q5_values(&bw.qs, bw.qh), &bx.qs);
        sumf += (bw.d.to_f32() * bx.d.to_f32()) * sumi as f32 + bw.m.to_f32() * bx.s.to_f32();
    }
    sumf
}

/// `ggml_vec_dot_q8_0_q8_0_generic`: `sumf += sumi * (dw * dx)`.
pub fn vec_dot_q8_0_q8_0(n: usize, w: &[u8], x: &[u8]) -> f32 {
    check_dot(QuantType::Q8_0, QuantType::Q8_0, n, w, x);
    let mut sumf = 0.0f32;
    for (bw, bx) in w
        .chunks_exact(BlockQ8_0::SIZE)
        .zip(x.chunks_exact(BlockQ8_0::SIZE))
    {
        let (bw, bx) = (BlockQ8_0::read(bw), BlockQ8_0::read(bx));
        let sumi: i32 = bw
            .qs
            .iter()
            .zip(&bx.qs)
            .map(|(&a, &b)| a as i32 * b as i32)
            .sum();
        sumf += sumi as f32 * (bw.d.to_f32() * bx.d.to_f32());
    }
    sumf
}

/// Q8_1 x Q8_1, which ggml does not define (it never stores Q8_1 weights): the Q8_0 product on
/// `d` and `qs`, ignoring both `s` fields.
pub fn vec_dot_q8_1_q8_1(n: usize, w: &[u8], x: &[u8]) -> f32 {
    check_dot(QuantType::Q8_1, QuantType::Q8_1, n, w, x);
    let mut sumf = 0.0f32;
    for (bw, bx) in w
        .chunks_exact(BlockQ8_1::SIZE)
        .zip(x.chunks_exact(BlockQ8_1::SIZE))
    {
        let (bw, bx) = (BlockQ8_1::read(bw), BlockQ8_1::read(bx));
        let sumi: i32 = bw
            .qs
            .iter()
            .zip(&bx.qs)
            .map(|(&a, &b)| a as i32 * b as i32)
            .sum();
        sumf += sumi as f32 * (bw.d.to_f32() * bx.d.to_f32());
    }
    sumf
}
