//! TEMPORARY stand-in for `crate::grade` until the grading module lands on main: the same
//! API surface the synth module uses (`Feature`, `FeatureKind`, `Profile::builtin`,
//! `Profile::zone_of`, `grade`), encoding the IEC 61300-3-35 Ed.2 tables of
//! docs/iec-61300-3-35.md. Delete this file and point `synth::verdict` at `crate::grade`
//! once it exists.

/// Zones centred on the fiber axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Zone {
    A,
    B,
    C,
    D,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureKind {
    Scratch,
    Defect,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Feature {
    pub kind: FeatureKind,
    pub size_um: f64,
    pub inner_radius_um: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail,
    Unable,
}

#[derive(Debug, Clone)]
pub struct Grade {
    pub verdict: Verdict,
    pub reasons: Vec<String>,
}

/// One size band: features with size in `(lo, hi]` (or `[lo, hi)` when `hi_open`), at most
/// `max_count` of them (`None` = no limit).
#[derive(Debug, Clone, Copy)]
struct Band {
    lo: f64,
    lo_inclusive: bool,
    hi: f64,
    hi_inclusive: bool,
    max_count: Option<usize>,
}

impl Band {
    fn contains(&self, s: f64) -> bool {
        let above = if self.lo_inclusive {
            s >= self.lo
        } else {
            s > self.lo
        };
        let below = if self.hi_inclusive {
            s <= self.hi
        } else {
            s < self.hi
        };
        above && below
    }
}

const INF: f64 = f64::INFINITY;

fn b(lo: f64, lo_i: bool, hi: f64, hi_i: bool, max: Option<usize>) -> Band {
    Band {
        lo,
        lo_inclusive: lo_i,
        hi,
        hi_inclusive: hi_i,
        max_count: max,
    }
}

#[derive(Debug, Clone)]
pub struct Profile {
    /// Outer radii (µm) of zones A, B, C, D.
    radii_um: [f64; 4],
    scratches: [Vec<Band>; 4],
    defects: [Vec<Band>; 4],
}

impl Profile {
    pub fn builtin(name: &str) -> Option<Profile> {
        let none_any = || vec![b(0.0, true, INF, true, Some(0))];
        let unlimited = || vec![b(0.0, true, INF, true, None)];
        let sm_b_scr = vec![
            b(0.0, true, 3.0, true, None),
            b(3.0, false, INF, true, Some(0)),
        ];
        let sm_b_def = vec![
            b(0.0, true, 2.0, false, None),
            b(2.0, true, 5.0, true, Some(5)),
            b(5.0, false, INF, true, Some(0)),
        ];
        let sm_d_def = vec![
            b(0.0, true, 10.0, false, None),
            b(10.0, true, INF, true, Some(0)),
        ];
        match name {
            "sm-upc" => Some(Profile {
                radii_um: [12.5, 57.5, 67.5, 125.0],
                scratches: [none_any(), sm_b_scr, unlimited(), unlimited()],
                defects: [none_any(), sm_b_def, unlimited(), sm_d_def],
            }),
            "sm-apc" => Some(Profile {
                radii_um: [12.5, 57.5, 67.5, 125.0],
                scratches: [
                    vec![
                        b(0.0, true, 3.0, true, Some(4)),
                        b(3.0, false, INF, true, Some(0)),
                    ],
                    sm_b_scr,
                    unlimited(),
                    unlimited(),
                ],
                defects: [none_any(), sm_b_def, unlimited(), sm_d_def],
            }),
            "mm" => Some(Profile {
                radii_um: [32.5, 57.5, 67.5, 125.0],
                scratches: [
                    vec![
                        b(0.0, true, 3.0, true, None),
                        b(3.0, false, INF, true, Some(0)),
                    ],
                    vec![
                        b(0.0, true, 5.0, true, None),
                        b(5.0, false, INF, true, Some(0)),
                    ],
                    unlimited(),
                    unlimited(),
                ],
                defects: [
                    vec![
                        b(0.0, true, 5.0, true, Some(4)),
                        b(5.0, false, INF, true, Some(0)),
                    ],
                    vec![
                        b(0.0, true, 5.0, false, None),
                        b(5.0, true, 10.0, true, Some(5)),
                        b(10.0, false, INF, true, Some(0)),
                    ],
                    unlimited(),
                    vec![
                        b(0.0, true, 20.0, false, None),
                        b(20.0, true, 30.0, true, Some(5)),
                        b(30.0, false, INF, true, Some(0)),
                    ],
                ],
            }),
            _ => None,
        }
    }

    pub fn zone_of(&self, radius_um: f64) -> Option<Zone> {
        const Z: [Zone; 4] = [Zone::A, Zone::B, Zone::C, Zone::D];
        self.radii_um
            .iter()
            .position(|&r| radius_um < r)
            .map(|i| Z[i])
    }
}

pub fn grade(profile: &Profile, features: &[Feature]) -> Grade {
    let mut reasons = Vec::new();
    for (zi, zone) in ["A", "B", "C", "D"].iter().enumerate() {
        for (kind, bands) in [
            (FeatureKind::Scratch, &profile.scratches[zi]),
            (FeatureKind::Defect, &profile.defects[zi]),
        ] {
            for band in bands {
                let Some(max) = band.max_count else {
                    continue;
                };
                let n = features
                    .iter()
                    .filter(|f| {
                        f.kind == kind
                            && profile.zone_of(f.inner_radius_um).map(|z| z as usize) == Some(zi)
                            && band.contains(f.size_um)
                    })
                    .count();
                if n > max {
                    reasons.push(format!(
                        "zone {zone}: {n} {kind:?} in {}..{} µm, limit {max}",
                        band.lo, band.hi
                    ));
                }
            }
        }
    }
    Grade {
        verdict: if reasons.is_empty() {
            Verdict::Pass
        } else {
            Verdict::Fail
        },
        reasons,
    }
}
