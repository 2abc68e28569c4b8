#!/usr/bin/env bash
# Score and time model variants beside the float model, in one run (issue 7: INT8/FP16 variants
# with their accuracy deltas beside the speedup).
#
# Usage: scripts/compare-variants.sh DATASET MANIFEST... [-- --rounds 2]
#   e.g. scripts/compare-variants.sh data/synth-test models/endface-student.manifest.json \
#            out/int8/endface-student-int8-dynamic.manifest.json out/int8/endface-student-int8-static.manifest.json
#
# For each manifest: `endface eval DATASET --json` with firmware-config/demo.toml's station
# settings (1 ONNX Runtime thread, CPU) and that model; the rounds interleave the variants so
# machine load hits them alike. Prints one row per variant: image/pixel AUROC, AUPRO, IoU,
# verdict accuracy, false pass / false fail, the model run's p50 (median over rounds) and its
# speedup over the first manifest, and the deltas against the first manifest.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
endface="${ENDFACE_BIN:-$repo/target/release/endface}"
rounds=2
[ $# -ge 2 ] || { sed -n '2,12p' "$0"; exit 2; }
dataset="$(realpath "$1")"; shift
manifests=()
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    *) [ -f "$1" ] || { echo "compare-variants: manifest $1 not found" >&2; exit 2; }
       manifests+=("$(realpath "$1")"); shift ;;
  esac
done
[ -x "$endface" ] || { echo "compare-variants: $endface missing: cargo build --release first" >&2; exit 2; }
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
ort="${ENDFACE_ORT_LIB:-$repo/.ort/$(uname -m)/libonnxruntime.so}"
for r in $(seq 1 "$rounds"); do
  for i in "${!manifests[@]}"; do
    cat > "$work/station-$i.toml" <<EOF
[station]
name = "variants"
profile = "sm-upc"
[calibration]
um_per_px_x = 0.5
um_per_px_y = 0.5
[runtime]
onnxruntime_library = "$ort"
providers = ["cpu"]
intra_threads = 1
[model]
manifest = "${manifests[$i]}"
EOF
    if ! "$endface" eval "$dataset" --config "$work/station-$i.toml" --json -q > "$work/eval-$i-$r.json" 2> "$work/err-$i-$r.txt"; then
      echo "compare-variants: ${manifests[$i]}: $(tail -1 "$work/err-$i-$r.txt")" >&2
      rm -f "$work/eval-$i-$r.json"
    fi
  done
done
python3 - "$work" "$rounds" "${manifests[@]}" <<'EOF'
import json, os, statistics, sys
work, rounds, manifests = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
rows = []
for i, m in enumerate(manifests):
    evs = [json.load(open(p)) for p in (f"{work}/eval-{i}-{r}.json" for r in range(1, rounds + 1)) if os.path.exists(p)]
    if not evs:
        print(f"| {json.load(open(m))['name']} | did not load or run (see the error above) |")
        continue
    e = evs[0]
    infer = statistics.median(x["latency_ms"]["infer"]["p50"] for x in evs)
    total = statistics.median(x["latency_ms"]["total"]["p50"] for x in evs)
    rows.append(dict(name=json.load(open(m))["name"], image_auroc=e["image_auroc"], pixel_auroc=e["pixel_auroc"],
                     aupro=e["aupro"], iou=e["iou"], verdict_accuracy=e["verdict_accuracy"],
                     fp=e["confusion"]["false_pass"], ff=e["confusion"]["false_fail"], infer=infer, total=total))
b = rows[0]
print(f"rounds {rounds}; model run p50 = median over rounds")
print("| model | image AUROC | pixel AUROC | AUPRO | IoU | verdict acc | false pass / fail | model run p50 ms | speedup | Δ image AUROC | Δ pixel AUROC | Δ verdict acc |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['name']} | {r['image_auroc']:.3f} | {r['pixel_auroc']:.3f} | {r['aupro']:.3f} | {r['iou']:.3f} | "
          f"{r['verdict_accuracy']:.3f} | {r['fp']} / {r['ff']} | {r['infer']:.1f} | {b['infer'] / r['infer']:.2f}x | "
          f"{r['image_auroc'] - b['image_auroc']:+.3f} | {r['pixel_auroc'] - b['pixel_auroc']:+.3f} | "
          f"{r['verdict_accuracy'] - b['verdict_accuracy']:+.3f} |")
EOF
