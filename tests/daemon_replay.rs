//! Replayed frames + simulated GPIO through the whole daemon pipeline: the verdict sequence,
//! the line transitions in order with pulse widths, no triggered frame lost, a journal entry
//! for every inspection, corrupt frames skipped, inspector failures fail-safe.

#[path = "daemon_support/mod.rs"]
mod support;

use endface::actuate::sim::Transition;
use endface::actuate::Role;
use endface::capture::open_source;
use endface::capture::synthetic::SceneHints;
use endface::daemon::pipeline::FatalKind;
use endface::daemon::Verdict;
use endface::journal::Journal;
use std::sync::atomic::Ordering;
use std::time::Duration;
use support::*;

/// Upper tolerance on pulse widths and delays: sleeps on a shared 2-core machine overshoot.
const SLACK_MS: f64 = 150.0;

fn ms(a: &Transition, b: &Transition) -> f64 {
    (b.t_ns as f64 - a.t_ns as f64) / 1e6
}

#[test]
fn replay_software_triggers_give_expected_verdicts_lines_and_journal() {
    let dir = tempfile::tempdir().unwrap();
    let markers = [PASS, FAIL, UNABLE, PASS, FAIL, PASS];
    write_frames(&dir.path().join("frames"), &markers);
    let cfg = config(
        dir.path(),
        "[camera]\nsource = \"replay\"\npath = \"frames\"\n[trigger]\nmode = \"software\"\n",
    );
    let source = open_source(&cfg.camera, &SceneHints::default()).unwrap();
    let (d, rec) = daemon(cfg, source, Duration::ZERO);
    let trigger = d.trigger_handle();
    let stop = d.stop_flag();
    let run = start(d, None);

    wait_until(|| rec.level(Role::Ready), "READY");
    for i in 0..markers.len() {
        assert_eq!(trigger.fire(), Some(i as u64 + 1));
        run.wait_for(i + 1);
    }
    stop.store(true, Ordering::SeqCst);
    let summary = run.handle.join().unwrap();
    let events = run.events.lock().unwrap().clone();

    // Verdicts, frames and triggers in order.
    let expected: Vec<Verdict> = markers.iter().map(|m| verdict_of(*m)).collect();
    assert_eq!(
        events.iter().map(|e| e.verdict).collect::<Vec<_>>(),
        expected
    );
    assert_eq!(
        events.iter().map(|e| e.frame_seq).collect::<Vec<_>>(),
        (1..=6).map(Some).collect::<Vec<_>>()
    );
    assert!(events.iter().all(|e| !e.pass_withheld));
    assert_eq!(
        (
            summary.inspections,
            summary.pass,
            summary.fail,
            summary.unable
        ),
        (6, 3, 2, 1)
    );
    assert!(summary.fatal.is_none(), "{:?}", summary.fatal);

    // Every line transition, in order.
    let t = rec.transitions();
    let mut want = vec![(Role::Ready, true)];
    let mut prev: Option<Verdict> = None;
    for v in &expected {
        match prev {
            Some(Verdict::Pass) => want.push((Role::Pass, false)),
            Some(_) => want.push((Role::Fail, false)),
            None => {}
        }
        want.push((Role::Busy, true));
        match v {
            Verdict::Pass => want.extend([
                (Role::Pass, true),
                (Role::Busy, false),
                (Role::Strobe, true),
                (Role::Strobe, false),
            ]),
            _ => want.extend([
                (Role::Fail, true),
                (Role::Busy, false),
                (Role::Reject, true),
                (Role::Strobe, true),
                (Role::Strobe, false),
                (Role::Reject, false),
            ]),
        }
        prev = Some(*v);
    }
    want.extend([(Role::Ready, false), (Role::Pass, false)]);
    assert_eq!(levels(&t), want);

    // Pulse widths and delays: never shorter than configured, not much longer.
    for (k, v) in expected.iter().enumerate() {
        let of = |role: Role, active: bool| {
            t.iter()
                .find(|x| {
                    x.inspection == Some(k as u64 + 1) && x.role == role && x.active == active
                })
                .unwrap_or_else(|| panic!("inspection {}: no {role} {active}", k + 1))
        };
        let result = of(
            if *v == Verdict::Pass {
                Role::Pass
            } else {
                Role::Fail
            },
            true,
        );
        let (s_on, s_off) = (of(Role::Strobe, true), of(Role::Strobe, false));
        assert!(
            (5.0..5.0 + SLACK_MS).contains(&ms(result, s_on)),
            "strobe delay {}",
            ms(result, s_on)
        );
        assert!(
            (10.0..10.0 + SLACK_MS).contains(&ms(s_on, s_off)),
            "strobe width {}",
            ms(s_on, s_off)
        );
        if *v != Verdict::Pass {
            let (r_on, r_off) = (of(Role::Reject, true), of(Role::Reject, false));
            assert!(
                (30.0..30.0 + SLACK_MS).contains(&ms(r_on, r_off)),
                "reject width {}",
                ms(r_on, r_off)
            );
            assert!(ms(result, r_on) < SLACK_MS);
        } else {
            assert!(!t
                .iter()
                .any(|x| x.inspection == Some(k as u64 + 1) && x.role == Role::Reject));
        }
    }
    // PASS and FAIL are never active together; every line ends inactive.
    let mut level = [false; 6];
    for x in &t {
        level[x.role.index()] = x.active;
        assert!(!(level[Role::Pass.index()] && level[Role::Fail.index()]));
    }
    assert_eq!(level, [false; 6]);

    // A journal entry for every inspection, matching what was signalled.
    let j = Journal::open_existing(&dir.path().join("journal.db")).unwrap();
    j.integrity_check().unwrap();
    let rows = j.entries(None).unwrap();
    assert_eq!(rows.len(), 6);
    for (row, ev) in rows.iter().zip(&events) {
        assert_eq!(row.id, ev.journal_id);
        assert_eq!(row.verdict, ev.verdict.as_str());
        assert_eq!(row.frame_seq, ev.frame_seq);
        assert_eq!(row.trigger_source, "api");
        assert_eq!(row.station, "test");
        assert!(row
            .frame_origin
            .as_deref()
            .unwrap()
            .ends_with(&format!("f{:03}.png", row.inspection - 1)));
        assert!(row.timings_ms.contains_key("inspect"));
    }
    // Failing frames were saved as PNG and linked from their rows.
    wait_until(
        || {
            let rows = j.entries(None).unwrap();
            rows.iter().filter(|r| r.image_path.is_some()).count() == 3
        },
        "3 saved failing frames",
    );
    for r in j.entries(None).unwrap() {
        assert_eq!(r.image_path.is_some(), r.verdict != "pass");
        if let Some(p) = r.image_path {
            let img = image::open(&p).unwrap().into_luma8();
            assert_eq!(img.get_pixel(1, 0).0[0] as u64, r.inspection - 1, "{p}");
        }
    }
}

