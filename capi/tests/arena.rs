//! The whole session in the caller's arena: `ingot_session_new_in_arena` puts the session handle
//! itself at the front of the arena (no Box), so that with one thread creating the session,
//! prefilling and decoding make no heap allocation at all (a counting global allocator, armed on this
//! thread only, measures it); an arena of exactly `ingot_session_arena_size` bytes works and one byte
//! less is an error. And a whole `ingot_generate` call after a first one (tokenizing the prompt,
//! prefill, sampling, decode steps, streaming the text) makes no allocation and no free.

use core::ffi::{c_char, c_void};
use ingot::*;
use ingot_runtime::model::SESSION_HANDLE_BYTES;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ffi::CString;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static COUNT: AtomicUsize = AtomicUsize::new(0);
static FREES: AtomicUsize = AtomicUsize::new(0);
thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: forwards to the system allocator unchanged; the counter bump neither allocates nor unwinds.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ARMED.with(Cell::get) {
            COUNT.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's layout, unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ARMED.with(Cell::get) {
            FREES.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if ARMED.with(Cell::get) {
            COUNT.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` and returns its result with the number of allocations it made on this thread.
fn counted<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let (r, allocations, _) = counted_with_frees(f);
    (r, allocations)
}

/// Runs `f` and returns its result with the numbers of allocations and frees it made on this thread.
fn counted_with_frees<R>(f: impl FnOnce() -> R) -> (R, usize, usize) {
    let (before, freed) = (COUNT.load(Ordering::Relaxed), FREES.load(Ordering::Relaxed));
    ARMED.with(|a| a.set(true));
    let r = f();
    ARMED.with(|a| a.set(false));
    (
        r,
        COUNT.load(Ordering::Relaxed) - before,
        FREES.load(Ordering::Relaxed) - freed,
    )
}

fn model_path() -> String {
    let root = format!("{}/..", env!("CARGO_MANIFEST_DIR"));
    let name = "SmolLM2-135M-Instruct.Q4_1.gguf";
    std::env::var("INGOT_MODEL").unwrap_or_else(|_| {
        [
            format!("{root}/models/{name}"),
            format!("{root}/../shared/models/{name}"),
        ]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or_else(|| {
            panic!("{name} not found: run scripts/fetch-model.sh (or set INGOT_MODEL)")
        })
    })
}

#[test]
fn the_whole_session_lives_in_the_arena_and_allocates_nothing() {
    let path = CString::new(model_path()).unwrap();
    let mut model = null_mut();
    // SAFETY: a NUL-terminated path and a writable out-pointer.
    let st = unsafe { ingot_model_load_file(path.as_ptr(), &mut model) };
    assert_eq!(st, 0);
    let sp = ingot_session_params {
        n_ctx: 64,
        n_batch: 8,
        n_threads: 1,
        ..ingot_session_params_default()
    };
    let mut need = 0usize;
    // SAFETY: live model, readable params, writable size.
    let st = unsafe { ingot_session_arena_size(model, &sp, &mut need) };
    assert_eq!(st, 0);
    let prompt = [504i32, 3575, 282, 4649, 314]; // SmolLM2: "The capital of France is"

    // Filled with garbage; u64 storage, so that `skip` 4 gives an arena aligned to 4 but not to 8
    // (the handle then starts 4 bytes in).
    for skip in [0usize, 4] {
        check(model, &sp, need, skip, &prompt);
    }
    // SAFETY: freed once, after its sessions.
    unsafe { ingot_model_free(model) };
}

fn check(
    model: *mut ingot_model,
    sp: &ingot_session_params,
    need: usize,
    skip: usize,
    prompt: &[i32],
) {
    let mut storage = vec![0xA5A5_A5A5_A5A5_A5A5u64; (need + skip).div_ceil(8)];
    // SAFETY: `skip` < 8 bytes into the storage, which holds `need + skip` bytes.
    let base = unsafe { storage.as_mut_ptr().cast::<u8>().add(skip) }.cast::<c_void>();
    let mut session = null_mut();

    // One byte less: an error naming the size, nothing created.
    // SAFETY: `need - 1` writable bytes.
    let st = unsafe { ingot_session_new_in_arena(model, sp, base, need - 1, &mut session) };
    assert_eq!(st, ingot_status::INGOT_ERR_INVALID as i32);
    assert!(session.is_null());

    // Exactly the size: creation, prefill and 16 decode steps without one heap allocation.
    let (tokens, allocations) = counted(|| {
        // SAFETY: `need` writable bytes, used by nothing else until the session is freed.
        let st = unsafe { ingot_session_new_in_arena(model, sp, base, need, &mut session) };
        assert_eq!(st, 0);
        // SAFETY: a live session and `prompt.len()` readable ids.
        let st = unsafe { ingot_prefill(session, prompt.as_ptr(), prompt.len()) };
        assert_eq!(st, 0);
        let mut tokens = [0i32; 16];
        for t in tokens.iter_mut() {
            let (mut logits, mut n_vocab) = (std::ptr::null(), 0usize);
            // SAFETY: a live session and writable out-pointers.
            let st = unsafe { ingot_session_logits(session, &mut logits, &mut n_vocab) };
            assert_eq!(st, 0);
            // SAFETY: `n_vocab` floats borrowed until the next evaluation.
            let logits = unsafe { std::slice::from_raw_parts(logits, n_vocab) };
            *t = ingot_runtime::sampler::argmax(logits) as i32;
            // SAFETY: a live session.
            assert_eq!(unsafe { ingot_decode_step(session, *t) }, 0);
        }
        tokens
    });
    assert_eq!(
        allocations, 0,
        "heap allocations in new_in_arena + prefill + decode"
    );
    // The handle is inside the arena's reserve for it, at the first address aligned for it.
    let at = session as usize - base as usize;
    assert!(
        at + size_of::<usize>() <= SESSION_HANDLE_BYTES && session.is_aligned(),
        "{at}"
    );
    assert_eq!(at, (base as *const u8).align_offset(align_of::<u64>()));

    // And it computes what a heap session computes.
    let mut heap = null_mut();
    // SAFETY: live model, readable params, writable out-pointer.
    assert_eq!(unsafe { ingot_session_new(model, sp, &mut heap) }, 0);
    // SAFETY: a live session and readable ids.
    let st = unsafe { ingot_prefill(heap, prompt.as_ptr(), prompt.len()) };
    assert_eq!(st, 0);
    for &t in &tokens {
        let (mut logits, mut n_vocab) = (std::ptr::null(), 0usize);
        // SAFETY: as above.
        let st = unsafe { ingot_session_logits(heap, &mut logits, &mut n_vocab) };
        assert_eq!(st, 0);
        // SAFETY: as above.
        let logits = unsafe { std::slice::from_raw_parts(logits, n_vocab) };
        assert_eq!(ingot_runtime::sampler::argmax(logits) as i32, t);
        // SAFETY: a live session.
        assert_eq!(unsafe { ingot_decode_step(heap, t) }, 0);
    }
    // SAFETY: each handle freed once, the arena after its session.
    unsafe {
        ingot_session_free(session);
        ingot_session_free(heap);
    }
    drop(storage);
}

/// Text streamed by `ingot_generate`, into a buffer sized beforehand (so that the callback itself
/// allocates nothing).
struct Sink {
    text: Vec<u8>,
    pieces: usize,
}

unsafe extern "C" fn on_piece(p: *const c_char, len: usize, _token: i32, user: *mut c_void) -> i32 {
    // SAFETY: `user` is the `Sink` passed to ingot_generate, alive for the whole call; the piece is
    // `len` readable bytes during this call.
    let (sink, piece) = unsafe {
        (
            &mut *user.cast::<Sink>(),
            std::slice::from_raw_parts(p.cast::<u8>(), len),
        )
    };
    assert!(
        sink.text.len() + len <= sink.text.capacity(),
        "the sink's buffer is too small"
    );
    sink.text.extend_from_slice(piece);
    sink.pieces += 1;
    0
}

/// One `ingot_generate` call of `n` tokens after a reset, its text into `sink`; returns the tokens
/// sampled.
fn generate_once(
    session: *mut ingot_session,
    sampler: *mut ingot_sampler,
    prompt: &str,
    n: u32,
    sink: &mut Sink,
) -> usize {
    sink.text.clear();
    sink.pieces = 0;
    // SAFETY: a live session.
    assert_eq!(unsafe { ingot_session_reset(session) }, 0);
    let mut n_gen = 0usize;
    // SAFETY: live handles; the prompt is readable; the callback matches the typedef and `sink`
    // outlives the call.
    let st = unsafe {
        ingot_generate(
            session,
            sampler,
            prompt.as_ptr().cast(),
            prompt.len(),
            n,
            Some(on_piece),
            (sink as *mut Sink).cast(),
            &mut n_gen,
        )
    };
    assert_eq!(st, 0);
    n_gen
}

#[test]
fn a_generate_call_after_the_first_allocates_and_frees_nothing() {
    let path = CString::new(model_path()).unwrap();
    let mut model = null_mut();
    // SAFETY: a NUL-terminated path and a writable out-pointer.
    let st = unsafe { ingot_model_load_file(path.as_ptr(), &mut model) };
    assert_eq!(st, 0);
    let prompt = "Once upon a time, in a land far away,";
    for threads in [1u32, 2] {
        let sp = ingot_session_params {
            n_ctx: 256,
            n_batch: 16,
            n_threads: threads,
            ..ingot_session_params_default()
        };
        let mut session = null_mut();
        // SAFETY: live model, readable params, writable out-pointer.
        assert_eq!(unsafe { ingot_session_new(model, &sp, &mut session) }, 0);
        // Sampled, with penalties, as `ingot generate` samples by default; a fixed seed.
        let params = ingot_sampler_params {
            seed: 7,
            ..ingot_sampler_params_default()
        };
        let mut sampler = null_mut();
        // SAFETY: live model, readable params, writable out-pointer.
        let st = unsafe { ingot_sampler_new(model, &params, &mut sampler) };
        assert_eq!(st, 0);
        let mut sink = Sink {
            text: Vec::with_capacity(1 << 16),
            pieces: 0,
        };
        let first = generate_once(session, sampler, prompt, 128, &mut sink);
        let (n, allocations, frees) =
            counted_with_frees(|| generate_once(session, sampler, prompt, 128, &mut sink));
        assert!(
            first > 64 && n > 64 && sink.pieces > 0,
            "{first} then {n} tokens, {} pieces: the calls generated too little to show anything",
            sink.pieces
        );
        assert_eq!(
            (allocations, frees),
            (0, 0),
            "heap allocations and frees in a whole ingot_generate call after the first ({threads} threads)"
        );
        // SAFETY: freed once each.
        unsafe {
            ingot_sampler_free(sampler);
            ingot_session_free(session);
        }
    }
    // SAFETY: freed once, after its sessions.
    unsafe { ingot_model_free(model) };
}
