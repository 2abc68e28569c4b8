//! `endface drift REFERENCE_DIR CANDIDATE_DIR [--json]`: compare two folders of end-face
//! images for distribution drift (sliced Wasserstein distance + permutation test).
//!
//! In: two directories of images (png, jpg, jpeg, bmp; not recursive). Out: distance,
//! p-value, verdict and the features that moved most, as text or one JSON object. Exit code
//! 0 when no drift is detected, `exit::DRIFT_DETECTED` (20) when it is.
//!
//! Fiber geometry: every frame's cladding centre and radii come from [`endface::locate`]
//! (with the camera scale from `--um-per-px` when given, which tightens the radius search).
//! When the fiber cannot be located in a frame, that frame is measured around the frame centre
//! with the radius from `--cladding-radius-px` (default 0.3 × the shorter side) and a warning
//! is logged; the JSON output counts such frames per folder (`fallback_frames`).
//! `--no-locate` measures every frame that way (the behaviour before `locate` existed).

use anyhow::Context;
use endface::drift::{compare, frame_features_ellipse, DriftConfig, FrameFeatures};
use endface::error::{coded, exit};
use endface::geometry::PixelScale;
use endface::locate::{LocateConfig, Locator};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Folder of reference images (e.g. the good frames used at calibration).
    pub reference_dir: PathBuf,
    /// Folder of images to compare against the reference.
    pub candidate_dir: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Significance level: drift when p < alpha.
    #[arg(long, default_value_t = 0.01)]
    pub alpha: f64,
    /// Permutations for the p-value.
    #[arg(long, default_value_t = 999)]
    pub permutations: usize,
    /// Random projection directions.
    #[arg(long, default_value_t = 64)]
    pub projections: usize,
    /// Seed for projections and permutations.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Cladding radius in pixels for frames where the fiber is not located (default: 0.3 ×
    /// the image's shorter side); with --no-locate, for every frame.
    #[arg(long)]
    pub cladding_radius_px: Option<f64>,
    /// Camera scale in µm per pixel (x; also y unless --um-per-px-y): helps the localizer.
    #[arg(long, value_name = "X")]
    pub um_per_px: Option<f64>,
    /// Camera scale along y in µm per pixel (non-square pixels).
    #[arg(long, value_name = "Y", requires = "um_per_px")]
    pub um_per_px_y: Option<f64>,
    /// Do not locate the fiber: measure every frame around the frame centre.
    #[arg(long)]
    pub no_locate: bool,
}

/// Features of one folder, and how they were measured.
struct FolderFeatures {
    features: Vec<FrameFeatures>,
    skipped: Vec<String>,
    /// Frames measured around the frame centre because locate failed.
    fallback: usize,
}

