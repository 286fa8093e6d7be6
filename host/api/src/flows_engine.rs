//! The flow engine behind the REST API: the node registry, validating, publishing, rolling
//! back, diffing and simulating flows, and keeping the engine in step with storage.
//!
//! - [`FlowRuntime`]: the engine plus what the API keeps beside it (the publish lock, which
//!   version of each flow is live). [`AppState::start_flow_engine`] fills the engine from the
//!   store at start-up: entities, enabled plugins, and the live version of every published
//!   flow, prepared with the plugin versions it was published with.
//! - Routes: `GET /node-types`, `POST /node-types/{id}/outputs`, `POST /flows/{id}/validate`,
//!   `POST /flows/{id}/publish`, `POST /flows/{id}/rollback`,
//!   `GET /flows/{id}/versions/{a}/diff/{b}`, `POST /flows/{id}/simulate`.
//! - [`AppState::entity_changed`]: after every committed change to an entity (the generic
//!   CRUD layer calls it), the engine's entity cache is refreshed; a deleted flow stops
//!   taking calls.
//!
//! Publishing: validate → prepare (link the components) → insert the immutable
//! `flow_versions` row (with the plugin versions it runs, and its audit row) → swap it in.
//! Calls in progress keep the version they started with; the next call gets the new one as
//! soon as the request returns.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use flow::entity::Entity;
use flow::graph::{Graph, GraphEdge};
use flow::sim::{Answer, CannedResponse, MenuDtmf, Script, SimReport, SimTarget};
use flow::trace::Outcome;
use flow::types::{Capability, NodeTypeInfo, OutputDecl};
use flow::validate::Problem;
use flow::{Engine, PreparedFlow};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use store::{EntityKind, FlowVersion, Page, Plugin, Store};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::{parse_json, Data, Json, List, ListMeta, PathParams};
use crate::flow_sync;
use crate::AppState;

/// Where uploaded plugin components live, relative to the data dir: `<sha256>.wasm`.
pub const PLUGINS_DIR: &str = "plugins";

/// The flow engine and what the API keeps beside it. Cheap to clone.
#[derive(Clone)]
pub struct FlowRuntime(Arc<RuntimeInner>);

struct RuntimeInner {
    engine: Engine,
    data_dir: PathBuf,
    /// Publishing, rolling back and re-preparing after a grant change run one at a time, so
    /// a version number is prepared, written and installed in order.
    publish: tokio::sync::Mutex<()>,
    /// flow id → the version live in the engine.
    live: Mutex<BTreeMap<i64, i64>>,
    /// flow id → why its live version could not be loaded at start-up.
    failed: Mutex<BTreeMap<i64, String>>,
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

impl FlowRuntime {
    /// The engine (for the call wiring: `published`, `run_call`).
    pub fn engine(&self) -> &Engine {
        &self.0.engine
    }

    fn set_live(&self, flow_id: i64, version: Option<i64>) {
        let mut live = self.0.live.lock().unwrap_or_else(|e| e.into_inner());
        match version {
            Some(v) => live.insert(flow_id, v),
            None => live.remove(&flow_id),
        };
        self.0.failed.lock().unwrap_or_else(|e| e.into_inner()).remove(&flow_id);
    }

    /// Reads a plugin's component file.
    pub(crate) async fn plugin_bytes(&self, p: &Plugin) -> Result<Vec<u8>, String> {
        plugin_bytes(&self.0.data_dir, p).await
    }

    /// See [`load_version`].
    pub(crate) async fn load_version(&self, store: &Store, row: &FlowVersion, as_version: i64) -> Result<Arc<PreparedFlow>, flow::Error> {
        load_version(&self.0.engine, store, &self.0.data_dir, row, as_version).await
    }

