//! The synthetic camera's truth is exact: determinism, masks vs. the pixels a defect really
//! changes, bbox/zone/inner radius consistency, cladding centre and radius vs. the rendered
//! edge (square and non-square pixels), verdict = grade of the truth, and both PASS and FAIL
//! frames for every defect kind.

use endface::synth::{
    self, render, render_content, sample_scene, verdict, Content, DefectKind, FiberProfile,
    SynthCamera, SynthConfig, Truth, Verdict,
};
use image::GrayImage;

fn small_config() -> SynthConfig {
    SynthConfig {
        width: 400,
        height: 300,
        ..SynthConfig::default()
    }
}

fn check_masks(truth: &Truth) {
    for d in truth.defects.iter().chain(&truth.outside_defects) {
        let [x0, y0, x1, y1] = d.bbox;
        assert!(x1 < truth.width && y1 < truth.height, "bbox inside frame");
        assert_eq!(d.mask_in_bbox.dimensions(), (x1 - x0 + 1, y1 - y0 + 1));
        // Tight: the mask touches every side of its bbox.
        let m = &d.mask_in_bbox;
        let (w, h) = m.dimensions();
        let on = |x: u32, y: u32| m.get_pixel(x, y).0[0] == 255;
        assert!((0..h).any(|y| on(0, y)) && (0..h).any(|y| on(w - 1, y)));
        assert!((0..w).any(|x| on(x, 0)) && (0..w).any(|x| on(x, h - 1)));
        assert!(m.pixels().all(|p| p.0[0] == 0 || p.0[0] == 255));
        // Inner radius = closest mask pixel; zone follows from it.
        let mut inner = f64::INFINITY;
        for (x, y, p) in m.enumerate_pixels() {
            if p.0[0] == 255 {
                inner = inner.min(truth.scale.radius_um(
                    (x + x0) as f64,
                    (y + y0) as f64,
                    truth.center_in_frame,
                ));
            }
        }
        assert!((inner - d.inner_radius_um).abs() < 1e-9);
        assert_eq!(d.zone, verdict::zone_of(truth.fiber, inner));
        assert!(d.size_um > 0.0);
    }
    assert!(truth.defects.iter().all(|d| d.zone.is_some()));
    assert!(truth.outside_defects.iter().all(|d| d.zone.is_none()));
    // The union mask is exactly the graded defects' pixels.
    let union = truth.mask();
    let n_union = union.pixels().filter(|p| p.0[0] == 255).count();
    assert!(n_union <= truth.defects.iter().map(|d| d.area_px()).sum::<usize>());
    if !truth.defects.is_empty() {
        assert!(n_union > 0);
    }
}

#[test]
fn camera_is_deterministic_per_seed() {
    let mut a = SynthCamera::new(small_config(), 7).unwrap();
    let mut b = SynthCamera::new(small_config(), 7).unwrap();
    let mut c = SynthCamera::new(small_config(), 8).unwrap();
    for _ in 0..3 {
        let (ia, ta) = a.next_frame();
        let (ib, tb) = b.next_frame();
        let (ic, _) = c.next_frame();
        assert_eq!(ia, ib);
        assert_eq!(ta.center_in_frame, tb.center_in_frame);
        assert_eq!(ta.defects.len(), tb.defects.len());
        for (da, db) in ta.defects.iter().zip(&tb.defects) {
            assert_eq!(da.bbox, db.bbox);
            assert_eq!(da.mask_in_bbox, db.mask_in_bbox);
        }
        assert_ne!(ia, ic);
    }
    assert_eq!(a.frame_index(), 3);
}

#[test]
fn invalid_config_is_refused_with_the_key() {
    let bad = SynthConfig {
        width: 0,
        ..SynthConfig::default()
    };
    let e = SynthCamera::new(bad, 1).unwrap_err().to_string();
    assert!(e.contains("width"), "{e}");
    let bad = SynthConfig {
        jpeg_prob: 1.5,
        ..SynthConfig::default()
    };
    assert!(SynthCamera::new(bad, 1)
        .unwrap_err()
        .to_string()
        .contains("jpeg_prob"));
}

