//! Input drift: is the station still seeing the kind of frames its model was calibrated on?
//!
//! In: per-frame feature vectors ([`frame_features`], plus the model's anomaly score and
//! reconstruction-error quantiles filled in by the inspector) for a *reference* set saved at
//! calibration time and for a rolling window of recent frames. Out: the sliced Wasserstein
//! distance (SWD) between the two clouds, a permutation-test p-value, which features moved
//! most, and — through [`DriftMonitor`] — a DRIFT state with hysteresis for the daemon.
//!
//! SWD follows POT's `ot.sliced_wasserstein_distance(X, Y, n_projections=L, p, projections)`:
//! project both clouds on L unit directions, compute the 1-D Wasserstein-p on each through the
//! empirical quantile functions (uniform weights; unequal sizes handled exactly by merging the
//! breakpoints i/n and j/m in integer arithmetic), and return `(mean_l W_p^p)^(1/p)`.
//! The permutation test pools both samples, re-splits them at random P times (seeded), and
//! reports `p = (1 + #{permuted SWD ≥ observed}) / (1 + P)`.
//!
//! Inner loops are allocation-free: [`PermutationTest`] keeps its scratch buffers, projects the
//! pooled sample once per test, sorts each projection once, and then splits the sorted order by
//! membership for each permutation (both halves come out sorted, no re-sorting).

use image::GrayImage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

/// Errors from drift computations.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DriftError {
    #[error("{what}: {len} values is not a multiple of dimension {dim}")]
    Shape {
        what: &'static str,
        len: usize,
        dim: usize,
    },
    #[error("{what} is empty")]
    Empty { what: &'static str },
    #[error("drift config `{key}`: {problem}")]
    Config { key: &'static str, problem: String },
    #[error("drift reference: {0}")]
    Reference(String),
}

// ---------------------------------------------------------------------------------------------
// SWD core

/// `l` random unit directions in `dim` dimensions (row-major `l × dim`), Gaussian then
/// normalized, from a seeded ChaCha8 stream.
pub fn random_projections(dim: usize, l: usize, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = vec![0.0; dim * l];
    for row in out.chunks_mut(dim.max(1)) {
        loop {
            for v in row.iter_mut() {
                *v = rng.sample(StandardNormal);
            }
            let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
            if norm > 1e-12 {
                row.iter_mut().for_each(|v| *v /= norm);
                break;
            }
        }
    }
    out
}

#[inline]
fn pow_p(d: f64, p: f64) -> f64 {
    if p == 1.0 {
        d
    } else if p == 2.0 {
        d * d
    } else {
        d.powf(p)
    }
}

/// `W_p^p` between the uniform empirical measures on two ascending-sorted samples.
///
/// The quantile functions are step functions with breakpoints at i/n and j/m; the integral
/// `∫₀¹ |F⁻¹(q) − G⁻¹(q)|^p dq` is summed over the merged breakpoints, compared exactly as
/// integers `(i+1)·m` vs `(j+1)·n`. Returns 0 when either sample is empty.
pub fn wasserstein_1d_pp(u_sorted: &[f64], v_sorted: &[f64], p: f64) -> f64 {
    let (n, m) = (u_sorted.len() as u64, v_sorted.len() as u64);
    if n == 0 || m == 0 {
        return 0.0;
    }
    let (mut i, mut j, mut t, mut acc) = (0usize, 0usize, 0u64, 0.0f64);
    while i < u_sorted.len() && j < v_sorted.len() {
        let next_u = (i as u64 + 1) * m;
        let next_v = (j as u64 + 1) * n;
        let next = next_u.min(next_v);
        acc += (next - t) as f64 * pow_p((u_sorted[i] - v_sorted[j]).abs(), p);
        t = next;
        if next_u == next {
            i += 1;
        }
        if next_v == next {
            j += 1;
        }
    }
    acc / (n * m) as f64
}

fn check_cloud(what: &'static str, x: &[f64], dim: usize) -> Result<usize, DriftError> {
    if dim == 0 || !x.len().is_multiple_of(dim) {
        return Err(DriftError::Shape {
            what,
            len: x.len(),
            dim,
        });
    }
    if x.is_empty() {
        return Err(DriftError::Empty { what });
    }
    Ok(x.len() / dim)
}

/// SWD between point clouds `x` (n × dim) and `y` (m × dim), row-major, on the given
/// `projections` (L × dim, unit rows): `(mean_l W_p^p(x·θ_l, y·θ_l))^(1/p)`, as POT.
pub fn sliced_wasserstein(
    x: &[f64],
    y: &[f64],
    dim: usize,
    projections: &[f64],
    p: f64,
) -> Result<f64, DriftError> {
    let mut t = PermutationTest::default();
    t.load(x, y, dim, projections)?;
    Ok(t.statistic_of_split(p))
}

/// Result of a two-sample permutation test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TestResult {
    /// Observed SWD.
    pub distance: f64,
    /// `(1 + #{permuted ≥ observed}) / (1 + permutations)`.
    pub p_value: f64,
    pub permutations: usize,
}