#[test]
fn burst_of_triggers_loses_no_frame_and_skips_corrupt_ones() {
    let dir = tempfile::tempdir().unwrap();
    let markers = [FAIL, PASS, PASS, UNABLE, FAIL, PASS, PASS, FAIL];
    let frames = write_frames(&dir.path().join("frames"), &markers);
    // A corrupt file between f002 and f003: skipped and counted, its trigger takes f003.
    std::fs::write(dir.path().join("frames/f002b.png"), b"\x89PNG truncated").unwrap();
    let cfg = config(
        dir.path(),
        "[camera]\nsource = \"replay\"\npath = \"frames/f*.png\"\n[trigger]\nmode = \"software\"\nmax_pending = 16\n[daemon]\nqueue = 2\nmarker_delay_ms = 5\n",
    );
    let source = open_source(&cfg.camera, &SceneHints::default()).unwrap();
    let (d, rec) = daemon(
        cfg.clone(),
        source,
        Duration::from_millis(cfg.daemon.marker_delay_ms),
    );
    let trigger = d.trigger_handle();
    let stop = d.stop_flag();
    let run = start(d, None);
    wait_until(|| rec.level(Role::Ready), "READY");
    for _ in &markers {
        assert!(trigger.fire().is_some());
    }
    run.wait_for(markers.len());
    stop.store(true, Ordering::SeqCst);
    let events_arc = run.events.clone();
    let summary = run.handle.join().unwrap();
    let events = events_arc.lock().unwrap().clone();

    assert_eq!(summary.frames_corrupt, 1);
    assert_eq!(summary.triggers, markers.len() as u64);
    assert_eq!(summary.triggers_overrun, 0);
    assert_eq!(summary.abandoned_at_stop, 0);
    let origins: Vec<String> = events
        .iter()
        .map(|e| e.frame_origin.clone().unwrap())
        .collect();
    let want: Vec<String> = frames.iter().map(|p| p.display().to_string()).collect();
    assert_eq!(origins, want, "every triggered frame inspected, in order");
    assert_eq!(
        events.iter().map(|e| e.verdict).collect::<Vec<_>>(),
        markers.iter().map(|m| verdict_of(*m)).collect::<Vec<_>>()
    );
    // BUSY went high once and fell only after the last result.
    let busy: Vec<bool> = rec
        .transitions()
        .iter()
        .filter(|t| t.role == Role::Busy)
        .map(|t| t.active)
        .collect();
    assert_eq!(busy, vec![true, false]);
    let j = Journal::open_existing(&dir.path().join("journal.db")).unwrap();
    assert_eq!(j.count().unwrap(), markers.len() as u64);
}

