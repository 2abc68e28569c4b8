#!/usr/bin/env python3
"""Rust pipeline vs a straightforward Python baseline, same frames, same ONNX Runtime.

One invocation:
  1. renders the frames (`endface synth`, single-mode UPC, fixed µm/px, PNG) for each size,
     or takes an existing folder (--frames-dir);
  2. runs the Rust pipeline as a child process: `endface inspect --json --config STATION.toml`
     over every frame (one process, model loaded once);
  3. runs the Python baseline as a child process (this file, `baseline` mode): OpenCV locate
     (threshold + contour + fitEllipse, HoughCircles fallback), cv2.remap crop, normalize,
     onnxruntime `session.run`, the anomaly map (cv2.GaussianBlur for smoothing), contact-zone
     and in-frame
     mask, threshold, cv2.connectedComponentsWithStats, per-component measurement, and the IEC
     rules read from firmware-config/profiles/<profile>.toml — the tool a line engineer would
     write;
  4. prints, side by side: wall time and frames/s of each process, per-frame latency (p50/p95,
     decode excluded, first 3 frames excluded), model time vs everything else, peak RSS of each
     child (os.wait4 rusage), the ratios Rust/Python, and verdict agreement.

Threads: by default both sides run one ONNX Runtime session with --threads intra-op threads.
With --rust-workers W the Rust side inspects W frames side by side (`endface inspect --workers
W`, one session of --threads threads each, results in order); --python-threads P gives the
Python session P threads. "Same cores" is W x threads = P: e.g. `--threads 1 --rust-workers 2
--python-threads 2` on a 2-core machine (each tool may use both cores, each in its own way).

Both use ONNX Runtime 1.20.1 on the CPU: Python the
`onnxruntime` wheel, Rust the libonnxruntime.so that scripts/setup-ort.sh takes out of the
same wheel (.ort/x86_64/); the sha256 of both libraries is printed. If .ort is missing, the
Rust side is pointed at the wheel's own library.

Usage (scripts/bench-compare.sh wraps it):
  /work/main/.venv/bin/python scripts/bench_compare.py \\
      [--frames 60] [--sizes 640x480,1152x864] [--manifest models/endface-student.manifest.json] \\
      [--profile sm-upc] [--threads 1] [--rounds 3] [--endface target/release/endface] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------- baseline


def parse_size_range(text: str):
    """IEC profile size band → predicate on µm (same grammar as src/grade.rs)."""
    t = text.strip()
    if t == "any":
        return lambda s: True
    m = re.fullmatch(r"(<=|>=|<|>)\s*([0-9.]+)", t)
    if m:
        op, x = m.group(1), float(m.group(2))
        return {
            "<": lambda s: s < x,
            "<=": lambda s: s <= x,
            ">": lambda s: s > x,
            ">=": lambda s: s >= x,
        }[op]
    m = re.fullmatch(r"([\[(])\s*([0-9.]+)\s*,\s*([0-9.]+)\s*([\])])", t)
    if m:
        lo_in, lo, hi, hi_in = m.group(1) == "[", float(m.group(2)), float(m.group(3)), m.group(4) == "]"
        return lambda s: (s >= lo if lo_in else s > lo) and (s <= hi if hi_in else s < hi)
    raise ValueError(f"size_um {text!r}: not a size range")


def load_profile(name_or_path: str):
    import tomllib

    p = Path(name_or_path)
    if not p.is_file():
        p = ROOT / "firmware-config" / "profiles" / f"{name_or_path}.toml"
    with open(p, "rb") as f:
        spec = tomllib.load(f)
    zones = []
    for z in "ABCD":
        rule = spec["zones"][z]
        bands = {}
        for kind in ("scratches", "defects"):
            bands[kind] = [
                (parse_size_range(b["size_um"]), None if b["max_count"] == "unlimited" else int(b["max_count"]))
                for b in rule[kind]
            ]
        zones.append((z, rule["outer_diameter_um"] / 2.0, bands))
    return zones


def grade(zones, features):
    """features: [(kind 'scratches'|'defects', size_um, inner_radius_um)] → ('pass'|'fail', reasons)."""
    counts = {}
    for kind, size, r in features:
        zi = next((i for i, (_, outer, _) in enumerate(zones) if r <= outer), None)
        if zi is None:
            continue
        bands = zones[zi][2][kind]
        bi = next((i for i, (pred, _) in enumerate(bands) if pred(size)), None)
        if bi is None:
            continue
        counts[(zi, kind, bi)] = counts.get((zi, kind, bi), 0) + 1
    reasons = []
    for (zi, kind, bi), n in sorted(counts.items()):
        limit = zones[zi][2][kind][bi][1]
        if limit is not None and n > limit:
            reasons.append(f"zone {zones[zi][0]}: {n} {kind} in band {bi}, limit {limit}")
    return ("fail" if reasons else "pass"), reasons


def locate(gray, cv2, np, umx, umy):
    """Cladding centre and radius: Otsu threshold + contours + fitEllipse, HoughCircles fallback."""
    r_exp = 62.5 / umx
    blur = cv2.GaussianBlur(gray, (0, 0), 2.0)
    best = None
    _, th = cv2.threshold(blur, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    for mask in (th, 255 - th):
        contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
        for c in contours:
            if len(c) < 20:
                continue
            area = cv2.contourArea(c)
            if not (0.6 * math.pi * r_exp**2 < area < 1.5 * math.pi * r_exp**2):
                continue
            (cx, cy), (a, b), _ = cv2.fitEllipse(c)
            r = 0.25 * (a + b)
            circ = 4 * math.pi * area / max(cv2.arcLength(c, True) ** 2, 1e-9)
            err = abs(r / r_exp - 1.0) + (1.0 - min(circ, 1.0))
            if err < 0.25 and (best is None or err < best[3]):
                best = (cx, cy, r, err)
    if best is None:
        circles = cv2.HoughCircles(
            blur, cv2.HOUGH_GRADIENT, dp=2, minDist=gray.shape[0],
            param1=60, param2=25, minRadius=int(0.85 * r_exp), maxRadius=int(1.15 * r_exp) + 1,
        )
        if circles is None:
            return None
        cx, cy, r = circles[0][0]
        best = (float(cx), float(cy), float(r), 1.0)
    return best[0], best[1], best[2]


class Baseline:
    def __init__(self, manifest_path: Path, profile: str, umx: float, umy: float, threads: int):
        import cv2
        import numpy as np
        import onnxruntime as ort

        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from endface_ref import frame_content  # the station's blanking-border rule (border.rs)

        self.cv2, self.np, self.frame_content = cv2, np, frame_content
        cv2.setNumThreads(1)
        m = json.loads(manifest_path.read_text())
        self.m = m
        onnx_path = manifest_path.parent / m["onnx_file"]
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
        _, c, h, w = m["input"]["shape"]
        self.c, self.h, self.w = c, h, w
        norm = m["input"]["normalization"]
        self.mean = float(norm["mean"] if not isinstance(norm["mean"], list) else norm["mean"][0])
        self.std = float(norm["std"] if not isinstance(norm["std"], list) else norm["std"][0])
        self.s = float(m["um_per_px"])
        self.umx, self.umy = umx, umy
        self.zones = load_profile(profile)
        self.contact_r_um = self.zones[-1][1]
        self.pix_t = float(m["thresholds"]["pixel"])
        self.img_t = float(m["thresholds"]["image"])
        self.grow_t = min(float(m["thresholds"].get("grow", self.pix_t)), self.pix_t)
        self.src = m["anomaly_map"]["source"]
        # optional crack output: a defect whose pixels average >= min_mean is a crack, graded
        # as a defect by its Feret diameter (models/MANIFEST.md)
        self.crack = m.get("crack")
        self.sigma = float(m["anomaly_map"].get("smoothing_sigma_px", 0.0))
        self.in_name = m["input"]["name"]
        self.rec_name = next((o["name"] for o in m["outputs"] if o["name"] == "reconstruction"), "reconstruction")
        vv, uu = np.mgrid[0:h, 0:w].astype(np.float32)
        self.du = uu - (w - 1) / 2.0
        self.dv = vv - (h - 1) / 2.0
        self.r_um = np.hypot(self.du, self.dv) * self.s
        self.zone_mask = self.r_um <= self.contact_r_um
        zone_b_r = next(outer for name, outer, _ in self.zones if name == "B")
        self.zone_b_mask = self.r_um <= zone_b_r
        # warm-up (the Rust side warms up in Model::load too)
        self.sess.run(None, {self.in_name: np.zeros((1, c, h, w), np.float32)})

    def inspect(self, gray):
        cv2, np = self.cv2, self.np
        t = {}
        t0 = time.perf_counter()
        loc = locate(gray, cv2, np, self.umx, self.umy)
        t["locate"] = time.perf_counter() - t0
        if loc is None:
            t["total"] = t["locate"]
            return {"verdict": "unable", "reasons": ["cladding not found"], "timings": t}
        cx, cy, _ = loc
        t0 = time.perf_counter()
        map_x = (cx + self.du * (self.s / self.umx)).astype(np.float32)
        map_y = (cy + self.dv * (self.s / self.umy)).astype(np.float32)
        # the picture: the frame less its blanking borders (src/inspect/border.rs)
        x0, y0, x1, y1 = self.frame_content(gray)
        crop = cv2.remap(gray[y0:y1, x0:x1], map_x - x0, map_y - y0, cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
        # crop pixels beyond the picture (BORDER_REPLICATE streaks) are not graded; 2 crop px margin
        mx, my = 2.0 * self.s / self.umx, 2.0 * self.s / self.umy
        view = (map_x >= x0 + mx) & (map_x <= x1 - 1 - mx) & (map_y >= y0 + my) & (map_y <= y1 - 1 - my)
        if not view[self.zone_b_mask].all():
            t["crop"] = time.perf_counter() - t0
            t["total"] = sum(t.values())
            return {"verdict": "unable", "reasons": ["fiber too close to the frame edge"], "timings": t}
        x = ((crop.astype(np.float32) / 255.0 - self.mean) / self.std)[None, None]
        if self.c > 1:
            x = np.repeat(x, self.c, axis=1)
        t["crop"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        outs = self.sess.run(None, {self.in_name: x})
        t["infer"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        names = [o.name for o in self.sess.get_outputs()]
        out = dict(zip(names, outs))
        if self.src == "abs_diff":
            amap = np.abs(x[0, 0] - out[self.rec_name][0, 0]) * self.std
        else:
            amap = out[self.src].reshape(self.h, self.w).astype(np.float32)
        if self.sigma > 0:
            amap = cv2.GaussianBlur(amap, (0, 0), self.sigma, borderType=cv2.BORDER_REFLECT)
        amap = np.where(self.zone_mask & view, amap, 0.0).astype(np.float32)
        score = float(amap.max())
        # Hysteresis (manifest thresholds.grow): components of map > grow holding a pixel > pixel.
        binary = (amap > self.grow_t).astype(np.uint8)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
        seeded = np.zeros(n, bool)
        seeded[np.unique(labels[amap > self.pix_t])] = True
        feats = []
        for k in range(1, n):
            if not seeded[k]:
                continue
            ys, xs = np.nonzero(labels == k)
            area = len(xs)
            pts = np.stack([xs, ys], axis=1).astype(np.int32)
            hull = cv2.convexHull(pts).reshape(-1, 2).astype(np.float64)
            if len(hull) > 1:
                d = hull[:, None, :] - hull[None, :, :]
                feret = math.sqrt(float((d**2).sum(-1).max())) + 1.0
            else:
                feret = 1.0
            length = feret
            width = area / length
            scratch = length / width >= 3.0 and length >= 4.0
            r_min = float(self.r_um[ys, xs].min())
            inner = max(r_min - self.s / 2.0, 0.0)
            if self.crack is not None and float(out[self.crack["output"]].reshape(self.h, self.w)[ys, xs].mean()) \
                    >= float(self.crack["min_mean"]):
                scratch = False
            size = (width if scratch else feret) * self.s
            feats.append(("scratches" if scratch else "defects", size, inner))
        t["anomaly"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        verdict, reasons = grade(self.zones, feats)
        t["grade"] = time.perf_counter() - t0
        t["total"] = sum(t.values())
        return {"verdict": verdict, "reasons": reasons, "defects": len(feats), "image_score": score,
                "center": [cx, cy], "timings": t}


def run_baseline(args) -> int:
    import cv2

    t_start = time.perf_counter()
    b = Baseline(Path(args.manifest), args.profile, args.um_per_px, args.um_per_px_y or args.um_per_px, args.threads)
    load_s = time.perf_counter() - t_start
    images = sorted(Path(p) for p in args.images)
    t_loop = time.perf_counter()
    for p in images:
        gray = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        r = b.inspect(gray)
        r["image"] = str(p)
        r["timings_ms"] = {k: v * 1e3 for k, v in r.pop("timings").items()}
        print(json.dumps(r))
    print(json.dumps({"summary": True, "load_s": load_s, "loop_s": time.perf_counter() - t_loop}))
    return 0


# ----------------------------------------------------------------------------- driver


def run_child(cmd, env=None):
    """Run a child; returns (stdout, wall_s, peak_rss_mib, returncode)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    out, err = p.stdout.read(), p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode not in (0, 1, 2):
        sys.stderr.write(err.decode(errors="replace")[-3000:])
    return out.decode(), wall, ru.ru_maxrss / 1024.0, p.returncode, err.decode(errors="replace")


