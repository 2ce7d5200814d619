//! Known-answer tests for the rounding that distinguishes ggml's x86 activation quantizers
//! (`quantize_row_q8_{0,1}` in ggml-cpu/arch/x86/quants.c: `id = 127/amax`, `_mm256_round_ps`
//! ties-to-even) from the reference weight quantizers (`quantize_row_q8_{0,1}_ref`: `id = 1/d`,
//! `roundf` ties-away). Each expected byte is derived by hand in the comments.

use ingot_kernels::blocks::{BlockQ8_0, BlockQ8_1, QK};
use ingot_kernels::{quantize_activations, QuantType};

fn act_q8_0(x: &[f32; QK]) -> BlockQ8_0 {
    let mut b = [0u8; 34];
    quantize_activations(QuantType::Q8_0, x, &mut b);
    BlockQ8_0::read(&b)
}

fn act_q8_1(x: &[f32; QK]) -> BlockQ8_1 {
    let mut b = [0u8; 36];
    quantize_activations(QuantType::Q8_1, x, &mut b);
    BlockQ8_1::read(&b)
}

fn ref_q8_0(x: &[f32; QK]) -> BlockQ8_0 {
    let mut b = [0u8; 34];
    (QuantType::Q8_0.info().from_f32)(x, &mut b);
    BlockQ8_0::read(&b)
}

fn ref_q8_1(x: &[f32; QK]) -> BlockQ8_1 {
    let mut b = [0u8; 36];
    (QuantType::Q8_1.info().from_f32)(x, &mut b);
    BlockQ8_1::read(&b)
}

/// amax = 127 makes d = 1 and both multipliers exactly 1 (127/127 and 1/1), so x * id = x and
/// only the tie rule decides: 2.5 -> 2 (even) vs 3 (away); 0.5 -> 0 vs 1; -126.5 -> -126 vs -127;
/// 3.5 and 1.5 round to the even neighbour 4 and 2 under both rules.
#[test]
fn q8_ties_round_to_even_in_activations_and_away_in_ref() {
    let mut x = [0.0f32; QK];
    x[..7].copy_from_slice(&[127.0, 2.5, 0.5, 3.5, -126.5, 1.5, -0.5]);
    x[31] = -2.5;

    let mut want_act = [0i8; QK];
    want_act[..7].copy_from_slice(&[127, 2, 0, 4, -126, 2, 0]);
    want_act[31] = -2;
    let mut want_ref = [0i8; QK];
    want_ref[..7].copy_from_slice(&[127, 3, 1, 4, -127, 2, -1]);
    want_ref[31] = -3;

    let a = act_q8_0(&x);
    assert_eq!(a.d.to_bits(), 0x3c00); // f16 1.0
    assert_eq!(a.qs, want_act);
    let r = ref_q8_0(&x);
    assert_eq!(r.d.to_bits(), 0x3c00);
    assert_eq!(r.qs, want_ref);

    // Q8_1: same quants; s = fp16(d * sum q).
    // Activation sum: 127 + 2 + 0 + 4 - 126 + 2 + 0 - 2 = 7  -> f16 7.0 = 0x4700.
    // Reference sum:  127 + 3 + 1 + 4 - 127 + 2 - 1 - 3 = 6  -> f16 6.0 = 0x4600.
    let a = act_q8_1(&x);
    assert_eq!((a.d.to_bits(), a.s.to_bits()), (0x3c00, 0x4700));
    assert_eq!(a.qs, want_act);
    let r = ref_q8_1(&x);
    assert_eq!((r.d.to_bits(), r.s.to_bits()), (0x3c00, 0x4600));
    assert_eq!(r.qs, want_ref);
}

/// The two multipliers differ in the last bit for amax = 0x400efa3b (~2.234):
/// `127f32 / amax` = 56.847... rounds one ulp away from `1 / (amax / 127f32)`. For
/// x = 0x3cd827a7 (~0.026386), x * (127/amax) is exactly 1.5 in f32 -> ties-to-even gives 2,
/// while x * (1/d) = 1.4999999 -> roundf gives 1. Found by a search over f32 values; the
/// preconditions are re-checked below so the test documents its own arithmetic.
#[test]
fn q8_activation_multiplier_is_127_over_amax_not_reciprocal_of_d() {
    let amax = f32::from_bits(0x400e_fa3b);
    let xv = f32::from_bits(0x3cd8_27a7);
    assert_eq!(xv * (127.0 / amax), 1.5);
    assert!(xv * (1.0 / (amax / 127.0)) < 1.5);

    let mut x = [0.0f32; QK];
    x[0] = -amax; // sign must not matter for amax
    x[5] = xv;
    x[6] = -xv;
    let a = act_q8_0(&x);
    assert_eq!((a.qs[0], a.qs[5], a.qs[6]), (-127, 2, -2));
    let r = ref_q8_0(&x);
    assert_eq!((r.qs[0], r.qs[5], r.qs[6]), (-127, 1, -1));
    // d is the same f16 either way: fp16(amax / 127).
    assert_eq!(a.d, r.d);
    assert_eq!(a.d, half::f16::from_f32(amax / 127.0));
}

/// Q8_1's `s` uses the f32 scale, not its f16 rounding. With every value equal to amax =
/// 0x3fc5a94e (~1.5442293), all quants are 127 and sum q = 4064. d = amax/127 = 0.012159285 in f32
/// but fp16(d) = 0.012161255. s = fp16(4064 * 0.012159285) = fp16(49.415337) = 49.40625 (0x522d);
/// using fp16(d) would give fp16(49.42334) = 49.4375 (0x522e), one f16 ulp off.
#[test]
fn q8_1_sum_uses_f32_scale() {
    let amax = f32::from_bits(0x3fc5_a94e);
    let x = [amax; QK];
    let a = act_q8_1(&x);
    assert_eq!(a.qs, [127; QK]);
    assert_eq!(a.d, half::f16::from_f32(amax / 127.0));
    assert_eq!(a.s.to_bits(), 0x522d);
    // The same holds for the reference quantizer (`s = fp16(sum * d)` with the f32 d).
    assert_eq!(ref_q8_1(&x).s.to_bits(), 0x522d);
}

/// All-zero blocks: amax = 0 takes the `id = 0` branch, so no 0/0 NaN reaches the quants.
#[test]
fn q8_zero_block() {
    let a = act_q8_1(&[0.0; QK]);
    assert_eq!((a.d.to_bits(), a.s.to_bits(), a.qs), (0, 0, [0; QK]));
    let mut neg_zero = [0.0f32; QK];
    neg_zero[3] = -0.0;
    assert_eq!(act_q8_0(&neg_zero).qs, [0; QK]);
}
