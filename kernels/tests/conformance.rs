//! Conformance of the reference kernels over every [`QuantType`]: round-trip error bounds,
//! `vec_dot` against an f64 dot of the dequantized operands, `matvec` against `vec_dot`, at the
//! lengths `{1,2,3,7,8,15,16,17,31,33,255,1023}` blocks with inputs at shifted (odd) byte offsets.
//! Inputs come from a seeded splitmix64, so every failure reproduces.
//!
//! Known-answer tests for the activation quantizers' rounding live in `activation_kat.rs`.

mod common;
use common::{shifted, SplitMix64, LENGTH_BLOCKS, OFFSETS, U32, U64};

use ingot_kernels::blocks::{BlockQ2_K, BlockQ4_1, BlockQ4_K, BlockQ5_1, BlockQ5_K, BlockQ8_1, QK};
use ingot_kernels::{matvec, quantize_activations, QuantType};

impl SplitMix64 {
    /// `n` values whose scale changes every 32 elements (2^-10 .. 2^5), with occasional outliers,
    /// all-equal and all-zero blocks, so that per-block scales, min/max and zero paths all run.
    fn activations(&mut self, n: usize) -> Vec<f32> {
        let mut v = Vec::with_capacity(n);
        while v.len() < n {
            let scale = 2f32.powi((self.next_u64() % 16) as i32 - 10);
            let kind = self.next_u64() % 16;
            for _ in 0..QK.min(n - v.len()) {
                let x = match kind {
                    0 => 0.0,
                    1 => 0.75 * scale,
                    2 => self.unit() * scale + 3.0 * scale, // all positive: min/max types
                    _ if self.next_u64().is_multiple_of(64) => self.unit() * scale * 20.0,
                    _ => self.unit() * scale,
                };
                v.push(x);
            }
        }
        v
    }
}

fn quantize(ty: QuantType, x: &[f32]) -> Vec<u8> {
    let mut out = vec![0u8; ty.row_bytes(x.len()).unwrap()];
    (ty.info().from_f32)(x, &mut out);
    out
}

fn dequantize(ty: QuantType, bytes: &[u8], n: usize) -> Vec<f32> {
    let mut out = vec![f32::NAN; n];
    (ty.info().to_f32)(bytes, &mut out);
    out
}

fn elems(ty: QuantType, blocks: usize) -> usize {
    blocks * ty.block_elems()
}

/// Largest allowed |x - dequant(quant(x))| for each element of one block (or one element for the
/// float types), derived from how the reference quantizer picks its codes:
///
/// - F32 is exact; F16 / BF16 round to nearest: half an ulp, 2^-11 / 2^-8 relative (plus the
///   f16 subnormal spacing 2^-24 for tiny values).
/// - Symmetric types (Q4_0, Q5_0, Q8_0, Q8_1) with step `s = amax / (8 | 16 | 127)`: round-to-
///   nearest gives s/2; Q4_0/Q5_0 clamp the one code above the top (`+amax` can only reach
///   `7/8 amax`), so elements beyond the last rounding boundary may be off by a full step.
/// - Min/max types (Q4_1, Q5_1) with step `s = (max - min) / (15 | 31)`: s/2.
/// - Storing `d` (and `m`) in f16 adds |q| times half an f16 ulp of d (and of m); f32 arithmetic in the
///   quantizer adds a few ulps, covered by `amax * 2^-20`.
fn round_trip_bounds(ty: QuantType, x: &[f32]) -> Vec<f64> {
    let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let amax = x64.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    let min = x64.iter().cloned().fold(f64::INFINITY, f64::min);
    let max = x64.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let f16_ulp = 1.0 / 2048.0;
    // Half an f16 ulp of |v|: relative 2^-11 for normals, 2^-25 absolute in the subnormal range
    // (scales of small blocks, d = amax/127 < 2^-14, are f16 subnormals).
    let f16_err = |v: f64| (v.abs() * f16_ulp).max(2f64.powi(-25));
    let slack = amax * 2f64.powi(-20);
    // The signed value of largest magnitude (first one on ties), as the quantizer picks it.
    let smax = x64
        .iter()
        .fold(0.0f64, |m, &v| if v.abs() > m.abs() { v } else { m });
    let sym = |levels: f64, clamps: bool| {
        let s = amax / levels;
        x64.iter()
            .map(|v| {
                // Unrounded code: smax sits at 0, -smax at 2 * levels, which the top code
                // (2 * levels - 1) cannot reach. Codes rounding past the top cost up to a full step.
                let t = levels - v / smax * levels;
                let base = if clamps && t + 0.5 >= 2.0 * levels - 0.01 {
                    s
                } else {
                    0.5 * s
                };
                base + levels * f16_err(s) + slack
            })
            .collect::<Vec<_>>()
    };
    let asym = |levels: f64| {
        let s = (max - min) / levels;
        let b = 0.5 * s + levels * f16_err(s) + f16_err(min) + slack + max.abs() * 2f64.powi(-22);
        vec![b; x.len()]
    };
    match ty {
        QuantType::F32 => vec![0.0; x.len()],
        QuantType::F16 => x64.iter().map(|&v| f16_err(v)).collect(),
        QuantType::BF16 => x64.iter().map(|v| v.abs() / 256.0).collect(),
        // Q4_0: codes -8..=7 scaled by -d; the far side of the range loses its top code.
        QuantType::Q4_0 => sym(8.0, true),
        QuantType::Q5_0 => sym(16.0, true),
        QuantType::Q8_0 | QuantType::Q8_1 => sym(127.0, false),
        QuantType::Q4_1 => asym(15.0),
        QuantType::Q5_1 => asym(31.0),
        QuantType::Q8_K => sym(127.0, false),
        QuantType::Q2_K => k_quant_bounds(x, 16, 3.0, false, 15.0),
        QuantType::Q3_K => k_quant_bounds(x, 16, 4.0, true, 32.0),
        QuantType::Q4_K => k_quant_bounds(x, 32, 15.0, false, 63.0),
        QuantType::Q5_K => k_quant_bounds(x, 32, 31.0, false, 63.0),
        QuantType::Q6_K => k_quant_bounds(x, 16, 32.0, true, 128.0),
    }
}