/// Reusable permutation-test engine: holds every buffer, so repeated tests of the same sizes
/// allocate nothing.
#[derive(Debug, Default, Clone)]
pub struct PermutationTest {
    n_x: usize,
    n: usize,
    l: usize,
    /// Pooled projections, `l × n` (row l = all points on direction l).
    proj: Vec<f64>,
    /// Per direction, point indices sorted by projected value (`l × n`).
    order: Vec<u32>,
    in_x: Vec<bool>,
    perm: Vec<u32>,
    a: Vec<f64>,
    b: Vec<f64>,
}

impl PermutationTest {
    pub fn new() -> Self {
        Self::default()
    }

    /// Pool `x` then `y`, project on every direction and sort each projection.
    fn load(
        &mut self,
        x: &[f64],
        y: &[f64],
        dim: usize,
        projections: &[f64],
    ) -> Result<(), DriftError> {
        let n_x = check_cloud("first sample", x, dim)?;
        let n_y = check_cloud("second sample", y, dim)?;
        let l = check_cloud("projections", projections, dim)?;
        let n = n_x + n_y;
        self.n_x = n_x;
        self.n = n;
        self.l = l;
        self.proj.clear();
        self.proj.resize(l * n, 0.0);
        for (li, theta) in projections.chunks_exact(dim).enumerate() {
            let row = &mut self.proj[li * n..(li + 1) * n];
            for (k, pt) in x.chunks_exact(dim).chain(y.chunks_exact(dim)).enumerate() {
                row[k] = pt.iter().zip(theta).map(|(a, b)| a * b).sum();
            }
        }
        self.order.clear();
        for li in 0..l {
            let row = &self.proj[li * n..(li + 1) * n];
            let start = self.order.len();
            self.order.extend(0..n as u32);
            self.order[start..]
                .sort_unstable_by(|&i, &j| row[i as usize].total_cmp(&row[j as usize]));
        }
        self.in_x.clear();
        self.in_x.extend((0..n).map(|k| k < n_x));
        self.perm.clear();
        self.perm.extend(0..n as u32);
        self.a.clear();
        self.a.reserve(n);
        self.b.clear();
        self.b.reserve(n);
        Ok(())
    }

    /// SWD of the current split (`in_x`).
    fn statistic_of_split(&mut self, p: f64) -> f64 {
        let n = self.n;
        let mut sum = 0.0;
        for li in 0..self.l {
            self.a.clear();
            self.b.clear();
            let row = &self.proj[li * n..(li + 1) * n];
            for &k in &self.order[li * n..(li + 1) * n] {
                let v = row[k as usize];
                if self.in_x[k as usize] {
                    self.a.push(v);
                } else {
                    self.b.push(v);
                }
            }
            sum += wasserstein_1d_pp(&self.a, &self.b, p);
        }
        (sum / self.l as f64).powf(1.0 / p)
    }

    /// Test whether `x` and `y` come from the same distribution: observed SWD and a
    /// permutation p-value over `permutations` random re-splits drawn from `rng`.
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &mut self,
        x: &[f64],
        y: &[f64],
        dim: usize,
        projections: &[f64],
        p: f64,
        permutations: usize,
        rng: &mut impl Rng,
    ) -> Result<TestResult, DriftError> {
        if !(p >= 1.0 && p.is_finite()) {
            return Err(DriftError::Config {
                key: "p",
                problem: format!("Wasserstein order {p} must be a finite number ≥ 1"),
            });
        }
        self.load(x, y, dim, projections)?;
        let observed = self.statistic_of_split(p);
        let mut extreme = 0usize;
        for _ in 0..permutations {
            // Fisher–Yates: every shuffle is uniform whatever the starting order.
            for k in (1..self.n).rev() {
                let r = rng.gen_range(0..=k);
                self.perm.swap(k, r);
            }
            for (pos, &k) in self.perm.iter().enumerate() {
                self.in_x[k as usize] = pos < self.n_x;
            }
            // Same accumulation order as the observed statistic: an identical split gives
            // bit-identical values, so `>=` counts it.
            if self.statistic_of_split(p) >= observed {
                extreme += 1;
            }
        }
        Ok(TestResult {
            distance: observed,
            p_value: (1 + extreme) as f64 / (1 + permutations) as f64,
            permutations,
        })
    }
}

/// One-shot permutation test with a seeded RNG (allocates its buffers; see [`PermutationTest`]).
pub fn permutation_test(
    x: &[f64],
    y: &[f64],
    dim: usize,
    projections: &[f64],
    p: f64,
    permutations: usize,
    seed: u64,
) -> Result<TestResult, DriftError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    PermutationTest::new().run(x, y, dim, projections, p, permutations, &mut rng)
}

