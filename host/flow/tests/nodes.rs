//! Simulation tests for every built-in node, against the behaviour its node's
//! documentation states (`nodes/*/src/lib.rs`, `nodes/README.md`) and issue 5. Each runs the real component in the simulator (virtual time).

mod common;
use common::*;
use flow::sim::SimReport;
use flow::trace::Outcome;
use serde_json::{json, Value};

/// entry → `node` (type, entity, config); each of `outputs` leads to a play-message node
/// `o_<output>` and then a hangup; `error` too.
fn around(node_type: &str, entity: Option<(&str, i64)>, config: Value, outputs: &[&str]) -> Value {
    let mut data = json!({ "config": config });
    if let Some((kind, id)) = entity {
        data["entity_type"] = kind.into();
        data["entity_id"] = id.into();
    }
    let mut nodes = vec![
        json!({"id": "in", "type": "inbound_number", "data": {}}),
        json!({"id": "x", "type": node_type, "data": data}),
        json!({"id": "bye", "type": "hangup", "data": {}}),
    ];
    let mut edges = vec![json!({"id": "e-in", "source": "in", "sourceHandle": "next", "target": "x"})];
    for o in outputs.iter().chain(std::iter::once(&"error")) {
        nodes.push(json!({"id": format!("o_{o}"), "type": "play_message", "data": {"config": {"prompt": format!("after/{o}")}}}));
        edges.push(json!({"id": format!("e-{o}"), "source": "x", "sourceHandle": o, "target": format!("o_{o}")}));
        edges.push(json!({"id": format!("e-{o}-bye"), "source": format!("o_{o}"), "sourceHandle": "next", "target": "bye"}));
    }
    json!({ "nodes": nodes, "edges": edges })
}

/// The output node `x` took.
fn out(r: &SimReport) -> String {
    r.trace.steps.iter().find(|s| s.node_id == "x").and_then(|s| s.output.clone()).unwrap_or_else(|| "-".into())
}

fn ext(id: i64, number: &str) -> Value {
    json!({"kind": "extension", "data": {"id": id, "extension": number, "name": format!("Ext {number}")}})
}

// ---------------------------------------------------------------- time switch

fn switch_entity() -> Value {
    json!({"kind": "time_switch", "data": {
        "id": 1, "name": "Hours", "timezone": "Australia/Sydney",
        "rules": [
            {"id": "open", "label": "Business Hours", "days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:30", "end": "17:00"},
            {"id": "night", "label": "Night line", "days": ["fri"], "start": "22:00", "end": "06:00"}
        ],
        "overrides": [
            {"id": "holiday", "label": "Christmas", "date": "2026-12-25", "end_date": "2026-12-26"},
            {"label": "Christmas Eve afternoon", "date": "2026-12-24", "start": "12:00", "output": "default"}
        ]
    }})
}

fn at(r: &str) -> String {
    let e = engine();
    let res = simulate(
        &e,
        around("time_switch", Some(("time_switch", 1)), json!({}), &["open", "night", "holiday", "default"]),
        json!({"clock": {"start": r, "zone": "Australia/Sydney"}, "entities": [switch_entity()]}),
    );
    out(&res)
}

#[test]
fn time_switch_weekly_rules_in_the_switch_zone_first_match_wins() {
    assert_eq!(at("2026-12-23T09:00"), "open"); // Wednesday morning
    assert_eq!(at("2026-12-23T08:29"), "default");
    assert_eq!(at("2026-12-23T17:00"), "default"); // end is exclusive
    assert_eq!(at("2026-12-19T10:00"), "default"); // Saturday
    assert_eq!(at("2026-12-18T23:00"), "night"); // Friday night
    assert_eq!(at("2026-12-19T05:59"), "night"); // the night line spans into Saturday
    assert_eq!(at("2026-12-19T06:00"), "default");
}

#[test]
fn time_switch_date_overrides_come_first() {
    assert_eq!(at("2026-12-25T09:00"), "holiday"); // Friday, but Christmas
    assert_eq!(at("2026-12-26T23:00"), "holiday"); // through end_date
    assert_eq!(at("2026-12-24T10:00"), "open"); // Christmas Eve morning: a normal Thursday
    assert_eq!(at("2026-12-24T13:00"), "default"); // the afternoon override leaves by default
}

