//! Anomaly map → defects, all in the model's crop space.
//!
//! In: the model's input and outputs for one crop ([`build_map`]: `abs_diff` of input and
//! reconstruction, or a map output, then Gaussian smoothing exactly as
//! `scipy.ndimage.gaussian_filter(mode="reflect", truncate=4.0)`), the contact zone
//! ([`ContactZone`]: nothing outside it counts), and a pixel threshold. Out: [`Defect`]s —
//! connected components (8-connectivity, labelled by `metrics::label_components`) of
//! `map > threshold` inside the zone, each measured in
//! µm around the fiber axis: area, max Feret diameter, length (geodesic diameter, so curved
//! scratches count their arc) and mean width (area / length), elongation,
//! scratch vs spot, distance of the innermost pixel from the axis, peak score, bounding box in
//! crop pixels.
//!
//! Crop space has square pixels of `um_per_px` µm (the model's scale) and the fiber axis at
//! its centre `((W-1)/2, (H-1)/2)`, so every measurement here is isotropic; the inspector maps
//! boxes and outlines back to (possibly non-square) frame pixels.
//!
//! Scratch vs spot: a component is a scratch when its elongation (length / width) is at least [`SCRATCH_MIN_ELONGATION`] and it is at least
//! [`SCRATCH_MIN_LENGTH_PX`] crop pixels long — and, when it is [`WIDE_LINE_UM`] wide or more,
//! at least [`WIDE_SCRATCH_MIN_ELONGATION`] times as long as wide ([`is_scratch_shape`]; pieces
//! joined along one line by [`join_broken_scratches`] are exempt from that last rule); its size
//! is then its width (IEC: scratch size = width). Any other component is a defect (spot) sized by
//! its max Feret diameter.

use crate::grade::FeatureKind;
use crate::metrics::label_components;
use crate::model::{Manifest, ABS_DIFF};
use serde::Serialize;

/// Minimum length / width ratio of a scratch.
pub const SCRATCH_MIN_ELONGATION: f64 = 3.0;
/// Minimum length (crop pixels) of a scratch.
pub const SCRATCH_MIN_LENGTH_PX: f64 = 4.0;
/// A line at least this wide (µm) is wider than any scratch class of the IEC tables (the widest
/// limit is 5 µm, multimode zone B): it is a scratch only when it is also at least
/// [`WIDE_SCRATCH_MIN_ELONGATION`] times as long as wide. A smear, an oval particle or a film
/// 6–13 µm across and 3–6 times as long is otherwise graded as a scratch of its width — which
/// zone D allows without limit — instead of a defect of its length (models/MODEL_CARD.md, "Wide
/// lines").
pub const WIDE_LINE_UM: f64 = 6.0;
/// Minimum length / width ratio of a scratch at least [`WIDE_LINE_UM`] wide.
pub const WIDE_SCRATCH_MIN_ELONGATION: f64 = 8.0;

/// Is a component of this length and mean width (crop pixels of `um_per_px` µm) a scratch? At
/// least [`SCRATCH_MIN_ELONGATION`] times as long as wide and [`SCRATCH_MIN_LENGTH_PX`] long; at
/// [`WIDE_LINE_UM`] wide or more, at least [`WIDE_SCRATCH_MIN_ELONGATION`] times as long as wide.
pub fn is_scratch_shape(length_px: f64, width_px: f64, um_per_px: f64) -> bool {
    if !(length_px > 0.0 && width_px > 0.0) {
        return false;
    }
    let elongation = length_px / width_px;
    elongation >= SCRATCH_MIN_ELONGATION
        && length_px >= SCRATCH_MIN_LENGTH_PX
        && (width_px * um_per_px < WIDE_LINE_UM || elongation >= WIDE_SCRATCH_MIN_ELONGATION)
}
/// Radius (µm) of the IEC 61300-3-35 contact zone (zone D's outer radius; 250 µm diameter).
pub const CONTACT_RADIUS_UM: f64 = 125.0;

/// Errors building the map (a manifest/model inconsistency that loading should have caught).
#[derive(Debug, thiserror::Error)]
pub enum AnomalyError {
    #[error(
        "model output \"{name}\" is missing or has {got} values; the anomaly map needs {need}"
    )]
    Output {
        name: String,
        got: usize,
        need: usize,
    },
}

/// Crop-space geometry: size, scale and the contact zone mask.
#[derive(Debug, Clone)]
pub struct ContactZone {
    pub width: usize,
    pub height: usize,
    /// µm per crop pixel (square).
    pub um_per_px: f64,
    pub radius_um: f64,
    /// `true` where the crop pixel's centre is within `radius_um` of the crop centre.
    pub mask_in_crop: Vec<bool>,
    /// Number of `true` pixels in `mask_in_crop`.
    pub zone_pixels: usize,
}

/// The crop pixels that sample the camera frame (half-open `u0..u1` × `v0..v1`): where the
/// contact zone reaches past the frame's edge, the crop repeats the edge pixels, which is
/// not an image of the end-face and must not be graded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropRect {
    pub u0: usize,
    pub u1: usize,
    pub v0: usize,
    pub v1: usize,
}

impl CropRect {
    /// The whole crop.
    pub fn full(width: usize, height: usize) -> CropRect {
        CropRect {
            u0: 0,
            u1: width,
            v0: 0,
            v1: height,
        }
    }

    pub fn contains(&self, u: usize, v: usize) -> bool {
        (self.u0..self.u1).contains(&u) && (self.v0..self.v1).contains(&v)
    }
}

impl ContactZone {
    pub fn new(width: usize, height: usize, um_per_px: f64, radius_um: f64) -> ContactZone {
        let (cu, cv) = crop_center(width, height);
        let mut mask_in_crop = Vec::with_capacity(width * height);
        for v in 0..height {
            for u in 0..width {
                let r_um = (u as f64 - cu).hypot(v as f64 - cv) * um_per_px;
                mask_in_crop.push(r_um <= radius_um);
            }
        }
        let zone_pixels = mask_in_crop.iter().filter(|&&b| b).count();
        ContactZone {
            width,
            height,
            um_per_px,
            radius_um,
            mask_in_crop,
            zone_pixels,
        }
    }

    /// Whether every crop pixel within `radius_um` of the axis lies in `view`.
    pub fn disk_in_view(&self, radius_um: f64, view: &CropRect) -> bool {
        let (cu, cv) = crop_center(self.width, self.height);
        let r = radius_um / self.um_per_px;
        // pixel centres at integer positions: the disk's extreme pixel indices
        let lo = |c: f64| (c - r).ceil().max(0.0) as usize;
        let hi = |c: f64, n: usize| ((c + r).floor().max(0.0) as usize).min(n.saturating_sub(1));
        lo(cu) >= view.u0
            && hi(cu, self.width) < view.u1
            && lo(cv) >= view.v0
            && hi(cv, self.height) < view.v1
    }

    /// Distance (µm) of a crop pixel's centre from the fiber axis.
    pub fn radius_um(&self, u: f64, v: f64) -> f64 {
        let (cu, cv) = crop_center(self.width, self.height);
        (u - cu).hypot(v - cv) * self.um_per_px
    }

    /// Share of the zone's pixels inside `view`.
    pub fn share_in_view(&self, view: &CropRect) -> f64 {
        if self.zone_pixels == 0 {
            return 0.0;
        }
        let w = self.width.max(1);
        let seen: usize = self
            .mask_in_crop
            .chunks(w)
            .enumerate()
            .filter(|(v, _)| (view.v0..view.v1).contains(v))
            .map(|(_, row)| {
                row[view.u0.min(row.len())..view.u1.min(row.len())]
                    .iter()
                    .filter(|&&b| b)
                    .count()
            })
            .sum();
        seen as f64 / self.zone_pixels as f64
    }

    /// Zero the map outside the zone; returns the max inside (the image score; 0 for an
    /// empty zone).
    pub fn mask_and_score(&self, map_in_crop: &mut [f32]) -> f32 {
        self.mask_and_score_in_view(map_in_crop, &CropRect::full(self.width, self.height))
            .0
    }

    /// Zero the map outside the zone and outside `view` (crop pixels beyond the camera
    /// frame); returns the max of what is left (the image score; 0 when nothing is) and the
    /// share of the zone's pixels in view.
    pub fn mask_and_score_in_view(&self, map_in_crop: &mut [f32], view: &CropRect) -> (f32, f64) {
        let mut best = 0.0f32;
        let mut seen = 0usize;
        let w = self.width.max(1);
        for (v, (row, mask)) in map_in_crop
            .chunks_mut(w)
            .zip(self.mask_in_crop.chunks(w))
            .enumerate()
        {
            let row_in_view = (view.v0..view.v1).contains(&v);
            for (u, (m, &inside)) in row.iter_mut().zip(mask).enumerate() {
                if inside && row_in_view && (view.u0..view.u1).contains(&u) {
                    seen += 1;
                    if *m > best {
                        best = *m;
                    }
                } else {
                    *m = 0.0;
                }
            }
        }
        let share = if self.zone_pixels == 0 {
            0.0
        } else {
            seen as f64 / self.zone_pixels as f64
        };
        (best, share)
    }
}

/// Centre of a crop (crop pixels): where the fiber axis lies.
pub fn crop_center(width: usize, height: usize) -> (f64, f64) {
    ((width as f64 - 1.0) / 2.0, (height as f64 - 1.0) / 2.0)
}

/// Build the anomaly map (crop space, `W*H`) from the model's normalized input (`C*H*W`) and
/// an output lookup, as the manifest's `anomaly_map` says. `scratch` is reused between calls.
pub fn build_map<'a>(
    manifest: &Manifest,
    input_norm: &[f32],
    output: impl Fn(&str) -> Option<&'a [f32]>,
    map_in_crop: &mut Vec<f32>,
    scratch: &mut SmoothScratch,
) -> Result<(), AnomalyError> {
    let (_, h, w) = manifest.input_chw();
    let plane = w * h;
    map_in_crop.clear();
    let spec = &manifest.anomaly_map;
    if spec.source == ABS_DIFF {
        let name = manifest.reconstruction_output().unwrap_or("reconstruction");
        let rec = output(name).filter(|r| r.len() >= plane);
        let Some(rec) = rec else {
            return Err(AnomalyError::Output {
                name: name.to_string(),
                got: output(name).map_or(0, <[f32]>::len),
                need: plane,
            });
        };
        let std0 = manifest.input.normalization.std.get(0).unwrap_or(1.0) as f32;
        map_in_crop.extend(
            input_norm[..plane]
                .iter()
                .zip(&rec[..plane])
                .map(|(x, r)| (x - r).abs() * std0),
        );
    } else {
        let name = spec.source.as_str();
        let Some(m) = output(name).filter(|m| m.len() >= plane) else {
            return Err(AnomalyError::Output {
                name: name.to_string(),
                got: output(name).map_or(0, <[f32]>::len),
                need: plane,
            });
        };
        map_in_crop.extend_from_slice(&m[..plane]);
    }
    if spec.smoothing_sigma_px > 0.0 {
        gaussian_smooth(map_in_crop, w, h, spec.smoothing_sigma_px, scratch);
    }
    Ok(())
}

/// `scipy.ndimage.gaussian_filter(img, sigma, mode="reflect", truncate=4.0)` on a float32
/// image: kernel radius `int(4*sigma + 0.5)`, axis 0 (down the columns) first, then axis 1,
/// each pass accumulated in f64 and stored as f32 (as scipy does for float32 input).
pub fn gaussian_smooth(
    img: &mut [f32],
    width: usize,
    height: usize,
    sigma: f64,
    scratch: &mut SmoothScratch,
) {
    if sigma <= 0.0 || width == 0 || height == 0 {
        return;
    }
    let radius = (4.0 * sigma + 0.5) as i64;
    let SmoothScratch {
        plane: scratch,
        line,
        kernel,
    } = scratch;
    kernel.clear();
    kernel.extend((-radius..=radius).map(|x| (-0.5 / (sigma * sigma) * (x * x) as f64).exp()));
    let sum: f64 = kernel.iter().sum();
    kernel.iter_mut().for_each(|k| *k /= sum);

    scratch.clear();
    scratch.resize(width * height, 0.0);
    let r = radius as usize;
    // Axis 0: along each column (reflect-padded copy of the column, then a plain dot product).
    for u in 0..width {
        line.clear();
        line.extend(
            (0..height + 2 * r).map(|k| img[reflect(k as i64 - radius, height) * width + u] as f64),
        );
        for v in 0..height {
            let acc: f64 = kernel
                .iter()
                .zip(&line[v..v + 2 * r + 1])
                .map(|(k, x)| k * x)
                .sum();
            scratch[v * width + u] = acc as f32;
        }
    }
    // Axis 1: along each row.
    for v in 0..height {
        line.clear();
        let row = &scratch[v * width..(v + 1) * width];
        line.extend((0..width + 2 * r).map(|k| row[reflect(k as i64 - radius, width)] as f64));
        for u in 0..width {
            let acc: f64 = kernel
                .iter()
                .zip(&line[u..u + 2 * r + 1])
                .map(|(k, x)| k * x)
                .sum();
            img[v * width + u] = acc as f32;
        }
    }
}

/// Reusable buffers of [`gaussian_smooth`].
#[derive(Debug, Default, Clone)]
pub struct SmoothScratch {
    plane: Vec<f32>,
    line: Vec<f64>,
    kernel: Vec<f64>,
}

