//! The inspection model on ONNX Runtime: a manifest path in, a ready session out.
//!
//! In: a model manifest (`models/<name>.manifest.json`, schema in models/MANIFEST.md) and the
//! `[runtime]` config section. Out: a [`Model`] whose input tensor the caller fills with a gray
//! crop ([`Model::set_gray_input`]), which runs it ([`Model::run`]) and exposes the named
//! outputs as `f32` slices in crop space ([`Model::output`]).
//!
//! Loading checks everything the manifest promises: the `.onnx` bytes hash to `sha256`, the
//! session's input and outputs have the manifest's names, element type and shapes. ONNX
//! Runtime itself is a shared library loaded at run time (ort `load-dynamic`):
//! [`find_runtime_library`] takes `$ENDFACE_ORT_LIB`, else the config's `onnxruntime_library`,
//! then the default folders; `scripts/setup-ort.sh` puts a pinned copy in `.ort/<arch>/`.
//!
//! Execution providers are registered in the configured order (TensorRT, CUDA, CPU). ONNX
//! Runtime tells us whether a registration succeeded; which provider then *ran* the nodes is
//! read from an ONNX Runtime profile of the warm-up run (each node's `provider`), so the log
//! and [`Model::provider`] report what actually happened, not what was asked for.
//!
//! Buffers: the input tensor and every output tensor are allocated once and bound to the
//! session through an `IoBinding`; steady-state runs write into the same memory.

use crate::config::{ProviderKind, RuntimeSection};
use crate::error::exit;
use ort::ep::ExecutionProvider;
use ort::memory::Allocator;
use ort::session::{IoBinding, Session};
use ort::value::{Tensor, TensorElementType, ValueType};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use tracing::{debug, info, warn};

/// The manifest schema this build reads.
pub const MANIFEST_SCHEMA: &str = "endface.model-manifest/1";
/// The ONNX Runtime version `scripts/setup-ort.sh` installs (and the Python tooling uses).
pub const PINNED_ORT_VERSION: &str = "1.20.1";
/// Environment variable naming the ONNX Runtime library.
pub const ORT_LIB_ENV: &str = "ENDFACE_ORT_LIB";
/// Largest input a manifest may declare (pixels per channel): guards buffer sizes.
const MAX_INPUT_PIXELS: usize = 4096 * 4096;
/// Largest output a manifest may declare (values): outputs are preallocated at load.
const MAX_OUTPUT_ELEMENTS: i64 = 4 * 4096 * 4096;

/// Errors loading or running the model. [`ModelError::exit_code`] maps each to the CLI's code.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("ONNX Runtime library not found (looked for {}); run `scripts/setup-ort.sh` in the endface repository (installs onnxruntime {PINNED_ORT_VERSION} into .ort/{}/), or point `[runtime] onnxruntime_library` or ${ORT_LIB_ENV} at a libonnxruntime.so", .searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "), std::env::consts::ARCH)]
    RuntimeMissing { searched: Vec<PathBuf> },
    #[error("ONNX Runtime library {path} (from {origin}) does not exist; fix the path or run `scripts/setup-ort.sh`")]
    RuntimeConfiguredMissing { path: PathBuf, origin: String },
    #[error("cannot load ONNX Runtime from {path}: {message}; run `scripts/setup-ort.sh` for a known-good copy (onnxruntime {PINNED_ORT_VERSION})")]
    RuntimeLoad { path: PathBuf, message: String },
    #[error("cannot read model manifest {path}: {source}")]
    ManifestIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("model manifest {path}: {message}")]
    ManifestSyntax { path: PathBuf, message: String },
    #[error("model manifest {path}: key `{key}`: {problem}")]
    ManifestInvalid {
        path: PathBuf,
        key: String,
        problem: String,
    },
    #[error("cannot read model file {path} (named by manifest {manifest}): {source}")]
    ModelIo {
        path: PathBuf,
        manifest: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("model file {path} has sha256 {actual}, but manifest {manifest} says {expected}: the model and its manifest do not belong together")]
    Sha256Mismatch {
        path: PathBuf,
        manifest: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("ONNX Runtime cannot load model {path}: {message}")]
    Session { path: PathBuf, message: String },
    #[error("model {path} does not match manifest {manifest}: {problem}")]
    Mismatch {
        path: PathBuf,
        manifest: PathBuf,
        problem: String,
    },
    #[error(
        "no accelerator took model {path} and `[runtime] require_accelerator = true`: {detail}"
    )]
    NoAccelerator { path: PathBuf, detail: String },
    #[error("inference failed for model {path}: {message}")]
    Inference { path: PathBuf, message: String },
    #[error("input has {got} pixels but the model takes {expected} ({width}x{height})")]
    InputSize {
        got: usize,
        expected: usize,
        width: usize,
        height: usize,
    },
}

impl ModelError {
    /// The process exit code for this error (see `crate::error::exit`).
    pub fn exit_code(&self) -> u8 {
        match self {
            ModelError::RuntimeMissing { .. }
            | ModelError::RuntimeConfiguredMissing { .. }
            | ModelError::RuntimeLoad { .. } => exit::RUNTIME_MISSING,
            ModelError::NoAccelerator { .. } => exit::NO_ACCELERATOR,
            ModelError::Inference { .. } | ModelError::InputSize { .. } => exit::FAILURE,
            _ => exit::BAD_MODEL,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Manifest

/// What the model outputs: a reconstruction to compare with the input, or the map itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// Outputs a defect-free reconstruction (and maybe an anomaly head).
    Reconstruction,
    /// Outputs the anomaly map directly (anomalib-style exports).
    AnomalyMap,
}

/// One number for every channel, or one per channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PerChannel {
    One(f64),
    Each(Vec<f64>),
}

impl PerChannel {
    /// The value for channel `c` (a single number applies to all).
    pub fn get(&self, c: usize) -> Option<f64> {
        match self {
            PerChannel::One(v) => Some(*v),
            PerChannel::Each(v) => v.get(c).copied(),
        }
    }
    fn len_ok(&self, channels: usize) -> bool {
        match self {
            PerChannel::One(_) => true,
            PerChannel::Each(v) => v.len() == channels,
        }
    }
}

/// `input.normalization`: `x_norm = (p/255 - mean) / std`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Normalization {
    pub mean: PerChannel,
    pub std: PerChannel,
}

/// `input`: the single input tensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    pub name: String,
    /// `[1, C, H, W]`.
    pub shape: Vec<i64>,
    #[serde(default = "default_dtype")]
    pub dtype: String,
    #[serde(default = "default_layout")]
    pub layout: String,
    /// `gray` (C = 1) or `rgb` (C = 3; the gray frame is replicated into each channel).
    #[serde(default = "default_color")]
    pub color: String,
    pub normalization: Normalization,
}

