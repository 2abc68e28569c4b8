//! src/metrics.rs against values computed independently by scripts/metrics_reference.py
//! (scikit-learn roc_auc_score / confusion_matrix / accuracy_score, numpy.percentile,
//! scipy.ndimage.label, MVTec AD's compute_pro + trapezoid). Regenerate the fixture with:
//!
//!     /work/main/.venv/bin/python scripts/metrics_reference.py > tests/fixtures/metrics_reference.json

use endface::grade::Verdict;
use endface::metrics::{
    component_stats, label_components, overlap, percentile, roc_auc, threshold_mask,
    BinnedPixelCurves, Confusion, MetricsError, Overlap, PixelCurves,
};
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    image_auroc: Vec<AurocCase>,
    pixel: Pixel,
    percentiles: Percentiles,
    confusion: ConfusionRef,
}

#[derive(Deserialize)]
struct AurocCase {
    scores: Vec<f64>,
    labels: Vec<u8>,
    auroc: f64,
}

#[derive(Deserialize)]
struct Pixel {
    width: usize,
    height: usize,
    scores: Vec<Vec<f64>>,
    gt: Vec<Vec<u8>>,
    pixel_auroc: f64,
    aupro_0_3: f64,
    aupro_1_0: f64,
    components: Vec<Components>,
    iou_threshold: f32,
    iou_per_image: Vec<Option<f64>>,
    iou_total: f64,
}

#[derive(Deserialize)]
struct Components {
    n: usize,
    labels: Vec<u32>,
    areas: Vec<u64>,
    bboxes: Vec<[u32; 4]>,
}

#[derive(Deserialize)]
struct Percentiles {
    values: Vec<f64>,
    q: Vec<f64>,
    expected: Vec<f64>,
    values_even: Vec<f64>,
    expected_even: Vec<f64>,
}

#[derive(Deserialize)]
struct ConfusionRef {
    truth: Vec<String>,
    pred: Vec<String>,
    matrix: [[u64; 3]; 3],
    accuracy: f64,
}

fn reference() -> Reference {
    let text = include_str!("fixtures/metrics_reference.json");
    serde_json::from_str(text).expect("fixture parses")
}

fn maps(p: &Pixel) -> Vec<(Vec<f32>, Vec<u8>)> {
    p.scores
        .iter()
        .zip(&p.gt)
        .map(|(s, g)| (s.iter().map(|&v| v as f32).collect(), g.clone()))
        .collect()
}

#[track_caller]
fn close(got: f64, want: f64, tol: f64, what: &str) {
    assert!(
        (got - want).abs() <= tol,
        "{what}: got {got}, want {want} (tol {tol})"
    );
}

#[test]
fn image_auroc_matches_sklearn() {
    for (k, case) in reference().image_auroc.iter().enumerate() {
        let labels: Vec<bool> = case.labels.iter().map(|&l| l != 0).collect();
        let got = roc_auc(&case.scores, &labels).unwrap();
        close(got, case.auroc, 1e-12, &format!("image AUROC case {k}"));
    }
    assert!(matches!(
        roc_auc(&[0.1, 0.2], &[true, true]),
        Err(MetricsError::OneClass { .. })
    ));
    assert!(matches!(
        roc_auc(&[0.1, f64::NAN], &[true, false]),
        Err(MetricsError::NanScore { index: 1, .. })
    ));
    assert!(roc_auc(&[0.1], &[true, false]).is_err());
}

#[test]
fn components_match_scipy() {
    let r = reference();
    let (w, h) = (r.pixel.width, r.pixel.height);
    let mut labels = Vec::new();
    let mut stats = Vec::new();
    for (k, (gt, want)) in r.pixel.gt.iter().zip(&r.pixel.components).enumerate() {
        let n = label_components(gt, w, h, &mut labels);
        assert_eq!(n, want.n, "image {k}: component count");
        assert_eq!(labels, want.labels, "image {k}: label image");
        component_stats(&labels, w, h, n, &mut stats);
        let areas: Vec<u64> = stats.iter().map(|s| s.area_px).collect();
        let bboxes: Vec<[u32; 4]> = stats.iter().map(|s| s.bbox).collect();
        assert_eq!(areas, want.areas, "image {k}: areas");
        assert_eq!(bboxes, want.bboxes, "image {k}: bboxes");
    }
}

#[test]
fn component_moments() {
    // A horizontal 1×9 line: centroid (4, 0), major sigma = sqrt(var(0..9)) = sqrt(60/9), minor 0.
    let mut mask = vec![0u8; 9 * 3];
    mask[9..18].iter_mut().for_each(|m| *m = 255);
    let mut labels = Vec::new();
    let mut stats = Vec::new();
    let n = label_components(&mask, 9, 3, &mut labels);
    component_stats(&labels, 9, 3, n, &mut stats);
    assert_eq!(n, 1);
    assert_eq!(stats[0].centroid(), [4.0, 1.0]);
    let (major, minor) = stats[0].axis_sigmas();
    close(major, (60.0f64 / 9.0).sqrt(), 1e-12, "major sigma");
    close(minor, 0.0, 1e-6, "minor sigma");
}

#[test]
fn pixel_auroc_and_aupro_match_reference() {
    let r = reference();
    let p = &r.pixel;
    let mut exact = PixelCurves::new();
    for (s, g) in maps(p) {
        exact.push(&s, &g, None, p.width, p.height).unwrap();
    }
    assert_eq!(exact.pixels(), p.width * p.height * p.gt.len());
    assert_eq!(
        exact.regions(),
        p.components.iter().map(|c| c.n).sum::<usize>()
    );
    close(exact.auroc().unwrap(), p.pixel_auroc, 1e-9, "pixel AUROC");
    // Same trapezoid scheme as MVTec's code: agreement to rounding.
    close(exact.aupro(0.3).unwrap(), p.aupro_0_3, 1e-9, "AUPRO@0.3");
    close(exact.aupro(1.0).unwrap(), p.aupro_1_0, 1e-9, "AUPRO@1.0");
    // Calling again (already sorted) gives the same.
    close(
        exact.auroc().unwrap(),
        p.pixel_auroc,
        1e-9,
        "pixel AUROC again",
    );
    assert!(exact.aupro(0.0).is_err());
}

