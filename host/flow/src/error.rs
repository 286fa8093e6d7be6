//! The crate's error type.

use crate::validate::Problem;

/// Everything the flow crate's API can fail with. The API layer maps it onto HTTP:
/// `Graph`, `Invalid`, `Plugin`, `Script` are the client's fault (400/422); `NotFound` is
/// 404; the rest are 500s.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The graph JSON does not have the flow graph's shape.
    #[error("invalid flow graph: {0}")]
    Graph(String),
    /// The graph has errors (every problem, warnings included).
    #[error("the flow has {} problem(s)", .0.len())]
    Invalid(Vec<Problem>),
    /// A component could not be compiled, linked or run for its description.
    #[error("component {what}: {message}")]
    Component { what: String, message: String },
    /// An uploaded plugin was refused.
    #[error("plugin refused: {0}")]
    Plugin(String),
    /// A simulation script is unusable.
    #[error("simulation script: {0}")]
    Script(String),
    /// Something named does not exist (a flow, a node, a plugin).
    #[error("not found: {0}")]
    NotFound(String),
    /// Building a plugin failed (toolchain missing, compile error).
    #[error("build failed: {0}")]
    Build(String),
    /// No toolchain to build a plugin with.
    #[error("build failed: {0}")]
    Toolchain(#[from] crate::toolchain::ToolchainError),
    /// The engine could not start (wasmtime configuration).
    #[error("engine: {0}")]
    Engine(String),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
}

impl Error {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io { what: what.into(), source }
    }
    pub(crate) fn component(what: impl Into<String>, e: impl std::fmt::Display) -> Error {
        Error::Component { what: what.into(), message: format!("{e:#}") }
    }
}
