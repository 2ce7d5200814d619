#!/usr/bin/env python3
"""Loss-curve fixture for ingot's trainer (train/tests/loss_curve.rs): PyTorch trains the same tiny
llama-style decoder from the same initial weights on the same batches for 200 optimizer steps, and
records the loss of every step.

Everything ingot's `ingot train pretrain` loop does is on the page here and must agree with it:

  * Data: testdata/text/macbeth_40k.txt, character-level (the vocabulary is the sorted set of its
    characters, ids by code point order, as `CharTokenizer::from_text`); the first
    round(0.9 * len) ids are the training set, the rest validation (`train_val_split`).
  * Batches: ingot's sampler, reimplemented bit for bit: SplitMix64 (`train/src/rng.rs`) seeded with
    SAMPLER_SEED; each window's start is `next_u64() % (len(train) - T)`, B windows per micro-batch,
    inputs `ids[s:s+T]`, targets `ids[s+1:s+T+1]` (`data::random_batch`). The starts of every
    window are written to the fixture as well, so the test can say so if the two samplers ever differ.
  * Model (the conventions of train_golden.py): RMSNorm eps 1e-5, RoPE on adjacent pairs with the table
    in float64 rounded once, causal GQA attention, SwiGLU, no biases, tied head, mean cross-entropy.
  * Init: nanoGPT's, from torch.manual_seed(SEED): matrices N(0, 0.02^2), attn_output and ffn_down
    N(0, (0.02/sqrt(2L))^2), RMSNorm gains 1. Written to the fixture; ingot starts from them.
  * Step: zero the gradients; GRAD_ACCUM micro-batches, each `(loss / GRAD_ACCUM).backward()`; the
    step's loss is the mean of the micro-batch losses; clip_grad_norm_ at 1.0; lr from warmup + cosine
    (nanoGPT's get_lr); torch.optim.AdamW(foreach=False), betas (0.9, 0.99), eps 1e-8, weight decay
    0.1 on tensors with >= 2 dims only.
  * Validation at steps 0, 50, 100, 150, 200: mean loss over EVAL_BATCHES windows of the validation
    set from a fresh sampler seeded EVAL_SEED (ingot's `Trainer::evaluate`).

The run is done twice from the same initial weights and batches: in float32 (what ingot is compared
with) and in float64 (the exact curve up to rounding). The distance between the two float32/float64
curves measures how far f32 rounding alone moves the curve; the test's tolerances are set from it.

Run from the repository root (torch CPU from PyPI, see tools/oracles/README.md):
  /tmp/torchvenv/bin/python tools/oracles/train_loss_curve.py --out testdata/train/loss_curve
"""
import argparse
import json
import math

import numpy as np
import torch
import torch.nn.functional as F

SEED = 1337
SAMPLER_SEED = 7
EVAL_SEED = 8
EVAL_BATCHES = 4
EVAL_EVERY = 50
MODEL = dict(dim=48, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=128, max_seq_len=32,
             rope_base=10000.0, norm_eps=1e-5, tied_embeddings=True)
B, T, GRAD_ACCUM, STEPS = 4, 32, 2, 200
ADAMW = dict(beta1=0.9, beta2=0.99, eps=1e-8, weight_decay=0.1)
SCHEDULE = dict(max_lr=3e-3, min_lr=3e-4, warmup_steps=20, decay_steps=200)
GRAD_CLIP = 1.0
TEXT = "testdata/text/macbeth_40k.txt"
MASK64 = (1 << 64) - 1


