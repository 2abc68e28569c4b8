//! Benchmark (ignored in the suite; not a timed test): 640x480 synthetic frames through the
//! whole inspector, per-stage latency percentiles printed.
//!
//! ```sh
//! scripts/setup-ort.sh
//! cargo test --release --test inspect_bench -- --ignored --nocapture
//! # the shipped model instead of the test fixture, 200 frames:
//! ENDFACE_BENCH_MANIFEST=models/endface-student.manifest.json ENDFACE_BENCH_FRAMES=200 \
//!     cargo test --release --test inspect_bench -- --ignored --nocapture
//! ```
//! Set `ENDFACE_BENCH_PROVIDERS=tensorrt,cuda,cpu` (and `ENDFACE_ORT_LIB` to a GPU build) to
//! benchmark an accelerator.

mod common;

use common::*;
use endface::config::{ProviderKind, StationConfig};
use endface::grade::Profile;
use endface::inspect::Inspector;
use endface::metrics::percentile_sorted;
use endface::synth::{render_content, Content, SynthConfig};

#[test]
#[ignore = "benchmark: run with --ignored --nocapture (see file doc)"]
fn bench_inspect_640x480() {
    let frames: usize = std::env::var("ENDFACE_BENCH_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let manifest = std::env::var("ENDFACE_BENCH_MANIFEST")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| fixture("recon256.manifest.json"));
    let mut runtime = cpu_runtime();
    runtime.intra_threads = 0;
    if let Ok(p) = std::env::var("ENDFACE_BENCH_PROVIDERS") {
        runtime.providers = p
            .split(',')
            .map(|s| match s.trim() {
                "tensorrt" => ProviderKind::Tensorrt,
                "cuda" => ProviderKind::Cuda,
                _ => ProviderKind::Cpu,
            })
            .collect();
    }
    let um_per_px = 0.5;
    let synth = SynthConfig {
        um_per_px: Some(um_per_px),
        aspect_y_over_x: Some(1.0),
        jpeg_prob: 0.0,
        ..SynthConfig::default()
    };
    let mut cfg = StationConfig {
        runtime,
        ..StationConfig::default()
    };
    cfg.model.manifest = manifest.clone();
    cfg.calibration.um_per_px_x = um_per_px;
    cfg.calibration.um_per_px_y = um_per_px;
    let mut insp = Inspector::new(&cfg, Profile::builtin("sm-upc").unwrap()).unwrap();
    let imgs: Vec<_> = (0..frames.min(20))
        .map(|i| render_content(&synth, 1000 + i as u64, Content::Good).0)
        .collect();
    // Warm-up beyond the load-time run.
    for f in imgs.iter().take(3) {
        insp.inspect(f).unwrap();
    }
    let mut stages: Vec<(&str, Vec<f64>)> =
        ["locate", "crop", "infer", "anomaly", "grade", "total"]
            .iter()
            .map(|s| (*s, Vec::new()))
            .collect();
    let mut unable = 0;
    for i in 0..frames {
        let r = insp.inspect(&imgs[i % imgs.len()]).unwrap();
        if r.image_score.is_none() {
            unable += 1;
        }
        let t = r.timings_ms;
        for (name, v) in stages.iter_mut() {
            v.push(match *name {
                "locate" => t.locate,
                "crop" => t.crop,
                "infer" => t.infer,
                "anomaly" => t.anomaly,
                "grade" => t.grade,
                _ => t.total,
            });
        }
    }
    eprintln!(
        "inspect 640x480, model {} on {}, {frames} frames ({unable} unable):",
        manifest.display(),
        insp.model().provider().summary()
    );
    eprintln!("  stage     p50 ms   p90 ms   p99 ms   max ms");
    for (name, mut v) in stages {
        v.sort_unstable_by(f64::total_cmp);
        eprintln!(
            "  {name:<8} {:>7.2}  {:>7.2}  {:>7.2}  {:>7.2}",
            percentile_sorted(&v, 50.0),
            percentile_sorted(&v, 90.0),
            percentile_sorted(&v, 99.0),
            v[v.len() - 1]
        );
    }
}
