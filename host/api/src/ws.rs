//! `/ws`: live updates for the admin UI (calls, registrations, trunk status).
//!
//! Same origin only (a browser's `Origin` must name the host it connects to), authenticated
//! like the REST API (session cookie or bearer token; the session is not extended by an open
//! socket). Server → client text frames, one JSON object each, `{"type", "data"}`:
//!
//! - `snapshot` first, and again whenever this socket fell behind the event stream:
//!   `{calls: [ActiveCall], registrations: {"<extension id>": <live contacts>},
//!   trunks: [{id, status, detail}]}`;
//! - `call.started` / `call.updated`: an `ActiveCall` (as `GET /calls/active`);
//! - `call.ended`: `{id, disposition, cause}`;
//! - `registration.changed`: `{extension_id, registration_count, action: added|removed|refreshed}`;
//! - `trunk.status`: `{id, status, detail}` when a trunk's status changes;
//! - `source.banned`: `{ip, until_secs}` when the SIP guard bans an address.
//!
//! A socket that is not (or no longer) signed in is closed with code 4401; the session is
//! re-checked every 30 s, so a logout ends the sockets it opened. Client frames are ignored.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::broadcast::Receiver;

use crate::calls::{self, ActiveCall};
use crate::error::ApiError;
use crate::trunks::{self, TrunkStatus};
use crate::{auth, AppState};

/// Close code: not signed in, or the session ended.
pub const CLOSE_UNAUTHORIZED: u16 = 4401;
/// How often trunk status is compared with what the socket was sent.
const TRUNK_POLL: Duration = Duration::from_secs(5);
/// Every this many trunk polls the session is re-checked and a ping is sent (30 s).
const AUTH_EVERY: u32 = 6;

/// `GET /ws`.
pub(crate) async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => {
            let status = e.status();
            let mut resp = ApiError::bad_request(format!("a WebSocket upgrade is expected here: {}", e.body_text())).into_response();
            *resp.status_mut() = status;
            return resp;
        }
    };
    if !same_origin(&headers) {
        return ApiError::Forbidden("cross-origin WebSocket refused").into_response();
    }
    let signed_in = auth::principal(&state, &headers).await.is_ok();
    ws.max_message_size(64 * 1024).on_upgrade(move |socket| async move {
        if signed_in {
            serve(state, socket, headers).await;
        } else {
            close(socket, CLOSE_UNAUTHORIZED, "authentication required").await;
        }
    })
}

/// A browser always sends `Origin` on a WebSocket; it must name the host the request went
/// to (`Host`, or `X-Forwarded-Host` behind a proxy). Clients without `Origin` (not a
/// browser, so no ambient cookie to abuse) are let through to authentication.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else { return true };
    let Ok(origin) = origin.to_str() else { return false };
    let Some((_, authority)) = origin.split_once("://") else { return false };
    let authority = authority.trim_end_matches('/');
    ["x-forwarded-host", "host"]
        .iter()
        .filter_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
        .any(|host| host.split(',').next().is_some_and(|h| h.trim().eq_ignore_ascii_case(authority)))
}

async fn close(mut socket: WebSocket, code: u16, reason: &'static str) {
    let _ = socket.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
}

fn frame(kind: &str, data: impl Serialize) -> Message {
    let v = json!({ "type": kind, "data": data });
    Message::Text(v.to_string().into())
}

#[derive(Serialize)]
struct Snapshot {
    calls: Vec<ActiveCall>,
    registrations: HashMap<String, usize>,
    trunks: Vec<TrunkStatus>,
}

async fn snapshot(state: &AppState) -> Result<(Message, Vec<TrunkStatus>), store::StoreError> {
    let trunks = trunks::all(state).await?;
    let registrations = calls::registration_counts(state).into_keys().map(|id| (id.to_string(), calls::registration_count(state, id))).collect();
    let snap = Snapshot { calls: calls::active_calls(state), registrations, trunks: trunks.clone() };
    Ok((frame("snapshot", snap), trunks))
}

/// The frame for a PBX event (`None`: nothing the UI shows).
pub(crate) fn event_frame(ev: &call::PbxEvent) -> Option<(&'static str, Value)> {
    use call::PbxEvent as E;
    let (kind, data) = match ev {
        E::Registration { extension_id, count, action } => {
            let action = match action {
                call::ChangeAction::Added => "added",
                call::ChangeAction::Removed => "removed",
                call::ChangeAction::Refreshed => "refreshed",
            };
            ("registration.changed", json!({ "extension_id": extension_id, "registration_count": count, "action": action }))
        }
        E::CallStarted(c) => ("call.started", serde_json::to_value(ActiveCall::from(c)).ok()?),
        E::CallUpdated(c) => ("call.updated", serde_json::to_value(ActiveCall::from(c)).ok()?),
        E::CallEnded { key, disposition, cause } => ("call.ended", json!({ "id": key.to_string(), "disposition": disposition, "cause": cause })),
        E::VoicemailLeft { mailbox_id, message_id, caller_id_num, caller_id_name, duration } => (
            "voicemail.left",
            json!({ "mailbox_id": mailbox_id, "message_id": message_id, "caller_id_num": caller_id_num, "caller_id_name": caller_id_name, "duration": duration }),
        ),
        E::SourceBanned { ip, until_secs } => ("source.banned", json!({ "ip": ip.to_string(), "until_secs": until_secs })),
        E::OutboundLimit { extension_id, number, limit } => ("outbound.limit", json!({ "extension_id": extension_id, "number": number, "limit": limit })),
        _ => return None,
    };
    Some((kind, data))
}

