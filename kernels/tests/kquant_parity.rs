//! ingot's K-quant reference kernels against ggml's, through the fixture
//! `testdata/peer/kquants.json` made by `ingot-peer kquant-parity` (tools/peer, llama.cpp's ggml
//! built without floating-point contraction, as upstream builds ggml-base; see testdata/README.md).
//!
//! - Q4_K, Q6_K and the activation format Q8_K: ingot's quantized bytes equal ggml's (FNV-1a of
//!   each whole seeded set, and byte for byte on the sample rows).
//! - Q2_K, Q3_K, Q5_K, whose float scale search in ggml depends on compiler contraction: where
//!   ingot's bytes differ, ingot's round-trip RMSE is at most ggml's (per set and per sample row).
//! - Dequantization of ggml's own bytes is bit-exact for every type (sample rows).
//! - `vec_dot` of ggml's bytes with a Q8_K row agrees with ggml-cpu's (an AVX-512 build) to f32
//!   rounding on every path, and ingot's scalar references of ggml's x86 orders
//!   (`reference::vec_dot_q*_k_q8_k_x86`) equal it bit for bit.
//!
//! Inputs: the seeded sets of `tools/peer/src/quant_inputs.rs` (regenerated here; the fixture's
//! `input_fnv` proves they are the same values) and SmolLM2 sample rows stored in the fixture.

#[path = "../../tools/peer/src/quant_inputs.rs"]
#[allow(dead_code)]
mod quant_inputs;

use ingot_kernels::reference::quantize_row_q8_k_ref;
use ingot_kernels::{Kernels, QuantType};
use quant_inputs::{f32_bytes, fnv1a};

/// As the fixture hashes dequantized values: every NaN as `0x7fc0_0000` (x86 and AArch64 produce
/// different default NaNs for operations on inf).
fn f32_bytes_canon(x: &[f32]) -> Vec<u8> {
    x.iter()
        .flat_map(|v| {
            if v.is_nan() {
                0x7fc0_0000u32.to_le_bytes()
            } else {
                v.to_le_bytes()
            }
        })
        .collect()
}
use serde_json::Value;

const TYPES: [QuantType; 5] = [
    QuantType::Q2_K,
    QuantType::Q3_K,
    QuantType::Q4_K,
    QuantType::Q5_K,
    QuantType::Q6_K,
];
/// Types whose bytes must equal ggml's.
const EXACT: [QuantType; 2] = [QuantType::Q4_K, QuantType::Q6_K];

