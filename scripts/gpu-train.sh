#!/usr/bin/env bash
# Train on a GPU machine from a bundle made by scripts/gpu-bundle.sh, with the python3 there
# (PyTorch, onnx, onnxruntime, scipy, scikit-learn, Pillow). Run in the repository root:
#   scripts/gpu-train.sh BUNDLE RESULTS [scripts/train.sh options...]
# e.g. scripts/gpu-train.sh .gpu /tmp/res --student-minutes 7.5 --batch 48 --finish-batch 24 --threads 2
# The bundle's teacher is reused when it has one (--teacher-ckpt). RESULTS receives at most
# seven files, none over 16 MiB: the log, the environment, the model files (.onnx, manifest,
# report; from the staging folder when the install check refused the model) and
# student-ema.pt (the averaged weights only: `scripts/train.sh --export-only student-ema.pt`
# re-exports and scores it at home).
set -uo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
if [ $# -lt 2 ]; then echo "usage: scripts/gpu-train.sh BUNDLE RESULTS [train.sh options...]" >&2; exit 2; fi
bundle="$(realpath "$1")"; res="$(realpath -m "$2")"; shift 2
[ -d "$bundle/train" ] || { echo "gpu-train.sh: $bundle is not a bundle (no train/; make one with scripts/gpu-bundle.sh)" >&2; exit 2; }
export PYTHONUNBUFFERED=1
py=python3
[ -x "${ENDFACE_VENV:-$repo/.venv}/bin/python" ] && py="${ENDFACE_VENV:-$repo/.venv}/bin/python"   # as train.sh chooses
work="$(mktemp -d)"; model="$work/model"
trap 'rm -rf "$work"' EXIT
mkdir -p "$res" "$model"
if [ -f "$bundle/geometry-cache.json" ]; then
    sed "s#@BUNDLE@#$bundle#g" "$bundle/geometry-cache.json" > "$work/geometry-cache.json"
fi
{ nvidia-smi -L 2>&1 || true; echo "cores $(nproc)"
  "$py" -c 'import torch, numpy, onnxruntime; print("torch", torch.__version__, "numpy", numpy.__version__, "onnxruntime", onnxruntime.__version__, "cuda", torch.cuda.is_available())'; } 2>&1 | tee "$res/env.txt"
args=(--data "$bundle/train" --out "$model" --work "$work")
[ -d "$bundle/unlabelled" ] && args+=(--unlabelled "$bundle/unlabelled")
[ -f "$bundle/teacher.pt" ] && args+=(--teacher-ckpt "$bundle/teacher.pt")
scripts/train.sh "${args[@]}" "$@"
rc=$?
echo "train.sh exit $rc" | tee -a "$res/env.txt"
cp "$work/train.log" "$res/" 2>/dev/null
if [ -f "$work/student.pt" ]; then
    "$py" - "$work/student.pt" "$res/student-ema.pt" <<'PY'
import sys
import torch
ck = torch.load(sys.argv[1], map_location="cpu", weights_only=True)
keep = ("ema", "widths", "radius_channel", "crack_head", "info", "step")
torch.save({k: ck[k] for k in keep if k in ck}, sys.argv[2])
PY
fi
if ls "$model"/*.onnx >/dev/null 2>&1; then cp "$model"/* "$res/"; else cp "$work"/export/* "$res/" 2>/dev/null; fi
if [ -f "$work/teacher.pt" ] && [ ! -f "$bundle/teacher.pt" ]; then cp "$work/teacher.pt" "$res/"; fi
exit "$rc"
