#!/usr/bin/env python3
"""Tokenizer parity fixture for SmolLM2 (testdata/tokenizer/smollm2.jsonl).

Two independent tokenizers must agree on every string before the fixture is written:
  1. a Hugging Face `tokenizers` byte-level BPE built from the GGUF's own tokenizer.ggml.tokens / .merges,
     with the pre-tokenizer of SmolLM2's original tokenizer.json
     (Sequence[Digits(individual_digits=True), ByteLevel(add_prefix_space=False, use_regex=True)]),
     ByteLevel decoder, and the control tokens (token_type != 1) as special added tokens;
  2. llama.cpp, through `tools/peer` (`ingot-peer tokenize`).

Strings with parse_special=true are tokenized with special-token parsing (HF: encode_special_tokens=False;
llama.cpp: parse_special=true); all others treat special-token text as plain text (HF: encode_special_tokens=True;
llama.cpp: parse_special=false). No BOS/EOS is added (SmolLM2: add_bos_token=false).

usage (from the repo root):
  python3 -m venv /tmp/oracle-venv && /tmp/oracle-venv/bin/pip install tokenizers gguf numpy
  /tmp/oracle-venv/bin/python tools/oracles/make_tokenizer_fixture.py \
      --model ../shared/models/SmolLM2-135M-Instruct.Q4_1.gguf \
      --peer tools/peer/target/release/ingot-peer --out testdata/tokenizer/smollm2.jsonl
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile

import gguf
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

SEED = 20261128


# ----------------------------------------------------------------------------------------------
# the Python reference tokenizer

def build_hf_tokenizer(model_path):
    r = gguf.GGUFReader(model_path)
    f = r.fields
    assert f["tokenizer.ggml.model"].contents() == "gpt2"
    assert f["tokenizer.ggml.pre"].contents() == "smollm"
    tokens = f["tokenizer.ggml.tokens"].contents()
    types = f["tokenizer.ggml.token_type"].contents()
    merges = [tuple(m.split(" ", 1)) for m in f["tokenizer.ggml.merges"].contents()]
    vocab = {t: i for i, t in enumerate(tokens)}
    assert len(vocab) == len(tokens), "duplicate token strings"
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    specials = [AddedToken(tokens[i], special=True, normalized=False, lstrip=False, rstrip=False, single_word=False)
                for i in range(len(tokens)) if int(types[i]) != 1]
    tok.add_special_tokens(specials)
    for s in specials:
        assert tok.token_to_id(s.content) == vocab[s.content]
    return tok, [s.content for s in specials]


def hf_encode(tok, text, parse_special):
    tok.encode_special_tokens = not parse_special
    return tok.encode(text, add_special_tokens=False).ids


# ----------------------------------------------------------------------------------------------
# the strings

FIXED = [
    "",
    " ",
    "  ",
    "   ",
    "\t",
    "\n",
    "\n\n",
    "\r\n",
    "\r\n\r\n",
    " \n",
    "\n ",
    "\t\t\tindented with tabs",
    "    four leading spaces",
    "trailing spaces    ",
    "  both sides  ",
    "a\tb\tc",
    "line one\nline two\r\nline three\rline four",
    "word \n\n\n   word",
    "   \n\t \r\n  ",
    "Hello",
    "Hello world",
    " Hello world",
    "Hello, world!",
    "hello world",
    "HELLO WORLD",
    "The quick brown fox jumps over the lazy dog.",
    "It was the best of times, it was the worst of times.",
    "To be, or not to be, that is the question:",
    "don't",
    "Don't",
    "DON'T",
    "I'LL",
    "I'll",
    "we've they're she's it'd I'm you'll",
    "WE'VE THEY'RE SHE'S IT'D I'M YOU'LL",
    "rock 'n' roll",
    "'s 't 're 've 'm 'll 'd",
    "''quoted''",
    "\"double quotes\" and 'single quotes'",
    "e.g. i.e. etc. Mr. Mrs. Dr.",
    "state-of-the-art",
    "well...really?!",
    "Email: someone@example.com, URL: https://example.org/path?q=1&r=2#frag",
    "C:\\Windows\\System32\\drivers\\etc\\hosts",
    "/usr/local/bin/python3 --version",
    # digits and numerals
    "0",
    "7",
    "42",
    "123",
    "  123",
    " 123",
    "1234567890",
    "3.14159265358979",
    "1,000,000",
    "-273.15",
    "+1 (555) 010-9999",
    "2026-11-28T23:59:59Z",
    "v1.2.3-rc.4",
    "0x7fffffff",
    "1e-9",
    "abc123def456",
    "ab12cd 34 5ef",
    "100%",
    "$19.99",
    "€42,50",
    "¥1000",
    "½",
    "¼ ½ ¾",
    "Ⅻ",
    "Ⅰ Ⅱ Ⅲ Ⅳ Ⅴ",
    "٣",
    "٠١٢٣٤٥٦٧٨٩",
    "०१२३४५६७८९",
    "①②③",
    "⑩ ⑳",
    "²³¹",
    "x²+y²=z²",
    "１２３",
    "〇一二三",
    "Chapter 12, verse 3",
    "1st 2nd 3rd 4th",
    "  12  34   56",
    "\t123",
    "\n2024\n",
    # CJK
    "你好",
    "你好，世界！",
    "今天天气很好，我们去公园散步吧。",
    "人工智能正在改变世界。",
    "中文和English混合的句子。",
    "繁體中文測試",
    "こんにちは",
    "こんにちは、世界！",
    "日本語のテキストです。カタカナとひらがな。",
    "東京は日本の首都です。",
    "ｶﾀｶﾅ半角",
    "안녕하세요",
    "안녕하세요, 세계!",
    "한국어 문장을 토큰화합니다.",
    # other scripts
    "مرحبا بالعالم",
    "اللغة العربية جميلة.",
    "السلام عليكم ورحمة الله",
    "नमस्ते दुनिया",
    "हिन्दी एक भाषा है।",
    "Привет, мир!",
    "Съешь же ещё этих мягких французских булок.",
    "Γειά σου Κόσμε",
    "שלום עולם",
    "สวัสดีชาวโลก",
    "Xin chào thế giới",
    "Tiếng Việt có dấu",
    "Zürich, Köln, Straße, Ærø, Øresund, Łódź",
    "naïve café résumé façade",
    "Ελληνικά and English and Русский",
    "ქართული ენა",
    "Հայերեն",
    "தமிழ்",
    "ಕನ್ನಡ",
    "বাংলা ভাষা",
    "ગુજરાતી",
    "ਪੰਜਾਬੀ",
    "አማርኛ",
    "ᚠᚢᚦᚨᚱᚲ",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕄𝕒𝕥𝕙",
    "𝐁𝐨𝐥𝐝 𝑰𝒕𝒂𝒍𝒊𝒄",
    # emoji
    "😀",
    "😀😃😄😁",
    "I love pizza 🍕!",
    "👍",
    "👍🏽",
    "👋🏿 👋🏻",
    "👨‍👩‍👧‍👦",
    "👩🏽‍💻",
    "🏳️‍🌈",
    "🇯🇵🇺🇸🇫🇷",
    "❤️",
    "☺︎ ☺️",
    "🧑‍🤝‍🧑",
    "Done ✅ Failed ❌ Warning ⚠️",
    "🤖🚀✨🔥💯",
    # combining marks and normalization-sensitive text
    "e\u0301",
    "é",
    "cafe\u0301 vs café",
    "n\u0303",
    "a\u0300\u0301\u0302\u0303\u0304",
    "Z\u0351\u036b\u0343\u036a\u0302a\u0310l\u0357g\u0344o",
    "\u1100\u1161\u11a8",
    "ﬁ ﬂ ﬀ",
    "Å Å",
    # unusual Unicode
    "\ufffd",
    "bad \ufffd\ufffd char",
    "zero\u200bwidth\u200bspace",
    "zero\u200cwidth\u200dnon\u2060joiner",
    "\ufeffBOM at start",
    "\u200e left-to-right mark \u200f right-to-left mark",
    "\u202eRTL override\u202c",
    "\u2066isolate\u2069",
    "\ue000\ue001 private use \uf8ff",
    "\U000f0000 plane 15",
    "non\u00a0breaking\u00a0space",
    "em\u2003space and thin\u2009space",
    "ideographic\u3000space",
    "line\u2028separator\u2029paragraph",
    "soft\u00adhyphen",
    "\u0085next line",
    "\x0bvertical tab\x0cform feed",
    "\x01\x02\x03 control \x1b[31mred\x1b[0m",
    "\x7f delete",
    "tab\tnewline\nreturn\r",
    "\U0001f600\U0001f4a9\U0001f9e0",
    "\U00010348 gothic",
    "\u00ff\u0100\u017f",
    "∀x∈ℝ: x²≥0 ⇒ √x² = |x|",
    "∑_{i=1}^{n} i = n(n+1)/2",
    "→ ← ↑ ↓ ⇔",
    "™ © ® § ¶ † ‡",
    "« guillemets » „quotes“ ‚single‘",
    "… — – ‐",
    "①②③④⑤⑥⑦⑧⑨⑩",
    # code
    "def add(a, b):\n    return a + b\n",
    "class Foo:\n    def __init__(self):\n        self.x = 0\n",
    "import numpy as np\nx = np.arange(10).reshape(2, 5)",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}",
    "#include <stdio.h>\nint main(void) { printf(\"hi\\n\"); return 0; }",
    "fn main() {\n    let v: Vec<u32> = (0..10).collect();\n    println!(\"{:?}\", v);\n}",
    "impl<'a, T: Clone + 'a> Iterator for Foo<'a, T> { type Item = &'a T; }",
    "const f = async (x) => { await fetch(`/api/${x}`); };",
    "function hello() { console.log('Hello, world!'); }",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name;",
    "<div class=\"container\"><p>Hello</p></div>",
    "{\"key\": [1, 2, 3], \"nested\": {\"a\": null, \"b\": true}}",
    "package main\n\nimport \"fmt\"\n\nfunc main() {\n\tfmt.Println(\"hello\")\n}",
    "public static void main(String[] args) { System.out.println(args.length); }",
    "#!/bin/bash\nset -euo pipefail\nfor f in *.txt; do echo \"$f\"; done",
    "x = [i**2 for i in range(10) if i % 2 == 0]",
    "    if x == None:\n        pass\n    else:\n        x += 1",
    "a != b && c <= d || e >= f; g->h; i::j; k => l",
    "// comment\n/* block */\n# hash\n-- dash",
    "`backticks` ~tilde~ ^caret^ |pipe|",
    "matrix[i][j] = matrix[j][i];",
    "   \n    \n        code",
    "\tif (x) {\n\t\treturn;\n\t}\n",
    "%d %s %5.2f %%",
    "$HOME ${PATH} $(pwd)",
    "#[derive(Debug, Clone)]\nstruct Point { x: f32, y: f32 }",
    "let s = \"\\u{1F600}\";",
    "λx.λy.x",
    "α β γ δ ε",
    "x_1 + x_2 = y__3",
    "snake_case camelCase PascalCase kebab-case SCREAMING_CASE",
    # mixed scripts
    "Hello 世界 مرحبا 🌍",
    "Tokyo 東京 Seoul 서울 Beijing 北京",
    "price: ¥100 / $1 / €0.9",
    "The word 'naïve' in 日本語 is ナイーブ",
    "Mixing عربي and English and हिन्दी",
    "123abc你好456",
    "emoji😀in😀words",
    "CAPS lower MiXeD 123 ½",
    # special-token-like text without special parsing
    "<|im_start|>",
    "<|im_start|>user\nhi<|im_end|>",
    "<|endoftext|>",
    "< |im_start| >",
    "<|im_start",
    "<filename>main.py<file_sep>",
    "<repo_name>ingot",
    "<|im_end|><|im_end|>",
    "<s>[INST] hi [/INST]</s>",
]

SPECIAL_CASES = [
    "<|im_start|>",
    "<|im_end|>",
    "<|endoftext|>",
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n你好<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>assistant\n4<|im_end|><|endoftext|>",
    "text before<|im_end|>text after",
    " <|im_start|> spaced <|im_end|> ",
    "<|im_start|><|im_start|><|im_end|>",
    "<repo_name>ingot<file_sep>src/main.rs<filename>main.rs",
    "<jupyter_start><jupyter_code>print(1)<jupyter_output>1<empty_output>",
    "<issue_start>bug<issue_comment>fixed<issue_closed>",
    "<gh_stars>100",
    "not special: <|im_start| and <im_start|>",
    "<|im_start|>user\n  leading spaces and digits 12345<|im_end|>\n",
]

POOLS = {
    "en": ["the", "The", " and", "of", "running", "Shakespeare", "tokenizer", "don't", "WON'T", "it's", "quick",
           "ly", "un", "believable", "a", "I", "x", "Hello", "world", "naïve", "über"],
    "zh": ["中国", "你好", "世界", "的", "是", "人工智能", "模型", "。", "，", "天气"],
    "ja": ["こんにちは", "日本", "カタカナ", "ひらがな", "です", "。", "東京"],
    "ko": ["안녕", "하세요", "한국어", "서울", "토큰"],
    "ar": ["مرحبا", "العالم", "اللغة", "٣", "٤٥"],
    "hi": ["नमस्ते", "दुनिया", "हिन्दी", "भाषा", "१२"],
    "ru": ["Привет", "мир", "язык", "ёж"],
    "emoji": ["😀", "👍🏽", "👨‍👩‍👧‍👦", "🇺🇸", "❤️", "🔥", "🏳️‍🌈", "👩🏿‍🔬", "✨"],
    "digits": ["0", "1", "42", "2026", "3.14", "1,000", "½", "Ⅻ", "٣", "①", "²", "१२३", "１２"],
    "ws": [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "\t ", "    "],
    "punct": [".", ",", "!", "?", "...", "--", "'", "\"", "(", ")", "[", "]", "{", "}", "<", ">", "::", "->", "=>",
              "#", "@", "$", "%", "&", "*", "_", "/", "\\", "|", "~", "`", "^", ";", ":"],
    "code": ["fn", "let", "def", "return", "x", "i++", "==", "!=", "&&", "self.", "()", "{}", "[0]", "std::", "#include"],
    "odd": ["\u200b", "\u200d", "\u200e", "\u200f", "\ufeff", "\ufffd", "\ue000", "\u0301", "\u0308", "\u00a0",
            "\u3000", "\u2028"],
    "special": ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<file_sep>"],
}

RANGES = [(0x20, 0x7e), (0xa0, 0x24f), (0x370, 0x3ff), (0x400, 0x4ff), (0x590, 0x6ff), (0x900, 0x97f),
          (0xe00, 0xe7f), (0x1100, 0x11ff), (0x2000, 0x206f), (0x2100, 0x22ff), (0x2460, 0x24ff), (0x3040, 0x30ff),
          (0x4e00, 0x9fff), (0xac00, 0xd7a3), (0xe000, 0xe0ff), (0xfe00, 0xfe0f), (0xff00, 0xffef),
          (0x1d400, 0x1d7ff), (0x1f300, 0x1faff)]


def random_strings(n, rng):
    out = []
    keys = sorted(POOLS)
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 12)):
            r = rng.random()
            if r < 0.75:
                k = rng.choice(keys)
                if k == "special":
                    k = "en"  # special-token text only in the explicit cases
                parts.append(rng.choice(POOLS[k]))
            else:
                lo, hi = rng.choice(RANGES)
                parts.append("".join(chr(rng.randint(lo, hi)) for _ in range(rng.randint(1, 6))))
            if rng.random() < 0.4:
                parts.append(rng.choice(POOLS["ws"]))
        out.append("".join(parts))
    return out


def random_special_strings(n, rng):
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(2, 8)):
            k = rng.choice(["en", "zh", "ws", "digits", "special", "special", "punct", "emoji"])
            parts.append(rng.choice(POOLS[k]))
        out.append("".join(parts))
    return out


def all_cases():
    rng = random.Random(SEED)
    cases = [(s, False) for s in FIXED]
    cases += [(s, True) for s in SPECIAL_CASES]
    cases += [(s, False) for s in random_strings(120, rng)]
    cases += [(s, True) for s in random_special_strings(8, rng)]
    # each fixed string with a word glued on either side, to exercise pre-tokenizer boundaries
    for s in rng.sample(FIXED[1:], 40):
        cases.append(("x" + s + " y", False))
    # the same text with and without special parsing must both be covered
    cases += [("<|im_start|>user\nhi<|im_end|>", True)]
    seen, uniq = set(), []
    for c in cases:
        if c not in seen:
            seen.add(c)
            uniq.append(c)
    for s, _ in uniq:
        assert not any(0xd800 <= ord(ch) <= 0xdfff for ch in s), "lone surrogate"
    return uniq


# ----------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="../shared/models/SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--peer", default="tools/peer/target/release/ingot-peer")
    ap.add_argument("--out", default="testdata/tokenizer/smollm2.jsonl")
    args = ap.parse_args()

    tok, specials = build_hf_tokenizer(args.model)
    cases = all_cases()
    hf = [hf_encode(tok, s, ps) for s, ps in cases]

    with tempfile.TemporaryDirectory() as d:
        src, dst = os.path.join(d, "in.jsonl"), os.path.join(d, "out.jsonl")
        with open(src, "w", encoding="utf-8") as f:
            for s, ps in cases:
                f.write(json.dumps({"text": s, "parse_special": ps}, ensure_ascii=False) + "\n")
        subprocess.run([args.peer, "tokenize", "--model", args.model, "--in", src, "--out", dst], check=True)
        with open(dst, encoding="utf-8") as f:
            peer = [json.loads(line) for line in f if line.strip()]

    assert len(peer) == len(cases), (len(peer), len(cases))
    bad = 0
    for (s, ps), h, p in zip(cases, hf, peer):
        assert p["text"] == s and p["parse_special"] == ps
        if h != p["ids"]:
            bad += 1
            print(f"MISMATCH parse_special={ps} {s!r}\n  hf    {h}\n  llama {p['ids']}", file=sys.stderr)
        # the decoder must round-trip (byte-level BPE is lossless)
        if not ps:
            assert tok.decode(h, skip_special_tokens=False) == s, f"round trip failed for {s!r}"
    n_special = sum(ps for _, ps in cases)
    print(f"{len(cases)} strings ({n_special} with parse_special), {bad} mismatches", file=sys.stderr)
    if bad:
        sys.exit(1)
    with open(args.out, "w", encoding="utf-8", newline="\n") as f:
        for (s, ps), h in zip(cases, hf):
            f.write(json.dumps({"text": s, "parse_special": ps, "ids": h}, ensure_ascii=False) + "\n")
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
