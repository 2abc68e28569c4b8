#!/usr/bin/env python3
"""third_render.py - a third, independent renderer of fiber-optic connector end-face frames.

Written (session 29) by an engineer who had read only ../shared/docs (the IEC notes and the
dataset format) and looked at ../shared/reference-images, and had seen neither the station's
code nor its two other renderers (src/synth, scripts/alt_render.py): frames from a camera and
a renderer the model and the locator have never seen. Used only to measure them (models/
MODEL_CARD.md "A third renderer"); nothing is tuned on its held-out seeds. Grades with its own
implementation of the IEC tables (--self-test checks the class boundaries).

Writes an MVTec-style dataset (see dataset-format.md):

    .venv/bin/python scripts/third_render.py --out DIR --seed N [--good 50] [--per-kind 30] [--train-good 5]
    .venv/bin/python scripts/third_render.py --self-test

Everything is modelled in physical units (micrometres, axis of the fiber at the origin,
x to the right, y down) and only projected to pixels through the frame's calibration
(um_per_px_x, um_per_px_y, centre). Non-square pixels therefore come for free.

Pixel convention: pixel (col i, row j) has its centre at (x, y) = (i, j); "center" in
labels.jsonl uses that convention. bbox = [x0, y0, x1, y1] with x1/y1 exclusive
(x1 - x0 = width in pixels), taken from the defect's own mask pixels.

Sizes: a scratch's size is its width; any other defect's size is the max Feret diameter of
its geometric outline in micrometres. Zone = innermost zone the feature touches, with the
zone radii (half the IEC diameters) treated as inclusive upper bounds.
"""
import argparse
import io
import json
import math
import os
import sys
import tempfile
import time

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage
from scipy.special import erf

CLAD_R = 62.5        # um, cladding radius (125 um fiber)
CONTACT_R = 125.0    # um, radius of the 250 um contact zone
KINDS = ("scratch", "pit", "contamination", "chip")
INF = float("inf")

# --------------------------------------------------------------------------------------
# IEC 61300-3-35 (Ed.2) grading - data, not code
# --------------------------------------------------------------------------------------
# zones: (name, outer radius in um), radius = diameter / 2, upper bound inclusive
ZONES = {
    "sm-upc": (("A", 12.5), ("B", 57.5), ("C", 67.5), ("D", 125.0)),
    "sm-apc": (("A", 12.5), ("B", 57.5), ("C", 67.5), ("D", 125.0)),
    "mm": (("A", 32.5), ("B", 57.5), ("C", 67.5), ("D", 125.0)),
}
# each cell: list of size classes (lo, lo_inclusive, hi, hi_inclusive, max_count).
# A feature whose size falls in no class fails; a class holding more than max_count fails.
_NOLIMIT = ((0.0, True, INF, True, INF),)
_NONE = ()
CRITERIA = {
    "sm-upc": {
        "A": {"scratch": _NONE, "defect": _NONE},
        "B": {"scratch": ((0.0, True, 3.0, True, INF),),
              "defect": ((0.0, True, 2.0, False, INF), (2.0, True, 5.0, True, 5))},
        "C": {"scratch": _NOLIMIT, "defect": _NOLIMIT},
        "D": {"scratch": _NOLIMIT, "defect": ((0.0, True, 10.0, False, INF),)},
    },
    "sm-apc": {  # row "to confirm against the purchased standard"
        "A": {"scratch": ((0.0, True, 3.0, True, 4),), "defect": _NONE},
        "B": {"scratch": ((0.0, True, 3.0, True, INF),),
              "defect": ((0.0, True, 2.0, False, INF), (2.0, True, 5.0, True, 5))},
        "C": {"scratch": _NOLIMIT, "defect": _NOLIMIT},
        "D": {"scratch": _NOLIMIT, "defect": ((0.0, True, 10.0, False, INF),)},
    },
    "mm": {
        "A": {"scratch": ((0.0, True, 3.0, True, INF),),
              "defect": ((0.0, True, 5.0, True, 4),)},
        "B": {"scratch": ((0.0, True, 5.0, True, INF),),
              "defect": ((0.0, True, 5.0, False, INF), (5.0, True, 10.0, True, 5))},
        "C": {"scratch": _NOLIMIT, "defect": _NOLIMIT},
        "D": {"scratch": _NOLIMIT,
              "defect": ((0.0, True, 20.0, False, INF), (20.0, True, 30.0, True, 5))},
    },
}


def zone_of(profile, r_min_um):
    """Innermost zone touched by a feature whose nearest point is r_min_um from the axis.
    None when it lies entirely outside the contact zone (not graded)."""
    for name, rad in ZONES[profile]:
        if r_min_um <= rad:
            return name
    return None


def _in_class(size, cls):
    lo, lo_inc, hi, hi_inc, _ = cls
    ok_lo = size >= lo if lo_inc else size > lo
    ok_hi = size <= hi if hi_inc else size < hi
    return ok_lo and ok_hi


def grade(profile, defects):
    """IEC verdict for a list of {"kind", "zone", "size_um"}; returns (verdict, reasons)."""
    table = CRITERIA[profile]
    counts = {}
    reasons = []
    for d in defects:
        zone = d.get("zone")
        if zone not in table:
            continue  # outside the contact zone: not graded
        cat = "scratch" if d["kind"] == "scratch" else "defect"
        classes = table[zone][cat]
        size = float(d["size_um"])
        for ci, cls in enumerate(classes):
            if _in_class(size, cls):
                key = (zone, cat, ci)
                counts[key] = counts.get(key, 0) + 1
                break
        else:
            reasons.append("%s %.2f um in zone %s not allowed" % (cat, size, zone))
    for (zone, cat, ci), n in sorted(counts.items()):
        limit = table[zone][cat][ci][4]
        if n > limit:
            reasons.append("%d %ss of class %d in zone %s (max %s)" % (n, cat, ci, zone, limit))
    return ("fail" if reasons else "pass"), reasons


# --------------------------------------------------------------------------------------
# small geometry helpers (all in um)
# --------------------------------------------------------------------------------------
def feret_max(pts):
    pts = np.asarray(pts, float)
    if len(pts) < 2:
        return 0.0
    d = pts[:, None, :] - pts[None, :, :]
    return float(np.sqrt((d ** 2).sum(-1)).max())


def point_in_poly(x, y, poly):
    inside = False
    n = len(poly)
    for i in range(n):
        x1, y1 = poly[i]
        x2, y2 = poly[(i + 1) % n]
        if (y1 > y) != (y2 > y):
            xi = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
            if xi > x:
                inside = not inside
    return inside


def poly_rmin_rmax(poly):
    """Nearest and farthest distance of a closed polygon (outline + interior) to the axis."""
    p = np.asarray(poly, float)
    q = np.roll(p, -1, axis=0)
    e = q - p
    t = np.clip(-(p * e).sum(1) / np.maximum((e * e).sum(1), 1e-12), 0, 1)
    c = p + t[:, None] * e
    rmin = float(np.sqrt((c ** 2).sum(1)).min())
    if point_in_poly(0.0, 0.0, p):
        rmin = 0.0
    return rmin, float(np.sqrt((p ** 2).sum(1)).max())


def rand_periodic(rng, theta, nharm, decay=1.5, kmin=1):
    """Smooth random 2*pi-periodic function with unit std (over theta samples)."""
    f = np.zeros_like(theta)
    for k in range(kmin, nharm + 1):
        a, b = rng.normal(0, k ** -decay, 2)
        f += a * np.cos(k * theta) + b * np.sin(k * theta)
    s = f.std()
    return f / s if s > 1e-9 else f


def blob(rng, n=72, rough=0.15, nharm=8, decay=1.3, elong=1.0):
    """Irregular closed outline of unit max-Feret scale, centred at 0."""
    th = np.linspace(0, 2 * np.pi, n, endpoint=False)
    r = 1.0 + rough * rand_periodic(rng, th, nharm, decay, kmin=2)
    r = np.maximum(r, 0.25)
    x, y = r * np.cos(th) * elong, r * np.sin(th) / elong
    a = rng.uniform(0, np.pi)
    ca, sa = math.cos(a), math.sin(a)
    pts = np.stack([ca * x - sa * y, sa * x + ca * y], 1)
    return pts / feret_max(pts)


