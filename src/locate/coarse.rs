//! Coarse cladding search on a downsampled, aspect-corrected copy of the frame.
//!
//! In: the gray frame, the pixel aspect and a cladding radius range (circle-space x pixels).
//! Out: a [`CoarseHit`]: the cladding center and radius to within a few frame pixels, the edge
//! polarity (does the intensity rise or fall going outward across the cladding edge) and the
//! fraction of angular sectors supporting that edge.
//!
//! Steps: block-average downsample so that the short side is ~[`COARSE_SIDE`] px with y
//! divided by the aspect (the cladding becomes a circle), 3x3 binomial blur, Sobel gradient,
//! gradient-direction circular Hough voting for centers (both polarities, every radius in
//! range), then for the strongest few center peaks a polar table of the radial gradient from
//! which each concentric edge's angular support is measured and the cladding edge is chosen
//! (the outermost well-supported one, see [`choose_cladding`]).

use image::GrayImage;

/// Target length of the short side of the coarse image (coarse pixels).
pub(crate) const COARSE_SIDE: f64 = 150.0;
/// Most frame rows whose 8-bit sums fit a `u16` (257 × 255 = 65,535).
const MAX_ROWS_U16: usize = 257;
/// Number of center candidates examined after Hough voting.
const CANDIDATES: usize = 6;
/// Angular sectors of the polar table.
const SECTORS: usize = 72;
/// Minimum angular support for an edge to count at all.
const MIN_SUPPORT: f64 = 0.3;
/// A glass-to-ferrule step (gray levels, plateaus 14–28 % of r from the edge) smaller than
/// this does not decide the edge polarity: the two are about equally bright.
const FAR_STEP_MIN: f64 = 8.0;

/// Result of the coarse stage (circle space, frame x-pixel units).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CoarseHit {
    pub cx: f64,
    pub cy: f64,
    pub r: f64,
    /// +1: intensity rises going outward across the cladding edge (dark fiber on a bright
    /// ferrule); -1: it falls (bright fiber on a darker ferrule).
    pub polarity: f64,
    /// Full-resolution x-pixels per coarse pixel.
    pub factor: f64,
}

/// One concentric edge seen from a candidate center.
#[derive(Debug, Clone, Copy)]
struct Ring {
    r: f64,
    polarity: f64,
    support: f64,
    strength: f64,
}

/// Scratch buffers of the coarse stage (reused between frames).
#[derive(Default)]
pub(crate) struct Coarse {
    w: usize,
    h: usize,
    img: Vec<f32>,
    tmp: Vec<f32>,
    gx: Vec<f32>,
    gy: Vec<f32>,
    /// Gradient magnitude (computed once for the quantiles and the vote).
    mag: Vec<f32>,
    acc: Vec<f32>,
    acc_smooth: Vec<f32>,
    rowsum: Vec<f32>,
    /// Column sums of one block of frame rows.
    colsum: Vec<u32>,
    /// The same in 16 bits, for blocks of at most [`MAX_ROWS_U16`] rows.
    colsum16: Vec<u16>,
    hist: Vec<u32>,
    polar: Vec<f32>,
    rings: Vec<Ring>,
    peaks: Vec<(f32, usize)>,
    scratch: Vec<f64>,
    /// Per radius index of the polar buffer: (support, strength) for one polarity, and the
    /// sector counts it is made from.
    sup: Vec<(f64, f64)>,
    seen: Vec<u32>,
    hit: Vec<u32>,
    strength: Vec<f64>,
}

