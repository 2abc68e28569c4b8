//! A/B slots under a state root: install (verify → unpack to staging → self-test → place →
//! atomic switch), manual rollback, the daemon's boot bookkeeping (trial counter, automatic
//! rollback, integrity check of the slot it is about to use) and status. In: a bundle, trusted
//! keys, a [`SelfTest`]. Out: the `current` pointer, the slot directories and the journal.
//!
//! Invariant kept at every instant (and so after a crash at any step): `current` is either
//! absent (factory files) or a complete JSON [`SlotState`] whose active slot directory is
//! complete, because slot directories appear only by renaming a fully written, fsync'd staging
//! directory, and the slot pointed to by `current` is never deleted or written.

use super::archive::{read_bundle, VerifiedBundle};
use super::fsutil::{
    create_dir_durable, fault_point, fsync_dir, lock_exclusive, remove_tree_durable,
    replace_atomic, sync_tree, tmp_path,
};
use super::journal;
use super::keys::TrustStore;
use super::manifest::{compare_versions, BundleManifest, MANIFEST_NAME};
use super::selftest::{check_golden, read_expected, SelfTest, SelfTestInput};
use super::BundleError;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::cmp::Ordering;
use std::fs;
use std::path::{Path, PathBuf};

/// Default state root on a board.
pub const DEFAULT_STATE_ROOT: &str = "/var/lib/endface";
/// Default directory of trusted public keys on a board.
pub const DEFAULT_KEYS_DIR: &str = "/etc/endface/keys";
/// Daemon starts allowed after a switch without reaching READY before rolling back.
pub const DEFAULT_MAX_BOOT_ATTEMPTS: u32 = 3;
const STATE_FILE: &str = "current";
const STATE_SCHEMA: &str = "endface.slots/1";
const LOCK_FILE: &str = "lock";
/// Free space kept beyond the unpacked bundle (journal, database, filesystem slack).
const SPACE_MARGIN_BYTES: u64 = 8 << 20;

/// Which files the station runs from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SlotId {
    /// The files the station config names (installed by the Debian package).
    Factory,
    A,
    B,
}

impl SlotId {
    /// Directory name under `slots/`, none for the factory files.
    pub fn dir_name(self) -> Option<&'static str> {
        match self {
            SlotId::Factory => None,
            SlotId::A => Some("a"),
            SlotId::B => Some("b"),
        }
    }

    /// The slot an install writes when `self` is active.
    pub fn install_target(self) -> SlotId {
        match self {
            SlotId::A => SlotId::B,
            SlotId::B | SlotId::Factory => SlotId::A,
        }
    }
}

impl std::fmt::Display for SlotId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SlotId::Factory => "factory",
            SlotId::A => "a",
            SlotId::B => "b",
        })
    }
}

/// Contents of `<state root>/current`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotState {
    pub schema: String,
    pub active: SlotId,
    /// Rollback target (`None`: nothing to roll back to).
    pub previous: Option<SlotId>,
    /// Whether the previous slot had reached READY when it was left.
    pub previous_committed: bool,
    /// False from a switch until the daemon reaches READY on the active slot.
    pub committed: bool,
    /// Daemon starts on the active slot while uncommitted.
    pub boot_attempts: u32,
    pub max_boot_attempts: u32,
    /// Incremented on every write.
    pub generation: u64,
}

impl Default for SlotState {
    fn default() -> Self {
        SlotState {
            schema: STATE_SCHEMA.to_string(),
            active: SlotId::Factory,
            previous: None,
            previous_committed: true,
            committed: true,
            boot_attempts: 0,
            max_boot_attempts: DEFAULT_MAX_BOOT_ATTEMPTS,
            generation: 0,
        }
    }
}

fn state_path(root: &Path) -> PathBuf {
    root.join(STATE_FILE)
}

fn slots_dir(root: &Path) -> PathBuf {
    root.join("slots")
}

fn slot_dir(root: &Path, slot: SlotId) -> Option<PathBuf> {
    slot.dir_name().map(|d| slots_dir(root).join(d))
}

