#!/usr/bin/env bash
# Install, upgrade, remove and purge the endface package in a container-free root folder with
# `dpkg --root DIR --force-script-chrootless` (maintainer scripts honour $DPKG_ROOT), checking:
# files in place, system user and state dirs created, no systemctl failure without systemd,
# station.toml edits kept across an upgrade (also when the packaged default changed), bundle
# state kept across upgrade and remove, conffiles kept on remove and gone on purge.
#
#   scripts/test-deb.sh [--binary PATH] [--arch amd64|arm64]
#
# arm64: pass the cross-built binary (e.g. --binary target/aarch64-unknown-linux-gnu/debug/endface);
# dpkg gets --force-architecture and the installed binary runs under scripts/qemu-aarch64-run.sh.
#
# Needs root (dpkg writes files owned by root) and dpkg-deb; takes a few seconds. By default it
# packages target/debug/endface and a stand-in libonnxruntime.so so it needs no release build.
set -euo pipefail
cd "$(dirname "$0")/.."
binary="" arch="amd64"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --binary) binary="$2"; shift 2 ;;
        --arch) arch="$2"; shift 2 ;;
        *) echo "test-deb: unknown argument $1" >&2; exit 2 ;;
    esac
done
[[ "$(id -u)" == 0 ]] || { echo "test-deb: needs root (or run under fakeroot)" >&2; exit 2; }
case "$arch" in
    amd64) [[ -n "$binary" ]] || binary="target/debug/endface"; run=(); force_arch=() ;;
    arm64) [[ -n "$binary" ]] || binary="target/aarch64-unknown-linux-gnu/debug/endface"
           run=(scripts/qemu-aarch64-run.sh); force_arch=(--force-architecture) ;;
    *) echo "test-deb: --arch amd64|arm64" >&2; exit 2 ;;
