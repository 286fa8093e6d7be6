//! What a flow's draft is against its live version, on the wire: the flow as the API shows it
//! (its row and its `draft` status), which flows an entity's edit affects, resetting a draft
//! to the live version, and the entity side of a version diff. The rules are
//! `pbx::versions`'; this maps them.
//!
//! Routes: `GET /flows/using/{entity_type}/{id}`, `POST /flows/{id}/reset-draft`.

use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use flow::entity::EntityKind;
use pbx::versions::{self, ChangeKind, DraftStatus, EntityChange, EntityRef, FieldChange, FlowUse};
use serde::Serialize;
use serde_json::Value;
use store::{CallFlow, ResourceKind};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Data, List, ListMeta, PathParams};
use crate::AppState;

/// An entity named: its kind, id and name.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EntityRefView {
    /// `ivr_menu`, `ring_group`, `time_switch`, `voicemail_box`, `conference_bridge`
    pub entity_type: String,
    pub entity_id: i64,
    pub name: String,
}

impl From<EntityRef> for EntityRefView {
    fn from(r: EntityRef) -> Self {
        EntityRefView { entity_type: r.entity_type, entity_id: r.entity_id, name: r.name }
    }
}

/// How a flow's draft stands against its live version.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DraftStatusView {
    /// The live version (null: never published).
    pub live_version: Option<i64>,
    /// Publishing the draft would change what calls get: its graph (node positions aside)
    /// or the configuration of an entity it links differs from the live version's. False for
    /// a flow never published.
    pub differs_from_live: bool,
    /// The graph differs (nodes, edges, labels, settings).
    pub graph_changed: bool,
    /// Entities the draft links that were edited since the live version captured them.
    pub entities_changed: Vec<EntityRefView>,
}

impl From<DraftStatus> for DraftStatusView {
    fn from(s: DraftStatus) -> Self {
        DraftStatusView {
            live_version: s.live_version,
            differs_from_live: s.differs_from_live,
            graph_changed: s.graph_changed,
            entities_changed: s.entities_changed.into_iter().map(Into::into).collect(),
        }
    }
}

/// A call flow as the API shows it: its draft and where its published history stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlowView {
    #[serde(flatten)]
    pub row: CallFlow,
    /// The draft against the live version (computed, read-only).
    pub draft: DraftStatusView,
}

/// Flows as the API shows them (`Resource::view` of `/flows`).
pub(crate) async fn flows(state: &AppState, rows: Vec<CallFlow>) -> ApiResult<Vec<FlowView>> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let draft = versions::draft_status(state.store(), &row).await?.into();
        out.push(FlowView { row, draft });
    }
    Ok(out)
}

/// A flow that links an entity, and what an edit of the entity means for it.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlowUseView {
    pub flow_id: i64,
    pub name: String,
    /// The draft links the entity.
    pub in_draft: bool,
    /// The live version, when it links the entity.
    pub live_version: Option<i64>,
    /// The entity's configuration is no longer what the live version captured: calls get
    /// the edit once the flow is published.
    pub entity_changed: bool,
    /// The flow's draft differs from its live version (this entity or anything else).
    pub needs_publish: bool,
}

impl From<FlowUse> for FlowUseView {
    fn from(u: FlowUse) -> Self {
        FlowUseView {
            flow_id: u.flow_id,
            name: u.name,
            in_draft: u.in_draft,
            live_version: u.live_version,
            entity_changed: u.entity_changed,
            needs_publish: u.needs_publish,
        }
    }
}

fn entity_kind(s: &str) -> ApiResult<EntityKind> {
    EntityKind::parse(s).ok_or_else(|| ApiError::field("entity_type", format!("{s:?} is not an entity type flows link")))
}

#[utoipa::path(get, path = "/api/v1/flows/using/{entity_type}/{id}", tag = "flows",
    params(("entity_type" = String, Path, description = "ivr_menu, ring_group, time_switch, voicemail_box, conference_bridge, extension or inbound_number"), ("id" = i64, Path)),
    responses((status = 200, description = "every flow whose draft or live version links the entity, by name", body = inline(List<FlowUseView>)),
              (status = 422, body = crate::error::ErrorEnvelope)))]