fn staging_dir(root: &Path, slot: SlotId) -> Option<PathBuf> {
    slot.dir_name()
        .map(|d| slots_dir(root).join(format!("{d}.staging")))
}

/// Read the pointer; absent means factory files, committed.
pub fn read_state(root: &Path) -> Result<SlotState, BundleError> {
    let path = state_path(root);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(SlotState::default()),
        Err(e) => return Err(BundleError::io(&path, e)),
    };
    let state: SlotState = serde_json::from_slice(&bytes).map_err(|e| BundleError::BadState {
        path: path.clone(),
        reason: format!("{e}; remove it to boot the factory files"),
    })?;
    if state.schema != STATE_SCHEMA {
        return Err(BundleError::BadState {
            path,
            reason: format!(
                "schema `{}`, this build reads `{STATE_SCHEMA}`",
                state.schema
            ),
        });
    }
    Ok(state)
}

fn write_state(root: &Path, state: &mut SlotState, fault_prefix: &str) -> Result<(), BundleError> {
    state.generation += 1;
    let bytes = serde_json::to_vec_pretty(state).map_err(|e| BundleError::BadState {
        path: state_path(root),
        reason: format!("serializing: {e}"),
    })?;
    // The pointer gets the state root's owner before it becomes visible.
    replace_atomic(&state_path(root), &bytes, fault_prefix, root)
}

/// An intact installed slot.
#[derive(Debug, Clone)]
pub struct SlotInfo {
    pub slot: SlotId,
    pub dir: PathBuf,
    pub manifest: BundleManifest,
    /// Absolute paths inside `dir`.
    pub model_manifest: PathBuf,
    pub station_config: Option<PathBuf>,
    pub profiles: Vec<PathBuf>,
}

impl SlotInfo {
    fn from_manifest(slot: SlotId, dir: PathBuf, manifest: BundleManifest) -> SlotInfo {
        SlotInfo {
            slot,
            model_manifest: dir.join(&manifest.model_manifest),
            station_config: manifest.station_config.as_ref().map(|c| dir.join(c)),
            profiles: manifest.profiles.iter().map(|p| dir.join(p)).collect(),
            dir,
            manifest,
        }
    }
}

/// Check an installed slot: its `bundle.json` parses and every listed file is a regular file
/// of the listed size and sha256. (Authenticity was checked at install; this catches damage.)
pub fn verify_slot(root: &Path, slot: SlotId) -> Result<SlotInfo, BundleError> {
    let Some(dir) = slot_dir(root, slot) else {
        return Err(BundleError::BadInput(
            "the factory files are not a slot".into(),
        ));
    };
    let damaged = |reason: String| BundleError::BadState {
        path: dir.clone(),
        reason,
    };
    let mpath = dir.join(MANIFEST_NAME);
    let bytes = fs::read(&mpath).map_err(|e| damaged(format!("{MANIFEST_NAME}: {e}")))?;
    let manifest = BundleManifest::parse(&bytes).map_err(|e| damaged(e.to_string()))?;
    for f in &manifest.files {
        let p = dir.join(&f.path);
        let meta = fs::symlink_metadata(&p).map_err(|e| damaged(format!("{}: {e}", f.path)))?;
        if !meta.file_type().is_file() || meta.len() != f.size {
            return Err(damaged(format!(
                "{}: not a regular file of {} bytes",
                f.path, f.size
            )));
        }
        let mut file = fs::File::open(&p).map_err(|e| damaged(format!("{}: {e}", f.path)))?;
        let mut hasher = Sha256::new();
        std::io::copy(&mut file, &mut hasher).map_err(|e| damaged(format!("{}: {e}", f.path)))?;
        if hex::encode(hasher.finalize()) != f.sha256 {
            return Err(damaged(format!(
                "{}: sha256 differs from the manifest",
                f.path
            )));
        }
    }
    Ok(SlotInfo::from_manifest(slot, dir, manifest))
}