esac
[[ -x "$binary" ]] || { echo "test-deb: build $binary first (cargo build)" >&2; exit 2; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fail() { echo "test-deb: FAIL: $*" >&2; exit 1; }
ok() { echo "test-deb: ok: $*"; }

# Stand-in runtime (the package build checks only that the file exists).
printf 'stand-in libonnxruntime for packaging tests\n' > "$work/libonnxruntime.so"
build() { # version station-config
    DEB_COMPRESS=none scripts/build-deb.sh --arch "$arch" --binary "$binary" --ort-lib "$work/libonnxruntime.so" \
        --version "$1" --station-config "$2" --out "$work/dist" 2>"$work/build.log" || { cat "$work/build.log"; fail "build-deb"; }
}
cp firmware-config/debian/station.toml "$work/station-v1.toml"
deb1="$(build 0.0.1 "$work/station-v1.toml")"
deb2="$(build 0.0.2 "$work/station-v1.toml")"
{ cat "$work/station-v1.toml"; echo "# default changed in 0.0.3"; } > "$work/station-v3.toml"
deb3="$(build 0.0.3 "$work/station-v3.toml")"

# A minimal root: dpkg database and account files.
R="$work/root"
mkdir -p "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates" "$R/var/lib/dpkg/triggers" "$R/etc" "$R/usr/sbin"
touch "$R/var/lib/dpkg/status" "$R/var/lib/dpkg/available"
echo 'root:x:0:0:root:/root:/bin/sh' > "$R/etc/passwd"
printf 'root:x:0:\nvideo:x:44:\n' > "$R/etc/group"
echo 'root:*:19000:0:99999:7:::' > "$R/etc/shadow"
printf 'root:*::\nvideo:*::\n' > "$R/etc/gshadow"
# --force-depends: the folder has no libc6/passwd packages registered (the files come from the host).
dpkg_r() { dpkg --root="$R" --force-script-chrootless --force-not-root --force-depends "${force_arch[@]}" --log=/dev/null "$@"; }
endface_r() { "${run[@]}" "$R/usr/bin/endface" "$@"; }

# 1. Install.
dpkg_r -i "$deb1" > "$work/install.log" 2>&1 || { cat "$work/install.log"; fail "install"; }
for f in usr/bin/endface usr/lib/endface/libonnxruntime.so etc/endface/station.toml etc/endface/profiles/sm-upc.toml usr/share/doc/endface/copyright; do
    [[ -f "$R/$f" ]] || fail "missing /$f after install"
done
[[ -x "$R/usr/bin/endface" ]] || fail "/usr/bin/endface not executable"
grep -q '^endface:' "$R/etc/passwd" || fail "user endface not created"
grep -q '^video:.*endface' "$R/etc/group" || fail "endface not in group video"
for d in var/lib/endface/slots var/lib/endface/journal etc/endface/keys; do
    [[ -d "$R/$d" ]] || fail "missing /$d after install"
done
uid="$(grep '^endface:' "$R/etc/passwd" | cut -d: -f3)"
[[ "$(stat -c %u "$R/var/lib/endface")" == "$uid" ]] || fail "/var/lib/endface not owned by endface"
grep -qx /etc/endface/station.toml "$R/var/lib/dpkg/info/endface.conffiles" || fail "station.toml is not a conffile"
if [[ -f firmware-config/endface.service ]]; then
    [[ -f "$R/lib/systemd/system/endface.service" ]] || fail "systemd unit missing"
fi
endface_r --version > /dev/null || fail "installed binary does not run"
ok "install ($(basename "$deb1"))"

# Technician edits the config and installs a signed bundle into the A/B slots.
echo '# technician edit: calibrated 2025-01-01' >> "$R/etc/endface/station.toml"
E=endface_r
"$E" -q bundle keygen --out "$work/ws" --name lab > /dev/null
cp "$work/ws/lab.pub" "$R/etc/endface/keys/"
mkdir -p "$work/src/golden"
head -c 4096 /dev/urandom > "$work/src/m.onnx"
printf '{"onnx_file":"m.onnx","sha256":"%s","version":"1.0.0"}\n' "$(sha256sum "$work/src/m.onnx" | cut -d' ' -f1)" > "$work/src/m.manifest.json"
cp firmware-config/debian/station.toml "$work/src/golden/g.png"   # any bytes: the fake self-test does not read it
echo '{"image": "g.png", "verdict": "pass"}' > "$work/src/golden/expected.jsonl"
"$E" -q bundle create --key "$work/ws/lab.key" --model "$work/src/m.onnx" --manifest "$work/src/m.manifest.json" \
    --golden "$work/src/golden" -o "$work/b.bundle" > /dev/null
if [[ "$binary" == */debug/* ]]; then
    # Debug builds honour the fake self-test (release builds run the real model).
    ENDFACE_SELFTEST_FAKE=expected "$E" -q bundle install "$work/b.bundle" --keys "$R/etc/endface/keys" \
        --root "$R/var/lib/endface" > /dev/null || fail "bundle install into the packaged state root"
    "$E" -q bundle status --root "$R/var/lib/endface" | grep 'active: *a (version 1.0.0' > /dev/null || fail "bundle status after install"
    has_bundle=1
else
    echo '{"marker": true}' > "$R/var/lib/endface/journal/bundle.jsonl"
    has_bundle=0
fi

# 2. Upgrade, packaged default unchanged: the edit survives silently.
dpkg_r -i "$deb2" > "$work/upgrade.log" 2>&1 || { cat "$work/upgrade.log"; fail "upgrade"; }
grep -q 'technician edit' "$R/etc/endface/station.toml" || fail "config edit lost on upgrade"
[[ -f "$R/etc/endface/keys/lab.pub" && -f "$R/var/lib/endface/journal/bundle.jsonl" ]] || fail "keys or state lost on upgrade"
if [[ "$has_bundle" == 1 ]]; then
    endface_r -q bundle status --root "$R/var/lib/endface" | grep 'active: *a (version 1.0.0' > /dev/null \
        || fail "installed bundle lost on upgrade"
fi
dpkg-query --admindir="$R/var/lib/dpkg" -W -f='${Version}' endface | grep -qx 0.0.2 || fail "version after upgrade"
ok "upgrade 0.0.1 -> 0.0.2 keeps config edit, keys, installed bundle (slot a) and journal"

# 3. Upgrade with a changed packaged default: keep the local edit (what a station wants).
dpkg_r --force-confdef --force-confold -i "$deb3" > "$work/upgrade3.log" 2>&1 || { cat "$work/upgrade3.log"; fail "upgrade 3"; }
grep -q 'technician edit' "$R/etc/endface/station.toml" || fail "config edit lost on upgrade with new default"
[[ -f "$R/etc/endface/station.toml.dpkg-dist" ]] || fail "new default not offered as .dpkg-dist"
ok "upgrade 0.0.2 -> 0.0.3 (changed default) keeps the edit, new default in station.toml.dpkg-dist"

# 4. Remove: program gone, conffiles and state kept.
dpkg_r -r endface > "$work/remove.log" 2>&1 || { cat "$work/remove.log"; fail "remove"; }
[[ ! -e "$R/usr/bin/endface" && ! -e "$R/usr/lib/endface/libonnxruntime.so" ]] || fail "files left after remove"
grep -q 'technician edit' "$R/etc/endface/station.toml" || fail "conffile not kept on remove"
[[ -f "$R/var/lib/endface/journal/bundle.jsonl" ]] || fail "state not kept on remove"
ok "remove keeps conffiles and state"

# 5. Purge: conffiles, keys and state gone.
dpkg_r -P endface > "$work/purge.log" 2>&1 || { cat "$work/purge.log"; fail "purge"; }
[[ ! -e "$R/etc/endface/station.toml" && ! -e "$R/etc/endface" ]] || fail "/etc/endface left after purge"
[[ ! -e "$R/var/lib/endface" ]] || fail "/var/lib/endface left after purge"
ok "purge removes conffiles, keys and state"
echo "test-deb: all passed"
