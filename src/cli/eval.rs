//! `endface eval DATASET [--json] [--config FILE] ...`: run the inspector over a labelled
//! dataset (docs/dataset-format.md) and score it.
//!
//! In: the dataset's `test/` images, masks and `labels.jsonl`; the station options as for
//! `inspect` (each image's `um_per_px` and `fiber` from its label or `dataset.toml` override
//! the station's). Out: image AUROC (image score vs good/defect folder), pixel AUROC and AUPRO
//! (FPR ≤ 0.3) of the anomaly map mapped back to frame pixels (0 outside the crop), IoU of the
//! thresholded map with the ground-truth masks, verdict accuracy and confusion matrix against
//! the labels' verdicts, localization error against the labels' centres and radii, a per-kind
//! breakdown, per-stage latency percentiles, and how measured sizes compare with the labelled
//! ones (`sizing`: per labelled defect kind, each labelled defect in the contact zone against the
//! found defect its box overlaps most). `--json` prints one object with the keys
//! `image_auroc`, `pixel_auroc`, `aupro`, `iou`, `verdict_accuracy`, `confusion`,
//! `localization`, `per_kind`, `sizing`, `latency_ms` (plus context).
//!
//! Pixel metrics count only pixels inside the contact zone (zone D's outer circle around the
//! labelled centre, else the located one): nothing beyond it is graded. `--pixel-space crop`
//! counts them in the model's crop instead (the mask resampled like the image, ≥ 0.5), which is
//! how the training pipeline's model card is scored. A pixel is predicted defective when its
//! map value is above the pixel threshold (as the defect extraction decides). Images the inspector
//! could not grade (UNABLE) have no map or score: they count in the verdict metrics (as wrong
//! unless labelled unable) and are left out of the score metrics (reported as `unable`).
//! Pixel AUROC/AUPRO use `metrics::BinnedPixelCurves` (2^16 bins over [0, score_hi]; the
//! AUROC error bound is reported).

use super::inspect::{build_inspector, resolve_profile, StationOpts};
use endface::dataset::{self, Dataset, DatasetImage};
use endface::error::{coded, exit};
use endface::grade::{FeatureKind, Profile, Verdict};
use endface::imageio;
use endface::inspect::border::FrameContent;
use endface::inspect::crop::CropScratch;
use endface::inspect::{InspectError, InspectedDefect, Inspection};
use endface::metrics::{self, BinnedPixelCurves, Confusion, Overlap, PixelCurves};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use tracing::{info, warn};

/// AUPRO integration limit.
const AUPRO_MAX_FPR: f64 = 0.3;
/// Bins of the pixel curves.
const PIXEL_BINS: usize = 1 << 16;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Dataset folder (MVTec layout + labels.jsonl).
    #[arg(value_name = "DATASET")]
    pub dataset: PathBuf,
    /// One JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub station: StationOpts,
    /// Use the labelled fiber centre instead of the localizer (scores the model alone).
    #[arg(long)]
    pub truth_center: bool,
    /// Evaluate at most N test images (in dataset order).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Where pixel metrics are counted: `frame` (the camera's pixels; the map resampled back,
    /// 0 outside the crop) or `crop` (the model's pixels, the mask resampled into the crop:
    /// how the training pipeline scores its model card).
    #[arg(long, value_enum, default_value_t = PixelSpace::Frame)]
    pub pixel_space: PixelSpace,
    /// Exact pixel AUROC/AUPRO (keeps 8 bytes per counted pixel: ~200 MB for 200 frames)
    /// instead of 2^16 bins over [0, score_hi].
    #[arg(long)]
    pub exact_pixel_metrics: bool,
    /// Also write one JSON line per evaluated image into FILE: the image, its kind, the label's
    /// verdict and the station's, whether they agree, the image score, the reasons, the found
    /// defects (as `inspect --json` gives them) and the labelled ones — which frames were
    /// wrong, and why, for a line engineer to look at.
    #[arg(long, value_name = "FILE")]
    pub per_image: Option<PathBuf>,
}

