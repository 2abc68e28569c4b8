#!/usr/bin/env bash
# The whole endface test suite, from a fresh Debian 12 machine (this is what .ci/run runs).
#
#   scripts/test.sh            # everything
#   ENDFACE_TEST_SKIP="vm aarch64" scripts/test.sh   # skip named steps while iterating locally
#
# Steps: system packages + Rust target, ONNX Runtime libraries (x86_64 + aarch64, from PyPI),
# the pinned Python venv, rustfmt, clippy (-D warnings), cargo test (unit, integration, CLI,
# property tests), Python cross-checks (POT, scikit-learn, onnxruntime parity), the training
# pipeline's --quick smoke run, Debian package install/upgrade/remove, the aarch64 cross build
# run under qemu-user against the x86_64 results, and the real-interface VM test (vivid V4L2 +
# gpio-sim). Each step prints its wall time.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TERM_COLOR=never
SKIP=" ${ENDFACE_TEST_SKIP:-} "

step() {
  local name="$1"; shift
  if [[ "$SKIP" == *" $name "* ]]; then echo "== [$name] skipped (ENDFACE_TEST_SKIP)"; return 0; fi
  echo "== [$name] $*"
  local t0=$SECONDS
  "$@"
  echo "== [$name] ok in $((SECONDS - t0)) s"
}

step system   scripts/setup-system.sh
step ort      scripts/setup-ort.sh --arch all
step python   scripts/setup-train.sh
PY="$PWD/.venv/bin/python"
step fmt      cargo fmt --check
step clippy   cargo clippy --all-targets -- -D warnings
step cargo    cargo test --no-fail-fast
step pycheck  "$PY" scripts/check_swd_pot.py
step pytest   env ENDFACE_BIN="$PWD/target/debug/endface" "$PY" -m pytest -q tests/python
step pymetric bash -c "\"$PY\" scripts/metrics_reference.py | cmp - tests/fixtures/metrics_reference.json"
step deb      scripts/test-deb.sh
step aarch64  env X86_BIN="$PWD/target/debug/endface" scripts/check-aarch64.sh --frames 4
step vm       env ENDFACE_BIN="$PWD/target/debug/endface" scripts/vm-test.sh
echo "== all test steps passed"
