//! overlay (placeholder: filled in by its owner).
