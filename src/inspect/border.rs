//! The picture inside a frame: the frame less the black blanking borders many capture paths add
//! (analogue frame grabbers, some USB microscope bridges: a few near-black rows or columns along
//! one or more edges, often with a bright ringing line where the picture starts; the reference
//! photographs in ../shared/reference-images show 6-10 such lines at the top, left and right).
//!
//! Why it matters: on a camera that magnifies enough for the contact zone to reach the frame's
//! edge (roughly 0.35 µm/px and finer at 640x480), a blanking border lies inside the graded zone.
//! The model has never seen a bright ferrule end in a black bar and marks the step as a defect
//! (a 13 µm "zone D defect" failed good fiber at 0.3 µm/px). So the crop treats the blanking as
//! outside the frame: crop pixels that would sample it repeat the nearest picture pixel instead,
//! and they are not graded (as for any pixel beyond the frame).
//!
//! A side has a border when its first lines are dark all across (at most
//! [`BRIGHT_SHARE_MAX`] of a line's pixels above the dark limit: [`DARK_SHARE`] of the frame's
//! mean level, at most [`DARK_MAX`]), there are no more than 1/16 of the frame's size or
//! [`MAX_BORDER_PX`] of them, and the picture after them is clearly brighter (a step, not a dark
//! background that fades out). [`GUARD_PX`] more lines are left out for the ringing. Anything
//! else, including a frame that is dark all over, keeps the whole frame.

use image::GrayImage;

/// At most this many lines per side are taken for a blanking border (and 1/16 of the frame).
pub const MAX_BORDER_PX: u32 = 48;
/// A border line is darker than this share of the frame's mean level ...
pub const DARK_SHARE: f64 = 0.4;
/// ... and than this grey level.
pub const DARK_MAX: f64 = 60.0;
/// Below this dark limit (a frame dark all over) no border is looked for.
pub const DARK_MIN: f64 = 6.0;
/// A border line may hold this share of brighter pixels (noise, hot pixels, JPEG ringing).
pub const BRIGHT_SHARE_MAX: f64 = 0.05;
/// The picture after a border is at least this many grey levels brighter than the border.
pub const STEP_MIN: f64 = 15.0;
/// Lines after a detected border also left out (the ringing of the step).
pub const GUARD_PX: u32 = 2;

/// The picture's part of a frame, half-open in frame pixels: columns `x0..x1`, rows `y0..y1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameContent {
    pub x0: u32,
    pub y0: u32,
    pub x1: u32,
    pub y1: u32,
}

impl FrameContent {
    /// The whole `width` x `height` frame.
    pub fn full(width: u32, height: u32) -> FrameContent {
        FrameContent {
            x0: 0,
            y0: 0,
            x1: width,
            y1: height,
        }
    }

    /// Whether any border was left out.
    pub fn has_border(&self, width: u32, height: u32) -> bool {
        *self != FrameContent::full(width, height)
    }
}

/// Find the blanking borders of `frame` (see the module docs); no heap allocation.
pub fn find_content(frame: &GrayImage) -> FrameContent {
    let (w, h) = frame.dimensions();
    let full = FrameContent::full(w, h);
    if w < 32 || h < 32 {
        return full;
    }
    let raw = frame.as_raw();
    let (wu, hu) = (w as usize, h as usize);
    let (mut sum, mut n) = (0u64, 0u64);
    for y in (0..hu).step_by(4) {
        for x in (0..wu).step_by(4) {
            sum += u64::from(raw[y * wu + x]);
            n += 1;
        }
    }
    let level = sum as f64 / n.max(1) as f64;
    let dark = (DARK_SHARE * level).min(DARK_MAX);
    if dark < DARK_MIN {
        return full;
    }
    // (mean, share of pixels above `dark`) of a row or a column
    let row = |y: u32| line_stats(&raw[y as usize * wu..(y as usize + 1) * wu], 1, dark);
    let col = |x: u32| line_stats(&raw[x as usize..], wu, dark);
    let top = border_depth(row, h);
    let bottom = border_depth(|i| row(h - 1 - i), h);
    let left = border_depth(col, w);
    let right = border_depth(|i| col(w - 1 - i), w);
    let c = FrameContent {
        x0: left,
        y0: top,
        x1: w - right,
        y1: h - bottom,
    };
    // never more than a quarter of the frame in all (the caps make this hold; kept as a guard)
    if c.x1 <= c.x0 || c.y1 <= c.y0 || (c.x1 - c.x0) < w / 2 || (c.y1 - c.y0) < h / 2 {
        return full;
    }
    c
}

