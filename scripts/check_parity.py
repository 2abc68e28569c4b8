#!/usr/bin/env python3
"""Rust inspector vs Python onnxruntime on the same frames (tolerance 1e-4).

Usage:
  /work/main/.venv/bin/python scripts/check_parity.py --manifest models/endface-student.manifest.json \
      [--config firmware-config/station.toml] [--endface target/debug/endface] [--tol 1e-4] FRAME...

Runs `endface inspect --json --dump-tensors DIR` on the frames with a temporary station config
(the given config's [calibration], [station] and [locate], this manifest, CPU provider), then for
every graded frame recomputes in Python with scripts/endface_ref.py, from the centre the Rust
side located:
  - crop + normalization (Python decodes the frame itself) vs Rust's input tensor;
  - onnxruntime outputs on Rust's input tensor vs Rust's outputs (pure inference parity);
  - anomaly map (masked to the contact zone) and image score vs Rust's.
Prints the max |rust - python| per quantity and exits 1 when any exceeds --tol.
Needs scripts/setup-ort.sh to have been run (or ENDFACE_ORT_LIB) and a built `endface`.
Frames should be 8-bit gray PNGs for an exact crop comparison (JPEG decoders may differ by 1).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import endface_ref as ref  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def load_gray(path: Path) -> np.ndarray:
    img = Image.open(path)
    if img.mode == "L":
        return np.asarray(img, dtype=np.uint8)
    if img.mode in ("I;16", "I", "F"):
        sys.exit(f"{path}: {img.mode} image: endface refuses non-8-bit images")
    rgb = np.asarray(img.convert("RGB"), dtype=np.uint32)
    # The image crate's RGB -> luma (Rec. 709 integer weights).
    return ((2126 * rgb[..., 0] + 7152 * rgb[..., 1] + 722 * rgb[..., 2]) // 10000).astype(np.uint8)


def read_f32(path: Path) -> np.ndarray:
    return np.fromfile(path, dtype="<f4")


def station_toml(base: Path | None, manifest: Path) -> str:
    lines = []
    if base is not None:
        import tomllib

        cfg = tomllib.loads(base.read_text())
        for section in ("station", "calibration", "locate"):
            if section in cfg:
                lines.append(f"[{section}]")
                for k, v in cfg[section].items():
                    lines.append(f"{k} = {json.dumps(v)}")
    # The manifest's contract only: the station's own rules that change the map (rings about
    # the axis, inspect::rings) are not part of it and are not in the Python twin.
    lines += ["[runtime]", 'providers = ["cpu"]', "[model]", f"manifest = {json.dumps(str(manifest.resolve()))}",
              "remove_rings = false"]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", type=Path, required=True)
    ap.add_argument("--config", type=Path)
    ap.add_argument("--endface", type=Path, default=ROOT / "target" / "debug" / "endface")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("frames", type=Path, nargs="+")
    args = ap.parse_args()

    manifest, onnx_path = ref.load_manifest(args.manifest)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    out_names = [o.name for o in sess.get_outputs()]
    worst: dict[str, float] = {}

    def note(key: str, value: float) -> None:
        worst[key] = max(worst.get(key, 0.0), float(value))

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cfg = tmp / "station.toml"
        cfg.write_text(station_toml(args.config, args.manifest))
        dump = tmp / "dump"
        cmd = [str(args.endface), "-q", "inspect", "--json", "--config", str(cfg), "--dump-tensors", str(dump)]
        cmd += [str(f) for f in args.frames]
        run = subprocess.run(cmd, capture_output=True, text=True)
        if run.returncode != 0:
            print(run.stderr, file=sys.stderr)
            print(f"check_parity: endface exited {run.returncode}", file=sys.stderr)
            return 2
        metas = {}
        for p in dump.glob("*.meta.json") if dump.exists() else []:
            m = json.loads(p.read_text())
            metas[m["image"]] = m
        graded = 0
        for line in run.stdout.splitlines():
            res = json.loads(line)
            frame_path = Path(res["image"])
            meta = metas.get(res["image"])
            if meta is None:
                print(f"{frame_path}: {res.get('verdict')} ({'; '.join(res.get('reasons', []))}): skipped")
                continue
            graded += 1
            files = meta["files"]
            _, c, h, w = manifest["input"]["shape"]
            frame = ref.precondition(load_gray(frame_path))  # stuck pixels, bands: what the station grades
            crop = ref.crop_frame(frame, meta["center_in_frame"], [meta["um_per_px_x"], meta["um_per_px_y"]],
                                  float(manifest["um_per_px"]), int(w), int(h))
            view = ref.in_view_mask(meta["center_in_frame"], [meta["um_per_px_x"], meta["um_per_px_y"]],
                                    float(manifest["um_per_px"]), int(w), int(h), ref.frame_content(frame))
            crop, _, _ = ref.expose(crop, manifest, meta["contact_radius_um"], view=view)  # graded: not too dark
            x_py = ref.normalize(crop, manifest)
            x_rs = read_f32(dump / files["input"]).reshape(x_py.shape)
            note("input (crop+normalize)", np.max(np.abs(x_py - x_rs)))
            outs_py = dict(zip(out_names, sess.run(None, {manifest["input"]["name"]: x_rs})))
            for o in manifest["outputs"]:
                rs = read_f32(dump / files[f"output:{o['name']}"])
                note(f"output {o['name']}", np.max(np.abs(np.asarray(outs_py[o["name"]]).ravel() - rs)))
            amap = ref.anomaly_map(manifest, x_rs, outs_py)
            # the station grades the contact zone's pixels that sample the picture (in view)
            mask = ref.contact_mask(manifest, meta["contact_radius_um"]) & view
            amap = np.where(mask, amap, 0.0).astype(np.float32)
            map_rs = read_f32(dump / files["anomaly_map_masked"]).reshape(amap.shape)
            note("anomaly map", np.max(np.abs(amap - map_rs)))
            note("image score", abs(float(amap.max()) - float(meta.get("map_score", meta["image_score"]))))
        if graded == 0:
            print("check_parity: no frame was graded (all UNABLE?): nothing compared", file=sys.stderr)
            return 2
    print(f"check_parity: {graded} frame(s), onnxruntime {ort.__version__}, manifest {args.manifest}")
    bad = False
    for k, v in worst.items():
        flag = "ok" if v <= args.tol else "EXCEEDS"
        bad |= v > args.tol
        print(f"  max |rust - python| {k:<28} {v:.3e}  {flag}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
