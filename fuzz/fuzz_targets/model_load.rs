//! Parses arbitrary bytes as GGUF and loads them as a llama model. Any file that `Model::from_gguf`
//! accepts must then run without panicking: a session (n_ctx 8, n_batch 4, one thread) prefills two tokens taken
//! from the last bytes of the input (clamped to the vocabulary) and decodes a third, and the tokenizer
//! encodes a short text and decodes the tokens. Seeds (see `make_seeds`) are tiny valid models, so
//! mutations stay close to files that load.
#![no_main]

use ingot_runtime::gguf::Gguf;
use ingot_runtime::model::{Model, Session, SessionParams};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(gguf) = Gguf::parse(data) else { return };
    let Ok(model) = Model::from_gguf(gguf) else { return };

    let n_vocab = model.config.n_vocab as u32;
    let tail = |i: usize| data.get(data.len().wrapping_sub(i)).copied().unwrap_or(0);
    let ids = [
        u32::from_le_bytes([tail(1), tail(2), 0, 0]) % n_vocab,
        u32::from_le_bytes([tail(3), tail(4), 0, 0]) % n_vocab,
    ];
    let params = SessionParams {
        n_ctx: 8,
        n_batch: 4,
        n_threads: 1,
        ..Default::default()
    };
    let mut session = Session::new(&model, params).expect("a loaded model must get a tiny session");
    let logits = session.prefill(&ids).expect("in-vocabulary tokens must evaluate");
    assert_eq!(logits.len(), n_vocab as usize);
    std::hint::black_box(logits);
    let logits = session.decode(ids[0]).expect("decode after prefill must work");
    assert_eq!(logits.len(), n_vocab as usize);
    assert_eq!(session.pos(), 3);

    // The tokenizer of a loaded model must not panic either.
    let tok = &model.tokenizer;
    let n_tok = tok.n_vocab() as u32;
    let tids: Vec<u32> = ids.iter().map(|&i| i % n_tok).collect();
    std::hint::black_box(tok.decode(&tids, true));
    std::hint::black_box(tok.decode(&tids, false));
    let enc = tok.encode("Hello world, <|im_start|>héllo 123\n", true, true);
    assert!(enc.iter().all(|&i| i < n_tok), "encode produced an id outside the vocabulary");
});
