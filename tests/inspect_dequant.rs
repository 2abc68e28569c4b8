//! `[model] dequantize` with the shipped model: the synthetic camera's good frame (seed 4005,
//! `test/good/0004`) posterized to 5 bits (steps of 8 grey levels, as
//! `scripts/perturb_dataset.py poster5` does) makes the model mark the plateaus' edges — a FAIL
//! without the pass — and is graded PASS with it, its `grey_step` reported; a 50-level pit painted
//! into the posterized frame still fails; the frame as rendered is left exactly as it is.

mod common;

use common::*;
use endface::grade::{Profile, Verdict};
use endface::inspect::{dequant, Inspector};
use image::GrayImage;

fn good_frame(dir: &std::path::Path) -> SynthFrame {
    seed_4005_good_frame(dir, 4)
}

/// 5-bit grey levels: the middle of each 8-level step.
fn posterize(img: &GrayImage) -> GrayImage {
    let mut out = img.clone();
    for p in out.pixels_mut() {
        p.0[0] = (p.0[0] / 8) * 8 + 4;
    }
    out
}

/// A dark disk of `diameter_um`, `depth` grey levels, `r_um` from the axis (to the right).
fn pit(f: &SynthFrame, img: &GrayImage, r_um: f64, diameter_um: f64, depth: f64) -> GrayImage {
    let mut out = img.clone();
    let c = [f.center[0] + r_um / f.um_per_px, f.center[1]];
    for (x, y, p) in out.enumerate_pixels_mut() {
        let r = (x as f64 - c[0]).hypot(y as f64 - c[1]) * f.um_per_px;
        let w = ((diameter_um / 2.0 - r) / 0.6 + 0.5).clamp(0.0, 1.0);
        p.0[0] = (p.0[0] as f64 - depth * w).round().clamp(0.0, 255.0) as u8;
    }
    out
}

fn inspector(f: &SynthFrame, dequantize: bool) -> Inspector {
    let mut cfg = shipped_station();
    cfg.model.dequantize = dequantize;
    cfg.calibration.um_per_px_x = f.um_per_px;
    cfg.calibration.um_per_px_y = f.um_per_px;
    Inspector::new(&cfg, Profile::builtin("sm-upc").unwrap()).unwrap()
}

#[test]
fn a_posterized_good_frame_passes_once_its_steps_are_smoothed_and_a_pit_still_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let f = good_frame(tmp.path());
    let poster = posterize(&f.image);

    let off = inspector(&f, false)
        .inspect_located(&poster, &f.located())
        .unwrap();
    assert_eq!(
        off.verdict,
        Verdict::Fail,
        "the model marks the steps: {off:?}"
    );
    let step = off.grey_step.unwrap();
    assert!(step >= 6.0, "a 5-bit frame's step: {step}");

    let on = inspector(&f, true)
        .inspect_located(&poster, &f.located())
        .unwrap();
    assert_eq!(on.verdict, Verdict::Pass, "{on:?}");
    assert_eq!(on.grey_step, Some(step));

    // a pit 8 µm across and 50 grey levels deep in zone B (limit 5 µm), posterized with the rest
    let pitted = posterize(&pit(&f, &f.image, 30.0, 8.0, 50.0));
    let r = inspector(&f, true)
        .inspect_located(&pitted, &f.located())
        .unwrap();
    assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
    assert!(
        r.defects.iter().any(|d| d.fails && d.size_um >= 5.0),
        "{r:?}"
    );

    // the frame as rendered: a full 8-bit picture, left exactly as it is
    let mut plain_on = inspector(&f, true);
    let mut plain_off = inspector(&f, false);
    let a = plain_on.inspect_located(&f.image, &f.located()).unwrap();
    let b = plain_off.inspect_located(&f.image, &f.located()).unwrap();
    assert!(a.grey_step.unwrap() < dequant::MIN_STEP, "{a:?}");
    assert_eq!(a.verdict, Verdict::Pass, "{a:?}");
    assert_eq!(a.grey_step, b.grey_step);
    assert_eq!(a.image_score, b.image_score);
    assert_eq!(plain_on.crop_in_crop(), plain_off.crop_in_crop());
    assert_eq!(
        plain_on.anomaly_map_in_crop(),
        plain_off.anomaly_map_in_crop()
    );
}
