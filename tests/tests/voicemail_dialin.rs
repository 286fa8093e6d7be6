//! The dial-in voicemail in the real binary, driven by SIPp phones with RFC 4733 digits
//! (pcaps the test writes, one per step): extension 201 dials `*97`, enters a wrong PIN then the right one, listens
//! to its first message and deletes it, saves the second, records its unavailable greeting
//! (audio from g711a.pcap, then `#`) and leaves; the store then holds one message, read, and
//! the greeting as the box's custom prompt. And the lockout: two calls to `*98` with three
//! wrong PINs each end at the third; a third call with the right PIN is refused. A caller
//! checks a box through a flow (the voicemail node in check mode), and a busy extension's
//! caller hears the box's busy greeting.

mod sip_support;

use std::net::{Ipv4Addr, UdpSocket};
use std::time::Duration;

use anyhow::Context;
use flowpbx_tests::{flow_edge, flow_node};
use serde_json::{json, Value};
use sip_support::{free_port, sipp, Pbx, SippResult};

const LO: Ipv4Addr = Ipv4Addr::LOCALHOST;
const CARRIER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const PW_201: &str = "Secret-201-pw";
const WAIT: Duration = Duration::from_secs(120);

/// Extension 201 and its box (number 8201, PIN 2468) behind +15550100 from a trusted
/// trunk on 127.0.0.2, where the voicemail node takes messages. Returns (pbx, box id).
async fn setup() -> anyhow::Result<(Pbx, i64)> {
    setup_mode("leave").await
}

async fn setup_mode(mode: &str) -> anyhow::Result<(Pbx, i64)> {
    let pbx = Pbx::start(&[]).await?;
    let ext = pbx.extension("201", PW_201).await?;
    let r = pbx.admin.post("/trunks", &json!({"name": "Carrier", "type": "ip", "remote_hosts": ["127.0.0.2/32"]})).await?;
    anyhow::ensure!(r.status == 201, "{}", r.text);
    let trunk = r.data()["id"].as_i64().context("trunk id")?;
    let r = pbx
        .admin
        .post("/voicemail-boxes", &json!({"name": "201", "mailbox_number": "8201", "pin": "2468", "max_message_duration": 60, "notify_extension_id": ext}))
        .await?;
    anyhow::ensure!(r.status == 201, "{}", r.text);
    let vm = r.data()["id"].as_i64().context("box id")?;
    let nodes = vec![
        flow_node("in", "inbound_number", json!({})),
        flow_node("vm", "voicemail", json!({"entity_id": vm, "entity_type": "voicemail_box", "config": {"play_greeting": false, "mode": mode}})),
        flow_node("bye", "hangup", json!({})),
    ];
    let edges = vec![flow_edge("in", "next", "vm"), flow_edge("vm", "done", "bye")];
    pbx.admin.publish_flow_for_number("Main", nodes, edges, "+15550100", trunk).await?;
    pbx.wait_directory(1, 1, 1).await?;
    Ok((pbx, vm))
}

/// An even UDP port with the three above it free on `ip` (SIPp's RTP/RTCP).
fn free_media_port(ip: Ipv4Addr) -> u16 {
    loop {
        let Ok(probe) = UdpSocket::bind((ip, 0)) else { continue };
        let Ok(a) = probe.local_addr() else { continue };
        drop(probe);
        let p = a.port() & !1;
        if p >= 1024 && (p..p + 4).all(|q| UdpSocket::bind((ip, q)).is_ok()) {
            return p;
        }
    }
}

async fn messages(pbx: &Pbx, vm: i64) -> anyhow::Result<Vec<Value>> {
    let r = pbx.admin.get(&format!("/voicemail-boxes/{vm}/messages")).await?;
    Ok(r.data().as_array().cloned().unwrap_or_default())
}

/// Where the scenarios find their RFC 4733 pcaps (an absolute path: SIPp reads
/// `play_pcap_audio` from its own working directory otherwise).
const DTMF_DIR: &str = "/tmp/flowpbx-dtmf";

