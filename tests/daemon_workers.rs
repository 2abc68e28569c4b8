//! Several inspect workers (`[daemon] workers`): frames are inspected side by side, but the
//! journal and the lines see every result in frame order, with the right verdict for each
//! frame; a worker that dies stops the daemon in the safe state without losing the results
//! already made.

#[path = "daemon_support/mod.rs"]
mod support;

use endface::actuate::Role;
use endface::capture::synthetic::SceneHints;
use endface::capture::{monotonic_ns, open_source, Frame};
use endface::daemon::marker::MarkerInspector;
use endface::daemon::pipeline::FatalKind;
use endface::daemon::{FrameInspector, InspectionRecord, InspectorError, Verdict};
use endface::journal::Journal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

/// Who inspected which frame tag, from when to when.
type Log = Arc<Mutex<Vec<(usize, u8, Instant, Instant)>>>;

/// The marker inspector with a per-frame time: every third frame is slow, so a later frame
/// on another worker finishes first. Optionally panics on one tag.
struct Uneven {
    worker: usize,
    inner: MarkerInspector,
    log: Log,
    panic_on: Option<u8>,
    /// Hang this long on this tag (a stuck inspection).
    hang_on: Option<(u8, Duration)>,
}

impl FrameInspector for Uneven {
    fn inspect(&mut self, frame: &Frame) -> Result<InspectionRecord, InspectorError> {
        let mut r = InspectionRecord::default();
        self.inspect_into(frame, &mut r)?;
        Ok(r)
    }

    fn inspect_into(
        &mut self,
        frame: &Frame,
        out: &mut InspectionRecord,
    ) -> Result<(), InspectorError> {
        let tag = frame.image.get_pixel(1, 0).0[0];
        if self.panic_on == Some(tag) {
            panic!("test inspector panics on frame {tag}");
        }
        if let Some((t, d)) = self.hang_on {
            if t == tag {
                std::thread::sleep(d);
            }
        }
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_millis(if tag.is_multiple_of(3) {
            90
        } else {
            10
        }));
        let r = self.inner.inspect_into(frame, out);
        self.log
            .lock()
            .unwrap()
            .push((self.worker, tag, t0, Instant::now()));
        r
    }

    fn describe(&self) -> String {
        format!("uneven test inspector {}", self.worker)
    }
}

fn markers(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| match i % 5 {
            0 | 3 => PASS,
            1 | 4 => FAIL,
            _ => UNABLE,
        })
        .collect()
}

fn run_workers(
    dir: &std::path::Path,
    marks: &[u8],
    workers: usize,
    panic_on: Option<u8>,
    hang_on: Option<(u8, Duration)>,
    sections: &str,
    daemon_extra: &str,
) -> (
    endface::daemon::Summary,
    Vec<endface::daemon::ResultEvent>,
    endface::actuate::sim::SimRecorder,
    Log,
) {
    write_frames(&dir.join("frames"), marks);
    let cfg = config(
        dir,
        &format!(
            "{sections}[camera]\nsource = \"replay\"\npath = \"frames\"\nframe_timeout_ms = 200\n[trigger]\nmode = \"free-run\"\nrate_hz = 1000\n[daemon]\nworkers = {workers}\n{daemon_extra}"
        ),
    );
    assert_eq!(cfg.daemon.workers, workers);
    let source = open_source(&cfg.camera, &SceneHints::default()).unwrap();
    let (mut d, rec) = daemon(cfg, source, Duration::ZERO);
    // Replace the marker inspector `daemon()` built with the uneven ones.
    let log: Log = Arc::default();
    let mk = |w: usize| -> Box<dyn FrameInspector> {
        Box::new(Uneven {
            worker: w,
            inner: MarkerInspector::new(Duration::ZERO),
            log: log.clone(),
            panic_on,
            hang_on,
        })
    };
    d.replace_inspectors((0..workers).map(mk).collect())
        .unwrap();
    assert_eq!(d.workers(), workers);
    let run = start(d, None);
    let summary = run.handle.join().unwrap();
    let events = run.events.lock().unwrap().clone();
    (summary, events, rec, log)
}

