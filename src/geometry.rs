//! Coordinate spaces and physical units shared by every step.
//!
//! Spaces: *frame* pixels (the camera image, possibly non-square pixels), *crop* pixels (the
//! model's input, square at the model's µm/px), and *fiber* micrometres (origin on the fiber
//! axis, x right, y down). Transforms are named `target_from_source`.

use serde::{Deserialize, Serialize};

/// Cladding diameter of every fiber this station grades (µm).
pub const CLADDING_DIAMETER_UM: f64 = 125.0;
/// Cladding radius (µm).
pub const CLADDING_RADIUS_UM: f64 = CLADDING_DIAMETER_UM / 2.0;

/// The camera's calibrated scale: micrometres per pixel along x and along y.
///
/// Square pixels have `um_per_px_x == um_per_px_y`. Analog (PAL) capture can make fibers
/// ellipses about 9 % taller than wide: then `um_per_px_y ≈ um_per_px_x / 1.09`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PixelScale {
    pub um_per_px_x: f64,
    pub um_per_px_y: f64,
}

impl PixelScale {
    /// Square pixels of `um_per_px`.
    pub fn square(um_per_px: f64) -> Self {
        Self {
            um_per_px_x: um_per_px,
            um_per_px_y: um_per_px,
        }
    }

    /// Pixel aspect as seen in the image: how many y-pixels one x-pixel's length spans
    /// (`um_per_px_x / um_per_px_y`; 1.09 for the PAL camera above).
    pub fn aspect_y_over_x(&self) -> f64 {
        self.um_per_px_x / self.um_per_px_y
    }

    /// Whether both scales are finite and positive.
    pub fn is_valid(&self) -> bool {
        self.um_per_px_x.is_finite()
            && self.um_per_px_y.is_finite()
            && self.um_per_px_x > 0.0
            && self.um_per_px_y > 0.0
    }

    /// Offset in frame pixels → offset in µm.
    pub fn um_from_px(&self, dx_px: f64, dy_px: f64) -> (f64, f64) {
        (dx_px * self.um_per_px_x, dy_px * self.um_per_px_y)
    }

    /// Offset in µm → offset in frame pixels.
    pub fn px_from_um(&self, dx_um: f64, dy_um: f64) -> (f64, f64) {
        (dx_um / self.um_per_px_x, dy_um / self.um_per_px_y)
    }

    /// Distance in µm from the fiber axis of a frame pixel, given the axis in frame pixels.
    pub fn radius_um(&self, x_px: f64, y_px: f64, center_in_frame: [f64; 2]) -> f64 {
        let (dx, dy) = self.um_from_px(x_px - center_in_frame[0], y_px - center_in_frame[1]);
        dx.hypot(dy)
    }
}

/// Axis-aligned box in frame pixels, inclusive: `[x0, y0, x1, y1]`.
pub type BBoxPx = [u32; 4];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_non_square() {
        let s = PixelScale {
            um_per_px_x: 0.5,
            um_per_px_y: 0.5 / 1.09,
        };
        let (x, y) = s.px_from_um(10.0, 10.0);
        let (u, v) = s.um_from_px(x, y);
        assert!((u - 10.0).abs() < 1e-12 && (v - 10.0).abs() < 1e-12);
        assert!((s.aspect_y_over_x() - 1.09).abs() < 1e-12);
        // A point 62.5 µm straight below the axis is 1.09x more y-pixels than x-pixels away.
        let r = s.radius_um(100.0, 100.0 + 62.5 / s.um_per_px_y, [100.0, 100.0]);
        assert!((r - 62.5).abs() < 1e-9);
    }
}
