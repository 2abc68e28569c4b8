//! Class boundaries of every IEC 61300-3-35 table (iec-61300-3-35.md), each just below, at and
//! just above, plus counted limits (4th/5th vs 6th feature) and zone straddling.

use endface::grade::{grade, Feature, FeatureKind, Profile, Verdict, Zone};

const EPS: f64 = 0.01;

fn p(name: &str) -> Profile {
    Profile::builtin(name).expect("builtin profile")
}

fn scratch(size_um: f64, r: f64) -> Feature {
    Feature {
        kind: FeatureKind::Scratch,
        size_um,
        inner_radius_um: r,
    }
}

fn defect(size_um: f64, r: f64) -> Feature {
    Feature {
        kind: FeatureKind::Defect,
        size_um,
        inner_radius_um: r,
    }
}

fn n_of(n: usize, f: Feature) -> Vec<Feature> {
    vec![f; n]
}

#[track_caller]
fn expect(profile: &Profile, features: &[Feature], verdict: Verdict) {
    let g = grade(profile, features);
    assert_eq!(
        g.verdict, verdict,
        "profile {} features {:?}: reasons {:?}",
        profile.name, features, g.reasons
    );
    assert_eq!(g.per_feature.len(), features.len());
    assert_eq!(
        g.per_feature.iter().any(|f| f.fails),
        verdict == Verdict::Fail,
        "fail flags disagree with verdict"
    );
    if verdict == Verdict::Pass {
        assert!(g.reasons.is_empty());
    } else {
        assert!(!g.reasons.is_empty());
    }
}

use Verdict::{Fail, Pass};

// Radii (µm) well inside each zone for single-mode (A ≤ 12.5, B ≤ 57.5, C ≤ 67.5, D ≤ 125)
// and multimode (A ≤ 32.5).
const SM_A: f64 = 5.0;
const B: f64 = 40.0;
const C: f64 = 62.0;
const D: f64 = 100.0;
const MM_A: f64 = 20.0;

#[test]
fn sm_upc_zone_a_nothing_allowed() {
    let pr = p("sm-upc");
    expect(&pr, &[], Pass);
    for s in [0.1, 1.0, 2.0 - EPS, 2.0, 3.0, 3.0 + EPS, 5.0] {
        expect(&pr, &[scratch(s, SM_A)], Fail);
        expect(&pr, &[defect(s, SM_A)], Fail);
    }
}

fn sm_zone_b_rules(pr: &Profile) {
    // Scratches: no limit ≤ 3 µm; none > 3 µm.
    expect(pr, &n_of(50, scratch(3.0 - EPS, B)), Pass);
    expect(pr, &n_of(50, scratch(3.0, B)), Pass);
    expect(pr, &[scratch(3.0 + EPS, B)], Fail);
    // Defects: no limit < 2 µm.
    expect(pr, &n_of(100, defect(2.0 - EPS, B)), Pass);
    // 2 µm is counted: 5 pass, 6 fail.
    expect(pr, &n_of(5, defect(2.0, B)), Pass);
    expect(pr, &n_of(6, defect(2.0, B)), Fail);
    expect(pr, &n_of(6, defect(2.0 + EPS, B)), Fail);
    // 5 µm is still in the counted 2–5 class.
    expect(pr, &n_of(4, defect(5.0 - EPS, B)), Pass);
    expect(pr, &n_of(5, defect(5.0, B)), Pass);
    expect(pr, &n_of(6, defect(5.0, B)), Fail);
    // none > 5 µm.
    expect(pr, &[defect(5.0 + EPS, B)], Fail);
    // 5 counted plus any number below 2 µm and any number of fine scratches: pass.
    let mut fs = n_of(5, defect(3.5, B));
    fs.extend(n_of(40, defect(1.0, B)));
    fs.extend(n_of(40, scratch(2.5, B)));
    expect(pr, &fs, Pass);
    fs.push(defect(4.0, B));
    expect(pr, &fs, Fail);
}

#[test]
fn sm_upc_zone_b() {
    sm_zone_b_rules(&p("sm-upc"));
}

#[test]
fn sm_apc_zone_b() {
    sm_zone_b_rules(&p("sm-apc"));
}

fn sm_zones_c_d_rules(pr: &Profile) {
    // C: no limit at all.
    expect(pr, &n_of(20, scratch(40.0, C)), Pass);
    expect(pr, &n_of(20, defect(40.0, C)), Pass);
    // D: scratches no limit; defects none ≥ 10 µm.
    expect(pr, &n_of(20, scratch(40.0, D)), Pass);
    expect(pr, &n_of(100, defect(10.0 - EPS, D)), Pass);
    expect(pr, &[defect(10.0, D)], Fail);
    expect(pr, &[defect(10.0 + EPS, D)], Fail);
    // Beyond D nothing is graded.
    expect(pr, &[defect(80.0, 125.0 + EPS)], Pass);
    expect(pr, &[scratch(80.0, 300.0)], Pass);
}