# --------------------------------------------------------------------------------------
# frame geometry: physical <-> pixels
# --------------------------------------------------------------------------------------
class Frame:
    def __init__(self, W, H, sx, sy, cx, cy, usable):
        self.W, self.H, self.sx, self.sy, self.cx, self.cy = W, H, sx, sy, cx, cy
        self.usable = usable  # (x0, y0, x1, y1) pixel range with real image content

    def grid(self, y0, y1, x0, x1):
        X = (np.arange(x0, x1, dtype=np.float64) - self.cx) * self.sx
        Y = (np.arange(y0, y1, dtype=np.float64) - self.cy) * self.sy
        return X[None, :], Y[:, None]

    def box(self, xmin, xmax, ymin, ymax, pad=3):
        x0 = int(math.floor(self.cx + xmin / self.sx)) - pad
        x1 = int(math.ceil(self.cx + xmax / self.sx)) + pad + 1
        y0 = int(math.floor(self.cy + ymin / self.sy)) - pad
        y1 = int(math.ceil(self.cy + ymax / self.sy)) + pad + 1
        return max(0, y0), min(self.H, y1), max(0, x0), min(self.W, x1)

    def poly_in_frame(self, poly, margin=3):
        px = self.cx + poly[:, 0] / self.sx
        py = self.cy + poly[:, 1] / self.sy
        ux0, uy0, ux1, uy1 = self.usable
        return (px.min() >= ux0 + margin and px.max() <= ux1 - 1 - margin and
                py.min() >= uy0 + margin and py.max() <= uy1 - 1 - margin)

    def raster_poly(self, poly, ss=4, pad=3):
        """Anti-aliased coverage of a polygon (um coords) -> (slices, alpha patch)."""
        px = self.cx + poly[:, 0] / self.sx
        py = self.cy + poly[:, 1] / self.sy
        x0 = max(0, int(math.floor(px.min())) - pad)
        x1 = min(self.W, int(math.ceil(px.max())) + pad + 1)
        y0 = max(0, int(math.floor(py.min())) - pad)
        y1 = min(self.H, int(math.ceil(py.max())) + pad + 1)
        if x1 <= x0 or y1 <= y0:
            return None, None
        img = Image.new("L", ((x1 - x0) * ss, (y1 - y0) * ss), 0)
        pts = list(zip(((px - x0 + 0.5) * ss - 0.5).tolist(), ((py - y0 + 0.5) * ss - 0.5).tolist()))
        ImageDraw.Draw(img).polygon(pts, fill=255)
        a = np.asarray(img, np.float32).reshape(y1 - y0, ss, x1 - x0, ss).mean((1, 3)) / 255.0
        return (slice(y0, y1), slice(x0, x1)), a


def gblur(a, sigma_um, fr):
    return ndimage.gaussian_filter(a, (sigma_um / fr.sy, sigma_um / fr.sx), mode="nearest")


def smooth_noise(rng, H, W, sig_px_y, sig_px_x):
    """Unit-std gaussian-correlated noise; large scales made on a coarse grid."""
    f = max(1, int(min(sig_px_x, sig_px_y) / 2.5))
    h, w = H // f + 3, W // f + 3
    n = ndimage.gaussian_filter(rng.standard_normal((h, w)).astype(np.float32),
                                (sig_px_y / f, sig_px_x / f), mode="wrap")
    n /= max(float(n.std()), 1e-6)
    if f > 1:
        n = ndimage.zoom(n, f, order=1)
    return n[:H, :W]


# --------------------------------------------------------------------------------------
# scene parameters
# --------------------------------------------------------------------------------------
SIZES = {"coax": ([(1152, 864), (1280, 960), (720, 576), (640, 480)], [0.45, 0.25, 0.15, 0.15]),
         "analog": ([(720, 576), (640, 480)], [0.7, 0.3]),
         "glow": ([(720, 576), (640, 480), (1152, 864)], [0.6, 0.2, 0.2]),
         "brightfiber": ([(1152, 864), (1280, 960), (720, 576), (640, 480)], [0.3, 0.2, 0.3, 0.2])}


def choose_scene(rng):
    st = rng.choice(["coax", "analog", "glow", "brightfiber"], p=[0.40, 0.20, 0.15, 0.25])
    sizes, p = SIZES[st]
    W, H = sizes[rng.choice(len(sizes), p=p)]
    fiber = "mm" if rng.random() < 0.45 else "sm-upc"
    s = dict(style=str(st), W=int(W), H=int(H), fiber=fiber)
    s["core_um"] = (50.0 if rng.random() < 0.6 else 62.5) if fiber == "mm" else 9.0
    # cladding diameter in px (x direction)
    dpx = {640: (200, 212), 720: (200, 248)}.get(W, (205, 300))
    Dx = rng.uniform(*dpx)
    sx = 125.0 / Dx
    p_ns = 0.6 if st == "analog" else (0.35 if W == 720 else 0.12)
    if rng.random() < p_ns:
        aspect = rng.uniform(1.05, 1.10) if rng.random() < 0.8 else rng.uniform(0.90, 0.95)
    else:
        aspect = 1.0
    sy = sx / aspect  # aspect > 1: fiber taller than wide in pixels
    s.update(sx=sx, sy=sy, aspect=aspect)
    # analog capture: black blanking columns / top line
    if st == "analog" or (st == "glow" and W == 720 and rng.random() < 0.6):
        s["border"] = (int(rng.integers(5, 12)), int(rng.integers(1, 3)), int(rng.integers(6, 14)))
    else:
        s["border"] = (0, 0, 0)
    bl, bt, br = s["border"]
    ux0, uy0, ux1, uy1 = bl, bt, W - br, H
    s["usable"] = (ux0, uy0, ux1, uy1)
    rx, ry = CONTACT_R / sx + 2, CONTACT_R / sy + 2
    cxs = (ux0 + rx, ux1 - 1 - rx)
    cys = (uy0 + ry, uy1 - 1 - ry)
    s["cx"] = rng.uniform(*cxs) if cxs[1] > cxs[0] else (ux0 + ux1 - 1) / 2 + rng.uniform(-3, 3)
    s["cy"] = rng.uniform(*cys) if cys[1] > cys[0] else (uy0 + uy1 - 1) / 2 + rng.uniform(-3, 3)
    s["cx"], s["cy"] = round(float(s["cx"]), 2), round(float(s["cy"]), 2)
    # optics / camera
    s["blur_um"] = rng.uniform(0.25, 0.6) if st != "analog" else rng.uniform(0.5, 0.95)
    if rng.random() < 0.15:
        s["blur_um"] += rng.uniform(0.1, 0.35)  # mildly defocused frames
    s["color"] = str(rng.choice(["L", "gray-rgb", "cast-rgb"], p=[0.4, 0.3, 0.3]))
    s["jpeg"] = int(rng.integers(70, 96)) if rng.random() < 0.35 else 0
    return s


