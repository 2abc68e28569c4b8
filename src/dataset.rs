//! Labelled end-face datasets on disk (docs/dataset-format.md: the MVTec AD layout plus
//! `dataset.toml` and `labels.jsonl`): reader, writer, and the synthetic dataset generator.
//!
//! In (reader): a dataset folder. Out: [`Dataset`] — train/good images, test images with their
//! kind (folder), mask path and label, the `dataset.toml` defaults, and warnings for anything
//! unknown (ignored, never fatal). In (writer): frames and [`crate::synth::Truth`]s. Out: the
//! folder layout, 0/255 masks, one label line per test image.
//!
//! ```text
//! DATASET/dataset.toml  train/good/*.png  test/good/*.png  test/<kind>/*.png
//!         ground_truth/<kind>/<stem>_mask.png  labels.jsonl
//! ```

use crate::error::exit;
use crate::geometry::{BBoxPx, PixelScale};
use crate::imageio::{self, ImageIoError};
use crate::synth::{self, verdict, Content, DefectKind, DefectTruth, SynthConfig, Truth};
use image::GrayImage;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use tracing::{info, warn};

/// Image file extensions a dataset may hold (case-insensitive).
pub const IMAGE_EXTENSIONS: [&str; 4] = ["png", "jpg", "jpeg", "bmp"];

/// Top-level `dataset.toml` keys this reader knows (others are warned about and ignored).
const KNOWN_CONFIG_KEYS: [&str; 5] = ["fiber", "um_per_px", "um_per_px_x", "um_per_px_y", "synth"];

