"""Pseudo-defects painted into good crops: the supervision for teacher and student.

In: a clean gray patch in [0,1] (H x W float32), the fiber centre in patch pixels and the
crop scale (µm/px), a numpy Generator. Out: (defective patch, bool defect mask).

Written independently of the Rust synthetic camera (src/synth*, never read): evaluation on its
rendered defects then measures generalisation, not memorisation. Families:

- `draem`: DRAEM-style Perlin-noise mask (random frequency, random area) blended with a
  procedurally generated texture (fractal Perlin, stripes, cellular, speckle, ramps, checker,
  or a transformed copy of the image itself), blend factor beta in [0.05, 0.8].
- `crack`: jagged, branching thin dark/bright paths.
- `scratch`: fibre-like scratches along curved polylines: long (up to several hundred px),
  thin (Gaussian sigma 0.35-1 px for most), faint (a large share at 1-5 % contrast), dark or
  bright, with optional groove halo, dashes (broken) and speckle; sometimes a family of
  parallel polishing scratches.
- `spot`: pits / particles: small irregular blobs (radius 0.8-12 px), dark or bright, sharp or
  soft, with optional halo; `cluster`: several small ones together.
- `film`: oil / residue: large soft low-contrast region (a share of the patch); with
  `local_film_share`, a share of them sized in µm instead (6-60 µm, 4-18 grey levels).
- `chip`: a bite out of the cladding edge (needs the edge inside the patch, else a spot).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

# ------------------------------------------------------------------------------ noise


def perlin(shape, res, rng) -> np.ndarray:
    """2-D Perlin gradient noise, roughly in [-0.7, 0.7]; res = (cells_y, cells_x)."""
    h, w = shape
    ry, rx = max(1, int(res[0])), max(1, int(res[1]))
    ang = rng.uniform(0, 2 * np.pi, (ry + 1, rx + 1))
    gx, gy = np.cos(ang), np.sin(ang)
    ys = np.linspace(0, ry, h, endpoint=False)
    xs = np.linspace(0, rx, w, endpoint=False)
    yi = ys.astype(int)
    xi = xs.astype(int)
    yf = (ys - yi)[:, None]
    xf = (xs - xi)[None, :]
    Y0, X0 = yi[:, None], xi[None, :]

    def dot(oy, ox):
        return gx[Y0 + oy, X0 + ox] * (xf - ox) + gy[Y0 + oy, X0 + ox] * (yf - oy)

    def fade(t):
        return t * t * t * (t * (t * 6 - 15) + 10)

    n00, n01, n10, n11 = dot(0, 0), dot(0, 1), dot(1, 0), dot(1, 1)
    u, v = fade(xf), fade(yf)
    return ((n00 * (1 - u) + n01 * u) * (1 - v) + (n10 * (1 - u) + n11 * u) * v).astype(np.float32)


def fractal(shape, rng, base=None, octaves=None) -> np.ndarray:
    h, w = shape
    base = base if base is not None else 2 ** rng.integers(0, 4)
    octaves = octaves if octaves is not None else int(rng.integers(1, 5))
    out = np.zeros(shape, np.float32)
    amp = 1.0
    for o in range(octaves):
        r = base * 2**o
        if r > min(h, w) / 2:
            break
        out += amp * perlin(shape, (r, r * rng.uniform(0.5, 2.0)), rng)
        amp *= rng.uniform(0.35, 0.65)
    return out


def _norm01(a: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(a, [1, 99])
    return np.clip((a - lo) / max(hi - lo, 1e-6), 0, 1).astype(np.float32)


def procedural_texture(shape, rng, img=None) -> np.ndarray:
    """A random texture in [0,1] (no external texture dataset is needed)."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    k = rng.integers(0, 8 if img is not None else 7)
    if k == 0:
        t = fractal(shape, rng)
    elif k == 1:  # stripes, possibly warped
        th = rng.uniform(0, np.pi)
        f = rng.uniform(0.03, 0.4)
        ph = xx * np.cos(th) + yy * np.sin(th)
        if rng.random() < 0.5:
            ph = ph + 8 * fractal(shape, rng, base=2, octaves=2)
        t = np.sin(2 * np.pi * f * ph)
    elif k == 2:  # cellular (distance to random seeds)
        n = int(rng.integers(4, 40))
        pts = rng.uniform(0, 1, (n, 2)) * (h, w)
        d = np.min(np.hypot(yy[..., None] - pts[:, 0], xx[..., None] - pts[:, 1]), axis=-1)
        t = d if rng.random() < 0.5 else np.sin(d * rng.uniform(0.2, 1.0))
    elif k == 3:  # speckle
        t = ndimage.gaussian_filter(rng.normal(size=shape).astype(np.float32), rng.uniform(0.5, 3))
    elif k == 4:  # ramp
        th = rng.uniform(0, 2 * np.pi)
        t = xx * np.cos(th) + yy * np.sin(th) + fractal(shape, rng) * rng.uniform(0, 40)
    elif k == 5:  # checker / grid
        p = rng.uniform(3, 20)
        t = (np.floor(xx / p) + np.floor(yy / p)) % 2 + 0.3 * fractal(shape, rng)
    elif k == 6:  # flat with noise
        t = rng.normal(size=shape).astype(np.float32) * rng.uniform(0.01, 0.3) + 0.5
        return np.clip(t, 0, 1).astype(np.float32) * rng.uniform(0.2, 1.0) + rng.uniform(0, 0.3)
    else:  # self-texture: transformed copy of the image
        t = img
        t = np.rot90(t, int(rng.integers(0, 4)))
        if rng.random() < 0.5:
            t = t[::-1]
        t = np.roll(t, (int(rng.integers(0, h)), int(rng.integers(0, w))), axis=(0, 1))
        if t.shape != shape:
            t = np.resize(t, shape)
    t = _norm01(t.astype(np.float32))
    lo = rng.uniform(0.0, 0.8)
    hi = lo + rng.uniform(0.1, 1.0 - lo)
    return (lo + (hi - lo) * t).astype(np.float32)


