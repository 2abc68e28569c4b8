#!/usr/bin/env python3
"""Per-kind figures of an exported model on a labelled test set, as the trainer reports them.

    .venv/bin/python scripts/score_model.py --manifest models/endface-student.manifest.json --test data/synth-test

Crop space, true centre: each test image is cropped around its labels.jsonl centre at its
labelled µm/px (CONTRACTS.md crop), the model runs in onnxruntime (CPU), and the trainer's own
metric code (scripts/train/endface_train/evaluate.py, checked against scikit-learn) gives image
AUROC, pixel AUROC, AUPRO (FPR ≤ 0.3) and IoU at the manifest's pixel threshold, for all
images and per defect kind (each kind scored with the good images). Pixels outside the 250 µm
contact zone do not count. Prints a Markdown table; --json writes the figures too.

The trainer computes the same at the end of a run, on its own test set; this scores a shipped
(or any) model on a newly rendered one without retraining — e.g. after the synthetic camera
changed.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "train"))
sys.path.insert(0, str(HERE))

import endface_ref  # noqa: E402
from endface_train import data as D  # noqa: E402
from endface_train import evaluate as E  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", type=Path, required=True)
    ap.add_argument("--test", type=Path, required=True, help="labelled dataset (test/, ground_truth/, labels.jsonl)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()

    import onnxruntime as ort

    manifest, onnx_path = endface_ref.load_manifest(args.manifest)
    _, _, h, w = manifest["input"]["shape"]
    if h != w:
        raise SystemExit(f"score_model: {args.manifest}: square inputs only (got {w}x{h})")
    scale = float(manifest["um_per_px"])
    src = manifest.get("anomaly_map", {}).get("source", "anomaly")
    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    out_names = [o.name for o in sess.get_outputs()]
    if src not in out_names:
        raise SystemExit(f"score_model: {onnx_path} has no output {src!r} (outputs: {out_names}); "
                         "this script scores models whose map is an output (the student's `anomaly`)")

    frames = D.read_dataset(args.test, require_train=False)["test"]
    frames = [f for f in frames if f.kind == "good" or f.mask_path is not None]
    missing = [f.rel for f in frames if f.center_in_frame is None or f.um_per_px_x is None]
    if missing:
        raise SystemExit(f"score_model: {len(missing)} test images have no centre/scale in labels.jsonl "
                         f"(first: {missing[0]}): this scores at the true centre")
    maps, masks, kinds = [], [], []
    for fr in frames:
        px = fr.load()
        crop = D.contract_crop(px, fr, scale, w).astype(np.float32)
        x = endface_ref.normalize(crop * 255.0, manifest)
        a = sess.run([src], {manifest["input"]["name"]: x})[0]
        maps.append(a.reshape(h, w))
        m = fr.load_mask(px.shape[:2]) if fr.mask_path is not None else np.zeros(px.shape[:2], np.uint8)
        masks.append(D.crop_mask(m, fr, scale, w))
        kinds.append(fr.kind)
    disk = D.contact_disk(w, scale)
    thr = manifest["thresholds"]
    res, _ = E.all_metrics(maps, masks, kinds, disk, float(thr["pixel"]), float(thr["image"]))

    def f(v):
        return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"

    print(f"{manifest['name']} {manifest['version']} on {args.test} ({len(frames)} images; crop space, true centre; "
          f"IoU at pixel threshold {thr['pixel']})")
    print("| | images (defective) | image AUROC | pixel AUROC | AUPRO (FPR ≤ 0.3) | IoU |")
    print("|---|---|---|---|---|---|")
    for k, r in res.items():
        print(f"| {k} | {r['n_images']} ({r['n_defect_images']}) | {f(r.get('image_auroc'))} | {f(r['pixel_auroc'])} | "
              f"{f(r['aupro_0.3'])} | {f(r['iou']['pooled'] if isinstance(r['iou'], dict) else r['iou'])} |")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
