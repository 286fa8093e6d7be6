//! Node plugins: upload a component (checked: size limit, a component targeting a supported
//! world version, `describe()` within the limits, a namespaced id), list them with the
//! capabilities they ask for, grant capabilities, enable or disable a version, delete.
//!
//! A component is stored as `<data-dir>/plugins/<sha256>.wasm` and described by a
//! `plugins` row; several versions of one plugin may be uploaded, one is enabled at a time.
//! Enabling puts its node type in the registry (the palette and new publications use it);
//! published flows keep the version they were published with until they are republished.
//! Grants are the row's: a change applies to the next call of every flow running that
//! version. Uploading and granting need a signed-in session: an API token of any scope gets
//! 403 (an admin token may enable, disable and delete). Besides capabilities, an
//! administrator may open non-public networks (CIDRs) and ports other than 80 and 443 to a
//! plugin's HTTP; its `http:<host>` grants alone reach only public addresses on 80 and 443
//! (see `flow::egress`). They are stored in the row's `granted_capabilities` JSON as
//! `{"capabilities", "networks", "ports"}`; rows holding the first shape, a bare list of
//! capabilities, keep loading.

use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::routing::get;
use axum::Router;
use flow::types::{Capability, PluginGrants};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use store::{NewPlugin, Page, Plugin, Reference, Store};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::{Created, Data, Deleted, Json, List, ListMeta, PageQuery, PathParams, Query};
use crate::flows_engine::{capabilities, flow_error, install_plugin, plugin_file, plugin_grants, PLUGINS_DIR};
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
    let granted = plugin_grants(&p);
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

/// Writes a component to `<data-dir>/plugins/<sha256>.wasm` (temporary name, then rename).
async fn store_component(state: &AppState, sha256: &str, bytes: &[u8]) -> ApiResult<String> {
    let rel = plugin_file(sha256);
    let dir = state.config().data_dir.join(PLUGINS_DIR);
    tokio::fs::create_dir_all(&dir).await.map_err(ApiError::internal)?;
    let tmp = dir.join(format!(".{sha256}.{}.tmp", store::random_token(6)));
    let write = async {
        tokio::fs::write(&tmp, bytes).await?;
        tokio::fs::File::open(&tmp).await?.sync_all().await?;
        tokio::fs::rename(&tmp, state.config().data_dir.join(&rel)).await
    };
    if let Err(e) = write.await {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(ApiError::internal(e));
    }
    Ok(rel)
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
                    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE { ApiError::PayloadTooLarge } else { ApiError::field("file", e.body_text()) }
                })?)
            }
            Some(other) => return Err(ApiError::field(other, "unknown field (expected file)")),
            None => return Err(ApiError::bad_request("multipart field without a name")),
        }
    }
    let bytes = file.ok_or_else(|| ApiError::field("file", "is required"))?;
    let engine = rt.engine().clone();
    let checked = bytes.clone();
    let manifest = tokio::task::spawn_blocking(move || flow::tooling::inspect_plugin(&engine, &checked))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| flow_error(e, "file"))?;
    let id = manifest.info.id.clone();
    let (vendor, name) = id.split_once('/').ok_or_else(|| ApiError::field("file", format!("{id:?} is not vendor/name")))?;
    let version = manifest.info.version.clone();
    if let Some(existing) = state.store().plugins().get_by_identity(vendor, name, &version).await? {
        return Err(if existing.sha256 == manifest.sha256 {
            ApiError::Conflict { message: format!("{id} {version} is already uploaded (plugin {})", existing.id), references: vec![] }
        } else {
            ApiError::field("file", format!("{id} {version} is already uploaded with other content: give the new build a new version"))
        });
    }
    let rel = store_component(&state, &manifest.sha256, &bytes).await?;
    let requested: Vec<String> = manifest.requested().iter().map(Capability::to_string).collect();
    let new = NewPlugin {
        vendor: vendor.to_owned(),
        name: name.to_owned(),
        version: version.clone(),
        sha256: manifest.sha256.clone(),
        file_path: rel.clone(),
        requested_capabilities: json!(requested),
        granted_capabilities: PluginGrants::default().to_stored(),
        enabled: false,
    };
    let result = async {
        let mut tx = state.store().begin().await?;
        let p = tx.plugins().insert(&new).await?;
        let after = json!({"plugin": id, "version": version, "sha256": p.sha256, "size": bytes.len(), "requested_capabilities": requested});
        tx.audit(&caller.actor(), "create", "plugin", Some(&p.id.to_string()), None, Some(&after)).await?;
        tx.commit().await?;
        Ok::<_, ApiError>(p)
    }
    .await;
    match result {
        Ok(p) => {
            tracing::info!(plugin = %id, %version, sha256 = %p.sha256, "plugin uploaded");
            Ok(Created(view(&state, p).await))
        }
        Err(e) => {
            let _ = tokio::fs::remove_file(state.config().data_dir.join(&rel)).await;
            Err(e)
        }
    }
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

