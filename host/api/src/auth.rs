//! Authentication: first-boot setup, admin sessions (HttpOnly SameSite=Strict cookie plus a
//! CSRF token for every state-changing request), login lockout per IP, API tokens (bearer
//! JWTs) for integrations, and the middleware that guards every other route.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use store::{constant_time_eq, random_token, sha256_hex, verify_password, Actor, AdminUser, ApiToken, NewSession, Timestamp};
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::extract::{Created, Data, Deleted, Json, List, ListMeta, PageQuery, PathParams, Query};
use crate::settings::{apply_settings_update, SettingsUpdate};
use crate::validate::Errors;
use crate::AppState;

pub const SESSION_COOKIE: &str = "flowpbx_session";
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Sessions last this long after the last activity.
pub const SESSION_TTL: time::Duration = time::Duration::hours(24);
/// Failed logins from one IP within [`LOCKOUT_WINDOW`] that lock it out.
pub const LOCKOUT_FAILURES: usize = 5;
pub const LOCKOUT_WINDOW: Duration = Duration::from_secs(60);
pub const LOCKOUT_DURATION: Duration = Duration::from_secs(15 * 60);
/// A session's expiry is pushed forward at most this often (saves a write per request).
const TOUCH_INTERVAL: time::Duration = time::Duration::seconds(60);

/// Who is making a request.
#[derive(Debug, Clone)]
pub enum Principal {
    Admin { user_id: i64, username: String },
    Token { token_id: i64, name: String },
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
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _s: &S) -> Result<Self, ApiError> {
        parts.extensions.get::<Caller>().cloned().ok_or(ApiError::Unauthorized("authentication required"))
    }
}

/// The client's IP, when the server was started with connect info.
pub fn client_ip(parts_ext: &axum::http::Extensions) -> Option<IpAddr> {
    parts_ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())
}

// ---------------------------------------------------------------------------------------------
// lockout

#[derive(Default)]
struct IpRecord {
    failures: VecDeque<Instant>,
    locked_until: Option<Instant>,
}

/// Failed-login accounting per client IP (in memory).
#[derive(Default)]
pub struct Lockout(Mutex<HashMap<IpAddr, IpRecord>>);

