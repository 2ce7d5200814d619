//! Bit-exact golden checks against ggml's arithmetic as compiled C.
//!
//! The constants below were produced by a throwaway C harness (not committed) that transcribes
//! ggml's `quantize_row_*_ref` / `dequantize_row_*` (ggml-quants.c), the AVX2 `quantize_row_q8_0`
//! / `quantize_row_q8_1` (ggml-cpu/arch/x86/quants.c, real `_mm256_round_ps` / `_mm256_cvtps_epi32`
//! / `packs` intrinsics) and `ggml_vec_dot_*_generic` (ggml-cpu/quants.c), with f16 conversions by
//! F16C (`_cvtss_sh(x, 0)`, `_cvtsh_ss`), built with `gcc -O2 -mavx2 -mf16c -mno-fma
//! -ffp-contract=off` on x86-64. Both sides generate the same inputs from splitmix64 (seed
//! 0x601de17, 2048 weights then 2048 activations) and compare FNV-1a 64 hashes of the output bytes
//! (f32 outputs hashed as little-endian bits), so a single flipped bit anywhere fails.
//!
//! The input mixes per-block scales 2^-10..2^5, constant blocks, all-positive blocks, and blocks
//! with amax = 127 and values on half-integers, where `roundf` and ties-to-even disagree.

mod common;
use common::SplitMix64;

use ingot_kernels::blocks::QK;
use ingot_kernels::{quantize_activations, QuantType};

const N: usize = 2048;

impl SplitMix64 {
    /// Same draw order as the C harness's `gen`.
    fn fill(&mut self, x: &mut [f32]) {
        for block in x.chunks_exact_mut(QK) {
            let sc = 2f32.powi((self.next_u64() % 16) as i32 - 10);
            let kind = self.next_u64() % 8;
            for (j, v) in block.iter_mut().enumerate() {
                *v = match kind {
                    0 if j == 0 => 127.0,
                    0 => ((self.next_u64() % 255) as i32 - 127) as f32 * 0.5,
                    1 => 0.75 * sc,
                    2 => self.unit() * sc + 3.0 * sc,
                    _ => self.unit() * sc,
                };
            }
        }
    }
}

fn fnv(bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn fnv_f32(x: &[f32]) -> u64 {
    let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    fnv(&bytes)
}

fn inputs() -> (Vec<f32>, Vec<f32>) {
    let mut rng = SplitMix64(0x0601_de17);
    let (mut w, mut x) = (vec![0.0; N], vec![0.0; N]);
    rng.fill(&mut w);
    rng.fill(&mut x);
    (w, x)
}

fn encode(ty: QuantType, x: &[f32], act: bool) -> Vec<u8> {
    let mut out = vec![0u8; ty.row_bytes(x.len()).unwrap()];
    if act {
        quantize_activations(ty, x, &mut out);
    } else {
        (ty.info().from_f32)(x, &mut out);
    }
    out
}

#[test]
fn reference_quantizers_match_ggml_bit_for_bit() {
    use QuantType::*;
    let (w, _) = inputs();
    let want = [
        (Q4_0, 0x4cdd_3f4b_619b_857a),
        (Q4_1, 0x05b0_0f60_f147_c44f),
        (Q5_0, 0x60e6_3914_a8d0_3384),
        (Q5_1, 0x3fd2_4b67_0003_a741),
        (Q8_0, 0x279b_eb47_b841_315d),
        (Q8_1, 0xa7f7_e06b_676e_6e89),
    ];
    for (ty, h) in want {
        assert_eq!(fnv(&encode(ty, &w, false)), h, "{ty} quantize_row_ref");
    }
}

#[test]
fn dequantizers_match_ggml_bit_for_bit() {
    use QuantType::*;
    let (w, _) = inputs();
    let want = [
        (Q4_0, 0x54da_d122_c27a_9784),
        (Q4_1, 0x8acd_cf8e_b233_d5f4),
        (Q5_0, 0x0fb2_4b89_c7c2_b9a7),
        (Q5_1, 0xb443_7942_72df_2ae8),
        (Q8_0, 0x8278_280b_28ad_ee2e),
    ];
    for (ty, h) in want {
        let mut y = vec![0.0; N];
        (ty.info().to_f32)(&encode(ty, &w, false), &mut y);
        assert_eq!(fnv_f32(&y), h, "{ty} dequantize_row");
    }
}

#[test]
fn activation_quantizers_match_ggml_x86_bit_for_bit() {
    let (_, x) = inputs();
    assert_eq!(
        fnv(&encode(QuantType::Q8_0, &x, true)),
        0x7dd2_2d2b_8a23_5d6e
    );
    assert_eq!(
        fnv(&encode(QuantType::Q8_1, &x, true)),
        0xc056_980a_73c6_7002
    );
    assert_eq!(
        fnv(&encode(QuantType::F16, &x, true)),
        0x913c_b853_7ef7_95aa
    );
    assert_eq!(
        fnv(&encode(QuantType::BF16, &x, true)),
        0x0ddc_1b08_07f9_2c96
    );
}

#[test]
fn vec_dots_match_ggml_generic_bit_for_bit() {
    use QuantType::*;
    let (w, x) = inputs();
    let want = [
        (Q4_0, 0x46d2_4821u32),
        (Q4_1, 0x46c8_aa20),
        (Q5_0, 0x46c6_3962),
        (Q5_1, 0x46ca_58ec),
        (Q8_0, 0x46ca_449e),
    ];
    for (ty, bits) in want {
        let info = ty.info();
        let wq = encode(ty, &w, false);
        let xq = encode(info.vec_dot_type, &x, true);
        let got = (info.vec_dot)(N, &wq, &xq);
        assert_eq!(
            got.to_bits(),
            bits,
            "{ty}: got {got}, want {}",
            f32::from_bits(bits)
        );
    }
}
