//! Publishing: validate, prepare, atomic swap (calls in progress keep their version), live
//! entities, rollback, diff, and plugin versions pinned by publication.

mod common;
use common::*;
use flow::entity::{Entity, EntityKind};
use flow::sim::{SimCall, SimTarget};
use flow::trace::Outcome;
use flow::types::{Capability, PluginGrants};
use flow::validate::{ProblemCode, Severity};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

fn switch(rules: Value) -> Entity {
    Entity::from_json(EntityKind::TimeSwitch, &json!({"id": 1, "name": "Hours", "timezone": "UTC", "rules": rules}).to_string()).unwrap()
}

fn inbound() -> Entity {
    Entity::from_json(EntityKind::InboundNumber, &json!({"id": 1, "number": "+61299990000", "flow_id": 7, "flow_entry_node": "in"}).to_string()).unwrap()
}

/// entry → time switch → (open: play "open") / (default: play "closed") → hangup.
fn hours_flow(open_prompt: &str) -> Value {
    json!({
        "nodes": [
            {"id": "in", "type": "inbound_number", "data": {}},
            {"id": "ts", "type": "time_switch", "data": {"entity_type": "time_switch", "entity_id": 1}},
            {"id": "open", "type": "play_message", "data": {"config": {"prompt": open_prompt}}},
            {"id": "closed", "type": "play_message", "data": {"config": {"prompt": "closed"}}},
            {"id": "bye", "type": "hangup", "data": {}}
        ],
        "edges": [
            {"id": "e1", "source": "in", "sourceHandle": "next", "target": "ts"},
            {"id": "e2", "source": "ts", "sourceHandle": "open", "target": "open"},
            {"id": "e3", "source": "ts", "sourceHandle": "default", "target": "closed"},
            {"id": "e4", "source": "open", "sourceHandle": "next", "target": "bye"},
            {"id": "e5", "source": "closed", "sourceHandle": "next", "target": "bye"}
        ]
    })
}

