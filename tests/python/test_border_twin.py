"""The Python twin of the model-input crop (scripts/endface_ref.py) treats black blanking borders
as the station does (src/inspect/border.rs): on frames with and without blanking, the crop the
Rust inspector feeds the model equals the twin's to 1e-4, and the twin's picture rectangle is
what the rule says.

    ENDFACE_BIN=target/debug/endface .venv/bin/python -m pytest tests/python/test_border_twin.py -q
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import endface_ref as ref  # noqa: E402

MANIFEST = ROOT / "models" / "endface-student.manifest.json"


def _picture(w=640, h=480, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot(xx - w / 2, yy - h / 2)
    base = np.where(r < h / 4, 70.0, 165.0)
    return np.clip(base + rng.uniform(-6, 6, (h, w)), 0, 255).astype(np.uint8)


def _blank(img, top=0, bottom=0, left=0, right=0, seed=1):
    out = img.copy()
    h, w = out.shape
    rng = np.random.default_rng(seed)
    noise = rng.integers(12, 26, out.shape).astype(np.uint8)
    mask = np.zeros(out.shape, bool)
    mask[:top] = True
    mask[h - bottom:] = True
    mask[:, :left] = True
    mask[:, w - right:] = True
    out[mask] = noise[mask]
    return out


def test_the_picture_rectangle_follows_the_rule():
    g = ref.GUARD_PX
    assert ref.frame_content(_picture()) == (0, 0, 640, 480)
    assert ref.frame_content(_blank(_picture(), top=7, left=2, right=8)) == (2 + g, 7 + g, 640 - 8 - g, 480)
    assert ref.frame_content(_blank(_picture(), bottom=5)) == (0, 0, 640, 480 - 5 - g)
    # dark to the cap (1/16 of the frame): a dark region, not blanking
    assert ref.frame_content(_blank(_picture(), top=30)) == (0, 0, 640, 480)
    # a dark background fading in from the edge: no step
    fade = np.tile(np.minimum(20 + np.arange(640) * 0.5, 120).astype(np.uint8), (480, 1))
    assert ref.frame_content(fade) == (0, 0, 640, 480)
    assert ref.frame_content(np.full((240, 320), 8, np.uint8)) == (0, 0, 320, 240)


def test_the_station_crop_equals_the_twin_with_and_without_blanking(tmp_path, endface_bin):
    exe = endface_bin
    data = tmp_path / "synth"
    subprocess.run([str(exe), "-q", "synth", "--out", str(data), "--seed", "77", "--train-good", "0",
                    "--test-good", "4", "--per-kind", "0", "--fiber", "sm-upc", "--um-per-px", "0.3",
                    "--aspect", "1.0", "--jpeg-prob", "0"], check=True)
    frames = sorted((data / "test" / "good").glob("*.png"))
    work = tmp_path / "frames"
    work.mkdir()
    paths = []
    for i, f in enumerate(frames):
        img = np.asarray(Image.open(f).convert("L"))
        for tag, x in (("plain", img), ("blank", _blank(img, top=6, left=3, right=9, seed=i))):
            p = work / f"{f.stem}-{tag}.png"
            Image.fromarray(x).save(p)
            paths.append(p)
    dump = tmp_path / "dump"
    run = subprocess.run([str(exe), "-q", "inspect", "--json", "--um-per-px", "0.3", "--dump-tensors", str(dump),
                          *map(str, paths)], capture_output=True, text=True)
    assert run.returncode in (0, 1), run.stderr  # 1: some frame failed its grading
    manifest = json.loads(MANIFEST.read_text())
    _, _, h, w = manifest["input"]["shape"]
    compared = {"plain": 0, "blank": 0}
    for p in paths:
        meta_path = dump / f"{p.stem}.meta.json"
        if not meta_path.exists():
            continue  # UNABLE (zone B leaves the frame): nothing was cropped
        meta = json.loads(meta_path.read_text())
        frame = ref.precondition(np.asarray(Image.open(p).convert("L")))
        crop = ref.crop_frame(frame, meta["center_in_frame"], [meta["um_per_px_x"], meta["um_per_px_y"]],
                              float(manifest["um_per_px"]), int(w), int(h))
        crop, _, _ = ref.expose(crop, manifest, meta["contact_radius_um"],
                                 view=ref.in_view_mask(meta["center_in_frame"], [meta["um_per_px_x"], meta["um_per_px_y"]],
                                                       float(manifest["um_per_px"]), int(w), int(h), ref.frame_content(frame)))  # a dim crop is gained up
        x_py = ref.normalize(crop, manifest)
        x_rs = np.fromfile(dump / meta["files"]["input"], dtype="<f4").reshape(x_py.shape)
        assert np.max(np.abs(x_py - x_rs)) < 1e-4, p.name
        tag = p.stem.rsplit("-", 1)[1]
        if tag == "blank":
            assert ref.frame_content(frame) != (0, 0, frame.shape[1], frame.shape[0])
            # the blanking itself never reaches the crop: the naive frame clamp would differ
            naive = ref.crop_frame(frame, meta["center_in_frame"], [meta["um_per_px_x"], meta["um_per_px_y"]],
                                   float(manifest["um_per_px"]), int(w), int(h),
                                   content=(0, 0, frame.shape[1], frame.shape[0]))
            assert np.max(np.abs(naive - crop)) > 50
        compared[tag] += 1
    assert compared["plain"] >= 1 and compared["blank"] >= 1, compared
