//! The drift monitor's periodic test allocates nothing once warmed up (a counting global
//! allocator in this test binary; one test only, so no other thread allocates meanwhile).

use endface::drift::{DriftConfig, DriftMonitor, FrameFeatures, ReferenceFile, N_FEATURES};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn frame(rng: &mut ChaCha8Rng) -> FrameFeatures {
    let mut f = [f32::NAN; N_FEATURES];
    for v in f.iter_mut().take(12) {
        *v = rng.gen_range(0.0..10.0);
    }
    f
}

#[test]
fn monitor_tests_do_not_allocate_and_reference_round_trips() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let reference: Vec<FrameFeatures> = (0..150).map(|_| frame(&mut rng)).collect();
    // The reference file round-trips, NaN slots included.
    let file = ReferenceFile::from_features(&reference);
    let json = serde_json::to_string(&file).unwrap();
    let back: ReferenceFile = serde_json::from_str(&json).unwrap();
    let again = back.to_features().unwrap();
    assert_eq!(again.len(), reference.len());
    assert!(again[0][..12] == reference[0][..12] && again[0][12].is_nan());
    let mut renamed = back.clone();
    renamed.feature_names[0] = "something_else".into();
    assert!(renamed.to_features().is_err());

    let cfg = DriftConfig {
        window: 50,
        test_every: 10,
        projections: 16,
        permutations: 199,
        ..Default::default()
    };
    let mut mon = DriftMonitor::new(&reference, cfg).unwrap();
    let frames: Vec<FrameFeatures> = (0..200).map(|_| frame(&mut rng)).collect();
    // Warm-up: fill the window and run the first tests.
    for f in &frames[..70] {
        mon.push(f);
    }
    let mut tests = 0;
    let mut quiet_allocs = 0;
    let mut quiet = 0;
    for f in &frames[70..] {
        let a0 = ALLOCS.load(Ordering::Relaxed);
        if let Some(r) = mon.push(f) {
            tests += 1;
            // Reports of non-significant tests carry no feature list: nothing allocated.
            if !r.significant && !r.changed {
                quiet += 1;
                quiet_allocs += ALLOCS.load(Ordering::Relaxed) - a0;
            }
            std::mem::forget(r);
        }
    }
    assert_eq!(tests, 13);
    assert!(quiet >= 10, "only {quiet} quiet tests");
    assert_eq!(quiet_allocs, 0, "allocations during quiet periodic tests");
}
