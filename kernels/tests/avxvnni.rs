//! The AVX-VNNI path (`Isa::AvxVnni`) against the AVX2 path, bit for bit.
//!
//! Its kernels compute every block's i32 lanes with `vpdpbusd` where the AVX2 kernels use
//! `vpmaddubsw` + `vpmaddwd`; the lane sums are exact in both and the f32 steps are the same
//! instructions, so the results must be identical (as ggml's `__AVXVNNI__` build gives its AVX2
//! build's results). Run on:
//!
//! - the kernel bodies with `vpdpbusd` emulated (`Kernels::avxvnni_emulated`), on every AVX2 CPU,
//!   natively and under `qemu-x86_64 -cpu Haswell` (`kernels/scripts/test-emulated.sh`);
//! - the same bodies with the instruction itself, where the CPU has AVX-VNNI
//!   (`Kernels::for_isa(Isa::AvxVnni)`; each test prints whether it ran).
//!
//! The emulation itself is checked against the instruction's definition (random and extreme bytes,
//! wrapping accumulators) by the unit test `dpbusd_matches_the_instruction_definition` in
//! `src/cpu/x86_64/avxvnni.rs`; the tolerance against the scalar reference is checked by
//! `tests/simd_conformance.rs`, which runs the emulated path too.

mod common;
use common::{shifted, SplitMix64, LENGTH_BLOCKS, OFFSETS};

use ingot_kernels::blocks::QK;
use ingot_kernels::packed::{pack, PACK_ROWS};
use ingot_kernels::{quantize_activations, Isa, Kernels, QuantType};

/// The types with AVX-VNNI kernels (Q8_1 as a weight type too), and the others, which must reach
/// the AVX2 code unchanged.
const TYPES: [QuantType; 9] = [
    QuantType::Q4_0,
    QuantType::Q4_1,
    QuantType::Q5_0,
    QuantType::Q5_1,
    QuantType::Q8_0,
    QuantType::Q8_1,
    QuantType::F32,
    QuantType::F16,
    QuantType::BF16,
];

/// The packable types.
const PACKED: [QuantType; 5] = [
    QuantType::Q4_0,
    QuantType::Q8_0,
    QuantType::Q4_1,
    QuantType::Q5_0,
    QuantType::Q5_1,
];

/// `(AVX2 kernels, [AVX-VNNI emulated, AVX-VNNI native if present])`, or `None` without AVX2.
fn paths(test: &str) -> Option<(Kernels, Vec<Kernels>)> {
    let Some(avx2) = Kernels::for_isa(Isa::Avx2) else {
        eprintln!("{test}: skipped, no AVX2 on this CPU");
        return None;
    };
    let emulated = Kernels::avxvnni_emulated().expect("AVX2 implies the emulated AVX-VNNI path");
    assert_eq!(emulated.isa(), Isa::AvxVnni);
    assert!(emulated.is_emulated());
    let mut ks = vec![emulated];
    match Kernels::for_isa(Isa::AvxVnni) {
        Some(k) => {
            assert!(!k.is_emulated());
            ks.push(k);
            eprintln!("{test}: avxvnni emulated and native");
        }
        None => eprintln!("{test}: avxvnni emulated only (this CPU has no AVX-VNNI)"),
    }
    Some((avx2, ks))
}

fn name(k: &Kernels) -> &'static str {
    if k.is_emulated() {
        "avxvnni (emulated)"
    } else {
        "avxvnni (native)"
    }
}

/// Values whose scale changes every block, with zero blocks and outliers.
fn values(rng: &mut SplitMix64, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let scale = 2f32.powi(((i / QK) % 9) as i32 - 4);
            match rng.next_u64() % 32 {
                0 => 0.0,
                1 => 30.0 * scale * rng.unit(),
                _ => scale * rng.unit(),
            }
        })
        .collect()
}

fn weights(ty: QuantType, x: &[f32]) -> Vec<u8> {
    let mut out = vec![0u8; ty.row_bytes(x.len()).unwrap()];
    (ty.info().from_f32)(x, &mut out);
    out
}

fn activations(ty: QuantType, x: &[f32]) -> Vec<u8> {
    let act = ty.info().vec_dot_type;
    let mut out = vec![0u8; act.row_bytes(x.len()).unwrap()];
    quantize_activations(act, x, &mut out);
    out
}

/// Byte offsets of the f16 fields of a block of `ty` (`d`, and `m` / `s`).
fn f16_fields(ty: QuantType) -> &'static [usize] {
    match ty {
        QuantType::Q4_1 | QuantType::Q5_1 | QuantType::Q8_1 => &[0, 2],
        _ => &[0],
    }
}