#[test]
fn inspector_failure_drops_ready_and_withholds_pass_then_recovers_or_stops() {
    let dir = tempfile::tempdir().unwrap();
    let markers = [PASS, MODEL_ERROR, PASS];
    write_frames(&dir.path().join("frames"), &markers);
    let cfg = config(
        dir.path(),
        "[camera]\nsource = \"replay\"\npath = \"frames\"\n[trigger]\nmode = \"software\"\n",
    );
    let source = open_source(&cfg.camera, &SceneHints::default()).unwrap();
    let (d, rec) = daemon(cfg, source, Duration::ZERO);
    let trigger = d.trigger_handle();
    let run = start(d, Some(3));
    wait_until(|| rec.level(Role::Ready), "READY");
    for i in 0..markers.len() {
        trigger.fire();
        run.wait_for(i + 1);
    }
    let ev_arc = run.events.clone();
    let summary = run.handle.join().unwrap();
    assert_eq!(summary.model_errors, 1);
    assert!(summary.fatal.is_none());
    let ev = ev_arc.lock().unwrap().clone();
    assert_eq!(ev[1].verdict, Verdict::Unable);
    assert!(
        ev[1].reasons[0].contains("inspector failed"),
        "{:?}",
        ev[1].reasons
    );
    let ready: Vec<bool> = rec
        .transitions()
        .iter()
        .filter(|t| t.role == Role::Ready)
        .map(|t| t.active)
        .collect();
    assert_eq!(
        ready,
        vec![true, false, true, false],
        "READY dropped on the failure, came back, dropped at stop"
    );
    // While READY was low for the failure, PASS was low.
    let t = rec.transitions();
    let mut ready_on = false;
    let mut pass_on = false;
    for x in &t {
        match x.role {
            Role::Ready => ready_on = x.active,
            Role::Pass => pass_on = x.active,
            _ => {}
        }
        if x.inspection == Some(2) {
            assert!(!pass_on);
        }
        assert!(!(pass_on && !ready_on && x.inspection.is_some() && x.inspection != Some(3)));
    }
    let j = Journal::open_existing(&dir.path().join("journal.db")).unwrap();
    assert_eq!(j.entries(None).unwrap()[1].verdict, "unable");

    // A model that keeps failing stops the daemon with a model error, lines safe.
    let dir = tempfile::tempdir().unwrap();
    write_frames(
        &dir.path().join("frames"),
        &[MODEL_ERROR, MODEL_ERROR, MODEL_ERROR],
    );
    let cfg = config(
        dir.path(),
        "[camera]\nsource = \"replay\"\npath = \"frames\"\nloop = true\n[trigger]\nmode = \"free-run\"\nrate_hz = 200\n[daemon]\nmax_model_errors = 2\n",
    );
    let source = open_source(&cfg.camera, &SceneHints::default()).unwrap();
    let (d, rec) = daemon(cfg, source, Duration::ZERO);
    let summary = start(d, None).handle.join().unwrap();
    assert_eq!(summary.fatal.as_ref().map(|f| f.0), Some(FatalKind::Model));
    assert!(Role::ALL.iter().all(|r| !rec.level(*r)));
    assert!(!rec
        .transitions()
        .iter()
        .any(|t| t.role == Role::Pass && t.active));
}

