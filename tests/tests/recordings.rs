//! Call recordings end to end: an `always` extension's SIPp call leaves a `recordings` row
//! tied to its CDR; the recordings API lists it with the call log's filters, serves its audio
//! with byte ranges (206 + Content-Range; a range outside the file is 416), as a download,
//! refuses ids that are not numbers (path traversal) and deletes file and row with an audit
//! entry. A trunk that records inbound calls has its callers' calls recorded with their
//! rows; with the flag off (and only outbound recording on) an inbound call is not.

mod media_support;
mod sip_support;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use media_support::{pcmu_tone, wait_sdp_sent_to, RtpEndpoint};
use serde_json::{json, Value};
use sip_support::{free_port, register, sipp, Pbx};

const LO: Ipv4Addr = Ipv4Addr::LOCALHOST;
const PW_101: &str = "Secret-101-pw";
const PW_102: &str = "Secret-102-pw";
const WAIT: Duration = Duration::from_secs(30);

fn sdp_keys(rtp_port: u16) -> Vec<String> {
    ["-key", "rtp_port", &rtp_port.to_string(), "-key", "pt", "0", "-key", "codec", "PCMU/8000", "-key", "te_pt", "101"]
        .into_iter()
        .map(str::to_owned)
        .collect()
}

fn checked(r: anyhow::Result<()>) {
    if let Err(e) = r {
        panic!("{e:#}");
    }
}

#[tokio::test]
async fn an_always_extensions_call_is_listed_served_by_range_and_deleted() {
    checked(always_call().await);
}

