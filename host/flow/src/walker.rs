//! The graph walker: runs a call through a prepared flow from an entry node, one node at a
//! time, following the output each node takes, and records the trace.
//!
//! Failure handling (never a stuck call): a node that fails (trap, limit, denied capability,
//! undeclared output, error) leaves by its `error` edge when the flow has one, else the call
//! goes to the flow's fallback node (once), else hears the fallback prompt and is hung up.
//! A call that reaches an output with no edge is hung up. The per-call node-run limit stops
//! a flow that loops without end.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::control::{CallControl, HangupCause};
use crate::engine::{Engine, PreparedFlow, RunError};
use crate::graph::{ENTRY_TYPE, ERROR_OUTPUT};
use crate::host::{CallCtx, CallShared, Left};
use crate::services::Services;
use crate::trace::{Outcome, Step, Trace};

/// The prompt the caller hears before a failed call is hung up.
pub const SORRY_PROMPT: &str = "system/sorry";
/// How long the engine's own clean-up actions (sorry prompt, hang-up) may take.
const CLEANUP_LIMIT: Duration = Duration::from_secs(30);

fn outcome_of(left: &Left) -> Outcome {
    match left {
        Left::Bridged(to) => Outcome::Bridged { to: to.clone() },
        Left::Transferred(_) => Outcome::Transferred,
        Left::HungUp(cause) => Outcome::HungUp { cause: *cause },
        Left::CallerHungUp => Outcome::CallerHungUp,
    }
}

/// Plays the fallback prompt and hangs up, within a bound; a caller who already hung up
/// makes both no-ops.
async fn sorry_and_hang_up(flow: &PreparedFlow, call: &dyn CallControl) {
    let prompt = flow.graph.settings.fallback_prompt.as_deref().unwrap_or(SORRY_PROMPT);
    let _ = tokio::time::timeout(CLEANUP_LIMIT, call.play(prompt)).await;
    let _ = tokio::time::timeout(CLEANUP_LIMIT, call.hangup(HangupCause::Normal)).await;
}

async fn hang_up(call: &dyn CallControl) {
    let _ = tokio::time::timeout(CLEANUP_LIMIT, call.hangup(HangupCause::Normal)).await;
}

/// Walks `call` through `flow` from `entry`, in a span carrying the call id.
pub(crate) async fn walk(engine: &Engine, flow: &Arc<PreparedFlow>, entry: &str, call: Arc<dyn CallControl>, services: &Services) -> Trace {
    use tracing::Instrument;
    let span = tracing::info_span!("flow", call_id = call.call_id(), flow_id = flow.flow_id, version = flow.version);
    walk_in_span(engine, flow, entry, call, services).instrument(span).await
}

