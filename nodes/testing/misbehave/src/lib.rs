//! A node that does what its config's `do` says, most of it forbidden: the host tests use it
//! to check that every limit and every capability holds. Never embedded in the binary.
//!
//! It declares `http:allowed.test`, `http:127.0.0.1`, `http:localhost`, `kv` and
//! `directory`; tests grant some or none.

use sdk::types::{Capability, Destination, NodeError};
use sdk::{Host, Input, Node, NodeInfo};
use serde::Deserialize;
use std::hint::black_box;

pub struct Misbehave;

#[derive(Deserialize)]
pub struct Config {
    #[serde(rename = "do")]
    pub what: String,
    /// For `echo`: the output to return.
    #[serde(default)]
    pub output: Option<String>,
    /// For `fetch`: the URL to GET, and its timeout.
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub timeout_ms: Option<u32>,
}

#[inline(never)]
#[allow(unconditional_recursion)]
fn recurse(n: u64) -> u64 {
    // Not a tail call, and black_box keeps the optimiser from folding it into a loop.
    black_box(recurse(black_box(n + 1))) + 1
}

fn denied_or(r: Result<(), String>) -> Result<String, NodeError> {
    match r {
        Ok(()) => Ok("ok".into()),
        Err(e) if e.contains("Denied") => Ok("was_denied".into()),
        Err(e) => Err(NodeError::Failed(e)),
    }
}

impl Node for Misbehave {
    type Config = Config;

    fn describe() -> NodeInfo {
        NodeInfo {
            category: "test".into(),
            outputs: vec![sdk::output("ok", "OK"), sdk::output("was_denied", "Was denied")],
            capabilities: vec![
                Capability::Http("allowed.test".into()),
                Capability::Http("127.0.0.1".into()),
                Capability::Http("localhost".into()),
                Capability::Kv,
                Capability::Directory,
            ],
            wall_clock_ms: 1_000,
            ..sdk::node_info("test/misbehave", "Misbehave", env!("CARGO_PKG_VERSION"))
        }
    }

    fn run(input: Input<Config>, host: &mut dyn Host) -> Result<String, NodeError> {
        match input.config.what.as_str() {
            "ok" => Ok("ok".into()),
            "echo" => Ok(input.config.output.unwrap_or_default()),
            "loop" => {
                let mut i: u64 = 0;
                loop {
                    i = black_box(i.wrapping_add(1));
                }
            }
            "grow" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(black_box(vec![1u8; 1 << 20]));
                }
            }
            "stack" => Ok(format!("{}", recurse(0))),
            "trap" => panic!("told to trap"),
            "undeclared" => Ok("no_such_output".into()),
            "http" => denied_or(
                host.http_send(&sdk::http::Request {
                    method: "GET".into(),
                    url: "https://allowed.test/x".into(),
                    headers: vec![],
                    body: vec![],
                    timeout_ms: 1000,
                })
                .map(|_| ())
                .map_err(|e| format!("{e:?}")),
            ),
            "http_other_host" => denied_or(
                host.http_send(&sdk::http::Request {
                    method: "GET".into(),
                    url: "https://elsewhere.test/x".into(),
                    headers: vec![],
                    body: vec![],
                    timeout_ms: 1000,
                })
                .map(|_| ())
                .map_err(|e| format!("{e:?}")),
            ),
            "kv" => denied_or(host.kv_increment("n", 1).map(|_| ()).map_err(|e| format!("{e:?}"))),
            "directory" => denied_or(host.extension(1).map(|_| ()).map_err(|e| format!("{e:?}"))),
            "external" => denied_or(host.transfer(&Destination::Number("+15550100".into())).map_err(|e| format!("{e:?}"))),
            "voicemail" => denied_or(
                host.voicemail(1, sdk::call::VoicemailOptions { play_greeting: false, max_duration_s: None })
                    .map(|_| ())
                    .map_err(|e| format!("{e:?}")),
            ),
            "hang" => {
                host.play("test/hang")?;
                Ok("ok".into())
            }
            // GET `url`: `ok` with the status and body length logged, `was_denied`, or the
            // error path with what went wrong.
            "fetch" => {
                let url = input.config.url.unwrap_or_default();
                let r = host.http_send(&sdk::http::Request { method: "GET".into(), url, headers: vec![], body: vec![], timeout_ms: input.config.timeout_ms.unwrap_or(5000) });
                match r {
                    Ok(resp) => {
                        sdk::info!(host, "status {} body {} bytes", resp.status, resp.body.len());
                        Ok("ok".into())
                    }
                    Err(sdk::http::HttpError::Denied(h)) => {
                        sdk::info!(host, "denied {h}");
                        Ok("was_denied".into())
                    }
                    Err(e) => Err(NodeError::Failed(format!("{e:?}"))),
                }
            }
            // one 10 KiB line that forges lines of the process log
            "log_long" => {
                let mut line = String::from("first\nERROR forged line\r\u{1b}[31m");
                while line.len() < 10 * 1024 {
                    line.push_str("0123456789");
                }
                sdk::info!(host, "{line}");
                Ok("ok".into())
            }
            // an error whose text is 100 KiB with a forged line
            "fail_long" => Err(NodeError::Failed(format!("bad\nERROR forged {}", "x".repeat(100 * 1024)))),
            "log_flood" => {
                for i in 0..1000 {
                    sdk::info!(host, "line {i}");
                }
                Ok("ok".into())
            }
            other => Err(NodeError::InvalidConfig(format!("unknown do {other:?}"))),
        }
    }
}

#[cfg(target_arch = "wasm32")]
sdk::export_node!(Misbehave);
