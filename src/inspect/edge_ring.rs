//! The cladding-edge scan: marks along the cladding edge that the model's map misses.
//!
//! Chips are notches at the cladding edge (../shared/docs/iec-61300-3-35.md). The edge is the
//! strongest structure in the crop, and the student reconstructs it as a smooth circle: a notch a
//! few µm across that darkens or brightens the glass at the edge is left out of its map (on the
//! validation sets the map's image AUROC for chip frames is 0.87 / 0.91, against 0.92–1.00 for
//! the other kinds; models/MODEL_CARD.md "The cladding-edge scan"). A fiber end-face is
//! rotationally symmetric about its axis apart from illumination that varies slowly around it,
//! so along each circle near the edge the grey level follows a slow curve; a notch is a short
//! departure from it.
//!
//! In: the model's crop (grey levels, centred on the fiber axis, square pixels of
//! `crop_um_per_px`), the located cladding radius in µm, the crop's in-view rectangle. The scan
//! samples [`N_ANGLES`] angles × radii from [`INNER_UM`] inside to [`OUTER_UM`] outside the
//! edge (bilinear), subtracts from each circle a running median over [`BASELINE_ARC_UM`] of arc
//! (knots every half window, linear between), divides by that circle's robust spread (MAD over
//! the circle), averages over [`SMOOTH_ARC_UM`] of arc and [`SMOOTH_RADIAL_UM`] of radius, and
//! reports the largest |z|, where it lies, and a score in [0, 1]: `(z − Z_LOW) / (Z_HIGH −
//! Z_LOW)`, clamped. Angles whose samples leave the picture (frame edge, blanking) take no part.
//!
//! The spread and the z cut-offs were set on the validation sets (seeds 4004 + 4005, 310 frames,
//! and seed 4005 at JPEG 30 / 60, 5-bit posterization and read noise 6): no clean good frame
//! there reaches z 3.0 (the largest is 2.8; at JPEG 30, 3.9), and z alone separates the chip
//! frames from the good ones with AUROC 0.97–1.00 on each. The inspector takes the larger of the
//! map's score and this one as the image score; the map and the defects are not changed by it.
//! The departures stay readable after the scan ([`EdgeRing::z_at`]): a found line that ends in
//! the band next to the edge where the model's map is blind is an edge crack when the scan sees
//! it go on, dark, to the edge (`anomaly::classify_edge_cracks`).
//!
//! No heap allocation once the buffers have grown to their size (first frame).

use crate::anomaly::CropRect;

/// Angles sampled around the edge (0.77 µm of arc apart on a 125 µm cladding; the model's crop
/// has 0.66 µm pixels).
pub const N_ANGLES: usize = 512;
/// Radii sampled (the band where a departure counts), from this far inside the edge ...
pub const INNER_UM: f64 = 6.0;
/// ... to this far outside it ...
pub const OUTER_UM: f64 = 1.5;
/// ... this far apart.
pub const STEP_UM: f64 = 0.5;
/// Arc length of the running median that is each circle's expected course.
pub const BASELINE_ARC_UM: f64 = 24.0;
/// Arc and radius over which z is averaged before its maximum is taken.
pub const SMOOTH_ARC_UM: f64 = 1.5;
pub const SMOOTH_RADIAL_UM: f64 = 1.0;
/// Floor of a circle's spread (grey levels): a perfectly flat synthetic circle does not make
/// quantization steps look like notches.
pub const MIN_SPREAD: f32 = 1.0;
/// Below this z the score is 0, at and above `Z_HIGH` it is 1.
pub const Z_LOW: f32 = 3.0;
pub const Z_HIGH: f32 = 5.0;

/// What one scan found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EdgeFinding {
    /// Largest |z| in the band.
    pub z: f32,
    /// Score in [0, 1] from `z` ([`Z_LOW`], [`Z_HIGH`]).
    pub score: f32,
    /// Where: angle (radians, crop coordinates: 0 along +u, π/2 along +v) and radius (µm).
    pub angle_rad: f64,
    pub radius_um: f64,
    /// Share of the angles that took part (the rest left the picture).
    pub angles_in_view: f64,
}