def render_base(rng, fr, sc):
    """Radiance of a clean end face (float32, ~0..1) plus a per-pixel 'on ferrule' weight."""
    H, W = fr.H, fr.W
    X, Y = fr.grid(0, H, 0, W)
    R = np.sqrt(X ** 2 + Y ** 2).astype(np.float32)
    TH = np.arctan2(Y, X).astype(np.float32)
    st, fiber = sc["style"], sc["fiber"]
    R0 = CLAD_R

    def step(r, r0, w):  # 1 inside r0, 0 outside
        return 0.5 * (1 - erf((r - r0) / (w * 1.41421356)))

    if st == "coax":
        F, Cl = rng.uniform(0.66, 0.84), rng.uniform(0.27, 0.43)
    elif st == "analog":
        F, Cl = rng.uniform(0.50, 0.62), 0.0
        Cl = F * rng.uniform(0.72, 0.86)
    elif st == "glow":
        F = rng.uniform(0.45, 0.6)
        Cl = F * rng.uniform(0.62, 0.85)
    else:  # brightfiber
        F, Cl = rng.uniform(0.12, 0.30), rng.uniform(0.45, 0.70)
    sc["levels"] = (round(F, 3), round(Cl, 3))
    inside = step(R, R0, 0.3).astype(np.float32)

    # epoxy / bore gap ring, irregular width
    th = np.linspace(-np.pi, np.pi, 721)
    g0 = rng.uniform(0.3, 1.6)
    gth = g0 * np.clip(1 + rng.uniform(0.1, 0.45) * rand_periodic(rng, th, 10, 1.6), 0.2, None)
    G = np.interp(TH, th, gth).astype(np.float32)
    bore = step(R, R0 + G, 0.35).astype(np.float32)
    ring = np.clip(bore - inside, 0, 1)
    if st == "brightfiber":
        E = F * rng.uniform(0.3, 1.6)
    else:
        E = F * rng.uniform(0.25, 0.75)

    # ferrule: slight relief / shading near the bore, large-scale unevenness
    near = np.exp(-np.clip(R - R0, 0, None) / rng.uniform(8, 30)).astype(np.float32)
    Fimg = F * (1 + rng.uniform(-0.06, 0.05) * near)
    I = Fimg * (1 - bore) + E * ring + Cl * inside

    # glass: core, trench ring, edge band
    glass = np.full_like(R, Cl)
    rc = sc["core_um"] / 2
    if fiber == "mm":
        if st == "glow":
            cc = rng.uniform(0.7, 0.95) - Cl
            glass += cc * step(R, rc, rng.uniform(0.6, 2.0))
            glass += 0.08 * np.exp(-(R / (rc * 0.6)) ** 2)
        else:
            cc = rng.choice([-1, 1], p=[0.25, 0.75]) * rng.uniform(0.01, 0.08)
            glass += cc * step(R, rc, rng.uniform(0.6, 2.5))
        if rng.random() < 0.6:  # index trench ring
            rt = (0.58 if sc["core_um"] == 50 else 0.52) * R0 * rng.uniform(0.97, 1.03)
            glass += rng.choice([-1, 1]) * rng.uniform(0.006, 0.03) * np.exp(-0.5 * ((R - rt) / 0.6) ** 2)
    else:
        if st == "glow":
            glass += rng.uniform(0.2, 0.5) * np.exp(-0.5 * (R / rng.uniform(3, 6)) ** 2)
            glass += 0.05 * np.exp(-(R / 30.0) ** 2)
        elif rng.random() < 0.5:
            glass += rng.choice([-1, 1]) * rng.uniform(0.004, 0.03) * step(R, 4.5, 0.8)
    # darker band just inside the edge (bevel / edge roll-off)
    bw = rng.uniform(1.5, 6.0)
    glass *= 1 - rng.uniform(0.02, 0.18) * np.exp(-np.clip(R0 - R, 0, None) / bw)
    I += (glass - Cl) * inside
    # thin dark edge line and bright halo just outside the bore
    I -= rng.uniform(0.06 if st == "coax" else 0.02, 0.3) * F * np.exp(-0.5 * ((R - R0) / 0.45) ** 2)
    if st in ("coax", "glow") or rng.random() < 0.4:
        hw = rng.uniform(0.4, 1.2)
        I += rng.uniform(0.06 if st == "coax" else 0.03, 0.2) * np.exp(-0.5 * ((R - R0 - G - hw) / hw) ** 2)
    if rng.random() < 0.3:  # a second faint edge (double edge)
        I -= rng.uniform(0.01, 0.05) * np.exp(-0.5 * ((R - R0 - G - rng.uniform(2, 5)) / 0.5) ** 2)

    # textures: ceramic grain (blotchy, multi-scale) and smooth glass haze
    ferr = (R > R0 + G).astype(np.float32)
    tex = np.zeros_like(R)
    for s_um, amp in ((0.5, rng.uniform(0.004, 0.02)), (2.0, rng.uniform(0.005, 0.02)),
                      (7.0, rng.uniform(0.004, 0.018)), (25.0, rng.uniform(0.0, 0.015))):
        tex += amp * smooth_noise(rng, H, W, s_um / fr.sy, s_um / fr.sx)
    gtex = rng.uniform(0.001, 0.006) * smooth_noise(rng, H, W, 3 / fr.sy, 3 / fr.sx)
    I *= 1 + tex * ferr + gtex * inside
    return I.astype(np.float32), R, ferr


# --------------------------------------------------------------------------------------
# features
# --------------------------------------------------------------------------------------
class Scratch:
    """Circular arc (large radius => nearly straight), width w, along-length modulation."""

    def __init__(self, foot, d, phi, Rc, side, s0, s1, w):
        self.d, self.phi, self.w = d, phi, w
        u = np.array([math.cos(phi), math.sin(phi)])  # direction of the foot point from axis
        self.foot = foot
        self.C = foot + side * Rc * u
        self.Rc = Rc
        self.amid = math.atan2(foot[1] - self.C[1], foot[0] - self.C[0])
        self.s0, self.s1 = s0, s1

    def point(self, s):
        a = self.amid + s / self.Rc
        return np.stack([self.C[0] + self.Rc * np.cos(a), self.C[1] + self.Rc * np.sin(a)], -1)

    def dist_param(self, X, Y):
        dx, dy = X - self.C[0], Y - self.C[1]
        rr = np.sqrt(dx ** 2 + dy ** 2)
        da = np.arctan2(dy, dx) - self.amid
        da = (da + np.pi) % (2 * np.pi) - np.pi
        s = self.Rc * da
        sc = np.clip(s, self.s0, self.s1)
        perp = rr - self.Rc
        along = s - sc
        return np.sqrt(perp ** 2 + along ** 2), sc


def make_scratch_geom(rng, zone_lo, zone_hi, w, rmax=123.0, long_bias=0.7):
    d = rng.uniform(zone_lo, zone_hi)
    phi = rng.uniform(0, 2 * np.pi)
    foot = d * np.array([math.cos(phi), math.sin(phi)])
    Rc = math.exp(rng.uniform(math.log(150), math.log(20000)))
    side = rng.choice([-1.0, 1.0])
    sc = Scratch(foot, d, phi, Rc, side, -1, 1, w)
    ss = np.linspace(-260, 260, 1041)
    r = np.sqrt((sc.point(ss) ** 2).sum(-1))
    ok = r <= rmax - w / 2
    i0 = 520
    if not ok[i0]:
        return None
    lo = i0
    while lo > 0 and ok[lo - 1]:
        lo -= 1
    hi = i0
    while hi < len(ss) - 1 and ok[hi + 1]:
        hi += 1
    smin, smax = ss[lo], ss[hi]
    frac = rng.uniform(0.25, 1.0) if rng.random() > long_bias else rng.uniform(0.75, 1.0)
    L = max(8.0, frac * (smax - smin))
    # include the foot point most of the time so that the innermost point is the foot
    if rng.random() < 0.8:
        a = rng.uniform(max(smin, -L), min(0.0, smax - L)) if min(0.0, smax - L) > max(smin, -L) else smin
        s0, s1 = a, min(smax, a + L)
    else:
        a = rng.uniform(smin, max(smin, smax - L))
        s0, s1 = a, min(smax, a + L)
    if s1 - s0 < 6:
        return None
    sc.s0, sc.s1 = float(s0), float(s1)
    return sc


def scratch_modulation(rng, L, w):
    n = max(8, int(L / 0.25))
    s = np.linspace(0, L, n)
    m = np.ones(n)
    if w < 2.0:
        mode = rng.choice(["solid", "broken", "speckled", "faded"], p=[0.25, 0.3, 0.3, 0.15])
    else:
        mode = rng.choice(["solid", "broken", "faded"], p=[0.5, 0.15, 0.35])
    if mode in ("broken", "speckled"):
        pos = 0.0
        on = True
        while pos < L:
            seg = rng.uniform(4, 40) if on else rng.uniform(0.8, 6)
            if not on:
                m[(s >= pos) & (s < pos + seg)] = 0.0
            pos += seg
            on = not on
    if mode == "speckled":
        k = max(3, int(L / rng.uniform(0.6, 1.5)))
        spk = np.interp(s, np.sort(rng.uniform(0, L, k)), rng.uniform(0.0, 1.0, k) ** 0.7)
        m *= np.clip(0.25 + spk, 0, 1)
    if mode == "faded":
        m *= np.clip(0.35 + 0.65 * np.interp(s, np.linspace(0, L, 5), rng.uniform(0, 1, 5)), 0, 1)
    # soft ends
    te = rng.uniform(1, 8)
    m *= np.clip(np.minimum(s, L - s) / te, 0, 1) ** 0.7
    return s, m