class SplitMix64:
    """train/src/rng.rs."""

    def __init__(self, seed):
        self.state = seed & MASK64

    def next_u64(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def below(self, n):
        return self.next_u64() % n


def random_batch(ids, rng):
    """data::random_batch: (starts, tokens (B, T), targets (B, T))."""
    starts = [rng.below(len(ids) - T) for _ in range(B)]
    x = torch.tensor([ids[s:s + T] for s in starts], dtype=torch.long)
    y = torch.tensor([ids[s + 1:s + T + 1] for s in starts], dtype=torch.long)
    return starts, x, y


def get_lr(step):
    s = SCHEDULE
    if step < s["warmup_steps"]:
        return s["max_lr"] * (step + 1) / s["warmup_steps"]
    if step >= s["decay_steps"]:
        return s["min_lr"]
    r = (step - s["warmup_steps"]) / (s["decay_steps"] - s["warmup_steps"])
    return s["min_lr"] + 0.5 * (1.0 + math.cos(math.pi * r)) * (s["max_lr"] - s["min_lr"])


def layout(c, v):
    """(name, shape) in ingot's flat-buffer order (train/src/params.rs)."""
    C, Fd = c["dim"], c["ffn_dim"]
    kv = c["n_kv_heads"] * (C // c["n_heads"])
    out = [("token_embd.weight", (v, C))]
    for l in range(c["n_layers"]):
        p = f"blk.{l}."
        out += [(p + "attn_norm.weight", (C,)), (p + "attn_q.weight", (C, C)), (p + "attn_k.weight", (kv, C)),
                (p + "attn_v.weight", (kv, C)), (p + "attn_output.weight", (C, C)),
                (p + "ffn_norm.weight", (C,)), (p + "ffn_gate.weight", (Fd, C)), (p + "ffn_up.weight", (Fd, C)),
                (p + "ffn_down.weight", (C, Fd))]
    out.append(("output_norm.weight", (C,)))
    return out


# ingot's configuration holds eps as an f32 (what the checkpoint and GGUF store): the same value here in
# both runs (an f32 run would round 1e-5 to it anyway).
NORM_EPS = float(np.float32(MODEL["norm_eps"]))


def rmsnorm(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + NORM_EPS) * w


def rope(x, cos, sin):  # x (B, T, NH, D); cos, sin (T, D/2)
    x0, x1 = x[..., 0::2], x[..., 1::2]
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    return torch.stack((x0 * c - x1 * s, x0 * s + x1 * c), dim=-1).flatten(-2)


def forward(p, tokens, dtype):
    c = MODEL
    Bn, Tn = tokens.shape
    H, Hkv, C = c["n_heads"], c["n_kv_heads"], c["dim"]
    D = C // H
    i = torch.arange(D // 2, dtype=torch.float64)
    ang = torch.arange(Tn, dtype=torch.float64)[:, None] * (c["rope_base"] ** (-(2 * i) / D))[None, :]
    cos, sin = ang.cos().to(dtype), ang.sin().to(dtype)  # rounded once to the run's type, as ingot
    mask = torch.ones(Tn, Tn, dtype=torch.bool).tril()
    x = p["token_embd.weight"][tokens]
    for l in range(c["n_layers"]):
        w = lambda n: p[f"blk.{l}.{n}.weight"]  # noqa: E731
        h = rmsnorm(x, w("attn_norm"))
        q = rope((h @ w("attn_q").T).view(Bn, Tn, H, D), cos, sin)
        k = rope((h @ w("attn_k").T).view(Bn, Tn, Hkv, D), cos, sin)
        v = (h @ w("attn_v").T).view(Bn, Tn, Hkv, D)
        k = k.repeat_interleave(H // Hkv, dim=2)
        v = v.repeat_interleave(H // Hkv, dim=2)
        q, k, v = (z.transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(D))
        att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(Bn, Tn, C)
        x = x + y @ w("attn_output").T
        h = rmsnorm(x, w("ffn_norm"))
        x = x + (F.silu(h @ w("ffn_gate").T) * (h @ w("ffn_up").T)) @ w("ffn_down").T
    x = rmsnorm(x, p["output_norm.weight"])
    return x @ p["token_embd.weight"].T


def loss_of(p, x, y, dtype, v):
    return F.cross_entropy(forward(p, x, dtype).view(-1, v), y.view(-1))


def train(init, names, train_ids, val_ids, dtype, v):
    p = {n: init[n].to(dtype).clone().requires_grad_(True) for n, _ in names}
    decay = [p[n] for n, s in names if len(s) >= 2]
    no_decay = [p[n] for n, s in names if len(s) < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": ADAMW["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=SCHEDULE["max_lr"], betas=(ADAMW["beta1"], ADAMW["beta2"]),
                            eps=ADAMW["eps"], foreach=False)

    def evaluate():
        rng = SplitMix64(EVAL_SEED)
        total = 0.0
        with torch.no_grad():
            for _ in range(EVAL_BATCHES):
                _, x, y = random_batch(val_ids, rng)
                total += loss_of(p, x, y, dtype, v).item()
        return total / EVAL_BATCHES

    sampler = SplitMix64(SAMPLER_SEED)
    losses, norms, starts, val = [], [], [], [evaluate()]
    for step in range(STEPS):
        opt.zero_grad(set_to_none=False)
        step_loss = 0.0
        for _ in range(GRAD_ACCUM):
            s, x, y = random_batch(train_ids, sampler)
            starts += s
            loss = loss_of(p, x, y, dtype, v)
            (loss / GRAD_ACCUM).backward()
            step_loss += loss.item() / GRAD_ACCUM
        norm = torch.nn.utils.clip_grad_norm_([p[n] for n, _ in names], GRAD_CLIP)
        for g in opt.param_groups:
            g["lr"] = get_lr(step)
        opt.step()
        losses.append(step_loss)
        norms.append(norm.item())
        if (step + 1) % EVAL_EVERY == 0:
            val.append(evaluate())
    return losses, norms, starts, val


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="testdata/train/loss_curve")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(SEED)

    text = open(TEXT, encoding="utf-8").read()
    chars = sorted(set(text))
    index_of = {ch: i for i, ch in enumerate(chars)}
    ids = [index_of[ch] for ch in text]
    v = len(chars)
    n_train = math.floor(len(ids) * 0.9 + 0.5)  # Rust's f64::round (no tie here)
    train_ids, val_ids = ids[:n_train], ids[n_train:]

    names = layout(MODEL, v)
    residual_std = 0.02 / math.sqrt(2 * MODEL["n_layers"])
    init = {}
    for name, shape in names:
        if len(shape) >= 2:
            std = residual_std if name.endswith(("attn_output.weight", "ffn_down.weight")) else 0.02
            init[name] = (torch.randn(shape, dtype=torch.float32) * std).float()
        else:
            init[name] = torch.ones(shape, dtype=torch.float32)

    l32, n32, starts, v32 = train(init, names, train_ids, val_ids, torch.float32, v)
    l64, n64, starts64, v64 = train(init, names, train_ids, val_ids, torch.float64, v)
    assert starts == starts64
    for step in list(range(0, STEPS, 20)) + [STEPS - 1]:
        print(f"step {step:3}: loss f32 {l32[step]:.6f} f64 {l64[step]:.6f} "
              f"(rel {abs(l32[step] - l64[step]) / l64[step]:.2e}) grad norm {n32[step]:.4f} lr {get_lr(step):.2e}")
    print("validation f32", [round(x, 6) for x in v32], "f64", [round(x, 6) for x in v64])

    tensors = [("starts", np.array(starts, dtype="<u4"))]
    tensors += [("params." + n, init[n].numpy()) for n, _ in names]
    index, blob = {}, bytearray()
    for name, arr in tensors:
        arr = np.ascontiguousarray(arr)
        if arr.dtype != np.uint32:
            arr = arr.astype("<f4")
        index[name] = dict(dtype="u32" if arr.dtype == np.uint32 else "f32", shape=list(arr.shape),
                           offset=len(blob))
        blob += arr.tobytes()
    meta = dict(made_by="tools/oracles/train_loss_curve.py", torch=torch.__version__, seed=SEED,
                text=TEXT, vocab_size=v, model=MODEL, batch=B, seq_len=T, grad_accum=GRAD_ACCUM, steps=STEPS,
                sampler_seed=SAMPLER_SEED, eval_seed=EVAL_SEED, eval_batches=EVAL_BATCHES,
                eval_every=EVAL_EVERY, adamw=ADAMW, schedule=SCHEDULE, grad_clip=GRAD_CLIP,
                lrs=[get_lr(s) for s in range(STEPS)],
                losses_f32=l32, losses_f64=l64, grad_norms_f32=n32, grad_norms_f64=n64,
                val_losses_f32=v32, val_losses_f64=v64, tensors=index)
    with open(args.out + ".json", "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    with open(args.out + ".bin", "wb") as f:
        f.write(blob)
    print(f"wrote {args.out}.json and {args.out}.bin ({len(blob)} bytes)")


if __name__ == "__main__":
    main()
