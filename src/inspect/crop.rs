//! The model-input crop (CONTRACTS.md "Model input crop"): frame pixels ↔ crop pixels.
//!
//! Crop pixel (u = col, v = row) samples the frame at
//! `x = cx + (u - (W-1)/2) * s / umx`, `y = cy + (v - (H-1)/2) * s / umy`
//! (bilinear; the four neighbours' indices clamp to the frame's picture, i.e. nearest edge
//! pixel outside; the picture is the frame less its blanking borders, [`super::border`]),
//! where (cx, cy) is the fiber centre in frame pixels, (umx, umy) the frame's µm/px and s the
//! model's square µm/px. scripts/endface_ref.py is the Python twin.

use super::border::FrameContent;
use crate::anomaly::CropRect;
use crate::geometry::{BBoxPx, PixelScale};
use image::GrayImage;

/// Where a crop sits in the frame and at which scales.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CropGeometry {
    pub center_in_frame: [f64; 2],
    /// The frame's calibrated µm per pixel (x, y).
    pub frame_scale: PixelScale,
    /// The model's µm per crop pixel (square).
    pub crop_um_per_px: f64,
    pub width: usize,
    pub height: usize,
}

/// Reusable per-column / per-row sampling tables.
#[derive(Debug, Default, Clone)]
pub struct CropScratch {
    cols: Vec<(usize, usize, f64)>,
    rows: Vec<(usize, usize, f64)>,
}

impl CropGeometry {
    /// Frame pixels per crop pixel along x and y.
    pub fn frame_px_per_crop_px(&self) -> (f64, f64) {
        (
            self.crop_um_per_px / self.frame_scale.um_per_px_x,
            self.crop_um_per_px / self.frame_scale.um_per_px_y,
        )
    }

    /// Frame position `[x, y]` of crop position (u, v).
    pub fn frame_from_crop(&self, u: f64, v: f64) -> [f64; 2] {
        let (kx, ky) = self.frame_px_per_crop_px();
        [
            self.center_in_frame[0] + (u - (self.width as f64 - 1.0) / 2.0) * kx,
            self.center_in_frame[1] + (v - (self.height as f64 - 1.0) / 2.0) * ky,
        ]
    }

    /// Crop position `[u, v]` of frame position (x, y).
    pub fn crop_from_frame(&self, x: f64, y: f64) -> [f64; 2] {
        let (kx, ky) = self.frame_px_per_crop_px();
        [
            (x - self.center_in_frame[0]) / kx + (self.width as f64 - 1.0) / 2.0,
            (y - self.center_in_frame[1]) / ky + (self.height as f64 - 1.0) / 2.0,
        ]
    }

    /// The crop pixels whose sample position lies inside the frame's picture (`content`: the
    /// whole frame, or the frame less its blanking borders, [`super::border`]), at least
    /// `margin_crop_px` crop pixels from its edge (the model's response to the repeated edge
    /// pixels beyond it reaches a little way in).
    pub fn in_view(&self, content: FrameContent, margin_crop_px: f64) -> CropRect {
        let (kx, ky) = self.frame_px_per_crop_px();
        let range = |n: usize, c: f64, k: f64, first: u32, end: u32| -> (usize, usize) {
            let m = margin_crop_px * k;
            let half = (n as f64 - 1.0) / 2.0;
            let lo = (f64::from(first) + m - c) / k + half;
            let hi = (f64::from(end) - 1.0 - m - c) / k + half;
            if !(lo.is_finite() && hi.is_finite()) || end <= first || hi < lo {
                return (0, 0);
            }
            let a = lo.ceil().clamp(0.0, n as f64) as usize;
            let b = (hi.floor() + 1.0).clamp(0.0, n as f64) as usize;
            (a, b.max(a))
        };
        let (u0, u1) = range(
            self.width,
            self.center_in_frame[0],
            kx,
            content.x0,
            content.x1,
        );
        let (v0, v1) = range(
            self.height,
            self.center_in_frame[1],
            ky,
            content.y0,
            content.y1,
        );
        CropRect { u0, u1, v0, v1 }
    }

