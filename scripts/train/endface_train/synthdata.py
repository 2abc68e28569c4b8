"""Render the datasets the shipped model is trained and scored on, with `endface synth`.

In: the endface binary, an output folder, seeds. Out (all in the dataset-format layout):
  OUT/synth-train/        train/good only: several fixed camera scales (square pixels) merged,
                          with a labels.jsonl that gives each image's µm/px (nothing else: the
                          fiber centre is found by the locator, as on a station)
  OUT/synth-unlabelled/   "production" images: good + defective, labels discarded by the
                          pipeline (only the µm/px is used), labelled by the teacher
  OUT/synth-test/         the scoring set: its own seed, never used for training; default
                          synth options (mixed fibers and looks, random scale, some 1.09 aspect)

    python -m endface_train.synthdata --out data/ [--endface target/release/endface]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from . import data as D

TRAIN_SCALES = (0.42, 0.48, 0.54, 0.60, 0.66)
TRAIN_SEEDS = (101, 102, 103, 104, 105)
UNLABELLED_SEED = 200
TEST_SEED = 9001


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()[-2000:]}")


def make(out: Path, binary: str, per_scale: int = 60, unl_good: int = 20, unl_per_kind: int = 12,
         test_good: int = 50, test_per_kind: int = 30, force: bool = False):
    out.mkdir(parents=True, exist_ok=True)
    train = out / "synth-train"
    if force and train.exists():
        shutil.rmtree(train)
    (train / "train" / "good").mkdir(parents=True, exist_ok=True)
    labels = []
    for seed, s in zip(TRAIN_SEEDS, TRAIN_SCALES):
        tmp = out / f".synth-train-{seed}"
        if tmp.exists():
            shutil.rmtree(tmp)
        run([binary, "synth", "--out", str(tmp), "--seed", str(seed), "--train-good", str(per_scale),
             "--test-good", "0", "--per-kind", "0", "--um-per-px", str(s), "--aspect", "1.0"])
        for img in sorted((tmp / "train" / "good").iterdir()):
            name = f"s{seed}_{img.name}"
            shutil.move(str(img), train / "train" / "good" / name)
            labels.append({"image": f"train/good/{name}", "um_per_px": s, "um_per_px_x": s, "um_per_px_y": s,
                           "synth_seed": seed})
        shutil.rmtree(tmp)
    (train / "labels.jsonl").write_text("".join(json.dumps(x) + "\n" for x in labels))
    (train / "dataset.toml").write_text(
        "# merged by endface_train.synthdata: endface synth seeds %s at %s µm/px, square pixels\n"
        % (",".join(map(str, TRAIN_SEEDS)), ",".join(map(str, TRAIN_SCALES))))
    for name, seed, good, per_kind in (("synth-unlabelled", UNLABELLED_SEED, unl_good, unl_per_kind),
                                       ("synth-test", TEST_SEED, test_good, test_per_kind)):
        d = out / name
        if d.exists():
            shutil.rmtree(d)
        run([binary, "synth", "--out", str(d), "--seed", str(seed), "--train-good", "0", "--test-good", str(good),
             "--per-kind", str(per_kind)])
    return {"train": train, "unlabelled": out / "synth-unlabelled", "test": out / "synth-test"}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m endface_train.synthdata")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--endface", help="endface binary (default: $ENDFACE_BIN, target/release, target/debug, PATH)")
    p.add_argument("--per-scale", type=int, default=60)
    p.add_argument("--unlabelled-good", type=int, default=20)
    p.add_argument("--unlabelled-per-kind", type=int, default=12)
    p.add_argument("--test-good", type=int, default=50)
    p.add_argument("--test-per-kind", type=int, default=30)
    a = p.parse_args(argv)
    binary = a.endface or D.find_endface_bin(Path(__file__).resolve().parents[3])
    if not binary:
        print("synthdata: no endface binary; build it (cargo build --release) or pass --endface", file=sys.stderr)
        return 2
    paths = make(a.out, binary, a.per_scale, a.unlabelled_good, a.unlabelled_per_kind, a.test_good,
                 a.test_per_kind, force=True)
    for k, v in paths.items():
        print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
