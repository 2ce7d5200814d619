#!/usr/bin/env python3
"""Writes the tiny Hugging Face llama fixture for tests/convert_hf.rs.

testdata/hf/tiny-llama/: a random `LlamaForCausalLM` checkpoint laid out as `save_pretrained`
writes it (config.json, two safetensors shards + model.safetensors.index.json, tokenizer.json with a
byte-level BPE model, tokenizer_config.json with a chat template). Hidden 32, 2 layers, 4 heads,
2 KV heads, intermediate 64, vocab 260 (256 byte tokens, 2 merges, 2 special tokens), untied
lm_head, f32 weights.

testdata/hf/tiny-llama-logits.json: the last-position logits for a few prompts, computed here in
numpy (f64 internally) with Hugging Face's llama math on the *un-permuted* weights: RMSNorm,
rotate_half RoPE, GQA causal attention, SwiGLU (`logits`); and the same math with the roped queries
and keys, the values and the attention probabilities rounded to f16 (`logits_f16_attn`), which is
where ingot's forward pass, like llama.cpp's CPU backend with its default f16 KV cache, leaves f32.
The pure-f32 weights and activations (F32 weights are not quantized, nor their activations) make
everything else agree to float rounding. The Rust test converts the directory with
`ingot convert --type F32` and compares ingot's logits with these, which checks the Q/K row
permutation that turns HF's rotate_half layout into ggml's adjacent-pair RoPE.

No torch or transformers needed: `python3 -m venv /tmp/v && /tmp/v/bin/pip install numpy safetensors`
then `/tmp/v/bin/python tools/oracles/make_hf_fixture.py` from the repository root. The output is
deterministic (numpy's PCG64 with a fixed seed).
"""
import json
import os

import numpy as np
from safetensors.numpy import save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "testdata", "hf", "tiny-llama")
LOGITS = os.path.join(ROOT, "testdata", "hf", "tiny-llama-logits.json")

HIDDEN, LAYERS, HEADS, KV_HEADS, FF = 32, 2, 4, 2, 64
HEAD_DIM = HIDDEN // HEADS
EPS, THETA = 1e-5, 10000.0
PROMPTS = [[104, 101, 108, 108, 111], [258, 72, 105, 33], [7, 200, 31, 0, 255, 256, 257, 259, 42]]


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


def tokenizer_files():
    vocab = {t: i for i, t in enumerate(byte_tokens())}
    vocab["he"] = 256
    vocab["hel"] = 257
    merges = ["h e", "he l"]
    specials = [("<|im_start|>", 258), ("<|im_end|>", 259)]
    for s, i in specials:
        vocab[s] = i
    tok = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True}
            for s, i in specials
        ],
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        ]},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": False, "vocab": vocab, "merges": merges},
    }
    cfg = {
        "add_prefix_space": False,
        "bos_token": "<|im_start|>",
        "eos_token": "<|im_end|>",
        "model_max_length": 256,
        "tokenizer_class": "GPT2Tokenizer",
        "chat_template": "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
    }
    return tok, cfg


def weights(rng):
    f = lambda *shape, s=0.25: (rng.standard_normal(shape) * s).astype(np.float32)
    w = {"model.embed_tokens.weight": f(260, HIDDEN, s=0.5)}
    for l in range(LAYERS):
        p = f"model.layers.{l}."
        w[p + "input_layernorm.weight"] = (1 + f(HIDDEN, s=0.1)).astype(np.float32)
        w[p + "self_attn.q_proj.weight"] = f(HEADS * HEAD_DIM, HIDDEN, s=0.4)
        w[p + "self_attn.k_proj.weight"] = f(KV_HEADS * HEAD_DIM, HIDDEN, s=0.4)
        w[p + "self_attn.v_proj.weight"] = f(KV_HEADS * HEAD_DIM, HIDDEN)
        w[p + "self_attn.o_proj.weight"] = f(HIDDEN, HEADS * HEAD_DIM)
        w[p + "post_attention_layernorm.weight"] = (1 + f(HIDDEN, s=0.1)).astype(np.float32)
        w[p + "mlp.gate_proj.weight"] = f(FF, HIDDEN)
        w[p + "mlp.up_proj.weight"] = f(FF, HIDDEN)
        w[p + "mlp.down_proj.weight"] = f(HIDDEN, FF)
    w["model.norm.weight"] = (1 + f(HIDDEN, s=0.1)).astype(np.float32)
    w["lm_head.weight"] = f(260, HIDDEN)
    return w


