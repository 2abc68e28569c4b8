//! Self-test of a freshly unpacked bundle: its model must reproduce the recorded verdicts of its
//! golden images before the slot may become active. In: the unpacked slot directory and
//! `golden/expected.jsonl`. Out: pass, or a list of mismatches. The inspection itself sits behind
//! the [`SelfTest`] trait so tests inject a fake and the binary uses the real inspector.

use super::BundleError;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// One line of `expected.jsonl`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct GoldenCase {
    /// Image file name, relative to the directory of `expected.jsonl`.
    pub image: String,
    /// Recorded verdict: "pass", "fail" or "unable" (compared case-insensitively).
    pub verdict: String,
    /// Recorded image score, checked only when `score_tolerance` is given too.
    #[serde(default)]
    pub image_score: Option<f64>,
    #[serde(default)]
    pub score_tolerance: Option<f64>,
}

/// What the inspector said about one golden image.
#[derive(Debug, Clone, PartialEq)]
pub struct GoldenOutcome {
    pub verdict: String,
    pub image_score: Option<f64>,
}

/// What a self-test gets to look at.
#[derive(Debug, Clone)]
pub struct SelfTestInput {
    /// The unpacked bundle (staging directory).
    pub slot_dir: PathBuf,
    /// Model manifest inside `slot_dir`.
    pub model_manifest: PathBuf,
    /// Station config carried by the bundle, if any.
    pub station_config: Option<PathBuf>,
    /// Grading profiles carried by the bundle.
    pub profiles: Vec<PathBuf>,
    /// Directory of `expected.jsonl`.
    pub golden_dir: PathBuf,
    /// The golden cases; `images[i]` is the full path of `cases[i].image`.
    pub cases: Vec<GoldenCase>,
    pub images: Vec<PathBuf>,
}

/// Why a self-test could not run at all (counts as a failed self-test).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SelfTestError(pub String);

/// Runs the bundle's model on its golden images.
pub trait SelfTest {
    /// One outcome per `input.images[i]`, in order.
    fn run(&self, input: &SelfTestInput) -> Result<Vec<GoldenOutcome>, SelfTestError>;
}

/// Parse `expected.jsonl` (blank lines and `#` comments skipped); at least one case.
pub fn read_expected(path: &Path) -> Result<Vec<GoldenCase>, BundleError> {
    let text = std::fs::read_to_string(path).map_err(|e| BundleError::io(path, e))?;
    let mut cases = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let case: GoldenCase = serde_json::from_str(line).map_err(|e| {
            BundleError::BadInput(format!("{} line {}: {e}", path.display(), i + 1))
        })?;
        super::manifest::check_entry_path(&case.image)?;
        cases.push(case);
    }
    if cases.is_empty() {
        return Err(BundleError::BadInput(format!(
            "{}: no golden cases; a bundle must carry at least one golden image with its verdict",
            path.display()
        )));
    }
    Ok(cases)
}

/// Compare outcomes with the recorded cases; `Err` lists every mismatch.
pub fn check_golden(cases: &[GoldenCase], outcomes: &[GoldenOutcome]) -> Result<(), String> {
    if cases.len() != outcomes.len() {
        return Err(format!(
            "{} golden images but {} results",
            cases.len(),
            outcomes.len()
        ));
    }
    let mut problems = Vec::new();
    for (case, got) in cases.iter().zip(outcomes) {
        if !case.verdict.eq_ignore_ascii_case(&got.verdict) {
            problems.push(format!(
                "{}: verdict {} (recorded {})",
                case.image, got.verdict, case.verdict
            ));
            continue;
        }
        if let (Some(want), Some(tol)) = (case.image_score, case.score_tolerance) {
            match got.image_score {
                Some(s) if (s - want).abs() <= tol => {}
                Some(s) => problems.push(format!(
                    "{}: image score {s:.4} (recorded {want:.4} ± {tol})",
                    case.image
                )),
                None => problems.push(format!("{}: no image score", case.image)),
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// The real self-test: the station's inspector (ONNX Runtime, locate, anomaly map, IEC grade)
/// loaded with the bundle's model, its station config (or the board's) and its profiles.
pub struct InspectorSelfTest {
    /// Station config used when the bundle carries none (the board's `/etc/endface/station.toml`).
    pub fallback_config: PathBuf,
}

impl SelfTest for InspectorSelfTest {
    fn run(&self, input: &SelfTestInput) -> Result<Vec<GoldenOutcome>, SelfTestError> {
        use crate::config::StationConfig;
        use crate::grade::Profile;
        use crate::inspect::{profile_search_dirs, Inspector};

        let config_path = input
            .station_config
            .as_deref()
            .unwrap_or(&self.fallback_config);
        let mut cfg = StationConfig::from_file(config_path)
            .map_err(|e| SelfTestError(format!("station config {}: {e}", config_path.display())))?;
        cfg.model.manifest = input.model_manifest.clone();
        cfg.validate(&config_path.display().to_string())
            .map_err(|e| SelfTestError(e.to_string()))?;
        // The bundle's own profiles first, then the usual places.
        let mut dirs: Vec<PathBuf> = input
            .profiles
            .iter()
            .filter_map(|p| p.parent().map(Path::to_path_buf))
            .take(1)
            .collect();
        dirs.extend(profile_search_dirs(config_path.parent()));
        let profile = Profile::resolve(&cfg.station.profile, &dirs)
            .map_err(|e| SelfTestError(format!("grading profile: {e}")))?;
        let mut inspector = Inspector::new(&cfg, profile)
            .map_err(|e| SelfTestError(format!("loading the bundle's model: {e}")))?;
        tracing::info!(
            "self-test: model {} on {} against {} golden images",
            input.model_manifest.display(),
            inspector.model().provider().summary(),
            input.images.len()
        );
        input
            .images
            .iter()
            .map(|img| {
                let frame = crate::imageio::load_gray(img)
                    .map_err(|e| SelfTestError(format!("golden image: {e}")))?;
                let r = inspector
                    .inspect(&frame)
                    .map_err(|e| SelfTestError(format!("{}: {e}", img.display())))?;
                Ok(GoldenOutcome {
                    verdict: r.verdict.to_string(),
                    image_score: r.image_score.map(f64::from),
                })
            })
            .collect()
    }
}