pub(crate) async fn flows_using(State(state): State<AppState>, PathParams((entity_type, id)): PathParams<(String, i64)>) -> ApiResult<List<FlowUseView>> {
    let kind = entity_kind(&entity_type)?;
    let uses: Vec<FlowUseView> = versions::flows_using(state.store(), kind, id).await?.into_iter().map(Into::into).collect();
    let total = uses.len() as i64;
    Ok(List { data: uses, meta: ListMeta { total, limit: total, offset: 0 } })
}

/// A draft reset to the live version.
#[derive(Debug, Serialize, ToSchema)]
pub struct DraftReset {
    /// The flow, its draft now the live version's graph.
    pub flow: FlowView,
    /// The live version the draft now equals.
    pub version: i64,
    /// Entities put back to what the live version captured (the drafts of other flows
    /// linking them changed too).
    pub entities_restored: Vec<EntityRefView>,
}

#[utoipa::path(post, path = "/api/v1/flows/{id}/reset-draft", tag = "flows", params(("id" = i64, Path)),
    responses((status = 200, description = "the draft is the live version again: its graph, and the captured configuration of the entities it links", body = inline(Data<DraftReset>)),
              (status = 404, body = crate::error::ErrorEnvelope),
              (status = 422, description = "never published, or an entity cannot be restored as it was (error.details says which); nothing changed", body = crate::error::ErrorEnvelope)))]
pub(crate) async fn reset_draft(State(state): State<AppState>, caller: Caller, PathParams(id): PathParams<i64>) -> ApiResult<Data<DraftReset>> {
    let reset = versions::reset_draft(state.store(), id, &caller.actor()).await?;
    for r in &reset.restored {
        if let Some(kind) = ResourceKind::parse(&r.entity_type) {
            state.entity_changed(kind, r.entity_id).await;
        }
    }
    let flow = flows(&state, vec![reset.flow]).await?.pop().ok_or_else(|| ApiError::internal("a view lost its row"))?;
    Ok(Data::new(DraftReset { flow, version: reset.version, entities_restored: reset.restored.into_iter().map(Into::into).collect() }))
}

/// One field of an entity before and after.
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldChangeView {
    /// The column (`timeout`), or a key inside a JSON column (`options.3`).
    pub field: String,
    /// Absent: the field (or key) was not there. Any JSON value (the column's).
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// How an entity differs between the two sides of a diff.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntityChangeKind {
    /// Linked only by the newer side.
    Added,
    /// Linked only by the older side.
    Removed,
    /// Linked by both, configured differently.
    Changed,
}

/// An entity's change between the two sides of a diff, field by field.
#[derive(Debug, Serialize, ToSchema)]
pub struct EntityChangeView {
    pub entity_type: String,
    pub entity_id: i64,
    pub name: String,
    pub change: EntityChangeKind,
    /// For a change: each field that differs.
    pub fields: Vec<FieldChangeView>,
}

impl From<EntityChange> for EntityChangeView {
    fn from(c: EntityChange) -> Self {
        EntityChangeView {
            entity_type: c.entity_type,
            entity_id: c.entity_id,
            name: c.name,
            change: match c.change {
                ChangeKind::Added => EntityChangeKind::Added,
                ChangeKind::Removed => EntityChangeKind::Removed,
                ChangeKind::Changed => EntityChangeKind::Changed,
            },
            fields: c.fields.into_iter().map(|f: FieldChange| FieldChangeView { field: f.field, before: f.before, after: f.after }).collect(),
        }
    }
}

/// The routes (behind authentication).
pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/flows/using/{entity_type}/{id}", get(flows_using)).route("/flows/{id}/reset-draft", post(reset_draft))
}

/// The OpenAPI paths and schemas of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(flows_using, reset_draft),
    components(schemas(EntityRefView, DraftStatusView, FlowView, FlowUseView, DraftReset, FieldChangeView, EntityChangeKind, EntityChangeView))
)]
pub(crate) struct VersionsDoc;
