//! Live state from the PBX: the calls in progress (`GET /calls/active`, `POST
//! /calls/{id}/hangup`), live registration counts, and the dashboard's figures (`GET
//! /dashboard/stats`). The wire shapes here are also what `/ws` sends (`ws.rs`).

use std::collections::{BTreeMap, HashMap};

use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use serde::Serialize;
use store::{CallDirection, CallDisposition, CdrFilter, Page, Timestamp};
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::extract::{Data, List, ListMeta, PathParams};
use crate::trunks::{self, TrunkStatus};
use crate::AppState;

/// A call in progress.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ActiveCall {
    /// The PBX's key for the call (what `POST /calls/{id}/hangup` takes), as text.
    pub id: String,
    /// The caller's SIP Call-ID.
    pub call_id: String,
    pub direction: CallDirection,
    pub caller_id_name: Option<String>,
    pub caller_id_num: String,
    /// The number dialled.
    pub callee: String,
    /// ringing | in_flow | bridged
    pub state: &'static str,
    pub started_at: Option<Timestamp>,
    pub answered_at: Option<Timestamp>,
    /// The flow the call walks, when the PBX knows it (null until the flow engine reports it).
    pub flow_id: Option<i64>,
    /// The node the call is in, when the flow engine reports it.
    pub current_node: Option<String>,
    /// The caller's leg is encrypted (SRTP): its suite, e.g. `AES_CM_128_HMAC_SHA1_80`;
    /// null: plain RTP (or no media yet).
    pub caller_srtp: Option<&'static str>,
    /// The callee's leg is encrypted (SRTP): its suite; null: plain RTP.
    pub callee_srtp: Option<&'static str>,
}

impl From<&call::ActiveCall> for ActiveCall {
    fn from(c: &call::ActiveCall) -> Self {
        ActiveCall {
            id: c.key.to_string(),
            call_id: c.call_id.clone(),
            direction: c.direction,
            caller_id_name: c.caller_id_name.clone(),
            caller_id_num: c.caller_id_num.clone(),
            callee: c.callee.clone(),
            state: c.state.as_str(),
            started_at: Timestamp::from_unix_millis(c.started_at_ms),
            answered_at: c.answered_at_ms.and_then(Timestamp::from_unix_millis),
            flow_id: None,
            current_node: None,
            caller_srtp: c.caller_srtp,
            callee_srtp: c.callee_srtp,
        }
    }
}

/// The calls in progress, oldest first (none when the PBX is not running).
pub(crate) fn active_calls(state: &AppState) -> Vec<ActiveCall> {
    state.pbx().map(|p| p.active_calls().iter().map(ActiveCall::from).collect()).unwrap_or_default()
}

/// Live contacts per extension id (extensions with none are absent).
pub(crate) fn registration_counts(state: &AppState) -> HashMap<i64, usize> {
    let Some(pbx) = state.pbx() else { return HashMap::new() };
    let mut counts = pbx.registration_counts();
    counts.retain(|_, n| *n > 0);
    counts
}

/// An extension's live contacts.
pub(crate) fn registration_count(state: &AppState, extension_id: i64) -> usize {
    state.pbx().map_or(0, |p| p.registrations(extension_id).len())
}

#[utoipa::path(get, path = "/api/v1/calls/active", tag = "calls", responses((status = 200, body = inline(List<ActiveCall>))))]
pub(crate) async fn list_active(State(state): State<AppState>) -> ApiResult<List<ActiveCall>> {
    let calls = active_calls(&state);
    let total = calls.len() as i64;
    Ok(List { data: calls, meta: ListMeta { total, limit: total, offset: 0 } })
}

/// What a hangup did.
#[derive(Debug, Serialize, ToSchema)]
pub struct HungUp {
    pub id: String,
    pub hung_up: bool,
}

#[utoipa::path(post, path = "/api/v1/calls/{id}/hangup", tag = "calls", params(("id" = String, Path)),
    responses((status = 200, body = inline(Data<HungUp>)), (status = 404, body = crate::error::ErrorEnvelope),
        (status = 503, body = crate::error::ErrorEnvelope, description = "the PBX is not running")))]
pub(crate) async fn hangup(State(state): State<AppState>, PathParams(id): PathParams<String>) -> ApiResult<Data<HungUp>> {
    let pbx = state.pbx().ok_or_else(|| ApiError::Unavailable("the SIP stack is not running".into()))?;
    let key: call::CallKey = id.parse().map_err(|_| ApiError::NotFound)?;
    // a caller still waiting hears 480 Temporarily Unavailable; an answered call gets BYEs
    match pbx.hangup(key, 480).await {
        Ok(()) => Ok(Data::new(HungUp { id, hung_up: true })),
        Err(call::CallError::Stopped) => Err(ApiError::Unavailable("the SIP stack is not running".into())),
        Err(call::CallError::NoSuchCall) => Err(ApiError::NotFound),
        Err(e) => Err(ApiError::internal(e)),
    }
}

/// The dashboard's figures in one request.
#[derive(Debug, Serialize, ToSchema)]
pub struct DashboardStats {
    /// Calls in progress now.
    pub active_calls: usize,
    /// Live SIP contacts, all extensions together.
    pub registrations: usize,
    /// Extensions with at least one live contact.
    pub extensions_online: usize,
    pub extensions_total: i64,
    /// Trunks per status (`registered`, `unmonitored`, `disabled`…).
    pub trunks: BTreeMap<String, usize>,
    /// Calls that started since midnight UTC, and how they ended.
    pub calls_today: i64,
    pub answered_today: i64,
    pub missed_today: i64,
    /// Unread voicemail messages, all boxes.
    pub voicemail_unread: i64,
    pub uptime_seconds: u64,
}

#[utoipa::path(get, path = "/api/v1/dashboard/stats", tag = "calls", responses((status = 200, body = inline(Data<DashboardStats>))))]
pub(crate) async fn dashboard_stats(State(state): State<AppState>) -> ApiResult<Data<DashboardStats>> {
    let store = state.store();
    let counts = registration_counts(&state);
    let mut trunk_counts = BTreeMap::new();
    for t in store.trunks().list(Page::all()).await?.items {
        let TrunkStatus { status, .. } = trunks::status_of(&state, &t);
        *trunk_counts.entry(status.to_owned()).or_insert(0) += 1;
    }
    let midnight = {
        let now = Timestamp::now().unix_millis();
        Timestamp::from_unix_millis(now - now.rem_euclid(86_400_000))
    };
    let today = |disposition: Option<CallDisposition>| CdrFilter { from: midnight, disposition, ..Default::default() };
    let count = |f: CdrFilter| async move { store.cdrs().list(&f, Page::new(1, 0)).await.map(|p| p.total) };
    let calls_today = count(today(None)).await?;
    let answered_today = count(today(Some(CallDisposition::Answered))).await?;
    let missed_today = count(today(Some(CallDisposition::NoAnswer))).await? + count(today(Some(CallDisposition::Busy))).await?;
    let voicemail_unread = store.voicemail_messages().unread_total().await?;
    Ok(Data::new(DashboardStats {
        active_calls: state.pbx().map_or(0, |p| p.health().calls),
        registrations: counts.values().sum(),
        extensions_online: counts.len(),
        extensions_total: store.extensions().count().await?,
        trunks: trunk_counts,
        calls_today,
        answered_today,
        missed_today,
        voicemail_unread,
        uptime_seconds: state.uptime().as_secs(),
    }))
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/calls/active", get(list_active)).route("/calls/{id}/hangup", post(hangup)).route("/dashboard/stats", get(dashboard_stats))
}
