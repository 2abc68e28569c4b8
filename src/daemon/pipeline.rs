//! The daemon's threads and how they hand frames, results and line changes to each other.
//!
//! In: a [`Source`], a [`FrameInspector`], [`Outputs`], a [`Journal`] and the config. Out:
//! journal rows, line transitions, [`ResultEvent`]s, a [`Summary`].
//!
//! ```text
//!  trigger threads ──(bounded: max_pending)──┐
//!  (gpio / stdin / socket / TriggerHandle)   ▼
//!  capture ──(bounded: queue; free-run: 1, live: newest only)──► inspect ×N ──(bounded)──► output
//!  (open, reconnect, match frame to trigger)              (one inspector each)  (in inspection order:
//!                                                                               journal, then lines)
//!                                                                                  │ (bounded, try)
//!                                                                                  ├──► image saver
//!                                                                                  └──► display
//!  supervisor (calling thread): signals, heartbeats → READY and the systemd watchdog
//! ```
//!
//! Rules the code keeps:
//! - with several inspect workers (`[daemon] workers`), each has its own inspector (its own
//!   model session); inspections are numbered when a worker takes a frame, and the output
//!   thread journals and signals them strictly in that order (a reorder window of
//!   `workers + queue` results bounds how far the fast workers may run ahead of a slow one);
//! - a live camera in free-run keeps only the newest frame (older ones are counted as
//!   dropped); a frame taken for a trigger is sent with a blocking send, never dropped;
//! - in trigger modes a live camera's frame is taken for the oldest waiting trigger when it
//!   was captured at or after the trigger; a non-live source renders/reads a frame per trigger;
//! - a result is journalled (committed, synchronous=FULL) before any line shows it; if the
//!   journal fails, nothing is signalled, READY drops and the daemon stops with an error;
//! - READY is high only while the camera delivers, the inspector works, every stage beats
//!   within `watchdog_ms`, and the daemon is not stopping; under a fault (camera, inspector,
//!   watchdog, GPIO) PASS drops with it and a PASS result is withheld from the lines;
//! - a stop request (SIGTERM/SIGINT) finishes the inspection in flight (and signals it),
//!   starts no new one, then puts every line in the safe state.

use super::display::{self, Framebuffer, Status};
use super::notify::Notifier;
use super::{DaemonConfig, FrameInspector, InspectionRecord, StageTimings, Verdict};
use crate::actuate::trigger::{Lockout, TriggerMode};
use crate::actuate::{result_plan, ActuateError, Outputs, Role, Signal};
use crate::capture::{monotonic_ns, sleep_until_mono, unix_ns, ErrorClass, Frame, Source};
use crate::journal::{ImageStore, Journal, JournalError, NewEntry, SaveImages};
use crossbeam_channel::{
    bounded, Receiver, RecvTimeoutError, SendTimeoutError, Sender, TrySendError,
};
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use tracing::{debug, error, info, warn};

/// How often idle threads wake up to beat and to look at the stop flag.
const TICK: Duration = Duration::from_millis(50);

/// Where a trigger came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TriggerSource {
    Gpio,
    Stdin,
    Socket,
    /// [`TriggerHandle::fire`] (tests, embedding programs).
    Api,
    FreeRun,
}

impl TriggerSource {
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerSource::Gpio => "gpio",
            TriggerSource::Stdin => "stdin",
            TriggerSource::Socket => "socket",
            TriggerSource::Api => "api",
            TriggerSource::FreeRun => "free-run",
        }
    }
}

/// One request to inspect.
#[derive(Debug, Clone)]
pub struct Trigger {
    /// Number within the run, from 1.
    pub seq: u64,
    /// `CLOCK_MONOTONIC` ns (the GPIO edge's kernel timestamp for GPIO triggers).
    pub at_mono_ns: u64,
    pub at_unix_ns: i64,
    pub source: TriggerSource,
}

/// A frame (or the lack of one) on its way to the inspector.
struct Job {
    trigger: Option<Trigger>,
    frame: Option<Frame>,
    no_frame_reason: Option<String>,
}

/// An inspected frame on its way to the journal and the lines.
struct Done {
    inspection: u64,
    trigger: Trigger,
    frame: Option<Frame>,
    record: InspectionRecord,
    inspect_started_mono_ns: u64,
}

/// Reported after each signalled result.
#[derive(Debug, Clone, Serialize)]
pub struct ResultEvent {
    pub inspection: u64,
    pub journal_id: i64,
    pub verdict: Verdict,
    pub reasons: Vec<String>,
    pub frame_seq: Option<u64>,
    pub frame_origin: Option<String>,
    pub trigger_seq: u64,
    pub trigger_source: TriggerSource,
    /// The verdict was PASS but the PASS line was not raised: a fault (camera, model,
    /// watchdog, GPIO) was active at that moment, and then nothing may read as PASS.
    pub pass_withheld: bool,
    /// When the trigger came (`CLOCK_MONOTONIC` ns).
    pub trigger_mono_ns: u64,
    /// Stage timings of this inspection (inspector's own plus `queue`, `inspect`, `journal`,
    /// `trigger_to_result`).
    pub timings_ms: StageTimings,
}

/// Why the daemon stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopReason {
    /// SIGTERM / SIGINT (or the caller's stop flag).
    Signal,
    /// `--frames N` inspections done.
    FramesDone,
    /// A replay came to its end.
    SourceEnded,
    /// Software triggers on stdin ended (EOF) and every trigger was served.
    TriggersClosed,
    /// Something the daemon cannot run without failed; see [`Summary::fatal`].
    Fatal,
}

/// Which failure stopped the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FatalKind {
    Model,
    Journal,
    Gpio,
    Camera,
    Thread,
}

/// Count, mean and max of a stage's time.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct StageStat {
    pub count: u64,
    pub mean_ms: f64,
    pub max_ms: f64,
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub run_id: String,
    pub inspections: u64,
    pub pass: u64,
    pub fail: u64,
    pub unable: u64,
    pub model_errors: u64,
    pub frames_captured: u64,
    /// Live free-run: older frames replaced by newer ones before inspection.
    pub frames_dropped: u64,
    /// Frames the camera driver dropped (sequence gaps).
    pub frames_dropped_by_device: u64,
    /// Corrupt frames skipped.
    pub frames_corrupt: u64,
    /// Live trigger modes: frames no trigger was waiting for.
    pub frames_unused: u64,
    /// Frames or triggers still queued when a stop request came.
    pub abandoned_at_stop: u64,
    pub triggers: u64,
    /// Triggers inside `min_interval_ms` of the previous one.
    pub triggers_ignored: u64,
    /// Triggers refused because `max_pending` were waiting.
    pub triggers_overrun: u64,
    pub camera_losses: u64,
    pub images_saved: u64,
    pub images_evicted: u64,
    /// Drift tests run (0 when the monitor is off).
    pub drift_tests: u64,
    /// Drift tests with p < alpha.
    pub drift_significant: u64,
    /// Times the monitor entered DRIFT.
    pub drift_episodes: u64,
    /// Monitor state at the end (`None`: monitor off).
    pub drift_state: Option<crate::drift::DriftState>,
    pub stage_ms: BTreeMap<String, StageStat>,
    pub stop_reason: StopReason,
    pub fatal: Option<(FatalKind, String)>,
}

#[derive(Default)]
struct Counters {
    inspections: AtomicU64,
    pass: AtomicU64,
    fail: AtomicU64,
    unable: AtomicU64,
    model_errors: AtomicU64,
    frames_captured: AtomicU64,
    frames_dropped: AtomicU64,
    frames_dropped_by_device: AtomicU64,
    frames_corrupt: AtomicU64,
    frames_unused: AtomicU64,
    abandoned: AtomicU64,
    triggers: AtomicU64,
    triggers_ignored: AtomicU64,
    triggers_overrun: AtomicU64,
    camera_losses: AtomicU64,
    images_saved: AtomicU64,
    images_evicted: AtomicU64,
    drift_tests: AtomicU64,
    drift_significant: AtomicU64,
    drift_episodes: AtomicU64,
    /// 0 = monitor off, 1 = ok, 2 = drift.
    drift_state: AtomicU64,
}

fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// The stages the watchdog watches.
#[derive(Debug, Clone, Copy)]
enum Stage {
    Capture = 0,
    Inspect = 1,
    Output = 2,
}

const STAGE_NAMES: [&str; 3] = ["capture", "inspect", "output"];

/// Most inspect workers a daemon runs (`[daemon] workers`).
pub const MAX_WORKERS: usize = 16;