// ---------------------------------------------------------------------------------------------
// Per-frame features

/// Number of per-frame drift features.
pub const N_FEATURES: usize = 16;

/// Per-frame features: see [`FEATURE_NAMES`] and [`frame_features`].
pub type FrameFeatures = [f32; N_FEATURES];

/// Feature names, in vector order.
pub const FEATURE_NAMES: [&str; N_FEATURES] = [
    "core_median",
    "cladding_median",
    "cladding_iqr",
    "edge_log_gradient_energy",
    "ferrule_median",
    "ferrule_iqr",
    "ferrule_log_laplacian_var",
    "outer_median",
    "clipped_fraction",
    "glass_ferrule_contrast",
    "cladding_radius_px",
    "center_offset",
    "anomaly_score",
    "recon_err_q50",
    "recon_err_q90",
    "recon_err_q99",
];

/// Index of the model's image anomaly score (filled by the inspector; NaN until then).
pub const F_ANOMALY_SCORE: usize = 12;
/// Index of the first reconstruction-error quantile (q50, q90, q99 follow).
pub const F_RECON_ERR_Q50: usize = 13;

/// Fill the model slots of a feature vector: image anomaly score and the 50/90/99 % quantiles
/// of the per-pixel reconstruction error inside the contact zone.
pub fn set_model_features(
    f: &mut FrameFeatures,
    anomaly_score: f32,
    recon_err_quantiles: [f32; 3],
) {
    f[F_ANOMALY_SCORE] = anomaly_score;
    f[F_RECON_ERR_Q50..F_RECON_ERR_Q50 + 3].copy_from_slice(&recon_err_quantiles);
}

/// Regions by normalized radius ρ = distance / cladding radius.
const RHO_CORE: f64 = 0.2; // zone A of single-mode (12.5 / 62.5)
const RHO_CLAD: f64 = 0.85;
const RHO_EDGE: f64 = 1.15;
const RHO_FERRULE: f64 = 2.0; // contact zone D (125 / 62.5)

#[derive(Clone, Copy)]
struct Hist {
    counts: [u32; 256],
    n: u32,
}

impl Hist {
    const fn new() -> Self {
        Self {
            counts: [0; 256],
            n: 0,
        }
    }
    #[inline]
    fn add(&mut self, v: u8) {
        self.counts[v as usize] += 1;
        self.n += 1;
    }
    /// Quantile `q` as the value of the order statistic at floor(q·(n−1)); NaN when empty.
    fn quantile(&self, q: f64) -> f32 {
        if self.n == 0 {
            return f32::NAN;
        }
        let target = (q * (self.n - 1) as f64).floor() as u32;
        let mut seen = 0u32;
        for (v, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen > target {
                return v as f32;
            }
        }
        255.0
    }
}

#[derive(Clone, Copy, Default)]
struct Moments {
    n: u64,
    sum: f64,
    sum_sq: f64,
}

impl Moments {
    #[inline]
    fn add(&mut self, v: f64) {
        self.n += 1;
        self.sum += v;
        self.sum_sq += v * v;
    }
    fn log_mean_sq(&self) -> f32 {
        if self.n == 0 {
            return f32::NAN;
        }
        (1.0 + self.sum_sq / self.n as f64).ln() as f32
    }
    fn log_var(&self) -> f32 {
        if self.n < 2 {
            return f32::NAN;
        }
        let mean = self.sum / self.n as f64;
        let var = (self.sum_sq / self.n as f64 - mean * mean).max(0.0);
        (1.0 + var).ln() as f32
    }
}

