//! grade (placeholder: filled in by its owner).