/// Mean and share of pixels brighter than `dark` along one line: `len` pixels `stride` apart
/// from the start of `px` (a row: stride 1 over the row; a column: stride = frame width).
fn line_stats(px: &[u8], stride: usize, dark: f64) -> (f64, f64) {
    let (mut sum, mut bright, mut n) = (0u64, 0u64, 0u64);
    for &p in px.iter().step_by(stride) {
        sum += u64::from(p);
        bright += u64::from(f64::from(p) > dark);
        n += 1;
    }
    if n == 0 {
        return (0.0, 0.0);
    }
    (sum as f64 / n as f64, bright as f64 / n as f64)
}

/// How many lines from one side are blanking (0 when none), given the lines' statistics from
/// that side inwards and the frame's size across them.
fn border_depth(line: impl Fn(u32) -> (f64, f64), n: u32) -> u32 {
    let cap = (n / 16).min(MAX_BORDER_PX);
    let mut d = 0;
    while d < cap && line(d).1 <= BRIGHT_SHARE_MAX {
        d += 1;
    }
    if d == 0 || d == cap {
        return 0; // no dark line, or dark to the cap: a dark background, not a border
    }
    let border_mean = (0..d).map(|i| line(i).0).sum::<f64>() / f64::from(d);
    let after = 3.min(n / 2 - d);
    if after == 0 {
        return 0;
    }
    let after_mean = (d..d + after).map(|i| line(i).0).sum::<f64>() / f64::from(after);
    if after_mean < border_mean + STEP_MIN {
        return 0;
    }
    d + GUARD_PX
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// A noisy frame: a bright ferrule with a dark fiber disk in the middle.
    fn picture(w: u32, h: u32, seed: u64) -> GrayImage {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        GrayImage::from_fn(w, h, |x, y| {
            let r = (f64::from(x) - f64::from(w) / 2.0).hypot(f64::from(y) - f64::from(h) / 2.0);
            let base = if r < f64::from(h) / 4.0 { 70.0 } else { 165.0 };
            image::Luma([(base + rng.gen_range(-6.0..6.0)) as u8])
        })
    }

    fn blank(img: &mut GrayImage, top: u32, bottom: u32, left: u32, right: u32, seed: u64) {
        let (w, h) = img.dimensions();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for y in 0..h {
            for x in 0..w {
                if y < top || y >= h - bottom || x < left || x >= w - right {
                    img.put_pixel(x, y, image::Luma([rng.gen_range(12..26)]));
                }
            }
        }
    }

    #[test]
    fn blanking_borders_are_found_with_their_guard_lines() {
        let mut f = picture(640, 480, 1);
        blank(&mut f, 7, 0, 2, 8, 2);
        assert_eq!(
            find_content(&f),
            FrameContent {
                x0: 2 + GUARD_PX,
                y0: 7 + GUARD_PX,
                x1: 640 - 8 - GUARD_PX,
                y1: 480,
            }
        );
        // a ringing line brighter than the picture after the border does not matter
        for x in 0..640 {
            f.put_pixel(x, 7, image::Luma([230]));
        }
        assert_eq!(find_content(&f).y0, 7 + GUARD_PX);
    }

    #[test]
    fn pictures_without_blanking_keep_the_whole_frame() {
        // no border
        let f = picture(640, 480, 3);
        assert_eq!(find_content(&f), FrameContent::full(640, 480));
        // a dark background that reaches the edge and fades: no step
        let dark_bg = GrayImage::from_fn(640, 480, |x, _| {
            image::Luma([(20.0 + f64::from(x.min(200)) * 0.5) as u8])
        });
        assert_eq!(find_content(&dark_bg), FrameContent::full(640, 480));
        // dark to the cap (1/16 of the frame): a dark region, not blanking
        let mut deep = picture(640, 480, 4);
        blank(&mut deep, 30, 0, 0, 0, 5);
        assert_eq!(find_content(&deep), FrameContent::full(640, 480));
        // a frame dark all over, a uniform frame, a tiny frame
        assert_eq!(
            find_content(&GrayImage::from_pixel(320, 240, image::Luma([8]))),
            FrameContent::full(320, 240)
        );
        assert_eq!(
            find_content(&GrayImage::from_pixel(320, 240, image::Luma([128]))),
            FrameContent::full(320, 240)
        );
        assert_eq!(
            find_content(&GrayImage::new(10, 10)),
            FrameContent::full(10, 10)
        );
        // a dark fiber touching one edge does not darken the whole line
        let mut edge_fiber = picture(640, 480, 6);
        for y in 0..20 {
            for x in 250..390 {
                edge_fiber.put_pixel(x, y, image::Luma([15]));
            }
        }
        assert_eq!(find_content(&edge_fiber), FrameContent::full(640, 480));
    }
}
