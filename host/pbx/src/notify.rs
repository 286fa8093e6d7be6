//! Outbound notifications: webhooks on the PBX's events.
//!
//! The PBX's event bus (`call::PbxEvent`) is turned into named events (`call.started`,
//! `call.answered`, `call.ended`, `call.missed`, `voicemail.left`, `registration.lost`,
//! `trunk.down`, `trunk.up`, `ban.imposed`; `webhook.test` from the API), each queued as a
//! `webhook_deliveries` row for every enabled endpoint that receives it — the outbox, so a
//! delivery waiting for its next attempt survives a restart. One worker sends what is due:
//! `POST` of the JSON body with `X-FlowPBX-Event`, `X-FlowPBX-Delivery`,
//! `X-FlowPBX-Timestamp` (Unix seconds) and `X-FlowPBX-Signature: sha256=<hex>`, the
//! HMAC-SHA256 under the endpoint's secret of `<timestamp>.<body>`. A 2xx delivers it; anything
//! else is retried with exponential backoff (base × 2^(attempt-1), at most 10 minutes between
//! attempts) until an hour after the event, then it is `failed` with the reason, in the log the
//! UI shows. A circuit breaker per endpoint: after [`NotifyConfig::breaker_threshold`]
//! failures in a row the endpoint gets nothing for [`NotifyConfig::breaker_open_for`] (its
//! deliveries wait, not counted as attempts), then one delivery tries it (half-open): a success
//! closes the circuit, a failure opens it again.
//!
//! Requests go through the flow engine's egress-checked client
//! (`flow::services::ReqwestClient`): the endpoint's name is resolved once, every address is
//! checked against the administrator's egress networks and ports (`--webhook-allow-networks`,
//! `--webhook-allow-ports`: the same as the built-in webhook node), no redirects are followed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flow::egress::Egress;
use flow::services::{HttpClient, HttpRequest};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use store::{DeliveryStatus, Store, Timestamp, WebhookDelivery};
use tokio::sync::Notify;

/// The event names an endpoint can subscribe to (`*`: all of them).
pub const EVENTS: &[&str] = &[
    "call.started",
    "call.answered",
    "call.ended",
    "call.missed",
    "voicemail.left",
    "registration.lost",
    "trunk.down",
    "trunk.up",
    "ban.imposed",
    "webhook.test",
];

/// The notifier's limits.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// Where endpoints may be beyond public addresses on ports 80 and 443.
    pub egress: Egress,
    /// The first retry's delay; each later one doubles.
    pub retry_base: Duration,
    /// The longest wait between two attempts.
    pub retry_max: Duration,
    /// How long after the event a delivery is still tried.
    pub give_up_after: Duration,
    /// Failures in a row that open an endpoint's circuit.
    pub breaker_threshold: u32,
    /// How long an open circuit stays open.
    pub breaker_open_for: Duration,
    /// One request's timeout.
    pub timeout: Duration,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            egress: Egress::default(),
            retry_base: Duration::from_secs(2),
            retry_max: Duration::from_secs(600),
            give_up_after: Duration::from_secs(3600),
            breaker_threshold: 5,
            breaker_open_for: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
        }
    }
}

/// An endpoint's circuit as the API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Circuit {
    /// Deliveries go out.
    Closed,
    /// Nothing goes out until `until` (Unix ms).
    Open { until_ms: i64 },
    /// The next delivery tries the endpoint again.
    HalfOpen,
}

#[derive(Debug, Default, Clone, Copy)]
struct Breaker {
    failures: u32,
    open_until: Option<i64>,
}

struct Inner {
    store: Store,
    http: Arc<dyn HttpClient>,
    config: NotifyConfig,
    wake: Notify,
    breakers: Mutex<HashMap<i64, Breaker>>,
}

/// The running notifier (cheap to clone): the API wakes it and reads circuits.
#[derive(Clone)]
pub struct Notifier(Arc<Inner>);

