//! Model handles: loading from a file (memory-mapped) or from a caller's buffer (zero-copy), info
//! queries, metadata strings, freeing.

use crate::{
    boundary, boundary_value, ingot_status, ref_arg, slice_arg, str_arg, write_out, write_text,
    Fail, R,
};
use core::ffi::{c_char, c_void};
use ingot_runtime::gguf::{Gguf, GgufFile};
use ingot_runtime::model::Model;
use ingot_runtime::Error;

/// A loaded model (opaque). Read-only after loading: any number of threads may use it at once.
#[derive(Debug)]
pub struct ingot_model {
    /// Borrows either `_file`'s mapping or the caller's buffer, hence `'static` here: the handle's
    /// owner guarantees the bytes outlive it (see the two constructors).
    pub(crate) model: Model<'static>,
    /// Bytes of the GGUF image.
    file_len: usize,
    /// The mapping of `ingot_model_load_file`; declared after `model` so that it is dropped after it.
    _file: Option<GgufFile>,
}

// The header promises that a model may be used from many threads at once and that sessions and
// samplers may move between threads: the compiler checks both.
const _: () = {
    const fn shared<T: Send + Sync>() {}
    const fn movable<T: Send>() {}
    shared::<ingot_model>();
    movable::<crate::ingot_session>();
    movable::<crate::ingot_sampler>();
};

/// What `ingot_model_get_info` reports about a model. Append-only.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ingot_model_info {
    /// Bytes of the whole GGUF (the mapping or the caller's buffer).
    pub file_bytes: u64,
    /// Bytes of all weight tensors: what a forward pass reads (mapped; Q4_0 repacked by
    /// `ingot_model_load_file` on some CPUs, same size).
    pub weight_bytes: u64,
    /// Vocabulary size: valid token ids are 0..n_vocab.
    pub n_vocab: u32,
    /// Context length the model was trained for.
    pub n_ctx_train: u32,
    /// Model width.
    pub n_embd: u32,
    /// Layers.
    pub n_layer: u32,
    /// Query heads.
    pub n_head: u32,
    /// Key/value heads.
    pub n_head_kv: u32,
    /// Dimension of one head.
    pub head_dim: u32,
    /// Feed-forward width.
    pub n_ff: u32,
    /// Beginning-of-sequence token, or -1.
    pub bos: i32,
    /// End-of-sequence token, or -1.
    pub eos: i32,
    /// Whether the file carries `tokenizer.chat_template` (otherwise ChatML is used).
    pub has_chat_template: bool,
}

/// Parses `bytes` into a model handle that keeps `file` (if any) alive.
fn load(bytes: &'static [u8], file: Option<GgufFile>) -> R<*mut ingot_model> {
    let gguf = Gguf::parse(bytes).map_err(|e| match (&file, e) {
        (Some(f), Error::Gguf { offset, what }) => Error::Gguf {
            offset,
            what: format!("{}: {what}", f.path()),
        },
        (_, e) => e,
    })?;
    // A mapped file may be repacked for the kernels (its pages are released after, so the resident
    // size stays the same); a caller's buffer is used as it is, never copied.
    let loaded = if file.is_some() {
        Model::from_gguf(gguf)
    } else {
        Model::from_gguf_unpacked(gguf)
    };
    let model = loaded.map_err(|e| {
        let mut fail = Fail::from(e);
        if let Some(f) = &file {
            fail.msg = format!("{}: {}", f.path(), fail.msg);
        }
        fail
    })?;
    if let Some(f) = &file {
        for m in model.weights.matrices().filter(|m| m.packed.is_some()) {
            f.release(m.data);
        }
    }
    Ok(Box::into_raw(Box::new(ingot_model {
        model,
        file_len: bytes.len(),
        _file: file,
    })))
}

/// Loads the GGUF model at `path` (NUL-terminated UTF-8) by memory-mapping it; the weights are read
/// from the mapping, except Q4_0, Q8_0 and Q4_1 matrices on CPUs whose kernels repack them (Q4_0:
/// AVX-512, AVX2, NEON with dotprod; Q8_0, Q4_1: AVX-512; the results are unchanged;
/// `INGOT_REPACK=0` disables it): those are copied once into the packed layout and
/// their mapped pages released, so the resident size does not grow. On success `*model_out` owns a new model: free it with
/// `ingot_model_free` after every session made from it. Thread-safe.
///
/// # Safety
/// `path` is NULL or NUL-terminated; `model_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ingot_model_load_file(
    path: *const c_char,
    model_out: *mut *mut ingot_model,
) -> i32 {
    boundary(|| {
        // SAFETY: caller's contract.
        let path = unsafe { str_arg(path, "path") }?;
        if model_out.is_null() {
            return Err(Fail::null("model_out"));
        }
        let file = GgufFile::open(path)?;
        // SAFETY: the mapping's address is fixed for the life of `file` (moving a GgufFile moves
        // the handle, not the mapped pages), and `load` stores `file` in the handle next to the model,
        // dropped after it; so the bytes outlive every borrow the model holds.
        let bytes: &'static [u8] =
            unsafe { core::slice::from_raw_parts(file.bytes().as_ptr(), file.bytes().len()) };
        let m = load(bytes, Some(file))?;
        // SAFETY: checked non-NULL above; writability is the caller's contract.
        unsafe { write_out(model_out, m, "model_out") }
    })
}

