"""PyTorch eager training throughput on ingot's architecture, the other half of `ingot train bench`.

Same model (llama style: RMSNorm, RoPE on adjacent pairs, SwiGLU, no biases, tied head), same
configurations (`--config baby`: 4 layers, 4 heads, width 128, context 64, batch 12; `large`: 6 layers,
6 heads, width 384, context 256, batch 8), vocabulary 65, AdamW (betas 0.9/0.99, weight decay 0.1 on
matrices), clipping at 1.0, random token windows. Prints tokens/s over the timed steps after warm-up:
wall-clock, and on-CPU (the process's CPU time, all threads: robust to other processes on a busy
machine, but it also counts the time OpenMP threads spin waiting at 2 threads).

    python3 tools/oracles/bench_torch_train.py --threads 1 --config baby

`--flops-json F` instead counts the FLOPs of one forward + backward of each configuration with PyTorch's
own counter (`torch.utils.flop_counter.FlopCounterMode`) and writes them to F (the fixture
`testdata/train/step_flops.json`, which `train/tests/step_flops.rs` checks ingot's count against).
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

CONFIGS = {"baby": (4, 128, 4, 64, 12), "large": (6, 384, 6, 256, 8)}


class RMSNorm(nn.Module):
    def __init__(self, c, eps=1e-5):
        super().__init__()
        self.w = nn.Parameter(torch.ones(c))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.w


def rope(x, cos, sin):  # x (B, H, T, D), adjacent pairs
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2)


class Block(nn.Module):
    def __init__(self, c, h, f):
        super().__init__()
        self.h = h
        self.n1, self.n2 = RMSNorm(c), RMSNorm(c)
        self.q = nn.Linear(c, c, bias=False)
        self.k = nn.Linear(c, c, bias=False)
        self.v = nn.Linear(c, c, bias=False)
        self.o = nn.Linear(c, c, bias=False)
        self.gate = nn.Linear(c, f, bias=False)
        self.up = nn.Linear(c, f, bias=False)
        self.down = nn.Linear(f, c, bias=False)

    def forward(self, x, cos, sin):
        b, t, c = x.shape
        h = self.n1(x)
        sh = lambda y: y.view(b, t, self.h, c // self.h).transpose(1, 2)
        q, k, v = sh(self.q(h)), sh(self.k(h)), sh(self.v(h))
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.o(y.transpose(1, 2).reshape(b, t, c))
        h = self.n2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Model(nn.Module):
    def __init__(self, v, l, c, h, t, f):
        super().__init__()
        self.emb = nn.Embedding(v, c)
        self.blocks = nn.ModuleList(Block(c, h, f) for _ in range(l))
        self.norm = RMSNorm(c)
        d = c // h
        inv = 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
        ang = torch.arange(t, dtype=torch.float64)[:, None] * inv[None, :]
        self.register_buffer("cos", ang.cos().float())
        self.register_buffer("sin", ang.sin().float())
        for n, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * l) if n.endswith(("o.weight", "down.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)

    def forward(self, idx, targets):
        x = self.emb(idx)
        t = idx.shape[1]
        for blk in self.blocks:
            x = blk(x, self.cos[:t], self.sin[:t])
        logits = self.norm(x) @ self.emb.weight.T
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--config", choices=CONFIGS, default="baby")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--flops-json", metavar="F", help="write FLOP counts per step to F and exit")
    a = ap.parse_args()
    if a.flops_json:
        return write_flops(a.flops_json)
    torch.set_num_threads(a.threads)
    torch.manual_seed(1337)
    l, c, h, t, b = CONFIGS[a.config]
    f = (8 * c + 2) // 3
    f = (f + 31) // 32 * 32
    v = 65
    model = Model(v, l, c, h, t, f)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
        lr=1e-3, betas=(0.9, 0.99), eps=1e-8, foreach=True,
    )
    data = torch.randint(0, v, (200_000,))

    def step():
        ix = torch.randint(len(data) - t - 1, (b,))
        x = torch.stack([data[i : i + t] for i in ix])
        y = torch.stack([data[i + 1 : i + 1 + t] for i in ix])
        loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    for _ in range(a.warmup):
        step()
    start, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(a.steps):
        loss = step()
    secs, cpu = time.perf_counter() - start, time.process_time() - cpu0
    n = sum(p.numel() for p in model.parameters())
    tokens = a.steps * b * t
    print(
        f"torch bench: config {a.config}, {a.threads} thread(s), {n} params, {a.steps} steps in "
        f"{secs:.2f}s, {tokens / secs:.0f} tokens/s (loss {loss:.3f}); "
        f"CPU {cpu / a.steps * 1e3:.1f} ms/step, {tokens / cpu:.0f} tokens/s on-CPU"
    )
    # The FLOPs `ingot train bench` reports (products + causal attention, forward and backward),
    # from PyTorch's own counter on one more (untimed) step.
    flops = step_flops(model, b, t, v)
    print(
        f"  {flops / 1e9:.3f} GFLOP per step: {flops * a.steps / secs / 1e9:.1f} GFLOP/s wall, "
        f"{flops * a.steps / cpu / 1e9:.1f} GFLOP/s on-CPU"
    )


def step_flops(model, b, t, v):
    """Products (aten.mm) + attention's forward and backward products on the causal triangle."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randint(0, v, (b, t))
    with FlopCounterMode(display=False) as fc:
        model(x, x).backward()
    counts = {str(k): int(n) for k, n in fc.get_flop_counts()["Global"].items()}
    sdpa = counts["aten._scaled_dot_product_flash_attention_for_cpu"]
    return counts["aten.mm"] + 3 * sdpa * (t + 1) / (2 * t)


def write_flops(path):
    """FLOPs of one forward + backward per configuration, by PyTorch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(1337)
    out = {"counter": f"torch {torch.__version__} torch.utils.flop_counter.FlopCounterMode"}
    for name, (l, c, h, t, b) in CONFIGS.items():
        f = (8 * c + 2) // 3
        f = (f + 31) // 32 * 32
        v = 65
        model = Model(v, l, c, h, t, f)
        x = torch.randint(0, v, (b, t))
        y = torch.randint(0, v, (b, t))
        with FlopCounterMode(display=False) as fc:
            model(x, y).backward()
        counts = {str(k): int(n) for k, n in fc.get_flop_counts()["Global"].items()}
        out[name] = {
            "layers": l, "dim": c, "heads": h, "ctx": t, "batch": b, "ffn": f, "vocab": v,
            "mm": counts.pop("aten.mm"),
            "sdpa_forward": counts.pop("aten._scaled_dot_product_flash_attention_for_cpu"),
            "sdpa_backward": counts.pop("aten._scaled_dot_product_flash_attention_for_cpu_backward"),
            "other": counts,
        }
    with open(path, "w") as fh:
        json.dump(out, fh, indent=1)
        fh.write("\n")


if __name__ == "__main__":
    main()
