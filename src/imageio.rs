//! The one image loader (and atomic PNG writer) every CLI uses.
//!
//! In: a path. Out: an 8-bit gray frame ([`GrayImage`]) or an [`ImageIoError`] that names
//! the file, says what is wrong and what to do; [`exit_code`] maps it to the process exit
//! code. Size limits are checked from the header before any pixel is decoded. 8-bit RGB,
//! RGBA and gray+alpha are converted to luma (the dataset format allows RGB); 16-bit and float
//! images are refused rather than silently rescaled.

use crate::error::exit;
use image::{ColorType, DynamicImage, GrayImage, ImageDecoder, ImageReader};
use std::fs;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

/// Largest accepted side (px).
pub const MAX_SIDE_PX: u32 = 8192;
/// Largest accepted pixel count.
pub const MAX_PIXELS: u64 = 64 * 1024 * 1024;
/// Largest accepted file size (bytes).
pub const MAX_FILE_BYTES: u64 = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub enum ImageIoError {
    #[error("{}: no such file (check the path)", .0.display())]
    NotFound(PathBuf),
    #[error("{}: is a directory, expected an image file", .0.display())]
    IsDirectory(PathBuf),
    #[error("{}: cannot read the file: {source} (check permissions and the disk)", .file.display())]
    Unreadable {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a decodable image ({detail}): the file is corrupt, truncated or not PNG/JPEG/BMP — re-capture or re-export it", .file.display())]
    Decode { file: PathBuf, detail: String },
    #[error("{}: {detail}: nothing to inspect — re-capture or re-export it", .file.display())]
    ZeroSize { file: PathBuf, detail: String },
    #[error("{}: image is {width}x{height} px, larger than the {max_side}x{max_side} / {max_mpx} Mpx limit — downscale or crop it", .file.display(), max_side = MAX_SIDE_PX, max_mpx = MAX_PIXELS / (1024 * 1024))]
    TooLarge {
        file: PathBuf,
        width: u32,
        height: u32,
    },
    #[error("{}: file is {bytes} bytes, over the {max} byte limit", .file.display(), max = MAX_FILE_BYTES)]
    FileTooLarge { file: PathBuf, bytes: u64 },
    #[error("{}: {pixel_type} image — only 8-bit gray or RGB is supported: convert to 8-bit", .file.display())]
    Unsupported16Bit { file: PathBuf, pixel_type: String },
    #[error("{}: cannot write image: {source} (check the folder exists, permissions and free space)", .file.display())]
    Write {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: cannot encode image: {detail}", .file.display())]
    Encode { file: PathBuf, detail: String },
}

/// Process exit code for an image error (see [`crate::error::exit`]).
pub fn exit_code(err: &ImageIoError) -> u8 {
    match err {
        ImageIoError::NotFound(_)
        | ImageIoError::IsDirectory(_)
        | ImageIoError::Unreadable { .. }
        | ImageIoError::Write { .. } => exit::INPUT_IO,
        ImageIoError::Decode { .. } | ImageIoError::Encode { .. } => exit::BAD_IMAGE,
        ImageIoError::ZeroSize { .. }
        | ImageIoError::TooLarge { .. }
        | ImageIoError::FileTooLarge { .. }
        | ImageIoError::Unsupported16Bit { .. } => exit::UNSUPPORTED_IMAGE,
    }
}

/// Load an image file as 8-bit gray.
pub fn load_gray(path: impl AsRef<Path>) -> Result<GrayImage, ImageIoError> {
    let path = path.as_ref();
    let file = path.to_path_buf();
    let meta = fs::metadata(path).map_err(|e| match e.kind() {
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
    if meta.len() > MAX_FILE_BYTES {
        return Err(ImageIoError::FileTooLarge {
            file,
            bytes: meta.len(),
        });
    }
    let bytes = fs::read(path).map_err(|e| ImageIoError::Unreadable {
        file: file.clone(),
        source: e,
    })?;
    decode_gray(&bytes, &file)
}

/// Decode an in-memory image as 8-bit gray; `file` names it in errors.
pub fn decode_gray(bytes: &[u8], file: &Path) -> Result<GrayImage, ImageIoError> {
    let decode_err = |detail: String| ImageIoError::Decode {
        file: file.to_path_buf(),
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
    // Header checks before decoding any pixel.
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(ImageIoError::ZeroSize {
            file: file.to_path_buf(),
            detail: format!("image is {width}x{height} px"),
        });
    }
    if width > MAX_SIDE_PX || height > MAX_SIDE_PX || width as u64 * height as u64 > MAX_PIXELS {
        return Err(ImageIoError::TooLarge {
            file: file.to_path_buf(),
            width,
            height,
        });
    }
    let ct = decoder.color_type();
    match ct {
        ColorType::L8 | ColorType::La8 | ColorType::Rgb8 | ColorType::Rgba8 => {}
        other => {
            return Err(ImageIoError::Unsupported16Bit {
                file: file.to_path_buf(),
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

/// Encode `img` as PNG (fast compression) into memory.
pub fn encode_png(img: &GrayImage, file: &Path) -> Result<Vec<u8>, ImageIoError> {
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    let mut buf = Vec::with_capacity(img.len() / 2);
    let enc = PngEncoder::new_with_quality(&mut buf, CompressionType::Fast, FilterType::Adaptive);
    img.write_with_encoder(enc)
        .map_err(|e| ImageIoError::Encode {
            file: file.to_path_buf(),
            detail: e.to_string(),
        })?;
    Ok(buf)
}

/// Write `img` as a PNG at `path` atomically: a temporary file in the same folder renamed
/// over `path`, so readers never see a half-written image. Not fsync'ed: use
/// [`save_png_durable`] where the file must survive a power cut.
pub fn save_png_atomic(path: impl AsRef<Path>, img: &GrayImage) -> Result<(), ImageIoError> {
    let path = path.as_ref();
    let bytes = encode_png(img, path)?;
    write_atomic(path, &bytes, false)
}

/// Like [`save_png_atomic`], and the data is flushed to disk before the rename.
pub fn save_png_durable(path: impl AsRef<Path>, img: &GrayImage) -> Result<(), ImageIoError> {
    let path = path.as_ref();
    let bytes = encode_png(img, path)?;
    write_atomic(path, &bytes, true)
}

/// Write bytes to `path` atomically (temporary file + rename), fsync'ing first if `durable`.
pub fn write_atomic(path: &Path, bytes: &[u8], durable: bool) -> Result<(), ImageIoError> {
    let werr = |e| ImageIoError::Write {
        file: path.to_path_buf(),
        source: e,
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into());
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        if durable {
            f.sync_data()?;
        }
        drop(f);
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(werr(e));
    }
    Ok(())
}