/// Options of [`install`].
pub struct InstallOptions<'a> {
    pub state_root: PathBuf,
    pub trust: &'a TrustStore,
    pub self_test: &'a dyn SelfTest,
    /// Allow a version older than (or equal to) the active one.
    pub force: bool,
    pub max_boot_attempts: u32,
    /// Free bytes on the file system of a path (statvfs on a board, injectable in tests).
    pub free_space: &'a dyn Fn(&Path) -> std::io::Result<u64>,
}

/// What [`install`] did.
#[derive(Debug, Clone, Serialize)]
pub struct InstallReport {
    pub slot: SlotId,
    pub version: String,
    pub key_id: String,
    pub previous: SlotId,
    pub previous_version: Option<String>,
    pub golden_cases: usize,
    /// True when the slot left behind had not reached READY (it is the rollback target now).
    pub previous_uncommitted: bool,
}

fn slot_version(root: &Path, slot: SlotId) -> Option<String> {
    let dir = slot_dir(root, slot)?;
    let bytes = fs::read(dir.join(MANIFEST_NAME)).ok()?;
    BundleManifest::parse(&bytes).ok().map(|m| m.version)
}

/// Install a bundle into the inactive slot and switch to it. On any error the active slot is
/// untouched and the refusal is journalled.
pub fn install(bundle: &Path, opts: &InstallOptions<'_>) -> Result<InstallReport, BundleError> {
    let root = opts.state_root.as_path();
    create_dir_durable(&slots_dir(root))?;
    let _lock = lock_exclusive(&root.join(LOCK_FILE))?;
    fault_point("install.locked");
    let bundle_bytes = fs::metadata(bundle).map(|m| m.len()).ok();
    journal::append(
        root,
        "install.start",
        json!({"bundle": bundle.display().to_string(), "bundle_bytes": bundle_bytes}),
    )?;
    let mut staging: Option<PathBuf> = None;
    let result = install_locked(bundle, opts, &mut staging);
    if let Err(err) = &result {
        if let Some(dir) = &staging {
            // Best effort; the next install removes leftovers anyway.
            let _ = fs::remove_dir_all(dir);
        }
        let fields = json!({"bundle": bundle.display().to_string(), "reason": err.kind(), "message": err.to_string()});
        let event = if matches!(err, BundleError::SelfTestFailed(_)) {
            "install.refused.selftest"
        } else {
            "install.refused"
        };
        // The refusal is what the caller must see; a journal failure here is secondary.
        let _ = journal::append(root, event, fields);
    }
    result
}

