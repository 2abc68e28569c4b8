//! Horizontal bands and vertical stripes, measured and divided out before the fiber is located.
//!
//! A rolling-shutter camera under a PWM-dimmed LED (or mains-powered light) sees the light's
//! flicker as horizontal bands: each row is a little brighter or darker than its neighbours, a
//! few percent, over the whole width. An interlaced camera whose two fields differ in gain does
//! the same with period two; a sensor's column fixed-pattern noise draws vertical stripes. The
//! model was not trained on them and grades the bands as defects: on the validation set 4005
//! with 4 % bands every 90 rows, 86 of 200 frames FAILED wrongly (models/MODEL_CARD.md,
//! "Banding and column stripes").
//!
//! Model: frame = gain(row) × picture (and gain(column) × picture for stripes), on `ln(v + 8)`.
//! The row profile is, per row, the mean over every other column (~320 per row on wider
//! frames) of `ln(v + 8)` less its vertical moving average over 2·[`HALF_WINDOW`]+1 rows
//! (reflected at the frame's edges), leaving out samples more than 0.1 from their average (the
//! fiber's edge, a scratch, a particle: structure, not a band); the profile's own moving
//! average is subtracted, so slow illumination (vignetting, the fiber itself) is left alone and
//! only variation faster than ~100 rows counts. When the profile's robust amplitude (1.4826 ×
//! its median absolute deviation) exceeds [`MIN_AMPLITUDE`], every row is divided by its gain;
//! the column profile is measured the same way (every other row, ~240 per column on taller
//! frames, each less its horizontal moving average, which also takes out a row's gain, so it
//! reads the same before and after the rows' correction). On the synthetic camera, the second
//! renderer and the reference photographs the amplitudes stay below 0.010, so nothing there is
//! changed.
//!
//! The logs are fixed point (2¹⁶ per ln unit) and every sum is an exact integer: the same
//! result on every machine and vectorized masked sums (0.30 / 0.47 ms per 640x480 / 1152x864
//! frame against 0.64 / 1.02 ms in floating point, `cargo bench --bench pipeline --
//! condition`); amplitudes differ from the floating-point ones by at most 3e-4.
//!
//! Buffers are kept between frames: no heap allocation once they have the frame's size.

use image::GrayImage;

/// Half-width (pixels) of the moving averages.
pub const HALF_WINDOW: usize = 48;
/// Least robust amplitude (natural log units, ~fraction of brightness) that is corrected.
pub const MIN_AMPLITUDE: f64 = 0.012;
/// About this many samples per line: every other pixel at 640x480, every `stride`-th on
/// larger frames, so the cost does not grow with the frame's width (rows) or height (columns).
pub const SAMPLES_PER_ROW: usize = 320;
pub const SAMPLES_PER_COL: usize = 240;

/// The sampling stride along a line of `n` pixels for about `target` samples (at least 2).
pub fn stride(n: usize, target: usize) -> usize {
    n.div_ceil(target).max(2)
}

/// Frames smaller than this (either side) are not measured.
pub const MIN_SIDE: usize = 4 * HALF_WINDOW;
/// Offset added before taking logs (keeps dark pixels' noise from dominating).
const LOG_OFFSET: f64 = 8.0;
/// Samples farther than this from their moving average (ln units) are structure (the fiber's
/// edge, a scratch), not a band, and are left out of its line's level.
const MAX_SAMPLE_DEVIATION: f64 = 0.1;
/// Second pass: a line's level is the mean of its samples within this of the first pass's
/// mean (a trimmed mean, nearly as robust as a median and much cheaper).
const TRIM: f64 = 0.02;
/// A row / column with fewer usable samples than this share gets profile 0.
const MIN_SAMPLE_SHARE: f64 = 0.25;
/// 1 / Φ⁻¹(3/4): MAD → standard deviation of a normal distribution.
const MAD_TO_SIGMA: f64 = 1.4826;