/// scipy's "reflect" boundary (d c b a | a b c d | d c b a), any distance.
fn reflect(i: i64, n: usize) -> usize {
    let n = n as i64;
    let period = 2 * n;
    let m = i.rem_euclid(period);
    (if m >= n { period - m - 1 } else { m }) as usize
}

/// One connected component of the thresholded map, measured in crop space.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Defect {
    /// Scratch (size = width) or defect/spot (size = max Feret diameter).
    pub kind: FeatureKind,
    /// The size IEC grades: width for scratches, max Feret diameter for spots (µm).
    pub size_um: f64,
    pub area_um2: f64,
    /// Max Feret diameter (µm).
    pub feret_um: f64,
    /// Length (µm; geodesic diameter) and mean width (µm; area / length).
    pub length_um: f64,
    pub width_um: f64,
    /// length / width.
    pub elongation: f64,
    /// Distance (µm) from the fiber axis to the component's innermost pixel (its centre less
    /// half a pixel): decides the zone.
    pub inner_radius_um: f64,
    /// Distance (µm) from the fiber axis to the component's outermost pixel (its centre plus
    /// half a pixel).
    pub outer_radius_um: f64,
    /// Mean of the model's crack output over the component ([`classify_cracks`]); `None` when
    /// the model has no crack output.
    pub crack_score: Option<f32>,
    /// The model calls it a crack: graded as a defect by its max Feret diameter whatever its
    /// shape (a thin crack would otherwise be a scratch sized by its width).
    pub crack: bool,
    /// Measured without the ring of the opposite polarity around it ([`size_spots_without_halo`]):
    /// `size_um` and `feret_um` are of what lies inside the ring.
    pub halo: bool,
    /// Max of the anomaly map over the component.
    pub score: f32,
    /// Inclusive box in crop pixels `[u0, v0, u1, v1]`.
    pub bbox_in_crop: [u32; 4],
    /// Number of crop pixels.
    pub area_px: usize,
    /// Label of this component in the label image (1-based).
    pub label: u32,
    /// How many connected components it was measured from: 1, or the pieces of a broken
    /// scratch joined by [`join_broken_scratches`].
    pub fragments: u32,
}

impl Defect {
    /// Mark it a crack: graded as a defect by its max Feret diameter, whatever its shape (a
    /// thin crack would otherwise be a scratch sized by its width).
    fn grade_as_crack(&mut self) {
        self.crack = true;
        self.kind = FeatureKind::Defect;
        self.size_um = self.feret_um;
    }

    /// The grading view of this defect.
    pub fn feature(&self) -> crate::grade::Feature {
        crate::grade::Feature {
            kind: self.kind,
            size_um: self.size_um,
            inner_radius_um: self.inner_radius_um,
        }
    }
}

/// Reusable buffers for [`extract_defects`].
#[derive(Debug, Default, Clone)]
pub struct DefectScratch {
    /// Component label per crop pixel (0 = background), valid after [`extract_defects`].
    pub labels_in_crop: Vec<u32>,
    mask: Vec<u8>,
    offsets: Vec<usize>,
    cursor: Vec<usize>,
    pixels: Vec<(u32, u32)>,
    /// Old label -> kept label (hysteresis).
    keep: Vec<u32>,
    /// Rows of the crop with any pixel above the grow threshold (the others are skipped).
    rows: Vec<usize>,
    measure: MeasureScratch,
}

/// Buffers of one component's measurement.
#[derive(Debug, Default, Clone)]
struct MeasureScratch {
    grid: Vec<u8>,
    dist: Vec<f64>,
    heap: std::collections::BinaryHeap<(std::cmp::Reverse<u64>, usize)>,
    hull_pts: Vec<(i64, i64)>,
    hull: Vec<(i64, i64)>,
    row_lo: Vec<u32>,
    row_hi: Vec<u32>,
    /// A spot's pixels inside its halo ([`size_spots_without_halo`]), the flood's stack and
    /// the background ring's values.
    core: Vec<(u32, u32)>,
    ring: Vec<f32>,
    stack: Vec<usize>,
}

impl DefectScratch {
    /// The crop pixels `(u, v)` of the component labelled `label` by the last extraction;
    /// `None` for a label it did not give.
    pub fn pixels_of(&self, label: u32) -> Option<&[(u32, u32)]> {
        let k = label as usize;
        let (&a, &b) = self.offsets.get(k).zip(self.offsets.get(k + 1))?;
        self.pixels.get(a..b)
    }
}

/// Connected components (8-connectivity) of `map > pixel_threshold` inside the zone (the map
/// should already be zeroed outside it), measured into `out` (cleared first), sorted by score,
/// highest first. Labels stay in `scratch.labels_in_crop`.
pub fn extract_defects(
    map_in_crop: &[f32],
    zone: &ContactZone,
    pixel_threshold: f32,
    scratch: &mut DefectScratch,
    out: &mut Vec<Defect>,
) {
    extract_defects_hysteresis(
        map_in_crop,
        zone,
        pixel_threshold,
        pixel_threshold,
        scratch,
        out,
    )
}

/// Hysteresis version of [`extract_defects`]: a defect is a connected component (8-connectivity)
/// of `map > grow_threshold` that contains at least one pixel with `map > pixel_threshold`.
/// The high threshold decides *whether* there is a defect (its false-alarm rate), the low one
/// *how large* it is: a map thresholded high keeps only a defect's most certain core, so a
/// 20 µm chip measures 5 µm and a crack breaks into sub-micron pieces (a false PASS). With
/// `grow_threshold >= pixel_threshold` this is the plain threshold.
pub fn extract_defects_hysteresis(
    map_in_crop: &[f32],
    zone: &ContactZone,
    pixel_threshold: f32,
    grow_threshold: f32,
    scratch: &mut DefectScratch,
    out: &mut Vec<Defect>,
) {
    let (w, h) = (zone.width, zone.height);
    let low = grow_threshold.min(pixel_threshold);
    out.clear();
    scratch.mask.clear();
    scratch.mask.extend(
        map_in_crop
            .iter()
            .zip(&zone.mask_in_crop)
            .map(|(&m, &inside)| u8::from(inside && m > low)),
    );
    let mut n = label_components(&scratch.mask, w, h, &mut scratch.labels_in_crop);
    if n == 0 {
        return;
    }
    // Most of a map is clear: the passes below visit only the rows with labelled pixels.
    scratch.rows.clear();
    // room for every row at once: no allocation on a later frame with more rows lit
    scratch.rows.reserve(h);
    scratch.rows.extend(
        scratch
            .mask
            .chunks_exact(w.max(1))
            .take(h)
            .enumerate()
            .filter(|(_, row)| row.iter().fold(0u8, |a, &m| a | m) != 0)
            .map(|(y, _)| y),
    );
    let labels = &mut scratch.labels_in_crop;
    if low < pixel_threshold {
        // Keep the components with a seed above the high threshold, relabelled 1..=kept.
        let keep = &mut scratch.keep;
        keep.clear();
        keep.resize(n + 1, 0);
        for &y in &scratch.rows {
            let row = &labels[y * w..(y + 1) * w];
            for (&l, &m) in row.iter().zip(&map_in_crop[y * w..(y + 1) * w]) {
                if l != 0 && m > pixel_threshold {
                    keep[l as usize] = 1;
                }
            }
        }
        let mut kept = 0u32;
        for k in keep.iter_mut().skip(1) {
            if *k != 0 {
                kept += 1;
                *k = kept;
            }
        }
        for &y in &scratch.rows {
            for l in labels[y * w..(y + 1) * w].iter_mut() {
                *l = keep[*l as usize];
            }
        }
        n = kept as usize;
        if n == 0 {
            return;
        }
    }
    // Bucket the pixels by label (counting sort, raster order within a component).
    let offsets = &mut scratch.offsets;
    offsets.clear();
    offsets.resize(n + 2, 0);
    for &y in &scratch.rows {
        for &l in &labels[y * w..(y + 1) * w] {
            if l != 0 {
                offsets[l as usize + 1] += 1;
            }
        }
    }
    for k in 1..offsets.len() {
        offsets[k] += offsets[k - 1];
    }
    scratch.pixels.clear();
    scratch.pixels.resize(offsets[n + 1], (0, 0));
    scratch.cursor.clear();
    scratch.cursor.extend_from_slice(&offsets[..n + 1]);
    for &y in &scratch.rows {
        for (x, &l) in labels[y * w..(y + 1) * w].iter().enumerate() {
            if l != 0 {
                let c = &mut scratch.cursor[l as usize];
                scratch.pixels[*c] = (x as u32, y as u32);
                *c += 1;
            }
        }
    }
    for k in 1..=n {
        let px = &scratch.pixels[scratch.offsets[k]..scratch.offsets[k + 1]];
        out.push(measure(
            px,
            map_in_crop,
            zone,
            k as u32,
            &mut scratch.measure,
        ));
    }
    // Highest score first; equal scores in label order (as pushed), which is what a stable
    // sort gave. Unstable: a stable sort of more than 20 defects allocates a buffer.
    out.sort_unstable_by(|a, b| b.score.total_cmp(&a.score).then(a.label.cmp(&b.label)));
}

fn measure(
    pixels: &[(u32, u32)],
    map: &[f32],
    zone: &ContactZone,
    label: u32,
    ms: &mut MeasureScratch,
) -> Defect {
    let s = zone.um_per_px;
    let w = zone.width;
    let (mut u0, mut v0, mut u1, mut v1) = (u32::MAX, u32::MAX, 0u32, 0u32);
    let mut score = f32::MIN;
    let mut r_min = f64::INFINITY;
    let mut r_max = 0.0f64;
    for &(u, v) in pixels {
        u0 = u0.min(u);
        v0 = v0.min(v);
        u1 = u1.max(u);
        v1 = v1.max(v);
        score = score.max(map[v as usize * w + u as usize]);
        let r = zone.radius_um(u as f64, v as f64);
        r_min = r_min.min(r);
        r_max = r_max.max(r);
    }
    let area_px = pixels.len();
    let feret_px = max_feret_px(pixels, v0, v1, ms);
    let length_px = geodesic_length_px(pixels, [u0, v0, u1, v1], ms);
    let a = area_px as f64;
    // A band of this length with the component's area.
    let width_px = a / length_px;
    let elongation = length_px / width_px;
    let scratch = is_scratch_shape(length_px, width_px, s);
    let feret_um = feret_px * s;
    Defect {
        kind: if scratch {
            FeatureKind::Scratch
        } else {
            FeatureKind::Defect
        },
        size_um: if scratch { width_px * s } else { feret_um },
        area_um2: a * s * s,
        feret_um,
        length_um: length_px * s,
        width_um: width_px * s,
        elongation,
        inner_radius_um: (r_min - s / 2.0).max(0.0),
        outer_radius_um: r_max + s / 2.0,
        crack_score: None,
        crack: false,
        halo: false,
        score,
        bbox_in_crop: [u0, v0, u1, v1],
        area_px,
        label,
        fragments: 1,
    }
}

/// Score the defects of the last [`extract_defects_hysteresis`] call (same `scratch`) with the
/// model's crack output (`crack_in_crop`: per crop pixel, the probability that an anomalous
/// pixel belongs to a crack; same H x W as the map): each gets the mean over its pixels as
/// `crack_score`, and one at or above `min_mean` becomes a crack — a defect sized by its max
/// Feret diameter, as IEC sizes any feature that is not a scratch.
pub fn classify_cracks(
    defects: &mut [Defect],
    crack_in_crop: &[f32],
    zone: &ContactZone,
    min_mean: f32,
    scratch: &DefectScratch,
) {
    let w = zone.width;
    for d in defects.iter_mut() {
        let px = pixels_of(scratch, d.label);
        if px.is_empty() {
            continue;
        }
        let mut sum = 0.0f64;
        for &(u, v) in px {
            sum += f64::from(
                crack_in_crop
                    .get(v as usize * w + u as usize)
                    .copied()
                    .unwrap_or(0.0),
            );
        }
        let mean = (sum / px.len() as f64) as f32;
        d.crack_score = Some(mean);
        if mean >= min_mean {
            d.grade_as_crack();
        }
    }
}

/// Edge cracks ([`classify_edge_cracks`]): a line's outer end lies at most this far (µm)
/// inside the located cladding edge…
pub const EDGE_CRACK_INSIDE_UM: f64 = 4.5;
/// …and at most this far outside it (a line that runs on into the ferrule is a scratch).
pub const EDGE_CRACK_OUTSIDE_UM: f64 = 1.0;
/// …or, where the picture shows the line going on to the edge (below), at most this far inside
/// it: next to the edge the student reconstructs the glass as part of the edge, and its map
/// there is blind to a thin dark line (a crack's map on the validation sets stops 3–6 µm short
/// of the edge on single-mode fibers while the crack runs on to it).
pub const EDGE_CRACK_BLIND_UM: f64 = 6.5;
/// The picture shows a line going on to the edge when, at points every half µm along the line's
/// axis from its outer end to half a µm inside the edge, the cladding-edge scan's departures
/// (z, `inspect::edge_ring`) average at most minus this: darker than the glass around, as a
/// fracture is in coaxial light (it scatters the light out of the objective; a polishing
/// scratch may be either)…
pub const EDGE_CRACK_GOES_ON_Z: f32 = 2.0;
/// …with at least this share of the points darker than the glass around…
pub const EDGE_CRACK_GOES_ON_SHARE: f64 = 0.7;
/// …and at least this many points in the scan's band.
pub const EDGE_CRACK_GOES_ON_POINTS: usize = 4;
/// …and it runs inwards: (outer − inner radius) / length at least this (1 = straight along a
/// radius; a chord through the axis gives 0.5).
pub const EDGE_CRACK_MIN_RADIAL: f64 = 0.6;
/// …and it is at least this long (µm); shorter marks at the edge are chips.
pub const EDGE_CRACK_MIN_LENGTH_UM: f64 = 5.0;