/// State every thread sees.
struct Shared {
    outputs: Mutex<Outputs>,
    /// Hard stop: start nothing new.
    stop: AtomicBool,
    /// Software triggers will not come any more (stdin EOF).
    triggers_closed: AtomicBool,
    camera_ok: AtomicBool,
    model_ok: AtomicBool,
    watchdog_ok: AtomicBool,
    gpio_failed: AtomicBool,
    /// A result's lines are set and its STROBE pulse is not over ([`play_plan`]). Read and
    /// written only while `outputs` is locked.
    result_in_play: AtomicBool,
    /// An inspection began while a result was in play: its withdrawal of PASS/FAIL waits for
    /// the end of that result's STROBE ([`Shared::begin_inspection`]). Under `outputs`' lock.
    withdraw_after_play: AtomicBool,
    /// Triggers accepted and not yet answered.
    pending: AtomicU64,
    trigger_seq: AtomicU64,
    lockout: Mutex<Lockout>,
    trig_tx: Sender<Trigger>,
    beats_ms: [AtomicU64; 3],
    running: [AtomicBool; 3],
    /// Per inspect worker: the stage's beat is the oldest of the running workers' beats, so
    /// one stuck worker trips the watchdog even while the others work.
    worker_beats_ms: [AtomicU64; MAX_WORKERS],
    worker_running: [AtomicBool; MAX_WORKERS],
    stop_reason: Mutex<Option<StopReason>>,
    fatal: Mutex<Option<(FatalKind, String)>>,
    counters: Counters,
}

impl Shared {
    fn beat(&self, stage: Stage) {
        self.beats_ms[stage as usize].store(monotonic_ns() / 1_000_000 + 1, Ordering::Relaxed);
    }

    fn beat_worker(&self, worker: usize) {
        if let Some(b) = self.worker_beats_ms.get(worker) {
            b.store(monotonic_ns() / 1_000_000 + 1, Ordering::Relaxed);
        }
    }

    /// The stage's last beat (ms, 0 = none yet); for `inspect`, the oldest running worker's.
    fn stage_beat(&self, i: usize) -> u64 {
        if i != Stage::Inspect as usize {
            return self.beats_ms[i].load(Ordering::Relaxed);
        }
        let mut oldest = u64::MAX;
        for (b, r) in self.worker_beats_ms.iter().zip(&self.worker_running) {
            if r.load(Ordering::SeqCst) {
                oldest = oldest.min(b.load(Ordering::Relaxed));
            }
        }
        if oldest == u64::MAX {
            self.beats_ms[i].load(Ordering::Relaxed)
        } else {
            oldest
        }
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn set_reason(&self, reason: StopReason) {
        let mut r = self.stop_reason.lock().unwrap_or_else(|e| e.into_inner());
        if r.is_none() {
            *r = Some(reason);
        }
    }

    fn request_stop(&self, reason: StopReason) {
        self.set_reason(reason);
        self.stop.store(true, Ordering::SeqCst);
    }

    /// A failure the daemon cannot run on: log it (once here), READY low, stop.
    fn fatal(&self, kind: FatalKind, message: String) {
        error!("{message}");
        {
            let mut f = self.fatal.lock().unwrap_or_else(|e| e.into_inner());
            if f.is_none() {
                *f = Some((kind, message));
            }
        }
        self.request_stop(StopReason::Fatal);
        self.update_ready();
    }

    /// Apply a change to the lines; a GPIO failure is fatal (the lines can no longer be
    /// trusted; exiting releases them to their wired defaults).
    fn drive(&self, f: impl FnOnce(&mut Outputs) -> Result<(), ActuateError>) {
        let result = {
            let mut out = self.outputs.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut out)
        };
        if let Err(e) = result {
            if !self.gpio_failed.swap(true, Ordering::SeqCst) {
                self.fatal(FatalKind::Gpio, format!("{e}: stopping, lines released"));
            }
        }
    }

    /// An inspection begins: BUSY high and the previous result withdrawn (PASS and FAIL low).
    /// While a result is in play — its lines set, its STROBE not yet over — the withdrawal
    /// waits for the end of the strobe: a PLC that latches PASS/FAIL on STROBE must find them
    /// as the result set them for the whole pulse, even when another worker (or a trigger)
    /// starts the next inspection meanwhile.
    fn begin_inspection(&self) {
        self.drive(|o| {
            if self.result_in_play.load(Ordering::SeqCst) {
                self.withdraw_after_play.store(true, Ordering::SeqCst);
                o.set(Role::Busy, true, None)
            } else {
                o.begin(None)
            }
        });
    }

    /// Camera, model, watchdog or GPIO failure: READY low and nothing may read as PASS.
    fn faulted(&self) -> bool {
        !(self.camera_ok.load(Ordering::SeqCst)
            && self.model_ok.load(Ordering::SeqCst)
            && self.watchdog_ok.load(Ordering::SeqCst))
            || self.gpio_failed.load(Ordering::SeqCst)
    }

    fn is_ready(&self) -> bool {
        !self.faulted() && !self.stopping()
    }

    /// READY follows [`Shared::is_ready`]. Under a fault PASS drops too; when merely
    /// stopping, the inspection in flight may still be signalled in full.
    fn update_ready(&self) {
        if self.gpio_failed.load(Ordering::SeqCst) {
            // Best effort only: do not recurse into `fatal` again.
            let mut out = self.outputs.lock().unwrap_or_else(|e| e.into_inner());
            let _ = out.fault();
            return;
        }
        let faulted = self.faulted();
        let stopping = self.stopping();
        self.drive(|o| {
            if faulted {
                o.fault()
            } else {
                o.set(Role::Ready, !stopping, None)
            }
        });
    }

    /// Register a trigger: lock-out, BUSY high, previous result withdrawn, queued for a frame.
    fn accept_trigger(&self, source: TriggerSource, at_mono_ns: u64) -> Option<u64> {
        if self.stopping() {
            return None;
        }
        let accepted = self
            .lockout
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .accept(at_mono_ns);
        if !accepted {
            inc(&self.counters.triggers_ignored);
            debug!(
                source = source.as_str(),
                "trigger inside min_interval_ms ignored"
            );
            return None;
        }
        let seq = self.trigger_seq.fetch_add(1, Ordering::SeqCst) + 1;
        let trigger = Trigger {
            seq,
            at_mono_ns,
            at_unix_ns: unix_ns(),
            source,
        };
        self.pending.fetch_add(1, Ordering::SeqCst);
        match self.trig_tx.try_send(trigger) {
            Ok(()) => {
                inc(&self.counters.triggers);
                self.begin_inspection();
                debug!(seq, source = source.as_str(), "trigger");
                Some(seq)
            }
            Err(_) => {
                self.pending.fetch_sub(1, Ordering::SeqCst);
                inc(&self.counters.triggers_overrun);
                warn!(
                    seq,
                    source = source.as_str(),
                    "trigger refused: too many triggers waiting (trigger.max_pending)"
                );
                None
            }
        }
    }
}

/// Fires software triggers into a running daemon (tests, embedding programs).
#[derive(Clone)]
pub struct TriggerHandle {
    shared: Arc<Shared>,
}

impl TriggerHandle {
    /// Trigger an inspection now; the trigger's number, or `None` when it was refused
    /// (lock-out, queue full, stopping).
    pub fn fire(&self) -> Option<u64> {
        self.shared
            .accept_trigger(TriggerSource::Api, monotonic_ns())
    }
}

/// Called on the output thread after each result is signalled.
pub type ResultCallback = Box<dyn FnMut(&ResultEvent) + Send>;

/// Options of one run.
#[derive(Default)]
pub struct RunOptions {
    /// Stop after this many inspections (`--frames N`).
    pub max_inspections: Option<u64>,
    /// Called (on the output thread) after each result is signalled.
    pub on_result: Option<ResultCallback>,
    /// Send `READY=1` / `WATCHDOG=1` / `STOPPING=1` to systemd when it listens.
    pub notify: bool,
    /// Software triggers from stdin (`[trigger] mode = "software"` without a socket).
    pub stdin_triggers: bool,
    /// Called once, on the supervising thread, the first time READY goes high (e.g. to
    /// commit an update bundle that is on trial).
    pub on_ready: Option<Box<dyn FnOnce() + Send>>,
}

