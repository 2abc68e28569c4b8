//! geometry (placeholder: filled in by its owner).