fn install_locked(
    bundle: &Path,
    opts: &InstallOptions<'_>,
    staging_out: &mut Option<PathBuf>,
) -> Result<InstallReport, BundleError> {
    let root = opts.state_root.as_path();
    let mut state = read_state(root)?;

    // Leftovers of an interrupted install or pointer write.
    let _ = fs::remove_file(tmp_path(&state_path(root)));
    for s in [SlotId::A, SlotId::B] {
        if let Some(d) = staging_dir(root, s) {
            remove_tree_durable(&d)?;
        }
    }

    let target = state.active.install_target();
    let previous_version = slot_version(root, state.active);
    let Some(staging) = staging_dir(root, target) else {
        return Err(BundleError::BadInput("no slot to install into".into())); // unreachable: targets are A or B
    };
    let Some(target_dir) = slot_dir(root, target) else {
        return Err(BundleError::BadInput("no slot to install into".into()));
    };

    let verified: VerifiedBundle = read_bundle(bundle, opts.trust, Some(&staging), &mut |vb| {
        let version = &vb.manifest.version;
        if let Some(installed) = &previous_version {
            match compare_versions(version, installed) {
                Some(Ordering::Less) if !opts.force => {
                    return Err(BundleError::OlderVersion {
                        bundle: version.clone(),
                        installed: installed.clone(),
                    })
                }
                Some(Ordering::Equal) if !opts.force => {
                    return Err(BundleError::SameVersion {
                        bundle: version.clone(),
                    })
                }
                _ => {}
            }
        }
        let needed_bytes = vb
            .manifest
            .payload_bytes()
            .saturating_add(vb.manifest_bytes.len() as u64 + 1024)
            .saturating_add(4096 * (vb.manifest.files.len() as u64 + 2))
            .saturating_add(SPACE_MARGIN_BYTES);
        let sdir = slots_dir(root);
        let free_bytes = (opts.free_space)(&sdir).map_err(|e| BundleError::io(&sdir, e))?;
        if free_bytes < needed_bytes {
            return Err(BundleError::NoSpace {
                path: sdir,
                needed_bytes,
                free_bytes,
            });
        }
        fault_point("install.verified");
        fs::create_dir(&staging).map_err(|e| BundleError::io(&staging, e))?;
        *staging_out = Some(staging.clone());
        Ok(())
    })?;
    sync_tree(&staging)?;
    fsync_dir(&slots_dir(root))?;
    fault_point("install.unpacked");
    let manifest = &verified.manifest;

    // Self-test on the staging copy: a failure leaves the board exactly as it was.
    let info = SlotInfo::from_manifest(target, staging.clone(), manifest.clone());
    let expected_path = staging.join(&manifest.golden_expected);
    let cases = read_expected(&expected_path)
        .map_err(|e| BundleError::SelfTestFailed(format!("golden set: {e}")))?;
    let golden_dir = expected_path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| staging.clone());
    let images = cases.iter().map(|c| golden_dir.join(&c.image)).collect();
    let input = SelfTestInput {
        slot_dir: staging.clone(),
        model_manifest: info.model_manifest.clone(),
        station_config: info.station_config.clone(),
        profiles: info.profiles.clone(),
        golden_dir,
        cases: cases.clone(),
        images,
    };
    let verdict = opts
        .self_test
        .run(&input)
        .map_err(|e| format!("could not run: {e}"))
        .and_then(|outcomes| check_golden(&cases, &outcomes));
    match verdict {
        Ok(()) => journal::append(
            root,
            "selftest.pass",
            json!({"slot": target, "version": manifest.version, "cases": cases.len()}),
        )?,
        Err(problems) => {
            journal::append(
                root,
                "selftest.fail",
                json!({"slot": target, "version": manifest.version, "cases": cases.len(), "problems": problems}),
            )?;
            return Err(BundleError::SelfTestFailed(problems));
        }
    }
    fault_point("install.selftest_passed");

    // Place: forget the target as rollback target, replace it by the staging directory.
    if state.previous == Some(target) {
        state.previous = None;
        write_state(root, &mut state, "install.prepare")?;
    }
    remove_tree_durable(&target_dir)?;
    fault_point("install.slot_cleared");
    fs::rename(&staging, &target_dir).map_err(|e| BundleError::io(&target_dir, e))?;
    *staging_out = None;
    fsync_dir(&slots_dir(root))?;
    fault_point("install.slot_placed");

    // Switch.
    let previous = state.active;
    let previous_committed = state.committed;
    let mut next = SlotState {
        schema: STATE_SCHEMA.to_string(),
        active: target,
        previous: Some(previous),
        previous_committed,
        committed: false,
        boot_attempts: 0,
        max_boot_attempts: opts.max_boot_attempts.max(1),
        generation: state.generation,
    };
    write_state(root, &mut next, "install.switch")?;
    journal::append(
        root,
        "install.switched",
        json!({"slot": target, "version": manifest.version, "key_id": manifest.key_id,
               "previous": previous, "previous_version": previous_version,
               "previous_committed": previous_committed}),
    )?;
    fault_point("install.done");
    Ok(InstallReport {
        slot: target,
        version: manifest.version.clone(),
        key_id: manifest.key_id.clone(),
        previous,
        previous_version,
        golden_cases: cases.len(),
        previous_uncommitted: !previous_committed,
    })
}

