//! `[model] flips`: `Model::run_gray_flips` averages the model's outputs over the crop and its
//! mirror images, each mirrored back — checked against runs done by hand on mirrored crops.

mod common;

use common::*;
use endface::config::StationConfig;
use endface::model::Model;

fn mirror(px: &[f32], w: usize, h: usize, fx: bool, fy: bool) -> Vec<f32> {
    (0..w * h)
        .map(|i| {
            let (u, v) = (i % w, i / w);
            let (su, sv) = (
                if fx { w - 1 - u } else { u },
                if fy { h - 1 - v } else { v },
            );
            px[sv * w + su]
        })
        .collect()
}

/// A crop with structure that is not symmetric under any flip.
fn crop(w: usize, h: usize) -> Vec<f32> {
    (0..w * h)
        .map(|i| {
            let (u, v) = ((i % w) as f32, (i / w) as f32);
            (40.0 + 3.0 * u + 1.3 * v + 60.0 * ((u * 0.7).sin() * (v * 0.31 + 0.2).cos()))
                .clamp(0.0, 255.0)
        })
        .collect()
}

fn check(manifest: &std::path::Path, must_differ: bool) {
    let mut model = Model::load(manifest, &cpu_runtime()).unwrap();
    let manifest = manifest.display();
    let (w, h) = model.input_size();
    let names: Vec<String> = model.output_names().map(str::to_string).collect();
    let px = crop(w, h);
    // by hand: each mirrored crop run alone, its planes mirrored back
    let mut sums: Vec<Vec<f64>> = Vec::new();
    let mut plain_input = Vec::new();
    let mut plain_out: Vec<Vec<f32>> = Vec::new();
    for (fx, fy) in [(false, false), (true, false), (false, true), (true, true)] {
        model.set_gray_input(&mirror(&px, w, h, fx, fy)).unwrap();
        model.run().unwrap();
        if !fx && !fy {
            plain_input = model.input().to_vec();
            plain_out = names
                .iter()
                .map(|n| model.output(n).unwrap().to_vec())
                .collect();
        }
        for (k, n) in names.iter().enumerate() {
            let out = model.output(n).unwrap();
            let back: Vec<f32> = if out.len().is_multiple_of(w * h) {
                out.chunks_exact(w * h)
                    .flat_map(|p| mirror(p, w, h, fx, fy))
                    .collect()
            } else {
                out.to_vec()
            };
            if sums.len() <= k {
                sums.push(vec![0.0; back.len()]);
            }
            for (s, b) in sums[k].iter_mut().zip(&back) {
                *s += f64::from(*b);
            }
        }
        if fx && !fy {
            // two flips: the plain run and left-right
            model.run_gray_flips(&px, 2).unwrap();
            for (k, n) in names.iter().enumerate() {
                let got = model.output(n).unwrap();
                if !got.len().is_multiple_of(w * h) {
                    continue;
                }
                for (g, s) in got.iter().zip(&sums[k]) {
                    assert!(
                        (f64::from(*g) - s / 2.0).abs() < 1e-5,
                        "{manifest} {n}: flips 2"
                    );
                }
            }
        }
    }
    model.run_gray_flips(&px, 4).unwrap();
    let mut differs = false;
    for (k, n) in names.iter().enumerate() {
        let got = model.output(n).unwrap();
        if !got.len().is_multiple_of(w * h) {
            // a score output keeps the unmirrored run's value
            assert_eq!(got, &plain_out[k][..], "{manifest} {n}");
            continue;
        }
        for ((g, s), p) in got.iter().zip(&sums[k]).zip(&plain_out[k]) {
            assert!(
                (f64::from(*g) - s / 4.0).abs() < 1e-5,
                "{manifest} {n}: flips 4"
            );
            differs |= (g - p).abs() > 1e-4;
        }
    }
    // the fixtures are mirror-symmetric models (the same output either way); the shipped one
    // is not, so there the average must differ from the plain run
    assert!(
        differs || !must_differ,
        "{manifest}: the average equals the plain run: the test shows nothing"
    );
    // the input tensor holds the unmirrored crop afterwards (the abs_diff map reads it)
    assert_eq!(model.input(), &plain_input[..]);
    // one flip is the plain run
    model.run_gray_flips(&px, 1).unwrap();
    for (k, n) in names.iter().enumerate() {
        assert_eq!(
            model.output(n).unwrap(),
            &plain_out[k][..],
            "{manifest} {n}: flips 1"
        );
    }
    // a crop of the wrong size is refused whatever the flips
    assert!(model.run_gray_flips(&px[1..], 4).is_err());
}

#[test]
fn flipped_runs_are_averaged_mirrored_back() {
    check(&fixture("recon64.manifest.json"), false);
    check(&fixture("anomalib64.manifest.json"), false);
    check(&repo().join("models/endface-student.manifest.json"), true);
}

#[test]
fn flips_other_than_1_2_4_are_a_config_error_naming_the_key() {
    for (v, ok) in [
        (1, true),
        (2, true),
        (4, true),
        (0, false),
        (3, false),
        (8, false),
    ] {
        let text = format!("[model]\nflips = {v}\n");
        let got = StationConfig::from_toml_str(&text, "station.toml");
        match (ok, got) {
            (true, Ok(c)) => assert_eq!(c.model.flips, v),
            (false, Err(e)) => assert!(e.to_string().contains("model.flips"), "{e}"),
            (ok, got) => panic!("flips = {v}: expected ok={ok}, got {got:?}"),
        }
    }
}
