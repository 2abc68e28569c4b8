//! Ground truth of one rendered frame: where the fiber is, how it looks, every defect with its
//! exact pixel mask, IEC zone and size, and the IEC verdict of the frame under its profile.
//!
//! In: what the renderer measured while drawing. Out: [`Truth`] (plus the union defect mask).

use super::verdict;
use crate::geometry::{BBoxPx, PixelScale};
use image::GrayImage;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

pub use super::verdict::{Verdict, Zone};

/// Grading profile (and fiber family) of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FiberProfile {
    /// Single-mode, PC/UPC polish (9 µm core).
    SmUpc,
    /// Single-mode, angled polish (9 µm core).
    SmApc,
    /// Multimode PC (50 or 62.5 µm core).
    Mm,
}

impl FiberProfile {
    pub const ALL: [FiberProfile; 3] = [Self::SmUpc, Self::SmApc, Self::Mm];

    /// The grading profile name: `sm-upc`, `sm-apc` or `mm`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SmUpc => "sm-upc",
            Self::SmApc => "sm-apc",
            Self::Mm => "mm",
        }
    }

    pub fn is_single_mode(self) -> bool {
        !matches!(self, Self::Mm)
    }
}

impl fmt::Display for FiberProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FiberProfile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sm-upc" => Ok(Self::SmUpc),
            "sm-apc" => Ok(Self::SmApc),
            "mm" => Ok(Self::Mm),
            other => Err(format!(
                "unknown fiber profile {other:?}: expected sm-upc, sm-apc or mm"
            )),
        }
    }
}

/// What kind of defect a feature is. The folder name under `test/` and `ground_truth/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DefectKind {
    Scratch,
    Pit,
    Contamination,
    Chip,
    Crack,
}

impl DefectKind {
    pub const ALL: [DefectKind; 5] = [
        Self::Scratch,
        Self::Pit,
        Self::Contamination,
        Self::Chip,
        Self::Crack,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scratch => "scratch",
            Self::Pit => "pit",
            Self::Contamination => "contamination",
            Self::Chip => "chip",
            Self::Crack => "crack",
        }
    }

    /// IEC class: only scratches are judged by width; everything else by diameter.
    pub fn is_scratch(self) -> bool {
        matches!(self, Self::Scratch)
    }
}

impl fmt::Display for DefectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DefectKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DefectKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!("unknown defect kind {s:?}: expected scratch, pit, contamination, chip or crack")
            })
    }
}

/// The two common looks and the range between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Look {
    /// Dark fiber disk on a bright ferrule (back / coaxial light).
    DarkFiber,
    /// Brighter core and gray cladding on a darker ferrule.
    BrightCore,
    /// Anything in between.
    Intermediate,
}

impl Look {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DarkFiber => "dark-fiber",
            Self::BrightCore => "bright-core",
            Self::Intermediate => "intermediate",
        }
    }
}

/// Style tags recorded with each frame (written to labels.jsonl as extra keys) so that
/// results can be broken down by look and imaging condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StyleTags {
    pub look: Look,
    /// 0 = dark fiber on bright ferrule … 1 = bright core on darker ferrule.
    pub look_mix: f64,
    pub core_diameter_um: f64,
    pub trench_ring: bool,
    /// The trench is a broad band around the core rather than a thin ring.
    #[serde(default)]
    pub trench_band: bool,
    pub double_edge: bool,
    pub epoxy_width_um: f64,
    pub edge_softness_um: f64,
    pub blur_sigma_px: f64,
    pub read_noise: f64,
    pub vignetting: f64,
    pub jpeg_quality: Option<u8>,
    pub frame_border: bool,
    pub ferrule_scratches: usize,
}

/// One defect as rendered.
#[derive(Debug, Clone)]
pub struct DefectTruth {
    pub kind: DefectKind,
    /// Finer shape name: `line`, `arc`, `polish-bundle`, `dust-dark`, `oil-film`, …
    pub variant: String,
    /// IEC zone of the innermost visible pixel; `None` beyond zone D (not graded).
    pub zone: Option<Zone>,
    /// IEC size: width for scratches, maximum Feret diameter otherwise (µm).
    pub size_um: f64,
    /// Distance from the fiber axis to the closest mask pixel centre (µm).
    pub inner_radius_um: f64,
    /// Inclusive box of the mask in frame pixels `[x0, y0, x1, y1]`.
    pub bbox: BBoxPx,
    /// 0/255 mask of the pixels this defect visibly changes, cropped to `bbox`.
    pub mask_in_bbox: GrayImage,
    /// Largest visible change of this defect (gray levels, signed: < 0 darker).
    pub peak_change: f32,
    /// Low contrast or tiny on purpose.
    pub subtle: bool,
}

impl DefectTruth {
    /// Number of mask pixels.
    pub fn area_px(&self) -> usize {
        self.mask_in_bbox.pixels().filter(|p| p.0[0] > 0).count()
    }

    /// The grader's view of this defect.
    pub fn feature(&self) -> verdict::Feature {
        verdict::feature(self.kind, self.size_um, self.inner_radius_um)
    }
}

/// Everything known about one rendered frame.
#[derive(Debug, Clone)]
pub struct Truth {
    pub width: u32,
    pub height: u32,
    pub fiber: FiberProfile,
    /// Fiber axis in frame pixels (pixel `(x, y)` has its centre at `(x, y)`), exact.
    pub center_in_frame: [f64; 2],
    /// Cladding radius along the frame x axis (px): 62.5 µm / `um_per_px_x`.
    pub cladding_radius_px: f64,
    pub scale: PixelScale,
    pub style: StyleTags,
    /// Visible defects in zones A–D (graded; in the dataset mask).
    pub defects: Vec<DefectTruth>,
    /// Visible features beyond the contact zone (harmless, not graded, not in the mask).
    pub outside_defects: Vec<DefectTruth>,
    /// IEC verdict of the frame under `fiber`'s profile.
    pub verdict: Verdict,
    /// Why it fails (empty on pass).
    pub grade_reasons: Vec<String>,
}

impl Truth {
    /// Cladding radius along the frame y axis (px).
    pub fn cladding_radius_px_y(&self) -> f64 {
        crate::geometry::CLADDING_RADIUS_UM / self.scale.um_per_px_y
    }

    /// Union of the graded defects' masks, full frame, 0/255.
    pub fn mask(&self) -> GrayImage {
        let mut m = GrayImage::new(self.width, self.height);
        for d in &self.defects {
            for (x, y, p) in d.mask_in_bbox.enumerate_pixels() {
                if p.0[0] > 0 {
                    m.put_pixel(d.bbox[0] + x, d.bbox[1] + y, image::Luma([255]));
                }
            }
        }
        m
    }

    /// Whether any graded defect of `kind` is present.
    pub fn has_kind(&self, kind: DefectKind) -> bool {
        self.defects.iter().any(|d| d.kind == kind)
    }
}
