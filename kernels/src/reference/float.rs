//! Reference kernels for the unblocked float types F32, F16 and BF16 (little-endian bytes).
//!
//! Conversions follow ggml: f16 -> f32 and bf16 -> f32 are exact; f32 -> f16 rounds to nearest even
//! (`GGML_FP32_TO_FP16`, F16C `vcvtps2ph` with imm 0, and `half::f16::from_f32` all agree);
//! f32 -> bf16 is `ggml_compute_fp32_to_bf16` ([`fp32_to_bf16`]). Dot products follow the scalar
//! loops of ggml-cpu's `vec.cpp`: each product is formed in f32 and the sum is kept in `double`
//! (`ggml_float`), rounded to f32 once at the end.

use super::check_row;
use crate::QuantType;
use half::f16;

#[inline]
fn f32_at(b: &[u8], i: usize) -> f32 {
    f32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
}

#[inline]
fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[2 * i], b[2 * i + 1]])
}

#[inline]
fn bf16_bits_to_f32(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// `ggml_compute_fp32_to_bf16`: round to nearest even on the upper 16 bits; NaN keeps its sign and
/// top payload bits and is forced quiet (bit 6). Infinities and overflow to infinity fall out of
/// the same rounding add.
#[inline]
pub fn fp32_to_bf16(x: f32) -> u16 {
    let u = x.to_bits();
    if (u & 0x7fff_ffff) > 0x7f80_0000 {
        return ((u >> 16) | 64) as u16;
    }
    (u.wrapping_add(0x7fff + ((u >> 16) & 1)) >> 16) as u16
}

/// F32 row bytes -> f32 (a little-endian copy).
pub fn f32_to_f32(src: &[u8], dst: &mut [f32]) {
    check_row(QuantType::F32, dst.len(), src.len());
    for (i, y) in dst.iter_mut().enumerate() {
        *y = f32_at(src, i);
    }
}

/// f32 -> F32 row bytes (a little-endian copy).
pub fn f32_from_f32(src: &[f32], dst: &mut [u8]) {
    check_row(QuantType::F32, src.len(), dst.len());
    for (x, b) in src.iter().zip(dst.chunks_exact_mut(4)) {
        b.copy_from_slice(&x.to_le_bytes());
    }
}

/// F16 row bytes -> f32 (exact).
pub fn f16_to_f32(src: &[u8], dst: &mut [f32]) {
    check_row(QuantType::F16, dst.len(), src.len());
    for (i, y) in dst.iter_mut().enumerate() {
        *y = f16::from_bits(u16_at(src, i)).to_f32();
    }
}

/// f32 -> F16 row bytes, round to nearest even (`ggml_cpu_fp32_to_fp16`).
pub fn f16_from_f32(src: &[f32], dst: &mut [u8]) {
    check_row(QuantType::F16, src.len(), dst.len());
    for (x, b) in src.iter().zip(dst.chunks_exact_mut(2)) {
        b.copy_from_slice(&f16::from_f32(*x).to_bits().to_le_bytes());
    }
}

/// BF16 row bytes -> f32 (exact: the bits shifted up).
pub fn bf16_to_f32(src: &[u8], dst: &mut [f32]) {
    check_row(QuantType::BF16, dst.len(), src.len());
    for (i, y) in dst.iter_mut().enumerate() {
        *y = bf16_bits_to_f32(u16_at(src, i));
    }
}

/// f32 -> BF16 row bytes ([`fp32_to_bf16`] per element).
pub fn bf16_from_f32(src: &[f32], dst: &mut [u8]) {
    check_row(QuantType::BF16, src.len(), dst.len());
    for (x, b) in src.iter().zip(dst.chunks_exact_mut(2)) {
        b.copy_from_slice(&fp32_to_bf16(*x).to_le_bytes());
    }
}

/// `ggml_vec_dot_f32` (scalar): `sum += (double)(w[i] * x[i])`.
pub fn vec_dot_f32(n: usize, w: &[u8], x: &[u8]) -> f32 {
    check_row(QuantType::F32, n, w.len());
    check_row(QuantType::F32, n, x.len());
    let mut sumf = 0.0f64;
    for i in 0..n {
        sumf += (f32_at(w, i) * f32_at(x, i)) as f64;
    }
    sumf as f32
}

/// `ggml_vec_dot_f16` (scalar): f16 operands widened to f32, product in f32 (exact for f16
/// inputs), sum in double.
pub fn vec_dot_f16(n: usize, w: &[u8], x: &[u8]) -> f32 {
    check_row(QuantType::F16, n, w.len());
    check_row(QuantType::F16, n, x.len());
    let mut sumf = 0.0f64;
    for i in 0..n {
        let p = f16::from_bits(u16_at(w, i)).to_f32() * f16::from_bits(u16_at(x, i)).to_f32();
        sumf += p as f64;
    }
    sumf as f32
}

/// `ggml_vec_dot_bf16` (scalar): as [`vec_dot_f16`] with bf16 operands.
pub fn vec_dot_bf16(n: usize, w: &[u8], x: &[u8]) -> f32 {
    check_row(QuantType::BF16, n, w.len());
    check_row(QuantType::BF16, n, x.len());
    let mut sumf = 0.0f64;
    for i in 0..n {
        let p = bf16_bits_to_f32(u16_at(w, i)) * bf16_bits_to_f32(u16_at(x, i));
        sumf += p as f64;
    }
    sumf as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rounding_known_answers() {
        // 1 + 2^-8 is exactly halfway between bf16 1.0 (0x3f80) and 1.0078125 (0x3f81): ties to even.
        assert_eq!(fp32_to_bf16(f32::from_bits(0x3f80_8000)), 0x3f80);
        // 0x3f81_8000 is halfway between 0x3f81 (odd) and 0x3f82: rounds up to even.
        assert_eq!(fp32_to_bf16(f32::from_bits(0x3f81_8000)), 0x3f82);
        assert_eq!(fp32_to_bf16(f32::from_bits(0x3f80_8001)), 0x3f81);
        assert_eq!(fp32_to_bf16(-2.0), 0xc000);
        assert_eq!(fp32_to_bf16(f32::MAX), 0x7f80); // overflows to +inf
        assert_eq!(fp32_to_bf16(f32::INFINITY), 0x7f80);
        // Signalling NaN 0x7f800001 becomes quiet NaN 0x7fc0 (bit 6 forced), not infinity.
        assert_eq!(fp32_to_bf16(f32::from_bits(0x7f80_0001)), 0x7fc0);
        assert_eq!(fp32_to_bf16(f32::from_bits(0xffc1_2345)), 0xffc1);
    }

    #[test]
    fn f16_rounding_known_answers() {
        let mut b = [0u8; 6];
        // 1 + 2^-11 is halfway between f16 1.0 (0x3c00) and the next (0x3c01): ties to even.
        // 1 + 3*2^-11 is halfway between 0x3c01 and 0x3c02: rounds to 0x3c02. 65520 overflows to inf.
        f16_from_f32(&[1.0 + 1.0 / 2048.0, 1.0 + 3.0 / 2048.0, 65520.0], &mut b);
        assert_eq!(b, [0x00, 0x3c, 0x02, 0x3c, 0x00, 0x7c]);
    }

    #[test]
    fn float_dots_accumulate_in_double() {
        // 1e8 + 1 - 1e8 in f32 accumulation loses the 1; ggml's double accumulator keeps it.
        let w = [1e8f32, 1.0, -1e8];
        let x = [1.0f32, 1.0, 1.0];
        let (mut wb, mut xb) = ([0u8; 12], [0u8; 12]);
        f32_from_f32(&w, &mut wb);
        f32_from_f32(&x, &mut xb);
        assert_eq!(vec_dot_f32(3, &wb, &xb), 1.0);

        // bf16 2^10 * 2^10 + 1 - 2^20 likewise (each product exact).
        let (mut wb, mut xb) = ([0u8; 6], [0u8; 6]);
        bf16_from_f32(&[1024.0, 1.0, -1024.0], &mut wb);
        bf16_from_f32(&[1024.0, 2f32.powi(-30), 1024.0], &mut xb);
        assert_eq!(vec_dot_bf16(3, &wb, &xb), 2f32.powi(-30));
    }
}