async fn walk_in_span(engine: &Engine, flow: &Arc<PreparedFlow>, entry: &str, call: Arc<dyn CallControl>, services: &Services) -> Trace {
    let shared = Arc::new(Mutex::new(CallShared { caller: call.caller(), variables: Vec::new(), left: None }));
    let ctx = CallCtx {
        control: call.clone(),
        shared: shared.clone(),
        flow_id: flow.flow_id,
        flow_version: flow.version,
        entry_node: entry.into(),
        pinned: flow.pinned.clone(),
    };
    let limit = engine.limits().max_node_runs;
    let mut steps: Vec<Step> = Vec::new();
    let mut current = entry.to_string();
    let mut in_fallback = false;
    let left = |shared: &Mutex<CallShared>| shared.lock().unwrap_or_else(|e| e.into_inner()).left.clone();

    let outcome = loop {
        let Some(pn) = flow.nodes.get(&current) else {
            tracing::error!(node = %current, "the flow has no such node");
            sorry_and_hang_up(flow, &*call).await;
            break Outcome::Failed { reason: format!("the flow has no node {current:?}") };
        };
        let entered_at = call.now();
        let t0 = tokio::time::Instant::now();
        let (result, logs) = if steps.len() as u32 >= limit {
            (Err(RunError::StepLimit(limit)), Vec::new())
        } else if pn.ty.info.id == ENTRY_TYPE {
            (Ok("next".to_string()), Vec::new())
        } else {
            engine.run_node(pn, ctx.clone(), services).await
        };
        let duration_ms = t0.elapsed().as_millis() as u64;
        tracing::debug!(node = %current, node_type = %pn.ty.info.id, ?result, duration_ms, "node ran");
        let mut step = Step { node_id: current.clone(), node_type: pn.ty.info.id.clone(), output: None, entered_at, duration_ms, error: None, logs };

        // The call left the flow while the node ran (bridged, transferred, hung up): done.
        if let Some(l) = left(&shared) {
            match &result {
                Ok(out) => step.output = Some(out.clone()),
                Err(e) if *e != RunError::CallerHungUp => step.error = Some(e.to_string()),
                Err(_) => {}
            }
            steps.push(step);
            break outcome_of(&l);
        }

        match result {
            Ok(out) => {
                step.output = Some(out.clone());
                steps.push(step);
                let terminal = pn.cached_terminal(&out);
                match flow.next(&current, &out) {
                    Some(next) if !terminal && !out.is_empty() => current = next.to_string(),
                    _ => {
                        hang_up(&*call).await;
                        break match left(&shared) {
                            Some(Left::CallerHungUp) => Outcome::CallerHungUp,
                            _ => Outcome::EndOfFlow,
                        };
                    }
                }
            }
            Err(RunError::CallerHungUp) => {
                steps.push(step);
                break Outcome::CallerHungUp;
            }
            Err(e) => {
                tracing::warn!(node = %current, error = %e, "node failed");
                step.error = Some(e.to_string());
                let step_limit = matches!(e, RunError::StepLimit(_));
                let error_edge = if step_limit { None } else { flow.next(&current, ERROR_OUTPUT) };
                let fallback = flow.graph.settings.fallback_node.as_deref().filter(|f| !in_fallback && !step_limit && flow.nodes.contains_key(*f));
                match (error_edge, fallback) {
                    (Some(next), _) => {
                        step.output = Some(ERROR_OUTPUT.into());
                        steps.push(step);
                        current = next.to_string();
                    }
                    (None, Some(f)) => {
                        steps.push(step);
                        in_fallback = true;
                        current = f.to_string();
                    }
                    (None, None) => {
                        steps.push(step);
                        sorry_and_hang_up(flow, &*call).await;
                        break Outcome::Failed { reason: e.to_string() };
                    }
                }
            }
        }
    };
    tracing::info!(outcome = ?outcome, nodes = steps.len(), "flow ended");
    Trace { call_id: call.call_id().to_string(), flow_id: flow.flow_id, flow_version: flow.version, steps, outcome }
}

#[cfg(test)]
mod tests {
    //! The walker's routing, driven through real built-in nodes (play_message, hangup, a
    //! webhook with no answer to get, which fails, and ring_group, whose `answered` is
    //! terminal) on the simulator's virtual clock.
    use crate::sim::{Script, SimReport, SimTarget};
    use crate::trace::Outcome;
    use crate::{services::Services, Engine, EngineConfig, Limits};
    use serde_json::{json, Value};

    fn engine() -> Engine {
        let cache = std::env::temp_dir().join("flowpbx-flow-unit-cache");
        Engine::new(
            EngineConfig { cache_dir: Some(cache), limits: Limits { max_concurrent_runs: 8, max_node_runs: 20, ..Limits::default() } },
            Services::in_memory(),
        )
        .unwrap()
    }

    fn run(e: &Engine, nodes: Value, edges: Value, settings: Value, script: Value) -> SimReport {
        let g = crate::graph::Graph::from_value(json!({"nodes": nodes, "edges": edges, "settings": settings})).unwrap();
        e.simulate_blocking(SimTarget::Draft { flow_id: 1, graph: g }, Script::parse(&script.to_string()).unwrap()).unwrap()
    }

    fn events(r: &SimReport) -> Vec<String> {
        r.events.iter().map(|e| format!("{} {}", e.event, e.detail).trim().to_string()).collect()
    }

    fn nodes() -> Value {
        json!([
            {"id": "in", "type": "inbound_number", "data": {}},
            {"id": "q", "type": "webhook", "data": {"config": {"url": "https://crm.example.test/route"}}},
            {"id": "say", "type": "play_message", "data": {"config": {"prompt": "p"}}},
            {"id": "fb", "type": "play_message", "data": {"config": {"prompt": "fallback"}}},
            {"id": "bye", "type": "hangup", "data": {"config": {"cause": "rejected"}}}
        ])
    }

