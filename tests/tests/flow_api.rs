//! The flow engine through the real binary over HTTP: the node registry and a node's
//! config-dependent outputs, validation naming nodes, edges and config fields, publish →
//! simulate → publish again → roll back (versions with who and when, diffs, audit rows, a
//! restart), entity edits reaching the next call without republishing, and the OpenAPI
//! document covering the routes.

use flowpbx_tests::{Client, Server};
use serde_json::{json, Value};

const BUILTINS: [&str; 13] = [
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

async fn create(c: &Client, path: &str, body: Value) -> anyhow::Result<i64> {
    let r = c.post(path, &body).await?;
    assert_eq!(r.status, 201, "POST {path} {body}: {}", r.text);
    Ok(r.data()["id"].as_i64().expect("id"))
}

/// The entities of the business-hours flow: a time switch open on weekdays 09–17 in Sydney,
/// extension 101, and the number the flow answers.
struct Hours {
    switch: i64,
    ext: i64,
    number: i64,
}

async fn hours_entities(c: &Client) -> anyhow::Result<Hours> {
    let switch = create(
        c,
        "/time-switches",
        json!({"name": "Hours", "timezone": "Australia/Sydney",
               "rules": [{"label": "Open", "days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"}],
               "overrides": [{"label": "Christmas", "date": "2026-12-25", "dest_node": "default"}]}),
    )
    .await?;
    let ext = create(c, "/extensions", json!({"extension": "101", "name": "Reception", "sip_password": "secret-pass-101"})).await?;
    let number = create(c, "/numbers", json!({"number": "+61299990000", "name": "Main"})).await?;
    Ok(Hours { switch, ext, number })
}

/// entry → time switch → Open: extension 101 / default: the "closed" prompt → hangup.
fn hours_graph(h: &Hours, closed_prompt: &str) -> Value {
    json!({
        "nodes": [
            {"id": "in", "type": "inbound_number", "position": {"x": 0, "y": 0}, "data": {"label": "Main", "entity_type": "inbound_number", "entity_id": h.number}},
            {"id": "ts", "type": "time_switch", "position": {"x": 200, "y": 0}, "data": {"entity_type": "time_switch", "entity_id": h.switch}},
            {"id": "ext", "type": "extension", "position": {"x": 400, "y": 0}, "data": {"entity_type": "extension", "entity_id": h.ext, "config": {"timeout": 20}}},
            {"id": "closed", "type": "play_message", "position": {"x": 400, "y": 200}, "data": {"config": {"prompt": closed_prompt}}},
            {"id": "bye", "type": "hangup", "position": {"x": 600, "y": 200}, "data": {}}
        ],
        "edges": [
            {"id": "e1", "source": "in", "sourceHandle": "next", "target": "ts"},
            {"id": "e2", "source": "ts", "sourceHandle": "Open", "target": "ext"},
            {"id": "e3", "source": "ts", "sourceHandle": "default", "target": "closed"},
            {"id": "e4", "source": "closed", "sourceHandle": "next", "target": "bye"},
            {"id": "e5", "source": "ext", "sourceHandle": "no_answer", "target": "bye"},
            {"id": "e6", "source": "ext", "sourceHandle": "busy", "target": "bye"}
        ],
        "viewport": {"x": 0, "y": 0, "zoom": 1}
    })
}

/// A flow with the hours graph, its number mapped to the entry node.
async fn hours_flow(c: &Client, h: &Hours, closed_prompt: &str) -> anyhow::Result<i64> {
    let flow = create(c, "/flows", json!({"name": "Main line", "flow_data": hours_graph(h, closed_prompt)})).await?;
    let r = c.put(&format!("/numbers/{}", h.number), &json!({"flow_id": flow, "flow_entry_node": "in"})).await?;
    assert_eq!(r.status, 200, "{}", r.text);
    Ok(flow)
}

async fn simulate(c: &Client, flow: i64, body: Value) -> anyhow::Result<Value> {
    let r = c.post(&format!("/flows/{flow}/simulate"), &body).await?;
    assert_eq!(r.status, 200, "simulate {body}: {}", r.text);
    Ok(r.data().clone())
}

fn path(sim: &Value) -> Vec<(String, String)> {
    sim["steps"].as_array().unwrap().iter().map(|s| (s["node_id"].as_str().unwrap().to_string(), s["output"].as_str().unwrap_or("-").to_string())).collect()
}

fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

fn events(sim: &Value) -> Vec<String> {
    sim["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{} {}", e["event"].as_str().unwrap(), e["detail"].as_str().unwrap_or("")).trim().to_string())
        .collect()
}

