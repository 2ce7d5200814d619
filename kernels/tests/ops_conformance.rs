//! The ggml-exact ops of `ingot_kernels::ops` on every [`Kernels`] path available on the host
//! against their scalar definitions in `ingot_kernels::reference::ops`: bit for bit (no tolerance:
//! these ops reproduce llama.cpp exactly, and any path may run them), at the lengths
//! `{0,1,2,3,7,8,15,16,17,31,33,64,255,1023}` and at shifted (odd) offsets. NaN results must be
//! NaN, with any payload (Rust does not specify NaN payloads of float operations).
//!
//! Inputs come from a seeded splitmix64, so every failure reproduces.

mod common;
use common::{SplitMix64, OFFSETS};

use half::f16;
use ingot_kernels::reference::ops as reference;
use ingot_kernels::{Isa, Kernels};

const LENGTHS: [usize; 14] = [0, 1, 2, 3, 7, 8, 15, 16, 17, 31, 33, 64, 255, 1023];

impl SplitMix64 {
    /// Mostly ordinary values of the given scale, with the specials and edges of `expf`: NaN,
    /// infinities, signed zeros, subnormals, the overflow/underflow boundaries (|x| near 88,
    /// 103 and 133 = 192 ln 2) and huge magnitudes.
    fn values(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|_| match self.next_u64() % 40 {
                0 => f32::NAN,
                1 => f32::from_bits(0x7fc0_1234 | ((self.next_u64() as u32) & 0x8000_0000)),
                2 => f32::INFINITY,
                3 => f32::NEG_INFINITY,
                4 => 0.0,
                5 => -0.0,
                6 => f32::from_bits((self.next_u64() as u32) & 0x807f_ffff), // subnormal
                7 => self.unit() * 1e30,
                8..=11 => {
                    let edge = [88.7, 103.9, 133.1, 87.3][(self.next_u64() % 4) as usize];
                    edge * self.unit().signum() + self.unit() * 0.5
                }
                _ => self.unit() * scale,
            })
            .collect()
    }
}

fn kernels() -> Vec<Kernels> {
    let ks: Vec<Kernels> = Isa::ALL.into_iter().filter_map(Kernels::for_isa).collect();
    let names: Vec<String> = ks.iter().map(|k| k.isa().to_string()).collect();
    println!("ISAs covered: {}", names.join(", "));
    ks
}

fn same_f32(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
}

fn same_f16(a: &[f16], b: &[f16]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
}

#[test]
fn v_expf_is_close_to_exp() {
    for i in -2000..1760 {
        let x = i as f32 * 0.05;
        let (a, b) = (reference::v_expf(x), x.exp());
        assert!(
            (a - b).abs() <= 4e-7 * b.max(f32::MIN_POSITIVE),
            "{x}: {a} vs {b}"
        );
    }
    assert_eq!(reference::v_expf(f32::NEG_INFINITY), 0.0);
    assert_eq!(reference::v_expf(-200.0), 0.0);
    assert_eq!(reference::v_expf(f32::INFINITY), f32::INFINITY);
}

#[test]
fn expf_matches_reference() {
    let mut rng = SplitMix64(1);
    for k in kernels() {
        for n in LENGTHS {
            for off in OFFSETS {
                for scale in [1.0, 20.0, 120.0] {
                    let x = rng.values(n + off, scale);
                    let mut want = x[off..].to_vec();
                    reference::expf(&mut want);
                    let mut got = x.clone();
                    k.expf_ggml(&mut got[off..]);
                    assert!(same_f32(&got[off..], &want), "{} n={n} off={off}", k.isa());
                    assert!(same_f32(&got[..off], &x[..off]), "{} wrote before", k.isa());
                }
            }
        }
        // Every f32 bit pattern in a sparse sweep, subnormals and specials included.
        let x: Vec<f32> = (0..=u32::MAX / 4099)
            .map(|i| f32::from_bits(i * 4099))
            .collect();
        let mut want = x.clone();
        reference::expf(&mut want);
        let mut got = x.clone();
        k.expf_ggml(&mut got);
        assert!(same_f32(&got, &want), "{} bit sweep", k.isa());
    }
}

