//! Sub-pixel cladding edge along rays, the median radial profile, and the focus measure.
//!
//! In: the full-resolution frame, the pixel aspect, a circle (circle space) and a search
//! window. Out: one [`EdgePoint`] per ray that stays inside the frame — the position of the
//! strongest edge of the expected polarity inside the window (parabola-interpolated maximum
//! of the smoothed profile derivative) and its strength (intensity change per pixel) — and,
//! for a fitted circle, the [`EdgeProfile`] analysis of the median radial profile across the
//! cladding edge: a radius correction that picks the glass boundary inside a double edge
//! (epoxy ring, rims), the edge contrast and the edge sharpness.

use image::GrayImage;

/// Profile sampling step along a ray (circle-space x-pixels).
pub(crate) const STEP_PX: f64 = 0.5;
/// Gaussian smoothing of the profile for edge detection: sigma in samples (1 px).
const SMOOTH_SIGMA_SAMPLES: f64 = 2.0;
const SMOOTH_HALF: usize = 4;
/// Light smoothing for the sharpness measure: sigma in samples (0.5 px).
const SHARP_SIGMA_SAMPLES: f64 = 1.0;
const SHARP_HALF: usize = 2;

/// Edge found on one ray.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EdgePoint {
    /// Circle-space position.
    pub p: [f64; 2],
    /// Polarity-signed slope (intensity per px) at the edge; > 0 means the expected polarity.
    pub strength: f64,
    /// Index of the ray's stored profile.
    pub ray: usize,
}

/// The cladding edge as seen on the median radial profile.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EdgeProfile {
    /// Where the glass boundary lies relative to the fitted radius (px, + outward).
    pub radius_shift_px: f64,
    /// Polarity-signed step height across the edge (gray levels, inner plateau to outer).
    pub contrast: f64,
    /// Max slope across the boundary / contrast (1/px).
    pub sharpness: f64,
}

/// Ray-casting scratch buffers.
pub(crate) struct Rays {
    kernel: Vec<f64>,
    sharp_kernel: Vec<f64>,
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
    pub points: Vec<EdgePoint>,
}

impl Default for Rays {
    fn default() -> Self {
        Self {
            kernel: gauss_kernel(SMOOTH_SIGMA_SAMPLES, SMOOTH_HALF),
            sharp_kernel: gauss_kernel(SHARP_SIGMA_SAMPLES, SHARP_HALF),
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
            points: Vec::new(),
        }
    }
}

