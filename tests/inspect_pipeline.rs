//! Frame → verdict with the recon256 test model (a fixed Gaussian-blur "reconstruction"):
//! defect size, zone, contact-zone masking, non-square pixels, UNABLE on poor focus.
//! The fiber position is given (Inspector::inspect_located), so these tests do not depend on
//! the localizer — but for the last, which checks that a fiber the localizer's rescue found
//! is graded and reported so.

mod common;
mod locate_render; // the procedural end faces of the localizer's tests; one is used here

use common::*;
use endface::config::StationConfig;
use endface::geometry::PixelScale;
use endface::grade::{FeatureKind, Profile, Verdict, Zone};
use endface::inspect::Inspector;
use image::GrayImage;

/// A 640x480 end face: bright ferrule, darker cladding (r = 62.5 µm) with soft edges, brighter
/// core, plus sharp dark pits `(dx_um, dy_um, diameter_um)` relative to the axis.
fn frame(scale: PixelScale, center: [f64; 2], pits: &[(f64, f64, f64)]) -> GrayImage {
    let logistic = |t: f64| 1.0 / (1.0 + (-t).exp());
    GrayImage::from_fn(640, 480, |x, y| {
        let dx = (x as f64 - center[0]) * scale.um_per_px_x;
        let dy = (y as f64 - center[1]) * scale.um_per_px_y;
        let r = dx.hypot(dy);
        let mut v = 180.0 - 70.0 * logistic((62.5 - r) / 2.0) + 20.0 * logistic((4.5 - r) / 2.0);
        for &(px, py, d) in pits {
            if (dx - px).hypot(dy - py) <= d / 2.0 {
                v = 40.0;
            }
        }
        image::Luma([v.round().clamp(0.0, 255.0) as u8])
    })
}

fn located(center: [f64; 2], scale: PixelScale, focus: f64) -> endface::locate::Located {
    endface::locate::Located {
        center_in_frame: center,
        cladding_radius_px: 62.5 / scale.um_per_px_x,
        radius_y_px: 62.5 / scale.um_per_px_y,
        confidence: 0.99,
        focus,
    }
}

fn inspector(scale: PixelScale) -> Inspector {
    let mut cfg = StationConfig {
        runtime: cpu_runtime(),
        ..StationConfig::default()
    };
    cfg.model.manifest = fixture("recon256.manifest.json");
    cfg.calibration.um_per_px_x = scale.um_per_px_x;
    cfg.calibration.um_per_px_y = scale.um_per_px_y;
    cfg.locate.min_focus = 0.5;
    Inspector::new(&cfg, Profile::builtin("sm-upc").unwrap()).unwrap()
}

const CENTER: [f64; 2] = [319.5, 239.5];

#[test]
fn clean_fiber_passes() {
    let scale = PixelScale::square(0.5);
    let mut insp = inspector(scale);
    let r = insp
        .inspect_located(&frame(scale, CENTER, &[]), &located(CENTER, scale, 0.8))
        .unwrap();
    assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
    assert!(r.defects.is_empty());
    assert!(r.image_score.unwrap() < r.image_threshold);
    assert_eq!(r.execution_provider, "cpu");
    assert_eq!(r.model_sha256.len(), 64);
    assert_eq!(insp.anomaly_map_in_crop().len(), 256 * 256);
}

#[test]
fn big_pit_in_zone_b_fails_with_size_and_box() {
    let scale = PixelScale::square(0.5);
    let mut insp = inspector(scale);
    let f = frame(scale, CENTER, &[(30.0, 10.0, 6.0)]);
    let r = insp
        .inspect_located(&f, &located(CENTER, scale, 0.8))
        .unwrap();
    assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
    assert_eq!(r.defects.len(), 1, "{:?}", r.defects);
    let d = &r.defects[0];
    assert_eq!(d.kind, FeatureKind::Defect);
    assert_eq!(d.zone, Some(Zone::B));
    assert!(d.fails);
    assert!(d.size_um > 5.0 && d.size_um < 9.0, "{d:?}");
    // The pit's centre (frame px) lies inside the reported frame box.
    let (px, py) = (CENTER[0] + 30.0 / 0.5, CENTER[1] + 10.0 / 0.5);
    assert!(d.bbox[0] as f64 <= px && px <= d.bbox[2] as f64, "{d:?}");
    assert!(d.bbox[1] as f64 <= py && py <= d.bbox[3] as f64, "{d:?}");
    assert!(!r.reasons.is_empty());
}

