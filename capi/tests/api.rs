//! The C ABI driven from Rust through its `extern "C"` functions, on the SmolLM2 test model: every
//! function against the runtime it translates (tokens, text, templates, greedy and seeded generation),
//! and the error contract (NULLs, bad sizes, bad ids, small buffers, bad files: a status and a message,
//! never a crash). The C programs in examples/c are checked against the CLI by capi/scripts/test-c.sh.

use core::ffi::{c_char, c_void, CStr};
use ingot::*;
use ingot_runtime::chat::{ChatMessage, ChatTemplate};
use ingot_runtime::gguf::GgufFile;
use ingot_runtime::model::{session_bytes, Model, Session, SessionParams, SESSION_HANDLE_BYTES};
use ingot_runtime::sampler::{Sampler, SamplerParams};
use std::path::PathBuf;
use std::ptr::{null, null_mut};

const OK: i32 = ingot_status::INGOT_OK as i32;
const NULL: i32 = ingot_status::INGOT_ERR_NULL as i32;
const INVALID: i32 = ingot_status::INGOT_ERR_INVALID as i32;
const SMALL: i32 = ingot_status::INGOT_ERR_BUFFER_TOO_SMALL as i32;
const IO: i32 = ingot_status::INGOT_ERR_IO as i32;
const MODEL: i32 = ingot_status::INGOT_ERR_MODEL as i32;
const FULL: i32 = ingot_status::INGOT_ERR_CONTEXT_FULL as i32;
const STATE: i32 = ingot_status::INGOT_ERR_STATE as i32;

