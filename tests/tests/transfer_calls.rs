//! Transfer between real phones (RFC 3515 REFER with NOTIFY progress, RFC 3891 Replaces).
//!
//! Blind: three baresip softphones (Debian `baresip-core`), each with a microphone playing a
//! tone of its own; 101 calls 102, 102 transfers the call to 103 with baresip's own
//! `transfer` command (a REFER), and 101 and 103 then hear each other through FlowPBX's relay
//! (checked in what each phone decoded) while 102 is gone.
//!
//! Attended: SIPp phones. 101 calls 102 (call 1); 102, from a second device, consults 103
//! (call 2) and then REFERs call 1 to 103 with `Replaces` naming call 2: 101 and 103 end up in
//! one call and both of 102's dialogs are hung up. The two SIPp processes of 102 pass call 2's
//! dialog to each other over SIPp's 3PCC twin socket, as one phone would hold both dialogs.
//!
//! Call pull (INVITE with Replaces): 102's desk phone calls 101, then 102's other device
//! sends an INVITE with `Replaces` naming the desk's dialog (handed over the 3PCC socket): it
//! is answered, the desk phone is hung up, and 101's hangup reaches the other device.

mod media_support;
mod sip_support;

use std::net::Ipv4Addr;
use std::time::Duration;

use media_support::median_purity;
use serde_json::Value;
use sip_support::baresip::{write_wav, Baresip, Phone};
use sip_support::{free_port, register, sipp, Pbx};

const LO: Ipv4Addr = Ipv4Addr::LOCALHOST;
const PW: [&str; 3] = ["Secret-101-pw", "Secret-102-pw", "Secret-103-pw"];
const TONES: [f64; 3] = [440.0, 1000.0, 700.0];

fn read_8k(path: &std::path::Path) -> anyhow::Result<Vec<i16>> {
    let mut r = hound::WavReader::open(path)?;
    let spec = r.spec();
    let all: Vec<i16> = r.samples::<i16>().collect::<Result<_, _>>()?;
    let step = usize::from(spec.channels) * (spec.sample_rate / 8000).max(1) as usize;
    Ok(all.into_iter().step_by(step).collect())
}

fn tone(freq: f64, secs: usize) -> Vec<i16> {
    (0..8000 * secs).map(|n| ((2.0 * std::f64::consts::PI * freq * n as f64 / 8000.0).sin() * 8000.0) as i16).collect()
}

async fn three_extensions(pbx: &Pbx) -> anyhow::Result<[i64; 3]> {
    let mut ids = [0; 3];
    for (i, id) in ids.iter_mut().enumerate() {
        *id = pbx.extension(&format!("10{}", i + 1), PW[i]).await?;
    }
    pbx.wait_directory(3, 0, 0).await?;
    Ok(ids)
}

/// The CDR's recorded transfers.
fn transfers(cdr: &Value) -> Vec<Value> {
    match &cdr["transfers"] {
        Value::Array(a) => a.clone(),
        Value::String(s) => serde_json::from_str(s).unwrap_or_default(),
        _ => Vec::new(),
    }
}

