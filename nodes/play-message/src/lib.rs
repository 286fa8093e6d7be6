//! Play message: plays a prompt or reads a text to the caller, then continues.

use sdk::{Host, Input, Node, NodeError, NodeInfo};
use serde::Deserialize;

/// The node type.
pub struct PlayMessage;

/// What to play: a prompt by name, or text for TTS (a prompt wins when both are set).
#[derive(Deserialize)]
pub struct Config {
    #[serde(default)]
    pub prompt: Option<String>,
    #[serde(default)]
    pub tts: Option<String>,
    /// Times to play it (1 to 10).
    #[serde(default)]
    pub repeat: Option<u32>,
}

impl Node for PlayMessage {
    type Config = Config;

    fn describe() -> NodeInfo {
        NodeInfo {
            category: "audio".into(),
            icon: "🔊".into(),
            description: "Plays a prompt or text-to-speech, then continues.".into(),
            config_schema: sdk::schema(serde_json::json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "prompt": { "type": "string", "minLength": 1 },
                    "tts": { "type": "string", "title": "Text to speak", "minLength": 1, "maxLength": 2000 },
                    "repeat": { "type": "integer", "title": "Play it (times)", "minimum": 1, "maximum": 10 }
                },
                "anyOf": [ { "required": ["prompt"] }, { "required": ["tts"] } ]
            })),
            outputs: vec![sdk::output("next", "Next")],
            waits_for_caller: true,
            wall_clock_ms: 10 * 60 * 1000,
            ..sdk::node_info("play_message", "Play Message", env!("CARGO_PKG_VERSION"))
        }
    }

    fn run(input: Input<Config>, host: &mut dyn Host) -> Result<String, NodeError> {
        let c = input.config;
        for _ in 0..c.repeat.unwrap_or(1).clamp(1, 10) {
            match (&c.prompt, &c.tts) {
                (Some(p), _) => host.play(p)?,
                (None, Some(t)) => host.say(t)?,
                (None, None) => return Err(NodeError::InvalidConfig("set a prompt or a text to read".into())),
            }
        }
        Ok("next".into())
    }
}

#[cfg(target_arch = "wasm32")]
sdk::export_node!(PlayMessage);
