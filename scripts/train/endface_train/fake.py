"""A tiny stand-in dataset (dataset-format layout) for the smoke test when `endface synth`
is not built. Deliberately crude: fiber disk on a ferrule, vignetting, noise; test defects are
lines, dark spots and soft blobs. Never used for the shipped model.

In: output dir, seed, counts. Out: DATASET/{train,test,ground_truth}, dataset.toml, labels.jsonl.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

W, H = 640, 480


def _sig(z):
    return 0.5 * (1 + np.tanh(0.5 * np.clip(z, -60, 60)))


def _base(rng):
    um = rng.uniform(0.48, 0.56)
    cx = W / 2 - 0.5 + rng.uniform(-25, 25)
    cy = H / 2 - 0.5 + rng.uniform(-20, 20)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    r_um = np.hypot(xx - cx, yy - cy) * um
    ferrule = 190 + 25 * np.exp(-((xx - W / 2) ** 2 + (yy - H / 2) ** 2) / (2 * 260.0**2)) - 25
    ferrule += rng.uniform(-8, 8) * (xx - W / 2) / W
    clad = 70 + rng.uniform(-10, 10)
    edge = _sig(-(r_um - 62.5) / 0.5)
    img = ferrule * (1 - edge) + clad * edge
    img += 18 * np.exp(-0.5 * ((r_um - 62.5) / 0.7) ** 2)  # bright rim
    img += 12 * _sig(-(r_um - 4.5) / 0.4)  # core
    return img, um, (cx, cy), xx, yy, r_um


def _finish(img, rng):
    img = img + rng.normal(0, 2.0, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def _defect(kind, img, rng, cx, cy, um, xx, yy, r_um):
    mask = np.zeros(img.shape, bool)
    if kind == "scratch":
        ang = rng.uniform(0, np.pi)
        off = rng.uniform(-40, 40) / um
        d = np.abs((xx - cx) * np.sin(ang) - (yy - cy) * np.cos(ang) - off)
        along = (xx - cx) * np.cos(ang) + (yy - cy) * np.sin(ang)
        half = rng.uniform(30, 70) / um
        w = rng.uniform(0.7, 2.0)
        c = rng.choice([-1, 1]) * rng.uniform(10, 35)
        prof = np.exp(-0.5 * (d / w) ** 2) * (np.abs(along) < half) * (r_um < 62.5)
        img += c * prof
        mask = prof > 0.3
    elif kind == "pit":
        for _ in range(rng.integers(1, 4)):
            r = rng.uniform(10, 50) / um
            a = rng.uniform(0, 2 * np.pi)
            px, py = cx + r * np.cos(a), cy + r * np.sin(a)
            rad = rng.uniform(1.5, 5) / um
            dd = np.hypot(xx - px, yy - py)
            prof = _sig(-(dd - rad) / 0.6)
            img -= 45 * prof
            mask |= prof > 0.5
    elif kind == "contamination":
        r = rng.uniform(5, 90) / um
        a = rng.uniform(0, 2 * np.pi)
        px, py = cx + r * np.cos(a), cy + r * np.sin(a)
        rad = rng.uniform(4, 15) / um
        dd = np.hypot((xx - px) / rng.uniform(0.6, 1.4), yy - py)
        prof = _sig(-(dd - rad) / 2.0)
        img += rng.choice([-1, 1]) * rng.uniform(20, 50) * prof
        mask = prof > 0.5
    elif kind == "chip":
        a = rng.uniform(0, 2 * np.pi)
        px, py = cx + 62.5 / um * np.cos(a), cy + 62.5 / um * np.sin(a)
        rad = rng.uniform(4, 10) / um
        dd = np.hypot(xx - px, yy - py)
        prof = _sig(-(dd - rad) / 0.7) * (r_um < 63.5)
        img = img * (1 - prof) + 200 * prof
        mask = prof > 0.5
    return img, mask


def make_fake_dataset(out: Path, seed: int = 0, train_good: int = 12, test_good: int = 4, per_kind: int = 2,
                      kinds=("scratch", "pit", "contamination", "chip")) -> Path:
    out = Path(out)
    rng = np.random.default_rng(seed)
    (out / "train" / "good").mkdir(parents=True, exist_ok=True)
    (out / "test" / "good").mkdir(parents=True, exist_ok=True)
    labels = []
    for i in range(train_good):
        img, um, c, *_ = _base(rng)
        Image.fromarray(_finish(img, rng)).save(out / "train" / "good" / f"{i:03d}.png")
    for i in range(test_good):
        img, um, c, *_ = _base(rng)
        Image.fromarray(_finish(img, rng)).save(out / "test" / "good" / f"{i:03d}.png")
        labels.append({"image": f"test/good/{i:03d}.png", "um_per_px": um, "center": list(c), "verdict": "pass"})
    for kind in kinds:
        (out / "test" / kind).mkdir(parents=True, exist_ok=True)
        (out / "ground_truth" / kind).mkdir(parents=True, exist_ok=True)
        for i in range(per_kind):
            img, um, c, xx, yy, r_um = _base(rng)
            img, mask = _defect(kind, img, rng, c[0], c[1], um, xx, yy, r_um)
            Image.fromarray(_finish(img, rng)).save(out / "test" / kind / f"{i:03d}.png")
            Image.fromarray((mask * 255).astype(np.uint8)).save(out / "ground_truth" / kind / f"{i:03d}_mask.png")
            labels.append({"image": f"test/{kind}/{i:03d}.png", "um_per_px": um, "center": list(c), "verdict": "fail"})
    (out / "dataset.toml").write_text('fiber = "sm-upc"\num_per_px = 0.52\n')
    (out / "labels.jsonl").write_text("".join(json.dumps(l) + "\n" for l in labels))
    return out