/// A row of `nb` blocks of `ty` of random bytes (`extreme`: each byte one of 0x00, 0x01, 0x7f,
/// 0x80, 0xff, where `vpmaddubsw` pairs would saturate), with finite f16 fields (bit 14 clear).
fn random_blocks(rng: &mut SplitMix64, ty: QuantType, nb: usize, extreme: bool) -> Vec<u8> {
    let bb = ty.block_bytes();
    let pick = [0x00u8, 0x01, 0x7f, 0x80, 0xff];
    let mut v: Vec<u8> = (0..nb * bb)
        .map(|_| {
            let r = rng.next_u64();
            if extreme {
                pick[(r % 5) as usize]
            } else {
                r as u8
            }
        })
        .collect();
    for b in 0..nb {
        for &at in f16_fields(ty) {
            v[b * bb + at + 1] &= 0xbf;
        }
    }
    v
}

fn same_bits(got: &[f32], want: &[f32], what: &dyn Fn(usize) -> String) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.to_bits(), w.to_bits(), "{}: {g} vs AVX2 {w}", what(i));
    }
}

/// `vec_dot` at every conformance length and odd offsets, on quantized random values, random
/// bytes and extreme bytes: bitwise the AVX2 path's.
#[test]
fn vec_dot_equals_avx2_bitwise() {
    let Some((avx2, ks)) = paths("vec_dot_equals_avx2_bitwise") else {
        return;
    };
    let mut rng = SplitMix64(0xa7_0001);
    for ty in TYPES {
        let act = ty.info().vec_dot_type;
        for &blocks in &LENGTH_BLOCKS {
            let n = blocks * ty.block_elems().max(QK);
            for case in 0..3 {
                let (w, x) = if case == 0 || ty.block_elems() == 1 {
                    (
                        weights(ty, &values(&mut rng, n)),
                        activations(ty, &values(&mut rng, n)),
                    )
                } else {
                    let nb = n / QK;
                    (
                        random_blocks(&mut rng, ty, nb, case == 2),
                        random_blocks(&mut rng, act, nb, case == 2),
                    )
                };
                let want = avx2.vec_dot(ty, n, &w, &x);
                for k in &ks {
                    for off in OFFSETS {
                        let (ws, xs) = (shifted(&w, off), shifted(&x, off + 2));
                        let got = k.vec_dot(ty, n, &ws[off..], &xs[off + 2..]);
                        assert_eq!(
                            got.to_bits(),
                            want.to_bits(),
                            "{} {ty} n={n} case {case} off={off}: {got} vs AVX2 {want}",
                            name(k)
                        );
                    }
                }
            }
        }
    }
}

/// `matmul` (odd row counts, every token count of one and two tiles and a remainder, odd strides
/// and addresses) and `matvec`: bitwise the AVX2 path's, and each element its own `vec_dot`.
#[test]
fn matmul_equals_avx2_bitwise() {
    let Some((avx2, ks)) = paths("matmul_equals_avx2_bitwise") else {
        return;
    };
    let mut rng = SplitMix64(0xa7_0002);
    for ty in TYPES {
        let act = ty.info().vec_dot_type;
        for blocks in [1usize, 2, 17, 33] {
            let n = blocks * QK;
            let (rb, arb) = (ty.row_bytes(n).unwrap(), act.row_bytes(n).unwrap());
            for rows in [1usize, 3, 7, 17] {
                let w = weights(ty, &values(&mut rng, rows * n));
                let ws = shifted(&w, 1);
                let w = &ws[1..];
                for t in [1usize, 2, 3, 4, 5, 8, 9] {
                    let stride = arb + 3;
                    let mut xa = vec![0x5au8; 1 + (t - 1) * stride + arb];
                    for j in 0..t {
                        let at = 1 + j * stride;
                        let v = values(&mut rng, n);
                        quantize_activations(act, &v, &mut xa[at..at + arb]);
                    }
                    let x = &xa[1..];
                    let mut want = vec![f32::NAN; t * rows];
                    avx2.matmul(ty, &mut want, w, rows, x, stride, t, n);
                    for k in &ks {
                        let mut got = vec![f32::NAN; t * rows];
                        k.matmul(ty, &mut got, w, rows, x, stride, t, n);
                        same_bits(&got, &want, &|i| {
                            format!("{} {ty} n={n} rows={rows} t={t} at {i}", name(k))
                        });
                        for (i, g) in got.iter().enumerate() {
                            let (j, r) = (i / rows, i % rows);
                            let d = k.vec_dot(ty, n, &w[r * rb..][..rb], &x[j * stride..][..arb]);
                            assert_eq!(
                                g.to_bits(),
                                d.to_bits(),
                                "{} {ty} matmul vs vec_dot",
                                name(k)
                            );
                        }
                        let mut mv = vec![f32::NAN; rows];
                        k.matvec(ty, &mut mv, w, &x[..arb], n);
                        same_bits(&mv, &want[..rows], &|i| {
                            format!("{} {ty} matvec n={n} rows={rows} row {i}", name(k))
                        });
                    }
                }
            }
        }
    }
}

