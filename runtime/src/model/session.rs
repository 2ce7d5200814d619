//! A [`Session`]: one conversation's state (KV cache, position) and every buffer the forward pass
//! needs, all allocated when the session is created ([`Session::new`]) or carved out of a caller's
//! arena of exactly [`session_bytes`] bytes ([`Session::new_in_arena`]). Evaluating tokens allocates
//! nothing.
//!
//! The forward pass follows llama.cpp's `llm_build_llama` graph operation by operation, with the same
//! numerics where it costs nothing: activations are quantized to the weight type's `vec_dot_type`
//! before every matrix product (as ggml's CPU backend does), the KV cache holds f16 (llama.cpp's default
//! cache type), queries and attention probabilities are rounded to f16 before their dot products with
//! K and V (ggml converts `src1` to the f16 `vec_dot_type` of the cache), RMSNorm sums squares in f64,
//! and RoPE angles are built by repeated multiplication as in `ggml_rope_cache_init`.

use super::ops::{llama_n_kv, rms_norm, rope_cache};
use super::{Model, Weights};
use crate::prelude::*;
use crate::{Error, Result};
use bytemuck::Pod;
use core::ops::{Deref, DerefMut};
use half::f16;
#[cfg(not(feature = "std"))]
use ingot_kernels::math::FloatExt;
use ingot_kernels::pool::{MatVec, MAX_READ_SLICES};
use ingot_kernels::{Kernels, ThreadPool};

/// How a session is sized. Every buffer is planned from these numbers at creation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionParams {
    /// S: tokens the KV cache holds (prompt plus generated).
    pub n_ctx: usize,
    /// Most tokens evaluated in one batch; longer inputs are split.
    pub n_batch: usize,
    /// Threads that split every matrix product by rows, attention by (token, head) and the
    /// per-token work of a batch by token (the caller's thread included). Results do not depend
    /// on it.
    pub n_threads: usize,
    /// Element type of the KV cache.
    pub kv_type: KvType,
}

impl Default for SessionParams {
    fn default() -> Self {
        SessionParams {
            n_ctx: 2048,
            n_batch: 64,
            n_threads: 1,
            kv_type: KvType::F16,
        }
    }
}

/// Element type of the KV cache, as llama.cpp's `--cache-type-k/v`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum KvType {
    /// llama.cpp's default: keys and values rounded to f16, queries and attention probabilities
    /// rounded to f16 before their dot products. Half the memory of `F32`; the logits of a model
    /// agree with llama.cpp's bit for bit.
    #[default]
    F16,
    /// Nothing rounded: what a trainer's f32 forward pass computes (to float summation order).
    /// Twice the cache memory and slower attention; for checking a model against its training
    /// framework.
    F32,
}

impl KvType {
    /// Bytes of one cached element.
    pub fn size(self) -> usize {
        match self {
            KvType::F16 => 2,
            KvType::F32 => 4,
        }
    }

    /// The name used on the command line and in messages (`f16`, `f32`).
    pub fn name(self) -> &'static str {
        match self {
            KvType::F16 => "f16",
            KvType::F32 => "f32",
        }
    }
}

impl core::fmt::Display for KvType {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

impl core::str::FromStr for KvType {
    type Err = Error;

    /// `f16` or `f32` (case-insensitive).
    fn from_str(s: &str) -> Result<KvType> {
        match s.to_ascii_lowercase().as_str() {
            "f16" => Ok(KvType::F16),
            "f32" => Ok(KvType::F32),
            _ => Err(Error::Request {
                what: format!("unknown KV cache type {s:?} (expected f16 or f32)"),
            }),
        }
    }
}

/// One session buffer: owned by the session ([`Session::new`]) or a piece of the caller's arena
/// ([`Session::new_in_arena`]). Either way the forward pass sees a slice.
#[derive(Debug)]
enum Buf<'m, T> {
    Heap(Vec<T>),
    Arena(&'m mut [T]),
    /// An anonymous mapping of whole `T`s (page-aligned), for the KV cache: see
    /// [`Carver::take_mapped`].
    #[cfg(all(feature = "std", target_os = "linux"))]
    Map(memmap2::MmapMut, core::marker::PhantomData<T>),
}

impl<T: Pod> Deref for Buf<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        match self {
            Buf::Heap(v) => v,
            Buf::Arena(s) => s,
            // A page-aligned mapping of a whole number of `T`s (see `take_mapped`).
            #[cfg(all(feature = "std", target_os = "linux"))]
            Buf::Map(m, _) => bytemuck::cast_slice(&m[..]),
        }
    }
}

impl<T: Pod> DerefMut for Buf<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        match self {
            Buf::Heap(v) => v,
            Buf::Arena(s) => s,
            #[cfg(all(feature = "std", target_os = "linux"))]
            Buf::Map(m, _) => bytemuck::cast_slice_mut(&mut m[..]),
        }
    }
}

/// Hands out zeroed buffers, from the heap or from the front of an arena.
struct Carver<'m> {
    /// `None`: allocate on the heap. `Some(rest)`: the part of the arena not handed out yet.
    arena: Option<&'m mut [u8]>,
}

impl<'m> Carver<'m> {
    /// A zeroed buffer of `n` elements. In an arena, the next `n * size_of::<T>()` bytes, which must be
    /// aligned for `T`: [`Session::new_in_arena`] checks the arena's size and alignment up front and
    /// takes the buffers in order of decreasing alignment (f32, f16, u8), so this holds.
    fn take<T: Pod>(&mut self, n: usize) -> Result<Buf<'m, T>> {
        let Some(rest) = self.arena.take() else {
            return Ok(Buf::Heap(vec![T::zeroed(); n]));
        };
        let bytes = n * size_of::<T>();
        if rest.len() < bytes {
            return Err(Error::Request {
                what: "session arena exhausted (internal: plan and layout disagree)".into(),
            });
        }
        let (head, tail) = rest.split_at_mut(bytes);
        self.arena = Some(tail);
        let s: &mut [T] = bytemuck::try_cast_slice_mut(head).map_err(|e| Error::Request {
            what: format!("session arena is misaligned for its buffers: {e}"),
        })?;
        s.fill(T::zeroed());
        Ok(Buf::Arena(s))
    }

    /// [`Carver::take`] for the KV cache: outside an arena, with `std` on Linux, an anonymous
    /// mapping advised for transparent huge pages (zeroed by the OS), as the repacked weights are.
    /// Attention streams the cache (at long contexts, more bytes per token than the weights), and
    /// with 4 KiB pages the hardware prefetchers stop at every page boundary and the TLB misses on
    /// every page: one layer's attention at 2048 cached positions read from memory ran 20-25%
    /// faster on huge pages.
    fn take_mapped<T: Pod>(&mut self, n: usize) -> Result<Buf<'m, T>> {
        #[cfg(all(feature = "std", target_os = "linux"))]
        if self.arena.is_none() && n > 0 {
            if let Ok(m) = memmap2::MmapMut::map_anon(n * size_of::<T>()) {
                let _ = m.advise(memmap2::Advice::HugePage); // a hint: fine if refused
                return Ok(Buf::Map(m, core::marker::PhantomData));
            }
        }
        self.take(n)
    }
}

