//! The extension: rings every registered device of one extension (and its follow-me numbers,
//! as the extension is configured) until one answers or the timeout passes. With no
//! extension linked it rings a number outside instead, through the outbound routes.

use sdk::call::{RingOptions, RingResult};
use sdk::entity::Extension as Ext;
use sdk::types::{Capability, Destination};
use sdk::{Host, Input, Node, NodeError, NodeInfo, Output};
use serde::Deserialize;

/// The node type.
pub struct Extension;

/// Optional overrides of the extension's settings for this graph node.
#[derive(Deserialize)]
pub struct Config {
    /// Seconds to ring, instead of the extension's `ring_timeout` (30 s for a number).
    #[serde(default)]
    pub timeout: Option<u32>,
    /// A number outside to ring when no extension is linked.
    #[serde(default)]
    pub number: Option<String>,
}

/// What the node says when it has nothing to ring.
pub const NO_TARGET: &str = "choose an extension or enter an outside number";
/// How long a number outside rings unless the node says otherwise.
const NUMBER_TIMEOUT_S: u32 = 30;

fn number(config: &Config) -> Option<&str> {
    config.number.as_deref().map(str::trim).filter(|n| !n.is_empty())
}

/// What happened, in words for the call's log.
fn said(r: &RingResult) -> String {
    match r {
        RingResult::Answered => "answered".into(),
        RingResult::NoAnswer => "no answer".into(),
        RingResult::Busy => "busy".into(),
        RingResult::Failed(why) => format!("could not ring: {why}"),
    }
}

impl Node for Extension {
    type Config = Config;

    fn describe() -> NodeInfo {
        NodeInfo {
            category: "destination".into(),
            icon: "👤".into(),
            description: "Rings every device of one extension, or a number outside (through the outbound routes).".into(),
            config_schema: sdk::schema(serde_json::json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "timeout": { "type": "integer", "title": "Ring for (seconds)", "minimum": 1, "maximum": 600 },
                    "number": {
                        "type": "string",
                        "title": "Outside number",
                        "description": "A phone number (+61299990000) or digits, * and #; rung when no extension is chosen",
                        "pattern": "^\\s*\\+?[0-9*#]{1,32}\\s*$"
                    }
                }
            })),
            outputs: vec![sdk::terminal_output("answered", "Answered"), sdk::output("no_answer", "No answer"), sdk::output("busy", "Busy")],
            capabilities: vec![Capability::ExternalCalls],
            entity_kind: Some("extension".into()),
            waits_for_caller: true,
            wall_clock_ms: 11 * 60 * 1000,
            ..sdk::node_info("extension", "Extension", env!("CARGO_PKG_VERSION"))
        }
    }

    fn outputs(input: &Input<Config>, _host: &mut dyn Host) -> Result<Vec<Output>, String> {
        if input.entity.is_none() && number(&input.config).is_none() {
            return Err(NO_TARGET.into());
        }
        Ok(Self::describe().outputs)
    }

    fn run(input: Input<Config>, host: &mut dyn Host) -> Result<String, NodeError> {
        let (target, timeout_s, who) = match (&input.entity, number(&input.config)) {
            (Some(_), _) => {
                let ext: Ext = input.entity()?;
                let t = input.config.timeout.unwrap_or(ext.ring_timeout);
                (Destination::Extension(ext.id), t, format!("extension {}", ext.extension))
            }
            (None, Some(n)) => (Destination::Number(n.to_owned()), input.config.timeout.unwrap_or(NUMBER_TIMEOUT_S), n.to_owned()),
            (None, None) => return Err(NodeError::InvalidConfig(NO_TARGET.into())),
        };
        let timeout_s = timeout_s.clamp(1, 600);
        let r = host.ring(&[target], &RingOptions { timeout_ms: timeout_s * 1000, caller_id: None })?;
        sdk::info!(host, "{who}: {}", said(&r));
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
