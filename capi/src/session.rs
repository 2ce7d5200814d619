//! Sessions (KV cache and scratch, on the heap or in a caller's arena), evaluation, samplers and
//! `ingot_generate`, which drives them exactly as `ingot generate` does.

use crate::ingot_model;
use crate::{
    boundary, boundary_value, ingot_status, mut_arg, ref_arg, slice_arg, write_out, Fail, R,
};
use core::ffi::{c_char, c_void};
use ingot_runtime::model::{
    session_bytes, Model, Session, SessionParams, SESSION_ARENA_ALIGN, SESSION_HANDLE_BYTES,
};
use ingot_runtime::sampler::{Sampler, SamplerParams};
use ingot_runtime::tokenizer::{EncodeScratch, StreamDecoder};

/// How a session is sized. Get the defaults from `ingot_session_params_default()` and change what
/// you need; fields are only ever appended.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ingot_session_params {
    /// Tokens the KV cache holds (prompt plus generated), at least 1. Default 2048.
    pub n_ctx: u32,
    /// Most tokens evaluated in one batch of a prefill, at least 1 (clamped to n_ctx). Default 64.
    pub n_batch: u32,
    /// Threads for evaluation (1..=256), the calling thread included; the results do not depend on
    /// it. Default 1.
    pub n_threads: u32,
    /// Where the session runs: `INGOT_DEVICE_CPU` (0, the default) or `INGOT_DEVICE_CUDA` (1).
    /// Sessions of this version run on the CPU: `INGOT_DEVICE_CUDA` is refused with
    /// `INGOT_ERR_INVALID` and a message saying so (the CUDA backend is `ingot --device cuda`), as is
    /// any other value. Appended in ABI version 1; zero-initialized structs mean the CPU.
    pub device: u32,
}

/// `ingot_session_params.device`: the CPU kernels.
pub const INGOT_DEVICE_CPU: u32 = 0;
/// `ingot_session_params.device`: the first NVIDIA GPU (see the field's documentation).
pub const INGOT_DEVICE_CUDA: u32 = 1;

/// Parameters of the sampler chain (penalties -> top-k -> top-p -> min-p -> temperature -> draw, as
/// llama.cpp's common sampler). Get the defaults from `ingot_sampler_params_default()`. Append-only.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ingot_sampler_params {
    /// Seeds the random draw: the same seed, parameters and logits give the same tokens. Default 42.
    pub seed: u64,
    /// Divides the logits before the softmax; <= 0 samples greedily (argmax). Default 0.8.
    pub temperature: f32,
    /// Keep only the top_k most likely tokens; 0 turns it off. Default 40.
    pub top_k: i32,
    /// Nucleus sampling threshold in [0, 1]; 1 turns it off. Default 0.95.
    pub top_p: f32,
    /// Drop tokens below min_p times the most likely one's probability, in [0, 1]. Default 0.05.
    pub min_p: f32,
    /// Penalty on tokens seen in the last penalty_last_n (> 0; 1 turns it off). Default 1.
    pub repeat_penalty: f32,
    /// Subtracted once per occurrence in the window. Default 0.
    pub frequency_penalty: f32,
    /// Subtracted once if the token occurs in the window. Default 0.
    pub presence_penalty: f32,
    /// How many recent tokens the penalties look at; 0 turns them off. Default 64.
    pub penalty_last_n: i32,
}

/// A session (opaque): one sequence's KV cache, position and scratch buffers. Used by one thread at a
/// time. Borrows its model (and, from `ingot_session_new_in_arena`, its arena) until freed.
#[derive(Debug)]
pub struct ingot_session {
    session: Session<'static, 'static>,
    /// Whether `session.logits()` holds the logits of the last evaluated token.
    has_logits: bool,
    /// Whether this handle lives at the front of the caller's arena (`ingot_session_new_in_arena`)
    /// rather than in a Box.
    in_arena: bool,
    /// `ingot_generate`'s buffers, made by its first call on this session (so that creating a
    /// session, arena or not, allocates none of them) and reused by the next ones.
    generate: Option<Box<GenerateBuffers>>,
}