/// Label keys beyond the format's own that the synthetic writer emits (not warned about).
const SYNTH_LABEL_KEYS: [&str; 18] = [
    "look",
    "look_mix",
    "core_diameter_um",
    "trench_ring",
    "trench_band",
    "double_edge",
    "epoxy_width_um",
    "edge_softness_um",
    "blur_sigma_px",
    "read_noise",
    "vignetting",
    "jpeg_quality",
    "frame_border",
    "ferrule_scratches",
    "aspect_y_over_x",
    "cladding_radius_px_y",
    "outside_defects",
    "grade_reasons",
];

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("dataset {}: no such folder", .0.display())]
    NotFound(PathBuf),
    #[error("dataset {}: not a folder", .0.display())]
    NotADirectory(PathBuf),
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("dataset {}: no images found: expected train/good/*.png or test/<kind>/*.png (see docs/dataset-format.md)", .0.display())]
    NoImages(PathBuf),
    #[error("{}: line {line}: {detail}", .file.display())]
    BadLabels {
        file: PathBuf,
        line: usize,
        detail: String,
    },
    #[error("{}: {detail}", .file.display())]
    BadConfig { file: PathBuf, detail: String },
    #[error("{}: defect image has no mask (expected {}): pixel metrics need one — add the 0/255 mask or move the image to test/good if it has no defect", .image.display(), .expected.display())]
    MissingMask { image: PathBuf, expected: PathBuf },
    #[error("{}: mask is {got_w}x{got_h} px but its image is {want_w}x{want_h}", .mask.display())]
    MaskSize {
        mask: PathBuf,
        got_w: u32,
        got_h: u32,
        want_w: u32,
        want_h: u32,
    },
    #[error("output folder {} already holds files: choose a new folder or pass --force to overwrite", .0.display())]
    NotEmpty(PathBuf),
    #[error(transparent)]
    Image(#[from] ImageIoError),
    #[error("invalid synthetic dataset options: {0}")]
    Synth(#[from] synth::SynthError),
}

/// Process exit code for a dataset error.
pub fn exit_code(err: &DatasetError) -> u8 {
    match err {
        DatasetError::NotFound(_) | DatasetError::NotADirectory(_) | DatasetError::Io { .. } => {
            exit::INPUT_IO
        }
        DatasetError::NotEmpty(_) | DatasetError::Synth(_) => exit::USAGE,
        DatasetError::Image(e) => imageio::exit_code(e),
        _ => exit::BAD_DATASET,
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DatasetError + '_ {
    move |source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `dataset.toml`: defaults for every image (all optional).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DatasetConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fiber: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub um_per_px: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub um_per_px_x: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub um_per_px_y: Option<f64>,
    /// Everything else (generator info, other tools' keys).
    #[serde(flatten)]
    pub extra: BTreeMap<String, toml::Value>,
}

/// Scale from optional `um_per_px_x`/`um_per_px_y` (preferred) or square `um_per_px`.
fn scale_from(um: Option<f64>, x: Option<f64>, y: Option<f64>) -> Option<PixelScale> {
    let s = match (x, y, um) {
        (Some(x), Some(y), _) => PixelScale {
            um_per_px_x: x,
            um_per_px_y: y,
        },
        (Some(x), None, _) => PixelScale::square(x),
        (None, Some(y), _) => PixelScale::square(y),
        (None, None, Some(u)) => PixelScale::square(u),
        (None, None, None) => return None,
    };
    s.is_valid().then_some(s)
}

/// One defect of a label line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LabelDefect {
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_um: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bbox: Option<BBoxPx>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// One line of `labels.jsonl` (everything but `image` optional; unknown keys kept in `extra`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Label {
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fiber: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub um_per_px: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub um_per_px_x: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub um_per_px_y: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub center: Option<[f64; 2]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cladding_radius_px: Option<f64>,
    /// `"pass"` or `"fail"` (or `"unable"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    #[serde(default)]
    pub defects: Vec<LabelDefect>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Label {
    /// The label line of a rendered frame stored at `image` (relative path, `/`-separated).
    pub fn from_truth(image: &str, truth: &Truth) -> Label {
        let s = &truth.style;
        let mut extra = serde_json::Map::new();
        let mut put = |k: &str, v: serde_json::Value| {
            extra.insert(k.to_string(), v);
        };
        put("look", s.look.as_str().into());
        put("look_mix", round3(s.look_mix).into());
        put("core_diameter_um", round3(s.core_diameter_um).into());
        put("trench_ring", s.trench_ring.into());
        put("trench_band", s.trench_band.into());
        put("double_edge", s.double_edge.into());
        put("epoxy_width_um", round3(s.epoxy_width_um).into());
        put("edge_softness_um", round3(s.edge_softness_um).into());
        put("blur_sigma_px", round3(s.blur_sigma_px).into());
        put("read_noise", round3(s.read_noise).into());
        put("vignetting", round3(s.vignetting).into());
        put(
            "jpeg_quality",
            s.jpeg_quality.map_or(serde_json::Value::Null, |q| q.into()),
        );
        put("frame_border", s.frame_border.into());
        put("ferrule_scratches", s.ferrule_scratches.into());
        put(
            "aspect_y_over_x",
            round6(truth.scale.aspect_y_over_x()).into(),
        );
        put(
            "cladding_radius_px_y",
            round6(truth.cladding_radius_px_y()).into(),
        );
        put(
            "outside_defects",
            serde_json::Value::Array(
                truth
                    .outside_defects
                    .iter()
                    .map(|d| {
                        serde_json::to_value(label_defect(d)).unwrap_or(serde_json::Value::Null)
                    })
                    .collect(),
            ),
        );
        put(
            "grade_reasons",
            serde_json::Value::Array(
                truth
                    .grade_reasons
                    .iter()
                    .map(|r| r.clone().into())
                    .collect(),
            ),
        );
        Label {
            image: image.to_string(),
            fiber: Some(truth.fiber.as_str().to_string()),
            um_per_px: Some(truth.scale.um_per_px_x),
            um_per_px_x: Some(truth.scale.um_per_px_x),
            um_per_px_y: Some(truth.scale.um_per_px_y),
            center: Some(truth.center_in_frame),
            cladding_radius_px: Some(truth.cladding_radius_px),
            verdict: Some(verdict::verdict_str(truth.verdict).to_string()),
            defects: truth.defects.iter().map(label_defect).collect(),
            extra,
        }
    }

    /// µm/px from this label alone.
    pub fn scale(&self) -> Option<PixelScale> {
        scale_from(self.um_per_px, self.um_per_px_x, self.um_per_px_y)
    }
}

fn round3(v: f64) -> f64 {
    (v * 1e3).round() / 1e3
}

fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

fn label_defect(d: &DefectTruth) -> LabelDefect {
    let mut extra = serde_json::Map::new();
    extra.insert("variant".into(), d.variant.clone().into());
    // Full precision: the label's verdict must be re-derivable exactly from size and radius.
    extra.insert("inner_radius_um".into(), d.inner_radius_um.into());
    extra.insert("area_px".into(), d.area_px().into());
    extra.insert("peak_change".into(), round3(d.peak_change as f64).into());
    extra.insert("subtle".into(), d.subtle.into());
    LabelDefect {
        kind: d.kind.as_str().to_string(),
        zone: d.zone.map(|z| verdict::zone_letter(z).to_string()),
        size_um: Some(d.size_um),
        bbox: Some(d.bbox),
        extra,
    }
}

/// Which half of the dataset an image belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

/// One image of a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetImage {
    pub path: PathBuf,
    /// Path relative to the dataset root, `/`-separated (`test/pit/003.png`).
    pub rel: String,
    pub split: Split,
    /// Folder name: `good` or a defect kind.
    pub kind: String,
    /// `ground_truth/<kind>/<stem>_mask.png` when it exists.
    pub mask_path: Option<PathBuf>,
    pub label: Option<Label>,
}

impl DatasetImage {
    pub fn is_good(&self) -> bool {
        self.kind == "good"
    }

    /// The ground-truth mask for pixel metrics: all zeros for `good` images without a mask,
    /// the mask file otherwise; a defect image without a mask is an error naming the file.
    pub fn load_mask(&self, width: u32, height: u32) -> Result<GrayImage, DatasetError> {
        let Some(mp) = &self.mask_path else {
            if self.is_good() {
                return Ok(GrayImage::new(width, height));
            }
            return Err(DatasetError::MissingMask {
                image: self.path.clone(),
                expected: self.expected_mask_path(),
            });
        };
        let m = imageio::load_gray(mp)?;
        if m.dimensions() != (width, height) {
            return Err(DatasetError::MaskSize {
                mask: mp.clone(),
                got_w: m.width(),
                got_h: m.height(),
                want_w: width,
                want_h: height,
            });
        }
        Ok(m)
    }

    /// Where this image's mask would be.
    pub fn expected_mask_path(&self) -> PathBuf {
        // path = ROOT/test/<kind>/<file>; ROOT = path.parent().parent().parent()
        let root = self
            .path
            .parent()
            .and_then(Path::parent)
            .and_then(Path::parent)
            .unwrap_or(Path::new("."));
        mask_path_for(root, &self.kind, &self.path)
    }
}

fn mask_path_for(root: &Path, kind: &str, image: &Path) -> PathBuf {
    let stem = image
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    root.join("ground_truth")
        .join(kind)
        .join(format!("{stem}_mask.png"))
}

/// A dataset folder as read from disk.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub root: PathBuf,
    pub config: DatasetConfig,
    pub train_good: Vec<DatasetImage>,
    pub test: Vec<DatasetImage>,
    /// What was ignored (already logged with `warn!`).
    pub warnings: Vec<String>,
}

