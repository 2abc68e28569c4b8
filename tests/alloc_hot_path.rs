//! Heap allocations per frame on the inspection hot path, after warm-up (issue 7: the budget
//! is zero in the steady state).
//!
//! A counting global allocator in this test binary counts, per thread, the allocations made
//! while a stage runs (so the test harness's other threads do not disturb the count), plus
//! all allocations on any thread (ONNX Runtime's own pools). Each stage of
//! `Inspector::inspect_located` is driven through its public API in the same order, then the
//! whole call. The model is the recon256 test fixture (or `$ENDFACE_BENCH_MANIFEST`).
//!
//! `cargo test --test alloc_hot_path -- --nocapture` prints the table. The test fails when a
//! stage that is allocation-free today starts allocating (crop sampling, input
//! normalization, contact-zone masking): a regression guard for the zero budget. Stages that
//! still allocate are listed in BENCHMARKS.md with file:line.

mod common;

use common::*;
use endface::anomaly::{self, ContactZone, DefectScratch};
use endface::config::StationConfig;
use endface::geometry::PixelScale;
use endface::grade::{self, Profile};
use endface::inspect::crop::{CropGeometry, CropScratch};
use endface::inspect::Inspector;
use endface::model::Model;
use endface::synth::{render_content, Content, DefectKind, FiberProfile, SynthConfig};
use image::GrayImage;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

struct Counting;
static ALL_THREADS: AtomicU64 = AtomicU64::new(0);
thread_local! {
    static ON: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<u64> = const { Cell::new(0) };
    static BYTES: Cell<u64> = const { Cell::new(0) };
}

