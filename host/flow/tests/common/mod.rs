//! Helpers shared by the flow crate's integration tests.
#![allow(dead_code)]

use flow::entity::{Entity, EntityCache};
use flow::graph::Graph;
use flow::services::{MemoryKv, Services, StaticDirectory};
use flow::sim::{Script, SimReport, SimTarget};
use flow::{Engine, EngineConfig, Limits};
use std::sync::Arc;

/// Compiled components are cached here across test processes.
pub fn cache_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("flow-components")
}

pub fn limits() -> Limits {
    Limits { max_concurrent_runs: 32, ..Limits::default() }
}

pub fn engine_with(services: Services, limits: Limits) -> Engine {
    Engine::new(EngineConfig { cache_dir: Some(cache_dir()), limits }, services).expect("engine starts")
}

pub fn engine() -> Engine {
    engine_with(Services::in_memory(), limits())
}

pub fn services(entities: Vec<Entity>) -> Services {
    Services {
        entities: Arc::new(EntityCache::with(entities)),
        directory: Arc::new(StaticDirectory::new()),
        kv: Arc::new(MemoryKv::new()),
        http: Arc::new(flow::services::NoHttp),
    }
}

pub fn graph(v: serde_json::Value) -> Graph {
    Graph::from_value(v).expect("graph")
}

pub fn script(v: serde_json::Value) -> Script {
    Script::parse(&v.to_string()).expect("script")
}

/// Simulates a draft graph.
pub fn simulate(e: &Engine, g: serde_json::Value, s: serde_json::Value) -> SimReport {
    e.simulate_blocking(SimTarget::Draft { flow_id: 1, graph: graph(g) }, script(s)).expect("simulation runs")
}

/// (node, output) pairs of a report.
pub fn path(r: &SimReport) -> Vec<(String, String)> {
    r.trace.path()
}

pub fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

/// A test component built by build.rs (not embedded).
pub fn test_component(name: &str) -> Vec<u8> {
    std::fs::read(std::path::Path::new(flow::builtin::COMPONENTS_DIR).join(format!("{name}.wasm"))).expect("test component built")
}

/// The event names of a report, in order.
pub fn events(r: &SimReport) -> Vec<String> {
    r.events.iter().map(|e| if e.detail.is_empty() { e.event.clone() } else { format!("{} {}", e.event, e.detail) }).collect()
}
