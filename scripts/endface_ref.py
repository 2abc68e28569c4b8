"""Reference (NumPy) implementation of the model-input crop and the anomaly map.

This is the Python twin of `src/inspect.rs` (crop) and `src/anomaly.rs` (map), written from
CONTRACTS.md / models/MANIFEST.md, so training, threshold calibration and the parity check
(scripts/check_parity.py) compute exactly what the Rust inspector computes:

- stuck pixels (src/inspect/hotpixel.rs, `correct_stuck`): before anything else, a pixel at
  least MIN_SPIKE above the max (below the min) of its 8 neighbours, whose strongest neighbour
  carries at most MAX_NEIGHBOUR_SHARE of its step from the median of the 16-pixel ring around
  them, is replaced by the (lower) median of its 8 neighbours (not within 2 px of the edge);
- bands and stripes (src/inspect/destripe.rs, `destripe`): then, on ln(v + 8), a row profile
  (per row, over every other column (every ceil(w/320)-th when wider), the value less its vertical moving average over 2*48+1
  reflected rows: the mean of those within 0.1, then the mean of those within 0.02 of that, 0 /
  the first mean with fewer than a quarter usable; then less its own moving average) whose 1.4826 x MAD exceeds 0.012 is divided
  out of every row; the same for columns (every other row, after the rows' correction): pixel
  = round((v + 8) * exp(-row) * exp(-col) - 8);
- crop: crop pixel (u=col, v=row) samples the frame at
      x = cx + (u - (W-1)/2) * s / umx,   y = cy + (v - (H-1)/2) * s / umy
  bilinear; the four neighbour indices clamp to the frame's picture (= nearest edge pixel
  outside), the frame less its black blanking borders (frame_content, src/inspect/border.rs);
- exposure (src/inspect/exposure.rs): the crop's bright level is the 99th percentile of its
  grey levels (rounded, 256 bins) over the contact zone; below MIN_BRIGHT_LEVEL the crop is
  multiplied by TARGET_BRIGHT_LEVEL / level (clipped at 255), at most MAX_GAIN times; a crop
  that would need more is not graded (UNABLE);
- normalization: x_norm = (p/255 - mean) / std (per channel for "rgb": gray replicated);
- anomaly map: "abs_diff" -> |x_norm - rec_norm| * std (channel 0), or an output by name;
  then scipy.ndimage.gaussian_filter(map, sigma, mode="reflect", truncate=4.0) if sigma > 0;
- contact zone: crop pixels with hypot(du, dv) * s <= contact_radius_um (default 125 µm),
  du = u - (W-1)/2; the image score is the max of the map inside it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

CONTACT_RADIUS_UM = 125.0


# src/inspect/border.rs: blanking borders
MAX_BORDER_PX, DARK_SHARE, DARK_MAX, DARK_MIN = 48, 0.4, 60.0, 6.0
BRIGHT_SHARE_MAX, STEP_MIN, GUARD_PX = 0.05, 15.0, 2


def frame_content(frame: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1), half-open: the frame less its blanking borders (src/inspect/border.rs)."""
    h, w = frame.shape
    full = (0, 0, w, h)
    if w < 32 or h < 32:
        return full
    level = float(frame[::4, ::4].astype(np.float64).mean())
    dark = min(DARK_SHARE * level, DARK_MAX)
    if dark < DARK_MIN:
        return full
    f = frame.astype(np.float64)

    def depth(lines: np.ndarray) -> int:  # lines[i]: the i-th line from this side
        n = lines.shape[0]
        cap = min(n // 16, MAX_BORDER_PX)
        d = 0
        while d < cap and float((lines[d] > dark).mean()) <= BRIGHT_SHARE_MAX:
            d += 1
        if d == 0 or d == cap:
            return 0
        after = min(3, n // 2 - d)
        if after == 0:
            return 0
        border_mean = float(np.mean([lines[i].mean() for i in range(d)]))
        after_mean = float(np.mean([lines[i].mean() for i in range(d, d + after)]))
        if after_mean < border_mean + STEP_MIN:
            return 0
        return d + GUARD_PX

    top, bottom = depth(f), depth(f[::-1])
    left, right = depth(f.T), depth(f.T[::-1])
    c = (left, top, w - right, h - bottom)
    if c[2] <= c[0] or c[3] <= c[1] or c[2] - c[0] < w // 2 or c[3] - c[1] < h // 2:
        return full
    return c


# src/inspect/hotpixel.rs
MIN_SPIKE, MAX_NEIGHBOUR_SHARE = 24, 0.25


def correct_stuck(frame: np.ndarray) -> tuple[np.ndarray, int]:
    """(frame with its stuck pixels replaced, how many) — the station's hotpixel.rs."""
    f = frame.astype(np.int32)
    h, w = f.shape
    if w < 5 or h < 5:
        return frame, 0
    c = f[2:h - 2, 2:w - 2]

    def sh(dx, dy):
        return f[2 + dy:h - 2 + dy, 2 + dx:w - 2 + dx]

    n8 = np.stack([sh(dx, dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dx, dy) != (0, 0)])
    ring = np.stack([sh(dx, dy) for dy in range(-2, 3) for dx in range(-2, 3) if max(abs(dx), abs(dy)) == 2])
    lo, hi = n8.min(0), n8.max(0)
    hot = c - hi >= MIN_SPIKE
    dead = lo - c >= MIN_SPIKE
    base = np.sort(ring, 0)[7]
    step = np.where(hot, c - base, base - c)
    neighbour = np.where(hot, hi - base, base - lo)
    stuck = (hot | dead) & (step > 0) & (neighbour.astype(np.float32) <= np.float32(MAX_NEIGHBOUR_SHARE) * step.astype(np.float32))
    n = int(stuck.sum())
    if n == 0:
        return frame, 0
    med = np.sort(n8, 0)[3]
    out = frame.copy()
    inner = out[2:h - 2, 2:w - 2]
    inner[stuck] = med[stuck].astype(frame.dtype)
    return out, n


# src/inspect/destripe.rs
HALF_WINDOW, MIN_AMPLITUDE, LOG_OFFSET, MAX_SAMPLE_DEVIATION, MIN_SAMPLE_SHARE, TRIM = 48, 0.012, 8.0, 0.1, 0.25, 0.02


def _reflect_idx(i: np.ndarray, n: int) -> np.ndarray:
    j = np.where(i < 0, -i - 1, np.where(i >= n, 2 * n - i - 1, i))
    return np.clip(j, 0, n - 1)


def _moving_average(a: np.ndarray, axis: int) -> np.ndarray:
    """Mean over 2*HALF_WINDOW+1 samples along `axis`, reflected at the ends."""
    n = a.shape[axis]
    idx = _reflect_idx(np.arange(-HALF_WINDOW, n + HALF_WINDOW + 1), n)
    ext = np.take(a, idx, axis=axis)
    c = np.cumsum(ext, axis=axis, dtype=np.float64)
    c = np.concatenate([np.zeros_like(np.take(c, [0], axis=axis)), c], axis=axis)
    k = 2 * HALF_WINDOW + 1
    hi = np.take(c, np.arange(k, k + n), axis=axis)
    lo = np.take(c, np.arange(0, n), axis=axis)
    return (hi - lo) / k


def _lower_median(v: np.ndarray) -> float:
    return float(np.sort(v)[(len(v) - 1) // 2]) if len(v) else 0.0


# destripe.rs works on fixed-point logs (ln(v + 8) x 2^16, rounded) with exact integer sums; a
# deviation from a moving average is WIN x value - window sum, in units of DEV_UNIT
FIX_SCALE = 65536.0
WIN = 2 * HALF_WINDOW + 1
DEV_UNIT = 1.0 / (WIN * FIX_SCALE)
_LOG_LUT = np.floor(np.log(np.arange(256, dtype=np.float64) + LOG_OFFSET) * FIX_SCALE + 0.5).astype(np.int64)


def _moving_sum(a: np.ndarray, axis: int) -> np.ndarray:
    """Integer sum over WIN samples along `axis`, reflected at the ends."""
    n = a.shape[axis]
    idx = _reflect_idx(np.arange(-HALF_WINDOW, n + HALF_WINDOW + 1), n)
    c = np.cumsum(np.take(a, idx, axis=axis), axis=axis, dtype=np.int64)
    c = np.concatenate([np.zeros_like(np.take(c, [0], axis=axis)), c], axis=axis)
    return np.take(c, np.arange(WIN, WIN + n), axis=axis) - np.take(c, np.arange(0, n), axis=axis)


def _line_levels(d: np.ndarray) -> np.ndarray:
    """d: (n_lines, n_samples) integer deviations -> each line's trimmed level (ln units)."""
    share = MIN_SAMPLE_SHARE * d.shape[1]
    lim = MAX_SAMPLE_DEVIATION / DEV_UNIT
    ok = (d >= np.ceil(-lim)) & (d <= np.floor(lim))
    n = ok.sum(1)
    s = np.where(ok, d, 0).sum(1).astype(np.float64)
    first = np.where((n > 0) & (n >= share), s / np.maximum(n, 1), 0.0)
    t = TRIM / DEV_UNIT  # second pass: a trimmed mean about the first
    ok = (d >= np.ceil(first - t)[:, None]) & (d <= np.floor(first + t)[:, None])
    n = ok.sum(1)
    s = np.where(ok, d, 0).sum(1).astype(np.float64)
    return np.where((n > 0) & (n >= share), s / np.maximum(n, 1), first) * DEV_UNIT


def _high_passed(p: np.ndarray) -> tuple[np.ndarray, float]:
    """(profile less its moving average, robust amplitude)."""
    p = p - _moving_average(p, 0)
    med = _lower_median(p)
    return p, 1.4826 * _lower_median(np.abs(p - med))


def destripe(frame: np.ndarray) -> tuple[np.ndarray, tuple[float, float], bool]:
    """(frame with bands / stripes divided out, (row, column) amplitudes, corrected?)."""
    h, w = frame.shape
    if w < 4 * HALF_WINDOW or h < 4 * HALF_WINDOW:
        return frame, (0.0, 0.0), False
    L = _LOG_LUT[frame]
    sx, sy = max(2, -(-w // 320)), max(2, -(-h // 240))  # destripe.rs stride(): ~320 / ~240 samples
    sub = L[:, 0::sx]
    rp, ra = _high_passed(_line_levels(WIN * sub - _moving_sum(sub, 0)))
    rows = ra > MIN_AMPLITUDE
    # a row's gain is one factor for the row, which the horizontal moving average takes out:
    # the column profile reads the same before and after the rows' correction
    sub = L[0::sy, :]
    cp, ca = _high_passed(_line_levels((WIN * sub - _moving_sum(sub, 1)).T))
    cols = ca > MIN_AMPLITUDE
    if not (rows or cols):
        return frame, (ra, ca), False
    fr = np.exp(-rp) if rows else np.ones(h)
    fc = np.exp(-cp) if cols else np.ones(w)
    c = (frame.astype(np.float64) + LOG_OFFSET) * fr[:, None] * fc[None, :] - LOG_OFFSET
    out = np.floor(np.clip(c, 0.0, 255.0) + 0.5).astype(np.uint8)
    return out, (ra, ca), True


def precondition(frame: np.ndarray) -> np.ndarray:
    """What the station grades instead of the camera's frame: stuck pixels replaced, then bands
    and stripes divided out."""
    return destripe(correct_stuck(frame)[0])[0]


def crop_frame(frame: np.ndarray, center, um_per_px_xy, s: float, width: int, height: int,
               content=None) -> np.ndarray:
    """Bilinear crop (float64, 0..255) of a 2-D uint8 frame per CONTRACTS.md; neighbours clamp to
    `content` (x0, y0, x1, y1), by default frame_content(frame)."""
    cx, cy = float(center[0]), float(center[1])
    umx, umy = float(um_per_px_xy[0]), float(um_per_px_xy[1])
    h, w = frame.shape
    u = np.arange(width, dtype=np.float64)
    v = np.arange(height, dtype=np.float64)
    x = cx + (u - (width - 1) / 2.0) * s / umx
    y = cy + (v - (height - 1) / 2.0) * s / umy
    x0 = np.floor(x)
    y0 = np.floor(y)
    fx = x - x0
    fy = y - y0
    x0 = x0.astype(np.int64)
    y0 = y0.astype(np.int64)
    cx0, cy0, cx1, cy1 = frame_content(frame) if content is None else content
    xa = np.clip(x0, cx0, cx1 - 1)
    xb = np.clip(x0 + 1, cx0, cx1 - 1)
    ya = np.clip(y0, cy0, cy1 - 1)
    yb = np.clip(y0 + 1, cy0, cy1 - 1)
    f = frame.astype(np.float64)
    top = f[ya][:, xa] * (1.0 - fx)[None, :] + f[ya][:, xb] * fx[None, :]
    bot = f[yb][:, xa] * (1.0 - fx)[None, :] + f[yb][:, xb] * fx[None, :]
    return top * (1.0 - fy)[:, None] + bot * fy[:, None]


# src/inspect/exposure.rs
MIN_BRIGHT_LEVEL, TARGET_BRIGHT_LEVEL, MAX_GAIN, BRIGHT_PERCENTILE = 96.0, 128.0, 4.0, 0.99


def bright_level(crop: np.ndarray, mask: np.ndarray) -> float | None:
    """99th percentile of the crop's grey levels (rounded half away from zero, clipped to 0..255)
    over `mask` (the contact zone's pixels in view) at even crop coordinates, as the station's
    256-bin histogram."""
    even = np.zeros_like(mask)
    even[::2, ::2] = True
    v = np.clip(np.floor(crop[mask & even] + 0.5), 0, 255).astype(np.int64)
    if v.size == 0:
        return None
    cum = np.cumsum(np.bincount(v, minlength=256))
    need = int(np.ceil(v.size * BRIGHT_PERCENTILE))
    return float(np.searchsorted(cum, need))


def exposure_gain(level: float) -> float | None:
    """The gain for a crop of this bright level; None when it is too dark to grade."""
    if level >= MIN_BRIGHT_LEVEL:
        return 1.0
    gain = TARGET_BRIGHT_LEVEL / max(level, np.finfo(np.float32).tiny)
    return None if gain > MAX_GAIN else gain


def expose(crop: np.ndarray, manifest: dict, contact_radius_um: float = CONTACT_RADIUS_UM,
           view: np.ndarray | None = None) -> tuple[np.ndarray | None, float | None, float | None]:
    """(crop after the station's exposure gain or None when too dark, bright level, gain).
    `view`: boolean mask of the crop pixels that sample the picture (default: all)."""
    mask = contact_mask(manifest, contact_radius_um)
    if view is not None:
        mask = mask & view
    level = bright_level(crop, mask)
    if level is None:
        return crop, None, 1.0
    gain = exposure_gain(level)
    if gain is None:
        return None, level, None
    if gain == 1.0:
        return crop, level, gain
    out = np.minimum(crop.astype(np.float32) * np.float32(gain), np.float32(255.0))
    return out.astype(np.float64), level, gain


def in_view_mask(center, um_per_px_xy, s: float, width: int, height: int, content,
                 margin_crop_px: float = 2.0) -> np.ndarray:
    """(H, W) bool: the crop pixels that sample the picture `content` (x0, y0, x1, y1) at least
    `margin_crop_px` crop pixels from its edge (CropGeometry::in_view, src/inspect/crop.rs)."""
    def rng(n, c, k, first, end):
        m = margin_crop_px * k
        half = (n - 1.0) / 2.0
        lo = (first + m - c) / k + half
        hi = (end - 1.0 - m - c) / k + half
        if end <= first or hi < lo:
            return 0, 0
        a = int(min(max(np.ceil(lo), 0.0), n))
        b = int(min(max(np.floor(hi) + 1.0, 0.0), n))
        return a, max(a, b)

    kx, ky = s / float(um_per_px_xy[0]), s / float(um_per_px_xy[1])
    x0, y0, x1, y1 = content
    u0, u1 = rng(width, float(center[0]), kx, x0, x1)
    v0, v1 = rng(height, float(center[1]), ky, y0, y1)
    view = np.zeros((height, width), bool)
    view[v0:v1, u0:u1] = True
    return view


def _per_channel(value, channels: int) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(value, dtype=np.float64))
    if arr.size == 1:
        arr = np.repeat(arr, channels)
    if arr.size != channels:
        raise ValueError(f"normalization has {arr.size} values for {channels} channels")
    return arr


def normalize(crop: np.ndarray, manifest: dict) -> np.ndarray:
    """Crop (H, W) in 0..255 -> float32 NCHW input tensor."""
    inp = manifest["input"]
    channels = int(inp["shape"][1])
    mean = _per_channel(inp["normalization"]["mean"], channels)
    std = _per_channel(inp["normalization"]["std"], channels)
    p = crop / 255.0
    x = np.stack([(p - mean[c]) / std[c] for c in range(channels)])[None]
    return x.astype(np.float32)


def gaussian_smooth(m: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0:
        return m.astype(np.float32)
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(m.astype(np.float32), sigma, mode="reflect", truncate=4.0)


def anomaly_map(manifest: dict, x: np.ndarray, outputs: dict) -> np.ndarray:
    """Anomaly map (H, W) float32 in crop space from the input tensor and named outputs."""
    spec = manifest["anomaly_map"]
    h, w = int(manifest["input"]["shape"][2]), int(manifest["input"]["shape"][3])
    if spec["source"] == "abs_diff":
        rec_name = _reconstruction_output(manifest)
        std0 = _per_channel(manifest["input"]["normalization"]["std"], int(manifest["input"]["shape"][1]))[0]
        rec = np.asarray(outputs[rec_name], dtype=np.float32).reshape(-1, h, w)[0]
        m = np.abs(x[0, 0] - rec) * np.float32(std0)
    else:
        m = np.asarray(outputs[spec["source"]], dtype=np.float32).reshape(h, w)
    return gaussian_smooth(m, float(spec.get("smoothing_sigma_px", 0.0)))


def _reconstruction_output(manifest: dict) -> str:
    names = [o["name"] for o in manifest["outputs"]]
    if "reconstruction" in names:
        return "reconstruction"
    if len(names) == 1:
        return names[0]
    raise ValueError("abs_diff needs an output named 'reconstruction' (or a single output)")


def contact_mask(manifest: dict, contact_radius_um: float = CONTACT_RADIUS_UM) -> np.ndarray:
    h, w = int(manifest["input"]["shape"][2]), int(manifest["input"]["shape"][3])
    s = float(manifest["um_per_px"])
    du = (np.arange(w) - (w - 1) / 2.0) * s
    dv = (np.arange(h) - (h - 1) / 2.0) * s
    return np.hypot(du[None, :], dv[:, None]) <= contact_radius_um


def image_score(manifest: dict, amap: np.ndarray, contact_radius_um: float = CONTACT_RADIUS_UM) -> float:
    return float(np.max(np.where(contact_mask(manifest, contact_radius_um), amap, 0.0)))


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_manifest(path: Path) -> tuple[dict, Path]:
    path = Path(path)
    manifest = json.loads(path.read_text())
    return manifest, path.parent / manifest["onnx_file"]
