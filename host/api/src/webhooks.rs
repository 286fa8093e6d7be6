//! Webhook endpoints (administrators only): list, create, read, update, delete, a test
//! delivery, and each endpoint's delivery log. The signing secret is write-only: given on
//! create or update (or generated, and then shown once in the create response), never read
//! back.
//!
//! A URL is checked when it is saved against the same egress policy its deliveries go
//! through (`flow::egress`, the `--webhook-allow-*` flags): http or https, no credentials in
//! it, a port that is open, and a host whose every address is one the policy allows (an IP
//! literal as it is, a name as it resolves now; the delivery checks again when it connects).

use std::net::IpAddr;
use std::time::Duration;

use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use store::{Webhook, WebhookDelivery, WebhookFields};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::{Created, Data, Deleted, List, ListMeta, PageQuery, PathParams, Query};
use crate::AppState;

/// An endpoint as the API shows it: its row and its circuit.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    #[serde(flatten)]
    pub webhook: Webhook,
    /// `closed` (deliveries go out), `open` (nothing goes out until `circuit_open_until`),
    /// `half_open` (the next delivery tries it).
    pub circuit: &'static str,
    pub circuit_open_until: Option<store::Timestamp>,
    /// Only in the create response when the server generated the secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// The body of create and update.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookInput {
    pub name: String,
    /// http(s) URL the events are POSTed to.
    pub url: String,
    /// Event names (`call.started`, `call.answered`, `call.ended`, `call.missed`,
    /// `voicemail.left`, `registration.lost`, `trunk.down`, `trunk.up`, `ban.imposed`,
    /// `webhook.test`) or `*` for all.
    pub events: Vec<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The HMAC-SHA256 key, 16–256 characters; absent on create: generated; absent on update:
    /// kept.
    pub secret: Option<String>,
}

fn yes() -> bool {
    true
}

fn view(state: &AppState, webhook: Webhook, secret: Option<String>) -> WebhookView {
    let (circuit, until) = match state.notifier().map(|n| n.circuit(webhook.id)) {
        Some(pbx::notify::Circuit::Open { until_ms }) => ("open", store::Timestamp::from_unix_millis(until_ms)),
        Some(pbx::notify::Circuit::HalfOpen) => ("half_open", None),
        _ => ("closed", None),
    };
    WebhookView { webhook, circuit, circuit_open_until: until, secret }
}

/// Checks a URL against the egress policy; the problem, in words, when it is refused.
pub(crate) async fn check_url(raw: &str, egress: &flow::egress::Egress) -> Result<url::Url, String> {
    let url = url::Url::parse(raw.trim()).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an http or https URL".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials (the secret signs the requests)".into());
    }
    let port = url.port_or_known_default().ok_or("has no port")?;
    egress.check_port(port).map_err(|d| d.to_string())?;
    let addrs: Vec<IpAddr> = match url.host() {
        None => return Err("has no host".into()),
        Some(url::Host::Ipv4(a)) => vec![a.into()],
        Some(url::Host::Ipv6(a)) => vec![a.into()],
        Some(url::Host::Domain(name)) => {
            match tokio::time::timeout(Duration::from_secs(3), tokio::net::lookup_host((name, port))).await {
                Ok(Ok(found)) => found.map(|s| s.ip()).collect(),
                // not resolvable now: the delivery resolves and checks it when it connects
                _ => Vec::new(),
            }
        }
    };
    for a in addrs {
        egress.check_addr(a).map_err(|d| format!("{d} (see --webhook-allow-networks)"))?;
    }
    Ok(url)
}

