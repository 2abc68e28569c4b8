//! One frame in, a graded verdict out: condition → locate → crop (+ exposure) → model →
//! anomaly map → defects → grade.
//!
//! In: an 8-bit gray frame, the station config (calibrated µm/px, thresholds, runtime) and a
//! grading profile. Out: an [`Inspection`] — PASS / FAIL / UNABLE with reasons, the defects
//! (kind, zone, size in µm, box in frame pixels, score), the fiber centre and radius, the image
//! score, per-stage timings, the model's sha256 and the execution provider that ran it.
//!
//! - Conditioning, before locating ([`hotpixel`], [`destripe`]): isolated stuck sensor pixels
//!   are replaced and horizontal bands / column stripes divided out; the camera's frame is
//!   never changed (a corrected copy lives in the inspector's buffers). A frame whose brightest
//!   pixels stay below 32 grey levels is UNABLE; a dim crop is gained up ([`exposure`]).
//! - UNABLE when the cladding is not found (or found with too little confidence) or the focus
//!   is below `[locate] min_focus`: never PASS on a frame that cannot be trusted.
//! - The crop follows CONTRACTS.md exactly ([`crop::CropGeometry`]); the anomaly map, its
//!   labels and the crop geometry of the last frame stay available
//!   ([`Inspector::anomaly_map_in_crop`], [`Inspection::geometry`]) so `eval` can score pixels
//!   in frame space.
//! - Nothing outside the contact zone (zone D's outer circle of the profile) counts: the map
//!   is zeroed there before the image score and the defects are taken.
//! - Buffers (crop, map, labels, model tensors) live in the [`Inspector`] and are reused.

pub mod border;
pub mod core;
pub mod crop;
pub mod dequant;
pub mod destripe;
pub mod edge_ring;
pub mod exposure;
pub mod grain;
pub mod hotpixel;
pub mod rings;

use crate::anomaly::{
    self, AnomalyError, ContactZone, CropRect, Defect, DefectScratch, JoinScratch, SmoothScratch,
};
use crate::config::StationConfig;
use crate::daemon::{set_reasons, set_text};
use crate::error::exit;
use crate::geometry::{BBoxPx, PixelScale};
use crate::grade::{self, FeatureKind, GradeError, Profile, Verdict, Zone};
use crate::locate::{LocateConfig, LocateError, Located, Locator};
use crate::model::{Model, ModelError};
use crop::{CropGeometry, CropScratch};
use image::GrayImage;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tracing::debug;

/// Errors that stop an inspection (as opposed to an UNABLE verdict, which is a result).
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Anomaly(#[from] AnomalyError),
    #[error(transparent)]
    Profile(#[from] GradeError),
    #[error(transparent)]
    Locate(#[from] LocateError),
    #[error("invalid setting `{key}`: {problem}")]
    Setting { key: String, problem: String },
}

impl InspectError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            InspectError::Model(e) => e.exit_code(),
            InspectError::Anomaly(_) => exit::BAD_MODEL,
            InspectError::Profile(GradeError::UnknownProfile { .. }) => exit::UNKNOWN_PROFILE,
            InspectError::Profile(_) => exit::BAD_CONFIG,
            InspectError::Locate(_) | InspectError::Setting { .. } => exit::BAD_CONFIG,
        }
    }
}

/// Per-stage wall time of one inspection (milliseconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Timings {
    pub locate: f64,
    pub crop: f64,
    pub infer: f64,
    pub anomaly: f64,
    pub grade: f64,
    pub total: f64,
}

/// One defect as reported: grading view plus its measurements and where it is in the frame.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InspectedDefect {
    pub kind: FeatureKind,
    /// Zone of its innermost pixel (`None` only beyond the contact zone, which is masked).
    pub zone: Option<Zone>,
    pub size_um: f64,
    /// Inclusive box in frame pixels `[x0, y0, x1, y1]`.
    pub bbox: BBoxPx,
    /// Max anomaly-map value over the defect.
    pub score: f32,
    /// Whether it takes part in a failed rule of the profile.
    pub fails: bool,
    pub area_um2: f64,
    /// Max Feret diameter (µm).
    pub feret_um: f64,
    pub length_um: f64,
    pub width_um: f64,
    pub elongation: f64,
    pub inner_radius_um: f64,
    /// Distance (µm) from the fiber axis to its outermost pixel.
    pub outer_radius_um: f64,
    /// Mean crack probability over its pixels (models with a crack output; else `None`).
    pub crack_score: Option<f32>,
    /// The model calls it a crack: graded as a defect by its max Feret diameter.
    pub crack: bool,
    /// Sized without the ring of the opposite polarity around it (`[model] size_without_halo`):
    /// `size_um` and `feret_um` are of the spot inside the ring.
    pub halo: bool,
    /// Inclusive box in crop pixels.
    pub bbox_in_crop: [u32; 4],
    /// Label of its pixels in [`Inspector::labels_in_crop`].
    #[serde(skip)]
    pub label: u32,
    /// Connected components of the map it was measured from: 1, or the pieces of one broken
    /// scratch joined into it (`[model] scratch_join_gap_um`).
    pub fragments: u32,
}

