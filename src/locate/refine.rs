//! Sub-pixel cladding edge along rays: the glass boundary, the median radial profile, and the
//! focus measure.
//!
//! In: the full-resolution frame, the pixel aspect, a circle (circle space) and a search
//! window or a [`StepRule`]. Out: one [`EdgePoint`] per ray that stays inside the frame —
//! either the strongest edge of the expected polarity inside a window (parabola-interpolated
//! maximum of the smoothed profile derivative; the first, coarse pass) or the ray's crossing
//! of the glass boundary chosen for its angular sector by [`glass_step`] (the refining pass)
//! — and, for a fitted circle, the contrast of the median radial profile across the cladding
//! edge and its sharpness (the focus measure, [`Rays::edge_focus`]).

use image::GrayImage;

/// Profile sampling step along a ray (circle-space x-pixels).
pub(crate) const STEP_PX: f64 = 0.5;
/// Gaussian smoothing of the profile for edge detection: sigma in samples (1 px).
const SMOOTH_SIGMA_SAMPLES: f64 = 1.0;
const SMOOTH_HALF: usize = 3;
/// Least smoothing of the focus measure's profile: sigma in samples (0.5 px).
const SHARP_SIGMA_SAMPLES: f64 = 1.0;

/// Angular sectors in which the glass boundary is chosen separately: rims with relief
/// (lit from one side) change which of two neighbouring edges is the stronger around the
/// circumference, and a chip or dust spoils only its own sector.
pub(crate) const SECTORS: usize = 16;
/// A step counts as the glass boundary when it carries at least this fraction of the whole
/// glass-to-outside change (an epoxy ring splits that change in two).
const MIN_STEP_FRACTION: f64 = 0.3;
/// A steepest point within this distance (px) of a step's half-way crossing is taken as the
/// boundary instead of the crossing.
const SNAP_PX: f64 = 1.0;
/// Two derivative peaks belong to one step unless the derivative between them falls below
/// this fraction of the smaller one.
const VALLEY_FRACTION: f64 = 0.5;

/// How the glass boundary is told apart from rim lines and an epoxy ring on a radial
/// profile (all lengths in circle-space x-pixels).
#[derive(Debug, Clone, Copy)]
pub(crate) struct StepRule {
    /// Half-width of the zone around the circle in which the boundary is searched.
    pub zone_px: f64,
    /// Width of the plateaus just beyond the zone whose levels are "glass" and "outside".
    pub plateau_px: f64,
    /// Bright or dark lines (rims) narrower than this are removed before steps are measured.
    pub line_px: f64,
    /// Smallest glass-to-outside change (gray levels) worth a choice, for the all-rays median.
    pub min_rise: f64,
}

/// The glass boundary as chosen on a median profile, in sample indices of the stored
/// profiles (sample `i` lies at distance `t_start + i * STEP_PX` from the cast origin).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Boundary {
    /// Where the cleaned profile crosses half-way between the levels before and after the
    /// step.
    pub pos: f64,
    /// Samples whose mean is the level before the step (inclusive range)...
    pub before: (usize, usize),
    /// ...and after it. Per ray, the crossing is searched between the two.
    pub after: (usize, usize),
    /// When the step has a clear steepest point next to its half-way crossing: that point
    /// (samples) and the half-width (samples) of the window in which each ray finds its own.
    pub steepest: Option<(f64, f64)>,
}

/// Edge found on one ray.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EdgePoint {
    /// Circle-space position.
    pub p: [f64; 2],
    /// Polarity-signed slope (intensity per px) at the edge; > 0 means the expected polarity.
    pub strength: f64,
    /// Index of the ray's stored profile.
    pub ray: usize,
    /// Where the ray's steepest point lies beyond `p` along the ray (px), when its sector's
    /// step has a clear steepest point (see [`Boundary::steepest`]).
    pub steep_dt: Option<f64>,
}

/// Ray-casting scratch buffers.
pub(crate) struct Rays {
    kernel: Vec<f64>,
    /// The focus measure's two smoothings (rebuilt for each frame's scale).
    focus_kernel: Vec<f64>,
    focus_kernel_sharp: Vec<f64>,
    raw: Vec<f64>,
    smooth: Vec<f64>,
    deriv: Vec<f64>,
    tmp: Vec<f64>,
    /// Profiles of the observed rays, `profile_len` samples each, from `t_start`.
    profiles: Vec<f64>,
    /// Unit direction of each stored ray.
    dirs: Vec<[f64; 2]>,
    profile_len: usize,
    t_start: f64,
    origin: [f64; 2],
    median: Vec<f64>,
    median_smooth: Vec<f64>,
    clean: Vec<f64>,
    morph: MorphBufs,
    /// Angular sector of each stored ray.
    sectors: Vec<usize>,
    /// The glass boundary chosen in each sector (see [`Rays::choose_boundaries`]).
    boundaries: Vec<Option<Boundary>>,
    pub points: Vec<EdgePoint>,
}

impl Default for Rays {
    fn default() -> Self {
        Self {
            kernel: gauss_kernel(SMOOTH_SIGMA_SAMPLES, SMOOTH_HALF),
            focus_kernel: Vec::new(),
            focus_kernel_sharp: Vec::new(),
            raw: Vec::new(),
            smooth: Vec::new(),
            deriv: Vec::new(),
            tmp: Vec::new(),
            profiles: Vec::new(),
            dirs: Vec::new(),
            profile_len: 0,
            t_start: 0.0,
            origin: [0.0; 2],
            median: Vec::new(),
            median_smooth: Vec::new(),
            clean: Vec::new(),
            morph: MorphBufs::default(),
            sectors: Vec::new(),
            boundaries: Vec::new(),
            points: Vec::new(),
        }
    }
}

fn gauss_kernel(sigma: f64, half: usize) -> Vec<f64> {
    let mut k = Vec::new();
    fill_gauss_kernel(sigma, half, &mut k);
    k
}

