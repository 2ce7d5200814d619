//! Sessions in a caller-owned arena (`Session::new_in_arena`): an arena of exactly `session_bytes`
//! works and computes the same logits as a heap session, one byte less (or a misaligned start) is a
//! clean error, and once created the session allocates nothing while evaluating. A counting global
//! allocator, armed only on this test's thread, measures the allocations.

mod common;

use ingot_runtime::gguf::GgufFile;
use ingot_runtime::model::{
    session_bytes, KvType, Model, Session, SessionParams, SESSION_ARENA_ALIGN, SESSION_HANDLE_BYTES,
};
use ingot_runtime::sampler::argmax;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static BYTES: AtomicUsize = AtomicUsize::new(0);
static COUNT: AtomicUsize = AtomicUsize::new(0);
thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: forwards to the system allocator unchanged; the counter bump neither allocates nor unwinds.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ARMED.with(Cell::get) {
            COUNT.fetch_add(1, Ordering::Relaxed);
            BYTES.fetch_add(layout.size(), Ordering::Relaxed);
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
            BYTES.fetch_add(new_size, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` and returns its result with the (allocations, bytes) it made on this thread.
fn counted<R>(f: impl FnOnce() -> R) -> (R, usize, usize) {
    let (c, b) = (COUNT.load(Ordering::Relaxed), BYTES.load(Ordering::Relaxed));
    ARMED.with(|a| a.set(true));
    let r = f();
    ARMED.with(|a| a.set(false));
    (
        r,
        COUNT.load(Ordering::Relaxed) - c,
        BYTES.load(Ordering::Relaxed) - b,
    )
}

/// `len` bytes of `storage` (filled with garbage) starting `offset` bytes past a 64-byte boundary, so
/// that the test controls the arena's alignment.
fn arena(storage: &mut Vec<u8>, len: usize, offset: usize) -> &mut [u8] {
    storage.clear();
    storage.resize(len + offset + 64, 0xA5);
    let skip = storage.as_ptr().align_offset(64);
    &mut storage[skip + offset..skip + offset + len]
}

/// Greedy continuation of `prompt`: the logits bits of every step.
fn run(session: &mut Session<'_, '_>, prompt: &[u32], steps: usize) -> Vec<Vec<u32>> {
    let mut out = Vec::new();
    let mut logits = session.prefill(prompt).unwrap().to_vec();
    for _ in 0..steps {
        out.push(logits.iter().map(|x| x.to_bits()).collect());
        let next = argmax(&logits);
        logits = session.decode(next).unwrap().to_vec();
    }
    out
}

#[test]
fn exact_arena_works_and_one_byte_less_is_an_error() {
    let file = GgufFile::open(common::model_path()).unwrap();
    let model = Model::from_gguf(file.parse().unwrap()).unwrap();
    let prompt = model
        .tokenizer
        .encode("The capital of France is", true, true);
    let mut storage = Vec::new();
    for (n_ctx, n_batch, n_threads, kv_type) in [
        (64, 4, 1, KvType::F16),
        (96, 200, 2, KvType::F16),
        (80, 8, 2, KvType::F32),
    ] {
        let params = SessionParams {
            n_ctx,
            n_batch,
            n_threads,
            kv_type,
        };
        let need = session_bytes(&model, params);
        assert_eq!(Session::arena_bytes(&model, params).unwrap(), need);

        let mut heap = Session::new(&model, params).unwrap();
        let want = run(&mut heap, &prompt, 6);

        // Exactly the planned size: works, bit-identical logits (the arena was filled with garbage).
        let buf = arena(&mut storage, need, 0);
        let mut s = Session::new_in_arena(&model, params, buf).unwrap();
        assert_eq!(run(&mut s, &prompt, 6), want, "{params:?}");
        drop(s);

        // One byte less: an error that names both sizes.
        let buf = arena(&mut storage, need - 1, 0);
        let err = Session::new_in_arena(&model, params, buf)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("{} bytes", need - 1)) && err.contains(&format!("{need} bytes")),
            "{err}"
        );

        // A start that is not aligned for f32: an error, not a misaligned view.
        let buf = arena(&mut storage, need, 1);
        let err = Session::new_in_arena(&model, params, buf)
            .unwrap_err()
            .to_string();
        assert!(err.contains("aligned"), "{err}");
    }
    assert_eq!(SESSION_ARENA_ALIGN, 4);

    // Bad sizes are errors here too.
    let bad = SessionParams {
        n_ctx: 0,
        ..SessionParams::default()
    };
    assert!(Session::arena_bytes(&model, bad).is_err());
    let buf = arena(&mut storage, 1024, 0);
    assert!(Session::new_in_arena(&model, bad, buf).is_err());
}

#[test]
fn arena_session_allocates_nothing_after_creation() {
    let file = GgufFile::open(common::model_path()).unwrap();
    let model = Model::from_gguf(file.parse().unwrap()).unwrap();
    let params = SessionParams {
        n_ctx: 128,
        n_batch: 16,
        n_threads: 1,
        ..Default::default()
    };
    let need = session_bytes(&model, params);
    let mut storage = Vec::new();
    let buf = arena(&mut storage, need, 0);
    let prompt = model.tokenizer.encode("Once upon a time", true, true);
    // Creation with one thread: nothing on the heap (no pool state, the per-thread table inline).
    let (session, n, bytes) = counted(|| Session::new_in_arena(&model, params, buf).unwrap());
    let mut session = session;
    assert_eq!(
        n, 0,
        "creating an arena session allocated {bytes} bytes in {n} allocations"
    );
    let (_, n, _) = counted(|| {
        let mut next = argmax(session.prefill(&prompt).unwrap());
        for _ in 0..16 {
            next = argmax(session.decode(next).unwrap());
        }
    });
    assert_eq!(n, 0, "{n} allocations while evaluating in an arena session");
    drop(session);

    // With two threads only the pool (threads, shared state) and the per-thread table allocate.
    let params = SessionParams {
        n_threads: 2,
        ..params
    };
    let buf = arena(&mut storage, session_bytes(&model, params), 0);
    let (session, n, bytes) = counted(|| Session::new_in_arena(&model, params, buf).unwrap());
    assert!(
        bytes < 4096,
        "creating a 2-thread arena session allocated {bytes} bytes in {n} allocations"
    );
    drop(session);
}

/// `ingot plan` prints the bytes an arena needs; its parts add up, the session total is the C ABI's
/// arena (the runtime's buffers plus the session handle), and a runtime arena of exactly
/// `kv_cache + scratch` works while one byte less does not. (capi/tests/arena.rs checks the C arena
/// of exactly `session` bytes, handle included.)
#[test]
fn ingot_plan_prints_the_exact_arena_size() {
    let path = common::model_path();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ingot"))
        .args(["plan", "-m", path.to_str().unwrap(), "--ctx", "200"])
        .args(["--threads", "2", "--batch", "8"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let field = |name: &str| -> u64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{name}:")))
            .unwrap_or_else(|| panic!("no `{name}:` line in\n{text}"));
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    let (kv, scratch, handle, session) = (
        field("kv_cache"),
        field("scratch"),
        field("handle"),
        field("session"),
    );
    assert_eq!(kv + scratch + handle, session);
    assert_eq!(handle, SESSION_HANDLE_BYTES as u64);

    let file = GgufFile::open(&path).unwrap();
    let model = Model::from_gguf(file.parse().unwrap()).unwrap();
    assert_eq!(field("weights"), model.weight_bytes());
    assert_eq!(field("total"), model.weight_bytes() + session);
    let params = SessionParams {
        n_ctx: 200,
        n_batch: 8,
        n_threads: 2,
        ..Default::default()
    };
    let mut storage = Vec::new();
    let need = (kv + scratch) as usize;
    assert_eq!(need, session_bytes(&model, params));
    assert!(Session::new_in_arena(&model, params, arena(&mut storage, need - 1, 0)).is_err());
    let mut s = Session::new_in_arena(&model, params, arena(&mut storage, need, 0)).unwrap();
    let prompt = model.tokenizer.encode("Hello", true, true);
    s.prefill(&prompt).unwrap();

    // Bad sizes: a message, exit status 1.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ingot"))
        .args(["plan", "-m", path.to_str().unwrap(), "--ctx", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 1"));
}
