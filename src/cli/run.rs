//! `endface run --config FILE [--frames N]`: the station daemon.
//!
//! Reads the station config (or the one an installed update bundle carries), builds the frame
//! source, the inspector, the GPIO lines and the journal, runs until SIGTERM/SIGINT (or N
//! inspections, or the end of a replay), prints each verdict and a summary on stdout. Exit 0
//! on a clean stop; a distinct code when a device, the journal or the model stopped it.
//!
//! Update bundles (see docs/technician-updates.md): before the model is loaded,
//! `bundle::on_daemon_start` picks the active slot (counting a trial start, rolling back a
//! slot that keeps failing); the slot's station config, model and profiles take precedence;
//! once READY is raised the slot is marked good.

use anyhow::Context;
use endface::actuate::{sim::SimBackend, Backend, OutputBackend, Outputs};
use endface::config::StationConfig;
use endface::daemon::pipeline::FatalKind;
use endface::daemon::{
    marker::MarkerInspector, Daemon, DaemonConfig, FrameInspector, InspectorKind, ResultEvent,
    RunOptions, StopReason, Summary,
};
use endface::error::{coded, exit};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tracing::{debug, info, warn};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Station config (TOML), e.g. firmware-config/demo.toml.
    #[arg(long)]
    pub config: PathBuf,
    /// Stop after N inspections (default: run until SIGTERM/SIGINT).
    #[arg(long, value_name = "N")]
    pub frames: Option<u64>,
    /// Print results and the summary as JSON lines instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let mut cfg_path = args.config.clone();
    let first = DaemonConfig::from_file(&cfg_path).map_err(|e| coded(exit::BAD_CONFIG, e))?;
    // Update bundles: which slot (model, config, profiles) this start runs from.
    let state_dir = first.daemon.state_dir.clone();
    let choice = endface::bundle::on_daemon_start(&state_dir)
        .map_err(|e| coded(exit::BUNDLE_REFUSED, e))
        .context("cannot read the update slots")?;
    for note in &choice.notes {
        warn!("{note}");
    }
    if let Some((attempt, max)) = choice.trial {
        warn!(slot = ?choice.slot, "update on trial: start {attempt} of {max}");
    }
    let slot = choice.info.clone();
    if let Some(station_config) = slot.as_ref().and_then(|s| s.station_config.clone()) {
        info!(config = %station_config.display(), "station config from the active update slot");
        cfg_path = station_config;
    }
    let mut station =
        StationConfig::from_file(&cfg_path).map_err(|e| coded(exit::BAD_CONFIG, e))?;
    if let Some(s) = &slot {
        info!(manifest = %s.model_manifest.display(), "model from the active update slot");
        station.model.manifest = s.model_manifest.clone();
    }
    let base = cfg_path.parent().unwrap_or_else(|| Path::new("."));
    let cfg = DaemonConfig::from_station(&station, &cfg_path.display().to_string(), base)
        .map_err(|e| coded(exit::BAD_CONFIG, e))?;

    match endface::sysmem::set_mmap_threshold(station.runtime.malloc_mmap_threshold_kb) {
        endface::sysmem::MmapThreshold::Set(b) => {
            debug!("malloc mmap threshold fixed at {} KiB", b / 1024)
        }
        endface::sysmem::MmapThreshold::Default => {
            debug!("malloc mmap threshold left to the C library")
        }
        endface::sysmem::MmapThreshold::Refused(b) => warn!(
            "the C library refused malloc mmap threshold {} KiB (runtime.malloc_mmap_threshold_kb): memory may grow with fragmentation",
            b / 1024
        ),
    }
    let workers = cfg.daemon.workers;
    let daemon_cfg_for_workers = cfg.clone();
    if workers > 1 && station.runtime.intra_threads == 0 {
        station.runtime.intra_threads = station.runtime.intra_threads_for(workers);
        info!(
            workers,
            intra_threads = station.runtime.intra_threads,
            "runtime.intra_threads = 0 with several workers: the cores shared out between them"
        );
    }
    let mut inspector = build_inspector(&cfg, &station, base, slot.as_ref())?;
    let drift = build_drift_monitor(&cfg, &station)?;
    let drift_on = drift.is_some();
    inspector.measure_drift_features(drift_on);
    let backend: Box<dyn OutputBackend> = match cfg.gpio.backend {
        Backend::Sim => Box::new(
            SimBackend::from_config(&cfg.gpio)
                .map_err(|e| coded(exit::DEVICE, e))?
                .0,
        ),
        Backend::Chardev => open_chardev(&cfg)?,
    };
    let outputs = Outputs::new(backend, &cfg.gpio);
    let source = endface::capture::open_source(&cfg.camera, &cfg.scene)
        .map_err(|e| coded(exit::DEVICE, e))
        .context("cannot set up the camera")?;
    let stdin_triggers = cfg.trigger.mode == endface::actuate::trigger::TriggerMode::Software
        && cfg.trigger.socket.is_none();
    let mut daemon = Daemon::new(cfg, source, inspector, outputs).map_err(|e| {
        let code = match &e {
            endface::daemon::pipeline::DaemonError::Journal(_) => exit::JOURNAL,
            _ => exit::DEVICE,
        };
        coded(code, e)
    })?;
    daemon.set_drift_monitor(drift);
    // More inspect workers: one more inspector (model session, warm-up included) each.
    for w in 1..workers {
        let mut more = build_inspector(&daemon_cfg_for_workers, &station, base, slot.as_ref())
            .with_context(|| format!("cannot load the model for inspect worker {w}"))?;
        more.measure_drift_features(drift_on);
        daemon
            .add_inspector(more)
            .map_err(|e| coded(exit::BAD_CONFIG, e))?;
    }
    if workers > 1 {
        info!(workers, "inspect workers, one model session each");
    }
    let stop = daemon.stop_flag();
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        // A second signal while stopping ends the process at once.
        signal_hook::flag::register_conditional_shutdown(sig, 1, stop.clone())
            .context("cannot install signal handlers")?;
        signal_hook::flag::register(sig, stop.clone()).context("cannot install signal handlers")?;
    }
    let json = args.json;
    let slot_id = choice.slot;
    let on_ready = move || {
        if slot.is_some() {
            match endface::bundle::mark_good(&state_dir, slot_id) {
                Ok(true) => info!(slot = ?slot_id, "update slot marked good"),
                Ok(false) => {}
                Err(e) => warn!("cannot mark the update slot good: {e}"),
            }
        }
    };
    let summary = daemon.run(RunOptions {
        max_inspections: args.frames,
        on_result: Some(Box::new(move |ev: &ResultEvent| print_result(ev, json))),
        notify: true,
        stdin_triggers,
        on_ready: Some(Box::new(on_ready)),
    });
    print_summary(&summary, json);
    match &summary.fatal {
        None => Ok(0),
        Some((kind, message)) => {
            let code = match kind {
                FatalKind::Model => exit::BAD_MODEL,
                FatalKind::Journal => exit::JOURNAL,
                FatalKind::Gpio | FatalKind::Camera => exit::DEVICE,
                FatalKind::Thread => exit::FAILURE,
            };
            Err(coded(
                code,
                anyhow::anyhow!("station daemon stopped: {message}"),
            ))
        }
    }
}

