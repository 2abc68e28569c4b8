//! The station daemon: camera → inspect → journal → GPIO, all day, fail-safe.
//!
//! In: a station config (the daemon's sections `[camera]`, `[trigger]`, `[gpio]`,
//! `[journal]`, `[display]`, `[daemon]`), a frame [`Source`](crate::capture::Source), a
//! [`FrameInspector`] and an [`OutputBackend`](crate::actuate::OutputBackend). Out: one
//! journal row per inspection, written durably *before* the result is signalled on the
//! lines; result events for the caller; a [`Summary`] at the end.
//!
//! Threads joined by bounded crossbeam channels (see [`pipeline`]): capture (and trigger
//! matching) → inspect → output (journal, then lines) → image saver; trigger input threads;
//! the calling thread supervises (heartbeats, READY, sd_notify watchdog, signals).

pub mod display;
pub mod engine;
pub mod marker;
pub mod notify;
pub mod pipeline;

use crate::actuate::trigger::TriggerConfig;
use crate::actuate::GpioConfig;
use crate::capture::synthetic::SceneHints;
use crate::capture::{CameraConfig, Frame, InvalidKey};
use crate::config::StationConfig;
use crate::journal::JournalConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use display::DisplayConfig;
pub use pipeline::{Daemon, ResultEvent, RunOptions, StopReason, Summary, TriggerHandle};

/// An inspection's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    /// Could not be graded (fiber not found, out of focus, no frame, model failure).
    Unable,
}

impl Verdict {
    /// `pass`, `fail`, `unable` (as journalled).
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Unable => "unable",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Unable => "UNABLE",
        })
    }
}

/// Stage name → milliseconds, kept sorted by name, without heap allocation (at most
/// [`StageTimings::CAPACITY`] stages). Serializes as a JSON object in name order, exactly as
/// a `BTreeMap<String, f64>` does.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StageTimings(heapless::Vec<(&'static str, f64), 16>);

impl StageTimings {
    /// The most stages it holds (the daemon uses 11).
    pub const CAPACITY: usize = 16;

    /// Set a stage's time (replacing an earlier one); `false` when it is full and the stage
    /// is new (the time is then not kept).
    pub fn insert(&mut self, stage: &'static str, ms: f64) -> bool {
        match self.0.binary_search_by(|(k, _)| (*k).cmp(stage)) {
            Ok(i) => {
                self.0[i].1 = ms;
                true
            }
            Err(i) => self.0.insert(i, (stage, ms)).is_ok(),
        }
    }

    /// A stage's time.
    pub fn get(&self, stage: &str) -> Option<f64> {
        self.0
            .binary_search_by(|(k, _)| (*k).cmp(stage))
            .ok()
            .map(|i| self.0[i].1)
    }

    pub fn contains_key(&self, stage: &str) -> bool {
        self.get(stage).is_some()
    }

    /// Stages and times, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, f64)> + '_ {
        self.0.iter().copied()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// As a map with owned names (e.g. to compare with a journalled [`crate::journal::Entry`]).
    pub fn to_map(&self) -> BTreeMap<String, f64> {
        self.iter().map(|(k, v)| (k.to_string(), v)).collect()
    }
}

impl Serialize for StageTimings {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.iter() {
            m.serialize_entry(k, &v)?;
        }
        m.end()
    }
}

/// What an inspector says about one frame.
///
/// The daemon recycles records: [`FrameInspector::inspect_into`] overwrites every field of a
/// record that held an earlier frame's result, reusing its buffers (no heap allocation per
/// frame in the steady state).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InspectionRecord {
    pub verdict: Verdict,
    /// Human-readable reasons ("zone B: 6 defects of 2–5 µm, limit 5").
    pub reasons: Vec<String>,
    /// The defects as JSON text (an array; journalled as is).
    pub defects_json: String,
    /// Stage name → milliseconds, as measured by the inspector.
    pub timings_ms: StageTimings,
    /// sha256 of the model that graded the frame ("" when none).
    pub model_sha256: String,
    /// Execution provider that ran the model.
    pub provider: String,
    /// What the camera gave the grading, as JSON text (journalled as is; see
    /// [`crate::journal::Entry::frame_condition`]); empty when the inspector measured none.
    pub frame_condition_json: String,
    /// Drift features of the frame ([`crate::drift`]); `None` when the fiber was not located
    /// or the inspector does not measure them (marker).
    #[serde(skip)]
    pub drift_features: Option<crate::drift::FrameFeatures>,
}

