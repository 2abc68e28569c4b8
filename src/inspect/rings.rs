//! Rings: what runs around the fiber axis is the connector's build, not a defect.
//!
//! An end-face has rings by construction: the cladding edge with its epoxy bead or bright halo,
//! the core boundary of a multimode fiber, a depressed-index trench. A camera whose rendering of
//! them the model never saw gets them marked along much of their circumference: on the second
//! renderer (`scripts/alt_render.py`, dark and bright rims 0.5–4 µm wide) the student's map
//! lights the whole cladding edge of good frames at 0.97–1.00 (models/MODEL_CARD.md "Rings").
//! A defect is local: a chip, a pit or a film covers a short arc of any circle about the axis,
//! and a scratch crosses each circle at most twice.
//!
//! So, on the masked map in crop space: for every ring [`RING_UM`] wide from [`MIN_RADIUS_UM`]
//! out to the contact zone's edge and every one of [`SECTORS`] sectors, the median of the map;
//! for every sector, the median of those sector medians over ±[`HALF_WINDOW_SECTORS`] sectors
//! (±90° of arc) is the ring's course there, and it is subtracted from the map (floored at 0).
//! A response must cover more than a quarter of its circle around a point, at one radius, to be
//! taken away: a 20 µm film 30 µm from the axis covers 38° of its circle. Nearer the axis than
//! [`MIN_RADIUS_UM`] a circle is too short to tell (a pit on the axis covers every angle of the
//! circles through it). Chips on a lit-up edge are left to the cladding-edge scan
//! ([`super::edge_ring`]), which reads the crop, not the map.
//!
//! Map values at or below [`FLOOR`] count as zero for the medians (the map is near zero almost
//! everywhere, so only the pixels above it are sorted). No heap allocation once the buffers
//! have grown for a crop geometry (the first frame).

/// Innermost radius (µm from the axis) treated.
pub const MIN_RADIUS_UM: f64 = 20.0;
/// Width of one ring (µm).
pub const RING_UM: f64 = 1.0;
/// Sectors around the axis (5° each).
pub const SECTORS: usize = 72;
/// Half the window of sectors whose median is a ring's course (18 × 5° = ±90°).
pub const HALF_WINDOW_SECTORS: usize = 18;
/// Map values at or below this count as zero in the medians.
pub const FLOOR: f32 = 0.02;

const NONE: u32 = u32::MAX;

/// Reusable state of the ring pass (bucket tables for one crop geometry, per-frame buffers).
#[derive(Debug, Default)]
pub struct Rings {
    /// (width, height, µm/px bits, outer radius bits) the tables were built for.
    geometry: Option<(usize, usize, u64, u64)>,
    /// Bucket (ring × SECTORS + sector) of every crop pixel, [`NONE`] outside the rings.
    bucket_of: Vec<u32>,
    /// Pixels per bucket.
    bucket_size: Vec<u32>,
    rings: usize,
    /// Per frame: offsets of each bucket's values in `values` (len buckets + 1) and a cursor.
    offsets: Vec<u32>,
    cursor: Vec<u32>,
    values: Vec<f32>,
    /// Pixels above the floor inside the rings.
    pixels: Vec<u32>,
    sector_median: Vec<f32>,
    baseline: Vec<f32>,
    window: Vec<f32>,
}

impl Rings {
    pub fn new() -> Rings {
        Rings::default()
    }

    fn prepare(&mut self, width: usize, height: usize, um_per_px: f64, outer_um: f64) {
        let key = (width, height, um_per_px.to_bits(), outer_um.to_bits());
        if self.geometry == Some(key) {
            return;
        }
        let (cu, cv) = crate::anomaly::crop_center(width, height);
        let rings = if outer_um > MIN_RADIUS_UM && um_per_px > 0.0 {
            ((outer_um - MIN_RADIUS_UM) / RING_UM).ceil() as usize
        } else {
            0
        };
        let buckets = rings * SECTORS;
        self.bucket_of.clear();
        self.bucket_of.reserve(width * height);
        self.bucket_size.clear();
        self.bucket_size.resize(buckets, 0);
        for v in 0..height {
            for u in 0..width {
                let (du, dv) = (u as f64 - cu, v as f64 - cv);
                let r = du.hypot(dv) * um_per_px;
                let ring = ((r - MIN_RADIUS_UM) / RING_UM).floor();
                if rings == 0 || r > outer_um || ring < 0.0 || ring as usize >= rings {
                    self.bucket_of.push(NONE);
                    continue;
                }
                let turn = (dv.atan2(du) + std::f64::consts::PI) / std::f64::consts::TAU;
                let sector = ((turn * SECTORS as f64) as usize) % SECTORS;
                let b = ring as usize * SECTORS + sector;
                self.bucket_of.push(b as u32);
                self.bucket_size[b] += 1;
            }
        }
        let in_rings = self.bucket_size.iter().map(|&n| n as usize).sum::<usize>();
        self.rings = rings;
        self.offsets.clear();
        self.offsets.resize(buckets + 1, 0);
        self.cursor.clear();
        self.cursor.resize(buckets, 0);
        self.values.clear();
        self.values.reserve(in_rings);
        self.pixels.clear();
        self.pixels.reserve(in_rings);
        self.sector_median.clear();
        self.sector_median.resize(buckets, 0.0);
        self.baseline.clear();
        self.baseline.resize(buckets, 0.0);
        self.window.clear();
        self.window.reserve(2 * HALF_WINDOW_SECTORS + 1);
        self.geometry = Some(key);
    }

