//! Calls from a trusted trunk (SIPp on 127.0.0.2) walking the dialled number's published
//! flow in the real binary: number → extension answered by a registered SIPp phone; number →
//! IVR menu (a spoken greeting) where the caller presses 1 as RFC 2833 (sip-tester's
//! dtmf_2833_1.pcap) or SIP INFO and the branch for 1 is taken; a caller hanging up
//! mid-prompt; number → voicemail where the caller speaks (g711a.pcap) and hangs up, leaving a
//! message with a WAV, and a full box taking none; a version published during a call, which
//! the call does not see; two callers in a conference; a number whose flow is not published, refused with 480. Each call's
//! CDR carries the flow, its version and the nodes it walked.

mod sip_support;

use std::net::{Ipv4Addr, UdpSocket};
use std::time::Duration;

use anyhow::Context;
use serde_json::{json, Value};
use sip_support::{free_port, register, sipp, Pbx, Sipp};

const LO: Ipv4Addr = Ipv4Addr::LOCALHOST;
const CARRIER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const NUMBER: &str = "+15550100";
const PW_102: &str = "Secret-102-pw";
const WAIT: Duration = Duration::from_secs(40);

/// A PBX with extension 102 (returned id) and a trusted trunk from the carrier's address.
async fn pbx() -> anyhow::Result<(Pbx, i64, i64)> {
    let pbx = Pbx::start(&[]).await?;
    let ext = pbx.extension("102", PW_102).await?;
    let r = pbx.admin.post("/trunks", &json!({"name": "Carrier", "type": "ip", "remote_hosts": ["127.0.0.2/32"]})).await?;
    anyhow::ensure!(r.status == 201, "{}", r.text);
    let trunk = r.data()["id"].as_i64().context("trunk id")?;
    Ok((pbx, ext, trunk))
}

fn node(id: &str, ty: &str, data: Value) -> Value {
    json!({"id": id, "type": ty, "position": {"x": 0, "y": 0}, "data": data})
}

fn edge(from: &str, output: &str, to: &str) -> Value {
    json!({"id": format!("{from}-{output}-{to}"), "source": from, "sourceHandle": output, "target": to})
}

/// Creates and publishes a flow, maps the number to it (entry node `in`); returns its id.
async fn publish_flow(pbx: &Pbx, trunk: i64, nodes: Vec<Value>, edges: Vec<Value>) -> anyhow::Result<i64> {
    let r = pbx.admin.post("/flows", &json!({"name": "Main line", "flow_data": {"nodes": nodes, "edges": edges}})).await?;
    anyhow::ensure!(r.status == 201, "{}", r.text);
    let flow = r.data()["id"].as_i64().context("flow id")?;
    let r = pbx.admin.post(&format!("/flows/{flow}/publish"), &json!({})).await?;
    anyhow::ensure!(r.status == 200, "publish: {}", r.text);
    let r = pbx.admin.post("/numbers", &json!({"number": NUMBER, "trunk_id": trunk, "flow_id": flow, "flow_entry_node": "in"})).await?;
    anyhow::ensure!(r.status == 201, "{}", r.text);
    Ok(flow)
}

