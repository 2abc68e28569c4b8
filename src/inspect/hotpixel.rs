//! Isolated hot and dead sensor pixels, replaced before the fiber is located and the crop is
//! sampled.
//!
//! Image sensors have pixels stuck bright (hot, worse when the board runs warm) or dark (dead);
//! the camera's own correction does not always catch them, and a microscope camera on an
//! inspection station runs for years. The model marks such a pixel as a defect, and in zone A
//! of a single-mode fiber any defect fails: on the validation set 4004 with 30 stuck pixels per
//! frame, three good fibers FAILED on "zone A: defect 0.66–1.32 µm" and the image AUROC fell
//! from 0.943 to 0.714 (models/MODEL_CARD.md, "Stuck sensor pixels").
//!
//! A pixel is stuck when it stands out from all eight neighbours by at least [`MIN_SPIKE`] grey
//! levels (above their maximum, or below their minimum) while its neighbours do not share in
//! it: the brightest (darkest) neighbour rises above (falls below) the median of the 16-pixel
//! ring around them by at most [`MAX_NEIGHBOUR_SHARE`] of the pixel's own step from that
//! median. The optics spread anything real on the end-face over its neighbours (a particle at
//! the resolution limit puts ~45 % of its peak into the 4-neighbours at the sampling these
//! stations use), so this takes only what the lens cannot have drawn. Such a pixel is replaced
//! by the median of its eight neighbours. Pixels within two of the frame's edge are left alone.
//!
//! The frame is only scanned (no copy) unless something is found; then it is copied once into
//! a reused buffer and corrected there. No heap allocation once the buffer has the frame's size.

use image::GrayImage;

/// Least step (grey levels) from every neighbour for a pixel to count as stuck.
pub const MIN_SPIKE: i32 = 24;
/// Largest share of the pixel's step that its strongest neighbour may carry.
pub const MAX_NEIGHBOUR_SHARE: f32 = 0.25;

/// Offsets of the 8 neighbours and of the 16-pixel ring around them.
const N8: [(i32, i32); 8] = [
    (-1, -1),
    (0, -1),
    (1, -1),
    (-1, 0),
    (1, 0),
    (-1, 1),
    (0, 1),
    (1, 1),
];
const RING16: [(i32, i32); 16] = [
    (-2, -2),
    (-1, -2),
    (0, -2),
    (1, -2),
    (2, -2),
    (-2, -1),
    (2, -1),
    (-2, 0),
    (2, 0),
    (-2, 1),
    (2, 1),
    (-2, 2),
    (-1, 2),
    (0, 2),
    (1, 2),
    (2, 2),
];

fn median_of<const N: usize>(mut v: [u8; N]) -> u8 {
    v.sort_unstable();
    // the lower median for even counts
    v[(N - 1) / 2]
}

/// The value a stuck pixel at `(x, y)` (2 ≤ x < w−2, 2 ≤ y < h−2) is replaced by, or `None`
/// when it is not stuck.
fn stuck_replacement(px: &[u8], w: usize, x: usize, y: usize) -> Option<u8> {
    let at = |dx: i32, dy: i32| -> u8 {
        let xx = (x as i32 + dx) as usize;
        let yy = (y as i32 + dy) as usize;
        px[yy * w + xx]
    };
    let p = i32::from(px[y * w + x]);
    let mut n8 = [0u8; 8];
    for (k, &(dx, dy)) in N8.iter().enumerate() {
        n8[k] = at(dx, dy);
    }
    let (lo, hi) = n8
        .iter()
        .fold((u8::MAX, u8::MIN), |(l, h), &v| (l.min(v), h.max(v)));
    let (lo, hi) = (i32::from(lo), i32::from(hi));
    let hot = p - hi >= MIN_SPIKE;
    let dead = lo - p >= MIN_SPIKE;
    if !hot && !dead {
        return None;
    }
    let mut ring = [0u8; 16];
    for (k, &(dx, dy)) in RING16.iter().enumerate() {
        ring[k] = at(dx, dy);
    }
    let base = i32::from(median_of(ring));
    let (step, neighbour) = if hot {
        (p - base, hi - base)
    } else {
        (base - p, base - lo)
    };
    if step <= 0 || (neighbour as f32) > MAX_NEIGHBOUR_SHARE * step as f32 {
        return None;
    }
    Some(median_of(n8))
}

/// Whether the pixel at `i` (row-major, interior) can be stuck: a cheap test on its left and
/// right neighbours that rejects almost every pixel.
#[inline]
fn candidate(px: &[u8], i: usize) -> bool {
    let (l, p, r) = (i32::from(px[i - 1]), i32::from(px[i]), i32::from(px[i + 1]));
    p - l.max(r) >= MIN_SPIKE || l.min(r) - p >= MIN_SPIKE
}

/// The first x in `2..w-2` of a row where [`candidate`] may hold, or `None`: a branch-free
/// pass over the row's bytes (vectorized), since almost every row has none.
fn first_candidate(row: &[u8]) -> Option<usize> {
    let w = row.len();
    let spike = MIN_SPIKE as u8;
    let (l, p, r) = (&row[1..w - 3], &row[2..w - 2], &row[3..w - 1]);
    let any = l.iter().zip(p).zip(r).fold(false, |acc, ((&l, &p), &r)| {
        acc | (p.saturating_sub(l.max(r)) >= spike) | (l.min(r).saturating_sub(p) >= spike)
    });
    if !any {
        return None;
    }
    (2..w - 2).find(|&x| {
        let (l, p, r) = (row[x - 1], row[x], row[x + 1]);
        p.saturating_sub(l.max(r)) >= spike || l.min(r).saturating_sub(p) >= spike
    })
}