impl Coarse {
    /// Run the coarse search. `r_range` is the allowed cladding radius in circle-space
    /// x-pixels. `None` when no circular edge has enough support anywhere.
    pub fn search(
        &mut self,
        img: &GrayImage,
        aspect: f64,
        r_range: (f64, f64),
    ) -> Result<CoarseHit, String> {
        let (fw, fh) = (img.width() as f64, img.height() as f64);
        let short = fw.min(fh / aspect);
        let factor = (short / COARSE_SIDE).round().max(1.0);
        self.downsample(img, aspect, factor);
        self.blur();
        self.sobel();
        let (w, h) = (self.w, self.h);
        if w < 16 || h < 16 {
            return Err(format!("coarse image {w}x{h} is too small"));
        }

        // Edge threshold from the gradient-magnitude distribution.
        let (median, p85) = self.magnitude_quantiles();
        let thr = (3.0 * median).max(p85).max(1.5);
        let noise = median.max(0.25);

        let rmin = (r_range.0 / factor).max(3.0);
        let rmax = (r_range.1 / factor).max(rmin + 1.0);
        self.vote(thr, rmin, rmax);
        self.find_peaks(rmin);

        let edge_thr = (2.5 * noise).max(1.0);
        let mut best: Option<(f64, CoarseHit)> = None;
        let peaks = std::mem::take(&mut self.peaks);
        for &(_, idx) in &peaks {
            let (px, py) = ((idx % w) as f64, (idx / w) as f64);
            let Some(ring) = self.rings_at(px, py, rmin, rmax, edge_thr) else {
                continue;
            };
            // Evidence grows with the supported share of the circumference and (mildly) with
            // its length: a round dust particle or oil drop fully outlined must not beat a
            // fiber whose edge is partly hidden by it.
            let score =
                ring.support * ring.r.sqrt() * (1.0 + 1e-3 * ring.strength.min(100.0) / 100.0);
            if best.as_ref().is_none_or(|(s, _)| score > *s) {
                let (cx, cy) = coarse_to_circle(px, py, factor, aspect);
                best = Some((
                    score,
                    CoarseHit {
                        cx,
                        cy,
                        r: ring.r * factor,
                        polarity: ring.polarity,
                        factor,
                    },
                ));
            }
        }
        self.peaks = peaks;
        best.map(|(_, hit)| hit).ok_or_else(|| {
            format!(
                "no circular edge with radius {:.0}-{:.0} px is visible around more than {:.0} % \
                 of its circumference",
                r_range.0,
                r_range.1,
                MIN_SUPPORT * 100.0
            )
        })
    }

    /// Block-average into coarse pixels of `factor` x-pixels by `factor*aspect` y-pixels.
    fn downsample(&mut self, img: &GrayImage, aspect: f64, factor: f64) {
        let (fw, fh) = (img.width() as usize, img.height() as usize);
        let fx = factor as usize;
        let fy = factor * aspect;
        let w = fw / fx;
        let h = ((fh as f64) / fy).floor() as usize;
        self.w = w;
        self.h = h;
        self.img.clear();
        self.img.resize(w * h, 0.0);
        self.rowsum.clear();
        self.rowsum.resize(w, 0.0);
        let raw = img.as_raw();
        for j in 0..h {
            let y0 = (j as f64 * fy).floor() as usize;
            let y1 = (((j + 1) as f64 * fy).floor() as usize).clamp(y0 + 1, fh);
            let rows = (y0..y1).map(|y| &raw[y * fw..y * fw + w * fx]);
            if y1 - y0 <= MAX_ROWS_U16 {
                // 16-bit column sums: twice the lanes per vector (257 rows of 255 fit)
                block_sums(rows, fx, &mut self.colsum16, &mut self.rowsum);
            } else {
                block_sums(rows, fx, &mut self.colsum, &mut self.rowsum);
            }
            let norm = 1.0 / ((y1 - y0) * fx) as f32;
            for (o, s) in self.img[j * w..(j + 1) * w].iter_mut().zip(&self.rowsum) {
                *o = s * norm;
            }
        }
    }

    /// 3x3 binomial blur (edges clamped).
    fn blur(&mut self) {
        let (w, h) = (self.w, self.h);
        self.tmp.clear();
        self.tmp.resize(w * h, 0.0);
        for y in 0..h {
            let row = &self.img[y * w..(y + 1) * w];
            for x in 0..w {
                let l = row[x.saturating_sub(1)];
                let r = row[(x + 1).min(w - 1)];
                self.tmp[y * w + x] = 0.25 * l + 0.5 * row[x] + 0.25 * r;
            }
        }
        for y in 0..h {
            let up = y.saturating_sub(1);
            let dn = (y + 1).min(h - 1);
            for x in 0..w {
                self.img[y * w + x] = 0.25 * self.tmp[up * w + x]
                    + 0.5 * self.tmp[y * w + x]
                    + 0.25 * self.tmp[dn * w + x];
            }
        }
    }

