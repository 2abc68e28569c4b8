//! Station configuration: one TOML file in, a validated [`StationConfig`] out.
//!
//! Sections (every key has a default, every section is optional, unknown keys are refused):
//!
//! ```toml
//! [station]
//! name = "line-3"
//! profile = "sm-upc"            # grading profile name or path to a profile .toml
//!
//! [calibration]
//! um_per_px_x = 0.5             # calibrated scale of the camera (µm per frame pixel)
//! um_per_px_y = 0.5
//!
//! [runtime]
//! onnxruntime_library = "/usr/lib/endface/libonnxruntime.so"   # $ENDFACE_ORT_LIB overrides; absent: default folders
//! providers = ["tensorrt", "cuda", "cpu"]   # tried in this order
//! require_accelerator = false   # true: refuse to run when only the CPU took the model
//! trt_fp16 = true
//! trt_cache_dir = "/var/lib/endface/trt-cache"
//! trt_workspace_mb = 1024
//! intra_threads = 0             # 0 = ONNX Runtime's default
//! malloc_mmap_threshold_kb = 4096  # `endface run`: bound memory (glibc mmap threshold); 0 = glibc default
//! cpu_mem_arena = true          # ONNX Runtime keeps the model's work buffers between runs
//!
//! [model]
//! manifest = "models/endface-student.manifest.json"
//! # pixel_threshold = 0.5       # override the manifest's thresholds
//! # image_threshold = 0.5
//! # grow_threshold = 0.5        # hysteresis: defects measured out to this map value
//! scratch_join_gap_um = 10.0    # pieces of a broken scratch this close are one scratch; 0 = off
//! flips = 1                     # 2 / 4: also run on the mirrored crop(s), maps averaged
//! edge_scan = true              # the cladding-edge scan adds to the image score (chips at the edge)
//! edge_cracks = true            # a line from the cladding edge inwards is graded as a crack
//! edge_chips = true             # a short line lying along the cladding edge is graded as a chip
//! remove_rings = true           # what the map marks around much of a circle about the axis is not a defect
//! core_mark = true              # a faint round mark on the axis the size of a single-mode core is the core
//! dequantize = true             # a posterized crop's grey-level steps are smoothed back into shading
//! ferrule_grain = true          # a zone-D spot no more marked than the ferrule's grain is not a defect
//! size_without_halo = true      # a spot ringed by the opposite polarity is sized inside the ring
//!
//! [locate]
//! min_confidence = 0.5
//! min_focus = 0.5
//! ```
//!
//! Relative paths are resolved against the directory of the config file
//! ([`StationConfig::resolve_paths`]). The daemon's sections (`[camera]`, `[trigger]`, `[gpio]`,
//! `[journal]`, `[display]`, `[drift]`, `[daemon]`) are accepted here as raw tables and parsed by their owner.

use crate::geometry::PixelScale;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Errors reading or validating a station config. Each names the file and, where it applies,
/// the key and the problem.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read station config {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("station config {origin}: {message}")]
    Syntax { origin: String, message: String },
    #[error("station config {origin}: key `{key}`: {problem}")]
    Invalid {
        origin: String,
        key: String,
        problem: String,
    },
}

/// An execution provider name in `[runtime] providers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// NVIDIA TensorRT (through ONNX Runtime's TensorRT execution provider).
    Tensorrt,
    /// NVIDIA CUDA.
    Cuda,
    /// ONNX Runtime's CPU provider (always available).
    Cpu,
}

impl ProviderKind {
    /// The name ONNX Runtime uses for this provider (as in its profiles and logs).
    pub fn ort_name(self) -> &'static str {
        match self {
            ProviderKind::Tensorrt => "TensorrtExecutionProvider",
            ProviderKind::Cuda => "CUDAExecutionProvider",
            ProviderKind::Cpu => "CPUExecutionProvider",
        }
    }

    /// Short lowercase name (`tensorrt`, `cuda`, `cpu`).
    pub fn short_name(self) -> &'static str {
        match self {
            ProviderKind::Tensorrt => "tensorrt",
            ProviderKind::Cuda => "cuda",
            ProviderKind::Cpu => "cpu",
        }
    }

    /// Whether this provider is an accelerator (anything but the CPU).
    pub fn is_accelerator(self) -> bool {
        self != ProviderKind::Cpu
    }

    /// The provider for an ONNX Runtime provider name, if it is one of ours.
    pub fn from_ort_name(name: &str) -> Option<ProviderKind> {
        [
            ProviderKind::Tensorrt,
            ProviderKind::Cuda,
            ProviderKind::Cpu,
        ]
        .into_iter()
        .find(|p| p.ort_name() == name)
    }
}

