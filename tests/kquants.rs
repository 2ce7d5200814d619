//! K-quants end to end on the real SmolLM2 model, against llama.cpp.
//!
//! - `ingot convert` of the shipped Q4_1 file with every K preset (Q2_K, Q3_K_M, Q4_K_S, Q4_K_M,
//!   Q5_K_S, Q5_K_M, Q6_K, `--allow-requantize`) holds exactly the tensors (names, types, bytes) that
//!   `llama_model_quantize` writes for the same preset: FNV hashes in `testdata/peer/kquants.json`
//!   (`ingot-peer kquant-parity`, ggml built without contraction as upstream builds ggml-base).
//! - Every plain K type converts a tiny model whose rows are multiples of 256 (so nothing falls
//!   back): each weight matrix holds exactly the reference quantizer's bytes of the source values,
//!   and the file loads and runs.
//! - ingot runs the Q4_K_M, Q6_K, Q5_K_M and Q2_K files (and a Q2_K file with Q2_K `ffn_down`) and
//!   its logits agree with llama.cpp's on that same file (`testdata/peer/smollm2-*.json`:
//!   `ingot-peer logits`): identical on the AVX-512 path, at every greedy step, so every K type
//!   (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K) in each of llama.cpp's x86 orders is covered; other paths within
//!   a tolerance, with greedy agreement wherever llama.cpp's margin is not tiny ([`tolerances`]).
//! - K-quant matrices whose row count is not a multiple of 8 (not repacked by llama.cpp) give the
//!   same logits at any thread count.

mod common;

#[path = "../tools/peer/src/quant_inputs.rs"]
#[allow(dead_code)]
mod quant_inputs;

use common::{model_path, testdata, tiny_model, Tiny};
use ingot_convert::policy::Target;
use ingot_convert::{Options, Policy};
use ingot_kernels::{Isa, Kernels, QuantType};
use ingot_runtime::gguf::{Gguf, GgufFile};
use ingot_runtime::model::{Model, Session, SessionParams};
use ingot_runtime::sampler::argmax;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ingot-kquants-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn convert(preset: &str, out: &Path) {
    convert_with(preset, &[], out)
}

/// [`convert`] with `--tensor-type` overrides (`PATTERN=TYPE`).
fn convert_with(preset: &str, overrides: &[&str], out: &Path) {
    let mut policy = Policy::new(Target::parse(preset).unwrap());
    policy.allow_requantize = true;
    policy.overrides = overrides
        .iter()
        .map(|o| ingot_convert::policy::Override::parse(o).unwrap())
        .collect();
    let opts = Options { policy, threads: 4 };
    ingot_convert::convert(&model_path(), out, &opts, &mut |_| {}).unwrap();
}