#[test]
fn time_switch_converts_the_call_time_to_the_switch_zone() {
    // 22:30 UTC on Tuesday 22nd is 09:30 on Wednesday 23rd in Sydney (UTC+11 in summer).
    let e = engine();
    let r = simulate(
        &e,
        around("time_switch", Some(("time_switch", 1)), json!({}), &["open", "night", "holiday", "default"]),
        json!({"clock": {"start": "2026-12-22T22:30:00Z"}, "entities": [switch_entity()]}),
    );
    assert_eq!(out(&r), "open");
}

#[test]
fn time_switch_outputs_follow_its_rules_and_bad_rules_are_reported() {
    let e = engine();
    let flow = around("time_switch", Some(("time_switch", 1)), json!({}), &["open", "night", "holiday", "default"]);
    let err = e
        .simulate_blocking(
            flow::sim::SimTarget::Draft { flow_id: 1, graph: graph(flow.clone()) },
            script(
                json!({"entities": [{"kind": "time_switch", "data": {"id": 1, "name": "x", "rules": [{"label": "bad", "days": ["mon"], "start": "25:00"}]}}]}),
            ),
        )
        .unwrap_err();
    let flow::Error::Invalid(problems) = err else { panic!("{err}") };
    assert!(problems.iter().any(|p| p.node_id.as_deref() == Some("x") && p.message.contains("25:00")), "{problems:#?}");
    // An edge from an output the rules no longer have is reported on the edge.
    assert!(problems.iter().any(|p| p.edge_id.as_deref() == Some("e-open") || p.node_id.as_deref() == Some("x")));
    let err = e
        .simulate_blocking(
            flow::sim::SimTarget::Draft { flow_id: 1, graph: graph(flow) },
            script(json!({"entities": [{"kind": "time_switch", "data": {"id": 1, "name": "x", "timezone": "Mars/Base", "rules": []}}]})),
        )
        .unwrap_err();
    assert!(err.to_string().contains("problem"), "{err}");
}

// ---------------------------------------------------------------- IVR menu

fn menu(options: Value) -> Value {
    json!({"kind": "ivr_menu", "data": {"id": 3, "name": "Main", "greeting_file": "ivr/main", "timeout": 5, "max_retries": 2, "digit_timeout": 2, "options": options}})
}

fn ivr(options: Value, s: Value) -> SimReport {
    let keys: Vec<String> = options.as_object().unwrap().keys().cloned().collect();
    let mut outs: Vec<&str> = keys.iter().map(String::as_str).collect();
    outs.extend(["timeout", "invalid"]);
    let mut s = s;
    s["entities"] = json!([menu(options)]);
    s["prompt_ms"] = json!(4000);
    simulate(&engine(), around("ivr_menu", Some(("ivr_menu", 3)), json!({}), &outs), s)
}

#[test]
fn ivr_routes_by_the_digit_and_a_digit_stops_the_greeting() {
    let r = ivr(json!({"1": "Sales", "2": "Support", "#": "Operator"}), json!({"dtmf": [{"at_ms": 1500, "digits": "2"}]}));
    assert_eq!(out(&r), "2");
    let ev = events(&r);
    assert_eq!(ev[..4], ["answer", "play ivr/main (4000 ms)", "digit 2", "audio_stopped"], "{ev:?}");
    let r = ivr(json!({"1": "Sales", "2": "Support", "#": "Operator"}), json!({"dtmf": [{"at_ms": 6000, "digits": "#"}]}));
    assert_eq!(out(&r), "#");
}

#[test]
fn ivr_repeats_on_timeout_then_leaves_by_timeout() {
    let r = ivr(json!({"1": "Sales"}), json!({}));
    assert_eq!(out(&r), "timeout");
    let greetings = events(&r).iter().filter(|e| e.starts_with("play ivr/main")).count();
    assert_eq!(greetings, 3, "the first try and max_retries = 2 repeats");
    // 3 × (4 s greeting + 5 s wait).
    assert_eq!(r.trace.steps[1].duration_ms, 27_000);
}

#[test]
fn ivr_an_invalid_choice_plays_the_invalid_prompt_and_repeats() {
    let r = ivr(json!({"1": "Sales"}), json!({"dtmf": [{"at_ms": 1000, "digits": "5"}, {"at_ms": 12_000, "digits": "1"}]}));
    assert_eq!(out(&r), "1");
    assert!(events(&r).contains(&"play system/invalid-option (4000 ms)".to_string()));
    let r = ivr(json!({"1": "Sales"}), json!({"dtmf": [{"at_ms": 1000, "digits": "5"}, {"at_ms": 9000, "digits": "7"}, {"at_ms": 17_000, "digits": "9"}]}));
    assert_eq!(out(&r), "invalid");
}

