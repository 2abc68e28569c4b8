//! `endface synth`: render a synthetic end-face dataset (docs/dataset-format.md layout).
//!
//! In: output folder, seed, counts, camera options. Out: the dataset on disk and a one-line
//! summary per folder on stderr (info log); exit 0, or a coded error.

use anyhow::Context;
use endface::dataset::{self, SynthDatasetOptions};
use endface::error::{coded, exit};
use endface::synth::{DefectKind, FiberProfile, SynthConfig};
use std::path::PathBuf;
use std::time::Instant;
use tracing::info;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Output dataset folder (must be new or empty unless --force).
    #[arg(long)]
    pub out: PathBuf,
    /// Seed: the same seed and options give byte-identical datasets.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Defect-free training images (train/good).
    #[arg(long, default_value_t = 200)]
    pub train_good: usize,
    /// Defect-free test images (test/good).
    #[arg(long, default_value_t = 50)]
    pub test_good: usize,
    /// Test images per defect kind (test/<kind>).
    #[arg(long, default_value_t = 30)]
    pub per_kind: usize,
    /// Defect kinds to render (comma-separated): scratch,pit,contamination,chip,crack.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "scratch,pit,contamination,chip,crack"
    )]
    pub kinds: Vec<String>,
    /// Fiber / grading profile: sm-upc, sm-apc, mm, or mixed (all fibers and looks).
    #[arg(long, default_value = "mixed")]
    pub fiber: String,
    /// Frame size WxH.
    #[arg(long, default_value = "640x480")]
    pub size: String,
    /// Fixed µm per pixel along x (default: random 0.4–0.7 per frame).
    #[arg(long)]
    pub um_per_px: Option<f64>,
    /// Fixed pixel aspect, y over x (1.09 = fibers 9 % taller than wide; default: mostly 1).
    #[arg(long)]
    pub aspect: Option<f64>,
    /// Probability of a JPEG round trip per frame.
    #[arg(long, default_value_t = 0.3)]
    pub jpeg_prob: f64,
    /// Worker threads (default: available cores, at most 16); output does not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Write into a non-empty folder (files with the same names are replaced).
    #[arg(long)]
    pub force: bool,
    /// Also label the train/good images in labels.jsonl (centre, µm/px x and y): the synthetic
    /// camera varies scale and pixel aspect per frame, and a trainer needs each frame's own.
    #[arg(long)]
    pub label_train: bool,
}

fn parse_size(s: &str) -> Option<(u32, u32)> {
    let (w, h) = s.split_once(['x', 'X'])?;
    Some((w.trim().parse().ok()?, h.trim().parse().ok()?))
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let (width, height) = parse_size(&args.size).ok_or_else(|| {
        coded(
            exit::USAGE,
            anyhow::anyhow!(
                "--size {:?}: expected WIDTHxHEIGHT, e.g. 640x480",
                args.size
            ),
        )
    })?;
    let fiber = match args.fiber.as_str() {
        "mixed" => None,
        other => Some(
            other
                .parse::<FiberProfile>()
                .map_err(|e| coded(exit::USAGE, anyhow::anyhow!("--fiber: {e} (or mixed)")))?,
        ),
    };
    let kinds = args
        .kinds
        .iter()
        .map(|k| k.trim().parse::<DefectKind>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| coded(exit::USAGE, anyhow::anyhow!("--kinds: {e}")))?;
    let config = SynthConfig {
        width,
        height,
        fiber,
        um_per_px: args.um_per_px,
        aspect_y_over_x: args.aspect,
        jpeg_prob: args.jpeg_prob,
        ..SynthConfig::default()
    };
    config
        .validate()
        .map_err(|e| coded(exit::USAGE, anyhow::Error::new(e)))?;
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(16)
    });
    let opts = SynthDatasetOptions {
        config,
        seed: args.seed,
        train_good: args.train_good,
        test_good: args.test_good,
        per_kind: args.per_kind,
        kinds,
        threads,
        overwrite: args.force,
        label_train: args.label_train,
    };
    let t0 = Instant::now();
    let summary = dataset::write_synthetic(&args.out, &opts)
        .map_err(|e| {
            let code = dataset::exit_code(&e);
            coded(code, anyhow::Error::new(e))
        })
        .with_context(|| format!("endface synth --out {}", args.out.display()))?;
    let secs = t0.elapsed().as_secs_f64();
    info!(
        images = summary.images,
        train_good = summary.train_good,
        test_good = summary.test_good,
        seconds = format!("{secs:.1}"),
        "wrote {}",
        args.out.display()
    );
    for (kind, (n, pass, fail)) in &summary.per_kind {
        info!("test/{kind}: {n} images ({pass} pass, {fail} fail)");
    }
    Ok(0)
}