# ------------------------------------------------------------------------------ families


def draem_blend(img, rng):
    h, w = img.shape
    for _ in range(5):
        res = (2 ** rng.integers(1, 6), 2 ** rng.integers(1, 6))
        n = perlin((h, w), res, rng)
        if rng.random() < 0.5:
            n = ndimage.rotate(n, rng.uniform(0, 180), reshape=False, mode="reflect", order=1)
        frac = np.exp(rng.uniform(np.log(0.002), np.log(0.12)))
        thr = np.quantile(n, 1 - frac)
        m = n > thr
        if m.sum() < 3:
            continue
        tex = procedural_texture((h, w), rng, img)
        beta = rng.uniform(0.05, 0.8)
        out = np.where(m, beta * img + (1 - beta) * tex, img)
        diff = np.abs(out - img)
        if diff[m].mean() < 0.03:
            continue
        m = m & (diff > 0.004)
        return out.astype(np.float32), m
    return img, np.zeros_like(img, bool)


def _polyline(rng, h, w, length, jagged=False):
    """Points of a gently curved polyline starting near/inside the patch (jagged: a crack-like
    path that changes direction at random every few pixels)."""
    step = 3.0 if jagged else 6.0
    n = max(2, int(length / step) + 1)
    x, y = rng.uniform(-0.2 * w, 1.2 * w), rng.uniform(-0.2 * h, 1.2 * h)
    th = rng.uniform(0, 2 * np.pi)
    # aim roughly toward the patch centre so long scratches cross it
    if rng.random() < 0.7:
        th = np.arctan2(h / 2 - y, w / 2 - x) + rng.normal(0, 0.5)
        back = rng.uniform(0, 0.6) * length
        x, y = x - back * np.cos(th), y - back * np.sin(th)
    curv = rng.normal(0, 0.015) if rng.random() < 0.6 else 0.0
    pts = [(x, y)]
    for _ in range(n - 1):
        th += curv + rng.normal(0, 0.35 if jagged else 0.01)
        x += step * np.cos(th)
        y += step * np.sin(th)
        pts.append((x, y))
    return np.asarray(pts, np.float32)


