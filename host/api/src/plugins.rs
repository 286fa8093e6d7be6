//! The plugin routes: upload a component, list the versions with what they ask for and were
//! granted, grant capabilities, networks and ports, enable or disable a version, delete. The
//! checks and the lifecycle are `pbx::plugins`'; this module parses the requests, says who
//! may (uploading and granting need a signed-in session: an API token of any scope gets 403;
//! an admin token may enable, disable and delete) and shapes the answers.

use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::routing::get;
use axum::Router;
use flow::types::Capability;
use pbx::plugins::PluginChange;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use store::Plugin;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Created, Data, Deleted, Json, List, ListMeta, PageQuery, PathParams, Query};
use crate::AppState;

/// The largest upload body accepted (the engine's component size limit is checked on top).
const MAX_UPLOAD: usize = (10 << 20) + (1 << 20);

/// A plugin version as the Plugins page shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginView {
    pub id: i64,
    pub vendor: String,
    pub name: String,
    pub version: String,
    pub sha256: String,
    /// The component's size in bytes.
    pub size: Option<u64>,
    /// What `describe()` asks for: `http:<host>`, `kv`, `directory`, `external_calls`,
    /// `voicemail`, `conference`, `caller_id`.
    pub requested_capabilities: Vec<String>,
    /// What an administrator granted of that.
    pub granted_capabilities: Vec<String>,
    /// Non-public networks (CIDRs) an administrator opened to its HTTP.
    pub granted_networks: Vec<String>,
    /// Ports besides 80 and 443 an administrator opened to its HTTP.
    pub granted_ports: Vec<u16>,
    pub enabled: bool,
    /// The node types it provides (`vendor/name`).
    pub node_types: Vec<String>,
    #[schema(value_type = String)]
    pub created_at: store::Timestamp,
    #[schema(value_type = String)]
    pub updated_at: store::Timestamp,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().into_iter().flatten().filter_map(|c| c.as_str().map(str::to_owned)).collect()
}

async fn view(state: &AppState, p: Plugin) -> PluginView {
    let size = tokio::fs::metadata(state.config().data_dir.join(&p.file_path)).await.ok().map(|m| m.len());
    let granted = pbx::plugins::grants(&p);
    PluginView {
        id: p.id,
        node_types: vec![p.key()],
        vendor: p.vendor,
        name: p.name,
        version: p.version,
        sha256: p.sha256,
        size,
        requested_capabilities: strings(&p.requested_capabilities),
        granted_capabilities: granted.capabilities.iter().map(Capability::to_string).collect(),
        granted_networks: granted.egress.networks.iter().map(ToString::to_string).collect(),
        granted_ports: granted.egress.ports,
        enabled: p.enabled,
        created_at: p.created_at,
        updated_at: p.updated_at,
    }
}

#[utoipa::path(get, path = "/api/v1/plugins", tag = "plugins", params(PageQuery), responses((status = 200, body = inline(List<PluginView>))))]
pub(crate) async fn list_plugins(State(state): State<AppState>, Query(q): Query<PageQuery>) -> ApiResult<List<PluginView>> {
    let page = q.page()?;
    let p = state.store().plugins().list(page).await?;
    let mut data = Vec::with_capacity(p.items.len());
    for row in p.items {
        data.push(view(&state, row).await);
    }
    Ok(List { data, meta: ListMeta { total: p.total, limit: page.limit, offset: page.offset } })
}

#[utoipa::path(get, path = "/api/v1/plugins/{id}", tag = "plugins", params(("id" = i64, Path)),
    responses((status = 200, body = inline(Data<PluginView>)), (status = 404, body = crate::error::ErrorEnvelope)))]
pub(crate) async fn get_plugin(State(state): State<AppState>, PathParams(id): PathParams<i64>) -> ApiResult<Data<PluginView>> {
    let p = state.store().plugins().get(id).await?.ok_or(ApiError::NotFound)?;
    Ok(Data::new(view(&state, p).await))
}

#[utoipa::path(post, path = "/api/v1/plugins", tag = "plugins",
    request_body(content_type = "multipart/form-data", description = "field file: the component (.wasm, built with `flowpbx node build`)"),
    responses((status = 201, description = "stored, disabled, nothing granted", body = inline(Data<PluginView>)),
              (status = 409, description = "this version is already uploaded", body = crate::error::ErrorEnvelope),
              (status = 422, description = "the component is refused (error.details names why)", body = crate::error::ErrorEnvelope)))]
