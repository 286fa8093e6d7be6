//! Transfer: blind-transfers the caller to an extension (the linked one) or to an external
//! number; the call leaves the flow.

use sdk::types::{Capability, Destination};
use sdk::{Host, Input, Node, NodeError, NodeInfo};
use serde::Deserialize;

/// The node type.
pub struct Transfer;

/// Where to: an external number, when no extension is linked.
#[derive(Deserialize)]
pub struct Config {
    #[serde(default)]
    pub number: Option<String>,
}

impl Node for Transfer {
    type Config = Config;

    fn describe() -> NodeInfo {
        NodeInfo {
            category: "destination".into(),
            icon: "↗️".into(),
            description: "Blind-transfers the caller to an extension or an external number.".into(),
            config_schema: sdk::schema(serde_json::json!({
                "type": "object",
                "additionalProperties": false,
                "properties": { "number": { "type": "string", "pattern": "^\\+?[0-9*#]{1,32}$" } }
            })),
            capabilities: vec![Capability::ExternalCalls],
            entity_kind: Some("extension".into()),
            wall_clock_ms: 60_000,
            ..sdk::node_info("transfer", "Transfer", env!("CARGO_PKG_VERSION"))
        }
    }

    fn run(input: Input<Config>, host: &mut dyn Host) -> Result<String, NodeError> {
        let target = match (&input.entity, &input.config.number) {
            (Some(e), _) => Destination::Extension(e.id),
            (None, Some(n)) => Destination::Number(n.clone()),
            (None, None) => return Err(NodeError::InvalidConfig("link an extension or set a number".into())),
        };
        host.transfer(&target)?;
        sdk::info!(host, "transferred to {target:?}");
        Ok(String::new())
    }
}

#[cfg(target_arch = "wasm32")]
sdk::export_node!(Transfer);