/// The drift monitor `[drift]` asks for, from the reference beside the model (or named).
/// `auto`: a missing reference leaves it off (info), an unusable one too (warn); `on`: either
/// is a config error; `off` and the marker inspector: none.
fn build_drift_monitor(
    cfg: &DaemonConfig,
    station: &StationConfig,
) -> anyhow::Result<Option<endface::drift::DriftMonitor>> {
    use endface::daemon::{default_drift_reference, DriftEnabled};
    use endface::drift::{DriftMonitor, ReferenceFile};
    if cfg.drift.enabled == DriftEnabled::Off || cfg.daemon.inspector == InspectorKind::Marker {
        return Ok(None);
    }
    let path = cfg
        .drift
        .reference
        .clone()
        .unwrap_or_else(|| default_drift_reference(&station.model.manifest));
    let hint = "record one with `endface drift-reference --config STATION.toml GOOD_FRAMES_DIR`";
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                && cfg.drift.enabled == DriftEnabled::Auto =>
        {
            info!(
                "drift monitor off: no reference at {} ({hint})",
                path.display()
            );
            return Ok(None);
        }
        Err(e) => {
            return Err(coded(
                exit::BAD_CONFIG,
                anyhow::anyhow!(
                    "drift reference {}: {e} ({hint}, or set [drift] enabled = \"off\")",
                    path.display()
                ),
            ))
        }
    };
    let built = serde_json::from_str::<ReferenceFile>(&text)
        .map_err(|e| e.to_string())
        .and_then(|r| r.to_features().map_err(|e| e.to_string()))
        .and_then(|f| DriftMonitor::new(&f, cfg.drift.monitor_config()).map_err(|e| e.to_string()));
    match built {
        Ok(m) => {
            info!(
                reference = %path.display(),
                window = cfg.drift.window,
                test_every = cfg.drift.test_every,
                alpha = cfg.drift.alpha,
                features = m.active_features().len(),
                "drift monitor on"
            );
            Ok(Some(m))
        }
        Err(e) if cfg.drift.enabled == DriftEnabled::Auto => {
            warn!(
                "drift monitor off: reference {} is unusable: {e} ({hint})",
                path.display()
            );
            Ok(None)
        }
        Err(e) => Err(coded(
            exit::BAD_CONFIG,
            anyhow::anyhow!("drift reference {}: {e} ({hint})", path.display()),
        )),
    }
}

