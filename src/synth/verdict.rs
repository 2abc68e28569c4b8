//! Adapter between the renderer's truth and the IEC grader: builds grader features from
//! rendered defects, finds zones, and grades a frame under its fiber profile.
//!
//! In: defect kind, size (µm), inner radius (µm), profile. Out: zone, verdict, reasons.

use super::grade_shim as grade;
use super::truth::{DefectKind, FiberProfile};

pub use grade::{Feature, Verdict, Zone};

/// The grader's feature for one defect.
pub fn feature(kind: DefectKind, size_um: f64, inner_radius_um: f64) -> Feature {
    Feature {
        kind: if kind.is_scratch() {
            grade::FeatureKind::Scratch
        } else {
            grade::FeatureKind::Defect
        },
        size_um,
        inner_radius_um,
    }
}

fn profile(fiber: FiberProfile) -> grade::Profile {
    match grade::Profile::builtin(fiber.as_str()) {
        Some(p) => p,
        // infallible: the three built-in profile names always exist in the grader.
        None => unreachable!("built-in profile {fiber} missing"),
    }
}

/// IEC zone of a radius (µm) under `fiber`'s profile; `None` beyond zone D.
pub fn zone_of(fiber: FiberProfile, radius_um: f64) -> Option<Zone> {
    profile(fiber).zone_of(radius_um)
}

/// Verdict (pass / fail) and reasons for a set of features under `fiber`'s profile.
pub fn grade_features(fiber: FiberProfile, features: &[Feature]) -> (Verdict, Vec<String>) {
    let g = grade::grade(&profile(fiber), features);
    (g.verdict, g.reasons)
}

/// `"A"` … `"D"`.
pub fn zone_letter(zone: Zone) -> &'static str {
    match zone {
        Zone::A => "A",
        Zone::B => "B",
        Zone::C => "C",
        Zone::D => "D",
    }
}

/// `"pass"`, `"fail"` or `"unable"` (the labels.jsonl spelling).
pub fn verdict_str(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
        Verdict::Unable => "unable",
    }
}
