//! Fiber localization ("auto-centering"): find the cladding circle in a gray frame.
//!
//! In: an 8-bit gray frame (`image::GrayImage`) and a [`LocateConfig`] (the station's µm/px
//! calibration when known, else a pixel aspect). Out: a [`Located`] — the cladding center in
//! frame pixels (sub-pixel), its radius along x and along y in frame pixels, a confidence in
//! [0, 1] and a focus measure — or a [`LocateError`] when the cladding cannot be found with
//! enough confidence. Nothing is guessed: a caller that gets an error must refuse to grade.
//!
//! # Coordinates
//! Frame pixels with pixel centers on integer coordinates ((0, 0) is the center of the
//! top-left pixel; a disc centred in a 640x480 frame has its center at (319.5, 239.5)).
//! Pixels may be non-square: with aspect `a = um_per_px_x / um_per_px_y` the cladding is an
//! ellipse `a` times taller than wide. All the work happens in *circle space*, `(x, y / a)` in
//! x-pixel units, where the cladding is a circle; results are mapped back to frame pixels.
//!
//! # Method
//! 1. Coarse (`coarse.rs`): block-average to a ~150 px short side (aspect corrected), blur,
//!    Sobel, gradient-direction circular Hough voting for the center, then for the best few
//!    center peaks the angular support of every concentric edge. The cladding is the
//!    outermost well-supported edge (core, trench and index rings lie inside it); its
//!    polarity (does the frame get brighter or darker going out) is the sign of the step
//!    between the glass and the ferrule plateaus, so a rim line outside a dark fiber is not
//!    mistaken for the edge.
//! 2. Refine (`refine.rs`, `fit.rs`): `rays` rays from the coarse center; on each the strongest
//!    edge of that polarity near the coarse radius, to sub-pixel by a parabola through the
//!    derivative of the lightly smoothed profile; RANSAC over triples and a Tukey-weighted
//!    geometric circle fit (chipped, dusty or occluded arcs get zero weight). That circle may
//!    sit on the wrong one of two neighbouring edges on some rays; it only has to be within
//!    ~5 µm of the glass.
//! 3. The glass boundary (`refine::glass_step`): long rays from that circle, grouped in 16
//!    angular sectors. On the median profile of each sector (signed so that glass → outside
//!    rises) bright and dark lines narrower than 3 µm — edge rims, a bore halo — are removed
//!    by a morphological opening and closing, which leave steps and staircases untouched.
//!    The rest is cut into steps (derivative lobes split by a clear valley); the glass
//!    boundary is the *innermost* step carrying ≥ 30 % of the glass-to-outside change: an
//!    epoxy ring or a bright bore rim beyond it may be steeper, but going outward the glass
//!    ends at its first real step. Its position is where the profile crosses half-way between
//!    the levels before and after that step — from the bottom of a dark line just inside,
//!    when there is one (the rounded glass edge: the glass ends where the profile climbs out
//!    of it). Each ray then takes its own half-way crossing of its sector's step; a robust
//!    fit of those crossings gives the center (a crossing barely moves with the strength of
//!    a rim, which relief — light from one side — makes vary around the circumference).
//!    Where the step has a clear steepest point within 1 px of the crossing, the radius is
//!    refined by the median distance, over the rays on the circle, from their crossing to
//!    their steepest point (the finer estimate on clean edges; it does not move the center).
//!    Choosing per sector makes the choice consistent where it can be (a double edge gets
//!    one choice on all rays of a sector instead of a per-ray coin toss) and local where it
//!    must be (relief, a chip).
//! 4. Confidence = (fraction of all rays whose edge is of useful strength and lies within
//!    max(1.5 px, 1 % of r) of the circle) × fit factor (RMS of those residuals: 1 up to
//!    0.5 px, 0 at 2.5 px) × visibility factor (the larger of the step across the edge over
//!    the noise of one ray's measurement of that step — two 3 µm plateau means — and twice
//!    the edge slope per pixel over the frame's noise: 0 at 1x, 1 from 3.5x). A
//!    mis-set aspect lowers it sharply (the edge no longer fits a circle in circle space);
//!    the refusal then says which aspect the edge implies.
//! 5. Focus: on the median profile across the final circle (of the refining pass's rays when
//!    they reach ±4 µm and the blur's reach around it, else of rays cast afresh), the steepest
//!    slope within ±4 µm of the edge (smoothed by 0.25 µm, at least 0.5 px, against noise)
//!    against the steepest slope of the same profile blurred by a further 1.5 µm. For an
//!    edge blurred by σ (µm, the smoothing included) the ratio q of the two is
//!    σ / √(σ² + 1.5²), and the measure is √(1 − q²) = 1.5 / √(σ² + 1.5²): 0.95 at
//!    σ = 0.5 µm, 0.83 at 1, 0.60 at 2, 0.45 at 3 µm. A ratio of two slopes of one profile,
//!    it does not depend on the edge's contrast or the frame's brightness, nor on whether the
//!    edge is a step, a thin rim line or both (a double edge's rim swelled the intensity range
//!    the earlier, range-normalized measure divided by); being in µm, one threshold holds
//!    across cameras and magnifications. tests/locate_cases.rs checks that it falls with
//!    blur, ignores brightness, reads alike with and without rims and at two magnifications.
//! 6. Rescue of a refusal (`Locator::rescue`; only frames the passes above refused or could
//!    not fit come here, so a located frame's result never changes): many cladding edges carry
//!    a thin line — a dark bevel line, a bright rim — and on some looks the line is all there
//!    is (glass and ferrule equally bright: index-matched epoxy, some illuminators), or the
//!    coarse center was thrown off by vignetting and bright scratches. On rays from the coarse
//!    circle and from the first pass's circle, each ray's most prominent dark (and, separately,
//!    bright) line within ±15 % of the radius — the smoothed profile against the mean of the
//!    profile 2.5 µm either side — is fitted by RANSAC and the robust fit, twice more in a ±3 %
//!    window, and scored like a result (share of rays on the circle × fit × the line's depth
//!    over the noise). When the glass step around that circle is at most 1.5 times the line's
//!    depth, the edge is carried by the line and the line's circle is the result (its centre
//!    lies within the line's width of the glass boundary); where the step dominates, passes 2–5
//!    run again from the line's circle with the polarity read from its plateaus, and stand when
//!    they are sure and agree with it. Anything short of `min_confidence` keeps the first
//!    refusal. `Diagnostics::rescued` says which way a frame was rescued.
//!
//! # Accuracy limits
//! Where a thin line (a rim) sits right at a soft glass edge, or the glass barely differs from
//! the outside and the rims carry the edge, where exactly the glass ends is not in the image:
//! a bright line just inside a rising edge pulls the boundary inward by up to ~1 µm, a very
//! soft edge merged with an epoxy ring and a bright bore rim outward by up to ~0.6 µm. The
//! center (symmetric errors cancel) stays within a pixel unless relief makes such a line
//! strong on one side only. On the project's synthetic camera (3 600 locates, six seeds) the
//! center is within 1 px on 99 % of frames and the radius within 1.5 px on ~96 %
//! (tests/locate_synth_regression.rs). Where the edge is a line and the glass differs from the
//! ferrule by a few gray levels, the regular passes may accept a step beside the line and read
//! the radius 1–2.5 µm short (the tests' procedural renderer, a 25-level dark line over steps of
//! 0–5 levels); only refusals are rescued (step 6), and a check of every located frame for a
//! line-carried edge replaced too many good results on rimmed looks to be kept (session 27).