fn list_images(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(dir)
        .map_err(|e| coded(exit::INPUT_IO, anyhow::anyhow!("{}: {e}", dir.display())))?;
    if !meta.is_dir() {
        return Err(coded(
            exit::INPUT_IO,
            anyhow::anyhow!(
                "{} is not a directory: give a folder of images",
                dir.display()
            ),
        ));
    }
    let entries = std::fs::read_dir(dir)
        .map_err(|e| coded(exit::INPUT_IO, anyhow::anyhow!("{}: {e}", dir.display())))?;
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                    matches!(
                        e.to_ascii_lowercase().as_str(),
                        "png" | "jpg" | "jpeg" | "bmp"
                    )
                })
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Features of every readable image in `dir`; unreadable images are skipped with a warning.
/// `locator` finds each frame's fiber; `None` (or a failure) measures around the frame centre.
fn folder_features(
    dir: &Path,
    radius_override: Option<f64>,
    mut locator: Option<&mut Locator>,
) -> anyhow::Result<FolderFeatures> {
    let paths = list_images(dir)?;
    let mut feats = Vec::with_capacity(paths.len());
    let mut skipped = Vec::new();
    let mut fallback = 0;
    for path in &paths {
        let img = match image::open(path) {
            Ok(img) => img.to_luma8(),
            Err(e) => {
                tracing::warn!("skipping {}: {e}", path.display());
                skipped.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        let (w, h) = (img.width() as f64, img.height() as f64);
        if w < 8.0 || h < 8.0 {
            tracing::warn!("skipping {}: {}x{} is too small", path.display(), w, h);
            skipped.push(format!("{}: too small", path.display()));
            continue;
        }
        let located = match locator.as_deref_mut().map(|l| l.locate(&img)) {
            Some(Ok(loc)) => Some(loc),
            Some(Err(e)) => {
                tracing::warn!(
                    "{}: {e}; measuring around the frame centre instead",
                    path.display()
                );
                fallback += 1;
                None
            }
            None => None,
        };
        let (center_in_frame, radius_px) = match located {
            Some(loc) => (
                loc.center_in_frame,
                [loc.cladding_radius_px, loc.radius_y_px],
            ),
            None => {
                let r = radius_override.unwrap_or(0.3 * w.min(h));
                ([(w - 1.0) / 2.0, (h - 1.0) / 2.0], [r, r])
            }
        };
        tracing::debug!(
            "{}: features around {:?} r={:?}",
            path.display(),
            center_in_frame,
            radius_px
        );
        feats.push(frame_features_ellipse(&img, center_in_frame, radius_px));
    }
    if feats.len() < 2 {
        return Err(coded(
            exit::INPUT_IO,
            anyhow::anyhow!(
                "{}: {} readable images; need at least 2 (png, jpg, jpeg or bmp)",
                dir.display(),
                feats.len()
            ),
        ));
    }
    Ok(FolderFeatures {
        features: feats,
        skipped,
        fallback,
    })
}

/// The localizer for `args` (`None` with --no-locate).
fn locator(args: &Args) -> anyhow::Result<Option<Locator>> {
    if args.no_locate {
        return Ok(None);
    }
    let cfg = match args.um_per_px {
        Some(x) => LocateConfig::with_scale(PixelScale {
            um_per_px_x: x,
            um_per_px_y: args.um_per_px_y.unwrap_or(x),
        }),
        None => LocateConfig::default(),
    };
    Locator::new(cfg)
        .map(Some)
        .map_err(|e| coded(exit::USAGE, anyhow::anyhow!("--um-per-px: {e}")))
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    if let Some(r) = args.cladding_radius_px {
        if !(r.is_finite() && r > 0.0) {
            return Err(coded(
                exit::USAGE,
                anyhow::anyhow!("--cladding-radius-px {r}: must be a positive number of pixels"),
            ));
        }
    }
    let cfg = DriftConfig {
        permutations: args.permutations,
        projections: args.projections,
        alpha: args.alpha,
        seed: args.seed,
        ..DriftConfig::default()
    };
    cfg.validate().map_err(|e| coded(exit::USAGE, e))?;
    let mut locator = locator(&args)?;
    let reference = folder_features(
        &args.reference_dir,
        args.cladding_radius_px,
        locator.as_mut(),
    )
    .with_context(|| format!("reference folder {}", args.reference_dir.display()))?;
    let candidate = folder_features(
        &args.candidate_dir,
        args.cladding_radius_px,
        locator.as_mut(),
    )
    .with_context(|| format!("candidate folder {}", args.candidate_dir.display()))?;
    let cmp = compare(&reference.features, &candidate.features, &cfg)
        .map_err(|e| coded(exit::FAILURE, e))?;
    let (skipped_ref, skipped_cand) = (reference.skipped, candidate.skipped);
    if args.json {
        let mut v = serde_json::to_value(&cmp)?;
        if let Some(obj) = v.as_object_mut() {
            obj.insert(
                "reference_dir".into(),
                args.reference_dir.display().to_string().into(),
            );
            obj.insert(
                "candidate_dir".into(),
                args.candidate_dir.display().to_string().into(),
            );
            let skipped: Vec<String> = skipped_ref.into_iter().chain(skipped_cand).collect();
            obj.insert("skipped".into(), skipped.into());
            obj.insert("located".into(), (!args.no_locate).into());
            obj.insert(
                "fallback_frames".into(),
                serde_json::json!({
                    "reference": reference.fallback,
                    "candidate": candidate.fallback,
                }),
            );
        }
        println!("{v}");
    } else {
        println!(
            "reference: {} images ({}), candidate: {} images ({})",
            cmp.reference_frames,
            args.reference_dir.display(),
            cmp.candidate_frames,
            args.candidate_dir.display()
        );
        println!(
            "sliced Wasserstein distance {:.4} (robust σ units, {} features, {} projections), p = {:.4} ({} permutations)",
            cmp.distance,
            cmp.features.len(),
            cmp.projections,
            cmp.p_value,
            cmp.permutations
        );
        println!(
            "{}",
            if cmp.drift {
                format!("DRIFT: p < {}", cmp.alpha)
            } else {
                format!("no drift detected at alpha = {}", cmp.alpha)
            }
        );
        println!("features that moved most (shift in reference σ; median reference → candidate):");
        for s in cmp.shifts.iter().take(5) {
            println!(
                "  {:<28} {:+7.2}   {:.3} → {:.3}",
                s.name, s.shift_sigma, s.reference_median, s.candidate_median
            );
        }
        for s in skipped_ref.iter().chain(&skipped_cand) {
            println!("skipped {s}");
        }
        if reference.fallback + candidate.fallback > 0 {
            println!(
                "fiber not located in {} reference and {} candidate frame(s): measured around the frame centre",
                reference.fallback, candidate.fallback
            );
        }
    }
    Ok(if cmp.drift { exit::DRIFT_DETECTED } else { 0 })
}
