#!/usr/bin/env bash
# Rust pipeline vs the Python/OpenCV baseline on the same frames and the same ONNX Runtime
# (scripts/bench_compare.py does the work; see its --help).
#
# Usage: scripts/bench-compare.sh [bench_compare.py options]
#   e.g. scripts/bench-compare.sh --frames 60 --threads 1 --json target/bench-compare.json
# Needs: a release build (built here when missing), .ort/x86_64/libonnxruntime.so
# (scripts/setup-ort.sh), a Python with onnxruntime 1.20.1, numpy, opencv-python-headless
# ($PYTHON, else .venv/bin/python, else /work/main/.venv/bin/python).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
py="${PYTHON:-}"
if [ -z "$py" ]; then
  for p in "$repo/.venv/bin/python" /work/main/.venv/bin/python python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import onnxruntime, cv2, numpy' 2>/dev/null; then py="$p"; break; fi
  done
fi
[ -n "$py" ] || { echo "bench-compare.sh: no python with onnxruntime, cv2 and numpy (set PYTHON)" >&2; exit 2; }
if [ ! -x "$repo/target/release/endface" ]; then
  (cd "$repo" && nice cargo build --release --bin endface)
fi
if [ ! -f "$repo/.ort/x86_64/libonnxruntime.so" ] && [ -z "${ENDFACE_ORT_LIB:-}" ]; then
  echo "bench-compare.sh: .ort/x86_64/libonnxruntime.so missing; running scripts/setup-ort.sh" >&2
  "$here/setup-ort.sh"
fi
exec "$py" "$here/bench_compare.py" "$@"
