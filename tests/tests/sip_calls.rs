//! Calls through the real binary between SIPp phones: UAC → PBX → UAS with 180/200/ACK/BYE,
//! CANCEL before the answer, a busy callee, forking to two registered phones of which one
//! answers, do-not-disturb, the ring timeout, an unknown number, and a call from a trusted
//! (IP-authenticated) trunk. Each call's CDR is checked through the API.

mod sip_support;

use std::net::Ipv4Addr;
use std::time::Duration;

use serde_json::json;
use sip_support::{free_port, register, sipp, Pbx, Sipp};

const LO: Ipv4Addr = Ipv4Addr::LOCALHOST;
const PW_101: &str = "Secret-101-pw";
const PW_102: &str = "Secret-102-pw";

/// A PBX with extensions 101 and 102.
async fn pbx_with_two() -> anyhow::Result<Pbx> {
    let pbx = Pbx::start(&[]).await?;
    pbx.extension("101", PW_101).await?;
    pbx.extension("102", PW_102).await?;
    pbx.wait_directory(2, 0, 0).await?;
    Ok(pbx)
}

/// A SIPp UAS listening on a port of its own, registered as `user`.
fn uas(pbx: &Pbx, scenario: &str, user: &str, password: &str, calls: u32) -> anyhow::Result<Sipp> {
    let port = free_port(LO);
    let run = sipp(scenario, (LO, port), None, &["-m", &calls.to_string()])?;
    register(pbx, user, password, port, 300)?.assert_ok();
    Ok(run)
}

/// 101 calls `to` with the given UAC scenario.
fn uac(pbx: &Pbx, scenario: &str, to: &str, extra: &[&str]) -> anyhow::Result<Sipp> {
    let mut args = vec!["-s", to, "-au", "101", "-ap", PW_101, "-key", "caller", "101", "-m", "1", "-d", "300"];
    args.extend_from_slice(extra);
    sipp(scenario, (LO, free_port(LO)), Some(&pbx.sip()), &args)
}

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn uac_calls_uas_through_the_pbx() -> anyhow::Result<()> {
    let pbx = pbx_with_two().await?;
    let callee = uas(&pbx, "uas.xml", "102", PW_102, 1)?;
    let caller = uac(&pbx, "uac.xml", "102", &[])?;
    caller.wait(WAIT).assert_ok();
    let callee = callee.wait(WAIT);
    callee.assert_ok();
    // the callee saw its own dialog: a Call-ID the caller never used, our Contact
    assert!(callee.messages.contains("INVITE sip:102@127.0.0.1:"), "the registered contact is the Request-URI: {}", callee.messages);
    assert!(!callee.messages.contains("Call-ID: 1-"), "the callee's leg has a Call-ID of its own (SIPp's look like 1-<pid>@host)");
    let cdrs = pbx.wait_cdrs(1).await?;
    let c = &cdrs[0];
    assert_eq!((c["direction"].as_str(), c["disposition"].as_str(), c["hangup_cause"].as_str()), (Some("internal"), Some("answered"), Some("normal_clearing")));
    assert_eq!((c["caller_id_num"].as_str(), c["callee"].as_str(), c["caller_id_name"].as_str()), (Some("101"), Some("102"), Some("Ext 101")));
    assert!(!c["answer_time"].is_null());
    Ok(())
}

#[tokio::test]
async fn caller_cancels_before_the_answer() -> anyhow::Result<()> {
    let pbx = pbx_with_two().await?;
    let callee = uas(&pbx, "uas_ring_cancel.xml", "102", PW_102, 1)?;
    uac(&pbx, "uac_cancel.xml", "102", &[])?.wait(WAIT).assert_ok();
    callee.wait(WAIT).assert_ok();
    let c = &pbx.wait_cdrs(1).await?[0];
    assert_eq!((c["disposition"].as_str(), c["hangup_cause"].as_str()), (Some("no_answer"), Some("originator_cancel")));
    assert!(c["answer_time"].is_null());
    Ok(())
}