mod coarse;
mod fit;
mod refine;

use crate::geometry::{PixelScale, CLADDING_RADIUS_UM};
use image::GrayImage;
use serde::{Deserialize, Serialize};

/// Smallest frame side accepted (pixels).
pub const MIN_FRAME_SIDE_PX: u32 = 48;
/// Plateaus on either side of the edge (glass inside, ferrule outside) are measured this far
/// from it (µm): beyond rim lines and a typical epoxy ring.
const PLATEAU_UM: (f64, f64) = (5.5, 8.5);
/// The glass boundary is searched within ± this (µm) of the first circle fit: wide enough for
/// a fit that took the outer edge of an epoxy ring on some rays and the glass on others.
const BOUNDARY_ZONE_UM: f64 = 5.5;
/// Width (µm) of the plateaus beyond that zone whose levels are the glass and the outside.
const BOUNDARY_PLATEAU_UM: f64 = 2.5;
/// Bright and dark lines (edge rims, a bore rim) narrower than this (µm) are not steps.
const RIM_LINE_UM: f64 = 3.0;
/// The rescue's line detector compares a sample with the profile this far (µm) either side:
/// lines up to twice as wide stand out whole.
const LINE_HALF_UM: f64 = 2.5;
/// A refinement started from the edge line's circle stands when its center lies within this
/// fraction of the radius (at least 2 px) of the line's...
const RESCUE_AGREE_FRAC: f64 = 0.02;
/// ...and its radius within this fraction of the line's.
const RESCUE_RADIUS_FRAC: f64 = 0.06;
/// An edge whose step (glass to outside) is at most this many times its line's depth is
/// carried by the line: the rescue takes the line's circle.
const RESCUE_STEP_OVER_LINE: f64 = 1.5;
/// The focus measure looks for the edge's steepest slope within ± this (µm) of the circle.
const FOCUS_RANGE_UM: f64 = 4.0;
/// ...of the median profile smoothed by this (µm; at least half a pixel) against noise...
const FOCUS_SMOOTH_UM: f64 = 0.25;
/// ...and compares it with the steepest slope after a further Gaussian blur of this (µm).
const FOCUS_BLUR_UM: f64 = 1.5;

/// Settings of the localizer. Every field has a default; [`LocateConfig::validate`] names a
/// bad key and value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocateConfig {
    /// Calibrated µm/px in x and y. When set, the cladding radius is expected at
    /// 62.5 µm ± `radius_tolerance` and the aspect comes from it.
    pub scale: Option<PixelScale>,
    /// Pixel aspect (y-pixels per x-pixel of the same length) used when `scale` is `None`.
    pub aspect_y_over_x: f64,
    /// Results below this confidence are refused with [`LocateError::LowConfidence`].
    pub min_confidence: f64,
    /// With a scale: allowed relative deviation of the cladding radius from 62.5 µm.
    pub radius_tolerance: f64,
    /// Without a scale: smallest cladding radius as a fraction of the frame's short side.
    pub min_radius_frac: f64,
    /// Without a scale: largest cladding radius as a fraction of the frame's short side.
    pub max_radius_frac: f64,
    /// Number of rays of the sub-pixel stage.
    pub rays: usize,
}