def _dist_to_polyline(pts, h, w, margin):
    """Distance of pixels within `margin` of the polyline, and the arc length of the closest
    point (inf / 0 elsewhere). Each segment is evaluated only on a small window around it."""
    A, B = pts[:-1], pts[1:]
    AB = B - A
    L2 = np.maximum((AB**2).sum(1), 1e-6)
    seg_len = np.sqrt(L2)
    cum = np.concatenate([[0], np.cumsum(seg_len)[:-1]])
    near = (np.minimum(A[:, 0], B[:, 0]) < w + margin) & (np.maximum(A[:, 0], B[:, 0]) > -margin) & \
           (np.minimum(A[:, 1], B[:, 1]) < h + margin) & (np.maximum(A[:, 1], B[:, 1]) > -margin)
    if not near.any():
        return None, None
    A, AB, L2, seg_len, cum = A[near], AB[near], L2[near], seg_len[near], cum[near]
    half = int(np.ceil(float(seg_len.max()) / 2 + margin)) + 1
    mid = A + AB / 2
    off = np.arange(-half, half + 1)
    ox, oy = np.meshgrid(off, off)
    px = (np.round(mid[:, 0])[:, None, None] + ox[None]).reshape(len(A), -1)  # S x K
    py = (np.round(mid[:, 1])[:, None, None] + oy[None]).reshape(len(A), -1)
    apx, apy = px - A[:, 0:1], py - A[:, 1:2]
    t = np.clip((apx * AB[:, 0:1] + apy * AB[:, 1:2]) / L2[:, None], 0, 1)
    dx = apx - t * AB[:, 0:1]
    dy = apy - t * AB[:, 1:2]
    d = np.sqrt(dx * dx + dy * dy)
    s = cum[:, None] + t * seg_len[:, None]
    ok = (px >= 0) & (px < w) & (py >= 0) & (py < h) & (d <= margin)
    d, s = d[ok], s[ok]
    idx = (py[ok] * w + px[ok]).astype(np.int64)
    order = np.argsort(-d, kind="stable")  # largest first: the smallest distance is written last
    dist = np.full(h * w, np.inf, np.float32)
    arc = np.zeros(h * w, np.float32)
    dist[idx[order]] = d[order]
    arc[idx[order]] = s[order]
    return dist.reshape(h, w), arc.reshape(h, w)


def scratch(img, rng, family=False, crack=False):
    h, w = img.shape
    out = img.copy()
    mask = np.zeros_like(img, bool)
    n_lines = int(rng.integers(3, 9)) if family else (int(rng.integers(1, 4)) if crack else 1)
    base_pts = None
    for i in range(n_lines):
        if crack:  # a jagged main path, then branches leaving it
            if base_pts is None:
                pts = _polyline(rng, h, w, float(np.exp(rng.uniform(np.log(20), np.log(250)))), jagged=True)
            else:
                st = base_pts[int(rng.integers(len(base_pts)))]
                br = _polyline(rng, h, w, float(rng.uniform(8, 60)), jagged=True)
                pts = br - br[0] + st
            base_pts = pts if base_pts is None else base_pts
        elif family and base_pts is not None:
            off = rng.uniform(-30, 30)
            d0 = base_pts[-1] - base_pts[0]
            nrm = np.array([-d0[1], d0[0]]) / max(np.hypot(*d0), 1e-6)
            pts = base_pts + nrm * off + rng.normal(0, 0.5, base_pts.shape).cumsum(0) * 0.1
        else:
            length = float(np.exp(rng.uniform(np.log(12), np.log(500))))
            pts = _polyline(rng, h, w, length)
            base_pts = pts
        u = rng.random()
        sigma = rng.uniform(0.35, 1.0) if u < 0.65 else (rng.uniform(1.0, 2.0) if u < 0.92 else rng.uniform(2.0, 4.0))
        if family or crack:
            sigma = rng.uniform(0.35, 0.9) if family else rng.uniform(0.35, 1.5)
        d, s = _dist_to_polyline(pts, h, w, margin=float(np.ceil(5.0 * sigma + 1.5)))
        if d is None or not np.isfinite(d).any():
            continue
        faint = rng.random() < 0.45
        mag = np.exp(rng.uniform(np.log(0.012), np.log(0.05))) if faint else np.exp(rng.uniform(np.log(0.05), np.log(0.35)))
        sign = 1.0 if rng.random() < 0.45 else -1.0
        prof = np.exp(-0.5 * (d / sigma) ** 2)
        if rng.random() < 0.25:  # groove with highlight on the flanks
            prof = prof - 0.5 * np.exp(-0.5 * (d / (2.2 * sigma)) ** 2) * (d > sigma)
        on = np.ones_like(d, bool)
        if rng.random() < 0.5:  # broken into dashes
            total = float(s[np.isfinite(d)].max()) + 1
            edges, cur, state = [], 0.0, True
            while cur < total:
                ln = rng.uniform(4, 40) if state else rng.uniform(2, 15)
                edges.append((cur, cur + ln, state))
                cur += ln
                state = not state
            on = np.zeros_like(d, bool)
            for a, b, st in edges:
                if st:
                    on |= (s >= a) & (s < b)
        amp = np.ones_like(d)
        if rng.random() < 0.35:  # speckled intensity along the line
            nn = perlin((1, 256), (1, 32), rng)[0]
            amp = 0.35 + 0.65 * _norm01(np.interp(s.ravel() % 256, np.arange(256), nn).reshape(d.shape))
        delta = sign * mag * prof * on * amp
        if rng.random() < 0.5:
            out = out * (1 + delta / max(float(img.mean()), 0.1))
        else:
            out = out + delta
        mask |= (d <= max(0.75, 1.5 * sigma)) & on
    return np.clip(out, 0, 1).astype(np.float32), mask


