"""scripts/check_parity.py (Rust inspector vs Python onnxruntime and the NumPy twin, 1e-4) passes
on synthetic frames as rendered, at a third of their exposure (gained up), with stuck pixels
(replaced) and with horizontal bands (divided out). It once reported the anomaly map as EXCEEDING on every ordinary frame because it did
not leave out the crop pixels beyond the frame, as the station does: this keeps it honest.

    ENDFACE_BIN=target/debug/endface .venv/bin/python -m pytest tests/python/test_check_parity.py -q
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def test_check_parity_passes_on_plain_dim_stuck_pixel_and_banded_frames(tmp_path, endface_bin):
    data = tmp_path / "synth"
    subprocess.run([str(endface_bin), "-q", "synth", "--out", str(data), "--seed", "80", "--train-good", "0",
                    "--test-good", "2", "--per-kind", "1", "--fiber", "sm-upc", "--um-per-px", "0.5",
                    "--aspect", "1.0"], check=True)
    frames = sorted((data / "test").rglob("*.png"))[:5]
    work = tmp_path / "frames"
    work.mkdir()
    paths = []
    rng = np.random.default_rng(1)
    for i, f in enumerate(frames):
        img = np.asarray(Image.open(f).convert("L")).astype(np.float64)
        Image.fromarray(img.astype(np.uint8)).save(work / f"{i}-plain.png")
        Image.fromarray(np.round(img / 3).astype(np.uint8)).save(work / f"{i}-dim.png")
        s = img.copy()
        ys, xs = rng.integers(4, s.shape[0] - 4, 25), rng.integers(4, s.shape[1] - 4, 25)
        s[ys, xs] = np.where(s[ys, xs] > 128, 0, 255)
        Image.fromarray(s.astype(np.uint8)).save(work / f"{i}-stuck.png")
        rows = np.arange(img.shape[0])[:, None]
        b = img * (1 + 0.04 * np.cos(2 * np.pi * rows / (17 + 9 * i)))
        Image.fromarray(np.clip(np.round(b), 0, 255).astype(np.uint8)).save(work / f"{i}-banded.png")
        paths += [work / f"{i}-{t}.png" for t in ("plain", "dim", "stuck", "banded")]
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_parity.py"), "--manifest",
                          str(ROOT / "models" / "endface-student.manifest.json"), "--endface", str(endface_bin),
                          *map(str, paths)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "EXCEEDS" not in run.stdout