impl Default for LocateConfig {
    fn default() -> Self {
        Self {
            scale: None,
            aspect_y_over_x: 1.0,
            min_confidence: 0.5,
            radius_tolerance: 0.15,
            min_radius_frac: 0.08,
            max_radius_frac: 0.45,
            rays: 180,
        }
    }
}

impl LocateConfig {
    /// Defaults with a calibrated scale (the aspect follows the scale).
    pub fn with_scale(scale: PixelScale) -> Self {
        Self {
            scale: Some(scale),
            aspect_y_over_x: scale.aspect_y_over_x(),
            ..Self::default()
        }
    }

    /// The aspect in use: from the scale when there is one, else `aspect_y_over_x`.
    pub fn effective_aspect(&self) -> f64 {
        self.scale
            .map(|s| s.aspect_y_over_x())
            .unwrap_or(self.aspect_y_over_x)
    }

    /// Check every field; the error names the key, the value and the accepted range.
    pub fn validate(&self) -> Result<(), LocateError> {
        let bad = |key: &'static str, value: String, problem: &str| {
            Err(LocateError::InvalidConfig {
                key,
                value,
                problem: problem.to_string(),
            })
        };
        if let Some(s) = self.scale {
            if !s.is_valid() {
                return bad(
                    "scale",
                    format!("{} x {} µm/px", s.um_per_px_x, s.um_per_px_y),
                    "both µm/px values must be finite and positive",
                );
            }
        }
        let a = self.effective_aspect();
        if !(a.is_finite() && (0.5..=2.0).contains(&a)) {
            return bad(
                "aspect_y_over_x",
                a.to_string(),
                "must be between 0.5 and 2",
            );
        }
        if !(0.0..=1.0).contains(&self.min_confidence) {
            return bad(
                "min_confidence",
                self.min_confidence.to_string(),
                "must be between 0 and 1",
            );
        }
        if !(self.radius_tolerance > 0.0 && self.radius_tolerance <= 0.5) {
            return bad(
                "radius_tolerance",
                self.radius_tolerance.to_string(),
                "must be in (0, 0.5]",
            );
        }
        if !(self.min_radius_frac > 0.0 && self.min_radius_frac < self.max_radius_frac) {
            return bad(
                "min_radius_frac",
                self.min_radius_frac.to_string(),
                "must be positive and below max_radius_frac",
            );
        }
        if self.max_radius_frac.is_nan() || self.max_radius_frac > 1.0 {
            return bad(
                "max_radius_frac",
                self.max_radius_frac.to_string(),
                "must be at most 1",
            );
        }
        if !(16..=4096).contains(&self.rays) {
            return bad("rays", self.rays.to_string(), "must be between 16 and 4096");
        }
        Ok(())
    }

    /// Allowed cladding radius (circle-space x-pixels) for a frame of this size.
    pub fn radius_range_px(&self, width: u32, height: u32) -> (f64, f64) {
        match self.scale {
            Some(s) => {
                let r = CLADDING_RADIUS_UM / s.um_per_px_x;
                (
                    r * (1.0 - self.radius_tolerance),
                    r * (1.0 + self.radius_tolerance),
                )
            }
            None => {
                let short = (width as f64).min(height as f64 / self.effective_aspect());
                (short * self.min_radius_frac, short * self.max_radius_frac)
            }
        }
    }
}

/// The cladding found in a frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Located {
    /// Cladding center in frame pixels (pixel centers on integers).
    pub center_in_frame: [f64; 2],
    /// Cladding radius along x in frame pixels.
    pub cladding_radius_px: f64,
    /// Cladding radius along y in frame pixels (`cladding_radius_px` × aspect).
    pub radius_y_px: f64,
    /// How sure the localizer is, in [0, 1] (see the module doc).
    pub confidence: f64,
    /// Sharpness of the cladding edge in [0, 1]: 1.5 / √(σ² + 1.5²) for an edge blurred by σ µm;
    /// lower is blurrier (module doc).
    pub focus: f64,
}

/// Intermediate figures of one localization (see [`Locator::last_diagnostics`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Diagnostics {
    /// Coarse-stage center (frame pixels) and radius (x-pixels).
    pub coarse_center_in_frame: [f64; 2],
    pub coarse_radius_px: f64,
    /// +1: the frame gets brighter going outward across the cladding edge; -1: darker.
    pub polarity: f64,
    /// Radius of the final circle fit (x-pixels), reported also when the result is refused.
    pub radius_px: f64,
    /// Fraction of rays supporting the circle and the RMS of their residuals (px).
    pub support: f64,
    pub rms_px: f64,
    /// Step height across the cladding edge and the frame's noise level (gray levels).
    pub contrast: f64,
    pub noise: f64,
    /// Rays that stayed inside the frame.
    pub observed_rays: usize,
    /// When the first attempt was refused and the circle came from the rescue (see
    /// [`Rescue`]), which way.
    pub rescued: Option<Rescue>,
}

/// How a frame the regular passes refused was located after all (module doc, step 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rescue {
    /// The circle of the thin line along the edge gave the start, and the regular glass-step
    /// refinement from it was sure of the edge.
    LineStart,
    /// The edge is only a line (glass and outside equally bright): the line's circle itself.
    LineEdge,
}

