//! `PUT /outbound-routes/order`: the order outbound routes are tried in, changed in one go.
//!
//! Routes are tried by `position` (then id). Moving one route means renumbering others, and
//! doing that with one `PUT /outbound-routes/{id}` each would leave the dial plan half
//! reordered between the requests (or for good, when one of them fails), and could trip the
//! rule that two enabled routes may not share a position and a pattern. Here the whole new
//! order is written in one transaction: positions 10, 20, 30 … (closer when there are more
//! than a thousand routes), with an audit row for each route that moved.

use std::collections::HashSet;

use axum::extract::State;
use axum::routing::put;
use axum::Router;
use serde::Deserialize;
use store::ResourceKind;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{Data, Json};
use crate::validate::Errors;
use crate::views::OutboundRouteView;
use crate::AppState;

/// The highest position a route may have (as `OutboundRouteInput` says).
const MAX_POSITION: i64 = 10_000;
/// The gap a reorder leaves between routes, so one can be put between two by hand.
const STEP: i64 = 10;

/// Every outbound route, in the order they are to be tried.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteOrder {
    /// every outbound route's id, each once, the first tried first
    pub ids: Vec<i64>,
}

/// The positions `n` routes get, in order.
fn positions(n: usize) -> Vec<i64> {
    let n = n as i64;
    let step = if n == 0 { STEP } else { (MAX_POSITION / n).clamp(1, STEP) };
    (1..=n).map(|i| i * step).collect()
}

#[utoipa::path(put, path = "/api/v1/outbound-routes/order", tag = "outbound-routes", request_body = RouteOrder,
    responses(
        (status = 200, description = "every route, in its new order", body = inline(Data<Vec<OutboundRouteView>>)),
        (status = 422, description = "`ids` is not every route exactly once (details name the entry)", body = crate::error::ErrorEnvelope)))]
pub(crate) async fn order_outbound_routes(
    State(state): State<AppState>,
    caller: Caller,
    Json(input): Json<RouteOrder>,
) -> ApiResult<Data<Vec<OutboundRouteView>>> {
    let mut tx = state.store().begin().await?;
    // read inside the write transaction: a route added meanwhile is missing from `ids`
    let all = tx.outbound_routes().all().await?;
    let mut e = Errors::new();
    let known: HashSet<i64> = all.iter().map(|r| r.id).collect();
    let mut seen = HashSet::new();
    for (n, id) in input.ids.iter().enumerate() {
        if !known.contains(id) {
            e.add(format!("ids[{n}]"), format!("no outbound route has id {id}"));
        } else if !seen.insert(*id) {
            e.add(format!("ids[{n}]"), "is listed twice");
        }
    }
    let missing: Vec<String> = all.iter().filter(|r| !seen.contains(&r.id)).map(|r| format!("\"{}\" (id {})", r.name, r.id)).collect();
    if !missing.is_empty() {
        e.add("ids", format!("must list every outbound route; missing: {}", missing.join(", ")));
    }
    e.check(all.len() as i64 <= MAX_POSITION, "ids", format!("at most {MAX_POSITION} routes can be ordered"));
    e.finish()?;

    let mut moved = Vec::new();
    for (id, position) in input.ids.iter().zip(positions(input.ids.len())) {
        let Some(cur) = all.iter().find(|r| r.id == *id) else { continue };
        if cur.fields.position == position {
            continue;
        }
        let mut f = cur.fields.clone();
        f.position = position;
        let row = tx.outbound_routes().update(*id, &f).await?;
        let before = serde_json::to_value(cur).unwrap_or_default();
        let after = serde_json::to_value(&row).unwrap_or_default();
        tx.audit(&caller.actor(), "update", ResourceKind::OutboundRoute.as_str(), Some(&id.to_string()), Some(&before), Some(&after)).await?;
        moved.push(*id);
    }
    tx.commit().await?;
    for id in moved {
        state.entity_changed(ResourceKind::OutboundRoute, id).await;
    }
    let rows = state.store().outbound_routes().all().await?;
    Ok(Data::new(crate::views::outbound_routes(&state, rows).await?))
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/outbound-routes/order", put(order_outbound_routes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_leave_room_and_stay_in_range() {
        assert_eq!(positions(3), vec![10, 20, 30]);
        assert_eq!(positions(0), Vec::<i64>::new());
        let many = positions(1500);
        assert_eq!((many[0], many[1499]), (6, 9000));
        let most = positions(10_000);
        assert_eq!((most[0], most[9999]), (1, 10_000));
        assert!(many.windows(2).all(|w| w[0] < w[1]));
    }
}
