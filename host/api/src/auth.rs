//! Authentication: first-boot setup, admin sessions (HttpOnly SameSite=Strict cookie plus a
//! CSRF token for every state-changing request; 24 h sliding, 7 days at most), login
//! throttling ([`crate::login_limit`]), API tokens (bearer JWTs with a scope and an expiry) for
//! integrations, and the middleware that guards every other route: what a token of each scope
//! may reach is [`token_need`]'s table.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use store::{constant_time_eq, random_token, sha256_hex, verify_password, Actor, AdminUser, ApiToken, NewSession, SessionInfo, Timestamp, TokenScope};
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::extract::{Created, Data, Deleted, Json, List, ListMeta, PageQuery, PathParams, Query};
use crate::host_check::ConnInfo;
use crate::settings::{apply_settings_update, SettingsUpdate};
use crate::validate::Errors;
use crate::AppState;

pub const SESSION_COOKIE: &str = "flowpbx_session";
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Sessions last this long after the last activity…
pub const SESSION_TTL: time::Duration = time::Duration::hours(24);
/// …and never longer than this after the login, however active.
pub const SESSION_MAX_LIFETIME: time::Duration = time::Duration::days(7);
/// An API token's lifetime when its creation names none.
pub const TOKEN_DEFAULT_DAYS: u32 = 90;
/// The longest lifetime an API token can be given.
pub const TOKEN_MAX_DAYS: u32 = 365;
/// A session's expiry is pushed forward at most this often (saves a write per request).
const TOUCH_INTERVAL: time::Duration = time::Duration::seconds(60);

/// Who is making a request.
#[derive(Debug, Clone)]
pub enum Principal {
    /// A signed-in administrator, by their session.
    Admin {
        user_id: i64,
        username: String,
        session_id: i64,
    },
    Token {
        token_id: i64,
        name: String,
        scope: TokenScope,
    },
}

/// The authenticated caller and their address, inserted by [`require_auth`].
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub ip: Option<IpAddr>,
}

impl Caller {
    pub fn actor(&self) -> Actor {
        let name = match &self.principal {
            Principal::Admin { username, .. } => format!("admin:{username}"),
            Principal::Token { name, .. } => format!("token:{name}"),
        };
        Actor { name, ip: self.ip.map(|i| i.to_string()) }
    }

    pub fn admin_id(&self) -> Option<i64> {
        match self.principal {
            Principal::Admin { user_id, .. } => Some(user_id),
            Principal::Token { .. } => None,
        }
    }

    /// Err(403) unless the caller is a signed-in session: what creating tokens, uploading
    /// plugins and granting capabilities need, whatever a token's scope.
    pub fn require_session(&self, what: &'static str) -> ApiResult<(i64, &str, i64)> {
        match &self.principal {
            Principal::Admin { user_id, username, session_id } => Ok((*user_id, username.as_str(), *session_id)),
            Principal::Token { .. } => Err(ApiError::Forbidden(what)),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _s: &S) -> Result<Self, ApiError> {
        parts.extensions.get::<Caller>().cloned().ok_or(ApiError::Unauthorized("authentication required"))
    }
}

/// The client's IP, when the server was started with connect info ([`ConnInfo`] or a plain
/// `SocketAddr`). `X-Forwarded-For` is not trusted.
pub fn client_ip(parts_ext: &axum::http::Extensions) -> Option<IpAddr> {
    parts_ext
        .get::<ConnectInfo<ConnInfo>>()
        .map(|c| c.0.remote.ip())
        .or_else(|| parts_ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()))
        .map(|ip| ip.to_canonical())
}

// ---------------------------------------------------------------------------------------------
// what a token may reach

/// What a request needs of an API token. A session may do everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenNeed {
    /// A token of at least this scope.
    Scope(TokenScope),
    /// No token at all: a signed-in session.
    Session,
}

