//! HTTPS and what changes with it: the HTTPS listener (the same router behind TLS from the
//! `tls` crate's certificate store), the ACME HTTP-01 answers, the redirect of plain HTTP to
//! HTTPS and HSTS once the certificate is one browsers trust, the session cookie `Secure` on
//! HTTPS, and the certificate's status (`GET /system/tls`, `POST /system/tls/renew`).
//!
//! - `/.well-known/acme-challenge/<token>` is answered on every listener, before the `Host`
//!   check (the CA names the domain being validated), from the store's pending orders.
//! - Plain HTTP is redirected (308, so a POST stays a POST) to `https://<host>[:port]` when
//!   HTTPS listens and the certificate is trusted (CA-issued, in its validity period); not
//!   `/api/v1/health` (monitors poll it over HTTP) nor the challenges.
//! - HTTPS responses carry `Strict-Transport-Security` once the certificate is trusted (never
//!   with the self-signed one: a browser would pin a certificate it cannot check).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::SystemTime;

use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::IncomingStream;
use axum::Router;
use serde::Serialize;
use store::Timestamp;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::extract::Data;
use crate::host_check::ConnInfo;
use crate::AppState;

/// HSTS for a year (no `includeSubDomains`: other names of the domain are not ours to pin).
pub const HSTS: &str = "max-age=31536000";

/// What HTTPS the state knows of.
#[derive(Debug, Clone)]
pub(crate) struct Https {
    pub(crate) store: tls::CertStore,
    /// The port HTTPS listens on (0: none).
    pub(crate) port: u16,
}

/// TLS connections for `axum::serve`: accepted and handshaken by [`tls::TlsListener`].
pub struct HttpsListener {
    inner: tls::TlsListener,
}

impl HttpsListener {
    /// Serves the store's HTTPS configuration (HTTP/1.1 and TLS-ALPN-01) on `tcp`.
    pub fn new(tcp: tokio::net::TcpListener, store: &tls::CertStore) -> Result<HttpsListener, tls::Error> {
        let config = store.https_server_config()?;
        let inner = tls::TlsListener::new(tcp, config, tls::HandshakeLimits::default()).map_err(|e| tls::Error::Config(e.to_string()))?;
        Ok(HttpsListener { inner })
    }
}

impl axum::serve::Listener for HttpsListener {
    type Io = tls::tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            if let Some(c) = self.inner.accept().await {
                return c;
            }
            // the accept task is gone (it never ends while the listener lives): serve nothing
            std::future::pending::<()>().await;
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.inner.local_addr())
    }
}

impl Connected<IncomingStream<'_, HttpsListener>> for ConnInfo {
    fn connect_info(stream: IncomingStream<'_, HttpsListener>) -> Self {
        ConnInfo { remote: *stream.remote_addr(), local: stream.io().get_ref().0.local_addr().ok(), tls: true }
    }
}

fn is_tls(req: &Request) -> bool {
    req.extensions().get::<ConnectInfo<ConnInfo>>().is_some_and(|c| c.0.tls)
}

const CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// Middleware (outside the `Host` check): answers HTTP-01 validations.
pub(crate) async fn acme_challenge(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(token) = req.uri().path().strip_prefix(CHALLENGE_PREFIX) else { return next.run(req).await };
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return ApiError::MethodNotAllowed.into_response();
    }
    let answer = state.https().and_then(|h| h.store.http01_key_authorization(token));
    match answer {
        Some(key_authorization) => ([(header::CONTENT_TYPE, "application/octet-stream")], key_authorization).into_response(),
        None => ApiError::NotFound.into_response(),
    }
}

/// The `https://` URL of this request on `port`, from its `Host` (None when it has none that
/// can be written back).
fn https_location(req: &Request, port: u16) -> Option<HeaderValue> {
    let host = req.headers().get(header::HOST).and_then(|v| v.to_str().ok()).or_else(|| req.uri().authority().map(|a| a.as_str()))?;
    let name = crate::host_check::host_part(host)?;
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':')) {
        return None;
    }
    let name = if name.contains(':') { format!("[{name}]") } else { name.to_owned() };
    let port = if port == 443 { String::new() } else { format!(":{port}") };
    let path = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
    HeaderValue::from_str(&format!("https://{name}{port}{path}")).ok()
}

