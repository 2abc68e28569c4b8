#!/usr/bin/env bash
# aarch64 parity check: the cross-built `endface inspect` run under qemu-user with the aarch64
# ONNX Runtime (CPU build from PyPI) must give the same verdicts, and image scores within a
# tolerance, as the x86_64 build on the same synthetic frames. Emulated timings mean nothing;
# this checks correctness of the aarch64 build only.
#
#   scripts/check-aarch64.sh [--frames N] [--tolerance T] [--keep]
#
# Env: AARCH64_BIN / X86_BIN (binaries; default: the dev profile of each, the aarch64 one as
#      built by the aarch64 `cargo test` below),
#      SKIP_AARCH64_TESTS=1 (skip `cargo test --target aarch64-unknown-linux-gnu` under qemu),
#      ENDFACE_CHECK_CONFIG (station config; default: a CPU config for models/endface-student,
#      else the tests/fixtures/recon256 test model), QEMU (default qemu-aarch64).
# Needs: qemu-user, the cross toolchain (scripts/build-aarch64.sh), python3 or .venv (comparison;
# scripts/setup-ort.sh needs pip), and root or unprivileged user namespaces when qemu-user is older
# than 8.0 (see scripts/qemu-aarch64-run.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
frames=8 tol=1e-4 keep=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --frames) frames="$2"; shift 2 ;;
        --tolerance) tol="$2"; shift 2 ;;
        --keep) keep=1; shift ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "check-aarch64: unknown argument $1" >&2; exit 2 ;;
    esac
done
say() { echo "check-aarch64: $*" >&2; }
die() { say "FAIL: $*"; exit 1; }
QEMU="${QEMU:-qemu-aarch64}"
command -v "$QEMU" >/dev/null || die "$QEMU missing: apt-get install qemu-user"

work="$repo/target/check-aarch64"
rm -rf "$work"; mkdir -p "$work"
[[ "$keep" == 1 ]] || trap 'rm -rf "$work"' EXIT

# 1. Binaries.
X86_BIN="${X86_BIN:-}"
if [[ -z "$X86_BIN" ]]; then
    nice cargo build --locked --bin endface >&2
    X86_BIN=target/debug/endface
fi
AARCH64_BIN="${AARCH64_BIN:-}"
if [[ -z "$AARCH64_BIN" && "${SKIP_AARCH64_TESTS:-0}" == 1 ]]; then
    AARCH64_BIN="$(scripts/build-aarch64.sh --debug)"
fi
# Otherwise step 4's `cargo test` builds the binary (cargo builds a package's binaries for its
# integration tests): one aarch64 build instead of two with different dependency features.

# 2. ONNX Runtime CPU builds for both architectures (.ort/<arch>/libonnxruntime.so, PyPI wheels).
scripts/setup-ort.sh --arch all >&2
ORT_X86="$repo/.ort/x86_64/libonnxruntime.so"
ORT_ARM="$repo/.ort/aarch64/libonnxruntime.so"
[[ -f "$ORT_X86" && -f "$ORT_ARM" ]] || die "ONNX Runtime libraries missing under .ort/"

