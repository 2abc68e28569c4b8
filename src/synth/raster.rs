//! Raster helpers for the renderer: float canvases, sparse per-defect patches, separable
//! Gaussian blur (dense and span-limited), smooth value noise, and Feret diameters.
//!
//! In: frame sizes, pixel coordinates, seeds. Out: `f32` buffers in gray-level units.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A normalized 1-D Gaussian kernel of standard deviation `sigma_px` (radius ⌈3σ⌉).
pub(crate) fn gaussian_kernel(sigma_px: f32) -> Vec<f32> {
    if sigma_px <= 0.05 {
        return vec![1.0];
    }
    let radius = (3.0 * sigma_px).ceil() as i32;
    let mut k: Vec<f32> = (-radius..=radius)
        .map(|i| (-(i * i) as f32 / (2.0 * sigma_px * sigma_px)).exp())
        .collect();
    let sum: f32 = k.iter().sum();
    for v in &mut k {
        *v /= sum;
    }
    k
}

/// Dense separable blur of a `w`×`h` buffer with clamp-to-edge borders.
pub(crate) fn blur_dense(src: &[f32], w: usize, h: usize, kernel: &[f32]) -> Vec<f32> {
    let r = kernel.len() / 2;
    if r == 0 {
        return src.to_vec();
    }
    let mut tmp = vec![0.0f32; w * h];
    for y in 0..h {
        let row = &src[y * w..(y + 1) * w];
        let out = &mut tmp[y * w..(y + 1) * w];
        for (x, o) in out.iter_mut().enumerate() {
            let mut acc = 0.0;
            if x >= r && x + r < w {
                let win = &row[x - r..=x + r];
                for (a, b) in win.iter().zip(kernel) {
                    acc += a * b;
                }
            } else {
                for (i, kv) in kernel.iter().enumerate() {
                    let xx = (x as isize + i as isize - r as isize).clamp(0, w as isize - 1);
                    acc += row[xx as usize] * kv;
                }
            }
            *o = acc;
        }
    }
    let mut out = vec![0.0f32; w * h];
    for y in 0..h {
        let o_row = &mut out[y * w..(y + 1) * w];
        for (i, kv) in kernel.iter().enumerate() {
            let yy = (y as isize + i as isize - r as isize).clamp(0, h as isize - 1) as usize;
            let s_row = &tmp[yy * w..(yy + 1) * w];
            for (o, s) in o_row.iter_mut().zip(s_row) {
                *o += s * kv;
            }
        }
    }
    out
}

/// A rectangular window of the frame holding one defect's change (pre-blur delta in gray
/// levels), with the extent of non-zero values per row so that blurring stays local.
#[derive(Debug, Clone)]
pub(crate) struct Patch {
    /// Top-left of the window in frame pixels.
    pub x0: i32,
    pub y0: i32,
    pub w: usize,
    pub h: usize,
    pub data: Vec<f32>,
    /// Per row: inclusive `[min_x, max_x]` (window coordinates) of written values, or `None`.
    pub spans: Vec<Option<(usize, usize)>>,
}

impl Patch {
    /// An empty window covering frame pixels `[x0, x1) × [y0, y1)` (clipped by the caller).
    pub fn new(x0: i32, y0: i32, x1: i32, y1: i32) -> Self {
        let w = (x1 - x0).max(0) as usize;
        let h = (y1 - y0).max(0) as usize;
        Self {
            x0,
            y0,
            w,
            h,
            data: vec![0.0; w * h],
            spans: vec![None; h],
        }
    }

    /// Set the value at window pixel `(x, y)` and widen the row span.
    #[inline]
    pub fn set(&mut self, x: usize, y: usize, v: f32) {
        self.data[y * self.w + x] = v;
        let s = &mut self.spans[y];
        *s = Some(match *s {
            None => (x, x),
            Some((a, b)) => (a.min(x), b.max(x)),
        });
    }

