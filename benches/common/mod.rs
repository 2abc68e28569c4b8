//! Shared helpers of the benchmarks: camera pixel-format conversions to gray and test frames.
//!
//! In: raw camera buffers (YUYV 4:2:2, GREY, MJPEG) with their line stride. Out: an 8-bit
//! gray frame written into a caller-owned [`GrayImage`] (no allocation for YUYV/GREY).
//!
//! The conversions live here because `src/capture/` (the daemon's V4L2 source) had not landed
//! on main when the benchmarks were written; the daemon can lift them as they are.

#![allow(dead_code)]

use endface::synth::{render_content, Content, DefectKind, FiberProfile, SynthConfig, Truth};
use image::{GrayImage, Luma};

/// Errors of the conversions (a buffer that does not hold the negotiated format).
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("{format} buffer of {got} bytes is too short for {width}x{height} with stride {stride}: need {need}")]
    Short {
        format: &'static str,
        got: usize,
        need: usize,
        width: u32,
        height: u32,
        stride: usize,
    },
    #[error("MJPEG frame: {0}")]
    Jpeg(String),
    #[error("MJPEG frame is {got_w}x{got_h}, the negotiated format is {width}x{height}")]
    Size {
        got_w: usize,
        got_h: usize,
        width: u32,
        height: u32,
    },
}

fn check(
    format: &'static str,
    src: &[u8],
    width: u32,
    height: u32,
    stride: usize,
    bytes_per_px: usize,
) -> Result<(), ConvertError> {
    let row = width as usize * bytes_per_px;
    let need = if height == 0 {
        0
    } else {
        stride * (height as usize - 1) + row
    };
    if stride < row || src.len() < need {
        return Err(ConvertError::Short {
            format,
            got: src.len(),
            need,
            width,
            height,
            stride,
        });
    }
    Ok(())
}

/// Make `dst` a `width x height` frame, reusing its buffer when the size already matches.
fn ensure_size(dst: &mut GrayImage, width: u32, height: u32) {
    if dst.dimensions() != (width, height) {
        *dst = GrayImage::new(width, height);
    }
}

/// YUYV (Y0 U Y1 V) → gray: the luma bytes. `stride` is the line length in bytes
/// (`bytesperline`, ≥ 2 × width).
pub fn yuyv_to_gray(
    src: &[u8],
    width: u32,
    height: u32,
    stride: usize,
    dst: &mut GrayImage,
) -> Result<(), ConvertError> {
    check("YUYV", src, width, height, stride, 2)?;
    ensure_size(dst, width, height);
    let w = width as usize;
    for (y, out_row) in dst.as_mut().chunks_exact_mut(w).enumerate() {
        let in_row = &src[y * stride..y * stride + 2 * w];
        for (o, px) in out_row.iter_mut().zip(in_row.chunks_exact(2)) {
            *o = px[0];
        }
    }
    Ok(())
}

/// GREY (8-bit luma) → gray: a row-by-row copy honouring the stride.
pub fn grey_copy(
    src: &[u8],
    width: u32,
    height: u32,
    stride: usize,
    dst: &mut GrayImage,
) -> Result<(), ConvertError> {
    check("GREY", src, width, height, stride, 1)?;
    ensure_size(dst, width, height);
    let w = width as usize;
    if stride == w {
        dst.as_mut().copy_from_slice(&src[..w * height as usize]);
    } else {
        for (y, out_row) in dst.as_mut().chunks_exact_mut(w).enumerate() {
            out_row.copy_from_slice(&src[y * stride..y * stride + w]);
        }
    }
    Ok(())
}

/// MJPEG → gray with zune-jpeg, decoding straight to luma into `dst` (the decoder itself
/// allocates its component buffers per frame).
pub fn mjpeg_to_gray(
    src: &[u8],
    width: u32,
    height: u32,
    dst: &mut GrayImage,
) -> Result<(), ConvertError> {
    use zune_jpeg::zune_core::bytestream::ZCursor;
    use zune_jpeg::zune_core::colorspace::ColorSpace;
    use zune_jpeg::zune_core::options::DecoderOptions;
    let opts = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::Luma);
    let mut dec = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(src), opts);
    dec.decode_headers()
        .map_err(|e| ConvertError::Jpeg(format!("{e:?}")))?;
    let (got_w, got_h) = dec.dimensions().unwrap_or((0, 0));
    if (got_w, got_h) != (width as usize, height as usize) {
        return Err(ConvertError::Size {
            got_w,
            got_h,
            width,
            height,
        });
    }
    ensure_size(dst, width, height);
    dec.decode_into(dst.as_mut())
        .map_err(|e| ConvertError::Jpeg(format!("{e:?}")))
}