/// Switch back to the previous slot (which must be intact). Returns (from, to).
pub fn rollback(root: &Path) -> Result<(SlotId, SlotId), BundleError> {
    if !root.is_dir() {
        return Err(BundleError::NoRollbackTarget(format!(
            "{} does not exist (no bundle was ever installed)",
            root.display()
        )));
    }
    let _lock = lock_exclusive(&root.join(LOCK_FILE))?;
    let result = rollback_locked(root);
    match &result {
        Ok((from, to)) => {
            journal::append(root, "rollback.manual", json!({"from": from, "to": to}))?
        }
        Err(e) => {
            let _ = journal::append(
                root,
                "rollback.refused",
                json!({"reason": e.kind(), "message": e.to_string()}),
            );
        }
    }
    result
}

fn rollback_locked(root: &Path) -> Result<(SlotId, SlotId), BundleError> {
    let mut state = read_state(root)?;
    let Some(to) = state.previous else {
        return Err(BundleError::NoRollbackTarget(format!(
            "slot {} is active and no previous slot is recorded",
            state.active
        )));
    };
    if to != SlotId::Factory {
        verify_slot(root, to).map_err(|e| {
            BundleError::NoRollbackTarget(format!("previous slot {to} is damaged: {e}"))
        })?;
    }
    let from = state.active;
    let committed = state.committed;
    state.active = to;
    state.committed = state.previous_committed;
    state.previous = Some(from);
    state.previous_committed = committed;
    state.boot_attempts = 0;
    write_state(root, &mut state, "rollback.switch")?;
    Ok((from, to))
}

/// What the daemon should run from, decided by [`on_daemon_start`].
#[derive(Debug, Clone)]
pub struct BootChoice {
    pub slot: SlotId,
    /// The slot's files; `None` for the factory files (use the station config as it is).
    pub info: Option<SlotInfo>,
    /// `(attempt, max)` while the slot is on trial (not yet marked good).
    pub trial: Option<(u32, u32)>,
    /// What was done on the way (automatic rollbacks, damage found), for the daemon's log
    /// (`warn!`); already journalled.
    pub notes: Vec<String>,
}

/// Daemon start-up bookkeeping. Call once per start, before loading the model:
/// - an uncommitted slot that has already had `max_boot_attempts` starts is rolled back;
/// - the chosen slot's files are checked (sizes + sha256); a damaged slot is rolled back;
/// - an uncommitted slot's attempt counter is incremented (durably) before it is used.
///
/// A state root that does not exist means "no bundle ever installed": factory files, nothing
/// written.
pub fn on_daemon_start(root: &Path) -> Result<BootChoice, BundleError> {
    let mut notes = Vec::new();
    if !state_path(root).exists() {
        return Ok(BootChoice {
            slot: SlotId::Factory,
            info: None,
            trial: None,
            notes,
        });
    }
    let _lock = lock_exclusive(&root.join(LOCK_FILE))?;
    let mut state = read_state(root)?;
    // At most two fallbacks: slot -> previous slot -> factory.
    for _ in 0..3 {
        let slot = state.active;
        if slot == SlotId::Factory {
            return Ok(BootChoice {
                slot,
                info: None,
                trial: None,
                notes,
            });
        }
        if !state.committed && state.boot_attempts >= state.max_boot_attempts {
            let to = state.previous.unwrap_or(SlotId::Factory);
            let note = format!(
                "slot {slot} did not reach READY in {} starts: rolled back to {to}",
                state.boot_attempts
            );
            journal::append(
                root,
                "rollback.auto",
                json!({"from": slot, "to": to, "version": slot_version(root, slot), "boot_attempts": state.boot_attempts}),
            )?;
            fall_back(root, &mut state, to)?;
            notes.push(note);
            continue;
        }
        match verify_slot(root, slot) {
            Ok(info) => {
                let trial = if state.committed {
                    None
                } else {
                    state.boot_attempts += 1;
                    write_state(root, &mut state, "boot.trial")?;
                    journal::append(
                        root,
                        "boot.trial",
                        json!({"slot": slot, "version": info.manifest.version, "attempt": state.boot_attempts, "max": state.max_boot_attempts}),
                    )?;
                    Some((state.boot_attempts, state.max_boot_attempts))
                };
                return Ok(BootChoice {
                    slot,
                    info: Some(info),
                    trial,
                    notes,
                });
            }
            Err(e) => {
                let to = state.previous.unwrap_or(SlotId::Factory);
                let note = format!("slot {slot} is damaged ({e}): rolled back to {to}");
                journal::append(
                    root,
                    "rollback.integrity",
                    json!({"from": slot, "to": to, "problem": e.to_string()}),
                )?;
                fall_back(root, &mut state, to)?;
                notes.push(note);
            }
        }
    }
    Ok(BootChoice {
        slot: SlotId::Factory,
        info: None,
        trial: None,
        notes,
    })
}

