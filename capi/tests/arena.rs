//! The whole session in the caller's arena: `ingot_session_new_in_arena` puts the session handle
//! itself at the front of the arena (no Box), so that with one thread creating the session,
//! prefilling and decoding make no heap allocation at all (a counting global allocator, armed on this
//! thread only, measures it); an arena of exactly `ingot_session_arena_size` bytes works and one byte
//! less is an error.

use core::ffi::c_void;
use ingot::*;
use ingot_runtime::model::SESSION_HANDLE_BYTES;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ffi::CString;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static COUNT: AtomicUsize = AtomicUsize::new(0);
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
    let before = COUNT.load(Ordering::Relaxed);
    ARMED.with(|a| a.set(true));
    let r = f();
    ARMED.with(|a| a.set(false));
    (r, COUNT.load(Ordering::Relaxed) - before)
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