async fn always_call() -> anyhow::Result<()> {
    let cache = flowpbx_tests::flowpbx_bin()?.with_file_name("flowpbx-test-component-cache");
    let cache = cache.to_string_lossy().into_owned();
    let pbx = Pbx::start(&["--sip-log", "full", "--cache-dir", &cache]).await?;
    pbx.extension("101", PW_101).await?;
    pbx.extension_with(json!({"extension": "102", "name": "Ext 102", "sip_password": PW_102, "recording_mode": "always"})).await?;
    pbx.wait_directory(2, 0, 0).await?;

    let (ea, eb) = (RtpEndpoint::bind()?, RtpEndpoint::bind()?);
    let uas_port = free_port(LO);
    let mut args: Vec<String> = vec!["-m".into(), "1".into()];
    args.extend(sdp_keys(eb.port));
    let uas = sipp("media_uas.xml", (LO, uas_port), None, &args.iter().map(String::as_str).collect::<Vec<_>>())?;
    register(&pbx, "102", PW_102, uas_port, 300)?.assert_ok();
    let uac_port = free_port(LO);
    let mut args: Vec<String> =
        ["-s", "102", "-au", "101", "-ap", PW_101, "-key", "caller", "101", "-m", "1", "-d", "2000"].into_iter().map(str::to_owned).collect();
    args.extend(sdp_keys(ea.port));
    let uac = sipp("media_uac.xml", (LO, uac_port), Some(&pbx.sip()), &args.iter().map(String::as_str).collect::<Vec<_>>())?;
    let to_b = wait_sdp_sent_to(&pbx.server, uas_port, Duration::from_secs(10)).await?;
    let to_a = wait_sdp_sent_to(&pbx.server, uac_port, Duration::from_secs(10)).await?;
    ea.send(to_a.addr()?, 0x1111_0001, pcmu_tone(0, 440.0));
    eb.send(to_b.addr()?, 0x2222_0002, pcmu_tone(0, 1000.0));
    uac.wait(WAIT).assert_ok();
    uas.wait(WAIT).assert_ok();
    ea.stop_sending();
    eb.stop_sending();

    let cdr = pbx.wait_cdrs(1).await?.remove(0);
    // the row is written once the file is complete (the media session closes after the BYE)
    let t0 = Instant::now();
    let rec = loop {
        let r = pbx.admin.get("/recordings").await?;
        anyhow::ensure!(r.status == 200, "list: {} {}", r.status, r.text);
        if let Some(first) = r.body["data"].as_array().and_then(|a| a.first()) {
            break first.clone();
        }
        anyhow::ensure!(t0.elapsed() < Duration::from_secs(10), "no recordings row appeared: {}", r.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("recording row: {rec}");
    assert_eq!(rec["cdr_id"], cdr["id"], "tied to the call's CDR");
    assert_eq!(rec["call_id"], cdr["call_id"]);
    assert_eq!(rec["file_path"], cdr["recording_file"], "the CDR names the same file");
    assert_eq!(rec["caller_id_num"].as_str(), Some("101"));
    assert_eq!(rec["callee"].as_str(), Some("102"));
    let id = rec["id"].as_i64().unwrap_or_default();
    let size = rec["size_bytes"].as_i64().unwrap_or_default();
    let file = pbx.server.data_dir().join(rec["file_path"].as_str().unwrap_or_default());
    assert_eq!(std::fs::metadata(&file)?.len() as i64, size, "size_bytes is the file's");
    assert!(size > 44 + 8000, "some audio in it: {size}");
    assert!(rec["duration"].as_i64().unwrap_or(0) >= 1, "{rec}");

    // the call log's filters apply
    let r = pbx.admin.get("/recordings?caller=101").await?;
    assert_eq!(r.body["meta"]["total"], 1, "{}", r.text);
    let r = pbx.admin.get("/recordings?caller=999").await?;
    assert_eq!(r.body["meta"]["total"], 0, "{}", r.text);
    let r = pbx.admin.get("/recordings?from=not-a-date").await?;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("\"from\""), "the envelope names the field: {}", r.text);

    // audio: whole, a range, the last bytes, an unsatisfiable range, a download
    let audio = format!("/recordings/{id}/audio");
    let r = pbx.admin.get(&audio).await?;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("audio/wav"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert_eq!(r.header("content-length"), Some(size.to_string().as_str()));
    let r = pbx.admin.get_with(&audio, &[("range", "bytes=0-3")]).await?;
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some(format!("bytes 0-3/{size}").as_str()));
    assert_eq!(r.text, "RIFF", "the first four bytes of the WAV");
    let r = pbx.admin.get_with(&audio, &[("range", "bytes=-100")]).await?;
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some(format!("bytes {}-{}/{size}", size - 100, size - 1).as_str()));
    assert_eq!(r.header("content-length"), Some("100"));
    // attacks on the range: past the end, reversed, absurd numbers
    for bad in [format!("bytes={size}-"), "bytes=10-5".to_owned(), "bytes=99999999999999999999999-".to_owned(), "bytes=-0".to_owned()] {
        let r = pbx.admin.get_with(&audio, &[("range", &bad)]).await?;
        assert_eq!(r.status, 416, "{bad}: {}", r.text);
        assert_eq!(r.header("content-range"), Some(format!("bytes */{size}").as_str()), "{bad}");
        assert!(r.body["error"]["code"].is_string(), "{bad}: the error envelope: {}", r.text);
    }
    // an end past the file is clipped to it
    let r = pbx.admin.get_with(&audio, &[("range", &format!("bytes={}-{}", size - 2, size + 1000))]).await?;
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some(format!("bytes {}-{}/{size}", size - 2, size - 1).as_str()));
    let r = pbx.admin.get(&format!("{audio}?download=true")).await?;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-disposition"), Some(format!("attachment; filename=\"recording-{id}.wav\"").as_str()));

    // path traversal: an id is a number, nothing else reaches a file
    for bad in ["/recordings/..%2f..%2fsecret.key/audio", "/recordings/%2e%2e/audio", "/recordings/1%2f..%2f..%2fflowpbx.db/audio", "/recordings/-1/audio"] {
        let r = pbx.admin.get(bad).await?;
        assert!(r.status == 400 || r.status == 404, "{bad}: {} {}", r.status, r.text);
        assert!(r.body["error"]["code"].is_string(), "{bad}: {}", r.text);
        assert!(!r.text.contains("RIFF"), "{bad}");
    }
    let r = pbx.admin.get(&format!("/recordings/{}/audio", id + 1000)).await?;
    assert_eq!(r.status, 404);

    // delete: row and file go, the audit log says who
    let r = pbx.admin.delete(&format!("/recordings/{id}")).await?;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(!file.exists(), "the file is removed");
    assert_eq!(pbx.admin.get(&format!("/recordings/{id}")).await?.status, 404);
    assert_eq!(pbx.admin.get(&audio).await?.status, 404);
    let audit = pbx.admin.get("/audit-log?limit=20").await?;
    let entries: Vec<Value> = audit.body["data"].as_array().cloned().unwrap_or_default();
    assert!(
        entries.iter().any(|e| e["action"] == "delete" && e["entity_type"] == "recording" && e["entity_id"] == json!(id.to_string())),
        "audited: {}",
        audit.text
    );
    Ok(())
}

#[tokio::test]
async fn the_global_always_policy_records_extensions_that_do_not_ask() {
    checked(global_policy().await);
}