/// What `ingot_generate` keeps from one call to the next, so that a call after the first allocates
/// nothing (unless its prompt needs bigger buffers than any before).
#[derive(Debug)]
struct GenerateBuffers {
    /// The prompt's tokens.
    ids: Vec<u32>,
    encode: EncodeScratch,
    /// Sized for the longest piece of the model's vocabulary.
    stream: StreamDecoder,
}

// The handle must fit the room the runtime plans for it in an arena, at the first address aligned for
// it (at most `align - SESSION_ARENA_ALIGN` bytes in), and that room keep the buffers' alignment.
const _: () = assert!(
    size_of::<ingot_session>() + align_of::<ingot_session>() - SESSION_ARENA_ALIGN
        <= SESSION_HANDLE_BYTES
);
const _: () = assert!(SESSION_HANDLE_BYTES.is_multiple_of(SESSION_ARENA_ALIGN));

/// A sampler (opaque): parameters, random state and the penalty history. Used by one thread at a time.
#[derive(Debug)]
pub struct ingot_sampler {
    sampler: Sampler,
    n_vocab: usize,
}

/// Called by `ingot_generate` for every generated token with the text it completes (`piece[0..len]`,
/// UTF-8, not NUL-terminated, possibly empty while a multi-byte character is incomplete; borrowed for
/// the duration of the call) and the token id (-1 for the final flush of held-back bytes). Return 0
/// to continue, anything else to stop generating.
pub type ingot_token_callback = Option<
    unsafe extern "C" fn(
        piece: *const c_char,
        len: usize,
        token: i32,
        user_data: *mut c_void,
    ) -> i32,
>;

/// The default session parameters (by value). Thread-safe.
#[no_mangle]
pub extern "C" fn ingot_session_params_default() -> ingot_session_params {
    let d = SessionParams::default();
    ingot_session_params {
        n_ctx: d.n_ctx as u32,
        n_batch: d.n_batch as u32,
        n_threads: d.n_threads as u32,
        device: INGOT_DEVICE_CPU,
    }
}

/// The default sampler parameters (llama.cpp's defaults; by value). Thread-safe.
#[no_mangle]
pub extern "C" fn ingot_sampler_params_default() -> ingot_sampler_params {
    let d = SamplerParams::default();
    ingot_sampler_params {
        seed: d.seed,
        temperature: d.temperature,
        top_k: d.top_k as i32,
        top_p: d.top_p,
        min_p: d.min_p,
        repeat_penalty: d.repeat_penalty,
        frequency_penalty: d.frequency_penalty,
        presence_penalty: d.presence_penalty,
        penalty_last_n: d.penalty_last_n as i32,
    }
}

fn session_params(p: &ingot_session_params) -> R<SessionParams> {
    match p.device {
        INGOT_DEVICE_CPU => {}
        INGOT_DEVICE_CUDA => {
            return Err(Fail::invalid(
                "device INGOT_DEVICE_CUDA: sessions of the C ABI run on the CPU only in this \
                 version (the CUDA backend is available as `ingot --device cuda`); use \
                 INGOT_DEVICE_CPU",
            ))
        }
        d => {
            return Err(Fail::invalid(format!(
                "unknown device {d}: expected INGOT_DEVICE_CPU (0) or INGOT_DEVICE_CUDA (1)"
            )))
        }
    }
    Ok(SessionParams {
        n_ctx: p.n_ctx as usize,
        n_batch: p.n_batch as usize,
        n_threads: p.n_threads as usize,
        ..Default::default()
    })
}

/// The model a handle holds, with the lifetime the session handle claims for it.
///
/// # Safety
/// `model` is NULL or a live model that outlives every session made from it (the C contract).
unsafe fn static_model(model: *const ingot_model) -> R<&'static Model<'static>> {
    // SAFETY: forwarded contract: the caller frees the model only after its sessions.
    let m: &'static ingot_model = unsafe { ref_arg(model, "model") }?;
    Ok(&m.model)
}

