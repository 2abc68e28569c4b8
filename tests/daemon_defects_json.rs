//! The daemon journals a frame's defects as JSON text written straight into a reused buffer
//! (`daemon::engine::write_defects_json`, no allocation per frame). It must be exactly the
//! text the journal held before: `serde_json::to_value(&inspection.defects)` serialized (keys
//! in name order, `score` widened to f64). Checked here on real inspections of defective
//! frames, so that a field added to `InspectedDefect` but not to the writer fails.

mod common;

use common::*;
use endface::capture::Frame;
use endface::config::StationConfig;
use endface::daemon::FrameInspector;
use endface::grade::Profile;
use endface::inspect::Inspector;
use endface::synth::{render_content, Content, DefectKind, FiberProfile, SynthConfig};

#[test]
fn journalled_defects_json_is_the_value_tree_text() {
    let um = 0.5;
    let mut station = StationConfig {
        runtime: cpu_runtime(),
        ..StationConfig::default()
    };
    station.model.manifest = fixture("recon256.manifest.json");
    station.calibration.um_per_px_x = um;
    station.calibration.um_per_px_y = um;
    let profile = Profile::builtin("sm-upc").unwrap();
    let mut daemon_side = Inspector::new(&station, profile.clone()).unwrap();
    let mut reference = Inspector::new(&station, profile).unwrap();
    let cfg = SynthConfig {
        width: 640,
        height: 480,
        fiber: Some(FiberProfile::SmUpc),
        um_per_px: Some(um),
        aspect_y_over_x: Some(1.0),
        jpeg_prob: 0.0,
        defect_prob: 1.0,
    };
    let mut with_defects = 0;
    let mut record = endface::daemon::InspectionRecord::default();
    for (i, kind) in [
        DefectKind::Pit,
        DefectKind::Scratch,
        DefectKind::Contamination,
        DefectKind::Pit,
        DefectKind::Scratch,
        DefectKind::Contamination,
    ]
    .into_iter()
    .enumerate()
    {
        let (img, _) = render_content(&cfg, 500 + i as u64, Content::Defect(kind));
        let insp = reference.inspect(&img).unwrap();
        let expected =
            serde_json::to_string(&serde_json::to_value(&insp.defects).unwrap()).unwrap();
        let frame = Frame {
            image: img,
            sequence: i as u64,
            captured_mono_ns: 0,
            captured_unix_ns: 0,
            origin: None,
        };
        // Into the same record every time, as the daemon does.
        FrameInspector::inspect_into(&mut daemon_side, &frame, &mut record).unwrap();
        assert_eq!(record.defects_json, expected, "frame {i}");
        // the frame's condition: the inspection's own fields under their `inspect --json` names
        let cond: serde_json::Value = serde_json::from_str(&record.frame_condition_json).unwrap();
        let whole = serde_json::to_value(&insp).unwrap();
        let keys = cond.as_object().unwrap();
        assert_eq!(keys.len(), 16, "{cond}");
        for (k, v) in keys {
            // (serde_json's default float parsing may miss the last bit)
            assert!(
                same_json(v, &whole[k.as_str()]),
                "frame {i}: {k}: {v} vs {}",
                whole[k.as_str()]
            );
        }
        with_defects += usize::from(!insp.defects.is_empty());
    }
    assert!(with_defects >= 2, "{with_defects} frames had defects");
}

/// Equal JSON values, numbers to 1e-12 relative.
fn same_json(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            // f64 fields to the last bit or so; f32 fields (map_score, edge_scan.z, ...) are
            // written as the shortest f32 text and read back as f64: within half an f32 ulp
            (x - y).abs() <= 1e-12 * x.abs().max(y.abs())
                || (x as f32 == y as f32 && (x - y).abs() <= 1.2e-7 * x.abs().max(y.abs()))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}
