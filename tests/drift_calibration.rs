//! Permutation p-values are calibrated under the null, SWD basics, and the monitor's window
//! and hysteresis.

use endface::drift::{
    permutation_test, random_projections, sliced_wasserstein, DriftConfig, DriftMonitor,
    DriftState, FrameFeatures, PermutationTest, N_FEATURES,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StudentT};

/// Two-sided binomial interval [lo, hi] holding at least `level` of Binomial(n, p).
fn binomial_interval(n: u64, p: f64, level: f64) -> (u64, u64) {
    let mut pmf = vec![0.0f64; n as usize + 1];
    // log-space pmf to stay stable.
    let lnf = |k: u64| (1..=k).map(|i| (i as f64).ln()).sum::<f64>();
    for k in 0..=n {
        pmf[k as usize] =
            (lnf(n) - lnf(k) - lnf(n - k) + k as f64 * p.ln() + (n - k) as f64 * (1.0 - p).ln())
                .exp();
    }
    let tail = (1.0 - level) / 2.0;
    let (mut lo, mut acc) = (0u64, 0.0);
    while acc + pmf[lo as usize] <= tail {
        acc += pmf[lo as usize];
        lo += 1;
    }
    let (mut hi, mut acc) = (n, 0.0);
    while acc + pmf[hi as usize] <= tail {
        acc += pmf[hi as usize];
        hi -= 1;
    }
    (lo, hi)
}

fn heavy_cloud(rng: &mut ChaCha8Rng, n: usize, d: usize) -> Vec<f64> {
    let t = StudentT::new(3.0).unwrap();
    (0..n * d).map(|_| t.sample(rng)).collect()
}

#[test]
fn null_rejection_rate_is_in_binomial_interval() {
    // 400 null experiments: two samples of the same heavy-tailed stream (n = 24 vs m = 16,
    // d = 4), 16 projections, 99 permutations. With (1 + #≥)/(1 + P) and P = 99 the test has
    // size exactly 0.05 under exchangeability, so rejections ~ Binomial(400, 0.05).
    let (trials, d) = (400u64, 4);
    let proj = random_projections(d, 16, 7);
    let mut engine = PermutationTest::new();
    let mut rng = ChaCha8Rng::seed_from_u64(2024);
    let (mut rej05, mut rej20) = (0u64, 0u64);
    let mut below_half = 0u64;
    for _ in 0..trials {
        let x = heavy_cloud(&mut rng, 24, d);
        let y = heavy_cloud(&mut rng, 16, d);
        let t = engine.run(&x, &y, d, &proj, 2.0, 99, &mut rng).unwrap();
        assert!(t.p_value > 0.0 && t.p_value <= 1.0);
        rej05 += u64::from(t.p_value <= 0.05);
        rej20 += u64::from(t.p_value <= 0.20);
        below_half += u64::from(t.p_value <= 0.5);
    }
    let (lo, hi) = binomial_interval(trials, 0.05, 0.99);
    println!("rejections at 0.05: {rej05}/{trials} (99% interval {lo}..={hi}); at 0.20: {rej20}; p<=0.5: {below_half}");
    assert!(
        (lo..=hi).contains(&rej05),
        "{rej05} rejections at α = 0.05, interval {lo}..={hi}"
    );
    let (lo, hi) = binomial_interval(trials, 0.20, 0.99);
    assert!(
        (lo..=hi).contains(&rej20),
        "{rej20} rejections at α = 0.20, interval {lo}..={hi}"
    );
    let (lo, hi) = binomial_interval(trials, 0.50, 0.99);
    assert!(
        (lo..=hi).contains(&below_half),
        "{below_half} p ≤ 0.5, interval {lo}..={hi}"
    );
}

#[test]
fn a_real_shift_is_detected() {
    let d = 4;
    let proj = random_projections(d, 16, 7);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let x = heavy_cloud(&mut rng, 60, d);
    let mut y = heavy_cloud(&mut rng, 40, d);
    y.iter_mut().step_by(d).for_each(|v| *v += 1.0); // shift feature 0 by 1
    let t = permutation_test(&x, &y, d, &proj, 2.0, 199, 3).unwrap();
    assert!(t.p_value < 0.01, "{t:?}");
    // Deterministic for a seed.
    assert_eq!(t, permutation_test(&x, &y, d, &proj, 2.0, 199, 3).unwrap());
}

