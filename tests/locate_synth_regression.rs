//! Regression: `endface::locate` on the project's synthetic camera (`endface::synth`) as it
//! renders since "stronger dark inner rims, sharper edges": epoxy rings (double edges), bright
//! or dark bore rims, dark lines just inside the glass, relief (rims lit from one side), both
//! looks, SM and MM fibers, every defect kind, square and non-square pixels, noise, blur,
//! JPEG. The localizer used to latch onto the outer edge of the epoxy ring / bore rim on some
//! or all rays (radius 2–4 px too large, centre pulled by up to 3.5 px under relief); it must
//! take the glass boundary.
//!
//! Fast check (CI, a few seconds): `cargo test --test locate_synth_regression`.
//! Full figures over many frames and seeds (prints every miss with its look):
//! `N=300 SEED=7 cargo test --release --test locate_synth_regression explore -- --ignored
//! --nocapture`. Profile of one frame: `FRAME=12 SEED=7 cargo test --release --test
//! locate_synth_regression dump -- --ignored --nocapture`.

use endface::locate::{LocateConfig, Locator};
use endface::synth::{render, sample_scene, Content, DefectKind, SceneSpec, SynthConfig};
use image::GrayImage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A located frame counts as right when its centre is within this (px) of the truth...
const MAX_CENTER_ERR_PX: f64 = 1.0;
/// ...and its cladding radius within this (px).
const MAX_RADIUS_ERR_PX: f64 = 1.5;

/// One located frame: centre error (px), signed radius error (px), or the refusal.
struct Outcome {
    center_err_px: f64,
    radius_err_px: f64,
    error: Option<String>,
}

fn describe(s: &SceneSpec) -> String {
    let l = &s.look;
    format!(
        "{:?} {:?} mix {:.2} {}x{} {:.3} µm/px aspect {:.3}; levels glass {:.0} ferrule {:.0} \
         shade {:.0}; epoxy {:.2} µm mix {:.2}; rims inner {:.0} outer {:.0} width {:.2} µm \
         relief {:.2}; edge soft {:.2} µm; blur {:.2} px noise {:.1} jpeg {:?}; {} defects",
        l.look,
        s.fiber,
        l.look_mix,
        s.width,
        s.height,
        s.scale.um_per_px_x,
        s.scale.aspect_y_over_x(),
        l.cladding_level,
        l.ferrule_level,
        l.cladding_edge_shade,
        l.epoxy_width_um,
        l.epoxy_mix,
        l.inner_rim,
        l.outer_rim,
        l.rim_width_um,
        l.relief,
        l.edge_softness_um,
        s.camera.blur_sigma_px,
        s.camera.read_noise,
        s.camera.jpeg_quality,
        s.defects.len()
    )
}

/// The scene of frame `i` of a varied set: contents cycle through good and every defect kind.
fn scene(cfg: &SynthConfig, seed: u64, i: u64) -> SceneSpec {
    let kinds = DefectKind::ALL;
    let k = (i % (kinds.len() as u64 + 2)) as usize;
    let content = if k < kinds.len() {
        Content::Defect(kinds[k])
    } else {
        Content::Good
    };
    sample_scene(cfg, endface::synth::frame_seed(seed, i), content)
}

/// Locate `img` as a station would: with its µm/px calibration, or with only its pixel
/// aspect.
fn locate_one(img: &GrayImage, truth: &endface::synth::Truth, calibrated: bool) -> Outcome {
    let cfg = if calibrated {
        LocateConfig::with_scale(truth.scale)
    } else {
        LocateConfig {
            aspect_y_over_x: truth.scale.aspect_y_over_x(),
            ..LocateConfig::default()
        }
    };
    let mut loc = Locator::new(cfg).expect("default config is valid");
    match loc.locate(img) {
        Ok(l) => Outcome {
            center_err_px: (l.center_in_frame[0] - truth.center_in_frame[0])
                .hypot(l.center_in_frame[1] - truth.center_in_frame[1]),
            radius_err_px: l.cladding_radius_px - truth.cladding_radius_px,
            error: None,
        },
        Err(e) => Outcome {
            center_err_px: f64::NAN,
            radius_err_px: f64::NAN,
            error: Some(e.to_string()),
        },
    }
}

struct Tally {
    n: usize,
    good: usize,
    centre_good: usize,
    refused: usize,
    max_center: f64,
    max_radius: f64,
    sum_abs_radius: f64,
    sum_radius: f64,
    located: usize,
    misses: Vec<String>,
}

impl Tally {
    fn new() -> Self {
        Self {
            n: 0,
            good: 0,
            centre_good: 0,
            refused: 0,
            max_center: 0.0,
            max_radius: 0.0,
            sum_abs_radius: 0.0,
            sum_radius: 0.0,
            located: 0,
            misses: Vec::new(),
        }
    }