#[test]
fn binned_curves_match_within_their_bounds() {
    let r = reference();
    let p = &r.pixel;
    let all = maps(p);
    let lo = all
        .iter()
        .flat_map(|(s, _)| s.iter().copied())
        .fold(f32::MAX, f32::min);
    let hi = all
        .iter()
        .flat_map(|(s, _)| s.iter().copied())
        .fold(f32::MIN, f32::max);
    let mut binned = BinnedPixelCurves::new(lo, hi, 1 << 16).unwrap();
    for (s, g) in &all {
        binned.push(s, g, None, p.width, p.height).unwrap();
    }
    let (auc, bound) = binned.auroc().unwrap();
    assert!(
        (auc - p.pixel_auroc).abs() <= bound + 1e-12,
        "{auc} ± {bound} vs {}",
        p.pixel_auroc
    );
    // Scores are rounded to 0.01 and 2^16 bins are far finer: every tie group has its own bin.
    close(auc, p.pixel_auroc, 1e-9, "binned pixel AUROC");
    close(
        binned.aupro(0.3).unwrap(),
        p.aupro_0_3,
        1e-4,
        "binned AUPRO@0.3",
    );
    // Coarse bins: the bound still holds, and grows.
    let mut coarse = BinnedPixelCurves::new(lo, hi, 8).unwrap();
    for (s, g) in &all {
        coarse.push(s, g, None, p.width, p.height).unwrap();
    }
    let (auc8, bound8) = coarse.auroc().unwrap();
    assert!(bound8 > 1e-3);
    assert!((auc8 - p.pixel_auroc).abs() <= bound8 + 1e-12);
    assert!(BinnedPixelCurves::new(1.0, 1.0, 10).is_err());
}

#[test]
fn valid_mask_excludes_pixels() {
    // Excluding pixels must equal dropping them: compare against a cropped copy.
    let r = reference();
    let p = &r.pixel;
    let (w, h) = (p.width, p.height);
    let keep_w = w / 2;
    let mut with_valid = PixelCurves::new();
    let mut cropped = PixelCurves::new();
    for (s, g) in maps(p) {
        let valid: Vec<u8> = (0..w * h).map(|i| u8::from(i % w < keep_w)).collect();
        with_valid.push(&s, &g, Some(&valid), w, h).unwrap();
        let cs: Vec<f32> = (0..w * h)
            .filter(|i| i % w < keep_w)
            .map(|i| s[i])
            .collect();
        let cg: Vec<u8> = (0..w * h)
            .filter(|i| i % w < keep_w)
            .map(|i| g[i])
            .collect();
        cropped.push(&cs, &cg, None, keep_w, h).unwrap();
    }
    assert_eq!(with_valid.pixels(), cropped.pixels());
    assert_eq!(with_valid.regions(), cropped.regions());
    close(
        with_valid.auroc().unwrap(),
        cropped.auroc().unwrap(),
        1e-12,
        "AUROC",
    );
    close(
        with_valid.aupro(0.3).unwrap(),
        cropped.aupro(0.3).unwrap(),
        1e-12,
        "AUPRO",
    );
}

#[test]
fn iou_matches_reference() {
    let r = reference();
    let p = &r.pixel;
    let mut total = Overlap::default();
    let mut mask = Vec::new();
    for ((s, g), want) in maps(p).iter().zip(&p.iou_per_image) {
        threshold_mask(s, p.iou_threshold, &mut mask);
        let o = overlap(&mask, g).unwrap();
        match (o.iou(), want) {
            (Some(a), Some(b)) => close(a, *b, 1e-12, "IoU"),
            (a, b) => assert_eq!(a, *b),
        }
        total.add(o);
    }
    close(total.iou().unwrap(), p.iou_total, 1e-12, "dataset IoU");
    assert_eq!(overlap(&[0, 0], &[0, 0]).unwrap().iou(), None);
    assert!(overlap(&[0], &[0, 0]).is_err());
}

#[test]
fn percentiles_match_numpy() {
    let r = reference().percentiles;
    for (vals, exp) in [(&r.values, &r.expected), (&r.values_even, &r.expected_even)] {
        for (q, want) in r.q.iter().zip(exp) {
            let mut v = vals.clone();
            close(
                percentile(&mut v, *q).unwrap(),
                *want,
                1e-9,
                &format!("p{q}"),
            );
        }
    }
    assert_eq!(percentile(&mut [], 50.0), None);
    assert_eq!(percentile(&mut [1.0], 101.0), None);
    assert_eq!(percentile(&mut [3.0], 50.0), Some(3.0));
}

#[test]
fn confusion_matches_sklearn() {
    let r = reference().confusion;
    let parse = |s: &str| match s {
        "pass" => Verdict::Pass,
        "fail" => Verdict::Fail,
        _ => Verdict::Unable,
    };
    let mut c = Confusion::default();
    for (t, p) in r.truth.iter().zip(&r.pred) {
        c.add(parse(t), parse(p));
    }
    assert_eq!(c.matrix, r.matrix);
    close(c.accuracy().unwrap(), r.accuracy, 1e-12, "accuracy");
    assert_eq!(c.false_pass(), r.matrix[1][0]);
    assert_eq!(Confusion::default().accuracy(), None);
}
