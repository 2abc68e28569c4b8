//! Drift on rendered end-face frames: frame features, the offline `endface drift` command,
//! and a sensitivity study of controlled shifts.
//!
//! The frames come from a small renderer in this file (dark fiber with a soft edge and epoxy
//! ring on a bright, textured, unevenly lit ferrule; per-frame jitter of centre, radius and
//! light ±6 %, noise σ 2–4, defocus 0.5–0.9 px), NOT from the project's synthetic camera (`synth`), which
//! had not landed on main when this was written. The full study is
//! `cargo test --test drift_images -- --ignored --nocapture sensitivity_table`.
//! The same study on frames from `synth` (the real synthetic camera) is tests/drift_synth.rs;
//! its numbers are in docs/drift.md.
//!
//! Measured with that command (detection rate at α = 0.01, 20 trials per cell, 200-frame
//! reference, 32 projections, 199 permutations; toy renderer, so optimistic for real streams):
//!
//! | shift | w=3 | w=5 | w=10 | w=20 | w=40 | smallest window with ≥ 90 % detection |
//! |---|---|---|---|---|---|---|
//! | untouched | 0.00 | 0.00 | 0.00 | 0.00 | 0.00 | (false-alarm rate) |
//! | illumination -10% | 1.00 | 1.00 | 1.00 | 1.00 | 1.00 | 3 |
//! | blur +1 px | 1.00 | 0.85 | 1.00 | 1.00 | 1.00 | 3 |
//! | haze 15% | 1.00 | 1.00 | 1.00 | 1.00 | 1.00 | 3 |
//! | multimode fiber | 1.00 | 1.00 | 1.00 | 1.00 | 1.00 | 3 |
//! | illumination -5% | 0.45 | 0.60 | 0.85 | 1.00 | 1.00 | 20 |
//! | blur +0.5 px | 0.00 | 0.45 | 0.75 | 1.00 | 1.00 | 20 |
//! | haze 5% | 1.00 | 1.00 | 1.00 | 1.00 | 1.00 | 3 |

use endface::drift::{
    compare, frame_features, permutation_test, random_projections, DriftConfig, DriftMonitor,
    DriftState, FrameFeatures, Standardizer,
};
use image::GrayImage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

const W: usize = 240;
const H: usize = 180;

#[derive(Clone, Copy, Debug)]
struct Shift {
    name: &'static str,
    gain: f32,
    extra_blur_px: f32,
    haze: f32,
    multimode: bool,
}

const NONE: Shift = Shift {
    name: "untouched",
    gain: 1.0,
    extra_blur_px: 0.0,
    haze: 0.0,
    multimode: false,
};

/// Milder shifts, for the sensitivity table only.
const MILD: [Shift; 3] = [
    Shift {
        name: "illumination -5%",
        gain: 0.95,
        ..NONE
    },
    Shift {
        name: "blur +0.5 px",
        extra_blur_px: 0.5,
        ..NONE
    },
    Shift {
        name: "haze 5%",
        haze: 0.05,
        ..NONE
    },
];

const SHIFTS: [Shift; 5] = [
    NONE,
    Shift {
        name: "illumination -10%",
        gain: 0.9,
        ..NONE
    },
    Shift {
        name: "blur +1 px",
        extra_blur_px: 1.0,
        ..NONE
    },
    Shift {
        name: "haze 15%",
        haze: 0.15,
        ..NONE
    },
    Shift {
        name: "multimode fiber",
        multimode: true,
        ..NONE
    },
];

fn blur(buf: &mut [f32], sigma: f32) {
    if sigma <= 0.0 {
        return;
    }
    let r = (3.0 * sigma).ceil() as i32;
    let k: Vec<f32> = (-r..=r)
        .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let ks: f32 = k.iter().sum();
    let mut tmp = vec![0.0f32; buf.len()];
    for y in 0..H {
        for x in 0..W {
            let mut acc = 0.0;
            for (j, kv) in k.iter().enumerate() {
                let xx = (x as i32 + j as i32 - r).clamp(0, W as i32 - 1) as usize;
                acc += kv * buf[y * W + xx];
            }
            tmp[y * W + x] = acc / ks;
        }
    }
    for y in 0..H {
        for x in 0..W {
            let mut acc = 0.0;
            for (j, kv) in k.iter().enumerate() {
                let yy = (y as i32 + j as i32 - r).clamp(0, H as i32 - 1) as usize;
                acc += kv * tmp[yy * W + x];
            }
            buf[y * W + x] = acc / ks;
        }
    }
}

