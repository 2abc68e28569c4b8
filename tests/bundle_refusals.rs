//! Every refusal of `bundle install` (and `bundle verify`): the error names the problem, the
//! journal records it, and the board's slots and pointer are byte-for-byte unchanged.

mod bundle_support;

use bundle_support::*;
use endface::bundle::{self, BundleError, SlotId};
use std::fs;
use std::path::{Path, PathBuf};

struct Board {
    _tmp: tempfile::TempDir,
    base: PathBuf,
    root: PathBuf,
    keys: Keys,
}

/// A board running bundle 1.0.0 from slot a.
fn board() -> Board {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().to_path_buf();
    let keys = keys(&base, "lab");
    let root = base.join("root");
    let b1 = make_bundle(&base, &keys, "v1", "1.0.0");
    let rep = install_with(&root, &trust(&keys), &Echo, &b1, false).unwrap();
    assert_eq!(rep.slot, SlotId::A);
    Board {
        _tmp: tmp,
        base,
        root,
        keys,
    }
}

/// Install `bundle_path`, expect a refusal matching `pred`, and check nothing changed.
fn refused(
    b: &Board,
    bundle_path: &Path,
    st: &dyn endface::bundle::SelfTest,
    pred: impl Fn(&BundleError) -> bool,
) -> BundleError {
    let before = snapshot(&b.root);
    let err = install_with(&b.root, &trust(&b.keys), st, bundle_path, false).unwrap_err();
    assert!(pred(&err), "unexpected error: {err:?}");
    assert!(err.is_refusal(), "{err:?}");
    assert_eq!(
        snapshot(&b.root),
        before,
        "board changed after refusal: {err}"
    );
    let journal = bundle::read_journal(&b.root).unwrap();
    let last = journal.last().unwrap();
    assert!(
        last["event"]
            .as_str()
            .unwrap()
            .starts_with("install.refused"),
        "{last}"
    );
    assert_eq!(last["reason"], err.kind());
    let st = bundle::status(&b.root, 0).unwrap();
    assert_eq!(st.state.active, SlotId::A);
    assert!(st.active.valid);
    assert_eq!(st.active.version.as_deref(), Some("1.0.0"));
    // `verify` refuses the same bundles (except the install-only checks).
    err
}

fn v2(b: &Board) -> PathBuf {
    make_bundle(&b.base, &b.keys, "v2", "2.0.0")
}

#[test]
fn bad_signature_manifest_edited_after_signing() {
    let b = board();
    let path = v2(&b);
    let mut entries = read_entries(&path);
    let text = String::from_utf8(entries[0].data.clone()).unwrap();
    entries[0].data = text.replace("\"2.0.0\"", "\"9.0.0\"").into_bytes();
    write_entries(&path, &entries);
    let err = refused(&b, &path, &Echo, |e| {
        matches!(e, BundleError::BadSignature { .. })
    });
    assert!(err.to_string().contains("does not verify"), "{err}");
    assert!(matches!(
        bundle::verify_bundle(&path, &trust(&b.keys)),
        Err(BundleError::BadSignature { .. })
    ));
}

#[test]
fn bad_signature_bytes() {
    let b = board();
    let path = v2(&b);
    let mut entries = read_entries(&path);
    let line = String::from_utf8(entries[1].data.clone()).unwrap();
    let (kid, sig) = line.trim().split_once(' ').unwrap();
    let mut raw = hex::decode(sig).unwrap();
    raw[10] ^= 1;
    entries[1].data = format!("{kid} {}\n", hex::encode(raw)).into_bytes();
    write_entries(&path, &entries);
    refused(&b, &path, &Echo, |e| {
        matches!(e, BundleError::BadSignature { .. })
    });
}

#[test]
fn unknown_key() {
    let b = board();
    let other = keys(&b.base, "intruder");
    let path = make_bundle(&b.base, &other, "v2x", "2.0.0");
    let err = refused(&b, &path, &Echo, |e| {
        matches!(e, BundleError::UnknownKey { .. })
    });
    assert!(
        err.to_string().contains("not among the trusted keys"),
        "{err}"
    );
    // An empty or missing keys directory trusts nothing.
    let none = endface::bundle::TrustStore::load(&b.base.join("no-such-dir")).unwrap();
    assert!(matches!(
        bundle::verify_bundle(&path, &none),
        Err(BundleError::UnknownKey { .. })
    ));
}

#[test]
fn truncated_archive_at_many_lengths() {
    let b = board();
    let path = v2(&b);
    let full = fs::read(&path).unwrap();
    let cut_path = b.base.join("cut.tar");
    // Inside a header, inside data, at block boundaries, just before the end-of-archive blocks.
    let mut cuts: Vec<usize> = vec![0, 100, 511, 512, 1024, 1536, 2048, 3000, full.len() / 2];
    cuts.extend((1..=6).map(|k| full.len() - 1024 - 512 * k));
    for cut in cuts {
        fs::write(&cut_path, &full[..cut]).unwrap();
        let err = refused(&b, &cut_path, &Echo, |e| {
            matches!(e, BundleError::CorruptArchive(_))
        });
        assert!(
            err.to_string().contains("truncated") || err.to_string().contains("corrupt"),
            "cut {cut}: {err}"
        );
    }
}

