//! The built-in node components, built from `nodes/` and embedded by build.rs.

include!(concat!(env!("OUT_DIR"), "/builtin_nodes.rs"));

/// Where build.rs left every component it built, test components included (for tests and
/// benchmarks).
pub const COMPONENTS_DIR: &str = env!("FLOW_TEST_COMPONENTS");