/// The SmolLM2 test model: `$INGOT_MODEL`, else `models/` (scripts/fetch-model.sh), else
/// `../shared/models`.
fn model_path() -> PathBuf {
    if let Ok(p) = std::env::var("INGOT_MODEL") {
        return PathBuf::from(p);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let name = "SmolLM2-135M-Instruct.Q4_1.gguf";
    for cand in [
        root.join("models").join(name),
        root.join("../shared/models").join(name),
    ] {
        if cand.exists() {
            return cand;
        }
    }
    panic!("test model {name} not found: run scripts/fetch-model.sh (or set INGOT_MODEL)");
}

fn last_error() -> String {
    // SAFETY: never NULL; valid until the next ingot call on this thread, and copied at once.
    unsafe { CStr::from_ptr(ingot_last_error()) }
        .to_str()
        .unwrap()
        .to_string()
}

/// Asserts `status == want` and that the message contains `needle`.
#[track_caller]
fn expect_err(status: i32, want: i32, needle: &str) {
    assert_eq!(status, want, "message: {}", last_error());
    let msg = last_error();
    assert!(msg.contains(needle), "`{msg}` does not mention `{needle}`");
}

struct Loaded {
    ptr: *mut ingot_model,
}

impl Drop for Loaded {
    fn drop(&mut self) {
        // SAFETY: from ingot_model_load_file, freed once, after the sessions of each test.
        unsafe { ingot_model_free(self.ptr) }
    }
}

fn load() -> Loaded {
    let path = std::ffi::CString::new(model_path().to_str().unwrap()).unwrap();
    let mut ptr = null_mut();
    // SAFETY: NUL-terminated path, writable out-pointer.
    let st = unsafe { ingot_model_load_file(path.as_ptr(), &mut ptr) };
    assert_eq!(st, OK, "{}", last_error());
    Loaded { ptr }
}

/// The same model through the runtime, as the reference the ABI must agree with.
fn with_reference<T>(f: impl FnOnce(&Model<'_>) -> T) -> T {
    let file = GgufFile::open(model_path()).unwrap();
    let model = Model::from_gguf(file.parse().unwrap()).unwrap();
    f(&model)
}

fn tokenize(m: *const ingot_model, text: &str, add: bool, parse: bool) -> Vec<i32> {
    let mut n = 0usize;
    // SAFETY: a NULL buffer of capacity 0 and a writable count: asks for the size.
    let st = unsafe {
        ingot_tokenize(
            m,
            text.as_ptr().cast(),
            text.len(),
            add,
            parse,
            null_mut(),
            0,
            &mut n,
        )
    };
    if n == 0 {
        assert_eq!(st, OK);
        return Vec::new();
    }
    assert_eq!(st, SMALL);
    let mut ids = vec![-1i32; n];
    let mut n2 = 0usize;
    // SAFETY: `ids` holds `n` writable ids.
    let st = unsafe {
        ingot_tokenize(
            m,
            text.as_ptr().cast(),
            text.len(),
            add,
            parse,
            ids.as_mut_ptr(),
            ids.len(),
            &mut n2,
        )
    };
    assert_eq!((st, n2), (OK, n), "{}", last_error());
    ids
}

#[test]
fn versions_and_info() {
    assert_eq!(ingot_abi_version(), INGOT_ABI_VERSION);
    let m = load();
    let mut info = ingot_model_info::default();
    // SAFETY: live model, writable struct of the size given.
    let st = unsafe { ingot_model_get_info(m.ptr, &mut info, size_of::<ingot_model_info>()) };
    assert_eq!(st, OK);
    let file_len = std::fs::metadata(model_path()).unwrap().len();
    with_reference(|r| {
        let c = &r.config;
        assert_eq!(info.file_bytes, file_len);
        assert_eq!(info.weight_bytes, r.weight_bytes());
        assert_eq!(
            (
                info.n_vocab,
                info.n_embd,
                info.n_layer,
                info.n_head,
                info.n_head_kv
            ),
            (
                c.n_vocab as u32,
                c.n_embd as u32,
                c.n_layer as u32,
                c.n_head as u32,
                c.n_head_kv as u32
            )
        );
        assert_eq!(info.bos, r.tokenizer.bos().map_or(-1, |t| t as i32));
        assert_eq!(info.has_chat_template, r.chat_template.is_some());
    });
    // A caller compiled against a shorter struct: only its prefix is written.
    let mut short = [0xFFu8; size_of::<ingot_model_info>()];
    // SAFETY: 16 writable bytes given as the size.
    let st = unsafe { ingot_model_get_info(m.ptr, short.as_mut_ptr().cast(), 16) };
    assert_eq!(st, OK);
    assert_eq!(&short[..8], &file_len.to_ne_bytes());
    assert!(short[16..].iter().all(|&b| b == 0xFF));

    let mut buf = [0 as c_char; 64];
    let mut len = 0usize;
    // SAFETY: NUL-terminated key, 64 writable bytes.
    let st = unsafe {
        ingot_model_meta_str(
            m.ptr,
            c"general.architecture".as_ptr(),
            buf.as_mut_ptr(),
            buf.len(),
            &mut len,
        )
    };
    assert_eq!(st, OK);
    // SAFETY: NUL-terminated by the call.
    let arch = unsafe { CStr::from_ptr(buf.as_ptr()) };
    assert_eq!(arch.to_str().unwrap(), "llama");
    assert_eq!(len, 5);
    // Too small (5 bytes, no room for the NUL): the length needed and an error.
    let mut len = 0usize;
    // SAFETY: 5 writable bytes.
    let st = unsafe {
        ingot_model_meta_str(
            m.ptr,
            c"general.architecture".as_ptr(),
            buf.as_mut_ptr(),
            5,
            &mut len,
        )
    };
    assert_eq!((st, len), (SMALL, 5));
    // SAFETY: as above.
    let st = unsafe {
        ingot_model_meta_str(
            m.ptr,
            c"no.such.key".as_ptr(),
            buf.as_mut_ptr(),
            64,
            &mut len,
        )
    };
    expect_err(st, INVALID, "no.such.key");
}

#[test]
fn tokens_and_text_match_the_runtime() {
    let m = load();
    let texts = [
        "Hello world",
        "<|im_start|>user\nHi<|im_end|>",
        "naïve café 日本語 🎉",
        "",
    ];
    with_reference(|r| {
        for text in texts {
            for (add, parse) in [(true, true), (false, false)] {
                let got = tokenize(m.ptr, text, add, parse);
                let want: Vec<i32> = r
                    .tokenizer
                    .encode(text, add, parse)
                    .iter()
                    .map(|&t| t as i32)
                    .collect();
                assert_eq!(got, want, "{text:?}");
                for special in [false, true] {
                    let mut len = 0usize;
                    // SAFETY: `got` readable; a NULL buffer of size 0 asks for the length.
                    let st = unsafe {
                        ingot_detokenize(
                            m.ptr,
                            got.as_ptr(),
                            got.len(),
                            special,
                            null_mut(),
                            0,
                            &mut len,
                        )
                    };
                    assert_eq!(st, SMALL);
                    let mut buf = vec![0 as c_char; len + 1];
                    // SAFETY: `len + 1` writable bytes.
                    let st = unsafe {
                        ingot_detokenize(
                            m.ptr,
                            got.as_ptr(),
                            got.len(),
                            special,
                            buf.as_mut_ptr(),
                            buf.len(),
                            &mut len,
                        )
                    };
                    assert_eq!(st, OK);
                    // SAFETY: NUL-terminated by the call.
                    let s = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_str().unwrap();
                    let ids: Vec<u32> = got.iter().map(|&t| t as u32).collect();
                    assert_eq!(s, r.tokenizer.decode(&ids, special));
                }
            }
        }
    });
    // Bad input: not UTF-8, ids out of range.
    let mut n = 0usize;
    let bad = [0xFFu8, 0xFE];
    // SAFETY: 2 readable bytes.
    let st = unsafe {
        ingot_tokenize(
            m.ptr,
            bad.as_ptr().cast(),
            2,
            true,
            true,
            null_mut(),
            0,
            &mut n,
        )
    };
    expect_err(st, INVALID, "UTF-8");
    let ids = [1, -5];
    let mut len = 0usize;
    // SAFETY: 2 readable ids.
    let st = unsafe { ingot_detokenize(m.ptr, ids.as_ptr(), 2, false, null_mut(), 0, &mut len) };
    expect_err(st, INVALID, "-5");
}

#[test]
fn chat_template_matches_the_runtime() {
    let m = load();
    let msgs = [
        ingot_chat_message {
            role: c"system".as_ptr(),
            content: c"You are terse.".as_ptr(),
        },
        ingot_chat_message {
            role: c"user".as_ptr(),
            content: c"What is the capital of France?".as_ptr(),
        },
    ];
    let mut len = 0usize;
    // SAFETY: 2 readable messages with NUL-terminated strings; a NULL buffer of size 0.
    let st = unsafe {
        ingot_chat_apply_template(m.ptr, msgs.as_ptr(), 2, true, null_mut(), 0, &mut len)
    };
    assert_eq!(st, SMALL);
    let mut buf = vec![0 as c_char; len + 1];
    // SAFETY: `len + 1` writable bytes.
    let st = unsafe {
        ingot_chat_apply_template(
            m.ptr,
            msgs.as_ptr(),
            2,
            true,
            buf.as_mut_ptr(),
            len + 1,
            &mut len,
        )
    };
    assert_eq!(st, OK, "{}", last_error());
    // SAFETY: NUL-terminated by the call.
    let got = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_str().unwrap();
    let want = with_reference(|r| {
        let tok = &r.tokenizer;
        let text = |id: Option<u32>| id.and_then(|i| tok.token_text(i)).unwrap_or("").to_string();
        let t = ChatTemplate::new(r.chat_template.unwrap(), &text(tok.bos()), &text(tok.eos()))
            .unwrap();
        t.render(
            &[
                ChatMessage::new("system", "You are terse."),
                ChatMessage::new("user", "What is the capital of France?"),
            ],
            true,
        )
        .unwrap()
    });
    assert_eq!(got, want);
    assert!(got.ends_with("<|im_start|>assistant\n"), "{got}");
    // A NULL string inside a message is named.
    let bad = [ingot_chat_message {
        role: c"user".as_ptr(),
        content: null(),
    }];
    // SAFETY: one readable message.
    let st =
        unsafe { ingot_chat_apply_template(m.ptr, bad.as_ptr(), 1, true, null_mut(), 0, &mut len) };
    expect_err(st, NULL, "messages[0].content");
}

/// Generation through the ABI, collecting the streamed text; returns (text, tokens sampled).
fn generate(
    session: *mut ingot_session,
    sampler: *mut ingot_sampler,
    prompt: &str,
    n: u32,
    stop_after: usize,
) -> (String, usize) {
    struct Sink {
        text: Vec<u8>,
        calls: usize,
        stop_after: usize,
    }
    unsafe extern "C" fn on_piece(
        p: *const c_char,
        len: usize,
        _tok: i32,
        user: *mut c_void,
    ) -> i32 {
        // SAFETY: `user` is the `Sink` passed below, alive for the whole ingot_generate call; the
        // piece is `len` readable bytes during this call.
        let (sink, piece) = unsafe {
            (
                &mut *user.cast::<Sink>(),
                std::slice::from_raw_parts(p.cast::<u8>(), len),
            )
        };
        sink.text.extend_from_slice(piece);
        sink.calls += 1;
        i32::from(sink.calls >= sink.stop_after)
    }
    let mut sink = Sink {
        text: Vec::new(),
        calls: 0,
        stop_after,
    };
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
            (&raw mut sink).cast(),
            &mut n_gen,
        )
    };
    assert_eq!(st, OK, "{}", last_error());
    (String::from_utf8(sink.text).unwrap(), n_gen)
}