fn is_image(p: &Path) -> bool {
    p.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.as_str()))
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(io_err(dir))?
        .map(|e| e.map(|e| e.path()).map_err(io_err(dir)))
        .collect::<Result<_, _>>()?;
    v.sort();
    Ok(v)
}

fn name_of(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

impl Dataset {
    /// Read a dataset folder. Unknown folders, files and keys are ignored with a warning.
    pub fn open(dir: impl AsRef<Path>) -> Result<Dataset, DatasetError> {
        let root = dir.as_ref().to_path_buf();
        let meta = fs::metadata(&root).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => DatasetError::NotFound(root.clone()),
            _ => DatasetError::Io {
                path: root.clone(),
                source: e,
            },
        })?;
        if !meta.is_dir() {
            return Err(DatasetError::NotADirectory(root));
        }
        let mut warnings = Vec::new();
        let mut warn_once = |msg: String| {
            warn!("{msg}");
            warnings.push(msg);
        };

        // dataset.toml
        let cfg_path = root.join("dataset.toml");
        let config = if cfg_path.is_file() {
            let text = fs::read_to_string(&cfg_path).map_err(io_err(&cfg_path))?;
            let cfg: DatasetConfig =
                toml::from_str(&text).map_err(|e| DatasetError::BadConfig {
                    file: cfg_path.clone(),
                    detail: e.to_string(),
                })?;
            for k in cfg.extra.keys() {
                if !KNOWN_CONFIG_KEYS.contains(&k.as_str()) {
                    warn_once(format!("{}: unknown key {k:?} ignored", cfg_path.display()));
                }
            }
            cfg
        } else {
            DatasetConfig::default()
        };

        for entry in sorted_entries(&root)? {
            let n = name_of(&entry);
            let known = matches!(
                n.as_str(),
                "train" | "test" | "ground_truth" | "dataset.toml" | "labels.jsonl"
            ) || n.starts_with('.');
            if !known {
                warn_once(format!("{}: unknown entry ignored", entry.display()));
            }
        }

        let mut train_good = Vec::new();
        let train = root.join("train");
        if train.is_dir() {
            for sub in sorted_entries(&train)? {
                if name_of(&sub) == "good" && sub.is_dir() {
                    for f in sorted_entries(&sub)? {
                        if f.is_file() && is_image(&f) {
                            train_good.push(DatasetImage {
                                rel: format!("train/good/{}", name_of(&f)),
                                path: f,
                                split: Split::Train,
                                kind: "good".into(),
                                mask_path: None,
                                label: None,
                            });
                        } else if !name_of(&f).starts_with('.') {
                            warn_once(format!("{}: not an image, ignored", f.display()));
                        }
                    }
                } else {
                    warn_once(format!(
                        "{}: only train/good is read; ignored",
                        sub.display()
                    ));
                }
            }
        }

        let mut test = Vec::new();
        let test_dir = root.join("test");
        if test_dir.is_dir() {
            for sub in sorted_entries(&test_dir)? {
                if !sub.is_dir() {
                    warn_once(format!("{}: not a kind folder, ignored", sub.display()));
                    continue;
                }
                let kind = name_of(&sub);
                for f in sorted_entries(&sub)? {
                    if !(f.is_file() && is_image(&f)) {
                        if !name_of(&f).starts_with('.') {
                            warn_once(format!("{}: not an image, ignored", f.display()));
                        }
                        continue;
                    }
                    let mp = mask_path_for(&root, &kind, &f);
                    test.push(DatasetImage {
                        rel: format!("test/{kind}/{}", name_of(&f)),
                        path: f,
                        split: Split::Test,
                        kind: kind.clone(),
                        mask_path: mp.is_file().then_some(mp),
                        label: None,
                    });
                }
            }
        }
        if train_good.is_empty() && test.is_empty() {
            return Err(DatasetError::NoImages(root));
        }

        // labels.jsonl
        let labels_path = root.join("labels.jsonl");
        if labels_path.is_file() {
            let text = fs::read_to_string(&labels_path).map_err(io_err(&labels_path))?;
            let mut by_rel: HashMap<String, Label> = HashMap::new();
            let mut unknown_keys = BTreeSet::new();
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let label: Label =
                    serde_json::from_str(line).map_err(|e| DatasetError::BadLabels {
                        file: labels_path.clone(),
                        line: i + 1,
                        detail: e.to_string(),
                    })?;
                for k in label.extra.keys() {
                    if !SYNTH_LABEL_KEYS.contains(&k.as_str()) {
                        unknown_keys.insert(k.clone());
                    }
                }
                let rel = label.image.replace('\\', "/");
                let rel = rel.trim_start_matches("./").to_string();
                by_rel.insert(rel, label);
            }
            if !unknown_keys.is_empty() {
                warn_once(format!(
                    "{}: unknown keys ignored: {}",
                    labels_path.display(),
                    unknown_keys.into_iter().collect::<Vec<_>>().join(", ")
                ));
            }
            for img in train_good.iter_mut().chain(test.iter_mut()) {
                img.label = by_rel.remove(&img.rel);
            }
            if !by_rel.is_empty() {
                let mut left: Vec<&String> = by_rel.keys().collect();
                left.sort();
                warn_once(format!(
                    "{}: {} label(s) name no image in the dataset, ignored (first: {})",
                    labels_path.display(),
                    left.len(),
                    left[0]
                ));
            }
        }

        Ok(Dataset {
            root,
            config,
            train_good,
            test,
            warnings,
        })
    }

    /// Grading profile name of an image: its label's, else `dataset.toml`'s.
    pub fn fiber_of<'a>(&'a self, img: &'a DatasetImage) -> Option<&'a str> {
        img.label
            .as_ref()
            .and_then(|l| l.fiber.as_deref())
            .or(self.config.fiber.as_deref())
    }

    /// Camera scale of an image: its label's, else `dataset.toml`'s.
    pub fn scale_of(&self, img: &DatasetImage) -> Option<PixelScale> {
        img.label.as_ref().and_then(Label::scale).or_else(|| {
            scale_from(
                self.config.um_per_px,
                self.config.um_per_px_x,
                self.config.um_per_px_y,
            )
        })
    }

    /// Defect kinds present under `test/` (folder names other than `good`).
    pub fn kinds(&self) -> Vec<String> {
        let set: BTreeSet<&str> = self
            .test
            .iter()
            .filter(|i| !i.is_good())
            .map(|i| i.kind.as_str())
            .collect();
        set.into_iter().map(str::to_string).collect()
    }
}

