//! A persistent worker pool for splitting one operation (a matrix product, the heads of an attention
//! layer) across threads, without allocating, locking or sending anything per call.
//!
//! Protocol: the caller publishes a job (a borrowed closure) with `n - 1` tickets and bumps a
//! generation counter; workers spin briefly on the counter, then park. A worker that wakes claims a
//! ticket, runs the job, and counts itself done. The caller runs the job too, then closes the job by
//! taking the unclaimed tickets, and waits only for the workers that claimed one. Lending the
//! closure's borrow is sound because no worker can start the job after it is closed and the caller
//! returns only after every claimant is done.
//!
//! Jobs therefore share work dynamically (an atomic chunk counter, as [`Kernels::matmul_par`] does)
//! rather than by a fixed split per thread: a worker that the OS has preempted, or that is still
//! asleep, simply finds no work left, and the caller never waits for a thread that has not started.
//!
//! Why spin-then-park: llama.cpp's pure spin barriers collapse when the OS preempts one thread on a
//! busy machine (measured here: 3.9 tok/s at 2 threads under load). Parking after a short spin keeps
//! the fast path (both threads awake during a decode step) free of syscalls while a preempted or idle
//! pool costs nothing.
//!
//! Between two jobs a worker may also read ahead ([`ThreadPool::read_after_jobs`]): its share of
//! the weights of the products that come next, while the caller does the serial work in between, so
//! that its stream does not start cold.

use crate::prelude::*;
use crate::Kernels;
use core::ops::Range;
use core::sync::atomic::{AtomicUsize, Ordering};
#[cfg(feature = "std")]
use std::cell::UnsafeCell;
#[cfg(feature = "std")]
use std::panic::{catch_unwind, AssertUnwindSafe};
#[cfg(feature = "std")]
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64};
#[cfg(feature = "std")]
use std::sync::Arc;
#[cfg(feature = "std")]
use std::thread::{self, JoinHandle, Thread};

/// Spins before a waiting worker parks; about 10-50 µs on current x86, longer than the gap between
/// two operations of a decode step, much shorter than a scheduler quantum.
#[cfg(feature = "std")]
const SPIN_LIMIT: u32 = 1 << 14;

/// How long [`ThreadPool::round_trip_ns`]'s caller waits for worker 1 to answer before it gives up.
#[cfg(feature = "std")]
const PING_PATIENCE: std::time::Duration = std::time::Duration::from_micros(200);

/// Rows per work item of [`Kernels::matmul_par`]: small enough that a preempted thread leaves little
/// for the others to wait on, large enough that taking an item costs nothing next to computing it.
const CHUNK_ROWS: usize = 32;
const _: () = assert!(CHUNK_ROWS.is_multiple_of(crate::packed::PACK_ROWS));

/// Rows (tokens) per work item of [`Kernels::quantize_batch_par`]: a multiple of four, the group in
/// which llama.cpp quantizes some activations (see [`crate::Kernels::quantize_batch`]).
pub const QUANTIZE_ROWS: usize = 8;
const _: () = assert!(QUANTIZE_ROWS.is_multiple_of(4));

/// Most slices a [`ThreadPool::read_after_jobs`] hint holds, over all its product groups.
pub const MAX_READ_SLICES: usize = 4;

/// Most bytes a worker reads after a job ([`ThreadPool::read_after_jobs`]): about one L2 (1 MiB on
/// Zen 4), what a worker can use while the caller computes a layer's attention alone. Between two
/// products the next job stops it much earlier (there 96 and 256 KiB measured the same).
#[cfg(feature = "std")]
const READ_AHEAD_BYTES: usize = 1 << 20;

/// The job: called as `f(thread_index, n_threads)`.
#[cfg(feature = "std")]
type Job<'a> = &'a (dyn Fn(usize, usize) + Sync);

#[cfg(feature = "std")]
struct Shared {
    n_threads: usize,
    /// Bumped (SeqCst) to publish a job or the shutdown.
    generation: AtomicU64,
    /// The current job, valid for a worker from claiming a ticket until it increments `done`.
    job: UnsafeCell<Option<Job<'static>>>,
    /// Unclaimed places in the current job; the caller takes the rest when it closes the job.
    tickets: AtomicUsize,
    /// Claimants of the current job that have finished.
    done: AtomicUsize,
    panicked: AtomicBool,
    shutdown: AtomicBool,
    /// Per worker: true while it is parked (or about to park).
    sleeping: Vec<AtomicBool>,
    /// The read-ahead hint ([`ThreadPool::read_after_jobs`]): address and length of each slice
    /// (length 0: none), read by a worker when it claims a job.
    reads: [(AtomicPtr<u8>, AtomicUsize); MAX_READ_SLICES],
    /// Bit `i` set: slice `i` of `reads` starts a product group.
    read_groups: AtomicUsize,
    /// Workers that took the hint with their job and have not finished reading it.
    reading: AtomicUsize,
}

// SAFETY: `job` is written only by the caller of `run`, and only while no worker can read it: before
// the tickets that publish it exist, and after every claimant of the previous job has counted itself
// done. Workers read it only between claiming a ticket and incrementing `done`. The closure it points
// to is `Sync`, so calling it from several threads at once is allowed.
#[cfg(feature = "std")]
unsafe impl Sync for Shared {}

/// A pool of `n_threads - 1` parked workers plus the calling thread.
#[cfg(feature = "std")]
pub struct ThreadPool {
    n_threads: usize,
    /// `None` for one thread: the caller alone needs no shared state (and nothing is allocated).
    shared: Option<Arc<Shared>>,
    workers: Vec<(JoinHandle<()>, Thread)>,
}

#[cfg(feature = "std")]
impl core::fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ThreadPool")
            .field("n_threads", &self.n_threads)
            .finish()
    }
}

#[cfg(feature = "std")]
impl ThreadPool {
    /// Starts `n_threads - 1` workers (none for 1). Errors if the OS refuses to create a thread.
    pub fn new(n_threads: usize) -> std::io::Result<ThreadPool> {
        let n_threads = n_threads.max(1);
        if n_threads == 1 {
            return Ok(ThreadPool::caller_only());
        }
        let shared = Arc::new(Shared {
            n_threads,
            generation: AtomicU64::new(0),
            job: UnsafeCell::new(None),
            tickets: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            sleeping: (0..n_threads).map(|_| AtomicBool::new(false)).collect(),
            reads: core::array::from_fn(|_| {
                (AtomicPtr::new(core::ptr::null_mut()), AtomicUsize::new(0))
            }),
            reading: AtomicUsize::new(0),
            read_groups: AtomicUsize::new(0),
        });
        let mut workers = Vec::with_capacity(n_threads - 1);
        for index in 1..n_threads {
            let s = Arc::clone(&shared);
            let handle = thread::Builder::new()
                .name(format!("ingot-worker-{index}"))
                .spawn(move || worker(&s, index))?;
            let t = handle.thread().clone();
            workers.push((handle, t));
        }
        Ok(ThreadPool {
            n_threads,
            shared: Some(shared),
            workers,
        })
    }

    /// The calling thread alone: no workers, nothing allocated, cannot fail.
    pub fn caller_only() -> ThreadPool {
        ThreadPool {
            n_threads: 1,
            shared: None,
            workers: Vec::new(),
        }
    }

    /// Threads that run a job, the caller included.
    pub fn n_threads(&self) -> usize {
        self.n_threads
    }

