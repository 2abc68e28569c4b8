//! Stuck sensor pixels (hot or dead) are not graded as defects (src/inspect/hotpixel.rs):
//! before, a single hot pixel in the core of a good single-mode fiber FAILED it ("zone A:
//! defect 0.66 µm, none allowed"). What the synthetic camera draws — defects of every kind,
//! noise, blur, JPEG — is never taken for a stuck pixel.

mod common;

use common::*;
use endface::grade::{Profile, Verdict};
use endface::inspect::Inspector;
use endface::synth::{render_content, Content, FiberProfile, SynthConfig};
use image::Luma;

#[test]
fn a_hot_pixel_in_the_core_does_not_fail_good_fiber() {
    let synth = SynthConfig {
        um_per_px: Some(0.5),
        aspect_y_over_x: Some(1.0),
        jpeg_prob: 0.0,
        fiber: Some(FiberProfile::SmUpc),
        ..SynthConfig::default()
    };
    let cfg = shipped_station();
    let mut checked = 0;
    for seed in 0..40u64 {
        let (img, truth) = render_content(&synth, 6100 + seed, Content::Good);
        let profile = Profile::builtin(truth.fiber.as_str()).unwrap();
        let mut insp = Inspector::new(&cfg, profile).unwrap();
        let plain = insp.inspect(&img).unwrap();
        if plain.verdict != Verdict::Pass {
            continue;
        }
        assert_eq!(plain.stuck_pixels, 0, "seed {seed}");
        // three stuck pixels, each at the extreme away from its surroundings (hot on a dark
        // spot, dead on a bright one): two 3 µm from the axis (zone A), one on the cladding
        let [cx, cy] = truth.center_in_frame;
        let mut hot = img.clone();
        for (dx, dy) in [(6.0, 0.0), (0.0, -6.0), (-60.0, 40.0)] {
            let (x, y) = ((cx + dx).round() as u32, (cy + dy).round() as u32);
            let v = if img.get_pixel(x, y).0[0] > 128 {
                0
            } else {
                255
            };
            hot.put_pixel(x, y, Luma([v]));
        }
        let got = insp.inspect(&hot).unwrap();
        assert_eq!(got.stuck_pixels, 3, "seed {seed}");
        assert_eq!(
            got.verdict,
            Verdict::Pass,
            "seed {seed}: {:?} {:?}",
            got.reasons,
            got.defects
        );
        checked += 1;
        if checked >= 4 {
            break;
        }
    }
    assert!(checked >= 4, "too few good frames graded PASS: {checked}");
}

#[test]
fn nothing_the_synthetic_camera_draws_is_taken_for_a_stuck_pixel() {
    let synth = SynthConfig::default(); // every scale, look, noise level and JPEG setting
    let cfg = shipped_station();
    let mut insp = Inspector::new(&cfg, Profile::builtin("sm-upc").unwrap()).unwrap();
    for seed in 0..36u64 {
        let (img, _) = render_content(&synth, 6200 + seed, every_kind(seed));
        let got = insp.inspect(&img).unwrap();
        assert_eq!(got.stuck_pixels, 0, "seed {seed}");
    }
}