/// Map a z to a score in [0, 1].
pub fn score_of(z: f32) -> f32 {
    ((z - Z_LOW) / (Z_HIGH - Z_LOW)).clamp(0.0, 1.0)
}

/// Reusable buffers of the scan.
#[derive(Debug, Default, Clone)]
pub struct EdgeRing {
    /// Samples, radius-major: `samples[r * N_ANGLES + a]`.
    samples: Vec<f32>,
    /// Whether angle `a` stays inside the picture at every radius.
    valid: Vec<bool>,
    /// (sin, cos) of each sampled angle.
    trig: Vec<(f64, f64)>,
    /// Baseline knots per circle and sort scratch.
    knots: Vec<f32>,
    scratch: Vec<f32>,
    /// z, then its arc-smoothed copy.
    z: Vec<f32>,
    zs: Vec<f32>,
    /// The cladding radius (µm) of the last scan that measured (`None` after one that did not).
    scanned_radius_um: Option<f64>,
}

impl EdgeRing {
    pub fn new() -> EdgeRing {
        EdgeRing::default()
    }

    /// Scan the crop (`width` x `height` grey levels, fiber axis at its centre). `None` when
    /// the edge is not in view enough to judge (fewer than half the angles) or the radius is
    /// not usable.
    pub fn scan(
        &mut self,
        crop: &[f32],
        (width, height): (usize, usize),
        crop_um_per_px: f64,
        cladding_radius_um: f64,
        grey_step: f32,
        view: &CropRect,
    ) -> Option<EdgeFinding> {
        self.scanned_radius_um = None;
        if width < 2
            || height < 2
            || crop.len() != width * height
            || !crop_um_per_px.is_finite()
            || crop_um_per_px <= 0.0
            || !cladding_radius_um.is_finite()
            || cladding_radius_um <= INNER_UM + 1.0
        {
            return None;
        }
        let n_r = ((INNER_UM + OUTER_UM) / STEP_UM).round() as usize + 1;
        let (cu, cv) = crate::anomaly::crop_center(width, height);
        self.samples.clear();
        self.samples.resize(n_r * N_ANGLES, 0.0);
        self.valid.clear();
        self.valid.resize(N_ANGLES, true);
        // Sample; an angle any of whose samples falls outside the picture (or the crop) is out.
        let (u_lo, u_hi) = (view.u0 as f64, view.u1 as f64 - 1.0);
        let (v_lo, v_hi) = (view.v0 as f64, view.v1 as f64 - 1.0);
        if self.trig.len() != N_ANGLES {
            self.trig = (0..N_ANGLES)
                .map(|a| (a as f64 * std::f64::consts::TAU / N_ANGLES as f64).sin_cos())
                .collect();
        }
        for a in 0..N_ANGLES {
            let (s, c) = self.trig[a];
            for r in 0..n_r {
                let rad_px = (cladding_radius_um - INNER_UM + r as f64 * STEP_UM) / crop_um_per_px;
                let u = cu + rad_px * c;
                let v = cv + rad_px * s;
                if !(u >= u_lo && u <= u_hi && v >= v_lo && v <= v_hi) {
                    self.valid[a] = false;
                    break;
                }
                self.samples[r * N_ANGLES + a] = bilinear(crop, width, height, u, v);
            }
        }
        let n_valid = self.valid.iter().filter(|&&b| b).count();
        if n_valid * 2 < N_ANGLES {
            return None;
        }
        // Per circle: subtract the running median (knots every half window, linear between),
        // divide by the circle's MAD over the valid angles.
        let radius_mid = cladding_radius_um.max(1.0);
        let arc_per_angle = std::f64::consts::TAU * radius_mid / N_ANGLES as f64;
        let half =
            ((BASELINE_ARC_UM / arc_per_angle / 2.0).round() as usize).clamp(4, N_ANGLES / 4);
        let n_knots = N_ANGLES.div_ceil(half);
        self.z.clear();
        self.z.resize(n_r * N_ANGLES, 0.0);
        for r in 0..n_r {
            let row = &self.samples[r * N_ANGLES..(r + 1) * N_ANGLES];
            // knot k sits at angle k * half, the median of the valid samples within ±half
            self.knots.clear();
            for k in 0..n_knots {
                self.scratch.clear();
                // the window k*half ± half, circularly
                let mut a = (k * half + N_ANGLES - half) % N_ANGLES;
                for _ in 0..=2 * half {
                    if self.valid[a] {
                        self.scratch.push(row[a]);
                    }
                    a += 1;
                    if a == N_ANGLES {
                        a = 0;
                    }
                }
                let m = median(&mut self.scratch).unwrap_or(f32::NAN);
                self.knots.push(m);
            }
            // fill knots that saw no valid sample from their neighbours (circularly)
            fill_gaps_circular(&mut self.knots);
            let zrow = &mut self.z[r * N_ANGLES..(r + 1) * N_ANGLES];
            for (a, zv) in zrow.iter_mut().enumerate() {
                let k0 = a / half;
                // the last interval may be shorter: it ends at angle N_ANGLES (knot 0 again)
                let span = half.min(N_ANGLES - k0 * half);
                let f = (a - k0 * half) as f32 / span as f32;
                let b0 = self.knots[k0 % n_knots];
                let b1 = self.knots[(k0 + 1) % n_knots];
                *zv = row[a] - (b0 + (b1 - b0) * f);
            }
            self.scratch.clear();
            for (a, zv) in zrow.iter().enumerate() {
                if self.valid[a] {
                    self.scratch.push(zv.abs());
                }
            }
            let spread = circle_spread(&mut self.scratch, grey_step);
            for zv in zrow.iter_mut() {
                *zv /= spread;
            }
        }
        // Smooth along the arc (circular box, valid angles only) and the radius, take the max.
        let k_arc = ((SMOOTH_ARC_UM / arc_per_angle).round() as usize).max(1);
        let k_rad = ((SMOOTH_RADIAL_UM / STEP_UM).round() as usize).max(1);
        self.zs.clear();
        self.zs.resize(n_r * N_ANGLES, 0.0);
        for r in 0..n_r {
            let zrow = &self.z[r * N_ANGLES..(r + 1) * N_ANGLES];
            let out = &mut self.zs[r * N_ANGLES..(r + 1) * N_ANGLES];
            for (a, o) in out.iter_mut().enumerate() {
                let mut sum = 0.0f32;
                let mut n = 0u32;
                for d in 0..k_arc {
                    let b = (a + d) % N_ANGLES;
                    if self.valid[b] {
                        sum += zrow[b];
                        n += 1;
                    }
                }
                *o = if n as usize == k_arc {
                    sum / n as f32
                } else {
                    0.0
                };
            }
        }
        let mut best = (0.0f32, 0usize, 0usize);
        for r in 0..=n_r.saturating_sub(k_rad) {
            for a in 0..N_ANGLES {
                let mut sum = 0.0f32;
                for q in 0..k_rad {
                    sum += self.zs[(r + q) * N_ANGLES + a];
                }
                let m = (sum / k_rad as f32).abs();
                if m > best.0 {
                    best = (m, a, r);
                }
            }
        }
        let (z, a, r) = best;
        self.scanned_radius_um = Some(cladding_radius_um);
        Some(EdgeFinding {
            z,
            score: score_of(z),
            angle_rad: (a as f64 + (k_arc as f64 - 1.0) / 2.0) * std::f64::consts::TAU
                / N_ANGLES as f64,
            radius_um: cladding_radius_um - INNER_UM
                + (r as f64 + (k_rad as f64 - 1.0) / 2.0) * STEP_UM,
            angles_in_view: n_valid as f64 / N_ANGLES as f64,
        })
    }
}

