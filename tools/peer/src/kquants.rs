//! `kquant-parity`: ingot's K-quant reference kernels (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and the Q8_K
//! activation format) against ggml's, and the fixture `testdata/peer/kquants.json` that
//! `kernels/tests/kquant_parity.rs` checks without llama.cpp.
//!
//! Inputs: the seeded sets of `quant_inputs.rs` (rows of 256) and, with `--model`, the `smollm2`
//! rows (`SMOLLM2_ROWS`, dequantized by ggml). Per set and type it quantizes with ggml
//! (`ggml_quantize_chunk`, cross-checked against `from_float_ref`) and with ingot, compares the
//! bytes, the RMSE of each side's round trip, and ingot's dequantization of ggml's bytes against
//! ggml's `to_float` (bitwise). Q8_K (no chunk quantizer: activation only) is compared as
//! `from_float` of the CPU backend, which on x86 is `quantize_row_q8_K_ref`. Then, for sample rows,
//! ggml's CPU `vec_dot` (the AVX-512/AVX2 build, whose f32 summation order differs from the
//! `_generic` one ingot follows) of ggml's weight bytes with ggml's Q8_K of another row.
//!
//! The fixture stores per set and type the FNV-1a of ggml's bytes and of its dequantized values and
//! ggml's RMSE; and for 4 sample rows of the sets `uniform`, `weights`, `outliers` and `smollm2`
//! ggml's bytes (hex), the FNV of ggml's dequantization and ggml's dot product. The `smollm2`
//! samples also store their input values (hex f32 LE), since the test has no model.

use crate::quant_inputs::{self, f32_bytes, fnv1a};
use crate::quantize::{quantize_file_fnv, 
    bad_blocks, f32_diff, ggml_from_float_ref, ggml_quantize, ggml_to_float, ingot_quantize,
    smollm2_rows,
};
use ingot_kernels::QuantType;
use llama_cpp_sys_2 as sys;
use serde_json::{json, Map, Value as Json};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const TYPES: [QuantType; 5] = [
    QuantType::Q2_K,
    QuantType::Q3_K,
    QuantType::Q4_K,
    QuantType::Q5_K,
    QuantType::Q6_K,
];
/// Types whose bytes must equal ggml's (the others' float search is contraction-sensitive).
const EXACT: [QuantType; 2] = [QuantType::Q4_K, QuantType::Q6_K];
const SAMPLE_SETS: [&str; 4] = ["uniform", "weights", "outliers", "smollm2"];
const SAMPLES: usize = 4;

fn gt(t: QuantType) -> sys::ggml_type {
    t.ggml_id() as sys::ggml_type
}

