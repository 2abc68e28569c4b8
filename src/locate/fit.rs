//! Robust circle fitting for the cladding edge.
//!
//! In: edge points in circle space (x-pixel units, y already divided by the pixel aspect).
//! Out: a [`Circle`] from a deterministic RANSAC over point triples followed by a geometric
//! (orthogonal-distance) Gauss–Newton fit with Tukey biweights, so that chipped, dusty or
//! occluded arcs and edges picked from the wrong ring do not pull the circle.

/// A circle in circle space.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Circle {
    pub cx: f64,
    pub cy: f64,
    pub r: f64,
}

impl Circle {
    /// Signed radial residual of a point (positive outside).
    pub fn residual(&self, p: [f64; 2]) -> f64 {
        let (dx, dy) = (p[0] - self.cx, p[1] - self.cy);
        (dx * dx + dy * dy).sqrt() - self.r
    }
}

/// Tukey biweight tuning constant (95 % efficiency for Gaussian residuals).
const TUKEY_C: f64 = 4.685;

/// Circle through three points; `None` when they are (nearly) collinear.
pub(crate) fn circle_through(a: [f64; 2], b: [f64; 2], c: [f64; 2]) -> Option<Circle> {
    let (bx, by) = (b[0] - a[0], b[1] - a[1]);
    let (cx, cy) = (c[0] - a[0], c[1] - a[1]);
    let d = 2.0 * (bx * cy - by * cx);
    let scale = (bx * bx + by * by).max(cx * cx + cy * cy);
    if d.abs() < 1e-9 * scale.max(1e-12) {
        return None;
    }
    let b2 = bx * bx + by * by;
    let c2 = cx * cx + cy * cy;
    let ux = (cy * b2 - by * c2) / d;
    let uy = (bx * c2 - cx * b2) / d;
    Some(Circle {
        cx: a[0] + ux,
        cy: a[1] + uy,
        r: ux.hypot(uy),
    })
}

/// Small deterministic PRNG (xorshift64*) so that a frame always gives the same answer.
pub(crate) struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() >> 33) % (n.max(1) as u64)) as usize
    }
}

/// RANSAC over point triples: the circle with the largest number of points within
/// `inlier_px`, its radius limited to `[r_min, r_max]`. Ties go to the smaller summed residual.
pub(crate) fn ransac(
    pts: &[[f64; 2]],
    inlier_px: f64,
    r_min: f64,
    r_max: f64,
    iterations: usize,
) -> Option<Circle> {
    let n = pts.len();
    if n < 3 {
        return None;
    }
    let mut rng = XorShift::new(0x9E37_79B9_7F4A_7C15 ^ n as u64);
    let mut best: Option<(usize, f64, Circle)> = None;
    for _ in 0..iterations {
        let i = rng.below(n);
        let mut j = rng.below(n);
        let mut k = rng.below(n);
        if j == i {
            j = (j + n / 3) % n;
        }
        if k == i || k == j {
            k = (k + 2 * n / 3 + 1) % n;
        }
        if i == j || j == k || i == k {
            continue;
        }
        let Some(c) = circle_through(pts[i], pts[j], pts[k]) else {
            continue;
        };
        if !(c.r >= r_min && c.r <= r_max) {
            continue;
        }
        let mut count = 0usize;
        let mut cost = 0.0;
        for p in pts {
            let e = c.residual(*p).abs();
            if e < inlier_px {
                count += 1;
                cost += e;
            }
        }
        let better = match &best {
            None => true,
            Some((bc, bcost, _)) => count > *bc || (count == *bc && cost < *bcost),
        };
        if better {
            best = Some((count, cost, c));
        }
    }
    best.map(|(_, _, c)| c)
}