impl EdgeRing {
    /// The last scan's departure (z, before smoothing) at `radius_um` and `angle_rad` about the
    /// crop's centre (0 along +u, π/2 along +v): of the sampled angles nearest it and its two
    /// neighbours (0.77 µm of arc either side), the one departing most. `None` outside the
    /// scanned band, where no angle there was in view, or when the last scan did not measure.
    pub fn z_at(&self, radius_um: f64, angle_rad: f64) -> Option<f32> {
        let r0 = self.scanned_radius_um? - INNER_UM;
        let n_r = self.z.len() / N_ANGLES;
        let ri = ((radius_um - r0) / STEP_UM).round();
        if !(ri >= 0.0 && ri < n_r as f64 && angle_rad.is_finite()) {
            return None;
        }
        let ri = ri as usize;
        let turns = angle_rad / std::f64::consts::TAU;
        let a = ((turns - turns.floor()) * N_ANGLES as f64).round() as usize % N_ANGLES;
        let row = &self.z[ri * N_ANGLES..(ri + 1) * N_ANGLES];
        [N_ANGLES - 1, 0, 1]
            .iter()
            .map(|d| (a + d) % N_ANGLES)
            .filter(|&b| self.valid[b])
            .map(|b| row[b])
            .max_by(|x, y| x.abs().total_cmp(&y.abs()))
    }
}

