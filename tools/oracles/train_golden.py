#!/usr/bin/env python3
"""Golden fixture for ingot's trainer (train/tests/golden.rs), in the manner of llm.c's test_gpt2.c.

Builds a tiny llama-style decoder in plain PyTorch (float32, CPU, one thread, functional code so every
convention is on the page), and writes to testdata/train/golden.{json,bin}:

  params.<name>        initial parameters (GGUF tensor names, PyTorch shapes (out, in))
  tokens, targets      (STEPS, B, T) uint32: one batch per optimizer step
  logits               (B, T, V) of step 0's batch
  losses               (STEPS,) mean cross-entropy before each step's update
  grad_norms           (STEPS,) global gradient norm before clipping
  grads.<name>         every parameter's gradient at step 0 (before clipping)
  params_after.<name>  parameters after STEPS AdamW steps

Conventions, mirrored by ingot-train:
  * RMSNorm: y = x * rsqrt(mean(x^2) + EPS) * w, EPS = 1e-5, no bias.
  * RoPE on ADJACENT pairs (2i, 2i+1) of each head (GGUF llama / ggml mode 0, not Hugging Face's
    halves), angle = pos * BASE^(-2i/D), BASE = 10000; the cos/sin table is computed in float64 and
    rounded to float32 once.
  * Attention: causal, scale 1/sqrt(D), GQA with query head h reading KV head h // (H/Hkv)
    (repeat_interleave on the head axis, as HF's repeat_kv).
  * SwiGLU MLP: down(silu(gate(x)) * up(x)); linear layers have no bias; weights are (out, in).
  * Tied head: logits = rmsnorm(x_L) @ token_embd^T. Loss: mean cross-entropy over B*T tokens.
  * Init (for the test only, larger than training init so attention and softmax are far from
    uniform): every matrix N(0, 0.3^2), every RMSNorm gain 1 + N(0, 0.1^2), from torch.manual_seed(SEED).
  * Optimizer: torch.optim.AdamW(foreach=False), betas (0.9, 0.95), eps 1e-8, weight decay 0.1 on
    tensors with >= 2 dims only (nanoGPT's rule), global-norm clipping at 1.0
    (clip_grad_norm_), lr per step from warmup + cosine (nanoGPT get_lr): max 1e-3, min 1e-4,
    3 warmup steps, cosine reaching min at step 10.

Run from the repository root (torch from PyPI, see docs/oracles.md):
  /tmp/torchvenv/bin/python tools/oracles/train_golden.py --out testdata/train/golden
"""
import argparse
import json
import math

import numpy as np
import torch
import torch.nn.functional as F

SEED = 1337
CFG = dict(vocab_size=64, dim=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=72, max_seq_len=16,
           rope_base=10000.0, norm_eps=1e-5, tied_embeddings=True)
B, T, STEPS = 2, 16, 10
ADAMW = dict(beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1)
SCHEDULE = dict(max_lr=1e-3, min_lr=1e-4, warmup_steps=3, decay_steps=10)
GRAD_CLIP = 1.0


def get_lr(step):
    s = SCHEDULE
    if step < s["warmup_steps"]:
        return s["max_lr"] * (step + 1) / s["warmup_steps"]
    if step >= s["decay_steps"]:
        return s["min_lr"]
    r = (step - s["warmup_steps"]) / (s["decay_steps"] - s["warmup_steps"])
    return s["min_lr"] + 0.5 * (1.0 + math.cos(math.pi * r)) * (s["max_lr"] - s["min_lr"])


def layout(c):
    """(name, shape) in ingot's flat-buffer order (train/src/params.rs)."""
    C, V, Fd = c["dim"], c["vocab_size"], c["ffn_dim"]
    D = C // c["n_heads"]
    kv = c["n_kv_heads"] * D
    out = [("token_embd.weight", (V, C))]
    for l in range(c["n_layers"]):
        p = f"blk.{l}."
        out += [(p + "attn_norm.weight", (C,)), (p + "attn_q.weight", (C, C)), (p + "attn_k.weight", (kv, C)),
                (p + "attn_v.weight", (kv, C)), (p + "attn_output.weight", (C, C)),
                (p + "ffn_norm.weight", (C,)), (p + "ffn_gate.weight", (Fd, C)), (p + "ffn_up.weight", (Fd, C)),
                (p + "ffn_down.weight", (C, Fd))]
    out.append(("output_norm.weight", (C,)))
    if not c["tied_embeddings"]:
        out.append(("output.weight", (V, C)))
    return out


