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

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, Luma, Rgb, RgbImage};

    fn crc32(data: &[u8]) -> u32 {
        let mut c = 0xFFFF_FFFFu32;
        for &b in data {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0xEDB8_8320
                } else {
                    c >> 1
                };
            }
        }
        !c
    }

    fn push_chunk(v: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        let mut chunk = kind.to_vec();
        chunk.extend_from_slice(data);
        v.extend_from_slice(&(data.len() as u32).to_be_bytes());
        v.extend_from_slice(&chunk);
        v.extend_from_slice(&crc32(&chunk).to_be_bytes());
    }

    /// A PNG with a valid IHDR claiming `w`×`h` 8-bit gray and an empty IDAT: its header
    /// reads fine, its pixels cannot be decoded.
    fn png_header_only(w: u32, h: u32) -> Vec<u8> {
        let mut v = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&w.to_be_bytes());
        ihdr.extend_from_slice(&h.to_be_bytes());
        ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
        push_chunk(&mut v, b"IHDR", &ihdr);
        push_chunk(&mut v, b"IDAT", &[]);
        push_chunk(&mut v, b"IEND", &[]);
        v
    }

    fn gradient(w: u32, h: u32) -> GrayImage {
        GrayImage::from_fn(w, h, |x, y| Luma([((x * 7 + y * 3) % 256) as u8]))
    }

    #[test]
    fn round_trip_png_atomic() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.png");
        let img = gradient(33, 17);
        save_png_atomic(&p, &img).unwrap();
        assert_eq!(load_gray(&p).unwrap(), img);
        // no temporary files left behind
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
        save_png_durable(&p, &img).unwrap();
        assert_eq!(load_gray(&p).unwrap(), img);
    }

    #[test]
    fn not_found_and_directory() {
        let dir = tempfile::tempdir().unwrap();
        let e = load_gray(dir.path().join("nope.png")).unwrap_err();
        assert!(matches!(e, ImageIoError::NotFound(_)), "{e}");
        assert_eq!(exit_code(&e), exit::INPUT_IO);
        assert!(e.to_string().contains("nope.png"));
        let e = load_gray(dir.path()).unwrap_err();
        assert!(matches!(e, ImageIoError::IsDirectory(_)), "{e}");
        assert_eq!(exit_code(&e), exit::INPUT_IO);
    }

    #[test]
    fn empty_file_is_zero_size() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("empty.png");
        fs::write(&p, b"").unwrap();
        let e = load_gray(&p).unwrap_err();
        assert!(matches!(e, ImageIoError::ZeroSize { .. }), "{e}");
        assert_eq!(exit_code(&e), exit::UNSUPPORTED_IMAGE);
        assert!(e.to_string().contains("empty.png"));
    }

    #[test]
    fn zero_width_header_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("zero.png");
        fs::write(&p, png_header_only(0, 10)).unwrap();
        let e = load_gray(&p).unwrap_err();
        // The PNG decoder itself rejects a zero width header; either way it is refused with
        // the file named.
        assert!(
            matches!(
                e,
                ImageIoError::ZeroSize { .. } | ImageIoError::Decode { .. }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("zero.png"));
    }

    #[test]
    fn corrupt_and_truncated_are_decode_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("garbage.png");
        fs::write(&p, b"this is not an image at all").unwrap();
        let e = load_gray(&p).unwrap_err();
        assert!(matches!(e, ImageIoError::Decode { .. }), "{e}");
        assert_eq!(exit_code(&e), exit::BAD_IMAGE);
        let msg = e.to_string();
        assert!(
            msg.contains("garbage.png") && msg.contains("re-capture or re-export"),
            "{msg}"
        );

        let good = dir.path().join("good.png");
        save_png_atomic(&good, &gradient(200, 150)).unwrap();
        let bytes = fs::read(&good).unwrap();
        let t = dir.path().join("truncated.png");
        fs::write(&t, &bytes[..bytes.len() / 2]).unwrap();
        let e = load_gray(&t).unwrap_err();
        assert!(matches!(e, ImageIoError::Decode { .. }), "{e}");
        assert!(e.to_string().contains("truncated.png"));

        // A truncated JPEG as well.
        let j = dir.path().join("cut.jpg");
        let mut buf = Vec::new();
        gradient(64, 64)
            .write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(
                &mut buf, 90,
            ))
            .unwrap();
        fs::write(&j, &buf[..40]).unwrap();
        let e = load_gray(&j).unwrap_err();
        assert!(matches!(e, ImageIoError::Decode { .. }), "{e}");
    }

    #[test]
    fn too_large_is_refused_from_the_header() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("huge.png");
        // Header only: decoding would fail, so reaching TooLarge proves the check comes first.
        fs::write(&p, png_header_only(9000, 9000)).unwrap();
        let e = load_gray(&p).unwrap_err();
        assert!(
            matches!(
                e,
                ImageIoError::TooLarge {
                    width: 9000,
                    height: 9000,
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(exit_code(&e), exit::UNSUPPORTED_IMAGE);
        fs::write(&p, png_header_only(8192, 8193)).unwrap();
        assert!(matches!(
            load_gray(&p).unwrap_err(),
            ImageIoError::TooLarge { .. }
        ));
    }

    #[test]
    fn sixteen_bit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("deep.png");
        let img: ImageBuffer<Luma<u16>, Vec<u16>> =
            ImageBuffer::from_fn(8, 8, |x, y| Luma([(x * 1000 + y) as u16]));
        img.save(&p).unwrap();
        let e = load_gray(&p).unwrap_err();
        assert!(matches!(e, ImageIoError::Unsupported16Bit { .. }), "{e}");
        assert!(e.to_string().contains("convert to 8-bit"));
        assert_eq!(exit_code(&e), exit::UNSUPPORTED_IMAGE);
    }

    #[test]
    fn rgb_is_converted_to_luma() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("color.png");
        let img = RgbImage::from_fn(4, 3, |x, _| {
            if x < 2 {
                Rgb([200, 200, 200])
            } else {
                Rgb([0, 255, 0])
            }
        });
        img.save(&p).unwrap();
        let g = load_gray(&p).unwrap();
        assert_eq!(g.dimensions(), (4, 3));
        assert_eq!(g.get_pixel(0, 0).0[0], 200);
        let green = g.get_pixel(3, 0).0[0];
        assert!((170..=190).contains(&green), "luma of pure green {green}");
        // BMP too
        let b = dir.path().join("color.bmp");
        img.save(&b).unwrap();
        assert_eq!(load_gray(&b).unwrap(), g);
    }

    #[test]
    fn write_into_missing_folder_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("no").join("such").join("x.png");
        let e = save_png_atomic(&p, &gradient(4, 4)).unwrap_err();
        assert!(matches!(e, ImageIoError::Write { .. }), "{e}");
        assert_eq!(exit_code(&e), exit::INPUT_IO);
    }
}
