//! `endface inspect IMAGE... [--json] [--config FILE] [--um-per-px X] [--profile NAME]
//! [--overlay DIR] [--dump-tensors DIR]`: inspect image files and print one result per image.
//!
//! Without `--config` an embedded default station config is used: the shipped model
//! (`models/endface-student.manifest.json` next to the repository / executable, else
//! `/var/lib/endface/models/`), profile `sm-upc`, µm/px from `--um-per-px` (default 0.5).
//! Every failure prints one line naming the thing and exits with a distinct code
//! (`endface::error::exit`); a bad image among several is reported and the others still run.

use anyhow::Context;
use endface::config::{StationConfig, DEFAULT_MANIFEST, DEFAULT_UM_PER_PX};
use endface::error::{coded, exit};
use endface::grade::Profile;
use endface::imageio;
use endface::inspect::{profile_search_dirs, InspectError, Inspection, Inspector};
use endface::overlay;
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use tracing::{debug, warn};

/// Station options shared by `inspect` and `eval`.
#[derive(clap::Args, Debug, Clone)]
pub struct StationOpts {
    /// Station config (TOML). Without it: the shipped model, profile sm-upc, 0.5 µm/px.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Camera scale in µm per pixel (both axes), overriding the config.
    #[arg(long, value_name = "X")]
    pub um_per_px: Option<f64>,
    /// Camera scale along y in µm per pixel (non-square pixels), overriding the config.
    #[arg(long, value_name = "Y")]
    pub um_per_px_y: Option<f64>,
    /// Grading profile name (sm-upc, sm-apc, mm, or a station's own) or a profile .toml.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Image files (PNG, JPEG, BMP; 8-bit gray or RGB).
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<PathBuf>,
    /// One JSON object per image per line on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub station: StationOpts,
    /// Write an overlay PNG per image into this folder (created when missing).
    #[arg(long, value_name = "DIR")]
    pub overlay: Option<PathBuf>,
    /// Write the model input, outputs and anomaly map per image (raw little-endian f32 plus
    /// a .meta.json) into this folder, for scripts/check_parity.py.
    #[arg(long, value_name = "DIR")]
    pub dump_tensors: Option<PathBuf>,
}

/// Where the shipped model's manifest is looked for when no config names one.
pub fn default_manifest_candidates() -> Vec<PathBuf> {
    let mut c = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        if let Some(repo) = exe.parent().and_then(Path::parent).and_then(Path::parent) {
            c.push(repo.join(DEFAULT_MANIFEST));
        }
    }
    c.push(PathBuf::from(DEFAULT_MANIFEST));
    c.push(PathBuf::from(
        "/var/lib/endface/models/endface-student.manifest.json",
    ));
    c
}

/// The station config from `--config` or the embedded default, with the command-line
/// overrides applied and validated; plus the config's folder (for profile lookup).
pub fn station_config(opts: &StationOpts) -> anyhow::Result<(StationConfig, Option<PathBuf>)> {
    let (mut cfg, dir) = match &opts.config {
        Some(path) => {
            let cfg = StationConfig::from_file(path).map_err(|e| coded(exit::BAD_CONFIG, e))?;
            let dir = path.parent().map(Path::to_path_buf);
            (cfg, dir)
        }
        None => {
            let mut cfg = StationConfig::default();
            let candidates = default_manifest_candidates();
            cfg.model.manifest = candidates
                .iter()
                .find(|p| p.is_file())
                .or(candidates.first())
                .cloned()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_MANIFEST));
            debug!(
                "no --config: using model manifest {}",
                cfg.model.manifest.display()
            );
            (cfg, None)
        }
    };
    if let Some(x) = opts.um_per_px {
        cfg.calibration.um_per_px_x = x;
        cfg.calibration.um_per_px_y = x;
    } else if opts.config.is_none() {
        cfg.calibration.um_per_px_x = DEFAULT_UM_PER_PX;
        cfg.calibration.um_per_px_y = DEFAULT_UM_PER_PX;
    }
    if let Some(y) = opts.um_per_px_y {
        cfg.calibration.um_per_px_y = y;
    }
    if let Some(p) = &opts.profile {
        cfg.station.profile = p.clone();
    }
    cfg.validate("command line")
        .map_err(|e| coded(exit::BAD_CONFIG, e))?;
    Ok((cfg, dir))
}

/// Resolve the station's grading profile (exit UNKNOWN_PROFILE / BAD_CONFIG on failure).
pub fn resolve_profile(name: &str, config_dir: Option<&Path>) -> anyhow::Result<Profile> {
    Profile::resolve(name, &profile_search_dirs(config_dir)).map_err(|e| {
        let err = InspectError::from(e);
        coded(err.exit_code(), err)
    })
}

/// Config, profile and a loaded inspector for the station options.
pub fn build_inspector(opts: &StationOpts) -> anyhow::Result<(Inspector, StationConfig)> {
    let (cfg, dir) = station_config(opts)?;
    let profile = resolve_profile(&cfg.station.profile, dir.as_deref())?;
    let inspector = Inspector::new(&cfg, profile).map_err(|e| {
        let code = e.exit_code();
        let hint = if opts.config.is_none() && matches!(e, InspectError::Model(endface::model::ModelError::ManifestIo { .. })) {
            " (the shipped model; pass --config FILE with [model] manifest = \"...\" to use another)"
        } else {
            ""
        };
        coded(code, anyhow::anyhow!("{e}{hint}"))
    })?;
    Ok((inspector, cfg))
}

#[derive(Serialize)]
struct JsonLine<'a> {
    image: String,
    #[serde(flatten)]
    inspection: &'a Inspection,
}

