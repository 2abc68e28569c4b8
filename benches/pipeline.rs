//! Criterion benchmarks of every inspection stage and of the whole frame → verdict path.
//!
//! Run: `cargo bench --bench pipeline` (all) or `cargo bench --bench pipeline -- convert`
//! (one group: convert, condition, locate, crop, model, anomaly, grade, overlay, e2e). Frames come from
//! `endface::synth` at 640x480 and 1152x864 (µm/px chosen so the 250 µm contact zone is 80 %
//! of the frame height). The model is `$ENDFACE_BENCH_MANIFEST`, else the shipped model, else
//! the untrained stand-in of scripts/make_bench_model.py, else the recon256 test fixture (the
//! chosen one is printed); ONNX Runtime on the CPU with `$ENDFACE_BENCH_THREADS` intra-op
//! threads (default 1). Results and the machine they came from: BENCHMARKS.md.

mod common;

use common::*;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use endface::anomaly::{self, ContactZone, DefectScratch};
use endface::config::StationConfig;
use endface::geometry::PixelScale;
use endface::grade::{grade, Feature, FeatureKind, Profile};
use endface::inspect::border::find_content;
use endface::inspect::crop::{CropGeometry, CropScratch};
use endface::inspect::Inspector;
use endface::locate::Located;
use endface::model::Model;
use image::GrayImage;
use std::hint::black_box;

fn convert(c: &mut Criterion) {
    let mut g = c.benchmark_group("convert");
    for (w, h) in SIZES {
        let (frame, _) = synth_frame(w, h, 1);
        let id = format!("{w}x{h}");
        g.throughput(Throughput::Elements(u64::from(w) * u64::from(h)));
        let (yuyv, stride) = to_yuyv(&frame, 64);
        let mut dst = flat(w, h, 0);
        g.bench_with_input(BenchmarkId::new("yuyv_to_gray", &id), &yuyv, |b, src| {
            b.iter(|| yuyv_to_gray(black_box(src), w, h, stride, &mut dst).unwrap())
        });
        let grey = frame.as_raw().clone();
        g.bench_with_input(BenchmarkId::new("grey_copy", &id), &grey, |b, src| {
            b.iter(|| grey_copy(black_box(src), w, h, w as usize, &mut dst).unwrap())
        });
        let jpeg = to_mjpeg(&frame, 85);
        g.bench_with_input(BenchmarkId::new("mjpeg_to_gray", &id), &jpeg, |b, src| {
            b.iter(|| mjpeg_to_gray(black_box(src), w, h, &mut dst).unwrap())
        });
        // The obvious alternative: image's decoder to RGB, then to luma (allocates twice).
        g.bench_with_input(
            BenchmarkId::new("mjpeg_image_crate_to_luma8", &id),
            &jpeg,
            |b, src| {
                b.iter(|| -> GrayImage {
                    image::load_from_memory_with_format(black_box(src), image::ImageFormat::Jpeg)
                        .unwrap()
                        .to_luma8()
                })
            },
        );
    }
    g.finish();
}

/// One benchmark frame with its true fiber position and the station config for its scale.
struct BenchFrame {
    id: String,
    img: GrayImage,
    loc: Located,
    cfg: StationConfig,
}

fn bench_frames() -> Vec<BenchFrame> {
    SIZES
        .iter()
        .map(|&(w, h)| {
            let (img, t) = synth_frame(w, h, 1);
            let um = synth_um_per_px(h);
            let mut cfg = StationConfig {
                runtime: bench_runtime(),
                ..StationConfig::default()
            };
            cfg.model.manifest = bench_manifest();
            cfg.calibration.um_per_px_x = um;
            cfg.calibration.um_per_px_y = um;
            BenchFrame {
                id: format!("{w}x{h}"),
                img,
                loc: Located {
                    center_in_frame: t.center_in_frame,
                    cladding_radius_px: t.cladding_radius_px,
                    radius_y_px: t.cladding_radius_px_y(),
                    confidence: 0.99,
                    focus: 1.0,
                },
                cfg,
            }
        })
        .collect()
}

