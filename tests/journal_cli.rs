//! `endface journal`: query by time, table and CSV export, config lookup, clear errors.

use endface::capture::unix_ns;
use endface::error::exit;
use endface::journal::{parse_since, Entry, Journal, CSV_HEADER};
use std::path::Path;
use std::process::Command;

fn entry(n: u64, verdict: &str, recorded_unix_ns: i64, reasons: Vec<&str>) -> Entry {
    Entry {
        id: 0,
        run_id: "1714560000-42".into(),
        inspection: n,
        station: "bench".into(),
        profile: "sm-upc".into(),
        verdict: verdict.into(),
        reasons: reasons.into_iter().map(String::from).collect(),
        defects: serde_json::json!([]),
        timings_ms: [("inspect".to_string(), 10.0 + n as f64)]
            .into_iter()
            .collect(),
        model_sha256: "ab".repeat(32),
        provider: "cpu".into(),
        frame_seq: Some(n),
        frame_origin: None,
        trigger_seq: Some(n),
        trigger_source: "gpio".into(),
        trigger_unix_ns: Some(recorded_unix_ns - 5_000_000),
        captured_unix_ns: Some(recorded_unix_ns - 4_000_000),
        recorded_unix_ns,
        image_path: None,
        frame_condition: (verdict != "unable")
            .then(|| serde_json::json!({"stuck_pixels": n, "banding_corrected": n == 2})),
    }
}

fn journal_cmd(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_endface"))
        .arg("journal")
        .args(args)
        .env("ENDFACE_LOG", "error")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Minimal RFC 4180 reader (quoted fields, doubled quotes).
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                fields.last_mut().unwrap().push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(String::new()),
            (c, _) => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

fn fill(db: &Path) -> i64 {
    let mut j = Journal::open(db).unwrap();
    let t0 = parse_since("2024-05-01T12:00:00Z", 0).unwrap();
    j.record(&entry(1, "pass", t0 - 3_600_000_000_000, vec![]))
        .unwrap();
    j.record(&entry(
        2,
        "fail",
        t0,
        vec!["zone A: scratch 3.1 µm, limit 0", "say \"no\", twice"],
    ))
    .unwrap();
    j.record(&entry(
        3,
        "unable",
        t0 + 60_000_000_000,
        vec!["cladding not found"],
    ))
    .unwrap();
    let now = unix_ns();
    j.record(&entry(4, "pass", now - 3_600_000_000_000, vec![]))
        .unwrap();
    j.record(&entry(
        5,
        "fail",
        now - 60_000_000_000,
        vec!["zone B: 6 defects, limit 5"],
    ))
    .unwrap();
    t0
}

#[test]
fn table_csv_and_since() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("journal.db");
    fill(&db);
    let dbs = db.to_str().unwrap();

    let (code, out, err) = journal_cmd(&["--db", dbs]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("5 inspections: 2 pass, 2 fail, 1 unable"),
        "{out}"
    );
    assert!(out.contains("2024-05-01T12:00:00.000Z"), "{out}");
    assert!(out.contains("cladding not found"));

    let (code, out, _) = journal_cmd(&["--db", dbs, "--csv"]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], CSV_HEADER);
    assert_eq!(lines.len(), 6);
    let header = csv_fields(lines[0]);
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let row2 = csv_fields(lines[2]);
    assert_eq!(row2.len(), header.len());
    assert_eq!(row2[col("verdict")], "fail");
    assert_eq!(
        row2[col("reasons")],
        "zone A: scratch 3.1 µm, limit 0; say \"no\", twice"
    );
    assert_eq!(row2[col("recorded")], "2024-05-01T12:00:00.000Z");
    assert_eq!(row2[col("trigger_source")], "gpio");
    assert_eq!(row2[col("model_sha256")], "ab".repeat(32));
    let condition: serde_json::Value = serde_json::from_str(&row2[col("frame_condition")]).unwrap();
    assert_eq!(condition["stuck_pixels"], 2);
    assert_eq!(condition["banding_corrected"], true);
    assert!(lines[1..]
        .iter()
        .all(|l| csv_fields(l).len() == header.len()));

    // --since: an absolute time (inclusive), a date, a time ago.
    let (_, out, _) = journal_cmd(&["--db", dbs, "--csv", "--since", "2024-05-01T12:00:00Z"]);
    let verdicts: Vec<String> = out
        .lines()
        .skip(1)
        .map(|l| csv_fields(l)[col("verdict")].clone())
        .collect();
    assert_eq!(verdicts, ["fail", "unable", "pass", "fail"]);
    let (_, out, _) = journal_cmd(&["--db", dbs, "--csv", "--since", "2024-05-02"]);
    assert_eq!(out.lines().count(), 3);
    let (_, out, _) = journal_cmd(&["--db", dbs, "--since", "30m"]);
    assert!(
        out.contains("1 inspections: 0 pass, 1 fail, 0 unable"),
        "{out}"
    );
    let (_, out, _) = journal_cmd(&["--db", dbs, "--since", "2024-05-01T14:00:30+02:00", "--csv"]);
    assert_eq!(out.lines().count(), 4, "offsets are honoured: {out}");
}

#[test]
fn config_lookup_and_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    fill(&dir.path().join("state/j.db"));
    let cfg = dir.path().join("station.toml");
    std::fs::write(
        &cfg,
        "[station]\nname = \"x\"\n[journal]\npath = \"state/j.db\"\n",
    )
    .unwrap();
    let (code, out, err) = journal_cmd(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("5 inspections"), "{out}");

    let (code, _, err) = journal_cmd(&["--config", cfg.to_str().unwrap(), "--since", "yesterday"]);
    assert_eq!(code, exit::USAGE as i32);
    assert!(
        err.contains("yesterday") && err.trim().lines().count() == 1,
        "{err}"
    );

    let missing = dir.path().join("nope.db");
    let (code, _, err) = journal_cmd(&["--db", missing.to_str().unwrap()]);
    assert_eq!(code, exit::JOURNAL as i32);
    assert!(err.contains("nope.db"), "{err}");
    assert!(!missing.exists(), "a query never creates a journal");

    std::fs::write(&cfg, "[journal]\npaht = \"x.db\"\n").unwrap();
    let (code, _, err) = journal_cmd(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(code, exit::BAD_CONFIG as i32);
    assert!(err.contains("paht"), "{err}");
}