/// Robust per-frame statistics for drift, from a gray frame and the located fiber.
///
/// `center_in_frame` is the cladding centre in frame pixels and `radius_px` the cladding radius
/// (square pixels; see [`frame_features_ellipse`] for non-square). Regions by ρ = r / radius:
/// core ρ < 0.2, cladding 0.2–0.85, edge 0.85–1.15, ferrule 1.15–2.0 (contact zone), outer
/// ρ ≥ 2. Why each feature is there:
/// - `core_median`, `cladding_median`: light level on the glass (LED ageing, exposure); the
///   core also changes with fiber type (a 50 µm multimode core looks different from a 9 µm one).
/// - `cladding_iqr`, `ferrule_iqr`: local contrast and texture; a dirty-lens haze or defocus
///   compresses them, sensor noise raises them.
/// - `edge_log_gradient_energy`: focus on the cladding edge, ln(1 + mean squared Sobel
///   gradient) over the edge annulus (Tenengrad); the Sobel smoothing keeps sensor noise from
///   masking a +1 px blur.
/// - `ferrule_log_laplacian_var`: fine texture and noise on the ferrule (ln(1 + variance of
///   the 4-neighbour Laplacian)); defocus lowers it, sensor noise raises it.
/// - `ferrule_median`, `outer_median`: background/ferrule level and vignetting; haze lifts
///   dark levels, a swapped camera or LED changes them.
/// - `clipped_fraction`: pixels at 0 or 255 (over/under-exposure).
/// - `glass_ferrule_contrast`: (cladding − ferrule)/(cladding + ferrule + 1): the look (dark
///   fiber on bright ferrule vs the reverse) and contrast loss from haze.
/// - `cladding_radius_px`: magnification; a camera or lens swap changes it.
/// - `center_offset`: distance of the fiber from the frame centre / min(w, h): fixture wear.
/// - `anomaly_score`, `recon_err_q50/q90/q99`: what the model thinks of the frame; NaN here,
///   filled by the inspector with [`set_model_features`]. Drift in these is drift that
///   matters to the verdict.
///
/// A region with no pixels in the frame yields NaN for its features (treated as "no
/// information" by the monitor).
pub fn frame_features(img: &GrayImage, center_in_frame: [f64; 2], radius_px: f64) -> FrameFeatures {
    frame_features_ellipse(img, center_in_frame, [radius_px, radius_px])
}

/// [`frame_features`] for non-square pixels: the cladding is an ellipse with radii
/// `radius_px = [rx, ry]` in frame pixels.
pub fn frame_features_ellipse(
    img: &GrayImage,
    center_in_frame: [f64; 2],
    radius_px: [f64; 2],
) -> FrameFeatures {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut out = [f32::NAN; N_FEATURES];
    if w == 0 || h == 0 || !(radius_px[0] > 0.0 && radius_px[1] > 0.0) {
        return out;
    }
    let px = img.as_raw();
    let mut core = Hist::new();
    let mut clad = Hist::new();
    let mut ferrule = Hist::new();
    let mut outer = Hist::new();
    let mut edge_grad = Moments::default();
    let mut ferrule_lap = Moments::default();
    let mut clipped = 0u64;
    let (inv_rx, inv_ry) = (1.0 / radius_px[0], 1.0 / radius_px[1]);
    for y in 0..h {
        let dy = (y as f64 - center_in_frame[1]) * inv_ry;
        let row = &px[y * w..(y + 1) * w];
        for x in 0..w {
            let v = row[x];
            clipped += u64::from(v == 0 || v == 255);
            let dx = (x as f64 - center_in_frame[0]) * inv_rx;
            let rho = (dx * dx + dy * dy).sqrt();
            let interior = x > 0 && y > 0 && x + 1 < w && y + 1 < h;
            let lap = || {
                let c = 4 * v as i32;
                let s = row[x - 1] as i32
                    + row[x + 1] as i32
                    + px[(y - 1) * w + x] as i32
                    + px[(y + 1) * w + x] as i32;
                (c - s) as f64
            };
            if rho < RHO_CORE {
                core.add(v);
            } else if rho < RHO_CLAD {
                clad.add(v);
            } else if rho < RHO_EDGE {
                if interior {
                    let at = |xx: usize, yy: usize| px[yy * w + xx] as i32;
                    let gx = at(x + 1, y - 1) + 2 * at(x + 1, y) + at(x + 1, y + 1)
                        - at(x - 1, y - 1)
                        - 2 * at(x - 1, y)
                        - at(x - 1, y + 1);
                    let gy = at(x - 1, y + 1) + 2 * at(x, y + 1) + at(x + 1, y + 1)
                        - at(x - 1, y - 1)
                        - 2 * at(x, y - 1)
                        - at(x + 1, y - 1);
                    edge_grad.add(((gx * gx + gy * gy) as f64).sqrt());
                }
            } else if rho < RHO_FERRULE {
                ferrule.add(v);
                if interior {
                    ferrule_lap.add(lap());
                }
            } else {
                outer.add(v);
            }
        }
    }
    let clad_med = clad.quantile(0.5);
    let ferrule_med = ferrule.quantile(0.5);
    out[0] = core.quantile(0.5);
    out[1] = clad_med;
    out[2] = clad.quantile(0.75) - clad.quantile(0.25);
    out[3] = edge_grad.log_mean_sq();
    out[4] = ferrule_med;
    out[5] = ferrule.quantile(0.75) - ferrule.quantile(0.25);
    out[6] = ferrule_lap.log_var();
    out[7] = outer.quantile(0.5);
    out[8] = clipped as f32 / (w * h) as f32;
    out[9] = (clad_med - ferrule_med) / (clad_med + ferrule_med + 1.0);
    out[10] = (0.5 * (radius_px[0] + radius_px[1])) as f32;
    let (ox, oy) = (
        center_in_frame[0] - (w as f64 - 1.0) / 2.0,
        center_in_frame[1] - (h as f64 - 1.0) / 2.0,
    );
    out[11] = (ox.hypot(oy) / w.min(h) as f64) as f32;
    out
}

