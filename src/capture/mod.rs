//! Frame sources for the station daemon.
//!
//! In: a `[camera]` config section. Out: [`Frame`]s (8-bit gray `GrayImage` plus the source's
//! sequence number and capture time on `CLOCK_MONOTONIC`) from one [`Source`] trait object, so
//! the pipeline never knows which kind of camera it reads:
//!
//! - [`v4l2::V4l2Source`] (cargo feature `v4l2`): a V4L2 camera; GREY, YUYV or MJPEG; size,
//!   frame rate, exposure and gain from the config; the negotiated format is read back and
//!   checked; only `bytesused` bytes of a buffer are used.
//! - [`replay::ReplaySource`]: image files from a folder or a glob, optionally looping, at a
//!   set rate.
//! - [`synthetic::SyntheticSource`]: the synthetic end-face camera rendering on demand.
//!
//! Errors are classified by what the pipeline must do about them ([`CaptureError::class`]):
//! skip a corrupt frame, reconnect after a lost camera, stop at the end of a replay, or give up
//! on a configuration the device refuses.

pub mod decode;
pub mod replay;
pub mod synthetic;
#[cfg(feature = "v4l2")]
pub mod v4l2;

use image::GrayImage;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One captured frame.
#[derive(Debug, Clone)]
pub struct Frame {
    /// 8-bit gray pixels.
    pub image: GrayImage,
    /// The source's own frame counter (V4L2 buffer sequence, replay index, synthetic count).
    pub sequence: u64,
    /// When the frame was captured (V4L2 buffer timestamp where the driver gives a monotonic
    /// one, else the dequeue time), on `CLOCK_MONOTONIC`, in ns.
    pub captured_mono_ns: u64,
    /// Wall-clock time of capture (Unix epoch, ns), for the journal.
    pub captured_unix_ns: i64,
    /// Where the frame came from when that is a file (replay), else `None`.
    pub origin: Option<String>,
}

/// Errors of a frame source.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The device vanished or failed (unplugged, driver unloaded, I/O error): reconnect.
    #[error("camera {device}: lost: {reason}")]
    Lost { device: String, reason: String },
    /// No frame arrived within the configured timeout: treat as lost.
    #[error("camera {device}: no frame within {timeout_ms} ms (stalled)")]
    Stalled { device: String, timeout_ms: u64 },
    /// One frame could not be used (driver error flag, short buffer, bad JPEG, unreadable
    /// file): skip it and count it.
    #[error("{device}: frame {sequence} is corrupt ({reason}); skipped")]
    Corrupt {
        device: String,
        sequence: u64,
        reason: String,
    },
    /// A replay has no more frames.
    #[error("{device}: no more frames")]
    Exhausted { device: String },
    /// The device or the files refuse the configuration (format not supported, no such
    /// folder): retried with back-off for devices, fatal for replays.
    #[error("{device}: {problem}")]
    Setup { device: String, problem: String },
}

/// What the pipeline does about a [`CaptureError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Skip this frame, count it, keep going.
    SkipFrame,
    /// Camera lost: READY low, reconnect with back-off.
    Reconnect,
    /// The source has ended (replay without looping).
    Ended,
}

impl CaptureError {
    /// How the pipeline should react.
    pub fn class(&self) -> ErrorClass {
        match self {
            CaptureError::Corrupt { .. } => ErrorClass::SkipFrame,
            CaptureError::Lost { .. } | CaptureError::Stalled { .. } => ErrorClass::Reconnect,
            CaptureError::Setup { .. } => ErrorClass::Reconnect,
            CaptureError::Exhausted { .. } => ErrorClass::Ended,
        }
    }
}

/// A camera or anything that behaves like one.
pub trait Source: Send {
    /// Human-readable name for logs (`/dev/video0`, `replay frames/*.png`).
    fn name(&self) -> String;
    /// A live source produces frames whether or not anyone reads them (a camera): the daemon
    /// keeps only the newest when inspection falls behind and matches frames to trigger times.
    /// A non-live source (replay, synthetic) produces a frame when asked.
    fn is_live(&self) -> bool;
    /// (Re)open the device. Called before the first frame and after a loss.
    fn open(&mut self) -> Result<(), CaptureError>;
    /// Release the device (stop streaming, close). Safe to call when closed.
    fn close(&mut self);
    /// The next frame; blocks at most about the configured frame timeout.
    fn next_frame(&mut self) -> Result<Frame, CaptureError>;
    /// Frames the device itself dropped (gaps in its sequence numbers) so far.
    fn dropped_by_device(&self) -> u64 {
        0
    }
    /// A frame's pixels the daemon is done with, handed back so that a source can fill it
    /// again instead of allocating a new image per frame. Default: dropped.
    fn recycle(&mut self, _image: GrayImage) {}
}

/// Which kind of source `[camera] source` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// A V4L2 camera device.
    V4l2,
    /// Image files from a folder or glob.
    Replay,
    /// The synthetic end-face camera.
    Synthetic,
}