fn note(size: usize) {
    ALL_THREADS.fetch_add(1, Ordering::Relaxed);
    let _ = ON.try_with(|on| {
        if on.get() {
            let _ = COUNT.try_with(|c| c.set(c.get() + 1));
            let _ = BYTES.try_with(|b| b.set(b.get() + size as u64));
        }
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        note(l.size());
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        note(l.size());
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        note(n);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// Allocations (this thread), bytes (this thread) and allocations (all threads) made by `f`.
#[derive(Debug, Default, Clone, Copy)]
struct Count {
    allocs: u64,
    bytes: u64,
    all_threads: u64,
}

fn counted<R>(f: impl FnOnce() -> R) -> (R, Count) {
    COUNT.with(|c| c.set(0));
    BYTES.with(|b| b.set(0));
    let g0 = ALL_THREADS.load(Ordering::Relaxed);
    ON.with(|on| on.set(true));
    let r = f();
    ON.with(|on| on.set(false));
    let c = Count {
        allocs: COUNT.with(Cell::get),
        bytes: BYTES.with(Cell::get),
        all_threads: ALL_THREADS.load(Ordering::Relaxed) - g0,
    };
    (r, c)
}

fn manifest() -> PathBuf {
    std::env::var_os("ENDFACE_BENCH_MANIFEST")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| fixture("recon256.manifest.json"))
}

struct Frame {
    img: GrayImage,
    center: [f64; 2],
    radius_px: [f64; 2],
}

fn frames(scale: f64) -> Vec<Frame> {
    let cfg = SynthConfig {
        width: 640,
        height: 480,
        fiber: Some(FiberProfile::SmUpc),
        um_per_px: Some(scale),
        aspect_y_over_x: Some(1.0),
        jpeg_prob: 0.0,
        defect_prob: 0.5,
    };
    [
        Content::Good,
        Content::Defect(DefectKind::Pit),
        Content::Defect(DefectKind::Scratch),
        Content::Defect(DefectKind::Contamination),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, c)| {
        let (img, t) = render_content(&cfg, 100 + i as u64, c);
        Frame {
            img,
            center: t.center_in_frame,
            radius_px: [t.cladding_radius_px, t.cladding_radius_px_y()],
        }
    })
    .collect()
}

fn located(f: &Frame) -> endface::inspect::shim::locate::Located {
    endface::inspect::shim::locate::Located {
        center_in_frame: f.center,
        cladding_radius_px: f.radius_px[0],
        radius_y_px: f.radius_px[1],
        confidence: 0.99,
        focus: 1.0,
    }
}

const STAGES: [&str; 8] = [
    "crop sample",
    "normalize into input tensor",
    "model run (ONNX Runtime)",
    "anomaly map (+ smoothing)",
    "contact-zone mask + image score",
    "threshold + components + measure",
    "grade",
    "Inspector::inspect_located (whole)",
];

#[test]
fn inspect_hot_path_allocations_per_frame() {
    let um_per_px = 0.5;
    let scale = PixelScale {
        um_per_px_x: um_per_px,
        um_per_px_y: um_per_px,
    };
    let mut cfg = StationConfig {
        runtime: cpu_runtime(),
        ..StationConfig::default()
    };
    cfg.model.manifest = manifest();
    cfg.calibration.um_per_px_x = um_per_px;
    cfg.calibration.um_per_px_y = um_per_px;
    let profile = Profile::builtin("sm-upc").unwrap();
    let frames = frames(um_per_px);

    // Stage by stage, through the public API, as Inspector::inspect_located does it.
    let mut model = Model::load(&cfg.model.manifest, &cfg.runtime).unwrap();
    let (w, h) = model.input_size();
    let crop_um = model.manifest().um_per_px;
    let zone = ContactZone::new(w, h, crop_um, profile.contact_radius_um());
    let pixel_threshold = model.manifest().thresholds.pixel as f32;
    let mut crop_px = Vec::with_capacity(w * h);
    let mut crop_scratch = CropScratch::default();
    let mut map = Vec::with_capacity(w * h);
    let mut smooth = anomaly::SmoothScratch::default();
    let mut dscratch = DefectScratch::default();
    let mut defects = Vec::new();
    let mut inspector = Inspector::new(&cfg, profile.clone()).unwrap();

    let warmup = 2 * frames.len();
    let measured = 3 * frames.len();
    let mut totals = [Count::default(); STAGES.len()];
    let mut last_defects = 0;
    for i in 0..warmup + measured {
        let f = &frames[i % frames.len()];
        let geometry = CropGeometry {
            center_in_frame: f.center,
            frame_scale: scale,
            crop_um_per_px: crop_um,
            width: w,
            height: h,
        };
        let mut c = [Count::default(); STAGES.len()];
        ((), c[0]) = counted(|| geometry.sample(&f.img, &mut crop_px, &mut crop_scratch));
        (_, c[1]) = counted(|| model.set_gray_input(&crop_px).unwrap());
        (_, c[2]) = counted(|| model.run().unwrap());
        (_, c[3]) = counted(|| {
            anomaly::build_map(
                model.manifest(),
                model.input(),
                |n| model.output(n),
                &mut map,
                &mut smooth,
            )
            .unwrap()
        });
        (_, c[4]) = counted(|| zone.mask_and_score(&mut map));
        ((), c[5]) = counted(|| {
            anomaly::extract_defects(&map, &zone, pixel_threshold, &mut dscratch, &mut defects)
        });
        let features: Vec<grade::Feature> = defects.iter().map(|d| d.feature()).collect();
        (_, c[6]) = counted(|| grade::grade(&profile, &features));
        last_defects = defects.len();
        let loc = located(f);
        (_, c[7]) = counted(|| inspector.inspect_located(&f.img, &loc).unwrap());
        if i >= warmup {
            for (t, x) in totals.iter_mut().zip(c) {
                t.allocs += x.allocs;
                t.bytes += x.bytes;
                t.all_threads += x.all_threads;
            }
        }
    }
    println!(
        "heap allocations per frame after {warmup} warm-up frames (mean of {measured}; model {}; \
         last frame {last_defects} defects):",
        cfg.model.manifest.display()
    );
    println!(
        "| stage | allocations (this thread) | bytes (this thread) | allocations (all threads) |"
    );
    println!("|---|---|---|---|");
    let n = measured as f64;
    for (name, t) in STAGES.iter().zip(&totals) {
        println!(
            "| {name} | {:.1} | {:.0} | {:.1} |",
            t.allocs as f64 / n,
            t.bytes as f64 / n,
            t.all_threads as f64 / n
        );
    }
    // Regression guard: these stages allocate nothing today.
    for i in [0, 1, 4] {
        assert_eq!(
            totals[i].allocs, 0,
            "{} started allocating on the hot path",
            STAGES[i]
        );
    }
}