    /// Loads the live version of every published flow into the engine (start-up).
    async fn load_published(&self, store: &Store) -> Result<(usize, Vec<(i64, String)>), store::StoreError> {
        let mut ok = 0;
        let mut failed = Vec::new();
        for f in store.call_flows().list_summaries(Page::all()).await?.items {
            if !f.published {
                continue;
            }
            let Some(row) = store.flow_versions().latest(f.id).await? else { continue };
            match self.load_version(store, &row, row.version).await {
                Ok(p) => {
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
    pub(crate) async fn reload_flows_using(&self, store: &Store, sha256: &str) {
        let _g = self.0.publish.lock().await;
        let live: Vec<(i64, i64)> = self.0.live.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|(f, v)| (*f, *v)).collect();
        for (flow_id, version) in live {
            let uses = self.0.engine.published(flow_id).is_some_and(|p| p.plugins().values().any(|s| s == sha256));
            if !uses {
                continue;
            }
            let row = match store.flow_versions().get(flow_id, version).await {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(e) => {
                    tracing::error!(flow = flow_id, error = %e, "could not reload a flow after a grant change");
                    continue;
                }
            };
            match self.load_version(store, &row, version).await {
                Ok(p) => self.0.engine.install(p),
                Err(e) => tracing::error!(flow = flow_id, version, error = %flow_error_text(&e), "could not reload a flow after a grant change; it keeps the grants it had"),
            }
        }
    }
}

/// Reads a plugin's component file (`data_dir` + the row's `file_path`).
async fn plugin_bytes(data_dir: &Path, p: &Plugin) -> Result<Vec<u8>, String> {
    let path = data_dir.join(&p.file_path);
    tokio::fs::read(&path).await.map_err(|e| format!("reading {}: {e}", path.display()))
}

/// Prepares a stored flow version as version `as_version` of its flow (not installed), with
/// the plugin versions it was published with: those whose rows and files still exist; the
/// others resolve to what is installed now. What start-up, rollback, simulating an old
/// version and `flowpbx flow simulate` load.
pub async fn load_version(engine: &Engine, store: &Store, data_dir: &Path, row: &FlowVersion, as_version: i64) -> Result<Arc<PreparedFlow>, flow::Error> {
    let graph = Graph::from_value(row.flow_data.clone())?;
    let pins: Vec<(String, String)> = row.plugins.as_object().into_iter().flatten().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect();
    if pins.is_empty() {
        return engine.prepare(row.flow_id, as_version, graph).await;
    }
    let rows = store.plugins().list(Page::all()).await.map_err(|e| flow::Error::Engine(e.to_string()))?.items;
    let mut pinned: Vec<(Vec<u8>, Vec<Capability>)> = Vec::new();
    for (id, sha) in &pins {
        let Some(p) = rows.iter().find(|p| &p.sha256 == sha) else {
            tracing::warn!(flow = row.flow_id, version = row.version, plugin = %id, "the plugin version this flow version was published with is gone; using the installed one");
            continue;
        };
        match plugin_bytes(data_dir, p).await {
            Ok(b) => pinned.push((b, capabilities(&p.granted_capabilities))),
            Err(e) => tracing::warn!(flow = row.flow_id, plugin = %id, error = %e, "pinned plugin unreadable; using the installed one"),
        }
    }
    let e = engine.clone();
    let reg = tokio::task::spawn_blocking(move || {
        let refs: Vec<(&[u8], &[Capability])> = pinned.iter().map(|(b, g)| (b.as_slice(), g.as_slice())).collect();
        e.registry_pinned(&refs)
    })
    .await
    .map_err(|e| flow::Error::Engine(e.to_string()))??;
    engine.prepare_in(row.flow_id, as_version, graph, &reg).await
}

/// Installs every enabled plugin row into the engine's registry. Returns how many loaded;
/// one that does not is logged and skipped.
pub async fn install_enabled_plugins(engine: &Engine, store: &Store, data_dir: &Path) -> Result<usize, store::StoreError> {
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
async fn install_plugin_row(engine: &Engine, data_dir: &Path, p: &Plugin) -> Result<NodeTypeInfo, String> {
    let bytes = plugin_bytes(data_dir, p).await?;
    let granted = capabilities(&p.granted_capabilities);
    let engine = engine.clone();
    tokio::task::spawn_blocking(move || engine.install_plugin(&bytes, &granted))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

/// Capabilities stored in a plugins row (a JSON array of strings); unreadable ones are
/// skipped.
pub(crate) fn capabilities(v: &Value) -> Vec<Capability> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| match c.as_str().map(str::parse::<Capability>) {
            Some(Ok(c)) => Some(c),
            _ => {
                tracing::warn!(capability = %c, "ignoring an unreadable stored capability");
                None
            }
        })
        .collect()
}

/// Where the flow engine's start is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineState {
    /// Nothing started it (yet): flow routes wait for a while, then answer 503.
    NotStarted,
    /// Starting in the background ([`AppState::flow_engine_starting`]).
    Starting,
    /// Serving.
    Ready,
    /// Could not start ([`AppState::flow_engine_failed`]).
    Failed,
}

/// How long a flow request waits for the engine to finish starting.
const FLOW_ENGINE_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

impl AppState {
    /// Starts the flow engine's side of the API: fills `engine` from the store (entities,
    /// enabled plugins, the live version of every published flow) and serves the flow
    /// routes with it. Call once, before serving.
    pub async fn start_flow_engine(&self, engine: Engine) -> Result<FlowBoot, ApiError> {
        let rt = FlowRuntime(Arc::new(RuntimeInner {
            engine,
            data_dir: self.config().data_dir.clone(),
            publish: tokio::sync::Mutex::new(()),
            live: Mutex::new(BTreeMap::new()),
            failed: Mutex::new(BTreeMap::new()),
        }));
        let store = self.store();
        let mut boot = FlowBoot { entities: flow_sync::load_entities(store, &rt.engine().services().entities).await?, ..FlowBoot::default() };
        boot.plugins = install_enabled_plugins(rt.engine(), store, &rt.0.data_dir).await?;
        let (flows, failed) = rt.load_published(store).await?;
        boot.flows = flows;
        boot.failed = failed;
        let probe_rt = rt.clone();
        self.register_health(
            "flows",
            Arc::new(move || {
                let live = probe_rt.0.live.lock().map(|l| l.len()).unwrap_or(0);
                let failed = probe_rt.0.failed.lock().map(|f| f.keys().map(|k| k.to_string()).collect::<Vec<_>>()).unwrap_or_default();
                crate::ComponentStatus {
                    status: if failed.is_empty() { "ok" } else { "degraded" },
                    detail: Some(if failed.is_empty() {
                        format!("{} node types, {live} flows live", probe_rt.engine().node_types().len())
                    } else {
                        format!("{live} flows live; not loaded: flows {}", failed.join(", "))
                    }),
                }
            }),
        );
        if self.0.flows.set(rt).is_err() {
            return Err(ApiError::Internal("the flow engine was started twice".into()));
        }
        self.0.flows_ready.send_replace(EngineState::Ready);
        Ok(boot)
    }

    /// The flow engine could not start: flow routes answer 503 at once instead of waiting.
    pub fn flow_engine_failed(&self, why: &str) {
        self.0.flows_ready.send_replace(EngineState::Failed);
        let why = why.to_owned();
        self.register_health("flows", Arc::new(move || crate::ComponentStatus { status: "down", detail: Some(why.clone()) }));
    }

    /// The flow engine is starting in the background (compiling the node components on a
    /// first start): health says so, and flow routes wait for it.
    pub fn flow_engine_starting(&self) {
        self.0.flows_ready.send_if_modified(|s| {
            let was = *s;
            if was == EngineState::NotStarted {
                *s = EngineState::Starting;
            }
            was == EngineState::NotStarted
        });
        self.register_health("flows", Arc::new(|| crate::ComponentStatus { status: "starting", detail: Some("loading node components".into()) }));
    }

    /// The flow runtime, once started ([`AppState::start_flow_engine`]).
    pub fn flow_runtime(&self) -> Option<&FlowRuntime> {
        self.0.flows.get()
    }

    /// The flow runtime; while the engine starts (at most a few seconds, on a first start
    /// with an empty component cache) a request waits for it rather than failing.
    pub(crate) async fn flows(&self) -> ApiResult<&FlowRuntime> {
        if let Some(rt) = self.flow_runtime() {
            return Ok(rt);
        }
        let mut ready = self.0.flows_ready.subscribe();
        let waited = tokio::time::timeout(FLOW_ENGINE_WAIT, ready.wait_for(|s| matches!(s, EngineState::Ready | EngineState::Failed))).await;
        match (waited, self.flow_runtime()) {
            (_, Some(rt)) => Ok(rt),
            (Err(_), None) => Err(ApiError::Unavailable("the flow engine is still starting; try again".into())),
            (Ok(_), None) => Err(ApiError::Unavailable("the flow engine is not running (see the log and /api/v1/health)".into())),
        }
    }

    /// Tells the flow engine an entity changed (created, updated or deleted, and
    /// committed): nodes see the change on their next run. Every writer of an entity calls
    /// it; the generic CRUD layer does for the entity routes.
    pub async fn entity_changed(&self, kind: EntityKind, id: i64) {
        // while the engine starts (its entity cache may already be loaded) the change waits
        // for it, so that it is not lost
        let starting = *self.0.flows_ready.borrow() == EngineState::Starting;
        let rt = match self.flow_runtime() {
            Some(rt) => rt,
            None if starting => match self.flows().await {
                Ok(rt) => rt,
                Err(_) => return,
            },
            None => return,
        };
        if kind == EntityKind::CallFlow {
            match self.store().call_flows().get(id).await {
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
        flow_sync::refresh_entity(self.store(), &rt.engine().services().entities, kind, id).await;
    }
}

/// Installs an enabled plugin row into the engine's registry. Returns its node type.
pub(crate) async fn install_plugin(rt: &FlowRuntime, p: &Plugin) -> Result<NodeTypeInfo, String> {
    install_plugin_row(rt.engine(), &rt.0.data_dir, p).await
}

// ---------------------------------------------------------------------------------------------
// Errors

fn flow_error_text(e: &flow::Error) -> String {
    match e {
        flow::Error::Invalid(problems) => {
            let errors: Vec<String> = problems.iter().filter(|p| p.severity == flow::validate::Severity::Error).map(|p| p.message.clone()).collect();
            format!("the flow has errors: {}", errors.join("; "))
        }
        other => other.to_string(),
    }
}

/// How bad a problem is: an error blocks publishing, a warning does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProblemSeverity {
    Error,
    Warning,
}

/// One problem the validator found in a graph (`flow::validate::Problem` on the wire).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ProblemView {
    pub severity: ProblemSeverity,
    /// What kind (`dangling_edge`, `unreachable`, …); a config problem's code starts with
    /// `config` and it names the `field`.
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edge_id: Option<String>,
    /// For a config problem: the dotted path inside the node's config (`rules.0.start`;
    /// empty for the config as a whole).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl From<&Problem> for ProblemView {
    fn from(p: &Problem) -> Self {
        ProblemView {
            severity: match p.severity {
                flow::validate::Severity::Error => ProblemSeverity::Error,
                flow::validate::Severity::Warning => ProblemSeverity::Warning,
            },
            // the code's serde name (snake_case), as the wire has always carried it
            code: serde_json::to_value(p.code).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
            message: p.message.clone(),
            node_id: p.node_id.clone(),
            edge_id: p.edge_id.clone(),
            field: p.field.clone(),
        }
    }
}

fn problems_json(problems: &[Problem]) -> Vec<ProblemView> {
    problems.iter().map(ProblemView::from).collect()
}

/// Maps a flow engine error onto the wire: the client's mistakes are 4xx naming what is
/// wrong (`field` for a shape or script error), a missing thing is 404, the rest 500.
pub(crate) fn flow_error(e: flow::Error, field: &str) -> ApiError {
    match e {
        flow::Error::Invalid(problems) => {
            let n = problems.iter().filter(|p| p.severity == flow::validate::Severity::Error).count();
            ApiError::FlowInvalid { message: format!("the flow has {n} error(s); nothing was changed"), problems: problems_json(&problems) }
        }
        flow::Error::Graph(m) => ApiError::field("flow_data", m),
        flow::Error::Plugin(m) | flow::Error::Script(m) => ApiError::field(field, m),
        flow::Error::NotFound(_) => ApiError::NotFound,
        other => ApiError::Internal(other.to_string()),
    }
}

fn parse_graph(v: &Value) -> ApiResult<Graph> {
    Graph::from_value(v.clone()).map_err(|e| flow_error(e, "flow_data"))
}

/// An optional JSON body: empty is `T::default()`.
fn optional_body<T: serde::de::DeserializeOwned + Default>(body: &Bytes) -> ApiResult<T> {
    if crate::extract::is_absent_body(body) { Ok(T::default()) } else { parse_json(body) }
}

// ---------------------------------------------------------------------------------------------
// Node types

/// A node type as the editor's palette lists it: what `describe()` returned and what the
/// host decided (`granted`, `wall_clock_ms`, `builtin`, `sha256`), plus `source`, `entry`
/// and `dynamic_outputs`.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeTypeView {
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub info: NodeTypeInfo,
    /// `builtin`, or the plugin id (`vendor/name`).
    pub source: String,
    /// An entry node (inbound number): no input handle.
    pub entry: bool,
    /// `false` when the outputs never depend on the config; absent: ask
    /// `POST /node-types/{id}/outputs`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dynamic_outputs: Option<bool>,
}

fn view(info: NodeTypeInfo) -> NodeTypeView {
    let entry = info.id == flow::graph::ENTRY_TYPE;
    NodeTypeView { source: if info.builtin { "builtin".into() } else { info.id.clone() }, entry, dynamic_outputs: entry.then_some(false), info }
}

#[utoipa::path(get, path = "/api/v1/node-types", tag = "flows",
    responses((status = 200, description = "every node type available: built-ins, then enabled plugins", body = inline(List<NodeTypeView>))))]