/// A normalized Gaussian kernel of `2 * half + 1` taps into `k` (reusing its allocation).
fn fill_gauss_kernel(sigma: f64, half: usize, k: &mut Vec<f64>) {
    k.clear();
    k.extend((0..=2 * half).map(|i| {
        let d = i as f64 - half as f64;
        (-0.5 * d * d / (sigma * sigma)).exp()
    }));
    let s: f64 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= s);
}

/// Bilinear sample of the frame at frame coordinates (pixel centers on integers); the
/// caller guarantees 0 <= x <= w-1, 0 <= y <= h-1.
#[inline]
fn bilinear(raw: &[u8], w: usize, h: usize, x: f64, y: f64) -> f64 {
    let x0 = (x as usize).min(w.saturating_sub(2));
    let y0 = (y as usize).min(h.saturating_sub(2));
    let tx = x - x0 as f64;
    let ty = y - y0 as f64;
    let i = y0 * w + x0;
    let a = raw[i] as f64;
    let b = raw[i + 1] as f64;
    let c = raw[i + w] as f64;
    let d = raw[i + w + 1] as f64;
    let top = a + (b - a) * tx;
    let bot = c + (d - c) * tx;
    top + (bot - top) * ty
}

/// `dst = src * k` (same length; the `k.len()/2` samples at each end are left 0).
fn convolve(src: &[f64], k: &[f64], dst: &mut Vec<f64>) {
    let half = k.len() / 2;
    let n = src.len();
    dst.clear();
    dst.resize(n, 0.0);
    if n < 2 * half + 1 {
        return;
    }
    // Tap by tap over all outputs (independent sums side by side, vectorized), each output
    // summed in the same order and from the same start as an iterator's `sum` (-0.0): the
    // same values as one dot product per output.
    let out = &mut dst[half..n - half];
    out.iter_mut().for_each(|o| *o = -0.0);
    for (j, &kj) in k.iter().enumerate() {
        for (o, &v) in out.iter_mut().zip(&src[j..]) {
            *o += kj * v;
        }
    }
}

/// Sub-sample offset of a parabola's vertex through (d[i-1], d[i], d[i+1]), in samples.
fn parabola_offset(dm: f64, d0: f64, dp: f64) -> f64 {
    let denom = dm - 2.0 * d0 + dp;
    if denom < -1e-12 {
        (0.5 * (dm - dp) / denom).clamp(-0.5, 0.5)
    } else {
        0.0
    }
}

impl Rays {
    /// Cast `n_rays` rays from `center` (circle space), sampling each from radius `t_from` to
    /// `t_to` every [`STEP_PX`], and keep the profiles of the rays that stay inside the frame.
    /// Returns how many did.
    pub fn cast(
        &mut self,
        img: &GrayImage,
        aspect: f64,
        center: [f64; 2],
        (t_from, t_to): (f64, f64),
        n_rays: usize,
    ) -> usize {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let raw_img = img.as_raw();
        self.points.clear();
        self.profiles.clear();
        self.dirs.clear();
        self.sectors.clear();
        self.boundaries.clear();
        let t_start = t_from.max(1.0);
        let n = ((t_to - t_start) / STEP_PX).ceil().max(8.0) as usize + 1;
        self.profile_len = n;
        self.t_start = t_start;
        self.origin = center;
        let [cx, cy] = center;
        let (xmax, ymax) = ((w - 1) as f64, (h - 1) as f64);
        let t_last = t_start + (n - 1) as f64 * STEP_PX;
        for k in 0..n_rays {
            let th = k as f64 / n_rays as f64 * std::f64::consts::TAU;
            let (c, s) = (th.cos(), th.sin());
            let inside = |t: f64| {
                let (x, y) = (cx + t * c, (cy + t * s) * aspect);
                x >= 0.0 && y >= 0.0 && x <= xmax && y <= ymax
            };
            if !inside(t_start) || !inside(t_last) {
                continue;
            }
            for i in 0..n {
                let t = t_start + i as f64 * STEP_PX;
                self.profiles
                    .push(bilinear(raw_img, w, h, cx + t * c, (cy + t * s) * aspect));
            }
            self.dirs.push([c, s]);
            self.sectors.push(k * SECTORS / n_rays);
        }
        self.dirs.len()
    }

    /// On every stored ray, the strongest edge of `polarity` with radius in
    /// `[r0 - window, r0 + window]` (into `self.points`).
    pub fn find_edges(&mut self, r0: f64, window: f64, polarity: f64) {
        self.points.clear();
        let [cx, cy] = self.origin;
        for ray in 0..self.dirs.len() {
            let n = self.profile_len;
            self.raw.clear();
            self.raw
                .extend_from_slice(&self.profiles[ray * n..(ray + 1) * n]);
            if let Some((t_edge, strength)) = self.edge_on_profile(r0, window, polarity) {
                let [c, s] = self.dirs[ray];
                self.points.push(EdgePoint {
                    p: [cx + t_edge * c, cy + t_edge * s],
                    strength,
                    ray,
                    steep_dt: None,
                });
            }
        }
    }

    /// On every stored ray, the strongest thin line of `polarity` (+1 bright, −1 dark) with
    /// radius in `[r0 - window, r0 + window]` (into `self.points`): on the smoothed profile,
    /// how far a sample stands out of the mean of the two samples `half_px` either side of it
    /// (gray levels, the point's `strength`), to sub-pixel by a parabola. An edge that is only
    /// a line — glass and ferrule equally bright — has no step for [`Rays::find_edges`] to
    /// find, but its line stands out on every ray.
    pub fn find_lines(&mut self, r0: f64, window: f64, polarity: f64, half_px: f64) {
        self.points.clear();
        let [cx, cy] = self.origin;
        let k = ((half_px / STEP_PX).round() as usize).max(2);
        let n = self.profile_len;
        let t_start = self.t_start;
        let idx = |t: f64| ((t - t_start) / STEP_PX).round().max(0.0) as usize;
        let lo = idx(r0 - window).max(SMOOTH_HALF + k + 1);
        let hi = idx(r0 + window).min(n.saturating_sub(SMOOTH_HALF + k + 2));
        if lo >= hi {
            return;
        }
        for ray in 0..self.dirs.len() {
            convolve(
                &self.profiles[ray * n..(ray + 1) * n],
                &self.kernel,
                &mut self.smooth,
            );
            let s = &self.smooth;
            let depth = |i: usize| polarity * (s[i] - 0.5 * (s[i - k] + s[i + k]));
            let mut best = lo;
            let mut best_depth = depth(lo);
            for i in lo + 1..=hi {
                let d = depth(i);
                if d > best_depth {
                    best = i;
                    best_depth = d;
                }
            }
            let (dm, d0, dp) = (depth(best - 1), best_depth, depth(best + 1));
            let delta = parabola_offset(dm, d0, dp);
            let t = t_start + (best as f64 + delta) * STEP_PX;
            let [c, si] = self.dirs[ray];
            self.points.push(EdgePoint {
                p: [cx + t * c, cy + t * si],
                strength: d0 - 0.25 * (dm - dp) * delta,
                ray,
                steep_dt: None,
            });
        }
    }