#[test]
fn menu_dtmf_presses_one_entry_per_collection_relative_to_its_start() {
    // The first attempt gets "5" (invalid), the repeat gets "1": each 1 s after that
    // attempt's greeting starts, however long the invalid prompt in between lasts.
    let r = ivr(json!({"1": "Sales"}), json!({"menu_dtmf": [{"digits": "5"}, {"digits": "1", "after_ms": 500}]}));
    assert_eq!(out(&r), "1");
    let ev = events(&r);
    assert_eq!(ev.iter().filter(|e| e.starts_with("play ivr/main")).count(), 2, "{ev:?}");
    assert_eq!(ev.iter().filter(|e| *e == "audio_stopped").count(), 2, "both greetings are cut short: {ev:?}");
    // No entry left: the next attempt times out like a silent caller.
    assert_eq!(out(&ivr(json!({"1": "Sales"}), json!({"menu_dtmf": [{"digits": "9"}]}))), "timeout");
    let g = graph(around("ivr_menu", Some(("ivr_menu", 3)), json!({}), &["1", "timeout", "invalid"]));
    let err = engine()
        .simulate_blocking(
            flow::sim::SimTarget::Draft { flow_id: 1, graph: g },
            script(json!({"entities": [menu(json!({"1": "Sales"}))], "menu_dtmf": [{"digits": "x"}]})),
        )
        .unwrap_err();
    assert!(err.to_string().contains("not a DTMF digit"), "{err}");
}

#[test]
fn ivr_multi_digit_choices_use_the_inter_digit_timeout() {
    let opts = json!({"1": "One", "12": "Twelve"});
    assert_eq!(out(&ivr(opts.clone(), json!({"dtmf": [{"at_ms": 500, "digits": "12"}]}))), "12");
    // "1" then silence past the 2 s inter-digit timeout: the choice is "1".
    assert_eq!(out(&ivr(opts.clone(), json!({"dtmf": [{"at_ms": 500, "digits": "1"}, {"at_ms": 3000, "digits": "2"}]}))), "1");
    // Type-ahead: digits pressed before the menu (during a greeting) count.
    assert_eq!(out(&ivr(opts, json!({"dtmf": [{"at_ms": 0, "digits": "12"}]}))), "12");
}

#[test]
fn ivr_reads_tts_when_there_is_no_prompt_and_ends_when_the_caller_hangs_up() {
    let mut m = menu(json!({"1": "Sales"}));
    m["data"]["greeting_file"] = Value::Null;
    m["data"]["greeting_tts"] = json!("Press one for sales");
    let r =
        simulate(&engine(), around("ivr_menu", Some(("ivr_menu", 3)), json!({}), &["1", "timeout", "invalid"]), json!({"entities": [m], "hangup_at_ms": 3000}));
    assert!(events(&r).iter().any(|e| e.starts_with("say Press one for sales")));
    assert_eq!(r.trace.outcome, Outcome::CallerHungUp);
    assert_eq!(out(&r), "-");
}

// ---------------------------------------------------------------- ring group

fn group(strategy: &str, extra: Value) -> Value {
    let mut g = json!({"kind": "ring_group", "data": {"id": 5, "name": "Sales", "strategy": strategy, "ring_timeout": 60, "members": [1, 2, 3]}});
    for (k, v) in extra.as_object().unwrap() {
        g["data"][k] = v.clone();
    }
    g
}

fn ring_group(strategy: &str, extra: Value, s: Value) -> SimReport {
    let mut s = s;
    s["entities"] = json!([ext(1, "101"), ext(2, "102"), ext(3, "103"), group(strategy, extra)]);
    simulate(&engine(), around("ring_group", Some(("ring_group", 5)), json!({}), &["answered", "no_answer"]), s)
}

fn rings(r: &SimReport) -> Vec<String> {
    r.events.iter().filter(|e| e.event == "ring").map(|e| e.detail.split(" for ").next().unwrap_or("").to_string()).collect()
}

