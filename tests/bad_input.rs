//! Bad input never panics: truncated and corrupted GGUF files, hyperparameters that would break the
//! arithmetic, and requests that cannot be served all give a clean error naming the problem.

mod common;

use common::{tiny_model, Tiny};
use ingot_runtime::gguf::writer::OwnedValue;
use ingot_runtime::gguf::Gguf;
use ingot_runtime::model::{Model, Session, SessionParams};
use ingot_runtime::Error;

fn valid_bytes() -> Vec<u8> {
    tiny_model(&Tiny::default()).to_bytes()
}

/// Byte offset of the first occurrence of `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .expect("pattern present")
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn gguf_err(bytes: &[u8]) -> (u64, String) {
    match Gguf::parse(bytes) {
        Err(Error::Gguf { offset, what }) => (offset, what),
        Err(other) => panic!("expected a GGUF error, got {other}"),
        Ok(_) => panic!("corrupted file parsed without error"),
    }
}

/// Offset just after a tensor's name in the tensor-info section: n_dims (u32), dims (u64 each), type
/// (u32), offset (u64) follow.
fn tensor_info_at(bytes: &[u8], name: &str) -> usize {
    let mut key = (name.len() as u64).to_le_bytes().to_vec();
    key.extend_from_slice(name.as_bytes());
    find(bytes, &key) + key.len()
}

#[test]
fn valid_tiny_model_loads_and_runs() {
    let bytes = valid_bytes();
    let model = Model::from_gguf(Gguf::parse(&bytes).unwrap()).unwrap();
    let mut s = Session::new(
        &model,
        SessionParams {
            n_ctx: 16,
            n_batch: 4,
            n_threads: 1,
            ..Default::default()
        },
    )
    .unwrap();
    let logits = s.prefill(&[1, 2, 3, 4, 5, 6]).unwrap();
    assert_eq!(logits.len(), 260);
    assert!(logits.iter().all(|l| l.is_finite()));
}

#[test]
fn every_truncation_is_a_clean_error() {
    let bytes = valid_bytes();
    let header_end = Gguf::parse(&bytes).unwrap().data_offset as usize;
    // Every offset in the header, then a stride through the data (each parse only reads the header).
    let cuts = (0..header_end).chain((header_end..bytes.len()).step_by(61));
    for cut in cuts {
        let r = Gguf::parse(&bytes[..cut]);
        assert!(
            matches!(r, Err(Error::Gguf { .. })),
            "truncated at {cut}: {r:?}"
        );
    }
}

#[test]
fn header_fields() {
    let good = valid_bytes();
    let mut b = good.clone();
    b[0] = b'X';
    assert!(gguf_err(&b).1.contains("magic"));

    let mut b = good.clone();
    put_u32(&mut b, 4, 1);
    assert!(gguf_err(&b).1.contains("version"));
    put_u32(&mut b, 4, 3u32.swap_bytes());
    assert!(gguf_err(&b).1.contains("big-endian"));

    let mut b = good.clone();
    put_u64(&mut b, 8, u64::MAX);
    assert_eq!(gguf_err(&b), (8, gguf_err(&b).1));
    assert!(gguf_err(&b).1.contains("tensor count"));

    let mut b = good.clone();
    put_u64(&mut b, 16, 1 << 40);
    assert!(gguf_err(&b).1.contains("metadata count"));

    // First key's string length.
    let mut b = good.clone();
    put_u64(&mut b, 24, 1 << 50);
    let (off, what) = gguf_err(&b);
    assert_eq!(off, 24);
    assert!(what.contains("string length"), "{what}");

    // First value's type id.
    let mut b = good.clone();
    let ty_at = 24 + 8 + "general.architecture".len();
    put_u32(&mut b, ty_at, 99);
    let (off, what) = gguf_err(&b);
    assert_eq!(off as usize, ty_at);
    assert!(what.contains("unknown metadata value type 99"), "{what}");
}

