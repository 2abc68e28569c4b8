"""A student checkpoint rebuilt from a shipped ONNX file, so a model can be trained on when its
training checkpoint is gone (a fresh clone has only models/endface-student.onnx).

    python -m endface_train.from_onnx models/endface-student.onnx --data data/synth-train \
        --out out/from-onnx/student.pt

The export folds every BatchNorm into the convolution before it (W·x → W'·x + b'), so the
ONNX file holds W' and b' but not the BatchNorm's own parameters. They are rebuilt so that the
network computes exactly the exported function in eval mode *and*, as nearly as the data
allows, in train mode (where BatchNorm normalizes by each batch's own statistics):
  for each folded pair, μ and σ² are the per-channel mean and variance of W'·x over training
  patches (the distribution the resumed training sees), and
      conv.weight = W',  running_mean = μ,  running_var = σ²,  γ = sqrt(σ² + ε),  β = b' + μ
  so that BN(W'·x) = γ (W'·x − μ) / sqrt(σ² + ε) + β = W'·x + b'.
The convolutions are matched by execution order (torch forward hooks against the ONNX graph's
Conv nodes, which the tracer emits in the same order), every pair checked by shape, and the
rebuilt network's outputs are compared with ONNX Runtime's on real crops before anything is
written: a mismatch above 1e-3 is an error.

The checkpoint has the trainer's layout (`model`, `ema`, `opt` (a fresh optimizer: Adam's
moments are not in the ONNX file), `step`, `widths`, `radius_channel`, `crack_head`). `step` is
the step count the manifest's training report states (or --step), so a resumed cosine schedule
starts at a low learning rate, as a second stage from a real checkpoint does.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
import torch

from . import augment as A
from . import data as D
from .nets import StudentUNet
from .student import EMA, save_ckpt

log = logging.getLogger("endface_train")
REPO = Path(__file__).resolve().parents[3]


def _onnx_convs(model):
    """[(weight, bias or None)] of every Conv node, in graph order, as numpy arrays."""
    from onnx import numpy_helper

    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    consts = {}
    for n in model.graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    consts[n.output[0]] = numpy_helper.to_array(a.t)
    out = []
    for n in model.graph.node:
        if n.op_type != "Conv":
            continue
        get = lambda name: inits.get(name, consts.get(name))  # noqa: E731
        w = get(n.input[1])
        b = get(n.input[2]) if len(n.input) > 2 and n.input[2] else None
        if w is None:
            raise ValueError(f"Conv node {n.name}: weight {n.input[1]} is not a constant of the graph")
        out.append((w, b))
    return out


def _torch_convs(net, size):
    """[(conv, bn or None)] in execution order; bn = the BatchNorm that directly follows it."""
    order = []
    hooks = [m.register_forward_hook(lambda m, i, o: order.append(m)) for m in net.modules()
             if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        net.eval()(torch.zeros(1, 1, size, size))
    for h in hooks:
        h.remove()
    follows = {}
    for m in net.modules():
        if isinstance(m, torch.nn.Sequential):
            kids = list(m)
            for a, b in zip(kids, kids[1:]):
                if isinstance(a, torch.nn.Conv2d) and isinstance(b, torch.nn.BatchNorm2d):
                    follows[id(a)] = b
    return [(c, follows.get(id(c))) for c in order]


def rebuild(onnx_path: Path, widths, radius_channel=True, size=384):
    """StudentUNet with the ONNX file's weights, BatchNorms as identities that add the folded
    bias (γ = sqrt(1 + ε), β = b', μ = 0, σ² = 1): exact in eval mode. Returns (net, pairs)."""
    import onnx

    model = onnx.load(str(onnx_path))
    net = StudentUNet(widths, radius_channel=radius_channel, crack_head=False)
    pairs = _torch_convs(net, size)
    convs = _onnx_convs(model)
    if len(pairs) != len(convs):
        raise ValueError(f"{onnx_path}: {len(convs)} convolutions, a student of widths {list(widths)} has "
                         f"{len(pairs)}: not this architecture (a crack head? other widths?)")
    with torch.no_grad():
        for k, ((conv, bn), (w, b)) in enumerate(zip(pairs, convs)):
            if tuple(conv.weight.shape) != w.shape:
                raise ValueError(f"{onnx_path}: convolution {k} is {w.shape}, the student's is "
                                 f"{tuple(conv.weight.shape)}")
            conv.weight.copy_(torch.from_numpy(np.array(w)))
            bias = torch.from_numpy(np.array(b)) if b is not None else torch.zeros(w.shape[0])
            if bn is None:
                if conv.bias is None:
                    if b is not None and np.abs(b).max() > 0:
                        raise ValueError(f"{onnx_path}: convolution {k} has a bias the student cannot hold")
                else:
                    conv.bias.copy_(bias)
            else:
                bn.running_mean.zero_()
                bn.running_var.fill_(1.0)
                bn.weight.fill_(float(np.sqrt(1.0 + bn.eps)))
                bn.bias.copy_(bias)
    return net.eval(), pairs


@torch.no_grad()
def restate_batchnorms(net, pairs, batches):
    """Give each BatchNorm the statistics of its input over `batches` (N x 1 x P x P normalized
    images with their radius maps) while keeping the eval-mode function unchanged."""
    bns = [bn for _, bn in pairs if bn is not None]
    acc = {id(bn): [0.0, 0.0, 0] for bn in bns}

    def hook(m, inp, out):
        x = inp[0].double()
        a = acc[id(m)]
        a[0] = a[0] + x.sum(dim=(0, 2, 3))
        a[1] = a[1] + (x * x).sum(dim=(0, 2, 3))
        a[2] += x.numel() // x.shape[1]

    hs = [bn.register_forward_hook(hook) for bn in bns]
    net.eval()
    for x, r in batches:
        net.forward_all(x, r)
    for h in hs:
        h.remove()
    for bn in bns:
        s, ss, n = acc[id(bn)]
        mu = s / n
        var = (ss / n - mu * mu).clamp_min(1e-8)
        # input of this BN = W'·x (it adds b' itself): move the folded bias into β with μ
        b_fold = bn.bias.double().clone()
        bn.running_mean.copy_(mu.float())
        bn.running_var.copy_(var.float())
        bn.weight.copy_(torch.sqrt(var + bn.eps).float())
        bn.bias.copy_((b_fold + mu).float())


def _max_diff(net, onnx_path, crops):
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    worst = 0.0
    for c in crops:
        x = ((c - 0.5) / 0.5).astype(np.float32)[None, None]
        o = sess.run(names, {sess.get_inputs()[0].name: x})
        with torch.no_grad():
            t = net.eval()(torch.from_numpy(x))
        worst = max(worst, max(float(np.abs(a - b.numpy()).max()) for a, b in zip(o, t)))
    return worst


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m endface_train.from_onnx", description=__doc__.split("\n\n")[0])
    p.add_argument("onnx", type=Path, help="the student's .onnx (its manifest beside it gives the widths and steps)")
    p.add_argument("--data", required=True, type=Path, help="dataset with train/good/ (patches for the statistics)")
    p.add_argument("--out", required=True, type=Path, help="the checkpoint to write (student.pt)")
    p.add_argument("--patches", type=int, default=384, help="training patches the BatchNorm statistics come from")
    p.add_argument("--step", type=int, help="step count to record (default: the manifest's training report)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    torch.set_num_threads(1)
    from .pipeline import COMMON, PROFILES, crops_of

    cfg = dict(COMMON, **PROFILES["full"])
    manifest_path = args.onnx.with_name(args.onnx.name.replace(".onnx", ".manifest.json"))
    widths, step = cfg["student_widths"], args.step
    report_path = args.onnx.with_name(args.onnx.name.replace(".onnx", ".report.json"))
    if report_path.exists():
        rep = json.loads(report_path.read_text())
        widths = tuple(rep.get("student", {}).get("widths", widths))
        if step is None:
            step = int(rep.get("student", {}).get("steps", 0))
    if manifest_path.exists():
        man = json.loads(manifest_path.read_text())
        size = int(man["input"]["shape"][-1])
    else:
        size = cfg["crop_size"]
    net, pairs = rebuild(args.onnx, widths, size=size)

    ds = D.read_dataset(args.data)
    frames = ds["train"]
    D.resolve_geometry(frames, REPO, args.out.parent / "geometry-cache.json", None, strict=False)
    frames = [f for f in frames if f.um_per_px_x is not None and f.center_in_frame is not None]
    if not frames:
        raise SystemExit(f"{args.data}: no training frame the localizer accepts")
    check_crops = crops_of(frames[:6], cfg)
    d0 = _max_diff(net, args.onnx, check_crops)
    log.info("rebuilt %d convolutions (%d BatchNorms); outputs vs ONNX Runtime: max |diff| %.2e",
             len(pairs), sum(bn is not None for _, bn in pairs), d0)

    sampler = A.PairSampler(frames, cfg["crop_um_per_px"], cfg["crop_size"], cfg["patch"], seed=123)
    rng = np.random.default_rng(123)
    batches = []
    for _ in range(max(1, args.patches // 32)):
        y, x, m, r = sampler.batch(32, rng)
        batches.append((torch.from_numpy((y - 0.5) / 0.5), torch.from_numpy(r) / net.clad_radius_px))
    restate_batchnorms(net, pairs, batches)
    d1 = _max_diff(net, args.onnx, check_crops)
    # train mode on training patches: how far batch statistics move the function (reported)
    net.train()
    with torch.no_grad():
        x, r = batches[0]
        tr = net.forward_all(x, r)[0]
        net.eval()
        ev = net.forward_all(x, r)[0]
    dtrain = float((tr - ev).abs().mean())
    log.info("BatchNorms restated on %d patches; outputs vs ONNX Runtime: max |diff| %.2e; train-mode vs "
             "eval-mode reconstruction on a training batch: mean |diff| %.4f", len(batches) * 32, d1, dtrain)
    if max(d0, d1) > 1e-3:
        raise SystemExit(f"{args.onnx}: the rebuilt network differs from the ONNX file by {max(d0, d1):.2e} "
                         "(> 1e-3); not written")
    net.eval()
    opt = torch.optim.AdamW(net.parameters(), lr=cfg["student_lr"], weight_decay=1e-4)
    ema = EMA(net, cfg["ema_decay"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    info = {"from_onnx": str(args.onnx), "onnx_max_diff": max(d0, d1), "steps": step}
    save_ckpt(args.out, net, ema, opt, step, info, dict(cfg, student_widths=widths))
    log.info("wrote %s (step %d)", args.out, step)
    return 0


if __name__ == "__main__":
    sys.exit(main())