/// Tuesday 10:00 and Sunday 10:00 in Sydney.
fn open_call(version: Value) -> Value {
    json!({"version": version, "caller": "+61400000001", "caller_name": "Alice", "dialled": "+61299990000", "time": "2026-12-22T10:00", "timezone": "Australia/Sydney"})
}
fn closed_call(version: Value) -> Value {
    json!({"version": version, "caller": "+61400000001", "dialled": "+61299990000", "time": "2026-12-20T10:00", "timezone": "Australia/Sydney"})
}

#[tokio::test]
async fn node_types_list_the_builtins_and_outputs_follow_config_and_entity() -> anyhow::Result<()> {
    let server = Server::start().await?;
    let c = server.admin().await?;
    let r = c.get("/node-types").await?;
    assert_eq!(r.status, 200, "{}", r.text);
    let types = r.data().as_array().unwrap().clone();
    let ids: Vec<&str> = types.iter().map(|t| t["id"].as_str().unwrap()).collect();
    for b in BUILTINS {
        assert!(ids.contains(&b), "{b} missing from {ids:?}");
    }
    assert_eq!(types.len(), BUILTINS.len(), "{ids:?}");
    assert_eq!(r.body["meta"]["total"], BUILTINS.len());
    for t in &types {
        assert_eq!(t["source"], "builtin");
        assert_eq!(t["builtin"], true);
        assert!(t["config_schema"].is_object(), "{t}");
        assert!(t["name"].as_str().is_some_and(|n| !n.is_empty()));
    }
    let by = |id: &str| types.iter().find(|t| t["id"] == id).unwrap().clone();
    assert_eq!(by("inbound_number")["entry"], true);
    assert_eq!(by("inbound_number")["dynamic_outputs"], false);
    assert_eq!(by("time_switch")["entity_kind"], "time_switch");
    assert_eq!(by("voicemail")["entity_kind"], "voicemail_box");
    assert_eq!(by("webhook")["capabilities"].as_array().map(Vec::len), by("webhook")["granted"].as_array().map(Vec::len), "built-ins get what they ask for");
    let ext = by("extension");
    let ext_outputs: Vec<&str> = ext["outputs"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap()).collect();
    assert_eq!(ext_outputs, ["answered", "no_answer", "busy"]);

    // Outputs of a node with its entity: the time switch's rules, by label, and default.
    let h = hours_entities(&c).await?;
    let r = c.post("/node-types/time_switch/outputs", &json!({"config": {}, "entity_type": "time_switch", "entity_id": h.switch})).await?;
    assert_eq!(r.status, 200, "{}", r.text);
    let outs: Vec<&str> = r.data().as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap()).collect();
    assert_eq!(outs, ["Open", "default"]);
    // ...with the side panel's unsaved values instead.
    let unsaved = json!({"name": "Hours", "timezone": "UTC", "rules": [{"label": "Morning", "days": ["mon"], "start": "08:00", "end": "12:00"}, {"label": "Afternoon", "days": ["mon"], "start": "12:00", "end": "18:00"}]});
    let r = c.post("/node-types/time_switch/outputs", &json!({"entity_type": "time_switch", "entity_id": h.switch, "entity": unsaved})).await?;
    let outs: Vec<&str> = r.data().as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap()).collect();
    assert_eq!(outs, ["Morning", "Afternoon", "default"]);
    // An IVR's digits; a rejected config is a 422 with the node's reason.
    let r = c
        .post(
            "/node-types/ivr_menu/outputs",
            &json!({"entity_type": "ivr_menu", "entity": {"name": "Menu", "options": {"1": "Sales", "2": "Support", "i": "node_9"}}}),
        )
        .await?;
    let outs: Vec<(&str, &str)> = r.data().as_array().unwrap().iter().map(|o| (o["id"].as_str().unwrap(), o["label"].as_str().unwrap())).collect();
    assert_eq!(outs, [("1", "Sales"), ("2", "Support"), ("timeout", "Timeout"), ("invalid", "Invalid")]);
    let r = c.post("/node-types/ivr_menu/outputs", &json!({"entity_type": "ivr_menu", "entity": {"name": "Menu", "options": {}}})).await?;
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.text.contains("no options"), "{}", r.text);
    let r = c.post("/node-types/time_switch/outputs", &json!({"entity_type": "time_switch", "entity_id": 999})).await?;
    assert_eq!((r.status, r.error_fields()), (422, vec!["entity_id".to_string()]));
    // Plugin ids are sent URL-encoded; an unknown type is a 404.
    let r = c.post("/node-types/acme%2Fcrm/outputs", &json!({})).await?;
    assert_eq!(r.status, 404, "{}", r.text);
    Ok(())
}