// ---------------------------------------------------------------------------------------------
// Standardization

/// Per-feature robust standardization fitted on the reference set: z = (x − median) / scale,
/// with scale = IQR / 1.349 (the normal σ), falling back to the standard deviation and then to
/// a small floor. Features with fewer than half finite reference values (e.g. model slots that
/// were never filled) are inactive and left out of the test. A NaN in a candidate frame is
/// replaced by the reference median (no information, no drift).
/// Standardized features are clipped to ±this many robust σ. A defective part's anomaly
/// score and reconstruction error sit far out by design (tens to hundreds of σ); unclipped,
/// two such frames in a window dominate the squared distances and the test reads a normal
/// reject rate as input drift. A real shift moves most frames, which clipping keeps.
pub const Z_CLIP: f64 = 8.0;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standardizer {
    pub center: Vec<f64>,
    pub scale: Vec<f64>,
    /// Indices into [`FEATURE_NAMES`] of the features used.
    pub active: Vec<usize>,
}

impl Standardizer {
    pub fn fit(reference: &[FrameFeatures]) -> Result<Self, DriftError> {
        if reference.is_empty() {
            return Err(DriftError::Empty {
                what: "reference set",
            });
        }
        let (mut center, mut scale, mut active) = (Vec::new(), Vec::new(), Vec::new());
        let mut col: Vec<f64> = Vec::with_capacity(reference.len());
        for k in 0..N_FEATURES {
            col.clear();
            col.extend(
                reference
                    .iter()
                    .map(|f| f[k] as f64)
                    .filter(|v| v.is_finite()),
            );
            if col.len() * 2 < reference.len() || col.len() < 2 {
                continue;
            }
            col.sort_unstable_by(f64::total_cmp);
            let q = |p: f64| crate::metrics::percentile_sorted(&col, p);
            let med = q(50.0);
            let mut s = (q(75.0) - q(25.0)) / 1.349;
            if s <= 1e-12 {
                let mean = col.iter().sum::<f64>() / col.len() as f64;
                s = (col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / col.len() as f64).sqrt();
            }
            if s <= 1e-12 {
                s = 1e-3 * med.abs().max(1e-3);
            }
            active.push(k);
            center.push(med);
            scale.push(s);
        }
        if active.is_empty() {
            return Err(DriftError::Reference(
                "no feature has finite values in at least half of the reference frames".into(),
            ));
        }
        Ok(Self {
            center,
            scale,
            active,
        })
    }

    /// Number of active features (the test's dimension).
    pub fn dim(&self) -> usize {
        self.active.len()
    }

    /// Append the standardized active features of `f` to `out`, clipped to ±[`Z_CLIP`].
    pub fn push_into(&self, f: &FrameFeatures, out: &mut Vec<f64>) {
        for (j, &k) in self.active.iter().enumerate() {
            let v = f[k] as f64;
            out.push(if v.is_finite() {
                ((v - self.center[j]) / self.scale[j]).clamp(-Z_CLIP, Z_CLIP)
            } else {
                0.0
            });
        }
    }
}

/// How far one feature moved, in reference robust σ: 1-D Wasserstein-1 between the
/// standardized reference and candidate values, with the sign of the median shift.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureShift {
    pub name: String,
    pub shift_sigma: f64,
    pub reference_median: f64,
    pub candidate_median: f64,
}

/// Per-feature shifts between standardized clouds (`dim` = standardizer's dim), largest first.
pub fn feature_shifts(
    std: &Standardizer,
    reference_z: &[f64],
    candidate_z: &[f64],
) -> Vec<FeatureShift> {
    let d = std.dim();
    let mut a: Vec<f64> = Vec::new();
    let mut b: Vec<f64> = Vec::new();
    let mut out = Vec::with_capacity(d);
    for j in 0..d {
        a.clear();
        b.clear();
        a.extend(reference_z.chunks_exact(d).map(|r| r[j]));
        b.extend(candidate_z.chunks_exact(d).map(|r| r[j]));
        a.sort_unstable_by(f64::total_cmp);
        b.sort_unstable_by(f64::total_cmp);
        if a.is_empty() || b.is_empty() {
            continue;
        }
        let w1 = wasserstein_1d_pp(&a, &b, 1.0);
        let (ma, mb) = (
            crate::metrics::percentile_sorted(&a, 50.0),
            crate::metrics::percentile_sorted(&b, 50.0),
        );
        let unz = |z: f64| std.center[j] + z * std.scale[j];
        out.push(FeatureShift {
            name: FEATURE_NAMES[std.active[j]].to_string(),
            shift_sigma: if mb < ma { -w1 } else { w1 },
            reference_median: unz(ma),
            candidate_median: unz(mb),
        });
    }
    out.sort_by(|x, y| y.shift_sigma.abs().total_cmp(&x.shift_sigma.abs()));
    out
}