    #[test]
    fn an_output_without_an_edge_ends_the_flow_and_hangs_up() {
        let e = engine();
        let r = run(&e, nodes(), json!([{"id": "1", "source": "in", "sourceHandle": "next", "target": "say"}]), json!({}), json!({}));
        assert_eq!(r.trace.node_ids(), ["in", "say"]);
        assert_eq!(r.trace.outcome, Outcome::EndOfFlow);
        assert_eq!(events(&r).last().unwrap(), "hangup Normal");
    }

    #[test]
    fn a_failure_takes_the_error_edge_then_the_fallback_then_sorry() {
        let e = engine();
        let to_q = json!({"id": "1", "source": "in", "sourceHandle": "next", "target": "q"});
        let r =
            run(&e, nodes(), json!([to_q, {"id": "2", "source": "q", "sourceHandle": "error", "target": "bye"}]), json!({"fallback_node": "fb"}), json!({}));
        assert_eq!(r.trace.path()[1], ("q".into(), "error".into()));
        assert_eq!(r.trace.node_ids(), ["in", "q", "bye"]);
        assert_eq!(r.trace.outcome, Outcome::HungUp { cause: crate::control::HangupCause::Rejected });

        let r =
            run(&e, nodes(), json!([to_q, {"id": "3", "source": "fb", "sourceHandle": "next", "target": "bye"}]), json!({"fallback_node": "fb"}), json!({}));
        assert_eq!(r.trace.node_ids(), ["in", "q", "fb", "bye"]);
        assert!(r.trace.steps[1].error.as_deref().is_some_and(|e| e.contains("crm.example.test")), "{:?}", r.trace.steps[1].error);

        let r = run(&e, nodes(), json!([to_q]), json!({"fallback_prompt": "custom/sorry"}), json!({}));
        assert_eq!(r.trace.node_ids(), ["in", "q"]);
        assert_eq!(events(&r)[events(&r).len() - 2..], ["play custom/sorry (3000 ms)".to_string(), "hangup Normal".to_string()]);
    }

    #[test]
    fn the_step_limit_counts_every_node_run() {
        let e = engine();
        let r = run(
            &e,
            nodes(),
            json!([{"id": "1", "source": "in", "sourceHandle": "next", "target": "say"}, {"id": "2", "source": "say", "sourceHandle": "next", "target": "say"}]),
            json!({"fallback_node": "fb"}),
            json!({"prompt_ms": 5}),
        );
        assert_eq!(r.trace.steps.len(), 21);
        // The step limit never goes to the fallback node: it would only loop on.
        assert!(matches!(&r.trace.outcome, Outcome::Failed { reason } if reason.contains("20 per call")));
    }

    #[test]
    fn a_terminal_output_is_never_followed() {
        let e = engine();
        let ents = json!([
            {"kind": "extension", "data": {"id": 1, "extension": "101", "name": "A"}},
            {"kind": "ring_group", "data": {"id": 2, "name": "G", "members": [1]}}
        ]);
        let r = run(
            &e,
            json!([{"id": "in", "type": "inbound_number", "data": {}}, {"id": "rg", "type": "ring_group", "data": {"entity_type": "ring_group", "entity_id": 2}}, {"id": "say", "type": "play_message", "data": {"config": {"prompt": "p"}}}]),
            json!([{"id": "1", "source": "in", "sourceHandle": "next", "target": "rg"}, {"id": "2", "source": "rg", "sourceHandle": "answered", "target": "say"}]),
            json!({}),
            json!({"entities": ents, "extensions": {"101": "answer"}}),
        );
        assert_eq!(r.trace.node_ids(), ["in", "rg"]);
        assert_eq!(r.trace.outcome, Outcome::Bridged { to: "extension 101".into() });
        assert!(!events(&r).iter().any(|e| e.starts_with("hangup")), "a bridged call is not hung up by the flow");
    }

    #[test]
    fn a_caller_hanging_up_mid_node_ends_the_walk() {
        let e = engine();
        let r = run(
            &e,
            nodes(),
            json!([{"id": "1", "source": "in", "sourceHandle": "next", "target": "say"}, {"id": "2", "source": "say", "sourceHandle": "next", "target": "bye"}]),
            json!({}),
            json!({"hangup_at_ms": 1000}),
        );
        assert_eq!(r.trace.path(), vec![("in".to_string(), "next".to_string()), ("say".to_string(), "-".to_string())]);
        assert_eq!(r.trace.outcome, Outcome::CallerHungUp);
        assert_eq!(r.trace.steps[1].duration_ms, 1000);
        assert!(r.trace.steps[1].error.is_none());
    }
}
