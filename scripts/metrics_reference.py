#!/usr/bin/env python3
"""Reference values for src/metrics.rs, computed independently with scikit-learn, numpy and
scipy.ndimage on fixed seeded inputs. Writes the inputs and the expected values as one JSON
document (tests/fixtures/metrics_reference.json), which tests/metrics_reference.rs checks.

    /work/main/.venv/bin/python scripts/metrics_reference.py > tests/fixtures/metrics_reference.json

AUPRO follows the MVTec AD evaluation code (mvtec_ad_evaluation/generic_util.py: compute_pro +
trapezoid with x_max; connected components with an all-ones 3x3 structure = 8-connectivity;
every pixel outside a ground-truth region counts as a normal pixel), re-typed here.
"""
import bisect
import json
import sys

import numpy as np
from scipy import ndimage
from sklearn.metrics import accuracy_score, confusion_matrix, roc_auc_score

SEED = 20240611
W, H = 48, 40


def compute_pro(anomaly_maps, ground_truth_maps):
    structure = np.ones((3, 3), dtype=int)
    num_ok_pixels = 0
    num_gt_regions = 0
    shape = (len(anomaly_maps), anomaly_maps[0].shape[0], anomaly_maps[0].shape[1])
    fp_changes = np.zeros(shape, dtype=np.uint32)
    pro_changes = np.zeros(shape, dtype=np.float64)
    for gt_ind, gt_map in enumerate(ground_truth_maps):
        labeled, n_components = ndimage.label(gt_map, structure)
        num_gt_regions += n_components
        ok_mask = labeled == 0
        num_ok_pixels += np.sum(ok_mask)
        fp_changes[gt_ind, ok_mask] = 1
        for k in range(n_components):
            region_mask = labeled == (k + 1)
            pro_changes[gt_ind, region_mask] = 1.0 / np.sum(region_mask)
    flat = np.array(anomaly_maps).ravel()
    fp_changes = fp_changes.ravel()
    pro_changes = pro_changes.ravel()
    order = np.argsort(flat, kind="stable")[::-1]
    flat = flat[order]
    fp = np.cumsum(fp_changes[order])
    pro = np.cumsum(pro_changes[order])
    keep = np.append(np.diff(flat) != 0, np.True_)
    fprs = np.concatenate(([0.0], fp[keep] / num_ok_pixels))
    pros = np.concatenate(([0.0], pro[keep] / num_gt_regions))
    return fprs, pros


def trapezoid(x, y, x_max=None):
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    correction = 0.0
    if x_max is not None:
        if x_max not in x:
            ins = bisect.bisect(x, x_max)
            assert 0 < ins < len(x)
            y_interp = y[ins - 1] + (y[ins] - y[ins - 1]) * (x_max - x[ins - 1]) / (x[ins] - x[ins - 1])
            correction = 0.5 * (y_interp + y[ins - 1]) * (x_max - x[ins - 1])
        mask = x <= x_max
        x = x[mask]
        y = y[mask]
    return float(np.sum(0.5 * (y[1:] + y[:-1]) * (x[1:] - x[:-1])) + correction)


def masks(rng):
    """Six ground-truth masks: blobs, a thin line, a diagonal-only touch, an empty one."""
    yy, xx = np.mgrid[0:H, 0:W]
    out = []
    m = ((xx - 12) ** 2 + (yy - 10) ** 2 <= 25) | ((xx - 35) ** 2 + (yy - 28) ** 2 <= 36)
    out.append(m)
    m = np.zeros((H, W), bool)
    m[5, 3:40] = True  # 1-px scratch
    m[20:24, 20:30] = True
    out.append(m)
    m = np.zeros((H, W), bool)
    m[10:13, 10:13] = True
    m[13:16, 13:16] = True  # touches the first square only diagonally
    m[30, 40] = True  # single pixel
    out.append(m)
    out.append(np.zeros((H, W), bool))
    m = rng.random((H, W)) < 0.08  # speckle: many small components
    out.append(m)
    m = (xx - 24) ** 2 / 100 + (yy - 20) ** 2 / 36 <= 1  # touches nothing
    m[0, :] = True  # border row
    m[:, W - 1] = True  # border column joins it
    out.append(m)
    return out


