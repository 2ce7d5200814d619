//! Unit tests on a tiny hand-made byte-level vocabulary.

use super::*;

const SPECIALS: [(&str, i32); 4] = [
    ("<|endoftext|>", 3),
    ("<|im_start|>", 3),
    ("<|im_end|>", 3),
    ("<tool>", 4),
];

/// Specials, then the 256 byte-level characters (in byte order), then merged tokens.
fn config(merges: &[&str], extra: &[&str]) -> TokenizerConfig {
    let mut tokens: Vec<String> = SPECIALS.iter().map(|s| s.0.to_string()).collect();
    let mut types: Vec<i32> = SPECIALS.iter().map(|s| s.1).collect();
    for &c in unicode::BYTE_TO_CHAR.iter() {
        tokens.push(c.to_string());
        types.push(1);
    }
    for &t in extra {
        tokens.push(t.to_string());
        types.push(1);
    }
    TokenizerConfig {
        model: "gpt2".into(),
        pre: "smollm".into(),
        tokens,
        token_types: types,
        merges: merges.iter().map(|s| s.to_string()).collect(),
        eos: Some(0),
        ..Default::default()
    }
}

fn tok(merges: &[&str], extra: &[&str]) -> Tokenizer {
    Tokenizer::new(config(merges, extra)).unwrap()
}

fn id(t: &Tokenizer, s: &str) -> u32 {
    t.token_to_id(s).unwrap_or_else(|| panic!("no token {s:?}"))
}

/// Id of the one-byte token for `b`.
fn byte(b: u8) -> u32 {
    SPECIALS.len() as u32 + u32::from(b)
}

#[test]
fn merges_apply_in_rank_order() {
    let t = tok(&["a b", "ab c", "b c"], &["ab", "abc", "bc"]);
    assert_eq!(t.encode("abc", false, false), [id(&t, "abc")]);
    let t = tok(&["b c", "a b", "ab c"], &["ab", "abc", "bc"]);
    assert_eq!(t.encode("abc", false, false), [byte(b'a'), id(&t, "bc")]);
    // Equal ranks cannot happen; equal pairs merge leftmost first: "aaa" -> "aa" + "a".
    let t = tok(&["a a"], &["aa"]);
    assert_eq!(t.encode("aaa", false, false), [id(&t, "aa"), byte(b'a')]);
    assert_eq!(t.encode("aaaa", false, false), [id(&t, "aa"), id(&t, "aa")]);
}

#[test]
fn bytes_map_through_the_byte_level_alphabet() {
    let t = tok(&["Ġ a", "Ġ Ġ"], &["Ġa", "ĠĠ"]);
    assert_eq!(t.encode(" a", false, false), [id(&t, "Ġa")]);
    assert_eq!(t.encode("\n", false, false), [byte(b'\n')]);
    assert_eq!(t.token_bytes(id(&t, "Ġa")), b" a");
    assert_eq!(t.token_bytes(byte(0xFF)), [0xFF]);
    let emoji = t.encode("😀", false, false);
    assert_eq!(emoji, "😀".bytes().map(byte).collect::<Vec<_>>());
    assert_eq!(t.decode(&emoji, false), "😀");
}

#[test]
fn merge_results_outside_the_vocabulary() {
    // "cd" is not a token but "cde" is: the chain still goes through it.
    let t = tok(&["c d", "cd e"], &["cde"]);
    assert_eq!(t.encode("cde", false, false), [id(&t, "cde")]);
    // A final symbol that is not a token falls back to its printable-ASCII bytes only
    // (llama.cpp looks up each byte of the byte-level text as a one-byte token).
    assert_eq!(t.encode("cd", false, false), [byte(b'c'), byte(b'd')]);
    let t = tok(&["Ġ c"], &[]);
    assert_eq!(t.encode(" c", false, false), [byte(b'c')]);
}

#[test]
fn special_tokens_split_the_text() {
    let t = tok(&["a b"], &["ab"]);
    let text = "x<|im_start|>ab<tool>c<|im_end|>";
    assert_eq!(
        t.encode(text, false, true),
        [byte(b'x'), 1, id(&t, "ab"), 3, byte(b'c'), 2]
    );
    // Without parse_special, control tokens are plain text but user-defined ones still split.
    let plain = t.encode(text, false, false);
    assert!(!plain.contains(&1) && !plain.contains(&2));
    assert!(plain.contains(&3));
    assert_eq!(t.decode(&plain, false), text);
    // Control tokens render only on request; user-defined ones always.
    let ids = t.encode(text, false, true);
    assert_eq!(t.decode(&ids, false), "xab<tool>c");
    assert_eq!(t.decode(&ids, true), text);
}

#[test]
fn longest_special_token_first() {
    let mut cfg = config(&[], &[]);
    cfg.tokens.push("<|im_start|>user".into());
    cfg.token_types.push(3);
    let t = Tokenizer::new(cfg).unwrap();
    let long = t.n_vocab() as u32 - 1;
    assert_eq!(
        t.encode("<|im_start|>user<|im_start|>", false, true),
        [long, 1]
    );
}

#[test]
fn add_special_and_eog() {
    let mut cfg = config(&[], &[]);
    cfg.bos = Some(1);
    cfg.add_bos = true;
    cfg.add_eos = true;
    let t = Tokenizer::new(cfg).unwrap();
    assert_eq!(t.encode("a", true, false), [1, byte(b'a'), 0]);
    assert_eq!(t.encode("", true, false), [1, 0]);
    assert_eq!(t.encode("", false, false), Vec::<u32>::new());
    assert!(t.is_eog(0) && t.is_eog(2) && !t.is_eog(1) && !t.is_eog(3));
    assert!(t.is_control(1) && !t.is_control(3) && !t.is_control(byte(b'a')));
}