/// A configured daemon, ready to run.
pub struct Daemon {
    cfg: DaemonConfig,
    source: Box<dyn Source>,
    /// One per inspect worker (at least one).
    inspectors: Vec<Box<dyn FrameInspector>>,
    journal: Journal,
    images: Option<ImageStore>,
    shared: Arc<Shared>,
    trig_rx: Receiver<Trigger>,
    stop_flag: Arc<AtomicBool>,
    run_id: String,
    drift: Option<crate::drift::DriftMonitor>,
    #[cfg(feature = "gpio")]
    gpio_trigger: Option<crate::actuate::trigger::GpioTrigger>,
}

/// Setting up the daemon failed.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Gpio(#[from] ActuateError),
    #[error("{0}")]
    Setup(String),
}

impl Daemon {
    /// Put the lines in the safe state, open the journal (and the image folder), and the
    /// GPIO trigger input in GPIO mode. The source is opened by the run (and reopened after
    /// a loss).
    pub fn new(
        cfg: DaemonConfig,
        source: Box<dyn Source>,
        inspector: Box<dyn FrameInspector>,
        mut outputs: Outputs,
    ) -> Result<Daemon, DaemonError> {
        outputs.safe_state()?;
        let journal = Journal::open(&cfg.journal.path)?;
        let images = match cfg.journal.save_images {
            SaveImages::None => None,
            _ => Some(ImageStore::open(
                &cfg.journal.images_dir(),
                cfg.journal.image_quota_mb.saturating_mul(1 << 20),
            )?),
        };
        #[cfg(feature = "gpio")]
        let gpio_trigger = if cfg.trigger.mode == TriggerMode::Gpio {
            Some(crate::actuate::trigger::GpioTrigger::open(
                &cfg.trigger,
                cfg.gpio.chip.as_deref(),
            )?)
        } else {
            None
        };
        #[cfg(not(feature = "gpio"))]
        if cfg.trigger.mode == TriggerMode::Gpio {
            return Err(DaemonError::Setup(
                "trigger.mode = \"gpio\" needs a build with the `gpio` feature".into(),
            ));
        }
        let (trig_tx, trig_rx) = bounded(cfg.trigger.max_pending);
        let run_id = format!("{}-{}", unix_ns() / 1_000_000_000, std::process::id());
        let shared = Arc::new(Shared {
            outputs: Mutex::new(outputs),
            stop: AtomicBool::new(false),
            triggers_closed: AtomicBool::new(false),
            camera_ok: AtomicBool::new(false),
            model_ok: AtomicBool::new(true),
            watchdog_ok: AtomicBool::new(true),
            gpio_failed: AtomicBool::new(false),
            result_in_play: AtomicBool::new(false),
            withdraw_after_play: AtomicBool::new(false),
            pending: AtomicU64::new(0),
            trigger_seq: AtomicU64::new(0),
            lockout: Mutex::new(Lockout::new(cfg.trigger.min_interval_ms)),
            trig_tx,
            beats_ms: Default::default(),
            running: Default::default(),
            worker_beats_ms: std::array::from_fn(|_| AtomicU64::new(0)),
            worker_running: std::array::from_fn(|_| AtomicBool::new(false)),
            stop_reason: Mutex::new(None),
            fatal: Mutex::new(None),
            counters: Counters::default(),
        });
        Ok(Daemon {
            cfg,
            source,
            inspectors: vec![inspector],
            journal,
            images,
            shared,
            trig_rx,
            stop_flag: Arc::new(AtomicBool::new(false)),
            run_id,
            drift: None,
            #[cfg(feature = "gpio")]
            gpio_trigger,
        })
    }

    /// Run one more inspect worker with this inspector (`[daemon] workers`: the caller builds
    /// one inspector per worker, each with its own model session). Results are still journalled
    /// and signalled in inspection order. At most [`MAX_WORKERS`] in all.
    pub fn add_inspector(&mut self, inspector: Box<dyn FrameInspector>) -> Result<(), DaemonError> {
        if self.inspectors.len() >= MAX_WORKERS {
            return Err(DaemonError::Setup(format!(
                "more than {MAX_WORKERS} inspect workers (daemon.workers)"
            )));
        }
        self.inspectors.push(inspector);
        Ok(())
    }

    /// Replace every inspector (one worker each; 1 to [`MAX_WORKERS`]).
    pub fn replace_inspectors(
        &mut self,
        inspectors: Vec<Box<dyn FrameInspector>>,
    ) -> Result<(), DaemonError> {
        if inspectors.is_empty() || inspectors.len() > MAX_WORKERS {
            return Err(DaemonError::Setup(format!(
                "{} inspect workers: must be 1..={MAX_WORKERS} (daemon.workers)",
                inspectors.len()
            )));
        }
        self.inspectors = inspectors;
        Ok(())
    }

    /// How many inspect workers the run starts.
    pub fn workers(&self) -> usize {
        self.inspectors.len()
    }

    /// Watch the input for drift with this monitor (built from the calibration reference,
    /// `[drift]`); `None` leaves it off.
    pub fn set_drift_monitor(&mut self, monitor: Option<crate::drift::DriftMonitor>) {
        self.drift = monitor;
    }

    /// Software triggers for this daemon.
    pub fn trigger_handle(&self) -> TriggerHandle {
        TriggerHandle {
            shared: self.shared.clone(),
        }
    }

