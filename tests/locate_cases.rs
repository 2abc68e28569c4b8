//! Targeted `endface::locate` cases on the tests' procedural renderer: each look and fiber,
//! off-centre fibers, non-square pixels, chips, dust and smudges on the edge, trench rings,
//! JPEG, uneven light; frames with no fiber; the focus measure; configuration errors.
//!
//! `cargo test --test locate_cases`

mod locate_render;

use endface::geometry::PixelScale;
use endface::locate::{locate, LocateConfig, LocateError, Locator};
use image::GrayImage;
use locate_render::{Blob, Chip, Fiber, Look, Scene, CLADDING_R_UM};

fn scale_of(s: &Scene) -> PixelScale {
    PixelScale {
        um_per_px_x: s.um_per_px_x,
        um_per_px_y: s.um_per_px_y(),
    }
}

/// Locate with and without calibration and check center and radius.
fn check(scene: &Scene, max_center_px: f64, max_radius_rel: f64) {
    let img = scene.render();
    for cfg in [
        LocateConfig::with_scale(scale_of(scene)),
        LocateConfig {
            aspect_y_over_x: scene.aspect,
            ..LocateConfig::default()
        },
    ] {
        let l = locate(&img, &cfg).unwrap_or_else(|e| panic!("{e} ({scene:?})"));
        let e = (l.center_in_frame[0] - scene.center_in_frame[0])
            .hypot(l.center_in_frame[1] - scene.center_in_frame[1]);
        let re = (l.cladding_radius_px - scene.radius_px()).abs() / scene.radius_px();
        assert!(
            e <= max_center_px && re <= max_radius_rel,
            "center error {e:.3} px, radius error {:.3} % (found {:?}, truth {:?} r {:.2}; \
             calibrated: {})",
            re * 100.0,
            l,
            scene.center_in_frame,
            scene.radius_px(),
            cfg.scale.is_some()
        );
        assert!((l.radius_y_px - l.cladding_radius_px * scene.aspect).abs() < 1e-9);
        assert!((0.0..=1.0).contains(&l.confidence) && l.confidence >= cfg.min_confidence);
    }
}

#[test]
fn both_looks_all_fibers_centred() {
    for look in [Look::DarkFiber, Look::BrightFiber] {
        for fiber in [Fiber::Sm, Fiber::Mm50, Fiber::Mm62] {
            check(&Scene::simple(look, fiber), 0.15, 0.004);
        }
    }
}

#[test]
fn off_centre_by_15_percent_in_each_direction() {
    for (dx, dy) in [(0.15, 0.15), (-0.15, 0.15), (0.15, -0.15), (-0.15, -0.15)] {
        let mut s = Scene::simple(Look::DarkFiber, Fiber::Sm);
        s.um_per_px_x = 0.6; // keeps the cladding inside the frame at ±15 %
        s.center_in_frame = [319.5 + dx * 640.0, 239.5 + dy * 480.0];
        check(&s, 0.2, 0.005);
    }
}

#[test]
fn pal_pixels_are_an_ellipse_9_percent_taller() {
    let mut s = Scene::simple(Look::BrightFiber, Fiber::Mm50);
    s.width = 720;
    s.height = 576;
    s.aspect = 1.09;
    s.center_in_frame = [371.3, 270.8];
    check(&s, 0.2, 0.005);
    // A square-pixel assumption on that frame is refused, not answered with a wrong circle.
    let img = s.render();
    let res = locate(&img, &LocateConfig::default());
    assert!(
        matches!(res, Err(LocateError::LowConfidence { .. })),
        "{res:?}"
    );
}

#[test]
fn chips_bite_into_the_edge() {
    let mut s = Scene::simple(Look::DarkFiber, Fiber::Sm);
    s.chips = vec![
        Chip {
            angle: 0.3,
            half_width_rad: 12f64.to_radians(),
            depth_um: 8.0,
        },
        Chip {
            angle: 2.5,
            half_width_rad: 6f64.to_radians(),
            depth_um: 4.0,
        },
        Chip {
            angle: 4.4,
            half_width_rad: 9f64.to_radians(),
            depth_um: 6.0,
        },
    ];
    check(&s, 0.3, 0.005);
}

