//! `endface journal [--db PATH | --config FILE] [--since T] [--csv]`: query the journal.
//!
//! Prints the inspections recorded since T (all by default) as a table, or as CSV with a
//! header (`--csv`), followed (table only) by the counts per verdict.

use endface::daemon::DaemonConfig;
use endface::error::{coded, exit};
use endface::journal::{csv_row, format_rfc3339, parse_since, Journal, CSV_HEADER};
use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Journal database file.
    #[arg(long, conflicts_with = "config")]
    pub db: Option<PathBuf>,
    /// Station config whose [journal] path to read.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Only inspections recorded since T: RFC 3339 (2024-05-01T12:00:00Z), a date
    /// (2024-05-01), a time ago (15m, 2h, 3d) or @<unix seconds>.
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// CSV with a header line instead of a table.
    #[arg(long)]
    pub csv: bool,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    match query(args) {
        // `endface journal | head`: the reader went away; that is not an error.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(0)
        }
        other => other,
    }
}

fn query(args: Args) -> anyhow::Result<u8> {
    let path = match (&args.db, &args.config) {
        (Some(db), _) => db.clone(),
        (None, Some(cfg)) => {
            DaemonConfig::from_file(cfg)
                .map_err(|e| coded(exit::BAD_CONFIG, e))?
                .journal
                .path
        }
        (None, None) => endface::journal::JournalConfig::default().path,
    };
    let since = match &args.since {
        Some(t) => Some(
            parse_since(t, endface::capture::unix_ns())
                .map_err(|e| coded(exit::USAGE, anyhow::anyhow!("--since: {e}")))?,
        ),
        None => None,
    };
    let journal = Journal::open_existing(&path).map_err(|e| coded(exit::JOURNAL, e))?;
    let entries = journal
        .entries(since)
        .map_err(|e| coded(exit::JOURNAL, e))?;
    let mut out = std::io::stdout().lock();
    if args.csv {
        writeln!(out, "{CSV_HEADER}")?;
        for e in &entries {
            writeln!(out, "{}", csv_row(e))?;
        }
        return Ok(0);
    }
    writeln!(
        out,
        "{:>6}  {:<24} {:<7} {:>9} {:>7}  reasons",
        "id", "recorded (UTC)", "verdict", "frame", "ms"
    )?;
    let (mut pass, mut fail, mut unable) = (0, 0, 0);
    for e in &entries {
        match e.verdict.as_str() {
            "pass" => pass += 1,
            "fail" => fail += 1,
            _ => unable += 1,
        }
        let ms = e
            .timings_ms
            .get("inspect")
            .copied()
            .unwrap_or_else(|| e.timings_ms.values().sum());
        writeln!(
            out,
            "{:>6}  {:<24} {:<7} {:>9} {:>7.1}  {}",
            e.id,
            format_rfc3339(e.recorded_unix_ns),
            e.verdict,
            e.frame_seq
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into()),
            ms,
            e.reasons.join("; ")
        )?;
    }
    writeln!(
        out,
        "{} inspections: {pass} pass, {fail} fail, {unable} unable ({})",
        entries.len(),
        path.display()
    )?;
    Ok(0)
}
