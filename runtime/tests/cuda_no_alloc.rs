//! The CUDA decode step allocates nothing on the host (Rust heap): after creation and one warm-up
//! step (which captures the CUDA graph), 64 decode steps, with logits copied back or with the
//! on-device argmax, make zero allocations and zero frees. Device memory is all allocated in
//! `CudaModel::new` (the graph replays fixed buffers). A counting global allocator, armed only on
//! this test's thread, proves it. Skips without a GPU unless `INGOT_REQUIRE_GPU=1`.
#![cfg(feature = "cuda")]

use ingot_kernels::cuda;
use ingot_runtime::cuda::CudaModel;
use ingot_runtime::gguf::GgufFile;
use ingot_runtime::model::{Model, SessionParams};
use ingot_runtime::sampler::argmax;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static FREES: AtomicUsize = AtomicUsize::new(0);
thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: every method forwards to the system allocator with the caller's arguments unchanged, so
// the GlobalAlloc contract is the system allocator's; the only addition is a counter bump, which
// neither allocates nor unwinds (the thread-local is const-initialized).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ARMED.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same layout the caller passed, which satisfies `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ARMED.with(Cell::get) {
            FREES.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: `ptr` was returned by `System.alloc` with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if ARMED.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged; `ptr`/`layout` come from this allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

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
    .unwrap_or_else(|| panic!("test model {name} not found: run scripts/fetch-model.sh"))
}

#[test]
fn cuda_decode_allocates_nothing() {
    let require = std::env::var("INGOT_REQUIRE_GPU").is_ok_and(|v| v == "1");
    if !(cuda::driver_present() && cuda::kernels_compiled()) {
        assert!(
            !require,
            "INGOT_REQUIRE_GPU=1 but no CUDA driver or kernels"
        );
        eprintln!("cuda_decode_allocates_nothing: skipped: no CUDA driver or kernels");
        return;
    }
    if std::env::var("INGOT_CUDA_GRAPH").is_ok_and(|v| v == "0") {
        eprintln!("cuda_decode_allocates_nothing: skipped: INGOT_CUDA_GRAPH=0 launches one by one");
        return;
    }
    let file = GgufFile::open(model_path()).unwrap();
    let model = Model::from_file(&file).unwrap();
    let params = SessionParams {
        n_ctx: 256,
        n_batch: 32,
        n_threads: 1,
        ..Default::default()
    };
    let mut m = CudaModel::new(&model, params, 0).unwrap();
    let prompt = model.tokenizer.encode("Once upon a time", true, true);
    let mut tok = argmax(m.prefill(&prompt).unwrap());
    tok = argmax(m.decode(tok).unwrap()); // warm-up: captures the graph
    ARMED.with(|a| a.set(true));
    for step in 0..64 {
        tok = if step % 2 == 0 {
            argmax(m.decode(tok).unwrap())
        } else {
            m.decode_greedy(tok).unwrap()
        };
    }
    ARMED.with(|a| a.set(false));
    let (a, f) = (
        ALLOCATIONS.load(Ordering::Relaxed),
        FREES.load(Ordering::Relaxed),
    );
    assert_eq!(
        (a, f),
        (0, 0),
        "64 CUDA decode steps allocated {a} times, freed {f} times"
    );
}