/// Crop + normalize, model run, anomaly map, components: stage by stage through the public
/// API, in `Inspector::inspect_located`'s order.
fn stages(c: &mut Criterion) {
    let frames = bench_frames();
    let profile = Profile::builtin("sm-upc").unwrap();
    let mut model = Model::load(&frames[0].cfg.model.manifest, &frames[0].cfg.runtime).unwrap();
    eprintln!(
        "model {} ({}), ONNX Runtime provider {}",
        model.manifest_path().display(),
        model.manifest().name,
        model.provider().summary()
    );
    let (w, h) = model.input_size();
    let crop_um = model.manifest().um_per_px;
    let zone = ContactZone::new(w, h, crop_um, profile.contact_radius_um());
    let pixel_threshold = model.manifest().thresholds.pixel as f32;
    let mut crop_px = Vec::with_capacity(w * h);
    let mut crop_scratch = CropScratch::default();

    let mut g = c.benchmark_group("crop");
    for f in &frames {
        let geometry = CropGeometry {
            center_in_frame: f.loc.center_in_frame,
            frame_scale: f.cfg.calibration.pixel_scale(),
            crop_um_per_px: crop_um,
            width: w,
            height: h,
        };
        g.bench_function(BenchmarkId::new("sample+normalize", &f.id), |b| {
            b.iter(|| {
                let content = find_content(black_box(&f.img));
                geometry.sample(black_box(&f.img), content, &mut crop_px, &mut crop_scratch);
                model.set_gray_input(&crop_px).unwrap();
            })
        });
    }
    g.finish();

    // Leave the 640x480 frame's crop in the input for the later stages.
    let f = &frames[0];
    CropGeometry {
        center_in_frame: f.loc.center_in_frame,
        frame_scale: f.cfg.calibration.pixel_scale(),
        crop_um_per_px: crop_um,
        width: w,
        height: h,
    }
    .sample(
        &f.img,
        find_content(&f.img),
        &mut crop_px,
        &mut crop_scratch,
    );
    model.set_gray_input(&crop_px).unwrap();

    // the contact zone's exposure, measured on every crop (part of the crop stage)
    let mut g = c.benchmark_group("crop");
    let view = endface::anomaly::CropRect::full(w, h);
    g.bench_function("exposure", |b| {
        b.iter(|| endface::inspect::exposure::assess(black_box(&crop_px), &zone, &view))
    });
    g.finish();

    let mut g = c.benchmark_group("model");
    g.sample_size(10);
    g.bench_function(BenchmarkId::new("run", format!("{}x{}", w, h)), |b| {
        b.iter(|| model.run().unwrap())
    });
    g.finish();

    model.run().unwrap();
    let mut map = Vec::with_capacity(w * h);
    let mut smooth = anomaly::SmoothScratch::default();
    // the map once before the group, so that each benchmark below also runs alone (a filter
    // that skips "map+smooth+mask" would leave the components an empty map)
    anomaly::build_map(
        model.manifest(),
        model.input(),
        |n| model.output(n),
        &mut map,
        &mut smooth,
    )
    .unwrap();
    zone.mask_and_score(&mut map);
    let mut g = c.benchmark_group("anomaly");
    g.bench_function("map+smooth+mask", |b| {
        b.iter(|| {
            anomaly::build_map(
                model.manifest(),
                model.input(),
                |n| model.output(n),
                &mut map,
                &mut smooth,
            )
            .unwrap();
            zone.mask_and_score(&mut map)
        })
    });
    // Components on this frame's map, and on a map with synthetic blobs (so the labelling
    // and measurement have work whatever the model).
    let mut dscratch = DefectScratch::default();
    let mut defects = Vec::new();
    g.bench_function("components/model_map", |b| {
        b.iter(|| {
            anomaly::extract_defects(&map, &zone, pixel_threshold, &mut dscratch, &mut defects)
        })
    });
    let mut blobs = vec![0.0f32; w * h];
    for k in 0..12usize {
        let (cu, cv) = (w / 4 + (k * 37) % (w / 2), h / 4 + (k * 53) % (h / 2));
        for v in cv.saturating_sub(3)..(cv + 3).min(h) {
            let len = if k % 3 == 0 { 40 } else { 6 };
            for u in cu.saturating_sub(3)..(cu + len).min(w) {
                blobs[v * w + u] = 0.9;
            }
        }
    }
    g.bench_function("components/12_blobs", |b| {
        b.iter(|| {
            anomaly::extract_defects(&blobs, &zone, 0.5, &mut dscratch, &mut defects);
        })
    });
    // rings about the axis (`inspect::rings`, part of the anomaly stage): on this frame's map,
    // and on a map whose whole cladding edge is lit (a rim the model never saw) with 12 blobs
    let mut rings = endface::inspect::rings::Rings::new();
    g.bench_function("rings/model_map", |b| {
        b.iter_batched_ref(
            || map.clone(),
            |m| rings.remove(m, w, h, crop_um, zone.radius_um),
            criterion::BatchSize::LargeInput,
        )
    });
    let mut lit = blobs.clone();
    let (cu, cv) = anomaly::crop_center(w, h);
    for v in 0..h {
        for u in 0..w {
            let r = (u as f64 - cu).hypot(v as f64 - cv) * crop_um;
            if (61.0..64.0).contains(&r) {
                lit[v * w + u] = 0.97;
            }
        }
    }
    zone.mask_and_score(&mut lit);
    g.bench_function("rings/lit_edge", |b| {
        b.iter_batched_ref(
            || lit.clone(),
            |m| rings.remove(m, w, h, crop_um, zone.radius_um),
            criterion::BatchSize::LargeInput,
        )
    });
    // the cladding-edge scan on this frame's crop (part of the anomaly stage)
    let mut ring = endface::inspect::edge_ring::EdgeRing::new();
    let radius_um = f.loc.cladding_radius_px * f.cfg.calibration.pixel_scale().um_per_px_x;
    g.bench_function("edge_scan", |b| {
        b.iter(|| {
            let step = endface::inspect::edge_ring::grey_step(
                &f.img,
                f.loc.center_in_frame,
                f.loc.cladding_radius_px,
            );
            ring.scan(black_box(&crop_px), (w, h), crop_um, radius_um, step, &view)
        })
    });
    // a posterized crop's steps smoothed (`inspect::dequant`, crop stage; only at camera
    // steps of 3 or more): this frame's crop at a 5-bit camera's step of 8
    let mut deq = endface::inspect::dequant::Dequantizer::default();
    g.bench_function("dequant/step8", |b| {
        b.iter_batched_ref(
            || crop_px.clone(),
            |px| deq.apply(px, w, h, 8.0),
            criterion::BatchSize::LargeInput,
        )
    });
    // ferrule grain (`inspect::grain`, anomaly stage; only with a zone-D spot): one 12 µm
    // spot 95 µm off the axis on this frame's model input
    let mut spot_map = vec![0.0f32; w * h];
    let r_px = 95.0 / crop_um;
    for v in 0..h {
        for u in 0..w {
            if (u as f64 - cu - r_px).hypot(v as f64 - cv) <= 9.0 {
                spot_map[v * w + u] = 0.99;
            }
        }
    }
    let (mut spot_scratch, mut spot_defects) = (DefectScratch::default(), Vec::new());
    anomaly::extract_defects(&spot_map, &zone, 0.5, &mut spot_scratch, &mut spot_defects);
    let mut grain = endface::inspect::grain::Grain::new();
    let crop = endface::inspect::grain::CropView {
        input: model.input(),
        map: &spot_map,
        width: w,
        height: h,
        um_per_px: crop_um,
        in_view: view,
    };
    g.bench_function("grain/zone_d_spot", |b| {
        b.iter_batched_ref(
            || spot_defects.clone(),
            |d| grain.remove(d, &crop, 67.5, &spot_scratch),
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn locating(c: &mut Criterion) {
    let frames = bench_frames();
    let mut g = c.benchmark_group("locate");
    for f in &frames {
        let mut locator = endface::locate::Locator::new(endface::locate::LocateConfig::with_scale(
            f.cfg.calibration.pixel_scale(),
        ))
        .unwrap();
        let got = locator.locate(&f.img).unwrap();
        let err = (got.center_in_frame[0] - f.loc.center_in_frame[0])
            .hypot(got.center_in_frame[1] - f.loc.center_in_frame[1]);
        eprintln!("locate {}: centre off by {err:.2} px", f.id);
        g.bench_function(BenchmarkId::new("with_scale", &f.id), |b| {
            b.iter(|| locator.locate(black_box(&f.img)).unwrap())
        });
    }
    // A frame the regular passes refuse and the rescue locates (`Locator::rescue`): glass and
    // ferrule equally bright, the edge only a dark line, under vignetting — what a refusal
    // that ends located costs on top of the regular passes.
    let (img, scale) = line_only_edge_frame();
    let mut locator =
        endface::locate::Locator::new(endface::locate::LocateConfig::with_scale(scale)).unwrap();
    let got = locator.locate(&img).unwrap();
    let rescued = locator.last_diagnostics().and_then(|d| d.rescued);
    eprintln!(
        "locate line-only edge: centre off by {:.2} px, rescued {rescued:?}",
        (got.center_in_frame[0] - 339.5).hypot(got.center_in_frame[1] - 287.2)
    );
    assert!(
        rescued.is_some(),
        "the line-only frame should need the rescue"
    );
    g.bench_function("rescued_line_edge_640x480", |b| {
        b.iter(|| locator.locate(black_box(&img)).unwrap())
    });
    g.finish();
}

/// 640x480 at 0.47 µm/px: a fiber as bright as its ferrule (100 gray levels, vignetting 0.45)
/// whose edge is only a dark line 25 levels deep (Gaussian, σ 1 px, 1.3 px inside the
/// cladding radius), read noise ~2 levels.
fn line_only_edge_frame() -> (image::GrayImage, endface::geometry::PixelScale) {
    let upx = 0.47;
    let (cx, cy, r) = (339.5, 287.2, 62.5 / upx);
    let (w, h) = (640u32, 480u32);
    let diag = (f64::from(w) / 2.0).hypot(f64::from(h) / 2.0);
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut noise = move || {
        // Sum of four uniforms: roughly Gaussian, σ ≈ 2 levels.
        (0..4)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
            })
            .sum::<f64>()
            * 3.46
    };
    let img = image::GrayImage::from_fn(w, h, |x, y| {
        let (fx, fy) = (f64::from(x), f64::from(y));
        let d = (fx - cx).hypot(fy - cy) - (r - 1.3);
        let rf = (fx - f64::from(w) / 2.0).hypot(fy - f64::from(h) / 2.0) / diag;
        let v = 100.0 * (1.0 - 0.45 * rf * rf) - 25.0 * (-0.5 * d * d).exp() + noise();
        image::Luma([v.round().clamp(0.0, 255.0) as u8])
    });
    (img, endface::geometry::PixelScale::square(upx))
}

/// The frame's conditioning before it is located (`Inspector::conditioned`): the stuck-pixel
/// scan, the band / stripe measurement and the whole-frame bright level, on a clean frame
/// (nothing found, nothing copied: the cost every frame pays).
fn conditioning(c: &mut Criterion) {
    let frames = bench_frames();
    let mut g = c.benchmark_group("condition");
    let mut clean = GrayImage::new(1, 1);
    let mut striped = GrayImage::new(1, 1);
    let mut destriper = endface::inspect::destripe::Destriper::default();
    for f in &frames {
        assert_eq!(
            endface::inspect::hotpixel::correct_into(&f.img, &mut clean),
            0
        );
        g.bench_function(BenchmarkId::new("stuck_pixels", &f.id), |b| {
            b.iter(|| endface::inspect::hotpixel::correct_into(black_box(&f.img), &mut clean))
        });
        g.bench_function(BenchmarkId::new("bands", &f.id), |b| {
            b.iter(|| destriper.correct_into(black_box(&f.img), &mut striped))
        });
        g.bench_function(BenchmarkId::new("bright_level", &f.id), |b| {
            b.iter(|| endface::inspect::exposure::frame_bright_level(black_box(&f.img)))
        });
    }
    g.finish();
}

fn grading(c: &mut Criterion) {
    let mut g = c.benchmark_group("grade");
    let profile = Profile::builtin("sm-upc").unwrap();
    for n in [0usize, 3, 12] {
        let features: Vec<Feature> = (0..n)
            .map(|i| Feature {
                kind: if i % 3 == 0 {
                    FeatureKind::Scratch
                } else {
                    FeatureKind::Defect
                },
                size_um: 1.0 + i as f64,
                inner_radius_um: 5.0 + 9.0 * i as f64,
            })
            .collect();
        g.bench_with_input(
            BenchmarkId::new("sm-upc", format!("{n}_features")),
            &features,
            |b, f| b.iter(|| grade(&profile, black_box(f))),
        );
    }
    g.finish();
}

/// Overlay and the whole frame → verdict path (YUYV conversion + locate + inspect).
fn whole(c: &mut Criterion) {
    let frames = bench_frames();
    let profile = Profile::builtin("sm-upc").unwrap();
    let mut g = c.benchmark_group("e2e");
    g.sample_size(10);
    let mut overlay_cases = Vec::new();
    for f in &frames {
        let mut inspector = Inspector::new(&f.cfg, profile.clone()).unwrap();
        let (w, h) = f.img.dimensions();
        let (yuyv, stride) = to_yuyv(&f.img, 0);
        let mut gray = flat(w, h, 0);
        g.bench_function(BenchmarkId::new("yuyv+inspect", &f.id), |b| {
            b.iter(|| {
                yuyv_to_gray(&yuyv, w, h, stride, &mut gray).unwrap();
                inspector.inspect(&gray).unwrap()
            })
        });
        let insp = inspector.inspect(&f.img).unwrap();
        eprintln!(
            "e2e {}: verdict {:?}, {} defects, timings {:?}",
            f.id,
            insp.verdict,
            insp.defects.len(),
            insp.timings_ms
        );
        let labels = inspector.labels_in_crop().to_vec();
        overlay_cases.push((f, insp, labels));
    }
    g.finish();
    let mut g = c.benchmark_group("overlay");
    for (f, insp, labels) in &overlay_cases {
        let scale: PixelScale = f.cfg.calibration.pixel_scale();
        g.bench_function(BenchmarkId::new("render", &f.id), |b| {
            b.iter(|| endface::overlay::render(&f.img, insp, Some(labels), &profile, scale))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = convert, conditioning, locating, stages, grading, whole
}
criterion_main!(benches);
