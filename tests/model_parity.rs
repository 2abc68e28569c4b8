//! Rust inference (crop → ONNX Runtime → anomaly map) equals Python onnxruntime on the same
//! frame, using the fixtures written by scripts/make_test_models.py (which computes crop,
//! normalization and map with scripts/endface_ref.py). Tolerance 1e-4 (CONTRACTS / issue 4).

mod common;

use common::*;
use endface::anomaly;
use endface::geometry::PixelScale;
use endface::inspect::border::find_content;
use endface::inspect::crop::{CropGeometry, CropScratch};
use endface::model::Model;
use serde_json::Value;

const TOL: f32 = 1e-4;

fn check_parity(name: &str) {
    let parity_dir = fixture("parity");
    let meta: Value = serde_json::from_str(
        &std::fs::read_to_string(parity_dir.join(format!("{name}.json"))).unwrap(),
    )
    .unwrap();
    let manifest = parity_dir.join(meta["manifest"].as_str().unwrap());
    let mut model = Model::load(&manifest, &cpu_runtime()).unwrap();
    assert_eq!(model.provider().primary, "cpu");
    assert!(model.provider().measured, "{:?}", model.provider());

    let frame = image::open(parity_dir.join(meta["frame"].as_str().unwrap()))
        .unwrap()
        .to_luma8();
    let (w, h) = model.input_size();
    let geom = CropGeometry {
        center_in_frame: [
            meta["center_in_frame"][0].as_f64().unwrap(),
            meta["center_in_frame"][1].as_f64().unwrap(),
        ],
        frame_scale: PixelScale {
            um_per_px_x: meta["um_per_px_x"].as_f64().unwrap(),
            um_per_px_y: meta["um_per_px_y"].as_f64().unwrap(),
        },
        crop_um_per_px: model.manifest().um_per_px,
        width: w,
        height: h,
    };
    let mut crop = Vec::new();
    geom.sample(
        &frame,
        find_content(&frame),
        &mut crop,
        &mut CropScratch::default(),
    );
    model.set_gray_input(&crop).unwrap();
    let files = &meta["files"];
    let want_input = read_f32(&parity_dir.join(files["input"].as_str().unwrap()));
    let d_input = max_abs_diff(model.input(), &want_input);
    model.run().unwrap();

    let mut report = vec![format!("input {d_input:.2e}")];
    assert!(d_input < 1e-5, "{name}: input tensor differs by {d_input}");
    for out in model.output_names().map(String::from).collect::<Vec<_>>() {
        let want = read_f32(&parity_dir.join(files[format!("output:{out}")].as_str().unwrap()));
        let d = max_abs_diff(model.output(&out).unwrap(), &want);
        report.push(format!("{out} {d:.2e}"));
        assert!(d < TOL, "{name}: output {out} differs by {d}");
    }
    let mut map = Vec::new();
    let mut scratch = anomaly::SmoothScratch::default();
    anomaly::build_map(
        model.manifest(),
        model.input(),
        |n| model.output(n),
        &mut map,
        &mut scratch,
    )
    .unwrap();
    let want_map = read_f32(&parity_dir.join(files["anomaly_map"].as_str().unwrap()));
    let d_map = max_abs_diff(&map, &want_map);
    report.push(format!("map {d_map:.2e}"));
    assert!(d_map < TOL, "{name}: anomaly map differs by {d_map}");
    let zone = anomaly::ContactZone::new(w, h, model.manifest().um_per_px, 125.0);
    let score = zone.mask_and_score(&mut map);
    let want_score = meta["image_score"].as_f64().unwrap() as f32;
    report.push(format!("image score {:.2e}", (score - want_score).abs()));
    assert!(
        (score - want_score).abs() < TOL,
        "{name}: image score {score} vs {want_score}"
    );
    eprintln!("parity {name}: max |rust - python|: {}", report.join(", "));
}

#[test]
fn reconstruction_model_matches_python() {
    check_parity("recon64");
}

#[test]
fn anomaly_map_model_matches_python() {
    check_parity("anomalib64");
}