def pct(values, q):
    v = sorted(values)
    if not v:
        return float("nan")
    i = min(len(v) - 1, max(0, int(round(q * (len(v) - 1)))))
    return v[i]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ort_libraries():
    import onnxruntime as ort

    capi = Path(ort.__file__).parent / "capi"
    wheel_lib = next(iter(sorted(capi.glob("libonnxruntime.so*"))), None)
    rust_lib = ROOT / ".ort" / "x86_64" / "libonnxruntime.so"
    if os.environ.get("ENDFACE_ORT_LIB"):
        rust_lib = Path(os.environ["ENDFACE_ORT_LIB"])
    if not rust_lib.is_file():
        rust_lib = wheel_lib
    return ort.__version__, wheel_lib, rust_lib


def summarize(name, lines, wall, rss, skip=3, parallel=False):
    frames = [l for l in lines if "verdict" in l]
    steady = frames[skip:] if len(frames) > skip else frames
    tot = [f["timings_ms"]["total"] for f in steady]
    inf = [f["timings_ms"].get("infer", 0.0) for f in steady]
    over = [a - b for a, b in zip(tot, inf)]
    return {
        "name": name,
        "frames": len(frames),
        "wall_s": wall,
        "fps_wall": len(frames) / wall if wall > 0 else float("nan"),
        # 1 / mean per-frame time: a throughput only when frames go one at a time.
        "fps_pipeline": (1e3 * len(tot) / sum(tot) if tot and sum(tot) > 0 and not parallel
                         else float("nan")),
        "p50_ms": pct(tot, 0.5),
        "p95_ms": pct(tot, 0.95),
        "infer_p50_ms": pct(inf, 0.5),
        "overhead_p50_ms": pct(over, 0.5),
        "overhead_over_model": (sum(over) / sum(inf)) if inf and sum(inf) > 0 else float("nan"),
        "stages_p50_ms": {
            k: pct([f["timings_ms"].get(k, 0.0) for f in steady], 0.5)
            for k in ("locate", "crop", "infer", "anomaly", "grade")
        },
        "peak_rss_mib": rss,
        "verdicts": {f["image"]: f["verdict"] for f in frames},
    }


