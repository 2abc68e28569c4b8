//! Overlay image of one inspection: a gray frame and its [`Inspection`] in, an RGB image out.
//!
//! Drawn with embedded-graphics on an [`image::RgbImage`] ([`RgbCanvas`] implements
//! `DrawTarget`): the IEC zone boundaries as ellipses in frame space (circles in µm; non-square
//! pixels make them ellipses), each defect's outline (its crop-space boundary pixels mapped to
//! the frame) and box, red when it takes part in a failed rule and yellow otherwise, and a
//! verdict banner with the verdict, the image score and the first reason.

use crate::geometry::PixelScale;
use crate::grade::{Profile, Verdict, Zone};
use crate::inspect::Inspection;
use embedded_graphics::mono_font::ascii::{FONT_6X10, FONT_9X18_BOLD};
use embedded_graphics::mono_font::MonoTextStyle;
use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{Circle, Line, PrimitiveStyle, Rectangle};
use embedded_graphics::text::{Baseline, Text};
use image::{GrayImage, RgbImage};
use std::convert::Infallible;
use std::path::{Path, PathBuf};

/// An `RgbImage` as an embedded-graphics draw target (pixels outside are dropped).
pub struct RgbCanvas<'a>(pub &'a mut RgbImage);

impl OriginDimensions for RgbCanvas<'_> {
    fn size(&self) -> Size {
        Size::new(self.0.width(), self.0.height())
    }
}

impl DrawTarget for RgbCanvas<'_> {
    type Color = Rgb888;
    type Error = Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Pixel<Self::Color>>,
    {
        let (w, h) = (self.0.width() as i32, self.0.height() as i32);
        for Pixel(p, c) in pixels {
            if p.x >= 0 && p.y >= 0 && p.x < w && p.y < h {
                self.0
                    .put_pixel(p.x as u32, p.y as u32, image::Rgb([c.r(), c.g(), c.b()]));
            }
        }
        Ok(())
    }
}

/// Errors writing an overlay file.
#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error("cannot write overlay {path}: {message} (check the folder exists and is writable)")]
    Write { path: PathBuf, message: String },
}

const FAIL: Rgb888 = Rgb888::new(255, 40, 40);
const OK_DEFECT: Rgb888 = Rgb888::new(255, 210, 0);
/// Where the cladding-edge scan found its strongest departure (when it adds to the score).
const EDGE_MARK: Rgb888 = Rgb888::new(255, 0, 128);
const ZONE_COLORS: [Rgb888; 4] = [
    Rgb888::new(0, 220, 0),
    Rgb888::new(0, 200, 255),
    Rgb888::new(200, 120, 255),
    Rgb888::new(255, 150, 0),
];