/// The result of inspecting one frame.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Inspection {
    pub verdict: Verdict,
    pub reasons: Vec<String>,
    pub defects: Vec<InspectedDefect>,
    /// Fiber (cladding) centre in frame pixels; `None` when not found.
    pub center: Option<[f64; 2]>,
    /// Cladding radius along x (frame pixels).
    pub cladding_radius_px: Option<f64>,
    /// Cladding radius along y (frame pixels).
    pub radius_y_px: Option<f64>,
    pub locate_confidence: Option<f64>,
    /// `None` when the localizer's regular passes found the cladding; else how its rescue of
    /// a refusal did (`"line-edge"`: the edge is only a line, its circle was taken;
    /// `"line-start"`: the refinement reran from the line's circle) — see
    /// [`crate::locate::Rescue`].
    pub locate_rescue: Option<crate::locate::Rescue>,
    pub focus: Option<f64>,
    /// 99th percentile of the contact zone's grey levels in the model's crop (0–255;
    /// [`exposure`]); for a frame too dark to locate the fiber in, the whole frame's; `None`
    /// when neither was measured.
    pub bright_level: Option<f32>,
    /// Digital gain applied to an underexposed crop before the model (1 = none; [`exposure`]);
    /// `None` when the model did not run.
    pub exposure_gain: Option<f32>,
    /// Grey-level step of the model's crop: the camera's (range of the fiber's surroundings
    /// over the levels it uses; 1 for a full 8-bit picture) times `exposure_gain`. When the
    /// camera's own step is [`dequant::MIN_STEP`] or more, the crop's steps were smoothed back
    /// into shading before the model (`[model] dequantize`). `None` when the model did not
    /// run.
    pub grey_step: Option<f32>,
    /// Isolated stuck (hot or dead) sensor pixels replaced before grading ([`hotpixel`]).
    pub stuck_pixels: u32,
    /// Robust amplitudes of the frame's horizontal bands and vertical stripes (≈ fraction of
    /// brightness; [`destripe`]); `None` for frames too small to measure.
    pub banding: Option<[f64; 2]>,
    /// Whether bands or stripes were divided out before grading.
    pub banding_corrected: bool,
    /// The frame's anomaly score: the larger of `map_score` and the cladding-edge scan's score
    /// (`edge_scan`); `None` when the model did not run.
    pub image_score: Option<f32>,
    /// Max of the anomaly map inside the contact zone (after [`rings`]); `None` when the model
    /// did not run.
    pub map_score: Option<f32>,
    /// The largest ring level [`rings`] took out of the map (0: none); `None` when it is off or
    /// the model did not run.
    pub ring_level: Option<f32>,
    /// The largest map value of a single-mode core's mark taken out of the map ([`core`]; 0:
    /// none); `None` when it is off, the profile is not single-mode, or the model did not run.
    pub core_level: Option<f32>,
    /// The ferrule's grain in grey levels ([`grain`]: robust spread of a 3-px-less-17-px
    /// band-pass from 70 to 122 µm off the axis); `None` when it was not measured (off, or no
    /// zone-D spot to judge).
    pub ferrule_grain: Option<f32>,
    /// Zone-D spots taken out of the defects as no more marked than the ferrule's grain.
    pub grain_spots: u32,
    /// The cladding-edge scan ([`edge_ring`]; `[model] edge_scan`); `None` when it is off, did
    /// not run, or too little of the edge was in view.
    pub edge_scan: Option<EdgeScan>,
    /// Share of the contact zone inside the camera frame (what could be graded); `None` when
    /// the fiber was not located.
    pub contact_zone_in_view: Option<f64>,
    /// `image_score > image_threshold`.
    pub anomalous: Option<bool>,
    pub pixel_threshold: f32,
    pub image_threshold: f32,
    pub timings_ms: Timings,
    pub model_sha256: String,
    pub execution_provider: String,
    pub profile: String,
    /// Where the model crop sat (for mapping the crop-space map to frame pixels).
    #[serde(skip)]
    pub geometry: Option<CropGeometry>,
}

impl Default for Inspection {
    /// An empty UNABLE inspection (no reasons, no defects): a buffer for
    /// [`Inspector::inspect_into`].
    fn default() -> Self {
        Inspection {
            verdict: Verdict::Unable,
            reasons: Vec::new(),
            defects: Vec::new(),
            center: None,
            cladding_radius_px: None,
            radius_y_px: None,
            locate_confidence: None,
            locate_rescue: None,
            focus: None,
            bright_level: None,
            exposure_gain: None,
            grey_step: None,
            stuck_pixels: 0,
            banding: None,
            banding_corrected: false,
            image_score: None,
            map_score: None,
            ring_level: None,
            core_level: None,
            ferrule_grain: None,
            grain_spots: 0,
            edge_scan: None,
            contact_zone_in_view: None,
            anomalous: None,
            pixel_threshold: 0.0,
            image_threshold: 0.0,
            timings_ms: Timings::default(),
            model_sha256: String::new(),
            execution_provider: String::new(),
            profile: String::new(),
            geometry: None,
        }
    }
}

/// What the cladding-edge scan found on one frame ([`edge_ring`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EdgeScan {
    /// Largest robust departure (z) from the edge's course around the fiber.
    pub z: f32,
    /// Its score in [0, 1] (part of `image_score`).
    pub score: f32,
    /// Where, as an angle in the frame (degrees, 0 = +x, 90 = +y, i.e. down) and a distance
    /// from the fiber axis (µm).
    pub angle_deg: f64,
    pub radius_um: f64,
}