/// A line driver whose writes take 3 ms each (a slow sysfs or I2C expander): the simulation
/// records each change when it lands, after the wait.
struct SlowLines(endface::actuate::sim::SimBackend);

impl endface::actuate::OutputBackend for SlowLines {
    fn set(
        &mut self,
        role: Role,
        active: bool,
        note: Option<u64>,
    ) -> Result<(), endface::actuate::ActuateError> {
        std::thread::sleep(Duration::from_millis(3));
        self.0.set(role, active, note)
    }
    fn describe(&self) -> String {
        format!("slow {}", self.0.describe())
    }
}

#[test]
fn slow_line_writes_never_shorten_the_strobe_or_reject_delay() {
    // Three line writes at 0 ms (release, assert, BUSY) take 9 ms here: STROBE (5 ms) and
    // REJECT must still come their full delay after the result lines really changed. Timed
    // from the signal (before session 9), STROBE came 3.1 ms after the last of those writes (a
    // PLC latching on STROBE could read lines that had not settled; CI once saw 4.90 ms for
    // a 5 ms delay on the plain simulation).
    let dir = tempfile::tempdir().unwrap();
    let markers = [PASS, FAIL, PASS];
    write_frames(&dir.path().join("frames"), &markers);
    let mut cfg = config(
        dir.path(),
        "[camera]\nsource = \"replay\"\npath = \"frames\"\n[trigger]\nmode = \"software\"\n",
    );
    cfg.gpio.reject_delay_ms = 5;
    let source = open_source(&cfg.camera, &SceneHints::default()).unwrap();
    let (d, rec) = daemon_with_lines(cfg, source, Duration::ZERO, |b| Box::new(SlowLines(b)));
    let trigger = d.trigger_handle();
    let stop = d.stop_flag();
    let run = start(d, None);
    wait_until(|| rec.level(Role::Ready), "READY");
    for i in 0..markers.len() {
        assert_eq!(trigger.fire(), Some(i as u64 + 1));
        run.wait_for(i + 1);
    }
    stop.store(true, Ordering::SeqCst);
    run.handle.join().unwrap();
    let t = rec.transitions();
    for (k, m) in markers.iter().enumerate() {
        let n = Some(k as u64 + 1);
        let find = |role: Role, active: bool| {
            t.iter()
                .find(|x| x.inspection == n && x.role == role && x.active == active)
                .unwrap_or_else(|| panic!("inspection {}: no {role} {active}", k + 1))
        };
        let result = find(if *m == PASS { Role::Pass } else { Role::Fail }, true);
        let busy_off = find(Role::Busy, false);
        let strobe = find(Role::Strobe, true);
        assert!(
            ms(busy_off, strobe) >= 5.0,
            "inspection {}: STROBE {:.2} ms after the last result-line write",
            k + 1,
            ms(busy_off, strobe)
        );
        assert!(ms(result, strobe) >= 5.0);
        if *m == FAIL {
            let reject = find(Role::Reject, true);
            assert!(
                ms(busy_off, reject) >= 5.0,
                "inspection {}: REJECT {:.2} ms after the last result-line write",
                k + 1,
                ms(busy_off, reject)
            );
        }
    }
}