/// What [`Destriper::correct_into`] found and divided out.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stripes {
    /// Robust amplitude of the row profile (horizontal bands).
    pub row_amplitude: f64,
    /// Robust amplitude of the column profile (vertical stripes), after the rows' correction.
    pub col_amplitude: f64,
    /// Whether rows / columns were corrected.
    pub rows_corrected: bool,
    pub cols_corrected: bool,
}

impl Stripes {
    pub fn corrected(&self) -> bool {
        self.rows_corrected || self.cols_corrected
    }
}

/// Scale of the fixed-point logs: `ln(v + 8)` × 2¹⁶, rounded (resolution 1.5e-5, far below
/// the 0.012 that counts). Every sum and deviation below is then an exact integer: no drift,
/// the same on every machine, and the masked sums vectorize (an integer sum may be reordered,
/// a float sum may not). A deviation from a moving average is kept as `WIN × value − window
/// sum`, in units of 1 / (WIN × FIX_SCALE); a line's sum of at most ~320 of them within 0.1
/// stays below 2.1e8, well inside an `i32`.
const FIX_SCALE: f64 = 65536.0;
/// Window of the moving averages.
const WIN: i32 = 2 * HALF_WINDOW as i32 + 1;
/// One deviation unit in ln units.
const DEV_UNIT: f64 = 1.0 / (WIN as f64 * FIX_SCALE);

/// Reusable buffers.
#[derive(Debug, Clone)]
pub struct Destriper {
    /// `ln(v + 8)` in fixed point ([`FIX_SCALE`]).
    lut: [i32; 256],
    /// Running sums along the averaged axis (fixed point, exact).
    acc: Vec<i32>,
    /// One line: fixed-point logs (column profile) / deviations (row profile).
    ext: Vec<i32>,
    line: Vec<i32>,
    /// Sums and counts of usable samples per column; the columns' first levels and the second
    /// pass's bounds about them.
    col_sum: Vec<i32>,
    col_n: Vec<i32>,
    col_first: Vec<f64>,
    col_lo: Vec<i32>,
    col_hi: Vec<i32>,
    /// Prefix sums of one line (column profile).
    prefix: Vec<i32>,
    /// Fixed-point logs of every `stride`-th column, all rows (row profile).
    plane: Vec<i32>,
    /// Deviations of the sampled rows from their moving averages (column profile; units
    /// [`DEV_UNIT`]).
    dev: Vec<i32>,
    /// The row and column profiles (ln units) and scratch.
    rows: Vec<f64>,
    cols: Vec<f64>,
    smooth: Vec<f64>,
    scratch: Vec<f64>,
}

impl Default for Destriper {
    fn default() -> Self {
        let mut lut = [0; 256];
        for (v, l) in lut.iter_mut().enumerate() {
            *l = ((v as f64 + LOG_OFFSET).ln() * FIX_SCALE).round() as i32;
        }
        Destriper {
            lut,
            acc: Vec::new(),
            ext: Vec::new(),
            line: Vec::new(),
            col_sum: Vec::new(),
            col_n: Vec::new(),
            col_first: Vec::new(),
            col_lo: Vec::new(),
            col_hi: Vec::new(),
            prefix: Vec::new(),
            dev: Vec::new(),
            plane: Vec::new(),
            rows: Vec::new(),
            cols: Vec::new(),
            smooth: Vec::new(),
            scratch: Vec::new(),
        }
    }
}

/// Index `i` (may be out of range) reflected into `0..n` as `d c b a | a b c d` (needs
/// `HALF_WINDOW < n`).
fn reflect(i: isize, n: usize) -> usize {
    let n = n as isize;
    let j = if i < 0 {
        -i - 1
    } else if i >= n {
        2 * n - i - 1
    } else {
        i
    };
    j.clamp(0, n - 1) as usize
}

/// The lower median (element `(n-1)/2` of the sorted values); reorders `v`. 0 for none.
fn lower_median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let k = (v.len() - 1) / 2;
    let (_, m, _) = v.select_nth_unstable_by(k, f64::total_cmp);
    *m
}