/// Folders searched for a grading profile given by name: `<config dir>/profiles`, the
/// repository's `firmware-config/profiles` (next to the executable's `../../`, then the
/// working directory) and `/etc/endface/profiles`.
pub fn profile_search_dirs(config_dir: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = config_dir {
        dirs.push(d.join("profiles"));
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(repo) = exe.parent().and_then(Path::parent).and_then(Path::parent) {
            dirs.push(repo.join("firmware-config").join("profiles"));
        }
    }
    dirs.push(PathBuf::from("firmware-config/profiles"));
    dirs.push(PathBuf::from("/etc/endface/profiles"));
    dirs
}

/// The inspection engine for one station: model session, profile, settings, buffers.
pub struct Inspector {
    model: Model,
    profile: Profile,
    scale: PixelScale,
    locator: Locator,
    min_confidence: f64,
    min_focus: f64,
    pixel_threshold: f32,
    image_threshold: f32,
    grow_threshold: f32,
    /// Largest gap (µm) bridged between the pieces of a broken scratch (0: never joined).
    scratch_join_gap_um: f64,
    /// `[model] flips`: model runs per frame on the crop and its mirror images.
    flips: usize,
    /// `[model] edge_scan`: the cladding-edge scan adds to the image score.
    edge_scan: bool,
    /// `[model] edge_cracks`: lines from the cladding edge inwards are graded as cracks.
    edge_cracks: bool,
    /// `[model] edge_chips`: short lines lying along the cladding edge are graded as chips.
    edge_chips: bool,
    /// `[model] remove_rings`: responses around much of a circle about the axis leave the map.
    remove_rings: bool,
    rings: rings::Rings,
    /// `[model] core_mark`: with a single-mode profile, the core's mark leaves the map.
    core_mark: bool,
    core: core::CoreMark,
    /// `[model] size_without_halo`: a spot ringed by the opposite polarity is sized inside the ring.
    size_without_halo: bool,
    edge_ring: edge_ring::EdgeRing,
    /// `[model] ferrule_grain`: zone-D spots no more marked than the ferrule's grain are not
    /// defects.
    ferrule_grain: bool,
    grain: grain::Grain,
    /// `[model] dequantize`: a posterized crop's steps are smoothed back into shading.
    dequantize: bool,
    dequantizer: dequant::Dequantizer,
    zone: ContactZone,
    /// The last frame's crop pixels inside the camera frame.
    in_view: CropRect,
    crop_px: Vec<f32>,
    /// The frame with its stuck pixels replaced ([`hotpixel`]), when it had any.
    clean_frame: GrayImage,
    /// The frame with bands / stripes divided out ([`destripe`]), when it had any.
    destriped_frame: GrayImage,
    destriper: destripe::Destriper,
    crop_scratch: CropScratch,
    map_in_crop: Vec<f32>,
    smooth_scratch: SmoothScratch,
    defect_scratch: DefectScratch,
    join_scratch: JoinScratch,
    defects: Vec<Defect>,
    features: Vec<grade::Feature>,
    /// Reconstruction errors inside the contact zone (drift features), reused.
    drift_scratch: Vec<f32>,
    /// The daemon asks for drift features per frame (a drift monitor runs).
    measure_drift: bool,
    /// Reason strings between frames (see [`set_reasons`]).
    reason_spare: Vec<String>,
    /// The last frame's grade and the grader's buffers, reused.
    grade: grade::Grade,
    grade_scratch: grade::GradeScratch,
    /// The daemon's inspection, reused frame after frame ([`crate::daemon::FrameInspector`]).
    pub(crate) daemon_scratch: Inspection,
}

impl Inspector {
    /// Load the model named by `cfg.model.manifest` and set up the pipeline for `profile`.
    pub fn new(cfg: &StationConfig, profile: Profile) -> Result<Inspector, InspectError> {
        let model = Model::load(&cfg.model.manifest, &cfg.runtime)?;
        Inspector::with_model(cfg, profile, model)
    }