/// The table of what a token needs, by method and route (the route's template under
/// `/api/v1`, as axum matched it):
/// - a session only: creating tokens, uploading plugins, changing the password, listing and
///   ending sessions (granting plugin capabilities is checked in the handler: the same route
///   enables a plugin);
/// - `admin`: the token list and revocation, settings, the audit log, the system status,
///   enabling and deleting plugins, renewing the TLS certificate, webhooks;
/// - `read`: any other GET (or HEAD);
/// - `write`: any other method.
pub fn token_need(method: &Method, route: &str) -> TokenNeed {
    let route = route.strip_prefix("/api/v1").unwrap_or(route);
    let read = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    match route {
        "/api-tokens" | "/plugins" if *method == Method::POST => TokenNeed::Session,
        "/auth/password" | "/auth/sessions" | "/auth/sessions/{id}" => TokenNeed::Session,
        "/api-tokens" | "/api-tokens/{id}" | "/settings" | "/audit-log" | "/system/status" => TokenNeed::Scope(TokenScope::Admin),
        "/plugins/{id}" if !read => TokenNeed::Scope(TokenScope::Admin),
        "/system/tls/renew" | "/system/drain" | "/system/backups" => TokenNeed::Scope(TokenScope::Admin),
        // outbound endpoints with their signing secrets: administrators only
        "/webhooks" | "/webhooks/{id}" | "/webhooks/{id}/deliveries" | "/webhooks/{id}/test" | "/mail-outbox" => TokenNeed::Scope(TokenScope::Admin),
        _ if read => TokenNeed::Scope(TokenScope::Read),
        _ => TokenNeed::Scope(TokenScope::Write),
    }
}

// ---------------------------------------------------------------------------------------------
// cookies and tokens

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

fn is_https(headers: &HeaderMap) -> bool {
    headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

fn session_cookie(token: &str, max_age: i64, secure: bool) -> HeaderValue {
    let mut c = format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}");
    if secure {
        c.push_str("; Secure");
    }
    // token is hex, so the value is always a valid header
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static("flowpbx_session=; Max-Age=0"))
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// "token:<id>"
    sub: String,
    jti: String,
    iat: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
}

fn jwt_validation() -> Validation {
    let mut v = Validation::new(Algorithm::HS256);
    v.required_spec_claims.clear();
    v.validate_exp = true;
    v.leeway = 0;
    v
}

/// A session cookie to send again: the token and its new lifetime in seconds.
struct Refresh {
    token: String,
    max_age: i64,
}

/// The caller, and the session cookie to re-send (the session was extended).
async fn authenticate(state: &AppState, headers: &HeaderMap, method: &Method) -> ApiResult<(Principal, Option<Refresh>)> {
    authenticate_with(state, headers, method, true).await
}

/// Who `headers` (a session cookie or a bearer token) authenticate, without extending the
/// session: what `/ws` checks when a socket opens and while it stays open, and what health
/// checks to show its details.
pub(crate) async fn principal(state: &AppState, headers: &HeaderMap) -> ApiResult<Principal> {
    authenticate_with(state, headers, &Method::GET, false).await.map(|(p, _)| p)
}

async fn authenticate_with(state: &AppState, headers: &HeaderMap, method: &Method, touch: bool) -> ApiResult<(Principal, Option<Refresh>)> {
    let store = state.store();
    let now = Timestamp::now();
    if let Some(auth) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let Some(jwt) = auth.strip_prefix("Bearer ").or_else(|| auth.strip_prefix("bearer ")) else {
            return Err(ApiError::Unauthorized("unsupported Authorization scheme (use Bearer)"));
        };
        let data = jsonwebtoken::decode::<Claims>(jwt.trim(), &DecodingKey::from_secret(&state.config().jwt_secret), &jwt_validation())
            .map_err(|_| ApiError::Unauthorized("invalid or expired API token"))?;
        let token = store.api_tokens().use_live(&data.claims.jti, now).await?.ok_or(ApiError::Unauthorized("API token revoked or expired"))?;
        return Ok((Principal::Token { token_id: token.id, name: token.name, scope: token.scope }, None));
    }
    let Some(token) = cookie_value(headers, SESSION_COOKIE) else {
        return Err(ApiError::Unauthorized("authentication required"));
    };
    let hash = sha256_hex(token.as_bytes());
    let session = store.sessions().get_live(&hash, now).await?.ok_or(ApiError::Unauthorized("session expired"))?;
    let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe {
        let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
        if !constant_time_eq(sent.as_bytes(), session.csrf_token.as_bytes()) {
            return Err(ApiError::Forbidden("missing or wrong X-CSRF-Token"));
        }
    }
    let mut refresh = None;
    if touch
        && now.unix_millis() - session.last_seen_at.unix_millis() >= TOUCH_INTERVAL.whole_milliseconds() as i64
        && let Some(until) = store.sessions().touch(&hash, now, now + SESSION_TTL).await?
    {
        refresh = Some(Refresh { token: token.to_owned(), max_age: until.seconds_since(now) });
    }
    Ok((Principal::Admin { user_id: session.admin_user_id, username: session.username, session_id: session.id }, refresh))
}