    /// Strongest edge of `polarity` within the window on the profile in `self.raw`:
    /// (distance from the origin, polarity-signed slope).
    fn edge_on_profile(&mut self, r0: f64, window: f64, polarity: f64) -> Option<(f64, f64)> {
        let n = self.raw.len();
        convolve(&self.raw, &self.kernel, &mut self.smooth);
        self.deriv.clear();
        self.deriv.resize(n, 0.0);
        let lo_valid = SMOOTH_HALF + 1;
        let hi_valid = n.saturating_sub(SMOOTH_HALF + 1);
        for i in lo_valid..hi_valid {
            self.deriv[i] = polarity * (self.smooth[i + 1] - self.smooth[i - 1]) / (2.0 * STEP_PX);
        }
        let t_start = self.t_start;
        let idx = |t: f64| ((t - t_start) / STEP_PX).round().max(0.0) as usize;
        let lo = idx(r0 - window).max(lo_valid + 1);
        let hi = idx(r0 + window).min(hi_valid.saturating_sub(2));
        if lo >= hi {
            return None;
        }
        let mut best = lo;
        for i in lo..=hi {
            if self.deriv[i] > self.deriv[best] {
                best = i;
            }
        }
        let (dm, d0, dp) = (self.deriv[best - 1], self.deriv[best], self.deriv[best + 1]);
        let delta = parabola_offset(dm, d0, dp);
        let t_edge = t_start + (best as f64 + delta) * STEP_PX;
        let strength = d0 - 0.25 * (dm - dp) * delta;
        Some((t_edge, strength))
    }

    /// Median over rays of the profiles across circle (`center`, `r`), sampled every
    /// [`STEP_PX`] over ±`half_span_px` (into `self.median`; sample `m` is the circle).
    /// `rays`: indices of stored rays, or `None` for all. Returns `m`, or `None` when too few
    /// rays cover the span.
    fn median_profile(
        &mut self,
        center: [f64; 2],
        r: f64,
        rays: Option<&[usize]>,
        half_span_px: f64,
    ) -> Option<usize> {
        let n_rays = rays.map_or(self.dirs.len(), <[usize]>::len);
        if n_rays < 8 {
            return None;
        }
        let m = (half_span_px / STEP_PX).floor() as usize;
        let len = 2 * m + 1;
        let shift = [center[0] - self.origin[0], center[1] - self.origin[1]];
        self.median.clear();
        for j in 0..len {
            let rho = (j as f64 - m as f64) * STEP_PX;
            self.tmp.clear();
            for q in 0..n_rays {
                let k = rays.map_or(q, |v| v[q]);
                let [c, s] = self.dirs[k];
                // Distance along ray k (from the cast origin) of the point at radius
                // r + rho from `center`, to first order in the (sub-pixel) center shift.
                let t = r + rho + shift[0] * c + shift[1] * s;
                let x = (t - self.t_start) / STEP_PX;
                if x < 0.0 || x > (self.profile_len - 1) as f64 {
                    continue;
                }
                let i = (x as usize).min(self.profile_len - 2);
                let f = x - i as f64;
                let p = &self.profiles[k * self.profile_len..(k + 1) * self.profile_len];
                self.tmp.push(p[i] + (p[i + 1] - p[i]) * f);
            }
            if self.tmp.len() < n_rays / 2 {
                return None;
            }
            self.median.push(super::fit::median_in_place(&mut self.tmp));
        }
        Some(m)
    }

    /// Choose where the glass boundary lies around circle (`origin`, `r`): on the median
    /// profile of every angular sector (and of all rays, the fallback for a sector with too
    /// few rays or no clear step) by [`glass_step`]. Fills `self.boundaries` (one per
    /// sector, read by [`Rays::find_boundary_edges`]) and returns the all-rays choice.
    pub fn choose_boundaries(
        &mut self,
        r: f64,
        rule: &StepRule,
        polarity: f64,
    ) -> Option<Boundary> {
        let len = self.profile_len;
        let n_rays = self.dirs.len();
        let m_r = (r - self.t_start) / STEP_PX;
        // All rays.
        self.median.clear();
        for i in 0..len {
            self.tmp.clear();
            self.tmp
                .extend((0..n_rays).map(|k| self.profiles[k * len + i]));
            self.median.push(super::fit::median_in_place(&mut self.tmp));
        }
        let global = if n_rays >= 8 {
            self.step_on_median(m_r, rule, polarity)
        } else {
            None
        };
        // Each sector.
        self.boundaries.clear();
        for sector in 0..SECTORS {
            // Rays are stored in angle order, so a sector's rays are contiguous.
            let first = self.sectors.partition_point(|&s| s < sector);
            let end = self.sectors.partition_point(|&s| s <= sector);
            let members = end - first;
            let mut choice = None;
            if members >= 3 {
                self.median.clear();
                for i in 0..len {
                    self.tmp.clear();
                    self.tmp
                        .extend((first..end).map(|k| self.profiles[k * len + i]));
                    self.median.push(small_median(&mut self.tmp));
                }
                let sector_rule = StepRule {
                    min_rise: rule.min_rise * (n_rays as f64 / members as f64).sqrt(),
                    ..*rule
                };
                choice = self.step_on_median(m_r, &sector_rule, polarity);
            }
            self.boundaries.push(choice.or(global));
        }
        global
    }