/// `[station]`: who this station is and which grading profile it applies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StationSection {
    pub name: String,
    /// Grading profile: a built-in name (`sm-upc`, `sm-apc`, `mm`), a name found in the
    /// profile folders, or a path to a profile `.toml`.
    pub profile: String,
}

impl Default for StationSection {
    fn default() -> Self {
        Self {
            name: "endface".into(),
            profile: "sm-upc".into(),
        }
    }
}

/// Default camera scale when nothing else is known (µm per frame pixel).
pub const DEFAULT_UM_PER_PX: f64 = 0.5;

/// `[calibration]`: the camera's calibrated µm per pixel along x and y.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CalibrationSection {
    pub um_per_px_x: f64,
    pub um_per_px_y: f64,
}

impl Default for CalibrationSection {
    fn default() -> Self {
        Self {
            um_per_px_x: DEFAULT_UM_PER_PX,
            um_per_px_y: DEFAULT_UM_PER_PX,
        }
    }
}

impl CalibrationSection {
    pub fn pixel_scale(&self) -> PixelScale {
        PixelScale {
            um_per_px_x: self.um_per_px_x,
            um_per_px_y: self.um_per_px_y,
        }
    }
}

/// `[runtime]`: where ONNX Runtime comes from and which execution providers to try.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeSection {
    /// Path of `libonnxruntime.so` (`$ENDFACE_ORT_LIB` overrides it); when absent, the default
    /// folders (see `model::default_runtime_dirs`).
    pub onnxruntime_library: Option<PathBuf>,
    /// Execution providers, tried in this order (the CPU always remains as ONNX Runtime's
    /// fallback for nodes no other provider takes).
    pub providers: Vec<ProviderKind>,
    /// Refuse to run (exit NO_ACCELERATOR) when no accelerator took the model.
    pub require_accelerator: bool,
    /// TensorRT: build fp16 engines.
    pub trt_fp16: bool,
    /// TensorRT: persistent engine/timing cache folder (created when missing).
    pub trt_cache_dir: PathBuf,
    /// TensorRT: builder workspace limit in MiB.
    pub trt_workspace_mb: u32,
    /// CUDA / TensorRT device index.
    pub device_id: i32,
    /// Intra-op threads for the CPU provider; 0 = ONNX Runtime's default.
    pub intra_threads: usize,
    /// `endface run` only (glibc): blocks above this many KiB are mmapped and returned to the
    /// kernel when freed, which keeps the daemon's memory bounded (src/sysmem.rs). 0 = glibc's
    /// dynamic threshold (RSS not bounded).
    pub malloc_mmap_threshold_kb: u32,
    /// ONNX Runtime's CPU memory arena: the model's work buffers are kept from run to run
    /// instead of allocated and freed on each (off: the model run is 25-35 % slower on the
    /// CPU provider under a fixed `malloc_mmap_threshold_kb`; BENCHMARKS.md "Memory").
    pub cpu_mem_arena: bool,
}

impl Default for RuntimeSection {
    fn default() -> Self {
        Self {
            onnxruntime_library: None,
            providers: vec![
                ProviderKind::Tensorrt,
                ProviderKind::Cuda,
                ProviderKind::Cpu,
            ],
            require_accelerator: false,
            trt_fp16: true,
            trt_cache_dir: PathBuf::from("/var/lib/endface/trt-cache"),
            trt_workspace_mb: 1024,
            device_id: 0,
            intra_threads: 0,
            malloc_mmap_threshold_kb: 4096,
            cpu_mem_arena: true,
        }
    }
}

