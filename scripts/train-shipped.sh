#!/usr/bin/env bash
# Rebuild the shipped model (models/endface-student.*) from scratch: render the synthetic
# datasets with the release binary, then run scripts/train.sh (full profile) on them: teacher +
# student on pseudo-defects and teacher labels, the student's last quarter on whole crops.
# Model 1.4.0's recipe is the default: model 1.3.0's (teacher 15 minutes, student 47: 35 on 96-px
# patches, then 12 on whole 384-px crops, --finish-share 0.25; 1.3.0 reused the teacher of
# 1.2.0's run, which had the same 15 minutes), then a second stage of 30 minutes on one thread
# with 60 % of the pseudo films sized in µm (--local-films 0.6; models/MODEL_CARD.md).
# --finetune-minutes 0 stops after the first stage (model 1.3.0). --minutes M splits M as the
# trainer does (30 % teacher, 70 % student); --finish-share 0 is 1.2.0's recipe (patches only,
# --minutes 50). The second stage trains the student on from the first's checkpoint for F
# minutes (same teacher, a new cosine tail, the last quarter again on whole crops):
# --finetune-local-films L sets its share of µm-sized films (0 = the first stage's films),
# --finetune-structure S puts a share S of its patches over the fiber's own structure (the axis
# and the cladding edge; model 1.1.0 was made with 0.35, which made 1.2.0 worse on the
# validation sets), --finetune-patch P trains on P-pixel patches instead of the profile's 96.
#   scripts/train-shipped.sh [--teacher-minutes T] [--student-minutes S] [--minutes M] [--finish-share W]
#                            [--finetune-minutes F] [--finetune-local-films L] [--finetune-structure S]
#                            [--finetune-patch P] [--finetune-threads T] [--out DIR] [--version V] [--threads N]
#   (defaults: teacher 15, student 47, whole-crop share 0.25, a second stage of 30 minutes with
#   local films 0.6, structure 0, on 1 thread; models/, the version in
#   models/endface-student.manifest.json, the trainer's own thread rule for the first stage)
# On a 2-core CPU this takes ~T + S + F + 8 minutes; on a GPU the same budget trains far more
# steps. The thresholds written to the manifest (0.95, grown to 0.6) were chosen on the
# validation sets (seeds 4004, 4005; models/MODEL_CARD.md), not by the trainer.
# The datasets land in data/ (ignored); the test set (seed 9001) is never trained on.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
minutes=""
teacher_min=15
student_min=47
finish=0.25
finetune=30
ft_films=0.6
ft_structure=0
ft_patch=""
ft_threads="1"
out="$repo/models"
version=""
threads=0
while [ $# -gt 0 ]; do
    case "$1" in
        --minutes) minutes="$2"; shift 2 ;;
        --teacher-minutes) teacher_min="$2"; shift 2 ;;
        --student-minutes) student_min="$2"; shift 2 ;;
        --finish-share) finish="$2"; shift 2 ;;
        --finetune-minutes) finetune="$2"; shift 2 ;;
        --finetune-local-films) ft_films="$2"; shift 2 ;;
        --finetune-structure) ft_structure="$2"; shift 2 ;;
        --finetune-patch) ft_patch="$2"; shift 2 ;;
        --finetune-threads) ft_threads="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --version) version="$2"; shift 2 ;;
        --threads) threads="$2"; shift 2 ;;
        *) echo "train-shipped.sh: unknown argument $1 (use --teacher-minutes T, --student-minutes S, --minutes M, --finish-share W, --finetune-minutes F, --finetune-local-films L, --finetune-structure S, --finetune-patch P, --finetune-threads T, --out DIR, --version V, --threads N)" >&2; exit 2 ;;
    esac
done
if [ -n "${ENDFACE_BIN:-}" ]; then
    bin="$ENDFACE_BIN"   # an endface binary built from this tree (debug is slower, same output)