    /// From the next [`ThreadPool::run`] on, each worker that runs a job, once done with its part,
    /// reads (loads, one byte a cache line) its share of the weights in `next` until the caller
    /// publishes the following job, up to 1 MiB. `next` is the product groups that come, in order,
    /// each its matrices' bytes in order (the `w` of a [`Kernels::matvec_par_group`] call); worker
    /// `i` of `n` reads `1 / n` of each group from `i / n` of its bytes taken as one run, where
    /// [`Segments`] starts it on that group's rows, then goes on to the next group.
    ///
    /// The caller's serial work between two products (norms, RoPE, SwiGLU, quantization) then
    /// overlaps the worker's first weight lines; without it each product's stream starts cold.
    /// Measured (2 threads, decode, alternated pairs): Q8_0 +2.8%, Q4_1 +3.5% tokens/s; +3.4-4.4%
    /// while the host places the two vCPUs apart, +1.4-2.1% while it keeps them together
    /// (BENCHMARKS.md). With two groups a worker can read through a longer gap, such as a layer's
    /// attention computed by the caller alone.
    ///
    /// An empty `next` clears the hint. Nothing happens with one thread.
    ///
    /// # Safety
    /// The bytes of every slice must stay readable until [`ThreadPool::stop_reads`] returns: call
    /// it before they may be freed or unmapped (a worker may still be reading them after `run`
    /// returns).
    ///
    /// # Panics
    /// If `next` has more than [`MAX_READ_SLICES`] slices in all.
    pub unsafe fn read_after_jobs(&self, next: &[&[&[u8]]]) {
        let mut slices = next.iter().flat_map(|g| g.iter().copied());
        assert!(
            slices.clone().count() <= MAX_READ_SLICES,
            "read_after_jobs: at most {MAX_READ_SLICES} slices"
        );
        let Some(s) = self.shared.as_deref() else {
            return;
        };
        let mut groups = 0;
        let mut first = 0;
        for g in next.iter().filter(|g| !g.is_empty()) {
            groups |= 1 << first;
            first += g.len();
        }
        for (p, l) in &s.reads {
            let b = slices.next().unwrap_or_default();
            p.store(b.as_ptr().cast_mut(), Ordering::Relaxed);
            l.store(b.len(), Ordering::Relaxed);
        }
        s.read_groups.store(groups, Ordering::Relaxed);
    }

    /// The time, in nanoseconds, a cache line takes from the calling thread to worker 1 and back,
    /// in a ping-pong job: how far apart the OS has put the two threads. Four batches of four
    /// round trips; the fastest batch's mean (a thread preempted for a moment delays one batch).
    /// On this project's 2-vCPU VM: 35-110 ns while the host keeps the two on cores that share a
    /// last-level cache, 250-550 ns while it puts them apart (BENCHMARKS.md). `None` with one
    /// thread, or when worker 1 does not answer within 200 µs (asleep or preempted). Allocates
    /// nothing.
    pub fn round_trip_ns(&self) -> Option<f64> {
        const BATCHES: u64 = 4;
        const ROUNDS: u64 = 4;
        if self.n_threads < 2 {
            return None;
        }
        /// The line the two threads bounce, alone in its cache line.
        #[repr(align(128))]
        struct Line(AtomicU64);
        const STOP: u64 = u64::MAX;
        let line = Line(AtomicU64::new(0));
        // The result's f64 bits, once measured.
        let mean = AtomicU64::new(0);
        // The caller's wait for `want`: false after PING_PATIENCE.
        let wait = |want: u64| {
            let mut since: Option<std::time::Instant> = None;
            let mut spins = 0u32;
            while line.0.load(Ordering::Acquire) != want {
                spins = spins.wrapping_add(1);
                if spins.is_multiple_of(256) {
                    let t = *since.get_or_insert_with(std::time::Instant::now);
                    if t.elapsed() > PING_PATIENCE {
                        return false;
                    }
                }
                std::hint::spin_loop();
            }
            true
        };
        self.run(&|t, _| match t {
            0 => {
                let mut best = f64::INFINITY;
                let mut k = 0;
                let answered = wait(1)
                    && (0..BATCHES).all(|_| {
                        let start = std::time::Instant::now();
                        let batch = (0..ROUNDS).all(|_| {
                            k += 1;
                            line.0.store(2 * k, Ordering::Release);
                            wait(2 * k + 1)
                        });
                        best = best.min(start.elapsed().as_nanos() as f64 / ROUNDS as f64);
                        batch
                    });
                if answered {
                    mean.store(best.to_bits(), Ordering::Relaxed);
                }
                // Releases worker 1 whatever happened (it answers by compare-exchange, so it never
                // overwrites this).
                line.0.store(STOP, Ordering::Release);
            }
            1 => {
                // Answers 2k with 2k + 1 (joining is answering 0), until the caller's STOP.
                let mut expect = 0;
                loop {
                    let v = line.0.load(Ordering::Acquire);
                    if v == STOP {
                        break;
                    }
                    let answered = v == expect
                        && line
                            .0
                            .compare_exchange(v, v + 1, Ordering::AcqRel, Ordering::Acquire)
                            .is_ok();
                    if answered {
                        expect += 2;
                    } else {
                        std::hint::spin_loop();
                    }
                }
            }
            _ => {}
        });
        let ns = f64::from_bits(mean.load(Ordering::Relaxed));
        (ns > 0.0).then_some(ns)
    }

    /// Clears the [`ThreadPool::read_after_jobs`] hint and returns when no worker reads hinted
    /// bytes any more (at once unless a worker was preempted while reading: then when it runs again
    /// and sees that).
    pub fn stop_reads(&self) {
        let Some(s) = self.shared.as_deref() else {
            return;
        };
        // SAFETY: an empty hint holds no memory.
        unsafe { self.read_after_jobs(&[]) };
        // Every worker that took the hint counted itself in `reading` before its job was done, and
        // the caller's `run` saw it done (Acquire), so the count is current here.
        let mut spins = 0u32;
        while s.reading.load(Ordering::Acquire) != 0 {
            if spins < SPIN_LIMIT {
                std::hint::spin_loop();
                spins += 1;
            } else {
                thread::yield_now();
            }
        }
    }

    /// Runs `f(i, n)` on the calling thread (`i = 0`) and on every worker that wakes in time (each
    /// with its own `i`), and returns when all of those have finished. Workers that are asleep or
    /// preempted may not run `f` at all, so `f` must share its work dynamically (e.g. chunks taken from
    /// an atomic counter), never assume that every index runs. Each index runs at most once per
    /// call, on one thread, so `i` may select per-thread scratch. Allocates nothing. A panic in any
    /// thread is re-raised here.
    pub fn run(&self, f: &(dyn Fn(usize, usize) + Sync)) {
        let n = self.n_threads;
        let Some(s) = self.shared.as_deref().filter(|_| n > 1) else {
            f(0, 1);
            return;
        };
        // SAFETY: the lifetime is erased only for the duration of this call: workers use the reference
        // only between claiming a ticket and incrementing `done`, and this function does not return or
        // unwind before the job is closed (no more claims) and every claimant is done (the wait below
        // runs even if `f(0, n)` panics). No worker holds the previous job: its claimants were all
        // waited for before the previous call returned.
        let job: Job<'static> = unsafe { std::mem::transmute::<Job<'_>, Job<'static>>(f) };
        // SAFETY: see `unsafe impl Sync for Shared`: there are no tickets, so no worker reads `job`.
        unsafe { *s.job.get() = Some(job) };
        s.done.store(0, Ordering::SeqCst);
        s.tickets.store(n - 1, Ordering::SeqCst);
        s.generation.fetch_add(1, Ordering::SeqCst);
        for (i, (_, t)) in self.workers.iter().enumerate() {
            if s.sleeping[i + 1].load(Ordering::SeqCst) {
                t.unpark();
            }
        }
        let mine = catch_unwind(AssertUnwindSafe(|| f(0, n)));
        let claimed = (n - 1) - s.tickets.swap(0, Ordering::SeqCst);
        let mut spins = 0u32;
        while s.done.load(Ordering::Acquire) != claimed {
            if spins < SPIN_LIMIT {
                std::hint::spin_loop();
                spins += 1;
            } else {
                thread::yield_now();
            }
        }
        if let Err(p) = mine {
            std::panic::resume_unwind(p);
        }
        if s.panicked.swap(false, Ordering::SeqCst) {
            panic!("a worker thread panicked while running a job");
        }
    }
}

