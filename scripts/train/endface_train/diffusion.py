"""The teacher: a conditional diffusion model ("ChipDiffusion"-style) and its labelling.

In: pseudo-defect pairs (defective y, clean x0) from `augment.PairSampler`.
Out: a trained `TeacherUNet`; `reconstruct(y)` = defect-free estimate of y by a few
deterministic DDIM steps started SDEdit-style from a noised copy of y (and conditioned on y).

Diffusion: continuous t in [0,1], cosine schedule alpha_bar(t) = cos²((t+s)/(1+s)·π/2),
x_t = a x0 + σ ε, the network predicts v = a ε − σ x0 (DDPM in v-parameterisation; stable
with very few sampling steps). Normalized image units ((p/255 − 0.5)/0.5).
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np
import torch

from .augment import batch_stream
from .nets import TeacherUNet

log = logging.getLogger("endface_train")


def alpha_sigma(t: torch.Tensor, s: float = 0.008):
    f = torch.cos((t + s) / (1 + s) * math.pi / 2)
    ab = (f * f).clamp(1e-5, 1.0)
    return ab.sqrt(), (1 - ab).sqrt()


def norm(x):
    return (x - 0.5) / 0.5


def denorm(x):
    return x * 0.5 + 0.5


def cosine_lr(step, total, base, warmup=50):
    if step < warmup:
        return base * (step + 1) / warmup
    p = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * p)))


def train_teacher(sampler, cfg, device, ckpt_path=None, log_every=25):
    """Train the teacher within cfg['teacher_seconds'] / cfg['teacher_steps']."""
    torch.manual_seed(cfg["seed"])
    net = TeacherUNet(cfg["teacher_widths"]).to(device).to(memory_format=torch.channels_last)
    amp_dev = "cuda" if device.type == "cuda" else "cpu"
    opt = torch.optim.AdamW(net.parameters(), lr=cfg["teacher_lr"], weight_decay=1e-4)
    budget_s = cfg["teacher_seconds"]
    max_steps = cfg["teacher_steps"]
    bs = cfg["teacher_batch"]
    rng = np.random.default_rng(cfg["seed"] + 1)
    t0 = time.time()
    step = 0
    total = max_steps
    ema_loss = None
    fixed = cfg.get("fixed_steps", False)
    net.train()
    stream = batch_stream(sampler, bs, cfg["seed"] + 1, cfg["data_workers"])
    while step < total:
        y, x, m, _ = next(stream)
        y, x, m = (a.to(device).contiguous(memory_format=torch.channels_last) for a in (y, x, m))
        y, x = norm(y), norm(x)
        t = torch.rand(bs, device=device) * 0.98 + 0.01
        a, s = alpha_sigma(t)
        a, s = a[:, None, None, None], s[:, None, None, None]
        eps = torch.randn_like(x)
        xt = a * x + s * eps
        v = a * eps - s * x
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, total, cfg["teacher_lr"])
        with torch.autocast(amp_dev, dtype=torch.bfloat16, enabled=cfg["amp"]):
            pred = net(xt, y, t)
        pred = pred.float()
        w = 1.0 + 4.0 * m
        loss = (w * (pred - v) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        step += 1
        ema_loss = loss.item() if ema_loss is None else 0.95 * ema_loss + 0.05 * loss.item()
        el = time.time() - t0
        if fixed and step == 20:
            log.info("teacher: %.2f s/step, %d steps (fixed schedule)", el / step, total)
        if not fixed and (step == 20 or step % 200 == 0):  # (re)fit the schedule to the time budget
            est = step + int(max(0.0, budget_s - el) / (el / step))
            new_total = max(step + 1, min(max_steps, est))
            if step == 20:
                log.info("teacher: %.2f s/step → %d steps in the %.0f s budget", el / step, new_total, budget_s)
            total = new_total
        if step % log_every == 0:
            log.info("teacher step %d/%d loss %.4f (%.0f s)", step, total, ema_loss, el)
        if el > budget_s * (3.0 if fixed else 1.1):
            if fixed:
                log.warning("teacher: stopped at step %d of %d: 3x the %.0f s budget (a very slow or loaded "
                            "machine; this model differs from a normal run's)", step, total, budget_s)
            else:
                log.info("teacher: time budget reached at step %d", step)
            break
    net = net.to(memory_format=torch.contiguous_format).eval()
    info = {"steps": step, "seconds": round(time.time() - t0, 1), "final_loss": ema_loss, "batch": bs,
            "patch": sampler.patch, "params": sum(p.numel() for p in net.parameters())}
    if ckpt_path is not None:
        torch.save({"model": net.state_dict(), "widths": cfg["teacher_widths"], "info": info}, ckpt_path)
    return net, info


@torch.no_grad()
def reconstruct(net, y01: torch.Tensor, steps: int, t_start: float, seed: int = 0) -> torch.Tensor:
    """DDIM reconstruction of y (N x 1 x H x W in [0,1]) → defect-free estimate in [0,1]."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    y = norm(y01)
    ts = torch.linspace(t_start, 0.0, steps + 1, device=y.device)
    a0, s0 = alpha_sigma(ts[0:1])
    x = a0 * y + s0 * torch.randn(y.shape, generator=g).to(y.device)
    x0 = y
    for i in range(steps):
        t = ts[i]
        a, s = alpha_sigma(t.view(1))
        v = net(x, y, t.view(1).expand(y.shape[0]).to(y.device))
        x0 = (a * x - s * v).clamp(-1.2, 1.2)
        eps = s * x + a * v
        an, sn = alpha_sigma(ts[i + 1].view(1))
        x = an * x0 + sn * eps
    return denorm(x0).clamp(0, 1)