fn new_handle(session: Session<'static, 'static>) -> *mut ingot_session {
    Box::into_raw(Box::new(ingot_session {
        session,
        has_logits: false,
        in_arena: false,
        generate: None,
    }))
}

/// The arena `ingot_session_new_in_arena` needs: the session handle, then the KV cache and scratch.
fn arena_total(model: &Model<'_>, params: SessionParams) -> R<usize> {
    Ok(SESSION_HANDLE_BYTES + Session::arena_bytes(model, params)?)
}

/// Creates a session for `model` with its KV cache and scratch on the heap (`ingot_session_arena_size`
/// bytes plus a few hundred of bookkeeping). On success `*session_out` owns it; free it with
/// `ingot_session_free` before the model. Bad sizes are `INGOT_ERR_INVALID`. Thread-safe with respect
/// to the model.
///
/// # Safety
/// `model` is NULL or live and outlives the session; `params` is NULL or readable; `session_out` is
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ingot_session_new(
    model: *const ingot_model,
    params: *const ingot_session_params,
    session_out: *mut *mut ingot_session,
) -> i32 {
    boundary(|| {
        // SAFETY: caller's contract.
        let model = unsafe { static_model(model) }?;
        // SAFETY: caller's contract.
        let params = session_params(unsafe { ref_arg(params, "params") }?)?;
        if session_out.is_null() {
            return Err(Fail::null("session_out"));
        }
        let s = new_handle(Session::new(model, params)?);
        // SAFETY: checked non-NULL; writability is the caller's contract.
        unsafe { write_out(session_out, s, "session_out") }
    })
}

/// Writes to `*size_out` the exact number of bytes `ingot_session_new_in_arena` needs for `model`
/// with `params`: the session handle itself, the f16 KV cache and every scratch buffer (what
/// `ingot plan` prints as `session`). Bad sizes are `INGOT_ERR_INVALID`. Thread-safe.
///
/// # Safety
/// `model` is NULL or live; `params` is NULL or readable; `size_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ingot_session_arena_size(
    model: *const ingot_model,
    params: *const ingot_session_params,
    size_out: *mut usize,
) -> i32 {
    boundary(|| {
        // SAFETY: caller's contract.
        let model = unsafe { static_model(model) }?;
        // SAFETY: caller's contract.
        let params = session_params(unsafe { ref_arg(params, "params") }?)?;
        let bytes = arena_total(model, params)?;
        debug_assert_eq!(bytes, SESSION_HANDLE_BYTES + session_bytes(model, params));
        // SAFETY: caller's contract.
        unsafe { write_out(size_out, bytes, "size_out") }
    })
}