#[test]
fn soft_max_matches_reference() {
    let mut rng = SplitMix64(2);
    for k in kernels() {
        for n in LENGTHS {
            for off in OFFSETS {
                // Attention scores: finite, with -inf for masked cells; and the edge values.
                for special in [false, true] {
                    let mut x: Vec<f32> = if special {
                        rng.values(n + off, 8.0)
                    } else {
                        (0..n + off).map(|_| rng.unit() * 8.0).collect()
                    };
                    if !special && n > 2 {
                        x[off + n - 1] = f32::NEG_INFINITY;
                    }
                    let max = x[off..].iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let mut want = x[off..].to_vec();
                    let sw = reference::soft_max(&mut want, max);
                    let mut got = x.clone();
                    let sg = k.soft_max_ggml(&mut got[off..], max);
                    let ok = sw.to_bits() == sg.to_bits() || (sw.is_nan() && sg.is_nan());
                    assert!(ok, "{} sum n={n} off={off}: {sg} vs {sw}", k.isa());
                    assert!(same_f32(&got[off..], &want), "{} n={n} off={off}", k.isa());
                }
            }
        }
    }
}

#[test]
fn swiglu_matches_reference() {
    let mut rng = SplitMix64(3);
    for k in kernels() {
        for n in LENGTHS {
            for off in OFFSETS {
                let g = rng.values(n + off, 6.0);
                let u = rng.values(n + off, 2.0);
                let mut want = g[off..].to_vec();
                reference::swiglu(&mut want, &u[off..]);
                let mut got = g.clone();
                k.swiglu_ggml(&mut got[off..], &u[off..]);
                assert!(same_f32(&got[off..], &want), "{} n={n} off={off}", k.isa());
            }
        }
    }
}

#[test]
fn rope_matches_reference() {
    let mut rng = SplitMix64(4);
    for k in kernels() {
        for n in LENGTHS {
            for off in OFFSETS {
                // Cache shorter, equal or longer than the head (n_rot < head_dim leaves the rest).
                for cn in [n / 2, n, n + 5] {
                    let h = rng.values(n + off, 4.0);
                    let c: Vec<f32> = (0..cn + off).map(|_| rng.unit()).collect();
                    let mut want = h[off..].to_vec();
                    reference::rope(&mut want, &c[off..]);
                    let mut got = h.clone();
                    k.rope_ggml(&mut got[off..], &c[off..]);
                    assert!(same_f32(&got[off..], &want), "{} n={n} cn={cn}", k.isa());
                }
            }
        }
    }
}

#[test]
fn to_f16_matches_reference() {
    let mut rng = SplitMix64(5);
    for k in kernels() {
        for n in LENGTHS {
            for off in OFFSETS {
                for scale in [1.0, 1e-5, 7e4] {
                    let x = rng.values(n + off, scale);
                    let mut want = vec![f16::ZERO; n];
                    reference::to_f16(&x[off..], &mut want);
                    let mut got = vec![f16::ONE; n + off];
                    k.to_f16(&x[off..], &mut got[off..]);
                    assert!(same_f16(&got[off..], &want), "{} n={n} off={off}", k.isa());
                }
            }
        }
    }
}