enum Curves {
    Exact(PixelCurves),
    Binned(BinnedPixelCurves),
}

impl Curves {
    /// `(auroc, error bound)`.
    fn auroc(&mut self) -> Result<(f64, f64), metrics::MetricsError> {
        match self {
            Curves::Exact(c) => c.auroc().map(|a| (a, 0.0)),
            Curves::Binned(c) => c.auroc(),
        }
    }
    fn aupro(&mut self, max_fpr: f64) -> Result<f64, metrics::MetricsError> {
        match self {
            Curves::Exact(c) => c.aupro(max_fpr),
            Curves::Binned(c) => c.aupro(max_fpr),
        }
    }
}

/// Pixel space of the pixel metrics.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PixelSpace {
    Frame,
    Crop,
}

#[derive(Debug, Default, Serialize)]
struct Stat {
    n: usize,
    mean: Option<f64>,
    p50: Option<f64>,
    p95: Option<f64>,
    max: Option<f64>,
}

fn stat(mut v: Vec<f64>) -> Stat {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return Stat::default();
    }
    v.sort_unstable_by(f64::total_cmp);
    Stat {
        n: v.len(),
        mean: Some(v.iter().sum::<f64>() / v.len() as f64),
        p50: Some(metrics::percentile_sorted(&v, 50.0)),
        p95: Some(metrics::percentile_sorted(&v, 95.0)),
        max: v.last().copied(),
    }
}

#[derive(Debug, Default, Serialize)]
struct Latency {
    p50: Option<f64>,
    p90: Option<f64>,
    p99: Option<f64>,
    max: Option<f64>,
    n: usize,
}

fn latency(mut v: Vec<f64>) -> Latency {
    if v.is_empty() {
        return Latency::default();
    }
    v.sort_unstable_by(f64::total_cmp);
    Latency {
        p50: Some(metrics::percentile_sorted(&v, 50.0)),
        p90: Some(metrics::percentile_sorted(&v, 90.0)),
        p99: Some(metrics::percentile_sorted(&v, 99.0)),
        max: v.last().copied(),
        n: v.len(),
    }
}

