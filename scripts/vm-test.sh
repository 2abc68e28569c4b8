#!/usr/bin/env bash
# Real-interface test of the station daemon in a small VM: the daemon captures from a vivid
# V4L2 device, inspects (marker inspector: verdict from the frame's top-left pixel, set through
# vivid's test pattern), and drives gpio-sim lines that are read back on the simulator side; a
# PLC trigger is injected through gpio-sim's pull attribute; a camera unplug (vivid's
# "Disconnect" control, then unloading vivid) drops READY and reloading vivid recovers.
#
#   scripts/vm-test.sh [--keep]
#
# How (see docs in ../shared/docs/vm-testing.md for the facts this relies on): the stock Debian
# kernel (linux-image-amd64's ABI, extracted with dpkg-deb, not installed), a busybox
# initramfs, gpio-sim built out of tree against the matching headers from three files of
# linux-source-<ver>, qemu with software emulation (TCG), the host root shared read-only over
# 9p so the daemon (a glibc binary) runs in a chroot, and a work folder shared read-write.
# Downloads and the built module are cached in $ENDFACE_VM_CACHE (default target/vm).
#
# Env: ENDFACE_VM_CACHE, ENDFACE_BIN (binary under test; default: cargo build), ENDFACE_VM_ACCEL
# (tcg | kvm; default tcg: nested KVM hangs on these machines), ENDFACE_VM_TIMEOUT (s, 300).
# Needs: apt (installs qemu-system-x86 busybox-static kmod when missing), gcc, make, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
keep=0
[[ "${1:-}" == "--keep" ]] && keep=1
say() { echo "vm-test: $*" >&2; }
die() { say "FAIL: $*"; exit 1; }
t_start=$SECONDS
SUDO=""; [[ "$(id -u)" -ne 0 ]] && SUDO="sudo"
# The guest mounts fresh tmpfs on the host root's /tmp and /run (the daemon's SQLite WAL needs
# shared mmap, which 9p lacks): a checkout there, with the kernel modules and the work folder
# inside it, would vanish from the guest's view half-way through.
case "$repo/" in
    /tmp/* | /run/*) die "the checkout $repo is under /tmp or /run, which the guest covers with tmpfs: clone it elsewhere (e.g. under \$HOME) to run the VM test" ;;
esac

# 1. Host packages.
missing=()
for p in qemu-system-x86 busybox-static kmod; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    say "installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 missing"
BUSYBOX=/bin/busybox
[[ -x "$BUSYBOX" ]] || die "busybox missing"

# 2. The kernel: image, headers, kbuild and sources of one ABI, resolved from the metapackages.
kpkg="$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/.*Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -1)"
[[ -n "$kpkg" ]] || { $SUDO apt-get update -qq; kpkg="$(apt-cache depends linux-image-amd64 | sed -n 's/.*Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -1)"; }
[[ -n "$kpkg" ]] || die "cannot resolve the kernel ABI from linux-image-amd64"
kver="${kpkg#linux-image-}"            # 6.1.0-56-amd64
abi="${kver%-amd64}"                   # 6.1.0-56
kmm="$(echo "$kver" | cut -d. -f1,2)"   # 6.1
kpkgver="$(apt-cache show "$kpkg" | sed -n 's/^Version: //p' | head -1)"
cache="${ENDFACE_VM_CACHE:-$repo/target/vm}"
k="$cache/$kver"
if [[ ! -f "$k/.ready" ]]; then
    say "preparing kernel $kver ($kpkgver) in $k"
    rm -rf "$k"; mkdir -p "$k/debs" "$k/root" "$k/hdr" "$k/src" "$k/gpio-sim"
    (
        cd "$k/debs"
        apt-get download -q "$kpkg" "linux-headers-$kver" "linux-headers-$abi-common" "linux-kbuild-$kmm" >/dev/null 2>&1 \
            || die "apt-get download of the kernel packages failed"
        apt-get download -q "linux-source-$kmm=$kpkgver" >/dev/null 2>&1 || apt-get download -q "linux-source-$kmm" >/dev/null 2>&1 \
            || die "apt-get download linux-source-$kmm failed"
    )
    dpkg-deb -x "$k/debs/${kpkg}_"*.deb "$k/root"
    for d in "$k/debs/linux-headers-"*.deb "$k/debs/linux-kbuild-"*.deb; do dpkg-deb -x "$d" "$k/hdr"; done
    # The arch headers include the common ones by absolute path: point it into the extract.
    sed -i "s#include /usr/src/#include $k/hdr/usr/src/#" "$k/hdr/usr/src/linux-headers-$kver/Makefile"
    srcs=(drivers/gpio/gpio-sim.c drivers/gpio/gpiolib.h kernel/irq/irq_sim.c)
    dpkg-deb --fsys-tarfile "$k/debs/linux-source-$kmm"_*.deb \
        | tar -xO "./usr/src/linux-source-$kmm.tar.xz" | xz -dc \
        | tar -x -C "$k/src" "${srcs[@]/#/linux-source-$kmm/}"
    for f in "${srcs[@]}"; do cp "$k/src/linux-source-$kmm/$f" "$k/gpio-sim/"; done
    # irq_to_desc() is not exported to modules; irq_sim is built-in code made a module here.
    sed -i 's/handle_simple_irq(irq_to_desc(irqnum));/generic_handle_irq(irqnum);/' "$k/gpio-sim/irq_sim.c"
    grep -q 'generic_handle_irq(irqnum)' "$k/gpio-sim/irq_sim.c" || die "irq_sim.c patch did not apply"
    printf '\n#include <linux/module.h>\nMODULE_LICENSE("GPL");\n' >> "$k/gpio-sim/irq_sim.c"
    echo 'obj-m += irq_sim.o gpio-sim.o' > "$k/gpio-sim/Kbuild"
    make -s -C "$k/hdr/usr/src/linux-headers-$kver" M="$k/gpio-sim" modules >&2 \
        || die "building gpio-sim against linux-headers-$kver failed"
    mkdir -p "$k/root/lib/modules/$kver/extra"
    cp "$k/gpio-sim/"*.ko "$k/root/lib/modules/$kver/extra/"
    depmod -b "$k/root" "$kver"
    rm -rf "$k/debs" "$k/src"
    touch "$k/.ready"
fi
modroot="$k/root/lib/modules"
vmlinuz="$k/root/boot/vmlinuz-$kver"

# 3. The binary under test (debug info stripped: it is read over 9p).
work="$cache/work"
rm -rf "$work"; mkdir -p "$work"
[[ "$keep" == 1 ]] || trap 'rm -rf "$work"' EXIT
bin="${ENDFACE_BIN:-}"
if [[ -z "$bin" ]]; then
    nice cargo build --bin endface >&2
    bin="$repo/target/debug/endface"
fi
objcopy --strip-debug "$bin" "$work/endface"
cp scripts/vm/guest-test.sh scripts/vm/v4l2ctl.py "$work/"
cat > "$work/vm.toml" <<TOML
[station]
name = "vm"

[camera]
source = "v4l2"
device = "/dev/video0"
width = 320
height = 180
pixel_format = "GREY"
fps = 10.0
frame_timeout_ms = 2000
reconnect_initial_ms = 100
reconnect_max_ms = 400

[trigger]
mode = "gpio"
line = "TRIGGER"
edge = "rising"
debounce_ms = 5
bias = "as-is"

[gpio]
backend = "chardev"
reject_ms = 40
strobe_delay_ms = 2
strobe_ms = 10
ready  = { line = "READY" }
busy   = { line = "BUSY" }
pass   = { line = "PASS" }
fail   = { line = "FAIL" }
reject = { line = "REJECT" }
strobe = { line = "STROBE" }

[journal]
path = "/tmp/endface-vm/journal/inspections.db"   # guest tmpfs: SQLite WAL needs shared mmap, which 9p lacks

[daemon]
inspector = "marker"
watchdog_ms = 6000
state_dir = "$work/state"
TOML

# 4. The initramfs: busybox, virtio + 9p modules (in dependency order), /init.
ir="$work/initramfs"
mkdir -p "$ir"/{bin,sbin,proc,sys,dev,tmp,lib,mods}
cp "$BUSYBOX" "$ir/bin/busybox"
for a in $("$BUSYBOX" --list); do
    [[ "$a" == busybox ]] && continue   # a self-link makes the boot fail (ELOOP)
    ln -sf busybox "$ir/bin/$a"
done
: > "$ir/modules.order"
for m in virtio_pci 9pnet_virtio 9p; do
    modprobe -d "$k/root" -S "$kver" --show-depends "$m" | while read -r kind path _; do
        [[ "$kind" == insmod ]] || continue
        name="$(basename "$path")"
        grep -qx "/mods/$name" "$ir/modules.order" && continue
        cp "$path" "$ir/mods/$name"
        echo "/mods/$name" >> "$ir/modules.order"
    done
done
install -m 0755 scripts/vm/init "$ir/init"
(cd "$ir" && find . | "$BUSYBOX" cpio -o -H newc 2>/dev/null | gzip -1) > "$work/initramfs.gz"
rm -rf "$ir"

# 5. Boot.
accel="${ENDFACE_VM_ACCEL:-tcg}"
say "booting $kver ($accel) with the daemon under test; console: $work/console.log"
t_boot=$SECONDS
set +e
timeout "${ENDFACE_VM_TIMEOUT:-300}" qemu-system-x86_64 \
    -accel "$accel" -cpu max -smp 1 -m 1024 -nographic -no-reboot \
    -kernel "$vmlinuz" -initrd "$work/initramfs.gz" \
    -append "console=ttyS0 panic=-1 quiet loglevel=3 endface_work=$work endface_modules=$modroot" \
    -virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap" \
    -virtfs "local,path=$work,mount_tag=work,security_model=none" \
    > "$work/console.log" 2>&1
qrc=$?
set -e
grep -E '^guest: ' "$work/console.log" >&2 || true
if [[ "$(cat "$work/result" 2>/dev/null)" != "PASS" ]]; then
    say "qemu exit $qrc; console tail:"
    tail -n 60 "$work/console.log" >&2
    die "$(cat "$work/result" 2>/dev/null || echo "no result from the guest (timeout or crash)")"
fi
say "ok: VM $((SECONDS - t_boot)) s, total $((SECONDS - t_start)) s"