/// Why no cladding was reported.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LocateError {
    #[error("cladding not found: {reason}")]
    NotFound { reason: String },
    #[error(
        "cladding too uncertain: confidence {confidence:.2} is below min_confidence \
         {min_confidence:.2} ({reason})"
    )]
    LowConfidence {
        confidence: f64,
        min_confidence: f64,
        reason: String,
    },
    #[error("image {width}x{height} is too small to locate a fiber (each side must be at least {min} px)")]
    ImageTooSmall { width: u32, height: u32, min: u32 },
    #[error("locate setting `{key}` = {value} is invalid: {problem}")]
    InvalidConfig {
        key: &'static str,
        value: String,
        problem: String,
    },
}

/// A reusable localizer: holds the configuration and the scratch buffers, so that locating
/// frame after frame of the same size does not allocate.
pub struct Locator {
    cfg: LocateConfig,
    coarse: coarse::Coarse,
    rays: refine::Rays,
    /// Profiles around the final circle for the focus measure.
    focus_rays: refine::Rays,
    pts: Vec<[f64; 2]>,
    weights: Vec<f64>,
    scratch: Vec<f64>,
    inlier_rays: Vec<usize>,
    hist: Vec<u32>,
    diagnostics: Option<Diagnostics>,
}

impl Locator {
    /// A localizer for `cfg` (validated).
    pub fn new(cfg: LocateConfig) -> Result<Self, LocateError> {
        cfg.validate()?;
        Ok(Self {
            cfg,
            coarse: coarse::Coarse::default(),
            rays: refine::Rays::default(),
            focus_rays: refine::Rays::default(),
            pts: Vec::new(),
            weights: Vec::new(),
            scratch: Vec::new(),
            inlier_rays: Vec::new(),
            hist: Vec::new(),
            diagnostics: None,
        })
    }

    /// Intermediate figures of the last call that got as far as a fitted circle (also when
    /// it then refused the result), for logs and tuning.
    pub fn last_diagnostics(&self) -> Option<&Diagnostics> {
        self.diagnostics.as_ref()
    }

    /// The configuration in use.
    pub fn config(&self) -> &LocateConfig {
        &self.cfg
    }

    /// Find the cladding in `img`.
    pub fn locate(&mut self, img: &GrayImage) -> Result<Located, LocateError> {
        let (w, h) = img.dimensions();
        if w < MIN_FRAME_SIDE_PX || h < MIN_FRAME_SIDE_PX {
            return Err(LocateError::ImageTooSmall {
                width: w,
                height: h,
                min: MIN_FRAME_SIDE_PX,
            });
        }
        self.diagnostics = None;
        let aspect = self.cfg.effective_aspect();
        let (r_lo, r_hi) = self.cfg.radius_range_px(w, h);
        let hit = self
            .coarse
            .search(img, aspect, (r_lo, r_hi))
            .map_err(|reason| LocateError::NotFound { reason })?;
        tracing::trace!(
            cx = hit.cx,
            cy = hit.cy,
            r = hit.r,
            polarity = hit.polarity,
            factor = hit.factor,
            "coarse circle"
        );

        let outcome = match self.first_pass(img, aspect, &hit, (r_lo, r_hi)) {
            Ok(c1) => self
                .refine(img, aspect, c1, hit.polarity, &hit, (r_lo, r_hi))
                .map_err(|e| (e, Some(c1))),
            Err(e) => Err((e, None)),
        };
        match outcome {
            Ok(located) => Ok(located),
            Err((err, c1)) => self.rescue(img, aspect, &hit, c1, (r_lo, r_hi), err),
        }
    }

    /// Pass 1: on rays from the coarse center, the strongest edge of the coarse polarity in a
    /// wide window around the coarse radius on each; RANSAC and a robust fit of those.
    fn first_pass(
        &mut self,
        img: &GrayImage,
        aspect: f64,
        hit: &coarse::CoarseHit,
        (r_lo, r_hi): (f64, f64),
    ) -> Result<fit::Circle, LocateError> {
        let n_rays = self.cfg.rays;
        // Pass 1: wide window around the coarse circle.
        let window1 = 2.0 * hit.factor + 4.0;
        let reach1 = window1 + 3.0;
        self.rays.cast(
            img,
            aspect,
            [hit.cx, hit.cy],
            (hit.r - reach1, hit.r + reach1),
            n_rays,
        );
        self.rays.find_edges(hit.r, window1, hit.polarity);
        self.collect_points();
        let min_pts = (n_rays / 8).max(8);
        if self.pts.len() < min_pts {
            return Err(LocateError::NotFound {
                reason: format!(
                    "only {} of {} rays cross an edge near the coarse circle (center {:.0},{:.0}, \
                     radius {:.0} px)",
                    self.pts.len(),
                    n_rays,
                    hit.cx,
                    hit.cy * aspect,
                    hit.r
                ),
            });
        }
        let inlier1 = (0.5 * hit.factor).max(1.5);
        let start =
            fit::ransac(&self.pts, inlier1, 0.9 * r_lo, 1.1 * r_hi, 150).ok_or_else(|| {
                LocateError::NotFound {
                    reason: "the edge points along the rays do not form a circle".into(),
                }
            })?;
        let (c1, _) = fit::tukey_fit(
            &self.pts,
            start,
            0.3,
            30,
            &mut self.weights,
            &mut self.scratch,
        );
        if !(c1.r.is_finite() && c1.r > 0.0) {
            return Err(LocateError::NotFound {
                reason: "the circle fit diverged".into(),
            });
        }
        Ok(c1)
    }

