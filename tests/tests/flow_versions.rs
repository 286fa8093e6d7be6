//! A published flow version is what calls get, entities included (issue 13), proved with real
//! calls: a trusted trunk's caller (SIPp on 127.0.0.2) presses 1 as RFC 2833 in an IVR menu.
//! Version 1's menu has no option 1 (the digit is invalid); the menu then gains "1 = Sales"
//! and the draft an edge for it: the live call still treats 1 as invalid, the API names the
//! flow as needing publishing and the diff shows the menu's field before → after; once
//! published, 1 takes the Sales branch; rolled back to version 1, 1 is invalid again, and the
//! menu row itself can be put back by resetting the draft to the live version.

mod sip_support;

use std::net::{Ipv4Addr, UdpSocket};
use std::time::Duration;

use anyhow::Context;
use serde_json::{json, Value};
use sip_support::{free_port, sipp, Pbx};

const CARRIER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const NUMBER: &str = "+15550100";
const WAIT: Duration = Duration::from_secs(40);

fn node(id: &str, ty: &str, data: Value) -> Value {
    json!({"id": id, "type": ty, "position": {"x": 0, "y": 0}, "data": data})
}

fn edge(from: &str, output: &str, to: &str) -> Value {
    json!({"id": format!("{from}-{output}-{to}"), "source": from, "sourceHandle": output, "target": to})
}

/// entry → menu; 2 and timeout → "other", invalid → "invalid"; with `sales`, 1 → "sales".
fn graph(menu: i64, sales: bool) -> Value {
    let mut nodes = vec![
        node("in", "inbound_number", json!({})),
        node("menu", "ivr_menu", json!({"label": "Main menu", "entity_id": menu, "entity_type": "ivr_menu"})),
        node("other", "hangup", json!({"config": {"cause": "normal"}})),
        node("invalid", "hangup", json!({"label": "Wrong key", "config": {"cause": "normal"}})),
    ];
    let mut edges = vec![edge("in", "next", "menu"), edge("menu", "2", "other"), edge("menu", "timeout", "other"), edge("menu", "invalid", "invalid")];
    if sales {
        nodes.push(node("sales", "hangup", json!({"label": "Sales", "config": {"cause": "normal"}})));
        edges.push(edge("menu", "1", "sales"));
    }
    json!({"nodes": nodes, "edges": edges})
}

/// An even UDP port with the three above it free on the carrier's address (SIPp's RTP/RTCP).
fn free_media_port() -> u16 {
    loop {
        let Ok(probe) = UdpSocket::bind((CARRIER, 0)) else { continue };
        let Ok(a) = probe.local_addr() else { continue };
        drop(probe);
        let p = a.port() & !1;
        if p >= 1024 && (p..p + 4).all(|q| UdpSocket::bind((CARRIER, q)).is_ok()) {
            return p;
        }
    }
}

fn path(cdr: &Value) -> Vec<(String, String)> {
    let steps = match &cdr["flow_path"] {
        Value::String(s) => serde_json::from_str(s).unwrap_or(Value::Null),
        v => v.clone(),
    };
    steps
        .as_array()
        .map(|a| a.iter().map(|s| (s["node_id"].as_str().unwrap_or("").to_owned(), s["output"].as_str().unwrap_or("-").to_owned())).collect())
        .unwrap_or_default()
}