    /// Distance from the cast origin (px) of profile sample `pos`.
    pub fn radius_at(&self, pos: f64) -> f64 {
        self.t_start + pos * STEP_PX
    }

    /// [`glass_step`] on the cleaned `self.median` (sample `m_r` is the circle).
    fn step_on_median(&mut self, m_r: f64, rule: &StepRule, polarity: f64) -> Option<Boundary> {
        let half_line = line_half_samples(rule.line_px);
        clean_profile(
            &self.median,
            &self.kernel,
            polarity,
            half_line,
            &mut self.median_smooth,
            &mut self.morph,
            &mut self.clean,
        );
        glass_step(&self.clean, &self.median_smooth, m_r, rule, &mut self.deriv)
    }

    /// On every stored ray, the glass boundary of its sector's choice: the ray's cleaned
    /// profile (as for the choice) crossing half-way between its own levels before and
    /// after the step, the crossing nearest to the sector's (into `self.points`; strength:
    /// the slope there). Rays of a sector without a choice get none.
    pub fn find_boundary_edges(&mut self, rule: &StepRule, polarity: f64) {
        self.points.clear();
        let [cx, cy] = self.origin;
        let n = self.profile_len;
        let half_line = line_half_samples(rule.line_px);
        for ray in 0..self.dirs.len() {
            let Some(b) = self.boundaries.get(self.sectors[ray]).copied().flatten() else {
                continue;
            };
            clean_profile(
                &self.profiles[ray * n..(ray + 1) * n],
                &self.kernel,
                polarity,
                half_line,
                &mut self.smooth,
                &mut self.morph,
                &mut self.clean,
            );
            let Some((pos, slope)) = half_crossing(&self.clean, &self.smooth, &b) else {
                continue;
            };
            let steep_dt = b.steepest.and_then(|(peak, half)| {
                steepest(&self.smooth, peak, half, false).map(|(q, _)| (q - pos) * STEP_PX)
            });
            let t_edge = self.t_start + pos * STEP_PX;
            let [c, s] = self.dirs[ray];
            self.points.push(EdgePoint {
                p: [cx + t_edge * c, cy + t_edge * s],
                strength: slope,
                steep_dt,
                ray,
            });
        }
    }

    /// The step height between the plateaus `plateau_px` inside and outside circle
    /// (`center`, `r`), from the median profile over `rays` (polarity-signed: inner plateau
    /// to outer).
    pub fn edge_contrast(
        &mut self,
        center: [f64; 2],
        r: f64,
        rays: &[usize],
        plateau_px: (f64, f64),
        polarity: f64,
    ) -> Option<f64> {
        let m = self.median_profile(center, r, Some(rays), plateau_px.1 + 1.0)?;
        let len = self.median.len();
        let prof = &self.median;
        let index =
            |rho: f64| ((rho / STEP_PX).round() + m as f64).clamp(0.0, (len - 1) as f64) as usize;
        let mean_over = |a: f64, b: f64| -> f64 {
            let sl = &prof[index(a)..=index(b)];
            sl.iter().sum::<f64>() / sl.len() as f64
        };
        let inner = mean_over(-plateau_px.1, -plateau_px.0);
        let outer = mean_over(plateau_px.0, plateau_px.1);
        Some(polarity * (outer - inner))
    }

    /// Focus measure of the edge of circle (`center`, `r`) in `img`, in [0, 1]: casts its
    /// own profiles around that circle, then [`Rays::edge_focus_on_stored`]. `None` when fewer
    /// than 8 rays stay inside the frame.
    #[allow(clippy::too_many_arguments)] // all plain numbers of one measurement
    pub fn edge_focus(
        &mut self,
        img: &GrayImage,
        aspect: f64,
        center: [f64; 2],
        r: f64,
        n_rays: usize,
        range_px: f64,
        smooth_blur_px: (f64, f64),
    ) -> Option<f64> {
        let half_span = self.focus_kernels(range_px, smooth_blur_px);
        self.cast(
            img,
            aspect,
            center,
            (r - half_span - 1.0, r + half_span + 1.0),
            n_rays,
        );
        self.edge_focus_on_stored(center, r, range_px, smooth_blur_px)
    }

    /// Fill the two focus kernels; returns the half span (px) of profile they need around
    /// the edge.
    fn focus_kernels(&mut self, range_px: f64, (smooth_px, blur_px): (f64, f64)) -> f64 {
        let sigma_a = (smooth_px / STEP_PX).max(SHARP_SIGMA_SAMPLES);
        let sigma_b = (sigma_a.powi(2) + (blur_px / STEP_PX).powi(2)).sqrt();
        let (half_a, half_b) = (
            (3.0 * sigma_a).ceil() as usize,
            (3.0 * sigma_b).ceil() as usize,
        );
        fill_gauss_kernel(sigma_a, half_a, &mut self.focus_kernel_sharp);
        fill_gauss_kernel(sigma_b, half_b, &mut self.focus_kernel);
        range_px + (half_b + 2) as f64 * STEP_PX
    }

