//! A small procedural end-face renderer for the locate tests (independent of `endface::synth`,
//! so that locate is checked against a second, simpler camera model too).
//!
//! In: a [`Scene`] (fiber geometry in µm, look, µm/px and aspect, nuisances). Out: a gray frame
//! and the true cladding center (frame pixels, pixel centers on integers) and radius along x.

#![allow(dead_code)]

use image::GrayImage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub const CLADDING_R_UM: f64 = 62.5;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Look {
    /// Dark fiber disk on a bright ferrule.
    DarkFiber,
    /// Brighter core and gray cladding on a darker ferrule.
    BrightFiber,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fiber {
    Sm,
    Mm50,
    Mm62,
}

/// A notch bitten into the cladding edge.
#[derive(Debug, Clone, Copy)]
pub struct Chip {
    pub angle: f64,
    pub half_width_rad: f64,
    pub depth_um: f64,
}

/// A round blob (dust, oil) in fiber µm coordinates.
#[derive(Debug, Clone, Copy)]
pub struct Blob {
    pub x_um: f64,
    pub y_um: f64,
    pub r_um: f64,
    /// Gray level the blob tends to.
    pub level: f64,
    /// 0..1 opacity.
    pub opacity: f64,
}

#[derive(Debug, Clone)]
pub struct Scene {
    pub width: u32,
    pub height: u32,
    pub center_in_frame: [f64; 2],
    pub um_per_px_x: f64,
    /// y-pixels per x-pixel of the same length (1.09 for PAL).
    pub aspect: f64,
    pub look: Look,
    pub fiber: Fiber,
    pub trench: bool,
    /// Intrinsic softness (sigma, µm) of the glass boundary and of the epoxy edge.
    pub edge_softness_um: f64,
    /// Camera blur sigma in pixels (defocus + optics): blurs every feature.
    pub blur_px: f64,
    pub noise: f64,
    /// Horizontal illumination gradient (fraction across the frame) and vignetting strength.
    pub gradient: f64,
    pub vignetting: f64,
    /// Epoxy ring width (µm), 0 for none, and its level as a mix of the glass (0) and
    /// ferrule (1) levels.
    pub epoxy_um: f64,
    pub epoxy_mix: f64,
    /// Signed amplitudes of thin lines just inside the glass edge and just outside the
    /// epoxy, and their width (µm).
    pub inner_rim: f64,
    pub outer_rim: f64,
    pub rim_width_um: f64,
    pub chips: Vec<Chip>,
    pub blobs: Vec<Blob>,
    pub jpeg_quality: Option<u8>,
    /// Scales the glass levels' distance from the ferrule level (1: the look's own levels;
    /// 0.25: a faint cladding edge).
    pub glass_contrast: f64,
    pub seed: u64,
}

impl Scene {
    /// A clean, centred, sharp fiber.
    pub fn simple(look: Look, fiber: Fiber) -> Self {
        Self {
            width: 640,
            height: 480,
            center_in_frame: [319.5, 239.5],
            um_per_px_x: 0.5,
            aspect: 1.0,
            look,
            fiber,
            trench: false,
            edge_softness_um: 0.3,
            blur_px: 0.7,
            noise: 2.0,
            gradient: 0.0,
            vignetting: 0.0,
            epoxy_um: 0.0,
            epoxy_mix: 0.8,
            inner_rim: 0.0,
            outer_rim: 0.0,
            rim_width_um: 0.5,
            chips: Vec::new(),
            blobs: Vec::new(),
            jpeg_quality: None,
            glass_contrast: 1.0,
            seed: 1,
        }
    }

    /// True cladding radius along x (frame pixels).
    pub fn radius_px(&self) -> f64 {
        CLADDING_R_UM / self.um_per_px_x
    }

    pub fn um_per_px_y(&self) -> f64 {
        self.um_per_px_x / self.aspect
    }

    /// A random scene: all looks and fibers, off-centre up to ±15 %, µm/px 0.4–0.7, some
    /// PAL-like non-square frames, chips, dust on the edge, occlusion, trench rings,
    /// epoxy, rims, uneven light, noise, blur and JPEG.
    pub fn random(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (width, height, aspect) = match rng.gen_range(0..10) {
            0..=5 => (640, 480, 1.0),
            6..=7 => (720, 576, 1.09),
            8 => (640, 480, 1.09),
            _ => (800, 600, 1.0),
        };
        let um_per_px_x = rng.gen_range(0.4..0.7);
        let look = if rng.gen_bool(0.5) {
            Look::DarkFiber
        } else {
            Look::BrightFiber
        };
        let fiber = match rng.gen_range(0..3) {
            0 => Fiber::Sm,
            1 => Fiber::Mm50,
            _ => Fiber::Mm62,
        };
        let r_x = CLADDING_R_UM / um_per_px_x;
        let r_y = r_x * aspect;
        // Off-centre up to ±15 % of the frame, but keep the cladding plus a margin inside.
        let max_dx = (0.15 * width as f64)
            .min(width as f64 / 2.0 - r_x - 12.0)
            .max(0.0);
        let max_dy = (0.15 * height as f64)
            .min(height as f64 / 2.0 - r_y - 12.0)
            .max(0.0);
        let cx = (width as f64 - 1.0) / 2.0 + rng.gen_range(-max_dx..=max_dx);
        let cy = (height as f64 - 1.0) / 2.0 + rng.gen_range(-max_dy..=max_dy);
        let mut chips = Vec::new();
        for _ in 0..rng.gen_range(0..=3) {
            chips.push(Chip {
                angle: rng.gen_range(0.0..std::f64::consts::TAU),
                half_width_rad: rng.gen_range(2.0f64..10.0).to_radians(),
                depth_um: rng.gen_range(1.5..8.0),
            });
        }
        let mut blobs = Vec::new();
        let dark = look == Look::DarkFiber;
        for _ in 0..rng.gen_range(0..=3) {
            let a: f64 = rng.gen_range(0.0..std::f64::consts::TAU);
            let rr = CLADDING_R_UM + rng.gen_range(-4.0..4.0);
            blobs.push(Blob {
                x_um: rr * a.cos(),
                y_um: rr * a.sin(),
                r_um: rng.gen_range(1.5..6.0),
                level: if rng.gen_bool(0.7) { 20.0 } else { 230.0 },
                opacity: rng.gen_range(0.5..0.95),
            });
        }
        // Partial occlusion: a large smudge over part of the edge.
        if rng.gen_bool(0.2) {
            let a: f64 = rng.gen_range(0.0..std::f64::consts::TAU);
            blobs.push(Blob {
                x_um: CLADDING_R_UM * a.cos(),
                y_um: CLADDING_R_UM * a.sin(),
                r_um: rng.gen_range(12.0..25.0),
                level: if dark { 120.0 } else { 60.0 },
                opacity: rng.gen_range(0.6..0.9),
            });
        }
        // Dust elsewhere on the fiber and ferrule.
        for _ in 0..rng.gen_range(0..6) {
            let a: f64 = rng.gen_range(0.0..std::f64::consts::TAU);
            let rr = rng.gen_range(0.0..120.0);
            blobs.push(Blob {
                x_um: rr * a.cos(),
                y_um: rr * a.sin(),
                r_um: rng.gen_range(1.0..5.0),
                level: 20.0,
                opacity: rng.gen_range(0.4..0.9),
            });
        }
        Self {
            width,
            height,
            center_in_frame: [cx, cy],
            um_per_px_x,
            aspect,
            look,
            fiber,
            trench: fiber != Fiber::Sm && rng.gen_bool(0.5),
            edge_softness_um: rng.gen_range(0.2..1.2),
            blur_px: rng.gen_range(0.4..2.0),
            noise: rng.gen_range(0.5..7.0),
            gradient: rng.gen_range(-0.3..0.3),
            vignetting: rng.gen_range(0.0..0.35),
            epoxy_um: if rng.gen_bool(0.6) {
                rng.gen_range(0.4..2.5)
            } else {
                0.0
            },
            epoxy_mix: rng.gen_range(0.6..1.0),
            inner_rim: rng.gen_range(-30.0..30.0),
            outer_rim: rng.gen_range(-30.0..30.0),
            rim_width_um: rng.gen_range(0.3..0.9),
            chips,
            blobs,
            jpeg_quality: if rng.gen_bool(0.3) {
                Some(rng.gen_range(40..85))
            } else {
                None
            },
            glass_contrast: 1.0,
            seed,
        }
    }

    /// Render the frame.
    pub fn render(&self) -> GrayImage {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ 0xA5A5_5A5A);
        let (w, h) = (self.width, self.height);
        let upx = self.um_per_px_x;
        let upy = self.um_per_px_y();
        let blur_um = self.blur_px * upx;
        let sigma_um = self.edge_softness_um.hypot(blur_um);
        let (core_r, core_gain) = match self.fiber {
            Fiber::Sm => (4.5, 1.0),
            Fiber::Mm50 => (25.0, 1.0),
            Fiber::Mm62 => (31.25, 1.0),
        };
        let (clad, core, ferrule) = match self.look {
            Look::DarkFiber => (75.0, 90.0 * core_gain, 195.0),
            Look::BrightFiber => (140.0, 205.0, 80.0),
        };
        let (clad, core) = (
            ferrule + (clad - ferrule) * self.glass_contrast,
            ferrule + (core - ferrule) * self.glass_contrast,
        );
        let step = |d_um: f64| smooth_step(d_um / sigma_um);
        let mut img = GrayImage::new(w, h);
        let diag = ((w as f64 / 2.0).powi(2) + (h as f64 / 2.0).powi(2)).sqrt();
        for y in 0..h {
            for x in 0..w {
                let u = (x as f64 - self.center_in_frame[0]) * upx;
                let v = (y as f64 - self.center_in_frame[1]) * upy;
                let r = u.hypot(v);
                let th = v.atan2(u);
                let mut clad_r = CLADDING_R_UM;
                for c in &self.chips {
                    let mut d = (th - c.angle).rem_euclid(std::f64::consts::TAU);
                    if d > std::f64::consts::PI {
                        d -= std::f64::consts::TAU;
                    }
                    let t = d / c.half_width_rad;
                    if t.abs() < 1.0 {
                        clad_r = clad_r.min(CLADDING_R_UM - c.depth_um * (1.0 - t * t).sqrt());
                    }
                }
                // Inside the glass.
                let mut glass = clad + (core - clad) * (1.0 - step(r - core_r));
                if self.trench {
                    let tr = 0.58 * CLADDING_R_UM;
                    let dip = if self.look == Look::DarkFiber {
                        -12.0
                    } else {
                        -20.0
                    };
                    glass += dip * (step(r - (tr - 1.2)) - step(r - (tr + 1.2)));
                }
                let glass_edge = glass;
                let epoxy_level = glass_edge + (ferrule - glass_edge) * self.epoxy_mix;
                let t1 = step(r - clad_r);
                let t2 = step(r - CLADDING_R_UM - self.epoxy_um);
                // Additive composition: with a zero-width epoxy ring this is one symmetric
                // step at the glass boundary.
                let mut val = glass + (epoxy_level - glass) * t1 + (ferrule - epoxy_level) * t2;
                let rw = self.rim_width_um.max(0.5 * upx);
                val += self.inner_rim * blurred_ridge(r - (clad_r - rw), rw, blur_um)
                    + self.outer_rim
                        * blurred_ridge(r - (CLADDING_R_UM + self.epoxy_um + rw), rw, blur_um);
                for b in &self.blobs {
                    let d = (u - b.x_um).hypot(v - b.y_um) - b.r_um;
                    let a = b.opacity * (1.0 - step(d));
                    val = val * (1.0 - a) + b.level * a;
                }
                // Illumination.
                let fx = (x as f64 - w as f64 / 2.0) / w as f64;
                let rf = ((x as f64 - w as f64 / 2.0).powi(2)
                    + (y as f64 - h as f64 / 2.0).powi(2))
                .sqrt()
                    / diag;
                val *= 1.0 + self.gradient * fx - self.vignetting * rf * rf;
                val += self.noise * gauss(&mut rng);
                img.put_pixel(x, y, image::Luma([val.round().clamp(0.0, 255.0) as u8]));
            }
        }
        if let Some(q) = self.jpeg_quality {
            img = jpeg_round_trip(&img, q);
        }
        img
    }
}

