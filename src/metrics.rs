//! Evaluation metrics for `endface eval`: pure functions over scores, masks and verdicts.
//!
//! In: image scores with good/defective labels, per-pixel anomaly maps (`f32`, row-major) with
//! 0/non-zero ground-truth masks, thresholded masks, verdict pairs, latency samples. Out:
//! image AUROC, pixel AUROC, AUPRO (FPR ≤ a limit), IoU, a verdict confusion matrix with
//! accuracy, percentiles, and 8-connected component labelling (reused by defect extraction).
//!
//! Definitions, checked against scripts/metrics_reference.py (scikit-learn, numpy,
//! scipy.ndimage) through tests/fixtures/metrics_reference.json:
//! - AUROC = scikit-learn's `roc_auc_score`: trapezoidal area under the ROC curve with tied
//!   scores forming one step, which equals the Mann–Whitney statistic with ties counted ½.
//! - Pixel AUROC and AUPRO: [`PixelCurves`] is exact (it keeps one 8-byte record per pixel and
//!   sorts; 20 M pixels ≈ 160 MB). [`BinnedPixelCurves`] uses constant memory (2^16 bins over a
//!   fixed score range); its AUROC comes with a guaranteed error bound and its AUPRO evaluates
//!   the exact PRO curve at the bin edges (see the type's docs for the error).
//! - AUPRO follows the MVTec AD evaluation code: ground-truth regions are 8-connected
//!   components per image; every pixel outside a region is a normal pixel; for each distinct
//!   threshold (descending), FPR = normal pixels ≥ t / all normal pixels and PRO = mean over all
//!   regions of the region's fraction ≥ t; the curve, starting at (0, 0), is integrated with the
//!   trapezoid rule up to `max_fpr` (linearly interpolated there) and divided by `max_fpr`.
//! - Percentiles interpolate linearly between order statistics (numpy's default).

use crate::grade::Verdict;
use serde::{Deserialize, Serialize};

