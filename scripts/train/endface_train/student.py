"""The student: supervised training of the small UNet on pseudo-defect pairs plus
teacher-labelled pairs.

In: a `PairSampler` (pseudo-defects on good crops), optional `LabelledPatches` (teacher
reconstructions of unlabelled images: target + mask + per-pixel loss weight).
Out: the trained `StudentUNet` (EMA weights), checkpoints written periodically so an
interrupted run still yields a model.

Losses: reconstruction L1, weighted ×4 inside defects (defects must be removed, not
half-reconstructed: long faint scratches are the hard case); anomaly head: binary
cross-entropy + soft dice against the defect mask (a focal loss, γ=2, was tried first: it
leaves the background at p ≈ 0.2 for too long on a CPU budget, and the image score is the
max over ~10^5 background pixels, so every one of them must be pushed down).
"""

from __future__ import annotations

import copy
import logging
import time

import numpy as np
import torch
import torch.nn.functional as F

from .augment import batch_stream
from .diffusion import cosine_lr, norm
from .nets import StudentUNet

log = logging.getLogger("endface_train")


def focal_loss(logits, target, weight, gamma=2.0, alpha=0.75):
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    pt = p * target + (1 - p) * (1 - target)
    a = alpha * target + (1 - alpha) * (1 - target)
    return (weight * a * (1 - pt) ** gamma * ce).sum() / weight.sum().clamp_min(1.0)


def bce_loss(logits, target, weight):
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return (weight * ce).sum() / weight.sum().clamp_min(1.0)


def dice_loss(logits, target, weight):
    p = torch.sigmoid(logits) * weight
    t = target * weight
    inter = (p * t).sum()
    return 1 - (2 * inter + 1.0) / (p.sum() + t.sum() + 1.0)


class EMA:
    def __init__(self, model, decay):
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model, decay=None):
        d = self.decay if decay is None else decay
        # one fused call per list instead of two small ops per tensor: on a GPU the per-tensor
        # loop was a launch-bound share of every step
        es = list(self.model.parameters())
        ps = [p.detach() for p in model.parameters()]
        for e, b in zip(self.model.buffers(), model.buffers()):
            if e.dtype.is_floating_point:  # BN running stats: averaged like the weights
                es.append(e)
                ps.append(b.detach())
            else:
                e.copy_(b)
        torch._foreach_mul_(es, d)
        torch._foreach_add_(es, ps, alpha=1 - d)


def save_ckpt(path, net, ema, opt, step, info, cfg):
    tmp = path.with_suffix(".tmp")
    torch.save({"model": net.state_dict(), "ema": ema.model.state_dict(), "opt": opt.state_dict(), "step": step,
                "info": info, "widths": cfg["student_widths"], "radius_channel": net.radius_channel,
                "crack_head": net.crack_head}, tmp)
    tmp.replace(path)


