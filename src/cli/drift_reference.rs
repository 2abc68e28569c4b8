//! `endface drift-reference DIR... --out FILE [station options]`: record the drift monitor's
//! reference set from good frames at calibration time.
//!
//! In: folders (or files) of good frames from the station's camera, the station config (model,
//! calibration, profile). Every frame goes through the full inspector (locate, model), and its
//! drift features ([`endface::drift::FrameFeatures`]: zone statistics, the image anomaly
//! score, reconstruction-error quantiles) are kept. Out: a reference JSON
//! ([`endface::drift::ReferenceFile`]) written atomically (temporary file, fsync, rename);
//! by default beside the model manifest as `<name>.drift.json`, where `endface run` looks.
//! Frames the localizer refuses, and unreadable files, are skipped and counted; fewer than
//! `--min-frames` usable frames is an error (a thin reference makes the test over-sensitive).

use crate::cli::inspect::{build_inspector, StationOpts};
use anyhow::Context;
use endface::daemon::default_drift_reference;
use endface::drift::{DriftConfig, DriftMonitor, ReferenceFile};
use endface::error::{coded, exit};
use endface::imageio;
use std::io::Write;
use std::path::{Path, PathBuf};
use tracing::{info, warn};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Folders of good frames (png, jpg, jpeg, bmp; searched recursively) or image files.
    #[arg(required = true, value_name = "DIR")]
    pub inputs: Vec<PathBuf>,
    /// Where to write the reference (default: beside the model manifest, `<name>.drift.json`).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Fewest usable frames accepted.
    #[arg(long, default_value_t = 40)]
    pub min_frames: usize,
    /// Use at most this many frames (in sorted path order).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    #[command(flatten)]
    pub station: StationOpts,
}

fn collect_images(inputs: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let p = entry?.path();
            if p.is_dir() {
                walk(&p, out)?;
            } else if p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                matches!(
                    e.to_ascii_lowercase().as_str(),
                    "png" | "jpg" | "jpeg" | "bmp"
                )
            }) && !p
                .file_stem()
                .is_some_and(|s| s.to_string_lossy().ends_with("_mask"))
            {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for input in inputs {
        let meta = std::fs::metadata(input)
            .map_err(|e| coded(exit::INPUT_IO, anyhow::anyhow!("{}: {e}", input.display())))?;
        if meta.is_dir() {
            walk(input, &mut out)
                .map_err(|e| coded(exit::INPUT_IO, anyhow::anyhow!("{}: {e}", input.display())))?;
        } else {
            out.push(input.clone());
        }
    }
    out.sort();
    Ok(out)
}

/// Write `bytes` to `path` atomically: a temporary file beside it, fsync, rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let (mut inspector, cfg) = build_inspector(&args.station)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| default_drift_reference(&cfg.model.manifest));
    let mut paths = collect_images(&args.inputs)?;
    if let Some(n) = args.limit {
        paths.truncate(n);
    }
    let mut features = Vec::with_capacity(paths.len());
    let (mut unreadable, mut not_located) = (0usize, 0usize);
    for path in &paths {
        let frame = match imageio::load_gray(path) {
            Ok(f) => f,
            Err(e) => {
                warn!("skipping {}: {e}", path.display());
                unreadable += 1;
                continue;
            }
        };
        let insp = inspector
            .inspect(&frame)
            .map_err(|e| coded(e.exit_code(), e))
            .with_context(|| format!("inspecting {}", path.display()))?;
        match inspector.drift_features(&frame, &insp) {
            Some(f) => features.push(f),
            None => {
                warn!(
                    "skipping {}: fiber not located ({})",
                    path.display(),
                    insp.reasons.join("; ")
                );
                not_located += 1;
            }
        }
    }
    if features.len() < args.min_frames {
        return Err(coded(
            exit::INPUT_IO,
            anyhow::anyhow!(
                "{} usable frames of {} ({unreadable} unreadable, {not_located} without a located fiber); \
                 need at least {} good frames from this station's camera (--min-frames)",
                features.len(),
                paths.len(),
                args.min_frames
            ),
        ));
    }
    // The monitor must accept it (enough informative features).
    DriftMonitor::new(
        &features,
        DriftConfig {
            window: 2,
            test_every: 1,
            ..Default::default()
        },
    )
    .map_err(|e| coded(exit::INPUT_IO, anyhow::anyhow!("reference unusable: {e}")))?;
    let file = ReferenceFile::from_features(&features);
    let json = serde_json::to_vec(&file).context("cannot serialize the reference")?;
    write_atomic(&out, &json).map_err(|e| {
        coded(
            exit::INPUT_IO,
            anyhow::anyhow!("cannot write {}: {e}", out.display()),
        )
    })?;
    info!(
        frames = features.len(),
        unreadable,
        not_located,
        "drift reference written to {}",
        out.display()
    );
    println!(
        "drift reference: {} frames ({} skipped: {unreadable} unreadable, {not_located} fiber not located) → {}",
        features.len(),
        unreadable + not_located,
        out.display()
    );
    Ok(0)
}
