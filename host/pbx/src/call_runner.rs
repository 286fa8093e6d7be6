//! The flow runner: every call to an inbound number walks the number's published flow.
//!
//! [`run`] reads the PBX's stream of inbound calls ([`call::PbxHandle::incoming_calls`])
//! and runs each call on its own task: the flow's live version is taken once, when the call
//! arrives (a version published during the call does not change it), the entry node is the
//! number's `flow_entry_node`, else the `inbound_number` node linked to that number, and the
//! walk ([`flow::Engine::run_call`] over a [`PbxCall`]) ends in a trace written to the CDR
//! (`flow_id`, `flow_version`, `flow_path`, and the `voicemail` disposition when a message
//! was left). A number with no flow, or whose flow is not published, is refused with 480:
//! never a stuck call.

use std::sync::Arc;

use flow::graph::{Graph, ENTRY_TYPE};
use flow::trace::Trace;

use crate::call_control::PbxCall;
use crate::flows::FlowRuntime;
use crate::pin_guard::PinGuard;

/// The node a call to the number `number_id` enters `graph` at: the number's configured
/// entry node when the graph has it, else the `inbound_number` node linked to that number,
/// else the graph's only `inbound_number` node.
pub fn entry_node(graph: &Graph, number_id: Option<i64>, configured: Option<&str>) -> Option<String> {
    if let Some(c) = configured
        && graph.nodes.iter().any(|n| n.id == c)
    {
        return Some(c.to_string());
    }
    let entries: Vec<_> = graph.nodes.iter().filter(|n| n.node_type == ENTRY_TYPE).collect();
    if let Some(id) = number_id
        && let Some(n) = entries.iter().find(|n| n.data.entity_id == Some(id))
    {
        return Some(n.id.clone());
    }
    match entries.as_slice() {
        [only] => Some(only.id.clone()),
        _ => None,
    }
}

/// The CDR's `flow_path` of a trace (its steps without log lines), as JSON.
pub fn flow_path(trace: &Trace) -> serde_json::Value {
    serde_json::from_str(&trace.flow_path()).unwrap_or_else(|_| serde_json::Value::Array(Vec::new()))
}

/// Runs inbound calls through flows until the PBX stops: each call that arrives on `rx`
/// (the PBX's [`call::PbxHandle::incoming_calls`], taken before the engine started, so that
/// calls arriving while it starts wait for it) walks on its own task.
pub async fn run(
    pbx: call::PbxHandle,
    runtime: FlowRuntime,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<call::IncomingCall>,
    metrics: Arc<crate::metrics::FlowMetrics>,
) {
    let pins = Arc::new(PinGuard::new());
    let vm_pins = Arc::new(crate::voicemail_menu::pin_guard());
    while let Some(incoming) = rx.recv().await {
        if let Some(extension_id) = incoming.voicemail_from {
            // a phone dialled the voicemail: the menu, not a flow
            let call = PbxCall::new(pbx.clone(), runtime.store().clone(), &incoming, pins.clone()).with_voicemail_pins(vm_pins.clone());
            tracing::info!(call_id = %incoming.call_id, extension_id, dialled = %incoming.dialled, "dial-in voicemail");
            tokio::spawn(crate::voicemail_menu::run(call, extension_id, incoming.dialled.clone(), vm_pins.clone()));
            continue;
        }
        let call_pins = pins.clone();
        let vm = vm_pins.clone();
        tokio::spawn(run_one(pbx.clone(), runtime.clone(), incoming, call_pins, vm, metrics.clone()));
    }
}

async fn refuse(pbx: &call::PbxHandle, incoming: &call::IncomingCall, why: &str) {
    tracing::warn!(call_id = %incoming.call_id, number = %incoming.dialled, why, "inbound call refused (480)");
    if let Err(e) = pbx.hangup(incoming.key, 480).await {
        tracing::debug!(error = %e, "refusing a call that already ended");
    }
}

/// Runs one call through its number's flow and writes the trace to the CDR.
async fn run_one(
    pbx: call::PbxHandle,
    runtime: FlowRuntime,
    incoming: call::IncomingCall,
    pins: Arc<PinGuard>,
    vm_pins: Arc<PinGuard>,
    metrics: Arc<crate::metrics::FlowMetrics>,
) {
    let store = runtime.store().clone();
    let Some(flow_id) = incoming.flow_id else {
        return refuse(&pbx, &incoming, "the number enters no flow").await;
    };
    // the version live now: the call keeps it whatever is published while it runs
    let flow = match runtime.engine().published(flow_id) {
        Some(f) => f,
        None => match runtime.latest_published(flow_id).await {
            Some(f) => f,
            None => return refuse(&pbx, &incoming, "the number's flow is not published").await,
        },
    };
    let number = match store.inbound_numbers().get_by_number(&incoming.dialled).await {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "reading the inbound number");
            None
        }
    };
    let Some(entry) = entry_node(&flow.graph, number.as_ref().map(|n| n.id), number.as_ref().and_then(|n| n.flow_entry_node.as_deref())) else {
        return refuse(&pbx, &incoming, "the flow has no entry node for the number").await;
    };
    let call = PbxCall::new(pbx.clone(), store, &incoming, pins).with_voicemail_pins(vm_pins);
    tracing::info!(call_id = %incoming.call_id, flow_id, version = flow.version, entry = %entry, "call enters its flow");
    let trace = runtime.engine().run_call(flow, &entry, call.clone()).await;
    metrics.record(&trace);
    let disposition = call.left_voicemail().then_some(store::CallDisposition::Voicemail);
    pbx.record_flow(incoming.key, trace.flow_id, trace.flow_version, flow_path(&trace), disposition);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph() -> Graph {
        Graph::parse(
            r#"{"nodes":[
                {"id":"main","type":"inbound_number","data":{"entity_id":1}},
                {"id":"sales","type":"inbound_number","data":{"entity_id":"2"}},
                {"id":"x","type":"hangup","data":{}}]}"#,
        )
        .unwrap()
    }

    #[test]
    fn the_configured_entry_node_wins_when_the_graph_has_it() {
        assert_eq!(entry_node(&graph(), Some(1), Some("x")).as_deref(), Some("x"));
        assert_eq!(entry_node(&graph(), Some(1), Some("gone")).as_deref(), Some("main"));
    }

    #[test]
    fn else_the_entry_linked_to_the_number() {
        assert_eq!(entry_node(&graph(), Some(2), None).as_deref(), Some("sales"));
        // two entries, neither linked: no guess
        assert_eq!(entry_node(&graph(), Some(9), None), None);
        let one = Graph::parse(r#"{"nodes":[{"id":"e","type":"inbound_number","data":{}}]}"#).unwrap();
        assert_eq!(entry_node(&one, Some(9), None).as_deref(), Some("e"));
    }
}
