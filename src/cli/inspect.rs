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
    /// Inspect this many images side by side, each worker with its own model session
    /// (results still printed in the images' order). On the CPU, cores / intra-op threads.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub workers: usize,
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
    build_inspector_for(opts, 1)
}

/// As [`build_inspector`], for one of `workers` inspectors running side by side (the CPU's
/// cores shared out when the config leaves intra-op threads to ONNX Runtime).
pub fn build_inspector_for(
    opts: &StationOpts,
    workers: usize,
) -> anyhow::Result<(Inspector, StationConfig)> {
    let (mut cfg, dir) = station_config(opts)?;
    cfg.runtime.intra_threads = cfg.runtime.intra_threads_for(workers);
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

/// What inspecting one image produced, printed by the main thread in the images' order.
enum Outcome {
    /// stdout text (one JSON line or the human-readable block).
    Done(String),
    /// The image could not be read: stderr line, optional JSON line, exit code; the others go on.
    Unreadable {
        message: String,
        json: Option<String>,
        code: u8,
    },
    /// Inspection itself failed: the command stops with this error.
    Failed(anyhow::Error),
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
    if args.workers == 0 || args.workers > 64 {
        return Err(coded(
            exit::USAGE,
            anyhow::anyhow!("--workers {}: must be 1..=64", args.workers),
        ));
    }
    // Output names: the file stem, made unique within this run (test/pit/0000.png and
    // test/chip/0000.png both have stem 0000); fixed here so that they do not depend on
    // which worker finishes first.
    let mut stems: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let names: Vec<String> = args
        .images
        .iter()
        .map(|path| {
            let stem = stem(path);
            let n = stems.entry(stem.clone()).or_insert(0);
            *n += 1;
            if *n == 1 {
                stem
            } else {
                format!("{stem}-{n}")
            }
        })
        .collect();
    let workers = args.workers.min(args.images.len().max(1));
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut first_error: Option<u8> = None;
    let mut show = |outcome: Outcome, out: &mut std::io::StdoutLock| -> anyhow::Result<()> {
        match outcome {
            Outcome::Done(text) => out.write_all(text.as_bytes())?,
            Outcome::Unreadable {
                message,
                json,
                code,
            } => {
                eprintln!("endface: error: {message}");
                if let Some(line) = json {
                    out.write_all(line.as_bytes())?;
                }
                first_error.get_or_insert(code);
            }
            Outcome::Failed(e) => return Err(e),
        }
        Ok(())
    };
    if workers <= 1 {
        let (mut inspector, _cfg) = build_inspector(&args.station)?;
        for (path, name) in args.images.iter().zip(&names) {
            show(inspect_one(&args, &mut inspector, path, name), &mut out)?;
        }
    } else {
        // One inspector (model session) per worker; images handed out in order, results
        // printed in order.
        // Loaded side by side too (each load includes a warm-up run).
        let loaded: Vec<anyhow::Result<(Inspector, StationConfig)>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|_| scope.spawn(|| build_inspector_for(&args.station, workers)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("loading the model panicked")))
                })
                .collect()
        });
        let mut inspectors = Vec::with_capacity(workers);
        for l in loaded {
            inspectors.push(l?.0);
        }
        let next = std::sync::atomic::AtomicUsize::new(0);
        let failed = std::sync::atomic::AtomicBool::new(false);
        let (tx, rx) = crossbeam_channel::unbounded::<(usize, Outcome)>();
        let args_ref = &args;
        let names_ref = &names;
        let result = std::thread::scope(|scope| -> anyhow::Result<()> {
            for mut inspector in inspectors {
                let tx = tx.clone();
                let (next, failed) = (&next, &failed);
                scope.spawn(move || loop {
                    use std::sync::atomic::Ordering;
                    if failed.load(Ordering::SeqCst) {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(path) = args_ref.images.get(i) else {
                        break;
                    };
                    let outcome = inspect_one(args_ref, &mut inspector, path, &names_ref[i]);
                    if matches!(outcome, Outcome::Failed(_)) {
                        failed.store(true, Ordering::SeqCst);
                    }
                    if tx.send((i, outcome)).is_err() {
                        break;
                    }
                });
            }
            drop(tx);
            let mut waiting = std::collections::BTreeMap::new();
            let mut want = 0usize;
            for (i, outcome) in rx.iter() {
                waiting.insert(i, outcome);
                while let Some(o) = waiting.remove(&want) {
                    want += 1;
                    if let Err(e) = show(o, &mut out) {
                        failed.store(true, std::sync::atomic::Ordering::SeqCst);
                        return Err(e);
                    }
                }
            }
            Ok(())
        });
        result?;
    }
    out.flush()?;
    Ok(first_error.unwrap_or(0))
}

/// Read, inspect, and (as asked) draw the overlay and dump the tensors of one image.
fn inspect_one(args: &Args, inspector: &mut Inspector, path: &Path, name: &str) -> Outcome {
    let shown = path.display().to_string();
    let frame = match imageio::load_gray(path) {
        Ok(f) => f,
        Err(e) => {
            let code = imageio::exit_code(&e);
            let json = if args.json {
                let line = JsonError {
                    image: shown,
                    error: e.to_string(),
                    exit_code: code,
                };
                match serde_json::to_string(&line) {
                    Ok(t) => Some(format!("{t}\n")),
                    Err(e) => return Outcome::Failed(e.into()),
                }
            } else {
                None
            };
            return Outcome::Unreadable {
                message: e.to_string(),
                json,
                code,
            };
        }
    };
    let insp = match inspector.inspect(&frame) {
        Ok(i) => i,
        Err(e) => return Outcome::Failed(coded(e.exit_code(), anyhow::anyhow!("{shown}: {e}"))),
    };
    let mut text = Vec::new();
    let printed = if args.json {
        let line = JsonLine {
            image: shown.clone(),
            inspection: &insp,
        };
        serde_json::to_string(&line)
            .map_err(anyhow::Error::from)
            .and_then(|t| writeln!(text, "{t}").map_err(anyhow::Error::from))
    } else {
        print_human(&mut text, &shown, &insp).map_err(anyhow::Error::from)
    };
    if let Err(e) = printed {
        return Outcome::Failed(e);
    }
    if let Some(dir) = &args.overlay {
        let img = overlay::render(
            &frame,
            &insp,
            Some(inspector.labels_in_crop()),
            inspector.profile(),
            inspector.pixel_scale(),
        );
        let file = dir.join(format!("{name}.overlay.png"));
        if let Err(e) = overlay::save_png(&img, &file) {
            return Outcome::Failed(coded(exit::INPUT_IO, e));
        }
    }
    if let Some(dir) = &args.dump_tensors {
        if let Err(e) = dump_tensors(dir, name, path, inspector, &insp) {
            return Outcome::Failed(coded(exit::INPUT_IO, e));
        }
    }
    Outcome::Done(String::from_utf8_lossy(&text).into_owned())
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
            "  {} zone {} {:.1} µm{} score {:.3} bbox {:?}{}",
            if d.crack {
                "Crack".to_string()
            } else {
                format!("{:?}", d.kind)
            },
            d.zone.map(|z| z.to_string()).unwrap_or_else(|| "-".into()),
            d.size_um,
            if d.halo { " (inside its halo)" } else { "" },
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
        "map_score": insp.map_score,
        "ring_level": insp.ring_level,
        "core_level": insp.core_level,
        "edge_scan": insp.edge_scan,
        "files": files,
    });
    let path = dir.join(format!("{s}.meta.json"));
    std::fs::write(&path, serde_json::to_string_pretty(&meta)?)
        .with_context(|| format!("cannot write {}", path.display()))
}
