//! `endface drift REFERENCE_DIR CANDIDATE_DIR [--json]`: compare two folders of end-face
//! images for distribution drift (sliced Wasserstein distance + permutation test).
//!
//! In: two directories of images (png, jpg, jpeg, bmp; not recursive). Out: distance,
//! p-value, verdict and the features that moved most, as text or one JSON object. Exit code
//! 0 when no drift is detected, `exit::DRIFT_DETECTED` (20) when it is.
//!
//! Fiber geometry: until the `locate` module lands on main, every frame is measured around
//! the frame centre with the cladding radius from `--cladding-radius-px` (default 0.3 ×
//! the shorter side). Both folders are measured the same way, so the comparison stays fair.

use anyhow::Context;
use endface::drift::{compare, frame_features, DriftConfig, FrameFeatures};
use endface::error::{coded, exit};
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
    /// Cladding radius in pixels (default: 0.3 × the image's shorter side).
    #[arg(long)]
    pub cladding_radius_px: Option<f64>,
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
fn folder_features(
    dir: &Path,
    radius_override: Option<f64>,
) -> anyhow::Result<(Vec<FrameFeatures>, Vec<String>)> {
    let paths = list_images(dir)?;
    let mut feats = Vec::with_capacity(paths.len());
    let mut skipped = Vec::new();
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
        let center_in_frame = [(w - 1.0) / 2.0, (h - 1.0) / 2.0];
        let radius_px = radius_override.unwrap_or(0.3 * w.min(h));
        tracing::debug!(
            "{}: features around {:?} r={radius_px}",
            path.display(),
            center_in_frame
        );
        feats.push(frame_features(&img, center_in_frame, radius_px));
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
    Ok((feats, skipped))
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
    let (reference, skipped_ref) = folder_features(&args.reference_dir, args.cladding_radius_px)
        .with_context(|| format!("reference folder {}", args.reference_dir.display()))?;
    let (candidate, skipped_cand) =
        folder_features(&args.candidate_dir, args.cladding_radius_px)
            .with_context(|| format!("candidate folder {}", args.candidate_dir.display()))?;
    let cmp = compare(&reference, &candidate, &cfg).map_err(|e| coded(exit::FAILURE, e))?;
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
    }
    Ok(if cmp.drift { exit::DRIFT_DETECTED } else { 0 })
}
