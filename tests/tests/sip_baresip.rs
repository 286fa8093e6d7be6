//! Two baresip softphones (Debian `baresip-core`), driven headless through their `ctrl_tcp`
//! module (netstring JSON commands and events), register as extensions 101 and 102; 101
//! calls 102, which answers automatically; media flows; 101 hangs up.

mod sip_support;

use std::time::Duration;

use sip_support::baresip::Baresip;
use sip_support::Pbx;

#[tokio::test]
async fn two_baresip_phones_call_each_other() -> anyhow::Result<()> {
    let pbx = Pbx::start(&[]).await?;
    let a_id = pbx.extension("101", "Secret-101-pw").await?;
    let b_id = pbx.extension("102", "Secret-102-pw").await?;
    pbx.wait_directory(2, 0, 0).await?;
    let mut a = Baresip::start("101", "Secret-101-pw", &pbx.sip(), false).await?;
    let mut b = Baresip::start("102", "Secret-102-pw", &pbx.sip(), true).await?;
    pbx.wait_registrations(a_id, 1).await?;
    let regs = pbx.wait_registrations(b_id, 1).await?;
    assert!(regs[0]["user_agent"].as_str().unwrap_or_default().contains("baresip"), "{regs:?}");

    a.command("dial", &format!("sip:102@{}", pbx.sip())).await?;
    b.wait_event("CALL_ESTABLISHED", Duration::from_secs(10)).await?;
    a.wait_event("CALL_ESTABLISHED", Duration::from_secs(10)).await?;
    // media flows phone to phone, through FlowPBX's relay
    a.wait_event("CALL_RTPESTAB", Duration::from_secs(10)).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let calls = pbx.admin.get("/health").await?;
    assert!(calls.data()["components"]["sip"]["detail"].as_str().unwrap_or_default().contains("1 calls"), "{}", calls.text);

    a.command("hangup", "").await?;
    a.wait_event("CALL_CLOSED", Duration::from_secs(10)).await?;
    b.wait_event("CALL_CLOSED", Duration::from_secs(10)).await?;
    let c = &pbx.wait_cdrs(1).await?[0];
    assert_eq!((c["disposition"].as_str(), c["hangup_cause"].as_str()), (Some("answered"), Some("normal_clearing")));
    assert_eq!((c["caller_id_num"].as_str(), c["callee"].as_str()), (Some("101"), Some("102")));
    Ok(())
}