/// The grants a change asks for: the stored ones with the fields it gives replaced, each
/// checked (every problem named by its field).
fn parse_grants(p: &Plugin, req: &PluginUpdate) -> ApiResult<PluginGrants> {
    let mut out = plugin_grants(p);
    let mut errors = Vec::new();
    if let Some(given) = &req.granted_capabilities {
        let requested = capabilities(&p.requested_capabilities);
        out.capabilities.clear();
        for (i, s) in given.iter().enumerate() {
            let field = format!("granted_capabilities[{i}]");
            match s.parse::<Capability>() {
                Err(m) => errors.push(FieldError { field, message: m }),
                Ok(c) if !requested.contains(&c) => errors.push(FieldError { field, message: format!("{c} is not something {} asks for", p.key()) }),
                Ok(c) => {
                    if !out.capabilities.contains(&c) {
                        out.capabilities.push(c);
                    }
                }
            }
        }
    }
    if let Some(given) = &req.granted_networks {
        out.egress.networks.clear();
        for (i, s) in given.iter().enumerate() {
            match flow::egress::parse_network(s) {
                Err(m) => errors.push(FieldError { field: format!("granted_networks[{i}]"), message: m }),
                Ok(n) => {
                    if !out.egress.networks.contains(&n) {
                        out.egress.networks.push(n);
                    }
                }
            }
        }
    }
    if let Some(given) = &req.granted_ports {
        out.egress.ports.clear();
        for (i, &port) in given.iter().enumerate() {
            if port == 0 {
                errors.push(FieldError { field: format!("granted_ports[{i}]"), message: "must be between 1 and 65535".into() });
            } else if !out.egress.ports.contains(&port) {
                out.egress.ports.push(port);
            }
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(ApiError::Validation(errors)) }
}

#[utoipa::path(put, path = "/api/v1/plugins/{id}", tag = "plugins", params(("id" = i64, Path)), request_body = PluginUpdate,
    responses((status = 200, body = inline(Data<PluginView>)), (status = 404, body = crate::error::ErrorEnvelope), (status = 422, body = crate::error::ErrorEnvelope),
              (status = 403, description = "an API token cannot change granted_capabilities, granted_networks or granted_ports (an admin token may enable and disable)", body = crate::error::ErrorEnvelope)))]
pub(crate) async fn update_plugin(State(state): State<AppState>, caller: Caller, PathParams(id): PathParams<i64>, Json(req): Json<PluginUpdate>) -> ApiResult<Data<PluginView>> {
    // what a plugin may reach is granted from a signed-in session only (an admin token may
    // enable, disable and delete)
    if req.granted_capabilities.is_some() || req.granted_networks.is_some() || req.granted_ports.is_some() {
        caller.require_session("only a signed-in session can grant plugin capabilities, networks or ports")?;
    }
    let rt = state.flows().await?;
    let store = state.store();
    let current = store.plugins().get(id).await?.ok_or(ApiError::NotFound)?;
    let granted = parse_grants(&current, &req)?;
    let grants_changed = granted != plugin_grants(&current);
    let enable = req.enabled.unwrap_or(current.enabled);
    if enable && !current.enabled {
        // Checked before anything changes: the component still loads.
        let bytes = rt.plugin_bytes(&current).await.map_err(|m| ApiError::field("enabled", m))?;
        let engine = rt.engine().clone();
        tokio::task::spawn_blocking(move || flow::tooling::inspect_plugin(&engine, &bytes))
            .await
            .map_err(ApiError::internal)?
            .map_err(|e| flow_error(e, "enabled"))?;
    }
    let mut tx = store.begin().await?;
    let mut row = current.clone();
    if grants_changed {
        row = tx.plugins().set_granted(id, &granted.to_stored()).await?;
    }
    let mut disabled_others = Vec::new();
    if enable != current.enabled {
        if enable {
            for other in store.plugins().list_enabled().await?.into_iter().filter(|o| o.key() == current.key() && o.id != id) {
                tx.plugins().set_enabled(other.id, false).await?;
                disabled_others.push(other.version);
            }
        }
        row = tx.plugins().set_enabled(id, enable).await?;
    }
    let before = json!({"granted_capabilities": current.granted_capabilities, "enabled": current.enabled});
    let after = json!({"granted_capabilities": row.granted_capabilities, "enabled": row.enabled, "disabled_versions": disabled_others});
    tx.audit(&caller.actor(), "update", "plugin", Some(&id.to_string()), Some(&before), Some(&after)).await?;
    tx.commit().await?;

    if row.enabled && (!current.enabled || grants_changed) {
        install_plugin(rt, &row).await.map_err(|m| ApiError::Internal(format!("installing {} {}: {m}", row.key(), row.version)))?;
    } else if !row.enabled && current.enabled {
        rt.engine().remove_plugin(&row.key());
    }
    if grants_changed {
        rt.reload_flows_using(store, &row.sha256).await;
    }
    Ok(Data::new(view(&state, row).await))
}