#[test]
fn every_k_type_converts_loads_and_runs() {
    let dir = scratch("tiny");
    let input = dir.join("tiny-f32.gguf");
    let tiny = Tiny {
        n_embd: 256,
        n_head: 4,
        n_head_kv: 2,
        n_ff: 512,
        n_layer: 2,
        weight_type: QuantType::F32,
    };
    std::fs::write(&input, tiny_model(&tiny).to_bytes()).unwrap();
    let src_bytes = std::fs::read(&input).unwrap();
    let src = Gguf::parse(&src_bytes).unwrap();
    for ty in [
        QuantType::Q2_K,
        QuantType::Q3_K,
        QuantType::Q4_K,
        QuantType::Q5_K,
        QuantType::Q6_K,
    ] {
        let out = dir.join(format!("tiny-{ty}.gguf"));
        let mut policy = Policy::new(ty);
        policy.allow_requantize = true;
        ingot_convert::convert(&input, &out, &Options { policy, threads: 2 }, &mut |_| {}).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        let g = Gguf::parse(&bytes).unwrap();
        let mut k = 0;
        for (t, s) in g.tensors().iter().zip(src.tensors()) {
            assert_eq!((t.name, t.shape()), (s.name, s.shape()));
            if t.n_dims == 2 && t.name.starts_with("blk.") {
                assert_eq!(t.ty, ty, "{}", t.name);
                k += 1;
            }
            let n = s.n_elements() as usize;
            let mut x = vec![0f32; n];
            (s.ty.info().to_f32)(s.data, &mut x);
            let mut want = vec![0u8; t.data.len()];
            (t.ty.info().from_f32)(&x, &mut want);
            assert!(t.data == want.as_slice(), "{ty}: {} bytes", t.name);
        }
        assert_eq!(k, 14, "{ty}: 7 matrices per layer");
        let model = Model::from_gguf(g).unwrap_or_else(|e| panic!("{ty}: {e}"));
        let mut s = Session::new(
            &model,
            SessionParams {
                n_ctx: 16,
                n_batch: 4,
                n_threads: 1,
                ..Default::default()
            },
        )
        .unwrap();
        let logits = s.prefill(&[104, 101, 108, 108]).unwrap().to_vec();
        assert!(logits.iter().all(|v| v.is_finite()), "{ty}");
        // Decode agrees with a batched prefill of the same tokens (K-quant matvec vs matmul).
        s.reset();
        for &id in &[104u32, 101, 108] {
            s.decode(id).unwrap();
        }
        let step = s.decode(108).unwrap();
        assert_eq!(step.len(), logits.len());
        for (a, b) in step.iter().zip(&logits) {
            assert!(
                (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                "{ty}: decode {a} vs prefill {b}"
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Q8_K is only an activation format (ggml has no Q8_K weight kernels): a file with Q8_K weights
/// is refused at load with a message naming the tensor and the reason.
/// Q4_K and Q2_K matrices whose row count is not a multiple of 8 (`ffn_gate` / `ffn_up` with 516
/// rows), which llama.cpp does not repack (so `vec_dot` / tiled order, not the repacked gemv/gemm),
/// next to ones that it repacks: the logits are the same bits at 1, 2 and 3 threads, prefill in
/// batches of 12 (tiled from 8 tokens, gemm groups of 4) and decode steps. The thread pool splits
/// the rows into chunks of 32 whose own counts are multiples of 8, so a kernel that judged a chunk
/// instead of the whole matrix (`Kernels::matmul_part`) would change the bits with the thread count.
#[test]
fn k_quant_odd_row_counts_are_thread_invariant() {
    let dir = scratch("odd-rows");
    let input = dir.join("tiny-f32.gguf");
    let tiny = Tiny {
        n_embd: 256,
        n_head: 4,
        n_head_kv: 2,
        n_ff: 516,
        n_layer: 2,
        weight_type: QuantType::F32,
    };
    std::fs::write(&input, tiny_model(&tiny).to_bytes()).unwrap();
    for ty in [QuantType::Q4_K, QuantType::Q2_K] {
        let out = dir.join(format!("tiny-{ty}.gguf"));
        let mut policy = Policy::new(ty);
        policy.allow_requantize = true;
        ingot_convert::convert(&input, &out, &Options { policy, threads: 2 }, &mut |_| {}).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        let g = Gguf::parse(&bytes).unwrap();
        let gate = g.tensor("blk.0.ffn_gate.weight").unwrap();
        assert_eq!((gate.ty, gate.shape()[1]), (ty, 516), "{ty}: ffn_gate");
        let model = Model::from_gguf(g).unwrap();
        let ids: Vec<u32> = (0..30).map(|i| 40 + 7 * i).collect();
        let run = |threads: usize| {
            let mut s = Session::new(
                &model,
                SessionParams {
                    n_ctx: 64,
                    n_batch: 12,
                    n_threads: threads,
                    ..Default::default()
                },
            )
            .unwrap();
            let mut bits: Vec<u32> = Vec::new();
            s.eval_all(&ids, |_, l| bits.extend(l.iter().map(|v| v.to_bits())))
                .unwrap();
            for &id in &ids[..3] {
                bits.extend(s.decode(id).unwrap().iter().map(|v| v.to_bits()));
            }
            bits
        };
        let want = run(1);
        assert!(want.iter().all(|&b| f32::from_bits(b).is_finite()), "{ty}");
        for threads in [2, 3] {
            assert!(
                run(threads) == want,
                "{ty}: {threads} threads differ from 1"
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn q8_k_weights_are_refused() {
    let tiny = Tiny {
        n_embd: 256,
        n_head: 4,
        n_head_kv: 2,
        n_ff: 512,
        n_layer: 1,
        weight_type: QuantType::Q8_K,
    };
    let bytes = tiny_model(&tiny).to_bytes();
    let g = Gguf::parse(&bytes).unwrap();
    let e = Model::from_gguf(g).unwrap_err().to_string();
    assert!(e.contains("Q8_K is an activation format"), "{e}");
    assert!(e.contains("blk.0."), "{e}");
}

#[test]
fn smollm2_k_presets_like_llama_quantize() {
    let fixture: Value =
        serde_json::from_str(&std::fs::read_to_string(testdata("peer/kquants.json")).unwrap())
            .unwrap();
    let want = fixture["llama_quantize_tensors_fnv"].as_object().unwrap();
    assert_eq!(want.len(), 7);
    let dir = scratch("presets");
    for (preset, h) in want {
        let out = dir.join(format!("smollm2-{preset}.gguf"));
        convert(preset, &out);
        let bytes = std::fs::read(&out).unwrap();
        let g = Gguf::parse(&bytes).unwrap();
        let mut ts: Vec<(&str, u32, &[u8])> = g
            .tensors()
            .iter()
            .map(|t| (t.name, t.ty.ggml_id(), t.data))
            .collect();
        let k = ts
            .iter()
            .filter(|t| QuantType::from_ggml_id(t.1).is_some_and(|q| q.is_k_quant()))
            .count();
        assert!(k >= 30, "{preset}: only {k} K-quant tensors");
        assert_eq!(
            h.as_str().unwrap(),
            format!("{:016x}", quant_inputs::tensors_fnv(&mut ts)),
            "{preset}: ingot's tensors differ from llama_model_quantize's (compare with `ingot-peer gguf-diff`)"
        );
        std::fs::remove_file(&out).unwrap();
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

fn pairs(v: &Value) -> Vec<(usize, f64)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_u64().unwrap() as usize, p[1].as_f64().unwrap()))
        .collect()
}

/// Generic tolerances against the fixtures: where ingot's products do not follow the fixture's
/// llama.cpp order (Q4_K, and every product on the scalar and AVX2 paths, whose f16 attention dots
/// differ from the AVX-512 build's), rounding differences flip Q8 activation quanta and propagate
/// through 30 layers, as on the scalar path of `parity_llama_cpp.rs` (two builds of llama.cpp itself
/// differ by 0.27 here). Measured on the `chatml` prompt, the most sensitive: Q6_K 1.76 on AVX2
/// and 2.10 on the scalar path (Q4_K_M on AVX-512 was 0.86 before its x86 order was reproduced). Hence 2.5 (a wrong kernel moves logits
/// by several units), and greedy steps must agree where llama.cpp's top-2 margin is at least half
/// of it.
const LOGIT_TOL: f64 = 2.5;
const MARGIN_TOL: f64 = 1.25;

/// (max |Δlogit|, smallest margin whose greedy step must agree). On the AVX-512 path ingot computes
/// Q6_K and Q4_K as the fixture's llama.cpp does on x86: `ggml_vec_dot_q6_K_q8_K`'s lanes and FMA
/// for single tokens, the tiled matmul's order
/// (`ggml-cpu/tiled/`) from 8 tokens, and Q8_K activations quantized with the FMA that the peer's
/// build of ggml-base contracts (`reference::quantize_row_q8_k_fma`); every other op already matched
/// (`ingot-peer op-parity`: every node of all 30 layers bit-identical on all five prompts). Q4_K,
/// which llama.cpp repacks on x86, follows its `ggml_gemv_q4_K_8x8_q8_K` (single tokens and the
/// `t % 4` left over) and `ggml_gemm_q4_K_8x8_q8_K` (whole groups of four tokens, quantized by
/// `ggml_quantize_mat_q8_K_4x8`); Q5_K and Q3_K follow their x86 `vec_dot` and the tiled matmul,
/// Q2_K matrices (576 rows, repacked by llama.cpp on AVX-512) `ggml_gemv/gemm_q2_K_8x8_q8_K`. So
/// the logits of every K-quant fixture must be identical, at every greedy step.
fn tolerances() -> (f64, f64) {
    if Kernels::best().isa() == Isa::Avx512Vnni {
        (0.0, 0.0)
    } else {
        (LOGIT_TOL, MARGIN_TOL)
    }
}

fn logits_match(preset: &str, fixture: &str, tol: (f64, f64)) {
    logits_match_with(preset, &[], fixture, tol)
}

/// [`logits_match`] of a file converted with `--tensor-type` overrides.
fn logits_match_with(
    preset: &str,
    overrides: &[&str],
    fixture: &str,
    (logit_tol, margin_tol): (f64, f64),
) {
    let fixture: Value =
        serde_json::from_str(&std::fs::read_to_string(testdata(fixture)).unwrap()).unwrap();
    // Tests run in parallel: one directory per (preset, overrides).
    let tag = format!("{preset}-{}", overrides.len());
    let dir = scratch(&tag);
    let path = dir.join(format!("smollm2-{preset}.gguf"));
    convert_with(preset, overrides, &path);
    // The fixture was made on exactly this file.
    let want_types = &fixture["model"]["general.file_type"];
    let got = Gguf::parse(&std::fs::read(&path).unwrap())
        .unwrap()
        .get_u64("general.file_type")
        .unwrap()
        .map(|v| v.to_string());
    assert_eq!(
        got.as_deref(),
        want_types.as_str(),
        "{preset}: general.file_type"
    );
    let file = GgufFile::open(&path).unwrap();
    let model = Model::from_gguf(file.parse().unwrap()).unwrap();
    let mut session = Session::new(
        &model,
        // The whole prompt in one batch, as the fixture's llama.cpp (n_batch 512): how many tokens a
        // product has decides its order (tiled matmul from 8).
        SessionParams {
            n_ctx: 512,
            n_batch: 512,
            n_threads: 1,
            ..Default::default()
        },
    )
    .unwrap();
    let mut failures = Vec::new();
    let cases = fixture["cases"].as_array().unwrap();
    assert!(cases.len() >= 4);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let want_ids: Vec<u32> = case["prompt_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let ids = model.tokenizer.encode(
            case["prompt"].as_str().unwrap(),
            true,
            case["parse_special"].as_bool().unwrap(),
        );
        assert_eq!(ids, want_ids, "{name}: prompt ids");
        session.reset();
        let mut logits = session.prefill(&ids).unwrap().to_vec();
        let mut max_diff = 0.0f64;
        for (id, want) in pairs(&case["top40_last"]) {
            max_diff = max_diff.max((f64::from(logits[id]) - want).abs());
        }
        let mut agreed = 0;
        for (step, g) in case["greedy"].as_array().unwrap().iter().enumerate() {
            let want = g["token"].as_u64().unwrap() as u32;
            for (id, l) in pairs(&g["top8"]) {
                max_diff = max_diff.max((f64::from(logits[id]) - l).abs());
            }
            let ours = argmax(&logits);
            if g["margin"].as_f64().unwrap() >= margin_tol {
                if ours != want {
                    failures.push(format!(
                        "{preset} {name} step {step}: ingot chose {ours}, llama.cpp {want}"
                    ));
                }
                agreed += 1;
            }
            if g["eog"].as_bool().unwrap() {
                break;
            }
            logits = session.decode(want).unwrap().to_vec();
        }
        println!("{preset} {name:>16}: max |Δlogit| {max_diff:.6}; {agreed} greedy steps agree");
        if max_diff > logit_tol {
            failures.push(format!(
                "{preset} {name}: max |Δlogit| {max_diff:.6} exceeds {logit_tol}"
            ));
        }
    }
    drop(session);
    drop(model);
    drop(file);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn q4_k_m_logits_match_llama_cpp() {
    logits_match("Q4_K_M", "peer/smollm2-q4_k_m.json", tolerances());
}

#[test]
fn q6_k_logits_match_llama_cpp() {
    logits_match("Q6_K", "peer/smollm2-q6_k.json", tolerances());
}

/// Q5_K_M: 16 `ffn_down` in Q5_K, 14 in Q6_K (x86 `vec_dot` below 8 tokens, tiled matmul from 8).
#[test]
fn q5_k_m_logits_match_llama_cpp() {
    logits_match("Q5_K_M", "peer/smollm2-q5_k_m.json", tolerances());
}

/// The Q2_K preset: every `ffn_down` in Q3_K (llama.cpp bumps them; x86 `vec_dot` and tiled).
#[test]
fn q2_k_preset_q3_k_logits_match_llama_cpp() {
    logits_match("Q2_K", "peer/smollm2-q2_k.json", tolerances());
}

/// Q2_K `ffn_down` (576 rows: llama.cpp on AVX-512 repacks them and runs
/// `ggml_gemv/gemm_q2_K_8x8_q8_K`, on AVX2 `vec_dot` and the tiled matmul).
#[test]
fn q2_k_ffn_down_logits_match_llama_cpp() {
    logits_match_with(
        "Q2_K",
        &["ffn_down=Q2_K"],
        "peer/smollm2-q2_k-ffn.json",
        tolerances(),
    );
}