pub(crate) async fn node_types(State(state): State<AppState>) -> ApiResult<List<NodeTypeView>> {
    let types: Vec<NodeTypeView> = state.flows().await?.engine().node_types().into_iter().map(view).collect();
    let n = types.len() as i64;
    Ok(List { data: types, meta: ListMeta { total: n, limit: n, offset: 0 } })
}

/// A node's configuration and linked entity, to compute its outputs.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputsRequest {
    /// The node's `data.config` (`{}` when absent).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
    /// The linked entity's type (the node type's `entity_kind`).
    #[serde(default)]
    pub entity_type: Option<String>,
    /// The linked entity, read from the PBX's current data.
    #[serde(default)]
    pub entity_id: Option<i64>,
    /// The entity's unsaved values (as the entity's API shows them), instead of the stored
    /// ones.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub entity: Option<Value>,
}

/// One output of a node (wit `output`): the id an edge's `sourceHandle` names and `run`
/// returns, and the label the editor shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct NodeOutput {
    pub id: String,
    pub label: String,
    /// The call has left the flow when the node takes it: no edge is followed.
    pub terminal: bool,
}

impl From<OutputDecl> for NodeOutput {
    fn from(o: OutputDecl) -> Self {
        NodeOutput { id: o.id, label: o.label, terminal: o.terminal }
    }
}