    /// Pass 2 onward from the first circle `c1` and the edge `polarity`: the glass boundary,
    /// the final fit, support, contrast, focus and confidence; refused below
    /// `min_confidence`. `hit` only feeds the diagnostics.
    fn refine(
        &mut self,
        img: &GrayImage,
        aspect: f64,
        c1: fit::Circle,
        polarity: f64,
        hit: &coarse::CoarseHit,
        (r_lo, r_hi): (f64, f64),
    ) -> Result<Located, LocateError> {
        let n_rays = self.cfg.rays;
        let min_pts = (n_rays / 8).max(8);
        // Pass 2: long profiles around the fitted circle. In each angular sector the glass
        // boundary is chosen on the median profile — the innermost real step, not a rim
        // line, not the outer edge of an epoxy ring (see `refine::glass_step`) — then each
        // ray's edge is searched in a narrow window around its sector's choice.
        let px_per_um = c1.r / CLADDING_RADIUS_UM;
        let noise = refine::noise_sigma(img, &mut self.hist).max(0.5);
        let window2 = (0.02 * c1.r).max(3.0);
        let reach2 = ((BOUNDARY_ZONE_UM + BOUNDARY_PLATEAU_UM)
            .max(PLATEAU_UM.1.max(FOCUS_RANGE_UM))
            * px_per_um
            + 4.0)
            .max(3.0 * window2 + 6.0)
            + window2;
        let observed = self.rays.cast(
            img,
            aspect,
            [c1.cx, c1.cy],
            (c1.r - reach2, c1.r + reach2),
            n_rays,
        );
        let rule = refine::StepRule {
            zone_px: BOUNDARY_ZONE_UM * px_per_um,
            plateau_px: BOUNDARY_PLATEAU_UM * px_per_um,
            line_px: RIM_LINE_UM * px_per_um,
            min_rise: 1.0 + 3.0 * noise / (observed.max(1) as f64).sqrt(),
        };
        let global = self.rays.choose_boundaries(c1.r, &rule, polarity);
        tracing::trace!(
            cx = c1.cx,
            cy = c1.cy,
            r = c1.r,
            boundary_r = global.map(|b| self.rays.radius_at(b.pos)),
            "first-pass circle and the glass boundary on the all-rays median"
        );
        let r_star = match global {
            Some(b) => {
                self.rays.find_boundary_edges(&rule, polarity);
                self.rays.radius_at(b.pos)
            }
            None => {
                // No clear step on the median profile (a faint edge): the strongest edge
                // near the circle on each ray.
                self.rays.find_edges(c1.r, window2, polarity);
                c1.r
            }
        };
        self.collect_points();
        if self.pts.len() < min_pts {
            return Err(LocateError::NotFound {
                reason: format!(
                    "only {} of {} rays cross the cladding edge on the refining pass",
                    self.pts.len(),
                    n_rays
                ),
            });
        }
        let (c2, _sigma) = fit::tukey_fit(
            &self.pts,
            fit::Circle { r: r_star, ..c1 },
            0.2,
            30,
            &mut self.weights,
            &mut self.scratch,
        );
        if !(c2.r.is_finite() && c2.cx.is_finite() && c2.cy.is_finite()) || c2.r <= 0.0 {
            return Err(LocateError::NotFound {
                reason: "the circle fit diverged".into(),
            });
        }
        // The half-way crossings give the center (they barely move with the strength of a
        // rim, which relief makes vary around the circumference); where the step has a clear
        // steepest point the radius is refined to it: by the median over the rays on the
        // circle of how far their steepest point lies beyond their crossing.
        self.scratch.clear();
        let tol = (0.01 * c2.r).max(1.5);
        self.scratch.extend(
            self.rays
                .points
                .iter()
                .filter(|e| e.strength > 0.0 && c2.residual(e.p).abs() <= tol)
                .filter_map(|e| e.steep_dt),
        );
        let radius_shift = if self.scratch.len() >= (n_rays / 8).max(8) {
            fit::median_in_place(&mut self.scratch)
        } else {
            0.0
        };

        // Rays supporting the circle, then the median edge profile over them.
        let support = self.support(c2, n_rays);
        let contrast = self
            .rays
            .edge_contrast(
                [c2.cx, c2.cy],
                c2.r,
                &self.inlier_rays,
                (PLATEAU_UM.0 * px_per_um, PLATEAU_UM.1 * px_per_um),
                polarity,
            )
            .unwrap_or(0.0);
        let radius_px = c2.r + radius_shift;
        // Focus on the refining pass's profiles when they reach far enough around the final
        // circle (they do unless the circle moved far from where they were cast, or a frame
        // edge cut rays short); else on profiles cast around it.
        let focus_range = FOCUS_RANGE_UM * px_per_um;
        let focus_blur = (FOCUS_SMOOTH_UM * px_per_um, FOCUS_BLUR_UM * px_per_um);
        let focus = self
            .rays
            .edge_focus_on_stored([c2.cx, c2.cy], radius_px, focus_range, focus_blur)
            .or_else(|| {
                self.focus_rays.edge_focus(
                    img,
                    aspect,
                    [c2.cx, c2.cy],
                    radius_px,
                    n_rays,
                    focus_range,
                    focus_blur,
                )
            })
            .unwrap_or(0.0)
            .clamp(0.0, 1.0);
        // Edge visibility: the step across the edge against the noise of one ray's own
        // measurement of it (the difference of two plateau means, each over the plateau's
        // length in pixels), or for rim-dominated edges twice the edge slope over one pixel
        // against the frame's noise.
        let plateau_len_px = ((PLATEAU_UM.1 - PLATEAU_UM.0) * px_per_um).max(1.0);
        let step_noise = noise * (2.0 / plateau_len_px).sqrt();
        let snr = (contrast / step_noise).max(2.0 * support.median_strength / noise);
        let confidence = confidence_of(support.fraction, support.rms, snr);

        let center_in_frame = [c2.cx, c2.cy * aspect];
        let located = Located {
            center_in_frame,
            cladding_radius_px: radius_px,
            radius_y_px: radius_px * aspect,
            confidence,
            focus,
        };
        self.diagnostics = Some(Diagnostics {
            coarse_center_in_frame: [hit.cx, hit.cy * aspect],
            coarse_radius_px: hit.r,
            polarity,
            rescued: None,
            radius_px,
            support: support.fraction,
            rms_px: support.rms,
            contrast,
            noise,
            observed_rays: observed,
        });
        tracing::debug!(
            x = center_in_frame[0],
            y = center_in_frame[1],
            r = radius_px,
            confidence,
            focus,
            support = support.fraction,
            rms_px = support.rms,
            snr,
            observed,
            "located cladding"
        );
        if radius_px < 0.95 * r_lo || radius_px > 1.05 * r_hi {
            return Err(LocateError::NotFound {
                reason: format!(
                    "the best circle (radius {radius_px:.1} px) is outside the allowed range \
                     {r_lo:.0}-{r_hi:.0} px"
                ),
            });
        }
        if confidence < self.cfg.min_confidence {
            let hint = self.aspect_hint(c2, aspect);
            return Err(LocateError::LowConfidence {
                confidence,
                min_confidence: self.cfg.min_confidence,
                reason: format!(
                    "circle at ({:.1}, {:.1}) radius {:.1} px: edge seen on {:.0} % of rays, \
                     residual {:.2} px, edge contrast {:.1} x noise{hint}",
                    center_in_frame[0],
                    center_in_frame[1],
                    radius_px,
                    support.fraction * 100.0,
                    support.rms,
                    snr
                ),
            });
        }
        Ok(located)
    }