/// Creates a session that lives entirely in the caller's `arena[0..arena_size]`: the session handle
/// (`*session_out` points into the arena), its KV cache and its scratch. The arena must hold at least
/// `ingot_session_arena_size` bytes and be aligned to 4 bytes (64 recommended). With `n_threads` 1 nothing is allocated on the heap, neither here nor when
/// evaluating; more threads put the thread pool (its threads and their shared state) on the heap.
/// The arena stays owned by the caller and must not be used, moved or freed until
/// `ingot_session_free`. A smaller or misaligned arena is `INGOT_ERR_INVALID` naming the size needed.
/// Thread-safe with respect to the model.
///
/// # Safety
/// `model` is NULL or live and outlives the session; `params` is NULL or readable; `arena` is NULL or
/// valid for reads and writes of `arena_size` bytes until the session is freed, and not accessed
/// otherwise meanwhile; `session_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ingot_session_new_in_arena(
    model: *const ingot_model,
    params: *const ingot_session_params,
    arena: *mut c_void,
    arena_size: usize,
    session_out: *mut *mut ingot_session,
) -> i32 {
    boundary(|| {
        // SAFETY: caller's contract.
        let model = unsafe { static_model(model) }?;
        // SAFETY: caller's contract.
        let params = session_params(unsafe { ref_arg(params, "params") }?)?;
        if arena.is_null() {
            return Err(Fail::null("arena"));
        }
        if session_out.is_null() {
            return Err(Fail::null("session_out"));
        }
        if arena_size > isize::MAX as usize {
            return Err(Fail::invalid(format!(
                "arena size {arena_size} is impossible"
            )));
        }
        let need = arena_total(model, params)?;
        if arena_size < need {
            return Err(Fail::invalid(format!(
                "session arena of {arena_size} bytes is too small: n_ctx {}, n_batch {}, n_threads {} \
                 need {need} bytes (ingot_session_arena_size)",
                params.n_ctx, params.n_batch, params.n_threads
            )));
        }
        if !(arena as usize).is_multiple_of(SESSION_ARENA_ALIGN) {
            return Err(Fail::invalid(format!(
                "session arena at {arena:p} is not aligned to {SESSION_ARENA_ALIGN} bytes"
            )));
        }
        // The first address aligned for the handle: at most `align - SESSION_ARENA_ALIGN` bytes in,
        // which the const assertions above leave room for.
        let offset = arena.cast::<u8>().align_offset(align_of::<ingot_session>());
        if offset + size_of::<ingot_session>() > SESSION_HANDLE_BYTES {
            return Err(Fail::invalid(
                "the arena cannot hold an aligned session handle",
            ));
        }
        // SAFETY: `offset` bytes in is still inside the handle's reserve (checked just above and by
        // the const assertions), inside the arena (`arena_size >= need > SESSION_HANDLE_BYTES`).
        let handle = unsafe { arena.cast::<u8>().add(offset) }.cast::<ingot_session>();
        // SAFETY: non-NULL and size-checked above (arena_size >= need > SESSION_HANDLE_BYTES); the
        // caller hands the bytes over exclusively until the session is freed (documented contract),
        // which the `'static` borrow stands for. The buffers start after the handle's bytes, so the
        // slice and the handle written below never overlap.
        let buffers: &'static mut [u8] = unsafe {
            core::slice::from_raw_parts_mut(
                arena.cast::<u8>().add(SESSION_HANDLE_BYTES),
                arena_size - SESSION_HANDLE_BYTES,
            )
        };
        let session = Session::new_in_arena(model, params, buffers)?;
        // SAFETY: `handle` is aligned for `ingot_session` (align_offset) and its bytes lie within the
        // arena's first SESSION_HANDLE_BYTES (offset + size fits, const-asserted), which are ours and
        // disjoint from `buffers`; `write` does not read or drop the garbage that was there.
        unsafe {
            handle.write(ingot_session {
                session,
                has_logits: false,
                in_arena: true,
                generate: None,
            })
        };
        // SAFETY: checked non-NULL; writability is the caller's contract.
        unsafe { write_out(session_out, handle, "session_out") }
    })
}

/// Frees a session (NULL is a no-op). Its arena, if any, is the caller's again afterwards.
///
/// # Safety
/// `session` is NULL or a handle from `ingot_session_new*` not freed yet and not in use elsewhere.
#[no_mangle]
pub unsafe extern "C" fn ingot_session_free(session: *mut ingot_session) {
    boundary_value((), || {
        if session.is_null() {
            return;
        }
        // SAFETY: a live handle from `ingot_session_new*`, not freed yet (contract).
        if unsafe { (*session).in_arena } {
            // SAFETY: written in place by `ingot_session_new_in_arena`, dropped once (contract); the
            // arena's memory stays the caller's.
            unsafe { core::ptr::drop_in_place(session) };
        } else {
            // SAFETY: from `Box::into_raw` in `new_handle`, freed once (contract).
            drop(unsafe { Box::from_raw(session) });
        }
    })
}