impl RuntimeSection {
    /// Intra-op threads per session when `workers` sessions run side by side: the configured
    /// count, or (0 = ONNX Runtime's default, which is one thread per core for *each*
    /// session) the cores shared out between the workers, at least one each.
    pub fn intra_threads_for(&self, workers: usize) -> usize {
        if self.intra_threads > 0 || workers <= 1 {
            return self.intra_threads;
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        (cores / workers).max(1)
    }
}

/// Default manifest of the shipped model, relative to the repository / install root.
pub const DEFAULT_MANIFEST: &str = "models/endface-student.manifest.json";

/// `[model]`: which model (through its manifest) and optional threshold overrides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSection {
    pub manifest: PathBuf,
    /// Overrides the manifest's `thresholds.pixel`.
    pub pixel_threshold: Option<f64>,
    /// Overrides the manifest's `thresholds.image`.
    pub image_threshold: Option<f64>,
    /// Overrides the manifest's `thresholds.grow`: a defect found above `pixel_threshold` is
    /// measured out to where the map falls to this value (hysteresis; models/MANIFEST.md, `thresholds.grow`).
    pub grow_threshold: Option<f64>,
    /// Largest gap (µm) bridged between the pieces of one broken scratch, which is then graded
    /// as one scratch by its width instead of as many small defects (0 turns joining off;
    /// `anomaly::join_broken_scratches`).
    pub scratch_join_gap_um: f64,
    /// Test-time flips: the model also runs on the crop mirrored left-right (2), and upside
    /// down and both (4), and its maps are averaged (`Model::run_gray_flips`); 1 = one run.
    /// Costs that many model runs per frame.
    pub flips: usize,
    /// The cladding-edge scan (`inspect::edge_ring`): a notch or mark along the cladding edge
    /// raises the image score (not the map); edge cracks read it where the map is blind.
    pub edge_scan: bool,
    /// Edge cracks (`anomaly::classify_edge_cracks`): a line that starts at the cladding edge
    /// and runs inwards is graded as a crack (a defect sized by its length), not a scratch.
    pub edge_cracks: bool,
    /// Edge chips (`anomaly::classify_edge_chips`): a short "line" lying along the cladding
    /// edge is a chip, graded as a defect by its max Feret diameter, not a scratch by its width.
    pub edge_chips: bool,
    /// Rings (`inspect::rings`): what the map marks around much of a circle about the fiber
    /// axis (a lit epoxy bead or halo at the cladding edge, a core boundary) is the
    /// connector's build and is taken out of the map before defects are found.
    pub remove_rings: bool,
    /// Halos (`anomaly::size_spots_without_halo`): a spot ringed by a line of the opposite
    /// polarity is sized inside the ring (the pit, not its halo).
    pub size_without_halo: bool,
    /// The single-mode core (`inspect::core`): a faint round mark on the axis the size of a
    /// single-mode core is the core, not a zone-A defect, and is taken out of the map.
    pub core_mark: bool,
    /// Posterized crops (`inspect::dequant`): a crop whose grey levels move in steps of 3 or
    /// more has them smoothed back into shading before the model.
    pub dequantize: bool,
    /// Ferrule grain (`inspect::grain`): a zone-D spot whose departure from its surroundings is
    /// under 3 times the ferrule's grain is not a defect.
    pub ferrule_grain: bool,
}

impl Default for ModelSection {
    fn default() -> Self {
        Self {
            manifest: PathBuf::from(DEFAULT_MANIFEST),
            pixel_threshold: None,
            image_threshold: None,
            grow_threshold: None,
            scratch_join_gap_um: crate::anomaly::DEFAULT_SCRATCH_JOIN_GAP_UM,
            flips: 1,
            edge_scan: true,
            edge_cracks: true,
            edge_chips: true,
            remove_rings: true,
            size_without_halo: true,
            core_mark: true,
            dequantize: true,
            ferrule_grain: true,
        }
    }
}

/// `[locate]`: when a frame may be graded at all.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LocateSection {
    /// Below this localization confidence the verdict is UNABLE.
    pub min_confidence: f64,
    /// Below this focus measure the verdict is UNABLE: the measure reads 1.5 / √(σ² + 1.5²)
    /// for a cladding edge blurred by σ µm (`locate` module doc), so 0.5 refuses frames
    /// blurred by more than about 2.6 µm; 0 turns the check off.
    pub min_focus: f64,
}

/// Smallest non-zero `[locate] min_focus` accepted (an edge blurred by σ ≈ 4.8 µm).
pub const MIN_FOCUS_FLOOR: f64 = 0.3;

impl Default for LocateSection {
    fn default() -> Self {
        Self {
            min_confidence: 0.5,
            min_focus: 0.5,
        }
    }
}

/// The whole station config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StationConfig {
    pub station: StationSection,
    pub calibration: CalibrationSection,
    pub runtime: RuntimeSection,
    pub model: ModelSection,
    pub locate: LocateSection,
    /// Daemon sections: kept as raw tables here, parsed and validated by the daemon.
    pub camera: Option<toml::Table>,
    pub trigger: Option<toml::Table>,
    pub gpio: Option<toml::Table>,
    pub journal: Option<toml::Table>,
    pub display: Option<toml::Table>,
    pub drift: Option<toml::Table>,
    pub daemon: Option<toml::Table>,
}

