//! The `endface` command: one binary for the station daemon and the technician's tools.
//!
//! Log level policy (stderr, `ENDFACE_LOG` / `RUST_LOG` override, `-v` / `-q` flags):
//! `error!` an operator must act (camera gone, model failed); `warn!` degraded but running
//! (frame dropped, slow frame); `info!` lifecycle (started, model loaded on a provider, update
//! installed); `debug!` per frame; `trace!` per stage.

use clap::{Parser, Subcommand};
use endface::error::exit_code_of;
use std::process::ExitCode;

mod cli;

#[derive(Parser)]
#[command(
    name = "endface",
    version,
    about = "Fiber end-face inspection station (IEC 61300-3-35)"
)]
struct Cli {
    /// More log output (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Render a synthetic end-face dataset (MVTec AD layout plus labels.jsonl).
    Synth(cli::synth::Args),
    /// Find the fiber cladding circle in images.
    Locate(cli::locate::Args),
    /// Inspect images: locate, model, defects, IEC grade.
    Inspect(cli::inspect::Args),
    /// Score the model and the grader against a labelled dataset.
    Eval(cli::eval::Args),
    /// Run the station daemon (camera -> inspect -> GPIO, journal).
    Run(cli::run::Args),
    /// Query and export the inspection journal.
    Journal(cli::journal::Args),
    /// Signed update bundles: create, verify, install, status, rollback.
    Bundle(cli::bundle::Args),
    /// Compare two folders of images for distribution drift (sliced Wasserstein + permutation test).
    Drift(cli::drift::Args),
    /// Record the drift monitor's reference from good frames (at calibration).
    DriftReference(cli::drift_reference::Args),
}

fn init_logging(verbose: u8, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if quiet {
        "error"
    } else {
        match verbose {
            0 => "info",
            1 => "debug",
            _ => "trace",
        }
    };
    let filter = std::env::var("ENDFACE_LOG")
        .ok()
        .and_then(|s| EnvFilter::try_new(s).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        // The ort crate announces its own library loading at info!; keep that at warn.
        .unwrap_or_else(|| EnvFilter::new(format!("{default},ort=warn")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal (not in journald or log files).
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    let result = match cli.command {
        Command::Synth(a) => cli::synth::run(a),
        Command::Locate(a) => cli::locate::run(a),
        Command::Inspect(a) => cli::inspect::run(a),
        Command::Eval(a) => cli::eval::run(a),
        Command::Run(a) => cli::run::run(a),
        Command::Journal(a) => cli::journal::run(a),
        Command::Bundle(a) => cli::bundle::run(a),
        Command::Drift(a) => cli::drift::run(a),
        Command::DriftReference(a) => cli::drift_reference::run(a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("endface: error: {err:#}");
            ExitCode::from(exit_code_of(&err))
        }
    }
}