/// Forgets every cached token (the buffers are kept). Not thread-safe on the same session.
///
/// # Safety
/// `session` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn ingot_session_reset(session: *mut ingot_session) -> i32 {
    boundary(|| {
        // SAFETY: caller's contract.
        let s = unsafe { mut_arg(session, "session") }?;
        s.session.reset();
        s.has_logits = false;
        Ok(())
    })
}

/// Keeps the first `n` cached tokens and forgets the rest, so evaluation continues at position `n`
/// (no-op when `n` is at least the cached count). Use it to reuse a common prefix between chat turns.
/// The logits are no longer available until the next evaluation. Not thread-safe on the same session.
///
/// # Safety
/// `session` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn ingot_session_truncate(session: *mut ingot_session, n: usize) -> i32 {
    boundary(|| {
        // SAFETY: caller's contract.
        let s = unsafe { mut_arg(session, "session") }?;
        if n < s.session.pos() {
            s.session.truncate(n);
            s.has_logits = false;
        }
        Ok(())
    })
}

/// Writes the number of tokens in the session's KV cache to `*n_out`. Not thread-safe on the same
/// session.
///
/// # Safety
/// `session` is NULL or live; `n_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ingot_session_n_past(
    session: *const ingot_session,
    n_out: *mut usize,
) -> i32 {
    boundary(|| {
        // SAFETY: caller's contract.
        let s = unsafe { ref_arg(session, "session") }?;
        // SAFETY: caller's contract.
        unsafe { write_out(n_out, s.session.pos(), "n_out") }
    })
}

fn tokens_u32<'t>(session: &ingot_session, tokens: &'t [i32]) -> R<&'t [u32]> {
    let n_vocab = session.session.model().config.n_vocab;
    if let Some(&bad) = tokens.iter().find(|&&t| t < 0 || t as usize >= n_vocab) {
        return Err(Fail::invalid(format!(
            "token id {bad} is outside the vocabulary of {n_vocab}"
        )));
    }
    let p = session.session.params();
    if session.session.pos() + tokens.len() > p.n_ctx {
        return Err(Fail::new(
            ingot_status::INGOT_ERR_CONTEXT_FULL,
            format!(
                "{} cached + {} new tokens exceed the context of {}",
                session.session.pos(),
                tokens.len(),
                p.n_ctx
            ),
        ));
    }
    // i32 ids in 0..n_vocab have the same bits as u32; the slice is reinterpreted, not copied.
    Ok(as_u32_ids(tokens))
}

/// Reinterprets non-negative `i32` token ids as `u32` without copying (same size and alignment;
/// every bit pattern is valid for both).
fn as_u32_ids(t: &[i32]) -> &[u32] {
    // SAFETY: i32 and u32 have identical size and alignment and no invalid bit patterns; the
    // length and lifetime are those of `t`.
    unsafe { core::slice::from_raw_parts(t.as_ptr().cast::<u32>(), t.len()) }
}

/// Evaluates `tokens[0..n_tokens]` after the cached ones (in batches of n_batch); afterwards the
/// logits of the last one are available (`ingot_session_logits`, `ingot_sample`). Too many tokens
/// for the remaining context is `INGOT_ERR_CONTEXT_FULL` and leaves the session unchanged; an id
/// outside the vocabulary is `INGOT_ERR_INVALID`. Not thread-safe on the same session.
///
/// # Safety
/// `session` is NULL or live; `tokens` points to `n_tokens` ids (may be NULL when 0, which is an
/// error).
#[no_mangle]
pub unsafe extern "C" fn ingot_prefill(
    session: *mut ingot_session,
    tokens: *const i32,
    n_tokens: usize,
) -> i32 {
    boundary(|| {
        // SAFETY: caller's contract.
        let s = unsafe { mut_arg(session, "session") }?;
        // SAFETY: caller's contract.
        let tokens = unsafe { slice_arg(tokens, n_tokens, "tokens") }?;
        if tokens.is_empty() {
            return Err(Fail::invalid("cannot evaluate zero tokens"));
        }
        let ids = tokens_u32(s, tokens)?;
        s.has_logits = false;
        s.session.prefill(ids)?;
        s.has_logits = true;
        Ok(())
    })
}

