#!/usr/bin/env bash
# Fetch the ONNX Runtime shared library that `endface` loads at run time (ort `load-dynamic`).
#
# The ort crate cannot download binaries here, so this script takes libonnxruntime.so out of
# PyPI's `onnxruntime` wheel (CPU build; pinned version, sha256-checked) and puts it at
#   .ort/<arch>/libonnxruntime.so        (ignored by git)
# where `endface` looks for it by default. Other ways to point the binary at a library:
# config `[runtime] onnxruntime_library = "/path/libonnxruntime.so"` or env `ENDFACE_ORT_LIB`.
# On a Jetson, use the CUDA/TensorRT build of ONNX Runtime that matches the board's JetPack
# instead (PyPI has no aarch64 GPU build); see models/MANIFEST.md "Runtime".
#
# Usage: scripts/setup-ort.sh [--arch x86_64|aarch64|all] [--force]
#   default arch: this machine's (uname -m).
# Needs: python3 with pip (any venv; only `pip download` is used), sha256sum.
# The version is the one the Python tooling uses (onnxruntime 1.20.1), so Rust and Python
# outputs compare 1:1 (scripts/check_parity.py). ort 2.0.0-rc.15 needs ONNX Runtime >= 1.17.
set -euo pipefail

ORT_VERSION="1.20.1"
# sha256 of the wheels on PyPI (cp311, manylinux). Update together with ORT_VERSION.
SHA256_x86_64="5eec64c0269dcdb8d9a9a53dc4d64f87b9e0c19801d9321246a53b7eb5a7d1bc"
SHA256_aarch64="f6243e34d74423bdd1edf0ae9596dd61023b260f546ee17d701723915f06a9f7"
PLATFORM_x86_64="manylinux_2_27_x86_64"
PLATFORM_aarch64="manylinux_2_28_aarch64"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"

arch="$(uname -m)"
force=0
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch="${2:?--arch needs x86_64, aarch64 or all}"; shift 2 ;;
    --arch=*) arch="${1#--arch=}"; shift ;;
    --force) force=1; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "setup-ort.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
case "$arch" in
  all) arches="x86_64 aarch64" ;;
  x86_64|amd64) arches="x86_64" ;;
  aarch64|arm64) arches="aarch64" ;;
  *) echo "setup-ort.sh: unsupported arch '$arch' (x86_64, aarch64 or all)" >&2; exit 2 ;;
esac

# A python with pip: $PYTHON, the repo's venv, the shared dev venv, then python3.
pick_python() {
  for p in "${PYTHON:-}" "$repo/.venv/bin/python" /work/main/.venv/bin/python python3; do
    [ -n "$p" ] || continue
    if command -v "$p" >/dev/null 2>&1 && "$p" -m pip --version >/dev/null 2>&1; then
      echo "$p"; return 0
    fi
  done
  echo "setup-ort.sh: no python with pip found (set PYTHON=/path/to/python)" >&2
  return 1
}
py="$(pick_python)"

fetch() {
  local a="$1" platform sha dest tmp wheel got
  platform="PLATFORM_$a"; platform="${!platform}"
  sha="SHA256_$a"; sha="${!sha}"
  dest="$repo/.ort/$a"
  if [ "$force" = 0 ] && [ -f "$dest/libonnxruntime.so" ] && [ -f "$dest/VERSION" ] \
     && [ "$(cat "$dest/VERSION")" = "$ORT_VERSION" ]; then
    echo "setup-ort.sh: $dest/libonnxruntime.so (onnxruntime $ORT_VERSION) already there"
    return 0
  fi
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' RETURN
  echo "setup-ort.sh: downloading onnxruntime==$ORT_VERSION wheel for $a ($platform) from PyPI"
  "$py" -m pip download --quiet --no-deps --only-binary=:all: \
    --platform "$platform" --python-version 3.11 --implementation cp \
    "onnxruntime==$ORT_VERSION" -d "$tmp"
  wheel="$(ls "$tmp"/onnxruntime-"$ORT_VERSION"-*.whl)"
  got="$(sha256sum "$wheel" | cut -d' ' -f1)"
  if [ "$got" != "$sha" ]; then
    echo "setup-ort.sh: sha256 mismatch for $(basename "$wheel"): got $got, pinned $sha" >&2
    return 1
  fi
  "$py" - "$wheel" "$tmp/x" <<'PY'
import sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.startswith("onnxruntime/capi/libonnxruntime")]
    if not any(".so." in n for n in names):
        sys.exit(f"no onnxruntime/capi/libonnxruntime.so.* in {wheel}")
    for n in names:
        z.extract(n, out)
PY
  mkdir -p "$dest"
  cp "$tmp"/x/onnxruntime/capi/libonnxruntime.so.* "$dest/libonnxruntime.so.$ORT_VERSION"
  ln -sf "libonnxruntime.so.$ORT_VERSION" "$dest/libonnxruntime.so"
  # The CPU wheel ships a providers_shared stub; copy it so GPU EP registration fails cleanly.
  if [ -f "$tmp/x/onnxruntime/capi/libonnxruntime_providers_shared.so" ]; then
    cp "$tmp/x/onnxruntime/capi/libonnxruntime_providers_shared.so" "$dest/"
  fi
  echo "$ORT_VERSION" > "$dest/VERSION"
  echo "setup-ort.sh: installed $dest/libonnxruntime.so (onnxruntime $ORT_VERSION, $a)"
}

for a in $arches; do fetch "$a"; done