fn fixture() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/peer/kquants.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn hex(h: u64) -> String {
    format!("{h:016x}")
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn quantize(ty: QuantType, x: &[f32]) -> Vec<u8> {
    let mut out = vec![0u8; ty.row_bytes(x.len()).unwrap()];
    (ty.info().from_f32)(x, &mut out);
    out
}

fn dequantize(ty: QuantType, q: &[u8], n: usize) -> Vec<f32> {
    let mut y = vec![f32::NAN; n];
    (ty.info().to_f32)(q, &mut y);
    y
}

fn rmse(x: &[f32], y: &[f32]) -> f64 {
    let s: f64 = x
        .iter()
        .zip(y)
        .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
        .sum();
    (s / x.len() as f64).sqrt()
}

/// `ours <= theirs`, where the fixture writes a NaN RMSE (sets with values past the f16 range) as
/// `null`: then ingot's must be NaN too.
fn rmse_not_worse(ours: f64, theirs: &Value) -> bool {
    match theirs.as_f64() {
        Some(t) => ours <= t,
        None => ours.is_nan(),
    }
}

#[test]
fn whole_sets_match_ggml() {
    let fx = fixture();
    let sets = fx["sets"].as_object().unwrap();
    let random = quant_inputs::random_sets(quant_inputs::SEED);
    assert_eq!(random.len() + 1, sets.len(), "the random sets and smollm2");
    for (name, x) in &random {
        let e = &sets[*name];
        assert_eq!(e["input_fnv"], hex(fnv1a(&f32_bytes(x))), "{name}: inputs");
        for ty in TYPES {
            let want = &e[ty.name()];
            let ours = quantize(ty, x);
            let same = hex(fnv1a(&ours)) == want["quant_fnv"];
            let y = dequantize(ty, &ours, x.len());
            if same {
                // Same bytes: our dequantization must then equal ggml's bit for bit.
                assert_eq!(
                    want["dequant_fnv"],
                    hex(fnv1a(&f32_bytes_canon(&y))),
                    "{name} {ty}: dequant"
                );
            } else {
                assert!(
                    !EXACT.contains(&ty),
                    "{name} {ty}: bytes differ from ggml's"
                );
                assert!(
                    rmse_not_worse(rmse(x, &y), &want["rmse"]),
                    "{name} {ty}: RMSE {} > ggml's {}",
                    rmse(x, &y),
                    want["rmse"]
                );
            }
        }
        let mut q8k = vec![0u8; QuantType::Q8_K.row_bytes(x.len()).unwrap()];
        // ggml's `quantize_row_q8_K_ref` as the fixture's build compiles it (no contraction).
        quantize_row_q8_k_ref(x, &mut q8k);
        assert_eq!(e["Q8_K"]["quant_fnv"], hex(fnv1a(&q8k)), "{name} Q8_K");
    }
}

#[test]
fn sample_rows_match_ggml() {
    let fx = fixture();
    let random = quant_inputs::random_sets(quant_inputs::SEED);
    let row = quant_inputs::ROW;
    let samples = fx["samples"].as_array().unwrap();
    assert!(samples.len() >= 16);
    // Sample inputs per set, by row index.
    let input = |s: &Value, r: usize| -> Vec<f32> {
        let set = s["set"].as_str().unwrap();
        if let Some(x) = s.get("x").and_then(Value::as_str) {
            assert_eq!(s["row"].as_u64(), Some(r as u64));
            let b = unhex(x);
            return b
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
        }
        let (_, x) = random.iter().find(|(n, _)| *n == set).unwrap();
        x[r * row..(r + 1) * row].to_vec()
    };
    for k in Isa::paths() {
        for s in samples {
            let set = s["set"].as_str().unwrap();
            let r = s["row"].as_u64().unwrap() as usize;
            let ar = s["act_row"].as_u64().unwrap() as usize;
            let x = input(s, r);
            let act_sample = samples
                .iter()
                .find(|t| t["set"] == s["set"] && t["row"].as_u64() == Some(ar as u64))
                .unwrap();
            let xa = input(act_sample, ar);
            let mut act = vec![0u8; QuantType::Q8_K.row_bytes(row).unwrap()];
            // As ggml-cpu quantized them for the fixture's dots (ggml-base built without contraction;
            // `quantize_activations` is the contracted build's, see `quantize_row_q8_k_fma`).
            quantize_row_q8_k_ref(&xa, &mut act);
            for ty in TYPES {
                let want = &s[ty.name()];
                let theirs = unhex(want["bytes"].as_str().unwrap());
                let yd = dequantize(ty, &theirs, row);
                assert_eq!(
                    want["dequant_fnv"],
                    hex(fnv1a(&f32_bytes_canon(&yd))),
                    "{set}[{r}] {ty}: dequantization of ggml's bytes"
                );
                let ours = quantize(ty, &x);
                if EXACT.contains(&ty) {
                    assert_eq!(ours, theirs, "{set}[{r}] {ty}: bytes");
                } else if ours != theirs {
                    let (ro, rt) = (rmse(&x, &dequantize(ty, &ours, row)), rmse(&x, &yd));
                    assert!(
                        ro <= rt || (ro.is_nan() && rt.is_nan()),
                        "{set}[{r}] {ty}: RMSE {ro} > ggml's {rt}"
                    );
                }
                // ggml-cpu's AVX-512 dot sums in another order: f32 rounding of the terms that
                // are added (|w| plus the sub-block minimums, bounded by max |w|), 2^-16 relative.
                let got = k.vec_dot(ty, row, &theirs, &act);
                let theirs_dot = want["dot"].as_f64().unwrap();
                // ggml's x86 order, as ingot's scalar reference writes it out, is bit for bit
                // what the fixture's x86 build of ggml-cpu computed (one super-block per row, so
                // the contraction of Q5_K's `summs += dmin * x` cannot show either way).
                let x86 = x86_reference(ty)(row, &theirs, &act);
                assert_eq!(
                    x86.to_bits(),
                    (theirs_dot as f32).to_bits(),
                    "{set}[{r}] {ty}: reference x86 dot {x86} vs ggml {theirs_dot}"
                );
                let xd = dequantize(QuantType::Q8_K, &act, row);
                let wmax = yd.iter().fold(0.0f64, |m, &v| m.max((v as f64).abs()));
                let scale: f64 = yd
                    .iter()
                    .zip(&xd)
                    .map(|(&w, &a)| ((w as f64).abs() + wmax) * (a as f64).abs())
                    .sum();
                assert!(
                    (got as f64 - theirs_dot).abs() <= scale * 2f64.powi(-16),
                    "{} {set}[{r}] {ty}: dot {got} vs ggml {theirs_dot}",
                    k.isa()
                );
            }
        }
    }
}

/// ingot's scalar reference of ggml-cpu's x86 `vec_dot` for `ty`.
fn x86_reference(ty: QuantType) -> fn(usize, &[u8], &[u8]) -> f32 {
    use ingot_kernels::reference::*;
    match ty {
        QuantType::Q2_K => vec_dot_q2_k_q8_k_x86,
        QuantType::Q3_K => vec_dot_q3_k_q8_k_x86,
        QuantType::Q4_K => vec_dot_q4_k_q8_k_x86,
        QuantType::Q5_K => vec_dot_q5_k_q8_k_x86,
        _ => vec_dot_q6_k_q8_k_x86,
    }
}

struct Isa;
impl Isa {
    /// Every kernel path this CPU has.
    fn paths() -> Vec<Kernels> {
        ingot_kernels::Isa::ALL
            .into_iter()
            .filter_map(Kernels::for_isa)
            .collect()
    }
}
