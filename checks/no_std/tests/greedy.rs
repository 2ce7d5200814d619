//! The no_std build of the runtime (this package's dependencies without their `std` feature: no
//! threads, compile-time ISA choice, libm's float functions) run on the host: greedy tokens equal
//! llama.cpp's on SmolLM2 (testdata/peer/smollm2-q4_1.json), the session in an arena of exactly the
//! planned size.

use ingot_runtime::model::{Session, SessionParams};
use ingot_runtime::sampler::argmax;
use serde_json::Value;

fn model_bytes() -> Vec<u8> {
    let root = format!("{}/../..", env!("CARGO_MANIFEST_DIR"));
    let name = "SmolLM2-135M-Instruct.Q4_1.gguf";
    let path = std::env::var("INGOT_MODEL").unwrap_or_else(|_| {
        [
            format!("{root}/models/{name}"),
            format!("{root}/../shared/models/{name}"),
        ]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or_else(|| {
            panic!("{name} not found: run scripts/fetch-model.sh (or set INGOT_MODEL)")
        })
    });
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// tests/parity_llama_cpp.rs run on the no_std build: per case of llama.cpp's fixture, the prompt's
/// token ids exactly, then teacher-forced (llama.cpp's token fed back) every step's top-8 logits within
/// `LOGIT_TOL` and the greedy choice equal wherever llama.cpp's top-2 margin is at least `MARGIN`.
/// Without `std` and target features this build runs the scalar kernels (ggml's generic summation
/// order, not the AVX-512 order of the fixture's llama.cpp), so the tolerances are the parity test's
/// for the scalar path (its doc comment gives the measurements behind them).
#[test]
fn no_std_runtime_matches_llama_cpp() {
    const LOGIT_TOL: f32 = 1.5;
    const MARGIN: f64 = 0.75;
    let image = model_bytes();
    let model = ingot_check_no_std::load(&image).unwrap();
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{}/../../testdata/peer/smollm2-q4_1.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap();
    let (mut cases, mut agreed, mut worst) = (0, 0, 0f32);
    for case in fixture["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let parse_special = case["parse_special"].as_bool().unwrap();
        let prompt = case["prompt"].as_str().unwrap();
        let ids = model.tokenizer.encode(prompt, true, parse_special);
        let want_ids: Vec<u32> = serde_json::from_value(case["prompt_ids"].clone()).unwrap();
        assert_eq!(ids, want_ids, "{name}: prompt tokens");

        let steps = case["greedy"].as_array().unwrap();
        let params = SessionParams {
            n_ctx: ids.len() + steps.len() + 1,
            n_batch: 64,
            n_threads: 1,
            ..Default::default()
        };
        let mut arena = vec![0u8; Session::arena_bytes(&model, params).unwrap()];
        let mut session = Session::new_in_arena(&model, params, &mut arena).unwrap();
        let mut logits = session.prefill(&ids).unwrap().to_vec();
        let top40: Vec<(u32, f32)> = serde_json::from_value(case["top40_last"].clone()).unwrap();
        for (id, want) in top40 {
            worst = worst.max((logits[id as usize] - want).abs());
        }
        for (i, step) in steps.iter().enumerate() {
            let want = step["token"].as_u64().unwrap() as u32;
            let top8: Vec<(u32, f32)> = serde_json::from_value(step["top8"].clone()).unwrap();
            for (id, l) in top8 {
                worst = worst.max((logits[id as usize] - l).abs());
            }
            if step["margin"].as_f64().unwrap() >= MARGIN {
                assert_eq!(argmax(&logits), want, "{name}: greedy step {i}");
                agreed += 1;
            }
            if step["eog"].as_bool().unwrap() {
                break;
            }
            logits = session.decode(want).unwrap().to_vec();
        }
        cases += 1;
    }
    eprintln!("{cases} cases, {agreed} greedy steps agree, max |dlogit| {worst}");
    assert!(
        worst <= LOGIT_TOL,
        "max |dlogit| {worst} exceeds {LOGIT_TOL}"
    );
    assert!(cases >= 4 && agreed >= 50, "{cases} cases, {agreed} steps");
}

/// The model's own chat template (SmolLM2's ChatML, here through the built-in renderer: this build has
/// no Jinja engine) drives a chat turn; an arena one byte short of the plan is an error.
#[test]
fn no_std_chat_and_arena_size() {
    let image = model_bytes();
    let model = ingot_check_no_std::load(&image).unwrap();
    let mut text = String::new();
    let mut arena = vec![0u8; ingot_check_no_std::arena_bytes(&model, 256).unwrap()];
    let ids = ingot_check_no_std::generate(
        &model,
        "What is the capital of France?",
        true,
        8,
        0.0,
        &mut arena,
        &mut text,
    )
    .unwrap();
    assert_eq!(ids.len(), 8);
    assert!(!text.is_empty());

    let n = 16;
    let n_ctx = model.tokenizer.encode("Hello", true, false).len() + n;
    let need = ingot_check_no_std::arena_bytes(&model, n_ctx).unwrap();
    let mut exact = vec![0u8; need];
    ingot_check_no_std::generate(&model, "Hello", false, n, 0.0, &mut exact, &mut text).unwrap();
    let mut small = vec![0u8; need - 1];
    let err = ingot_check_no_std::generate(&model, "Hello", false, n, 0.0, &mut small, &mut text)
        .unwrap_err();
    assert!(err.to_string().contains("too small"), "{err}");
}
