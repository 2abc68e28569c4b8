//! Criterion benchmarks of every inspection stage and of the whole frame → verdict path.
//!
//! Run: `cargo bench --bench pipeline` (all) or `cargo bench --bench pipeline -- convert`
//! (a group). Frames come from `endface::synth` at 640x480 and 1152x864. Results and the
//! machine they came from: BENCHMARKS.md.

mod common;

use common::{flat, grey_copy, mjpeg_to_gray, synth_frame, to_mjpeg, to_yuyv, yuyv_to_gray, SIZES};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use endface::grade::{grade, Feature, FeatureKind, Profile};
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

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = convert, grading
}
criterion_main!(benches);