/// Middleware of every protected route: a session cookie (with the CSRF token on
/// state-changing methods) or a bearer API token of the scope the route needs
/// ([`token_need`]; 403 otherwise).
pub async fn require_auth(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let ip = client_ip(req.extensions());
    let https = is_https(req.headers());
    match authenticate(&state, req.headers(), req.method()).await {
        Ok((principal, refresh)) => {
            if let Principal::Token { scope, .. } = &principal {
                let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned()).unwrap_or_else(|| req.uri().path().to_owned());
                match token_need(req.method(), &route) {
                    TokenNeed::Session => return ApiError::Forbidden("this needs a signed-in session: an API token cannot do it").into_response(),
                    TokenNeed::Scope(needed) if !scope.allows(needed) => {
                        return ApiError::Forbidden(match needed {
                            TokenScope::Admin => "this needs an API token with the admin scope",
                            _ => "this needs an API token with the write scope",
                        })
                        .into_response();
                    }
                    TokenNeed::Scope(_) => {}
                }
            }
            req.extensions_mut().insert(Caller { principal, ip });
            let mut resp = next.run(req).await;
            // the session was extended: so is the cookie (unless the handler set its own)
            if let Some(r) = refresh
                && !resp.headers().contains_key(header::SET_COOKIE)
            {
                resp.headers_mut().insert(header::SET_COOKIE, session_cookie(&r.token, r.max_age, https));
            }
            resp
        }
        Err(e) => e.into_response(),
    }
}

// ---------------------------------------------------------------------------------------------
// handlers

/// First-boot state.
#[derive(Debug, Serialize, ToSchema)]
pub struct SetupStatus {
    /// true until the first administrator exists
    pub required: bool,
    /// While setup is required: the SIP ports in force (a flag or environment variable the
    /// server was started with, else the default), for the wizard to start from; absent
    /// once set up (the settings show them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sip_ports: Option<SetupPorts>,
}

/// The SIP ports as they are, each with what fixes it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SetupPorts {
    pub sip_udp_port: crate::settings::SettingView,
    pub sip_tcp_port: crate::settings::SettingView,
    pub sip_tls_port: crate::settings::SettingView,
}

/// First-boot setup: the first administrator, and optionally the wizard's settings.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetupRequest {
    pub username: String,
    pub password: String,
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub external_ip: Option<String>,
    #[serde(default)]
    #[schema(minimum = 1, maximum = 65535)]
    pub sip_udp_port: Option<u16>,
    #[serde(default)]
    #[schema(minimum = 1, maximum = 65535)]
    pub sip_tcp_port: Option<u16>,
    #[serde(default)]
    pub sip_realm: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

/// The logged-in administrator and the CSRF token to send back in `X-CSRF-Token`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub user: Option<AdminUser>,
    /// set when authenticated by an API token: its name
    pub token: Option<String>,
    /// set when authenticated by an API token: its scope
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<TokenScope>,
    pub csrf_token: Option<String>,
}

/// A token to create (only a signed-in session can).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiToken {
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// read: GET only; write: entity changes too; admin: settings, tokens, plugins and the
    /// audit log too
    pub scope: TokenScope,
    /// days until it expires (default 90, at most 365)
    #[serde(default)]
    #[schema(minimum = 1, maximum = 365)]
    pub expires_in_days: Option<u32>,
}

/// A password change: the current password, the new one, and whether to revoke the API
/// tokens this administrator created too. Every other session of the administrator ends.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    pub current_password: String,
    #[schema(min_length = 8, max_length = 1024)]
    pub new_password: String,
    /// also revoke every API token this administrator created (default false)
    #[serde(default)]
    pub revoke_tokens: bool,
}

/// What a password change ended.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasswordChanged {
    pub sessions_ended: u64,
    pub tokens_revoked: u64,
}

/// One of the administrator's sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    #[serde(flatten)]
    pub info: SessionInfo,
    /// the session making this request
    pub current: bool,
}