/// Pixel formats the V4L2 source can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PixelFormat {
    /// 8-bit gray (`GREY`).
    #[serde(rename = "GREY")]
    Grey,
    /// Packed YUV 4:2:2 (`YUYV`); the luma is used.
    #[serde(rename = "YUYV")]
    Yuyv,
    /// Motion JPEG (`MJPG`), decoded to gray.
    #[serde(rename = "MJPG")]
    Mjpeg,
}

impl PixelFormat {
    /// The V4L2 four-character code.
    pub fn fourcc(self) -> [u8; 4] {
        match self {
            PixelFormat::Grey => *b"GREY",
            PixelFormat::Yuyv => *b"YUYV",
            PixelFormat::Mjpeg => *b"MJPG",
        }
    }
}

/// `[camera]`: where frames come from.
///
/// ```toml
/// [camera]
/// source = "v4l2"            # "v4l2" | "replay" | "synthetic"
/// device = "/dev/video0"     # v4l2
/// width = 640                # v4l2: requested size, checked against what the driver negotiates
/// height = 480
/// pixel_format = "YUYV"      # v4l2: "GREY" | "YUYV" | "MJPG"
/// fps = 25.0                 # v4l2: requested frame rate; replay/synthetic: pacing (0 = as fast as asked)
/// exposure = 300             # v4l2, optional: exposure_time_absolute in driver units (100 µs)
/// gain = 8                   # v4l2, optional: gain in driver units
/// buffers = 4                # v4l2: mmap buffers
/// frame_timeout_ms = 2000    # no frame for this long: camera stalled -> READY low, reconnect
/// reconnect_initial_ms = 250 # reconnect back-off: first wait, doubled up to reconnect_max_ms
/// reconnect_max_ms = 5000
/// path = "frames/*.png"      # replay: a folder or a glob (wildcards in the file name only)
/// loop = false               # replay: start again at the end
/// seed = 1                   # synthetic: random seed
/// defect_prob = 0.5          # synthetic: share of frames with a graded defect
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CameraConfig {
    pub source: SourceKind,
    pub device: PathBuf,
    pub width: u32,
    pub height: u32,
    pub pixel_format: PixelFormat,
    pub fps: f64,
    pub exposure: Option<i64>,
    pub gain: Option<i64>,
    pub buffers: u32,
    pub frame_timeout_ms: u64,
    pub reconnect_initial_ms: u64,
    pub reconnect_max_ms: u64,
    pub path: Option<PathBuf>,
    #[serde(rename = "loop")]
    pub loop_replay: bool,
    pub seed: u64,
    pub defect_prob: f64,
}

impl Default for CameraConfig {
    fn default() -> Self {
        CameraConfig {
            source: SourceKind::Synthetic,
            device: PathBuf::from("/dev/video0"),
            width: 640,
            height: 480,
            pixel_format: PixelFormat::Yuyv,
            fps: 0.0,
            exposure: None,
            gain: None,
            buffers: 4,
            frame_timeout_ms: 2000,
            reconnect_initial_ms: 250,
            reconnect_max_ms: 5000,
            path: None,
            loop_replay: false,
            seed: 1,
            defect_prob: 0.5,
        }
    }
}

/// A config value that is not acceptable: names the key, the value and the problem.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("key `{key}` = {value}: {problem}")]
pub struct InvalidKey {
    pub key: String,
    pub value: String,
    pub problem: String,
}

impl InvalidKey {
    pub fn new(key: &str, value: impl std::fmt::Display, problem: impl Into<String>) -> Self {
        InvalidKey {
            key: key.to_string(),
            value: value.to_string(),
            problem: problem.into(),
        }
    }
}