/// The signature header's value: `sha256=` and the hex HMAC-SHA256 under `secret` of
/// `<timestamp>.<body>`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for b in tag {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The delay before attempt `attempts + 1`, `attempts` having failed.
pub fn backoff(config: &NotifyConfig, attempts: u32) -> Duration {
    let factor = 1u32.checked_shl(attempts.saturating_sub(1).min(20)).unwrap_or(u32::MAX);
    config.retry_base.saturating_mul(factor).min(config.retry_max)
}

impl Notifier {
    /// Starts the notifier: one task turns the PBX's events into deliveries, one sends them.
    pub fn start(store: Store, events: Option<tokio::sync::broadcast::Receiver<call::PbxEvent>>, http: Arc<dyn HttpClient>, config: NotifyConfig) -> Notifier {
        let n = Notifier(Arc::new(Inner { store, http, config, wake: Notify::new(), breakers: Mutex::new(HashMap::new()) }));
        if let Some(rx) = events {
            tokio::spawn(n.clone().listen(rx));
        }
        tokio::spawn(n.clone().work());
        n
    }

    /// Where endpoints may be (the API checks a URL against it when it is saved).
    pub fn egress(&self) -> &Egress {
        &self.0.config.egress
    }

    /// Something was queued: look now.
    pub fn wake(&self) {
        self.0.wake.notify_one();
    }

    /// An endpoint's circuit now.
    pub fn circuit(&self, webhook_id: i64) -> Circuit {
        let b = self.0.breakers.lock().unwrap_or_else(|e| e.into_inner()).get(&webhook_id).copied().unwrap_or_default();
        match b.open_until {
            Some(until) if until > Timestamp::now().unix_millis() => Circuit::Open { until_ms: until },
            Some(_) => Circuit::HalfOpen,
            None => Circuit::Closed,
        }
    }

    /// Forgets an endpoint's failures (it was edited or deleted).
    pub fn reset(&self, webhook_id: i64) {
        self.0.breakers.lock().unwrap_or_else(|e| e.into_inner()).remove(&webhook_id);
    }

    /// Queues an event for every endpoint that receives it.
    pub async fn publish(&self, event: &str, data: Value) {
        let now = Timestamp::now();
        let payload = json!({ "event": event, "at": now, "data": data });
        match self.0.store.webhook_deliveries().enqueue(event, &payload, now).await {
            Ok(0) => {}
            Ok(_) => self.wake(),
            Err(e) => tracing::warn!(error = %e, event, "a notification could not be queued"),
        }
    }

    /// Queues a `webhook.test` delivery for one endpoint.
    pub async fn test(&self, webhook_id: i64) -> store::Result<WebhookDelivery> {
        let now = Timestamp::now();
        let payload = json!({ "event": "webhook.test", "at": now, "data": { "webhook_id": webhook_id } });
        let d = self.0.store.webhook_deliveries().enqueue_for(webhook_id, "webhook.test", &payload, now).await?;
        self.wake();
        Ok(d)
    }

