//! Conference: joins the caller into the linked bridge (the host asks for its PIN); leaves
//! by `left` when the caller leaves the bridge without hanging up.

use sdk::call::ConferenceOptions;
use sdk::entity::ConferenceBridge;
use sdk::types::Capability;
use sdk::{Host, Input, Node, NodeError, NodeInfo};
use serde::Deserialize;

/// The node type.
pub struct Conference;

/// Options for this graph node.
#[derive(Deserialize)]
pub struct Config {
    /// Join muted.
    #[serde(default)]
    pub muted: bool,
}

impl Node for Conference {
    type Config = Config;

    fn describe() -> NodeInfo {
        NodeInfo {
            category: "destination".into(),
            icon: "🎙️".into(),
            description: "Joins the caller into a conference bridge.".into(),
            config_schema: sdk::schema(serde_json::json!({
                "type": "object",
                "additionalProperties": false,
                "properties": { "muted": { "type": "boolean", "title": "Join muted" } }
            })),
            outputs: vec![sdk::output("left", "After leaving")],
            capabilities: vec![Capability::Conference],
            entity_kind: Some("conference_bridge".into()),
            entity_required: true,
            waits_for_caller: true,
            wall_clock_ms: 4 * 60 * 60 * 1000,
            ..sdk::node_info("conference", "Conference", env!("CARGO_PKG_VERSION"))
        }
    }

    fn run(input: Input<Config>, host: &mut dyn Host) -> Result<String, NodeError> {
        let bridge: ConferenceBridge = input.entity()?;
        let r = host.conference(bridge.id, ConferenceOptions { muted: input.config.muted })?;
        sdk::info!(host, "left conference {} after {} ms", bridge.id, r.duration_ms);
        Ok("left".into())
    }
}

#[cfg(target_arch = "wasm32")]
sdk::export_node!(Conference);