def rope_table(t, d, base):
    i = torch.arange(d // 2, dtype=torch.float64)
    inv_freq = base ** (-(2 * i) / d)
    ang = torch.arange(t, dtype=torch.float64)[:, None] * inv_freq[None, :]  # (T, D/2)
    return ang.cos().float(), ang.sin().float()


def rmsnorm(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + CFG["norm_eps"]) * w


def rope(x, cos, sin):  # x (B, T, NH, D); cos, sin (T, D/2)
    x0, x1 = x[..., 0::2], x[..., 1::2]
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    return torch.stack((x0 * c - x1 * s, x0 * s + x1 * c), dim=-1).flatten(-2)


def forward(p, tokens):
    c = CFG
    Bn, Tn = tokens.shape
    H, Hkv, C = c["n_heads"], c["n_kv_heads"], c["dim"]
    D = C // H
    cos, sin = rope_table(Tn, D, c["rope_base"])
    mask = torch.ones(Tn, Tn, dtype=torch.bool).tril()
    x = p["token_embd.weight"][tokens]  # (B, T, C)
    for l in range(c["n_layers"]):
        w = lambda n: p[f"blk.{l}.{n}.weight"]  # noqa: E731
        h = rmsnorm(x, w("attn_norm"))
        q = rope((h @ w("attn_q").T).view(Bn, Tn, H, D), cos, sin)
        k = rope((h @ w("attn_k").T).view(Bn, Tn, Hkv, D), cos, sin)
        v = (h @ w("attn_v").T).view(Bn, Tn, Hkv, D)
        k = k.repeat_interleave(H // Hkv, dim=2)
        v = v.repeat_interleave(H // Hkv, dim=2)
        q, k, v = (z.transpose(1, 2) for z in (q, k, v))  # (B, H, T, D)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(D))
        att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(Bn, Tn, C)
        x = x + y @ w("attn_output").T
        h = rmsnorm(x, w("ffn_norm"))
        x = x + (F.silu(h @ w("ffn_gate").T) * (h @ w("ffn_up").T)) @ w("ffn_down").T
    x = rmsnorm(x, p["output_norm.weight"])
    head = p["token_embd.weight"] if c["tied_embeddings"] else p["output.weight"]
    return x @ head.T  # (B, T, V)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="testdata/train/golden")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(SEED)

    names = layout(CFG)
    p = {}
    for name, shape in names:
        if len(shape) >= 2:
            t = torch.randn(shape) * 0.3
        else:
            t = 1.0 + 0.1 * torch.randn(shape)
        p[name] = t.float().requires_grad_(True)
    init = {n: p[n].detach().clone() for n, _ in names}
    data = torch.randint(0, CFG["vocab_size"], (STEPS, B, T + 1))
    tokens, targets = data[:, :, :-1].contiguous(), data[:, :, 1:].contiguous()

    decay = [p[n] for n, s in names if len(s) >= 2]
    no_decay = [p[n] for n, s in names if len(s) < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": ADAMW["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=SCHEDULE["max_lr"], betas=(ADAMW["beta1"], ADAMW["beta2"]),
                            eps=ADAMW["eps"], foreach=False)
    losses, norms = [], []
    for step in range(STEPS):
        opt.zero_grad(set_to_none=False)
        logits = forward(p, tokens[step])
        loss = F.cross_entropy(logits.view(-1, CFG["vocab_size"]), targets[step].view(-1))
        loss.backward()
        if step == 0:
            logits0 = logits.detach().clone()
            grads0 = {n: p[n].grad.detach().clone() for n, _ in names}
        norm = torch.nn.utils.clip_grad_norm_([p[n] for n, _ in names], GRAD_CLIP)
        for g in opt.param_groups:
            g["lr"] = get_lr(step)
        opt.step()
        losses.append(loss.item())
        norms.append(norm.item())
        print(f"step {step}: loss {loss.item():.6f} grad norm {norm.item():.4f} lr {get_lr(step):.2e}")

    tensors = [("tokens", tokens.numpy().astype("<u4")), ("targets", targets.numpy().astype("<u4")),
               ("logits", logits0.numpy()), ("losses", np.array(losses, dtype=np.float32)),
               ("grad_norms", np.array(norms, dtype=np.float32))]
    tensors += [("params." + n, init[n].numpy()) for n, _ in names]
    tensors += [("grads." + n, grads0[n].numpy()) for n, _ in names]
    tensors += [("params_after." + n, p[n].detach().numpy()) for n, _ in names]
    index, blob = {}, bytearray()
    for name, arr in tensors:
        arr = np.ascontiguousarray(arr)
        if arr.dtype != np.uint32:
            arr = arr.astype("<f4")
        index[name] = dict(dtype="u32" if arr.dtype == np.uint32 else "f32", shape=list(arr.shape),
                           offset=len(blob))
        blob += arr.tobytes()
    meta = dict(made_by="tools/oracles/train_golden.py", torch=torch.__version__, seed=SEED, config=CFG,
                batch=B, seq_len=T, steps=STEPS, adamw=ADAMW, schedule=SCHEDULE, grad_clip=GRAD_CLIP,
                lrs=[get_lr(s) for s in range(STEPS)], tensors=index)
    with open(args.out + ".json", "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    with open(args.out + ".bin", "wb") as f:
        f.write(blob)
    print(f"wrote {args.out}.json and {args.out}.bin ({len(blob)} bytes)")


if __name__ == "__main__":
    main()