async fn fields_of(state: &AppState, input: &WebhookInput) -> ApiResult<WebhookFields> {
    let mut details = Vec::new();
    let mut bad = |field: &str, message: String| details.push(FieldError { field: field.into(), message });
    let name = input.name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        bad("name", "1–64 characters, no control characters".into());
    }
    if input.url.len() > 2048 {
        bad("url", "at most 2048 characters".into());
    } else {
        let egress = state.notifier().map(|n| n.egress().clone()).unwrap_or_default();
        if let Err(why) = check_url(&input.url, &egress).await {
            bad("url", why);
        }
    }
    if input.events.is_empty() {
        bad("events", "at least one event (or \"*\")".into());
    }
    for (i, e) in input.events.iter().enumerate() {
        if e != "*" && !pbx::notify::EVENTS.contains(&e.as_str()) {
            bad(&format!("events[{i}]"), format!("unknown event; one of {}", pbx::notify::EVENTS.join(", ")));
        }
    }
    if let Some(s) = &input.secret
        && !(16..=256).contains(&s.chars().count())
    {
        bad("secret", "16–256 characters".into());
    }
    if !details.is_empty() {
        return Err(ApiError::Validation(details));
    }
    let mut events: Vec<String> = input.events.clone();
    events.dedup();
    Ok(WebhookFields { name: name.to_owned(), url: input.url.trim().to_owned(), events, enabled: input.enabled })
}

#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks", responses((status = 200, body = inline(Data<Vec<WebhookView>>))))]
pub(crate) async fn list_webhooks(State(state): State<AppState>) -> ApiResult<Data<Vec<WebhookView>>> {
    let rows = state.store().webhooks().list().await?;
    Ok(Data::new(rows.into_iter().map(|w| view(&state, w, None)).collect()))
}

#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", request_body = WebhookInput,
    responses((status = 201, body = inline(Data<WebhookView>), description = "with `secret` when the server generated it"), (status = 409, body = crate::error::ErrorEnvelope)))]
pub(crate) async fn create_webhook(State(state): State<AppState>, caller: Caller, body: bytes::Bytes) -> ApiResult<Created<WebhookView>> {
    let input: WebhookInput = crate::extract::parse_json(&body)?;
    let fields = fields_of(&state, &input).await?;
    let generated = input.secret.is_none().then(|| store::random_token(24));
    let secret = input.secret.clone().or_else(|| generated.clone()).unwrap_or_default();
    let mut tx = state.store().begin().await?;
    let w = tx.webhooks().insert(&fields, &secret).await?;
    tx.audit(&caller.actor(), "create", "webhook", Some(&w.id.to_string()), None, Some(&serde_json::to_value(&w).unwrap_or_default())).await?;
    tx.commit().await?;
    Ok(Created(view(&state, w, generated)))
}

#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "webhooks", params(("id" = i64, Path)),
    responses((status = 200, body = inline(Data<WebhookView>)), (status = 404, body = crate::error::ErrorEnvelope)))]
pub(crate) async fn get_webhook(State(state): State<AppState>, PathParams(id): PathParams<i64>) -> ApiResult<Data<WebhookView>> {
    let w = state.store().webhooks().get(id).await?.ok_or(ApiError::NotFound)?;
    Ok(Data::new(view(&state, w, None)))
}

#[utoipa::path(put, path = "/api/v1/webhooks/{id}", tag = "webhooks", params(("id" = i64, Path)), request_body = WebhookInput,
    responses((status = 200, body = inline(Data<WebhookView>)), (status = 404, body = crate::error::ErrorEnvelope)))]
pub(crate) async fn update_webhook(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<i64>,
    body: bytes::Bytes,
) -> ApiResult<Data<WebhookView>> {
    let input: WebhookInput = crate::extract::parse_json(&body)?;
    let before = state.store().webhooks().get(id).await?.ok_or(ApiError::NotFound)?;
    let fields = fields_of(&state, &input).await?;
    let mut tx = state.store().begin().await?;
    let w = tx.webhooks().update(id, &fields, input.secret.as_deref()).await?.ok_or(ApiError::NotFound)?;
    let mut after = serde_json::to_value(&w).unwrap_or_default();
    if input.secret.is_some()
        && let Some(o) = after.as_object_mut()
    {
        o.insert("secret".into(), serde_json::json!("changed"));
    }
    tx.audit(&caller.actor(), "update", "webhook", Some(&id.to_string()), Some(&serde_json::to_value(&before).unwrap_or_default()), Some(&after)).await?;
    tx.commit().await?;
    if let Some(n) = state.notifier() {
        n.reset(id);
        n.wake();
    }
    Ok(Data::new(view(&state, w, None)))
}

#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks", params(("id" = i64, Path)),
    responses((status = 200, body = inline(Data<Deleted>)), (status = 404, body = crate::error::ErrorEnvelope)))]