    #[inline]
    pub fn get(&self, x: usize, y: usize) -> f32 {
        self.data[y * self.w + x]
    }

    pub fn is_empty(&self) -> bool {
        self.spans.iter().all(|s| s.is_none())
    }

    /// This patch blurred with `kernel`, in a window grown by the kernel radius and clipped to
    /// the `frame_w`×`frame_h` frame. Only the neighbourhood of written values is computed.
    pub fn blurred(&self, kernel: &[f32], frame_w: usize, frame_h: usize) -> Patch {
        let r = (kernel.len() / 2) as i32;
        let nx0 = (self.x0 - r).max(0);
        let ny0 = (self.y0 - r).max(0);
        let nx1 = (self.x0 + self.w as i32 + r).min(frame_w as i32);
        let ny1 = (self.y0 + self.h as i32 + r).min(frame_h as i32);
        let mut out = Patch::new(nx0, ny0, nx1, ny1);
        if out.w == 0 || out.h == 0 {
            return out;
        }
        // Horizontal pass into a buffer aligned with `out` columns and `self` rows.
        let mut tmp = vec![0.0f32; out.w * self.h];
        let mut tmp_spans: Vec<Option<(usize, usize)>> = vec![None; self.h];
        for sy in 0..self.h {
            let Some((a, b)) = self.spans[sy] else {
                continue;
            };
            // frame x range of output influenced
            let fx_lo = (self.x0 + a as i32 - r).max(nx0);
            let fx_hi = (self.x0 + b as i32 + r).min(nx1 - 1);
            if fx_lo > fx_hi {
                continue;
            }
            for fx in fx_lo..=fx_hi {
                let mut acc = 0.0;
                for (i, kv) in kernel.iter().enumerate() {
                    // clamp-to-edge like `blur_dense`
                    let sx = (fx + i as i32 - r).clamp(0, frame_w as i32 - 1) - self.x0;
                    if sx >= a as i32 && sx <= b as i32 {
                        acc += self.data[sy * self.w + sx as usize] * kv;
                    }
                }
                tmp[sy * out.w + (fx - nx0) as usize] = acc;
            }
            tmp_spans[sy] = Some(((fx_lo - nx0) as usize, (fx_hi - nx0) as usize));
        }
        // Vertical pass.
        for oy in 0..out.h {
            let fy = ny0 + oy as i32;
            let mut lo = usize::MAX;
            let mut hi = 0usize;
            for i in 0..kernel.len() {
                let sy = (fy + i as i32 - r).clamp(0, frame_h as i32 - 1) - self.y0;
                if sy < 0 || sy >= self.h as i32 {
                    continue;
                }
                if let Some((a, b)) = tmp_spans[sy as usize] {
                    lo = lo.min(a);
                    hi = hi.max(b);
                }
            }
            if lo > hi {
                continue;
            }
            for ox in lo..=hi {
                let mut acc = 0.0;
                for (i, kv) in kernel.iter().enumerate() {
                    let sy = (fy + i as i32 - r).clamp(0, frame_h as i32 - 1) - self.y0;
                    if sy < 0 || sy >= self.h as i32 {
                        continue;
                    }
                    acc += tmp[sy as usize * out.w + ox] * kv;
                }
                if acc != 0.0 {
                    out.set(ox, oy, acc);
                }
            }
        }
        out
    }
}

/// Smooth 2-D value noise in `[-1, 1]` with lattice spacing `cell_px`, evaluated per pixel.
pub(crate) struct ValueNoise {
    cell_px: f32,
    gw: usize,
    lattice: Vec<f32>,
}

impl ValueNoise {
    pub fn new(seed: u64, w: usize, h: usize, cell_px: f32) -> Self {
        let cell_px = cell_px.max(1.0);
        let gw = (w as f32 / cell_px).ceil() as usize + 2;
        let gh = (h as f32 / cell_px).ceil() as usize + 2;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let lattice = (0..gw * gh).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        Self {
            cell_px,
            gw,
            lattice,
        }
    }