#[utoipa::path(post, path = "/api/v1/node-types/{id}/outputs", tag = "flows", params(("id" = String, Path, description = "the node type id, URL-encoded (acme%2Fcrm)")),
    request_body = OutputsRequest,
    responses((status = 200, description = "the node's outputs with this config and entity", body = inline(Data<Vec<NodeOutput>>)),
              (status = 404, body = crate::error::ErrorEnvelope), (status = 422, description = "the node rejects the config or entity", body = crate::error::ErrorEnvelope)))]
pub(crate) async fn node_outputs(State(state): State<AppState>, PathParams(type_id): PathParams<String>, Json(req): Json<OutputsRequest>) -> ApiResult<Data<Vec<NodeOutput>>> {
    let rt = state.flows().await?;
    let reg = rt.engine().registry();
    let t = reg.get(&type_id).ok_or(ApiError::NotFound)?;
    let declared = t.info.entity_kind.clone();
    let kind_name = match (&req.entity_type, &declared) {
        (Some(given), Some(d)) if given != d => return Err(ApiError::field("entity_type", format!("{type_id} links a {d}, not a {given}"))),
        (Some(given), _) => Some(given.clone()),
        (None, d) => d.clone(),
    };
    let kind = match &kind_name {
        Some(k) => Some(flow::entity::EntityKind::parse(k).ok_or_else(|| ApiError::field("entity_type", format!("{k} is not an entity type")))?),
        None => None,
    };
    let entity: Option<Entity> = match (kind, req.entity, req.entity_id) {
        (Some(k), Some(mut values), id) => {
            flow_sync::resolve_prompts(state.store(), k, &mut values).await?;
            Some(flow_sync::sdk_entity(k, id.unwrap_or(0), &values).map_err(|m| ApiError::field("entity", m))?)
        }
        (Some(k), None, Some(id)) => {
            let c = rt.engine().services().entities.get(k, id).ok_or_else(|| ApiError::field("entity_id", format!("no {k} with id {id}")))?;
            Some((*c.entity).clone())
        }
        (None, Some(_), _) | (None, None, Some(_)) => return Err(ApiError::field("entity_type", format!("{type_id} links no entity"))),
        _ => None,
    };
    let config = req.config.unwrap_or_else(|| json!({}));
    match rt.engine().node_outputs(&type_id, &config, entity.as_ref()).await {
        Ok(Ok(o)) => Ok(Data::new(o.into_iter().map(NodeOutput::from).collect())),
        Ok(Err(why)) => Err(ApiError::field("config", why)),
        Err(e) => Err(flow_error(e, "config")),
    }
}

// ---------------------------------------------------------------------------------------------
// Validate, publish, rollback

/// `{}` validates the saved draft; `{flow_data}` an unsaved graph.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateRequest {
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub flow_data: Option<Value>,
}

/// Every problem of a graph; `valid` when none is an error (warnings do not block
/// publishing).
#[derive(Debug, Serialize, ToSchema)]
pub struct ValidationReport {
    pub valid: bool,
    /// Errors first.
    pub problems: Vec<ProblemView>,
}

#[utoipa::path(post, path = "/api/v1/flows/{id}/validate", tag = "flows", params(("id" = i64, Path)), request_body(content = Option<ValidateRequest>, description = "absent: the stored draft"),
    responses((status = 200, body = inline(Data<ValidationReport>)), (status = 404, body = crate::error::ErrorEnvelope), (status = 422, body = crate::error::ErrorEnvelope)))]
pub(crate) async fn validate_flow(State(state): State<AppState>, PathParams(id): PathParams<i64>, body: Bytes) -> ApiResult<Data<ValidationReport>> {
    let req: ValidateRequest = optional_body(&body)?;
    let rt = state.flows().await?;
    let flow = state.store().call_flows().get(id).await?.ok_or(ApiError::NotFound)?;
    let graph = parse_graph(req.flow_data.as_ref().unwrap_or(&flow.flow_data))?;
    let problems = rt.engine().validate(Some(id), &graph).await;
    Ok(Data::new(ValidationReport { valid: !flow::validate::has_errors(&problems), problems: problems_json(&problems) }))
}

/// A version now live.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublishedVersion {
    pub id: i64,
    pub flow_id: i64,
    pub version: i64,
    pub published_by: String,
    #[schema(value_type = String)]
    pub published_at: store::Timestamp,
    /// The plugin versions it runs: `{"vendor/name": "<sha256>"}`.
    #[schema(value_type = Object)]
    pub plugins: Value,
    pub live: bool,
    /// What the validator warned about (nothing that blocks publishing).
    pub warnings: Vec<ProblemView>,
    /// For a rollback: the version whose graph was published again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rolled_back_to: Option<i64>,
}

