//! Transfer: transfers the caller to an extension (the linked one) or to a number outside,
//! rung through the outbound routes: the host rings the target and bridges the caller to it
//! when it answers; the call then leaves the flow.

use sdk::types::{Capability, Destination};
use sdk::{Host, Input, Node, NodeError, NodeInfo, Output};
use serde::Deserialize;

/// The node type.
pub struct Transfer;

/// Where to: a number outside, when no extension is linked.
#[derive(Deserialize)]
pub struct Config {
    #[serde(default)]
    pub number: Option<String>,
}

/// What the node says when it has nowhere to send the caller.
pub const NO_TARGET: &str = "choose an extension or enter an outside number";

/// The number to dial, when one is set (blank is none).
fn number(config: &Config) -> Option<&str> {
    config.number.as_deref().map(str::trim).filter(|n| !n.is_empty())
}

impl Node for Transfer {
    type Config = Config;

    fn describe() -> NodeInfo {
        NodeInfo {
            category: "destination".into(),
            icon: "↗️".into(),
            description: "Blind-transfers the caller to an extension or to a number outside (through the outbound routes).".into(),
            config_schema: sdk::schema(serde_json::json!({
                "type": "object",
                "additionalProperties": false,
                "properties": { "number": {
                    "type": "string",
                    "title": "Outside number",
                    "description": "A phone number (+61299990000) or digits, * and #; used when no extension is chosen",
                    "pattern": "^\\s*\\+?[0-9*#]{1,32}\\s*$"
                } }
            })),
            capabilities: vec![Capability::ExternalCalls],
            entity_kind: Some("extension".into()),
            wall_clock_ms: 60_000,
            ..sdk::node_info("transfer", "Transfer", env!("CARGO_PKG_VERSION"))
        }
    }

    fn outputs(input: &Input<Config>, _host: &mut dyn Host) -> Result<Vec<Output>, String> {
        if input.entity.is_none() && number(&input.config).is_none() {
            return Err(NO_TARGET.into());
        }
        Ok(Self::describe().outputs)
    }

    fn run(input: Input<Config>, host: &mut dyn Host) -> Result<String, NodeError> {
        let target = match (&input.entity, number(&input.config)) {
            (Some(e), _) => Destination::Extension(e.id),
            (None, Some(n)) => Destination::Number(n.to_owned()),
            (None, None) => return Err(NodeError::InvalidConfig(NO_TARGET.into())),
        };
        host.transfer(&target)?;
        match &target {
            Destination::Extension(_) => sdk::info!(host, "transferred to the extension"),
            Destination::Number(n) => sdk::info!(host, "transferred to {n}"),
        }
        Ok(String::new())
    }
}

#[cfg(target_arch = "wasm32")]
sdk::export_node!(Transfer);