fn default_dtype() -> String {
    "float32".into()
}
fn default_layout() -> String {
    "NCHW".into()
}
fn default_color() -> String {
    "gray".into()
}

/// One entry of `outputs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    pub name: String,
    pub shape: Vec<i64>,
    #[serde(default)]
    pub meaning: String,
}

/// Where the anomaly map comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnomalyMapSpec {
    /// `"abs_diff"` (|input - reconstruction| in intensity units) or an output's name.
    pub source: String,
    /// Gaussian smoothing (crop pixels) applied to the map; 0 = none.
    #[serde(default)]
    pub smoothing_sigma_px: f64,
}

/// The map source `abs_diff`.
pub const ABS_DIFF: &str = "abs_diff";

/// `crack`: an output that tells cracks from scratches and spots (models/MANIFEST.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrackSpec {
    /// Name of the output: per crop pixel, the probability in [0, 1] that an anomalous pixel
    /// belongs to a crack. Same H x W as the anomaly map.
    pub output: String,
    /// A defect whose pixels average at least this is a crack: graded as a defect by its
    /// size (max Feret diameter), not as a scratch by its width.
    pub min_mean: f64,
}

/// `thresholds`: calibrated decision values on the anomaly map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// A crop pixel is defective when its map value is above this.
    pub pixel: f64,
    /// An image is anomalous when its score (max of the map in the contact zone) is above this.
    pub image: f64,
    /// Hysteresis: a defect (a component with a pixel above `pixel`) extends over its connected
    /// pixels above this value. Absent: `pixel` (a plain threshold).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grow: Option<f64>,
    #[serde(default)]
    pub target_false_reject_rate: Option<f64>,
    #[serde(default)]
    pub calibrated_on: Option<String>,
    /// Further calibration details (kept, not interpreted).
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// The model manifest (models/MANIFEST.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub schema: String,
    pub kind: ModelKind,
    pub name: String,
    pub version: String,
    /// Relative to the manifest's folder.
    pub onnx_file: String,
    pub sha256: String,
    pub input: InputSpec,
    pub outputs: Vec<OutputSpec>,
    /// Scale of the model input crop (square pixels), µm per crop pixel.
    pub um_per_px: f64,
    pub anomaly_map: AnomalyMapSpec,
    /// Optional crack classifier output; absent: cracks are measured by shape like any
    /// linear feature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crack: Option<CrackSpec>,
    pub thresholds: Thresholds,
    #[serde(default)]
    pub training: serde_json::Value,
    #[serde(default)]
    pub metrics: serde_json::Value,
    /// Keys this build does not know (warned about, otherwise ignored).
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl Manifest {
    /// Read and validate a manifest file (does not touch the `.onnx`).
    pub fn from_file(path: &Path) -> Result<Manifest, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::ManifestIo {
            path: path.to_path_buf(),
            source,
        })?;
        Manifest::from_json_str(&text, path)
    }

    /// Parse and validate manifest JSON; `path` names it in errors.
    pub fn from_json_str(text: &str, path: &Path) -> Result<Manifest, ModelError> {
        let m: Manifest = serde_json::from_str(text).map_err(|e| ModelError::ManifestSyntax {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        m.validate(path)?;
        if !m.extra.is_empty() {
            warn!(
                "model manifest {}: ignoring unknown keys: {}",
                path.display(),
                m.extra.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        }
        Ok(m)
    }

    /// Input channels, height and width.
    pub fn input_chw(&self) -> (usize, usize, usize) {
        let d = |i: usize| self.input.shape.get(i).copied().unwrap_or(0).max(0) as usize;
        (d(1), d(2), d(3))
    }

    /// The output holding the reconstruction for `abs_diff`: the one named "reconstruction",
    /// else the only output.
    pub fn reconstruction_output(&self) -> Option<&str> {
        if let Some(o) = self.outputs.iter().find(|o| o.name == "reconstruction") {
            return Some(&o.name);
        }
        match self.outputs.as_slice() {
            [only] => Some(&only.name),
            _ => None,
        }
    }

    /// The output that [`crate::anomaly`] reads: the reconstruction for `abs_diff`, else the
    /// named map output.
    pub fn map_output(&self) -> Option<&str> {
        if self.anomaly_map.source == ABS_DIFF {
            self.reconstruction_output()
        } else {
            self.outputs
                .iter()
                .find(|o| o.name == self.anomaly_map.source)
                .map(|o| o.name.as_str())
        }
    }

    fn validate(&self, path: &Path) -> Result<(), ModelError> {
        let bad = |key: &str, problem: String| ModelError::ManifestInvalid {
            path: path.to_path_buf(),
            key: key.to_string(),
            problem,
        };
        if self.schema != MANIFEST_SCHEMA {
            return Err(bad(
                "schema",
                format!(
                    "\"{}\" is not supported by this build (expects \"{MANIFEST_SCHEMA}\")",
                    self.schema
                ),
            ));
        }
        if self.onnx_file.trim().is_empty() {
            return Err(bad("onnx_file", "empty".into()));
        }
        if self.sha256.len() != 64 || !self.sha256.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad(
                "sha256",
                format!("\"{}\" is not 64 hex digits", self.sha256),
            ));
        }
        let inp = &self.input;
        if inp.dtype != "float32" {
            return Err(bad(
                "input.dtype",
                format!("\"{}\": only \"float32\" is supported", inp.dtype),
            ));
        }
        if inp.layout != "NCHW" {
            return Err(bad(
                "input.layout",
                format!("\"{}\": only \"NCHW\" is supported", inp.layout),
            ));
        }
        let want_c = match inp.color.as_str() {
            "gray" => 1,
            "rgb" => 3,
            other => {
                return Err(bad(
                    "input.color",
                    format!("\"{other}\": use \"gray\" or \"rgb\""),
                ))
            }
        };
        let shape_ok = inp.shape.len() == 4
            && inp.shape[0] == 1
            && inp.shape[1] == want_c
            && inp.shape[2] > 0
            && inp.shape[3] > 0;
        if !shape_ok {
            return Err(bad(
                "input.shape",
                format!(
                    "{:?}: expected [1, {want_c}, H, W] for color \"{}\"",
                    inp.shape, inp.color
                ),
            ));
        }
        let (c, h, w) = self.input_chw();
        if h.saturating_mul(w) > MAX_INPUT_PIXELS {
            return Err(bad(
                "input.shape",
                format!("{w}x{h} is larger than {MAX_INPUT_PIXELS} pixels"),
            ));
        }
        for (key, v) in [
            ("input.normalization.mean", &inp.normalization.mean),
            ("input.normalization.std", &inp.normalization.std),
        ] {
            if !v.len_ok(c) {
                return Err(bad(key, format!("needs 1 or {c} values")));
            }
            for ch in 0..c {
                let x = v.get(ch).unwrap_or(f64::NAN);
                if !x.is_finite() || (key.ends_with("std") && x <= 0.0) {
                    return Err(bad(key, format!("{x} is not acceptable")));
                }
            }
        }
        if self.outputs.is_empty() {
            return Err(bad("outputs", "empty".into()));
        }
        for (i, o) in self.outputs.iter().enumerate() {
            if o.name.is_empty() {
                return Err(bad(&format!("outputs[{i}].name"), "empty".into()));
            }
            if self.outputs[..i].iter().any(|p| p.name == o.name) {
                return Err(bad(
                    &format!("outputs[{i}].name"),
                    format!("\"{}\" listed twice", o.name),
                ));
            }
            if o.shape.is_empty() || o.shape.iter().any(|&d| d <= 0) {
                return Err(bad(
                    &format!("outputs[{i}].shape"),
                    format!("{:?}: every dimension must be a positive number", o.shape),
                ));
            }
            let numel = o
                .shape
                .iter()
                .try_fold(1i64, |acc, &d| acc.checked_mul(d))
                .filter(|&n| n <= MAX_OUTPUT_ELEMENTS);
            if numel.is_none() {
                return Err(bad(
                    &format!("outputs[{i}].shape"),
                    format!("{:?}: more than {MAX_OUTPUT_ELEMENTS} values", o.shape),
                ));
            }
        }
        if !(self.um_per_px.is_finite() && self.um_per_px > 0.0) {
            return Err(bad(
                "um_per_px",
                format!("{} is not a positive scale", self.um_per_px),
            ));
        }
        let src = &self.anomaly_map.source;
        match (self.kind, src.as_str()) {
            (ModelKind::AnomalyMap, ABS_DIFF) => {
                return Err(bad(
                    "anomaly_map.source",
                    "\"abs_diff\" needs kind \"reconstruction\"; name the map output".into(),
                ))
            }
            (ModelKind::Reconstruction, ABS_DIFF) if self.reconstruction_output().is_none() => {
                return Err(bad(
                    "anomaly_map.source",
                    "\"abs_diff\" needs an output named \"reconstruction\"".into(),
                ))
            }
            _ => {}
        }
        let Some(map_name) = self.map_output() else {
            return Err(bad(
                "anomaly_map.source",
                format!("\"{src}\" is neither \"abs_diff\" nor one of the outputs"),
            ));
        };
        // The map (or reconstruction) must be H x W, optionally with leading 1s (and C for a
        // reconstruction): [1,1,H,W], [1,H,W], [H,W] or [1,C,H,W].
        if let Some(o) = self.outputs.iter().find(|o| o.name == map_name) {
            // infallible: every output's element count was bounded above.
            let n: i64 = o.shape.iter().product();
            let hw = (h * w) as i64;
            let last2 = o.shape.len() >= 2 && o.shape[o.shape.len() - 2..] == [h as i64, w as i64];
            if !last2 || (n != hw && n != hw * c as i64) {
                return Err(bad(
                    "outputs",
                    format!(
                        "output \"{map_name}\" has shape {:?}; the map needs the input's {h}x{w}",
                        o.shape
                    ),
                ));
            }
        }
        if let Some(cs) = &self.crack {
            let Some(o) = self.outputs.iter().find(|o| o.name == cs.output) else {
                return Err(bad(
                    "crack.output",
                    format!("\"{}\" is not one of the outputs", cs.output),
                ));
            };
            let n: i64 = o.shape.iter().product();
            let last2 = o.shape.len() >= 2 && o.shape[o.shape.len() - 2..] == [h as i64, w as i64];
            if !last2 || n != (h * w) as i64 {
                return Err(bad(
                    "crack.output",
                    format!(
                        "output \"{}\" has shape {:?}; the crack map needs one {h}x{w} plane",
                        cs.output, o.shape
                    ),
                ));
            }
            if !(cs.min_mean.is_finite() && (0.0..=1.0).contains(&cs.min_mean)) {
                return Err(bad(
                    "crack.min_mean",
                    format!("{} is not a probability in [0, 1]", cs.min_mean),
                ));
            }
        }
        let sigma = self.anomaly_map.smoothing_sigma_px;
        if !(sigma.is_finite() && (0.0..=50.0).contains(&sigma)) {
            return Err(bad(
                "anomaly_map.smoothing_sigma_px",
                format!("{sigma} is not in [0, 50]"),
            ));
        }
        for (key, v) in [
            ("thresholds.pixel", self.thresholds.pixel),
            ("thresholds.image", self.thresholds.image),
        ] {
            if !v.is_finite() {
                return Err(bad(key, format!("{v} is not a finite number")));
            }
        }
        if let Some(g) = self.thresholds.grow {
            if !g.is_finite() || g > self.thresholds.pixel {
                return Err(bad(
                    "thresholds.grow",
                    format!(
                        "{g} must be a finite number no higher than thresholds.pixel ({})",
                        self.thresholds.pixel
                    ),
                ));
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Runtime library

/// Folders searched for `libonnxruntime.so` when neither the config nor the environment names
/// one, in order: `<exe dir>/../../.ort/<arch>/` (a cargo build in the repository),
/// `./.ort/<arch>/`, `/usr/lib/endface/`, `/var/lib/endface/ort/`.
pub fn default_runtime_dirs() -> Vec<PathBuf> {
    let arch = std::env::consts::ARCH;
    let mut dirs = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        if let Some(repo) = exe.parent().and_then(Path::parent).and_then(Path::parent) {
            dirs.push(repo.join(".ort").join(arch));
        }
    }
    if let Ok(cwd) = std::env::current_dir() {
        dirs.push(cwd.join(".ort").join(arch));
    }
    dirs.push(PathBuf::from("/usr/lib/endface"));
    dirs.push(PathBuf::from("/var/lib/endface/ort"));
    dirs
}

/// Where the ONNX Runtime library is: `$ENDFACE_ORT_LIB` (a one-off override), else
/// `configured` (the config's `[runtime] onnxruntime_library`), else the first
/// `libonnxruntime.so` in [`default_runtime_dirs`]. A path named explicitly must exist (no
/// silent fallback to another copy).
pub fn find_runtime_library(configured: Option<&Path>) -> Result<PathBuf, ModelError> {
    let env = std::env::var_os(ORT_LIB_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    find_runtime_library_in(env, configured, &default_runtime_dirs())
}

/// [`find_runtime_library`] with the environment value and default folders given.
pub fn find_runtime_library_in(
    env: Option<PathBuf>,
    configured: Option<&Path>,
    default_dirs: &[PathBuf],
) -> Result<PathBuf, ModelError> {
    let explicit = env
        .map(|p| (p, format!("${ORT_LIB_ENV}")))
        .or_else(|| configured.map(|p| (p.to_path_buf(), "[runtime] onnxruntime_library".into())));
    if let Some((path, origin)) = explicit {
        return if path.is_file() {
            Ok(path)
        } else {
            Err(ModelError::RuntimeConfiguredMissing { path, origin })
        };
    }
    let searched: Vec<PathBuf> = default_dirs
        .iter()
        .map(|d| d.join("libonnxruntime.so"))
        .collect();
    searched
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or(ModelError::RuntimeMissing { searched })
}

/// The process-wide ONNX Runtime environment and the library it came from.
struct Runtime {
    env: ort::environment::Environment,
    path: PathBuf,
}

static RUNTIME: OnceLock<Runtime> = OnceLock::new();
static RUNTIME_INIT: Mutex<()> = Mutex::new(());

/// Load ONNX Runtime (once per process) and return the library path in use. Later calls
/// return the first library even when asked for another (ONNX Runtime cannot be unloaded).
pub fn init_runtime(configured: Option<&Path>) -> Result<PathBuf, ModelError> {
    Ok(runtime(configured)?.path.clone())
}

fn runtime(configured: Option<&Path>) -> Result<&'static Runtime, ModelError> {
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    // A poisoned lock only means another thread panicked mid-init; the OnceLock still tells
    // whether the runtime is up.
    let _guard = RUNTIME_INIT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let path = find_runtime_library(configured)?;
    let path = std::fs::canonicalize(&path).unwrap_or(path);
    let builder = ort::init_from(&path).map_err(|e| ModelError::RuntimeLoad {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let env = builder
        .with_name("endface")
        .with_telemetry(false)
        .with_logger(std::sync::Arc::new(ort_log))
        .build()
        .map_err(|e| ModelError::RuntimeLoad {
            path: path.clone(),
            message: e.to_string(),
        })?;
    info!("ONNX Runtime loaded from {}", path.display());
    Ok(RUNTIME.get_or_init(|| Runtime { env, path }))
}

/// ONNX Runtime's own log lines, re-leveled for our policy (target `onnxruntime`): its INFO
/// chatter (graph transformers, session options) is debug!, VERBOSE is trace!.
fn ort_log(
    level: ort::logging::LogLevel,
    _category: &str,
    _id: &str,
    location: &str,
    message: &str,
) {
    use ort::logging::LogLevel;
    match level {
        LogLevel::Verbose => tracing::trace!(target: "onnxruntime", "{message} ({location})"),
        LogLevel::Info => tracing::debug!(target: "onnxruntime", "{message}"),
        LogLevel::Warning => tracing::warn!(target: "onnxruntime", "{message}"),
        LogLevel::Error | LogLevel::Fatal => {
            tracing::error!(target: "onnxruntime", "{message} ({location})")
        }
    }
}

/// Session log severity: ONNX Runtime builds every message at or above it, so keep it at
/// warnings unless debug logging is on.
fn session_log_level() -> ort::logging::LogLevel {
    if tracing::enabled!(target: "onnxruntime", tracing::Level::TRACE) {
        ort::logging::LogLevel::Verbose
    } else if tracing::enabled!(target: "onnxruntime", tracing::Level::DEBUG) {
        ort::logging::LogLevel::Info
    } else {
        ort::logging::LogLevel::Warning
    }
}

// ---------------------------------------------------------------------------------------------
// Providers

/// What happened to the execution providers for one model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProviderReport {
    /// Providers asked for, in order.
    pub requested: Vec<ProviderKind>,
    /// Providers ONNX Runtime accepted at registration.
    pub registered: Vec<ProviderKind>,
    /// Registration failures (provider, ONNX Runtime's message).
    pub rejected: Vec<(ProviderKind, String)>,
    /// Nodes run per provider in the profiled warm-up run (ONNX Runtime names); empty when
    /// the profile could not be read.
    pub nodes_by_provider: BTreeMap<String, usize>,
    /// The provider that ran most nodes (short name, e.g. "tensorrt", "cuda", "cpu").
    pub primary: String,
    /// Whether `primary` comes from the profile (true) or is inferred from registration.
    pub measured: bool,
}

impl ProviderReport {
    /// One-line summary for logs.
    pub fn summary(&self) -> String {
        if self.measured {
            let total: usize = self.nodes_by_provider.values().sum();
            let parts: Vec<String> = self
                .nodes_by_provider
                .iter()
                .map(|(p, n)| format!("{n} on {p}"))
                .collect();
            format!(
                "{} ({} of {total} node(s): {})",
                self.primary,
                self.nodes_by_provider
                    .iter()
                    .filter(|(p, _)| short_provider(p) == self.primary)
                    .map(|(_, n)| *n)
                    .sum::<usize>(),
                parts.join(", ")
            )
        } else {
            format!(
                "{} (inferred from registration; profile unavailable)",
                self.primary
            )
        }
    }

    /// Whether any node ran on an accelerator (or, without a profile, one registered).
    pub fn accelerated(&self) -> bool {
        if self.measured {
            self.nodes_by_provider
                .iter()
                .any(|(p, n)| *n > 0 && ProviderKind::from_ort_name(p) != Some(ProviderKind::Cpu))
        } else {
            self.registered.iter().any(|p| p.is_accelerator())
        }
    }
}

fn short_provider(ort_name: &str) -> String {
    match ProviderKind::from_ort_name(ort_name) {
        Some(p) => p.short_name().to_string(),
        None => ort_name.to_string(),
    }
}

fn register_providers(
    builder: &mut ort::session::builder::SessionBuilder,
    rt: &RuntimeSection,
) -> (Vec<ProviderKind>, Vec<(ProviderKind, String)>) {
    let mut registered = Vec::new();
    let mut rejected = Vec::new();
    for &p in &rt.providers {
        let built_in = match p {
            ProviderKind::Tensorrt => ort::ep::TensorRT::is_available(),
            ProviderKind::Cuda => ort::ep::CUDA::is_available(),
            ProviderKind::Cpu => Ok(true),
        };
        if let Ok(false) = built_in {
            let msg = "not in this ONNX Runtime build (a CPU-only library? use the GPU build, e.g. JetPack's on a Jetson)".to_string();
            info!("execution provider {} not available: {msg}", p.ort_name());
            rejected.push((p, msg));
            continue;
        }
        let result = match p {
            ProviderKind::Tensorrt => {
                let mut trt = ort::ep::TensorRT::default()
                    .with_device_id(rt.device_id)
                    .with_fp16(rt.trt_fp16)
                    .with_max_workspace_size(rt.trt_workspace_mb as usize * 1024 * 1024);
                match std::fs::create_dir_all(&rt.trt_cache_dir) {
                    Ok(()) => {
                        let dir = rt.trt_cache_dir.display().to_string();
                        trt = trt
                            .with_engine_cache(true)
                            .with_engine_cache_path(&dir)
                            .with_timing_cache(true)
                            .with_timing_cache_path(&dir);
                    }
                    Err(e) => warn!(
                        "TensorRT engine cache {} cannot be created ({e}); engines will be rebuilt at every start",
                        rt.trt_cache_dir.display()
                    ),
                }
                trt.register(builder)
            }
            ProviderKind::Cuda => ort::ep::CUDA::default()
                .with_device_id(rt.device_id)
                .register(builder),
            // ort's `CPU::default()` turns ONNX Runtime's CPU arena *off*: then the model's
            // activation block (26.5 MB for the shipped model) is malloc'ed and freed on every
            // run, and page-faulted afresh once the daemon fixes malloc's mmap threshold
            // (model run +25-35 % on x86; BENCHMARKS.md "Memory").
            ProviderKind::Cpu => ort::ep::CPU::default()
                .with_arena_allocator(rt.cpu_mem_arena)
                .register(builder),
        };
        match result {
            Ok(()) => {
                debug!("execution provider {} registered", p.ort_name());
                registered.push(p);
            }
            Err(e) => {
                let msg = e.to_string().replace('\n', " ");
                if p.is_accelerator() {
                    info!("execution provider {} not available: {msg}", p.ort_name());
                }
                rejected.push((p, msg));
            }
        }
    }
    (registered, rejected)
}

/// Count kernel runs per provider in an ONNX Runtime profile (JSON array of trace events;
/// node kernels have `"cat": "Node"` and `args.provider`).
pub fn nodes_by_provider_from_profile(json: &str) -> Option<BTreeMap<String, usize>> {
    let events: Vec<serde_json::Value> = serde_json::from_str(json).ok()?;
    let mut counts = BTreeMap::new();
    for e in &events {
        if e.get("cat").and_then(|c| c.as_str()) != Some("Node") {
            continue;
        }
        if let Some(p) = e
            .get("args")
            .and_then(|a| a.get("provider"))
            .and_then(|p| p.as_str())
        {
            *counts.entry(p.to_string()).or_insert(0) += 1;
        }
    }
    Some(counts)
}

// ---------------------------------------------------------------------------------------------
// Model

/// A loaded, checked, warmed-up model with its reusable input/output buffers.
pub struct Model {
    manifest: Manifest,
    manifest_path: PathBuf,
    onnx_path: PathBuf,
    session: Session,
    binding: IoBinding,
    input: Tensor<f32>,
    /// The input's name for ONNX Runtime (NUL-terminated once, not per run).
    input_name: std::ffi::CString,
    /// Output tensors, in manifest order.
    outputs: Vec<(String, Tensor<f32>)>,
    provider: ProviderReport,
    channels: usize,
    width: usize,
    height: usize,
    mean: Vec<f32>,
    inv_std: Vec<f32>,
    /// [`Model::run_gray_flips`]: the mirrored crop, and per output the running sum of its
    /// un-mirrored planes (empty for an output that is not whole H x W planes, e.g. a score).
    flip_px: Vec<f32>,
    flip_acc: Vec<Vec<f32>>,
}

/// The crop mirrorings [`Model::run_gray_flips`] runs, (left-right, upside-down), the
/// unmirrored crop last so that the input tensor holds it afterwards; `flips` = n takes the
/// last n.
const FLIP_ORDER: [(bool, bool); 4] = [(true, true), (false, true), (true, false), (false, false)];

/// The numbers of flips [`Model::run_gray_flips`] accepts.
pub const FLIP_COUNTS: [usize; 3] = [1, 2, 4];

/// Mirror a `w` x `h` plane (an involution: the same call undoes it).
fn flip_index(u: usize, v: usize, w: usize, h: usize, fx: bool, fy: bool) -> usize {
    let (su, sv) = (
        if fx { w - 1 - u } else { u },
        if fy { h - 1 - v } else { v },
    );
    sv * w + su
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("manifest", &self.manifest_path)
            .field("onnx", &self.onnx_path)
            .field("provider", &self.provider.primary)
            .finish_non_exhaustive()
    }
}

impl Model {
    /// Load the model named by a manifest: checks, session with providers, warm-up run.
    pub fn load(manifest_path: &Path, rt: &RuntimeSection) -> Result<Model, ModelError> {
        let manifest = Manifest::from_file(manifest_path)?;
        let base = manifest_path.parent().unwrap_or_else(|| Path::new("."));
        let onnx_path = base.join(&manifest.onnx_file);
        let bytes = std::fs::read(&onnx_path).map_err(|source| ModelError::ModelIo {
            path: onnx_path.clone(),
            manifest: manifest_path.to_path_buf(),
            source,
        })?;
        let actual = hex::encode(Sha256::digest(&bytes));
        if !actual.eq_ignore_ascii_case(&manifest.sha256) {
            return Err(ModelError::Sha256Mismatch {
                path: onnx_path,
                manifest: manifest_path.to_path_buf(),
                expected: manifest.sha256.clone(),
                actual,
            });
        }
        let runtime = runtime(rt.onnxruntime_library.as_deref())?;

        let session_err = |e: ort::Error| ModelError::Session {
            path: onnx_path.clone(),
            message: e.to_string().replace('\n', " "),
        };
        let mut builder = Session::builder(&runtime.env)
            .map_err(session_err)?
            .with_log_level(session_log_level())
            .map_err(|e| session_err(e.into()))?;
        let (registered, rejected) = register_providers(&mut builder, rt);
        if rt.require_accelerator && !registered.iter().any(|p| p.is_accelerator()) {
            return Err(ModelError::NoAccelerator {
                path: onnx_path,
                detail: rejected
                    .iter()
                    .filter(|(p, _)| p.is_accelerator())
                    .map(|(p, m)| format!("{}: {m}", p.ort_name()))
                    .collect::<Vec<_>>()
                    .join("; "),
            });
        }
        if !rt.providers.contains(&ProviderKind::Cpu) {
            builder = builder
                .with_disable_cpu_fallback()
                .map_err(|e| session_err(e.into()))?;
        }
        if rt.intra_threads > 0 {
            builder = builder
                .with_intra_threads(rt.intra_threads)
                .map_err(|e| session_err(e.into()))?;
        }
        let profile_prefix = std::env::temp_dir().join(format!(
            "endface-ort-profile-{}-{}",
            std::process::id(),
            PROFILE_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        builder = builder
            .with_profiling(&profile_prefix)
            .map_err(|e| session_err(e.into()))?;
        let session = builder.commit_from_memory(&bytes).map_err(|e| {
            let message = e.to_string().replace('\n', " ");
            if !rt.providers.contains(&ProviderKind::Cpu) {
                ModelError::NoAccelerator {
                    path: onnx_path.clone(),
                    detail: format!("CPU fallback is off (\"cpu\" not in providers) and the session failed: {message}"),
                }
            } else {
                ModelError::Session {
                    path: onnx_path.clone(),
                    message,
                }
            }
        })?;

        check_session_against_manifest(&session, &manifest).map_err(|problem| {
            ModelError::Mismatch {
                path: onnx_path.clone(),
                manifest: manifest_path.to_path_buf(),
                problem,
            }
        })?;

        let (channels, height, width) = manifest.input_chw();
        let norm = &manifest.input.normalization;
        let mean: Vec<f32> = (0..channels)
            .map(|c| norm.mean.get(c).unwrap_or(0.0) as f32)
            .collect();
        let inv_std: Vec<f32> = (0..channels)
            .map(|c| (1.0 / norm.std.get(c).unwrap_or(1.0)) as f32)
            .collect();

        let alloc = Allocator::default();
        let input =
            Tensor::<f32>::new(&alloc, manifest.input.shape.clone()).map_err(session_err)?;
        let mut binding = session.create_binding().map_err(session_err)?;
        let input_name = std::ffi::CString::new(manifest.input.name.as_str()).map_err(|_| {
            ModelError::Session {
                path: onnx_path.clone(),
                message: format!("input name {:?} contains a NUL byte", manifest.input.name),
            }
        })?;
        let mut outputs = Vec::with_capacity(manifest.outputs.len());
        for o in &manifest.outputs {
            let mut t = Tensor::<f32>::new(&alloc, o.shape.clone()).map_err(session_err)?;
            binding
                .bind_output(o.name.as_str(), &mut t)
                .map_err(session_err)?;
            outputs.push((o.name.clone(), t));
        }

        let mut model = Model {
            manifest,
            manifest_path: manifest_path.to_path_buf(),
            onnx_path: onnx_path.clone(),
            session,
            binding,
            input,
            input_name,
            outputs,
            provider: ProviderReport {
                requested: rt.providers.clone(),
                registered: registered.clone(),
                rejected,
                nodes_by_provider: BTreeMap::new(),
                primary: String::new(),
                measured: false,
            },
            channels,
            width,
            height,
            mean,
            inv_std,
            flip_px: Vec::new(),
            flip_acc: Vec::new(),
        };
        let plane = width * height;
        model.flip_acc = model
            .outputs
            .iter()
            .map(|(_, t)| {
                let n = t.extract_tensor().1.len();
                if plane > 0 && n > 0 && n.is_multiple_of(plane) {
                    vec![0.0; n]
                } else {
                    Vec::new()
                }
            })
            .collect();

        // Warm-up (mid-gray input), profiled to learn which provider ran the nodes.
        let gray = vec![127.5f32; width * height];
        model.set_gray_input(&gray)?;
        model.run()?;
        let profile = model
            .session
            .end_profiling()
            .ok()
            .and_then(|file| {
                let text = std::fs::read_to_string(&file).ok();
                if let Err(e) = std::fs::remove_file(&file) {
                    debug!("cannot remove ONNX Runtime profile {file}: {e}");
                }
                text
            })
            .and_then(|t| nodes_by_provider_from_profile(&t))
            .filter(|c| !c.is_empty());
        match profile {
            Some(counts) => {
                let primary = counts
                    .iter()
                    .max_by_key(|(_, n)| **n)
                    .map(|(p, _)| short_provider(p))
                    .unwrap_or_default();
                model.provider.nodes_by_provider = counts;
                model.provider.primary = primary;
                model.provider.measured = true;
            }
            None => {
                model.provider.primary = registered
                    .first()
                    .map(|p| p.short_name().to_string())
                    .unwrap_or_else(|| "cpu".into());
                warn!(
                    "could not read the ONNX Runtime profile of the warm-up run; provider {} is inferred from registration",
                    model.provider.primary
                );
            }
        }
        if rt.require_accelerator && !model.provider.accelerated() {
            return Err(ModelError::NoAccelerator {
                path: onnx_path,
                detail: format!("the warm-up run used {}", model.provider.summary()),
            });
        }
        let on_cpu = model
            .provider
            .nodes_by_provider
            .get(ProviderKind::Cpu.ort_name())
            .copied()
            .unwrap_or(0);
        if model.provider.primary != "cpu" && on_cpu > 0 {
            warn!(
                "model {}: {on_cpu} node(s) fell back to the CPU provider",
                model.manifest.name
            );
        }
        info!(
            "model {} {} (sha256 {}) loaded from {} on {}",
            model.manifest.name,
            model.manifest.version,
            &model.manifest.sha256[..12.min(model.manifest.sha256.len())],
            model.onnx_path.display(),
            model.provider.summary()
        );
        Ok(model)
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
    pub fn manifest_path(&self) -> &Path {
        &self.manifest_path
    }
    pub fn onnx_path(&self) -> &Path {
        &self.onnx_path
    }
    /// Lowercase hex sha256 of the `.onnx` (checked at load).
    pub fn sha256(&self) -> &str {
        &self.manifest.sha256
    }
    pub fn provider(&self) -> &ProviderReport {
        &self.provider
    }
    /// Input width and height (crop pixels).
    pub fn input_size(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    /// Fill the input tensor from a gray crop (`width*height` values in 0..=255, row-major),
    /// normalized per channel as the manifest says (gray replicated for `rgb`).
    pub fn set_gray_input(&mut self, crop_px: &[f32]) -> Result<(), ModelError> {
        let plane = self.width * self.height;
        if crop_px.len() != plane {
            return Err(ModelError::InputSize {
                got: crop_px.len(),
                expected: plane,
                width: self.width,
                height: self.height,
            });
        }
        let (_, data) = self.input.extract_tensor_mut();
        for c in 0..self.channels {
            let (mean, inv_std) = (self.mean[c], self.inv_std[c]);
            let dst = &mut data[c * plane..(c + 1) * plane];
            for (d, &p) in dst.iter_mut().zip(crop_px) {
                *d = (p / 255.0 - mean) * inv_std;
            }
        }
        Ok(())
    }

    /// Fill the input tensor with already-normalized values (`C*H*W`, e.g. from a parity
    /// fixture).
    pub fn set_raw_input(&mut self, values: &[f32]) -> Result<(), ModelError> {
        let (_, data) = self.input.extract_tensor_mut();
        if values.len() != data.len() {
            return Err(ModelError::InputSize {
                got: values.len(),
                expected: data.len(),
                width: self.width,
                height: self.height,
            });
        }
        data.copy_from_slice(values);
        Ok(())
    }

    /// The normalized input tensor (`C*H*W`, channel-major).
    pub fn input(&self) -> &[f32] {
        self.input.extract_tensor().1
    }

    /// Run the model on the current input; outputs land in the bound buffers.
    pub fn run(&mut self) -> Result<(), ModelError> {
        let err = |e: ort::Error, path: &Path| ModelError::Inference {
            path: path.to_path_buf(),
            message: e.to_string().replace('\n', " "),
        };
        use ort::AsPointer;
        // Straight to the C API: `IoBinding::bind_input` and `Session::run_binding` build
        // Rust-side bookkeeping on every call (the name as a `String`, a map entry, the
        // `SessionOutputs` of the bound outputs: 5 heap allocations per run). The outputs are
        // bound to this model's pre-allocated tensors at load, so a run writes into them.
        let api = ort::api();
        // The input is bound again on every run: for an accelerator ONNX Runtime copies the
        // data to the device when it is bound.
        // SAFETY: the binding, the input value and the NUL-terminated name are alive and
        // owned by `self`; ONNX Runtime copies what it keeps (a reference to the value).
        let bound = unsafe {
            ort::Error::result_from_status((api.BindInput)(
                self.binding.ptr_mut(),
                self.input_name.as_ptr(),
                self.input.ptr(),
            ))
        };
        bound.map_err(|e| err(e, &self.onnx_path))?;
        // SAFETY: session and binding are alive; `&mut self` keeps the run single-threaded
        // (RunWithBinding is not thread-safe); no run options (null is allowed).
        let ran = unsafe {
            ort::Error::result_from_status((api.RunWithBinding)(
                self.session.ptr().cast_mut(),
                std::ptr::null(),
                self.binding.ptr(),
            ))
        };
        ran.map_err(|e| err(e, &self.onnx_path))?;
        Ok(())
    }

    /// Run the model on a gray crop (as [`Model::set_gray_input`] + [`Model::run`]) and, with
    /// `flips` 2 or 4, also on the crop mirrored left-right (and upside down, and both), each
    /// output plane mirrored back and averaged over the runs (test-time augmentation: a defect
    /// is a defect in every mirror image, the model's own quirks are not). Outputs that are not
    /// whole H x W planes (a score) keep the unmirrored run's value; the input tensor ends
    /// holding the unmirrored crop. `flips` is 1, 2 or 4 (checked by the station config; any
    /// other value runs once). No heap allocation after the first call.
    pub fn run_gray_flips(&mut self, crop_px: &[f32], flips: usize) -> Result<(), ModelError> {
        if !matches!(flips, 2 | 4) {
            self.set_gray_input(crop_px)?;
            return self.run();
        }
        let (w, h) = (self.width, self.height);
        let plane = w * h;
        for acc in &mut self.flip_acc {
            acc.iter_mut().for_each(|a| *a = 0.0);
        }
        let mut flip_px = std::mem::take(&mut self.flip_px);
        for &(fx, fy) in &FLIP_ORDER[4 - flips..] {
            flip_px.clear();
            if crop_px.len() == plane {
                flip_px.extend((0..plane).map(|i| crop_px[flip_index(i % w, i / w, w, h, fx, fy)]));
            } else {
                flip_px.extend_from_slice(crop_px); // set_gray_input reports the size
            }
            let ran = self.set_gray_input(&flip_px).and_then(|()| self.run());
            if let Err(e) = ran {
                self.flip_px = flip_px;
                return Err(e);
            }
            for ((_, t), acc) in self.outputs.iter().zip(&mut self.flip_acc) {
                let out = t.extract_tensor().1;
                if acc.len() != out.len() {
                    continue;
                }
                for (acc_p, out_p) in acc.chunks_exact_mut(plane).zip(out.chunks_exact(plane)) {
                    for (i, a) in acc_p.iter_mut().enumerate() {
                        *a += out_p[flip_index(i % w, i / w, w, h, fx, fy)];
                    }
                }
            }
        }
        self.flip_px = flip_px;
        let k = 1.0 / flips as f32;
        for ((_, t), acc) in self.outputs.iter_mut().zip(&self.flip_acc) {
            let (_, data) = t.extract_tensor_mut();
            if acc.len() == data.len() {
                for (d, a) in data.iter_mut().zip(acc) {
                    *d = a * k;
                }
            }
        }
        Ok(())
    }

    /// The named output of the last run (manifest shape, row-major), if the manifest lists it.
    pub fn output(&self, name: &str) -> Option<&[f32]> {
        self.outputs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.extract_tensor().1)
    }

    /// Names of the outputs, in manifest order.
    pub fn output_names(&self) -> impl Iterator<Item = &str> {
        self.outputs.iter().map(|(n, _)| n.as_str())
    }
}

static PROFILE_SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Check names, element types and shapes of the session against the manifest. A session
/// dimension of -1 (dynamic) accepts any manifest value.
fn check_session_against_manifest(session: &Session, m: &Manifest) -> Result<(), String> {
    let inputs = session.inputs();
    if inputs.len() != 1 {
        return Err(format!(
            "the model has {} inputs ({}); endface feeds exactly one",
            inputs.len(),
            inputs
                .iter()
                .map(|i| i.name())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let inp = &inputs[0];
    if inp.name() != m.input.name {
        return Err(format!(
            "the model's input is named \"{}\", the manifest says \"{}\"",
            inp.name(),
            m.input.name
        ));
    }
    check_tensor("input", inp.name(), inp.dtype(), &m.input.shape)?;
    for o in &m.outputs {
        let Some(so) = session.outputs().iter().find(|so| so.name() == o.name) else {
            return Err(format!(
                "the manifest's output \"{}\" is not among the model's outputs ({})",
                o.name,
                session
                    .outputs()
                    .iter()
                    .map(|s| s.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        };
        check_tensor("output", &o.name, so.dtype(), &o.shape)?;
    }
    Ok(())
}

fn check_tensor(
    what: &str,
    name: &str,
    dtype: &ValueType,
    manifest_shape: &[i64],
) -> Result<(), String> {
    let ValueType::Tensor { ty, shape, .. } = dtype else {
        return Err(format!("{what} \"{name}\" is not a tensor"));
    };
    if *ty != TensorElementType::Float32 {
        return Err(format!(
            "{what} \"{name}\" has element type {ty:?}, not float32"
        ));
    }
    let dims: &[i64] = shape;
    let ok = dims.len() == manifest_shape.len()
        && dims
            .iter()
            .zip(manifest_shape)
            .all(|(&s, &mf)| s < 0 || s == mf);
    if !ok {
        return Err(format!(
            "{what} \"{name}\" has shape {dims:?} in the model, {manifest_shape:?} in the manifest"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{
      "schema": "endface.model-manifest/1", "kind": "reconstruction",
      "name": "t", "version": "1", "onnx_file": "t.onnx",
      "sha256": "0000000000000000000000000000000000000000000000000000000000000000",
      "input": {"name": "image", "shape": [1,1,8,8], "dtype": "float32", "layout": "NCHW",
                "color": "gray", "normalization": {"mean": 0.5, "std": 0.5}},
      "outputs": [{"name": "reconstruction", "shape": [1,1,8,8]}],
      "um_per_px": 1.0,
      "anomaly_map": {"source": "abs_diff", "smoothing_sigma_px": 1.0},
      "thresholds": {"pixel": 0.5, "image": 0.5, "calibrated_on": "x", "quantile": 0.99},
      "training": {"anything": [1,2]}, "created_by": "someone"
    }"#;

    fn parse(text: &str) -> Result<Manifest, ModelError> {
        Manifest::from_json_str(text, Path::new("m.json"))
    }

    #[test]
    fn good_manifest_parses_and_keeps_extras() {
        let m = parse(GOOD).unwrap();
        assert_eq!(m.input_chw(), (1, 8, 8));
        assert_eq!(m.map_output(), Some("reconstruction"));
        assert!(m.extra.contains_key("created_by"));
        assert!(m.thresholds.extra.contains_key("quantile"));
    }

    #[test]
    fn bad_manifests_name_the_key() {
        let cases = [
            (
                "\"schema\": \"endface.model-manifest/1\"",
                "\"schema\": \"v2\"",
                "schema",
            ),
            (
                "\"layout\": \"NCHW\"",
                "\"layout\": \"NHWC\"",
                "input.layout",
            ),
            (
                "[1,1,8,8], \"dtype\"",
                "[1,3,8,8], \"dtype\"",
                "input.shape",
            ),
            ("\"std\": 0.5", "\"std\": 0.0", "input.normalization.std"),
            (
                "\"source\": \"abs_diff\"",
                "\"source\": \"nope\"",
                "anomaly_map.source",
            ),
            (
                "\"smoothing_sigma_px\": 1.0",
                "\"smoothing_sigma_px\": -1.0",
                "anomaly_map.smoothing_sigma_px",
            ),
            ("\"um_per_px\": 1.0", "\"um_per_px\": 0.0", "um_per_px"),
            (
                "\"image\": 0.5,",
                "\"image\": 0.5, \"grow\": 0.7,",
                "thresholds.grow",
            ),
            ("\"sha256\": \"0000", "\"sha256\": \"zz00", "sha256"),
            (
                "{\"name\": \"reconstruction\", \"shape\": [1,1,8,8]}",
                "{\"name\": \"reconstruction\", \"shape\": [1,1,4,4]}",
                "outputs",
            ),
        ];
        for (from, to, key) in cases {
            assert!(GOOD.contains(from), "{from}");
            let e = parse(&GOOD.replacen(from, to, 1)).unwrap_err().to_string();
            assert!(e.contains(&format!("`{key}`")), "{to}: {e}");
        }
        // the crack output: named, one H x W plane, a probability limit
        let with_crack = |outs: &str, crack: &str| {
            GOOD.replacen(
                "\"outputs\": [{\"name\": \"reconstruction\", \"shape\": [1,1,8,8]}],",
                &format!("\"outputs\": [{{\"name\": \"reconstruction\", \"shape\": [1,1,8,8]}}{outs}], \"crack\": {crack},"),
                1,
            )
        };
        let ok = parse(&with_crack(
            ", {\"name\": \"crack\", \"shape\": [1,1,8,8]}",
            "{\"output\": \"crack\", \"min_mean\": 0.5}",
        ))
        .unwrap();
        assert_eq!(ok.crack.as_ref().map(|c| c.output.as_str()), Some("crack"));
        assert!(parse(GOOD).unwrap().crack.is_none());
        for (outs, crack, key) in [
            (
                "",
                "{\"output\": \"crack\", \"min_mean\": 0.5}",
                "crack.output",
            ),
            (
                ", {\"name\": \"crack\", \"shape\": [1,2,8,8]}",
                "{\"output\": \"crack\", \"min_mean\": 0.5}",
                "crack.output",
            ),
            (
                ", {\"name\": \"crack\", \"shape\": [1,1,8,8]}",
                "{\"output\": \"crack\", \"min_mean\": 1.5}",
                "crack.min_mean",
            ),
        ] {
            let e = parse(&with_crack(outs, crack)).unwrap_err().to_string();
            assert!(e.contains(&format!("`{key}`")), "{outs} {crack}: {e}");
        }
        // A typo inside a strict section is refused, naming the key.
        let e = parse(&GOOD.replace("\"smoothing_sigma_px\"", "\"smoothing_sigma\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("smoothing_sigma"), "{e}");
        // anomaly_map kind cannot use abs_diff.
        let e = parse(&GOOD.replace("\"kind\": \"reconstruction\"", "\"kind\": \"anomaly_map\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("anomaly_map.source"), "{e}");
    }

    #[test]
    fn profile_counts_nodes_per_provider() {
        let json = r#"[{"cat":"Session","name":"x"},
            {"cat":"Node","name":"a_kernel_time","args":{"provider":"CUDAExecutionProvider"}},
            {"cat":"Node","name":"a_fence_before","args":{}},
            {"cat":"Node","name":"b_kernel_time","args":{"provider":"CPUExecutionProvider"}},
            {"cat":"Node","name":"c_kernel_time","args":{"provider":"CUDAExecutionProvider"}}]"#;
        let c = nodes_by_provider_from_profile(json).unwrap();
        assert_eq!(c.get("CUDAExecutionProvider"), Some(&2));
        assert_eq!(c.get("CPUExecutionProvider"), Some(&1));
        assert!(nodes_by_provider_from_profile("not json").is_none());
    }

    #[test]
    fn runtime_library_lookup_order() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.so"), dir.path().join("b.so"));
        std::fs::write(&a, b"x").unwrap();
        std::fs::write(&b, b"x").unwrap();
        let defaults = [dir.path().join("d1"), dir.path().to_path_buf()];
        std::fs::write(dir.path().join("libonnxruntime.so"), b"x").unwrap();
        // The environment overrides the config, which overrides the default folders.
        assert_eq!(
            find_runtime_library_in(Some(a.clone()), Some(&b), &defaults).unwrap(),
            a
        );
        assert_eq!(
            find_runtime_library_in(None, Some(&b), &defaults).unwrap(),
            b
        );
        assert_eq!(
            find_runtime_library_in(None, None, &defaults).unwrap(),
            dir.path().join("libonnxruntime.so")
        );
        // A named path that does not exist is an error naming it, not a fallback.
        let e = find_runtime_library_in(
            None,
            Some(Path::new("/nonexistent/libonnxruntime.so")),
            &defaults,
        )
        .unwrap_err();
        assert_eq!(e.exit_code(), exit::RUNTIME_MISSING);
        assert!(e.to_string().contains("/nonexistent/libonnxruntime.so"));
        // Nothing anywhere: every searched place and the setup script are named.
        let e = find_runtime_library_in(None, None, &defaults[..1])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("d1/libonnxruntime.so") && e.contains("scripts/setup-ort.sh"),
            "{e}"
        );
    }
}