#[test]
fn f16_dots_match_reference() {
    let mut rng = SplitMix64(6);
    let mut lengths = LENGTHS.to_vec();
    lengths.extend([63, 65, 100, 256, 300, 700]);
    for k in kernels() {
        for &n in &lengths {
            for off in OFFSETS {
                let a: Vec<f16> = (0..n + off).map(|_| f16::from_f32(rng.unit())).collect();
                let b: Vec<f16> = (0..n + off).map(|_| f16::from_f32(rng.unit())).collect();
                let (a, b) = (&a[off..], &b[off..]);
                for n_pad in [n, n.div_ceil(64) * 64, n.div_ceil(256).max(1) * 256] {
                    assert_eq!(
                        k.dot_f16_ggml(a, b, n_pad).to_bits(),
                        reference::dot_f16_ggml(a, b, n_pad).to_bits(),
                        "{} ggml n={n} pad={n_pad} off={off}",
                        k.isa()
                    );
                }
                assert_eq!(
                    k.dot_f16_sgemm(a, b).to_bits(),
                    reference::dot_f16_sgemm(a, b).to_bits(),
                    "{} sgemm n={n} off={off}",
                    k.isa()
                );
            }
        }
    }
}

/// The fused head against the same steps written out with the reference ops.
#[test]
fn attention_head_matches_reference() {
    let mut rng = SplitMix64(7);
    let ks = kernels();
    // Head sizes with and without a tail past the last 64-element step of ggml's f16 dot.
    for (d, k) in [64usize, 80, 7]
        .into_iter()
        .flat_map(|d| ks.iter().map(move |k| (d, k)))
    {
        let (k_stride, vt_stride) = (3 * d, 700);
        for n_kv in [1usize, 2, 17, 64, 255, 300] {
            let keys: Vec<f16> = (0..n_kv * k_stride)
                .map(|_| f16::from_f32(rng.unit() * 2.0))
                .collect();
            let vt: Vec<f16> = (0..d * vt_stride)
                .map(|_| f16::from_f32(rng.unit()))
                .collect();
            let q: Vec<f32> = (0..d).map(|_| rng.unit() * 3.0).collect();
            let scale = 1.0 / (d as f32).sqrt();
            let v_pad = n_kv.div_ceil(256) * 256;
            for batched in [false, true] {
                // The definition, step by step.
                let mut q16 = vec![f16::ZERO; d];
                reference::to_f16(&q, &mut q16);
                let mut s: Vec<f32> = (0..n_kv)
                    .map(|j| {
                        let kj = &keys[j * k_stride..][..d];
                        let dot = if batched {
                            reference::dot_f16_sgemm(kj, &q16)
                        } else {
                            reference::dot_f16_ggml(kj, &q16, d)
                        };
                        dot * scale
                    })
                    .collect();
                let max = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let inv = (1.0 / reference::soft_max(&mut s, max)) as f32;
                let p: Vec<f16> = s.iter().map(|&x| f16::from_f32(x * inv)).collect();
                let want: Vec<f32> = (0..d)
                    .map(|i| {
                        let v = &vt[i * vt_stride..][..n_kv];
                        if batched {
                            reference::dot_f16_sgemm(v, &p)
                        } else {
                            reference::dot_f16_ggml(v, &p, v_pad)
                        }
                    })
                    .collect();
                let mut out = vec![f32::NAN; d];
                let (mut sc, mut q16, mut p16) =
                    (vec![0.0; n_kv], vec![f16::ZERO; d], vec![f16::ZERO; n_kv]);
                k.attention_head_ggml(
                    &mut out, &q, &keys, k_stride, &vt, vt_stride, scale, batched, v_pad, &mut sc,
                    &mut q16, &mut p16,
                );
                assert!(
                    same_f32(&out, &want),
                    "{} d={d} n_kv={n_kv} batched={batched}",
                    k.isa()
                );
            }
        }
    }
}