def groove(img, rng, crop_um_per_px):
    """A polishing groove sized in µm: a flat-bottomed line 1.5-7 µm wide with soft edges (box
    profile, sometimes with lighter or darker walls), a few grey levels deep, solid, broken into
    dashes a few µm long or speckled, tapering at its ends. The mask is the groove's full width,
    so the map learns to cover a wide scratch edge to edge, not only its deepest centre (the
    Gaussian lines of `scratch` are mostly < 2 µm wide)."""
    h, w = img.shape
    s = crop_um_per_px
    w_px = float(np.exp(rng.uniform(np.log(1.5), np.log(7.0)))) / s
    length = float(np.exp(rng.uniform(np.log(8.0), np.log(250.0)))) / s
    pts = _polyline(rng, h, w, length)
    edge = rng.uniform(0.4, 1.2)
    d, arc = _dist_to_polyline(pts, h, w, margin=float(np.ceil(w_px / 2 + 3 * edge + 3)))
    if d is None or not np.isfinite(d).any():
        return img, np.zeros_like(img, bool)
    near = np.isfinite(d)
    dd = np.where(near, d, 1e6)
    prof = _sigmoid((w_px / 2 - dd) / edge)
    if rng.random() < 0.35:  # walls: a rim of the opposite sign on both sides
        prof = prof - rng.uniform(0.2, 0.6) * np.exp(-0.5 * ((dd - w_px / 2 - edge) / max(edge, 0.6)) ** 2)
    total = float(arc[near].max()) + 1.0
    taper = np.clip(np.minimum(arc, total - arc) / (rng.uniform(1.0, 5.0) / s), 0, 1)
    v = rng.random()
    if v < 0.45:  # solid, slowly varying depth
        along = 0.8 + 0.2 * np.sin(arc * s / rng.uniform(8, 40) + rng.uniform(0, 2 * np.pi))
    elif v < 0.75:  # dashes a few µm long
        period, duty = rng.uniform(3, 15) / s, rng.uniform(0.35, 0.8)
        along = ((arc / period + rng.uniform(0, 1)) % 1.0 < duty).astype(np.float32)
    else:  # speckled
        nn = perlin((1, 256), (1, 32), rng)[0]
        along = np.clip(0.55 + 0.6 * (2 * _norm01(np.interp(arc.ravel() % 256, np.arange(256), nn)) - 1),
                        0, 1).reshape(arc.shape)
    along = np.where(near, along * taper, 0.0)
    mag = float(np.exp(rng.uniform(np.log(0.012), np.log(0.08))))
    sign = 1.0 if rng.random() < 0.35 else -1.0
    out = img + sign * mag * prof * along
    mask = near & (dd <= max(w_px / 2, 0.75)) & (along > 0.3)
    return np.clip(out, 0, 1).astype(np.float32), mask


def _sigmoid(z):
    return 0.5 * (1 + np.tanh(0.5 * np.clip(z, -60, 60)))


def _blob(h, w, rng, cx, cy, r, aspect=None, irregular=True):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    th = rng.uniform(0, np.pi)
    a = aspect if aspect is not None else rng.uniform(0.5, 1.0)
    dx, dy = xx - cx, yy - cy
    u = dx * np.cos(th) + dy * np.sin(th)
    v = (-dx * np.sin(th) + dy * np.cos(th)) / a
    rr = np.hypot(u, v)
    if irregular and r > 2:
        ang = np.arctan2(v, u)
        k = rng.normal(0, 0.15, 6)
        mod = 1 + sum(k[j] * np.cos((j + 2) * ang + rng.uniform(0, 6.28)) for j in range(3))
        rr = rr / np.maximum(mod, 0.4)
    return rr


