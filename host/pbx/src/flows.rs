//! The flow runtime and its lifecycle: the engine plus what the PBX keeps beside it (the
//! publish lock, which version of each flow is live), and the operations on flows the API
//! and the binary call.
//!
//! - [`FlowService`]: the runtime's slot and lifecycle. Not started → starting (the binary
//!   builds the engine in the background, see [`crate::engine`]) → ready, or failed.
//!   [`FlowService::start`] fills the engine from the store: entities, enabled plugins, and
//!   the live version of every published flow, prepared with the plugin versions it was
//!   published with. [`FlowService::ready`] waits for a start in progress;
//!   [`FlowService::entity_changed`] keeps the entity cache current after every committed
//!   change; [`FlowService::health`] says where the engine is.
//! - [`FlowRuntime`]: node types and their outputs, validate, publish, rollback, simulate,
//!   and the plugin operations (`plugins.rs`); [`graph_of`] reads the graph of a version or
//!   the draft (for a diff).
//!
//! Publishing: capture the linked entities' configuration (`crate::versions`) → validate →
//! prepare (link the components, pin the captured entities) → insert the immutable
//! `flow_versions` row (with the plugin versions it runs, the entities it captured, and its
//! audit row) → swap it in. Calls in progress keep the version they started with; the next
//! call gets the new one as soon as the operation returns. An entity edited afterwards
//! changes what the next publication captures, never the live version.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use flow::entity::Entity;
use flow::graph::Graph;
use flow::sim::{Script, SimReport, SimTarget};
use flow::trace::Outcome;
use flow::types::{NodeTypeInfo, OutputDecl, PluginGrants};
use flow::validate::{Problem, Severity};
use flow::{Engine, PreparedFlow};
use serde::Serialize;
use serde_json::{json, Value};
use store::{Actor, FlowVersion, Page, Plugin, ResourceKind, Store};

use crate::error::{Error, Result};
use crate::flow_sync;
use crate::versions;

/// Where uploaded plugin components live, relative to the data dir: `<sha256>.wasm`.
pub const PLUGINS_DIR: &str = "plugins";

/// How long an operation waits for the engine to finish starting.
const ENGINE_WAIT: Duration = Duration::from_secs(60);

/// Where the flow engine's start is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineState {
    /// Nothing started it (yet): operations wait for a while, then fail as unavailable.
    NotStarted,
    /// Starting in the background ([`FlowService::starting`]).
    Starting,
    /// Serving.
    Ready,
    /// Could not start ([`FlowService::failed`]).
    Failed,
}

/// What start-up loaded into the engine.
#[derive(Debug, Clone, Default)]
pub struct FlowBoot {
    pub entities: usize,
    pub plugins: usize,
    pub flows: usize,
    /// Flows (id, reason) whose live version could not be loaded: calls to them are not
    /// routed by a flow until they are published again.
    pub failed: Vec<(i64, String)>,
}

/// The engine's state as health reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowHealth {
    /// `starting`, `ok`, `degraded` (a published flow could not be loaded) or `down`.
    pub status: &'static str,
    pub detail: String,
}

/// The flow runtime's slot and lifecycle. Cheap to clone.
#[derive(Clone)]
pub struct FlowService(Arc<ServiceInner>);

struct ServiceInner {
    store: Store,
    data_dir: PathBuf,
    runtime: OnceLock<FlowRuntime>,
    state: tokio::sync::watch::Sender<EngineState>,
    /// Why the engine could not start.
    failure: Mutex<Option<String>>,
    /// Node runs per type, for the metrics endpoint.
    metrics: Arc<crate::metrics::FlowMetrics>,
}

impl FlowService {
    /// A service whose engine is not started; `data_dir` holds the plugins' components.
    pub fn new(store: Store, data_dir: PathBuf) -> FlowService {
        FlowService(Arc::new(ServiceInner {
            store,
            data_dir,
            runtime: OnceLock::new(),
            state: tokio::sync::watch::Sender::new(EngineState::NotStarted),
            failure: Mutex::new(None),
            metrics: Arc::default(),
        }))
    }

    /// The flow engine's counters (node runs per type, since start).
    pub fn metrics(&self) -> &Arc<crate::metrics::FlowMetrics> {
        &self.0.metrics
    }

