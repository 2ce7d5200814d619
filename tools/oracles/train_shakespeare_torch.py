#!/usr/bin/env python3
"""PyTorch twin of `ingot train pretrain` with its defaults (nanoGPT "baby Shakespeare": 4 layers, 4 heads,
width 128, SwiGLU 352, context 64, batch 12, character-level, tied head, AdamW lr 1e-3 betas 0.9/0.99
eps 1e-8 weight decay 0.1 on matrices, 100 warmup steps then cosine to 1e-4 at the last step, clipping
at 1.0, seed 1337), for the long loss-curve comparison in BENCHMARKS.md.

Same start, same data, same order as ingot:
  * corpus: every *.txt of --data in byte order of the names, concatenated; the sorted set of its
    characters is the vocabulary; the last 10% of the ids validate;
  * initial weights: ingot's `Model::init(seed)` reimplemented (SplitMix64, Box-Muller in float64 with
    the same libm, rounded to float32; matrices N(0, 0.02), attn_output/ffn_down N(0, 0.02/sqrt(2L)),
    gains 1), so both runs start from the same bits;
  * batches: ingot's sampler (SplitMix64 seeded seed + 1), validation windows seeded seed + 3 (as
    the CLI does),
    --eval-batches of them at step 0, every --eval-every steps and at the end.
The model and the step are train_loss_curve.py's (imported). Prints and writes JSON:
{"losses": [...], "val": [[step, loss], ...]}.

  /tmp/torchvenv/bin/python tools/oracles/train_shakespeare_torch.py --data ../shared/data/shakespeare \\
      --steps 2000 --out /tmp/torch_baby.json
  ingot train pretrain --steps 2000 --threads 1 --out /tmp/ingot_baby     # metrics.jsonl: the same fields
"""
import argparse
import json
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_loss_curve as tlc  # noqa: E402


def ingot_init(names, seed, n_layers):
    """train/src/model.rs `Model::init`."""
    rng = tlc.SplitMix64(seed)

    def uniform():
        return (rng.next_u64() >> 11) * (1.0 / (1 << 53))

    residual_std = 0.02 / math.sqrt(2.0 * n_layers)
    out = {}
    for name, shape in names:
        if len(shape) < 2:
            out[name] = torch.ones(shape, dtype=torch.float32)
            continue
        std = residual_std if name.endswith(("attn_output.weight", "ffn_down.weight")) else 0.02
        n = shape[0] * shape[1]
        vals = []
        for _ in range(n):
            u1 = 1.0 - uniform()
            u2 = uniform()
            vals.append(std * (math.sqrt(-2.0 * math.log(u1)) * math.cos(math.tau * u2)))
        out[name] = torch.tensor(vals, dtype=torch.float64).float().view(shape)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data/shakespeare")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--eval-batches", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--out", default="/tmp/torch_baby.json")
    args = ap.parse_args()
    torch.set_num_threads(1)

    files = sorted((f for f in os.listdir(args.data) if f.endswith(".txt")), key=lambda f: f.encode())
    text = "".join(open(os.path.join(args.data, f), encoding="utf-8").read() for f in files)
    chars = sorted(set(text))
    index_of = {ch: i for i, ch in enumerate(chars)}
    ids = [index_of[ch] for ch in text]
    n_train = math.floor(len(ids) * 0.9 + 0.5)
    train_ids, val_ids = ids[:n_train], ids[n_train:]
    v = len(chars)

    tlc.MODEL = dict(dim=128, n_layers=4, n_heads=4, n_kv_heads=4, ffn_dim=352, max_seq_len=64,
                     rope_base=10000.0, norm_eps=1e-5, tied_embeddings=True)
    tlc.B, tlc.T, tlc.GRAD_ACCUM, tlc.STEPS = 12, 64, 1, args.steps
    tlc.ADAMW = dict(beta1=0.9, beta2=0.99, eps=1e-8, weight_decay=0.1)
    tlc.SCHEDULE = dict(max_lr=1e-3, min_lr=1e-4, warmup_steps=100, decay_steps=args.steps)
    # `ingot train pretrain` seeds its validation windows with the sampler's seed + 2, i.e. --seed + 3
    # (src/commands/train.rs; its --help says --seed + 2)
    tlc.SAMPLER_SEED, tlc.EVAL_SEED = args.seed + 1, args.seed + 3
    tlc.EVAL_BATCHES, tlc.EVAL_EVERY = args.eval_batches, args.eval_every

    names = tlc.layout(tlc.MODEL, v)
    t0 = time.time()
    init = ingot_init(names, args.seed, tlc.MODEL["n_layers"])
    print(f"vocabulary {v}, {len(train_ids)} training ids, init in {time.time() - t0:.1f}s", flush=True)
    t0 = time.time()
    losses, norms, _, val = tlc.train(init, names, train_ids, val_ids, torch.float32, v)
    val_steps = [0] + [s for s in range(args.eval_every, args.steps + 1, args.eval_every)]
    if args.steps % args.eval_every:
        val.append(None)  # ingot also evaluates at the end; train() does not: not compared
    print(f"{args.steps} steps in {time.time() - t0:.0f}s")
    for s, l in zip(val_steps, val):
        print(f"step {s:5}: validation {l:.4f}")
    json.dump(dict(losses=losses, grad_norms=norms, val=list(zip(val_steps, val))), open(args.out, "w"))


if __name__ == "__main__":
    main()