def train_student(sampler, labelled, cfg, device, ckpt_path, log_every=50, resume=None):
    torch.manual_seed(cfg["seed"] + 2)
    ck = load_checkpoint(resume, device) if resume is not None else None
    want_crack = bool(cfg.get("crack_head", False))
    if ck is not None:
        # The checkpoint's own architecture (older ones have no radius channel); a crack head
        # asked for on a checkpoint without one is added (new weights, the rest resumed).
        had_crack = ck.get("crack_head", False)
        net = StudentUNet(ck.get("widths", cfg["student_widths"]), radius_channel=ck.get("radius_channel", False),
                          crack_head=had_crack or want_crack)
        cfg = dict(cfg, student_widths=tuple(net.widths))
    else:
        had_crack = False
        net = StudentUNet(cfg["student_widths"], crack_head=want_crack)
    net = net.to(device)
    head_only = bool(cfg.get("crack_head_only", False))
    if head_only:
        if not net.crack_head:
            raise ValueError("--crack-head-only trains the crack head alone: it needs --crack-head")
        # everything but the crack head keeps the resumed weights (and BatchNorm statistics):
        # the reconstruction and the anomaly map stay exactly the resumed model's
        for name, p in net.named_parameters():
            p.requires_grad_(name.startswith("crack."))
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=cfg["student_lr"], weight_decay=1e-4)
    ema = EMA(net, cfg["ema_decay"])
    step = 0
    if ck is not None:
        added = net.crack_head and not had_crack
        for m, key in ((net, "model"), (ema.model, "ema")):
            missing, unexpected = m.load_state_dict(ck[key], strict=not added)
            if unexpected or any(not k.startswith("crack.") for k in missing):
                raise RuntimeError(f"{resume}: checkpoint does not fit the student ({missing[:3]}, {unexpected[:3]})")
        if head_only:
            # train on the averaged weights the resumed model was exported with, so the EMA of
            # the frozen part stays those weights exactly
            net.load_state_dict(ck["ema"], strict=not added)
        if added:
            # the new head's parameters are not in the saved optimizer state: fresh moments
            log.info("student: crack head added to the checkpoint's network (new weights)")
        elif not head_only:
            opt.load_state_dict(ck["opt"])
        step = ck["step"]
        log.info("student: resumed from %s at step %d", resume, step)
    cl = torch.channels_last
    net = net.to(memory_format=cl)
    use_amp = cfg["amp"]
    amp_dev = "cuda" if device.type == "cuda" else "cpu"
    bs = cfg["student_batch"]
    frac_lab = cfg["labelled_fraction"] if labelled is not None and len(labelled) else 0.0
    n_lab = int(round(bs * frac_lab))
    rng = np.random.default_rng(cfg["seed"] + 3)
    budget_s = cfg["student_seconds"]
    total = cfg["student_steps"]
    t0 = time.time()
    last_ck = t0
    start_step = step
    fixed = cfg.get("fixed_steps", False)
    sums = {"rec": 0.0, "bce": 0.0, "dice": 0.0, "crack": 0.0, "n": 0}
    stream = batch_stream(sampler, bs - n_lab, cfg["seed"] + 3 + step, cfg["data_workers"])
    net.train()
    if head_only:
        for name, mod in net.named_modules():
            if name and not name.startswith("crack"):
                mod.eval()
    while step < total:
        y, x, m, r = next(stream)
        w = torch.ones_like(m)
        if n_lab:
            yl, xl, ml, wl, rl = (torch.from_numpy(a) for a in labelled.batch(n_lab, rng))
            y, x, m, w, r = (torch.cat(p) for p in ((y, yl), (x, xl), (m, ml), (w, wl), (r, rl)))
        y, x, m, w, r = (a.to(device).contiguous(memory_format=cl) for a in (y, x, m, w, r))
        r = r / net.clad_radius_px
        if net.crack_head:
            # class masks (0 clean, 1 defect, 2 crack) on the pseudo-defect part of the batch;
            # teacher-labelled pairs carry no class: no crack loss there
            cls_w = torch.ones_like(m)
            if n_lab:
                cls_w[bs - n_lab:] = 0.0
            crack_t = (m > 1.5).float()
            other_t = ((m > 0.5) & (m < 1.5)).float()
            m = (m > 0.5).float()
        yn, xn = norm(y), norm(x)
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, total, cfg["student_lr"], warmup=100)
        with torch.autocast(amp_dev, dtype=torch.bfloat16, enabled=use_amp):
            outs = net.forward_all(yn, r)
        rec, logits = outs[0].float(), outs[1].float()
        # w: per-pixel trust (1 for pseudo-defect pairs; teacher-labelled pairs only near what the
        # teacher flagged)
        l_rec = (w * (1 + 3 * m) * (rec - xn).abs()).sum() / w.sum().clamp_min(1.0)
        # teacher-labelled pixels carry a confidence weight (0 = ignore) for the anomaly head
        l_focal = bce_loss(logits, m, w)
        l_dice = dice_loss(logits, m, w)
        loss = l_rec + cfg["seg_weight"] * (l_focal * 5 + l_dice)
        if net.crack_head:
            # crack vs not. The head is read where the map fires, which is mostly on defects but
            # also on the odd false alarm over good structure, so it learns "not a crack" on both:
            # crack pixels, other defects' pixels and clean pixels weigh 1/2, 1/4 and 1/4 of the
            # loss however rare each is in the batch
            clean_t = (1 - crack_t) * (1 - other_t)
            cw = cls_w * (crack_t * 0.5 / (cls_w * crack_t).sum().clamp_min(1.0)
                          + other_t * 0.25 / (cls_w * other_t).sum().clamp_min(1.0)
                          + clean_t * 0.25 / (cls_w * clean_t).sum().clamp_min(1.0))
            l_crack = (cw * F.binary_cross_entropy_with_logits(outs[2].float(), crack_t, reduction="none")).sum()
            loss = loss + cfg.get("crack_weight", 1.0) * l_crack
            sums["crack"] += l_crack.detach()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        step += 1
        ema.update(net, decay=min(cfg["ema_decay"], (1 + step) / (10 + step)))
        # running sums stay on the device: reading them (a GPU sync) only when they are logged
        sums["rec"] += l_rec.detach()
        sums["bce"] += l_focal.detach()
        sums["dice"] += l_dice.detach()
        sums["n"] += 1
        el = time.time() - t0
        if fixed and step - start_step == 30:
            log.info("student: %.3f s/step, %d steps (fixed schedule)", el / 30, total)
        if not fixed and (step - start_step == 30 or (step - start_step) % 200 == 0):
            # (re)fit the schedule to the time budget: a shared CPU's speed drifts a lot
            rate = el / (step - start_step)
            est = step + int(max(0.0, budget_s - el) / rate)
            new_total = max(step + 1, min(cfg["student_steps"], est))
            if step - start_step == 30:
                log.info("student: %.3f s/step → %d steps in the %.0f s budget", rate, new_total, budget_s)
            total = new_total
        if step % log_every == 0:
            n = max(1, sums["n"])
            log.info("student step %d/%d rec %.4f bce %.4f dice %.3f crack %.3f (%.0f s)", step, total,
                     *(float(sums[k]) / n for k in ("rec", "bce", "dice", "crack")), el)
            sums = {"rec": 0.0, "bce": 0.0, "dice": 0.0, "crack": 0.0, "n": 0}
        if time.time() - last_ck > cfg["checkpoint_seconds"]:
            save_ckpt(ckpt_path, net, ema, opt, step, {"steps": step}, cfg)
            last_ck = time.time()
        if el > budget_s * (3.0 if fixed else 1.1):
            if fixed:
                log.warning("student: stopped at step %d of %d: 3x the %.0f s budget (a very slow or loaded "
                            "machine; this model differs from a normal run's)", step, total, budget_s)
            else:
                log.info("student: time budget reached at step %d", step)
            break
    info = {"steps": step, "seconds": round(time.time() - t0, 1), "batch": bs, "patch": sampler.patch,
            "labelled_per_batch": n_lab, "params": sum(p.numel() for p in net.parameters())}
    save_ckpt(ckpt_path, net, ema, opt, step, info, cfg)
    model = ema.model.to(memory_format=torch.contiguous_format).float().eval()
    return model, info


