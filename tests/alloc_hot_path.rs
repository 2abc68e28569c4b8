//! Heap allocations per frame on the inspection hot path, after warm-up (issue 7: the budget
//! is zero in the steady state).
//!
//! A counting global allocator in this test binary counts, per thread, the allocations made
//! while a stage runs (so the test harness's other threads do not disturb the count), plus
//! all allocations on any thread (ONNX Runtime's own pools). Each stage of
//! `Inspector::inspect_located` is driven through its public API in the same order, then the
//! whole call. The model is the recon256 test fixture (or `$ENDFACE_BENCH_MANIFEST`).
//!
//! The daemon's hot path (capture → inspect → journal → lines) is measured the same way over
//! whole runs of the real `Daemon` (free-run, simulated GPIO, journal in a temp folder) with a
//! source that hands out copies of pre-rendered frames: allocations on all threads between the
//! 10th and the last result, per frame, with the marker inspector (the daemon's own cost) and
//! with the model inspector.
//!
//! `cargo test --test alloc_hot_path -- --nocapture` prints the tables. The test fails when a
//! stage that is allocation-free today starts allocating (crop sampling, input
//! normalization, contact-zone masking): a regression guard for the zero budget. Stages that
//! still allocate are listed in BENCHMARKS.md with file:line.

mod common;

use common::*;
use endface::anomaly::{self, ContactZone, DefectScratch};
use endface::config::StationConfig;
use endface::geometry::PixelScale;
use endface::grade::{self, Profile};
use endface::inspect::border::find_content;
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

/// Call-site recording (the ignored `allocation_sites` test): on while set.
static SITES_ON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static SITES: std::sync::Mutex<Option<std::collections::HashMap<String, u64>>> =
    std::sync::Mutex::new(None);
thread_local! {
    static IN_SITE: Cell<bool> = const { Cell::new(false) };
}

/// Record the innermost frame of this crate's `src/` on the current stack.
fn record_site() {
    let bt = std::backtrace::Backtrace::force_capture().to_string();
    let mut func = "";
    let mut site = None;
    for line in bt.lines() {
        let t = line.trim();
        if let Some(loc) = t.strip_prefix("at ") {
            if loc.contains("/src/") && !loc.contains("/rustc/") && !loc.contains(".cargo") {
                let loc = loc.rsplit_once("/src/").map_or(loc, |(_, l)| l);
                site = Some(format!("src/{loc}  ({func})"));
                break;
            }
        } else if let Some((_, f)) = t.split_once(": ") {
            func = f;
        }
    }
    let site = site.unwrap_or_else(|| "(outside src/: runtime or dependency thread)".into());
    if let Ok(mut m) = SITES.lock() {
        *m.get_or_insert_with(Default::default)
            .entry(site)
            .or_insert(0) += 1;
    }
}

