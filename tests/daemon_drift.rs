//! The drift monitor inside the daemon: a replayed stream that is like the reference for a
//! while and then darker. Checks that the DRIFT state is reached only after the shift, that
//! every test lands in the journal's `drift_tests` table, that the optional DRIFT line follows
//! the state, that the run summary counts it, and that verdicts are untouched by it.

#[path = "daemon_support/mod.rs"]
mod support;

use endface::actuate::sim::SimBackend;
use endface::actuate::{Outputs, Role};
use endface::capture::synthetic::SceneHints;
use endface::capture::{open_source, Frame};
use endface::daemon::{
    Daemon, FrameInspector, InspectionRecord, InspectorError, StageTimings, Verdict,
};
use endface::drift::{frame_features, DriftMonitor, DriftState, FrameFeatures};
use endface::journal::Journal;
use image::{GrayImage, Luma};
use rand::{Rng, SeedableRng};
use std::path::Path;
use std::sync::atomic::Ordering;
use support::*;

const W: u32 = 96;
const H: u32 = 72;

/// A bright disc (the "fiber") on a textured background, with per-frame light jitter;
/// `gain` < 1 dims the whole frame (an ageing LED).
fn frame(seed: u64, gain: f64) -> GrayImage {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let light = 1.0 + rng.gen_range(-0.03..0.03);
    let (cx, cy) = (
        48.0 + rng.gen_range(-2.0..2.0),
        36.0 + rng.gen_range(-2.0..2.0),
    );
    GrayImage::from_fn(W, H, |x, y| {
        let r = ((x as f64 - cx).powi(2) + (y as f64 - cy).powi(2)).sqrt();
        let base = if r < 20.0 { 90.0 } else { 170.0 };
        let v = (base + rng.gen_range(-12.0..12.0)) * light * gain;
        Luma([v.clamp(0.0, 255.0) as u8])
    })
}

fn features(img: &GrayImage) -> FrameFeatures {
    frame_features(img, [48.0, 36.0], 20.0)
}

/// Passes every frame and measures drift features around the frame centre.
struct FeatureInspector;

impl FrameInspector for FeatureInspector {
    fn inspect(&mut self, frame: &Frame) -> Result<InspectionRecord, InspectorError> {
        Ok(InspectionRecord {
            verdict: Verdict::Pass,
            reasons: Vec::new(),
            defects_json: "[]".into(),
            timings_ms: StageTimings::default(),
            model_sha256: String::new(),
            provider: "test".into(),
            frame_condition_json: String::new(),
            drift_features: Some(features(&frame.image)),
        })
    }
    fn describe(&self) -> String {
        "drift feature test inspector".into()
    }
}

fn write_stream(dir: &Path, untouched: usize, shifted: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..untouched + shifted {
        let gain = if i < untouched { 1.0 } else { 0.8 };
        frame(10_000 + i as u64, gain)
            .save(dir.join(format!("f{i:04}.png")))
            .unwrap();
    }
}

#[test]
fn drift_state_follows_a_shift_and_reaches_journal_line_and_summary() {
    let dir = tempfile::tempdir().unwrap();
    let (untouched, shifted) = (100usize, 100usize);
    write_stream(&dir.path().join("frames"), untouched, shifted);
    let reference: Vec<FrameFeatures> = (0..120).map(|i| features(&frame(i, 1.0))).collect();
    let cfg = config(
        dir.path(),
        "[camera]\nsource = \"replay\"\npath = \"frames\"\n[trigger]\nmode = \"software\"\n\
         [drift]\nwindow = 20\ntest_every = 20\nenter_after = 2\nexit_after = 2\n",
    );
    let monitor = DriftMonitor::new(&reference, cfg.drift.monitor_config()).unwrap();
    let source = open_source(&cfg.camera, &SceneHints::default()).unwrap();
    let (backend, rec) = SimBackend::from_config(&cfg.gpio).unwrap();
    let outputs = Outputs::new(Box::new(backend), &cfg.gpio);
    let journal_path = cfg.journal.path.clone();
    let mut d = Daemon::new(cfg, source, Box::new(FeatureInspector), outputs).unwrap();
    d.set_drift_monitor(Some(monitor));
    let trigger = d.trigger_handle();
    let stop = d.stop_flag();
    let run = start(d, None);
    wait_until(|| rec.level(Role::Ready), "READY");
    let mut drift_at = None;
    for i in 0..untouched + shifted {
        trigger.fire().unwrap();
        run.wait_for(i + 1);
        if drift_at.is_none() && rec.level(Role::Drift) {
            drift_at = Some(i + 1);
        }
    }
    stop.store(true, Ordering::SeqCst);
    let events = run.events();
    let summary = run.handle.join().unwrap();

    // Verdicts are the inspector's, drift or not.
    assert!(events.iter().all(|e| e.verdict == Verdict::Pass));
    assert_eq!(summary.inspections, 200);

    // The DRIFT line rose after the shift, within two disjoint windows of it (+ one partly
    // shifted window), and not before.
    let at = drift_at.expect("DRIFT line never rose");
    assert!(
        at > untouched && at <= untouched + 3 * 20,
        "DRIFT at inspection {at}"
    );

    // Summary and journal.
    assert_eq!(summary.drift_tests, 10);
    assert_eq!(summary.drift_episodes, 1);
    assert_eq!(summary.drift_state, Some(DriftState::Drift));
    let j = Journal::open_existing(&journal_path).unwrap();
    let tests = j.drift_tests(None).unwrap();
    assert_eq!(tests.len(), 10);
    assert_eq!(
        tests.iter().map(|t| t.inspection).collect::<Vec<_>>(),
        (1..=10).map(|k| k * 20).collect::<Vec<_>>()
    );
    // Untouched windows: no significant test; after the shift: every full window is.
    for t in &tests {
        if t.inspection <= untouched as u64 {
            assert!(!t.significant && t.state == "ok", "{t:?}");
        } else if t.inspection >= untouched as u64 + 20 {
            assert!(t.significant, "{t:?}");
        }
    }
    let changed: Vec<_> = tests.iter().filter(|t| t.changed).collect();
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].state, "drift");
    // The movers name a brightness feature.
    let movers = changed[0].top_shifts.to_string();
    assert!(movers.contains("median"), "{movers}");
    // On stop every line goes to the safe state, DRIFT included.
    assert!(!rec.level(Role::Drift));
}

#[test]
fn drift_config_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (text, key) in [
        ("[drift]\nwindow = 1\n", "drift.window"),
        (
            "[drift]\nalpha = 0.001\npermutations = 199\n",
            "drift.permutations",
        ),
        ("[drift]\nenabled = \"maybe\"\n", "enabled"),
        ("[drift]\nwindwo = 3\n", "windwo"),
    ] {
        let e = endface::daemon::DaemonConfig::from_toml_str(text, "s.toml", dir.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains(key) && e.contains("s.toml"), "{text}: {e}");
    }
}

#[test]
fn default_reference_sits_beside_the_manifest() {
    use endface::daemon::default_drift_reference;
    assert_eq!(
        default_drift_reference(Path::new("/m/endface-student.manifest.json")),
        Path::new("/m/endface-student.drift.json")
    );
    assert_eq!(
        default_drift_reference(Path::new("rel/x.json")),
        Path::new("rel/x.drift.json")
    );
}