#[test]
fn dust_and_a_smudge_over_a_quarter_of_the_edge() {
    for look in [Look::DarkFiber, Look::BrightFiber] {
        let mut s = Scene::simple(look, Fiber::Mm62);
        let on_edge = |deg: f64, r_um: f64, level: f64| Blob {
            x_um: CLADDING_R_UM * deg.to_radians().cos(),
            y_um: CLADDING_R_UM * deg.to_radians().sin(),
            r_um,
            level,
            opacity: 0.9,
        };
        s.blobs = vec![
            on_edge(10.0, 4.0, 20.0),
            on_edge(100.0, 3.0, 230.0),
            on_edge(200.0, 5.0, 20.0),
            // ~60 degrees of the edge under one smudge.
            on_edge(
                300.0,
                30.0,
                if look == Look::DarkFiber { 120.0 } else { 60.0 },
            ),
        ];
        check(&s, 0.3, 0.006);
    }
}

#[test]
fn a_round_smudge_on_the_edge_is_not_taken_for_the_fiber() {
    // Without calibration any circle of 8-45 % of the frame could be the cladding. In this
    // frame a fully outlined round smudge (20 µm radius) sits on the edge of a bright fiber
    // with chips and rims: it must lose to the larger, partly hidden fiber edge (it used to
    // win with confidence 0.99).
    let s = Scene::random(20164);
    assert!(s.blobs.iter().any(|b| b.r_um > 20.0));
    check(&s, 0.3, 0.006);
}

#[test]
fn trench_ring_and_big_core_are_not_the_cladding() {
    for look in [Look::DarkFiber, Look::BrightFiber] {
        let mut s = Scene::simple(look, Fiber::Mm50);
        s.trench = true;
        s.um_per_px_x = 0.45;
        check(&s, 0.15, 0.004);
    }
}

#[test]
fn jpeg_noise_and_uneven_light() {
    let mut s = Scene::simple(Look::BrightFiber, Fiber::Sm);
    s.noise = 6.0;
    s.gradient = 0.35;
    s.vignetting = 0.35;
    s.blur_px = 1.5;
    s.jpeg_quality = Some(40);
    s.center_in_frame = [300.2, 250.9];
    check(&s, 0.3, 0.006);
}

/// A faint cladding edge (15 gray levels) under read noise of 6 levels: each ray's step
/// measurement averages its plateaus, so the edge is well seen (session 10: a visibility
/// factor against the per-pixel noise refused such frames as "too uncertain").
#[test]
fn faint_edge_under_read_noise_is_located_not_refused() {
    for look in [Look::BrightFiber, Look::DarkFiber] {
        let mut s = Scene::simple(look, Fiber::Sm);
        s.glass_contrast = 0.25;
        s.noise = 6.0;
        s.blur_px = 1.0;
        s.center_in_frame = [301.3, 228.6];
        check(&s, 0.6, 0.01);
    }
}

#[test]
fn double_edge_from_an_epoxy_ring_gives_one_consistent_circle() {
    let mut s = Scene::simple(Look::DarkFiber, Fiber::Sm);
    s.epoxy_um = 2.5;
    s.epoxy_mix = 0.55;
    s.outer_rim = 25.0;
    let img = s.render();
    let mut loc = Locator::new(LocateConfig::with_scale(scale_of(&s))).unwrap();
    let l = loc.locate(&img).unwrap();
    let e = (l.center_in_frame[0] - s.center_in_frame[0])
        .hypot(l.center_in_frame[1] - s.center_in_frame[1]);
    assert!(e < 0.2, "center error {e:.3} px");
    // It takes the glass edge, not the (steeper) outer edge of the epoxy ring, on (almost)
    // every ray.
    let d = loc.last_diagnostics().unwrap();
    assert!(d.support > 0.9 && d.rms_px < 0.5, "{d:?}");
    let dr_um = (l.cladding_radius_px - s.radius_px()) * s.um_per_px_x;
    assert!(dr_um.abs() <= 0.4, "radius off by {dr_um:.2} µm");
}

