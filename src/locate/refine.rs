//! Sub-pixel cladding edge along rays, the median radial profile, and the focus measure.
//!
//! In: the full-resolution frame, the pixel aspect, a circle (circle space) and a search
//! window. Out: one [`EdgePoint`] per ray that stays inside the frame — the position of the
//! strongest edge of the expected polarity inside the window (parabola-interpolated maximum
//! of the smoothed profile derivative) and its strength (intensity change per pixel) — and,
//! for a fitted circle, the [`EdgeProfile`] of the median radial profile across the cladding
//! edge: its contrast and its sharpness (the focus measure).

use image::GrayImage;

/// Profile sampling step along a ray (circle-space x-pixels).
pub(crate) const STEP_PX: f64 = 0.5;
/// Gaussian smoothing of the profile for edge detection: sigma in samples (1 px).
const SMOOTH_SIGMA_SAMPLES: f64 = 1.0;
const SMOOTH_HALF: usize = 3;
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
    /// Polarity-signed step height across the edge (gray levels, inner plateau to outer).
    pub contrast: f64,
    /// Max slope across the edge / intensity range around it (1/px).
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
        *o = k
            .iter()
            .zip(&src[i - half..=i + half])
            .map(|(a, b)| a * b)
            .sum();
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
                });
            }
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

    /// The edge of `polarity` that all rays should use: the strongest derivative peak of the
    /// median profile over all rays within ±`window_px` of circle (`center`, `r`). Returns
    /// its offset from `r` (px) and the distance to the nearest other peak of at least 35 %
    /// of its strength within ±3·`window_px` (`f64::INFINITY` when there is none): a double
    /// edge then gets one consistent choice instead of a per-ray coin toss.
    pub fn consensus_edge(
        &mut self,
        center: [f64; 2],
        r: f64,
        window_px: f64,
        polarity: f64,
    ) -> Option<(f64, f64)> {
        let m = self.median_profile(center, r, None, 3.0 * window_px + 3.0)?;
        let len = self.median.len();
        convolve(&self.median, &self.kernel, &mut self.median_smooth);
        self.deriv.clear();
        self.deriv.resize(len, f64::NEG_INFINITY);
        let lo = SMOOTH_HALF + 1;
        let hi = len.saturating_sub(SMOOTH_HALF + 2);
        for i in lo..=hi {
            self.deriv[i] = polarity * (self.median_smooth[i + 1] - self.median_smooth[i - 1])
                / (2.0 * STEP_PX);
        }
        let reach = (window_px / STEP_PX).round() as usize;
        let (a, b) = (m.saturating_sub(reach).max(lo + 1), (m + reach).min(hi - 1));
        if a >= b {
            return None;
        }
        let best = (a..=b).max_by(|&i, &j| self.deriv[i].total_cmp(&self.deriv[j]))?;
        let peak = self.deriv[best];
        if peak.is_nan() || peak <= 0.0 {
            return None;
        }
        let delta = parabola_offset(self.deriv[best - 1], peak, self.deriv[best + 1]);
        let rho = (best as f64 + delta - m as f64) * STEP_PX;
        let mut gap = f64::INFINITY;
        for i in (lo + 1)..hi {
            let d = self.deriv[i];
            if i != best && d >= 0.35 * peak && d >= self.deriv[i - 1] && d > self.deriv[i + 1] {
                gap = gap.min((i as f64 - best as f64).abs() * STEP_PX);
            }
        }
        Some((rho, gap))
    }

    /// The step height between the plateaus `plateau_px` inside and outside circle
    /// (`center`, `r`) and the edge sharpness (max slope within ±1.5 px of the edge over the
    /// profile's range within ±`range_px`), from the median profile over `rays`.
    pub fn edge_profile(
        &mut self,
        center: [f64; 2],
        r: f64,
        rays: &[usize],
        plateau_px: (f64, f64),
        range_px: f64,
        polarity: f64,
    ) -> Option<EdgeProfile> {
        let m = self.median_profile(center, r, Some(rays), plateau_px.1.max(range_px) + 1.0)?;
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
        let contrast = polarity * (outer - inner);
        let (lo, hi) = prof[index(-range_px)..=index(range_px)]
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        let range = hi - lo;

        // Max polarity-signed slope of the lightly smoothed median profile near the edge.
        convolve(&self.median, &self.sharp_kernel, &mut self.median_smooth);
        let reach = (1.5 / STEP_PX) as usize;
        let mut slope = 0.0f64;
        let (a, b) = (
            m.saturating_sub(reach).max(SHARP_HALF + 1),
            (m + reach).min(len.saturating_sub(SHARP_HALF + 2)),
        );
        for k in a..=b {
            slope = slope.max(
                polarity * (self.median_smooth[k + 1] - self.median_smooth[k - 1])
                    / (2.0 * STEP_PX),
            );
        }
        Some(EdgeProfile {
            contrast,
            sharpness: if range > 1.0 { slope / range } else { 0.0 },
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
