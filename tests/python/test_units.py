"""Fast unit checks: the CONTRACTS.md crop, the pseudo-defect generator, the metrics.

    .venv/bin/python -m pytest tests/python/test_units.py -q
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts" / "train"))

from endface_train import augment as A  # noqa: E402
from endface_train import data as D  # noqa: E402
from endface_train import evaluate as E  # noqa: E402
from endface_train import pseudo  # noqa: E402


class _Fr:
    def __init__(self, c, ux, uy):
        self.center_in_frame, self.um_per_px_x, self.um_per_px_y = c, ux, uy


def test_crop_follows_the_contract_formula():
    # a frame whose pixel (row i, col j) holds the value 2*j + 3*i (linear: bilinear is exact)
    h, w = 480, 640
    ii, jj = np.mgrid[0:h, 0:w]
    frame = (2.0 * jj + 3.0 * ii).astype(np.float32)
    cx, cy, umx, umy, s, W = 321.25, 238.5, 0.5, 0.545, 0.66, 384
    x, y = D.crop_coords((cx, cy), umx, umy, s, W, W)
    crop = D.bilinear_clamp(frame, x, y)
    for u, v in [(0, 0), (383, 0), (191, 200), (383, 383), (17, 301)]:
        xs = cx + (u - (W - 1) / 2) * s / umx
        ys = cy + (v - (W - 1) / 2) * s / umy
        xs, ys = min(max(xs, 0), w - 1), min(max(ys, 0), h - 1)  # clamp to the edge
        assert abs(crop[v, u] - (2 * xs + 3 * ys)) < 1e-3
    # the crop centre (191.5, 191.5) maps to the fiber centre
    x, y = D.crop_coords((cx, cy), umx, umy, s, 4, 4)
    assert abs(x[:, 1:3].mean() - cx) < 1e-9 and abs(y[1:3].mean() - cy) < 1e-9


def test_crop_clamps_outside_the_frame():
    frame = np.arange(12, dtype=np.float32).reshape(3, 4)
    v = D.bilinear_clamp(frame, np.array([-5.0, 10.0, 1.5]), np.array([-1.0, 7.0, 0.0]))
    assert np.allclose(v, [frame[0, 0], frame[2, 3], 1.5])


def test_augmented_sampling_with_identity_is_the_contract_crop():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (120, 160)).astype(np.uint8)
    fr = _Fr((80.3, 59.1), 0.5, 0.55)
    full = D.contract_crop(frame, fr, 0.66, 64)
    x, y = D.crop_coords(fr.center_in_frame, 0.5, 0.55, 0.66, 64, 64, affine=np.eye(2), shift_px=(0, 0),
                         window=(10, 20, 32, 16))
    patch = D.bilinear_clamp(frame, x, y) / 255.0
    assert np.allclose(patch, full[20:36, 10:42], atol=1e-6)


def test_rgb_to_gray_matches_the_rust_image_crate():
    px = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 200, 30]]], np.uint8)
    assert D.to_gray_u8(px).tolist() == [[(2126 * 255) // 10000, (7152 * 255) // 10000, (722 * 255) // 10000,
                                          (2126 * 10 + 7152 * 200 + 722 * 30) // 10000]]


def test_pseudo_defects_change_pixels_inside_their_mask():
    rng = np.random.default_rng(1)
    img = np.full((96, 96), 0.4, np.float32) + 0.02 * rng.standard_normal((96, 96)).astype(np.float32)
    for fam in ("scratch", "spot", "draem", "film", "cluster"):
        for _ in range(5):
            fn = getattr(pseudo, fam if fam != "draem" else "draem_blend")
            out, m = fn(img, rng)
            if m.any():
                assert np.abs(out - img)[m].mean() > 0.003, fam
                assert np.abs(out - img)[~m].mean() < np.abs(out - img)[m].mean(), fam
    out, m = pseudo.chip(img, rng, (48.0, 150.0), 0.66)  # cladding edge crosses the patch
    assert m.any()


def test_scratches_include_thin_faint_ones():
    rng = np.random.default_rng(2)
    img = np.full((128, 128), 0.5, np.float32)
    contrasts, widths = [], []
    for _ in range(80):
        out, m = pseudo.scratch(img, rng)
        if m.sum() > 20:
            contrasts.append(np.abs(out - img)[m].max())
            widths.append(m.sum() / max(1, np.count_nonzero(m.any(0)) + np.count_nonzero(m.any(1))) * 2)
    assert min(contrasts) < 0.03  # faint
    assert np.median(widths) < 4  # mostly thin


def test_sampler_patch_knows_the_fiber_centre():
    # a frame with a single bright pixel at the fiber centre: it must land where the sampler says
    frame = np.zeros((200, 200), np.uint8)
    frame[100, 120] = 255
    fr = _Fr((120.0, 100.0), 0.66, 0.66)
    fr.load = lambda: frame
    s = A.PairSampler([fr], 0.66, 64, 64, seed=0)
    a = A.random_affine(np.random.default_rng(3), scale=(1, 1))
    patch, c = s.clean_patch(fi=0, window=(0, 0, 64, 64), affine=a, shift=(3.0, -2.0))
    iy, ix = np.unravel_index(np.argmax(patch), patch.shape)
    assert abs(ix - c[0]) <= 1 and abs(iy - c[1]) <= 1


def test_structure_patches_hold_the_fiber_axis_or_the_cladding_edge():
    # --structure-patches: such a patch shows the fiber centre (the sampler's own c) or a point
    # whose radius (the patch's radius map) is the cladding radius; plain patches mostly neither
    frame = np.full((600, 600), 128, np.uint8)
    fr = _Fr((300.0, 300.0), 0.5, 0.5)
    fr.load = lambda: frame
    r_clad = D.CLADDING_RADIUS_UM / 0.66

    def share(p_structure):
        s = A.PairSampler([fr], 0.66, 384, 64, seed=1, p_structure=p_structure)
        rng = np.random.default_rng(5)
        hits = 0
        for _ in range(200):
            _, c = s.clean_patch(rng)
            axis = 0 <= c[0] < 64 and 0 <= c[1] < 64
            edge = np.any(np.abs(s._last_r - r_clad) < 2.0)
            hits += axis or edge
        return hits / 200

    assert share(1.0) > 0.95
    assert share(0.0) < 0.6


def test_a_patch_as_large_as_the_crop_is_the_whole_crop():
    # --patch 384 (full-crop fine-tuning): every sample is the whole contract crop, the fiber
    # centre where the shift puts it, the radius map the crop's own
    frame = np.full((600, 600), 128, np.uint8)
    fr = _Fr((300.0, 300.0), 0.5, 0.5)
    fr.load = lambda: frame
    s = A.PairSampler([fr], 0.66, 384, 384, seed=2)
    patch, c = s.clean_patch(np.random.default_rng(1), affine=np.eye(2), shift=(0.0, 0.0))
    assert patch.shape == (384, 384)
    assert abs(c[0] - 191.5) < 1e-6 and abs(c[1] - 191.5) < 1e-6
    assert s._last_r.shape == (384, 384)
    assert s._last_r.min() < 5.0 and s._last_r.max() > 260.0


def test_local_films_are_sized_in_micrometres_faint_and_off_by_default():
    from scipy import ndimage

    rng = np.random.default_rng(5)
    img = np.full((256, 256), 0.45, np.float32) + 0.01 * rng.standard_normal((256, 256)).astype(np.float32)
    s = 0.66
    sizes, deltas = [], []
    for _ in range(60):
        out, m = pseudo.local_film(img, rng, s)
        lab, n = ndimage.label(m)
        if n == 0:
            continue
        big = lab == (1 + int(np.argmax(ndimage.sum(m, lab, range(1, n + 1)))))
        if big.sum() < 0.5 * m.sum() or big[0].any() or big[-1].any() or big[:, 0].any() or big[:, -1].any():
            continue  # cut by the patch border: its size is not its own
        sizes.append(2 * np.sqrt(big.sum() / np.pi) * s)  # equivalent diameter, µm
        deltas.append(float(np.abs(out - img)[m].mean()))
        assert np.abs(out - img)[~m].mean() < np.abs(out - img)[m].mean()
    assert len(sizes) > 25
    # 6-60 µm across (irregular outlines and soft edges move the equivalent diameter a little)
    assert 3.0 < min(sizes) < 12.0 and 35.0 < max(sizes) < 90.0, (min(sizes), max(sizes))
    # a few grey levels: faint ones (< 5/255) and clear ones (> 12/255), none strong
    assert min(deltas) < 5 / 255 and max(deltas) > 12 / 255 and max(deltas) < 0.12, (min(deltas), max(deltas))
    # share 0 leaves the pseudo-defect stream exactly as it was (reproduces earlier models)
    flat = np.full((96, 96), 0.5, np.float32)
    for k in range(50):
        a = pseudo.paint(flat, np.random.default_rng(k), (48, 48), s)
        b = pseudo.paint(flat, np.random.default_rng(k), (48, 48), s, local_film_share=0.0)
        assert a[2] == b[2] and np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_grooves_are_masked_edge_to_edge_sized_in_micrometres_and_off_by_default():
    from scipy import ndimage

    rng = np.random.default_rng(7)
    img = np.full((256, 256), 0.45, np.float32)
    s = 0.66
    widths, depths = [], []
    for _ in range(80):
        out, m = pseudo.groove(img, rng, s)
        if m.sum() < 40:
            continue
        diff = out - img
        # the mask is the groove's full width: its edge pixels are still clearly changed,
        # and nothing a few pixels beyond the mask is (walls aside, which are opposite in sign)
        edge = m & ~ndimage.binary_erosion(m)
        sign = np.sign(np.median(diff[m]))
        assert (sign * diff[edge]).mean() > 0.25 * (sign * diff[m]).max()
        far = ~ndimage.binary_dilation(m, iterations=4) & ndimage.binary_dilation(m, iterations=12)
        assert (sign * diff[far]).max() < 0.5 * (sign * diff[m]).max() + 1e-6
        # width: area over the skeleton's length, in µm
        dist = ndimage.distance_transform_edt(m)
        widths.append(2 * float(dist.max()) * s)
        depths.append(float(np.abs(diff[m]).max()))
    assert len(widths) > 30
    # 1.5-7 µm wide (a discrete distance map reads a little under the true half width)
    assert min(widths) < 2.5 and 5.0 < max(widths) < 8.5, (min(widths), max(widths))
    # a few grey levels deep (3-20 of 255)
    assert min(depths) < 6 / 255 and 12 / 255 < max(depths) < 0.1, (min(depths), max(depths))
    # share 0 leaves the pseudo-defect stream exactly as it was (reproduces earlier models)
    flat = np.full((96, 96), 0.5, np.float32)
    for k in range(50):
        a = pseudo.paint(flat, np.random.default_rng(k), (48, 48), s)
        b = pseudo.paint(flat, np.random.default_rng(k), (48, 48), s, groove_share=0.0)
        assert a[2] == b[2] and np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_faint_spots_are_small_faint_visible_and_off_by_default():
    from scipy import ndimage

    rng = np.random.default_rng(11)
    img = np.full((128, 128), 0.45, np.float32)
    s = 0.66
    sizes, rel = [], []
    for _ in range(150):
        out, m = pseudo.faint_spot(img, rng, s)
        assert m.any()
        lab, n = ndimage.label(m)
        for i in range(1, n + 1):
            sizes.append(2.0 * np.sqrt((lab == i).sum() / np.pi) * s)
        rel.append(float(np.abs(out - img)[m].max() / 0.45))
        # what is marked is what changed: the marked pixels changed more than the rest
        assert np.abs(out - img)[m].mean() > np.abs(out - img)[~m].mean()
    # 1-6 µm across (a pixel at 0.66 µm/px is the smallest mask; blob outlines vary the size)
    assert min(sizes) < 1.6 and 4.5 < max(sizes) < 9.0, (min(sizes), max(sizes))
    # faint: 3-15 % (none of the `spot` family's 25-95 %; two spots of a group may overlap and
    # add up), and the faintest ones present
    assert min(rel) < 0.06 and max(rel) < 0.3 and np.median(rel) < 0.12, (min(rel), max(rel))
    # share 0 and the default halo leave the pseudo-defect stream exactly as it was
    flat = np.full((96, 96), 0.5, np.float32)
    for k in range(50):
        a = pseudo.paint(flat, np.random.default_rng(k), (48, 48), s)
        b = pseudo.paint(flat, np.random.default_rng(k), (48, 48), s, faint_spot_share=0.0, halo_in_mask=True)
        assert a[2] == b[2] and np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    # halo_in_mask=False: the same picture, and the ring is no longer part of the mask
    fewer = 0
    for k in range(400):
        a = pseudo.spot(flat, np.random.default_rng(k), 48, 48, 5.0)
        b = pseudo.spot(flat, np.random.default_rng(k), 48, 48, 5.0, halo_in_mask=False)
        assert np.array_equal(a[0], b[0]) and not (b[1] & ~a[1]).any()
        fewer += int(a[1].sum() > b[1].sum())
    assert 60 < fewer < 200, fewer  # 30 % of spots have a halo


def test_bad_training_arguments_stop_with_one_usage_line(capsys):
    import pytest

    from endface_train import pipeline as P

    base = ["--data", "nowhere"]
    for extra, said in ((["--patch", "100"], "--patch must be a multiple of 32"),
                        (["--patch", "416"], "--patch must be a multiple of 32"),
                        (["--structure-patches", "1.5"], "--structure-patches must be in [0, 1]"),
                        (["--crack-head-only"], "--crack-head-only needs --resume-student"),
                        (["--finish-share", "0.95"], "--finish-share must be in [0, 0.9]"),
                        (["--finish-patch", "400"], "--finish-patch must be a multiple of 32"),
                        (["--batch", "1"], "--batch must be between 2 and 512"),
                        (["--finish-batch", "1000"], "--finish-batch must be between 2 and 512"),
                        (["--data-workers", "-1"], "--data-workers must be between 0 and 64"),
                        (["--local-films", "1.5"], "--local-films must be in [0, 1]"),
                        (["--grooves", "-0.1"], "--grooves must be in [0, 1]"),
                        (["--faint-spots", "2"], "--faint-spots must be in [0, 1]")):
        with pytest.raises(SystemExit) as e:
            P.parse_args(base + extra)
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert said in err and "Traceback" not in err, err
    assert P.parse_args(base + ["--patch", "384"]).patch == 384


def test_labelled_patches_centre_on_flagged_pixels_and_carry_their_radius():
    # one teacher-labelled crop with a single flagged pixel: most patches are centred near it,
    # and wherever it lands in a (rotated, flipped) patch the radius channel holds its distance
    # from the crop centre
    size, P = 384, 64
    rng = np.random.default_rng(0)
    y = rng.random((size, size)).astype(np.float32)
    m = np.zeros((size, size), np.float32)
    m[100, 250] = 1.0
    lp = A.LabelledPatches([(y, y.copy(), m, np.ones_like(m))], P, seed=1)
    ys, xs, ms, ws, rs = lp.batch(60)
    assert ys.shape == (60, 1, P, P) and rs.shape == (60, 1, P, P)
    hit = ms[:, 0].reshape(60, -1).max(axis=1) > 0.5
    assert hit.mean() > 0.6, hit.mean()
    r_flag = np.hypot(100 - (size - 1) / 2, 250 - (size - 1) / 2)
    for k in np.nonzero(hit)[0]:
        assert abs(float(rs[k, 0][ms[k, 0] > 0.5][0]) - r_flag) < 1e-3
    assert float(rs.max()) <= np.hypot(size / 2, size / 2) and float(rs.min()) >= 0.0


class _NotAWeight:
    pass


def test_checkpoints_load_without_running_code(tmp_path):
    # a checkpoint is a pickle: one holding anything but tensors and numbers is refused unread,
    # with its path named; the trainer's own (tensors, tuples, numbers, strings) loads
    import pytest
    import torch

    from endface_train.student import load_checkpoint

    good = tmp_path / "student.pt"
    torch.save({"ema": {"w": torch.ones(2)}, "widths": (16, 32), "info": {"steps": 3, "seconds": 1.5},
                "crack_head": False}, good)
    ck = load_checkpoint(good)
    assert ck["widths"] == (16, 32) and float(ck["ema"]["w"].sum()) == 2.0
    bad = tmp_path / "swapped.pt"
    torch.save({"ema": {}, "payload": _NotAWeight()}, bad)
    with pytest.raises(ValueError) as e:
        load_checkpoint(bad)
    assert "swapped.pt" in str(e.value) and "not a checkpoint written by this trainer" in str(e.value)


def test_metrics_on_a_perfect_and_a_random_map():
    rng = np.random.default_rng(0)
    disk = D.contact_disk(64, 0.66 * 384 / 64)
    masks = np.zeros((6, 64, 64), bool)
    masks[3:, 20:26, 30:40] = True
    kinds = ["good"] * 3 + ["pit"] * 3
    perfect = masks.astype(np.float32) * 0.9 + 0.05
    res, _ = E.all_metrics(perfect, masks, kinds, disk, 0.5, 0.5)
    assert res["all"]["image_auroc"] == 1.0 and res["all"]["pixel_auroc"] == 1.0
    assert res["all"]["aupro_0.3"] > 0.99 and res["all"]["iou"]["pooled"] == 1.0
    noise = rng.random((6, 64, 64)).astype(np.float32)
    res, _ = E.all_metrics(noise, masks, kinds, disk, 0.5, 0.5)
    assert 0.4 < res["all"]["pixel_auroc"] < 0.6 and res["all"]["aupro_0.3"] < 0.3


def test_aupro_matches_the_mvtec_reference_on_thin_diagonal_defects():
    # A 1-pixel diagonal scratch is one region (8-connected), as the MVTec AD evaluation code
    # counts it; 4-connectivity would split it into 1-pixel regions and sink the AUPRO.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    import metrics_reference as R

    rng = np.random.default_rng(5)
    n, size = 6, 48
    masks = np.zeros((n, size, size), bool)
    for i in range(3, n):
        for k in range(30):
            masks[i, 8 + k, 10 + k] = True  # diagonal line
        masks[i, 5:8, 30:34] = True  # and a blob
    blob = np.zeros_like(masks)
    blob[3:, 5:8, 30:34] = True
    # the blob stands out, the faint line barely: the two connectivities weight them differently
    maps = (rng.random((n, size, size)) * 0.6 + (masks & ~blob) * rng.random((n, size, size)) * 0.3
            + blob * 0.5).astype(np.float64)
    disk = np.ones((size, size), bool)
    ours = E.aupro(list(maps), list(masks), disk, fpr_limit=0.3, n_thr=4000)
    fprs, pros = R.compute_pro(list(maps), [m.astype(np.uint8) for m in masks])
    ref = R.trapezoid(fprs, pros, x_max=0.3) / 0.3
    assert abs(ours - ref) < 2e-3, (ours, ref)


def test_calibration_rejects_no_calibration_image():
    disk = D.contact_disk(32, 8.0)
    maps = np.random.default_rng(0).random((20, 32, 32)).astype(np.float32)
    cal = E.calibrate(maps, disk, 0.01)
    assert (E.image_scores(maps, disk) <= cal["image"]).all()


def test_crack_classes_mark_exactly_the_crack_family():
    # paint(crack_out=...): the crack family's pixels (inside the defect mask), nothing else
    img = np.full((96, 96), 0.5, np.float32)
    only = lambda fam: tuple(1.0 if f == fam else 0.0 for f in pseudo.FAMILIES)  # noqa: E731
    n_crack = 0
    for seed in range(12):
        crack = np.ones(img.shape, bool)  # cleared by paint
        _, m, fams = pseudo.paint(img, np.random.default_rng(seed), (48, 48), 0.66, p_clean=0.0,
                                  weights=only("crack"), crack_out=crack)
        assert set(fams) == {"crack"}
        assert not (crack & ~m).any()
        assert (crack == m).all()
        n_crack += int(m.any())
        crack[:] = True
        _, m, fams = pseudo.paint(img, np.random.default_rng(seed), (48, 48), 0.66, p_clean=0.0,
                                  weights=only("scratch"), crack_out=crack)
        assert set(fams) == {"scratch"} and not crack.any()
    assert n_crack >= 8
    # the sampler's class masks: 0 clean, 1 defect, 2 crack
    frame = np.full((300, 300), 128, np.uint8)
    fr = _Fr((150.0, 150.0), 0.66, 0.66)
    fr.load = lambda: frame
    s = A.PairSampler([fr], 0.66, 128, 64, seed=2, crack_classes=True)
    vals = set()
    for _ in range(40):
        _, _, m, _, _ = s.sample(np.random.default_rng(len(vals) + _))
        vals |= set(np.unique(m).tolist())
    assert vals <= {0, 1, 2} and 2 in vals and 1 in vals


def test_crack_head_is_a_third_output_and_export_lists_it(tmp_path):
    import json

    import torch

    from endface_train import export as X
    from endface_train.nets import StudentUNet

    net = StudentUNet((8, 16), crack_head=True).eval()
    x = torch.zeros(1, 1, 64, 64)
    rec, an, cr = net(x)
    assert rec.shape == an.shape == cr.shape == (1, 1, 64, 64)
    assert float(cr.min()) >= 0 and float(cr.max()) <= 1
    assert len(StudentUNet((8, 16)).eval()(x)) == 2
    p = tmp_path / "m.onnx"
    X.export_onnx(net, p, 64)
    import onnx

    assert [o.name for o in onnx.load(str(p)).graph.output] == ["reconstruction", "anomaly", "crack"]
    man = X.write_manifest(p, name="m", version="0", size=64, crop_um_per_px=0.66,
                           thresholds={"pixel": 0.9, "image": 0.9}, training={}, metrics={}, crack_output=True)
    m = json.loads(man.read_text())
    assert m["crack"] == {"output": "crack", "min_mean": 0.5}
    assert [o["name"] for o in m["outputs"]] == ["reconstruction", "anomaly", "crack"]


def test_crack_head_only_keeps_the_resumed_network_exactly(tmp_path):
    # --crack-head-only: a crack head trained onto a resumed student leaves its reconstruction
    # and anomaly outputs (the exported averaged weights, BatchNorm statistics included) as they were
    import torch

    from endface_train import student as S
    from endface_train.nets import StudentUNet

    torch.manual_seed(0)
    net = StudentUNet((8, 16), radius_channel=True)
    ema = S.EMA(net, 0.9)
    with torch.no_grad():  # make the averaged weights differ from the raw ones
        for p in ema.model.parameters():
            p.add_(0.01)
    opt = torch.optim.AdamW(net.parameters())
    cfg = dict(seed=0, student_widths=(8, 16), student_lr=1e-3, ema_decay=0.9, amp=False, student_batch=2,
               labelled_fraction=0.0, student_seconds=60, student_steps=30, data_workers=0, seg_weight=1.0,
               checkpoint_seconds=1e9, crack_head=True, crack_head_only=True)
    ck = tmp_path / "s.pt"
    S.save_ckpt(ck, net, ema, opt, 3, {}, cfg)
    frame = (np.random.default_rng(1).random((300, 300)) * 255).astype(np.uint8)
    fr = _Fr((150.0, 150.0), 0.66, 0.66)
    fr.load = lambda: frame
    sampler = A.PairSampler([fr], 0.66, 128, 64, seed=2, crack_classes=True)
    trained, _ = S.train_student(sampler, None, cfg, torch.device("cpu"), tmp_path / "out.pt", resume=ck)
    before, _ = S.load_student(ck)
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        r0, a0 = before(x)
        r1, a1, c1 = trained(x)
    assert torch.allclose(r0, r1, atol=1e-6) and torch.allclose(a0, a1, atol=1e-6)
    head0 = StudentUNet((8, 16), crack_head=True).crack[-1].bias
    assert float((trained.crack[-1].bias - head0).abs().max()) > 1e-5, "the head trained"


def test_trained_files_reach_the_output_folder_manifest_last(tmp_path, monkeypatch):
    # the station trusts only the manifest: it must be the last file to appear, so a run that
    # stops half way leaves an .onnx that fails the old manifest's sha256, never a new manifest
    # beside an old model
    from endface_train import pipeline

    stage, out = tmp_path / "stage", tmp_path / "out"
    stage.mkdir()
    out.mkdir()
    (out / "m.onnx").write_bytes(b"old model")
    files = []
    for name, body in (("m.manifest.json", b"{}"), ("m.onnx", b"new model"), ("m.report.json", b"[]")):
        (stage / name).write_bytes(body)
        files.append(stage / name)
    order = []
    real_replace = pipeline.os.replace

    def spy(src, dst):
        order.append(Path(dst).name)
        real_replace(src, dst)

    monkeypatch.setattr(pipeline.os, "replace", spy)
    finals = pipeline.install_outputs(files, out)
    assert order == ["m.report.json", "m.onnx", "m.manifest.json"]
    assert (out / "m.onnx").read_bytes() == b"new model"
    assert sorted(p.name for p in out.iterdir()) == ["m.manifest.json", "m.onnx", "m.report.json"]
    assert [p.name for p in finals] == ["m.manifest.json", "m.onnx", "m.report.json"]


def test_install_check_refuses_a_model_that_finds_nothing_and_passes_one_that_does():
    from endface_train import pipeline

    size, s = 384, 0.66
    cfg = {"seed": 0, "crop_size": size, "crop_um_per_px": s}
    disk = D.contact_disk(size, s)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size]
    r = np.hypot(xx - size / 2, yy - size / 2)
    clean = (0.55 + 0.25 * (r < 62.5 / s) + rng.normal(0, 0.01, (size, size))).astype(np.float32)
    crops = np.stack([clean, clean[::-1].copy()])

    def identity(x):  # reconstruction = input, a map that knows nothing
        return x, np.full_like(x, 0.01)

    def finder(x):  # a map that marks what differs from the clean crop it came from
        d = np.minimum(np.abs(x - crops[0]), np.abs(x - crops[1]))
        return x, d / max(float(d.max()), 1e-6)

    def marks_good_fiber(x):  # finds the defects, but also marks a patch of smooth fiber at full score
        _, a = finder(x)
        a = a.copy()
        a[150:170, 200:220] = 1.0
        return x, a

    cfg["target_frr"] = 0.01
    bad = pipeline.install_check(identity, crops, disk, cfg)
    assert not bad["ok"] and bad["pseudo_defect_pixel_auroc"] <= 0.55 and bad["crops"] >= 24
    assert any("no better than chance" in p for p in bad["problems"]), bad
    good = pipeline.install_check(finder, crops, disk, cfg)
    assert good["ok"] and good["pseudo_defect_pixel_auroc"] > 0.9, good
    assert good["pseudo_defect_image_recall"] > 0.9 and good["problems"] == [], good
    # the failure of session 11's long patch-only runs: the map finds the defects (pixel AUROC
    # high) but good fiber scores as high, so the calibrated threshold (1.0) catches nothing
    sat = pipeline.install_check(marks_good_fiber, crops, disk, cfg)
    assert not sat["ok"] and sat["pseudo_defect_pixel_auroc"] > 0.8, sat
    assert sat["image_threshold"] == 1.0 and sat["pseudo_defect_image_recall"] < 0.05, sat
    assert len(sat["problems"]) == 1 and "catches" in sat["problems"][0], sat
    # the threshold the manifest got is the one checked
    at = pipeline.install_check(finder, crops, disk, cfg, image_threshold=0.999)
    assert at["image_threshold"] == 0.999 and at["pseudo_defect_image_recall"] < good["pseudo_defect_image_recall"]
    assert pipeline.install_check(identity, crops[:0], disk, cfg)["ok"]  # nothing to check with


def test_full_runs_spend_the_last_quarter_on_whole_crops(tmp_path, monkeypatch):
    # the student runs on whole 384-px crops; the full profile's last phase trains on them, resumed
    # from the patch phase's checkpoint with the rest of the time budget (the quick profile and
    # --finish-share 0 train on patches only)
    from endface_train import pipeline as P

    calls = []

    def fake_train(sampler, labelled, cfg, device, ckpt, resume=None):
        calls.append(dict(patch=sampler.patch, lab=None if labelled is None else labelled.patch,
                          seconds=cfg["student_seconds"], steps=cfg["student_steps"], resume=resume))
        done = 1000 * len(calls)
        return f"model{len(calls)}", {"steps": done, "seconds": 10.0 * len(calls), "patch": sampler.patch}

    monkeypatch.setattr(P, "train_student", fake_train)

    class S:
        patch = 96
        rng = None

    cfg = dict(P.PROFILES["full"], **P.COMMON)
    cfg["student_seconds"] = 400.0
    triples = [tuple(np.zeros((384, 384), np.float32) for _ in range(4))]
    args = P.parse_args(["--data", "x", "--work", str(tmp_path)])
    model, info = P.train_student_phases(S(), None, triples, cfg, args, "cpu")
    assert model == "model2" and len(calls) == 2
    assert calls[0] == dict(patch=96, lab=None, seconds=300.0, steps=cfg["student_steps"], resume=None)
    assert calls[1] == dict(patch=384, lab=384, seconds=100.0, steps=1000 + cfg["student_steps"],
                            resume=tmp_path / "student.pt")
    assert info["steps"] == 2000 and info["finish"] == {"patch": 384, "share": 0.25, "steps": 1000, "seconds": 20.0}
    assert S.patch == 96  # the patch sampler itself is left as it was

    calls.clear()
    args = P.parse_args(["--data", "x", "--work", str(tmp_path), "--finish-share", "0"])
    P.train_student_phases(S(), None, triples, cfg, args, "cpu")
    assert [c["patch"] for c in calls] == [96] and calls[0]["seconds"] == 400.0
    calls.clear()
    quick = dict(P.PROFILES["quick"], **P.COMMON)
    P.train_student_phases(S(), None, triples, quick, P.parse_args(["--data", "x", "--work", str(tmp_path)]), "cpu")
    assert [c["patch"] for c in calls] == [96]


def test_camera_response_is_applied_alike_and_drops_invisible_defect_pixels():
    rng = np.random.default_rng(11)
    yy, xx = np.mgrid[0:96, 0:96]
    clean = (0.35 + 0.4 * np.exp(-((xx - 48) ** 2 + (yy - 48) ** 2) / 900.0)).astype(np.float32)
    for k in range(300):
        # no defect: input and target stay equal whatever the response (nothing here is a defect)
        c, d, m = A.camera_response(clean, clean.copy(), np.zeros(clean.shape, bool), rng)
        assert c.dtype == d.dtype == np.float32 and c.shape == (96, 96)
        assert np.array_equal(c, d) and not m.any()
        assert 0.0 <= float(c.min()) and float(c.max()) <= 1.0
    # something visible happens: over many draws the response changes the patch by more than noise
    diffs = [float(np.abs(A.camera_response(clean, clean.copy(), np.zeros(clean.shape, bool), rng)[0] - clean).mean())
             for _ in range(100)]
    assert np.median(diffs) > 2 / 255
    # a faint bright defect on the bright centre: where over-exposure clips it to the clean level
    # it leaves the mask, elsewhere it stays; JPEG (which moves every pixel) keeps the mask
    d0 = clean.copy()
    d0[40:56, 40:56] += 0.05
    m0 = np.zeros(clean.shape, bool)
    m0[40:56, 40:56] = True
    dropped = kept = 0
    for _ in range(400):
        c, d, m = A.camera_response(clean, d0, m0, rng)
        assert not (m & ~m0).any()  # the mask never grows
        gone = m0 & ~m
        assert np.array_equal(d[gone], c[gone]) or not gone.any()
        dropped += int(gone.any())
        kept += int(np.array_equal(m, m0))
    assert dropped > 20 and kept > 100, (dropped, kept)
    # a uint8 class mask (crack head) keeps its dtype and classes
    mc = m0.astype(np.uint8) * 2
    _, _, m = A.camera_response(clean, d0, mc, np.random.default_rng(3))
    assert m.dtype == np.uint8 and set(np.unique(m)) <= {0, 2}


def test_camera_response_share_zero_keeps_the_sample_stream():
    class _Img(_Fr):
        def load(self):
            return np.random.default_rng(0).integers(60, 200, (480, 640)).astype(np.uint8)

    frames = [_Img((320.0, 240.0), 0.5, 0.5)]
    a = A.PairSampler(frames, 0.66, 384, 96, seed=4)
    b = A.PairSampler(frames, 0.66, 384, 96, seed=4, camera_share=0.0)
    for _ in range(5):
        sa, sb = a.sample(), b.sample()
        assert all(np.array_equal(x, y) for x, y in zip(sa[:3], sb[:3]))
    c = A.PairSampler(frames, 0.66, 384, 96, seed=4, camera_share=1.0)
    assert any(not np.array_equal(a.sample()[1], c.sample()[1]) for _ in range(5))


def test_a_student_rebuilt_from_its_onnx_file_computes_the_same_and_trains_in_step(tmp_path):
    # models/endface-student.onnx has its BatchNorms folded into the convolutions; from_onnx
    # rebuilds a trainable checkpoint from it (a fresh clone has no training checkpoint)
    import torch

    from endface_train import export as X
    from endface_train import from_onnx as FO
    from endface_train.nets import StudentUNet

    torch.manual_seed(1)
    net = StudentUNet((8, 16, 24), radius_channel=True)
    with torch.no_grad():  # BatchNorms that are not identities, so folding them matters
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.3)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
    net.eval()
    p = tmp_path / "s.onnx"
    X.export_onnx(net, p, 64)
    rebuilt, pairs = FO.rebuild(p, (8, 16, 24), size=64)
    x = torch.randn(2, 1, 64, 64) * 0.5
    with torch.no_grad():
        want = net(x)
        got = rebuilt(x)
    assert max(float((a - b).abs().max()) for a, b in zip(want, got)) < 1e-4
    # restating the BatchNorms on a batch keeps the eval-mode function, and in train mode on that
    # same batch (BatchNorm on its own statistics) the network computes nearly the same
    r = torch.rand(2, 1, 64, 64)
    FO.restate_batchnorms(rebuilt, pairs, [(x, r)])
    with torch.no_grad():
        e = rebuilt.eval().forward_all(x, r)
        ref = net.eval().forward_all(x, r)
        t = rebuilt.train().forward_all(x, r)
    assert max(float((a - b).abs().max()) for a, b in zip(e, ref)) < 1e-4
    assert max(float((a - b).abs().max()) for a, b in zip(t, ref)) < 1e-3
    # a file of another architecture is refused by name, not loaded half-way
    import pytest

    with pytest.raises(ValueError, match="convolutions"):
        FO.rebuild(p, (8, 16), size=64)