fn build_inspector(
    cfg: &DaemonConfig,
    station: &StationConfig,
    config_dir: &Path,
    slot: Option<&endface::bundle::SlotInfo>,
) -> anyhow::Result<Box<dyn FrameInspector>> {
    match cfg.daemon.inspector {
        InspectorKind::Marker => {
            warn!("[daemon] inspector = \"marker\": verdicts come from a marker pixel, not a model (wiring check only)");
            Ok(Box::new(MarkerInspector::new(Duration::from_millis(
                cfg.daemon.marker_delay_ms,
            ))))
        }
        InspectorKind::Model => {
            // A profile the update slot carries wins over the installed ones.
            let slot_profile = slot.and_then(|s| {
                s.profiles.iter().find(|p| {
                    p.file_stem()
                        .map(|n| n.to_string_lossy() == station.station.profile.as_str())
                        == Some(true)
                })
            });
            let profile_name = slot_profile
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| station.station.profile.clone());
            let profile = crate::cli::inspect::resolve_profile(&profile_name, Some(config_dir))?;
            let inspector = endface::inspect::Inspector::new(station, profile)
                .map_err(|e| coded(e.exit_code(), e))?;
            Ok(Box::new(inspector))
        }
    }
}

#[cfg(feature = "gpio")]
fn open_chardev(cfg: &DaemonConfig) -> anyhow::Result<Box<dyn OutputBackend>> {
    let b = endface::actuate::chardev::ChardevBackend::open(&cfg.gpio)
        .map_err(|e| coded(exit::DEVICE, e))?;
    Ok(Box::new(b))
}

#[cfg(not(feature = "gpio"))]
fn open_chardev(_cfg: &DaemonConfig) -> anyhow::Result<Box<dyn OutputBackend>> {
    Err(coded(
        exit::DEVICE,
        anyhow::anyhow!("gpio.backend = \"chardev\" needs a build with the `gpio` feature"),
    ))
}

fn print_result(ev: &ResultEvent, json: bool) {
    let mut out = std::io::stdout().lock();
    if json {
        if let Ok(line) = serde_json::to_string(ev) {
            let _ = writeln!(out, "{line}");
        }
    } else {
        let frame = match (&ev.frame_seq, &ev.frame_origin) {
            (Some(_), Some(o)) => Path::new(o)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| o.clone()),
            (Some(s), None) => format!("frame {s}"),
            (None, _) => "no frame".to_string(),
        };
        let ms = ev.timings_ms.get("inspect").unwrap_or(0.0);
        let withheld = if ev.pass_withheld {
            " [PASS line withheld: fault]"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "#{:<4} {:<6} {frame:<28} {ms:>7.1} ms  {}{withheld}",
            ev.inspection,
            ev.verdict.to_string(),
            ev.reasons.join("; ")
        );
    }
    let _ = out.flush();
}

fn print_summary(s: &Summary, json: bool) {
    let mut out = std::io::stdout().lock();
    if json {
        if let Ok(line) = serde_json::to_string(&serde_json::json!({ "summary": s })) {
            let _ = writeln!(out, "{line}");
        }
        return;
    }
    let reason = match s.stop_reason {
        StopReason::Signal => "stop requested",
        StopReason::FramesDone => "frame count reached",
        StopReason::SourceEnded => "replay ended",
        StopReason::TriggersClosed => "no more triggers",
        StopReason::Fatal => "fatal error",
    };
    let _ = writeln!(
        out,
        "summary: {} inspected: {} pass, {} fail, {} unable ({reason}; run {})",
        s.inspections, s.pass, s.fail, s.unable, s.run_id
    );
    let _ = writeln!(
        out,
        "frames: {} captured, {} dropped (newest-only), {} dropped by the device, {} corrupt, {} unused; triggers: {} ({} ignored, {} refused); camera losses: {}; model errors: {}",
        s.frames_captured,
        s.frames_dropped,
        s.frames_dropped_by_device,
        s.frames_corrupt,
        s.frames_unused,
        s.triggers,
        s.triggers_ignored,
        s.triggers_overrun,
        s.camera_losses,
        s.model_errors
    );
    if let Some(state) = s.drift_state {
        let _ = writeln!(
            out,
            "drift: {} tests, {} significant, {} DRIFT episode(s), now {}",
            s.drift_tests,
            s.drift_significant,
            s.drift_episodes,
            match state {
                endface::drift::DriftState::Ok => "OK",
                endface::drift::DriftState::Drift => "DRIFT",
            }
        );
    }
    let stages: Vec<String> = [
        "queue",
        "locate",
        "infer",
        "inspect",
        "journal",
        "trigger_to_result",
    ]
    .iter()
    .filter_map(|k| {
        s.stage_ms
            .get(*k)
            .map(|st| format!("{k} {:.1}/{:.1}", st.mean_ms, st.max_ms))
    })
    .collect();
    if !stages.is_empty() {
        let _ = writeln!(out, "stage ms (mean/max): {}", stages.join(", "));
    }
}