#[test]
fn marks_beyond_the_contact_zone_do_not_count() {
    let scale = PixelScale::square(0.5);
    let mut insp = inspector(scale);
    // ~128.7 µm from the axis (nearest edge 126.7 µm): outside the 250 µm contact zone but
    // inside the 256 µm crop.
    let f = frame(scale, CENTER, &[(91.0, -91.0, 4.0)]);
    let r = insp
        .inspect_located(&f, &located(CENTER, scale, 0.8))
        .unwrap();
    assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
    assert!(r.defects.is_empty(), "{:?}", r.defects);
    assert!(r.image_score.unwrap() < r.image_threshold, "{r:?}");
    // The same mark inside zone D is seen (and passes: defects < 10 µm are allowed there).
    let f = frame(scale, CENTER, &[(70.0, -70.0, 4.0)]);
    let r = insp
        .inspect_located(&f, &located(CENTER, scale, 0.8))
        .unwrap();
    assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
    assert_eq!(r.defects.len(), 1, "{:?}", r.defects);
    assert_eq!(r.defects[0].zone, Some(Zone::D));
    assert!(r.image_score.unwrap() > r.image_threshold, "{r:?}");
}

#[test]
fn non_square_pixels_measure_the_same_defect() {
    let square = PixelScale::square(0.5);
    let pal = PixelScale {
        um_per_px_x: 0.5,
        um_per_px_y: 0.5 / 1.09,
    };
    let pits = [(-20.0, 25.0, 6.0)];
    let r_sq = inspector(square)
        .inspect_located(&frame(square, CENTER, &pits), &located(CENTER, square, 0.8))
        .unwrap();
    let r_pal = inspector(pal)
        .inspect_located(&frame(pal, CENTER, &pits), &located(CENTER, pal, 0.8))
        .unwrap();
    assert_eq!(r_sq.defects.len(), 1);
    assert_eq!(r_pal.defects.len(), 1);
    let (a, b) = (&r_sq.defects[0], &r_pal.defects[0]);
    assert!((a.size_um - b.size_um).abs() < 1.0, "{a:?} vs {b:?}");
    assert!(
        (a.inner_radius_um - b.inner_radius_um).abs() < 1.0,
        "{a:?} vs {b:?}"
    );
    // In frame pixels the PAL box is ~1.09x taller.
    let ha = (a.bbox[3] - a.bbox[1]) as f64;
    let hb = (b.bbox[3] - b.bbox[1]) as f64;
    assert!(hb > ha, "{a:?} vs {b:?}");
}

#[test]
fn poor_focus_is_unable_never_pass() {
    let scale = PixelScale::square(0.5);
    let mut insp = inspector(scale);
    let r = insp
        .inspect_located(&frame(scale, CENTER, &[]), &located(CENTER, scale, 0.05))
        .unwrap();
    assert_eq!(r.verdict, Verdict::Unable);
    assert!(r.reasons[0].contains("focus"), "{:?}", r.reasons);
    assert!(r.image_score.is_none());
}

#[test]
fn crop_space_map_maps_back_to_frame() {
    let scale = PixelScale::square(0.5);
    let mut insp = inspector(scale);
    let f = frame(scale, CENTER, &[(30.0, 10.0, 6.0)]);
    let r = insp
        .inspect_located(&f, &located(CENTER, scale, 0.8))
        .unwrap();
    let g = r.geometry.unwrap();
    let frame_map = g.map_to_frame(insp.anomaly_map_in_crop(), 640, 480);
    let (px, py) = ((CENTER[0] + 60.0) as usize, (CENTER[1] + 20.0) as usize);
    let near_pit = (py - 6..py + 6)
        .flat_map(|y| (px - 6..px + 6).map(move |x| (x, y)))
        .map(|(x, y)| frame_map[y * 640 + x])
        .fold(0.0f32, f32::max);
    assert!(near_pit > r.pixel_threshold, "{near_pit}");
    assert_eq!(frame_map[0], 0.0);
}

