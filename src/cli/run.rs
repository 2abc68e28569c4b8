//! `endface run --config FILE [--frames N]`: the station daemon.
//!
//! Reads the station config, builds the frame source, the inspector, the GPIO lines and the
//! journal, runs until SIGTERM/SIGINT (or N inspections, or the end of a replay), prints each
//! verdict and a summary on stdout. Exit 0 on a clean stop; a distinct code when a device,
//! the journal or the model made the daemon stop.

use anyhow::Context;
use endface::actuate::{sim::SimBackend, Backend, OutputBackend, Outputs};
use endface::daemon::pipeline::FatalKind;
use endface::daemon::{
    marker::MarkerInspector, Daemon, DaemonConfig, FrameInspector, InspectorKind, ResultEvent,
    RunOptions, StopReason, Summary,
};
use endface::error::{coded, exit};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

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
    let cfg = DaemonConfig::from_file(&args.config).map_err(|e| coded(exit::BAD_CONFIG, e))?;
    let inspector = build_inspector(&cfg, &args.config)?;
    let backend: Box<dyn OutputBackend> = match cfg.gpio.backend {
        Backend::Sim => Box::new(
            SimBackend::from_config(&cfg.gpio)
                .map_err(|e| coded(exit::DEVICE, e))?
                .0,
        ),
        Backend::Chardev => open_chardev(&cfg)?,
    };
    let outputs = Outputs::new(backend, &cfg.gpio);
    let source = endface::capture::open_source(&cfg.camera)
        .map_err(|e| coded(exit::DEVICE, e))
        .context("cannot set up the camera")?;
    let stdin_triggers = cfg.trigger.mode == endface::actuate::trigger::TriggerMode::Software
        && cfg.trigger.socket.is_none();
    let daemon = Daemon::new(cfg, source, inspector, outputs).map_err(|e| {
        let code = match &e {
            endface::daemon::pipeline::DaemonError::Journal(_) => exit::JOURNAL,
            _ => exit::DEVICE,
        };
        coded(code, e)
    })?;
    let stop = daemon.stop_flag();
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        // A second signal while stopping ends the process at once.
        signal_hook::flag::register_conditional_shutdown(sig, 1, stop.clone())
            .context("cannot install signal handlers")?;
        signal_hook::flag::register(sig, stop.clone()).context("cannot install signal handlers")?;
    }
    let json = args.json;
    let on_result = move |ev: &ResultEvent| print_result(ev, json);
    let summary = daemon.run(RunOptions {
        max_inspections: args.frames,
        on_result: Some(Box::new(on_result)),
        notify: true,
        stdin_triggers,
    });
    // Keep the flag referenced until here so the handlers stay meaningful.
    let _ = stop.load(Ordering::Relaxed);
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

fn build_inspector(
    cfg: &DaemonConfig,
    _config_path: &std::path::Path,
) -> anyhow::Result<Box<dyn FrameInspector>> {
    match cfg.daemon.inspector {
        InspectorKind::Marker => Ok(Box::new(MarkerInspector::new(Duration::from_millis(
            cfg.daemon.marker_delay_ms,
        )))),
        InspectorKind::Model => Err(coded(
            exit::BAD_MODEL,
            anyhow::anyhow!(
                "[daemon] inspector = \"model\": the inspection engine is not in this build yet; \
                 use inspector = \"marker\" for a wiring check"
            ),
        )),
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
            (Some(s), Some(o)) => format!(
                "frame {s} ({})",
                std::path::Path::new(o)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            ),
            (Some(s), None) => format!("frame {s}"),
            (None, _) => "no frame".to_string(),
        };
        let ms = ev.timings_ms.get("inspect").copied().unwrap_or(0.0);
        let _ = writeln!(
            out,
            "#{:<5} {:<6} {frame:<24} {ms:>7.1} ms  {}",
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
    let stages: Vec<String> = ["queue", "inspect", "journal", "trigger_to_result"]
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
