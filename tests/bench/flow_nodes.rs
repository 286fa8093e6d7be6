//! Flow engine benchmark: `cargo bench -p flow --bench flow_nodes` (release build).
//!
//! 1. Per built-in node: one run instantiated from the flow's `InstancePre` (a fresh store and
//!    instance from the pooling allocator, `run()` with its config and entity JSON, its host
//!    calls answered at once by an instant call), p50/p99 µs; beside the same node's Rust
//!    code compiled natively (the node crates are linked into this benchmark) running against
//!    a native host that answers the same way, and the Wasm/native ratio.
//! 2. A 10-node flow walked end to end (the walk alone with an instant call, and a full
//!    simulation: scripted call, virtual clock, its own runtime — what `flow simulate` does).
//! 3. Node runs per second on one core.
//!
//! Goals (issue 5): p99 ≤ 20 µs for a trivial node, ≤ 200 µs for the 10-node flow.
//! Options: `--iterations N` (default 5000).

use async_trait::async_trait;
use flow::control::*;
use flow::entity::{ConferenceBridge, Entity, EntityCache, EntityKind, VoicemailBox};
use flow::graph::Graph;
use flow::services::{HttpClient, HttpError, HttpRequest, HttpResponse, MemoryKv, Services, StaticDirectory};
use flow::sim::{Script, SimTarget};
use flow::{Engine, EngineConfig, Limits, PreparedFlow};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

// ------------------------------------------------------------------ an instant call

/// Every operation completes at once: a digit `1` is always pressed, phones answer (or not,
/// per `answer`), recordings are stored.
struct InstantCall {
    answer: bool,
}

#[async_trait]
impl CallControl for InstantCall {
    fn call_id(&self) -> &str {
        "bench-call-0001"
    }
    fn caller(&self) -> Party {
        Party { number: "+61400000001".into(), name: Some("Ann".into()) }
    }
    fn dialled(&self) -> &str {
        "+61299990000"
    }
    fn now(&self) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_798_189_200).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
    }
    fn is_answered(&self) -> bool {
        true
    }
    async fn answer(&self) -> Result<(), CallError> {
        Ok(())
    }
    async fn play(&self, _: &str) -> Result<(), CallError> {
        Ok(())
    }
    async fn say(&self, _: &str) -> Result<(), CallError> {
        Ok(())
    }
    async fn next_digit(&self) -> Result<char, CallError> {
        Ok('1')
    }
    async fn collect_digits(&self, _: &CollectOptions) -> Result<Collected, CallError> {
        Ok(Collected { digits: "1".into(), ended_by: CollectEnd::MaxDigits })
    }
    async fn ring(&self, t: &[Target], _: &RingOptions) -> Result<RingOutcome, CallError> {
        Ok(if self.answer { RingOutcome::Answered(t[0].describe()) } else { RingOutcome::NoAnswer })
    }
    async fn voicemail(&self, _: &VoicemailBox, _: &VoicemailOptions) -> Result<VoicemailOutcome, CallError> {
        Ok(VoicemailOutcome { recorded: true, duration: Duration::from_secs(10) })
    }
    async fn transfer(&self, _: &Target) -> Result<(), CallError> {
        Ok(())
    }
    async fn hangup(&self, _: HangupCause) -> Result<(), CallError> {
        Ok(())
    }
    async fn set_caller_id(&self, _: &Party) -> Result<(), CallError> {
        Ok(())
    }
    async fn conference(&self, _: &ConferenceBridge, _: &ConferenceOptions) -> Result<ConferenceOutcome, CallError> {
        Ok(ConferenceOutcome { duration: Duration::from_secs(60) })
    }
}

const ROUTE_BODY: &str = r#"{"route":"sales","customer":{"id":42}}"#;

struct InstantHttp;

#[async_trait]
impl HttpClient for InstantHttp {
    async fn send(&self, _: HttpRequest) -> Result<HttpResponse, HttpError> {
        Ok(HttpResponse { status: 200, headers: vec![], body: ROUTE_BODY.as_bytes().to_vec() })
    }
}

// ------------------------------------------------------------------ the native host

/// The same answers as [`InstantCall`], for the nodes' Rust code compiled natively.
struct NativeHost {
    vars: Vec<(String, String)>,
    answer: bool,
}