    /// Take the rings out of `map` (crop space, `width × height`, already masked to the
    /// contact zone of `outer_um`); returns the largest ring level subtracted anywhere (0 when
    /// there was none, and then the map is unchanged).
    pub fn remove(
        &mut self,
        map: &mut [f32],
        width: usize,
        height: usize,
        um_per_px: f64,
        outer_um: f64,
    ) -> f32 {
        if map.len() != width * height || width == 0 || height == 0 {
            return 0.0;
        }
        self.prepare(width, height, um_per_px, outer_um);
        let buckets = self.rings * SECTORS;
        if buckets == 0 {
            return 0.0;
        }
        // the pixels above the floor, counted per bucket
        self.offsets.iter_mut().for_each(|o| *o = 0);
        self.pixels.clear();
        // the map is below the floor almost everywhere: test 16 pixels at a time (vectorized)
        // and look up buckets only in blocks with a pixel above it
        const BLOCK: usize = 16;
        for (c, block) in map.chunks(BLOCK).enumerate() {
            if !block.iter().fold(false, |any, &m| any | (m > FLOOR)) {
                continue;
            }
            for (j, &m) in block.iter().enumerate() {
                let i = c * BLOCK + j;
                if m > FLOOR && self.bucket_of[i] != NONE {
                    self.offsets[self.bucket_of[i] as usize + 1] += 1;
                    self.pixels.push(i as u32);
                }
            }
        }
        if self.pixels.is_empty() {
            return 0.0;
        }
        for b in 0..buckets {
            self.offsets[b + 1] += self.offsets[b];
        }
        self.cursor.copy_from_slice(&self.offsets[..buckets]);
        self.values.clear();
        self.values.resize(self.pixels.len(), 0.0);
        for &i in &self.pixels {
            let b = self.bucket_of[i as usize] as usize;
            self.values[self.cursor[b] as usize] = map[i as usize];
            self.cursor[b] += 1;
        }
        // each bucket's (lower) median, the pixels at or below the floor counting as zero
        for b in 0..buckets {
            let (lo, hi) = (self.offsets[b] as usize, self.offsets[b + 1] as usize);
            let above = hi - lo;
            let n = self.bucket_size[b] as usize;
            let mid = n.saturating_sub(1) / 2;
            let below = n - above;
            self.sector_median[b] = if above == 0 || mid < below {
                0.0
            } else {
                let vals = &mut self.values[lo..hi];
                let k = mid - below;
                *vals.select_nth_unstable_by(k, f32::total_cmp).1
            };
        }
        // each sector's ring course: the median of the sector medians within ±90°
        let k = HALF_WINDOW_SECTORS;
        let mut largest = 0.0f32;
        for ring in 0..self.rings {
            let row = &self.sector_median[ring * SECTORS..(ring + 1) * SECTORS];
            let base = &mut self.baseline[ring * SECTORS..(ring + 1) * SECTORS];
            if row.iter().filter(|&&x| x > 0.0).count() <= k {
                // no window can hold more than k non-zero sector medians
                base.iter_mut().for_each(|b| *b = 0.0);
                continue;
            }
            let at = |s: isize| row[s.rem_euclid(SECTORS as isize) as usize];
            let mut nonzero = (-(k as isize)..=k as isize)
                .filter(|&j| at(j) > 0.0)
                .count();
            for (s, course) in base.iter_mut().enumerate() {
                if s > 0 {
                    let (gone, new) = (s as isize - k as isize - 1, s as isize + k as isize);
                    nonzero -= usize::from(at(gone) > 0.0);
                    nonzero += usize::from(at(new) > 0.0);
                }
                // the median of 2k + 1 values is non-zero only if more than k of them are
                *course = if nonzero > k {
                    self.window.clear();
                    self.window
                        .extend((s as isize - k as isize..=s as isize + k as isize).map(&at));
                    *self.window.select_nth_unstable_by(k, f32::total_cmp).1
                } else {
                    0.0
                };
                largest = largest.max(*course);
            }
        }
        if largest <= 0.0 {
            return 0.0;
        }
        for &i in &self.pixels {
            let b = self.bucket_of[i as usize] as usize;
            let m = &mut map[i as usize];
            *m = (*m - self.baseline[b]).max(0.0);
        }
        largest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: usize = 384;
    const UM: f64 = 0.66;
    const OUTER: f64 = 125.0;

    fn polar(u: usize, v: usize) -> (f64, f64) {
        let (cu, cv) = crate::anomaly::crop_center(W, W);
        let (du, dv) = (u as f64 - cu, v as f64 - cv);
        (du.hypot(dv) * UM, dv.atan2(du))
    }

    /// A map that is `level` on the ring from `r0` to `r1` µm over the angles `[a0, a1)`
    /// (radians, −π..π), zero elsewhere.
    fn ring(level: f32, r0: f64, r1: f64, a0: f64, a1: f64) -> Vec<f32> {
        let mut m = vec![0.0; W * W];
        for v in 0..W {
            for u in 0..W {
                let (r, a) = polar(u, v);
                if (r0..r1).contains(&r) && (a0..a1).contains(&a) {
                    m[v * W + u] = level;
                }
            }
        }
        m
    }

    fn disk(m: &mut [f32], level: f32, center_um: (f64, f64), radius_um: f64) {
        let (cu, cv) = crate::anomaly::crop_center(W, W);
        for v in 0..W {
            for u in 0..W {
                let (x, y) = ((u as f64 - cu) * UM, (v as f64 - cv) * UM);
                if (x - center_um.0).hypot(y - center_um.1) <= radius_um {
                    m[v * W + u] = m[v * W + u].max(level);
                }
            }
        }
    }

    fn max(m: &[f32]) -> f32 {
        m.iter().copied().fold(0.0, f32::max)
    }

    #[test]
    fn a_lit_cladding_edge_is_taken_out_and_a_pit_inside_it_stays() {
        let pi = std::f64::consts::PI;
        // the whole edge at 0.98, as the student marks a dark epoxy bead it never saw
        let mut m = ring(0.98, 61.0, 64.0, -pi, pi);
        let mut rings = Rings::new();
        let level = rings.remove(&mut m, W, W, UM, OUTER);
        assert!(level > 0.9, "ring level {level}");
        assert!(max(&m) < 0.05, "left {}", max(&m));

        // three quarters of the edge lit, and a 6 µm pit in zone B
        let mut m = ring(0.98, 61.0, 64.0, -pi, pi / 2.0);
        disk(&mut m, 0.99, (0.0, 40.0), 3.0);
        rings.remove(&mut m, W, W, UM, OUTER);
        let left_at = |x: f64, y: f64| {
            let (cu, cv) = crate::anomaly::crop_center(W, W);
            m[((cv + y / UM).round() as usize) * W + (cu + x / UM).round() as usize]
        };
        assert!(left_at(0.0, 40.0) > 0.98, "the pit stays");
        assert!(left_at(62.5, 0.0) < 0.05, "the lit edge goes");
    }

    #[test]
    fn local_defects_and_lines_are_left_as_they_are() {
        let pi = std::f64::consts::PI;
        let mut m = vec![0.0; W * W];
        // a 20 µm film 30 µm from the axis, a 6 µm chip at the edge, a pit on the axis
        disk(&mut m, 0.9, (30.0, 0.0), 10.0);
        disk(&mut m, 0.95, (-60.0, 0.0), 3.0);
        disk(&mut m, 0.97, (0.0, 0.0), 4.0);
        // an arc of a quarter of the edge (a real arc-shaped mark) is local enough to stay
        let arc = ring(0.96, 61.0, 63.0, 0.25 * pi, 0.5 * pi);
        for (a, b) in m.iter_mut().zip(&arc) {
            *a = a.max(*b);
        }
        // a scratch chord 40 µm from the axis, 2 µm wide, across the whole contact zone
        let (cu, cv) = crate::anomaly::crop_center(W, W);
        for v in 0..W {
            for u in 0..W {
                let y = (v as f64 - cv) * UM;
                let r = ((u as f64 - cu) * UM).hypot(y);
                if (y - 40.0).abs() <= 1.0 && r <= OUTER {
                    m[v * W + u] = m[v * W + u].max(0.93);
                }
            }
        }
        let before = m.clone();
        let level = Rings::new().remove(&mut m, W, W, UM, OUTER);
        assert_eq!(level, 0.0);
        assert_eq!(m, before);
    }

    #[test]
    fn nothing_above_the_floor_is_a_no_op_and_odd_inputs_do_not_panic() {
        let mut rings = Rings::new();
        let mut m = vec![0.01; W * W];
        assert_eq!(rings.remove(&mut m, W, W, UM, OUTER), 0.0);
        assert!(m.iter().all(|&x| x == 0.01));
        // wrong length, empty, a zone inside MIN_RADIUS_UM, a zero scale
        assert_eq!(rings.remove(&mut m[..10], W, W, UM, OUTER), 0.0);
        assert_eq!(rings.remove(&mut [], 0, 0, UM, OUTER), 0.0);
        let mut m = ring(0.9, 0.0, 15.0, -4.0, 4.0);
        assert_eq!(rings.remove(&mut m, W, W, UM, 15.0), 0.0);
        assert_eq!(rings.remove(&mut m, W, W, 0.0, OUTER), 0.0);
        // a new geometry after an old one: a uniform map is all ring from 20 to 60 µm
        let mut m = vec![0.9; 200 * 200];
        assert!(rings.remove(&mut m, 200, 200, UM, 60.0) > 0.8);
        let (c, r) = (99.5, 40.0 / UM);
        assert!(m[((c + r) as usize) * 200 + c as usize] < 0.05);
        assert_eq!(m[100 * 200 + 100], 0.9, "inside MIN_RADIUS_UM");
    }
}
