#!/usr/bin/env bash
# aarch64 parity check: the cross-built `endface inspect` run under qemu-user with the aarch64
# ONNX Runtime (CPU build from PyPI) must give the same verdicts, and image scores within a
# tolerance, as the x86_64 build on the same synthetic frames. Emulated timings mean nothing;
# this checks correctness of the aarch64 build only.
#
#   scripts/check-aarch64.sh [--frames N] [--tolerance T] [--keep]
#
# Env: AARCH64_BIN / X86_BIN (binaries; default: build the dev profile of each),
#      ENDFACE_CHECK_CONFIG (station config; default firmware-config/demo.toml if present),
#      QEMU (default qemu-aarch64).
# Needs: qemu-user, the cross toolchain (scripts/build-aarch64.sh), python3 (comparison, pip
# for the wheel download), and root or unprivileged user namespaces when qemu-user is older
# than 8.0 (see run_aarch64 below).
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
frames=6 tol=1e-4 keep=0
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
if [[ -z "$AARCH64_BIN" ]]; then
    AARCH64_BIN="$(scripts/build-aarch64.sh --debug)"
fi

# 2. ONNX Runtime CPU builds for both architectures (.ort/<arch>/libonnxruntime.so).
if [[ -x scripts/setup-ort.sh ]]; then
    scripts/setup-ort.sh --arch all >&2
else
    for a in x86_64:manylinux_2_27_x86_64 aarch64:manylinux_2_28_aarch64; do
        arch="${a%%:*}" plat="${a#*:}"
        [[ -f ".ort/$arch/libonnxruntime.so" ]] && continue
        mkdir -p .ort/wheels ".ort/$arch"
        python3 -m pip download --quiet --no-deps --only-binary=:all: --platform "$plat" \
            --python-version 3.11 onnxruntime==1.20.1 -d .ort/wheels >&2
        whl="$(ls .ort/wheels/onnxruntime-1.20.1-*"$arch"*.whl | head -1)"
        unzip -p "$whl" 'onnxruntime/capi/libonnxruntime.so.*' > ".ort/$arch/libonnxruntime.so"
    done
fi
ORT_X86="$repo/.ort/x86_64/libonnxruntime.so"
ORT_ARM="$repo/.ort/aarch64/libonnxruntime.so"
[[ -f "$ORT_X86" && -f "$ORT_ARM" ]] || die "ONNX Runtime libraries missing under .ort/"

# 3. Frames and station config.
"$X86_BIN" synth --out "$work/data" --seed 20250 --train-good 0 --test-good 2 --per-kind 1 >&2
mapfile -t images < <(find "$work/data" -path '*/test/*' -name '*.png' | sort | head -n "$frames")
[[ ${#images[@]} -gt 0 ]] || die "no frames rendered"
config="${ENDFACE_CHECK_CONFIG:-firmware-config/demo.toml}"
[[ -f "$config" ]] || die "station config $config missing (set ENDFACE_CHECK_CONFIG)"

# qemu-user < 8 passes the host's x86 /proc/cpuinfo through, and ONNX Runtime's CPU detection
# crashes on it: give the emulated process an ARM /proc/cpuinfo in a private mount namespace.
qemu_major="$("$QEMU" --version | sed -n 's/.*version \([0-9]*\)\..*/\1/p' | head -1)"
cat > "$work/cpuinfo" <<'CPU'
processor	: 0
BogoMIPS	: 62.50
Features	: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: 0x0
CPU part	: 0xd42
CPU revision	: 1

CPU
run_aarch64() {
    if [[ "${qemu_major:-0}" -ge 8 ]]; then
        "$QEMU" -L /usr/aarch64-linux-gnu "$@"
    else
        local userns=()
        [[ "$(id -u)" == 0 ]] || userns=(--map-root-user)
        unshare "${userns[@]}" --mount sh -c 'mount --bind "$0" /proc/cpuinfo && shift && exec "$@"' \
            "$work/cpuinfo" _ "$QEMU" -L /usr/aarch64-linux-gnu "$@"
    fi
}

# 4. Run both.
say "x86_64: $X86_BIN on ${#images[@]} frames"
ENDFACE_ORT_LIB="$ORT_X86" "$X86_BIN" inspect --config "$config" --json "${images[@]}" > "$work/x86_64.jsonl" \
    || die "x86_64 inspect failed"
say "aarch64: $AARCH64_BIN under $("$QEMU" --version | head -1)"
ENDFACE_ORT_LIB="$ORT_ARM" run_aarch64 "$AARCH64_BIN" inspect --config "$config" --json "${images[@]}" \
    > "$work/aarch64.jsonl" || die "aarch64 inspect failed under qemu"

# 5. Compare.
python3 - "$work/x86_64.jsonl" "$work/aarch64.jsonl" "$tol" <<'PY'
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
sys.exit(1 if bad else 0)
PY