/// Draw the overlay. `labels_in_crop` (from `Inspector::labels_in_crop`, for this same
/// inspection) adds exact defect outlines; without it only boxes are drawn.
pub fn render(
    frame: &GrayImage,
    insp: &Inspection,
    labels_in_crop: Option<&[u32]>,
    profile: &Profile,
    scale: PixelScale,
) -> RgbImage {
    let mut img = RgbImage::from_fn(frame.width(), frame.height(), |x, y| {
        let v = frame.get_pixel(x, y).0[0];
        image::Rgb([v, v, v])
    });
    let mut canvas = RgbCanvas(&mut img);

    if let Some(c) = insp.center {
        for (zone, color) in Zone::ALL.into_iter().zip(ZONE_COLORS) {
            let r_um = profile.zone_outer_radius_um(zone);
            let (rx, ry) = (r_um / scale.um_per_px_x, r_um / scale.um_per_px_y);
            draw_ellipse(&mut canvas, c, rx, ry, color);
        }
    }

    for d in &insp.defects {
        let color = if d.fails { FAIL } else { OK_DEFECT };
        let [x0, y0, x1, y1] = d.bbox;
        let pad = 3i32;
        let _ = Rectangle::with_corners(
            Point::new(x0 as i32 - pad, y0 as i32 - pad),
            Point::new(x1 as i32 + pad, y1 as i32 + pad),
        )
        .into_styled(PrimitiveStyle::with_stroke(color, 1))
        .draw(&mut canvas);
        if let (Some(labels), Some(g)) = (labels_in_crop, insp.geometry.as_ref()) {
            let (w, h) = (g.width, g.height);
            if labels.len() == w * h {
                let [u0, v0, u1, v1] = d.bbox_in_crop;
                let at = |u: i64, v: i64| {
                    u >= 0
                        && v >= 0
                        && (u as usize) < w
                        && (v as usize) < h
                        && labels[v as usize * w + u as usize] == d.label
                };
                let (kx, ky) = g.frame_px_per_crop_px();
                let dot = Size::new(
                    kx.ceil().clamp(1.0, 16.0) as u32,
                    ky.ceil().clamp(1.0, 16.0) as u32,
                );
                for v in v0 as i64..=v1 as i64 {
                    for u in u0 as i64..=u1 as i64 {
                        let boundary = at(u, v)
                            && !(at(u - 1, v) && at(u + 1, v) && at(u, v - 1) && at(u, v + 1));
                        if boundary {
                            let [x, y] = g.frame_from_crop(u as f64, v as f64);
                            let _ = Rectangle::with_center(
                                Point::new(x.round() as i32, y.round() as i32),
                                dot,
                            )
                            .into_styled(PrimitiveStyle::with_fill(color))
                            .draw(&mut canvas);
                        }
                    }
                }
            }
        }
    }

    // The cladding-edge scan's finding, where it raised the image score: a ring around it (it
    // is not a graded defect; MODEL_CARD "The cladding-edge scan").
    if let (Some(c), Some(e)) = (insp.center, insp.edge_scan) {
        if e.score > 0.0 && e.angle_deg.is_finite() && e.radius_um.is_finite() {
            let a = e.angle_deg.to_radians();
            let x = c[0] + e.radius_um / scale.um_per_px_x * a.cos();
            let y = c[1] + e.radius_um / scale.um_per_px_y * a.sin();
            if x.is_finite() && y.is_finite() && x.abs() < 1e6 && y.abs() < 1e6 {
                let _ = Circle::with_center(Point::new(x.round() as i32, y.round() as i32), 17)
                    .into_styled(PrimitiveStyle::with_stroke(EDGE_MARK, 2))
                    .draw(&mut canvas);
            }
        }
    }

    let (banner, text_color) = match insp.verdict {
        Verdict::Pass => (Rgb888::new(0, 150, 0), Rgb888::WHITE),
        Verdict::Fail => (Rgb888::new(200, 0, 0), Rgb888::WHITE),
        Verdict::Unable => (Rgb888::new(230, 170, 0), Rgb888::BLACK),
    };
    let banner_h = 34u32;
    let _ = Rectangle::new(Point::zero(), Size::new(frame.width(), banner_h))
        .into_styled(PrimitiveStyle::with_fill(banner))
        .draw(&mut canvas);
    let mut headline = match insp.verdict {
        Verdict::Pass => "PASS".to_string(),
        Verdict::Fail => "FAIL".to_string(),
        Verdict::Unable => "UNABLE TO GRADE".to_string(),
    };
    if let Some(s) = insp.image_score {
        headline.push_str(&format!("  score {s:.3}"));
    }
    headline.push_str(&format!(
        "  {} defect(s)  {}",
        insp.defects.len(),
        insp.profile
    ));
    let _ = Text::with_baseline(
        &headline,
        Point::new(4, 2),
        MonoTextStyle::new(&FONT_9X18_BOLD, text_color),
        Baseline::Top,
    )
    .draw(&mut canvas);
    if let Some(reason) = insp.reasons.first() {
        // ASCII only: the mono fonts have no µ or ≤.
        let ascii: String = reason
            .replace('µ', "u")
            .replace('≤', "<=")
            .replace('≥', ">=")
            .replace('–', "-")
            .chars()
            .map(|c| if c.is_ascii() { c } else { '?' })
            .collect();
        let _ = Text::with_baseline(
            &ascii,
            Point::new(4, 22),
            MonoTextStyle::new(&FONT_6X10, text_color),
            Baseline::Top,
        )
        .draw(&mut canvas);
    }
    img
}