enum Next {
    Event(call::PbxEvent),
    Lagged,
    Closed,
}

async fn next_event(rx: &mut Option<Receiver<call::PbxEvent>>) -> Next {
    let Some(rx) = rx else { return std::future::pending().await };
    match rx.recv().await {
        Ok(ev) => Next::Event(ev),
        Err(RecvError::Lagged(_)) => Next::Lagged,
        Err(RecvError::Closed) => Next::Closed,
    }
}

async fn serve(state: AppState, mut socket: WebSocket, headers: HeaderMap) {
    // subscribe before the snapshot, so nothing falls between them (a repeat is harmless:
    // the client applies events as upserts)
    let mut events = state.pbx().map(|p| p.subscribe());
    let mut sent_trunks = match snapshot(&state).await {
        Ok((msg, trunks)) => {
            if socket.send(msg).await.is_err() {
                return;
            }
            trunks
        }
        Err(e) => {
            tracing::error!(error = %e, "ws snapshot");
            let _ = socket.send(Message::Close(Some(CloseFrame { code: 1011, reason: "internal error".into() }))).await;
            return;
        }
    };
    let mut tick = tokio::time::interval(TRUNK_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut ticks = 0u32;
    loop {
        tokio::select! {
            ev = next_event(&mut events) => match ev {
                Next::Event(ev) => {
                    if let Some((kind, data)) = event_frame(&ev)
                        && socket.send(frame(kind, data)).await.is_err()
                    {
                        return;
                    }
                }
                Next::Lagged => match snapshot(&state).await {
                    Ok((msg, trunks)) => {
                        sent_trunks = trunks;
                        if socket.send(msg).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "ws snapshot after lag"),
                },
                Next::Closed => {
                    let _ = socket.send(Message::Close(Some(CloseFrame { code: 1001, reason: "shutting down".into() }))).await;
                    return;
                }
            },
            msg = socket.recv() => match msg {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
            _ = tick.tick() => {
                ticks = ticks.wrapping_add(1);
                if ticks.is_multiple_of(AUTH_EVERY) {
                    if auth::principal(&state, &headers).await.is_err() {
                        close(socket, CLOSE_UNAUTHORIZED, "session ended").await;
                        return;
                    }
                    if socket.send(Message::Ping(Default::default())).await.is_err() {
                        return;
                    }
                }
                match trunks::all(&state).await {
                    Ok(now) => {
                        for t in now.iter().filter(|t| !sent_trunks.contains(t)) {
                            if socket.send(frame("trunk.status", t)).await.is_err() {
                                return;
                            }
                        }
                        sent_trunks = now;
                    }
                    Err(e) => tracing::warn!(error = %e, "ws trunk status"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn origin_must_be_the_host() {
        assert!(same_origin(&headers(&[("host", "pbx.example:8080"), ("origin", "http://pbx.example:8080")])));
        assert!(same_origin(&headers(&[("host", "PBX.example"), ("origin", "https://pbx.example")])));
        assert!(!same_origin(&headers(&[("host", "pbx.example:8080"), ("origin", "http://evil.example")])));
        assert!(!same_origin(&headers(&[("host", "pbx.example:8080"), ("origin", "http://pbx.example:9090")])));
        assert!(!same_origin(&headers(&[("host", "pbx.example"), ("origin", "null")])));
        assert!(same_origin(&headers(&[("host", "127.0.0.1:1"), ("x-forwarded-host", "pbx.example"), ("origin", "https://pbx.example")])));
        assert!(same_origin(&headers(&[("host", "pbx.example")])), "no Origin: not a browser");
    }

    #[test]
    fn event_frames() {
        let ev = call::PbxEvent::Registration { extension_id: 7, count: 2, action: call::ChangeAction::Added };
        let (kind, data) = event_frame(&ev).unwrap();
        assert_eq!(kind, "registration.changed");
        assert_eq!(data, json!({"extension_id": 7, "registration_count": 2, "action": "added"}));
        let ev = call::PbxEvent::CallEnded { key: call::CallKey::from_raw(42), disposition: store::CallDisposition::NoAnswer, cause: "no_answer" };
        let (kind, data) = event_frame(&ev).unwrap();
        assert_eq!(kind, "call.ended");
        assert_eq!(data, json!({"id": "42", "disposition": "no_answer", "cause": "no_answer"}));
    }
}
