//! The inspection engine as the daemon's [`FrameInspector`].
//!
//! In: frames. Out: the engine's [`Inspection`](crate::inspect::Inspection) reduced to what
//! the daemon journals and signals: verdict, reasons, defects (JSON), per-stage timings,
//! model sha256 and the execution provider that ran the model. An engine error (model or
//! runtime failure) becomes an [`InspectorError`]: the daemon records UNABLE and drops READY.

use super::{set_text, FrameInspector, InspectionRecord, InspectorError, Verdict};
use crate::capture::Frame;
use crate::grade;
use crate::inspect::Inspector;
use crate::inspect::{InspectedDefect, Inspection};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

impl From<grade::Verdict> for Verdict {
    fn from(v: grade::Verdict) -> Verdict {
        match v {
            grade::Verdict::Pass => Verdict::Pass,
            grade::Verdict::Fail => Verdict::Fail,
            grade::Verdict::Unable => Verdict::Unable,
        }
    }
}

impl FrameInspector for Inspector {
    fn inspect(&mut self, frame: &Frame) -> Result<InspectionRecord, InspectorError> {
        let mut record = InspectionRecord::default();
        FrameInspector::inspect_into(self, frame, &mut record)?;
        Ok(record)
    }

    fn inspect_into(
        &mut self,
        frame: &Frame,
        out: &mut InspectionRecord,
    ) -> Result<(), InspectorError> {
        let mut insp = std::mem::take(&mut self.daemon_scratch);
        let result = Inspector::inspect_into(self, &frame.image, &mut insp);
        if let Err(e) = result {
            self.daemon_scratch = insp;
            return Err(InspectorError(e.to_string()));
        }
        out.drift_features = if self.measures_drift_features() {
            self.drift_features(&frame.image, &insp)
        } else {
            None
        };
        let t = insp.timings_ms;
        out.timings_ms.clear();
        for (k, v) in [
            ("locate", t.locate),
            ("crop", t.crop),
            ("infer", t.infer),
            ("anomaly", t.anomaly),
            ("grade", t.grade),
            ("total", t.total),
        ] {
            out.timings_ms.insert(k, v);
        }
        out.verdict = insp.verdict.into();
        // Swap, not copy: the strings go back and forth between the two buffers.
        std::mem::swap(&mut out.reasons, &mut insp.reasons);
        write_defects_json(&insp.defects, &mut out.defects_json);
        write_json(&FrameCondition::of(&insp), &mut out.frame_condition_json);
        set_text(&mut out.model_sha256, &insp.model_sha256);
        set_text(&mut out.provider, &insp.execution_provider);
        self.daemon_scratch = insp;
        Ok(())
    }

    fn describe(&self) -> String {
        let m = self.model().manifest();
        format!(
            "model {} {} (sha256 {}) on {}, profile {}",
            m.name,
            m.version,
            self.model().sha256(),
            self.model().provider().primary,
            self.profile().name
        )
    }

    fn measure_drift_features(&mut self, on: bool) {
        self.set_measure_drift_features(on);
    }

    fn identity(&self) -> (String, String) {
        (
            self.model().sha256().to_string(),
            self.model().provider().primary.clone(),
        )
    }
}

/// The defects as the journal has always stored them: the JSON of
/// `serde_json::to_value(&defects)` (object keys in name order, `score` widened to f64),
/// written into a reused buffer instead of through a `Value` tree.
pub fn write_defects_json(defects: &[InspectedDefect], out: &mut String) {
    write_json(&DefectsJson(defects), out);
}

/// `value` as JSON text into `out`, reusing its buffer (`null` if it could not be written).
fn write_json<T: Serialize>(value: &T, out: &mut String) {
    let mut buf = std::mem::take(out).into_bytes();
    buf.clear();
    if serde_json::to_writer(&mut buf, value).is_err() {
        buf.clear();
        buf.extend_from_slice(b"null");
    }
    *out = String::from_utf8(buf).unwrap_or_else(|e| {
        let mut b = e.into_bytes();
        b.clear();
        b.extend_from_slice(b"null");
        String::from_utf8(b).unwrap_or_default()
    });
}

/// The journal's `frame_condition` of one inspection: the [`Inspection`] fields that say what
/// the camera gave the grading, under their `inspect --json` names.
#[derive(serde::Serialize)]
struct FrameCondition {
    center: Option<[f64; 2]>,
    cladding_radius_px: Option<f64>,
    locate_confidence: Option<f64>,
    /// How the localizer's rescue located a fiber its regular passes refused (`None`: not
    /// needed).
    locate_rescue: Option<crate::locate::Rescue>,
    focus: Option<f64>,
    bright_level: Option<f32>,
    exposure_gain: Option<f32>,
    /// The crop's grey-level step (camera × gain); 3 or more: smoothed before the model.
    grey_step: Option<f32>,
    stuck_pixels: u32,
    banding: Option<[f64; 2]>,
    banding_corrected: bool,
    contact_zone_in_view: Option<f64>,
    /// The model map's own score and the cladding-edge scan: which of them made the row's
    /// image score.
    map_score: Option<f32>,
    edge_scan: Option<crate::inspect::EdgeScan>,
    /// How lit the rings about the axis were that the station took out of the map
    /// (`inspect::rings`): a camera whose epoxy bead or halo the model marks.
    ring_level: Option<f32>,
    /// How lit the single-mode core's mark was that the station took out of the map
    /// (`inspect::core`): a camera that shows the core the model was not trained on.
    core_level: Option<f32>,
}