/// Per-layer key and value cache of one element type. Keys are laid out `[L][Hkv][S][D]`: the keys
/// of one key/value head, which one attention work item reads, are one contiguous stream (llama.cpp
/// interleaves the heads, `[L][S][Hkv*D]`, so that such a stream reads `D` of every `Hkv*D`
/// elements). Values are transposed, `[L][Hkv*D][R]`, as llama.cpp stores them without flash
/// attention, so that each output element of attention is one contiguous dot product over the
/// cached positions (and one head's values are again contiguous). Their row length `R` (the
/// session's `v_row`) grows with the context instead of being `S` from the start: see
/// [`Session::reserve_values`].
#[derive(Debug)]
enum KvCache<'m> {
    F16 { k: Buf<'m, f16>, vt: Buf<'m, f16> },
    F32 { k: Buf<'m, f32>, vt: Buf<'m, f32> },
}

/// Positions a value row holds when a session starts (fewer if `n_ctx` is smaller): 256 is
/// llama.cpp's KV padding, and one key/value head's rows of 64 elements are then 32 KiB of f16.
const VALUE_ROW_START: usize = 256;

/// The value row length for at least `n <= n_ctx` positions: [`VALUE_ROW_START`] doubled as often
/// as needed, or `n_ctx` once that is at most twice as long (the next doubling would be cut to
/// `n_ctx` anyway; taking it now spares a move of the whole cache for the last few positions, e.g.
/// a 2048-token prompt in a context of 2113).
fn value_row_len(n: usize, n_ctx: usize) -> usize {
    let mut r = VALUE_ROW_START;
    while r < n {
        r *= 2;
    }
    if 2 * r > n_ctx {
        n_ctx
    } else {
        r
    }
}

/// Spreads `rows` rows of `old` elements, the first `used` of each valid, to rows of `new >= old`
/// elements in place (`v` holds `rows * new`). From the last row down, so that no row overwrites
/// one not yet moved: row `r` lands at `r * new`, at or past the end of every earlier row's source.
fn widen_rows<T: Copy>(v: &mut [T], rows: usize, old: usize, new: usize, used: usize) {
    debug_assert!(used <= old && old <= new && rows * new <= v.len());
    for r in (1..rows).rev() {
        v.copy_within(r * old..r * old + used, r * new);
    }
}

/// Scratch buffers for a batch of up to `n_batch` tokens (T below).
#[derive(Debug)]
struct Scratch<'m> {
    x: Buf<'m, f32>,                  // (T, C) residual stream
    xb: Buf<'m, f32>,                 // (T, C) normalized input of a sub-layer
    q: Buf<'m, f32>,                  // (T, H*D)
    k: Buf<'m, f32>,                  // (T, Hkv*D)
    v: Buf<'m, f32>,                  // (T, Hkv*D)
    att_out: Buf<'m, f32>,            // (T, H*D)
    proj: Buf<'m, f32>,               // (T, C) output of wo / w_down
    hb: Buf<'m, f32>,                 // (T, F) gate, then silu(gate) * up
    hb2: Buf<'m, f32>,                // (T, F) up
    attn: PerThread<AttnScratch<'m>>, // one per pool thread
    rope: Buf<'m, f32>,               // (n_rot,) cos/sin pairs for one position
    act: Buf<'m, u8>, // (T, bytes of one quantized activation row of the widest input)
    logits: Buf<'m, f32>, // (T, V) or (1, V)
    par: Buf<'m, f32>, // (T, max(C, F, H*D)) per-thread blocks of a threaded batched product
    emb: Buf<'m, u8>, // one row of token_embd's bytes (Model::embedding_row)
}

/// One value per pool thread: inline for one thread, so that a single-threaded session in an arena
/// allocates nothing when it is created.
#[derive(Debug)]
enum PerThread<T> {
    One([T; 1]),
    Many(Vec<T>),
}

impl<T> PerThread<T> {
    fn try_new(n: usize, mut f: impl FnMut() -> Result<T>) -> Result<PerThread<T>> {
        if n == 1 {
            return Ok(PerThread::One([f()?]));
        }
        (0..n)
            .map(|_| f())
            .collect::<Result<_>>()
            .map(PerThread::Many)
    }

    fn try_map<U>(self, mut f: impl FnMut(T) -> Result<U>) -> Result<PerThread<U>> {
        match self {
            PerThread::One([x]) => Ok(PerThread::One([f(x)?])),
            PerThread::Many(v) => v
                .into_iter()
                .map(f)
                .collect::<Result<_>>()
                .map(PerThread::Many),
        }
    }
}

impl<T> Deref for PerThread<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        match self {
            PerThread::One(a) => a,
            PerThread::Many(v) => v,
        }
    }
}

impl<T> DerefMut for PerThread<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        match self {
            PerThread::One(a) => a,
            PerThread::Many(v) => v,
        }
    }
}

/// One thread's scratch for attention heads: room for the `G` heads of one work item
/// ([`heads_per_item`]).
#[derive(Debug)]
struct AttnScratch<'m> {
    scores: Buf<'m, f32>, // (G*S,) attention scores
    q16: Buf<'m, f16>,    // (G*D,) query heads in f16 (empty for an f32 cache)
    p16: Buf<'m, f16>,    // (G*S,) attention probabilities in f16 (empty for an f32 cache)
}

/// Query heads that one attention work item takes together (per token, decoding or batched): the
/// largest divisor of the grouped-query group size (query heads per key/value head) up to 4, so that
/// the group's heads read each cached key and value once ([`Kernels::attention_group_ggml`]). The f32
/// cache takes one head per item.
fn heads_per_item(cfg: &super::Config) -> usize {
    let group = cfg.n_head / cfg.n_head_kv.max(1);
    (1..=4.min(group))
        .rev()
        .find(|g| group.is_multiple_of(*g))
        .unwrap_or(1)
}

/// Where a one-token step on two threads computes each layer's attention: set by
/// [`Session::set_attention_place`], else from the environment variable `INGOT_ATTENTION` (`auto`,
/// `shared` or `caller`; `auto` when unset). Results are the same bits in every place.
///
/// Attention is compute-bound (its keys and values come from cache, fetched during the q/k/v
/// products), so the memory idles while both threads compute it. On the caller alone, the worker
/// instead reads its share of the gate/up weights meanwhile ([`ThreadPool::read_after_jobs`]), and
/// that product starts warm; the caller then runs the o-projection alone too, with no meeting of
/// the threads between attention and it, while the worker goes on reading. That
/// pays where a thread's memory stream, not the shared bandwidth, is the limit: while the host puts
/// the two vCPUs on cores that do not share a last-level cache. Measured (BENCHMARKS.md, alternated
/// pairs tagged by placement, decode): apart Q8_0 +5.0%, Q4_1 +4.0%; together Q8_0 +0.4%, Q4_1
/// -1.6%; the o-projection on the caller too, apart: Q4_1 +3.1%, Q8_0 +2.8%. So by default the
/// session measures the threads' distance every [`PLACE_EVERY`] one-token steps
/// ([`ThreadPool::round_trip_ns`]) and puts attention (and the o-projection) on the caller while
/// they are apart. More threads keep sharing attention: one thread's attention would outlast
/// what the others can read (unmeasured: this machine has two vCPUs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AttentionPlace {
    /// The threads share the heads (`shared`).
    Shared,
    /// The calling thread computes them all (`caller`).
    Caller,
    /// The caller while the threads are apart, else shared (`auto`, the default).
    #[default]
    Auto,
}