impl sdk::Host for NativeHost {
    fn info(&mut self) -> sdk::types::CallInfo {
        sdk::types::CallInfo {
            call_id: "bench-call-0001".into(),
            caller: sdk::types::Party { number: "+61400000001".into(), name: Some("Ann".into()) },
            dialled: "+61299990000".into(),
            flow_id: 1,
            flow_version: 1,
            entry_node: "in".into(),
            node_id: "x".into(),
            answered: true,
            variables: self.vars.clone(),
        }
    }
    fn answer(&mut self) -> Result<(), sdk::NodeError> {
        Ok(())
    }
    fn play(&mut self, _: &str) -> Result<(), sdk::NodeError> {
        Ok(())
    }
    fn say(&mut self, _: &str) -> Result<(), sdk::NodeError> {
        Ok(())
    }
    fn collect_digits(&mut self, _: &sdk::call::CollectOptions) -> Result<sdk::call::Collected, sdk::NodeError> {
        Ok(sdk::call::Collected { digits: "1".into(), ended_by: sdk::call::CollectEnd::MaxDigits })
    }
    fn ring(&mut self, _: &[sdk::types::Destination], _: &sdk::call::RingOptions) -> Result<sdk::call::RingResult, sdk::NodeError> {
        Ok(if self.answer { sdk::call::RingResult::Answered } else { sdk::call::RingResult::NoAnswer })
    }
    fn voicemail(&mut self, _: i64, _: sdk::call::VoicemailOptions) -> Result<sdk::call::VoicemailResult, sdk::NodeError> {
        Ok(sdk::call::VoicemailResult { recorded: true, duration_ms: 10_000 })
    }
    fn transfer(&mut self, _: &sdk::types::Destination) -> Result<(), sdk::NodeError> {
        Ok(())
    }
    fn hangup(&mut self, _: sdk::call::HangupCause) -> Result<(), sdk::NodeError> {
        Ok(())
    }
    fn set_caller_id(&mut self, _: &sdk::types::Party) -> Result<(), sdk::NodeError> {
        Ok(())
    }
    fn conference(&mut self, _: i64, _: sdk::call::ConferenceOptions) -> Result<sdk::call::ConferenceResult, sdk::NodeError> {
        Ok(sdk::call::ConferenceResult { duration_ms: 60_000 })
    }
    fn get_var(&mut self, name: &str) -> Option<String> {
        self.vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }
    fn set_var(&mut self, name: &str, value: &str) -> Result<(), sdk::NodeError> {
        self.vars.push((name.into(), value.into()));
        Ok(())
    }
    fn extension(&mut self, id: i64) -> Result<Option<sdk::directory::ExtensionInfo>, sdk::NodeError> {
        Ok(Some(sdk::directory::ExtensionInfo {
            id,
            number: format!("10{id}"),
            name: "x".into(),
            dnd: false,
            registered_devices: 1,
            in_call: false,
            idle_ms: None,
        }))
    }
    fn find_extension(&mut self, _: &str) -> Result<Option<sdk::directory::ExtensionInfo>, sdk::NodeError> {
        Ok(None)
    }
    fn now(&mut self, zone: &str) -> Result<sdk::clock::LocalTime, String> {
        // What the host's clock.now does: a tz database lookup and conversion.
        let tz = jiff::tz::TimeZone::get(zone).map_err(|e| e.to_string())?;
        let at = jiff::Timestamp::from_second(1_798_189_200).map_err(|e| e.to_string())?;
        let z = at.to_zoned(tz);
        Ok(sdk::clock::LocalTime {
            year: i32::from(z.year()),
            month: z.month() as u8,
            day: z.day() as u8,
            hour: z.hour() as u8,
            minute: z.minute() as u8,
            second: z.second() as u8,
            weekday: match z.weekday() {
                jiff::civil::Weekday::Monday => sdk::clock::Weekday::Monday,
                jiff::civil::Weekday::Tuesday => sdk::clock::Weekday::Tuesday,
                jiff::civil::Weekday::Wednesday => sdk::clock::Weekday::Wednesday,
                jiff::civil::Weekday::Thursday => sdk::clock::Weekday::Thursday,
                jiff::civil::Weekday::Friday => sdk::clock::Weekday::Friday,
                jiff::civil::Weekday::Saturday => sdk::clock::Weekday::Saturday,
                jiff::civil::Weekday::Sunday => sdk::clock::Weekday::Sunday,
            },
            utc_offset_s: z.offset().seconds(),
            unix_ms: at.as_millisecond(),
        })
    }
    fn http_send(&mut self, _: &sdk::http::Request) -> Result<sdk::http::Response, sdk::http::HttpError> {
        Ok(sdk::http::Response { status: 200, headers: vec![], body: ROUTE_BODY.as_bytes().to_vec() })
    }
    fn kv_get(&mut self, _: &str) -> Result<Option<Vec<u8>>, sdk::kv::KvError> {
        Ok(None)
    }
    fn kv_set(&mut self, _: &str, _: &[u8]) -> Result<(), sdk::kv::KvError> {
        Ok(())
    }
    fn kv_delete(&mut self, _: &str) -> Result<(), sdk::kv::KvError> {
        Ok(())
    }
    fn kv_increment(&mut self, _: &str, _: i64) -> Result<i64, sdk::kv::KvError> {
        Ok(7)
    }
    fn log(&mut self, _: sdk::log::Level, _: &str) {}
}