/// The YUYV buffer a camera would deliver for `gray` (chroma at 128), with `pad` bytes of
/// line padding.
pub fn to_yuyv(gray: &GrayImage, pad: usize) -> (Vec<u8>, usize) {
    let (w, h) = (gray.width() as usize, gray.height() as usize);
    let stride = 2 * w + pad;
    let mut out = vec![0u8; stride * h];
    for y in 0..h {
        for x in 0..w {
            out[y * stride + 2 * x] = gray.as_raw()[y * w + x];
            out[y * stride + 2 * x + 1] = 128;
        }
    }
    (out, stride)
}

/// An MJPEG frame (colour JPEG, 4:2:0 as webcams send) for `gray`.
pub fn to_mjpeg(gray: &GrayImage, quality: u8) -> Vec<u8> {
    let rgb = image::RgbImage::from_fn(gray.width(), gray.height(), |x, y| {
        let v = gray.get_pixel(x, y).0[0];
        image::Rgb([v, v, v])
    });
    let mut out = Vec::new();
    let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality);
    // infallible: encoding an in-memory RGB image of valid size into a Vec cannot fail
    rgb.write_with_encoder(enc).expect("jpeg encode");
    out
}

/// The two benchmark frame sizes.
pub const SIZES: [(u32, u32); 2] = [(640, 480), (1152, 864)];

/// A synthetic single-mode frame of the given size with a zone-B defect, scaled so the
/// 250 µm contact zone fits the frame (µm/px chosen from the frame height).
pub fn synth_frame(width: u32, height: u32, seed: u64) -> (GrayImage, Truth) {
    let cfg = SynthConfig {
        width,
        height,
        fiber: Some(FiberProfile::SmUpc),
        um_per_px: Some(synth_um_per_px(height)),
        aspect_y_over_x: Some(1.0),
        jpeg_prob: 0.0,
        defect_prob: 1.0,
    };
    render_content(&cfg, seed, Content::Defect(DefectKind::Pit))
}

/// µm/px that makes the 250 µm contact zone ~80 % of the frame height.
pub fn synth_um_per_px(height: u32) -> f64 {
    (250.0 / (0.8 * height as f64)).clamp(0.2, 1.0)
}

/// A uniform frame (for conversions, where content does not matter).
pub fn flat(width: u32, height: u32, v: u8) -> GrayImage {
    GrayImage::from_pixel(width, height, Luma([v]))
}

/// The model the benchmarks run: `$ENDFACE_BENCH_MANIFEST`, else the shipped model, else the
/// untrained stand-in from scripts/make_bench_model.py, else the recon256 test fixture.
pub fn bench_manifest() -> std::path::PathBuf {
    let repo = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if let Some(p) = std::env::var_os("ENDFACE_BENCH_MANIFEST").filter(|p| !p.is_empty()) {
        return p.into();
    }
    [
        "models/endface-student.manifest.json",
        "target/bench-model/bench-student.manifest.json",
        "tests/fixtures/recon256.manifest.json",
    ]
    .iter()
    .map(|p| repo.join(p))
    .find(|p| p.is_file())
    .unwrap_or_else(|| repo.join("tests/fixtures/recon256.manifest.json"))
}

/// CPU runtime with the repository's ONNX Runtime (`$ENDFACE_ORT_LIB`, else
/// .ort/<arch>/libonnxruntime.so from scripts/setup-ort.sh), `$ENDFACE_BENCH_THREADS`
/// intra-op threads (default 1).
pub fn bench_runtime() -> endface::config::RuntimeSection {
    let repo = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let lib = std::env::var_os("ENDFACE_ORT_LIB")
        .filter(|p| !p.is_empty())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            repo.join(".ort")
                .join(std::env::consts::ARCH)
                .join("libonnxruntime.so")
        });
    let threads = std::env::var("ENDFACE_BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    endface::config::RuntimeSection {
        onnxruntime_library: Some(lib),
        providers: vec![endface::config::ProviderKind::Cpu],
        intra_threads: threads,
        ..Default::default()
    }
}