/// Where a plugin version is still used: the nodes of live versions that run it, and — when
/// it is the enabled version, the one drafts use — the nodes of drafts.
async fn users(store: &Store, p: &Plugin) -> ApiResult<Vec<Reference>> {
    let key = p.key();
    let mut out = Vec::new();
    for f in store.call_flows().list(Page::all()).await?.items {
        let mut nodes_of = |graph: &Value, via: &dyn Fn(&str) -> String| {
            for n in graph["nodes"].as_array().into_iter().flatten() {
                if n["type"].as_str() == Some(key.as_str()) {
                    out.push(Reference { entity_type: "call_flow".into(), entity_id: f.id, name: f.name.clone(), via: via(n["id"].as_str().unwrap_or("?")) });
                }
            }
        };
        if p.enabled {
            nodes_of(&f.flow_data, &|n| format!("node:{n}"));
        }
        if f.published
            && let Some(v) = store.flow_versions().latest(f.id).await?
            && v.plugins.get(&key).and_then(Value::as_str) == Some(p.sha256.as_str())
        {
            let version = v.version;
            nodes_of(&v.flow_data, &|n| format!("published:v{version}:node:{n}"));
        }
    }
    Ok(out)
}

#[utoipa::path(delete, path = "/api/v1/plugins/{id}", tag = "plugins", params(("id" = i64, Path)),
    responses((status = 200, body = inline(Data<Deleted>)), (status = 404, body = crate::error::ErrorEnvelope),
              (status = 409, description = "a live flow version runs it, or (enabled) a draft uses it: error.references", body = crate::error::ErrorEnvelope)))]
pub(crate) async fn delete_plugin(State(state): State<AppState>, caller: Caller, PathParams(id): PathParams<i64>) -> ApiResult<Data<Deleted>> {
    let rt = state.flows().await?;
    let store = state.store();
    let p = store.plugins().get(id).await?.ok_or(ApiError::NotFound)?;
    let refs = users(store, &p).await?;
    if !refs.is_empty() {
        return Err(ApiError::Conflict { message: format!("{} {} is still in use ({} references)", p.key(), p.version, refs.len()), references: refs });
    }
    let mut tx = store.begin().await?;
    let gone = tx.plugins().delete(id).await?.ok_or(ApiError::NotFound)?;
    let before = json!({"plugin": gone.key(), "version": gone.version, "sha256": gone.sha256, "enabled": gone.enabled});
    tx.audit(&caller.actor(), "delete", "plugin", Some(&id.to_string()), Some(&before), None).await?;
    tx.commit().await?;
    if gone.enabled {
        rt.engine().remove_plugin(&gone.key());
    }
    if let Err(e) = tokio::fs::remove_file(state.config().data_dir.join(&gone.file_path)).await {
        tracing::warn!(error = %e, file = %gone.file_path, "could not remove a deleted plugin's component");
    }
    Ok(Data::new(Deleted { id, deleted: true }))
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/plugins", get(list_plugins).post(upload_plugin).layer(DefaultBodyLimit::max(MAX_UPLOAD)))
        .route("/plugins/{id}", get(get_plugin).put(update_plugin).delete(delete_plugin))
}
