"""scripts/alt_render.py: the independent end-face renderer grades by the IEC tables, keeps its
masks inside the contact zone with the right zone labels, and writes the dataset layout.

    .venv/bin/python -m pytest tests/python/test_alt_render.py -q
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import alt_render as A  # noqa: E402


def D(kind, zone, size):
    return {"kind": kind, "zone": zone, "size_um": size}


def verdict(fiber, defects):
    return A.grade(fiber, defects)[0]


# ---------------------------------------------------------------- the tables, at their boundaries


def test_zone_radii():
    for fiber in ("sm-upc", "sm-apc"):
        assert A.zone_of(12.49, fiber) == "A" and A.zone_of(12.5, fiber) == "B"
        assert A.zone_of(32.6, fiber) == "B"
        assert A.zone_of(57.49, fiber) == "B" and A.zone_of(57.5, fiber) == "C"
        assert A.zone_of(67.49, fiber) == "C" and A.zone_of(67.5, fiber) == "D"
        assert A.zone_of(124.99, fiber) == "D" and A.zone_of(125.0, fiber) is None
    assert A.zone_of(32.49, "mm") == "A" and A.zone_of(32.5, "mm") == "B"
    assert A.zone_of(57.49, "mm") == "B" and A.zone_of(67.5, "mm") == "D"


@pytest.mark.parametrize("fiber", ["sm-upc", "sm-apc"])
def test_sm_zone_b_defects(fiber):
    assert verdict(fiber, [D("pit", "B", 1.99)] * 100) == "pass"  # no limit < 2 um
    assert verdict(fiber, [D("pit", "B", 2.0)] * 5) == "pass"  # 5 from 2-5 um
    v, reasons = A.grade(fiber, [D("pit", "B", 2.0)] * 6)  # the 6th fails
    assert v == "fail" and any("6" in r for r in reasons)
    assert verdict(fiber, [D("contamination", "B", 5.0)] * 5 + [D("pit", "B", 1.0)] * 9) == "pass"
    assert verdict(fiber, [D("contamination", "B", 5.01)]) == "fail"  # none > 5 um
    assert verdict(fiber, [D("chip", "B", 6.0)]) == "fail"  # not the wrong "10 um in zone B" rule
    assert verdict(fiber, [D("pit", "B", 4.0)] * 3 + [D("pit", "B", 2.5)] * 3) == "fail"


@pytest.mark.parametrize("fiber", ["sm-upc", "sm-apc"])
def test_sm_scratches_and_zones_c_d(fiber):
    assert verdict(fiber, [D("scratch", "B", 3.0)] * 20) == "pass"  # no limit <= 3 um
    assert verdict(fiber, [D("scratch", "B", 3.01)]) == "fail"
    assert verdict(fiber, [D("scratch", "C", 50.0), D("pit", "C", 50.0)]) == "pass"  # C: no limit
    assert verdict(fiber, [D("scratch", "D", 6.0)] * 10) == "pass"
    assert verdict(fiber, [D("pit", "D", 9.99)] * 30) == "pass"
    assert verdict(fiber, [D("pit", "D", 10.0)]) == "fail"  # zone D: none >= 10 um
    assert verdict(fiber, [D("pit", "A", 0.5)]) == "fail"  # zone A: no defects
    assert verdict(fiber, []) == "pass"


def test_sm_zone_a_scratches_upc_vs_apc():
    assert verdict("sm-upc", [D("scratch", "A", 0.5)]) == "fail"  # UPC: none
    assert verdict("sm-apc", [D("scratch", "A", 3.0)] * 4) == "pass"  # APC: 4 <= 3 um
    assert verdict("sm-apc", [D("scratch", "A", 3.0)] * 5) == "fail"
    assert verdict("sm-apc", [D("scratch", "A", 3.01)]) == "fail"


def test_multimode_limits():
    mm = "mm"
    # zone A: scratches no limit <= 3; defects 4 <= 5 um, none > 5
    assert verdict(mm, [D("scratch", "A", 3.0)] * 10) == "pass"
    assert verdict(mm, [D("scratch", "A", 3.01)]) == "fail"
    assert verdict(mm, [D("pit", "A", 5.0)] * 4) == "pass"
    assert verdict(mm, [D("pit", "A", 1.0)] * 5) == "fail"
    assert verdict(mm, [D("pit", "A", 5.01)]) == "fail"
    # zone B: scratches no limit <= 5; defects < 5 no limit, 5 from 5-10, none > 10
    assert verdict(mm, [D("scratch", "B", 5.0)] * 10) == "pass"
    assert verdict(mm, [D("scratch", "B", 5.01)]) == "fail"
    assert verdict(mm, [D("pit", "B", 4.99)] * 50) == "pass"
    assert verdict(mm, [D("pit", "B", 5.0)] * 4 + [D("chip", "B", 10.0)]) == "pass"
    assert verdict(mm, [D("pit", "B", 5.0)] * 6) == "fail"
    assert verdict(mm, [D("chip", "B", 10.01)]) == "fail"
    # zone D: < 20 no limit, 5 from 20-30, none > 30
    assert verdict(mm, [D("contamination", "D", 19.99)] * 40) == "pass"
    assert verdict(mm, [D("contamination", "D", 30.0)] * 5) == "pass"
    assert verdict(mm, [D("contamination", "D", 20.0)] * 6) == "fail"
    assert verdict(mm, [D("contamination", "D", 30.01)]) == "fail"
    # 10 um in zone D is fine for multimode, not for single-mode
    assert verdict(mm, [D("pit", "D", 10.0)]) == "pass"
    assert verdict("sm-upc", [D("pit", "D", 10.0)]) == "fail"


def test_feret_and_shape_scaling():
    sq = np.array([[0, 0], [1, 0], [1, 1], [0, 1], [0.5, 0.5]])
    assert A.feret(sq) == pytest.approx(np.sqrt(2))
    rng = np.random.default_rng(3)
    for size in (1.0, 4.9, 27.0):
        sh = A._particle_shape(rng, size)
        assert A.feret(sh.boundary()) == pytest.approx(size, rel=1e-6)


# ---------------------------------------------------------------- rendered frames


def _mask_radii(fr, sy, sx, m):
    ii, jj = np.nonzero(m)
    c = fr.cam
    return np.hypot((jj + sx.start - c.cx) * c.ux, (ii + sy.start - c.cy) * c.uy)


ORDER = {z: i for i, z in enumerate(A.ZONE_LETTERS)}


@pytest.mark.parametrize("kind", A.KINDS)
def test_defect_frames(kind):
    for i in range(3):
        fr = A.render_frame([2024, 1, A.KIND_IDS[kind], i], kind)
        c = fr.cam
        h, w = fr.mask.shape
        assert fr.image.shape[:2] == (h, w) and fr.image.dtype == np.uint8
        assert (w, h) in A.FRAME_SIZES and 0.35 <= c.ux <= 0.70
        assert fr.defects and any(d["kind"] == kind for d in fr.defects)
        # the verdict is the table's verdict of the labels
        assert (fr.verdict, fr.reasons) == A.grade(fr.fiber, fr.defects)
        # every mask pixel lies inside the 250 um contact zone
        yy, xx = np.nonzero(fr.mask)
        assert len(yy) and np.hypot((xx - c.cx) * c.ux, (yy - c.cy) * c.uy).max() <= A.CONTACT_R
        for d, (sy, sx, m) in zip(fr.defects, fr.defect_masks):
            assert m.any()
            ii, jj = np.nonzero(m)
            assert d["bbox"] == [jj.min() + sx.start, ii.min() + sy.start, jj.max() + sx.start, ii.max() + sy.start]
            # the labelled zone is the innermost zone the mask touches (within one pixel)
            rmin = _mask_radii(fr, sy, sx, m).min()
            lo = A.zone_of(max(rmin - c.pix, 0), fr.fiber)
            hi = A.zone_of(rmin + c.pix, fr.fiber) or "D"
            assert ORDER[lo] <= ORDER[d["zone"]] <= ORDER[hi], (d, rmin)
            assert d["size_um"] > 0
            if d["kind"] == "scratch":
                assert 0.5 <= d["size_um"] <= 6.0
            if d["kind"] == "chip":  # a notch at the cladding edge
                assert d["zone"] in ("B", "C") and rmin < A.CLAD_R
                assert _mask_radii(fr, sy, sx, m).max() <= A.CLAD_R + c.pix


@pytest.mark.parametrize("kind", A.KINDS)
def test_mask_is_where_the_defect_changes_the_image(kind):
    """Drawn on a flat scene (before blur and noise), a defect changes the pixels under its mask
    and nothing far from it."""
    rng = np.random.default_rng([41, A.KIND_IDS[kind]])
    cam = A.Camera(1024, 768, 0.5, 0.5, 511.5, 383.5)
    plan = A.MAKERS[kind](rng, "mm", False, cam, [])
    assert plan
    for d in plan:
        if d.kind == "scratch":
            d.params["contrast"] = -12.0
        img = np.full((cam.h, cam.w), 120.0, np.float32)
        mask = np.zeros(img.shape, bool)
        A.render_defect(d, cam, img, mask)
        change = np.abs(img - 120.0)
        assert mask.any() and change[mask].mean() > 4.0
        # a film's soft edge (half-maximum contour = mask) fades out over ~3 edge widths
        reach = 8 + (int(3 * d.params["soft"] / cam.pix) if d.variant == "film" else 0)
        far = ~ndimage.binary_dilation(mask, iterations=reach)
        assert change[far].max() < 1.0


def test_good_frames_have_no_defect_and_pass():
    for i in range(3):
        fr = A.render_frame([7, 1, 0, i], "good")
        assert not fr.mask.any() and fr.defects == [] and fr.verdict == "pass" and fr.reasons == []
        c = fr.cam
        # zones A-C are well inside the frame
        assert min(c.cx * c.ux, (c.w - 1 - c.cx) * c.ux, c.cy * c.uy, (c.h - 1 - c.cy) * c.uy) > 67.5 + 20


def test_deterministic():
    a = A.render_frame([5, 1, 2, 0], "pit")
    b = A.render_frame([5, 1, 2, 0], "pit")
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask) and a.defects == b.defects
    c = A.render_frame([6, 1, 2, 0], "pit")
    assert a.image.shape != c.image.shape or not np.array_equal(a.image, c.image)


def test_pass_fail_mix_of_planned_defects():
    """About half of the defect frames pass the tables (plan only: geometry, no pixels)."""
    passes, n = 0, 0
    for kind in A.KINDS:
        for i in range(25):
            rng = np.random.default_rng([99, kind.__len__(), i])
            fiber = A.pick(rng, {"sm-upc": .45, "sm-apc": .2, "mm": .35})
            cam = A.sample_camera(rng)
            want = bool(rng.random() < 0.5)
            plan = A.plan_defects(rng, kind, fiber, cam, want)
            assert plan and plan[0].kind == kind
            labels = [{"kind": d.kind, "zone": d.zone, "size_um": round(d.size_um, 2)} for d in plan]
            assert all(d["zone"] in A.ZONE_LETTERS for d in labels)
            passes += A.grade(fiber, labels)[0] == "pass"
            n += 1
    assert 0.25 <= passes / n <= 0.75, passes / n


def test_dataset_layout(tmp_path):
    out = tmp_path / "ds"
    A.main(["--out", str(out), "--seed", "3", "--good", "2", "--per-kind", "1", "--train-good", "1", "-q"])
    assert len(list((out / "train" / "good").iterdir())) == 1
    lines = [json.loads(s) for s in (out / "labels.jsonl").read_text().splitlines() if s.strip()]
    images = sorted(p.relative_to(out).as_posix() for p in (out / "test").rglob("*") if p.is_file())
    assert sorted(ln["image"] for ln in lines) == images and len(images) == 2 + len(A.KINDS)
    for ln in lines:
        kind = ln["image"].split("/")[1]
        assert kind in ("good",) + A.KINDS
        assert ln["fiber"] in A.FIBERS and ln["verdict"] in ("pass", "fail")
        assert ln["um_per_px"] == ln["um_per_px_x"] and ln["um_per_px_y"] > 0
        assert len(ln["center"]) == 2 and ln["cladding_radius_px"] == pytest.approx(62.5 / ln["um_per_px_x"], abs=1e-2)
        assert isinstance(ln["grade_reasons"], list)
        assert A.grade(ln["fiber"], ln["defects"])[0] == ln["verdict"]
        im = Image.open(out / ln["image"])
        assert im.mode in ("L", "RGB")
        stem = Path(ln["image"]).stem
        mask_path = out / "ground_truth" / kind / f"{stem}_mask.png"
        if kind == "good":
            assert not mask_path.exists() and ln["defects"] == [] and ln["verdict"] == "pass"
            continue
        m = np.asarray(Image.open(mask_path))
        assert m.dtype == np.uint8 and m.shape == (im.height, im.width) and set(np.unique(m)) == {0, 255}
        for d in ln["defects"]:
            assert set(d) >= {"kind", "zone", "size_um", "bbox"}
            assert d["zone"] in A.ZONE_LETTERS and all(isinstance(v, int) and v >= 0 for v in d["bbox"])
            x0, y0, x1, y1 = d["bbox"]
            assert x0 <= x1 < im.width and y0 <= y1 < im.height and m[y0:y1 + 1, x0:x1 + 1].max() == 255


# ---------------------------------------------------------------- the station on these frames


def test_the_station_locates_and_grades_every_frame_of_this_renderer(tmp_path, endface_bin):
    """A renderer the station was never tuned on: every frame (gray and RGB, PNG and JPEG,
    square and PAL-like pixels, three looks, epoxy rings and halos) loads, is located within a
    pixel of its centre and gets a pass/fail verdict (no 'unable'), through `endface eval`."""
    import subprocess

    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "alt"
    A.main(["--out", str(out), "--seed", "21", "--good", "6", "--per-kind", "4", "--train-good", "1", "-q"])
    p = subprocess.run(
        [str(endface_bin), "-q", "eval", str(out), "--config", str(root / "firmware-config" / "demo.toml"), "--json"],
        capture_output=True, text=True, timeout=900,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    r = json.loads(p.stdout)
    assert r["images"] == 22 and r["verdict_labelled"] == 22, r
    assert r["unable"] == 0, r
    loc = r["localization"]
    assert loc["not_found"] == 0 and loc["center_error_px"]["max"] <= 1.0, loc