    /// Set this flag (e.g. from a signal handler) to stop: the inspection in flight is
    /// finished and signalled, then every line goes to the safe state.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop_flag.clone()
    }

    /// This run's id (journalled with every row).
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Run until stopped; returns what happened. Lines are in the safe state on return.
    pub fn run(self, mut opts: RunOptions) -> Summary {
        let Daemon {
            cfg,
            source,
            inspectors,
            journal,
            images,
            shared: sh,
            trig_rx,
            stop_flag,
            run_id,
            drift,
            #[cfg(feature = "gpio")]
            gpio_trigger,
        } = self;
        if drift.is_some() {
            sh.counters.drift_state.store(1, Ordering::Relaxed);
        }
        let notifier = if opts.notify {
            Notifier::from_env()
        } else {
            Notifier::disabled()
        };
        let mode = cfg.trigger.mode;
        let free_run = mode == TriggerMode::FreeRun;
        info!(
            run_id = %run_id,
            source = %source.name(),
            inspector = %inspectors.first().map(|i| i.describe()).unwrap_or_default(),
            workers = inspectors.len(),
            gpio = %sh.outputs.lock().unwrap_or_else(|e| e.into_inner()).describe(),
            trigger = ?mode,
            journal = %journal.path().display(),
            "station daemon starting"
        );
        // Free-run inspects the newest frame: nothing is gained by frames waiting in line.
        let queue = if free_run { 1 } else { cfg.daemon.queue };
        let (job_tx, job_rx) = bounded::<Job>(queue);
        let (done_tx, done_rx) = bounded::<Done>(cfg.daemon.queue);
        // The reorder window: a worker takes a place before it takes a frame, the output
        // thread gives it back once that inspection is signalled. At most `window` results
        // are ever between dispatch and signal, so the output's reorder ring never overflows.
        let n_workers = inspectors.len().clamp(1, MAX_WORKERS);
        let window = n_workers + cfg.daemon.queue;
        let (place_tx, place_rx) = bounded::<()>(window);
        for _ in 0..window {
            let _ = place_tx.try_send(());
        }
        let (baton_tx, baton_rx) = bounded::<Dispatch>(1);
        let _ = baton_tx.try_send(Dispatch {
            started: 0,
            next_tick: monotonic_ns(),
        });
        let (image_tx, image_rx) = bounded::<(i64, String, image::GrayImage)>(4);
        let (status_tx, status_rx) = bounded::<Status>(1);
        // Recycling, so that the steady state allocates nothing per frame: records go back
        // from output to inspect, frames' pixels back to the source. Bounded (a full channel
        // drops the buffer); every frame and record in flight fits.
        let in_flight = queue + cfg.daemon.queue + window + 8;
        let identity = inspectors.first().map(|i| i.identity()).unwrap_or_default();
        let records = RecordPool::new(in_flight, &identity);
        let (pixels_tx, pixels_rx) = bounded::<image::GrayImage>(in_flight);

        let mut workers: Vec<(Stage, JoinHandle<()>)> = Vec::new();
        let mut helpers: Vec<JoinHandle<()>> = Vec::new();
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(format!("endface-{name}"))
                .spawn(f)
        };
        let mut spawn_failed = None;

        for (i, r) in sh.running.iter().enumerate() {
            r.store(true, Ordering::SeqCst);
            sh.beats_ms[i].store(0, Ordering::SeqCst);
        }
        for w in 0..MAX_WORKERS {
            sh.worker_beats_ms[w].store(0, Ordering::SeqCst);
            sh.worker_running[w].store(w < n_workers, Ordering::SeqCst);
        }
        let live_workers = Arc::new(std::sync::atomic::AtomicUsize::new(n_workers));
        // Capture.
        {
            let sh2 = sh.clone();
            let cam = cfg.camera.clone();
            let job_rx2 = job_rx.clone();
            let f = Box::new(move || {
                capture_loop(
                    &sh2, source, &cam, mode, trig_rx, job_tx, job_rx2, pixels_rx,
                );
                sh2.running[Stage::Capture as usize].store(false, Ordering::SeqCst);
            });
            match spawn("capture", f) {
                Ok(h) => workers.push((Stage::Capture, h)),
                Err(e) => spawn_failed = Some(e),
            }
        }
        // Inspect workers.
        for (w, inspector) in inspectors.into_iter().take(n_workers).enumerate() {
            let sh2 = sh.clone();
            let live = live_workers.clone();
            let ctx = InspectCtx {
                worker: w,
                job_rx: job_rx.clone(),
                done_tx: done_tx.clone(),
                records: records.clone(),
                baton_tx: baton_tx.clone(),
                baton_rx: baton_rx.clone(),
                places: place_rx.clone(),
                free_run,
                period_ns: (1e9 / cfg.trigger.rate_hz.max(1e-3)) as u64,
                max: opts.max_inspections,
                max_errors: cfg.daemon.max_model_errors,
            };
            let f = Box::new(move || {
                // Runs on return and on a panic: a worker that dies while the daemon is not
                // stopping leaves a gap in the inspection order; stop (systemd restarts us).
                struct Exit<'a>(&'a Shared, usize, Arc<std::sync::atomic::AtomicUsize>);
                impl Drop for Exit<'_> {
                    fn drop(&mut self) {
                        let (sh, w) = (self.0, self.1);
                        if std::thread::panicking() {
                            sh.fatal(
                                FatalKind::Thread,
                                format!("inspect worker {w} panicked: stopping"),
                            );
                        }
                        sh.worker_running[w].store(false, Ordering::SeqCst);
                        if self.2.fetch_sub(1, Ordering::SeqCst) == 1 {
                            sh.running[Stage::Inspect as usize].store(false, Ordering::SeqCst);
                        }
                    }
                }
                let _exit = Exit(&sh2, w, live);
                inspect_loop(&sh2, inspector, ctx);
            });
            let name = if n_workers == 1 {
                "inspect".to_string()
            } else {
                format!("inspect-{w}")
            };
            match spawn(&name, f) {
                Ok(h) => workers.push((Stage::Inspect, h)),
                Err(e) => spawn_failed = Some(e),
            }
        }
        drop(job_rx);
        drop(done_tx);
        // Output.
        let stage_stats: Arc<Mutex<BTreeMap<String, StageStat>>> = Arc::default();
        {
            let sh2 = sh.clone();
            let ctx = OutputContext {
                station: cfg.station.clone(),
                profile: cfg.profile.clone(),
                run_id: run_id.clone(),
                save: cfg.journal.save_images,
                images_enabled: images.is_some(),
                display_enabled: cfg.display.framebuffer.is_some(),
                stats: stage_stats.clone(),
                drift,
            };
            let on_result = opts.on_result.take();
            let recycle = Recycle {
                records,
                pixels: pixels_tx.clone(),
                places: place_tx,
                window,
            };
            let f = Box::new(move || {
                output_loop(
                    &sh2, journal, ctx, done_rx, image_tx, status_tx, recycle, on_result,
                );
                sh2.running[Stage::Output as usize].store(false, Ordering::SeqCst);
            });
            match spawn("output", f) {
                Ok(h) => workers.push((Stage::Output, h)),
                Err(e) => spawn_failed = Some(e),
            }
        }
        // Image saver.
        if let Some(store) = images {
            let sh2 = sh.clone();
            let db = cfg.journal.path.clone();
            let f = Box::new(move || image_saver(&sh2, store, &db, image_rx, pixels_tx));
            match spawn("images", f) {
                Ok(h) => helpers.push(h),
                Err(e) => spawn_failed = Some(e),
            }
        }
        // Display.
        if let Some(fb) = cfg.display.framebuffer.clone() {
            let refresh = Duration::from_millis(cfg.display.refresh_ms);
            let f = Box::new(move || display_loop(&fb, refresh, status_rx));
            match spawn("display", f) {
                Ok(h) => helpers.push(h),
                Err(e) => spawn_failed = Some(e),
            }
        }
        // Trigger inputs.
        let mut trigger_threads: Vec<JoinHandle<()>> = Vec::new();
        match mode {
            TriggerMode::FreeRun => {}
            TriggerMode::Software => {
                let sh2 = sh.clone();
                if let Some(path) = cfg.trigger.socket.clone() {
                    match spawn("socket", Box::new(move || socket_triggers(&sh2, &path))) {
                        Ok(h) => trigger_threads.push(h),
                        Err(e) => spawn_failed = Some(e),
                    }
                } else if opts.stdin_triggers {
                    match spawn("stdin", Box::new(move || stdin_triggers(&sh2))) {
                        Ok(h) => trigger_threads.push(h),
                        Err(e) => spawn_failed = Some(e),
                    }
                }
            }
            TriggerMode::Gpio =>
            {
                #[cfg(feature = "gpio")]
                if let Some(input) = gpio_trigger {
                    let sh2 = sh.clone();
                    match spawn("gpio-trigger", Box::new(move || gpio_triggers(&sh2, input))) {
                        Ok(h) => trigger_threads.push(h),
                        Err(e) => spawn_failed = Some(e),
                    }
                }
            }
        }
        if let Some(e) = spawn_failed {
            sh.fatal(
                FatalKind::Thread,
                format!("cannot start a pipeline thread: {e}"),
            );
        }

        // Supervise.
        let watchdog_ms = cfg.daemon.watchdog_ms;
        let ping_every_ms = notifier
            .watchdog_period()
            .map(|p| (p.as_millis() as u64 / 3).max(1))
            .unwrap_or(1000);
        let mut last_ping_ms = 0u64;
        let mut sent_ready = false;
        let mut stop_logged = false;
        let mut on_ready = opts.on_ready.take();
        loop {
            std::thread::sleep(Duration::from_millis(20));
            if stop_flag.load(Ordering::SeqCst) && !stop_logged {
                stop_logged = true;
                if !sh.stopping() {
                    info!("stop requested: finishing the inspection in flight, then safe state");
                }
                sh.request_stop(StopReason::Signal);
            }
            let now_ms = monotonic_ns() / 1_000_000;
            let mut stale = Vec::new();
            let mut all_beat = true;
            for (i, name) in STAGE_NAMES.iter().enumerate() {
                if !sh.running[i].load(Ordering::SeqCst) {
                    continue;
                }
                let beat = sh.stage_beat(i);
                if beat == 0 {
                    all_beat = false;
                } else if now_ms.saturating_sub(beat) > watchdog_ms {
                    stale.push((*name, now_ms.saturating_sub(beat)));
                }
            }
            if stale.is_empty() {
                if !sh.watchdog_ok.swap(true, Ordering::SeqCst) {
                    info!("watchdog: every stage is beating again");
                }
                if sent_ready && now_ms.saturating_sub(last_ping_ms) >= ping_every_ms {
                    notifier.notify("WATCHDOG=1");
                    last_ping_ms = now_ms;
                }
            } else if sh.watchdog_ok.swap(false, Ordering::SeqCst) {
                let list: Vec<String> = stale
                    .iter()
                    .map(|(n, ms)| format!("{n} silent {ms} ms"))
                    .collect();
                error!("watchdog missed ({}): READY low", list.join(", "));
            }
            sh.update_ready();
            if sh.is_ready() {
                if let Some(f) = on_ready.take() {
                    f();
                }
            }
            if !sent_ready && all_beat {
                sent_ready = true;
                notifier.notify("READY=1\nSTATUS=inspecting");
                info!(ready = sh.is_ready(), "pipeline running");
            }
            if workers.iter().all(|(_, h)| h.is_finished()) {
                break;
            }
        }
        sh.stop.store(true, Ordering::SeqCst);
        notifier.notify("STOPPING=1");
        for (stage, h) in workers {
            if h.join().is_err() {
                sh.fatal(
                    FatalKind::Thread,
                    format!("the {} thread panicked", STAGE_NAMES[stage as usize]),
                );
            }
        }
        for h in trigger_threads.into_iter().chain(helpers) {
            let _ = h.join();
        }
        {
            let mut out = sh.outputs.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = out.safe_state() {
                error!("cannot put every line in the safe state: {e}");
            }
        }
        let c = &sh.counters;
        let reason = sh
            .stop_reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .unwrap_or(StopReason::Signal);
        let summary = Summary {
            run_id,
            inspections: get(&c.inspections),
            pass: get(&c.pass),
            fail: get(&c.fail),
            unable: get(&c.unable),
            model_errors: get(&c.model_errors),
            frames_captured: get(&c.frames_captured),
            frames_dropped: get(&c.frames_dropped),
            frames_dropped_by_device: get(&c.frames_dropped_by_device),
            frames_corrupt: get(&c.frames_corrupt),
            frames_unused: get(&c.frames_unused),
            abandoned_at_stop: get(&c.abandoned),
            triggers: get(&c.triggers),
            triggers_ignored: get(&c.triggers_ignored),
            triggers_overrun: get(&c.triggers_overrun),
            camera_losses: get(&c.camera_losses),
            images_saved: get(&c.images_saved),
            images_evicted: get(&c.images_evicted),
            drift_tests: get(&c.drift_tests),
            drift_significant: get(&c.drift_significant),
            drift_episodes: get(&c.drift_episodes),
            drift_state: match get(&c.drift_state) {
                1 => Some(crate::drift::DriftState::Ok),
                2 => Some(crate::drift::DriftState::Drift),
                _ => None,
            },
            stage_ms: stage_stats
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            stop_reason: reason,
            fatal: sh.fatal.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        };
        info!(
            inspections = summary.inspections,
            pass = summary.pass,
            fail = summary.fail,
            unable = summary.unable,
            reason = ?summary.stop_reason,
            "station daemon stopped; lines in the safe state"
        );
        summary
    }
}