#[tokio::test]
async fn validation_names_every_node_edge_and_config_field() -> anyhow::Result<()> {
    let server = Server::start().await?;
    let c = server.admin().await?;
    let h = hours_entities(&c).await?;
    let mut g = hours_graph(&h, "closed");
    g["nodes"].as_array_mut().unwrap().extend([
        json!({"id": "mystery", "type": "acme/nope", "data": {}}),
        json!({"id": "loud", "type": "play_message", "data": {"config": {"prompt": "x", "repeat": 99}}}),
    ]);
    g["edges"].as_array_mut().unwrap().push(json!({"id": "e-bad", "source": "ts", "sourceHandle": "Lunch", "target": "bye"}));
    let flow = create(&c, "/flows", json!({"name": "Broken", "flow_data": g})).await?;

    let r = c.post(&format!("/flows/{flow}/validate"), &json!({})).await?;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["valid"], false);
    let problems = r.data()["problems"].as_array().unwrap().clone();
    let has = |code: &str, node: Option<&str>, edge: Option<&str>| {
        problems.iter().any(|p| p["code"] == code && p["node_id"].as_str() == node && p["edge_id"].as_str() == edge)
    };
    assert!(has("unknown_node_type", Some("mystery"), None), "{problems:#?}");
    assert!(has("unknown_output", None, Some("e-bad")), "{problems:#?}");
    let cfg = problems.iter().find(|p| p["node_id"] == "loud" && p["code"] == "config_invalid").expect("a config problem");
    assert_eq!(cfg["field"], "repeat", "{cfg}");
    assert_eq!(cfg["severity"], "error");
    // warnings: unreachable nodes, the number is not mapped to this flow's entry yet
    assert!(has("unreachable", Some("loud"), None), "{problems:#?}");
    assert!(problems.iter().any(|p| p["code"] == "entry_unmapped" && p["severity"] == "warning"), "{problems:#?}");

    // An unsaved graph can be validated instead of the draft.
    let r = c.post(&format!("/flows/{flow}/validate"), &json!({"flow_data": hours_graph(&h, "closed")})).await?;
    assert_eq!(r.data()["valid"], true, "{}", r.text);
    let r = c.post(&format!("/flows/{flow}/validate"), &json!({"flow_data": {"nodes": "no"}})).await?;
    assert_eq!((r.status, r.error_fields()), (422, vec!["flow_data".to_string()]));

    // Publishing the broken draft is refused with every problem; nothing is published.
    let r = c.post(&format!("/flows/{flow}/publish"), &json!({})).await?;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.error_code(), Some("flow_invalid"));
    let listed = r.body["error"]["problems"].as_array().unwrap();
    assert!(listed.iter().any(|p| p["node_id"] == "mystery"));
    let versions = c.get(&format!("/flows/{flow}/versions")).await?;
    assert_eq!(versions.body["meta"]["total"], 0);
    // Simulating the broken draft says why too.
    let r = c.post(&format!("/flows/{flow}/simulate"), &closed_call(json!("draft"))).await?;
    assert_eq!((r.status, r.error_code()), (422, Some("flow_invalid")), "{}", r.text);
    assert_eq!(c.post("/flows/999/validate", &json!({})).await?.status, 404);
    Ok(())
}

