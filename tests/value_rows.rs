//! The transposed value cache's rows start 256 positions long and double, moving the cached values
//! in place, when the context outgrows them (`Session::reserve_values`). The move must not change a
//! bit: a session that grows its rows while it holds tokens gives the same logits as one whose rows
//! were already wide before its first token (made so by evaluating a longer throwaway prompt and
//! `truncate(0)`, which keeps the rows). Checked for growth during a batched prefill and during
//! single-token decoding, at one and two threads, on `Kernels::best()` (`INGOT_ISA` picks another
//! path); the f16 cache and the f32 one.

mod common;

use ingot_runtime::gguf::GgufFile;
use ingot_runtime::model::{KvType, Model, Session, SessionParams};

/// Rows grow 256 -> 512 -> 1024, then to the whole 2100 (the next doubling, 2048, is more than
/// half of it: `value_row_len`).
const N_CTX: usize = 2100;

/// Token ids spread over the vocabulary (any ids will do: only bits are compared).
fn ids(model: &Model<'_>, n: usize) -> Vec<u32> {
    let v = model.config.n_vocab as u64;
    (0..n as u64)
        .map(|i| ((i * 2_654_435_761 + 12_345) % v) as u32)
        .collect()
}

fn session<'m>(model: &'m Model<'_>, threads: usize, kv_type: KvType) -> Session<'m, 'm> {
    Session::new(
        model,
        SessionParams {
            n_ctx: N_CTX,
            n_batch: 64,
            n_threads: threads,
            kv_type,
        },
    )
    .unwrap()
}

/// A hash of one token's logit bits (FNV-1a): a thousand tokens' logits are 200 MB.
fn hash(logits: &[f32]) -> u64 {
    logits.iter().fold(0xcbf2_9ce4_8422_2325, |h, v| {
        (h ^ u64::from(v.to_bits())).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The logits of every token (hashed): `eval_all` over `tokens[..decode_from]` in calls of
/// `per_call` tokens, then one `decode` call per remaining token.
fn run(s: &mut Session<'_, '_>, tokens: &[u32], per_call: usize, decode_from: usize) -> Vec<u64> {
    let mut hashes = Vec::new();
    for chunk in tokens[..decode_from].chunks(per_call) {
        s.eval_all(chunk, |_, l| hashes.push(hash(l))).unwrap();
    }
    for &t in &tokens[decode_from..] {
        hashes.push(hash(s.decode(t).unwrap()));
    }
    hashes
}

fn check(model: &Model<'_>, threads: usize, kv_type: KvType) {
    // Prefill calls of 100 cross 256 (at 300) and 512 (at 600); decoding crosses 1024 (to 2100).
    let tokens = ids(model, 1040);
    let (per_call, decode_from) = (100, 1000);

    let mut grown = session(model, threads, kv_type);
    let got = run(&mut grown, &tokens, per_call, decode_from);

    let mut wide = session(model, threads, kv_type);
    wide.prefill(&ids(model, 1100)).unwrap();
    wide.truncate(0);
    let want = run(&mut wide, &tokens, per_call, decode_from);

    assert_eq!(got.len(), tokens.len());
    assert_eq!(want.len(), tokens.len());
    if let Some(i) = got.iter().zip(&want).position(|(a, b)| a != b) {
        panic!(
            "{threads} thread(s), {kv_type:?} cache: the logits of token {i} differ between a \
             session whose value rows grew and one whose rows were wide from the start"
        );
    }
}

#[test]
fn growing_value_rows_keep_every_logit() {
    let file = GgufFile::open(common::model_path()).unwrap();
    let model = Model::from_gguf(file.parse().unwrap()).unwrap();
    for threads in [1, 2] {
        check(&model, threads, KvType::F16);
    }
    check(&model, 1, KvType::F32);
}