/// Bounds for one 256-element K-quant super-block `x`, sub-blocks of `sub` elements.
///
/// Per sub-block the ideal step is `s = (max(x,0) - min(x,0)) / levels` (types with a minimum) or
/// `amax / levels` (symmetric: Q3_K, Q6_K). ggml searches scales around it and may clip the
/// extreme codes, so quants land within 1.5 steps. The sub-block scales (and minimums) are then
/// stored as integers relative to the largest one, `D = max s / scale_levels`: rounding one moves
/// every code of the sub-block by up to `levels * D / 2`, and a scale that rounds to 0 (only when
/// `s < D / 2`) leaves elements of magnitude below `levels * s`. f16 storage and f32 arithmetic
/// are covered by the relative slack.
fn k_quant_bounds(
    x: &[f32],
    sub: usize,
    levels: f64,
    symmetric: bool,
    scale_levels: f64,
) -> Vec<f64> {
    let stats: Vec<(f64, f64)> = x
        .chunks(sub)
        .map(|c| {
            let c64 = c.iter().map(|&v| v as f64);
            let (min, max) = c64.fold((0.0f64, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
            if symmetric {
                (min.abs().max(max) / levels, 0.0)
            } else {
                ((max - min) / levels, -min)
            }
        })
        .collect();
    let d = stats.iter().fold(0.0f64, |a, s| a.max(s.0)) / scale_levels;
    let dmin = stats.iter().fold(0.0f64, |a, s| a.max(s.1)) / scale_levels;
    let amax = x.iter().fold(0.0f64, |a, &v| a.max((v as f64).abs()));
    (0..x.len())
        .map(|i| {
            let (s, _) = stats[i / sub];
            1.5 * s + (levels + 1.0) * d + dmin + amax * 2f64.powi(-9)
        })
        .collect()
}

#[test]
fn round_trip_error_within_bounds() {
    let mut rng = SplitMix64(0x1d60_7e57);
    for ty in QuantType::ALL {
        let be = ty.block_elems();
        let bounds_unit = if be == 1 { 1 } else { QK.max(be) };
        for blocks in LENGTH_BLOCKS {
            for off in OFFSETS {
                let n = elems(ty, blocks);
                let x = rng.activations(n);
                // Quantize into a destination at an odd offset too.
                let mut q = vec![0u8; off + ty.row_bytes(n).unwrap()];
                (ty.info().from_f32)(&x, &mut q[off..]);
                let y = dequantize(ty, &q[off..], n);
                for (c, (xc, yc)) in x.chunks(bounds_unit).zip(y.chunks(bounds_unit)).enumerate() {
                    let bound = round_trip_bounds(ty, xc);
                    for i in 0..xc.len() {
                        let err = (xc[i] as f64 - yc[i] as f64).abs();
                        assert!(
                            err <= bound[i],
                            "{ty} n={n} off={off} chunk {c} elem {i}: x={} y={} err={err:e} > {:e}",
                            xc[i],
                            yc[i],
                            bound[i]
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn activation_quantizers_round_trip_within_bounds() {
    // The x86 activation quantizers differ from the _ref ones only in tie-breaking and in 127/amax
    // vs 1/d, so the Q8 bound applies unchanged (ties are exactly s/2 either way).
    let mut rng = SplitMix64(0xac71_0a7e);
    for ty in [
        QuantType::Q8_0,
        QuantType::Q8_1,
        QuantType::F16,
        QuantType::BF16,
        QuantType::F32,
    ] {
        for blocks in LENGTH_BLOCKS {
            let n = elems(ty, blocks);
            let x = rng.activations(n);
            let mut q = vec![0u8; 1 + ty.row_bytes(n).unwrap()];
            quantize_activations(ty, &x, &mut q[1..]);
            let y = dequantize(ty, &q[1..], n);
            let unit = ty.block_elems().max(1);
            for (xc, yc) in x.chunks(unit).zip(y.chunks(unit)) {
                let bound = round_trip_bounds(ty, xc);
                for i in 0..xc.len() {
                    let err = (xc[i] as f64 - yc[i] as f64).abs();
                    assert!(
                        err <= bound[i],
                        "{ty} n={n}: x={} y={} err={err:e}",
                        xc[i],
                        yc[i]
                    );
                }
            }
        }
    }
}

/// The `m` of weight block `b` for the min/max types, 0 otherwise. For the K-quants with
/// sub-block minimums, the largest minimum the super-block can encode (`dmin * 63`, Q2_K
/// `dmin * 15`): the dot product rounds `d * sc * q` and `dmin * m` separately.
fn block_m(ty: QuantType, w: &[u8], b: usize) -> f64 {
    match ty {
        QuantType::Q2_K => BlockQ2_K::read(&w[b * BlockQ2_K::SIZE..]).dmin.to_f64() * 15.0,
        QuantType::Q4_K => BlockQ4_K::read(&w[b * BlockQ4_K::SIZE..]).dmin.to_f64() * 63.0,
        QuantType::Q5_K => BlockQ5_K::read(&w[b * BlockQ5_K::SIZE..]).dmin.to_f64() * 63.0,
        QuantType::Q4_1 => BlockQ4_1::read(&w[b * BlockQ4_1::SIZE..]).m.to_f64(),
        QuantType::Q5_1 => BlockQ5_1::read(&w[b * BlockQ5_1::SIZE..]).m.to_f64(),
        _ => 0.0,
    }
}

/// The `_1` dot products add `m_w * s_x` per block, where the activation's cached
/// `s = fp16(d * sum q)` was formed from the f32 `d`, whereas the dequantized activations use the
/// f16 `d'`. The difference per block is exactly |m| * |d' * sum q - s|; twice that plus a
/// 2^-10 relative margin covers the f32 rounding of the product itself.
fn cached_sum_error(ty: QuantType, w: &[u8], x: &[u8]) -> f64 {
    if !matches!(ty, QuantType::Q4_1 | QuantType::Q5_1) {
        return 0.0;
    }
    (0..x.len() / BlockQ8_1::SIZE)
        .map(|b| {
            let bx = BlockQ8_1::read(&x[b * BlockQ8_1::SIZE..]);
            let sumq: i32 = bx.qs.iter().map(|&q| q as i32).sum();
            let exact = bx.d.to_f64() * sumq as f64;
            block_m(ty, w, b).abs()
                * (2.0 * (exact - bx.s.to_f64()).abs() + exact.abs() * 2f64.powi(-10))
        })
        .sum()
}

#[test]
fn vec_dot_matches_f64_dot_of_dequantized_operands() {
    let mut rng = SplitMix64(0x00d0_7d07);
    for ty in QuantType::ALL {
        let act = ty.info().vec_dot_type;
        for blocks in LENGTH_BLOCKS {
            let n = elems(ty, blocks);
            let w = quantize(ty, &rng.activations(n));
            let mut x = vec![0u8; act.row_bytes(n).unwrap()];
            quantize_activations(act, &rng.activations(n), &mut x);
            let wd = dequantize(ty, &w, n);
            let xd = dequantize(act, &x, n);
            let exact: f64 = wd.iter().zip(&xd).map(|(&a, &b)| a as f64 * b as f64).sum();
            // Magnitude of the terms the kernel actually rounds: for the min/max types the block
            // splits each weight into q*d and m, which can each exceed |q*d + m|.
            let be = ty.block_elems();
            let abs_sum: f64 = (0..n)
                .map(|i| {
                    let m = block_m(ty, &w, i / be);
                    ((wd[i] as f64 - m).abs() + m.abs()) * (xd[i] as f64).abs()
                })
                .sum();
            // K-quants: |d * sc * q| <= |w| + m and the rounded min term is up to m (block_m).
            let abs_sum_k: f64 = (0..n)
                .map(|i| {
                    let m = block_m(ty, &w, i / be);
                    ((wd[i] as f64).abs() + 2.0 * m) * (xd[i] as f64).abs()
                })
                .sum();

            // Named tolerances (see the kernels' docs for the order of operations):
            let tol = match ty {
                // K-quants: exact integer sums per super-block, then f32 products and sums (the
                // eight lane sums of ggml, or one running sum) over `blocks` super-blocks; the
                // sub-block minimums make the rounded terms up to twice the weights' magnitude.
                _ if ty.is_k_quant() => (blocks as f64 + 4.0) * U32 * abs_sum_k,
                // Product rounded to f32 (u each), sum in f64 (n * u64), result rounded to f32.
                QuantType::F32 => U32 * abs_sum + n as f64 * U64 * abs_sum + U32 * exact.abs(),
                // Products of f16/bf16 values are exact in f32; only the f64 sum and final rounding.
                QuantType::F16 | QuantType::BF16 => n as f64 * U64 * abs_sum + U32 * exact.abs(),
                // Integer block dots are exact; per block two f32 products round (2u) and the f32
                // running sum over `blocks` terms adds at most blocks * u of the absolute sum.
                // The _1 types additionally use the cached f16 `s` (see cached_sum_error).
                _ => (blocks as f64 + 3.0) * U32 * abs_sum + cached_sum_error(ty, &w, &x),
            };
            for off in OFFSETS {
                let (ws, xs) = (shifted(&w, off), shifted(&x, off + 2));
                let got = (ty.info().vec_dot)(n, &ws[off..], &xs[off + 2..]);
                assert!(
                    (got as f64 - exact).abs() <= tol,
                    "{ty} n={n} off={off}: got {got}, exact {exact}, |diff| {:e} > tol {tol:e}",
                    (got as f64 - exact).abs()
                );
            }
        }
    }
}

#[test]
fn matvec_rows_equal_vec_dot() {
    let mut rng = SplitMix64(0x0003_a7ec);
    for ty in QuantType::ALL {
        let act = ty.info().vec_dot_type;
        for blocks in [1, 3, 17] {
            let n = elems(ty, blocks);
            let d = 5;
            let w = quantize(ty, &rng.activations(n * d)); // W (d, n)
            let mut x = vec![0u8; act.row_bytes(n).unwrap()];
            quantize_activations(act, &rng.activations(n), &mut x); // x (n,)
            let (ws, xs) = (shifted(&w, 1), shifted(&x, 3));
            let mut out = vec![f32::NAN; d]; // out (d,)
            matvec(ty, &mut out, &ws[1..], &xs[3..], n);
            let rb = ty.row_bytes(n).unwrap();
            for (r, &o) in out.iter().enumerate() {
                let want = (ty.info().vec_dot)(n, &w[r * rb..(r + 1) * rb], &x);
                assert_eq!(o.to_bits(), want.to_bits(), "{ty} row {r}");
            }
        }
    }
}

#[test]
fn zero_length_rows() {
    for ty in QuantType::ALL {
        let act = ty.info().vec_dot_type;
        assert_eq!((ty.info().vec_dot)(0, &[], &[]), 0.0);
        (ty.info().to_f32)(&[], &mut []);
        (ty.info().from_f32)(&[], &mut []);
        quantize_activations(act, &[], &mut []);
        let mut out = [1.0f32; 2];
        matvec(ty, &mut out, &[], &[], 0);
        assert_eq!(out, [0.0, 0.0], "{ty}");
    }
}

#[test]
#[should_panic(expected = "elements need")]
fn vec_dot_rejects_short_activation() {
    let w = [0u8; 18];
    let x = [0u8; 33];
    (QuantType::Q4_0.info().vec_dot)(32, &w, &x);
}

#[test]
#[should_panic(expected = "elements need")]
fn to_f32_rejects_partial_block() {
    (QuantType::Q5_0.info().to_f32)(&[0u8; 22], &mut [0.0; 31]);
}
