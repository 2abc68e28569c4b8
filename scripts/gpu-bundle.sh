#!/usr/bin/env bash
# Pack what a training run needs into one folder for a GPU machine that has PyTorch but no Rust
# toolchain and no network (a rented GPU, the workplace's lent accelerator): the training frames
# (PNG recompressed losslessly, checked pixel-identical, ~9 % smaller), the unlabelled frames
# (their masks left out: the trainer never reads them), optionally a trained teacher, and the
# fiber centres the localizer found for the unlabelled frames (keyed relative to the bundle, so
# the far side needs no `endface locate`). scripts/gpu-train.sh runs it there.
#   scripts/gpu-bundle.sh [--out .gpu] [--train data/synth-train] [--unlabelled data/synth-unlabelled]
#                         [--teacher out/train/teacher.pt] [--cache out/train/geometry-cache.json]
#                         [--limit-mib 64]
# The folder must be ignored by git (add it to .git/info/exclude) when it travels beside the tree.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
out=.gpu; train=data/synth-train; unl=data/synth-unlabelled; teacher=""; cache=""; limit=64
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out="$2"; shift 2 ;;
        --train) train="$2"; shift 2 ;;
        --unlabelled) unl="$2"; shift 2 ;;
        --teacher) teacher="$2"; shift 2 ;;
        --cache) cache="$2"; shift 2 ;;
        --limit-mib) limit="$2"; shift 2 ;;
        *) echo "gpu-bundle.sh: unknown argument $1 (use --out, --train, --unlabelled, --teacher, --cache, --limit-mib)" >&2; exit 2 ;;
    esac
done
py="$repo/.venv/bin/python"
[ -x "$py" ] || { echo "gpu-bundle.sh: no .venv; run scripts/setup-train.sh first" >&2; exit 2; }
[ -d "$train/train/good" ] || { echo "gpu-bundle.sh: $train has no train/good (render it: scripts/train-shipped.sh does)" >&2; exit 2; }
for f in "$teacher" "$cache"; do
    if [ -n "$f" ] && [ ! -f "$f" ]; then echo "gpu-bundle.sh: $f not found" >&2; exit 2; fi
done
rm -rf "$out"
mkdir -p "$out"
"$py" - "$train" "$unl" "$out" "${cache:-}" <<'PY'
import json, shutil, sys
from pathlib import Path
import numpy as np
from PIL import Image

train, unl, out, cache = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
IMG = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


def copy_set(src: Path, dst: Path, skip=()):
    n = 0
    for f in sorted(src.rglob("*")):
        rel = f.relative_to(src)
        if not f.is_file() or rel.parts[0] in skip or rel.name.startswith(".complete"):
            continue
        d = dst / rel
        d.parent.mkdir(parents=True, exist_ok=True)
        if f.suffix.lower() == ".png":
            im = Image.open(f)
            im.save(d, "PNG", optimize=True)
            back = Image.open(d)
            if back.mode != im.mode or not np.array_equal(np.asarray(back), np.asarray(im)):
                sys.exit(f"gpu-bundle.sh: {f} did not survive recompression unchanged")
        else:
            shutil.copyfile(f, d)
        n += f.suffix.lower() in IMG
    return n


print("training frames:", copy_set(train, out / "train"))
if unl.is_dir():
    print("unlabelled frames:", copy_set(unl, out / "unlabelled", skip=("ground_truth",)))
if cache:
    # absolute paths of the unlabelled frames -> relative to the bundle ("@BUNDLE@/unlabelled/...")
    c = json.loads(Path(cache).read_text())
    base = str(unl.resolve()) + "/"
    kept = {"@BUNDLE@/unlabelled/" + k[len(base):]: v for k, v in c.items() if k.startswith(base)}
    (out / "geometry-cache.json").write_text(json.dumps(kept))
    print("fiber centres carried:", len(kept))
PY
[ -n "$teacher" ] && cp "$teacher" "$out/teacher.pt"
bytes=$(du -sb "$out" | cut -f1)
echo "bundle $out: $((bytes / 1048576)) MiB"
if [ "$bytes" -gt $((limit * 1048576)) ]; then
    echo "gpu-bundle.sh: the bundle is over --limit-mib $limit; carry fewer frames or no teacher" >&2
    exit 3
fi