/// The f32 values as little-endian bytes with every NaN replaced by `0x7fc0_0000`: operations on
/// inf/NaN produce a different default NaN on x86 (`0xffc0_0000`) than on AArch64, and the fixture
/// must not depend on the machine that made or checks it.
pub fn f32_bytes_canon(x: &[f32]) -> Vec<u8> {
    x.iter().flat_map(|v| if v.is_nan() { 0x7fc0_0000u32.to_le_bytes() } else { v.to_le_bytes() }).collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Root mean square of `x - y`, in f64.
pub fn rmse(x: &[f32], y: &[f32]) -> f64 {
    let s: f64 = x
        .iter()
        .zip(y)
        .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
        .sum();
    (s / x.len().max(1) as f64).sqrt()
}

/// ggml-cpu's `from_float` for Q8_K (x86: `quantize_row_q8_K_ref`).
fn ggml_q8k(x: &[f32]) -> Vec<u8> {
    // SAFETY: the CPU trait table is static; from_float writes row_size(Q8_K, len) bytes.
    unsafe {
        let tr = &*sys::ggml_get_type_traits_cpu(sys::GGML_TYPE_Q8_K);
        let mut out = vec![0u8; sys::ggml_row_size(sys::GGML_TYPE_Q8_K, x.len() as i64)];
        (tr.from_float.expect("from_float"))(x.as_ptr(), out.as_mut_ptr().cast(), x.len() as i64);
        out
    }
}

/// ggml-cpu's `vec_dot` of one row of `t` with one Q8_K row.
fn ggml_vec_dot(t: QuantType, n: usize, w: &[u8], x: &[u8]) -> f32 {
    assert_eq!(w.len(), t.row_bytes(n).unwrap());
    assert_eq!(x.len(), QuantType::Q8_K.row_bytes(n).unwrap());
    let mut s = 0.0f32;
    // SAFETY: one row each of n elements (checked above), nrc = 1.
    unsafe {
        let tr = &*sys::ggml_get_type_traits_cpu(gt(t));
        (tr.vec_dot.expect("vec_dot"))(
            n as i32,
            &mut s,
            0,
            w.as_ptr().cast(),
            0,
            x.as_ptr().cast(),
            0,
            1,
        );
    }
    s
}

pub fn cmd_kquant_parity(model: Option<&str>, out: Option<&str>, seed: u64) -> Res<()> {
    // SAFETY: plain initialisation of ggml's tables (idempotent).
    unsafe { sys::ggml_cpu_init() };
    let mut sets: Vec<(String, Vec<f32>)> = quant_inputs::random_sets(seed)
        .into_iter()
        .map(|(n, x)| (n.to_string(), x))
        .collect();
    if let Some(m) = model {
        let (x, mism) = smollm2_rows(m)?;
        println!("smollm2 source rows: {} values, ingot to_f32 vs ggml to_float: {mism} bitwise mismatches", x.len());
        if mism != 0 {
            return Err("source dequantization differs".into());
        }
        sets.push(("smollm2".into(), x));
    }
    let row = quant_inputs::ROW;
    let mut fixture = Map::new();
    let mut samples = Vec::new();
    let mut bad = 0usize;
    println!(
        "{:<12} {:<5} {:>7} {:>13} {:>12} {:>13} {:>13} {:>10} {:>8}",
        "set",
        "type",
        "blocks",
        "blocks differ",
        "ref==chunk",
        "rmse ggml",
        "rmse ingot",
        "ingot<=",
        "dequant"
    );
    for (set, x) in &sets {
        let mut entry = Map::new();
        entry.insert("values".into(), json!(x.len()));
        entry.insert(
            "input_fnv".into(),
            json!(format!("{:016x}", fnv1a(&f32_bytes(x)))),
        );
        for t in TYPES {
            let theirs = ggml_quantize(gt(t), x, row);
            let reference = ggml_from_float_ref(gt(t), x);
            let ours = ingot_quantize(t, x);
            let differ = bad_blocks(t, &ours, &theirs).len();
            let deq_g = ggml_to_float(gt(t), &theirs, x.len()).ok_or("no to_float")?;
            let mut deq_i_of_g = vec![0f32; x.len()];
            (t.info().to_f32)(&theirs, &mut deq_i_of_g);
            let deq_bad = f32_diff(&deq_i_of_g, &deq_g);
            let mut deq_i = vec![0f32; x.len()];
            (t.info().to_f32)(&ours, &mut deq_i);
            let (rg, ri) = (rmse(x, &deq_g), rmse(x, &deq_i));
            // Sets with values past the f16 range give NaN scales on both sides (ggml's too).
            let not_worse = ri <= rg || (ri.is_nan() && rg.is_nan());
            let ok = if EXACT.contains(&t) {
                differ == 0
            } else {
                differ == 0 || not_worse
            };
            bad += usize::from(!ok) + deq_bad + usize::from(reference != theirs);
            println!(
                "{set:<12} {:<5} {:>7} {differ:>13} {:>12} {rg:>13.6e} {ri:>13.6e} {:>10} {deq_bad:>8}",
                t.name(),
                theirs.len() / t.block_bytes(),
                reference == theirs,
                not_worse
            );
            entry.insert(
                t.name().into(),
                json!({
                    "quant_fnv": format!("{:016x}", fnv1a(&theirs)),
                    "dequant_fnv": format!("{:016x}", fnv1a(&f32_bytes_canon(&deq_g))),
                    "rmse": rg,
                    "blocks_differ_from_ingot": differ,
                }),
            );
        }
        // The activation format.
        let theirs = ggml_q8k(x);
        let mut ours = vec![0u8; theirs.len()];
        ingot_kernels::quantize_activations(QuantType::Q8_K, x, &mut ours);
        let differ = bad_blocks(QuantType::Q8_K, &ours, &theirs).len();
        bad += differ;
        println!(
            "{set:<12} {:<5} {:>7} {differ:>13}",
            "Q8_K",
            theirs.len() / QuantType::Q8_K.block_bytes()
        );
        entry.insert(
            "Q8_K".into(),
            json!({ "quant_fnv": format!("{:016x}", fnv1a(&theirs)) }),
        );
        fixture.insert(set.clone(), Json::Object(entry));

        if SAMPLE_SETS.contains(&set.as_str()) {
            let rows: Vec<&[f32]> = x.chunks_exact(row).take(SAMPLES).collect();
            for (i, xr) in rows.iter().enumerate() {
                let act = ggml_q8k(rows[(i + 1) % SAMPLES]);
                let mut s = Map::new();
                s.insert("set".into(), json!(set));
                s.insert("row".into(), json!(i));
                s.insert("act_row".into(), json!((i + 1) % SAMPLES));
                if set == "smollm2" {
                    s.insert("x".into(), json!(hex(&f32_bytes(xr))));
                }
                for t in TYPES {
                    let w = ggml_quantize(gt(t), xr, row);
                    let deq = ggml_to_float(gt(t), &w, row).ok_or("no to_float")?;
                    let dot = ggml_vec_dot(t, row, &w, &act);
                    let ours = ingot_kernels::Kernels::best().vec_dot(t, row, &w, &act);
                    println!(
                        "  sample {set}[{i}] {:<5} dot ggml {dot:>14.7e} ingot {ours:>14.7e} rel {:.2e}",
                        t.name(),
                        ((ours - dot) / dot.abs().max(1e-30)).abs()
                    );
                    s.insert(
                        t.name().into(),
                        json!({
                            "bytes": hex(&w),
                            "dequant_fnv": format!("{:016x}", fnv1a(&f32_bytes_canon(&deq))),
                            "dot": dot,
                            "dot_bits": format!("{:08x}", dot.to_bits()),
                        }),
                    );
                }
                samples.push(Json::Object(s));
            }
        }
    }
    println!(
        "{}",
        if bad == 0 {
            "ALL OK (Q4_K/Q6_K/Q8_K bytes equal, Q2_K/Q3_K/Q5_K RMSE <= ggml, dequantization bitwise equal)"
        } else {
            "MISMATCHES FOUND"
        }
    );
    // llama.cpp's own requantization of the model with each K preset (what `llama-quantize
    // --allow-requantize M OUT TYPE` writes), for `tests/convert.rs`.
    let mut files = Map::new();
    if let (Some(m), Some(_)) = (model, out) {
        for ty in ["Q2_K", "Q3_K_M", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K"] {
            let tmp = std::env::temp_dir().join(format!("ingot-peer-{}-{ty}.gguf", std::process::id()));
            let h = quantize_file_fnv(m, tmp.to_str().unwrap(), ty)?;
            let _ = std::fs::remove_file(&tmp);
            println!("llama_model_quantize {ty}: tensors_fnv {h:016x}");
            files.insert(ty.into(), json!(format!("{h:016x}")));
        }
    }
    if let Some(path) = out {
        let doc = json!({
            "made_by": "tools/peer: ingot-peer kquant-parity --model M --out testdata/peer/kquants.json",
            "inputs": format!("tools/peer/src/quant_inputs.rs random_sets(seed {seed}), rows of {row} values; smollm2 = SMOLLM2_ROWS of the model, dequantized"),
            "model": model,
            "ggml": "ggml_quantize_chunk (== from_float_ref), type_traits to_float, type_traits_cpu Q8_K from_float and vec_dot",
            "llama_cpp_sys_2": "0.1.161",
            "build_cflags": option_env!("CFLAGS").unwrap_or(""),
            "system_info": crate::system_info(),
            "hash": "FNV-1a 64 of ggml's quantized bytes / of the dequantized f32 little-endian bytes, every NaN as 0x7fc00000",
            "rmse": "sqrt(mean((x - to_float(ggml bytes))^2)) in f64; null where it is NaN (sets past the f16 range)",
            "sets": Json::Object(fixture),
            "samples": samples,
            "llama_quantize_tensors_fnv": Json::Object(files),
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)? + "\n")?;
        println!("wrote {path}");
    }
    if bad != 0 {
        return Err("ingot's K-quants differ from ggml's".into());
    }
    Ok(())
}