/// How many sessions were ended.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionsEnded {
    pub ended: u64,
}

/// A created API token: `token` (the bearer JWT) is shown only here.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiToken {
    #[serde(flatten)]
    pub info: ApiToken,
    pub token: String,
}

fn validate_credentials(e: &mut Errors, username: &str, password: &str) {
    e.check(
        (1..=64).contains(&username.len()) && username.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@')),
        "username",
        "must be 1-64 letters, digits, '.', '_', '-' or '@'",
    );
    e.check((8..=1024).contains(&password.chars().count()), "password", "must be 8 to 1024 characters");
}

#[utoipa::path(get, path = "/api/v1/setup", tag = "auth", responses((status = 200, body = inline(Data<SetupStatus>))))]
pub(crate) async fn setup_status(State(state): State<AppState>) -> ApiResult<Data<SetupStatus>> {
    let required = state.store().admin_users().count().await? == 0;
    let sip_ports = if required {
        let effective = state.settings_layers().effective(&state.store().settings().all().await?);
        use pbx::settings::keys;
        let view = |key: &str| effective.iter().find(|e| e.setting.key == key).map(crate::settings::setting_view);
        match (view(keys::SIP_UDP_PORT), view(keys::SIP_TCP_PORT), view(keys::SIP_TLS_PORT)) {
            (Some(sip_udp_port), Some(sip_tcp_port), Some(sip_tls_port)) => Some(SetupPorts { sip_udp_port, sip_tcp_port, sip_tls_port }),
            _ => None,
        }
    } else {
        None
    };
    Ok(Data::new(SetupStatus { required, sip_ports }))
}

#[utoipa::path(post, path = "/api/v1/setup", tag = "auth", request_body = SetupRequest,
    responses((status = 201, body = inline(Data<AdminUser>)), (status = 409, body = crate::error::ErrorEnvelope)))]
pub(crate) async fn setup(State(state): State<AppState>, req: Request) -> ApiResult<Created<AdminUser>> {
    let ip = client_ip(req.extensions());
    let Json(body) = Json::<SetupRequest>::from_request_any(req, &state).await?;
    let store = state.store();
    if store.admin_users().count().await? > 0 {
        return Err(ApiError::Conflict { message: "setup has already been done".into(), references: vec![] });
    }
    let mut e = Errors::new();
    validate_credentials(&mut e, &body.username, &body.password);
    e.finish()?;
    let update = SettingsUpdate {
        hostname: body.hostname.map(Some),
        external_ip: body.external_ip.map(Some),
        sip_udp_port: body.sip_udp_port.map(Some),
        sip_tcp_port: body.sip_tcp_port.map(Some),
        sip_realm: body.sip_realm.map(Some),
        ..Default::default()
    };
    let actor = Actor { name: format!("setup:{}", body.username), ip: ip.map(|i| i.to_string()) };
    let mut tx = store.begin().await?;
    let user = tx
        .admin_users()
        .create_first(&body.username, &body.password)
        .await?
        .ok_or_else(|| ApiError::Conflict { message: "setup has already been done".into(), references: vec![] })?;
    tx.audit(&actor, "setup", "admin_user", Some(&user.id.to_string()), None, Some(&serde_json::to_value(&user).unwrap_or_default())).await?;
    let realm_change = apply_settings_update(&state, &mut tx, &update, &actor).await?;
    tx.commit().await?;
    if let Some(realm) = realm_change {
        store.set_sip_realm(&realm).await?;
    }
    state.refresh_host_policy().await?;
    tracing::info!(username = %user.username, "first-boot setup created the administrator");
    Ok(Created(user))
}

impl<T: serde::de::DeserializeOwned> Json<T> {
    /// Extracts from a whole request (for handlers that need the request's extensions too).
    pub async fn from_request_any<S: Send + Sync>(req: Request, state: &S) -> ApiResult<Self> {
        <Json<T> as axum::extract::FromRequest<S>>::from_request(req, state).await
    }
}

#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = inline(Data<Me>)), (status = 401, body = crate::error::ErrorEnvelope),
              (status = 429, description = "too many failed attempts for this username from this address, from this address, or (from an address that has failed) for this username: Retry-After says when to try again", body = crate::error::ErrorEnvelope)))]
