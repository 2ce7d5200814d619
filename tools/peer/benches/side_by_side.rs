//! ingot and llama.cpp side by side in one process, one criterion run: prefill of 128 tokens in
//! one batch, and one greedy decode step at position 128, at 1 and 2 threads, on the same GGUF
//! file (default: SmolLM2-135M-Instruct Q4_1 from `models/`; `INGOT_MODEL=path` for another).
//! Each benchmark group holds the two engines, so criterion's report puts their times next to
//! each other; BENCHMARKS.md quotes the ratios. Both engines use an f16 KV cache and the same
//! prompt ids (checked before timing).
//!
//! ```sh
//! cd tools/peer && cargo bench --bench side_by_side
//! INGOT_MODEL=../../models/SmolLM2-135M-Instruct.Q8_0.gguf cargo bench --bench side_by_side
//! ```

use std::num::NonZeroU32;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ingot_runtime::gguf::GgufFile;
use ingot_runtime::model::{Model, Session, SessionParams};
use llama_cpp_2::context::params::{KvCacheType, LlamaContextParams};
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;

const PROMPT: usize = 128;
const TEXT: &str = "It was the best of times, it was the worst of times, it was the age of wisdom, \
it was the age of foolishness, it was the epoch of belief, it was the epoch of incredulity, it was \
the season of Light, it was the season of Darkness, it was the spring of hope, it was the winter of \
despair, we had everything before us, we had nothing before us, we were all going direct to Heaven, \
we were all going direct the other way - in short, the period was so far like the present period, \
that some of its noisiest authorities insisted on its being received, for good or for evil, in the \
superlative degree of comparison only.";

fn model_path() -> PathBuf {
    if let Ok(p) = std::env::var("INGOT_MODEL") {
        return p.into();
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/SmolLM2-135M-Instruct.Q4_1.gguf")
}

fn side_by_side(c: &mut Criterion) {
    let path = model_path();
    let name = path.file_name().unwrap().to_string_lossy().to_string();

    let file = GgufFile::open(&path).expect("run scripts/fetch-model.sh (or set INGOT_MODEL)");
    let model = Model::from_gguf(file.parse().unwrap()).unwrap();
    let ids: Vec<u32> = model.tokenizer.encode(TEXT, true, false)[..PROMPT].to_vec();

    let mut backend = LlamaBackend::init().unwrap();
    backend.void_logs();
    let lmodel =
        LlamaModel::load_from_file(&backend, &path, &LlamaModelParams::default()).unwrap();
    let lids: Vec<LlamaToken> = lmodel.vocab().tokenize(TEXT.as_bytes(), true, false)[..PROMPT].to_vec();
    assert_eq!(
        lids.iter().map(|t| t.0 as u32).collect::<Vec<_>>(),
        ids,
        "the engines tokenize the prompt differently"
    );

    for threads in [1usize, 2] {
        let mut s = Session::new(
            &model,
            SessionParams {
                n_ctx: 512,
                n_batch: 512,
                n_threads: threads,
                ..Default::default()
            },
        )
        .unwrap();
        let p = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(512))
            .with_n_batch(512)
            .with_n_ubatch(512)
            .with_n_seq_max(1)
            .with_n_threads(threads as i32)
            .with_n_threads_batch(threads as i32)
            .with_type_k(KvCacheType::F16)
            .with_type_v(KvCacheType::F16)
            .with_flash_attention_policy(llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_DISABLED);
        let mut ctx = lmodel.new_context(&backend, p).unwrap();
        let mut batch = LlamaBatch::new(512, 1);
        let mut llama_prefill = |ctx: &mut llama_cpp_2::context::LlamaContext<'_>| {
            ctx.clear_kv_cache();
            batch.clear();
            for (i, t) in lids.iter().enumerate() {
                batch.add(*t, i as i32, &[0], i + 1 == lids.len()).unwrap();
            }
            ctx.decode(&mut batch).unwrap();
            ctx.get_logits_ith(PROMPT as i32 - 1)[0]
        };

        let mut g = c.benchmark_group(format!("{name}/prefill{PROMPT}_t{threads}"));
        g.sample_size(10);
        g.throughput(Throughput::Elements(PROMPT as u64));
        g.bench_function("ingot", |b| {
            b.iter(|| {
                s.reset();
                s.prefill(&ids).unwrap()[0]
            })
        });
        g.bench_function("llama.cpp", |b| b.iter(|| llama_prefill(&mut ctx)));
        g.finish();

        let mut g = c.benchmark_group(format!("{name}/decode_at{PROMPT}_t{threads}"));
        g.sample_size(30);
        g.throughput(Throughput::Elements(1));
        s.reset();
        s.prefill(&ids).unwrap();
        g.bench_function("ingot", |b| {
            b.iter(|| {
                s.truncate(PROMPT);
                s.decode(42).unwrap()[0]
            })
        });
        llama_prefill(&mut ctx);
        let mut one = LlamaBatch::new(1, 1);
        g.bench_function("llama.cpp", |b| {
            b.iter(|| {
                ctx.clear_kv_cache_seq(Some(0), Some(PROMPT as u32), None).unwrap();
                one.clear();
                one.add(LlamaToken(42), PROMPT as i32, &[0], true).unwrap();
                ctx.decode(&mut one).unwrap();
                ctx.get_logits_ith(0)[0]
            })
        });
        g.finish();
    }
}

criterion_group!(benches, side_by_side);
criterion_main!(benches);