    /// Sample the crop from `frame` into `crop_px` (`W*H`, row-major, values 0..=255). The
    /// neighbours' indices clamp to `content` (the picture's part of the frame: blanking
    /// borders are treated as beyond the frame); a `content` that is empty or not inside the
    /// frame samples the whole frame.
    pub fn sample(
        &self,
        frame: &GrayImage,
        content: FrameContent,
        crop_px: &mut Vec<f32>,
        scratch: &mut CropScratch,
    ) {
        let (fw, fh) = (frame.width() as usize, frame.height() as usize);
        crop_px.clear();
        if fw == 0 || fh == 0 {
            crop_px.resize(self.width * self.height, 0.0);
            return;
        }
        let content = if content.x0 < content.x1
            && content.y0 < content.y1
            && content.x1 as usize <= fw
            && content.y1 as usize <= fh
        {
            content
        } else {
            FrameContent::full(fw as u32, fh as u32)
        };
        let (kx, ky) = self.frame_px_per_crop_px();
        let table = |n: usize,
                     c: f64,
                     k: f64,
                     first: usize,
                     end: usize,
                     out: &mut Vec<(usize, usize, f64)>| {
            out.clear();
            for i in 0..n {
                let p = c + (i as f64 - (n as f64 - 1.0) / 2.0) * k;
                // A non-finite position samples the edge (callers refuse such centres first).
                let p = if p.is_nan() {
                    0.0
                } else {
                    p.clamp(-1e12, 1e12)
                };
                let p0 = p.floor();
                let f = p - p0;
                let clamp = |q: f64| q.clamp(first as f64, (end - 1) as f64) as usize;
                out.push((clamp(p0), clamp(p0 + 1.0), f));
            }
        };
        table(
            self.width,
            self.center_in_frame[0],
            kx,
            content.x0 as usize,
            content.x1 as usize,
            &mut scratch.cols,
        );
        table(
            self.height,
            self.center_in_frame[1],
            ky,
            content.y0 as usize,
            content.y1 as usize,
            &mut scratch.rows,
        );
        let raw = frame.as_raw();
        for &(ya, yb, fy) in &scratch.rows {
            let ra = &raw[ya * fw..(ya + 1) * fw];
            let rb = &raw[yb * fw..(yb + 1) * fw];
            for &(xa, xb, fx) in &scratch.cols {
                let top = ra[xa] as f64 * (1.0 - fx) + ra[xb] as f64 * fx;
                let bot = rb[xa] as f64 * (1.0 - fx) + rb[xb] as f64 * fx;
                crop_px.push((top * (1.0 - fy) + bot * fy) as f32);
            }
        }
    }

    /// The frame pixels (inclusive box, clamped to the frame) covered by an inclusive box of
    /// crop pixels.
    pub fn bbox_in_frame(&self, bbox_in_crop: [u32; 4], frame_w: u32, frame_h: u32) -> BBoxPx {
        let lo = self.frame_from_crop(bbox_in_crop[0] as f64 - 0.5, bbox_in_crop[1] as f64 - 0.5);
        let hi = self.frame_from_crop(bbox_in_crop[2] as f64 + 0.5, bbox_in_crop[3] as f64 + 0.5);
        let clamp = |v: f64, n: u32| v.clamp(0.0, n.saturating_sub(1) as f64) as u32;
        [
            clamp((lo[0] + 0.5).floor(), frame_w),
            clamp((lo[1] + 0.5).floor(), frame_h),
            clamp((hi[0] - 0.5).ceil(), frame_w),
            clamp((hi[1] - 0.5).ceil(), frame_h),
        ]
    }