impl AttentionPlace {
    /// From `INGOT_ATTENTION` (`auto` when unset); another value is [`Error::Request`].
    pub fn from_env() -> Result<AttentionPlace> {
        #[cfg(feature = "std")]
        if let Some(v) = std::env::var_os("INGOT_ATTENTION") {
            return match v.to_str() {
                Some("auto" | "") => Ok(AttentionPlace::Auto),
                Some("shared") => Ok(AttentionPlace::Shared),
                Some("caller") => Ok(AttentionPlace::Caller),
                _ => Err(Error::Request {
                    what: format!("INGOT_ATTENTION={v:?}: expected auto, shared or caller"),
                }),
            };
        }
        Ok(AttentionPlace::Auto)
    }
}

/// One-token steps between two measurements of the threads' distance ([`AttentionPlace::Auto`]):
/// 16 round trips (1-6 µs) every 8 steps of 3-5 ms; the host moves the vCPUs every few seconds.
const PLACE_EVERY: u32 = 8;

/// Round trip ([`ThreadPool::round_trip_ns`]) above which two threads count as apart: this VM reads
/// 35-110 ns together and 250-550 ns apart; cores sharing a last-level cache answer within ~120 ns on
/// current x86, cores that do not take 150 ns and more.
pub const THREADS_APART_NS: f64 = 180.0;

/// Whether threads whose round trip is `round_trip_ns` ([`Session::thread_round_trip_ns`]) run on
/// cores that share no last-level cache, by the threshold [`AttentionPlace::Auto`] uses.
pub fn threads_apart(round_trip_ns: f64) -> bool {
    round_trip_ns > THREADS_APART_NS
}

/// The attention work items of one layer: `gh` query heads sharing a key/value head
/// ([`heads_per_item`]) per item and token, except that one token whose groups of `gh` do not
/// share evenly among the threads has its last `groups % threads` groups cut into up to
/// `threads` items each (9 heads in groups of 3 on two threads: 3 + 3 + 2 + 1 heads, so each
/// thread takes 4 or 5 heads, not 3 or 6). A cut group's keys and values are read by several
/// threads; each head's result is the same whichever item computes it.
#[derive(Clone, Copy, Debug)]
struct AttnItems {
    n_head: usize,
    gh: usize,
    t_len: usize,
    /// Whole groups of the token that go first, and how many items each later group is cut into
    /// (1 when nothing is cut).
    whole: usize,
    cut: usize,
}

impl AttnItems {
    /// Most items of one token whose groups are cut (the bounds of more would not fit the
    /// stack table; with that many heads, whole groups balance well enough).
    const MAX_ITEMS: usize = 64;

    fn new(n_head: usize, gh: usize, t_len: usize, threads: usize) -> AttnItems {
        let groups = n_head / gh;
        let (whole, cut) = (groups - groups % threads, threads.min(gh));
        let fits = whole + (groups - whole) * cut <= Self::MAX_ITEMS;
        let split = t_len == 1 && threads > 1 && cut > 1 && whole < groups && fits;
        AttnItems {
            n_head,
            gh,
            t_len,
            whole: if split { whole } else { groups },
            cut: if split { cut } else { 1 },
        }
    }

    fn len(&self) -> usize {
        let groups = self.n_head / self.gh;
        self.t_len * (self.whole + (groups - self.whole) * self.cut)
    }

    /// Item `i` as (token, first head, heads).
    fn item(&self, i: usize) -> (usize, usize, usize) {
        if self.cut == 1 {
            let per_token = self.n_head / self.gh;
            return (i / per_token, (i % per_token) * self.gh, self.gh);
        }
        // One token.
        if i < self.whole {
            return (0, i * self.gh, self.gh);
        }
        let (g, k) = (
            self.whole + (i - self.whole) / self.cut,
            (i - self.whole) % self.cut,
        );
        // The longer parts first: 3 heads in two items are 2 + 1.
        let (lo, hi) = (
            (k * self.gh).div_ceil(self.cut),
            ((k + 1) * self.gh).div_ceil(self.cut),
        );
        (0, g * self.gh + lo, hi - lo)
    }

    /// When groups are cut: the items' bounds in one token's attention output (heads of `d`
    /// elements), for [`ThreadPool::for_each_part_with`], written into `table`.
    fn cut_bounds<'t>(
        &self,
        d: usize,
        table: &'t mut [usize; Self::MAX_ITEMS + 1],
    ) -> Option<&'t [usize]> {
        if self.cut == 1 {
            return None;
        }
        let n = self.len();
        table[0] = 0;
        for i in 0..n {
            let (_, h0, nh) = self.item(i);
            table[i + 1] = (h0 + nh) * d;
        }
        Some(&table[..=n])
    }
}

/// Alignment [`Session::new_in_arena`] requires of the arena's first byte (that of `f32`, the most
/// aligned buffer type); the kernels use unaligned loads, so nothing stricter is needed.
pub const SESSION_ARENA_ALIGN: usize = align_of::<f32>();

/// Bytes a C ABI arena reserves in front of the buffers for the session value itself (the
/// `ingot_session` handle: a [`Session`] and a few bytes of the ABI's own state, which capi checks
/// at compile time to fit), placed at the first address inside it aligned for the handle: the arena
/// itself need only be aligned to [`SESSION_ARENA_ALIGN`]. `ingot_session_arena_size` and
/// `ingot plan` count it on top of [`session_bytes`]. A multiple of the session's alignment, so the
/// buffers after it keep the arena's alignment.
pub const SESSION_HANDLE_BYTES: usize =
    (size_of::<Session<'static, 'static>>() + 16 + align_of::<Session<'static, 'static>>())
        .next_multiple_of(align_of::<Session<'static, 'static>>());

/// Bytes of the KV cache plus scratch of a session with `params` for `model`, with `n_batch` clamped
/// to `n_ctx` as [`Session::new`] does: exactly the arena [`Session::new_in_arena`] needs, and what
/// [`Session::new`] allocates besides the thread pool's bookkeeping (thread handles, a few hundred
/// bytes); of that, the KV cache ([`kv_cache_bytes`]) is an anonymous mapping rather than heap
/// memory on Linux. Saturates instead of overflowing for sizes `Session::new` would refuse.
pub fn session_bytes(model: &Model<'_>, params: SessionParams) -> usize {
    let cfg = &model.config;
    let t = params.n_batch.min(params.n_ctx);
    let n_threads = params.n_threads.max(1);
    let g = heads_per_item(cfg);
    let (s, d) = (params.n_ctx.saturating_mul(g), cfg.head_dim * g);
    let f32s = [
        t.saturating_mul(3 * cfg.n_embd + 2 * cfg.q_dim() + 2 * cfg.kv_dim() + 2 * cfg.n_ff),
        n_threads.saturating_mul(s),
        cfg.n_rot,
        t.saturating_mul(cfg.n_vocab),
        t.saturating_mul(cfg.n_embd.max(cfg.n_ff).max(cfg.q_dim())),
    ];
    // Per-thread f16 copies of a query head and of the probabilities: only for an f16 cache.
    let f16_scratch = match params.kv_type {
        KvType::F16 => n_threads.saturating_mul(d.saturating_add(s)),
        KvType::F32 => 0,
    };
    let f32s = f32s.iter().fold(0usize, |a, &b| a.saturating_add(b));
    f32s.saturating_mul(4)
        .saturating_add(kv_cache_bytes(model, params))
        .saturating_add(f16_scratch.saturating_mul(2))
        .saturating_add(t.saturating_mul(act_row_bytes(&model.weights)))
        .saturating_add(model.weights.token_embd.row_bytes())
}