#[test]
fn array_lengths_are_checked_before_allocating() {
    let good = valid_bytes();
    let key = b"tokenizer.ggml.tokens";
    let at = find(&good, key) + key.len() + 4 + 4; // past the key, value type (array), element type
    for len in [u64::MAX, 1 << 62, 1 << 33, (good.len() as u64) / 8 + 1] {
        let mut b = good.clone();
        put_u64(&mut b, at, len);
        let (off, what) = gguf_err(&b);
        assert_eq!(off as usize, at, "{what}");
        assert!(what.contains("does not fit"), "{what}");
    }
    // A nested array element type.
    let mut b = good.clone();
    put_u32(&mut b, at - 4, 9);
    assert!(gguf_err(&b).1.contains("nested"));
}

#[test]
fn tensor_infos() {
    let good = valid_bytes();
    let at = tensor_info_at(&good, "blk.0.attn_q.weight");
    let (dims_at, ty_at, off_at) = (at + 4, at + 4 + 16, at + 4 + 16 + 4);

    let mut b = good.clone();
    put_u32(&mut b, at, 5);
    assert!(gguf_err(&b).1.contains("dimensions"));
    put_u32(&mut b, at, 0);
    assert!(gguf_err(&b).1.contains("dimensions"));

    let mut b = good.clone();
    put_u64(&mut b, dims_at, 1 << 40);
    put_u64(&mut b, dims_at + 8, 1 << 40);
    assert!(gguf_err(&b).1.contains("overflow"));

    let mut b = good.clone();
    put_u64(&mut b, dims_at + 8, 0);
    assert!(gguf_err(&b).1.contains("dimension 0"));

    let mut b = good.clone();
    put_u64(&mut b, dims_at, 33);
    assert!(gguf_err(&b).1.contains("not a multiple"));

    let mut b = good.clone();
    put_u32(&mut b, ty_at, 99);
    assert!(gguf_err(&b).1.contains("unknown or unsupported type id 99"));

    let mut b = good.clone();
    put_u64(&mut b, off_at, 1);
    assert!(gguf_err(&b).1.contains("alignment"));

    let mut b = good.clone();
    put_u64(&mut b, off_at, 1 << 40);
    assert!(gguf_err(&b).1.contains("past the end"));

    let mut b = good.clone();
    put_u64(&mut b, off_at, u64::MAX - 31);
    assert!(gguf_err(&b).1.contains("past the end"));

    // Point attn_q at the data of the tensor before it: overlap.
    let mut b = good.clone();
    put_u64(&mut b, off_at, 0);
    assert!(gguf_err(&b).1.contains("overlaps"));
}

#[test]
fn alignment_must_be_a_power_of_two() {
    for a in [0u32, 3, 48] {
        let mut w = tiny_model(&Tiny::default());
        w.set("general.alignment", OwnedValue::U32(a));
        let b = w.to_bytes();
        assert!(gguf_err(&b).1.contains("alignment"), "alignment {a}");
    }
    let mut w = tiny_model(&Tiny::default());
    w.set("general.alignment", OwnedValue::U32(64));
    let b = w.to_bytes();
    assert_eq!(Gguf::parse(&b).unwrap().alignment, 64);
}

