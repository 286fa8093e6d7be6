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
    let ctx = CallCtx { control: call.clone(), shared: shared.clone(), flow_id: flow.flow_id, flow_version: flow.version, entry_node: entry.into() };
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
