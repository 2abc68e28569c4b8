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
        with_defects += usize::from(!insp.defects.is_empty());
    }
    assert!(with_defects >= 2, "{with_defects} frames had defects");
}