    /// Sobel gradient normalized to intensity change per coarse pixel (border pixels 0).
    fn sobel(&mut self) {
        let (w, h) = (self.w, self.h);
        self.gx.clear();
        self.gx.resize(w * h, 0.0);
        self.gy.clear();
        self.gy.resize(w * h, 0.0);
        let p = &self.img;
        for y in 1..h.saturating_sub(1) {
            for x in 1..w - 1 {
                let i = y * w + x;
                let (a, b, c) = (p[i - w - 1], p[i - w], p[i - w + 1]);
                let (d, f) = (p[i - 1], p[i + 1]);
                let (g, hh, k) = (p[i + w - 1], p[i + w], p[i + w + 1]);
                self.gx[i] = ((c + 2.0 * f + k) - (a + 2.0 * d + g)) * 0.125;
                self.gy[i] = ((g + 2.0 * hh + k) - (a + 2.0 * b + c)) * 0.125;
            }
        }
    }

    /// Median and 85th percentile of the gradient magnitude (0.25-level histogram).
    fn magnitude_quantiles(&mut self) -> (f32, f32) {
        const BINS: usize = 1024;
        self.hist.clear();
        self.hist.resize(BINS, 0);
        self.mag.clear();
        self.mag.extend(
            self.gx
                .iter()
                .zip(&self.gy)
                .map(|(gx, gy)| (gx * gx + gy * gy).sqrt()),
        );
        for &m in &self.mag {
            let b = ((m * 4.0) as usize).min(BINS - 1);
            self.hist[b] += 1;
        }
        let total: u32 = self.hist.iter().sum();
        let quantile = |q: f64| {
            let target = (total as f64 * q) as u32;
            let mut acc = 0u32;
            for (b, &c) in self.hist.iter().enumerate() {
                acc += c;
                if acc > target {
                    return (b as f32 + 0.5) * 0.25;
                }
            }
            BINS as f32 * 0.25
        };
        (quantile(0.5), quantile(0.85))
    }

    /// Gradient-direction Hough voting for circle centers (both directions).
    fn vote(&mut self, thr: f32, rmin: f64, rmax: f64) {
        let (w, h) = (self.w, self.h);
        self.acc.clear();
        self.acc.resize(w * h, 0.0);
        let (wf, hf) = (w as f32 - 0.5, h as f32 - 0.5);
        let (r0, r1) = (rmin as f32, rmax as f32);
        for y in 1..h - 1 {
            for x in 1..w - 1 {
                let i = y * w + x;
                let m = self.mag[i];
                if m < thr {
                    continue;
                }
                let (gx, gy) = (self.gx[i], self.gy[i]);
                let (ux, uy) = (gx / m, gy / m);
                for s in [-1.0f32, 1.0] {
                    let mut r = r0;
                    while r <= r1 {
                        let cx = x as f32 + s * r * ux;
                        let cy = y as f32 + s * r * uy;
                        if cx < -0.5 || cy < -0.5 || cx >= wf || cy >= hf {
                            break; // a ray leaving a rectangle never re-enters it
                        }
                        let k = (cy + 0.5) as usize * w + (cx + 0.5) as usize;
                        self.acc[k] += 1.0;
                        r += 1.0;
                    }
                }
            }
        }
    }

    /// Local maxima of the 3x3-smoothed accumulator, strongest first, at least
    /// `rmin / 2` apart.
    fn find_peaks(&mut self, rmin: f64) {
        let (w, h) = (self.w, self.h);
        // 3x3 box as a vertical then a horizontal 3-sum: the votes are whole numbers far
        // below 2^24, so the sums are exact in any order
        self.acc_smooth.clear();
        self.acc_smooth.resize(w * h, 0.0);
        self.tmp.clear();
        self.tmp.resize(w, 0.0);
        for y in 1..h - 1 {
            let a = &self.acc;
            let (up, mid, dn) = (
                &a[(y - 1) * w..y * w],
                &a[y * w..(y + 1) * w],
                &a[(y + 1) * w..(y + 2) * w],
            );
            for (((t, &u), &m), &d) in self.tmp.iter_mut().zip(up).zip(mid).zip(dn) {
                *t = u + m + d;
            }
            let row = &mut self.acc_smooth[y * w..(y + 1) * w];
            for (o, t) in row[1..w - 1].iter_mut().zip(self.tmp.windows(3)) {
                *o = t[0] + t[1] + t[2];
            }
        }
        self.peaks.clear();
        let s = &self.acc_smooth;
        for y in 2..h.saturating_sub(2) {
            for x in 2..w - 2 {
                let i = y * w + x;
                let v = s[i];
                if v <= 0.0 {
                    continue;
                }
                if v >= s[i - 1]
                    && v > s[i + 1]
                    && v >= s[i - w]
                    && v > s[i + w]
                    && v >= s[i - w - 1]
                    && v >= s[i - w + 1]
                    && v > s[i + w - 1]
                    && v > s[i + w + 1]
                {
                    self.peaks.push((v, i));
                }
            }
        }
        // Strongest first; equal strengths in raster order (as pushed), which is what a stable
        // sort gave. Unstable: a stable sort of this many peaks allocates a buffer per frame.
        self.peaks
            .sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        // Greedy non-maximum suppression in place: keep a peak when it is far from every
        // kept (stronger) one.
        let min_d2 = (rmin * 0.5).max(2.0).powi(2);
        let mut kept = 0usize;
        for k in 0..self.peaks.len() {
            let (v, i) = self.peaks[k];
            let (x, y) = ((i % w) as f64, (i / w) as f64);
            let far = self.peaks[..kept].iter().all(|&(_, j)| {
                let (u, t) = ((j % w) as f64, (j / w) as f64);
                (u - x).powi(2) + (t - y).powi(2) >= min_d2
            });
            if far {
                self.peaks[kept] = (v, i);
                kept += 1;
                if kept == CANDIDATES {
                    break;
                }
            }
        }
        self.peaks.truncate(kept);
    }