    /// A frame the regular passes refused (`err`) gets a second try from the thin line that
    /// runs along many cladding edges (a dark bevel line, a bright rim): the circle of the
    /// strongest such line near the coarse circle and the first pass's circle
    /// ([`Locator::line_circle`]). When the edge is carried by that line (the glass step is
    /// at most [`RESCUE_STEP_OVER_LINE`] times the line's depth) and the line is sure enough,
    /// the line's circle is the edge; where a step dominates, the regular refinement is run
    /// again from the line's circle with the polarity read afresh from the plateaus around
    /// it, and stands when it is sure and agrees with the line. Otherwise the first refusal
    /// is returned unchanged.
    fn rescue(
        &mut self,
        img: &GrayImage,
        aspect: f64,
        hit: &coarse::CoarseHit,
        c1: Option<fit::Circle>,
        range: (f64, f64),
        err: LocateError,
    ) -> Result<Located, LocateError> {
        if !matches!(
            err,
            LocateError::NotFound { .. } | LocateError::LowConfidence { .. }
        ) {
            return Err(err);
        }
        let refused_diagnostics = self.diagnostics;
        let mut seeds: heapless::Vec<fit::Circle, 2> = heapless::Vec::new();
        // infallible: capacity 2, at most two pushes.
        let _ = seeds.push(fit::Circle {
            cx: hit.cx,
            cy: hit.cy,
            r: hit.r,
        });
        if let Some(c) = c1 {
            let moved = (c.cx - hit.cx).hypot(c.cy - hit.cy) + (c.r - hit.r).abs();
            if moved > 2.0 {
                let _ = seeds.push(c);
            }
        }
        let Some(line) = self.line_circle(img, aspect, &seeds, range) else {
            return Err(err);
        };
        let (step, observed) = self.plateau_step(img, aspect, line.circle);
        tracing::trace!(
            cx = line.circle.cx,
            cy = line.circle.cy,
            r = line.circle.r,
            line_polarity = line.polarity,
            confidence = line.confidence,
            depth = line.depth,
            step,
            "rescue: circle of the edge line"
        );
        if step.abs() <= RESCUE_STEP_OVER_LINE * line.depth {
            if let Some(l) = self.line_located(img, aspect, hit, &line, step, observed, range) {
                return Ok(l);
            }
        } else {
            let polarity = if step < 0.0 { -1.0 } else { 1.0 };
            let c = line.circle;
            if let Ok(located) = self.refine(img, aspect, c, polarity, hit, range) {
                let [fx, fy] = located.center_in_frame;
                let off = (fx - c.cx).hypot(fy / aspect - c.cy);
                let dr = (located.cladding_radius_px - c.r).abs();
                if off <= (RESCUE_AGREE_FRAC * c.r).max(2.0) && dr <= RESCUE_RADIUS_FRAC * c.r {
                    if let Some(d) = self.diagnostics.as_mut() {
                        d.rescued = Some(Rescue::LineStart);
                    }
                    tracing::debug!(
                        x = fx,
                        y = fy,
                        r = located.cladding_radius_px,
                        confidence = located.confidence,
                        "located from the edge line's circle after a refusal"
                    );
                    return Ok(located);
                }
            }
        }
        self.diagnostics = refused_diagnostics;
        Err(err)
    }

