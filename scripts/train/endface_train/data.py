"""Dataset reading and the model-input crop.

In: a dataset directory in the layout of docs/dataset-format.md (MVTec AD layout + optional
`dataset.toml` and `labels.jsonl`), or a flat folder of unlabelled images.
Out: `Frame` records (8-bit gray or RGB pixels, fiber `center_in_frame`, `um_per_px_x/y`,
defect kind, ground-truth mask path) and crops sampled exactly as CONTRACTS.md prescribes:

    crop pixel (u=col, v=row) samples the frame at
      x = cx + (u - (W-1)/2) * s / umx,   y = cy + (v - (H-1)/2) * s / umy
    bilinear; samples outside the frame clamp to the nearest edge pixel.

Where the fiber centre comes from (first that applies):
  1. `labels.jsonl` `center` of that image;
  2. `endface locate --json IMAGE` (Rust binary: $ENDFACE_BIN, target/release, target/debug, PATH);
  3. a small Python locator here (ring matched filter on the gradient magnitude, using the known
     125 µm cladding diameter).
Scale (µm/px, x and y): the image's labels (`um_per_px_x`/`um_per_px_y` or `um_per_px`), then
`dataset.toml` `um_per_px`, then a command-line override, else the locate output's cladding radius.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import numpy as np
from PIL import Image

log = logging.getLogger("endface_train")

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp"}
CLADDING_RADIUS_UM = 62.5
CONTACT_RADIUS_UM = 125.0


@dataclasses.dataclass
class Frame:
    path: Path  # absolute path of the image
    rel: str  # path relative to the dataset root (posix), as labels.jsonl names it
    kind: str  # "good" or the defect kind ("unlabelled" for production images)
    split: str  # "train" | "test" | "unlabelled"
    center_in_frame: tuple[float, float] | None = None  # (x, y) px, CONTRACTS pixel convention
    um_per_px_x: float | None = None
    um_per_px_y: float | None = None
    mask_path: Path | None = None
    labels: dict | None = None

    def load(self) -> np.ndarray:
        """Pixels as uint8, H x W (gray) or H x W x 3 (RGB)."""
        return load_image(self.path)

    def load_mask(self, shape: tuple[int, int]) -> np.ndarray:
        """Ground-truth mask as bool H x W; all False for good images without a mask file."""
        if self.mask_path is None:
            if self.kind == "good":
                return np.zeros(shape, dtype=bool)
            raise FileNotFoundError(
                f"{self.rel}: defect image has no mask (expected ground_truth/{self.kind}/"
                f"{self.path.stem}_mask.png); pixel metrics need one"
            )
        m = np.asarray(Image.open(self.mask_path).convert("L"))
        if m.shape != shape:
            raise ValueError(f"{self.mask_path}: mask size {m.shape} differs from image size {shape}")
        return m > 127


def load_image(path: Path) -> np.ndarray:
    im = Image.open(path)
    if im.mode in ("L", "I;16", "I", "F", "1", "P", "LA"):
        if im.mode == "P":
            im = im.convert("RGB")
            return np.asarray(im, dtype=np.uint8)
        if im.mode in ("I;16", "I", "F"):
            a = np.asarray(im, dtype=np.float64)
            a = a / max(1.0, a.max()) * 255.0
            return a.astype(np.uint8)
        return np.asarray(im.convert("L"), dtype=np.uint8)
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


def to_gray_u8(px: np.ndarray) -> np.ndarray:
    """RGB → luma exactly like the Rust `image` crate (Rec.709 integer weights, floor)."""
    if px.ndim == 2:
        return px
    p = px.astype(np.uint32)
    return ((2126 * p[..., 0] + 7152 * p[..., 1] + 722 * p[..., 2]) // 10000).astype(np.uint8)


def rgb_to_gray_f(px: np.ndarray) -> np.ndarray:
    """Float version of `to_gray_u8` (for augmented RGB in [0,1])."""
    return 0.2126 * px[..., 0] + 0.7152 * px[..., 1] + 0.0722 * px[..., 2]


# ------------------------------------------------------------------------------ the crop


def crop_coords(
    center_in_frame,
    um_per_px_x: float,
    um_per_px_y: float,
    crop_um_per_px: float,
    crop_w: int,
    crop_h: int,
    affine=None,
    shift_px=(0.0, 0.0),
    window=None,
):
    """Frame coordinates (x, y) for every crop pixel (float64 arrays, shape h x w).

    `affine` (2x2, crop px → crop px, about the crop centre) and `shift_px` implement the
    geometric augmentation; identity/zero gives exactly the CONTRACTS.md crop. `window`
    = (u0, v0, w, h) samples only that sub-window of the full crop (a training patch).
    """
    cx, cy = center_in_frame
    u0, v0, w, h = window if window is not None else (0, 0, crop_w, crop_h)
    du = np.arange(u0, u0 + w, dtype=np.float64) - (crop_w - 1) / 2.0
    dv = np.arange(v0, v0 + h, dtype=np.float64) - (crop_h - 1) / 2.0
    du, dv = np.meshgrid(du, dv)
    if affine is not None:
        a = np.asarray(affine, dtype=np.float64)
        du, dv = a[0, 0] * du + a[0, 1] * dv, a[1, 0] * du + a[1, 1] * dv
    du = du + shift_px[0]
    dv = dv + shift_px[1]
    x = cx + du * crop_um_per_px / um_per_px_x
    y = cy + dv * crop_um_per_px / um_per_px_y
    return x, y


def bilinear_clamp(img: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear sample of img (H x W or H x W x C, any dtype) at float coords, clamp-to-edge.

    Returns float32 in the image's units (0..255 for uint8).
    """
    hgt, wid = img.shape[:2]
    x = np.clip(x, 0.0, wid - 1.0)
    y = np.clip(y, 0.0, hgt - 1.0)
    x0 = np.floor(x).astype(np.int64)
    y0 = np.floor(y).astype(np.int64)
    x1 = np.minimum(x0 + 1, wid - 1)
    y1 = np.minimum(y0 + 1, hgt - 1)
    fx = (x - x0).astype(np.float32)
    fy = (y - y0).astype(np.float32)
    if img.ndim == 3:
        fx = fx[..., None]
        fy = fy[..., None]
    f = img.astype(np.float32, copy=False) if img.dtype != np.float32 else img
    top = f[y0, x0] * (1 - fx) + f[y0, x1] * fx
    bot = f[y1, x0] * (1 - fx) + f[y1, x1] * fx
    return top * (1 - fy) + bot * fy


