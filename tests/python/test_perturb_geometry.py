"""scripts/perturb_dataset.py's geometric variants (rot90, mag160) move every label with the
picture: the labelled centre stays on the fiber, the mask stays on the defect.

    .venv/bin/python -m pytest tests/python/test_perturb_geometry.py -q
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import perturb_dataset as P  # noqa: E402


def test_four_quarter_turns_give_back_every_point_and_box():
    size = (640, 480)
    p, b = [123.25, 77.5], [10, 20, 30, 44]
    s = size
    for _ in range(4):
        p, b = P.move_point("rot90", p, s), P.move_bbox("rot90", b, s)
        s = (s[1], s[0])
    assert p == [123.25, 77.5] and b == [10, 20, 30, 44]


def test_a_quarter_turn_swaps_the_scales_and_radii():
    lab = {"image": "x.png", "um_per_px_x": 0.5, "um_per_px_y": 0.45, "center": [300.0, 200.0],
           "cladding_radius_px": 125.0, "cladding_radius_px_y": 138.9, "aspect_y_over_x": 1.111}
    out = P.move_label("rot90", lab, (640, 480))
    assert (out["um_per_px_x"], out["um_per_px_y"]) == (0.45, 0.5)
    assert (out["cladding_radius_px"], out["cladding_radius_px_y"]) == (138.9, 125.0)
    assert out["center"] == [279.0, 300.0]
    assert abs(out["aspect_y_over_x"] - 1 / 1.111) < 1e-12


def test_magnification_keeps_the_frame_centre_and_scales_the_micrometres():
    lab = {"image": "x.png", "um_per_px": 0.64, "center": [319.5, 239.5], "cladding_radius_px": 97.6}
    out = P.move_label("mag160", lab, (640, 480))
    assert np.allclose(out["center"], [(640 * 1.6 - 1) / 2, (480 * 1.6 - 1) / 2])
    assert np.isclose(out["um_per_px"], 0.4) and np.isclose(out["cladding_radius_px"], 97.6 * 1.6)


def test_the_mask_and_the_bbox_follow_the_defect(tmp_path):
    src = tmp_path / "src"
    (src / "test" / "pit").mkdir(parents=True)
    (src / "ground_truth" / "pit").mkdir(parents=True)
    img = np.full((48, 64), 200, np.uint8)
    mask = np.zeros((48, 64), np.uint8)
    img[10:14, 40:46] = 20  # a dark pit, off centre
    mask[10:14, 40:46] = 255
    Image.fromarray(img).save(src / "test" / "pit" / "0000.png")
    Image.fromarray(mask).save(src / "ground_truth" / "pit" / "0000_mask.png")
    lab = {"image": "test/pit/0000.png", "um_per_px": 0.5, "center": [31.5, 23.5], "cladding_radius_px": 20.0,
           "verdict": "fail", "defects": [{"kind": "pit", "zone": "B", "size_um": 3.0, "bbox": [40, 10, 45, 13]}]}
    (src / "labels.jsonl").write_text(json.dumps(lab) + "\n")
    for name in ("rot90", "mag160", "mag070"):
        P.geometric(src, tmp_path / "out", name)
        dst = tmp_path / "out" / f"pert-{name}"
        row = json.loads((dst / "labels.jsonl").read_text())
        im = np.asarray(Image.open(dst / "test" / "pit" / "0000.png"))
        m = np.asarray(Image.open(dst / "ground_truth" / "pit" / "0000_mask.png")) > 0
        assert im.shape == m.shape
        # the mask covers the dark pixels, and the labelled box covers the mask
        assert im[m].mean() < 60 and im[~m].mean() > 150
        ys, xs = np.nonzero(m)
        x0, y0, x1, y1 = row["defects"][0]["bbox"]
        assert x0 <= xs.min() and xs.max() <= x1 and y0 <= ys.min() and ys.max() <= y1


def test_defocus_variants_blur_more_as_sigma_grows_and_keep_the_mean():
    # A vertical step edge: its 10-90 % rise widens with sigma; the mean grey level stays.
    a = np.zeros((64, 64), np.uint8)
    a[:, 32:] = 200
    img = Image.fromarray(a)
    rng = np.random.default_rng(0)
    widths = []
    for name in ("blur1", "blur2", "blur3", "blur4"):
        out = np.asarray(P.perturb(img, name, rng)).astype(float)
        row = out[32]
        widths.append(int(((row > 20) & (row < 180)).sum()))
        assert abs(out[:, 8:56].mean() - a[:, 8:56].mean()) < 1.0
    assert widths == sorted(widths) and widths[0] < widths[-1]
