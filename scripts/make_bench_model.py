#!/usr/bin/env python3
"""A stand-in for the shipped model, for timing only: the student UNet architecture with
untrained weights, exported like the real one (1x1x384x384 float32 "image" → "reconstruction",
"anomaly", opset 17) with a manifest. Its FLOPs and memory are the shipped model's; its
verdicts mean nothing (the anomaly head's bias is pushed down so the map is near 0 and the
defect stage sees the few components a good frame gives, not a full-frame blob).

Use it when models/endface-student.onnx is not there yet:
  /work/main/.venv/bin/python scripts/make_bench_model.py --out target/bench-model \
      [--train-pkg scripts/train] [--widths 16,32,64,128,160] [--size 384]
then point the benches / scripts/bench-compare.sh at target/bench-model/bench-student.manifest.json
(ENDFACE_BENCH_MANIFEST=... cargo bench; bench-compare.sh --manifest ...).

Also prints the model's parameter count and multiply-accumulates (for the Jetson estimate in
BENCHMARKS.md): MACs counted over Conv nodes from the ONNX graph with inferred shapes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def conv_macs(onnx_path: Path) -> tuple[int, int]:
    import onnx
    from onnx import numpy_helper, shape_inference

    m = shape_inference.infer_shapes(onnx.load(str(onnx_path)))
    shapes = {}
    for vi in list(m.graph.value_info) + list(m.graph.output) + list(m.graph.input):
        dims = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        shapes[vi.name] = dims
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    macs = 0
    for n in m.graph.node:
        if n.op_type == "Conv":
            w = inits.get(n.input[1])
            out = shapes.get(n.output[0])
            if w is None or not out:
                continue
            cout, cin_g, kh, kw = w.shape
            macs += int(out[0] * cout * out[2] * out[3] * cin_g * kh * kw)
    params = int(sum(v.size for v in inits.values()))
    return macs, params


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "target" / "bench-model"))
    ap.add_argument("--train-pkg", default=str(ROOT / "scripts" / "train"),
                    help="folder holding the endface_train package (StudentUNet)")
    ap.add_argument("--widths", default="16,32,64,128,160")
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--macs-of", help="only print MACs/params of this .onnx and exit")
    args = ap.parse_args()
    if args.macs_of:
        macs, params = conv_macs(Path(args.macs_of))
        print(json.dumps({"onnx": args.macs_of, "conv_macs": macs, "gflops": 2 * macs / 1e9, "params": params}))
        return 0

    import torch

    sys.path.insert(0, args.train_pkg)
    try:
        from endface_train.nets import StudentUNet
    except ImportError as e:
        raise SystemExit(f"make_bench_model: cannot import endface_train.nets from {args.train_pkg}: {e}")
    torch.manual_seed(0)
    widths = tuple(int(w) for w in args.widths.split(","))
    net = StudentUNet(widths).eval()
    with torch.no_grad():
        net.seg_head[-1].bias.fill_(-6.0)
        net.rec_head.weight.mul_(0.01)

    class Exported(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, image):
            return self.net(image)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / "bench-student.onnx"
    dummy = torch.zeros(1, 1, args.size, args.size)
    kw = dict(input_names=["image"], output_names=["reconstruction", "anomaly"], opset_version=17,
              do_constant_folding=True)
    try:
        torch.onnx.export(Exported(net), (dummy,), str(onnx_path), dynamo=False, **kw)
    except TypeError:
        torch.onnx.export(Exported(net), (dummy,), str(onnx_path), **kw)
    macs, params = conv_macs(onnx_path)
    s = args.size
    manifest = {
        "schema": "endface.model-manifest/1",
        "kind": "reconstruction",
        "name": "bench-student",
        "version": "0.0.0-untrained",
        "onnx_file": onnx_path.name,
        "sha256": hashlib.sha256(onnx_path.read_bytes()).hexdigest(),
        "input": {"name": "image", "shape": [1, 1, s, s], "dtype": "float32", "layout": "NCHW", "color": "gray",
                  "normalization": {"mean": 0.5, "std": 0.5}},
        "outputs": [
            {"name": "reconstruction", "shape": [1, 1, s, s], "meaning": "untrained stand-in"},
            {"name": "anomaly", "shape": [1, 1, s, s], "meaning": "untrained stand-in"},
        ],
        "um_per_px": 0.66,
        "anomaly_map": {"source": "anomaly", "smoothing_sigma_px": 1.0},
        "thresholds": {"pixel": 0.5, "image": 0.5, "target_false_reject_rate": 0.01,
                       "calibrated_on": "nothing: timing stand-in"},
        "training": {"note": "untrained StudentUNet for benchmarks only", "widths": list(widths)},
        "metrics": {"conv_macs": macs, "params": params},
    }
    mp = out / "bench-student.manifest.json"
    mp.write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps({"manifest": str(mp), "conv_macs": macs, "gflops": 2 * macs / 1e9, "params": params}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