    /// Bilinear sample of a coarse buffer; `None` outside.
    fn sample(buf: &[f32], w: usize, h: usize, x: f64, y: f64) -> Option<f32> {
        if x < 0.0 || y < 0.0 || x > (w - 1) as f64 || y > (h - 1) as f64 {
            return None;
        }
        let x0 = (x as usize).min(w - 2);
        let y0 = (y as usize).min(h - 2);
        let (tx, ty) = ((x - x0 as f64) as f32, (y - y0 as f64) as f32);
        let i = y0 * w + x0;
        let top = buf[i] * (1.0 - tx) + buf[i + 1] * tx;
        let bot = buf[i + w] * (1.0 - tx) + buf[i + w + 1] * tx;
        Some(top * (1.0 - ty) + bot * ty)
    }

    /// Concentric edges around coarse center (px, py) and the one chosen as cladding.
    fn rings_at(&mut self, px: f64, py: f64, rmin: f64, rmax: f64, edge_thr: f32) -> Option<Ring> {
        let (w, h) = (self.w, self.h);
        let r_lo = (rmin - 2.0).max(1.0);
        let nr = ((rmax + 2.0) - r_lo).ceil() as usize + 1;
        self.polar.clear();
        self.polar.resize(SECTORS * nr, f32::NAN);
        for a in 0..SECTORS {
            let th = a as f64 / SECTORS as f64 * std::f64::consts::TAU;
            let (c, s) = (th.cos(), th.sin());
            for ri in 0..nr {
                let r = r_lo + ri as f64;
                let (x, y) = (px + r * c, py + r * s);
                let (Some(gx), Some(gy)) = (
                    Self::sample(&self.gx, w, h, x, y),
                    Self::sample(&self.gy, w, h, x, y),
                ) else {
                    break;
                };
                self.polar[a * nr + ri] = gx * c as f32 + gy * s as f32;
            }
        }
        self.rings.clear();
        let mut sup = std::mem::take(&mut self.sup);
        for pol in [1.0f32, -1.0] {
            // support[ri], strength[ri]
            self.supports(nr, pol, edge_thr, &mut sup);
            let mut prev2 = (0.0f64, 0.0f64);
            let mut prev1 = (0.0f64, 0.0f64);
            for ri in 0..=nr {
                let cur = sup.get(ri).copied().unwrap_or((0.0, 0.0));
                // prev1 is a local maximum of support (ties broken by strength).
                if ri >= 1 {
                    let key = |v: (f64, f64)| v.0 + 1e-4 * v.1.min(1000.0) / 1000.0;
                    let k1 = key(prev1);
                    if k1 >= key(prev2) && k1 > key(cur) && prev1.0 >= MIN_SUPPORT {
                        let r = r_lo + (ri - 1) as f64;
                        if r >= rmin - 0.5 && r <= rmax + 0.5 {
                            self.rings.push(Ring {
                                r,
                                polarity: pol as f64,
                                support: prev1.0,
                                strength: prev1.1,
                            });
                        }
                    }
                }
                prev2 = prev1;
                prev1 = cur;
            }
        }
        self.sup = sup;
        let outer = choose_cladding(&self.rings)?;
        // The cladding edge's polarity is the sign of the step between the glass inside and
        // the ferrule outside, not of whatever line or ring is outermost (a bright rim or a
        // bright epoxy halo outside a dark fiber has a falling outer flank).
        let far = self.plateau_step(px, py, outer.r, (0.14, 0.28));
        let step = if far.abs() >= FAR_STEP_MIN {
            far
        } else {
            // Glass and ferrule about equally bright: the rims carry the edge, and the
            // nearer plateaus tell their order better than the flat far ones.
            self.plateau_step(px, py, outer.r, (0.06, 0.14))
        };
        if step == 0.0 || step.signum() == outer.polarity {
            return Some(outer);
        }
        let pol = step.signum();
        let best = self
            .rings
            .iter()
            .filter(|r| r.polarity == pol && r.r >= 0.85 * outer.r && r.r <= outer.r + 1.0)
            .max_by(|a, b| a.support.total_cmp(&b.support))
            .copied();
        Some(best.unwrap_or(Ring {
            polarity: pol,
            ..outer
        }))
    }

