//! Scene description ([`SceneSpec`]) and its random sampler.
//!
//! In: a [`SynthConfig`], a seed and what the frame should contain ([`Content`]). Out: a fully
//! specified scene — fiber type and placement in µm, look, ferrule texture, illumination,
//! camera, and every defect's shape in fiber micrometres — that [`super::render`] turns into
//! pixels deterministically. All geometry is in *fiber* µm (origin on the axis, x right, y
//! down), so non-square pixels need no special casing here.

use super::raster::{feret_um, mix64};
use super::truth::{DefectKind, FiberProfile, Look};
use super::SynthConfig;
use crate::geometry::{PixelScale, CLADDING_RADIUS_UM};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::f64::consts::{PI, TAU};

/// Radius (µm) of the contact zone (zone D outer edge): nothing beyond it is graded.
pub const CONTACT_RADIUS_UM: f64 = 125.0;
/// Ratio of the multimode trench / index ring radius to the cladding radius.
pub const TRENCH_RATIO: f64 = 0.58;

/// What a frame must contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// No graded defect (features beyond the contact zone are allowed: they are normal).
    Good,
    /// At least one visible graded defect of this kind (others may be present too).
    Defect(DefectKind),
}

/// A complete, deterministic description of one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct SceneSpec {
    pub width: u32,
    pub height: u32,
    pub scale: PixelScale,
    /// Fiber axis in frame pixels (pixel centres at integer coordinates).
    pub center_in_frame: [f64; 2],
    pub fiber: FiberProfile,
    pub core_diameter_um: f64,
    pub look: LookSpec,
    pub ferrule: FerruleSpec,
    pub illumination: IlluminationSpec,
    pub camera: CameraSpec,
    pub defects: Vec<DefectSpec>,
    /// Seed of the per-pixel texture and sensor noise.
    pub noise_seed: u64,
}

/// Intensities are gray levels before illumination gain (≈ what a flat-lit camera would show).
#[derive(Debug, Clone, PartialEq)]
pub struct LookSpec {
    pub look: Look,
    pub look_mix: f64,
    pub ferrule_level: f32,
    pub cladding_level: f32,
    /// Level change of the cladding towards its edge (quadratic in radius).
    pub cladding_edge_shade: f32,
    /// Core level minus cladding level.
    pub core_delta: f32,
    pub core_softness_um: f32,
    /// Thin ring at the core boundary (signed amplitude).
    pub core_ring: f32,
    /// Central glow (bright-core look), amplitude and radius (µm).
    pub core_glow: f32,
    pub core_glow_radius_um: f32,
    /// Multimode trench ring at [`TRENCH_RATIO`] of the cladding radius (0 = none): the
    /// signed level change of a thin ring, or of the whole band when `trench_band_outer > 0`.
    pub trench_ring: f32,
    /// 0 for a thin ring; else the ring is a broad band from the core edge out to this
    /// fraction of the cladding radius (the graded-index / trench region of a real 50 µm
    /// multimode fiber, seen as a dark or bright annulus around the core).
    pub trench_band_outer: f32,
    /// Adhesive ring between cladding and ferrule bore.
    pub epoxy_width_um: f32,
    /// Epoxy level as a mix of cladding (0) and ferrule (1) levels.
    pub epoxy_mix: f32,
    pub edge_softness_um: f32,
    /// Thin lines just inside the cladding edge and just outside the bore edge.
    pub inner_rim: f32,
    pub outer_rim: f32,
    pub rim_width_um: f32,
    /// Directional (relief) modulation of the rims: amplitude 0..1 and angle.
    pub relief: f32,
    pub relief_angle_rad: f64,
    pub glass_grain: f32,
}

