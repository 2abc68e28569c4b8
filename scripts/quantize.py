#!/usr/bin/env python3
"""INT8 variants of a reconstruction model for ONNX Runtime (issue 7, optional model variants).

    .venv/bin/python scripts/quantize.py --manifest models/endface-student.manifest.json \
        --calib data/synth-val --out out/int8

Writes, for each variant, OUT/<name>-<variant>.onnx and a manifest beside it (same input,
outputs, scale, map recipe and thresholds as the float model; new sha256, name and version), so
`endface eval DATASET --config STATION.toml` with `[model] manifest = OUT/...manifest.json`
scores it exactly like the float model. Variants:

- `int8-dynamic`: onnxruntime.quantization.quantize_dynamic (weights uint8, activations
  quantized on the fly; convolutions become ConvInteger);
- `int8-static`: quantize_static, QDQ format, per-channel weights, activations calibrated
  (MinMax) on model-input crops of the calibration dataset's labelled images (labels.jsonl
  gives the fiber centre and scale; a validation set, never the test set).

The script only builds the variants; `scripts/compare-variants.sh` scores and times them beside
the float model in one run. Nothing here is shipped unless its accuracy holds (BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import endface_ref  # noqa: E402


def calibration_inputs(manifest: dict, dataset: Path, limit: int) -> list[np.ndarray]:
    from PIL import Image

    labels = dataset / "labels.jsonl"
    if not labels.is_file():
        raise SystemExit(f"quantize: {labels} not found: the calibration set needs labels.jsonl "
                         "(fiber centre and µm/px per image), e.g. an `endface synth` validation set")
    _, c, h, w = manifest["input"]["shape"]
    s = float(manifest["um_per_px"])
    out = []
    for line in labels.read_text().splitlines():
        if not line.strip():
            continue
        lab = json.loads(line)
        if lab.get("center") is None or lab.get("um_per_px_x", lab.get("um_per_px")) is None:
            continue
        umx = float(lab.get("um_per_px_x", lab.get("um_per_px")))
        umy = float(lab.get("um_per_px_y", umx))
        frame = np.asarray(Image.open(dataset / lab["image"]).convert("L"))
        crop = endface_ref.crop_frame(frame, lab["center"], (umx, umy), s, w, h)
        out.append(endface_ref.normalize(crop, manifest))
        if len(out) >= limit:
            break
    if not out:
        raise SystemExit(f"quantize: no usable image in {labels} (need center and um_per_px)")
    return out


def write_variant(manifest: dict, onnx_path: Path, variant: str, note: str) -> Path:
    m = json.loads(json.dumps(manifest))
    m["name"] = f"{manifest['name']}-{variant}"
    m["version"] = f"{manifest['version']}+{variant}"
    m["onnx_file"] = onnx_path.name
    m["sha256"] = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    m.setdefault("training", {})["quantization"] = note
    path = onnx_path.with_suffix(".manifest.json")
    path.write_text(json.dumps(m, indent=2, ensure_ascii=False) + "\n")
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", type=Path, required=True)
    ap.add_argument("--calib", type=Path, required=True, help="labelled dataset for static calibration")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--calib-images", type=int, default=48)
    args = ap.parse_args()

    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_dynamic, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    manifest, onnx_path = endface_ref.load_manifest(args.manifest)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = manifest["name"]
    pre = args.out / f"{stem}-pre.onnx"
    quant_pre_process(str(onnx_path), str(pre), skip_symbolic_shape=True)

    dyn = args.out / f"{stem}-int8-dynamic.onnx"
    # The CPU provider's ConvInteger takes uint8 x uint8 only (QInt8 weights fail to load).
    quantize_dynamic(str(pre), str(dyn), weight_type=QuantType.QUInt8)
    print(write_variant(manifest, dyn, "int8-dynamic", "onnxruntime quantize_dynamic, QUInt8 weights"))

    inputs = calibration_inputs(manifest, args.calib, args.calib_images)
    name = manifest["input"]["name"]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(inputs)

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {name: x}

    sta = args.out / f"{stem}-int8-static.onnx"
    quantize_static(str(pre), str(sta), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax)
    print(write_variant(manifest, sta, "int8-static",
                        f"onnxruntime quantize_static QDQ, per-channel QInt8 weights, QUInt8 activations, "
                        f"MinMax on {len(inputs)} crops of {args.calib}"))
    pre.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