#[test]
fn swd_basic_properties() {
    let d = 3;
    let proj = random_projections(d, 20, 1);
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let x: Vec<f64> = (0..30 * d).map(|_| rng.gen::<f64>()).collect();
    assert_eq!(sliced_wasserstein(&x, &x, d, &proj, 2.0).unwrap(), 0.0);
    // Translating a cloud by c along a unit direction e gives SWD² = mean_l <θ_l, c e>².
    let c = 0.7;
    let y: Vec<f64> = x
        .iter()
        .enumerate()
        .map(|(i, v)| if i % d == 1 { v + c } else { *v })
        .collect();
    let want = (proj.chunks(d).map(|t| (t[1] * c).powi(2)).sum::<f64>() / 20.0).sqrt();
    let got = sliced_wasserstein(&x, &y, d, &proj, 2.0).unwrap();
    assert!((got - want).abs() < 1e-12, "{got} vs {want}");
    // Duplicating every point leaves the distance unchanged (uniform weights).
    let xx: Vec<f64> = x.iter().chain(&x).copied().collect();
    let a = sliced_wasserstein(&x, &y, d, &proj, 2.0).unwrap();
    let b = sliced_wasserstein(&xx, &y, d, &proj, 2.0).unwrap();
    assert!((a - b).abs() < 1e-12);
    assert!(sliced_wasserstein(&x, &y[..5], d, &proj, 2.0).is_err());
    assert!(sliced_wasserstein(&[], &y, d, &proj, 2.0).is_err());
}

fn frame(rng: &mut ChaCha8Rng, shift: f32) -> FrameFeatures {
    let mut f = [f32::NAN; N_FEATURES];
    for (k, v) in f.iter_mut().enumerate().take(10) {
        *v = 100.0 + 10.0 * k as f32 + rng.sample::<f32, _>(rand_distr::StandardNormal) * 3.0;
    }
    f[1] += shift;
    f
}

#[test]
fn monitor_window_hysteresis_and_recovery() {
    let mut rng = ChaCha8Rng::seed_from_u64(77);
    let reference: Vec<FrameFeatures> = (0..120).map(|_| frame(&mut rng, 0.0)).collect();
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
    // Model slots never filled: only the 10 image features are used.
    assert_eq!(mon.active_features().len(), 10);
    // No report until the window is full.
    for _ in 0..29 {
        assert!(mon.push(&frame(&mut rng, 0.0)).is_none());
    }
    let r = mon
        .push(&frame(&mut rng, 0.0))
        .expect("window full: a test runs");
    assert_eq!(r.state, DriftState::Ok);
    // A long untouched stream never enters DRIFT (60 tests).
    let mut reports = 0;
    for _ in 0..600 {
        if let Some(r) = mon.push(&frame(&mut rng, 0.0)) {
            reports += 1;
            assert_eq!(r.state, DriftState::Ok, "false alarm: {r:?}");
        }
    }
    assert_eq!(reports, 60);
    // One odd frame does not flap the state.
    let mut odd = frame(&mut rng, 0.0);
    odd[0] = 1e6;
    mon.push(&odd);
    for _ in 0..30 {
        if let Some(r) = mon.push(&frame(&mut rng, 0.0)) {
            assert_eq!(r.state, DriftState::Ok);
        }
    }
    // A sustained shift of 3σ on cladding_median: DRIFT after `enter_after` tests.
    let mut entered_at = None;
    for i in 0..100 {
        if let Some(r) = mon.push(&frame(&mut rng, 9.0)) {
            if r.changed {
                assert_eq!(r.state, DriftState::Drift);
                assert_eq!(r.top_shifts[0].name, "cladding_median");
                assert!(r.top_shifts[0].shift_sigma > 1.0);
                entered_at = Some(i);
                break;
            }
        }
    }
    let entered_at = entered_at.expect("shift detected");
    assert!(entered_at >= 10, "entered after one test: no hysteresis");
    assert_eq!(mon.state(), DriftState::Drift);
    // Back to normal: leaves DRIFT once the window has refilled and two tests pass.
    let mut left = false;
    for _ in 0..100 {
        if let Some(r) = mon.push(&frame(&mut rng, 0.0)) {
            if r.changed {
                assert_eq!(r.state, DriftState::Ok);
                left = true;
                break;
            }
        }
    }
    assert!(left, "monitor did not recover");
}