#[test]
fn ring_all_rings_every_member_at_once_and_bridges_the_first_answer() {
    let r = ring_group("ring_all", json!({}), json!({"extensions": {"102": {"answer_after_ms": 5000}}}));
    assert_eq!(out(&r), "answered");
    assert_eq!(rings(&r), ["extension 101, extension 102, extension 103"]);
    assert_eq!(r.trace.outcome, Outcome::Bridged { to: "extension 102".into() });
    assert_eq!(r.trace.steps.len(), 2, "no edge is followed after the bridge");
    let r = ring_group("ring_all", json!({"ring_timeout": 20}), json!({}));
    assert_eq!(out(&r), "no_answer");
    assert_eq!(r.trace.steps[1].duration_ms, 20_000);
}

#[test]
fn sequential_rings_one_member_at_a_time_in_order() {
    let r = ring_group("sequential", json!({}), json!({"extensions": {"102": "busy", "103": "answer"}}));
    assert_eq!(rings(&r), ["extension 101", "extension 102", "extension 103"]);
    assert_eq!(out(&r), "answered");
    // 101 rings its 15 s, busy 102 costs nothing, 103 answers after 3 s.
    assert_eq!(r.trace.steps[1].duration_ms, 18_000);
}

#[test]
fn the_ring_timeout_bounds_the_whole_group() {
    let r = ring_group("sequential", json!({"ring_timeout": 20}), json!({}));
    assert_eq!(rings(&r), ["extension 101", "extension 102"]);
    assert_eq!(out(&r), "no_answer");
    assert_eq!(r.trace.steps[1].duration_ms, 20_000);
}

#[test]
fn round_robin_starts_after_the_pointer_kept_in_kv() {
    for (pointer, first) in [("0", "extension 101"), ("1", "extension 102"), ("2", "extension 103"), ("3", "extension 101")] {
        let r = ring_group("round_robin", json!({"ring_timeout": 10, "member_timeout": 10}), json!({"kv": {"ring_group": {"rr:5": pointer}}}));
        assert_eq!(rings(&r)[0], first, "pointer {pointer}");
    }
    // With no pointer yet, the first call starts at the first member.
    let r = ring_group("round_robin", json!({"ring_timeout": 10, "member_timeout": 10}), json!({}));
    assert_eq!(rings(&r)[0], "extension 101");
}

#[test]
fn random_order_is_a_permutation_reproducible_per_call() {
    let mut orders = std::collections::BTreeSet::new();
    for i in 0..8 {
        let s = json!({"call_id": format!("call-{i}")});
        let a = rings(&ring_group("random", json!({}), s.clone()));
        let b = rings(&ring_group("random", json!({}), s));
        assert_eq!(a, b, "the same call rings in the same order");
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, ["extension 101", "extension 102", "extension 103"]);
        orders.insert(a);
    }
    assert!(orders.len() > 1, "eight calls all got the same order: {orders:?}");
}

#[test]
fn longest_idle_rings_the_member_idle_longest_and_skips_busy_ones() {
    let r = ring_group(
        "longest_idle",
        json!({}),
        json!({"presence": {"101": {"idle_ms": 10_000}, "102": {"idle_ms": 300_000}, "103": {"in_call": true, "idle_ms": 900_000}}}),
    );
    assert_eq!(rings(&r), ["extension 102", "extension 101"]);
}

#[test]
fn caller_id_modes_change_what_the_phones_show() {
    let r = ring_group("ring_all", json!({"caller_id_mode": "prepend"}), json!({"caller": {"number": "+61400000009", "name": "Ann"}}));
    let ring = r.events.iter().find(|e| e.event == "ring").unwrap();
    assert!(ring.detail.ends_with("showing +61400000009 (Sales: Ann)"), "{}", ring.detail);
    let r = ring_group("ring_all", json!({"caller_id_mode": "fixed", "caller_id_name": "Sales line", "caller_id_number": "+61299990000"}), json!({}));
    assert!(r.events.iter().any(|e| e.event == "ring" && e.detail.ends_with("showing +61299990000 (Sales line)")));
}

// ---------------------------------------------------------------- extension

fn extension(config: Value, s: Value, e: Value) -> SimReport {
    let mut s = s;
    s["entities"] = json!([e]);
    simulate(&engine(), around("extension", Some(("extension", 1)), config, &["answered", "no_answer", "busy"]), s)
}

