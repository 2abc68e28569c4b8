#!/usr/bin/env python3
"""Build the tiny ONNX models + manifests under tests/fixtures/ and their parity fixtures.

Run:  /work/main/.venv/bin/python scripts/make_test_models.py
(needs numpy, onnx, onnxruntime 1.20.1, scipy, pillow; no torch). Deterministic: re-running
rewrites byte-identical files.

Models (all fixed, hand-made weights; they are not trained, they only exercise the runtime):
- recon64    kind "reconstruction", input "image" 1x1x64x64 gray, 4.0 um/px. Outputs
             "reconstruction" = 5x5 Gaussian-blur conv of the input, "anomaly" =
             sigmoid(20 * (|x - rec| * 0.5 - 0.1)). Map source "abs_diff", smoothing 1.0.
- anomalib64 kind "anomaly_map" (anomalib-style export), input "input" 1x3x64x64 rgb with
             ImageNet mean/std, outputs "anomaly_map" 1x1x64x64 and "pred_score" 1.
- recon256   kind "reconstruction", 1x1x256x256 gray at 1.0 um/px (covers 256 um >= the
             250 um contact zone): the model the inspect pipeline tests run. 9x9 Gaussian
             blur (sigma 2 px) reconstruction; map "abs_diff" smoothed with sigma 1.

Parity fixtures (tests/fixtures/parity/): for each model a frame (parity_frame.png, 160x120,
non-square pixels), the crop centre and scale, and what Python computes from them with
scripts/endface_ref.py: the normalized input tensor, every output and the anomaly map, as
raw little-endian float32 files. tests/model_parity.rs checks Rust against them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import endface_ref as ref  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures"
PARITY = FIX / "parity"


def gauss_kernel(size: int, sigma: float) -> np.ndarray:
    r = np.arange(size) - (size - 1) / 2.0
    g = np.exp(-0.5 * (r / sigma) ** 2)
    k = np.outer(g, g)
    return (k / k.sum()).astype(np.float32)


def save_model(graph, path: Path) -> None:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="endface-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())


def recon_graph(size: int, ksize: int, sigma: float, crack: float | None = None):
    k = gauss_kernel(ksize, sigma)[None, None]
    pad = ksize // 2
    nodes = [
        helper.make_node("Conv", ["image", "blur_w"], ["reconstruction"], pads=[pad] * 4),
        helper.make_node("Sub", ["image", "reconstruction"], ["diff"]),
        helper.make_node("Abs", ["diff"], ["absdiff"]),
        helper.make_node("Mul", ["absdiff", "half"], ["scaled"]),
        helper.make_node("Sub", ["scaled", "offset"], ["shifted"]),
        helper.make_node("Mul", ["shifted", "gain"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["anomaly"]),
    ]
    inits = [
        numpy_helper.from_array(k, "blur_w"),
        numpy_helper.from_array(np.array(0.5, np.float32), "half"),
        numpy_helper.from_array(np.array(0.1, np.float32), "offset"),
        numpy_helper.from_array(np.array(20.0, np.float32), "gain"),
    ]
    shape = [1, 1, size, size]
    outputs = [
        helper.make_tensor_value_info("reconstruction", TensorProto.FLOAT, shape),
        helper.make_tensor_value_info("anomaly", TensorProto.FLOAT, shape),
    ]
    if crack is not None:
        # a crack-probability plane: the same value everywhere
        nodes += [
            helper.make_node("Mul", ["image", "zero"], ["zeros"]),
            helper.make_node("Add", ["zeros", "crack_p"], ["crack"]),
        ]
        inits += [
            numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
            numpy_helper.from_array(np.array(crack, np.float32), "crack_p"),
        ]
        outputs.append(helper.make_tensor_value_info("crack", TensorProto.FLOAT, shape))
    return helper.make_graph(
        nodes,
        f"recon{size}" + ("_crack" if crack is not None else ""),
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)],
        outputs,
        inits,
    )


def anomalib_graph(size: int):
    k = gauss_kernel(5, 1.0)
    w = np.zeros((1, 3, 5, 5), np.float32)
    for c in range(3):
        w[0, c] = k / 3.0
    mean_w = np.full((1, 3, 1, 1), 1.0 / 3.0, np.float32)
    nodes = [
        helper.make_node("Conv", ["input", "blur_w"], ["blurred"], pads=[2, 2, 2, 2]),
        helper.make_node("Conv", ["input", "mean_w"], ["gray"]),
        helper.make_node("Sub", ["gray", "blurred"], ["diff"]),
        helper.make_node("Abs", ["diff"], ["absdiff"]),
        helper.make_node("Mul", ["absdiff", "gain"], ["logits"]),
        helper.make_node("Tanh", ["logits"], ["anomaly_map"]),
        helper.make_node("ReduceMax", ["anomaly_map"], ["pred_score_scalar"], keepdims=0),
        helper.make_node("Reshape", ["pred_score_scalar", "one"], ["pred_score"]),
    ]
    inits = [
        numpy_helper.from_array(w, "blur_w"),
        numpy_helper.from_array(mean_w, "mean_w"),
        numpy_helper.from_array(np.array(2.0, np.float32), "gain"),
        numpy_helper.from_array(np.array([1], np.int64), "one"),
    ]
    return helper.make_graph(
        nodes,
        "anomalib64",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, size, size])],
        [
            helper.make_tensor_value_info("anomaly_map", TensorProto.FLOAT, [1, 1, size, size]),
            helper.make_tensor_value_info("pred_score", TensorProto.FLOAT, [1]),
        ],
        inits,
    )


def write_manifest(name: str, onnx_path: Path, body: dict) -> dict:
    manifest = {
        "schema": "endface.model-manifest/1",
        "kind": body["kind"],
        "name": name,
        "version": "0.0.1",
        "onnx_file": onnx_path.name,
        "sha256": ref.sha256_file(onnx_path),
        **{k: v for k, v in body.items() if k != "kind"},
        "training": {"note": "hand-made test fixture, not trained (scripts/make_test_models.py)"},
        "metrics": {},
    }
    (FIX / f"{name}.manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def parity_frame() -> np.ndarray:
    """A 160x120 frame with structure everywhere (smooth rings plus a few sharp spots)."""
    h, w = 120, 160
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    r = np.hypot((xx - 81.0) * 1.0, (yy - 58.0) * 1.09)
    img = 120 + 60 * np.cos(r / 6.0) + 30 * np.sin(xx / 9.0) * np.cos(yy / 13.0)
    for (x, y, rad, val) in [(70, 50, 3, 20), (100, 70, 2, 250), (40, 90, 4, 10)]:
        img[(xx - x) ** 2 + (yy - y) ** 2 <= rad * rad] = val
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def write_parity(name: str, manifest: dict, onnx_path: Path, frame_path: Path, frame: np.ndarray) -> None:
    center = [81.25, 57.75]
    um_per_px = [2.0, 2.0 / 1.09]
    _, _, h, w = manifest["input"]["shape"]
    crop = ref.crop_frame(frame, center, um_per_px, float(manifest["um_per_px"]), int(w), int(h))
    x = ref.normalize(crop, manifest)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    outs = dict(zip(names, sess.run(None, {manifest["input"]["name"]: x})))
    amap = ref.anomaly_map(manifest, x, outs)
    files = {"input": f"{name}.input.f32", "anomaly_map": f"{name}.map.f32"}
    x.astype("<f4").tofile(PARITY / files["input"])
    amap.astype("<f4").tofile(PARITY / files["anomaly_map"])
    for n, v in outs.items():
        files[f"output:{n}"] = f"{name}.out.{n}.f32"
        np.asarray(v, dtype="<f4").tofile(PARITY / files[f"output:{n}"])
    meta = {
        "manifest": f"../{name}.manifest.json",
        "frame": f"../{frame_path.name}",
        "center_in_frame": center,
        "um_per_px_x": um_per_px[0],
        "um_per_px_y": um_per_px[1],
        "files": files,
        "image_score": ref.image_score(manifest, amap),
        "onnxruntime": ort.__version__,
    }
    (PARITY / f"{name}.json").write_text(json.dumps(meta, indent=2) + "\n")


def main() -> None:
    FIX.mkdir(parents=True, exist_ok=True)
    PARITY.mkdir(parents=True, exist_ok=True)

    p = FIX / "recon64.onnx"
    save_model(recon_graph(64, 5, 1.0), p)
    m_recon64 = write_manifest(
        "recon64",
        p,
        {
            "kind": "reconstruction",
            "input": {
                "name": "image",
                "shape": [1, 1, 64, 64],
                "dtype": "float32",
                "layout": "NCHW",
                "color": "gray",
                "normalization": {"mean": 0.5, "std": 0.5},
            },
            "outputs": [
                {"name": "reconstruction", "shape": [1, 1, 64, 64], "meaning": "5x5 Gaussian blur of the input"},
                {"name": "anomaly", "shape": [1, 1, 64, 64], "meaning": "sigmoid of the scaled difference"},
            ],
            "um_per_px": 4.0,
            "anomaly_map": {"source": "abs_diff", "smoothing_sigma_px": 1.0},
            "thresholds": {"pixel": 0.1, "image": 0.1, "target_false_reject_rate": 0.01, "calibrated_on": "not calibrated (fixture)"},
        },
    )

    p = FIX / "anomalib64.onnx"
    save_model(anomalib_graph(64), p)
    m_anomalib = write_manifest(
        "anomalib64",
        p,
        {
            "kind": "anomaly_map",
            "input": {
                "name": "input",
                "shape": [1, 3, 64, 64],
                "dtype": "float32",
                "layout": "NCHW",
                "color": "rgb",
                "normalization": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
            },
            "outputs": [
                {"name": "anomaly_map", "shape": [1, 1, 64, 64], "meaning": "anomaly map (anomalib-style)"},
                {"name": "pred_score", "shape": [1], "meaning": "image score (max of the map)"},
            ],
            "um_per_px": 4.0,
            "anomaly_map": {"source": "anomaly_map", "smoothing_sigma_px": 0.0},
            "thresholds": {"pixel": 0.5, "image": 0.5, "target_false_reject_rate": 0.01, "calibrated_on": "not calibrated (fixture)"},
        },
    )

    p = FIX / "recon256.onnx"
    save_model(recon_graph(256, 9, 2.0), p)
    body256 = {
        "kind": "reconstruction",
        "input": {
            "name": "image",
            "shape": [1, 1, 256, 256],
            "dtype": "float32",
            "layout": "NCHW",
            "color": "gray",
            "normalization": {"mean": 0.5, "std": 0.5},
        },
        "outputs": [
            {"name": "reconstruction", "shape": [1, 1, 256, 256], "meaning": "9x9 Gaussian blur of the input"},
            {"name": "anomaly", "shape": [1, 1, 256, 256], "meaning": "sigmoid of the scaled difference"},
        ],
        "um_per_px": 1.0,
        "anomaly_map": {"source": "abs_diff", "smoothing_sigma_px": 1.0},
        "thresholds": {"pixel": 0.08, "image": 0.08, "target_false_reject_rate": 0.01, "calibrated_on": "not calibrated (fixture)"},
    }
    write_manifest("recon256", p, body256)

    # recon256 plus a crack output (0.7 everywhere): every defect is a crack at min_mean 0.5
    p = FIX / "crack256.onnx"
    save_model(recon_graph(256, 9, 2.0, crack=0.7), p)
    crack_out = {"name": "crack", "shape": [1, 1, 256, 256], "meaning": "crack probability, 0.7 everywhere"}
    body = {}
    for k, v in body256.items():
        if k == "thresholds":
            body["crack"] = {"output": "crack", "min_mean": 0.5}
        body[k] = v + [crack_out] if k == "outputs" else v
    write_manifest("crack256", p, body)

    frame = parity_frame()
    frame_path = FIX / "parity_frame.png"
    Image.fromarray(frame, mode="L").save(frame_path, optimize=False, compress_level=9)
    write_parity("recon64", m_recon64, FIX / "recon64.onnx", frame_path, frame)
    write_parity("anomalib64", m_anomalib, FIX / "anomalib64.onnx", frame_path, frame)
    print(f"wrote fixtures under {FIX}")


if __name__ == "__main__":
    main()
