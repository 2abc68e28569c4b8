//! Process exit codes shared by every `endface` subcommand.
//!
//! Library modules return their own typed errors (`thiserror`); the binary wraps them with
//! context (`anyhow`) and, where the failure class matters to a caller (a script, a PLC
//! integration, a technician), tags it with one of these codes through [`Coded`].

use std::fmt;

/// Distinct, stable exit codes. 0 = success, 1 = unclassified failure, 2 = usage (clap).
pub mod exit {
    /// Unclassified failure.
    pub const FAILURE: u8 = 1;
    /// Command-line usage error (clap uses 2 as well).
    pub const USAGE: u8 = 2;
    /// An input path does not exist, is a directory, or cannot be read.
    pub const INPUT_IO: u8 = 3;
    /// An image could not be decoded (corrupt, truncated, unsupported format).
    pub const BAD_IMAGE: u8 = 4;
    /// An image decoded but is not acceptable (zero size, enormous, wrong bit depth).
    pub const UNSUPPORTED_IMAGE: u8 = 5;
    /// A configuration or profile file is missing or malformed.
    pub const BAD_CONFIG: u8 = 6;
    /// A grading profile name is unknown.
    pub const UNKNOWN_PROFILE: u8 = 7;
    /// The model file or its manifest is missing, corrupt, or they do not match.
    pub const BAD_MODEL: u8 = 8;
    /// The ONNX Runtime shared library is missing or unusable.
    pub const RUNTIME_MISSING: u8 = 9;
    /// A required accelerator (execution provider) was not available.
    pub const NO_ACCELERATOR: u8 = 10;
    /// A dataset is malformed (missing mask for a defect image, unreadable labels).
    pub const BAD_DATASET: u8 = 11;
    /// An update bundle was refused (signature, integrity, self-test, version, space).
    pub const BUNDLE_REFUSED: u8 = 12;
    /// A device (camera, GPIO chip, framebuffer) failed.
    pub const DEVICE: u8 = 13;
    /// The journal could not be opened or written.
    pub const JOURNAL: u8 = 14;
    /// Drift was detected (for `endface drift` used in scripts).
    pub const DRIFT_DETECTED: u8 = 20;
}

/// An error tagged with the exit code the binary should use for it.
#[derive(Debug)]
pub struct Coded {
    pub code: u8,
    pub error: anyhow::Error,
}

impl fmt::Display for Coded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `{:#}` prints the whole context chain on one line.
        write!(f, "{:#}", self.error)
    }
}

impl std::error::Error for Coded {}

/// Tag an error with an exit code: `return Err(coded(exit::BAD_IMAGE, e))`.
pub fn coded(code: u8, error: impl Into<anyhow::Error>) -> anyhow::Error {
    anyhow::Error::new(Coded {
        code,
        error: error.into(),
    })
}

/// The exit code for an error chain: the first [`Coded`] found, else [`exit::FAILURE`].
pub fn exit_code_of(err: &anyhow::Error) -> u8 {
    err.chain()
        .find_map(|e| e.downcast_ref::<Coded>().map(|c| c.code))
        .unwrap_or(exit::FAILURE)
}