def main():
    rng = np.random.default_rng(SEED)
    ref = {"seed": SEED}

    # Image AUROC: one case with heavy ties (1 decimal), one continuous, one tiny by hand.
    cases = []
    n = 300
    labels = rng.random(n) < 0.4
    scores = np.round(labels * 0.7 + rng.normal(0, 0.6, n), 1)
    cases.append((scores, labels))
    n = 257
    labels = rng.random(n) < 0.25
    scores = labels * 1.1 + rng.normal(0, 1.0, n)
    cases.append((scores, labels))
    cases.append((np.array([0.1, 0.4, 0.35, 0.8]), np.array([False, False, True, True])))
    cases.append((np.array([0.5, 0.5, 0.5, 0.5]), np.array([False, True, False, True])))
    ref["image_auroc"] = [
        {"scores": s.tolist(), "labels": l.astype(int).tolist(), "auroc": float(roc_auc_score(l, s))}
        for s, l in cases
    ]

    # Pixel maps: float32 scores with ties (rounded to 2 decimals), blob-shaped signal.
    gts = masks(rng)
    maps = []
    for gt in gts:
        smooth = ndimage.gaussian_filter(gt.astype(np.float64), 1.0)
        s = 0.9 * smooth + rng.normal(0.0, 0.18, gt.shape)
        maps.append(np.round(s, 2).astype(np.float32))
    flat_s = np.concatenate([m.ravel() for m in maps])
    flat_l = np.concatenate([g.ravel() for g in gts])
    fprs, pros = compute_pro(maps, [g.astype(np.uint8) for g in gts])
    comps = []
    for gt in gts:
        lab, ncomp = ndimage.label(gt, np.ones((3, 3), dtype=int))
        objs = ndimage.find_objects(lab)
        areas = ndimage.sum_labels(np.ones_like(lab), lab, index=np.arange(1, ncomp + 1))
        comps.append(
            {
                "n": int(ncomp),
                "labels": lab.ravel().astype(int).tolist(),
                "areas": [int(a) for a in np.atleast_1d(areas)],
                # [x0, y0, x1, y1] inclusive
                "bboxes": [[o[1].start, o[0].start, o[1].stop - 1, o[0].stop - 1] for o in objs],
            }
        )
    ious = []
    inter_tot = union_tot = 0
    for m, gt in zip(maps, gts):
        pred = m >= np.float32(0.5)
        inter = int(np.sum(pred & gt))
        union = int(np.sum(pred | gt))
        inter_tot += inter
        union_tot += union
        ious.append(inter / union if union else None)
    ref["pixel"] = {
        "width": W,
        "height": H,
        "scores": [m.ravel().astype(float).tolist() for m in maps],
        "gt": [g.ravel().astype(int).tolist() for g in gts],
        "pixel_auroc": float(roc_auc_score(flat_l, flat_s)),
        "aupro_0_3": trapezoid(fprs, pros, x_max=0.3) / 0.3,
        "aupro_1_0": trapezoid(fprs, pros, x_max=1.0) / 1.0,
        "components": comps,
        "iou_threshold": 0.5,
        "iou_per_image": ious,
        "iou_total": inter_tot / union_tot,
    }

    # Percentiles (numpy default: linear interpolation).
    v = rng.gamma(2.0, 3.0, 101)
    qs = [0, 1, 5, 50, 90, 95, 99, 99.9, 100]
    ref["percentiles"] = {
        "values": v.tolist(),
        "q": qs,
        "expected": [float(np.percentile(v, q)) for q in qs],
        "values_even": v[:10].tolist(),
        "expected_even": [float(np.percentile(v[:10], q)) for q in qs],
    }

    # Verdict confusion matrix (rows truth, columns predicted; order pass, fail, unable).
    order = ["pass", "fail", "unable"]
    truth = rng.choice(["pass", "fail"], 60).tolist()
    pred = [t if rng.random() < 0.8 else rng.choice(order) for t in truth]
    pred = [str(p) for p in pred]
    ref["confusion"] = {
        "truth": truth,
        "pred": pred,
        "labels": order,
        "matrix": confusion_matrix(truth, pred, labels=order).tolist(),
        "accuracy": float(accuracy_score(truth, pred)),
    }
    json.dump(ref, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