/// …and no other anomalous component lies on its line (beyond either end, within this many µm
/// of it plus a tenth of the distance along it, and along it if it has a direction of its own):
/// a piece of a longer scratch whose other pieces are seen is not a crack.
pub const EDGE_CRACK_COLLINEAR_UM: f64 = 2.0;

/// Call a line that starts at the cladding edge and runs inwards a crack: the shape of a
/// fracture growing from the glass's edge, where a polishing scratch runs on across the
/// boundary into the ferrule and across the fiber. A crack is graded as a defect by its max
/// Feret diameter (like the model's crack output, [`classify_cracks`]), not as a scratch by
/// its width: a 1.5 µm wide, 20 µm long edge crack in zone B fails where a scratch that wide
/// would pass.
///
/// A line qualifies when it is a scratch by shape, its outer end lies between
/// [`EDGE_CRACK_INSIDE_UM`] inside and [`EDGE_CRACK_OUTSIDE_UM`] outside the located edge,
/// it runs inwards ((outer − inner radius) / length ≥ [`EDGE_CRACK_MIN_RADIAL`]), it is at
/// least [`EDGE_CRACK_MIN_LENGTH_UM`] long, and no other component lies on its line
/// ([`EDGE_CRACK_COLLINEAR_UM`]): a scratch through the fiber seen only in pieces (a dim frame,
/// a faint stretch over the core) has pieces near the edge that run inwards too, but its other
/// pieces lie on the same line.
///
/// A line whose outer end lies farther inside, up to [`EDGE_CRACK_BLIND_UM`], qualifies too when
/// `band_z` is given and the picture shows it going on to the edge ([`goes_on_to_edge`]):
/// `band_z(radius_um, angle_rad)` is the cladding-edge scan's departure (z) at that radius and
/// angle about the crop's centre (angle 0 along +u, π/2 along +v), `None` outside its band.
///
/// `cladding_radius_um`: the located cladding radius in the crop's µm. Run after
/// [`extract_defects_hysteresis`] (and [`classify_cracks`]) with the same `scratch`, before
/// [`join_broken_scratches`] (cracks are never joined). Returns how many defects became cracks.
pub fn classify_edge_cracks(
    defects: &mut [Defect],
    zone: &ContactZone,
    cladding_radius_um: f64,
    scratch: &DefectScratch,
    band_z: Option<&dyn Fn(f64, f64) -> Option<f32>>,
) -> usize {
    if !(cladding_radius_um.is_finite() && cladding_radius_um > 0.0) {
        return 0;
    }
    let s = zone.um_per_px;
    let cos_max = JOIN_MAX_ANGLE_DEG.to_radians().cos();
    let mut n = 0;
    for i in 0..defects.len() {
        let d = &defects[i];
        if d.crack || d.kind != FeatureKind::Scratch {
            continue;
        }
        let outer_from_edge = d.outer_radius_um - cladding_radius_um;
        let at_edge = (-EDGE_CRACK_INSIDE_UM..=EDGE_CRACK_OUTSIDE_UM).contains(&outer_from_edge);
        let in_blind_band = band_z.is_some()
            && (-EDGE_CRACK_BLIND_UM..-EDGE_CRACK_INSIDE_UM).contains(&outer_from_edge);
        let radial = if d.length_um > 0.0 {
            (d.outer_radius_um - d.inner_radius_um) / d.length_um
        } else {
            0.0
        };
        if !((at_edge || in_blind_band)
            && d.length_um >= EDGE_CRACK_MIN_LENGTH_UM
            && radial >= EDGE_CRACK_MIN_RADIAL)
        {
            continue;
        }
        let px = pixels_of(scratch, d.label);
        if px.is_empty() {
            continue;
        }
        let f = fragment_of(px);
        let (lo, hi) = span_along(px, f.cx, f.cy, f.ex, f.ey);
        let on_its_line = defects.iter().enumerate().any(|(j, o)| {
            if j == i {
                return false;
            }
            let g = fragment_of(pixels_of(scratch, o.label));
            if !g.joinable {
                return false;
            }
            let (dx, dy) = (g.cx - f.cx, g.cy - f.cy);
            let t = dx * f.ex + dy * f.ey;
            let off = (dx * f.ey - dy * f.ex).abs();
            let beyond = t > hi || t < lo;
            let near =
                off * s <= EDGE_CRACK_COLLINEAR_UM + 0.1 * t.abs() * s + g.reach.min(3.0) * s;
            let along =
                g.ratio < JOIN_ELONGATED_RATIO || (g.ex * f.ex + g.ey * f.ey).abs() >= cos_max;
            beyond && near && along
        });
        if on_its_line {
            continue;
        }
        if !at_edge {
            let goes_on =
                band_z.is_some_and(|z| goes_on_to_edge(px, &f, zone, cladding_radius_um, z));
            if !goes_on {
                continue;
            }
        }
        let d = &mut defects[i];
        d.grade_as_crack();
        n += 1;
    }
    n
}

/// Edge chips ([`classify_edge_chips`]): a component that is a line by shape, lying along the
/// cladding edge. Its outer end lies from this far inside…
pub const EDGE_CHIP_INSIDE_UM: f64 = 1.5;
/// …to this far outside the located edge…
pub const EDGE_CHIP_OUTSIDE_UM: f64 = 2.0;
/// …it runs along the edge rather than inwards ((outer − inner radius) / length below this)…
pub const EDGE_CHIP_MAX_RADIAL: f64 = 0.6;
/// …and it is less than this many times as long as it is wide.
pub const EDGE_CHIP_MAX_ELONGATION: f64 = 6.0;

/// Call a "scratch" lying along the cladding edge a chip: a defect sized by its max Feret
/// diameter, not a scratch sized by its width. A chip is a notch broken out of the glass at the
/// cladding edge (../shared/docs/iec-61300-3-35.md), and it is longer along the edge than deep:
/// 3–5 times, so the shape rule ([`SCRATCH_MIN_ELONGATION`]) calls many chips lines and the
/// grader sized them by their depth (on the validation sets and the second renderer's seeds
/// 11–13 the chips were measured 6.6–9.3 µm small on average, half of them as scratches;
/// models/MODEL_CARD.md "Chips along the edge"). A polishing scratch near the edge crosses it or
/// runs on along a chord: it runs inwards, or is many times longer than wide.
///
/// A line qualifies when it is one piece, its outer end lies from [`EDGE_CHIP_INSIDE_UM`] inside
/// to [`EDGE_CHIP_OUTSIDE_UM`] outside the located edge (`cladding_radius_um`, crop µm), it runs
/// along the edge ((outer − inner radius) / length below [`EDGE_CHIP_MAX_RADIAL`]) and it is less
/// than [`EDGE_CHIP_MAX_ELONGATION`] times as long as wide. Cracks are left alone. Run after
/// [`classify_edge_cracks`], before [`join_broken_scratches`]. Returns how many were called.
pub fn classify_edge_chips(defects: &mut [Defect], cladding_radius_um: f64) -> usize {
    if !(cladding_radius_um.is_finite() && cladding_radius_um > 0.0) {
        return 0;
    }
    let mut n = 0;
    for d in defects.iter_mut() {
        if d.crack || d.kind != FeatureKind::Scratch || d.fragments != 1 {
            continue;
        }
        let oe = d.outer_radius_um - cladding_radius_um;
        let radial = if d.length_um > 0.0 {
            (d.outer_radius_um - d.inner_radius_um) / d.length_um
        } else {
            1.0
        };
        if (-EDGE_CHIP_INSIDE_UM..=EDGE_CHIP_OUTSIDE_UM).contains(&oe)
            && radial < EDGE_CHIP_MAX_RADIAL
            && d.elongation < EDGE_CHIP_MAX_ELONGATION
        {
            d.kind = FeatureKind::Defect;
            d.size_um = d.feret_um;
            n += 1;
        }
    }
    n
}

/// Does the picture show the line of `px` (its [`Fragment`] `f`) going on, dark, from its outer
/// end to the cladding edge? Points every half µm along the line's axis from its outermost pixel
/// to half a µm inside the edge; at each, `band_z` (the cladding-edge scan's departure there).
/// Yes when at least [`EDGE_CRACK_GOES_ON_POINTS`] points lie in the scan's band, their mean
/// departure is at most −[`EDGE_CRACK_GOES_ON_Z`] and at least [`EDGE_CRACK_GOES_ON_SHARE`] of
/// them are negative (darker than the glass around).
fn goes_on_to_edge(
    px: &[(u32, u32)],
    f: &Fragment,
    zone: &ContactZone,
    cladding_radius_um: f64,
    band_z: &dyn Fn(f64, f64) -> Option<f32>,
) -> bool {
    let (cu, cv) = crop_center(zone.width, zone.height);
    let Some(&(ou, ov)) = px.iter().max_by(|a, b| {
        let ra = zone.radius_um(a.0 as f64, a.1 as f64);
        let rb = zone.radius_um(b.0 as f64, b.1 as f64);
        ra.total_cmp(&rb)
    }) else {
        return false;
    };
    let (ou, ov) = (ou as f64, ov as f64);
    // the axis, pointing outwards at the outer end
    let (mut ex, mut ey) = (f.ex, f.ey);
    if ex * (ou - cu) + ey * (ov - cv) < 0.0 {
        (ex, ey) = (-ex, -ey);
    }
    let s = zone.um_per_px;
    if !(s.is_finite() && s > 0.0) {
        return false;
    }
    let stop = cladding_radius_um - 0.5;
    let (mut sum, mut n, mut neg) = (0.0f64, 0usize, 0usize);
    // at most twice the widest gap the call allows (a line at a slant crosses the band longer)
    let mut t = 0.5;
    while t <= 2.0 * EDGE_CRACK_BLIND_UM {
        let (u, v) = (ou + ex * t / s, ov + ey * t / s);
        let r = zone.radius_um(u, v);
        if r > stop {
            break;
        }
        if let Some(z) = band_z(r, (v - cv).atan2(u - cu)) {
            if z.is_finite() {
                sum += f64::from(z);
                n += 1;
                neg += usize::from(z < 0.0);
            }
        }
        t += 0.5;
    }
    if n < EDGE_CRACK_GOES_ON_POINTS {
        return false;
    }
    let mean = sum / n as f64;
    tracing::debug!(
        points = n,
        mean_z = mean,
        dark_share = neg as f64 / n as f64,
        "a line ending in the band next to the cladding edge: the picture from its end to the edge"
    );
    mean <= -f64::from(EDGE_CRACK_GOES_ON_Z) && neg as f64 >= EDGE_CRACK_GOES_ON_SHARE * n as f64
}

/// Halos ([`size_spots_without_halo`]): the local background is the median of the pixels
/// more than this many…
pub const HALO_RING_INNER_PX: u32 = 2;
/// …and at most this many crop pixels outside the spot's box.
pub const HALO_RING_OUTER_PX: u32 = 4;
/// A pixel is of the opposite polarity when it differs from the background against the spot's
/// peak by more than this share of the peak… (0.15 until session 28: a bright particle 135 grey
/// levels over its background in a dark ring 10–18 levels deep, 7–13 % of its peak, was measured
/// ring and all, 6.3 µm for 2.8; the 3-grey floor and the sector rule are what keep noise out)
pub const HALO_OPPOSITE_SHARE: f32 = 0.05;
/// …and by more than this many grey levels (of 255; the sensor's noise stays under it).
pub const HALO_OPPOSITE_MIN_GREY: f32 = 3.0;
/// A spot is measured without its halo when at least this share of its pixels is of the
/// opposite polarity…
pub const HALO_MIN_SHARE: f64 = 0.15;
/// …and its peak residual is at least this many grey levels (a fainter spot has no halo to
/// speak of)…
pub const HALO_MIN_PEAK_GREY: f32 = 8.0;
/// …and the opposite pixels surround it: they lie in at least this many of 8 sectors (45°)
/// around the peak. A particle lit from one side has a bright face next to its dark one; that
/// face is the particle, not a ring around it.
pub const HALO_MIN_SECTORS: u32 = 6;

