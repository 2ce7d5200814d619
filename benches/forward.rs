//! Criterion benchmarks of the forward pass on the real SmolLM2 model: prefill of 128 tokens in one
//! batch, and one decode step at position 128, at 1 and 2 threads. Run with `cargo bench --bench
//! forward`; the side-by-side comparison with llama.cpp is scripts/bench-vs-llama.sh (BENCHMARKS.md).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ingot_runtime::gguf::GgufFile;
use ingot_runtime::model::{Model, Session, SessionParams};
use std::path::PathBuf;

fn model_path() -> PathBuf {
    if let Ok(p) = std::env::var("INGOT_MODEL") {
        return p.into();
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/SmolLM2-135M-Instruct.Q4_1.gguf")
}

fn forward(c: &mut Criterion) {
    let file = GgufFile::open(model_path()).expect("run scripts/fetch-model.sh first");
    let model = Model::from_gguf(file.parse().unwrap()).unwrap();
    let text =
        "It was the best of times, it was the worst of times, it was the age of wisdom, ".repeat(8);
    let prompt: Vec<u32> = model.tokenizer.encode(&text, true, false)[..128].to_vec();
    let mut g = c.benchmark_group("smollm2_q4_1");
    g.sample_size(10);
    for threads in [1, 2] {
        let params = SessionParams {
            n_ctx: 512,
            n_batch: 128,
            n_threads: threads,
            ..Default::default()
        };
        let mut s = Session::new(&model, params).unwrap();
        g.throughput(Throughput::Elements(128));
        g.bench_function(format!("prefill128_t{threads}"), |b| {
            b.iter(|| {
                s.reset();
                s.prefill(&prompt).unwrap()[0]
            })
        });
        g.throughput(Throughput::Elements(1));
        g.bench_function(format!("decode_at128_t{threads}"), |b| {
            s.reset();
            s.prefill(&prompt).unwrap();
            b.iter(|| {
                s.truncate(128);
                s.decode(42).unwrap()[0]
            })
        });
    }
    g.finish();
}

criterion_group!(benches, forward);
criterion_main!(benches);
