//! `endface eval` as a process on a tiny freshly rendered dataset (`endface synth`), with the
//! recon256 test model (the shipped model where a defect must really be found): the report's
//! keys, their ranges and consistency, and dataset errors.

mod common;

use common::*;
use endface::error::exit;
use std::path::Path;
use std::process::{Command, Output};

fn endface() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_endface"));
    c.env_remove("ENDFACE_ORT_LIB").env("ENDFACE_LOG", "error");
    c
}

fn station(dir: &Path) -> std::path::PathBuf {
    cpu_station_file(dir, "station.toml", &fixture("recon256.manifest.json"), "")
}

/// A CPU station config with the shipped model: the recon256 test model finds none of this
/// dataset's labelled defects (what it marks is the cladding edge all round, which the station
/// takes out of the map: `inspect::rings`), so the sizing checks need the real model.
fn shipped_station(dir: &Path) -> std::path::PathBuf {
    let manifest = repo().join("models/endface-student.manifest.json");
    cpu_station_file(dir, "shipped.toml", &manifest, "")
}

fn synth(out: &Path) {
    let o = endface()
        .args(["synth", "--out"])
        .arg(out)
        .args([
            "--seed",
            "4242",
            "--train-good",
            "0",
            "--test-good",
            "3",
            "--per-kind",
            "1",
        ])
        .args(["--kinds", "pit,scratch"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn eval(ds: &Path, cfg: &Path, extra: &[&str]) -> Output {
    endface()
        .arg("eval")
        .arg(ds)
        .arg("--config")
        .arg(cfg)
        .args(extra)
        .output()
        .unwrap()
}

fn in_unit(v: &serde_json::Value) -> bool {
    v.as_f64().is_some_and(|x| (0.0..=1.0).contains(&x))
}

#[test]
fn json_report_has_the_contract_keys_and_consistent_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = tmp.path().join("ds");
    synth(&ds);
    let cfg = shipped_station(tmp.path());
    let o = eval(&ds, &cfg, &["--json", "--truth-center"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let stdout = String::from_utf8(o.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let r: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    for key in [
        "image_auroc",
        "pixel_auroc",
        "aupro",
        "iou",
        "verdict_accuracy",
        "confusion",
        "localization",
        "per_kind",
        "sizing",
        "latency_ms",
    ] {
        assert!(r.get(key).is_some(), "missing {key}: {stdout}");
    }
    assert_eq!(r["images"], 5);
    assert_eq!(r["unable"], 0, "{stdout}");
    for key in [
        "image_auroc",
        "pixel_auroc",
        "aupro",
        "iou",
        "verdict_accuracy",
    ] {
        assert!(in_unit(&r[key]), "{key} = {}", r[key]);
    }
    let m = &r["confusion"]["matrix"];
    let total: u64 = (0..3)
        .flat_map(|i| (0..3).map(move |j| (i, j)))
        .map(|(i, j)| m[i][j].as_u64().unwrap())
        .sum();
    assert_eq!(total, 5);
    let diag: u64 = (0..3).map(|i| m[i][i].as_u64().unwrap()).sum();
    let acc = r["verdict_accuracy"].as_f64().unwrap();
    assert!((acc - diag as f64 / 5.0).abs() < 1e-12);
    let kinds: Vec<&str> = r["per_kind"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(kinds, ["good", "pit", "scratch"]);
    assert_eq!(r["per_kind"]["good"]["images"], 3);
    for stage in ["locate", "crop", "infer", "anomaly", "grade", "total"] {
        assert_eq!(r["latency_ms"][stage]["n"], 5, "{stage}");
        assert!(r["latency_ms"][stage]["p50"].is_number());
    }
    assert_eq!(r["execution_provider"], "cpu");

    // Sizing: every labelled defect in the contact zone with a size and a box is counted once,
    // and moving every labelled size by +2 µm moves each kind's bias by exactly -2 µm.
    let labels_path = ds.join("labels.jsonl");
    let labels = std::fs::read_to_string(&labels_path).unwrap();
    let mut lines: Vec<serde_json::Value> = labels
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let sized = lines
        .iter()
        .flat_map(|l| l["defects"].as_array().cloned().unwrap_or_default())
        .filter(|d| {
            d["size_um"].is_number()
                && d["bbox"].is_array()
                && ["A", "B", "C", "D"].contains(&d["zone"].as_str().unwrap_or("A"))
        })
        .count();
    let sizing = r["sizing"].as_object().unwrap();
    let counted: u64 = sizing
        .values()
        .map(|v| v["labelled"].as_u64().unwrap())
        .sum();
    assert_eq!(counted as usize, sized, "{stdout}");
    assert!(sized > 0, "the pit and scratch frames label their defects");
    let mut any_matched = false;
    for (kind, v) in sizing {
        let (n, m) = (
            v["labelled"].as_u64().unwrap(),
            v["matched"].as_u64().unwrap(),
        );
        assert!(m <= n, "{kind}: {v}");
        if m > 0 {
            any_matched = true;
            assert!(v["mae_um"].as_f64().unwrap() >= v["bias_um"].as_f64().unwrap().abs() - 1e-12);
            assert!(in_unit(&v["same_class"]), "{kind}: {v}");
        } else {
            assert!(
                v["bias_um"].is_null() && v["mae_um"].is_null(),
                "{kind}: {v}"
            );
        }
    }
    assert!(
        any_matched,
        "the station finds some labelled defect: {stdout}"
    );
    for l in &mut lines {
        if let Some(ds) = l["defects"].as_array_mut() {
            for d in ds {
                if let Some(x) = d["size_um"].as_f64() {
                    d["size_um"] = serde_json::json!(x + 2.0);
                }
            }
        }
    }
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&labels_path, text).unwrap();
    let o2 = eval(&ds, &cfg, &["--json", "--truth-center"]);
    assert_eq!(o2.status.code(), Some(0));
    let r2: serde_json::Value = serde_json::from_slice(&o2.stdout).unwrap();
    for (kind, v) in sizing {
        let v2 = &r2["sizing"][kind];
        assert_eq!(v["matched"], v2["matched"], "{kind}");
        if let (Some(b), Some(b2)) = (v["bias_um"].as_f64(), v2["bias_um"].as_f64()) {
            assert!((b - 2.0 - b2).abs() < 1e-9, "{kind}: {b} -> {b2}");
        }
    }
}

#[test]
fn crop_space_and_exact_pixel_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = tmp.path().join("ds");
    synth(&ds);
    let cfg = station(tmp.path());
    let run = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec!["--json", "--truth-center"];
        args.extend_from_slice(extra);
        let o = eval(&ds, &cfg, &args);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let binned = run(&["--pixel-space", "crop"]);
    let exact = run(&["--pixel-space", "crop", "--exact-pixel-metrics"]);
    assert_eq!(binned["pixel_space"], "crop");
    // Same images, same scores: image metrics agree exactly, pixel ones within the binning.
    assert_eq!(binned["image_auroc"], exact["image_auroc"]);
    assert_eq!(binned["iou"], exact["iou"]);
    let (b, e) = (
        binned["pixel_auroc"].as_f64().unwrap(),
        exact["pixel_auroc"].as_f64().unwrap(),
    );
    assert!((b - e).abs() <= binned["pixel_auroc_error_bound"].as_f64().unwrap() + 1e-12);
    let (b, e) = (
        binned["aupro"].as_f64().unwrap(),
        exact["aupro"].as_f64().unwrap(),
    );
    assert!((b - e).abs() < 2e-3, "{b} vs {e}");
}

#[test]
fn human_report_prints() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = tmp.path().join("ds");
    synth(&ds);
    let cfg = station(tmp.path());
    let o = eval(&ds, &cfg, &["--truth-center", "--limit", "2"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(
        out.contains("image AUROC") && out.contains("2 test images"),
        "{out}"
    );
}

#[test]
fn dataset_errors_have_their_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = station(tmp.path());
    let o = eval(&tmp.path().join("nope"), &cfg, &[]);
    assert_eq!(o.status.code(), Some(exit::INPUT_IO as i32));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nope"));

    // A defect image without its mask.
    let ds = tmp.path().join("ds");
    synth(&ds);
    for e in std::fs::read_dir(ds.join("ground_truth/pit")).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    let o = eval(&ds, &cfg, &["--truth-center"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(exit::BAD_DATASET as i32), "{err}");
    assert!(err.contains("mask"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn per_image_lines_agree_with_the_report() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = tmp.path().join("ds");
    synth(&ds);
    let cfg = station(tmp.path());
    let per = tmp.path().join("per-image.jsonl");
    let o = eval(
        &ds,
        &cfg,
        &[
            "--json",
            "--truth-center",
            "--per-image",
            per.to_str().unwrap(),
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let text = std::fs::read_to_string(&per).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5, "{text}");
    // one line per test image of the dataset, with the kind of its folder
    let images: std::collections::BTreeSet<&str> =
        lines.iter().map(|l| l["image"].as_str().unwrap()).collect();
    for l in &lines {
        let image = l["image"].as_str().unwrap();
        assert!(ds.join(image).is_file(), "{image}");
        assert_eq!(image.split('/').nth(1), l["kind"].as_str(), "{l}");
        assert!(["pass", "fail", "unable"].contains(&l["verdict"].as_str().unwrap()));
        assert_eq!(
            l["right"].as_bool().unwrap(),
            l["truth"] == l["verdict"],
            "{l}"
        );
        assert!(l["defects"].is_array() && l["labelled_defects"].is_array());
        assert_eq!(
            l["defects"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d["fails"] == true),
            l["verdict"] == "fail",
            "a failed frame has a failing defect and a passed one none: {l}"
        );
    }
    assert_eq!(images.len(), 5, "each image once");
    let right = lines.iter().filter(|l| l["right"] == true).count();
    let acc = r["verdict_accuracy"].as_f64().unwrap();
    assert!(
        (acc - right as f64 / 5.0).abs() < 1e-12,
        "{acc} vs {right}/5"
    );

    // A file that cannot be created: its own line and the I/O exit code, before any work.
    let o = eval(
        &ds,
        &cfg,
        &[
            "--per-image",
            tmp.path().join("no/such/dir/x.jsonl").to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(exit::INPUT_IO as i32));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("per-image file") && err.contains("no/such/dir"),
        "{err}"
    );
}
