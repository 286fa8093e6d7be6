//! Host tests with a misbehaving component (`nodes/testing/misbehave`): every limit and every
//! capability holds, and the call continues on its error path — each while another call
//! runs alongside, unaffected. Real time, multi-threaded runtime.

mod common;
use common::*;
use flow::sim::{CannedHttp, CannedResponse, Script, SimCall};
use flow::trace::{Outcome, Trace};
use flow::types::{Capability, PluginGrants};
use flow::{Engine, PreparedFlow};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn engine_for(grants: &[Capability]) -> Engine {
    engine_limited(grants, limits())
}

/// The engine with `limits`, misbehave installed with `grants`, and canned HTTP for
/// `allowed.test`: `/slow` answers after a minute, the rest at once.
fn engine_limited(grants: &[Capability], limits: flow::Limits) -> Engine {
    let mut s = services(vec![]);
    let canned = |url: &str, delay_ms: u64| CannedResponse {
        method: None,
        url: url.into(),
        status: 200,
        headers: Default::default(),
        body: json!({"ok": true}),
        delay_ms,
    };
    s.http = Arc::new(CannedHttp::new(vec![canned("https://allowed.test/slow", 60_000), canned("https://allowed.test/*", 0)]));
    let e = engine_with(s, limits);
    e.install_plugin(&test_component("test_misbehave"), &PluginGrants::of(grants)).expect("misbehave installs");
    e
}

/// misbehave fetching `https://allowed.test/slow` with a 30 s timeout.
fn slow_fetch() -> serde_json::Value {
    let mut g = bad_flow("fetch", true);
    g["nodes"][1]["data"]["config"] = json!({"do": "fetch", "url": "https://allowed.test/slow", "timeout_ms": 30_000});
    g
}

/// entry → misbehave(do) → ok / was_denied / error each lead to a distinct message, then
/// hang up.
fn bad_flow(what: &str, error_edge: bool) -> serde_json::Value {
    let mut edges = vec![
        json!({"id": "e1", "source": "in", "sourceHandle": "next", "target": "bad"}),
        json!({"id": "e2", "source": "bad", "sourceHandle": "ok", "target": "said_ok"}),
        json!({"id": "e3", "source": "bad", "sourceHandle": "was_denied", "target": "said_denied"}),
        json!({"id": "e5", "source": "said_ok", "sourceHandle": "next", "target": "bye"}),
        json!({"id": "e6", "source": "said_denied", "sourceHandle": "next", "target": "bye"}),
        json!({"id": "e7", "source": "said_error", "sourceHandle": "next", "target": "bye"}),
    ];
    if error_edge {
        edges.push(json!({"id": "e4", "source": "bad", "sourceHandle": "error", "target": "said_error"}));
    }
    json!({
        "nodes": [
            {"id": "in", "type": "inbound_number", "data": {}},
            {"id": "bad", "type": "test/misbehave", "data": {"config": {"do": what}}},
            {"id": "said_ok", "type": "play_message", "data": {"config": {"prompt": "ok"}}},
            {"id": "said_denied", "type": "play_message", "data": {"config": {"prompt": "denied"}}},
            {"id": "said_error", "type": "play_message", "data": {"config": {"prompt": "error-path"}}},
            {"id": "bye", "type": "hangup", "data": {}}
        ],
        "edges": edges
    })
}

/// A well-behaved flow that takes a while: node `c` spends 300 ms waiting in host calls (three
/// 100 ms prompts) in one run — six times its 50 ms CPU budget, which waiting does not use.
fn good_flow() -> serde_json::Value {
    json!({
        "nodes": [
            {"id": "in", "type": "inbound_number", "data": {}},
            {"id": "a", "type": "play_message", "data": {"config": {"prompt": "short"}}},
            {"id": "b", "type": "set_caller_id", "data": {"config": {"name": "VIP: ", "mode": "prepend"}}},
            {"id": "c", "type": "play_message", "data": {"config": {"prompt": "short", "repeat": 3}}},
            {"id": "bye", "type": "hangup", "data": {}}
        ],
        "edges": [
            {"id": "e1", "source": "in", "sourceHandle": "next", "target": "a"},
            {"id": "e2", "source": "a", "sourceHandle": "next", "target": "b"},
            {"id": "e3", "source": "b", "sourceHandle": "next", "target": "c"},
            {"id": "e4", "source": "c", "sourceHandle": "next", "target": "bye"}
        ]
    })
}