pub(crate) async fn login(State(state): State<AppState>, req: Request) -> ApiResult<Response> {
    let ip = client_ip(req.extensions());
    let key_ip = ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let headers = req.headers().clone();
    let Json(body) = Json::<LoginRequest>::from_request_any(req, &state).await?;
    // reserved before the hash is checked: parallel attempts cannot overrun the limits
    let attempt = state
        .0
        .login_limiter
        .reserve(&body.username, key_ip, Instant::now())
        .map_err(|r| ApiError::TooManyRequests { retry_after_secs: r.retry_after_secs, message: "too many failed logins; try again later" })?;
    let store = state.store();
    let found = store.admin_users().get_with_hash(&body.username).await?;
    let ok = match &found {
        Some((_, hash)) => verify_password(&body.password, hash).await,
        None => {
            // spend the same time as a real check so usernames cannot be probed by timing
            let _ = verify_password(&body.password, dummy_hash().await).await;
            false
        }
    };
    let actor = Actor { name: format!("admin:{}", body.username.chars().take(64).collect::<String>()), ip: ip.map(|i| i.to_string()) };
    let Some((user, _)) = found.filter(|_| ok) else {
        let source = attempt.source();
        if let Some(secs) = attempt.failed() {
            tracing::warn!(%source, lock_secs = secs, "logins locked after repeated failures");
        }
        let mut tx = store.begin().await?;
        tx.audit(&actor, "login_failed", "session", None, None, None).await?;
        tx.commit().await?;
        return Err(ApiError::Unauthorized("wrong username or password"));
    };
    attempt.succeeded();
    let token = random_token(32);
    let csrf = random_token(32);
    let now = Timestamp::now();
    let mut tx = store.begin().await?;
    tx.sessions()
        .create(&NewSession {
            token_hash: sha256_hex(token.as_bytes()),
            admin_user_id: user.id,
            csrf_token: csrf.clone(),
            expires_at: now + SESSION_TTL,
            absolute_expires_at: now + SESSION_MAX_LIFETIME,
            ip: ip.map(|i| i.to_string()),
            user_agent: headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(|s| s.chars().take(256).collect()),
        })
        .await?;
    tx.admin_users().touch_login(user.id).await?;
    tx.audit(&actor, "login", "session", Some(&user.id.to_string()), None, None).await?;
    tx.commit().await?;
    let mut resp = Data::new(Me { user: Some(user), token: None, scope: None, csrf_token: Some(csrf) }).into_response();
    resp.headers_mut().insert(header::SET_COOKIE, session_cookie(&token, SESSION_TTL.whole_seconds(), is_https(&headers)));
    Ok(resp)
}

/// An argon2id hash of a random string, made once, to spend equal time on unknown usernames.
async fn dummy_hash() -> &'static str {
    static DUMMY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    DUMMY.get_or_init(|| async { store::hash_password(&random_token(16)).await.unwrap_or_default() }).await.as_str()
}

#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", responses((status = 200, body = inline(Data<Deleted>))))]
pub(crate) async fn logout(State(state): State<AppState>, caller: Caller, headers: HeaderMap) -> ApiResult<Response> {
    if let Some(token) = cookie_value(&headers, SESSION_COOKIE) {
        let mut tx = state.store().begin().await?;
        tx.sessions().delete(&sha256_hex(token.as_bytes())).await?;
        tx.audit(&caller.actor(), "logout", "session", caller.admin_id().map(|i| i.to_string()).as_deref(), None, None).await?;
        tx.commit().await?;
    }
    let mut resp = Data::new(Deleted { id: caller.admin_id().unwrap_or(0), deleted: true }).into_response();
    resp.headers_mut().insert(header::SET_COOKIE, session_cookie("", 0, is_https(&headers)));
    Ok(resp)
}

#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth", responses((status = 200, body = inline(Data<Me>)), (status = 401, body = crate::error::ErrorEnvelope)))]
pub(crate) async fn me(State(state): State<AppState>, caller: Caller, headers: HeaderMap) -> ApiResult<Data<Me>> {
    match caller.principal {
        Principal::Admin { user_id, .. } => {
            let user = state.store().admin_users().get(user_id).await?;
            let csrf = match cookie_value(&headers, SESSION_COOKIE) {
                Some(t) => state.store().sessions().get_live(&sha256_hex(t.as_bytes()), Timestamp::now()).await?.map(|s| s.csrf_token),
                None => None,
            };
            Ok(Data::new(Me { user, token: None, scope: None, csrf_token: csrf }))
        }
        Principal::Token { name, scope, .. } => Ok(Data::new(Me { user: None, token: Some(name), scope: Some(scope), csrf_token: None })),
    }
}

