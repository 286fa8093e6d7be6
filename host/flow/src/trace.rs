//! The trace of one call's walk through a flow: each node entered, the output it took, when,
//! for how long, and why it failed. Written to the CDR's `flow_path`; the simulator shows it
//! with each node's log lines.

use serde::{Deserialize, Serialize};

use crate::control::HangupCause;

/// A log line a node wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// `trace`, `debug`, `info`, `warn` or `error`.
    pub level: String,
    pub message: String,
}

/// One node of the walk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub node_id: String,
    pub node_type: String,
    /// The output taken (`error` when the node failed); `None` when the walk ended inside the
    /// node (the caller hung up, the call left the flow while it ran).
    pub output: Option<String>,
    pub entered_at: jiff::Timestamp,
    pub duration_ms: u64,
    /// Why the node failed: a trap, a limit, a denied capability, an undeclared output, an
    /// error the node returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<LogLine>,
}

/// How the walk ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// A phone answered and the caller was bridged to it.
    Bridged { to: String },
    /// The caller was transferred.
    Transferred,
    /// A node hung up the call.
    HungUp { cause: HangupCause },
    /// The walk reached an output with no edge; the engine hung up.
    EndOfFlow,
    /// The caller hung up.
    CallerHungUp,
    /// A node failed with nowhere to go (or the step limit was reached): the caller heard
    /// the sorry prompt and was hung up.
    Failed { reason: String },
}

/// A call's walk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    pub call_id: String,
    pub flow_id: i64,
    pub flow_version: i64,
    pub steps: Vec<Step>,
    pub outcome: Outcome,
}

impl Trace {
    /// The CDR's `flow_path`: the steps as a JSON array, without log lines.
    pub fn flow_path(&self) -> String {
        let steps: Vec<Step> = self.steps.iter().map(|s| Step { logs: Vec::new(), ..s.clone() }).collect();
        serde_json::to_string(&steps).unwrap_or_else(|_| "[]".into())
    }

    /// The node ids in order.
    pub fn node_ids(&self) -> Vec<&str> {
        self.steps.iter().map(|s| s.node_id.as_str()).collect()
    }

    /// (node id, output) in order; `-` for no output.
    pub fn path(&self) -> Vec<(String, String)> {
        self.steps.iter().map(|s| (s.node_id.clone(), s.output.clone().unwrap_or_else(|| "-".into()))).collect()
    }
}
