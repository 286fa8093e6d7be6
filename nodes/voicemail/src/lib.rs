//! Voicemail: deposits the caller's message into the linked voicemail box (greeting, tone,
//! recording; the host stores it in the box and updates the box's message-waiting lamp), or,
//! in `check` mode, lets the caller check the box (its PIN, then the voicemail menu).

use sdk::call::VoicemailOptions;
use sdk::entity::VoicemailBox;
use sdk::types::Capability;
use sdk::{Host, Input, Node, NodeError, NodeInfo};
use serde::Deserialize;

/// The node type.
pub struct Voicemail;

fn yes() -> bool {
    true
}

/// Options for this graph node.
#[derive(Deserialize)]
pub struct Config {
    /// Play the box's greeting before the tone.
    #[serde(default = "yes")]
    pub play_greeting: bool,
    /// Seconds of recording at most (never more than the box allows).
    #[serde(default)]
    pub max_duration_s: Option<u32>,
    /// `leave` (the default): the caller leaves a message; `check`: the caller checks the
    /// box's messages.
    #[serde(default)]
    pub mode: Mode,
}

/// What the node does with the box.
#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Leave,
    Check,
}

impl Node for Voicemail {
    type Config = Config;

    fn describe() -> NodeInfo {
        NodeInfo {
            category: "destination".into(),
            icon: "📬".into(),
            description: "Records a message from the caller into a voicemail box, or lets the caller check it.".into(),
            config_schema: sdk::schema(serde_json::json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "mode": { "type": "string", "title": "Mode", "enum": ["leave", "check"], "default": "leave",
                        "description": "leave: the caller leaves a message; check: the caller checks the box (PIN, then the voicemail menu)" },
                    "play_greeting": { "type": "boolean", "title": "Play the greeting" },
                    "max_duration_s": { "type": "integer", "title": "Max duration (seconds)", "minimum": 1, "maximum": 3600 }
                }
            })),
            outputs: vec![sdk::output("done", "After recording")],
            capabilities: vec![Capability::Voicemail],
            entity_kind: Some("voicemail_box".into()),
            entity_required: true,
            waits_for_caller: true,
            wall_clock_ms: 65 * 60 * 1000,
            ..sdk::node_info("voicemail", "Voicemail", env!("CARGO_PKG_VERSION"))
        }
    }

    fn run(input: Input<Config>, host: &mut dyn Host) -> Result<String, NodeError> {
        let vm: VoicemailBox = input.entity()?;
        if input.config.mode == Mode::Check {
            host.check_voicemail(vm.id)?;
            sdk::info!(host, "voicemail box {}: checked", vm.id);
            return Ok("done".into());
        }
        let max = input.config.max_duration_s.map(|s| s.min(vm.max_message_duration));
        let r = host.voicemail(vm.id, VoicemailOptions { play_greeting: input.config.play_greeting, max_duration_s: max })?;
        sdk::info!(host, "voicemail box {}: recorded={} ({} ms)", vm.id, r.recorded, r.duration_ms);
        Ok("done".into())
    }
}

#[cfg(target_arch = "wasm32")]
sdk::export_node!(Voicemail);