/// Measure a spot without the ring of light around it. A pit seen under coaxial light is often
/// ringed by a thin line of the opposite polarity (a dark pit in a bright ring, from its
/// rounded rim and from defocus; dust often shows one too); the map marks the ring as
/// anomalous as well, so the component is the ring's outer diameter — a 3 µm pit with its halo
/// measures 6–7 µm and fails a zone-B 5 µm limit. IEC sizes the pit.
///
/// For a spot (a defect by shape, not a crack, not joined) the local background is the median
/// of the input in a square ring just outside its box ([`HALO_RING_INNER_PX`],
/// [`HALO_RING_OUTER_PX`]). When the spot's departure from it peaks at ≥ [`HALO_MIN_PEAK_GREY`]
/// grey levels, ≥ [`HALO_MIN_SHARE`] of its pixels depart the other way by more than
/// [`HALO_OPPOSITE_SHARE`] of the peak and [`HALO_OPPOSITE_MIN_GREY`], and those pixels lie all
/// around the peak ([`HALO_MIN_SECTORS`]), the size becomes the max Feret diameter of the pixels
/// on the peak's side connected to the peak (8-connectivity) — what lies inside the ring. A spot
/// without such a ring keeps its size (its soft edge is on the peak's side, or level).
///
/// `input`: the model's input on the crop (the map's H x W; `scale` grey levels per unit, 127.5
/// for (p/255 − 0.5)/0.5); no model output is needed. Run after [`extract_defects_hysteresis`]
/// with the same `scratch`, before [`join_broken_scratches`]. Returns how many spots were
/// measured without a halo; each has `halo` set and `size_um` / `feret_um` of what is inside it.
pub fn size_spots_without_halo(
    defects: &mut [Defect],
    zone: &ContactZone,
    input: &[f32],
    scale: f32,
    scratch: &mut DefectScratch,
) -> usize {
    let (w, h) = (zone.width, zone.height);
    let n_px = w * h;
    if n_px == 0 || input.len() != n_px || scale.is_nan() || scale <= 0.0 {
        return 0;
    }
    let s = zone.um_per_px;
    let mut n = 0;
    for d in defects.iter_mut() {
        if d.kind != FeatureKind::Defect || d.crack || d.fragments != 1 {
            continue;
        }
        let DefectScratch {
            offsets,
            pixels,
            measure: ms,
            ..
        } = &mut *scratch;
        let k = d.label as usize;
        let Some(px) = offsets
            .get(k)
            .zip(offsets.get(k + 1))
            .and_then(|(&a, &b)| pixels.get(a..b))
        else {
            continue;
        };
        if px.len() < 4 {
            continue;
        }
        // The local background: the median of a square ring 3-4 px outside the spot's box.
        let [u0, v0, u1, v1] = d.bbox_in_crop;
        let (b0, b1) = (HALO_RING_INNER_PX, HALO_RING_OUTER_PX);
        ms.ring.clear();
        for v in v0.saturating_sub(b1)..=(v1 + b1).min(h as u32 - 1) {
            for u in u0.saturating_sub(b1)..=(u1 + b1).min(w as u32 - 1) {
                let inner = u + b0 >= u0 && u <= u1 + b0 && v + b0 >= v0 && v <= v1 + b0;
                let x = input[v as usize * w + u as usize];
                if !inner && x.is_finite() {
                    ms.ring.push(x);
                }
            }
        }
        if ms.ring.len() < 8 {
            continue;
        }
        let mid = ms.ring.len() / 2;
        let background = *ms.ring.select_nth_unstable_by(mid, f32::total_cmp).1;
        let res = |(u, v): (u32, u32)| (input[v as usize * w + u as usize] - background) * scale;
        let (mut peak_at, mut peak) = (px[0], 0.0f32);
        for &p in px {
            let r = res(p);
            if r.abs() > peak.abs() {
                (peak_at, peak) = (p, r);
            }
        }
        if peak.abs() < HALO_MIN_PEAK_GREY || peak.is_nan() {
            continue;
        }
        let sign = peak.signum();
        let against = (HALO_OPPOSITE_SHARE * peak.abs()).max(HALO_OPPOSITE_MIN_GREY);
        let (mut opposite, mut sectors) = (0usize, 0u8);
        for &p in px.iter().filter(|&&p| -res(p) * sign > against) {
            opposite += 1;
            let (dx, dy) = (p.0 as f64 - peak_at.0 as f64, p.1 as f64 - peak_at.1 as f64);
            let a = dy.atan2(dx) + std::f64::consts::PI; // 0..=2π
            sectors |= 1 << ((a / std::f64::consts::FRAC_PI_4) as u32).min(7);
        }
        if (opposite as f64) < HALO_MIN_SHARE * px.len() as f64
            || sectors.count_ones() < HALO_MIN_SECTORS
        {
            continue;
        }
        // Flood the peak's sign from the peak, inside the component's box.
        let bw = (u1 - u0 + 1) as usize;
        let bh = (v1 - v0 + 1) as usize;
        ms.grid.clear();
        ms.grid.resize(bw * bh, 0);
        for &p in px {
            if res(p) * sign > 0.0 {
                ms.grid[(p.1 - v0) as usize * bw + (p.0 - u0) as usize] = 1;
            }
        }
        ms.core.clear();
        ms.stack.clear();
        let start = (peak_at.1 - v0) as usize * bw + (peak_at.0 - u0) as usize;
        ms.grid[start] = 2;
        ms.stack.push(start);
        while let Some(i) = ms.stack.pop() {
            let (x, y) = (i % bw, i / bw);
            ms.core.push(((x as u32) + u0, (y as u32) + v0));
            for dy in -1i64..=1 {
                for dx in -1i64..=1 {
                    let (nx, ny) = (x as i64 + dx, y as i64 + dy);
                    if nx < 0 || ny < 0 || nx >= bw as i64 || ny >= bh as i64 {
                        continue;
                    }
                    let j = ny as usize * bw + nx as usize;
                    if ms.grid[j] == 1 {
                        ms.grid[j] = 2;
                        ms.stack.push(j);
                    }
                }
            }
        }
        if ms.core.len() >= px.len() {
            continue;
        }
        let (cv0, cv1) = ms
            .core
            .iter()
            .fold((u32::MAX, 0u32), |(a, b), &(_, v)| (a.min(v), b.max(v)));
        let core = std::mem::take(&mut ms.core);
        let feret_um = max_feret_px(&core, cv0, cv1, ms) * s;
        ms.core = core;
        if feret_um < d.feret_um {
            d.feret_um = feret_um;
            d.size_um = feret_um;
            d.halo = true;
            n += 1;
        }
    }
    n
}

/// Default largest gap (µm) bridged between two pieces of one broken scratch
/// ([`join_broken_scratches`]; station config `[model] scratch_join_gap_um`).
pub const DEFAULT_SCRATCH_JOIN_GAP_UM: f64 = 10.0;
/// Pieces a broken scratch may be joined from at most: with more components than
/// [`JOIN_MAX_COMPONENTS`] in a frame nothing is joined (a contaminated end-face, not a line).
pub const JOIN_MAX_COMPONENTS: usize = 64;
/// An elongated piece (principal axes ratio at least this) must lie along the line it joins.
const JOIN_ELONGATED_RATIO: f64 = 1.5;
/// Largest angle (degrees) between an elongated piece and the line it joins.
const JOIN_MAX_ANGLE_DEG: f64 = 20.0;

/// Reusable buffers for [`join_broken_scratches`].
#[derive(Debug, Default, Clone)]
pub struct JoinScratch {
    frags: Vec<Fragment>,
    parent: Vec<usize>,
    group: Vec<usize>,
    merged: Vec<Defect>,
    remove: Vec<bool>,
    counts: Vec<u32>,
    /// Old label -> label of the scratch it was joined into (identity otherwise).
    relabel: Vec<u32>,
}

/// Shape of one component for joining: centroid, principal direction, axes ratio, reach.
#[derive(Debug, Clone, Copy)]
struct Fragment {
    cx: f64,
    cy: f64,
    ex: f64,
    ey: f64,
    ratio: f64,
    reach: f64,
    joinable: bool,
}

/// The pixels of the component labelled `label` (empty for an unknown label), as bucketed by the
/// last extraction.
fn pixels_of(scratch: &DefectScratch, label: u32) -> &[(u32, u32)] {
    let k = label as usize;
    scratch
        .offsets
        .get(k)
        .zip(scratch.offsets.get(k + 1))
        .and_then(|(&a, &b)| scratch.pixels.get(a..b))
        .unwrap_or(&[])
}

fn fragment_of(px: &[(u32, u32)]) -> Fragment {
    let n = px.len().max(1) as f64;
    let (mut sx, mut sy) = (0.0, 0.0);
    for &(u, v) in px {
        sx += u as f64;
        sy += v as f64;
    }
    let (cx, cy) = (sx / n, sy / n);
    let (mut sxx, mut syy, mut sxy, mut reach2) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for &(u, v) in px {
        let (dx, dy) = (u as f64 - cx, v as f64 - cy);
        sxx += dx * dx;
        syy += dy * dy;
        sxy += dx * dy;
        reach2 = reach2.max(dx * dx + dy * dy);
    }
    // Pixel squares add 1/12 to each axis' variance.
    let (sxx, syy, sxy) = (sxx / n + 1.0 / 12.0, syy / n + 1.0 / 12.0, sxy / n);
    let th = 0.5 * (2.0 * sxy).atan2(sxx - syy);
    let tr = 0.5 * (sxx + syy);
    let disc = (0.25 * (sxx - syy).powi(2) + sxy * sxy).sqrt();
    let (l1, l2) = (tr + disc, (tr - disc).max(1e-9));
    Fragment {
        cx,
        cy,
        ex: th.cos(),
        ey: th.sin(),
        ratio: (l1 / l2).sqrt(),
        reach: reach2.sqrt() + 0.5,
        joinable: !px.is_empty(),
    }
}

/// Extent of `px` along the unit direction `(ex, ey)` from `(ox, oy)`: (min, max) of the pixel
/// centres' projections.
fn span_along(px: &[(u32, u32)], ox: f64, oy: f64, ex: f64, ey: f64) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for &(u, v) in px {
        let t = (u as f64 - ox) * ex + (v as f64 - oy) * ey;
        lo = lo.min(t);
        hi = hi.max(t);
    }
    (lo, hi)
}

