//! Trunks against a real carrier: Kamailio (tests/carrier/kamailio.cfg, through
//! `carrier_support`) as the provider's registrar and proxy, SIPp as the PSTN. The PBX's
//! registration trunk registers with digest (an auth username apart from the user),
//! refreshes, backs off on 503 and recovers, shows its status in the API; a PSTN caller's call
//! to a DID reaches an extension through a flow; an extension dials out with its outbound
//! caller id and the route's digit rules seen on the wire; a carrier answering 503 fails over
//! to the next trunk; a carrier that stops answering OPTIONS is skipped; a number outside the
//! extension's classes is refused.

mod carrier_support;
mod sip_support;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::Context;
use carrier_support::{pstn_call, pstn_phone, Account, Answer, Carrier, CarrierOptions, IpTrunk, PstnCall, Switch, PSTN_IP};
use serde_json::{json, Value};
use sip_support::{free_port, register, sipp, Pbx, Sipp};

const LO: Ipv4Addr = Ipv4Addr::LOCALHOST;
const PW_101: &str = "Secret-101-pw";
const TRUNK_PW: &str = "Trunk-pw-1";
const DID: &str = "+15551230001";
const WAIT: Duration = Duration::from_secs(40);

/// Creates a registration trunk on `carrier` for account `acme` (digest user `acme-auth`);
/// returns its id.
async fn registration_trunk(pbx: &Pbx, carrier: &Carrier, extra: Value) -> anyhow::Result<i64> {
    let mut body = json!({
        "name": "Carrier A",
        "type": "register",
        "host": carrier.addr().ip().to_string(),
        "port": carrier.addr().port(),
        "username": "acme",
        "auth_username": "acme-auth",
        "password": TRUNK_PW,
        "register_expiry": 300,
        "options_interval": 0,
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    let r = pbx.admin.post("/trunks", &body).await?;
    anyhow::ensure!(r.status == 201, "{}", r.text);
    r.data()["id"].as_i64().context("trunk id")
}

async fn trunk_status(pbx: &Pbx, id: i64) -> anyhow::Result<Value> {
    let r = pbx.admin.get(&format!("/trunks/{id}/status")).await?;
    anyhow::ensure!(r.status == 200, "{}", r.text);
    Ok(r.data().clone())
}

/// Waits until the trunk's status is `want`.
async fn wait_status(pbx: &Pbx, id: i64, want: &str, timeout: Duration) -> anyhow::Result<Value> {
    let t0 = Instant::now();
    loop {
        let s = trunk_status(pbx, id).await?;
        if s["status"] == want {
            return Ok(s);
        }
        anyhow::ensure!(t0.elapsed() < timeout, "trunk {id} is {s} after {:?}, not {want}\n{}", t0.elapsed(), pbx.server.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn account() -> Account {
    Account::new("acme", "acme-auth", TRUNK_PW, &[DID])
}

#[tokio::test]
async fn a_registration_trunk_registers_refreshes_backs_off_and_recovers() -> anyhow::Result<()> {
    let carrier = Carrier::start(CarrierOptions { accounts: vec![account()], ..Default::default() })?;
    // the carrier grants 20 s: the PBX refreshes after 10
    carrier.set(Switch::MaxExpires(20))?;
    let pbx = Pbx::start(&[]).await?;
    let id = registration_trunk(&pbx, &carrier, json!({})).await?;
    let contacts = carrier.wait_registered("acme", 1, Duration::from_secs(15))?;
    assert!(contacts[0].uri.starts_with("sip:acme@127.0.0.1:"), "{contacts:?}");
    let s = wait_status(&pbx, id, "registered", Duration::from_secs(10)).await?;
    assert_eq!(s["registration"]["last_response"]["code"], 200);
    assert!(s["registration"]["expires_at_ms"].as_i64().is_some());
    let first = carrier.events_of("REGISTER");
    assert!(first.iter().any(|e| e.auth_user.as_deref() == Some("acme-auth")), "digest with the auth username: {first:?}");
    // a refresh about 10 s later
    let t0 = Instant::now();
    carrier.wait_event(Duration::from_secs(20), |e| e.method == "REGISTER" && e.at > t0 && e.outcome.starts_with("registered"))?;
    let waited = t0.elapsed();
    assert!(waited >= Duration::from_secs(5) && waited <= Duration::from_secs(16), "refreshed after {waited:?}");

    // the carrier fails: 503 with Retry-After 2 s; the trunk shows it and tries again then
    carrier.set(Switch::Register(Answer::ReplyRetryAfter(503, 2)))?;
    let s = wait_status(&pbx, id, "failed", Duration::from_secs(20)).await?;
    assert_eq!(s["registration"]["last_response"]["code"], 503, "{s}");
    assert!(s["registration"]["next_attempt_at_ms"].as_i64().is_some());
    let failed_at = Instant::now();
    carrier.set(Switch::Register(Answer::Normal))?;
    wait_status(&pbx, id, "registered", Duration::from_secs(10)).await?;
    assert!(failed_at.elapsed() <= Duration::from_secs(8), "recovered after the Retry-After, not the 30 s back-off");

    // 403: stopped until the trunk is edited
    carrier.set(Switch::Register(Answer::Reply(403)))?;
    carrier.drop_registrations("acme")?;
    let r = pbx.admin.post(&format!("/trunks/{id}/test"), &json!({})).await?;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["register"]["answer"]["code"], 403, "{}", r.text);
    wait_status(&pbx, id, "stopped", Duration::from_secs(5)).await?;
    let before = carrier.events_of("REGISTER").len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(carrier.events_of("REGISTER").len(), before, "no retry after 403");
    carrier.set(Switch::Register(Answer::Normal))?;
    let r = pbx.admin.put(&format!("/trunks/{id}"), &json!({"register_expiry": 120})).await?;
    assert_eq!(r.status, 200, "{}", r.text);
    wait_status(&pbx, id, "registered", Duration::from_secs(10)).await?;
    Ok(())
}

/// A flow that rings extension `ext`, for `DID` from `trunk`.
async fn flow_to_extension(pbx: &Pbx, trunk: i64, ext: i64) -> anyhow::Result<()> {
    let node = |id: &str, ty: &str, data: Value| json!({"id": id, "type": ty, "position": {"x": 0, "y": 0}, "data": data});
    let nodes = vec![node("in", "inbound_number", json!({})), node("ext", "extension", json!({"entity_id": ext, "entity_type": "extension"}))];
    let edges = vec![json!({"id": "e1", "source": "in", "sourceHandle": "next", "target": "ext"})];
    let r = pbx.admin.post("/flows", &json!({"name": "Main line", "flow_data": {"nodes": nodes, "edges": edges}})).await?;
    anyhow::ensure!(r.status == 201, "{}", r.text);
    let flow = r.data()["id"].as_i64().context("flow id")?;
    let r = pbx.admin.post(&format!("/flows/{flow}/publish"), &json!({})).await?;
    anyhow::ensure!(r.status == 200, "publish: {}", r.text);
    let r = pbx.admin.post("/numbers", &json!({"number": DID, "trunk_id": trunk, "flow_id": flow, "flow_entry_node": "in"})).await?;
    anyhow::ensure!(r.status == 201, "{}", r.text);
    Ok(())
}

#[tokio::test]
async fn a_pstn_call_through_the_registration_trunk_reaches_an_extension() -> anyhow::Result<()> {
    let carrier = Carrier::start(CarrierOptions { accounts: vec![account()], ..Default::default() })?;
    let pbx = Pbx::start(&[]).await?;
    let ext = pbx.extension("101", PW_101).await?;
    let trunk = registration_trunk(&pbx, &carrier, json!({"country_code": "1", "national_prefix": "1"})).await?;
    flow_to_extension(&pbx, trunk, ext).await?;
    carrier.wait_registered("acme", 1, Duration::from_secs(15))?;
    let port = free_port(LO);
    let phone = sipp("uas.xml", (LO, port), None, &["-m", "1"])?;
    register(&pbx, "101", PW_101, port, 300)?.assert_ok();
    // the carrier sends the call to the contact as registered (the DID only in To), with
    // the caller in P-Asserted-Identity
    let mut call = PstnCall::to(DID);
    call.pai = Some("sip:+15557654321@carrier.test".into());
    let caller = pstn_call(&carrier, &call, &[])?;
    caller.wait(WAIT).assert_ok();
    let phone = phone.wait(WAIT);
    phone.assert_ok();
    assert!(phone.messages.contains("+15557654321"), "the caller id from PAI reached the phone: {}", phone.messages);
    let cdrs = pbx.wait_cdrs(1).await?;
    let c = &cdrs[0];
    assert_eq!((c["direction"].as_str(), c["callee"].as_str(), c["caller_id_num"].as_str()), (Some("inbound"), Some(DID), Some("+15557654321")));
    assert_eq!(c["trunk_id"].as_i64(), Some(trunk));
    // a PSTN caller straight at the PBX, claiming the carrier's DID: challenged, no call
    let fake = sipp("uac.xml", (PSTN_IP, free_port(PSTN_IP)), Some(&pbx.sip()), &["-s", "+15551230001", "-m", "1", "-key", "caller", "x"])?;
    let fake = fake.wait(Duration::from_secs(10));
    assert!(fake.messages.contains("407 Proxy Authentication Required"), "{}", fake.messages);
    Ok(())
}

/// Extension 101 (outbound caller id +15550000101, national calls only) and a national
/// route `_1NXXNXXXXXX` that strips the 1 and adds +1 over `trunks`.
async fn outbound_setup(pbx: &Pbx, trunks: &[i64]) -> anyhow::Result<i64> {
    let r = pbx
        .admin
        .post("/extensions", &json!({"extension": "101", "name": "Alice", "sip_password": PW_101, "outbound_caller_id_num": "+15550000101", "outbound_caller_id_name": "Acme Sales"}))
        .await?;
    anyhow::ensure!(r.status == 201, "{}", r.text);
    let ext = r.data()["id"].as_i64().context("ext id")?;
    let r = pbx
        .admin
        .post(
            "/outbound-routes",
            &json!({"name": "National", "patterns": ["_1NXXNXXXXXX"], "call_class": "national", "strip_digits": 1, "prepend": "+1", "trunk_ids": trunks}),
        )
        .await?;
    anyhow::ensure!(r.status == 201, "{}", r.text);
    let r = pbx
        .admin
        .post("/outbound-routes", &json!({"name": "International", "patterns": ["_011."], "call_class": "international", "trunk_ids": [trunks[0]]}))
        .await?;
    anyhow::ensure!(r.status == 201, "{}", r.text);
    Ok(ext)
}

/// 101 dials `number` with SIPp.
fn dial(pbx: &Pbx, number: &str, scenario: &str) -> anyhow::Result<Sipp> {
    sipp(scenario, (LO, free_port(LO)), Some(&pbx.sip()), &["-s", number, "-au", "101", "-ap", PW_101, "-key", "caller", "101", "-m", "1", "-d", "300"])
}

/// Waits until the SIP stack routes with `n` outbound routes (the directory follows the
/// store within its refresh interval).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1200)).await;
}

#[tokio::test]
async fn an_extension_dials_out_with_its_caller_id_and_the_routes_digits() -> anyhow::Result<()> {
    let (phone, phone_addr) = pstn_phone("pstn_uas.xml", PSTN_IP, 1, &[])?;
    let carrier = Carrier::start(CarrierOptions { accounts: vec![account()], pstn_uas: Some(phone_addr), ..Default::default() })?;
    let pbx = Pbx::start(&[]).await?;
    let trunk = registration_trunk(&pbx, &carrier, json!({})).await?;
    outbound_setup(&pbx, &[trunk]).await?;
    carrier.wait_registered("acme", 1, Duration::from_secs(15))?;
    settle().await;
    dial(&pbx, "12125551234", "uac.xml")?.wait(WAIT).assert_ok();
    let phone = phone.wait(WAIT);
    phone.assert_ok();
    // what crossed the carrier: the number as the route made it, the caller id, digest
    let inv = carrier.events_of("INVITE").into_iter().find(|e| e.outcome.contains("relay to pstn")).context("an INVITE relayed")?;
    assert!(inv.ruri.starts_with("sip:+12125551234@"), "strip 1, prepend +1: {}", inv.ruri);
    assert!(inv.from.contains("+15550000101"), "{}", inv.from);
    assert_eq!(inv.auth_user.as_deref(), Some("acme-auth"));
    assert!(phone.messages.contains("P-Asserted-Identity: \"Acme Sales\" <sip:+15550000101@"), "{}", phone.messages);
    let cdrs = pbx.wait_cdrs(1).await?;
    let c = &cdrs[0];
    assert_eq!((c["direction"].as_str(), c["disposition"].as_str(), c["callee"].as_str()), (Some("outbound"), Some("answered"), Some("12125551234")));
    assert_eq!(c["trunk_id"].as_i64(), Some(trunk));
    assert!(c["route_id"].as_i64().is_some());
    // international: not in 101's classes
    let refused = dial(&pbx, "011442079460000", "uac_refused.xml")?.wait(WAIT);
    refused.assert_ok();
    assert!(refused.messages.contains("SIP/2.0 403"), "{}", refused.messages);
    // the SIP stack writes its audit rows behind, within a flush
    let t0 = Instant::now();
    loop {
        let audit = pbx.admin.get("/audit-log").await?;
        if audit.text.contains("outbound_limit") && audit.text.contains("class_not_permitted") {
            break;
        }
        anyhow::ensure!(t0.elapsed() < Duration::from_secs(5), "no audit row: {}", audit.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

#[tokio::test]
async fn a_failing_carrier_fails_over_and_a_silent_one_is_skipped() -> anyhow::Result<()> {
    let (phone, phone_addr) = pstn_phone("pstn_uas.xml", PSTN_IP, 2, &[])?;
    // carrier A (registration) answers our INVITEs 503; carrier B trusts us by address
    let a = Carrier::start(CarrierOptions { accounts: vec![account()], pstn_uas: Some(phone_addr), ..Default::default() })?;
    let pbx = Pbx::start(&[]).await?;
    let sip_port: u16 = pbx.sip().rsplit(':').next().context("port")?.parse()?;
    let b = Carrier::start(CarrierOptions {
        ip: Ipv4Addr::new(127, 0, 0, 7),
        ip_trunks: vec![IpTrunk { peer: std::net::SocketAddr::from((LO, sip_port)), dids: vec![] }],
        pstn_uas: Some(phone_addr),
        ..Default::default()
    })?;
    let ta = registration_trunk(&pbx, &a, json!({"options_interval": 5})).await?;
    let r = pbx
        .admin
        .post("/trunks", &json!({"name": "Carrier B", "type": "ip", "host": b.addr().ip().to_string(), "port": b.addr().port(), "remote_hosts": ["127.0.0.7"], "options_interval": 0}))
        .await?;
    anyhow::ensure!(r.status == 201, "{}", r.text);
    let tb = r.data()["id"].as_i64().context("trunk id")?;
    outbound_setup(&pbx, &[ta, tb]).await?;
    a.wait_registered("acme", 1, Duration::from_secs(15))?;
    wait_status(&pbx, ta, "registered", Duration::from_secs(10)).await?;
    settle().await;
    a.set(Switch::Invite(Answer::Reply(503)))?;
    dial(&pbx, "12125551234", "uac.xml")?.wait(WAIT).assert_ok();
    assert!(a.events_of("INVITE").iter().any(|e| e.outcome.contains("503")), "A was tried first: {:?}", a.events_of("INVITE"));
    assert!(b.events_of("INVITE").iter().any(|e| e.outcome.contains("relay to pstn")), "then B: {:?}", b.events_of("INVITE"));
    let c = &pbx.wait_cdrs(1).await?[0];
    assert_eq!(c["trunk_id"].as_i64(), Some(tb), "the CDR names the trunk that carried it");

    // A stops answering OPTIONS: down, and the next call goes straight to B
    a.set(Switch::Invite(Answer::Normal))?;
    a.set(Switch::Options(Answer::Silence))?;
    wait_status(&pbx, ta, "down", Duration::from_secs(20)).await?;
    let before = a.events_of("INVITE").len();
    dial(&pbx, "12125551234", "uac.xml")?.wait(WAIT).assert_ok();
    assert_eq!(a.events_of("INVITE").len(), before, "a down trunk is skipped");
    phone.wait(WAIT).assert_ok();
    // and it comes back when it answers
    a.set(Switch::Options(Answer::Normal))?;
    wait_status(&pbx, ta, "registered", Duration::from_secs(15)).await?;
    Ok(())
}

#[tokio::test]
async fn a_flow_transfers_a_pstn_caller_to_a_number_outside() -> anyhow::Result<()> {
    let (phone, phone_addr) = pstn_phone("pstn_uas.xml", PSTN_IP, 1, &[])?;
    let carrier = Carrier::start(CarrierOptions { accounts: vec![account()], pstn_uas: Some(phone_addr), ..Default::default() })?;
    let pbx = Pbx::start(&[]).await?;
    let trunk = registration_trunk(&pbx, &carrier, json!({})).await?;
    let r = pbx
        .admin
        .post(
            "/outbound-routes",
            &json!({"name": "National", "patterns": ["_1NXXNXXXXXX"], "call_class": "national", "strip_digits": 1, "prepend": "+1", "trunk_ids": [trunk]}),
        )
        .await?;
    anyhow::ensure!(r.status == 201, "{}", r.text);
    // a transfer node with no extension linked, to a number outside: the draft saves
    let node = |id: &str, ty: &str, data: Value| json!({"id": id, "type": ty, "position": {"x": 0, "y": 0}, "data": data});
    let nodes = vec![
        node("in", "inbound_number", json!({})),
        node("out", "transfer", json!({"entity_type": "extension", "entity_id": null, "config": {"number": "12125559876"}})),
    ];
    let edges = vec![json!({"id": "e1", "source": "in", "sourceHandle": "next", "target": "out"})];
    let r = pbx.admin.post("/flows", &json!({"name": "Forward", "flow_data": {"nodes": nodes, "edges": edges}})).await?;
    anyhow::ensure!(r.status == 201, "{}", r.text);
    let flow = r.data()["id"].as_i64().context("flow id")?;
    let r = pbx.admin.post(&format!("/flows/{flow}/publish"), &json!({})).await?;
    anyhow::ensure!(r.status == 200, "publish: {}", r.text);
    let r = pbx.admin.post("/numbers", &json!({"number": DID, "trunk_id": trunk, "flow_id": flow, "flow_entry_node": "in"})).await?;
    anyhow::ensure!(r.status == 201, "{}", r.text);
    carrier.wait_registered("acme", 1, Duration::from_secs(15))?;
    settle().await;
    let mut call = PstnCall::to(DID);
    call.pai = Some("sip:+15557654321@carrier.test".into());
    pstn_call(&carrier, &call, &[])?.wait(WAIT).assert_ok();
    let phone = phone.wait(WAIT);
    phone.assert_ok();
    let out = carrier.events_of("INVITE").into_iter().find(|e| e.outcome.contains("relay to pstn")).context("the call out crossed the carrier")?;
    assert!(out.ruri.starts_with("sip:+12125559876@"), "{}", out.ruri);
    assert!(out.from.contains("+15557654321"), "the flow presents the caller: {}", out.from);
    let c = &pbx.wait_cdrs(1).await?[0];
    assert_eq!((c["direction"].as_str(), c["disposition"].as_str()), (Some("inbound"), Some("answered")));
    assert_eq!(c["trunk_id"].as_i64(), Some(trunk), "an inbound call keeps the trunk it came in on");
    Ok(())
}