    /// The glass-to-outside step around circle `c` (outer plateau minus inner, over all
    /// rays' median profile; 0 when too few rays stay in the frame) and how many rays stayed
    /// inside the frame.
    fn plateau_step(&mut self, img: &GrayImage, aspect: f64, c: fit::Circle) -> (f64, usize) {
        let px_per_um = c.r / CLADDING_RADIUS_UM;
        let plateau = (PLATEAU_UM.0 * px_per_um, PLATEAU_UM.1 * px_per_um);
        let observed = self.rays.cast(
            img,
            aspect,
            [c.cx, c.cy],
            (c.r - plateau.1 - 3.0, c.r + plateau.1 + 3.0),
            self.cfg.rays,
        );
        self.inlier_rays.clear();
        self.inlier_rays.extend(0..observed);
        let step = self
            .rays
            .edge_contrast([c.cx, c.cy], c.r, &self.inlier_rays, plateau, 1.0)
            .unwrap_or(0.0);
        (step, observed)
    }

    /// The edge line's circle as the result (confidence, focus and diagnostics of its own),
    /// or `None` when it is not sure enough or its radius is out of range.
    #[allow(clippy::too_many_arguments)] // one measurement's parts
    fn line_located(
        &mut self,
        img: &GrayImage,
        aspect: f64,
        hit: &coarse::CoarseHit,
        line: &LineCircle,
        step: f64,
        observed: usize,
        (r_lo, r_hi): (f64, f64),
    ) -> Option<Located> {
        let c = line.circle;
        if line.confidence < self.cfg.min_confidence || c.r < 0.95 * r_lo || c.r > 1.05 * r_hi {
            return None;
        }
        let px_per_um = c.r / CLADDING_RADIUS_UM;
        let focus = self
            .focus_rays
            .edge_focus(
                img,
                aspect,
                [c.cx, c.cy],
                c.r,
                self.cfg.rays,
                FOCUS_RANGE_UM * px_per_um,
                (FOCUS_SMOOTH_UM * px_per_um, FOCUS_BLUR_UM * px_per_um),
            )
            .unwrap_or(0.0)
            .clamp(0.0, 1.0);
        let located = Located {
            center_in_frame: [c.cx, c.cy * aspect],
            cladding_radius_px: c.r,
            radius_y_px: c.r * aspect,
            confidence: line.confidence,
            focus,
        };
        self.diagnostics = Some(Diagnostics {
            coarse_center_in_frame: [hit.cx, hit.cy * aspect],
            coarse_radius_px: hit.r,
            polarity: if step < 0.0 { -1.0 } else { 1.0 },
            radius_px: c.r,
            support: line.support,
            rms_px: line.rms,
            contrast: step.abs(),
            noise: line.noise,
            observed_rays: observed,
            rescued: Some(Rescue::LineEdge),
        });
        tracing::debug!(
            x = located.center_in_frame[0],
            y = located.center_in_frame[1],
            r = c.r,
            confidence = line.confidence,
            focus,
            depth = line.depth,
            step,
            "located on the edge line (the edge is carried by a line, not a step)"
        );
        Some(located)
    }

    /// The circle of the strongest thin line (dark or bright) near each of `seeds`: on rays
    /// from the seed, each ray's strongest line within ±15 % of its radius
    /// ([`refine::Rays::find_lines`]), RANSAC and a robust fit, then twice more from the new
    /// circle in a ±3 % window. Scored like the regular result (share of rays on the circle
    /// × fit factor × visibility: the line's median depth over the frame's noise); the best
    /// of both polarities and all seeds, or `None` when no line forms a circle.
    fn line_circle(
        &mut self,
        img: &GrayImage,
        aspect: f64,
        seeds: &[fit::Circle],
        (r_lo, r_hi): (f64, f64),
    ) -> Option<LineCircle> {
        let n_rays = self.cfg.rays;
        let noise = refine::noise_sigma(img, &mut self.hist).max(0.5);
        let mut best: Option<LineCircle> = None;
        for seed in seeds {
            for polarity in [-1.0, 1.0] {
                let Some(c) = self.line_fit(img, aspect, *seed, polarity, (r_lo, r_hi)) else {
                    continue;
                };
                let support = self.support(c, n_rays);
                let snr = support.median_strength / noise;
                let confidence = confidence_of(support.fraction, support.rms, snr);
                if best.is_none_or(|b| confidence > b.confidence) {
                    best = Some(LineCircle {
                        circle: c,
                        polarity,
                        confidence,
                        support: support.fraction,
                        rms: support.rms,
                        depth: support.median_strength,
                        noise,
                    });
                }
            }
        }
        best
    }

