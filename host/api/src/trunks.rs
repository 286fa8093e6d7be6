//! A trunk's live status, as the trunk list, the dashboard, `GET /trunks/{id}/status` and
//! `/ws` show it, and `POST /trunks/{id}/test`.
//!
//! The SIP stack registers registration trunks with their provider and pings every enabled
//! trunk with OPTIONS (unless its `options_interval` is 0); what it knows is read from
//! `call::PbxHandle::trunk_status`. The one-word `status`: `registered`, `registering`,
//! `failed` (the detail says why), `stopped` (the provider answered 403: edit the trunk),
//! `down` (OPTIONS unanswered), `up` (an IP trunk answering OPTIONS), `unmonitored` (an IP
//! trunk without keep-alive), `disabled`, `unknown` (not loaded by the SIP stack yet).

use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use serde::Serialize;
use store::{Trunk, TrunkType};
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::extract::{Data, PathParams};
use crate::AppState;

/// A final SIP answer: status and reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SipAnswer {
    pub code: u16,
    pub reason: String,
}

/// A registration trunk's registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RegistrationView {
    /// registering | registered | failed | stopped
    pub state: &'static str,
    /// Why the last attempt failed.
    pub error: Option<String>,
    pub last_response: Option<SipAnswer>,
    /// When the registration runs out (Unix ms).
    pub expires_at_ms: Option<i64>,
    /// When the next REGISTER goes: the refresh or the retry (Unix ms).
    pub next_attempt_at_ms: Option<i64>,
}

/// A trunk's status and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct TrunkStatus {
    pub id: i64,
    /// registered | registering | failed | stopped | down | up | unmonitored | disabled | unknown
    pub status: &'static str,
    pub detail: Option<String>,
    /// Registration trunks.
    pub registration: Option<RegistrationView>,
    /// From OPTIONS: true answering, false down; null not checked.
    pub reachable: Option<bool>,
    /// The last OPTIONS round trip, ms.
    pub rtt_ms: Option<u64>,
}

/// The status of `t` now.
pub(crate) fn status_of(state: &AppState, t: &Trunk) -> TrunkStatus {
    let id = t.row.id;
    let plain = |status, detail: Option<String>| TrunkStatus { id, status, detail, registration: None, reachable: None, rtt_ms: None };
    if !t.enabled {
        return plain("disabled", None);
    }
    let Some(pbx) = state.pbx().filter(|p| p.health().running) else {
        return plain("failed", Some("the SIP stack is not running".to_owned()));
    };
    if t.trunk_type == TrunkType::Ip && t.remote_hosts.is_empty() {
        return plain("failed", Some("no remote hosts: calls from this trunk cannot be recognised".to_owned()));
    }
    let Some(s) = pbx.trunk_status(id) else {
        return plain("unknown", Some("the SIP stack has not loaded this trunk yet".to_owned()));
    };
    let registration = s.registration.as_ref().map(|r| RegistrationView {
        state: r.state.as_str(),
        error: r.error.clone(),
        last_response: r.last_response.as_ref().map(|(code, reason)| SipAnswer { code: *code, reason: reason.clone() }),
        expires_at_ms: r.expires_at_ms,
        next_attempt_at_ms: r.next_attempt_at_ms,
    });
    let (status, detail) = match (&s.registration, s.reachable) {
        // its connection fails (a TLS certificate not trusted, a refused connection): that
        // is the reason, whatever the keep-alive or the registration say
        _ if s.transport_error.is_some() => ("failed", s.transport_error.clone()),
        (_, Some(false)) => ("down", Some("it does not answer OPTIONS: calls skip it until it does".to_owned())),
        (Some(r), _) => match r.state {
            call::RegistrationState::Registered => ("registered", None),
            call::RegistrationState::Registering => ("registering", None),
            call::RegistrationState::Failed => ("failed", r.error.clone()),
            call::RegistrationState::Stopped => ("stopped", r.error.clone()),
        },
        (None, Some(true)) => ("up", None),
        (None, None) if t.options_interval == 0 => {
            ("unmonitored", Some(format!("calls from {} are accepted; keep-alive (OPTIONS) is off", t.remote_hosts.join(", "))))
        }
        (None, None) => ("unknown", Some("waiting for its first OPTIONS answer".to_owned())),
    };
    TrunkStatus { id, status, detail, registration, reachable: s.reachable, rtt_ms: s.rtt_ms }
}