/// Middleware (inside the `Host` check): the redirect to HTTPS, HSTS and `Secure` cookies.
pub(crate) async fn https_policy(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let tls = is_tls(&req);
    let trusted = state.https().is_some_and(|h| h.port != 0 && h.store.trusted(SystemTime::now()));
    if !tls && trusted && req.uri().path() != "/api/v1/health" {
        let port = state.https().map(|h| h.port).unwrap_or(443);
        if let Some(location) = https_location(&req, port) {
            return (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, location)]).into_response();
        }
    }
    let mut resp = next.run(req).await;
    if tls {
        let h = resp.headers_mut();
        let cookies: Vec<HeaderValue> = h.get_all(header::SET_COOKIE).iter().cloned().collect();
        if cookies.iter().any(|c| !has_secure(c)) {
            h.remove(header::SET_COOKIE);
            for c in cookies {
                let c = if has_secure(&c) { c } else { HeaderValue::from_bytes(&[c.as_bytes(), b"; Secure"].concat()).unwrap_or(c) };
                h.append(header::SET_COOKIE, c);
            }
        }
        if trusted {
            h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(HSTS));
        }
    }
    resp
}

fn has_secure(cookie: &HeaderValue) -> bool {
    cookie.to_str().is_ok_and(|c| c.split(';').skip(1).any(|a| a.trim().eq_ignore_ascii_case("secure")))
}

// ---------------------------------------------------------------------------------------------
// status

/// The serving certificate.
#[derive(Debug, Serialize, ToSchema)]
pub struct CertificateView {
    /// file | acme | self_signed
    pub source: &'static str,
    pub subject: String,
    /// DNS names and IP addresses it is valid for
    pub sans: Vec<String>,
    pub issuer: String,
    pub not_before: Timestamp,
    pub not_after: Timestamp,
    /// whole days until not_after (negative once expired)
    pub days_left: i64,
    pub serial: String,
    pub sha256_fingerprint: String,
    /// issued by itself: browsers and phones do not trust it unless told to
    pub self_signed: bool,
    pub installed_at: Timestamp,
}

/// The ACME account and order.
#[derive(Debug, Serialize, ToSchema)]
pub struct AcmeView {
    pub directory: String,
    pub domains: Vec<String>,
    /// http-01 | tls-alpn-01 | dns-01
    pub challenge: String,
    /// the account URL, once created
    pub account: Option<String>,
}

/// The certificate files.
#[derive(Debug, Serialize, ToSchema)]
pub struct FilesView {
    pub cert: String,
    pub key: String,
}

/// A TLS listener: where it listens, or why it does not.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListenerView {
    pub address: Option<String>,
    pub error: Option<String>,
}

/// The server certificate, where it comes from, and its renewal.
#[derive(Debug, Serialize, ToSchema)]
pub struct TlsView {
    /// false when the server runs without TLS
    pub enabled: bool,
    /// the configured source: file | acme | self_signed
    pub mode: Option<&'static str>,
    /// the HTTPS port (none: HTTPS is off)
    pub https_port: Option<u16>,
    /// a CA-issued certificate in its validity period: HTTP redirects to HTTPS, HSTS is sent
    pub trusted: bool,
    pub certificate: Option<CertificateView>,
    pub files: Option<FilesView>,
    pub acme: Option<AcmeView>,
    /// the last ACME order or reading of the files
    pub last_attempt: Option<Timestamp>,
    pub last_success: Option<Timestamp>,
    /// why the last attempt failed (cleared by a success; the previous certificate still serves)
    pub last_error: Option<String>,
    pub last_error_at: Option<Timestamp>,
    /// failed attempts since the last success
    pub failures: u32,
    /// when the next ACME order is due
    pub next_renewal: Option<Timestamp>,
    /// an ACME order is in progress
    pub renewing: bool,
    /// TLS listeners by name (https, sip-tls)
    pub listeners: BTreeMap<String, ListenerView>,
    /// ok | degraded, as the health endpoint's tls component says
    pub health: String,
    pub health_detail: String,
}

fn ts(t: SystemTime) -> Timestamp {
    let ms = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_millis().min(i64::MAX as u128) as i64,
        Err(e) => -(e.duration().as_millis().min(i64::MAX as u128) as i64),
    };
    Timestamp::from_unix_millis(ms).unwrap_or_else(Timestamp::now)
}