fn note(size: usize) {
    ALL_THREADS.fetch_add(1, Ordering::Relaxed);
    if SITES_ON.load(Ordering::Relaxed) {
        let _ = IN_SITE.try_with(|g| {
            if !g.get() {
                g.set(true);
                record_site();
                g.set(false);
            }
        });
    }
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

/// Calls to the C allocator so far (all threads, Rust's own included), when
/// `scripts/malloc_count.c` is preloaded (`LD_PRELOAD`); `None` otherwise. ONNX Runtime and
/// SQLite allocate there, unseen by the Rust global allocator.
fn c_allocations() -> Option<u64> {
    // SAFETY: looking up a symbol by a NUL-terminated name; if found it is the shim's
    // `unsigned long endface_c_allocations(void)`.
    unsafe {
        let sym = libc::dlsym(libc::RTLD_DEFAULT, c"endface_c_allocations".as_ptr());
        if sym.is_null() {
            return None;
        }
        let f: extern "C" fn() -> libc::c_ulong = std::mem::transmute(sym);
        Some(f() as u64)
    }
}

/// Allocations (this thread), bytes (this thread) and allocations (all threads) made by `f`;
/// `c_side`: C allocator calls (all threads) that were not Rust's, with the shim preloaded.
#[derive(Debug, Default, Clone, Copy)]
struct Count {
    allocs: u64,
    bytes: u64,
    all_threads: u64,
    c_side: u64,
}

fn counted<R>(f: impl FnOnce() -> R) -> (R, Count) {
    COUNT.with(|c| c.set(0));
    BYTES.with(|b| b.set(0));
    let g0 = ALL_THREADS.load(Ordering::Relaxed);
    let c0 = c_allocations().unwrap_or(0);
    ON.with(|on| on.set(true));
    let r = f();
    ON.with(|on| on.set(false));
    let all_threads = ALL_THREADS.load(Ordering::Relaxed) - g0;
    let c = Count {
        allocs: COUNT.with(Cell::get),
        bytes: BYTES.with(Cell::get),
        all_threads,
        c_side: c_allocations().map_or(0, |c1| (c1 - c0).saturating_sub(all_threads)),
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

fn located(f: &Frame) -> endface::locate::Located {
    endface::locate::Located {
        center_in_frame: f.center,
        cladding_radius_px: f.radius_px[0],
        radius_y_px: f.radius_px[1],
        confidence: 0.99,
        focus: 1.0,
    }
}

const STAGES: [&str; 11] = [
    "locate (Locator::locate)",
    "crop sample",
    "normalize into input tensor",
    "model run (ONNX Runtime)",
    "anomaly map (+ smoothing)",
    "contact-zone mask + image score",
    "threshold + components + measure",
    "grade (grade_into)",
    "Inspector::inspect_located_into (whole)",
    "Inspector::inspect_into (whole, with locate)",
    "model run with 4 flips ([model] flips = 4)",
];

/// The two tests count allocations on all threads: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn inspect_hot_path_allocations_per_frame() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
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
    let mut features: Vec<grade::Feature> = Vec::new();
    let mut graded = grade::grade(&profile, &[]);
    let mut gscratch = grade::GradeScratch::default();
    let mut inspector = Inspector::new(&cfg, profile.clone()).unwrap();
    let mut inspection = endface::inspect::Inspection::default();
    let mut locator =
        endface::locate::Locator::new(endface::locate::LocateConfig::with_scale(scale)).unwrap();

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
        (_, c[0]) = counted(|| locator.locate(&f.img).unwrap());
        ((), c[1]) = counted(|| {
            let content = find_content(&f.img);
            geometry.sample(&f.img, content, &mut crop_px, &mut crop_scratch)
        });
        (_, c[2]) = counted(|| model.set_gray_input(&crop_px).unwrap());
        (_, c[3]) = counted(|| model.run().unwrap());
        (_, c[4]) = counted(|| {
            anomaly::build_map(
                model.manifest(),
                model.input(),
                |n| model.output(n),
                &mut map,
                &mut smooth,
            )
            .unwrap()
        });
        (_, c[5]) = counted(|| zone.mask_and_score(&mut map));
        ((), c[6]) = counted(|| {
            anomaly::extract_defects(&map, &zone, pixel_threshold, &mut dscratch, &mut defects)
        });
        features.clear();
        features.extend(defects.iter().map(|d| d.feature()));
        ((), c[7]) = counted(|| grade::grade_into(&profile, &features, &mut graded, &mut gscratch));
        last_defects = defects.len();
        let loc = located(f);
        (_, c[8]) = counted(|| {
            inspector
                .inspect_located_into(&f.img, &loc, &mut inspection)
                .unwrap()
        });
        (_, c[9]) = counted(|| inspector.inspect_into(&f.img, &mut inspection).unwrap());
        (_, c[10]) = counted(|| model.run_gray_flips(&crop_px, 4).unwrap());
        if i >= warmup {
            for (t, x) in totals.iter_mut().zip(c) {
                t.allocs += x.allocs;
                t.bytes += x.bytes;
                t.all_threads += x.all_threads;
                t.c_side += x.c_side;
            }
        }
    }
    println!(
        "heap allocations per frame after {warmup} warm-up frames (mean of {measured}; model {}; \
         last frame {last_defects} defects):",
        cfg.model.manifest.display()
    );
    let shim = c_allocations().is_some();
    println!(
        "| stage | allocations (this thread) | bytes (this thread) | allocations (all threads) |{}",
        if shim {
            " C allocator calls, not Rust's (all threads) |"
        } else {
            ""
        }
    );
    println!("|---|---|---|---|{}", if shim { "---|" } else { "" });
    let n = measured as f64;
    for (name, t) in STAGES.iter().zip(&totals) {
        let c = if shim {
            format!(" {:.1} |", t.c_side as f64 / n)
        } else {
            String::new()
        };
        println!(
            "| {name} | {:.1} | {:.0} | {:.1} |{c}",
            t.allocs as f64 / n,
            t.bytes as f64 / n,
            t.all_threads as f64 / n
        );
    }
    // Regression guard: every stage, and the whole inspection, allocates nothing after
    // warm-up (counted on this thread; ONNX Runtime's own C++ allocations do not go through
    // the Rust allocator).
    for i in 0..STAGES.len() {
        assert_eq!(
            totals[i].allocs, 0,
            "{} started allocating on the hot path",
            STAGES[i]
        );
    }
}

/// A non-live source that hands out copies of pre-rendered frames, copied into the pixels the
/// daemon hands back ([`Source::recycle`]) once it has some.
struct Canned {
    frames: Vec<GrayImage>,
    sequence: u64,
    spare: Vec<GrayImage>,
}

impl endface::capture::Source for Canned {
    fn name(&self) -> String {
        "canned frames".into()
    }
    fn is_live(&self) -> bool {
        false
    }
    fn open(&mut self) -> Result<(), endface::capture::CaptureError> {
        Ok(())
    }
    fn close(&mut self) {}
    fn recycle(&mut self, image: GrayImage) {
        if self.spare.len() < self.spare.capacity() {
            self.spare.push(image);
        }
    }
    fn next_frame(&mut self) -> Result<endface::capture::Frame, endface::capture::CaptureError> {
        let i = self.sequence as usize % self.frames.len();
        self.sequence += 1;
        let src = &self.frames[i];
        let image = match self.spare.pop() {
            Some(mut img) if img.dimensions() == src.dimensions() => {
                img.copy_from_slice(src);
                img
            }
            _ => src.clone(),
        };
        Ok(endface::capture::Frame {
            image,
            sequence: self.sequence,
            captured_mono_ns: endface::capture::monotonic_ns(),
            captured_unix_ns: endface::capture::unix_ns(),
            origin: None,
        })
    }
}

/// Which inspector the daemon runs, and whether failing frames are saved as PNG.
#[derive(Clone, Copy)]
struct Run {
    model: bool,
    /// `[journal] save_images`: "none" or "failing".
    save_images: &'static str,
    /// `[daemon] workers` (one inspector each).
    workers: usize,
}

/// Marker pixels of the canned frames for the marker inspector: PASS, FAIL, PASS, UNABLE
/// (see `daemon::marker`; no simulated inspector failures: that is a fault path).
const MARKERS: [u8; 4] = [0, 255, 0, 100];

/// Results before the steady state is measured: the recycled records and frames fill their
/// pools (one record or frame buffer per frame in flight, created when none is free) and
/// their buffers grow to the frames' needs.
const WARM_UP: usize = 20;

/// Allocations (all threads) per frame over results `WARM_UP`..n of a free-run daemon.
/// With `record_sites`, allocation call sites are recorded from that result to the end.
/// Returns Rust allocations per frame, C allocator calls per frame that were not Rust's (0
/// without the shim) and the run's summary.
fn daemon_allocs_per_frame(
    run: Run,
    n: u64,
    record_sites: bool,
) -> (f64, f64, endface::daemon::Summary) {
    use endface::actuate::{sim::SimBackend, Outputs};
    use endface::daemon::{Daemon, DaemonConfig, FrameInspector, ResultEvent, RunOptions};
    use std::sync::{Arc, Mutex};
    let dir = tempfile::tempdir().unwrap();
    let um = 0.5;
    let text = format!(
        "[station]\nname = \"alloc\"\nprofile = \"sm-upc\"\n[calibration]\num_per_px_x = {um}\num_per_px_y = {um}\n\
         [gpio]\nbackend = \"sim\"\nreject_delay_ms = 0\nreject_ms = 1\nstrobe_delay_ms = 0\nstrobe_ms = 1\n\
         [trigger]\nmode = \"free-run\"\nrate_hz = 1000\n[journal]\npath = \"journal.db\"\nsave_images = \"{}\"\n\
         [daemon]\ninspector = \"{}\"\nworkers = {}\n",
        run.save_images,
        if run.model { "model" } else { "marker" },
        run.workers
    );
    let cfg = DaemonConfig::from_toml_str(&text, "alloc.toml", dir.path()).unwrap();
    let inspector: Box<dyn FrameInspector> = if run.model {
        let mut station = StationConfig {
            runtime: cpu_runtime(),
            ..StationConfig::default()
        };
        station.model.manifest = manifest();
        station.calibration.um_per_px_x = um;
        station.calibration.um_per_px_y = um;
        Box::new(Inspector::new(&station, Profile::builtin("sm-upc").unwrap()).unwrap())
    } else {
        Box::new(endface::daemon::marker::MarkerInspector::new(
            std::time::Duration::ZERO,
        ))
    };
    let mut images: Vec<GrayImage> = frames(um).into_iter().map(|f| f.img).collect();
    if !run.model {
        for (img, m) in images.iter_mut().zip(MARKERS) {
            img.put_pixel(0, 0, image::Luma([m]));
        }
    }
    // The source's own pool of frame buffers (a V4L2 driver's buffers play this part).
    let spare = vec![images[0].clone(); 16];
    let source = Canned {
        frames: images,
        sequence: 0,
        spare,
    };
    let (backend, _rec) = SimBackend::from_config(&cfg.gpio).unwrap();
    let outputs = Outputs::new(Box::new(backend), &cfg.gpio);
    let mut d = Daemon::new(cfg, Box::new(source), inspector, outputs).unwrap();
    for _ in 1..run.workers {
        assert!(!run.model, "more workers: marker inspector only here");
        d.add_inspector(Box::new(endface::daemon::marker::MarkerInspector::new(
            std::time::Duration::ZERO,
        )))
        .unwrap();
    }
    // The allocation counters (Rust, C) at each result, stored without allocating.
    let marks: Arc<Mutex<Vec<(u64, u64)>>> =
        Arc::new(Mutex::new(Vec::with_capacity(n as usize + 8)));
    let m2 = marks.clone();
    let summary = d.run(RunOptions {
        max_inspections: Some(n),
        on_result: Some(Box::new(move |_e: &ResultEvent| {
            let now = (
                ALL_THREADS.load(Ordering::Relaxed),
                c_allocations().unwrap_or(0),
            );
            if let Ok(mut m) = m2.lock() {
                if m.len() < m.capacity() {
                    m.push(now);
                }
                if record_sites && m.len() == WARM_UP + 1 {
                    SITES_ON.store(true, Ordering::SeqCst);
                }
            }
        })),
        ..RunOptions::default()
    });
    SITES_ON.store(false, Ordering::SeqCst);
    let marks = marks.lock().unwrap().clone();
    assert!(marks.len() as u64 >= n.min(20), "{} results", marks.len());
    let (a, b) = (WARM_UP, marks.len() - 1);
    let per = |n: u64| n as f64 / (b - a) as f64;
    let rust = marks[b].0 - marks[a].0;
    let c_side = (marks[b].1 - marks[a].1).saturating_sub(rust);
    (per(rust), per(c_side), summary)
}

/// Bounds of the daemon's steady state, allocations per frame on all threads (BENCHMARKS.md,
/// "Heap allocations per frame"). Measured: 0.02 with the marker inspector and 0.02 with the
/// model, and none of it on the daemon's path: the simulated GPIO backend's in-memory log of
/// line changes (a growing `Vec`, amortized) is all there is. The margin is for such
/// stragglers; one allocation per frame anywhere on the path (or one per 10 frames) breaks it.
const MARKER_BOUND: f64 = 0.1;
const MODEL_BOUND: f64 = 0.1;

#[test]
fn daemon_hot_path_allocations_per_frame() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let runs = [
        (
            "marker (daemon only), save_images = none",
            Run {
                model: false,
                save_images: "none",
                workers: 1,
            },
            200,
        ),
        (
            "marker, save_images = failing (half the frames saved as PNG)",
            Run {
                model: false,
                save_images: "failing",
                workers: 1,
            },
            200,
        ),
        (
            "marker, 3 inspect workers (reorder window), save_images = none",
            Run {
                model: false,
                save_images: "none",
                workers: 3,
            },
            200,
        ),
        (
            "model, save_images = none",
            Run {
                model: true,
                save_images: "none",
                workers: 1,
            },
            200,
        ),
    ];
    let results: Vec<(f64, f64, endface::daemon::Summary)> = runs
        .iter()
        .map(|(_, run, n)| daemon_allocs_per_frame(*run, *n, false))
        .collect();
    println!(
        "daemon hot path, heap allocations per frame on all threads (steady state, results \
         {WARM_UP}..end):"
    );
    let shim = c_allocations().is_some();
    println!(
        "| run | allocations per frame | inspections | pass/fail/unable | frames saved |{}",
        if shim {
            " C allocator calls per frame, not Rust's |"
        } else {
            ""
        }
    );
    println!("|---|---|---|---|---|{}", if shim { "---|" } else { "" });
    for ((name, _, _), (a, c, s)) in runs.iter().zip(&results) {
        let c = if shim {
            format!(" {c:.2} |")
        } else {
            String::new()
        };
        println!(
            "| {name} | {a:.2} | {} | {}/{}/{} | {} |{c}",
            s.inspections, s.pass, s.fail, s.unable, s.images_saved
        );
    }
    let (marker, _, s) = &results[0];
    assert!(s.pass > 0 && s.fail > 0 && s.unable > 0, "{s:?}");
    assert!(
        *marker <= MARKER_BOUND,
        "daemon hot path (marker inspector) allocates {marker:.2} per frame, bound {MARKER_BOUND}"
    );
    let (workers, _, s) = &results[2];
    assert!(s.pass > 0 && s.fail > 0 && s.unable > 0, "{s:?}");
    assert!(
        *workers <= MARKER_BOUND,
        "daemon hot path with 3 inspect workers allocates {workers:.2} per frame, bound {MARKER_BOUND}"
    );
    let (model, _, s) = &results[3];
    assert_eq!(s.inspections, 200, "{s:?}");
    assert!(
        *model <= MODEL_BOUND,
        "daemon hot path (model inspector) allocates {model:.2} per frame, bound {MODEL_BOUND}"
    );
    // Saving a frame allocates (PNG encoder, file names, the image path's UPDATE); it must
    // still be bounded, and the run must have saved frames for this figure to mean anything.
    let (saving, _, s) = &results[1];
    assert!(s.images_saved > 0, "{s:?}");
    assert!(saving.is_finite());
}