#[test]
fn sm_upc_zones_c_d() {
    sm_zones_c_d_rules(&p("sm-upc"));
}

#[test]
fn sm_apc_zones_c_d() {
    sm_zones_c_d_rules(&p("sm-apc"));
}

#[test]
fn sm_apc_zone_a() {
    let pr = p("sm-apc");
    // Scratches: 4 ≤ 3 µm; none > 3 µm.
    expect(&pr, &n_of(4, scratch(3.0 - EPS, SM_A)), Pass);
    expect(&pr, &n_of(4, scratch(3.0, SM_A)), Pass);
    expect(&pr, &n_of(5, scratch(3.0, SM_A)), Fail);
    expect(&pr, &n_of(5, scratch(1.0, SM_A)), Fail);
    expect(&pr, &[scratch(3.0 + EPS, SM_A)], Fail);
    // Defects: none.
    expect(&pr, &[defect(0.5, SM_A)], Fail);
}

#[test]
fn mm_zone_a() {
    let pr = p("mm");
    // Scratches: no limit ≤ 3 µm; none > 3 µm.
    expect(&pr, &n_of(30, scratch(3.0 - EPS, MM_A)), Pass);
    expect(&pr, &n_of(30, scratch(3.0, MM_A)), Pass);
    expect(&pr, &[scratch(3.0 + EPS, MM_A)], Fail);
    // Defects: 4 ≤ 5 µm; none > 5 µm.
    expect(&pr, &n_of(4, defect(5.0 - EPS, MM_A)), Pass);
    expect(&pr, &n_of(4, defect(5.0, MM_A)), Pass);
    expect(&pr, &n_of(5, defect(5.0, MM_A)), Fail);
    expect(&pr, &n_of(5, defect(0.5, MM_A)), Fail);
    expect(&pr, &[defect(5.0 + EPS, MM_A)], Fail);
}

#[test]
fn mm_zone_b() {
    let pr = p("mm");
    // Scratches: no limit ≤ 5 µm; none > 5 µm.
    expect(&pr, &n_of(30, scratch(5.0 - EPS, B)), Pass);
    expect(&pr, &n_of(30, scratch(5.0, B)), Pass);
    expect(&pr, &[scratch(5.0 + EPS, B)], Fail);
    // Defects: no limit < 5 µm; 5 from 5–10 µm; none > 10 µm.
    expect(&pr, &n_of(100, defect(5.0 - EPS, B)), Pass);
    expect(&pr, &n_of(5, defect(5.0, B)), Pass);
    expect(&pr, &n_of(6, defect(5.0, B)), Fail);
    expect(&pr, &n_of(5, defect(10.0 - EPS, B)), Pass);
    expect(&pr, &n_of(5, defect(10.0, B)), Pass);
    expect(&pr, &n_of(6, defect(10.0, B)), Fail);
    expect(&pr, &[defect(10.0 + EPS, B)], Fail);
}

#[test]
fn mm_zones_c_d() {
    let pr = p("mm");
    expect(&pr, &n_of(20, scratch(40.0, C)), Pass);
    expect(&pr, &n_of(20, defect(40.0, C)), Pass);
    expect(&pr, &n_of(20, scratch(40.0, D)), Pass);
    // Defects: no limit < 20 µm; 5 from 20–30 µm; none > 30 µm.
    expect(&pr, &n_of(100, defect(20.0 - EPS, D)), Pass);
    expect(&pr, &n_of(5, defect(20.0, D)), Pass);
    expect(&pr, &n_of(6, defect(20.0, D)), Fail);
    expect(&pr, &n_of(5, defect(30.0, D)), Pass);
    expect(&pr, &n_of(6, defect(30.0, D)), Fail);
    expect(&pr, &[defect(30.0 + EPS, D)], Fail);
    expect(&pr, &[defect(80.0, 125.0 + EPS)], Pass);
}

#[test]
fn fourth_fifth_sixth_counted_defect() {
    let pr = p("sm-upc");
    for n in 1..=5 {
        let g = grade(&pr, &n_of(n, defect(3.0, B)));
        assert_eq!(g.verdict, Pass, "{n} defects of 3 µm in zone B");
    }
    let g = grade(&pr, &n_of(6, defect(3.0, B)));
    assert_eq!(g.verdict, Fail);
    assert_eq!(g.reasons, vec!["zone B: 6 defects of 2–5 µm, limit 5"]);
    assert!(g
        .per_feature
        .iter()
        .all(|f| f.fails && f.zone == Some(Zone::B)));
    // Counts are per zone: 5 in B and 5 in D (counted class of mm zone D) do not add up.
    let mm = p("mm");
    let mut fs = n_of(5, defect(7.0, B));
    fs.extend(n_of(5, defect(25.0, D)));
    expect(&mm, &fs, Pass);
}