else
    cargo build --release --quiet --bin endface
    bin="$repo/target/release/endface"
fi
out="$(realpath -m "$out")"
if [ -z "$version" ]; then
    version="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$repo/models/endface-student.manifest.json")"
fi
if [ -n "$minutes" ]; then
    budget=(--minutes "$minutes")
else
    budget=(--teacher-minutes "$teacher_min" --student-minutes "$student_min")
fi
render() { # dir seed args...   (re-rendered when the seed or the arguments change)
    local dir="$1" seed="$2"; shift 2
    local mark
    mark="$dir/.complete-$seed-$(printf '%s ' "$@" | sha256sum | cut -c1-12)"
    if [ ! -f "$mark" ]; then
        rm -rf "$dir"
        "$bin" synth --out "$dir" --seed "$seed" "$@"
        touch "$mark"
    fi
}
# --label-train: the synthetic camera varies µm/px and pixel aspect per frame; the trainer crops
# each training frame at its own scale (a station's own data has one calibrated scale instead,
# in dataset.toml). Without it the localizer, given no aspect, refuses the non-square frames.
render data/synth-train 1001 --train-good 300 --test-good 0 --per-kind 0 --label-train
render data/synth-unlabelled 2002 --train-good 0 --test-good 40 --per-kind 8
render data/synth-test 9001 --train-good 0 --test-good 50 --per-kind 30
render data/synth-val 4004 --train-good 0 --test-good 50 --per-kind 12
if [ "$finetune" = 0 ]; then
    ENDFACE_BIN="$bin" scripts/train.sh --data data/synth-train --unlabelled data/synth-unlabelled \
        --test data/synth-test --out "$out" --work out/train "${budget[@]}" --finish-share "$finish" \
        --version "$version" --threads "$threads"
else
    ENDFACE_BIN="$bin" scripts/train.sh --data data/synth-train --unlabelled data/synth-unlabelled \
        --test data/synth-test --out out/train-stage1 --work out/train "${budget[@]}" --finish-share "$finish" \
        --threads "$threads"
    ENDFACE_BIN="$bin" scripts/train.sh --data data/synth-train --unlabelled data/synth-unlabelled \
        --test data/synth-test --out "$out" --work out/train-stage2 --teacher-ckpt out/train/teacher.pt \
        --resume-student out/train/student.pt --student-minutes "$finetune" --bn-recalibrate off \
        --local-films "$ft_films" --structure-patches "$ft_structure" ${ft_patch:+--patch "$ft_patch"} \
        --version "$version" --threads "${ft_threads:-$threads}"
fi
python3 - "$out/endface-student.manifest.json" <<'PY'
import json, sys
path = sys.argv[1]
m = json.load(open(path))
frr = m["thresholds"].get("pixel")
m["thresholds"].update(pixel=0.95, image=0.95, grow=0.6, calibrated_on=(
    "0.95 grown to 0.6: on the labelled validation sets (seeds 4004, 4005; models/MODEL_CARD.md) "
    f"the verdicts are flat over 0.93-0.95; not the test set; the trainer's FRR threshold was {frr}"))
open(path, "w").write(json.dumps(m, indent=2, allow_nan=False) + "\n")
PY
# The drift monitor's reference for the demo station (sm-upc at 0.5 µm/px, the synthetic
# camera's defaults): good frames through the new model (docs/drift.md).
render data/synth-reference 3003 --train-good 0 --test-good 200 --per-kind 0 --fiber sm-upc \
    --um-per-px 0.5 --aspect 1.0
cfg="$(mktemp --suffix=.toml)"
trap 'rm -f "$cfg"' EXIT
sed "s#^manifest = .*#manifest = \"$out/endface-student.manifest.json\"#" firmware-config/demo.toml > "$cfg"
"$bin" drift-reference --config "$cfg" data/synth-reference/test/good --out "$out/endface-student.drift.json"
