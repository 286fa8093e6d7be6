//! Hangup: optionally plays a goodbye, then ends the call with a cause.

use sdk::call::HangupCause;
use sdk::{Host, Input, Node, NodeError, NodeInfo};
use serde::Deserialize;

/// The node type.
pub struct Hangup;

/// How to end the call.
#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    #[default]
    Normal,
    Busy,
    Rejected,
    Unavailable,
    NoAnswer,
    Congestion,
}

/// Options for this graph node.
#[derive(Deserialize)]
pub struct Config {
    #[serde(default)]
    pub cause: Cause,
    /// A prompt to play first (`system/goodbye`).
    #[serde(default)]
    pub prompt: Option<String>,
}

impl Node for Hangup {
    type Config = Config;

    fn describe() -> NodeInfo {
        NodeInfo {
            category: "control".into(),
            icon: "⛔".into(),
            description: "Ends the call with a cause (normal, busy, rejected, ...).".into(),
            config_schema: sdk::schema(serde_json::json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "cause": { "enum": ["normal", "busy", "rejected", "unavailable", "no_answer", "congestion"] },
                    "prompt": { "type": "string", "minLength": 1 }
                }
            })),
            wall_clock_ms: 2 * 60 * 1000,
            ..sdk::node_info("hangup", "Hangup", env!("CARGO_PKG_VERSION"))
        }
    }

    fn run(input: Input<Config>, host: &mut dyn Host) -> Result<String, NodeError> {
        if let Some(p) = &input.config.prompt {
            host.play(p)?;
        }
        host.hangup(match input.config.cause {
            Cause::Normal => HangupCause::Normal,
            Cause::Busy => HangupCause::Busy,
            Cause::Rejected => HangupCause::Rejected,
            Cause::Unavailable => HangupCause::Unavailable,
            Cause::NoAnswer => HangupCause::NoAnswer,
            Cause::Congestion => HangupCause::Congestion,
        })?;
        Ok(String::new())
    }
}

#[cfg(target_arch = "wasm32")]
sdk::export_node!(Hangup);