/// The mean of a line's usable samples (`sum` of `n` of `total`), or 0 when fewer than
/// [`MIN_SAMPLE_SHARE`] of them are usable.
fn line_level(sum: f64, n: usize, total: usize) -> f64 {
    if n == 0 || (n as f64) < MIN_SAMPLE_SHARE * total as f64 {
        return 0.0;
    }
    sum / n as f64
}

/// Sum and count of `d`'s values within `[lo, hi]` (exact; vectorized).
#[inline]
fn sum_within(d: &[i32], lo: i32, hi: i32) -> (i64, usize) {
    let (mut s, mut n) = (0i32, 0i32);
    for &v in d {
        let keep = (v >= lo) & (v <= hi);
        s += if keep { v } else { 0 };
        n += i32::from(keep);
    }
    (i64::from(s), n as usize)
}

/// The integer bounds of `[centre − half, centre + half]` (deviation units).
fn bounds(centre: f64, half: f64) -> (i32, i32) {
    (
        (centre - half).ceil() as i32,
        (centre + half).floor() as i32,
    )
}

/// A line's level (deviation units) from its deviations: the mean of those within
/// [`MAX_SAMPLE_DEVIATION`], then the mean of those within [`TRIM`] of that (0 / the first
/// mean when too few are usable).
fn trimmed_level(d: &[i32]) -> f64 {
    let (lo, hi) = bounds(0.0, MAX_SAMPLE_DEVIATION / DEV_UNIT);
    let (s, n) = sum_within(d, lo, hi);
    let first = line_level(s as f64, n, d.len());
    let (lo, hi) = bounds(first, TRIM / DEV_UNIT);
    let (s, n) = sum_within(d, lo, hi);
    if n == 0 || (n as f64) < MIN_SAMPLE_SHARE * d.len() as f64 {
        return first;
    }
    s as f64 / n as f64
}

/// `p` less its moving average (window 2·HALF_WINDOW+1, reflected), in place; `smooth` is
/// scratch.
fn high_pass(p: &mut [f64], smooth: &mut Vec<f64>) {
    let n = p.len();
    smooth.clear();
    let w = HALF_WINDOW as isize;
    let mut sum: f64 = (-w..=w).map(|k| p[reflect(k, n)]).sum();
    let len = (2 * HALF_WINDOW + 1) as f64;
    for i in 0..n as isize {
        smooth.push(sum / len);
        sum += p[reflect(i + w + 1, n)] - p[reflect(i - w, n)];
    }
    for (v, s) in p.iter_mut().zip(smooth.iter()) {
        *v -= s;
    }
}

/// `out[x] = WIN × ext[x + HALF_WINDOW] − sum(ext[x ..= x + 2·HALF_WINDOW])` (deviation
/// units) for every `x` of `out` (`ext`: one line of fixed-point logs with `HALF_WINDOW`
/// reflected samples before and `HALF_WINDOW + 1` after). Window sums are differences of prefix
/// sums (`prefix`, scratch), in wrapping arithmetic: a prefix sum may overflow on a very wide
/// frame, a window's sum (at most 97 × 365,000) never does, so the differences are exact.
fn box_deviations(ext: &[i32], prefix: &mut Vec<i32>, out: &mut [i32]) {
    let win = WIN as usize;
    prefix.clear();
    prefix.push(0);
    let mut acc = 0i32;
    prefix.extend(ext.iter().map(|&v| {
        acc = acc.wrapping_add(v);
        acc
    }));
    let centre = &ext[HALF_WINDOW..];
    let (head, tail) = (&prefix[..], &prefix[win..]);
    for (((o, &c), &hi), &lo) in out.iter_mut().zip(centre).zip(tail).zip(head) {
        *o = c.wrapping_mul(WIN).wrapping_sub(hi.wrapping_sub(lo));
    }
}

/// Robust amplitude of a profile: 1.4826 × median absolute deviation.
fn amplitude(p: &[f64], scratch: &mut Vec<f64>) -> f64 {
    scratch.clear();
    scratch.extend_from_slice(p);
    let med = lower_median(scratch);
    scratch.clear();
    scratch.extend(p.iter().map(|v| (v - med).abs()));
    MAD_TO_SIGMA * lower_median(scratch)
}

