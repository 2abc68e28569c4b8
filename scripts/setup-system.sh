#!/usr/bin/env bash
# Installs what building and testing endface needs on a fresh Debian 12 machine:
# Debian packages (cross linker, libclang for v4l's bindgen, qemu), Rust components and the
# aarch64 target. Idempotent; skips what is already there.
set -euo pipefail

APT_PACKAGES=(
  build-essential pkg-config clang libclang-dev
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup-system: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

rustup component add clippy rustfmt >/dev/null 2>&1 || true
rustup target add aarch64-unknown-linux-gnu >/dev/null