def load_checkpoint(path, device="cpu"):
    """A checkpoint this trainer wrote (dicts of tensors, numbers, strings, tuples), loaded with
    `weights_only=True`: a checkpoint file is a pickle, and one that holds anything else (a file
    someone swapped in) is refused instead of run. torch >= 2.6 loads this way by default."""
    import pickle

    try:
        return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as e:
        raise ValueError(f"{path}: not a checkpoint written by this trainer (it holds objects other than "
                         f"tensors and numbers, refused unread: {str(e).splitlines()[0]}); use a teacher.pt / "
                         "student.pt from scripts/train.sh's --work folder") from e


def load_student(path, device="cpu"):
    ck = load_checkpoint(path, device)
    net = StudentUNet(ck["widths"], radius_channel=ck.get("radius_channel", False),
                      crack_head=ck.get("crack_head", False))
    net.load_state_dict(ck["ema"])
    return net.eval(), ck.get("info", {})


def recalibrate_bn(net, crops, max_crops=64, seed=0):
    """Recompute every BatchNorm's running statistics on full contract crops of good images.

    The student trains on small patches (96 px: a 3x3 bottleneck that is mostly padding) but runs
    on the whole 384 px crop. Statistics gathered on patches do not describe full crops; on a
    short CPU run this mismatch made the reconstruction blow up (|error| up to 7 in image units)
    far from the fiber. Recomputing them on full crops (cumulative average, flips for variety)
    removes that train/inference gap. crops: N x H x W float in [0, 1]. Returns the count used.
    """
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(crops))[:max_crops]
    bns = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns or not len(idx):
        return 0
    saved = [(m.momentum, m.training) for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average over all batches
    was_training = net.training
    net.train()
    n = 0
    with torch.no_grad():
        for k in idx:
            x = torch.from_numpy(np.ascontiguousarray(crops[k], dtype=np.float32))[None, None]
            if rng.random() < 0.5:
                x = torch.flip(x, dims=[3])
            if rng.random() < 0.5:
                x = torch.flip(x, dims=[2])
            # batches of one image: per-image statistics, averaged across images (as at inference)
            net(norm(x))
            n += 1
    for m, (mom, tr) in zip(bns, saved):
        m.momentum = mom
        m.train(tr)
    net.train(was_training)
    return n
