"""The Python twin of the stuck-pixel correction (scripts/endface_ref.py `correct_stuck`) does
what the station does (src/inspect/hotpixel.rs): on synthetic frames with hot and dead pixels
added (and a particle at the optics' resolution limit that must be kept), the station replaces
as many pixels as the twin, and the crop it feeds the model equals the twin's to 1e-4.

    ENDFACE_BIN=target/debug/endface .venv/bin/python -m pytest tests/python/test_hotpixel_twin.py -q
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


def _flat(seed=0, h=40, w=48):
    rng = np.random.default_rng(seed)
    return np.clip(150 + rng.normal(0, 3, (h, w)), 0, 255).astype(np.uint8)


def test_rule():
    f = _flat()
    assert ref.correct_stuck(f)[1] == 0
    g = f.copy()
    g[10, 10], g[20, 30], g[1, 1] = 255, 0, 255  # the last within 2 px of the edge: left alone
    out, n = ref.correct_stuck(g)
    assert n == 2 and abs(int(out[10, 10]) - 150) < 10 and abs(int(out[20, 30]) - 150) < 10 and out[1, 1] == 255
    # a spot the optics drew (Gaussian, sigma 0.8 px): kept
    yy, xx = np.mgrid[0:40, 0:48]
    spot = np.clip(f + 90 * np.exp(-((xx - 24) ** 2 + (yy - 20) ** 2) / (2 * 0.64)), 0, 255).astype(np.uint8)
    assert ref.correct_stuck(spot)[1] == 0


def test_the_station_replaces_what_the_twin_does(tmp_path, endface_bin):
    exe = endface_bin
    data = tmp_path / "synth"
    subprocess.run([str(exe), "-q", "synth", "--out", str(data), "--seed", "79", "--train-good", "0",
                    "--test-good", "3", "--per-kind", "0", "--fiber", "sm-upc", "--um-per-px", "0.5",
                    "--aspect", "1.0", "--jpeg-prob", "0"], check=True)
    frames = sorted((data / "test" / "good").glob("*.png"))
    work = tmp_path / "frames"
    work.mkdir()
    rng = np.random.default_rng(3)
    paths, added = [], {}
    for f in frames:
        img = np.asarray(Image.open(f).convert("L")).copy()
        h, w = img.shape
        ys, xs = rng.integers(4, h - 4, 40), rng.integers(4, w - 4, 40)
        img[ys, xs] = np.where(img[ys, xs] > 128, 0, 255)
        p = work / f"{f.stem}-stuck.png"
        Image.fromarray(img).save(p)
        paths.append(p)
        added[p.stem] = ref.correct_stuck(img)[1]
    dump = tmp_path / "dump"
    run = subprocess.run([str(exe), "-q", "inspect", "--json", "--um-per-px", "0.5", "--dump-tensors", str(dump),
                          *map(str, paths)], capture_output=True, text=True)
    assert run.returncode in (0, 1, 3), run.stderr
    manifest = json.loads(MANIFEST.read_text())
    _, _, h, w = manifest["input"]["shape"]
    compared = 0
    for line in run.stdout.splitlines():
        res = json.loads(line)
        stem = Path(res["image"]).stem
        assert res["stuck_pixels"] == added[stem], (stem, res["stuck_pixels"], added[stem])
        assert added[stem] >= 30, added[stem]  # most of the 40 (two may touch, a few sit on their like)
        meta_path = dump / f"{stem}.meta.json"
        if not meta_path.exists():
            continue
        meta = json.loads(meta_path.read_text())
        frame = ref.precondition(np.asarray(Image.open(res["image"]).convert("L")))
        crop = ref.crop_frame(frame, meta["center_in_frame"], [meta["um_per_px_x"], meta["um_per_px_y"]],
                              float(manifest["um_per_px"]), int(w), int(h))
        view = ref.in_view_mask(meta["center_in_frame"], [meta["um_per_px_x"], meta["um_per_px_y"]],
                                float(manifest["um_per_px"]), int(w), int(h), ref.frame_content(frame))
        crop, _, _ = ref.expose(crop, manifest, meta["contact_radius_um"], view=view)
        x_py = ref.normalize(crop, manifest)
        x_rs = np.fromfile(dump / meta["files"]["input"], dtype="<f4").reshape(x_py.shape)
        assert np.max(np.abs(x_py - x_rs)) < 1e-4, stem
        compared += 1
    assert compared >= 2, compared
