"""scripts/third_render.py: the third, independently written renderer passes its own self-test
(its IEC grader at the class boundaries, zone radii, masks, boxes, verdicts, determinism), and a
tiny set it renders loads in `endface eval` with every fiber located.

    .venv/bin/python -m pytest tests/python/test_third_render.py -q
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import third_render as T  # noqa: E402


def test_self_test_passes():
    assert T.self_test() == 0


def test_a_tiny_set_is_read_by_eval(tmp_path):
    out = tmp_path / "third"
    T.build(str(out), 3, 2, 1, n_train=1, log=False)
    labels = [json.loads(l) for l in (out / "labels.jsonl").read_text().splitlines()]
    assert len(labels) == 2 + 4
    assert {l["verdict"] for l in labels} <= {"pass", "fail"}
    binary = os.environ.get("ENDFACE_BIN")
    if not binary:
        pytest.skip("ENDFACE_BIN not set (scripts/test.sh sets it)")
    cfg = tmp_path / "station.toml"
    demo = (ROOT / "firmware-config" / "demo.toml").read_text()
    cfg.write_text(demo.replace("../models/", str(ROOT / "models") + "/"))
    p = subprocess.run([binary, "eval", str(out), "--config", str(cfg), "--json", "-q"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert r["localization"]["not_found"] == 0
    assert r["localization"]["n"] == len(labels)
