//! The inspection engine as the daemon's [`FrameInspector`].
//!
//! In: frames. Out: the engine's [`Inspection`](crate::inspect::Inspection) reduced to what
//! the daemon journals and signals: verdict, reasons, defects (JSON), per-stage timings,
//! model sha256 and the execution provider that ran the model. An engine error (model or
//! runtime failure) becomes an [`InspectorError`]: the daemon records UNABLE and drops READY.

use super::{FrameInspector, InspectionRecord, InspectorError, Verdict};
use crate::capture::Frame;
use crate::grade;
use crate::inspect::Inspector;
use std::collections::BTreeMap;

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
        let insp =
            Inspector::inspect(self, &frame.image).map_err(|e| InspectorError(e.to_string()))?;
        let drift_features = if self.measures_drift_features() {
            self.drift_features(&frame.image, &insp)
        } else {
            None
        };
        let t = insp.timings_ms;
        let timings_ms: BTreeMap<String, f64> = [
            ("locate", t.locate),
            ("crop", t.crop),
            ("infer", t.infer),
            ("anomaly", t.anomaly),
            ("grade", t.grade),
            ("total", t.total),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Ok(InspectionRecord {
            verdict: insp.verdict.into(),
            reasons: insp.reasons,
            defects: serde_json::to_value(&insp.defects).unwrap_or(serde_json::Value::Null),
            timings_ms,
            model_sha256: insp.model_sha256,
            provider: insp.execution_provider,
            drift_features,
        })
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