#[tokio::test]
async fn busy_callee_gives_486() -> anyhow::Result<()> {
    let pbx = pbx_with_two().await?;
    let callee = uas(&pbx, "uas_busy.xml", "102", PW_102, 1)?;
    let r = uac(&pbx, "uac_refused.xml", "102", &[])?.wait(WAIT);
    r.assert_ok();
    assert!(r.log.contains("final 486"), "{}", r.log);
    callee.wait(WAIT).assert_ok();
    let c = &pbx.wait_cdrs(1).await?[0];
    assert_eq!((c["disposition"].as_str(), c["hangup_cause"].as_str()), (Some("busy"), Some("user_busy")));
    Ok(())
}

/// An extension that requires SRTP offering plain RTP (no `a=crypto`) is refused with 488
/// before anything rings; the same phone on `optional` gets through.
#[tokio::test]
async fn srtp_required_extension_offering_plain_rtp_gets_488() -> anyhow::Result<()> {
    let pbx = Pbx::start(&[]).await?;
    let id = pbx.extension_with(json!({"extension": "101", "name": "Ext 101", "sip_password": PW_101, "srtp": "required"})).await?;
    pbx.extension("102", PW_102).await?;
    pbx.wait_directory(2, 0, 0).await?;
    let callee = uas(&pbx, "uas.xml", "102", PW_102, 1)?;
    let r = uac(&pbx, "uac_refused.xml", "102", &[])?.wait(WAIT);
    r.assert_ok();
    assert!(r.log.contains("final 488"), "{}", r.log);
    // optional: the plain offer is fine
    let u = pbx.admin.put(&format!("/extensions/{id}"), &json!({"srtp": "optional"})).await?;
    assert_eq!(u.status, 200, "{}", u.text);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    uac(&pbx, "uac.xml", "102", &[])?.wait(WAIT).assert_ok();
    callee.wait(WAIT).assert_ok();
    Ok(())
}

#[tokio::test]
async fn forking_rings_both_phones_and_the_first_answer_wins() -> anyhow::Result<()> {
    let pbx = pbx_with_two().await?;
    // one phone rings until it is cancelled, the other answers
    let ringing = uas(&pbx, "uas_ring_cancel.xml", "102", PW_102, 1)?;
    let answering = uas(&pbx, "uas.xml", "102", PW_102, 1)?;
    let regs = pbx.wait_registrations(2, 2).await?;
    assert_eq!(regs.len(), 2);
    uac(&pbx, "uac.xml", "102", &[])?.wait(WAIT).assert_ok();
    answering.wait(WAIT).assert_ok();
    ringing.wait(WAIT).assert_ok();
    let c = &pbx.wait_cdrs(1).await?[0];
    assert_eq!(c["disposition"].as_str(), Some("answered"));
    Ok(())
}

#[tokio::test]
async fn do_not_disturb_ring_timeout_and_unknown_numbers() -> anyhow::Result<()> {
    let pbx = Pbx::start(&[]).await?;
    pbx.extension("101", PW_101).await?;
    pbx.extension_with(json!({"extension": "103", "name": "DND", "sip_password": "Secret-103-pw", "dnd": true})).await?;
    pbx.extension_with(json!({"extension": "104", "name": "Slow", "sip_password": "Secret-104-pw", "ring_timeout": 5})).await?;
    pbx.wait_directory(3, 0, 0).await?;
    let r = uac(&pbx, "uac_refused.xml", "103", &[])?.wait(WAIT);
    r.assert_ok();
    assert!(r.log.contains("final 486"), "do not disturb: {}", r.log);

    let callee = uas(&pbx, "uas_ring_cancel.xml", "104", "Secret-104-pw", 1)?;
    let t0 = std::time::Instant::now();
    let r = uac(&pbx, "uac_refused.xml", "104", &[])?.wait(WAIT);
    r.assert_ok();
    assert!(r.log.contains("final 480"), "ring timeout: {}", r.log);
    assert!(t0.elapsed() >= Duration::from_secs(5), "rang for ring_timeout first");
    callee.wait(WAIT).assert_ok();

    let r = uac(&pbx, "uac_refused.xml", "199", &[])?.wait(WAIT);
    r.assert_ok();
    assert!(r.log.contains("final 404"), "unknown: {}", r.log);

    let cdrs = pbx.wait_cdrs(2).await?;
    let shapes: Vec<(String, String)> =
        cdrs.iter().map(|c| (c["callee"].as_str().unwrap_or("").to_owned(), c["disposition"].as_str().unwrap_or("").to_owned())).collect();
    assert!(shapes.contains(&("103".into(), "busy".into())), "{shapes:?}");
    assert!(shapes.contains(&("104".into(), "no_answer".into())), "{shapes:?}");
    Ok(())
}

