//! Turns a [`SceneSpec`] into pixels and exact truth.
//!
//! In: a scene (all geometry in fiber µm). Out: an 8-bit gray frame and its [`Truth`].
//!
//! Pipeline (the order a real camera imposes): scene radiance (ferrule, epoxy, cladding,
//! core, rims, texture, normal ferrule marks, then each defect composited as a local delta
//! patch) → defocus blur → illumination gain (gradient, vignetting, hotspot) and frame-grabber
//! border → sensor noise (shot + read) → 8-bit quantization → optional JPEG round trip.
//! A defect's mask is the set of pixels whose noise-free final level it changes by at least
//! max(2.5 gray levels, 20 % of its own peak change) — computed from its own blurred delta,
//! so masks are exact even where defects overlap the rim, the border or saturation.

use super::raster::{blur_dense, gaussian_kernel, mix64, noise_1d, Patch, ValueNoise};
use super::scene::{Blob, ChipShape, DefectSpec, SceneSpec, Shape, Stroke, Tone, TRENCH_RATIO};
use super::truth::{DefectTruth, StyleTags, Truth};
use super::verdict;
use crate::geometry::CLADDING_RADIUS_UM;
use image::{GrayImage, Luma};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use tracing::debug;

/// Absolute part of the visibility threshold (gray levels).
const VISIBLE_ABS: f32 = 2.5;
/// Relative part of the visibility threshold (fraction of the defect's own peak change).
const VISIBLE_REL: f32 = 0.2;
/// Normal ferrule marks fade in between these radii (µm), beyond the contact zone.
const MARKS_FADE_UM: (f64, f64) = (127.0, 133.0);

/// Frame geometry shared by the rasterizers.
struct Geo {
    w: usize,
    h: usize,
    cx: f64,
    cy: f64,
    sx: f64,
    sy: f64,
    /// Anti-aliasing footprint of one pixel (µm).
    aa_um: f64,
}

impl Geo {
    #[inline]
    fn um(&self, x: usize, y: usize) -> [f64; 2] {
        [
            (x as f64 - self.cx) * self.sx,
            (y as f64 - self.cy) * self.sy,
        ]
    }

    #[inline]
    fn px(&self, p_um: [f64; 2]) -> [f64; 2] {
        [self.cx + p_um[0] / self.sx, self.cy + p_um[1] / self.sy]
    }

    /// Frame-clipped pixel box around a µm point with a µm radius: `(x0, y0, x1, y1)` exclusive.
    fn box_around(&self, c_um: [f64; 2], r_um: f64) -> (i32, i32, i32, i32) {
        let p = self.px(c_um);
        let rx = r_um / self.sx + 1.0;
        let ry = r_um / self.sy + 1.0;
        (
            ((p[0] - rx).floor() as i32).clamp(0, self.w as i32),
            ((p[1] - ry).floor() as i32).clamp(0, self.h as i32),
            ((p[0] + rx).ceil() as i32 + 1).clamp(0, self.w as i32),
            ((p[1] + ry).ceil() as i32 + 1).clamp(0, self.h as i32),
        )
    }
}

#[inline]
fn step(x: f64, s: f64) -> f64 {
    let z = 1.702 * x / s;
    if z > 12.0 {
        1.0
    } else if z < -12.0 {
        0.0
    } else {
        1.0 / (1.0 + (-z).exp())
    }
}

#[inline]
fn ridge(x: f64, w: f64) -> f64 {
    let z = x / w;
    if z.abs() > 4.0 {
        0.0
    } else {
        (-z * z).exp()
    }
}

/// Fraction of a pixel footprint `aa` centred at distance `d` from a line's axis covered by a
/// line of width `w` (1-D box filter).
#[inline]
fn line_cover(d: f64, w: f64, aa: f64) -> f64 {
    let lo = (d - aa / 2.0).max(-w / 2.0);
    let hi = (d + aa / 2.0).min(w / 2.0);
    ((hi - lo) / aa).clamp(0.0, 1.0)
}