/// Bytes of the KV cache alone (keys and values of every layer at every position, of
/// `params.kv_type`): the part of [`session_bytes`] that grows with `n_ctx`; the rest is scratch.
pub fn kv_cache_bytes(model: &Model<'_>, params: SessionParams) -> usize {
    let cfg = &model.config;
    (2 * params.kv_type.size())
        .saturating_mul(cfg.n_layer)
        .saturating_mul(params.n_ctx)
        .saturating_mul(cfg.kv_dim())
}

/// Largest quantized activation row any matrix product of the model needs.
fn act_row_bytes(w: &Weights<'_>) -> usize {
    let mut m = w
        .output
        .ty
        .info()
        .vec_dot_type
        .row_bytes(w.output.cols)
        .unwrap_or(0);
    for l in &w.layers {
        for mat in [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down] {
            let vt = mat.ty.info().vec_dot_type;
            m = m.max(vt.row_bytes(mat.cols).unwrap_or(0));
        }
    }
    m
}

/// Checks `params` and returns them with `n_batch` clamped to `n_ctx`.
fn checked_params(model: &Model<'_>, params: SessionParams) -> Result<SessionParams> {
    if params.n_ctx == 0 || params.n_batch == 0 {
        return Err(Error::Request {
            what: "context and batch sizes must be at least 1".into(),
        });
    }
    if params.n_ctx > 1 << 24 || params.n_batch > 1 << 16 {
        return Err(Error::Request {
            what: format!(
                "context {} / batch {} too large",
                params.n_ctx, params.n_batch
            ),
        });
    }
    if params.n_threads == 0 || params.n_threads > 256 {
        return Err(Error::Request {
            what: format!("thread count {} must be in 1..=256", params.n_threads),
        });
    }
    let cfg = &model.config;
    cfg.n_layer
        .checked_mul(params.n_ctx)
        .and_then(|n| n.checked_mul(cfg.kv_dim()))
        .and_then(|n| n.checked_mul(2 * params.kv_type.size()))
        .ok_or_else(|| Error::Request {
            what: "KV cache size overflows".into(),
        })?;
    Ok(SessionParams {
        n_batch: params.n_batch.min(params.n_ctx),
        ..params
    })
}

/// The state of one sequence being evaluated by a model.
///
/// `'m` bounds both the borrow of the model and, for [`Session::new_in_arena`], of the arena.
#[derive(Debug)]
pub struct Session<'m, 'a> {
    model: &'m Model<'a>,
    params: SessionParams,
    /// Tokens already in the KV cache.
    pos: usize,
    kv: KvCache<'m>,
    /// Positions a row of the transposed value cache holds, `<= n_ctx`: the values of layer `l`,
    /// element `i` (of `Hkv*D`) and position `j` are at `(l * Hkv*D + i) * v_row + j`.
    v_row: usize,
    s: Scratch<'m>,
    act_stride: usize,
    kernels: Kernels,
    pool: ThreadPool,
    /// The calling thread alone, for the products a step runs there ([`AttentionPlace`]).
    alone: ThreadPool,
    attn_place: AttentionPlace,
    /// Whether the last measurement found the two threads apart ([`AttentionPlace::Auto`]).
    apart: bool,
    /// One-token steps taken, for [`PLACE_EVERY`].
    steps: u32,
}

impl<'m, 'a> Session<'m, 'a> {
    /// Allocates a session for `model`. Errors if the sizes are zero or the buffers would not fit in memory.
    pub fn new(model: &'m Model<'a>, params: SessionParams) -> Result<Session<'m, 'a>> {
        Self::build(model, params, Carver { arena: None })
    }

    /// A session whose KV cache and scratch are carved out of `arena`, which must hold at least
    /// [`session_bytes`]`(model, params)` bytes and start at a multiple of [`SESSION_ARENA_ALIGN`];
    /// bytes past that size are left alone. Evaluating tokens then touches no other memory than the
    /// arena, the model and the session value itself. With one thread, creating it allocates
    /// nothing; with more, the thread pool (its threads, their shared state) and a table of
    /// `n_threads` per-thread slices are on the heap.
    /// A smaller or misaligned arena is [`Error::Request`] naming both sizes.
    pub fn new_in_arena(
        model: &'m Model<'a>,
        params: SessionParams,
        arena: &'m mut [u8],
    ) -> Result<Session<'m, 'a>> {
        let p = checked_params(model, params)?;
        let need = session_bytes(model, p);
        if arena.len() < need {
            return Err(Error::Request {
                what: format!(
                    "session arena of {} bytes is too small: n_ctx {}, n_batch {}, n_threads {} need {need} bytes",
                    arena.len(),
                    p.n_ctx,
                    p.n_batch,
                    p.n_threads
                ),
            });
        }
        if !(arena.as_ptr() as usize).is_multiple_of(SESSION_ARENA_ALIGN) {
            return Err(Error::Request {
                what: format!(
                    "session arena at {:p} is not aligned to {SESSION_ARENA_ALIGN} bytes",
                    arena.as_ptr()
                ),
            });
        }
        Self::build(
            model,
            p,
            Carver {
                arena: Some(&mut arena[..need]),
            },
        )
    }

    /// The arena [`Session::new_in_arena`] needs: [`session_bytes`], after checking `params` as
    /// [`Session::new`] does.
    pub fn arena_bytes(model: &Model<'_>, params: SessionParams) -> Result<usize> {
        Ok(session_bytes(model, checked_params(model, params)?))
    }