pub(crate) async fn upload_plugin(State(state): State<AppState>, caller: Caller, mut form: Multipart) -> ApiResult<Created<PluginView>> {
    caller.require_session("only a signed-in session can upload plugins")?;
    let rt = state.flows().await?;
    let mut file: Option<bytes::Bytes> = None;
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => return Err(ApiError::PayloadTooLarge),
            Err(e) => return Err(ApiError::bad_request(format!("malformed multipart body: {}", e.body_text()))),
        };
        match field.name() {
            Some("file") => {
                file = Some(field.bytes().await.map_err(|e| {
                    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                        ApiError::PayloadTooLarge
                    } else {
                        ApiError::field("file", e.body_text())
                    }
                })?)
            }
            Some(other) => return Err(ApiError::field(other, "unknown field (expected file)")),
            None => return Err(ApiError::bad_request("multipart field without a name")),
        }
    }
    let bytes = file.ok_or_else(|| ApiError::field("file", "is required"))?;
    let p = rt.upload_plugin(bytes.to_vec(), &caller.actor()).await?;
    Ok(Created(view(&state, p).await))
}

/// What to change; absent fields are kept.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginUpdate {
    /// The capabilities granted (each one it asks for); the rest are denied.
    #[serde(default)]
    pub granted_capabilities: Option<Vec<String>>,
    /// Networks its HTTP may reach although they are not public (loopback, RFC 1918, CGNAT,
    /// link-local, unique-local, …): CIDRs without host bits (`10.1.0.0/16`, `fd00::/8`) or
    /// single addresses. Public addresses need none; unspecified, multicast and broadcast
    /// addresses stay closed whatever is granted.
    #[serde(default)]
    pub granted_networks: Option<Vec<String>>,
    /// Ports its HTTP may use besides 80 and 443 (1 to 65535).
    #[serde(default)]
    pub granted_ports: Option<Vec<u16>>,
    /// Enabling one version of a plugin disables its other versions.
    #[serde(default)]
    pub enabled: Option<bool>,
}

#[utoipa::path(put, path = "/api/v1/plugins/{id}", tag = "plugins", params(("id" = i64, Path)), request_body = PluginUpdate,
    responses((status = 200, body = inline(Data<PluginView>)), (status = 404, body = crate::error::ErrorEnvelope), (status = 422, body = crate::error::ErrorEnvelope),
              (status = 403, description = "an API token cannot change granted_capabilities, granted_networks or granted_ports (an admin token may enable and disable)", body = crate::error::ErrorEnvelope)))]
pub(crate) async fn update_plugin(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<i64>,
    Json(req): Json<PluginUpdate>,
) -> ApiResult<Data<PluginView>> {
    let change = PluginChange {
        granted_capabilities: req.granted_capabilities,
        granted_networks: req.granted_networks,
        granted_ports: req.granted_ports,
        enabled: req.enabled,
    };
    // what a plugin may reach is granted from a signed-in session only (an admin token may
    // enable, disable and delete)
    if change.grants_anything() {
        caller.require_session("only a signed-in session can grant plugin capabilities, networks or ports")?;
    }
    let rt = state.flows().await?;
    let row = rt.update_plugin(id, &change, &caller.actor()).await?;
    Ok(Data::new(view(&state, row).await))
}

#[utoipa::path(delete, path = "/api/v1/plugins/{id}", tag = "plugins", params(("id" = i64, Path)),
    responses((status = 200, body = inline(Data<Deleted>)), (status = 404, body = crate::error::ErrorEnvelope),
              (status = 409, description = "a live flow version runs it, or (enabled) a draft uses it: error.references", body = crate::error::ErrorEnvelope)))]
pub(crate) async fn delete_plugin(State(state): State<AppState>, caller: Caller, PathParams(id): PathParams<i64>) -> ApiResult<Data<Deleted>> {
    state.flows().await?.delete_plugin(id, &caller.actor()).await?;
    Ok(Data::new(Deleted { id, deleted: true }))
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/plugins", get(list_plugins).post(upload_plugin).layer(DefaultBodyLimit::max(MAX_UPLOAD)))
        .route("/plugins/{id}", get(get_plugin).put(update_plugin).delete(delete_plugin))
}
