//! Parity of the tokenizer with llama.cpp on SmolLM2-135M-Instruct (`tokenizer.ggml.pre = smollm`).
//!
//! The model comes from `models/` (scripts/fetch-model.sh), `../shared/models` or `INGOT_MODEL`; the
//! expected ids from `testdata/tokenizer/smollm2.jsonl` (or `INGOT_TOKENIZER_FIXTURE`): lines of
//! `{"text": .., "parse_special": bool, "ids": [..]}`, made by Hugging Face `tokenizers` and
//! cross-checked against llama.cpp (tools/oracles/make_tokenizer_fixture.py).

use std::path::PathBuf;

use ingot_runtime::gguf::GgufFile;
use ingot_runtime::model::tokenizer_config;
use ingot_runtime::tokenizer::{StreamDecoder, Tokenizer};

/// `$INGOT_MODEL`, else `models/` at the repository root (scripts/fetch-model.sh), else `../shared/models`.
fn model_path() -> PathBuf {
    if let Some(p) = std::env::var_os("INGOT_MODEL") {
        return PathBuf::from(p);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let name = "SmolLM2-135M-Instruct.Q4_1.gguf";
    [
        root.join("models").join(name),
        root.join("../shared/models").join(name),
    ]
    .into_iter()
    .find(|p| p.exists())
    .unwrap_or_else(|| {
        panic!("test model {name} not found: run scripts/fetch-model.sh (or set INGOT_MODEL)")
    })
}

fn fixture_path() -> PathBuf {
    match std::env::var_os("INGOT_TOKENIZER_FIXTURE") {
        Some(p) => PathBuf::from(p),
        None => {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/tokenizer/smollm2.jsonl")
        }
    }
}

/// The tokenizer exactly as the runtime builds it from the file's metadata.
fn load() -> Tokenizer {
    let file = GgufFile::open(model_path()).expect("open model");
    let gguf = file.parse().expect("parse model");
    Tokenizer::new(tokenizer_config(&gguf).expect("tokenizer metadata")).expect("SmolLM2 tokenizer")
}

/// GPT-2's byte-level character for byte `b`, as a string.
fn byte_level(b: u8) -> String {
    let printable = |b: u32| matches!(b, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF);
    let b = u32::from(b);
    let cp = if printable(b) {
        b
    } else {
        256 + (0..b).filter(|&x| !printable(x)).count() as u32
    };
    char::from_u32(cp).unwrap().to_string()
}

#[derive(serde::Deserialize)]
struct Case {
    text: String,
    parse_special: bool,
    ids: Vec<u32>,
}

#[test]
fn tokenizer_smollm2_matches_llama_cpp() {
    let path = fixture_path();
    let fixture = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()));
    let tok = load();
    let cases: Vec<Case> = fixture
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("fixture line"))
        .collect();
    assert!(!cases.is_empty(), "empty fixture {}", path.display());
    let mut failures = Vec::new();
    let mut lossy = 0;
    for c in &cases {
        let got = tok.encode(&c.text, false, c.parse_special);
        if got != c.ids {
            failures.push(format!(
                "{:?} (parse_special={}): expected {:?}, got {:?}",
                c.text, c.parse_special, c.ids, got
            ));
        }
        // SmolLM2 has no token for some bytes (0x04, 0xC0, 0xF1, 0xFF, ...): llama.cpp drops them,
        // so text containing them cannot come back.
        if !c
            .text
            .bytes()
            .all(|b| tok.token_to_id(&byte_level(b)).is_some())
        {
            lossy += 1;
            continue;
        }
        let back = tok.decode(&got, true);
        if back != c.text {
            failures.push(format!("{:?}: decode(encode(s)) = {back:?}", c.text));
        }
    }
    eprintln!(
        "{} / {} strings identical ids and round trip ({lossy} with untokenizable bytes: ids only)",
        cases.len() - failures.len(),
        cases.len()
    );
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn tokenizer_smollm2_special_tokens() {
    let tok = load();
    assert_eq!(tok.n_vocab(), 49152);
    assert_eq!(tok.encode("  123", false, false), [256, 33, 34, 35]);
    let im_end = tok.token_to_id("<|im_end|>").unwrap();
    assert_eq!(tok.eos(), Some(im_end));
    assert!(tok.is_eog(im_end) && tok.is_control(im_end));
    assert!(tok.is_eog(tok.token_to_id("<|endoftext|>").unwrap()));
    // "<reponame>" is taken as the FIM repo-name token by llama.cpp, which ends generation.
    assert!(tok.is_eog(tok.token_to_id("<reponame>").unwrap()));
    assert!(!tok.is_eog(tok.token_to_id("<|im_start|>").unwrap()));
    // SmolLM2 adds no BOS.
    let chat = "<|im_start|>user\nHi<|im_end|>\n";
    let ids = tok.encode(chat, true, true);
    assert_eq!(ids[0], tok.token_to_id("<|im_start|>").unwrap());
    assert_eq!(tok.decode(&ids, true), chat);
    assert_eq!(tok.decode(&ids, false), "user\nHi\n");
    assert_eq!(tok.token_text(im_end), Some("<|im_end|>"));
}

#[test]
fn tokenizer_smollm2_stream_decoding() {
    let tok = load();
    let text = "Emoji 😀👍🏽, CJK 日本語, math ½ ≤ ∞.\n<|im_end|>";
    let ids = tok.encode(text, false, true);
    let mut d = StreamDecoder::new();
    let mut s = String::new();
    for &id in &ids {
        let piece = d.push(&tok, id, true);
        assert!(!piece.contains('\u{FFFD}'), "split character in {piece:?}");
        s.push_str(piece);
    }
    s.push_str(&d.flush());
    assert_eq!(s, text);
}

/// Not a benchmark: a quadratic slip would make this take minutes instead of milliseconds.
#[test]
fn tokenizer_smollm2_encodes_100kb_quickly() {
    let tok = load();
    let unit = "The quick brown fox, 1234 times: «jumps» over the lazy dog!\n日本語 😀 ";
    let text = unit.repeat(100_000 / unit.len() + 1);
    let one_word = "a".repeat(100_000);
    for t in [&text, &one_word] {
        let t0 = std::time::Instant::now();
        let ids = tok.encode(t, false, true);
        eprintln!(
            "{} bytes -> {} tokens in {:?}",
            t.len(),
            ids.len(),
            t0.elapsed()
        );
        assert_eq!(&tok.decode(&ids, true), t);
    }
}
