#!/usr/bin/env python3
"""Golden values of the reward model's Bradley-Terry loss and its gradient, computed by PyTorch autograd
in float64 exactly as TRL's RewardTrainer.compute_loss writes it:

    loss = -logsigmoid(r_c - r_r - margin).mean() + center_rewards_coefficient * mean((r_c + r_r) ** 2)

Writes testdata/train/bt_loss.json, read by train/tests/align.rs (bt_loss_matches_pytorch).
Run from the repository root: /tmp/torchvenv/bin/python tools/oracles/align_golden.py
"""
import json

import torch
import torch.nn.functional as F

g = torch.Generator().manual_seed(1337)
rc0 = (torch.randn(7, generator=g, dtype=torch.float64) * 2.0)
rr0 = (torch.randn(7, generator=g, dtype=torch.float64) * 2.0)
# one pair far out on each side, where a naive log(sigmoid) would lose precision
rc0[5], rr0[5] = 30.0, -20.0
rc0[6], rr0[6] = -25.0, 25.0
cases = []
for margin, center in [(0.0, 0.0), (0.5, 0.0), (0.0, 0.01), (1.0, 0.1)]:
    rc = rc0.clone().requires_grad_(True)
    rr = rr0.clone().requires_grad_(True)
    loss = -F.logsigmoid(rc - rr - margin).mean()
    if center:
        loss = loss + center * torch.mean((rc + rr) ** 2)
    loss.backward()
    cases.append({
        "margin": margin, "center": center, "loss": loss.item(),
        "d_rc": rc.grad.tolist(), "d_rr": rr.grad.tolist(),
    })
out = {"torch": torch.__version__, "rc": rc0.tolist(), "rr": rr0.tolist(), "cases": cases}
with open("testdata/train/bt_loss.json", "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
print("wrote testdata/train/bt_loss.json")