/// Weighted geometric circle fit by Gauss–Newton from `start`, with Tukey biweights
/// recomputed from the residuals each iteration (robust scale: 1.4826·MAD, at least
/// `min_sigma_px`). Returns the circle and the robust scale of the final residuals.
/// `weights` is scratch (resized here).
pub(crate) fn tukey_fit(
    pts: &[[f64; 2]],
    start: Circle,
    min_sigma_px: f64,
    iterations: usize,
    weights: &mut Vec<f64>,
    scratch: &mut Vec<f64>,
) -> (Circle, f64) {
    let mut c = start;
    let mut sigma = min_sigma_px;
    weights.clear();
    weights.resize(pts.len(), 1.0);
    for _ in 0..iterations {
        // Robust scale of the current residuals.
        scratch.clear();
        scratch.extend(pts.iter().map(|p| c.residual(*p).abs()));
        sigma = (1.4826 * median_in_place(scratch)).max(min_sigma_px);
        let cut = TUKEY_C * sigma;
        for (w, p) in weights.iter_mut().zip(pts) {
            let u = c.residual(*p) / cut;
            *w = if u.abs() < 1.0 {
                let t = 1.0 - u * u;
                t * t
            } else {
                0.0
            };
        }
        // One Gauss–Newton step on sum w (|p-c| - r)^2.
        let mut jtj = [[0.0f64; 3]; 3];
        let mut jtr = [0.0f64; 3];
        let mut wsum = 0.0;
        for (w, p) in weights.iter().zip(pts) {
            if *w <= 0.0 {
                continue;
            }
            let dx = p[0] - c.cx;
            let dy = p[1] - c.cy;
            let d = (dx * dx + dy * dy).sqrt();
            if d < 1e-9 {
                continue;
            }
            let res = d - c.r;
            // d(res)/d(cx, cy, r)
            let j = [-dx / d, -dy / d, -1.0];
            for a in 0..3 {
                jtr[a] += w * j[a] * res;
                for b in 0..3 {
                    jtj[a][b] += w * j[a] * j[b];
                }
            }
            wsum += w;
        }
        if wsum < 3.0 {
            break;
        }
        let Some(delta) = solve3(jtj, jtr) else {
            break;
        };
        c.cx -= delta[0];
        c.cy -= delta[1];
        c.r -= delta[2];
        if delta.iter().map(|v| v.abs()).fold(0.0, f64::max) < 1e-4 {
            break;
        }
    }
    (c, sigma)
}

/// An axis-aligned ellipse centred on `center` fitted to `pts` (robustly: three rounds of
/// least squares on 1/ρ² = a·cos²φ + b·sin²φ, dropping points off by more than three robust
/// sigmas): its semi-axes `(rx, ry)` and the fraction of `pts` within `tol_px` of it.
/// `scratch` is reused. `None` for fewer than 8 usable points.
pub(crate) fn axis_ellipse(
    pts: &[[f64; 2]],
    center: [f64; 2],
    tol_px: f64,
    scratch: &mut Vec<f64>,
) -> Option<(f64, f64, f64)> {
    let polar = |p: &[f64; 2]| {
        let (dx, dy) = (p[0] - center[0], p[1] - center[1]);
        let rho2 = dx * dx + dy * dy;
        (
            dx * dx / rho2.max(1e-12),
            dy * dy / rho2.max(1e-12),
            rho2.sqrt(),
        )
    };
    let model = |a: f64, b: f64, c2: f64, s2: f64| 1.0 / (a * c2 + b * s2).max(1e-18).sqrt();
    let (mut a, mut b) = (f64::NAN, f64::NAN);
    let mut cut = f64::INFINITY;
    for _ in 0..3 {
        let (mut suu, mut suv, mut svv, mut sut, mut svt, mut n) = (0.0, 0.0, 0.0, 0.0, 0.0, 0);
        for p in pts {
            let (u, v, rho) = polar(p);
            if rho < 1.0 {
                continue;
            }
            if a.is_finite() && (rho - model(a, b, u, v)).abs() > cut {
                continue;
            }
            let t = 1.0 / (rho * rho);
            suu += u * u;
            suv += u * v;
            svv += v * v;
            sut += u * t;
            svt += v * t;
            n += 1;
        }
        let det = suu * svv - suv * suv;
        if n < 8 || det.abs() < 1e-12 {
            return None;
        }
        a = (sut * svv - svt * suv) / det;
        b = (svt * suu - sut * suv) / det;
        if !(a > 0.0 && b > 0.0) {
            return None;
        }
        scratch.clear();
        scratch.extend(pts.iter().map(|p| {
            let (u, v, rho) = polar(p);
            (rho - model(a, b, u, v)).abs()
        }));
        cut = (3.0 * 1.4826 * median_in_place(scratch)).max(0.5);
    }
    let within = pts
        .iter()
        .filter(|p| {
            let (u, v, rho) = polar(p);
            (rho - model(a, b, u, v)).abs() <= tol_px
        })
        .count();
    Some((
        1.0 / a.sqrt(),
        1.0 / b.sqrt(),
        within as f64 / pts.len().max(1) as f64,
    ))
}

