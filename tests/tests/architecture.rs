//! ARCHITECTURE.md's crate dependency graph is the real one: the `text` block of its code map
//! (one `crate: dependencies…` line per crate of `host/`) against `cargo metadata`, so the
//! document cannot drift from the manifests again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

type Graph = BTreeMap<String, BTreeSet<String>>;

/// The comment right before the graph's block in ARCHITECTURE.md.
const MARKER: &str = "<!-- crate graph: checked by tests/tests/architecture.rs -->";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the tests crate is inside the workspace").to_path_buf()
}

/// The graph the document states: the first fenced block after [`MARKER`].
fn documented(text: &str) -> Result<Graph, String> {
    let at = text.find(MARKER).ok_or("ARCHITECTURE.md has no block after the comment `<!-- crate graph: checked by tests/tests/architecture.rs -->`")?;
    let rest = &text[at..];
    let open = rest.find("```").ok_or("no fenced block after the marker")?;
    let body = &rest[open..];
    let body = &body[body.find('\n').ok_or("an unterminated block")? + 1..];
    let body = &body[..body.find("```").ok_or("an unterminated block")?];
    let mut graph = Graph::new();
    for line in body.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (name, deps) = line.split_once(':').ok_or_else(|| format!("{line:?} is not `crate: dependencies`"))?;
        let deps: BTreeSet<String> = deps.split_whitespace().map(str::to_owned).collect();
        if graph.insert(name.trim().to_owned(), deps).is_some() {
            return Err(format!("{name} is listed twice"));
        }
    }
    Ok(graph)
}

/// The graph of the manifests: each package under `host/` and its normal dependencies on
/// packages under `host/`.
fn actual(root: &Path) -> Graph {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline", "--manifest-path"])
        .arg(root.join("Cargo.toml"))
        .output()
        .expect("running cargo metadata");
    assert!(out.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
    let host = root.join("host");
    let in_host = |manifest_or_dir: &str| Path::new(manifest_or_dir).starts_with(&host);
    let mut graph = Graph::new();
    for p in meta["packages"].as_array().expect("packages") {
        if !p["manifest_path"].as_str().is_some_and(in_host) {
            continue;
        }
        let deps = p["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            .filter(|d| d["kind"].is_null() && d["path"].as_str().is_some_and(in_host))
            .filter_map(|d| d["name"].as_str().map(str::to_owned))
            .collect();
        graph.insert(p["name"].as_str().expect("a package name").to_owned(), deps);
    }
    graph
}

fn describe(g: &Graph) -> String {
    g.iter().map(|(k, v)| format!("{k}: {}", v.iter().cloned().collect::<Vec<_>>().join(" "))).collect::<Vec<_>>().join("\n")
}

#[test]
fn the_documented_dependency_graph_is_the_real_one() {
    let root = root();
    let text = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("reading ARCHITECTURE.md");
    let documented = documented(&text).unwrap_or_else(|e| panic!("ARCHITECTURE.md: {e}"));
    let actual = actual(&root);
    assert!(actual.len() >= 8, "cargo metadata listed too few host crates: {actual:?}");
    assert_eq!(
        describe(&documented),
        describe(&actual),
        "ARCHITECTURE.md's dependency graph (left) differs from the manifests (right): update the block in its code map"
    );
}

#[test]
fn a_drifted_document_is_caught() {
    let root = root();
    let text = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("reading ARCHITECTURE.md");
    let actual = actual(&root);
    // the claim the document once made: `call` depending on `flow`
    let drifted = text.replacen("call: sip media store", "call: sip media flow store", 1);
    assert_ne!(documented(&drifted).unwrap(), actual);
    // a crate left out
    let missing = text.replacen("\nsip:\n", "\n", 1);
    assert_ne!(documented(&missing).unwrap(), actual);
    assert!(documented("no graph here").is_err());
    assert!(documented(&format!("{MARKER}\n```text\nflowpbx api\n```\n")).is_err());
}