fn load_err(edit: impl FnOnce(&mut ingot_runtime::gguf::GgufWriter), t: &Tiny) -> String {
    let mut w = tiny_model(t);
    edit(&mut w);
    let bytes = w.to_bytes();
    let gguf = match Gguf::parse(&bytes) {
        Ok(g) => g,
        Err(e) => return e.to_string(),
    };
    match Model::from_gguf(gguf) {
        Ok(_) => panic!("broken model loaded"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn hyperparameters_that_break_arithmetic_are_refused_at_load() {
    let t = Tiny::default();
    let set = |k: &'static str, v: OwnedValue| {
        move |w: &mut ingot_runtime::gguf::GgufWriter| {
            w.set(k, v);
        }
    };
    let cases: Vec<(&str, String)> = vec![
        (
            "0 heads",
            load_err(set("llama.attention.head_count", OwnedValue::U32(0)), &t),
        ),
        (
            "heads not dividing width",
            load_err(set("llama.attention.head_count", OwnedValue::U32(5)), &t),
        ),
        (
            "kv heads not dividing heads",
            load_err(set("llama.attention.head_count_kv", OwnedValue::U32(3)), &t),
        ),
        (
            "absurd layer count",
            load_err(set("llama.block_count", OwnedValue::U64(1 << 40)), &t),
        ),
        (
            "more layers than tensors",
            load_err(set("llama.block_count", OwnedValue::U32(3)), &t),
        ),
        (
            "width disagrees with tensors",
            load_err(set("llama.embedding_length", OwnedValue::U32(128)), &t),
        ),
        (
            "ffn disagrees with tensors",
            load_err(set("llama.feed_forward_length", OwnedValue::U32(64)), &t),
        ),
        (
            "eps as string",
            load_err(
                set(
                    "llama.attention.layer_norm_rms_epsilon",
                    OwnedValue::String("x".into()),
                ),
                &t,
            ),
        ),
        (
            "eps zero",
            load_err(
                set(
                    "llama.attention.layer_norm_rms_epsilon",
                    OwnedValue::F32(0.0),
                ),
                &t,
            ),
        ),
        (
            "unknown architecture",
            load_err(
                set("general.architecture", OwnedValue::String("gpt9".into())),
                &t,
            ),
        ),
        (
            "eos out of range",
            load_err(
                set("tokenizer.ggml.eos_token_id", OwnedValue::U32(1_000_000)),
                &t,
            ),
        ),
        (
            "rope scaling",
            load_err(
                set("llama.rope.scaling.type", OwnedValue::String("yarn".into())),
                &t,
            ),
        ),
        ("missing width", {
            let mut w = tiny_model(&t);
            let mut w2 = ingot_runtime::gguf::GgufWriter::new();
            // Rebuild without llama.embedding_length by copying everything else.
            let bytes = w.to_bytes();
            let g = Gguf::parse(&bytes).unwrap();
            for (k, v) in g.metadata() {
                if *k != "llama.embedding_length" {
                    w2.set(k, OwnedValue::from(*v));
                }
            }
            for tinfo in g.tensors() {
                w2.add_tensor(tinfo.name, tinfo.shape(), tinfo.ty, tinfo.data.to_vec());
            }
            w = w2;
            let bytes = w.to_bytes();
            Model::from_gguf(Gguf::parse(&bytes).unwrap())
                .unwrap_err()
                .to_string()
        }),
    ];
    let expect = [
        ("0 heads", "outside"),
        ("heads not dividing width", "do not divide"),
        ("kv heads not dividing heads", "do not divide"),
        ("absurd layer count", "outside"),
        ("more layers than tensors", "blk.2"),
        ("width disagrees with tensors", "shape"),
        ("ffn disagrees with tensors", "shape"),
        ("eps as string", "expected number"),
        ("eps zero", "epsilon"),
        ("unknown architecture", "unknown architecture `gpt9`"),
        ("eos out of range", "outside the vocabulary"),
        ("rope scaling", "not supported"),
        ("missing width", "llama.embedding_length"),
    ];
    for ((name, msg), (ename, needle)) in cases.iter().zip(expect) {
        assert_eq!(*name, ename);
        assert!(
            msg.contains(needle),
            "{name}: message `{msg}` lacks `{needle}`"
        );
    }
}

#[test]
fn requests_that_cannot_be_served() {
    let bytes = valid_bytes();
    let model = Model::from_gguf(Gguf::parse(&bytes).unwrap()).unwrap();
    let mut s = Session::new(
        &model,
        SessionParams {
            n_ctx: 8,
            n_batch: 4,
            n_threads: 1,
            ..Default::default()
        },
    )
    .unwrap();
    let e = s.prefill(&[1; 9]).unwrap_err().to_string();
    assert!(e.contains("exceed the context"), "{e}");
    let e = s.prefill(&[1, 260]).unwrap_err().to_string();
    assert!(e.contains("outside the vocabulary"), "{e}");
    assert!(s.prefill(&[]).is_err());
    assert!(Session::new(
        &model,
        SessionParams {
            n_ctx: 0,
            n_batch: 1,
            n_threads: 1,
            ..Default::default()
        }
    )
    .is_err());
    // The failed requests left the cache untouched.
    assert_eq!(s.pos(), 0);
}
