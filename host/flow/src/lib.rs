//! Placeholder until the crate lands; see ARCHITECTURE.md.
