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

/// TEMPORARY: the shared loader `crate::imageio` (branch `synth`), trimmed to what the
/// inspect CLI uses. Removed when imageio lands on main.
pub mod imageio {
    use crate::error::exit;
    use image::{ColorType, DynamicImage, GrayImage, ImageDecoder, ImageReader};
    use std::io::Cursor;
    use std::path::{Path, PathBuf};

    pub const MAX_SIDE_PX: u32 = 8192;
    pub const MAX_PIXELS: u64 = 64 * 1024 * 1024;

    #[derive(Debug, thiserror::Error)]
    pub enum ImageIoError {
        #[error("{}: no such file (check the path)", .0.display())]
        NotFound(PathBuf),
        #[error("{}: is a directory, expected an image file", .0.display())]
        IsDirectory(PathBuf),
        #[error("{}: cannot read the file: {source}", .file.display())]
        Unreadable {
            file: PathBuf,
            #[source]
            source: std::io::Error,
        },
        #[error("{}: not a decodable image ({detail}): the file is corrupt, truncated or not PNG/JPEG/BMP", .file.display())]
        Decode { file: PathBuf, detail: String },
        #[error("{}: {detail}: nothing to inspect", .file.display())]
        ZeroSize { file: PathBuf, detail: String },
        #[error("{}: image is {width}x{height} px, larger than the {MAX_SIDE_PX}x{MAX_SIDE_PX} limit", .file.display())]
        TooLarge {
            file: PathBuf,
            width: u32,
            height: u32,
        },
        #[error("{}: {pixel_type} image — only 8-bit gray or RGB is supported: convert to 8-bit", .file.display())]
        Unsupported16Bit { file: PathBuf, pixel_type: String },
    }

    pub fn exit_code(err: &ImageIoError) -> u8 {
        match err {
            ImageIoError::NotFound(_)
            | ImageIoError::IsDirectory(_)
            | ImageIoError::Unreadable { .. } => exit::INPUT_IO,
            ImageIoError::Decode { .. } => exit::BAD_IMAGE,
            _ => exit::UNSUPPORTED_IMAGE,
        }
    }

    pub fn load_gray(path: impl AsRef<Path>) -> Result<GrayImage, ImageIoError> {
        let path = path.as_ref();
        let file = path.to_path_buf();
        let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ImageIoError::NotFound(file.clone()),
            _ => ImageIoError::Unreadable {
                file: file.clone(),
                source: e,
            },
        })?;
        if meta.is_dir() {
            return Err(ImageIoError::IsDirectory(file));
        }
        if meta.len() == 0 {
            return Err(ImageIoError::ZeroSize {
                file,
                detail: "file is empty (0 bytes)".into(),
            });
        }
        let bytes = std::fs::read(path).map_err(|e| ImageIoError::Unreadable {
            file: file.clone(),
            source: e,
        })?;
        let decode_err = |detail: String| ImageIoError::Decode {
            file: file.clone(),
            detail,
        };
        let reader = ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| decode_err(e.to_string()))?;
        if reader.format().is_none() {
            return Err(decode_err("unknown file format".into()));
        }
        let decoder = reader
            .into_decoder()
            .map_err(|e| decode_err(e.to_string()))?;
        let (width, height) = decoder.dimensions();
        if width == 0 || height == 0 {
            return Err(ImageIoError::ZeroSize {
                file,
                detail: format!("image is {width}x{height} px"),
            });
        }
        if width > MAX_SIDE_PX || height > MAX_SIDE_PX || width as u64 * height as u64 > MAX_PIXELS
        {
            return Err(ImageIoError::TooLarge {
                file,
                width,
                height,
            });
        }
        match decoder.color_type() {
            ColorType::L8 | ColorType::La8 | ColorType::Rgb8 | ColorType::Rgba8 => {}
            other => {
                return Err(ImageIoError::Unsupported16Bit {
                    file,
                    pixel_type: format!("{other:?}"),
                })
            }
        }
        let img = DynamicImage::from_decoder(decoder).map_err(|e| decode_err(e.to_string()))?;
        Ok(match img {
            DynamicImage::ImageLuma8(g) => g,
            other => other.to_luma8(),
        })
    }
}