#[test]
fn extension_answered_busy_and_no_answer() {
    let r = extension(json!({}), json!({"extensions": {"101": "answer"}}), ext(1, "101"));
    assert_eq!((out(&r), r.trace.outcome.clone()), ("answered".into(), Outcome::Bridged { to: "extension 101".into() }));
    assert_eq!(out(&extension(json!({}), json!({"extensions": {"101": "busy"}}), ext(1, "101"))), "busy");
    let mut dnd = ext(1, "101");
    dnd["data"]["dnd"] = json!(true);
    assert_eq!(out(&extension(json!({}), json!({"extensions": {"101": "answer"}}), dnd)), "busy");
    let r = extension(json!({}), json!({}), ext(1, "101"));
    assert_eq!(out(&r), "no_answer");
    assert_eq!(r.trace.steps[1].duration_ms, 30_000, "the extension's ring_timeout");
    let r = extension(json!({"timeout": 12}), json!({}), ext(1, "101"));
    assert_eq!(r.trace.steps[1].duration_ms, 12_000, "the node's override");
    let r = extension(json!({}), json!({"presence": {"101": {"registered": 0}}, "extensions": {"101": "answer"}}), ext(1, "101"));
    assert_eq!(out(&r), "no_answer", "nothing registered");
    assert_eq!(r.trace.steps[1].duration_ms, 0);
}

// ---------------------------------------------------------------- voicemail

fn vm_box() -> Value {
    json!({"kind": "voicemail_box", "data": {"id": 2, "name": "After Hours", "max_message_duration": 60}})
}

#[test]
fn voicemail_records_into_the_box_and_the_caller_hangs_up() {
    let r = simulate(
        &engine(),
        around("voicemail", Some(("voicemail_box", 2)), json!({}), &["done"]),
        json!({"entities": [vm_box()], "voicemail": {"message_ms": 20_000}}),
    );
    let ev = events(&r);
    assert!(ev.contains(&"record voicemail box After Hours".to_string()), "{ev:?}");
    assert!(ev.contains(&"message_stored voicemail box After Hours (20000 ms)".to_string()), "{ev:?}");
    assert_eq!(r.trace.outcome, Outcome::CallerHungUp);
}

#[test]
fn voicemail_duration_is_capped_and_a_caller_who_stays_continues() {
    let r = simulate(
        &engine(),
        around("voicemail", Some(("voicemail_box", 2)), json!({"max_duration_s": 5, "play_greeting": false}), &["done"]),
        json!({"entities": [vm_box()], "voicemail": {"message_ms": 20_000, "then": "stay"}}),
    );
    assert!(events(&r).contains(&"message_stored voicemail box After Hours (5000 ms)".to_string()));
    assert!(!events(&r).iter().any(|e| e.contains("greeting")));
    assert_eq!(out(&r), "done");
    assert_eq!(r.trace.node_ids(), ["in", "x", "o_done", "bye"]);
}

// ---------------------------------------------------------------- play message, hangup, set caller id

#[test]
fn play_message_plays_a_prompt_or_reads_text_then_continues() {
    let e = engine();
    let r = simulate(&e, around("play_message", None, json!({"prompt": "welcome", "repeat": 2}), &["next"]), json!({"prompts": {"welcome": 2500}}));
    assert_eq!(out(&r), "next");
    assert_eq!(events(&r).iter().filter(|e| *e == "play welcome (2500 ms)").count(), 2);
    let r = simulate(&e, around("play_message", None, json!({"tts": "We are closed"}), &["next"]), json!({}));
    assert!(events(&r).contains(&"say We are closed (1000 ms)".to_string()));
    // Neither prompt nor text: the schema refuses it.
    let err = e
        .simulate_blocking(flow::sim::SimTarget::Draft { flow_id: 1, graph: graph(around("play_message", None, json!({}), &["next"])) }, script(json!({})))
        .unwrap_err();
    assert!(matches!(err, flow::Error::Invalid(_)));
}

#[test]
fn hangup_ends_the_call_with_its_cause() {
    let r = simulate(&engine(), around("hangup", None, json!({"cause": "busy", "prompt": "system/goodbye"}), &[]), json!({}));
    assert_eq!(events(&r)[events(&r).len() - 2..], ["play system/goodbye (3000 ms)".to_string(), "hangup Busy".to_string()]);
    assert_eq!(r.trace.outcome, Outcome::HungUp { cause: flow::control::HangupCause::Busy });
}

