//! Helpers for the daemon's integration tests: marker frames, configs, a scripted live camera.
#![allow(dead_code)]

use endface::actuate::sim::{SimBackend, SimRecorder, Transition};
use endface::actuate::{OutputBackend, Outputs, Role};
use endface::capture::{monotonic_ns, unix_ns, CaptureError, Frame, Source};
use endface::daemon::marker::MarkerInspector;
use endface::daemon::{Daemon, DaemonConfig, ResultEvent, RunOptions, Summary, Verdict};
use image::{GrayImage, Luma};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Marker values of the marker inspector.
pub const PASS: u8 = 0;
pub const UNABLE: u8 = 100;
pub const MODEL_ERROR: u8 = 150;
pub const FAIL: u8 = 255;

pub fn verdict_of(marker: u8) -> Verdict {
    match marker {
        PASS => Verdict::Pass,
        FAIL => Verdict::Fail,
        _ => Verdict::Unable,
    }
}

/// A 64x48 frame whose top-left pixel is `marker` and whose (1, 0) pixel is `tag`.
pub fn marker_frame(marker: u8, tag: u8) -> GrayImage {
    let mut img = GrayImage::from_pixel(64, 48, Luma([40]));
    img.put_pixel(0, 0, Luma([marker]));
    img.put_pixel(1, 0, Luma([tag]));
    img
}

/// `f000.png`, `f001.png`, ... with the given markers.
pub fn write_frames(dir: &Path, markers: &[u8]) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    markers
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let p = dir.join(format!("f{i:03}.png"));
            marker_frame(*m, i as u8).save(&p).unwrap();
            p
        })
        .collect()
}

/// The simulated lines' section of [`config`] unless `extra` brings its own `[gpio]`.
pub const SIM_GPIO: &str = "[gpio]\nbackend = \"sim\"\nreject_delay_ms = 0\nreject_ms = 30\nstrobe_delay_ms = 5\nstrobe_ms = 10\n";

/// A station config: marker inspector, simulated GPIO with every line ([`SIM_GPIO`], or a
/// `[gpio]` section in `extra`), journal in `dir`. `extra` adds sections; a `[daemon]` section
/// in it must come last.
pub fn config(dir: &Path, extra: &str) -> DaemonConfig {
    let (extra, daemon_keys) = extra.split_once("[daemon]\n").unwrap_or((extra, ""));
    let gpio = if extra.contains("[gpio]\n") {
        ""
    } else {
        SIM_GPIO
    };
    let text = format!(
        "[station]\nname = \"test\"\n{gpio}\
         [journal]\npath = \"journal.db\"\n{extra}[daemon]\ninspector = \"marker\"\n{daemon_keys}"
    );
    DaemonConfig::from_toml_str(&text, "test.toml", dir).unwrap()
}

/// Build a daemon around `source` with the marker inspector and recorded simulated lines.
pub fn daemon(
    cfg: DaemonConfig,
    source: Box<dyn Source>,
    delay: Duration,
) -> (Daemon, SimRecorder) {
    daemon_with_lines(cfg, source, delay, |b| Box::new(b))
}

/// [`daemon`] with the simulated lines behind `wrap` (a slow or failing driver).
pub fn daemon_with_lines(
    cfg: DaemonConfig,
    source: Box<dyn Source>,
    delay: Duration,
    wrap: impl FnOnce(SimBackend) -> Box<dyn OutputBackend>,
) -> (Daemon, SimRecorder) {
    let (backend, rec) = SimBackend::from_config(&cfg.gpio).unwrap();
    let outputs = Outputs::new(wrap(backend), &cfg.gpio);
    let d = Daemon::new(cfg, source, Box::new(MarkerInspector::new(delay)), outputs).unwrap();
    (d, rec)
}

/// A running daemon on its own thread, its results collected.
pub struct Running {
    pub events: Arc<Mutex<Vec<ResultEvent>>>,
    pub handle: std::thread::JoinHandle<Summary>,
}

pub fn start(d: Daemon, max: Option<u64>) -> Running {
    let events: Arc<Mutex<Vec<ResultEvent>>> = Arc::default();
    let ev2 = events.clone();
    let handle = std::thread::spawn(move || {
        d.run(RunOptions {
            max_inspections: max,
            on_result: Some(Box::new(move |e: &ResultEvent| {
                ev2.lock().unwrap().push(e.clone())
            })),
            ..RunOptions::default()
        })
    });
    Running { events, handle }
}

impl Running {
    pub fn count(&self) -> usize {
        self.events.lock().unwrap().len()
    }
    pub fn wait_for(&self, n: usize) {
        wait_until(|| self.count() >= n, &format!("{n} results"));
    }
    pub fn events(&self) -> Vec<ResultEvent> {
        self.events.lock().unwrap().clone()
    }
}

/// Poll `cond` for up to 20 s (generous: the CI machine is shared).
pub fn wait_until(mut cond: impl FnMut() -> bool, what: &str) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// (role, active) pairs of a transition list.
pub fn levels(t: &[Transition]) -> Vec<(Role, bool)> {
    t.iter().map(|t| (t.role, t.active)).collect()
}

/// What a scripted live camera does next.
pub enum Step {
    /// A frame with this marker.
    Frame(u8),
    /// `next_frame` fails: camera lost.
    Lose,
    /// `open` fails this many times before it works again.
    RefuseOpen(u32),
}

/// A live camera that produces a frame every `period`, following a script (then repeating
/// its last frame step forever). Records every frame's capture time by sequence.
pub struct ScriptedLive {
    script: VecDeque<Step>,
    last_marker: u8,
    refuse_open: u32,
    period: Duration,
    sequence: u64,
    pub captured: Arc<Mutex<Vec<(u64, u64)>>>,
}

impl ScriptedLive {
    pub fn new(script: Vec<Step>, period: Duration) -> ScriptedLive {
        ScriptedLive {
            script: script.into(),
            last_marker: PASS,
            refuse_open: 0,
            period,
            sequence: 0,
            captured: Arc::default(),
        }
    }
}

impl Source for ScriptedLive {
    fn name(&self) -> String {
        "scripted live camera".into()
    }
    fn is_live(&self) -> bool {
        true
    }
    fn open(&mut self) -> Result<(), CaptureError> {
        if self.refuse_open > 0 {
            self.refuse_open -= 1;
            return Err(CaptureError::Lost {
                device: self.name(),
                reason: "no such device".into(),
            });
        }
        Ok(())
    }
    fn close(&mut self) {}
    fn next_frame(&mut self) -> Result<Frame, CaptureError> {
        std::thread::sleep(self.period);
        match self.script.pop_front() {
            Some(Step::Lose) => {
                return Err(CaptureError::Lost {
                    device: self.name(),
                    reason: "unplugged".into(),
                })
            }
            Some(Step::RefuseOpen(n)) => {
                self.refuse_open = n;
                return Err(CaptureError::Lost {
                    device: self.name(),
                    reason: "unplugged".into(),
                });
            }
            Some(Step::Frame(m)) => self.last_marker = m,
            None => {}
        }
        self.sequence += 1;
        let now = monotonic_ns();
        self.captured.lock().unwrap().push((self.sequence, now));
        Ok(Frame {
            image: marker_frame(self.last_marker, self.sequence as u8),
            sequence: self.sequence,
            captured_mono_ns: now,
            captured_unix_ns: unix_ns(),
            origin: None,
        })
    }
}