/// Triangular noise in [-1, 1] from a pixel hash.
#[inline]
fn grain(seed: u64, i: usize) -> f32 {
    let z = mix64(seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let a = (z & 0xFFFF) as f32 / 65535.0;
    let b = ((z >> 16) & 0xFFFF) as f32 / 65535.0;
    a + b - 1.0
}

/// Render one frame and its truth. Deterministic: the same spec gives the same bytes.
pub fn render(spec: &SceneSpec) -> (GrayImage, Truth) {
    let w = spec.width as usize;
    let h = spec.height as usize;
    let geo = Geo {
        w,
        h,
        cx: spec.center_in_frame[0],
        cy: spec.center_in_frame[1],
        sx: spec.scale.um_per_px_x,
        sy: spec.scale.um_per_px_y,
        aa_um: 0.5 * (spec.scale.um_per_px_x + spec.scale.um_per_px_y),
    };

    let mut radiance = base_radiance(spec, &geo);

    // Normal marks beyond the contact zone (not defects).
    for s in &spec.ferrule.strokes {
        let patch = strokes_patch(
            std::slice::from_ref(s),
            &geo,
            &radiance,
            Some(MARKS_FADE_UM),
        );
        apply(&mut radiance, &patch, w);
    }

    // Defects, composited in order; each keeps its own delta patch.
    let mut patches: Vec<(usize, Patch)> = Vec::with_capacity(spec.defects.len());
    for (i, d) in spec.defects.iter().enumerate() {
        let patch = defect_patch(d, &geo, &radiance);
        apply(&mut radiance, &patch, w);
        patches.push((i, patch));
    }

    let kernel = gaussian_kernel(spec.camera.blur_sigma_px);
    let blurred = blur_dense(&radiance, w, h, &kernel);
    drop(radiance);
    let gain = gain_map(spec);
    let [bl, br, bt] = spec.camera.border_px.map(|b| b as usize);
    let clean: Vec<f32> = blurred
        .iter()
        .zip(&gain)
        .enumerate()
        .map(|(i, (b, g))| {
            let (x, y) = (i % w, i / w);
            if x < bl || x + br >= w || y < bt {
                spec.camera.black_level
            } else {
                b * g
            }
        })
        .collect();

    // Truth for each defect from its own blurred change.
    let mut defects = Vec::new();
    let mut outside_defects = Vec::new();
    for (i, patch) in &patches {
        let d = &spec.defects[*i];
        let Some(t) = defect_truth(d, patch, &kernel, &gain, &clean, &geo, spec) else {
            debug!(kind = %d.kind, "defect not visible; left out of the truth");
            continue;
        };
        if t.zone.is_some() {
            defects.push(t);
        } else {
            outside_defects.push(t);
        }
    }

    // Sensor noise and quantization.
    let mut rng = ChaCha8Rng::seed_from_u64(mix64(spec.noise_seed ^ 0x5EED_0001));
    let rn2 = spec.camera.read_noise * spec.camera.read_noise;
    let mut img = GrayImage::new(spec.width, spec.height);
    for (px, c) in img.pixels_mut().zip(&clean) {
        let n: f32 = StandardNormal.sample(&mut rng);
        let sigma = (spec.camera.shot_noise * c.max(0.0) + rn2).sqrt();
        *px = Luma([(c + sigma * n).round().clamp(0.0, 255.0) as u8]);
    }
    let mut jpeg_quality = spec.camera.jpeg_quality;
    if let Some(q) = jpeg_quality {
        match jpeg_round_trip(&img, q) {
            Ok(j) => img = j,
            Err(e) => {
                debug!(error = %e, "JPEG round trip failed; frame kept without JPEG artefacts");
                jpeg_quality = None;
            }
        }
    }

    let feats: Vec<verdict::Feature> = defects.iter().map(DefectTruth::feature).collect();
    let (v, reasons) = verdict::grade_features(spec.fiber, &feats);
    let look = &spec.look;
    let truth = Truth {
        width: spec.width,
        height: spec.height,
        fiber: spec.fiber,
        center_in_frame: spec.center_in_frame,
        cladding_radius_px: CLADDING_RADIUS_UM / spec.scale.um_per_px_x,
        scale: spec.scale,
        style: StyleTags {
            look: look.look,
            look_mix: look.look_mix,
            core_diameter_um: spec.core_diameter_um,
            trench_ring: look.trench_ring != 0.0,
            trench_band: look.trench_ring != 0.0 && look.trench_band_outer > 0.0,
            double_edge: look.epoxy_width_um >= 0.8
                && look.inner_rim.abs() >= 8.0
                && look.outer_rim.abs() >= 8.0,
            epoxy_width_um: look.epoxy_width_um as f64,
            edge_softness_um: look.edge_softness_um as f64,
            blur_sigma_px: spec.camera.blur_sigma_px as f64,
            read_noise: spec.camera.read_noise as f64,
            vignetting: spec.illumination.vignette as f64,
            jpeg_quality,
            frame_border: spec.camera.border_px.iter().any(|b| *b > 0),
            ferrule_scratches: spec.ferrule.scratch_count,
        },
        defects,
        outside_defects,
        verdict: v,
        grade_reasons: reasons,
    };
    (img, truth)
}

fn jpeg_round_trip(img: &GrayImage, quality: u8) -> Result<GrayImage, image::ImageError> {
    let mut buf = Vec::new();
    let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, quality);
    img.write_with_encoder(enc)?;
    Ok(image::load_from_memory_with_format(&buf, image::ImageFormat::Jpeg)?.to_luma8())
}