/// What `ingot generate` computes (src/commands/generate.rs), straight on the runtime.
fn reference_generate(params: SamplerParams, prompt: &str, n: usize, n_ctx: usize) -> String {
    with_reference(|r| {
        let tok = &r.tokenizer;
        let ids = tok.encode(prompt, true, true);
        let mut sampler = Sampler::new(params, r.config.n_vocab).unwrap();
        for &t in &ids {
            sampler.accept(t);
        }
        let mut s = Session::new(
            r,
            SessionParams {
                n_ctx,
                ..SessionParams::default()
            },
        )
        .unwrap();
        let mut logits = s.prefill(&ids).unwrap().to_vec();
        let mut out = Vec::new();
        for i in 0..n.min(n_ctx - ids.len()) {
            let next = sampler.sample(&logits);
            sampler.accept(next);
            if tok.is_eog(next) {
                break;
            }
            out.push(next);
            if i + 1 < n {
                logits = s.decode(next).unwrap().to_vec();
            }
        }
        tok.decode(&out, false)
    })
}

fn sampler(m: *const ingot_model, p: &ingot_sampler_params) -> *mut ingot_sampler {
    let mut s = null_mut();
    // SAFETY: live model, readable params, writable out-pointer.
    let st = unsafe { ingot_sampler_new(m, p, &mut s) };
    assert_eq!(st, OK, "{}", last_error());
    s
}

