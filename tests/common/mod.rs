//! Helpers shared by the inspect/model/eval integration tests.
#![allow(dead_code)]

use endface::config::{ProviderKind, RuntimeSection};
use std::path::{Path, PathBuf};

/// The repository root (tests run with it as working directory).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(name: &str) -> PathBuf {
    repo().join("tests").join("fixtures").join(name)
}

/// The ONNX Runtime library the tests use: $ENDFACE_ORT_LIB or .ort/<arch>/ (installed by
/// scripts/setup-ort.sh). Panics with what to run when it is missing.
pub fn ort_lib() -> PathBuf {
    if let Some(p) = std::env::var_os("ENDFACE_ORT_LIB").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let p = repo()
        .join(".ort")
        .join(std::env::consts::ARCH)
        .join("libonnxruntime.so");
    assert!(
        p.is_file(),
        "ONNX Runtime not installed: run `scripts/setup-ort.sh` (expected {})",
        p.display()
    );
    p
}

/// CPU-only runtime settings with the test library.
pub fn cpu_runtime() -> RuntimeSection {
    RuntimeSection {
        onnxruntime_library: Some(ort_lib()),
        providers: vec![ProviderKind::Cpu],
        intra_threads: 1,
        ..RuntimeSection::default()
    }
}

/// Little-endian f32 file.
pub fn read_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Largest absolute difference (panics on length mismatch).
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Write a station config file `dir/name` for the `endface` process: CPU provider, one ONNX
/// Runtime thread, this manifest, and `model_extra` (more `[model]` lines, may be empty).
pub fn cpu_station_file(dir: &Path, name: &str, manifest: &Path, model_extra: &str) -> PathBuf {
    let cfg = dir.join(name);
    std::fs::write(
        &cfg,
        format!(
            "[runtime]\nonnxruntime_library = \"{}\"\nproviders = [\"cpu\"]\nintra_threads = 1\n\
             [model]\nmanifest = \"{}\"\n{model_extra}",
            ort_lib().display(),
            manifest.display()
        ),
    )
    .unwrap();
    cfg
}

/// A CPU station config with the shipped model (everything else default).
pub fn shipped_station() -> endface::config::StationConfig {
    let mut cfg = endface::config::StationConfig {
        runtime: cpu_runtime(),
        ..endface::config::StationConfig::default()
    };
    cfg.model.manifest = repo().join("models/endface-student.manifest.json");
    cfg
}

/// Good and each defect kind in turn (`i` modulo 6), for sweeps over what the synthetic camera
/// draws.
pub fn every_kind(i: u64) -> endface::synth::Content {
    use endface::synth::{Content, DefectKind};
    const KINDS: [Option<DefectKind>; 6] = [
        None,
        Some(DefectKind::Scratch),
        Some(DefectKind::Pit),
        Some(DefectKind::Contamination),
        Some(DefectKind::Chip),
        Some(DefectKind::Crack),
    ];
    match KINDS[(i % 6) as usize] {
        None => Content::Good,
        Some(k) => Content::Defect(k),
    }
}

/// Render a labelled set with `endface synth --out DIR <args>` and return the label of `image`.
pub fn synth_label(dir: &Path, args: &[&str], image: &str) -> serde_json::Value {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_endface"))
        .env_remove("ENDFACE_ORT_LIB")
        .env("ENDFACE_LOG", "error")
        .args(["synth", "--out"])
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::read_to_string(dir.join("labels.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|l| l["image"] == image)
        .unwrap()
}

/// A frame of a set rendered by [`synth_label`], with its label's scale and fiber circle.
pub struct SynthFrame {
    pub image: image::GrayImage,
    pub label: serde_json::Value,
    pub center: [f64; 2],
    pub radius_px: f64,
    pub um_per_px: f64,
}

/// Render a labelled set into `dir/ds` with `endface synth <args>` and load its `image`.
pub fn synth_frame(dir: &Path, args: &[&str], image: &str) -> SynthFrame {
    let ds = dir.join("ds");
    let label = synth_label(&ds, args, image);
    let c = label["center"].as_array().unwrap();
    SynthFrame {
        image: image::open(ds.join(image)).unwrap().to_luma8(),
        center: [c[0].as_f64().unwrap(), c[1].as_f64().unwrap()],
        radius_px: label["cladding_radius_px"].as_f64().unwrap(),
        um_per_px: label["um_per_px"].as_f64().unwrap(),
        label,
    }
}

impl SynthFrame {
    /// The fiber where the label has it (confidence 0.99, focus 0.9), for `inspect_located`.
    pub fn located(&self) -> endface::locate::Located {
        endface::locate::Located {
            center_in_frame: self.center,
            cladding_radius_px: self.radius_px,
            radius_y_px: self.radius_px,
            confidence: 0.99,
            focus: 0.9,
        }
    }
}

/// Good frame number `index` of the synthetic camera's seed 4005 (rendered with `index + 1` good
/// frames and one pit frame; a defect-free label asserted).
pub fn seed_4005_good_frame(dir: &Path, index: usize) -> SynthFrame {
    let n = (index + 1).to_string();
    let image = format!("test/good/{index:04}.png");
    let f = synth_frame(
        dir,
        &[
            "--seed",
            "4005",
            "--train-good",
            "0",
            "--test-good",
            &n,
            "--per-kind",
            "1",
            "--kinds",
            "pit",
        ],
        &image,
    );
    assert_eq!(f.label["defects"].as_array().unwrap().len(), 0);
    f
}