fn apply(radiance: &mut [f32], patch: &Patch, w: usize) {
    for (py, span) in patch.spans.iter().enumerate() {
        let Some((a, b)) = *span else { continue };
        let fy = patch.y0 as usize + py;
        for px in a..=b {
            let fx = patch.x0 as usize + px;
            radiance[fy * w + fx] += patch.get(px, py);
        }
    }
}

fn base_radiance(spec: &SceneSpec, geo: &Geo) -> Vec<f32> {
    let (w, h) = (geo.w, geo.h);
    let look = &spec.look;
    let fer = &spec.ferrule;
    let seed = spec.noise_seed;
    let r_clad = CLADDING_RADIUS_UM;
    let r_core = spec.core_diameter_um / 2.0;
    let we = look.epoxy_width_um as f64;
    let soft = (look.edge_softness_um as f64).max(0.45 * geo.aa_um);
    let core_soft = (look.core_softness_um as f64).max(0.45 * geo.aa_um);
    let rimw = (look.rim_width_um as f64).max(0.4 * geo.aa_um);
    let fiber_outer = r_clad + we + 5.0 * soft + 4.0 * rimw + 2.0;
    let mottle = ValueNoise::new(
        mix64(seed ^ 1),
        w,
        h,
        (fer.mottle_scale_um as f64 / geo.sx) as f32,
    );
    let mottle2 = ValueNoise::new(
        mix64(seed ^ 2),
        w,
        h,
        (fer.mottle_scale_um as f64 / 3.0 / geo.sx) as f32,
    );
    let tex = ValueNoise::new(
        mix64(seed ^ 3),
        w,
        h,
        (fer.texture_scale_um as f64 / geo.sx) as f32,
    );
    let gseed = mix64(seed ^ 4);
    let c_lvl = look.cladding_level as f64;
    let f_lvl = look.ferrule_level as f64;
    let epoxy = c_lvl
        + look.cladding_edge_shade as f64
        + (f_lvl - c_lvl - look.cladding_edge_shade as f64) * look.epoxy_mix as f64;
    let glow_r = look.core_glow_radius_um as f64;
    let mut out = vec![0.0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let [u, v] = geo.um(x, y);
            let r = u.hypot(v);
            let g = grain(gseed, i);
            let (xf, yf) = (x as f32, y as f32);
            let ferrule = f_lvl as f32
                + fer.grain * g
                + fer.mottle * (mottle.at(xf, yf) + 0.5 * mottle2.at(xf, yf))
                + fer.texture * tex.at(xf, yf);
            if r > fiber_outer {
                out[i] = ferrule;
                continue;
            }
            let rn = r / r_clad;
            let mut fiber = c_lvl
                + look.cladding_edge_shade as f64 * rn * rn
                + look.core_delta as f64 * (1.0 - step(r - r_core, core_soft))
                + look.core_ring as f64 * ridge(r - r_core, 0.7)
                + look.trench_ring as f64
                    * if look.trench_band_outer > 0.0 {
                        step(r - r_core, core_soft)
                            - step(r - look.trench_band_outer as f64 * r_clad, 1.0)
                    } else {
                        ridge(r - TRENCH_RATIO * r_clad, 0.8)
                    }
                + look.glass_grain as f64 * g as f64;
            if look.core_glow != 0.0 {
                fiber += look.core_glow as f64 * (-(r / glow_r).powi(2)).exp();
            }
            let t1 = step(r - r_clad, soft);
            let t2 = step(r - (r_clad + we), soft);
            let mut val = fiber * (1.0 - t1) + epoxy * t1;
            val = val * (1.0 - t2) + ferrule as f64 * t2;
            let mut rim = look.inner_rim as f64 * ridge(r - (r_clad - rimw), rimw)
                + look.outer_rim as f64 * ridge(r - (r_clad + we + rimw), rimw);
            if look.relief != 0.0 && rim != 0.0 {
                rim *= 1.0 + look.relief as f64 * (v.atan2(u) - look.relief_angle_rad).cos();
            }
            out[i] = (val + rim) as f32;
        }
    }
    out
}

