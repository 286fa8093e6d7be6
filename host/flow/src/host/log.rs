//! `flowpbx:node/log`: lines tagged with the call and node, kept for the trace.

use super::HostState;
use crate::bindings::log::{Host, Level};

impl Host for HostState {
    async fn log(&mut self, level: Level, message: String) {
        let level = match level {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        self.log_line(level, &message);
    }
}