/// Writes `prepared` as the next version of its flow (with its audit row) and swaps it in.
/// The caller holds the publish lock.
async fn commit_version(state: &AppState, caller: &Caller, rt: &FlowRuntime, prepared: Arc<PreparedFlow>, graph: &Value, rolled_back_to: Option<i64>) -> ApiResult<PublishedVersion> {
    let flow_id = prepared.flow_id;
    let pins = json!(prepared.plugins());
    let actor = caller.actor();
    let mut tx = state.store().begin().await?;
    let v = tx.flow_versions().publish_pinned(flow_id, graph, &pins, &actor.name).await?;
    if v.version != prepared.version {
        // Only this process writes versions, under the publish lock.
        return Err(ApiError::Internal(format!("flow {flow_id}: prepared version {} but the store numbered it {}", prepared.version, v.version)));
    }
    let (action, after) = match rolled_back_to {
        Some(from) => ("rollback", json!({"version": v.version, "graph_of_version": from, "plugins": pins})),
        None => ("publish", json!({"version": v.version, "plugins": pins, "warnings": prepared.warnings.len()})),
    };
    tx.audit(&actor, action, EntityKind::CallFlow.as_str(), Some(&flow_id.to_string()), None, Some(&after)).await?;
    tx.commit().await?;
    let warnings = problems_json(&prepared.warnings);
    rt.engine().install(prepared);
    rt.set_live(flow_id, Some(v.version));
    tracing::info!(flow = flow_id, version = v.version, by = %actor.name, action, "flow version live");
    Ok(PublishedVersion {
        id: v.id,
        flow_id,
        version: v.version,
        published_by: v.published_by,
        published_at: v.published_at,
        plugins: v.plugins,
        live: true,
        warnings,
        rolled_back_to,
    })
}

async fn next_version(store: &Store, flow_id: i64) -> ApiResult<i64> {
    Ok(store.flow_versions().latest(flow_id).await?.map_or(1, |v| v.version + 1))
}

#[utoipa::path(post, path = "/api/v1/flows/{id}/publish", tag = "flows", params(("id" = i64, Path)),
    responses((status = 200, description = "the new version, live", body = inline(Data<PublishedVersion>)), (status = 404, body = crate::error::ErrorEnvelope),
              (status = 422, description = "the draft has errors: error.problems lists them all; nothing changed", body = crate::error::ErrorEnvelope)))]
pub(crate) async fn publish(State(state): State<AppState>, caller: Caller, PathParams(id): PathParams<i64>) -> ApiResult<Data<PublishedVersion>> {
    let rt = state.flows().await?;
    let _g = rt.0.publish.lock().await;
    let flow = state.store().call_flows().get(id).await?.ok_or(ApiError::NotFound)?;
    let graph = parse_graph(&flow.flow_data)?;
    let next = next_version(state.store(), id).await?;
    let prepared = rt.engine().prepare(id, next, graph).await.map_err(|e| flow_error(e, "flow_data"))?;
    Ok(Data::new(commit_version(&state, &caller, rt, prepared, &flow.flow_data, None).await?))
}

/// Which published version to publish again.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    pub version: i64,
}

#[utoipa::path(post, path = "/api/v1/flows/{id}/rollback", tag = "flows", params(("id" = i64, Path)), request_body = RollbackRequest,
    responses((status = 200, description = "a new version with the old one's graph and plugin versions, live", body = inline(Data<PublishedVersion>)),
              (status = 404, body = crate::error::ErrorEnvelope), (status = 422, body = crate::error::ErrorEnvelope)))]
pub(crate) async fn rollback(State(state): State<AppState>, caller: Caller, PathParams(id): PathParams<i64>, Json(req): Json<RollbackRequest>) -> ApiResult<Data<PublishedVersion>> {
    let rt = state.flows().await?;
    let _g = rt.0.publish.lock().await;
    state.store().call_flows().get(id).await?.ok_or(ApiError::NotFound)?;
    let old = state.store().flow_versions().get(id, req.version).await?.ok_or_else(|| ApiError::field("version", format!("flow {id} has no version {}", req.version)))?;
    let next = next_version(state.store(), id).await?;
    let prepared = rt.load_version(state.store(), &old, next).await.map_err(|e| flow_error(e, "version"))?;
    Ok(Data::new(commit_version(&state, &caller, rt, prepared, &old.flow_data, Some(old.version)).await?))
}

// ---------------------------------------------------------------------------------------------
// Diff

/// A node or edge in both versions that differs.
#[derive(Debug, Serialize, ToSchema)]
pub struct Change {
    pub id: String,
    #[schema(value_type = Object)]
    pub before: Value,
    #[schema(value_type = Object)]
    pub after: Value,
    /// What differs: `type`, `label`, `entity`, `position`, `config.<key>` (nodes);
    /// `source`, `target`, `sourceHandle`, `label` (edges).
    pub fields: Vec<String>,
}

/// Added, removed and changed items.
#[derive(Debug, Serialize, ToSchema)]
pub struct Changes {
    #[schema(value_type = Vec<Object>)]
    pub added: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    pub removed: Vec<Value>,
    pub changed: Vec<Change>,
}

/// What changed from `from` to `to`.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlowDiff {
    /// A version number or `"draft"`.
    #[schema(schema_with = version_ref_schema)]
    pub from: Value,
    #[schema(schema_with = version_ref_schema)]
    pub to: Value,
    pub nodes: Changes,
    pub edges: Changes,
    /// Whether the flow settings (the fallback) changed.
    pub settings_changed: bool,
}

/// A side of a diff in the document: a version number or `"draft"` (`"live"` is resolved to
/// its number).
fn version_ref_schema() -> utoipa::openapi::Schema {
    use utoipa::openapi::{schema::OneOfBuilder, ObjectBuilder, Schema, Type};
    Schema::OneOf(OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::Integer).format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Int64))).minimum(Some(1)))
        .item(ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["draft", "live"])))
        .build())
}

