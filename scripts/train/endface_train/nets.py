"""Networks: the student UNet (reconstruction + anomaly head) and the diffusion teacher.

In: gray crops, normalized `(p/255 - 0.5) / 0.5`, shape N x 1 x H x W (H, W multiples of 16).
Out: the student returns `(reconstruction, anomaly)` (same normalization / probability in [0,1]);
the teacher predicts the diffusion `v` target from `(x_t, condition, t)`.

Both are plain fully-convolutional UNets: trained on patches, run on the full 384x384 crop.
Only ONNX-friendly ops (Conv, BatchNorm folded at export, SiLU, bilinear Resize, Concat).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class ConvBlock(nn.Module):
    """Two 3x3 conv + BatchNorm + SiLU."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.SiLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.SiLU(inplace=True),
        )

    def forward(self, x):
        return self.body(x)


class StudentUNet(nn.Module):
    """Small UNet (≤ 2 M parameters) with two heads.

    - reconstruction = input + residual (defect-free image, same normalization as the input)
    - anomaly = sigmoid(segmentation head on [decoder features, input, reconstruction])
    """

    def __init__(self, widths=(24, 48, 96, 128, 160), unshuffle=2, radius_channel=True, clad_radius_px=62.5 / 0.66,
                 crack_head=False):
        super().__init__()
        self.crack_head = crack_head
        self.widths = tuple(widths)
        self.f = f = unshuffle
        self.radius_channel = radius_channel
        self.clad_radius_px = clad_radius_px
        w = self.widths
        self.enc = nn.ModuleList()
        cin = f * f * (2 if radius_channel else 1)
        for i, c in enumerate(w):
            self.enc.append(ConvBlock(cin, c))
            cin = c
        self.down = nn.ModuleList(
            [nn.Conv2d(w[i], w[i], 3, stride=2, padding=1) for i in range(len(w) - 1)]
        )
        self.dec = nn.ModuleList()
        for i in reversed(range(len(w) - 1)):
            self.dec.append(ConvBlock(w[i + 1] + w[i], w[i]))
        self.rec_head = nn.Conv2d(w[0], f * f, 3, padding=1)
        self.seg_head = nn.Sequential(
            nn.Conv2d(w[0] + 2 * f * f, w[0], 3, padding=1, bias=False),
            nn.BatchNorm2d(w[0]),
            nn.SiLU(inplace=True),
            nn.Conv2d(w[0], f * f, 3, padding=1),
        )
        # prior: defects are rare (p ≈ 0.01 at start), as in RetinaNet; without it the head
        # starts at p = 0.5 everywhere and spends most of a short CPU budget unlearning that
        nn.init.constant_(self.seg_head[-1].bias, -4.6)
        if crack_head:
            # crack vs anything else, for anomalous pixels: a fracture path is jagged and
            # branches, a polishing scratch is smooth; two 3x3 layers see the path's course
            self.crack = nn.Sequential(
                nn.Conv2d(w[0] + 2 * f * f, w[0], 3, padding=1, bias=False),
                nn.BatchNorm2d(w[0]),
                nn.SiLU(inplace=True),
                nn.Conv2d(w[0], w[0], 3, padding=1, bias=False),
                nn.BatchNorm2d(w[0]),
                nn.SiLU(inplace=True),
                nn.Conv2d(w[0], f * f, 3, padding=1),
            )
            nn.init.constant_(self.crack[-1].bias, -2.0)

    def centred_radius(self, x):
        """Radius map (in cladding radii) for a crop whose centre is the fiber axis (inference)."""
        n, _, hh, ww = x.shape
        v = torch.arange(hh, dtype=x.dtype, device=x.device) - (hh - 1) / 2.0
        u = torch.arange(ww, dtype=x.dtype, device=x.device) - (ww - 1) / 2.0
        r = torch.sqrt(v[:, None] ** 2 + u[None, :] ** 2) / self.clad_radius_px
        return r.expand(n, 1, hh, ww)

    def forward_logits(self, x, rmap=None):
        out = self.forward_all(x, rmap)
        return out[0], out[1]

    def forward_all(self, x, rmap=None):
        """x: N x 1 x H x W normalized (H, W multiples of 16·unshuffle); rmap: distance of each
        pixel from the fiber axis in cladding radii (training patches pass theirs; None = the
        crop is centred on the axis, as at inference) → (reconstruction, logits[, crack logits])."""
        f = self.f
        xs = F.pixel_unshuffle(x, f) if f > 1 else x
        inp = xs
        if self.radius_channel:
            if rmap is None:
                rmap = self.centred_radius(x)
            rs = F.pixel_unshuffle(rmap, f) if f > 1 else rmap
            inp = torch.cat([xs, rs], dim=1)
        skips = []
        h = inp
        for i, blk in enumerate(self.enc):
            h = blk(h)
            if i < len(self.down):
                skips.append(h)
                h = self.down[i](h)
        for blk in self.dec:
            s = skips.pop()
            h = F.interpolate(h, size=s.shape[-2:], mode="bilinear", align_corners=False)
            h = blk(torch.cat([h, s], dim=1))
        rec_s = xs + self.rec_head(h)
        feat = torch.cat([h, xs, rec_s], dim=1)
        outs = [rec_s, self.seg_head(feat)]
        if self.crack_head:
            # the head reads the features but does not train them: telling cracks apart must
            # not cost the reconstruction or the anomaly map anything
            outs.append(self.crack(feat.detach()))
        if f > 1:
            outs = [F.pixel_shuffle(o, f) for o in outs]
        return tuple(outs)

    def forward(self, x):
        """(reconstruction, anomaly[, crack probability])."""
        out = self.forward_all(x)
        return (out[0],) + tuple(torch.sigmoid(o) for o in out[1:])