#[utoipa::path(get, path = "/api/v1/api-tokens", tag = "auth", params(PageQuery), responses((status = 200, body = inline(List<ApiToken>))))]
pub(crate) async fn list_tokens(State(state): State<AppState>, Query(q): Query<PageQuery>) -> ApiResult<List<ApiToken>> {
    let page = q.page()?;
    let p = state.store().api_tokens().list(page).await?;
    Ok(List { data: p.items, meta: ListMeta { total: p.total, limit: page.limit, offset: page.offset } })
}

#[utoipa::path(post, path = "/api/v1/api-tokens", tag = "auth", request_body = NewApiToken,
    responses((status = 201, body = inline(Data<CreatedApiToken>)), (status = 403, description = "an API token cannot create tokens", body = crate::error::ErrorEnvelope)))]
pub(crate) async fn create_token(State(state): State<AppState>, caller: Caller, Json(body): Json<NewApiToken>) -> ApiResult<Created<CreatedApiToken>> {
    let (user_id, _, _) = caller.require_session("only a signed-in session can create API tokens")?;
    let mut e = Errors::new();
    e.non_empty("name", &body.name, 100);
    let days = body.expires_in_days.unwrap_or(TOKEN_DEFAULT_DAYS);
    e.range("expires_in_days", i64::from(days), 1, i64::from(TOKEN_MAX_DAYS));
    e.finish()?;
    let now = Timestamp::now();
    let expires = now + time::Duration::days(i64::from(days));
    let jti = random_token(16);
    let mut tx = state.store().begin().await?;
    let info = tx
        .api_tokens()
        .create(&store::NewApiToken { name: body.name.trim(), jti: &jti, scope: body.scope, created_by: Some(user_id), expires_at: expires })
        .await?;
    let claims = Claims { sub: format!("token:{}", info.id), jti, iat: now.unix_millis() / 1000, exp: Some(expires.unix_millis() / 1000) };
    let token =
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(&state.config().jwt_secret)).map_err(ApiError::internal)?;
    tx.audit(&caller.actor(), "create", "api_token", Some(&info.id.to_string()), None, Some(&serde_json::to_value(&info).unwrap_or_default())).await?;
    tx.commit().await?;
    Ok(Created(CreatedApiToken { info, token }))
}

#[utoipa::path(delete, path = "/api/v1/api-tokens/{id}", tag = "auth", params(("id" = i64, Path)), responses((status = 200, body = inline(Data<ApiToken>))))]
pub(crate) async fn revoke_token(State(state): State<AppState>, caller: Caller, PathParams(id): PathParams<i64>) -> ApiResult<Data<ApiToken>> {
    let mut tx = state.store().begin().await?;
    let before = tx.api_tokens().get(id).await?.ok_or(ApiError::NotFound)?;
    let after = tx.api_tokens().revoke(id).await?.ok_or(ApiError::NotFound)?;
    tx.audit(
        &caller.actor(),
        "revoke",
        "api_token",
        Some(&id.to_string()),
        Some(&serde_json::to_value(&before).unwrap_or_default()),
        Some(&serde_json::to_value(&after).unwrap_or_default()),
    )
    .await?;
    tx.commit().await?;
    Ok(Data::new(after))
}

#[utoipa::path(post, path = "/api/v1/auth/password", tag = "auth", request_body = PasswordChange,
    responses((status = 200, body = inline(Data<PasswordChanged>)),
              (status = 403, description = "an API token cannot change a password", body = crate::error::ErrorEnvelope),
              (status = 422, description = "current_password is wrong, or new_password is too short or long", body = crate::error::ErrorEnvelope),
              (status = 429, description = "too many wrong current passwords (the login limits): Retry-After", body = crate::error::ErrorEnvelope)))]