#[test]
fn a_wide_bright_epoxy_halo_around_a_dark_fiber_is_not_the_edge() {
    // Dark glass, then a 5 µm epoxy ring brighter than the ferrule beyond it (a halo seen on
    // real probes), then the ferrule. The outermost edge is the halo's falling outer flank;
    // the polarity comes from the glass against the ferrule beyond zone C, so the glass edge
    // is found, confidently, and not the flank 5 µm further out (which the polarity from
    // plateaus on the ring itself picked before: radius +4.99 µm).
    for (fiber, upx) in [(Fiber::Sm, 0.52), (Fiber::Mm50, 0.45)] {
        let mut s = Scene::simple(Look::DarkFiber, fiber);
        s.um_per_px_x = upx;
        s.glass_contrast = 0.25;
        s.epoxy_um = 5.0;
        s.epoxy_mix = 2.2;
        s.blur_px = 1.4;
        s.noise = 2.0;
        let img = s.render();
        let mut loc = Locator::new(LocateConfig::with_scale(scale_of(&s))).unwrap();
        let l = loc
            .locate(&img)
            .unwrap_or_else(|e| panic!("{e} ({fiber:?})"));
        let e = (l.center_in_frame[0] - s.center_in_frame[0])
            .hypot(l.center_in_frame[1] - s.center_in_frame[1]);
        let dr_um = (l.cladding_radius_px - s.radius_px()) * s.um_per_px_x;
        assert!(e < 0.3, "center error {e:.3} px ({fiber:?})");
        assert!(
            dr_um.abs() <= 0.6,
            "radius off by {dr_um:.2} µm ({fiber:?})"
        );
        assert!(
            l.confidence > 0.9,
            "confidence {:.2} ({fiber:?})",
            l.confidence
        );
    }
}

fn flat(w: u32, h: u32, v: u8) -> GrayImage {
    GrayImage::from_pixel(w, h, image::Luma([v]))
}

#[test]
fn no_fiber_is_an_error_not_a_guess() {
    let cfg = LocateConfig::default();
    // Flat gray.
    assert!(locate(&flat(640, 480, 128), &cfg).is_err());
    // Noise.
    let mut rng = 12345u64;
    let noise = GrayImage::from_fn(640, 480, |_, _| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        image::Luma([100 + (rng % 40) as u8])
    });
    assert!(locate(&noise, &cfg).is_err());
    // A straight edge (half dark, half bright) and a frame-grabber border.
    let half = GrayImage::from_fn(640, 480, |x, _| {
        image::Luma([if x < 8 {
            10
        } else if x < 320 {
            70
        } else {
            190
        }])
    });
    let res = locate(&half, &cfg);
    assert!(res.is_err(), "{res:?}");
    // A calibration that does not match the fiber's size.
    let s = Scene::simple(Look::DarkFiber, Fiber::Sm); // 0.5 µm/px
    let wrong = LocateConfig::with_scale(PixelScale::square(0.3));
    let res = locate(&s.render(), &wrong);
    assert!(res.is_err(), "{res:?}");
}

#[test]
fn focus_falls_monotonically_with_blur() {
    for look in [Look::DarkFiber, Look::BrightFiber] {
        let mut last = f64::INFINITY;
        for blur in [0.4, 0.8, 1.2, 1.8, 2.6, 3.6] {
            let mut s = Scene::simple(look, Fiber::Sm);
            s.edge_softness_um = 0.1;
            s.blur_px = blur;
            s.noise = 1.0;
            let l = locate(&s.render(), &LocateConfig::with_scale(scale_of(&s))).unwrap();
            assert!(
                l.focus < last,
                "{look:?}: focus {:.3} at blur {blur} px is not below {last:.3}",
                l.focus
            );
            assert!(l.focus > 0.0 && l.focus <= 1.0);
            last = l.focus;
        }
    }
}

/// Focus of `s` located with its calibration.
fn focus_of(s: &Scene) -> f64 {
    locate(&s.render(), &LocateConfig::with_scale(scale_of(s)))
        .unwrap_or_else(|e| panic!("{e} ({s:?})"))
        .focus
}