impl FrameCondition {
    fn of(i: &Inspection) -> FrameCondition {
        FrameCondition {
            center: i.center,
            cladding_radius_px: i.cladding_radius_px,
            locate_confidence: i.locate_confidence,
            locate_rescue: i.locate_rescue,
            focus: i.focus,
            bright_level: i.bright_level,
            exposure_gain: i.exposure_gain,
            grey_step: i.grey_step,
            stuck_pixels: i.stuck_pixels,
            banding: i.banding,
            banding_corrected: i.banding_corrected,
            contact_zone_in_view: i.contact_zone_in_view,
            map_score: i.map_score,
            edge_scan: i.edge_scan,
            ring_level: i.ring_level,
            core_level: i.core_level,
        }
    }
}

struct DefectsJson<'a>(&'a [InspectedDefect]);

impl Serialize for DefectsJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for d in self.0 {
            seq.serialize_element(&DefectJson(d))?;
        }
        seq.end()
    }
}

struct DefectJson<'a>(&'a InspectedDefect);

impl Serialize for DefectJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let d = self.0;
        // Every serialized field of `InspectedDefect`, in name order (a `Value` object's
        // order). A field added there must be added here: the test below and
        // tests/daemon_defects_json.rs (real inspections) compare with `to_value`.
        let mut m = s.serialize_map(Some(18))?;
        m.serialize_entry("area_um2", &d.area_um2)?;
        m.serialize_entry("bbox", &d.bbox)?;
        m.serialize_entry("bbox_in_crop", &d.bbox_in_crop)?;
        m.serialize_entry("crack", &d.crack)?;
        m.serialize_entry("crack_score", &d.crack_score.map(f64::from))?;
        m.serialize_entry("elongation", &d.elongation)?;
        m.serialize_entry("fails", &d.fails)?;
        m.serialize_entry("feret_um", &d.feret_um)?;
        m.serialize_entry("fragments", &d.fragments)?;
        m.serialize_entry("halo", &d.halo)?;
        m.serialize_entry("inner_radius_um", &d.inner_radius_um)?;
        m.serialize_entry("kind", &d.kind)?;
        m.serialize_entry("length_um", &d.length_um)?;
        m.serialize_entry("outer_radius_um", &d.outer_radius_um)?;
        m.serialize_entry("score", &f64::from(d.score))?;
        m.serialize_entry("size_um", &d.size_um)?;
        m.serialize_entry("width_um", &d.width_um)?;
        m.serialize_entry("zone", &d.zone)?;
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grade::{FeatureKind, Zone};

    fn defect(i: u32) -> InspectedDefect {
        let f = i as f64;
        InspectedDefect {
            kind: if i.is_multiple_of(2) {
                FeatureKind::Scratch
            } else {
                FeatureKind::Defect
            },
            zone: [None, Some(Zone::A), Some(Zone::B), Some(Zone::D)][i as usize % 4],
            size_um: 1.0 / (f + 3.0),
            bbox: [i, i + 1, i + 20, i + 300],
            score: 0.1 + 0.7 / (f + 1.0) as f32,
            fails: i.is_multiple_of(3),
            area_um2: [f64::NAN, 12.25, f64::INFINITY, 1e-7][i as usize % 4],
            feret_um: 3.0 * f + 0.5,
            length_um: 2.0 * f + 0.3,
            width_um: f / 7.0,
            elongation: 1.0 + f,
            inner_radius_um: 5.5 * f,
            outer_radius_um: 6.5 * f + 1.0,
            crack_score: [None, Some(0.25), Some(0.75)][i as usize % 3],
            crack: i % 3 == 2,
            halo: false,
            bbox_in_crop: [0, i, 2 * i, 255],
            label: i + 1,
            fragments: 1 + i % 3,
        }
    }

    #[test]
    fn defects_json_is_what_the_value_tree_gave() {
        let mut buf = String::from("stale content");
        for n in [0, 1, 2, 7] {
            let defects: Vec<InspectedDefect> = (0..n).map(defect).collect();
            let old = serde_json::to_string(
                &serde_json::to_value(&defects).unwrap_or(serde_json::Value::Null),
            )
            .unwrap();
            write_defects_json(&defects, &mut buf);
            assert_eq!(buf, old);
        }
    }
}
