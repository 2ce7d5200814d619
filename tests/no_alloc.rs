//! The decode hot path allocates nothing: after a session, sampler and stream decoder are set up and
//! warmed up, a decode step (forward pass + sampling + incremental detokenization) performs zero heap
//! allocations. A counting global allocator, armed only on this test's thread, proves it.

mod common;

use ingot_runtime::gguf::GgufFile;
use ingot_runtime::model::{session_bytes, Model, Session, SessionParams};
use ingot_runtime::sampler::{Sampler, SamplerParams};
use ingot_runtime::tokenizer::StreamDecoder;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
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

fn counted<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    ARMED.with(|a| a.set(true));
    let r = f();
    ARMED.with(|a| a.set(false));
    (r, ALLOCATIONS.load(Ordering::Relaxed) - before)
}

#[test]
fn decode_steps_allocate_nothing() {
    let file = GgufFile::open(common::model_path()).unwrap();
    let model = Model::from_gguf(file.parse().unwrap()).unwrap();
    for threads in [1, 2] {
        decode_steps(&model, threads);
    }
    // The session allocates what `session_bytes` (shown by `ingot info --ctx`) says it will: the plan is
    // exact up to the thread pool's own bookkeeping (thread handles, names), a few KiB.
    for (n_ctx, n_batch, n_threads) in [(64, 16, 1), (512, 64, 2), (2048, 1, 1)] {
        let params = SessionParams {
            n_ctx,
            n_batch,
            n_threads,
        };
        let before = BYTES.load(Ordering::Relaxed);
        let (session, _) = counted(|| Session::new(&model, params).unwrap());
        let got = BYTES.load(Ordering::Relaxed) - before;
        let planned = session_bytes(&model, params);
        assert!(
            got >= planned && got - planned < 16 << 10,
            "{params:?}: planned {planned} bytes, allocated {got}"
        );
        drop(session);
    }
    // The counter works: an allocation while armed is seen.
    let (_, n) = counted(|| std::hint::black_box(vec![1u8; 16]));
    assert_eq!(n, 1);
}

fn decode_steps(model: &Model<'_>, threads: usize) {
    let tok = &model.tokenizer;
    let mut session = Session::new(
        model,
        SessionParams {
            n_ctx: 128,
            n_batch: 16,
            n_threads: threads,
        },
    )
    .unwrap();
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
    let (_, n) = counted(|| {
        for _ in 0..32 {
            sampler.accept(next);
            let _ = stream.push(tok, next, false).len();
            let logits = session.decode(next).unwrap();
            next = sampler.sample(logits);
        }
    });
    assert_eq!(
        n, 0,
        "{n} heap allocations in 32 decode steps with {threads} threads"
    );
}