/// Errors from metric computations.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MetricsError {
    #[error("{what}: lengths differ ({left} vs {right})")]
    LengthMismatch {
        what: &'static str,
        left: usize,
        right: usize,
    },
    #[error("{what}: needs both positive and negative samples (positives {positives}, negatives {negatives})")]
    OneClass {
        what: &'static str,
        positives: u64,
        negatives: u64,
    },
    #[error("{what}: score {index} is not a number")]
    NanScore { what: &'static str, index: usize },
    #[error("{what}: no samples")]
    Empty { what: &'static str },
    #[error("{what}: invalid parameter: {problem}")]
    InvalidParameter { what: &'static str, problem: String },
}

// ---------------------------------------------------------------------------------------------
// AUROC

/// Total-order key of an `f32` as a `u32` (larger value → larger key; −0 == +0).
#[inline]
fn f32_key(x: f32) -> u32 {
    let bits = (x + 0.0).to_bits(); // `+ 0.0` turns −0 into +0
    if bits & 0x8000_0000 != 0 {
        !bits
    } else {
        bits | 0x8000_0000
    }
}

/// AUROC of scores against binary labels (`true` = positive / defective), equal to
/// scikit-learn's `roc_auc_score` including ties.
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> Result<f64, MetricsError> {
    const WHAT: &str = "AUROC";
    if scores.len() != labels.len() {
        return Err(MetricsError::LengthMismatch {
            what: WHAT,
            left: scores.len(),
            right: labels.len(),
        });
    }
    if let Some(index) = scores.iter().position(|s| s.is_nan()) {
        return Err(MetricsError::NanScore { what: WHAT, index });
    }
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_unstable_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Walk ascending; for each group of equal scores, every negative below counts 1 per
    // positive in the group, and negatives in the group count ½.
    let mut neg_below = 0u64;
    let mut num = 0.0f64; // 2 × (pairs ranked right)
    let (mut pos_total, mut i) = (0u64, 0usize);
    while i < idx.len() {
        let v = scores[idx[i]];
        let (mut p, mut n) = (0u64, 0u64);
        while i < idx.len() && scores[idx[i]] == v {
            if labels[idx[i]] {
                p += 1;
            } else {
                n += 1;
            }
            i += 1;
        }
        num += (p as f64) * (2.0 * neg_below as f64 + n as f64);
        neg_below += n;
        pos_total += p;
    }
    finish_auc(WHAT, num, pos_total, neg_below)
}

fn finish_auc(what: &'static str, num2: f64, pos: u64, neg: u64) -> Result<f64, MetricsError> {
    if pos == 0 || neg == 0 {
        return Err(MetricsError::OneClass {
            what,
            positives: pos,
            negatives: neg,
        });
    }
    Ok(num2 / (2.0 * pos as f64 * neg as f64))
}

// ---------------------------------------------------------------------------------------------
// Connected components

/// Label the non-zero pixels of a row-major `w`×`h` mask into 8-connected components.
///
/// `labels` is resized to `w * h` (no allocation when it already has the capacity): 0 for
/// background, 1..=n for components, numbered in raster order of each component's first pixel
/// (the same numbering as `scipy.ndimage.label` with a 3×3 structure). Returns n.
///
/// Union–find over pixel indices kept in `labels` itself: parents always point to an earlier
/// pixel, so a second raster pass can replace parent links by final labels in place.
pub fn label_components(mask: &[u8], w: usize, h: usize, labels: &mut Vec<u32>) -> usize {
    let n = w * h;
    debug_assert!(mask.len() >= n, "mask shorter than w*h");
    debug_assert!(n < u32::MAX as usize, "image too large for u32 labels");
    labels.clear();
    labels.resize(n, 0);
    // Pass 1: labels[i] = parent pixel index + 1 (0 = background).
    #[inline]
    fn find(labels: &mut [u32], mut i: usize) -> usize {
        loop {
            let p = labels[i] as usize - 1;
            if p == i {
                return i;
            }
            let gp = labels[p] as usize - 1;
            labels[i] = gp as u32 + 1; // path halving
            i = gp;
        }
    }
    #[inline]
    fn union(labels: &mut [u32], a: usize, b: usize) {
        let ra = find(labels, a);
        let rb = find(labels, b);
        if ra < rb {
            labels[rb] = ra as u32 + 1;
        } else if rb < ra {
            labels[ra] = rb as u32 + 1;
        }
    }
    // a row with nothing set keeps its zeros (most of a defect map)
    let empty = |y: usize| mask[y * w..(y + 1) * w].iter().fold(0u8, |a, &m| a | m) == 0;
    for y in 0..h {
        if empty(y) {
            continue;
        }
        for x in 0..w {
            let i = y * w + x;
            if mask[i] == 0 {
                continue;
            }
            labels[i] = i as u32 + 1;
            if x > 0 && mask[i - 1] != 0 {
                union(labels, i, i - 1);
            }
            if y > 0 {
                let up = i - w;
                if x > 0 && mask[up - 1] != 0 {
                    union(labels, i, up - 1);
                }
                if mask[up] != 0 {
                    union(labels, i, up);
                }
                if x + 1 < w && mask[up + 1] != 0 {
                    union(labels, i, up + 1);
                }
            }
        }
    }
    // Pass 2: in raster order, a pixel's parent is earlier and already holds its final label.
    let mut count = 0u32;
    for y in 0..h {
        if empty(y) {
            continue;
        }
        for i in y * w..(y + 1) * w {
            if labels[i] == 0 {
                continue;
            }
            let p = labels[i] as usize - 1;
            if p == i {
                count += 1;
                labels[i] = count;
            } else {
                labels[i] = labels[p];
            }
        }
    }
    count as usize
}

/// Area, bounding box and raw moments of one component (frame or crop pixels, whichever the
/// mask was in).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ComponentStats {
    /// 1-based label as in the label image.
    pub label: u32,
    pub area_px: u64,
    /// Inclusive `[x0, y0, x1, y1]`.
    pub bbox: [u32; 4],
    /// Σx, Σy, Σx², Σy², Σxy over the component's pixels (pixel centres at integer coords).
    pub sum_x: f64,
    pub sum_y: f64,
    pub sum_xx: f64,
    pub sum_yy: f64,
    pub sum_xy: f64,
}

impl ComponentStats {
    /// Centroid `[x, y]`.
    pub fn centroid(&self) -> [f64; 2] {
        let a = self.area_px as f64;
        [self.sum_x / a, self.sum_y / a]
    }

    /// Central second moments `(mu20, mu02, mu11)` per pixel.
    pub fn central_moments(&self) -> (f64, f64, f64) {
        let a = self.area_px as f64;
        let [cx, cy] = self.centroid();
        (
            self.sum_xx / a - cx * cx,
            self.sum_yy / a - cy * cy,
            self.sum_xy / a - cx * cy,
        )
    }

    /// Principal axis standard deviations `(major, minor)` of the pixel distribution (px).
    pub fn axis_sigmas(&self) -> (f64, f64) {
        let (a, b, c) = self.central_moments();
        let t = 0.5 * (a + b);
        let d = (0.25 * (a - b) * (a - b) + c * c).sqrt();
        ((t + d).max(0.0).sqrt(), (t - d).max(0.0).sqrt())
    }
}

/// Per-component statistics from a label image made by [`label_components`]; `out` is
/// cleared and filled with `n` entries (index k ↔ label k + 1).
pub fn component_stats(
    labels: &[u32],
    w: usize,
    h: usize,
    n: usize,
    out: &mut Vec<ComponentStats>,
) {
    out.clear();
    out.extend((1..=n).map(|k| ComponentStats {
        label: k as u32,
        area_px: 0,
        bbox: [u32::MAX, u32::MAX, 0, 0],
        sum_x: 0.0,
        sum_y: 0.0,
        sum_xx: 0.0,
        sum_yy: 0.0,
        sum_xy: 0.0,
    }));
    for y in 0..h {
        for x in 0..w {
            let l = labels[y * w + x] as usize;
            if l == 0 || l > n {
                continue;
            }
            let s = &mut out[l - 1];
            let (xf, yf) = (x as f64, y as f64);
            s.area_px += 1;
            s.bbox[0] = s.bbox[0].min(x as u32);
            s.bbox[1] = s.bbox[1].min(y as u32);
            s.bbox[2] = s.bbox[2].max(x as u32);
            s.bbox[3] = s.bbox[3].max(y as u32);
            s.sum_x += xf;
            s.sum_y += yf;
            s.sum_xx += xf * xf;
            s.sum_yy += yf * yf;
            s.sum_xy += xf * yf;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Pixel curves: pixel AUROC and AUPRO

/// Exact accumulator for pixel AUROC and AUPRO over many images.
///
/// Keeps one `u64` per counted pixel (the score's order key and its region tag) and the size
/// of every ground-truth region: 8 bytes per pixel. Feed it image by image with [`push`].
///
/// [`push`]: PixelCurves::push
#[derive(Debug, Default, Clone)]
pub struct PixelCurves {
    /// `key << 32 | tag`; tag 0 = normal pixel, k ≥ 1 = region k (global numbering).
    records: Vec<u64>,
    /// Pixel count of region k at index k − 1.
    region_sizes: Vec<u32>,
    normal_pixels: u64,
    labels_scratch: Vec<u32>,
    gt_scratch: Vec<u8>,
}

impl PixelCurves {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add one image: `scores` (row-major anomaly map), `gt_mask` (non-zero = defect), and an
    /// optional `valid` mask (pixels where it is 0 are ignored entirely, e.g. beyond the
    /// contact zone). Ground-truth regions are 8-connected components of `gt ∧ valid`.
    pub fn push(
        &mut self,
        scores: &[f32],
        gt_mask: &[u8],
        valid: Option<&[u8]>,
        w: usize,
        h: usize,
    ) -> Result<(), MetricsError> {
        check_image("pixel curves", scores, gt_mask, valid, w, h)?;
        prepare_gt(gt_mask, valid, &mut self.gt_scratch);
        let n = label_components(&self.gt_scratch, w, h, &mut self.labels_scratch);
        let base = self.region_sizes.len() as u32;
        self.region_sizes.extend(std::iter::repeat_n(0, n));
        self.records.reserve(w * h);
        for i in 0..w * h {
            if valid.is_some_and(|v| v[i] == 0) {
                continue;
            }
            let l = self.labels_scratch[i];
            let tag = if l == 0 {
                self.normal_pixels += 1;
                0
            } else {
                self.region_sizes[(base + l - 1) as usize] += 1;
                base + l
            };
            self.records
                .push(((f32_key(scores[i]) as u64) << 32) | tag as u64);
        }
        Ok(())
    }

    /// Number of pixels counted so far.
    pub fn pixels(&self) -> usize {
        self.records.len()
    }

    /// Number of ground-truth regions seen so far.
    pub fn regions(&self) -> usize {
        self.region_sizes.len()
    }

    /// Sort once (descending score); later calls reuse the order.
    fn sorted(&mut self) -> &[u64] {
        self.records.sort_unstable_by(|a, b| b.cmp(a));
        &self.records
    }

    /// Pixel AUROC (defect pixels positive), exact, as scikit-learn on the flattened maps.
    pub fn auroc(&mut self) -> Result<f64, MetricsError> {
        const WHAT: &str = "pixel AUROC";
        let neg_total = self.normal_pixels;
        let pos_total = self.records.len() as u64 - neg_total;
        if pos_total == 0 || neg_total == 0 {
            return Err(MetricsError::OneClass {
                what: WHAT,
                positives: pos_total,
                negatives: neg_total,
            });
        }
        let recs = self.sorted();
        // Descending walk: each negative pairs correctly with every positive strictly above.
        let (mut pos_above, mut num2, mut i) = (0u64, 0.0f64, 0usize);
        while i < recs.len() {
            let key = recs[i] >> 32;
            let (mut p, mut n) = (0u64, 0u64);
            while i < recs.len() && recs[i] >> 32 == key {
                if recs[i] & 0xFFFF_FFFF == 0 {
                    n += 1;
                } else {
                    p += 1;
                }
                i += 1;
            }
            num2 += n as f64 * (2.0 * pos_above as f64 + p as f64);
            pos_above += p;
        }
        finish_auc(WHAT, num2, pos_total, neg_total)
    }

    /// AUPRO up to `max_fpr` (0 < max_fpr ≤ 1), normalized by `max_fpr`; MVTec definition.
    pub fn aupro(&mut self, max_fpr: f64) -> Result<f64, MetricsError> {
        const WHAT: &str = "AUPRO";
        check_max_fpr(WHAT, max_fpr)?;
        let (normal, regions) = (self.normal_pixels, self.region_sizes.len());
        if normal == 0 || regions == 0 {
            return Err(MetricsError::OneClass {
                what: WHAT,
                positives: regions as u64,
                negatives: normal,
            });
        }
        // Borrow dance: take the records out to use region_sizes while iterating.
        let mut recs = std::mem::take(&mut self.records);
        recs.sort_unstable_by(|a, b| b.cmp(a));
        let sizes = &self.region_sizes;
        let mut curve = ProCurve::new(max_fpr);
        let (mut fp, mut pro, mut i) = (0u64, 0.0f64, 0usize);
        while i < recs.len() && !curve.done() {
            let key = recs[i] >> 32;
            while i < recs.len() && recs[i] >> 32 == key {
                let tag = (recs[i] & 0xFFFF_FFFF) as usize;
                if tag == 0 {
                    fp += 1;
                } else {
                    pro += 1.0 / sizes[tag - 1] as f64;
                }
                i += 1;
            }
            curve.point(fp as f64 / normal as f64, pro / regions as f64);
        }
        self.records = recs;
        Ok(curve.finish())
    }
}

fn check_max_fpr(what: &'static str, max_fpr: f64) -> Result<(), MetricsError> {
    if !(max_fpr > 0.0 && max_fpr <= 1.0) {
        return Err(MetricsError::InvalidParameter {
            what,
            problem: format!("max_fpr {max_fpr} must be in (0, 1]"),
        });
    }
    Ok(())
}

fn check_image(
    what: &'static str,
    scores: &[f32],
    gt: &[u8],
    valid: Option<&[u8]>,
    w: usize,
    h: usize,
) -> Result<(), MetricsError> {
    let n = w * h;
    for len in [Some(scores.len()), Some(gt.len()), valid.map(<[u8]>::len)]
        .into_iter()
        .flatten()
    {
        if len != n {
            return Err(MetricsError::LengthMismatch {
                what,
                left: len,
                right: n,
            });
        }
    }
    if let Some(index) = scores.iter().position(|s| s.is_nan()) {
        return Err(MetricsError::NanScore { what, index });
    }
    Ok(())
}

fn prepare_gt(gt: &[u8], valid: Option<&[u8]>, out: &mut Vec<u8>) {
    out.clear();
    match valid {
        None => out.extend(gt.iter().map(|&g| u8::from(g != 0))),
        Some(v) => out.extend(gt.iter().zip(v).map(|(&g, &v)| u8::from(g != 0 && v != 0))),
    }
}

/// Trapezoid integration of a (FPR, PRO) curve fed in increasing FPR, from (0, 0), up to
/// `max_fpr` with linear interpolation there (MVTec's `trapezoid(x, y, x_max)`).
struct ProCurve {
    max_fpr: f64,
    last: (f64, f64),
    area: f64,
    done: bool,
}

impl ProCurve {
    fn new(max_fpr: f64) -> Self {
        Self {
            max_fpr,
            last: (0.0, 0.0),
            area: 0.0,
            done: false,
        }
    }

    fn done(&self) -> bool {
        self.done
    }

    fn point(&mut self, x: f64, y: f64) {
        if self.done {
            return;
        }
        let (x0, y0) = self.last;
        if x <= self.max_fpr {
            self.area += 0.5 * (y + y0) * (x - x0);
            self.last = (x, y);
            if x == self.max_fpr {
                self.done = true;
            }
        } else {
            let y_at = y0 + (y - y0) * (self.max_fpr - x0) / (x - x0);
            self.area += 0.5 * (y_at + y0) * (self.max_fpr - x0);
            self.done = true;
        }
    }

    fn finish(self) -> f64 {
        self.area / self.max_fpr
    }
}

/// Constant-memory pixel AUROC / AUPRO: scores are binned into `bins` equal bins over
/// `[lo, hi]` (values outside are clamped into the end bins).
///
/// Per bin it keeps the count of normal pixels, of defect pixels, and the sum of
/// 1 / (region size) over defect pixels — 24 bytes per bin, 1.5 MiB for 2^16 bins, whatever
/// the number of pixels.
/// - [`auroc`](Self::auroc) counts pairs within a bin as ties (½); it returns the value and a
///   bound `e` such that the exact AUROC lies in `[value − e, value + e]`
///   (`e = ½ Σ_b pos_b·neg_b / (P·N)`).
/// - [`aupro`](Self::aupro) evaluates the exact PRO curve at the bin edges (thresholds between
///   bins lose no information) and integrates those points with the trapezoid rule; the
///   difference from the exact AUPRO comes only from curve points inside bins (with 2^16 bins
///   over the score range it is below 1e-4 on the reference fixture).
#[derive(Debug, Clone)]
pub struct BinnedPixelCurves {
    lo: f32,
    hi: f32,
    neg: Vec<u64>,
    pos: Vec<u64>,
    pro: Vec<f64>,
    regions: u64,
    labels_scratch: Vec<u32>,
    gt_scratch: Vec<u8>,
    sizes_scratch: Vec<u32>,
}

impl BinnedPixelCurves {
    /// `bins` ≥ 2 bins over `[lo, hi]` (lo < hi, finite).
    pub fn new(lo: f32, hi: f32, bins: usize) -> Result<Self, MetricsError> {
        if !(lo.is_finite() && hi.is_finite() && lo < hi && bins >= 2) {
            return Err(MetricsError::InvalidParameter {
                what: "binned pixel curves",
                problem: format!("need finite lo < hi and ≥ 2 bins, got [{lo}, {hi}] with {bins}"),
            });
        }
        Ok(Self {
            lo,
            hi,
            neg: vec![0; bins],
            pos: vec![0; bins],
            pro: vec![0.0; bins],
            regions: 0,
            labels_scratch: Vec::new(),
            gt_scratch: Vec::new(),
            sizes_scratch: Vec::new(),
        })
    }

    #[inline]
    fn bin(&self, s: f32) -> usize {
        let n = self.neg.len();
        let t = ((s - self.lo) / (self.hi - self.lo)) as f64 * n as f64;
        // Saturating float → int cast clamps below 0; clamp above here.
        (t as usize).min(n - 1)
    }

    /// Add one image; same arguments as [`PixelCurves::push`].
    pub fn push(
        &mut self,
        scores: &[f32],
        gt_mask: &[u8],
        valid: Option<&[u8]>,
        w: usize,
        h: usize,
    ) -> Result<(), MetricsError> {
        check_image("binned pixel curves", scores, gt_mask, valid, w, h)?;
        prepare_gt(gt_mask, valid, &mut self.gt_scratch);
        let n = label_components(&self.gt_scratch, w, h, &mut self.labels_scratch);
        self.regions += n as u64;
        self.sizes_scratch.clear();
        self.sizes_scratch.resize(n, 0);
        for &l in &self.labels_scratch {
            if l != 0 {
                self.sizes_scratch[l as usize - 1] += 1;
            }
        }
        for i in 0..w * h {
            if valid.is_some_and(|v| v[i] == 0) {
                continue;
            }
            let b = self.bin(scores[i]);
            let l = self.labels_scratch[i];
            if l == 0 {
                self.neg[b] += 1;
            } else {
                self.pos[b] += 1;
                self.pro[b] += 1.0 / self.sizes_scratch[l as usize - 1] as f64;
            }
        }
        Ok(())
    }

    /// `(auroc, max_error)`: see the type's docs.
    pub fn auroc(&self) -> Result<(f64, f64), MetricsError> {
        let p: u64 = self.pos.iter().sum();
        let n: u64 = self.neg.iter().sum();
        let (mut pos_above, mut num2, mut tie) = (0u64, 0.0f64, 0.0f64);
        for b in (0..self.neg.len()).rev() {
            num2 += self.neg[b] as f64 * (2.0 * pos_above as f64 + self.pos[b] as f64);
            tie += self.neg[b] as f64 * self.pos[b] as f64;
            pos_above += self.pos[b];
        }
        let auc = finish_auc("binned pixel AUROC", num2, p, n)?;
        Ok((auc, 0.5 * tie / (p as f64 * n as f64)))
    }

    /// AUPRO up to `max_fpr`, from the PRO curve at bin edges.
    pub fn aupro(&self, max_fpr: f64) -> Result<f64, MetricsError> {
        const WHAT: &str = "binned AUPRO";
        check_max_fpr(WHAT, max_fpr)?;
        let normal: u64 = self.neg.iter().sum();
        if normal == 0 || self.regions == 0 {
            return Err(MetricsError::OneClass {
                what: WHAT,
                positives: self.regions,
                negatives: normal,
            });
        }
        let mut curve = ProCurve::new(max_fpr);
        let (mut fp, mut pro) = (0u64, 0.0f64);
        for b in (0..self.neg.len()).rev() {
            if self.neg[b] == 0 && self.pos[b] == 0 {
                continue;
            }
            fp += self.neg[b];
            pro += self.pro[b];
            curve.point(fp as f64 / normal as f64, pro / self.regions as f64);
            if curve.done() {
                break;
            }
        }
        Ok(curve.finish())
    }
}

// ---------------------------------------------------------------------------------------------
// IoU

/// Intersection and union pixel counts of two masks (non-zero = on).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overlap {
    pub intersection: u64,
    pub union: u64,
}

impl Overlap {
    /// IoU; `None` when both masks are empty (undefined).
    pub fn iou(&self) -> Option<f64> {
        (self.union > 0).then(|| self.intersection as f64 / self.union as f64)
    }

    /// Add another image's counts (dataset-level IoU = Σ intersections / Σ unions).
    pub fn add(&mut self, other: Overlap) {
        self.intersection += other.intersection;
        self.union += other.union;
    }
}

/// Overlap of a predicted and a ground-truth mask of equal length.
pub fn overlap(pred: &[u8], gt: &[u8]) -> Result<Overlap, MetricsError> {
    if pred.len() != gt.len() {
        return Err(MetricsError::LengthMismatch {
            what: "IoU",
            left: pred.len(),
            right: gt.len(),
        });
    }
    let mut o = Overlap::default();
    for (&p, &g) in pred.iter().zip(gt) {
        let (p, g) = (p != 0, g != 0);
        o.intersection += u64::from(p && g);
        o.union += u64::from(p || g);
    }
    Ok(o)
}

/// IoU of two masks; `Ok(None)` when both are empty.
pub fn iou(pred: &[u8], gt: &[u8]) -> Result<Option<f64>, MetricsError> {
    Ok(overlap(pred, gt)?.iou())
}

/// Threshold a score map into a 0/255 mask (`score >= threshold` is on) in `out`.
pub fn threshold_mask(scores: &[f32], threshold: f32, out: &mut Vec<u8>) {
    out.clear();
    out.extend(scores.iter().map(|&s| if s >= threshold { 255 } else { 0 }));
}

// ---------------------------------------------------------------------------------------------
// Verdict confusion matrix

/// Verdict confusion matrix: rows = truth, columns = predicted, order pass, fail, unable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confusion {
    /// `matrix[truth][predicted]`, index by [`Confusion::index`].
    pub matrix: [[u64; 3]; 3],
}

impl Confusion {
    /// Row/column order.
    pub const ORDER: [Verdict; 3] = [Verdict::Pass, Verdict::Fail, Verdict::Unable];

    pub fn index(v: Verdict) -> usize {
        match v {
            Verdict::Pass => 0,
            Verdict::Fail => 1,
            Verdict::Unable => 2,
        }
    }

    pub fn add(&mut self, truth: Verdict, predicted: Verdict) {
        self.matrix[Self::index(truth)][Self::index(predicted)] += 1;
    }

    pub fn total(&self) -> u64 {
        self.matrix.iter().flatten().sum()
    }

    /// Fraction of exact agreements; `None` with no samples. UNABLE predictions count as wrong
    /// unless the truth is UNABLE.
    pub fn accuracy(&self) -> Option<f64> {
        let t = self.total();
        (t > 0).then(|| (0..3).map(|i| self.matrix[i][i]).sum::<u64>() as f64 / t as f64)
    }

    /// Truth FAIL predicted PASS: the dangerous error.
    pub fn false_pass(&self) -> u64 {
        self.matrix[1][0]
    }

    /// Truth PASS predicted FAIL.
    pub fn false_fail(&self) -> u64 {
        self.matrix[0][1]
    }
}

// ---------------------------------------------------------------------------------------------
// Percentiles

/// The `q`-th percentile (0 ≤ q ≤ 100) with linear interpolation (numpy's default). Sorts
/// `values` in place. `None` when empty, when q is out of range, or when a value is NaN.
pub fn percentile(values: &mut [f64], q: f64) -> Option<f64> {
    if values.is_empty() || !(0.0..=100.0).contains(&q) || values.iter().any(|v| v.is_nan()) {
        return None;
    }
    values.sort_unstable_by(f64::total_cmp);
    Some(percentile_sorted(values, q))
}

/// Percentile of an already ascending-sorted, non-empty slice (see [`percentile`]).
pub fn percentile_sorted(sorted: &[f64], q: f64) -> f64 {
    let pos = q / 100.0 * (sorted.len() - 1) as f64;
    let i = pos.floor() as usize;
    let frac = pos - i as f64;
    if i + 1 >= sorted.len() {
        return sorted[sorted.len() - 1];
    }
    // numpy's `_lerp`: a + (b - a) * t, computed from the side nearer to t.
    let (a, b) = (sorted[i], sorted[i + 1]);
    let d = b - a;
    if frac >= 0.5 {
        b - d * (1.0 - frac)
    } else {
        a + d * frac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_keys_order() {
        let v = [-3.5f32, -0.0, 0.0, 1e-30, 0.5, 2.0, f32::INFINITY];
        for w in v.windows(2) {
            assert!(f32_key(w[0]) <= f32_key(w[1]), "{w:?}");
        }
        assert_eq!(f32_key(-0.0), f32_key(0.0));
        assert!(f32_key(f32::NEG_INFINITY) < f32_key(-3.5));
    }

    #[test]
    fn labelling_reuses_buffer() {
        let mask = [1u8, 0, 1, 0, 1, 0, 1, 0, 1];
        let mut labels = Vec::with_capacity(9);
        let cap = labels.capacity();
        // An X pattern is one 8-connected component.
        assert_eq!(label_components(&mask, 3, 3, &mut labels), 1);
        assert_eq!(labels.capacity(), cap);
        let mask = [1u8, 0, 1, 0, 0, 0, 1, 0, 1];
        assert_eq!(label_components(&mask, 3, 3, &mut labels), 4);
        assert_eq!(labels, vec![1, 0, 2, 0, 0, 0, 3, 0, 4]);
        // U-shape: the right arm joins the left only through the bottom row.
        let mask = [1u8, 0, 1, 1, 0, 1, 1, 1, 1];
        assert_eq!(label_components(&mask, 3, 3, &mut labels), 1);
    }
}
