//! Replay of image files as a camera.
//!
//! In: a folder (every `.png`, `.jpg`, `.jpeg`, `.bmp` in it) or a glob whose last path
//! component holds the wildcards (`*`, `?`), sorted by file name; optional looping and pacing.
//! Out: one [`Frame`] per file, converted to 8-bit gray. A file that does not decode is a
//! corrupt frame (skipped and counted by the daemon), not the end of the replay.

use super::{monotonic_ns, sleep_until_mono, unix_ns, CameraConfig, CaptureError, Frame, Source};
use std::path::{Path, PathBuf};

/// Image files replayed in name order.
pub struct ReplaySource {
    pattern: PathBuf,
    files: Vec<PathBuf>,
    next_index: usize,
    loop_replay: bool,
    period_ns: u64,
    next_due_ns: Option<u64>,
    sequence: u64,
}

impl ReplaySource {
    /// Files from `[camera] path` (a folder or a glob), looping and pacing from the config.
    pub fn from_config(cfg: &CameraConfig) -> Result<ReplaySource, CaptureError> {
        let pattern = cfg.path.clone().ok_or_else(|| CaptureError::Setup {
            device: "replay".into(),
            problem: "camera.path is not set (a folder or glob of images)".into(),
        })?;
        let mut src = ReplaySource::new(&pattern, cfg.loop_replay, cfg.fps)?;
        src.pattern = pattern;
        Ok(src)
    }

    /// Replay `pattern` (folder or glob); `fps` > 0 paces the frames.
    pub fn new(pattern: &Path, loop_replay: bool, fps: f64) -> Result<ReplaySource, CaptureError> {
        let files = list_images(pattern).map_err(|problem| CaptureError::Setup {
            device: format!("replay {}", pattern.display()),
            problem,
        })?;
        if files.is_empty() {
            return Err(CaptureError::Setup {
                device: format!("replay {}", pattern.display()),
                problem: "matches no image files (.png, .jpg, .jpeg, .bmp)".into(),
            });
        }
        let period_ns = if fps > 0.0 { (1e9 / fps) as u64 } else { 0 };
        Ok(ReplaySource {
            pattern: pattern.to_path_buf(),
            files,
            next_index: 0,
            loop_replay,
            period_ns,
            next_due_ns: None,
            sequence: 0,
        })
    }

    /// The files in replay order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }
}

impl Source for ReplaySource {
    fn name(&self) -> String {
        format!("replay {}", self.pattern.display())
    }

    fn is_live(&self) -> bool {
        false
    }

    fn open(&mut self) -> Result<(), CaptureError> {
        Ok(())
    }

    fn close(&mut self) {}

    fn next_frame(&mut self) -> Result<Frame, CaptureError> {
        if self.next_index >= self.files.len() {
            if self.loop_replay {
                self.next_index = 0;
            } else {
                return Err(CaptureError::Exhausted {
                    device: self.name(),
                });
            }
        }
        if self.period_ns > 0 {
            let due = self.next_due_ns.unwrap_or_else(monotonic_ns);
            sleep_until_mono(due);
            // Do not try to catch up after a long pause: pace from now on.
            self.next_due_ns =
                Some(due.max(monotonic_ns().saturating_sub(self.period_ns)) + self.period_ns);
        }
        let path = self.files[self.next_index].clone();
        self.next_index += 1;
        self.sequence += 1;
        let sequence = self.sequence;
        let captured_mono_ns = monotonic_ns();
        let captured_unix_ns = unix_ns();
        let image = image::open(&path)
            .map_err(|e| CaptureError::Corrupt {
                device: path.display().to_string(),
                sequence,
                reason: e.to_string(),
            })?
            .into_luma8();
        Ok(Frame {
            image,
            sequence,
            captured_mono_ns,
            captured_unix_ns,
            origin: Some(path.display().to_string()),
        })
    }
}

const IMAGE_EXTENSIONS: [&str; 4] = ["png", "jpg", "jpeg", "bmp"];

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        .unwrap_or(false)
}

/// The image files a folder or glob names, sorted by path.
pub fn list_images(pattern: &Path) -> Result<Vec<PathBuf>, String> {
    let text = pattern.to_string_lossy();
    let (dir, name_pattern) = if text.contains(['*', '?']) {
        let dir = pattern.parent().unwrap_or_else(|| Path::new("."));
        let name = pattern
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if dir.to_string_lossy().contains(['*', '?']) {
            return Err("wildcards are only allowed in the file name".into());
        }
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        (dir.to_path_buf(), Some(name))
    } else {
        (pattern.to_path_buf(), None)
    };
    let entries = std::fs::read_dir(&dir)
        .map_err(|e| format!("cannot read folder {}: {e}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot read folder {}: {e}", dir.display()))?;
        let path = entry.path();
        if !path.is_file() || !is_image(&path) {
            continue;
        }
        if let Some(p) = &name_pattern {
            let name = entry.file_name();
            if !wildcard_match(p.as_bytes(), name.to_string_lossy().as_bytes()) {
                continue;
            }
        }
        files.push(path);
    }
    files.sort();
    Ok(files)
}

/// `*` matches any run of bytes, `?` one byte; everything else literally.
pub fn wildcard_match(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == name[n]) {
            p += 1;
            n += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, n));
            p += 1;
        } else if let Some((sp, sn)) = star {
            p = sp + 1;
            n = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    while p < pattern.len() && pattern[p] == b'*' {
        p += 1;
    }
    p == pattern.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, Luma};

    #[test]
    fn wildcards() {
        assert!(wildcard_match(b"*.png", b"a.png"));
        assert!(wildcard_match(b"f??.png", b"f01.png"));
        assert!(!wildcard_match(b"f??.png", b"f1.png"));
        assert!(wildcard_match(b"*a*b", b"xxaxxb"));
        assert!(!wildcard_match(b"*a*b", b"xxaxxbc"));
        assert!(wildcard_match(b"*", b""));
    }

    #[test]
    fn replays_in_order_skips_corrupt_and_loops() {
        let dir = tempfile::tempdir().unwrap();
        for (i, v) in [10u8, 20, 30].iter().enumerate() {
            GrayImage::from_pixel(4, 3, Luma([*v]))
                .save(dir.path().join(format!("f{i}.png")))
                .unwrap();
        }
        std::fs::write(dir.path().join("f1b.png"), b"not a png").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        let mut src = ReplaySource::new(&dir.path().join("f*.png"), true, 0.0).unwrap();
        assert_eq!(src.files().len(), 4);
        let mut seen = Vec::new();
        let mut corrupt = 0;
        for _ in 0..8 {
            match src.next_frame() {
                Ok(f) => seen.push(f.image.get_pixel(0, 0).0[0]),
                Err(CaptureError::Corrupt { .. }) => corrupt += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(seen, vec![10, 20, 30, 10, 20, 30]);
        assert_eq!(corrupt, 2);

        let mut once = ReplaySource::new(dir.path(), false, 0.0).unwrap();
        let mut n = 0;
        loop {
            match once.next_frame() {
                Ok(_) | Err(CaptureError::Corrupt { .. }) => n += 1,
                Err(CaptureError::Exhausted { .. }) => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(n, 4);
    }

    #[test]
    fn missing_folder_is_named() {
        let e = ReplaySource::new(Path::new("/nonexistent/endface/*.png"), false, 0.0)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("/nonexistent/endface"), "{e}");
    }
}