// ---------------------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------------------

/// Writes the dataset layout under a root folder.
#[derive(Debug, Clone)]
pub struct DatasetWriter {
    root: PathBuf,
}

impl DatasetWriter {
    /// Create (or, with `overwrite`, reuse) the root folder. A non-empty folder is refused
    /// unless `overwrite` is set.
    pub fn create(root: impl AsRef<Path>, overwrite: bool) -> Result<Self, DatasetError> {
        let root = root.as_ref().to_path_buf();
        if root.exists() {
            if !root.is_dir() {
                return Err(DatasetError::NotADirectory(root));
            }
            let non_empty = fs::read_dir(&root).map_err(io_err(&root))?.next().is_some();
            if non_empty && !overwrite {
                return Err(DatasetError::NotEmpty(root));
            }
        }
        fs::create_dir_all(&root).map_err(io_err(&root))?;
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Relative path of image `index` in `split`/`kind` (`test/pit/0003.png`).
    pub fn image_rel(split: Split, kind: &str, index: usize) -> String {
        let s = match split {
            Split::Train => "train",
            Split::Test => "test",
        };
        format!("{s}/{kind}/{index:04}.png")
    }

    /// Write an image (and, for defect images, its mask) at relative path `rel`.
    pub fn write_image(
        &self,
        rel: &str,
        img: &GrayImage,
        mask: Option<&GrayImage>,
    ) -> Result<(), DatasetError> {
        let path = self.root.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        imageio::save_png_atomic(&path, img)?;
        if let Some(m) = mask {
            let kind = path
                .parent()
                .map(name_of)
                .unwrap_or_else(|| "unknown".into());
            let mp = mask_path_for(&self.root, &kind, &path);
            if let Some(parent) = mp.parent() {
                fs::create_dir_all(parent).map_err(io_err(parent))?;
            }
            imageio::save_png_atomic(&mp, m)?;
        }
        Ok(())
    }

    /// Write `labels.jsonl` (one line per label, in the given order).
    pub fn write_labels(&self, labels: &[Label]) -> Result<(), DatasetError> {
        let path = self.root.join("labels.jsonl");
        let mut text = String::new();
        for l in labels {
            let line = serde_json::to_string(l).map_err(|e| DatasetError::BadLabels {
                file: path.clone(),
                line: 0,
                detail: e.to_string(),
            })?;
            text.push_str(&line);
            text.push('\n');
        }
        imageio::write_atomic(&path, text.as_bytes(), false)?;
        Ok(())
    }

    /// Write `dataset.toml`.
    pub fn write_config(&self, cfg: &DatasetConfig) -> Result<(), DatasetError> {
        let path = self.root.join("dataset.toml");
        let text = toml::to_string(cfg).map_err(|e| DatasetError::BadConfig {
            file: path.clone(),
            detail: e.to_string(),
        })?;
        imageio::write_atomic(&path, text.as_bytes(), false)?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Synthetic dataset generation
// ---------------------------------------------------------------------------------------

/// What `endface synth` writes.
#[derive(Debug, Clone)]
pub struct SynthDatasetOptions {
    pub config: SynthConfig,
    pub seed: u64,
    pub train_good: usize,
    pub test_good: usize,
    pub per_kind: usize,
    pub kinds: Vec<DefectKind>,
    /// Worker threads (the output does not depend on it).
    pub threads: usize,
    pub overwrite: bool,
    /// Also write a labels.jsonl line for every `train/good` image (fiber centre, scale, pixel
    /// aspect, style; verdict pass). The format asks only for test images; a trainer given
    /// frames of varied scale needs each one's scale to crop it right.
    pub label_train: bool,
}

impl Default for SynthDatasetOptions {
    fn default() -> Self {
        Self {
            config: SynthConfig::default(),
            seed: 0,
            train_good: 200,
            test_good: 50,
            per_kind: 30,
            kinds: DefectKind::ALL.to_vec(),
            threads: 2,
            overwrite: false,
            label_train: false,
        }
    }
}

/// Counts of what was written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SynthSummary {
    pub images: usize,
    pub train_good: usize,
    pub test_good: usize,
    /// Per kind folder: (images, of which pass, of which fail).
    pub per_kind: BTreeMap<String, (usize, usize, usize)>,
    /// Defect images whose requested kind could not be made visible (written anyway).
    pub missing_kind: usize,
}

#[derive(Debug, Clone, Copy)]
struct Job {
    split: Split,
    content: Content,
    index: usize,
    seed: u64,
}

fn content_folder(c: Content) -> &'static str {
    match c {
        Content::Good => "good",
        Content::Defect(k) => k.as_str(),
    }
}

/// Seed of item `index` of folder `folder` (independent of the other counts and threads).
fn job_seed(seed: u64, folder: &str, index: usize) -> u64 {
    let tag = folder.bytes().fold(0xCBF2_9CE4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01B3)
    });
    synth::frame_seed(synth::frame_seed(seed, tag), index as u64)
}