def contract_crop(frame_u8: np.ndarray, fr: "Frame", crop_um_per_px: float, size: int) -> np.ndarray:
    """The CONTRACTS.md model-input crop as float32 in [0,1] (gray; RGB converted first)."""
    gray = to_gray_u8(frame_u8)
    x, y = crop_coords(fr.center_in_frame, fr.um_per_px_x, fr.um_per_px_y, crop_um_per_px, size, size)
    return bilinear_clamp(gray, x, y) / 255.0


def crop_mask(mask: np.ndarray, fr: "Frame", crop_um_per_px: float, size: int) -> np.ndarray:
    """Ground-truth mask resampled with the same crop (bilinear, then ≥ 0.5 → defect)."""
    x, y = crop_coords(fr.center_in_frame, fr.um_per_px_x, fr.um_per_px_y, crop_um_per_px, size, size)
    return bilinear_clamp(mask.astype(np.float32), x, y) >= 0.5


def contact_disk(size: int, crop_um_per_px: float) -> np.ndarray:
    """Bool mask of the 250 µm contact zone (radius 125 µm around the crop centre)."""
    c = (size - 1) / 2.0
    yy, xx = np.mgrid[0:size, 0:size]
    r_um = np.hypot(xx - c, yy - c) * crop_um_per_px
    return r_um <= CONTACT_RADIUS_UM