#[derive(Debug, Serialize)]
struct ConfusionOut {
    /// Row = label, column = prediction, in this order.
    order: [&'static str; 3],
    matrix: [[u64; 3]; 3],
    false_pass: u64,
    false_fail: u64,
}

#[derive(Debug, Serialize)]
struct Localization {
    /// Images with a labelled centre and a located one.
    n: usize,
    /// Images with a labelled centre the localizer did not find.
    not_found: usize,
    center_error_px: Stat,
    center_error_um: Stat,
    radius_error_px: Stat,
}

#[derive(Debug, Serialize)]
struct KindReport {
    images: usize,
    unable: usize,
    /// AUROC of this kind's image scores against the good images'.
    image_auroc: Option<f64>,
    /// Fraction of graded images whose image score is above the image threshold.
    flagged_rate: Option<f64>,
    verdict_accuracy: Option<f64>,
    iou: Option<f64>,
    mean_image_score: Option<f64>,
}

/// How the sizes the station measures compare with the labels' (per labelled defect kind).
#[derive(Debug, Serialize)]
struct SizeReport {
    /// Labelled defects with a size and a box.
    labelled: usize,
    /// Of those, how many overlap a defect the station found (boxes in frame pixels).
    matched: usize,
    /// Share of the matched ones the station graded as the same class (scratch, or a defect
    /// sized by its diameter).
    same_class: Option<f64>,
    /// Mean of (measured − labelled) size in µm over the matched ones.
    bias_um: Option<f64>,
    /// Mean absolute error (µm).
    mae_um: Option<f64>,
    /// 90th percentile of the absolute error (µm).
    p90_abs_um: Option<f64>,
}

#[derive(Default)]
struct SizeAcc {
    labelled: usize,
    same_class: usize,
    err: Vec<f64>,
}

impl SizeAcc {
    fn report(mut self) -> SizeReport {
        let n = self.err.len();
        let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
        let bias_um = mean(&self.err);
        let mut abs: Vec<f64> = self.err.drain(..).map(f64::abs).collect();
        let mae_um = mean(&abs);
        abs.sort_unstable_by(f64::total_cmp);
        let p90_abs_um = (!abs.is_empty()).then(|| abs[((abs.len() - 1) * 9).div_ceil(10)]);
        SizeReport {
            labelled: self.labelled,
            matched: n,
            same_class: (n > 0).then(|| self.same_class as f64 / n as f64),
            bias_um,
            mae_um,
            p90_abs_um,
        }
    }
}

/// The found defect whose box overlaps the labelled box `b` most (1 px of slack; inclusive
/// frame-pixel boxes), if any.
fn best_overlap(b: [u32; 4], found: &[InspectedDefect]) -> Option<&InspectedDefect> {
    let (x0, y0) = (b[0].saturating_sub(1), b[1].saturating_sub(1));
    let (x1, y1) = (b[2].saturating_add(1), b[3].saturating_add(1));
    found
        .iter()
        .filter_map(|d| {
            let w = x1.min(d.bbox[2]).checked_sub(x0.max(d.bbox[0]))?;
            let h = y1.min(d.bbox[3]).checked_sub(y0.max(d.bbox[1]))?;
            Some(((w as u64 + 1) * (h as u64 + 1), d))
        })
        .max_by_key(|&(a, _)| a)
        .map(|(_, d)| d)
}

#[derive(Debug, Serialize)]
struct Report {
    dataset: String,
    images: usize,
    /// Images graded UNABLE (no score or map).
    unable: usize,
    image_auroc: Option<f64>,
    pixel_auroc: Option<f64>,
    pixel_auroc_error_bound: Option<f64>,
    aupro: Option<f64>,
    aupro_max_fpr: f64,
    iou: Option<f64>,
    verdict_accuracy: Option<f64>,
    /// Images whose label carries a verdict.
    verdict_labelled: u64,
    confusion: ConfusionOut,
    localization: Localization,
    per_kind: BTreeMap<String, KindReport>,
    /// Measured against labelled defect sizes, per labelled defect kind (defects in the
    /// contact zone whose label has a size and a box).
    sizing: BTreeMap<String, SizeReport>,
    latency_ms: BTreeMap<String, Latency>,
    pixel_threshold: f32,
    image_threshold: f32,
    model_sha256: String,
    execution_provider: String,
    truth_center: bool,
    pixel_space: PixelSpace,
}

#[derive(Default)]
struct KindAcc {
    images: usize,
    unable: usize,
    scores: Vec<f64>,
    flagged: usize,
    confusion: Confusion,
    overlap: Overlap,
}

fn parse_verdict(s: &str) -> Option<Verdict> {
    match s.to_ascii_lowercase().as_str() {
        "pass" => Some(Verdict::Pass),
        "fail" => Some(Verdict::Fail),
        "unable" => Some(Verdict::Unable),
        _ => None,
    }
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let ds = Dataset::open(&args.dataset).map_err(|e| coded(dataset::exit_code(&e), e))?;
    let (mut inspector, cfg) = build_inspector(&args.station)?;
    let station_scale = cfg.calibration.pixel_scale();
    let station_profile = cfg.station.profile.clone();
    let config_dir = args
        .station
        .config
        .as_ref()
        .and_then(|p| p.parent().map(PathBuf::from));
    let mut profiles: BTreeMap<String, Profile> = BTreeMap::new();

    let score_hi = (2.0 * inspector.pixel_threshold().max(inspector.image_threshold())).max(1.0);
    let mut curves = if args.exact_pixel_metrics {
        Curves::Exact(PixelCurves::new())
    } else {
        Curves::Binned(BinnedPixelCurves::new(0.0, score_hi, PIXEL_BINS)?)
    };
    let mut scores: Vec<f64> = Vec::new();
    let mut is_defect: Vec<bool> = Vec::new();
    let mut confusion = Confusion::default();
    let mut overlap = Overlap::default();
    let mut per_kind: BTreeMap<String, KindAcc> = BTreeMap::new();
    let mut sizing: BTreeMap<String, SizeAcc> = BTreeMap::new();
    let mut lat: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    let (mut loc_px, mut loc_um, mut rad_px) = (Vec::new(), Vec::new(), Vec::new());
    let mut not_found = 0usize;
    let mut unable = 0usize;
    let (mut pred_mask, mut gt_mask, mut valid) = (Vec::new(), Vec::new(), Vec::new());
    let (mut mask_crop, mut crop_scratch) = (Vec::new(), CropScratch::default());

    let images: Vec<&DatasetImage> = ds
        .test
        .iter()
        .take(args.limit.unwrap_or(usize::MAX))
        .collect();
    if images.is_empty() {
        return Err(coded(
            exit::BAD_DATASET,
            anyhow::anyhow!("dataset {}: no test images to evaluate", ds.root.display()),
        ));
    }
    info!(
        "evaluating {} test images of {}",
        images.len(),
        ds.root.display()
    );
    let mut per_image = match &args.per_image {
        Some(path) => Some((
            path,
            std::io::BufWriter::new(std::fs::File::create(path).map_err(|e| {
                coded(
                    exit::INPUT_IO,
                    anyhow::anyhow!(
                        "cannot create the per-image file {}: {e} (check the folder exists \
                         and is writable)",
                        path.display()
                    ),
                )
            })?),
        )),
        None => None,
    };
    for img in &images {
        let frame = imageio::load_gray(&img.path).map_err(|e| coded(imageio::exit_code(&e), e))?;
        let (w, h) = frame.dimensions();
        let scale = ds.scale_of(img).unwrap_or(station_scale);
        inspector
            .set_pixel_scale(scale)
            .map_err(|e| coded(e.exit_code(), anyhow::anyhow!("{}: {e}", img.rel)))?;
        let fiber = ds.fiber_of(img).unwrap_or(&station_profile).to_string();
        if inspector.profile().name != fiber {
            if !profiles.contains_key(&fiber) {
                let p = resolve_profile(&fiber, config_dir.as_deref())
                    .map_err(|e| e.context(format!("{}: fiber of the image", img.rel)))?;
                profiles.insert(fiber.clone(), p);
            }
            if let Some(p) = profiles.get(&fiber) {
                inspector.set_profile(p.clone());
            }
        }
        let label = img.label.as_ref();
        let insp: Inspection = match (args.truth_center, label.and_then(|l| l.center)) {
            (true, Some(center)) => {
                let r = label.and_then(|l| l.cladding_radius_px).unwrap_or(f64::NAN);
                let loc = endface::locate::Located {
                    center_in_frame: center,
                    cladding_radius_px: r,
                    radius_y_px: r * scale.aspect_y_over_x(),
                    confidence: 1.0,
                    focus: 1.0,
                };
                inspector.inspect_located(&frame, &loc)
            }
            _ => inspector.inspect(&frame),
        }
        .map_err(|e: InspectError| coded(e.exit_code(), anyhow::anyhow!("{}: {e}", img.rel)))?;

        for (stage, v) in [
            ("locate", insp.timings_ms.locate),
            ("crop", insp.timings_ms.crop),
            ("infer", insp.timings_ms.infer),
            ("anomaly", insp.timings_ms.anomaly),
            ("grade", insp.timings_ms.grade),
            ("total", insp.timings_ms.total),
        ] {
            lat.entry(stage).or_default().push(v);
        }
        let acc = per_kind.entry(img.kind.clone()).or_default();
        acc.images += 1;

        // Verdict.
        if let Some(truth) = label.and_then(|l| l.verdict.as_deref()) {
            match parse_verdict(truth) {
                Some(t) => {
                    confusion.add(t, insp.verdict);
                    acc.confusion.add(t, insp.verdict);
                }
                None => warn!(
                    "{}: label verdict {truth:?} is not pass/fail/unable; ignored",
                    img.rel
                ),
            }
        }

        if let Some((path, out)) = per_image.as_mut() {
            let truth = label.and_then(|l| l.verdict.as_deref());
            let line = serde_json::json!({
                "image": img.rel,
                "kind": img.kind,
                "truth": truth,
                "verdict": insp.verdict.to_string(),
                "right": truth.and_then(parse_verdict).map(|t| t == insp.verdict),
                "image_score": insp.image_score,
                "reasons": insp.reasons,
                "defects": insp.defects,
                "labelled_defects": label.map(|l| l.defects.as_slice()).unwrap_or_default(),
                "center": insp.center,
                "cladding_radius_px": insp.cladding_radius_px,
            });
            writeln!(out, "{line}").map_err(|e| {
                coded(
                    exit::INPUT_IO,
                    anyhow::anyhow!("cannot write the per-image file {}: {e}", path.display()),
                )
            })?;
        }

        // Localization.
        if let Some(true_c) = label.and_then(|l| l.center) {
            match insp.center {
                Some(c) if !args.truth_center => {
                    let (dx, dy) = (c[0] - true_c[0], c[1] - true_c[1]);
                    loc_px.push(dx.hypot(dy));
                    let (ux, uy) = scale.um_from_px(dx, dy);
                    loc_um.push(ux.hypot(uy));
                    if let (Some(r), Some(tr)) = (
                        insp.cladding_radius_px,
                        label.and_then(|l| l.cladding_radius_px),
                    ) {
                        rad_px.push((r - tr).abs());
                    }
                }
                None => not_found += 1,
                _ => {}
            }
        }

        // Sizes: each labelled defect in the contact zone against the found defect its box
        // overlaps most.
        for ld in label.map_or(&[][..], |l| &l.defects[..]) {
            let (Some(size), Some(b)) = (ld.size_um, ld.bbox) else {
                continue;
            };
            if !matches!(ld.zone.as_deref(), Some("A" | "B" | "C" | "D") | None) {
                continue;
            }
            let sa = sizing.entry(ld.kind.clone()).or_default();
            sa.labelled += 1;
            if let Some(d) = best_overlap(b, &insp.defects) {
                sa.err.push(d.size_um - size);
                let scratch = d.kind == FeatureKind::Scratch;
                sa.same_class += usize::from(scratch == (ld.kind == "scratch"));
            }
        }

        // Scores and pixels.
        let (Some(score), Some(geom)) = (insp.image_score, insp.geometry) else {
            unable += 1;
            acc.unable += 1;
            continue;
        };
        scores.push(score as f64);
        is_defect.push(!img.is_good());
        acc.scores.push(score as f64);
        if score > inspector.image_threshold() {
            acc.flagged += 1;
        }
        let gt = img
            .load_mask(w, h)
            .map_err(|e| coded(dataset::exit_code(&e), e))?;
        // Defective pixel: inside a defect the extraction found (the pixel threshold, grown
        // to the hysteresis threshold when one is set).
        let mut defect_px: Vec<f32> = inspector
            .labels_in_crop()
            .iter()
            .map(|&l| if l != 0 { 1.0 } else { 0.0 })
            .collect();
        defect_px.resize(geom.width * geom.height, 0.0);
        let (map, seg, pw, ph) = match args.pixel_space {
            PixelSpace::Frame => {
                let zone_center = label.and_then(|l| l.center).unwrap_or(geom.center_in_frame);
                let r_um = inspector.profile().contact_radius_um();
                valid.clear();
                for y in 0..h {
                    for x in 0..w {
                        let r = scale.radius_um(x as f64, y as f64, zone_center);
                        valid.push(u8::from(r <= r_um));
                    }
                }
                gt_mask.clear();
                gt_mask.extend(
                    gt.as_raw()
                        .iter()
                        .zip(&valid)
                        .map(|(&g, &v)| u8::from(g > 0 && v != 0)),
                );
                let map = geom.map_to_frame(inspector.anomaly_map_in_crop(), w, h);
                let seg = geom.map_to_frame(&defect_px, w, h);
                (map, seg, w as usize, h as usize)
            }
            PixelSpace::Crop => {
                // The mask resampled with the model's crop (bilinear of 0/1, then ≥ 0.5), as
                // the training pipeline scores its model card.
                let binary = image::GrayImage::from_fn(w, h, |x, y| {
                    image::Luma([if gt.get_pixel(x, y).0[0] > 0 { 255 } else { 0 }])
                });
                geom.sample(
                    &binary,
                    FrameContent::full(w, h),
                    &mut mask_crop,
                    &mut crop_scratch,
                );
                valid.clear();
                // pixels beyond the camera frame are not graded (the crop repeats edge pixels)
                let view = inspector.in_view_in_crop();
                let cw = geom.width.max(1);
                valid.extend(
                    inspector
                        .contact_mask_in_crop()
                        .iter()
                        .enumerate()
                        .map(|(i, &b)| u8::from(b && view.contains(i % cw, i / cw))),
                );
                gt_mask.clear();
                gt_mask.extend(
                    mask_crop
                        .iter()
                        .zip(&valid)
                        .map(|(&g, &v)| u8::from(g >= 127.5 && v != 0)),
                );
                (
                    inspector.anomaly_map_in_crop().to_vec(),
                    defect_px.clone(),
                    geom.width,
                    geom.height,
                )
            }
        };
        match &mut curves {
            Curves::Exact(c) => c.push(&map, &gt_mask, Some(&valid), pw, ph)?,
            Curves::Binned(c) => c.push(&map, &gt_mask, Some(&valid), pw, ph)?,
        }
        pred_mask.clear();
        pred_mask.extend(
            seg.iter()
                .zip(&valid)
                .map(|(&m, &v)| u8::from(v != 0 && m >= 0.5)),
        );
        let o = metrics::overlap(&pred_mask, &gt_mask)?;
        overlap.add(o);
        acc.overlap.add(o);
    }

    let image_auroc = metrics::roc_auc(&scores, &is_defect)
        .map_err(|e| warn!("image AUROC undefined: {e}"))
        .ok();
    let (pixel_auroc, bound) = match curves.auroc() {
        Ok((a, b)) => (Some(a), Some(b)),
        Err(e) => {
            warn!("pixel AUROC undefined: {e}");
            (None, None)
        }
    };
    let aupro = curves
        .aupro(AUPRO_MAX_FPR)
        .map_err(|e| warn!("AUPRO undefined: {e}"))
        .ok();
    let good_scores: Vec<f64> = per_kind
        .get("good")
        .map(|a| a.scores.clone())
        .unwrap_or_default();
    let per_kind_out: BTreeMap<String, KindReport> = per_kind
        .iter()
        .map(|(kind, a)| {
            let auroc = if kind == "good" {
                None
            } else {
                let s: Vec<f64> = good_scores.iter().chain(&a.scores).copied().collect();
                let l: Vec<bool> = good_scores
                    .iter()
                    .map(|_| false)
                    .chain(a.scores.iter().map(|_| true))
                    .collect();
                metrics::roc_auc(&s, &l).ok()
            };
            let graded = a.scores.len();
            (
                kind.clone(),
                KindReport {
                    images: a.images,
                    unable: a.unable,
                    image_auroc: auroc,
                    flagged_rate: (graded > 0).then(|| a.flagged as f64 / graded as f64),
                    verdict_accuracy: a.confusion.accuracy(),
                    iou: a.overlap.iou(),
                    mean_image_score: (graded > 0)
                        .then(|| a.scores.iter().sum::<f64>() / graded as f64),
                },
            )
        })
        .collect();
    if let Some((path, mut out)) = per_image {
        out.flush().map_err(|e| {
            coded(
                exit::INPUT_IO,
                anyhow::anyhow!("cannot write the per-image file {}: {e}", path.display()),
            )
        })?;
        info!("per-image results in {}", path.display());
    }
    let report = Report {
        dataset: ds.root.display().to_string(),
        images: images.len(),
        unable,
        image_auroc,
        pixel_auroc,
        pixel_auroc_error_bound: bound,
        aupro,
        aupro_max_fpr: AUPRO_MAX_FPR,
        iou: overlap.iou(),
        verdict_accuracy: confusion.accuracy(),
        verdict_labelled: confusion.total(),
        confusion: ConfusionOut {
            order: ["pass", "fail", "unable"],
            matrix: confusion.matrix,
            false_pass: confusion.false_pass(),
            false_fail: confusion.false_fail(),
        },
        localization: Localization {
            n: loc_px.len(),
            not_found,
            center_error_px: stat(loc_px),
            center_error_um: stat(loc_um),
            radius_error_px: stat(rad_px),
        },
        per_kind: per_kind_out,
        sizing: sizing.into_iter().map(|(k, a)| (k, a.report())).collect(),
        latency_ms: lat
            .into_iter()
            .map(|(k, v)| (k.to_string(), latency(v)))
            .collect(),
        pixel_threshold: inspector.pixel_threshold(),
        image_threshold: inspector.image_threshold(),
        model_sha256: inspector.model().sha256().to_string(),
        execution_provider: inspector.model().provider().primary.clone(),
        truth_center: args.truth_center,
        pixel_space: args.pixel_space,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_human(&report);
    }
    Ok(0)
}

fn opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.4}")).unwrap_or_else(|| "n/a".into())
}