/// An axis-aligned ellipse outline with a sub-pixel centre, as a closed polyline of 1-px line
/// segments (embedded-graphics' `Ellipse` overflows i32 arithmetic beyond ~250 px).
fn draw_ellipse(canvas: &mut RgbCanvas<'_>, center: [f64; 2], rx: f64, ry: f64, color: Rgb888) {
    if !(rx.is_finite() && ry.is_finite() && center.iter().all(|v| v.is_finite())) {
        return;
    }
    let (rx, ry) = (rx.clamp(0.0, 1e5), ry.clamp(0.0, 1e5));
    // Enough vertices that neighbours are at most ~1.5 px apart.
    let n = ((std::f64::consts::TAU * rx.max(ry)) / 1.5)
        .ceil()
        .clamp(8.0, 100_000.0) as usize;
    let point = |k: usize| {
        let t = std::f64::consts::TAU * k as f64 / n as f64;
        Point::new(
            (center[0] + rx * t.cos()).round() as i32,
            (center[1] + ry * t.sin()).round() as i32,
        )
    };
    let style = PrimitiveStyle::with_stroke(color, 1);
    let mut prev = point(0);
    for k in 1..=n {
        let p = point(k % n);
        let _ = Line::new(prev, p).into_styled(style).draw(canvas);
        prev = p;
    }
}

