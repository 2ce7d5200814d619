//! ingot's C ABI: a thin translation of `ingot-runtime` into the functions, structs and status codes
//! of `include/ingot.h` (generated from this crate by cbindgen; `tests/header.rs` keeps it current).
//!
//! What it owns: handles (model, session, sampler) and their lifetimes, status codes and the
//! thread-local error message, argument checking (NULL pointers, sizes, UTF-8, token ids) and the one
//! panic boundary every `extern "C"` body goes through ([`boundary`]). What it does not: any inference
//! logic; every call forwards to the runtime.
//!
//! The C names (`ingot_model`, `ingot_session_params`, ...) are the Rust names, so that cbindgen needs
//! no renaming table.

#![allow(non_camel_case_types)]

mod model;
mod session;
mod text;

pub use model::*;
pub use session::*;
pub use text::*;

use core::ffi::c_char;
use ingot_runtime::Error;
use std::cell::RefCell;
use std::ffi::{CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once, OnceLock};

/// Major version of the library (semantic versioning of the crate).
pub const INGOT_VERSION_MAJOR: u32 = 0;
/// Minor version of the library.
pub const INGOT_VERSION_MINOR: u32 = 1;
/// Patch version of the library.
pub const INGOT_VERSION_PATCH: u32 = 0;
/// Version of the binary interface this header describes; compare with `ingot_abi_version()`.
/// 2: `ingot_session_params` gained `device` (read through a pointer, so a program built against
/// version 1 would pass a struct 4 bytes short).
pub const INGOT_ABI_VERSION: u32 = 2;

/// The status every fallible function returns (as `int32_t`): `INGOT_OK` or a negative error code.
/// Codes are never renumbered or reused.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ingot_status {
    /// Success.
    INGOT_OK = 0,
    /// A pointer argument that must not be NULL was NULL.
    INGOT_ERR_NULL = -1,
    /// An argument is out of range or malformed: a size, a token id, a sampler parameter, text that is
    /// not UTF-8, a key that is absent.
    INGOT_ERR_INVALID = -2,
    /// The output buffer is too small; the size needed was written to the size out-parameter.
    INGOT_ERR_BUFFER_TOO_SMALL = -3,
    /// The operating system refused a file operation (open, map).
    INGOT_ERR_IO = -4,
    /// The bytes are not a usable GGUF model (malformed container, missing or bad metadata or tensors,
    /// unsupported architecture, unusable tokenizer).
    INGOT_ERR_MODEL = -5,
    /// The tokens do not fit in the session's remaining context (n_ctx).
    INGOT_ERR_CONTEXT_FULL = -6,
    /// The model's chat template failed to compile or render.
    INGOT_ERR_TEMPLATE = -7,
    /// The call is not valid in the object's current state (e.g. sampling before any evaluation).
    INGOT_ERR_STATE = -8,
    /// A bug inside ingot was caught at the boundary (a Rust panic); the object involved should be
    /// freed and not used again.
    INGOT_ERR_INTERNAL = -9,
}

/// A failed call: the status code returned and the message kept for `ingot_last_error`.
#[derive(Debug)]
pub(crate) struct Fail {
    code: ingot_status,
    msg: String,
}

pub(crate) type R<T> = Result<T, Fail>;

impl Fail {
    pub(crate) fn new(code: ingot_status, msg: impl Into<String>) -> Fail {
        Fail {
            code,
            msg: msg.into(),
        }
    }

    pub(crate) fn null(what: &str) -> Fail {
        Fail::new(ingot_status::INGOT_ERR_NULL, format!("`{what}` is NULL"))
    }

    pub(crate) fn invalid(msg: impl Into<String>) -> Fail {
        Fail::new(ingot_status::INGOT_ERR_INVALID, msg)
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        use ingot_status::*;
        let code = match &e {
            Error::Gguf { .. }
            | Error::MissingKey { .. }
            | Error::BadMetadata { .. }
            | Error::Tensor { .. }
            | Error::Model { .. }
            | Error::Tokenizer { .. } => INGOT_ERR_MODEL,
            Error::Template { .. } => INGOT_ERR_TEMPLATE,
            Error::Request { .. } => INGOT_ERR_INVALID,
            Error::Io { .. } => INGOT_ERR_IO,
        };
        Fail::new(code, e.to_string())
    }
}

