//! Text in and out: tokenizing, detokenizing and rendering a conversation with the model's chat
//! template. All of these only read the model, so they are thread-safe.

use crate::{
    boundary, ingot_model, ingot_status, ref_arg, slice_arg, str_arg, write_out, write_text, Fail,
};
use core::ffi::c_char;
use ingot_runtime::chat::{ChatMessage, ChatTemplate};

/// One message of a conversation for `ingot_chat_apply_template`: NUL-terminated UTF-8 strings,
/// borrowed for the duration of the call.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ingot_chat_message {
    /// "system", "user" or "assistant" (the template decides which roles it accepts).
    pub role: *const c_char,
    /// The message text.
    pub content: *const c_char,
}

/// Tokenizes `text[0..text_len]` (UTF-8, not necessarily NUL-terminated) with the model's tokenizer.
/// `add_special` adds BOS (and EOS) as the model's metadata asks; `parse_special` turns special-token
/// text ("<|im_start|>") into its token instead of tokenizing it as text. Writes the number of tokens
/// to `*n_tokens_out`; when it exceeds `capacity`, writes only that and returns
/// `INGOT_ERR_BUFFER_TOO_SMALL` (call again with a larger buffer), as `llama_tokenize` does. Thread-safe.
///
/// # Safety
/// `model` is NULL or live; `text` is readable for `text_len` bytes; `tokens` is NULL or writable for
/// `capacity` ids; `n_tokens_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ingot_tokenize(
    model: *const ingot_model,
    text: *const c_char,
    text_len: usize,
    add_special: bool,
    parse_special: bool,
    tokens: *mut i32,
    capacity: usize,
    n_tokens_out: *mut usize,
) -> i32 {
    boundary(|| {
        // SAFETY: caller's contract.
        let m = unsafe { ref_arg(model, "model") }?;
        // SAFETY: caller's contract.
        let bytes = unsafe { slice_arg(text.cast::<u8>(), text_len, "text") }?;
        let text = core::str::from_utf8(bytes)
            .map_err(|e| Fail::invalid(format!("`text` is not UTF-8: {e}")))?;
        let ids = m.model.tokenizer.encode(text, add_special, parse_special);
        // SAFETY: caller's contract.
        unsafe { write_out(n_tokens_out, ids.len(), "n_tokens_out") }?;
        if ids.len() > capacity {
            return Err(Fail::new(
                ingot_status::INGOT_ERR_BUFFER_TOO_SMALL,
                format!("{} tokens do not fit in a buffer of {capacity}", ids.len()),
            ));
        }
        if ids.is_empty() {
            return Ok(());
        }
        if tokens.is_null() {
            return Err(Fail::null("tokens"));
        }
        // SAFETY: non-NULL and writable for `capacity >= ids.len()` ids (caller's contract).
        let out = unsafe { core::slice::from_raw_parts_mut(tokens, ids.len()) };
        for (o, &id) in out.iter_mut().zip(&ids) {
            *o = i32::try_from(id)
                .map_err(|_| Fail::invalid(format!("token id {id} does not fit in an int32_t")))?;
        }
        Ok(())
    })
}

/// Turns `tokens[0..n_tokens]` back into UTF-8 text (invalid byte sequences become U+FFFD) and copies
/// it with a NUL into `buf[0..buf_size]`; its length without the NUL goes to `*len_out`. Control
/// tokens (BOS, "<|im_end|>") are left out unless `render_special`. When `buf_size < *len_out + 1`,
/// writes only `*len_out` and returns `INGOT_ERR_BUFFER_TOO_SMALL`. Ids outside the vocabulary are
/// `INGOT_ERR_INVALID`. Thread-safe.
///
/// # Safety
/// `model` is NULL or live; `tokens` is readable for `n_tokens` ids; `buf` is NULL or writable for
/// `buf_size` bytes; `len_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ingot_detokenize(
    model: *const ingot_model,
    tokens: *const i32,
    n_tokens: usize,
    render_special: bool,
    buf: *mut c_char,
    buf_size: usize,
    len_out: *mut usize,
) -> i32 {
    boundary(|| {
        // SAFETY: caller's contract.
        let m = unsafe { ref_arg(model, "model") }?;
        // SAFETY: caller's contract.
        let tokens = unsafe { slice_arg(tokens, n_tokens, "tokens") }?;
        let n_vocab = m.model.config.n_vocab;
        let mut ids = Vec::with_capacity(tokens.len());
        for &t in tokens {
            if t < 0 || t as usize >= n_vocab {
                return Err(Fail::invalid(format!(
                    "token id {t} is outside the vocabulary of {n_vocab}"
                )));
            }
            ids.push(t as u32);
        }
        let text = m.model.tokenizer.decode(&ids, render_special);
        // SAFETY: caller's contract.
        unsafe { write_text(text.as_bytes(), buf, buf_size, len_out) }
    })
}

