//! ingot computes what llama.cpp computes, on the real SmolLM2 model. The fixture
//! `testdata/peer/smollm2-q4_1.json` was written by llama.cpp itself (tools/peer, `logits`
//! subcommand; see testdata/README.md): prompt ids, the top-40 logits after each prompt, and a 32-step
//! greedy continuation with llama.cpp's top-8 logits and top-2 margin at every step.
//!
//! What is checked, per prompt:
//! - the tokenizer gives llama.cpp's prompt ids exactly;
//! - the logits of llama.cpp's top-40 tokens after the prompt, and of its top-8 at every greedy step
//!   (teacher-forced: llama.cpp's token is fed back), agree within `LOGIT_TOL`;
//! - ingot's greedy choice equals llama.cpp's at every step whose llama.cpp margin is at least
//!   `MARGIN_TOL`; since the continuation is teacher-forced, this means the free-running greedy texts
//!   are identical up to the first step where llama.cpp itself was nearly undecided.

mod common;

use ingot_runtime::gguf::GgufFile;
use ingot_runtime::model::{Model, Session, SessionParams};
use ingot_runtime::sampler::argmax;
use serde_json::Value;

/// Largest |Δlogit| accepted. Both sides run the same quantized weights, quantize activations to the
/// same Q8_1/Q8_0 blocks and keep an f16 KV cache; what differs is the float summation order inside
/// the SIMD dot products and ggml's vectorized exp/silu approximations. This model amplifies such
/// differences: an experiment that changed nothing but whether the attention query is rounded to f16
/// (a relative change of 2^-11 in one intermediate) moved its logits by up to 0.52 on these prompts,
/// because every Q8 activation block that lands on a rounding boundary flips a quantum and the flip
/// propagates through 30 layers. Two builds of llama.cpp itself (0.26 with AVX-512 and 0.25.3 through
/// llama-cpp-python) differ by up to 0.43 on the same prompts. Measured here: at most 0.77 (printed
/// by this test). 1.0 bounds that with a margin while still catching any real error in an op (a
/// wrong RoPE, norm, scale or quantization moves logits by several units).
const LOGIT_TOL: f64 = 1.0;

/// Greedy steps where llama.cpp's own top-2 margin is below this are not required to agree. Two
/// llama.cpp builds were seen to flip greedy choices at margins of 0.09 and 0.36; half of LOGIT_TOL
/// is the largest margin a perturbation within the tolerance above can flip when it moves the two
/// logits in opposite directions by half the tolerance each.
const MARGIN_TOL: f64 = 0.5;

fn pairs(v: &Value) -> Vec<(usize, f64)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_u64().unwrap() as usize, p[1].as_f64().unwrap()))
        .collect()
}

#[test]
fn logits_and_greedy_tokens_match_llama_cpp() {
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(common::testdata("peer/smollm2-q4_1.json")).unwrap(),
    )
    .unwrap();
    let file = GgufFile::open(common::model_path()).unwrap();
    let model = Model::from_gguf(file.parse().unwrap()).unwrap();
    let mut session = Session::new(
        &model,
        SessionParams {
            n_ctx: 512,
            n_batch: 64,
            n_threads: 1,
        },
    )
    .unwrap();
    let cases = fixture["cases"].as_array().unwrap();
    assert!(cases.len() >= 4);
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let prompt = case["prompt"].as_str().unwrap();
        let parse_special = case["parse_special"].as_bool().unwrap();
        let want_ids: Vec<u32> = case["prompt_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let ids = model.tokenizer.encode(prompt, true, parse_special);
        assert_eq!(ids, want_ids, "{name}: prompt ids differ from llama.cpp's");

        session.reset();
        let logits = session.prefill(&ids).unwrap();
        let mut max_diff = 0.0f64;
        for (id, want) in pairs(&case["top40_last"]) {
            max_diff = max_diff.max((f64::from(logits[id]) - want).abs());
        }
        let prompt_diff = max_diff;
        let mut agreed = 0;
        let mut skipped = Vec::new();
        let mut logits = logits.to_vec();
        for (step, g) in case["greedy"].as_array().unwrap().iter().enumerate() {
            let want = g["token"].as_u64().unwrap() as u32;
            let margin = g["margin"].as_f64().unwrap();
            for (id, l) in pairs(&g["top8"]) {
                max_diff = max_diff.max((f64::from(logits[id]) - l).abs());
            }
            let ours = argmax(&logits);
            if margin >= MARGIN_TOL {
                if ours != want {
                    failures.push(format!("{name} step {step}: ingot chose {ours}, llama.cpp {want} (margin {margin:.3})"));
                }
                agreed += 1;
            } else {
                skipped.push(format!(
                    "{step} (margin {margin:.4}, same choice: {})",
                    ours == want
                ));
            }
            if g["eog"].as_bool().unwrap() {
                break;
            }
            logits = session.decode(want).unwrap().to_vec();
        }
        println!(
            "{name:>16}: {} prompt ids equal; max |Δlogit| prompt {prompt_diff:.4}, all steps {max_diff:.4}; \
             {agreed} greedy steps agree; low-margin steps {skipped:?}",
            ids.len()
        );
        if max_diff > LOGIT_TOL {
            failures.push(format!(
                "{name}: max |Δlogit| {max_diff:.4} exceeds {LOGIT_TOL}"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