impl Default for InspectionRecord {
    /// UNABLE, no reasons, no defects (`[]`), no timings.
    fn default() -> Self {
        InspectionRecord {
            verdict: Verdict::Unable,
            reasons: Vec::new(),
            defects_json: String::from("[]"),
            timings_ms: StageTimings::default(),
            model_sha256: String::new(),
            provider: String::new(),
            frame_condition_json: String::new(),
            drift_features: None,
        }
    }
}

impl InspectionRecord {
    /// Overwrite with an UNABLE result with one reason, reusing the buffers.
    /// `spare` takes the reason strings no longer needed and gives them back later (see
    /// [`set_reasons`]).
    pub fn set_unable(
        &mut self,
        spare: &mut Vec<String>,
        reason: std::fmt::Arguments<'_>,
        model_sha256: &str,
        provider: &str,
    ) {
        self.verdict = Verdict::Unable;
        set_reasons(&mut self.reasons, spare, std::iter::once(reason));
        set_text(&mut self.defects_json, "[]");
        self.timings_ms.clear();
        set_text(&mut self.model_sha256, model_sha256);
        set_text(&mut self.provider, provider);
        self.frame_condition_json.clear();
        self.drift_features = None;
    }
}

/// Replace `s` with `text`, reusing its buffer.
pub fn set_text(s: &mut String, text: &str) {
    s.clear();
    s.push_str(text);
}

/// Replace `reasons` with formatted texts, reusing the strings already there; strings left
/// over go to `spare`, and a longer list than before takes its extra strings from `spare`
/// (allocating only while the pool warms up).
pub fn set_reasons<T: std::fmt::Display>(
    reasons: &mut Vec<String>,
    spare: &mut Vec<String>,
    texts: impl IntoIterator<Item = T>,
) {
    use std::fmt::Write;
    let mut n = 0;
    for t in texts {
        if n == reasons.len() {
            reasons.push(spare.pop().unwrap_or_default());
        }
        let s = &mut reasons[n];
        s.clear();
        let _ = write!(s, "{t}");
        n += 1;
    }
    spare.extend(reasons.drain(n..));
}

/// The inspector could not produce a verdict (model or runtime failure). The daemon records
/// UNABLE, drops READY, and gives up after `[daemon] max_model_errors` in a row.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct InspectorError(pub String);

/// Anything that grades a frame: the real ONNX inspector, or the marker inspector.
pub trait FrameInspector: Send {
    fn inspect(&mut self, frame: &Frame) -> Result<InspectionRecord, InspectorError>;
    /// As [`FrameInspector::inspect`], into a record that held an earlier result: every field
    /// is overwritten. The daemon calls this one; inspectors that reuse the record's buffers
    /// make no heap allocation per frame. Default: `*out = self.inspect(frame)?`.
    fn inspect_into(
        &mut self,
        frame: &Frame,
        out: &mut InspectionRecord,
    ) -> Result<(), InspectorError> {
        *out = self.inspect(frame)?;
        Ok(())
    }
    /// For logs: what grades the frames.
    fn describe(&self) -> String;
    /// sha256 of the model and the execution provider, journalled with results that have no
    /// inspection of their own (no frame, inspector failure).
    fn identity(&self) -> (String, String) {
        (String::new(), String::new())
    }
    /// Measure [`InspectionRecord::drift_features`] from now on (only when a drift monitor
    /// runs: the features cost time on every frame). Default: the inspector has none.
    fn measure_drift_features(&mut self, _on: bool) {}
}

/// Which inspector `endface run` builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InspectorKind {
    /// The inspection engine with the configured model.
    Model,
    /// The model-free marker inspector ([`marker`]): commissioning and tests only.
    Marker,
}