/// Bilinear sample of a grey image (`w`, `h` ≥ 2) at (u, v), inside `[0, w-1] x [0, h-1]`.
fn bilinear(img: &[f32], w: usize, h: usize, u: f64, v: f64) -> f32 {
    let u = u.clamp(0.0, (w - 1) as f64);
    let v = v.clamp(0.0, (h - 1) as f64);
    let u0 = (u as usize).min(w - 2);
    let v0 = (v as usize).min(h - 2);
    let fu = (u - u0 as f64) as f32;
    let fv = (v - v0 as f64) as f32;
    let i = v0 * w + u0;
    let (p00, p01) = (img[i], img[i + 1]);
    let (p10, p11) = (img[i + w], img[i + w + 1]);
    let top = p00 + (p01 - p00) * fu;
    let bot = p10 + (p11 - p10) * fu;
    top + (bot - top) * fv
}

/// A circle's spread (grey levels) from its |departures| (reordered): the largest of the
/// Gaussian-equivalent spreads from the median (MAD) and from the 90th percentile of |departure|
/// — JPEG ringing along the edge is heavy-tailed, and a median alone misses it —, and half the
/// frame's grey-level step (a posterized or gained frame moves in steps of `grey_step`; a
/// single step must not look like a notch), plus [`MIN_SPREAD`].
fn circle_spread(abs_dev: &mut [f32], grey_step: f32) -> f32 {
    let n = abs_dev.len();
    let floor = (0.5 * grey_step).max(0.0) + MIN_SPREAD;
    if n == 0 {
        return floor;
    }
    let mid = n / 2;
    let (_, m, upper) = abs_dev.select_nth_unstable_by(mid, f32::total_cmp);
    let mad = *m * 1.4826;
    let k90 = (n * 9 / 10).clamp(mid, n - 1);
    let q90 = if k90 == mid || upper.is_empty() {
        *m
    } else {
        let (_, q, _) = upper.select_nth_unstable_by(k90 - mid - 1, f32::total_cmp);
        *q
    };
    mad.max(q90 / 1.645).max(0.5 * grey_step) + MIN_SPREAD
}