# ---------------------------------------------------------------- teacher (diffusion)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of continuous t in [0, 1]."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
    args = (t.float() * 1000.0)[:, None] * freqs[None]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


class TBlock(nn.Module):
    """Residual block with FiLM time conditioning. No normalization layer: the teacher is
    trained on patches and run on whole crops, and per-image statistics would differ."""

    def __init__(self, cin: int, cout: int, tdim: int):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.t = nn.Linear(tdim, 2 * cout)
        self.c2 = nn.Conv2d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.c2.weight)
        nn.init.zeros_(self.c2.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, temb):
        h = self.c1(F.silu(x))
        scale, shift = self.t(temb)[:, :, None, None].chunk(2, dim=1)
        h = h * (1 + scale) + shift
        h = self.c2(F.silu(h))
        return h + self.skip(x)


class TeacherUNet(nn.Module):
    """Conditional diffusion UNet: input [x_t, condition] → v prediction."""

    def __init__(self, widths=(32, 64, 96, 128), unshuffle=2):
        super().__init__()
        w = self.widths = tuple(widths)
        self.f = f = unshuffle
        tdim = 4 * w[0]
        self.tmlp = nn.Sequential(nn.Linear(w[0], tdim), nn.SiLU(), nn.Linear(tdim, tdim))
        self.inp = nn.Conv2d(2 * f * f, w[0], 3, padding=1)
        self.enc = nn.ModuleList()
        cin = w[0]
        for c in w:
            self.enc.append(TBlock(cin, c, tdim))
            cin = c
        self.down = nn.ModuleList(
            [nn.Conv2d(w[i], w[i], 3, stride=2, padding=1) for i in range(len(w) - 1)]
        )
        self.mid = TBlock(w[-1], w[-1], tdim)
        self.dec = nn.ModuleList()
        for i in reversed(range(len(w) - 1)):
            self.dec.append(TBlock(w[i + 1] + w[i], w[i], tdim))
        self.out = nn.Sequential(nn.SiLU(), nn.Conv2d(w[0], f * f, 3, padding=1))

    def forward(self, x_t, cond, t):
        temb = self.tmlp(timestep_embedding(t, self.widths[0]))
        inp = torch.cat([x_t, cond], dim=1)
        if self.f > 1:
            inp = F.pixel_unshuffle(inp, self.f)
        h = self.inp(inp)
        skips = []
        for i, blk in enumerate(self.enc):
            h = blk(h, temb)
            if i < len(self.down):
                skips.append(h)
                h = self.down[i](h)
        h = self.mid(h, temb)
        for blk in self.dec:
            s = skips.pop()
            h = F.interpolate(h, size=s.shape[-2:], mode="bilinear", align_corners=False)
            h = blk(torch.cat([h, s], dim=1), temb)
        out = self.out(h)
        return F.pixel_shuffle(out, self.f) if self.f > 1 else out


def count_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def conv_gflops(model: nn.Module, *inputs) -> float:
    """GFLOPs (2 x multiply-accumulates of Conv/Linear layers) for one forward pass."""
    total = [0]

    def hook(mod, inp, out):
        if isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * (mod.in_channels // mod.groups)
            total[0] += 2 * k * out.numel()
        elif isinstance(mod, nn.Linear):
            total[0] += 2 * mod.in_features * out.numel()

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model(*inputs)
    for h in hs:
        h.remove()
    return total[0] / 1e9