// ------------------------------------------------------------------ the cases

fn entity(kind: EntityKind, v: Value) -> Entity {
    Entity::from_json(kind, &v.to_string()).expect("bench entity")
}

fn entities() -> Vec<Entity> {
    let mut v = vec![
        entity(
            EntityKind::TimeSwitch,
            json!({"id": 1, "name": "Hours", "timezone": "Australia/Sydney",
            "rules": [{"id": "open", "label": "Open", "days": ["mon","tue","wed","thu","fri"], "start": "08:30", "end": "17:00"},
                      {"id": "sat", "label": "Saturday", "days": ["sat"], "start": "09:00", "end": "12:00"}],
            "overrides": [{"id": "holiday", "label": "Christmas", "date": "2026-12-25"}]}),
        ),
        entity(
            EntityKind::IvrMenu,
            json!({"id": 1, "name": "Main", "greeting_file": "ivr/main", "options": {"1": "Sales", "2": "Support", "3": "Accounts", "#": "Operator"}}),
        ),
        entity(EntityKind::RingGroup, json!({"id": 1, "name": "Sales", "strategy": "ring_all", "members": [1, 2, 3]})),
        entity(EntityKind::VoicemailBox, json!({"id": 1, "name": "After hours"})),
        entity(EntityKind::ConferenceBridge, json!({"id": 1, "name": "Standup"})),
    ];
    for i in 1..=3 {
        v.push(entity(EntityKind::Extension, json!({"id": i, "extension": format!("10{i}"), "name": format!("E{i}")})));
    }
    v
}

type Native = fn(&str, Option<(String, i64, String)>, &mut NativeHost) -> Result<String, sdk::NodeError>;

fn native<N: sdk::Node>(config: &str, ent: Option<(String, i64, String)>, host: &mut NativeHost) -> Result<String, sdk::NodeError> {
    let input = sdk::parse_input::<N::Config>(config, ent)?;
    N::run(input, host)
}

struct Case {
    name: &'static str,
    ty: &'static str,
    entity: Option<(EntityKind, i64)>,
    config: Value,
    native: Native,
}

fn cases() -> Vec<Case> {
    vec![
        Case { name: "hangup (trivial)", ty: "hangup", entity: None, config: json!({}), native: native::<node_hangup::Hangup> },
        Case { name: "play_message", ty: "play_message", entity: None, config: json!({"prompt": "welcome"}), native: native::<node_play_message::PlayMessage> },
        Case {
            name: "set_caller_id",
            ty: "set_caller_id",
            entity: None,
            config: json!({"name": "VIP: ", "mode": "prepend"}),
            native: native::<node_set_caller_id::SetCallerId>,
        },
        Case {
            name: "time_switch",
            ty: "time_switch",
            entity: Some((EntityKind::TimeSwitch, 1)),
            config: json!({}),
            native: native::<node_time_switch::TimeSwitch>,
        },
        Case { name: "ivr_menu", ty: "ivr_menu", entity: Some((EntityKind::IvrMenu, 1)), config: json!({}), native: native::<node_ivr_menu::IvrMenu> },
        Case {
            name: "ring_group",
            ty: "ring_group",
            entity: Some((EntityKind::RingGroup, 1)),
            config: json!({}),
            native: native::<node_ring_group::RingGroup>,
        },
        Case { name: "extension", ty: "extension", entity: Some((EntityKind::Extension, 1)), config: json!({}), native: native::<node_extension::Extension> },
        Case {
            name: "voicemail",
            ty: "voicemail",
            entity: Some((EntityKind::VoicemailBox, 1)),
            config: json!({}),
            native: native::<node_voicemail::Voicemail>,
        },
        Case { name: "transfer", ty: "transfer", entity: Some((EntityKind::Extension, 2)), config: json!({}), native: native::<node_transfer::Transfer> },
        Case {
            name: "webhook",
            ty: "webhook",
            entity: None,
            config: json!({"url": "https://crm.example.com/route", "field": "route", "routes": [{"value": "sales"}, {"value": "support"}], "variables": {"account": "customer.id"}}),
            native: native::<node_webhook::Webhook>,
        },
        Case {
            name: "conference",
            ty: "conference",
            entity: Some((EntityKind::ConferenceBridge, 1)),
            config: json!({}),
            native: native::<node_conference::Conference>,
        },
        Case { name: "queue (error path)", ty: "queue", entity: None, config: json!({}), native: native::<node_queue::Queue> },
    ]
}