impl Destriper {
    /// The row profile (every `stride`-th column sampled), high-passed, into `self.rows`; returns
    /// its amplitude.
    fn row_profile(&mut self, px: &[u8], w: usize, h: usize) -> f64 {
        let hw = HALF_WINDOW as isize;
        let sx = stride(w, SAMPLES_PER_ROW);
        let cols = w.div_ceil(sx);
        // logs of every sampled column, all rows (one LUT pass; the rest is contiguous)
        self.plane.clear();
        for row in px.chunks_exact(w).take(h) {
            self.plane
                .extend(row.iter().step_by(sx).map(|&v| self.lut[usize::from(v)]));
        }
        let plane = &self.plane;
        // running vertical sums per sampled column: rows y-HW ..= y+HW (reflected)
        self.acc.clear();
        self.acc.resize(cols, 0);
        for k in -hw..=hw {
            let r = &plane[reflect(k, h) * cols..][..cols];
            for (a, &v) in self.acc.iter_mut().zip(r) {
                *a += v;
            }
        }
        self.rows.clear();
        self.line.clear();
        self.line.resize(cols, 0);
        for y in 0..h {
            let r = &plane[y * cols..][..cols];
            for ((d, &v), &a) in self.line.iter_mut().zip(r).zip(&self.acc) {
                *d = v * WIN - a;
            }
            self.rows.push(trimmed_level(&self.line) * DEV_UNIT);
            let add = &plane[reflect(y as isize + hw + 1, h) * cols..][..cols];
            let sub = &plane[reflect(y as isize - hw, h) * cols..][..cols];
            for ((a, &p), &m) in self.acc.iter_mut().zip(add).zip(sub) {
                *a += p - m;
            }
        }
        high_pass(&mut self.rows, &mut self.smooth);
        amplitude(&self.rows, &mut self.scratch)
    }

    /// The column profile (every `stride`-th row sampled), high-passed, into `self.cols`;
    /// returns its amplitude. Measured on the frame as it is: a row's correction is one factor
    /// for the whole row, which its horizontal moving average takes out again, so the column
    /// profile after the rows' correction is the same (up to the rounding of the corrected
    /// grey levels, which is not done here).
    fn col_profile(&mut self, px: &[u8], w: usize, h: usize) -> f64 {
        let hw = HALF_WINDOW as isize;
        let sy = stride(h, SAMPLES_PER_COL);
        let rows = h.div_ceil(sy);
        // deviations of every sampled row from its horizontal moving average (row-major)
        self.dev.clear();
        self.dev.resize(rows * w, 0);
        for (j, out) in self.dev.chunks_exact_mut(w).enumerate() {
            let line = &px[sy * j * w..][..w];
            // the row reflected at both ends: hw before, hw + 1 after
            self.ext.clear();
            self.ext
                .extend((-hw..0).map(|k| self.lut[usize::from(line[reflect(k, w)])]));
            self.ext
                .extend(line.iter().map(|&v| self.lut[usize::from(v)]));
            self.ext.extend(
                (w as isize..w as isize + hw + 1)
                    .map(|k| self.lut[usize::from(line[reflect(k, w)])]),
            );
            box_deviations(&self.ext, &mut self.prefix, out);
        }
        // a column's level: the mean of its deviations within 0.1, then within TRIM of that
        // (masked sums down the columns, exact and vectorized)
        let (lo, hi) = bounds(0.0, MAX_SAMPLE_DEVIATION / DEV_UNIT);
        self.col_sum.clear();
        self.col_sum.resize(w, 0);
        self.col_n.clear();
        self.col_n.resize(w, 0);
        for row in self.dev.chunks_exact(w) {
            for ((s, n), &d) in self.col_sum.iter_mut().zip(self.col_n.iter_mut()).zip(row) {
                let keep = (d >= lo) & (d <= hi);
                *s += if keep { d } else { 0 };
                *n += i32::from(keep);
            }
        }
        self.col_first.clear();
        self.col_first.extend(
            self.col_sum
                .iter()
                .zip(&self.col_n)
                .map(|(&s, &n)| line_level(f64::from(s), n as usize, rows)),
        );
        // the second pass's bounds per column
        self.col_lo.clear();
        self.col_hi.clear();
        for &f in &self.col_first {
            let (lo, hi) = bounds(f, TRIM / DEV_UNIT);
            self.col_lo.push(lo);
            self.col_hi.push(hi);
        }
        self.col_sum.iter_mut().for_each(|s| *s = 0);
        self.col_n.iter_mut().for_each(|n| *n = 0);
        for row in self.dev.chunks_exact(w) {
            for ((((s, n), &d), &lo), &hi) in self
                .col_sum
                .iter_mut()
                .zip(self.col_n.iter_mut())
                .zip(row)
                .zip(&self.col_lo)
                .zip(&self.col_hi)
            {
                let keep = (d >= lo) & (d <= hi);
                *s += if keep { d } else { 0 };
                *n += i32::from(keep);
            }
        }
        self.cols.clear();
        for x in 0..w {
            let n = f64::from(self.col_n[x]);
            // too few kept by the second pass: the first level stands
            let level = if n > 0.0 && n >= MIN_SAMPLE_SHARE * rows as f64 {
                f64::from(self.col_sum[x]) / n
            } else {
                self.col_first[x]
            };
            self.cols.push(level * DEV_UNIT);
        }
        high_pass(&mut self.cols, &mut self.smooth);
        amplitude(&self.cols, &mut self.scratch)
    }