#[tokio::test]
async fn a_blind_transfer_between_baresip_phones_connects_the_caller_to_the_target() -> anyhow::Result<()> {
    let pbx = Pbx::start(&[]).await?;
    let ids = three_extensions(&pbx).await?;
    let dir = tempfile::tempdir()?;
    let sip = pbx.sip();
    let mut phones = Vec::new();
    for i in 0..3 {
        let src = dir.path().join(format!("{i}.wav"));
        write_wav(&src, 8000, 1, &tone(TONES[i], 30))?;
        let user = format!("10{}", i + 1);
        let phone = Phone { source: Some(&src), dump: true, ..Phone::new(&user, PW[i], &sip, i > 0) };
        phones.push(Baresip::start_phone(&phone).await?);
        pbx.wait_registrations(ids[i], 1).await?;
    }
    let [mut a, mut b, mut c] = <[Baresip; 3]>::try_from(phones).map_err(|_| anyhow::anyhow!("three phones"))?;

    a.command("dial", &format!("sip:102@{sip}")).await?;
    b.wait_event("CALL_ESTABLISHED", Duration::from_secs(10)).await?;
    a.wait_event("CALL_ESTABLISHED", Duration::from_secs(10)).await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // 102 hands 101 on to 103 (baresip sends REFER; FlowPBX answers 202 and NOTIFYs)
    b.command("transfer", &format!("sip:103@{sip}")).await?;
    c.wait_event("CALL_ESTABLISHED", Duration::from_secs(10)).await.map_err(|e| anyhow::anyhow!("{e}\n{}", pbx.server.logs()))?;
    b.wait_event("CALL_CLOSED", Duration::from_secs(10)).await?;
    // 101 and 103 talk
    tokio::time::sleep(Duration::from_secs(3)).await;
    a.command("hangup", "").await?;
    a.wait_event("CALL_CLOSED", Duration::from_secs(10)).await?;
    c.wait_event("CALL_CLOSED", Duration::from_secs(10)).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // 103 heard 101's tone; 101 heard 103's at the end (102's before the transfer)
    let at_c = read_8k(&c.decoded_dump()?)?;
    let at_a = read_8k(&a.decoded_dump()?)?;
    anyhow::ensure!(at_c.len() > 16000 && at_a.len() > 16000, "decoded {} / {} samples", at_c.len(), at_a.len());
    let c_hears_a = median_purity(&at_c[8000..], 8000, TONES[0], 400);
    let c_hears_b = median_purity(&at_c[8000..], 8000, TONES[1], 400);
    let tail = &at_a[at_a.len() - 12000..at_a.len() - 2000];
    let a_hears_c = median_purity(tail, 8000, TONES[2], 400);
    let a_hears_b = median_purity(tail, 8000, TONES[1], 400);
    eprintln!("103 hears 101 {c_hears_a:.3} (102 {c_hears_b:.3}); 101 at the end hears 103 {a_hears_c:.3} (102 {a_hears_b:.3})");
    assert!(c_hears_a > 0.8 && c_hears_b < 0.1, "103 hears 101 and not 102: {c_hears_a} {c_hears_b}");
    assert!(a_hears_c > 0.8 && a_hears_b < 0.1, "101 hears 103 and no longer 102: {a_hears_c} {a_hears_b}");

    // one CDR, the transfer recorded with who answered it
    let cdrs = pbx.wait_cdrs(1).await?;
    let cdr = &cdrs[0];
    assert_eq!((cdr["caller_id_num"].as_str(), cdr["disposition"].as_str()), (Some("101"), Some("answered")), "{cdr}");
    let t = transfers(cdr);
    assert_eq!(t.len(), 1, "{cdr}");
    assert_eq!((t[0]["kind"].as_str(), t[0]["by"].as_str()), (Some("blind"), Some("callee")), "{cdr}");
    assert_eq!(t[0]["answered_by"]["extension_id"].as_i64(), Some(ids[2]), "{cdr}");
    Ok(())
}