def spot(img, rng, cx=None, cy=None, r=None, halo_in_mask=True):
    """A pit or particle. A halo (30 % of spots) is part of the mask unless `halo_in_mask` is
    False: then only the spot itself is the defect and the ring is a lighting effect around it
    (how the IEC tables size a pit)."""
    h, w = img.shape
    cx = rng.uniform(0, w) if cx is None else cx
    cy = rng.uniform(0, h) if cy is None else cy
    r = float(np.exp(rng.uniform(np.log(0.8), np.log(12)))) if r is None else r
    rr = _blob(h, w, rng, cx, cy, r)
    soft = rng.uniform(0.2, 0.6) if rng.random() < 0.6 else rng.uniform(0.6, 2.5)
    alpha = _sigmoid(-(rr - r) / soft)
    m = rng.random()
    if m < 0.5:  # dark pit / particle
        target = img * rng.uniform(0.05, 0.75)
    elif m < 0.8:  # bright particle
        target = np.minimum(1.0, img + rng.uniform(0.08, 0.6))
    else:  # textured
        target = procedural_texture((h, w), rng, img)
    out = img * (1 - alpha) + target * alpha
    mask = alpha > 0.5
    if rng.random() < 0.3:  # halo
        ring = np.exp(-0.5 * ((rr - r - 1.5 * soft - 1) / (0.8 + 0.3 * r / 4)) ** 2)
        out = out + np.sign(img.mean() - target.mean() + 1e-6) * rng.uniform(0.03, 0.15) * ring
        if halo_in_mask:
            mask |= ring > 0.5
    if not mask.any():
        iy, ix = int(np.clip(round(cy), 0, h - 1)), int(np.clip(round(cx), 0, w - 1))
        mask[iy, ix] = abs(out[iy, ix] - img[iy, ix]) > 0.01
    return np.clip(out, 0, 1).astype(np.float32), mask


def cluster(img, rng, halo_in_mask=True):
    h, w = img.shape
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    spread = rng.uniform(4, 25)
    out, mask = img, np.zeros_like(img, bool)
    for _ in range(int(rng.integers(3, 10))):
        out, m = spot(out, rng, cx + rng.normal(0, spread), cy + rng.normal(0, spread), float(np.exp(rng.uniform(np.log(0.7), np.log(3.5)))),
                      halo_in_mask=halo_in_mask)
        mask |= m
    return out, mask


def faint_spot(img, rng, crop_um_per_px, halo_in_mask=True):
    """Faint dust and shallow pits sized in µm: 1-6 µm across, 3-15 % lighter or darker than what
    they cover (the `spot` family is 25-95 % darker or 8-60 % of full scale brighter), alone or a
    few together. The smaller the spot the stronger its least contrast (0.10 / d_um), so that
    what is painted is what a camera could show."""
    h, w = img.shape
    n = 1 if rng.random() < 0.7 else int(rng.integers(2, 6))
    cx0, cy0 = rng.uniform(0, w), rng.uniform(0, h)
    spread = rng.uniform(3.0, 15.0) / crop_um_per_px
    out, mask = img, np.zeros((h, w), bool)
    for i in range(n):
        d_um = float(np.exp(rng.uniform(np.log(1.0), np.log(6.0))))
        r = max(0.5 * d_um / crop_um_per_px, 0.5)
        cx, cy = (cx0, cy0) if i == 0 else (cx0 + rng.normal(0, spread), cy0 + rng.normal(0, spread))
        rr = _blob(h, w, rng, cx, cy, r)
        alpha = _sigmoid(-(rr - r) / rng.uniform(0.2, 0.8))
        lo = max(0.03, 0.10 / d_um)
        c = (-1.0 if rng.random() < 0.65 else 1.0) * float(np.exp(rng.uniform(np.log(lo), np.log(0.15))))
        out = out * (1 + c * alpha)
        m = alpha > 0.5
        if not m.any():
            iy, ix = int(np.clip(round(cy), 0, h - 1)), int(np.clip(round(cx), 0, w - 1))
            m[iy, ix] = True
        if rng.random() < 0.2:  # a faint ring of light around it
            ring = np.exp(-0.5 * ((rr - r - 1.0) / 0.9) ** 2)
            out = out - np.sign(c) * rng.uniform(0.01, 0.05) * ring
            if halo_in_mask:
                m |= ring > 0.5
        mask |= m
    return np.clip(out, 0, 1).astype(np.float32), mask


