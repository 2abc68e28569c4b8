"""scripts/quantize.py: the mixed-precision INT8 variant keeps the stem and heads in float32,
carries its own thresholds, and stays close to the float model.

    ENDFACE_BIN=target/debug/endface .venv/bin/python -m pytest tests/python/test_quantize.py -q
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import endface_ref  # noqa: E402
import quantize  # noqa: E402

MANIFEST = ROOT / "models" / "endface-student.manifest.json"


def test_float_nodes_are_the_stem_and_the_heads():
    _, onnx_path = endface_ref.load_manifest(MANIFEST)
    heads = quantize.float_nodes(onnx_path, "heads")
    seg = quantize.float_nodes(onnx_path, "seg")
    assert "/net/enc.0/body/body.0/Conv" in heads  # the first convolution
    assert {"/net/rec_head/Conv", "/net/seg_head/seg_head.3/Conv", "/net/Sigmoid"} <= set(heads)
    assert not any("/enc.1/" in n or "/dec.0/" in n or "/down." in n for n in heads)
    assert set(seg) < set(heads)
    assert "/net/seg_head/seg_head.3/Conv" in seg and "/net/rec_head/Conv" not in seg


def test_mixed_precision_variant(tmp_path, endface_bin):
    import onnx
    import onnxruntime as ort

    data = tmp_path / "calib"
    subprocess.run([str(endface_bin), "-q", "synth", "--out", str(data), "--seed", "77", "--train-good", "0",
                    "--test-good", "2", "--per-kind", "1"], check=True)
    out = tmp_path / "q"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "quantize.py"), "--manifest", str(MANIFEST),
                    "--calib", str(data), "--out", str(out), "--skip-dynamic", "--float-heads",
                    "--method", "percentile", "--tag", "t", "--threshold", "0.95", "--grow", "0.5",
                    "--calibrated-on", "test"], check=True, capture_output=True)
    man_path = out / "endface-student-int8-static-t.manifest.json"
    man = json.loads(man_path.read_text())
    onnx_path = out / man["onnx_file"]
    assert man["sha256"] == hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    assert man["thresholds"]["pixel"] == man["thresholds"]["image"] == 0.95
    assert man["thresholds"]["grow"] == 0.5 and man["thresholds"]["calibrated_on"] == "test"
    assert "do not apply" in man["metrics"]["note"]  # not the float model's figures

    # The heads' weights stay float initializers; the middle of the network is quantized.
    g = onnx.load(str(onnx_path)).graph
    produced_by = {o: n for n in g.node for o in n.output}
    inits = {i.name for i in g.initializer}
    for n in g.node:
        if n.op_type == "Conv" and ("head" in n.name or n.name == "/net/enc.0/body/body.0/Conv"):
            assert n.input[1] in inits, f"{n.name} weights are quantized"
    assert any(n.op_type == "Conv" and n.input[1] in produced_by
               and produced_by[n.input[1]].op_type == "DequantizeLinear" for n in g.node)

    # Close to the float model on a calibration crop.
    base, base_path = endface_ref.load_manifest(MANIFEST)
    x = quantize.calibration_inputs(base, data, 1)[0]
    name = base["input"]["name"]
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    f = ort.InferenceSession(str(base_path), so, providers=["CPUExecutionProvider"]).run(["anomaly"], {name: x})[0]
    q = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"]).run(["anomaly"], {name: x})[0]
    assert f.shape == q.shape
    assert float(np.mean(np.abs(f - q))) < 0.02
