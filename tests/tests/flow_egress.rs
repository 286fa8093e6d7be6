//! Plugin egress, grants and log caps in the real binary. The test plugin is
//! `nodes/testing/misbehave`, built with `flowpbx node build` and uploaded like any plugin.
//! Grants: `granted_networks` and `granted_ports` are checked field by field (422 naming the
//! entry), listed, kept when a change leaves them out, and a row in the column's first shape
//! (a bare list of capabilities) still loads. Calls from a trusted trunk (SIPp on 127.0.0.2)
//! walk a flow whose built-in webhook aims at a listener on 127.0.0.1 — refused, the binary
//! grants built-ins no local network — and whose plugin fetches from it — reached with
//! 127.0.0.0/8 and the port granted, refused once the network grant is taken back. The same
//! calls flood the log and write a 10 KiB line with forged lines in it: the process log
//! gets 100 lines of at most 1 KiB, escaped, and one line counting the rest.

mod sip_support;

use std::net::{Ipv4Addr, UdpSocket};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use flowpbx_tests::{flowpbx_bin, workspace_root, Client, Server};
use serde_json::{json, Value};
use sip_support::{free_port, sipp, Pbx};
use std::io::{Read, Write};

const CARRIER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const NUMBER: &str = "+15550100";
const WAIT: Duration = Duration::from_secs(40);

/// Builds the misbehave plugin with `flowpbx node build` (the target dir the flow crate's
/// tooling tests and flow_cli share, so the wasm std build is shared too); its bytes.
fn misbehave() -> anyhow::Result<Vec<u8>> {
    let root = workspace_root();
    let target = root.join("target/wasm-plugin-test");
    let out = std::process::Command::new(flowpbx_bin()?)
        .args(["node", "build"])
        .arg(root.join("nodes/testing/misbehave"))
        .arg("--target-dir")
        .arg(&target)
        .arg("--json")
        .output()?;
    anyhow::ensure!(out.status.success(), "node build: {}", String::from_utf8_lossy(&out.stderr));
    let built: Value = serde_json::from_slice(&out.stdout)?;
    let path = PathBuf::from(built["component"].as_str().context("the component's path")?);
    Ok(std::fs::read(path)?)
}

/// Uploads a component; the plugin's id.
async fn upload(admin: &Client, bytes: Vec<u8>) -> anyhow::Result<i64> {
    let form = reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(bytes).file_name("misbehave.wasm"));
    let r = admin.post_multipart("/plugins", form).await?;
    anyhow::ensure!(r.status == 201, "upload: {}", r.text);
    r.data()["id"].as_i64().context("plugin id")
}

#[tokio::test]
async fn plugin_grants_take_networks_and_ports_checked_field_by_field() -> anyhow::Result<()> {
    let bytes = tokio::task::spawn_blocking(misbehave).await??;
    let mut server = Server::start().await?;
    let admin = server.admin().await?;
    let id = upload(&admin, bytes).await?;
    let path = format!("/plugins/{id}");
    let fresh = admin.get(&path).await?;
    assert_eq!((fresh.data()["granted_networks"].clone(), fresh.data()["granted_ports"].clone()), (json!([]), json!([])), "{}", fresh.text);

    // every bad entry is named, the good ones are not, and nothing changes
    let r = admin.put(&path, &json!({"granted_networks": ["10.0.0.1/8", "fd00::/8", "intranet", "10.0.0.0/33"], "granted_ports": [8080, 0]})).await?;
    assert_eq!(r.status, 422, "{}", r.text);
    let mut fields = r.error_fields();
    fields.sort();
    assert_eq!(fields, ["granted_networks[0]", "granted_networks[2]", "granted_networks[3]", "granted_ports[1]"], "{}", r.text);
    assert!(r.text.contains("10.0.0.0/8"), "the message says which network was meant: {}", r.text);
    let r = admin.put(&path, &json!({"granted_ports": [70000]})).await?;
    assert_eq!((r.status, r.error_fields()), (422, vec!["granted_ports[0]".to_string()]), "{}", r.text);
    let r = admin.put(&path, &json!({"granted_capabilities": ["http:elsewhere.test"], "granted_networks": ["10.0.0.0/8"]})).await?;
    assert_eq!(r.status, 422, "a capability it does not ask for fails the whole change: {}", r.text);
    assert_eq!(admin.get(&path).await?.data()["granted_networks"], json!([]));

    let r = admin.put(&path, &json!({"granted_capabilities": ["http:127.0.0.1"], "granted_networks": ["127.0.0.0/8", "fd00::1", "127.0.0.0/8"], "granted_ports": [8080, 8080, 8443]})).await?;
    assert_eq!(r.status, 200, "{}", r.text);
    let d = r.data();
    assert_eq!(
        (d["granted_capabilities"].clone(), d["granted_networks"].clone(), d["granted_ports"].clone()),
        (json!(["http:127.0.0.1"]), json!(["127.0.0.0/8", "fd00::1/128"]), json!([8080, 8443]))
    );
    // a change that leaves them out keeps them
    let r = admin.put(&path, &json!({"enabled": true})).await?;
    assert_eq!(
        (r.status, r.data()["granted_networks"].clone(), r.data()["granted_ports"].clone()),
        (200, json!(["127.0.0.0/8", "fd00::1/128"]), json!([8080, 8443])),
        "{}",
        r.text
    );
    let r = admin.put(&path, &json!({"granted_networks": []})).await?;
    assert_eq!((r.data()["granted_networks"].clone(), r.data()["granted_ports"].clone()), (json!([]), json!([8080, 8443])), "{}", r.text);

    // a row written in the column's first shape (a list of capabilities) loads: listed, and
    // installed with those grants at start-up
    let key = store::SecretKey::load_or_create(&server.data_dir().join(store::SECRET_KEY_FILE))?;
    let st = store::Store::open(store::StoreOptions { path: server.db_path(), secret_key: key, sip_realm: None, max_connections: 1 }).await?;
    st.plugins().set_granted(id, &json!(["http:127.0.0.1", "kv"])).await?;
    st.close().await;
    server.restart().await?;
    let admin = server.admin().await?;
    let d = admin.get(&path).await?.data().clone();
    assert_eq!(
        (d["granted_capabilities"].clone(), d["granted_networks"].clone(), d["granted_ports"].clone()),
        (json!(["http:127.0.0.1", "kv"]), json!([]), json!([])),
        "{d}"
    );
    let types = admin.get("/node-types").await?;
    let t = types.data().as_array().context("node types")?.iter().find(|t| t["id"] == "test/misbehave").cloned().context("the plugin is installed")?;
    assert_eq!(t["granted"], json!(["http:127.0.0.1", "kv"]), "{t}");
    Ok(())
}