#[tokio::test]
async fn publish_simulate_publish_again_and_roll_back() -> anyhow::Result<()> {
    let mut server = Server::start().await?;
    let c = server.admin().await?;
    let h = hours_entities(&c).await?;
    let flow = hours_flow(&c, &h, "closed-v1").await?;

    // v1
    let r = c.post(&format!("/flows/{flow}/publish"), &json!({})).await?;
    assert_eq!(r.status, 200, "{}", r.text);
    let v1 = r.data().clone();
    assert_eq!((v1["version"].as_i64(), v1["live"].as_bool(), v1["published_by"].as_str()), (Some(1), Some(true), Some("admin:admin")));
    assert!(v1["warnings"].as_array().unwrap().is_empty(), "{v1}");

    // Open on a Tuesday: 101 answers (extensions not listed answer).
    let sim = simulate(&c, flow, open_call(json!("live"))).await?;
    assert_eq!(path(&sim), p(&[("in", "next"), ("ts", "Open"), ("ext", "answered")]));
    assert_eq!(sim["outcome"], "answered by extension 101");
    assert_eq!(sim["flow_version"], 1);
    assert!(sim["error"].is_null());
    let sim = simulate(&c, flow, json!({"version": "live", "dialled": "+61299990000", "time": "2026-12-22T10:00", "timezone": "Australia/Sydney", "answers": {h.ext.to_string(): "busy"}})).await?;
    assert_eq!(path(&sim), p(&[("in", "next"), ("ts", "Open"), ("ext", "busy"), ("bye", "")]));
    // Christmas is an override routed to default; Sunday falls through to default.
    let sim = simulate(&c, flow, json!({"version": 1, "dialled": "+61299990000", "time": "2026-12-25T10:00", "timezone": "Australia/Sydney"})).await?;
    assert_eq!(path(&sim)[1], ("ts".to_string(), "default".to_string()));
    let sim = simulate(&c, flow, closed_call(json!("live"))).await?;
    assert!(events(&sim).contains(&"play closed-v1 (3000 ms)".to_string()), "{:?}", events(&sim));
    assert_eq!(sim["steps"][1]["entered_at_ms"], 0);
    assert!(sim["steps"][3]["entered_at_ms"].as_u64().unwrap() >= 3000, "{sim}");

    // v2 with another prompt; the draft changed first.
    let r = c.put(&format!("/flows/{flow}"), &json!({"flow_data": hours_graph(&h, "closed-v2")})).await?;
    assert_eq!(r.status, 200, "{}", r.text);
    let sim = simulate(&c, flow, closed_call(json!("draft"))).await?;
    assert!(events(&sim).contains(&"play closed-v2 (3000 ms)".to_string()));
    assert_eq!(sim["flow_version"], 0);
    let sim = simulate(&c, flow, closed_call(json!("live"))).await?;
    assert!(events(&sim).contains(&"play closed-v1 (3000 ms)".to_string()), "the live version is untouched by the draft");
    let r = c.post(&format!("/flows/{flow}/publish"), &json!({})).await?;
    assert_eq!(r.data()["version"], 2, "{}", r.text);
    let sim = simulate(&c, flow, closed_call(json!("live"))).await?;
    assert!(events(&sim).contains(&"play closed-v2 (3000 ms)".to_string()));
    assert_eq!(sim["flow_version"], 2);
    // An old version can still be simulated by number.
    let sim = simulate(&c, flow, closed_call(json!(1))).await?;
    assert!(events(&sim).contains(&"play closed-v1 (3000 ms)".to_string()));

    // The diff between them names the changed config key.
    let r = c.get(&format!("/flows/{flow}/versions/1/diff/2")).await?;
    assert_eq!(r.status, 200, "{}", r.text);
    let d = r.data();
    assert_eq!((d["from"].clone(), d["to"].clone()), (json!(1), json!(2)));
    assert_eq!(d["nodes"]["changed"][0]["id"], "closed");
    assert_eq!(d["nodes"]["changed"][0]["fields"], json!(["config.prompt"]));
    assert_eq!(d["nodes"]["changed"][0]["before"]["data"]["config"]["prompt"], "closed-v1");
    assert!(d["nodes"]["added"].as_array().unwrap().is_empty() && d["edges"]["changed"].as_array().unwrap().is_empty());
    let r = c.get(&format!("/flows/{flow}/versions/live/diff/draft")).await?;
    assert_eq!(r.data()["nodes"]["changed"].as_array().unwrap().len(), 0, "{}", r.text);
    assert_eq!(c.get(&format!("/flows/{flow}/versions/7/diff/draft")).await?.status, 404);
    assert_eq!(c.get(&format!("/flows/{flow}/versions/x/diff/draft")).await?.status, 422);

    // Roll back to v1: a new version (3) with v1's graph, live at once.
    let r = c.post(&format!("/flows/{flow}/rollback"), &json!({"version": 1})).await?;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!((r.data()["version"].as_i64(), r.data()["rolled_back_to"].as_i64()), (Some(3), Some(1)));
    let sim = simulate(&c, flow, closed_call(json!("live"))).await?;
    assert!(events(&sim).contains(&"play closed-v1 (3000 ms)".to_string()));
    assert_eq!(sim["flow_version"], 3);
    let r = c.post(&format!("/flows/{flow}/rollback"), &json!({"version": 9})).await?;
    assert_eq!((r.status, r.error_fields()), (422, vec!["version".to_string()]));

    // Versions with who and when; the flow says which is live; every change was audited.
    let r = c.get(&format!("/flows/{flow}/versions")).await?;
    let versions = r.data().as_array().unwrap();
    assert_eq!(versions.iter().map(|v| v["version"].as_i64().unwrap()).collect::<Vec<_>>(), [3, 2, 1]);
    assert!(versions.iter().all(|v| v["published_by"] == "admin:admin" && v["published_at"].is_string()));
    let f = c.get(&format!("/flows/{flow}")).await?;
    assert_eq!((f.data()["version"].as_i64(), f.data()["published"].as_bool()), (Some(3), Some(true)));
    let audit = c.get(&format!("/audit-log?entity_type=call_flow&entity_id={flow}&limit=100")).await?;
    let actions: Vec<&str> = audit.data().as_array().unwrap().iter().map(|a| a["action"].as_str().unwrap()).collect();
    assert_eq!(actions.iter().filter(|a| **a == "publish").count(), 2, "{actions:?}");
    assert_eq!(actions.iter().filter(|a| **a == "rollback").count(), 1, "{actions:?}");

    // A restart loads the live version again.
    server.restart().await?;
    let c = server.admin().await?;
    let sim = simulate(&c, flow, closed_call(json!("live"))).await?;
    assert_eq!(sim["flow_version"], 3);
    assert!(events(&sim).contains(&"play closed-v1 (3000 ms)".to_string()));
    let health = c.get("/health").await?;
    assert_eq!(health.data()["components"]["flows"]["status"], "ok", "{}", health.text);

    // Deleting the flow (after unmapping its number) stops it from taking calls.
    assert_eq!(c.put(&format!("/numbers/{}", h.number), &json!({"flow_id": null, "flow_entry_node": null})).await?.status, 200);
    assert_eq!(c.delete(&format!("/flows/{flow}")).await?.status, 200);
    assert_eq!(c.post(&format!("/flows/{flow}/simulate"), &closed_call(json!("live"))).await?.status, 404);
    Ok(())
}