/// `draft`, `live` or a version number.
fn version_selector(s: &str) -> ApiResult<VersionSel> {
    match s {
        "draft" => Ok(VersionSel::Draft),
        "live" => Ok(VersionSel::Live),
        // digits only, as the document's pattern says ("+1" and "01" are not version numbers)
        n => Some(n)
            .filter(|n| !n.starts_with('0') && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<i64>().ok())
            .map(VersionSel::Number).ok_or_else(|| ApiError::field("version", format!("{n:?} is not a version number, \"draft\" or \"live\""))),
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum VersionSel {
    #[default]
    Draft,
    Live,
    Number(i64),
}

/// The graph JSON of a version (a number, `live`) or the draft, and what it is called in a
/// diff.
async fn graph_of(store: &Store, flow_id: i64, sel: VersionSel) -> ApiResult<(Value, Value)> {
    match sel {
        VersionSel::Draft => Ok((store.call_flows().get(flow_id).await?.ok_or(ApiError::NotFound)?.flow_data.clone(), json!("draft"))),
        VersionSel::Live => {
            let v = store.flow_versions().latest(flow_id).await?.ok_or_else(|| ApiError::field("version", "the flow has no published version"))?;
            Ok((v.flow_data, json!(v.version)))
        }
        VersionSel::Number(n) => {
            let v = store.flow_versions().get(flow_id, n).await?.ok_or(ApiError::NotFound)?;
            Ok((v.flow_data, json!(n)))
        }
    }
}

fn edge_fields(a: &GraphEdge, b: &GraphEdge) -> Vec<String> {
    let mut f = Vec::new();
    if a.source != b.source {
        f.push("source".into());
    }
    if a.target != b.target {
        f.push("target".into());
    }
    if a.source_handle != b.source_handle {
        f.push("sourceHandle".into());
    }
    if a.label != b.label {
        f.push("label".into());
    }
    f
}

fn to_json<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// The SPA's diff shape from the engine's.
fn diff_view(a: &Graph, b: &Graph, from: Value, to: Value) -> FlowDiff {
    let d = flow::diff::diff(a, b);
    let node = |g: &Graph, id: &str| g.node(id).map(to_json).unwrap_or(Value::Null);
    let nodes = Changes {
        added: d.nodes_added.iter().map(to_json).collect(),
        removed: d.nodes_removed.iter().map(to_json).collect(),
        changed: d
            .nodes_changed
            .iter()
            .map(|c| {
                let mut fields: Vec<String> = c.fields.iter().filter(|f| **f != "config").map(|f| f.to_string()).collect();
                fields.extend(c.config.iter().map(|k| if k.key.is_empty() { "config".to_string() } else { format!("config.{}", k.key) }));
                Change { id: c.id.clone(), before: node(a, &c.id), after: node(b, &c.id), fields }
            })
            .collect(),
    };
    let edges = Changes {
        added: d.edges_added.iter().map(to_json).collect(),
        removed: d.edges_removed.iter().map(to_json).collect(),
        changed: d.edges_changed.iter().map(|c| Change { id: c.id.clone(), before: to_json(&c.old), after: to_json(&c.new), fields: edge_fields(&c.old, &c.new) }).collect(),
    };
    FlowDiff { from, to, nodes, edges, settings_changed: d.settings_changed }
}

#[utoipa::path(get, path = "/api/v1/flows/{id}/versions/{a}/diff/{b}", tag = "flows",
    params(("id" = i64, Path), ("a" = String, Path, pattern = r"^([1-9][0-9]{0,17}|draft|live)$", description = "a version number, draft or live"), ("b" = String, Path, pattern = r"^([1-9][0-9]{0,17}|draft|live)$", description = "a version number, draft or live")),
    responses((status = 200, body = inline(Data<FlowDiff>)), (status = 404, body = crate::error::ErrorEnvelope)))]
pub(crate) async fn diff(State(state): State<AppState>, PathParams((id, a, b)): PathParams<(i64, String, String)>) -> ApiResult<Data<FlowDiff>> {
    let (sa, sb) = (version_selector(&a)?, version_selector(&b)?);
    state.store().call_flows().get(id).await?.ok_or(ApiError::NotFound)?;
    let (ga, from) = graph_of(state.store(), id, sa).await?;
    let (gb, to) = graph_of(state.store(), id, sb).await?;
    Ok(Data::new(diff_view(&parse_graph(&ga)?, &parse_graph(&gb)?, from, to)))
}

// ---------------------------------------------------------------------------------------------
// Simulate

/// Digits pressed when the flow asks for input.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimDigits {
    pub digits: String,
    /// How long after the node starts asking (default 1000).
    #[serde(default)]
    pub after_ms: Option<u64>,
}

/// A canned response for the webhook nodes.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimHttp {
    /// A URL, or a prefix of the URLs it answers (`https://api.example.com/route`).
    pub url: String,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub body: Option<String>,
    /// The server does not answer within the node's timeout.
    #[serde(default)]
    pub timeout: bool,
}

/// What an extension does when the simulated call rings it (`answers` of a
/// [`SimulateRequest`]; read by `answer_of`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SimAnswer {
    Answer,
    Busy,
    NoAnswer,
    Unavailable,
}

/// `version` of a [`SimulateRequest`]: a version number, `"draft"` or `"live"`, or null.
fn simulated_version_schema() -> utoipa::openapi::Schema {
    use utoipa::openapi::{schema::OneOfBuilder, ObjectBuilder, Schema, Type};
    Schema::OneOf(OneOfBuilder::new().item(version_ref_schema()).item(ObjectBuilder::new().schema_type(Type::Null)).build())
}

