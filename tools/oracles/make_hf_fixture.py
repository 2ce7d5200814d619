#!/usr/bin/env python3
"""Writes the tiny Hugging Face llama fixture for tests/convert_hf.rs with Hugging Face `transformers`.

testdata/hf/tiny-llama/: a random `LlamaForCausalLM` (`transformers.LlamaConfig`: hidden 32,
2 layers, 4 heads, 2 KV heads, intermediate 64, vocab 260, untied lm_head, rope theta 10000,
rms eps 1e-5, f32) written by `model.save_pretrained` in two safetensors shards with
model.safetensors.index.json (config.json in transformers 5's layout: `rope_parameters`, `dtype`;
plus generation_config.json), and a byte-level BPE tokenizer (256 byte tokens, 2 merges, 2 special
tokens; SmolLM's `Digits` + `ByteLevel` pre-tokenizer) built with `tokenizers` and written by
`PreTrainedTokenizerFast.save_pretrained` (tokenizer.json, tokenizer_config.json, and the chat
template wherever this transformers version puts it).

The weights are drawn from a seeded torch generator at larger scales than transformers' default
init (std 0.02, norms all ones), so that attention is far from uniform and the logits are O(1): a
wrong Q/K permutation, a swapped norm or a transposed matrix moves them by far more than the
tolerance.

testdata/hf/tiny-llama-logits.json, per prompt: the text, the ids the HF tokenizer gives it
(`add_special_tokens=False`; special tokens in the text are parsed), and the last-position logits of
the transformers model in float32:
  - `logits`: `attn_implementation="eager"`, transformers unchanged;
  - `logits_f16_attn`: the same model with an attention function registered through
    `transformers.AttentionInterface` that is transformers' `eager_attention_forward` except that
    the roped queries and keys, the values and the softmax probabilities are rounded to f16 — where
    ingot's forward pass (like llama.cpp's CPU backend with its default f16 KV cache) holds them.
    Everything else (embedding, RMSNorm, RoPE, projections, SwiGLU, lm_head) is transformers' code.
    (Checked: the registered function without the rounding gives logits bit-identical to eager.)
  - `f16_alternatives`: an f16 rounding whose f32 input lies within 1e-6 (relative) of a midpoint
    between two f16 values can go either way between two correct f32 implementations (they differ
    by ~1e-7 relative from summation order). For each such rounding whose flip moves a logit by more
    than 1e-4, the logits with that one rounding flipped (name, margin, change, logits).
The Rust test converts the directory with `ingot convert --type F32`, checks that ingot's tokenizer
gives the same ids, and compares ingot's logits with `logits_f16_attn` (or one of its
`f16_alternatives`) within 1e-4, and with `logits` within 1e-2 (the f16 rounding alone moves
transformers' own logits by up to 4.5e-3; printed when the script runs).

Run from the repository root with a venv holding torch (CPU), transformers, tokenizers, safetensors:
  python3 -m venv /tmp/v && /tmp/v/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu
  /tmp/v/bin/pip install transformers tokenizers safetensors
  /tmp/v/bin/python tools/oracles/make_hf_fixture.py
The versions used are written into the logits JSON. Deterministic for given versions (seeded torch
generator, single-threaded CPU). It replaces the earlier numpy re-implementation of llama's math,
which nothing else used: transformers is the reference now.
"""
import json
import os
import shutil

import tokenizers
import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (AttentionInterface, AttentionMaskInterface, AutoTokenizer, LlamaConfig, LlamaForCausalLM,
                          PreTrainedTokenizerFast)
from transformers.masking_utils import eager_mask
from transformers.models.llama.modeling_llama import repeat_kv

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "testdata", "hf", "tiny-llama")
LOGITS = os.path.join(ROOT, "testdata", "hf", "tiny-llama-logits.json")

SEED = 20261129
CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] "
    "+ '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% endif %}"
)
PROMPTS = [
    "hello",
    "<|im_start|>Hi!",
    "<|im_start|>user\nhello 42<|im_end|>\n<|im_start|>assistant\n",
    "\x00\x07 Déjà vu ★ 2026\t🦀",
]


