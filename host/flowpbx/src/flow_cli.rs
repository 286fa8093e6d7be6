//! The plugin-author and flow subcommands:
//!
//! - `flowpbx node new vendor/name` — scaffold a plugin crate;
//! - `flowpbx node build [DIR]` — build it into a component and check it;
//! - `flowpbx node test PLUGIN.wasm --script SCRIPT` — run one node in the call simulator;
//! - `flowpbx flow simulate (--flow FILE | --flow-id ID) --script SCRIPT` — run a flow in the
//!   call simulator.
//!
//! Exit status: 0 when the command did its job, 1 when it could not (a bad file, a build
//! error, an invalid flow), 3 when a simulated call failed in a node (a step with an error,
//! or a node failure with nowhere to go), 2 for a usage error.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use flow::entity::EntityCache;
use flow::graph::Graph;
use flow::services::Services;
use flow::sim::{Script, SimReport, SimTarget};
use flow::tooling::SdkSource;
use flow::Engine;
use serde_json::Value;

use crate::config::Settings;

/// Exit status of a simulated call that failed in a node.
const EXIT_CALL_FAILED: u8 = 3;

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Scaffold a plugin crate for node type NAME (vendor/name) in DIR/name: a working
    /// example node, its Cargo.toml, a README and a simulator script.
    New(NodeNew),
    /// Build a plugin crate for wasm32-unknown-unknown, turn it into a component, check that
    /// it targets a supported world version and run its describe(). Writes
    /// <target-dir>/flowpbx/<crate>.wasm.
    Build(NodeBuild),
    /// Run one node component in the call simulator: an entry leading to the node, with the
    /// config, entity and grants of the script's "node" (grants default to everything the
    /// node asks for). Prints the path, the node's output and log lines, and what the caller
    /// heard.
    Test(NodeTest),
}

#[derive(Debug, Args)]
pub struct NodeNew {
    /// The node type id: vendor/name (lowercase letters, digits, - and _).
    pub name: String,
    /// The directory the crate is created in (as DIR/name).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Depend on the SDK at this path (an `sdk/` checkout) instead of a copy written into the
    /// crate.
    #[arg(long, conflicts_with = "sdk_version")]
    pub sdk_path: Option<PathBuf>,
    /// Depend on this version of flowpbx-node-sdk from a registry instead of a copy written
    /// into the crate.
    #[arg(long)]
    pub sdk_version: Option<String>,
}