/// One RTP packet in a pcap record (Ethernet, IPv4, UDP from 10.0.0.1:49176 to
/// 10.0.0.2:10000: SIPp replays the RTP payload of each record at its recorded time).
fn pcap_record(out: &mut Vec<u8>, at_us: u64, rtp: &[u8]) {
    let udp_len = 8 + rtp.len();
    let ip_len = 20 + udp_len;
    let mut frame = Vec::with_capacity(14 + ip_len);
    frame.extend_from_slice(&[0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1, 0x08, 0x00]);
    frame.extend_from_slice(&[0x45, 0, (ip_len >> 8) as u8, ip_len as u8, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    frame.extend_from_slice(&49176u16.to_be_bytes());
    frame.extend_from_slice(&10000u16.to_be_bytes());
    frame.extend_from_slice(&(udp_len as u16).to_be_bytes());
    frame.extend_from_slice(&[0, 0]);
    frame.extend_from_slice(rtp);
    out.extend_from_slice(&((at_us / 1_000_000) as u32).to_le_bytes());
    out.extend_from_slice(&((at_us % 1_000_000) as u32).to_le_bytes());
    out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    out.extend_from_slice(&frame);
}

/// A pcap of RFC 4733 telephone-events (payload type 101) pressing `digits`: per digit 7
/// packets 20 ms apart with a growing duration and the end packet three times (as
/// sip-tester's dtmf_2833_1.pcap), 200 ms between digits; `n` makes its SSRC, sequence
/// numbers and timestamps its own, so no two steps look like one repeated event.
fn dtmf_pcap(digits: &str, n: u32) -> Vec<u8> {
    let mut out = Vec::new();
    for h in [
        0xa1b2c3d4u32.to_le_bytes().as_slice(),
        &2u16.to_le_bytes(),
        &4u16.to_le_bytes(),
        &0i32.to_le_bytes(),
        &0u32.to_le_bytes(),
        &65535u32.to_le_bytes(),
        &1u32.to_le_bytes(),
    ] {
        out.extend_from_slice(h);
    }
    let ssrc = 0x0e05_3800 + n;
    let mut seq: u16 = (n as u16).wrapping_mul(500).wrapping_add(1000);
    let mut ts: u32 = 10_000 + n * 100_000;
    let mut at: u64 = 1_000_000;
    for d in digits.chars() {
        let event: u8 = match d {
            '0'..='9' => d as u8 - b'0',
            '*' => 10,
            '#' => 11,
            _ => continue,
        };
        for i in 0..10u16 {
            let end = i >= 7;
            let duration: u16 = 160 * (i.min(7) + 1);
            let mut rtp = vec![0x80, if i == 0 { 0x80 | 101 } else { 101 }];
            rtp.extend_from_slice(&seq.to_be_bytes());
            rtp.extend_from_slice(&ts.to_be_bytes());
            rtp.extend_from_slice(&ssrc.to_be_bytes());
            rtp.extend_from_slice(&[event, if end { 0x80 | 10 } else { 10 }]);
            rtp.extend_from_slice(&duration.to_be_bytes());
            pcap_record(&mut out, at, &rtp);
            if i < 7 {
                seq = seq.wrapping_add(1);
                at += 20_000;
            }
        }
        seq = seq.wrapping_add(1);
        ts = ts.wrapping_add(1600 + 8 * 200);
        at += 200_000;
    }
    out
}

/// Writes the pcaps of a scenario's steps (`<scenario>-<i>.pcap`), through a rename (tests
/// run in parallel; the content is the same whoever writes it).
fn write_dtmf(scenario: &str, steps: &[&str]) -> anyhow::Result<()> {
    std::fs::create_dir_all(DTMF_DIR)?;
    for (i, digits) in steps.iter().enumerate() {
        let path = std::path::Path::new(DTMF_DIR).join(format!("{scenario}-{i}.pcap"));
        let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
        std::fs::write(&tmp, dtmf_pcap(digits, i as u32 + 1))?;
        std::fs::rename(&tmp, &path)?;
    }
    Ok(())
}

#[tokio::test]
async fn a_caller_checks_a_box_through_a_flow() -> anyhow::Result<()> {
    let (pbx, _) = setup_mode("check").await?;
    let steps: &[&str] = &["2468#", "#"];
    write_dtmf("vm_flow_check", steps)?;
    let media = free_media_port(CARRIER).to_string();
    let r = sipp("vm_flow_check.xml", (CARRIER, free_port(CARRIER)), Some(&pbx.sip()), &["-s", "15550100", "-m", "1", "-mp", &media, "-timeout", "110s"])?
        .wait(WAIT);
    ok_or_logs(&pbx, &r);
    let logs = pbx.server.logs();
    assert!(logs.contains("voicemail: logged in from a flow"), "{logs}");
    // the menu left with #: the flow went on to its hang-up node
    let t0 = std::time::Instant::now();
    loop {
        let r = pbx.admin.get("/cdrs?limit=10").await?;
        let cdrs = r.data().as_array().cloned().unwrap_or_default();
        let path_of = |c: &Value| match &c["flow_path"] {
            Value::String(s) => serde_json::from_str::<Value>(s).unwrap_or(Value::Null),
            v => v.clone(),
        };
        if let Some(c) = cdrs.iter().find(|c| path_of(c).as_array().is_some_and(|a| !a.is_empty())) {
            let path = path_of(c);
            let nodes: Vec<(String, String)> = path
                .as_array()
                .map(|a| a.iter().map(|s| (s["node_id"].as_str().unwrap_or("").to_owned(), s["output"].as_str().unwrap_or("-").to_owned())).collect())
                .unwrap_or_default();
            assert_eq!(nodes.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["in", "vm", "bye"], "{c}");
            assert_eq!(nodes[1].1, "done", "{c}");
            break;
        }
        anyhow::ensure!(t0.elapsed() < Duration::from_secs(15), "no CDR with the flow's path: {cdrs:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

#[tokio::test]
async fn a_busy_extension_plays_the_busy_greeting() -> anyhow::Result<()> {
    use reqwest::multipart::{Form, Part};
    let pbx = Pbx::start(&[]).await?;
    // 201 is busy (do not disturb)
    let ext = pbx.extension_with(json!({"extension": "201", "name": "Busy", "sip_password": PW_201, "dnd": true})).await?;
    let r = pbx.admin.post("/trunks", &json!({"name": "Carrier", "type": "ip", "remote_hosts": ["127.0.0.2/32"]})).await?;
    anyhow::ensure!(r.status == 201, "{}", r.text);
    let trunk = r.data()["id"].as_i64().context("trunk id")?;
    let r = pbx.admin.post("/voicemail-boxes", &json!({"name": "201", "notify_extension_id": ext})).await?;
    anyhow::ensure!(r.status == 201, "{}", r.text);
    let vm = r.data()["id"].as_i64().context("box id")?;
    // the box's busy and unavailable greetings, as the phone menu stores them
    for kind in ["busy", "greeting"] {
        let wav = std::fs::read(flowpbx_tests::workspace_root().join("prompts/vm-you-have.wav"))?;
        let form = Form::new().text("name", format!("vm-{vm}-{kind}")).part("file", Part::bytes(wav).file_name("g.wav"));
        let r = pbx.admin.post_multipart("/prompts", form).await?;
        anyhow::ensure!(r.status == 201, "{}", r.text);
    }
    let nodes = vec![
        flow_node("in", "inbound_number", json!({})),
        flow_node("ext", "extension", json!({"entity_id": ext, "entity_type": "extension", "config": {}})),
        flow_node("vm", "voicemail", json!({"entity_id": vm, "entity_type": "voicemail_box", "config": {"play_greeting": true}})),
        flow_node("bye", "hangup", json!({})),
    ];
    let edges = vec![flow_edge("in", "next", "ext"), flow_edge("ext", "busy", "vm"), flow_edge("ext", "no_answer", "bye"), flow_edge("vm", "done", "bye")];
    pbx.admin.publish_flow_for_number("Main", nodes, edges, "+15550100", trunk).await?;
    pbx.wait_directory(1, 1, 1).await?;
    let media = free_media_port(CARRIER).to_string();
    let caller = sipp("flow_trunk_message.xml", (CARRIER, free_port(CARRIER)), Some(&pbx.sip()), &["-s", "15550100", "-m", "1", "-d", "3000", "-mp", &media])?;
    // the busy greeting, not the unavailable one, is what the caller hears
    let greeting_lines = || pbx.server.logs().lines().filter(|l| l.contains("voicemail greeting")).map(str::to_owned).collect::<Vec<_>>();
    let t0 = std::time::Instant::now();
    while greeting_lines().is_empty() {
        anyhow::ensure!(t0.elapsed() < Duration::from_secs(20), "no voicemail greeting in the log:\n{}", pbx.server.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let lines = greeting_lines();
    assert!(lines.len() == 1 && lines[0].contains(&format!("\"vm-{vm}-busy\"")), "{lines:?}");
    ok_or_logs(&pbx, &caller.wait(WAIT));
    Ok(())
}

/// Extension 201 dials `dialled` and runs `scenario`.
fn phone_call(pbx: &Pbx, scenario: &str, dialled: &str) -> anyhow::Result<SippResult> {
    let steps: &[&str] = match scenario {
        "vm_dialin_menu.xml" => &["1111#", "2468#", "1", "7", "9", "01", "#", "*", "#"],
        "vm_dialin_wrong.xml" => &["8201#", "1111#", "1112#", "1113#"],
        "vm_flow_check.xml" => &["2468#", "#"],
        _ => &["8201#", "2468#", "#"],
    };
    write_dtmf(scenario.trim_end_matches(".xml"), steps)?;
    let media = free_media_port(LO).to_string();
    let run = sipp(
        scenario,
        (LO, free_port(LO)),
        Some(&pbx.sip()),
        &["-s", dialled, "-key", "caller", "201", "-au", "201", "-ap", PW_201, "-m", "1", "-mp", &media, "-timeout", "110s"],
    )?;
    Ok(run.wait(WAIT))
}

fn ok_or_logs(pbx: &Pbx, r: &SippResult) {
    if r.code != Some(0) {
        eprintln!("{}", pbx.server.logs());
    }
    r.assert_ok();
}

#[tokio::test]
async fn a_phone_drives_its_voicemail_menu() -> anyhow::Result<()> {
    let (pbx, vm) = setup().await?;
    // two messages from a caller outside
    for n in 1..=2 {
        let media = free_media_port(CARRIER).to_string();
        sipp("flow_trunk_message.xml", (CARRIER, free_port(CARRIER)), Some(&pbx.sip()), &["-s", "15550100", "-m", "1", "-d", "3000", "-mp", &media])?
            .wait(WAIT)
            .assert_ok();
        let t0 = std::time::Instant::now();
        while messages(&pbx, vm).await?.len() < n {
            anyhow::ensure!(t0.elapsed() < Duration::from_secs(15), "message {n} never stored");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // distinct timestamps, so "first" is well defined
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = messages(&pbx, vm).await?;
    // newest first in the API: the first message left is the last here
    let (first, second) = (before[1].clone(), before[0].clone());
    assert!(before.iter().all(|m| m["read"] == false), "{before:?}");

    let r = phone_call(&pbx, "vm_dialin_menu.xml", "*97")?;
    ok_or_logs(&pbx, &r);

    // the first message is gone (row and file), the second saved (read)
    let after = messages(&pbx, vm).await?;
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0]["id"], second["id"], "{after:?}");
    assert_eq!(after[0]["read"], true, "{after:?}");
    let gone = pbx.server.data_dir().join(first["file_path"].as_str().context("file path")?);
    assert!(!gone.exists(), "{} still there", gone.display());
    // the greeting is the box's custom prompt now
    let r = pbx.admin.get(&format!("/voicemail-boxes/{vm}")).await?;
    let b = r.data();
    assert_eq!(b["greeting_type"], "custom", "{b}");
    let name = format!("vm-{vm}-greeting");
    assert_eq!(b["greeting_file"], name.as_str(), "{b}");
    let r = pbx.admin.get("/prompts?limit=100").await?;
    let prompts = r.data().as_array().cloned().unwrap_or_default();
    let p = prompts.iter().find(|p| p["name"] == name.as_str()).with_context(|| format!("no prompt {name} in {prompts:?}"))?;
    assert!(p["duration_ms"].as_i64().unwrap_or(0) >= 1000, "{p}");
    let wav = std::fs::read(pbx.server.data_dir().join("prompts/custom").join(format!("{name}.wav")))?;
    assert_eq!(&wav[..4], b"RIFF");
    // one wrong PIN was counted, then the login
    let logs = pbx.server.logs();
    assert_eq!(logs.matches("wrong voicemail PIN").count(), 1, "{logs}");
    assert!(logs.contains("voicemail: logged in"), "{logs}");
    Ok(())
}

#[tokio::test]
async fn three_wrong_pins_end_the_call_and_lock_the_box() -> anyhow::Result<()> {
    let (pbx, _) = setup().await?;
    for _ in 0..2 {
        let r = phone_call(&pbx, "vm_dialin_wrong.xml", "*98")?;
        ok_or_logs(&pbx, &r);
    }
    assert_eq!(pbx.server.logs().matches("wrong voicemail PIN").count(), 6);
    // locked now: the right PIN is refused too
    let r = phone_call(&pbx, "vm_dialin_right.xml", "*98")?;
    ok_or_logs(&pbx, &r);
    let logs = pbx.server.logs();
    assert!(logs.contains("the box is locked after too many wrong PINs"), "{logs}");
    assert!(!logs.contains("voicemail: logged in"), "nobody logged in: {logs}");
    Ok(())
}