#[cfg(feature = "std")]
impl Drop for ThreadPool {
    fn drop(&mut self) {
        let Some(s) = self.shared.as_deref() else {
            return;
        };
        s.shutdown.store(true, Ordering::SeqCst);
        s.generation.fetch_add(1, Ordering::SeqCst);
        for (handle, t) in self.workers.drain(..) {
            t.unpark();
            let _ = handle.join();
        }
    }
}

#[cfg(feature = "std")]
fn worker(s: &Shared, index: usize) {
    let mut seen = 0u64;
    loop {
        // Wait for a new generation: spin, then park.
        let mut spins = 0u32;
        loop {
            let g = s.generation.load(Ordering::SeqCst);
            if g != seen {
                seen = g;
                break;
            }
            if spins < SPIN_LIMIT {
                std::hint::spin_loop();
                spins += 1;
                continue;
            }
            // Announce the sleep, then re-check: either `run` sees `sleeping` and unparks us, or we see
            // its generation bump here (both sides use SeqCst), so no wake-up is lost.
            s.sleeping[index].store(true, Ordering::SeqCst);
            if s.generation.load(Ordering::SeqCst) == seen {
                thread::park();
            }
            s.sleeping[index].store(false, Ordering::SeqCst);
        }
        if s.shutdown.load(Ordering::SeqCst) {
            return;
        }
        // Claim a place in the job, if it is still open.
        let mut t = s.tickets.load(Ordering::SeqCst);
        loop {
            if t == 0 {
                break;
            }
            match s
                .tickets
                .compare_exchange_weak(t, t - 1, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => break,
                Err(now) => t = now,
            }
        }
        if t == 0 {
            continue; // closed before we woke: nothing to do, nobody waits for us
        }
        // SAFETY: we hold a ticket of the job published with it and have not counted ourselves done,
        // so `job` is that job and its borrow is alive (see `run`).
        let job = unsafe { *s.job.get() };
        // The read-ahead share, taken (and counted in `reading`) before this worker is done, so
        // that `stop_reads` waits for it.
        let reads = worker_share(s, index);
        if reads.is_some() {
            s.reading.fetch_add(1, Ordering::SeqCst);
        }
        if let Some(f) = job {
            if catch_unwind(AssertUnwindSafe(|| f(index, s.n_threads))).is_err() {
                s.panicked.store(true, Ordering::SeqCst);
            }
        }
        s.done.fetch_add(1, Ordering::Release);
        if let Some(share) = reads {
            read_until_next_job(s, seen, share);
            s.reading.fetch_sub(1, Ordering::Release);
        }
    }
}

/// Worker `index`'s share of the read-ahead hint (see [`read_share`]); `None` without a hint.
#[cfg(feature = "std")]
fn worker_share(s: &Shared, index: usize) -> Option<[(*const u8, usize); MAX_READ_SLICES]> {
    let hint = core::array::from_fn(|i| {
        let (p, l) = &s.reads[i];
        (
            p.load(Ordering::Relaxed).cast_const(),
            l.load(Ordering::Relaxed),
        )
    });
    let groups = s.read_groups.load(Ordering::Relaxed);
    let share = read_share(hint, groups, index, s.n_threads, READ_AHEAD_BYTES);
    share.iter().any(|r| r.1 > 0).then_some(share)
}

/// Of the slices `hint` (address, length), in groups (bit `i` of `groups` set: slice `i` starts
/// one; each group's slices taken as one run of bytes), what thread `index` of `n` reads ahead: of
/// each group of `total` bytes, `total / n` from byte `index * total / n` (where [`Segments`]
/// starts that thread), group after group, at most `cap` bytes in all; as (address, length) per
/// slice.
#[cfg(feature = "std")]
fn read_share(
    hint: [(*const u8, usize); MAX_READ_SLICES],
    groups: usize,
    index: usize,
    n: usize,
    cap: usize,
) -> [(*const u8, usize); MAX_READ_SLICES] {
    let mut share = [(core::ptr::null(), 0); MAX_READ_SLICES];
    let mut left = cap;
    let mut start = 0;
    while start < MAX_READ_SLICES {
        // This group: slices start..end.
        let end = (start + 1..MAX_READ_SLICES)
            .find(|&i| groups & (1 << i) != 0)
            .unwrap_or(MAX_READ_SLICES);
        let total: usize = hint[start..end].iter().map(|h| h.1).sum();
        let (mut skip, mut take) = (index * total / n, left.min(total / n));
        left -= take;
        for (&(p, l), out) in hint[start..end].iter().zip(&mut share[start..end]) {
            let from = skip.min(l);
            skip -= from;
            let t = take.min(l - from);
            take -= t;
            *out = (p.wrapping_add(from), t);
        }
        start = end;
    }
    share
}

/// Loads one byte of each cache line of `share` until a job newer than `seen` is published.
#[cfg(feature = "std")]
fn read_until_next_job(s: &Shared, seen: u64, share: [(*const u8, usize); MAX_READ_SLICES]) {
    for (p, l) in share {
        let mut o = 0;
        while o < l {
            if s.generation.load(Ordering::Relaxed) != seen {
                return;
            }
            // SAFETY: inside a slice of the hint, which the caller of `read_after_jobs` keeps
            // readable until `stop_reads` returns, and that waits for this worker (`reading`).
            unsafe { core::ptr::read_volatile(p.add(o)) };
            o += 64;
        }
    }
}

/// Without `std` there are no threads: the pool is the calling thread alone, with the same API, so
/// that everything built on it (the row-split products, [`ThreadPool::for_each_chunk_with`]) runs
/// unchanged on one thread.
#[cfg(not(feature = "std"))]
#[derive(Debug)]
pub struct ThreadPool {
    _single: (),
}

#[cfg(not(feature = "std"))]
impl ThreadPool {
    /// The calling thread alone; more than one thread is [`NoThreads`].
    pub fn new(n_threads: usize) -> Result<ThreadPool, NoThreads> {
        if n_threads > 1 {
            return Err(NoThreads { n_threads });
        }
        Ok(ThreadPool::caller_only())
    }

    /// The calling thread alone, as with `std`.
    pub fn caller_only() -> ThreadPool {
        ThreadPool { _single: () }
    }

    /// Always 1.
    pub fn n_threads(&self) -> usize {
        1
    }

    /// Runs `f(0, 1)`.
    pub fn run(&self, f: &(dyn Fn(usize, usize) + Sync)) {
        f(0, 1);
    }

    /// Nothing: there are no workers to read ahead.
    ///
    /// # Safety
    /// None needed; `unsafe` as the `std` pool's.
    pub unsafe fn read_after_jobs(&self, _next: &[&[&[u8]]]) {}

    /// Nothing: there are no workers to read ahead.
    pub fn stop_reads(&self) {}

    /// `None`: there is no other thread.
    pub fn round_trip_ns(&self) -> Option<f64> {
        None
    }
}

/// [`ThreadPool::new`] without `std`: threads were asked for and there are none.
#[cfg(not(feature = "std"))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoThreads {
    pub n_threads: usize,
}

#[cfg(not(feature = "std"))]
impl core::fmt::Display for NoThreads {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{} threads asked for, but ingot-kernels was built without `std` (one thread only)",
            self.n_threads
        )
    }
}

/// `*mut T` that may be shared with the pool's workers; see the SAFETY comments where it is used.
struct SharedMut<T>(*mut T);
impl<T> Clone for SharedMut<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SharedMut<T> {}
// SAFETY: the pointer is only dereferenced through disjoint ranges (or elements), each used by one
// thread at a time, while the exclusive borrow it was made from is held by the caller of
// `ThreadPool::run` (see `matmul_par` and `for_each_chunk_with`). Handing a `&mut T` to another
// thread needs `T: Send`.
unsafe impl<T: Send> Send for SharedMut<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for SharedMut<T> {}

impl<T> SharedMut<T> {
    /// The pointer (a method, so closures capture the whole `Sync` wrapper, not the raw field).
    fn get(self) -> *mut T {
        self.0
    }
}

