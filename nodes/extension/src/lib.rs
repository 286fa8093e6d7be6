//! The extension: rings every registered device of one extension (and its follow-me numbers,
//! as the extension is configured) until one answers or the timeout passes.

use sdk::call::{RingOptions, RingResult};
use sdk::entity::Extension as Ext;
use sdk::types::Destination;
use sdk::{Host, Input, Node, NodeError, NodeInfo};
use serde::Deserialize;

/// The node type.
pub struct Extension;

/// Optional overrides of the extension's settings for this graph node.
#[derive(Deserialize)]
pub struct Config {
    /// Seconds to ring, instead of the extension's `ring_timeout`.
    #[serde(default)]
    pub timeout: Option<u32>,
}

impl Node for Extension {
    type Config = Config;

    fn describe() -> NodeInfo {
        NodeInfo {
            category: "destination".into(),
            icon: "👤".into(),
            description: "Rings every device of one extension.".into(),
            config_schema: sdk::schema(serde_json::json!({
                "type": "object",
                "additionalProperties": false,
                "properties": { "timeout": { "type": "integer", "minimum": 1, "maximum": 600 } }
            })),
            outputs: vec![
                sdk::terminal_output("answered", "Answered"),
                sdk::output("no_answer", "No answer"),
                sdk::output("busy", "Busy"),
            ],
            entity_kind: Some("extension".into()),
            entity_required: true,
            waits_for_caller: true,
            wall_clock_ms: 11 * 60 * 1000,
            ..sdk::node_info("extension", "Extension", env!("CARGO_PKG_VERSION"))
        }
    }

    fn run(input: Input<Config>, host: &mut dyn Host) -> Result<String, NodeError> {
        let ext: Ext = input.entity().map_err(NodeError::InvalidConfig)?;
        let timeout_s = input.config.timeout.unwrap_or(ext.ring_timeout).clamp(1, 600);
        let r = host.ring(&[Destination::Extension(ext.id)], &RingOptions { timeout_ms: timeout_s * 1000, caller_id: None })?;
        sdk::info!(host, "extension {}: {r:?}", ext.extension);
        Ok(match r {
            RingResult::Answered => "answered",
            RingResult::Busy => "busy",
            // Nothing registered or no route: to the caller that is no answer.
            RingResult::NoAnswer | RingResult::Failed(_) => "no_answer",
        }
        .into())
    }
}

#[cfg(target_arch = "wasm32")]
sdk::export_node!(Extension);