    #[inline]
    pub fn at(&self, x: f32, y: f32) -> f32 {
        let fx = (x / self.cell_px).max(0.0);
        let fy = (y / self.cell_px).max(0.0);
        let ix = fx as usize;
        let iy = fy as usize;
        let tx = fx - ix as f32;
        let ty = fy - iy as f32;
        let sx = tx * tx * (3.0 - 2.0 * tx);
        let sy = ty * ty * (3.0 - 2.0 * ty);
        let i = iy * self.gw + ix;
        let (a, b) = (self.lattice[i], self.lattice[i + 1]);
        let (c, d) = (self.lattice[i + self.gw], self.lattice[i + self.gw + 1]);
        let top = a + (b - a) * sx;
        let bot = c + (d - c) * sx;
        top + (bot - top) * sy
    }
}

/// 1-D value noise along a length (µm), in `[0, 1]`, for speckled strokes.
pub(crate) fn noise_1d(seed: u64, s: f64, cell: f64) -> f64 {
    let f = (s / cell).max(0.0);
    let i = f.floor() as u64;
    let t = f - i as f64;
    let t = t * t * (3.0 - 2.0 * t);
    let a = unit_hash(seed, i);
    let b = unit_hash(seed, i + 1);
    a + (b - a) * t
}

/// SplitMix64 finalizer: a well-mixed 64-bit hash.
#[inline]
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Deterministic hash of `(seed, i)` mapped to `[0, 1)`.
#[inline]
pub(crate) fn unit_hash(seed: u64, i: u64) -> f64 {
    (mix64(seed ^ mix64(i)) >> 11) as f64 / (1u64 << 53) as f64
}

/// Maximum Feret diameter (µm) of a set of points given in µm.
pub(crate) fn feret_um(points: &[[f64; 2]]) -> f64 {
    let mut best = 0.0f64;
    for (i, a) in points.iter().enumerate() {
        for b in &points[i + 1..] {
            let d = (a[0] - b[0]).hypot(a[1] - b[1]);
            if d > best {
                best = d;
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_is_normalized() {
        for s in [0.3f32, 0.8, 1.7] {
            let k = gaussian_kernel(s);
            let sum: f32 = k.iter().sum();
            assert!((sum - 1.0).abs() < 1e-5);
            assert_eq!(k.len() % 2, 1);
        }
    }

    #[test]
    fn patch_blur_matches_dense_blur() {
        let (w, h) = (40usize, 30usize);
        // Values in the interior and on the frame's right and bottom edges.
        let mut p = Patch::new(10, 5, 40, 30);
        p.set(3, 4, 10.0);
        p.set(7, 9, -6.0);
        p.set(14, 14, 3.0);
        p.set(29, 24, 5.0);
        p.set(20, 24, -4.0);
        let mut dense = vec![0.0f32; w * h];
        for y in 0..p.h {
            for x in 0..p.w {
                dense[(y + 5) * w + x + 10] = p.get(x, y);
            }
        }
        let k = gaussian_kernel(1.2);
        let bd = blur_dense(&dense, w, h, &k);
        let bp = p.blurred(&k, w, h);
        for y in 0..h {
            for x in 0..w {
                let px = x as i32 - bp.x0;
                let py = y as i32 - bp.y0;
                let v = if px >= 0 && py >= 0 && (px as usize) < bp.w && (py as usize) < bp.h {
                    bp.get(px as usize, py as usize)
                } else {
                    0.0
                };
                assert!(
                    (v - bd[y * w + x]).abs() < 1e-4,
                    "at {x},{y}: {v} vs {}",
                    bd[y * w + x]
                );
            }
        }
    }

    #[test]
    fn feret_of_square() {
        let pts = [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]];
        assert!((feret_um(&pts) - 2f64.sqrt()).abs() < 1e-12);
    }
}