#[test]
fn corrupt_header_and_garbage() {
    let b = board();
    let path = v2(&b);
    let mut bytes = fs::read(&path).unwrap();
    // Flip a byte in the third entry's header (first payload file's name field).
    let third_header = bytes
        .chunks(512)
        .enumerate()
        .filter(|(_, c)| c.starts_with(b"model/"))
        .map(|(i, _)| i)
        .next()
        .unwrap();
    bytes[third_header * 512 + 3] ^= 0x20;
    let bad = b.base.join("bad-header.tar");
    fs::write(&bad, &bytes).unwrap();
    refused(
        &b,
        &bad,
        &Echo,
        |e| matches!(e, BundleError::CorruptArchive(m) if m.contains("checksum")),
    );
    let garbage = b.base.join("garbage.tar");
    fs::write(&garbage, vec![0x5au8; 4096]).unwrap();
    refused(&b, &garbage, &Echo, |e| {
        matches!(e, BundleError::CorruptArchive(_))
    });
}

fn with_extra(b: &Board, extra: RawEntry) -> PathBuf {
    let path = v2(b);
    let mut entries = read_entries(&path);
    entries.insert(2, extra);
    let out = b.base.join("hostile.tar");
    write_entries(&out, &entries);
    out
}

#[test]
fn path_escapes_are_refused_before_anything_is_written() {
    let b = board();
    for name in [
        "../escape",
        "model/../../escape",
        "/tmp/endface-escape",
        "golden//x",
        "./model/x",
    ] {
        let path = with_extra(&b, entry(name, b'0', b"evil"));
        let err = refused(&b, &path, &Echo, |e| {
            matches!(e, BundleError::UnsafeEntry { .. })
        });
        assert!(
            !b.base.join("escape").exists() && !b.root.join("escape").exists(),
            "{name}"
        );
        assert!(!Path::new("/tmp/endface-escape").exists());
        assert!(err.to_string().contains("refused"), "{err}");
    }
}

#[test]
fn links_and_devices_are_refused() {
    let b = board();
    for (kind, what) in [
        (b'2', "symbolic link"),
        (b'1', "hard link"),
        (b'3', "device"),
        (b'4', "device"),
        (b'6', "FIFO"),
        (b'5', "directory"),
    ] {
        let mut e = entry("model/student.onnx", kind, b"");
        e.link = b"/etc/shadow".to_vec();
        let path = with_extra(&b, e);
        let err = refused(&b, &path, &Echo, |e| {
            matches!(e, BundleError::UnsafeEntry { .. })
        });
        assert!(err.to_string().contains(what), "{what}: {err}");
    }
}

#[test]
fn duplicate_entry_is_refused() {
    let b = board();
    let path = v2(&b);
    let mut entries = read_entries(&path);
    let dup = entries
        .iter()
        .find(|e| e.name.starts_with(b"golden/good"))
        .unwrap()
        .clone();
    entries.push(dup);
    write_entries(&path, &entries);
    let err = refused(&b, &path, &Echo, |e| {
        matches!(e, BundleError::UnsafeEntry { .. })
    });
    assert!(err.to_string().contains("twice"), "{err}");
}

#[test]
fn unlisted_entry_is_refused() {
    let b = board();
    let path = with_extra(&b, entry("model/extra.bin", b'0', b"smuggled"));
    let err = refused(&b, &path, &Echo, |e| {
        matches!(e, BundleError::UnsafeEntry { .. })
    });
    assert!(err.to_string().contains("not listed"), "{err}");
}

#[test]
fn oversize_entries_are_refused() {
    let b = board();
    // A payload entry larger than the signed size.
    let path = v2(&b);
    let mut entries = read_entries(&path);
    let model = entries
        .iter_mut()
        .find(|e| e.name == b"model/student.onnx")
        .unwrap();
    model.data.extend_from_slice(&[0u8; 100_000]);
    write_entries(&path, &entries);
    refused(
        &b,
        &path,
        &Echo,
        |e| matches!(e, BundleError::FileMismatch { reason, .. } if reason.contains("bytes in the archive")),
    );
    // A bundle.json above the 1 MiB limit is not even read.
    let mut entries = read_entries(&v2(&b));
    entries[0].data = vec![b' '; (1 << 20) + 1];
    write_entries(&path, &entries);
    refused(
        &b,
        &path,
        &Echo,
        |e| matches!(e, BundleError::UnsafeEntry { reason, .. } if reason.contains("at most")),
    );
}