fn call(prompts: serde_json::Value) -> Arc<SimCall> {
    let s: Script = script(json!({ "caller": {"number": "+61400000001", "name": "Ann"}, "prompts": prompts, "prompt_ms": 100 }));
    Arc::new(SimCall::new(Arc::new(s)).expect("call"))
}

async fn prepare(e: &Engine, id: i64, g: serde_json::Value) -> Arc<PreparedFlow> {
    e.prepare(id, 1, graph(g)).await.expect("flow prepares")
}

/// Runs the bad flow and the good one at the same time; checks the good one was untouched
/// and returns the bad one's trace and how long it took.
async fn alongside(e: &Engine, bad: serde_json::Value, prompts: serde_json::Value) -> (Trace, Duration) {
    let bad = prepare(e, 1, bad).await;
    let good = prepare(e, 2, good_flow()).await;
    let (e1, e2) = (e.clone(), e.clone());
    let bad_call = call(prompts);
    let good_call = call(json!({}));
    let t0 = Instant::now();
    let b = tokio::spawn(async move {
        let t = e1.run_call(bad, "in", bad_call).await;
        (t, t0.elapsed())
    });
    let g = tokio::spawn({
        let gc = good_call.clone();
        async move { e2.run_call(good, "in", gc).await }
    });
    let (bad_trace, took) = b.await.expect("bad call task");
    let good_trace = g.await.expect("good call task");
    assert_eq!(
        good_trace.path(),
        p(&[("in", "next"), ("a", "next"), ("b", "next"), ("c", "next"), ("bye", "")]),
        "the other call was affected: {good_trace:#?}"
    );
    assert_eq!(good_trace.outcome, Outcome::HungUp { cause: flow::control::HangupCause::Normal });
    assert!(good_trace.steps.iter().all(|s| s.error.is_none()));
    let ev = events_of(&good_call);
    assert!(ev.iter().any(|e| e == "caller_id +61400000001 (VIP: Ann)"), "{ev:?}");
    (bad_trace, took)
}

fn events_of(c: &SimCall) -> Vec<String> {
    c.events().into_iter().map(|e| if e.detail.is_empty() { e.event } else { format!("{} {}", e.event, e.detail) }).collect()
}

fn error_of(t: &Trace) -> String {
    t.steps.iter().find(|s| s.node_id == "bad").and_then(|s| s.error.clone()).unwrap_or_default()
}