#[test]
fn set_caller_id_replaces_or_prefixes_for_what_follows() {
    let g = |config: Value| {
        let mut g = around("set_caller_id", None, config, &["next"]);
        // After it, ring an extension so the new caller id shows.
        g["nodes"].as_array_mut().unwrap().push(json!({"id": "ring", "type": "extension", "data": {"entity_type": "extension", "entity_id": 1}}));
        g["edges"].as_array_mut().unwrap().retain(|e| e["id"] != "e-next");
        g["edges"].as_array_mut().unwrap().push(json!({"id": "e-next", "source": "x", "sourceHandle": "next", "target": "ring"}));
        g
    };
    let s = json!({"caller": {"number": "0400111222", "name": "Bob"}, "entities": [ext(1, "101")], "extensions": {"101": "answer"}});
    let r = simulate(&engine(), g(json!({"name": "Support: ", "mode": "prepend"})), s.clone());
    assert!(events(&r).contains(&"caller_id 0400111222 (Support: Bob)".to_string()), "{:?}", events(&r));
    let r = simulate(&engine(), g(json!({"number": "+61299990000", "name": "Reception"})), s.clone());
    assert!(events(&r).contains(&"caller_id +61299990000 (Reception)".to_string()));
    assert_eq!(r.trace.outcome, Outcome::Bridged { to: "extension 101".into() });
    // what the host would have to write into a header is refused: the node's error path
    let mut bad = s.clone();
    bad["caller"]["number"] = json!("+61400111222");
    let r = simulate(&engine(), g(json!({"number": "+1", "mode": "prepend"})), bad);
    assert_eq!(out(&r), "error", "+1+61400111222 is no number");
    assert!(r.trace.steps[1].error.as_deref().unwrap_or("").contains("caller id number"), "{:?}", r.trace.steps[1].error);
    let mut withheld = s;
    withheld["caller"]["number"] = json!("anonymous");
    let r = simulate(&engine(), g(json!({"name": "Support: ", "mode": "prepend"})), withheld);
    assert!(events(&r).contains(&"caller_id anonymous (Support: Bob)".to_string()), "{:?}", events(&r));
}

// ---------------------------------------------------------------- transfer

#[test]
fn transfer_goes_to_the_linked_extension_or_an_external_number() {
    let r = simulate(&engine(), around("transfer", Some(("extension", 1)), json!({}), &[]), json!({"entities": [ext(1, "101")]}));
    assert!(events(&r).contains(&"transfer extension 101".to_string()));
    assert_eq!(r.trace.outcome, Outcome::Transferred);
    let r = simulate(&engine(), around("transfer", None, json!({"number": "+61299990001"}), &[]), json!({}));
    assert!(events(&r).contains(&"transfer number +61299990001".to_string()));
    // with neither, Validate says so (a_transfer_or_ring_with_nowhere_to_go_…)
}

#[test]
fn an_extension_node_rings_an_outside_number_when_no_extension_is_linked() {
    let r = simulate(&engine(), around("extension", None, json!({"number": "+61299990001", "timeout": 5}), &["answered", "no_answer", "busy"]), json!({}));
    assert!(events(&r).iter().any(|e| e.contains("+61299990001")), "{:?}", events(&r));
    assert_eq!(out(&r), "no_answer", "the script answers no number");
    assert_eq!(r.trace.steps[1].duration_ms, 5_000);
    // the call's log says what happened in words, not as a Rust enum
    let logs = r.trace.steps[1].logs.iter().map(|l| l.message.as_str()).collect::<Vec<_>>().join("\n");
    assert!(logs.contains("+61299990001: no answer") && !logs.contains("NoAnswer"), "{logs}");
}