#[test]
fn manifest_and_file_mismatch() {
    let b = board();
    // Same size, different bytes.
    let path = v2(&b);
    let mut entries = read_entries(&path);
    let model = entries
        .iter_mut()
        .find(|e| e.name == b"model/student.onnx")
        .unwrap();
    model.data[42] ^= 0xff;
    write_entries(&path, &entries);
    let err = refused(&b, &path, &Echo, |e| {
        matches!(e, BundleError::FileMismatch { .. })
    });
    assert!(err.to_string().contains("sha256"), "{err}");
    assert!(matches!(
        bundle::verify_bundle(&path, &trust(&b.keys)),
        Err(BundleError::FileMismatch { .. })
    ));
    // A listed file missing from the archive.
    let mut entries = read_entries(&v2(&b));
    entries.retain(|e| e.name != b"golden/good_0.png");
    write_entries(&path, &entries);
    let err = refused(&b, &path, &Echo, |e| {
        matches!(e, BundleError::CorruptArchive(_))
    });
    assert!(err.to_string().contains("missing"), "{err}");
}

#[test]
fn signed_manifest_with_escaping_path_is_refused() {
    // Even a correctly signed manifest may not name paths outside the slot.
    let b = board();
    let path = v2(&b);
    let mut entries = read_entries(&path);
    let mut m: serde_json::Value = serde_json::from_slice(&entries[0].data).unwrap();
    m["files"][0]["path"] = "../../etc/cron.d/x".into();
    let bytes = serde_json::to_vec(&m).unwrap();
    let key = endface::bundle::SigningKeyFile::load(&b.keys.secret).unwrap();
    let sig = ed25519_dalek::Signer::sign(
        &key.key,
        &endface::bundle::BundleManifest::signed_message(&bytes),
    );
    entries[0].data = bytes;
    entries[1].data = format!("{} {}\n", key.key_id, hex::encode(sig.to_bytes())).into_bytes();
    write_entries(&path, &entries);
    refused(&b, &path, &Echo, |e| {
        matches!(e, BundleError::UnsafeEntry { .. })
    });
}

#[test]
fn self_test_failure_keeps_old_slot() {
    let b = board();
    let path = v2(&b);
    let err = refused(&b, &path, &AllPass, |e| {
        matches!(e, BundleError::SelfTestFailed(_))
    });
    assert!(
        err.to_string()
            .contains("sub/bad_1.png: verdict pass (recorded FAIL)"),
        "{err}"
    );
    let journal = bundle::read_journal(&b.root).unwrap();
    assert!(journal.iter().any(|e| e["event"] == "selftest.fail"));
    refused(
        &b,
        &path,
        &Broken,
        |e| matches!(e, BundleError::SelfTestFailed(m) if m.contains("model failed to load")),
    );
    // A score check with a tolerance.
    let mut opts = sources(&b.base, "v3", "3.0.0");
    fs::write(
        opts.golden_dir.join("expected.jsonl"),
        "{\"image\": \"good_0.png\", \"verdict\": \"pass\", \"image_score\": 0.1, \"score_tolerance\": 0.01}\n",
    )
    .unwrap();
    opts.output = b.base.join("v3.tar");
    endface::bundle::create_bundle(
        &opts,
        &endface::bundle::SigningKeyFile::load(&b.keys.secret).unwrap(),
    )
    .unwrap();
    struct Drifted;
    impl endface::bundle::SelfTest for Drifted {
        fn run(
            &self,
            i: &endface::bundle::SelfTestInput,
        ) -> Result<Vec<endface::bundle::GoldenOutcome>, endface::bundle::SelfTestError> {
            Ok(i.cases
                .iter()
                .map(|c| endface::bundle::GoldenOutcome {
                    verdict: c.verdict.clone(),
                    image_score: Some(0.2),
                })
                .collect())
        }
    }
    refused(
        &b,
        &opts.output,
        &Drifted,
        |e| matches!(e, BundleError::SelfTestFailed(m) if m.contains("image score")),
    );
}

#[test]
fn older_and_same_version_need_force() {
    let b = board();
    let old = make_bundle(&b.base, &b.keys, "v0", "0.9.0");
    let err = refused(&b, &old, &Echo, |e| {
        matches!(e, BundleError::OlderVersion { .. })
    });
    assert!(err.to_string().contains("--force"), "{err}");
    let same = make_bundle(&b.base, &b.keys, "v1b", "1.0.0");
    refused(&b, &same, &Echo, |e| {
        matches!(e, BundleError::SameVersion { .. })
    });
    let rep = install_with(&b.root, &trust(&b.keys), &Echo, &old, true).unwrap();
    assert_eq!((rep.slot, rep.version.as_str()), (SlotId::B, "0.9.0"));
}

#[test]
fn no_disk_space() {
    let b = board();
    let path = v2(&b);
    let before = snapshot(&b.root);
    let tiny = |_: &Path| Ok(4096u64);
    let opts = endface::bundle::InstallOptions {
        state_root: b.root.clone(),
        trust: &trust(&b.keys),
        self_test: &Echo,
        force: false,
        max_boot_attempts: 3,
        free_space: &tiny,
    };
    let err = endface::bundle::install(&path, &opts).unwrap_err();
    assert!(
        matches!(
            err,
            BundleError::NoSpace {
                free_bytes: 4096,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("not enough disk space"), "{err}");
    assert_eq!(snapshot(&b.root), before);
    // statvfs itself answers for a real directory.
    assert!(endface::bundle::statvfs_free_bytes(&b.root).unwrap() > 0);
}