pub(crate) async fn change_password(State(state): State<AppState>, caller: Caller, Json(body): Json<PasswordChange>) -> ApiResult<Data<PasswordChanged>> {
    let (user_id, username, session_id) = caller.require_session("only a signed-in session can change a password")?;
    let mut e = Errors::new();
    e.check((8..=1024).contains(&body.new_password.chars().count()), "new_password", "must be 8 to 1024 characters");
    e.check(body.new_password != body.current_password, "new_password", "must differ from the current password");
    e.finish()?;
    // the current password is checked under the login limits: a stolen session cannot guess it
    let ip = caller.ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let attempt = state
        .0
        .login_limiter
        .reserve(username, ip, Instant::now())
        .map_err(|r| ApiError::TooManyRequests { retry_after_secs: r.retry_after_secs, message: "too many wrong passwords; try again later" })?;
    let store = state.store();
    let hash = store.admin_users().password_hash(user_id).await?.ok_or(ApiError::Unauthorized("session expired"))?;
    if !verify_password(&body.current_password, &hash).await {
        attempt.failed();
        let mut tx = store.begin().await?;
        tx.audit(&caller.actor(), "password_change_failed", "admin_user", Some(&user_id.to_string()), None, None).await?;
        tx.commit().await?;
        return Err(ApiError::field("current_password", "is not your current password"));
    }
    attempt.succeeded();
    let mut tx = store.begin().await?;
    tx.admin_users().set_password(user_id, &body.new_password).await?;
    let sessions_ended = tx.sessions().delete_others(user_id, session_id).await?;
    let tokens_revoked = if body.revoke_tokens { tx.api_tokens().revoke_created_by(user_id).await? } else { 0 };
    let after = serde_json::json!({"sessions_ended": sessions_ended, "tokens_revoked": tokens_revoked});
    tx.audit(&caller.actor(), "change_password", "admin_user", Some(&user_id.to_string()), None, Some(&after)).await?;
    tx.commit().await?;
    tracing::info!(username, sessions_ended, tokens_revoked, "an administrator changed their password");
    Ok(Data::new(PasswordChanged { sessions_ended, tokens_revoked }))
}

#[utoipa::path(get, path = "/api/v1/auth/sessions", tag = "auth",
    responses((status = 200, description = "the caller's live sessions, the most recently used first", body = inline(List<SessionView>)),
              (status = 403, description = "an API token has no sessions", body = crate::error::ErrorEnvelope)))]
pub(crate) async fn list_sessions(State(state): State<AppState>, caller: Caller) -> ApiResult<List<SessionView>> {
    let (user_id, _, current) = caller.require_session("only a signed-in session can list sessions")?;
    let data: Vec<SessionView> = state
        .store()
        .sessions()
        .list_for_user(user_id, Timestamp::now())
        .await?
        .into_iter()
        .map(|info| SessionView { current: info.id == current, info })
        .collect();
    let total = data.len() as i64;
    Ok(List { data, meta: ListMeta { total, limit: total, offset: 0 } })
}

#[utoipa::path(delete, path = "/api/v1/auth/sessions", tag = "auth",
    responses((status = 200, description = "every other session of the caller ended", body = inline(Data<SessionsEnded>)),
              (status = 403, description = "an API token has no sessions", body = crate::error::ErrorEnvelope)))]
pub(crate) async fn end_other_sessions(State(state): State<AppState>, caller: Caller) -> ApiResult<Data<SessionsEnded>> {
    let (user_id, _, current) = caller.require_session("only a signed-in session can end sessions")?;
    let mut tx = state.store().begin().await?;
    let ended = tx.sessions().delete_others(user_id, current).await?;
    tx.audit(&caller.actor(), "end_sessions", "session", None, None, Some(&serde_json::json!({"ended": ended}))).await?;
    tx.commit().await?;
    Ok(Data::new(SessionsEnded { ended }))
}

#[utoipa::path(delete, path = "/api/v1/auth/sessions/{id}", tag = "auth", params(("id" = i64, Path)),
    responses((status = 200, description = "ended (ending the current session signs out)", body = inline(Data<Deleted>)),
              (status = 403, description = "an API token has no sessions", body = crate::error::ErrorEnvelope),
              (status = 404, description = "the caller has no such session", body = crate::error::ErrorEnvelope)))]