#[derive(Debug, Args)]
pub struct NodeBuild {
    /// The plugin crate.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Cargo's target directory [default: DIR/target].
    #[arg(long)]
    pub target_dir: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct NodeTest {
    /// The component (.wasm) to run.
    pub component: PathBuf,
    /// The simulator script (JSON): caller, dialled, clock, dtmf/menu_dtmf, extensions,
    /// http, entities, kv, and "node": {config, entity, grants}.
    #[arg(long)]
    pub script: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum FlowCommand {
    /// Run a flow in the call simulator against a scripted call and print the path it takes,
    /// each node's output and log lines, and what the caller experienced. Deterministic: the
    /// same script gives the same result. Entities and enabled plugins come from the data
    /// dir's database when it has one (the script's "entities" add to or replace them).
    Simulate(FlowSimulate),
}

#[derive(Debug, Args)]
pub struct FlowSimulate {
    /// A flow graph file: the editor's JSON ({"nodes", "edges"}), or a flow as the API
    /// returns it ({"id", "flow_data"}).
    #[arg(long, conflicts_with = "flow_id", required_unless_present = "flow_id")]
    pub flow: Option<PathBuf>,
    /// A flow of the data dir's database.
    #[arg(long)]
    pub flow_id: Option<i64>,
    /// With --flow-id: "draft", "live" or a published version number.
    #[arg(long, default_value = "live", requires = "flow_id")]
    pub flow_version: String,
    /// The simulator script (JSON): caller, dialled, entry, clock {start, zone}, dtmf
    /// [{at_ms, digits}], menu_dtmf [{digits, after_ms}], extensions {"101": "answer"|"busy"|
    /// "no_answer"}, http [{url, status, body, delay_ms}], entities, kv, hangup_at_ms.
    #[arg(long)]
    pub script: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The cache for the node commands: --cache-dir, else the user's cache directory.
fn user_cache_dir(s: &Settings) -> Option<PathBuf> {
    if let Some(d) = &s.cache_dir {
        return Some(d.join("components"));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("flowpbx").join("components"))
}

fn offline_engine(cache: Option<PathBuf>, services: Services) -> anyhow::Result<Engine> {
    Engine::new(flow::EngineConfig { cache_dir: cache, limits: flow::Limits::default() }, services).context("starting the flow engine")
}

fn read_json(path: &Path, what: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading the {what} {}", path.display()))
}

fn read_script(path: &Path) -> anyhow::Result<Script> {
    Script::parse(&read_json(path, "script")?).map_err(|e| anyhow!("{}: {e}", path.display()))
}

pub fn node(cmd: NodeCommand, s: &Settings) -> anyhow::Result<ExitCode> {
    match cmd {
        NodeCommand::New(n) => {
            let sdk = match (n.sdk_path, n.sdk_version) {
                (Some(p), _) => SdkSource::Path(std::path::absolute(&p).unwrap_or(p)),
                (None, Some(v)) => SdkSource::Version(v),
                (None, None) => SdkSource::Vendored,
            };
            let dir = flow::tooling::scaffold_plugin(&n.name, &n.dir, &sdk)?;
            println!("Created the node plugin {} in {}", n.name, dir.display());
            println!("Next: flowpbx node build {0} && flowpbx node test {0}/target/flowpbx/<crate>.wasm --script {0}/test-script.json", dir.display());
            Ok(ExitCode::SUCCESS)
        }
        NodeCommand::Build(b) => {
            let engine = offline_engine(user_cache_dir(s), Services::in_memory())?;
            let out = flow::tooling::build_plugin(&engine, &b.dir, b.target_dir.as_deref())?;
            if b.json {
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                let m = &out.manifest;
                println!("Built {}", out.component.display());
                println!("  node type     {} {} ({})", m.info.id, m.info.version, m.info.name);
                println!("  world         flowpbx:node@{}", m.world_version);
                println!("  size          {} bytes", m.size);
                println!("  sha256        {}", m.sha256);
                let outputs: Vec<&str> = m.info.outputs.iter().map(|o| o.id.as_str()).collect();
                println!("  outputs       {}", if outputs.is_empty() { "(from config)".to_string() } else { outputs.join(", ") });
                let caps: Vec<String> = m.requested().iter().map(ToString::to_string).collect();
                println!("  asks for      {}", if caps.is_empty() { "nothing".to_string() } else { caps.join(", ") });
            }
            Ok(ExitCode::SUCCESS)
        }
        NodeCommand::Test(t) => {
            let bytes = std::fs::read(&t.component).with_context(|| format!("reading {}", t.component.display()))?;
            let script = read_script(&t.script)?;
            let engine = offline_engine(user_cache_dir(s), Services::in_memory())?;
            let report = engine.test_plugin_blocking(&bytes, script)?;
            print_report(report, t.json)
        }
    }
}

/// The data dir's database, when there is one.
async fn open_store(s: &Settings) -> anyhow::Result<Option<store::Store>> {
    let path = s.data_dir.join(store::DB_FILE);
    if !path.is_file() {
        return Ok(None);
    }
    let key = crate::load_secret_key(s, &s.data_dir)?;
    let st = store::Store::open(store::StoreOptions { path: path.clone(), secret_key: key, sip_realm: None, max_connections: 2 })
        .await
        .with_context(|| format!("opening the database {}", path.display()))?;
    Ok(Some(st))
}

pub fn flow(cmd: FlowCommand, s: &Settings) -> anyhow::Result<ExitCode> {
    let FlowCommand::Simulate(f) = cmd;
    let script = read_script(&f.script)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting a runtime")?;
    let (engine, target) = rt.block_on(async {
        let store = open_store(s).await?;
        if f.flow_id.is_some() && store.is_none() {
            bail!("--flow-id needs a database: {} has none (set --data-dir)", s.data_dir.join(store::DB_FILE).display());
        }
        let entities = Arc::new(EntityCache::new());
        if let Some(st) = &store {
            pbx::flow_sync::load_entities(st, &entities).await?;
        }
        let services = Services { entities, ..Services::in_memory() };
        // The server's cache when simulating its data, else the user's.
        let cache = match &store {
            Some(_) => Some(pbx::engine::server_cache_dir(s.cache_dir.as_deref(), &s.data_dir)),
            None => user_cache_dir(s),
        };
        let engine = pbx::engine::build_engine(cache, services, flow::Limits::default()).await?;
        if let Some(st) = &store {
            pbx::flows::install_enabled_plugins(&engine, st, &s.data_dir).await?;
        }
        let target = match (&f.flow, f.flow_id) {
            (Some(file), _) => {
                let v: Value = serde_json::from_str(&read_json(file, "flow")?).with_context(|| format!("{} is not JSON", file.display()))?;
                let (id, graph) = match v.get("flow_data") {
                    Some(g) => (v.get("id").and_then(Value::as_i64).unwrap_or(0), g.clone()),
                    None => (0, v),
                };
                SimTarget::Draft { flow_id: id, graph: Graph::from_value(graph).map_err(|e| anyhow!("{}: {e}", file.display()))? }
            }
            (None, Some(id)) => {
                let st = store.as_ref().context("no database")?;
                match f.flow_version.as_str() {
                    "draft" => {
                        let flow = st.call_flows().get(id).await?.with_context(|| format!("no flow {id}"))?;
                        SimTarget::Draft { flow_id: id, graph: Graph::from_value(flow.flow_data.clone())? }
                    }
                    sel => {
                        let row = match sel {
                            "live" => st.flow_versions().latest(id).await?.with_context(|| format!("flow {id} has no published version"))?,
                            n => {
                                let n: i64 = n.parse().map_err(|_| anyhow!("--flow-version {n:?}: draft, live or a version number"))?;
                                st.flow_versions().get(id, n).await?.with_context(|| format!("flow {id} has no version {n}"))?
                            }
                        };
                        SimTarget::Prepared(pbx::flows::load_version(&engine, st, &s.data_dir, &row, row.version).await.map_err(describe_flow_error)?)
                    }
                }
            }
            (None, None) => bail!("give --flow FILE or --flow-id ID"),
        };
        if let Some(st) = store {
            st.close().await;
        }
        Ok((engine, target))
    })?;
    drop(rt);
    let report = engine.simulate_blocking(target, script).map_err(describe_flow_error)?;
    print_report(report, f.json)
}

/// A flow error with every problem spelled out.
fn describe_flow_error(e: flow::Error) -> anyhow::Error {
    match e {
        flow::Error::Invalid(problems) => {
            let lines: Vec<String> = problems
                .iter()
                .map(|p| {
                    let at = p
                        .node_id
                        .as_deref()
                        .map(|n| format!("node {n}"))
                        .or_else(|| p.edge_id.as_deref().map(|e| format!("edge {e}")))
                        .unwrap_or_else(|| "flow".into());
                    format!("  {:?} {at}: {}", p.severity, p.message)
                })
                .collect();
            anyhow!("the flow has errors:\n{}", lines.join("\n"))
        }
        other => anyhow!(other),
    }
}

fn print_report(report: SimReport, json: bool) -> anyhow::Result<ExitCode> {
    let view = pbx::flows::Simulation::from(report);
    if json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        println!("Path ({} ms):", view.duration_ms);
        for (i, s) in view.steps.iter().enumerate() {
            let out = s.output.as_deref().map(|o| format!(" -> {o}")).unwrap_or_default();
            println!("  {}. {} ({}){out}  at {} ms, {} ms", i + 1, s.node_id, s.node_type, s.entered_at_ms, s.duration_ms);
            if let Some(e) = &s.error {
                println!("       error: {e}");
            }
            for l in &s.logs {
                println!("       log {l}");
            }
        }
        println!("Caller:");
        for e in &view.events {
            let detail = e["detail"].as_str().filter(|d| !d.is_empty()).map(|d| format!(" {d}")).unwrap_or_default();
            println!("  {:>7} ms  {}{detail}", e["at_ms"], e["event"].as_str().unwrap_or(""));
        }
        for r in &view.http_requests {
            println!(
                "  HTTP {} {} -> {}",
                r["request"]["method"].as_str().unwrap_or(""),
                r["request"]["url"].as_str().unwrap_or(""),
                r["result"].as_str().unwrap_or("")
            );
        }
        println!("Outcome: {}", view.outcome);
    }
    Ok(if view.failed { ExitCode::from(EXIT_CALL_FAILED) } else { ExitCode::SUCCESS })
}
