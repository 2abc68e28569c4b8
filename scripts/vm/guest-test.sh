#!/bin/sh
# The VM test itself, run by the initramfs' /init (busybox sh) with the work folder's host
# path as $1. The daemon and python run from the host's root through chroot; vivid and the
# out-of-tree gpio-sim are the real kernel interfaces.
#
# 1. vivid (V4L2) and gpio-sim (lines READY BUSY PASS FAIL REJECT STROBE TRIGGER) come up.
# 2. The daemon starts (V4L2 GREY capture, GPIO trigger, chardev outputs, marker inspector):
#    READY is read back high on the simulator side, nothing else is.
# 3. PLC trigger through gpio-sim's pull: a black frame -> PASS line; a white one -> FAIL line.
# 4. vivid "Disconnect" (unplug + replug): the daemon reconnects by itself. Then the camera is
#    removed (driver unbound) and vivid unloaded: READY and PASS drop and stay low; vivid is
#    reloaded: the daemon reconnects, READY comes back, a trigger is inspected again.
# 5. SIGTERM: exit 0, every line low. SIGKILL of a second run: the kernel releases the lines
#    and READY reads low.
W="$1"
H=/host
WG="$H$W"
log() { echo "guest: $*"; }
fail() {
    log "FAIL: $*"
    for f in daemon.err daemon.out; do
        [ -f "$WG/$f" ] && { echo "---- $f (tail)"; tail -n 40 "$WG/$f"; }
    done
    echo "FAIL: $*" > "$WG/result"
    exit 1
}
t0=$(cut -d' ' -f1 /proc/uptime)
elapsed() { awk -v a="$t0" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { printf "%.1f", b - a }'; }

# vivid control ids (drivers/media/test-drivers/vivid/vivid-ctrls.c, 6.1)
TEST_PATTERN=0x00f0f000   # menu: 5 = 100% Black, 6 = 100% White
OSD_TEXT_MODE=0x00f0f001  # menu: 2 = None
DISCONNECT=0x00f0f041     # button

modprobe configfs || fail "configfs"
mount -t configfs none /sys/kernel/config || fail "mount configfs"
modprobe gpio-sim || fail "gpio-sim module (out of tree) does not load"
modprobe vivid n_devs=1 node_types=0x1 || fail "vivid"
[ -c /dev/video0 ] || fail "no /dev/video0 after loading vivid"

# gpio-sim chip: 7 named lines.
C=/sys/kernel/config/gpio-sim/endface
mkdir -p "$C/bank0" || fail "gpio-sim configfs"
echo 7 > "$C/bank0/num_lines"
i=0
for n in READY BUSY PASS FAIL REJECT STROBE TRIGGER; do
    mkdir -p "$C/bank0/line$i"
    echo "$n" > "$C/bank0/line$i/name"
    i=$((i + 1))
done
echo 1 > "$C/live" || fail "gpio-sim chip does not go live"
SIM="/sys/devices/platform/$(cat "$C/dev_name")/$(cat "$C/bank0/chip_name")"
[ -d "$SIM" ] || fail "no simulator sysfs at $SIM"
log "gpio-sim $SIM, vivid /dev/video0 ($(elapsed) s)"

# The daemon's view of the world: the host root with this guest's /dev, /proc, /sys.
mount -t devtmpfs dev "$H/dev"
mount -t proc proc "$H/proc"
mount -t sysfs sys "$H/sys"
mount -t tmpfs tmp "$H/tmp"
mount -t tmpfs run "$H/run"

READY=0 BUSY=1 PASS=2 FAIL=3 REJECT=4 STROBE=5 TRIGGER=6
val() { cat "$SIM/sim_gpio$1/value"; }
lines() { echo "READY=$(val $READY) BUSY=$(val $BUSY) PASS=$(val $PASS) FAIL=$(val $FAIL) REJECT=$(val $REJECT) STROBE=$(val $STROBE)"; }
# wait_val LINE VALUE SECONDS WHAT
wait_val() {
    n=0
    while [ "$(val "$1")" != "$2" ]; do
        n=$((n + 1))
        [ "$n" -gt $(($3 * 20)) ] && fail "$4 (after $3 s: $(lines))"
        usleep 50000
    done
}
ctl() { chroot "$H" /usr/bin/python3 "$W/v4l2ctl.py" /dev/video0 "$@" || fail "v4l2ctl $*"; }
trigger() {
    echo pull-up > "$SIM/sim_gpio$TRIGGER/pull"
    usleep 100000
    echo pull-down > "$SIM/sim_gpio$TRIGGER/pull"
}
results() { grep -c '"verdict"' "$WG/daemon.out" 2>/dev/null || echo 0; }
wait_results() {
    n=0
    while [ "$(results)" -lt "$1" ]; do
        n=$((n + 1))
        [ "$n" -gt 400 ] && fail "result $1 never came ($(lines))"
        usleep 50000
    done
}
start_daemon() {
    chroot "$H" /usr/bin/env ENDFACE_LOG=info "$W/endface" run --json --config "$W/vm.toml" \
        > "$WG/daemon.out" 2> "$WG/daemon.err" &
    DPID=$!
}

ctl "$OSD_TEXT_MODE=2" "$TEST_PATTERN=5"
[ "$(lines)" = "READY=0 BUSY=0 PASS=0 FAIL=0 REJECT=0 STROBE=0" ] || fail "lines not idle before start: $(lines)"
start_daemon
wait_val $READY 1 90 "READY never went high"
log "daemon up, READY high ($(elapsed) s): $(lines)"
[ "$(val $PASS)$(val $FAIL)$(val $BUSY)" = "000" ] || fail "PASS/FAIL/BUSY not low at start: $(lines)"

# Black frame: PASS.
trigger
wait_results 1
wait_val $PASS 1 10 "PASS line not high after a black frame"
[ "$(val $FAIL)" = 0 ] || fail "FAIL high with PASS: $(lines)"
wait_val $BUSY 0 10 "BUSY stuck high"
grep '"verdict"' "$WG/daemon.out" | tail -n 1 | grep -q '"verdict":"pass"' || fail "first verdict is not pass"
log "trigger 1: PASS read back ($(elapsed) s)"

# White frame: FAIL (and PASS withdrawn).
ctl "$TEST_PATTERN=6"
sleep 1
trigger
wait_results 2
wait_val $FAIL 1 10 "FAIL line not high after a white frame"
[ "$(val $PASS)" = 0 ] || fail "PASS still high with FAIL: $(lines)"
grep '"verdict"' "$WG/daemon.out" | tail -n 1 | grep -q '"verdict":"fail"' || fail "second verdict is not fail"
log "trigger 2: FAIL read back ($(elapsed) s)"

# vivid's "Disconnect" button: an unplug, and a replug once the last user lets go. The
# daemon sees the device vanish, releases it, reopens it, READY comes back.
ctl "$TEST_PATTERN=5"
ctl "$DISCONNECT=1"
n=0
until grep -q "camera back" "$WG/daemon.err"; do
    n=$((n + 1)); [ "$n" -gt 300 ] && fail "the daemon did not reconnect after vivid's Disconnect"
    usleep 50000
done
wait_val $READY 1 15 "READY not back after the Disconnect/reconnect"
log "vivid Disconnect: camera lost and reconnected, READY high ($(elapsed) s)"
sleep 1
trigger
wait_results 3
wait_val $PASS 1 10 "PASS line not high after the third trigger"

# Camera removal: the device goes away (driver unbound, as on a USB unplug) and the module is
# unloaded: READY and PASS drop and stay low; reloading vivid brings everything back.
for d in /sys/bus/platform/drivers/vivid/vivid*; do
    basename "$d" > /sys/bus/platform/drivers/vivid/unbind || fail "cannot unbind $d"
done
wait_val $READY 0 15 "READY stayed high after the camera was removed"
[ "$(val $PASS)" = 0 ] || fail "PASS still high after the camera was lost: $(lines)"
log "camera removed: READY and PASS low ($(elapsed) s)"
n=0
until rmmod vivid 2>/dev/null; do
    n=$((n + 1)); [ "$n" -gt 100 ] && fail "vivid cannot be unloaded: the daemon still holds it"
    usleep 100000
done
log "vivid unloaded ($(elapsed) s)"
sleep 2
[ "$(val $READY)" = 0 ] || fail "READY high without a camera"
modprobe vivid n_devs=1 node_types=0x1 || fail "vivid reload"
ctl "$OSD_TEXT_MODE=2" "$TEST_PATTERN=5"
wait_val $READY 1 30 "READY did not come back after vivid was reloaded"
log "vivid reloaded: daemon reconnected, READY high ($(elapsed) s)"
sleep 1
trigger
wait_results 4
wait_val $PASS 1 10 "no PASS after the reconnect"
log "trigger 4 after reconnect: PASS ($(elapsed) s)"

# SIGTERM: clean exit, lines safe.
kill -TERM "$DPID"
wait "$DPID"
rc=$?
[ "$rc" = 0 ] || fail "daemon exit code $rc after SIGTERM"
[ "$(lines)" = "READY=0 BUSY=0 PASS=0 FAIL=0 REJECT=0 STROBE=0" ] || fail "lines not safe after SIGTERM: $(lines)"
rows=$(chroot "$H" "$W/endface" journal --db /tmp/endface-vm/journal/inspections.db --csv | tail -n +2 | wc -l)
[ "$rows" = 4 ] || fail "journal holds $rows rows, want 4"
verdicts=$(chroot "$H" "$W/endface" journal --db /tmp/endface-vm/journal/inspections.db --csv | tail -n +2 | cut -d, -f7 | tr '\n' ' ')
[ "$verdicts" = "pass fail pass pass " ] || fail "journal verdicts: $verdicts"
grep -q '"camera_losses":2' "$WG/daemon.out" || fail "summary does not count two camera losses"
log "SIGTERM: exit 0, lines low, journal: $verdicts($(elapsed) s)"

# SIGKILL: the kernel releases the lines; gpio-sim returns them to their pull (low).
start_daemon
wait_val $READY 1 60 "READY never went high (second run)"
kill -KILL "$DPID"
wait "$DPID"
wait_val $READY 0 10 "READY still high after the daemon was killed"
log "SIGKILL: lines released, READY low ($(elapsed) s)"

echo PASS > "$WG/result"
log "all checks passed ($(elapsed) s)"
