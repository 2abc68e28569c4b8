#!/usr/bin/env python3
"""Contact sheet: synthetic end-face frames next to the real reference photographs.

Usage:
  scripts/contact_sheet.py DATASET_OR_IMAGE_DIR... -o sheet.png [--n 16] [--tile 320]
                           [--refs ../shared/reference-images] [--masks] [--crop]

Picks --n frames spread over the given folders (dataset roots are searched for
train/good and test/<kind> images), reads the real photographs from --refs at run time
(they must never be copied into the repository), and writes one PNG grid with a caption
under every tile. --masks outlines the ground-truth mask of defect images in red.
--crop shows a 1:1 centre crop instead of the whole frame (to compare edge softness,
rim, noise and scratch faintness at full resolution).

Needs Pillow (the project venv has it). The sheet is for looking at; do not commit it.
"""
import argparse
import os
import sys

from PIL import Image, ImageDraw, ImageFile, ImageFilter

ImageFile.LOAD_TRUNCATED_IMAGES = True  # some reference JPEGs are cut short

EXTS = (".png", ".jpg", ".jpeg", ".bmp")


def find_images(root):
    out = []
    for dirpath, _dirs, files in os.walk(root):
        if "ground_truth" in dirpath.split(os.sep):
            continue
        for f in sorted(files):
            if f.lower().endswith(EXTS) and not f.endswith("_mask.png"):
                out.append(os.path.join(dirpath, f))
    return sorted(out)


def spread(items, n):
    if len(items) <= n:
        return items
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def mask_for(path):
    parts = path.split(os.sep)
    if len(parts) >= 3 and parts[-3] == "test" and parts[-2] != "good":
        root = os.sep.join(parts[:-3])
        stem = os.path.splitext(parts[-1])[0]
        m = os.path.join(root, "ground_truth", parts[-2], stem + "_mask.png")
        if os.path.exists(m):
            return m
    return None


def tile(path, size, with_mask, crop):
    im = Image.open(path)
    im.load()
    im = im.convert("L").convert("RGB")
    if with_mask:
        m = mask_for(path)
        if m:
            mk = Image.open(m).convert("L")
            edge = mk.filter(ImageFilter.FIND_EDGES)
            red = Image.new("RGB", im.size, (255, 0, 0))
            im = Image.composite(red, im, edge)
    w, h = size, size * 3 // 4
    if crop:
        cx, cy = im.width // 2, im.height // 2
        im = im.crop((cx - w // 2, cy - h // 2, cx + w // 2, cy + h // 2))
    else:
        im.thumbnail((w, h))
    canvas = Image.new("RGB", (w, h + 14), (0, 0, 0))
    canvas.paste(im, ((w - im.width) // 2, (h - im.height) // 2))
    d = ImageDraw.Draw(canvas)
    cap = os.sep.join(path.split(os.sep)[-3:])
    d.text((3, h + 1), cap[-(w // 6):], fill=(255, 255, 0))
    return canvas


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("dirs", nargs="+")
    ap.add_argument("-o", "--out", required=True)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--tile", type=int, default=320)
    ap.add_argument("--cols", type=int, default=5)
    ap.add_argument("--refs", default=None, help="reference folder (default: ../shared/reference-images "
                    "next to the repository, or two levels up for a worktree)")
    ap.add_argument("--no-refs", action="store_true")
    ap.add_argument("--masks", action="store_true")
    ap.add_argument("--crop", action="store_true")
    a = ap.parse_args()

    synth = []
    for d in a.dirs:
        synth += find_images(d) if os.path.isdir(d) else [d]
    paths = spread(synth, a.n)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    candidates = [a.refs] if a.refs else [
        os.path.join(repo, "..", "shared", "reference-images"),
        os.path.join(repo, "..", "..", "shared", "reference-images"),
    ]
    ref_dir = next((c for c in candidates if os.path.isdir(c)), None)
    refs = [] if a.no_refs or ref_dir is None else find_images(ref_dir)
    if not paths and not refs:
        sys.exit("contact_sheet: no images found")
    tiles = [tile(p, a.tile, a.masks, a.crop) for p in refs + paths]
    cols = a.cols
    rows = (len(tiles) + cols - 1) // cols
    tw, th = tiles[0].size
    sheet = Image.new("RGB", (cols * tw, rows * th), (40, 40, 40))
    for i, t in enumerate(tiles):
        sheet.paste(t, ((i % cols) * tw, (i // cols) * th))
    sheet.save(a.out)
    print(f"{a.out}: {len(refs)} reference + {len(paths)} synthetic tiles")


if __name__ == "__main__":
    main()
