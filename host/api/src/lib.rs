//! FlowPBX's REST API under `/api/v1` (axum): auth (sessions with CSRF, API tokens), the
//! entities of the data model, CDRs, prompts, settings, health and status, and the OpenAPI
//! document generated from this code (`/api/v1/openapi.json`).
//!
//! Entry points: [`AppState::new`] and [`router`]. Every response is the envelope
//! `{"data": …}` (lists add `"meta": {"total", "limit", "offset"}`) or
//! `{"error": {"code", "message", "details": [{"field", "message"}]}}`.
//!
//! **Architecture invariant:** no SQL here (everything goes through `store`); the wire
//! names of fields are the data model's column names; a secret, once set, is never returned.
#![forbid(unsafe_code)]

pub mod auth;
mod calls;
mod cdrs;
mod entities;
pub mod error;
pub mod extract;
mod files;
pub mod flow_versions;
pub mod flows_engine;
pub mod host_check;
pub mod login_limit;
pub mod metrics;
pub mod openapi;
mod plugins;
mod prompts;
mod recordings;
mod resources;
mod route_order;
pub mod route_patterns;
pub mod settings;
pub mod spa;
mod system;
pub mod transport;
mod trunks;
pub mod validate;
mod views;
mod voicemail;
mod webhooks;
mod ws;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use error::{ApiError, ApiResult};
pub use host_check::ConnInfo;
pub use pbx::settings::{SettingLayer, SettingsLayers};
pub use store::Store;
pub use transport::HttpsListener;

/// Static configuration of the API, from the binary's config.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The data dir (prompts, recordings, voicemail live under it).
    pub data_dir: PathBuf,
    /// The key API-token JWTs are signed with (derived from the secret key).
    pub jwt_secret: [u8; 32],
    /// The largest prompt upload accepted.
    pub max_upload_bytes: usize,
    /// The version reported by health and status.
    pub version: &'static str,
}

/// The state of one component as health reports it (`database`, and the `media`, `tls` and
/// `sip` probes the binary registers).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ComponentStatus {
    /// ok | degraded | down
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A component's health probe, registered by the crate that owns the component.
pub type HealthProbe = Arc<dyn Fn() -> ComponentStatus + Send + Sync>;

pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) config: ApiConfig,
    pub(crate) settings: SettingsLayers,
    pub(crate) started: Instant,
    pub(crate) login_limiter: login_limit::LoginLimiter,
    /// What the `Host` check accepts (loaded on first use, refreshed on a settings change).
    pub(crate) host_policy: host_check::SharedPolicy,
    pub(crate) probes: RwLock<BTreeMap<String, HealthProbe>>,
    /// The flow runtime and its lifecycle (the binary starts the engine through it; flow
    /// routes wait on it while it starts).
    pub(crate) flows: pbx::flows::FlowService,
    /// The running PBX, once the binary attached it (live registrations, calls, `/ws`).
    pub(crate) pbx: OnceLock<call::PbxHandle>,
    /// The certificate store and the HTTPS port, once the binary attached them.
    pub(crate) https: OnceLock<transport::Https>,
    /// `/metrics`: the registry, the HTTP counters and who may scrape.
    pub(crate) metrics: metrics::ApiMetrics,
    /// Draining (set by the binary): what health and the dashboard show.
    pub(crate) drain: OnceLock<DrainProbe>,
    /// The scheduled backups' last outcome (the binary runs `pbx::backup::run_schedule`).
    pub(crate) backups: Arc<std::sync::Mutex<pbx::backup::ScheduleState>>,
    /// The webhook notifier, once the binary started it.
    pub(crate) notifier: OnceLock<pbx::notify::Notifier>,
}

/// What the binary tells of a drain in progress, and how to start one.
#[derive(Clone)]
pub struct DrainProbe {
    /// The drain's state now.
    pub status: Arc<dyn Fn() -> DrainStatus + Send + Sync>,
    /// Starts draining (idempotent).
    pub start: Arc<dyn Fn() + Send + Sync>,
}

