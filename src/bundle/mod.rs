//! Signed update bundles with A/B slots and rollback.
//!
//! In: a bundle file (a plain tar) made on a technician workstation by [`create_bundle`] from a
//! model, its manifest, optional station config and grading profiles, and golden images with
//! their recorded verdicts; a directory of trusted ed25519 public keys on the board; a state root
//! (default `/var/lib/endface`). Out: the bundle installed into the inactive of two slots, checked
//! by a self-test on its golden images, and switched to atomically; a journal of every install,
//! self-test, boot trial and rollback; and, for the daemon, the slot to start from
//! ([`on_daemon_start`], [`mark_good`]).
//!
//! Layout of a bundle (entries in this order, all regular files):
//!
//! ```text
//! bundle.json            signed manifest: version, key id, each file's size + sha256
//! bundle.sig             hex ed25519 signature over "endface.bundle/1\n" + bundle.json bytes
//! model/<name>.onnx      the model
//! model/<name>.manifest.json
//! config/station.toml    optional station config
//! profiles/<name>.toml   optional grading profiles
//! golden/expected.jsonl  {"image": "x.png", "verdict": "pass", ...} per line
//! golden/<images>
//! ```
//!
//! Layout of a state root:
//!
//! ```text
//! current                pointer (JSON [`SlotState`]), replaced by write current.tmp + rename
//! slots/a/  slots/b/     unpacked bundles (bundle.json, bundle.sig, model/, golden/, ...)
//! slots/<x>.staging/     an install in progress (removed at the next install)
//! journal/bundle.jsonl   append-only, fsync'd JSON lines
//! lock                   flock for installs, rollbacks and boot bookkeeping
//! ```
//!
//! Daemon contract: call [`on_daemon_start`] once at start-up, before loading the model; use the
//! returned [`BootChoice`] (slot directory, model manifest, optional config and profiles; `Factory`
//! means "use the station config's own files"). Call [`mark_good`] once the daemon is READY. If
//! the daemon starts `max_boot_attempts` times after a switch without reaching READY, the next
//! [`on_daemon_start`] rolls back to the previous slot by itself.

mod archive;
mod fsutil;
mod journal;
mod keys;
mod manifest;
mod selftest;
mod slots;

pub use archive::{create_bundle, verify_bundle, CreateOptions, VerifiedBundle};
pub use fsutil::{fault_point, statvfs_free_bytes, FAULT_ENV, FAULT_STEPS};
pub use journal::{read_journal, JOURNAL_FILE};
pub use keys::{generate_keypair, KeyId, SigningKeyFile, TrustStore};
pub use manifest::{compare_versions, BundleFile, BundleManifest, BUNDLE_SCHEMA};
pub use selftest::{
    check_golden, read_expected, GoldenCase, GoldenOutcome, InspectorSelfTest, SelfTest,
    SelfTestError, SelfTestInput,
};
pub use slots::{
    install, mark_good, on_daemon_start, read_state, rollback, status, verify_slot, BootChoice,
    InstallOptions, InstallReport, SlotId, SlotInfo, SlotState, Status, DEFAULT_KEYS_DIR,
    DEFAULT_MAX_BOOT_ATTEMPTS, DEFAULT_STATE_ROOT,
};

use std::path::PathBuf;

/// Everything that can go wrong with a bundle. [`BundleError::is_refusal`] tells a refusal of
/// the bundle (the board stays as it was) from a local failure (I/O on the board).
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("bundle archive is truncated or corrupt: {0}")]
    CorruptArchive(String),
    #[error("bundle entry `{path}` refused: {reason}")]
    UnsafeEntry { path: String, reason: String },
    #[error("bundle manifest is invalid: {0}")]
    BadManifest(String),
    #[error("bundle signature does not verify with key {key_id} (file {key_file}): the bundle was altered or signed by another key")]
    BadSignature { key_id: String, key_file: PathBuf },
    #[error("bundle is signed by key {key_id}, which is not among the trusted keys in {keys_dir} (add its .pub file there if it is yours)")]
    UnknownKey { key_id: String, keys_dir: PathBuf },
    #[error("trusted key file {path}: {reason}")]
    BadKeyFile { path: PathBuf, reason: String },
    #[error("bundle file `{path}` does not match the manifest: {reason}")]
    FileMismatch { path: String, reason: String },
    #[error("self-test failed, the running slot stays active: {0}")]
    SelfTestFailed(String),
    #[error("bundle version {bundle} is older than the installed {installed} (use --force to downgrade)")]
    OlderVersion { bundle: String, installed: String },
    #[error("bundle version {bundle} is already installed in the active slot (use --force to reinstall)")]
    SameVersion { bundle: String },
    #[error(
        "not enough disk space under {path}: bundle needs {needed_bytes} bytes, {free_bytes} free"
    )]
    NoSpace {
        path: PathBuf,
        needed_bytes: u64,
        free_bytes: u64,
    },
    #[error("nothing to roll back to: {0}")]
    NoRollbackTarget(String),
    #[error("slot state {path} is unreadable: {reason}")]
    BadState { path: PathBuf, reason: String },
    #[error("bundle input: {0}")]
    BadInput(String),
}

impl BundleError {
    /// True when the bundle (or the request) was refused and nothing on the board changed.
    pub fn is_refusal(&self) -> bool {
        !matches!(self, BundleError::Io { .. } | BundleError::BadState { .. })
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        BundleError::Io {
            path: path.into(),
            source,
        }
    }

    /// A short machine-friendly reason for the journal.
    pub fn kind(&self) -> &'static str {
        match self {
            BundleError::Io { .. } => "io",
            BundleError::CorruptArchive(_) => "corrupt_archive",
            BundleError::UnsafeEntry { .. } => "unsafe_entry",
            BundleError::BadManifest(_) => "bad_manifest",
            BundleError::BadSignature { .. } => "bad_signature",
            BundleError::UnknownKey { .. } => "unknown_key",
            BundleError::BadKeyFile { .. } => "bad_key_file",
            BundleError::FileMismatch { .. } => "file_mismatch",
            BundleError::SelfTestFailed(_) => "self_test_failed",
            BundleError::OlderVersion { .. } => "older_version",
            BundleError::SameVersion { .. } => "same_version",
            BundleError::NoSpace { .. } => "no_space",
            BundleError::NoRollbackTarget(_) => "no_rollback_target",
            BundleError::BadState { .. } => "bad_state",
            BundleError::BadInput(_) => "bad_input",
        }
    }
}