    /// Set up the pipeline around an already loaded model.
    pub fn with_model(
        cfg: &StationConfig,
        profile: Profile,
        model: Model,
    ) -> Result<Inspector, InspectError> {
        let scale = cfg.calibration.pixel_scale();
        let m = model.manifest();
        let pixel_threshold = cfg.model.pixel_threshold.unwrap_or(m.thresholds.pixel) as f32;
        let image_threshold = cfg.model.image_threshold.unwrap_or(m.thresholds.image) as f32;
        let grow_threshold = cfg
            .model
            .grow_threshold
            .or(m.thresholds.grow)
            .map_or(pixel_threshold, |g| (g as f32).min(pixel_threshold));
        let (w, h) = model.input_size();
        let zone = ContactZone::new(w, h, m.um_per_px, profile.contact_radius_um());
        let crop_span_um = (w.min(h) as f64) * m.um_per_px;
        if crop_span_um < 2.0 * profile.contact_radius_um() {
            tracing::warn!(
                "model crop spans {crop_span_um:.0} µm, less than the {:.0} µm contact zone: defects near its edge are not seen",
                2.0 * profile.contact_radius_um()
            );
        }
        let locator = Locator::new(locate_config(cfg, scale))?;
        Ok(Inspector {
            model,
            profile,
            scale,
            locator,
            min_confidence: cfg.locate.min_confidence,
            min_focus: cfg.locate.min_focus,
            pixel_threshold,
            image_threshold,
            grow_threshold,
            scratch_join_gap_um: cfg.model.scratch_join_gap_um,
            flips: cfg.model.flips,
            edge_scan: cfg.model.edge_scan,
            edge_cracks: cfg.model.edge_cracks,
            edge_chips: cfg.model.edge_chips,
            remove_rings: cfg.model.remove_rings,
            rings: rings::Rings::new(),
            core_mark: cfg.model.core_mark,
            core: core::CoreMark::new(),
            size_without_halo: cfg.model.size_without_halo,
            edge_ring: edge_ring::EdgeRing::new(),
            ferrule_grain: cfg.model.ferrule_grain,
            grain: grain::Grain::new(),
            dequantize: cfg.model.dequantize,
            dequantizer: dequant::Dequantizer::default(),
            in_view: CropRect::full(w, h),
            zone,
            crop_px: Vec::with_capacity(w * h),
            clean_frame: GrayImage::default(),
            destriped_frame: GrayImage::default(),
            destriper: destripe::Destriper::default(),
            crop_scratch: CropScratch::default(),
            map_in_crop: Vec::with_capacity(w * h),
            smooth_scratch: SmoothScratch::default(),
            defect_scratch: DefectScratch::default(),
            join_scratch: JoinScratch::default(),
            defects: Vec::new(),
            features: Vec::new(),
            drift_scratch: Vec::with_capacity(w * h),
            measure_drift: false,
            reason_spare: Vec::new(),
            grade: grade::Grade {
                verdict: Verdict::Pass,
                reasons: Vec::new(),
                per_feature: Vec::new(),
            },
            grade_scratch: grade::GradeScratch::default(),
            daemon_scratch: Inspection::default(),
        })
    }

    pub fn model(&self) -> &Model {
        &self.model
    }
    pub fn profile(&self) -> &Profile {
        &self.profile
    }
    pub fn pixel_scale(&self) -> PixelScale {
        self.scale
    }
    pub fn pixel_threshold(&self) -> f32 {
        self.pixel_threshold
    }
    pub fn image_threshold(&self) -> f32 {
        self.image_threshold
    }
    /// The hysteresis threshold defects are measured out to (equal to the pixel threshold when
    /// neither the config nor the manifest sets one).
    pub fn grow_threshold(&self) -> f32 {
        self.grow_threshold
    }

    /// Use another camera scale from now on (e.g. per image in `eval`).
    pub fn set_pixel_scale(&mut self, scale: PixelScale) -> Result<(), InspectError> {
        if !scale.is_valid() {
            return Err(InspectError::Setting {
                key: "calibration.um_per_px".into(),
                problem: format!(
                    "{} x {} µm/px is not a valid scale",
                    scale.um_per_px_x, scale.um_per_px_y
                ),
            });
        }
        if scale != self.scale {
            let mut cfg = LocateConfig::with_scale(scale);
            cfg.min_confidence = self.min_confidence;
            self.locator = Locator::new(cfg)?;
            self.scale = scale;
        }
        Ok(())
    }

    /// Use another grading profile from now on (the contact zone follows it).
    pub fn set_profile(&mut self, profile: Profile) {
        let (w, h) = self.model.input_size();
        self.zone = ContactZone::new(
            w,
            h,
            self.model.manifest().um_per_px,
            profile.contact_radius_um(),
        );
        self.profile = profile;
    }

    /// The anomaly map of the last inspected frame (crop space, `W*H`, zeroed outside the
    /// contact zone); empty when the model did not run.
    pub fn anomaly_map_in_crop(&self) -> &[f32] {
        &self.map_in_crop
    }

    /// The contact zone in crop space (`true` inside).
    pub fn contact_mask_in_crop(&self) -> &[bool] {
        &self.zone.mask_in_crop
    }

    /// The last frame's crop pixels inside the camera frame (the rest is not graded).
    pub fn in_view_in_crop(&self) -> CropRect {
        self.in_view
    }

    /// Defect labels of the last frame (crop space, 0 = none; see [`InspectedDefect::label`]).
    pub fn labels_in_crop(&self) -> &[u32] {
        &self.defect_scratch.labels_in_crop
    }

    /// The last frame's crop (0..=255, crop space).
    pub fn crop_in_crop(&self) -> &[f32] {
        &self.crop_px
    }

    /// Whether the daemon should take [`Inspector::drift_features`] of every frame.
    pub fn set_measure_drift_features(&mut self, on: bool) {
        self.measure_drift = on;
    }

    pub fn measures_drift_features(&self) -> bool {
        self.measure_drift
    }