    /// Plans and obtains every buffer; the order of `take`s (f32s, then f16s, then bytes, so that
    /// each buffer stays aligned in an arena) is the arena layout, and together they are exactly
    /// [`session_bytes`].
    fn build(
        model: &'m Model<'a>,
        params: SessionParams,
        mut mem: Carver<'m>,
    ) -> Result<Session<'m, 'a>> {
        let params = checked_params(model, params)?;
        let cfg = &model.config;
        let t = params.n_batch;
        let kv_len = cfg.n_layer * params.n_ctx * cfg.kv_dim();
        let act_stride = act_row_bytes(&model.weights);
        let x = mem.take(t * cfg.n_embd)?;
        let xb = mem.take(t * cfg.n_embd)?;
        let q = mem.take(t * cfg.q_dim())?;
        let k = mem.take(t * cfg.kv_dim())?;
        let v = mem.take(t * cfg.kv_dim())?;
        let att_out = mem.take(t * cfg.q_dim())?;
        let proj = mem.take(t * cfg.n_embd)?;
        let hb = mem.take(t * cfg.n_ff)?;
        let hb2 = mem.take(t * cfg.n_ff)?;
        let rope = mem.take(cfg.n_rot)?;
        let logits = mem.take(t * cfg.n_vocab)?;
        let par = mem.take(t * cfg.n_embd.max(cfg.n_ff).max(cfg.q_dim()))?;
        let g = heads_per_item(cfg);
        let scores = PerThread::try_new(params.n_threads, || mem.take::<f32>(g * params.n_ctx))?;
        let (kv, q16_len, p16_len) = match params.kv_type {
            KvType::F32 => {
                let k = mem.take_mapped(kv_len)?;
                let vt = mem.take_mapped(kv_len)?;
                (KvCache::F32 { k, vt }, 0, 0)
            }
            KvType::F16 => {
                let k = mem.take_mapped(kv_len)?;
                let vt = mem.take_mapped(kv_len)?;
                (KvCache::F16 { k, vt }, g * cfg.head_dim, g * params.n_ctx)
            }
        };
        let attn = scores.try_map(|scores| {
            Ok(AttnScratch {
                scores,
                q16: mem.take(q16_len)?,
                p16: mem.take(p16_len)?,
            })
        })?;
        let act = mem.take(t * act_stride)?;
        let emb = mem.take(model.weights.token_embd.row_bytes())?;
        let s = Scratch {
            x,
            xb,
            q,
            k,
            v,
            att_out,
            proj,
            hb,
            hb2,
            attn,
            rope,
            act,
            logits,
            par,
            emb,
        };
        let pool = ThreadPool::new(params.n_threads).map_err(|e| Error::Request {
            what: format!("cannot start {} threads: {e}", params.n_threads),
        })?;
        // (Read only with threads: with one, creating a session allocates nothing.)
        let attn_place = if params.n_threads > 1 {
            AttentionPlace::from_env()?
        } else {
            AttentionPlace::default()
        };
        let kernels = Kernels::best();
        Ok(Session {
            model,
            params,
            pos: 0,
            kv,
            v_row: value_row_len(1, params.n_ctx),
            s,
            act_stride,
            kernels,
            pool,
            alone: ThreadPool::caller_only(),
            attn_place,
            apart: false,
            steps: 0,
        })
    }

    /// Where one-token steps on two threads compute attention from now on ([`AttentionPlace`]).
    pub fn set_attention_place(&mut self, place: AttentionPlace) {
        self.attn_place = place;
        self.apart = false;
        self.steps = 0;
    }

    /// Where one-token steps on two threads compute attention.
    pub fn attention_place(&self) -> AttentionPlace {
        self.attn_place
    }

    /// How far apart the OS has put this session's threads: a cache line's round trip between the
    /// calling thread and the first worker, in nanoseconds ([`ThreadPool::round_trip_ns`], 1-6 µs
    /// to measure; allocates nothing). `None` with one thread, or when the worker does not answer
    /// within 200 µs. [`threads_apart`] reads it as [`AttentionPlace::Auto`] does.
    pub fn thread_round_trip_ns(&self) -> Option<f64> {
        self.pool.round_trip_ns()
    }

    /// The model this session runs.
    pub fn model(&self) -> &'m Model<'a> {
        self.model
    }

    /// Tokens in the KV cache.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// The kernel path (ISA) this session runs.
    pub fn kernels(&self) -> Kernels {
        self.kernels
    }

    /// The sizes this session was created with (`n_batch` clamped to `n_ctx`).
    pub fn params(&self) -> SessionParams {
        self.params
    }

    /// The logits (V,) of the last token evaluated by [`Session::prefill`] or [`Session::decode`]
    /// (what they returned); zeros before the first evaluation.
    pub fn logits(&self) -> &[f32] {
        &self.s.logits[..self.model.config.n_vocab]
    }

    /// Forgets all tokens (the buffers are kept).
    pub fn reset(&mut self) {
        self.pos = 0;
        // Nothing cached to move: the value rows start short again.
        self.v_row = value_row_len(1, self.params.n_ctx);
    }

    /// Drops cached tokens after the first `n`, so evaluation continues from position `n`.
    pub fn truncate(&mut self, n: usize) {
        self.pos = self.pos.min(n);
    }

    /// Evaluates `tokens` after the cached ones and returns the logits of the last one (V,).
    pub fn prefill(&mut self, tokens: &[u32]) -> Result<&[f32]> {
        self.check(tokens)?;
        if tokens.is_empty() {
            return Err(Error::Request {
                what: "cannot evaluate an empty prompt".into(),
            });
        }
        // llama.cpp evaluates a prompt of two or more tokens as one batch, whose attention
        // products take another summation order (tinyBLAS) than single-token decoding does.
        let batched = tokens.len() > 1;
        self.reserve_values(self.pos + tokens.len());
        for chunk in tokens.chunks(self.params.n_batch) {
            self.forward(chunk, false, batched);
        }
        Ok(&self.s.logits[..self.model.config.n_vocab])
    }

    /// Evaluates one token and returns its logits (V,).
    pub fn decode(&mut self, token: u32) -> Result<&[f32]> {
        self.prefill(core::slice::from_ref(&token))
    }

    /// Evaluates `tokens` and calls `on_logits(i, logits)` for every token `i` of them, in order: the
    /// logits predict token `i + 1`. Used for perplexity.
    pub fn eval_all(
        &mut self,
        tokens: &[u32],
        mut on_logits: impl FnMut(usize, &[f32]),
    ) -> Result<()> {
        self.check(tokens)?;
        let v = self.model.config.n_vocab;
        let mut i = 0;
        let batched = tokens.len() > 1;
        self.reserve_values(self.pos + tokens.len());
        for chunk in tokens.chunks(self.params.n_batch) {
            self.forward(chunk, true, batched);
            for t in 0..chunk.len() {
                on_logits(i, &self.s.logits[t * v..(t + 1) * v]);
                i += 1;
            }
        }
        Ok(())
    }

    /// Makes the value rows hold at least `n <= n_ctx` positions. They start at
    /// [`VALUE_ROW_START`] positions and double (up to `n_ctx`: [`value_row_len`]) when the context
    /// outgrows them, the cached values moving in place to the wider rows: O(cache) once per
    /// doubling, never per token (the decode step that crosses a doubling pays for the move and for
    /// the first touch of the wider rows' pages, which rows `n_ctx` long paid at the first token).
    /// So at a short context one key/value head's values are a dense block that the prefetchers
    /// stream (and that touches few pages), while each row stays one contiguous run at any length;
    /// rows `n_ctx` long from the start would be a page apart at the default context of 2048.
    fn reserve_values(&mut self, n: usize) {
        let n_ctx = self.params.n_ctx;
        debug_assert!(n <= n_ctx);
        let old = self.v_row;
        if n <= old {
            return;
        }
        let new = value_row_len(n, n_ctx);
        let rows = self.model.config.n_layer * self.model.config.kv_dim();
        match &mut self.kv {
            KvCache::F16 { vt, .. } => widen_rows(vt, rows, old, new, self.pos),
            KvCache::F32 { vt, .. } => widen_rows(vt, rows, old, new, self.pos),
        }
        self.v_row = new;
    }

