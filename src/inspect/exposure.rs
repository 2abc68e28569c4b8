//! Exposure of the model's crop: the contact zone's bright level and the digital gain that
//! brings an underexposed frame back into the range the model was trained on.
//!
//! The bright level is the 99th percentile of the crop's grey levels over the contact-zone
//! pixels that sample the picture (the zone's [`CropRect`] view). Frames from the synthetic
//! camera, the second renderer and the reference photographs all reach at least ~100 grey levels
//! there (models/MODEL_CARD.md, "Underexposed frames"); the model's training augmentation covers
//! a little below that. A camera with too short an exposure, a weak LED, or a colour camera
//! whose luma sees little of a blue LED delivers the same picture at a fraction of those levels:
//! defect contrast shrinks with it, the map goes quiet and defects pass unseen (a false PASS, the
//! costly error). So:
//!
//! - bright level ≥ [`MIN_BRIGHT_LEVEL`]: the crop is used as it is (gain 1);
//! - below it, the crop is multiplied by [`TARGET_BRIGHT_LEVEL`] / level, at most
//!   [`MAX_GAIN`] times;
//! - a frame that would need more gain than that is UNABLE: at that point the defects' contrast
//!   is down to a few grey levels, and gain amplifies quantization and noise into false defects.
//!
//! No heap allocation: a 256-bin histogram on the stack.

use crate::anomaly::{ContactZone, CropRect};

/// Below this bright level (grey levels, 0–255) the crop is gained up.
pub const MIN_BRIGHT_LEVEL: f32 = 96.0;
/// The bright level a gained crop is brought to.
pub const TARGET_BRIGHT_LEVEL: f32 = 128.0;
/// The most digital gain applied; a frame needing more is UNABLE (bright level below
/// `TARGET_BRIGHT_LEVEL / MAX_GAIN` = 32 grey levels).
pub const MAX_GAIN: f32 = 4.0;
/// Percentile of the contact zone's grey levels taken as its bright level.
const BRIGHT_PERCENTILE: f64 = 0.99;

/// What [`assess`] decided for one crop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Exposure {
    /// Bright enough (or gained into range): multiply the crop by `gain` (1 = unchanged).
    Usable { bright_level: f32, gain: f32 },
    /// Too dark to grade: the gain it would need exceeds [`MAX_GAIN`].
    Underexposed { bright_level: f32 },
    /// No contact-zone pixel samples the picture (nothing to measure).
    Unmeasured,
}

/// The contact zone's bright level in `crop_px` (`W*H` grey levels, row-major): the 99th
/// percentile over the zone's pixels inside `view` at even crop coordinates (a quarter of
/// them: ~37,000 of a 384x384 crop, plenty for a percentile, at a quarter of the cost).
/// `None` when there are none.
pub fn bright_level(crop_px: &[f32], zone: &ContactZone, view: &CropRect) -> Option<f32> {
    let mut hist = [0u32; 256];
    let mut n = 0u64;
    let w = zone.width;
    let (u0, u1) = (view.u0.min(w), view.u1.min(w));
    // the first even column and row of the view
    let (u0, v0) = (u0 + (u0 & 1), view.v0 + (view.v0 & 1));
    if u0 >= u1 {
        return None;
    }
    for v in (v0..view.v1.min(zone.height)).step_by(2) {
        let row = v * w;
        let (Some(mask), Some(px)) = (
            zone.mask_in_crop.get(row + u0..row + u1),
            crop_px.get(row + u0..row + u1),
        ) else {
            break;
        };
        for (&inside, &p) in mask.iter().zip(px).step_by(2) {
            if inside {
                // round half up on 0..=255 (what f32::round does for non-negatives); NaN -> 0
                hist[(p.clamp(0.0, 255.0) + 0.5) as usize & 255] += 1;
                n += 1;
            }
        }
    }
    percentile_level(&hist, n)
}

/// The whole frame's bright level: the 99th percentile of about 320 × 240 of its pixels
/// (every other pixel of every other row up to 640x480, sparser on larger frames so that the
/// cost does not grow with the frame). Checked before the fiber is located, so that a frame far
/// too dark to grade is UNABLE for that reason (the locator would only report an uncertain
/// cladding edge). `None` for an empty frame.
pub fn frame_bright_level(frame: &image::GrayImage) -> Option<f32> {
    let mut hist = [0u32; 256];
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    if w == 0 || h == 0 {
        return None;
    }
    let (sx, sy) = (w.div_ceil(320).max(2), h.div_ceil(240).max(2));
    let mut n = 0u64;
    for row in frame.as_raw().chunks_exact(w).step_by(sy) {
        for &v in row.iter().step_by(sx) {
            hist[usize::from(v)] += 1;
        }
        n += w.div_ceil(sx) as u64;
    }
    percentile_level(&hist, n)
}

fn percentile_level(hist: &[u32; 256], n: u64) -> Option<f32> {
    if n == 0 {
        return None;
    }
    // the smallest level with at least 99 % of the values at or below it
    let need = ((n as f64) * BRIGHT_PERCENTILE).ceil() as u64;
    let mut seen = 0u64;
    for (level, &c) in hist.iter().enumerate() {
        seen += u64::from(c);
        if seen >= need {
            return Some(level as f32);
        }
    }
    Some(255.0)
}

/// The bright level below which nothing is graded: [`TARGET_BRIGHT_LEVEL`] / [`MAX_GAIN`].
pub fn min_gradable_level() -> f32 {
    TARGET_BRIGHT_LEVEL / MAX_GAIN
}