impl ThreadPool {
    /// Calls `f(item, chunk)` for every `chunk_len`-element chunk of `out` (item `i` is
    /// `out[i * chunk_len..][..chunk_len]`), the items shared dynamically across the pool. See
    /// [`ThreadPool::for_each_chunk_with`].
    ///
    /// # Panics
    /// If `chunk_len` is 0 or does not divide `out.len()`; a panic of `f` is re-raised.
    pub fn for_each_chunk<T, F>(&self, out: &mut [T], chunk_len: usize, f: F)
    where
        T: Send,
        F: Fn(usize, &mut [T]) + Sync,
    {
        // A Vec of a zero-sized type never allocates.
        let mut units = vec![(); self.n_threads()];
        self.for_each_chunk_with(out, chunk_len, &mut units, |i, c, _| f(i, c));
    }

    /// Calls `f(item, chunk, slot)` for every `chunk_len`-element chunk of `out` (item `i` is
    /// `out[i * chunk_len..][..chunk_len]`), exactly once each, on whichever thread takes the item
    /// from an atomic counter; `slot` is `per_thread[t]` of the thread `t` running it (per-thread
    /// scratch: one slot per pool thread). So the result is the same for any thread count as long
    /// as `f`'s output depends only on its item. Runs on the caller alone when there is one item
    /// or one thread. Allocates nothing.
    ///
    /// # Panics
    /// If `chunk_len` is 0 or does not divide `out.len()`, or `per_thread` has fewer than
    /// [`ThreadPool::n_threads`] slots; a panic of `f` is re-raised.
    pub fn for_each_chunk_with<T, S, F>(
        &self,
        out: &mut [T],
        chunk_len: usize,
        per_thread: &mut [S],
        f: F,
    ) where
        T: Send,
        S: Send,
        F: Fn(usize, &mut [T], &mut S) + Sync,
    {
        assert!(
            chunk_len > 0 && out.len().is_multiple_of(chunk_len),
            "for_each_chunk: chunk length {chunk_len} does not divide {}",
            out.len()
        );
        let n_items = out.len() / chunk_len;
        // SAFETY: the chunks [i * chunk_len, (i + 1) * chunk_len) for i < n_items are disjoint and
        // inside out.len() = n_items * chunk_len.
        unsafe {
            self.run_parts(
                out,
                n_items,
                |i| i * chunk_len..(i + 1) * chunk_len,
                per_thread,
                f,
            )
        }
    }

    /// [`ThreadPool::for_each_chunk_with`] for items of different lengths: item `i` is
    /// `out[bounds[i]..bounds[i + 1]]`, for the `bounds.len() - 1` items. Items are taken in index
    /// order, so the long ones should come first.
    ///
    /// # Panics
    /// If `bounds` decreases or its last entry is past `out.len()`, or `per_thread` has fewer than
    /// [`ThreadPool::n_threads`] slots; a panic of `f` is re-raised.
    pub fn for_each_part_with<T, S, F>(
        &self,
        out: &mut [T],
        bounds: &[usize],
        per_thread: &mut [S],
        f: F,
    ) where
        T: Send,
        S: Send,
        F: Fn(usize, &mut [T], &mut S) + Sync,
    {
        assert!(
            bounds.windows(2).all(|w| w[0] <= w[1])
                && bounds.last().is_none_or(|&e| e <= out.len()),
            "for_each_part: bounds {bounds:?} decrease or leave the {} elements",
            out.len()
        );
        let n_items = bounds.len().saturating_sub(1);
        // SAFETY: `bounds` (immutable for the call) is nondecreasing and ends inside `out`
        // (asserted above), so the parts [bounds[i], bounds[i + 1]) are disjoint and inside it.
        unsafe { self.run_parts(out, n_items, |i| bounds[i]..bounds[i + 1], per_thread, f) }
    }

    /// Calls `f(i, &mut out[part(i)], slot)` for `i` in `0..n_items`, each once, the items shared
    /// dynamically (in index order) across the pool; `slot` is `per_thread[t]` of the thread `t`
    /// running it. Allocates nothing.
    ///
    /// # Safety
    /// `part` must give, on every call, ranges inside `out` that are pairwise disjoint for distinct
    /// indices below `n_items`.
    unsafe fn run_parts<T, S, P, F>(
        &self,
        out: &mut [T],
        n_items: usize,
        part: P,
        per_thread: &mut [S],
        f: F,
    ) where
        T: Send,
        S: Send,
        P: Fn(usize) -> Range<usize> + Sync,
        F: Fn(usize, &mut [T], &mut S) + Sync,
    {
        let n_threads = self.n_threads();
        assert!(
            per_thread.len() >= n_threads,
            "for_each_chunk / for_each_part: {} per-thread slots for {n_threads} threads",
            per_thread.len()
        );
        if n_threads == 1 || n_items <= 1 {
            for i in 0..n_items {
                f(i, &mut out[part(i)], &mut per_thread[0]);
            }
            return;
        }
        let base = SharedMut(out.as_mut_ptr());
        let slots = SharedMut(per_thread.as_mut_ptr());
        let next = AtomicUsize::new(0);
        self.run(&|t, _| {
            // SAFETY: `run` calls this closure at most once per thread index per call, each index on
            // one thread (the caller is 0, worker `i` is `i`), and t < n_threads <= per_thread.len()
            // (asserted above); `per_thread` is exclusively borrowed for the whole `run` call, which
            // returns only after every thread running this closure is done.
            let slot = unsafe { &mut *slots.get().add(t) };
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n_items {
                    break;
                }
                let r = part(i);
                // SAFETY: `base` points to `out`, exclusively borrowed for the whole `run` call
                // (see above). Each item index is taken once (atomic counter), and the caller
                // guarantees that the parts of distinct items are disjoint and inside `out`.
                let chunk =
                    unsafe { core::slice::from_raw_parts_mut(base.get().add(r.start), r.len()) };
                f(i, chunk, slot);
            }
        });
    }
}

/// Segments of [`Segments`]: threads beyond this many share segments.
const MAX_SEGMENTS: usize = 16;

/// Work items `0..n` dealt as one contiguous segment per thread: thread `i` takes the items of
/// segment `i` in ascending order, then helps with the others (taking their next items, so each
/// item still runs exactly once). For row chunks this keeps every thread streaming one contiguous
/// run of weight rows, which the hardware prefetchers follow, instead of chunks interleaved with
/// the other threads' (a jump at every chunk); a thread that is preempted or asleep still delays
/// nothing, as its segment is done by the others.
struct Segments {
    n: usize,
    segs: usize,
    next: [Padded; MAX_SEGMENTS],
}

/// A counter on a cache line of its own: each thread claims from its own segment's counter without
/// taking the line from the others.
#[repr(align(128))]
struct Padded(AtomicUsize);

impl Segments {
    fn new(n: usize, n_threads: usize) -> Segments {
        let segs = n_threads.clamp(1, MAX_SEGMENTS);
        Segments {
            n,
            segs,
            next: core::array::from_fn(|s| Padded(AtomicUsize::new(s * n / segs))),
        }
    }

    /// The next item for thread `thread`; `from` (0 at the start of the job) counts the segments
    /// this thread has found empty.
    fn claim(&self, thread: usize, from: &mut usize) -> Option<usize> {
        self.take(thread, from, false).map(|r| r.start)
    }

    /// [`Segments::claim`] for several items at once: from its own segment a thread takes half of
    /// what is left there (so a kernel call streams a long run of rows, and the runs shrink towards
    /// the end, where the threads must finish together), from the others' one item at a time.
    fn claim_run(&self, thread: usize, from: &mut usize) -> Option<core::ops::Range<usize>> {
        self.take(thread, from, true)
    }