#[test]
fn focus_reads_the_blur_in_micrometres_at_any_magnification() {
    // The same physical blur at 0.5 and 0.35 µm/px reads alike, and close to the measure's
    // model 1.5 / √(σ² + 1.5²) (σ: the camera blur with the edge's own softness and the
    // measure's 0.25 µm smoothing added in quadrature).
    for look in [Look::DarkFiber, Look::BrightFiber] {
        for sigma_um in [0.3, 1.0, 2.0, 3.0] {
            let mut f = [0.0; 2];
            for (i, um_per_px) in [0.5, 0.35].into_iter().enumerate() {
                let mut s = Scene::simple(look, Fiber::Sm);
                s.um_per_px_x = um_per_px;
                s.edge_softness_um = 0.1;
                s.blur_px = sigma_um / um_per_px;
                s.noise = 1.0;
                f[i] = focus_of(&s);
            }
            let total = (sigma_um * sigma_um + 0.1f64.powi(2) + 0.25f64.powi(2)).sqrt();
            let model = 1.5 / (total * total + 2.25).sqrt();
            assert!(
                (f[0] - f[1]).abs() < 0.05 && (f[0] - model).abs() < 0.08,
                "{look:?} σ {sigma_um} µm: focus {:.3} at 0.5 µm/px, {:.3} at 0.35, model {model:.3}",
                f[0],
                f[1]
            );
        }
    }
}

#[test]
fn focus_reads_alike_with_and_without_rims_and_an_epoxy_ring() {
    // A double edge (bright or dark rim lines at the glass and beyond an epoxy ring) is as
    // sharp as the plain edge under the same blur: the measure must not read it as blurrier.
    for look in [Look::DarkFiber, Look::BrightFiber] {
        for blur_px in [0.7, 1.5] {
            let mut plain = Scene::simple(look, Fiber::Sm);
            plain.blur_px = blur_px;
            plain.noise = 1.0;
            let base = focus_of(&plain);
            for (inner, outer, epoxy) in [(30.0, 0.0, 0.0), (-25.0, 30.0, 2.5), (0.0, 40.0, 2.0)] {
                let mut s = plain.clone();
                s.inner_rim = inner;
                s.outer_rim = outer;
                s.epoxy_um = epoxy;
                let f = focus_of(&s);
                assert!(
                    (f - base).abs() < 0.1,
                    "{look:?} blur {blur_px} px, rims {inner}/{outer}, epoxy {epoxy}: focus {f:.3} vs {base:.3} plain"
                );
            }
        }
    }
}

#[test]
fn default_min_focus_keeps_sharp_frames_and_refuses_defocused_ones() {
    let min_focus = endface::config::LocateSection::default().min_focus;
    for look in [Look::DarkFiber, Look::BrightFiber] {
        for (sigma_um, sharp) in [(0.3, true), (1.0, true), (4.0, false), (6.0, false)] {
            let mut s = Scene::simple(look, Fiber::Sm);
            s.blur_px = sigma_um / s.um_per_px_x;
            // A locator refusal is UNABLE too; a sharp frame must be found.
            let f = locate(&s.render(), &LocateConfig::with_scale(scale_of(&s)))
                .map(|l| l.focus)
                .unwrap_or(0.0);
            assert_eq!(
                f >= min_focus,
                sharp,
                "{look:?} σ {sigma_um} µm: focus {f:.3}, min_focus {min_focus}"
            );
        }
    }
}

#[test]
fn focus_does_not_depend_on_brightness() {
    let s = Scene::simple(Look::DarkFiber, Fiber::Sm);
    let img = s.render();
    let dim = GrayImage::from_fn(img.width(), img.height(), |x, y| {
        image::Luma([(img.get_pixel(x, y)[0] as f64 * 0.6).round() as u8])
    });
    let cfg = LocateConfig::with_scale(scale_of(&s));
    let a = locate(&img, &cfg).unwrap().focus;
    let b = locate(&dim, &cfg).unwrap().focus;
    assert!((a - b).abs() < 0.1 * a, "{a} vs {b}");
}

#[test]
fn locator_reuse_across_frame_sizes_matches_fresh_runs() {
    let mut scenes = [
        Scene::simple(Look::DarkFiber, Fiber::Sm),
        Scene::simple(Look::BrightFiber, Fiber::Mm50),
        Scene::simple(Look::DarkFiber, Fiber::Mm62),
    ];
    scenes[1].width = 800;
    scenes[1].height = 600;
    scenes[1].center_in_frame = [410.0, 280.0];
    let imgs: Vec<_> = scenes.iter().map(Scene::render).collect();
    let cfg = LocateConfig::default();
    let mut loc = Locator::new(cfg.clone()).unwrap();
    for img in imgs.iter().chain(imgs.iter()) {
        assert_eq!(loc.locate(img).unwrap(), locate(img, &cfg).unwrap());
    }
}