/// Evaluates one token (a decode step); see `ingot_prefill`. Allocates nothing. Not thread-safe on
/// the same session.
///
/// # Safety
/// `session` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn ingot_decode_step(session: *mut ingot_session, token: i32) -> i32 {
    // SAFETY: `&token` is one readable id; the rest is the caller's contract.
    unsafe { ingot_prefill(session, &token, 1) }
}

/// Points `*logits_out` at the logits (n_vocab floats, written to `*n_vocab_out`) of the last token
/// evaluated. Borrowed from the session: valid until the next call that evaluates, resets or frees
/// it. `INGOT_ERR_STATE` before any evaluation. Not thread-safe on the same session.
///
/// # Safety
/// `session` is NULL or live; `logits_out` and `n_vocab_out` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ingot_session_logits(
    session: *const ingot_session,
    logits_out: *mut *const f32,
    n_vocab_out: *mut usize,
) -> i32 {
    boundary(|| {
        // SAFETY: caller's contract.
        let s = unsafe { ref_arg(session, "session") }?;
        if !s.has_logits {
            return Err(Fail::new(
                ingot_status::INGOT_ERR_STATE,
                "no logits: evaluate tokens with ingot_prefill or ingot_decode_step first",
            ));
        }
        let l = s.session.logits();
        // SAFETY: caller's contract.
        unsafe { write_out(n_vocab_out, l.len(), "n_vocab_out") }?;
        // SAFETY: caller's contract.
        unsafe { write_out(logits_out, l.as_ptr(), "logits_out") }
    })
}

fn sampler_params(p: &ingot_sampler_params) -> R<SamplerParams> {
    let nonneg = |name: &str, v: i32| {
        usize::try_from(v).map_err(|_| {
            Fail::new(
                ingot_status::INGOT_ERR_INVALID,
                format!("sampler parameter `{name}` must be >= 0, got {v}"),
            )
        })
    };
    Ok(SamplerParams {
        temperature: p.temperature,
        top_k: nonneg("top_k", p.top_k)?,
        top_p: p.top_p,
        min_p: p.min_p,
        repeat_penalty: p.repeat_penalty,
        frequency_penalty: p.frequency_penalty,
        presence_penalty: p.presence_penalty,
        penalty_last_n: nonneg("penalty_last_n", p.penalty_last_n)?,
        seed: p.seed,
    })
}

/// Creates a sampler for `model`'s vocabulary. A bad parameter is `INGOT_ERR_INVALID` naming it. On
/// success `*sampler_out` owns it; free with `ingot_sampler_free`. Thread-safe with respect to the
/// model; the sampler does not borrow the model.
///
/// # Safety
/// `model` is NULL or live; `params` is NULL or readable; `sampler_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ingot_sampler_new(
    model: *const ingot_model,
    params: *const ingot_sampler_params,
    sampler_out: *mut *mut ingot_sampler,
) -> i32 {
    boundary(|| {
        // SAFETY: caller's contract.
        let m = unsafe { ref_arg(model, "model") }?;
        // SAFETY: caller's contract.
        let params = sampler_params(unsafe { ref_arg(params, "params") }?)?;
        if sampler_out.is_null() {
            return Err(Fail::null("sampler_out"));
        }
        let n_vocab = m.model.config.n_vocab;
        let sampler = Sampler::new(params, n_vocab)?;
        let h = Box::into_raw(Box::new(ingot_sampler { sampler, n_vocab }));
        // SAFETY: checked non-NULL; writability is the caller's contract.
        unsafe { write_out(sampler_out, h, "sampler_out") }
    })
}