    /// Focus measure of the edge of circle (`center`, `r`), in [0, 1], from the profiles
    /// already stored (cast from any origin near `center` over a span that covers the edge ±
    /// the measurement's reach): their median across that circle, its steepest slope within ±
    /// `range_px` of the edge, smoothed by `smooth_px` (at least half a pixel), against the
    /// steepest slope after a further blur of `blur_px`. For an edge blurred by sigma
    /// (smoothing included) the ratio q of the two is sigma / sqrt(sigma² + blur²), and the
    /// measure is sqrt(1 - q²) = blur / sqrt(sigma² + blur²). `None` when fewer than 8 rays
    /// are stored or fewer than half of them cover the span.
    pub fn edge_focus_on_stored(
        &mut self,
        center: [f64; 2],
        r: f64,
        range_px: f64,
        smooth_blur_px: (f64, f64),
    ) -> Option<f64> {
        let half_span = self.focus_kernels(range_px, smooth_blur_px);
        let half_b = self.focus_kernel.len() / 2;
        let m = self.median_profile(center, r, None, half_span)?;
        let len = self.median.len();
        convolve(
            &self.median,
            &self.focus_kernel_sharp,
            &mut self.median_smooth,
        );
        convolve(&self.median, &self.focus_kernel, &mut self.clean);
        let reach = (range_px / STEP_PX).ceil() as usize;
        let (a, b) = (
            m.saturating_sub(reach).max(half_b + 1),
            (m + reach).min(len.saturating_sub(half_b + 2)),
        );
        let (mut s_sharp, mut s_blur) = (0.0f64, 0.0f64);
        for k in a..=b {
            s_sharp = s_sharp.max((self.median_smooth[k + 1] - self.median_smooth[k - 1]).abs());
            s_blur = s_blur.max((self.clean[k + 1] - self.clean[k - 1]).abs());
        }
        if s_sharp <= 1e-9 {
            // A flat profile: no edge to be sharp.
            return Some(0.0);
        }
        let q = (s_blur / s_sharp).min(1.0);
        Some((1.0 - q * q).sqrt())
    }
}

/// About this many neighbour pairs make the noise estimate: every third row of a 640x480
/// frame, fewer rows of larger frames (the median of 10⁵ differences is as good as of 3·10⁵,
/// and the cost then does not grow with the frame).
const NOISE_PAIRS: usize = 110_000;

/// Every how many rows [`noise_sigma`] takes one: 3, or more on frames larger than ~640x480.
fn noise_row_step(w: usize, h: usize) -> usize {
    (h * w.saturating_sub(1)).div_ceil(NOISE_PAIRS).max(3)
}

/// Sensor noise estimate of a frame (gray levels): 1.4826·MAD of horizontal neighbour
/// differences / √2, on every third row ([`noise_row_step`] on larger frames).
pub(crate) fn noise_sigma(img: &GrayImage, hist: &mut Vec<u32>) -> f64 {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let raw = img.as_raw();
    if w < 2 {
        return 0.0;
    }
    // four histograms filled in turn (consecutive increments of one bin do not wait on each
    // other), then added up: the same counts as one
    hist.clear();
    hist.resize(4 * 256, 0);
    let mut total = 0u32;
    for y in (0..h).step_by(noise_row_step(w, h)) {
        let row = &raw[y * w..(y + 1) * w];
        let (a, b) = (&row[..w - 1], &row[1..]);
        let mut quads_a = a.chunks_exact(4);
        let mut quads_b = b.chunks_exact(4);
        for (qa, qb) in quads_a.by_ref().zip(quads_b.by_ref()) {
            hist[qa[0].abs_diff(qb[0]) as usize] += 1;
            hist[256 + qa[1].abs_diff(qb[1]) as usize] += 1;
            hist[512 + qa[2].abs_diff(qb[2]) as usize] += 1;
            hist[768 + qa[3].abs_diff(qb[3]) as usize] += 1;
        }
        for (&u, &v) in quads_a.remainder().iter().zip(quads_b.remainder()) {
            hist[u.abs_diff(v) as usize] += 1;
        }
        total += (w - 1) as u32;
    }
    for b in 0..256 {
        hist[b] += hist[256 + b] + hist[512 + b] + hist[768 + b];
    }
    hist.truncate(256);
    // Median of |d| with linear interpolation inside the integer bin.
    let half = total as f64 / 2.0;
    let mut acc = 0.0;
    let mut med = 0.0;
    for (b, &c) in hist.iter().enumerate() {
        let next = acc + c as f64;
        if next >= half && c > 0 {
            // |d| is integer: spread bin b over [b - 0.5, b + 0.5] (bin 0 over [0, 0.5]).
            let (lo, width) = if b == 0 {
                (0.0, 0.5)
            } else {
                (b as f64 - 0.5, 1.0)
            };
            med = lo + width * (half - acc) / c as f64;
            break;
        }
        acc = next;
    }
    1.4826 * med / std::f64::consts::SQRT_2
}

/// The median as [`super::fit::median_in_place`] takes it (element `len / 2` in order), by
/// insertion sort for the dozen values of a sector (cheaper there than a selection).
fn small_median(v: &mut [f64]) -> f64 {
    if v.len() > 24 {
        return super::fit::median_in_place(v);
    }
    if v.is_empty() {
        return 0.0;
    }
    for i in 1..v.len() {
        let x = v[i];
        let mut j = i;
        while j > 0 && v[j - 1].total_cmp(&x).is_gt() {
            v[j] = v[j - 1];
            j -= 1;
        }
        v[j] = x;
    }
    v[v.len() / 2]
}

/// Half-length (samples) of the flat element that removes lines narrower than `line_px`.
fn line_half_samples(line_px: f64) -> usize {
    ((0.5 * line_px / STEP_PX).round() as usize).max(1)
}

/// Scratch buffers of [`morph`].
#[derive(Default)]
pub(crate) struct MorphBufs {
    /// Intermediate result between the passes of [`clean_profile`].
    work: Vec<f64>,
    fwd: Vec<f64>,
    bwd: Vec<f64>,
}

/// Flat 1-D erosion (`max = false`) or dilation over `[i - half, i + half]` clipped to
/// `src`'s range, in O(n) whatever `half` (van Herk / Gil–Werman: running extremes forward
/// and backward within blocks of the window's length; a window spans at most two blocks).
fn morph(src: &[f64], half: usize, max: bool, dst: &mut Vec<f64>, m: &mut MorphBufs) {
    // plain comparisons (one instruction; f64::max / min also handle NaN, which a profile of
    // grey levels never holds)
    if max {
        van_herk(
            src,
            half,
            f64::NEG_INFINITY,
            |a, b| if a >= b { a } else { b },
            m,
            dst,
        );
    } else {
        van_herk(
            src,
            half,
            f64::INFINITY,
            |a, b| if a <= b { a } else { b },
            m,
            dst,
        );
    }
}

