//! A training step allocates nothing: after two warm-up steps (which size the activations, the GEMM's
//! packing buffers, attention's scratch and the batch buffers), further optimizer steps of
//! [`Trainer::train_step`] — sampling, forward, backward with gradient accumulation, clipping, AdamW
//! — make zero heap allocations and zero frees, at 1 and 2 threads. A counting global allocator
//! counts, while armed, on the test's thread and on the model's pool workers (marked by a
//! thread-local each sets), the threads that run the step. Run repeatedly, this test caught
//! per-thread GEMM scratch in attention that grew the first time a worker happened to take an item,
//! at any later step; that scratch is now per work item (`parallel::for_each_item`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use ingot_train::pretrain::{TrainConfig, Trainer};
use ingot_train::rng::Rng;
use ingot_train::{AdamW, AdamWConfig, Config, Model, Schedule};

struct Counting;

static ARMED: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static FREES: AtomicUsize = AtomicUsize::new(0);
thread_local! {
    /// This thread's allocations count while [`ARMED`].
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

fn armed() -> bool {
    ARMED.load(Ordering::Relaxed) && COUNTED.with(Cell::get)
}

// SAFETY: every method forwards to the system allocator with the caller's arguments unchanged, so the
// GlobalAlloc contract is the system allocator's; the only addition is atomic counter updates, which
// neither allocate nor unwind (the thread-local is const-initialized).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if armed() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same layout the caller passed, which satisfies `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if armed() {
            FREES.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: `ptr` was returned by `System.alloc` with this `layout` (all allocations go through it).
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if armed() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged; `ptr`/`layout` come from this allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` armed; returns its result, the allocations (and reallocations) and the frees it made.
fn counted<R>(f: impl FnOnce() -> R) -> (R, usize, usize) {
    let (a, fr) = (
        ALLOCATIONS.load(Ordering::SeqCst),
        FREES.load(Ordering::SeqCst),
    );
    ARMED.store(true, Ordering::SeqCst);
    let r = f();
    ARMED.store(false, Ordering::SeqCst);
    (
        r,
        ALLOCATIONS.load(Ordering::SeqCst) - a,
        FREES.load(Ordering::SeqCst) - fr,
    )
}

/// Marks every thread of `pool` as counted: a pool job runs on the workers that wake in time, so
/// repeat until each index has run once (worker `i` is always index `i`).
fn mark_pool_threads(pool: &ingot_train::parallel::ThreadPool) {
    let seen: Vec<AtomicBool> = (0..pool.n_threads())
        .map(|_| AtomicBool::new(false))
        .collect();
    while !seen.iter().all(|s| s.load(Ordering::SeqCst)) {
        pool.run(&|i, _| {
            COUNTED.with(|c| c.set(true));
            seen[i].store(true, Ordering::SeqCst);
        });
    }
}

#[test]
fn training_steps_allocate_nothing() {
    COUNTED.with(|c| c.set(true));
    let mut rng = Rng::new(1);
    let ids: Vec<u32> = (0..4000).map(|_| rng.below(67) as u32).collect();
    for (tied, threads) in [(true, 1), (false, 2), (true, 2)] {
        let cfg = Config {
            vocab_size: 67,
            dim: 64,
            n_layers: 2,
            n_heads: 4,
            n_kv_heads: 2,
            ffn_dim: 160,
            max_seq_len: 96,
            rope_base: 10000.0,
            norm_eps: 1e-5,
            tied_embeddings: tied,
        };
        let mut model = Model::<f32>::new(cfg.clone(), threads).unwrap();
        model.init(7);
        let opt = AdamW::new(AdamWConfig::default(), &cfg);
        let run = TrainConfig {
            batch: 4,
            seq_len: 96, // > attention's 64-row block: the blocked products' second block runs
            grad_accum: 2,
            steps: 10,
            schedule: Schedule {
                max_lr: 1e-3,
                min_lr: 1e-4,
                warmup_steps: 2,
                decay_steps: 10,
            },
            grad_clip: 0.1, // clipping active
            seed: 5,
        };
        let mut trainer = Trainer::new(model, opt, run);
        for _ in 0..2 {
            trainer.train_step(&ids).unwrap();
        }
        mark_pool_threads(trainer.model.pool());
        let (_, allocations, frees) = counted(|| {
            for _ in 0..6 {
                trainer.train_step(&ids).unwrap();
            }
        });
        assert_eq!(
            (allocations, frees),
            (0, 0),
            "6 steps (tied {tied}, {threads} threads) allocated {allocations} times, freed {frees}"
        );
        // the counter counts (on a pool thread too)
        let pool = ingot_train::parallel::pool(2);
        mark_pool_threads(&pool);
        let (v, allocations, _) = counted(|| {
            let mut out = [0usize; 2];
            pool.for_each_chunk(&mut out, 1, |i, o| o[0] = vec![i; 3 + i].len());
            vec![out[0] + out[1]; 4]
        });
        assert_eq!((v, allocations), (vec![7; 4], 3));
    }
}
