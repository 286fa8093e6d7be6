//! Plugin and webhook HTTP egress against local listeners, through the live client
//! (`ReqwestClient`): a non-public address is refused unless a granted network holds it, a
//! name is resolved once and only the checked addresses are connected to, ports other than
//! 80 and 443 need a grant, redirects are not followed, responses are cut off at 1 MiB. The
//! plugin path is the `http` import as `nodes/testing/misbehave` uses it; the built-in path
//! is the webhook node. Only 127.x addresses are used.

mod common;
use async_trait::async_trait;
use common::*;
use flow::egress::{parse_network, Egress};
use flow::services::{ReqwestClient, Resolver, SystemResolver};
use flow::sim::{Script, SimCall};
use flow::trace::Trace;
use flow::types::{Capability, PluginGrants};
use flow::{Engine, Limits};
use serde_json::{json, Value};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Resolves `allowed.test` to `first` the first time and to `then` afterwards (a name
/// rebinding between a check and a connection), counting the lookups; other names through
/// the system (`localhost`).
struct Rebinding {
    first: IpAddr,
    then: IpAddr,
    asked: AtomicUsize,
}

#[async_trait]
impl Resolver for Rebinding {
    async fn lookup(&self, name: &str) -> Result<Vec<IpAddr>, std::io::Error> {
        if name != "allowed.test" {
            return SystemResolver.lookup(name).await;
        }
        let n = self.asked.fetch_add(1, Ordering::SeqCst);
        Ok(vec![if n == 0 { self.first } else { self.then }])
    }
}

fn resolver(first: &str, then: &str) -> Arc<Rebinding> {
    Arc::new(Rebinding { first: first.parse().unwrap(), then: then.parse().unwrap(), asked: AtomicUsize::new(0) })
}

/// A listener answering every connection with `response` (then closing): how many
/// connections it took, and whether writing a response ever failed (the client hung up).
struct Listener {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    write_failed: Arc<AtomicBool>,
}

impl Listener {
    fn port(&self) -> u16 {
        self.addr.port()
    }
    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn listen_on(addr: &str, head: &str, body_bytes: usize) -> Listener {
    let l = tokio::net::TcpListener::bind(addr).await.expect("bind");
    let addr = l.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let write_failed = Arc::new(AtomicBool::new(false));
    let (h, w, head) = (hits.clone(), write_failed.clone(), head.as_bytes().to_vec());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            h.fetch_add(1, Ordering::SeqCst);
            let (w, head) = (w.clone(), head.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let _ = s.read(&mut buf).await;
                let mut r = s.write_all(&head).await;
                let chunk = vec![b'x'; 64 << 10];
                let mut sent = 0;
                while r.is_ok() && sent < body_bytes {
                    r = s.write_all(&chunk[..chunk.len().min(body_bytes - sent)]).await;
                    sent += chunk.len();
                }
                if r.is_err() {
                    w.store(true, Ordering::SeqCst);
                }
                let _ = s.shutdown().await;
            });
        }
    });
    Listener { addr, hits, write_failed }
}

