//! [`Error`]: everything the application layer fails with. The HTTP API maps it onto its
//! error envelope (`api::ApiError: From<pbx::Error>`); the binary prints it.

use flow::validate::{Problem, Severity};
use store::{Reference, StoreError};

/// One problem with one field of what a caller asked for (`version`, `digits[1].digits`,
/// `granted_networks[0]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    /// Where: the field's path in the request, as the API names it.
    pub field: String,
    pub message: String,
}

/// What an operation of the application layer fails with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// What was named does not exist (a flow, a plugin).
    #[error("not found")]
    NotFound,
    /// The input is unusable; every problem names its field.
    #[error("invalid input: {}", describe(.0))]
    Invalid(Vec<FieldProblem>),
    /// A flow graph with errors (publishing, rolling back to a version that no longer
    /// validates): every problem the validator found, warnings included. Nothing changed.
    #[error("the flow has {} error(s)", error_count(.0))]
    FlowInvalid(Vec<Problem>),
    /// The change conflicts with what exists (a version already uploaded, a plugin still in
    /// use); `references` lists what uses it.
    #[error("{message}")]
    Conflict { message: String, references: Vec<Reference> },
    /// A component the operation needs is not running (the flow engine is starting, or could
    /// not start).
    #[error("{0}")]
    Unavailable(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The flow engine failed in a way the caller cannot fix.
    #[error(transparent)]
    Flow(flow::Error),
    /// Anything else that is not the caller's fault.
    #[error("{0}")]
    Internal(String),
}

/// A `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn describe(problems: &[FieldProblem]) -> String {
    problems.iter().map(|p| format!("{}: {}", p.field, p.message)).collect::<Vec<_>>().join("; ")
}

fn error_count(problems: &[Problem]) -> usize {
    problems.iter().filter(|p| p.severity == Severity::Error).count()
}

impl Error {
    /// One field's problem.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Invalid(vec![FieldProblem { field: field.into(), message: message.into() }])
    }

    /// A flow engine error, as the caller sees it: a graph with errors is
    /// [`Error::FlowInvalid`], a bad graph shape names `flow_data`, a refused plugin or
    /// script names `field`, a missing thing is [`Error::NotFound`], the rest is the
    /// engine's.
    pub fn from_flow(e: flow::Error, field: &str) -> Error {
        match e {
            flow::Error::Invalid(problems) => Error::FlowInvalid(problems),
            flow::Error::Graph(m) => Error::field("flow_data", m),
            flow::Error::Plugin(m) | flow::Error::Script(m) => Error::field(field, m),
            flow::Error::NotFound(_) => Error::NotFound,
            other => Error::Flow(other),
        }
    }
}

/// Collects field problems, then answers one [`Error::Invalid`] naming each.
#[derive(Debug, Default)]
pub struct Problems(Vec<FieldProblem>);

impl Problems {
    pub fn new() -> Problems {
        Problems::default()
    }

    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldProblem { field: field.into(), message: message.into() });
    }

    pub fn check(&mut self, ok: bool, field: impl Into<String>, message: impl Into<String>) {
        if !ok {
            self.add(field, message);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The problems, in the order they were added.
    pub fn into_vec(self) -> Vec<FieldProblem> {
        self.0
    }

    /// Ok when nothing was added, else [`Error::Invalid`].
    pub fn finish(self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid(self.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_errors_name_the_field_the_caller_gave() {
        assert!(matches!(Error::from_flow(flow::Error::Graph("bad".into()), "version"), Error::Invalid(p) if p[0].field == "flow_data"));
        assert!(matches!(Error::from_flow(flow::Error::Script("bad".into()), "script"), Error::Invalid(p) if p[0].field == "script"));
        assert!(matches!(Error::from_flow(flow::Error::NotFound("x".into()), "x"), Error::NotFound));
        assert!(matches!(Error::from_flow(flow::Error::Engine("boom".into()), "x"), Error::Flow(_)));
        let mut p = Problems::new();
        assert!(p.is_empty());
        p.check(false, "a", "is wrong");
        p.check(true, "b", "is fine");
        let Err(Error::Invalid(v)) = p.finish() else { panic!() };
        assert_eq!(v, vec![FieldProblem { field: "a".into(), message: "is wrong".into() }]);
    }
}
