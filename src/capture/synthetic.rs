//! The synthetic end-face camera as a frame source.
//!
//! In: `[camera]` (size, `seed`, `defect_prob`, `fps` pacing) and the station's calibration
//! and grading profile ([`SceneHints`]), so frames are rendered at the scale the inspector
//! assumes. Out: rendered end-face frames, one per request (not live: a frame is rendered when
//! the pipeline asks, so it is always "exposed after the trigger"). The frame's `origin`
//! carries the renderer's own verdict (`synthetic #3 (truth: fail)`) for the demo.

use super::{monotonic_ns, sleep_until_mono, unix_ns, CameraConfig, CaptureError, Frame, Source};
use crate::synth::{FiberProfile, SynthCamera, SynthConfig};

/// What the synthetic scene must agree with: the station's calibration and profile.
#[derive(Debug, Clone, PartialEq)]
pub struct SceneHints {
    pub um_per_px_x: f64,
    pub um_per_px_y: f64,
    /// Grading profile name; a fiber type the renderer knows (`sm-upc`, `sm-apc`, `mm`)
    /// fixes the fiber, anything else renders a mix.
    pub profile: String,
}

impl Default for SceneHints {
    fn default() -> Self {
        SceneHints {
            um_per_px_x: 0.5,
            um_per_px_y: 0.5,
            profile: "sm-upc".into(),
        }
    }
}

/// Renders end-faces on demand.
pub struct SyntheticSource {
    camera: SynthCamera,
    sequence: u64,
    period_ns: u64,
    next_due_ns: Option<u64>,
}

impl SyntheticSource {
    /// A camera for `[camera]` (width, height, seed, defect_prob, fps) at the station's scale.
    pub fn from_config(
        cfg: &CameraConfig,
        hints: &SceneHints,
    ) -> Result<SyntheticSource, CaptureError> {
        let synth = SynthConfig {
            width: cfg.width,
            height: cfg.height,
            fiber: hints.profile.parse::<FiberProfile>().ok(),
            um_per_px: Some(hints.um_per_px_x),
            aspect_y_over_x: Some(hints.um_per_px_x / hints.um_per_px_y),
            jpeg_prob: 0.0,
            defect_prob: cfg.defect_prob,
        };
        let camera = SynthCamera::new(synth, cfg.seed).map_err(|e| CaptureError::Setup {
            device: "synthetic camera".into(),
            problem: e.to_string(),
        })?;
        Ok(SyntheticSource {
            camera,
            sequence: 0,
            period_ns: if cfg.fps > 0.0 {
                (1e9 / cfg.fps) as u64
            } else {
                0
            },
            next_due_ns: None,
        })
    }
}

impl Source for SyntheticSource {
    fn name(&self) -> String {
        "synthetic camera".into()
    }

    fn is_live(&self) -> bool {
        false
    }

    fn open(&mut self) -> Result<(), CaptureError> {
        Ok(())
    }

    fn close(&mut self) {}

    fn next_frame(&mut self) -> Result<Frame, CaptureError> {
        if self.period_ns > 0 {
            let due = self.next_due_ns.unwrap_or_else(monotonic_ns);
            sleep_until_mono(due);
            self.next_due_ns =
                Some(due.max(monotonic_ns().saturating_sub(self.period_ns)) + self.period_ns);
        }
        let captured_mono_ns = monotonic_ns();
        let captured_unix_ns = unix_ns();
        let (image, truth) = self.camera.next_frame();
        self.sequence += 1;
        Ok(Frame {
            image,
            sequence: self.sequence,
            captured_mono_ns,
            captured_unix_ns,
            origin: Some(format!(
                "synthetic #{} (truth: {})",
                self.sequence, truth.verdict
            )),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_at_the_station_scale_deterministically() {
        let cfg = CameraConfig {
            width: 160,
            height: 120,
            seed: 7,
            ..CameraConfig::default()
        };
        let hints = SceneHints {
            um_per_px_x: 2.0,
            um_per_px_y: 2.0,
            profile: "sm-upc".into(),
        };
        let mut a = SyntheticSource::from_config(&cfg, &hints).unwrap();
        let mut b = SyntheticSource::from_config(&cfg, &hints).unwrap();
        let fa = a.next_frame().unwrap();
        let fb = b.next_frame().unwrap();
        assert_eq!(fa.image.dimensions(), (160, 120));
        assert_eq!(fa.image, fb.image);
        assert_eq!(fa.sequence, 1);
        assert!(fa.origin.unwrap().contains("truth"));
    }
}
