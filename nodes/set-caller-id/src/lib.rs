//! Set caller ID: changes the caller's name and/or number for the rest of the flow (and the
//! phones it rings).

use sdk::types::{Capability, Party};
use sdk::{Host, Input, Node, NodeError, NodeInfo};
use serde::Deserialize;

/// The node type.
pub struct SetCallerId;

/// Replace or prefix.
#[derive(Deserialize, Default, Clone, Copy, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// `name`/`number` replace the caller's.
    #[default]
    Replace,
    /// `name`/`number` are put in front of the caller's ("Sales: " + "Alice").
    Prepend,
}

/// The new caller id; an absent field keeps the caller's.
#[derive(Deserialize)]
pub struct Config {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub number: Option<String>,
    #[serde(default)]
    pub mode: Mode,
}

impl Node for SetCallerId {
    type Config = Config;

    fn describe() -> NodeInfo {
        NodeInfo {
            category: "control".into(),
            icon: "🏷️".into(),
            description: "Overrides or prefixes the caller's name and number for downstream nodes.".into(),
            config_schema: sdk::schema(serde_json::json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "name": { "type": "string", "title": "Caller ID name", "maxLength": 64 },
                    "number": { "type": "string", "title": "Caller ID number", "pattern": "^\\+?[0-9*#]{1,32}$" },
                    "mode": { "enum": ["replace", "prepend"] }
                },
                "anyOf": [ { "required": ["name"] }, { "required": ["number"] } ]
            })),
            outputs: vec![sdk::output("next", "Next")],
            capabilities: vec![Capability::CallerId],
            wall_clock_ms: 2_000,
            ..sdk::node_info("set_caller_id", "Set Caller ID", env!("CARGO_PKG_VERSION"))
        }
    }

    fn run(input: Input<Config>, host: &mut dyn Host) -> Result<String, NodeError> {
        let c = input.config;
        let old = host.info().caller;
        let new = match c.mode {
            Mode::Replace => Party { number: c.number.unwrap_or(old.number), name: c.name.or(old.name) },
            Mode::Prepend => Party {
                number: match c.number {
                    Some(p) => format!("{p}{}", old.number),
                    None => old.number.clone(),
                },
                name: match (c.name, old.name) {
                    (Some(p), Some(n)) => Some(format!("{p}{n}")),
                    (Some(p), None) => Some(format!("{p}{}", old.number)),
                    (None, n) => n,
                },
            },
        };
        host.set_caller_id(&new)?;
        Ok("next".into())
    }
}

#[cfg(target_arch = "wasm32")]
sdk::export_node!(SetCallerId);
