//! Queue (reserved): an ACD queue with hold music, a later phase. The node type exists so
//! flows can be drawn with it; until queues exist a run takes the `error` path.

use sdk::{Host, Input, Node, NodeError, NodeInfo};
use serde::Deserialize;

/// The node type.
pub struct Queue;

/// Not settled until queues exist; anything is accepted.
#[derive(Deserialize)]
pub struct Config {}

impl Node for Queue {
    type Config = Config;

    fn describe() -> NodeInfo {
        NodeInfo {
            category: "destination".into(),
            icon: "⏳".into(),
            description: "ACD queue with hold music (reserved: not available yet; calls take the error path).".into(),
            outputs: vec![sdk::terminal_output("answered", "Answered"), sdk::output("timeout", "Timeout")],
            waits_for_caller: true,
            wall_clock_ms: 2_000,
            ..sdk::node_info("queue", "Queue", env!("CARGO_PKG_VERSION"))
        }
    }

    fn run(_input: Input<Config>, host: &mut dyn Host) -> Result<String, NodeError> {
        sdk::warn!(host, "queues are not available yet");
        Err(NodeError::Failed("queues are not available yet".into()))
    }
}

#[cfg(target_arch = "wasm32")]
sdk::export_node!(Queue);