def byte_tokens():
    """GPT-2's bytes_to_unicode, in byte order."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    table = dict(zip(bs, cs))
    return [chr(table[b]) for b in range(256)]


def make_tokenizer():
    vocab = {t: i for i, t in enumerate(byte_tokens())}
    vocab["he"] = 256
    vocab["hel"] = 257
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[("h", "e"), ("he", "l")]))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        model_max_length=256,
    )
    # Added after the 258 vocabulary entries: <|im_start|> = 258, <|im_end|> = 259.
    fast.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    fast.chat_template = CHAT_TEMPLATE
    assert fast.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"]) == [258, 259]
    return fast


def make_model():
    config = LlamaConfig(
        vocab_size=260,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        tie_word_embeddings=False,
        bos_token_id=258,
        eos_token_id=259,
        attn_implementation="eager",
    )
    torch.manual_seed(SEED)
    model = LlamaForCausalLM(config).to(torch.float32).eval()
    g = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                s = 0.5 if "embed_tokens" in name else 0.4 if ("q_proj" in name or "k_proj" in name) else 0.25
                p.copy_(s * torch.randn(p.shape, generator=g))
    return model


# f16 rounding of the attention inputs. `ROUNDED` records each rounded tensor (before rounding) by
# (layer, name); `FLIP`, when set to (layer, name, flat index), rounds that one element to its other
# f16 neighbour.
ROUNDED = {}
FLIP = None
TIE_MARGIN = 1e-6


def f16(x, layer, name):
    x = x.contiguous()
    ROUNDED[(layer, name)] = x.detach().clone()
    y = x.to(torch.float16)
    if FLIP is not None and FLIP[:2] == (layer, name):
        flat = y.view(-1)
        i = FLIP[2]
        away = torch.tensor(float("inf") if x.reshape(-1)[i] > flat[i] else float("-inf"), dtype=torch.float16)
        flat[i] = torch.nextafter(flat[i], away)
    return y.to(x.dtype)


def f16_attention(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """transformers' eager attention with the roped q and k, v and the probabilities rounded to f16."""
    layer = module.layer_idx
    key_states = repeat_kv(f16(key, layer, "k"), module.num_key_value_groups)
    value_states = repeat_kv(f16(value, layer, "v"), module.num_key_value_groups)
    w = torch.matmul(f16(query, layer, "q"), key_states.transpose(2, 3)) * scaling
    if attention_mask is not None:
        w = w + attention_mask
    w = torch.nn.functional.softmax(w, dim=-1, dtype=torch.float32).to(query.dtype)
    w = f16(w, layer, "p")
    out = torch.matmul(w, value_states).transpose(1, 2).contiguous()
    return out, w


def near_ties():
    """The elements of the last f16 run whose f32 value lies within TIE_MARGIN (relative) of a
    midpoint between two f16 values: a difference of float rounding between two correct
    implementations (about 1e-7 relative here) can round them either way."""
    out = []
    for (layer, name), x in ROUNDED.items():
        x = x.double().reshape(-1)
        y16 = x.to(torch.float16)
        y = y16.double()
        up = torch.nextafter(y16, torch.tensor(float("inf"), dtype=torch.float16)).double()
        dn = torch.nextafter(y16, torch.tensor(float("-inf"), dtype=torch.float16)).double()
        mid = torch.where(x >= y, (y + up) / 2, (y + dn) / 2)
        margin = (x - mid).abs() / x.abs().clamp_min(1e-30)
        hit = (margin < TIE_MARGIN) & (x != y) & (margin > 0)  # exact midpoints round to even in both
        out += [(layer, name, i, margin[i].item()) for i in hit.nonzero().flatten().tolist()]
    return out


def last_logits(model, ids, attn):
    model.set_attn_implementation(attn)
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0, -1].tolist()


def f16_alternatives(model, ids, ref):
    """For each near-tie f16 rounding whose other direction moves a logit by more than 1e-4: the
    logits with that one rounding flipped."""
    global FLIP
    last_logits(model, ids, "ingot_f16")
    alts = []
    for layer, name, i, margin in near_ties():
        FLIP = (layer, name, i)
        logits = last_logits(model, ids, "ingot_f16")
        FLIP = None
        d = max(abs(a - b) for a, b in zip(logits, ref))
        if d > 1e-4:
            alts.append({"flip": f"layer {layer} {name}[{i}]", "margin": margin, "max_change": d,
                         "logits_f16_attn": logits})
    return alts


def main():
    torch.set_num_threads(1)
    # A registered attention function gets the mask its name asks for: eager's additive float mask.
    AttentionInterface.register("ingot_f16", f16_attention)
    AttentionMaskInterface.register("ingot_f16", eager_mask)
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    model = make_model()
    # 140 KB of f32 weights: 100 KB shards give two files and the index.
    model.save_pretrained(OUT, max_shard_size="100KB")
    tok = make_tokenizer()
    tok.save_pretrained(OUT)

    # Reload both from disk: the reference is what the saved files give.
    tok = AutoTokenizer.from_pretrained(OUT)
    model = LlamaForCausalLM.from_pretrained(OUT, dtype=torch.float32, attn_implementation="eager").eval()
    cases = []
    for text in PROMPTS:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text, (text, tok.decode(ids))
        cases.append({
            "text": text,
            "ids": ids,
            "logits": last_logits(model, ids, "eager"),
            "logits_f16_attn": last_logits(model, ids, "ingot_f16"),
        })
        cases[-1]["f16_alternatives"] = f16_alternatives(model, ids, cases[-1]["logits_f16_attn"])
    ref = {
        "note": "last-position logits of transformers' LlamaForCausalLM (float32, eager attention) on "
                "the fixture (logits), and the same with the roped q and k, v and the attention "
                "probabilities rounded to f16 as ingot's f16 KV cache does (logits_f16_attn); ids from "
                "the saved tokenizer (AutoTokenizer, add_special_tokens=False); made by "
                "tools/oracles/make_hf_fixture.py",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "tokenizers": tokenizers.__version__},
        "cases": cases,
    }
    with open(LOGITS, "w") as fh:
        json.dump(ref, fh, ensure_ascii=False)
        fh.write("\n")
    for c in cases:
        d = max(abs(a - b) for a, b in zip(c["logits"], c["logits_f16_attn"]))
        print(f"{len(c['ids'])} tokens: max |eager - f16 attn| = {d:.3e}, "
              f"max |logit| = {max(map(abs, c['logits'])):.3f}, f16 near-ties that move a logit "
              f"> 1e-4: {[(a['flip'], round(a['max_change'], 6)) for a in c['f16_alternatives']]}")


if __name__ == "__main__":
    main()