/// Frees a sampler (NULL is a no-op).
///
/// # Safety
/// `sampler` is NULL or a handle from `ingot_sampler_new` not freed yet and not in use elsewhere.
#[no_mangle]
pub unsafe extern "C" fn ingot_sampler_free(sampler: *mut ingot_sampler) {
    boundary_value((), || {
        if !sampler.is_null() {
            // SAFETY: from `Box::into_raw` in `ingot_sampler_new`, freed once (contract).
            drop(unsafe { Box::from_raw(sampler) });
        }
    })
}

/// Records `token` in the sampler's penalty history (do it for the prompt's tokens; `ingot_sample`
/// does it for the tokens it returns). Not thread-safe on the same sampler.
///
/// # Safety
/// `sampler` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn ingot_sampler_accept(sampler: *mut ingot_sampler, token: i32) -> i32 {
    boundary(|| {
        // SAFETY: caller's contract.
        let s = unsafe { mut_arg(sampler, "sampler") }?;
        if token < 0 || token as usize >= s.n_vocab {
            return Err(Fail::invalid(format!(
                "token id {token} is outside the vocabulary of {}",
                s.n_vocab
            )));
        }
        s.sampler.accept(token as u32);
        Ok(())
    })
}

/// Clears the sampler's penalty history (the random state continues). Not thread-safe on the same
/// sampler.
///
/// # Safety
/// `sampler` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn ingot_sampler_reset(sampler: *mut ingot_sampler) -> i32 {
    boundary(|| {
        // SAFETY: caller's contract.
        let s = unsafe { mut_arg(sampler, "sampler") }?;
        s.sampler.reset();
        Ok(())
    })
}

/// Draws the next token from the logits of the session's last evaluated token, records it in the
/// sampler's history (as `ingot_sampler_accept`) and writes it to `*token_out`. Does not evaluate it:
/// pass it to `ingot_decode_step`. `INGOT_ERR_STATE` before any evaluation. Allocates nothing. Not
/// thread-safe on the same session or sampler.
///
/// # Safety
/// `sampler` and `session` are NULL or live; `token_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ingot_sample(
    sampler: *mut ingot_sampler,
    session: *const ingot_session,
    token_out: *mut i32,
) -> i32 {
    boundary(|| {
        // SAFETY: caller's contract.
        let sm = unsafe { mut_arg(sampler, "sampler") }?;
        // SAFETY: caller's contract.
        let s = unsafe { ref_arg(session, "session") }?;
        if token_out.is_null() {
            return Err(Fail::null("token_out"));
        }
        if !s.has_logits {
            return Err(Fail::new(
                ingot_status::INGOT_ERR_STATE,
                "no logits to sample from: call ingot_prefill or ingot_decode_step first",
            ));
        }
        let logits = s.session.logits();
        if logits.len() != sm.n_vocab {
            return Err(Fail::invalid(format!(
                "the sampler was made for a vocabulary of {} but the session's model has {}",
                sm.n_vocab,
                logits.len()
            )));
        }
        let t = sm.sampler.sample(logits);
        sm.sampler.accept(t);
        // SAFETY: checked non-NULL; writability is the caller's contract.
        unsafe { write_out(token_out, t as i32, "token_out") }
    })
}