fn session(m: *const ingot_model, p: &ingot_session_params) -> *mut ingot_session {
    let mut s = null_mut();
    // SAFETY: live model, readable params, writable out-pointer.
    let st = unsafe { ingot_session_new(m, p, &mut s) };
    assert_eq!(st, OK, "{}", last_error());
    s
}

#[test]
fn generate_matches_the_runtime_greedy_and_seeded() {
    let m = load();
    let prompt = "The capital of France is";
    let sp = ingot_session_params {
        n_ctx: 256,
        ..ingot_session_params_default()
    };
    let greedy = ingot_sampler_params {
        temperature: 0.0,
        ..ingot_sampler_params_default()
    };
    let seeded = ingot_sampler_params {
        seed: 7,
        repeat_penalty: 1.1,
        ..ingot_sampler_params_default()
    };
    for p in [greedy, seeded] {
        let (se, sa) = (session(m.ptr, &sp), sampler(m.ptr, &p));
        let (text, n) = generate(se, sa, prompt, 24, usize::MAX);
        assert!(n > 0 && !text.is_empty());
        let rp = SamplerParams {
            temperature: p.temperature,
            top_k: p.top_k as usize,
            top_p: p.top_p,
            min_p: p.min_p,
            repeat_penalty: p.repeat_penalty,
            frequency_penalty: p.frequency_penalty,
            presence_penalty: p.presence_penalty,
            penalty_last_n: p.penalty_last_n as usize,
            seed: p.seed,
        };
        assert_eq!(text, reference_generate(rp, prompt, 24, 256), "{p:?}");
        // SAFETY: handles from *_new, freed once.
        unsafe {
            ingot_session_free(se);
            ingot_sampler_free(sa);
        }
    }
    // The callback cancels: 3 pieces, then stop.
    let (se, sa) = (session(m.ptr, &sp), sampler(m.ptr, &greedy));
    let (_, n) = generate(se, sa, prompt, 24, 3);
    assert_eq!(n, 3);
    // SAFETY: handles from *_new, freed once.
    unsafe {
        ingot_session_free(se);
        ingot_sampler_free(sa);
    }
}