def render_scratch(I, fr, rng, sc, contrast, bright, mask_thr_px=0.6):
    pts = sc.point(np.linspace(sc.s0, sc.s1, 200))
    pad = sc.w + 3
    y0, y1, x0, x1 = fr.box(pts[:, 0].min() - pad, pts[:, 0].max() + pad,
                            pts[:, 1].min() - pad, pts[:, 1].max() + pad)
    X, Y = fr.grid(y0, y1, x0, x1)
    dist, sp = sc.dist_param(X, Y)
    L = sc.s1 - sc.s0
    s_tab, m_tab = scratch_modulation(rng, L, sc.w)
    m = np.interp(sp - sc.s0, s_tab, m_tab)
    pix = max(fr.sx, fr.sy)
    sig = math.sqrt(0.25 ** 2 + (0.4 * pix) ** 2)
    hw = sc.w / 2
    prof = 0.5 * (erf((hw - dist) / (sig * 1.41421356)) + erf((hw + dist) / (sig * 1.41421356)))
    if sc.w > 2.0:  # a wide groove: darker walls, partly reflecting floor
        walls = np.exp(-0.5 * ((dist - hw + 0.4) / max(sig, 0.45)) ** 2)
        fill = rng.uniform(0.3, 0.8)
        prof = np.clip(fill * prof + (1 - fill) * walls * (dist < hw + 2 * sig), 0, 1)
    eff = (contrast * prof * m).astype(np.float32)
    sl = (slice(y0, y1), slice(x0, x1))
    if bright:
        I[sl] += eff * (1.05 - I[sl]).clip(0.05, None)
    else:
        I[sl] *= 1 - eff
        if rng.random() < 0.3:  # faint bright flank (edge diffraction)
            fl = np.exp(-0.5 * ((dist - hw - 1.2 * sig) / sig) ** 2) * m
            I[sl] += (0.15 * contrast * fl).astype(np.float32) * I[sl]
    thr = max(hw, mask_thr_px * pix)
    mk = (dist <= thr) & (m > 0.3)
    # innermost visible point
    s_fine = np.linspace(sc.s0, sc.s1, max(50, int(L / 0.2)))
    mv = np.interp(s_fine - sc.s0, s_tab, m_tab) > 0.3
    if not mv.any():
        return None
    r = np.sqrt((sc.point(s_fine[mv]) ** 2).sum(-1))
    return sl, mk, float(r.min() - hw), float(r.max() + hw)


def place_compact(rng, fr, poly_unit, size, zone_lo, zone_hi, placed, rmax=123.5, margin=1.0,
                  tries=40, angle=None, gap=1.5, near=None):
    """Scale a unit outline to `size` and put it so its innermost point lies in [lo, hi]."""
    poly0 = poly_unit * size
    for _ in range(tries):
        target = rng.uniform(zone_lo, zone_hi)
        phi = rng.uniform(0, 2 * np.pi) if angle is None else angle
        u = np.array([math.cos(phi), math.sin(phi)])
        if near is not None:  # member of a cluster around point `near`
            poly = poly0 + near + rng.normal(0, near_spread(size), 2)
            rmin, rmx = poly_rmin_rmax(poly)
            zone_ok = zone_lo <= rmin <= zone_hi
            if rmx > rmax or not zone_ok or not fr.poly_in_frame(poly):
                continue
            cc = poly.mean(0)
            rad = np.sqrt(((poly - cc) ** 2).sum(1)).max()
            if any(np.hypot(*(cc - pc)) < rad + pr + 0.8 for pc, pr in placed):
                continue
            placed.append((cc, rad))
            return poly, rmin, rmx
        c = (target + size / 2) * u
        poly = poly0 + c
        for _ in range(3):
            rmin, rmx = poly_rmin_rmax(poly)
            if rmin <= 0:
                break
            poly = poly + (target - rmin) * u
        rmin, rmx = poly_rmin_rmax(poly)
        if rmx > rmax or not (zone_lo - 1e-6 <= rmin <= zone_hi + 1e-6):
            continue
        if not fr.poly_in_frame(poly):
            continue
        cc = poly.mean(0)
        rad = np.sqrt(((poly - cc) ** 2).sum(1)).max()
        if any(np.hypot(*(cc - pc)) < rad + pr + gap for pc, pr in placed):
            continue
        placed.append((cc, rad))
        return poly, rmin, rmx
    return None


def near_spread(size):
    return 3.0 + 1.2 * size


def render_pit(I, fr, rng, poly, sizeum):
    sl, a = fr.raster_poly(poly)
    if sl is None:
        return None
    c = poly.mean(0)
    X, Y = fr.grid(sl[0].start, sl[0].stop, sl[1].start, sl[1].stop)
    rho = np.sqrt((X - c[0]) ** 2 + (Y - c[1]) ** 2) / (sizeum / 2)
    bowl = (0.65 + 0.35 * np.clip(1 - rho ** 2, 0, 1)).astype(np.float32)
    contrast = rng.uniform(0.15, 0.75)
    I[sl] *= 1 - contrast * a * bowl
    if rng.random() < 0.4:  # faint bright rim
        ring = np.clip(gblur(a, 0.5, fr) * 1.6 - a * 1.6, 0, 1)
        I[sl] += rng.uniform(0.04, 0.15) * ring * (1.05 - I[sl]).clip(0, None)
    return sl, a >= 0.5


def render_particle(I, fr, rng, poly, film=False):
    sl, a = fr.raster_poly(poly)
    if sl is None:
        return None
    patch = I[sl]
    if film:
        es = rng.uniform(1.0, 4.0)
        soft = gblur(a, es, fr)
        c = rng.uniform(0.07, 0.2) * rng.choice([-1, 1], p=[0.35, 0.65])
        if float(patch.mean()) < 0.35:  # on a dark surface a film shows as a brighter haze
            c = -rng.uniform(0.15, 0.4)
        # a liquid film fills the surface texture: locally smoother, slightly shifted level
        smooth = gblur(patch, rng.uniform(1.0, 2.5), fr)
        k = rng.uniform(0.5, 1.0) * soft
        patch = patch * (1 - k) + smooth * k
        grad = 1 + 0.4 * (smooth_noise(rng, a.shape[0], a.shape[1], 6 / fr.sy, 6 / fr.sx))
        patch *= 1 - c * soft * grad.astype(np.float32)
        if rng.random() < 0.7:  # meniscus / residue rim
            gy, gx = np.gradient(soft)
            rim = np.sqrt(gx ** 2 + gy ** 2)
            rim /= max(float(rim.max()), 1e-6)
            patch *= 1 - rng.uniform(0.02, 0.12) * rim
    else:
        typ = rng.choice(["opaque", "transparent", "bright"], p=[0.5, 0.3, 0.2])
        tex = (1 + 0.25 * smooth_noise(rng, a.shape[0], a.shape[1], 0.8 / fr.sy, 0.8 / fr.sx)).astype(np.float32)
        if typ == "opaque":
            patch *= 1 - rng.uniform(0.3, 0.9) * a * np.clip(tex, 0.5, 1.2)
        elif typ == "transparent":
            inner = gblur(a, 0.9, fr)
            rim = np.clip((a - inner) * 2.5, 0, 1)
            patch *= 1 - a * rng.uniform(0.05, 0.3) * tex - rim * rng.uniform(0.3, 0.7)
        else:
            patch += a * rng.uniform(0.2, 0.7) * (1.1 - patch).clip(0.05, None) * np.clip(tex, 0.6, 1.3)
            patch *= 1 - 0.4 * np.clip((a - gblur(a, 0.6, fr)) * 2.5, 0, 1)
        if rng.random() < 0.5:  # defocus halo around the particle
            halo = np.clip(gblur(a, rng.uniform(1.0, 2.5), fr) - a, 0, 1)
            patch += rng.uniform(0.1, 0.4) * halo * (1.05 - patch).clip(0, None)
    I[sl] = patch
    return sl, a >= 0.5


def chip_params(rng, n=40):
    t = np.linspace(-1, 1, n)
    prof = (1 - np.abs(t) ** rng.uniform(1.6, 4.0)) ** rng.uniform(0.25, 0.8)
    prof *= 1 + rng.uniform(-0.35, 0.35) * t
    jag = 1 + rng.uniform(0.05, 0.25) * rand_periodic(rng, np.pi * (t + 1), 9, 0.8)
    shape = prof * jag
    return t, shape / max(float(shape.max()), 1e-6)