/// The reference set saved at calibration time (shipped in the model bundle) as JSON:
/// `{"feature_names": [...], "frames": [[f32 or null, ...], ...]}` (null = NaN, an unfilled
/// slot). Loading checks that the names match this build's [`FEATURE_NAMES`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceFile {
    pub feature_names: Vec<String>,
    pub frames: Vec<Vec<Option<f32>>>,
}

impl ReferenceFile {
    pub fn from_features(frames: &[FrameFeatures]) -> Self {
        Self {
            feature_names: FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
            frames: frames
                .iter()
                .map(|f| f.iter().map(|&v| v.is_finite().then_some(v)).collect())
                .collect(),
        }
    }

    /// The frames as feature vectors; errors when the names or lengths do not match.
    pub fn to_features(&self) -> Result<Vec<FrameFeatures>, DriftError> {
        if self.feature_names.len() != N_FEATURES
            || self
                .feature_names
                .iter()
                .zip(FEATURE_NAMES)
                .any(|(a, b)| a != b)
        {
            return Err(DriftError::Reference(format!(
                "feature names {:?} do not match this build's {:?}: recompute the reference with this version",
                self.feature_names, FEATURE_NAMES
            )));
        }
        self.frames
            .iter()
            .enumerate()
            .map(|(i, row)| {
                if row.len() != N_FEATURES {
                    return Err(DriftError::Reference(format!(
                        "frame {i} has {} values, expected {N_FEATURES}",
                        row.len()
                    )));
                }
                let mut f = [f32::NAN; N_FEATURES];
                for (dst, v) in f.iter_mut().zip(row) {
                    *dst = v.unwrap_or(f32::NAN);
                }
                Ok(f)
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Offline comparison of two sets

/// Settings of a drift test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DriftConfig {
    /// Frames in the rolling window (daemon).
    pub window: usize,
    /// Run a test every this many frames once the window is full (daemon).
    pub test_every: usize,
    /// Random projection directions.
    pub projections: usize,
    /// Permutations per test.
    pub permutations: usize,
    /// Wasserstein order.
    pub p: f64,
    /// A test is significant when p < alpha.
    pub alpha: f64,
    /// Consecutive significant tests to enter DRIFT.
    pub enter_after: usize,
    /// Consecutive non-significant tests to leave DRIFT.
    pub exit_after: usize,
    pub seed: u64,
}

impl Default for DriftConfig {
    fn default() -> Self {
        Self {
            // Disjoint windows (test_every = window): consecutive tests are independent, so
            // `enter_after` significant tests in a row are independent evidence. Overlapping
            // windows (100 every 25) alarmed once per 3000 untouched frames (docs/drift.md).
            window: 60,
            test_every: 60,
            projections: 32,
            permutations: 199,
            p: 2.0,
            alpha: 0.01,
            enter_after: 3,
            exit_after: 2,
            seed: 0x5eed_d21f,
        }
    }
}

impl DriftConfig {
    /// Check every value; errors name the key.
    pub fn validate(&self) -> Result<(), DriftError> {
        let bad = |key, problem: String| Err(DriftError::Config { key, problem });
        if self.window < 2 {
            return bad("window", format!("{} frames: need at least 2", self.window));
        }
        if self.test_every == 0 {
            return bad("test_every", "must be ≥ 1".into());
        }
        if self.projections == 0 {
            return bad("projections", "must be ≥ 1".into());
        }
        if self.permutations == 0 {
            return bad("permutations", "must be ≥ 1".into());
        }
        if !(self.p >= 1.0 && self.p.is_finite()) {
            return bad("p", format!("{} must be a finite number ≥ 1", self.p));
        }
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            return bad("alpha", format!("{} must be in (0, 1)", self.alpha));
        }
        if (1.0 / (1 + self.permutations) as f64) >= self.alpha {
            return bad(
                "permutations",
                format!(
                    "{} permutations cannot reach p < alpha = {}: use at least {}",
                    self.permutations,
                    self.alpha,
                    (1.0 / self.alpha).ceil() as usize
                ),
            );
        }
        if self.enter_after == 0 || self.exit_after == 0 {
            return bad(
                "enter_after",
                "enter_after and exit_after must be ≥ 1".into(),
            );
        }
        Ok(())
    }
}

/// Outcome of comparing two sets of frames.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub reference_frames: usize,
    pub candidate_frames: usize,
    /// Features used (after dropping inactive ones).
    pub features: Vec<String>,
    pub distance: f64,
    pub p_value: f64,
    pub permutations: usize,
    pub projections: usize,
    pub alpha: f64,
    pub drift: bool,
    /// Largest movers first.
    pub shifts: Vec<FeatureShift>,
}

/// Compare two sets of frame features (standardized on the reference).
pub fn compare(
    reference: &[FrameFeatures],
    candidate: &[FrameFeatures],
    cfg: &DriftConfig,
) -> Result<Comparison, DriftError> {
    cfg.validate()?;
    if candidate.is_empty() {
        return Err(DriftError::Empty {
            what: "candidate set",
        });
    }
    let std = Standardizer::fit(reference)?;
    let d = std.dim();
    let (mut rz, mut cz) = (Vec::new(), Vec::new());
    reference.iter().for_each(|f| std.push_into(f, &mut rz));
    candidate.iter().for_each(|f| std.push_into(f, &mut cz));
    let proj = random_projections(d, cfg.projections, cfg.seed);
    let t = permutation_test(
        &rz,
        &cz,
        d,
        &proj,
        cfg.p,
        cfg.permutations,
        cfg.seed ^ 0x9e37_79b9_7f4a_7c15,
    )?;
    Ok(Comparison {
        reference_frames: reference.len(),
        candidate_frames: candidate.len(),
        features: std
            .active
            .iter()
            .map(|&k| FEATURE_NAMES[k].to_string())
            .collect(),
        distance: t.distance,
        p_value: t.p_value,
        permutations: t.permutations,
        projections: cfg.projections,
        alpha: cfg.alpha,
        drift: t.p_value < cfg.alpha,
        shifts: feature_shifts(&std, &rz, &cz),
    })
}

// ---------------------------------------------------------------------------------------------
// Daemon monitor

/// Whether the station's input currently looks like the reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriftState {
    Ok,
    Drift,
}