def film(img, rng):
    h, w = img.shape
    n = fractal((h, w), rng, base=int(2 ** rng.integers(1, 3)), octaves=3)
    frac = rng.uniform(0.03, 0.3)
    thr = np.quantile(n, 1 - frac)
    alpha = np.clip((n - thr) / rng.uniform(0.02, 0.15) + 0.5, 0, 1)
    alpha = ndimage.gaussian_filter(alpha, rng.uniform(0.5, 3))
    c = rng.choice([-1, 1]) * rng.uniform(0.04, 0.15)
    out = img * (1 + c * alpha)
    if rng.random() < 0.4:  # residue edge ring ("coffee ring")
        edge = np.exp(-0.5 * ((alpha - 0.5) / 0.1) ** 2)
        out = out + rng.choice([-1, 1]) * rng.uniform(0.02, 0.08) * edge
    mask = alpha > 0.5
    if mask.any() and np.abs(out - img)[mask].mean() < 0.015:
        mask &= np.abs(out - img) > 0.01
    return np.clip(out, 0, 1).astype(np.float32), mask


def local_film(img, rng, crop_um_per_px):
    """Oil / residue sized in µm (6-60 µm across, wherever the patch is): an irregular soft
    blob whose thickness varies, a few grey levels lighter or darker than what it covers."""
    h, w = img.shape
    d_um = float(np.exp(rng.uniform(np.log(6.0), np.log(60.0))))
    r = 0.5 * d_um / crop_um_per_px
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    rr = _blob(h, w, rng, cx, cy, r, aspect=rng.uniform(0.45, 1.0)) / max(r, 1e-3)
    n = fractal((h, w), rng, base=int(2 ** rng.integers(2, 4)), octaves=3)
    n = n / (np.abs(n).max() + 1e-6)
    rr = rr + rng.uniform(0.1, 0.35) * n
    soft = rng.uniform(0.08, 0.35)
    alpha = _sigmoid(-(rr - 1.0) / soft)
    thick = np.clip(1.0 + rng.uniform(0.0, 0.5) * n, 0.3, 1.5)
    delta = rng.choice([-1, 1]) * float(np.exp(rng.uniform(np.log(0.015), np.log(0.07))))
    out = img + delta * alpha * thick
    if rng.random() < 0.3:  # drying edge
        edge = np.exp(-0.5 * ((alpha - 0.5) / 0.12) ** 2)
        out = out + rng.choice([-1, 1]) * rng.uniform(0.01, 0.04) * edge
    mask = alpha > 0.5
    return np.clip(out, 0, 1).astype(np.float32), mask


def chip(img, rng, fiber_center, crop_um_per_px):
    """A notch bitten out of the cladding edge (falls back to a spot if no edge in the patch)."""
    h, w = img.shape
    fx, fy = fiber_center
    r_edge = 62.5 / crop_um_per_px
    angs = rng.uniform(0, 2 * np.pi, 64)
    ex, ey = fx + r_edge * np.cos(angs), fy + r_edge * np.sin(angs)
    ok = (ex > 2) & (ex < w - 3) & (ey > 2) & (ey < h - 3)
    if not ok.any():
        return spot(img, rng)
    a = angs[np.argmax(ok)]
    size = float(np.exp(rng.uniform(np.log(1.5), np.log(12)))) / crop_um_per_px
    inset = rng.uniform(-0.2, 0.5) * size
    bx, by = fx + (r_edge - inset) * np.cos(a), fy + (r_edge - inset) * np.sin(a)
    rr = _blob(h, w, rng, bx, by, size, aspect=rng.uniform(0.4, 1.0))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    inside = np.hypot(xx - fx, yy - fy) < r_edge + 0.7
    alpha = _sigmoid(-(rr - size) / rng.uniform(0.25, 0.8)) * inside
    # the bite looks like what is outside the fiber (ferrule), or dark/shadowed broken glass
    outside_vals = img[~inside] if (~inside).any() else img.ravel()
    fill = float(np.median(outside_vals)) if rng.random() < 0.6 else float(img.mean()) * rng.uniform(0.1, 0.6)
    tex = fill + (procedural_texture((h, w), rng) - 0.5) * rng.uniform(0.0, 0.2)
    out = img * (1 - alpha) + tex * alpha
    mask = alpha > 0.5
    if rng.random() < 0.5:  # bright fracture rim
        rim = np.exp(-0.5 * ((rr - size) / 0.7) ** 2) * inside
        out = out + rng.uniform(0.05, 0.2) * rim
        mask |= rim > 0.5
    if not mask.any() or np.abs(out - img)[mask].mean() < 0.02:
        return spot(img, rng)
    return np.clip(out, 0, 1).astype(np.float32), mask