/// A scripted test call. Every field is optional.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulateRequest {
    /// `"draft"` (default), `"live"` or a published version number.
    #[serde(default)]
    #[schema(schema_with = simulated_version_schema)]
    pub version: Option<Value>,
    /// The caller's number.
    #[serde(default)]
    pub caller: Option<String>,
    #[serde(default)]
    pub caller_name: Option<String>,
    /// The number dialled (an inbound number).
    #[serde(default)]
    pub dialled: Option<String>,
    /// The entry node; by default the one `dialled` maps to, else the flow's only one.
    #[serde(default)]
    pub entry_node: Option<String>,
    /// Local date and time in `timezone`: `2026-12-25T09:00`.
    #[serde(default)]
    pub time: Option<String>,
    /// An IANA zone (`Australia/Sydney`; UTC when absent).
    #[serde(default)]
    pub timezone: Option<String>,
    /// What the caller presses each time the flow asks for input (one entry per menu).
    #[serde(default)]
    pub digits: Vec<SimDigits>,
    /// Extension id → `answer`, `busy`, `no_answer` or `unavailable`; extensions not listed
    /// answer.
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, SimAnswer>)]
    pub answers: BTreeMap<String, String>,
    /// Canned responses for outbound HTTP (webhook nodes).
    #[serde(default)]
    pub http: Vec<SimHttp>,
    /// The simulator's full script (`flow::sim::Script`: presence, DTMF at call times, the
    /// caller hanging up, external numbers, prompt lengths, kv state, extra entities…) for
    /// what the fields above do not cover; those fields win over it.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub script: Option<Value>,
}

/// One node of a simulated call.
#[derive(Debug, Serialize, ToSchema)]
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

/// What a simulated call did.
#[derive(Debug, Serialize, ToSchema)]
pub struct SimulateResult {
    pub flow_id: i64,
    /// The version simulated (0: the draft).
    pub flow_version: i64,
    pub steps: Vec<SimStep>,
    /// How the call ended: `answered by extension 101`, `transferred to …`, `voicemail`, …
    pub outcome: String,
    /// Why the call failed, when a node failed with nowhere to go.
    pub error: Option<String>,
    /// What the caller experienced, in order (`{at_ms, event, detail}`).
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<Value>,
    /// The HTTP requests nodes sent, and what they got.
    #[schema(value_type = Vec<Object>)]
    pub http_requests: Vec<Value>,
    pub duration_ms: u64,
}

fn answer_of(field: &str, s: &str) -> ApiResult<Answer> {
    let a: SimAnswer = serde_json::from_value(json!(s)).map_err(|_| ApiError::field(field, "must be answer, busy, no_answer or unavailable"))?;
    Ok(match a {
        SimAnswer::Answer => Answer::Answer,
        SimAnswer::Busy => Answer::Busy,
        SimAnswer::NoAnswer => Answer::NoAnswer,
        SimAnswer::Unavailable => Answer::Unavailable,
    })
}

/// The simulator's script from the request, against the live entities.
fn script_from(req: &SimulateRequest, rt: &FlowRuntime) -> ApiResult<Script> {
    let mut s: Script = match &req.script {
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| ApiError::field("script", e.to_string()))?,
        None => Script::parse("{}").map_err(|e| ApiError::field("script", e.to_string()))?,
    };
    if let Some(c) = &req.caller {
        s.caller.number = c.trim().to_string();
    }
    if req.caller_name.is_some() {
        s.caller.name = req.caller_name.clone().filter(|n| !n.trim().is_empty());
    }
    if let Some(d) = &req.dialled {
        s.dialled = d.trim().to_string();
    }
    if let Some(e) = req.entry_node.as_ref().filter(|e| !e.is_empty()) {
        s.entry = Some(e.clone());
    }
    if let Some(tz) = req.timezone.as_ref().filter(|t| !t.is_empty()) {
        jiff::tz::TimeZone::get(tz).map_err(|_| ApiError::field("timezone", format!("{tz:?} is not an IANA time zone")))?;
        s.clock.zone = tz.clone();
    }
    if let Some(t) = req.time.as_ref().filter(|t| !t.is_empty()) {
        let ok = t.parse::<jiff::civil::DateTime>().is_ok() || t.parse::<jiff::Timestamp>().is_ok();
        if !ok {
            return Err(ApiError::field("time", format!("{t:?} is not a date and time (2026-12-25T09:00)")));
        }
        s.clock.start = t.clone();
    }
    for (i, d) in req.digits.iter().enumerate() {
        if d.digits.is_empty() || !d.digits.chars().all(|c| "0123456789*#ABCD".contains(c)) {
            return Err(ApiError::field(format!("digits[{i}].digits"), "DTMF digits are 0-9, *, # and A-D"));
        }
        s.menu_dtmf.push(MenuDtmf { digits: d.digits.clone(), after_ms: d.after_ms.unwrap_or(1000) });
    }
    let snap = rt.engine().services().entities.snapshot();
    let mut answers: HashMap<i64, Answer> = HashMap::new();
    for (k, v) in &req.answers {
        let field = format!("answers.{k}");
        let id: i64 = k.parse().map_err(|_| ApiError::field(&field, "keys are extension ids"))?;
        if snap.get(flow::entity::EntityKind::Extension, id).is_none() {
            return Err(ApiError::field(&field, format!("no extension with id {id}")));
        }
        answers.insert(id, answer_of(&field, v)?);
    }
    for c in snap.all(flow::entity::EntityKind::Extension) {
        if let Entity::Extension(x) = &*c.entity {
            match answers.get(&x.id) {
                Some(a) => {
                    s.extensions.insert(x.extension.clone(), *a);
                }
                None => {
                    s.extensions.entry(x.extension.clone()).or_insert(Answer::Answer);
                }
            }
        }
    }
    for (i, h) in req.http.iter().enumerate() {
        let url = h.url.trim();
        if url::Url::parse(url.trim_end_matches('*')).is_err() {
            return Err(ApiError::field(format!("http[{i}].url"), "must be an absolute URL"));
        }
        s.http.push(CannedResponse {
            method: None,
            url: if url.ends_with('*') { url.to_string() } else { format!("{url}*") },
            status: h.status.unwrap_or(200),
            headers: BTreeMap::from([("content-type".to_string(), "application/json".to_string())]),
            body: Value::String(h.body.clone().unwrap_or_default()),
            // Longer than any node waits: the request times out.
            delay_ms: if h.timeout { 24 * 3600 * 1000 } else { 0 },
        });
    }
    Ok(s)
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

/// A simulation report as the API (and `flowpbx flow simulate`) shows it.
pub fn simulate_view(r: SimReport) -> SimulateResult {
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
    SimulateResult {
        flow_id: r.trace.flow_id,
        flow_version: r.trace.flow_version,
        steps,
        outcome,
        error,
        events: r.events.iter().map(to_json).collect(),
        http_requests: r.http_requests.iter().map(to_json).collect(),
        duration_ms: r.duration_ms,
    }
}

