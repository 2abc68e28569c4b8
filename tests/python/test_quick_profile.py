"""Smoke test of the training pipeline's --quick profile (CI; a few minutes on 2 cores).

Runs the whole pipeline (teacher, labelling, student, export, calibration) on a tiny dataset:
`endface synth` output when the binary is built (target/release or target/debug, or
$ENDFACE_BIN), else the crude Python stand-in of endface_train.fake. Then checks that the
exported model is one self-contained ONNX file that onnxruntime loads with the manifest's
names and shapes, that the manifest's sha256 matches, and that it reconstructs good images
measurably better than defective ones. The run trains the crack head too (--crack-head): the
model has the third output, the manifest its `crack` section, and the station binary loads it
and scores each defect with it.

    .venv/bin/python -m pytest tests/python -q          # or, without pytest:
    .venv/bin/python tests/python/test_quick_profile.py
Unit checks of the crop contract and the pseudo-defect generator are in test_units.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts" / "train"))

from endface_train import data as D  # noqa: E402
from endface_train import evaluate as E  # noqa: E402
from endface_train import export as X  # noqa: E402
from endface_train import fake  # noqa: E402
from endface_train import pipeline  # noqa: E402


def make_dataset(root: Path) -> tuple[Path, Path, str]:
    """(train dataset, unlabelled folder, source description)."""
    binary = D.find_endface_bin(REPO)
    if binary:
        train, unl = root / "synth", root / "unl"
        # train/good images carry no labels: render them at one known scale (the pipeline gets
        # it with --um-per-px, as a station passes its calibration)
        cam = ["--um-per-px", "0.5", "--aspect", "1.0"]
        r1 = subprocess.run([binary, "synth", "--out", str(train), "--seed", "11", "--train-good", "14",
                             "--test-good", "4", "--per-kind", "2"] + cam, capture_output=True, text=True)
        r2 = subprocess.run([binary, "synth", "--out", str(unl), "--seed", "12", "--train-good", "0",
                             "--test-good", "1", "--per-kind", "1"] + cam, capture_output=True, text=True)
        if r1.returncode == 0 and r2.returncode == 0:
            return train, unl / "test", f"endface synth ({binary})"
    train = fake.make_fake_dataset(root / "fake", seed=3, train_good=14, test_good=4, per_kind=2)
    unl = fake.make_fake_dataset(root / "fake-unl", seed=4, train_good=0, test_good=1, per_kind=1)
    return train, unl / "test", "endface_train.fake (no endface synth binary)"


def run_quick(tmp: Path, seed: int = 0):
    train, unl, src = make_dataset(tmp)
    out, work = tmp / "models", tmp / "work"
    rc = pipeline.main(["--data", str(train), "--unlabelled", str(unl), "--quick", "--out", str(out),
                        "--work", str(work), "--um-per-px", "0.5", "--crack-head", "--seed", str(seed)]
                       # a fixed thread count: the trainer's auto rule drops to 1 thread on a busy
                       # machine, and 1 and 2 threads round differently, so a loaded machine would
                       # train another model (seed 0 on 1 thread is the degenerate one below)
                       + ["--threads", os.environ.get("QT") or "2"])
    # 3: the trainer's install check refused the model (it finds its own pseudo-defects no
    # better than chance) and left --out untouched
    assert rc in (0, 3), rc
    if rc == 3:
        assert not (out / "endface-student.manifest.json").exists()
        raise InstallRefused(f"seed {seed}: the trainer's install check refused the model")
    return train, out, src


class InstallRefused(AssertionError):
    pass


def check_outputs(train: Path, out: Path):
    import onnx
    import onnxruntime as ort

    man_path = out / "endface-student.manifest.json"
    man = json.loads(man_path.read_text())
    assert man["schema"] == "endface.model-manifest/1"
    onnx_path = man_path.parent / man["onnx_file"]
    assert hashlib.sha256(onnx_path.read_bytes()).hexdigest() == man["sha256"]
    model = onnx.load(str(onnx_path))
    assert model.opset_import[0].version >= 17
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    assert not [p for p in out.iterdir() if p.suffix == ".data"], "no external-data side files"
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    ins = sess.get_inputs()
    assert [i.name for i in ins] == [man["input"]["name"]] == ["image"]
    assert list(ins[0].shape) == man["input"]["shape"] == [1, 1, 384, 384]
    assert ins[0].type == "tensor(float)"
    assert [o.name for o in sess.get_outputs()] == [o["name"] for o in man["outputs"]] == [
        "reconstruction", "anomaly", "crack"]
    assert man["crack"] == {"output": "crack", "min_mean": 0.5}
    th = man["thresholds"]
    assert 0 < th["pixel"] <= 1 and 0 < th["image"] <= 1 and th["target_false_reject_rate"] > 0

    # reconstruction: good images reconstruct measurably better than defective ones
    ds = D.read_dataset(train)
    test = [f for f in ds["test"] if f.kind == "good" or f.mask_path is not None]
    D.resolve_geometry(test, REPO, um_per_px_default=(0.5, 0.5))
    s, size = man["um_per_px"], man["input"]["shape"][-1]
    disk = D.contact_disk(size, s)
    student = X.OnnxStudent(onnx_path)
    good_err, defect_px_err, an_scores, an_labels = [], [], [], []
    for fr in test:
        px = fr.load()
        crop = D.contract_crop(px, fr, s, size)
        rec, anomaly = student(crop)
        assert rec.shape == anomaly.shape == (size, size)
        assert np.isfinite(rec).all() and (anomaly >= 0).all() and (anomaly <= 1).all()
        err = np.abs(crop - rec)
        if fr.kind == "good":
            good_err.append(float(err[disk].mean()))
            an_scores.append(anomaly[disk])
            an_labels.append(np.zeros(int(disk.sum()), bool))
        else:
            m = D.crop_mask(fr.load_mask(px.shape[:2]), fr, s, size) & disk
            if m.any():
                defect_px_err.append(float(err[m].mean()))
                an_scores.append(anomaly[disk])
                an_labels.append(m[disk])
    assert good_err and defect_px_err
    # A four-minute CPU model is weak and its image-level ranking on 4 good images is noise, so
    # this smoke test checks what any working model shows (image-level quality is the full
    # profile's job, reported in models/MODEL_CARD.md):
    # the reconstruction stays close to good images (a broken BatchNorm once gave |err| up to 7)
    assert max(good_err) < 0.03, good_err
    # per pixel: the reconstruction departs from defect pixels far more than from good pixels
    assert np.mean(defect_px_err) > 2.0 * np.mean(good_err), (np.mean(defect_px_err), np.mean(good_err))
    # the anomaly head ranks defect pixels above good ones well beyond chance (0.5)
    from sklearn.metrics import roc_auc_score

    pix_auroc = float(roc_auc_score(np.concatenate(an_labels), np.concatenate(an_scores)))
    assert pix_auroc > 0.75, pix_auroc
    figures = {"good_pixel_err": np.mean(good_err), "defect_pixel_err": np.mean(defect_px_err),
               "anomaly_pixel_auroc": pix_auroc}
    # the station binary loads the model (sha256, names, shapes, crack section) and scores every
    # defect it finds with the crack output
    binary = D.find_endface_bin(REPO)
    if binary:
        cfg = out / "station.toml"
        cfg.write_text(f'[model]\nmanifest = "{man_path}"\npixel_threshold = 0.5\ngrow_threshold = 0.3\n'
                       '[calibration]\num_per_px_x = 0.5\num_per_px_y = 0.5\n')
        imgs = [str(f.path) for f in test if f.kind != "good"]
        r = subprocess.run([binary, "-q", "inspect", "--json", "--config", str(cfg)] + imgs, capture_output=True,
                           text=True)
        assert r.returncode in (0, 1), r.stderr
        rows = [json.loads(line) for line in r.stdout.splitlines()]
        defects = [d for row in rows for d in row.get("defects", [])]
        assert defects, "the quick model found no defect at these thresholds"
        assert all(d["crack_score"] is not None and 0.0 <= d["crack_score"] <= 1.0 for d in defects)
        assert all(d["crack"] == (d["crack_score"] >= 0.5) for d in defects)
        figures["station_defects_scored"] = len(defects)
    return figures


def test_quick_profile():
    # A three-minute CPU run can stay in the identity shortcut (reconstruction = input on the
    # camera's defects, segmentation head barely trained): seed 0 does on 1 thread, every time
    # (good and defect pixel errors 0.0001 / 0.0002), and passes on 2 (0.005 / 0.10); seed 1
    # passes on both. Which way a run goes depends on rounding, so a CPU whose kernels round
    # differently can meet it with any seed: up to three seeds are tried and one must pass all
    # checks. Since session 9 the trainer itself refuses to install such a model (its install
    # check: pseudo-defect pixel AUROC 0.54 < 0.6 there, 0.78-0.81 on working runs), which
    # counts as a failed try here. A broken pipeline fails all three.
    failures = []
    with tempfile.TemporaryDirectory(prefix="endface-train-quick-") as d:
        for seed in (0, 1, 2):
            try:
                train, out, src = run_quick(Path(d) / f"seed{seed}", seed=seed)
                figures = check_outputs(train, out)
            except AssertionError as e:
                failures.append(f"seed {seed}: {e}")
                print(f"quick run with seed {seed} failed its checks ({e})")
                continue
            print(f"data: {src}; seed {seed}; {figures}")
            return
    raise AssertionError("every quick run failed its checks: " + "; ".join(failures))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    test_quick_profile()
    print("quick profile smoke test: OK")