FAMILIES = ("scratch", "family", "crack", "spot", "cluster", "draem", "film", "chip")
DEFAULT_WEIGHTS = (0.28, 0.06, 0.08, 0.19, 0.06, 0.17, 0.06, 0.10)

# With µm-sized films (--local-films): films more often (0.06 -> 0.10, from the DRAEM blends),
# since a share of them is now small and faint.
FILM_WEIGHTS = (0.28, 0.06, 0.08, 0.19, 0.06, 0.13, 0.10, 0.10)


def weights_for(local_film_share):
    """The family weights that go with a share of µm-sized films (the default ones at 0)."""
    return FILM_WEIGHTS if local_film_share > 0 else DEFAULT_WEIGHTS


# With a crack head (--crack-head): cracks twice as often, so the head sees enough of them
# beside the scratches it must tell them from.
CRACK_HEAD_WEIGHTS = (0.28, 0.06, 0.16, 0.19, 0.06, 0.17, 0.06, 0.10)


def paint(img, rng, fiber_center, crop_um_per_px, p_clean=0.25, weights=DEFAULT_WEIGHTS, crack_out=None,
          local_film_share=0.0, groove_share=0.0, faint_spot_share=0.0, halo_in_mask=True):
    """Paint 0-3 pseudo-defects. Returns (defective, mask, list of family names). With
    `crack_out` (a bool array of the image's shape) the pixels of the "crack" family are also
    set there (cleared first): the class target of the student's crack head. A share
    `local_film_share` of the "film" family is painted by `local_film` (sized in µm) instead of
    `film` (a share of the patch), and a share `groove_share` of the "scratch" family by `groove`
    (a flat-bottomed line sized in µm), and a share `faint_spot_share` of the "spot" family by
    `faint_spot` (faint dust sized in µm); at 0 the random stream is the same as before each
    existed. `halo_in_mask=False` leaves the halo ring around a spot out of the mask."""
    h, w = img.shape
    mask = np.zeros((h, w), bool)
    if crack_out is not None:
        crack_out[...] = False
    if rng.random() < p_clean:
        return img.copy(), mask, []
    n = int(rng.choice([1, 1, 1, 2, 2, 3]))
    out = img
    fams = []
    wts = np.asarray(weights, np.float64) / np.sum(weights)
    for _ in range(n):
        fam = FAMILIES[rng.choice(len(FAMILIES), p=wts)]
        if fam == "scratch":
            if groove_share > 0 and rng.random() < groove_share:
                out, m = groove(out, rng, crop_um_per_px)
            else:
                out, m = scratch(out, rng)
        elif fam == "family":
            out, m = scratch(out, rng, family=True)
        elif fam == "crack":
            out, m = scratch(out, rng, crack=True)
        elif fam == "spot":
            if faint_spot_share > 0 and rng.random() < faint_spot_share:
                out, m = faint_spot(out, rng, crop_um_per_px, halo_in_mask=halo_in_mask)
            else:
                out, m = spot(out, rng, halo_in_mask=halo_in_mask)
        elif fam == "cluster":
            out, m = cluster(out, rng, halo_in_mask=halo_in_mask)
        elif fam == "draem":
            out, m = draem_blend(out, rng)
        elif fam == "film":
            if local_film_share > 0 and rng.random() < local_film_share:
                out, m = local_film(out, rng, crop_um_per_px)
            else:
                out, m = film(out, rng)
        else:
            out, m = chip(out, rng, fiber_center, crop_um_per_px)
        mask |= m
        if crack_out is not None:
            # a later feature painted over a crack takes those pixels
            crack_out &= ~m
            if fam == "crack":
                crack_out |= m
        fams.append(fam)
    return out.astype(np.float32), mask, fams
