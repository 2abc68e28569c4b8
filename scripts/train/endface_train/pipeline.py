"""The whole training pipeline: data → teacher → labelling → student → ONNX + manifest →
calibration → evaluation. Entry point of `scripts/train.sh` / `python -m endface_train`.

In: `--data DIR` (dataset-format layout; only train/good is required), optional
`--unlabelled DIR` (production images, may contain defects), optional `--test DIR`.
Out: `--out DIR` (default models/): endface-student.onnx, endface-student.manifest.json,
endface-student.report.json (figures for the model card); work files (checkpoints, the
teacher, a log) under `--work` (default out/train/).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import shutil

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from . import augment as A
from . import data as D
from . import diffusion as DF
from . import evaluate as E
from . import export as X
from . import pseudo as PS
from .nets import StudentUNet, TeacherUNet, conv_gflops, count_params
from .student import load_checkpoint, load_student, recalibrate_bn, train_student

log = logging.getLogger("endface_train")
REPO = Path(__file__).resolve().parents[3]

PROFILES = {
    "quick": dict(
        patch=96, teacher_widths=(16, 32, 48, 64), teacher_seconds=60, teacher_steps=300, teacher_batch=8,
        teacher_lr=1e-3, label_steps=4, label_t_start=0.6, label_max=4,
        student_widths=(16, 32, 64, 128, 160), student_seconds=240, student_steps=1200, student_batch=12,
        student_lr=2e-3, ema_decay=0.99, eval_teacher_max=6, holdout_frac=0.2, holdout_max=40, finish_share=0.0,
        # the smoke profile trains a fixed number of steps, so a loaded machine trains the same
        # model, only slower; the *_seconds figures become a safety stop at 3x
        fixed_steps=True,
    ),
    "full": dict(
        patch=96, teacher_widths=(32, 64, 96, 128), teacher_seconds=360, teacher_steps=30000, teacher_batch=8,
        teacher_lr=5e-4, label_steps=6, label_t_start=0.6, label_max=40,
        student_widths=(16, 32, 64, 128, 160), student_seconds=2700, student_steps=200000, student_batch=12,
        student_lr=2e-3, ema_decay=0.998, eval_teacher_max=24, holdout_frac=0.15, holdout_max=60,
        # the last quarter of the student's time on whole crops: it runs on whole crops, and
        # training on 96-px patches alone for long breaks it there (MODEL_CARD, session 11)
        finish_share=0.25,
        fixed_steps=False,
    ),
}
COMMON = dict(data_workers=0, crop_size=384, crop_um_per_px=0.66, seed=0, amp=True, seg_weight=1.0, labelled_fraction=0.15,
              checkpoint_seconds=120, target_frr=0.01, name="endface-student", version="1.0.0")


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="scripts/train.sh",
        description="Train the endface student model (teacher diffusion → labels → student UNet → ONNX + manifest).",
    )
    p.add_argument("--data", required=True, type=Path, help="dataset dir (needs train/good/; test/ used for metrics)")
    p.add_argument("--unlabelled", type=Path, help="folder of unlabelled production images (teacher labels them)")
    p.add_argument("--test", type=Path, help="dataset dir whose test/ is scored (default: --data's test/)")
    p.add_argument("--out", type=Path, default=REPO / "models", help="where the .onnx + manifest go (default models/)")
    p.add_argument("--work", type=Path, default=REPO / "out" / "train", help="checkpoints and logs (default out/train/)")
    p.add_argument("--quick", action="store_true",
                   help="tiny CPU smoke profile (< 10 min on 2 cores; a fixed number of steps, so a slow machine "
                        "trains the same model, only slower)")
    p.add_argument("--minutes", type=float, help="total training time budget (teacher ~30%%, student ~70%%)")
    p.add_argument("--um-per-px", help="camera scale X[,Y] µm/px for images whose labels.jsonl / dataset.toml "
                                       "give none (the station's calibration)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--threads", type=int, default=0,
                   help="CPU threads for torch; 0 = auto: 2, or 1 when the machine is already busy "
                        "(load average ≥ cores: 2 OpenMP threads on a contended CPU measured 8x slower)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", default=COMMON["name"])
    p.add_argument("--version", default=COMMON["version"])
    p.add_argument("--target-frr", type=float, default=COMMON["target_frr"], help="false-reject rate for thresholds")
    p.add_argument("--teacher-ckpt", type=Path, help="reuse a trained teacher instead of training one")
    p.add_argument("--resume-student", type=Path, help="continue student training from a checkpoint")
    p.add_argument("--export-only", type=Path, help="skip training: export/calibrate/evaluate this student checkpoint")
    p.add_argument("--no-labelled", action="store_true", help="ignore --unlabelled for the student (ablation)")
    p.add_argument("--bn-recalibrate", choices=["profile", "on", "off"], default="profile",
                   help="recompute BatchNorm statistics on full good crops after training (profile default: "
                        "on for --quick, where short patch training leaves them off; off for full runs, where "
                        "it cost the shipped model 0.07-0.10 verdict accuracy on the validation sets)")
    p.add_argument("--no-teacher", action="store_true", help="skip the teacher (student on pseudo-defects only; ablation)")
    p.add_argument("--test-max", type=int, help="score at most this many test images (even share per kind)")
    p.add_argument("--teacher-minutes", type=float, help="teacher training budget (overrides the profile)")
    p.add_argument("--student-minutes", type=float, help="student training budget (overrides the profile)")
    p.add_argument("--patch", type=int,
                   help="training patch side in crop pixels (default: the profile's 96); larger patches give the "
                        "network more context per sample and its BatchNorm statistics closer to a whole crop's, "
                        "at fewer steps per minute")
    p.add_argument("--finish-share", type=float,
                   help="share of the student's time budget spent last on whole crops (--finish-patch) instead "
                        "of --patch patches (default: the profile's, 0.25 for full runs, 0 for --quick; 0 = off). "
                        "The station runs the model on whole 384-px crops; a student trained long on small "
                        "patches alone marks smooth fiber there (models/MODEL_CARD.md)")
    p.add_argument("--finish-patch", type=int,
                   help="patch side of that last phase (default: the whole crop, 384)")
    p.add_argument("--batch", type=int,
                   help="student batch size on --patch patches (default: the profile's, 12). A GPU steps a "
                        "batch of 48 about as fast as one of 12")
    p.add_argument("--finish-batch", type=int,
                   help="student batch size in the last phase on whole crops (default: the profile's, 12)")
    p.add_argument("--data-workers", type=int,
                   help="processes painting pseudo-defects while the network trains (default: 0 on a CPU, "
                        "where they would take the training threads' cores; cores - 2, at most 14, on a GPU)")
    p.add_argument("--structure-patches", type=float, default=0.0,
                   help="share of training patches placed over the fiber axis or the cladding edge, where "
                        "good structure (a lit core, a dark rim) is most often mistaken for a defect (0-1)")
    p.add_argument("--local-films", type=float, default=0.0,
                   help="share (0-1) of the pseudo oil/residue films sized in µm (6-60 µm across, 4-18 grey "
                        "levels) instead of as a share of the training patch, which on whole crops made every "
                        "film tens of µm wide; > 0 also paints films more often (6 -> 10 %%). Model 1.4.0: 0.6 "
                        "in its fine-tune (models/MODEL_CARD.md)")
    p.add_argument("--grooves", type=float, default=0.0,
                   help="share (0-1) of the single pseudo scratches drawn as flat-bottomed grooves 1.5-7 µm "
                        "wide, 3-20 grey levels deep, solid, dashed or speckled, masked edge to edge (the "
                        "Gaussian pseudo scratches are mostly < 2 µm wide, and the map measured wide scratches "
                        "narrow); 0 keeps the old random stream")
    p.add_argument("--faint-spots", type=float, default=0.0,
                   help="share (0-1) of the pseudo spots drawn as faint dust / shallow pits sized in µm (1-6 µm, "
                        "3-15 %% lighter or darker; the other spots are 25-95 %% darker or clearly brighter), "
                        "alone or a few together; 0 keeps the old random stream")
    p.add_argument("--halo-mask", choices=("ring", "spot"), default="ring",
                   help="what a pseudo spot's halo is: 'ring' marks the ring of light around it as defect too "
                        "(models up to 1.4.0), 'spot' marks the spot alone (the ring is lighting; a pit is "
                        "sized without it)")
    p.add_argument("--camera-response", type=float, default=0.0,
                   help="share (0-1) of training patches given another camera's response, alike on input and "
                        "target: over-exposure with clipping, under-exposure gained back up, posterization, "
                        "JPEG, row/column banding, column offsets, stuck pixels (augment.camera_response); "
                        "0 keeps the old random stream")
    p.add_argument("--crack-head", action="store_true",
                   help="train (or add to a resumed student) a third output, \"crack\": the probability that "
                        "an anomalous pixel belongs to a crack rather than a scratch or a spot (pseudo-defect "
                        "\"crack\" family as positives); the station grades such a defect by its size, not its width")
    p.add_argument("--install-anyway", action="store_true",
                   help="install the model into --out even when it fails the install check (it does not "
                        "find the trainer's own pseudo-defects on held-out good images better than chance)")
    p.add_argument("--crack-head-only", action="store_true",
                   help="with --crack-head and --resume-student: train only the crack head; the resumed "
                        "network (reconstruction, anomaly map) is kept exactly")
    args = p.parse_args(argv)
    # argument checks that need no data: one usage line and exit status 2, before any work
    crop = COMMON["crop_size"]
    if args.patch is not None and (not 32 <= args.patch <= crop or args.patch % 32):
        p.error(f"--patch must be a multiple of 32 between 32 and {crop} (got {args.patch})")
    if args.finish_patch is not None and (not 32 <= args.finish_patch <= crop or args.finish_patch % 32):
        p.error(f"--finish-patch must be a multiple of 32 between 32 and {crop} (got {args.finish_patch})")
    if args.finish_share is not None and not 0.0 <= args.finish_share <= 0.9:
        p.error(f"--finish-share must be in [0, 0.9] (got {args.finish_share})")
    for name in ("batch", "finish_batch"):
        v = getattr(args, name)
        if v is not None and not 2 <= v <= 512:
            p.error(f"--{name.replace('_', '-')} must be between 2 and 512 (got {v})")
    if args.data_workers is not None and not 0 <= args.data_workers <= 64:
        p.error(f"--data-workers must be between 0 and 64 (got {args.data_workers})")
    if not 0.0 <= args.local_films <= 1.0:
        p.error(f"--local-films must be in [0, 1] (got {args.local_films})")
    if not 0.0 <= args.camera_response <= 1.0:
        p.error(f"--camera-response must be in [0, 1] (got {args.camera_response})")
    if not 0.0 <= args.faint_spots <= 1.0:
        p.error(f"--faint-spots must be in [0, 1] (got {args.faint_spots})")
    if not 0.0 <= args.grooves <= 1.0:
        p.error(f"--grooves must be in [0, 1] (got {args.grooves})")
    if not 0.0 <= args.structure_patches <= 1.0:
        p.error(f"--structure-patches must be in [0, 1] (got {args.structure_patches})")
    if args.crack_head_only and not args.resume_student:
        p.error("--crack-head-only needs --resume-student (the network whose map it keeps)")
    return args


def setup_logging(work: Path):
    work.mkdir(parents=True, exist_ok=True)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    log.setLevel(logging.INFO)
    log.handlers.clear()
    for h in (logging.StreamHandler(sys.stderr), logging.FileHandler(work / "train.log")):
        h.setFormatter(fmt)
        log.addHandler(h)


def split_holdout(frames, frac, cap, seed):
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(frames))
    n = int(min(cap, max(3, round(frac * len(frames)))))
    if len(frames) - n < 3:
        raise ValueError(f"need at least 6 images in train/good (have {len(frames)}): 3 to train, 3 to calibrate")
    hold = [frames[i] for i in sorted(idx[:n])]
    train = [frames[i] for i in sorted(idx[n:])]
    return train, hold


def crops_of(frames, cfg, with_masks=False):
    s, size = cfg["crop_um_per_px"], cfg["crop_size"]
    crops, masks = [], []
    for fr in frames:
        px = fr.load()
        crops.append(D.contract_crop(px, fr, s, size).astype(np.float32))
        if with_masks:
            m = fr.load_mask(px.shape[:2])
            masks.append(D.crop_mask(m, fr, s, size))
    return (np.stack(crops), np.stack(masks)) if with_masks else np.stack(crops)


def teacher_maps(teacher, crops, cfg, device, sigma=1.0):
    recs, maps, times = [], [], []
    for c in crops:
        t = time.time()
        rec = DF.reconstruct(teacher, torch.from_numpy(c)[None, None].to(device), cfg["label_steps"],
                             cfg["label_t_start"], seed=cfg["seed"])[0, 0].cpu().numpy()
        times.append(time.time() - t)
        recs.append(rec)
        maps.append(E.abs_diff_map(c, rec, sigma))
    return np.stack(recs), np.stack(maps), times


INSTALL_MIN_PSEUDO_AUROC = 0.6
INSTALL_MIN_PSEUDO_RECALL = 0.25


def install_check(onnx_student, hold_crops, disk, cfg, image_threshold=None, min_crops=24):
    """Would the model work at the thresholds its manifest recommends? The trainer's own
    pseudo-defects are painted on held-out good crops (never trained on; repeated with new
    defects up to `min_crops`) and two things are measured inside the contact zone:

    - the anomaly map's pixel AUROC. A model stuck in the identity shortcut (its reconstruction
      is its input, its map flat) scores near chance (0.54 on the quick profile's degenerate
      seed 0 / 1 thread); working quick runs score 0.78-0.81, model 1.3.0 0.89, 1.4.0 0.92.
    - the share of painted crops whose image score exceeds `image_threshold` (the calibrated
      one, set so that held-out good crops pass; the station fails a frame when its score is
      above it). A model that marks smooth good fiber saturates on good crops too, the
      threshold lands at 1.0 and almost nothing is caught: 0.01 and 0.11 for session 11's
      broken runs A and B (pixel AUROC 0.80 and 0.90, which the first check let through),
      0.82 for model 1.2.0, 0.92 for 1.3.0, 0.88 for 1.4.0 (shipped; its check paints µm-sized
      films too)."""
    from sklearn.metrics import roc_auc_score

    if not len(hold_crops):
        return {"ok": True, "skipped": "no held-out good images"}
    rng = np.random.default_rng(cfg["seed"] + 29)
    size = cfg["crop_size"]
    if image_threshold is None:
        good = [float(onnx_student(c)[1][disk].max()) for c in hold_crops]
        image_threshold = float(np.quantile(good, 1 - cfg["target_frr"], method="higher"))
    share = cfg.get("local_film_share", 0.0)
    grooves = cfg.get("groove_share", 0.0)
    faint = cfg.get("faint_spot_share", 0.0)
    halo_in_mask = cfg.get("halo_mask", "ring") == "ring"
    scores, labels, img_scores, n = [], [], [], 0
    while n < max(min_crops, len(hold_crops)):
        for c in hold_crops:
            x, m, _ = PS.paint(c, rng, (size / 2.0, size / 2.0), cfg["crop_um_per_px"], p_clean=0.0,
                               weights=PS.weights_for(share), local_film_share=share, groove_share=grooves,
                               faint_spot_share=faint, halo_in_mask=halo_in_mask)
            m = m & disk
            if not m.any():
                continue
            _, amap = onnx_student(x)
            scores.append(amap[disk])
            labels.append(m[disk])
            img_scores.append(float(amap[disk].max()))
            n += 1
        if not scores:
            return {"ok": True, "skipped": "no pseudo-defect inside the contact zone"}
    auc = float(roc_auc_score(np.concatenate(labels), np.concatenate(scores)))
    recall = float(np.mean(np.asarray(img_scores) > image_threshold))
    problems = []
    if auc < INSTALL_MIN_PSEUDO_AUROC:
        problems.append(f"it finds the trainer's own pseudo-defects no better than chance (pixel AUROC {auc:.3f} < "
                        f"{INSTALL_MIN_PSEUDO_AUROC}): it most likely reconstructs its input")
    if recall < INSTALL_MIN_PSEUDO_RECALL:
        problems.append(f"at its calibrated image threshold {image_threshold:.4f} it catches {recall:.0%} of them "
                        f"(< {INSTALL_MIN_PSEUDO_RECALL:.0%}): it scores good held-out fiber as high as defects, "
                        "so any threshold that passes good parts misses defects")
    return {"ok": not problems, "problems": problems, "pseudo_defect_pixel_auroc": round(auc, 4),
            "pseudo_defect_image_recall": round(recall, 4), "image_threshold": round(image_threshold, 6),
            "crops": n, "min_pseudo_defect_pixel_auroc": INSTALL_MIN_PSEUDO_AUROC,
            "min_pseudo_defect_image_recall": INSTALL_MIN_PSEUDO_RECALL}


def finish_plan(cfg, args):
    """(share, patch) of the last phase on whole crops; share 0 = no such phase."""
    share = cfg.get("finish_share", 0.0) if args.finish_share is None else args.finish_share
    patch = args.finish_patch or cfg["crop_size"]
    if args.crack_head_only or patch <= cfg["patch"]:
        return 0.0, patch
    return float(share), patch


def train_student_phases(sampler, labelled, triples, cfg, args, device):
    """The student on `cfg['patch']` patches, then (full profile) its last `finish_share` of the
    time budget on whole crops, resumed from the first phase's checkpoint: the cosine schedule
    goes on from where the first phase ended (a low learning rate), the optimizer state and the
    weight average carry over. Session 11 measured this as a second run (model F): on the
    validation sets image AUROC up 0.010 / 0.003 and the trainer's pseudo-defect pixel AUROC
    0.862 -> 0.938 against the patch-only model; and 45 k more steps on 96-px patches instead
    made the model mark smooth fiber as wide scratches on whole frames."""
    ckpt = args.work / "student.pt"
    share, fpatch = finish_plan(cfg, args)
    if share <= 0.0:
        return train_student(sampler, labelled, cfg, device, ckpt, resume=args.resume_student)
    budget = cfg["student_seconds"]
    cfg1 = dict(cfg, student_seconds=budget * (1.0 - share))
    _, info1 = train_student(sampler, labelled, cfg1, device, ckpt, resume=args.resume_student)
    log.info("student: last phase on %d-px %s for %.0f s (%.0f %% of the budget)", fpatch,
             "whole crops" if fpatch == cfg["crop_size"] else "patches", budget * share, 100 * share)
    wsampler = copy.copy(sampler)  # the same frames (already in memory), larger windows
    wsampler.patch = fpatch
    wsampler.rng = np.random.default_rng(cfg["seed"] + 13)
    wlabelled = A.LabelledPatches(triples, fpatch, seed=cfg["seed"] + 17) if triples else None
    cfg2 = dict(cfg, student_seconds=budget * share, student_steps=info1["steps"] + cfg["student_steps"],
                fixed_steps=False, student_batch=cfg.get("finish_batch", cfg["student_batch"]))
    model, info2 = train_student(wsampler, wlabelled, cfg2, device, ckpt, resume=ckpt)
    info = dict(info1, steps=info2["steps"], seconds=round(info1["seconds"] + info2["seconds"], 1),
                finish={"patch": fpatch, "share": share, "steps": info2["steps"] - info1["steps"],
                        "seconds": info2["seconds"]})
    return model, info


def install_outputs(files, out: Path) -> list[Path]:
    """Move the staged model files into `out`: the report, then the .onnx, the manifest last
    (each by an atomic rename in `out`). A stop between the .onnx and the manifest leaves a pair
    the station refuses by its sha256 check, never a model it would run with the wrong
    thresholds."""
    order = sorted(files, key=lambda p: (p.name.endswith(".manifest.json"), p.name.endswith(".onnx")))
    finals = []
    for f in order:
        dst = out / f.name
        tmp = out / (f.name + ".tmp")
        shutil.copyfile(f, tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dst)
        finals.append(dst)
    return sorted(finals)


def student_maps(onnx_student, crops):
    recs, maps, times = [], [], []
    for c in crops:
        t = time.time()
        r, a = onnx_student(c)
        times.append(time.time() - t)
        recs.append(r)
        maps.append(a)
    return np.stack(recs), np.stack(maps), times


def main(argv=None):
    args = parse_args(argv)
    setup_logging(args.work)
    t_start = time.time()
    if args.threads <= 0:
        ncpu = os.cpu_count() or 1
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
        args.threads = 1 if load >= ncpu - 0.5 else min(2, ncpu)
    torch.set_num_threads(args.threads)
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    cfg = dict(COMMON)
    cfg.update(PROFILES["quick" if args.quick else "full"])
    cfg["seed"] = args.seed
    cfg["target_frr"] = args.target_frr
    if device.type == "cpu" and not torch.backends.mkldnn.is_available():
        cfg["amp"] = False
    if device.type == "cuda":
        # the GPU trains; painting pseudo-defects moves to worker processes (a 96-px patch takes
        # ~2 ms, a whole 384-px crop ~26 ms of one core), as many as the machine has cores to spare
        cfg["data_workers"] = max(1, min(14, (os.cpu_count() or 2) - 2))
    if args.data_workers is not None:
        cfg["data_workers"] = args.data_workers
    if args.batch is not None:
        cfg["student_batch"] = args.batch
    if args.finish_batch is not None:
        cfg["finish_batch"] = args.finish_batch
    if args.minutes or args.teacher_minutes is not None or args.student_minutes is not None:
        cfg["fixed_steps"] = False  # a stated time budget: fit the schedule to it
    if args.minutes:
        total = args.minutes * 60
        cfg["teacher_seconds"] = 0.3 * total
        cfg["student_seconds"] = 0.7 * total
    if args.teacher_minutes is not None:
        cfg["teacher_seconds"] = 60 * args.teacher_minutes
    if args.student_minutes is not None:
        cfg["student_seconds"] = 60 * args.student_minutes
    log.info("profile %s on %s (%d threads); crop %dx%d at %.2f µm/px", "quick" if args.quick else "full", device,
             args.threads, cfg["crop_size"], cfg["crop_size"], cfg["crop_um_per_px"])
    scale = None
    if args.um_per_px:
        v = [float(t) for t in args.um_per_px.split(",")]
        scale = (v[0], v[-1])

    # ------------------------------------------------------------------ data
    ds = D.read_dataset(args.data)
    good = ds["train"]
    train_frames, hold_frames = split_holdout(good, cfg["holdout_frac"], cfg["holdout_max"], cfg["seed"])
    test_frames = D.read_dataset(args.test, require_train=False)["test"] if args.test else ds["test"]
    unl = D.read_unlabelled(args.unlabelled) if args.unlabelled else []
    geo_cache = args.work / "geometry-cache.json"
    # frames that know no scale (e.g. a bare folder of production images) take the station's
    default_scale = scale
    if default_scale is None:
        cfg_toml = D._read_toml(args.data)
        if "um_per_px" in cfg_toml:
            default_scale = (float(cfg_toml["um_per_px"]),) * 2
    # labelled test frames must resolve (their labels give the truth); unlabelled training and
    # production frames the localizer refuses are dropped, as a station would refuse them
    D.resolve_geometry(test_frames, REPO, geo_cache, default_scale)
    D.resolve_geometry(train_frames + hold_frames + unl, REPO, geo_cache, default_scale, strict=False)
    ok = lambda fr: fr.um_per_px_x is not None and fr.center_in_frame is not None  # noqa: E731
    train_frames, hold_frames, unl = ([f for f in fs if ok(f)] for fs in (train_frames, hold_frames, unl))
    log.info("data: %d train good, %d held-out good (calibration), %d test, %d unlabelled", len(train_frames),
             len(hold_frames), len(test_frames), len(unl))
    if args.patch is not None:
        cfg["patch"] = args.patch
    cfg["local_film_share"] = args.local_films
    cfg["groove_share"] = args.grooves
    cfg["faint_spot_share"] = args.faint_spots
    cfg["halo_mask"] = args.halo_mask
    cfg["camera_share"] = args.camera_response
    sampler = A.PairSampler(train_frames, cfg["crop_um_per_px"], cfg["crop_size"], cfg["patch"], seed=cfg["seed"],
                            p_structure=args.structure_patches, crack_classes=args.crack_head or args.crack_head_only,
                            local_film_share=args.local_films, groove_share=args.grooves,
                            camera_share=args.camera_response, faint_spot_share=args.faint_spots,
                            halo_in_mask=args.halo_mask == "ring")
    cfg["crack_head"] = args.crack_head or args.crack_head_only
    cfg["crack_head_only"] = args.crack_head_only
    hold_crops = crops_of(hold_frames, cfg)
    disk = D.contact_disk(cfg["crop_size"], cfg["crop_um_per_px"])
    report = {"profile": "quick" if args.quick else "full", "device": str(device), "threads": args.threads,
              "platform": platform.platform(), "torch": torch.__version__, "data": {
                  "train": str(args.data), "train_good": len(train_frames), "holdout_good": len(hold_frames),
                  "test": str(args.test or args.data), "test_images": len(test_frames),
                  "unlabelled": str(args.unlabelled) if args.unlabelled else None, "unlabelled_images": len(unl)}}

    # ------------------------------------------------------------------ teacher
    teacher = None
    tinfo = {}
    labelled = None
    triples = []
    # --export-only with --teacher-ckpt loads the teacher too: its figures go beside the student's
    if args.export_only is None or args.teacher_ckpt:
        if args.no_teacher:
            pass
        elif args.teacher_ckpt:
            ck = load_checkpoint(args.teacher_ckpt, device)
            teacher = TeacherUNet(ck["widths"]).to(device)
            teacher.load_state_dict(ck["model"])
            teacher.eval()
            tinfo = ck.get("info", {})
            log.info("teacher loaded from %s", args.teacher_ckpt)
        else:
            teacher, tinfo = DF.train_teacher(sampler, cfg, device, args.work / "teacher.pt")
    if teacher is not None:
        tinfo["gflops_384_per_step"] = round(conv_gflops(teacher.cpu(), *(torch.zeros(1, 1, 384, 384),) * 2,
                                                         torch.zeros(1)), 2)
        teacher.to(device)
        tinfo["params"] = count_params(teacher)
        tinfo["ddim_steps"] = cfg["label_steps"]
        tinfo["t_start"] = cfg["label_t_start"]
        # teacher threshold from held-out good images (same rule as the student's)
        n_cal = min(len(hold_crops), 12)
        _, hold_tmaps, ttimes = teacher_maps(teacher, hold_crops[:n_cal], cfg, device)
        tcal = E.calibrate(hold_tmaps, disk, cfg["target_frr"])
        tinfo["threshold"] = tcal["pixel"]
        tinfo["calibrated_on_good"] = n_cal
        log.info("teacher: %.2f s/image (%d DDIM steps), threshold %.4f", float(np.median(ttimes)),
                 cfg["label_steps"], tcal["pixel"])

        # -------------------------------------------------------------- labelling
        if unl and not args.no_labelled and args.export_only is None:
            order = np.random.default_rng(cfg["seed"] + 5).permutation(len(unl))
            unl_use = [unl[i] for i in order[: cfg["label_max"]]]
            ucrops = crops_of(unl_use, cfg)
            urecs, umaps, utimes = teacher_maps(teacher, ucrops, cfg, device)
            from scipy import ndimage

            thr = tcal["pixel"]
            triples = []
            n_flag = 0
            for y, r, d in zip(ucrops, urecs, umaps):
                m = (d > thr) & disk
                if not m.any():
                    continue  # nothing found: the teacher's silence is no proof of a clean image
                n_flag += 1
                # trust the teacher where it found something: the flagged pixels (positives, and
                # the reconstruction target there) plus a thin ring of negatives around them.
                # Elsewhere the weight is 0: a faint defect the teacher missed must not be
                # taught as "clean".
                near = ndimage.binary_dilation(m, iterations=3)
                w = near.astype(np.float32)
                target = np.where(near, r, y).astype(np.float32)
                triples.append((y, target, m.astype(np.float32), w))
            labelled = A.LabelledPatches(triples, cfg["patch"], seed=cfg["seed"] + 7) if triples else None
            tinfo["labelled_images"] = len(ucrops)
            tinfo["labelled_with_defects"] = n_flag
            tinfo["label_seconds_per_image"] = round(float(np.median(utimes)), 3)
            log.info("labelling: %d images, %d with a defect (used), %.2f s/image", len(ucrops), n_flag,
                     float(np.median(utimes)))
        report["teacher"] = tinfo

    # ------------------------------------------------------------------ student
    if args.export_only is None:
        student, sinfo = train_student_phases(sampler, labelled, triples, cfg, args, device)
    else:
        student, sinfo = load_student(args.export_only)
        log.info("student loaded from %s", args.export_only)
    student = student.cpu().float().eval()
    bn_on = args.bn_recalibrate == "on" or (args.bn_recalibrate == "profile" and args.quick)
    if train_frames and bn_on:
        n_bn = recalibrate_bn(student, crops_of(train_frames, cfg), seed=cfg["seed"] + 11)
        student.eval()
        sinfo["bn_recalibrated_on"] = n_bn
        log.info("student: BatchNorm statistics recomputed on %d full good crops", n_bn)
    sinfo["params"] = count_params(student)
    sinfo["gflops_384"] = round(conv_gflops(student, torch.zeros(1, 1, cfg["crop_size"], cfg["crop_size"])), 2)
    sinfo["widths"] = list(student.widths)
    report["student"] = sinfo
    log.info("student: %d parameters, %.2f GFLOPs at %d²", sinfo["params"], sinfo["gflops_384"], cfg["crop_size"])

    # ------------------------------------------------------------------ export + calibration
    # Everything is written to a staging folder first and moved into --out at the very end
    # (install_outputs), so a run that stops half way, fails or fails the install check leaves
    # --out (by default the station's models/) as it was; before, the new .onnx sat beside the
    # old manifest for the whole calibration and evaluation.
    args.out.mkdir(parents=True, exist_ok=True)
    stage = args.work / "export"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    onnx_path = stage / f"{args.name}.onnx"
    exp = X.export_onnx(student, onnx_path, cfg["crop_size"])
    report["export"] = exp
    ost = X.OnnxStudent(onnx_path, threads=args.threads)
    _, hold_smaps, _ = student_maps(ost, hold_crops)
    cal = E.calibrate(hold_smaps, disk, cfg["target_frr"])
    thresholds = {"pixel": round(cal["pixel"], 6), "image": round(cal["image"], 6),
                  "target_false_reject_rate": cfg["target_frr"],
                  "calibrated_on": f"{cal['n']} held-out good images of {args.data.name} (train/good, not trained on)"}
    log.info("calibration: image/pixel threshold %.4f on %d held-out good images", cal["image"], cal["n"])

    # ------------------------------------------------------------------ evaluation
    metrics = {}
    if test_frames:
        ok = [f for f in test_frames if f.kind == "good" or f.mask_path is not None]
        if len(ok) < len(test_frames):
            log.warning("%d defect test images have no mask; left out of the metrics", len(test_frames) - len(ok))
        if args.test_max and len(ok) > args.test_max:
            ks = sorted({f.kind for f in ok})
            per = max(1, args.test_max // len(ks))
            ok = [f for k in ks for f in [g for g in ok if g.kind == k][:per]]
        tcrops, tmasks = crops_of(ok, cfg, with_masks=True)
        kinds = [f.kind for f in ok]
        srecs, smaps, stimes = student_maps(ost, tcrops)
        sm, sscores = E.all_metrics(smaps, tmasks, kinds, disk, cal["pixel"], cal["image"])
        sm["seconds_per_image"] = round(float(np.median(stimes)), 4)
        sm["runtime"] = f"onnxruntime CPU, {args.threads} threads, 1x1x{cfg['crop_size']}² input"
        # reconstruction quality: smoothed |input − reconstruction| image score, good vs defective
        sd = E.abs_diff_map(tcrops, srecs, 1.0)
        sdscore = E.image_scores(sd, disk)
        isg = np.array([k == "good" for k in kinds])
        sm["recon_error_score"] = {"good_mean": float(sdscore[isg].mean()) if isg.any() else None,
                                   "defect_mean": float(sdscore[~isg].mean()) if (~isg).any() else None}
        metrics["student"] = sm
        metrics["test_set"] = {"dataset": str(args.test or args.data), "images": len(ok),
                               "kinds": {k: kinds.count(k) for k in sorted(set(kinds))},
                               "space": "crop (384x384 at 0.66 µm/px), pixels inside the 250 µm contact zone",
                               "centre": "labels.jsonl center when present, else endface locate / Python locator"}
        if teacher is not None and cfg["eval_teacher_max"] > 0:
            # the teacher is slow: score it on an even subset of good + every kind
            rng = np.random.default_rng(1)
            sel = []
            for k in sorted(set(kinds)):
                idx = [i for i, kk in enumerate(kinds) if kk == k]
                per = max(1, cfg["eval_teacher_max"] // len(set(kinds)))
                sel += list(rng.choice(idx, min(per, len(idx)), replace=False))
            sel = sorted(sel)
            _, tmaps, ttimes = teacher_maps(teacher, tcrops[sel], cfg, device)
            tm, _ = E.all_metrics(tmaps, tmasks[sel], [kinds[i] for i in sel], disk, tcal["pixel"], tcal["image"])
            tm["seconds_per_image"] = round(float(np.median(ttimes)), 3)
            tm["runtime"] = f"torch {device}, {args.threads} threads, {cfg['label_steps']} DDIM steps"
            # the student on the very same subset, for a like-for-like row
            sm_sub, _ = E.all_metrics(smaps[sel], tmasks[sel], [kinds[i] for i in sel], disk, cal["pixel"], cal["image"])
            metrics["teacher_subset"] = {"images": len(sel), "teacher": tm, "student": sm_sub}
        log.info("student test: image AUROC %.4f pixel AUROC %.4f AUPRO %.4f IoU %.3f (%.3f s/image)",
                 sm["all"].get("image_auroc", float("nan")), sm["all"]["pixel_auroc"], sm["all"]["aupro_0.3"],
                 sm["all"]["iou"]["pooled"], sm["seconds_per_image"])
    training = {
        "method": "teacher: conditional diffusion UNet (v-pred, DDIM) trained on pseudo-defect pairs labels "
                  "unlabelled images; student: UNet with reconstruction + segmentation heads trained on "
                  "pseudo-defect pairs + teacher-labelled pairs",
        "data": report["data"],
        "profile": report["profile"],
        "pseudo_defects": "Perlin-mask texture blends (DRAEM-style, procedural textures), curved/broken/faint "
                          "scratches, spots/clusters, films, edge chips"
                          + (f"; {cfg['local_film_share']:.0%} of films sized in µm (6-60 µm)"
                             if cfg.get("local_film_share", 0) > 0 else "")
                          + (f"; {cfg['groove_share']:.0%} of single scratches as flat grooves 1.5-7 µm wide"
                             if cfg.get("groove_share", 0) > 0 else "")
                          + (f"; {cfg['faint_spot_share']:.0%} of spots as faint dust 1-6 µm (3-15 %)"
                             if cfg.get("faint_spot_share", 0) > 0 else "")
                          + ("; a spot's halo ring not marked as defect" if cfg.get("halo_mask", "ring") == "spot" else "")
                          + (f"; {cfg['camera_share']:.0%} of patches with another camera's response (clipping, "
                             "re-gained under-exposure, posterization, JPEG, banding, column offsets, stuck pixels)"
                             if cfg.get("camera_share", 0) > 0 else ""),
        "student": {k: sinfo[k] for k in ("params", "gflops_384", "steps", "seconds", "batch", "patch", "finish")
                    if k in sinfo},
        "teacher": {k: tinfo[k] for k in ("params", "steps", "seconds", "ddim_steps") if k in tinfo},
        "device": str(device),
        "seed": cfg["seed"],
        "command": " ".join(["scripts/train.sh"] + (argv if argv is not None else sys.argv[1:])),
    }
    short = {}
    if "student" in metrics:
        a = metrics["student"]["all"]
        short = {"test_dataset": metrics["test_set"]["dataset"], "space": metrics["test_set"]["space"],
                 "image_auroc": a.get("image_auroc"), "pixel_auroc": a["pixel_auroc"], "aupro_0.3": a["aupro_0.3"],
                 "iou_pooled": a["iou"]["pooled"], "false_reject_rate_test_good": a["false_reject_rate_test_good"],
                 "per_kind": {k: {"image_auroc": v.get("image_auroc"), "pixel_auroc": v["pixel_auroc"],
                                  "aupro_0.3": v["aupro_0.3"], "iou_pooled": v["iou"]["pooled"]}
                              for k, v in metrics["student"].items() if isinstance(v, dict) and k not in ("all", "recon_error_score")}}
    man = X.write_manifest(onnx_path, name=args.name, version=args.version, size=cfg["crop_size"],
                           crop_um_per_px=cfg["crop_um_per_px"], thresholds=thresholds,
                           training=_clean(training), metrics=_clean(short),
                           crack_output=getattr(student, "crack_head", False))
    report["metrics"] = metrics
    report["thresholds"] = thresholds
    report["calibration_good_scores"] = cal["good_scores"]
    report["wall_seconds"] = round(time.time() - t_start, 1)
    check = install_check(ost, hold_crops, disk, cfg, image_threshold=cal["image"])
    report["install_check"] = check
    rp = stage / f"{args.name}.report.json"
    rp.write_text(json.dumps(_clean(report), indent=2) + "\n")
    if not check["ok"]:
        log.error("install check (the trainer's pseudo-defects painted into held-out good crops, %d tries): %s. "
                  "NOT installed into %s (left in %s). Train with another --seed, on more good images, or, when "
                  "the model marks good fiber, with --finish-share (whole crops last); --install-anyway installs "
                  "it regardless", check["crops"], "; ".join(check["problems"]), args.out, stage)
        if not args.install_anyway:
            return 3
    else:
        log.info("install check: pseudo-defect pixel AUROC %s, %s of them caught at the image threshold, on %s "
                 "held-out crops", check.get("pseudo_defect_pixel_auroc"), check.get("pseudo_defect_image_recall"),
                 check.get("crops"))
    finals = install_outputs([onnx_path, man, rp], args.out)
    log.info("wrote %s (%.0f s total)", ", ".join(str(f) for f in finals), time.time() - t_start)
    return 0


def _clean(o):
    """JSON-safe: NaN → None, numpy scalars → Python."""
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, (np.floating, float)):
        v = float(o)
        return None if not np.isfinite(v) else v
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, Path):
        return str(o)
    return o


if __name__ == "__main__":
    sys.exit(main())