#[test]
fn reasons_name_zone_class_and_limit() {
    let g = grade(&p("sm-apc"), &[scratch(3.4, SM_A)]);
    assert_eq!(g.reasons, vec!["zone A: scratch 3.4 µm > 3 µm"]);
    let g = grade(&p("sm-upc"), &[defect(10.0, D)]);
    assert_eq!(g.reasons, vec!["zone D: defect 10 µm ≥ 10 µm"]);
    let g = grade(&p("sm-upc"), &[defect(0.8, SM_A)]);
    assert_eq!(g.reasons, vec!["zone A: defect 0.8 µm, none allowed"]);
    let g = grade(&p("mm"), &n_of(5, defect(1.0, MM_A)));
    assert_eq!(g.reasons, vec!["zone A: 5 defects of ≤ 5 µm, limit 4"]);
    // A size that would print like the bound gets more digits.
    let g = grade(&p("sm-upc"), &[scratch(3.001, B)]);
    assert_eq!(g.reasons, vec!["zone B: scratch 3.0010 µm > 3 µm"]);
    // Only the failing feature is flagged.
    let g = grade(
        &p("sm-upc"),
        &[defect(1.0, B), defect(6.0, B), scratch(1.0, C)],
    );
    let flags: Vec<bool> = g.per_feature.iter().map(|f| f.fails).collect();
    assert_eq!(flags, vec![false, true, false]);
}

#[test]
fn straddling_feature_judged_in_inner_zone() {
    let pr = p("sm-upc");
    // A 6 µm defect whose closest point is in B (r = 57 µm < 57.5) and that extends into C:
    // judged in B, where > 5 µm fails (in C it would pass).
    let g = grade(&pr, &[defect(6.0, 57.0)]);
    assert_eq!(g.verdict, Fail);
    assert_eq!(g.per_feature[0].zone, Some(Zone::B));
    assert!(g.reasons[0].starts_with("zone B:"));
    // Exactly on the B/C boundary it touches B.
    assert_eq!(grade(&pr, &[defect(6.0, 57.5)]).verdict, Fail);
    // Entirely in C: passes.
    let g = grade(&pr, &[defect(6.0, 57.5 + EPS)]);
    assert_eq!(g.verdict, Pass);
    assert_eq!(g.per_feature[0].zone, Some(Zone::C));
    // A scratch crossing the core from the cladding touches A.
    let g = grade(&pr, &[scratch(1.0, 12.5)]);
    assert_eq!(g.per_feature[0].zone, Some(Zone::A));
    assert_eq!(g.verdict, Fail);
    // Touching the contact-zone edge from outside is still graded in D.
    assert_eq!(grade(&pr, &[defect(12.0, 125.0)]).verdict, Fail);
}

#[test]
fn unable_paths_never_pass() {
    let pr = p("sm-upc");
    assert!(endface::grade::check_gradable(true, 0.8, 0.5).is_none());
    let g = endface::grade::check_gradable(false, 0.8, 0.5).unwrap();
    assert_eq!(g.verdict, Verdict::Unable);
    assert!(g.reasons[0].contains("not found"));
    let g = endface::grade::check_gradable(true, 0.2, 0.5).unwrap();
    assert_eq!(g.verdict, Verdict::Unable);
    assert!(g.reasons[0].contains("focus"));
    assert!(endface::grade::check_gradable(true, f64::NAN, 0.5).is_some());
    let u = endface::grade::unable("lens cap on");
    assert_eq!(
        (u.verdict, u.reasons.clone()),
        (Verdict::Unable, vec!["lens cap on".to_string()])
    );
    // Garbage feature values are UNABLE, not PASS.
    for f in [
        defect(f64::NAN, B),
        defect(-1.0, B),
        defect(1.0, f64::INFINITY),
        scratch(f64::INFINITY, 200.0),
    ] {
        assert_eq!(grade(&pr, &[f]).verdict, Verdict::Unable);
    }
    // Serde names.
    assert_eq!(
        serde_json::to_string(&Verdict::Unable).unwrap(),
        "\"unable\""
    );
    assert_eq!(serde_json::to_string(&Zone::B).unwrap(), "\"B\"");
    let f: Feature =
        serde_json::from_str(r#"{"kind":"scratch","size_um":2.5,"inner_radius_um":30}"#).unwrap();
    assert_eq!(f, scratch(2.5, 30.0));
}