/// One periodic test of the rolling window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftReport {
    pub distance: f64,
    pub p_value: f64,
    pub significant: bool,
    /// State after this test (with hysteresis).
    pub state: DriftState,
    /// Whether this test changed the state.
    pub changed: bool,
    pub window: usize,
    /// Frames pushed so far.
    pub frame_count: u64,
    /// The three largest movers.
    pub top_shifts: Vec<FeatureShift>,
}

/// Rolling-window drift monitor for the daemon.
///
/// Built from the reference features (saved at calibration, shipped in the model bundle) and
/// a [`DriftConfig`]. [`push`](Self::push) one feature vector per inspected frame; once the
/// window is full, every `test_every` frames it runs a permutation test of the window against
/// the reference and returns a [`DriftReport`]. The state enters DRIFT after `enter_after`
/// consecutive significant tests and leaves it after `exit_after` consecutive non-significant
/// ones, so one odd frame (or one unlucky test) does not flap it. State changes are logged
/// here (warn! on entering, info! on leaving); callers expose the state (metrics, journal,
/// GPIO) without logging it again.
#[derive(Debug, Clone)]
pub struct DriftMonitor {
    cfg: DriftConfig,
    std: Standardizer,
    reference_z: Vec<f64>,
    projections: Vec<f64>,
    /// Ring buffer of standardized frames, `window × dim`.
    ring: Vec<f64>,
    ring_head: usize,
    ring_len: usize,
    since_test: usize,
    frame_count: u64,
    state: DriftState,
    streak: usize,
    window_z: Vec<f64>,
    engine: PermutationTest,
    rng: ChaCha8Rng,
    row: Vec<f64>,
}