def merge_rounds(rounds):
    """Median over rounds of every figure (peak RSS: the largest); verdicts of the first round."""
    if len(rounds) == 1:
        return rounds[0]
    out = dict(rounds[0])
    for k, v in rounds[0].items():
        if isinstance(v, (int, float)) and k != "frames":
            vals = [r[k] for r in rounds]
            out[k] = max(vals) if k == "peak_rss_mib" else pct(vals, 0.5)
    out["stages_p50_ms"] = {k: pct([r["stages_p50_ms"][k] for r in rounds], 0.5) for k in rounds[0]["stages_p50_ms"]}
    out["rounds"] = len(rounds)
    changed = sum(1 for r in rounds[1:] for k, v in r["verdicts"].items() if rounds[0]["verdicts"].get(k) != v)
    out["verdict_changes_between_rounds"] = changed
    return out


def compare_size(args, size, frames_dir, work, lib_rust):
    w, h = size
    umpp = args.um_per_px or round(250.0 / (0.8 * h), 4)
    if frames_dir is None:
        frames_dir = work / f"frames-{w}x{h}"
        n_good = args.frames // 2
        per_kind = max(1, (args.frames - n_good) // 5)
        cmd = [args.endface, "-q", "synth", "--out", str(frames_dir), "--seed", str(args.seed),
               "--train-good", "0", "--test-good", str(n_good), "--per-kind", str(per_kind),
               "--fiber", "sm-upc", "--size", f"{w}x{h}", "--um-per-px", str(umpp), "--aspect", "1",
               "--jpeg-prob", "0", "--force"]
        subprocess.run(cmd, check=True)
    images = sorted(str(p) for p in Path(frames_dir).rglob("*.png") if "ground_truth" not in p.parts)
    truth = {}
    lj = Path(frames_dir) / "labels.jsonl"
    if lj.is_file():
        for line in lj.read_text().splitlines():
            o = json.loads(line)
            truth[str(Path(frames_dir) / o["image"])] = o.get("verdict")
    station = work / f"station-{w}x{h}.toml"
    station.write_text(
        "[station]\nname = \"bench\"\nprofile = \"%s\"\n\n[calibration]\num_per_px_x = %r\num_per_px_y = %r\n\n"
        "[runtime]\nonnxruntime_library = \"%s\"\nproviders = [\"cpu\"]\nintra_threads = %d\n\n"
        "[model]\nmanifest = \"%s\"\n" % (args.profile, umpp, umpp, lib_rust, args.threads, Path(args.manifest).resolve())
    )
    env = dict(os.environ, RUST_LOG="warn")

    def run_rust():
        out, wall, rss, rc, err = run_child([args.endface, "inspect", "--json", "--config", str(station),
                                             "--workers", str(args.rust_workers), *images], env)
        lines = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
        if not lines:
            raise SystemExit(f"endface inspect produced no results (exit {rc}): {err.strip()[-2000:]}")
        if [l.get("image") for l in lines] != images:
            raise SystemExit("endface inspect printed results out of the images' order")
        return summarize("rust", lines, wall, rss, parallel=args.rust_workers > 1)

    def run_python():
        out, wall, rss, rc, err = run_child(
            [sys.executable, __file__, "baseline", "--manifest", args.manifest, "--profile", args.profile,
             "--um-per-px", str(umpp), "--threads", str(args.python_threads), *images], env)
        lines = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
        if not any("verdict" in l for l in lines):
            raise SystemExit(f"python baseline produced no results (exit {rc}): {err.strip()[-2000:]}")
        return summarize("python", lines, wall, rss)

    # Alternate the order round by round: on a shared machine, load drifts during a run.
    rounds_rust, rounds_py = [], []
    for r in range(args.rounds):
        if r % 2 == 0:
            rounds_rust.append(run_rust())
            rounds_py.append(run_python())
        else:
            rounds_py.append(run_python())
            rounds_rust.append(run_rust())
    rust, py = merge_rounds(rounds_rust), merge_rounds(rounds_py)
    agree = sum(1 for k, v in rust["verdicts"].items() if py["verdicts"].get(k) == v)
    vs_truth = {
        n: sum(1 for k, v in r["verdicts"].items() if truth.get(k) == v)
        for n, r in (("rust", rust), ("python", py))
    }
    return {"size": f"{w}x{h}", "um_per_px": umpp, "frames": len(images), "rust": rust, "python": py,
            "threads": {"rust_workers": args.rust_workers, "rust_intra_threads": args.threads,
                        "python_intra_threads": args.python_threads},
            "verdict_agreement": agree, "verdicts_match_truth": vs_truth,
            "unable": {n: sum(1 for v in r["verdicts"].values() if v == "unable") for n, r in (("rust", rust), ("python", py))}}


def print_table(res):
    r, p = res["rust"], res["python"]
    print(f"\n== {res['size']} ({res['frames']} frames, {res['um_per_px']} µm/px; "
          f"median of {r.get('rounds', 1)} alternating rounds per tool, peak RSS the largest)")
    rows = [
        ("process wall time (s)", "wall_s", "{:.2f}", False),
        ("frames/s, whole process", "fps_wall", "{:.1f}", True),
        ("frames/s, pipeline only", "fps_pipeline", "{:.1f}", True),
        ("latency p50 (ms)", "p50_ms", "{:.1f}", False),
        ("latency p95 (ms)", "p95_ms", "{:.1f}", False),
        ("  model run p50 (ms)", "infer_p50_ms", "{:.1f}", False),
        ("  everything else p50 (ms)", "overhead_p50_ms", "{:.2f}", False),
        ("overhead / model time", "overhead_over_model", "{:.3f}", False),
        ("peak RSS (MiB)", "peak_rss_mib", "{:.0f}", False),
    ]
    print(f"{'':32} {'rust':>10} {'python':>10} {'rust/python':>12}")
    for label, key, fmt, _ in rows:
        a, b = r[key], p[key]
        ratio = a / b if b else float("nan")
        print(f"{label:32} {fmt.format(a):>10} {fmt.format(b):>10} {ratio:>12.3f}")
    for k in ("locate", "crop", "infer", "anomaly", "grade"):
        a, b = r["stages_p50_ms"][k], p["stages_p50_ms"][k]
        print(f"{'  stage ' + k + ' p50 (ms)':32} {a:>10.2f} {b:>10.2f} {(a / b if b else float('nan')):>12.3f}")
    print(f"verdict agreement: {res['verdict_agreement']}/{res['frames']}; "
          f"vs ground truth: rust {res['verdicts_match_truth']['rust']}, python {res['verdicts_match_truth']['python']}; "
          f"unable: rust {res['unable']['rust']}, python {res['unable']['python']}")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "baseline":
        ap = argparse.ArgumentParser(prog="bench_compare.py baseline")
        ap.add_argument("mode")
        ap.add_argument("--manifest", required=True)
        ap.add_argument("--profile", default="sm-upc")
        ap.add_argument("--um-per-px", type=float, required=True)
        ap.add_argument("--um-per-px-y", type=float)
        ap.add_argument("--threads", type=int, default=1)
        ap.add_argument("images", nargs="+")
        return run_baseline(ap.parse_args())
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=60, help="frames per size (half good, half defective)")
    ap.add_argument("--sizes", default="640x480,1152x864")
    ap.add_argument("--frames-dir", help="use this folder of PNGs instead of rendering (one size)")
    ap.add_argument("--um-per-px", type=float, help="camera scale (default: 250 µm = 80 %% of the frame height)")
    ap.add_argument("--manifest", default=str(ROOT / "models" / "endface-student.manifest.json"))
    ap.add_argument("--profile", default="sm-upc")
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads per session")
    ap.add_argument("--rust-workers", type=int, default=1, help="Rust: frames inspected side by side (one session each)")
    ap.add_argument("--python-threads", type=int, help="Python session's intra-op threads (default: --threads)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3, help="runs of each tool, alternating; medians reported")
    ap.add_argument("--endface", default=str(ROOT / "target" / "release" / "endface"))
    ap.add_argument("--json", help="also write all results to this file")
    ap.add_argument("--keep", help="work folder to keep (frames, station configs)")
    args = ap.parse_args()
    if args.python_threads is None:
        args.python_threads = args.threads
    if not Path(args.manifest).is_file():
        raise SystemExit(f"bench_compare: model manifest {args.manifest} not found (use --manifest)")
    if not Path(args.endface).is_file():
        raise SystemExit(f"bench_compare: {args.endface} not found: cargo build --release first (or --endface)")
    version, wheel_lib, rust_lib = ort_libraries()
    import cv2
    import numpy

    print(f"onnxruntime (python) {version}: {wheel_lib} sha256 {sha256(wheel_lib)[:16]}")
    print(f"onnxruntime (rust, loaded by endface): {rust_lib} sha256 {sha256(rust_lib)[:16]}"
          + ("  [identical library]" if sha256(wheel_lib) == sha256(rust_lib) else "  [DIFFERENT library]"))
    print(f"opencv {cv2.__version__}, numpy {numpy.__version__}, python {sys.version.split()[0]}; "
          f"rust {args.rust_workers} worker(s) x {args.threads} intra-op thread(s), python 1 session x "
          f"{args.python_threads} thread(s); model {args.manifest}; cpu count {os.cpu_count()}; "
          f"load average {os.getloadavg()[0]:.1f}")
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    results = []
    with tempfile.TemporaryDirectory(prefix="endface-bench-") as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for size in sizes:
            res = compare_size(args, size, args.frames_dir, work, rust_lib)
            print_table(res)
            results.append(res)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