fn gain_map(spec: &SceneSpec) -> Vec<f32> {
    let (w, h) = (spec.width as usize, spec.height as usize);
    let il = &spec.illumination;
    let (hw, hh) = (w as f64 / 2.0, h as f64 / 2.0);
    let dmax2 = hw * hw + hh * hh;
    let two_s2 = 2.0 * (il.hotspot_sigma_px as f64).powi(2);
    let mut g = vec![0.0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            let nx = (x as f64 - hw) / hw;
            let ny = (y as f64 - hh) / hh;
            let dvx = x as f64 - il.vignette_center_in_frame[0];
            let dvy = y as f64 - il.vignette_center_in_frame[1];
            let vig = 1.0 - il.vignette as f64 * ((dvx * dvx + dvy * dvy) / dmax2).min(1.5);
            let mut gain = il.gain as f64
                * (1.0 + il.gradient[0] as f64 * nx + il.gradient[1] as f64 * ny)
                * vig;
            if il.hotspot != 0.0 {
                let dhx = x as f64 - il.hotspot_center_in_frame[0];
                let dhy = y as f64 - il.hotspot_center_in_frame[1];
                gain *= 1.0 + il.hotspot as f64 * (-(dhx * dhx + dhy * dhy) / two_s2).exp();
            }
            g[y * w + x] = gain.max(0.05) as f32;
        }
    }
    g
}

fn defect_patch(d: &DefectSpec, geo: &Geo, radiance: &[f32]) -> Patch {
    match &d.shape {
        Shape::Strokes(s) => strokes_patch(s, geo, radiance, None),
        Shape::Blob(b) => blob_patch(b, geo, radiance),
        Shape::Chip(c) => chip_patch(c, geo, radiance),
    }
}