/// Solve a 3x3 linear system by Cramer's rule; `None` when singular.
fn solve3(a: [[f64; 3]; 3], b: [f64; 3]) -> Option<[f64; 3]> {
    let det = |m: [[f64; 3]; 3]| {
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    };
    let d = det(a);
    let scale = a[0][0].abs() + a[1][1].abs() + a[2][2].abs();
    if !d.is_finite() || d.abs() < 1e-12 * scale.powi(3).max(1e-300) {
        return None;
    }
    let mut out = [0.0; 3];
    for (k, o) in out.iter_mut().enumerate() {
        let mut m = a;
        for row in 0..3 {
            m[row][k] = b[row];
        }
        *o = det(m) / d;
    }
    Some(out)
}

/// Median of a slice (reorders it); 0 for an empty slice.
pub(crate) fn median_in_place(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mid = v.len() / 2;
    let (_, m, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
    *m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(c: Circle, n: usize) -> Vec<[f64; 2]> {
        (0..n)
            .map(|i| {
                let a = i as f64 / n as f64 * std::f64::consts::TAU;
                [c.cx + c.r * a.cos(), c.cy + c.r * a.sin()]
            })
            .collect()
    }

    #[test]
    fn three_points() {
        let c = circle_through([0.0, 1.0], [1.0, 0.0], [-1.0, 0.0]).unwrap();
        assert!(c.cx.abs() < 1e-12 && c.cy.abs() < 1e-12 && (c.r - 1.0).abs() < 1e-12);
        assert!(circle_through([0.0, 0.0], [1.0, 1.0], [2.0, 2.0]).is_none());
    }

    #[test]
    fn axis_ellipse_measures_the_aspect() {
        let n = 180;
        let pts: Vec<[f64; 2]> = (0..n)
            .map(|i| {
                let a = i as f64 / n as f64 * std::f64::consts::TAU;
                [50.0 + 100.0 * a.cos(), 60.0 + 109.0 * a.sin()]
            })
            .collect();
        let (rx, ry, within) = axis_ellipse(&pts, [50.0, 60.0], 0.5, &mut Vec::new()).unwrap();
        assert!(
            (rx - 100.0).abs() < 1e-6 && (ry - 109.0).abs() < 1e-6,
            "{rx} {ry}"
        );
        assert!((within - 1.0).abs() < 1e-12);
    }

    #[test]
    fn robust_to_a_third_of_wrong_points() {
        let truth = Circle {
            cx: 100.3,
            cy: 80.7,
            r: 55.2,
        };
        let mut pts = ring(truth, 120);
        // A chipped/occluded arc: 40 points pulled 6 px inward.
        for p in pts.iter_mut().take(40) {
            let dx = p[0] - truth.cx;
            let dy = p[1] - truth.cy;
            let d = dx.hypot(dy);
            p[0] -= 6.0 * dx / d;
            p[1] -= 6.0 * dy / d;
        }
        let start = ransac(&pts, 1.0, 10.0, 200.0, 100).unwrap();
        let (mut w, mut s) = (Vec::new(), Vec::new());
        let (c, _) = tukey_fit(&pts, start, 0.2, 20, &mut w, &mut s);
        assert!((c.cx - truth.cx).abs() < 1e-3, "{c:?}");
        assert!((c.cy - truth.cy).abs() < 1e-3, "{c:?}");
        assert!((c.r - truth.r).abs() < 1e-3, "{c:?}");
    }
}
