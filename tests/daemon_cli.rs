//! `endface run` from the outside: stdin and Unix-socket software triggers, the synthetic
//! camera, `--frames`, and start-up errors that name the key and exit with a distinct code.

#[path = "daemon_support/mod.rs"]
mod support;

use endface::error::exit;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

fn endface() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_endface"));
    c.env("ENDFACE_LOG", "error").env_remove("NOTIFY_SOCKET");
    c
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const BASE: &str =
    "[station]\nname = \"cli\"\n[gpio]\nbackend = \"sim\"\nsim_log = \"gpio.jsonl\"\n\
                    [journal]\npath = \"journal.db\"\n";

#[test]
fn stdin_lines_trigger_and_eof_ends_the_run() {
    let dir = tempfile::tempdir().unwrap();
    write_frames(&dir.path().join("frames"), &[PASS, FAIL, PASS, PASS, PASS]);
    let cfg = write(
        dir.path(),
        "s.toml",
        &format!("{BASE}[camera]\nsource = \"replay\"\npath = \"frames\"\n[trigger]\nmode = \"software\"\n[daemon]\ninspector = \"marker\"\nstate_dir = \"state\"\n"),
    );
    let mut child = endface()
        .args(["run", "--json", "--config"])
        .arg(&cfg)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"go\ngo\n\ngo\n")
        .unwrap(); // 4 lines, then EOF
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    let verdicts: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split("\"verdict\":\"").nth(1))
        .map(|r| &r[..r.find('"').unwrap()])
        .collect();
    assert_eq!(verdicts, ["pass", "fail", "pass", "pass"], "{text}");
    assert!(
        text.contains("\"stop_reason\":\"triggers-closed\""),
        "{text}"
    );
    assert!(text.contains("\"trigger_source\":\"stdin\""));
}

#[test]
fn unix_socket_triggers_are_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    write_frames(&dir.path().join("frames"), &[PASS, FAIL, PASS]);
    let sock = dir.path().join("run/trigger.sock");
    let cfg = write(
        dir.path(),
        "s.toml",
        &format!(
            "{BASE}[camera]\nsource = \"replay\"\npath = \"frames\"\n[trigger]\nmode = \"software\"\nsocket = \"{}\"\n[daemon]\ninspector = \"marker\"\nstate_dir = \"state\"\n",
            sock.display()
        ),
    );
    let child = endface()
        .args(["run", "--json", "--frames", "3", "--config"])
        .arg(&cfg)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let stream = loop {
        match std::os::unix::net::UnixStream::connect(&sock) {
            Ok(s) => break s,
            Err(_) if start.elapsed() < Duration::from_secs(20) => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("trigger socket never appeared: {e}"),
        }
    };
    let mut writer = stream.try_clone().unwrap();
    let mut replies = BufReader::new(stream).lines();
    for n in 1..=3 {
        writer.write_all(b"trigger\n").unwrap();
        assert_eq!(replies.next().unwrap().unwrap(), format!("queued {n}"));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.matches("\"trigger_source\":\"socket\"").count(),
        3,
        "{text}"
    );
    assert!(!sock.exists(), "the socket file is removed at exit");
}

#[test]
fn synthetic_camera_runs_for_n_frames() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "s.toml",
        &format!("{BASE}[camera]\nsource = \"synthetic\"\nwidth = 160\nheight = 120\nseed = 3\n[trigger]\nmode = \"free-run\"\nrate_hz = 100\n[daemon]\ninspector = \"marker\"\nstate_dir = \"state\"\n"),
    );
    let out = endface()
        .args(["run", "--frames", "3", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("synthetic #1 (truth: "), "{text}");
    assert!(text.contains("summary: 3 inspected"), "{text}");
}

#[test]
fn start_up_errors_name_the_problem_with_distinct_codes() {
    let dir = tempfile::tempdir().unwrap();
    let run = |text: &str| {
        let cfg = write(dir.path(), "bad.toml", text);
        let out = endface()
            .args(["run", "--frames", "1", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run("[camera]\nsource = \"v4l2\"\npixel_format = \"RGB3\"\n");
    assert_eq!(code, exit::BAD_CONFIG as i32, "{err}");
    assert!(
        err.contains("RGB3") && err.trim().lines().count() == 1,
        "{err}"
    );
    let (code, err) = run("[gpio]\nreject_ms = 0\n");
    assert_eq!(code, exit::BAD_CONFIG as i32);
    assert!(err.contains("gpio.reject_ms"), "{err}");
    let (code, err) = run("[camera]\nsource = \"replay\"\npath = \"no-such-folder\"\n[daemon]\ninspector = \"marker\"\n");
    assert_eq!(code, exit::DEVICE as i32, "{err}");
    assert!(err.contains("no-such-folder"), "{err}");
    let (code, err) = run(&format!(
        "[model]\nmanifest = \"missing.manifest.json\"\n[journal]\npath = \"{}\"\n",
        dir.path().join("j.db").display()
    ));
    assert_eq!(code, exit::BAD_MODEL as i32, "{err}");
    assert!(err.contains("missing.manifest.json"), "{err}");
    let (code, err) = run("[gpio]\nbackend = \"chardev\"\nready = { line = \"NO_SUCH_LINE_X\" }\npass = { line = \"NO_SUCH_LINE_Y\" }\n[daemon]\ninspector = \"marker\"\n");
    assert_eq!(code, exit::DEVICE as i32, "{err}");
    assert!(err.contains("NO_SUCH_LINE_X"), "{err}");
}

#[path = "common/mod.rs"]
mod common;

/// The README's main command, shortened: the demo station (synthetic camera, simulated lines,
/// the shipped model on ONNX Runtime's CPU provider).
#[test]
fn demo_station_runs_with_the_shipped_model() {
    let repo = common::repo();
    let out = endface()
        .current_dir(&repo)
        .env("ENDFACE_ORT_LIB", common::ort_lib())
        .args([
            "run",
            "--config",
            "firmware-config/demo.toml",
            "--frames",
            "3",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<&str> = text.lines().filter(|l| l.starts_with('#')).collect();
    assert_eq!(results.len(), 3, "{text}");
    assert!(results.iter().all(|l| l.contains("synthetic #")
        && (l.contains("PASS") || l.contains("FAIL") || l.contains("UNABLE"))));
    assert!(text.contains("summary: 3 inspected"), "{text}");
    let j = endface::journal::Journal::open_existing(&repo.join("target/endface-demo/journal.db"))
        .unwrap();
    let rows = j.entries(None).unwrap();
    let last = rows.last().unwrap();
    assert_eq!(
        last.model_sha256.len(),
        64,
        "the model's sha256 is journalled"
    );
    assert_eq!(last.provider, "cpu");
    assert!(last.timings_ms.contains_key("infer"));
    // what the camera gave the grading is journalled with every model inspection
    let cond = last
        .frame_condition
        .as_ref()
        .expect("frame_condition journalled");
    for key in [
        "center",
        "cladding_radius_px",
        "bright_level",
        "exposure_gain",
        "stuck_pixels",
        "banding",
        "banding_corrected",
        "contact_zone_in_view",
    ] {
        assert!(cond.get(key).is_some(), "{key} missing from {cond}");
    }
    assert_eq!(cond["stuck_pixels"], 0, "{cond}");
    assert_eq!(cond["banding_corrected"], false, "{cond}");
}
