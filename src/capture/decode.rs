//! Raw camera buffers to gray frames.
//!
//! In: the used bytes of one V4L2 buffer (`bytesused`, never the whole mapping), the
//! negotiated width, height and bytes per line. Out: an 8-bit `GrayImage`, or the reason the
//! buffer cannot be one (a short buffer is a corrupt frame, not a panic). Pure functions: the
//! capture code is tested without a camera.

use image::GrayImage;

/// GREY (8-bit luma) rows of `stride_bytes` (≥ width; 0 means tightly packed).
pub fn gray_from_grey(
    data: &[u8],
    width: u32,
    height: u32,
    stride_bytes: u32,
) -> Result<GrayImage, String> {
    gray_from_grey_into(data, width, height, stride_bytes, Vec::new())
}

/// As [`gray_from_grey`], into `out`'s memory (e.g. a recycled frame's pixels): no heap
/// allocation when it holds width·height bytes already.
pub fn gray_from_grey_into(
    data: &[u8],
    width: u32,
    height: u32,
    stride_bytes: u32,
    mut out: Vec<u8>,
) -> Result<GrayImage, String> {
    let stride = if stride_bytes == 0 {
        width as usize
    } else {
        stride_bytes as usize
    };
    if stride < width as usize {
        return Err(format!("stride {stride} bytes < width {width}"));
    }
    let need = needed_bytes(stride, width as usize, height as usize);
    if data.len() < need {
        return Err(format!(
            "{} bytes used, {need} needed for {width}x{height} GREY",
            data.len()
        ));
    }
    out.clear();
    out.reserve(width as usize * height as usize);
    for row in 0..height as usize {
        let start = row * stride;
        out.extend_from_slice(&data[start..start + width as usize]);
    }
    GrayImage::from_raw(width, height, out).ok_or_else(|| "buffer size mismatch".to_string())
}

/// YUYV (packed 4:2:2: Y0 U Y1 V) rows of `stride_bytes` (≥ 2·width; 0 = packed); keeps Y.
pub fn gray_from_yuyv(
    data: &[u8],
    width: u32,
    height: u32,
    stride_bytes: u32,
) -> Result<GrayImage, String> {
    gray_from_yuyv_into(data, width, height, stride_bytes, Vec::new())
}

/// As [`gray_from_yuyv`], into `out`'s memory (see [`gray_from_grey_into`]).
pub fn gray_from_yuyv_into(
    data: &[u8],
    width: u32,
    height: u32,
    stride_bytes: u32,
    mut out: Vec<u8>,
) -> Result<GrayImage, String> {
    let row_bytes = 2 * width as usize;
    let stride = if stride_bytes == 0 {
        row_bytes
    } else {
        stride_bytes as usize
    };
    if stride < row_bytes {
        return Err(format!("stride {stride} bytes < 2 x width {width}"));
    }
    let need = needed_bytes(stride, row_bytes, height as usize);
    if data.len() < need {
        return Err(format!(
            "{} bytes used, {need} needed for {width}x{height} YUYV",
            data.len()
        ));
    }
    out.clear();
    out.reserve(width as usize * height as usize);
    for row in 0..height as usize {
        let start = row * stride;
        out.extend(data[start..start + row_bytes].iter().step_by(2));
    }
    GrayImage::from_raw(width, height, out).ok_or_else(|| "buffer size mismatch".to_string())
}

/// MJPEG: one JPEG image; its size must be the negotiated one.
pub fn gray_from_mjpeg(data: &[u8], width: u32, height: u32) -> Result<GrayImage, String> {
    if data.len() < 4 || data[0] != 0xFF || data[1] != 0xD8 {
        return Err(format!("{} bytes, no JPEG start marker", data.len()));
    }
    let img = image::load_from_memory_with_format(data, image::ImageFormat::Jpeg)
        .map_err(|e| format!("JPEG: {e}"))?
        .into_luma8();
    if img.width() != width || img.height() != height {
        return Err(format!(
            "JPEG is {}x{}, negotiated {width}x{height}",
            img.width(),
            img.height()
        ));
    }
    Ok(img)
}

fn needed_bytes(stride: usize, row_bytes: usize, height: usize) -> usize {
    if height == 0 {
        0
    } else {
        stride * (height - 1) + row_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_into_a_recycled_buffer_reuses_it() {
        let grey = [1, 2, 3, 99, 4, 5, 6];
        let yuyv = [10, 0, 11, 0, 12, 0, 13, 0];
        let old = vec![7u8; 64];
        let ptr = old.as_ptr();
        let img = gray_from_grey_into(&grey, 3, 2, 4, old).unwrap();
        assert_eq!(
            img.as_raw(),
            gray_from_grey(&grey, 3, 2, 4).unwrap().as_raw()
        );
        assert_eq!(
            img.as_raw().as_ptr(),
            ptr,
            "the recycled memory holds the frame"
        );
        let raw = img.into_raw();
        let ptr = raw.as_ptr();
        let img = gray_from_yuyv_into(&yuyv, 2, 2, 4, raw).unwrap();
        assert_eq!(
            img.as_raw(),
            gray_from_yuyv(&yuyv, 2, 2, 4).unwrap().as_raw()
        );
        assert_eq!(img.as_raw().as_ptr(), ptr);
    }

    #[test]
    fn grey_respects_stride_and_length() {
        // 3x2 image with a 4-byte stride: the padding byte must not leak into pixels.
        let data = [1, 2, 3, 99, 4, 5, 6];
        let img = gray_from_grey(&data, 3, 2, 4).unwrap();
        assert_eq!(img.as_raw(), &vec![1, 2, 3, 4, 5, 6]);
        assert!(gray_from_grey(&data[..6], 3, 2, 4).is_err());
        assert!(gray_from_grey(&data, 3, 2, 2).is_err());
    }

    #[test]
    fn yuyv_keeps_luma() {
        // 2x2: Y0 U Y1 V per pair.
        let data = [10, 128, 20, 128, 30, 128, 40, 128];
        let img = gray_from_yuyv(&data, 2, 2, 0).unwrap();
        assert_eq!(img.as_raw(), &vec![10, 20, 30, 40]);
        // A buffer cut short (bytesused smaller than a frame) is corrupt, not a panic.
        let e = gray_from_yuyv(&data[..5], 2, 2, 0).unwrap_err();
        assert!(e.contains("bytes used"), "{e}");
    }

    #[test]
    fn mjpeg_decodes_and_checks_size() {
        let src = GrayImage::from_fn(16, 8, |x, _| image::Luma([(x * 16) as u8]));
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95)
            .encode_image(&src)
            .unwrap();
        let img = gray_from_mjpeg(&jpeg, 16, 8).unwrap();
        assert_eq!(img.dimensions(), (16, 8));
        assert!((img.get_pixel(15, 4).0[0] as i32 - 240).abs() < 8);
        assert!(gray_from_mjpeg(&jpeg, 32, 8).is_err());
        assert!(gray_from_mjpeg(&jpeg[..jpeg.len() / 3], 16, 8).is_err());
        assert!(gray_from_mjpeg(&[0, 0, 0, 0], 16, 8).is_err());
    }
}