    /// A crop-space map resampled into frame space (`frame_w*frame_h`, row-major):
    /// bilinear inside the crop, 0 outside it.
    pub fn map_to_frame(&self, map_in_crop: &[f32], frame_w: u32, frame_h: u32) -> Vec<f32> {
        let (w, h) = (self.width, self.height);
        let mut out = Vec::with_capacity(frame_w as usize * frame_h as usize);
        for y in 0..frame_h {
            for x in 0..frame_w {
                let [u, v] = self.crop_from_frame(x as f64, y as f64);
                if u < -0.5 || v < -0.5 || u > w as f64 - 0.5 || v > h as f64 - 0.5 {
                    out.push(0.0);
                    continue;
                }
                let (uc, vc) = (u.clamp(0.0, (w - 1) as f64), v.clamp(0.0, (h - 1) as f64));
                let (u0, v0) = (uc.floor() as usize, vc.floor() as usize);
                let (u1, v1) = ((u0 + 1).min(w - 1), (v0 + 1).min(h - 1));
                let (fu, fv) = ((uc - u0 as f64) as f32, (vc - v0 as f64) as f32);
                let m = |uu: usize, vv: usize| map_in_crop[vv * w + uu];
                let top = m(u0, v0) * (1.0 - fu) + m(u1, v0) * fu;
                let bot = m(u0, v1) * (1.0 - fu) + m(u1, v1) * fu;
                out.push(top * (1.0 - fv) + bot * fv);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geom() -> CropGeometry {
        CropGeometry {
            center_in_frame: [40.25, 30.5],
            frame_scale: PixelScale {
                um_per_px_x: 0.5,
                um_per_px_y: 0.5 / 1.09,
            },
            crop_um_per_px: 0.66,
            width: 32,
            height: 24,
        }
    }

    #[test]
    fn in_view_is_exactly_the_crop_pixels_that_sample_inside_the_frame() {
        let g = geom();
        for (fw, fh, margin) in [
            (60u32, 50u32, 0.0),
            (60, 50, 2.0),
            (45, 33, 1.0),
            (200, 200, 0.0),
        ] {
            let r = g.in_view(FrameContent::full(fw, fh), margin);
            let (kx, ky) = g.frame_px_per_crop_px();
            for v in 0..g.height {
                for u in 0..g.width {
                    let [x, y] = g.frame_from_crop(u as f64, v as f64);
                    let inside = x >= margin * kx - 1e-9
                        && x <= fw as f64 - 1.0 - margin * kx + 1e-9
                        && y >= margin * ky - 1e-9
                        && y <= fh as f64 - 1.0 - margin * ky + 1e-9;
                    assert_eq!(
                        r.contains(u, v),
                        inside,
                        "{fw}x{fh} margin {margin}: ({u}, {v}) at ({x}, {y})"
                    );
                }
            }
        }
        // a frame that holds the whole crop: all of it; a 1x1 frame far away: none of it
        assert_eq!(
            g.in_view(FrameContent::full(200, 200), 0.0),
            CropRect::full(32, 24)
        );
        let far = CropGeometry {
            center_in_frame: [500.0, 500.0],
            ..g
        };
        let r = far.in_view(FrameContent::full(10, 10), 0.0);
        assert!(r.u0 == r.u1 || r.v0 == r.v1, "{r:?}");
    }

    #[test]
    fn round_trip_and_centre() {
        let g = geom();
        let [x, y] = g.frame_from_crop(15.5, 11.5);
        assert!((x - 40.25).abs() < 1e-12 && (y - 30.5).abs() < 1e-12);
        let [u, v] = g.crop_from_frame(
            g.frame_from_crop(3.0, 7.0)[0],
            g.frame_from_crop(3.0, 7.0)[1],
        );
        assert!((u - 3.0).abs() < 1e-9 && (v - 7.0).abs() < 1e-9);
        // One crop pixel spans 0.66 µm: 1.32 frame px in x, 1.32*1.09 in y.
        let (kx, ky) = g.frame_px_per_crop_px();
        assert!((kx - 1.32).abs() < 1e-12 && (ky - 1.32 * 1.09).abs() < 1e-12);
    }

    #[test]
    fn samples_a_linear_ramp_exactly_and_clamps_outside() {
        // Frame value = 2*x (x < 100): bilinear reproduces a ramp exactly inside.
        let frame = GrayImage::from_fn(100, 60, |x, _| image::Luma([(2 * x) as u8]));
        let g = geom();
        let mut crop = Vec::new();
        g.sample(
            &frame,
            FrameContent::full(frame.width(), frame.height()),
            &mut crop,
            &mut CropScratch::default(),
        );
        for v in 0..g.height {
            for u in 0..g.width {
                let [x, _] = g.frame_from_crop(u as f64, v as f64);
                assert!((crop[v * g.width + u] as f64 - 2.0 * x).abs() < 1e-3);
            }
        }
        // Far outside: nearest edge pixel.
        let far = CropGeometry {
            center_in_frame: [-500.0, 1000.0],
            ..g
        };
        far.sample(
            &frame,
            FrameContent::full(frame.width(), frame.height()),
            &mut crop,
            &mut CropScratch::default(),
        );
        assert!(crop.iter().all(|&p| p == 0.0));
    }

    #[test]
    fn bbox_covers_the_crop_pixels() {
        let g = geom();
        let b = g.bbox_in_frame([15, 11, 16, 12], 200, 200);
        // Crop pixels 15..16 span u in [14.5, 16.5] -> x in 40.25 + [-1, 1]*1.32.
        assert_eq!(b[0], (40.25f64 - 1.32 + 0.5).floor() as u32);
        assert_eq!(b[2], (40.25f64 + 1.32 - 0.5).ceil() as u32);
        assert!(b[1] <= 30 && b[3] >= 31);
    }

    #[test]
    fn map_to_frame_is_zero_outside_the_crop() {
        let g = geom();
        let map = vec![1.0f32; g.width * g.height];
        let f = g.map_to_frame(&map, 100, 60);
        assert_eq!(f[30 * 100 + 40], 1.0);
        assert_eq!(f[0], 0.0);
    }
}