    /// The store the runtime reads and writes.
    pub fn store(&self) -> &Store {
        &self.0.store
    }

    /// The data dir (plugins' components live under it).
    pub fn data_dir(&self) -> &Path {
        &self.0.data_dir
    }

    /// Where the engine's start is.
    pub fn state(&self) -> EngineState {
        *self.0.state.borrow()
    }

    /// The engine is starting in the background (compiling the node components on a first
    /// start): health says so, and operations wait for it.
    pub fn starting(&self) {
        self.0.state.send_if_modified(|s| {
            let was = *s;
            if was == EngineState::NotStarted {
                *s = EngineState::Starting;
            }
            was == EngineState::NotStarted
        });
    }

    /// The engine could not start: operations fail at once instead of waiting.
    pub fn failed(&self, why: &str) {
        *self.0.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(why.to_owned());
        self.0.state.send_replace(EngineState::Failed);
    }

    /// Starts the runtime with `engine`: fills it from the store (entities, enabled plugins,
    /// the live version of every published flow) and serves operations with it. Once.
    pub async fn start(&self, engine: Engine) -> Result<FlowBoot> {
        let rt = FlowRuntime(Arc::new(RuntimeInner {
            engine,
            store: self.0.store.clone(),
            data_dir: self.0.data_dir.clone(),
            publish: tokio::sync::Mutex::new(()),
            live: Mutex::new(BTreeMap::new()),
            failed: Mutex::new(BTreeMap::new()),
        }));
        let store = &self.0.store;
        let mut boot = FlowBoot { entities: flow_sync::load_entities(store, &rt.engine().services().entities).await?, ..FlowBoot::default() };
        boot.plugins = install_enabled_plugins(rt.engine(), store, &rt.0.data_dir).await?;
        let (flows, failed) = rt.load_published().await?;
        boot.flows = flows;
        boot.failed = failed;
        if self.0.runtime.set(rt).is_err() {
            return Err(Error::Internal("the flow engine was started twice".into()));
        }
        self.0.state.send_replace(EngineState::Ready);
        Ok(boot)
    }

    /// The runtime, once started.
    pub fn runtime(&self) -> Option<&FlowRuntime> {
        self.0.runtime.get()
    }

    /// The runtime; while the engine starts (at most a few seconds, on a first start with an
    /// empty component cache) this waits for it rather than failing.
    pub async fn ready(&self) -> Result<&FlowRuntime> {
        if let Some(rt) = self.runtime() {
            return Ok(rt);
        }
        let mut ready = self.0.state.subscribe();
        let waited = tokio::time::timeout(ENGINE_WAIT, ready.wait_for(|s| matches!(s, EngineState::Ready | EngineState::Failed))).await;
        match (waited, self.runtime()) {
            (_, Some(rt)) => Ok(rt),
            (Err(_), None) => Err(Error::Unavailable("the flow engine is still starting; try again".into())),
            (Ok(_), None) => Err(Error::Unavailable("the flow engine is not running (see the log and /api/v1/health)".into())),
        }
    }

    /// Tells the engine an entity changed (created, updated or deleted, and committed):
    /// drafts, validation and the editor see the change at once, and so do calls for an
    /// extension or a number; a published version keeps the configuration of the menus,
    /// groups, switches, boxes and bridges it captured until its flow is published again. A
    /// deleted flow stops taking calls. Every writer of an entity calls it.
    pub async fn entity_changed(&self, kind: ResourceKind, id: i64) {
        // while the engine starts (its entity cache may already be loaded) the change waits
        // for it, so that it is not lost
        let rt = match self.runtime() {
            Some(rt) => rt,
            None if self.state() == EngineState::Starting => match self.ready().await {
                Ok(rt) => rt,
                Err(_) => return,
            },
            None => return,
        };
        if kind == ResourceKind::CallFlow {
            match self.0.store.call_flows().get(id).await {
                Ok(None) => {
                    if rt.engine().unpublish(id).is_some() {
                        tracing::info!(flow = id, "a deleted flow no longer takes calls");
                    }
                    rt.set_live(id, None);
                }
                Ok(Some(_)) => {}
                Err(e) => tracing::error!(flow = id, error = %e, "could not check a changed flow"),
            }
            return;
        }
        flow_sync::refresh_entity(&self.0.store, &rt.engine().services().entities, kind, id).await;
    }