// ------------------------------------------------------------------ measuring

fn percentiles(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort_unstable();
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1e6;
    (at(0.50), at(0.99))
}

fn graph_one(c: &Case) -> Graph {
    let mut data = json!({"config": c.config});
    if let Some((k, id)) = c.entity {
        data["entity_type"] = k.as_str().into();
        data["entity_id"] = id.into();
    }
    Graph::from_value(json!({
        "nodes": [{"id": "in", "type": "inbound_number", "data": {}}, {"id": "x", "type": c.ty, "data": data}],
        "edges": [{"id": "e", "source": "in", "sourceHandle": "next", "target": "x"}]
    }))
    .expect("graph")
}

fn ten_node_flow() -> Graph {
    let n = |id: &str, ty: &str, data: Value| json!({"id": id, "type": ty, "data": data});
    let e = |s: &str, h: &str, t: &str| json!({"id": format!("{s}-{h}"), "source": s, "sourceHandle": h, "target": t});
    Graph::from_value(json!({
        "nodes": [
            n("in", "inbound_number", json!({})),
            n("cid", "set_caller_id", json!({"config": {"name": "Main: ", "mode": "prepend"}})),
            n("ts", "time_switch", json!({"entity_type": "time_switch", "entity_id": 1})),
            n("hello", "play_message", json!({"config": {"prompt": "welcome"}})),
            n("hook", "webhook", json!({"config": {"url": "https://crm.example.com/route", "field": "route", "routes": [{"value": "sales"}]}})),
            n("menu", "ivr_menu", json!({"entity_type": "ivr_menu", "entity_id": 1})),
            n("ext", "extension", json!({"entity_type": "extension", "entity_id": 1})),
            n("vm", "voicemail", json!({"entity_type": "voicemail_box", "entity_id": 1})),
            n("thanks", "play_message", json!({"config": {"tts": "Thank you"}})),
            n("bye", "hangup", json!({}))
        ],
        "edges": [
            e("in", "next", "cid"), e("cid", "next", "ts"),
            e("ts", "open", "hello"), e("ts", "sat", "hello"), e("ts", "holiday", "hello"), e("ts", "default", "hello"),
            e("hello", "next", "hook"),
            e("hook", "sales", "menu"), e("hook", "default", "menu"), e("hook", "timeout", "menu"),
            e("menu", "1", "ext"), e("menu", "2", "ext"), e("menu", "3", "ext"), e("menu", "#", "ext"), e("menu", "timeout", "vm"), e("menu", "invalid", "vm"),
            e("ext", "no_answer", "vm"), e("ext", "busy", "vm"),
            e("vm", "done", "thanks"), e("thanks", "next", "bye")
        ]
    }))
    .expect("graph")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let iterations: usize = args.iter().position(|a| a == "--iterations").and_then(|i| args.get(i + 1)).and_then(|s| s.parse().ok()).unwrap_or(5000);
    let services = Services {
        entities: Arc::new(EntityCache::with(entities())),
        directory: Arc::new(StaticDirectory::new()),
        kv: Arc::new(MemoryKv::new()),
        http: Arc::new(InstantHttp),
    };
    let cache = std::env::temp_dir().join("flowpbx-bench-components");
    let t = Instant::now();
    let engine = Engine::new(EngineConfig { cache_dir: Some(cache), limits: Limits { max_concurrent_runs: 64, ..Limits::default() } }, services.clone())
        .expect("engine");
    println!("engine start (12 built-ins, compiled or from the cache): {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");

    println!("\n1. One node run from its InstancePre vs the same Rust natively ({iterations} runs each)\n");
    println!("{:<20} {:>10} {:>10} {:>11} {:>11} {:>8} {:>8}", "node", "wasm p50", "wasm p99", "native p50", "native p99", "p50 x", "output");
    let snapshot = services.entities.snapshot();
    let mut trivial_p99 = 0.0;
    for c in cases() {
        let flow: Arc<PreparedFlow> = rt.block_on(engine.prepare(1, 1, graph_one(&c))).expect("prepares");
        let call: Arc<dyn CallControl> = Arc::new(InstantCall { answer: true });
        let (wasm, out) = rt.block_on(async {
            let mut out = String::new();
            for _ in 0..200 {
                let _ = engine.run_one(&flow, "x", call.clone(), &services).await;
            }
            let mut v = Vec::with_capacity(iterations);
            for _ in 0..iterations {
                let t = Instant::now();
                let (r, _) = engine.run_one(&flow, "x", call.clone(), &services).await;
                v.push(t.elapsed());
                out = match r {
                    Ok(o) => o,
                    Err(e) => format!("error: {e}"),
                };
            }
            (percentiles(v), out)
        });
        let config = c.config.to_string();
        let ent = c.entity.map(|(k, id)| (k.as_str().to_string(), id, snapshot.get(k, id).map(|x| x.json.to_string()).unwrap_or_default()));
        let mut v = Vec::with_capacity(iterations);
        let mut nout = String::new();
        for i in 0..iterations + 200 {
            let mut host = NativeHost { vars: Vec::new(), answer: true };
            let t = Instant::now();
            let r = std::hint::black_box((c.native)(std::hint::black_box(&config), ent.clone(), &mut host));
            if i >= 200 {
                v.push(t.elapsed());
            }
            nout = r.unwrap_or_else(|e| format!("error: {e:?}"));
        }
        let native_p = percentiles(v);
        let shown = if out.is_empty() { "\"\"".to_string() } else { out.clone() };
        assert!(out == nout || (out.starts_with("error") && nout.starts_with("error")), "{}: wasm {out} vs native {nout}", c.name);
        println!(
            "{:<20} {:>8.1}µs {:>8.1}µs {:>9.2}µs {:>9.2}µs {:>7.0}x {:>8}",
            c.name,
            wasm.0,
            wasm.1,
            native_p.0,
            native_p.1,
            wasm.0 / native_p.0.max(0.001),
            shown
        );
        if c.ty == "hangup" {
            trivial_p99 = wasm.1;
        }
    }

    println!("\n2. A 10-node flow end to end (set caller id, time switch, play, webhook, IVR, extension, voicemail, play, hangup)\n");
    let flow = rt.block_on(engine.prepare(2, 1, ten_node_flow())).expect("10-node flow prepares");
    let call: Arc<dyn CallControl> = Arc::new(InstantCall { answer: false });
    let (walk, steps) = rt.block_on(async {
        let mut steps = 0;
        for _ in 0..100 {
            let _ = engine.run_call(flow.clone(), "in", call.clone()).await;
        }
        let mut v = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            let t = Instant::now();
            let trace = engine.run_call(flow.clone(), "in", call.clone()).await;
            v.push(t.elapsed());
            steps = trace.steps.len();
        }
        (percentiles(v), steps)
    });
    assert_eq!(steps, 10, "the walk visits all ten nodes");
    println!("walk, instant call:        p50 {:>7.1} µs   p99 {:>7.1} µs   ({steps} node runs per walk)", walk.0, walk.1);
    let script = Script::parse(&json!({"dtmf": [{"at_ms": 0, "digits": "1"}], "voicemail": {"then": "stay"}, "http": [{"url": "https://crm.example.com/route", "body": {"route": "sales"}}]}).to_string()).expect("script");
    let sims = iterations.min(2000);
    let mut v = Vec::with_capacity(sims);
    let mut sim_steps = 0;
    for _ in 0..sims + 50 {
        let t = Instant::now();
        let r = engine.simulate_blocking(SimTarget::Prepared(flow.clone()), script.clone()).expect("simulates");
        v.push(t.elapsed());
        sim_steps = r.trace.steps.len();
    }
    let sim = percentiles(v.split_off(50));
    assert_eq!(sim_steps, 10);
    println!("simulation (flow simulate): p50 {:>7.1} µs   p99 {:>7.1} µs", sim.0, sim.1);

    println!("\n3. Node runs per second on one core (play_message, current-thread runtime, 2 s)\n");
    let flow = rt.block_on(engine.prepare(3, 1, graph_one(&cases()[1]))).expect("prepares");
    let call: Arc<dyn CallControl> = Arc::new(InstantCall { answer: true });
    let runs = rt.block_on(async {
        let t = Instant::now();
        let mut n = 0u64;
        while t.elapsed() < Duration::from_secs(2) {
            for _ in 0..100 {
                let _ = engine.run_one(&flow, "x", call.clone(), &services).await;
            }
            n += 100;
        }
        n as f64 / t.elapsed().as_secs_f64()
    });
    println!("{runs:.0} node runs/s");

    println!(
        "\nGoals: trivial node p99 ≤ 20 µs: {trivial_p99:.1} µs ({}); 10-node flow ≤ 200 µs: walk p99 {:.1} µs ({})",
        if trivial_p99 <= 20.0 { "met" } else { "NOT met" },
        walk.1,
        if walk.1 <= 200.0 { "met" } else { "NOT met" }
    );
}