#[utoipa::path(post, path = "/api/v1/flows/{id}/simulate", tag = "flows", params(("id" = i64, Path)), request_body = SimulateRequest,
    responses((status = 200, description = "the path the call took, with each node's output and log lines", body = inline(Data<SimulateResult>)),
              (status = 404, body = crate::error::ErrorEnvelope), (status = 422, description = "a bad script field, or a draft with errors (error.problems)", body = crate::error::ErrorEnvelope)))]
pub(crate) async fn simulate(State(state): State<AppState>, PathParams(id): PathParams<i64>, Json(req): Json<SimulateRequest>) -> ApiResult<Data<SimulateResult>> {
    let rt = state.flows().await?;
    let flow = state.store().call_flows().get(id).await?.ok_or(ApiError::NotFound)?;
    let sel = match &req.version {
        None | Some(Value::Null) => VersionSel::Draft,
        Some(Value::String(s)) => version_selector(s)?,
        Some(Value::Number(n)) => version_selector(&n.to_string())?,
        Some(_) => return Err(ApiError::field("version", "must be \"draft\", \"live\" or a version number")),
    };
    let script = script_from(&req, rt)?;
    let target = match sel {
        VersionSel::Draft => SimTarget::Draft { flow_id: id, graph: parse_graph(&flow.flow_data)? },
        VersionSel::Live => SimTarget::Prepared(rt.engine().published(id).ok_or_else(|| ApiError::field("version", "the flow has no live version"))?),
        VersionSel::Number(n) => match rt.engine().published(id).filter(|p| p.version == n) {
            Some(p) => SimTarget::Prepared(p),
            None => {
                let row = state.store().flow_versions().get(id, n).await?.ok_or_else(|| ApiError::field("version", format!("flow {id} has no version {n}")))?;
                SimTarget::Prepared(rt.load_version(state.store(), &row, n).await.map_err(|e| flow_error(e, "version"))?)
            }
        },
    };
    let report = rt.engine().simulate(target, script).await.map_err(|e| flow_error(e, "script"))?;
    Ok(Data::new(simulate_view(report)))
}

/// The flow engine's routes (behind authentication).
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/node-types", get(node_types))
        .route("/node-types/{id}/outputs", post(node_outputs))
        .route("/flows/{id}/validate", post(validate_flow))
        .route("/flows/{id}/publish", post(publish))
        .route("/flows/{id}/rollback", post(rollback))
        .route("/flows/{id}/versions/{a}/diff/{b}", get(diff))
        .route("/flows/{id}/simulate", post(simulate))
}

/// The OpenAPI paths of the flow engine's and the plugins' routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(node_types, node_outputs, validate_flow, publish, rollback, diff, simulate,
          crate::plugins::list_plugins, crate::plugins::get_plugin, crate::plugins::upload_plugin, crate::plugins::update_plugin, crate::plugins::delete_plugin),
    components(schemas(NodeTypeView, OutputsRequest, ValidateRequest, ValidationReport, PublishedVersion, RollbackRequest, Change, Changes, FlowDiff,
                       SimDigits, SimHttp, SimulateRequest, SimStep, SimulateResult, crate::plugins::PluginView, crate::plugins::PluginUpdate, FieldError))
)]
pub(crate) struct FlowsDoc;

/// Where a plugin component is stored: `<data-dir>/plugins/<sha256>.wasm` (relative path).
pub(crate) fn plugin_file(sha256: &str) -> String {
    Path::new(PLUGINS_DIR).join(format!("{sha256}.wasm")).to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_is_draft_live_or_digits() {
        assert!(matches!(version_selector("draft"), Ok(VersionSel::Draft)));
        assert!(matches!(version_selector("live"), Ok(VersionSel::Live)));
        assert!(matches!(version_selector("12"), Ok(VersionSel::Number(12))));
        for bad in ["0", "01", "+1", "-1", "", "1.0", "99999999999999999999", "Draft"] {
            assert!(version_selector(bad).is_err(), "{bad:?}");
        }
    }

    /// The answers the document lists are the ones the simulator takes, and nothing else.
    #[test]
    fn a_simulated_answer_is_one_the_document_lists() {
        for (text, answer) in [("answer", Answer::Answer), ("busy", Answer::Busy), ("no_answer", Answer::NoAnswer), ("unavailable", Answer::Unavailable)] {
            assert_eq!(answer_of("answers.1", text).ok(), Some(answer), "{text}");
        }
        for bad in ["Answer", "", "answer_after_ms", "{\"answer_after_ms\": 5}", "ring"] {
            assert!(answer_of("answers.1", bad).is_err(), "{bad:?}");
        }
        let doc = serde_json::to_value(crate::openapi::document()).unwrap();
        let answers = &doc["components"]["schemas"]["SimulateRequest"]["properties"]["answers"]["additionalProperties"];
        assert_eq!(answers["$ref"], "#/components/schemas/SimAnswer", "{answers}");
        assert_eq!(doc["components"]["schemas"]["SimAnswer"]["enum"], json!(["answer", "busy", "no_answer", "unavailable"]));
    }

    /// A problem reaches the wire as the validator wrote it: the same fields and values as
    /// `flow::validate::Problem`'s own serialisation (which the wire carried before).
    #[test]
    fn a_problem_view_is_the_problem_as_serialised() {
        use flow::validate::{ProblemCode, Severity};
        let problems = [
            Problem { severity: Severity::Error, code: ProblemCode::InvalidConfig, message: "bad".into(), node_id: Some("n1".into()), edge_id: None, field: Some("rules.0.start".into()) },
            Problem { severity: Severity::Warning, code: ProblemCode::Unreachable, message: "far".into(), node_id: None, edge_id: Some("e2".into()), field: None },
        ];
        for p in &problems {
            assert_eq!(serde_json::to_value(ProblemView::from(p)).unwrap(), serde_json::to_value(p).unwrap());
        }
    }
}