#[test]
fn three_workers_signal_every_frame_in_order_with_its_own_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let marks = markers(24);
    let (summary, events, rec, log) = run_workers(dir.path(), &marks, 3, None, None, "", "");
    assert!(summary.fatal.is_none(), "{:?}", summary.fatal);
    assert_eq!(summary.inspections, 24);

    // In frame order, each with the verdict of its own frame.
    assert_eq!(
        events.iter().map(|e| e.inspection).collect::<Vec<_>>(),
        (1..=24).collect::<Vec<_>>()
    );
    assert_eq!(
        events.iter().map(|e| e.frame_seq).collect::<Vec<_>>(),
        (1..=24).map(Some).collect::<Vec<_>>()
    );
    assert_eq!(
        events.iter().map(|e| e.verdict).collect::<Vec<_>>(),
        marks.iter().map(|m| verdict_of(*m)).collect::<Vec<_>>()
    );

    // The work really was spread and overlapped, and finished out of order, so the order
    // above is the daemon's doing.
    let log = log.lock().unwrap().clone();
    let mut used: Vec<usize> = log.iter().map(|l| l.0).collect();
    used.sort();
    used.dedup();
    assert_eq!(used, vec![0, 1, 2], "every worker inspected");
    let overlapped = log
        .iter()
        .any(|a| log.iter().any(|b| a.0 != b.0 && a.2 < b.3 && b.2 < a.3));
    assert!(overlapped, "no two inspections overlapped");
    let mut by_end = log.clone();
    by_end.sort_by_key(|l| l.3);
    let finish_order: Vec<u8> = by_end.iter().map(|l| l.1).collect();
    assert!(
        finish_order.windows(2).any(|w| w[0] > w[1]),
        "inspections finished in frame order by chance: {finish_order:?}"
    );

    // The journal in the same order, matching what was signalled.
    let j = Journal::open_existing(&dir.path().join("journal.db")).unwrap();
    j.integrity_check().unwrap();
    let rows = j.entries(None).unwrap();
    assert_eq!(rows.len(), 24);
    for (row, ev) in rows.iter().zip(&events) {
        assert_eq!(row.id, ev.journal_id);
        assert_eq!(row.inspection, ev.inspection);
        assert_eq!(row.verdict, ev.verdict.as_str());
        assert_eq!(row.frame_seq, ev.frame_seq);
    }
    assert!(rows.windows(2).all(|w| w[0].id < w[1].id));

    // The lines show the results in the same order: at each result's strobe, PASS is high
    // exactly for a passing frame and FAIL is high for every failing one.
    let mut level = [false; 6];
    let mut at_strobe = Vec::new();
    for t in rec.transitions() {
        level[t.role.index()] = t.active;
        if t.role == Role::Strobe && t.active {
            at_strobe.push((level[Role::Pass.index()], level[Role::Fail.index()]));
        }
    }
    assert_eq!(at_strobe.len(), 24);
    for ((pass, fail), ev) in at_strobe.iter().zip(&events) {
        assert_eq!(*pass, ev.verdict == Verdict::Pass, "{}", ev.inspection);
        if ev.verdict == Verdict::Fail {
            assert!(*fail, "{}", ev.inspection);
        }
    }
    assert!(
        Role::ALL.iter().all(|r| !rec.level(*r)),
        "safe state at the end"
    );
}

#[test]
fn a_result_stays_on_the_lines_through_its_strobe_while_the_next_inspections_begin() {
    // A long strobe delay (40 ms) and three workers taking frames as fast as they come, with
    // room to run ahead of the lines (queue 16): the next inspections begin while each result
    // waits for its strobe. Beginning one withdraws
    // the previous result (PASS and FAIL low, BUSY high) — but not before that result's
    // strobe is over, or a PLC latching on STROBE would read no result (seen in CI: a PASS
    // frame's PASS line low at its strobe).
    let dir = tempfile::tempdir().unwrap();
    let marks = markers(24);
    let gpio = "[gpio]\nbackend = \"sim\"\nreject_delay_ms = 0\nreject_ms = 30\nstrobe_delay_ms = 40\nstrobe_ms = 10\n";
    // The inspectors log `Instant`s, the lines CLOCK_MONOTONIC ns: one pair to convert.
    let (base_instant, base_ns) = (Instant::now(), monotonic_ns());
    let (summary, events, rec, log) =
        run_workers(dir.path(), &marks, 3, None, None, gpio, "queue = 16\n");
    assert!(summary.fatal.is_none(), "{:?}", summary.fatal);
    assert_eq!(events.len(), 24);
    assert!(events.iter().all(|e| !e.pass_withheld));
    let mut level = [false; 6];
    let mut at_strobe = Vec::new();
    // From each result's lines being set to its strobe.
    let mut windows = Vec::new();
    let mut set_at = None;
    for t in rec.transitions() {
        level[t.role.index()] = t.active;
        if (t.role == Role::Pass || t.role == Role::Fail) && t.active {
            set_at = Some(t.t_ns);
        }
        if t.role == Role::Strobe && t.active {
            if let Some(s) = set_at.take() {
                windows.push((s, t.t_ns));
            }
            at_strobe.push((level[Role::Pass.index()], level[Role::Fail.index()]));
        }
    }
    let begun_in_play = log
        .lock()
        .unwrap()
        .iter()
        .map(|l| base_ns + l.2.duration_since(base_instant).as_nanos() as u64)
        .filter(|&t| windows.iter().any(|&(a, b)| a < t && t < b))
        .count();
    assert!(
        begun_in_play > 0,
        "no inspection began while a result waited for its strobe: the test shows nothing"
    );
    assert_eq!(at_strobe.len(), 24);
    for ((pass, fail), ev) in at_strobe.iter().zip(&events) {
        assert_eq!(
            (*pass, *fail),
            // UNABLE rejects by default (`gpio.unable_rejects`): FAIL, like a failing part.
            (ev.verdict == Verdict::Pass, ev.verdict != Verdict::Pass),
            "inspection {}: PASS/FAIL at its strobe",
            ev.inspection
        );
    }
    assert!(
        Role::ALL.iter().all(|r| !rec.level(*r)),
        "safe state at the end"
    );
}