/// The grey-level step of a frame around the fiber: the span of its middle 98 % of grey levels
/// over the number of levels it uses there (1 for an ordinary 8-bit frame, 8 for one posterized
/// to 5 bits). Samples every 4th pixel of every 4th row (shifted by one from row to row) of the
/// square 2 radii around the centre; a 256-bin histogram on the stack.
pub fn grey_step(frame: &image::GrayImage, center: [f64; 2], radius_px: f64) -> f32 {
    let (w, h) = frame.dimensions();
    if w == 0 || h == 0 || !center.iter().all(|c| c.is_finite()) || !radius_px.is_finite() {
        return 1.0;
    }
    let half = (2.0 * radius_px).clamp(8.0, 1e6);
    let clampi = |v: f64, hi: u32| v.clamp(0.0, hi as f64) as u32;
    let (x0, x1) = (clampi(center[0] - half, w), clampi(center[0] + half, w));
    let (y0, y1) = (clampi(center[1] - half, h), clampi(center[1] + half, h));
    let mut hist = [0u32; 256];
    let mut n = 0u32;
    let raw = frame.as_raw();
    for (k, y) in (y0..y1).step_by(4).enumerate() {
        let row = &raw[(y * w) as usize..((y + 1) * w) as usize];
        // the columns shift from row to row so that no pattern of period 4 is aliased
        for x in (x0 + (k % 4) as u32..x1).step_by(4) {
            hist[row[x as usize] as usize] += 1;
            n += 1;
        }
    }
    if n < 64 {
        return 1.0;
    }
    let (lo_cut, hi_cut) = (n / 100, n - n / 100);
    let (mut lo, mut hi, mut acc) = (0usize, 255usize, 0u32);
    let mut found_lo = false;
    for (v, &c) in hist.iter().enumerate() {
        acc += c;
        if !found_lo && acc > lo_cut {
            lo = v;
            found_lo = true;
        }
        if acc >= hi_cut {
            hi = v;
            break;
        }
    }
    let used = hist[lo..=hi].iter().filter(|&&c| c > 0).count().max(1);
    ((hi - lo + 1) as f32 / used as f32).max(1.0)
}

/// Median of the values (reorders them); `None` when empty.
fn median(xs: &mut [f32]) -> Option<f32> {
    if xs.is_empty() {
        return None;
    }
    let mid = xs.len() / 2;
    let (_, m, _) = xs.select_nth_unstable_by(mid, f32::total_cmp);
    Some(*m)
}