/// One frame and its true (centre, radius).
fn render(seed: u64, s: Shift) -> (GrayImage, [f64; 2], f64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let cx = W as f32 / 2.0 + rng.gen_range(-6.0..6.0);
    let cy = H as f32 / 2.0 + rng.gen_range(-6.0..6.0);
    let r = 52.0 * rng.gen_range(0.97..1.03f32);
    let light = rng.gen_range(0.94..1.06f32) * s.gain;
    let noise_sigma = rng.gen_range(2.0..4.0f32);
    let focus_px = rng.gen_range(0.5..0.9f32);
    let grad = rng.gen_range(-12.0..12.0f32);
    let tex_phase: f32 = rng.gen_range(0.0..100.0);
    let mut buf = vec![0.0f32; W * H];
    for y in 0..H {
        for x in 0..W {
            let (dx, dy) = (x as f32 - cx, y as f32 - cy);
            let rho = (dx * dx + dy * dy).sqrt() / r;
            let vign = 1.0 - 0.25 * ((dx * dx + dy * dy) / (W * W / 4) as f32);
            let tex = 6.0 * ((x as f32 * 0.37 + tex_phase).sin() * (y as f32 * 0.29).cos());
            let ferrule = 180.0 + grad * (x as f32 / W as f32 - 0.5) + tex;
            let glass = if s.multimode {
                let core = if rho < 0.4 { 28.0 } else { 0.0 };
                let ring = if (rho - 0.58).abs() < 0.02 {
                    -10.0
                } else {
                    0.0
                };
                72.0 + core + ring
            } else {
                let core = if rho < 0.072 { 14.0 } else { 0.0 };
                72.0 + core
            };
            let edge = ((rho - 1.0) * r / 1.5).clamp(-1.0, 1.0) * 0.5 + 0.5; // 0 inside, 1 outside
            let epoxy = if (1.0..1.08).contains(&rho) {
                -60.0
            } else {
                0.0
            };
            buf[y * W + x] = (glass * (1.0 - edge) + (ferrule + epoxy) * edge) * vign * light;
        }
    }
    blur(&mut buf, focus_px + s.extra_blur_px);
    if s.haze > 0.0 {
        let mean = buf.iter().sum::<f32>() / buf.len() as f32;
        for v in &mut buf {
            *v = (1.0 - s.haze) * *v + s.haze * (mean + 40.0);
        }
    }
    let img = GrayImage::from_fn(W as u32, H as u32, |x, y| {
        let n: f32 = rng.sample(StandardNormal);
        image::Luma([(buf[y as usize * W + x as usize] + noise_sigma * n)
            .round()
            .clamp(0.0, 255.0) as u8])
    });
    (img, [cx as f64, cy as f64], r as f64)
}

fn features(seed: u64, s: Shift) -> FrameFeatures {
    let (img, c, r) = render(seed, s);
    frame_features(&img, c, r)
}

fn stream(first_seed: u64, n: usize, s: Shift) -> Vec<FrameFeatures> {
    (0..n as u64).map(|i| features(first_seed + i, s)).collect()
}

#[test]
fn features_are_finite_and_respond_to_each_shift() {
    let base = features(1, NONE);
    for (k, v) in base.iter().enumerate().take(12) {
        assert!(v.is_finite(), "feature {k} is {v}");
    }
    assert!(
        base[12..].iter().all(|v| v.is_nan()),
        "model slots start empty"
    );
    // Same seed, each shift: the intended features move in the intended direction.
    let dim = features(1, SHIFTS[1]);
    assert!(dim[4] < base[4] * 0.95, "ferrule median under -10 % light");
    let blurred = features(1, SHIFTS[2]);
    assert!(
        blurred[3] < base[3] - 0.25,
        "edge sharpness under blur: {} vs {}",
        blurred[3],
        base[3]
    );
    let hazy = features(1, SHIFTS[3]);
    assert!(
        hazy[9].abs() < base[9].abs(),
        "haze lowers glass/ferrule contrast"
    );
    let mm = features(1, SHIFTS[4]);
    assert!(mm[0] > base[0] + 5.0, "multimode core is brighter");
}

#[test]
fn illumination_shift_detected_untouched_not() {
    let reference = stream(1000, 80, NONE);
    let std = Standardizer::fit(&reference).unwrap();
    let d = std.dim();
    let proj = random_projections(d, 32, 11);
    let mut rz = Vec::new();
    reference.iter().for_each(|f| std.push_into(f, &mut rz));
    let test = |s: Shift, seed0: u64| {
        let mut cz = Vec::new();
        stream(seed0, 20, s)
            .iter()
            .for_each(|f| std.push_into(f, &mut cz));
        permutation_test(&rz, &cz, d, &proj, 2.0, 199, seed0).unwrap()
    };
    let t = test(SHIFTS[1], 50_000);
    assert!(
        t.p_value < 0.01,
        "illumination -10 % not detected with 20 frames: {t:?}"
    );
    let t = test(NONE, 60_000);
    assert!(t.p_value >= 0.01, "untouched stream flagged: {t:?}");
}

