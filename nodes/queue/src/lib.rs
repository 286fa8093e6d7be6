//! Queue (coming): an ACD queue with hold music, a later phase. The host marks it coming
//! (`flow::registry::COMING_BUILTINS`): the editor does not offer it and a flow holding one
//! is refused at publishing; a run takes the `error` path.

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
            description: "Coming: call queues with hold music. Not available yet: a flow holding one cannot be published.".into(),
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
