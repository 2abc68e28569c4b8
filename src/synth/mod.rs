//! Synthetic end-face camera: renders fiber end-face frames with exact ground truth.
//!
//! In: a [`SynthConfig`] (frame size, fiber profile or mixed, µm/px, pixel aspect, JPEG
//! probability) and a seed — or a fully specified [`SceneSpec`]. Out: one 8-bit gray frame
//! ([`image::GrayImage`]) plus its [`Truth`] at a time: fiber profile, exact sub-pixel
//! `center_in_frame`, cladding radius, µm/px in x and y, look/style tags, every visible defect
//! with kind, IEC zone, size (µm), bbox and 0/255 pixel mask, and the IEC verdict.
//!
//! Entry points:
//! - [`SynthCamera`]: an endless, deterministic stream of frames (the daemon's synthetic
//!   camera): frame `i` depends only on `(seed, i)`.
//! - [`render_content`]: one frame with a required content (good / a given defect kind), as
//!   the dataset writer uses it.
//! - [`sample_scene`] + [`render`]: the lower level; a scene can be edited before rendering.
//!
//! Conventions: pixel `(x, y)` has its centre at frame coordinates `(x, y)`; fiber
//! micrometres have their origin on the fiber axis, x right, y down; `um = px × um_per_px`
//! separately along x and y (pixels may be non-square; fibers then render as ellipses).

mod grade_shim;
mod raster;
mod render;
mod scene;
mod truth;
pub mod verdict;

pub use render::render;
pub use scene::{
    sample_scene, Blob, CameraSpec, ChipShape, Content, DefectSpec, FerruleSpec, Halo,
    IlluminationSpec, LookSpec, SceneSpec, Shape, Stroke, StrokePath, Tone, CONTACT_RADIUS_UM,
    TRENCH_RATIO,
};
pub use truth::{DefectKind, DefectTruth, FiberProfile, Look, StyleTags, Truth, Verdict, Zone};

use image::GrayImage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tracing::debug;

/// Largest accepted frame side (px).
pub const MAX_SIDE_PX: u32 = 8192;

/// Errors of the synthetic camera (all are configuration errors).
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("synth config: {key} = {value} is invalid: {reason}")]
    InvalidConfig {
        key: &'static str,
        value: String,
        reason: &'static str,
    },
}

/// What the synthetic camera renders. `Default` is a 640x480 camera with mixed fibers,
/// random µm/px in 0.4–0.7 and mostly square pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthConfig {
    pub width: u32,
    pub height: u32,
    /// A fixed grading profile, or `None` for a mix of all fibers and looks.
    pub fiber: Option<FiberProfile>,
    /// Fixed µm per pixel along x, or `None` for random 0.4–0.7 per frame.
    pub um_per_px: Option<f64>,
    /// Fixed pixel aspect (y over x: 1.09 = fibers 9 % taller than wide), or `None` for
    /// mostly square with some PAL-like frames.
    pub aspect_y_over_x: Option<f64>,
    /// Probability that a frame goes through a JPEG round trip.
    pub jpeg_prob: f64,
    /// For [`SynthCamera`]: probability that a frame has a graded defect.
    pub defect_prob: f64,
}

impl Default for SynthConfig {
    fn default() -> Self {
        Self {
            width: 640,
            height: 480,
            fiber: None,
            um_per_px: None,
            aspect_y_over_x: None,
            jpeg_prob: 0.3,
            defect_prob: 0.5,
        }
    }
}

impl SynthConfig {
    /// Check every field; the error names the key, the value and the accepted range.
    pub fn validate(&self) -> Result<(), SynthError> {
        let bad =
            |key, value: String, reason| Err(SynthError::InvalidConfig { key, value, reason });
        if !(16..=MAX_SIDE_PX).contains(&self.width) {
            return bad("width", self.width.to_string(), "must be 16..=8192 px");
        }
        if !(16..=MAX_SIDE_PX).contains(&self.height) {
            return bad("height", self.height.to_string(), "must be 16..=8192 px");
        }
        if let Some(s) = self.um_per_px {
            if !(s.is_finite() && (0.05..=5.0).contains(&s)) {
                return bad("um_per_px", s.to_string(), "must be 0.05..=5.0 µm/px");
            }
        }
        if let Some(a) = self.aspect_y_over_x {
            if !(a.is_finite() && (0.8..=1.25).contains(&a)) {
                return bad("aspect_y_over_x", a.to_string(), "must be 0.8..=1.25");
            }
        }
        for (key, p) in [
            ("jpeg_prob", self.jpeg_prob),
            ("defect_prob", self.defect_prob),
        ] {
            if !(p.is_finite() && (0.0..=1.0).contains(&p)) {
                return bad(key, p.to_string(), "must be a probability 0..=1");
            }
        }
        Ok(())
    }
}

/// Seed of item `index` of a stream seeded with `seed` (independent of thread count).
pub fn frame_seed(seed: u64, index: u64) -> u64 {
    raster::mix64(raster::mix64(seed) ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03))
}

/// Whether a rendered truth satisfies the requested content.
pub fn satisfies(truth: &Truth, content: Content) -> bool {
    match content {
        Content::Good => truth.defects.is_empty(),
        Content::Defect(k) => truth.has_kind(k),
    }
}

/// Render one frame with the requested content. The scene is resampled (deterministically)
/// until the content is visible; after 24 tries the last frame is returned as is (its truth
/// then tells what it holds — use [`satisfies`] to check).
pub fn render_content(config: &SynthConfig, seed: u64, content: Content) -> (GrayImage, Truth) {
    let mut attempt = 0u64;
    loop {
        let spec = sample_scene(config, frame_seed(seed, attempt), content);
        let (img, truth) = render(&spec);
        if satisfies(&truth, content) || attempt >= 23 {
            if attempt > 0 {
                debug!(
                    attempt,
                    ?content,
                    "scene resampled until its content was visible"
                );
            }
            return (img, truth);
        }
        attempt += 1;
    }
}

/// The synthetic camera: frame after frame, deterministic for a seed.
#[derive(Debug, Clone)]
pub struct SynthCamera {
    config: SynthConfig,
    seed: u64,
    index: u64,
}

impl SynthCamera {
    pub fn new(config: SynthConfig, seed: u64) -> Result<Self, SynthError> {
        config.validate()?;
        Ok(Self {
            config,
            seed,
            index: 0,
        })
    }

    /// Index of the next frame.
    pub fn frame_index(&self) -> u64 {
        self.index
    }

    pub fn config(&self) -> &SynthConfig {
        &self.config
    }

    /// Render the next frame and its truth.
    pub fn next_frame(&mut self) -> (GrayImage, Truth) {
        let s = frame_seed(self.seed, self.index);
        self.index += 1;
        let mut rng = ChaCha8Rng::seed_from_u64(s);
        let content = if rng.gen_bool(self.config.defect_prob) {
            Content::Defect(DefectKind::ALL[rng.gen_range(0..DefectKind::ALL.len())])
        } else {
            Content::Good
        };
        render_content(&self.config, rng.gen(), content)
    }
}