#[test]
fn step_by_step_equals_generate_and_errors_are_clean() {
    let m = load();
    let sp = ingot_session_params {
        n_ctx: 32,
        ..ingot_session_params_default()
    };
    let greedy = ingot_sampler_params {
        temperature: 0.0,
        ..ingot_sampler_params_default()
    };
    let (se, sa) = (session(m.ptr, &sp), sampler(m.ptr, &greedy));
    let mut tok = 0i32;
    // SAFETY: all calls below get live handles from this test, readable inputs, writable outputs.
    unsafe {
        expect_err(ingot_sample(sa, se, &mut tok), STATE, "ingot_prefill");
        let ids = tokenize(m.ptr, "Once upon a time", true, true);
        expect_err(ingot_prefill(se, ids.as_ptr(), 0), INVALID, "zero tokens");
        expect_err(ingot_prefill(se, null(), 3), NULL, "tokens");
        let bad = [5, 1 << 30];
        expect_err(ingot_prefill(se, bad.as_ptr(), 2), INVALID, "1073741824");
        let long = [1i32; 33];
        expect_err(ingot_prefill(se, long.as_ptr(), 33), FULL, "context of 32");
        let mut n_past = 99usize;
        assert_eq!(ingot_session_n_past(se, &mut n_past), OK);
        assert_eq!(n_past, 0, "a failed prefill leaves the session unchanged");

        assert_eq!(ingot_prefill(se, ids.as_ptr(), ids.len()), OK);
        let mut steps = Vec::new();
        for _ in 0..8 {
            assert_eq!(ingot_sample(sa, se, &mut tok), OK);
            steps.push(tok);
            assert_eq!(ingot_decode_step(se, tok), OK);
        }
        let (mut lp, mut nv) = (null(), 0usize);
        assert_eq!(ingot_session_logits(se, &mut lp, &mut nv), OK);
        assert_eq!(nv, 49152);
        assert_eq!(ingot_session_n_past(se, &mut n_past), OK);
        assert_eq!(n_past, ids.len() + 8);

        // The same with ingot_generate on a fresh session.
        assert_eq!(ingot_session_reset(se), OK);
        let mut text = vec![0 as c_char; 256];
        let mut len = 0usize;
        assert_eq!(
            ingot_detokenize(
                m.ptr,
                steps.as_ptr(),
                8,
                false,
                text.as_mut_ptr(),
                256,
                &mut len
            ),
            OK
        );
        let want = CStr::from_ptr(text.as_ptr()).to_str().unwrap().to_string();
        let (got, _) = generate(se, sa, "Once upon a time", 8, usize::MAX);
        assert_eq!(got, want);

        // A prompt that leaves no room is refused before anything is evaluated.
        assert_eq!(ingot_session_reset(se), OK);
        let long = "word ".repeat(40);
        let st = ingot_generate(
            se,
            sa,
            long.as_ptr().cast(),
            long.len(),
            4,
            None,
            null_mut(),
            null_mut(),
        );
        expect_err(st, FULL, "context of 32");

        // NULLs and bad parameters.
        let bad_params = ingot_sampler_params {
            top_p: 2.0,
            ..greedy
        };
        let mut s2 = null_mut();
        expect_err(
            ingot_sampler_new(m.ptr, &bad_params, &mut s2),
            INVALID,
            "top_p",
        );
        let neg = ingot_sampler_params {
            top_k: -1,
            ..greedy
        };
        expect_err(ingot_sampler_new(m.ptr, &neg, &mut s2), INVALID, "top_k");
        expect_err(ingot_sample(null_mut(), se, &mut tok), NULL, "sampler");
        expect_err(ingot_decode_step(null_mut(), 1), NULL, "session");
        expect_err(ingot_sampler_accept(sa, 49152), INVALID, "49152");
        let zero = ingot_session_params { n_ctx: 0, ..sp };
        let mut s3 = null_mut();
        expect_err(
            ingot_session_new(m.ptr, &zero, &mut s3),
            INVALID,
            "at least 1",
        );
        // The device field: CUDA sessions are refused with a message, unknown devices too.
        let cuda = ingot_session_params {
            device: INGOT_DEVICE_CUDA,
            ..sp
        };
        expect_err(ingot_session_new(m.ptr, &cuda, &mut s3), INVALID, "CUDA");
        let bad = ingot_session_params { device: 7, ..sp };
        expect_err(
            ingot_session_new(m.ptr, &bad, &mut s3),
            INVALID,
            "unknown device 7",
        );
        expect_err(ingot_session_new(null(), &sp, &mut s3), NULL, "model");
        expect_err(ingot_session_new(m.ptr, null(), &mut s3), NULL, "params");
        assert!(
            s2.is_null() && s3.is_null(),
            "out-pointers untouched on failure"
        );

        ingot_session_free(se);
        ingot_sampler_free(sa);
        ingot_session_free(null_mut());
        ingot_sampler_free(null_mut());
        ingot_model_free(null_mut());
    }
}

