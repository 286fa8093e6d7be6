mod common;
use common::*;
use serde_json::json;

#[test]
fn engine_lists_every_builtin() {
    let e = engine();
    let ids: Vec<String> = e.node_types().into_iter().map(|t| t.id).collect();
    for id in ["inbound_number", "time_switch", "ivr_menu", "ring_group", "extension", "voicemail", "play_message", "conference", "transfer", "hangup", "set_caller_id", "webhook", "queue"] {
        assert!(ids.contains(&id.to_string()), "{id} missing from {ids:?}");
    }
    assert_eq!(ids.len(), 13);
}

#[test]
fn a_play_message_flow_simulates() {
    let e = engine();
    let r = simulate(
        &e,
        json!({
            "nodes": [
                {"id": "in", "type": "inbound_number", "data": {}},
                {"id": "hello", "type": "play_message", "data": {"config": {"tts": "Hello there"}}},
                {"id": "bye", "type": "hangup", "data": {"config": {"cause": "normal"}}}
            ],
            "edges": [
                {"id": "e1", "source": "in", "sourceHandle": "next", "target": "hello"},
                {"id": "e2", "source": "hello", "sourceHandle": "next", "target": "bye"}
            ]
        }),
        json!({}),
    );
    println!("{}", serde_json::to_string_pretty(&r).unwrap());
    assert_eq!(path(&r), p(&[("in", "next"), ("hello", "next"), ("bye", "")]));
}