thread_local! {
    /// The message of the last failed call on this thread, NUL-terminated for C.
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(msg: &str) {
    // An interior NUL (from a file name, say) would cut the message short; show it escaped instead.
    let c = CString::new(msg.replace('\0', "\\0")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

/// How many ingot calls are running (on any thread, the thread pool's workers included).
static CALLS_IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
/// Where the last panic inside an ingot call happened, for the error message.
static PANIC_LOCATION: Mutex<String> = Mutex::new(String::new());

/// Installs, once, a panic hook that keeps quiet while an ingot call runs: a library must not write to
/// its host's stderr, and std's default hook would print the message and a backtrace note there.
/// The panic's location is kept for `ingot_last_error`; outside ingot calls the hook that was
/// installed before (the host's, or std's default) runs unchanged.
fn install_panic_hook() {
    // The previous hook is kept in a static and the new one captures nothing, so that installing
    // allocates nothing (std's default hook is a zero-sized Box): valgrind sees no new memory.
    static PREVIOUS: OnceLock<PanicHook> = OnceLock::new();
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = PREVIOUS.set(std::panic::take_hook());
        std::panic::set_hook(Box::new(|info| {
            if CALLS_IN_FLIGHT.load(Ordering::Relaxed) == 0 {
                if let Some(previous) = PREVIOUS.get() {
                    previous(info);
                }
                return;
            }
            if let (Some(at), Ok(mut slot)) = (info.location(), PANIC_LOCATION.lock()) {
                slot.clear();
                slot.push_str(at.file());
                slot.push(':');
                slot.push_str(&at.line().to_string());
            }
        }));
    });
}

type PanicHook = Box<dyn Fn(&std::panic::PanicHookInfo<'_>) + Sync + Send + 'static>;

/// Counts an ingot call in flight for as long as it lives (also when unwinding).
struct InFlight;

impl InFlight {
    fn enter() -> InFlight {
        install_panic_hook();
        CALLS_IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        CALLS_IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The panic boundary: runs `f`, turns its error into a status and the thread's last-error message,
/// and a panic into `INGOT_ERR_INTERNAL`. Every `extern "C"` function's body goes through here, so
/// no unwinding ever reaches C (which would be undefined behaviour).
pub(crate) fn boundary(f: impl FnOnce() -> R<()>) -> i32 {
    let _in_flight = InFlight::enter();
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => ingot_status::INGOT_OK as i32,
        Ok(Err(fail)) => {
            set_last_error(&fail.msg);
            fail.code as i32
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            let at = PANIC_LOCATION.lock().map(|l| l.clone()).unwrap_or_default();
            // Formatting the message could itself panic only on allocation failure, which aborts.
            set_last_error(&format!(
                "internal error in ingot (please report): {what} (at {at})"
            ));
            ingot_status::INGOT_ERR_INTERNAL as i32
        }
    }
}

/// [`boundary`] for functions without a status (getters, `*_free`): `fallback` if `f` panics.
pub(crate) fn boundary_value<T>(fallback: T, f: impl FnOnce() -> T) -> T {
    let _in_flight = InFlight::enter();
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(fallback)
}

/// `&*p`, or `INGOT_ERR_NULL` naming the argument.
///
/// # Safety
/// `p` is NULL or points to a live `T` that is not mutated during `'x`.
pub(crate) unsafe fn ref_arg<'x, T>(p: *const T, what: &str) -> R<&'x T> {
    // SAFETY: non-NULL was checked by `as_ref`; validity is the caller's contract.
    unsafe { p.as_ref() }.ok_or_else(|| Fail::null(what))
}

/// `&mut *p`, or `INGOT_ERR_NULL` naming the argument.
///
/// # Safety
/// `p` is NULL or points to a live `T` not otherwise accessed during `'x`.
pub(crate) unsafe fn mut_arg<'x, T>(p: *mut T, what: &str) -> R<&'x mut T> {
    // SAFETY: non-NULL was checked by `as_mut`; exclusivity is the caller's contract.
    unsafe { p.as_mut() }.ok_or_else(|| Fail::null(what))
}

/// `p[..n]` as a slice; NULL is accepted for `n == 0`. Rejects sizes no allocation can have.
///
/// # Safety
/// When `n > 0`, `p` points to `n` initialized `T`s that are not mutated during `'x`.
pub(crate) unsafe fn slice_arg<'x, T>(p: *const T, n: usize, what: &str) -> R<&'x [T]> {
    if n == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(Fail::null(what));
    }
    if n.checked_mul(size_of::<T>())
        .is_none_or(|b| b > isize::MAX as usize)
    {
        return Err(Fail::invalid(format!("`{what}`: length {n} is impossible")));
    }
    if !(p as usize).is_multiple_of(align_of::<T>()) {
        return Err(Fail::invalid(format!("`{what}` is misaligned")));
    }
    // SAFETY: non-NULL, aligned, size within isize::MAX (checked above); the caller guarantees `n`
    // initialized elements that stay unchanged while borrowed.
    Ok(unsafe { core::slice::from_raw_parts(p, n) })
}

/// A NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string not mutated during `'x`.
pub(crate) unsafe fn str_arg<'x>(p: *const c_char, what: &str) -> R<&'x str> {
    if p.is_null() {
        return Err(Fail::null(what));
    }
    // SAFETY: non-NULL; NUL termination and lifetime are the caller's contract.
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str()
        .map_err(|e| Fail::invalid(format!("`{what}` is not UTF-8: {e}")))
}

/// Writes `v` to the out-parameter `p`.
///
/// # Safety
/// `p` is NULL or valid for a write of `T`.
pub(crate) unsafe fn write_out<T>(p: *mut T, v: T, what: &str) -> R<()> {
    if p.is_null() {
        return Err(Fail::null(what));
    }
    // SAFETY: non-NULL; writability is the caller's contract. `write` does not drop the old value,
    // which for the plain C types used here is nothing.
    unsafe { p.write(v) };
    Ok(())
}

/// Copies `text` and a NUL into `buf[..cap]` and stores `text.len()` in `*len_out`; when `cap` is
/// too small writes nothing but the length and returns `INGOT_ERR_BUFFER_TOO_SMALL`.
///
/// # Safety
/// `buf` is NULL or valid for `cap` bytes of writes; `len_out` is NULL or valid for a write.
pub(crate) unsafe fn write_text(
    text: &[u8],
    buf: *mut c_char,
    cap: usize,
    len_out: *mut usize,
) -> R<()> {
    // SAFETY: forwarded contract.
    unsafe { write_out(len_out, text.len(), "len_out") }?;
    if cap < text.len() + 1 {
        return Err(Fail::new(
            ingot_status::INGOT_ERR_BUFFER_TOO_SMALL,
            format!(
                "the text needs {} bytes with its NUL, the buffer has {cap}",
                text.len() + 1
            ),
        ));
    }
    if buf.is_null() {
        return Err(Fail::null("buf"));
    }
    // SAFETY: `buf` is non-NULL and valid for `cap >= len + 1` bytes (caller's contract); `text` is a
    // Rust slice, which cannot overlap a buffer the caller hands us for writing.
    unsafe {
        core::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), text.len());
        buf.add(text.len()).write(0);
    }
    Ok(())
}