    fn add(&mut self, i: usize, spec: &SceneSpec, o: &Outcome) {
        self.n += 1;
        match &o.error {
            Some(e) => {
                self.refused += 1;
                self.misses
                    .push(format!("frame {i}: refused: {e}\n    {}", describe(spec)));
            }
            None => {
                self.located += 1;
                if o.center_err_px <= MAX_CENTER_ERR_PX {
                    self.centre_good += 1;
                }
                self.max_center = self.max_center.max(o.center_err_px);
                self.max_radius = self.max_radius.max(o.radius_err_px.abs());
                self.sum_abs_radius += o.radius_err_px.abs();
                self.sum_radius += o.radius_err_px;
                if std::env::var("ALL").is_ok() {
                    println!(
                        "ALL {i} {:.3} {:+.3} | {}",
                        o.center_err_px,
                        o.radius_err_px,
                        describe(spec)
                    );
                }
                if o.center_err_px <= MAX_CENTER_ERR_PX
                    && o.radius_err_px.abs() <= MAX_RADIUS_ERR_PX
                {
                    self.good += 1;
                } else {
                    self.misses.push(format!(
                        "frame {i}: centre error {:.2} px, radius error {:+.2} px\n    {}",
                        o.center_err_px,
                        o.radius_err_px,
                        describe(spec)
                    ));
                }
            }
        }
    }

    fn fraction_good(&self) -> f64 {
        self.good as f64 / self.n.max(1) as f64
    }
}

/// Scene `i` of the varied set made a pronounced double edge, the case that used to go
/// wrong: an epoxy ring 1–2.2 µm wide at 60–80 % of the way from glass to ferrule, a bore rim
/// beyond it that adds to its outer step (so that the outer edge is as steep as the glass
/// edge or steeper), a line just inside the glass on its glass side (the rounded edge: darker
/// than the glass on a dark fiber), and on every other frame relief (rims lit from one side,
/// so that which edge is steeper changes around the circumference).
fn double_edge(cfg: &SynthConfig, seed: u64, i: u64) -> SceneSpec {
    let mut s = scene(cfg, seed, i);
    let mut rng = ChaCha8Rng::seed_from_u64(endface::synth::frame_seed(seed ^ 0xD0_B1E, i));
    let l = &mut s.look;
    let glass = l.cladding_level + l.cladding_edge_shade;
    let polarity = if l.ferrule_level >= glass { 1.0 } else { -1.0 };
    l.epoxy_width_um = rng.gen_range(1.0..2.2);
    l.epoxy_mix = rng.gen_range(0.6..0.8);
    l.outer_rim = polarity * rng.gen_range(20.0..45.0);
    l.inner_rim = -polarity * rng.gen_range(0.0..50.0);
    l.relief = if i.is_multiple_of(2) {
        rng.gen_range(0.3..0.8)
    } else {
        0.0
    };
    s
}

/// Render every scene once and locate it with the calibration and with only the aspect.
fn run(specs: &[SceneSpec]) -> (Tally, Tally) {
    let (mut cal, mut asp) = (Tally::new(), Tally::new());
    for (i, spec) in specs.iter().enumerate() {
        let (img, truth) = render(spec);
        cal.add(i, spec, &locate_one(&img, &truth, true));
        asp.add(i, spec, &locate_one(&img, &truth, false));
    }
    (cal, asp)
}

fn report(what: &str, t: &Tally) -> String {
    format!(
        "{what}: {} frames, {} refused, {} within {MAX_CENTER_ERR_PX} px / {MAX_RADIUS_ERR_PX} px \
         ({:.1} %); max centre error \
         {:.2} px, mean |radius error| {:.3} px (signed {:+.3}), max {:.2} px",
        t.n,
        t.refused,
        t.good,
        100.0 * t.good as f64 / t.n as f64,
        t.max_center,
        t.sum_abs_radius / t.located.max(1) as f64,
        t.sum_radius / t.located.max(1) as f64,
        t.max_radius
    )
}