#[tokio::test]
async fn a_trusted_trunk_reaches_the_numbers_extension() -> anyhow::Result<()> {
    let pbx = pbx_with_two().await?;
    let carrier = Ipv4Addr::new(127, 0, 0, 2);
    let r = pbx.admin.post("/trunks", &json!({"name": "Carrier", "type": "ip", "remote_hosts": ["127.0.0.2/32"]})).await?;
    anyhow::ensure!(r.status == 201, "{}", r.text);
    let trunk = r.data()["id"].as_i64().unwrap_or_default();
    let graph = json!({
        "nodes": [
            {"id": "n1", "type": "inbound_number", "position": {"x": 0, "y": 0}, "data": {"label": "Main"}},
            {"id": "n2", "type": "extension", "position": {"x": 200, "y": 0}, "data": {"label": "Reception", "entity_id": 2, "entity_type": "extension"}}
        ],
        "edges": [{"id": "e1", "source": "n1", "target": "n2", "sourceHandle": "next"}]
    });
    let r = pbx.admin.post("/flows", &json!({"name": "Main line", "flow_data": graph})).await?;
    anyhow::ensure!(r.status == 201, "{}", r.text);
    let flow = r.data()["id"].as_i64().unwrap_or_default();
    // The API has no publish route yet: publish through the store, as the editor will.
    let key = store::SecretKey::load_or_create(&pbx.server.data_dir().join(store::SECRET_KEY_FILE))?;
    let st = store::Store::open(store::StoreOptions { path: pbx.server.db_path(), secret_key: key, sip_realm: None, max_connections: 1 }).await?;
    st.flow_versions().publish(flow, &graph, "test").await?;
    st.close().await;
    let r = pbx.admin.post("/numbers", &json!({"number": "+15550100", "trunk_id": trunk, "flow_id": flow, "flow_entry_node": "n1"})).await?;
    anyhow::ensure!(r.status == 201, "{}", r.text);
    pbx.wait_directory(2, 1, 1).await?;

    let callee = uas(&pbx, "uas.xml", "102", PW_102, 1)?;
    sipp("trunk_call.xml", (carrier, free_port(carrier)), Some(&pbx.sip()), &["-s", "15550100", "-m", "1", "-d", "200"])?.wait(WAIT).assert_ok();
    callee.wait(WAIT).assert_ok();
    let c = &pbx.wait_cdrs(1).await?[0];
    assert_eq!((c["direction"].as_str(), c["disposition"].as_str()), (Some("inbound"), Some("answered")));
    assert_eq!((c["caller_id_num"].as_str(), c["callee"].as_str(), c["trunk_id"].as_i64()), (Some("+15550001111"), Some("+15550100"), Some(trunk)));
    Ok(())
}

#[tokio::test]
async fn a_caller_on_tcp_reaches_a_phone_on_udp() -> anyhow::Result<()> {
    let pbx = pbx_with_two().await?;
    let callee = uas(&pbx, "uas.xml", "102", PW_102, 1)?;
    uac(&pbx, "uac.xml", "102", &["-t", "t1"])?.wait(WAIT).assert_ok();
    callee.wait(WAIT).assert_ok();
    let c = &pbx.wait_cdrs(1).await?[0];
    assert_eq!(c["disposition"].as_str(), Some("answered"));
    // the SIP log (on in these tests) shows the caller's INVITE arriving on TCP
    assert!(pbx.server.logs().lines().any(|l| l.contains("\"TCP\"") && l.contains("INVITE sip:102@")), "the caller's INVITE came over TCP");
    Ok(())
}
