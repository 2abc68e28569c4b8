#!/usr/bin/env bash
# Build the endface Debian package for amd64 or arm64 with dpkg-deb (no other tool needed).
#
#   scripts/build-deb.sh --arch arm64            # after scripts/build-aarch64.sh
#   scripts/build-deb.sh --arch amd64            # after cargo build --release
#
# Options:
#   --arch amd64|arm64       required
#   --binary PATH            endface binary (default target/<triple>/release/endface)
#   --ort-lib PATH           libonnxruntime.so CPU build (default .ort/<x86_64|aarch64>/libonnxruntime.so,
#                            made by scripts/setup-ort.sh or extracted here from a downloaded wheel)
#   --version V              package version (default: Cargo.toml's)
#   --station-config PATH    default /etc/endface/station.toml (default firmware-config/debian/station.toml)
#   --out DIR                output directory (default dist/)
# Env: DEB_COMPRESS=xz (default) | gzip | none
#
# Layout: /usr/bin/endface, /lib/systemd/system/endface.service, /etc/endface/station.toml and
# /etc/endface/profiles/*.toml (conffiles), /etc/endface/keys/ (trusted *.pub, added by the
# technician), /usr/lib/endface/libonnxruntime.so, /var/lib/endface/models/ (factory model),
# /var/lib/endface/ (A/B slots, journal; created by postinst).
set -euo pipefail
cd "$(dirname "$0")/.."

arch="" binary="" ort="" version="" station="firmware-config/debian/station.toml" out="dist"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --arch) arch="$2"; shift 2 ;;
        --binary) binary="$2"; shift 2 ;;
        --ort-lib) ort="$2"; shift 2 ;;
        --version) version="$2"; shift 2 ;;
        --station-config) station="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "build-deb: unknown argument $1" >&2; exit 2 ;;
    esac
done
case "$arch" in
    amd64) triple=x86_64-unknown-linux-gnu; ortarch=x86_64; elf_machine="3e00" ;;
    arm64) triple=aarch64-unknown-linux-gnu; ortarch=aarch64; elf_machine="b700" ;;
    *) echo "build-deb: --arch amd64|arm64 is required" >&2; exit 2 ;;
esac
[[ -n "$binary" ]] || binary="target/$triple/release/endface"
if [[ ! -f "$binary" && "$arch" == amd64 && -f target/release/endface ]]; then binary=target/release/endface; fi
[[ -n "$ort" ]] || ort=".ort/$ortarch/libonnxruntime.so"
[[ -n "$version" ]] || version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"

die() { echo "build-deb: $*" >&2; exit 1; }
[[ -f "$binary" ]] || die "no binary at $binary (build it first: scripts/build-aarch64.sh or cargo build --release)"
# ELF e_machine (bytes 18-19): 0x3e x86_64, 0xb7 aarch64.
got="$(od -An -tx1 -j18 -N2 "$binary" | tr -d ' \n')"
[[ "$got" == "$elf_machine" ]] || die "$binary is not an $arch executable (ELF machine $got)"
if [[ ! -f "$ort" ]]; then
    whl="$(ls .ort/wheels/onnxruntime-*"$ortarch"*.whl 2>/dev/null | head -1 || true)"
    [[ -n "$whl" ]] || die "no ONNX Runtime at $ort: run scripts/setup-ort.sh --arch $ortarch (or pass --ort-lib)"
    mkdir -p ".ort/$ortarch"
    unzip -p "$whl" 'onnxruntime/capi/libonnxruntime.so.*' > "$ort.tmp" && mv "$ort.tmp" "$ort"
fi
[[ -f "$station" ]] || die "no default station config at $station"

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
root="$stage/root"
install -d -m 0755 "$root/DEBIAN" "$root/usr/bin" "$root/usr/lib/endface" "$root/etc/endface/profiles" \
    "$root/etc/endface/keys" "$root/var/lib/endface/models" "$root/usr/share/doc/endface"
install -m 0755 "$binary" "$root/usr/bin/endface"
install -m 0644 "$ort" "$root/usr/lib/endface/libonnxruntime.so"
install -m 0644 "$station" "$root/etc/endface/station.toml"
conffiles=(/etc/endface/station.toml)
for p in firmware-config/profiles/*.toml; do
    [[ -f "$p" ]] || continue
    install -m 0644 "$p" "$root/etc/endface/profiles/"
    conffiles+=("/etc/endface/profiles/$(basename "$p")")
done
if [[ -f firmware-config/endface.service ]]; then
    install -d -m 0755 "$root/lib/systemd/system"
    install -m 0644 firmware-config/endface.service "$root/lib/systemd/system/endface.service"
else
    echo "build-deb: warning: firmware-config/endface.service missing; package has no systemd unit" >&2
fi
for m in models/*.onnx models/*.manifest.json models/MANIFEST.md; do
    [[ -f "$m" ]] && install -m 0644 "$m" "$root/var/lib/endface/models/"
done
[[ -f docs/technician-updates.md ]] && install -m 0644 docs/technician-updates.md "$root/usr/share/doc/endface/"
install -m 0644 firmware-config/debian/copyright "$root/usr/share/doc/endface/copyright"
for s in postinst prerm postrm; do
    install -m 0755 "firmware-config/debian/$s" "$root/DEBIAN/$s"
done
printf '%s\n' "${conffiles[@]}" > "$root/DEBIAN/conffiles"
size_kb="$(du -sk --exclude=DEBIAN "$root" | cut -f1)"
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@INSTALLED_SIZE@/$size_kb/" \
    firmware-config/debian/control.in > "$root/DEBIAN/control"

mkdir -p "$out"
deb="$out/endface_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Z"${DEB_COMPRESS:-xz}" --build "$root" "$deb" >/dev/null
echo "$deb"