/// Grouped-query attention: `G` heads sharing one key/value head, bitwise `G`
/// [`Kernels::attention_head_ggml`] calls on every path, in the single-token and the batch order,
/// for group sizes 1 to 8 (the AVX-512 path takes up to four heads per pass and 16 cached rows per
/// reduction), head sizes with and without a tail past the last 64- or 16-element step, and cache
/// lengths around the 16-row tiles.
#[test]
fn attention_group_equals_one_head_at_a_time() {
    let mut rng = SplitMix64(17);
    let ks = kernels();
    for (d, g) in [
        (64usize, 3usize),
        (64, 1),
        (64, 4),
        (64, 5),
        (80, 2),
        (7, 8),
        (128, 3),
    ] {
        let (k_stride, vt_stride) = (3 * d + 5, 611);
        for n_kv in [1usize, 2, 15, 16, 17, 33, 200, 600] {
            let keys: Vec<f16> = (0..n_kv * k_stride)
                .map(|_| f16::from_f32(rng.unit() * 2.0))
                .collect();
            let vt_len = (d - 1) * vt_stride + n_kv.max(vt_stride);
            let vt: Vec<f16> = (0..vt_len).map(|_| f16::from_f32(rng.unit())).collect();
            let q: Vec<f32> = (0..g * d).map(|_| rng.unit() * 3.0).collect();
            let scale = 1.0 / (d as f32).sqrt();
            let v_pad = n_kv.div_ceil(256) * 256;
            for (k, batched) in ks.iter().flat_map(|k| [(k, false), (k, true)]) {
                let mut want = vec![f32::NAN; g * d];
                for (qh, oh) in q.chunks_exact(d).zip(want.chunks_exact_mut(d)) {
                    let (mut sc, mut q16, mut p16) =
                        (vec![0.0; n_kv], vec![f16::ZERO; d], vec![f16::ZERO; n_kv]);
                    k.attention_head_ggml(
                        oh, qh, &keys, k_stride, &vt, vt_stride, scale, batched, v_pad, &mut sc,
                        &mut q16, &mut p16,
                    );
                }
                let mut out = vec![f32::NAN; g * d];
                let (mut sc, mut q16, mut p16) = (
                    vec![f32::NAN; g * n_kv],
                    vec![f16::ZERO; g * d],
                    vec![f16::ZERO; g * n_kv],
                );
                k.attention_group_ggml(
                    &mut out, &q, d, &keys, k_stride, &vt, vt_stride, scale, batched, v_pad,
                    &mut sc, &mut q16, &mut p16,
                );
                assert!(
                    same_f32(&out, &want),
                    "{} d={d} g={g} n_kv={n_kv} batched={batched}",
                    k.isa()
                );
            }
        }
    }
}

/// The f32-cache head: the same bits on every path, and within f32 rounding of attention computed
/// in f64 from the same inputs.
#[test]
fn attention_head_f32_is_exact_attention() {
    let mut rng = SplitMix64(11);
    let ks = kernels();
    for d in [1usize, 7, 64, 80] {
        let (k_stride, vt_stride) = (2 * d + 3, 301);
        for n_kv in [1usize, 2, 9, 17, 64, 300] {
            let keys: Vec<f32> = (0..n_kv * k_stride).map(|_| rng.unit() * 2.0).collect();
            let vt: Vec<f32> = (0..d * vt_stride).map(|_| rng.unit()).collect();
            let q: Vec<f32> = (0..d).map(|_| rng.unit() * 3.0).collect();
            let scale = 1.0 / (d as f32).sqrt();

            let s: Vec<f64> = (0..n_kv)
                .map(|j| {
                    let kj = &keys[j * k_stride..][..d];
                    let dot: f64 = kj.iter().zip(&q).map(|(&a, &b)| a as f64 * b as f64).sum();
                    dot * scale as f64
                })
                .collect();
            let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = s.iter().map(|&x| (x - max).exp()).collect();
            let z: f64 = e.iter().sum();
            let want: Vec<f64> = (0..d)
                .map(|i| {
                    let v = &vt[i * vt_stride..][..n_kv];
                    v.iter().zip(&e).map(|(&a, &p)| a as f64 * p / z).sum()
                })
                .collect();

            let mut first: Option<Vec<f32>> = None;
            for k in &ks {
                let mut out = vec![f32::NAN; d];
                let mut sc = vec![f32::NAN; n_kv];
                k.attention_head_f32(
                    &mut out, &q, &keys, k_stride, &vt, vt_stride, scale, &mut sc,
                );
                for (i, (&o, &w)) in out.iter().zip(&want).enumerate() {
                    assert!(
                        (o as f64 - w).abs() <= 1e-5 * (1.0 + w.abs()),
                        "{} d={d} n_kv={n_kv} out[{i}] = {o}, f64 {w}",
                        k.isa()
                    );
                }
                match &first {
                    None => first = Some(out),
                    Some(f) => assert!(same_f32(f, &out), "{} d={d} n_kv={n_kv}", k.isa()),
                }
            }
        }
    }
}