def chip_poly(params, phi, L, D):
    """Notch bitten into the cladding edge at angle phi: tangential length L, depth D (um).
    Returns (render outline, measurement outline closed on the cladding circle)."""
    t, shape = params
    half = (L / 2) / CLAD_R
    depth = np.clip(D * shape, 0.05 * D, None)
    ang = phi + half * t
    inner = np.stack([(CLAD_R - depth) * np.cos(ang), (CLAD_R - depth) * np.sin(ang)], 1)
    outer_a = np.linspace(phi + half, phi - half, 12)
    outer = np.stack([(CLAD_R + 0.4) * np.cos(outer_a), (CLAD_R + 0.4) * np.sin(outer_a)], 1)
    meas_outer = outer * (CLAD_R / (CLAD_R + 0.4))
    return np.vstack([inner, outer]), np.vstack([inner, meas_outer])


def render_chip(I, fr, rng, poly, phi):
    sl, a = fr.raster_poly(poly)
    if sl is None:
        return None
    patch = I[sl]
    c = rng.uniform(0.2, 0.7)
    tex = (1 + 0.3 * smooth_noise(rng, a.shape[0], a.shape[1], 0.7 / fr.sy, 0.7 / fr.sx)).astype(np.float32)
    patch *= 1 - c * a * np.clip(tex, 0.6, 1.3)
    # bright glint along part of the fractured inner boundary
    rim = np.clip((gblur(a, 0.6, fr) - a) * 3, 0, 1)
    X, Y = fr.grid(sl[0].start, sl[0].stop, sl[1].start, sl[1].stop)
    R = np.sqrt(X ** 2 + Y ** 2)
    rim *= (R < CLAD_R - 0.3)
    dth = (np.arctan2(Y, X) - phi + np.pi) % (2 * np.pi) - np.pi
    dirw = np.clip(0.5 + rng.choice([-1, 1]) * dth * CLAD_R / 4.0, 0, 1)
    patch += rng.uniform(0.05, 0.3) * rim * dirw * (1.05 - patch).clip(0, None)
    I[sl] = patch
    return sl, a >= 0.5


# --------------------------------------------------------------------------------------
# planning: which defects go in a frame
# --------------------------------------------------------------------------------------
def zone_bounds(profile, zone, margin=1.0):
    """Allowed range of a feature's innermost radius for it to be graded in `zone`."""
    names = [z for z, _ in ZONES[profile]]
    i = names.index(zone)
    lo = 0.0 if i == 0 else ZONES[profile][i - 1][1] + margin
    hi = ZONES[profile][i][1] - margin
    return lo, hi


# recipe item: (count_lo, count_hi, zone, size_lo, size_hi [, subtype])
RECIPES = {
    ("scratch", "sm-upc"): {
        "pass": [[(1, 3, "B", 0.5, 2.8)], [(1, 3, "D", 0.5, 6.0), (0, 2, "C", 0.5, 6.0)],
                 [(4, 9, "rinkB", 0.5, 1.5)]],
        "fail": [[(1, 1, "A", 0.5, 6.0)], [(1, 1, "B", 3.3, 6.0)], [(1, 1, "A", 0.5, 2.0), (0, 3, "B", 0.5, 2.5)]],
    },
    ("scratch", "mm"): {
        "pass": [[(1, 3, "A", 0.5, 2.8)], [(1, 3, "B", 0.5, 4.7)], [(1, 4, "D", 0.5, 6.0), (0, 2, "C", 0.5, 6.0)],
                 [(4, 9, "rinkA", 0.5, 2.0)]],
        "fail": [[(1, 1, "A", 3.3, 6.0)], [(1, 1, "B", 5.4, 6.0)], [(1, 1, "A", 3.3, 5.0), (0, 3, "B", 0.5, 4.5)]],
    },
    ("pit", "sm-upc"): {
        "pass": [[(1, 4, "D", 1.0, 9.4)], [(1, 3, "B", 1.0, 1.85), (0, 2, "D", 1.0, 9.0)],
                 [(2, 5, "B", 2.15, 4.75)], [(1, 3, "C", 1.5, 8.0)]],
        "fail": [[(1, 1, "A", 1.0, 6.0)], [(1, 2, "B", 5.4, 12.0)], [(6, 8, "B", 2.15, 4.75)],
                 [(1, 2, "D", 10.6, 12.0)]],
    },
    ("pit", "mm"): {
        "pass": [[(1, 4, "A", 1.0, 4.75)], [(1, 6, "B", 1.0, 4.7)], [(1, 5, "B", 5.3, 9.5)],
                 [(1, 5, "D", 1.0, 12.0)], [(1, 3, "C", 1.5, 10.0)]],
        "fail": [[(1, 1, "A", 5.4, 12.0)], [(5, 6, "A", 1.5, 4.7)], [(1, 2, "B", 10.6, 12.0)],
                 [(6, 7, "B", 5.3, 9.5)]],
    },
    ("contamination", "sm-upc"): {
        "pass": [[(1, 5, "D", 1.0, 9.4)], [(1, 5, "B", 2.1, 4.7)], [(1, 4, "B", 1.0, 1.85), (0, 3, "D", 1.0, 9.0)],
                 [(1, 2, "C", 2.0, 25.0)]],
        "fail": [[(1, 1, "A", 2.0, 25.0)], [(1, 2, "B", 5.5, 30.0)], [(6, 9, "clusterB", 2.1, 4.7)],
                 [(1, 2, "D", 10.6, 30.0)], [(1, 1, "filmD", 10.6, 60.0)], [(1, 1, "filmB", 12.0, 80.0)]],
    },
    ("contamination", "mm"): {
        "pass": [[(1, 6, "D", 1.0, 19.0)], [(1, 3, "D", 20.6, 29.4)], [(1, 6, "B", 1.0, 4.7)],
                 [(1, 5, "B", 5.3, 9.5)], [(1, 4, "A", 1.0, 4.7)], [(1, 1, "filmD", 10.0, 19.0)]],
        "fail": [[(1, 1, "A", 5.5, 25.0)], [(1, 1, "B", 10.6, 30.0)], [(6, 8, "clusterB", 5.3, 9.5)],
                 [(1, 1, "filmD", 31.0, 70.0)], [(6, 7, "D", 20.6, 29.0)], [(1, 1, "filmB", 12.0, 80.0)]],
    },
    ("chip", "sm-upc"): {
        "pass": [[(1, 3, "C", 3.0, 25.0)]],
        "fail": [[(1, 2, "B", 9.0, 25.0), (0, 2, "C", 3.0, 20.0)]],
    },
    ("chip", "mm"): {
        "pass": [[(1, 3, "C", 3.0, 25.0)], [(1, 4, "B", 8.3, 9.6), (0, 2, "C", 3.0, 15.0)]],
        "fail": [[(1, 2, "B", 10.8, 25.0), (0, 2, "C", 3.0, 20.0)]],
    },
}


def plan_items(rng, kind, profile, want_fail):
    key = (kind, "mm" if profile == "mm" else "sm-upc")
    book = RECIPES[key]
    recipe = book["fail" if want_fail else "pass"]
    items = list(recipe[rng.integers(len(recipe))])
    if want_fail and rng.random() < 0.4:  # harmless company
        p = book["pass"]
        items += [it for it in p[rng.integers(len(p))] if not it[2].startswith("rink")][:1]
    out = []
    for it in items:
        n = int(rng.integers(it[0], it[1] + 1))
        out += [(it[2], it[3], it[4])] * n
    return out


