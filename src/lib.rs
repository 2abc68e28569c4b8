//! endface: fiber end-face inspection.
//!
//! One frame's way through a station (see README.md "Architecture"):
//!
//! ```text
//! capture ─► locate ─► model (ONNX Runtime) ─► anomaly ─► grade ─► actuate (GPIO) ─► journal
//! ```
//!
//! Modules are named after the domain step they perform. Pure logic (synth, locate, grade,
//! anomaly, metrics, drift) never touches a device; hardware adapters (capture, actuate) are
//! thin modules at the edge.

pub mod actuate;
pub mod anomaly;
pub mod bundle;
pub mod capture;
pub mod config;
pub mod daemon;
pub mod dataset;
pub mod drift;
pub mod error;
pub mod geometry;
pub mod grade;
pub mod imageio;
pub mod inspect;
pub mod journal;
pub mod locate;
pub mod metrics;
pub mod model;
pub mod overlay;
pub mod synth;
pub mod sysmem;
