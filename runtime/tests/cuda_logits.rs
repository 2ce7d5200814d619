//! The CUDA backend against the CPU path on SmolLM2-135M-Instruct: logits after a prompt (split
//! into several batches) and after each of 24 decode steps (the CPU's greedy token fed to both, so
//! they stay on the same sequence), and the on-device argmax of `decode_greedy`.
//!
//! Tolerance: the CPU path reproduces ggml's rounding (f16 attention probabilities, ggml's expf,
//! its summation orders); the GPU keeps probabilities in f32 and sums in other orders. SmolLM2
//! turns one differently rounded op into logit changes of tenths, so the bound is 2% of the CPU
//! logits' range for the largest difference and 0.5% for the mean one.
//!
//! The model comes from `$INGOT_MODEL`, `models/` (scripts/fetch-model.sh) or `../shared/models`.
//! Without a CUDA driver (or with a build that has no kernels) the GPU test prints why and passes,
//! unless `INGOT_REQUIRE_GPU=1`.
#![cfg(feature = "cuda")]

use ingot_kernels::cuda;
use ingot_runtime::cuda::CudaModel;
use ingot_runtime::gguf::GgufFile;
use ingot_runtime::model::{KvType, Model, Session, SessionParams};
use ingot_runtime::sampler::argmax;
use std::path::PathBuf;

fn model_path() -> PathBuf {
    if let Some(p) = std::env::var_os("INGOT_MODEL") {
        return PathBuf::from(p);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let name = "SmolLM2-135M-Instruct.Q4_1.gguf";
    [
        root.join("models").join(name),
        root.join("../shared/models").join(name),
    ]
    .into_iter()
    .find(|p| p.exists())
    .unwrap_or_else(|| {
        panic!("test model {name} not found: run scripts/fetch-model.sh (or set INGOT_MODEL)")
    })
}

fn gpu_usable() -> bool {
    let require = std::env::var("INGOT_REQUIRE_GPU").is_ok_and(|v| v == "1");
    let why = if !cuda::driver_present() {
        "no CUDA driver"
    } else if !cuda::kernels_compiled() {
        "built without nvcc (no kernels)"
    } else {
        return true;
    };
    assert!(!require, "INGOT_REQUIRE_GPU=1 but {why}");
    eprintln!("cuda_logits: skipped: {why}");
    false
}

const PARAMS: SessionParams = SessionParams {
    n_ctx: 256,
    n_batch: 16,
    n_threads: 1,
    kv_type: KvType::F16,
};

#[test]
fn no_driver_is_a_clean_error() {
    if cuda::driver_present() {
        return;
    }
    let file = GgufFile::open(model_path()).unwrap();
    let model = Model::from_file(&file).unwrap();
    let err = CudaModel::new(&model, PARAMS, 0).expect_err("no driver, yet a CUDA model");
    assert!(err.to_string().contains("driver"), "{err}");
}

fn compare(step: &str, cpu: &[f32], gpu: &[f32]) {
    assert_eq!(cpu.len(), gpu.len());
    let (lo, hi) = cpu
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    let range = hi - lo;
    let (mut max, mut sum) = (0.0f32, 0.0f64);
    for (i, (&c, &g)) in cpu.iter().zip(gpu).enumerate() {
        assert!(g.is_finite(), "{step}: logit {i} is {g}");
        max = max.max((c - g).abs());
        sum += f64::from((c - g).abs());
    }
    let mean = (sum / cpu.len() as f64) as f32;
    eprintln!("{step}: max |cpu - cuda| = {max:.4}, mean = {mean:.5}, range {range:.2}");
    assert!(
        max <= 0.02 * range,
        "{step}: max difference {max} > 2% of {range}"
    );
    assert!(
        mean <= 0.005 * range,
        "{step}: mean difference {mean} > 0.5% of {range}"
    );
}

#[test]
fn cuda_logits_match_cpu() {
    if !gpu_usable() {
        return;
    }
    let file = GgufFile::open(model_path()).unwrap();
    let model = Model::from_file(&file).unwrap();
    let prompt = model.tokenizer.encode(
        "The history of the printing press begins in the fifteenth century, when Johannes \
         Gutenberg combined movable metal type, oil-based ink and a screw press. Within fifty years",
        true,
        true,
    );
    assert!(
        prompt.len() > 2 * PARAMS.n_batch,
        "the prompt must span several batches"
    );
    let mut cpu = Session::new(&model, PARAMS).unwrap();
    let mut gpu = CudaModel::new(&model, PARAMS, 0).unwrap();
    let mut greedy = CudaModel::new(&model, PARAMS, 0).unwrap();
    eprintln!("device: {}", gpu.device_name());

    let mut tok = argmax(cpu.prefill(&prompt).unwrap());
    compare("prefill", cpu.logits(), gpu.prefill(&prompt).unwrap());
    greedy.prefill(&prompt).unwrap();
    for step in 0..24 {
        let c = cpu.decode(tok).unwrap().to_vec();
        let g = gpu.decode(tok).unwrap();
        compare(&format!("decode {step}"), &c, g);
        let g_next = argmax(g);
        assert_eq!(
            greedy.decode_greedy(tok).unwrap(),
            g_next,
            "decode_greedy step {step}"
        );
        tok = argmax(&c);
    }
    assert_eq!(gpu.pos(), prompt.len() + 24);

    // After reset, the same prompt gives the same logits (the cache is overwritten, not appended).
    gpu.reset();
    gpu.prefill(&prompt).unwrap();
    cpu.reset();
    compare(
        "prefill after reset",
        cpu.prefill(&prompt).unwrap(),
        gpu.logits(),
    );
}