/// The carrier calls the number, presses 1 (RFC 2833) 1 s into the greeting and waits for the
/// PBX to hang up; returns (version, the menu's output, the node after it) from the call's CDR.
async fn call_pressing_1(pbx: &Pbx, calls_before: usize) -> anyhow::Result<(i64, String, String)> {
    let media = free_media_port();
    sipp("flow_trunk_digit.xml", (CARRIER, free_port(CARRIER)), Some(&pbx.sip()), &["-s", "15550100", "-m", "1", "-d", "1000", "-mp", &media.to_string()])?
        .wait(WAIT)
        .assert_ok();
    let t0 = std::time::Instant::now();
    loop {
        let cdrs = pbx.wait_cdrs(calls_before + 1).await?;
        let mut traced: Vec<&Value> = cdrs.iter().filter(|c| path(c).len() >= 3).collect();
        traced.sort_by_key(|c| c["id"].as_i64());
        if traced.len() > calls_before {
            let c = traced[traced.len() - 1];
            let walked = path(c);
            let at = walked.iter().position(|(n, _)| n == "menu").context("the call reached the menu")?;
            let next = walked.get(at + 1).map(|s| s.0.clone()).unwrap_or_default();
            return Ok((c["flow_version"].as_i64().unwrap_or(0), walked[at].1.clone(), next));
        }
        anyhow::ensure!(t0.elapsed() < Duration::from_secs(15), "no flow trace for call {}: {cdrs:?}\n{}", calls_before + 1, pbx.server.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_live_call_runs_the_published_menu_until_publish_and_after_rollback() -> anyhow::Result<()> {
    let pbx = Pbx::start(&[]).await?;
    let r = pbx.admin.post("/trunks", &json!({"name": "Carrier", "type": "ip", "remote_hosts": ["127.0.0.2/32"]})).await?;
    anyhow::ensure!(r.status == 201, "{}", r.text);
    let trunk = r.data()["id"].as_i64().context("trunk id")?;
    let menu_body = |options: Value| json!({"name": "Main menu", "greeting_tts": "Press two for support.", "timeout": 10, "max_retries": 0, "digit_timeout": 2, "options": options});
    let r = pbx.admin.post("/ivr-menus", &menu_body(json!({"2": "Support"}))).await?;
    anyhow::ensure!(r.status == 201, "{}", r.text);
    let menu = r.data()["id"].as_i64().context("menu id")?;
    let r = pbx.admin.post("/flows", &json!({"name": "Main line", "flow_data": graph(menu, false)})).await?;
    anyhow::ensure!(r.status == 201, "{}", r.text);
    let flow = r.data()["id"].as_i64().context("flow id")?;
    let r = pbx.admin.post(&format!("/flows/{flow}/publish"), &json!({})).await?;
    assert_eq!(r.data()["version"].as_i64(), Some(1), "{}", r.text);
    let r = pbx.admin.post("/numbers", &json!({"number": NUMBER, "trunk_id": trunk, "flow_id": flow, "flow_entry_node": "in"})).await?;
    anyhow::ensure!(r.status == 201, "{}", r.text);
    pbx.wait_directory(0, 1, 1).await?;
    let flow_row = pbx.admin.get(&format!("/flows/{flow}")).await?;
    assert_eq!(flow_row.data()["draft"]["differs_from_live"], json!(false), "{}", flow_row.text);

    // version 1: 1 is not an option
    assert_eq!(call_pressing_1(&pbx, 0).await?, (1, "invalid".into(), "invalid".into()));

    // the menu gains 1 = Sales, the draft an edge for it: the live call does not change
    let r = pbx.admin.put(&format!("/ivr-menus/{menu}"), &menu_body(json!({"1": "Sales", "2": "Support"}))).await?;
    anyhow::ensure!(r.status == 200, "{}", r.text);
    let r = pbx.admin.put(&format!("/flows/{flow}"), &json!({"flow_data": graph(menu, true)})).await?;
    anyhow::ensure!(r.status == 200, "{}", r.text);
    assert_eq!(call_pressing_1(&pbx, 1).await?, (1, "invalid".into(), "invalid".into()), "an unpublished menu edit reached a live call");

    // the API says what needs publishing, and why
    let f = pbx.admin.get(&format!("/flows/{flow}")).await?;
    let draft = &f.data()["draft"];
    assert_eq!(
        (draft["differs_from_live"].as_bool(), draft["graph_changed"].as_bool(), draft["live_version"].as_i64()),
        (Some(true), Some(true), Some(1)),
        "{}",
        f.text
    );
    assert_eq!(draft["entities_changed"], json!([{"entity_type": "ivr_menu", "entity_id": menu, "name": "Main menu"}]));
    let uses = pbx.admin.get(&format!("/flows/using/ivr_menu/{menu}")).await?;
    let u = &uses.data()[0];
    assert_eq!(
        (u["flow_id"].as_i64(), u["entity_changed"].as_bool(), u["needs_publish"].as_bool(), u["live_version"].as_i64()),
        (Some(flow), Some(true), Some(true), Some(1)),
        "{}",
        uses.text
    );
    let d = pbx.admin.get(&format!("/flows/{flow}/versions/live/diff/draft")).await?;
    anyhow::ensure!(d.status == 200, "{}", d.text);
    let menu_change =
        d.data()["entities"].as_array().and_then(|a| a.iter().find(|e| e["entity_id"].as_i64() == Some(menu)).cloned()).context("the menu in the diff")?;
    assert_eq!(menu_change["change"], json!("changed"));
    assert_eq!(menu_change["fields"], json!([{"field": "options.1", "before": null, "after": "Sales"}]), "{}", d.text);
    assert_eq!(d.data()["labels"]["sales"], json!("Sales"));
    assert_eq!(d.data()["labels"]["menu"], json!("Main menu"));

    // published: 1 is Sales
    let r = pbx.admin.post(&format!("/flows/{flow}/publish"), &json!({})).await?;
    assert_eq!(r.data()["version"].as_i64(), Some(2), "{}", r.text);
    assert_eq!(call_pressing_1(&pbx, 2).await?, (2, "1".into(), "sales".into()));

    // rolled back to version 1: 1 is invalid again, although the menu row still has it
    let r = pbx.admin.post(&format!("/flows/{flow}/rollback"), &json!({"version": 1})).await?;
    assert_eq!(r.data()["version"].as_i64(), Some(3), "{}", r.text);
    assert_eq!(call_pressing_1(&pbx, 3).await?, (3, "invalid".into(), "invalid".into()), "rollback did not bring the old menu back");
    let f = pbx.admin.get(&format!("/flows/{flow}")).await?;
    assert_eq!(f.data()["draft"]["differs_from_live"], json!(true), "the draft still has 1 = Sales: {}", f.text);

    // reset the draft to the live version: the graph and the menu row are version 1's again
    let r = pbx.admin.post(&format!("/flows/{flow}/reset-draft"), &json!({})).await?;
    anyhow::ensure!(r.status == 200, "{}", r.text);
    assert_eq!(r.data()["flow"]["draft"]["differs_from_live"], json!(false), "{}", r.text);
    let m = pbx.admin.get(&format!("/ivr-menus/{menu}")).await?;
    assert_eq!(m.data()["options"], json!({"2": "Support"}), "{}", m.text);
    let f = pbx.admin.get(&format!("/flows/{flow}")).await?;
    assert!(f.data()["flow_data"]["edges"].as_array().is_some_and(|e| e.iter().all(|e| e["sourceHandle"] != json!("1"))), "{}", f.text);
    // and the live call is unchanged by the reset
    assert_eq!(call_pressing_1(&pbx, 4).await?, (3, "invalid".into(), "invalid".into()));
    Ok(())
}

#[tokio::test]
async fn resetting_a_never_published_draft_is_refused() -> anyhow::Result<()> {
    let pbx = Pbx::start(&[]).await?;
    let r = pbx.admin.post("/flows", &json!({"name": "Unpublished", "flow_data": {"nodes": [node("in", "inbound_number", json!({}))], "edges": []}})).await?;
    anyhow::ensure!(r.status == 201, "{}", r.text);
    let flow = r.data()["id"].as_i64().context("flow id")?;
    let r = pbx.admin.post(&format!("/flows/{flow}/reset-draft"), &json!({})).await?;
    assert_eq!(r.status, 422, "{}", r.text);
    let r = pbx.admin.get("/flows/using/not_a_kind/1").await?;
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.text.contains("entity_type"), "{}", r.text);
    Ok(())
}