#[derive(Serialize)]
struct JsonError {
    image: String,
    error: String,
    exit_code: u8,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    if let Some(dir) = &args.overlay {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create overlay folder {}", dir.display()))
            .map_err(|e| coded(exit::INPUT_IO, e))?;
    }
    if let Some(dir) = &args.dump_tensors {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create tensor dump folder {}", dir.display()))
            .map_err(|e| coded(exit::INPUT_IO, e))?;
    }
    let (mut inspector, _cfg) = build_inspector(&args.station)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut first_error: Option<u8> = None;
    let mut stems: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for path in &args.images {
        let shown = path.display().to_string();
        let frame = match imageio::load_gray(path) {
            Ok(f) => f,
            Err(e) => {
                let code = imageio::exit_code(&e);
                eprintln!("endface: error: {e}");
                if args.json {
                    let line = JsonError {
                        image: shown,
                        error: e.to_string(),
                        exit_code: code,
                    };
                    writeln!(out, "{}", serde_json::to_string(&line)?)?;
                }
                first_error.get_or_insert(code);
                continue;
            }
        };
        let insp = inspector
            .inspect(&frame)
            .map_err(|e| coded(e.exit_code(), anyhow::anyhow!("{shown}: {e}")))?;
        if args.json {
            let line = JsonLine {
                image: shown.clone(),
                inspection: &insp,
            };
            writeln!(out, "{}", serde_json::to_string(&line)?)?;
        } else {
            print_human(&mut out, &shown, &insp)?;
        }
        // Output names: the file stem, made unique within this run (test/pit/0000.png and
        // test/chip/0000.png both have stem 0000).
        let name = {
            let stem = stem(path);
            let n = stems.entry(stem.clone()).or_insert(0);
            *n += 1;
            if *n == 1 {
                stem
            } else {
                format!("{stem}-{n}")
            }
        };
        if let Some(dir) = &args.overlay {
            let img = overlay::render(
                &frame,
                &insp,
                Some(inspector.labels_in_crop()),
                inspector.profile(),
                inspector.pixel_scale(),
            );
            let file = dir.join(format!("{name}.overlay.png"));
            overlay::save_png(&img, &file).map_err(|e| coded(exit::INPUT_IO, e))?;
        }
        if let Some(dir) = &args.dump_tensors {
            dump_tensors(dir, &name, path, &inspector, &insp)
                .map_err(|e| coded(exit::INPUT_IO, e))?;
        }
    }
    out.flush()?;
    Ok(first_error.unwrap_or(0))
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into())
}

fn print_human(out: &mut impl Write, image: &str, insp: &Inspection) -> std::io::Result<()> {
    let verdict = insp.verdict.to_string().to_uppercase();
    let score = insp
        .image_score
        .map(|s| format!("{s:.4}"))
        .unwrap_or_else(|| "-".into());
    let center = insp
        .center
        .map(|c| format!("({:.1}, {:.1})", c[0], c[1]))
        .unwrap_or_else(|| "-".into());
    writeln!(
        out,
        "{image}: {verdict}  score {score}  center {center}  {} defect(s)  {:.1} ms on {}",
        insp.defects.len(),
        insp.timings_ms.total,
        insp.execution_provider
    )?;
    for r in &insp.reasons {
        writeln!(out, "  reason: {r}")?;
    }
    for d in &insp.defects {
        writeln!(
            out,
            "  {:?} zone {} {:.1} µm score {:.3} bbox {:?}{}",
            d.kind,
            d.zone.map(|z| z.to_string()).unwrap_or_else(|| "-".into()),
            d.size_um,
            d.score,
            d.bbox,
            if d.fails { "  FAILS" } else { "" }
        )?;
    }
    Ok(())
}

fn write_f32(path: &Path, data: &[f32]) -> anyhow::Result<()> {
    let mut bytes = Vec::with_capacity(data.len() * 4);
    for v in data {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

fn dump_tensors(
    dir: &Path,
    s: &str,
    image: &Path,
    inspector: &Inspector,
    insp: &Inspection,
) -> anyhow::Result<()> {
    let Some(g) = insp.geometry else {
        warn!(
            "{}: not graded ({}), no tensors dumped",
            image.display(),
            insp.verdict
        );
        return Ok(());
    };
    let model = inspector.model();
    let mut files = serde_json::Map::new();
    let input = format!("{s}.input.f32");
    write_f32(&dir.join(&input), model.input())?;
    files.insert("input".into(), input.into());
    for name in model.output_names() {
        if let Some(data) = model.output(name) {
            let f = format!("{s}.out.{name}.f32");
            write_f32(&dir.join(&f), data)?;
            files.insert(format!("output:{name}"), f.into());
        }
    }
    let map = format!("{s}.map.f32");
    write_f32(&dir.join(&map), inspector.anomaly_map_in_crop())?;
    files.insert("anomaly_map_masked".into(), map.into());
    let meta = serde_json::json!({
        "image": image.display().to_string(),
        "manifest": model.manifest_path().display().to_string(),
        "center_in_frame": g.center_in_frame,
        "um_per_px_x": g.frame_scale.um_per_px_x,
        "um_per_px_y": g.frame_scale.um_per_px_y,
        "contact_radius_um": inspector.profile().contact_radius_um(),
        "image_score": insp.image_score,
        "files": files,
    });
    let path = dir.join(format!("{s}.meta.json"));
    std::fs::write(&path, serde_json::to_string_pretty(&meta)?)
        .with_context(|| format!("cannot write {}", path.display()))
}
