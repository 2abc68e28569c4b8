//! Posterized frames: the grey levels between a camera's steps restored before the model.
//!
//! A camera path that keeps few grey levels — a 5- or 6-bit output, a tone curve applied after
//! an 8-bit ADC, the camera's own digital gain — delivers frames whose smooth shading moves in
//! steps of several grey levels. The model never saw such steps: it marks the plateaus' edges on
//! the ferrule and in the cladding as defects (validation 4005 under 5-bit posterization: 25
//! false FAILs of 200 frames; models/MODEL_CARD.md "Posterized frames").
//!
//! What the camera delivered says only that the picture's value at each pixel lies within half a
//! step of it. Of the pictures that agree with the frame that way, a smooth one is taken: a
//! Gaussian blur (σ = [`SIGMA_PER_STEP`] × step, at least 1 px) alternated [`ITERATIONS`] times
//! with putting every pixel back inside its half step. Shading steps become the ramps they were;
//! a defect deeper than a step keeps all but at most half a step of its contrast, and a feature
//! fainter than a step — which the camera already flattened into its plateaus — is not restored.
//!
//! Runs only on frames whose camera step ([`super::edge_ring::grey_step`]) is at least
//! [`MIN_STEP`]; the crop's cells are then that step × the exposure gain wide. The station's own
//! gain on an 8-bit frame is left as [`super::exposure`] was validated: smoothing a quarter
//! exposure's 4-level steps loses a failing scratch (tests/inspect_exposure.rs). On the
//! synthetic camera's frames, the second and third renderers' and the six reference photographs
//! the camera step stays under 2.5 (median 1.0); a clipped over-exposure can reach 3–4.
//! No heap allocation after the first crop of a geometry (buffers kept in [`Dequantizer`]).

/// Crops whose grey-level step is below this are left as they are.
pub const MIN_STEP: f32 = 3.0;
/// The blur's σ in crop pixels per grey level of step (at least 1 px).
pub const SIGMA_PER_STEP: f32 = 0.25;
/// Blur-and-project rounds.
pub const ITERATIONS: usize = 3;

/// Buffers for [`Dequantizer::apply`], reused from crop to crop.
#[derive(Debug, Default)]
pub struct Dequantizer {
    original: Vec<f32>,
    tmp: Vec<f32>,
    kernel: Vec<f32>,
}

impl Dequantizer {
    /// Restores `px` (`width * height` grey levels, row-major) in place when `step` ≥
    /// [`MIN_STEP`]; returns whether it did. A `px` of another length, a non-finite step or an
    /// empty crop leaves it untouched.
    pub fn apply(&mut self, px: &mut [f32], width: usize, height: usize, step: f32) -> bool {
        if !step.is_finite() || step < MIN_STEP || width == 0 || height == 0 {
            return false;
        }
        if width.checked_mul(height) != Some(px.len()) {
            return false;
        }
        let sigma = (SIGMA_PER_STEP * step).max(1.0);
        self.set_kernel(sigma);
        self.original.clear();
        self.original.extend_from_slice(px);
        self.tmp.clear();
        self.tmp.resize(px.len(), 0.0);
        let half = step / 2.0;
        for _ in 0..ITERATIONS {
            blur_rows(px, &mut self.tmp, width, &self.kernel);
            blur_cols(&self.tmp, px, width, height, &self.kernel);
            for (p, &o) in px.iter_mut().zip(&self.original) {
                *p = p.clamp(o - half, o + half);
            }
        }
        true
    }

    /// A normalized Gaussian kernel of radius ⌈3σ⌉.
    fn set_kernel(&mut self, sigma: f32) {
        let r = (3.0 * sigma).ceil() as usize;
        self.kernel.clear();
        let k = -0.5 / (sigma * sigma);
        self.kernel
            .extend((0..=2 * r).map(|i| ((i as f32 - r as f32).powi(2) * k).exp()));
        let sum: f32 = self.kernel.iter().sum();
        for w in &mut self.kernel {
            *w /= sum;
        }
    }
}

/// Horizontal pass of `src` into `dst`; the edge pixel repeats beyond the crop.
fn blur_rows(src: &[f32], dst: &mut [f32], width: usize, kernel: &[f32]) {
    let r = kernel.len() / 2;
    for (row_in, row_out) in src.chunks_exact(width).zip(dst.chunks_exact_mut(width)) {
        for (x, out) in row_out.iter_mut().enumerate() {
            let mut acc = 0.0;
            for (i, &w) in kernel.iter().enumerate() {
                let xi = (x + i).saturating_sub(r).min(width - 1);
                acc += w * row_in[xi];
            }
            *out = acc;
        }
    }
}