    /// Median over sectors of (mean intensity at `band` (fractions of r) outside) − (same
    /// inside). At 14–28 % of r it is the glass well inside the edge against the ferrule
    /// beyond zone C; nearer plateaus sit on the ring itself when the outermost edge is the
    /// outer flank of a bright epoxy ring or halo several µm wide (zone C is 5 µm wide), and
    /// give that flank's polarity.
    fn plateau_step(&mut self, px: f64, py: f64, r: f64, band: (f64, f64)) -> f64 {
        let (w, h) = (self.w, self.h);
        let d1 = (band.0 * r).max(1.5);
        let d2 = (band.1 * r).max(d1 + 1.0);
        let mut diffs = std::mem::take(&mut self.scratch);
        diffs.clear();
        for a in 0..SECTORS {
            let th = a as f64 / SECTORS as f64 * std::f64::consts::TAU;
            let (c, s) = (th.cos(), th.sin());
            let mut sum = 0.0f64;
            let mut n = 0usize;
            let mut d = d1;
            while d <= d2 + 1e-9 {
                let inside = Self::sample(&self.img, w, h, px + (r - d) * c, py + (r - d) * s);
                let outside = Self::sample(&self.img, w, h, px + (r + d) * c, py + (r + d) * s);
                if let (Some(i), Some(o)) = (inside, outside) {
                    sum += (o - i) as f64;
                    n += 1;
                }
                d += 1.0;
            }
            if n > 0 {
                diffs.push(sum / n as f64);
            }
        }
        let step = if diffs.len() >= SECTORS / 2 {
            super::fit::median_in_place(&mut diffs)
        } else {
            0.0
        };
        self.scratch = diffs;
        step
    }

    /// Angular support and mean strength at every radius index `ri` of the polar buffer for
    /// one polarity, into `out[ri]`: a sector supports the edge at `ri` when the radial
    /// gradient (max over ri-1..=ri+1) exceeds `thr`; the support is the share of the sectors
    /// that see radius `ri` at all (none when fewer than half do), the strength the mean
    /// gradient over the supporting ones. One pass over the buffer, sector by sector; each
    /// radius's strength is summed in sector order, as one radius at a time would.
    fn supports(&mut self, nr: usize, pol: f32, thr: f32, out: &mut Vec<(f64, f64)>) {
        let Coarse {
            polar,
            seen,
            hit,
            strength,
            ..
        } = self;
        seen.clear();
        seen.resize(nr, 0);
        hit.clear();
        hit.resize(nr, 0);
        strength.clear();
        strength.resize(nr, 0.0);
        for row in polar.chunks_exact(nr).take(SECTORS) {
            for ri in 0..nr {
                let lo = ri.saturating_sub(1);
                let hi = (ri + 1).min(nr - 1);
                let mut best = f32::NEG_INFINITY;
                let mut any = false;
                for &v in &row[lo..=hi] {
                    if v.is_finite() {
                        any = true;
                        best = best.max(pol * v);
                    }
                }
                if !any {
                    continue;
                }
                seen[ri] += 1;
                if best > thr {
                    hit[ri] += 1;
                    strength[ri] += best as f64;
                }
            }
        }
        out.clear();
        out.extend(
            seen.iter()
                .zip(hit.iter())
                .zip(strength.iter())
                .map(|((&n, &k), &st)| {
                    if (n as usize) < SECTORS / 2 {
                        (0.0, 0.0)
                    } else {
                        (k as f64 / n as f64, if k > 0 { st / k as f64 } else { 0.0 })
                    }
                }),
        );
    }
}