/// Make `to` active after `state.active` failed; the failed slot is not a rollback target.
fn fall_back(root: &Path, state: &mut SlotState, to: SlotId) -> Result<(), BundleError> {
    state.active = to;
    state.committed = to == SlotId::Factory || state.previous_committed;
    state.previous = None;
    state.previous_committed = true;
    state.boot_attempts = 0;
    write_state(root, state, "boot.switch")
}

/// The daemon reached READY on `slot` (the one [`on_daemon_start`] returned): commit it.
/// Returns whether anything changed. A slot that is no longer active (an install switched
/// meanwhile) is not committed.
pub fn mark_good(root: &Path, slot: SlotId) -> Result<bool, BundleError> {
    if !state_path(root).exists() {
        return Ok(false);
    }
    let _lock = lock_exclusive(&root.join(LOCK_FILE))?;
    let mut state = read_state(root)?;
    if state.active != slot || state.committed {
        return Ok(false);
    }
    let attempts = state.boot_attempts;
    state.committed = true;
    state.boot_attempts = 0;
    write_state(root, &mut state, "commit")?;
    journal::append(
        root,
        "commit",
        json!({"slot": slot, "version": slot_version(root, slot), "boot_attempts": attempts}),
    )?;
    Ok(true)
}

/// One slot as `bundle status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SlotSummary {
    pub slot: SlotId,
    pub present: bool,
    pub valid: bool,
    pub version: Option<String>,
    pub key_id: Option<String>,
    pub created_unix: Option<u64>,
    pub model_manifest: Option<PathBuf>,
    pub problem: Option<String>,
}

/// `bundle status`.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub state_root: PathBuf,
    pub state: SlotState,
    pub active: SlotSummary,
    pub slots: Vec<SlotSummary>,
    /// Last journal events, oldest first.
    pub journal_tail: Vec<serde_json::Value>,
}

fn summarize(root: &Path, slot: SlotId) -> SlotSummary {
    let mut s = SlotSummary {
        slot,
        present: true,
        valid: true,
        version: None,
        key_id: None,
        created_unix: None,
        model_manifest: None,
        problem: None,
    };
    if slot == SlotId::Factory {
        return s;
    }
    s.present = slot_dir(root, slot).is_some_and(|d| d.is_dir());
    if !s.present {
        s.valid = false;
        s.problem = Some("empty".into());
        return s;
    }
    match verify_slot(root, slot) {
        Ok(info) => {
            s.version = Some(info.manifest.version.clone());
            s.key_id = Some(info.manifest.key_id.clone());
            s.created_unix = Some(info.manifest.created_unix);
            s.model_manifest = Some(info.model_manifest);
        }
        Err(e) => {
            s.valid = false;
            s.problem = Some(e.to_string());
        }
    }
    s
}

/// Read-only view of the state root (checks every slot's files).
pub fn status(root: &Path, journal_lines: usize) -> Result<Status, BundleError> {
    let state = read_state(root)?;
    let slots = vec![summarize(root, SlotId::A), summarize(root, SlotId::B)];
    let active = match state.active {
        SlotId::Factory => summarize(root, SlotId::Factory),
        s => slots
            .iter()
            .find(|x| x.slot == s)
            .cloned()
            .unwrap_or_else(|| summarize(root, s)),
    };
    let mut events = journal::read_journal(root)?;
    let keep = events.len().saturating_sub(journal_lines);
    events.drain(..keep);
    Ok(Status {
        state_root: root.to_path_buf(),
        state,
        active,
        slots,
        journal_tail: events,
    })
}
