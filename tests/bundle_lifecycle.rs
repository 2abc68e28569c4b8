//! A/B lifecycle through the library: install, switch, trial boots, commit, automatic
//! rollback after N failed starts, rollback on damage, manual rollback, and the journal.

mod bundle_support;

use bundle_support::*;
use endface::bundle::{self, SlotId};
use std::fs;

fn events(root: &std::path::Path) -> Vec<String> {
    bundle::read_journal(root)
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn fresh_board_boots_factory_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let c = bundle::on_daemon_start(&root).unwrap();
    assert_eq!(c.slot, SlotId::Factory);
    assert!(c.info.is_none() && c.trial.is_none());
    assert!(!root.exists());
    assert!(!bundle::mark_good(&root, SlotId::Factory).unwrap());
    let st = bundle::status(&root, 5).unwrap();
    assert_eq!(st.state.active, SlotId::Factory);
    assert!(st.active.valid);
    assert!(matches!(
        bundle::rollback(&root),
        Err(bundle::BundleError::NoRollbackTarget(_))
    ));
}

#[test]
fn install_trial_commit_and_alternate_slots() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path();
    let k = keys(base, "lab");
    let root = base.join("root");
    let b1 = make_bundle(base, &k, "v1", "1.0.0");
    let b2 = make_bundle(base, &k, "v2", "1.1.0");
    let b3 = make_bundle(base, &k, "v3", "1.2.0");

    let r1 = install_with(&root, &trust(&k), &Echo, &b1, false).unwrap();
    assert_eq!(
        (r1.slot, r1.previous, r1.golden_cases),
        (SlotId::A, SlotId::Factory, 2)
    );
    // The slot holds the payload at its bundle paths.
    let slot_a = root.join("slots/a");
    assert!(slot_a.join("model/student.onnx").is_file());
    assert!(slot_a.join("golden/sub/bad_1.png").is_file());
    assert!(slot_a.join("config/station.toml").is_file());
    assert!(slot_a.join("profiles/sm-upc.toml").is_file());

    let c = bundle::on_daemon_start(&root).unwrap();
    assert_eq!(c.slot, SlotId::A);
    assert_eq!(c.trial, Some((1, 3)));
    let info = c.info.unwrap();
    assert_eq!(info.manifest.version, "1.0.0");
    assert_eq!(
        info.model_manifest,
        slot_a.join("model/student.manifest.json")
    );
    assert_eq!(
        info.station_config,
        Some(slot_a.join("config/station.toml"))
    );
    // Marking another slot good does nothing; the right one commits once.
    assert!(!bundle::mark_good(&root, SlotId::B).unwrap());
    assert!(bundle::mark_good(&root, SlotId::A).unwrap());
    assert!(!bundle::mark_good(&root, SlotId::A).unwrap());
    let c = bundle::on_daemon_start(&root).unwrap();
    assert_eq!((c.slot, c.trial), (SlotId::A, None));

    let r2 = install_with(&root, &trust(&k), &Echo, &b2, false).unwrap();
    assert_eq!(
        (r2.slot, r2.previous, r2.previous_version.as_deref()),
        (SlotId::B, SlotId::A, Some("1.0.0"))
    );
    bundle::on_daemon_start(&root).unwrap();
    bundle::mark_good(&root, SlotId::B).unwrap();
    // Third install goes back to slot a, replacing 1.0.0; rollback target is b.
    let r3 = install_with(&root, &trust(&k), &Echo, &b3, false).unwrap();
    assert_eq!((r3.slot, r3.previous), (SlotId::A, SlotId::B));
    let st = bundle::status(&root, 100).unwrap();
    assert_eq!(st.state.previous, Some(SlotId::B));
    assert_eq!(st.slots[0].version.as_deref(), Some("1.2.0"));
    assert_eq!(st.slots[1].version.as_deref(), Some("1.1.0"));
    assert!(!st.state.committed);

    let ev = events(&root);
    for want in [
        "install.start",
        "selftest.pass",
        "install.switched",
        "boot.trial",
        "commit",
    ] {
        assert!(ev.iter().any(|e| e == want), "{want} missing from {ev:?}");
    }
    assert_eq!(ev.iter().filter(|e| *e == "install.switched").count(), 3);
}

