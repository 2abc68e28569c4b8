//! locate (placeholder: filled in by its owner).
