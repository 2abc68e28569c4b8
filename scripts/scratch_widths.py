#!/usr/bin/env python3
"""How well the station measures scratch widths against a labelled set's truth.

For every test/scratch frame with exactly one labelled scratch in zones A/B, runs
`endface inspect --json` at the frame's labelled scale and fiber profile and compares the widest
scratch found in zones A/B with the labelled width. Prints, per setting: frames, frames where a
scratch was found, mean signed error (bias), mean absolute error, the bias on scratches at least
3.5 µm wide, and how many components in zones A/B were graded as spots (defects) on those frames.

    scripts/scratch_widths.py DATASET [--config FILE] [--bin ENDFACE] [--join-gap UM ...]

`--join-gap` (repeatable) runs the set once per value of `[model] scratch_join_gap_um` (0 = pieces
of broken scratches are not joined). Standard library only.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile


def config_with_gap(cfg_path, gap):
    text = open(cfg_path, encoding="utf-8").read()
    base = os.path.dirname(os.path.abspath(cfg_path))
    # relative paths in the config are resolved against its folder: make the manifest absolute
    text = re.sub(r'(?m)^manifest\s*=\s*"([^"]+)"',
                  lambda m: 'manifest = "%s"' % (m.group(1) if os.path.isabs(m.group(1))
                                                 else os.path.join(base, m.group(1))), text)
    text = re.sub(r"(?m)^scratch_join_gap_um\s*=.*\n", "", text)
    if not re.search(r"(?m)^\[model\]\s*$", text):
        text += "\n[model]\n"
    text = re.sub(r"(?m)^\[model\]\s*$", "[model]\nscratch_join_gap_um = %s" % gap, text, count=1)
    f = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    f.write(text)
    f.close()
    return f.name


def run(ds, cfg, binp):
    rows = []
    with open(os.path.join(ds, "labels.jsonl"), encoding="utf-8") as fh:
        labels = [json.loads(line) for line in fh if line.strip()]
    for lab in labels:
        if not lab["image"].startswith("test/scratch"):
            continue
        truth = [d for d in lab.get("defects", []) if d.get("kind") == "scratch" and d.get("zone") in ("A", "B")]
        if len(truth) != 1:
            continue
        cmd = [binp, "inspect", "--json", "-q", "--config", cfg, "--um-per-px", str(lab["um_per_px_x"]),
               "--um-per-px-y", str(lab["um_per_px_y"]), "--profile", lab["fiber"], os.path.join(ds, lab["image"])]
        p = subprocess.run(cmd, capture_output=True, text=True)
        lines = p.stdout.strip().splitlines()
        if not lines:
            sys.exit("endface inspect gave no result for %s: %s" % (lab["image"], p.stderr.strip()[-300:]))
        res = json.loads(lines[-1])
        inner = [d for d in res.get("defects", []) if d.get("zone") in ("A", "B")]
        found = [d["size_um"] for d in inner if d["kind"] == "scratch"]
        rows.append((truth[0]["size_um"], max(found) if found else None, sum(d["kind"] == "defect" for d in inner)))
    return rows


def summary(rows):
    found = [(t, m) for t, m, _ in rows if m is not None]
    err = [m - t for t, m in found]
    wide = [m - t for t, m in found if t >= 3.5]
    mean = lambda xs: sum(xs) / len(xs) if xs else float("nan")  # noqa: E731
    return ("frames %d  found %d  bias %+.2f µm  MAE %.2f µm  bias(≥3.5 µm) %+.2f µm  spots in A/B %d"
            % (len(rows), len(found), mean(err), mean([abs(e) for e in err]), mean(wide), sum(s for _, _, s in rows)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset")
    ap.add_argument("--config", default="firmware-config/demo.toml")
    ap.add_argument("--bin", default=os.environ.get("ENDFACE_BIN", "target/release/endface"))
    ap.add_argument("--join-gap", action="append", type=float, help="scratch_join_gap_um values to compare")
    a = ap.parse_args()
    if not os.path.isfile(os.path.join(a.dataset, "labels.jsonl")):
        ap.error("%s has no labels.jsonl (a labelled set: endface synth, scripts/alt_render.py)" % a.dataset)
    for gap in a.join_gap or [None]:
        cfg = a.config if gap is None else config_with_gap(a.config, gap)
        try:
            label = "as configured" if gap is None else "join gap %g µm" % gap
            print("%-22s %s" % (label, summary(run(a.dataset, cfg, a.bin))))
        finally:
            if gap is not None:
                os.unlink(cfg)


if __name__ == "__main__":
    main()