/// Delta patch of one or more strokes (combined by the strongest cover), optionally faded
/// in between two radii (µm) so that it only shows beyond the contact zone.
fn strokes_patch(
    strokes: &[Stroke],
    geo: &Geo,
    radiance: &[f32],
    fade_um: Option<(f64, f64)>,
) -> Patch {
    let (w, h) = (geo.w, geo.h);
    let mut lo = vec![i32::MAX; h];
    let mut hi = vec![i32::MIN; h];
    let step_um = 0.5 * geo.sx.min(geo.sy);
    for s in strokes {
        let hw_um = s.width_um.max(s.end_width_um) / 2.0 + 1.5 * geo.aa_um;
        let mx = (hw_um / geo.sx).ceil() as i32 + 1;
        let my = (hw_um / geo.sy).ceil() as i32 + 1;
        for p in s.path.samples(step_um) {
            let q = geo.px(p);
            let (qx, qy) = (q[0].round() as i32, q[1].round() as i32);
            if qx + mx < 0 || qx - mx >= w as i32 || qy + my < 0 || qy - my >= h as i32 {
                continue;
            }
            for y in (qy - my).max(0)..=(qy + my).min(h as i32 - 1) {
                let yy = y as usize;
                lo[yy] = lo[yy].min((qx - mx).max(0));
                hi[yy] = hi[yy].max((qx + mx).min(w as i32 - 1));
            }
        }
    }
    let rows: Vec<usize> = (0..h).filter(|&y| lo[y] <= hi[y]).collect();
    let (Some(&y0), Some(&y1)) = (rows.first(), rows.last()) else {
        return Patch::new(0, 0, 0, 0);
    };
    let x0 = rows.iter().map(|&y| lo[y]).min().unwrap_or(0);
    let x1 = rows.iter().map(|&y| hi[y]).max().unwrap_or(0);
    let mut patch = Patch::new(x0, y0 as i32, x1 + 1, y1 as i32 + 1);
    let lens: Vec<f64> = strokes
        .iter()
        .map(|s| s.path.length_um().max(1e-9))
        .collect();
    for &y in &rows {
        for x in lo[y]..=hi[y] {
            let x = x as usize;
            let p = geo.um(x, y);
            let mut best = 0.0f64;
            for (s, len) in strokes.iter().zip(&lens) {
                let (d, sl) = s.path.closest(p);
                let frac = sl / len;
                let width = s.width_um + (s.end_width_um - s.width_um) * frac;
                let cover = line_cover(d, width, geo.aa_um);
                if cover <= 0.0 {
                    continue;
                }
                // Rounded groove profile across the width.
                let q = d / (width / 2.0 + geo.aa_um);
                let groove = (1.0 - q * q).max(0.0).sqrt();
                let on = if s.gaps > 0.0 {
                    let n = noise_1d(s.seed ^ 0xB4EA_C0DE, sl, s.gap_scale_um);
                    let t = ((n - s.gaps + 0.1) / 0.2).clamp(0.0, 1.0);
                    t * t * (3.0 - 2.0 * t)
                } else {
                    1.0
                };
                let speck = 1.0 - s.speckle * noise_1d(s.seed, sl, 2.5);
                let val = cover * groove * on * speck * s.contrast;
                if val.abs() > best.abs() {
                    best = val;
                }
            }
            if best == 0.0 {
                continue;
            }
            if let Some((f0, f1)) = fade_um {
                let r = p[0].hypot(p[1]);
                let t = ((r - f0) / (f1 - f0)).clamp(0.0, 1.0);
                best *= t * t * (3.0 - 2.0 * t);
                if best == 0.0 {
                    continue;
                }
            }
            let base = radiance[y * w + x] as f64;
            patch.set(
                x - patch.x0 as usize,
                y - patch.y0 as usize,
                relative_delta(best, base) as f32,
            );
        }
    }
    patch
}

/// Change of a level `base` by relative contrast `c`: darkening scales with the level;
/// brightening saturates softly on bright surfaces (a bright scratch barely shows on a bright
/// ferrule instead of clipping to white).
#[inline]
fn relative_delta(c: f64, base: f64) -> f64 {
    if c >= 0.0 {
        c * base * (1.0 - base / 300.0).clamp(0.1, 1.0)
    } else {
        c * base
    }
}

fn tone_delta(tone: Tone, alpha: f64, base: f64) -> f64 {
    match tone {
        Tone::Relative(c) => relative_delta(alpha * c as f64, base),
        Tone::Absolute(l) => alpha * (l as f64 - base),
    }
}

fn blob_patch(b: &Blob, geo: &Geo, radiance: &[f32]) -> Patch {
    let (x0, y0, x1, y1) = geo.box_around(b.center_um, b.extent_um());
    let mut patch = Patch::new(x0, y0, x1, y1);
    let (s, c) = b.angle_rad.sin_cos();
    let aa = geo.aa_um + 2.0 * b.softness_um;
    for y in y0..y1 {
        for x in x0..x1 {
            let (x, y) = (x as usize, y as usize);
            let p = geo.um(x, y);
            let du = p[0] - b.center_um[0];
            let dv = p[1] - b.center_um[1];
            let a = du * c + dv * s;
            let bb = (-du * s + dv * c) * b.stretch;
            let rho = a.hypot(bb);
            let th = bb.atan2(a);
            let d = rho - b.radius_um * b.boundary_factor(th);
            let alpha = (0.5 - d / aa).clamp(0.0, 1.0);
            let base = radiance[y * geo.w + x] as f64;
            let mut delta = tone_delta(b.tone, alpha, base);
            if let Some(hl) = b.halo {
                let ah = ridge(d - hl.offset_um - hl.width_um / 2.0, hl.width_um) * (1.0 - alpha);
                delta += relative_delta(ah * hl.contrast as f64, base);
            }
            if delta != 0.0 && delta.abs() > 1e-3 {
                patch.set(x - x0 as usize, y - y0 as usize, delta as f32);
            }
        }
    }
    patch
}