#[test]
fn eog_names_become_control() {
    // "<|im_end|>" typed as normal is still an end-of-generation control token (llama.cpp fix-up).
    let mut cfg = config(&[], &[]);
    cfg.token_types[2] = 1;
    let t = Tokenizer::new(cfg).unwrap();
    assert!(t.is_eog(2) && t.is_control(2));
    assert_eq!(t.encode("<|im_end|>", false, true), [2]);
}

#[test]
fn config_errors() {
    let e = |cfg: TokenizerConfig| Tokenizer::new(cfg).unwrap_err().to_string();
    let mut cfg = config(&[], &[]);
    cfg.pre = "no-such-pre".into();
    assert!(e(cfg).contains("no-such-pre"));
    let mut cfg = config(&[], &[]);
    cfg.model = "llama".into();
    assert!(e(cfg).contains("not supported yet"));
    let mut cfg = config(&[], &[]);
    cfg.bos = Some(100_000);
    assert!(e(cfg).contains("out of range"));
    let mut cfg = config(&[], &[]);
    cfg.tokens.push("a".into());
    cfg.token_types.push(1);
    assert!(e(cfg).contains("duplicate"));
    let mut cfg = config(&[], &[]);
    cfg.add_bos = true;
    assert!(e(cfg).contains("bos"));
    let mut cfg = config(&[], &[]);
    cfg.token_types.truncate(3);
    assert!(e(cfg).contains("token types"));
}

#[test]
fn stream_decoder_holds_split_characters() {
    let t = tok(&["ð Ł", "ĺ Ģ"], &["ðŁ", "ĺĢ"]);
    let ids = t.encode("😀!", false, false);
    assert_eq!(ids, [id(&t, "ðŁ"), id(&t, "ĺĢ"), byte(b'!')]);
    let mut d = StreamDecoder::new();
    assert_eq!(d.push(&t, ids[0], false), "");
    assert_eq!(d.push(&t, ids[1], false), "😀");
    assert_eq!(d.push(&t, ids[2], false), "!");
    assert_eq!(d.flush(), "");
}

#[test]
fn stream_decoder_replaces_invalid_bytes() {
    let t = tok(&[], &[]);
    let mut d = StreamDecoder::new();
    // 0xFF can never occur in UTF-8: replaced at once.
    assert_eq!(d.push(&t, byte(0xFF), false), "\u{FFFD}");
    // 0xF0 starts a 4-byte character; "a" proves it invalid.
    assert_eq!(d.push(&t, byte(0xF0), false), "");
    assert_eq!(d.push(&t, byte(b'a'), false), "\u{FFFD}a");
    // An incomplete character at the end is flushed as U+FFFD.
    assert_eq!(d.push(&t, byte(0xE2), false), "");
    assert_eq!(d.push(&t, byte(0x82), false), "");
    assert_eq!(d.flush(), "\u{FFFD}");
    // Control tokens are skipped unless rendered.
    assert_eq!(d.push(&t, 2, false), "");
    assert_eq!(d.push(&t, 2, true), "<|im_end|>");
}

#[test]
fn stream_equals_lossy_decode() {
    let t = tok(&[], &[]);
    let bytes: &[u8] =
        b"a\xF0\x9F\x98\x80\xE2\x82\xAC\xC3\xFFz\xED\xA0\x80\xF4\x90\x80\x80\xE2\x82";
    let ids: Vec<u32> = bytes.iter().map(|&b| byte(b)).collect();
    let mut d = StreamDecoder::new();
    let mut s = String::new();
    for &i in &ids {
        s.push_str(d.push(&t, i, false));
    }
    s.push_str(&d.flush());
    assert_eq!(s, String::from_utf8_lossy(bytes));
    assert_eq!(t.decode(&ids, false), String::from_utf8_lossy(bytes));
}

#[test]
fn encode_into_with_reused_buffers_equals_encode() {
    let t = tok(&["a b", "ab c", "Ġ t"], &["ab", "abc", "Ġt"]);
    let mut scratch = EncodeScratch::default();
    let mut out = vec![99, 98, 97];
    let texts = [
        "abc abc <|im_start|>t<tool>abc",
        "",
        " t<|im_end|><|im_end|>abcabc 12345 😀",
        "abc",
    ];
    for text in texts {
        for (add, parse) in [(false, false), (true, true), (true, false)] {
            t.encode_into(text, add, parse, &mut scratch, &mut out);
            assert_eq!(out, t.encode(text, add, parse), "{text:?} {add} {parse}");
        }
    }
}

#[test]
fn stream_decoder_finish_and_reset() {
    let t = tok(&[], &[]);
    let mut d = StreamDecoder::new();
    assert_eq!(d.push(&t, byte(0xE2), false), "");
    assert_eq!(d.finish(), "\u{FFFD}");
    assert_eq!(d.finish(), "");
    assert_eq!(d.push(&t, byte(0xE2), false), "");
    d.reset();
    assert_eq!(d.push(&t, byte(b'a'), false), "a");
    assert_eq!(d.finish(), "");
}

#[test]
fn tokenizer_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Tokenizer>();
    assert_send_sync::<StreamDecoder>();
}
