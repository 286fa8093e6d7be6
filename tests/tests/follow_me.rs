//! Follow-me through a real carrier: Kamailio (tests/carrier/kamailio.cfg) as the provider,
//! SIPp phones behind it as the person's mobile. Extension 101 has follow-me to a number
//! outside with confirmation; its desk phone is not registered, so the mobile rings at once
//! (sequential: the devices' turn is empty). A mobile that answers and presses 1 (RFC 2833,
//! sip-tester's pcap) is put through to the caller; one that answers and presses nothing
//! (a voicemail would) is hung up after the confirmation window and the caller hears no
//! answer.

mod carrier_support;
mod sip_support;

use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::Context;
use carrier_support::{pstn_phone, Account, Carrier, CarrierOptions, PSTN_IP};
use serde_json::{json, Value};
use sip_support::{free_port, sipp, Pbx, Sipp};

const LO: Ipv4Addr = Ipv4Addr::LOCALHOST;
const TRUNK_PW: &str = "Trunk-pw-1";
const PW_101: &str = "Secret-101-pw";
const PW_102: &str = "Secret-102-pw";
const MOBILE: &str = "12125551234";

/// The carrier, a registration trunk on it, a national route, 101 with follow-me to the
/// mobile (confirmation on) and 102 to call it.
async fn setup(pstn: std::net::SocketAddr) -> anyhow::Result<(Carrier, Pbx)> {
    let carrier = Carrier::start(CarrierOptions {
        accounts: vec![Account::new("acme", "acme-auth", TRUNK_PW, &["+15551230001"])],
        pstn_uas: Some(pstn),
        ..Default::default()
    })?;
    let pbx = Pbx::start(&[]).await?;
    let r = pbx
        .admin
        .post(
            "/trunks",
            &json!({"name": "Carrier", "type": "register", "host": carrier.addr().ip().to_string(), "port": carrier.addr().port(),
                    "username": "acme", "auth_username": "acme-auth", "password": TRUNK_PW, "register_expiry": 300, "options_interval": 0}),
        )
        .await?;
    anyhow::ensure!(r.status == 201, "{}", r.text);
    let trunk = r.data()["id"].as_i64().context("trunk id")?;
    let r = pbx
        .admin
        .post(
            "/outbound-routes",
            &json!({"name": "National", "patterns": ["_1NXXNXXXXXX"], "call_class": "national", "strip_digits": 1, "prepend": "+1", "trunk_ids": [trunk]}),
        )
        .await?;
    anyhow::ensure!(r.status == 201, "{}", r.text);
    let follow: Value = json!({"extension": "101", "name": "Alice", "sip_password": PW_101, "ring_timeout": 5,
        "follow_me_enabled": true, "follow_me_mode": "sequential", "follow_me_confirm": true,
        "follow_me_numbers": [{"number": MOBILE, "delay": 0, "timeout": 30}]});
    let r = pbx.admin.post("/extensions", &follow).await?;
    anyhow::ensure!(r.status == 201, "{}", r.text);
    assert_eq!(r.data()["follow_me_mode"], "sequential");
    pbx.extension("102", PW_102).await?;
    carrier.wait_registered("acme", 1, Duration::from_secs(15))?;
    // the SIP stack's directory follows the store within its refresh interval
    tokio::time::sleep(Duration::from_millis(1200)).await;
    Ok((carrier, pbx))
}

/// 102 calls 101 with SIPp.
fn call_101(pbx: &Pbx, scenario: &str) -> anyhow::Result<Sipp> {
    sipp(scenario, (LO, free_port(LO)), Some(&pbx.sip()), &["-s", "101", "-au", "102", "-ap", PW_102, "-key", "caller", "102", "-m", "1", "-d", "500"])
}

#[tokio::test]
async fn a_mobile_that_presses_1_is_put_through() -> anyhow::Result<()> {
    let (mobile, mobile_addr) = pstn_phone("pstn_uas_press1.xml", PSTN_IP, 1, &["-d", "300"])?;
    let (carrier, pbx) = setup(mobile_addr).await?;
    let caller = call_101(&pbx, "uac.xml")?.wait(Duration::from_secs(40));
    caller.assert_ok();
    mobile.wait(Duration::from_secs(40)).assert_ok();
    let inv = carrier.events_of("INVITE").into_iter().find(|e| e.outcome.contains("relay to pstn")).context("the follow-me call crossed the carrier")?;
    assert!(inv.ruri.starts_with("sip:+12125551234@"), "{}", inv.ruri);
    assert!(inv.from.contains("102"), "the mobile sees who calls: {}", inv.from);
    let c = &pbx.wait_cdrs(1).await?[0];
    assert_eq!((c["direction"].as_str(), c["disposition"].as_str()), (Some("internal"), Some("answered")), "{c}");
    Ok(())
}

#[tokio::test]
async fn a_mobile_that_never_presses_1_is_hung_up_and_the_caller_hears_no_answer() -> anyhow::Result<()> {
    // it answers like a voicemail and waits for the BYE
    let (mobile, mobile_addr) = pstn_phone("pstn_uas.xml", PSTN_IP, 1, &[])?;
    let (_carrier, pbx) = setup(mobile_addr).await?;
    let started = std::time::Instant::now();
    let caller = call_101(&pbx, "uac_refused.xml")?.wait(Duration::from_secs(60));
    caller.assert_ok();
    assert!(caller.messages.contains("SIP/2.0 480"), "{}", caller.messages);
    assert!(!caller.messages.contains("SIP/2.0 200 OK\r\nVia"), "never put through: {}", caller.messages);
    assert!(started.elapsed() >= Duration::from_secs(19), "the mobile had its 20 s to press 1");
    let mobile = mobile.wait(Duration::from_secs(20));
    mobile.assert_ok();
    assert!(mobile.messages.contains("BYE sip:"), "hung up by the PBX: {}", mobile.messages);
    let c = &pbx.wait_cdrs(1).await?[0];
    assert_eq!(c["disposition"].as_str(), Some("no_answer"), "{c}");
    Ok(())
}
