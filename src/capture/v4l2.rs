//! V4L2 camera source (cargo feature `v4l2`, through the `v4l` crate, mmap streaming).
//!
//! In: `[camera]` (device, size, pixel format, frame rate, exposure, gain, buffers, timeout).
//! Out: gray [`Frame`]s. The format the driver negotiated is read back and checked against
//! the request (a different size or pixel format is refused, naming both); frame rate and
//! controls the driver adjusts are logged. Only `bytesused` bytes of each buffer are decoded.
//! A buffer flagged with an error or too short is a corrupt frame; `ENODEV`/I/O errors and
//! timeouts mean the camera is lost (the daemon drops READY and reconnects).

use super::decode::{gray_from_grey_into, gray_from_mjpeg, gray_from_yuyv_into};
use super::{monotonic_ns, unix_ns, CameraConfig, CaptureError, Frame, PixelFormat, Source};
use tracing::{info, warn};
use v4l::buffer::Type;
use v4l::io::mmap::Stream;
use v4l::io::traits::{CaptureStream, Stream as _};
use v4l::video::Capture;
use v4l::{Device, FourCC};

/// `V4L2_CID_EXPOSURE_AUTO` (menu; 1 = manual).
const CID_EXPOSURE_AUTO: u32 = 0x009a_0901;
/// `V4L2_CID_EXPOSURE_ABSOLUTE` (100 µs units).
const CID_EXPOSURE_ABSOLUTE: u32 = 0x009a_0902;
/// `V4L2_CID_AUTOGAIN`.
const CID_AUTOGAIN: u32 = 0x0098_0912;
/// `V4L2_CID_GAIN`.
const CID_GAIN: u32 = 0x0098_0913;
/// `V4L2_BUF_FLAG_TIMESTAMP_MASK` / `_MONOTONIC`.
const BUF_FLAG_TIMESTAMP_MASK: u32 = 0xe000;
const BUF_FLAG_TIMESTAMP_MONOTONIC: u32 = 0x2000;
/// `V4L2_BUF_FLAG_ERROR`.
const BUF_FLAG_ERROR: u32 = 0x0040;

/// What the driver agreed to.
#[derive(Debug, Clone, Copy)]
struct Negotiated {
    width: u32,
    height: u32,
    stride: u32,
    format: PixelFormat,
}

/// A V4L2 capture device.
pub struct V4l2Source {
    cfg: CameraConfig,
    // Field order matters: the stream must be dropped before the device.
    stream: Option<Stream<'static>>,
    device: Option<Device>,
    negotiated: Option<Negotiated>,
    last_driver_sequence: Option<u32>,
    sequence: u64,
    driver_dropped: u64,
    /// Pixels of frames the daemon is done with ([`Source::recycle`]), decoded into again.
    spare: Vec<Vec<u8>>,
}

/// Recycled frame buffers kept at most (more than the daemon ever has in flight).
const SPARE_FRAMES: usize = 16;

impl V4l2Source {
    /// A closed source; [`Source::open`] opens the device.
    pub fn new(cfg: CameraConfig) -> V4l2Source {
        V4l2Source {
            cfg,
            stream: None,
            device: None,
            negotiated: None,
            last_driver_sequence: None,
            sequence: 0,
            driver_dropped: 0,
            spare: Vec::new(),
        }
    }

    /// Frames the driver dropped (gaps in its buffer sequence numbers) since start.
    pub fn driver_dropped(&self) -> u64 {
        self.driver_dropped
    }

    fn device_name(&self) -> String {
        self.cfg.device.display().to_string()
    }

    fn lost(&self, reason: impl std::fmt::Display) -> CaptureError {
        CaptureError::Lost {
            device: self.device_name(),
            reason: reason.to_string(),
        }
    }

    fn setup(&self, problem: impl Into<String>) -> CaptureError {
        CaptureError::Setup {
            device: self.device_name(),
            problem: problem.into(),
        }
    }

