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

pub mod error;
pub mod geometry;
pub mod imageio;
pub mod synth;
pub mod dataset;
pub mod locate;
pub mod grade;
pub mod model;
pub mod anomaly;
pub mod inspect;
pub mod overlay;
pub mod metrics;
pub mod capture;
pub mod actuate;
pub mod journal;
pub mod daemon;
pub mod bundle;
pub mod drift;
