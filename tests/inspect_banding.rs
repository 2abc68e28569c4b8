//! Horizontal bands (a rolling shutter under a PWM-dimmed LED) and column stripes are divided
//! out before grading (src/inspect/destripe.rs): before, 4 % bands failed good fiber on
//! "defects" drawn by the bands. What the synthetic camera draws is never corrected.

mod common;

use common::*;
use endface::grade::{Profile, Verdict};
use endface::inspect::Inspector;
use endface::synth::{render_content, Content, SynthConfig};
use image::GrayImage;

fn banded(img: &GrayImage, period: f64, amp: f64) -> GrayImage {
    let mut out = img.clone();
    for (_, y, p) in out.enumerate_pixels_mut() {
        let g = 1.0 + amp * (std::f64::consts::TAU * y as f64 / period).cos();
        p.0[0] = (f64::from(p.0[0]) * g).round().clamp(0.0, 255.0) as u8;
    }
    out
}

#[test]
fn banded_good_fiber_still_passes() {
    let synth = SynthConfig {
        um_per_px: Some(0.5),
        aspect_y_over_x: Some(1.0),
        jpeg_prob: 0.0,
        ..SynthConfig::default()
    };
    let cfg = shipped_station();
    let mut checked = 0;
    for seed in 0..40u64 {
        let (img, truth) = render_content(&synth, 6300 + seed, Content::Good);
        let profile = Profile::builtin(truth.fiber.as_str()).unwrap();
        let mut insp = Inspector::new(&cfg, profile).unwrap();
        let plain = insp.inspect(&img).unwrap();
        if plain.verdict != Verdict::Pass {
            continue;
        }
        assert!(!plain.banding_corrected, "seed {seed}: {:?}", plain.banding);
        let period = [23.0, 41.0, 67.0][checked % 3];
        let got = insp.inspect(&banded(&img, period, 0.05)).unwrap();
        assert!(got.banding_corrected, "seed {seed}: {:?}", got.banding);
        assert_eq!(
            got.verdict,
            Verdict::Pass,
            "seed {seed}, bands every {period} rows: {:?}",
            got.reasons
        );
        checked += 1;
        if checked >= 4 {
            break;
        }
    }
    assert!(checked >= 4, "too few good frames graded PASS: {checked}");
}

#[test]
fn nothing_the_synthetic_camera_draws_is_taken_for_bands() {
    let synth = SynthConfig::default(); // every scale, look, noise level and JPEG setting
    let cfg = shipped_station();
    let mut insp = Inspector::new(&cfg, Profile::builtin("sm-upc").unwrap()).unwrap();
    for seed in 0..36u64 {
        let (img, _) = render_content(&synth, 6400 + seed, every_kind(seed));
        let got = insp.inspect(&img).unwrap();
        assert!(
            !got.banding_corrected,
            "seed {seed}: bands {:?}",
            got.banding
        );
    }
}