    /// Where the engine is, for the health report (`None`: nothing started it).
    pub fn health(&self) -> Option<FlowHealth> {
        match self.state() {
            EngineState::NotStarted => None,
            EngineState::Starting => Some(FlowHealth { status: "starting", detail: "loading node components".into() }),
            EngineState::Failed => {
                let why = self.0.failure.lock().unwrap_or_else(|e| e.into_inner()).clone().unwrap_or_default();
                Some(FlowHealth { status: "down", detail: why })
            }
            EngineState::Ready => self.runtime().map(FlowRuntime::health),
        }
    }
}

/// The flow engine and what the PBX keeps beside it. Cheap to clone.
#[derive(Clone)]
pub struct FlowRuntime(pub(crate) Arc<RuntimeInner>);

pub(crate) struct RuntimeInner {
    pub(crate) engine: Engine,
    pub(crate) store: Store,
    pub(crate) data_dir: PathBuf,
    /// Publishing, rolling back and re-preparing after a grant change run one at a time, so
    /// a version number is prepared, written and installed in order.
    pub(crate) publish: tokio::sync::Mutex<()>,
    /// flow id → the version live in the engine.
    live: Mutex<BTreeMap<i64, i64>>,
    /// flow id → why its live version could not be loaded at start-up.
    failed: Mutex<BTreeMap<i64, String>>,
}

/// A version now live.
#[derive(Debug, Clone)]
pub struct Published {
    /// The new `flow_versions` row.
    pub version: FlowVersion,
    /// What the validator warned about (nothing that blocks publishing).
    pub warnings: Vec<Problem>,
    /// For a rollback: the version whose graph was published again.
    pub rolled_back_to: Option<i64>,
}

/// A version of a flow, as operations name it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum VersionSel {
    /// The editable draft.
    #[default]
    Draft,
    /// The latest published version.
    Live,
    /// A published version by number.
    Number(i64),
}

/// What a node's outputs are computed for: its config and its linked entity (the stored
/// one by id, or unsaved values).
#[derive(Debug, Clone, Default)]
pub struct OutputsQuery {
    /// The node's `data.config` (`{}` when absent).
    pub config: Option<Value>,
    /// The linked entity's type (the node type's `entity_kind` when absent).
    pub entity_type: Option<String>,
    /// The linked entity, read from the PBX's current data.
    pub entity_id: Option<i64>,
    /// The entity's unsaved values (the data model's column names), instead of the stored
    /// ones.
    pub entity: Option<Value>,
}

impl FlowRuntime {
    /// The engine (for the call wiring: `published`, `run_call`).
    pub fn engine(&self) -> &Engine {
        &self.0.engine
    }

    /// The store the runtime reads and writes.
    pub fn store(&self) -> &Store {
        &self.0.store
    }

    /// The data dir (plugins' components live under it).
    pub fn data_dir(&self) -> &Path {
        &self.0.data_dir
    }

    fn set_live(&self, flow_id: i64, version: Option<i64>) {
        let mut live = self.0.live.lock().unwrap_or_else(|e| e.into_inner());
        match version {
            Some(v) => live.insert(flow_id, v),
            None => live.remove(&flow_id),
        };
        self.0.failed.lock().unwrap_or_else(|e| e.into_inner()).remove(&flow_id);
    }

    fn health(&self) -> FlowHealth {
        let live = self.0.live.lock().map(|l| l.len()).unwrap_or(0);
        let failed = self.0.failed.lock().map(|f| f.keys().map(|k| k.to_string()).collect::<Vec<_>>()).unwrap_or_default();
        if failed.is_empty() {
            FlowHealth { status: "ok", detail: format!("{} node types, {live} flows live", self.engine().node_types().len()) }
        } else {
            FlowHealth { status: "degraded", detail: format!("{live} flows live; not loaded: flows {}", failed.join(", ")) }
        }
    }

    /// See [`load_version`].
    pub async fn load_version(&self, row: &FlowVersion, as_version: i64) -> Result<Arc<PreparedFlow>, flow::Error> {
        load_version(&self.0.engine, &self.0.store, &self.0.data_dir, row, as_version).await
    }