pub(crate) async fn end_session(State(state): State<AppState>, caller: Caller, headers: HeaderMap, PathParams(id): PathParams<i64>) -> ApiResult<Response> {
    let (user_id, _, current) = caller.require_session("only a signed-in session can end sessions")?;
    let mut tx = state.store().begin().await?;
    if !tx.sessions().delete_for_user(user_id, id).await? {
        return Err(ApiError::NotFound);
    }
    tx.audit(&caller.actor(), "end_session", "session", Some(&id.to_string()), None, None).await?;
    tx.commit().await?;
    let mut resp = Data::new(Deleted { id, deleted: true }).into_response();
    if id == current {
        resp.headers_mut().insert(header::SET_COOKIE, session_cookie("", 0, is_https(&headers)));
    }
    Ok(resp)
}

pub(crate) fn public_routes() -> Router<AppState> {
    Router::new().route("/setup", get(setup_status).post(setup)).route("/auth/login", post(login))
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth/logout", post(logout))
        .route("/auth/me", get(me))
        .route("/auth/password", post(change_password))
        .route("/auth/sessions", get(list_sessions).delete(end_other_sessions))
        .route("/auth/sessions/{id}", delete(end_session))
        .route("/api-tokens", get(list_tokens).post(create_token))
        .route("/api-tokens/{id}", delete(revoke_token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_token_needs() {
        use TokenNeed::*;
        use TokenScope::*;
        let need = |m: Method, r: &str| token_need(&m, r);
        assert_eq!(need(Method::GET, "/api/v1/extensions"), Scope(Read));
        assert_eq!(need(Method::GET, "/api/v1/extensions/{id}"), Scope(Read));
        assert_eq!(need(Method::POST, "/api/v1/extensions"), Scope(Write));
        assert_eq!(need(Method::PUT, "/api/v1/extensions/{id}"), Scope(Write));
        assert_eq!(need(Method::DELETE, "/api/v1/extensions/{id}"), Scope(Write));
        assert_eq!(need(Method::POST, "/api/v1/flows/{id}/publish"), Scope(Write));
        assert_eq!(need(Method::GET, "/api/v1/settings"), Scope(Admin));
        assert_eq!(need(Method::PUT, "/api/v1/settings"), Scope(Admin));
        assert_eq!(need(Method::GET, "/api/v1/audit-log"), Scope(Admin));
        assert_eq!(need(Method::GET, "/api/v1/api-tokens"), Scope(Admin));
        assert_eq!(need(Method::DELETE, "/api/v1/api-tokens/{id}"), Scope(Admin));
        assert_eq!(need(Method::GET, "/api/v1/plugins"), Scope(Read));
        assert_eq!(need(Method::PUT, "/api/v1/plugins/{id}"), Scope(Admin));
        assert_eq!(need(Method::DELETE, "/api/v1/plugins/{id}"), Scope(Admin));
        assert_eq!(need(Method::POST, "/api/v1/api-tokens"), Session);
        assert_eq!(need(Method::POST, "/api/v1/plugins"), Session);
        assert_eq!(need(Method::POST, "/api/v1/auth/password"), Session);
        assert_eq!(need(Method::GET, "/api/v1/auth/sessions"), Session);
        assert_eq!(need(Method::DELETE, "/api/v1/auth/sessions/{id}"), Session);
    }

    /// Every operation the OpenAPI document lists gets a need, and no GET needs more than read
    /// unless it is an admin or a session route.
    #[test]
    fn every_documented_operation_has_a_need() {
        let doc = crate::openapi::document();
        let mut counts = std::collections::BTreeMap::new();
        for (path, item) in &doc.paths.paths {
            for (m, op) in [(Method::GET, &item.get), (Method::POST, &item.post), (Method::PUT, &item.put), (Method::DELETE, &item.delete)] {
                if op.is_none() {
                    continue;
                }
                let need = token_need(&m, path);
                *counts.entry(format!("{need:?}")).or_insert(0) += 1;
                if m == Method::GET {
                    assert_ne!(need, TokenNeed::Scope(TokenScope::Write), "{path}");
                } else {
                    assert_ne!(need, TokenNeed::Scope(TokenScope::Read), "{m} {path}");
                }
            }
        }
        assert!(counts.len() == 4, "{counts:?}");
    }

    #[test]
    fn cookie_parsing() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; flowpbx_session=abc; b=2"));
        assert_eq!(cookie_value(&h, SESSION_COOKIE), Some("abc"));
    }
}
