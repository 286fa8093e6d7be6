//! The flow routes: the node registry, validating, publishing, rolling back, diffing and
//! simulating flows. Each handler parses its input, calls the flow runtime of the
//! application layer (`pbx::flows`) and maps the answer onto the wire; publishing and
//! everything else that changes the engine lives there.
//!
//! Routes: `GET /node-types`, `POST /node-types/{id}/outputs`, `POST /flows/{id}/validate`,
//! `POST /flows/{id}/publish`, `POST /flows/{id}/rollback`,
//! `GET /flows/{id}/versions/{a}/diff/{b}`, `POST /flows/{id}/simulate`. Flow routes wait
//! (up to 60 s) while the engine starts in the background.

use std::collections::{BTreeMap, HashMap};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use flow::entity::Entity;
use flow::graph::{Graph, GraphEdge};
use flow::sim::{Answer, CannedResponse, MenuDtmf, Script};
use flow::types::{NodeTypeInfo, OutputDecl};
use flow::validate::Problem;
use pbx::flows::{FlowRuntime, FlowService, OutputsQuery, Published, Simulation, VersionSel};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use store::ResourceKind;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::{parse_json, Data, Json, List, ListMeta, PathParams};
use crate::AppState;

impl AppState {
    /// The flow runtime's slot and lifecycle (the binary starts the engine through it).
    pub fn flow_service(&self) -> &FlowService {
        &self.0.flows
    }

    /// The flow runtime, once started.
    pub fn flow_runtime(&self) -> Option<&FlowRuntime> {
        self.0.flows.runtime()
    }

    /// The flow runtime; while the engine starts a request waits for it rather than failing.
    pub(crate) async fn flows(&self) -> ApiResult<&FlowRuntime> {
        Ok(self.0.flows.ready().await?)
    }

    /// Tells the flow engine an entity changed (created, updated or deleted, and
    /// committed): nodes see the change on their next run. Every writer of an entity calls
    /// it; the generic CRUD layer does for the entity routes.
    pub async fn entity_changed(&self, kind: ResourceKind, id: i64) {
        self.0.flows.entity_changed(kind, id).await;
        // a box's lamp extension may have moved, or the box (and its messages) gone
        if kind == ResourceKind::VoicemailBox {
            self.voicemail_changed().await;
        }
    }

