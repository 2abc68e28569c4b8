//! The real self-test (endface::inspect::Inspector with ONNX Runtime) gates an install: a
//! bundle whose golden verdicts the model reproduces is installed; one whose recorded verdict
//! differs is refused and the board keeps its slot. Needs scripts/setup-ort.sh (like the other
//! model tests).

mod bundle_support;
mod common;

use bundle_support::*;
use endface::bundle::{self, BundleError, InspectorSelfTest, SlotId};
use std::fs;
use std::path::Path;

/// A station config for the test model on the CPU.
fn station_config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("station.toml");
    let lib = common::ort_lib();
    fs::write(
        &path,
        format!(
            "[station]\nname = \"selftest\"\nprofile = \"sm-upc\"\n\
             [calibration]\num_per_px_x = 0.5\num_per_px_y = 0.5\n\
             [runtime]\nonnxruntime_library = \"{}\"\nproviders = [\"cpu\"]\nintra_threads = 1\n\
             [model]\nmanifest = \"unused-the-bundle-sets-it.json\"\n",
            lib.display()
        ),
    )
    .unwrap();
    path
}

/// Bundle the recon256 test model with one golden frame recorded as `verdict`.
fn bundle_with_verdict(
    base: &Path,
    keys: &Keys,
    tag: &str,
    version: &str,
    verdict: &str,
) -> std::path::PathBuf {
    let src = base.join(format!("src-{tag}"));
    let golden = src.join("golden");
    fs::create_dir_all(&golden).unwrap();
    fs::copy(common::fixture("recon256.onnx"), src.join("recon256.onnx")).unwrap();
    fs::copy(
        common::fixture("recon256.manifest.json"),
        src.join("recon256.manifest.json"),
    )
    .unwrap();
    fs::copy(
        common::fixture("parity_frame.png"),
        golden.join("frame.png"),
    )
    .unwrap();
    fs::write(
        golden.join("expected.jsonl"),
        format!("{{\"image\": \"frame.png\", \"verdict\": \"{verdict}\"}}\n"),
    )
    .unwrap();
    let opts = bundle::CreateOptions {
        model: src.join("recon256.onnx"),
        model_manifest: src.join("recon256.manifest.json"),
        station_config: None,
        profiles: vec![],
        golden_dir: golden,
        version: Some(version.into()),
        note: None,
        output: base.join(format!("{tag}.bundle")),
    };
    bundle::create_bundle(&opts, &bundle::SigningKeyFile::load(&keys.secret).unwrap()).unwrap();
    opts.output
}

#[test]
fn real_inspector_gates_the_install() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path();
    let k = keys(base, "lab");
    let root = base.join("root");
    let st = InspectorSelfTest {
        fallback_config: station_config(base),
    };

    // What the inspector says about the frame today (the golden verdict a technician records).
    let probe = bundle_with_verdict(base, &k, "probe", "0.0.1", "pass");
    let verdict = match install_with(&root, &trust(&k), &st, &probe, false) {
        Ok(_) => "pass".to_string(),
        Err(BundleError::SelfTestFailed(msg)) => {
            // "frame.png: verdict <got> (recorded pass)"
            let got = msg
                .split("verdict ")
                .nth(1)
                .and_then(|s| s.split(' ').next())
                .unwrap_or_else(|| panic!("{msg}"));
            got.to_string()
        }
        Err(e) => panic!("self-test could not run: {e}"),
    };
    let before = snapshot(&root);

    let other = if verdict == "fail" { "pass" } else { "fail" };
    let wrong = bundle_with_verdict(base, &k, "wrong", "2.0.0", other);
    let err = install_with(&root, &trust(&k), &st, &wrong, false).unwrap_err();
    assert!(
        matches!(err, BundleError::SelfTestFailed(ref m) if m.contains(&format!("recorded {other}"))),
        "{err}"
    );
    assert_eq!(snapshot(&root), before);

    let right = bundle_with_verdict(base, &k, "right", "2.0.1", &verdict);
    let rep = install_with(&root, &trust(&k), &st, &right, false).unwrap();
    assert_eq!(rep.version, "2.0.1");
    let choice = bundle::on_daemon_start(&root).unwrap();
    assert_ne!(choice.slot, SlotId::Factory);
    assert!(choice
        .info
        .unwrap()
        .model_manifest
        .ends_with("model/recon256.manifest.json"));
}

#[test]
fn missing_station_config_fails_the_self_test_with_its_path() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path();
    let k = keys(base, "lab");
    let st = InspectorSelfTest {
        fallback_config: base.join("no-such-station.toml"),
    };
    let b = bundle_with_verdict(base, &k, "x", "1.0.0", "pass");
    let err = install_with(&base.join("root"), &trust(&k), &st, &b, false).unwrap_err();
    assert!(
        matches!(err, BundleError::SelfTestFailed(ref m) if m.contains("no-such-station.toml")),
        "{err}"
    );
}