    fn check(&self, tokens: &[u32]) -> Result<()> {
        if self.pos + tokens.len() > self.params.n_ctx {
            return Err(Error::Request {
                what: format!(
                    "{} cached + {} new tokens exceed the context of {} (use a larger --ctx)",
                    self.pos,
                    tokens.len(),
                    self.params.n_ctx
                ),
            });
        }
        let n_vocab = self.model.config.n_vocab;
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= n_vocab) {
            return Err(Error::Request {
                what: format!("token id {bad} is outside the vocabulary of {n_vocab}"),
            });
        }
        Ok(())
    }

    /// Runs the network over one batch of `T <= n_batch` tokens at positions `pos..pos+T`, appending
    /// their keys and values to the cache. Writes logits for every token when `all_logits`, otherwise
    /// for the last one only (into row 0). `batched` selects the attention products' summation
    /// order: llama.cpp's for a batch of two or more tokens, else its single-token one.
    fn forward(&mut self, tokens: &[u32], all_logits: bool, batched: bool) {
        let on_caller = tokens.len() == 1
            && self.pool.n_threads() == 2
            && match self.attn_place {
                AttentionPlace::Shared => false,
                AttentionPlace::Caller => true,
                AttentionPlace::Auto => {
                    if self.steps.is_multiple_of(PLACE_EVERY) {
                        // No answer (the worker asleep or preempted): keep the last finding.
                        if let Some(ns) = self.pool.round_trip_ns() {
                            self.apart = threads_apart(ns);
                        }
                    }
                    self.steps = self.steps.wrapping_add(1);
                    self.apart
                }
            };
        let model = self.model;
        let cfg = &model.config;
        let w = &model.weights;
        let (c, qd, kvd, f) = (cfg.n_embd, cfg.q_dim(), cfg.kv_dim(), cfg.n_ff);
        let t_len = tokens.len();
        let s = &mut self.s;
        let kern = &self.kernels;
        let pool = &self.pool;
        // One token: between two products the workers read their share of the next products'
        // weights ([`ThreadPool::read_after_jobs`]; one slice of `next` per product group) while
        // this thread does the serial work; stopped before this function returns or unwinds.
        let _stop_reads = StopReads(pool);
        let read_next = |next: &[&[&super::weights::Matrix<'_>]]| {
            if t_len > 1 {
                return;
            }
            debug_assert!(next.len() <= 2);
            let mut bytes: [[&[u8]; MAX_READ_SLICES]; 2] = [[&[]; MAX_READ_SLICES]; 2];
            let mut groups: [&[&[u8]]; 2] = [&[]; 2];
            for ((b, g), group) in bytes.iter_mut().zip(&mut groups).zip(next) {
                for (b, m) in b.iter_mut().zip(*group) {
                    *b = model.product_bytes(m);
                }
                *g = &b[..group.len()];
            }
            // SAFETY: the weights are borrowed from the model for the session's lifetime, longer
            // than this call, and `_stop_reads` stops the reads before it returns.
            unsafe { pool.read_after_jobs(&groups[..next.len()]) };
        };
        let mm = MatMul {
            k: kern,
            pool,
            stride: self.act_stride,
            model,
        };
        let (d, n_head, n_head_kv) = (cfg.head_dim, cfg.n_head, cfg.n_head_kv);
        let group = cfg.n_head / cfg.n_head_kv;
        let scale = 1.0 / (d as f32).sqrt();
        let n_ctx = self.params.n_ctx;
        let v_row = self.v_row;
        let pos0 = self.pos;
        debug_assert!(pos0 + t_len <= v_row);

        // Embedding lookup: dequantize one row of token_embd per token (ggml_get_rows).
        for (t, &tok) in tokens.iter().enumerate() {
            let row = model.embedding_row(tok as usize, &mut s.emb);
            (w.token_embd.ty.info().to_f32)(row, &mut s.x[t * c..(t + 1) * c]);
        }

        for (l, layer) in w.layers.iter().enumerate() {
            // One token: this layer's cached keys and values (and the value slots about to be
            // written), read by attention after the q/k/v products, are fetched while those
            // products stream their weights (on the calling thread, while the others start on
            // them); they would come from DRAM otherwise (a step streams more weights than the
            // caches hold between two visits of a layer).
            let kv = &self.kv;
            let prefetch_kv = || {
                if t_len > 1 {
                    return;
                }
                let (base, v_base, n_kv) = (l * n_ctx * kvd, l * kvd * v_row, pos0 + 1);
                match kv {
                    KvCache::F16 { k, vt } => {
                        for kvh in 0..n_head_kv {
                            kern.prefetch(&k[base + kvh * n_ctx * d..][..n_kv * d]);
                        }
                        for i in 0..kvd {
                            kern.prefetch(&vt[v_base + i * v_row..][..n_kv]);
                        }
                    }
                    KvCache::F32 { k, vt } => {
                        for kvh in 0..n_head_kv {
                            kern.prefetch(&k[base + kvh * n_ctx * d..][..n_kv * d]);
                        }
                        for i in 0..kvd {
                            kern.prefetch(&vt[v_base + i * v_row..][..n_kv]);
                        }
                    }
                }
            };
            // Attention block.
            let x = &s.x;
            pool.for_each_chunk(&mut s.xb[..t_len * c], c, |t, xb| {
                rms_norm(
                    kern,
                    xb,
                    &x[t * c..(t + 1) * c],
                    model.norm_bytes(&layer.attn_norm),
                    cfg.rms_eps,
                );
            });
            if on_caller {
                // The worker reads through this layer's attention and o-projection, both on the
                // caller (see `AttentionPlace`).
                read_next(&[&[&layer.w_gate, &layer.w_up]]);
            } else {
                read_next(&[&[&layer.wo]]);
            }
            mm.products(
                [
                    (&mut s.q[..t_len * qd], &layer.wq),
                    (&mut s.k[..t_len * kvd], &layer.wk),
                    (&mut s.v[..t_len * kvd], &layer.wv),
                ],
                &s.xb[..t_len * c],
                &mut s.act,
                &mut s.par,
                &prefetch_kv,
            );

            let (layer_base, v_base) = (l * n_ctx * kvd, l * kvd * v_row);
            for t in 0..t_len {
                let pos = pos0 + t;
                // One token: built in the first layer and kept (every layer rotates that position).
                if t_len > 1 || l == 0 {
                    rope_cache(
                        &mut s.rope,
                        pos,
                        cfg.rope_base,
                        cfg.rope_freq_scale,
                        cfg.n_rot,
                    );
                }
                for head in s.q[t * qd..(t + 1) * qd].chunks_exact_mut(d) {
                    kern.rope_ggml(head, &s.rope);
                }
                for head in s.k[t * kvd..(t + 1) * kvd].chunks_exact_mut(d) {
                    kern.rope_ggml(head, &s.rope);
                }
                let (k_new, v_new) = (&s.k[t * kvd..(t + 1) * kvd], &s.v[t * kvd..(t + 1) * kvd]);
                // Key head `h` of this position: `[layer][h][pos][..D]`.
                let slots = (0..n_head_kv).map(|h| layer_base + (h * n_ctx + pos) * d);
                match &mut self.kv {
                    KvCache::F16 { k, vt } => {
                        for (slot, head) in slots.zip(k_new.chunks_exact(d)) {
                            kern.to_f16(head, &mut k[slot..slot + d]);
                        }
                        for (i, &src) in v_new.iter().enumerate() {
                            vt[v_base + i * v_row + pos] = f16::from_f32(src);
                        }
                    }
                    KvCache::F32 { k, vt } => {
                        for (slot, head) in slots.zip(k_new.chunks_exact(d)) {
                            k[slot..slot + d].copy_from_slice(head);
                        }
                        for (i, &src) in v_new.iter().enumerate() {
                            vt[v_base + i * v_row + pos] = src;
                        }
                    }
                }
            }
            // One work item per (token, `gh` heads sharing a key/value head) with an f16 cache, per
            // (token, head) with an f32 one, each written to its own slice of att_out. One token
            // whose groups do not share evenly among the threads has its last groups cut into
            // smaller items ([`AttnItems`]).
            let (q, kv) = (&s.q, &self.kv);
            let gh = if matches!(kv, KvCache::F16 { .. }) {
                heads_per_item(cfg)
            } else {
                1
            };
            let threads = if on_caller { 1 } else { pool.n_threads() };
            let items = AttnItems::new(n_head, gh, t_len, threads);
            let attend = |item: usize, out: &mut [f32], sc: &mut AttnScratch<'_>| {
                let (t, h0, nh) = items.item(item);
                let kvh = h0 / group;
                // Causal: this token sees itself and everything before.
                let n_kv = pos0 + t + 1;
                // This key/value head's keys `[S][D]` and transposed values `[D][R]`.
                let (k0, v0) = (layer_base + kvh * n_ctx * d, v_base + kvh * d * v_row);
                let (k_end, v_end) = (k0 + n_ctx * d, v0 + d * v_row);
                let q = &q[t * qd + h0 * d..][..nh * d];
                match kv {
                    KvCache::F16 { k, vt } => kern.attention_group_ggml(
                        out,
                        q,
                        d,
                        &k[k0..k_end],
                        d,
                        &vt[v0..v_end],
                        v_row,
                        scale,
                        batched,
                        llama_n_kv(n_kv),
                        &mut sc.scores[..nh * n_kv],
                        &mut sc.q16[..nh * d],
                        &mut sc.p16[..nh * n_kv],
                    ),
                    KvCache::F32 { k, vt } => kern.attention_head_f32(
                        out,
                        q,
                        &k[k0..k_end],
                        d,
                        &vt[v0..v_end],
                        v_row,
                        scale,
                        &mut sc.scores[..n_kv],
                    ),
                }
            };
            let att_out = &mut s.att_out[..t_len * qd];
            let mut table = [0; AttnItems::MAX_ITEMS + 1];
            if on_caller {
                for (i, out) in att_out.chunks_exact_mut(gh * d).enumerate() {
                    attend(i, out, &mut s.attn[0]);
                }
            } else {
                match items.cut_bounds(d, &mut table) {
                    Some(bounds) => pool.for_each_part_with(att_out, bounds, &mut s.attn, attend),
                    None => pool.for_each_chunk_with(att_out, gh * d, &mut s.attn, attend),
                }
            }
            // The norm weights after each of the o and down products come from memory otherwise
            // (the step streams more than the caches hold); fetched while the product runs.
            kern.prefetch(model.norm_bytes(&layer.ffn_norm));
            if !on_caller {
                // (With attention on the caller the hint holds gate/up already.)
                read_next(&[&[&layer.w_gate, &layer.w_up]]);
            }
            // With attention on the caller, the o-projection follows it there, with no meeting.
            let o_mm = if on_caller {
                MatMul {
                    pool: &self.alone,
                    ..mm
                }
            } else {
                mm
            };
            o_mm.run(
                &mut s.proj[..t_len * c],
                &layer.wo,
                &s.att_out[..t_len * qd],
                &mut s.act,
                &mut s.par,
            );
            for (x, p) in s.x[..t_len * c].iter_mut().zip(&s.proj[..t_len * c]) {
                *x += p;
            }

            // Feed-forward block (SwiGLU).
            let x = &s.x;
            pool.for_each_chunk(&mut s.xb[..t_len * c], c, |t, xb| {
                rms_norm(
                    kern,
                    xb,
                    &x[t * c..(t + 1) * c],
                    model.norm_bytes(&layer.ffn_norm),
                    cfg.rms_eps,
                );
            });
            read_next(&[&[&layer.w_down]]);
            mm.products(
                [
                    (&mut s.hb[..t_len * f], &layer.w_gate),
                    (&mut s.hb2[..t_len * f], &layer.w_up),
                ],
                &s.xb[..t_len * c],
                &mut s.act,
                &mut s.par,
                &|| {},
            );
            let up = &s.hb2;
            pool.for_each_chunk(&mut s.hb[..t_len * f], f, |t, g| {
                kern.swiglu_ggml(g, &up[t * f..(t + 1) * f]);
            });
            match w.layers.get(l + 1) {
                Some(next) => {
                    kern.prefetch(model.norm_bytes(&next.attn_norm));
                    read_next(&[&[&next.wq, &next.wk, &next.wv]]);
                }
                None => {
                    kern.prefetch(model.norm_bytes(&w.output_norm));
                    read_next(&[&[&w.output]]);
                }
            }
            mm.run(
                &mut s.proj[..t_len * c],
                &layer.w_down,
                &s.hb[..t_len * f],
                &mut s.act,
                &mut s.par,
            );
            for (x, p) in s.x[..t_len * c].iter_mut().zip(&s.proj[..t_len * c]) {
                *x += p;
            }
        }

        // Final norm and output projection, for the rows whose logits are wanted.
        let first = if all_logits { 0 } else { t_len - 1 };
        let n_out = t_len - first;
        for t in first..t_len {
            let r = t - first;
            rms_norm(
                kern,
                &mut s.xb[r * c..(r + 1) * c],
                &s.x[t * c..(t + 1) * c],
                model.norm_bytes(&w.output_norm),
                cfg.rms_eps,
            );
        }
        let v = cfg.n_vocab;
        // One token at a time: the (T, V) product would need a (T, V) threading scratch.
        read_next(&[]);
        for r in 0..n_out {
            mm.run(
                &mut s.logits[r * v..(r + 1) * v],
                &w.output,
                &s.xb[r * c..(r + 1) * c],
                &mut s.act,
                &mut s.par,
            );
        }
        self.pos += t_len;
    }
}