#[test]
fn a_worker_that_panics_stops_the_daemon_safely_and_loses_no_finished_result() {
    let dir = tempfile::tempdir().unwrap();
    let marks = markers(30);
    let (summary, events, rec, log) = run_workers(dir.path(), &marks, 2, Some(7), None, "", "");
    assert_eq!(
        summary.fatal.as_ref().map(|f| f.0),
        Some(FatalKind::Thread),
        "{:?}",
        summary.fatal
    );
    assert!(
        Role::ALL.iter().all(|r| !rec.level(*r)),
        "safe state at the end"
    );
    // Every inspection that finished was journalled and signalled, in order, frame 7 (tag 7,
    // the 8th frame) never.
    let finished = log.lock().unwrap().len();
    assert_eq!(events.len(), finished);
    assert!(events.windows(2).all(|w| w[0].inspection < w[1].inspection));
    assert!(events.iter().all(|e| e.frame_seq != Some(8)));
    for e in &events {
        let tag = (e.frame_seq.unwrap() - 1) as usize;
        assert_eq!(e.verdict, verdict_of(marks[tag]));
    }
    let j = Journal::open_existing(&dir.path().join("journal.db")).unwrap();
    assert_eq!(j.entries(None).unwrap().len(), finished);
}

#[test]
fn workers_out_of_range_is_a_config_error_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["0", "17"] {
        let text = format!(
            "[station]\nname = \"t\"\n[gpio]\nbackend = \"sim\"\n[journal]\npath = \"j.db\"\n[daemon]\nworkers = {bad}\n"
        );
        let err = endface::daemon::DaemonConfig::from_toml_str(&text, "t.toml", dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("daemon.workers"), "{err}");
    }
}

#[test]
fn idle_workers_keep_beating_so_an_idle_station_stays_ready() {
    // Software triggers, none fired for a while: every worker waits for a frame. None may
    // go silent (waiting on another worker) long enough to trip the watchdog.
    let dir = tempfile::tempdir().unwrap();
    write_frames(&dir.path().join("frames"), &[PASS, FAIL]);
    let cfg = config(
        dir.path(),
        "[camera]\nsource = \"replay\"\npath = \"frames\"\nloop = true\nframe_timeout_ms = 100\n\
         [trigger]\nmode = \"software\"\n[daemon]\nworkers = 4\nwatchdog_ms = 300\n",
    );
    let source = open_source(&cfg.camera, &SceneHints::default()).unwrap();
    let (d, rec) = daemon(cfg, source, Duration::ZERO);
    let mut d = d;
    d.replace_inspectors(
        (0..4)
            .map(|_| Box::new(MarkerInspector::new(Duration::ZERO)) as Box<dyn FrameInspector>)
            .collect(),
    )
    .unwrap();
    let trigger = d.trigger_handle();
    let stop = d.stop_flag();
    let run = start(d, None);
    wait_until(|| rec.level(Role::Ready), "READY");
    std::thread::sleep(Duration::from_millis(3000));
    assert_eq!(trigger.fire(), Some(1));
    run.wait_for(1);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let summary = run.handle.join().unwrap();
    assert!(summary.fatal.is_none(), "{:?}", summary.fatal);
    let ready_drops = rec
        .transitions()
        .iter()
        .filter(|t| t.role == Role::Ready && !t.active)
        .count();
    // One drop at the stop; none while idle.
    assert_eq!(ready_drops, 1, "{:?}", levels(&rec.transitions()));
}

#[test]
fn one_stuck_worker_drops_ready_while_the_others_work_then_it_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let marks = markers(20);
    let (summary, events, rec, _log) = run_workers(
        dir.path(),
        &marks,
        3,
        None,
        Some((5, Duration::from_millis(1500))),
        "",
        "watchdog_ms = 400\n",
    );
    assert!(summary.fatal.is_none(), "{:?}", summary.fatal);
    assert_eq!(events.len(), 20);
    assert!(events
        .windows(2)
        .all(|w| w[0].inspection + 1 == w[1].inspection));
    // READY: up, down while frame 5 hangs (the other workers beat all along), up again.
    let ready: Vec<bool> = rec
        .transitions()
        .iter()
        .filter(|t| t.role == Role::Ready)
        .map(|t| t.active)
        .collect();
    assert!(
        ready.windows(3).any(|w| w == [true, false, true]),
        "READY never dropped and came back: {ready:?}"
    );
}