#[test]
fn fiber_cut_by_the_frame_edge_is_unable_never_pass() {
    // zone B reaches 57.5 µm = 115 px from the axis: with the axis 100 px below the top edge
    // part of it is not imaged at all
    let scale = PixelScale::square(0.5);
    let mut insp = inspector(scale);
    let c = [319.5, 100.0];
    let r = insp
        .inspect_located(&frame(scale, c, &[]), &located(c, scale, 0.8))
        .unwrap();
    assert_eq!(r.verdict, Verdict::Unable, "{r:?}");
    assert!(r.reasons[0].contains("frame edge"), "{:?}", r.reasons);
    let share = r.contact_zone_in_view.unwrap();
    assert!(share > 0.5 && share < 0.9, "{share}");
    assert!(r.image_score.is_none());
}

#[test]
fn what_lies_beyond_the_frame_edge_is_not_graded() {
    // The axis 150 px below the top edge: zones A-C are in view, zone D is cut. A dark 9 µm
    // pit cut in half by the top edge (zone D allows defects under 10 µm): the crop repeats
    // the edge row beyond the frame, which would draw the pit out into a long dark band
    // (a zone-D defect far over 10 µm) if that part of the crop were graded.
    let scale = PixelScale::square(0.5);
    let mut insp = inspector(scale);
    let c = [319.5, 150.0];
    let pits = [(0.0, -75.0, 9.0)];
    let r = insp
        .inspect_located(&frame(scale, c, &pits), &located(c, scale, 0.8))
        .unwrap();
    assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
    assert!(
        r.defects.iter().all(|d| d.size_um < 10.0),
        "{:?}",
        r.defects
    );
    let share = r.contact_zone_in_view.unwrap();
    assert!(share > 0.7 && share < 1.0, "{share}");
}

/// The clean end face of [`frame`] with a thin dark line (width `w_um`) from `a` to `b` (µm
/// from the axis).
fn frame_with_line(
    scale: PixelScale,
    center: [f64; 2],
    a: [f64; 2],
    b: [f64; 2],
    w_um: f64,
) -> GrayImage {
    let mut f = frame(scale, center, &[]);
    let (ab, len2) = (
        [b[0] - a[0], b[1] - a[1]],
        (b[0] - a[0]).powi(2) + (b[1] - a[1]).powi(2),
    );
    for (x, y, p) in f.enumerate_pixels_mut() {
        let dx = (x as f64 - center[0]) * scale.um_per_px_x;
        let dy = (y as f64 - center[1]) * scale.um_per_px_y;
        let t = (((dx - a[0]) * ab[0] + (dy - a[1]) * ab[1]) / len2).clamp(0.0, 1.0);
        let d = (dx - a[0] - t * ab[0]).hypot(dy - a[1] - t * ab[1]);
        if d <= w_um / 2.0 {
            p.0[0] = 0;
        }
    }
    f
}

fn inspector_with(manifest: std::path::PathBuf, scale: PixelScale, profile: &str) -> Inspector {
    let mut cfg = StationConfig {
        runtime: cpu_runtime(),
        ..StationConfig::default()
    };
    cfg.model.manifest = manifest;
    cfg.calibration.um_per_px_x = scale.um_per_px_x;
    cfg.calibration.um_per_px_y = scale.um_per_px_y;
    cfg.locate.min_focus = 0.5;
    Inspector::new(&cfg, Profile::builtin(profile).unwrap()).unwrap()
}