pub(crate) async fn delete_webhook(State(state): State<AppState>, caller: Caller, PathParams(id): PathParams<i64>) -> ApiResult<Data<Deleted>> {
    let mut tx = state.store().begin().await?;
    let w = tx.webhooks().delete(id).await?.ok_or(ApiError::NotFound)?;
    tx.audit(&caller.actor(), "delete", "webhook", Some(&id.to_string()), Some(&serde_json::to_value(&w).unwrap_or_default()), None).await?;
    tx.commit().await?;
    if let Some(n) = state.notifier() {
        n.reset(id);
    }
    Ok(Data::new(Deleted { id, deleted: true }))
}

#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks", params(("id" = i64, Path), PageQuery),
    responses((status = 200, body = inline(List<WebhookDelivery>)), (status = 404, body = crate::error::ErrorEnvelope)))]
pub(crate) async fn list_deliveries(
    State(state): State<AppState>,
    PathParams(id): PathParams<i64>,
    Query(q): Query<PageQuery>,
) -> ApiResult<List<WebhookDelivery>> {
    let page = q.page()?;
    state.store().webhooks().get(id).await?.ok_or(ApiError::NotFound)?;
    let p = state.store().webhook_deliveries().list(id, page).await?;
    Ok(List { data: p.items, meta: ListMeta { total: p.total, limit: page.limit, offset: page.offset } })
}

#[utoipa::path(post, path = "/api/v1/webhooks/{id}/test", tag = "webhooks", params(("id" = i64, Path)),
    responses((status = 201, body = inline(Data<WebhookDelivery>), description = "a webhook.test delivery, queued"), (status = 404, body = crate::error::ErrorEnvelope)))]
pub(crate) async fn test_webhook(State(state): State<AppState>, PathParams(id): PathParams<i64>) -> ApiResult<Created<WebhookDelivery>> {
    state.store().webhooks().get(id).await?.ok_or(ApiError::NotFound)?;
    let n = state.notifier().ok_or_else(|| ApiError::internal("the notifier is not running"))?;
    Ok(Created(n.test(id).await?))
}

#[utoipa::path(get, path = "/api/v1/mail-outbox", tag = "webhooks", params(PageQuery),
    responses((status = 200, body = inline(List<store::MailItem>), description = "e-mail queued, sent and failed (voicemail notifications), newest first")))]
pub(crate) async fn list_mail(State(state): State<AppState>, Query(q): Query<PageQuery>) -> ApiResult<List<store::MailItem>> {
    let page = q.page()?;
    let p = state.store().mail_outbox().list(page).await?;
    Ok(List { data: p.items, meta: ListMeta { total: p.total, limit: page.limit, offset: page.offset } })
}

/// An extension's push target as written.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushInput {
    #[schema(inline)]
    pub kind: store::PushKind,
    /// ntfy: the topic URL (`https://ntfy.example.com/alice-calls`); Gotify: the message
    /// endpoint (`https://gotify.example.com/message`).
    pub url: String,
    /// The access token (ntfy) or application token (Gotify), at most 512 characters; absent:
    /// kept; empty: removed.
    pub token: Option<String>,
}

async fn extension_exists(state: &AppState, id: i64) -> ApiResult<()> {
    state.store().extensions().get(id).await?.map(|_| ()).ok_or(ApiError::NotFound)
}

#[utoipa::path(get, path = "/api/v1/extensions/{id}/push", tag = "extensions", params(("id" = i64, Path)),
    responses((status = 200, body = inline(Data<Option<store::PushTarget>>), description = "null when the extension has none"), (status = 404, body = crate::error::ErrorEnvelope)))]
pub(crate) async fn get_push(State(state): State<AppState>, PathParams(id): PathParams<i64>) -> ApiResult<Data<Option<store::PushTarget>>> {
    extension_exists(&state, id).await?;
    Ok(Data::new(state.store().push_targets().get(id).await?))
}

#[utoipa::path(put, path = "/api/v1/extensions/{id}/push", tag = "extensions", params(("id" = i64, Path)), request_body = PushInput,
    responses((status = 200, body = inline(Data<store::PushTarget>)), (status = 404, body = crate::error::ErrorEnvelope)))]