    /// The circle of `polarity`'s most prominent line on rays from `seed` (see
    /// [`Locator::line_circle`]): ±15 % of the radius, then twice more at ±3 %; `None` when too
    /// few rays see a line or the lines form no circle.
    fn line_fit(
        &mut self,
        img: &GrayImage,
        aspect: f64,
        seed: fit::Circle,
        polarity: f64,
        (r_lo, r_hi): (f64, f64),
    ) -> Option<fit::Circle> {
        let n_rays = self.cfg.rays;
        let min_pts = (n_rays / 8).max(8);
        let mut c = seed;
        let mut window = (0.15 * c.r).max(10.0);
        for _ in 0..3 {
            let half = (LINE_HALF_UM * c.r / CLADDING_RADIUS_UM).max(1.0);
            let reach = window + half + 4.0;
            self.rays.cast(
                img,
                aspect,
                [c.cx, c.cy],
                (c.r - reach, c.r + reach),
                n_rays,
            );
            self.rays.find_lines(c.r, window, polarity, half);
            self.collect_points();
            if self.pts.len() < min_pts {
                return None;
            }
            let start = fit::ransac(&self.pts, 1.5, 0.9 * r_lo, 1.1 * r_hi, 150)?;
            let (f, _) = fit::tukey_fit(
                &self.pts,
                start,
                0.3,
                30,
                &mut self.weights,
                &mut self.scratch,
            );
            if !(f.r.is_finite() && f.cx.is_finite() && f.cy.is_finite() && f.r > 0.0) {
                return None;
            }
            c = f;
            window = (0.03 * c.r).max(3.0);
        }
        Some(c)
    }

    /// When the refused edge fits an ellipse much better than a circle, a note naming the
    /// pixel aspect it implies (a frame grabber with non-square pixels and a station without
    /// that calibration is the usual cause); else an empty string.
    fn aspect_hint(&mut self, c: fit::Circle, aspect: f64) -> String {
        let tol = (0.01 * c.r).max(1.5);
        let circle_within = self
            .pts
            .iter()
            .filter(|p| c.residual(**p).abs() <= tol)
            .count() as f64
            / self.pts.len().max(1) as f64;
        match fit::axis_ellipse(&self.pts, [c.cx, c.cy], tol, &mut self.scratch) {
            Some((rx, ry, within))
                if (ry / rx - 1.0).abs() > 0.015 && within >= circle_within + 0.25 =>
            {
                format!(
                    "; the edge fits an ellipse {:.3} times as tall as wide far better: the \
                     pixel aspect (y/x) looks like {:.3}, not the configured {:.3} — set the \
                     aspect or the µm/px calibration in y",
                    ry / rx,
                    aspect * ry / rx,
                    aspect
                )
            }
            _ => String::new(),
        }
    }

    /// Edge points of the expected polarity from the last ray cast.
    fn collect_points(&mut self) {
        self.pts.clear();
        self.pts.extend(
            self.rays
                .points
                .iter()
                .filter(|e| e.strength > 0.0)
                .map(|e| e.p),
        );
    }

    /// Rays whose edge is of useful strength and lies on circle `c` (within max(1.5 px,
    /// 1 % of r)); fills `inlier_rays`.
    fn support(&mut self, c: fit::Circle, n_rays: usize) -> Support {
        let pts = &self.rays.points;
        self.scratch.clear();
        self.scratch
            .extend(pts.iter().filter(|e| e.strength > 0.0).map(|e| e.strength));
        let med_strength = fit::median_in_place(&mut self.scratch);
        let min_strength = (0.25 * med_strength).max(1.0);
        let tol = (0.01 * c.r).max(1.5);
        let mut ss = 0.0;
        self.inlier_rays.clear();
        for e in pts {
            let res = c.residual(e.p);
            if e.strength >= min_strength && res.abs() <= tol {
                ss += res * res;
                self.inlier_rays.push(e.ray);
            }
        }
        let n_in = self.inlier_rays.len();
        Support {
            median_strength: med_strength,
            fraction: n_in as f64 / n_rays as f64,
            rms: if n_in > 0 {
                (ss / n_in as f64).sqrt()
            } else {
                f64::INFINITY
            },
        }
    }
}

/// Confidence of a circle (module doc, step 4): the share of rays on it × the fit factor (1
/// up to 0.5 px RMS, 0 at 2.5 px) × the visibility factor (0 at 1x noise, 1 from 3.5x).
fn confidence_of(support: f64, rms_px: f64, snr: f64) -> f64 {
    let q_fit = (1.25 - 0.5 * rms_px).clamp(0.0, 1.0);
    let q_snr = ((snr - 1.0) / 2.5).clamp(0.0, 1.0);
    (support * q_fit * q_snr).clamp(0.0, 1.0)
}

/// The circle of a thin line along the edge ([`Locator::line_circle`]).
#[derive(Debug, Clone, Copy)]
struct LineCircle {
    circle: fit::Circle,
    /// +1 bright line, −1 dark line.
    polarity: f64,
    confidence: f64,
    support: f64,
    rms: f64,
    /// Median depth of the line on the rays (gray levels) and the frame's noise.
    depth: f64,
    noise: f64,
}

struct Support {
    median_strength: f64,
    fraction: f64,
    rms: f64,
}

/// Locate the cladding with a one-off [`Locator`] (allocates; use a `Locator` per stream).
pub fn locate(img: &GrayImage, cfg: &LocateConfig) -> Result<Located, LocateError> {
    Locator::new(cfg.clone())?.locate(img)
}