#[test]
fn a_transfer_or_ring_with_nowhere_to_go_is_a_validation_problem_in_words() {
    let e = engine();
    let rt = tokio::runtime::Runtime::new().unwrap();
    for t in ["transfer", "extension"] {
        let g = flow::graph::Graph::from_value(around(t, None, json!({}), &[])).unwrap();
        let p = rt.block_on(e.validate(Some(1), &g));
        let mine: Vec<_> = p.iter().filter(|p| p.node_id.as_deref() == Some("x") && p.severity == flow::validate::Severity::Error).collect();
        assert_eq!(mine.len(), 1, "{t}: {p:#?}");
        assert_eq!(mine[0].message, "choose an extension or enter an outside number", "{t}");
        // an outside number alone is enough
        let g = flow::graph::Graph::from_value(around(t, None, json!({"number": "+12125559876"}), &[])).unwrap();
        assert!(
            !rt.block_on(e.validate(Some(1), &g)).iter().any(|p| p.node_id.as_deref() == Some("x") && p.severity == flow::validate::Severity::Error),
            "{t}"
        );
        // a number that is not one is named with the field's label
        let g = flow::graph::Graph::from_value(around(t, None, json!({"number": "call me"}), &[])).unwrap();
        let p = rt.block_on(e.validate(Some(1), &g));
        assert!(p.iter().any(|p| p.node_id.as_deref() == Some("x") && p.message == "Outside number: does not have the expected form"), "{t}: {p:#?}");
    }
}

// ---------------------------------------------------------------- webhook

fn hook(config: Value, http: Value) -> SimReport {
    let outs = ["sales", "support", "default", "timeout"];
    simulate(
        &engine(),
        around("webhook", None, config, &outs),
        json!({"http": http, "caller": {"number": "+61400000001", "name": "Ann"}, "dialled": "+61299990000"}),
    )
}

fn hook_config() -> Value {
    json!({"url": "https://crm.example.com/route", "field": "route", "timeout_ms": 2000, "routes": [{"value": "sales"}, {"value": "support", "label": "Support"}], "variables": {"account": "customer.id"}})
}

#[test]
fn webhook_routes_on_a_field_of_the_response_and_sends_the_call() {
    let r = hook(hook_config(), json!([{"url": "https://crm.example.com/route", "body": {"route": "support", "customer": {"id": 42}}}]));
    assert_eq!(out(&r), "support");
    let req = &r.http_requests[0];
    assert_eq!(req.request.method, "POST");
    let body: Value = serde_json::from_slice(&req.request.body).unwrap();
    assert_eq!(body["caller"], json!({"number": "+61400000001", "name": "Ann"}));
    assert_eq!(body["dialled"], "+61299990000");
    assert_eq!(body["node_id"], "x");
    assert!(req.request.headers.contains(&("content-type".into(), "application/json".into())));
}

#[test]
fn webhook_sets_variables_later_nodes_see() {
    // Two webhooks in a row: the second sees the variable the first set.
    let mut g = around("webhook", None, hook_config(), &["sales", "support", "default", "timeout"]);
    g["nodes"].as_array_mut().unwrap().push(json!({"id": "x2", "type": "webhook", "data": {"config": {"url": "https://crm.example.com/second"}}}));
    g["edges"].as_array_mut().unwrap().retain(|e| e["id"] != "e-sales");
    g["edges"].as_array_mut().unwrap().push(json!({"id": "e-sales", "source": "x", "sourceHandle": "sales", "target": "x2"}));
    let r = simulate(
        &engine(),
        g,
        json!({"http": [
            {"url": "https://crm.example.com/route", "body": {"route": "sales", "customer": {"id": 42}}},
            {"url": "https://crm.example.com/second", "body": "ok"}
        ]}),
    );
    let second: Value = serde_json::from_slice(&r.http_requests[1].request.body).unwrap();
    assert_eq!(second["variables"], json!({"account": "42"}));
}

#[test]
fn webhook_default_timeout_and_error_outputs() {
    let url = "https://crm.example.com/route";
    assert_eq!(out(&hook(hook_config(), json!([{"url": url, "body": {"route": "unknown"}}]))), "default");
    assert_eq!(out(&hook(hook_config(), json!([{"url": url, "body": {"other": 1}}]))), "default");
    let r = hook(hook_config(), json!([{"url": url, "body": {"route": "sales"}, "delay_ms": 5000}]));
    assert_eq!(out(&r), "timeout");
    assert_eq!(r.trace.steps[1].duration_ms, 2000);
    let r = hook(hook_config(), json!([{"url": url, "status": 500, "body": {"route": "sales"}}]));
    assert_eq!(out(&r), "error");
    assert!(r.trace.steps[1].error.as_deref().unwrap().contains("answered 500"));
    assert_eq!(out(&hook(hook_config(), json!([{"url": url, "body": "<html>"}]))), "error");
    assert_eq!(out(&hook(hook_config(), json!([]))), "error", "no server");
}