fn find(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

/// Join the pieces of broken scratches into one scratch each (IEC 61300-3-35 notes: scratches
/// are "often broken or speckled lines"; graded piece by piece, the dashes of one scratch count
/// as many small defects, and a dashed scratch wider than its dashes are long is measured as
/// spots, not by its width).
///
/// Pieces are linked when the gap between them along the line through their centroids is at
/// most `max_gap_um` and each piece that has a direction of its own (principal axes ratio ≥
/// 1.5) lies along that line or across it (within 20°; a dash shorter than its scratch is wide
/// lies across). A linked group becomes one scratch only when it is
/// one straight line: a line fitted to all its pixels passes within half the line's width (at
/// least one pixel) of every piece's centroid, the pieces follow each other along it without
/// overlapping, the whole is at least [`SCRATCH_MIN_ELONGATION`] times as long as it is wide, and
/// it has three pieces or more — or two that are each elongated along the line. Otherwise the
/// piece farthest from the line is left out and the rest tried again. Cracks (the model's crack
/// output) are never joined.
///
/// The scratch's width is measured across the line: its cross-section (pixels per 1-px slice
/// along the line) at the 75th percentile of the slices, so a dash shorter than the scratch is
/// wide still measures the scratch's width; its length is the whole line's extent; zone, score and box
/// are those of all its pieces. Its pixels take the first piece's label in
/// `scratch.labels_in_crop` (so outlines cover the whole line); `fragments` says how many
/// components it was joined from. Run after [`extract_defects_hysteresis`] (and
/// [`classify_cracks`]) with the same `scratch`; the per-label pixel lists are stale afterwards.
pub fn join_broken_scratches(
    defects: &mut Vec<Defect>,
    zone: &ContactZone,
    max_gap_um: f64,
    scratch: &mut DefectScratch,
    js: &mut JoinScratch,
) {
    let n = defects.len();
    // (a NaN gap joins nothing, as 0 does)
    if max_gap_um.is_nan() || max_gap_um <= 0.0 || !(2..=JOIN_MAX_COMPONENTS).contains(&n) {
        return;
    }
    let s = zone.um_per_px;
    let max_gap_px = max_gap_um / s;
    let cos_max = JOIN_MAX_ANGLE_DEG.to_radians().cos();
    let sin_max = JOIN_MAX_ANGLE_DEG.to_radians().sin();
    js.frags.clear();
    for d in defects.iter() {
        let mut f = fragment_of(pixels_of(scratch, d.label));
        f.joinable &= !d.crack;
        js.frags.push(f);
    }
    js.parent.clear();
    js.parent.extend(0..n);
    for i in 0..n {
        for j in i + 1..n {
            let (a, b) = (js.frags[i], js.frags[j]);
            if !a.joinable || !b.joinable {
                continue;
            }
            let (dx, dy) = (b.cx - a.cx, b.cy - a.cy);
            let dist = dx.hypot(dy);
            if dist <= 0.0 || dist - a.reach - b.reach > max_gap_px {
                continue;
            }
            let (ux, uy) = (dx / dist, dy / dist);
            // a piece with a direction lies along the line, or across it (a dash shorter
            // than the scratch is wide)
            let along = |f: &Fragment| {
                let c = (f.ex * ux + f.ey * uy).abs();
                f.ratio < JOIN_ELONGATED_RATIO || c >= cos_max || c <= sin_max
            };
            if !along(&a) || !along(&b) {
                continue;
            }
            let (_, a_hi) = span_along(pixels_of(scratch, defects[i].label), a.cx, a.cy, ux, uy);
            let (b_lo, _) = span_along(pixels_of(scratch, defects[j].label), a.cx, a.cy, ux, uy);
            // pixel centres one apart touch: the gap is what lies between them
            if b_lo - a_hi - 1.0 > max_gap_px || b_lo - a_hi < -1.0 {
                continue;
            }
            let (ri, rj) = (find(&mut js.parent, i), find(&mut js.parent, j));
            if ri != rj {
                js.parent[ri.max(rj)] = ri.min(rj);
            }
        }
    }
    js.merged.clear();
    js.remove.clear();
    js.remove.resize(n, false);
    let max_label = defects.iter().map(|d| d.label).max().unwrap_or(0);
    js.relabel.clear();
    js.relabel.extend(0..=max_label);
    for root in 0..n {
        js.group.clear();
        for i in 0..n {
            if find(&mut js.parent, i) == root {
                js.group.push(i);
            }
        }
        while js.group.len() >= 2 {
            match fit_line(
                defects,
                scratch,
                &js.frags,
                &js.group,
                s,
                max_gap_px,
                &mut js.counts,
            ) {
                LineFit::Scratch(d) => {
                    for &i in &js.group {
                        js.remove[i] = true;
                    }
                    for &i in &js.group {
                        if let Some(r) = js.relabel.get_mut(defects[i].label as usize) {
                            *r = d.label;
                        }
                    }
                    js.merged.push(*d);
                    break;
                }
                LineFit::Drop(k) => {
                    js.group.remove(k);
                }
                LineFit::No => break,
            }
        }
    }
    if js.merged.is_empty() {
        return;
    }
    for l in scratch.labels_in_crop.iter_mut() {
        if let Some(&r) = js.relabel.get(*l as usize) {
            *l = r;
        }
    }
    let mut k = 0;
    defects.retain(|_| {
        let keep = !js.remove[k];
        k += 1;
        keep
    });
    defects.append(&mut js.merged);
    defects.sort_unstable_by(|a, b| b.score.total_cmp(&a.score).then(a.label.cmp(&b.label)));
}

enum LineFit {
    /// The group is one broken scratch.
    Scratch(Box<Defect>),
    /// Not a line: leave out this member (index into the group) and try again.
    Drop(usize),
    /// Not a line, and nothing to leave out.
    No,
}

/// `s`: µm per crop pixel; `max_gap_px`: the largest gap between consecutive pieces.
fn fit_line(
    defects: &[Defect],
    scratch: &DefectScratch,
    frags: &[Fragment],
    group: &[usize],
    s: f64,
    max_gap_px: f64,
    counts: &mut Vec<u32>,
) -> LineFit {
    // Line through all the group's pixels (principal axis of their union).
    let (mut n, mut sx, mut sy) = (0.0f64, 0.0f64, 0.0f64);
    for &i in group {
        for &(u, v) in pixels_of(scratch, defects[i].label) {
            n += 1.0;
            sx += u as f64;
            sy += v as f64;
        }
    }
    if n == 0.0 {
        return LineFit::No;
    }
    let (cx, cy) = (sx / n, sy / n);
    let (mut sxx, mut syy, mut sxy) = (0.0f64, 0.0f64, 0.0f64);
    for &i in group {
        for &(u, v) in pixels_of(scratch, defects[i].label) {
            let (dx, dy) = (u as f64 - cx, v as f64 - cy);
            sxx += dx * dx;
            syy += dy * dy;
            sxy += dx * dy;
        }
    }
    let th = 0.5 * (2.0 * sxy).atan2(sxx - syy);
    let (ex, ey) = (th.cos(), th.sin());
    let (nx, ny) = (-ey, ex);
    // Each piece: extent along the line, and offset of its centroid from it.
    let mut along_sum = 0.0;
    let mut area = 0usize;
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    let mut spans: [(f64, f64); JOIN_MAX_COMPONENTS] = [(0.0, 0.0); JOIN_MAX_COMPONENTS];
    let mut worst = (0usize, 0.0f64);
    let mut all_elongated = true;
    for (k, &i) in group.iter().enumerate() {
        let px = pixels_of(scratch, defects[i].label);
        let (a, b) = span_along(px, cx, cy, ex, ey);
        let (c, d) = span_along(px, cx, cy, nx, ny);
        spans[k] = (a, b);
        along_sum += b - a + 1.0;
        area += px.len();
        lo = lo.min(a);
        hi = hi.max(b);
        let f = &frags[i];
        let off = ((f.cx - cx) * nx + (f.cy - cy) * ny).abs();
        if off > worst.1 {
            worst = (k, off);
        }
        all_elongated &= (b - a + 1.0) >= JOIN_ELONGATED_RATIO * (d - c + 1.0);
    }
    // Width: the line's cross-section — pixels per 1-px slice along it — at its 75th
    // percentile over the slices that have any (a dash shorter than the scratch is wide has
    // rounded ends, so its area over its length would read it narrow; most slices of a
    // band, and the middle ones of each dash, hold its full width).
    let length = hi - lo + 1.0;
    counts.clear();
    counts.resize(length.ceil() as usize + 1, 0);
    for &i in group {
        for &(u, v) in pixels_of(scratch, defects[i].label) {
            let t = (u as f64 - cx) * ex + (v as f64 - cy) * ey - lo;
            if let Some(c) = counts.get_mut(t.max(0.0) as usize) {
                *c += 1;
            }
        }
    }
    counts.retain(|&c| c > 0);
    counts.sort_unstable();
    let width = match counts.len() {
        0 => area as f64 / along_sum.max(1.0),
        k => f64::from(counts[(3 * (k - 1) + 2) / 4]),
    };
    let drop_worst = || {
        if group.len() > 2 {
            LineFit::Drop(worst.0)
        } else {
            LineFit::No
        }
    };
    if worst.1 > (0.5 * width).max(1.0) {
        return drop_worst();
    }
    // Pieces follow each other along the line (a side-by-side pair is two scratches), none
    // farther from the next than the gap allowed (leaving a piece out can open one).
    let spans = &mut spans[..group.len()];
    spans.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    for w in spans.windows(2) {
        let overlap = w[0].1 - w[1].0;
        let shorter = (w[0].1 - w[0].0).min(w[1].1 - w[1].0) + 1.0;
        if overlap > 1.0 + 0.25 * shorter || -overlap - 1.0 > max_gap_px {
            return drop_worst();
        }
    }
    // The wide-line rule of `is_scratch_shape` is not applied here: pieces that follow each
    // other along one line are a line by their arrangement, whatever their width.
    if length / width < SCRATCH_MIN_ELONGATION || (group.len() == 2 && !all_elongated) {
        return drop_worst();
    }
    // One scratch from the group's pieces (the first, highest-scoring piece names it).
    let first = &defects[group[0]];
    let mut d = first.clone();
    let mut bbox = first.bbox_in_crop;
    for &i in group {
        let o = &defects[i];
        d.inner_radius_um = d.inner_radius_um.min(o.inner_radius_um);
        d.outer_radius_um = d.outer_radius_um.max(o.outer_radius_um);
        d.score = d.score.max(o.score);
        d.feret_um = d.feret_um.max(o.feret_um);
        d.crack_score = match (d.crack_score, o.crack_score) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        bbox = [
            bbox[0].min(o.bbox_in_crop[0]),
            bbox[1].min(o.bbox_in_crop[1]),
            bbox[2].max(o.bbox_in_crop[2]),
            bbox[3].max(o.bbox_in_crop[3]),
        ];
    }
    d.kind = FeatureKind::Scratch;
    d.crack = false;
    d.bbox_in_crop = bbox;
    d.area_px = area;
    d.area_um2 = area as f64 * s * s;
    d.width_um = width * s;
    d.length_um = length * s;
    d.feret_um = d.feret_um.max(length * s);
    d.elongation = length / width;
    d.size_um = d.width_um;
    d.fragments = group.len() as u32;
    LineFit::Scratch(Box::new(d))
}

/// Max Feret diameter in pixels: the largest distance between pixel centres, plus one pixel
/// (the extent of the end pixels); 1 for a single pixel.
fn max_feret_px(pixels: &[(u32, u32)], v0: u32, v1: u32, ms: &mut MeasureScratch) -> f64 {
    // Only each row's leftmost and rightmost pixels can be on the convex hull.
    let rows = (v1 - v0 + 1) as usize;
    let (lo, hi) = (&mut ms.row_lo, &mut ms.row_hi);
    lo.clear();
    lo.resize(rows, u32::MAX);
    hi.clear();
    hi.resize(rows, 0);
    for &(u, v) in pixels {
        let r = (v - v0) as usize;
        lo[r] = lo[r].min(u);
        hi[r] = hi[r].max(u);
    }
    let MeasureScratch {
        hull_pts: pts,
        hull,
        row_lo: lo,
        row_hi: hi,
        ..
    } = ms;
    pts.clear();
    for r in 0..rows {
        if lo[r] != u32::MAX {
            let v = (r as u32 + v0) as i64;
            pts.push((lo[r] as i64, v));
            if hi[r] != lo[r] {
                pts.push((hi[r] as i64, v));
            }
        }
    }
    convex_hull(pts, hull);
    let mut best = 0i64;
    for i in 0..hull.len() {
        for j in i + 1..hull.len() {
            let (dx, dy) = (hull[i].0 - hull[j].0, hull[i].1 - hull[j].1);
            best = best.max(dx * dx + dy * dy);
        }
    }
    (best as f64).sqrt() + 1.0
}

/// Andrew's monotone chain; `pts` is sorted in place, `hull` receives the hull (no repeats).
fn convex_hull(pts: &mut [(i64, i64)], hull: &mut Vec<(i64, i64)>) {
    hull.clear();
    pts.sort_unstable();
    if pts.len() < 3 {
        hull.extend_from_slice(pts);
        return;
    }
    let cross = |o: (i64, i64), a: (i64, i64), b: (i64, i64)| {
        (a.0 - o.0) * (b.1 - o.1) - (a.1 - o.1) * (b.0 - o.0)
    };
    for &p in pts.iter() {
        while hull.len() >= 2 && cross(hull[hull.len() - 2], hull[hull.len() - 1], p) <= 0 {
            hull.pop();
        }
        hull.push(p);
    }
    let lower = hull.len() + 1;
    for &p in pts.iter().rev().skip(1) {
        while hull.len() >= lower && cross(hull[hull.len() - 2], hull[hull.len() - 1], p) <= 0 {
            hull.pop();
        }
        hull.push(p);
    }
    hull.pop();
}

/// Geodesic diameter of the component in pixels, plus one pixel of extent: the longest of
/// the shortest paths inside it (steps 1 orthogonal, √2 diagonal), found by the double sweep
/// (farthest pixel from any pixel, then farthest from that). Follows curved scratches.
fn geodesic_length_px(pixels: &[(u32, u32)], bbox: [u32; 4], ms: &mut MeasureScratch) -> f64 {
    let [u0, v0, u1, v1] = bbox;
    let MeasureScratch {
        grid, dist, heap, ..
    } = ms;
    let gw = (u1 - u0 + 1) as usize;
    let gh = (v1 - v0 + 1) as usize;
    grid.clear();
    grid.resize(gw * gh, 0);
    for &(u, v) in pixels {
        grid[(v - v0) as usize * gw + (u - u0) as usize] = 1;
    }
    let Some(&(su, sv)) = pixels.first() else {
        return 1.0;
    };
    let start = (sv - v0) as usize * gw + (su - u0) as usize;
    let (a, _) = farthest(start, gw, gh, grid, dist, heap);
    let (_, d) = farthest(a, gw, gh, grid, dist, heap);
    d + 1.0
}

/// Dijkstra from `start` over the set cells of `grid`; the farthest cell and its distance.
fn farthest(
    start: usize,
    gw: usize,
    gh: usize,
    grid: &[u8],
    dist: &mut Vec<f64>,
    heap: &mut std::collections::BinaryHeap<(std::cmp::Reverse<u64>, usize)>,
) -> (usize, f64) {
    use std::cmp::Reverse;
    dist.clear();
    dist.resize(gw * gh, f64::INFINITY);
    heap.clear();
    dist[start] = 0.0;
    // Non-negative finite f64 order like their bit patterns.
    heap.push((Reverse(0f64.to_bits()), start));
    let mut best = (start, 0.0);
    while let Some((Reverse(bits), i)) = heap.pop() {
        let d = f64::from_bits(bits);
        if d > dist[i] {
            continue;
        }
        if d > best.1 {
            best = (i, d);
        }
        let (x, y) = ((i % gw) as i64, (i / gw) as i64);
        for dy in -1i64..=1 {
            for dx in -1i64..=1 {
                if dx == 0 && dy == 0 {
                    continue;
                }
                let (nx, ny) = (x + dx, y + dy);
                if nx < 0 || ny < 0 || nx >= gw as i64 || ny >= gh as i64 {
                    continue;
                }
                let j = ny as usize * gw + nx as usize;
                if grid[j] == 0 {
                    continue;
                }
                let step = if dx != 0 && dy != 0 {
                    std::f64::consts::SQRT_2
                } else {
                    1.0
                };
                let nd = d + step;
                if nd < dist[j] {
                    dist[j] = nd;
                    heap.push((Reverse(nd.to_bits()), j));
                }
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(n: usize, s: f64) -> ContactZone {
        ContactZone::new(n, n, s, CONTACT_RADIUS_UM)
    }

    fn defects_of(map: &[f32], z: &ContactZone, thr: f32) -> Vec<Defect> {
        let mut scratch = DefectScratch::default();
        let mut out = Vec::new();
        extract_defects(map, z, thr, &mut scratch, &mut out);
        out
    }

    #[test]
    fn pixels_beyond_the_frame_are_not_graded_and_the_share_in_view_is_counted() {
        let n = 64;
        let z = ContactZone::new(n, n, 2.0, 60.0); // zone radius 30 px around (31.5, 31.5)
        let mut map = vec![0.2f32; n * n];
        map[10 * n + 31] = 0.99; // inside the zone, top rows
        map[40 * n + 31] = 0.7;
        let top_cut = CropRect {
            u0: 0,
            u1: n,
            v0: 20,
            v1: n,
        };
        let mut m = map.clone();
        let (score, share) = z.mask_and_score_in_view(&mut m, &top_cut);
        assert_eq!(score, 0.7, "the peak above row 20 is beyond the frame");
        assert!(m[..20 * n].iter().all(|&v| v == 0.0));
        let expect = (0..n * n)
            .filter(|&i| z.mask_in_crop[i] && i / n >= 20)
            .count() as f64
            / z.zone_pixels as f64;
        assert!(
            (share - expect).abs() < 1e-12 && share > 0.5 && share < 1.0,
            "{share}"
        );
        assert!((z.share_in_view(&top_cut) - expect).abs() < 1e-12);
        let mut m = map.clone();
        assert_eq!(
            z.mask_and_score_in_view(&mut m, &CropRect::full(n, n)),
            (0.99, 1.0)
        );
        assert_eq!(z.mask_and_score(&mut map.clone()), 0.99);
        // the disk of radius 20 µm (10 px) around the axis is in view; 30 µm (15 px) is not
        let rows_21_up = CropRect { v0: 21, ..top_cut };
        assert!(z.disk_in_view(20.0, &rows_21_up));
        assert!(!z.disk_in_view(30.0, &rows_21_up));
        assert!(z.disk_in_view(60.0, &CropRect::full(n, n)));
    }

    #[test]
    fn a_line_from_the_cladding_edge_inwards_is_a_crack_and_other_lines_stay_scratches() {
        let n = 160;
        let z = ContactZone::new(n, n, 1.0, 75.0);
        let r_clad = 62.5;
        let c = n / 2;
        let mut map = vec![0.0f32; n * n];
        let mut line = |pts: &mut dyn Iterator<Item = (usize, usize)>| {
            for (u, v) in pts {
                map[v * n + u] = 0.9;
            }
        };
        // 1 (east): along a radius from the edge (62 µm) inwards to 40 µm: a crack
        line(&mut (c + 40..=c + 61).map(|u| (u, c)));
        // 2 (north): across zone B, 50 µm from the axis, nowhere near the edge: a scratch
        line(&mut (c - 10..=c + 10).map(|u| (u, c - 50)));
        // 3 (south): along a radius, but on across the edge into the ferrule (to 70 µm)
        line(&mut (c + 40..=c + 70).map(|v| (c, v)));
        // 4 (west): at the edge, but along it (tangential); its centre is on line 1's line,
        // but it lies across that line, not along it
        line(&mut (c - 6..=c + 6).map(|v| (c - 61, v)));
        // 5 (north-east): radial at the edge but 3 px (4 µm) long: a chip's size
        line(&mut (0..3).map(|k| (c + 43 + k, c - 43 - k)));
        let mut scratch = DefectScratch::default();
        let mut out = Vec::new();
        extract_defects(&map, &z, 0.5, &mut scratch, &mut out);
        assert_eq!(out.len(), 5);
        let before = out.clone();
        let find = |ds: &[Defect], u0: usize, v0: usize| {
            ds.iter()
                .find(|d| d.bbox_in_crop[0] == u0 as u32 && d.bbox_in_crop[1] == v0 as u32)
                .unwrap()
                .clone()
        };
        let (l1, l2, l3, l4, l5) = (
            (c + 40, c),
            (c - 10, c - 50),
            (c, c + 40),
            (c - 61, c - 6),
            (c + 43, c - 45),
        );
        for (u0, v0) in [l1, l2, l3, l4] {
            assert_eq!(
                find(&before, u0, v0).kind,
                FeatureKind::Scratch,
                "line at {u0},{v0}"
            );
        }
        assert_eq!(
            classify_edge_cracks(&mut out, &z, r_clad, &scratch, None),
            1
        );
        let crack = find(&out, l1.0, l1.1);
        assert!(crack.crack && crack.crack_score.is_none());
        assert_eq!(crack.kind, FeatureKind::Defect);
        assert_eq!(crack.size_um, crack.feret_um);
        assert!(
            crack.size_um > 20.0,
            "sized by its length: {}",
            crack.size_um
        );
        for (u0, v0) in [l2, l3, l4, l5] {
            let d = find(&out, u0, v0);
            assert_eq!(d, find(&before, u0, v0), "unchanged: line at {u0},{v0}");
        }
        // a crack already called is left alone: a second pass finds nothing new
        assert_eq!(
            classify_edge_cracks(&mut out, &z, r_clad, &scratch, None),
            0
        );
        // no located radius, nothing called
        let mut again = before.clone();
        assert_eq!(
            classify_edge_cracks(&mut again, &z, f64::NAN, &scratch, None),
            0
        );
        assert_eq!(classify_edge_cracks(&mut again, &z, 0.0, &scratch, None), 0);
        assert_eq!(again, before);
        // with the edge 10 µm farther out, line 1 stops well inside the glass (a scratch) and
        // line 3 now ends 2 µm inside the edge (a crack)
        let mut far = before.clone();
        assert_eq!(
            classify_edge_cracks(&mut far, &z, r_clad + 10.0, &scratch, None),
            1
        );
        assert!(!find(&far, l1.0, l1.1).crack);
        assert!(find(&far, l3.0, l3.1).crack);

        // A scratch through the fiber seen in two pieces (its middle too faint): the piece at
        // the edge runs inwards like line 1, but the other piece lies on its line.
        let mut map = vec![0.0f32; n * n];
        for u in (c + 45..=c + 61).chain(c - 20..=c + 10) {
            map[c * n + u] = 0.9;
        }
        let mut out = Vec::new();
        extract_defects(&map, &z, 0.5, &mut scratch, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(
            classify_edge_cracks(&mut out, &z, r_clad, &scratch, None),
            0
        );
        // …and without the other piece the edge piece alone is a crack
        let mut map = vec![0.0f32; n * n];
        for u in c + 45..=c + 61 {
            map[c * n + u] = 0.9;
        }
        extract_defects(&map, &z, 0.5, &mut scratch, &mut out);
        assert_eq!(
            classify_edge_cracks(&mut out, &z, r_clad, &scratch, None),
            1
        );
    }

    #[test]
    fn a_line_ending_in_the_blind_band_is_a_crack_only_when_it_goes_on_dark_to_the_edge() {
        let n = 160;
        let z = ContactZone::new(n, n, 1.0, 75.0);
        let r_clad = 62.5;
        let c = n / 2;
        // along a radius (east, angle 0) from 40 µm out to ~57 µm: its outer end lies ~5.5 µm
        // inside the edge, beyond the plain rule's 4.5 µm
        let line = |end: usize| {
            let mut map = vec![0.0f32; n * n];
            for u in c + 40..=c + end {
                map[c * n + u] = 0.9;
            }
            let mut scratch = DefectScratch::default();
            let mut out = Vec::new();
            extract_defects(&map, &z, 0.5, &mut scratch, &mut out);
            assert_eq!(out.len(), 1);
            assert_eq!(out[0].kind, FeatureKind::Scratch);
            (out, scratch)
        };
        let (before, scratch) = line(56);
        let oe = before[0].outer_radius_um - r_clad;
        assert!(
            oe < -EDGE_CRACK_INSIDE_UM && oe > -EDGE_CRACK_BLIND_UM,
            "outer end {oe}"
        );
        // z along the line's extension (angle ~0, 57-62 µm), 0 elsewhere in the band
        let band = |on: f32| {
            move |r: f64, a: f64| {
                (r >= r_clad - 6.0 && r <= r_clad + 1.5).then_some(if a.abs() < 0.03 {
                    on
                } else {
                    0.0
                })
            }
        };
        let calls = |on: Option<f32>, out: &[Defect], scratch: &DefectScratch| {
            let mut out = out.to_vec();
            let f = on.map(band);
            let k = classify_edge_cracks(
                &mut out,
                &z,
                r_clad,
                scratch,
                f.as_ref().map(|f| f as &dyn Fn(f64, f64) -> Option<f32>),
            );
            (k, out)
        };
        // no scan: the plain rule, not a crack
        assert_eq!(calls(None, &before, &scratch).0, 0);
        // the picture shows it going on, dark, to the edge: a crack, sized by its length
        let (k, out) = calls(Some(-3.0), &before, &scratch);
        assert_eq!(k, 1);
        assert!(out[0].crack && out[0].kind == FeatureKind::Defect);
        // bright (a polishing scratch may be), too faint, or nothing there: not a crack
        for on in [3.0, -1.0, 0.0] {
            assert_eq!(calls(Some(on), &before, &scratch).0, 0, "z {on}");
        }
        // a line ending 9 µm inside the edge is too far in, whatever the picture
        let (before, scratch) = line(53);
        assert_eq!(calls(Some(-5.0), &before, &scratch).0, 0);
        // a line that reaches the plain rule's band needs no picture
        let (before, scratch) = line(60);
        assert_eq!(calls(None, &before, &scratch).0, 1);
        assert_eq!(calls(Some(3.0), &before, &scratch).0, 1);
    }

    #[test]
    fn a_short_line_lying_along_the_cladding_edge_is_a_chip_sized_by_its_extent() {
        let n = 160;
        let z = ContactZone::new(n, n, 1.0, 75.0);
        let r_clad = 62.5;
        let c = n / 2;
        let mut map = vec![0.0f32; n * n];
        let mut fill = |us: std::ops::RangeInclusive<usize>,
                        vs: std::ops::RangeInclusive<usize>| {
            for v in vs {
                for u in us.clone() {
                    map[v * n + u] = 0.9;
                }
            }
        };
        // 1 (east): a notch at the edge, 3 µm deep and 13 µm along it: a chip
        fill(c + 59..=c + 61, c - 6..=c + 6);
        // 2 (west): a thin line along the edge, 21 µm long: a scratch (far longer than wide)
        fill(c - 61..=c - 61, c - 10..=c + 10);
        // 3 (north): a line from the edge inwards: not along the edge
        fill(c..=c, c - 61..=c - 45);
        // 4 (south): a bar like 1 but 40 µm from the axis: not at the edge
        fill(c - 6..=c + 6, c + 39..=c + 41);
        let mut scratch = DefectScratch::default();
        let mut out = Vec::new();
        extract_defects(&map, &z, 0.5, &mut scratch, &mut out);
        assert_eq!(out.len(), 4);
        assert!(out.iter().all(|d| d.kind == FeatureKind::Scratch));
        let before = out.clone();
        let at = |ds: &[Defect], u0: usize, v0: usize| {
            ds.iter()
                .find(|d| d.bbox_in_crop[0] == u0 as u32 && d.bbox_in_crop[1] == v0 as u32)
                .unwrap()
                .clone()
        };
        assert_eq!(classify_edge_chips(&mut out, r_clad), 1);
        let chip = at(&out, c + 59, c - 6);
        assert_eq!(chip.kind, FeatureKind::Defect);
        assert!(!chip.crack);
        assert_eq!(chip.size_um, chip.feret_um);
        assert!(
            chip.size_um > 12.0,
            "sized along the edge: {}",
            chip.size_um
        );
        assert!(at(&before, c + 59, c - 6).size_um < 4.0, "was its depth");
        for (u0, v0) in [(c - 61, c - 10), (c, c - 61), (c - 6, c + 39)] {
            assert_eq!(
                at(&out, u0, v0),
                at(&before, u0, v0),
                "unchanged at {u0},{v0}"
            );
        }
        // called once; cracks are left alone; no located edge, nothing called
        assert_eq!(classify_edge_chips(&mut out, r_clad), 0);
        let mut cracked = before.clone();
        for d in cracked.iter_mut() {
            d.crack = true;
        }
        assert_eq!(classify_edge_chips(&mut cracked, r_clad), 0);
        let mut again = before.clone();
        assert_eq!(classify_edge_chips(&mut again, f64::NAN), 0);
        assert_eq!(classify_edge_chips(&mut again, -1.0), 0);
        assert_eq!(again, before);
        // with the edge 10 µm farther out, the notch lies inside the glass: a scratch
        let mut far = before.clone();
        assert_eq!(classify_edge_chips(&mut far, r_clad + 10.0), 0);
    }

    #[test]
    fn the_crack_output_turns_a_thin_line_into_a_defect_sized_by_its_length() {
        let n = 64;
        let z = ContactZone::new(n, n, 1.0, 60.0);
        let mut map = vec![0.0f32; n * n];
        // two thin lines (1 px wide, 20 px long) and a spot, all inside the zone
        for u in 20..40 {
            map[20 * n + u] = 0.9;
            map[44 * n + u] = 0.9;
        }
        for v in 30..34 {
            for u in 30..34 {
                map[v * n + u] = 0.9;
            }
        }
        let mut scratch = DefectScratch::default();
        let mut out = Vec::new();
        extract_defects(&map, &z, 0.5, &mut scratch, &mut out);
        assert_eq!(out.len(), 3);
        let before: Vec<Defect> = out.clone();
        // the crack map says the top line is a crack (mean 0.8), the bottom one is not (0.3);
        // the spot's pixels are split half and half (mean 0.5 = the limit: a crack)
        let mut crack = vec![0.0f32; n * n];
        for u in 20..40 {
            crack[20 * n + u] = 0.8;
            crack[44 * n + u] = 0.3;
        }
        for v in 30..34 {
            for u in 30..34 {
                crack[v * n + u] = if v < 32 { 1.0 } else { 0.0 };
            }
        }
        classify_cracks(&mut out, &crack, &z, 0.5, &scratch);
        let top = out.iter().find(|d| d.bbox_in_crop[1] == 20).unwrap();
        let bottom = out.iter().find(|d| d.bbox_in_crop[1] == 44).unwrap();
        let spot = out.iter().find(|d| d.bbox_in_crop[1] == 30).unwrap();
        let was = |d: &Defect| before.iter().find(|b| b.label == d.label).unwrap().clone();
        assert_eq!(
            was(top).kind,
            FeatureKind::Scratch,
            "a thin line is a scratch by shape"
        );
        assert!(top.crack && (top.crack_score.unwrap() - 0.8).abs() < 1e-6);
        assert_eq!(top.kind, FeatureKind::Defect);
        assert_eq!(top.size_um, top.feret_um);
        assert!(
            top.size_um > 19.0,
            "sized by its length, not its 1 µm width: {}",
            top.size_um
        );
        assert!(!bottom.crack && (bottom.crack_score.unwrap() - 0.3).abs() < 1e-6);
        assert_eq!(
            *bottom,
            Defect {
                crack_score: Some(0.3),
                ..was(bottom)
            }
        );
        assert!(spot.crack && (spot.crack_score.unwrap() - 0.5).abs() < 1e-6);
        assert_eq!(spot.kind, FeatureKind::Defect);
        // without a crack output nothing is scored
        assert!(before.iter().all(|d| d.crack_score.is_none() && !d.crack));
    }

    /// Defects of `map` (threshold 0.5), then joined with `gap_um`; and the label image.
    fn joined(map: &[f32], z: &ContactZone, gap_um: f64) -> (Vec<Defect>, Vec<u32>) {
        let mut scratch = DefectScratch::default();
        let mut out = Vec::new();
        extract_defects(map, z, 0.5, &mut scratch, &mut out);
        join_broken_scratches(
            &mut out,
            z,
            gap_um,
            &mut scratch,
            &mut JoinScratch::default(),
        );
        (out, scratch.labels_in_crop)
    }

    /// A scratch `width` px wide along `dir` (unit) through `(u0, v0)`, broken into dashes
    /// `dash` px long with `gap` px between them, `n` dashes; score 0.9.
    #[allow(clippy::too_many_arguments)]
    fn dashed(
        map: &mut [f32],
        n_px: usize,
        u0: f64,
        v0: f64,
        dir: (f64, f64),
        width: f64,
        dash: f64,
        gap: f64,
        n: usize,
    ) {
        let (ex, ey) = dir;
        for v in 0..n_px {
            for u in 0..n_px {
                let (x, y) = (u as f64 - u0, v as f64 - v0);
                let t = x * ex + y * ey;
                let d = (-x * ey + y * ex).abs();
                let period = dash + gap;
                if t >= 0.0 && t < period * n as f64 && t % period < dash && d <= width / 2.0 {
                    map[v * n_px + u] = 0.9;
                }
            }
        }
    }

    #[test]
    fn dashes_of_one_wide_scratch_are_one_scratch_with_its_width() {
        let n = 201;
        let z = zone(n, 0.5);
        for dir in [(1.0, 0.0), (0.8, 0.6), (0.0, 1.0)] {
            let mut map = vec![0.0f32; n * n];
            // 5 µm wide (10 px), dashes 3 µm long with 3 µm gaps: six pieces, each shorter
            // than the scratch is wide, so each alone is a "defect" of about 6 µm.
            dashed(&mut map, n, 40.0, 60.0, dir, 10.0, 6.0, 6.0, 6);
            let (apart, _) = joined(&map, &z, 0.0);
            assert_eq!(apart.len(), 6, "{dir:?}");
            assert!(apart
                .iter()
                .all(|d| d.kind == FeatureKind::Defect && d.fragments == 1));
            let (one, labels) = joined(&map, &z, DEFAULT_SCRATCH_JOIN_GAP_UM);
            assert_eq!(one.len(), 1, "{dir:?}: {one:?}");
            let d = &one[0];
            assert_eq!((d.kind, d.fragments), (FeatureKind::Scratch, 6), "{dir:?}");
            assert!(
                (d.size_um - 5.0).abs() <= 0.75,
                "{dir:?}: width {}",
                d.size_um
            );
            assert_eq!(d.size_um, d.width_um);
            // 6 dashes + 5 gaps = 66 px = 33 µm end to end
            assert!(
                (d.length_um - 33.0).abs() < 2.5,
                "{dir:?}: length {}",
                d.length_um
            );
            assert_eq!(d.area_px, apart.iter().map(|a| a.area_px).sum::<usize>());
            assert_eq!(
                d.inner_radius_um,
                apart
                    .iter()
                    .map(|a| a.inner_radius_um)
                    .fold(f64::INFINITY, f64::min)
            );
            // every piece's pixels now carry the scratch's label (the overlay outlines it whole)
            let on: Vec<u32> = labels.iter().copied().filter(|&l| l != 0).collect();
            assert_eq!(on.len(), d.area_px);
            assert!(on.iter().all(|&l| l == d.label));
        }
    }

    /// The defects, broken scratches joined at the default gap, of a 201x201 crop at 0.5 µm/px
    /// whose map is `n` dashes from `start` along `dir` ([`dashed`], lengths in px).
    fn joined_dashes(
        start: (f64, f64),
        dir: (f64, f64),
        width: f64,
        dash: f64,
        gap: f64,
        n: usize,
    ) -> Vec<Defect> {
        let n_px = 201;
        let mut map = vec![0.0f32; n_px * n_px];
        dashed(&mut map, n_px, start.0, start.1, dir, width, dash, gap, n);
        joined(&map, &zone(n_px, 0.5), DEFAULT_SCRATCH_JOIN_GAP_UM).0
    }

    #[test]
    fn dashes_of_a_wide_scratch_are_joined_whatever_their_width() {
        // 7 µm wide (14 px at 0.5 µm/px), five 8 µm dashes with 4 µm gaps: 52 µm end to end,
        // elongation ~7.4 — under the wide-line rule's 8 for one piece, but the pieces follow
        // each other along one line, so they are one scratch 7 µm wide.
        let one = joined_dashes((40.0, 60.0), (1.0, 0.0), 14.0, 16.0, 8.0, 5);
        assert_eq!(one.len(), 1, "{one:?}");
        let d = &one[0];
        assert_eq!((d.kind, d.fragments), (FeatureKind::Scratch, 5), "{d:?}");
        assert!(d.width_um >= WIDE_LINE_UM, "{d:?}");
        assert!(d.elongation < WIDE_SCRATCH_MIN_ELONGATION, "{d:?}");
    }

    #[test]
    fn a_thin_broken_scratch_is_one_scratch_not_many_small_defects() {
        // 1 µm wide, dashes 4 µm long, 2 µm gaps: each dash alone is a short scratch or a
        // 4 µm "defect"; ten of them would fail a single-mode zone B (5 from 2-5 µm).
        let one = joined_dashes((30.0, 100.0), (0.96, 0.28), 2.0, 8.0, 4.0, 10);
        assert_eq!(one.len(), 1, "{one:?}");
        assert_eq!((one[0].kind, one[0].fragments), (FeatureKind::Scratch, 10));
        assert!(
            one[0].size_um > 0.5 && one[0].size_um < 1.6,
            "{}",
            one[0].size_um
        );
    }

    #[test]
    fn particles_off_a_line_and_pieces_far_apart_are_not_joined() {
        let n = 201;
        let z = zone(n, 0.5);
        let disk = |map: &mut [f32], cu: f64, cv: f64, r: f64| {
            for v in 0..n {
                for u in 0..n {
                    if (u as f64 - cu).hypot(v as f64 - cv) <= r {
                        map[v * n + u] = 0.9;
                    }
                }
            }
        };
        // Three round particles in a triangle, close together.
        let mut map = vec![0.0f32; n * n];
        disk(&mut map, 60.0, 60.0, 3.0);
        disk(&mut map, 72.0, 60.0, 3.0);
        disk(&mut map, 66.0, 70.0, 3.0);
        let (d, _) = joined(&map, &z, DEFAULT_SCRATCH_JOIN_GAP_UM);
        assert_eq!(d.len(), 3, "{d:?}");
        assert!(d
            .iter()
            .all(|d| d.fragments == 1 && d.kind == FeatureKind::Defect));
        // Two round particles in a row: two pieces must each lie along the line to be joined.
        let mut map = vec![0.0f32; n * n];
        disk(&mut map, 60.0, 60.0, 3.0);
        disk(&mut map, 72.0, 60.0, 3.0);
        assert_eq!(joined(&map, &z, DEFAULT_SCRATCH_JOIN_GAP_UM).0.len(), 2);
        // Two dashes of one line 16 µm apart: beyond the 10 µm gap, joined at 20 µm.
        let mut map = vec![0.0f32; n * n];
        dashed(&mut map, n, 40.0, 60.0, (1.0, 0.0), 4.0, 20.0, 32.0, 2);
        assert_eq!(joined(&map, &z, DEFAULT_SCRATCH_JOIN_GAP_UM).0.len(), 2);
        let (d, _) = joined(&map, &z, 20.0);
        assert_eq!((d.len(), d[0].fragments), (1, 2), "{d:?}");
        // Two parallel scratches side by side are two scratches.
        let mut map = vec![0.0f32; n * n];
        dashed(&mut map, n, 40.0, 60.0, (1.0, 0.0), 2.0, 60.0, 0.0, 1);
        dashed(&mut map, n, 40.0, 68.0, (1.0, 0.0), 2.0, 60.0, 0.0, 1);
        let (d, _) = joined(&map, &z, DEFAULT_SCRATCH_JOIN_GAP_UM);
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d
            .iter()
            .all(|d| d.fragments == 1 && d.kind == FeatureKind::Scratch));
        // Dashes that turn a corner (an L) are not one straight scratch.
        let mut map = vec![0.0f32; n * n];
        dashed(&mut map, n, 40.0, 60.0, (1.0, 0.0), 3.0, 8.0, 5.0, 3);
        dashed(&mut map, n, 80.0, 66.0, (0.0, 1.0), 3.0, 8.0, 5.0, 3);
        let (d, _) = joined(&map, &z, DEFAULT_SCRATCH_JOIN_GAP_UM);
        assert!(d.len() >= 2 && d.iter().all(|d| d.fragments <= 3), "{d:?}");
    }

    #[test]
    fn cracks_are_never_joined() {
        let n = 201;
        let z = zone(n, 0.5);
        let mut map = vec![0.0f32; n * n];
        dashed(&mut map, n, 40.0, 60.0, (1.0, 0.0), 10.0, 6.0, 6.0, 4);
        let mut scratch = DefectScratch::default();
        let mut out = Vec::new();
        extract_defects(&map, &z, 0.5, &mut scratch, &mut out);
        let crack = vec![0.9f32; n * n];
        classify_cracks(&mut out, &crack, &z, 0.5, &scratch);
        join_broken_scratches(
            &mut out,
            &z,
            10.0,
            &mut scratch,
            &mut JoinScratch::default(),
        );
        assert_eq!(out.len(), 4);
        assert!(out.iter().all(|d| d.crack && d.fragments == 1));
    }

    #[test]
    fn hysteresis_grows_seeded_regions_and_drops_unseeded_ones() {
        let n = 64;
        let z = zone(n, 1.0);
        let mut map = vec![0.0f32; n * n];
        // A 3x20 bar whose core (3x4) is above 0.9 and the rest at 0.7.
        for v in 20..23 {
            for u in 20..40 {
                map[v * n + u] = if (28..32).contains(&u) { 0.95 } else { 0.7 };
            }
        }
        // A weak blob (0.7 everywhere) with no seed: not a defect.
        for v in 40..45 {
            for u in 40..45 {
                map[v * n + u] = 0.7;
            }
        }
        let mut scratch = DefectScratch::default();
        let mut out = Vec::new();
        // Plain threshold: only the 4x3 core.
        extract_defects_hysteresis(&map, &z, 0.9, 0.9, &mut scratch, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].area_px, 12);
        // Grown to 0.5: the whole bar, a scratch 20 long; the unseeded blob stays out.
        extract_defects_hysteresis(&map, &z, 0.9, 0.5, &mut scratch, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].area_px, 60);
        assert_eq!(out[0].kind, FeatureKind::Scratch);
        assert_eq!(out[0].bbox_in_crop, [20, 20, 39, 22]);
        assert_eq!(out[0].label, 1);
        let labelled = scratch.labels_in_crop.iter().filter(|&&l| l != 0).count();
        assert_eq!(labelled, 60);
        assert!(scratch.labels_in_crop.iter().all(|&l| l <= 1));
        // A grow threshold above the pixel threshold is the plain threshold.
        extract_defects_hysteresis(&map, &z, 0.9, 0.99, &mut scratch, &mut out);
        assert_eq!(out[0].area_px, 12);
        // Nothing seeded: nothing at all, labels cleared.
        extract_defects_hysteresis(&map, &z, 0.99, 0.5, &mut scratch, &mut out);
        assert!(out.is_empty());
        assert!(scratch.labels_in_crop.iter().all(|&l| l == 0));
    }

    #[test]
    fn reflect_matches_scipy_convention() {
        // n = 4: ... 1 0 | 0 1 2 3 | 3 2 ...
        assert_eq!(reflect(-1, 4), 0);
        assert_eq!(reflect(-2, 4), 1);
        assert_eq!(reflect(4, 4), 3);
        assert_eq!(reflect(5, 4), 2);
        assert_eq!(reflect(9, 4), 1);
        assert_eq!(reflect(-9, 4), 0);
    }

    #[test]
    fn smoothing_preserves_mass_and_constant() {
        let (w, h) = (9, 7);
        let mut img = vec![2.5f32; w * h];
        let mut s = SmoothScratch::default();
        gaussian_smooth(&mut img, w, h, 1.3, &mut s);
        assert!(img.iter().all(|&v| (v - 2.5).abs() < 1e-5));
        let mut img = vec![0.0f32; w * h];
        img[3 * w + 4] = 1.0;
        gaussian_smooth(&mut img, w, h, 1.0, &mut s);
        let sum: f32 = img.iter().sum();
        assert!((sum - 1.0).abs() < 1e-4, "{sum}");
        assert!(img[3 * w + 4] > img[3 * w + 5] && img[3 * w + 5] > img[3 * w + 6]);
    }

    /// A spot at (60, 40) in a 101 x 101 crop at 0.5 µm/px: the map marks radius `r_map` px, the
    /// input differs from a flat background by `core` grey levels inside radius `r_core`
    /// and by `ring` grey levels from there out to `r_map` (plus a line scratch elsewhere).
    fn halo_case(r_core: f64, r_map: f64, core: f32, ring: f32) -> (Vec<Defect>, usize) {
        halo_case_with(r_core, r_map, core, ring, |_, _| true)
    }

    /// [`halo_case`] with the ring's grey levels only where `ring_at(u, v)` (the rest of the
    /// marked pixels out to `r_map` stay at the reconstruction).
    fn halo_case_with(
        r_core: f64,
        r_map: f64,
        core: f32,
        ring: f32,
        ring_at: impl Fn(usize, usize) -> bool,
    ) -> (Vec<Defect>, usize) {
        let n = 101;
        let z = zone(n, 0.5);
        let mut map = vec![0.0f32; n * n];
        let mut input = vec![0.0f32; n * n];
        let grey = 127.5f32;
        for v in 0..n {
            for u in 0..n {
                let r = (u as f64 - 60.0).hypot(v as f64 - 40.0);
                if r <= r_map {
                    map[v * n + u] = 0.99;
                    input[v * n + u] = if r <= r_core {
                        core / grey
                    } else if ring_at(u, v) {
                        ring / grey
                    } else {
                        0.0
                    };
                }
                // a dark line scratch, 2 px wide, far from the spot: never resized
                if (30..70).contains(&u) && (70..72).contains(&v) {
                    map[v * n + u] = 0.99;
                    input[v * n + u] = -40.0 / grey;
                }
            }
        }
        let mut scratch = DefectScratch::default();
        let mut out = Vec::new();
        extract_defects(&map, &z, 0.5, &mut scratch, &mut out);
        let k = size_spots_without_halo(&mut out, &z, &input, grey, &mut scratch);
        (out, k)
    }

    #[test]
    fn a_spot_is_sized_inside_the_ring_of_opposite_polarity_around_it() {
        let spot = |d: &[Defect]| {
            d.iter()
                .find(|d| d.kind == FeatureKind::Defect)
                .cloned()
                .unwrap()
        };
        // a dark 3 µm pit (radius 3 px) in a bright ring out to 6.5 px: 6.5 µm as marked, ~3 µm inside
        let (d, k) = halo_case(3.0, 6.5, -40.0, 12.0);
        assert_eq!(k, 1);
        let p = spot(&d);
        assert!(p.halo && (p.size_um - 3.5).abs() < 0.6, "{p:?}");
        assert_eq!(p.size_um, p.feret_um);
        assert!(
            (p.area_um2 - std::f64::consts::PI * 6.5 * 6.5 * 0.25).abs() < 3.0,
            "area unchanged"
        );
        // a bright particle in a dark ring: the same
        let (d, _) = halo_case(3.0, 6.5, 40.0, -12.0);
        assert!(spot(&d).halo && spot(&d).size_um < 4.2);
        // no ring (the edge has the spot's sign): unchanged
        let (d, k) = halo_case(3.0, 6.5, -40.0, -10.0);
        assert_eq!(k, 0);
        assert!(!spot(&d).halo && (spot(&d).size_um - 7.0).abs() < 0.6);
        // a very bright particle (140 grey levels) in a ring a tenth as deep: still a ring
        let (d, k) = halo_case(3.0, 6.5, 140.0, -14.0);
        assert_eq!(k, 1);
        assert!(spot(&d).halo && spot(&d).size_um < 4.2, "{:?}", spot(&d));
        // ...but not one under 5 % of the peak (6 grey levels against 140)
        assert_eq!(halo_case(3.0, 6.5, 140.0, -6.0).1, 0);
        // a ring too faint to count (2 grey levels: noise) or a spot too faint (6 grey levels)
        assert_eq!(halo_case(3.0, 6.5, -40.0, 2.0).1, 0);
        assert_eq!(halo_case(3.0, 6.5, -6.0, 3.0).1, 0);
        // a bright face on one side only (a particle lit from the side), not a ring: unchanged
        let (d, k) = halo_case_with(3.0, 6.5, -40.0, 12.0, |u, _| u > 62);
        assert_eq!(k, 0);
        assert!(!spot(&d).halo);
        // a thin ring (under 15 % of the spot's pixels): unchanged
        assert_eq!(halo_case(6.2, 6.5, -40.0, 12.0).1, 0);
        // the scratch is never touched, and a crop of the wrong size changes nothing
        let (d, _) = halo_case(3.0, 6.5, -40.0, 12.0);
        assert!(d.iter().any(|d| d.kind == FeatureKind::Scratch && !d.halo));
        let z = zone(101, 0.5);
        let mut out = d.clone();
        let mut scratch = DefectScratch::default();
        assert_eq!(
            size_spots_without_halo(&mut out, &z, &[0.0; 10], 127.5, &mut scratch),
            0
        );
    }

    #[test]
    fn disk_is_a_spot_with_its_diameter() {
        let n = 101;
        let z = zone(n, 1.0);
        let mut map = vec![0.0f32; n * n];
        // Disk of radius 4 px centred 20 px right of the axis.
        for v in 0..n {
            for u in 0..n {
                let (x, y) = (u as f64 - 70.0, v as f64 - 50.0);
                if x * x + y * y <= 16.0 {
                    map[v * n + u] = 0.9;
                }
            }
        }
        map[50 * n + 70] = 0.95;
        let d = defects_of(&map, &z, 0.5);
        assert_eq!(d.len(), 1);
        let d = &d[0];
        assert_eq!(d.kind, FeatureKind::Defect);
        assert!((d.size_um - 9.0).abs() < 0.6, "{}", d.size_um);
        assert!(
            (d.inner_radius_um - 15.5).abs() < 1e-9,
            "{}",
            d.inner_radius_um
        );
        assert_eq!(d.score, 0.95);
        assert_eq!(d.bbox_in_crop, [66, 46, 74, 54]);
    }

    #[test]
    fn line_is_a_scratch_with_its_width() {
        let n = 101;
        let z = zone(n, 0.5);
        let mut map = vec![0.0f32; n * n];
        // Diagonal band 2 px wide, ~40 px long.
        for t in 0..40 {
            let (u, v) = (30 + t, 30 + t);
            map[v * n + u] = 0.8;
            map[v * n + u + 1] = 0.8;
        }
        let d = defects_of(&map, &z, 0.5);
        assert_eq!(d.len(), 1);
        let d = &d[0];
        assert_eq!(d.kind, FeatureKind::Scratch, "{d:?}");
        // True width of a 2-px-wide diagonal band is 2/√2 ≈ 1.41 px = 0.71 µm.
        assert!(d.width_um > 0.4 && d.width_um < 1.1, "{d:?}");
        assert!(d.length_um > 25.0 && d.length_um < 32.0, "{d:?}");
        assert_eq!(d.size_um, d.width_um);
    }

    /// The one defect found in a 301x301 crop at 0.5 µm/px whose map is a horizontal band
    /// `l` px long and `w` px wide, 110 px above the axis.
    fn band_defect(l: usize, w: usize) -> Defect {
        let n = 301;
        let mut map = vec![0.0f32; n * n];
        for v in 40 - w / 2..40 - w / 2 + w {
            for u in 150 - l / 2..150 - l / 2 + l {
                map[v * n + u] = 0.9;
            }
        }
        let mut d = defects_of(&map, &zone(n, 0.5), 0.5);
        assert_eq!(d.len(), 1, "{d:?}");
        d.remove(0)
    }

    #[test]
    fn a_wide_short_line_is_a_spot_sized_by_its_length() {
        // A smear 8 µm wide (16 px) and 36 µm long (72 px), elongation 4.5, in what would be
        // zone D of a real crop. Before the wide-line rule it was a "scratch" 8 µm wide (zone
        // D: no limit); now a defect of its length (single-mode zone D: none >= 10 µm).
        let d = band_defect(72, 16);
        assert!(d.elongation >= SCRATCH_MIN_ELONGATION, "{d:?}");
        assert!(d.width_um >= WIDE_LINE_UM, "{d:?}");
        assert_eq!(d.kind, FeatureKind::Defect, "{d:?}");
        assert_eq!(d.size_um, d.feret_um);
        assert!(d.size_um > 35.0, "{d:?}");
    }

    #[test]
    fn a_wide_long_line_and_a_narrow_short_line_stay_scratches() {
        // 7 µm wide (14 px) and 70 µm long (140 px): elongation 10 >= 8.
        let d = band_defect(140, 14);
        assert_eq!(d.kind, FeatureKind::Scratch, "{d:?}");
        assert!((d.size_um - 7.0).abs() < 0.6, "{d:?}");
        // 5 µm wide (10 px), 20 µm long: elongation 4, under the wide-line width.
        let d = band_defect(40, 10);
        assert_eq!(d.kind, FeatureKind::Scratch, "{d:?}");
    }

    #[test]
    fn scratch_shape_rule_at_its_bounds() {
        // 0.5 µm/px: 12 px = 6 µm wide.
        assert!(is_scratch_shape(36.0, 11.9, 0.5));
        assert!(!is_scratch_shape(36.0, 12.0, 0.5));
        assert!(is_scratch_shape(96.0, 12.0, 0.5));
        assert!(!is_scratch_shape(95.9, 12.0, 0.5));
        assert!(!is_scratch_shape(5.9, 2.0, 0.5));
        assert!(!is_scratch_shape(3.9, 1.0, 0.5));
        for bad in [0.0, -1.0, f64::NAN] {
            assert!(!is_scratch_shape(bad, 1.0, 0.5));
            assert!(!is_scratch_shape(10.0, bad, 0.5));
        }
    }

    #[test]
    fn curved_scratch_counts_its_arc() {
        let n = 121;
        let z = zone(n, 1.0);
        let mut map = vec![0.0f32; n * n];
        // Half ring, radius 30..32 px around (60, 60): arc length ≈ π·31 ≈ 97 px, width 2 px.
        for v in 0..n {
            for u in 0..n {
                let (x, y) = (u as f64 - 60.0, v as f64 - 60.0);
                let r = x.hypot(y);
                if (30.0..32.0).contains(&r) && y < 0.0 {
                    map[v * n + u] = 0.8;
                }
            }
        }
        let d = defects_of(&map, &z, 0.5);
        assert_eq!(d.len(), 1);
        let d = &d[0];
        assert_eq!(d.kind, FeatureKind::Scratch, "{d:?}");
        assert!(d.length_um > 85.0 && d.length_um < 105.0, "{d:?}");
        assert!(d.width_um > 1.5 && d.width_um < 2.5, "{d:?}");
        // Its Feret diameter is the chord (~64 px), not the arc.
        assert!(d.feret_um < 70.0, "{d:?}");
    }

    #[test]
    fn nothing_outside_the_contact_zone_counts() {
        // 0.5 µm/px crop of 600 px spans 300 µm: corners are beyond the 125 µm radius.
        let n = 600;
        let z = zone(n, 0.5);
        let mut map = vec![0.0f32; n * n];
        map[5 * n + 5] = 1.0; // corner: ~209 µm from the axis
        map[300 * n + 300] = 0.7; // centre
        let score = z.mask_and_score(&mut map);
        assert_eq!(score, 0.7);
        assert_eq!(map[5 * n + 5], 0.0);
        let d = defects_of(&map, &z, 0.5);
        assert_eq!(d.len(), 1);
        assert!(d[0].inner_radius_um < 0.5);
    }

    #[test]
    fn eight_connectivity_and_ordering() {
        let n = 21;
        let z = zone(n, 1.0);
        let mut map = vec![0.0f32; n * n];
        map[5 * n + 5] = 0.6;
        map[6 * n + 6] = 0.6; // diagonal neighbour: same component
        map[15 * n + 15] = 0.9; // separate
        let d = defects_of(&map, &z, 0.5);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].score, 0.9);
        assert_eq!(d[1].area_px, 2);
        // Single pixel: Feret 1 px.
        assert!((d[0].feret_um - 1.0).abs() < 1e-9);
    }

    #[test]
    fn threshold_is_strict() {
        let n = 11;
        let z = zone(n, 1.0);
        let mut map = vec![0.0f32; n * n];
        map[5 * n + 5] = 0.5;
        assert!(defects_of(&map, &z, 0.5).is_empty());
        map[5 * n + 5] = 0.5001;
        assert_eq!(defects_of(&map, &z, 0.5).len(), 1);
    }
}