# --------------------------------------------------------------------------------------
# frame rendering
# --------------------------------------------------------------------------------------
def ferrule_decor(I, fr, rng, R, sc):
    """Features outside the 250 um contact zone: polish scratches, dust. Never labelled."""
    H, W = fr.H, fr.W
    ss = 2
    canv = Image.new("F", (W * ss, H * ss), 0.0)
    dr = ImageDraw.Draw(canv)
    nset = int(rng.choice([0, 0, 1, 1, 2, 3]))
    for _ in range(nset):
        base_dir = rng.uniform(0, np.pi)
        nline = int(rng.integers(1, 12))
        base_d = rng.uniform(135, 320)
        curv = rng.choice([0.0, 1.0]) * rng.uniform(1 / 3000, 1 / 400)
        for _k in range(nline):
            phi = base_dir + rng.normal(0, 0.03)
            d = base_d + rng.normal(0, 8) + _k * rng.uniform(0.5, 4)
            if abs(d) < 133:
                continue
            u = np.array([math.cos(phi), math.sin(phi)])
            t = np.array([-u[1], u[0]])
            s = np.linspace(-700, 700, 400)
            pts = d * u + s[:, None] * t + (0.5 * curv * s ** 2)[:, None] * u
            r = np.sqrt((pts ** 2).sum(1))
            keep = r > 132
            val = rng.uniform(0.02, 0.12)
            wpx = 1 if rng.random() < 0.8 else 2
            px = (fr.cx + pts[:, 0] / fr.sx + 0.5) * ss - 0.5
            py = (fr.cy + pts[:, 1] / fr.sy + 0.5) * ss - 0.5
            seg_on = rng.random(len(s)) > rng.uniform(0.0, 0.3)
            for i in range(len(s) - 1):
                if keep[i] and keep[i + 1] and seg_on[i]:
                    dr.line([(px[i], py[i]), (px[i + 1], py[i + 1])], fill=float(val), width=wpx)
    a = np.asarray(canv, np.float32).reshape(H, ss, W, ss).mean((1, 3))
    if nset:
        a = ndimage.gaussian_filter(a, 0.5) * (R > 128)
        I *= 1 - a
    # dust / debris on the ferrule beyond the contact zone
    ndust = int(rng.integers(0, 25))
    placed = []
    for _ in range(ndust):
        size = float(np.exp(rng.uniform(np.log(1.0), np.log(15.0))))
        poly = blob(rng, rough=rng.uniform(0.1, 0.3), elong=rng.uniform(1, 1.6)) * size
        c = rng.uniform([-fr.cx * fr.sx, -fr.cy * fr.sy], [(fr.W - fr.cx) * fr.sx, (fr.H - fr.cy) * fr.sy])
        poly = poly + c
        rmin, _ = poly_rmin_rmax(poly)
        if rmin < 132 or not fr.poly_in_frame(poly, margin=1):
            continue
        render_particle(I, fr, rng, poly, film=False)


def render_frame(rng, kind, want_fail):
    sc = choose_scene(rng)
    fr = Frame(sc["W"], sc["H"], sc["sx"], sc["sy"], sc["cx"], sc["cy"], sc["usable"])
    profile = sc["fiber"]
    I, R, ferr = render_base(rng, fr, sc)
    ferrule_decor(I, fr, rng, R, sc)
    mask = np.zeros((fr.H, fr.W), bool)
    defects = []
    if kind != "good":
        items = plan_items(rng, kind, profile, want_fail)
        placed = []
        rink_dir = rng.uniform(0, 2 * np.pi)
        cluster_c = None
        for zone_tag, slo, shi in items:
            size = float(np.exp(rng.uniform(np.log(slo), np.log(shi))))
            res = None
            if kind == "scratch":
                zone = zone_tag.replace("rink", "")
                lo, hi = zone_bounds(profile, zone)
                if zone_tag.startswith("rink"):
                    lo, hi = 0.0, zone_bounds(profile, "D")[1] - 5
                for _ in range(30):
                    g = make_scratch_geom(rng, lo, hi, size)
                    if g is None:
                        continue
                    if zone_tag.startswith("rink"):
                        # polishing "skating rink": many fine near-parallel scratches
                        g = Scratch(*_rink_geom(rng, rink_dir, lo, hi, size))
                        if g.s1 - g.s0 < 6:
                            continue
                    contrast = rng.uniform(0.07, 0.45) if size > 1 else rng.uniform(0.15, 0.6)
                    if size > 3:
                        contrast *= 0.75
                    bright = rng.random() < 0.25
                    Itry = I.copy()
                    out = render_scratch(Itry, fr, rng, g, contrast, bright)
                    if out is None:
                        continue
                    sl, mk, rmin, rmx = out
                    z = zone_of(profile, rmin)
                    if z is None or rmx > 124.5 or _near_boundary(profile, rmin):
                        continue
                    if zone_tag.startswith("rink") and z == "A" and profile != "mm":
                        continue
                    if not zone_tag.startswith("rink") and z != zone:
                        continue
                    if not mk.any():
                        continue
                    I = Itry
                    res = (sl, mk, z, round(size, 2))
                    break
            elif kind in ("pit", "contamination"):
                film = zone_tag.startswith("film")
                clus = zone_tag.startswith("cluster")
                zone = zone_tag.replace("film", "").replace("cluster", "")
                lo, hi = zone_bounds(profile, zone)
                if film:
                    unit = blob(rng, n=90, rough=rng.uniform(0.08, 0.25), nharm=4, decay=1.5,
                                elong=rng.uniform(1.0, 1.25))
                elif kind == "pit":
                    unit = blob(rng, n=40, rough=rng.uniform(0.02, 0.08), nharm=5, elong=rng.uniform(1.0, 1.2))
                elif rng.random() < 0.12 and size > 8:
                    unit = _lint_unit(rng)
                else:
                    unit = blob(rng, rough=rng.uniform(0.08, 0.35), nharm=10, elong=rng.uniform(1.0, 1.8))
                near = None
                if clus:
                    if cluster_c is None:
                        ca = rng.uniform(0, 2 * np.pi)
                        cr = rng.uniform(lo + 6, hi - 6)
                        cluster_c = cr * np.array([math.cos(ca), math.sin(ca)])
                    near = cluster_c
                pl = place_compact(rng, fr, unit, size, lo, hi, placed, near=near)
                if pl is not None:
                    poly, rmin, rmx = pl
                    if not _near_boundary(profile, rmin):
                        if kind == "pit":
                            out = render_pit(I, fr, rng, poly, size)
                        else:
                            out = render_particle(I, fr, rng, poly, film=film)
                        if out is not None and out[1].any():
                            res = (out[0], out[1], zone_of(profile, rmin), round(feret_max(poly), 2))
            elif kind == "chip":
                for _ in range(40):
                    if zone_tag == "C":
                        D = rng.uniform(0.8, 4.0)
                    else:
                        D = rng.uniform(6.0, min(12.0, max(6.2, 0.6 * size)))
                    phi = rng.uniform(0, 2 * np.pi)
                    L = size
                    prm = chip_params(rng)
                    poly, meas = chip_poly(prm, phi, L, D)
                    f = feret_max(meas)
                    # rescale tangential length so the Feret hits the planned size
                    poly, meas = chip_poly(prm, phi, L * size / max(f, 1e-6), D)
                    f = feret_max(meas)
                    rmin, rmx = poly_rmin_rmax(meas)
                    if _near_boundary(profile, rmin) or zone_of(profile, rmin) != zone_tag:
                        continue
                    if not (slo - 0.05 <= f <= shi + 0.05) and zone_tag == "B":
                        continue
                    cc = np.array([math.cos(phi), math.sin(phi)]) * CLAD_R
                    rad = f / 2 + 1
                    if any(np.hypot(*(cc - pc)) < rad + pr + 2 for pc, pr in placed):
                        continue
                    if not fr.poly_in_frame(poly):
                        continue
                    out = render_chip(I, fr, rng, poly, phi)
                    if out is None or not out[1].any():
                        continue
                    placed.append((cc, rad))
                    res = (out[0], out[1], zone_of(profile, rmin), round(f, 2))
                    break
            if res is None:
                continue
            sl, mk, z, sz = res
            ys, xs = np.nonzero(mk)
            y0, x0 = sl[0].start, sl[1].start
            mask[sl] |= mk
            defects.append({"kind": kind, "zone": z, "size_um": sz,
                            "bbox": [int(x0 + xs.min()), int(y0 + ys.min()),
                                     int(x0 + xs.max() + 1), int(y0 + ys.max() + 1)]})
    img = camera(I, fr, rng, sc)
    verdict, reasons = grade(profile, defects)
    sc["plan"] = "good" if kind == "good" else ("fail" if want_fail else "pass")
    return sc, img, mask, defects, verdict, reasons


def _near_boundary(profile, rmin, m=0.9):
    return any(abs(rmin - rad) < m for _, rad in ZONES[profile][:3])