#[tokio::test]
async fn entity_edits_wait_for_a_publish_and_extensions_stay_live() -> anyhow::Result<()> {
    let server = Server::start().await?;
    let c = server.admin().await?;
    let h = hours_entities(&c).await?;
    let flow = hours_flow(&c, &h, "closed").await?;
    assert_eq!(c.post(&format!("/flows/{flow}/publish"), &json!({})).await?.status, 200);
    let sunday = closed_call(json!("live"));
    assert_eq!(path(&simulate(&c, flow, sunday.clone()).await?)[1].1, "default");

    // Open on Sundays too: flow configuration, so the live version keeps what was published
    // and the draft shows the change until it is published.
    let r = c
        .put(
            &format!("/time-switches/{}", h.switch),
            &json!({"rules": [{"label": "Open", "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "09:00", "end": "17:00"}]}),
        )
        .await?;
    assert_eq!(r.status, 200, "{}", r.text);
    let sim = simulate(&c, flow, sunday.clone()).await?;
    assert_eq!(path(&sim)[1].1, "default", "the published rules still route the live call");
    assert_eq!(sim["flow_version"], 1);
    assert_eq!(c.post(&format!("/flows/{flow}/publish"), &json!({})).await?.status, 200);
    let sim = simulate(&c, flow, sunday.clone()).await?;
    assert_eq!(path(&sim), p(&[("in", "next"), ("ts", "Open"), ("ext", "answered")]));
    assert_eq!(sim["flow_version"], 2);

    // Do-not-disturb on the extension: people are not flow configuration, busy at once.
    assert_eq!(c.put(&format!("/extensions/{}", h.ext), &json!({"dnd": true})).await?.status, 200);
    assert_eq!(path(&simulate(&c, flow, sunday.clone()).await?)[2], ("ext".to_string(), "busy".to_string()));

    // Simulation input is checked field by field.
    for (body, field) in [
        (json!({"timezone": "Mars/Base"}), "timezone"),
        (json!({"time": "tomorrow"}), "time"),
        (json!({"digits": [{"digits": "x"}]}), "digits[0].digits"),
        (json!({"answers": {"999": "answer"}}), "answers.999"),
        (json!({"answers": {h.ext.to_string(): "maybe"}}), &format!("answers.{}", h.ext)),
        (json!({"version": "latest"}), "version"),
        (json!({"http": [{"url": "nope", "status": 200, "body": ""}]}), "http[0].url"),
    ] {
        let r = c.post(&format!("/flows/{flow}/simulate"), &body).await?;
        assert_eq!((r.status, r.error_fields()), (422, vec![field.to_string()]), "{body}: {}", r.text);
    }
    Ok(())
}

#[tokio::test]
async fn ivr_digits_and_webhook_responses_drive_a_simulated_call() -> anyhow::Result<()> {
    let server = Server::start().await?;
    let c = server.admin().await?;
    let menu =
        create(&c, "/ivr-menus", json!({"name": "Main menu", "greeting_tts": "Press 1 for sales, 2 for support", "options": {"1": "Sales", "2": "Support"}}))
            .await?;
    let g = json!({
        "nodes": [
            {"id": "in", "type": "inbound_number", "data": {}},
            {"id": "menu", "type": "ivr_menu", "data": {"entity_type": "ivr_menu", "entity_id": menu}},
            {"id": "hook", "type": "webhook", "data": {"config": {"url": "https://crm.example.com/route", "field": "route", "routes": [{"value": "vip"}, {"value": "normal"}]}}},
            {"id": "sales", "type": "play_message", "data": {"config": {"tts": "Sales"}}},
            {"id": "vip", "type": "play_message", "data": {"config": {"tts": "VIP"}}},
            {"id": "support", "type": "play_message", "data": {"config": {"tts": "Support"}}}
        ],
        "edges": [
            {"id": "a", "source": "in", "sourceHandle": "next", "target": "menu"},
            {"id": "b", "source": "menu", "sourceHandle": "1", "target": "hook"},
            {"id": "c", "source": "menu", "sourceHandle": "2", "target": "support"},
            {"id": "d", "source": "hook", "sourceHandle": "vip", "target": "vip"},
            {"id": "e", "source": "hook", "sourceHandle": "normal", "target": "sales"}
        ]
    });
    let flow = create(&c, "/flows", json!({"name": "Menu", "flow_data": g})).await?;
    let r = c.post(&format!("/flows/{flow}/validate"), &json!({})).await?;
    let errors: Vec<&Value> = r.data()["problems"].as_array().unwrap().iter().filter(|p| p["severity"] == "error").collect();
    assert!(errors.is_empty(), "{errors:#?}");

    // "2": support. One digit entry per menu, pressed 1 s into the greeting.
    let sim = simulate(&c, flow, json!({"digits": [{"digits": "2", "after_ms": 1000}]})).await?;
    assert_eq!(path(&sim)[..2], p(&[("in", "next"), ("menu", "2")]));
    // "1", and the CRM says vip.
    let sim = simulate(
        &c,
        flow,
        json!({"digits": [{"digits": "1"}], "http": [{"url": "https://crm.example.com/route", "status": 200, "body": "{\"route\":\"vip\"}"}]}),
    )
    .await?;
    assert_eq!(path(&sim)[..3], p(&[("in", "next"), ("menu", "1"), ("hook", "vip")]), "{sim}");
    assert_eq!(sim["http_requests"][0]["result"], "200");
    // The CRM does not answer in time: the webhook's timeout output (unconnected: hung up).
    let sim =
        simulate(&c, flow, json!({"digits": [{"digits": "1"}], "http": [{"url": "https://crm.example.com/", "status": 200, "body": "", "timeout": true}]}))
            .await?;
    assert_eq!(path(&sim)[2], ("hook".to_string(), "timeout".to_string()), "{sim}");
    // Deterministic: the same script, the same result.
    let again =
        simulate(&c, flow, json!({"digits": [{"digits": "1"}], "http": [{"url": "https://crm.example.com/", "status": 200, "body": "", "timeout": true}]}))
            .await?;
    assert_eq!(sim["steps"], again["steps"]);
    assert_eq!(sim["events"], again["events"]);
    Ok(())
}

#[tokio::test]
async fn the_openapi_document_covers_the_flow_and_plugin_routes() -> anyhow::Result<()> {
    let server = Server::start().await?;
    let r = server.client().get("/openapi.json").await?;
    assert_eq!(r.status, 200);
    let paths = r.body["paths"].as_object().unwrap();
    for p in [
        "/api/v1/node-types",
        "/api/v1/node-types/{id}/outputs",
        "/api/v1/flows/{id}/validate",
        "/api/v1/flows/{id}/publish",
        "/api/v1/flows/{id}/rollback",
        "/api/v1/flows/{id}/versions/{a}/diff/{b}",
        "/api/v1/flows/{id}/simulate",
        "/api/v1/plugins",
        "/api/v1/plugins/{id}",
    ] {
        assert!(paths.contains_key(p), "{p} missing from the OpenAPI document");
    }
    assert!(r.body["components"]["schemas"]["SimulateRequest"].is_object());
    Ok(())
}