/// Stops the pool's read-ahead ([`ThreadPool::stop_reads`]) when dropped.
struct StopReads<'p>(&'p ThreadPool);

impl Drop for StopReads<'_> {
    fn drop(&mut self) {
        self.0.stop_reads();
    }
}

/// The matrix-product context of one forward pass: kernels, thread pool, activation row stride.
#[derive(Clone, Copy)]
struct MatMul<'p> {
    k: &'p Kernels,
    pool: &'p ThreadPool,
    stride: usize,
    /// The model, for its packed weight copies.
    model: &'p super::Model<'p>,
}

impl MatMul<'_> {
    /// `out (T, rows) = x (T, cols) @ W^T`: [`MatMul::quantize`] then [`MatMul::product`].
    fn run(
        &self,
        out: &mut [f32],
        wt: &super::weights::Matrix<'_>,
        x: &[f32],
        act: &mut [u8],
        par: &mut [f32],
    ) {
        self.quantize(wt, x, act);
        self.product(out, wt, x.len() / wt.cols, act, par);
    }

    /// `out_i (T, rows_i) = x (T, cols) @ W_i^T` for the `N` products of one input (q/k/v,
    /// gate/up): `x` quantized once, and again only where a product's activation format differs;
    /// one token in a single pool job when all share one ([`MatMul::products1`]). `first` runs
    /// before the products, on the calling thread (see [`Kernels::matvec_par_group`]).
    fn products<const N: usize>(
        &self,
        products: [(&mut [f32], &super::weights::Matrix<'_>); N],
        x: &[f32],
        act: &mut [u8],
        par: &mut [f32],
        first: &(dyn Fn() + Sync),
    ) {
        let ws = products.each_ref().map(|p| p.1);
        let t_len = x.len() / ws[0].cols;
        self.quantize(ws[0], x, act);
        if t_len == 1 && Self::same_activations(&ws) {
            return self.products1(products, act, first);
        }
        first();
        for (i, (out, wt)) in products.into_iter().enumerate() {
            if i > 0 {
                self.requantize(ws[i - 1], wt, x, act);
            }
            self.product(out, wt, t_len, act, par);
        }
    }

    /// Quantizes each row of `x` (T, cols) into `act` in the activation format of `wt`'s type
    /// (ggml's `from_float` of the `vec_dot_type`), one row every `stride` bytes.
    fn quantize(&self, wt: &super::weights::Matrix<'_>, x: &[f32], act: &mut [u8]) {
        // Token by token, except where llama.cpp quantizes groups of four (its repacked Q4_K / Q2_K
        // matrices on x86); a batch split across the pool.
        self.k
            .quantize_batch_par(self.pool, wt.ty, wt.rows, x, wt.cols, act, self.stride);
    }

    /// [`MatMul::quantize`] for `wt` when `x` was last quantized for `prev` (same input): only
    /// when their activation formats differ.
    fn requantize(
        &self,
        prev: &super::weights::Matrix<'_>,
        wt: &super::weights::Matrix<'_>,
        x: &[f32],
        act: &mut [u8],
    ) {
        if !self
            .k
            .same_activations((prev.ty, prev.rows), (wt.ty, wt.rows))
        {
            self.quantize(wt, x, act);
        }
    }

    /// Whether the products of `ws` (same input width) read one quantization of the input.
    fn same_activations(ws: &[&super::weights::Matrix<'_>]) -> bool {
        let first = ws[0].ty.info().vec_dot_type;
        ws.iter()
            .all(|w| w.ty.info().vec_dot_type == first && w.cols == ws[0].cols)
    }

    /// `out_i (rows_i,) = W_i @ act` for one token whose activations are already quantized for
    /// all of them ([`MatMul::same_activations`]): one pool job for the `N` products.
    fn products1<const N: usize>(
        &self,
        products: [(&mut [f32], &super::weights::Matrix<'_>); N],
        act: &[u8],
        first: &(dyn Fn() + Sync),
    ) {
        let n = products[0].1.cols;
        let arb = products[0]
            .1
            .ty
            .info()
            .vec_dot_type
            .row_bytes(n)
            .expect("checked at load");
        let mut group = products.map(|(out, wt)| MatVec {
            ty: wt.ty,
            packed: wt.packed.is_some(),
            w: self.model.product_bytes(wt),
            rows: wt.rows,
            out,
        });
        self.k
            .matvec_par_group(self.pool, &mut group, &act[..arb], n, first);
    }

    /// `out (T, rows) = W @ act` for activations already quantized by [`MatMul::quantize`]: the
    /// rows of `W` are split across the pool and every weight row is dotted with every token while
    /// it is in cache.
    fn product(
        &self,
        out: &mut [f32],
        wt: &super::weights::Matrix<'_>,
        t_len: usize,
        act: &[u8],
        par: &mut [f32],
    ) {
        let n = wt.cols;
        debug_assert_eq!(out.len(), t_len * wt.rows);
        let arb = wt
            .ty
            .info()
            .vec_dot_type
            .row_bytes(n)
            .expect("checked at load");
        let act_len = (t_len - 1) * self.stride + arb;
        let par = if t_len > 1 {
            &mut par[..t_len * wt.rows]
        } else {
            &mut par[..0]
        };
        let act = &act[..act_len];
        if wt.packed.is_some() {
            let w = self.model.product_bytes(wt);
            let (k, pool, s) = (self.k, self.pool, self.stride);
            k.matmul_par_packed(pool, wt.ty, out, w, wt.rows, act, s, t_len, n, par);
        } else {
            let (k, pool, s) = (self.k, self.pool, self.stride);
            k.matmul_par(pool, wt.ty, out, wt.data, wt.rows, act, s, t_len, n, par);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{value_row_len, AttnItems};

    #[test]
    fn attention_items_cover_every_head_once_and_balance_one_token() {
        // (heads, heads per item, tokens, threads) -> items as (token, first head, heads)
        type Items = &'static [(usize, usize, usize)];
        let cases: [(usize, usize, usize, usize, Items); 5] = [
            // SmolLM2-135M on two threads: 3 + 3, then the last group as 2 + 1.
            (9, 3, 1, 2, &[(0, 0, 3), (0, 3, 3), (0, 6, 2), (0, 8, 1)]),
            // Three threads share three groups: nothing cut.
            (9, 3, 1, 3, &[(0, 0, 3), (0, 3, 3), (0, 6, 3)]),
            // A batch is never cut.
            (
                9,
                3,
                2,
                2,
                &[
                    (0, 0, 3),
                    (0, 3, 3),
                    (0, 6, 3),
                    (1, 0, 3),
                    (1, 3, 3),
                    (1, 6, 3),
                ],
            ),
            // One head per item (an f32 cache) cannot be cut.
            (3, 1, 1, 2, &[(0, 0, 1), (0, 1, 1), (0, 2, 1)]),
            // Four threads, 2 groups of 4: both cut in 4 items of 1.
            (
                8,
                4,
                1,
                4,
                &[
                    (0, 0, 1),
                    (0, 1, 1),
                    (0, 2, 1),
                    (0, 3, 1),
                    (0, 4, 1),
                    (0, 5, 1),
                    (0, 6, 1),
                    (0, 7, 1),
                ],
            ),
        ];
        for (n_head, gh, t_len, threads, want) in cases {
            let items = AttnItems::new(n_head, gh, t_len, threads);
            let got: Vec<_> = (0..items.len()).map(|i| items.item(i)).collect();
            assert_eq!(
                got, want,
                "{n_head} heads by {gh}, {t_len} tokens, {threads} threads"
            );
            let mut table = [0; AttnItems::MAX_ITEMS + 1];
            if let Some(b) = items.cut_bounds(64, &mut table) {
                let want_b: Vec<usize> = core::iter::once(0)
                    .chain(want.iter().map(|&(_, h, n)| (h + n) * 64))
                    .collect();
                assert_eq!(b, &want_b[..]);
            }
        }
    }

    #[test]
    fn value_rows_double_from_256_and_take_the_context_when_half_of_it() {
        // (positions needed, n_ctx) -> row length
        for (n, n_ctx, want) in [
            (1, 512, 256),
            (256, 512, 256),
            (257, 512, 512),
            (1, 2048, 256),
            (300, 2048, 512),
            (1024, 2048, 1024),
            (1025, 2048, 2048),
            (1000, 2113, 1024),
            (2048, 2113, 2113),
            (1, 300, 300),
            (1, 100, 100),
        ] {
            assert_eq!(value_row_len(n, n_ctx), want, "n {n}, n_ctx {n_ctx}");
        }
    }
}