    /// Drift features ([`crate::drift::FrameFeatures`]) of the frame just inspected: robust
    /// image statistics per zone around the located cladding, the model map's score, and the
    /// 50/90/99 % quantiles of |input − reconstruction| inside the contact zone (in the
    /// model's normalized units). `None` when the fiber was not located (nothing to measure
    /// around). Call it right after [`Inspector::inspect`] with that inspection; the model
    /// slots stay NaN (no information) when the model did not run or has no reconstruction
    /// output.
    pub fn drift_features(
        &mut self,
        frame: &GrayImage,
        insp: &Inspection,
    ) -> Option<crate::drift::FrameFeatures> {
        let center = insp.center?;
        let rx = insp.cladding_radius_px?;
        let ry = insp.radius_y_px.unwrap_or(rx);
        let mut f = crate::drift::frame_features_ellipse(frame, center, [rx, ry]);
        // the model's own score (the shipped drift reference was built on it; the edge scan's
        // share of the image score says nothing about the model's inputs drifting)
        let Some(score) = insp.map_score else {
            return Some(f);
        };
        let mut q = [f32::NAN; 3];
        let model = &self.model;
        if let Some(rec) = model
            .manifest()
            .reconstruction_output()
            .and_then(|n| model.output(n))
        {
            let input = model.input();
            self.drift_scratch.clear();
            let (w, view) = (self.zone.width.max(1), self.in_view);
            self.drift_scratch.extend(
                input
                    .iter()
                    .zip(rec)
                    .zip(&self.zone.mask_in_crop)
                    .enumerate()
                    .filter(|(i, (_, &inside))| inside && view.contains(i % w, i / w))
                    .map(|(_, ((a, b), _))| (a - b).abs())
                    .filter(|v| v.is_finite()),
            );
            let v = &mut self.drift_scratch;
            if !v.is_empty() {
                let n = v.len();
                for (slot, frac) in q.iter_mut().zip([0.5, 0.9, 0.99]) {
                    let k = ((n - 1) as f64 * frac).round() as usize;
                    let (_, x, _) = v.select_nth_unstable_by(k, f32::total_cmp);
                    *slot = *x;
                }
            }
        }
        crate::drift::set_model_features(&mut f, score, q);
        Some(f)
    }

    /// Inspect a frame: locate the fiber, then [`Inspector::inspect_located`].
    pub fn inspect(&mut self, frame: &GrayImage) -> Result<Inspection, InspectError> {
        let mut insp = Inspection::default();
        self.inspect_into(frame, &mut insp)?;
        Ok(insp)
    }

    /// As [`Inspector::inspect`], into an inspection that held an earlier result: every field
    /// is overwritten and its buffers (reasons, defects, strings) are reused, so that a
    /// steady stream of frames makes no heap allocation here.
    pub fn inspect_into(
        &mut self,
        frame: &GrayImage,
        out: &mut Inspection,
    ) -> Result<(), InspectError> {
        let t0 = Instant::now();
        self.conditioned(frame, out, |s, f, out| s.inspect_frame_into(f, out, t0))
    }

    /// Run `grade` on the frame as conditioned: stuck pixels replaced ([`hotpixel`]), then
    /// bands and stripes divided out ([`destripe`]), each into a reused buffer only when there
    /// is something to correct; records what was done in `out`.
    fn conditioned(
        &mut self,
        frame: &GrayImage,
        out: &mut Inspection,
        grade: impl FnOnce(&mut Self, &GrayImage, &mut Inspection) -> Result<(), InspectError>,
    ) -> Result<(), InspectError> {
        let (mut clean, mut striped) = (
            std::mem::take(&mut self.clean_frame),
            std::mem::take(&mut self.destriped_frame),
        );
        let stuck = hotpixel::correct_into(frame, &mut clean);
        let src = if stuck > 0 { &clean } else { frame };
        let stripes = self.destriper.correct_into(src, &mut striped);
        if stuck > 0 {
            debug!(stuck, "stuck sensor pixels replaced");
        }
        if stripes.corrected() {
            debug!(?stripes, "bands / stripes divided out");
        }
        let result = grade(self, if stripes.corrected() { &striped } else { src }, out);
        (self.clean_frame, self.destriped_frame) = (clean, striped);
        out.stuck_pixels = stuck as u32;
        let measured = frame.width() as usize >= destripe::MIN_SIDE
            && frame.height() as usize >= destripe::MIN_SIDE;
        out.banding = measured.then_some([stripes.row_amplitude, stripes.col_amplitude]);
        out.banding_corrected = stripes.corrected();
        result
    }

    /// [`Inspector::inspect_into`] on a frame whose stuck pixels are already replaced.
    fn inspect_frame_into(
        &mut self,
        frame: &GrayImage,
        out: &mut Inspection,
        t0: Instant,
    ) -> Result<(), InspectError> {
        if let Some(level) = exposure::frame_bright_level(frame) {
            if level < exposure::min_gradable_level() {
                self.map_in_crop.clear();
                self.defect_scratch.labels_in_crop.clear();
                let why = exposure::too_dark_reason("the frame's", level);
                self.unable_into(out, std::iter::once(why), None);
                out.bright_level = Some(level);
                out.timings_ms.total = ms_since(t0);
                return Ok(());
            }
        }
        let located = self.locator.locate(frame);
        let locate_ms = ms_since(t0);
        match located {
            Ok(loc) => {
                self.grade_located_into(frame, &loc, out)?;
                out.locate_rescue = self.locator.last_diagnostics().and_then(|d| d.rescued);
                out.timings_ms.locate = locate_ms;
                out.timings_ms.total += locate_ms;
                Ok(())
            }
            Err(e) => {
                debug!("locate failed: {e}");
                self.map_in_crop.clear();
                self.defect_scratch.labels_in_crop.clear();
                self.unable_into(
                    out,
                    std::iter::once(format_args!("{e}: cannot grade")),
                    None,
                );
                out.timings_ms.locate = locate_ms;
                out.timings_ms.total = locate_ms;
                Ok(())
            }
        }
    }