#[test]
fn daemon_failing_to_come_up_rolls_back_by_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path();
    let k = keys(base, "lab");
    let root = base.join("root");
    install_with(
        &root,
        &trust(&k),
        &Echo,
        &make_bundle(base, &k, "v1", "1.0.0"),
        false,
    )
    .unwrap();
    bundle::on_daemon_start(&root).unwrap();
    bundle::mark_good(&root, SlotId::A).unwrap();
    install_with(
        &root,
        &trust(&k),
        &Echo,
        &make_bundle(base, &k, "v2", "2.0.0"),
        false,
    )
    .unwrap();

    // Three starts on the new slot that never reach READY...
    for attempt in 1..=3 {
        let c = bundle::on_daemon_start(&root).unwrap();
        assert_eq!((c.slot, c.trial), (SlotId::B, Some((attempt, 3))));
    }
    // ...and the fourth start runs the old slot, committed.
    let c = bundle::on_daemon_start(&root).unwrap();
    assert_eq!(c.slot, SlotId::A);
    assert_eq!(c.trial, None);
    assert_eq!(c.info.unwrap().manifest.version, "1.0.0");
    assert!(c.notes[0].contains("did not reach READY"), "{:?}", c.notes);
    let st = bundle::read_state(&root).unwrap();
    assert!(st.committed);
    assert_eq!(
        st.previous, None,
        "the failed slot is not a rollback target"
    );
    assert!(events(&root).contains(&"rollback.auto".to_string()));
    // The board keeps running the old slot.
    assert_eq!(bundle::on_daemon_start(&root).unwrap().slot, SlotId::A);
}

#[test]
fn first_bundle_failing_rolls_back_to_factory() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path();
    let k = keys(base, "lab");
    let root = base.join("root");
    let opts = bundle::InstallOptions {
        state_root: root.clone(),
        trust: &trust(&k),
        self_test: &Echo,
        force: false,
        max_boot_attempts: 1,
        free_space: &plenty,
    };
    bundle::install(&make_bundle(base, &k, "v1", "1.0.0"), &opts).unwrap();
    assert_eq!(bundle::on_daemon_start(&root).unwrap().slot, SlotId::A);
    let c = bundle::on_daemon_start(&root).unwrap();
    assert_eq!(c.slot, SlotId::Factory);
    assert!(c.info.is_none());
}

#[test]
fn damaged_active_slot_falls_back_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path();
    let k = keys(base, "lab");
    let root = base.join("root");
    install_with(
        &root,
        &trust(&k),
        &Echo,
        &make_bundle(base, &k, "v1", "1.0.0"),
        false,
    )
    .unwrap();
    bundle::mark_good(&root, SlotId::A).unwrap();
    install_with(
        &root,
        &trust(&k),
        &Echo,
        &make_bundle(base, &k, "v2", "2.0.0"),
        false,
    )
    .unwrap();
    bundle::mark_good(&root, SlotId::B).unwrap();
    // Bit rot in the active model.
    let model = root.join("slots/b/model/student.onnx");
    let mut bytes = fs::read(&model).unwrap();
    bytes[7] ^= 1;
    fs::write(&model, bytes).unwrap();
    let st = bundle::status(&root, 0).unwrap();
    assert!(!st.active.valid);
    assert!(st.active.problem.as_deref().unwrap().contains("sha256"));
    let c = bundle::on_daemon_start(&root).unwrap();
    assert_eq!(c.slot, SlotId::A);
    assert!(c.notes[0].contains("damaged"));
    assert!(events(&root).contains(&"rollback.integrity".to_string()));
    assert!(bundle::status(&root, 0).unwrap().active.valid);
}

#[test]
fn manual_rollback_toggles_and_refuses_damaged_target() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path();
    let k = keys(base, "lab");
    let root = base.join("root");
    install_with(
        &root,
        &trust(&k),
        &Echo,
        &make_bundle(base, &k, "v1", "1.0.0"),
        false,
    )
    .unwrap();
    bundle::mark_good(&root, SlotId::A).unwrap();
    install_with(
        &root,
        &trust(&k),
        &Echo,
        &make_bundle(base, &k, "v2", "2.0.0"),
        false,
    )
    .unwrap();
    assert_eq!(bundle::rollback(&root).unwrap(), (SlotId::B, SlotId::A));
    let st = bundle::read_state(&root).unwrap();
    assert!(st.committed, "slot a had reached READY before");
    assert!(!st.previous_committed);
    // Rolling back again returns to b, which goes back on trial.
    assert_eq!(bundle::rollback(&root).unwrap(), (SlotId::A, SlotId::B));
    assert!(!bundle::read_state(&root).unwrap().committed);
    fs::remove_file(root.join("slots/a/golden/good_0.png")).unwrap();
    let before = snapshot(&root);
    let err = bundle::rollback(&root).unwrap_err();
    assert!(
        matches!(err, bundle::BundleError::NoRollbackTarget(ref m) if m.contains("damaged")),
        "{err}"
    );
    assert_eq!(snapshot(&root), before);
    assert!(events(&root).contains(&"rollback.refused".to_string()));
}