/// Copies the bytes `token` stands for into `buf[0..buf_size]` (no NUL: a piece may end inside a
/// multi-byte UTF-8 character that the next token completes, so write pieces out as bytes) and their
/// count into `*len_out`; `INGOT_ERR_BUFFER_TOO_SMALL` (with `*len_out` set) when `buf_size` is
/// smaller. Control tokens ("<|im_end|>") give no bytes unless `render_special`, as in
/// `ingot_detokenize`; the concatenated pieces of a sequence are exactly its detokenized bytes.
/// Thread-safe.
///
/// # Safety
/// `model` is NULL or live; `buf` is NULL or writable for `buf_size` bytes; `len_out` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn ingot_token_to_piece(
    model: *const ingot_model,
    token: i32,
    render_special: bool,
    buf: *mut c_char,
    buf_size: usize,
    len_out: *mut usize,
) -> i32 {
    boundary(|| {
        // SAFETY: caller's contract.
        let m = unsafe { ref_arg(model, "model") }?;
        let tok = &m.model.tokenizer;
        let n_vocab = m.model.config.n_vocab;
        if token < 0 || token as usize >= n_vocab {
            return Err(Fail::invalid(format!(
                "token id {token} is outside the vocabulary of {n_vocab}"
            )));
        }
        let id = token as u32;
        let bytes = tok.token_bytes(id);
        // Hidden without `render_special`: control tokens, and unknown ones, which the tokenizer
        // does not flag publicly but `decode` leaves out (a shown token with bytes always decodes to
        // something, U+FFFD at worst).
        let shown = render_special
            || bytes.is_empty()
            || !tok.is_control(id) && !tok.decode(&[id], false).is_empty();
        let bytes: &[u8] = if shown { bytes } else { &[] };
        // SAFETY: caller's contract.
        unsafe { write_out(len_out, bytes.len(), "len_out") }?;
        if buf_size < bytes.len() {
            return Err(Fail::new(
                ingot_status::INGOT_ERR_BUFFER_TOO_SMALL,
                format!("the piece has {} bytes, the buffer {buf_size}", bytes.len()),
            ));
        }
        if bytes.is_empty() {
            return Ok(());
        }
        if buf.is_null() {
            return Err(Fail::null("buf"));
        }
        // SAFETY: non-NULL and writable for `buf_size >= len` bytes (caller's contract); `bytes`
        // belongs to the model, not to the caller's buffer.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), buf.cast::<u8>(), bytes.len()) };
        Ok(())
    })
}

/// Writes to `*is_eog_out` whether `token` ends generation: EOS, EOT and the end-of-turn tokens
/// llama.cpp recognizes ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", ...), the set
/// `ingot_generate` stops at. Thread-safe.
///
/// # Safety
/// `model` is NULL or live; `is_eog_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ingot_token_is_eog(
    model: *const ingot_model,
    token: i32,
    is_eog_out: *mut bool,
) -> i32 {
    boundary(|| {
        // SAFETY: caller's contract.
        let m = unsafe { ref_arg(model, "model") }?;
        let n_vocab = m.model.config.n_vocab;
        if token < 0 || token as usize >= n_vocab {
            return Err(Fail::invalid(format!(
                "token id {token} is outside the vocabulary of {n_vocab}"
            )));
        }
        let eog = m.model.tokenizer.is_eog(token as u32);
        // SAFETY: caller's contract.
        unsafe { write_out(is_eog_out, eog, "is_eog_out") }
    })
}

/// Renders `messages[0..n_messages]` with the model's own chat template (`tokenizer.chat_template`,
/// Jinja, rendered as Hugging Face transformers does; ChatML when the file has none), appending the
/// assistant prefix when `add_generation_prompt`. Copies the text and a NUL into `buf[0..buf_size]`
/// and its length without the NUL into `*len_out`; when the buffer is too small writes only
/// `*len_out` and returns `INGOT_ERR_BUFFER_TOO_SMALL`. Tokenize the result with `parse_special`
/// set. A template error is `INGOT_ERR_TEMPLATE`. Thread-safe.
///
/// # Safety
/// `model` is NULL or live; `messages` is readable for `n_messages` entries whose strings are
/// NUL-terminated; `buf` is NULL or writable for `buf_size` bytes; `len_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ingot_chat_apply_template(
    model: *const ingot_model,
    messages: *const ingot_chat_message,
    n_messages: usize,
    add_generation_prompt: bool,
    buf: *mut c_char,
    buf_size: usize,
    len_out: *mut usize,
) -> i32 {
    boundary(|| {
        // SAFETY: caller's contract.
        let m = unsafe { ref_arg(model, "model") }?;
        // SAFETY: caller's contract.
        let msgs = unsafe { slice_arg(messages, n_messages, "messages") }?;
        let mut history = Vec::with_capacity(msgs.len());
        for (i, msg) in msgs.iter().enumerate() {
            // SAFETY: caller's contract.
            let role = unsafe { str_arg(msg.role, &format!("messages[{i}].role")) }?;
            // SAFETY: caller's contract.
            let content = unsafe { str_arg(msg.content, &format!("messages[{i}].content")) }?;
            history.push(ChatMessage::new(role, content));
        }
        let model = &m.model;
        let tok = &model.tokenizer;
        let text_of = |id: Option<u32>| id.and_then(|i| tok.token_text(i)).unwrap_or("");
        // As `ingot chat` does: the file's template, else ChatML.
        let template = match model.chat_template {
            Some(src) => ChatTemplate::new(src, text_of(tok.bos()), text_of(tok.eos()))?,
            None => ChatTemplate::chatml(),
        };
        let text = template.render(&history, add_generation_prompt)?;
        // SAFETY: caller's contract.
        unsafe { write_text(text.as_bytes(), buf, buf_size, len_out) }
    })
}