impl DriftMonitor {
    pub fn new(reference: &[FrameFeatures], cfg: DriftConfig) -> Result<Self, DriftError> {
        cfg.validate()?;
        if reference.len() < cfg.window.min(20) {
            return Err(DriftError::Reference(format!(
                "{} reference frames is too few: need at least {}",
                reference.len(),
                cfg.window.min(20)
            )));
        }
        let std = Standardizer::fit(reference)?;
        let d = std.dim();
        let mut reference_z = Vec::with_capacity(reference.len() * d);
        reference
            .iter()
            .for_each(|f| std.push_into(f, &mut reference_z));
        let projections = random_projections(d, cfg.projections, cfg.seed);
        Ok(Self {
            ring: vec![0.0; cfg.window * d],
            window_z: Vec::with_capacity(cfg.window * d),
            row: Vec::with_capacity(d),
            rng: ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x9e37_79b9_7f4a_7c15),
            cfg,
            std,
            reference_z,
            projections,
            ring_head: 0,
            ring_len: 0,
            since_test: 0,
            frame_count: 0,
            state: DriftState::Ok,
            streak: 0,
            engine: PermutationTest::new(),
        })
    }

    pub fn state(&self) -> DriftState {
        self.state
    }

    pub fn config(&self) -> &DriftConfig {
        &self.cfg
    }

    /// Names of the features the monitor uses.
    pub fn active_features(&self) -> Vec<&'static str> {
        self.std.active.iter().map(|&k| FEATURE_NAMES[k]).collect()
    }

    /// Add one frame; returns a report when a test ran.
    pub fn push(&mut self, features: &FrameFeatures) -> Option<DriftReport> {
        let d = self.std.dim();
        self.row.clear();
        self.std.push_into(features, &mut self.row);
        self.ring[self.ring_head * d..(self.ring_head + 1) * d].copy_from_slice(&self.row);
        self.ring_head = (self.ring_head + 1) % self.cfg.window;
        self.ring_len = (self.ring_len + 1).min(self.cfg.window);
        self.frame_count += 1;
        self.since_test += 1;
        if self.ring_len < self.cfg.window || self.since_test < self.cfg.test_every {
            return None;
        }
        self.since_test = 0;
        self.window_z.clear();
        self.window_z.extend_from_slice(&self.ring);
        let result = self.engine.run(
            &self.reference_z,
            &self.window_z,
            d,
            &self.projections,
            self.cfg.p,
            self.cfg.permutations,
            &mut self.rng,
        );
        let t = match result {
            Ok(t) => t,
            // infallible in practice: shapes are fixed at construction and validated.
            Err(e) => {
                tracing::warn!("drift test skipped: {e}");
                return None;
            }
        };
        let significant = t.p_value < self.cfg.alpha;
        let before = self.state;
        match (self.state, significant) {
            (DriftState::Ok, true) | (DriftState::Drift, false) => self.streak += 1,
            _ => self.streak = 0,
        }
        if self.state == DriftState::Ok && self.streak >= self.cfg.enter_after {
            self.state = DriftState::Drift;
            self.streak = 0;
        } else if self.state == DriftState::Drift && self.streak >= self.cfg.exit_after {
            self.state = DriftState::Ok;
            self.streak = 0;
        }
        let changed = before != self.state;
        let mut top_shifts = if changed || significant {
            feature_shifts(&self.std, &self.reference_z, &self.window_z)
        } else {
            Vec::new()
        };
        top_shifts.truncate(3);
        if changed {
            let movers: Vec<String> = top_shifts
                .iter()
                .map(|s| format!("{} {:+.1}σ", s.name, s.shift_sigma))
                .collect();
            match self.state {
                DriftState::Drift => tracing::warn!(
                    distance = t.distance,
                    p_value = t.p_value,
                    "input drift: recent frames differ from the calibration reference (moved most: {})",
                    movers.join(", ")
                ),
                DriftState::Ok => tracing::info!(
                    distance = t.distance,
                    p_value = t.p_value,
                    "input drift cleared"
                ),
            }
        }
        Some(DriftReport {
            distance: t.distance,
            p_value: t.p_value,
            significant,
            state: self.state,
            changed,
            window: self.cfg.window,
            frame_count: self.frame_count,
            top_shifts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn w1d_unequal_sizes_by_hand() {
        // u = {0, 1}, v = {0, 0.5, 1}: quantile breakpoints 1/3, 1/2, 2/3.
        // |F⁻¹ − G⁻¹| = 0 on (0,1/3], 0.5 on (1/3,1/2], 0.5 on (1/2,2/3], 0 on (2/3,1].
        let w = wasserstein_1d_pp(&[0.0, 1.0], &[0.0, 0.5, 1.0], 1.0);
        assert!((w - 1.0 / 6.0).abs() < 1e-15, "{w}");
        let w2 = wasserstein_1d_pp(&[0.0, 1.0], &[0.0, 0.5, 1.0], 2.0);
        assert!((w2 - 0.25 / 3.0).abs() < 1e-15, "{w2}");
        assert_eq!(wasserstein_1d_pp(&[1.0, 2.0], &[1.0, 2.0], 2.0), 0.0);
        // A shift by c gives W_p^p = c^p.
        let w = wasserstein_1d_pp(&[0.0, 1.0, 5.0], &[2.0, 3.0, 7.0], 2.0);
        assert!((w - 4.0).abs() < 1e-12);
    }

    #[test]
    fn projections_are_unit() {
        let p = random_projections(5, 7, 3);
        for row in p.chunks(5) {
            let n: f64 = row.iter().map(|v| v * v).sum();
            assert!((n - 1.0).abs() < 1e-12);
        }
        assert_eq!(p, random_projections(5, 7, 3));
    }

    #[test]
    fn config_validation_names_keys() {
        let c = DriftConfig {
            permutations: 50,
            alpha: 0.01,
            ..Default::default()
        };
        assert!(matches!(
            c.validate(),
            Err(DriftError::Config {
                key: "permutations",
                ..
            })
        ));
        assert!(DriftConfig::default().validate().is_ok());
    }
}
