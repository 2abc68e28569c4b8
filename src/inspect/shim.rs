//! TEMPORARY stand-in for `crate::locate` until that branch lands on main (its API as on the
//! `locate` branch). Removed at merge.

pub mod locate {
    use crate::geometry::PixelScale;
    use image::GrayImage;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct LocateConfig {
        pub scale: Option<PixelScale>,
        pub min_confidence: f64,
    }

    impl LocateConfig {
        pub fn with_scale(scale: PixelScale) -> Self {
            Self {
                scale: Some(scale),
                min_confidence: 0.5,
            }
        }
    }

    #[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
    pub struct Located {
        pub center_in_frame: [f64; 2],
        pub cladding_radius_px: f64,
        pub radius_y_px: f64,
        pub confidence: f64,
        pub focus: f64,
    }

    #[derive(Debug, Clone, PartialEq, thiserror::Error)]
    pub enum LocateError {
        #[error("cladding not found: {reason}")]
        NotFound { reason: String },
    }

    pub struct Locator {
        _cfg: LocateConfig,
    }

    impl Locator {
        pub fn new(cfg: LocateConfig) -> Result<Self, LocateError> {
            Ok(Self { _cfg: cfg })
        }
        pub fn locate(&mut self, _img: &GrayImage) -> Result<Located, LocateError> {
            Err(LocateError::NotFound {
                reason: "fiber localization is not in this build yet".into(),
            })
        }
    }
}
