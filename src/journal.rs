//! journal (placeholder: filled in by its owner).