impl CameraConfig {
    /// Check every value; the error names the key and what is wrong.
    pub fn validate(&self) -> Result<(), InvalidKey> {
        if self.source == SourceKind::V4l2 {
            if !(16..=16384).contains(&self.width) {
                return Err(InvalidKey::new(
                    "camera.width",
                    self.width,
                    "must be 16..=16384",
                ));
            }
            if !(16..=16384).contains(&self.height) {
                return Err(InvalidKey::new(
                    "camera.height",
                    self.height,
                    "must be 16..=16384",
                ));
            }
            if !(1..=32).contains(&self.buffers) {
                return Err(InvalidKey::new(
                    "camera.buffers",
                    self.buffers,
                    "must be 1..=32",
                ));
            }
            if self.device.as_os_str().is_empty() {
                return Err(InvalidKey::new(
                    "camera.device",
                    "\"\"",
                    "name a V4L2 device such as /dev/video0",
                ));
            }
        }
        if !(self.fps.is_finite() && (0.0..=1000.0).contains(&self.fps)) {
            return Err(InvalidKey::new(
                "camera.fps",
                self.fps,
                "must be in [0, 1000] (0 = driver default / as fast as asked)",
            ));
        }
        if self.frame_timeout_ms < 10 || self.frame_timeout_ms > 600_000 {
            return Err(InvalidKey::new(
                "camera.frame_timeout_ms",
                self.frame_timeout_ms,
                "must be 10..=600000",
            ));
        }
        if self.reconnect_initial_ms == 0 || self.reconnect_initial_ms > self.reconnect_max_ms {
            return Err(InvalidKey::new(
                "camera.reconnect_initial_ms",
                self.reconnect_initial_ms,
                format!(
                    "must be at least 1 and at most reconnect_max_ms ({})",
                    self.reconnect_max_ms
                ),
            ));
        }
        if !(self.defect_prob.is_finite() && (0.0..=1.0).contains(&self.defect_prob)) {
            return Err(InvalidKey::new(
                "camera.defect_prob",
                self.defect_prob,
                "must be a probability in [0, 1]",
            ));
        }
        if self.source == SourceKind::Synthetic
            && !(16..=8192).contains(&self.width.min(self.height))
        {
            return Err(InvalidKey::new(
                "camera.width",
                format!("{}x{}", self.width, self.height),
                "the synthetic camera renders 16..=8192 px per side",
            ));
        }
        if self.source == SourceKind::Replay && self.path.is_none() {
            return Err(InvalidKey::new(
                "camera.path",
                "(missing)",
                "source = \"replay\" needs a folder or glob of images",
            ));
        }
        Ok(())
    }

    /// Make a relative replay path relative to `base` (the config file's folder).
    pub fn resolve_paths(&mut self, base: &Path) {
        if let Some(p) = self.path.as_mut() {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }

    /// The frame timeout as a `Duration`.
    pub fn frame_timeout(&self) -> Duration {
        Duration::from_millis(self.frame_timeout_ms)
    }
}

/// Build the source the config selects. `hints` (the station's calibration and profile) are
/// used by the synthetic camera only.
pub fn open_source(
    cfg: &CameraConfig,
    hints: &synthetic::SceneHints,
) -> Result<Box<dyn Source>, CaptureError> {
    match cfg.source {
        SourceKind::Replay => Ok(Box::new(replay::ReplaySource::from_config(cfg)?)),
        SourceKind::Synthetic => Ok(Box::new(synthetic::SyntheticSource::from_config(
            cfg, hints,
        )?)),
        SourceKind::V4l2 => open_v4l2(cfg),
    }
}

#[cfg(feature = "v4l2")]
fn open_v4l2(cfg: &CameraConfig) -> Result<Box<dyn Source>, CaptureError> {
    Ok(Box::new(v4l2::V4l2Source::new(cfg.clone())))
}

#[cfg(not(feature = "v4l2"))]
fn open_v4l2(cfg: &CameraConfig) -> Result<Box<dyn Source>, CaptureError> {
    Err(CaptureError::Setup {
        device: cfg.device.display().to_string(),
        problem: "this build has no V4L2 support (cargo feature `v4l2` is off)".into(),
    })
}

/// `CLOCK_MONOTONIC` now, in ns: the clock of frame timestamps, GPIO edge events and the
/// simulated GPIO backend's transitions.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own; CLOCK_MONOTONIC always exists on
    // Linux, so the call cannot fail (infallible: the return value carries no information).
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// Wall-clock now as ns since the Unix epoch (0 if the clock is before 1970).
pub fn unix_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Sleep until `CLOCK_MONOTONIC` reaches `deadline_ns` (returns at once if it has).
pub fn sleep_until_mono(deadline_ns: u64) {
    let now = monotonic_ns();
    if deadline_ns > now {
        std::thread::sleep(Duration::from_nanos(deadline_ns - now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<CameraConfig, String> {
        let c: CameraConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }

    #[test]
    fn defaults_are_valid() {
        CameraConfig::default().validate().unwrap();
        let c = parse("source = \"v4l2\"\npixel_format = \"GREY\"\nfps = 25.0").unwrap();
        assert_eq!(c.pixel_format, PixelFormat::Grey);
    }

    #[test]
    fn bad_values_name_the_key() {
        for (text, key) in [
            ("source = \"v4l2\"\nwidth = 0", "camera.width"),
            ("fps = -1.0", "camera.fps"),
            ("frame_timeout_ms = 1", "camera.frame_timeout_ms"),
            ("reconnect_initial_ms = 9000", "camera.reconnect_initial_ms"),
            ("source = \"replay\"", "camera.path"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(key), "{text}: {e}");
        }
        let e = parse("pixel_format = \"RGB3\"").unwrap_err();
        assert!(e.contains("RGB3"), "{e}");
        let e = parse("exposur = 3").unwrap_err();
        assert!(e.contains("exposur"), "{e}");
    }

    #[test]
    fn monotonic_clock_moves_forward() {
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(b >= a && a > 0);
    }
}
