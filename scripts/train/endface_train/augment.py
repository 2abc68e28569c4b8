"""Augmentation and the training-pair sampler.

In: frames (uint8 gray or RGB pixels + fiber centre + µm/px), the crop scale and size.
Out: batches of (defective input, clean target, defect mask) patches as float32 in [0,1].

Shape augmentation (rotation, flips, shift, scale) is folded into the CONTRACTS.md crop
sampling itself (one bilinear sample per pixel; identity parameters give exactly the inference
crop). Lighting/colour augmentation: brightness, contrast, gamma, uneven illumination, and for
RGB sources colour temperature, hue shift and greyscale, applied on RGB *before* the
Rec.709 luma conversion the Rust side uses. For gray sources (the synthetic camera, most
station cameras) an RGB-ified gray image has zero saturation: hue shift and greyscale are the
identity and colour temperature reduces to a gray-level gain, which is what is applied.
Sensor effects (defocus blur, noise) are applied after the pseudo-defects, to input and target.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from . import data as D
from . import pseudo


def random_affine(rng, rot=True, flip=True, scale=(0.92, 1.08)):
    th = rng.uniform(0, 2 * np.pi) if rot else 0.0
    k = float(np.exp(rng.uniform(np.log(scale[0]), np.log(scale[1]))))
    c, s = np.cos(th), np.sin(th)
    a = np.array([[c, -s], [s, c]]) / k
    if flip and rng.random() < 0.5:
        a = a @ np.array([[-1.0, 0.0], [0.0, 1.0]])
    return a


def _hue_rotate(rgb, deg):
    """Hue rotation in YIQ space."""
    th = np.deg2rad(deg)
    yiq = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    rot = np.array([[1, 0, 0], [0, np.cos(th), -np.sin(th)], [0, np.sin(th), np.cos(th)]])
    m = np.linalg.inv(yiq) @ rot @ yiq
    return rgb @ m.T


def photometric(patch, rng, strength=1.0):
    """patch: H x W (gray) or H x W x 3 (RGB) in [0,1] → gray H x W in [0,1]."""
    x = patch.astype(np.float32)
    if x.ndim == 3:
        if rng.random() < 0.5 * strength:  # colour temperature: warm/cool channel gains
            k = rng.uniform(-0.15, 0.15) * strength
            x = x * np.array([1 + k, 1.0, 1 - k], np.float32)
        if rng.random() < 0.3 * strength:
            x = _hue_rotate(x, rng.uniform(-30, 30) * strength)
        if rng.random() < 0.2 * strength:  # greyscale
            g = D.rgb_to_gray_f(x)
            x = np.repeat(g[..., None], 3, -1)
        x = D.rgb_to_gray_f(np.clip(x, 0, 1))
    else:
        if rng.random() < 0.5 * strength:  # colour temperature on a gray image == a gain
            k = rng.uniform(-0.15, 0.15) * strength
            x = x * (1 + k * (0.2126 - 0.0722))
    if rng.random() < 0.8 * strength:
        x = x + rng.uniform(-0.08, 0.08) * strength
    if rng.random() < 0.8 * strength:
        m = float(x.mean())
        x = (x - m) * float(np.exp(rng.uniform(np.log(0.75), np.log(1.3)) * strength)) + m
    x = np.clip(x, 0, 1)
    if rng.random() < 0.6 * strength:
        x = x ** float(np.exp(rng.uniform(np.log(0.75), np.log(1.35)) * strength))
    if rng.random() < 0.4 * strength:  # uneven illumination
        field = pseudo.perlin(x.shape, (1, 1), rng) + 0.5 * pseudo.perlin(x.shape, (2, 2), rng)
        x = x * (1 + rng.uniform(0.03, 0.15) * strength * field)
    return np.clip(x, 0, 1).astype(np.float32)


def sensor(clean, defective, rng, strength=1.0):
    if rng.random() < 0.3 * strength:
        s = rng.uniform(0.3, 0.8)
        clean = ndimage.gaussian_filter(clean, s)
        defective = ndimage.gaussian_filter(defective, s)
    if rng.random() < 0.5 * strength:
        # read noise from 0.5 to 7.6 grey levels (log-uniform): station cameras with visible
        # noise are common, and up to 0.012 (3 levels) the model lost 0.06 image AUROC at 6
        # levels (models/MODEL_CARD.md, "Other camera responses")
        sigma = float(np.exp(rng.uniform(np.log(0.002), np.log(0.03))))
        n = rng.normal(0, sigma, clean.shape).astype(np.float32)
        clean = clean + n
        defective = defective + n
    return np.clip(clean, 0, 1), np.clip(defective, 0, 1)


def _jpeg(x, quality):
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    return np.asarray(Image.open(buf), dtype=np.float32) / 255.0


def camera_response(clean, defective, mask, rng):
    """What other cameras do to a frame, applied alike to input and target (none of it is a
    defect): over-exposure with clipping (1.1-1.9x), under-exposure gained back up (0.3-0.8x, its 8-bit
    quantization and read noise amplified), posterization (4-6 bits),
    JPEG (quality 25-90), row or column banding (1-6 % gain ripple), column fixed-pattern
    offsets, stuck pixels. Each effect is drawn on its own, at least one always applies.
    A defect pixel that the response made identical to the clean one (clipped away, quantized
    away, a stuck pixel over it) carries no evidence: it leaves the mask. Returns (clean,
    defective, mask)."""
    h, w = clean.shape
    before = defective != clean
    effects = [rng.random() < p for p in (0.5, 0.25, 0.3, 0.2, 0.2, 0.15)]
    if not any(effects):
        effects[int(rng.integers(len(effects)))] = True
    expo, poster, jpeg, band, fpn, stuck = effects
    if expo:
        if rng.random() < 0.5:
            # over-exposed: the station grades a bright crop as it is, highlights clipped
            g = float(np.exp(rng.uniform(np.log(1.1), np.log(1.9))))
            o = rng.uniform(-0.03, 0.03)
            clean, defective = np.clip(clean * g + o, 0, 1), np.clip(defective * g + o, 0, 1)
        else:
            # under-exposed: the sensor's 8 bits and its read noise at a low level, which the
            # station's digital gain (src/inspect/exposure.rs) then brings back up
            g = float(np.exp(rng.uniform(np.log(0.3), np.log(0.8))))
            n = rng.normal(0, rng.uniform(0.5, 2.5) / 255.0, clean.shape).astype(np.float32)
            back = (1.0 / g) * float(rng.uniform(0.85, 1.15))
            clean = np.clip(np.rint(np.clip(clean * g + n, 0, 1) * 255.0) / 255.0 * back, 0, 1)
            defective = np.clip(np.rint(np.clip(defective * g + n, 0, 1) * 255.0) / 255.0 * back, 0, 1)
    if band:
        rows = rng.random() < 0.6  # a rolling shutter / LED flicker bands rows, a readout columns
        n = h if rows else w
        ripple = ndimage.gaussian_filter1d(rng.normal(0, 1, n), rng.uniform(0.5, 3), mode="wrap")
        prof = 1 + rng.uniform(0.01, 0.06) * ripple / max(float(np.abs(ripple).max()), 1e-6)
        prof = (prof[:, None] if rows else prof[None, :]).astype(np.float32)
        clean, defective = np.clip(clean * prof, 0, 1), np.clip(defective * prof, 0, 1)
    if fpn:
        off = rng.normal(0, rng.uniform(0.002, 0.008), w)[None, :]
        clean, defective = np.clip(clean + off, 0, 1), np.clip(defective + off, 0, 1)
    if stuck:
        k = max(1, int(h * w * rng.uniform(1e-4, 1e-3)))
        ys, xs = rng.integers(0, h, k), rng.integers(0, w, k)
        v = (rng.random(k) < 0.5).astype(np.float32)
        clean, defective = clean.copy(), defective.copy()
        clean[ys, xs] = v
        defective[ys, xs] = v
    if poster:
        lv = float(2 ** int(rng.integers(4, 7)) - 1)
        clean, defective = np.rint(clean * lv) / lv, np.rint(defective * lv) / lv
    if jpeg:
        q = int(rng.integers(25, 91))
        clean, defective = _jpeg(clean, q), _jpeg(defective, q)
    else:
        mask = np.where(before & (defective == clean), 0, mask).astype(mask.dtype)
    return clean.astype(np.float32), defective.astype(np.float32), mask


class PairSampler:
    """Random training patches: (defective, clean, mask, families) from good frames."""

    def __init__(self, frames, crop_um_per_px, crop_size, patch, seed=0, aug_strength=1.0, p_clean=0.25,
                 shift_px=12.0, p_structure=0.0, crack_classes=False, local_film_share=0.0,
                 groove_share=0.0, camera_share=0.0, faint_spot_share=0.0, halo_in_mask=True):
        self.frames = frames
        self.pixels = [f.load() for f in frames]
        self.s = crop_um_per_px
        self.size = crop_size
        self.patch = patch
        self.rng = np.random.default_rng(seed)
        self.strength = aug_strength
        self.p_clean = p_clean
        self.shift = shift_px
        # share of patches placed over the fiber's own structure (the axis, where a lit core
        # shows, and the cladding edge): what a model most often mistakes for a defect
        self.p_structure = p_structure
        # masks carry classes: 0 clean, 1 defect, 2 crack (pseudo "crack" family), for the
        # student's crack head; otherwise 0/1
        self.crack_classes = crack_classes
        # share of pseudo films sized in µm (pseudo.local_film); > 0 also paints films more often
        self.local_film_share = local_film_share
        # share of the single pseudo scratches drawn as flat-bottomed grooves sized in µm
        self.groove_share = groove_share
        # share of the pseudo spots drawn as faint dust sized in µm (pseudo.faint_spot), and
        # whether a halo ring around a spot is part of its mask
        self.faint_spot_share = faint_spot_share
        self.halo_in_mask = halo_in_mask
        # share of patches given another camera's response (camera_response); 0 draws nothing
        # from the random stream, so the old samples are reproduced exactly
        self.camera_share = camera_share

    def clean_patch(self, rng=None, fi=None, window=None, affine=None, shift=None):
        rng = rng or self.rng
        fi = int(rng.integers(len(self.frames))) if fi is None else fi
        fr, px = self.frames[fi], self.pixels[fi]
        P = self.patch
        if window is None and self.p_structure > 0 and rng.random() < self.p_structure:
            window = self.structure_window(rng)
        if window is None:
            window = (int(rng.integers(0, self.size - P + 1)), int(rng.integers(0, self.size - P + 1)), P, P)
        a = random_affine(rng) if affine is None else affine
        t = tuple(rng.uniform(-self.shift, self.shift, 2)) if shift is None else shift
        x, y = D.crop_coords(fr.center_in_frame, fr.um_per_px_x, fr.um_per_px_y, self.s, self.size, self.size,
                             affine=a, shift_px=t, window=window)
        if px.ndim == 3:
            patch = D.bilinear_clamp(px, x, y) / 255.0
        else:
            patch = D.bilinear_clamp(px, x, y) / 255.0
        # fibre centre in patch pixels: A du + t = 0  →  du = -A^-1 t
        du = -np.linalg.solve(a, np.asarray(t))
        c = (du[0] + (self.size - 1) / 2 - window[0], du[1] + (self.size - 1) / 2 - window[1])
        # radius of every patch pixel from the fiber axis, in contract-crop pixels (= physical
        # radius / crop scale), with a little centre jitter standing in for locate's error
        tj = np.asarray(t) + rng.normal(0, 1.0, 2)
        uu = np.arange(window[0], window[0] + window[2]) - (self.size - 1) / 2
        vv = np.arange(window[1], window[1] + window[3]) - (self.size - 1) / 2
        uu, vv = np.meshgrid(uu, vv)
        ru = a[0, 0] * uu + a[0, 1] * vv + tj[0]
        rv = a[1, 0] * uu + a[1, 1] * vv + tj[1]
        self._last_r = np.hypot(ru, rv).astype(np.float32)
        return patch, c

    def structure_window(self, rng):
        """A patch window holding the fiber axis (half the time) or a point of the cladding edge."""
        P, half = self.patch, (self.size - 1) / 2
        if rng.random() < 0.5:
            rad = 0.0
        else:
            rad = D.CLADDING_RADIUS_UM / self.s * rng.uniform(0.97, 1.03)
        a = rng.uniform(0, 2 * np.pi)
        px, py = half + rad * np.cos(a), half + rad * np.sin(a)
        j = rng.uniform(-P / 3, P / 3, 2)
        u0 = int(np.clip(round(px - P / 2 + j[0]), 0, self.size - P))
        v0 = int(np.clip(round(py - P / 2 + j[1]), 0, self.size - P))
        return (u0, v0, P, P)

    def sample(self, rng=None):
        rng = rng or self.rng
        patch, c = self.clean_patch(rng)
        r = self._last_r
        clean = photometric(patch, rng, self.strength)
        if self.crack_classes:
            crack = np.zeros(clean.shape, bool)
            defective, mask, fams = pseudo.paint(clean, rng, c, self.s, p_clean=self.p_clean,
                                                 weights=pseudo.CRACK_HEAD_WEIGHTS, crack_out=crack,
                                                 local_film_share=self.local_film_share,
                                                 groove_share=self.groove_share,
                                                 faint_spot_share=self.faint_spot_share,
                                                 halo_in_mask=self.halo_in_mask)
            mask = mask.astype(np.uint8) + (crack & mask).astype(np.uint8)
        else:
            defective, mask, fams = pseudo.paint(clean, rng, c, self.s, p_clean=self.p_clean,
                                                 weights=pseudo.weights_for(self.local_film_share),
                                                 local_film_share=self.local_film_share,
                                                 groove_share=self.groove_share,
                                                 faint_spot_share=self.faint_spot_share,
                                                 halo_in_mask=self.halo_in_mask)
        clean, defective = sensor(clean, defective, rng, self.strength)
        if self.camera_share > 0 and rng.random() < self.camera_share:
            clean, defective, mask = camera_response(clean, defective, mask, rng)
        return defective, clean, mask, fams, r

    def batch(self, n, rng=None):
        """(defective, clean, mask, radius in contract-crop px), each N x 1 x P x P float32."""
        ys, xs, ms, rs = [], [], [], []
        for _ in range(n):
            y, x, m, _, r = self.sample(rng)
            ys.append(y)
            xs.append(x)
            ms.append(m)
            rs.append(r)
        return (np.stack(ys)[:, None], np.stack(xs)[:, None], np.stack(ms)[:, None].astype(np.float32),
                np.stack(rs)[:, None])


class LabelledPatches:
    """Random patches of full-crop (input, target, mask) triples (teacher-labelled pairs)."""

    def __init__(self, triples, patch, seed=0):
        self.triples = triples
        self.patch = patch
        self.rng = np.random.default_rng(seed)
        # per-triple flagged pixels and one radius map, computed once: recomputing them for every
        # patch (np.nonzero over the crop, a 384² hypot) was the main-process cost that held a GPU
        # run to ~24 steps/s (session 13)
        self._flagged = [np.nonzero(m > 0.5) for _, _, m, _ in triples]
        self._rr = {}

    def _radius(self, H, W):
        if (H, W) not in self._rr:
            c0 = (H - 1) / 2
            self._rr[(H, W)] = np.hypot(*np.meshgrid(np.arange(W) - c0, np.arange(H) - c0)).astype(np.float32)
        return self._rr[(H, W)]

    def __len__(self):
        return len(self.triples)

    def batch(self, n, rng=None):
        rng = rng or self.rng
        ys, xs, ms, ws, rs = [], [], [], [], []
        for _ in range(n):
            ti = int(rng.integers(len(self.triples)))
            y, x, m, w = self.triples[ti]
            H, W = y.shape
            P = self.patch
            # centre the patch on a flagged pixel most of the time (they are what is learnt here)
            ys_, xs_ = self._flagged[ti]
            if len(ys_) and rng.random() < 0.8:
                k0 = int(rng.integers(len(ys_)))
                v0 = int(np.clip(ys_[k0] - P // 2 + rng.integers(-P // 4, P // 4 + 1), 0, H - P))
                u0 = int(np.clip(xs_[k0] - P // 2 + rng.integers(-P // 4, P // 4 + 1), 0, W - P))
            else:
                v0, u0 = int(rng.integers(0, H - P + 1)), int(rng.integers(0, W - P + 1))
            k = int(rng.integers(4))
            fl = rng.random() < 0.5
            rr = self._radius(H, W)
            out = []
            for a in (y, x, m, w, rr):
                a = np.rot90(a[v0:v0 + P, u0:u0 + P], k)
                out.append(np.ascontiguousarray(a[:, ::-1] if fl else a))
            g = float(np.exp(rng.uniform(-0.1, 0.1)))  # same gain on input and target
            ys.append(np.clip(out[0] * g, 0, 1))
            xs.append(np.clip(out[1] * g, 0, 1))
            ms.append(out[2])
            ws.append(out[3])
            rs.append(out[4])
        f = np.float32
        return (np.stack(ys)[:, None].astype(f), np.stack(xs)[:, None].astype(f), np.stack(ms)[:, None].astype(f),
                np.stack(ws)[:, None].astype(f), np.stack(rs)[:, None].astype(f))


class _BatchIterable:
    """Endless stream of sampler batches (as torch tensors); one RNG per data worker."""

    def __init__(self, sampler, batch_size, seed):
        self.sampler, self.bs, self.seed = sampler, batch_size, seed

    def __iter__(self):
        import torch

        info = torch.utils.data.get_worker_info()
        wid = info.id if info is not None else 0
        rng = np.random.default_rng([self.seed, wid])
        while True:
            yield tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in self.sampler.batch(self.bs, rng))


def batch_stream(sampler, batch_size, seed, workers=1):
    """Iterator of (defective, clean, mask) batches. With workers ≥ 1 the pseudo-defects are
    painted in separate processes while the network trains (the painting is numpy, ~8 ms a
    patch, and would otherwise stall the single training thread)."""
    import torch
    from torch.utils.data import DataLoader, IterableDataset

    it = _BatchIterable(sampler, batch_size, seed)
    if workers <= 0:
        return iter(it)

    class _DS(IterableDataset):
        def __iter__(self):
            return iter(it)

    def _init(_):
        torch.set_num_threads(1)

    dl = DataLoader(_DS(), batch_size=None, num_workers=workers, prefetch_factor=4, worker_init_fn=_init)
    return iter(dl)