# ------------------------------------------------------------------------------ dataset


def _read_toml(root: Path) -> dict:
    p = root / "dataset.toml"
    if not p.exists():
        return {}
    with open(p, "rb") as fh:
        return tomllib.load(fh)


def _read_labels(root: Path) -> dict[str, dict]:
    p = root / "labels.jsonl"
    out: dict[str, dict] = {}
    if not p.exists():
        return out
    for n, line in enumerate(p.read_text().splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{p}:{n}: not JSON ({e}); fix or delete that line") from e
        if "image" not in obj:
            log.warning("%s:%d: no \"image\" key, line ignored", p, n)
            continue
        out[str(obj["image"]).replace("\\", "/")] = obj
    return out


def _images_in(d: Path) -> list[Path]:
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def _scale_from(lab: dict | None, toml_scale: float | None, override: tuple[float, float] | None):
    if override is not None:
        return override
    if lab:
        if "um_per_px_x" in lab and "um_per_px_y" in lab:
            return float(lab["um_per_px_x"]), float(lab["um_per_px_y"])
        if "um_per_px" in lab:
            v = float(lab["um_per_px"])
            return v, v
    if toml_scale is not None:
        return toml_scale, toml_scale
    return None


def read_dataset(root: Path, um_per_px_override=None, require_train=True) -> dict[str, list[Frame]]:
    """All frames of a dataset: {"train": [...good], "test": [...good and defects]}."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset folder not found")
    if require_train and not (root / "train" / "good").is_dir():
        raise FileNotFoundError(
            f"{root}: no train/good/ folder; a dataset needs at least train/good/*.png "
            "(see docs/dataset-format.md)"
        )
    cfg = _read_toml(root)
    toml_scale = float(cfg["um_per_px"]) if "um_per_px" in cfg else None
    labels = _read_labels(root)
    out: dict[str, list[Frame]] = {"train": [], "test": []}
    for split in ("train", "test"):
        sdir = root / split
        if not sdir.is_dir():
            continue
        for kd in sorted(p for p in sdir.iterdir() if p.is_dir()):
            kind = kd.name
            if split == "train" and kind != "good":
                log.warning("%s: train/ holds only good/; folder ignored", kd)
                continue
            for img in _images_in(kd):
                rel = img.relative_to(root).as_posix()
                lab = labels.get(rel)
                scale = _scale_from(lab, toml_scale, um_per_px_override)
                mp = root / "ground_truth" / kind / f"{img.stem}_mask.png"
                fr = Frame(
                    path=img,
                    rel=rel,
                    kind=kind,
                    split=split,
                    mask_path=mp if mp.exists() else None,
                    labels=lab,
                )
                if scale:
                    fr.um_per_px_x, fr.um_per_px_y = scale
                if lab and "center" in lab:
                    c = lab["center"]
                    fr.center_in_frame = (float(c[0]), float(c[1]))
                out[split].append(fr)
    for p in root.iterdir():
        if p.name not in ("train", "test", "ground_truth", "dataset.toml", "labels.jsonl"):
            log.warning("%s: unknown entry in the dataset, ignored", p)
    return out


def read_unlabelled(root: Path, um_per_px_override=None) -> list[Frame]:
    """Every image under `root` (recursively): production images without labels.

    Nothing from labels.jsonl but the scale is used (a station knows its calibration, not
    where the fiber is): centres come from `endface locate` / the Python locator."""
    root = Path(root)
    cfg = _read_toml(root) if (root / "dataset.toml").exists() else {}
    toml_scale = float(cfg["um_per_px"]) if "um_per_px" in cfg else None
    labels = _read_labels(root)
    frames = []
    for img in sorted(root.rglob("*")):
        if not img.is_file() or img.suffix.lower() not in IMAGE_EXTS:
            continue
        rel = img.relative_to(root).as_posix()
        if rel.startswith("ground_truth/") or img.stem.endswith("_mask"):
            continue
        lab = labels.get(rel)
        fr = Frame(path=img, rel=rel, kind="unlabelled", split="unlabelled")
        scale = _scale_from(lab, toml_scale, um_per_px_override)
        if scale:
            fr.um_per_px_x, fr.um_per_px_y = scale
        frames.append(fr)
    return frames


# ------------------------------------------------------------------------------ locating


def find_endface_bin(repo_root: Path | None = None) -> str | None:
    env = os.environ.get("ENDFACE_BIN")
    if env:
        return env
    if repo_root is not None:
        for sub in ("target/release/endface", "target/debug/endface"):
            p = repo_root / sub
            if p.exists():
                return str(p)
    return shutil.which("endface")


def _find_key(obj, names):
    """Depth-first search of a JSON object for the first key in `names`."""
    if isinstance(obj, dict):
        for n in names:
            if n in obj:
                return obj[n]
        for v in obj.values():
            r = _find_key(v, names)
            if r is not None:
                return r
    elif isinstance(obj, list):
        for v in obj:
            r = _find_key(v, names)
            if r is not None:
                return r
    return None


def locate_with_binary(binary: str, fr: Frame, um_per_px=None) -> dict | None:
    """Run `endface locate --json` on one image; returns {"center": (x,y), "radius_px": r|None}."""
    cmd = [binary, "locate", "--json"]
    if um_per_px is not None:
        cmd += ["--um-per-px-x", str(um_per_px[0]), "--um-per-px-y", str(um_per_px[1])]
    cmd.append(str(fr.path))
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        log.debug("endface locate failed on %s: %s", fr.path, e)
        return None
    if res.returncode != 0 and um_per_px is not None:
        # the binary may not know the scale flags: retry plain
        return locate_with_binary(binary, fr, None)
    if res.returncode != 0:
        log.debug("endface locate rc=%d on %s: %s", res.returncode, fr.path, res.stderr.strip())
        return None
    try:
        obj = json.loads(res.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        return None
    c = _find_key(obj, ["center_in_frame", "center"])
    if c is None:
        return None
    if isinstance(c, dict):
        c = (c.get("x"), c.get("y"))
    r = _find_key(obj, ["cladding_radius_px", "radius_px"])
    if isinstance(r, (list, tuple)):
        r = float(np.mean(r))
    return {"center": (float(c[0]), float(c[1])), "radius_px": float(r) if r is not None else None}


def locate_python(gray_u8: np.ndarray, um_per_px_x: float, um_per_px_y: float) -> tuple[float, float]:
    """Fallback locator: matched filter of the gradient magnitude with the cladding ellipse ring.

    Knows the cladding is 125 µm across; robust to which side is brighter. Accuracy ~1 px,
    plenty for training crops (augmentation shifts by more than that anyway).
    """
    from scipy import ndimage, signal

    g = gray_u8.astype(np.float32)
    f = 2  # work at half resolution
    small = ndimage.zoom(ndimage.gaussian_filter(g, 1.5), 1 / f, order=1)
    gm = np.hypot(ndimage.sobel(small, 1), ndimage.sobel(small, 0))
    gm = np.minimum(gm, np.percentile(gm, 99.5))
    rx = CLADDING_RADIUS_UM / um_per_px_x / f
    ry = CLADDING_RADIUS_UM / um_per_px_y / f
    ext = int(np.ceil(max(rx, ry))) + 3
    yy, xx = np.mgrid[-ext : ext + 1, -ext : ext + 1].astype(np.float32)
    rr = np.hypot(xx / rx, yy / ry)
    ring = np.exp(-0.5 * ((rr - 1.0) * min(rx, ry) / 1.2) ** 2)
    ring -= ring.mean()
    score = signal.fftconvolve(gm - gm.mean(), ring[::-1, ::-1], mode="same")
    iy, ix = np.unravel_index(np.argmax(score), score.shape)
    # sub-pixel refine with a parabola in each axis
    def _refine(a, i):
        if 0 < i < len(a) - 1:
            d = a[i - 1] - 2 * a[i] + a[i + 1]
            if d < 0:
                return i + 0.5 * (a[i - 1] - a[i + 1]) / d
        return float(i)

    sx = _refine(score[iy, :], ix)
    sy = _refine(score[:, ix], iy)
    # half-res pixel centre k covers full-res pixels f*k .. f*k+f-1 → centre f*k + (f-1)/2
    return (sx * f + (f - 1) / 2.0, sy * f + (f - 1) / 2.0)


def resolve_geometry(frames: list[Frame], repo_root: Path | None, cache_path: Path | None = None, um_per_px_default=None,
                     strict=True):
    """Fill `center_in_frame` and the scale of every frame (labels → endface locate → Python).

    A frame whose scale nobody knows (no label, no dataset.toml, the localizer refused it) raises
    ValueError when `strict`; otherwise it is left unresolved (`um_per_px_x is None`) and counted,
    and the caller drops it (a station would refuse that frame too)."""
    cache = {}
    if cache_path is not None and cache_path.exists():
        cache = json.loads(cache_path.read_text())
    binary = None
    need = [f for f in frames if f.center_in_frame is None or f.um_per_px_x is None]
    if need:
        binary = find_endface_bin(repo_root)
    used = {"labels": 0, "endface locate": 0, "python locator": 0, "cache": 0}
    for fr in frames:
        if fr.um_per_px_x is None and um_per_px_default is not None:
            fr.um_per_px_x, fr.um_per_px_y = um_per_px_default
        if fr.center_in_frame is not None and fr.um_per_px_x is not None:
            used["labels"] += 1
            continue
        key = str(fr.path.resolve())
        if key in cache:
            c = cache[key]
            fr.center_in_frame = tuple(c["center"])
            if fr.um_per_px_x is None and c.get("um_per_px"):
                fr.um_per_px_x, fr.um_per_px_y = c["um_per_px"]
            used["cache"] += 1
            continue
        res = None
        if binary is not None:
            scale = (fr.um_per_px_x, fr.um_per_px_y) if fr.um_per_px_x else None
            res = locate_with_binary(binary, fr, scale)
        if res is not None:
            if fr.center_in_frame is None:
                fr.center_in_frame = res["center"]
            if fr.um_per_px_x is None and res.get("radius_px"):
                s = CLADDING_RADIUS_UM / res["radius_px"]
                fr.um_per_px_x = fr.um_per_px_y = s
            used["endface locate"] += 1
        if fr.um_per_px_x is None and not strict:
            used["unresolved (dropped)"] = used.get("unresolved (dropped)", 0) + 1
            log.warning("%s: no scale (no label, no dataset.toml um_per_px, `endface locate` refused it): dropped",
                        fr.path)
            continue
        if fr.um_per_px_x is None:
            raise ValueError(
                f"{fr.path}: no µm/px scale (no labels.jsonl um_per_px, no dataset.toml um_per_px, "
                "and `endface locate` gave none); pass --um-per-px X[,Y] or add um_per_px to dataset.toml"
            )
        if fr.center_in_frame is None:
            fr.center_in_frame = locate_python(to_gray_u8(fr.load()), fr.um_per_px_x, fr.um_per_px_y)
            used["python locator"] += 1
        cache[key] = {"center": list(fr.center_in_frame), "um_per_px": [fr.um_per_px_x, fr.um_per_px_y]}
    if cache_path is not None:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        cache_path.write_text(json.dumps(cache))
    log.info("fiber centres: %s", ", ".join(f"{k} {v}" for k, v in used.items() if v))
    return used