const OK: &str = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 16\r\nconnection: close\r\n\r\n{\"route\": \"vip\"}";

async fn listen(head: &str) -> Listener {
    listen_on("127.0.0.1:0", head, 0).await
}

fn live_engine(resolver: Arc<dyn Resolver>, limits: Limits) -> Engine {
    let mut s = services(vec![]);
    s.http = Arc::new(ReqwestClient::with_resolver(resolver).expect("client"));
    engine_with(s, limits)
}

/// An engine with misbehave installed with these capabilities, networks and ports.
fn plugin_engine(resolver: Arc<dyn Resolver>, caps: &[&str], networks: &[&str], ports: &[u16]) -> Engine {
    let e = live_engine(resolver, limits());
    let grants = PluginGrants {
        capabilities: caps.iter().map(|c| c.parse::<Capability>().unwrap()).collect(),
        egress: Egress { networks: networks.iter().map(|n| parse_network(n).unwrap()).collect(), ports: ports.to_vec() },
    };
    e.install_plugin(&test_component("test_misbehave"), &grants).expect("misbehave installs");
    e
}

/// entry → `node` → each of `outputs` and `error` to a prompt of its own, then hang up.
fn flow_of(node_type: &str, config: Value, outputs: &[&str]) -> Value {
    let mut nodes = vec![
        json!({"id": "in", "type": "inbound_number", "data": {}}),
        json!({"id": "x", "type": node_type, "data": {"config": config}}),
        json!({"id": "bye", "type": "hangup", "data": {}}),
    ];
    let mut edges = vec![json!({"id": "e-in", "source": "in", "sourceHandle": "next", "target": "x"})];
    for o in outputs.iter().chain(std::iter::once(&"error")) {
        nodes.push(json!({"id": format!("o_{o}"), "type": "play_message", "data": {"config": {"prompt": format!("after/{o}")}}}));
        edges.push(json!({"id": format!("e-{o}"), "source": "x", "sourceHandle": o, "target": format!("o_{o}")}));
        edges.push(json!({"id": format!("e-{o}-bye"), "source": format!("o_{o}"), "sourceHandle": "next", "target": "bye"}));
    }
    json!({ "nodes": nodes, "edges": edges })
}

async fn run(e: &Engine, g: Value) -> Trace {
    let flow = e.prepare(1, 1, graph(g)).await.expect("flow prepares");
    let s: Script = script(json!({"caller": {"number": "+61400000001"}, "prompt_ms": 10}));
    let call = Arc::new(SimCall::new(Arc::new(s)).expect("call"));
    e.run_call(flow, "in", call).await
}

/// misbehave GETting `url`: (its output, its log lines and error as one text).
async fn fetch(e: &Engine, url: &str) -> (String, String) {
    let t = run(e, flow_of("test/misbehave", json!({"do": "fetch", "url": url}), &["ok", "was_denied"])).await;
    outcome(&t)
}

fn outcome(t: &Trace) -> (String, String) {
    let step = t.steps.iter().find(|s| s.node_id == "x").expect("the node ran");
    let mut text: Vec<String> = step.logs.iter().map(|l| format!("{}: {}", l.level, l.message)).collect();
    text.extend(step.error.clone());
    (step.output.clone().unwrap_or_else(|| "-".into()), text.join("\n"))
}

// ---------------------------------------------------------------- the http import (plugins)

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_listener_is_refused_without_a_network_grant() {
    let l = listen(OK).await;
    let e = plugin_engine(Arc::new(SystemResolver), &["http:127.0.0.1"], &[], &[l.port()]);
    let (out, text) = fetch(&e, &format!("http://127.0.0.1:{}/", l.port())).await;
    assert_eq!(out, "was_denied", "{text}");
    assert!(text.contains("127.0.0.1 is a loopback address and no granted network holds it"), "{text}");
    assert_eq!(l.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_network_and_the_port_granted_the_listener_is_reached() {
    let l = listen(OK).await;
    let e = plugin_engine(Arc::new(SystemResolver), &["http:127.0.0.1"], &["127.0.0.0/8"], &[l.port()]);
    let (out, text) = fetch(&e, &format!("http://127.0.0.1:{}/", l.port())).await;
    assert_eq!(out, "ok", "{text}");
    assert!(text.contains("status 200 body 16 bytes"), "{text}");
    assert_eq!(l.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_other_than_80_and_443_is_refused_without_a_grant() {
    let l = listen(OK).await;
    let e = plugin_engine(Arc::new(SystemResolver), &["http:127.0.0.1"], &["127.0.0.0/8"], &[]);
    let (out, text) = fetch(&e, &format!("http://127.0.0.1:{}/", l.port())).await;
    assert_eq!(out, "was_denied", "{text}");
    assert!(text.contains(&format!("port {} was not granted", l.port())), "{text}");
    assert_eq!(l.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_resolves_to_loopback_is_refused() {
    let l = listen(OK).await;
    // `localhost` through the system's resolver, `allowed.test` through the test's
    let e = plugin_engine(resolver("127.0.0.1", "127.0.0.1"), &["http:localhost", "http:allowed.test"], &[], &[l.port()]);
    let (out, text) = fetch(&e, &format!("http://localhost:{}/", l.port())).await;
    assert_eq!(out, "was_denied", "{text}");
    assert!(text.contains("localhost: ") && text.contains("loopback"), "{text}");
    let (out, text) = fetch(&e, &format!("http://allowed.test:{}/", l.port())).await;
    assert_eq!(out, "was_denied", "{text}");
    assert!(text.contains("allowed.test: 127.0.0.1 is a loopback address"), "{text}");
    assert_eq!(l.hits(), 0);

    // the same name, its network granted: reached
    let e = plugin_engine(resolver("127.0.0.1", "127.0.0.1"), &["http:allowed.test"], &["127.0.0.1"], &[l.port()]);
    let (out, text) = fetch(&e, &format!("http://allowed.test:{}/", l.port())).await;
    assert_eq!(out, "ok", "{text}");
    assert_eq!(l.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_address_checked_is_the_address_connected_to() {
    // DNS rebinding: the name answers a granted address when checked and another one on any
    // later lookup. Only 127.0.0.1 is granted; a listener waits on 127.0.0.2 as well.
    let granted = listen(OK).await;
    let other = listen_on(&format!("127.0.0.2:{}", granted.port()), OK, 0).await;
    let r = resolver("127.0.0.1", "127.0.0.2");
    let e = plugin_engine(r.clone(), &["http:allowed.test"], &["127.0.0.1/32"], &[granted.port()]);
    for _ in 0..3 {
        let (out, text) = fetch(&e, &format!("http://allowed.test:{}/", granted.port())).await;
        assert!(out == "ok" || out == "was_denied", "{text}");
    }
    assert_eq!(granted.hits(), 1, "the first request, checked against 127.0.0.1, went there");
    assert_eq!(other.hits(), 0, "no request reached the address the name moved to");
    assert_eq!(r.asked.load(Ordering::SeqCst), 3, "one lookup per request, nothing behind it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_not_followed() {
    let target = listen(OK).await;
    let hop = listen(&format!("HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:{}/\r\ncontent-length: 0\r\nconnection: close\r\n\r\n", target.port())).await;
    let e = plugin_engine(Arc::new(SystemResolver), &["http:127.0.0.1"], &["127.0.0.0/8"], &[hop.port(), target.port()]);
    let (out, text) = fetch(&e, &format!("http://127.0.0.1:{}/", hop.port())).await;
    assert_eq!(out, "ok", "{text}");
    assert!(text.contains("status 302"), "{text}");
    assert_eq!((hop.hits(), target.hits()), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_response_is_cut_off() {
    // 64 MiB without a length: the client stops reading after 1 MiB and hangs up, so the
    // server cannot write it all.
    let l = listen_on("127.0.0.1:0", "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n", 64 << 20).await;
    let e = plugin_engine(Arc::new(SystemResolver), &["http:127.0.0.1"], &["127.0.0.0/8"], &[l.port()]);
    let (out, text) = fetch(&e, &format!("http://127.0.0.1:{}/", l.port())).await;
    assert_eq!(out, "error", "{text}");
    assert!(text.contains("TooLarge"), "{text}");
    for _ in 0..100 {
        if l.write_failed.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(l.write_failed.load(Ordering::SeqCst), "the server sent all 64 MiB");
}

// ---------------------------------------------------------------- the webhook (built-in)

fn webhook(url: &str) -> Value {
    flow_of("webhook", json!({"url": url, "field": "route", "routes": [{"value": "vip"}], "timeout_ms": 5000}), &["vip", "default", "timeout"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_cannot_reach_local_addresses_in_any_spelling() {
    let l = listen(OK).await;
    let p = l.port();
    // the port granted to built-ins, no network
    let e = live_engine(Arc::new(SystemResolver), Limits { builtin_egress: Egress { networks: vec![], ports: vec![p] }, ..limits() });
    for url in [
        format!("http://127.0.0.1:{p}/"),
        format!("http://localhost:{p}/"),
        format!("http://0.0.0.0:{p}/"),
        format!("http://[::ffff:127.0.0.1]:{p}/"),
        format!("http://[::ffff:7f00:1]:{p}/"),
        format!("http://2130706433:{p}/"),
        format!("http://0x7f.1:{p}/"),
        format!("http://127.1:{p}/"),
        format!("http://[::1]:{p}/"),
    ] {
        let (out, text) = outcome(&run(&e, webhook(&url)).await);
        assert_eq!(out, "error", "{url}: {text}");
        assert!(text.contains("denied"), "{url}: {text}");
    }
    assert_eq!(l.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_reaches_what_the_engine_grants_built_ins() {
    let l = listen(OK).await;
    let p = l.port();
    let e = live_engine(
        Arc::new(SystemResolver),
        Limits { builtin_egress: Egress { networks: vec![parse_network("127.0.0.0/8").unwrap()], ports: vec![p] }, ..limits() },
    );
    let (out, text) = outcome(&run(&e, webhook(&format!("http://127.0.0.1:{p}/"))).await);
    assert_eq!(out, "vip", "{text}");
    assert_eq!(l.hits(), 1);
    // the network without the port: refused
    let e = live_engine(
        Arc::new(SystemResolver),
        Limits { builtin_egress: Egress { networks: vec![parse_network("127.0.0.0/8").unwrap()], ports: vec![] }, ..limits() },
    );
    let (out, text) = outcome(&run(&e, webhook(&format!("http://127.0.0.1:{p}/"))).await);
    assert_eq!(out, "error", "{text}");
    assert!(text.contains(&format!("port {p} was not granted")), "{text}");
    assert_eq!(l.hits(), 1);
}
