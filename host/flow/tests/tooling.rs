//! The plugin tooling end to end: `node new` (scaffold with the vendored SDK), `node build`
//! (a real wasm32 build, wit-component, world check, describe), `node test` (the simulator
//! around the node), then installing it and using it in a flow.

mod common;
use common::*;
use flow::tooling::{build_plugin, scaffold_plugin, SdkSource};
use serde_json::json;

#[test]
fn scaffold_build_test_and_install_a_plugin() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = scaffold_plugin("acme/greeter", tmp.path(), &SdkSource::Vendored).expect("scaffolds");
    assert_eq!(dir, tmp.path().join("greeter"));
    for f in ["Cargo.toml", "src/lib.rs", "test-script.json", "README.md", "flowpbx-node-sdk/src/lib.rs", "flowpbx-node-sdk/wit/world.wit"] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let cargo = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(cargo.contains(r#"flowpbx-node-sdk = { path = "flowpbx-node-sdk" }"#), "{cargo}");
    assert!(scaffold_plugin("acme/greeter", tmp.path(), &SdkSource::Vendored).unwrap_err().to_string().contains("already exists"));
    assert!(scaffold_plugin("Greeter", tmp.path(), &SdkSource::Vendored).is_err());

    let e = engine();
    // A target dir shared between runs keeps the std build (build-std) incremental.
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/wasm-plugin-test");
    let built = build_plugin(&e, &dir, Some(&target)).expect("the scaffolded plugin builds");
    assert_eq!(built.manifest.info.id, "acme/greeter");
    assert_eq!(built.manifest.world_version, "0.1.0");
    assert!(built.manifest.requested().is_empty());
    assert_eq!(built.manifest.info.outputs.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(), ["next"]);
    let bytes = std::fs::read(&built.component).unwrap();
    assert_eq!(built.manifest.sha256, flow::cache::sha256_hex(&bytes));

    let s = flow::sim::Script::parse(&std::fs::read_to_string(dir.join("test-script.json")).unwrap()).unwrap();
    let r = e.test_plugin_blocking(&bytes, s).expect("node test runs");
    assert_eq!(r.trace.path(), p(&[("entry", "next"), ("node", "next")]));
    assert!(events(&r).iter().any(|ev| ev.starts_with("say Good morning Alice")), "{:?}", events(&r));
    assert_eq!(r.trace.steps[1].logs[0].message, "greeting +61400000001");

    // Installed, it is a node type like any other.
    e.install_plugin(&bytes, &flow::types::PluginGrants::default()).unwrap();
    let r = simulate(
        &e,
        json!({
            "nodes": [
                {"id": "in", "type": "inbound_number", "data": {}},
                {"id": "hi", "type": "acme/greeter", "data": {"config": {"greeting": "Welcome"}}},
                {"id": "bye", "type": "hangup", "data": {}}
            ],
            "edges": [
                {"id": "1", "source": "in", "sourceHandle": "next", "target": "hi"},
                {"id": "2", "source": "hi", "sourceHandle": "next", "target": "bye"}
            ]
        }),
        json!({"caller": {"number": "+1", "name": "Bo"}}),
    );
    assert!(events(&r).iter().any(|ev| ev.starts_with("say Welcome Bo")));
    // The schema the plugin declared is enforced.
    let g = graph(
        json!({"nodes": [{"id": "in", "type": "inbound_number", "data": {}}, {"id": "hi", "type": "acme/greeter", "data": {"config": {"greeting": ""}}}], "edges": [{"id": "1", "source": "in", "sourceHandle": "next", "target": "hi"}]}),
    );
    let problems = tokio::runtime::Runtime::new().unwrap().block_on(e.validate(None, &g));
    assert!(
        problems.iter().any(|p| p.node_id.as_deref() == Some("hi") && p.field.as_deref() == Some("greeting") && p.message == "Greeting: must not be empty"),
        "{problems:#?}"
    );
}

#[test]
fn build_reports_a_compile_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = scaffold_plugin("acme/broken", tmp.path(), &SdkSource::Path(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk"))).unwrap();
    std::fs::write(dir.join("src/lib.rs"), "this is not rust").unwrap();
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/wasm-plugin-test");
    let err = build_plugin(&engine(), &dir, Some(&target)).unwrap_err();
    assert!(matches!(err, flow::Error::Build(ref m) if m.contains("error")), "{err}");
}
