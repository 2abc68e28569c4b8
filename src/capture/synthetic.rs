//! The synthetic end-face camera as a frame source.
//!
//! In: `[camera] seed` (and the synthetic scene defaults). Out: rendered end-face frames, one
//! per request (not live: a frame is rendered when the pipeline asks, so it is always "exposed
//! after the trigger").

use super::{CameraConfig, CaptureError, Frame, Source};

/// Renders end-faces on demand.
pub struct SyntheticSource {
    _seed: u64,
}

impl SyntheticSource {
    pub fn from_config(cfg: &CameraConfig) -> Result<SyntheticSource, CaptureError> {
        Ok(SyntheticSource { _seed: cfg.seed })
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
        Err(CaptureError::Setup {
            device: self.name(),
            problem: "the synthetic camera is not in this build yet".into(),
        })
    }
    fn close(&mut self) {}
    fn next_frame(&mut self) -> Result<Frame, CaptureError> {
        Err(CaptureError::Setup {
            device: self.name(),
            problem: "the synthetic camera is not in this build yet".into(),
        })
    }
}
