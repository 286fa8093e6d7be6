//! The flow and plugin subcommands of the real binary: `flowpbx flow simulate` on a graph
//! file and on a published flow of a data dir, and `flowpbx node new | build | test`.

use std::path::Path;
use std::process::{Command, Output};

use flowpbx_tests::{flowpbx_bin, Server};
use serde_json::{json, Value};

fn run(args: &[&str], home: &Path) -> Output {
    let bin = flowpbx_bin().expect("the flowpbx binary");
    Command::new(bin)
        .args(args)
        // the node commands cache compiled components under $XDG_CACHE_HOME/flowpbx
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("HOME", home)
        .env_remove("FLOWPBX_DATA_DIR")
        .output()
        .expect("flowpbx runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn write_json(path: &Path, v: &Value) {
    std::fs::write(path, serde_json::to_vec_pretty(v).unwrap()).unwrap();
}

/// The path as `node -> output` pairs from `--json` output.
fn path_of(out: &Output) -> Vec<(String, String)> {
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}\n{}", text(&out.stdout), text(&out.stderr)));
    v["steps"].as_array().expect("steps").iter().map(|s| (s["node_id"].as_str().unwrap().to_owned(), s["output"].as_str().unwrap_or("").to_owned())).collect()
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

/// entry → IVR-less menu of a play and a hangup, with a webhook choosing the branch.
fn graph() -> Value {
    json!({
        "nodes": [
            {"id": "in", "type": "inbound_number", "data": {}},
            {"id": "hook", "type": "webhook", "data": {"config": {"url": "https://crm.example/route", "field": "route", "routes": [{"value": "sales"}, {"value": "support"}]}}},
            {"id": "sales", "type": "play_message", "data": {"config": {"prompt": "sales"}}},
            {"id": "support", "type": "play_message", "data": {"config": {"prompt": "support"}}},
            {"id": "bye", "type": "hangup", "data": {}}
        ],
        "edges": [
            {"id": "e1", "source": "in", "sourceHandle": "next", "target": "hook"},
            {"id": "e2", "source": "hook", "sourceHandle": "sales", "target": "sales"},
            {"id": "e3", "source": "hook", "sourceHandle": "support", "target": "support"},
            {"id": "e4", "source": "sales", "sourceHandle": "next", "target": "bye"},
            {"id": "e5", "source": "support", "sourceHandle": "next", "target": "bye"},
            {"id": "e6", "source": "hook", "sourceHandle": "default", "target": "bye"},
            {"id": "e7", "source": "hook", "sourceHandle": "timeout", "target": "bye"},
            {"id": "e8", "source": "hook", "sourceHandle": "error", "target": "bye"}
        ]
    })
}

#[test]
fn flow_simulate_runs_a_graph_file_deterministically() {
    let tmp = tempfile::tempdir().unwrap();
    let flow = tmp.path().join("flow.json");
    write_json(&flow, &graph());
    let script = tmp.path().join("call.json");
    write_json(
        &script,
        &json!({"caller": {"number": "+61400000001"}, "dialled": "+61299990000",
                "http": [{"url": "https://crm.example/route", "status": 200, "body": "{\"route\": \"support\"}"}]}),
    );
    let data = tmp.path().join("no-data");
    let args = ["flow", "simulate", "--data-dir", data.to_str().unwrap(), "--flow", flow.to_str().unwrap(), "--script", script.to_str().unwrap(), "--json"];
    let out = run(&args, tmp.path());
    assert!(out.status.success(), "{}\n{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(path_of(&out), pairs(&[("in", "next"), ("hook", "support"), ("support", "next"), ("bye", "")]));
    // the same script gives the same result, byte for byte
    let again = run(&args, tmp.path());
    assert_eq!(text(&again.stdout), text(&out.stdout));
    assert!(!data.exists(), "simulating a file touches no data dir");

    // the human-readable form names each step
    let human = run(&args[..args.len() - 1], tmp.path());
    let s = text(&human.stdout);
    assert!(s.contains("2. hook (webhook) -> support"), "{s}");
    assert!(s.contains("HTTP POST https://crm.example/route"), "{s}");

    // a webhook with no canned response fails: the call takes the node's error output
    write_json(&script, &json!({"caller": {"number": "+61400000001"}, "dialled": "+61299990000"}));
    let out = run(&args, tmp.path());
    assert_eq!(path_of(&out)[1], ("hook".to_string(), "error".to_string()), "{}", text(&out.stdout));

    // an invalid graph: exit 1 and every problem named
    let mut bad = graph();
    bad["nodes"][2]["data"]["config"] = json!({"prompt": "x", "repeat": 99});
    bad["edges"].as_array_mut().unwrap().push(json!({"id": "e9", "source": "sales", "sourceHandle": "nowhere", "target": "bye"}));
    write_json(&flow, &bad);
    let out = run(&args, tmp.path());
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("node sales") && err.contains("must be at most 10"), "{err}");
    assert!(err.contains("edge e9"), "{err}");
    // not JSON, a missing script: exit 1 with the file named
    std::fs::write(&flow, "{nodes").unwrap();
    let out = run(&args, tmp.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("flow.json"), "{}", text(&out.stderr));
    let out = run(&["flow", "simulate", "--flow", flow.to_str().unwrap(), "--script", "/nonexistent/script.json"], tmp.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("/nonexistent/script.json"));
}

#[tokio::test]
async fn flow_simulate_runs_a_published_version_of_a_data_dir() -> anyhow::Result<()> {
    let mut server = Server::start().await?;
    let c = server.admin().await?;
    let ext = c.post("/extensions", &json!({"extension": "101", "name": "Reception", "sip_password": "secret-pass-101"})).await?;
    assert_eq!(ext.status, 201, "{}", ext.text);
    let ext = ext.data()["id"].as_i64().unwrap();
    let g = json!({
        "nodes": [
            {"id": "in", "type": "inbound_number", "data": {}},
            {"id": "desk", "type": "extension", "data": {"entity_type": "extension", "entity_id": ext, "config": {"timeout": 20}}},
            {"id": "sorry", "type": "play_message", "data": {"config": {"prompt": "sorry"}}},
            {"id": "bye", "type": "hangup", "data": {}}
        ],
        "edges": [
            {"id": "e1", "source": "in", "sourceHandle": "next", "target": "desk"},
            {"id": "e2", "source": "desk", "sourceHandle": "no_answer", "target": "sorry"},
            {"id": "e3", "source": "desk", "sourceHandle": "busy", "target": "sorry"},
            {"id": "e4", "source": "sorry", "sourceHandle": "next", "target": "bye"}
        ]
    });
    let flow = c.post("/flows", &json!({"name": "Desk", "flow_data": g})).await?;
    assert_eq!(flow.status, 201, "{}", flow.text);
    let flow = flow.data()["id"].as_i64().unwrap();
    let r = c.post(&format!("/flows/{flow}/publish"), &json!({})).await?;
    assert_eq!(r.status, 200, "{}", r.text);
    // the draft moves on: the live version stays what was published
    let mut draft = g.clone();
    draft["edges"][1]["target"] = json!("bye");
    assert_eq!(c.put(&format!("/flows/{flow}"), &json!({"flow_data": draft})).await?.status, 200);
    server.stop()?;

    let data = server.data_dir().to_str().unwrap().to_owned();
    let tmp = tempfile::tempdir().unwrap();
    let script = tmp.path().join("call.json");
    write_json(&script, &json!({"caller": {"number": "+61400000001"}, "dialled": "+61299990000", "extensions": {"101": "no_answer"}}));
    let id = flow.to_string();
    let base = ["flow", "simulate", "--data-dir", &data, "--flow-id", &id, "--script", script.to_str().unwrap(), "--json"];
    let out = run(&base, tmp.path());
    assert!(out.status.success(), "{}\n{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(path_of(&out), pairs(&[("in", "next"), ("desk", "no_answer"), ("sorry", "next"), ("bye", "")]));
    let mut with_draft = base.to_vec();
    with_draft.extend(["--flow-version", "draft"]);
    let out = run(&with_draft, tmp.path());
    assert_eq!(path_of(&out), pairs(&[("in", "next"), ("desk", "no_answer"), ("bye", "")]), "{}", text(&out.stderr));
    let mut missing = base.to_vec();
    missing.extend(["--flow-version", "7"]);
    let out = run(&missing, tmp.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no version 7"), "{}", text(&out.stderr));
    Ok(())
}

#[test]
fn node_new_build_and_test_a_plugin() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_str().unwrap();
    let out = run(&["node", "new", "acme/greeter", "--dir", dir], tmp.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let krate = tmp.path().join("greeter");
    assert!(krate.join("Cargo.toml").is_file() && krate.join("test-script.json").is_file());
    let again = run(&["node", "new", "acme/greeter", "--dir", dir], tmp.path());
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again.stderr).contains("already exists"), "{}", text(&again.stderr));
    let bad = run(&["node", "new", "Greeter", "--dir", dir], tmp.path());
    assert_eq!(bad.status.code(), Some(1));

    // build with the target dir the flow crate's tooling test uses: the std build is shared
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm-plugin-test");
    let out = run(&["node", "build", krate.to_str().unwrap(), "--target-dir", target.to_str().unwrap(), "--json"], tmp.path());
    assert!(out.status.success(), "{}\n{}", text(&out.stdout), text(&out.stderr));
    let built: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(built["manifest"]["info"]["id"], "acme/greeter", "{built}");
    assert_eq!(built["manifest"]["world_version"], "0.1.0");
    let wasm = built["component"].as_str().unwrap().to_owned();
    assert!(std::fs::read(&wasm).unwrap().starts_with(b"\0asm"));

    let script = krate.join("test-script.json");
    let out = run(&["node", "test", &wasm, "--script", script.to_str().unwrap()], tmp.path());
    assert!(out.status.success(), "{}\n{}", text(&out.stdout), text(&out.stderr));
    let s = text(&out.stdout);
    assert!(s.contains("node (acme/greeter) -> next"), "{s}");
    assert!(s.contains("greeting +61400000001"), "{s}");
    // something that is not a component is refused
    let junk = tmp.path().join("junk.wasm");
    std::fs::write(&junk, b"not wasm").unwrap();
    let out = run(&["node", "test", junk.to_str().unwrap(), "--script", script.to_str().unwrap()], tmp.path());
    assert_eq!(out.status.code(), Some(1));
}