/// Ferrule texture and the normal marks beyond the contact zone.
#[derive(Debug, Clone, PartialEq)]
pub struct FerruleSpec {
    /// Fine per-pixel grain amplitude (gray levels).
    pub grain: f32,
    /// Smooth mottle amplitude and feature size.
    pub mottle: f32,
    pub mottle_scale_um: f32,
    /// Medium-scale texture amplitude and size.
    pub texture: f32,
    pub texture_scale_um: f32,
    /// Scratches and polishing marks, drawn only beyond the contact zone (normal wear).
    pub strokes: Vec<Stroke>,
    /// How many of `strokes` are visible scratches (the rest are faint polishing marks).
    pub scratch_count: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IlluminationSpec {
    pub gain: f32,
    /// Linear gain slope across the frame (per half-width / half-height).
    pub gradient: [f32; 2],
    /// Vignetting depth at the frame corner (0..1).
    pub vignette: f32,
    pub vignette_center_in_frame: [f64; 2],
    /// Soft hotspot amplitude (relative), centre and radius in px.
    pub hotspot: f32,
    pub hotspot_center_in_frame: [f64; 2],
    pub hotspot_sigma_px: f32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CameraSpec {
    pub blur_sigma_px: f32,
    /// Read noise standard deviation (gray levels).
    pub read_noise: f32,
    /// Shot noise: variance = `shot_noise` × level.
    pub shot_noise: f32,
    pub jpeg_quality: Option<u8>,
    /// Black frame-grabber border: left, right, top (px).
    pub border_px: [u32; 3],
    pub black_level: f32,
}

/// A path in fiber µm.
#[derive(Debug, Clone, PartialEq)]
pub enum StrokePath {
    Line {
        a_um: [f64; 2],
        b_um: [f64; 2],
    },
    Arc {
        center_um: [f64; 2],
        radius_um: f64,
        start_rad: f64,
        sweep_rad: f64,
    },
    Polyline {
        points_um: Vec<[f64; 2]>,
    },
}

impl StrokePath {
    pub fn length_um(&self) -> f64 {
        match self {
            Self::Line { a_um, b_um } => (b_um[0] - a_um[0]).hypot(b_um[1] - a_um[1]),
            Self::Arc {
                radius_um,
                sweep_rad,
                ..
            } => radius_um * sweep_rad,
            Self::Polyline { points_um } => points_um
                .windows(2)
                .map(|w| (w[1][0] - w[0][0]).hypot(w[1][1] - w[0][1]))
                .sum(),
        }
    }

    /// The point at arc length `s_um` from the start.
    pub fn point_at(&self, s_um: f64) -> [f64; 2] {
        match self {
            Self::Line { a_um, b_um } => {
                let len = self.length_um().max(1e-9);
                let t = (s_um / len).clamp(0.0, 1.0);
                [
                    a_um[0] + t * (b_um[0] - a_um[0]),
                    a_um[1] + t * (b_um[1] - a_um[1]),
                ]
            }
            Self::Arc {
                center_um,
                radius_um,
                start_rad,
                sweep_rad,
            } => {
                let a = start_rad + (s_um / radius_um).clamp(0.0, *sweep_rad);
                [
                    center_um[0] + radius_um * a.cos(),
                    center_um[1] + radius_um * a.sin(),
                ]
            }
            Self::Polyline { points_um } => {
                let mut left = s_um.max(0.0);
                for w in points_um.windows(2) {
                    let l = (w[1][0] - w[0][0]).hypot(w[1][1] - w[0][1]);
                    if left <= l && l > 0.0 {
                        let t = left / l;
                        return [
                            w[0][0] + t * (w[1][0] - w[0][0]),
                            w[0][1] + t * (w[1][1] - w[0][1]),
                        ];
                    }
                    left -= l;
                }
                points_um.last().copied().unwrap_or([0.0, 0.0])
            }
        }
    }

    /// Distance (µm) from `p` to the path and the arc length of the closest point.
    pub fn closest(&self, p: [f64; 2]) -> (f64, f64) {
        match self {
            Self::Line { a_um, b_um } => seg_closest(p, *a_um, *b_um),
            Self::Arc {
                center_um,
                radius_um,
                start_rad,
                sweep_rad,
            } => {
                let dx = p[0] - center_um[0];
                let dy = p[1] - center_um[1];
                let rel = (dy.atan2(dx) - start_rad).rem_euclid(TAU);
                if rel <= *sweep_rad {
                    ((dx.hypot(dy) - radius_um).abs(), rel * radius_um)
                } else {
                    let a = self.point_at(0.0);
                    let len = self.length_um();
                    let b = self.point_at(len);
                    let da = (p[0] - a[0]).hypot(p[1] - a[1]);
                    let db = (p[0] - b[0]).hypot(p[1] - b[1]);
                    if da <= db {
                        (da, 0.0)
                    } else {
                        (db, len)
                    }
                }
            }
            Self::Polyline { points_um } => {
                let mut best = (f64::INFINITY, 0.0);
                let mut acc = 0.0;
                for w in points_um.windows(2) {
                    let (d, s) = seg_closest(p, w[0], w[1]);
                    if d < best.0 {
                        best = (d, acc + s);
                    }
                    acc += (w[1][0] - w[0][0]).hypot(w[1][1] - w[0][1]);
                }
                best
            }
        }
    }

    /// Points sampled along the path every `step_um` (ends included).
    pub fn samples(&self, step_um: f64) -> Vec<[f64; 2]> {
        let len = self.length_um();
        let n = ((len / step_um.max(1e-3)).ceil() as usize).clamp(1, 200_000);
        (0..=n)
            .map(|i| self.point_at(len * i as f64 / n as f64))
            .collect()
    }
}

fn seg_closest(p: [f64; 2], a: [f64; 2], b: [f64; 2]) -> (f64, f64) {
    let (ex, ey) = (b[0] - a[0], b[1] - a[1]);
    let l2 = ex * ex + ey * ey;
    let t = if l2 > 0.0 {
        (((p[0] - a[0]) * ex + (p[1] - a[1]) * ey) / l2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (qx, qy) = (a[0] + t * ex, a[1] + t * ey);
    ((p[0] - qx).hypot(p[1] - qy), t * l2.sqrt())
}

/// A thin line feature (scratch, crack branch, ferrule mark).
#[derive(Debug, Clone, PartialEq)]
pub struct Stroke {
    pub path: StrokePath,
    pub width_um: f64,
    /// Width at the end of the path (tapering cracks); equal to `width_um` when uniform.
    pub end_width_um: f64,
    /// Relative change of the local level (−0.3 = 30 % darker).
    pub contrast: f64,
    /// Broken line: fraction of the length that is missing (0 = continuous), in pieces of
    /// about `gap_scale_um`.
    pub gaps: f64,
    pub gap_scale_um: f64,
    /// Speckle depth 0..1 (random fading along the line).
    pub speckle: f64,
    pub seed: u64,
}

/// How a defect changes the level under it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Tone {
    /// Multiply the local level by `1 + c`.
    Relative(f32),
    /// Replace the local level by this absolute gray level (opaque particle).
    Absolute(f32),
}

/// A bright or dark ring just outside a blob (particle halo, oil meniscus).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Halo {
    pub offset_um: f64,
    pub width_um: f64,
    pub contrast: f32,
}

/// A compact defect: irregular, possibly elongated disc.
#[derive(Debug, Clone, PartialEq)]
pub struct Blob {
    pub center_um: [f64; 2],
    pub radius_um: f64,
    /// Boundary harmonics `(amplitude, phase)` for k = 2, 3, …
    pub harmonics: Vec<(f64, f64)>,
    /// Elongation ≥ 1 (length / width) along `angle_rad`.
    pub stretch: f64,
    pub angle_rad: f64,
    pub softness_um: f64,
    pub tone: Tone,
    pub halo: Option<Halo>,
}

impl Blob {
    /// Boundary radius factor at local angle `theta` (before stretch).
    pub fn boundary_factor(&self, theta: f64) -> f64 {
        let mut f = 1.0;
        for (i, (amp, ph)) in self.harmonics.iter().enumerate() {
            f += amp * ((i as f64 + 2.0) * theta + ph).cos();
        }
        f.max(0.2)
    }

    /// Boundary points in fiber µm.
    pub fn boundary_um(&self, n: usize) -> Vec<[f64; 2]> {
        let (s, c) = self.angle_rad.sin_cos();
        (0..n)
            .map(|i| {
                let th = TAU * i as f64 / n as f64;
                let rho = self.radius_um * self.boundary_factor(th);
                let a = rho * th.cos();
                let b = rho * th.sin() / self.stretch;
                [
                    self.center_um[0] + a * c - b * s,
                    self.center_um[1] + a * s + b * c,
                ]
            })
            .collect()
    }

    /// Largest distance (µm) of the drawn footprint (halo included) from the centre.
    pub fn extent_um(&self) -> f64 {
        let amp: f64 = self.harmonics.iter().map(|h| h.0.abs()).sum();
        let halo = self.halo.map_or(0.0, |h| h.offset_um + 2.5 * h.width_um);
        self.radius_um * (1.0 + amp) + 2.5 * self.softness_um + halo + 1.0
    }
}

/// A notch at the cladding edge.
#[derive(Debug, Clone, PartialEq)]
pub struct ChipShape {
    /// Direction from the axis to the chip centre.
    pub angle_rad: f64,
    /// Half of the angular width at the edge.
    pub half_angle_rad: f64,
    /// How far it bites into the cladding (µm).
    pub depth_um: f64,
    /// Exponent of the depth profile (small = boxy, large = pointed).
    pub sharpness: f64,
    /// Jaggedness harmonics of the inner boundary.
    pub harmonics: Vec<(f64, f64)>,
    pub tone: Tone,
}

impl ChipShape {
    /// Depth (µm) at angular offset `phi` from the chip centre (0 outside).
    pub fn depth_at(&self, phi: f64) -> f64 {
        let u = phi / self.half_angle_rad;
        if u.abs() >= 1.0 {
            return 0.0;
        }
        let mut jag = 1.0;
        for (i, (amp, ph)) in self.harmonics.iter().enumerate() {
            jag += amp * ((i as f64 + 2.0) * PI * u + ph).sin();
        }
        self.depth_um * (1.0 - u * u).powf(self.sharpness) * jag.max(0.3)
    }

    /// Outline points in fiber µm (inner boundary plus the cladding arc).
    pub fn outline_um(&self, n: usize) -> Vec<[f64; 2]> {
        let r = CLADDING_RADIUS_UM;
        let mut pts = Vec::with_capacity(2 * n + 2);
        for i in 0..=n {
            let phi = -self.half_angle_rad + 2.0 * self.half_angle_rad * i as f64 / n as f64;
            let a = self.angle_rad + phi;
            let ri = r - self.depth_at(phi);
            pts.push([ri * a.cos(), ri * a.sin()]);
            pts.push([r * a.cos(), r * a.sin()]);
        }
        pts
    }
}

/// The drawn form of a defect.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// One or more strokes forming one defect (a scratch; a crack and its branches).
    Strokes(Vec<Stroke>),
    Blob(Blob),
    Chip(ChipShape),
}

/// One defect of the scene.
#[derive(Debug, Clone, PartialEq)]
pub struct DefectSpec {
    pub kind: DefectKind,
    /// Finer shape name, recorded in the labels.
    pub variant: String,
    pub shape: Shape,
    /// IEC size (scratch: width; otherwise max Feret diameter of the physical footprint).
    pub size_um: f64,
    pub subtle: bool,
}

impl DefectSpec {
    fn new(kind: DefectKind, variant: &str, shape: Shape, subtle: bool) -> Self {
        let size_um = match &shape {
            Shape::Strokes(strokes) if kind.is_scratch() => {
                strokes.iter().map(|s| s.width_um).fold(0.0, f64::max)
            }
            Shape::Strokes(strokes) => {
                let mut pts = Vec::new();
                let mut w: f64 = 0.0;
                for s in strokes {
                    pts.extend(s.path.samples(1.0));
                    w = w.max(s.width_um);
                }
                feret_um(&pts) + w
            }
            Shape::Blob(b) => feret_um(&b.boundary_um(72)),
            Shape::Chip(c) => feret_um(&c.outline_um(48)),
        };
        Self {
            kind,
            variant: variant.to_string(),
            shape,
            size_um,
            subtle,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Sampling
// ---------------------------------------------------------------------------------------

/// Sample a scene for `config` from `seed`.
pub fn sample_scene(config: &SynthConfig, seed: u64, content: Content) -> SceneSpec {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let rng = &mut rng;
    let (w, h) = (config.width, config.height);

    let fiber = match config.fiber {
        Some(f) => f,
        None => {
            let x: f64 = rng.gen();
            if x < 0.35 {
                FiberProfile::SmUpc
            } else if x < 0.55 {
                FiberProfile::SmApc
            } else {
                FiberProfile::Mm
            }
        }
    };
    let core_diameter_um = if fiber.is_single_mode() {
        rng.gen_range(8.2..9.6)
    } else if rng.gen_bool(0.6) {
        50.0
    } else {
        62.5
    };
    let um_per_px_x = config.um_per_px.unwrap_or_else(|| rng.gen_range(0.4..0.7));
    let aspect = config.aspect_y_over_x.unwrap_or_else(|| {
        let x: f64 = rng.gen();
        if x < 0.72 {
            1.0
        } else if x < 0.86 {
            1.09
        } else {
            rng.gen_range(1.0..1.09)
        }
    });
    let scale = PixelScale {
        um_per_px_x,
        um_per_px_y: um_per_px_x / aspect,
    };
    let center_in_frame = [
        (w as f64 - 1.0) / 2.0 + rng.gen_range(-0.15..0.15) * w as f64,
        (h as f64 - 1.0) / 2.0 + rng.gen_range(-0.15..0.15) * h as f64,
    ];

    let look = sample_look(
        rng,
        fiber,
        core_diameter_um,
        mix64(seed ^ TRENCH_BAND_STREAM),
    );
    let camera = sample_camera(rng, config, w, h);
    let illumination = sample_illumination(rng, &look, w, h, center_in_frame);
    let ferrule = sample_ferrule(rng, &scale, center_in_frame, w, h);

    let mut scene = SceneSpec {
        width: w,
        height: h,
        scale,
        center_in_frame,
        fiber,
        core_diameter_um,
        look,
        ferrule,
        illumination,
        camera,
        defects: Vec::new(),
        noise_seed: rng.gen(),
    };

    if let Content::Defect(kind) = content {
        let zone = pick_zone(rng, kind);
        let mut d = sample_defects(rng, &scene, kind, zone, true);
        scene.defects.append(&mut d);
        if rng.gen_bool(0.25) {
            let others: Vec<DefectKind> =
                DefectKind::ALL.into_iter().filter(|k| *k != kind).collect();
            if let Some(&other) = others.choose(rng) {
                let zone = pick_zone(rng, other);
                let mut d = sample_defects(rng, &scene, other, zone, false);
                scene.defects.append(&mut d);
            }
        }
    }
    if rng.gen_bool(0.45) {
        let mut d = sample_outside(rng, &scene);
        scene.defects.append(&mut d);
    }
    scene
}

/// Zone index to aim a defect at: 0..=3 = A..D. Weights per kind keep PASS and FAIL frames
/// of every kind in similar numbers.
fn pick_zone(rng: &mut ChaCha8Rng, kind: DefectKind) -> usize {
    let w: [f64; 4] = match kind {
        DefectKind::Scratch => [0.32, 0.4, 0.1, 0.18],
        DefectKind::Pit => [0.25, 0.45, 0.12, 0.18],
        DefectKind::Contamination => [0.14, 0.34, 0.22, 0.3],
        DefectKind::Chip | DefectKind::Crack => [0.2, 0.38, 0.17, 0.25],
    };
    let mut x: f64 = rng.gen();
    for (i, wi) in w.iter().enumerate() {
        if x < *wi {
            return i;
        }
        x -= wi;
    }
    3
}

/// Radii (µm) of zone `zone` (0..=3) for sampling positions.
fn zone_band(fiber: FiberProfile, zone: usize) -> (f64, f64) {
    let a = if fiber.is_single_mode() { 12.5 } else { 32.5 };
    match zone {
        0 => (0.0, a),
        1 => (a, 57.5),
        2 => (57.5, 67.5),
        _ => (67.5, CONTACT_RADIUS_UM),
    }
}

/// Log-uniform in `[lo, hi]`, with extra mass near the IEC class boundaries.
fn sample_size(rng: &mut ChaCha8Rng, lo: f64, hi: f64, boundaries: &[f64]) -> f64 {
    let inside: Vec<f64> = boundaries
        .iter()
        .copied()
        .filter(|b| *b > lo && *b < hi)
        .collect();
    if !inside.is_empty() && rng.gen_bool(0.45) {
        if let Some(&b) = inside.choose(rng) {
            return (b * rng.gen_range(0.8..1.25)).clamp(lo, hi);
        }
    }
    (lo.ln() + rng.gen::<f64>() * (hi.ln() - lo.ln())).exp()
}

fn lerp(a: f64, b: f64, t: f64) -> f64 {
    a + (b - a) * t
}

/// Seed salt of the trench band's own random stream: drawn apart from the scene's stream, so
/// adding the band left every other feature of every frame as it was.
const TRENCH_BAND_STREAM: u64 = 0x7472_656e_6368_6264;

fn sample_look(
    rng: &mut ChaCha8Rng,
    fiber: FiberProfile,
    core_um: f64,
    band_seed: u64,
) -> LookSpec {
    let x: f64 = rng.gen();
    let t = if x < 0.45 {
        rng.gen_range(0.0..0.12)
    } else if x < 0.8 {
        rng.gen_range(0.85..1.0)
    } else {
        rng.gen_range(0.12..0.85)
    };
    let look = if t < 0.2 {
        Look::DarkFiber
    } else if t > 0.8 {
        Look::BrightCore
    } else {
        Look::Intermediate
    };
    let ferrule = lerp(rng.gen_range(180.0..228.0), rng.gen_range(110.0..175.0), t);
    let cladding = lerp(rng.gen_range(70.0..125.0), rng.gen_range(95.0..140.0), t);
    let mm = !fiber.is_single_mode();
    let lit_core = rng.gen_bool(if mm { 0.9 } else { 0.6 });
    let core_delta = if lit_core {
        lerp(rng.gen_range(-8.0..12.0), rng.gen_range(40.0..120.0), t)
    } else {
        rng.gen_range(-5.0..6.0)
    };
    let core_glow = if t > 0.5 && rng.gen_bool(0.6) {
        rng.gen_range(5.0..40.0) * t
    } else {
        0.0
    };
    let trench = mm && (core_um - 50.0).abs() < 1.0 && rng.gen_bool(0.45);
    let epoxy_width = if rng.gen_bool(0.3) {
        rng.gen_range(0.0..0.3)
    } else {
        rng.gen_range(0.4..2.2)
    };
    // Real edges: usually a dark line just inside the cladding edge and a bright halo just
    // outside the bore; sometimes the other way round, sometimes barely any.
    let inner_rim = if rng.gen_bool(if t < 0.5 { 0.65 } else { 0.8 }) {
        -rng.gen_range(5.0..65.0)
    } else {
        rng.gen_range(0.0..30.0)
    };
    let outer_rim = if rng.gen_bool(if t < 0.5 { 0.8 } else { 0.5 }) {
        rng.gen_range(5.0..45.0)
    } else {
        -rng.gen_range(0.0..20.0)
    };
    LookSpec {
        look,
        look_mix: t,
        ferrule_level: ferrule as f32,
        cladding_level: cladding as f32,
        cladding_edge_shade: lerp(rng.gen_range(-6.0..6.0), rng.gen_range(-35.0..0.0), t) as f32,
        core_delta: core_delta as f32,
        core_softness_um: if mm {
            (rng.gen_range(0.5..3.0) + 2.0 * t) as f32
        } else {
            rng.gen_range(0.6..1.8)
        },
        core_ring: if mm && rng.gen_bool(0.6) {
            rng.gen_range(-8.0..10.0) + 40.0 * t * rng.gen::<f64>()
        } else {
            0.0
        } as f32,
        core_glow: core_glow as f32,
        core_glow_radius_um: (core_um / 2.0 * rng.gen_range(0.4..1.0)).max(4.0) as f32,
        trench_ring: if trench {
            let m = rng.gen_range(3.0..12.0);
            if rng.gen_bool(0.5) {
                m
            } else {
                -m
            }
        } else {
            0.0
        },
        trench_band_outer: if trench {
            // Half the trench fibers show the broad annulus real 50 µm fibers show (a dark
            // band from the core edge to ~0.6 of the cladding radius), half the thin ring.
            let mut band = ChaCha8Rng::seed_from_u64(band_seed);
            if band.gen_bool(0.5) {
                band.gen_range(0.55..0.68)
            } else {
                0.0
            }
        } else {
            0.0
        },
        epoxy_width_um: epoxy_width as f32,
        epoxy_mix: rng.gen_range(0.6..1.05),
        edge_softness_um: rng.gen_range(0.2..0.9),
        inner_rim: inner_rim as f32,
        outer_rim: outer_rim as f32,
        rim_width_um: rng.gen_range(0.3..0.9),
        relief: if rng.gen_bool(0.35) {
            rng.gen_range(0.2..0.9)
        } else {
            0.0
        },
        relief_angle_rad: rng.gen_range(0.0..TAU),
        glass_grain: rng.gen_range(0.3..2.0),
    }
}

fn sample_camera(rng: &mut ChaCha8Rng, config: &SynthConfig, w: u32, h: u32) -> CameraSpec {
    let border_px = if rng.gen_bool(0.12) {
        [
            rng.gen_range(2..12).min(w / 8),
            rng.gen_range(0..14).min(w / 8),
            rng.gen_range(0..8).min(h / 8),
        ]
    } else {
        [0, 0, 0]
    };
    CameraSpec {
        blur_sigma_px: if rng.gen_bool(0.15) {
            rng.gen_range(1.1..1.8)
        } else {
            rng.gen_range(0.4..1.1)
        },
        read_noise: if rng.gen_bool(0.2) {
            rng.gen_range(2.0..3.5)
        } else {
            rng.gen_range(0.5..2.0)
        },
        shot_noise: rng.gen_range(0.003..0.03),
        jpeg_quality: if rng.gen_bool(config.jpeg_prob) {
            Some(rng.gen_range(45..96))
        } else {
            None
        },
        border_px,
        black_level: rng.gen_range(4.0..25.0),
    }
}

fn sample_illumination(
    rng: &mut ChaCha8Rng,
    look: &LookSpec,
    w: u32,
    h: u32,
    center: [f64; 2],
) -> IlluminationSpec {
    let (wf, hf) = (w as f64, h as f64);
    let vig_max = lerp(0.25, 0.5, look.look_mix);
    IlluminationSpec {
        gain: rng.gen_range(0.85..1.12),
        gradient: [rng.gen_range(-0.12..0.12), rng.gen_range(-0.12..0.12)],
        vignette: rng.gen_range(0.0..vig_max) as f32,
        vignette_center_in_frame: [
            wf / 2.0 + rng.gen_range(-0.2..0.2) * wf,
            hf / 2.0 + rng.gen_range(-0.2..0.2) * hf,
        ],
        hotspot: if rng.gen_bool(0.3) {
            rng.gen_range(0.03..0.15)
        } else {
            0.0
        },
        hotspot_center_in_frame: [
            center[0] + rng.gen_range(-0.15..0.15) * wf,
            center[1] + rng.gen_range(-0.15..0.15) * hf,
        ],
        hotspot_sigma_px: (rng.gen_range(0.15..0.4) * wf) as f32,
    }
}

fn sample_ferrule(
    rng: &mut ChaCha8Rng,
    scale: &PixelScale,
    center: [f64; 2],
    w: u32,
    h: u32,
) -> FerruleSpec {
    // The frame corners in fiber µm, to aim the marks at the visible ferrule.
    let far_um = {
        let corners = [
            [0.0, 0.0],
            [w as f64, 0.0],
            [0.0, h as f64],
            [w as f64, h as f64],
        ];
        corners
            .iter()
            .map(|c| scale.radius_um(c[0], c[1], center))
            .fold(0.0, f64::max)
    };
    let mut strokes = Vec::new();
    let mut scratch_count = 0;
    if far_um > CONTACT_RADIUS_UM + 10.0 && rng.gen_bool(0.4) {
        // Bundles of long arcs like "skating rink" wear on the ferrule.
        for _ in 0..rng.gen_range(1..4) {
            let n = rng.gen_range(1..8);
            let dir = rng.gen_range(0.0..TAU);
            let p = rng.gen_range(CONTACT_RADIUS_UM + 5.0..far_um.max(CONTACT_RADIUS_UM + 6.0));
            let radius = rng.gen_range(300.0..3000.0);
            let spacing = rng.gen_range(2.0..12.0);
            let contrast = -rng.gen_range(0.04..0.3);
            let len = rng.gen_range(150.0..800.0);
            for i in 0..n {
                let rr = radius + i as f64 * spacing * rng.gen_range(0.7..1.3);
                strokes.push(Stroke {
                    path: arc_through(p, dir, rr, len),
                    width_um: rng.gen_range(0.6..2.5),
                    end_width_um: rng.gen_range(0.6..2.5),
                    contrast: contrast * rng.gen_range(0.6..1.2),
                    gaps: 0.0,
                    gap_scale_um: 10.0,
                    speckle: rng.gen_range(0.0..0.5),
                    seed: rng.gen(),
                });
                scratch_count += 1;
            }
        }
    }
    if far_um > CONTACT_RADIUS_UM + 10.0 && rng.gen_bool(0.5) {
        for _ in 0..rng.gen_range(3..20) {
            let dir = rng.gen_range(0.0..TAU);
            let p = rng.gen_range(CONTACT_RADIUS_UM..far_um.max(CONTACT_RADIUS_UM + 1.0));
            let len = rng.gen_range(40.0..400.0);
            let c = rng.gen_range(0.01..0.05);
            strokes.push(Stroke {
                path: line_through(p, dir, len, rng.gen_range(-0.5..0.5)),
                width_um: rng.gen_range(0.4..1.2),
                end_width_um: rng.gen_range(0.4..1.2),
                contrast: if rng.gen_bool(0.6) { -c } else { c },
                gaps: 0.0,
                gap_scale_um: 10.0,
                speckle: rng.gen_range(0.2..0.9),
                seed: rng.gen(),
            });
        }
    }
    FerruleSpec {
        grain: rng.gen_range(1.0..5.0),
        mottle: rng.gen_range(0.5..5.0),
        mottle_scale_um: rng.gen_range(15.0..60.0),
        texture: rng.gen_range(0.5..3.5),
        texture_scale_um: rng.gen_range(1.5..5.0),
        strokes,
        scratch_count,
    }
}

/// A straight path of length `len` whose closest approach to the axis is `p` µm in direction
/// `dir` (shifted along itself by `shift` × len).
fn line_through(p: f64, dir: f64, len: f64, shift: f64) -> StrokePath {
    let (s, c) = dir.sin_cos();
    let q = [p * c, p * s];
    let t = [-s, c];
    let a = shift * len - len / 2.0;
    let b = shift * len + len / 2.0;
    StrokePath::Line {
        a_um: [q[0] + a * t[0], q[1] + a * t[1]],
        b_um: [q[0] + b * t[0], q[1] + b * t[1]],
    }
}

/// An arc of radius `radius` and length `len` whose closest approach to the axis is `p` µm
/// in direction `dir` (the arc bends away from the axis).
fn arc_through(p: f64, dir: f64, radius: f64, len: f64) -> StrokePath {
    let (s, c) = dir.sin_cos();
    let center = [(p + radius) * c, (p + radius) * s];
    let toward = dir + PI;
    let sweep = (len / radius).min(PI);
    StrokePath::Arc {
        center_um: center,
        radius_um: radius,
        start_rad: toward - sweep / 2.0,
        sweep_rad: sweep,
    }
}

/// A radius (µm) in zone `zone` such that a feature of half-extent `half_um` whose centre is
/// there has its inner edge inside the zone.
fn radius_in_zone(rng: &mut ChaCha8Rng, fiber: FiberProfile, zone: usize, half_um: f64) -> f64 {
    let (r0, r1) = zone_band(fiber, zone);
    if zone == 0 {
        // Area-uniform inside the core zone.
        return r1 * rng.gen::<f64>().sqrt() * 0.95;
    }
    let lo = r0 + half_um;
    let hi = r1 + half_um;
    rng.gen_range(lo..hi.max(lo + 0.1))
}

fn contrast_sign(rng: &mut ChaCha8Rng, p_dark: f64) -> f64 {
    if rng.gen_bool(p_dark) {
        -1.0
    } else {
        1.0
    }
}

fn harmonics(rng: &mut ChaCha8Rng, n: usize, amp: f64) -> Vec<(f64, f64)> {
    (0..n)
        .map(|i| {
            (
                rng.gen_range(0.0..amp) / (1.0 + 0.5 * i as f64),
                rng.gen_range(0.0..TAU),
            )
        })
        .collect()
}

/// Defects of one kind aimed at zone `zone` (0..=3).
fn sample_defects(
    rng: &mut ChaCha8Rng,
    scene: &SceneSpec,
    kind: DefectKind,
    zone: usize,
    primary: bool,
) -> Vec<DefectSpec> {
    let _ = primary;
    match kind {
        DefectKind::Scratch => sample_scratches(rng, scene, zone),
        DefectKind::Pit => sample_pits(rng, scene, zone),
        DefectKind::Contamination => sample_contamination(rng, scene, zone),
        DefectKind::Chip => sample_chips(rng, scene),
        DefectKind::Crack => sample_cracks(rng, scene, zone),
    }
}

/// `(gaps, gap_scale_um)` of a scratch: continuous or broken into irregular pieces.
fn broken(rng: &mut ChaCha8Rng) -> (f64, f64) {
    if rng.gen_bool(0.4) {
        (rng.gen_range(0.2..0.6), rng.gen_range(3.0..25.0))
    } else {
        (0.0, 10.0)
    }
}

fn sample_scratches(rng: &mut ChaCha8Rng, scene: &SceneSpec, zone: usize) -> Vec<DefectSpec> {
    let x: f64 = rng.gen();
    let subtle = rng.gen_bool(0.25);
    let magnitude = |rng: &mut ChaCha8Rng| {
        if subtle {
            rng.gen_range(0.04..0.09)
        } else {
            rng.gen_range(0.08..0.45)
        }
    };
    let (r0, r1) = zone_band(scene.fiber, zone);
    let p = rng.gen_range(r0..r1);
    let dir = rng.gen_range(0.0..TAU);
    if x < 0.16 {
        // Polishing bundle: several parallel fine scratches.
        let n = rng.gen_range(3..8);
        let px_um = scene.scale.um_per_px_x.max(scene.scale.um_per_px_y);
        let spacing =
            rng.gen_range(2.0..8.0) + 3.0 * px_um + 2.0 * scene.camera.blur_sigma_px as f64 * px_um;
        let arc = rng.gen_bool(0.5);
        let radius = rng.gen_range(200.0..2000.0);
        let len = rng.gen_range(60.0..350.0);
        let shift = rng.gen_range(-0.3..0.3);
        let c = contrast_sign(rng, 0.6) * magnitude(rng);
        let (gaps, gap_scale_um) = broken(rng);
        (0..n)
            .map(|i| {
                let pi = p + i as f64 * spacing;
                let path = if arc {
                    arc_through(pi, dir, radius + i as f64 * spacing, len)
                } else {
                    line_through(pi, dir, len, shift)
                };
                let wdt = rng.gen_range(0.5..1.5);
                DefectSpec::new(
                    DefectKind::Scratch,
                    "polish-bundle",
                    Shape::Strokes(vec![Stroke {
                        path,
                        width_um: wdt,
                        end_width_um: wdt,
                        contrast: c * rng.gen_range(0.7..1.3),
                        gaps,
                        gap_scale_um,
                        speckle: rng.gen_range(0.0..0.7),
                        seed: rng.gen(),
                    }]),
                    subtle,
                )
            })
            .collect()
    } else {
        let n = if rng.gen_bool(0.2) {
            rng.gen_range(2..4)
        } else {
            1
        };
        (0..n)
            .map(|i| {
                let (pp, dd) = if i == 0 {
                    (p, dir)
                } else {
                    (
                        rng.gen_range(0.0..CONTACT_RADIUS_UM),
                        rng.gen_range(0.0..TAU),
                    )
                };
                let width = sample_size(rng, 0.5, 6.0, &[3.0, 5.0]);
                // Wide scratches are shallow grooves: lower contrast.
                let shallow = if width > 2.5 {
                    rng.gen_range(0.35..1.0)
                } else {
                    1.0
                };
                let (gaps, gap_scale_um) = if width < 2.0 {
                    broken(rng)
                } else {
                    (0.0, 10.0)
                };
                let long = rng.gen_bool(0.7);
                let len = if long {
                    rng.gen_range(80.0..400.0)
                } else {
                    rng.gen_range(10.0..60.0)
                };
                let arc = rng.gen_bool(0.3);
                let path = if arc {
                    arc_through(pp, dd, rng.gen_range(150.0..1500.0), len)
                } else {
                    line_through(pp, dd, len, rng.gen_range(-0.4..0.4))
                };
                DefectSpec::new(
                    DefectKind::Scratch,
                    if arc { "arc" } else { "line" },
                    Shape::Strokes(vec![Stroke {
                        path,
                        width_um: width,
                        end_width_um: width * rng.gen_range(0.7..1.0),
                        contrast: contrast_sign(rng, 0.65) * magnitude(rng) * shallow,
                        gaps,
                        gap_scale_um,
                        speckle: if rng.gen_bool(0.4) {
                            rng.gen_range(0.3..0.8)
                        } else {
                            0.0
                        },
                        seed: rng.gen(),
                    }]),
                    subtle,
                )
            })
            .collect()
    }
}

/// How a blob is painted: edge softness, tone and halo.
struct Paint {
    softness_um: f64,
    tone: Tone,
    halo: Option<Halo>,
}

/// An irregular blob of IEC size (max Feret) `size_um`; `jag` = boundary roughness,
/// `max_stretch` = largest elongation.
fn blob_with_size(
    rng: &mut ChaCha8Rng,
    center_um: [f64; 2],
    size_um: f64,
    jag: f64,
    max_stretch: f64,
    paint: Paint,
) -> Blob {
    let mut b = Blob {
        center_um,
        radius_um: 1.0,
        harmonics: harmonics(rng, 4, jag),
        stretch: rng.gen_range(1.0..max_stretch.max(1.0001)),
        angle_rad: rng.gen_range(0.0..TAU),
        softness_um: paint.softness_um,
        tone: paint.tone,
        halo: paint.halo,
    };
    let f1 = feret_um(&b.boundary_um(72)).max(1e-6);
    b.radius_um = size_um / f1;
    b
}

fn polar(r: f64, a: f64) -> [f64; 2] {
    [r * a.cos(), r * a.sin()]
}

fn sample_pits(rng: &mut ChaCha8Rng, scene: &SceneSpec, zone: usize) -> Vec<DefectSpec> {
    let x: f64 = rng.gen();
    let many = x < 0.18;
    let n = if many {
        rng.gen_range(3..9)
    } else if x < 0.4 {
        rng.gen_range(2..4)
    } else {
        1
    };
    let mut out: Vec<DefectSpec> = Vec::new();
    let mut placed: Vec<([f64; 2], f64)> = Vec::new();
    let px_um = scene.scale.um_per_px_x.max(scene.scale.um_per_px_y);
    for _ in 0..n {
        let subtle = !many && rng.gen_bool(0.2);
        let size = if many {
            if scene.fiber.is_single_mode() {
                rng.gen_range(2.1..4.8)
            } else {
                rng.gen_range(5.2..9.5)
            }
        } else if subtle {
            rng.gen_range(0.8..2.5)
        } else {
            sample_size(rng, 0.8, 18.0, &[2.0, 5.0, 10.0])
        };
        let z = if many { 1 } else { zone };
        // Keep pits apart so that each stays its own blob after blur.
        let mut center = [0.0, 0.0];
        for _ in 0..20 {
            let r = radius_in_zone(rng, scene.fiber, z, size / 2.0 + 1.0);
            center = polar(r, rng.gen_range(0.0..TAU));
            let ok = placed.iter().all(|(c, s)| {
                (c[0] - center[0]).hypot(c[1] - center[1])
                    > (s + size) / 2.0
                        + 4.0 * px_um
                        + 6.0 * scene.camera.blur_sigma_px as f64 * px_um
            });
            if ok {
                break;
            }
        }
        placed.push((center, size));
        let tone = if subtle {
            Tone::Relative(-rng.gen_range(0.06..0.14))
        } else {
            Tone::Relative(-rng.gen_range(0.25..0.75))
        };
        let halo = (!subtle && rng.gen_bool(0.45)).then(|| Halo {
            offset_um: rng.gen_range(0.2..0.8),
            width_um: rng.gen_range(0.4..1.2),
            contrast: rng.gen_range(0.08..0.3),
        });
        let softness = rng.gen_range(0.1..0.5);
        let b = blob_with_size(
            rng,
            center,
            size,
            0.15,
            1.6,
            Paint {
                softness_um: softness,
                tone,
                halo,
            },
        );
        out.push(DefectSpec::new(
            DefectKind::Pit,
            if halo.is_some() { "pit-halo" } else { "pit" },
            Shape::Blob(b),
            subtle,
        ));
    }
    out
}

fn sample_contamination(rng: &mut ChaCha8Rng, scene: &SceneSpec, zone: usize) -> Vec<DefectSpec> {
    let x: f64 = rng.gen();
    let px_um = scene.scale.um_per_px_x.max(scene.scale.um_per_px_y);
    if x < 0.25 {
        // Particle cluster: separate particles close together.
        let n = rng.gen_range(3..10);
        let spread = rng.gen_range(8.0..28.0);
        let r = radius_in_zone(rng, scene.fiber, zone, 2.0);
        let cc = polar(r, rng.gen_range(0.0..TAU));
        let mut placed: Vec<([f64; 2], f64)> = Vec::new();
        let mut out = Vec::new();
        for _ in 0..n {
            let size = sample_size(rng, 1.0, 6.0, &[2.0, 3.0, 5.0]);
            let mut ok_center = None;
            for _ in 0..30 {
                let c = [
                    cc[0] + rng.gen_range(-spread..spread),
                    cc[1] + rng.gen_range(-spread..spread),
                ];
                let ok = placed.iter().all(|(p, s)| {
                    (p[0] - c[0]).hypot(p[1] - c[1])
                        > (s + size) / 2.0
                            + 3.0 * px_um
                            + 6.0 * scene.camera.blur_sigma_px as f64 * px_um
                });
                if ok {
                    ok_center = Some(c);
                    break;
                }
            }
            let Some(c) = ok_center else { continue };
            placed.push((c, size));
            let tone = if rng.gen_bool(0.75) {
                Tone::Absolute(rng.gen_range(10.0..70.0))
            } else {
                Tone::Relative(rng.gen_range(0.25..0.8))
            };
            let b = blob_with_size(
                rng,
                c,
                size,
                0.3,
                1.8,
                Paint {
                    softness_um: 0.05,
                    tone,
                    halo: None,
                },
            );
            out.push(DefectSpec::new(
                DefectKind::Contamination,
                "cluster-particle",
                Shape::Blob(b),
                false,
            ));
        }
        out
    } else if x < 0.5 {
        // Oil film: large, soft, low contrast.
        let size = sample_size(rng, 6.0, 70.0, &[10.0, 20.0, 30.0]);
        let r = radius_in_zone(rng, scene.fiber, zone, size / 2.0);
        let c = polar(r, rng.gen_range(0.0..TAU));
        let tone = Tone::Relative((contrast_sign(rng, 0.5) * rng.gen_range(0.04..0.15)) as f32);
        let halo = rng.gen_bool(0.4).then(|| Halo {
            offset_um: 0.0,
            width_um: rng.gen_range(0.6..1.5),
            contrast: (contrast_sign(rng, 0.5) * rng.gen_range(0.04..0.12)) as f32,
        });
        let soft = rng.gen_range(1.5..6.0_f64).min(size / 3.0);
        let b = blob_with_size(
            rng,
            c,
            size,
            0.3,
            1.7,
            Paint {
                softness_um: soft,
                tone,
                halo,
            },
        );
        vec![DefectSpec::new(
            DefectKind::Contamination,
            "oil-film",
            Shape::Blob(b),
            true,
        )]
    } else {
        // Sharp dust: dark (most), bright, or faint and tiny.
        let y: f64 = rng.gen();
        let subtle = y < 0.15;
        let size = if subtle {
            rng.gen_range(0.8..2.5)
        } else {
            sample_size(rng, 1.0, 40.0, &[2.0, 5.0, 10.0, 20.0, 30.0])
        };
        let r = radius_in_zone(rng, scene.fiber, zone, size / 2.0);
        let c = polar(r, rng.gen_range(0.0..TAU));
        let (tone, variant) = if subtle {
            (Tone::Relative(-rng.gen_range(0.06..0.14)), "dust-faint")
        } else if y < 0.8 {
            (Tone::Absolute(rng.gen_range(8.0..70.0)), "dust-dark")
        } else {
            (Tone::Relative(rng.gen_range(0.25..0.9)), "dust-bright")
        };
        let halo = (!subtle && rng.gen_bool(0.35)).then(|| Halo {
            offset_um: rng.gen_range(0.2..1.2),
            width_um: rng.gen_range(0.5..1.5),
            contrast: rng.gen_range(0.08..0.35),
        });
        let b = blob_with_size(
            rng,
            c,
            size,
            0.35,
            2.2,
            Paint {
                softness_um: 0.05,
                tone,
                halo,
            },
        );
        vec![DefectSpec::new(
            DefectKind::Contamination,
            variant,
            Shape::Blob(b),
            subtle,
        )]
    }
}

fn sample_chips(rng: &mut ChaCha8Rng, scene: &SceneSpec) -> Vec<DefectSpec> {
    let n = if rng.gen_bool(0.25) {
        rng.gen_range(2..4)
    } else {
        1
    };
    let base = rng.gen_range(0.0..TAU);
    let _ = scene;
    (0..n)
        .map(|i| {
            let subtle = rng.gen_bool(0.15);
            let depth = if subtle {
                rng.gen_range(0.8..2.0)
            } else {
                sample_size(rng, 0.8, 14.0, &[2.5, 5.0, 10.0])
            };
            let width = (depth * rng.gen_range(1.0..3.5)).clamp(2.0, 30.0);
            let tone = if subtle {
                Tone::Relative(-rng.gen_range(0.12..0.25))
            } else if rng.gen_bool(0.3) {
                Tone::Absolute(rng.gen_range(8.0..50.0))
            } else {
                Tone::Relative(-rng.gen_range(0.3..0.8))
            };
            let chip = ChipShape {
                angle_rad: base + i as f64 * TAU / n as f64 + rng.gen_range(-0.5..0.5),
                half_angle_rad: width / 2.0 / CLADDING_RADIUS_UM,
                depth_um: depth,
                sharpness: rng.gen_range(0.5..1.5),
                harmonics: harmonics(rng, 6, 0.14),
                tone,
            };
            DefectSpec::new(DefectKind::Chip, "edge-notch", Shape::Chip(chip), subtle)
        })
        .collect()
}

fn crack_polyline(rng: &mut ChaCha8Rng, start: [f64; 2], dir: f64, len: f64) -> Vec<[f64; 2]> {
    let mut pts = vec![start];
    let mut p = start;
    let mut a = dir;
    let mut left = len;
    while left > 0.0 {
        let step = rng.gen_range(1.0..3.0_f64).min(left);
        a += rng.gen_range(-0.45..0.45);
        p = [p[0] + step * a.cos(), p[1] + step * a.sin()];
        pts.push(p);
        left -= step;
    }
    pts
}

fn sample_cracks(rng: &mut ChaCha8Rng, scene: &SceneSpec, zone: usize) -> Vec<DefectSpec> {
    let n = if rng.gen_bool(0.2) { 2 } else { 1 };
    let _ = zone;
    (0..n)
        .map(|_| {
            let subtle = rng.gen_bool(0.15);
            let x: f64 = rng.gen();
            let theta = rng.gen_range(0.0..TAU);
            let (start, dir, len, variant) = if x < 0.4 {
                // From the cladding edge inwards.
                let len = sample_size(rng, 4.0, 70.0, &[5.0, 10.0, 20.0, 30.0]);
                (
                    polar(CLADDING_RADIUS_UM - 0.5, theta),
                    theta + PI + rng.gen_range(-0.7..0.7),
                    len,
                    "edge-crack",
                )
            } else if x < 0.6 {
                let (r0, r1) = zone_band(scene.fiber, rng.gen_range(0..2));
                let len = sample_size(rng, 4.0, 50.0, &[5.0, 10.0, 20.0]);
                (
                    polar(rng.gen_range(r0..r1), theta),
                    rng.gen_range(0.0..TAU),
                    len,
                    "crack",
                )
            } else {
                // Short cracks around the bore (zones C and D).
                let len = sample_size(rng, 2.0, 14.0, &[5.0, 10.0]);
                (
                    polar(rng.gen_range(64.0..110.0), theta),
                    theta + PI / 2.0 + rng.gen_range(-0.6..0.6),
                    len,
                    "bore-crack",
                )
            };
            let main = crack_polyline(rng, start, dir, len);
            let w = rng.gen_range(0.4..1.3);
            let contrast = if subtle {
                -rng.gen_range(0.07..0.14)
            } else {
                -rng.gen_range(0.2..0.6)
            };
            let mut strokes = vec![Stroke {
                path: StrokePath::Polyline {
                    points_um: main.clone(),
                },
                width_um: w,
                end_width_um: w * 0.4,
                contrast,
                gaps: 0.0,
                gap_scale_um: 10.0,
                speckle: rng.gen_range(0.0..0.4),
                seed: rng.gen(),
            }];
            for _ in 0..rng.gen_range(0..4) {
                if main.len() < 3 {
                    break;
                }
                let k = rng.gen_range(1..main.len() - 1);
                let a0 = (main[k][1] - main[k - 1][1]).atan2(main[k][0] - main[k - 1][0]);
                let a = a0 + contrast_sign(rng, 0.5) * rng.gen_range(0.5..1.1);
                let bl = len * rng.gen_range(0.2..0.6);
                let branch = crack_polyline(rng, main[k], a, bl);
                strokes.push(Stroke {
                    path: StrokePath::Polyline { points_um: branch },
                    width_um: w * 0.7,
                    end_width_um: w * 0.3,
                    contrast: contrast * 0.8,
                    gaps: 0.0,
                    gap_scale_um: 10.0,
                    speckle: rng.gen_range(0.0..0.4),
                    seed: rng.gen(),
                });
            }
            DefectSpec::new(DefectKind::Crack, variant, Shape::Strokes(strokes), subtle)
        })
        .collect()
}

/// Harmless dust and pits on the ferrule beyond the contact zone, inside the frame.
fn sample_outside(rng: &mut ChaCha8Rng, scene: &SceneSpec) -> Vec<DefectSpec> {
    let n = rng.gen_range(1..7);
    let mut out = Vec::new();
    for _ in 0..n {
        let size = sample_size(rng, 1.0, 15.0, &[]);
        // margin: half size + blur and antialiasing spread
        let px_um = scene.scale.um_per_px_x.max(scene.scale.um_per_px_y);
        let min_r = CONTACT_RADIUS_UM
            + size / 2.0
            + 2.0
            + px_um * (3.0 + 4.0 * scene.camera.blur_sigma_px as f64);
        for _ in 0..10 {
            let r = rng.gen_range(min_r..min_r + 150.0);
            let c = polar(r, rng.gen_range(0.0..TAU));
            let (xp, yp) = scene.scale.px_from_um(c[0], c[1]);
            let x = scene.center_in_frame[0] + xp;
            let y = scene.center_in_frame[1] + yp;
            if x < 2.0 || y < 2.0 || x > scene.width as f64 - 3.0 || y > scene.height as f64 - 3.0 {
                continue;
            }
            let pit = rng.gen_bool(0.3);
            let tone = if pit {
                Tone::Relative(-rng.gen_range(0.2..0.6))
            } else {
                Tone::Absolute(rng.gen_range(10.0..90.0))
            };
            let b = blob_with_size(
                rng,
                c,
                size,
                0.3,
                1.8,
                Paint {
                    softness_um: 0.1,
                    tone,
                    halo: None,
                },
            );
            out.push(DefectSpec::new(
                if pit {
                    DefectKind::Pit
                } else {
                    DefectKind::Contamination
                },
                "ferrule-dust",
                Shape::Blob(b),
                false,
            ));
            break;
        }
    }
    out
}
