//! Accuracy of `endface::locate` on frames from the tests' own procedural renderer
//! (tests/locate_render): both looks, SM and MM fibers, trench rings, chips, dust and smudges
//! on the edge, epoxy rings, rims, off-centre fibers, non-square pixels, uneven light, noise,
//! blur and JPEG.
//!
//! Fast run: `cargo test --test locate_procedural`. Full run (500 frames, prints the numbers):
//! `cargo test --release --test locate_procedural -- --ignored --nocapture`.

mod locate_render;

use endface::geometry::PixelScale;
use endface::locate::{LocateConfig, Locator};
use locate_render::{Scene, Stats};

fn run(seeds: std::ops::Range<u64>, with_scale: bool) -> Stats {
    let mut stats = Stats::default();
    for seed in seeds {
        let scene = Scene::random(seed);
        let img = scene.render();
        let cfg = if with_scale {
            LocateConfig::with_scale(PixelScale {
                um_per_px_x: scene.um_per_px_x,
                um_per_px_y: scene.um_per_px_y(),
            })
        } else {
            LocateConfig {
                aspect_y_over_x: scene.aspect,
                ..LocateConfig::default()
            }
        };
        let mut loc = Locator::new(cfg).unwrap();
        match loc.locate(&img) {
            Ok(l) => {
                let e = (l.center_in_frame[0] - scene.center_in_frame[0])
                    .hypot(l.center_in_frame[1] - scene.center_in_frame[1]);
                let re = (l.cladding_radius_px - scene.radius_px()).abs() / scene.radius_px();
                if e > 2.0 || re > 0.01 {
                    eprintln!(
                        "seed {seed}: center err {e:.2} px, radius err {:.2} %, conf {:.2} \
                         ({:?})",
                        re * 100.0,
                        l.confidence,
                        summary(&scene)
                    );
                }
                stats.center_err_px.push(e);
                stats.radius_err_rel.push(re);
            }
            Err(err) => {
                eprintln!("seed {seed}: {err} ({:?})", summary(&scene));
                stats.failures.push(format!("seed {seed}: {err}"));
            }
        }
    }
    stats
}

fn summary(s: &Scene) -> String {
    format!(
        "{}x{} a={} {:?} {:?} trench={} blur={:.1} noise={:.1} epoxy={:.1}x{:.2} rims={:.0}/{:.0} chips={} blobs={} jpeg={:?}",
        s.width,
        s.height,
        s.aspect,
        s.look,
        s.fiber,
        s.trench,
        s.blur_px,
        s.noise,
        s.epoxy_um,
        s.epoxy_mix,
        s.inner_rim,
        s.outer_rim,
        s.chips.len(),
        s.blobs.len(),
        s.jpeg_quality
    )
}

fn check(stats: &Stats, max_failures: usize) {
    eprintln!("{}", stats.report());
    assert!(
        stats.failures.len() <= max_failures,
        "{} failures: {:?}",
        stats.failures.len(),
        stats.failures
    );
    let med = Stats::quantile(&stats.center_err_px, 0.5);
    let p99 = Stats::quantile(&stats.center_err_px, 0.99);
    let rmed = Stats::quantile(&stats.radius_err_rel, 0.5);
    let rp90 = Stats::quantile(&stats.radius_err_rel, 0.9);
    assert!(med < 0.5, "median center error {med:.3} px");
    assert!(p99 < 2.0, "p99 center error {p99:.3} px");
    assert!(rmed < 0.01, "median radius error {:.3} %", rmed * 100.0);
    // Rims and epoxy rings beside a soft glass edge make the last fraction of a micrometre
    // ambiguous on some frames (see the module doc): the tail is bounded, not below 1 %.
    assert!(rp90 < 0.02, "p90 radius error {:.3} %", rp90 * 100.0);
}

#[test]
fn accuracy_procedural_with_calibration() {
    check(&run(1000..1024, true), 0);
}

#[test]
fn accuracy_procedural_without_calibration() {
    check(&run(2000..2024, false), 0);
}

#[test]
#[ignore = "500 frames; run with --release"]
fn accuracy_procedural_500() {
    eprintln!("with calibration:");
    let a = run(10_000..10_500, true);
    eprintln!("without calibration (aspect only):");
    let b = run(20_000..20_500, false);
    check(&a, 0);
    check(&b, 2);
}

/// CPU seconds used by this process so far (Linux `/proc/self/stat`; `None` elsewhere). The
/// machine running the tests is shared, so wall-clock time would mostly measure the others.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0) // USER_HZ is 100 on Linux
}

/// Per-frame time of `Locator::locate` (not a pass/fail check: run in release and read it).
/// `cargo test --release --test locate_procedural -- --ignored --nocapture locate_speed`
#[test]
#[ignore = "timing; run with --release"]
fn locate_speed() {
    let frames: Vec<_> = (0..20u64)
        .map(|s| {
            let mut scene = Scene::random(30_000 + s);
            scene.width = 640;
            scene.height = 480;
            scene.aspect = 1.0;
            scene.center_in_frame = [319.5 + (s as f64 - 10.0) * 3.0, 239.5];
            let img = scene.render();
            let scale = PixelScale::square(scene.um_per_px_x);
            (img, scale)
        })
        .collect();
    let mut plain = Locator::new(LocateConfig::default()).unwrap();
    for (img, _) in &frames {
        let _ = plain.locate(img);
    }
    let reps = 20;
    let n = (reps * frames.len()) as f64;
    let (w0, c0) = (std::time::Instant::now(), cpu_seconds());
    for _ in 0..reps {
        for (img, _) in &frames {
            let _ = plain.locate(img);
        }
    }
    let (wall_plain, cpu_plain) = (w0.elapsed().as_secs_f64(), cpu_seconds());
    let mut cal: Vec<Locator> = frames
        .iter()
        .map(|(_, s)| Locator::new(LocateConfig::with_scale(*s)).unwrap())
        .collect();
    let (w1, c1) = (std::time::Instant::now(), cpu_seconds());
    for _ in 0..reps {
        for ((img, _), loc) in frames.iter().zip(cal.iter_mut()) {
            let _ = loc.locate(img);
        }
    }
    let (wall_cal, cpu_cal) = (w1.elapsed().as_secs_f64(), cpu_seconds());
    let ms = |s: f64| s * 1e3 / n;
    let cpu = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => format!("{:.2} ms CPU", ms(b - a)),
        _ => "CPU time unavailable".into(),
    };
    eprintln!(
        "640x480 per frame: without calibration {:.2} ms wall, {}; with calibration {:.2} ms \
         wall, {}",
        ms(wall_plain),
        cpu(c0, cpu_plain),
        ms(wall_cal),
        cpu(c1, cpu_cal)
    );
}