#[tokio::test]
async fn an_attended_transfer_with_replaces_joins_the_transferred_party_and_the_consulted_one() -> anyhow::Result<()> {
    let pbx = Pbx::start(&[]).await?;
    let _ids = three_extensions(&pbx).await?;
    let (p101, p103) = (free_port(LO), free_port(LO));
    register(&pbx, "101", PW[0], p101, 300)?.assert_ok();
    register(&pbx, "103", PW[2], p103, 300)?.assert_ok();
    let twin = format!("127.0.0.1:{}", free_port(LO));

    // 102 calls 101 (call 1) from one line and waits for its twin, the second line, to
    // consult 103 (call 2) and hand that dialog over; then it REFERs call 1 to 103 with
    // Replaces naming call 2
    let transferred = sipp("uas_transferred.xml", (LO, p101), None, &["-m", "1"])?;
    let target = sipp("uas_transfer_target.xml", (LO, p103), None, &["-m", "1"])?;
    let common = ["-au", "102", "-ap", PW[1], "-key", "caller", "102", "-m", "1", "-3pcc", twin.as_str()];
    let mut args = vec!["-s", "101", "-key", "target", "103", "-cid_str", "call-one-%u@test"];
    args.extend(common);
    let transferor = sipp("uac_attended_transferor.xml", (LO, free_port(LO)), Some(&pbx.sip()), &args)?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut args = vec!["-s", "103", "-key", "callone", "call-one-1@test"];
    args.extend(common);
    let consult = sipp("uac_consult.xml", (LO, free_port(LO)), Some(&pbx.sip()), &args)?;

    let runs = [
        consult.wait(Duration::from_secs(40)),
        transferor.wait(Duration::from_secs(40)),
        transferred.wait(Duration::from_secs(40)),
        target.wait(Duration::from_secs(40)),
    ];
    if runs.iter().any(|r| r.code != Some(0)) {
        eprintln!("{}", pbx.server.logs());
    }
    for r in &runs {
        r.assert_ok();
    }
    let cdrs = pbx.wait_cdrs(2).await?;
    let one = cdrs.iter().find(|c| !transfers(c).is_empty()).unwrap_or_else(|| panic!("no CDR with the transfer: {cdrs:?}"));
    let t = transfers(one);
    assert_eq!((t[0]["kind"].as_str(), t[0]["by"].as_str()), (Some("attended"), Some("caller")), "{one}");
    assert_eq!((one["caller_id_num"].as_str(), one["callee"].as_str()), (Some("102"), Some("101")), "{one}");
    Ok(())
}

#[tokio::test]
async fn an_invite_with_replaces_pulls_a_call_to_the_callers_other_device() -> anyhow::Result<()> {
    let pbx = Pbx::start(&[]).await?;
    let _ids = three_extensions(&pbx).await?;
    let p101 = free_port(LO);
    register(&pbx, "101", PW[0], p101, 300)?.assert_ok();
    let twin = format!("127.0.0.1:{}", free_port(LO));
    // 101 answers and, 4 s later, hangs up; 102's other device listens on the twin socket
    // for the desk's dialog, then replaces it
    let callee = sipp("uas_pulled.xml", (LO, p101), None, &["-m", "1"])?;
    let common = ["-s", "101", "-au", "102", "-ap", PW[1], "-key", "caller", "102", "-m", "1", "-3pcc", twin.as_str()];
    let mobile = sipp("uac_pull_mobile.xml", (LO, free_port(LO)), Some(&pbx.sip()), &common)?;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let desk = sipp("uac_pull_desk.xml", (LO, free_port(LO)), Some(&pbx.sip()), &common)?;
    let runs = [desk.wait(Duration::from_secs(40)), mobile.wait(Duration::from_secs(40)), callee.wait(Duration::from_secs(40))];
    if runs.iter().any(|r| r.code != Some(0)) {
        eprintln!("{}", pbx.server.logs());
    }
    for r in &runs {
        r.assert_ok();
    }
    // one call, one CDR: the pull is recorded in it
    let cdrs = pbx.wait_cdrs(1).await?;
    assert_eq!(cdrs.len(), 1, "{cdrs:?}");
    let t = transfers(&cdrs[0]);
    assert_eq!((t.len(), t[0]["kind"].as_str(), t[0]["by"].as_str()), (1, Some("replaces"), Some("caller")), "{}", cdrs[0]);
    assert_eq!((cdrs[0]["caller_id_num"].as_str(), cdrs[0]["callee"].as_str()), (Some("102"), Some("101")), "{}", cdrs[0]);
    Ok(())
}