    /// Inspect a frame with the fiber already located (e.g. a fixed fixture, or tests).
    pub fn inspect_located(
        &mut self,
        frame: &GrayImage,
        loc: &Located,
    ) -> Result<Inspection, InspectError> {
        let mut insp = Inspection::default();
        self.inspect_located_into(frame, loc, &mut insp)?;
        Ok(insp)
    }

    /// As [`Inspector::inspect_located`], into a reused inspection (see
    /// [`Inspector::inspect_into`]).
    pub fn inspect_located_into(
        &mut self,
        frame: &GrayImage,
        loc: &Located,
        out: &mut Inspection,
    ) -> Result<(), InspectError> {
        self.conditioned(frame, out, |s, f, out| s.grade_located_into(f, loc, out))
    }

    /// [`Inspector::inspect_located_into`] on a frame whose stuck pixels are already replaced.
    fn grade_located_into(
        &mut self,
        frame: &GrayImage,
        loc: &Located,
        out: &mut Inspection,
    ) -> Result<(), InspectError> {
        let t_start = Instant::now();
        let sane = loc.center_in_frame.iter().all(|v| v.is_finite());
        if let Some(why) = grade::ungradable(sane, loc.focus, self.min_focus) {
            self.map_in_crop.clear();
            self.defect_scratch.labels_in_crop.clear();
            self.unable_into(out, std::iter::once(why), Some(loc));
            out.timings_ms.total = ms_since(t_start);
            return Ok(());
        }
        let mut t = Timings::default();

        let t0 = Instant::now();
        let (w, h) = self.model.input_size();
        let geometry = CropGeometry {
            center_in_frame: loc.center_in_frame,
            frame_scale: self.scale,
            crop_um_per_px: self.model.manifest().um_per_px,
            width: w,
            height: h,
        };
        let (fw, fh) = frame.dimensions();
        let content = border::find_content(frame);
        if content.has_border(fw, fh) {
            debug!(?content, "blanking border left out of the picture");
        }
        self.in_view = geometry.in_view(content, IN_VIEW_MARGIN_CROP_PX);
        let zone_b_um = self.profile.zone_outer_radius_um(Zone::B);
        if !self.zone.disk_in_view(zone_b_um, &self.in_view) {
            let in_view_share = self.zone.share_in_view(&self.in_view);
            self.map_in_crop.clear();
            self.defect_scratch.labels_in_crop.clear();
            let mut blanking = String::new();
            if content.has_border(fw, fh) {
                let sides = [
                    ("top", content.y0),
                    ("bottom", fh - content.y1),
                    ("left", content.x0),
                    ("right", fw - content.x1),
                ];
                for (side, px) in sides.into_iter().filter(|(_, px)| *px > 0) {
                    let sep = if blanking.is_empty() { "" } else { ", " };
                    blanking.push_str(&format!("{sep}{side} {px} px"));
                }
                blanking = format!(
                    "; the black blanking along the frame's edges ({blanking}) counts as outside it"
                );
            }
            let why = format!(
                "fiber too close to the frame edge: zone B (to {zone_b_um:.1} µm from the axis) is not all in view \
                 ({:.0} % of the contact zone is{blanking}): cannot grade; centre the connector under the probe",
                in_view_share * 100.0
            );
            self.unable_into(out, std::iter::once(why), Some(loc));
            out.contact_zone_in_view = Some(in_view_share);
            out.timings_ms.total = ms_since(t_start);
            return Ok(());
        }
        geometry.sample(frame, content, &mut self.crop_px, &mut self.crop_scratch);
        let (bright_level, gain) = match exposure::assess(&self.crop_px, &self.zone, &self.in_view)
        {
            exposure::Exposure::Usable { bright_level, gain } => (Some(bright_level), gain),
            exposure::Exposure::Unmeasured => (None, 1.0),
            exposure::Exposure::Underexposed { bright_level } => {
                self.map_in_crop.clear();
                self.defect_scratch.labels_in_crop.clear();
                let why = exposure::too_dark_reason("the contact zone's", bright_level);
                self.unable_into(out, std::iter::once(why), Some(loc));
                out.bright_level = Some(bright_level);
                out.timings_ms.total = ms_since(t_start);
                return Ok(());
            }
        };
        if gain != 1.0 {
            debug!(?bright_level, gain, "underexposed crop gained up");
            exposure::apply_gain(&mut self.crop_px, gain);
        }
        // The cladding-edge scan reads the crop while it is still in cache (before the model
        // run); its time counts in the crop stage.
        // The crop's grey-level step: the camera's, times the gain.
        let camera_step = edge_ring::grey_step(frame, loc.center_in_frame, loc.cladding_radius_px);
        let grey_step = gain * camera_step;
        let edge = if self.edge_scan {
            let radius_um = loc.cladding_radius_px * self.scale.um_per_px_x;
            let step = grey_step;
            self.edge_ring
                .scan(
                    &self.crop_px,
                    (w, h),
                    self.model.manifest().um_per_px,
                    radius_um,
                    step,
                    &self.in_view,
                )
                .map(|f| EdgeScan {
                    z: f.z,
                    score: f.score,
                    angle_deg: f.angle_rad.to_degrees(),
                    radius_um: f.radius_um,
                })
        } else {
            None
        };
        // After the edge scan, which reads the steps as they are (its own noise floor). Only a
        // camera's own steps: the station's gain on an 8-bit frame is left as `exposure` was
        // validated (smoothed, a quarter exposure's 4-level steps lose a failing scratch:
        // tests/inspect_exposure.rs).
        if self.dequantize
            && camera_step >= dequant::MIN_STEP
            && self.dequantizer.apply(&mut self.crop_px, w, h, grey_step)
        {
            debug!(
                grey_step,
                "posterized crop: steps smoothed back into shading"
            );
        }
        if self.flips <= 1 {
            self.model.set_gray_input(&self.crop_px)?;
        }
        t.crop = ms_since(t0);

        let t0 = Instant::now();
        if self.flips <= 1 {
            self.model.run()?;
        } else {
            // the mirrored crops are normalized here too: all of it is the model's time
            self.model.run_gray_flips(&self.crop_px, self.flips)?;
        }
        t.infer = ms_since(t0);

        let t0 = Instant::now();
        let model = &self.model;
        anomaly::build_map(
            model.manifest(),
            model.input(),
            |name| model.output(name),
            &mut self.map_in_crop,
            &mut self.smooth_scratch,
        )?;
        let (mut map_score, in_view_share) = self
            .zone
            .mask_and_score_in_view(&mut self.map_in_crop, &self.in_view);
        let ring_level = if self.remove_rings {
            let level = self.rings.remove(
                &mut self.map_in_crop,
                self.zone.width,
                self.zone.height,
                self.zone.um_per_px,
                self.zone.radius_um,
            );
            if level > 0.0 {
                map_score = self.map_in_crop.iter().copied().fold(0.0, f32::max);
                debug!(level, "rings about the axis taken out of the map");
            }
            Some(level)
        } else {
            None
        };
        // grey levels per unit of the model's input (the core and halo passes read the input)
        let grey = (255.0
            * model
                .manifest()
                .input
                .normalization
                .std
                .get(0)
                .unwrap_or(1.0)) as f32;
        let single_mode = self.profile.zones.a.outer_diameter_um <= core::SINGLE_MODE_ZONE_A_MAX_UM;
        let core_level = if self.core_mark && single_mode {
            let level = self.core.remove(
                &mut self.map_in_crop,
                model.input(),
                grey,
                self.zone.width,
                self.zone.height,
                self.zone.um_per_px,
                self.grow_threshold,
            );
            if level > 0.0 {
                map_score = self.map_in_crop.iter().copied().fold(0.0, f32::max);
                debug!(level, "the single-mode core's mark taken out of the map");
            }
            Some(level)
        } else {
            None
        };
        let image_score = edge.map_or(map_score, |e| map_score.max(e.score));
        anomaly::extract_defects_hysteresis(
            &self.map_in_crop,
            &self.zone,
            self.pixel_threshold,
            self.grow_threshold,
            &mut self.defect_scratch,
            &mut self.defects,
        );
        if let Some(cs) = &model.manifest().crack {
            // validated at load: the output exists with the map's H x W
            if let Some(crack) = model.output(&cs.output) {
                anomaly::classify_cracks(
                    &mut self.defects,
                    crack,
                    &self.zone,
                    cs.min_mean as f32,
                    &self.defect_scratch,
                );
            }
        }
        if self.edge_cracks {
            // where the map is blind next to the edge, the cladding-edge scan shows whether a
            // line goes on to it
            let ring = &self.edge_ring;
            let band_z = |r: f64, a: f64| ring.z_at(r, a);
            let cracks = anomaly::classify_edge_cracks(
                &mut self.defects,
                &self.zone,
                loc.cladding_radius_px * self.scale.um_per_px_x,
                &self.defect_scratch,
                edge.is_some()
                    .then_some(&band_z as &dyn Fn(f64, f64) -> Option<f32>),
            );
            if cracks > 0 {
                debug!(
                    cracks,
                    "lines from the cladding edge inwards graded as cracks"
                );
            }
        }
        if self.edge_chips {
            let chips = anomaly::classify_edge_chips(
                &mut self.defects,
                loc.cladding_radius_px * self.scale.um_per_px_x,
            );
            if chips > 0 {
                debug!(chips, "short lines along the cladding edge graded as chips");
            }
        }
        if self.size_without_halo {
            let halos = anomaly::size_spots_without_halo(
                &mut self.defects,
                &self.zone,
                model.input(),
                grey,
                &mut self.defect_scratch,
            );
            if halos > 0 {
                debug!(halos, "spots measured without the ring around them");
            }
        }
        anomaly::join_broken_scratches(
            &mut self.defects,
            &self.zone,
            self.scratch_join_gap_um,
            &mut self.defect_scratch,
            &mut self.join_scratch,
        );
        let grain = if self.ferrule_grain {
            let crop = grain::CropView {
                input: model.input(),
                map: &self.map_in_crop,
                width: self.zone.width,
                height: self.zone.height,
                um_per_px: self.zone.um_per_px,
                in_view: self.in_view,
            };
            let g = self.grain.remove(
                &mut self.defects,
                &crop,
                self.profile.zone_outer_radius_um(Zone::C),
                &self.defect_scratch,
            );
            if g.removed > 0 {
                debug!(removed = g.removed, grain = ?g.grain, "zone-D spots no more marked than the ferrule's grain");
            }
            g
        } else {
            grain::GrainResult::default()
        };
        t.anomaly = ms_since(t0);

        let t0 = Instant::now();
        self.features.clear();
        self.features
            .extend(self.defects.iter().map(Defect::feature));
        grade::grade_into(
            &self.profile,
            &self.features,
            &mut self.grade,
            &mut self.grade_scratch,
        );
        let g = &self.grade;
        out.defects.clear();
        out.defects
            .extend(self.defects.iter().enumerate().map(|(i, d)| {
                let fg = g.per_feature.get(i).copied();
                InspectedDefect {
                    kind: d.kind,
                    zone: fg.and_then(|f| f.zone),
                    size_um: d.size_um,
                    bbox: geometry.bbox_in_frame(d.bbox_in_crop, fw, fh),
                    score: d.score,
                    fails: fg.is_some_and(|f| f.fails),
                    area_um2: d.area_um2,
                    feret_um: d.feret_um,
                    length_um: d.length_um,
                    width_um: d.width_um,
                    elongation: d.elongation,
                    inner_radius_um: d.inner_radius_um,
                    outer_radius_um: d.outer_radius_um,
                    crack_score: d.crack_score,
                    crack: d.crack,
                    halo: d.halo,
                    bbox_in_crop: d.bbox_in_crop,
                    label: d.label,
                    fragments: d.fragments,
                }
            }));
        t.grade = ms_since(t0);
        t.total = ms_since(t_start);

        out.verdict = g.verdict;
        set_reasons(&mut out.reasons, &mut self.reason_spare, &g.reasons);
        out.center = Some(loc.center_in_frame);
        out.cladding_radius_px = Some(loc.cladding_radius_px);
        out.radius_y_px = Some(loc.radius_y_px);
        out.locate_confidence = Some(loc.confidence);
        out.locate_rescue = None;
        out.focus = Some(loc.focus);
        out.bright_level = bright_level;
        out.exposure_gain = Some(gain);
        out.grey_step = Some(grey_step);
        out.image_score = Some(image_score);
        out.map_score = Some(map_score);
        out.ring_level = ring_level;
        out.core_level = core_level;
        out.ferrule_grain = grain.grain.map(|g| g * grey);
        out.grain_spots = grain.removed;
        out.edge_scan = edge;
        out.contact_zone_in_view = Some(in_view_share);
        out.anomalous = Some(image_score > self.image_threshold);
        out.pixel_threshold = self.pixel_threshold;
        out.image_threshold = self.image_threshold;
        out.timings_ms = t;
        self.set_identity(out);
        out.geometry = Some(geometry);
        Ok(())
    }