def rms_norm(x, w):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + EPS) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)


def f16(x, on):
    return x.astype(np.float16).astype(np.float64) if on else x


def forward(w, ids, f16_attn=False):
    """HF LlamaForCausalLM.forward, logits of the last position. With `f16_attn`, the roped queries
    and keys, the values and the attention probabilities are rounded to f16 where ingot (like
    llama.cpp's CPU backend with its default f16 KV cache) stores them; all else is the same."""
    W = {k: v.astype(np.float64) for k, v in w.items()}
    T = len(ids)
    x = W["model.embed_tokens.weight"][ids]  # (T, C)
    inv = 1.0 / THETA ** (np.arange(0, HEAD_DIM, 2, dtype=np.float64) / HEAD_DIM)
    ang = np.outer(np.arange(T, dtype=np.float64), inv)
    emb = np.concatenate([ang, ang], axis=-1)  # (T, D)
    cos, sin = np.cos(emb)[:, None, :], np.sin(emb)[:, None, :]
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for l in range(LAYERS):
        p = f"model.layers.{l}."
        h = rms_norm(x, W[p + "input_layernorm.weight"])
        q = (h @ W[p + "self_attn.q_proj.weight"].T).reshape(T, HEADS, HEAD_DIM)
        k = (h @ W[p + "self_attn.k_proj.weight"].T).reshape(T, KV_HEADS, HEAD_DIM)
        v = (h @ W[p + "self_attn.v_proj.weight"].T).reshape(T, KV_HEADS, HEAD_DIM)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = HEADS // KV_HEADS
        q, k, v = f16(q, f16_attn), f16(k, f16_attn), f16(v, f16_attn)
        k = np.repeat(k, rep, axis=1)
        v = np.repeat(v, rep, axis=1)
        att = np.einsum("thd,shd->hts", q, k) / np.sqrt(HEAD_DIM) + mask
        att = np.exp(att - att.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        att = f16(att, f16_attn)
        o = np.einsum("hts,shd->thd", att, v).reshape(T, HEADS * HEAD_DIM)
        x = x + o @ W[p + "self_attn.o_proj.weight"].T
        h = rms_norm(x, W[p + "post_attention_layernorm.weight"])
        g = h @ W[p + "mlp.gate_proj.weight"].T
        u = h @ W[p + "mlp.up_proj.weight"].T
        x = x + ((g / (1 + np.exp(-g))) * u) @ W[p + "mlp.down_proj.weight"].T
    x = rms_norm(x, W["model.norm.weight"])
    return (x[-1] @ W["lm_head.weight"].T).tolist()


def main():
    rng = np.random.default_rng(20261129)
    w = weights(rng)
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.remove(os.path.join(OUT, f))
    names = list(w)
    split = names.index("model.layers.1.input_layernorm.weight")
    shards = [names[:split], names[split:]]
    index = {"metadata": {"total_size": sum(v.nbytes for v in w.values())}, "weight_map": {}}
    for i, shard in enumerate(shards):
        fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file({n: w[n] for n in shard}, os.path.join(OUT, fname), metadata={"format": "pt"})
        for n in shard:
            index["weight_map"][n] = fname
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": HIDDEN, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS, "intermediate_size": FF, "rms_norm_eps": EPS,
        "rope_theta": THETA, "max_position_embeddings": 256, "vocab_size": 260,
        "tie_word_embeddings": False, "hidden_act": "silu", "torch_dtype": "float32",
        "bos_token_id": 258, "eos_token_id": 259,
    }
    tok, tok_cfg = tokenizer_files()
    dump = lambda obj, name: open(os.path.join(OUT, name), "w").write(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")
    dump(config, "config.json")
    dump(index, "model.safetensors.index.json")
    dump(tok, "tokenizer.json")
    dump(tok_cfg, "tokenizer_config.json")
    ref = {"note": "last-position logits of HF llama math in numpy (f64) on the fixture's weights "
                   "(logits), and the same with q, k, v and attention probabilities rounded to f16 as "
                   "ingot's f16 KV cache does (logits_f16_attn); made by tools/oracles/make_hf_fixture.py",
           "cases": [{"ids": ids, "logits": forward(w, ids),
                      "logits_f16_attn": forward(w, ids, f16_attn=True)} for ids in PROMPTS]}
    with open(LOGITS, "w") as fh:
        json.dump(ref, fh)
        fh.write("\n")


if __name__ == "__main__":
    main()
