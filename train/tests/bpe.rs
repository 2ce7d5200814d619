//! Byte-level BPE training: the trained vocabulary loads in the runtime's tokenizer, round-trips
//! text, compresses, is deterministic, and its first merge is the most frequent pair.

use std::collections::HashMap;
use std::path::Path;

use ingot_runtime::tokenizer::Tokenizer;
use ingot_train::bpe::{self, BpeOptions};

fn corpus() -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/text/macbeth_40k.txt");
    std::fs::read_to_string(p).unwrap()
}

fn opts(merges: usize) -> BpeOptions {
    BpeOptions {
        vocab_size: 256 + merges + 1,
        special_tokens: vec!["<|endoftext|>".to_owned()],
        min_frequency: 2,
    }
}

#[test]
fn trained_tokenizer_round_trips_and_compresses() {
    let text = corpus();
    let trained = bpe::train([text.as_str()], &opts(500)).unwrap();
    assert_eq!(trained.merges.len(), 500);
    assert!(trained.tokens.len() <= 256 + 500 + 1);
    assert_eq!(trained.tokens[256], "<|endoftext|>");
    let cfg = trained.config();
    assert_eq!((cfg.model.as_str(), cfg.pre.as_str()), ("gpt2", "gpt-2"));
    let tok = Tokenizer::new(cfg).unwrap();
    assert_eq!(tok.n_vocab(), trained.tokens.len());
    let eot = tok.token_to_id("<|endoftext|>").unwrap();
    assert!(tok.is_control(eot) && tok.is_eog(eot));

    for line in text.lines() {
        assert_eq!(tok.decode(&tok.encode(line, false, false), false), line);
    }
    for s in [
        "Ünïcödé façade — naïve 日本語のテキスト",
        "emoji 😀🎉👍🏽 and ZWJ 👨‍👩‍👧",
        "digits 0123456789 3.14159 1,000,000",
        "tabs\tand\r\nnewlines\n\n  spaces   ",
        "",
    ] {
        assert_eq!(tok.decode(&tok.encode(s, false, false), false), s);
    }
    // Special tokens are parsed when asked, and render back.
    let ids = tok.encode("end<|endoftext|>", false, true);
    assert_eq!(*ids.last().unwrap(), eot);
    assert_eq!(tok.decode(&ids, true), "end<|endoftext|>");

    let n = tok.encode(&text, false, false).len();
    let ratio = text.len() as f64 / n as f64;
    eprintln!(
        "macbeth: {} bytes -> {n} tokens, ratio {ratio:.3}",
        text.len()
    );
    assert!(ratio > 2.0, "compression ratio {ratio}");
}

#[test]
fn training_is_deterministic() {
    let text = corpus();
    let a = bpe::train([text.as_str()], &opts(300)).unwrap();
    let b = bpe::train([text.as_str()], &opts(300)).unwrap();
    assert_eq!(a, b);
}

#[test]
fn first_merge_is_the_most_frequent_pair() {
    let text = corpus();
    // Brute force: count adjacent byte pairs inside every pre-tokenized word.
    let mut pairs: HashMap<(u8, u8), u64> = HashMap::new();
    for w in bpe::pretokenize(&text) {
        for p in w.as_bytes().windows(2) {
            *pairs.entry((p[0], p[1])).or_insert(0) += 1;
        }
    }
    let max = *pairs.values().max().unwrap();
    let best = pairs
        .iter()
        .filter(|(_, &c)| c == max)
        .map(|(&p, _)| p)
        .min()
        .unwrap();
    let want = format!(
        "{} {}",
        bpe::byte_level(&[best.0]),
        bpe::byte_level(&[best.1])
    );
    let trained = bpe::train([text.as_str()], &opts(5)).unwrap();
    assert_eq!(trained.merges[0], want);
    // The words cover the text exactly.
    assert_eq!(bpe::pretokenize(&text).concat(), text);
}

#[test]
fn shakespeare_timing() {
    // Timing on ~1 MB of ../shared/data/shakespeare when it is present, release builds only (release: `cargo test --release -p ingot-train
    // --test bpe -- --nocapture`).
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/shakespeare");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return;
    };
    let mut paths: Vec<_> = rd.map(|e| e.unwrap().path()).collect();
    paths.sort();
    let texts: Vec<String> = paths
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    let mut total = 0;
    let mut take = Vec::new();
    for t in &texts {
        if total >= 1 << 20 {
            break;
        }
        total += t.len();
        take.push(t.as_str());
    }
    if cfg!(debug_assertions) {
        return; // too slow unoptimised
    }
    let t0 = std::time::Instant::now();
    let trained = bpe::train(take.iter().copied(), &opts(2000)).unwrap();
    let dt = t0.elapsed();
    let tok = Tokenizer::new(trained.config()).unwrap();
    let n: usize = take.iter().map(|t| tok.encode(t, false, false).len()).sum();
    eprintln!(
        "shakespeare: {total} bytes, {} merges in {dt:.2?}, {n} tokens, ratio {:.3}",
        trained.merges.len(),
        total as f64 / n as f64
    );
}
