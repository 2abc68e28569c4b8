//! SWD equals POT's ot.sliced_wasserstein_distance on the same data and projections (1e-6).
//! Fixture: scripts/swd_pot_reference.py; live re-check: scripts/check_swd_pot.py.

use endface::drift::{permutation_test, sliced_wasserstein};
use serde::Deserialize;

#[derive(Deserialize)]
struct Doc {
    seed: u64,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    n: usize,
    m: usize,
    dim: usize,
    p: f64,
    x: Vec<f64>,
    y: Vec<f64>,
    projections: Vec<f64>,
    swd: f64,
}

fn check(doc: &Doc) {
    assert!(!doc.cases.is_empty());
    for (k, c) in doc.cases.iter().enumerate() {
        assert_eq!(c.x.len(), c.n * c.dim);
        assert_eq!(c.y.len(), c.m * c.dim);
        let got = sliced_wasserstein(&c.x, &c.y, c.dim, &c.projections, c.p).unwrap();
        let err = (got - c.swd).abs();
        println!(
            "seed {} case {k}: rust {got:.15} POT {:.15} |diff| {err:.2e}",
            doc.seed, c.swd
        );
        assert!(err <= 1e-6, "case {k}: rust {got} vs POT {}", c.swd);
        // The permutation test reports the same observed distance.
        let t = permutation_test(&c.x, &c.y, c.dim, &c.projections, c.p, 9, 1).unwrap();
        assert_eq!(t.distance, got);
    }
}

#[test]
fn swd_matches_pot_fixture() {
    let doc: Doc = serde_json::from_str(include_str!("fixtures/swd_pot.json")).unwrap();
    check(&doc);
}

/// Run by scripts/check_swd_pot.py with freshly generated cases.
#[test]
#[ignore]
fn live_pot_cases() {
    let path = std::env::var("ENDFACE_SWD_FIXTURE").expect("set ENDFACE_SWD_FIXTURE");
    let doc: Doc = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    check(&doc);
}