impl StationConfig {
    /// Read, parse and validate a config file; relative paths in it are resolved against the
    /// file's directory.
    pub fn from_file(path: &Path) -> Result<StationConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut cfg = StationConfig::from_toml_str(&text, &path.display().to_string())?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        cfg.resolve_paths(base);
        Ok(cfg)
    }

    /// Parse and validate TOML text; `origin` names it in errors. Paths stay as written.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<StationConfig, ConfigError> {
        let cfg: StationConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            origin: origin.to_string(),
            message: one_line(&e.to_string()),
        })?;
        cfg.validate(origin)?;
        Ok(cfg)
    }

    /// Make relative paths (library, TensorRT cache, manifest) relative to `base`.
    pub fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() && !p.as_os_str().is_empty() {
                *p = base.join(&*p);
            }
        };
        if let Some(lib) = self.runtime.onnxruntime_library.as_mut() {
            fix(lib);
        }
        fix(&mut self.runtime.trt_cache_dir);
        fix(&mut self.model.manifest);
    }

    /// Check every value; the error names the key and what is wrong with it.
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let bad = |key: &str, problem: String| ConfigError::Invalid {
            origin: origin.to_string(),
            key: key.to_string(),
            problem,
        };
        if self.station.profile.trim().is_empty() {
            return Err(bad("station.profile", "must name a grading profile".into()));
        }
        for (key, v) in [
            ("calibration.um_per_px_x", self.calibration.um_per_px_x),
            ("calibration.um_per_px_y", self.calibration.um_per_px_y),
        ] {
            if !(v.is_finite() && v > 0.0 && v <= 1000.0) {
                return Err(bad(
                    key,
                    format!("{v} is not a scale in (0, 1000] µm per pixel"),
                ));
            }
        }
        if self.runtime.providers.is_empty() {
            return Err(bad(
                "runtime.providers",
                "empty: list at least \"cpu\" (or \"tensorrt\", \"cuda\")".into(),
            ));
        }
        for (i, p) in self.runtime.providers.iter().enumerate() {
            if self.runtime.providers[..i].contains(p) {
                return Err(bad(
                    "runtime.providers",
                    format!("\"{}\" is listed twice", p.short_name()),
                ));
            }
        }
        if self.runtime.require_accelerator
            && !self.runtime.providers.iter().any(|p| p.is_accelerator())
        {
            return Err(bad(
                "runtime.require_accelerator",
                "true, but runtime.providers lists no accelerator (\"tensorrt\" or \"cuda\")"
                    .into(),
            ));
        }
        if !(1..=1_048_576).contains(&self.runtime.trt_workspace_mb) {
            return Err(bad(
                "runtime.trt_workspace_mb",
                format!("{} is not in 1..=1048576", self.runtime.trt_workspace_mb),
            ));
        }
        if self.runtime.device_id < 0 {
            return Err(bad(
                "runtime.device_id",
                format!("{} is negative", self.runtime.device_id),
            ));
        }
        if self.runtime.malloc_mmap_threshold_kb > crate::sysmem::MAX_MMAP_THRESHOLD_KB {
            return Err(bad(
                "runtime.malloc_mmap_threshold_kb",
                format!(
                    "{} is more than glibc's maximum {} (KiB); 0 leaves glibc's default",
                    self.runtime.malloc_mmap_threshold_kb,
                    crate::sysmem::MAX_MMAP_THRESHOLD_KB
                ),
            ));
        }
        if self.runtime.intra_threads > 1024 {
            return Err(bad(
                "runtime.intra_threads",
                format!("{} is more than 1024", self.runtime.intra_threads),
            ));
        }
        if self.model.manifest.as_os_str().is_empty() {
            return Err(bad("model.manifest", "empty path".into()));
        }
        for (key, v) in [
            ("model.pixel_threshold", self.model.pixel_threshold),
            ("model.image_threshold", self.model.image_threshold),
            ("model.grow_threshold", self.model.grow_threshold),
        ] {
            if let Some(v) = v {
                if !v.is_finite() {
                    return Err(bad(key, format!("{v} is not a finite number")));
                }
            }
        }
        let g = self.model.scratch_join_gap_um;
        if !g.is_finite() || !(0.0..=50.0).contains(&g) {
            return Err(bad(
                "model.scratch_join_gap_um",
                format!("{g} is not in [0, 50] µm (0 turns joining broken scratches off)"),
            ));
        }
        if !crate::model::FLIP_COUNTS.contains(&self.model.flips) {
            return Err(bad(
                "model.flips",
                format!(
                    "{} is not 1, 2 or 4 (model runs per frame on the crop and its mirror images)",
                    self.model.flips
                ),
            ));
        }
        if !(0.0..=1.0).contains(&self.locate.min_confidence) {
            return Err(bad(
                "locate.min_confidence",
                format!("{} is not in [0, 1]", self.locate.min_confidence),
            ));
        }
        let f = self.locate.min_focus;
        if !f.is_finite() || !(0.0..=1.0).contains(&f) {
            return Err(bad(
                "locate.min_focus",
                format!("{f} is not in [0, 1] (0 turns the focus check off)"),
            ));
        }
        if f > 0.0 && f < MIN_FOCUS_FLOOR {
            // Values like 0.1 belong to the per-pixel focus measure before this one: on the
            // current scale they would refuse nothing, a silent loss of the focus check.
            return Err(bad(
                "locate.min_focus",
                format!(
                    "{f} is below {MIN_FOCUS_FLOOR}: the focus measure is now 1.5/√(σ²+1.5²) for \
                     an edge blurred by σ µm (in-focus frames read 0.6–0.97; 0.3 already allows \
                     σ ≈ 4.8 µm), and values like 0.10 came from the old per-pixel measure — \
                     set 0.5, or 0 to turn the focus check off"
                ),
            ));
        }
        Ok(())
    }
}