# 3. Frames and a CPU station config: the shipped model, else the recon256 test model.
"$X86_BIN" synth --out "$work/data" --seed 20250 --train-good 0 --test-good 3 --per-kind 1 >&2
mapfile -t images < <(find "$work/data" -path '*/test/*' -name '*.png' | sort | head -n "$frames")
[[ ${#images[@]} -gt 0 ]] || die "no frames rendered"
config="${ENDFACE_CHECK_CONFIG:-}"
if [[ -z "$config" ]]; then
    manifest="$repo/models/endface-student.manifest.json"
    [[ -f "$manifest" ]] || manifest="$repo/tests/fixtures/recon256.manifest.json"
    config="$work/station.toml"
    cat > "$config" <<TOML
[station]
name = "check-aarch64"
profile = "sm-upc"
[calibration]
# Same input on both architectures: one nominal scale is enough for a parity check.
um_per_px_x = 0.55
um_per_px_y = 0.55
[runtime]
providers = ["cpu"]
intra_threads = 1
[model]
manifest = "$manifest"
TOML
    say "model: $manifest"
fi
[[ -f "$config" ]] || die "station config $config missing"

run_aarch64() { scripts/qemu-aarch64-run.sh "$@"; }

# 4. The model-level and pipeline tests, and the bundle tests, built for aarch64 and run under
#    qemu (cargo's runner for that target is scripts/qemu-aarch64-run.sh): the same assertions
#    (Rust-vs-Python parity of the model outputs, verdicts of the pipeline, A/B install,
#    refusals with statvfs/flock/fsync on aarch64) must hold on the board's architecture.
if [[ "${SKIP_AARCH64_TESTS:-0}" != 1 ]]; then
    say "cargo test for aarch64 under qemu"
    ENDFACE_LOG="${ENDFACE_LOG:-warn}" nice cargo test --locked --target aarch64-unknown-linux-gnu \
        --test model_parity --test inspect_pipeline --test bundle_lifecycle --test bundle_refusals >&2 \
        || die "aarch64 tests failed under qemu"
    if [[ -z "$AARCH64_BIN" ]]; then
        AARCH64_BIN=target/aarch64-unknown-linux-gnu/debug/endface
        [[ "$(od -An -tx1 -j18 -N2 "$AARCH64_BIN" 2>/dev/null | tr -d ' \n')" == "b700" ]] \
            || die "$AARCH64_BIN is missing or not an AArch64 ELF after the aarch64 cargo test"
    fi
fi

# 5. inspect on the same frames, both architectures.
say "x86_64: $X86_BIN on ${#images[@]} frames"
ENDFACE_LOG="${ENDFACE_LOG:-warn}" ENDFACE_ORT_LIB="$ORT_X86" "$X86_BIN" inspect --config "$config" --json "${images[@]}" > "$work/x86_64.jsonl" \
    || die "x86_64 inspect failed"
say "aarch64: $AARCH64_BIN under $("$QEMU" --version | head -1)"
ENDFACE_LOG="${ENDFACE_LOG:-warn}" ENDFACE_ORT_LIB="$ORT_ARM" run_aarch64 "$AARCH64_BIN" inspect --config "$config" --json "${images[@]}" \
    > "$work/aarch64.jsonl" || die "aarch64 inspect failed under qemu"

# 6. Compare.
py="${PYTHON:-}"
[[ -n "$py" ]] || { [[ -x .venv/bin/python ]] && py=.venv/bin/python; } || true
[[ -n "$py" ]] || py=python3
"$py" - "$work/x86_64.jsonl" "$work/aarch64.jsonl" "$tol" <<'PY'
import json, sys
a_path, b_path, tol = sys.argv[1], sys.argv[2], float(sys.argv[3])
load = lambda p: [json.loads(l) for l in open(p) if l.strip()]
a, b = load(a_path), load(b_path)
if len(a) != len(b) or not a:
    sys.exit(f"check-aarch64: FAIL: {len(a)} x86_64 results vs {len(b)} aarch64 results")
bad = 0
worst = 0.0
for x, y in zip(a, b):
    name = x.get("image", "?")
    sx, sy = x.get("image_score"), y.get("image_score")
    d = abs(sx - sy) if sx is not None and sy is not None else (0.0 if sx == sy else float("inf"))
    worst = max(worst, d)
    ok = x.get("verdict") == y.get("verdict") and d <= tol and len(x.get("defects", [])) == len(y.get("defects", []))
    bad += not ok
    print(f"{'ok  ' if ok else 'DIFF'} {name}: verdict {x.get('verdict')} / {y.get('verdict')}, "
          f"score {sx} / {sy} (|d|={d:.2e}), defects {len(x.get('defects', []))} / {len(y.get('defects', []))}")
print(f"check-aarch64: {len(a) - bad}/{len(a)} frames agree; max |score diff| {worst:.2e} (tolerance {tol})")
scored = sum(1 for x in a if x.get("image_score") is not None)
if scored == 0:
    reasons = {r for x in a for r in x.get("reasons", [])}
    if bad == 0 and reasons and all("not in this build" in r for r in reasons):
        # Only while fiber localization has not landed: the aarch64 model and pipeline tests
        # (step 4) carry the comparison until then; this turns strict by itself afterwards.
        print("check-aarch64: SKIPPED the inspect comparison: fiber localization is not in this build")
        sys.exit(0)
    sys.exit("check-aarch64: FAIL: no frame reached the model (all ungraded), so the comparison says nothing")
sys.exit(1 if bad else 0)
PY
