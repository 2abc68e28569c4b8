#!/usr/bin/env python3
"""Independent synthetic fiber end-face renderer (a second camera/renderer for generalization checks).

Written from the IEC 61300-3-35 notes (docs), the dataset-format spec and real reference
photographs only; it shares no code or parameters with the station's own generator.

    .venv/bin/python scripts/alt_render.py --out DIR --seed N [--good 60] [--per-kind 35] [--train-good 5]

Writes the MVTec-style layout of docs/dataset-format.md:

    DIR/train/good/NNNN.png             a few defect-free frames
    DIR/test/good/NNNN.{png,jpg}         defect-free frames (harmless ferrule scratches/dust outside 250 um)
    DIR/test/<kind>/NNNN.{png,jpg}       kind in scratch, pit, contamination, chip
    DIR/ground_truth/<kind>/NNNN_mask.png   0/255, every labelled defect (all inside the contact zone)
    DIR/labels.jsonl                     one line per test image, verdict from grade() below

Everything is modelled in physical units (um, measured from the fiber axis) and mapped to pixels
with separate x/y scales, so non-square pixels give an elliptical fiber. Each frame is rendered from
its own RNG stream np.random.default_rng([seed, split, kind, index]): deterministic per seed.
Only numpy, scipy and Pillow.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage, special
from scipy.spatial import ConvexHull, cKDTree

# ----------------------------------------------------------------------------------------------
# Geometry and the IEC tables (as data)
# ----------------------------------------------------------------------------------------------

CLAD_R = 62.5  # um, cladding radius (125 um diameter)
CONTACT_R = 125.0  # um, outer radius of zone D (250 um contact zone)
KINDS = ("scratch", "pit", "contamination", "chip")
FIBERS = ("sm-upc", "sm-apc", "mm")
FRAME_SIZES = ((640, 480), (720, 576), (800, 600), (1024, 768), (1152, 864), (1280, 960))
ZONE_LETTERS = ("A", "B", "C", "D")

# outer radius (um) of zones A, B, C, D
ZONE_OUTER = {
    "sm": (12.5, 57.5, 67.5, 125.0),
    "mm": (32.5, 57.5, 67.5, 125.0),
}

INF = float("inf")
UNLIMITED = [(INF, True, None)]
# (zone, category) -> size classes, in order: (upper limit, limit inclusive, max count or None).
# A size falls in the first class with size < limit (or == limit when inclusive); a size beyond the
# last class is "none allowed". An empty list means nothing of that category is allowed.
_SM_COMMON = {
    ("B", "scratch"): [(3.0, True, None)],  # no limit <= 3 um; none > 3 um
    ("B", "defect"): [(2.0, False, None), (5.0, True, 5)],  # no limit < 2; 5 from 2-5; none > 5
    ("C", "scratch"): UNLIMITED,
    ("C", "defect"): UNLIMITED,
    ("D", "scratch"): UNLIMITED,
    ("D", "defect"): [(10.0, False, None)],  # none >= 10 um
}
PROFILES: dict[str, dict[tuple[str, str], list]] = {
    "sm-upc": {("A", "scratch"): [], ("A", "defect"): [], **_SM_COMMON},
    "sm-apc": {("A", "scratch"): [(3.0, True, 4)], ("A", "defect"): [], **_SM_COMMON},
    "mm": {
        ("A", "scratch"): [(3.0, True, None)],
        ("A", "defect"): [(5.0, True, 4)],  # 4 <= 5 um; none > 5
        ("B", "scratch"): [(5.0, True, None)],
        ("B", "defect"): [(5.0, False, None), (10.0, True, 5)],  # <5 no limit; 5 from 5-10; none > 10
        ("C", "scratch"): UNLIMITED,
        ("C", "defect"): UNLIMITED,
        ("D", "scratch"): UNLIMITED,
        ("D", "defect"): [(20.0, False, None), (30.0, True, 5)],  # <20 no limit; 5 from 20-30; none > 30
    },
}


def zone_family(fiber: str) -> str:
    return "mm" if fiber == "mm" else "sm"


def zone_of(r_um: float, fiber: str) -> str | None:
    """Zone letter of a radius (um from the axis), None outside the contact zone."""
    for letter, outer in zip(ZONE_LETTERS, ZONE_OUTER[zone_family(fiber)]):
        if r_um < outer:
            return letter
    return None


def category(kind: str) -> str:
    return "scratch" if kind == "scratch" else "defect"


def _fmt(v: float) -> str:
    return f"{v:g}"


def grade(fiber: str, defects: list[dict]) -> tuple[str, list[str]]:
    """IEC 61300-3-35 verdict of a list of {kind, zone, size_um} under a profile: ("pass"|"fail", reasons)."""
    table = PROFILES[fiber]
    reasons: list[str] = []
    counts: dict[tuple[str, str, int], int] = {}
    for d in defects:
        z, cat, s = d["zone"], category(d["kind"]), float(d["size_um"])
        if z not in ZONE_LETTERS:
            continue  # outside the contact zone: not graded
        classes = table[(z, cat)]
        placed = False
        for ci, (lim, incl, _mx) in enumerate(classes):
            if s < lim or (incl and s == lim):
                counts[(z, cat, ci)] = counts.get((z, cat, ci), 0) + 1
                placed = True
                break
        if not placed:
            if not classes:
                reasons.append(f"zone {z}: {cat} {s:.2f} um: none allowed")
            else:
                lim, incl, _ = classes[-1]
                op = ">" if incl else ">="
                reasons.append(f"zone {z}: {cat} {s:.2f} um {op} {_fmt(lim)} um")
    for (z, cat, ci), n in sorted(counts.items()):
        lim, incl, mx = table[(z, cat)][ci]
        if mx is not None and n > mx:
            lo = table[(z, cat)][ci - 1][0] if ci > 0 else 0.0
            reasons.append(f"zone {z}: {n} {cat}s of {_fmt(lo)}-{_fmt(lim)} um (max {mx})")
    return ("fail" if reasons else "pass"), reasons


# ----------------------------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------------------------

SQRT2 = math.sqrt(2.0)


def soft_step(d, s):
    """0 -> 1 as d goes from negative to positive, 0.5 at d = 0; s = edge width (um)."""
    return 0.5 * (1.0 + special.erf(d / (max(s, 1e-3) * SQRT2)))


def feret(points: np.ndarray) -> float:
    """Max Feret diameter (max pairwise distance) of a point set (N x 2)."""
    pts = np.asarray(points, dtype=np.float64)
    if len(pts) < 2:
        return 0.0
    if len(pts) > 3:
        try:
            pts = pts[ConvexHull(pts).vertices]
        except Exception:  # degenerate (collinear) set
            pass
    d = pts[:, None, :] - pts[None, :, :]
    return float(np.sqrt((d**2).sum(-1)).max())


@dataclass
class Camera:
    w: int
    h: int
    ux: float  # um per px along x
    uy: float  # um per px along y
    cx: float  # fiber axis, frame pixels
    cy: float

    @property
    def pix(self) -> float:
        return math.sqrt(self.ux * self.uy)

    def to_px(self, x_um, y_um):
        return self.cx + np.asarray(x_um) / self.ux, self.cy + np.asarray(y_um) / self.uy

    def in_frame(self, bbox_um, margin_px=12.0) -> bool:
        x0, y0, x1, y1 = bbox_um
        px0, py0 = self.to_px(x0, y0)
        px1, py1 = self.to_px(x1, y1)
        return (px0 >= margin_px and py0 >= margin_px and px1 <= self.w - 1 - margin_px
                and py1 <= self.h - 1 - margin_px)

    def window(self, bbox_um, pad_px=3):
        """Pixel slices covering a um bbox (clipped to the frame) and the um coordinates there."""
        x0, y0, x1, y1 = bbox_um
        px0, py0 = self.to_px(x0, y0)
        px1, py1 = self.to_px(x1, y1)
        i0 = max(int(math.floor(py0)) - pad_px, 0)
        i1 = min(int(math.ceil(py1)) + pad_px + 1, self.h)
        j0 = max(int(math.floor(px0)) - pad_px, 0)
        j1 = min(int(math.ceil(px1)) + pad_px + 1, self.w)
        if i1 <= i0 or j1 <= j0:
            return None
        ys = (np.arange(i0, i1, dtype=np.float64) - self.cy) * self.uy
        xs = (np.arange(j0, j1, dtype=np.float64) - self.cx) * self.ux
        X, Y = np.meshgrid(xs, ys)
        return (slice(i0, i1), slice(j0, j1)), X, Y


def sample_camera(rng) -> Camera:
    """Frame size, scale, pixel aspect and fiber position; zones A-C well inside the frame."""
    for _ in range(500):
        w, h = FRAME_SIZES[rng.integers(len(FRAME_SIZES))]
        ux = rng.uniform(0.35, 0.70)
        aspect = 1.0 if rng.random() < 0.7 else rng.uniform(1.03, 1.10)  # fiber height / width in px
        uy = ux / aspect
        off = rng.uniform(-0.15, 0.15, 2) * rng.random() ** 0.5
        cx = (w - 1) / 2 + off[0] * w
        cy = (h - 1) / 2 + off[1] * h
        edge_um = min(cx * ux, (w - 1 - cx) * ux, cy * uy, (h - 1 - cy) * uy)
        if edge_um >= 102.0:  # contact zone (125) may be cut a little; zone C (67.5) far inside
            return Camera(int(w), int(h), float(ux), float(uy), float(cx), float(cy))
    return Camera(1280, 960, 0.5, 0.5, 639.5, 479.5)


# ----------------------------------------------------------------------------------------------
# Shapes
# ----------------------------------------------------------------------------------------------


@dataclass
class RadialShape:
    """Star-shaped region: rho(theta) = r0 * ellipse(theta) * (1 + sum a_k cos(k theta + phi_k))."""

    x: float
    y: float
    r0: float = 1.0
    q: float = 1.0  # (semi-axis across rot) / (semi-axis along rot)
    rot: float = 0.0
    harm: list = field(default_factory=list)  # [(k, a, phi)]

    def rho(self, theta):
        t = theta - self.rot
        ell = 1.0 / np.sqrt(np.cos(t) ** 2 + (np.sin(t) / self.q) ** 2)
        mod = 1.0
        for k, a, ph in self.harm:
            mod = mod + a * np.cos(k * theta + ph)
        return self.r0 * ell * mod

    def boundary(self, n=720, grow=0.0):
        th = np.linspace(0, 2 * np.pi, n, endpoint=False)
        r = self.rho(th) + grow
        return np.stack([self.x + r * np.cos(th), self.y + r * np.sin(th)], 1)

    def contains(self, px, py):
        dx, dy = px - self.x, py - self.y
        return np.hypot(dx, dy) <= self.rho(np.arctan2(dy, dx))

    def signed(self, X, Y):
        """Approximate signed distance (um), positive inside, measured along the ray from the centre."""
        dx, dy = X - self.x, Y - self.y
        return self.rho(np.arctan2(dy, dx)) - np.hypot(dx, dy)

    def scale_to_feret(self, size):
        self.r0 = 1.0
        self.r0 = size / feret(self.boundary())
        return self

    def bbox(self, grow=0.0):
        b = self.boundary(360, grow)
        return (b[:, 0].min(), b[:, 1].min(), b[:, 0].max(), b[:, 1].max())


def random_harmonics(rng, kmin, kmax, amp, total=0.55):
    harm = []
    for k in range(kmin, kmax + 1):
        a = rng.uniform(0, amp) / (1 + 0.35 * (k - kmin))
        harm.append((k, a, rng.uniform(0, 2 * np.pi)))
    s = sum(a for _, a, _ in harm)
    if s > total:
        harm = [(k, a * total / s, p) for k, a, p in harm]
    return harm


# ----------------------------------------------------------------------------------------------
# Defects (planned in um, rendered in a pixel window)
# ----------------------------------------------------------------------------------------------


@dataclass
class Defect:
    kind: str
    variant: str
    size_um: float = 0.0
    zone: str = "?"
    min_r: float = 0.0
    max_r: float = 0.0
    bbox_um: tuple = (0, 0, 0, 0)
    shape: RadialShape | None = None
    params: dict = field(default_factory=dict)
    pts: np.ndarray | None = None  # scratch centre line (um)
    along: np.ndarray | None = None  # scratch modulation per centre-line point

    def label(self, bbox_px):
        d = {"kind": self.kind, "zone": self.zone, "size_um": round(self.size_um, 2),
             "bbox": [int(v) for v in bbox_px], "variant": self.variant,
             "min_radius_um": round(self.min_r, 2)}
        if "contrast" in self.params:
            d["contrast"] = round(float(self.params["contrast"]), 1)
        return d


def _finish_area(d: Defect, fiber: str, mask_grow=0.0):
    """Zone and extent of a RadialShape defect (mask_grow: halo counted in the mask)."""
    b = d.shape.boundary(720, mask_grow)
    r = np.hypot(b[:, 0], b[:, 1])
    d.min_r = 0.0 if d.shape.contains(0.0, 0.0) else float(r.min())
    d.max_r = float(r.max())
    d.bbox_um = (b[:, 0].min(), b[:, 1].min(), b[:, 0].max(), b[:, 1].max())
    d.zone = zone_of(d.min_r, fiber) or "-"
    return d


def boundary_clear(min_r, fiber, gap=1.0) -> bool:
    """Innermost point not within `gap` um of a zone boundary (no ambiguous zone labels)."""
    outer = ZONE_OUTER[zone_family(fiber)]
    return all(abs(min_r - b) >= gap for b in outer[:3])


def zone_range(z, fiber):
    outer = ZONE_OUTER[zone_family(fiber)]
    i = ZONE_LETTERS.index(z)
    return (0.0 if i == 0 else outer[i - 1]), outer[i]


# size intervals (um) per (family, zone) for the "defect" category, by wanted outcome
DEFECT_PASS = {
    "sm": {"B": [(0.8, 1.85), (2.15, 4.85)], "C": [(0.8, 6.0)], "D": [(0.8, 9.7)]},
    "mm": {"A": [(0.8, 4.85)], "B": [(0.8, 4.8), (5.2, 9.7)], "C": [(0.8, 6.0)],
           "D": [(0.8, 19.5), (20.5, 29.5)]},
}
DEFECT_FAIL = {
    "sm": {"A": [(0.8, 12.0)], "B": [(5.2, 30.0)], "D": [(10.3, 60.0)]},
    "mm": {"A": [(5.2, 30.0)], "B": [(10.3, 60.0)], "D": [(30.5, 60.0)]},
}
LIMITS = (2.0, 3.0, 5.0, 10.0, 20.0, 30.0)


def sample_in(rng, intervals, lo, hi, near_limit=0.35):
    """A size in the union of intervals intersected with [lo, hi]; often close to a class limit."""
    iv = [(max(a, lo), min(b, hi)) for a, b in intervals if min(b, hi) > max(a, lo)]
    if not iv:
        return None
    a, b = iv[rng.integers(len(iv))]
    if rng.random() < near_limit:
        ends = [e for e in (a, b) if any(abs(e - L) < 0.35 for L in LIMITS)]
        if ends:
            e = ends[rng.integers(len(ends))]
            span = min(0.12 * e, b - a)
            return float(rng.uniform(e - span, e) if e == b else rng.uniform(e, e + span))
    # log-uniform: small sizes are more common
    return float(math.exp(rng.uniform(math.log(a), math.log(b))))


def pick(rng, weights: dict):
    keys = list(weights)
    p = np.array([weights[k] for k in keys], dtype=float)
    return keys[rng.choice(len(keys), p=p / p.sum())]


def defect_zone_weights(fiber, want_pass):
    fam = zone_family(fiber)
    if want_pass:
        return {"B": .5, "C": .12, "D": .38} if fam == "sm" else {"A": .2, "B": .4, "C": .1, "D": .3}
    return {"A": .25, "B": .45, "D": .3} if fam == "sm" else {"A": .3, "B": .45, "D": .25}


def place_area(rng, d: Defect, fiber, zone, cam, placed, mask_grow=0.0, tries=40):
    """Move d.shape so that its innermost point lies in `zone`, inside the contact zone and frame."""
    lo, hi = zone_range(zone, fiber)
    # extent of the shape around its own centre
    b = d.shape.boundary(360) - np.array([d.shape.x, d.shape.y])
    for _ in range(tries):
        m = rng.uniform(lo + 1.2, hi - 1.2) if zone != "A" else rng.uniform(0, hi - 1.2)
        ang = rng.uniform(0, 2 * np.pi)
        # put the shape so that its point nearest the axis sits at radius ~m
        u = np.array([math.cos(ang), math.sin(ang)])
        inward = -(b @ u).min()  # how far the shape reaches towards the axis from its centre
        rc = m + inward
        d.shape.x, d.shape.y = rc * u
        _finish_area(d, fiber, mask_grow)
        if d.zone != zone or not boundary_clear(d.min_r, fiber) or d.max_r > CONTACT_R - 2.0:
            continue
        if not cam.in_frame(d.bbox_um) or overlaps(d.bbox_um, placed):
            continue
        return True
    return False


def overlaps(bb, placed, gap=2.0):
    for o in placed:
        ob = o.bbox_um
        if bb[0] < ob[2] + gap and ob[0] < bb[2] + gap and bb[1] < ob[3] + gap and ob[1] < bb[3] + gap:
            return True
    return False


def make_pit(rng, fiber, want_pass, cam, placed):
    fam = zone_family(fiber)
    for _ in range(12):
        zone = pick(rng, defect_zone_weights(fiber, want_pass))
        table = (DEFECT_PASS if want_pass else DEFECT_FAIL)[fam]
        if zone not in table:
            continue
        size = sample_in(rng, table[zone], 1.0, 30.0)
        if size is None:
            continue
        sh = RadialShape(0, 0, q=rng.uniform(0.75, 1.0), rot=rng.uniform(0, np.pi),
                         harm=random_harmonics(rng, 2, 5, 0.08, 0.15)).scale_to_feret(size)
        d = Defect("pit", "pit", size_um=size, shape=sh)
        d.params = {"dark": rng.uniform(0.12, 0.55), "opacity": rng.uniform(0.7, 1.0),
                    "rim": (rng.uniform(10, 40) if size >= 4.0 and rng.random() < 0.4 else 0.0)}
        if place_area(rng, d, fiber, zone, cam, placed):
            return [d]
    return []


def _particle_params(rng, size):
    halo = rng.random() < 0.4 and size > 2.0
    return {"bright": rng.random() < 0.25, "opacity": rng.uniform(0.75, 1.0),
            "dark_level": rng.uniform(5, 45), "bright_level": rng.uniform(215, 255),
            "tex": rng.uniform(0.0, 0.25), "tex_seed": int(rng.integers(1 << 30)),
            "halo_amp": rng.uniform(6, 25) if halo else 0.0,
            "halo_w": rng.uniform(0.6, 2.0), "glint": rng.random() < 0.3 and size > 5}


def _particle_shape(rng, size):
    return RadialShape(0, 0, q=rng.uniform(0.4, 1.0), rot=rng.uniform(0, np.pi),
                       harm=random_harmonics(rng, 2, 7, 0.28)).scale_to_feret(size)


def halo_extent(p):
    # the halo profile amp*exp(-((-d - w)/w)^2) is >= max(3, 0.4 amp) out to about 2w
    if p["halo_amp"] <= 0:
        return 0.0
    frac = max(3.0 / p["halo_amp"], 0.4)
    if frac >= 1:
        return 0.0
    return p["halo_w"] * (1 + math.sqrt(-math.log(frac)))


def make_contamination(rng, fiber, want_pass, cam, placed, variant=None):
    fam = zone_family(fiber)
    if variant is None:
        variant = pick(rng, {"dust": .45, "cluster": .2, "film": .35})
    if variant == "film" and want_pass and fam == "sm":
        variant = "dust"  # a >= 10 um film fails every sm zone it can touch except C
    if variant == "cluster":
        out = make_cluster(rng, fiber, want_pass, cam, placed)
        if out:
            return out
        variant = "dust"
    for _ in range(12):
        zone = pick(rng, defect_zone_weights(fiber, want_pass))
        table = (DEFECT_PASS if want_pass else DEFECT_FAIL)[fam]
        if zone not in table:
            continue
        lo, hi = (10.0, 60.0) if variant == "film" else (1.0, 25.0)
        if variant == "film" and zone == "C":
            continue
        size = sample_in(rng, table[zone], lo, hi)
        if size is None:
            continue
        if variant == "film":
            sh = RadialShape(0, 0, q=rng.uniform(0.5, 1.0), rot=rng.uniform(0, np.pi),
                             harm=random_harmonics(rng, 2, 4, 0.3, 0.4)).scale_to_feret(size)
            d = Defect("contamination", "film", size_um=size, shape=sh)
            d.params = {"contrast": rng.choice([-1, 1], p=[0.65, 0.35]) * rng.uniform(4, 14),
                        "soft": rng.uniform(1.5, 5.0), "ring": rng.uniform(2, 7) if rng.random() < 0.35 else 0.0,
                        "mottle": rng.uniform(0, 0.35), "tex_seed": int(rng.integers(1 << 30))}
            grow = 0.0
        else:
            d = Defect("contamination", "dust", size_um=size, shape=_particle_shape(rng, size))
            d.params = _particle_params(rng, size)
            grow = halo_extent(d.params)
        if place_area(rng, d, fiber, zone, cam, placed, mask_grow=grow):
            d.params["grow"] = grow
            return [d]
    return []


def make_cluster(rng, fiber, want_pass, cam, placed):
    fam = zone_family(fiber)
    # the zone and size mix of the cluster
    if want_pass:
        zone = pick(rng, {"B": .6, "D": .4} if fam == "sm" else {"A": .2, "B": .5, "D": .3})
        n = int(rng.integers(3, 8))
        if fam == "sm" and zone == "B":
            n_mid = int(rng.integers(0, 4))  # at most 5 from 2-5 um are allowed
            sizes = [sample_in(rng, [(2.15, 4.6)], 1, 5) for _ in range(n_mid)] + \
                    [sample_in(rng, [(0.8, 1.85)], 0.8, 5) for _ in range(n - n_mid)]
        elif fam == "mm" and zone == "A":
            n = int(rng.integers(2, 5))  # 4 <= 5 um allowed
            sizes = [sample_in(rng, [(0.8, 4.8)], 0.8, 5) for _ in range(n)]
        else:
            sizes = [sample_in(rng, [(0.8, 4.8)], 0.8, 5) for _ in range(n)]
    else:
        if fam == "sm":
            zone, n = "B", int(rng.integers(6, 9))  # the 6th defect of 2-5 um fails
            sizes = [sample_in(rng, [(2.2, 4.8)], 1, 5) for _ in range(n)]
        else:
            if rng.random() < 0.5:
                zone, n = "A", int(rng.integers(5, 7))  # the 5th defect <= 5 um in zone A fails
                sizes = [sample_in(rng, [(1.5, 4.8)], 1, 5) for _ in range(n)]
            else:
                zone, n = "B", int(rng.integers(6, 8))  # the 6th defect of 5-10 um fails
                sizes = [sample_in(rng, [(5.2, 8.0)], 5, 10) for _ in range(n)]
    lo, hi = zone_range(zone, fiber)
    for _ in range(20):
        spread = 4.0 + 1.6 * math.sqrt(n) * float(np.mean(sizes))
        m = rng.uniform(lo + spread * 0.5 + 1.5, max(hi - 1.5, lo + spread * 0.5 + 1.6)) if zone != "A" \
            else rng.uniform(0, max(hi - spread - 1.5, 0.1))
        ang = rng.uniform(0, 2 * np.pi)
        ccx, ccy = m * math.cos(ang), m * math.sin(ang)
        group: list[Defect] = []
        for s in sizes:
            for _ in range(30):
                rr = spread * math.sqrt(rng.random())
                aa = rng.uniform(0, 2 * np.pi)
                d = Defect("contamination", "cluster", size_um=s, shape=_particle_shape(rng, s))
                d.params = _particle_params(rng, s)
                d.params["halo_amp"] = 0.0
                d.params["grow"] = 0.0
                d.shape.x, d.shape.y = ccx + rr * math.cos(aa), ccy + rr * math.sin(aa)
                _finish_area(d, fiber)
                if d.zone != zone or not boundary_clear(d.min_r, fiber) or d.max_r > CONTACT_R - 2:
                    continue
                if not cam.in_frame(d.bbox_um) or overlaps(d.bbox_um, placed + group, gap=1.5):
                    continue
                group.append(d)
                break
        if len(group) == len(sizes):
            return group
    return []


def make_chip(rng, fiber, want_pass, cam, placed):
    fam = zone_family(fiber)
    best = None
    for _ in range(40):
        if want_pass and fam == "sm":
            depth, zone_want = rng.uniform(2.0, 3.8), "C"  # shallow: stays in zone C (no limit)
        elif want_pass:
            depth, zone_want = rng.uniform(6.5, 8.5), "B"
        else:
            depth, zone_want = rng.uniform(6.5, 20.0), "B"
        th0 = rng.uniform(0, 2 * np.pi)
        e = rng.uniform(0.0, 0.35) * depth
        a = depth + e
        q = rng.uniform(0.45, 0.9) if (want_pass and fam == "mm") else rng.uniform(0.6, min(2.0, 30.0 / a))
        rc = CLAD_R + e
        sh = RadialShape(rc * math.cos(th0), rc * math.sin(th0), r0=a, q=q, rot=th0 + np.pi,
                         harm=random_harmonics(rng, 3, 8, 0.14, 0.25))
        d = Defect("chip", "chip", shape=sh)
        _measure_chip(d, fiber)
        if d.zone != zone_want or not boundary_clear(d.min_r, fiber):
            continue
        if want_pass and fam == "mm" and not (5.2 <= d.size_um <= 9.7):
            continue
        if not want_pass and fam == "mm" and d.size_um < 10.3:
            continue
        if not want_pass and fam == "sm" and d.size_um < 5.2:
            continue
        if d.size_um > 40.0:
            continue
        if not cam.in_frame(d.bbox_um) or overlaps(d.bbox_um, placed):
            continue
        best = d
        break
    if best is None:
        return []
    best.params = {"dark_level": rng.uniform(5, 40), "opacity": rng.uniform(0.85, 1.0),
                   "edge": rng.uniform(10, 35) if rng.random() < 0.5 else 0.0,
                   "tex_seed": int(rng.integers(1 << 30))}
    return [best]


def _measure_chip(d: Defect, fiber):
    """Chip = blob minus nothing outside the cladding: measured on a fine grid (Feret, innermost r)."""
    x0, y0, x1, y1 = d.shape.bbox()
    step = max(0.04, max(x1 - x0, y1 - y0) / 500)
    xs = np.arange(x0, x1 + step, step)
    ys = np.arange(y0, y1 + step, step)
    X, Y = np.meshgrid(xs, ys)
    R = np.hypot(X, Y)
    inside = (d.shape.signed(X, Y) >= 0) & (R <= CLAD_R)
    if inside.sum() < 4:
        d.zone, d.size_um = "-", 0.0
        return
    px, py = X[inside], Y[inside]
    d.size_um = feret(np.stack([px, py], 1))
    d.min_r = float(R[inside].min())
    d.max_r = float(R[inside].max())
    d.bbox_um = (px.min(), py.min(), px.max(), py.max())
    d.zone = zone_of(d.min_r, fiber) or "-"


def scratch_width(rng, fiber, zone, want_pass):
    fam = zone_family(fiber)
    if want_pass:
        hi = {"A": 2.9, "B": 2.9 if fam == "sm" else 4.85}.get(zone, 6.0)
        near = 2.9 if fam == "sm" or zone == "A" else 4.85
    else:
        lo = 0.5 if (fiber == "sm-upc" and zone == "A") else (5.15 if (fam == "mm" and zone == "B") else 3.15)
        if rng.random() < 0.4 and lo > 1:
            return float(rng.uniform(lo, lo * 1.12))
        return float(rng.uniform(lo, 6.0))
    if rng.random() < 0.35 and hi < 6:
        return float(rng.uniform(near * 0.88, near))
    return float(math.exp(rng.uniform(math.log(0.5), math.log(hi))))


def make_scratch(rng, fiber, want_pass, cam, placed):
    fam = zone_family(fiber)
    if want_pass:
        zw = {"B": .55, "C": .1, "D": .35} if fam == "sm" else {"A": .3, "B": .4, "D": .3}
        if fiber == "sm-apc":
            zw = {"A": .25, "B": .45, "D": .3}
    else:
        zw = {"A": .5, "B": .5}
    for _ in range(20):
        zone = pick(rng, zw)
        w = scratch_width(rng, fiber, zone, want_pass)
        lo, hi = zone_range(zone, fiber)
        m = rng.uniform(0, hi - 1.5 - w / 2) if zone == "A" else rng.uniform(lo + 1.5 + w / 2, hi - 1.5)
        if zone == "D":
            m = rng.uniform(lo + 2 + w / 2, 110)
        L = float(math.exp(rng.uniform(math.log(10), math.log(150))))
        if zone == "D":
            L = min(L, 2 * math.sqrt(max(118.0**2 - m**2, 1.0)))
        phi = rng.uniform(0, 2 * np.pi)
        n_hat = np.array([math.cos(phi), math.sin(phi)])
        t_hat = np.array([-n_hat[1], n_hat[0]])
        t0 = rng.uniform(-L, 0) if rng.random() < 0.8 else rng.uniform(-0.3 * L, 0.3 * L)
        curv = 0.0 if rng.random() < 0.55 else rng.choice([-1, 1]) / rng.uniform(120, 900)
        spacing = min(0.15, cam.pix / 4)
        t = np.arange(t0, t0 + L, spacing)
        if len(t) < 10:
            continue
        pts = (m * n_hat)[None, :] + t[:, None] * t_hat[None, :] + (0.5 * curv * t**2)[:, None] * n_hat[None, :]
        along, variant = _scratch_modulation(rng, t - t0, L)
        d = Defect("scratch", variant, size_um=w, pts=pts, along=along)
        drawn = along > 0.3
        if drawn.sum() < 5:
            continue
        r = np.hypot(pts[:, 0], pts[:, 1])
        d.min_r = float(max(r[drawn].min() - w / 2, 0.0))
        d.max_r = float(r[drawn].max() + w / 2)
        d.zone = zone_of(d.min_r, fiber) or "-"
        hw = w / 2 + 1.0
        d.bbox_um = (pts[:, 0].min() - hw, pts[:, 1].min() - hw, pts[:, 0].max() + hw, pts[:, 1].max() + hw)
        if d.zone != zone or not boundary_clear(d.min_r, fiber) or d.max_r > CONTACT_R - 2:
            continue
        if not cam.in_frame(d.bbox_um) or overlaps(d.bbox_um, placed):
            continue
        vis = rng.uniform(3, 15) if rng.random() < 0.8 else rng.uniform(15, 35)
        sign = -1.0 if rng.random() < 0.7 else 1.0
        d.params = {"contrast": sign * vis, "sharp": rng.uniform(0.0, 0.6)}
        return [d]
    return []


def _scratch_modulation(rng, s, L):
    """Per-point visibility along a scratch: solid, dashed or speckled; tapered ends."""
    v = rng.random()
    taper = np.clip(np.minimum(s, L - s) / rng.uniform(1.0, 5.0), 0, 1)
    if v < 0.45:
        variant = "solid"
        slow = 0.8 + 0.2 * np.sin(s / rng.uniform(8, 40) + rng.uniform(0, 6.3))
        m = slow
    elif v < 0.75:
        variant = "dashed"
        period, duty = rng.uniform(3, 15), rng.uniform(0.35, 0.8)
        ph = rng.uniform(0, 1)
        m = (((s / period) + ph) % 1.0 < duty).astype(float)
        m = np.convolve(m, np.ones(5) / 5, mode="same")
    else:
        variant = "speckled"
        n = rng.standard_normal(len(s))
        n = ndimage.gaussian_filter1d(n, max(2, int(0.6 / max(s[1] - s[0], 1e-3))))
        n = n / (n.std() + 1e-9)
        m = np.clip(0.55 + 0.6 * n, 0, 1)
    return np.clip(m * taper, 0, 1), variant

MAKERS = {"scratch": make_scratch, "pit": make_pit, "contamination": make_contamination, "chip": make_chip}


def plan_defects(rng, kind: str, fiber: str, cam: Camera, want_pass: bool) -> list[Defect]:
    """1-4 defects (clusters add more), mostly of `kind`; the first is always `kind`."""
    placed: list[Defect] = []
    for attempt in range(6):
        placed = MAKERS[kind](rng, fiber, want_pass, cam, [])
        if placed:
            break
    if not placed:  # a very tight camera: fall back to a fail-side defect of the kind
        placed = MAKERS[kind](rng, fiber, False, cam, [])
    n_extra = int(rng.choice([0, 1, 2, 3], p=[0.45, 0.3, 0.15, 0.1]))
    for _ in range(n_extra):
        k2 = kind if rng.random() < 0.7 else str(rng.choice(["scratch", "pit", "contamination"]))
        wp = want_pass or rng.random() < 0.5
        placed += MAKERS[k2](rng, fiber, wp, cam, placed)
    return placed


# ----------------------------------------------------------------------------------------------
# The scene
# ----------------------------------------------------------------------------------------------


def sample_look(rng, fiber):
    look = pick(rng, {"backlit": .42, "bright": .25, "graycore": .33})
    L: dict = {"look": look}
    if look == "backlit":  # dark fiber on a bright ceramic ferrule
        L["ferrule"] = rng.uniform(160, 225)
        L["clad"] = rng.uniform(50, 115)
        L["core_delta"] = rng.uniform(2, 14) if fiber == "mm" else (rng.uniform(-6, 12) if rng.random() < 0.6 else 0)
    elif look == "bright":  # bright fiber on a darker ferrule
        L["ferrule"] = rng.uniform(55, 130)
        L["clad"] = rng.uniform(150, 225)
        L["core_delta"] = rng.uniform(4, 25) if fiber == "mm" else (rng.uniform(0, 20) if rng.random() < 0.6 else 0)
    else:  # gray cladding, brighter core, darker or similar background
        L["ferrule"] = rng.uniform(90, 160)
        L["clad"] = L["ferrule"] - rng.uniform(10, 45)
        L["core_delta"] = rng.uniform(20, 90) if fiber == "mm" else rng.uniform(10, 45)
    L["core_r"] = 4.5 if fiber != "mm" else (25.0 if rng.random() < 0.6 else 31.25)
    L["core_soft"] = rng.uniform(0.4, 2.5)
    L["edge_soft"] = rng.uniform(0.2, 1.2)
    rim = pick(rng, {"none": .2, "bright": .35, "dark": .25, "both": .2})
    L["rim"] = rim
    L["rim_bright"] = rng.uniform(10, 45) if rim in ("bright", "both") else 0.0
    L["rim_dark"] = rng.uniform(10, 40) if rim in ("dark", "both") else 0.0
    L["rim_w"] = rng.uniform(0.4, 1.5)
    L["double_edge"] = rng.random() < 0.15
    L["epoxy"] = pick(rng, {"none": .25, "dark": .5, "bright": .25})
    L["epoxy_w"] = rng.uniform(0.5, 2.0) if rng.random() < 0.75 else rng.uniform(2.0, 4.0)
    L["epoxy_level"] = rng.uniform(15, 60) if L["epoxy"] == "dark" else L["ferrule"] + rng.uniform(8, 35)
    L["trench"] = fiber == "mm" and rng.random() < 0.4
    L["trench_amp"] = rng.choice([-1, 1]) * rng.uniform(2, 7)
    L["trench_w"] = rng.uniform(0.8, 2.5)
    L["band"] = fiber == "mm" and rng.random() < 0.3
    L["band_amp"] = -rng.uniform(2, 9)
    L["band_outer"] = rng.uniform(0.72, 0.95) * CLAD_R
    L["grain_amp"] = rng.uniform(1.0, 3.5)
    L["grain_um"] = rng.uniform(0.5, 1.5)
    L["mottle_amp"] = rng.uniform(0.6, 3.5)
    L["polish"] = rng.uniform(0.4, 1.1) if rng.random() < 0.3 else 0.0
    return L


def render_base(rng, cam: Camera, L, X, Y, R):
    h, w = R.shape
    fer, clad = L["ferrule"], L["clad"]
    inside = soft_step(CLAD_R - R, L["edge_soft"]).astype(np.float32)
    img = np.float32(fer) + np.float32(clad - fer) * inside
    if L["core_delta"]:
        img += np.float32(L["core_delta"]) * soft_step(L["core_r"] - R, L["core_soft"]).astype(np.float32)
    if L["trench"]:
        img += np.float32(L["trench_amp"]) * np.exp(-((R - 0.58 * CLAD_R) / L["trench_w"]) ** 2 / 2).astype(np.float32)
    if L["band"]:
        inner = L["core_r"] + 1.0
        band = soft_step(R - inner, 1.5) * soft_step(L["band_outer"] - R, 2.0)
        img += np.float32(L["band_amp"]) * band.astype(np.float32)
    # epoxy annulus just outside the cladding (zone C)
    if L["epoxy"] != "none":
        ring = soft_step(R - CLAD_R, 0.4) * soft_step(CLAD_R + L["epoxy_w"] - R, 0.6)
        img += (np.float32(L["epoxy_level"]) - img) * ring.astype(np.float32)
    # ceramic grain and mottling (outside the glass only)
    g = rng.standard_normal((h, w)).astype(np.float32)
    g = ndimage.gaussian_filter(g, (L["grain_um"] / cam.uy, L["grain_um"] / cam.ux))
    g *= np.float32(L["grain_amp"] / (g.std() + 1e-6))
    sh, sw = max(h // 16, 4), max(w // 16, 4)
    mt = ndimage.gaussian_filter(rng.standard_normal((sh, sw)).astype(np.float32), 1.5)
    mt = ndimage.zoom(mt, (h / sh, w / sw), order=1)[:h, :w]
    mt *= np.float32(L["mottle_amp"] / (mt.std() + 1e-6))
    tex = g + mt
    img += tex * (1.0 - inside) * np.float32(fer / 180.0)
    # faint polish haze on the glass (harmless)
    if L["polish"] > 0:
        p = rng.standard_normal((h, w)).astype(np.float32)
        ang = rng.uniform(0, np.pi)
        p = ndimage.gaussian_filter(p, (0.7, 0.7))
        p = ndimage.rotate(ndimage.gaussian_filter(ndimage.rotate(p, np.degrees(ang), reshape=False, order=1),
                                                   (0.6, 6.0)), -np.degrees(ang), reshape=False, order=1)
        p *= np.float32(L["polish"] / (p.std() + 1e-6))
        img += p * inside
    # thin rims at the cladding edge: dark line on the edge, bright halo just outside
    if L["rim_dark"]:
        img -= np.float32(L["rim_dark"]) * np.exp(-((R - CLAD_R + 0.3) / L["rim_w"]) ** 2 / 2).astype(np.float32)
    if L["rim_bright"]:
        off = L["epoxy_w"] + 0.8 if L["epoxy"] != "none" else 1.2
        img += np.float32(L["rim_bright"]) * np.exp(-((R - CLAD_R - off) / (1.3 * L["rim_w"])) ** 2 / 2).astype(np.float32)
    if L["double_edge"]:
        img -= np.float32(rng.uniform(6, 20)) * np.exp(-((R - CLAD_R + rng.uniform(1.0, 2.5)) / 0.5) ** 2 / 2).astype(np.float32)
    return img


def render_outside(rng, cam: Camera, L, img, X, Y, R):
    """Ferrule scratches and dust beyond the contact zone (normal, never graded, no mask)."""
    info = {"ferrule_scratches": 0, "ferrule_dust": 0}
    bright_ferrule = L["ferrule"] > 140
    keep = soft_step(R - 129.0, 0.8).astype(np.float32)  # fades out by 126 um
    if rng.random() < 0.55:
        n = int(rng.integers(1, 10))
        info["ferrule_scratches"] = n
        Rc = rng.uniform(250, 3000)
        # a family of near-parallel arcs around a far centre
        ang = rng.uniform(0, 2 * np.pi)
        dist = Rc + rng.uniform(-0.6, 0.9) * max(cam.w * cam.ux, cam.h * cam.uy) * 0.5
        ox, oy = dist * math.cos(ang), dist * math.sin(ang)
        Dc = np.hypot(X - ox, Y - oy)
        Ac = np.arctan2(Y - oy, X - ox)
        layer = np.zeros_like(img)
        pix = cam.pix
        for i in range(n):
            rr = Rc + rng.normal(0, 15) + i * rng.uniform(1, 6)
            wid = rng.uniform(0.4, 2.0)
            amp = rng.uniform(5, 40) * (-1 if (bright_ferrule or rng.random() < 0.5) else 1)
            d = np.abs(Dc - rr)
            cov = np.clip((np.minimum(d + pix / 2, wid / 2) - np.maximum(d - pix / 2, -wid / 2)) / pix, 0, 1)
            a0 = rng.uniform(-np.pi, np.pi)
            span = rng.uniform(0.2, 2.5)
            da = np.angle(np.exp(1j * (Ac - a0)))
            arc = (np.abs(da) < span).astype(np.float32)
            layer += np.float32(amp) * cov.astype(np.float32) * arc
        img += layer * keep
    nd = int(rng.integers(0, 18))
    for _ in range(nd):
        s = float(math.exp(rng.uniform(math.log(1.0), math.log(12.0))))
        sh = _particle_shape(rng, s)
        for _ in range(10):
            sh.x = rng.uniform(-cam.cx, cam.w - cam.cx) * cam.ux
            sh.y = rng.uniform(-cam.cy, cam.h - cam.cy) * cam.uy
            b = sh.boundary(180)
            if np.hypot(b[:, 0], b[:, 1]).min() > 130.0:
                break
        else:
            continue
        win = cam.window(sh.bbox(), pad_px=3)
        if win is None:
            continue
        (sy, sx), Xl, Yl = win
        cov = np.clip(0.5 + sh.signed(Xl, Yl) / cam.pix, 0, 1) * soft_step(np.hypot(Xl, Yl) - 129.0, 0.8)
        target = rng.uniform(5, 60) if (bright_ferrule or rng.random() < 0.6) else rng.uniform(200, 250)
        img[sy, sx] += (np.float32(target) - img[sy, sx]) * (rng.uniform(0.5, 1.0) * cov).astype(np.float32)
        info["ferrule_dust"] += 1
    return info


def _noise_field(seed, shape, sigma):
    r = np.random.default_rng(seed)
    n = ndimage.gaussian_filter(r.standard_normal(shape), sigma)
    return n / (n.std() + 1e-9)


def render_defect(d: Defect, cam: Camera, img, mask):
    """Draw d into img (float) and its visible footprint into mask (bool); returns the bbox (px)."""
    pix = cam.pix
    grow = d.params.get("grow", 0.0)
    bb = d.bbox_um
    pad = 2.0 + grow + (d.params.get("soft", 0) * 3 if d.variant == "film" else 0)
    win = cam.window((bb[0] - pad, bb[1] - pad, bb[2] + pad, bb[3] + pad), pad_px=2)
    (sy, sx), Xl, Yl = win
    base = img[sy, sx].astype(np.float64)
    m = np.zeros(base.shape, bool)
    p = d.params
    if d.kind == "scratch":
        tree = cKDTree(d.pts)
        q = np.stack([Xl.ravel(), Yl.ravel()], 1)
        dist, idx = tree.query(q, distance_upper_bound=d.size_um / 2 + 2 * pix)
        ok = np.isfinite(dist)
        dd = np.full(q.shape[0], 1e9)
        dd[ok] = dist[ok]
        ii = np.clip(idx, 0, len(d.pts) - 1)
        w = d.size_um
        cov = np.clip((np.minimum(dd + pix / 2, w / 2) - np.maximum(dd - pix / 2, -w / 2)) / pix, 0, 1)
        peak = min(1.0, w / pix)
        amp = p["contrast"] / peak
        alo = np.where(ok, d.along[ii], 0.0)
        delta = amp * cov * alo
        # a wide scratch has a flat bottom with slightly brighter walls
        if w > 2.5 * pix and p["sharp"] > 0.3:
            wall = np.exp(-((dd - w / 2) / (0.6 * pix)) ** 2) * alo
            delta += -0.3 * amp * wall
        base += delta.reshape(base.shape)
        m = ((dd <= max(w / 2, 0.5 * pix)) & (alo > 0.3)).reshape(base.shape)
    elif d.kind == "chip":
        sd = d.shape.signed(Xl, Yl)
        R = np.hypot(Xl, Yl)
        cov = np.minimum(np.clip(0.5 + sd / pix, 0, 1), np.clip(0.5 + (CLAD_R - R) / pix, 0, 1))
        tex = _noise_field(p["tex_seed"], base.shape, 1.2)
        target = p["dark_level"] * (1 + 0.25 * tex)
        base += (target - base) * cov * p["opacity"]
        if p["edge"]:
            base += p["edge"] * np.exp(-((sd - 0.5) / 0.5) ** 2) * (R < CLAD_R - 0.3)
        m = (sd >= 0) & (R <= CLAD_R)
    else:
        sd = d.shape.signed(Xl, Yl)
        cov = np.clip(0.5 + sd / pix, 0, 1)
        if d.kind == "pit":
            rr = np.hypot(Xl - d.shape.x, Yl - d.shape.y)
            rb = np.maximum(d.shape.rho(np.arctan2(Yl - d.shape.y, Xl - d.shape.x)), 1e-3)
            bowl = 0.75 + 0.25 * np.clip(1 - (rr / rb) ** 2, 0, 1)
            target = base * p["dark"]
            base += (target - base) * cov * p["opacity"] * bowl
            if p["rim"]:
                base += p["rim"] * np.clip((rr / rb - 0.72) / 0.1, 0, 1) * cov
            m = sd >= 0
        elif d.variant == "film":
            prof = soft_step(sd, p["soft"])
            mot = 1 + p["mottle"] * _noise_field(p["tex_seed"], base.shape, 3.0 / pix)
            delta = p["contrast"] * prof * mot
            if p["ring"]:
                delta += np.sign(p["contrast"]) * p["ring"] * np.exp(-((sd - 1.0) / 1.0) ** 2)
            base += delta
            m = sd >= 0
        else:  # dust particle (single or in a cluster)
            bright = p["bright"] or (base.mean() < 70 and p["dark_level"] > base.mean() - 15)
            lvl = p["bright_level"] if bright else p["dark_level"]
            tex = _noise_field(p["tex_seed"], base.shape, 0.8)
            target = lvl * (1 + p["tex"] * tex)
            base += (target - base) * cov * p["opacity"]
            if p["glint"]:
                gx = d.shape.x + 0.25 * d.shape.r0
                gy = d.shape.y - 0.2 * d.shape.r0
                base += 80 * np.exp(-((Xl - gx) ** 2 + (Yl - gy) ** 2) / (2 * (0.15 * d.shape.r0) ** 2)) * cov
            m = sd >= 0
            if p["halo_amp"]:
                hw = p["halo_w"]
                halo = p["halo_amp"] * np.exp(-((-sd - hw) / hw) ** 2) * (sd < 0)
                base += (-halo if bright else halo)
                m |= (sd < 0) & (-sd <= grow)
    # only the contact zone carries a mask
    m &= np.hypot(Xl, Yl) <= CONTACT_R
    if not m.any():  # a sub-pixel defect: its nearest pixel
        cxp, cyp = _defect_anchor(d)
        j = int(np.clip(round(cam.cx + cxp / cam.ux) - sx.start, 0, m.shape[1] - 1))
        i = int(np.clip(round(cam.cy + cyp / cam.uy) - sy.start, 0, m.shape[0] - 1))
        m[i, j] = True
    img[sy, sx] = base.astype(np.float32)
    mask[sy, sx] |= m
    ii, jj = np.nonzero(m)
    return [int(jj.min() + sx.start), int(ii.min() + sy.start), int(jj.max() + sx.start), int(ii.max() + sy.start)], (sy, sx, m)


def _defect_anchor(d: Defect):
    if d.kind == "scratch":
        r = np.hypot(d.pts[:, 0], d.pts[:, 1])
        k = int(np.argmin(np.where(d.along > 0.3, r, 1e9)))
        return d.pts[k]
    if d.kind == "chip":
        x0, y0, x1, y1 = d.bbox_um
        return (x0 + x1) / 2, (y0 + y1) / 2
    return d.shape.x, d.shape.y


def sample_camera_effects(rng):
    return {
        "vignetting": rng.uniform(0.0, 0.4),
        "vig_center": rng.uniform(-0.25, 0.25, 2),
        "gradient": rng.uniform(0.0, 0.18) if rng.random() < 0.6 else 0.0,
        "gradient_dir": rng.uniform(0, 2 * np.pi),
        "hotspot": rng.uniform(0.05, 0.3) if rng.random() < 0.3 else 0.0,
        "hot_pos": rng.uniform(-0.5, 0.5, 2),
        "hot_sigma": rng.uniform(0.15, 0.5),
        "blur_sigma_px": rng.uniform(0.5, 2.0),
        "shot_gain": rng.uniform(0.02, 0.35),
        "read_noise": rng.uniform(0.4, 2.5),
        "rgb": rng.random() < 0.28,
        "cast": str(rng.choice(["green", "blue", "warm"], p=[0.45, 0.4, 0.15])),
        "jpeg_quality": int(rng.integers(50, 91)) if rng.random() < 0.35 else None,
        "border": rng.random() < 0.15,
    }


def finish(rng, cam: Camera, img, fx):
    """Illumination, defocus, noise, colour, 8-bit."""
    h, w = img.shape
    yy = (np.arange(h, dtype=np.float32)[:, None] - h / 2) / (h / 2)
    xx = (np.arange(w, dtype=np.float32)[None, :] - w / 2) / (w / 2)
    vc = fx["vig_center"]
    illum = 1.0 - np.float32(fx["vignetting"]) * ((xx - vc[0]) ** 2 + (yy - vc[1]) ** 2) / 2
    if fx["gradient"]:
        a = fx["gradient_dir"]
        illum = illum * (1 + np.float32(fx["gradient"]) * (math.cos(a) * xx + math.sin(a) * yy))
    if fx["hotspot"]:
        hp = fx["hot_pos"]
        illum = illum * (1 + np.float32(fx["hotspot"]) * np.exp(-((xx - hp[0]) ** 2 + (yy - hp[1]) ** 2) / (2 * fx["hot_sigma"] ** 2)))
    img = img * illum
    s = fx["blur_sigma_px"]
    img = ndimage.gaussian_filter(img, (s * cam.ux / cam.uy, s))
    if fx["border"]:  # analog capture: black strips at the frame edges
        l, r, t = int(rng.integers(0, 12)), int(rng.integers(0, 12)), int(rng.integers(0, 5))
        lvl = np.float32(rng.uniform(0, 20))
        if l:
            img[:, :l] = lvl
        if r:
            img[:, w - r:] = lvl
        if t:
            img[:t, :] = lvl
    img = np.clip(img, 0, 255)
    if fx["rgb"]:
        gains = {"green": (0.9, 1.0, 0.86), "blue": (0.87, 0.95, 1.03), "warm": (1.03, 0.96, 0.86)}[fx["cast"]]
        gains = np.array(gains) * rng.uniform(0.97, 1.03, 3)
        chans = []
        for gch in gains:
            c = img * np.float32(gch)
            chans.append(c)
        out = np.stack(chans, -1)
        sd = np.sqrt(out * np.float32(fx["shot_gain"]) + np.float32(fx["read_noise"] ** 2))
        # partly correlated between channels (demosaicing)
        common = rng.standard_normal((h, w, 1)).astype(np.float32)
        own = rng.standard_normal((h, w, 3)).astype(np.float32)
        out = out + sd * (0.6 * common + 0.8 * own)
    else:
        sd = np.sqrt(img * np.float32(fx["shot_gain"]) + np.float32(fx["read_noise"] ** 2))
        out = img + sd * rng.standard_normal((h, w)).astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


@dataclass
class Frame:
    image: np.ndarray  # uint8, HxW or HxWx3
    mask: np.ndarray  # bool HxW
    cam: Camera
    fiber: str
    defects: list  # label dicts
    defect_masks: list  # (slice_y, slice_x, bool window) per defect
    verdict: str
    reasons: list
    info: dict


def render_frame(seed_key, kind: str) -> Frame:
    """One frame. kind = "good" or a defect kind. seed_key: anything np.random.default_rng accepts."""
    rng = np.random.default_rng(seed_key)
    fiber = pick(rng, {"sm-upc": .45, "sm-apc": .2, "mm": .35})
    cam = sample_camera(rng)
    L = sample_look(rng, fiber)
    fx = sample_camera_effects(rng)
    want_pass = bool(rng.random() < 0.5)
    plan = plan_defects(rng, kind, fiber, cam, want_pass) if kind != "good" else []
    # the scene
    ys = (np.arange(cam.h, dtype=np.float32) - np.float32(cam.cy)) * np.float32(cam.uy)
    xs = (np.arange(cam.w, dtype=np.float32) - np.float32(cam.cx)) * np.float32(cam.ux)
    X, Y = np.meshgrid(xs, ys)
    R = np.hypot(X, Y)
    img = render_base(rng, cam, L, X, Y, R)
    out_info = render_outside(rng, cam, L, img, X, Y, R)
    mask = np.zeros(img.shape, bool)
    labels, dmasks = [], []
    for d in plan:
        bbox, dm = render_defect(d, cam, img, mask)
        labels.append(d.label(bbox))
        dmasks.append(dm)
    verdict, reasons = grade(fiber, labels)
    image = finish(rng, cam, img, fx)
    info = {"look": L["look"], "want_pass": want_pass, **out_info,
            "blur_sigma_px": round(fx["blur_sigma_px"], 3), "read_noise": round(fx["read_noise"], 3),
            "shot_gain": round(fx["shot_gain"], 3), "vignetting": round(fx["vignetting"], 3),
            "rgb": fx["rgb"], "cast": fx["cast"] if fx["rgb"] else None, "jpeg_quality": fx["jpeg_quality"],
            "frame_border": fx["border"], "core_diameter_um": 2 * L["core_r"], "epoxy": L["epoxy"],
            "rim": L["rim"], "trench_ring": L["trench"], "band": L["band"], "polish": L["polish"] > 0,
            "fiber_aspect_y_over_x": round(cam.ux / cam.uy, 4)}
    return Frame(image, mask, cam, fiber, labels, dmasks, verdict, reasons, info)


# ----------------------------------------------------------------------------------------------
# Dataset writer
# ----------------------------------------------------------------------------------------------

SPLIT_IDS = {"train": 0, "test": 1}
KIND_IDS = {"good": 0, "scratch": 1, "pit": 2, "contamination": 3, "chip": 4}


def save_image(path_stem: Path, frame: Frame, allow_jpeg=True) -> Path:
    im = Image.fromarray(frame.image, "RGB" if frame.image.ndim == 3 else "L")
    q = frame.info.get("jpeg_quality")
    if allow_jpeg and q:
        p = path_stem.with_suffix(".jpg")
        im.save(p, quality=int(q))
    else:
        p = path_stem.with_suffix(".png")
        im.save(p, compress_level=1)
    return p


def label_line(rel: str, fr: Frame) -> dict:
    c = fr.cam
    return {
        "image": rel,
        "fiber": fr.fiber,
        "um_per_px": round(c.ux, 6),
        "um_per_px_x": round(c.ux, 6),
        "um_per_px_y": round(c.uy, 6),
        "center": [round(c.cx, 3), round(c.cy, 3)],
        "cladding_radius_px": round(CLAD_R / c.ux, 3),
        "cladding_radius_px_y": round(CLAD_R / c.uy, 3),
        "verdict": fr.verdict,
        "grade_reasons": fr.reasons,
        "defects": fr.defects,
        "render": {"generator": "alt_render", **fr.info},
    }


def write_dataset(out: Path, seed: int, n_good: int, per_kind: int, n_train: int, quiet=False) -> dict:
    out = Path(out)
    (out / "train" / "good").mkdir(parents=True, exist_ok=True)
    lines = []
    stats = {"frames": 0, "pass": 0, "fail": 0}
    t0 = time.time()
    for i in range(n_train):
        fr = render_frame([seed, SPLIT_IDS["train"], KIND_IDS["good"], i], "good")
        save_image(out / "train" / "good" / f"{i:04d}", fr, allow_jpeg=False)
        stats["frames"] += 1
    for kind in ("good",) + KINDS:
        n = n_good if kind == "good" else per_kind
        if n <= 0:
            continue
        (out / "test" / kind).mkdir(parents=True, exist_ok=True)
        if kind != "good":
            (out / "ground_truth" / kind).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            fr = render_frame([seed, SPLIT_IDS["test"], KIND_IDS[kind], i], kind)
            p = save_image(out / "test" / kind / f"{i:04d}", fr)
            if kind != "good":
                Image.fromarray((fr.mask * 255).astype(np.uint8), "L").save(
                    out / "ground_truth" / kind / f"{i:04d}_mask.png", compress_level=1)
            lines.append(label_line(p.relative_to(out).as_posix(), fr))
            stats["frames"] += 1
            stats[fr.verdict] += 1
            if not quiet and stats["frames"] % 20 == 0:
                print(f"  {stats['frames']} frames, {time.time() - t0:.1f} s", file=sys.stderr)
    with open(out / "labels.jsonl", "w") as f:
        for ln in lines:
            f.write(json.dumps(ln, separators=(",", ":")) + "\n")
    stats["seconds"] = round(time.time() - t0, 1)
    return stats


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--seed", required=True, type=int)
    ap.add_argument("--good", type=int, default=60, help="test/good frames")
    ap.add_argument("--per-kind", type=int, default=35, help="test frames per defect kind")
    ap.add_argument("--train-good", type=int, default=5, help="train/good frames")
    ap.add_argument("-q", "--quiet", action="store_true")
    a = ap.parse_args(argv)
    if a.out.exists() and any(a.out.iterdir()):
        ap.error(f"{a.out} already holds files: choose a new folder")
    stats = write_dataset(a.out, a.seed, a.good, a.per_kind, a.train_good, quiet=a.quiet)
    print(json.dumps(stats))


if __name__ == "__main__":
    main()