/// Replace NaN knots by the nearest valid knot before them (circularly); all NaN → 0.
fn fill_gaps_circular(knots: &mut [f32]) {
    let n = knots.len();
    let Some(first) = knots.iter().position(|k| !k.is_nan()) else {
        knots.iter_mut().for_each(|k| *k = 0.0);
        return;
    };
    let mut last = knots[first];
    for i in 1..=n {
        let j = (first + i) % n;
        if knots[j].is_nan() {
            knots[j] = last;
        } else {
            last = knots[j];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: usize = 384;
    const UPP: f64 = 0.66;
    const R_UM: f64 = 62.5;

    /// A dark fiber disk on a bright ferrule, soft edge, a slow illumination gradient, noise.
    fn fiber(seed: u64) -> Vec<f32> {
        let (c, _) = crate::anomaly::crop_center(W, W);
        let mut state = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut noise = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) as f64 / (1u64 << 31) as f64 - 0.5) as f32 * 6.0
        };
        let mut img = vec![0.0f32; W * W];
        for v in 0..W {
            for u in 0..W {
                let (x, y) = ((u as f64 - c) * UPP, (v as f64 - c) * UPP);
                let r = (x * x + y * y).sqrt();
                let t = 1.0 / (1.0 + (-(r - R_UM) / 0.8).exp());
                let light = 1.0 + 0.15 * x / 120.0;
                img[v * W + u] = ((60.0 + 140.0 * t) * light) as f32 + noise();
            }
        }
        img
    }

    fn notch(img: &mut [f32], angle: f64, width_um: f64, depth_um: f64, delta: f32) {
        let (c, _) = crate::anomaly::crop_center(W, W);
        for v in 0..W {
            for u in 0..W {
                let (x, y) = ((u as f64 - c) * UPP, (v as f64 - c) * UPP);
                let r = (x * x + y * y).sqrt();
                let d_ang = (y.atan2(x) - angle + std::f64::consts::PI)
                    .rem_euclid(std::f64::consts::TAU)
                    - std::f64::consts::PI;
                if (d_ang * R_UM).abs() < width_um / 2.0 && r > R_UM - depth_um && r < R_UM + 0.5 {
                    img[v * W + u] += delta;
                }
            }
        }
    }

    #[test]
    fn clean_edges_stay_under_the_low_cut() {
        let mut ring = EdgeRing::new();
        for seed in 0..4 {
            let img = fiber(seed);
            let f = ring
                .scan(&img, (W, W), UPP, R_UM, 1.0, &CropRect::full(W, W))
                .unwrap();
            assert!(f.z < Z_LOW, "seed {seed}: z {}", f.z);
            assert_eq!(f.score, 0.0);
            assert_eq!(f.angles_in_view, 1.0);
        }
    }

    #[test]
    fn a_small_dark_notch_is_found_where_it_is() {
        let mut ring = EdgeRing::new();
        let mut img = fiber(7);
        notch(&mut img, 1.0, 3.0, 2.5, -25.0);
        let f = ring
            .scan(&img, (W, W), UPP, R_UM, 1.0, &CropRect::full(W, W))
            .unwrap();
        assert!(f.z >= Z_HIGH, "z {}", f.z);
        assert_eq!(f.score, 1.0);
        assert!((f.angle_rad - 1.0).abs() < 0.05, "angle {}", f.angle_rad);
        assert!(
            f.radius_um > R_UM - 4.0 && f.radius_um < R_UM + 1.0,
            "radius {}",
            f.radius_um
        );
        // a bright mark counts too
        let mut img = fiber(8);
        notch(&mut img, 4.0, 3.0, 2.0, 30.0);
        let f = ring
            .scan(&img, (W, W), UPP, R_UM, 1.0, &CropRect::full(W, W))
            .unwrap();
        assert!(f.z >= Z_HIGH && (f.angle_rad - 4.0).abs() < 0.05, "{f:?}");
    }

    #[test]
    fn departures_are_read_back_where_they_are() {
        let mut ring = EdgeRing::new();
        // nothing scanned yet
        assert_eq!(ring.z_at(60.0, 1.0), None);
        let mut img = fiber(5);
        // a thin dark line through the band at angle 2.0, from 6 µm inside to the edge
        notch(&mut img, 2.0, 1.5, 6.0, -30.0);
        ring.scan(&img, (W, W), UPP, R_UM, 1.0, &CropRect::full(W, W))
            .unwrap();
        for r in [57.0, 59.0, 61.0] {
            let on = ring.z_at(r, 2.0).unwrap();
            assert!(on <= -3.0, "on the line at {r} µm: z {on}");
            // the same angle a full turn on reads the same
            assert_eq!(ring.z_at(r, 2.0 + std::f64::consts::TAU), Some(on));
            let off = ring.z_at(r, 2.5).unwrap();
            assert!(off.abs() < 2.5, "beside it at {r} µm: z {off}");
        }
        // outside the band: nothing
        assert_eq!(ring.z_at(R_UM - INNER_UM - 1.0, 2.0), None);
        assert_eq!(ring.z_at(R_UM + OUTER_UM + 1.0, 2.0), None);
        assert_eq!(ring.z_at(60.0, f64::NAN), None);
        // a scan that cannot measure leaves nothing to read
        assert!(ring
            .scan(&img, (W, W), UPP, 3.0, 1.0, &CropRect::full(W, W))
            .is_none());
        assert_eq!(ring.z_at(60.0, 2.0), None);
    }

    #[test]
    fn angles_out_of_view_take_no_part_and_too_little_view_is_none() {
        let mut ring = EdgeRing::new();
        let mut img = fiber(3);
        // a notch in the part of the crop that is not in view is not reported
        notch(&mut img, 0.0, 4.0, 3.0, -40.0);
        let view = CropRect {
            u0: 0,
            u1: W / 2 + 60,
            v0: 0,
            v1: W,
        };
        let f = ring.scan(&img, (W, W), UPP, R_UM, 1.0, &view).unwrap();
        assert!(f.z < Z_LOW, "{f:?}");
        assert!(f.angles_in_view > 0.5 && f.angles_in_view < 1.0);
        let view = CropRect {
            u0: 0,
            u1: W / 2 - 10,
            v0: 0,
            v1: W,
        };
        assert!(ring.scan(&img, (W, W), UPP, R_UM, 1.0, &view).is_none());
    }

    #[test]
    fn unusable_inputs_are_none_not_a_panic() {
        let mut ring = EdgeRing::new();
        let img = fiber(1);
        let full = CropRect::full(W, W);
        assert!(ring.scan(&img, (W, W), UPP, f64::NAN, 1.0, &full).is_none());
        assert!(ring.scan(&img, (W, W), 0.0, R_UM, 1.0, &full).is_none());
        assert!(ring.scan(&img, (W, W), UPP, 5.0, 1.0, &full).is_none());
        assert!(ring
            .scan(&img[..10], (W, W), UPP, R_UM, 1.0, &full)
            .is_none());
        // a radius whose band lies beyond the crop: no angle in view
        assert!(ring.scan(&img, (W, W), UPP, 400.0, 1.0, &full).is_none());
    }

    #[test]
    fn posterized_edges_are_not_notches_but_notches_still_are() {
        let mut ring = EdgeRing::new();
        let post = |img: &mut [f32]| img.iter_mut().for_each(|p| *p = (*p / 8.0).floor() * 8.0);
        let mut img = fiber(11);
        post(&mut img);
        let f = ring
            .scan(&img, (W, W), UPP, R_UM, 8.0, &CropRect::full(W, W))
            .unwrap();
        assert!(f.z < Z_LOW, "{f:?}");
        let mut img = fiber(12);
        notch(&mut img, 2.0, 4.0, 3.0, -40.0);
        post(&mut img);
        let f = ring
            .scan(&img, (W, W), UPP, R_UM, 8.0, &CropRect::full(W, W))
            .unwrap();
        assert!(f.z >= Z_HIGH && (f.angle_rad - 2.0).abs() < 0.05, "{f:?}");
    }

    #[test]
    fn grey_step_of_plain_and_posterized_frames() {
        let mut frame = image::GrayImage::new(200, 200);
        for (x, y, p) in frame.enumerate_pixels_mut() {
            p.0[0] = ((x + y) % 200) as u8 + 20;
        }
        assert_eq!(grey_step(&frame, [100.0, 100.0], 50.0), 1.0);
        for p in frame.pixels_mut() {
            p.0[0] = p.0[0] / 8 * 8;
        }
        let q = grey_step(&frame, [100.0, 100.0], 50.0);
        assert!((7.0..=8.5).contains(&q), "{q}");
        // degenerate inputs: the plain step
        assert_eq!(grey_step(&frame, [f64::NAN, 0.0], 50.0), 1.0);
        assert_eq!(
            grey_step(&image::GrayImage::new(0, 0), [0.0, 0.0], 5.0),
            1.0
        );
    }

    #[test]
    fn score_is_clamped_linear() {
        assert_eq!(score_of(0.0), 0.0);
        assert_eq!(score_of(Z_LOW), 0.0);
        assert_eq!(score_of(Z_HIGH), 1.0);
        assert_eq!(score_of(100.0), 1.0);
        assert!((score_of((Z_LOW + Z_HIGH) / 2.0) - 0.5).abs() < 1e-6);
    }
}
