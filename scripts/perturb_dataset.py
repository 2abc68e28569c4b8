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
flicker on a rolling shutter gives), blur2 / blur3 / blur4 (defocus, Gaussian sigma 2 / 3 / 4 px:
what `[locate] min_focus` must turn into UNABLE before defects vanish into a false PASS). Labels, masks and the
dataset's scale are unchanged: none of these moves or resizes anything. Deterministic (seeded).

Geometric variants move the picture and take the labels and masks with it: rot90 (the frame
turned a quarter turn clockwise: portrait frames, x and y scales swapped), mag160 and mag070
(1.6x / 0.7x the magnification: bicubic, µm per pixel / 1.6 or / 0.7; masks nearest-neighbour
when enlarged, any covered pixel when shrunk). They are not in the default list; name them.
"""
from __future__ import annotations

import io
import json
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
            "jpeg30", "bandrows", "blur2", "blur3", "blur4")
# Gaussian defocus, sigma in frame pixels
BLURS = {"blur1": 1.0, "blur2": 2.0, "blur3": 3.0, "blur4": 4.0}
GEOMETRIC = ("rot90", "mag160", "mag070")
MAGS = {"mag160": 1.6, "mag070": 0.7}


def move_point(name: str, xy: list[float], size: tuple[int, int]) -> list[float]:
    """A frame point (pixel centres on integers) after the geometric variant; size = (w, h)
    of the frame before it."""
    x, y = xy
    w, h = size
    if name == "rot90":
        return [h - 1 - y, x]
    if name in MAGS:
        k = MAGS[name]
        return [(x + 0.5) * k - 0.5, (y + 0.5) * k - 0.5]
    raise ValueError(name)


def move_bbox(name: str, b: list[int], size: tuple[int, int]) -> list[int]:
    """An inclusive pixel box [x0, y0, x1, y1] after the geometric variant."""
    x0, y0, x1, y1 = b
    w, h = size
    if name == "rot90":
        return [h - 1 - y1, x0, h - 1 - y0, x1]
    if name in MAGS:
        k = MAGS[name]
        nw, nh = round(w * k), round(h * k)
        return [int(np.floor(x0 * k)), int(np.floor(y0 * k)),
                min(nw - 1, int(np.ceil((x1 + 1) * k)) - 1), min(nh - 1, int(np.ceil((y1 + 1) * k)) - 1)]
    raise ValueError(name)


def move_label(name: str, lab: dict, size: tuple[int, int]) -> dict:
    """A labels.jsonl row after the geometric variant: centre, radii, scale, boxes."""
    out = dict(lab)
    ux = lab.get("um_per_px_x", lab.get("um_per_px"))
    uy = lab.get("um_per_px_y", ux)
    if "center" in lab:
        out["center"] = move_point(name, lab["center"], size)
    rx, ry = lab.get("cladding_radius_px"), lab.get("cladding_radius_px_y", lab.get("cladding_radius_px"))
    if name == "rot90":
        if ux is not None:
            out["um_per_px_x"], out["um_per_px_y"] = uy, ux
            out["um_per_px"] = uy
        if rx is not None:
            out["cladding_radius_px"], out["cladding_radius_px_y"] = ry, rx
        if "aspect_y_over_x" in lab and lab["aspect_y_over_x"]:
            out["aspect_y_over_x"] = 1.0 / lab["aspect_y_over_x"]
    else:
        mag = MAGS[name]
        for k in ("um_per_px", "um_per_px_x", "um_per_px_y"):
            if lab.get(k) is not None:
                out[k] = lab[k] / mag
        for k in ("cladding_radius_px", "cladding_radius_px_y"):
            if lab.get(k) is not None:
                out[k] = lab[k] * mag
    for key in ("defects", "outside_defects"):
        if isinstance(lab.get(key), list):
            out[key] = [dict(d, bbox=move_bbox(name, d["bbox"], size)) if "bbox" in d else d for d in lab[key]]
    return out


def move_image(img: Image.Image, name: str, mask: bool = False) -> Image.Image:
    if name == "rot90":
        return img.transpose(Image.Transpose.ROTATE_270)  # PIL turns counter-clockwise
    if name in MAGS:
        w, h = img.size
        k = MAGS[name]
        # bicubic (antialiased when shrinking); masks nearest-neighbour when enlarged, and when
        # shrunk every pixel that any defect pixel falls in (nearest would drop thin lines)
        if mask and k < 1:
            small = img.convert("L").resize((round(w * k), round(h * k)), Image.Resampling.BOX)
            return small.point(lambda v: 255 if v > 0 else 0)
        return img.resize((round(w * k), round(h * k)), Image.Resampling.NEAREST if mask else Image.Resampling.BICUBIC)
    raise ValueError(name)


def perturb(img: Image.Image, name: str, rng: np.random.Generator) -> Image.Image:
    if img.mode not in ("L", "RGB"):
        img = img.convert("L")
    if name in ("jpeg60", "jpeg30"):
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=int(name[4:]))
        buf.seek(0)
        return Image.open(buf).convert(img.mode)
    if name in BLURS:
        return img.filter(ImageFilter.GaussianBlur(BLURS[name]))
    a = np.asarray(img).astype(np.float64)
    return Image.fromarray(np.clip(np.round(_tone(a, name, rng)), 0, 255).astype(np.uint8))


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 2 if len(argv) < 2 else 0
    src, root = Path(argv[0]), Path(argv[1])
    names = argv[2:] or list(VARIANTS)
    bad = [n for n in names if n not in VARIANTS + GEOMETRIC]
    if bad:
        print(f"perturb_dataset: unknown variant(s) {bad}; known: {', '.join(VARIANTS + GEOMETRIC)}", file=sys.stderr)
        return 2
    if not (src / "labels.jsonl").is_file() or not (src / "test").is_dir():
        print(f"perturb_dataset: {src} has no labels.jsonl and test/ (docs/dataset-format.md)", file=sys.stderr)
        return 2
    for name in names:
        if name in GEOMETRIC:
            print(f"{geometric(src, root, name)}")
            continue
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


def geometric(src: Path, root: Path, name: str) -> str:
    """Write root/pert-NAME: every test image, its mask and its label moved by the variant."""
    dst = root / f"pert-{name}"
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    if (src / "dataset.toml").exists():
        shutil.copy(src / "dataset.toml", dst / "dataset.toml")
    labels = {}
    for line in (src / "labels.jsonl").read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            labels[row["image"]] = row
    rows, n = [], 0
    for p in sorted((src / "test").rglob("*")):
        if p.suffix.lower() not in (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"):
            continue
        rel = p.relative_to(src).as_posix()
        q = dst / rel
        q.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(p) as im:
            size = im.size
            moved = move_image(im, name)
        # stored losslessly (a JPEG source is not compressed twice)
        q = q.with_suffix(".png") if q.suffix.lower() in (".jpg", ".jpeg") else q
        moved.save(q)
        kind, stem = p.parent.name, p.stem
        m = src / "ground_truth" / kind / f"{stem}_mask.png"
        if m.is_file():
            (dst / "ground_truth" / kind).mkdir(parents=True, exist_ok=True)
            with Image.open(m) as mi:
                move_image(mi, name, mask=True).save(dst / "ground_truth" / kind / m.name)
        if rel in labels:
            row = move_label(name, labels[rel], size)
            row["image"] = q.relative_to(dst).as_posix()
            rows.append(row)
        n += 1
    with open(dst / "labels.jsonl", "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    return f"{dst}: {n} images"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