/// Loads a model from a GGUF image already in memory: `data[0..size]`, for systems without a file
/// system (flash, an embedded blob). Zero-copy (no repacking either): the model reads its weights
/// from `data`, which the caller keeps alive and unchanged until `ingot_model_free`. Any alignment
/// works. On success `*model_out` owns a new model. Thread-safe.
///
/// # Safety
/// `data` points to `size` readable bytes that stay valid and unmodified until the model is freed;
/// `model_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ingot_model_load_memory(
    data: *const c_void,
    size: usize,
    model_out: *mut *mut ingot_model,
) -> i32 {
    boundary(|| {
        if data.is_null() {
            return Err(Fail::null("data"));
        }
        if model_out.is_null() {
            return Err(Fail::null("model_out"));
        }
        // SAFETY: the caller guarantees `size` readable bytes that outlive the model (documented
        // above), which is what the `'static` borrow stands for.
        let bytes: &'static [u8] = unsafe { slice_arg(data.cast::<u8>(), size, "data") }?;
        let m = load(bytes, None)?;
        // SAFETY: checked non-NULL above; writability is the caller's contract.
        unsafe { write_out(model_out, m, "model_out") }
    })
}

/// Frees a model from `ingot_model_load_*`. NULL is a no-op. Every session created from it must
/// have been freed first; the model must not be in use on another thread.
///
/// # Safety
/// `model` is NULL or a handle from `ingot_model_load_*` not freed yet.
#[no_mangle]
pub unsafe extern "C" fn ingot_model_free(model: *mut ingot_model) {
    boundary_value((), || {
        if !model.is_null() {
            // SAFETY: the handle came from `Box::into_raw` in `load` and is freed once (contract).
            drop(unsafe { Box::from_raw(model) });
        }
    })
}

/// Fills `info` with the model's sizes and special tokens. `info_size` is `sizeof(ingot_model_info)`
/// as the caller compiled it: only that many bytes are written, so a program built against an
/// older, shorter struct keeps working. Thread-safe.
///
/// # Safety
/// `model` is NULL or a live model; `info` is NULL or writable for `info_size` bytes.
#[no_mangle]
pub unsafe extern "C" fn ingot_model_get_info(
    model: *const ingot_model,
    info: *mut ingot_model_info,
    info_size: usize,
) -> i32 {
    boundary(|| {
        // SAFETY: caller's contract.
        let m = unsafe { ref_arg(model, "model") }?;
        if info.is_null() {
            return Err(Fail::null("info"));
        }
        let model = &m.model;
        let c = &model.config;
        let tok = &model.tokenizer;
        let u = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        let id = |t: Option<u32>| t.map_or(-1, |t| t as i32);
        let full = ingot_model_info {
            file_bytes: m.file_len as u64,
            weight_bytes: model.weight_bytes(),
            n_vocab: u(c.n_vocab),
            n_ctx_train: u(c.n_ctx_train),
            n_embd: u(c.n_embd),
            n_layer: u(c.n_layer),
            n_head: u(c.n_head),
            n_head_kv: u(c.n_head_kv),
            head_dim: u(c.head_dim),
            n_ff: u(c.n_ff),
            bos: id(tok.bos()),
            eos: id(tok.eos()),
            has_chat_template: model.chat_template.is_some(),
        };
        let n = info_size.min(size_of::<ingot_model_info>());
        // SAFETY: `info` is non-NULL and writable for `info_size >= n` bytes (caller's contract);
        // `full` is a local, so the ranges do not overlap.
        unsafe {
            core::ptr::copy_nonoverlapping((&raw const full).cast::<u8>(), info.cast::<u8>(), n)
        };
        Ok(())
    })
}

/// Copies the string metadata value of `key` (e.g. "general.name", "general.architecture") and a NUL
/// into `buf[0..buf_size]`, and its length (without the NUL) into `*len_out`. If `buf_size` is too
/// small, writes only `*len_out` and returns `INGOT_ERR_BUFFER_TOO_SMALL`; call again with
/// `*len_out + 1` bytes. A missing or non-string key is `INGOT_ERR_INVALID`. Thread-safe.
///
/// # Safety
/// `model` is NULL or live; `key` is NULL or NUL-terminated; `buf` is NULL or writable for
/// `buf_size` bytes; `len_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ingot_model_meta_str(
    model: *const ingot_model,
    key: *const c_char,
    buf: *mut c_char,
    buf_size: usize,
    len_out: *mut usize,
) -> i32 {
    boundary(|| {
        // SAFETY: caller's contract.
        let m = unsafe { ref_arg(model, "model") }?;
        // SAFETY: caller's contract.
        let key = unsafe { str_arg(key, "key") }?;
        let value = m.model.gguf.get_str(key)?.ok_or_else(|| {
            Fail::new(
                ingot_status::INGOT_ERR_INVALID,
                format!("the model has no metadata key `{key}`"),
            )
        })?;
        // SAFETY: caller's contract.
        unsafe { write_text(value.as_bytes(), buf, buf_size, len_out) }
    })
}