    fn configure(&self, dev: &Device) -> Result<Negotiated, CaptureError> {
        let caps = dev
            .query_caps()
            .map_err(|e| self.lost(format!("VIDIOC_QUERYCAP: {e}")))?;
        let flags = caps.capabilities;
        if !flags.contains(v4l::capability::Flags::VIDEO_CAPTURE)
            || !flags.contains(v4l::capability::Flags::STREAMING)
        {
            return Err(self.setup(format!(
                "{} ({}) is not a streaming video capture device",
                caps.card, caps.driver
            )));
        }
        let want = self.cfg.pixel_format;
        let request =
            v4l::Format::new(self.cfg.width, self.cfg.height, FourCC::new(&want.fourcc()));
        let got = dev
            .set_format(&request)
            .map_err(|e| self.setup(format!("VIDIOC_S_FMT: {e}")))?;
        // Read back what the driver really uses, not what S_FMT echoed.
        let now = dev
            .format()
            .map_err(|e| self.setup(format!("VIDIOC_G_FMT: {e}")))?;
        if got.fourcc != now.fourcc || got.width != now.width || got.height != now.height {
            warn!(device = %self.device_name(), "driver's S_FMT answer and G_FMT differ; using G_FMT");
        }
        if now.fourcc.repr != want.fourcc()
            || now.width != self.cfg.width
            || now.height != self.cfg.height
        {
            return Err(self.setup(format!(
                "asked for {}x{} {}, the driver negotiated {}x{} {}: set camera.width/height/pixel_format to a mode the camera supports",
                self.cfg.width,
                self.cfg.height,
                String::from_utf8_lossy(&want.fourcc()),
                now.width,
                now.height,
                String::from_utf8_lossy(&now.fourcc.repr)
            )));
        }
        if self.cfg.fps > 0.0 {
            let fps = self.cfg.fps.round().max(1.0) as u32;
            match dev.set_params(&v4l::video::capture::Parameters::with_fps(fps)) {
                Ok(p) => {
                    let got_fps = if p.interval.numerator > 0 {
                        p.interval.denominator as f64 / p.interval.numerator as f64
                    } else {
                        0.0
                    };
                    if (got_fps - self.cfg.fps).abs() > 0.5 {
                        warn!(device = %self.device_name(), asked = self.cfg.fps, got = got_fps, "camera runs at a different frame rate");
                    }
                }
                Err(e) => warn!(device = %self.device_name(), "cannot set the frame rate: {e}"),
            }
        }
        if let Some(exposure) = self.cfg.exposure {
            // Manual exposure first; not every camera has the menu.
            let _ = dev.set_control(v4l::Control {
                id: CID_EXPOSURE_AUTO,
                value: v4l::control::Value::Integer(1),
            });
            self.set_integer_control(dev, CID_EXPOSURE_ABSOLUTE, "exposure", exposure);
        }
        if let Some(gain) = self.cfg.gain {
            let _ = dev.set_control(v4l::Control {
                id: CID_AUTOGAIN,
                value: v4l::control::Value::Boolean(false),
            });
            self.set_integer_control(dev, CID_GAIN, "gain", gain);
        }
        Ok(Negotiated {
            width: now.width,
            height: now.height,
            stride: now.stride,
            format: want,
        })
    }

    fn set_integer_control(&self, dev: &Device, id: u32, what: &str, value: i64) {
        let result = dev.set_control(v4l::Control {
            id,
            value: v4l::control::Value::Integer(value),
        });
        match result {
            Err(e) => {
                warn!(device = %self.device_name(), "camera.{what} = {value} not applied: {e}")
            }
            Ok(()) => match dev.control(id).map(|c| c.value) {
                Ok(v4l::control::Value::Integer(v)) if v != value => {
                    warn!(device = %self.device_name(), "camera.{what}: asked {value}, the driver uses {v}")
                }
                _ => {}
            },
        }
    }
}

impl Source for V4l2Source {
    fn name(&self) -> String {
        self.device_name()
    }

    fn is_live(&self) -> bool {
        true
    }