#[test]
fn a_line_the_model_calls_a_crack_is_graded_by_its_length() {
    let scale = PixelScale::square(0.5);
    // 2 µm wide, 20 µm long, in multimode zone B (32.5-57.5 µm): as a scratch (size = its
    // width, measured ~4 µm on this blurry map) zone B allows it (<= 5 µm)
    let f = frame_with_line(scale, CENTER, [28.0, 22.0], [44.0, 34.0], 2.0);
    let loc = located(CENTER, scale, 0.8);
    let r = inspector_with(fixture("recon256.manifest.json"), scale, "mm")
        .inspect_located(&f, &loc)
        .unwrap();
    assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
    assert_eq!(r.defects.len(), 1, "{r:?}");
    let d = &r.defects[0];
    assert_eq!(d.kind, FeatureKind::Scratch, "{d:?}");
    assert!(
        !d.crack && d.crack_score.is_none(),
        "no crack output: {d:?}"
    );
    assert!(d.size_um <= 5.0 && d.length_um > 18.0, "{d:?}");

    // the crack256 fixture: same map, plus a crack output of 0.7 everywhere (min_mean 0.5)
    let r = inspector_with(fixture("crack256.manifest.json"), scale, "mm")
        .inspect_located(&f, &loc)
        .unwrap();
    assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
    let c = &r.defects[0];
    assert!(
        c.crack && (c.crack_score.unwrap() - 0.7).abs() < 1e-6,
        "{c:?}"
    );
    assert_eq!(c.kind, FeatureKind::Defect);
    assert_eq!(c.size_um, c.feret_um);
    assert!(
        c.size_um > 18.0,
        "sized by its length (zone B: none > 10 µm): {c:?}"
    );
    assert_eq!(c.zone, Some(Zone::B));
    assert!(
        r.reasons.iter().any(|s| s.contains("zone B")),
        "{:?}",
        r.reasons
    );
    let json = serde_json::to_value(c).unwrap();
    assert_eq!(json["crack"], true);

    // the same model with a stricter crack limit: a scratch again
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("crack256.onnx"), dir.path().join("crack256.onnx")).unwrap();
    let text = std::fs::read_to_string(fixture("crack256.manifest.json"))
        .unwrap()
        .replace("\"min_mean\": 0.5", "\"min_mean\": 0.9");
    let strict = dir.path().join("crack256.manifest.json");
    std::fs::write(&strict, text).unwrap();
    let r = inspector_with(strict, scale, "mm")
        .inspect_located(&f, &loc)
        .unwrap();
    assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
    let s = &r.defects[0];
    assert!(!s.crack && s.kind == FeatureKind::Scratch, "{s:?}");
    assert!((s.crack_score.unwrap() - 0.7).abs() < 1e-6);
}

#[test]
fn a_fiber_located_by_the_rescue_is_graded_and_says_so() {
    // Glass as bright as the ferrule, the edge only a dark line (tests/locate_render): the
    // localizer's regular passes refuse it and its rescue locates it from the line; the
    // inspection grades the frame and names the rescue (`locate_rescue`, journalled in the
    // frame's condition). A frame the regular passes locate says nothing.
    use endface::locate::Rescue;
    use locate_render::{Fiber, Look, Scene};

    let mut s = Scene::simple(Look::BrightFiber, Fiber::Mm50);
    s.um_per_px_x = 0.47;
    s.glass_contrast = 0.0;
    s.inner_rim = -25.0;
    s.rim_width_um = 0.6;
    s.vignetting = 0.45;
    s.noise = 2.2;
    s.center_in_frame = [339.5, 287.2];
    let scale = PixelScale::square(0.47);
    let mut insp = inspector(scale);
    let got = insp.inspect(&s.render()).unwrap();
    assert_ne!(got.verdict, Verdict::Unable, "{:?}", got.reasons);
    assert_eq!(got.locate_rescue, Some(Rescue::LineEdge));
    let c = got.center.unwrap();
    assert!((c[0] - 339.5).hypot(c[1] - 287.2) < 0.3, "{c:?}");
    let json = serde_json::to_value(&got).unwrap();
    assert_eq!(json["locate_rescue"], "line-edge");

    let plain = insp.inspect(&frame(scale, CENTER, &[])).unwrap();
    assert_eq!(plain.locate_rescue, None);
    assert!(plain.center.is_some());
}