async fn global_policy() -> anyhow::Result<()> {
    let cache = flowpbx_tests::flowpbx_bin()?.with_file_name("flowpbx-test-component-cache");
    let cache = cache.to_string_lossy().into_owned();
    let pbx = Pbx::start(&["--cache-dir", &cache]).await?;
    pbx.extension("101", PW_101).await?;
    pbx.extension("102", PW_102).await?;
    pbx.wait_directory(2, 0, 0).await?;
    let r = pbx.admin.put("/settings", &json!({"recording_policy": "sometimes"})).await?;
    assert_eq!(r.error_fields(), ["recording_policy"], "{}", r.text);
    let r = pbx.admin.put("/settings", &json!({"recording_policy": "always"})).await?;
    anyhow::ensure!(r.status == 200, "{}", r.text);
    // the SIP stack's directory follows the setting within its refresh interval
    tokio::time::sleep(Duration::from_secs(2)).await;
    let uas_port = free_port(LO);
    let eb = RtpEndpoint::bind()?;
    let ea = RtpEndpoint::bind()?;
    let mut args: Vec<String> = vec!["-m".into(), "1".into()];
    args.extend(sdp_keys(eb.port));
    let uas = sipp("media_uas.xml", (LO, uas_port), None, &args.iter().map(String::as_str).collect::<Vec<_>>())?;
    register(&pbx, "102", PW_102, uas_port, 300)?.assert_ok();
    let uac_port = free_port(LO);
    let mut args: Vec<String> =
        ["-s", "102", "-au", "101", "-ap", PW_101, "-key", "caller", "101", "-m", "1", "-d", "1000"].into_iter().map(str::to_owned).collect();
    args.extend(sdp_keys(ea.port));
    let uac = sipp("media_uac.xml", (LO, uac_port), Some(&pbx.sip()), &args.iter().map(String::as_str).collect::<Vec<_>>())?;
    uac.wait(WAIT).assert_ok();
    uas.wait(WAIT).assert_ok();
    let cdr = pbx.wait_cdrs(1).await?.remove(0);
    let t0 = Instant::now();
    loop {
        let r = pbx.admin.get("/recordings").await?;
        if let Some(first) = r.body["data"].as_array().and_then(|a| a.first()) {
            assert_eq!(first["cdr_id"], cdr["id"], "{first}");
            break;
        }
        anyhow::ensure!(t0.elapsed() < Duration::from_secs(10), "the global policy recorded nothing: {}", r.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

#[tokio::test]
async fn a_trunk_that_records_inbound_calls_records_them() {
    checked(trunk_inbound().await);
}

/// One call from the carrier's address to the DID (rung through a flow to extension 102,
/// whose media the test sends); waits for its CDR (the `n`th).
async fn carrier_call(pbx: &Pbx, carrier: Ipv4Addr, n: usize) -> anyhow::Result<Value> {
    let eb = RtpEndpoint::bind()?;
    let uas_port = free_port(LO);
    let mut args: Vec<String> = vec!["-m".into(), "1".into()];
    args.extend(sdp_keys(eb.port));
    let uas = sipp("media_uas.xml", (LO, uas_port), None, &args.iter().map(String::as_str).collect::<Vec<_>>())?;
    register(pbx, "102", PW_102, uas_port, 300)?.assert_ok();
    let uac = sipp("trunk_call.xml", (carrier, free_port(carrier)), Some(&pbx.sip()), &["-s", "15550100", "-m", "1", "-d", "1500"])?;
    let to_b = wait_sdp_sent_to(&pbx.server, uas_port, Duration::from_secs(10)).await?;
    eb.send(to_b.addr()?, 0x2222_0002, pcmu_tone(0, 1000.0));
    uac.wait(WAIT).assert_ok();
    uas.wait(WAIT).assert_ok();
    eb.stop_sending();
    let cdrs = pbx.wait_cdrs(n).await?;
    let cdr = cdrs.iter().max_by_key(|c| c["id"].as_i64()).cloned().unwrap_or_default();
    anyhow::ensure!(cdr["direction"] == "inbound" && cdr["disposition"] == "answered", "an answered inbound call: {cdr}");
    Ok(cdr)
}

async fn recordings(pbx: &Pbx) -> anyhow::Result<Vec<Value>> {
    let r = pbx.admin.get("/recordings").await?;
    anyhow::ensure!(r.status == 200, "list: {} {}", r.status, r.text);
    Ok(r.body["data"].as_array().cloned().unwrap_or_default())
}

async fn trunk_inbound() -> anyhow::Result<()> {
    let cache = flowpbx_tests::flowpbx_bin()?.with_file_name("flowpbx-test-component-cache");
    let cache = cache.to_string_lossy().into_owned();
    let pbx = Pbx::start(&["--sip-log", "full", "--cache-dir", &cache]).await?;
    pbx.extension("101", PW_101).await?;
    let ext = pbx.extension("102", PW_102).await?;
    let carrier = Ipv4Addr::new(127, 0, 0, 2);
    // the flags are booleans: anything else is refused naming the field
    let base = json!({"name": "Carrier", "type": "ip", "remote_hosts": ["127.0.0.2/32"]});
    let mut bad = base.clone();
    bad["record_inbound"] = json!("yes");
    let r = pbx.admin.post("/trunks", &bad).await?;
    assert!(r.status == 400 || r.status == 422, "{} {}", r.status, r.text);
    assert!(r.text.contains("record_inbound"), "the envelope names the field: {}", r.text);
    let mut body = base.clone();
    body["record_inbound"] = json!(true);
    let r = pbx.admin.post("/trunks", &body).await?;
    anyhow::ensure!(r.status == 201, "{}", r.text);
    assert_eq!((r.data()["record_inbound"].as_bool(), r.data()["record_outbound"].as_bool()), (Some(true), Some(false)), "{}", r.text);
    let trunk = r.data()["id"].as_i64().unwrap_or_default();
    let node = |id: &str, ty: &str, data: Value| json!({"id": id, "type": ty, "position": {"x": 0, "y": 0}, "data": data});
    let graph = json!({
        "nodes": [node("in", "inbound_number", json!({})), node("ext", "extension", json!({"entity_id": ext, "entity_type": "extension"}))],
        "edges": [{"id": "e1", "source": "in", "sourceHandle": "next", "target": "ext"}]
    });
    let r = pbx.admin.post("/flows", &json!({"name": "Main line", "flow_data": graph})).await?;
    anyhow::ensure!(r.status == 201, "{}", r.text);
    let flow = r.data()["id"].as_i64().unwrap_or_default();
    let r = pbx.admin.post(&format!("/flows/{flow}/publish"), &json!({})).await?;
    anyhow::ensure!(r.status == 200, "publish: {}", r.text);
    let r = pbx.admin.post("/numbers", &json!({"number": "+15550100", "trunk_id": trunk, "flow_id": flow, "flow_entry_node": "in"})).await?;
    anyhow::ensure!(r.status == 201, "{}", r.text);
    pbx.wait_directory(2, 1, 1).await?;

    // on: the call from the trunk is recorded, its row tied to the CDR
    let cdr = carrier_call(&pbx, carrier, 1).await?;
    assert_eq!(cdr["trunk_id"].as_i64(), Some(trunk), "{cdr}");
    let t0 = Instant::now();
    let rec = loop {
        if let Some(first) = recordings(&pbx).await?.first() {
            break first.clone();
        }
        anyhow::ensure!(t0.elapsed() < Duration::from_secs(10), "the trunk's inbound call was not recorded\n{}", pbx.server.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(rec["cdr_id"], cdr["id"], "{rec}");
    assert_eq!(rec["file_path"], cdr["recording_file"], "{rec}");
    let file = pbx.server.data_dir().join(rec["file_path"].as_str().unwrap_or_default());
    assert!(std::fs::metadata(&file)?.len() > 44, "the file has audio: {rec}");

    // off (outbound recording on does not record inbound calls): no new row
    let r = pbx.admin.put(&format!("/trunks/{trunk}"), &json!({"record_inbound": false, "record_outbound": true})).await?;
    anyhow::ensure!(r.status == 200, "{}", r.text);
    assert_eq!((r.data()["record_inbound"].as_bool(), r.data()["record_outbound"].as_bool()), (Some(false), Some(true)), "{}", r.text);
    let r = pbx.admin.get(&format!("/trunks/{trunk}")).await?;
    assert_eq!(r.data()["record_inbound"].as_bool(), Some(false), "read back: {}", r.text);
    // the SIP stack's directory follows the change within its refresh interval
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cdr = carrier_call(&pbx, carrier, 2).await?;
    assert!(cdr["recording_file"].is_null(), "not recorded: {cdr}");
    // a recording's row comes just after the CDR's end: give it the time it would take
    tokio::time::sleep(Duration::from_secs(2)).await;
    let all = recordings(&pbx).await?;
    assert_eq!(all.len(), 1, "only the first call was recorded: {all:?}");
    Ok(())
}
