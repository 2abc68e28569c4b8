#!/usr/bin/env bash
# Train the endface student model on a dataset (docs/dataset-format.md layout) and write
# models/endface-student.onnx + .manifest.json (+ .report.json with the figures).
#   scripts/train.sh --data DIR [--unlabelled DIR] [--test DIR] [--out models/] [--quick]
#   scripts/train.sh --help
# Python: $ENDFACE_VENV, else .venv in the repo root (create it with scripts/setup-train.sh),
# else python3 from PATH if it has the pinned packages.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${ENDFACE_VENV:-$repo/.venv}"
if [ -x "$venv/bin/python" ]; then
    py="$venv/bin/python"
else
    py="$(command -v python3 || true)"
fi
if [ -z "$py" ] || ! "$py" -c 'import torch, onnx, onnxruntime, scipy, sklearn, PIL' 2>/dev/null; then
    echo "train: no Python with the training packages; run scripts/setup-train.sh first" >&2
    exit 2
fi
export PYTHONPATH="$repo/scripts/train${PYTHONPATH:+:$PYTHONPATH}"
exec nice -n "${ENDFACE_NICE:-10}" "$py" -m endface_train "$@"