#[test]
fn masks_are_tight_and_consistent_for_every_kind() {
    let cfg = small_config();
    for (i, kind) in DefectKind::ALL.into_iter().enumerate() {
        for s in 0..3u64 {
            let (_, t) = render_content(&cfg, 100 + 10 * i as u64 + s, Content::Defect(kind));
            assert!(t.has_kind(kind), "{kind} seed {s}: requested kind visible");
            check_masks(&t);
        }
    }
    let (_, t) = render_content(&cfg, 5, Content::Good);
    assert!(t.defects.is_empty());
    check_masks(&t);
}

/// Render a scene with and without its defects (same noise, no JPEG, no shot noise so that
/// noise cancels): the mask must hold every pixel changed by more than its threshold, and
/// each mask pixel must really change.
#[test]
fn mask_is_the_set_of_visibly_changed_pixels() {
    let cfg = small_config();
    let mut checked = 0;
    for (i, kind) in DefectKind::ALL.into_iter().enumerate() {
        for s in 0..2u64 {
            let seed = synth::frame_seed(900 + i as u64, s);
            let mut spec = sample_scene(&cfg, seed, Content::Defect(kind));
            spec.camera.jpeg_quality = None;
            spec.camera.shot_noise = 0.0;
            let (with, truth) = render(&spec);
            if truth.defects.is_empty() {
                continue;
            }
            let mut bare = spec.clone();
            bare.defects.clear();
            let (without, _) = render(&bare);
            let mask = truth.mask();
            let mut outside_any = GrayImage::new(cfg.width, cfg.height);
            for d in &truth.outside_defects {
                for (x, y, p) in d.mask_in_bbox.enumerate_pixels() {
                    if p.0[0] == 255 {
                        outside_any.put_pixel(x + d.bbox[0], y + d.bbox[1], image::Luma([255]));
                    }
                }
            }
            let max_peak = truth
                .defects
                .iter()
                .chain(&truth.outside_defects)
                .map(|d| d.peak_change.abs())
                .fold(0.0f32, f32::max);
            for (x, y, m) in mask.enumerate_pixels() {
                let a = with.get_pixel(x, y).0[0] as i32;
                let b = without.get_pixel(x, y).0[0] as i32;
                let diff = (a - b).abs();
                if m.0[0] == 255 {
                    assert!(
                        diff >= 2,
                        "{kind}: mask pixel ({x},{y}) changes only {diff}"
                    );
                } else if outside_any.get_pixel(x, y).0[0] == 0 {
                    // Below the visibility threshold: max(2.5, 20 % of the largest peak),
                    // plus one level of rounding.
                    let limit = (2.5f32).max(0.2 * max_peak) + 1.0;
                    assert!(
                        diff as f32 <= limit,
                        "{kind}: unmasked pixel ({x},{y}) changes by {diff} > {limit}"
                    );
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 8);
}

/// Location (µm from the axis) of the strongest intensity step along a ray, searched within
/// `[lo, hi]` µm.
fn edge_along_ray(img: &GrayImage, t: &Truth, angle: f64, lo: f64, hi: f64) -> Option<f64> {
    let (s, c) = angle.sin_cos();
    let sample = |r_um: f64| -> Option<f64> {
        let x = t.center_in_frame[0] + r_um * c / t.scale.um_per_px_x;
        let y = t.center_in_frame[1] + r_um * s / t.scale.um_per_px_y;
        if x < 1.0 || y < 1.0 || x > t.width as f64 - 2.0 || y > t.height as f64 - 2.0 {
            return None;
        }
        // bilinear
        let (x0, y0) = (x.floor() as u32, y.floor() as u32);
        let (fx, fy) = (x - x0 as f64, y - y0 as f64);
        let p = |xx: u32, yy: u32| img.get_pixel(xx, yy).0[0] as f64;
        Some(
            p(x0, y0) * (1.0 - fx) * (1.0 - fy)
                + p(x0 + 1, y0) * fx * (1.0 - fy)
                + p(x0, y0 + 1) * (1.0 - fx) * fy
                + p(x0 + 1, y0 + 1) * fx * fy,
        )
    };
    let step = 0.25;
    let mut best = (0.0, None);
    let mut r = lo;
    while r <= hi {
        // smoothed derivative over ±2 µm
        let a = (0..4)
            .map(|k| sample(r + 0.5 * k as f64))
            .sum::<Option<f64>>()?;
        let b = (1..5)
            .map(|k| sample(r - 0.5 * k as f64))
            .sum::<Option<f64>>()?;
        let g = (a - b).abs();
        if g > best.0 {
            best = (g, Some(r));
        }
        r += step;
    }
    best.1
}

#[test]
fn truth_center_and_radius_match_the_rendered_edge() {
    for (seed, aspect) in [(1u64, 1.0), (2, 1.09), (3, 1.0), (4, 1.09)] {
        let cfg = SynthConfig {
            width: 480,
            height: 400,
            aspect_y_over_x: Some(aspect),
            jpeg_prob: 0.0,
            ..SynthConfig::default()
        };
        let mut spec = sample_scene(&cfg, synth::frame_seed(seed, 77), Content::Good);
        // A plain edge (no rims, no epoxy step) so the strongest step is the cladding edge.
        spec.look.inner_rim = 0.0;
        spec.look.outer_rim = 0.0;
        spec.look.epoxy_width_um = 0.0;
        spec.look.cladding_level = 90.0;
        spec.look.cladding_edge_shade = 0.0;
        spec.look.ferrule_level = 200.0;
        spec.ferrule.strokes.clear();
        spec.defects.clear();
        spec.center_in_frame = [240.0 + 0.37 * seed as f64, 200.0 - 0.61 * seed as f64];
        let (img, t) = render(&spec);
        assert!((t.cladding_radius_px * t.scale.um_per_px_x - 62.5).abs() < 1e-9);
        assert!(
            (t.cladding_radius_px_y() / t.cladding_radius_px - aspect).abs() < 1e-9,
            "y radius = x radius × aspect"
        );
        let mut found = Vec::new();
        for k in 0..48 {
            let a = std::f64::consts::TAU * k as f64 / 48.0;
            if let Some(r) = edge_along_ray(&img, &t, a, 50.0, 75.0) {
                found.push(r);
            }
        }
        assert!(found.len() > 30, "enough rays inside the frame");
        found.sort_by(f64::total_cmp);
        let median = found[found.len() / 2];
        assert!(
            (median - 62.5).abs() < 0.6,
            "seed {seed} aspect {aspect}: edge found at {median:.2} µm, truth 62.5"
        );
        // Inside is darker than outside everywhere around.
        let lvl = |r_um: f64, a: f64| -> f64 {
            let x = t.center_in_frame[0] + r_um * a.cos() / t.scale.um_per_px_x;
            let y = t.center_in_frame[1] + r_um * a.sin() / t.scale.um_per_px_y;
            img.get_pixel(x.round() as u32, y.round() as u32).0[0] as f64
        };
        for k in 0..8 {
            let a = std::f64::consts::TAU * k as f64 / 8.0;
            assert!(
                lvl(40.0, a) + 30.0 < lvl(80.0, a),
                "dark fiber on bright ferrule"
            );
        }
    }
}

#[test]
fn verdict_is_the_grade_of_the_truth_features() {
    let mut cam = SynthCamera::new(small_config(), 3).unwrap();
    for _ in 0..10 {
        let (_, t) = cam.next_frame();
        let feats: Vec<_> = t.defects.iter().map(|d| d.feature()).collect();
        let (v, _) = verdict::grade_features(t.fiber, &feats);
        assert_eq!(v, t.verdict);
        if t.defects.is_empty() {
            assert_eq!(t.verdict, Verdict::Pass);
        }
    }
}

#[test]
fn every_kind_yields_pass_and_fail_frames() {
    let cfg = SynthConfig {
        width: 320,
        height: 240,
        jpeg_prob: 0.0,
        ..SynthConfig::default()
    };
    let per_kind = 16u64;
    let results: Vec<(DefectKind, usize, usize)> = std::thread::scope(|s| {
        let handles: Vec<_> = DefectKind::ALL
            .into_iter()
            .map(|kind| {
                let cfg = &cfg;
                s.spawn(move || {
                    let (mut pass, mut fail) = (0, 0);
                    for i in 0..per_kind {
                        let (_, t) = render_content(cfg, 5000 + i, Content::Defect(kind));
                        match t.verdict {
                            Verdict::Pass => pass += 1,
                            _ => fail += 1,
                        }
                    }
                    (kind, pass, fail)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (kind, pass, fail) in results {
        eprintln!("{kind}: {pass} pass, {fail} fail");
        assert!(pass >= 2 && fail >= 2, "{kind}: {pass} pass / {fail} fail");
    }
}

#[test]
fn fixed_fiber_scale_and_aspect_are_respected() {
    let cfg = SynthConfig {
        width: 300,
        height: 200,
        fiber: Some(FiberProfile::Mm),
        um_per_px: Some(0.55),
        aspect_y_over_x: Some(1.09),
        ..SynthConfig::default()
    };
    let mut cam = SynthCamera::new(cfg, 11).unwrap();
    for _ in 0..3 {
        let (img, t) = cam.next_frame();
        assert_eq!(img.dimensions(), (300, 200));
        assert_eq!(t.fiber, FiberProfile::Mm);
        assert!((t.scale.um_per_px_x - 0.55).abs() < 1e-12);
        assert!((t.scale.aspect_y_over_x() - 1.09).abs() < 1e-12);
        assert!(t.style.core_diameter_um == 50.0 || t.style.core_diameter_um == 62.5);
        // Off-centre by at most 15 % of the frame.
        assert!((t.center_in_frame[0] - 149.5).abs() <= 0.15 * 300.0 + 1e-9);
        assert!((t.center_in_frame[1] - 99.5).abs() <= 0.15 * 200.0 + 1e-9);
    }
}

/// Real 50 µm multimode fibers often show their graded-index / trench region as a broad dark
/// (or bright) annulus around the core, not only a thin ring (the shipped model 1.1.0
/// false-failed such a real photograph): the camera renders both, the band exactly between
/// the core edge and its outer radius, and tags the frame.
#[test]
fn multimode_trench_is_a_thin_ring_or_a_broad_band_around_the_core() {
    let cfg = SynthConfig {
        width: 640,
        height: 480,
        fiber: Some(FiberProfile::Mm),
        um_per_px: Some(0.5),
        aspect_y_over_x: Some(1.0),
        ..SynthConfig::default()
    };
    let (mut bands, mut rings) = (0, 0);
    let mut checked = false;
    for seed in 0..200u64 {
        let spec = sample_scene(&cfg, seed, Content::Good);
        if spec.look.trench_ring == 0.0 {
            continue;
        }
        let band = spec.look.trench_band_outer > 0.0;
        if band {
            bands += 1;
        } else {
            rings += 1;
        }
        let (img, truth) = render(&spec);
        assert!(truth.style.trench_ring);
        assert_eq!(truth.style.trench_band, band);
        if !band || checked || spec.look.trench_ring.abs() < 6.0 {
            continue;
        }
        // The same scene without the trench: the difference is the band, and nothing else.
        let mut plain = spec.clone();
        plain.look.trench_ring = 0.0;
        let (img0, _) = render(&plain);
        let r_core = spec.core_diameter_um / 2.0;
        let r_out = spec.look.trench_band_outer as f64 * 62.5;
        let (mut inside, mut n_in, mut beyond, mut n_out) = (0.0, 0, 0.0f64, 0);
        for (x, y, p) in img.enumerate_pixels() {
            let r = truth
                .scale
                .radius_um(x as f64, y as f64, truth.center_in_frame);
            let d = p.0[0] as f64 - img0.get_pixel(x, y).0[0] as f64;
            if r > r_core + 3.0 && r < r_out - 3.0 {
                inside += d;
                n_in += 1;
            } else if r > r_out + 4.0 && r < 58.0 {
                beyond = beyond.max(d.abs());
                n_out += 1;
            }
        }
        let mean_in = inside / n_in as f64;
        let gain_lo = 0.5; // illumination gain and vignetting scale the level change
        assert!(
            mean_in * spec.look.trench_ring as f64 > 0.0
                && mean_in.abs() > gain_lo * spec.look.trench_ring.abs() as f64,
            "band level change {mean_in:.2} for amplitude {}",
            spec.look.trench_ring
        );
        assert!(n_out > 0 && beyond <= 1.0, "beyond the band: {beyond}");
        checked = true;
    }
    assert!(
        bands >= 5 && rings >= 5 && checked,
        "{bands} bands, {rings} rings"
    );
}