impl Lockout {
    /// Err(seconds to wait) while the IP is locked out.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), u64> {
        let Ok(map) = self.0.lock() else { return Ok(()) };
        match map.get(&ip).and_then(|r| r.locked_until) {
            Some(until) if until > now => Err((until - now).as_secs().max(1)),
            _ => Ok(()),
        }
    }

    /// Records a failure; Some(seconds) when this failure locked the IP out.
    pub fn failure(&self, ip: IpAddr, now: Instant) -> Option<u64> {
        let Ok(mut map) = self.0.lock() else { return None };
        if map.len() > 10_000 {
            map.retain(|_, r| r.locked_until.is_some_and(|u| u > now) || r.failures.back().is_some_and(|t| now - *t < LOCKOUT_WINDOW));
        }
        let rec = map.entry(ip).or_default();
        while rec.failures.front().is_some_and(|t| now.duration_since(*t) >= LOCKOUT_WINDOW) {
            rec.failures.pop_front();
        }
        rec.failures.push_back(now);
        if rec.failures.len() >= LOCKOUT_FAILURES {
            rec.failures.clear();
            rec.locked_until = Some(now + LOCKOUT_DURATION);
            Some(LOCKOUT_DURATION.as_secs())
        } else {
            None
        }
    }

    pub fn success(&self, ip: IpAddr) {
        if let Ok(mut map) = self.0.lock() {
            map.remove(&ip);
        }
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

/// The caller, and the session token whose cookie should be re-sent (the session was extended).
async fn authenticate(state: &AppState, headers: &HeaderMap, method: &Method) -> ApiResult<(Principal, Option<String>)> {
    authenticate_with(state, headers, method, true).await
}

/// Who `headers` (a session cookie or a bearer token) authenticate, without extending the
/// session: what `/ws` checks when a socket opens and while it stays open.
pub(crate) async fn principal(state: &AppState, headers: &HeaderMap) -> ApiResult<Principal> {
    authenticate_with(state, headers, &Method::GET, false).await.map(|(p, _)| p)
}

async fn authenticate_with(state: &AppState, headers: &HeaderMap, method: &Method, touch: bool) -> ApiResult<(Principal, Option<String>)> {
    let store = state.store();
    let now = Timestamp::now();
    if let Some(auth) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let Some(jwt) = auth.strip_prefix("Bearer ").or_else(|| auth.strip_prefix("bearer ")) else {
            return Err(ApiError::Unauthorized("unsupported Authorization scheme (use Bearer)"));
        };
        let data = jsonwebtoken::decode::<Claims>(jwt.trim(), &DecodingKey::from_secret(&state.config().jwt_secret), &jwt_validation())
            .map_err(|_| ApiError::Unauthorized("invalid or expired API token"))?;
        let token = store
            .api_tokens()
            .use_live(&data.claims.jti, now)
            .await?
            .ok_or(ApiError::Unauthorized("API token revoked or expired"))?;
        return Ok((Principal::Token { token_id: token.id, name: token.name }, None));
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
    if touch && now.unix_millis() - session.last_seen_at.unix_millis() >= TOUCH_INTERVAL.whole_milliseconds() as i64 {
        store.sessions().touch(&hash, now, now + SESSION_TTL).await?;
        refresh = Some(token.to_owned());
    }
    Ok((Principal::Admin { user_id: session.admin_user_id, username: session.username }, refresh))
}

/// Middleware of every protected route: a session cookie (with the CSRF token on
/// state-changing methods) or a bearer API token.
pub async fn require_auth(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let ip = client_ip(req.extensions());
    let https = is_https(req.headers());
    match authenticate(&state, req.headers(), req.method()).await {
        Ok((principal, refresh)) => {
            req.extensions_mut().insert(Caller { principal, ip });
            let mut resp = next.run(req).await;
            // the session was extended: so is the cookie (unless the handler set its own)
            if let Some(token) = refresh {
                if !resp.headers().contains_key(header::SET_COOKIE) {
                    resp.headers_mut().insert(header::SET_COOKIE, session_cookie(&token, SESSION_TTL.whole_seconds(), https));
                }
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
    /// set when authenticated by an API token
    pub token: Option<String>,
    pub csrf_token: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiToken {
    pub name: String,
    /// days until it expires; absent: never
    #[serde(default)]
    pub expires_in_days: Option<u32>,
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
        (1..=64).contains(&username.len())
            && username.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@')),
        "username",
        "must be 1-64 letters, digits, '.', '_', '-' or '@'",
    );
    e.check((8..=1024).contains(&password.chars().count()), "password", "must be 8 to 1024 characters");
}

#[utoipa::path(get, path = "/api/v1/setup", tag = "auth", responses((status = 200, body = inline(Data<SetupStatus>))))]
pub(crate) async fn setup_status(State(state): State<AppState>) -> ApiResult<Data<SetupStatus>> {
    Ok(Data::new(SetupStatus { required: state.store().admin_users().count().await? == 0 }))
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
    tx.audit(&actor, "setup", "admin_user", Some(&user.id.to_string()), None, Some(&serde_json::to_value(&user).unwrap_or_default()))
        .await?;
    let realm_change = apply_settings_update(&state, &mut tx, &update, &actor).await?;
    tx.commit().await?;
    if let Some(realm) = realm_change {
        store.set_sip_realm(&realm).await?;
    }
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
              (status = 429, body = crate::error::ErrorEnvelope)))]
pub(crate) async fn login(State(state): State<AppState>, req: Request) -> ApiResult<Response> {
    let ip = client_ip(req.extensions());
    let key_ip = ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let headers = req.headers().clone();
    let now = Instant::now();
    if let Err(secs) = state.0.lockout.check(key_ip, now) {
        return Err(ApiError::TooManyRequests { retry_after_secs: secs, message: "too many failed logins; try again later" });
    }
    let Json(body) = Json::<LoginRequest>::from_request_any(req, &state).await?;
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
    let actor = Actor { name: format!("admin:{}", body.username), ip: ip.map(|i| i.to_string()) };
    let Some((user, _)) = found.filter(|_| ok) else {
        let locked = state.0.lockout.failure(key_ip, Instant::now());
        let mut tx = store.begin().await?;
        tx.audit(&actor, "login_failed", "session", None, None, None).await?;
        tx.commit().await?;
        if let Some(secs) = locked {
            tracing::warn!(ip = %key_ip, "login locked out after repeated failures");
            return Err(ApiError::TooManyRequests { retry_after_secs: secs, message: "too many failed logins; try again later" });
        }
        return Err(ApiError::Unauthorized("wrong username or password"));
    };
    state.0.lockout.success(key_ip);
    let token = random_token(32);
    let csrf = random_token(32);
    let mut tx = store.begin().await?;
    tx.sessions()
        .create(&NewSession {
            token_hash: sha256_hex(token.as_bytes()),
            admin_user_id: user.id,
            csrf_token: csrf.clone(),
            expires_at: Timestamp::now() + SESSION_TTL,
            ip: ip.map(|i| i.to_string()),
            user_agent: headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(|s| s.chars().take(256).collect()),
        })
        .await?;
    tx.admin_users().touch_login(user.id).await?;
    tx.audit(&actor, "login", "session", Some(&user.id.to_string()), None, None).await?;
    tx.commit().await?;
    let mut resp = Data::new(Me { user: Some(user), token: None, csrf_token: Some(csrf) }).into_response();
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
            Ok(Data::new(Me { user, token: None, csrf_token: csrf }))
        }
        Principal::Token { name, .. } => Ok(Data::new(Me { user: None, token: Some(name), csrf_token: None })),
    }
}