    async fn listen(self, mut rx: tokio::sync::broadcast::Receiver<call::PbxEvent>) {
        let mut state = EventState::default();
        loop {
            match rx.recv().await {
                Ok(ev) => {
                    for (name, data) in state.on_event(&ev) {
                        self.push_for(name, &data).await;
                        self.publish(name, data).await;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => tracing::warn!(missed = n, "the notifier fell behind the PBX's events"),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// A missed call to an extension, or a voicemail for a box that names one: the
    /// extension's push target (if any) gets a notification.
    async fn push_for(&self, event: &str, data: &Value) {
        let store = &self.0.store;
        let target = match event {
            "call.missed" => {
                let Some(callee) = data["callee"].as_str() else { return };
                store.extensions().get_by_extension(callee).await.ok().flatten().map(|e| e.id)
            }
            "voicemail.left" => {
                let Some(b) = data["mailbox_id"].as_i64() else { return };
                store.voicemail_boxes().get(b).await.ok().flatten().and_then(|b| b.notify_extension_id)
            }
            _ => return,
        };
        let Some(ext) = target else { return };
        let caller = match (data["caller_id_name"].as_str(), data["caller_id_num"].as_str()) {
            (Some(n), Some(num)) if !n.is_empty() => format!("{n} ({num})"),
            (_, Some(num)) => num.to_owned(),
            (Some(n), None) => n.to_owned(),
            _ => "an unknown caller".to_owned(),
        };
        let (title, message) = if event == "call.missed" {
            ("Missed call".to_owned(), format!("Missed call from {caller}"))
        } else {
            ("New voicemail".to_owned(), format!("Voicemail from {caller}, {} s", data["duration"].as_i64().unwrap_or(0)))
        };
        self.push(ext, title, message).await;
    }

    /// Sends a push notification to an extension's ntfy or Gotify server (three tries, 1 s
    /// then 2 s apart, in the background); false when it has no target.
    pub async fn push(&self, extension_id: i64, title: String, message: String) -> bool {
        let store = &self.0.store;
        let Ok(Some(t)) = store.push_targets().get(extension_id).await else { return false };
        let token = match store.push_targets().token(extension_id).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, extension_id, "a push token cannot be read");
                return false;
            }
        };
        let Ok(url) = url::Url::parse(&t.url) else { return false };
        let (http, egress, timeout) = (self.0.http.clone(), self.0.config.egress.clone(), self.0.config.timeout);
        tokio::spawn(async move {
            let clean = |s: &str| s.chars().filter(|c| !c.is_control()).collect::<String>();
            let req = |_: u32| {
                let mut headers = Vec::new();
                let body = match t.kind {
                    store::PushKind::Ntfy => {
                        headers.push(("title".to_owned(), clean(&title)));
                        headers.push(("tags".to_owned(), "telephone_receiver".to_owned()));
                        if let Some(tok) = &token {
                            headers.push(("authorization".to_owned(), format!("Bearer {tok}")));
                        }
                        message.clone().into_bytes()
                    }
                    store::PushKind::Gotify => {
                        headers.push(("content-type".to_owned(), "application/json".to_owned()));
                        if let Some(tok) = &token {
                            headers.push(("x-gotify-key".to_owned(), tok.clone()));
                        }
                        serde_json::to_vec(&json!({ "title": title, "message": message, "priority": 5 })).unwrap_or_default()
                    }
                };
                HttpRequest { method: "POST".into(), url: url.clone(), headers, body, timeout, egress: egress.clone() }
            };
            for attempt in 1..=3u32 {
                match http.send(req(attempt)).await {
                    Ok(r) if (200..300).contains(&r.status) => return,
                    Ok(r) => tracing::warn!(extension_id, status = r.status, attempt, "a push notification was refused"),
                    Err(e) => tracing::warn!(extension_id, error = %e, attempt, "a push notification failed"),
                }
                if attempt < 3 {
                    tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
                }
            }
        });
        true
    }

    async fn work(self) {
        loop {
            let now = Timestamp::now();
            let due = match self.0.store.webhook_deliveries().due(now, 50).await {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the webhook outbox");
                    Vec::new()
                }
            };
            let full = due.len() == 50;
            for d in due {
                self.deliver(d).await;
            }
            if full {
                continue;
            }
            wait_for_due(self.0.store.webhook_deliveries().next_due().await, &self.0.wake).await;
        }
    }

    async fn deliver(&self, d: WebhookDelivery) {
        let store = &self.0.store;
        let cfg = &self.0.config;
        let now = Timestamp::now();
        let record = |status, counted, next: Option<Timestamp>, code: Option<i64>, err: Option<String>| async move {
            if let Err(e) = store.webhook_deliveries().record(d.id, status, counted, next, code, err.as_deref(), Timestamp::now()).await {
                tracing::warn!(error = %e, delivery = d.id, "a delivery's outcome could not be written");
            }
        };
        let hook = match store.webhooks().get(d.webhook_id).await {
            Ok(Some(h)) => h,
            Ok(None) => return,
            Err(e) => return tracing::warn!(error = %e, "reading a webhook"),
        };
        if !hook.enabled {
            return record(DeliveryStatus::Failed, false, None, None, Some("the endpoint is disabled".into())).await;
        }
        // the circuit: open → wait (not an attempt); past its time → this one tries
        let open_until = self.0.breakers.lock().unwrap_or_else(|e| e.into_inner()).get(&hook.id).and_then(|b| b.open_until);
        if let Some(until) = open_until
            && until > now.unix_millis()
        {
            let next = Timestamp::from_unix_millis(until);
            return record(DeliveryStatus::Pending, false, next, None, Some("circuit open: the endpoint failed repeatedly".into())).await;
        }
        let secret = match store.webhooks().secret(hook.id).await {
            Ok(Some(s)) => s,
            Ok(None) => return,
            Err(e) => return record(DeliveryStatus::Failed, false, None, None, Some(format!("the secret cannot be read: {e}"))).await,
        };
        let outcome = self.send(&hook.url, &d, &secret).await;
        let attempts = u32::try_from(d.attempts).unwrap_or(u32::MAX).saturating_add(1);
        match outcome {
            Ok(()) => {
                self.0.breakers.lock().unwrap_or_else(|e| e.into_inner()).remove(&hook.id);
                record(DeliveryStatus::Delivered, true, None, Some(200), None).await;
            }
            Err((code, why)) => {
                let opened = {
                    let mut b = self.0.breakers.lock().unwrap_or_else(|e| e.into_inner());
                    let b = b.entry(hook.id).or_default();
                    b.failures = b.failures.saturating_add(1);
                    let trip = b.open_until.is_some() || b.failures >= cfg.breaker_threshold;
                    if trip {
                        b.open_until = Some(now.unix_millis().saturating_add(cfg.breaker_open_for.as_millis() as i64));
                    }
                    trip
                };
                if opened {
                    tracing::warn!(webhook = hook.id, "a webhook endpoint failed repeatedly: its circuit is open");
                }
                let later = |t: Timestamp, d: Duration| Timestamp::from_unix_millis(t.unix_millis().saturating_add(d.as_millis() as i64)).unwrap_or(t);
                let next = later(now, backoff(cfg, attempts));
                if next > later(d.created_at, cfg.give_up_after) {
                    let why = format!("gave up after {attempts} attempts: {why}");
                    tracing::warn!(webhook = hook.id, delivery = d.id, reason = %why, "a webhook delivery failed");
                    record(DeliveryStatus::Failed, true, None, code, Some(why)).await;
                } else {
                    record(DeliveryStatus::Pending, true, Some(next), code, Some(why)).await;
                }
            }
        }
    }

    /// One attempt: Ok on a 2xx; else the status (if any) and why.
    async fn send(&self, url: &str, d: &WebhookDelivery, secret: &str) -> Result<(), (Option<i64>, String)> {
        let url = url::Url::parse(url).map_err(|e| (None, format!("bad url: {e}")))?;
        let body = serde_json::to_vec(&d.payload).map_err(|e| (None, e.to_string()))?;
        let ts = Timestamp::now().unix_millis() / 1000;
        let req = HttpRequest {
            method: "POST".into(),
            url,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("x-flowpbx-event".into(), d.event.clone()),
                ("x-flowpbx-delivery".into(), d.id.to_string()),
                ("x-flowpbx-timestamp".into(), ts.to_string()),
                ("x-flowpbx-signature".into(), signature(secret, ts, &body)),
            ],
            body,
            timeout: self.0.config.timeout,
            egress: self.0.config.egress.clone(),
        };
        match self.0.http.send(req).await {
            Ok(r) if (200..300).contains(&r.status) => Ok(()),
            Ok(r) => Err((Some(i64::from(r.status)), format!("the endpoint answered {}", r.status))),
            Err(e) => Err((None, e.to_string())),
        }
    }
}