fn chip_patch(chip: &ChipShape, geo: &Geo, radiance: &[f32]) -> Patch {
    let outline = chip.outline_um(24);
    let cx = outline.iter().map(|p| p[0]).sum::<f64>() / outline.len() as f64;
    let cy = outline.iter().map(|p| p[1]).sum::<f64>() / outline.len() as f64;
    let ext = outline
        .iter()
        .map(|p| (p[0] - cx).hypot(p[1] - cy))
        .fold(0.0, f64::max)
        + 2.0;
    let (x0, y0, x1, y1) = geo.box_around([cx, cy], ext);
    let mut patch = Patch::new(x0, y0, x1, y1);
    let r_out = CLADDING_RADIUS_UM + 0.4;
    for y in y0..y1 {
        for x in x0..x1 {
            let (x, y) = (x as usize, y as usize);
            let p = geo.um(x, y);
            let r = p[0].hypot(p[1]);
            let phi = (p[1].atan2(p[0]) - chip.angle_rad + std::f64::consts::PI)
                .rem_euclid(std::f64::consts::TAU)
                - std::f64::consts::PI;
            let depth = chip.depth_at(phi);
            if depth <= 0.0 {
                continue;
            }
            let ri = CLADDING_RADIUS_UM - depth;
            let a_in = (0.5 + (r - ri) / geo.aa_um).clamp(0.0, 1.0);
            let a_out = (0.5 + (r_out - r) / geo.aa_um).clamp(0.0, 1.0);
            let alpha = a_in * a_out;
            if alpha <= 0.0 {
                continue;
            }
            let base = radiance[y * geo.w + x] as f64;
            let delta = tone_delta(chip.tone, alpha, base);
            if delta.abs() > 1e-3 {
                patch.set(x - x0 as usize, y - y0 as usize, delta as f32);
            }
        }
    }
    patch
}

fn defect_truth(
    d: &DefectSpec,
    patch: &Patch,
    kernel: &[f32],
    gain: &[f32],
    clean: &[f32],
    geo: &Geo,
    spec: &SceneSpec,
) -> Option<DefectTruth> {
    if patch.is_empty() {
        return None;
    }
    let bp = patch.blurred(kernel, geo.w, geo.h);
    let [bl, br, bt] = spec.camera.border_px.map(|b| b as usize);
    // Visible change per pixel.
    let mut vis: Vec<(usize, usize, f32)> = Vec::new();
    let mut peak = 0.0f32;
    for (py, span) in bp.spans.iter().enumerate() {
        let Some((a, b)) = *span else { continue };
        let fy = bp.y0 as usize + py;
        if fy < bt {
            continue;
        }
        for px in a..=b {
            let fx = bp.x0 as usize + px;
            if fx < bl || fx + br >= geo.w {
                continue;
            }
            let i = fy * geo.w + fx;
            let delta = bp.get(px, py) * gain[i];
            let with = clean[i].clamp(0.0, 255.0);
            let without = (clean[i] - delta).clamp(0.0, 255.0);
            let change = with - without;
            if change != 0.0 {
                if change.abs() > peak.abs() {
                    peak = change;
                }
                vis.push((fx, fy, change));
            }
        }
    }
    let thr = VISIBLE_ABS.max(VISIBLE_REL * peak.abs());
    let on: Vec<(usize, usize)> = vis
        .iter()
        .filter(|v| v.2.abs() >= thr)
        .map(|v| (v.0, v.1))
        .collect();
    if on.is_empty() {
        return None;
    }
    let x0 = on.iter().map(|p| p.0).min()?;
    let x1 = on.iter().map(|p| p.0).max()?;
    let y0 = on.iter().map(|p| p.1).min()?;
    let y1 = on.iter().map(|p| p.1).max()?;
    let mut mask = GrayImage::new((x1 - x0 + 1) as u32, (y1 - y0 + 1) as u32);
    let mut inner = f64::INFINITY;
    for &(x, y) in &on {
        mask.put_pixel((x - x0) as u32, (y - y0) as u32, Luma([255]));
        let p = geo.um(x, y);
        inner = inner.min(p[0].hypot(p[1]));
    }
    Some(DefectTruth {
        kind: d.kind,
        variant: d.variant.clone(),
        zone: verdict::zone_of(spec.fiber, inner),
        size_um: d.size_um,
        inner_radius_um: inner,
        bbox: [x0 as u32, y0 as u32, x1 as u32, y1 as u32],
        mask_in_bbox: mask,
        peak_change: peak,
        subtle: d.subtle,
    })
}