    fn open(&mut self) -> Result<(), CaptureError> {
        self.close();
        let dev = Device::with_path(&self.cfg.device)
            .map_err(|e| self.lost(format!("cannot open: {e}")))?;
        let negotiated = self.configure(&dev)?;
        let mut stream = Stream::with_buffers(&dev, Type::VideoCapture, self.cfg.buffers)
            .map_err(|e| self.lost(format!("cannot map buffers: {e}")))?;
        stream.set_timeout(self.cfg.frame_timeout());
        info!(
            device = %self.device_name(),
            width = negotiated.width,
            height = negotiated.height,
            stride = negotiated.stride,
            format = %String::from_utf8_lossy(&negotiated.format.fourcc()),
            "camera opened"
        );
        self.stream = Some(stream);
        self.device = Some(dev);
        self.negotiated = Some(negotiated);
        self.last_driver_sequence = None;
        Ok(())
    }

    fn close(&mut self) {
        if let Some(mut stream) = self.stream.take() {
            // Stop here so an error can be ignored; the `v4l` stream's Drop panics on a
            // STREAMOFF error other than ENODEV, so contain that too.
            let _ = stream.stop();
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(stream)));
        }
        self.device = None;
        self.negotiated = None;
    }

    fn dropped_by_device(&self) -> u64 {
        self.driver_dropped
    }

    fn recycle(&mut self, image: image::GrayImage) {
        if self.spare.len() < SPARE_FRAMES {
            self.spare.push(image.into_raw());
        }
    }

    fn next_frame(&mut self) -> Result<Frame, CaptureError> {
        // The device's name is only needed for an error: made then, not per frame.
        let device = || self.cfg.device.display().to_string();
        let timeout_ms = self.cfg.frame_timeout_ms;
        let (Some(stream), Some(neg)) = (self.stream.as_mut(), self.negotiated) else {
            return Err(CaptureError::Lost {
                device: device(),
                reason: "not open".into(),
            });
        };
        let (buf, meta) = match stream.next() {
            Ok(x) => x,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                return Err(CaptureError::Stalled {
                    device: device(),
                    timeout_ms,
                })
            }
            Err(e) => {
                return Err(CaptureError::Lost {
                    device: device(),
                    reason: format!("VIDIOC_DQBUF: {e}"),
                })
            }
        };
        let dequeued_mono_ns = monotonic_ns();
        let captured_unix_ns = unix_ns();
        self.sequence += 1;
        let sequence = self.sequence;
        let flags: u32 = meta.flags.into();
        if let Some(last) = self.last_driver_sequence {
            let gap = meta.sequence.wrapping_sub(last);
            if gap > 1 && gap < u32::MAX / 2 {
                self.driver_dropped += u64::from(gap - 1);
            }
        }
        self.last_driver_sequence = Some(meta.sequence);
        let captured_mono_ns = if flags & BUF_FLAG_TIMESTAMP_MASK == BUF_FLAG_TIMESTAMP_MONOTONIC {
            // time_t is i64 on 64-bit targets and i32 on 32-bit ones.
            #[allow(clippy::useless_conversion)]
            let ns = i64::from(meta.timestamp.sec) * 1_000_000_000
                + i64::from(meta.timestamp.usec) * 1000;
            if ns > 0 {
                ns as u64
            } else {
                dequeued_mono_ns
            }
        } else {
            dequeued_mono_ns
        };
        let corrupt = |reason: String| CaptureError::Corrupt {
            device: device(),
            sequence,
            reason,
        };
        if flags & BUF_FLAG_ERROR != 0 {
            return Err(corrupt("driver flagged the buffer as erroneous".into()));
        }
        let used = (meta.bytesused as usize).min(buf.len());
        let data = &buf[..used];
        // GREY and YUYV are decoded into a recycled frame's pixels (no allocation); MJPEG
        // goes through the JPEG decoder, which allocates its own.
        let pixels = self.spare.pop().unwrap_or_default();
        let image = match neg.format {
            PixelFormat::Grey => {
                gray_from_grey_into(data, neg.width, neg.height, neg.stride, pixels)
            }
            PixelFormat::Yuyv => {
                gray_from_yuyv_into(data, neg.width, neg.height, neg.stride, pixels)
            }
            PixelFormat::Mjpeg => gray_from_mjpeg(data, neg.width, neg.height),
        }
        .map_err(corrupt)?;
        Ok(Frame {
            image,
            sequence,
            captured_mono_ns,
            captured_unix_ns,
            origin: None,
        })
    }
}

impl Drop for V4l2Source {
    fn drop(&mut self) {
        self.close();
    }
}