fn gauss_kernel(sigma: f64, half: usize) -> Vec<f64> {
    let k: Vec<f64> = (0..=2 * half)
        .map(|i| {
            let d = i as f64 - half as f64;
            (-0.5 * d * d / (sigma * sigma)).exp()
        })
        .collect();
    let s: f64 = k.iter().sum();
    k.into_iter().map(|v| v / s).collect()
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
    for (i, o) in dst
        .iter_mut()
        .enumerate()
        .take(n.saturating_sub(half))
        .skip(half)
    {
        *o = k.iter().zip(&src[i - half..=i + half]).map(|(a, b)| a * b).sum();
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
    /// Cast `n_rays` rays from `(cx, cy)` (circle space) and find on each the strongest edge
    /// of `polarity` with radius in `[r0 - window, r0 + window]`; the profiles extend
    /// `margin` px beyond the window on both sides and are kept for [`Self::edge_profile`].
    /// Rays whose profile would leave the frame are skipped. Returns the number of rays
    /// that stayed inside.
    #[allow(clippy::too_many_arguments)]
    pub fn cast(
        &mut self,
        img: &GrayImage,
        aspect: f64,
        center: [f64; 2],
        r0: f64,
        window: f64,
        margin: f64,
        polarity: f64,
        n_rays: usize,
    ) -> usize {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let raw_img = img.as_raw();
        self.points.clear();
        self.profiles.clear();
        self.dirs.clear();
        let t_start = (r0 - window - margin).max(1.0);
        let t_end = r0 + window + margin;
        let n = ((t_end - t_start) / STEP_PX).ceil() as usize + 1;
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
            self.raw.clear();
            for i in 0..n {
                let t = t_start + i as f64 * STEP_PX;
                self.raw
                    .push(bilinear(raw_img, w, h, cx + t * c, (cy + t * s) * aspect));
            }
            let ray = self.dirs.len();
            self.profiles.extend_from_slice(&self.raw);
            self.dirs.push([c, s]);
            if let Some((t_edge, strength)) = self.edge_on_profile(r0, window, polarity) {
                self.points.push(EdgePoint {
                    p: [cx + t_edge * c, cy + t_edge * s],
                    strength,
                    ray,
                });
            }
        }
        self.dirs.len()
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

    /// Analyse the median radial profile across the edge of circle (`center`, `r`) over the
    /// rays listed in `rays` (indices of stored profiles), sampled ±`half_span_px`.
    ///
    /// The glass boundary is taken as the derivative peak of the transition in which the
    /// profile crosses the midpoint between the inner plateau (glass, `plateau_px` inside)
    /// and the outer plateau (ferrule, `plateau_px` outside): a rim line or an epoxy ring
    /// beside the boundary adds a smaller transition next to it, which this ignores.
    #[allow(clippy::too_many_arguments)]
    pub fn edge_profile(
        &mut self,
        center: [f64; 2],
        r: f64,
        rays: &[usize],
        half_span_px: f64,
        plateau_px: (f64, f64),
        polarity: f64,
    ) -> Option<EdgeProfile> {
        if rays.len() < 8 {
            return None;
        }
        let m = (half_span_px / STEP_PX).floor() as usize;
        let len = 2 * m + 1;
        let shift = [center[0] - self.origin[0], center[1] - self.origin[1]];
        self.median.clear();
        for j in 0..len {
            let rho = (j as f64 - m as f64) * STEP_PX;
            self.tmp.clear();
            for &k in rays {
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
            if self.tmp.len() < rays.len() / 2 {
                return None;
            }
            self.median.push(super::fit::median_in_place(&mut self.tmp));
        }
        let prof = &self.median;
        let mean_over = |a: f64, b: f64| -> f64 {
            let ia = ((a / STEP_PX).round() + m as f64).clamp(0.0, (len - 1) as f64) as usize;
            let ib = ((b / STEP_PX).round() + m as f64).clamp(0.0, (len - 1) as f64) as usize;
            let sl = &prof[ia.min(ib)..=ia.max(ib)];
            sl.iter().sum::<f64>() / sl.len() as f64
        };
        if std::env::var_os("LOCATE_DEBUG").is_some() {
            eprintln!("PROFILE {{\"r\": {r}, \"pol\": {polarity}, \"m\": {m}, \"p\": {:?}}}", prof);
        }
        let inner = mean_over(-plateau_px.1, -plateau_px.0);
        let outer = mean_over(plateau_px.0, plateau_px.1);
        let contrast = polarity * (outer - inner);
        if contrast <= 0.0 {
            return None;
        }
        let mid = 0.5 * (inner + outer);

        // Polarity-signed derivative of the smoothed median profile.
        convolve(&self.median, &self.kernel, &mut self.median_smooth);
        let lo = SMOOTH_HALF + 1;
        let hi = len.saturating_sub(SMOOTH_HALF + 2);
        if lo + 2 >= hi {
            return None;
        }
        self.deriv.clear();
        self.deriv.resize(len, f64::NEG_INFINITY);
        for i in lo..=hi {
            self.deriv[i] =
                polarity * (self.median_smooth[i + 1] - self.median_smooth[i - 1]) / (2.0 * STEP_PX);
        }
        // Midpoint crossing nearest the fitted edge.
        let above = |i: usize| polarity * (self.median_smooth[i] - mid) >= 0.0;
        let mut crossing = None;
        for d in 0..=(m - lo) {
            for i in [m.saturating_sub(d), m + d] {
                if i > lo && i <= hi && !above(i - 1) && above(i) {
                    crossing = Some(i);
                    break;
                }
            }
            if crossing.is_some() {
                break;
            }
        }
        let mut i = crossing.unwrap_or(m);
        // Hill-climb to that transition's derivative peak.
        loop {
            let left = if i > lo { self.deriv[i - 1] } else { f64::NEG_INFINITY };
            let right = if i < hi { self.deriv[i + 1] } else { f64::NEG_INFINITY };
            if left > self.deriv[i] && left >= right {
                i -= 1;
            } else if right > self.deriv[i] {
                i += 1;
            } else {
                break;
            }
        }
        if i <= lo || i >= hi {
            return None;
        }
        let delta = parabola_offset(self.deriv[i - 1], self.deriv[i], self.deriv[i + 1]);
        let radius_shift_px = (i as f64 + delta - m as f64) * STEP_PX;
        if std::env::var_os("LOCATE_DEBUG").is_some() {
            eprintln!("inner {inner:.1} outer {outer:.1} crossing {crossing:?} peak {i} shift {radius_shift_px:.2}");
        }

        // Sharpness: max slope of the lightly smoothed median profile within ±1 px.
        convolve(&self.median, &self.sharp_kernel, &mut self.median_smooth);
        let reach = (1.0 / STEP_PX) as usize;
        let mut slope = f64::NEG_INFINITY;
        for k in i.saturating_sub(reach).max(SHARP_HALF + 1)..=(i + reach).min(len - SHARP_HALF - 2) {
            slope = slope.max(
                polarity * (self.median_smooth[k + 1] - self.median_smooth[k - 1]) / (2.0 * STEP_PX),
            );
        }
        Some(EdgeProfile {
            radius_shift_px,
            contrast,
            sharpness: if slope.is_finite() { slope / contrast } else { 0.0 },
        })
    }
}

/// Sensor noise estimate of a frame (gray levels): 1.4826·MAD of horizontal neighbour
/// differences / √2, on every third row.
pub(crate) fn noise_sigma(img: &GrayImage, hist: &mut Vec<u32>) -> f64 {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let raw = img.as_raw();
    hist.clear();
    hist.resize(256, 0);
    let mut total = 0u32;
    for y in (0..h).step_by(3) {
        let row = &raw[y * w..(y + 1) * w];
        for pair in row.windows(2) {
            hist[pair[0].abs_diff(pair[1]) as usize] += 1;
            total += 1;
        }
    }
    // Median of |d| with linear interpolation inside the integer bin.
    let half = total as f64 / 2.0;
    let mut acc = 0.0;
    let mut med = 0.0;
    for (b, &c) in hist.iter().enumerate() {
        let next = acc + c as f64;
        if next >= half && c > 0 {
            // |d| is integer: spread bin b over [b - 0.5, b + 0.5] (bin 0 over [0, 0.5]).
            let (lo, width) = if b == 0 { (0.0, 0.5) } else { (b as f64 - 0.5, 1.0) };
            med = lo + width * (half - acc) / c as f64;
            break;
        }
        acc = next;
    }
    1.4826 * med / std::f64::consts::SQRT_2
}