fn all_week() -> Value {
    json!([{"id": "open", "label": "Open", "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}])
}

fn live_engine() -> flow::Engine {
    engine_with(services(vec![switch(all_week()), inbound()]), limits())
}

fn sim_published(e: &flow::Engine, flow_id: i64) -> flow::sim::SimReport {
    let f = e.published(flow_id).expect("published");
    e.simulate_blocking(SimTarget::Prepared(f), script(json!({"dialled": "+61299990000"}))).expect("simulates")
}

#[test]
fn publish_simulate_publish_again_and_roll_back() {
    let e = live_engine();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let v1 = rt.block_on(e.prepare(7, 1, graph(hours_flow("open-v1")))).expect("v1 is valid");
    assert!(v1.warnings.is_empty(), "{:#?}", v1.warnings);
    e.install(v1.clone());
    let r = sim_published(&e, 7);
    assert_eq!(r.trace.flow_version, 1);
    assert!(events(&r).contains(&"play open-v1 (3000 ms)".to_string()));

    let v2 = rt.block_on(e.prepare(7, 2, graph(hours_flow("open-v2")))).unwrap();
    e.install(v2);
    // New calls get the new version as soon as install returns.
    assert_eq!(e.published(7).unwrap().version, 2);
    assert!(events(&sim_published(&e, 7)).contains(&"play open-v2 (3000 ms)".to_string()));

    // Rolling back publishes the old graph again, as a new version.
    let v3 = rt.block_on(e.prepare(7, 3, (*v1.graph).clone())).unwrap();
    e.install(v3);
    let r = sim_published(&e, 7);
    assert_eq!(r.trace.flow_version, 3);
    assert!(events(&r).contains(&"play open-v1 (3000 ms)".to_string()));

    let d = flow::diff::diff(&v1.graph, &e.published(7).unwrap().graph);
    assert!(d.is_empty());
    let d = flow::diff::diff(&graph(hours_flow("open-v1")), &graph(hours_flow("open-v2")));
    assert_eq!(d.nodes_changed.len(), 1);
    assert_eq!(d.nodes_changed[0].id, "open");
    assert_eq!(d.nodes_changed[0].config[0].new, Some(json!("open-v2")));

    assert!(e.unpublish(7).is_some());
    assert!(e.published(7).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_in_progress_keeps_its_version_while_new_calls_get_the_new_one() {
    let e = live_engine();
    e.install(e.prepare(7, 1, graph(hours_flow("open-v1"))).await.unwrap());
    // A call that spends 1.5 s in the first prompt.
    let slow = Arc::new(SimCall::new(Arc::new(script(json!({"prompts": {"open-v1": 1500, "closed": 10}})))).unwrap());
    let flow_then = e.published(7).unwrap();
    let e2 = e.clone();
    let c = slow.clone();
    let running = tokio::spawn(async move { e2.run_call(flow_then, "in", c).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    e.install(e.prepare(7, 2, graph(hours_flow("open-v2"))).await.unwrap());
    let quick = Arc::new(SimCall::new(Arc::new(script(json!({"prompt_ms": 10})))).unwrap());
    let t_new = e.run_call(e.published(7).unwrap(), "in", quick.clone()).await;
    assert_eq!(t_new.flow_version, 2);
    assert!(quick.events().iter().any(|ev| ev.detail.starts_with("open-v2")));
    let t_old = running.await.unwrap();
    assert_eq!(t_old.flow_version, 1);
    assert!(slow.events().iter().any(|ev| ev.detail.starts_with("open-v1")));
    assert_eq!(t_old.outcome, Outcome::HungUp { cause: flow::control::HangupCause::Normal });
}

#[test]
fn entities_stay_live_without_republishing() {
    let e = live_engine();
    let rt = tokio::runtime::Runtime::new().unwrap();
    e.install(rt.block_on(e.prepare(7, 1, graph(hours_flow("open")))).unwrap());
    assert!(events(&sim_published(&e, 7)).contains(&"play open (3000 ms)".to_string()));
    // The administrator closes the business on every day: the same published flow now
    // leaves the switch by `default`.
    e.services().entities.upsert(switch(json!([{"id": "open", "label": "Open", "days": ["mon"], "start": "00:00", "end": "00:01"}])));
    let r = sim_published(&e, 7);
    assert_eq!(r.trace.path()[1], ("ts".to_string(), "default".to_string()));
    // A rule renamed away from `open`: the node's outputs are recomputed from the live
    // entity; the new output has no edge in this version, so the call ends there.
    e.services().entities.upsert(switch(json!([{"id": "always", "label": "Always", "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}])));
    let r = sim_published(&e, 7);
    assert_eq!(r.trace.path()[1], ("ts".to_string(), "always".to_string()));
    assert!(matches!(r.trace.outcome, Outcome::EndOfFlow), "{:?}", r.trace.outcome);
    // The entity deleted: the node fails, the call hears sorry.
    e.services().entities.remove(EntityKind::TimeSwitch, 1);
    let r = sim_published(&e, 7);
    assert!(r.trace.steps[1].error.as_deref().unwrap_or("").contains("no longer exists"));
    assert!(matches!(r.trace.outcome, Outcome::Failed { .. }));
}

#[test]
fn a_pinned_version_runs_with_the_entities_it_was_published_with() {
    let e = live_engine();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let open = switch(all_week());
    let pinned = |ents: Vec<Entity>| Arc::new(flow::entity::Pinned::new(ents));
    e.install(rt.block_on(e.prepare_pinned(7, 1, graph(hours_flow("open")), None, pinned(vec![open.clone(), inbound()]))).unwrap());
    assert_eq!(e.published(7).unwrap().pinned.as_ref().map(|p| p.len()), Some(1), "the number is not pinned");
    // The administrator closes the business (open one minute a week): version 1 still
    // routes by the rules it was published with.
    let closed = switch(json!([{"id": "open", "label": "Open", "days": ["mon"], "start": "00:00", "end": "00:01"}]));
    e.services().entities.upsert(closed.clone());
    let r = sim_published(&e, 7);
    assert_eq!(r.trace.path()[1], ("ts".to_string(), "open".to_string()));
    assert!(events(&r).contains(&"play open (3000 ms)".to_string()));
    // A draft (nothing pinned) sees the edit at once.
    let draft = simulate(&e, hours_flow("open"), json!({"dialled": "+61299990000"}));
    assert_eq!(draft.trace.path()[1], ("ts".to_string(), "default".to_string()));
    // Publishing again pins the edited switch.
    e.install(rt.block_on(e.prepare_pinned(7, 2, graph(hours_flow("open")), None, pinned(vec![closed]))).unwrap());
    assert_eq!(sim_published(&e, 7).trace.path()[1], ("ts".to_string(), "default".to_string()));
    // Rolling back re-prepares version 1's graph with version 1's entities.
    e.install(rt.block_on(e.prepare_pinned(7, 3, graph(hours_flow("open")), None, pinned(vec![open]))).unwrap());
    assert_eq!(sim_published(&e, 7).trace.path()[1], ("ts".to_string(), "open".to_string()));
    // Deleting the live entity leaves a pinned version running.
    e.services().entities.remove(EntityKind::TimeSwitch, 1);
    assert!(events(&sim_published(&e, 7)).contains(&"play open (3000 ms)".to_string()));
    // A version must have every versioned entity it links among its pins.
    let err = rt.block_on(e.prepare_pinned(7, 4, graph(hours_flow("open")), None, pinned(vec![]))).unwrap_err();
    let flow::Error::Invalid(problems) = err else { panic!("{err}") };
    assert!(problems.iter().any(|p| p.code == ProblemCode::MissingEntity && p.node_id.as_deref() == Some("ts")), "{problems:#?}");
}

#[test]
fn publishing_refuses_a_flow_with_errors_and_reports_them_all() {
    let e = live_engine();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut g = hours_flow("open");
    g["nodes"][1]["data"]["entity_id"] = json!(99);
    g["nodes"][2]["data"]["config"] = json!({"prompt": 5});
    g["nodes"].as_array_mut().unwrap().push(json!({"id": "odd", "type": "acme/missing", "data": {}}));
    let err = rt.block_on(e.prepare(7, 1, graph(g.clone()))).unwrap_err();
    let flow::Error::Invalid(problems) = err else { panic!("{err}") };
    let find = |code: ProblemCode, node: &str| problems.iter().any(|p| p.code == code && p.node_id.as_deref() == Some(node) && p.severity == Severity::Error);
    assert!(find(ProblemCode::MissingEntity, "ts"), "{problems:#?}");
    assert!(find(ProblemCode::InvalidConfig, "open"), "{problems:#?}");
    assert!(find(ProblemCode::UnknownNodeType, "odd"), "{problems:#?}");
    assert!(problems.iter().any(|p| p.code == ProblemCode::Unreachable && p.node_id.as_deref() == Some("odd")));
    // validate() reports the same problems without preparing anything.
    assert_eq!(rt.block_on(e.validate(Some(7), &graph(g))), problems);
    // The entry mapped by the inbound number gives no warning; in another flow it would.
    let warnings = rt.block_on(e.validate(Some(8), &graph(hours_flow("open"))));
    assert_eq!(warnings.iter().map(|p| p.code).collect::<Vec<_>>(), vec![ProblemCode::EntryUnmapped]);
}

#[test]
fn a_new_plugin_version_changes_no_published_flow_until_it_is_republished() {
    let e = live_engine();
    let rt = tokio::runtime::Runtime::new().unwrap();
    e.install_plugin(&test_component("test_misbehave"), &PluginGrants::of(&[Capability::Kv])).unwrap();
    let g = json!({
        "nodes": [
            {"id": "in", "type": "inbound_number", "data": {}},
            {"id": "m", "type": "test/misbehave", "data": {"config": {"do": "kv"}}}
        ],
        "edges": [{"id": "e1", "source": "in", "sourceHandle": "next", "target": "m"}]
    });
    e.install(rt.block_on(e.prepare(9, 1, graph(g.clone()))).unwrap());
    let out = |e: &flow::Engine| {
        let r = e.simulate_blocking(SimTarget::Prepared(e.published(9).unwrap()), script(json!({}))).unwrap();
        r.trace.path()[1].1.clone()
    };
    assert_eq!(out(&e), "ok");
    // The plugin is reinstalled without the kv grant: the published flow keeps the type it
    // was published with.
    e.install_plugin(&test_component("test_misbehave"), &PluginGrants::default()).unwrap();
    assert_eq!(out(&e), "ok");
    e.install(rt.block_on(e.prepare(9, 2, graph(g.clone()))).unwrap());
    assert_eq!(out(&e), "was_denied");
    // Removed: no new publication can use it; the published flow still runs.
    assert!(e.remove_plugin("test/misbehave"));
    assert!(!e.node_types().iter().any(|t| t.id == "test/misbehave"));
    assert_eq!(out(&e), "was_denied");
    assert!(matches!(rt.block_on(e.prepare(9, 3, graph(g.clone()))), Err(flow::Error::Invalid(_))));
    // Loading a published version again (start-up, rollback) pins the plugin version it was
    // published with, whatever the registry holds now.
    let bytes = test_component("test_misbehave");
    let pins = e.published(9).unwrap().plugins();
    assert_eq!(pins.into_iter().collect::<Vec<_>>(), vec![("test/misbehave".to_string(), flow::cache::sha256_hex(&bytes))]);
    let reg = e.registry_pinned(&[(&bytes, &PluginGrants::of(&[Capability::Kv]))]).unwrap();
    e.install(rt.block_on(e.prepare_in(9, 3, graph(g), &reg)).unwrap());
    assert_eq!(out(&e), "ok");
    assert!(!e.node_types().iter().any(|t| t.id == "test/misbehave"), "pinning installs nothing");
}

#[test]
fn node_outputs_follow_config_and_entity() {
    let e = live_engine();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let outs = rt.block_on(e.node_outputs("time_switch", &json!({}), Some(&switch(all_week())))).unwrap().unwrap();
    assert_eq!(outs.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(), ["open", "default"]);
    let rejected = rt.block_on(e.node_outputs("time_switch", &json!({}), None)).unwrap();
    assert!(rejected.is_err(), "a time switch needs its entity: {rejected:?}");
    let entry = rt.block_on(e.node_outputs("inbound_number", &json!({}), None)).unwrap().unwrap();
    assert_eq!(entry[0].id, "next");
    assert!(matches!(rt.block_on(e.node_outputs("acme/none", &json!({}), None)), Err(flow::Error::NotFound(_))));
}

#[test]
fn the_simulator_enters_at_the_number_dialled() {
    let e = live_engine();
    let mut g = hours_flow("open");
    g["nodes"].as_array_mut().unwrap().push(json!({"id": "in2", "type": "inbound_number", "data": {}}));
    g["edges"].as_array_mut().unwrap().push(json!({"id": "e9", "source": "in2", "sourceHandle": "next", "target": "closed"}));
    let run = |s: Value| e.simulate_blocking(SimTarget::Draft { flow_id: 7, graph: graph(g.clone()) }, script(s));
    assert_eq!(run(json!({"dialled": "+61299990000"})).unwrap().trace.node_ids()[0], "in");
    assert_eq!(run(json!({"entry": "in2"})).unwrap().trace.node_ids()[..2], ["in2", "closed"]);
    assert!(run(json!({"dialled": "+100"})).unwrap_err().to_string().contains("set `entry`"));
    assert!(run(json!({"entry": "ghost"})).is_err());
    assert!(flow::sim::Script::parse(r#"{"callr": {}}"#).is_err(), "unknown script fields are refused");
}

#[test]
fn the_trace_is_what_the_cdr_stores() {
    let e = live_engine();
    let r = e
        .simulate_blocking(SimTarget::Draft { flow_id: 7, graph: graph(hours_flow("open")) }, script(json!({"clock": {"start": "2026-03-02T10:00:00Z"}})))
        .unwrap();
    let path: Value = serde_json::from_str(&r.trace.flow_path()).unwrap();
    assert_eq!(path.as_array().unwrap().len(), 4);
    assert_eq!(path[0], json!({"node_id": "in", "node_type": "inbound_number", "output": "next", "entered_at": "2026-03-02T10:00:00Z", "duration_ms": 0}));
    assert_eq!(path[2]["entered_at"], "2026-03-02T10:00:00Z");
    assert_eq!(path[3]["entered_at"], "2026-03-02T10:00:03Z");
    assert!(path[1].get("logs").is_none(), "log lines stay out of the CDR");
    assert!(!r.trace.steps[1].logs.is_empty(), "the simulator shows them");
}
