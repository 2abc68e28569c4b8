//! `endface synth` end to end: writes a readable dataset; bad options and a non-empty output
//! folder give one clear error line and a distinct exit code.

use endface::dataset::Dataset;
use endface::error::exit;
use std::process::Command;

fn endface() -> Command {
    Command::new(env!("CARGO_BIN_EXE_endface"))
}

#[test]
fn writes_a_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ds");
    let st = endface()
        .args(["-q", "synth", "--out"])
        .arg(&out)
        .args([
            "--seed",
            "9",
            "--train-good",
            "2",
            "--test-good",
            "1",
            "--per-kind",
            "1",
            "--kinds",
            "pit,chip",
            "--size",
            "200x150",
            "--fiber",
            "sm-apc",
            "--um-per-px",
            "0.5",
            "--aspect",
            "1.09",
            "--jpeg-prob",
            "1",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let ds = Dataset::open(&out).unwrap();
    assert_eq!(ds.train_good.len(), 2);
    assert_eq!(ds.test.len(), 3);
    assert_eq!(ds.config.fiber.as_deref(), Some("sm-apc"));
    assert_eq!(ds.config.um_per_px_x, Some(0.5));
    for img in &ds.test {
        let l = img.label.as_ref().unwrap();
        assert_eq!(l.fiber.as_deref(), Some("sm-apc"));
        assert!((l.um_per_px_y.unwrap() - 0.5 / 1.09).abs() < 1e-12);
        assert!(l.extra["jpeg_quality"].is_u64());
    }
}

#[test]
fn bad_options_and_occupied_folder_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| {
        let o = endface()
            .args(["synth", "--out"])
            .arg(dir.path().join("x"))
            .args(["--train-good", "1", "--test-good", "0", "--per-kind", "0"])
            .args(extra)
            .output()
            .unwrap();
        (
            o.status.code().unwrap(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["--size", "640by480"]);
    assert_eq!(code, exit::USAGE as i32);
    assert!(err.contains("--size") && err.contains("640by480"), "{err}");
    let (code, err) = run(&["--fiber", "om3"]);
    assert_eq!(code, exit::USAGE as i32);
    assert!(err.contains("om3"), "{err}");
    let (code, err) = run(&["--um-per-px=-1"]);
    assert_eq!(code, exit::USAGE as i32);
    assert!(err.contains("um_per_px"), "{err}");
    let (code, err) = run(&["--kinds", "pit,smudge"]);
    assert_eq!(code, exit::USAGE as i32);
    assert!(err.contains("smudge"), "{err}");
    // First run fills the folder, second is refused, --force overwrites.
    assert_eq!(run(&[]).0, 0);
    let (code, err) = run(&[]);
    assert_eq!(code, exit::USAGE as i32);
    assert!(err.contains("--force"), "{err}");
    assert_eq!(run(&["--force"]).0, 0);
}