/// What the event listener remembers: calls in progress (for the end's details) and each
/// trunk's last state (for up/down transitions).
#[derive(Default)]
pub struct EventState {
    calls: HashMap<call::CallKey, (Value, bool)>,
    trunks: HashMap<i64, bool>,
}

fn call_json(c: &call::ActiveCall) -> Value {
    json!({
        "id": c.key.to_string(),
        "call_id": c.call_id,
        "direction": c.direction,
        "caller_id_name": c.caller_id_name,
        "caller_id_num": c.caller_id_num,
        "callee": c.callee,
        "started_at_ms": c.started_at_ms,
        "answered_at_ms": c.answered_at_ms,
    })
}

impl EventState {
    /// The named events (with their data) one PBX event makes.
    pub fn on_event(&mut self, ev: &call::PbxEvent) -> Vec<(&'static str, Value)> {
        use call::PbxEvent as E;
        match ev {
            E::CallStarted(c) => {
                let answered = c.state == call::CallState::Answered;
                self.calls.insert(c.key, (call_json(c), answered));
                let mut out = vec![("call.started", call_json(c))];
                if answered {
                    out.push(("call.answered", call_json(c)));
                }
                out
            }
            E::CallUpdated(c) => {
                let was = self.calls.get(&c.key).is_some_and(|(_, a)| *a);
                let answered = c.state == call::CallState::Answered;
                self.calls.insert(c.key, (call_json(c), was || answered));
                if answered && !was {
                    vec![("call.answered", call_json(c))]
                } else {
                    vec![]
                }
            }
            E::CallEnded { key, disposition, cause } => {
                let (mut data, _) = self.calls.remove(key).unwrap_or_else(|| (json!({ "id": key.to_string() }), false));
                if let Some(o) = data.as_object_mut() {
                    o.insert("disposition".into(), json!(disposition));
                    o.insert("cause".into(), json!(cause));
                }
                let mut out = vec![("call.ended", data.clone())];
                if matches!(disposition, store::CallDisposition::NoAnswer | store::CallDisposition::Busy | store::CallDisposition::Voicemail) {
                    out.push(("call.missed", data));
                }
                out
            }
            E::VoicemailLeft { mailbox_id, message_id, caller_id_num, caller_id_name, duration } => vec![(
                "voicemail.left",
                json!({ "mailbox_id": mailbox_id, "message_id": message_id, "caller_id_num": caller_id_num, "caller_id_name": caller_id_name, "duration": duration }),
            )],
            E::Registration { extension_id, count: 0, action: call::ChangeAction::Removed } => {
                vec![("registration.lost", json!({ "extension_id": extension_id }))]
            }
            E::TrunkStatus(t) => {
                let up = match t.summary() {
                    "registered" | "up" => true,
                    "failed" | "down" | "stopped" => false,
                    _ => return vec![],
                };
                let before = self.trunks.insert(t.trunk_id, up);
                if before == Some(up) || (before.is_none() && up) {
                    return vec![];
                }
                let data = json!({ "trunk_id": t.trunk_id, "status": t.summary(), "error": t.transport_error });
                vec![(if up { "trunk.up" } else { "trunk.down" }, data)]
            }
            E::SourceBanned { ip, until_secs } => vec![("ban.imposed", json!({ "ip": ip.to_string(), "seconds": until_secs }))],
            _ => vec![],
        }
    }
}