    fn set_identity(&self, out: &mut Inspection) {
        set_text(&mut out.model_sha256, self.model.sha256());
        set_text(&mut out.execution_provider, &self.model.provider().primary);
        set_text(&mut out.profile, &self.profile.name);
    }

    fn unable_into<T: std::fmt::Display>(
        &mut self,
        out: &mut Inspection,
        reasons: impl IntoIterator<Item = T>,
        loc: Option<&Located>,
    ) {
        out.verdict = Verdict::Unable;
        set_reasons(&mut out.reasons, &mut self.reason_spare, reasons);
        out.defects.clear();
        out.center = loc.map(|l| l.center_in_frame);
        out.cladding_radius_px = loc.map(|l| l.cladding_radius_px);
        out.radius_y_px = loc.map(|l| l.radius_y_px);
        out.locate_confidence = loc.map(|l| l.confidence);
        out.locate_rescue = None;
        out.focus = loc.map(|l| l.focus);
        out.bright_level = None;
        out.exposure_gain = None;
        out.grey_step = None;
        out.image_score = None;
        out.map_score = None;
        out.ring_level = None;
        out.core_level = None;
        out.ferrule_grain = None;
        out.grain_spots = 0;
        out.edge_scan = None;
        out.contact_zone_in_view = None;
        out.anomalous = None;
        out.pixel_threshold = self.pixel_threshold;
        out.image_threshold = self.image_threshold;
        out.timings_ms = Timings::default();
        self.set_identity(out);
        out.geometry = None;
    }
}

fn locate_config(cfg: &StationConfig, scale: PixelScale) -> LocateConfig {
    let mut lc = LocateConfig::with_scale(scale);
    lc.min_confidence = cfg.locate.min_confidence;
    lc
}

/// Crop pixels this close to the camera frame's edge are not graded either: the model's
/// response to the repeated edge pixels beyond the frame reaches about this far in (chosen on
/// the validation sets, MODEL_CARD.md "Beyond the frame's edge").
pub const IN_VIEW_MARGIN_CROP_PX: f64 = 2.0;

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    /// The daemon runs the inspector on its own worker thread.
    #[test]
    fn inspector_can_move_to_another_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<super::Inspector>();
        assert_send::<super::Inspection>();
    }
}