#[test]
fn untouched_stream_never_alarms_over_a_long_run() {
    let reference = stream(2000, 100, NONE);
    let cfg = DriftConfig {
        window: 30,
        test_every: 10,
        projections: 16,
        permutations: 199,
        alpha: 0.01,
        enter_after: 2,
        exit_after: 2,
        ..Default::default()
    };
    let mut mon = DriftMonitor::new(&reference, cfg).unwrap();
    let (mut tests, mut significant) = (0, 0);
    for i in 0..330u64 {
        if let Some(r) = mon.push(&features(100_000 + i, NONE)) {
            tests += 1;
            significant += usize::from(r.significant);
            assert_eq!(r.state, DriftState::Ok, "false DRIFT at frame {i}: {r:?}");
        }
    }
    assert_eq!(tests, 31);
    assert!(
        significant <= 2,
        "{significant} of {tests} tests significant at 0.01"
    );
    // Then the fiber type changes: DRIFT within a window plus two tests.
    let mut hit = None;
    for i in 0..60u64 {
        if let Some(r) = mon.push(&features(200_000 + i, SHIFTS[4])) {
            if r.state == DriftState::Drift {
                hit = Some(i);
                break;
            }
        }
    }
    assert!(hit.is_some(), "fiber type change not detected");
}

#[test]
fn drift_command_on_folders() {
    let tmp = tempfile::tempdir().unwrap();
    let write = |dir: &str, seed0: u64, n: u64, s: Shift| {
        let d = tmp.path().join(dir);
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..n {
            render(seed0 + i, s)
                .0
                .save(d.join(format!("{i:03}.png")))
                .unwrap();
        }
        d
    };
    let reference = write("ref", 1, 40, NONE);
    let same = write("same", 500, 20, NONE);
    let dim = write("dim", 900, 20, SHIFTS[1]);
    std::fs::write(dim.join("broken.png"), b"not a png").unwrap();
    let exe = env!("CARGO_BIN_EXE_endface");
    let run = |a: &std::path::Path, b: &std::path::Path| {
        std::process::Command::new(exe)
            .args([
                "-q",
                "drift",
                "--json",
                "--permutations",
                "199",
                "--cladding-radius-px",
                "52",
            ])
            .arg(a)
            .arg(b)
            .output()
            .unwrap()
    };
    let out = run(&reference, &same);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["drift"], false);
    assert_eq!(v["reference_frames"], 40);
    let out = run(&reference, &dim);
    assert_eq!(
        out.status.code(),
        Some(20),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["drift"], true);
    assert_eq!(v["skipped"].as_array().unwrap().len(), 1);
    // Dimming scales every light level and spread: the movers are light-scaled features (a
    // median, an IQR, the glass/ferrule contrast), and a median is among the top three.
    let names: Vec<&str> = v["shifts"]
        .as_array()
        .unwrap()
        .iter()
        .take(3)
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(
        ["median", "iqr", "contrast"]
            .iter()
            .any(|k| names[0].contains(k)),
        "top movers {names:?}"
    );
    assert!(
        names.iter().any(|n| n.contains("median")),
        "top movers {names:?}"
    );
    // A missing folder: one clear line, input exit code.
    let out = run(&reference, &tmp.path().join("nope"));
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("endface: error:") && err.contains("nope"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

/// Sensitivity study: for each shift, detection rate at α = 0.01 over 20 trials per window
/// size, against a 200-frame reference (32 projections, 199 permutations). Prints a table
/// (about 2 minutes on 2 shared cores).
#[test]
#[ignore]
fn sensitivity_table() {
    let reference = stream(1, 200, NONE);
    let cfg = DriftConfig {
        projections: 32,
        permutations: 199,
        alpha: 0.01,
        ..Default::default()
    };
    let windows = [3usize, 5, 10, 20, 40];
    let trials = 20u64;
    println!(
        "| shift | {} | smallest window with ≥ 90 % detection |",
        windows.map(|w| format!("w={w}")).join(" | ")
    );
    println!("|---|{}---|", "---|".repeat(windows.len()));
    for (si, s) in SHIFTS.iter().chain(&MILD).enumerate() {
        let mut rates = Vec::new();
        for &w in &windows {
            let mut hits = 0;
            for t in 0..trials {
                let seed0 = 1_000_000 * (si as u64 + 1) + 10_000 * w as u64 + 100 * t;
                let cand = stream(seed0, w, *s);
                let c = compare(
                    &reference,
                    &cand,
                    &DriftConfig {
                        seed: seed0,
                        ..cfg.clone()
                    },
                )
                .unwrap();
                hits += usize::from(c.drift);
            }
            rates.push(hits as f64 / trials as f64);
        }
        let first = windows
            .iter()
            .zip(&rates)
            .find(|(_, r)| **r >= 0.9)
            .map_or("> 40".to_string(), |(w, _)| w.to_string());
        println!(
            "| {} | {} | {} |",
            s.name,
            rates
                .iter()
                .map(|r| format!("{:.2}", r))
                .collect::<Vec<_>>()
                .join(" | "),
            if si == 0 {
                "(false-alarm rate)".to_string()
            } else {
                first
            }
        );
    }
}