/// `[daemon]`: pipeline behaviour.
///
/// ```toml
/// [daemon]
/// inspector = "model"       # "model" | "marker" (wiring checks without a model)
/// watchdog_ms = 5000        # a stage silent this long: READY low, no systemd watchdog ping
/// max_model_errors = 5      # inspector failures in a row before the daemon exits (systemd restarts it)
/// queue = 4                 # frames waiting between capture and inspection
/// workers = 1               # inspections side by side, each with its own model session;
///                           # results still journalled and signalled in frame order
/// marker_delay_ms = 0       # marker inspector: simulated inspection time
/// state_dir = "/var/lib/endface"  # update bundles' A/B slots (absent: factory files only)
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonSection {
    pub inspector: InspectorKind,
    pub watchdog_ms: u64,
    pub max_model_errors: u32,
    pub queue: usize,
    /// Inspect workers: frames inspected side by side, one inspector (model session) each.
    /// On a CPU station, cores / `runtime.intra_threads` gives the most frames per second
    /// (each session then uses its own core); on a GPU one or two. Memory grows by one model
    /// session per worker.
    pub workers: usize,
    pub marker_delay_ms: u64,
    pub state_dir: PathBuf,
}

impl Default for DaemonSection {
    fn default() -> Self {
        DaemonSection {
            inspector: InspectorKind::Model,
            watchdog_ms: 5000,
            max_model_errors: 5,
            queue: 4,
            workers: 1,
            marker_delay_ms: 0,
            state_dir: PathBuf::from("/var/lib/endface"),
        }
    }
}

/// Whether the drift monitor runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriftEnabled {
    /// On when the reference file exists (a missing one is logged once, at start).
    Auto,
    /// On; a missing or unreadable reference stops the daemon at start with a config error.
    On,
    Off,
}

/// `[drift]`: the input-drift monitor (docs/drift.md). Every frame the inspector located
/// adds its features to a rolling window; every `test_every` frames the window is tested
/// against the calibration reference (sliced Wasserstein distance, permutation test). The
/// DRIFT state (with hysteresis) goes to the log, the journal's `drift_tests` table, the run
/// summary and the optional `[gpio] drift` line. It never changes a verdict.
///
/// ```toml
/// [drift]
/// enabled = "auto"     # "auto" (on when the reference exists) | "on" | "off"
/// reference = "../models/endface-student.drift.json"  # default: beside the model manifest
/// window = 60          # frames per test
/// test_every = 60      # = window: tests see disjoint windows (independent evidence)
/// alpha = 0.01         # a test is significant when p < alpha
/// enter_after = 3      # significant tests in a row to enter DRIFT
/// exit_after = 2       # non-significant tests in a row to leave it
/// projections = 32
/// permutations = 199
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DriftSection {
    pub enabled: DriftEnabled,
    /// Reference features (`endface drift-reference` writes them); `None`: beside the model
    /// manifest, `<name>.drift.json` for `<name>.manifest.json`.
    pub reference: Option<PathBuf>,
    pub window: usize,
    pub test_every: usize,
    pub projections: usize,
    pub permutations: usize,
    pub p: f64,
    pub alpha: f64,
    pub enter_after: usize,
    pub exit_after: usize,
    pub seed: u64,
}

impl Default for DriftSection {
    fn default() -> Self {
        let d = crate::drift::DriftConfig::default();
        DriftSection {
            enabled: DriftEnabled::Auto,
            reference: None,
            window: d.window,
            test_every: d.test_every,
            projections: d.projections,
            permutations: d.permutations,
            p: d.p,
            alpha: d.alpha,
            enter_after: d.enter_after,
            exit_after: d.exit_after,
            seed: d.seed,
        }
    }
}

impl DriftSection {
    /// The monitor's settings.
    pub fn monitor_config(&self) -> crate::drift::DriftConfig {
        crate::drift::DriftConfig {
            window: self.window,
            test_every: self.test_every,
            projections: self.projections,
            permutations: self.permutations,
            p: self.p,
            alpha: self.alpha,
            enter_after: self.enter_after,
            exit_after: self.exit_after,
            seed: self.seed,
        }
    }