/// Render and write a whole synthetic dataset. Frame `i` of each folder depends only on
/// `(seed, folder, i)`, so the output is identical for any thread count.
pub fn write_synthetic(
    out: impl AsRef<Path>,
    opts: &SynthDatasetOptions,
) -> Result<SynthSummary, DatasetError> {
    opts.config.validate()?;
    let writer = DatasetWriter::create(out, opts.overwrite)?;
    let mut jobs = Vec::new();
    let mut push = |split: Split, content: Content, n: usize| {
        let folder = match split {
            Split::Train => format!("train/{}", content_folder(content)),
            Split::Test => format!("test/{}", content_folder(content)),
        };
        for index in 0..n {
            jobs.push(Job {
                split,
                content,
                index,
                seed: job_seed(opts.seed, &folder, index),
            });
        }
    };
    push(Split::Train, Content::Good, opts.train_good);
    push(Split::Test, Content::Good, opts.test_good);
    for &k in &opts.kinds {
        push(Split::Test, Content::Defect(k), opts.per_kind);
    }
    info!(
        frames = jobs.len(),
        threads = opts.threads,
        out = %writer.root().display(),
        "rendering synthetic dataset"
    );

    let threads = opts.threads.clamp(1, 64);
    let failed = AtomicBool::new(false);
    type JobOut = (usize, Label, bool);
    let results: Vec<Result<Vec<JobOut>, DatasetError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let jobs = &jobs;
                let writer = &writer;
                let failed = &failed;
                let config = &opts.config;
                scope.spawn(move || -> Result<Vec<JobOut>, DatasetError> {
                    let mut out = Vec::new();
                    for (ji, job) in jobs.iter().enumerate().skip(t).step_by(threads) {
                        if failed.load(Ordering::Relaxed) {
                            break;
                        }
                        let (img, truth) = synth::render_content(config, job.seed, job.content);
                        let ok = synth::satisfies(&truth, job.content);
                        let rel = DatasetWriter::image_rel(
                            job.split,
                            content_folder(job.content),
                            job.index,
                        );
                        let mask = match job.content {
                            Content::Defect(_) => Some(truth.mask()),
                            Content::Good => None,
                        };
                        if let Err(e) = writer.write_image(&rel, &img, mask.as_ref()) {
                            failed.store(true, Ordering::Relaxed);
                            return Err(e);
                        }
                        out.push((ji, Label::from_truth(&rel, &truth), ok));
                    }
                    Ok(out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(r) => r,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    });
    let mut all: Vec<JobOut> = Vec::with_capacity(jobs.len());
    for r in results {
        all.extend(r?);
    }
    all.sort_by_key(|r| r.0);

    let mut summary = SynthSummary::default();
    let mut labels = Vec::new();
    for (ji, label, ok) in all {
        let job = jobs[ji];
        summary.images += 1;
        match (job.split, job.content) {
            (Split::Train, _) => summary.train_good += 1,
            (Split::Test, Content::Good) => summary.test_good += 1,
            (Split::Test, Content::Defect(k)) => {
                let e = summary.per_kind.entry(k.as_str().to_string()).or_default();
                e.0 += 1;
                match label.verdict.as_deref() {
                    Some("pass") => e.1 += 1,
                    Some("fail") => e.2 += 1,
                    _ => {}
                }
                if !ok {
                    summary.missing_kind += 1;
                    warn!(image = %label.image, kind = %k, "requested defect kind not visible after retries; written anyway");
                }
            }
        }
        if job.split == Split::Test || opts.label_train {
            labels.push(label);
        }
    }
    writer.write_labels(&labels)?;

    let mut extra = BTreeMap::new();
    let mut synth_tbl = toml::Table::new();
    synth_tbl.insert("generator".into(), "endface synth".into());
    synth_tbl.insert("seed".into(), toml::Value::String(opts.seed.to_string()));
    synth_tbl.insert("width".into(), (opts.config.width as i64).into());
    synth_tbl.insert("height".into(), (opts.config.height as i64).into());
    extra.insert("synth".to_string(), toml::Value::Table(synth_tbl));
    let (um, umx, umy) = match (opts.config.um_per_px, opts.config.aspect_y_over_x) {
        (Some(u), Some(a)) if (a - 1.0).abs() > 1e-12 => (None, Some(u), Some(u / a)),
        (Some(u), _) if opts.config.aspect_y_over_x.is_some() => (Some(u), None, None),
        _ => (None, None, None),
    };
    writer.write_config(&DatasetConfig {
        fiber: opts.config.fiber.map(|f| f.as_str().to_string()),
        um_per_px: um,
        um_per_px_x: umx,
        um_per_px_y: umy,
        extra,
    })?;
    Ok(summary)
}
