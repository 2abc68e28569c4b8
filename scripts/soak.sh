#!/usr/bin/env bash
# Free-run soak of the station daemon on the synthetic camera (issue 7): memory flat, no growth
# in queue depth, dropped-frame counters reported.
#
# Usage: scripts/soak.sh [--minutes 10] [--fps 30] [--inspector model|marker]
#                        [--manifest models/endface-student.manifest.json] [--threads 1]
#                        [--workers 1] [--out target/soak] [--endface target/release/endface]
#
# Runs `endface run --json` (niced) on a generated station config: synthetic 640x480 camera
# paced at --fps, free-run triggers at --fps, simulated GPIO, journal and failing-frame images
# (64 MB quota) under --out. Samples the daemon's RSS every 5 s (/proc/PID/status), stops it
# with SIGINT after --minutes, and prints: RSS at 1 min / at the end / peak (VmHWM), its growth
# per minute over the second half (least squares), the queue wait (ms a frame waited for the
# inspector) in the first and last 20 % of the run, inspections/s, and the summary's counters
# (frames captured / dropped, triggers refused because max_pending were waiting, ...).
# Files: OUT/station.toml, OUT/results.jsonl, OUT/rss.csv, OUT/report.txt.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
minutes=10 fps=30 inspector=model threads=1 workers=1
manifest="$repo/models/endface-student.manifest.json"
out="$repo/target/soak"
endface="$repo/target/release/endface"
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes="$2"; shift 2 ;;
    --fps) fps="$2"; shift 2 ;;
    --inspector) inspector="$2"; shift 2 ;;
    --manifest) manifest="$(realpath "$2")"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --workers) workers="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --endface) endface="$2"; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "soak.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
[ -x "$endface" ] || { echo "soak.sh: $endface missing: cargo build --release first (or --endface)" >&2; exit 2; }
if [ "$inspector" = model ] && [ ! -f "$manifest" ]; then
  echo "soak.sh: model manifest $manifest not found (--manifest, or --inspector marker)" >&2; exit 2
fi
ort="${ENDFACE_ORT_LIB:-$repo/.ort/$(uname -m)/libonnxruntime.so}"
rm -rf "$out"; mkdir -p "$out"
out="$(realpath "$out")"
cat > "$out/station.toml" <<EOF
[station]
name = "soak"
profile = "sm-upc"

[calibration]
um_per_px_x = 0.5
um_per_px_y = 0.5

[runtime]
onnxruntime_library = "$ort"
providers = ["cpu"]
intra_threads = $threads

[model]
manifest = "$manifest"

[camera]
source = "synthetic"
width = 640
height = 480
fps = $fps
seed = 7
defect_prob = 0.3

[trigger]
mode = "free-run"
rate_hz = $fps

[gpio]
backend = "sim"
reject_ms = 5
strobe_delay_ms = 0
strobe_ms = 2

[journal]
path = "$out/journal.db"
save_images = "failing"
image_quota_mb = 64

[daemon]
inspector = "$inspector"
workers = $workers
state_dir = "$out/state"
EOF

echo "soak: $minutes min at $fps fps, inspector $inspector, $workers worker(s), $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg)" | tee "$out/report.txt"
RUST_LOG=warn nice "$endface" -q run --config "$out/station.toml" --json > "$out/results.jsonl" 2> "$out/stderr.log" &
pid=$!
t0=$(date +%s)
end=$((t0 + minutes * 60))
echo "t_s,rss_kb,hwm_kb,threads" > "$out/rss.csv"
while kill -0 "$pid" 2>/dev/null && [ "$(date +%s)" -lt "$end" ]; do
  if [ -r "/proc/$pid/status" ]; then
    awk -v t="$(( $(date +%s) - t0 ))" '/^VmRSS/{r=$2} /^VmHWM/{h=$2} /^Threads/{n=$2} END{print t","r","h","n}' "/proc/$pid/status" >> "$out/rss.csv" || true
  fi
  sleep 5
done
hwm=$(awk '/^VmHWM/{print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
kill -INT "$pid" 2>/dev/null || true
rc=0; wait "$pid" || rc=$?
echo "daemon exit code $rc; peak RSS (VmHWM) ${hwm} kB" | tee -a "$out/report.txt"

python3 - "$out" "$minutes" <<'PY' | tee -a "$out/report.txt"
import csv, json, sys
out, minutes = sys.argv[1], float(sys.argv[2])
rows = [r for r in csv.DictReader(open(f"{out}/rss.csv")) if r["rss_kb"]]
t = [float(r["t_s"]) for r in rows]; rss = [float(r["rss_kb"]) / 1024 for r in rows]
def at(ts):
    return next((v for tt, v in zip(t, rss) if tt >= ts), rss[-1] if rss else float("nan"))
half = [(a, b) for a, b in zip(t, rss) if a >= t[-1] / 2] if t else []
slope = float("nan")
if len(half) > 2:
    mx = sum(a for a, _ in half) / len(half); my = sum(b for _, b in half) / len(half)
    sxx = sum((a - mx) ** 2 for a, _ in half)
    slope = sum((a - mx) * (b - my) for a, b in half) / sxx * 60 if sxx else 0.0
print(f"RSS: {at(60):.1f} MiB at 1 min, {rss[-1] if rss else float('nan'):.1f} MiB at the end, "
      f"max sampled {max(rss) if rss else float('nan'):.1f} MiB; second-half trend {slope:+.3f} MiB/min")
results, summary = [], None
for line in open(f"{out}/results.jsonl"):
    line = line.strip()
    if not line.startswith("{"):
        continue
    o = json.loads(line)
    if "summary" in o:
        summary = o["summary"]
    elif "inspection" in o:
        results.append(o)
n = len(results)
def pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(q * (len(v) - 1)))] if v else float("nan")
if n:
    k = max(1, n // 5)
    q_first = [r["timings_ms"].get("queue", float("nan")) for r in results[:k]]
    q_last = [r["timings_ms"].get("queue", float("nan")) for r in results[-k:]]
    tot = [r["timings_ms"].get("trigger_to_result", float("nan")) for r in results]
    print(f"inspections: {n} ({n / (minutes * 60):.2f}/s); queue wait p50/max first 20 %: "
          f"{pct(q_first, .5):.1f}/{max(q_first):.1f} ms, last 20 %: {pct(q_last, .5):.1f}/{max(q_last):.1f} ms; "
          f"trigger→result p50/p95 {pct(tot, .5):.1f}/{pct(tot, .95):.1f} ms")
if summary:
    keys = ["inspections", "pass", "fail", "unable", "model_errors", "frames_captured", "frames_dropped",
            "frames_dropped_by_device", "frames_corrupt", "frames_unused", "abandoned_at_stop", "triggers",
            "triggers_ignored", "triggers_overrun", "camera_losses", "images_saved", "images_evicted", "stop_reason"]
    print("summary: " + ", ".join(f"{k} {summary.get(k)}" for k in keys))
    st = summary.get("stage_ms", {})
    print("stages mean/max ms: " + ", ".join(f"{k} {v['mean_ms']:.1f}/{v['max_ms']:.1f}" for k, v in st.items()))
else:
    print("no summary line from the daemon (see stderr.log)")
PY