    fn validate(&self) -> Result<(), InvalidKey> {
        match self.monitor_config().validate() {
            Ok(()) => Ok(()),
            Err(crate::drift::DriftError::Config { key, problem }) => Err(InvalidKey::new(
                &format!("drift.{key}"),
                match key {
                    "window" => self.window.to_string(),
                    "test_every" => self.test_every.to_string(),
                    "projections" => self.projections.to_string(),
                    "permutations" => self.permutations.to_string(),
                    "p" => self.p.to_string(),
                    "alpha" => self.alpha.to_string(),
                    _ => format!("{}/{}", self.enter_after, self.exit_after),
                },
                problem,
            )),
            Err(e) => Err(InvalidKey::new("drift", "", e.to_string())),
        }
    }
}

/// The drift reference beside a model manifest: `X.manifest.json` → `X.drift.json`.
pub fn default_drift_reference(manifest: &Path) -> PathBuf {
    let name = manifest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name
        .strip_suffix(".manifest.json")
        .or_else(|| name.strip_suffix(".json"))
        .unwrap_or(&name);
    manifest.with_file_name(format!("{stem}.drift.json"))
}

/// Everything the daemon reads from a station config.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DaemonConfig {
    /// `[station] name` (journalled with every inspection).
    pub station: String,
    /// `[station] profile` (journalled with every inspection).
    pub profile: String,
    /// Calibration and profile, for the synthetic camera.
    pub scene: SceneHints,
    pub camera: CameraConfig,
    pub trigger: TriggerConfig,
    pub gpio: GpioConfig,
    pub journal: JournalConfig,
    pub display: DisplayConfig,
    pub daemon: DaemonSection,
    pub drift: DriftSection,
}

/// A station config the daemon cannot use; names the file, the key and the problem.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Station(#[from] crate::config::ConfigError),
    #[error("station config {origin}: {message}")]
    Syntax { origin: String, message: String },
    #[error("station config {0}: {1}")]
    Invalid(String, InvalidKey),
}

fn one_line(s: &str) -> String {
    s.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.chars().all(|c| c == '|' || c == '^' || c == ' '))
        .collect::<Vec<_>>()
        .join(" ")
}

impl DaemonConfig {
    /// Read and validate a whole station config file (every section, through
    /// [`StationConfig`]) and take the daemon's sections; relative paths are resolved against
    /// the file's folder.
    pub fn from_file(path: &Path) -> Result<DaemonConfig, ConfigError> {
        let station = StationConfig::from_file(path)?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        DaemonConfig::from_station(&station, &path.display().to_string(), base)
    }

    /// As [`DaemonConfig::from_file`], from TOML text (`origin` names it in errors).
    pub fn from_toml_str(
        text: &str,
        origin: &str,
        base: &Path,
    ) -> Result<DaemonConfig, ConfigError> {
        let station = StationConfig::from_toml_str(text, origin)?;
        DaemonConfig::from_station(&station, origin, base)
    }

    /// The daemon's sections of a parsed station config: typed, validated, relative paths
    /// resolved against `base`.
    pub fn from_station(
        station: &StationConfig,
        origin: &str,
        base: &Path,
    ) -> Result<DaemonConfig, ConfigError> {
        fn section<T: serde::de::DeserializeOwned + Default>(
            table: &Option<toml::Table>,
            name: &str,
            origin: &str,
        ) -> Result<T, ConfigError> {
            match table {
                None => Ok(T::default()),
                Some(t) => {
                    toml::Value::Table(t.clone())
                        .try_into()
                        .map_err(|e: toml::de::Error| ConfigError::Syntax {
                            origin: origin.to_string(),
                            message: format!("[{name}]: {}", one_line(&e.to_string())),
                        })
                }
            }
        }
        let invalid = |e: InvalidKey| ConfigError::Invalid(origin.to_string(), e);
        let mut cfg = DaemonConfig {
            station: station.station.name.clone(),
            profile: station.station.profile.clone(),
            scene: SceneHints {
                um_per_px_x: station.calibration.um_per_px_x,
                um_per_px_y: station.calibration.um_per_px_y,
                profile: station.station.profile.clone(),
            },
            camera: section(&station.camera, "camera", origin)?,
            trigger: section(&station.trigger, "trigger", origin)?,
            gpio: section(&station.gpio, "gpio", origin)?,
            journal: section(&station.journal, "journal", origin)?,
            display: section(&station.display, "display", origin)?,
            daemon: section(&station.daemon, "daemon", origin)?,
            drift: section(&station.drift, "drift", origin)?,
        };
        cfg.drift.validate().map_err(invalid)?;
        if let Some(r) = cfg.drift.reference.as_mut() {
            if r.is_relative() {
                *r = base.join(&*r);
            }
        }
        cfg.camera.validate().map_err(invalid)?;
        cfg.trigger.validate().map_err(invalid)?;
        cfg.gpio.validate().map_err(invalid)?;
        cfg.journal.validate().map_err(invalid)?;
        cfg.display.validate().map_err(invalid)?;
        cfg.validate_daemon().map_err(invalid)?;
        cfg.camera.resolve_paths(base);
        cfg.trigger.resolve_paths(base);
        cfg.gpio.resolve_paths(base);
        cfg.journal.resolve_paths(base);
        cfg.display.resolve_paths(base);
        Ok(cfg)
    }

