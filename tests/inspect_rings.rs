//! `[model] remove_rings` through the whole `endface inspect` process: the recon256 test model
//! marks the cladding edge of a clean multimode frame all round (a reconstruction model's error
//! at the strongest edge), which the station grades as a zone-C "scratch" without the rings pass
//! and takes out of the map with it (`inspect::rings`), reporting how lit the ring was.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

fn endface() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_endface"));
    c.env_remove("ENDFACE_ORT_LIB").env("ENDFACE_LOG", "error");
    c
}

fn station(dir: &Path, remove_rings: bool) -> std::path::PathBuf {
    cpu_station_file(
        dir,
        &format!("rings-{remove_rings}.toml"),
        &fixture("recon256.manifest.json"),
        &format!("remove_rings = {remove_rings}\n"),
    )
}

fn inspect(cfg: &Path, frame: &Path, um_per_px: f64) -> serde_json::Value {
    let o = endface()
        .args(["inspect", "--json", "-q", "--config"])
        .arg(cfg)
        .args(["--um-per-px", &um_per_px.to_string(), "--profile", "mm"])
        .arg(frame)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8(o.stdout).unwrap();
    serde_json::from_str(out.lines().next().unwrap()).unwrap()
}

#[test]
fn a_lit_cladding_edge_is_not_a_defect_with_the_rings_pass_and_is_without_it() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = tmp.path().join("ds");
    // the dataset tests/eval_cli.rs renders; its third good frame is a clean multimode fiber
    let label = synth_label(
        &ds,
        &[
            "--seed",
            "4242",
            "--train-good",
            "0",
            "--test-good",
            "3",
            "--per-kind",
            "1",
            "--kinds",
            "pit,scratch",
        ],
        "test/good/0002.png",
    );
    assert_eq!(label["fiber"], "mm");
    assert_eq!(label["defects"].as_array().unwrap().len(), 0);
    let um = label["um_per_px"].as_f64().unwrap();
    let frame = ds.join("test/good/0002.png");

    let off = inspect(&station(tmp.path(), false), &frame, um);
    let on = inspect(&station(tmp.path(), true), &frame, um);
    let zone_c = |r: &serde_json::Value| {
        r["defects"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["zone"] == "C")
            .count()
    };
    assert!(off["ring_level"].is_null(), "{off}");
    assert!(
        zone_c(&off) >= 1,
        "without the pass the edge is a defect: {off}"
    );
    assert!(on["ring_level"].as_f64().unwrap() > 0.05, "{on}");
    assert_eq!(zone_c(&on), 0, "{on}");
    assert!(
        on["map_score"].as_f64().unwrap() < off["map_score"].as_f64().unwrap() / 2.0,
        "{on} vs {off}"
    );
    // the rest of the answer is the same frame's: same centre, same verdict
    assert_eq!(on["verdict"], off["verdict"]);
    assert_eq!(on["center"], off["center"]);
}