pub(crate) fn view(state: &AppState) -> TlsView {
    let Some(h) = state.https() else {
        return TlsView {
            enabled: false,
            mode: None,
            https_port: None,
            trusted: false,
            certificate: None,
            files: None,
            acme: None,
            last_attempt: None,
            last_success: None,
            last_error: None,
            last_error_at: None,
            failures: 0,
            next_renewal: None,
            renewing: false,
            listeners: BTreeMap::new(),
            health: "ok".into(),
            health_detail: "TLS is not configured".into(),
        };
    };
    let now = SystemTime::now();
    let s = h.store.status();
    let health = h.store.health(now);
    TlsView {
        enabled: true,
        mode: Some(s.mode.as_str()),
        https_port: (h.port != 0).then_some(h.port),
        trusted: h.store.trusted(now),
        certificate: s.serving.map(|c| {
            let left = match c.info.not_after.duration_since(now) {
                Ok(d) => (d.as_secs() / 86400) as i64,
                Err(e) => -(e.duration().as_secs().div_ceil(86400) as i64),
            };
            CertificateView {
                source: c.source.as_str(),
                subject: c.info.subject,
                sans: c.info.sans,
                issuer: c.info.issuer,
                not_before: ts(c.info.not_before),
                not_after: ts(c.info.not_after),
                days_left: left,
                serial: c.info.serial,
                sha256_fingerprint: c.info.sha256_fingerprint,
                self_signed: c.info.self_signed,
                installed_at: ts(c.installed_at),
            }
        }),
        files: s.files.map(|f| FilesView { cert: f.cert, key: f.key }),
        acme: s.acme.map(|a| AcmeView { directory: a.directory, domains: a.domains, challenge: a.challenge, account: a.account }),
        last_attempt: s.last_attempt.map(ts),
        last_success: s.last_success.map(ts),
        last_error: s.last_error,
        last_error_at: s.last_error_at.map(ts),
        failures: s.failures,
        next_renewal: s.next_renewal.map(ts),
        renewing: s.renewing,
        listeners: s.listeners.into_iter().map(|(k, l)| (k, ListenerView { address: l.address, error: l.error })).collect(),
        health: health.status.to_owned(),
        health_detail: health.detail,
    }
}

#[utoipa::path(get, path = "/api/v1/system/tls", tag = "system", responses((status = 200, body = inline(Data<TlsView>))))]
pub(crate) async fn get_tls(State(state): State<AppState>) -> Data<TlsView> {
    Data::new(view(&state))
}

/// The answer to a renewal request.
#[derive(Debug, Serialize, ToSchema)]
pub struct RenewalRequested {
    /// true: an order starts now (or one in progress is the renewal)
    pub requested: bool,
}

#[utoipa::path(post, path = "/api/v1/system/tls/renew", tag = "system",
    responses((status = 202, description = "an ACME order starts now; GET /system/tls shows its outcome", body = inline(Data<RenewalRequested>)),
              (status = 409, description = "the certificate does not come from ACME", body = crate::error::ErrorEnvelope)))]
pub(crate) async fn renew(State(state): State<AppState>, caller: crate::auth::Caller) -> ApiResult<Response> {
    let Some(h) = state.https() else {
        return Err(ApiError::Conflict { message: "TLS is not configured".into(), references: vec![] });
    };
    h.store.request_renewal().map_err(|e| ApiError::Conflict { message: e.to_string(), references: vec![] })?;
    let mut tx = state.store().begin().await?;
    tx.audit(&caller.actor(), "renew", "tls_certificate", None, None, None).await?;
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, Data::new(RenewalRequested { requested: true })).into_response())
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/system/tls", get(get_tls)).route("/system/tls/renew", post(renew))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(host: &str, uri: &str) -> Request {
        axum::http::Request::builder().uri(uri).header(header::HOST, host).body(axum::body::Body::empty()).unwrap()
    }

    #[test]
    fn the_redirect_keeps_host_path_and_query() {
        let l = |h: &str, u: &str, p: u16| https_location(&req(h, u), p).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(l("pbx.example.com:8080", "/calls?x=1", 443).as_deref(), Some("https://pbx.example.com/calls?x=1"));
        assert_eq!(l("pbx.example.com", "/", 8443).as_deref(), Some("https://pbx.example.com:8443/"));
        assert_eq!(l("[::1]:8080", "/a", 8443).as_deref(), Some("https://[::1]:8443/a"));
        assert_eq!(l("evil\"name", "/", 443), None);
        assert_eq!(l("a b", "/", 443), None);
    }

    #[test]
    fn secure_is_seen_only_as_an_attribute() {
        assert!(has_secure(&HeaderValue::from_static("s=1; Path=/; Secure")));
        assert!(!has_secure(&HeaderValue::from_static("secure=1; Path=/")));
    }
}