/// The van Herk / Gil–Werman running extremum over windows `[i - half, i + half]` of `src`
/// padded with `fill` (the extremum's identity) on both sides, into `dst`: running extrema
/// forward and backward within blocks of `2 * half + 1` samples of the padded sequence (one
/// pass each over its own copy), then one pick per window.
#[inline]
fn van_herk(
    src: &[f64],
    half: usize,
    fill: f64,
    pick: impl Fn(f64, f64) -> f64 + Copy,
    m: &mut MorphBufs,
    dst: &mut Vec<f64>,
) {
    let n = src.len();
    let w = 2 * half + 1;
    // the padded sequence, twice (each copy then scanned in place)
    for buf in [&mut m.fwd, &mut m.bwd] {
        buf.clear();
        buf.resize(half, fill);
        buf.extend_from_slice(src);
        buf.resize(n + 2 * half, fill);
    }
    for block in m.fwd.chunks_mut(w) {
        for j in 1..block.len() {
            block[j] = pick(block[j - 1], block[j]);
        }
    }
    for block in m.bwd.chunks_mut(w) {
        for j in (0..block.len().saturating_sub(1)).rev() {
            block[j] = pick(block[j + 1], block[j]);
        }
    }
    dst.clear();
    dst.extend(
        m.bwd[..n]
            .iter()
            .zip(&m.fwd[w - 1..w - 1 + n])
            .map(|(&b, &f)| pick(b, f)),
    );
}

/// `dst` = `src` smoothed by `kernel` and signed by `polarity` (so that the glass-to-outside
/// step rises), then cleared of lines: an opening then a closing with a flat element of
/// `2 * half_line + 1` samples remove bright and dark lines (rims) narrower than that and
/// leave every monotone stretch — a step, or a staircase such as glass → epoxy ring →
/// ferrule — exactly as it was. Same length and indexing as `src`; the ends the kernel does
/// not cover repeat the nearest covered sample.
fn clean_profile(
    src: &[f64],
    kernel: &[f64],
    polarity: f64,
    half_line: usize,
    smooth: &mut Vec<f64>,
    m: &mut MorphBufs,
    dst: &mut Vec<f64>,
) {
    let n = src.len();
    let half_k = kernel.len() / 2;
    convolve(src, kernel, smooth);
    if n > 2 * half_k {
        let (first, last) = (smooth[half_k], smooth[n - half_k - 1]);
        smooth[..half_k].iter_mut().for_each(|v| *v = first);
        smooth[n - half_k..].iter_mut().for_each(|v| *v = last);
    }
    smooth.iter_mut().for_each(|v| *v *= polarity);
    // opening (erode, dilate) then closing (dilate, erode): bright lines gone, then dark
    // ones. The two dilations in the middle are one over twice the half-width (flat windows
    // clipped to the profile compose exactly), so three passes instead of four.
    let mut work = std::mem::take(&mut m.work);
    morph(smooth, half_line, false, &mut work, m);
    morph(&work, 2 * half_line, true, dst, m);
    morph(dst, half_line, false, &mut work, m);
    std::mem::swap(dst, &mut work);
    m.work = work;
}

/// Mean of `c` over the inclusive index range `r` (clipped).
fn mean_over(c: &[f64], r: (usize, usize)) -> f64 {
    let hi = r.1.min(c.len() - 1);
    let lo = r.0.min(hi);
    let s = &c[lo..=hi];
    s.iter().sum::<f64>() / s.len() as f64
}

/// Upward crossing of `thr` by `c` strictly inside samples `(lo, hi)` nearest to `near`
/// (linearly interpolated, in samples), with the slope there (levels per px).
fn crossing_near(c: &[f64], thr: f64, lo: usize, hi: usize, near: f64) -> Option<(f64, f64)> {
    let mut best: Option<(f64, f64)> = None;
    for i in lo..hi.min(c.len() - 1) {
        let (u, v) = (c[i], c[i + 1]);
        if u < thr && v >= thr {
            let pos = i as f64 + (thr - u) / (v - u);
            if best.is_none_or(|(p, _)| (pos - near).abs() < (p - near).abs()) {
                best = Some((pos, (v - u) / STEP_PX));
            }
        }
    }
    best
}

/// Where a profile crosses half-way through the step `b` (samples, nearest to `b.pos`) and
/// its slope there: `c` is the cleaned profile, `s` the same before line removal (smoothed
/// and signed). The level after the step is that of `c` over `b.after` (a bright bore rim
/// beyond the glass does not count); the level before it is that of `c` over `b.before`,
/// or the bottom of a dark line between them and the step when that is lower — such a line
/// is the rounded glass edge, and the glass ends where the profile climbs out of it. The
/// crossing is taken on `s`.
fn half_crossing(c: &[f64], s: &[f64], b: &Boundary) -> Option<(f64, f64)> {
    let mut before = mean_over(c, b.before);
    let after = mean_over(c, b.after);
    if after <= before {
        return None;
    }
    let (lo, hi) = (b.before.1, b.after.0);
    let (p0, _) = crossing_near(c, 0.5 * (before + after), lo, hi, b.pos)?;
    let upto = (p0.floor() as usize).min(s.len() - 1);
    if lo <= upto {
        before = s[lo..=upto].iter().copied().fold(before, f64::min);
    }
    crossing_near(s, 0.5 * (before + after), lo, hi, p0)
}

/// Slope (levels per px) of profile `s` at sample `i` (central difference).
#[inline]
fn slope_at(s: &[f64], i: usize) -> f64 {
    (s[i + 1] - s[i - 1]) / (2.0 * STEP_PX)
}

/// The steepest point of `s` within `[centre - half, centre + half]` samples (parabola
/// interpolated) and its slope, when that slope is positive. With `strict`, only when it is a
/// true local maximum of the slope (not the end of the window on a ramp that keeps getting
/// steeper).
fn steepest(s: &[f64], centre: f64, half: f64, strict: bool) -> Option<(f64, f64)> {
    let lo = ((centre - half).round().max(2.0)) as usize;
    let hi = ((centre + half).round() as usize).min(s.len().saturating_sub(3));
    if lo > hi {
        return None;
    }
    let k = (lo..=hi).max_by(|&i, &j| slope_at(s, i).total_cmp(&slope_at(s, j)))?;
    let (dm, d0, dp) = (slope_at(s, k - 1), slope_at(s, k), slope_at(s, k + 1));
    if d0 <= 0.0 || (strict && !(d0 >= dm && d0 > dp)) {
        return None;
    }
    let delta = parabola_offset(dm, d0, dp);
    Some((k as f64 + delta, d0 - 0.25 * (dm - dp) * delta))
}