/// A drain's state.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct DrainStatus {
    /// Whether the server drains (refuses new calls, exits when the last call ends).
    pub draining: bool,
    /// Calls still in progress.
    pub active_calls: usize,
    /// Seconds since the drain began.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elapsed_seconds: Option<u64>,
    /// Seconds left before the calls left are ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline_seconds: Option<u64>,
}

/// What every handler can reach. Cheap to clone. It holds the flow service from the start;
/// the binary attaches the running PBX ([`AppState::attach_pbx`]) and the certificate store.
#[derive(Clone)]
pub struct AppState(pub(crate) Arc<Inner>);

impl AppState {
    pub fn new(store: Store, config: ApiConfig, settings: SettingsLayers) -> Self {
        AppState(Arc::new_cyclic(|weak| Inner {
            flows: pbx::flows::FlowService::new(store.clone(), config.data_dir.clone()),
            store,
            config,
            settings,
            started: Instant::now(),
            login_limiter: login_limit::LoginLimiter::default(),
            host_policy: tokio::sync::RwLock::new(None),
            probes: RwLock::new(BTreeMap::new()),
            pbx: OnceLock::new(),
            https: OnceLock::new(),
            metrics: metrics::ApiMetrics::new().with_collector(weak.clone()),
            drain: OnceLock::new(),
            backups: Arc::default(),
            notifier: OnceLock::new(),
        }))
    }

    /// What the backup schedule reports its outcome into.
    pub fn backup_schedule_state(&self) -> Arc<std::sync::Mutex<pbx::backup::ScheduleState>> {
        self.0.backups.clone()
    }

    /// Connects the binary's drain (health, the dashboard and `POST /system/drain`).
    pub fn attach_drain(&self, probe: DrainProbe) {
        let _ = self.0.drain.set(probe);
    }

    pub(crate) fn drain(&self) -> Option<&DrainProbe> {
        self.0.drain.get()
    }

    pub fn store(&self) -> &Store {
        &self.0.store
    }

    pub fn config(&self) -> &ApiConfig {
        &self.0.config
    }

    pub fn settings_layers(&self) -> &SettingsLayers {
        &self.0.settings
    }

    pub fn uptime(&self) -> Duration {
        self.0.started.elapsed()
    }

    /// Connects the running PBX: live registration counts, active calls and hangup, and the
    /// events `/ws` relays. Without it those report no registrations and no calls.
    pub fn attach_pbx(&self, pbx: call::PbxHandle) {
        let _ = self.0.pbx.set(pbx);
    }

    pub(crate) fn pbx(&self) -> Option<&call::PbxHandle> {
        self.0.pbx.get()
    }

    /// Connects the webhook notifier (test deliveries, circuits, wake-ups after a change).
    pub fn attach_notifier(&self, n: pbx::notify::Notifier) {
        let _ = self.0.notifier.set(n);
    }

    pub(crate) fn notifier(&self) -> Option<&pbx::notify::Notifier> {
        self.0.notifier.get()
    }

    /// Connects the certificate store and says where HTTPS listens (0: nowhere): HTTP-01
    /// answers, `GET /system/tls`, the redirect to HTTPS and HSTS once the certificate is
    /// trusted, the ACME domains in the `Host` check.
    pub fn attach_tls(&self, store: tls::CertStore, https_port: u16) {
        let _ = self.0.https.set(transport::Https { store, port: https_port });
        // the Host check learns the certificate's domains on its next load
        if let Ok(mut p) = self.0.host_policy.try_write() {
            *p = None;
        }
    }

    pub(crate) fn https(&self) -> Option<&transport::Https> {
        self.0.https.get()
    }

    /// What the `Host` check accepts now.
    pub(crate) async fn host_policy(&self) -> ApiResult<Arc<host_check::HostPolicy>> {
        if let Some(p) = self.0.host_policy.read().await.as_ref() {
            return Ok(p.clone());
        }
        self.refresh_host_policy().await
    }

    /// Reloads what the `Host` check accepts (after the settings or the setup state changed).
    pub(crate) async fn refresh_host_policy(&self) -> ApiResult<Arc<host_check::HostPolicy>> {
        let mut slot = self.0.host_policy.write().await;
        let p = Arc::new(host_check::HostPolicy::load(self).await?);
        *slot = Some(p.clone());
        Ok(p)
    }

