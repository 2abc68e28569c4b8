//! Crash safety of the installer, rollback and boot bookkeeping: the real binary is killed
//! (std::process::abort via ENDFACE_FAULT_AT) at every named step; afterwards `bundle status`
//! shows a valid active slot, the daemon start path picks an intact slot, and the next install
//! works. Also the binary's exit codes for refusals.

mod bundle_support;

use bundle_support::*;
use endface::bundle::{self, SlotId, FAULT_STEPS};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output};

const BUNDLE_REFUSED: i32 = 12;

fn endface(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_endface"));
    cmd.args(args)
        .env("ENDFACE_LOG", "error")
        .env_remove("ENDFACE_FAULT_AT");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Board: 1.0.0 in slot a (committed), 2.0.0 in slot b (committed, active).
fn two_slot_board(base: &Path, k: &Keys, root: &Path) {
    install_with(
        root,
        &trust(k),
        &Echo,
        &make_bundle(base, k, "v1", "1.0.0"),
        false,
    )
    .unwrap();
    bundle::mark_good(root, SlotId::A).unwrap();
    install_with(
        root,
        &trust(k),
        &Echo,
        &make_bundle(base, k, "v2", "2.0.0"),
        false,
    )
    .unwrap();
    bundle::mark_good(root, SlotId::B).unwrap();
}

fn assert_board_valid(root: &Path, step: &str) -> (SlotId, Option<String>) {
    let out = endface(&["bundle", "status", "--root", s(root), "--json"], &[]);
    assert!(
        out.status.success(),
        "{step}: status failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["active"]["valid"], true, "{step}: {st}");
    // The rollback target, if any, is intact too.
    if let Some(prev) = st["state"]["previous"].as_str().filter(|p| *p != "factory") {
        let slot = st["slots"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["slot"] == prev)
            .unwrap();
        assert_eq!(
            slot["valid"], true,
            "{step}: rollback target {prev} damaged: {st}"
        );
    }
    let choice =
        bundle::on_daemon_start(root).unwrap_or_else(|e| panic!("{step}: daemon start: {e}"));
    if let Some(info) = &choice.info {
        bundle::verify_slot(root, choice.slot)
            .unwrap_or_else(|e| panic!("{step}: chosen slot invalid: {e}"));
        assert!(info.model_manifest.is_file());
    }
    (choice.slot, choice.info.map(|i| i.manifest.version))
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
#[cfg_attr(
    not(debug_assertions),
    ignore = "uses the debug build's fake self-test (ENDFACE_SELFTEST_FAKE); `cargo test` runs it"
)]
fn every_fault_step_leaves_a_bootable_board() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path();
    let k = keys(base, "lab");
    let keys_dir = k.public_dir.clone();
    let v3 = make_bundle(base, &k, "v3", "3.0.0");
    let v4 = make_bundle(base, &k, "v4", "4.0.0");
    // Template boards, copied for each step.
    let two_slots = base.join("tpl-two-slots");
    two_slot_board(base, &k, &two_slots);
    let on_trial = base.join("tpl-on-trial");
    copy_tree(&two_slots, &on_trial);
    install_with(&on_trial, &trust(&k), &Echo, &v3, false).unwrap();
    let trial_used_up = base.join("tpl-trial-used-up");
    copy_tree(&on_trial, &trial_used_up);
    for _ in 0..3 {
        bundle::on_daemon_start(&trial_used_up).unwrap();
    }

    let fake = ("ENDFACE_SELFTEST_FAKE", "expected");
    let run_step = |i: usize, step: &str| {
        let root = base.join(format!("root-{i}"));
        let (template, args): (&Path, Vec<&str>) = if step.starts_with("install.") {
            (
                &two_slots,
                vec!["bundle", "install", s(&v3), "--keys", s(&keys_dir)],
            )
        } else if step.starts_with("rollback.") {
            (&two_slots, vec!["bundle", "rollback"])
        } else if step.starts_with("boot.switch") {
            (&trial_used_up, vec!["bundle", "boot"])
        } else if step.starts_with("boot.") {
            (&on_trial, vec!["bundle", "boot"])
        } else if step.starts_with("commit.") {
            (&on_trial, vec!["bundle", "commit"])
        } else {
            panic!("no scenario for fault step {step}");
        };
        copy_tree(template, &root);
        let mut args = args;
        args.extend(["--root", s(&root)]);
        let out = endface(&args, &[("ENDFACE_FAULT_AT", step), fake]);
        assert_eq!(
            out.status.signal(),
            Some(libc_sigabrt()),
            "{step}: not aborted: {out:?}"
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains(step));

        let (slot, version) = assert_board_valid(&root, step);
        if step.starts_with("install.") {
            let switched = ["install.switch.renamed", "install.done"].contains(&step);
            let want = if switched {
                (SlotId::A, "3.0.0")
            } else {
                (SlotId::B, "2.0.0")
            };
            assert_eq!((slot, version.as_deref()), (want.0, Some(want.1)), "{step}");
        }
        // The board takes the next install.
        let out = endface(
            &[
                "bundle",
                "install",
                s(&v4),
                "--keys",
                s(&keys_dir),
                "--root",
                s(&root),
            ],
            &[fake],
        );
        assert!(
            out.status.success(),
            "{step}: next install failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (_, version) = assert_board_valid(&root, step);
        assert_eq!(version.as_deref(), Some("4.0.0"), "{step}");
    };
    // fsync latency, not CPU, bounds this: run a few steps at a time.
    let steps: Vec<(usize, &str)> = FAULT_STEPS.iter().copied().enumerate().collect();
    for chunk in steps.chunks(5) {
        std::thread::scope(|sc| {
            for &(i, step) in chunk {
                let run_step = &run_step;
                sc.spawn(move || run_step(i, step));
            }
        });
    }
}

fn libc_sigabrt() -> i32 {
    6
}

#[test]
#[cfg_attr(
    not(debug_assertions),
    ignore = "uses the debug build's fake self-test (ENDFACE_SELFTEST_FAKE); `cargo test` runs it"
)]
fn cli_round_trip_and_refusal_exit_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path();
    let ws = base.join("workstation");
    let out = endface(
        &["bundle", "keygen", "--out", s(&ws), "--name", "lab-1"],
        &[],
    );
    assert!(out.status.success(), "{out:?}");
    let keys_dir = base.join("board-keys");
    std::fs::create_dir_all(&keys_dir).unwrap();
    std::fs::copy(ws.join("lab-1.pub"), keys_dir.join("lab-1.pub")).unwrap();

    let src = sources(base, "cli", "1.0.0");
    let bundle_path = base.join("cli.bundle");
    let out = endface(
        &[
            "bundle",
            "create",
            "--key",
            s(&ws.join("lab-1.key")),
            "--model",
            s(&src.model),
            "--manifest",
            s(&src.model_manifest),
            "--config",
            src.station_config.as_deref().map(s).unwrap(),
            "--profile",
            s(&src.profiles[0]),
            "--golden",
            s(&src.golden_dir),
            "-o",
            s(&bundle_path),
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = endface(
        &["bundle", "verify", s(&bundle_path), "--keys", s(&keys_dir)],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK, version 1.0.0"));

    let root = base.join("root");
    let install = |envs: &[(&str, &str)], extra: &[&str]| {
        let mut a = vec![
            "bundle",
            "install",
            s(&bundle_path),
            "--keys",
            s(&keys_dir),
            "--root",
            s(&root),
        ];
        a.extend_from_slice(extra);
        endface(&a, envs)
    };
    let refused = |out: Output, what: &str| {
        assert_eq!(out.status.code(), Some(BUNDLE_REFUSED), "{what}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with("endface: error: bundle refused (the running slot is untouched)"),
            "{err}"
        );
        assert!(err.contains(what), "{what} not in {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    };
    refused(
        install(&[("ENDFACE_SELFTEST_FAKE", "flip")], &[]),
        "self-test failed",
    );
    refused(
        install(
            &[
                ("ENDFACE_SELFTEST_FAKE", "expected"),
                ("ENDFACE_FAKE_FREE_BYTES", "1000"),
            ],
            &[],
        ),
        "not enough disk space",
    );
    refused(install(&[], &[]), "self-test failed");
    let out = install(&[("ENDFACE_SELFTEST_FAKE", "expected")], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    refused(
        install(&[("ENDFACE_SELFTEST_FAKE", "expected")], &[]),
        "already installed",
    );
    let out = install(&[("ENDFACE_SELFTEST_FAKE", "expected")], &["--force"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Unknown key and tampering through the CLI.
    let empty = base.join("no-keys");
    let out = endface(
        &["bundle", "verify", s(&bundle_path), "--keys", s(&empty)],
        &[],
    );
    refused(out, "not among the trusted keys");
    let mut bytes = std::fs::read(&bundle_path).unwrap();
    let n = bytes.len();
    bytes.truncate(n - 3000);
    std::fs::write(&bundle_path, &bytes).unwrap();
    refused(
        endface(
            &["bundle", "verify", s(&bundle_path), "--keys", s(&keys_dir)],
            &[],
        ),
        "truncated",
    );

    let out = endface(&["bundle", "rollback", "--root", s(&root)], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = endface(&["bundle", "status", "--root", s(&root)], &[]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("active:     a"), "{text}");
    assert!(text.contains("rollback.manual"), "{text}");
}
