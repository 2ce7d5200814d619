//! The decode hot path allocates nothing: after a session, sampler and stream decoder are set up and
//! warmed up, 256 decode steps (forward pass + sampling + incremental detokenization) perform zero heap
//! allocations and zero frees, on the row-major and the repacked kernels. A counting global allocator, armed only on this test's thread, proves it.

mod common;

use ingot_runtime::gguf::GgufFile;
use ingot_runtime::model::{
    kv_cache_bytes, session_bytes, AttentionPlace, KvType, Model, Session, SessionParams,
};
use ingot_runtime::sampler::{Sampler, SamplerParams};
use ingot_runtime::tokenizer::StreamDecoder;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static FREES: AtomicUsize = AtomicUsize::new(0);
static BYTES: AtomicUsize = AtomicUsize::new(0);
thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: every method forwards to the system allocator with the caller's arguments unchanged, so the
// GlobalAlloc contract is the system allocator's; the only addition is a counter bump, which neither
// allocates nor unwinds (the thread-local is const-initialized).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ARMED.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        }
        // SAFETY: same layout the caller passed, which satisfies `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ARMED.with(Cell::get) {
            FREES.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: `ptr` was returned by `System.alloc` with this `layout` (all allocations go through it).
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if ARMED.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            BYTES.fetch_add(new_size, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged; `ptr`/`layout` come from this allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` armed; returns its result and the allocations (plus reallocations) it made.
fn counted<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let (r, n, _) = counted_with_frees(f);
    (r, n)
}

/// As [`counted`], also returning the frees.
fn counted_with_frees<R>(f: impl FnOnce() -> R) -> (R, usize, usize) {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let frees = FREES.load(Ordering::Relaxed);
    ARMED.with(|a| a.set(true));
    let r = f();
    ARMED.with(|a| a.set(false));
    let n = ALLOCATIONS.load(Ordering::Relaxed) - before;
    (r, n, FREES.load(Ordering::Relaxed) - frees)
}

#[test]
fn decode_steps_allocate_nothing() {
    let file = GgufFile::open(common::model_path()).unwrap();
    let model = Model::from_gguf(file.parse().unwrap()).unwrap();
    for threads in [1, 2] {
        decode_steps(&model, threads, KvType::F16);
    }
    decode_steps(&model, 2, KvType::F32);
    // Two threads measure their distance every few steps by default (`AttentionPlace::Auto`, above);
    // attention on the caller (the worker reading ahead through it), and shared, fixed:
    for place in [AttentionPlace::Caller, AttentionPlace::Shared] {
        decode_steps_in(&model, 2, KvType::F16, place);
    }
    // The session allocates what `session_bytes` (shown by `ingot info --ctx`) says it will: the plan is
    // exact up to the thread pool's own bookkeeping (thread handles, names), a few KiB. On Linux the KV
    // cache is an anonymous mapping (for huge pages), not heap memory: the heap holds the rest.
    for (n_ctx, n_batch, n_threads, kv_type) in [
        (64, 16, 1, KvType::F16),
        (512, 64, 2, KvType::F16),
        (2048, 1, 1, KvType::F16),
        (512, 64, 2, KvType::F32),
    ] {
        let params = SessionParams {
            n_ctx,
            n_batch,
            n_threads,
            kv_type,
        };
        let before = BYTES.load(Ordering::Relaxed);
        let (session, _) = counted(|| Session::new(&model, params).unwrap());
        let got = BYTES.load(Ordering::Relaxed) - before;
        let mut planned = session_bytes(&model, params);
        if cfg!(target_os = "linux") {
            planned -= kv_cache_bytes(&model, params);
        }
        assert!(
            got >= planned && got - planned < 16 << 10,
            "{params:?}: planned {planned} bytes, allocated {got}"
        );
        drop(session);
    }
    // The counter works: an allocation and a free while armed are seen.
    let (_, n, f) = counted_with_frees(|| drop(std::hint::black_box(vec![1u8; 16])));
    assert_eq!((n, f), (1, 1));
}

/// The repacked kernels (Q4_0 and Q8_0) plan their scratch on the stack: a
/// tiny Q4_0 model and a tiny Q8_0 model repacked for these kernels decode without allocating.
#[test]
fn repacked_decode_steps_allocate_nothing() {
    use ingot_kernels::QuantType;
    use ingot_runtime::gguf::Gguf;
    use ingot_runtime::model::Repack;
    for ty in [QuantType::Q4_0, QuantType::Q8_0] {
        let bytes = common::tiny_model(&common::Tiny {
            n_embd: 128,
            n_ff: 256,
            weight_type: ty,
            ..common::Tiny::default()
        })
        .to_bytes();
        let model = Model::from_gguf_with(Gguf::parse(&bytes).unwrap(), Repack::Exact).unwrap();
        for threads in [1, 2] {
            decode_steps(&model, threads, KvType::F16);
        }
    }
}

fn decode_steps(model: &Model<'_>, threads: usize, kv_type: KvType) {
    decode_steps_in(model, threads, kv_type, AttentionPlace::default());
}

fn decode_steps_in(model: &Model<'_>, threads: usize, kv_type: KvType, place: AttentionPlace) {
    let tok = &model.tokenizer;
    // A context of 600: the value cache's rows start 256 positions long and grow (in place) to
    // 600 when the counted steps cross position 256.
    let mut session = Session::new(
        model,
        SessionParams {
            n_ctx: 600,
            n_batch: 16,
            n_threads: threads,
            kv_type,
        },
    )
    .unwrap();
    session.set_attention_place(place);
    let params = SamplerParams {
        temperature: 0.8,
        repeat_penalty: 1.1,
        ..SamplerParams::default()
    };
    let mut sampler = Sampler::new(params, model.config.n_vocab).unwrap();
    let mut stream = StreamDecoder::for_tokenizer(tok);
    let prompt = tok.encode("Once upon a time, in a land far away,", true, true);
    let mut next = sampler.sample(session.prefill(&prompt).unwrap());
    // A few steps before counting (nothing here is expected to allocate after construction either).
    for _ in 0..2 {
        let _ = stream.push(tok, next, false).len();
        next = sampler.sample(session.decode(next).unwrap());
    }
    let (_, n, frees) = counted_with_frees(|| {
        for _ in 0..256 {
            sampler.accept(next);
            let _ = stream.push(tok, next, false).len();
            let logits = session.decode(next).unwrap();
            next = sampler.sample(logits);
        }
    });
    assert_eq!(
        (n, frees),
        (0, 0),
        "heap allocations and frees in 256 decode steps with {threads} threads"
    );
}