#[test]
#[ignore = "exploration: hundreds of full-size frames; run with --release --nocapture"]
fn explore() {
    let n = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let seed = std::env::var("SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let cfg = SynthConfig::default();
    let specs: Vec<SceneSpec> = (0..n).map(|i| scene(&cfg, seed, i)).collect();
    let (cal, asp) = run(&specs);
    for (what, t) in [("calibrated", &cal), ("aspect only", &asp)] {
        for m in &t.misses {
            println!("{m}");
        }
        println!("{}", report(what, t));
    }
}

/// Dump the median radial profile (truth centre) of frame `FRAME` of seed `SEED`, in 8
/// sectors and overall: `FRAME=260 SEED=7 cargo test --release --test
/// locate_synth_regression dump -- --ignored --nocapture`.
#[test]
#[ignore = "debugging aid"]
fn dump_profile() {
    let (Some(frame), Some(seed)) = (
        std::env::var("FRAME").ok().and_then(|v| v.parse().ok()),
        std::env::var("SEED").ok().and_then(|v| v.parse().ok()),
    ) else {
        return;
    };
    let cfg = SynthConfig::default();
    let spec = if std::env::var("DOUBLE").is_ok() {
        double_edge(&cfg, seed, frame)
    } else {
        scene(&cfg, seed, frame)
    };
    println!("{}", describe(&spec));
    let (img, truth) = render(&spec);
    let [cx, cy] = truth.center_in_frame;
    let r = truth.cladding_radius_px;
    let a = truth.scale.aspect_y_over_x();
    let ppu = 1.0 / truth.scale.um_per_px_x;
    let (w, h) = img.dimensions();
    let sample = |x: f64, y: f64| -> Option<f64> {
        if x < 0.0 || y < 0.0 || x > (w - 1) as f64 || y > (h - 1) as f64 {
            return None;
        }
        let (x0, y0) = ((x as u32).min(w - 2), (y as u32).min(h - 2));
        let (tx, ty) = (x - x0 as f64, y - y0 as f64);
        let p = |i, j| img.get_pixel(i, j)[0] as f64;
        let top = p(x0, y0) * (1.0 - tx) + p(x0 + 1, y0) * tx;
        let bot = p(x0, y0 + 1) * (1.0 - tx) + p(x0 + 1, y0 + 1) * tx;
        Some(top * (1.0 - ty) + bot * ty)
    };
    let n_rays = 360;
    let offs: Vec<f64> = (-24..=24).map(|k| k as f64 * 0.5).collect(); // px
    let sectors = 8;
    let mut rows = vec![vec![Vec::new(); sectors + 1]; offs.len()];
    for k in 0..n_rays {
        let th = k as f64 / n_rays as f64 * std::f64::consts::TAU;
        for (j, o) in offs.iter().enumerate() {
            let t = r + o;
            if let Some(v) = sample(cx + t * th.cos(), cy + t * th.sin() * a) {
                rows[j][k * sectors / n_rays].push(v);
                rows[j][sectors].push(v);
            }
        }
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            f64::NAN
        } else {
            v[v.len() / 2]
        }
    };
    println!("offset px (µm): sectors 0..8 | all");
    for (j, o) in offs.iter().enumerate() {
        let vals: Vec<String> = rows[j]
            .iter_mut()
            .map(|v| format!("{:5.0}", med(v)))
            .collect();
        println!("{o:+6.1} ({:+5.2}) {}", o / ppu, vals.join(" "));
    }
    for calibrated in [true, false] {
        let o = locate_one(&img, &truth, calibrated);
        println!(
            "locate (calibrated {calibrated}): centre err {:.2} radius err {:+.2} {:?}",
            o.center_err_px, o.radius_err_px, o.error
        );
    }
}

/// Double edges, rims and relief: the glass boundary on (nearly) every frame, with the
/// station's calibration and with only the pixel aspect. Before the fix 6 of these 60 frames
/// missed (radius up to 4.3 px too large: the outer edge of the ring), and the mean radius
/// error was +0.68 px; now none miss.
#[test]
fn double_edges_take_the_glass_boundary() {
    let cfg = SynthConfig::default();
    let specs: Vec<SceneSpec> = (0..60).map(|i| double_edge(&cfg, 0xD0B1_E002, i)).collect();
    let (cal, asp) = run(&specs);
    for (what, t) in [("calibrated", &cal), ("aspect only", &asp)] {
        eprintln!("{}", report(what, t));
        assert!(
            t.refused == 0 && t.fraction_good() >= 0.98,
            "{}\n{}",
            report(what, t),
            t.misses.join("\n")
        );
    }
}

/// The synthetic camera as it is (every look, defect kind and edge): located on ≥ 98 % of
/// frames, the centre within 1 px on ≥ 97 %, centre and radius within 1 px / 1.5 px on
/// ≥ 93 % (over 3 600 locates the figures are 99.6 %, 99.0 % and 96.3 %; the misses are
/// edges where a rim, not the glass, carries the edge — see the module doc of
/// `endface::locate`), no centre off by 2.5 px.
#[test]
fn varied_synth_frames_meet_the_accuracy_figures() {
    let cfg = SynthConfig::default();
    let specs: Vec<SceneSpec> = (0..100).map(|i| scene(&cfg, 0x5EED_2027, i)).collect();
    let (cal, asp) = run(&specs);
    for (what, t) in [("calibrated", &cal), ("aspect only", &asp)] {
        eprintln!("{}", report(what, t));
        assert!(
            t.located as f64 >= 0.98 * t.n as f64
                && t.centre_good as f64 >= 0.97 * t.n as f64
                && t.fraction_good() >= 0.93
                && t.max_center <= 2.5,
            "{}\n{}",
            report(what, t),
            t.misses.join("\n")
        );
    }
}

/// Frames with no fiber — a bare ferrule from the synthetic camera (texture, mottle, marks,
/// dust, uneven light, noise, JPEG) — are refused, with and without calibration.
#[test]
fn bare_ferrule_frames_are_refused() {
    let cfg = SynthConfig::default();
    for i in 0..12 {
        let mut spec = scene(&cfg, 0xFE_22E1E, i);
        spec.center_in_frame = [-4000.0, -3000.0];
        let (img, truth) = render(&spec);
        for calibrated in [true, false] {
            let o = locate_one(&img, &truth, calibrated);
            assert!(
                o.error.is_some(),
                "frame {i} (calibrated {calibrated}): a fiber was reported in a bare ferrule: \
                 centre error {:.1} px\n    {}",
                o.center_err_px,
                describe(&spec)
            );
        }
    }
}