/// Packed products (several 16-row groups, lengths across the Q4_0 kernel's 128-block table
/// chunk, tokens of one and two tiles and a remainder, odd strides): bitwise the AVX2 path's, and
/// for Q8_0, Q4_1, Q5_0 and Q5_1 bitwise the path's own row-major product (so repacking keeps
/// logits). The AVX-VNNI path packs what AVX2 packs, in the same order.
#[test]
fn packed_equals_avx2_and_row_major_bitwise() {
    let Some((avx2, ks)) = paths("packed_equals_avx2_and_row_major_bitwise") else {
        return;
    };
    let mut rng = SplitMix64(0xa7_0003);
    for ty in PACKED {
        let act = ty.info().vec_dot_type;
        for k in &ks {
            assert!(k.packs(ty) && avx2.packs(ty), "{} {ty}", name(k));
            assert_eq!(k.packed_order(ty), avx2.packed_order(ty));
        }
        for (rows, blocks) in [(16usize, 1usize), (48, 3), (32, 17), (16, 129), (32, 255)] {
            let n = blocks * QK;
            let arb = act.row_bytes(n).unwrap();
            let w = weights(ty, &values(&mut rng, rows * n));
            let mut p = vec![0u8; w.len()];
            pack(ty, &w, rows, n, &mut p);
            assert_eq!(rows % PACK_ROWS, 0);
            for t in [1usize, 2, 3, 4, 5, 9] {
                let stride = arb + 1;
                let mut x = vec![0xa5u8; (t - 1) * stride + arb];
                for j in 0..t {
                    let v = values(&mut rng, n);
                    quantize_activations(act, &v, &mut x[j * stride..j * stride + arb]);
                }
                let mut want = vec![f32::NAN; t * rows];
                avx2.matmul_packed(ty, &mut want, &p, rows, &x, stride, t, n);
                for k in &ks {
                    let mut got = vec![f32::NAN; t * rows];
                    k.matmul_packed(ty, &mut got, &p, rows, &x, stride, t, n);
                    same_bits(&got, &want, &|i| {
                        format!("{} {ty} packed {rows}x{n} t={t} at {i}", name(k))
                    });
                    if ty != QuantType::Q4_0 {
                        let mut rm = vec![f32::NAN; t * rows];
                        k.matmul(ty, &mut rm, &w, rows, &x, stride, t, n);
                        same_bits(&got, &rm, &|i| {
                            format!(
                                "{} {ty} packed vs row-major {rows}x{n} t={t} at {i}",
                                name(k)
                            )
                        });
                    }
                }
            }
        }
    }
}

/// Packed products of weights made of extreme bytes (codes 0 / 15 / 31, Q8_0 -128 / 127 against
/// -127 / 127 activations), where an i16 step would saturate: bitwise the AVX2 path's. Activation
/// bytes stay in -127..=127, the range of every Q8 quantizer (ggml's and ingot's), which the AVX2
/// Q8_0 kernels count on as ggml's own AVX2 dot does (`|q| * sign(y, q)` in `vpmaddubsw`).
#[test]
fn packed_extreme_bytes_equal_avx2_bitwise() {
    let Some((avx2, ks)) = paths("packed_extreme_bytes_equal_avx2_bitwise") else {
        return;
    };
    let mut rng = SplitMix64(0xa7_0004);
    for ty in PACKED {
        let act = ty.info().vec_dot_type;
        let (rows, nb) = (32usize, 9usize);
        let n = nb * QK;
        let arb = act.row_bytes(n).unwrap();
        let w = random_blocks(&mut rng, ty, rows * nb, true);
        let mut p = vec![0u8; w.len()];
        pack(ty, &w, rows, n, &mut p);
        for t in [1usize, 4, 6] {
            let mut x = random_blocks(&mut rng, act, t * nb, true);
            for b in x.iter_mut().filter(|b| **b == 0x80) {
                *b = 0x81; // -127
            }
            let mut want = vec![f32::NAN; t * rows];
            avx2.matmul_packed(ty, &mut want, &p, rows, &x, arb, t, n);
            for k in &ks {
                let mut got = vec![f32::NAN; t * rows];
                k.matmul_packed(ty, &mut got, &p, rows, &x, arb, t, n);
                same_bits(&got, &want, &|i| {
                    format!("{} {ty} extreme packed t={t} at {i}", name(k))
                });
            }
        }
    }
}

/// `INGOT_ISA=avxvnni` names the path; `for_isa` gives it exactly where the CPU reports AVX-VNNI
/// (with AVX2, FMA and F16C), and `detect` prefers it to AVX2 and AVX-512 VNNI to it.
#[test]
fn isa_is_named_detected_and_ordered() {
    assert_eq!(Isa::from_name("avxvnni"), Some(Isa::AvxVnni));
    assert_eq!(Isa::AvxVnni.name(), "avxvnni");
    assert!(Isa::Avx2 < Isa::AvxVnni && Isa::AvxVnni < Isa::Avx512Vnni);
    #[cfg(target_arch = "x86_64")]
    {
        let has = std::is_x86_feature_detected!("avxvnni")
            && std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("f16c");
        assert_eq!(Kernels::for_isa(Isa::AvxVnni).is_some(), has);
        let best = Kernels::detect().isa();
        if has {
            assert!(best >= Isa::AvxVnni, "{best}");
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        assert!(Kernels::for_isa(Isa::AvxVnni).is_none());
        assert!(Kernels::avxvnni_emulated().is_none());
    }
}