/// The carrier calls the number with `scenario` (and SIPp's media on a port of its own).
fn carrier_call(pbx: &Pbx, scenario: &str, pause_ms: u32) -> anyhow::Result<Sipp> {
    let media = free_media_port();
    sipp(scenario, (CARRIER, free_port(CARRIER)), Some(&pbx.sip()), &["-s", "15550100", "-m", "1", "-d", &pause_ms.to_string(), "-mp", &media.to_string()])
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

/// The CDR's flow path as (node id, output) pairs.
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

fn p(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

/// Waits until the CDRs of `n` calls carry their flow's trace.
async fn wait_flow_cdrs(pbx: &Pbx, n: usize) -> anyhow::Result<Vec<Value>> {
    let t0 = std::time::Instant::now();
    loop {
        let cdrs = pbx.wait_cdrs(n).await?;
        let traced: Vec<Value> = cdrs.iter().filter(|c| !path(c).is_empty()).cloned().collect();
        if traced.len() >= n {
            return Ok(traced);
        }
        anyhow::ensure!(t0.elapsed() < Duration::from_secs(15), "{} of {n} CDRs have a flow path: {cdrs:?}\n{}", traced.len(), pbx.server.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_number_rings_the_extension_its_flow_names() -> anyhow::Result<()> {
    let (pbx, ext, trunk) = pbx().await?;
    let flow = publish_flow(
        &pbx,
        trunk,
        vec![node("in", "inbound_number", json!({})), node("ext", "extension", json!({"entity_id": ext, "entity_type": "extension"}))],
        vec![edge("in", "next", "ext")],
    )
    .await?;
    pbx.wait_directory(1, 1, 1).await?;
    let port = free_port(LO);
    let phone = sipp("uas.xml", (LO, port), None, &["-m", "1"])?;
    register(&pbx, "102", PW_102, port, 300)?.assert_ok();
    carrier_call(&pbx, "trunk_call.xml", 500)?.wait(WAIT).assert_ok();
    phone.wait(WAIT).assert_ok();
    let c = &wait_flow_cdrs(&pbx, 1).await?[0];
    assert_eq!((c["direction"].as_str(), c["disposition"].as_str()), (Some("inbound"), Some("answered")));
    assert_eq!((c["flow_id"].as_i64(), c["flow_version"].as_i64()), (Some(flow), Some(1)));
    assert_eq!(path(c), p(&[("in", "next"), ("ext", "answered")]));
    Ok(())
}

/// An IVR menu (1: a prompt then hang up; anything else: hang up) the caller answers with
/// `scenario`; checks the branch for 1 was taken.
async fn menu_call(scenario: &str) -> anyhow::Result<()> {
    let (pbx, _, trunk) = pbx().await?;
    let r = pbx
        .admin
        .post("/ivr-menus", &json!({"name": "Main menu", "greeting_tts": "Press one for sales, two for support.", "timeout": 10, "max_retries": 0, "digit_timeout": 2, "options": {"1": "Sales", "2": "Support"}}))
        .await?;
    anyhow::ensure!(r.status == 201, "{}", r.text);
    let menu = r.data()["id"].as_i64().context("menu id")?;
    publish_flow(
        &pbx,
        trunk,
        vec![
            node("in", "inbound_number", json!({})),
            node("menu", "ivr_menu", json!({"entity_id": menu, "entity_type": "ivr_menu"})),
            node("sales", "play_message", json!({"config": {"prompt": "system/goodbye"}})),
            node("bye", "hangup", json!({"config": {"cause": "normal"}})),
            node("other", "hangup", json!({"config": {"cause": "normal"}})),
        ],
        vec![
            edge("in", "next", "menu"),
            edge("menu", "1", "sales"),
            edge("sales", "next", "bye"),
            edge("menu", "2", "other"),
            edge("menu", "timeout", "other"),
            edge("menu", "invalid", "other"),
        ],
    )
    .await?;
    pbx.wait_directory(1, 1, 1).await?;
    // the digit arrives 1 s into the spoken greeting (espeak-ng), which it interrupts
    carrier_call(&pbx, scenario, 1000)?.wait(WAIT).assert_ok();
    let c = &wait_flow_cdrs(&pbx, 1).await?[0];
    let walked = path(c);
    assert_eq!(walked[..3], p(&[("in", "next"), ("menu", "1"), ("sales", "next")])[..], "{c}");
    assert_eq!(walked.get(3).map(|s| s.0.as_str()), Some("bye"), "{c}");
    Ok(())
}

#[tokio::test]
async fn an_rfc2833_digit_picks_the_menu_branch() -> anyhow::Result<()> {
    menu_call("flow_trunk_digit.xml").await
}

#[tokio::test]
async fn a_sip_info_digit_picks_the_menu_branch() -> anyhow::Result<()> {
    menu_call("flow_trunk_info_digit.xml").await
}

#[tokio::test]
async fn a_caller_hanging_up_mid_prompt_ends_the_walk() -> anyhow::Result<()> {
    let (pbx, _, trunk) = pbx().await?;
    publish_flow(
        &pbx,
        trunk,
        vec![
            node("in", "inbound_number", json!({})),
            node("long", "play_message", json!({"config": {"prompt": "system/voicemail-greeting"}})),
            node("bye", "hangup", json!({})),
        ],
        vec![edge("in", "next", "long"), edge("long", "next", "bye")],
    )
    .await?;
    pbx.wait_directory(1, 1, 1).await?;
    // the caller hangs up 1 s into the 5 s prompt
    carrier_call(&pbx, "trunk_call.xml", 1000)?.wait(WAIT).assert_ok();
    let c = &wait_flow_cdrs(&pbx, 1).await?[0];
    assert_eq!(path(c), p(&[("in", "next"), ("long", "-")]), "{c}");
    assert!(path(c).len() == 2 && c["flow_path"][1]["duration_ms"].as_u64().unwrap_or(u64::MAX) < 3000, "the prompt stopped at the hang-up: {c}");
    Ok(())
}

/// A box (at most `max_messages`) behind the number: in → voicemail (no greeting) → hang up.
async fn voicemail_line(max_messages: u32) -> anyhow::Result<(Pbx, i64)> {
    let (pbx, _, trunk) = pbx().await?;
    let r = pbx.admin.post("/voicemail-boxes", &json!({"name": "Sales", "max_message_duration": 60, "max_messages": max_messages})).await?;
    anyhow::ensure!(r.status == 201, "{}", r.text);
    let vm = r.data()["id"].as_i64().context("box id")?;
    publish_flow(
        &pbx,
        trunk,
        vec![
            node("in", "inbound_number", json!({})),
            node("vm", "voicemail", json!({"entity_id": vm, "entity_type": "voicemail_box", "config": {"play_greeting": false}})),
            node("bye", "hangup", json!({})),
        ],
        vec![edge("in", "next", "vm"), edge("vm", "done", "bye")],
    )
    .await?;
    pbx.wait_directory(1, 1, 1).await?;
    Ok((pbx, vm))
}

async fn messages(pbx: &Pbx, vm: i64) -> anyhow::Result<Vec<Value>> {
    let r = pbx.admin.get(&format!("/voicemail-boxes/{vm}/messages")).await?;
    Ok(r.data().as_array().cloned().unwrap_or_default())
}

#[tokio::test]
async fn a_caller_leaves_a_voicemail_message() -> anyhow::Result<()> {
    let (pbx, vm) = voicemail_line(50).await?;
    // the tone, then 3 s of speech, then the caller hangs up
    carrier_call(&pbx, "flow_trunk_message.xml", 3000)?.wait(WAIT).assert_ok();
    let c = &wait_flow_cdrs(&pbx, 1).await?[0];
    assert_eq!(path(c), p(&[("in", "next"), ("vm", "-")]), "{c}");
    assert_eq!(c["disposition"].as_str(), Some("voicemail"), "{c}");

    let msgs = messages(&pbx, vm).await?;
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    let m = &msgs[0];
    assert_eq!(m["caller_id_num"].as_str(), Some("+15550001111"));
    assert!(m["duration"].as_i64().unwrap_or(0) >= 1, "{m}");
    let file = pbx.server.data_dir().join(m["file_path"].as_str().context("file path")?);
    let wav = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
    assert_eq!(&wav[..4], b"RIFF");
    // 8 kHz 16-bit mono: at least 1 s of audio
    assert!(wav.len() > 44 + 16_000, "{} bytes", wav.len());
    Ok(())
}

#[tokio::test]
async fn a_full_mailbox_takes_no_message() -> anyhow::Result<()> {
    let (pbx, vm) = voicemail_line(1).await?;
    carrier_call(&pbx, "flow_trunk_message.xml", 2000)?.wait(WAIT).assert_ok();
    // the trace is written once the message is stored
    wait_flow_cdrs(&pbx, 1).await?;
    assert_eq!(messages(&pbx, vm).await?.len(), 1);
    // the box is full: the caller hears so, nothing is recorded, and the flow goes on
    carrier_call(&pbx, "flow_trunk_wait_bye.xml", 0)?.wait(WAIT).assert_ok();
    let cdrs = wait_flow_cdrs(&pbx, 2).await?;
    let second = cdrs.iter().find(|c| c["disposition"].as_str() != Some("voicemail")).context("the second call's CDR")?;
    assert_eq!(path(second), p(&[("in", "next"), ("vm", "done"), ("bye", "")]), "{second}");
    assert_eq!(messages(&pbx, vm).await?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_call_keeps_the_version_it_started_with() -> anyhow::Result<()> {
    let (pbx, _, trunk) = pbx().await?;
    let flow = publish_flow(
        &pbx,
        trunk,
        vec![
            node("in", "inbound_number", json!({})),
            node("long", "play_message", json!({"config": {"prompt": "system/voicemail-greeting"}})),
            node("bye", "hangup", json!({})),
        ],
        vec![edge("in", "next", "long"), edge("long", "next", "bye")],
    )
    .await?;
    pbx.wait_directory(1, 1, 1).await?;
    let first = carrier_call(&pbx, "flow_trunk_wait_bye.xml", 0)?;
    // while the first call hears the 5 s prompt, version 2 goes live
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let v2 = json!({
        "nodes": [node("in", "inbound_number", json!({})), node("short", "play_message", json!({"config": {"prompt": "system/goodbye"}})), node("bye2", "hangup", json!({}))],
        "edges": [edge("in", "next", "short"), edge("short", "next", "bye2")]
    });
    let r = pbx.admin.put(&format!("/flows/{flow}"), &json!({"flow_data": v2})).await?;
    anyhow::ensure!(r.status == 200, "{}", r.text);
    let r = pbx.admin.post(&format!("/flows/{flow}/publish"), &json!({})).await?;
    assert_eq!(r.data()["version"].as_i64(), Some(2), "{}", r.text);
    first.wait(WAIT).assert_ok();
    let c = &wait_flow_cdrs(&pbx, 1).await?[0];
    assert_eq!(c["flow_version"].as_i64(), Some(1));
    assert_eq!(path(c), p(&[("in", "next"), ("long", "next"), ("bye", "")]), "{c}");

    carrier_call(&pbx, "flow_trunk_wait_bye.xml", 0)?.wait(WAIT).assert_ok();
    let cdrs = wait_flow_cdrs(&pbx, 2).await?;
    let second = cdrs.iter().find(|c| c["flow_version"].as_i64() == Some(2)).context("a CDR of version 2")?;
    assert_eq!(path(second), p(&[("in", "next"), ("short", "next"), ("bye2", "")]), "{second}");
    Ok(())
}

#[tokio::test]
async fn a_number_whose_flow_is_not_published_is_refused() -> anyhow::Result<()> {
    let (pbx, _, trunk) = pbx().await?;
    let graph = json!({"nodes": [node("in", "inbound_number", json!({})), node("bye", "hangup", json!({}))], "edges": [edge("in", "next", "bye")]});
    let r = pbx.admin.post("/flows", &json!({"name": "Draft line", "flow_data": graph})).await?;
    anyhow::ensure!(r.status == 201, "{}", r.text);
    let flow = r.data()["id"].as_i64().context("flow id")?;
    let r = pbx.admin.post("/numbers", &json!({"number": NUMBER, "trunk_id": trunk, "flow_id": flow, "flow_entry_node": "in"})).await?;
    anyhow::ensure!(r.status == 201, "{}", r.text);
    pbx.wait_directory(1, 1, 1).await?;
    carrier_call(&pbx, "flow_trunk_refused.xml", 0)?.wait(WAIT).assert_ok();
    let c = &pbx.wait_cdrs(1).await?[0];
    assert!(c["answer_time"].is_null(), "{c}");
    assert!(path(c).is_empty(), "no flow ran: {c}");
    Ok(())
}

#[tokio::test]
async fn two_callers_meet_in_a_conference() -> anyhow::Result<()> {
    let (pbx, _, trunk) = pbx().await?;
    let r = pbx.admin.post("/conferences", &json!({"name": "Standup", "extension": "800", "announce_joins": true})).await?;
    anyhow::ensure!(r.status == 201, "{}", r.text);
    let bridge = r.data()["id"].as_i64().context("bridge id")?;
    publish_flow(
        &pbx,
        trunk,
        vec![
            node("in", "inbound_number", json!({})),
            node("conf", "conference", json!({"entity_id": bridge, "entity_type": "conference_bridge"})),
            node("bye", "hangup", json!({})),
        ],
        vec![edge("in", "next", "conf"), edge("conf", "left", "bye")],
    )
    .await?;
    pbx.wait_directory(1, 1, 1).await?;
    // both speak for a while, overlapping, then hang up
    let first = carrier_call(&pbx, "flow_trunk_message.xml", 4000)?;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let second = carrier_call(&pbx, "flow_trunk_message.xml", 2000)?;
    first.wait(WAIT).assert_ok();
    second.wait(WAIT).assert_ok();
    wait_flow_cdrs(&pbx, 2).await?;
    // (the media statistics follow the end, once each media session has closed)
    let cdrs = pbx.wait_cdrs_with(2, |c| c["media_stats"].is_object()).await?;
    for c in &cdrs {
        assert_eq!(path(c), p(&[("in", "next"), ("conf", "-")]), "in the room until the hang-up: {c}");
        // each heard the room: the other caller's speech, mixed, and the join tones
        assert!(c["media_stats"]["a"]["packets_sent"].as_u64().unwrap_or(0) > 50, "{c}");
    }
    assert_eq!(pbx.server.logs().matches("joined the conference").count(), 2);
    Ok(())
}