#[utoipa::path(get, path = "/api/v1/api-tokens", tag = "auth", params(PageQuery), responses((status = 200, body = inline(List<ApiToken>))))]
pub(crate) async fn list_tokens(State(state): State<AppState>, Query(q): Query<PageQuery>) -> ApiResult<List<ApiToken>> {
    let page = q.page()?;
    let p = state.store().api_tokens().list(page).await?;
    Ok(List { data: p.items, meta: ListMeta { total: p.total, limit: page.limit, offset: page.offset } })
}

#[utoipa::path(post, path = "/api/v1/api-tokens", tag = "auth", request_body = NewApiToken, responses((status = 201, body = inline(Data<CreatedApiToken>))))]
pub(crate) async fn create_token(State(state): State<AppState>, caller: Caller, Json(body): Json<NewApiToken>) -> ApiResult<Created<CreatedApiToken>> {
    let mut e = Errors::new();
    e.non_empty("name", &body.name, 100);
    if let Some(d) = body.expires_in_days {
        e.range("expires_in_days", i64::from(d), 1, 3650);
    }
    e.finish()?;
    let now = Timestamp::now();
    let expires = body.expires_in_days.map(|d| now + time::Duration::days(i64::from(d)));
    let jti = random_token(16);
    let mut tx = state.store().begin().await?;
    let info = tx.api_tokens().create(body.name.trim(), &jti, caller.admin_id(), expires).await?;
    let claims = Claims {
        sub: format!("token:{}", info.id),
        jti,
        iat: now.unix_millis() / 1000,
        exp: expires.map(|t| t.unix_millis() / 1000),
    };
    let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(&state.config().jwt_secret))
        .map_err(ApiError::internal)?;
    tx.audit(&caller.actor(), "create", "api_token", Some(&info.id.to_string()), None, Some(&serde_json::to_value(&info).unwrap_or_default()))
        .await?;
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

pub(crate) fn public_routes() -> Router<AppState> {
    Router::new().route("/setup", get(setup_status).post(setup)).route("/auth/login", post(login))
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth/logout", post(logout))
        .route("/auth/me", get(me))
        .route("/api-tokens", get(list_tokens).post(create_token))
        .route("/api-tokens/{id}", delete(revoke_token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockout_after_five_failures_in_a_minute() {
        let l = Lockout::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t = Instant::now();
        for i in 0..4 {
            assert_eq!(l.failure(ip, t + Duration::from_secs(i)), None);
        }
        assert!(l.check(ip, t).is_ok());
        assert_eq!(l.failure(ip, t + Duration::from_secs(5)), Some(900));
        assert!(l.check(ip, t + Duration::from_secs(6)).is_err());
        assert!(l.check(ip, t + Duration::from_secs(5 + 901)).is_ok());
        // failures spread over more than a minute do not lock
        let ip2: IpAddr = "192.0.2.2".parse().unwrap();
        for i in 0..10 {
            assert_eq!(l.failure(ip2, t + Duration::from_secs(i * 20)), None);
        }
    }

    #[test]
    fn cookie_parsing() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; flowpbx_session=abc; b=2"));
        assert_eq!(cookie_value(&h, SESSION_COOKIE), Some("abc"));
    }
}