/// Tokenizes `prompt[0..prompt_len]` (UTF-8; special-token text such as "<|im_start|>" is parsed;
/// BOS is added when the session is empty), evaluates it after the cached tokens, then samples and
/// evaluates up to `n_predict` tokens, stopping early at an end-of-generation token or at the end of
/// the context. For every generated token (an end-of-generation token excluded) calls
/// `callback(piece, len, token, user_data)`; a non-zero return stops generation (still `INGOT_OK`).
/// The prompt's tokens are recorded in the sampler's history. This is what `ingot generate` does, so
/// the same prompt, parameters and seed give the same text. The number of tokens sampled (the
/// end-of-generation token included) goes to `*n_generated_out` when it is not NULL. A prompt that
/// does not fit is `INGOT_ERR_CONTEXT_FULL`. Not thread-safe on the same session or sampler.
/// The first call on a session makes the buffers it keeps for the next ones (the prompt's tokens,
/// the tokenizer's scratch, the text decoder); a later call makes no heap allocation and no free,
/// unless its prompt needs bigger buffers than any before.
///
/// # Safety
/// `session` and `sampler` are NULL or live; `prompt` is readable for `prompt_len` bytes; `callback`
/// is NULL or a function safe to call with `user_data`; `n_generated_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ingot_generate(
    session: *mut ingot_session,
    sampler: *mut ingot_sampler,
    prompt: *const c_char,
    prompt_len: usize,
    n_predict: u32,
    callback: ingot_token_callback,
    user_data: *mut c_void,
    n_generated_out: *mut usize,
) -> i32 {
    boundary(|| {
        // SAFETY: caller's contract.
        let s = unsafe { mut_arg(session, "session") }?;
        // SAFETY: caller's contract.
        let sm = unsafe { mut_arg(sampler, "sampler") }?;
        // SAFETY: caller's contract.
        let bytes = unsafe { slice_arg(prompt.cast::<u8>(), prompt_len, "prompt") }?;
        let text = core::str::from_utf8(bytes)
            .map_err(|e| Fail::invalid(format!("`prompt` is not UTF-8: {e}")))?;
        let model = s.session.model();
        let tok = &model.tokenizer;
        if sm.n_vocab != model.config.n_vocab {
            return Err(Fail::invalid(
                "the sampler was made for another model's vocabulary",
            ));
        }
        let buffers = s.generate.get_or_insert_with(|| {
            Box::new(GenerateBuffers {
                ids: Vec::new(),
                encode: EncodeScratch::default(),
                stream: StreamDecoder::for_tokenizer(tok),
            })
        });
        let GenerateBuffers {
            ids,
            encode,
            stream,
        } = &mut **buffers;
        tok.encode_into(text, s.session.pos() == 0, true, encode, ids);
        if ids.is_empty() {
            return Err(Fail::invalid("the prompt is empty after tokenization"));
        }
        let n_ctx = s.session.params().n_ctx;
        let start = s.session.pos();
        if start + ids.len() >= n_ctx {
            return Err(Fail::new(
                ingot_status::INGOT_ERR_CONTEXT_FULL,
                format!(
                    "{start} cached + {} prompt tokens leave no room in the context of {n_ctx}",
                    ids.len()
                ),
            ));
        }
        for &t in ids.iter() {
            sm.sampler.accept(t);
        }
        s.has_logits = false;
        let mut logits = s.session.prefill(ids)?;
        stream.reset();
        let emit = |piece: &str, token: i32| -> bool {
            match callback {
                // SAFETY: the caller vouches that `callback` may be called with `user_data`; the
                // piece is borrowed for the call only, as documented.
                Some(cb) => unsafe {
                    cb(piece.as_ptr().cast(), piece.len(), token, user_data) != 0
                },
                None => false,
            }
        };
        let budget = (n_predict as usize).min(n_ctx - start - ids.len());
        let mut generated = 0usize;
        let mut stopped = false;
        while generated < budget {
            let next = sm.sampler.sample(logits);
            sm.sampler.accept(next);
            generated += 1;
            if tok.is_eog(next) {
                break;
            }
            if emit(stream.push(tok, next, false), next as i32) {
                stopped = true;
                break;
            }
            if generated == budget {
                break;
            }
            logits = s.session.decode(next)?;
        }
        s.has_logits = true;
        let rest = stream.finish();
        if !stopped && !rest.is_empty() {
            emit(rest, -1);
        }
        if !n_generated_out.is_null() {
            // SAFETY: non-NULL; writability is the caller's contract.
            unsafe { write_out(n_generated_out, generated, "n_generated_out") }?;
        }
        Ok(())
    })
}