/// Write an overlay as PNG (to a temporary name, then renamed into place).
pub fn save_png(img: &RgbImage, path: &Path) -> Result<(), OverlayError> {
    let err = |message: String| OverlayError::Write {
        path: path.to_path_buf(),
        message,
    };
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .map_err(|e| err(e.to_string()))?;
    let tmp = path.with_extension("png.tmp");
    std::fs::write(&tmp, &bytes).map_err(|e| err(e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::crop::CropGeometry;
    use crate::inspect::{InspectedDefect, Inspection, Timings};

    fn inspection(verdict: Verdict, fails: bool) -> Inspection {
        let g = CropGeometry {
            center_in_frame: [100.0, 80.0],
            frame_scale: PixelScale::square(1.0),
            crop_um_per_px: 1.0,
            width: 10,
            height: 10,
        };
        Inspection {
            verdict,
            reasons: vec!["zone B: 1 defect > 5 µm, limit 0".into()],
            defects: vec![InspectedDefect {
                kind: crate::grade::FeatureKind::Defect,
                zone: Some(Zone::B),
                size_um: 6.0,
                bbox: [140, 100, 146, 106],
                score: 0.9,
                fails,
                area_um2: 30.0,
                feret_um: 6.0,
                length_um: 6.0,
                width_um: 5.0,
                elongation: 1.2,
                inner_radius_um: 40.0,
                outer_radius_um: 43.0,
                crack_score: None,
                crack: false,
                halo: false,
                bbox_in_crop: [4, 4, 5, 5],
                label: 1,
                fragments: 1,
            }],
            center: Some([100.0, 80.0]),
            cladding_radius_px: Some(62.5),
            radius_y_px: Some(62.5),
            locate_confidence: Some(0.9),
            locate_rescue: None,
            focus: Some(0.8),
            bright_level: None,
            exposure_gain: None,
            grey_step: None,
            stuck_pixels: 0,
            banding: None,
            banding_corrected: false,
            image_score: Some(0.9),
            map_score: Some(0.9),
            ring_level: Some(0.0),
            core_level: None,
            ferrule_grain: None,
            grain_spots: 0,
            edge_scan: None,
            contact_zone_in_view: Some(1.0),
            anomalous: Some(true),
            pixel_threshold: 0.5,
            image_threshold: 0.5,
            timings_ms: Timings::default(),
            model_sha256: "0".repeat(64),
            execution_provider: "cpu".into(),
            profile: "sm-upc".into(),
            geometry: Some(g),
        }
    }

    #[test]
    fn draws_banner_zones_and_failing_defect_in_red() {
        let frame = GrayImage::from_pixel(260, 200, image::Luma([128]));
        let profile = Profile::builtin("sm-upc").unwrap();
        let img = render(
            &frame,
            &inspection(Verdict::Fail, true),
            None,
            &profile,
            PixelScale::square(1.0),
        );
        // Banner is red.
        assert_eq!(img.get_pixel(258, 5).0, [200, 0, 0]);
        // The defect box (padded by 3) is red.
        assert_eq!(img.get_pixel(137, 103).0, [255, 40, 40]);
        // Zone B circle (r = 57.5 px) crosses the horizontal through the centre.
        let row: Vec<[u8; 3]> = (150..165).map(|x| img.get_pixel(x, 80).0).collect();
        assert!(row.contains(&[0, 200, 255]), "{row:?}");
        // Elsewhere the frame is untouched gray.
        assert_eq!(img.get_pixel(5, 190).0, [128, 128, 128]);
    }

    #[test]
    fn edge_scan_finding_is_ringed_only_when_it_scores() {
        let frame = GrayImage::from_pixel(260, 200, image::Luma([128]));
        let profile = Profile::builtin("sm-upc").unwrap();
        let mut insp = inspection(Verdict::Pass, false);
        insp.defects.clear();
        // 62.5 µm from the centre (100, 80), straight down (90°): (100, 142.5)
        insp.edge_scan = Some(crate::inspect::EdgeScan {
            z: 9.0,
            score: 1.0,
            angle_deg: 90.0,
            radius_um: 62.5,
        });
        let img = render(&frame, &insp, None, &profile, PixelScale::square(1.0));
        let ring: Vec<[u8; 3]> = (142..160).map(|y| img.get_pixel(100, y).0).collect();
        assert!(ring.contains(&[255, 0, 128]), "{ring:?}");
        insp.edge_scan = Some(crate::inspect::EdgeScan {
            z: 2.0,
            score: 0.0,
            angle_deg: 90.0,
            radius_um: 62.5,
        });
        let img = render(&frame, &insp, None, &profile, PixelScale::square(1.0));
        assert!(img.pixels().all(|p| p.0 != [255, 0, 128]));
    }

    #[test]
    fn large_zones_on_a_large_frame_and_beyond_it() {
        // 1152x864 at 0.2 µm/px: zone D is a 625 px radius circle, mostly outside the frame.
        let frame = GrayImage::from_pixel(1152, 864, image::Luma([90]));
        let profile = Profile::builtin("sm-upc").unwrap();
        let mut insp = inspection(Verdict::Unable, false);
        insp.center = Some([576.3, 431.8]);
        insp.defects.clear();
        let scale = PixelScale {
            um_per_px_x: 0.2,
            um_per_px_y: 0.2 / 1.09,
        };
        let img = render(&frame, &insp, None, &profile, scale);
        // Zone B (r = 57.5 µm = 287.5 px in x) crosses the centre row at x ≈ 576.3 + 287.5.
        let row: Vec<[u8; 3]> = (858..869).map(|x| img.get_pixel(x, 432).0).collect();
        assert!(row.contains(&[0, 200, 255]), "{row:?}");
        // Taller than wide in y: zone B crosses the centre column at y ≈ 431.8 - 313.4.
        let col: Vec<[u8; 3]> = (113..124).map(|y| img.get_pixel(576, y).0).collect();
        assert!(col.contains(&[0, 200, 255]), "{col:?}");
        assert_eq!(img.get_pixel(1150, 5).0, [230, 170, 0]);
    }

    #[test]
    fn passing_defect_is_yellow_and_outline_uses_labels() {
        let frame = GrayImage::from_pixel(260, 200, image::Luma([128]));
        let profile = Profile::builtin("sm-upc").unwrap();
        let mut labels = vec![0u32; 100];
        labels[4 * 10 + 4] = 1;
        let insp = inspection(Verdict::Pass, false);
        let img = render(
            &frame,
            &insp,
            Some(&labels),
            &profile,
            PixelScale::square(1.0),
        );
        assert_eq!(img.get_pixel(258, 5).0, [0, 150, 0]);
        assert_eq!(img.get_pixel(137, 103).0, [255, 210, 0]);
        // Crop pixel (4, 4) maps to frame (100 - 0.5, 80 - 0.5) -> rounded (100, 80)
        // (round half away from zero of 99.5 is 100).
        assert_eq!(img.get_pixel(100, 80).0, [255, 210, 0]);
    }
}