def _rink_geom(rng, rink_dir, lo, hi, w):
    d = rng.uniform(lo, hi)
    phi = rink_dir + rng.normal(0, 0.05) + (np.pi if rng.random() < 0.5 else 0)
    foot = d * np.array([math.cos(phi), math.sin(phi)])
    Rc = rng.uniform(2000, 20000)
    half = math.sqrt(max(1.0, (120.0 - w) ** 2 - d ** 2))
    L = rng.uniform(0.3, 1.0) * 2 * half
    s0 = rng.uniform(-half, half - L) if 2 * half - L > 0 else -half
    return foot, d, phi, Rc, 1.0, float(s0), float(s0 + L), w


def _lint_unit(rng):
    """Thin curved fibre (lint) outline, unit Feret."""
    n = 30
    t = np.linspace(0, 1, n)
    bend = rng.uniform(-0.4, 0.4)
    cx_ = t
    cy_ = bend * (t - 0.5) ** 2 * 2 + 0.03 * rand_periodic(rng, t * 2 * np.pi, 3)
    wdt = rng.uniform(0.06, 0.15)
    tx, ty = np.gradient(cx_), np.gradient(cy_)
    nn = np.sqrt(tx ** 2 + ty ** 2)
    nx, ny = -ty / nn, tx / nn
    left = np.stack([cx_ + nx * wdt / 2, cy_ + ny * wdt / 2], 1)
    right = np.stack([cx_ - nx * wdt / 2, cy_ - ny * wdt / 2], 1)[::-1]
    pts = np.vstack([left, right])
    pts -= pts.mean(0)
    a = rng.uniform(0, np.pi)
    ca, sa = math.cos(a), math.sin(a)
    pts = pts @ np.array([[ca, sa], [-sa, ca]])
    return pts / feret_max(pts)


def camera(I, fr, rng, sc):
    H, W = fr.H, fr.W
    st = sc["style"]
    if st == "analog" or rng.random() < 0.15:  # relief / oblique-light look
        k = rng.uniform(1.5, 5.0) if st == "analog" else rng.uniform(0.8, 2.5)
        sm = gblur(I, 0.8, fr)
        gy, gx = np.gradient(sm)
        a = rng.uniform(0, 2 * np.pi)
        I = I + k * (gx / fr.sx * math.cos(a) + gy / fr.sy * math.sin(a))
    I = gblur(I, sc["blur_um"], fr)
    # illumination: vignetting, gradient, hotspot
    yy = (np.arange(H, dtype=np.float32)[:, None] - H / 2) / (W / 2)
    xx = (np.arange(W, dtype=np.float32)[None, :] - W / 2) / (W / 2)
    ox, oy = rng.uniform(-0.3, 0.3, 2)
    vig = rng.uniform(0.0, 0.12) if st in ("coax", "brightfiber") else rng.uniform(0.12, 0.35)
    illum = 1 - vig * ((xx - ox) ** 2 + (yy - oy) ** 2)
    ga = rng.uniform(0, 2 * np.pi)
    illum *= 1 + rng.uniform(0, 0.12) * (xx * math.cos(ga) + yy * math.sin(ga))
    if rng.random() < 0.3:
        hx, hy = rng.uniform(-0.4, 0.4, 2)
        illum *= 1 + rng.uniform(0.03, 0.12) * np.exp(-((xx - hx) ** 2 + (yy - hy) ** 2) / 0.3)
    I = I * illum
    if st == "analog":  # analog bandwidth: horizontal smear
        I = ndimage.gaussian_filter1d(I, rng.uniform(0.5, 1.0), axis=1)
    gain = rng.uniform(0.88, 1.12)
    gamma = rng.uniform(0.85, 1.15)
    S = 255.0 * gain * np.clip(I, 0, 1.3) ** gamma
    k_shot, r_read = rng.uniform(0.02, 0.25), rng.uniform(0.4, 2.0)
    sig = np.sqrt(k_shot * S + r_read ** 2).astype(np.float32)
    row = rng.normal(0, rng.uniform(0.2, 1.0), (H, 1)).astype(np.float32) if st == "analog" else 0.0
    col = sc["color"]
    if col == "L":
        out = S + sig * rng.standard_normal((H, W), dtype=np.float32) + row
    else:
        if col == "gray-rgb":
            gains = np.ones(3)
        else:
            casts = [(1.0, 0.95, 0.85), (0.88, 0.96, 1.0), (0.94, 1.0, 0.92), (1.0, 0.92, 0.96)]
            gains = np.array(casts[rng.integers(len(casts))]) * rng.uniform(0.97, 1.03, 3)
        shared = rng.standard_normal((H, W), dtype=np.float32)
        rho = rng.uniform(0.5, 0.9) if col == "cast-rgb" else 1.0
        chans = []
        for c in range(3):
            nz = shared if rho >= 1.0 else rho * shared + math.sqrt(1 - rho ** 2) * rng.standard_normal((H, W), dtype=np.float32)
            chans.append(S * gains[c] + sig * nz + row)
        out = np.stack(chans, -1)
    out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    bl, bt, br = sc["border"]
    if bl or bt or br:
        dark = rng.integers(10, 30)
        if bl:
            out[:, :bl] = np.clip(dark + rng.normal(0, 3, bl).reshape(1, -1, *([1] * (out.ndim - 2))), 0, 255).astype(np.uint8)
        if br:
            out[:, W - br:] = np.clip(dark - 5 + rng.normal(0, 3, br).reshape(1, -1, *([1] * (out.ndim - 2))), 0, 255).astype(np.uint8)
        if bt:
            out[:bt] = dark
    return out


# --------------------------------------------------------------------------------------
# dataset writer
# --------------------------------------------------------------------------------------
def save_image(img, path_noext, sc, allow_jpg):
    im = Image.fromarray(img, "L" if img.ndim == 2 else "RGB")
    if sc["jpeg"]:
        if allow_jpg:
            path = path_noext + ".jpg"
            im.save(path, quality=sc["jpeg"])
            return path
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=sc["jpeg"])
        buf.seek(0)
        im = Image.open(buf)
        im.load()
    path = path_noext + ".png"
    im.save(path, compress_level=3)
    return path


def label_record(rel, sc, defects, verdict):
    return {"image": rel, "fiber": sc["fiber"],
            "um_per_px": round(sc["sx"], 5), "um_per_px_x": round(sc["sx"], 5),
            "um_per_px_y": round(sc["sy"], 5),
            "center": [sc["cx"], sc["cy"]], "cladding_radius_px": round(CLAD_R / sc["sx"], 2),
            "verdict": verdict, "defects": defects,
            "style": sc["style"], "frame": [sc["W"], sc["H"]], "core_um": sc["core_um"],
            "planned": sc["plan"]}


def build(out, seed, n_good, per_kind, n_train=5, p_fail=0.75, log=True):
    t0 = time.time()
    for sub in ["train/good", "test/good"] + ["test/" + k for k in KINDS] + ["ground_truth/" + k for k in KINDS]:
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    import re
    pat = re.compile(r"^\d{4}(_mask)?\.(png|jpg)$")
    for sub in ["train/good", "test/good"] + ["test/" + k for k in KINDS] + ["ground_truth/" + k for k in KINDS]:
        for fn in os.listdir(os.path.join(out, sub)):  # stale frames of an earlier run
            if pat.match(fn):
                os.remove(os.path.join(out, sub, fn))
    labels = []
    stats = {}
    jobs = [("train", "good", i) for i in range(n_train)] + [("test", "good", i) for i in range(n_good)]
    jobs += [("test", k, i) for k in KINDS for i in range(per_kind)]
    kind_id = {"good": 0, "scratch": 1, "pit": 2, "contamination": 3, "chip": 4}
    fail_set = {}
    for k in KINDS:  # exactly round(p_fail * n) frames of each kind are planned to fail
        perm = np.random.default_rng([seed, 2, kind_id[k]]).permutation(per_kind)
        fail_set[k] = set(perm[:int(round(p_fail * per_kind))].tolist())
    for split, kind, i in jobs:
        rng = np.random.default_rng([seed, 0 if split == "train" else 1, kind_id[kind], i])
        want_fail = i in fail_set.get(kind, ())
        for _attempt in range(20):
            sc, img, mask, defects, verdict, _ = render_frame(rng, kind, want_fail)
            if kind == "good" or defects:
                break
        stem = "%04d" % i
        rel_dir = "%s/%s" % (split, kind)
        path = save_image(img, os.path.join(out, rel_dir, stem), sc, allow_jpg=(kind == "good"))
        if kind != "good":
            Image.fromarray((mask * 255).astype(np.uint8), "L").save(
                os.path.join(out, "ground_truth", kind, stem + "_mask.png"))
        if split == "test":
            labels.append(label_record(rel_dir + "/" + os.path.basename(path), sc, defects, verdict))
            stats.setdefault(kind, {"pass": 0, "fail": 0})[verdict] += 1
    with open(os.path.join(out, "labels.jsonl"), "w") as f:
        for rec in labels:
            f.write(json.dumps(rec) + "\n")
    if log:
        print("wrote %d frames to %s in %.1f s" % (len(jobs), out, time.time() - t0))
        for k, v in stats.items():
            print("  %-14s pass %3d  fail %3d" % (k, v["pass"], v["fail"]))
    return stats