    fn validate_daemon(&self) -> Result<(), InvalidKey> {
        let d = &self.daemon;
        if d.watchdog_ms <= self.camera.frame_timeout_ms {
            return Err(InvalidKey::new(
                "daemon.watchdog_ms",
                d.watchdog_ms,
                format!(
                    "must be longer than camera.frame_timeout_ms ({}), or a waiting camera reads as a hung pipeline",
                    self.camera.frame_timeout_ms
                ),
            ));
        }
        if d.watchdog_ms > 3_600_000 {
            return Err(InvalidKey::new(
                "daemon.watchdog_ms",
                d.watchdog_ms,
                "must be at most 3600000",
            ));
        }
        if d.max_model_errors == 0 {
            return Err(InvalidKey::new(
                "daemon.max_model_errors",
                0,
                "must be at least 1",
            ));
        }
        if !(1..=64).contains(&d.queue) {
            return Err(InvalidKey::new("daemon.queue", d.queue, "must be 1..=64"));
        }
        if !(1..=pipeline::MAX_WORKERS).contains(&d.workers) {
            return Err(InvalidKey::new(
                "daemon.workers",
                d.workers,
                "must be 1..=16 (one model session per worker)",
            ));
        }
        if d.marker_delay_ms > 60_000 {
            return Err(InvalidKey::new(
                "daemon.marker_delay_ms",
                d.marker_delay_ms,
                "must be at most 60000",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_is_valid_and_other_sections_are_ignored() {
        let c = DaemonConfig::from_toml_str(
            "[station]\nname = \"line-3\"\n[model]\nmanifest = \"m.json\"\n",
            "t.toml",
            Path::new("/etc/endface"),
        )
        .unwrap();
        assert_eq!(c.station, "line-3");
        assert_eq!(c.profile, "sm-upc");
        assert_eq!(
            c.journal.path,
            PathBuf::from("/var/lib/endface/journal/inspections.db")
        );
    }

    #[test]
    fn errors_name_key_and_file() {
        for (text, needle) in [
            ("[camera]\nexposur = 3", "exposur"),
            ("[gpio]\nreject_ms = 0", "gpio.reject_ms"),
            ("[daemon]\nwatchdog_ms = 100", "daemon.watchdog_ms"),
            ("[daemon]\nqueue = 0", "daemon.queue"),
            ("[daemon]\nworkers = 0", "daemon.workers"),
            ("[daemon]\nworkers = 17", "daemon.workers"),
            ("[trigger]\nmode = \"gpio\"", "trigger.line"),
            ("[journal]\npath = \"\"", "journal.path"),
            ("[camera\n", "t.toml"),
        ] {
            let e = DaemonConfig::from_toml_str(text, "t.toml", Path::new("."))
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle) && e.contains("t.toml"), "{text}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn relative_paths_follow_the_config_file() {
        let c = DaemonConfig::from_toml_str(
            "[journal]\npath = \"state/j.db\"\n[camera]\nsource = \"replay\"\npath = \"frames\"\n",
            "t.toml",
            Path::new("/srv/station"),
        )
        .unwrap();
        assert_eq!(c.journal.path, PathBuf::from("/srv/station/state/j.db"));
        assert_eq!(c.camera.path, Some(PathBuf::from("/srv/station/frames")));
        assert_eq!(
            c.journal.images_dir(),
            PathBuf::from("/srv/station/state/images")
        );
    }
}
