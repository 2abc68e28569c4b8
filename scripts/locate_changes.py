#!/usr/bin/env python3
"""Frames whose localization differs between two endface binaries, with errors against truth.

For each dataset (the layout of ../shared/docs/dataset-format.md, labels.jsonl with `center`,
`cladding_radius_px` and the frame's µm/px), runs `endface locate --json` with each binary at
the labelled scale and aspect, and prints every frame one binary refuses and the other locates,
or that both locate at different radii: the new binary's center error (px) and radius error
(px and µm) against the labels, and what the old one said. Nothing is printed for frames whose
result is identical.

    python3 scripts/locate_changes.py OLD_BINARY NEW_BINARY data/synth-val data/alt-14 ...

Only the standard library; the binaries do the work. `endface inspect` locates on the frame
after its own corrections (stuck pixels, banding), so a frame refused only after those shows
in `endface eval`'s verdicts, not here.
"""
import collections
import json
import os
import subprocess
import sys


def locate(binary, paths, x, y):
    cmd = [binary, "locate", "--json", "-q", "--um-per-px", str(x), "--aspect", str(x / y)] + paths
    p = subprocess.run(cmd, capture_output=True, text=True)
    return [json.loads(s) for s in p.stdout.splitlines() if s.startswith("{")]


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    old, new = sys.argv[1], sys.argv[2]
    for ds in sys.argv[3:]:
        labels = [json.loads(l) for l in open(os.path.join(ds, "labels.jsonl"))]
        groups = collections.defaultdict(list)
        for l in labels:
            x = l.get("um_per_px_x", l.get("um_per_px"))
            groups[(x, l.get("um_per_px_y", x))].append(l)
        name = os.path.basename(os.path.normpath(ds))
        for (x, y), ls in groups.items():
            paths = [os.path.join(ds, l["image"]) for l in ls]
            for l, o, n in zip(ls, locate(old, paths, x, y), locate(new, paths, x, y)):
                same = ("error" in o) == ("error" in n) and (
                    "error" in o or o["cladding_radius_px"] == n["cladding_radius_px"]
                )
                if same:
                    continue
                if "error" in n:
                    print(f"{name:<16} {l['image']:<32} newly refused: {n['error']}")
                    continue
                ce = ((n["center"][0] - l["center"][0]) ** 2 + (n["center"][1] - l["center"][1]) ** 2) ** 0.5
                dr = n["cladding_radius_px"] - l["cladding_radius_px"]
                was = o.get("error") or f"located at radius {o['cladding_radius_px']:.2f} px"
                print(f"{name:<16} {l['image']:<32} center err {ce:.2f} px, radius err {dr:+.2f} px "
                      f"({dr * x:+.2f} um), confidence {n['confidence']:.2f} | was: {was}")


if __name__ == "__main__":
    main()
