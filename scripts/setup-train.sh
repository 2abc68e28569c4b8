#!/usr/bin/env bash
# Create the training virtual environment .venv (git-ignored) in the repository root and
# install the pinned dependencies of scripts/requirements-train.txt into it.
#   scripts/setup-train.sh            # python3 from PATH (3.10+; 3.11 tested)
#   PYTHON=python3.11 scripts/setup-train.sh
# On a machine without an NVIDIA GPU the default torch wheel still works (CPU); it is large.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${PYTHON:-python3}"
venv="${ENDFACE_VENV:-$repo/.venv}"
if ! "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)'; then
    echo "setup-train: $py is older than Python 3.10; set PYTHON=/path/to/python3.10+" >&2
    exit 2
fi
if [ ! -x "$venv/bin/python" ]; then
    "$py" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --upgrade pip >/dev/null
"$venv/bin/python" -m pip install -r "$repo/scripts/requirements-train.txt"
"$venv/bin/python" -c 'import torch, onnx, onnxruntime, scipy, sklearn, PIL, numpy; print("training venv ready:", torch.__version__, "cuda" if torch.cuda.is_available() else "cpu")'
