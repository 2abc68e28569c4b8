//! Accuracy of `endface::locate` on the synthetic camera (`endface::synth`): every look and
//! fiber, defects, rims, epoxy rings, trench rings, off-centre fibers, PAL-like non-square
//! frames, uneven light, noise, blur and JPEG, with the station calibration known.
//!
//! Fast check (CI): `cargo test --test locate_synth`.
//! Full run, 500 fresh frames, prints the figures for the README / report:
//! `cargo test --release --test locate_synth -- --ignored --nocapture`.

use endface::locate::{LocateConfig, Locator};
use endface::synth::{SynthCamera, SynthConfig};

#[derive(Default)]
struct Figures {
    center_err_px: Vec<f64>,
    radius_err_rel: Vec<f64>,
    failures: Vec<String>,
}

fn quantile(v: &[f64], q: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return f64::NAN;
    }
    s[((s.len() - 1) as f64 * q).round() as usize]
}

impl Figures {
    fn report(&self, what: &str) -> String {
        let c = &self.center_err_px;
        let r = &self.radius_err_rel;
        format!(
            "{what}: {} frames, {} refused; center error median {:.3} px, p99 {:.3} px, max \
             {:.3} px; radius error median {:.3} %, p90 {:.3} %, p99 {:.3} %, max {:.3} %",
            c.len() + self.failures.len(),
            self.failures.len(),
            quantile(c, 0.5),
            quantile(c, 0.99),
            quantile(c, 1.0),
            100.0 * quantile(r, 0.5),
            100.0 * quantile(r, 0.9),
            100.0 * quantile(r, 0.99),
            100.0 * quantile(r, 1.0),
        )
    }
}

/// Locate `n` frames of a synthetic camera seeded with `seed`; `calibrated`: the locator gets
/// the frame's µm/px (as a station would), else only its pixel aspect.
fn run(seed: u64, n: usize, calibrated: bool) -> Figures {
    let mut cam = SynthCamera::new(SynthConfig::default(), seed).unwrap();
    let mut figs = Figures::default();
    for i in 0..n {
        let (img, truth) = cam.next_frame();
        let cfg = if calibrated {
            LocateConfig::with_scale(truth.scale)
        } else {
            LocateConfig {
                aspect_y_over_x: truth.scale.aspect_y_over_x(),
                ..LocateConfig::default()
            }
        };
        let mut loc = Locator::new(cfg).unwrap();
        match loc.locate(&img) {
            Ok(l) => {
                let e = (l.center_in_frame[0] - truth.center_in_frame[0])
                    .hypot(l.center_in_frame[1] - truth.center_in_frame[1]);
                let re = (l.cladding_radius_px - truth.cladding_radius_px).abs()
                    / truth.cladding_radius_px;
                if e > 2.0 || re > 0.02 {
                    eprintln!(
                        "frame {i}: center error {e:.2} px, radius error {:.2} % ({:?})",
                        re * 100.0,
                        truth.style
                    );
                }
                figs.center_err_px.push(e);
                figs.radius_err_rel.push(re);
            }
            Err(err) => {
                eprintln!("frame {i}: {err} ({:?})", truth.style);
                figs.failures.push(format!("frame {i}: {err}"));
            }
        }
    }
    figs
}

/// The acceptance figures: median center error < 0.5 px, 99th percentile < 2 px, median
/// radius error < 1 %; at most `max_refused` frames refused (the synthetic camera renders
/// some bright-core frames whose cladding barely differs from the ferrule: refusing those is
/// the intended behaviour, a guess is not).
fn check(f: &Figures, max_refused: usize) {
    let med = quantile(&f.center_err_px, 0.5);
    let p99 = quantile(&f.center_err_px, 0.99);
    let rmed = quantile(&f.radius_err_rel, 0.5);
    assert!(
        f.failures.len() <= max_refused,
        "{} refused: {:?}",
        f.failures.len(),
        f.failures
    );
    assert!(med < 0.5, "median center error {med:.3} px");
    assert!(p99 < 2.0, "p99 center error {p99:.3} px");
    assert!(rmed < 0.01, "median radius error {:.3} %", rmed * 100.0);
}

#[test]
fn synth_frames_meet_the_accuracy_figures() {
    let f = run(0x5EED_2026, 60, true);
    eprintln!("{}", f.report("calibrated"));
    check(&f, 3);
}

#[test]
#[ignore = "500 frames; run with --release"]
fn synth_500_frames() {
    let cal = run(0xC0FF_EE01, 500, true);
    let uncal = run(0xC0FF_EE01, 500, false);
    println!("{}", cal.report("calibrated (µm/px known)"));
    println!("{}", uncal.report("aspect only"));
    check(&cal, 25);
}