    /// The latest published version of a flow the engine does not hold (published outside
    /// this process, or its load failed at start-up), prepared for one call. `None` when the
    /// flow is not published or cannot be loaded (logged).
    pub async fn latest_published(&self, flow_id: i64) -> Option<Arc<PreparedFlow>> {
        let store = &self.0.store;
        let published = store.call_flows().get(flow_id).await.ok().flatten().is_some_and(|f| f.published);
        if !published {
            return None;
        }
        let row = store.flow_versions().latest(flow_id).await.ok().flatten()?;
        match self.load_version(&row, row.version).await {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(flow_id, version = row.version, error = %e, "the flow's published version cannot be loaded");
                None
            }
        }
    }

    /// Loads the live version of every published flow into the engine (start-up).
    async fn load_published(&self) -> Result<(usize, Vec<(i64, String)>)> {
        let store = &self.0.store;
        let mut ok = 0;
        let mut failed = Vec::new();
        for f in store.call_flows().list_summaries(Page::all()).await?.items {
            if !f.published {
                continue;
            }
            let Some(row) = store.flow_versions().latest(f.id).await? else { continue };
            let entities = versions::of_version(store, &row).await?;
            match load_version_with(&self.0.engine, store, &self.0.data_dir, &row, row.version, &entities.configs).await {
                Ok(p) => {
                    // a version published before versions captured entities ran with the
                    // live ones until now: it keeps them as they are from here on
                    if !entities.filled.is_empty() {
                        let mut tx = store.begin().await?;
                        versions::record(&mut tx, f.id, row.version, &entities.filled).await?;
                        tx.commit().await?;
                        tracing::info!(
                            flow = f.id,
                            version = row.version,
                            entities = entities.filled.len(),
                            "the live version now keeps the entities it runs with"
                        );
                    }
                    self.0.engine.install(p);
                    self.set_live(f.id, Some(row.version));
                    ok += 1;
                }
                Err(e) => {
                    let why = flow_error_text(&e);
                    tracing::error!(flow = f.id, version = row.version, error = %why, "the live version of a flow could not be loaded; calls to it are not routed by it until it is published again");
                    self.0.failed.lock().unwrap_or_else(|e| e.into_inner()).insert(f.id, why.clone());
                    failed.push((f.id, why));
                }
            }
        }
        Ok((ok, failed))
    }

    /// Prepares again the live versions that run the plugin version `sha256` (after its
    /// grants changed: what an administrator grants or revokes applies to the next call).
    pub(crate) async fn reload_flows_using(&self, sha256: &str) {
        let _g = self.0.publish.lock().await;
        let live: Vec<(i64, i64)> = self.0.live.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|(f, v)| (*f, *v)).collect();
        for (flow_id, version) in live {
            let uses = self.0.engine.published(flow_id).is_some_and(|p| p.plugins().values().any(|s| s == sha256));
            if !uses {
                continue;
            }
            let row = match self.0.store.flow_versions().get(flow_id, version).await {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(e) => {
                    tracing::error!(flow = flow_id, error = %e, "could not reload a flow after a grant change");
                    continue;
                }
            };
            match self.load_version(&row, version).await {
                Ok(p) => self.0.engine.install(p),
                Err(e) => {
                    tracing::error!(flow = flow_id, version, error = %flow_error_text(&e), "could not reload a flow after a grant change; it keeps the grants it had")
                }
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Node types

    /// Every node type available: built-ins, then enabled plugins.
    pub fn node_types(&self) -> Vec<NodeTypeInfo> {
        self.0.engine.node_types()
    }

    /// A node's outputs with a config and a linked entity (saved or unsaved). `Error::NotFound`
    /// for an unknown node type; a config or entity the node rejects names `config`,
    /// `entity_type`, `entity_id` or `entity`.
    pub async fn node_outputs(&self, type_id: &str, q: OutputsQuery) -> Result<Vec<OutputDecl>> {
        let reg = self.0.engine.registry();
        let t = reg.get(type_id).ok_or(Error::NotFound)?;
        let declared = t.info.entity_kind.clone();
        let kind_name = match (&q.entity_type, &declared) {
            (Some(given), Some(d)) if given != d => return Err(Error::field("entity_type", format!("{type_id} links a {d}, not a {given}"))),
            (Some(given), _) => Some(given.clone()),
            (None, d) => d.clone(),
        };
        let kind = match &kind_name {
            Some(k) => Some(flow::entity::EntityKind::parse(k).ok_or_else(|| Error::field("entity_type", format!("{k} is not an entity type")))?),
            None => None,
        };
        let entity: Option<Entity> = match (kind, q.entity, q.entity_id) {
            (Some(k), Some(mut values), id) => {
                flow_sync::resolve_prompts(&self.0.store, k, &mut values).await?;
                Some(flow_sync::sdk_entity(k, id.unwrap_or(0), &values).map_err(|m| Error::field("entity", m.to_string()))?)
            }
            (Some(k), None, Some(id)) => {
                let c = self.0.engine.services().entities.get(k, id).ok_or_else(|| Error::field("entity_id", format!("no {k} with id {id}")))?;
                Some((*c.entity).clone())
            }
            (None, Some(_), _) | (None, None, Some(_)) => return Err(Error::field("entity_type", format!("{type_id} links no entity"))),
            _ => None,
        };
        let config = q.config.unwrap_or_else(|| json!({}));
        match self.0.engine.node_outputs(type_id, &config, entity.as_ref()).await {
            Ok(Ok(o)) => Ok(o),
            Ok(Err(why)) => Err(Error::field("config", why)),
            Err(e) => Err(Error::from_flow(e, "config")),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Validate, publish, rollback

    /// Every problem of a flow's graph: `graph` (unsaved) or, when `None`, the stored draft.
    pub async fn validate(&self, flow_id: i64, graph: Option<Graph>) -> Result<Vec<Problem>> {
        let flow = self.0.store.call_flows().get(flow_id).await?.ok_or(Error::NotFound)?;
        let graph = match graph {
            Some(g) => g,
            None => parse_graph(&flow.flow_data)?,
        };
        Ok(self.0.engine.validate(Some(flow_id), &graph).await)
    }

    /// Publishes a flow's draft as its next version: its graph and the configuration, now,
    /// of every menu, ring group, time switch, voicemail box and conference bridge it links
    /// (what its calls will run with). `Error::FlowInvalid` (nothing changed) when it has
    /// errors.
    pub async fn publish(&self, flow_id: i64, actor: &Actor) -> Result<Published> {
        let _g = self.0.publish.lock().await;
        let store = &self.0.store;
        let flow = store.call_flows().get(flow_id).await?.ok_or(Error::NotFound)?;
        let graph = parse_graph(&flow.flow_data)?;
        let next = self.next_version(flow_id).await?;
        let entities = versions::capture(store, &graph).await?;
        let pinned = Arc::new(versions::pin(store, &entities).await?);
        let prepared = self.0.engine.prepare_pinned(flow_id, next, graph, None, pinned).await.map_err(|e| Error::from_flow(e, "flow_data"))?;
        self.commit_version(actor, prepared, &flow.flow_data, &entities, None).await
    }

    /// Publishes an earlier version again as the next version: its graph, its plugin
    /// versions and the entity configuration it captured. Refused when an entity it captured
    /// has since been deleted (its messages, its PIN, its number are gone with it).
    pub async fn rollback(&self, flow_id: i64, version: i64, actor: &Actor) -> Result<Published> {
        let _g = self.0.publish.lock().await;
        let store = &self.0.store;
        store.call_flows().get(flow_id).await?.ok_or(Error::NotFound)?;
        let old =
            store.flow_versions().get(flow_id, version).await?.ok_or_else(|| Error::field("version", format!("flow {flow_id} has no version {version}")))?;
        let entities = versions::of_version(store, &old).await?;
        for c in &entities.configs {
            if flow_sync::read_row(store, c.kind, c.id).await?.is_none() {
                return Err(Error::field(
                    "version",
                    format!(
                        "version {version} uses the {} \"{}\", which has been deleted since: it cannot be made live again",
                        versions::kind_label(c.kind),
                        c.name()
                    ),
                ));
            }
        }
        let next = self.next_version(flow_id).await?;
        let prepared =
            load_version_with(&self.0.engine, store, &self.0.data_dir, &old, next, &entities.configs).await.map_err(|e| Error::from_flow(e, "version"))?;
        self.commit_version(actor, prepared, &old.flow_data, &entities.configs, Some(old.version)).await
    }

    async fn next_version(&self, flow_id: i64) -> Result<i64> {
        Ok(self.0.store.flow_versions().latest(flow_id).await?.map_or(1, |v| v.version + 1))
    }

    /// Writes `prepared` as the next version of its flow (with the entity configuration it
    /// runs with and its audit row) and swaps it in. The caller holds the publish lock.
    async fn commit_version(
        &self,
        actor: &Actor,
        prepared: Arc<PreparedFlow>,
        graph: &Value,
        entities: &[versions::EntityConfig],
        rolled_back_to: Option<i64>,
    ) -> Result<Published> {
        let flow_id = prepared.flow_id;
        let pins = json!(prepared.plugins());
        let mut tx = self.0.store.begin().await?;
        let v = tx.flow_versions().publish_pinned(flow_id, graph, &pins, &actor.name).await?;
        if v.version != prepared.version {
            // Only this process writes versions, under the publish lock.
            return Err(Error::Internal(format!("flow {flow_id}: prepared version {} but the store numbered it {}", prepared.version, v.version)));
        }
        versions::record(&mut tx, flow_id, v.version, entities).await?;
        let captured: Vec<Value> = entities.iter().map(|c| json!({"entity_type": c.kind.as_str(), "entity_id": c.id})).collect();
        let (action, after) = match rolled_back_to {
            Some(from) => ("rollback", json!({"version": v.version, "graph_of_version": from, "plugins": pins, "entities": captured})),
            None => ("publish", json!({"version": v.version, "plugins": pins, "entities": captured, "warnings": prepared.warnings.len()})),
        };
        tx.audit(actor, action, ResourceKind::CallFlow.as_str(), Some(&flow_id.to_string()), None, Some(&after)).await?;
        tx.commit().await?;
        let warnings = prepared.warnings.clone();
        self.0.engine.install(prepared);
        self.set_live(flow_id, Some(v.version));
        tracing::info!(flow = flow_id, version = v.version, by = %actor.name, action, "flow version live");
        Ok(Published { version: v, warnings, rolled_back_to })
    }

    // -----------------------------------------------------------------------------------------
    // Simulate

    /// Runs a scripted call through a version of a flow (the draft, the live version or a
    /// published one) in the simulator.
    pub async fn simulate(&self, flow_id: i64, sel: VersionSel, script: Script) -> Result<SimReport> {
        let flow = self.0.store.call_flows().get(flow_id).await?.ok_or(Error::NotFound)?;
        let engine = &self.0.engine;
        let target = match sel {
            VersionSel::Draft => SimTarget::Draft { flow_id, graph: parse_graph(&flow.flow_data)? },
            VersionSel::Live => SimTarget::Prepared(engine.published(flow_id).ok_or_else(|| Error::field("version", "the flow has no live version"))?),
            VersionSel::Number(n) => match engine.published(flow_id).filter(|p| p.version == n) {
                Some(p) => SimTarget::Prepared(p),
                None => {
                    let row = self
                        .0
                        .store
                        .flow_versions()
                        .get(flow_id, n)
                        .await?
                        .ok_or_else(|| Error::field("version", format!("flow {flow_id} has no version {n}")))?;
                    SimTarget::Prepared(self.load_version(&row, n).await.map_err(|e| Error::from_flow(e, "version"))?)
                }
            },
        };
        engine.simulate(target, script).await.map_err(|e| Error::from_flow(e, "script"))
    }
}

/// The graph of a version (a number, the live one) or of the draft, and the version's
/// number (`None`: the draft).
pub async fn graph_of(store: &Store, flow_id: i64, sel: VersionSel) -> Result<(Graph, Option<i64>)> {
    let flow = store.call_flows().get(flow_id).await?.ok_or(Error::NotFound)?;
    let (value, number) = match sel {
        VersionSel::Draft => (flow.fields.flow_data, None),
        VersionSel::Live => {
            let v = store.flow_versions().latest(flow_id).await?.ok_or_else(|| Error::field("version", "the flow has no published version"))?;
            (v.flow_data, Some(v.version))
        }
        VersionSel::Number(n) => (store.flow_versions().get(flow_id, n).await?.ok_or(Error::NotFound)?.flow_data, Some(n)),
    };
    Ok((parse_graph(&value)?, number))
}

/// A stored graph: unreadable is the caller's `flow_data` problem.
fn parse_graph(v: &Value) -> Result<Graph> {
    Graph::from_value(v.clone()).map_err(|e| Error::from_flow(e, "flow_data"))
}

/// A flow error in one line (errors of an invalid graph spelled out).
pub fn flow_error_text(e: &flow::Error) -> String {
    match e {
        flow::Error::Invalid(problems) => {
            let errors: Vec<String> = problems.iter().filter(|p| p.severity == Severity::Error).map(|p| p.message.clone()).collect();
            format!("the flow has errors: {}", errors.join("; "))
        }
        other => other.to_string(),
    }
}

/// A plugin's component file that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("reading {}: {source}", path.display())]
pub struct PluginFileError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Why a plugin row was not installed into the registry.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{0}")]
    File(#[from] PluginFileError),
    /// The engine refused the component.
    #[error("{0}")]
    Engine(#[from] flow::Error),
    /// The blocking task that installs it did not finish.
    #[error("{0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Reads a plugin's component file (`data_dir` + the row's `file_path`).
pub(crate) async fn plugin_bytes(data_dir: &Path, p: &Plugin) -> Result<Vec<u8>, PluginFileError> {
    let path = data_dir.join(&p.file_path);
    tokio::fs::read(&path).await.map_err(|source| PluginFileError { path, source })
}

/// Prepares a stored flow version as version `as_version` of its flow (not installed), with
/// the plugin versions it was published with (those whose rows and files still exist; the
/// others resolve to what is installed now) and the entity configuration it captured
/// ([`versions::of_version`]). What start-up, rollback, simulating an old version, a call to
/// a flow the engine does not hold and `flowpbx flow simulate` load.
pub async fn load_version(engine: &Engine, store: &Store, data_dir: &Path, row: &FlowVersion, as_version: i64) -> Result<Arc<PreparedFlow>, flow::Error> {
    let entities = versions::of_version(store, row).await.map_err(|e| flow::Error::Engine(e.to_string()))?;
    load_version_with(engine, store, data_dir, row, as_version, &entities.configs).await
}

/// [`load_version`] with the version's entities already read.
async fn load_version_with(
    engine: &Engine,
    store: &Store,
    data_dir: &Path,
    row: &FlowVersion,
    as_version: i64,
    entities: &[versions::EntityConfig],
) -> Result<Arc<PreparedFlow>, flow::Error> {
    let graph = Graph::from_value(row.flow_data.clone())?;
    let entity_pins = Arc::new(versions::pin(store, entities).await.map_err(|e| flow::Error::Engine(e.to_string()))?);
    let pins: Vec<(String, String)> = row.plugins.as_object().into_iter().flatten().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect();
    if pins.is_empty() {
        return engine.prepare_pinned(row.flow_id, as_version, graph, None, entity_pins).await;
    }
    let rows = store.plugins().list(Page::all()).await.map_err(|e| flow::Error::Engine(e.to_string()))?.items;
    let mut pinned: Vec<(Vec<u8>, PluginGrants)> = Vec::new();
    for (id, sha) in &pins {
        let Some(p) = rows.iter().find(|p| &p.sha256 == sha) else {
            tracing::warn!(flow = row.flow_id, version = row.version, plugin = %id, "the plugin version this flow version was published with is gone; using the installed one");
            continue;
        };
        match plugin_bytes(data_dir, p).await {
            Ok(b) => pinned.push((b, crate::plugins::grants(p))),
            Err(e) => tracing::warn!(flow = row.flow_id, plugin = %id, error = %e, "pinned plugin unreadable; using the installed one"),
        }
    }
    let e = engine.clone();
    let reg = tokio::task::spawn_blocking(move || {
        let refs: Vec<(&[u8], &PluginGrants)> = pinned.iter().map(|(b, g)| (b.as_slice(), g)).collect();
        e.registry_pinned(&refs)
    })
    .await
    .map_err(|e| flow::Error::Engine(e.to_string()))??;
    engine.prepare_pinned(row.flow_id, as_version, graph, Some(&reg), entity_pins).await
}

/// Installs every enabled plugin row into the engine's registry. Returns how many loaded;
/// one that does not is logged and skipped.
pub async fn install_enabled_plugins(engine: &Engine, store: &Store, data_dir: &Path) -> Result<usize> {
    let mut n = 0;
    for p in store.plugins().list_enabled().await? {
        match install_plugin_row(engine, data_dir, &p).await {
            Ok(_) => n += 1,
            Err(e) => tracing::error!(plugin = %p.key(), version = %p.version, error = %e, "an enabled plugin could not be installed"),
        }
    }
    Ok(n)
}

/// Installs one plugin row (enabled, with its grants) into the registry, on a blocking
/// thread.
pub(crate) async fn install_plugin_row(engine: &Engine, data_dir: &Path, p: &Plugin) -> Result<NodeTypeInfo, InstallError> {
    let bytes = plugin_bytes(data_dir, p).await?;
    let granted = crate::plugins::grants(p);
    let engine = engine.clone();
    Ok(tokio::task::spawn_blocking(move || engine.install_plugin(&bytes, &granted)).await??)
}

// ---------------------------------------------------------------------------------------------
// What a simulation shows

/// One node of a simulated call.
#[derive(Debug, Clone, Serialize)]
pub struct SimStep {
    pub node_id: String,
    pub node_type: String,
    pub output: Option<String>,
    /// From the start of the call.
    pub entered_at_ms: u64,
    pub duration_ms: u64,
    pub error: Option<String>,
    /// The node's log lines (`level: message`).
    pub logs: Vec<String>,
}

/// What a simulated call did, as the API and `flowpbx flow simulate` show it.
#[derive(Debug, Clone, Serialize)]
pub struct Simulation {
    pub flow_id: i64,
    /// The version simulated (0: the draft).
    pub flow_version: i64,
    pub steps: Vec<SimStep>,
    /// How the call ended: `answered by extension 101`, `transferred to …`, `voicemail`, …
    pub outcome: String,
    /// Why the call failed, when a node failed with nowhere to go.
    pub error: Option<String>,
    /// What the caller experienced, in order (`{at_ms, event, detail}`).
    pub events: Vec<Value>,
    /// The HTTP requests nodes sent, and what they got.
    pub http_requests: Vec<Value>,
    pub duration_ms: u64,
    /// Whether a node failed (a step with an error, or a failure with nowhere to go).
    #[serde(skip)]
    pub failed: bool,
}

fn to_json<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn outcome_text(r: &SimReport) -> (String, Option<String>) {
    let event = |name: &str| r.events.iter().rev().find(|e| e.event == name).map(|e| e.detail.clone());
    match &r.trace.outcome {
        Outcome::Bridged { to } => (format!("answered by {to}"), None),
        Outcome::Transferred => (event("transfer").map(|t| format!("transferred to {t}")).unwrap_or_else(|| "transferred".into()), None),
        Outcome::HungUp { cause } => (format!("hung up ({})", to_json(cause).as_str().unwrap_or("normal")), None),
        Outcome::EndOfFlow => ("the flow ended: hung up".into(), None),
        Outcome::CallerHungUp => match event("message_stored") {
            Some(d) => (format!("voicemail: message left in {d}"), None),
            None => ("the caller hung up".into(), None),
        },
        Outcome::Failed { reason } => (format!("failed: {reason}"), Some(reason.clone())),
    }
}

impl From<SimReport> for Simulation {
    fn from(r: SimReport) -> Simulation {
        let failed = r.trace.steps.iter().any(|s| s.error.is_some()) || matches!(r.trace.outcome, Outcome::Failed { .. });
        let (outcome, error) = outcome_text(&r);
        let start = r.trace.steps.first().map(|s| s.entered_at);
        let steps = r
            .trace
            .steps
            .iter()
            .map(|s| SimStep {
                node_id: s.node_id.clone(),
                node_type: s.node_type.clone(),
                output: s.output.clone(),
                entered_at_ms: start.and_then(|t0| u64::try_from(s.entered_at.duration_since(t0).as_millis()).ok()).unwrap_or(0),
                duration_ms: s.duration_ms,
                error: s.error.clone(),
                logs: s.logs.iter().map(|l| format!("{}: {}", l.level, l.message)).collect(),
            })
            .collect();
        Simulation {
            flow_id: r.trace.flow_id,
            flow_version: r.trace.flow_version,
            steps,
            outcome,
            error,
            events: r.events.iter().map(to_json).collect(),
            http_requests: r.http_requests.iter().map(to_json).collect(),
            duration_ms: r.duration_ms,
            failed,
        }
    }
}
