#!/usr/bin/env bash
# Cross-build the endface binary for the boards (aarch64-unknown-linux-gnu, Jetson class) on a
# Debian/Ubuntu x86_64 machine without a container engine (.cargo/config.toml sets the linker,
# cc-rs and bindgen variables). With Docker/Podman use `cross build --release --target
# aarch64-unknown-linux-gnu` (cross.toml) instead.
#
#   scripts/build-aarch64.sh            # release: target/aarch64-unknown-linux-gnu/release/endface
#   scripts/build-aarch64.sh --debug    # dev profile: target/aarch64-unknown-linux-gnu/debug/endface
#
# Needs: apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross clang libclang-dev
#        rustup target add aarch64-unknown-linux-gnu   (done here if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=aarch64-unknown-linux-gnu
profile=release dir=release
case "${1:-}" in
    --debug) profile=dev dir=debug ;;
    "" ) ;;
    *) echo "build-aarch64: unknown argument $1 (--debug)" >&2; exit 2 ;;
esac
for tool in aarch64-linux-gnu-gcc clang; do
    command -v "$tool" >/dev/null || {
        echo "build-aarch64: $tool missing: apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross clang libclang-dev" >&2
        exit 1
    }
done
if ! rustup target list --installed | grep -qx "$TARGET"; then
    rustup target add "$TARGET"
fi
nice cargo build --locked --profile "$profile" --target "$TARGET" --bin endface
bin="target/$TARGET/$dir/endface"
# ELF e_machine 0xb7 = AArch64.
[[ "$(od -An -tx1 -j18 -N2 "$bin" | tr -d ' \n')" == "b700" ]] || { echo "build-aarch64: $bin is not an AArch64 ELF" >&2; exit 1; }
echo "$bin"