#[test]
fn arena_exact_size_works_one_byte_less_fails() {
    let m = load();
    let sp = ingot_session_params {
        n_ctx: 128,
        n_batch: 16,
        n_threads: 2,
        device: INGOT_DEVICE_CPU,
    };
    let mut need = 0usize;
    // SAFETY: live model, readable params, writable size.
    let st = unsafe { ingot_session_arena_size(m.ptr, &sp, &mut need) };
    assert_eq!(st, OK);
    let want = with_reference(|r| {
        session_bytes(
            r,
            SessionParams {
                n_ctx: 128,
                n_batch: 16,
                n_threads: 2,
                ..Default::default()
            },
        )
    });
    assert_eq!(
        need,
        SESSION_HANDLE_BYTES + want,
        "the handle, then the runtime's buffers"
    );
    let greedy = ingot_sampler_params {
        temperature: 0.0,
        ..ingot_sampler_params_default()
    };
    // u32 storage: 4-byte aligned, as the arena must be.
    let mut storage = vec![0xA5A5_A5A5u32; need.div_ceil(4) + 1];
    let base = storage.as_mut_ptr().cast::<c_void>();
    let mut se = null_mut();
    // SAFETY: `need - 1` bytes of `storage` are writable; the session is not created.
    let st = unsafe { ingot_session_new_in_arena(m.ptr, &sp, base, need - 1, &mut se) };
    expect_err(st, INVALID, &format!("need {need} bytes"));
    assert!(se.is_null());
    // SAFETY: misaligned by one byte, still inside `storage`.
    let st = unsafe {
        ingot_session_new_in_arena(m.ptr, &sp, base.cast::<u8>().add(1).cast(), need, &mut se)
    };
    expect_err(st, INVALID, "aligned");
    // SAFETY: `need` writable bytes, untouched by anything else until the session is freed.
    let st = unsafe { ingot_session_new_in_arena(m.ptr, &sp, base, need, &mut se) };
    assert_eq!(st, OK, "{}", last_error());
    let sa = sampler(m.ptr, &greedy);
    let (in_arena, _) = generate(se, sa, "The capital of France is", 16, usize::MAX);
    // SAFETY: handles freed once, the session before its arena.
    unsafe {
        ingot_session_free(se);
        ingot_sampler_free(sa);
    }
    let (se, sa) = (session(m.ptr, &sp), sampler(m.ptr, &greedy));
    let (on_heap, _) = generate(se, sa, "The capital of France is", 16, usize::MAX);
    // SAFETY: freed once.
    unsafe {
        ingot_session_free(se);
        ingot_sampler_free(sa);
    }
    assert_eq!(in_arena, on_heap);
    drop(storage);
}