    /// The next items for `thread`: one, or a run from its own segment when `runs`.
    fn take(&self, thread: usize, from: &mut usize, runs: bool) -> Option<core::ops::Range<usize>> {
        while *from < self.segs {
            let s = (thread + *from) % self.segs;
            let end = (s + 1) * self.n / self.segs;
            let next = &self.next[s].0;
            let take = if runs && *from == 0 {
                // A stale read only makes the run shorter or longer; the claim itself is atomic.
                end.saturating_sub(next.load(Ordering::Relaxed))
                    .div_ceil(2)
                    .max(1)
            } else {
                1
            };
            // Relaxed: the index alone is what is shared; the item's data is published by `run`.
            let i = next.fetch_add(take, Ordering::Relaxed);
            if i < end {
                return Some(i..(i + take).min(end));
            }
            *from += 1;
        }
        None
    }
}

/// Most products one [`Kernels::matvec_par_group`] takes.
pub const MAX_GROUP: usize = 4;

/// One product of a [`Kernels::matvec_par_group`]: `out (rows,) = W @ x`, `W` in `ty` (in the
/// packed layout of [`crate::packed`] when `packed`).
#[derive(Debug)]
pub struct MatVec<'a> {
    pub ty: crate::QuantType,
    pub packed: bool,
    pub w: &'a [u8],
    pub rows: usize,
    pub out: &'a mut [f32],
}