#[test]
fn leftovers_of_an_interrupted_install_are_cleaned() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path();
    let k = keys(base, "lab");
    let root = base.join("root");
    install_with(
        &root,
        &trust(&k),
        &Echo,
        &make_bundle(base, &k, "v1", "1.0.0"),
        false,
    )
    .unwrap();
    fs::create_dir_all(root.join("slots/b.staging/model")).unwrap();
    fs::write(root.join("slots/b.staging/model/junk"), b"half").unwrap();
    fs::write(root.join("current.tmp"), b"{half").unwrap();
    install_with(
        &root,
        &trust(&k),
        &Echo,
        &make_bundle(base, &k, "v2", "2.0.0"),
        false,
    )
    .unwrap();
    assert!(!root.join("slots/b.staging").exists());
    assert!(!root.join("current.tmp").exists());
    assert!(!root.join("slots/b/model/junk").exists());
}

#[test]
fn keys_files_and_trust_store() {
    let tmp = tempfile::tempdir().unwrap();
    let k = keys(tmp.path(), "lab");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&k.secret).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Never overwrites a key.
    assert!(bundle::generate_keypair(&k.dir, "lab").is_err());
    assert!(bundle::generate_keypair(&k.dir, "../x").is_err());
    let t = trust(&k);
    assert_eq!(t.len(), 1);
    // A malformed .pub is named.
    fs::write(
        k.public_dir.join("broken.pub"),
        "endface-ed25519-public-v1 zz",
    )
    .unwrap();
    let err = bundle::TrustStore::load(&k.public_dir).err().unwrap();
    assert!(err.to_string().contains("broken.pub"), "{err}");
    // A secret key file is not accepted as a public key and vice versa.
    assert!(bundle::SigningKeyFile::load(&k.public_dir.join("lab.pub")).is_err());
}

#[test]
fn create_refuses_inconsistent_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path();
    let k = keys(base, "lab");
    let key = bundle::SigningKeyFile::load(&k.secret).unwrap();
    // Model does not match its manifest's sha256.
    let opts = sources(base, "x", "1.0.0");
    fs::write(&opts.model, b"other model").unwrap();
    let err = bundle::create_bundle(&opts, &key).unwrap_err();
    assert!(err.to_string().contains("wrong pair"), "{err}");
    // Golden image missing.
    let opts = sources(base, "y", "1.0.0");
    fs::remove_file(opts.golden_dir.join("good_0.png")).unwrap();
    assert!(bundle::create_bundle(&opts, &key)
        .unwrap_err()
        .to_string()
        .contains("does not exist"));
    // Empty golden set.
    let opts = sources(base, "z", "1.0.0");
    fs::write(opts.golden_dir.join("expected.jsonl"), "\n").unwrap();
    assert!(bundle::create_bundle(&opts, &key)
        .unwrap_err()
        .to_string()
        .contains("no golden cases"));
    // Bad version.
    let mut opts = sources(base, "w", "1.0.0");
    opts.version = Some("1.0-beta".into());
    assert!(bundle::create_bundle(&opts, &key)
        .unwrap_err()
        .to_string()
        .contains("dotted numbers"));
    assert!(!opts.output.exists());
}

#[test]
fn files_the_daemon_writes_belong_to_the_state_roots_owner() {
    // A root-run install must leave the journal, lock and pointer writable by the daemon's
    // user (the owner of the state root). Only meaningful as root.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: not root");
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path();
    let k = keys(base, "lab");
    let root = base.join("root");
    fs::create_dir_all(&root).unwrap();
    std::os::unix::fs::chown(&root, Some(54321), Some(54322)).unwrap();
    install_with(
        &root,
        &trust(&k),
        &Echo,
        &make_bundle(base, &k, "v1", "1.0.0"),
        false,
    )
    .unwrap();
    for p in ["current", "lock", "journal", "journal/bundle.jsonl"] {
        let m = fs::metadata(root.join(p)).unwrap();
        assert_eq!((m.uid(), m.gid()), (54321, 54322), "{p}");
    }
}

#[test]
fn long_paths_round_trip_through_gnu_long_names() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path();
    let k = keys(base, "lab");
    let mut opts = sources(base, "long", "1.0.0");
    let long = format!("{}/{}.png", "d".repeat(90), "f".repeat(120));
    fs::create_dir_all(opts.golden_dir.join("d".repeat(90))).unwrap();
    fs::write(opts.golden_dir.join(&long), b"img").unwrap();
    fs::write(
        opts.golden_dir.join("expected.jsonl"),
        format!("{{\"image\": \"{long}\", \"verdict\": \"pass\"}}\n"),
    )
    .unwrap();
    opts.output = base.join("long.bundle");
    bundle::create_bundle(&opts, &bundle::SigningKeyFile::load(&k.secret).unwrap()).unwrap();
    bundle::verify_bundle(&opts.output, &trust(&k)).unwrap();
    let root = base.join("root");
    install_with(&root, &trust(&k), &Echo, &opts.output, false).unwrap();
    assert!(root.join("slots/a/golden").join(&long).is_file());
}
