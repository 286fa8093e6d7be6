//! Entities as the API shows them when the stored row is not all there is: live, read-only
//! fields from the running PBX and the store, added to lists, GET, create and update
//! (`Resource::view`). Request bodies never carry them (unknown fields are refused).

use serde::Serialize;
use store::{ConferenceBridge, Extension, OutboundRoute, Trunk, VoicemailBox};
use utoipa::ToSchema;

use crate::error::ApiResult;
use crate::route_patterns::{self, Pattern};
use crate::trunks;
use crate::AppState;

/// An extension with its live registration count.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExtensionView {
    #[serde(flatten)]
    pub row: Extension,
    /// Live SIP contacts (registered devices) now, from the registrar.
    pub registration_count: usize,
}

/// A trunk with its live status.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrunkView {
    #[serde(flatten)]
    pub row: Trunk,
    /// registered | registering | failed | unregistered | unmonitored | disabled
    pub status: &'static str,
    /// Why, in words ("403 Forbidden", what is not monitored…).
    pub status_detail: Option<String>,
}

/// A voicemail box with its message counts.
#[derive(Debug, Serialize, ToSchema)]
pub struct VoicemailBoxView {
    #[serde(flatten)]
    pub row: VoicemailBox,
    pub message_count: i64,
    pub unread_count: i64,
}

/// A conference bridge with the callers in it now.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConferenceView {
    #[serde(flatten)]
    pub row: ConferenceBridge,
    /// Callers in the bridge now. The PBX runs no conference mixer yet (the `call` crate
    /// bridges two parties only), so no call can be in a bridge: this is 0 until it does.
    pub participant_count: usize,
}

/// An outbound route with what its neighbours do to it.
#[derive(Debug, Serialize, ToSchema)]
pub struct OutboundRouteView {
    #[serde(flatten)]
    pub row: OutboundRoute,
    /// Patterns that can never take a call because an earlier enabled route of the same call
    /// class (open to the same extensions) has a prefix every number they match starts with,
    /// or an identical pattern; both ends are reported (the shadowed pattern on the later
    /// route, the shadowing one on the earlier). Advice only: the route is saved.
    pub warnings: Vec<RouteWarning>,
}

/// One shadowed pattern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RouteWarning {
    /// This route's pattern concerned (`patterns[2]`).
    pub field: String,
    pub message: String,
    /// The other route.
    pub other_route_id: i64,
}

pub(crate) async fn extensions(state: &AppState, rows: Vec<Extension>) -> ApiResult<Vec<ExtensionView>> {
    let counts = crate::calls::registration_counts(state);
    Ok(rows
        .into_iter()
        .map(|row| {
            let registration_count = if counts.contains_key(&row.id) { crate::calls::registration_count(state, row.id) } else { 0 };
            ExtensionView { row, registration_count }
        })
        .collect())
}

pub(crate) async fn trunks(state: &AppState, rows: Vec<Trunk>) -> ApiResult<Vec<TrunkView>> {
    Ok(rows
        .into_iter()
        .map(|row| {
            let s = trunks::status_of(state, &row);
            TrunkView { row, status: s.status, status_detail: s.detail }
        })
        .collect())
}

pub(crate) async fn voicemail_boxes(state: &AppState, rows: Vec<VoicemailBox>) -> ApiResult<Vec<VoicemailBoxView>> {
    let counts = match rows.as_slice() {
        [one] => {
            let c = state.store().voicemail_messages().counts(one.row.id).await?;
            std::iter::once((one.row.id, c)).collect()
        }
        _ => state.store().voicemail_messages().counts_by_box().await?,
    };
    Ok(rows
        .into_iter()
        .map(|row| {
            let (message_count, unread_count) = counts.get(&row.row.id).copied().unwrap_or((0, 0));
            VoicemailBoxView { row, message_count, unread_count }
        })
        .collect())
}

pub(crate) async fn conferences(_state: &AppState, rows: Vec<ConferenceBridge>) -> ApiResult<Vec<ConferenceView>> {
    Ok(rows.into_iter().map(|row| ConferenceView { row, participant_count: 0 }).collect())
}

pub(crate) async fn outbound_routes(state: &AppState, rows: Vec<OutboundRoute>) -> ApiResult<Vec<OutboundRouteView>> {
    let all = state.store().outbound_routes().all().await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let warnings = route_warnings(&row, &all);
            OutboundRouteView { row, warnings }
        })
        .collect())
}

/// Would every extension that may use `later` reach `earlier` first? (Same class, and
/// `earlier` open to all of `later`'s extensions.)
fn reaches_first(earlier: &OutboundRoute, later: &OutboundRoute) -> bool {
    earlier.enabled
        && later.enabled
        && earlier.call_class == later.call_class
        && (earlier.extension_ids.is_empty() || (!later.extension_ids.is_empty() && later.extension_ids.iter().all(|x| earlier.extension_ids.contains(x))))
}

/// The first of `earlier`'s patterns that takes every number `p` matches.
fn shadowing<'a>(earlier: &'a OutboundRoute, p: &str) -> Option<&'a str> {
    let parsed = route_patterns::parse(p).ok()?;
    earlier
        .patterns
        .iter()
        .map(String::as_str)
        .find(|q| *q == p || matches!(route_patterns::parse(q), Ok(Pattern::Prefix(ref prefix)) if route_patterns::covered_by_prefix(&parsed, prefix)))
}

/// The shadowed patterns of `route` and the ones it shadows, against every route (`all`, in
/// the order they are tried; `route` itself is found by id and skipped).
pub(crate) fn route_warnings(route: &OutboundRoute, all: &[OutboundRoute]) -> Vec<RouteWarning> {
    let before = |o: &OutboundRoute| (o.position, o.id) < (route.position, route.id);
    let mut out = Vec::new();
    for (n, p) in route.patterns.iter().enumerate() {
        if let Some((o, q)) = all.iter().filter(|o| o.id != route.id && before(o) && reaches_first(o, route)).find_map(|o| shadowing(o, p).map(|q| (o, q))) {
            let how = if q == p { "the same pattern".to_owned() } else { format!("every number starting with {q}") };
            out.push(RouteWarning {
                field: format!("patterns[{n}]"),
                message: format!("is never used: route \"{}\" (position {}) comes first and takes {how}", o.name, o.position),
                other_route_id: o.id,
            });
        }
    }
    for o in all.iter().filter(|o| o.id != route.id && !before(o) && reaches_first(route, o)) {
        for p in &o.patterns {
            if let Some(q) = shadowing(route, p)
                && let Some(n) = route.patterns.iter().position(|x| x == q)
            {
                out.push(RouteWarning {
                    field: format!("patterns[{n}]"),
                    message: format!("takes every call for route \"{}\"'s pattern {p} (position {}) first: it is never used", o.name, o.position),
                    other_route_id: o.id,
                });
            }
        }
    }
    out
}