/// A listener on 127.0.0.1 answering `{"route": "vip"}`, recording each request's path. It
/// runs on a thread of its own: the test blocks while SIPp runs.
fn listener() -> anyhow::Result<(u16, Arc<Mutex<Vec<String>>>)> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = l.local_addr()?.port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            let mut buf = vec![0u8; 8192];
            let n = c.read(&mut buf).unwrap_or(0);
            let line = String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or_default().to_string();
            s.lock().unwrap().push(line.split(' ').nth(1).unwrap_or_default().to_string());
            let body = r#"{"route": "vip"}"#;
            let _ = c.write_all(
                format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len()).as_bytes(),
            );
        }
    });
    Ok((port, seen))
}

fn node(id: &str, ty: &str, config: Value) -> Value {
    json!({"id": id, "type": ty, "position": {"x": 0, "y": 0}, "data": {"config": config}})
}

fn edge(from: &str, output: &str, to: &str) -> Value {
    json!({"id": format!("{from}-{output}-{to}"), "source": from, "sourceHandle": output, "target": to})
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

/// The carrier calls the number and waits for the flow to hang up; the CDRs once `n` carry
/// a flow path.
async fn call(pbx: &Pbx, n: usize) -> anyhow::Result<Vec<Value>> {
    let media = free_media_port();
    sipp("flow_trunk_wait_bye.xml", (CARRIER, free_port(CARRIER)), Some(&pbx.sip()), &["-s", "15550100", "-m", "1", "-mp", &media.to_string()])?
        .wait(WAIT)
        .assert_ok();
    let t0 = std::time::Instant::now();
    loop {
        let cdrs = pbx.wait_cdrs(n).await?;
        let traced: Vec<Value> = cdrs.iter().filter(|c| !path(c).is_empty()).cloned().collect();
        if traced.len() >= n {
            return Ok(traced);
        }
        anyhow::ensure!(t0.elapsed() < Duration::from_secs(15), "{} of {n} CDRs have a flow path\n{}", traced.len(), pbx.server.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_plugin_reaches_a_local_service_only_with_its_network_and_port_granted() -> anyhow::Result<()> {
    let bytes = tokio::task::spawn_blocking(misbehave).await??;
    let (port, seen) = listener()?;
    let pbx = Pbx::start(&[]).await?;
    let r = pbx.admin.post("/trunks", &json!({"name": "Carrier", "type": "ip", "remote_hosts": ["127.0.0.2/32"]})).await?;
    anyhow::ensure!(r.status == 201, "{}", r.text);
    let trunk = r.data()["id"].as_i64().context("trunk id")?;
    let plugin = upload(&pbx.admin, bytes).await?;
    let grant = json!({"granted_capabilities": ["http:127.0.0.1"], "granted_networks": ["127.0.0.0/8"], "granted_ports": [port], "enabled": true});
    let r = pbx.admin.put(&format!("/plugins/{plugin}"), &grant).await?;
    anyhow::ensure!(r.status == 200, "{}", r.text);

    // in → webhook → plugin fetch → a prompt (answers) → log flood → a long line → hang up
    let hook =
        node("hook", "webhook", json!({"url": format!("http://127.0.0.1:{port}/webhook"), "field": "route", "routes": [{"value": "vip"}], "timeout_ms": 3000}));
    let fetch = node("fetch", "test/misbehave", json!({"do": "fetch", "url": format!("http://127.0.0.1:{port}/plugin"), "timeout_ms": 3000}));
    let nodes = vec![
        json!({"id": "in", "type": "inbound_number", "position": {"x": 0, "y": 0}, "data": {}}),
        hook,
        fetch,
        node("say", "play_message", json!({"prompt": "system/goodbye"})),
        node("flood", "test/misbehave", json!({"do": "log_flood"})),
        node("long", "test/misbehave", json!({"do": "log_long"})),
        node("bye", "hangup", json!({})),
    ];
    let mut edges = vec![edge("in", "next", "hook"), edge("say", "next", "flood"), edge("flood", "ok", "long"), edge("long", "ok", "bye")];
    for out in ["vip", "default", "timeout", "error"] {
        edges.push(edge("hook", out, "fetch"));
    }
    for out in ["ok", "was_denied", "error"] {
        edges.push(edge("fetch", out, "say"));
    }
    let r = pbx.admin.post("/flows", &json!({"name": "Egress", "flow_data": {"nodes": nodes, "edges": edges}})).await?;
    anyhow::ensure!(r.status == 201, "{}", r.text);
    let flow = r.data()["id"].as_i64().context("flow id")?;
    let r = pbx.admin.post(&format!("/flows/{flow}/publish"), &json!({})).await?;
    anyhow::ensure!(r.status == 200, "publish: {}", r.text);
    let r = pbx.admin.post("/numbers", &json!({"number": NUMBER, "trunk_id": trunk, "flow_id": flow, "flow_entry_node": "in"})).await?;
    anyhow::ensure!(r.status == 201, "{}", r.text);
    pbx.wait_directory(0, 1, 1).await?;

    let c = &call(&pbx, 1).await?[0];
    let walked = path(c);
    assert_eq!(walked[..3], p(&[("in", "next"), ("hook", "error"), ("fetch", "ok")])[..], "{c}");
    assert_eq!(walked[3..], p(&[("say", "next"), ("flood", "ok"), ("long", "ok"), ("bye", "")])[..], "{c}");
    assert_eq!(*seen.lock().unwrap(), ["/plugin"], "the webhook never reached the listener, the plugin did");
    let steps: Value = match &c["flow_path"] {
        Value::String(s) => serde_json::from_str(s)?,
        v => v.clone(),
    };
    assert!(steps[1]["error"].as_str().unwrap_or_default().starts_with("denied"), "{}", steps[1]);

    // the log: 100 lines of the flood and one counting the rest; the long line cut and escaped
    let logs = pbx.server.logs();
    assert!(logs.contains("line 99") && !logs.contains("line 100") && !logs.contains("line 999"), "the flood is capped");
    assert_eq!(logs.matches("900 more log lines dropped").count(), 1);
    assert!(logs.contains(r"first\nERROR forged line\r\u{1b}[31m0123456789"), "the long line is escaped");
    assert!(!logs.lines().any(|l| l.starts_with("ERROR forged")), "no forged line");
    let long = logs.lines().find(|l| l.contains("first\\nERROR forged")).context("the long line")?;
    let start = long.find("first").context("the message")?;
    let end = long.find('…').context("the message is cut")?;
    assert!(end - start <= 1024, "{} bytes", end - start);
    assert!(!logs.contains(&"0123456789".repeat(110)));

    // the network grant taken back: the next call's plugin is refused
    let r = pbx.admin.put(&format!("/plugins/{plugin}"), &json!({"granted_networks": []})).await?;
    anyhow::ensure!(r.status == 200, "{}", r.text);
    let cdrs = call(&pbx, 2).await?;
    let refused = p(&[("in", "next"), ("hook", "error"), ("fetch", "was_denied")]);
    assert!(cdrs.iter().any(|c| path(c).starts_with(&refused)), "a call whose plugin was refused: {cdrs:?}");
    assert_eq!(seen.lock().unwrap().len(), 1, "nothing more reached the listener");
    assert!(pbx.server.logs().contains("127.0.0.1 is a loopback address and no granted network holds it"));
    Ok(())
}