    /// Measure `frame`'s bands and stripes; when either is above [`MIN_AMPLITUDE`], write the
    /// corrected frame into `out` (resized as needed) and report it. `out` is left as it was
    /// when nothing is corrected; `frame` is never changed.
    pub fn correct_into(&mut self, frame: &GrayImage, out: &mut GrayImage) -> Stripes {
        let (w, h) = (frame.width() as usize, frame.height() as usize);
        let mut st = Stripes::default();
        if w < MIN_SIDE || h < MIN_SIDE {
            return st;
        }
        let px = frame.as_raw();
        st.row_amplitude = self.row_profile(px, w, h);
        st.rows_corrected = st.row_amplitude > MIN_AMPLITUDE;
        st.col_amplitude = self.col_profile(px, w, h);
        st.cols_corrected = st.col_amplitude > MIN_AMPLITUDE;
        if !st.corrected() {
            return st;
        }
        // gains as factors: (v + 8) * exp(-row) * exp(-col) - 8
        for r in self.rows.iter_mut() {
            *r = if st.rows_corrected { (-*r).exp() } else { 1.0 };
        }
        for c in self.cols.iter_mut() {
            *c = if st.cols_corrected { (-*c).exp() } else { 1.0 };
        }
        if out.dimensions() != frame.dimensions() {
            *out = GrayImage::new(frame.width(), frame.height());
        }
        let dst: &mut [u8] = out;
        for y in 0..h {
            let fr = self.rows[y];
            let (src, dst) = (&px[y * w..(y + 1) * w], &mut dst[y * w..(y + 1) * w]);
            for ((d, &v), &fc) in dst.iter_mut().zip(src).zip(&self.cols) {
                let c = (f64::from(v) + LOG_OFFSET) * fr * fc - LOG_OFFSET;
                *d = c.clamp(0.0, 255.0).round() as u8;
            }
        }
        st
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Luma;

    /// A noisy end-face-like picture: bright ferrule, darker fiber disk with a soft edge, slow
    /// vignetting (640x480, the cladding 125 px in radius as at 0.5 µm/px).
    fn picture(w: u32, h: u32) -> GrayImage {
        let mut s = 0x9E37_79B9_7F4A_7C15u64;
        GrayImage::from_fn(w, h, |x, y| {
            // xorshift64*, two uniform draws -> a roughly normal noise of sigma ~2
            let mut draw = || {
                s ^= s >> 12;
                s ^= s << 25;
                s ^= s >> 27;
                (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
            };
            let noise = (draw() + draw() + draw() - 1.5) * 4.0;
            let (cx, cy) = (w as f64 / 2.0, h as f64 / 2.0);
            let r = (x as f64 - cx).hypot(y as f64 - cy);
            let vignette = 1.0 - 0.25 * (r / cx).powi(2);
            let inside = 1.0 / (1.0 + ((r - 125.0) / 1.5).exp());
            let base = 175.0 - 80.0 * inside;
            Luma([(base * vignette + noise).round().clamp(0.0, 255.0) as u8])
        })
    }

    fn banded(img: &GrayImage, period: f64, amp: f64) -> GrayImage {
        let mut out = img.clone();
        for (_, y, p) in out.enumerate_pixels_mut() {
            let g = 1.0 + amp * (std::f64::consts::TAU * y as f64 / period).cos();
            p.0[0] = (f64::from(p.0[0]) * g).round().clamp(0.0, 255.0) as u8;
        }
        out
    }

    fn mean_abs_diff(a: &GrayImage, b: &GrayImage) -> f64 {
        let n = a.as_raw().len() as f64;
        a.as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(&x, &y)| (f64::from(x) - f64::from(y)).abs())
            .sum::<f64>()
            / n
    }

    #[test]
    fn a_clean_picture_is_measured_and_left_alone() {
        let img = picture(640, 480);
        let mut d = Destriper::default();
        let mut out = GrayImage::new(1, 1);
        let st = d.correct_into(&img, &mut out);
        assert!(!st.corrected(), "{st:?}");
        assert!(
            st.row_amplitude < 0.006 && st.col_amplitude < 0.006,
            "{st:?}"
        );
        assert_eq!(out.dimensions(), (1, 1));
    }

    #[test]
    fn bands_are_divided_out() {
        let img = picture(640, 480);
        let mut d = Destriper::default();
        let mut out = GrayImage::default();
        for (period, amp) in [(37.0, 0.06), (13.0, 0.03), (2.0, 0.03), (70.0, 0.04)] {
            let b = banded(&img, period, amp);
            let st = d.correct_into(&b, &mut out);
            assert!(st.rows_corrected, "period {period}: {st:?}");
            let (before, after) = (mean_abs_diff(&b, &img), mean_abs_diff(&out, &img));
            assert!(
                after < 0.5 * before,
                "period {period}: {before:.2} -> {after:.2} grey levels from the clean picture"
            );
        }
    }

    #[test]
    fn column_stripes_are_divided_out() {
        let img = picture(640, 480);
        let mut striped = img.clone();
        let mut s = 99u32;
        let offs: Vec<f64> = (0..640)
            .map(|_| {
                s = s.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                ((s >> 16) % 13) as f64 - 6.0
            })
            .collect();
        for (x, _, p) in striped.enumerate_pixels_mut() {
            p.0[0] = (f64::from(p.0[0]) + offs[x as usize])
                .round()
                .clamp(0.0, 255.0) as u8;
        }
        let mut d = Destriper::default();
        let mut out = GrayImage::default();
        let st = d.correct_into(&striped, &mut out);
        assert!(st.cols_corrected && !st.rows_corrected, "{st:?}");
        assert!(mean_abs_diff(&out, &img) < 0.5 * mean_abs_diff(&striped, &img));
    }

    #[test]
    fn a_scratch_across_the_frame_is_not_a_band() {
        // a dark horizontal scratch, two pixels wide, over a third of the width: the
        // row's level leaves them out
        let mut img = picture(640, 480);
        for x in 200..400 {
            img.put_pixel(x, 120, Luma([20]));
            img.put_pixel(x, 121, Luma([20]));
        }
        let mut d = Destriper::default();
        let mut out = GrayImage::default();
        let st = d.correct_into(&img, &mut out);
        assert!(!st.corrected(), "{st:?}");
    }

    #[test]
    fn small_frames_are_not_measured() {
        let mut d = Destriper::default();
        let mut out = GrayImage::default();
        let st = d.correct_into(&GrayImage::new(100, 300), &mut out);
        assert_eq!(st, Stripes::default());
    }
}