/// Send a job, blocking, but give up when a hard stop comes (counted as abandoned).
fn send_blocking(sh: &Shared, tx: &Sender<Job>, mut job: Job, stage: Stage) -> bool {
    loop {
        sh.beat(stage);
        match tx.send_timeout(job, TICK) {
            Ok(()) => return true,
            Err(SendTimeoutError::Timeout(j)) => {
                if sh.stopping() {
                    inc(&sh.counters.abandoned);
                    return false;
                }
                job = j;
            }
            Err(SendTimeoutError::Disconnected(_)) => return false,
        }
    }
}

/// Triggers that cannot get a frame (camera lost) are answered UNABLE instead of waiting.
fn fail_triggers(
    sh: &Shared,
    pending: &mut VecDeque<Trigger>,
    trig_rx: &Receiver<Trigger>,
    tx: &Sender<Job>,
    reason: &str,
) {
    while let Ok(t) = trig_rx.try_recv() {
        pending.push_back(t);
    }
    while let Some(t) = pending.pop_front() {
        let job = Job {
            trigger: Some(t),
            frame: None,
            no_frame_reason: Some(reason.to_string()),
        };
        if !send_blocking(sh, tx, job, Stage::Capture) {
            break;
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn capture_loop(
    sh: &Shared,
    mut source: Box<dyn Source>,
    cam: &crate::capture::CameraConfig,
    mode: TriggerMode,
    trig_rx: Receiver<Trigger>,
    job_tx: Sender<Job>,
    newest_rx: Receiver<Job>,
    pixels_rx: Receiver<image::GrayImage>,
) {
    let live = source.is_live();
    let triggered = mode != TriggerMode::FreeRun;
    let mut open = false;
    let mut ever_open = false;
    let mut backoff_ms = cam.reconnect_initial_ms;
    let mut outage_logged = false;
    let mut pending: VecDeque<Trigger> = VecDeque::new();
    let no_camera = format!("no frame: camera {} unavailable", source.name());
    loop {
        sh.beat(Stage::Capture);
        if sh.stopping() {
            inc_by(&sh.counters.abandoned, pending.len() as u64);
            break;
        }
        if !open {
            match source.open() {
                Ok(()) => {
                    open = true;
                    backoff_ms = cam.reconnect_initial_ms;
                    sh.camera_ok.store(true, Ordering::SeqCst);
                    if ever_open {
                        info!(camera = %source.name(), "camera back: READY restored");
                    }
                    ever_open = true;
                    outage_logged = false;
                    sh.update_ready();
                }
                Err(e) => {
                    sh.camera_ok.store(false, Ordering::SeqCst);
                    sh.update_ready();
                    if !outage_logged {
                        error!(
                            "{e}: READY low, retrying with back-off up to {} ms",
                            cam.reconnect_max_ms
                        );
                        outage_logged = true;
                    } else {
                        debug!("{e}; retry in {backoff_ms} ms");
                    }
                    if !live {
                        // A replay or synthetic camera that cannot open will not get better.
                        sh.fatal(FatalKind::Camera, format!("{e}"));
                        break;
                    }
                    let until = monotonic_ns() + backoff_ms * 1_000_000;
                    while monotonic_ns() < until && !sh.stopping() {
                        sh.beat(Stage::Capture);
                        if triggered {
                            fail_triggers(sh, &mut pending, &trig_rx, &job_tx, &no_camera);
                        }
                        std::thread::sleep(TICK);
                    }
                    backoff_ms = (backoff_ms * 2).min(cam.reconnect_max_ms);
                    continue;
                }
            }
        }
        if triggered {
            while let Ok(t) = trig_rx.try_recv() {
                pending.push_back(t);
            }
            if !live && pending.is_empty() {
                // A non-live source makes a frame per trigger: wait for one.
                match trig_rx.recv_timeout(TICK) {
                    Ok(t) => pending.push_back(t),
                    Err(RecvTimeoutError::Timeout) => {
                        if sh.triggers_closed.load(Ordering::SeqCst) && trig_rx.is_empty() {
                            sh.set_reason(StopReason::TriggersClosed);
                            break;
                        }
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            if live
                && pending.is_empty()
                && sh.triggers_closed.load(Ordering::SeqCst)
                && trig_rx.is_empty()
            {
                sh.set_reason(StopReason::TriggersClosed);
                break;
            }
        }
        while let Ok(pixels) = pixels_rx.try_recv() {
            source.recycle(pixels);
        }
        match source.next_frame() {
            Ok(frame) => {
                inc(&sh.counters.frames_captured);
                if !sh.camera_ok.swap(true, Ordering::SeqCst) {
                    sh.update_ready();
                }
                debug!(seq = frame.sequence, "frame");
                if !triggered {
                    let job = Job {
                        trigger: None,
                        frame: Some(frame),
                        no_frame_reason: None,
                    };
                    if live {
                        // Newest only: replace a frame nobody has picked up yet.
                        if let Err(TrySendError::Full(job)) = job_tx.try_send(job) {
                            if newest_rx.try_recv().is_ok() {
                                inc(&sh.counters.frames_dropped);
                            }
                            if job_tx.try_send(job).is_err() {
                                inc(&sh.counters.frames_dropped);
                            }
                        }
                    } else if !send_blocking(sh, &job_tx, job, Stage::Capture) {
                        break;
                    }
                } else {
                    // Triggers that came while this frame was being captured count too.
                    while let Ok(t) = trig_rx.try_recv() {
                        pending.push_back(t);
                    }
                    let take = match pending.front() {
                        Some(t) => !live || frame.captured_mono_ns >= t.at_mono_ns,
                        None => false,
                    };
                    if take {
                        let trigger = pending.pop_front();
                        let job = Job {
                            trigger,
                            frame: Some(frame),
                            no_frame_reason: None,
                        };
                        if !send_blocking(sh, &job_tx, job, Stage::Capture) {
                            break;
                        }
                    } else {
                        inc(&sh.counters.frames_unused);
                    }
                }
            }
            Err(e) => match e.class() {
                ErrorClass::SkipFrame => {
                    inc(&sh.counters.frames_corrupt);
                    warn!("{e}");
                }
                ErrorClass::Reconnect => {
                    inc(&sh.counters.camera_losses);
                    sh.camera_ok.store(false, Ordering::SeqCst);
                    sh.update_ready();
                    error!("{e}: READY low, reconnecting");
                    outage_logged = true;
                    source.close();
                    open = false;
                    if triggered {
                        fail_triggers(sh, &mut pending, &trig_rx, &job_tx, &no_camera);
                    }
                }
                ErrorClass::Ended => {
                    info!("{e}");
                    sh.set_reason(StopReason::SourceEnded);
                    if triggered {
                        fail_triggers(
                            sh,
                            &mut pending,
                            &trig_rx,
                            &job_tx,
                            "no frame: the replay has ended",
                        );
                    }
                    break;
                }
            },
        }
        sh.counters
            .frames_dropped_by_device
            .store(source.dropped_by_device(), Ordering::Relaxed);
    }
    source.close();
}

fn inc_by(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// Numbering and pacing shared by the inspect workers: a baton passed through a channel of
/// one, so that a worker waiting for its turn waits with a timeout and keeps beating (a mutex
/// held across the wait for a frame would silence the others for as long as a station idles).
#[derive(Clone, Copy)]
struct Dispatch {
    /// Inspections started so far (the last one's number).
    started: u64,
    /// Free-run: when the next inspection may start (`CLOCK_MONOTONIC` ns).
    next_tick: u64,
}

/// The baton while a worker holds it; handed back when dropped (on every `break`,
/// `continue` and panic too).
struct Baton<'a> {
    state: Dispatch,
    home: &'a Sender<Dispatch>,
}

impl Drop for Baton<'_> {
    fn drop(&mut self) {
        let _ = self.home.try_send(self.state);
    }
}

/// What one inspect worker needs besides its inspector.
struct InspectCtx {
    worker: usize,
    job_rx: Receiver<Job>,
    done_tx: Sender<Done>,
    records: Arc<RecordPool>,
    baton_tx: Sender<Dispatch>,
    baton_rx: Receiver<Dispatch>,
    /// Places in the reorder window (see `Daemon::run`).
    places: Receiver<()>,
    free_run: bool,
    period_ns: u64,
    max: Option<u64>,
    max_errors: u32,
}

fn inspect_loop(sh: &Shared, mut inspector: Box<dyn FrameInspector>, ctx: InspectCtx) {
    let w = ctx.worker;
    let mut consecutive_errors = 0u32;
    let (model_sha256, provider) = inspector.identity();
    // Reason strings of UNABLE records made here (see `super::set_reasons`).
    let mut spare = Vec::new();
    let mut have_place = false;
    loop {
        sh.beat_worker(w);
        if sh.stopping() {
            break;
        }
        // A place in the reorder window first: a worker never takes a frame it could not
        // hand on.
        if !have_place {
            match ctx.places.recv_timeout(TICK) {
                Ok(()) => have_place = true,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        // Then the next frame and its number, one worker at a time.
        let (inspection, trigger, job) = {
            let mut d = match ctx.baton_rx.recv_timeout(TICK) {
                Ok(state) => Baton {
                    state,
                    home: &ctx.baton_tx,
                },
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            if let Some(max) = ctx.max {
                if d.state.started >= max {
                    sh.request_stop(StopReason::FramesDone);
                    break;
                }
            }
            if ctx.free_run {
                let now = monotonic_ns();
                if now < d.state.next_tick {
                    let wait = (d.state.next_tick - now).min(TICK.as_nanos() as u64);
                    drop(d);
                    std::thread::sleep(Duration::from_nanos(wait));
                    continue;
                }
            }
            let mut job = match ctx.job_rx.recv_timeout(TICK) {
                Ok(j) => j,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let trigger = match job.trigger.take() {
                Some(t) => t,
                None => {
                    // Free-run: this tick is the trigger.
                    let seq = sh.trigger_seq.fetch_add(1, Ordering::SeqCst) + 1;
                    sh.pending.fetch_add(1, Ordering::SeqCst);
                    inc(&sh.counters.triggers);
                    sh.begin_inspection();
                    Trigger {
                        seq,
                        at_mono_ns: monotonic_ns(),
                        at_unix_ns: unix_ns(),
                        source: TriggerSource::FreeRun,
                    }
                }
            };
            d.state.started += 1;
            if ctx.free_run {
                d.state.next_tick = (d.state.next_tick + ctx.period_ns).max(monotonic_ns());
            }
            (d.state.started, trigger, job)
        };
        have_place = false;
        let t0 = monotonic_ns();
        // A record that held an earlier result (after the first few frames), overwritten.
        let mut record = ctx.records.take();
        match (&job.frame, job.no_frame_reason) {
            (Some(frame), _) => match inspector.inspect_into(frame, &mut record) {
                Ok(()) => {
                    consecutive_errors = 0;
                    if !sh.model_ok.swap(true, Ordering::SeqCst) {
                        info!("inspector working again");
                        sh.update_ready();
                    }
                }
                Err(e) => {
                    consecutive_errors += 1;
                    inc(&sh.counters.model_errors);
                    sh.model_ok.store(false, Ordering::SeqCst);
                    sh.update_ready();
                    if consecutive_errors >= ctx.max_errors {
                        sh.fatal(
                            FatalKind::Model,
                            format!(
                                "inspector failed {consecutive_errors} times in a row, last: {e}"
                            ),
                        );
                    } else {
                        error!(inspection, worker = w, "inspector failed: {e}: READY low");
                    }
                    record.set_unable(
                        &mut spare,
                        format_args!("inspector failed: {e}"),
                        &model_sha256,
                        &provider,
                    );
                }
            },
            (None, reason) => record.set_unable(
                &mut spare,
                format_args!("{}", reason.as_deref().unwrap_or("no frame")),
                &model_sha256,
                &provider,
            ),
        }
        let inspect_ms = (monotonic_ns() - t0) as f64 / 1e6;
        record.timings_ms.insert("inspect", inspect_ms);
        if let Some(f) = &job.frame {
            record
                .timings_ms
                .insert("queue", t0.saturating_sub(f.captured_mono_ns) as f64 / 1e6);
        }
        let done = Done {
            inspection,
            trigger,
            frame: job.frame,
            record,
            inspect_started_mono_ns: t0,
        };
        if ctx.done_tx.send(done).is_err() {
            break;
        }
    }
}

/// Expose one drift test: counters, the journal's `drift_tests` table, the DRIFT line. The
/// monitor itself logs state changes. A journal failure here loses only this maintenance
/// record (the inspection was journalled and signalled already): warn and go on.
fn drift_report(
    sh: &Shared,
    journal: &Journal,
    run_id: &str,
    inspection: u64,
    report: &crate::drift::DriftReport,
) {
    use crate::drift::DriftState;
    let c = &sh.counters;
    inc(&c.drift_tests);
    inc_by(&c.drift_significant, u64::from(report.significant));
    let drifting = report.state == DriftState::Drift;
    if report.changed && drifting {
        inc(&c.drift_episodes);
    }
    c.drift_state
        .store(if drifting { 2 } else { 1 }, Ordering::Relaxed);
    debug!(
        inspection,
        distance = report.distance,
        p_value = report.p_value,
        significant = report.significant,
        state = ?report.state,
        "drift test"
    );
    if let Err(e) = journal.record_drift(run_id, inspection, unix_ns(), report) {
        warn!("drift test after inspection {inspection} not journalled: {e}");
    }
    if report.changed {
        let r = sh.outputs.lock().unwrap_or_else(|e| e.into_inner()).set(
            Role::Drift,
            drifting,
            Some(inspection),
        );
        if let Err(e) = r {
            warn!("DRIFT line not set: {e}");
        }
    }
}

struct OutputContext {
    station: String,
    profile: String,
    run_id: String,
    save: SaveImages,
    images_enabled: bool,
    display_enabled: bool,
    stats: Arc<Mutex<BTreeMap<String, StageStat>>>,
    drift: Option<crate::drift::DriftMonitor>,
}

fn add_stat(stats: &mut BTreeMap<String, StageStat>, name: &str, ms: f64) {
    // Look up first: a new key (allocating its name) only the first time a stage is seen.
    let s = match stats.get_mut(name) {
        Some(s) => s,
        None => stats.entry(name.to_string()).or_default(),
    };
    s.count += 1;
    s.mean_ms += (ms - s.mean_ms) / s.count as f64;
    s.max_ms = s.max_ms.max(ms);
}

/// Inspection records between the output thread (done with one) and the inspect thread
/// (needs one). Last in, first out: the few records a steady pipeline keeps in flight are
/// used over and over, so their buffers reach the frames' needs after a few frames (a queue
/// would cycle through every record, each warming up on its own). Filled at start with as
/// many records as can ever be in flight.
struct RecordPool(Mutex<Vec<InspectionRecord>>);

impl RecordPool {
    /// Records with the inspector's identity and room for a typical frame's defects, so that
    /// a record's first use (when the pipeline happens to hold more frames at once than
    /// before) rarely allocates.
    fn new(capacity: usize, (model_sha256, provider): &(String, String)) -> Arc<RecordPool> {
        let mut v = Vec::with_capacity(capacity);
        v.resize_with(capacity, || {
            let mut r = InspectionRecord {
                model_sha256: model_sha256.clone(),
                provider: provider.clone(),
                ..InspectionRecord::default()
            };
            r.defects_json.reserve(4096);
            r.frame_condition_json.reserve(512);
            r.reasons.reserve(4);
            r
        });
        Arc::new(RecordPool(Mutex::new(v)))
    }

    /// A record that held an earlier result (a fresh one if none is free).
    fn take(&self) -> InspectionRecord {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_default()
    }

    /// Back for reuse (dropped if the pool is full).
    fn give_back(&self, record: InspectionRecord) {
        let mut v = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if v.len() < v.capacity() {
            v.push(record);
        }
    }
}

/// Where the output thread hands buffers back for reuse.
struct Recycle {
    records: Arc<RecordPool>,
    pixels: Sender<image::GrayImage>,
    /// Places in the reorder window, given back once an inspection is signalled.
    places: Sender<()>,
    /// How many places there are (= the reorder ring's size).
    window: usize,
}

#[allow(clippy::too_many_arguments)]
fn output_loop(
    sh: &Shared,
    journal: Journal,
    mut ctx: OutputContext,
    done_rx: Receiver<Done>,
    image_tx: Sender<(i64, String, image::GrayImage)>,
    status_tx: Sender<Status>,
    recycle: Recycle,
    mut on_result: Option<ResultCallback>,
) {
    let mut recorder = match journal.recorder() {
        Ok(r) => r,
        Err(e) => {
            sh.fatal(
                FatalKind::Journal,
                format!("{e}: cannot record inspections; stopping"),
            );
            return;
        }
    };
    // The event handed to `on_result`, updated in place frame after frame.
    let mut event = ResultEvent {
        inspection: 0,
        journal_id: 0,
        verdict: Verdict::Unable,
        reasons: Vec::new(),
        frame_seq: None,
        frame_origin: None,
        trigger_seq: 0,
        trigger_source: TriggerSource::FreeRun,
        pass_withheld: false,
        trigger_mono_ns: 0,
        timings_ms: StageTimings::default(),
    };
    // Results come in the order the workers finish them; they are journalled and signalled
    // in inspection order. Slot `n % window` holds inspection n until its turn (the places
    // workers take before a frame keep every waiting number inside the window).
    let window = recycle.window.max(1);
    let places = recycle.places.clone();
    let mut ring: Vec<Option<Done>> = Vec::with_capacity(window);
    ring.resize_with(window, || None);
    let mut next = 1u64;
    let mut emit = |done: Done| -> bool {
        let Done {
            inspection,
            trigger,
            frame,
            mut record,
            inspect_started_mono_ns,
        } = done;
        let verdict = record.verdict;
        let recorded_unix_ns = unix_ns();
        let t_journal = monotonic_ns();
        let recorded = recorder.record(&NewEntry {
            run_id: &ctx.run_id,
            inspection,
            station: &ctx.station,
            profile: &ctx.profile,
            verdict: verdict.as_str(),
            reasons: &record.reasons,
            defects_json: &record.defects_json,
            timings_ms: &record.timings_ms,
            model_sha256: &record.model_sha256,
            provider: &record.provider,
            frame_seq: frame.as_ref().map(|f| f.sequence),
            frame_origin: frame.as_ref().and_then(|f| f.origin.as_deref()),
            trigger_seq: Some(trigger.seq),
            trigger_source: trigger.source.as_str(),
            trigger_unix_ns: Some(trigger.at_unix_ns),
            captured_unix_ns: frame.as_ref().map(|f| f.captured_unix_ns),
            recorded_unix_ns,
            image_path: None,
            frame_condition_json: (!record.frame_condition_json.is_empty())
                .then_some(record.frame_condition_json.as_str()),
        });
        let journal_id = match recorded {
            Ok(id) => id,
            Err(e) => {
                // Not recorded: must not be signalled. Stop; READY is low from here on.
                sh.fatal(
                    FatalKind::Journal,
                    format!(
                        "{e}: inspection {inspection} not recorded, so not signalled; stopping"
                    ),
                );
                sh.pending.fetch_sub(1, Ordering::SeqCst);
                return false;
            }
        };
        let journal_ms = (monotonic_ns() - t_journal) as f64 / 1e6;

        // Signal.
        let remaining = sh.pending.fetch_sub(1, Ordering::SeqCst).saturating_sub(1);
        let signal = match verdict {
            Verdict::Pass => Signal::Pass,
            Verdict::Fail => Signal::Fail,
            Verdict::Unable => Signal::Unable,
        };
        let timings = sh
            .outputs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .timings();
        let plan = result_plan(signal, timings, remaining > 0);
        let t_signal = monotonic_ns();
        let pass_withheld = play_plan(sh, &plan, t_signal, inspection);
        let trigger_to_result_ms = t_signal.saturating_sub(trigger.at_mono_ns) as f64 / 1e6;
        let timings_ms = &mut record.timings_ms;
        timings_ms.insert("journal", journal_ms);
        timings_ms.insert("trigger_to_result", trigger_to_result_ms);
        timings_ms.insert(
            "inspect_to_result",
            t_signal.saturating_sub(inspect_started_mono_ns) as f64 / 1e6,
        );
        {
            let mut stats = ctx.stats.lock().unwrap_or_else(|e| e.into_inner());
            for (k, v) in timings_ms.iter() {
                add_stat(&mut stats, k, v);
            }
        }
        inc(&sh.counters.inspections);
        let (pass, fail, unable_n) = match verdict {
            Verdict::Pass => (1, 0, 0),
            Verdict::Fail => (0, 1, 0),
            Verdict::Unable => (0, 0, 1),
        };
        inc_by(&sh.counters.pass, pass);
        inc_by(&sh.counters.fail, fail);
        inc_by(&sh.counters.unable, unable_n);
        debug!(inspection, %verdict, journal_id, "result signalled");
        // Drift: after the lines show the result, so a test never delays a verdict.
        if let (Some(mon), Some(features)) = (ctx.drift.as_mut(), record.drift_features.as_ref()) {
            if let Some(report) = mon.push(features) {
                drift_report(sh, &journal, &ctx.run_id, inspection, &report);
            }
        }
        event.inspection = inspection;
        event.journal_id = journal_id;
        event.verdict = verdict;
        // Swapped, not cloned: the strings go back to the inspector with the record.
        std::mem::swap(&mut event.reasons, &mut record.reasons);
        event.frame_seq = frame.as_ref().map(|f| f.sequence);
        match frame.as_ref().and_then(|f| f.origin.as_ref()) {
            Some(origin) => match event.frame_origin.as_mut() {
                Some(o) => o.clone_from(origin),
                None => event.frame_origin = Some(origin.clone()),
            },
            None => event.frame_origin = None,
        }
        event.trigger_seq = trigger.seq;
        event.trigger_source = trigger.source;
        event.pass_withheld = pass_withheld;
        event.trigger_mono_ns = trigger.at_mono_ns;
        event.timings_ms.clone_from(&record.timings_ms);
        if let Some(cb) = on_result.as_mut() {
            cb(&event);
        }
        if ctx.display_enabled {
            let c = &sh.counters;
            let _ = status_tx.try_send(Status {
                verdict: Some(verdict),
                reason: event.reasons.first().cloned().unwrap_or_default(),
                ready: sh.is_ready(),
                inspections: get(&c.inspections),
                pass: get(&c.pass),
                fail: get(&c.fail),
                unable: get(&c.unable),
                frame: frame.as_ref().map(|f| f.image.clone()),
            });
        }
        recycle.records.give_back(record);
        let keep = match ctx.save {
            SaveImages::All => true,
            SaveImages::Failing => verdict != Verdict::Pass,
            SaveImages::None => false,
        };
        if let Some(f) = frame {
            if keep && ctx.images_enabled {
                let name = ImageStore::file_name(recorded_unix_ns, &ctx.run_id, inspection);
                if image_tx.try_send((journal_id, name, f.image)).is_err() {
                    warn!(inspection, "frame not saved: the image saver is behind");
                }
            } else {
                let _ = recycle.pixels.try_send(f.image);
            }
        }
        true
    };
    loop {
        sh.beat(Stage::Output);
        let done = match done_rx.recv_timeout(TICK) {
            Ok(d) => d,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let n = done.inspection;
        let slot = (n % window as u64) as usize;
        if n < next || n >= next + window as u64 || ring[slot].is_some() {
            // Cannot happen while the places bound the window; never lose a result over it.
            error!(
                inspection = n,
                expected = next,
                "result outside the reorder window: signalled out of order"
            );
            let ok = emit(done);
            let _ = places.try_send(());
            if !ok {
                return;
            }
            continue;
        }
        ring[slot] = Some(done);
        while let Some(d) = ring[(next % window as u64) as usize].take_if(|d| d.inspection == next)
        {
            next += 1;
            let ok = emit(d);
            let _ = places.try_send(());
            if !ok {
                return;
            }
        }
    }
    // Every worker is gone. Results still waiting mean a number never came (a worker died
    // mid-inspection): signal the rest in order rather than lose them.
    let mut rest: Vec<Done> = ring.iter_mut().filter_map(Option::take).collect();
    rest.sort_by_key(|d| d.inspection);
    for d in rest {
        warn!(
            inspection = d.inspection,
            missing = next,
            "an earlier inspection never finished: signalling the later ones"
        );
        if !emit(d) {
            return;
        }
    }
}

/// Play a result timeline starting at `t_signal`. The delayed steps (REJECT, STROBE) are timed
/// from when the result lines were really set, and a pulse's end from when its start really
/// happened, so a late write never shortens a delay or a pulse (a PLC that latches PASS/FAIL on
/// STROBE must find them settled for the whole configured delay). Returns whether PASS was
/// withheld.
fn play_plan(sh: &Shared, plan: &[crate::actuate::Step], t_signal: u64, inspection: u64) -> bool {
    let mut started: [Option<(u64, u64)>; Role::COUNT] = [None; Role::COUNT];
    let mut withheld = false;
    // From here until STROBE ends, a new inspection does not withdraw these lines.
    sh.drive(|_| {
        sh.result_in_play.store(true, Ordering::SeqCst);
        Ok(())
    });
    // When the steps at 0 ms (the result lines and BUSY) were really written.
    let mut lines_set_ns = t_signal;
    for step in plan {
        let mut deadline = if step.at_ms == 0 {
            t_signal
        } else {
            lines_set_ns + step.at_ms * 1_000_000
        };
        if !step.active {
            if let Some((on_at_ms, on_real_ns)) = started[step.role.index()] {
                deadline = deadline.max(on_real_ns + (step.at_ms - on_at_ms) * 1_000_000);
            }
        }
        sleep_until_mono(deadline);
        if step.role == Role::Pass && step.active && sh.faulted() {
            warn!(
                inspection,
                "PASS withheld: camera, model, watchdog or GPIO fault"
            );
            withheld = true;
            continue;
        }
        sh.drive(|o| o.set(step.role, step.active, Some(inspection)));
        let now = monotonic_ns();
        if step.at_ms == 0 {
            lines_set_ns = now;
        }
        if step.active {
            started[step.role.index()] = Some((step.at_ms, now));
        } else if step.role == Role::Strobe {
            end_of_play(sh);
        }
    }
    end_of_play(sh);
    withheld
}

/// The result's STROBE is over: an inspection that began meanwhile now withdraws it.
fn end_of_play(sh: &Shared) {
    sh.drive(|o| {
        if !sh.result_in_play.swap(false, Ordering::SeqCst) {
            return Ok(());
        }
        if sh.withdraw_after_play.swap(false, Ordering::SeqCst) {
            o.begin(None)
        } else {
            Ok(())
        }
    });
}

fn image_saver(
    sh: &Shared,
    mut store: ImageStore,
    db: &std::path::Path,
    rx: Receiver<(i64, String, image::GrayImage)>,
    pixels: Sender<image::GrayImage>,
) {
    let mut journal = match Journal::open(db) {
        Ok(j) => Some(j),
        Err(e) => {
            warn!("image saver: {e}: saved frames will not be linked in the journal");
            None
        }
    };
    for (id, name, image) in rx {
        match store.save(&name, &image) {
            Ok((path, evicted)) => {
                inc(&sh.counters.images_saved);
                inc_by(&sh.counters.images_evicted, evicted.len() as u64);
                if let Some(j) = journal.as_mut() {
                    let linked = j
                        .set_image_path(id, Some(&path))
                        .and_then(|_| j.clear_image_paths(&evicted));
                    if let Err(e) = linked {
                        warn!("{e}");
                    }
                }
            }
            Err(e) => warn!("{e}"),
        }
        let _ = pixels.try_send(image);
    }
}

fn display_loop(fb_path: &std::path::Path, refresh: Duration, rx: Receiver<Status>) {
    let mut fb = match Framebuffer::open(fb_path) {
        Ok(fb) => fb,
        Err(e) => {
            warn!("status display off: {e}");
            for _ in rx {}
            return;
        }
    };
    let (w, h) = fb.size();
    let mut canvas = display::Canvas::new(w, h);
    let mut failed = false;
    while let Ok(mut status) = rx.recv() {
        std::thread::sleep(refresh);
        while let Ok(newer) = rx.try_recv() {
            status = newer;
        }
        display::render(&status, &mut canvas);
        if let Err(e) = fb.show(&canvas) {
            if !failed {
                warn!("status display: {e}");
                failed = true;
            }
        }
    }
}

/// Wait on stdin for lines; every line is a trigger. EOF: no more triggers (the daemon ends
/// once those already given are answered).
fn stdin_triggers(sh: &Shared) {
    let mut buf = [0u8; 512];
    loop {
        if sh.stopping() {
            return;
        }
        let mut pfd = libc::pollfd {
            fd: 0,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, TICK.as_millis() as i32) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            warn!("stdin triggers: {err}");
            sh.triggers_closed.store(true, Ordering::SeqCst);
            return;
        }
        if n == 0 {
            continue;
        }
        // SAFETY: reading into a buffer we own, with its length.
        let got = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
        if got < 0 {
            let err = std::io::Error::last_os_error();
            if matches!(
                err.kind(),
                std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock
            ) {
                continue;
            }
            warn!("stdin triggers: {err}");
            sh.triggers_closed.store(true, Ordering::SeqCst);
            return;
        }
        if got == 0 {
            info!("stdin closed: no more software triggers");
            sh.triggers_closed.store(true, Ordering::SeqCst);
            return;
        }
        let now = monotonic_ns();
        for _ in buf[..got as usize].iter().filter(|b| **b == b'\n') {
            sh.accept_trigger(TriggerSource::Stdin, now);
        }
    }
}

/// Listen on a Unix stream socket; every line a client sends is a trigger, answered with
/// `queued <n>` or `refused`.
fn socket_triggers(sh: &Shared, path: &std::path::Path) {
    use std::io::{Read, Write};
    use std::os::unix::net::{UnixListener, UnixStream};
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = std::fs::remove_file(path);
    let listener = match UnixListener::bind(path).and_then(|l| l.set_nonblocking(true).map(|_| l)) {
        Ok(l) => l,
        Err(e) => {
            sh.fatal(
                FatalKind::Thread,
                format!("trigger socket {}: {e}", path.display()),
            );
            return;
        }
    };
    info!(socket = %path.display(), "software triggers: one line per trigger");
    let mut clients: Vec<UnixStream> = Vec::new();
    let mut buf = [0u8; 512];
    while !sh.stopping() {
        while let Ok((c, _)) = listener.accept() {
            if c.set_nonblocking(true).is_ok() {
                clients.push(c);
            }
        }
        let mut keep = Vec::with_capacity(clients.len());
        for mut c in clients.drain(..) {
            match c.read(&mut buf) {
                Ok(0) => continue,
                Ok(n) => {
                    let now = monotonic_ns();
                    for _ in buf[..n].iter().filter(|b| **b == b'\n') {
                        let reply = match sh.accept_trigger(TriggerSource::Socket, now) {
                            Some(seq) => format!("queued {seq}\n"),
                            None => "refused\n".to_string(),
                        };
                        let _ = c.write_all(reply.as_bytes());
                    }
                    keep.push(c);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => keep.push(c),
                Err(_) => continue,
            }
        }
        clients = keep;
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = std::fs::remove_file(path);
}

#[cfg(feature = "gpio")]
fn gpio_triggers(sh: &Shared, input: crate::actuate::trigger::GpioTrigger) {
    info!(line = input.describe(), "GPIO trigger input armed");
    let mut reported = false;
    while !sh.stopping() {
        match input.wait(TICK) {
            Ok(Some(t_ns)) => {
                sh.accept_trigger(TriggerSource::Gpio, t_ns);
            }
            Ok(None) => {}
            Err(e) => {
                if !reported {
                    error!("{e}");
                    reported = true;
                }
                std::thread::sleep(TICK);
            }
        }
    }
}