/// The library's `INGOT_ABI_VERSION`: a program compares it with the header's at start-up.
/// Thread-safe; never fails.
#[no_mangle]
pub extern "C" fn ingot_abi_version() -> u32 {
    INGOT_ABI_VERSION
}

/// The library's version as "MAJOR.MINOR.PATCH", a static string (never freed). Thread-safe.
#[no_mangle]
pub extern "C" fn ingot_version() -> *const c_char {
    c"0.1.0".as_ptr()
}

/// The message of the last call on this thread that returned a negative status ("" if none). The
/// string is owned by the library and stays valid until the next ingot call on the same thread;
/// copy it to keep it. Thread-safe (each thread has its own message); never NULL.
#[no_mangle]
pub extern "C" fn ingot_last_error() -> *const c_char {
    boundary_value(c"".as_ptr(), || {
        // The CString's heap buffer does not move until the next `set_last_error` on this thread,
        // which only another ingot call performs.
        LAST_ERROR.with(|e| e.borrow().as_ptr())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_string_matches_constants() {
        let v = format!("{INGOT_VERSION_MAJOR}.{INGOT_VERSION_MINOR}.{INGOT_VERSION_PATCH}");
        // SAFETY: a static NUL-terminated literal.
        let s = unsafe { CStr::from_ptr(ingot_version()) };
        assert_eq!(s.to_str().unwrap(), v);
        assert_eq!(v, env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn panics_become_internal_errors() {
        let code = boundary(|| panic!("boom"));
        assert_eq!(code, ingot_status::INGOT_ERR_INTERNAL as i32);
        // SAFETY: ingot_last_error never returns NULL and the string lives until the next call.
        let msg = unsafe { CStr::from_ptr(ingot_last_error()) };
        let msg = msg.to_str().unwrap();
        assert!(msg.contains("boom"), "{msg:?}");
        assert!(
            msg.contains("capi/src/lib.rs:"),
            "the location is kept: {msg:?}"
        );
    }
}
