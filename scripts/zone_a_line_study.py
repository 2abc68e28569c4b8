#!/usr/bin/env python3
"""Study, not part of the station: can a line through zone A that the model's map misses be
found by projecting the fiber disk's residual along chords (a Radon transform)? Session 24's
prototype (models/MODEL_CARD.md "Classical detectors for the map's misses"); nothing here is
used by `endface`.

    .venv/bin/python scripts/zone_a_line_study.py DATASET [DATASET...] --config STATION.toml \
        [--endface target/release/endface] [--work /tmp/zls]

For every good and scratch frame of each dataset (docs/dataset-format.md) it runs
`endface inspect --dump-tensors` at the frame's labelled scale and fiber, then on the model's
input crop (384x384 at 0.66 µm/px around the located axis):

1. residual: ln(grey + 8) less a radial profile (median per 0.5 µm ring) and a robust quadratic
   illumination, fitted over r <= 62 µm (clipped pixels left out), smoothed over ~1 px;
2. for angles every 1.5° (those within 3° of the sensor axes left out: JPEG blocks and row /
   column artefacts are lines there), the mean residual along each chord of the r <= 55 µm disk,
   less a running median over 15 neighbouring chords;
3. z = |departure| / max(robust spread over the chords, 0.3 grey), on chords passing within
   12.5 µm of the axis whose zone-A segment departs the same way (at least a third as strongly,
   scaled by its length).

It prints, per dataset, the largest z on good frames, on scratch frames without a labelled
zone-A defect, and on single-mode UPC scratch frames with a labelled zone-A line (the frames a
zone-A line check would change), with the station's verdict.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

S, UM = 384, 0.66
C = (S - 1) / 2
UU, VV = np.meshgrid(np.arange(S), np.arange(S))
RR = np.hypot(UU - C, VV - C) * UM
X, Y = (UU - C) * UM / 125, (VV - C) * UM / 125
BASIS = np.stack([np.ones_like(X), X, Y, X * X, X * Y, Y * Y], -1)


def residual(inp: np.ndarray, r_fit: float = 62.0) -> np.ndarray:
    g = inp * 127.5 + 127.5
    L = np.log(g + 8)
    zone = (RR <= r_fit) & (g < 250)
    rb = np.minimum((RR / 0.5).astype(int), 260)
    G = np.zeros_like(L)
    idx0 = rb[zone]
    order = np.argsort(idx0, kind="stable")
    idx = idx0[order]
    bounds = np.searchsorted(idx, np.arange(262))
    for _ in range(3):
        vals = (L - G)[zone][order]
        F = np.zeros(261)
        for b in range(261):
            seg = vals[bounds[b]:bounds[b + 1]]
            F[b] = np.median(seg) if seg.size else (F[b - 1] if b else 0.0)
        E = L - F[rb]
        w = zone.copy()
        for _ in range(2):
            c, *_ = np.linalg.lstsq(BASIS[w], E[w], rcond=None)
            G = BASIS @ c
            res = E - G
            s = np.median(np.abs(res[zone])) * 1.4826 + 1e-6
            w = zone & (np.abs(res) < 3 * s)
    R = np.where(zone, L - F[rb] - G, 0.0)
    sig = 1.0
    num = ndimage.gaussian_filter(R, sig)
    den = np.maximum(ndimage.gaussian_filter(zone.astype(float), sig), 1e-3)
    return num / den, g


def line_z(inp: np.ndarray, floor_grey: float = 0.3, axis_excl: float = 3.0) -> tuple[float, float, float]:
    R, g = residual(inp)
    disk = RR <= 55
    R = np.where(disk, R, 0.0)
    lo, hi = int(C - 90), int(C + 91)
    Rc, mc, mA = R[lo:hi, lo:hi], disk[lo:hi, lo:hi].astype(float), (RR <= 12.5).astype(float)[lo:hi, lo:hi]
    floor = floor_grey / (np.median(g[disk]) + 8)
    best = (0.0, 0.0, 0.0)
    off = np.abs(np.arange(Rc.shape[1]) - (Rc.shape[1] - 1) / 2) * UM
    for ang in np.arange(0, 180, 1.5):
        if min(ang % 90, 90 - ang % 90) < axis_excl:
            continue
        rr = ndimage.rotate(Rc, ang, reshape=False, order=1)
        mm = ndimage.rotate(mc, ang, reshape=False, order=1)
        ma = ndimage.rotate(mA, ang, reshape=False, order=1)
        cs, cn = rr.sum(0), mm.sum(0)
        ok = cn > 40
        prof = np.where(ok, cs / np.maximum(cn, 1), 0.0)
        base = ndimage.median_filter(prof, size=15, mode="nearest")
        d = prof - base
        sd = max(np.median(np.abs(d[ok])) * 1.4826, floor)
        z = np.where(ok & (off <= 12.5), np.abs(d) / sd, 0.0)
        na = ma.sum(0)
        dA = np.where(na >= 4, (rr * ma).sum(0) / np.maximum(na, 1), 0.0) - base
        zA = np.abs(dA) / sd * np.sqrt(np.maximum(na, 1) / np.maximum(cn, 1))
        zA = np.where((np.sign(dA) == np.sign(d)) & (na >= 4), zA, 0.0)
        zz = np.minimum(z, 3 * zA)
        i = int(np.argmax(zz))
        if zz[i] > best[0]:
            best = (float(zz[i]), float(ang), float(off[i]))
    return best


def dump(ds: Path, cfg: str, binary: str, work: Path) -> list[tuple[dict, dict, Path]]:
    labels = [json.loads(line) for line in (ds / "labels.jsonl").read_text().splitlines() if line.strip()]
    groups = collections.defaultdict(list)
    for lab in labels:
        kind = lab["image"].split("/")[1]
        if kind not in ("good", "scratch"):
            continue
        sx = lab.get("um_per_px_x", lab.get("um_per_px"))
        sy = lab.get("um_per_px_y", lab.get("um_per_px"))
        groups[(kind, sx, sy, lab.get("fiber", "sm-upc"))].append(lab)
    out = []
    for (kind, sx, sy, fiber), labs in groups.items():
        d = work / ds.name / kind
        d.mkdir(parents=True, exist_ok=True)
        cmd = [binary, "inspect", "--json", "-q", "--config", cfg, "--um-per-px", str(sx), "--um-per-px-y", str(sy),
               "--profile", fiber, "--dump-tensors", str(d)] + [str(ds / lab["image"]) for lab in labs]
        p = subprocess.run(cmd, capture_output=True, text=True)
        results = [json.loads(s) for s in p.stdout.splitlines() if s.startswith("{")]
        if len(results) != len(labs):
            sys.exit(f"zone_a_line_study: inspect gave {len(results)} results for {len(labs)} images in {ds}: {p.stderr[-400:]}")
        for lab, res in zip(labs, results):
            out.append((lab, res, d / (Path(lab["image"]).stem + ".input.f32")))
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("datasets", nargs="+", type=Path)
    ap.add_argument("--config", required=True)
    ap.add_argument("--endface", default="target/release/endface")
    ap.add_argument("--work", type=Path, default=Path("/tmp/zone-a-line-study"))
    a = ap.parse_args(argv)
    for ds in a.datasets:
        good, no_a, upc_a = [], [], []
        for lab, res, f in dump(ds, a.config, a.endface, a.work):
            if not f.exists():
                continue  # not graded (UNABLE): no tensors
            z = line_z(np.fromfile(f, np.float32).reshape(S, S))[0]
            name = lab["image"]
            zone_a = [d for d in lab.get("defects", []) if d.get("zone") == "A"]
            if "/good/" in name:
                good.append((round(z, 1), name))
            elif not zone_a:
                no_a.append((round(z, 1), name))
            elif lab.get("fiber") == "sm-upc":
                upc_a.append((round(z, 1), name, res.get("verdict"), lab.get("verdict")))
        print(f"{ds}: good max {sorted(good, reverse=True)[:3]}")
        print(f"  scratch frames without a zone-A defect, max {sorted(no_a, reverse=True)[:3]}")
        print(f"  single-mode UPC frames with a zone-A line (z, image, station, label): {sorted(upc_a)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