fn print_human(r: &Report) {
    println!(
        "dataset {}: {} test images ({} unable)",
        r.dataset, r.images, r.unable
    );
    println!(
        "model {} on {}  thresholds pixel {} image {}",
        &r.model_sha256[..12.min(r.model_sha256.len())],
        r.execution_provider,
        r.pixel_threshold,
        r.image_threshold
    );
    println!("image AUROC      {}", opt(r.image_auroc));
    println!(
        "pixel AUROC      {} (± {})",
        opt(r.pixel_auroc),
        opt(r.pixel_auroc_error_bound)
    );
    println!("AUPRO (FPR≤{})  {}", r.aupro_max_fpr, opt(r.aupro));
    println!("IoU              {}", opt(r.iou));
    println!(
        "verdict accuracy {} over {} labelled (false pass {}, false fail {})",
        opt(r.verdict_accuracy),
        r.verdict_labelled,
        r.confusion.false_pass,
        r.confusion.false_fail
    );
    println!("confusion (rows label, cols predicted: pass fail unable)");
    for (name, row) in r.confusion.order.iter().zip(&r.confusion.matrix) {
        println!("  {name:<7} {:>5} {:>5} {:>5}", row[0], row[1], row[2]);
    }
    let l = &r.localization;
    println!(
        "localization: {} located, {} not found; centre error px mean {} p95 {} max {}; radius error px mean {}",
        l.n,
        l.not_found,
        opt(l.center_error_px.mean),
        opt(l.center_error_px.p95),
        opt(l.center_error_px.max),
        opt(l.radius_error_px.mean)
    );
    println!("per kind: images unable image_auroc flagged verdict_acc iou");
    for (k, v) in &r.per_kind {
        println!(
            "  {k:<14} {:>4} {:>4} {} {} {} {}",
            v.images,
            v.unable,
            opt(v.image_auroc),
            opt(v.flagged_rate),
            opt(v.verdict_accuracy),
            opt(v.iou)
        );
    }
    println!(
        "sizing (labelled defect kind): labelled matched same_class bias_um mae_um p90_abs_um"
    );
    for (k, v) in &r.sizing {
        println!(
            "  {k:<14} {:>4} {:>4} {} {} {} {}",
            v.labelled,
            v.matched,
            opt(v.same_class),
            opt(v.bias_um),
            opt(v.mae_um),
            opt(v.p90_abs_um)
        );
    }
    println!("latency ms: stage p50 p90 p99 max");
    for (k, v) in &r.latency_ms {
        println!(
            "  {k:<8} {} {} {} {}",
            opt(v.p50),
            opt(v.p90),
            opt(v.p99),
            opt(v.max)
        );
    }
}
