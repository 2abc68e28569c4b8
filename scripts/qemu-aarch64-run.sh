#!/usr/bin/env bash
# Run an aarch64 Linux program on x86_64 under qemu-user (cargo runner for
# aarch64-unknown-linux-gnu, see .cargo/config.toml; also used by scripts/check-aarch64.sh).
#
#   scripts/qemu-aarch64-run.sh PROGRAM [ARGS...]
#
# qemu-user older than 8 passes the host's x86 /proc/cpuinfo through, and ONNX Runtime's CPU
# detection (pytorch/cpuinfo) crashes or asserts on it. Then the program runs in a private mount
# namespace (`unshare -m`; as non-root with --map-root-user) with an ARM /proc/cpuinfo
# (Cortex-A78AE, as on Jetson Orin) holding one entry per possible CPU.
set -euo pipefail
QEMU="${QEMU:-qemu-aarch64}"
SYSROOT="${QEMU_LD_PREFIX:-/usr/aarch64-linux-gnu}"
major="$("$QEMU" --version | sed -n 's/.*version \([0-9]*\)\..*/\1/p' | head -1)"
if [[ "${major:-0}" -ge 8 ]]; then
    exec "$QEMU" -L "$SYSROOT" "$@"
fi
cpuinfo="$(mktemp "${TMPDIR:-/tmp}/endface-arm-cpuinfo.XXXXXX")"
trap 'rm -f "$cpuinfo"' EXIT
ncpu="$(( $(sed 's/.*-//' /sys/devices/system/cpu/possible 2>/dev/null || echo 0) + 1 ))"
for ((i = 0; i < ncpu; i++)); do
    printf 'processor\t: %d\nBogoMIPS\t: 62.50\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd42\nCPU revision\t: 1\n\n' "$i"
done > "$cpuinfo"
userns=()
[[ "$(id -u)" == 0 ]] || userns=(--map-root-user)
# Not exec: the trap removes the temporary cpuinfo afterwards.
unshare "${userns[@]}" --mount sh -c 'mount --bind "$0" /proc/cpuinfo && shift && exec "$@"' \
    "$cpuinfo" _ "$QEMU" -L "$SYSROOT" "$@"