fn took_error_path(t: &Trace) {
    assert_eq!(t.path(), p(&[("in", "next"), ("bad", "error"), ("said_error", "next"), ("bye", "")]), "{t:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_loop_is_stopped_by_the_cpu_budget() {
    let e = engine_for(&[]);
    let (t, took) = alongside(&e, bad_flow("loop", true), json!({})).await;
    took_error_path(&t);
    assert!(error_of(&t).contains("CPU budget"), "{}", error_of(&t));
    // Stopped by the CPU budget (50 ms), not by the node's 1 s wall clock.
    assert!(took < Duration::from_millis(900), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn growing_memory_past_the_cap_fails_the_node() {
    let e = engine_for(&[]);
    let (t, _) = alongside(&e, bad_flow("grow", true), json!({})).await;
    took_error_path(&t);
    assert!(error_of(&t).contains("memory limit of 16777216 bytes"), "{}", error_of(&t));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stack_overflow_fails_the_node() {
    let e = engine_for(&[]);
    let (t, _) = alongside(&e, bad_flow("stack", true), json!({})).await;
    took_error_path(&t);
    assert!(error_of(&t).contains("stack overflow"), "{}", error_of(&t));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_is_a_trap_on_the_error_path() {
    let e = engine_for(&[]);
    let (t, _) = alongside(&e, bad_flow("trap", true), json!({})).await;
    took_error_path(&t);
    assert!(error_of(&t).starts_with("trap"), "{}", error_of(&t));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undeclared_output_takes_the_error_path() {
    let e = engine_for(&[]);
    let (t, _) = alongside(&e, bad_flow("undeclared", true), json!({})).await;
    took_error_path(&t);
    assert!(error_of(&t).contains("\"no_such_output\""), "{}", error_of(&t));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_in_a_host_call_is_cut_by_the_wall_clock() {
    // An HTTP request the server never answers (within its 30 s timeout) is the node's own
    // time: cut by the 1 s it asked for.
    let e = engine_for(&[Capability::Http("allowed.test".into())]);
    let (t, took) = alongside(&e, slow_fetch(), json!({})).await;
    took_error_path(&t);
    assert!(error_of(&t).contains("wall-clock limit of 1s"), "{}", error_of(&t));
    assert!(took >= Duration::from_secs(1) && took < Duration::from_secs(10), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_asking_for_more_wall_clock_than_the_host_allows_gets_the_hosts() {
    // misbehave asks for 1 s; this host allows 300 ms.
    let e = engine_limited(&[Capability::Http("allowed.test".into())], flow::Limits { wall_clock: Duration::from_millis(300), ..limits() });
    let info = e.node_types().into_iter().find(|t| t.id == "test/misbehave").unwrap();
    assert_eq!(info.wall_clock_ms, 300);
    let (t, took) = alongside(&e, slow_fetch(), json!({})).await;
    took_error_path(&t);
    assert!(error_of(&t).contains("wall-clock limit of 300ms"), "{}", error_of(&t));
    assert!(took < Duration::from_secs(1), "took {took:?}");
    // asking for less than the host's limit gets what was asked
    assert_eq!(engine_for(&[]).node_types().into_iter().find(|t| t.id == "test/misbehave").unwrap().wall_clock_ms, 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_on_the_caller_is_not_the_nodes_own_time() {
    // A 1.5 s prompt in a node with 1 s of its own: the prompt waits on the caller.
    let e = engine_for(&[]);
    let (t, took) = alongside(&e, bad_flow("hang", true), json!({"test/hang": 1500})).await;
    assert_eq!(t.path()[1], ("bad".to_string(), "ok".to_string()), "{t:#?}");
    assert!(took >= Duration::from_millis(1500), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_total_limit_ends_a_run_that_waits_on_the_caller_forever() {
    let e = engine_limited(&[], flow::Limits { max_wall_clock: Duration::from_secs(2), ..limits() });
    let (t, took) = alongside(&e, bad_flow("hang", true), json!({"test/hang": 3_600_000})).await;
    took_error_path(&t);
    assert!(error_of(&t).contains("wall-clock limit of 2s"), "{}", error_of(&t));
    assert!(took >= Duration::from_secs(2) && took < Duration::from_secs(10), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities_not_granted_are_denied_to_the_guest() {
    let e = engine_for(&[]);
    for what in ["http", "kv", "directory", "external", "voicemail"] {
        let (t, _) = alongside(&e, bad_flow(what, true), json!({})).await;
        assert_eq!(t.path()[1], ("bad".to_string(), "was_denied".to_string()), "{what}: {t:#?}");
        let logs = &t.steps[1].logs;
        assert!(logs.iter().any(|l| l.level == "warn" && l.message.starts_with("denied")), "{what}: {logs:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn granted_capabilities_work_and_only_for_the_granted_host() {
    let e = engine_for(&[Capability::Http("allowed.test".into()), Capability::Kv, Capability::Directory, Capability::Voicemail]);
    for (what, out) in
        [("http", "ok"), ("kv", "ok"), ("directory", "ok"), ("http_other_host", "was_denied"), ("voicemail", "was_denied"), ("external", "was_denied")]
    {
        let (t, _) = alongside(&e, bad_flow(what, true), json!({})).await;
        assert_eq!(t.path()[1], ("bad".to_string(), out.to_string()), "{what}: {t:#?}");
    }
    let info = e.node_types().into_iter().find(|t| t.id == "test/misbehave").unwrap();
    // Voicemail was granted but never asked for: not held.
    assert_eq!(info.granted, vec![Capability::Http("allowed.test".into()), Capability::Kv, Capability::Directory]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_error_edge_the_caller_hears_sorry_and_is_hung_up() {
    let e = engine_for(&[]);
    let bad = prepare(&e, 1, bad_flow("trap", false)).await;
    let c = call(json!({}));
    let t = e.run_call(bad, "in", c.clone()).await;
    assert_eq!(t.path(), p(&[("in", "next"), ("bad", "-")]));
    assert!(matches!(&t.outcome, Outcome::Failed { reason } if reason.starts_with("trap")), "{:?}", t.outcome);
    let ev = events_of(&c);
    assert_eq!(ev[ev.len() - 2..], ["play system/sorry (100 ms)".to_string(), "hangup Normal".to_string()], "{ev:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_error_edge_the_flow_fallback_node_takes_the_call_once() {
    let e = engine_for(&[]);
    let mut g = bad_flow("trap", false);
    g["settings"] = json!({"fallback_node": "said_error"});
    let t = e.run_call(prepare(&e, 1, g).await, "in", call(json!({}))).await;
    assert_eq!(t.path(), p(&[("in", "next"), ("bad", "-"), ("said_error", "next"), ("bye", "")]));

    // The fallback failing too ends with the sorry prompt, not a loop.
    let mut g = bad_flow("trap", false);
    g["settings"] = json!({"fallback_node": "bad"});
    let c = call(json!({}));
    let t = e.run_call(prepare(&e, 3, g).await, "in", c.clone()).await;
    assert_eq!(t.path(), p(&[("in", "next"), ("bad", "-"), ("bad", "-")]));
    assert!(matches!(t.outcome, Outcome::Failed { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_are_capped() {
    let e = engine_for(&[]);
    let (t, _) = alongside(&e, bad_flow("log_flood", true), json!({})).await;
    let logs = &t.steps[1].logs;
    assert_eq!(logs.len(), 101);
    assert_eq!(logs[99].message, "line 99");
    assert_eq!(logs[100].message, "900 more log lines dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_log_line_is_cut_and_cannot_forge_lines() {
    let e = engine_for(&[]);
    let (t, _) = alongside(&e, bad_flow("log_long", true), json!({})).await;
    let logs = &t.steps[1].logs;
    assert_eq!(logs.len(), 1);
    let m = &logs[0].message;
    assert!(m.len() <= 1024 + 3 && m.ends_with('…'), "{} bytes", m.len());
    assert!(m.starts_with("first\\nERROR forged line\\r\\u{1b}[31m"), "{m}");
    assert!(!m.chars().any(char::is_control), "{m:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_error_is_cut_and_cannot_forge_lines() {
    let e = engine_for(&[]);
    let (t, _) = alongside(&e, bad_flow("fail_long", true), json!({})).await;
    took_error_path(&t);
    let m = error_of(&t);
    assert!(m.len() < 1100, "{} bytes", m.len());
    assert!(m.starts_with("failed: bad\\nERROR forged x"), "{m}");
    assert!(!m.chars().any(char::is_control));
}

#[test]
fn a_flow_that_never_stops_is_ended_by_the_step_limit() {
    let e = engine();
    // Two play-message nodes in a loop: valid (they wait for the caller), but endless.
    let r = simulate(
        &e,
        json!({
            "nodes": [
                {"id": "in", "type": "inbound_number", "data": {}},
                {"id": "a", "type": "play_message", "data": {"config": {"prompt": "x"}}},
                {"id": "b", "type": "play_message", "data": {"config": {"prompt": "y"}}}
            ],
            "edges": [
                {"id": "e1", "source": "in", "sourceHandle": "next", "target": "a"},
                {"id": "e2", "source": "a", "sourceHandle": "next", "target": "b"},
                {"id": "e3", "source": "b", "sourceHandle": "next", "target": "a"}
            ]
        }),
        json!({"prompt_ms": 10}),
    );
    assert_eq!(r.trace.steps.len(), 201);
    assert_eq!(r.trace.steps[200].error.as_deref(), Some("node run limit (200 per call) reached"));
    assert!(matches!(&r.trace.outcome, Outcome::Failed { reason } if reason.contains("node run limit")));
}

#[test]
fn uploads_are_checked() {
    let e = engine();
    let m = flow::tooling::inspect_plugin(&e, &test_component("test_misbehave")).expect("a valid plugin");
    assert_eq!(m.info.id, "test/misbehave");
    assert_eq!(m.world_version, "0.1.0");
    assert_eq!(m.sha256.len(), 64);
    assert_eq!(
        m.requested(),
        &[
            Capability::Http("allowed.test".into()),
            Capability::Http("127.0.0.1".into()),
            Capability::Http("localhost".into()),
            Capability::Kv,
            Capability::Directory
        ]
    );
    assert!(m.info.granted.is_empty());

    let refuse = |bytes: &[u8]| flow::tooling::inspect_plugin(&e, bytes).unwrap_err().to_string();
    assert!(refuse(b"\0asm\x01\0\0\0").contains("core wasm module"));
    assert!(refuse(b"hello").contains("not a WebAssembly component"));
    // A built-in id is not a plugin id.
    assert!(refuse(&test_component("node_hangup")).contains("vendor/name"));
    let small = engine_with(services(vec![]), flow::Limits { max_plugin_bytes: 1000, ..limits() });
    assert!(flow::tooling::inspect_plugin(&small, &test_component("test_misbehave")).unwrap_err().to_string().contains("limit is 1000"));
}