    /// The voicemail counts changed (a message read, deleted, a box edited): the phones'
    /// message-waiting lamps follow.
    pub(crate) async fn voicemail_changed(&self) {
        if let Some(pbx) = self.pbx() {
            pbx.refresh_mwi().await;
        }
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

/// A graph given in a request: unreadable names `flow_data`.
fn parse_graph(v: Value) -> ApiResult<Graph> {
    Graph::from_value(v).map_err(|e| ApiError::from(pbx::Error::from_flow(e, "flow_data")))
}

/// An optional JSON body: empty is `T::default()`.
fn optional_body<T: serde::de::DeserializeOwned + Default>(body: &Bytes) -> ApiResult<T> {
    if crate::extract::is_absent_body(body) {
        Ok(T::default())
    } else {
        parse_json(body)
    }
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
pub(crate) async fn node_outputs(
    State(state): State<AppState>,
    PathParams(type_id): PathParams<String>,
    Json(req): Json<OutputsRequest>,
) -> ApiResult<Data<Vec<NodeOutput>>> {
    let rt = state.flows().await?;
    let q = OutputsQuery { config: req.config, entity_type: req.entity_type, entity_id: req.entity_id, entity: req.entity };
    Ok(Data::new(rt.node_outputs(&type_id, q).await?.into_iter().map(NodeOutput::from).collect()))
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
    let graph = req.flow_data.map(parse_graph).transpose()?;
    let problems = state.flows().await?.validate(id, graph).await?;
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

impl From<Published> for PublishedVersion {
    fn from(p: Published) -> Self {
        let v = p.version;
        PublishedVersion {
            id: v.id,
            flow_id: v.flow_id,
            version: v.version,
            published_by: v.published_by,
            published_at: v.published_at,
            plugins: v.plugins,
            live: true,
            warnings: problems_json(&p.warnings),
            rolled_back_to: p.rolled_back_to,
        }
    }
}

#[utoipa::path(post, path = "/api/v1/flows/{id}/publish", tag = "flows", params(("id" = i64, Path)),
    responses((status = 200, description = "the new version, live", body = inline(Data<PublishedVersion>)), (status = 404, body = crate::error::ErrorEnvelope),
              (status = 422, description = "the draft has errors: error.problems lists them all; nothing changed", body = crate::error::ErrorEnvelope)))]
pub(crate) async fn publish(State(state): State<AppState>, caller: Caller, PathParams(id): PathParams<i64>) -> ApiResult<Data<PublishedVersion>> {
    let published = state.flows().await?.publish(id, &caller.actor()).await?;
    Ok(Data::new(published.into()))
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
pub(crate) async fn rollback(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<i64>,
    Json(req): Json<RollbackRequest>,
) -> ApiResult<Data<PublishedVersion>> {
    let published = state.flows().await?.rollback(id, req.version, &caller.actor()).await?;
    Ok(Data::new(published.into()))
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
    /// The entities whose configuration differs (what each side runs with: a version's
    /// captured configuration, the draft's current one), field by field.
    pub entities: Vec<crate::flow_versions::EntityChangeView>,
    /// What to call each node of either side: its label, else its linked entity's name, else
    /// its type's name (the newer side's when they differ).
    pub labels: BTreeMap<String, String>,
}

/// A side of a diff in the document: a version number or `"draft"` (`"live"` is resolved to
/// its number).
fn version_ref_schema() -> utoipa::openapi::Schema {
    use utoipa::openapi::{schema::OneOfBuilder, ObjectBuilder, Schema, Type};
    Schema::OneOf(
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Int64)))
                    .minimum(Some(1)),
            )
            .item(ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["draft", "live"])))
            .build(),
    )
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
            .map(VersionSel::Number)
            .ok_or_else(|| ApiError::field("version", format!("{n:?} is not a version number, \"draft\" or \"live\""))),
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
        changed: d
            .edges_changed
            .iter()
            .map(|c| Change { id: c.id.clone(), before: to_json(&c.old), after: to_json(&c.new), fields: edge_fields(&c.old, &c.new) })
            .collect(),
    };
    FlowDiff { from, to, nodes, edges, settings_changed: d.settings_changed, entities: Vec::new(), labels: BTreeMap::new() }
}

/// What a person calls each node of the graphs: its label, else the name of the entity it
/// links (as that side has it), else its type's name.
async fn node_labels(state: &AppState, sides: [(&Graph, &[pbx::versions::EntityConfig]); 2]) -> ApiResult<BTreeMap<String, String>> {
    let types: Vec<NodeTypeInfo> = state.flow_runtime().map(|rt| rt.engine().node_types()).unwrap_or_default();
    let mut labels = BTreeMap::new();
    for (graph, entities) in sides {
        for n in &graph.nodes {
            let own = Some(n.data.label.trim()).filter(|l| !l.is_empty()).map(str::to_owned);
            let linked = match (n.data.entity_type.as_deref().and_then(flow::entity::EntityKind::parse), n.data.entity_id) {
                (Some(kind), Some(id)) => match entities.iter().find(|c| c.kind == kind && c.id == id) {
                    Some(c) => Some(c.name().to_owned()).filter(|s| !s.is_empty()),
                    None => pbx::flow_sync::read_row(state.store(), kind, id).await?.and_then(|row| {
                        let name = row.get("name").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
                        name.or_else(|| row.get("number").and_then(Value::as_str).map(str::to_owned))
                    }),
                },
                _ => None,
            };
            let typed = || types.iter().find(|t| t.id == n.node_type).map_or_else(|| n.node_type.clone(), |t| t.name.clone());
            labels.insert(n.id.clone(), own.or(linked).unwrap_or_else(typed));
        }
    }
    Ok(labels)
}

#[utoipa::path(get, path = "/api/v1/flows/{id}/versions/{a}/diff/{b}", tag = "flows",
    params(("id" = i64, Path), ("a" = String, Path, pattern = r"^([1-9][0-9]{0,17}|draft|live)$", description = "a version number, draft or live"), ("b" = String, Path, pattern = r"^([1-9][0-9]{0,17}|draft|live)$", description = "a version number, draft or live")),
    responses((status = 200, description = "graph and entity changes from a to b", body = inline(Data<FlowDiff>)), (status = 404, body = crate::error::ErrorEnvelope)))]
