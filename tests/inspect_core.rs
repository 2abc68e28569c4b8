//! `[model] core_mark` with the shipped model: a single-mode fiber whose core a camera shows
//! 12 grey levels darker than the cladding (the synthetic camera's good frame, seed 4005, with
//! its core darkened) gets the core marked by the model — a zone-A "defect" and a FAIL without
//! the pass — and is graded PASS with it, the mark's level reported; a dark pit of the core's
//! size on the axis still fails; a multimode profile is left alone.

mod common;

use common::*;
use endface::grade::{Profile, Verdict, Zone};
use endface::inspect::Inspector;
use image::GrayImage;

/// The synthetic camera's first good frame of seed 4005 (single-mode UPC, a faint core).
fn good_frame(dir: &std::path::Path) -> SynthFrame {
    let f = seed_4005_good_frame(dir, 0);
    assert_eq!(f.label["fiber"], "sm-upc");
    f
}

/// `f` with a disk of `diameter_um` on the axis `by` grey levels darker (soft edge ~0.8 µm).
fn darken(f: &SynthFrame, diameter_um: f64, by: f64) -> GrayImage {
    let mut out = f.image.clone();
    for (x, y, p) in out.enumerate_pixels_mut() {
        let r = (x as f64 - f.center[0]).hypot(y as f64 - f.center[1]) * f.um_per_px;
        let w = ((diameter_um / 2.0 - r) / 0.8 + 0.5).clamp(0.0, 1.0);
        p.0[0] = (p.0[0] as f64 - by * w).round().clamp(0.0, 255.0) as u8;
    }
    out
}

fn inspector(f: &SynthFrame, core_mark: bool, profile: &str) -> Inspector {
    let mut cfg = shipped_station();
    cfg.model.core_mark = core_mark;
    cfg.calibration.um_per_px_x = f.um_per_px;
    cfg.calibration.um_per_px_y = f.um_per_px;
    Inspector::new(&cfg, Profile::builtin(profile).unwrap()).unwrap()
}

#[test]
fn a_dark_single_mode_core_is_the_core_not_a_zone_a_defect() {
    let tmp = tempfile::tempdir().unwrap();
    let f = good_frame(tmp.path());
    let dark_core = darken(&f, 9.2, 12.0);

    let off = inspector(&f, false, "sm-upc")
        .inspect_located(&dark_core, &f.located())
        .unwrap();
    assert_eq!(
        off.verdict,
        Verdict::Fail,
        "the model marks the core: {off:?}"
    );
    assert!(
        off.defects.iter().any(|d| d.zone == Some(Zone::A)),
        "{off:?}"
    );
    assert_eq!(off.core_level, None);

    let on = inspector(&f, true, "sm-upc")
        .inspect_located(&dark_core, &f.located())
        .unwrap();
    assert_eq!(on.verdict, Verdict::Pass, "{on:?}");
    assert!(on.core_level.unwrap() >= 0.95, "{on:?}");
    assert!(on.image_score.unwrap() < on.image_threshold, "{on:?}");

    // the frame as rendered: nothing to take out
    let clean = inspector(&f, true, "sm-upc")
        .inspect_located(&f.image, &f.located())
        .unwrap();
    assert_eq!(clean.verdict, Verdict::Pass, "{clean:?}");
    assert_eq!(clean.core_level, Some(0.0));

    // a dark pit the size of the core on the axis is a pit
    let pit = darken(&f, 9.2, 60.0);
    let r = inspector(&f, true, "sm-upc")
        .inspect_located(&pit, &f.located())
        .unwrap();
    assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
    assert_eq!(r.core_level, Some(0.0), "{r:?}");

    // a multimode profile: its zone A is 65 µm, the pass does not run
    let mm = inspector(&f, true, "mm")
        .inspect_located(&dark_core, &f.located())
        .unwrap();
    assert_eq!(mm.core_level, None, "{mm:?}");
}