    /// Adds a component to `/api/v1/health` (the binary adds "media", "tls" and "sip").
    pub fn register_health(&self, name: &str, probe: HealthProbe) {
        if let Ok(mut p) = self.0.probes.write() {
            p.insert(name.to_owned(), probe);
        }
    }
}

#[derive(Clone, Default)]
struct CounterRequestId(Arc<std::sync::atomic::AtomicU64>);

impl MakeRequestId for CounterRequestId {
    fn make_request_id<B>(&mut self, _req: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        HeaderValue::from_str(&format!("{n:x}")).ok().map(RequestId::new)
    }
}

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole HTTP application: `/api/v1/...` with its middleware. Serve it with
/// `into_make_service_with_connect_info::<ConnInfo>()` so that login limits see client
/// addresses and the `Host` check the local one.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .merge(auth::public_routes())
        .merge(system::public_routes())
        .merge(openapi::routes())
        .merge(
            Router::new()
                .merge(auth::routes())
                .merge(resources::routes())
                .merge(entities::routes())
                .merge(cdrs::routes())
                .merge(prompts::routes(state.config().max_upload_bytes))
                .merge(settings::routes())
                .merge(system::routes())
                .merge(transport::routes())
                .merge(flows_engine::routes())
                .merge(flow_versions::routes())
                .merge(plugins::routes())
                .merge(calls::routes())
                .merge(trunks::routes())
                .merge(route_order::routes())
                .merge(voicemail::routes(state.config().max_upload_bytes))
                .merge(recordings::routes())
                .merge(webhooks::routes())
                .route_layer(middleware::from_fn_with_state(state.clone(), auth::require_auth)),
        )
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed });

    Router::new()
        .nest("/api/v1", api)
        .route("/ws", axum::routing::get(ws::upgrade))
        .merge(metrics::public_routes())
        .fallback(spa::fallback)
        .layer(middleware::from_fn_with_state(state.clone(), metrics::count_requests))
        .layer(middleware::from_fn(rejections_to_envelope))
        .layer(middleware::from_fn_with_state(state.clone(), transport::https_policy))
        .layer(middleware::from_fn_with_state(state.clone(), host_check::check_host))
        .layer(middleware::from_fn_with_state(state.clone(), transport::acme_challenge))
        .layer(middleware::from_fn(spa::security_headers))
        .layer(DefaultBodyLimit::max(extract::MAX_JSON_BODY))
        .layer(CatchPanicLayer::custom(|_| ApiError::Internal("handler panicked".into()).into_response()))
        .layer(PropagateRequestIdLayer::new(X_REQUEST_ID.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
            let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("http", method = %req.method(), uri = %req.uri().path(), request_id = %id)
        }))
        .layer(SetRequestIdLayer::new(X_REQUEST_ID.clone(), CounterRequestId::default()))
        .with_state(state)
}

/// Anything that still answers with a non-envelope error (a plain-text rejection from a layer)
/// is turned into the envelope here.
async fn rejections_to_envelope(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_json = resp.headers().get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json"));
    if is_json || method == Method::HEAD {
        return resp;
    }
    let retry = resp.headers().get(axum::http::header::RETRY_AFTER).cloned();
    let err = match status.as_u16() {
        400 => ApiError::bad_request("bad request"),
        401 => ApiError::Unauthorized("authentication required"),
        403 => ApiError::Forbidden("forbidden"),
        404 => ApiError::NotFound,
        405 => ApiError::MethodNotAllowed,
        413 => ApiError::PayloadTooLarge,
        415 => ApiError::UnsupportedMediaType("unsupported media type"),
        422 => ApiError::Validation(vec![]),
        429 => ApiError::TooManyRequests { retry_after_secs: 60, message: "too many requests" },
        _ => ApiError::Internal(format!("status {status}")),
    };
    let mut out = err.into_response();
    *out.status_mut() = status;
    if let Some(r) = retry {
        out.headers_mut().insert(axum::http::header::RETRY_AFTER, r);
    }
    out
}