/// An outbox worker's pause (webhook deliveries, mail): until its next pending item is due,
/// at most 30 s (a changed clock or a lost wake-up costs little), 30 s when nothing is pending
/// or the store cannot say; `wake` (a new item) ends it early.
pub(crate) async fn wait_for_due(next: Result<Option<Timestamp>, store::StoreError>, wake: &Notify) {
    let wait = match next {
        Ok(Some(t)) => Duration::from_millis(t.unix_millis().saturating_sub(Timestamp::now().unix_millis()).clamp(0, 30_000) as u64),
        _ => Duration::from_secs(30),
    };
    if wait.is_zero() {
        tokio::task::yield_now().await;
    } else {
        let _ = tokio::time::timeout(wait, wake.notified()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // RFC 4231 test case 2 shape: key "Jefe"; message "1700000000.{}"
        let s = signature("Jefe", 1_700_000_000, b"{}");
        assert!(s.starts_with("sha256=") && s.len() == 7 + 64, "{s}");
        assert_ne!(s, signature("Jefe", 1_700_000_001, b"{}"), "the timestamp is signed");
        assert_ne!(s, signature("Jefd", 1_700_000_000, b"{}"), "the key matters");
        assert_ne!(s, signature("Jefe", 1_700_000_000, b"{ }"), "the body is signed");
        // RFC 4231 test case 2 itself, through the same code path (timestamp-less check)
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let c = NotifyConfig { retry_base: Duration::from_secs(2), retry_max: Duration::from_secs(600), ..NotifyConfig::default() };
        let got: Vec<u64> = (1..=11).map(|a| backoff(&c, a).as_secs()).collect();
        assert_eq!(got, [2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600]);
        assert_eq!(backoff(&c, u32::MAX).as_secs(), 600);
    }

    #[test]
    fn pbx_events_become_named_events() {
        let mut s = EventState::default();
        let key = call::CallKey::from_raw(7);
        let mut c = call::ActiveCall {
            key,
            call_id: "abc".into(),
            direction: store::CallDirection::Internal,
            caller_id_name: None,
            caller_id_num: "101".into(),
            callee: "102".into(),
            state: call::CallState::Ringing,
            started_at_ms: 1,
            answered_at_ms: None,
            caller_srtp: None,
            callee_srtp: None,
        };
        let names = |v: Vec<(&'static str, Value)>| v.into_iter().map(|(n, _)| n).collect::<Vec<_>>();
        assert_eq!(names(s.on_event(&call::PbxEvent::CallStarted(c.clone()))), ["call.started"]);
        assert!(s.on_event(&call::PbxEvent::CallUpdated(c.clone())).is_empty());
        c.state = call::CallState::Answered;
        assert_eq!(names(s.on_event(&call::PbxEvent::CallUpdated(c.clone()))), ["call.answered"]);
        assert!(s.on_event(&call::PbxEvent::CallUpdated(c.clone())).is_empty(), "answered once");
        let end = s.on_event(&call::PbxEvent::CallEnded { key, disposition: store::CallDisposition::Answered, cause: "normal_clearing" });
        assert_eq!(end.len(), 1);
        assert_eq!(end[0].1["caller_id_num"], "101", "the end carries the call's parties");
        assert_eq!(end[0].1["disposition"], "answered");
        let missed =
            s.on_event(&call::PbxEvent::CallEnded { key: call::CallKey::from_raw(8), disposition: store::CallDisposition::NoAnswer, cause: "no_answer" });
        assert_eq!(names(missed), ["call.ended", "call.missed"]);
        let lost = call::PbxEvent::Registration { extension_id: 3, count: 0, action: call::ChangeAction::Removed };
        assert_eq!(names(s.on_event(&lost)), ["registration.lost"]);
        let fewer = call::PbxEvent::Registration { extension_id: 3, count: 1, action: call::ChangeAction::Removed };
        assert!(s.on_event(&fewer).is_empty(), "one contact left: not lost");
        let ban = call::PbxEvent::SourceBanned { ip: "192.0.2.9".parse().unwrap(), until_secs: 600 };
        assert_eq!(s.on_event(&ban)[0].1, json!({"ip": "192.0.2.9", "seconds": 600}));
        let trunk = |reachable| {
            call::PbxEvent::TrunkStatus(call::TrunkStatus {
                trunk_id: 4,
                registration: None,
                reachable: Some(reachable),
                rtt_ms: None,
                options_status: None,
                transport_error: None,
            })
        };
        assert!(s.on_event(&trunk(true)).is_empty(), "first seen up: no news");
        assert_eq!(names(s.on_event(&trunk(false))), ["trunk.down"]);
        assert!(s.on_event(&trunk(false)).is_empty());
        assert_eq!(names(s.on_event(&trunk(true))), ["trunk.up"]);
    }
}