/// Where the steady-state allocations come from: call sites (innermost frame in this crate's
/// src/) of the allocations during 30 marker-inspector daemon frames and 12 direct
/// `Inspector::inspect` calls, after warm-up. Slow (a backtrace per allocation):
/// `cargo test --test alloc_hot_path -- --ignored --nocapture allocation_sites`
#[test]
#[ignore]
fn allocation_sites() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dump = |title: &str, per: f64| {
        let mut m = SITES.lock().unwrap().take().unwrap_or_default();
        let mut v: Vec<(String, u64)> = m.drain().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        println!("{title}");
        for (site, n) in v.iter().take(40) {
            println!("  {:>7.2}/frame  {site}", *n as f64 / per);
        }
    };
    // Inspector, direct.
    let um = 0.5;
    let mut cfg = StationConfig {
        runtime: cpu_runtime(),
        ..StationConfig::default()
    };
    cfg.model.manifest = manifest();
    cfg.calibration.um_per_px_x = um;
    cfg.calibration.um_per_px_y = um;
    let mut inspector = Inspector::new(&cfg, Profile::builtin("sm-upc").unwrap()).unwrap();
    let mut inspection = endface::inspect::Inspection::default();
    let fr = frames(um);
    for f in fr.iter().cycle().take(8) {
        inspector.inspect_into(&f.img, &mut inspection).unwrap();
    }
    SITES_ON.store(true, Ordering::SeqCst);
    for f in fr.iter().cycle().take(12) {
        inspector.inspect_into(&f.img, &mut inspection).unwrap();
    }
    SITES_ON.store(false, Ordering::SeqCst);
    dump(
        "Inspector::inspect_into (locate included), allocations per frame by call site:",
        12.0,
    );
    // Daemon with the marker inspector, results 11..=40 (the run's end, after the last
    // result, is included: summary and shutdown).
    for (title, run) in [
        (
            "marker inspector, save_images = none",
            Run {
                model: false,
                save_images: "none",
                workers: 1,
            },
        ),
        (
            "marker inspector, save_images = failing",
            Run {
                model: false,
                save_images: "failing",
                workers: 1,
            },
        ),
        (
            "model inspector, save_images = none",
            Run {
                model: true,
                save_images: "none",
                workers: 1,
            },
        ),
    ] {
        let _ = daemon_allocs_per_frame(run, 60, true);
        dump(
            &format!(
                "daemon ({title}), allocations per frame by call site (results {}..60):",
                WARM_UP + 1
            ),
            (60 - WARM_UP) as f64,
        );
    }
}
