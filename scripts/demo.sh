#!/usr/bin/env bash
# The main job: the station daemon on the embedded demo station — synthetic camera, the shipped
# student model (models/endface-student.onnx), simulated GPIO lines — for a bounded number of
# inspections, printing each verdict and a summary.
#
#   scripts/demo.sh [FRAMES]      # default 40
#
# Installs what it needs on a fresh Debian 12 machine (scripts/setup-system.sh, the ONNX Runtime
# library from PyPI via scripts/setup-ort.sh) and builds the release binary.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
frames="${1:-40}"
scripts/setup-system.sh
scripts/setup-ort.sh
cargo build --release --locked
mkdir -p target/endface-demo
exec target/release/endface run --config firmware-config/demo.toml --frames "$frames"
