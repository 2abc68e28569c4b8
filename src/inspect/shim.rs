//! TEMPORARY stand-ins for `crate::grade` and `crate::locate` until those branches land on
//! main (their APIs as announced in CONTRACTS.md / the helpers' branches). Removed at merge.

pub mod grade {
    use serde::{Deserialize, Serialize};
    use std::fmt;
    use std::path::PathBuf;

    #[derive(Debug, thiserror::Error)]
    pub enum GradeError {
        #[error("unknown grading profile `{name}`; known profiles: {}; or give a path to a .toml file", known.join(", "))]
        UnknownProfile { name: String, known: Vec<String> },
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum FeatureKind {
        Scratch,
        Defect,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Feature {
        pub kind: FeatureKind,
        pub size_um: f64,
        pub inner_radius_um: f64,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
    pub enum Zone {
        A,
        B,
        C,
        D,
    }

    impl Zone {
        pub const ALL: [Zone; 4] = [Zone::A, Zone::B, Zone::C, Zone::D];
    }

    impl fmt::Display for Zone {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{self:?}")
        }
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum Verdict {
        Pass,
        Fail,
        Unable,
    }

    impl fmt::Display for Verdict {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(match self {
                Verdict::Pass => "pass",
                Verdict::Fail => "fail",
                Verdict::Unable => "unable",
            })
        }
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub struct FeatureGrade {
        pub zone: Option<Zone>,
        pub fails: bool,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Grade {
        pub verdict: Verdict,
        pub reasons: Vec<String>,
        pub per_feature: Vec<FeatureGrade>,
    }

    /// SM-UPC only (zone diameters 25/115/135/250 µm).
    #[derive(Debug, Clone, PartialEq)]
    pub struct Profile {
        pub name: String,
    }

    impl Profile {
        pub fn resolve(
            name_or_path: &str,
            _search_dirs: &[PathBuf],
        ) -> Result<Profile, GradeError> {
            if name_or_path == "sm-upc" {
                Ok(Profile {
                    name: "sm-upc".into(),
                })
            } else {
                Err(GradeError::UnknownProfile {
                    name: name_or_path.into(),
                    known: vec!["sm-upc".into()],
                })
            }
        }
        pub fn zone_outer_radius_um(&self, zone: Zone) -> f64 {
            match zone {
                Zone::A => 12.5,
                Zone::B => 57.5,
                Zone::C => 67.5,
                Zone::D => 125.0,
            }
        }
        pub fn contact_radius_um(&self) -> f64 {
            125.0
        }
        pub fn zone_of(&self, radius_um: f64) -> Option<Zone> {
            if radius_um.is_nan() {
                return None;
            }
            let r = radius_um.max(0.0);
            Zone::ALL
                .into_iter()
                .find(|&z| r <= self.zone_outer_radius_um(z))
        }
    }

    pub fn unable(reason: impl Into<String>) -> Grade {
        Grade {
            verdict: Verdict::Unable,
            reasons: vec![reason.into()],
            per_feature: Vec::new(),
        }
    }

    pub fn check_gradable(found: bool, focus: f64, min_focus: f64) -> Option<Grade> {
        if !found {
            return Some(unable("fiber cladding not found: cannot grade"));
        }
        if focus.is_nan() || focus < min_focus {
            return Some(unable(format!(
                "image out of focus: focus {focus:.4} below minimum {min_focus:.4}: cannot grade"
            )));
        }
        None
    }

    /// SM-UPC table of IEC 61300-3-35 (simplified reasons).
    pub fn grade(profile: &Profile, features: &[Feature]) -> Grade {
        let mut per: Vec<FeatureGrade> = features
            .iter()
            .map(|f| FeatureGrade {
                zone: profile.zone_of(f.inner_radius_um),
                fails: false,
            })
            .collect();
        let mut reasons = Vec::new();
        let mut mid = Vec::new();
        for (i, f) in features.iter().enumerate() {
            let fails = match (per[i].zone, f.kind) {
                (Some(Zone::A), _) => true,
                (Some(Zone::B), FeatureKind::Scratch) => f.size_um > 3.0,
                (Some(Zone::B), FeatureKind::Defect) => {
                    if (2.0..=5.0).contains(&f.size_um) {
                        mid.push(i);
                    }
                    f.size_um > 5.0
                }
                (Some(Zone::D), FeatureKind::Defect) => f.size_um >= 10.0,
                _ => false,
            };
            if fails {
                per[i].fails = true;
                reasons.push(format!(
                    "zone {}: {:?} of {:.1} µm",
                    per[i].zone.map_or("-".into(), |z| z.to_string()),
                    f.kind,
                    f.size_um
                ));
            }
        }
        if mid.len() > 5 {
            for &i in &mid {
                per[i].fails = true;
            }
            reasons.push(format!("zone B: {} defects of 2–5 µm, limit 5", mid.len()));
        }
        Grade {
            verdict: if reasons.is_empty() {
                Verdict::Pass
            } else {
                Verdict::Fail
            },
            reasons,
            per_feature: per,
        }
    }
}

pub mod locate {
    use crate::geometry::PixelScale;
    use image::GrayImage;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct LocateConfig {
        pub scale: Option<PixelScale>,
        pub min_confidence: f64,
    }

    impl LocateConfig {
        pub fn with_scale(scale: PixelScale) -> Self {
            Self {
                scale: Some(scale),
                min_confidence: 0.5,
            }
        }
    }

    #[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
    pub struct Located {
        pub center_in_frame: [f64; 2],
        pub cladding_radius_px: f64,
        pub radius_y_px: f64,
        pub confidence: f64,
        pub focus: f64,
    }

    #[derive(Debug, Clone, PartialEq, thiserror::Error)]
    pub enum LocateError {
        #[error("cladding not found: {reason}")]
        NotFound { reason: String },
    }

    pub struct Locator {
        _cfg: LocateConfig,
    }

    impl Locator {
        pub fn new(cfg: LocateConfig) -> Result<Self, LocateError> {
            Ok(Self { _cfg: cfg })
        }
        pub fn locate(&mut self, _img: &GrayImage) -> Result<Located, LocateError> {
            Err(LocateError::NotFound {
                reason: "fiber localization is not in this build yet".into(),
            })
        }
    }
}
