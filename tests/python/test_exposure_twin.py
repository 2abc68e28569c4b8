"""The Python twin of the exposure gain (scripts/endface_ref.py `expose`) does what the station
does (src/inspect/exposure.rs): on synthetic frames at their own exposure, at a third of it
(gained up) and at a tenth (too dark: UNABLE), the station's bright level and gain equal the
twin's, and the crop it feeds the model equals the twin's to 1e-4.

    ENDFACE_BIN=target/debug/endface .venv/bin/python -m pytest tests/python/test_exposure_twin.py -q
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


def test_gain_rule():
    assert ref.exposure_gain(96.0) == 1.0
    assert ref.exposure_gain(250.0) == 1.0
    assert abs(ref.exposure_gain(64.0) - 2.0) < 1e-12
    assert abs(ref.exposure_gain(32.0) - 4.0) < 1e-12
    assert ref.exposure_gain(31.0) is None
    # measured at even coordinates: 100 of these 400 pixels
    mask = np.ones((20, 20), bool)
    crop = np.full((20, 20), 40.0)
    crop[0, 0] = 200.0  # 1 % of the measured pixels: at the 99th percentile itself
    assert ref.bright_level(crop, mask) == 40.0
    crop[0, 1] = crop[1, 0] = crop[1, 1] = 200.0  # odd coordinates: not measured
    assert ref.bright_level(crop, mask) == 40.0
    crop[0, 2] = 200.0
    assert ref.bright_level(crop, mask) == 200.0


def test_the_station_gain_equals_the_twin(tmp_path, endface_bin):
    exe = endface_bin
    data = tmp_path / "synth"
    subprocess.run([str(exe), "-q", "synth", "--out", str(data), "--seed", "78", "--train-good", "0",
                    "--test-good", "3", "--per-kind", "0", "--fiber", "sm-upc", "--um-per-px", "0.5",
                    "--aspect", "1.0", "--jpeg-prob", "0"], check=True)
    frames = sorted((data / "test" / "good").glob("*.png"))
    work = tmp_path / "frames"
    work.mkdir()
    paths = []
    for f in frames:
        img = np.asarray(Image.open(f).convert("L")).astype(np.float64)
        for tag, k in (("k100", 1.0), ("k033", 1 / 3), ("k010", 0.1)):
            p = work / f"{f.stem}-{tag}.png"
            Image.fromarray(np.clip(np.round(img * k), 0, 255).astype(np.uint8)).save(p)
            paths.append(p)
    dump = tmp_path / "dump"
    run = subprocess.run([str(exe), "-q", "inspect", "--json", "--um-per-px", "0.5", "--dump-tensors", str(dump),
                          *map(str, paths)], capture_output=True, text=True)
    assert run.returncode in (0, 1, 3), run.stderr
    results = {Path(json.loads(line)["image"]).stem: json.loads(line) for line in run.stdout.splitlines()}
    manifest = json.loads(MANIFEST.read_text())
    _, _, h, w = manifest["input"]["shape"]
    seen = {"k100": 0, "k033": 0, "k010": 0}
    for p in paths:
        res = results[p.stem]
        tag = p.stem.rsplit("-", 1)[1]
        if tag == "k010":
            assert res["verdict"] == "unable", res
            assert res["reasons"][0].startswith("frame too dark"), res["reasons"]
            assert res["exposure_gain"] is None and res["bright_level"] < 32
            assert not (dump / f"{p.stem}.meta.json").exists()
            seen[tag] += 1
            continue
        meta = json.loads((dump / f"{p.stem}.meta.json").read_text())
        frame = ref.precondition(np.asarray(Image.open(p).convert("L")))
        crop = ref.crop_frame(frame, meta["center_in_frame"], [meta["um_per_px_x"], meta["um_per_px_y"]],
                              float(manifest["um_per_px"]), int(w), int(h))
        view = ref.in_view_mask(meta["center_in_frame"], [meta["um_per_px_x"], meta["um_per_px_y"]],
                                float(manifest["um_per_px"]), int(w), int(h), ref.frame_content(frame))
        gained, level, gain = ref.expose(crop, manifest, meta["contact_radius_um"], view=view)
        assert level == res["bright_level"], (p.name, level, res["bright_level"])
        assert abs(gain - res["exposure_gain"]) < 1e-5, (p.name, gain, res["exposure_gain"])
        if tag == "k100":
            assert gain == 1.0, (p.name, level)
        else:
            assert 1.0 < gain <= ref.MAX_GAIN, (p.name, level, gain)
        x_py = ref.normalize(gained, manifest)
        x_rs = np.fromfile(dump / meta["files"]["input"], dtype="<f4").reshape(x_py.shape)
        assert np.max(np.abs(x_py - x_rs)) < 1e-4, p.name
        seen[tag] += 1
    assert seen == {"k100": 3, "k033": 3, "k010": 3}, seen
