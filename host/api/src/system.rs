//! Health (public), system status and the audit log.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};
use store::{AuditEntry, AuditFilter, Timestamp};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiResult;
use crate::extract::{Data, List, ListMeta, PageQuery, Query};
use crate::settings::SettingSource;
use crate::{AppState, ComponentStatus};

/// Health of the process and its components.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// ok | degraded
    pub status: &'static str,
    pub version: &'static str,
    pub uptime_seconds: u64,
    /// The database's schema version (the highest migration applied).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<i64>,
    /// Present while the server drains: new calls are refused, it exits after the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain: Option<crate::DrainStatus>,
    pub components: BTreeMap<String, ComponentStatus>,
}

async fn components(state: &AppState) -> BTreeMap<String, ComponentStatus> {
    let mut out = BTreeMap::new();
    let db = match state.probe_database().await {
        Ok(()) => ComponentStatus { status: "ok", detail: None },
        Err(e) => ComponentStatus { status: "down", detail: Some(e.to_string()) },
    };
    out.insert("database".to_owned(), db);
    let probes: Vec<_> = state.0.probes.read().map(|p| p.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
    for (name, probe) in probes {
        out.insert(name, probe());
    }
    if let Some(h) = state.flow_service().health() {
        out.insert("flows".to_owned(), ComponentStatus { status: h.status, detail: Some(h.detail) });
    }
    out
}

#[utoipa::path(get, path = "/api/v1/health", tag = "system",
    responses((status = 200, body = inline(Data<Health>), description = "a component's `detail` (its figures, or why it is not ok) only for a signed-in caller"),
              (status = 503, body = inline(Data<Health>), description = "a component is down")))]
pub(crate) async fn health(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let mut components = components(&state).await;
    // internal error text and figures are for administrators, not for whoever asks
    if crate::auth::principal(&state, &headers).await.is_err() {
        components.values_mut().for_each(|c| c.detail = None);
    }
    let down = components.values().any(|c| c.status == "down");
    let degraded = down || components.values().any(|c| c.status != "ok");
    let drain = state.drain().map(|d| (d.status)()).filter(|d| d.draining);
    let h = Health {
        status: if degraded { "degraded" } else { "ok" },
        version: state.config().version,
        uptime_seconds: state.uptime().as_secs(),
        schema_version: state.store().schema_version().await.ok(),
        drain,
        components,
    };
    let code = if down { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    (code, Data::new(h)).into_response()
}

/// What the system is and holds.
#[derive(Debug, Serialize, ToSchema)]
pub struct SystemStatus {
    pub version: &'static str,
    pub uptime_seconds: u64,
    pub schema_version: i64,
    pub database_path: String,
    pub database_size_bytes: u64,
    pub data_dir: String,
    pub sip_realm: String,
    pub counts: BTreeMap<String, i64>,
    /// effective listening ports and where each came from
    #[schema(value_type = Object)]
    pub ports: BTreeMap<String, (Option<String>, SettingSource)>,
    pub components: BTreeMap<String, ComponentStatus>,
    pub now: Timestamp,
}

#[utoipa::path(get, path = "/api/v1/system/status", tag = "system", responses((status = 200, body = inline(Data<SystemStatus>))))]
pub(crate) async fn status(State(state): State<AppState>) -> ApiResult<Data<SystemStatus>> {
    let store = state.store();
    let now = Timestamp::now();
    let mut counts = BTreeMap::new();
    counts.insert("extensions".to_owned(), store.extensions().count().await?);
    counts.insert("registrations".to_owned(), store.registrations().list_all_unexpired(now).await?.len() as i64);
    counts.insert("trunks".to_owned(), store.trunks().list(store::Page::new(1, 0)).await?.total);
    counts.insert("call_flows".to_owned(), store.call_flows().list(store::Page::new(1, 0)).await?.total);
    counts.insert("cdrs".to_owned(), store.cdrs().count().await?);
    let resolved = state.settings_layers().resolve(&store.settings().all().await?);
    let ports = resolved
        .iter()
        .filter(|(k, _)| k.ends_with("_port") || k.starts_with("rtp_port"))
        .map(|(k, r)| ((*k).to_owned(), (r.value.clone(), r.source.into())))
        .collect();
    let db_path = store.path().to_path_buf();
    let size = ["", "-wal"].iter().filter_map(|suffix| std::fs::metadata(format!("{}{suffix}", db_path.display())).ok()).map(|m| m.len()).sum();
    Ok(Data::new(SystemStatus {
        version: state.config().version,
        uptime_seconds: state.uptime().as_secs(),
        schema_version: store.schema_version().await?,
        database_path: db_path.display().to_string(),
        database_size_bytes: size,
        data_dir: state.config().data_dir.display().to_string(),
        sip_realm: store.sip_realm(),
        counts,
        ports,
        components: components(&state).await,
        now,
    }))
}

/// Filters of the audit log.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    pub limit: Option<i64>,
    pub offset: Option<i64>,
    pub entity_type: Option<String>,
    pub entity_id: Option<String>,
    pub actor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/audit-log", tag = "system", params(AuditQuery), responses((status = 200, body = inline(List<AuditEntry>))))]
pub(crate) async fn audit_log(State(state): State<AppState>, Query(q): Query<AuditQuery>) -> ApiResult<List<AuditEntry>> {
    let page = PageQuery { limit: q.limit, offset: q.offset }.page()?;
    let filter = AuditFilter { entity_type: q.entity_type, entity_id: q.entity_id, actor: q.actor };
    let p = state.store().audit_log().list(&filter, page).await?;
    Ok(List { data: p.items, meta: ListMeta { total: p.total, limit: page.limit, offset: page.offset } })
}

pub(crate) fn public_routes() -> Router<AppState> {
    Router::new().route("/health", get(health))
}

#[utoipa::path(post, path = "/api/v1/system/drain", tag = "system",
    responses((status = 202, description = "draining: new calls are refused with 503, the server exits when the last call ends or the deadline passes", body = inline(Data<crate::DrainStatus>)),
              (status = 409, description = "this server cannot drain (not started by the binary)", body = crate::error::ErrorEnvelope)))]