pub(crate) async fn put_push(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<i64>,
    body: bytes::Bytes,
) -> ApiResult<Data<store::PushTarget>> {
    let input: PushInput = crate::extract::parse_json(&body)?;
    extension_exists(&state, id).await?;
    let mut details = Vec::new();
    let egress = state.notifier().map(|n| n.egress().clone()).unwrap_or_default();
    if input.url.len() > 2048 {
        details.push(FieldError { field: "url".into(), message: "at most 2048 characters".into() });
    } else if let Err(why) = check_url(&input.url, &egress).await {
        details.push(FieldError { field: "url".into(), message: why });
    }
    if let Some(t) = &input.token
        && (t.chars().count() > 512 || t.chars().any(char::is_control))
    {
        details.push(FieldError { field: "token".into(), message: "at most 512 characters, no control characters".into() });
    }
    if !details.is_empty() {
        return Err(ApiError::Validation(details));
    }
    let mut tx = state.store().begin().await?;
    let t = tx.push_targets().set(id, input.kind, input.url.trim(), input.token.as_deref()).await?;
    tx.audit(&caller.actor(), "set_push", "extension", Some(&id.to_string()), None, Some(&serde_json::to_value(&t).unwrap_or_default())).await?;
    tx.commit().await?;
    Ok(Data::new(t))
}

#[utoipa::path(delete, path = "/api/v1/extensions/{id}/push", tag = "extensions", params(("id" = i64, Path)),
    responses((status = 200, body = inline(Data<Deleted>)), (status = 404, body = crate::error::ErrorEnvelope)))]
pub(crate) async fn delete_push(State(state): State<AppState>, caller: Caller, PathParams(id): PathParams<i64>) -> ApiResult<Data<Deleted>> {
    extension_exists(&state, id).await?;
    let mut tx = state.store().begin().await?;
    if !tx.push_targets().delete(id).await? {
        return Err(ApiError::NotFound);
    }
    tx.audit(&caller.actor(), "delete_push", "extension", Some(&id.to_string()), None, None).await?;
    tx.commit().await?;
    Ok(Data::new(Deleted { id, deleted: true }))
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        list_webhooks,
        create_webhook,
        get_webhook,
        update_webhook,
        delete_webhook,
        list_deliveries,
        test_webhook,
        list_mail,
        get_push,
        put_push,
        delete_push
    ),
    components(schemas(WebhookInput, PushInput))
)]
pub(crate) struct WebhooksDoc;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/webhooks", get(list_webhooks).post(create_webhook))
        .route("/webhooks/{id}", get(get_webhook).put(update_webhook).delete(delete_webhook))
        .route("/webhooks/{id}/deliveries", get(list_deliveries))
        .route("/webhooks/{id}/test", post(test_webhook))
        .route("/mail-outbox", get(list_mail))
        .route("/extensions/{id}/push", get(get_push).put(put_push).delete(delete_push))
}

#[cfg(test)]
mod tests {
    use super::check_url;
    use flow::egress::Egress;

    #[tokio::test]
    async fn urls_are_checked_against_the_egress_policy() {
        let none = Egress::default();
        for (bad, why) in [
            ("http://127.0.0.1:8080/hook", "port 8080"),
            ("http://127.0.0.1/hook", "loopback"),
            ("http://169.254.169.254/latest/meta-data", "link-local"),
            ("http://10.0.0.5/hook", "private"),
            ("http://[::1]/hook", "loopback"),
            ("http://0.0.0.0/hook", "unspecified"),
            ("http://localhost/hook", "loopback"),
            ("ftp://example.com/x", "http or https"),
            ("https://user:pw@203.0.114.1/x", "credentials"),
            ("not a url", "not a URL"),
        ] {
            let e = check_url(bad, &none).await.expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
        }
        assert!(check_url("https://203.0.114.1/hook", &none).await.is_ok(), "public, 443");
        let lo = Egress { networks: vec![flow::egress::parse_network("127.0.0.1").unwrap()], ports: vec![8080] };
        assert!(check_url("http://127.0.0.1:8080/hook", &lo).await.is_ok(), "granted");
        assert!(check_url("http://127.0.0.2:8080/hook", &lo).await.is_err(), "outside the grant");
    }
}