impl Kernels {
    /// [`crate::Kernels::matmul`] with the rows of `W` split across `pool`'s threads. Every output
    /// element is computed by the same kernel call as in the single-threaded product, so the result
    /// is bit-identical for any thread count. `scratch` must hold `t * rows` floats when `t > 1`
    /// (each thread writes its rows for all tokens there, then they are scattered into `out`); it is
    /// unused for `t == 1`.
    ///
    /// # Panics
    /// As [`crate::Kernels::matmul`], or if `scratch` is too short.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul_par(
        &self,
        pool: &ThreadPool,
        ty: crate::QuantType,
        out: &mut [f32],
        w: &[u8],
        rows: usize,
        x_act: &[u8],
        act_stride: usize,
        t: usize,
        n: usize,
        scratch: &mut [f32],
    ) {
        let shape = (rows, act_stride, t, n);
        self.par_product(false, pool, ty, out, w, x_act, shape, scratch)
    }

    /// [`crate::Kernels::matmul_packed`] split across `pool` as [`Kernels::matmul_par`] splits
    /// `matmul` (the row chunks are multiples of [`crate::packed::PACK_ROWS`]), so bit-identical
    /// for any thread count.
    ///
    /// # Panics
    /// As [`crate::Kernels::matmul_packed`], or if `scratch` is too short.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul_par_packed(
        &self,
        pool: &ThreadPool,
        ty: crate::QuantType,
        out: &mut [f32],
        w: &[u8],
        rows: usize,
        x_act: &[u8],
        act_stride: usize,
        t: usize,
        n: usize,
        scratch: &mut [f32],
    ) {
        let shape = (rows, act_stride, t, n);
        self.par_product(true, pool, ty, out, w, x_act, shape, scratch)
    }

    /// Several matrix-vector products of one activation row `x_act` (`n` elements in the
    /// activation format every product's type shares) in a single pool job: the rows of all of them
    /// are split into work items as [`Kernels::matmul_par`] splits one, so each output is bitwise
    /// what `matmul_par` (or `matmul_par_packed`) gives, with one wake-up of the workers instead of
    /// one per matrix. At most [`MAX_GROUP`] products.
    ///
    /// `first` runs on the calling thread before it takes its rows, while the workers start on
    /// theirs: work to overlap with the products' weight stream (e.g. prefetching what is read after
    /// them), which would otherwise leave the workers waiting.
    ///
    /// # Panics
    /// As the single products, or if the group is larger than [`MAX_GROUP`].
    pub fn matvec_par_group(
        &self,
        pool: &ThreadPool,
        group: &mut [MatVec<'_>],
        x_act: &[u8],
        n: usize,
        first: &(dyn Fn() + Sync),
    ) {
        assert!(
            group.len() <= MAX_GROUP,
            "matvec_par_group: at most {MAX_GROUP} products"
        );
        let nt = pool.n_threads();
        let stride = x_act.len();
        if nt == 1 {
            first();
            for m in group.iter_mut() {
                self.product(
                    m.packed, m.ty, m.rows, m.out, m.w, m.rows, x_act, stride, 1, n,
                );
            }
            return;
        }
        // Per product: output base, rows per item, row bytes, first item, and what the kernel
        // needs; the closure below reads only this table, never `group`.
        #[derive(Clone, Copy)]
        struct Part<'w> {
            out: SharedMut<f32>,
            chunk_rows: usize,
            rb: usize,
            first: usize,
            ty: crate::QuantType,
            packed: bool,
            w: &'w [u8],
            rows: usize,
        }
        let mut parts = [None::<Part<'_>>; MAX_GROUP];
        let mut n_items = 0;
        for (i, m) in group.iter_mut().enumerate() {
            assert_eq!(m.out.len(), m.rows, "matvec_par_group: out must be (rows,)");
            let rb =
                m.ty.row_bytes(n)
                    .expect("matvec_par_group: n must be whole blocks");
            assert_eq!(
                m.w.len(),
                m.rows * rb,
                "matvec_par_group: w must be rows x row_bytes(n)"
            );
            // One token: small items, taken in runs ([`Segments::claim_run`]): each kernel call
            // streams a long run of rows, and the last runs are single items, so the threads
            // finish together.
            let chunk_rows = CHUNK_ROWS;
            parts[i] = Some(Part {
                out: SharedMut(m.out.as_mut_ptr()),
                chunk_rows,
                rb,
                first: n_items,
                ty: m.ty,
                packed: m.packed,
                w: m.w,
                rows: m.rows,
            });
            n_items += m.rows.div_ceil(chunk_rows);
        }
        let parts = &parts[..group.len()];
        let items = Segments::new(n_items, nt);
        pool.run(&|thread, _| {
            if thread == 0 {
                first();
            }
            let mut from = 0;
            while let Some(run) = items.claim_run(thread, &mut from) {
                let mut item = run.start;
                while item < run.end {
                    // The product this item belongs to: the last whose first item is <= item; the
                    // run's items in it are one call.
                    let Some(p) = parts.iter().rev().flatten().find(|p| p.first <= item) else {
                        unreachable!("item 0 belongs to the first product")
                    };
                    let last = run.end.min(p.first + p.rows.div_ceil(p.chunk_rows));
                    let (c, c_end) = (item - p.first, last - p.first);
                    item = last;
                    let r = c * p.chunk_rows..(c_end * p.chunk_rows).min(p.rows);
                    // SAFETY: `p.out` points to that product's `out`, exclusively borrowed (through
                    // `group`) for the whole `run` call, which returns only after every thread running
                    // this closure is done. Each item is taken once (atomic counters) and maps to one
                    // (product, chunk), so the ranges [r.start, r.end) of one product's runs of items
                    // are disjoint, and r.end <= rows = out.len() (asserted above).
                    let mine = unsafe {
                        core::slice::from_raw_parts_mut(p.out.get().add(r.start), r.len())
                    };
                    let w = &p.w[r.start * p.rb..r.end * p.rb];
                    self.product(
                        p.packed,
                        p.ty,
                        p.rows,
                        mine,
                        w,
                        r.len(),
                        x_act,
                        stride,
                        1,
                        n,
                    );
                }
            }
        });
    }

    /// [`crate::Kernels::quantize_batch`] with the rows (tokens) split across `pool`'s threads, in
    /// items of [`QUANTIZE_ROWS`] rows taken from an atomic counter. Each row is quantized on its
    /// own, and the rows that llama.cpp quantizes in groups of four stay the same rows (items start
    /// at multiples of four), so the bytes are the same for any thread count. One thread, or a batch
    /// of one item, runs on the caller alone.
    ///
    /// # Panics
    /// As [`crate::Kernels::quantize_batch`].
    #[allow(clippy::too_many_arguments)]
    pub fn quantize_batch_par(
        &self,
        pool: &ThreadPool,
        weight: crate::QuantType,
        rows: usize,
        x: &[f32],
        n: usize,
        act: &mut [u8],
        stride: usize,
    ) {
        let arb = weight
            .info()
            .vec_dot_type
            .row_bytes(n)
            .expect("quantize_batch: n whole blocks");
        assert!(
            n > 0 && x.len().is_multiple_of(n),
            "quantize_batch: whole rows"
        );
        let t = x.len() / n;
        let items = t.div_ceil(QUANTIZE_ROWS);
        if pool.n_threads() == 1 || items < 2 {
            return self.quantize_batch(weight, rows, x, n, act, stride);
        }
        assert!(
            arb <= stride && act.len() >= (t - 1) * stride + arb,
            "quantize_batch: act too short"
        );
        let next = AtomicUsize::new(0);
        let base = SharedMut(act.as_mut_ptr());
        pool.run(&|_, _| loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= items {
                break;
            }
            let (j0, j1) = (i * QUANTIZE_ROWS, ((i + 1) * QUANTIZE_ROWS).min(t));
            // SAFETY: `base` points to `act`, exclusively borrowed for the whole `run` call, which
            // returns only after every thread running this closure is done. Each item is taken
            // once, so the byte ranges [j0 * stride, (j1 - 1) * stride + arb) are disjoint
            // (arb <= stride), and they end within act.len() (asserted above).
            let dst = unsafe {
                core::slice::from_raw_parts_mut(
                    base.get().add(j0 * stride),
                    (j1 - j0 - 1) * stride + arb,
                )
            };
            self.quantize_batch(weight, rows, &x[j0 * n..j1 * n], n, dst, stride);
        });
    }

    /// One product of `rows` rows of a `whole_rows`-row matrix, `matmul_packed` when `packed`, else
    /// `matmul_part`.
    #[allow(clippy::too_many_arguments)]
    fn product(
        &self,
        packed: bool,
        ty: crate::QuantType,
        whole_rows: usize,
        out: &mut [f32],
        w: &[u8],
        rows: usize,
        x_act: &[u8],
        act_stride: usize,
        t: usize,
        n: usize,
    ) {
        if packed {
            self.matmul_packed(ty, out, w, rows, x_act, act_stride, t, n)
        } else {
            self.matmul_part(ty, whole_rows, out, w, rows, x_act, act_stride, t, n)
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn par_product(
        &self,
        packed: bool,
        pool: &ThreadPool,
        ty: crate::QuantType,
        out: &mut [f32],
        w: &[u8],
        x_act: &[u8],
        (rows, act_stride, t, n): (usize, usize, usize, usize),
        scratch: &mut [f32],
    ) {
        let nt = pool.n_threads();
        if nt == 1 || rows < 2 * CHUNK_ROWS {
            return self.product(packed, ty, rows, out, w, rows, x_act, act_stride, t, n);
        }
        assert_eq!(out.len(), t * rows, "matmul_par: out must be (t, rows)");
        let rb = ty.row_bytes(n).expect("matmul_par: n must be whole blocks");
        assert_eq!(
            w.len(),
            rows * rb,
            "matmul_par: w must be rows x row_bytes(n)"
        );
        // One token: the threads write their rows of `out` directly. A batch: each chunk's
        // (t, chunk rows) block goes to `scratch`, and the thread that computed it scatters it into
        // `out`'s rows while the block is still in its cache.
        let out_base = SharedMut(out.as_mut_ptr());
        let base = if t == 1 {
            out_base
        } else {
            assert!(scratch.len() >= t * rows, "matmul_par: scratch too short");
            SharedMut(scratch.as_mut_ptr())
        };
        // Each thread's items are contiguous rows ([`Segments`]). One token takes the smallest, in
        // runs of them, one kernel call per run ([`Segments::claim_run`]: long calls, and the threads
        // finish together); a batch about 8 per thread (fewer passes over its activations per weight
        // row), one call each.
        let chunk_rows = if t == 1 {
            CHUNK_ROWS
        } else {
            (rows / (8 * nt))
                .next_multiple_of(CHUNK_ROWS)
                .max(CHUNK_ROWS)
        };
        let n_chunks = rows.div_ceil(chunk_rows);
        let chunks = Segments::new(n_chunks, nt);
        // Chunk c covers rows c*CHUNK_ROWS.. ; its block in `target` is the (t, chunk rows) matrix
        // starting at t * first row (for t == 1, simply its rows of `out`).
        pool.run(&|thread, _| {
            let mut from = 0;
            // One token: runs of chunks, one kernel call each (its block is its rows of `out`).
            // A batch: chunk by chunk, as each has its own (t, chunk rows) block.
            let claim = |from: &mut usize| match t {
                1 => chunks.claim_run(thread, from),
                _ => chunks.claim(thread, from).map(|c| c..c + 1),
            };
            while let Some(cs) = claim(&mut from) {
                let r = cs.start * chunk_rows..(cs.end * chunk_rows).min(rows);
                let len = t * r.len();
                // SAFETY: `base` points to `out` (t == 1) or `scratch` (t > 1), exclusively borrowed
                // for the whole `run` call, which returns only after every thread running this
                // closure is done. Each chunk index is taken once (atomic counters), so the ranges
                // [t * r.start, t * r.end) are disjoint, and t * r.end <= t * rows, which is
                // out.len() (asserted above) or at most scratch.len() (asserted above).
                let mine =
                    unsafe { core::slice::from_raw_parts_mut(base.get().add(t * r.start), len) };
                self.product(
                    packed,
                    ty,
                    rows,
                    mine,
                    &w[r.start * rb..r.end * rb],
                    r.len(),
                    x_act,
                    act_stride,
                    t,
                    n,
                );
                if t > 1 {
                    for (j, src) in mine.chunks_exact(r.len()).enumerate() {
                        // SAFETY: `out_base` points to `out` (t * rows elements, asserted above),
                        // exclusively borrowed for the whole `run` call, and distinct from `base`
                        // (the scratch, which `mine` is part of) when t > 1. Chunk ranges `r` are
                        // disjoint (each chunk is taken once), so the ranges
                        // [j * rows + r.start, j * rows + r.end) written here are disjoint across
                        // chunks and threads, and end within t * rows.
                        let dst = unsafe {
                            core::slice::from_raw_parts_mut(
                                out_base.get().add(j * rows + r.start),
                                r.len(),
                            )
                        };
                        dst.copy_from_slice(src);
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn shared_work_is_done_exactly_once_per_job() {
        for n in [1, 2, 3, 5] {
            let pool = ThreadPool::new(n).unwrap();
            let items: Vec<AtomicUsize> = (0..257).map(|_| AtomicUsize::new(0)).collect();
            let caller_runs = AtomicUsize::new(0);
            for _ in 0..500 {
                let next = AtomicUsize::new(0);
                pool.run(&|i, nt| {
                    assert_eq!(nt, n);
                    if i == 0 {
                        caller_runs.fetch_add(1, Ordering::Relaxed);
                    }
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        if k >= items.len() {
                            break;
                        }
                        items[k].fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
            assert!(items.iter().all(|c| c.load(Ordering::Relaxed) == 500));
            assert_eq!(caller_runs.load(Ordering::Relaxed), 500);
        }
    }

    #[test]
    fn segments_deal_every_item_once_in_contiguous_runs() {
        for n_threads in [1, 2, 3, 7, 16, 17, 40] {
            for n in [0, 1, 2, 5, 9, 16, 33, 100] {
                // One thread alone (the others preempted) takes everything, its own segment first.
                let seg = Segments::new(n, n_threads);
                let mut from = 0;
                let mut got = Vec::new();
                while let Some(i) = seg.claim(0, &mut from) {
                    got.push(i);
                }
                assert_eq!(
                    got,
                    (0..n).collect::<Vec<_>>(),
                    "{n_threads} threads, {n} items"
                );
                // Every thread in turn, one claim each, as a fair interleaving: each item once, and
                // each thread's first claims are consecutive items of its own segment.
                let seg = Segments::new(n, n_threads);
                let mut from = vec![0; n_threads];
                let mut owner = vec![usize::MAX; n];
                let mut left = n;
                while left > 0 {
                    for (t, f) in from.iter_mut().enumerate() {
                        if let Some(i) = seg.claim(t, f) {
                            assert_eq!(owner[i], usize::MAX, "item {i} taken twice");
                            owner[i] = t;
                            left -= 1;
                        }
                    }
                }
                // (With fewer items than segments, a thread whose segment is empty helps at once.)
                let segs = n_threads.min(MAX_SEGMENTS);
                if n >= segs {
                    for t in 0..segs {
                        let start = t * n / segs;
                        assert_eq!(owner[start], t, "segment {t} starts with its own thread");
                    }
                }
            }
        }
    }

    #[test]
    fn segment_runs_deal_every_item_once_halving_the_own_segment() {
        for n_threads in [1, 2, 3, 7, 16, 17] {
            for n in [0, 1, 2, 5, 9, 16, 33, 100, 1536] {
                let segs = n_threads.min(MAX_SEGMENTS);
                let seg = Segments::new(n, n_threads);
                let mut from = vec![0; n_threads];
                let mut owner = vec![usize::MAX; n];
                let mut runs = vec![Vec::new(); n_threads];
                let mut left = n;
                // A fair interleaving, one claim per thread in turn.
                while left > 0 {
                    for (t, f) in from.iter_mut().enumerate() {
                        let mine = *f == 0;
                        if let Some(r) = seg.claim_run(t, f) {
                            assert!(!r.is_empty() && r.end <= n, "{r:?} of {n}");
                            if !mine || *f > 0 {
                                assert_eq!(r.len(), 1, "another segment's items go one by one");
                            }
                            for i in r.clone() {
                                assert_eq!(owner[i], usize::MAX, "item {i} taken twice");
                                owner[i] = t;
                            }
                            left -= r.len();
                            runs[t].push(r);
                        }
                    }
                }
                // Each thread's first run is the first half of its own segment (with fewer items
                // than segments, a thread whose segment is empty helps at once).
                if n >= segs {
                    for (t, r) in runs.iter().enumerate().take(segs) {
                        let (start, end) = (t * n / segs, (t + 1) * n / segs);
                        let half = start..start + (end - start).div_ceil(2);
                        assert_eq!(r[0], half, "{n_threads} threads, {n} items, thread {t}");
                    }
                }
            }
        }
    }

    #[test]
    fn workers_wake_after_parking() {
        // After a pause long enough to park, a job that waits for a worker's help still completes:
        // the caller's share blocks until another thread has joined, which requires the wake-up.
        let pool = ThreadPool::new(2).unwrap();
        for _ in 0..3 {
            std::thread::sleep(std::time::Duration::from_millis(30));
            let joined = AtomicUsize::new(0);
            pool.run(&|i, _| {
                joined.fetch_add(1, Ordering::SeqCst);
                if i == 0 {
                    while joined.load(Ordering::SeqCst) < 2 {
                        std::hint::spin_loop();
                    }
                }
            });
            assert_eq!(joined.load(Ordering::SeqCst), 2);
        }
    }

    #[test]
    fn a_worker_panic_reaches_the_caller_and_the_pool_survives() {
        let pool = ThreadPool::new(2).unwrap();
        let r = catch_unwind(AssertUnwindSafe(|| {
            pool.run(&|i, _| assert!(i != 0, "boom"))
        }));
        assert!(r.is_err());
        let hits = AtomicUsize::new(0);
        pool.run(&|_, _| {
            hits.fetch_add(1, Ordering::Relaxed);
        });
        assert!(hits.load(Ordering::Relaxed) >= 1);
    }

    #[test]
    fn for_each_chunk_covers_every_item_once_with_per_thread_slots() {
        for n in [1, 2, 3, 5] {
            let pool = ThreadPool::new(n).unwrap();
            for items in [0usize, 1, 2, 7, 100] {
                let mut out = vec![0u32; items * 3];
                let mut slots = vec![0usize; n];
                for _ in 0..50 {
                    pool.for_each_chunk_with(&mut out, 3, &mut slots, |i, c, slot| {
                        *slot += 1;
                        for (k, v) in c.iter_mut().enumerate() {
                            *v += (i * 3 + k) as u32 + 1;
                        }
                    });
                }
                let want: Vec<u32> = (0..items * 3).map(|v| 50 * (v as u32 + 1)).collect();
                assert_eq!(out, want, "threads={n} items={items}");
                assert_eq!(slots.iter().sum::<usize>(), 50 * items);
                let mut plain = vec![0u32; items * 3];
                pool.for_each_chunk(&mut plain, 3, |i, c| c.fill(i as u32));
                assert!(plain
                    .chunks(3)
                    .enumerate()
                    .all(|(i, c)| c.iter().all(|&v| v == i as u32)));
            }
        }
    }

    #[test]
    fn for_each_part_covers_every_part_once_and_leaves_the_gaps() {
        // Parts of 3, 3, 2 and 1 elements and two empty ones; the 7 elements after them stay 0.
        let bounds = [0, 3, 6, 8, 9, 9, 9];
        for n in [1, 2, 3, 5] {
            let pool = ThreadPool::new(n).unwrap();
            let mut out = vec![0u32; 16];
            let mut slots = vec![0usize; n];
            for _ in 0..50 {
                pool.for_each_part_with(&mut out, &bounds, &mut slots, |i, c, slot| {
                    *slot += 1;
                    assert_eq!(c.len(), bounds[i + 1] - bounds[i], "part {i}");
                    for v in c.iter_mut() {
                        *v += i as u32 + 1;
                    }
                });
            }
            let mut want = vec![0u32; 16];
            for i in 0..bounds.len() - 1 {
                want[bounds[i]..bounds[i + 1]].fill(50 * (i as u32 + 1));
            }
            assert_eq!(out, want, "threads={n}");
            assert_eq!(slots.iter().sum::<usize>(), 50 * (bounds.len() - 1));
        }
    }

    #[test]
    #[should_panic(expected = "for_each_part: bounds")]
    fn for_each_part_refuses_overlapping_parts() {
        let pool = ThreadPool::new(2).unwrap();
        let mut out = vec![0u8; 8];
        pool.for_each_part_with(&mut out, &[0, 4, 3, 8], &mut [(), ()], |_, _, _| ());
    }

    #[test]
    #[should_panic(expected = "for_each_part: bounds")]
    fn for_each_part_refuses_parts_past_the_end() {
        let pool = ThreadPool::new(2).unwrap();
        let mut out = vec![0u8; 8];
        pool.for_each_part_with(&mut out, &[0, 4, 9], &mut [(), ()], |_, _, _| ());
    }

    #[test]
    fn matmul_par_is_bit_identical_for_any_thread_count() {
        use crate::{Isa, Kernels, QuantType};
        let (rows, n) = (101, 96);
        let x: Vec<f32> = (0..n * 5)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0)
            .collect();
        let wf: Vec<f32> = (0..rows * n)
            .map(|i| ((i * 53 % 97) as f32 - 48.0) / 31.0)
            .collect();
        for ty in [QuantType::Q4_1, QuantType::Q8_0, QuantType::F16] {
            let mut w = vec![0u8; ty.row_bytes(n).unwrap() * rows];
            (ty.info().from_f32)(&wf, &mut w);
            let at = ty.info().vec_dot_type;
            let arb = at.row_bytes(n).unwrap();
            // Every path here, and the AVX-VNNI kernels with `vpdpbusd` emulated on AVX2 CPUs.
            let ks = Isa::ALL.into_iter().filter_map(Kernels::for_isa);
            for k in ks.chain(Kernels::avxvnni_emulated()) {
                let isa = k.isa();
                let mut act = vec![0u8; 5 * arb];
                for j in 0..5 {
                    k.quantize_activations(
                        at,
                        &x[j * n..(j + 1) * n],
                        &mut act[j * arb..(j + 1) * arb],
                    );
                }
                for t in [1, 5] {
                    let mut want = vec![0f32; t * rows];
                    k.matmul(ty, &mut want, &w, rows, &act, arb, t, n);
                    for threads in [1, 2, 3] {
                        let pool = ThreadPool::new(threads).unwrap();
                        let mut got = vec![f32::NAN; t * rows];
                        let mut scratch = vec![f32::NAN; t * rows];
                        k.matmul_par(&pool, ty, &mut got, &w, rows, &act, arb, t, n, &mut scratch);
                        let same = got
                            .iter()
                            .zip(&want)
                            .all(|(a, b)| a.to_bits() == b.to_bits());
                        assert!(same, "{ty:?} {isa:?} t={t} threads={threads}");
                    }
                }
            }
        }
    }

    /// Split across threads, a batch's activations are the same bytes as quantized on one thread,
    /// including the rows llama.cpp quantizes in groups of four (Q4_K, Q2_K on x86), a padded row
    /// stride, and batches that are not whole items or whole groups.
    #[test]
    fn quantize_batch_par_is_bit_identical_for_any_thread_count() {
        use crate::{Kernels, QuantType};
        let n = 256;
        let k = Kernels::best();
        for (ty, rows) in [
            (QuantType::Q8_0, 96),
            (QuantType::Q4_K, 16),
            (QuantType::Q2_K, 16),
            (QuantType::Q4_1, 101),
        ] {
            let arb = ty.info().vec_dot_type.row_bytes(n).unwrap();
            let stride = arb + 5;
            for t in [1, 3, 4, 7, 8, 9, 16, 17, 33] {
                let x: Vec<f32> = (0..t * n)
                    .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
                    .collect();
                let mut want = vec![0xa5u8; (t - 1) * stride + arb];
                k.quantize_batch(ty, rows, &x, n, &mut want, stride);
                for threads in [1, 2, 3] {
                    let pool = ThreadPool::new(threads).unwrap();
                    let mut got = vec![0xa5u8; want.len()];
                    k.quantize_batch_par(&pool, ty, rows, &x, n, &mut got, stride);
                    assert!(got == want, "{ty:?} t={t} threads={threads}");
                }
            }
        }
    }

    /// The read-ahead share starts where [`Segments`] starts the thread (within one chunk of rows),
    /// runs across the slices of a group in order, and stops at the cap and at the thread's `1 / n`
    /// of each group.
    #[test]
    #[cfg(feature = "std")]
    fn read_share_follows_the_segments_and_the_cap() {
        let (a, b) = ([0u8; 1000], [0u8; 500]);
        let none = (core::ptr::null(), 0);
        let hint = [(a.as_ptr(), a.len()), none, (b.as_ptr(), b.len()), none];
        let at = |p: *const u8, base: &[u8]| p as usize - base.as_ptr() as usize;
        // Thread 1 of 2: from byte 750, 750 bytes: the rest of `a`, all of `b`.
        let s = read_share(hint, 1, 1, 2, usize::MAX);
        assert_eq!((at(s[0].0, &a), s[0].1), (750, 250));
        assert_eq!(s[1].1, 0);
        assert_eq!((at(s[2].0, &b), s[2].1), (0, 500));
        // Capped at 100 bytes: inside `a`.
        let s = read_share(hint, 1, 1, 2, 100);
        assert_eq!((at(s[0].0, &a), s[0].1), (750, 100));
        assert_eq!(s[2].1, 0);
        // Thread 2 of 3: from byte 1000, 500 bytes: `b`.
        let s = read_share(hint, 1, 2, 3, usize::MAX);
        assert_eq!((s[0].1, s[1].1), (0, 0));
        assert_eq!((at(s[2].0, &b), s[2].1), (0, 500));
        // Two groups, `a` then `b`: thread 1 of 2 reads the second half of each.
        let s = read_share(hint, 0b101, 1, 2, usize::MAX);
        assert_eq!((at(s[0].0, &a), s[0].1), (500, 500));
        assert_eq!(s[1].1, 0);
        assert_eq!((at(s[2].0, &b), s[2].1), (250, 250));
        // The cap counts across groups: all of `a`'s half, then 100 bytes of `b`'s.
        let s = read_share(hint, 0b101, 1, 2, 600);
        assert_eq!((at(s[0].0, &a), s[0].1), (500, 500));
        assert_eq!((at(s[2].0, &b), s[2].1), (250, 100));
        // Thread 0 of 3: the first third of each.
        let s = read_share(hint, 0b101, 0, 3, usize::MAX);
        assert_eq!((at(s[0].0, &a), s[0].1), (0, 333));
        assert_eq!((at(s[2].0, &b), s[2].1), (0, 166));
        // Where the segments start each thread of a product of `rows` rows of `rb` bytes.
        for (rows, rb, n) in [
            (576usize, 612usize, 2usize),
            (1536, 612, 3),
            (49152, 612, 2),
        ] {
            let w = vec![0u8; rows * rb];
            let items = rows.div_ceil(CHUNK_ROWS);
            let segs = Segments::new(items, n);
            let hint = [(w.as_ptr(), w.len()), none, none, none];
            for t in 1..n {
                let start = segs.next[t].0.load(Ordering::Relaxed) * CHUNK_ROWS * rb;
                let s = read_share(hint, 1, t, n, usize::MAX);
                assert!(
                    at(s[0].0, &w).abs_diff(start) < CHUNK_ROWS * rb,
                    "{rows} {n} {t}"
                );
            }
        }
    }

    /// The ping-pong answers with two or three threads (worker 1 plays), not with one, and leaves
    /// the pool working.
    #[test]
    #[cfg(feature = "std")]
    fn round_trip_is_measured_and_the_pool_goes_on() {
        assert_eq!(ThreadPool::new(1).unwrap().round_trip_ns(), None);
        for threads in [2, 3] {
            let pool = ThreadPool::new(threads).unwrap();
            // Worker 1 may be asleep or preempted on a busy machine, or slowed by an emulator: then
            // `None`. Only the time both threads hold a core at once matters, so try until a few
            // answers or a deadline, not a fixed number of times (200 tries, ~40 ms, failed under
            // qemu on a loaded CI machine).
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            let (mut ns, mut tries) = (Vec::new(), 0u64);
            while ns.len() < 4 && std::time::Instant::now() < deadline {
                tries += 1;
                ns.extend(pool.round_trip_ns());
            }
            assert!(
                !ns.is_empty(),
                "{threads} threads: no answer in {tries} tries over 60 s"
            );
            assert!(ns.iter().all(|&t| t > 0.0 && t < 1e6), "{ns:?}");
            let mut out = vec![0usize; 64];
            pool.for_each_chunk(&mut out, 1, |i, o| o[0] = i);
            assert!(out.iter().enumerate().all(|(i, &o)| o == i));
        }
    }

    /// Jobs run as before with a read-ahead hint set, and `stop_reads` returns with no worker
    /// reading and the hint cleared.
    #[test]
    #[cfg(feature = "std")]
    fn reads_ahead_between_jobs_then_stops() {
        let buf = vec![1u8; 1 << 20];
        for threads in [2, 3] {
            let pool = ThreadPool::new(threads).unwrap();
            let halves: [&[u8]; 2] = [&buf[..1 << 19], &buf[1 << 19..]];
            // SAFETY: `buf` outlives the pool, and `stop_reads` is called below anyway.
            unsafe { pool.read_after_jobs(&[&halves, &halves[1..]]) };
            for round in 0..200usize {
                let mut out = vec![0usize; 64];
                pool.for_each_chunk(&mut out, 1, |i, o| o[0] = i + round);
                assert!(out.iter().enumerate().all(|(i, &o)| o == i + round));
            }
            pool.stop_reads();
            let s = pool.shared.as_deref().unwrap();
            assert_eq!(s.reading.load(Ordering::SeqCst), 0);
            assert!(s.reads.iter().all(|r| r.1.load(Ordering::SeqCst) == 0));
        }
    }
}