/// Every trunk's status (the `/ws` snapshot).
pub(crate) async fn all(state: &AppState) -> Result<Vec<TrunkStatus>, store::StoreError> {
    let trunks = state.store().trunks().list(store::Page::all()).await?;
    Ok(trunks.items.iter().map(|t| status_of(state, t)).collect())
}

#[utoipa::path(get, path = "/api/v1/trunks/{id}/status", tag = "trunks", params(("id" = i64, Path)),
    responses((status = 200, body = inline(Data<TrunkStatus>)), (status = 404, body = crate::error::ErrorEnvelope)))]
pub(crate) async fn trunk_status(State(state): State<AppState>, PathParams(id): PathParams<i64>) -> ApiResult<Data<TrunkStatus>> {
    let t = state.store().trunks().get(id).await?.ok_or(ApiError::NotFound)?;
    Ok(Data::new(status_of(&state, &t)))
}

/// One probe of a trunk test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ProbeView {
    /// The final answer, when one came.
    pub answer: Option<SipAnswer>,
    pub rtt_ms: Option<u64>,
    /// Why none came.
    pub error: Option<String>,
}

/// What a trunk test found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct TrunkTestView {
    pub id: i64,
    pub options: ProbeView,
    /// Registration trunks: a REGISTER (a real refresh of the registration).
    pub register: Option<ProbeView>,
    /// The status after the test.
    pub status: TrunkStatus,
}

fn probe(p: &call::Probe) -> ProbeView {
    ProbeView { answer: p.status.map(|code| SipAnswer { code, reason: p.reason.clone().unwrap_or_default() }), rtt_ms: p.rtt_ms, error: p.error.clone() }
}

#[utoipa::path(post, path = "/api/v1/trunks/{id}/test", tag = "trunks", params(("id" = i64, Path)),
    responses((status = 200, body = inline(Data<TrunkTestView>)), (status = 404, body = crate::error::ErrorEnvelope),
        (status = 409, body = crate::error::ErrorEnvelope, description = "the trunk is disabled (or not loaded by the SIP stack yet)"),
        (status = 503, body = crate::error::ErrorEnvelope, description = "the SIP stack is not running")))]
pub(crate) async fn test_trunk(State(state): State<AppState>, PathParams(id): PathParams<i64>) -> ApiResult<Data<TrunkTestView>> {
    let t = state.store().trunks().get(id).await?.ok_or(ApiError::NotFound)?;
    let pbx = state.pbx().ok_or_else(|| ApiError::Unavailable("the SIP stack is not running".into()))?;
    if !t.enabled {
        return Err(ApiError::Conflict { message: "the trunk is disabled: enable it to test it".into(), references: Vec::new() });
    }
    // an edit a moment ago reaches the SIP stack with its next directory load
    pbx.reload_directory();
    let mut result = pbx.test_trunk(id).await;
    for _ in 0..20 {
        if !matches!(result, Err(call::CallError::NoSuchTrunk)) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        result = pbx.test_trunk(id).await;
    }
    match result {
        Ok(r) => Ok(Data::new(TrunkTestView { id, options: probe(&r.options), register: r.register.as_ref().map(probe), status: status_of(&state, &t) })),
        Err(call::CallError::NoSuchTrunk) => Err(ApiError::Conflict { message: "the SIP stack has not loaded this trunk yet".into(), references: Vec::new() }),
        Err(call::CallError::Stopped) => Err(ApiError::Unavailable("the SIP stack is not running".into())),
        Err(e) => Err(ApiError::internal(e)),
    }
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/trunks/{id}/status", get(trunk_status)).route("/trunks/{id}/test", post(test_trunk))
}
