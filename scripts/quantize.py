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
    labs = [json.loads(line) for line in labels.read_text().splitlines() if line.strip()]
    labs = [lab for lab in labs
            if lab.get("center") is not None and lab.get("um_per_px_x", lab.get("um_per_px")) is not None]
    # Spread the crops over the whole file (good images first, then each defect kind): a good-only
    # calibration sets the anomaly head's activation range from good parts, where it never fires.
    step = max(1, len(labs) // max(1, limit))
    out = []
    for lab in labs[::step]:
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


def float_nodes(model_path: Path, which: str = "heads") -> list[str]:
    """The nodes a mixed-precision variant keeps in float32: everything before the first
    convolution's output (the stem), the first convolution itself, and every node from the last
    decoder activation on (the reconstruction and anomaly heads, whose small output ranges carry
    the threshold decision). `which="seg"`: only the anomaly head's nodes (its convolutions, its
    depth-to-space and the final sigmoid)."""
    import onnx

    nodes = onnx.load(str(model_path)).graph.node
    convs = [i for i, n in enumerate(nodes) if n.op_type == "Conv"]
    if len(convs) < 4:
        return []
    head_inputs = {n.input[0] for n in nodes if "head" in n.name and n.op_type == "Conv"}
    keep = set(range(convs[0] + 1))
    first_head = min((i for i, n in enumerate(nodes) if n.output and n.output[0] in head_inputs), default=convs[-1])
    keep |= set(range(first_head + 1, len(nodes)))
    if which == "seg":
        # Only the anomaly head: the reconstruction head and the stem stay quantized.
        keep = {i for i in keep if "seg_head" in nodes[i].name or nodes[i].op_type == "Sigmoid" and i > first_head
                or nodes[i].op_type == "DepthToSpace" and "seg_head" in nodes[i].input[0]}
    return [nodes[i].name for i in sorted(keep)]


def write_variant(manifest: dict, onnx_path: Path, variant: str, note: str,
                  thresholds: dict | None = None) -> Path:
    m = json.loads(json.dumps(manifest))
    # The float model's test figures do not describe the variant: BENCHMARKS.md has its own.
    m["metrics"] = {"note": f"measured separately for this variant; the float model's figures "
                            f"({manifest['name']} {manifest['version']}) do not apply"}
    if thresholds:
        m["thresholds"] = thresholds
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
    ap.add_argument("--method", choices=["minmax", "percentile", "entropy"], default="minmax",
                    help="activation calibration of the static variant")
    ap.add_argument("--float-heads", action="store_true",
                    help="keep the stem and the output heads (their convolutions) in float32")
    ap.add_argument("--float-seg", action="store_true",
                    help="keep only the anomaly head in float32")
    ap.add_argument("--tag", default="", help="suffix for the static variant's name")
    ap.add_argument("--skip-dynamic", action="store_true")
    ap.add_argument("--threshold", type=float,
                    help="the static variant's own image = pixel threshold, chosen on a labelled "
                         "validation set (default: the float model's)")
    ap.add_argument("--grow", type=float, help="its hysteresis grow threshold (default: the float model's)")
    ap.add_argument("--calibrated-on", default="", help="how --threshold/--grow were chosen (kept in the manifest)")
    args = ap.parse_args()

    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_dynamic, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    manifest, onnx_path = endface_ref.load_manifest(args.manifest)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = manifest["name"]
    pre = args.out / f"{stem}-pre.onnx"
    quant_pre_process(str(onnx_path), str(pre), skip_symbolic_shape=True)

    if not args.skip_dynamic:
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

    exclude = float_nodes(pre, "heads") if args.float_heads else float_nodes(pre, "seg") if args.float_seg else []
    method = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
              "entropy": CalibrationMethod.Entropy}[args.method]
    variant = "int8-static" + (f"-{args.tag}" if args.tag else "")
    sta = args.out / f"{stem}-{variant}.onnx"
    quantize_static(str(pre), str(sta), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=method, nodes_to_exclude=exclude)
    thresholds = None
    if args.threshold is not None or args.grow is not None:
        thresholds = dict(manifest["thresholds"])
        if args.threshold is not None:
            thresholds["pixel"] = thresholds["image"] = args.threshold
        if args.grow is not None:
            thresholds["grow"] = args.grow
        if thresholds.get("grow", 0.0) > thresholds["pixel"]:
            raise SystemExit(f"quantize: --grow {thresholds['grow']} is above the pixel threshold {thresholds['pixel']}")
        thresholds.pop("target_false_reject_rate", None)
        thresholds["calibrated_on"] = args.calibrated_on or "given on the quantize.py command line"
    print(write_variant(manifest, sta, variant,
                        f"onnxruntime quantize_static QDQ, per-channel QInt8 weights, QUInt8 activations, "
                        f"{args.method} on {len(inputs)} crops of {args.calib}"
                        + (f"; float32 kept for {len(exclude)} nodes (stem and heads)" if exclude else ""),
                        thresholds))
    pre.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
