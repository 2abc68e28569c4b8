#!/usr/bin/env python3
"""Which image score separates good from defective frames best, from the model's own maps?

For every test image of the given datasets: `endface inspect --dump-tensors` with the image's
labelled scale and fiber (labels.jsonl), then, inside the 250 µm contact zone of the crop,
image AUROC (good folder vs defect folders) of candidate scores: the segmentation head's
maximum (what the station uses), its maximum after Gaussian smoothing, top-k means, and the
reconstruction error's maximum. Needs numpy, scipy, scikit-learn (the training venv).

  .venv/bin/python scripts/image_score_study.py data/synth-val data/synth-val2 -- data/synth-test

Datasets before `--` are reported together (choose on them), after it separately (confirm).
"""
import json
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from scipy import ndimage
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parent.parent
N, CROP_UM_PER_PX, CONTACT_UM = 384, 0.66, 125.0


def dump(ds: Path, work: Path):
    jobs = []
    for line in (ds / "labels.jsonl").read_text().splitlines():
        lab = json.loads(line)
        if lab["image"].startswith("test/"):
            jobs.append(lab)

    def one(lab):
        name = lab["image"].replace("/", "_")[:-4]
        out = work / ds.name / name
        cmd = [str(ROOT / "target/release/endface"), "-q", "inspect", "--json",
               "--config", str(ROOT / "firmware-config/demo.toml"),
               "--um-per-px", str(lab["um_per_px_x"]), "--um-per-px-y", str(lab["um_per_px_y"]),
               "--profile", lab.get("fiber", "sm-upc"), "--dump-tensors", str(out), str(ds / lab["image"])]
        subprocess.run(cmd, capture_output=True, check=False)
        stem = Path(lab["image"]).stem
        f = lambda k: out / f"{stem}.{k}.f32"
        if not f("out.anomaly").is_file():
            return None  # not located (UNABLE): no map
        rd = lambda k: np.fromfile(f(k), dtype=np.float32).reshape(N, N)
        return ("/good/" not in lab["image"]), rd("out.anomaly"), rd("input"), rd("out.reconstruction")

    with ThreadPoolExecutor(2) as ex:
        return [r for r in ex.map(one, jobs) if r is not None]


def scores(rows):
    yy, xx = np.mgrid[0:N, 0:N]
    c = (N - 1) / 2
    disk = np.hypot(xx - c, yy - c) * CROP_UM_PER_PX <= CONTACT_UM
    m = lambda a: float(a[disk].max())
    out = {}
    for _, seg, inp, rec in rows:
        err = np.abs(inp - rec)
        v = np.sort(seg[disk])
        cand = {"max seg (station)": m(seg)}
        for s in (1, 2, 4):
            cand[f"max gauss(seg, {s} px)"] = m(ndimage.gaussian_filter(seg, s))
        for k in (10, 50, 200):
            cand[f"top-{k} mean seg"] = float(v[-k:].mean())
        for s in (1, 2, 4):
            cand[f"max gauss(|x - recon|, {s} px)"] = m(ndimage.gaussian_filter(err, s))
        cand["max gauss(seg * |x - recon|, 2 px)"] = m(ndimage.gaussian_filter(seg * err, 2))
        for k, val in cand.items():
            out.setdefault(k, []).append(val)
    y = [int(r[0]) for r in rows]
    return {k: roc_auc_score(y, v) for k, v in out.items()}, len(rows), sum(y)


def main():
    args = sys.argv[1:]
    groups = [[], []]
    g = 0
    for a in args:
        if a == "--":
            g = 1
        else:
            groups[g].append(Path(a))
    with tempfile.TemporaryDirectory(prefix="endface-score-") as tmp:
        results = []
        for grp in groups:
            if grp:
                rows = [r for ds in grp for r in dump(ds, Path(tmp))]
                results.append((", ".join(d.name for d in grp), *scores(rows)))
    keys = list(results[0][1])
    print("| image score | " + " | ".join(f"{n} ({k} frames, {d} defective)" for n, _, k, d in results) + " |")
    print("|---|" + "---|" * len(results))
    for key in keys:
        print(f"| {key} | " + " | ".join(f"{r[1][key]:.4f}" for r in results) + " |")


if __name__ == "__main__":
    main()