// ---------------------------------------------------------------- conference, queue

fn bridge() -> Value {
    json!({"kind": "conference_bridge", "data": {"id": 9, "name": "Standup", "has_pin": true}})
}

#[test]
fn conference_joins_the_bridge_until_the_caller_leaves() {
    let r = simulate(
        &engine(),
        around("conference", Some(("conference_bridge", 9)), json!({"muted": true}), &["left"]),
        json!({"entities": [bridge()], "conference": {"stay_ms": 120_000}}),
    );
    assert!(events(&r).contains(&"conference joins Standup after its PIN muted".to_string()), "{:?}", events(&r));
    assert_eq!(r.trace.outcome, Outcome::CallerHungUp);
    assert_eq!(r.duration_ms, 120_000);
    let r = simulate(
        &engine(),
        around("conference", Some(("conference_bridge", 9)), json!({}), &["left"]),
        json!({"entities": [bridge()], "conference": {"then": "stay"}}),
    );
    assert_eq!(out(&r), "left");
}

#[test]
fn queue_is_coming_and_a_flow_holding_one_is_refused() {
    let e = engine();
    let q = e.node_types().into_iter().find(|t| t.id == "queue").unwrap();
    assert_eq!(q.outputs.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(), ["answered", "timeout"]);
    assert!(q.coming, "the queue is marked coming");
    assert!(e.node_types().iter().filter(|t| t.id != "queue").all(|t| !t.coming), "only the queue");
    let g = graph(around("queue", None, json!({}), &["answered", "timeout"]));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let p = rt.block_on(e.validate(Some(1), &g));
    assert!(p.iter().any(|p| p.code == flow::validate::ProblemCode::NotAvailable && p.node_id.as_deref() == Some("x")), "{p:#?}");
    // publishing (prepare) refuses it
    assert!(matches!(rt.block_on(e.prepare(1, 1, g)), Err(flow::Error::Invalid(_))));
}

// ---------------------------------------------------------------- the whole

#[test]
fn simulation_is_deterministic() {
    let s = json!({
        "entities": [ext(1, "101"), ext(2, "102"), ext(3, "103"), group("random", json!({"ring_timeout": 40}))],
        "clock": {"start": "2026-12-25T09:00", "zone": "Australia/Sydney"},
        "extensions": {"103": {"answer_after_ms": 4000}}
    });
    let g = around("ring_group", Some(("ring_group", 5)), json!({}), &["answered", "no_answer"]);
    let a = serde_json::to_string(&simulate(&engine(), g.clone(), s.clone())).unwrap();
    for _ in 0..3 {
        assert_eq!(serde_json::to_string(&simulate(&engine(), g.clone(), s.clone())).unwrap(), a);
    }
}

#[test]
fn node_types_describe_themselves() {
    let e = engine();
    let types = e.node_types();
    let ids: Vec<&str> = types.iter().map(|t| t.id.as_str()).collect();
    let mut want = [
        "inbound_number",
        "time_switch",
        "ivr_menu",
        "ring_group",
        "extension",
        "voicemail",
        "play_message",
        "conference",
        "transfer",
        "hangup",
        "set_caller_id",
        "webhook",
        "queue",
    ];
    want.sort_unstable();
    let mut got = ids.clone();
    got.sort_unstable();
    assert_eq!(got, want, "exactly the seed's node types, built in");
    let get = |id: &str| types.iter().find(|t| t.id == id).unwrap().clone();
    let ivr = get("ivr_menu");
    // it asks for 5 min; the host's limit on a node's own time is 30 s (waiting on the caller
    // is not counted)
    assert_eq!((ivr.entity_kind.as_deref(), ivr.entity_required, ivr.waits_for_caller, ivr.wall_clock_ms), (Some("ivr_menu"), true, true, 30_000));
    let hook = get("webhook");
    assert_eq!(hook.granted, vec![flow::types::Capability::Http("*".into())]);
    assert_eq!(hook.wall_clock_ms, 12_000);
    let rg = get("ring_group");
    assert!(rg.outputs.iter().any(|o| o.id == "answered" && o.terminal));
    assert!(types.iter().all(|t| t.builtin && !t.name.is_empty() && !t.icon.is_empty()));
    assert!(types.iter().filter(|t| t.id != "inbound_number").all(|t| t.sha256.len() == 64));
}
