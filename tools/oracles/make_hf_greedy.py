#!/usr/bin/env python3
"""Greedy continuations of the tiny Hugging Face llama fixture by `transformers`, for tests/hf_greedy.rs.

Reads the committed checkpoint testdata/hf/tiny-llama/ (made by make_hf_fixture.py; this script does
not change it) and writes testdata/hf/tiny-llama-greedy.json: for each prompt of `PROMPTS` (the
fixture's four, and whether special tokens in it are parsed), the HF tokenizer's ids
(`add_special_tokens=False`) and STEPS greedy steps of the transformers model in float32, each step's
`token` (argmax, lowest id on ties, as llama.cpp's greedy sampler), `margin` (best minus second-best
logit) and top-8 `(id, logit)`, computed twice:
  - `greedy`: `attn_implementation="eager"`, transformers unchanged;
  - `greedy_f16_attn`: make_hf_fixture.py's registered attention function (transformers' eager
    attention with the roped q and k, v and the probabilities rounded to f16, where ingot's forward
    pass and llama.cpp's CPU backend with its default f16 KV cache hold them).
Each step re-runs the whole sequence (no KV cache), so the reference is the plain forward pass.

Run from the repository root (venv as for make_hf_fixture.py):
  /tmp/torchvenv/bin/python tools/oracles/make_hf_greedy.py
Deterministic for given versions (single-threaded CPU), which are written into the JSON.
"""
import json
import os
import sys

import tokenizers
import torch
import transformers
from transformers import AttentionInterface, AttentionMaskInterface, AutoTokenizer, LlamaForCausalLM
from transformers.masking_utils import eager_mask

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_hf_fixture as fx  # noqa: E402  (the f16 attention function and the prompts)

OUT = os.path.join(fx.ROOT, "testdata", "hf", "tiny-llama-greedy.json")
STEPS = 16


def greedy(model, ids, attn):
    model.set_attn_implementation(attn)
    seq, steps = list(ids), []
    with torch.no_grad():
        for _ in range(STEPS):
            logits = model(torch.tensor([seq])).logits[0, -1]
            top = torch.topk(logits, 8)  # sorted; ties keep the lower id first
            tok = int(torch.argmax(logits))  # first maximum: the lowest id
            steps.append({
                "token": tok,
                "margin": float(top.values[0] - top.values[1]),
                "top8": [[int(i), float(v)] for v, i in zip(top.values, top.indices)],
            })
            seq.append(tok)
    return steps


def main():
    torch.set_num_threads(1)
    AttentionInterface.register("ingot_f16", fx.f16_attention)
    AttentionMaskInterface.register("ingot_f16", eager_mask)
    tok = AutoTokenizer.from_pretrained(fx.OUT)
    model = LlamaForCausalLM.from_pretrained(fx.OUT, dtype=torch.float32, attn_implementation="eager").eval()
    cases = []
    for text in fx.PROMPTS:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        cases.append({
            "text": text,
            "parse_special": "<|" in text,
            "ids": ids,
            "greedy": greedy(model, ids, "eager"),
            "greedy_f16_attn": greedy(model, ids, "ingot_f16"),
        })
    ref = {
        "note": f"{STEPS} greedy steps of transformers' LlamaForCausalLM (float32; eager attention, and "
                "with q, k, v and the attention probabilities rounded to f16) on testdata/hf/tiny-llama; "
                "made by tools/oracles/make_hf_greedy.py",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "tokenizers": tokenizers.__version__},
        "cases": cases,
    }
    with open(OUT, "w") as fh:
        json.dump(ref, fh, ensure_ascii=False)
        fh.write("\n")
    for c in cases:
        same = sum(a["token"] == b["token"] for a, b in zip(c["greedy"], c["greedy_f16_attn"]))
        print(f"{c['text']!r}: {[s['token'] for s in c['greedy']]}, min margin "
              f"{min(s['margin'] for s in c['greedy']):.4f}, f16-attn agrees on {same}/{STEPS}")


if __name__ == "__main__":
    main()