/// The glass boundary on a cleaned radial profile `c` (see [`clean_profile`]; sample `m_r`
/// is the current circle), or `None` when it shows no clear glass-to-outside step.
///
/// Within ±`rule.zone_px` of the circle the profile is cut into steps (derivative lobes
/// separated by a clear valley); the boundary is the innermost step that carries at least
/// [`MIN_STEP_FRACTION`] of the rise from the glass plateau to the outside plateau, taken
/// where it crosses half-way between its own levels before and after. Going outward the
/// glass ends at its first real step: an epoxy ring or a bright bore rim beyond it can be
/// steeper, but it is not the glass. Half-way rather than the steepest point because when
/// the steps of a soft edge merge into one ramp its slope is nearly flat and its steepest
/// point falls wherever a rim adds to it; the half-way level stays put.
pub(crate) fn glass_step(
    c: &[f64],
    s: &[f64],
    m_r: f64,
    rule: &StepRule,
    deriv: &mut Vec<f64>,
) -> Option<Boundary> {
    let len = c.len();
    if len < 12 {
        return None;
    }
    deriv.clear();
    deriv.resize(len, 0.0);
    for i in 1..len - 1 {
        deriv[i] = (c[i + 1] - c[i - 1]) / (2.0 * STEP_PX);
    }
    let d = &deriv[..];
    let zone = rule.zone_px / STEP_PX;
    let lo = ((m_r - zone).floor().max(2.0) as usize).min(len - 4);
    let hi = ((m_r + zone).ceil().max(0.0) as usize).clamp(lo + 2, len - 3);
    let plateau = (rule.plateau_px / STEP_PX).round().max(1.0) as usize;
    let inner = (lo.saturating_sub(plateau), lo);
    let outer = (hi, (hi + plateau).min(len - 1));
    let total = mean_over(c, outer) - mean_over(c, inner);
    if !(total >= rule.min_rise && total > 0.0) {
        return None;
    }
    let need = (MIN_STEP_FRACTION * total).max(0.5 * rule.min_rise);
    let is_peak = |i: usize| d[i] > 0.0 && d[i] >= d[i - 1] && d[i] > d[i + 1];
    // Walk the derivative peaks outward, grouping them into steps; the first step that
    // rises enough is the boundary.
    let mut chosen: Option<(usize, usize, usize)> = None; // (start, best peak, end)
    let mut step: Option<(usize, usize, usize)> = None; // (start, best peak, last peak)
    for p in (lo..=hi).filter(|&i| is_peak(i)) {
        let Some((start, best, last)) = step else {
            step = Some((lo, p, p));
            continue;
        };
        let valley = (last..=p)
            .min_by(|&i, &j| d[i].total_cmp(&d[j]))
            .unwrap_or(p);
        if d[valley] >= VALLEY_FRACTION * d[best].min(d[p]) {
            step = Some((start, if d[p] > d[best] { p } else { best }, p));
        } else if c[valley] - c[start] >= need {
            chosen = Some((start, best, valley));
            break;
        } else {
            step = Some((valley, p, p));
        }
    }
    if chosen.is_none() {
        if let Some((start, best, _)) = step {
            if c[hi] - c[start] >= need {
                chosen = Some((start, best, hi));
            }
        }
    }
    let (start, best, end) = chosen?;
    let before = if start == lo {
        inner
    } else {
        (start - 1, start + 1)
    };
    let after = if end == hi { outer } else { (end - 1, end + 1) };
    let b = Boundary {
        pos: best as f64,
        before,
        after,
        steepest: None,
    };
    let (pos, _) = half_crossing(c, s, &b)?;
    // A step with a clear steepest point right at its half-way crossing: the steepest
    // point is the finer estimate (the plateau levels, shaded glass or a faint epoxy ring,
    // do not move it); each ray then takes its own steepest point near it, in a window that
    // keeps the nearest other edge out.
    let snap = SNAP_PX / STEP_PX;
    if let Some((peak, slope)) = steepest(s, pos, snap, true) {
        if (peak - pos).abs() < snap {
            let gap = (lo.max(2)..=hi.min(len - 3))
                .filter(|&i| {
                    (i as f64 - peak).abs() > 1.5
                        && slope_at(s, i) >= 0.35 * slope
                        && slope_at(s, i) >= slope_at(s, i - 1)
                        && slope_at(s, i) > slope_at(s, i + 1)
                })
                .map(|i| (i as f64 - peak).abs() * STEP_PX)
                .fold(f64::INFINITY, f64::min);
            let window_px = if gap.is_finite() {
                (0.45 * gap).clamp(0.75, 2.5)
            } else {
                2.5
            };
            return Some(Boundary {
                pos,
                steepest: Some((peak, window_px / STEP_PX)),
                ..b
            });
        }
    }
    Some(Boundary { pos, ..b })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A radial profile sampled every [`STEP_PX`] from 0 to 60 px: glass `g` up to `r0`
    /// (soft step of scale `soft` px), then `steps` (position px, new level) and Gaussian
    /// `lines` (centre px, amplitude, half-width px).
    fn profile(g: f64, soft: f64, steps: &[(f64, f64)], lines: &[(f64, f64, f64)]) -> Vec<f64> {
        let n = (60.0 / STEP_PX) as usize + 1;
        (0..n)
            .map(|i| {
                let t = i as f64 * STEP_PX;
                let mut v = g;
                let mut prev = g;
                for &(at, level) in steps {
                    v += (level - prev) / (1.0 + (-1.7 * (t - at) / soft).exp());
                    prev = level;
                }
                for &(at, amp, w) in lines {
                    v += amp * (-((t - at) / w).powi(2)).exp();
                }
                v
            })
            .collect()
    }

    /// The glass boundary (px) that `glass_step` picks on `p` around a circle at 30 px.
    fn boundary(p: &[f64], polarity: f64) -> Option<f64> {
        let rule = StepRule {
            zone_px: 12.0,
            plateau_px: 5.0,
            line_px: 6.0,
            min_rise: 2.0,
        };
        let (mut smooth, mut clean, mut deriv) = (Vec::new(), Vec::new(), Vec::new());
        let mut m = MorphBufs::default();
        let kernel = gauss_kernel(SMOOTH_SIGMA_SAMPLES, SMOOTH_HALF);
        clean_profile(
            p,
            &kernel,
            polarity,
            line_half_samples(rule.line_px),
            &mut smooth,
            &mut m,
            &mut clean,
        );
        let b = glass_step(&clean, &smooth, 30.0 / STEP_PX, &rule, &mut deriv)?;
        Some(b.pos * STEP_PX)
    }

    /// `n` pseudo-random whole numbers below `modulo` (xorshift from `seed`), as f64.
    fn xorshift(seed: u64, n: usize, modulo: u64) -> Vec<f64> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % modulo) as f64
            })
            .collect()
    }

    #[test]
    fn convolve_is_one_dot_product_per_sample_bit_for_bit() {
        for n in [0, 3, 7, 8, 40, 131] {
            let src: Vec<f64> = xorshift(0x0123_4567_89ab_cdef ^ n as u64, n, 10_000)
                .into_iter()
                .map(|v| v / 37.0)
                .collect();
            for half in [1, 3, 9] {
                let k = gauss_kernel(half as f64 / 2.0, half);
                let mut got = Vec::new();
                convolve(&src, &k, &mut got);
                let mut want = vec![0.0; n];
                for (i, w) in want.iter_mut().enumerate() {
                    if i >= half && i + half < n {
                        *w = k
                            .iter()
                            .zip(&src[i - half..=i + half])
                            .map(|(a, b)| a * b)
                            .sum();
                    }
                }
                assert_eq!(
                    got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    "n {n} half {half}"
                );
            }
        }
    }

    #[test]
    fn the_small_median_is_the_selected_one() {
        for n in 0..40 {
            // repeats and negatives too
            let v: Vec<f64> = xorshift(0x0bad_5eed_1234_4321 ^ n as u64, n, 23)
                .into_iter()
                .map(|v| v * 0.5 - 3.0)
                .collect();
            let (mut a, mut b) = (v.clone(), v.clone());
            assert_eq!(
                small_median(&mut a),
                super::super::fit::median_in_place(&mut b),
                "{v:?}"
            );
        }
    }

    #[test]
    fn cleaning_in_three_passes_is_the_opening_then_the_closing() {
        let src = xorshift(0x5eed_0000_1111_2222, 90, 200);
        let kernel = gauss_kernel(SMOOTH_SIGMA_SAMPLES, SMOOTH_HALF);
        let mut m = MorphBufs::default();
        for half in [1, 3, 8, 20, 50] {
            let (mut smooth, mut clean) = (Vec::new(), Vec::new());
            clean_profile(&src, &kernel, -1.0, half, &mut smooth, &mut m, &mut clean);
            // four plain passes on the same smoothed, signed profile
            let (mut a, mut b) = (Vec::new(), Vec::new());
            morph(&smooth, half, false, &mut a, &mut m);
            morph(&a, half, true, &mut b, &mut m);
            morph(&b, half, true, &mut a, &mut m);
            morph(&a, half, false, &mut b, &mut m);
            assert_eq!(clean, b, "half {half}");
        }
    }

    #[test]
    fn morph_matches_the_naive_window() {
        let src = xorshift(0x1234_5678_9abc_def0, 57, 1000);
        let (mut out, mut m) = (Vec::new(), MorphBufs::default());
        for half in [1, 2, 5, 8, 30, 60] {
            for max in [false, true] {
                morph(&src, half, max, &mut out, &mut m);
                for (i, v) in out.iter().enumerate() {
                    let w = &src[i.saturating_sub(half)..(i + half + 1).min(src.len())];
                    let want = if max {
                        w.iter().copied().fold(f64::NEG_INFINITY, f64::max)
                    } else {
                        w.iter().copied().fold(f64::INFINITY, f64::min)
                    };
                    assert_eq!(*v, want, "half {half} max {max} at {i}");
                }
            }
        }
    }

    #[test]
    fn a_clean_step_either_way() {
        let rising = profile(80.0, 1.0, &[(31.3, 200.0)], &[]);
        let b = boundary(&rising, 1.0).unwrap();
        assert!((b - 31.3).abs() < 0.05, "{b}");
        let falling = profile(200.0, 1.0, &[(28.6, 90.0)], &[]);
        let b = boundary(&falling, -1.0).unwrap();
        assert!((b - 28.6).abs() < 0.05, "{b}");
    }

    #[test]
    fn an_epoxy_ring_with_a_bright_bore_rim_is_not_the_glass() {
        // Glass 80, epoxy ring at 65 % from 30 px, ferrule from 35 px with a bright rim that
        // makes the outer edge steeper than the glass edge.
        let p = profile(
            80.0,
            1.0,
            &[(30.0, 158.0), (35.0, 200.0)],
            &[(36.5, 60.0, 1.2)],
        );
        let b = boundary(&p, 1.0).unwrap();
        assert!((b - 30.0).abs() < 0.3, "{b}");
    }

    #[test]
    fn a_dark_line_inside_the_edge_is_climbed_out_of() {
        // Dark fiber, dark rim just inside the glass edge at 30 px.
        let p = profile(90.0, 0.8, &[(30.0, 190.0)], &[(29.2, -45.0, 0.8)]);
        let b = boundary(&p, 1.0).unwrap();
        assert!((b - 30.0).abs() < 0.4, "{b}");
    }

    #[test]
    fn no_step_no_boundary() {
        let flat = profile(120.0, 1.0, &[], &[]);
        assert!(boundary(&flat, 1.0).is_none());
        // A lone line is not a step either.
        let line = profile(120.0, 1.0, &[], &[(30.0, 40.0, 1.0)]);
        assert!(boundary(&line, 1.0).is_none());
    }
}