# --------------------------------------------------------------------------------------
# self-test
# --------------------------------------------------------------------------------------
def self_test():
    fails = []

    def check(name, cond):
        if not cond:
            fails.append(name)

    def v(profile, *defs):
        return grade(profile, [dict(kind=k, zone=z, size_um=s) for k, z, s in defs])[0]

    # zones (diameter boundaries 25/65, 115, 135, 250 -> radii)
    check("zone sm 12.5 A", zone_of("sm-upc", 12.5) == "A")
    check("zone sm 12.6 B", zone_of("sm-upc", 12.6) == "B")
    check("zone sm 57.5 B", zone_of("sm-upc", 57.5) == "B")
    check("zone sm 57.6 C", zone_of("sm-upc", 57.6) == "C")
    check("zone sm 67.6 D", zone_of("sm-upc", 67.6) == "D")
    check("zone sm 125.1 none", zone_of("sm-upc", 125.1) is None)
    check("zone mm 32.5 A", zone_of("mm", 32.5) == "A")
    check("zone mm 32.6 B", zone_of("mm", 32.6) == "B")
    # single-mode UPC
    P = "sm-upc"
    check("sm A scratch", v(P, ("scratch", "A", 0.5)) == "fail")
    check("sm A defect", v(P, ("pit", "A", 1.0)) == "fail")
    check("sm B scratch 3.0", v(P, ("scratch", "B", 3.0)) == "pass")
    check("sm B scratch 3.01", v(P, ("scratch", "B", 3.01)) == "fail")
    check("sm B many fine scratches", v(P, *[("scratch", "B", 2.0)] * 20) == "pass")
    check("sm B defect 1.99 x20", v(P, *[("pit", "B", 1.99)] * 20) == "pass")
    check("sm B defect 2.0 x5", v(P, *[("pit", "B", 2.0)] * 5) == "pass")
    check("sm B defect 2.0 x6", v(P, *[("pit", "B", 2.0)] * 6) == "fail")
    check("sm B defect 5.0 x5", v(P, *[("chip", "B", 5.0)] * 5) == "pass")
    check("sm B defect 5 of 2-5 + tiny", v(P, *([("pit", "B", 3.0)] * 5 + [("pit", "B", 1.0)] * 9)) == "pass")
    check("sm B 6th defect", v(P, *[("contamination", "B", 4.0)] * 6) == "fail")
    check("sm B defect 5.01", v(P, ("pit", "B", 5.01)) == "fail")
    check("sm C anything", v(P, ("scratch", "C", 20.0), ("chip", "C", 40.0)) == "pass")
    check("sm D defect 9.99", v(P, *[("pit", "D", 9.99)] * 30) == "pass")
    check("sm D defect 10.0", v(P, ("pit", "D", 10.0)) == "fail")
    check("sm D scratch wide", v(P, ("scratch", "D", 8.0)) == "pass")
    check("outside ignored", v(P, ("pit", None, 50.0)) == "pass")
    check("empty pass", v(P) == "pass")
    # multimode
    P = "mm"
    check("mm A scratch 3.0", v(P, *[("scratch", "A", 3.0)] * 10) == "pass")
    check("mm A scratch 3.01", v(P, ("scratch", "A", 3.01)) == "fail")
    check("mm A defect 5.0 x4", v(P, *[("pit", "A", 5.0)] * 4) == "pass")
    check("mm A defect x5", v(P, *[("pit", "A", 1.0)] * 5) == "fail")
    check("mm A defect 5.01", v(P, ("pit", "A", 5.01)) == "fail")
    check("mm B scratch 5.0", v(P, ("scratch", "B", 5.0)) == "pass")
    check("mm B scratch 5.01", v(P, ("scratch", "B", 5.01)) == "fail")
    check("mm B defect 4.99 x30", v(P, *[("pit", "B", 4.99)] * 30) == "pass")
    check("mm B defect 5.0 x5", v(P, *[("pit", "B", 5.0)] * 5) == "pass")
    check("mm B defect 5-10 x6", v(P, *[("pit", "B", 7.0)] * 6) == "fail")
    check("mm B defect 10.0", v(P, ("pit", "B", 10.0)) == "pass")
    check("mm B defect 10.01", v(P, ("pit", "B", 10.01)) == "fail")
    check("mm D defect 19.99 x30", v(P, *[("pit", "D", 19.99)] * 30) == "pass")
    check("mm D defect 20 x5", v(P, *[("contamination", "D", 20.0)] * 5) == "pass")
    check("mm D defect 20-30 x6", v(P, *[("contamination", "D", 25.0)] * 6) == "fail")
    check("mm D defect 30.0", v(P, ("contamination", "D", 30.0)) == "pass")
    check("mm D defect 30.01", v(P, ("contamination", "D", 30.01)) == "fail")
    # APC row
    check("apc A scratch x4", v("sm-apc", *[("scratch", "A", 3.0)] * 4) == "pass")
    check("apc A scratch x5", v("sm-apc", *[("scratch", "A", 3.0)] * 5) == "fail")
    # geometry
    sq = np.array([[0, 0], [3, 0], [3, 4], [0, 4]], float)
    check("feret 3-4-5", abs(feret_max(sq) - 5.0) < 1e-9)
    check("rmin inside", poly_rmin_rmax(sq - 1)[0] == 0.0)
    check("rmin outside", abs(poly_rmin_rmax(sq + [10, 0])[0] - 10.0) < 1e-9)
    # end-to-end: a tiny dataset, labels consistent with masks and grading
    with tempfile.TemporaryDirectory() as td:
        build(td, 7, 2, 2, n_train=1, log=False)
        recs = [json.loads(l) for l in open(os.path.join(td, "labels.jsonl"))]
        check("label count", len(recs) == 2 + 2 * len(KINDS))
        for rec in recs:
            kind = rec["image"].split("/")[1]
            im = Image.open(os.path.join(td, rec["image"]))
            check("verdict matches grade " + rec["image"],
                  grade(rec["fiber"], rec["defects"])[0] == rec["verdict"])
            if kind == "good":
                check("good has no defects", rec["defects"] == [] and rec["verdict"] == "pass")
                continue
            stem = os.path.splitext(os.path.basename(rec["image"]))[0]
            m = np.asarray(Image.open(os.path.join(td, "ground_truth", kind, stem + "_mask.png")))
            check("mask size " + rec["image"], m.shape == (im.size[1], im.size[0]))
            check("mask binary", set(np.unique(m).tolist()) <= {0, 255})
            check("defects present " + rec["image"], len(rec["defects"]) > 0)
            for d in rec["defects"]:
                x0, y0, x1, y1 = d["bbox"]
                check("bbox in mask", m[y0:y1, x0:x1].max() == 255)
                check("zone valid", d["zone"] in "ABCD")
        # determinism
        a = open(os.path.join(td, "labels.jsonl")).read()
    with tempfile.TemporaryDirectory() as td:
        build(td, 7, 2, 2, n_train=1, log=False)
        check("deterministic", open(os.path.join(td, "labels.jsonl")).read() == a)
    if fails:
        print("SELF-TEST FAILED:", *fails, sep="\n  ")
        return 1
    print("self-test: all checks passed")
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--good", type=int, default=50)
    ap.add_argument("--per-kind", type=int, default=30)
    ap.add_argument("--train-good", type=int, default=5)
    ap.add_argument("--self-test", action="store_true")
    a = ap.parse_args(argv)
    if a.self_test:
        return self_test()
    if not a.out:
        ap.error("--out is required")
    build(a.out, a.seed, a.good, a.per_kind, n_train=a.train_good)
    return 0


if __name__ == "__main__":
    sys.exit(main())