#[test]
fn bad_settings_and_tiny_frames_are_named() {
    let bad = LocateConfig {
        aspect_y_over_x: 0.0,
        ..LocateConfig::default()
    };
    match Locator::new(bad) {
        Err(e @ LocateError::InvalidConfig { key, .. }) => {
            assert_eq!(key, "aspect_y_over_x");
            assert!(e.to_string().contains("aspect_y_over_x"));
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
    let bad = LocateConfig {
        min_confidence: 1.5,
        ..LocateConfig::default()
    };
    assert!(matches!(
        Locator::new(bad),
        Err(LocateError::InvalidConfig {
            key: "min_confidence",
            ..
        })
    ));
    let bad = LocateConfig::with_scale(PixelScale::square(-1.0));
    assert!(matches!(
        Locator::new(bad),
        Err(LocateError::InvalidConfig { key: "scale", .. })
    ));
    let res = locate(&flat(20, 480, 0), &LocateConfig::default());
    assert!(
        matches!(res, Err(LocateError::ImageTooSmall { .. })),
        "{res:?}"
    );
}

#[test]
fn config_reads_from_toml_with_defaults() {
    let cfg: LocateConfig =
        toml::from_str("min_confidence = 0.6\n[scale]\num_per_px_x = 0.5\num_per_px_y = 0.4587\n")
            .unwrap();
    assert_eq!(cfg.min_confidence, 0.6);
    assert!((cfg.effective_aspect() - 1.09).abs() < 1e-3);
    assert_eq!(cfg.rays, LocateConfig::default().rays);
    assert!(toml::from_str::<LocateConfig>("min_confidense = 0.6").is_err());
}

#[test]
fn an_edge_that_is_only_a_dark_line_is_located_on_the_line() {
    // Index-matched look: glass and ferrule (nearly) equally bright, the edge only a thin dark
    // line (the rounded bevel) 25 gray levels deep, 0.6 µm inside the glass boundary, under
    // vignetting. The regular passes find no glass step and refuse; the rescue takes the
    // line's circle (module doc, step 6).
    use endface::locate::Rescue;
    for (look, fiber, glass_contrast) in [
        (Look::BrightFiber, Fiber::Mm50, 0.0),
        (Look::BrightFiber, Fiber::Sm, 0.02),
        (Look::DarkFiber, Fiber::Sm, 0.02),
    ] {
        let mut s = Scene::simple(look, fiber);
        s.um_per_px_x = 0.47;
        s.glass_contrast = glass_contrast;
        s.inner_rim = -25.0;
        s.rim_width_um = 0.6;
        s.vignetting = 0.45;
        s.noise = 2.2;
        s.center_in_frame = [339.5, 287.2];
        let img = s.render();
        for cfg in [
            LocateConfig::with_scale(scale_of(&s)),
            LocateConfig::default(),
        ] {
            let mut loc = Locator::new(cfg).unwrap();
            let l = loc
                .locate(&img)
                .unwrap_or_else(|e| panic!("{e} ({look:?} {fiber:?})"));
            let d = *loc.last_diagnostics().unwrap();
            // Calibrated, the regular passes refuse all three; uncalibrated, the coarse stage
            // sometimes reads a polarity under which they find the edge themselves.
            if loc.config().scale.is_some() {
                assert_eq!(d.rescued, Some(Rescue::LineEdge), "{look:?} {fiber:?}");
            }
            let e = (l.center_in_frame[0] - s.center_in_frame[0])
                .hypot(l.center_in_frame[1] - s.center_in_frame[1]);
            let dr_um = (l.cladding_radius_px - s.radius_px()) * s.um_per_px_x;
            assert!(e < 0.3, "center error {e:.3} px ({look:?} {fiber:?})");
            // The line's centre lies its own width inside the boundary.
            assert!(
                (-1.0..=0.3).contains(&dr_um),
                "radius off by {dr_um:.2} µm ({look:?} {fiber:?})"
            );
            assert!(l.confidence >= 0.9 && l.focus > 0.8, "{l:?}");
        }
    }
}