#[test]
fn bad_files_and_buffers_are_errors() {
    let mut m = null_mut();
    // SAFETY: every call gets readable inputs and writable outputs.
    unsafe {
        expect_err(ingot_model_load_file(null(), &mut m), NULL, "path");
        expect_err(
            ingot_model_load_file(c"/nonexistent/model.gguf".as_ptr(), &mut m),
            IO,
            "/nonexistent/model.gguf",
        );
        let junk = [0u8; 64];
        expect_err(
            ingot_model_load_memory(junk.as_ptr().cast(), junk.len(), &mut m),
            MODEL,
            "magic",
        );
        expect_err(ingot_model_load_memory(null(), 10, &mut m), NULL, "data");
        // A truncated image of the real model.
        let bytes = std::fs::read(model_path()).unwrap();
        expect_err(
            ingot_model_load_memory(bytes.as_ptr().cast(), bytes.len() / 2, &mut m),
            MODEL,
            "",
        );
        assert!(m.is_null());
        // The whole image from memory (zero-copy, at an odd address) works like the file.
        let mut shifted = vec![0u8; bytes.len() + 1];
        shifted[1..].copy_from_slice(&bytes);
        assert_eq!(
            ingot_model_load_memory(shifted.as_ptr().add(1).cast(), bytes.len(), &mut m),
            OK,
            "{}",
            last_error()
        );
        let f = load();
        let text = "Memory-loaded models tokenize the same.";
        assert_eq!(
            tokenize(m, text, true, true),
            tokenize(f.ptr, text, true, true)
        );
        let sp = ingot_session_params {
            n_ctx: 64,
            ..ingot_session_params_default()
        };
        let greedy = ingot_sampler_params {
            temperature: 0.0,
            ..ingot_sampler_params_default()
        };
        let mut outs = Vec::new();
        for model in [m as *const ingot_model, f.ptr] {
            let (se, sa) = (session(model, &sp), sampler(model, &greedy));
            outs.push(generate(se, sa, "Hello", 8, usize::MAX).0);
            ingot_session_free(se);
            ingot_sampler_free(sa);
        }
        assert_eq!(outs[0], outs[1]);
        ingot_model_free(m);
    }
}

