"""Anomaly maps, threshold calibration and metrics (crop space, inside the contact zone).

In: model-input crops (N x 384 x 384 in [0,1]), ground-truth masks resampled with the same
crop, anomaly maps from the student (ONNX, `anomaly` output) or the teacher (smoothed
|input − reconstruction|).
Out: image AUROC, pixel AUROC, AUPRO (FPR ≤ 0.3, normalised to [0,1]), IoU of the thresholded
mask — overall and per defect kind — and calibrated thresholds.

Every pixel metric is computed in crop space, on pixels inside the 250 µm contact zone (a
circle of radius 125 µm around the crop centre); image score = max of the map inside it.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from sklearn.metrics import roc_auc_score


def image_scores(maps: np.ndarray, disk: np.ndarray) -> np.ndarray:
    return np.array([float(m[disk].max()) for m in maps])


def calibrate(good_maps: np.ndarray, disk: np.ndarray, target_frr: float) -> dict:
    """Thresholds at the (1 − FRR) quantile of held-out good images' scores ('higher' method:
    with fewer than 1/FRR images this is their maximum, so none of them is rejected)."""
    s = image_scores(good_maps, disk)
    thr = float(np.quantile(s, 1 - target_frr, method="higher"))
    # pixel threshold chosen likewise: at it, that share of good images has no pixel (hence no
    # component) above it. With image score = max of the same map the two coincide.
    return {"image": thr, "pixel": thr, "good_scores": s.tolist(), "n": int(len(s))}


def pixel_auroc(maps, masks, disk, max_pixels=6_000_000, seed=0):
    sc = np.concatenate([m[disk] for m in maps])
    gt = np.concatenate([g[disk] for g in masks])
    if gt.all() or not gt.any():
        return float("nan")
    if len(sc) > max_pixels:
        idx = np.random.default_rng(seed).choice(len(sc), max_pixels, replace=False)
        # keep every defect pixel (they are rare), subsample the rest
        idx = np.union1d(idx, np.flatnonzero(gt))
        sc, gt = sc[idx], gt[idx]
    return float(roc_auc_score(gt, sc))


def aupro(maps, masks, disk, fpr_limit=0.3, n_thr=400):
    """Area under the per-region-overlap curve up to FPR = fpr_limit, divided by fpr_limit."""
    good_px = np.sort(np.concatenate([m[disk & ~g] for m, g in zip(maps, masks)]))
    regions = []
    for m, g in zip(maps, masks):
        # 8-connected regions, as the MVTec AD evaluation code (and the Rust `eval`) count them: with
        # the default 4-connectivity a thin diagonal scratch falls apart into many 1-pixel
        # "regions", each weighted like a whole defect, and the AUPRO of thin defects collapses.
        lab, n = ndimage.label(g & disk, structure=np.ones((3, 3), dtype=int))
        for r in range(1, n + 1):
            regions.append(np.sort(m[lab == r]))
    if not regions or len(good_px) == 0:
        return float("nan")
    # thresholds spanning FPR in [0, fpr_limit] (quantiles of the good pixels)
    qs = np.linspace(1 - fpr_limit, 1.0, n_thr)
    thr = np.quantile(good_px, qs)
    thr = np.unique(np.concatenate([thr, [good_px[-1] + 1e-9, -np.inf]]))  # -inf: FPR = 1
    fpr = 1 - np.searchsorted(good_px, thr, side="right") / len(good_px)
    pro = np.zeros_like(thr)
    for r in regions:
        pro += 1 - np.searchsorted(r, thr, side="right") / len(r)
    pro /= len(regions)
    order = np.argsort(fpr)
    fpr, pro = fpr[order], pro[order]
    keep = fpr <= fpr_limit
    f, p = fpr[keep], pro[keep]
    if f[-1] < fpr_limit:  # interpolate the curve at exactly fpr_limit
        j = np.searchsorted(fpr, fpr_limit)
        if j < len(fpr):
            pl = np.interp(fpr_limit, fpr[j - 1:j + 1], pro[j - 1:j + 1])
            f, p = np.append(f, fpr_limit), np.append(p, pl)
    return float(np.trapz(p, f) / fpr_limit)


def iou(maps, masks, disk, thr):
    inter = union = 0
    per_img = []
    for m, g in zip(maps, masks):
        pm = (m > thr) & disk
        gg = g & disk
        i = int((pm & gg).sum())
        u = int((pm | gg).sum())
        inter += i
        union += u
        if gg.any():
            per_img.append(i / max(u, 1))
    return {"pooled": inter / max(union, 1), "mean_per_image": float(np.mean(per_img)) if per_img else float("nan")}


def all_metrics(maps, masks, kinds, disk, thr_pixel, thr_image):
    """maps, masks: lists aligned with kinds ('good' or a defect kind)."""
    maps = np.asarray(maps)
    masks = np.asarray(masks)
    kinds = np.asarray(kinds)
    scores = image_scores(maps, disk)
    y = kinds != "good"

    def block(sel):
        out = {"n_images": int(sel.sum()), "n_defect_images": int((sel & y).sum())}
        if y[sel].any() and (~y[sel]).any():
            out["image_auroc"] = float(roc_auc_score(y[sel], scores[sel]))
        out["pixel_auroc"] = pixel_auroc(maps[sel], masks[sel], disk)
        out["aupro_0.3"] = aupro(maps[sel], masks[sel], disk)
        d = sel & y
        out["iou"] = iou(maps[d], masks[d], disk, thr_pixel)
        out["detected_at_image_threshold"] = float((scores[d] > thr_image).mean()) if d.any() else float("nan")
        return out

    res = {"all": block(np.ones(len(kinds), bool))}
    good = kinds == "good"
    res["all"]["false_reject_rate_test_good"] = float((scores[good] > thr_image).mean()) if good.any() else float("nan")
    for k in sorted(set(kinds) - {"good"}):
        res[k] = block(good | (kinds == k))
    return res, scores


def abs_diff_map(inp, rec, sigma=1.0):
    d = np.abs(inp - rec)
    if sigma > 0:
        d = np.stack([ndimage.gaussian_filter(x, sigma) for x in d]) if d.ndim == 3 else ndimage.gaussian_filter(d, sigma)
    return d