/// The UNABLE reason for a frame whose bright level (`where_`: "the contact zone's" or "the
/// frame's") is `level`.
pub fn too_dark_reason(where_: &str, level: f32) -> String {
    format!(
        "frame too dark: {where_} brightest pixels reach {level:.0} of 255 grey levels, below the {:.0} \
         the inspection can gain up ({}x at most): cannot grade; raise the probe's illumination or \
         the camera's exposure",
        min_gradable_level(),
        MAX_GAIN
    )
}

/// The gain for a crop whose contact zone has `bright_level` (see the module doc).
pub fn gain_for(bright_level: f32) -> Exposure {
    if bright_level >= MIN_BRIGHT_LEVEL {
        return Exposure::Usable {
            bright_level,
            gain: 1.0,
        };
    }
    let gain = TARGET_BRIGHT_LEVEL / bright_level.max(f32::MIN_POSITIVE);
    if gain > MAX_GAIN {
        Exposure::Underexposed { bright_level }
    } else {
        Exposure::Usable { bright_level, gain }
    }
}

/// Measure `crop_px` and decide ([`bright_level`], then [`gain_for`]).
pub fn assess(crop_px: &[f32], zone: &ContactZone, view: &CropRect) -> Exposure {
    match bright_level(crop_px, zone, view) {
        Some(level) => gain_for(level),
        None => Exposure::Unmeasured,
    }
}

/// Multiply the crop by `gain`, clipped at 255 (a no-op for gain 1).
pub fn apply_gain(crop_px: &mut [f32], gain: f32) {
    if gain == 1.0 {
        return;
    }
    for p in crop_px.iter_mut() {
        *p = (*p * gain).min(255.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone() -> ContactZone {
        // 40x40 crop at 5 µm/px: the 125 µm zone is a 25 px radius disk covering most of it
        ContactZone::new(40, 40, 5.0, 125.0)
    }

    #[test]
    fn bright_level_is_the_99th_percentile_inside_the_zone_and_the_view() {
        let z = zone();
        let full = CropRect::full(40, 40);
        let mut px = vec![50.0f32; 40 * 40];
        assert_eq!(bright_level(&px, &z, &full), Some(50.0));
        // 2 % of the zone's measured pixels (even coordinates) bright: the 99th percentile is
        // bright
        let inside: Vec<usize> = (0..px.len())
            .filter(|&i| z.mask_in_crop[i] && i % 2 == 0 && (i / 40) % 2 == 0)
            .collect();
        let k = inside.len() / 50;
        for &i in &inside[..k] {
            px[i] = 200.0;
        }
        assert_eq!(bright_level(&px, &z, &full), Some(200.0));
        // 0.5 % bright: below the percentile
        for &i in &inside[..k] {
            px[i] = 50.0;
        }
        for &i in &inside[..k / 4] {
            px[i] = 200.0;
        }
        assert_eq!(bright_level(&px, &z, &full), Some(50.0));
        // pixels outside the zone (crop corners) never count
        let mut corners = vec![30.0f32; 40 * 40];
        for (i, p) in corners.iter_mut().enumerate() {
            if !z.mask_in_crop[i] {
                *p = 255.0;
            }
        }
        assert_eq!(bright_level(&corners, &z, &full), Some(30.0));
        // nor pixels outside the view: the right half bright, the view its left half
        let mut halves = vec![40.0f32; 40 * 40];
        for v in 0..40 {
            for u in 20..40 {
                halves[v * 40 + u] = 240.0;
            }
        }
        assert_eq!(bright_level(&halves, &z, &full), Some(240.0));
        let left = CropRect {
            u0: 0,
            u1: 20,
            v0: 0,
            v1: 40,
        };
        assert_eq!(bright_level(&halves, &z, &left), Some(40.0));
        let none = CropRect {
            u0: 0,
            u1: 0,
            v0: 0,
            v1: 0,
        };
        assert_eq!(bright_level(&halves, &z, &none), None);
        assert_eq!(assess(&halves, &z, &none), Exposure::Unmeasured);
    }

    #[test]
    fn gain_only_below_the_minimum_and_unable_beyond_the_maximum() {
        assert_eq!(
            gain_for(96.0),
            Exposure::Usable {
                bright_level: 96.0,
                gain: 1.0
            }
        );
        assert_eq!(
            gain_for(230.0),
            Exposure::Usable {
                bright_level: 230.0,
                gain: 1.0
            }
        );
        match gain_for(64.0) {
            Exposure::Usable { gain, .. } => assert!((gain - 2.0).abs() < 1e-6),
            other => panic!("{other:?}"),
        }
        match gain_for(32.0) {
            Exposure::Usable { gain, .. } => assert!((gain - 4.0).abs() < 1e-6),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            gain_for(31.0),
            Exposure::Underexposed { bright_level: 31.0 }
        );
        assert_eq!(gain_for(0.0), Exposure::Underexposed { bright_level: 0.0 });
    }

    #[test]
    fn gain_scales_and_clips() {
        let mut px = vec![10.0f32, 100.0, 200.0];
        apply_gain(&mut px, 2.0);
        assert_eq!(px, vec![20.0, 200.0, 255.0]);
        let mut same = vec![1.5f32, 254.9];
        apply_gain(&mut same, 1.0);
        assert_eq!(same, vec![1.5, 254.9]);
    }
}