/// Vertical pass of `src` into `dst`; the edge pixel repeats beyond the crop.
fn blur_cols(src: &[f32], dst: &mut [f32], width: usize, height: usize, kernel: &[f32]) {
    let r = kernel.len() / 2;
    for (y, row_out) in dst.chunks_exact_mut(width).enumerate() {
        row_out.fill(0.0);
        for (i, &w) in kernel.iter().enumerate() {
            let yi = (y + i).saturating_sub(r).min(height - 1);
            let row_in = &src[yi * width..(yi + 1) * width];
            for (out, &v) in row_out.iter_mut().zip(row_in) {
                *out += w * v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A horizontal ramp from 60 to 180 grey levels over `w` px, quantized to `step`.
    fn posterized_ramp(w: usize, h: usize, step: f32) -> (Vec<f32>, Vec<f32>) {
        let truth: Vec<f32> = (0..w * h)
            .map(|i| 60.0 + 120.0 * (i % w) as f32 / (w - 1) as f32)
            .collect();
        let q = truth.iter().map(|v| (v / step).round() * step).collect();
        (truth, q)
    }

    fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    /// Largest jump between horizontal neighbours.
    fn largest_step(px: &[f32], w: usize) -> f32 {
        px.chunks_exact(w)
            .flat_map(|r| r.windows(2).map(|p| (p[1] - p[0]).abs()))
            .fold(0.0, f32::max)
    }

    #[test]
    fn a_posterized_ramp_becomes_a_ramp_again_within_half_a_step() {
        let (w, h) = (160, 40);
        let (truth, mut px) = posterized_ramp(w, h, 8.0);
        let q = px.clone();
        assert!(largest_step(&px, w) >= 8.0);
        let mut d = Dequantizer::default();
        assert!(d.apply(&mut px, w, h, 8.0));
        // never further than half a step from what the camera gave
        assert!(max_abs_diff(&px, &q) <= 4.0 + 1e-4);
        // the steps are gone: neighbours differ by little more than the ramp's own slope
        // (0.75 grey levels per px)
        assert!(largest_step(&px, w) < 2.5, "{}", largest_step(&px, w));
        // and the picture is closer to the truth than the camera's steps were (away from
        // the crop's left and right ends, where the edge pixel repeats)
        let inner = |v: &[f32]| -> f32 {
            v.chunks_exact(w)
                .flat_map(|r| r[10..w - 10].iter().copied())
                .zip(
                    truth
                        .chunks_exact(w)
                        .flat_map(|r| r[10..w - 10].iter().copied()),
                )
                .map(|(a, b)| (a - b).powi(2))
                .sum::<f32>()
        };
        assert!(
            inner(&px) < 0.5 * inner(&q),
            "{} vs {}",
            inner(&px),
            inner(&q)
        );
    }

    #[test]
    fn a_dark_scratch_deeper_than_a_step_keeps_its_contrast_but_half_a_step() {
        let (w, h) = (96, 96);
        let mut px = vec![128.0f32; w * h];
        // a 3-px wide vertical scratch 40 grey levels deep, posterized to steps of 8
        for y in 0..h {
            for x in 47..50 {
                px[y * w + x] = 88.0;
            }
        }
        let mut d = Dequantizer::default();
        assert!(d.apply(&mut px, w, h, 8.0));
        let depth = px[48 * w + 20] - px[48 * w + 48];
        assert!(depth >= 40.0 - 8.0 - 1e-3, "depth {depth}");
    }

    #[test]
    fn a_crop_with_a_fine_step_or_bad_arguments_is_left_as_it_is() {
        let (w, h) = (64, 16);
        let (_, q) = posterized_ramp(w, h, 2.0);
        let mut d = Dequantizer::default();
        for step in [1.0, 2.0, 2.99, f32::NAN, f32::INFINITY, -8.0] {
            let mut px = q.clone();
            assert!(!d.apply(&mut px, w, h, step), "step {step}");
            assert_eq!(px, q);
        }
        let mut px = q.clone();
        assert!(!d.apply(&mut px, w + 1, h, 8.0));
        assert!(!d.apply(&mut [], 0, 0, 8.0));
        assert_eq!(px, q);
    }

    #[test]
    fn buffers_are_not_regrown_after_the_first_crop() {
        let (w, h) = (64, 64);
        let (_, q) = posterized_ramp(w, h, 8.0);
        let mut d = Dequantizer::default();
        let mut px = q.clone();
        d.apply(&mut px, w, h, 8.0);
        let caps = (d.original.capacity(), d.tmp.capacity(), d.kernel.capacity());
        let mut px = q.clone();
        d.apply(&mut px, w, h, 6.0);
        assert_eq!(
            caps,
            (d.original.capacity(), d.tmp.capacity(), d.kernel.capacity())
        );
    }
}