pub(crate) async fn drain(State(state): State<AppState>, caller: crate::auth::Caller) -> ApiResult<Response> {
    let Some(d) = state.drain() else {
        return Err(crate::ApiError::Conflict { message: "this server cannot drain".into(), references: vec![] });
    };
    let mut tx = state.store().begin().await?;
    tx.audit(&caller.actor(), "drain", "system", None, None, None).await?;
    tx.commit().await?;
    (d.start)();
    Ok((StatusCode::ACCEPTED, Data::new((d.status)())).into_response())
}

/// One backup archive in `<data-dir>/backups`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BackupFile {
    pub name: String,
    pub size_bytes: u64,
    pub created_at: Timestamp,
}

/// Scheduled backups: the schedule in force and the archives kept.
#[derive(Debug, Serialize, ToSchema)]
pub struct BackupsView {
    /// Where they are written.
    pub dir: String,
    /// Hours between scheduled backups (0: none).
    pub interval_hours: u64,
    /// How many are kept.
    pub keep: u64,
    /// The last scheduled backup's error, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Newest first.
    pub backups: Vec<BackupFile>,
}

async fn backups_view(state: &AppState) -> ApiResult<BackupsView> {
    use pbx::settings::keys;
    let resolved = state.settings_layers().resolve(&state.store().settings().all().await?);
    let num = |k: &str| resolved.get(k).and_then(|v| v.value.as_deref()).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let dir = pbx::backup::backups_dir(&state.config().data_dir);
    let backups = pbx::backup::list(&dir)
        .into_iter()
        .map(|(name, size_bytes, modified)| BackupFile {
            name,
            size_bytes,
            created_at: Timestamp::from_unix_millis(i64::try_from(modified).unwrap_or(0).saturating_mul(1000)).unwrap_or_else(Timestamp::now),
        })
        .collect();
    let last_error = state.0.backups.lock().map(|s| s.last_error.clone()).unwrap_or_default();
    Ok(BackupsView { dir: dir.display().to_string(), interval_hours: num(keys::BACKUP_INTERVAL_HOURS), keep: num(keys::BACKUP_KEEP), last_error, backups })
}

#[utoipa::path(get, path = "/api/v1/system/backups", tag = "system", responses((status = 200, body = inline(Data<BackupsView>))))]
pub(crate) async fn list_backups(State(state): State<AppState>) -> ApiResult<Data<BackupsView>> {
    Ok(Data::new(backups_view(&state).await?))
}

#[utoipa::path(post, path = "/api/v1/system/backups", tag = "system",
    responses((status = 201, description = "a backup was written now (the database, secret key, prompts, voicemail, plugins; not recordings); the list as it is after it", body = inline(Data<BackupsView>))))]
pub(crate) async fn create_backup(State(state): State<AppState>, caller: crate::auth::Caller) -> ApiResult<Response> {
    let keep = backups_view(&state).await?.keep.max(1) as usize;
    let data_dir = state.config().data_dir.clone();
    let dir = pbx::backup::backups_dir(&data_dir);
    let info = pbx::backup::scheduled(state.store(), &data_dir, &dir, keep, false, state.config().version)
        .await
        .map_err(|e| crate::ApiError::Internal(format!("backup failed: {e}")))?;
    let mut tx = state.store().begin().await?;
    tx.audit(
        &caller.actor(),
        "create",
        "backup",
        None,
        None,
        Some(&serde_json::json!({"file": info.path.file_name().map(|n| n.to_string_lossy().into_owned()), "bytes": info.size})),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Data::new(backups_view(&state).await?)).into_response())
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/system/status", get(status))
        .route("/audit-log", get(audit_log))
        .route("/system/drain", axum::routing::post(drain))
        .route("/system/backups", get(list_backups).post(create_backup))
}