/// Find the stuck pixels of `frame`; when there are any, copy it into `buf` (resized as
/// needed), replace them there and return how many; `frame` is never changed. Returns 0 (and
/// leaves `buf` as it was) when there are none.
pub fn correct_into(frame: &GrayImage, buf: &mut GrayImage) -> usize {
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    if w < 5 || h < 5 {
        return 0;
    }
    let src = frame.as_raw();
    let mut first = None;
    for y in 2..h - 2 {
        if let Some(x) = first_candidate(&src[y * w..(y + 1) * w]) {
            // the cheap test passed somewhere in this row: check its pixels properly
            if let Some(x) = (x..w - 2)
                .find(|&x| candidate(src, y * w + x) && stuck_replacement(src, w, x, y).is_some())
            {
                first = Some((x, y));
                break;
            }
        }
    }
    let Some((x0, y0)) = first else {
        return 0;
    };
    if buf.dimensions() != frame.dimensions() {
        *buf = GrayImage::new(frame.width(), frame.height());
    }
    buf.copy_from_slice(src);
    // decisions are taken on the original frame, so that one replacement never changes the
    // next; replacements go into the copy
    let dst: &mut [u8] = buf;
    let mut n = 0;
    for y in y0..h - 2 {
        let row = y * w;
        let start = if y == y0 { x0 } else { 2 };
        for x in start..w - 2 {
            if candidate(src, row + x) {
                if let Some(v) = stuck_replacement(src, w, x, y) {
                    dst[row + x] = v;
                    n += 1;
                }
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Luma;

    /// A smooth, noisy picture: a bright ferrule with a darker fiber disk.
    fn picture() -> GrayImage {
        let mut s = 12345u32;
        GrayImage::from_fn(96, 80, |x, y| {
            s = s.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let noise = ((s >> 16) % 9) as f32 - 4.0;
            let r = ((x as f32 - 48.0).powi(2) + (y as f32 - 40.0).powi(2)).sqrt();
            let base = if r < 25.0 { 90.0 } else { 170.0 };
            Luma([(base + noise).round() as u8])
        })
    }

    #[test]
    fn a_clean_picture_is_left_alone_and_not_copied() {
        let img = picture();
        let mut buf = GrayImage::new(1, 1);
        assert_eq!(correct_into(&img, &mut buf), 0);
        assert_eq!(buf.dimensions(), (1, 1));
    }

    #[test]
    fn hot_and_dead_pixels_are_replaced_by_their_neighbours_median() {
        let mut img = picture();
        img.put_pixel(30, 20, Luma([255])); // hot on the ferrule
        img.put_pixel(48, 40, Luma([250])); // hot in the fiber (zone A)
        img.put_pixel(80, 70, Luma([0])); // dead on the ferrule
        img.put_pixel(40, 45, Luma([20])); // dead in the fiber
        let orig = img.clone();
        let mut buf = GrayImage::default();
        assert_eq!(correct_into(&img, &mut buf), 4);
        assert_eq!(img, orig, "the frame itself is never changed");
        for (x, y) in [(30, 20), (48, 40), (80, 70), (40, 45)] {
            let v = i32::from(buf.get_pixel(x, y).0[0]);
            let base = if (x, y) == (30, 20) || (x, y) == (80, 70) {
                170
            } else {
                90
            };
            assert!((v - base).abs() <= 4, "({x}, {y}) -> {v}");
        }
        // everything else is the frame's
        let changed = img
            .pixels()
            .zip(buf.pixels())
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(changed, 4);
    }

    #[test]
    fn what_the_optics_drew_is_kept() {
        // a bright particle at the resolution limit: a Gaussian spot (sigma 0.8 px, peak +120)
        // and a dark one; a two-pixel dash; a one-pixel-wide bright line
        let mut img = picture();
        let spot = |img: &mut GrayImage, cx: f32, cy: f32, amp: f32| {
            for y in (cy as u32 - 3)..=(cy as u32 + 3) {
                for x in (cx as u32 - 3)..=(cx as u32 + 3) {
                    let d2 = (x as f32 - cx).powi(2) + (y as f32 - cy).powi(2);
                    let v = f32::from(img.get_pixel(x, y).0[0]) + amp * (-d2 / (2.0 * 0.64)).exp();
                    img.put_pixel(x, y, Luma([v.round().clamp(0.0, 255.0) as u8]));
                }
            }
        };
        spot(&mut img, 20.0, 15.0, 80.0);
        spot(&mut img, 47.0, 38.0, -70.0);
        img.put_pixel(70, 12, Luma([255]));
        img.put_pixel(71, 12, Luma([255]));
        for x in 10..30 {
            img.put_pixel(x, 70, Luma([230]));
        }
        let mut buf = GrayImage::default();
        assert_eq!(correct_into(&img, &mut buf), 0);
    }

    #[test]
    fn tiny_frames_and_edges_are_safe() {
        let mut buf = GrayImage::default();
        assert_eq!(correct_into(&GrayImage::new(4, 4), &mut buf), 0);
        let mut img = picture();
        img.put_pixel(0, 0, Luma([255]));
        img.put_pixel(1, 40, Luma([255]));
        img.put_pixel(95, 79, Luma([0]));
        assert_eq!(correct_into(&img, &mut buf), 0);
    }
}