/// Ridge exp(-(x/w)^2) of unit height, blurred by a Gaussian of sigma `blur`.
fn blurred_ridge(x: f64, w: f64, blur: f64) -> f64 {
    let s0 = w / std::f64::consts::SQRT_2;
    let s = s0.hypot(blur);
    let z = x / s;
    if z.abs() > 6.0 {
        0.0
    } else {
        s0 / s * (-0.5 * z * z).exp()
    }
}

/// Smooth unit step (Gaussian CDF) of z = distance / sigma.
fn smooth_step(z: f64) -> f64 {
    if z > 5.0 {
        1.0
    } else if z < -5.0 {
        0.0
    } else {
        0.5 * (1.0 + erf(z / std::f64::consts::SQRT_2))
    }
}

/// Abramowitz–Stegun 7.1.26 (|error| < 1.5e-7).
fn erf(x: f64) -> f64 {
    let s = x.signum();
    let x = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let y = 1.0
        - (((((1.061_405_429 * t - 1.453_152_027) * t) + 1.421_413_741) * t - 0.284_496_736) * t
            + 0.254_829_592)
            * t
            * (-x * x).exp();
    s * y
}

fn gauss(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.gen_range(1e-12..1.0);
    let u2: f64 = rng.gen_range(0.0..1.0);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

pub fn jpeg_round_trip(img: &GrayImage, quality: u8) -> GrayImage {
    let mut buf = Vec::new();
    let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, quality);
    img.write_with_encoder(enc).expect("jpeg encode");
    image::load_from_memory(&buf)
        .expect("jpeg decode")
        .to_luma8()
}

/// Accuracy summary over many frames.
#[derive(Debug, Default)]
pub struct Stats {
    pub center_err_px: Vec<f64>,
    pub radius_err_rel: Vec<f64>,
    pub failures: Vec<String>,
}

impl Stats {
    pub fn quantile(v: &[f64], q: f64) -> f64 {
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        if s.is_empty() {
            return f64::NAN;
        }
        let i = ((s.len() - 1) as f64 * q).round() as usize;
        s[i]
    }
    pub fn report(&self) -> String {
        format!(
            "n={} failures={} center err median {:.3} px, p99 {:.3} px, max {:.3} px; radius err \
             median {:.3} %, p99 {:.3} %, max {:.3} %",
            self.center_err_px.len(),
            self.failures.len(),
            Self::quantile(&self.center_err_px, 0.5),
            Self::quantile(&self.center_err_px, 0.99),
            Self::quantile(&self.center_err_px, 1.0),
            100.0 * Self::quantile(&self.radius_err_rel, 0.5),
            100.0 * Self::quantile(&self.radius_err_rel, 0.99),
            100.0 * Self::quantile(&self.radius_err_rel, 1.0),
        )
    }
}
