"""ONNX export of the student and its manifest (models/MANIFEST.md documents the schema).

In: a trained `StudentUNet`, the crop geometry, calibrated thresholds, training summary, metrics.
Out: `<name>.onnx` (opset 17, one self-contained file, float32, fixed 1x1xHxW input "image",
outputs "reconstruction" and "anomaly") and `<name>.manifest.json` beside it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger("endface_train")

SCHEMA = "endface.model-manifest/1"
MEAN, STD = 0.5, 0.5


class Exported(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, image):
        return self.net(image)


def export_onnx(net, path: Path, size: int, opset: int = 17) -> dict:
    net = net.cpu().float().eval()
    wrapper = Exported(net).eval()
    dummy = torch.zeros(1, 1, size, size)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = output_names(net)
    kwargs = dict(input_names=["image"], output_names=names, opset_version=opset,
                  do_constant_folding=True)
    try:
        torch.onnx.export(wrapper, (dummy,), str(path), dynamo=False, **kwargs)
    except TypeError:  # older torch without the dynamo switch
        torch.onnx.export(wrapper, (dummy,), str(path), **kwargs)
    import onnx
    import onnxruntime as ort

    m = onnx.load(str(path))
    onnx.checker.check_model(m)
    ext = [t.name for t in m.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    if ext:
        raise RuntimeError(f"{path}: tensors stored externally ({ext[:3]}...); the model must be one file")
    # agreement with torch
    rng = np.random.default_rng(0)
    x = ((rng.random((1, 1, size, size)) - MEAN) / STD).astype(np.float32)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outs_o = sess.run(names, {"image": x})
    with torch.no_grad():
        outs_t = wrapper(torch.from_numpy(x))
    err = max(float(np.abs(o - t.numpy()).max()) for o, t in zip(outs_o, outs_t))
    if err > 1e-3:
        raise RuntimeError(f"{path}: ONNX and torch disagree by {err:.2e}")
    return {"opset": opset, "max_abs_diff_vs_torch": err, "bytes": path.stat().st_size}


def output_names(net) -> list:
    """The ONNX outputs: reconstruction, anomaly and, with a crack head, crack."""
    return ["reconstruction", "anomaly"] + (["crack"] if getattr(net, "crack_head", False) else [])


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_manifest(onnx_path: Path, *, name, version, size, crop_um_per_px, thresholds, training, metrics,
                   smoothing_sigma_px=0.0, crack_output=False) -> Path:
    man = {
        "schema": SCHEMA,
        "kind": "reconstruction",
        "name": name,
        "version": version,
        "onnx_file": onnx_path.name,
        "sha256": sha256_of(onnx_path),
        "input": {"name": "image", "shape": [1, 1, size, size], "dtype": "float32", "layout": "NCHW",
                  "color": "gray", "normalization": {"mean": MEAN, "std": STD}},
        "outputs": [
            {"name": "reconstruction", "shape": [1, 1, size, size],
             "meaning": "defect-free reconstruction, same normalization as input"},
            {"name": "anomaly", "shape": [1, 1, size, size],
             "meaning": "per-pixel anomaly probability in [0,1] from the segmentation head"},
        ] + ([{"name": "crack", "shape": [1, 1, size, size],
               "meaning": "per-pixel probability in [0,1] that an anomalous pixel is part of a crack "
                          "(fracture) rather than a scratch or a spot; read only inside defects"}]
             if crack_output else []),
        **({"crack": {"output": "crack", "min_mean": 0.5}} if crack_output else {}),
        "um_per_px": crop_um_per_px,
        "anomaly_map": {"source": "anomaly", "smoothing_sigma_px": smoothing_sigma_px},
        "thresholds": thresholds,
        "training": training,
        "metrics": metrics,
    }
    p = onnx_path.with_name(onnx_path.name[: -len(".onnx")] + ".manifest.json")
    p.write_text(json.dumps(man, indent=2, allow_nan=False) + "\n")
    return p


class OnnxStudent:
    """The exported student run by onnxruntime (what the station runs)."""

    def __init__(self, path: Path, threads: int = 2):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])

    def __call__(self, crop01: np.ndarray):
        x = ((crop01 - MEAN) / STD).astype(np.float32)[None, None]
        rec, an = self.sess.run(["reconstruction", "anomaly"], {"image": x})
        return rec[0, 0] * STD + MEAN, an[0, 0]