/// Collapse a multi-line parser message (toml's carets and snippets) onto one line.
fn one_line(s: &str) -> String {
    s.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.chars().all(|c| c == '|' || c == '^' || c == ' '))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_all_defaults() {
        let c = StationConfig::from_toml_str("", "test").unwrap();
        assert_eq!(c, StationConfig::default());
        assert_eq!(c.runtime.providers.len(), 3);
    }

    #[test]
    fn unknown_key_is_named() {
        let e = StationConfig::from_toml_str("[model]\nmanifesto = \"x\"\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("manifesto"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn bad_values_name_their_key() {
        for (text, key) in [
            (
                "[calibration]\num_per_px_x = 0.0",
                "calibration.um_per_px_x",
            ),
            (
                "[calibration]\num_per_px_y = -1.0",
                "calibration.um_per_px_y",
            ),
            ("[runtime]\nproviders = []", "runtime.providers"),
            (
                "[runtime]\nproviders = [\"cpu\", \"cpu\"]",
                "runtime.providers",
            ),
            (
                "[runtime]\nproviders = [\"cpu\"]\nrequire_accelerator = true",
                "runtime.require_accelerator",
            ),
            ("[locate]\nmin_confidence = 2.0", "locate.min_confidence"),
            ("[model]\npixel_threshold = nan", "model.pixel_threshold"),
            ("[model]\ngrow_threshold = inf", "model.grow_threshold"),
            (
                "[model]\nscratch_join_gap_um = -1",
                "model.scratch_join_gap_um",
            ),
            (
                "[model]\nscratch_join_gap_um = 80",
                "model.scratch_join_gap_um",
            ),
            (
                "[runtime]\nmalloc_mmap_threshold_kb = 100000",
                "runtime.malloc_mmap_threshold_kb",
            ),
        ] {
            let e = StationConfig::from_toml_str(text, "t.toml")
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
        let e = StationConfig::from_toml_str("[runtime]\nproviders = [\"tpu\"]", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("tpu"), "{e}");
    }

    #[test]
    fn a_min_focus_from_the_old_per_pixel_measure_is_refused_with_the_new_value() {
        // 0.10 was the default of the per-pixel measure; on today's scale it refuses nothing.
        let e = StationConfig::from_toml_str("[locate]\nmin_focus = 0.10", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("locate.min_focus") && e.contains("set 0.5"),
            "{e}"
        );
        for bad in ["1.5", "-0.1", "nan"] {
            let text = format!("[locate]\nmin_focus = {bad}");
            let e = StationConfig::from_toml_str(&text, "t.toml").unwrap_err();
            assert!(e.to_string().contains("locate.min_focus"), "{bad}: {e}");
        }
        for ok in ["0", "0.3", "0.5", "0.9"] {
            let text = format!("[locate]\nmin_focus = {ok}");
            assert!(
                StationConfig::from_toml_str(&text, "t.toml").is_ok(),
                "{ok}"
            );
        }
    }

    #[test]
    fn daemon_sections_pass_through_and_paths_resolve() {
        let mut c = StationConfig::from_toml_str(
            "[camera]\ndevice = \"/dev/video0\"\n[model]\nmanifest = \"m/x.json\"\n",
            "t",
        )
        .unwrap();
        assert!(c.camera.is_some());
        c.resolve_paths(Path::new("/etc/endface"));
        assert_eq!(c.model.manifest, PathBuf::from("/etc/endface/m/x.json"));
        assert_eq!(
            c.runtime.trt_cache_dir,
            PathBuf::from("/var/lib/endface/trt-cache")
        );
    }
}