/// The score tiles (`Avx512Vnni::dot_f16_rows_heads`, `Avx2::dot_f16_rows_heads_ggml`: many cached
/// rows against one to four query heads) in the single-token order, bitwise
/// `reference::dot_f16_ggml` per row and head, for rows of exactly 64 (the tiles that sum each row
/// as two products and two FMAs, then add `+0`) and other lengths, with keys and queries that hold exact zeros of both signs beside values of
/// both signs, and pairs whose every product is `-0` (which ggml's `fma(x, y, +0)` turns into
/// `+0`, so its sum is `+0`).
#[cfg(target_arch = "x86_64")]
#[test]
fn score_tiles_match_ggml_with_signed_zeros() {
    use ingot_kernels::cpu::x86_64::{avx2::Avx2, avx512::Avx512Vnni};
    type Tile = Box<dyn Fn(&[f16], usize, &[f32], usize, &mut [f32])>;
    let mut tiles: Vec<(&str, Tile)> = Vec::new();
    if let Some(t) = Avx512Vnni::detect() {
        tiles.push((
            "avx512",
            Box::new(move |x, stride, y, n, out| {
                t.dot_f16_rows_heads(false, x, stride, y, n, n, out)
            }),
        ));
    }
    if let Some(t) = Avx2::detect() {
        tiles.push((
            "avx2",
            Box::new(move |x, stride, y, n, out| {
                t.dot_f16_rows_heads_ggml(x, stride, y, n, n, out)
            }),
        ));
    }
    println!("score tiles checked: {}", tiles.len());
    let mut rng = SplitMix64(23);
    // Mostly zeros of either sign, so that whole rows (and tiles) sum to zero.
    let mut value = |zeros: u64| match rng.next_u64() % 8 {
        z if z < zeros => f16::from_f32(if z % 2 == 0 { 0.0 } else { -0.0 }),
        _ => f16::from_f32(rng.unit() * 2.0),
    };
    for (n, zeros) in [(64usize, 6u64), (64, 8), (64, 2), (80, 6), (128, 7), (7, 4)] {
        for heads in 1..=4 {
            for rows in [1usize, 15, 16, 17, 40] {
                let stride = n + 3;
                // Every third row all `-0` and every third head non-negative: each product of
                // such a pair is `-0`, so the row sums to `-0` unless `+0` is added somewhere.
                let x: Vec<f16> = (0..rows * stride)
                    .map(|i| match (i / stride) % 3 {
                        0 => f16::NEG_ZERO,
                        _ => value(zeros),
                    })
                    .collect();
                let y16: Vec<f16> = (0..heads * n)
                    .map(|i| match (i / n) % 3 {
                        0 => f16::from_f32(value(zeros).to_f32().abs()),
                        _ => value(zeros),
                    })
                    .collect();
                let y32: Vec<f32> = y16.iter().map(|v| v.to_f32()).collect();
                for (name, tile) in &tiles {
                    let mut out = vec![f32::NAN; heads * rows];
                    tile(&x, stride, &y32, n, &mut out);
                    for h in 0..heads {
                        for r in 0..rows {
                            let (xr, yh) = (&x[r * stride..][..n], &y16[h * n..][..n]);
                            let want = reference::dot_f16_ggml(xr, yh, n);
                            let got = out[h * rows + r];
                            assert_eq!(
                                got.to_bits(),
                                want.to_bits(),
                                "{name} n={n} zeros={zeros}/8 heads={heads} rows={rows} head {h} \
                                 row {r}: {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }
}