/// The sums of `fx`-pixel blocks across `rows` (each `out.len() * fx` pixels long) into `out`:
/// down the rows first (one vectorized add per pixel, in `colsum`), then across each block once.
/// Exact integer sums; `T` must hold a column's sum.
fn block_sums<'a, T>(
    rows: impl Iterator<Item = &'a [u8]>,
    fx: usize,
    colsum: &mut Vec<T>,
    out: &mut [f32],
) where
    T: Copy + Default + std::ops::AddAssign + From<u8> + Into<u32>,
{
    colsum.clear();
    colsum.resize(out.len() * fx, T::default());
    for row in rows {
        for (c, &v) in colsum.iter_mut().zip(row) {
            *c += T::from(v);
        }
    }
    for (o, chunk) in out.iter_mut().zip(colsum.chunks_exact(fx)) {
        *o = chunk.iter().map(|&c| c.into()).sum::<u32>() as f32;
    }
}

/// Pick the cladding among the concentric edges seen from one center: the outermost edge
/// with clear support (the core, trench and index rings all lie inside it; a rim line or a
/// narrow epoxy ring beside it is not resolved at this scale and is sorted out later on the
/// full-resolution edge profile).
fn choose_cladding(rings: &[Ring]) -> Option<Ring> {
    let s_max = rings.iter().map(|r| r.support).fold(0.0, f64::max);
    let sig = (0.55 * s_max).max(MIN_SUPPORT);
    rings
        .iter()
        .filter(|r| r.support >= sig)
        .max_by(|a, b| a.r.total_cmp(&b.r))
        .copied()
}

/// Coarse pixel coordinates → circle-space full-resolution coordinates.
fn coarse_to_circle(px: f64, py: f64, factor: f64, aspect: f64) -> (f64, f64) {
    (
        px * factor + (factor - 1.0) * 0.5,
        (py + 0.5) * factor - 0.5 / aspect,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The per-radius computation `supports` replaced: one radius index at a time.
    fn support_at(c: &Coarse, ri: usize, nr: usize, pol: f32, thr: f32) -> (f64, f64) {
        let (mut seen, mut hit, mut strength) = (0usize, 0usize, 0.0f64);
        for a in 0..SECTORS {
            let row = &c.polar[a * nr..(a + 1) * nr];
            let (lo, hi) = (ri.saturating_sub(1), (ri + 1).min(nr - 1));
            let mut best = f32::NEG_INFINITY;
            let mut any = false;
            for &v in &row[lo..=hi] {
                if v.is_finite() {
                    any = true;
                    best = best.max(pol * v);
                }
            }
            if !any {
                continue;
            }
            seen += 1;
            if best > thr {
                hit += 1;
                strength += best as f64;
            }
        }
        if seen < SECTORS / 2 {
            return (0.0, 0.0);
        }
        (
            hit as f64 / seen as f64,
            if hit > 0 { strength / hit as f64 } else { 0.0 },
        )
    }

    #[test]
    fn supports_in_one_pass_are_the_per_radius_ones_bit_for_bit() {
        let mut s = 0x2545_F491_4F6C_DD1Du64;
        let mut draw = || {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32
        };
        for nr in [1usize, 2, 3, 17, 60] {
            let mut c = Coarse {
                polar: (0..SECTORS * nr).map(|_| 40.0 * draw() - 20.0).collect(),
                ..Default::default()
            };
            // gradients in [-20, 20); rays cut short (NaN tails): half of the sectors from nr/2
            // on (exactly half still see those radii), two thirds from 3nr/4 on (too few)
            for a in 0..SECTORS {
                let cut = if a % 2 == 0 {
                    nr / 2
                } else if a % 3 == 0 {
                    nr * 3 / 4
                } else {
                    nr
                };
                for v in &mut c.polar[a * nr + cut..(a + 1) * nr] {
                    *v = f32::NAN;
                }
            }
            let mut out = Vec::new();
            for pol in [1.0f32, -1.0] {
                for thr in [0.0f32, 5.0, 12.5] {
                    c.supports(nr, pol, thr, &mut out);
                    assert_eq!(out.len(), nr);
                    for (ri, &got) in out.iter().enumerate() {
                        let want = support_at(&c, ri, nr, pol, thr);
                        assert_eq!(got.0.to_bits(), want.0.to_bits(), "support nr {nr} ri {ri}");
                        assert_eq!(
                            got.1.to_bits(),
                            want.1.to_bits(),
                            "strength nr {nr} ri {ri}"
                        );
                    }
                }
            }
        }
    }
}
