#!/usr/bin/env python3
"""Copies of a labelled dataset (docs/dataset-format.md) seen through camera responses the
synthetic camera does not use, to check that the model and the locator do not lean on the
renderer's own tone curve, exposure, noise, compression or focus.

    .venv/bin/python scripts/perturb_dataset.py SRC OUT_ROOT [VARIANT...]
    endface eval OUT_ROOT/pert-VARIANT --config firmware-config/demo.toml --json

Variants (default: all): gamma06 / gamma16 (tone curve), dim60 (exposure x0.6), lowcontrast
(contrast x0.6 about mid-grey), noise6 (Gaussian read noise, sigma 6 grey levels), jpeg60 (JPEG
quality 60, stored losslessly again), blur1 (Gaussian blur sigma 1 px); and harsher ones: over160
(exposure x1.6, highlights clipped), dim35 (exposure x0.35: the station gains it back up),
poster5 (5-bit grey levels), jpeg30 (JPEG quality 30), bandrows (a 4 % row-gain ripple, as LED
flicker on a rolling shutter gives). Labels, masks and the
dataset's scale are unchanged: none of these moves or resizes anything. Deterministic (seeded).
"""
from __future__ import annotations

import io
import os
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter


def _tone(a: np.ndarray, name: str, rng: np.random.Generator) -> np.ndarray:
    if name == "gamma06":
        return 255.0 * (a / 255.0) ** 0.6
    if name == "gamma16":
        return 255.0 * (a / 255.0) ** 1.6
    if name == "dim60":
        return a * 0.6
    if name == "lowcontrast":
        return 128.0 + (a - 128.0) * 0.6
    if name == "noise6":
        return a + rng.normal(0.0, 6.0, a.shape)
    if name == "over160":
        return a * 1.6
    if name == "dim35":
        return a * 0.35
    if name == "poster5":
        return np.floor(a / 8.0) * 8.0 + 4.0
    if name == "bandrows":
        rows = np.arange(a.shape[0], dtype=np.float64)
        ripple = 0.6 * np.sin(2 * np.pi * rows / 23.0 + 0.7) + 0.4 * np.sin(2 * np.pi * rows / 7.3)
        g = 1.0 + 0.04 * ripple
        return a * (g[:, None] if a.ndim == 2 else g[:, None, None])
    raise ValueError(name)


VARIANTS = ("gamma06", "gamma16", "dim60", "lowcontrast", "noise6", "jpeg60", "blur1", "over160", "dim35", "poster5",
            "jpeg30", "bandrows")


def perturb(img: Image.Image, name: str, rng: np.random.Generator) -> Image.Image:
    if img.mode not in ("L", "RGB"):
        img = img.convert("L")
    if name in ("jpeg60", "jpeg30"):
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=int(name[4:]))
        buf.seek(0)
        return Image.open(buf).convert(img.mode)
    if name == "blur1":
        return img.filter(ImageFilter.GaussianBlur(1.0))
    a = np.asarray(img).astype(np.float64)
    return Image.fromarray(np.clip(np.round(_tone(a, name, rng)), 0, 255).astype(np.uint8))


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 2 if len(argv) < 2 else 0
    src, root = Path(argv[0]), Path(argv[1])
    names = argv[2:] or list(VARIANTS)
    bad = [n for n in names if n not in VARIANTS]
    if bad:
        print(f"perturb_dataset: unknown variant(s) {bad}; known: {', '.join(VARIANTS)}", file=sys.stderr)
        return 2
    if not (src / "labels.jsonl").is_file() or not (src / "test").is_dir():
        print(f"perturb_dataset: {src} has no labels.jsonl and test/ (docs/dataset-format.md)", file=sys.stderr)
        return 2
    for name in names:
        rng = np.random.default_rng(5)
        dst = root / f"pert-{name}"
        if dst.exists():
            shutil.rmtree(dst)
        dst.mkdir(parents=True)
        for f in ("dataset.toml", "labels.jsonl"):
            if (src / f).exists():
                shutil.copy(src / f, dst / f)
        if (src / "ground_truth").is_dir():
            os.symlink((src / "ground_truth").resolve(), dst / "ground_truth")
        n = 0
        for p in sorted((src / "test").rglob("*")):
            if p.suffix.lower() not in (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"):
                continue
            q = dst / p.relative_to(src)
            q.parent.mkdir(parents=True, exist_ok=True)
            with Image.open(p) as im:
                perturb(im, name, rng).save(q)
            n += 1
        print(f"{dst}: {n} images")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
