//! A model-free inspector for commissioning and tests: the verdict is read from a marker.
//!
//! In: a frame. Out: a verdict taken from the frame's top-left pixel, so that a wiring check
//! (PLC ↔ station) and the daemon's tests can run without a model:
//!
//! | top-left pixel | result                                   |
//! |----------------|------------------------------------------|
//! | 0 ..= 63       | PASS                                     |
//! | 64 ..= 127     | UNABLE                                   |
//! | 128 ..= 191    | inspector error (a simulated model failure) |
//! | 192 ..= 255    | FAIL                                     |
//!
//! Selected with `[daemon] inspector = "marker"`; never for production grading.

use super::{set_reasons, set_text, FrameInspector, InspectionRecord, InspectorError, Verdict};
use crate::capture::Frame;
use std::time::{Duration, Instant};

/// Marker-pixel inspector.
pub struct MarkerInspector {
    delay: Duration,
    /// Reason strings between frames (see [`super::set_reasons`]).
    spare: Vec<String>,
}

impl MarkerInspector {
    /// `delay` simulates inspection time.
    pub fn new(delay: Duration) -> MarkerInspector {
        MarkerInspector {
            delay,
            spare: Vec::new(),
        }
    }
}

/// The verdict the marker pixel value stands for; `None`: a simulated inspector failure.
pub fn marker_result(value: u8) -> Option<Verdict> {
    match value {
        0..=63 => Some(Verdict::Pass),
        64..=127 => Some(Verdict::Unable),
        128..=191 => None,
        192..=255 => Some(Verdict::Fail),
    }
}

impl FrameInspector for MarkerInspector {
    fn inspect(&mut self, frame: &Frame) -> Result<InspectionRecord, InspectorError> {
        let mut record = InspectionRecord::default();
        self.inspect_into(frame, &mut record)?;
        Ok(record)
    }

    fn inspect_into(
        &mut self,
        frame: &Frame,
        out: &mut InspectionRecord,
    ) -> Result<(), InspectorError> {
        let started = Instant::now();
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        let value = frame
            .image
            .get_pixel_checked(0, 0)
            .map(|p| p.0[0])
            .ok_or_else(|| InspectorError("marker inspector: empty frame".into()))?;
        let verdict = marker_result(value).ok_or_else(|| {
            InspectorError(format!(
                "marker inspector: simulated model failure (marker {value})"
            ))
        })?;
        out.verdict = verdict;
        set_reasons(
            &mut out.reasons,
            &mut self.spare,
            [format_args!("marker pixel {value}")],
        );
        set_text(&mut out.defects_json, "[]");
        out.timings_ms.clear();
        out.timings_ms
            .insert("marker", started.elapsed().as_secs_f64() * 1e3);
        out.model_sha256.clear();
        set_text(&mut out.provider, "marker");
        out.frame_condition_json.clear();
        out.drift_features = None;
        Ok(())
    }

    fn describe(&self) -> String {
        "marker inspector (commissioning: verdict from the top-left pixel, no model)".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_bands() {
        assert_eq!(marker_result(0), Some(Verdict::Pass));
        assert_eq!(marker_result(100), Some(Verdict::Unable));
        assert_eq!(marker_result(150), None);
        assert_eq!(marker_result(255), Some(Verdict::Fail));
    }
}