#[test]
fn pieces_concatenate_to_the_detokenized_text() {
    let m = load();
    let text = "<|im_start|>user\nnaïve 🎉 日本語<|im_end|>";
    let ids = tokenize(m.ptr, text, true, true);
    with_reference(|r| {
        for special in [false, true] {
            let mut all = Vec::new();
            for &id in &ids {
                let mut buf = [0 as c_char; 64];
                let mut len = 0usize;
                // SAFETY: 64 writable bytes.
                let st = unsafe {
                    ingot_token_to_piece(m.ptr, id, special, buf.as_mut_ptr(), 64, &mut len)
                };
                assert_eq!(st, OK, "{}", last_error());
                all.extend(buf[..len].iter().map(|&c| c as u8));
            }
            let ids: Vec<u32> = ids.iter().map(|&t| t as u32).collect();
            assert_eq!(
                String::from_utf8(all).unwrap(),
                r.tokenizer.decode(&ids, special)
            );
        }
    });
    let mut len = 0usize;
    // SAFETY: a NULL buffer of size 0 asks for the length.
    let st = unsafe { ingot_token_to_piece(m.ptr, ids[3], true, null_mut(), 0, &mut len) };
    assert_eq!(st, SMALL);
    assert!(len > 0);
    // SAFETY: as above.
    let st = unsafe { ingot_token_to_piece(m.ptr, -1, true, null_mut(), 0, &mut len) };
    expect_err(st, INVALID, "-1");
}

#[test]
fn truncate_reuses_a_prefix() {
    let m = load();
    let sp = ingot_session_params {
        n_ctx: 64,
        ..ingot_session_params_default()
    };
    let ids = tokenize(m.ptr, "One two three four five six", true, true);
    let (a, b) = (session(m.ptr, &sp), session(m.ptr, &sp));
    // SAFETY: live sessions from this test, readable ids.
    unsafe {
        // a: the whole prompt at once. b: the first half, a detour, back to the half, the rest.
        assert_eq!(ingot_prefill(a, ids.as_ptr(), ids.len()), OK);
        let h = ids.len() / 2;
        assert_eq!(ingot_prefill(b, ids.as_ptr(), h), OK);
        assert_eq!(ingot_prefill(b, ids.as_ptr(), 3), OK);
        assert_eq!(ingot_session_truncate(b, h), OK);
        let mut n = 0usize;
        assert_eq!(ingot_session_n_past(b, &mut n), OK);
        assert_eq!(n, h);
        let (mut lp, mut nv) = (null(), 0usize);
        expect_err(
            ingot_session_logits(b, &mut lp, &mut nv),
            STATE,
            "no logits",
        );
        assert_eq!(ingot_prefill(b, ids.as_ptr().add(h), ids.len() - h), OK);
        let (mut la, mut lb) = (null(), null());
        assert_eq!(ingot_session_logits(a, &mut la, &mut nv), OK);
        assert_eq!(ingot_session_logits(b, &mut lb, &mut nv), OK);
        let (la, lb) = (
            std::slice::from_raw_parts(la, nv),
            std::slice::from_raw_parts(lb, nv),
        );
        // Same tokens at the same positions; batches split differently, so compare the argmax and
        // closeness rather than bits.
        let am = |l: &[f32]| {
            l.iter()
                .enumerate()
                .max_by(|x, y| x.1.total_cmp(y.1))
                .unwrap()
                .0
        };
        assert_eq!(am(la), am(lb));
        let max_diff = la
            .iter()
            .zip(lb)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(max_diff < 1e-2, "{max_diff}");
        ingot_session_free(a);
        ingot_session_free(b);
    }
}

#[test]
fn end_of_generation_tokens_match_the_runtime() {
    let m = load();
    with_reference(|r| {
        for id in 0..r.config.n_vocab as i32 {
            let mut eog = false;
            // SAFETY: live model, writable bool.
            assert_eq!(unsafe { ingot_token_is_eog(m.ptr, id, &mut eog) }, OK);
            assert_eq!(eog, r.tokenizer.is_eog(id as u32), "{id}");
        }
    });
    let mut eog = false;
    // SAFETY: as above.
    let st = unsafe { ingot_token_is_eog(m.ptr, 49152, &mut eog) };
    expect_err(st, INVALID, "49152");
}