pub(crate) async fn diff(State(state): State<AppState>, PathParams((id, a, b)): PathParams<(i64, String, String)>) -> ApiResult<Data<FlowDiff>> {
    let (sa, sb) = (version_selector(&a)?, version_selector(&b)?);
    let (ga, from) = pbx::flows::graph_of(state.store(), id, sa).await?;
    let (gb, to) = pbx::flows::graph_of(state.store(), id, sb).await?;
    let ea = pbx::versions::entities_at(state.store(), id, sa).await?;
    let eb = pbx::versions::entities_at(state.store(), id, sb).await?;
    let name = |v: Option<i64>| v.map_or_else(|| json!("draft"), |n| json!(n));
    let mut view = diff_view(&ga, &gb, name(from), name(to));
    view.entities = pbx::versions::entity_changes(&ea, &eb).into_iter().map(Into::into).collect();
    view.labels = node_labels(&state, [(&ga, &ea), (&gb, &eb)]).await?;
    Ok(Data::new(view))
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

impl From<Simulation> for SimulateResult {
    fn from(v: Simulation) -> Self {
        SimulateResult {
            flow_id: v.flow_id,
            flow_version: v.flow_version,
            steps: v
                .steps
                .into_iter()
                .map(|s| SimStep {
                    node_id: s.node_id,
                    node_type: s.node_type,
                    output: s.output,
                    entered_at_ms: s.entered_at_ms,
                    duration_ms: s.duration_ms,
                    error: s.error,
                    logs: s.logs,
                })
                .collect(),
            outcome: v.outcome,
            error: v.error,
            events: v.events,
            http_requests: v.http_requests,
            duration_ms: v.duration_ms,
        }
    }
}

#[utoipa::path(post, path = "/api/v1/flows/{id}/simulate", tag = "flows", params(("id" = i64, Path)), request_body = SimulateRequest,
    responses((status = 200, description = "the path the call took, with each node's output and log lines", body = inline(Data<SimulateResult>)),
              (status = 404, body = crate::error::ErrorEnvelope), (status = 422, description = "a bad script field, or a draft with errors (error.problems)", body = crate::error::ErrorEnvelope)))]
pub(crate) async fn simulate(
    State(state): State<AppState>,
    PathParams(id): PathParams<i64>,
    Json(req): Json<SimulateRequest>,
) -> ApiResult<Data<SimulateResult>> {
    let rt = state.flows().await?;
    state.store().call_flows().get(id).await?.ok_or(ApiError::NotFound)?;
    let sel = match &req.version {
        None | Some(Value::Null) => VersionSel::Draft,
        Some(Value::String(s)) => version_selector(s)?,
        Some(Value::Number(n)) => version_selector(&n.to_string())?,
        Some(_) => return Err(ApiError::field("version", "must be \"draft\", \"live\" or a version number")),
    };
    let script = script_from(&req, rt)?;
    let report = rt.simulate(id, sel, script).await?;
    Ok(Data::new(Simulation::from(report).into()))
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
    paths(
        node_types,
        node_outputs,
        validate_flow,
        publish,
        rollback,
        diff,
        simulate,
        crate::plugins::list_plugins,
        crate::plugins::get_plugin,
        crate::plugins::upload_plugin,
        crate::plugins::update_plugin,
        crate::plugins::delete_plugin
    ),
    components(schemas(
        NodeTypeView,
        OutputsRequest,
        ValidateRequest,
        ValidationReport,
        PublishedVersion,
        RollbackRequest,
        Change,
        Changes,
        FlowDiff,
        SimDigits,
        SimHttp,
        SimulateRequest,
        SimStep,
        SimulateResult,
        crate::plugins::PluginView,
        crate::plugins::PluginUpdate,
        FieldError
    ))
)]
pub(crate) struct FlowsDoc;

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
            Problem {
                severity: Severity::Error,
                code: ProblemCode::InvalidConfig,
                message: "bad".into(),
                node_id: Some("n1".into()),
                edge_id: None,
                field: Some("rules.0.start".into()),
            },
            Problem {
                severity: Severity::Warning,
                code: ProblemCode::Unreachable,
                message: "far".into(),
                node_id: None,
                edge_id: Some("e2".into()),
                field: None,
            },
        ];
        for p in &problems {
            assert_eq!(serde_json::to_value(ProblemView::from(p)).unwrap(), serde_json::to_value(p).unwrap());
        }
    }
}
