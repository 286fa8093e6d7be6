//! The router driven with `oneshot`: no port, a real store in a temporary directory.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

async fn app() -> (axum::Router, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = store::Store::open(store::StoreOptions::new(dir.path().join("flowpbx.db"), store::SecretKey::generate(), "flowpbx"))
        .await
        .unwrap();
    let state = api::AppState::new(
        store,
        api::ApiConfig { data_dir: dir.path().to_path_buf(), jwt_secret: [7; 32], max_upload_bytes: 1 << 20, version: "test" },
        api::SettingsLayers::default(),
    );
    (api::router(state), dir)
}

async fn call(app: &axum::Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn json_req(method: &str, uri: &str, body: Value) -> Request<Body> {
    Request::builder().method(method).uri(uri).header(header::CONTENT_TYPE, "application/json").body(Body::from(body.to_string())).unwrap()
}

#[tokio::test]
async fn envelope_auth_and_session_flow() {
    let (app, _dir) = app().await;
    let (s, _, b) = call(&app, Request::get("/api/v1/health").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["data"]["components"]["database"]["status"], "ok");

    let (s, _, b) = call(&app, Request::get("/api/v1/extensions").body(Body::empty()).unwrap()).await;
    assert_eq!((s, b["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthorized")));
    let (s, _, b) = call(&app, Request::get("/api/v1/nowhere").body(Body::empty()).unwrap()).await;
    assert_eq!((s, b["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));

    let (s, _, b) = call(&app, json_req("POST", "/api/v1/setup", json!({"username": "admin", "password": "12345678", "extra": 1}))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(b["error"]["details"][0]["field"], "extra");
    let (s, _, _) = call(&app, json_req("POST", "/api/v1/setup", json!({"username": "admin", "password": "12345678"}))).await;
    assert_eq!(s, StatusCode::CREATED);

    let (s, h, b) = call(&app, json_req("POST", "/api/v1/auth/login", json!({"username": "admin", "password": "12345678"}))).await;
    assert_eq!(s, StatusCode::OK);
    let cookie = h[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
    let csrf = b["data"]["csrf_token"].as_str().unwrap().to_owned();

    let mut req = json_req("POST", "/api/v1/conferences", json!({"name": "Room", "extension": "800"}));
    req.headers_mut().insert(header::COOKIE, cookie.parse().unwrap());
    let (s, _, _) = call(&app, req).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "no CSRF token");
    let mut req = json_req("POST", "/api/v1/conferences", json!({"name": "Room", "extension": "800"}));
    req.headers_mut().insert(header::COOKIE, cookie.parse().unwrap());
    req.headers_mut().insert("x-csrf-token", csrf.parse().unwrap());
    let (s, _, b) = call(&app, req).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["data"]["extension"], "800");
    assert_eq!(b["data"]["pin_set"], false);

    let mut req = Request::get("/api/v1/conferences?limit=1").body(Body::empty()).unwrap();
    req.headers_mut().insert(header::COOKIE, cookie.parse().unwrap());
    let (s, _, b) = call(&app, req).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["meta"], json!({"total": 1, "limit": 1, "offset": 0}));
}

#[tokio::test]
async fn openapi_document_is_served() {
    let (app, _dir) = app().await;
    let (s, _, b) = call(&app, Request::get("/api/v1/openapi.json").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    assert!(b["paths"]["/api/v1/conferences/{id}"]["delete"].is_object());
    assert!(b["components"]["schemas"]["ConferenceBridge"].is_object());
}

/// The entities with generic CRUD.
const ENTITY_PATHS: [&str; 9] = ["extensions", "trunks", "numbers", "voicemail-boxes", "ring-groups", "ivr-menus", "time-switches", "conferences", "flows"];

/// A signed-in administrator's session cookie and CSRF token.
struct Admin {
    cookie: String,
    csrf: String,
}

/// The OpenAPI document, then first-boot setup and a login.
async fn document_and_admin(app: &axum::Router) -> (Value, Admin) {
    let (_, _, doc) = call(app, Request::get("/api/v1/openapi.json").body(Body::empty()).unwrap()).await;
    call(app, json_req("POST", "/api/v1/setup", json!({"username": "admin", "password": "12345678"}))).await;
    let (_, h, b) = call(app, json_req("POST", "/api/v1/auth/login", json!({"username": "admin", "password": "12345678"}))).await;
    let cookie = h[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
    let csrf = b["data"]["csrf_token"].as_str().unwrap().to_owned();
    (doc, Admin { cookie, csrf })
}

/// A create of `body` at `uri` as the administrator: the status and the response body.
async fn create(app: &axum::Router, admin: &Admin, uri: &str, body: Value) -> (StatusCode, Value) {
    let mut req = json_req("POST", uri, body);
    req.headers_mut().insert(header::COOKIE, admin.cookie.parse().unwrap());
    req.headers_mut().insert("x-csrf-token", admin.csrf.parse().unwrap());
    let (s, _, b) = call(app, req).await;
    (s, b)
}

/// The details of the error a create with `body` gets (empty when it is accepted).
async fn refused_fields(app: &axum::Router, admin: &Admin, uri: &str, body: Value) -> Vec<Value> {
    create(app, admin, uri, body).await.1["error"]["details"].as_array().cloned().unwrap_or_default()
}

/// The fields the document says a create requires are the ones the server asks for when a
/// create leaves them out, for every entity.
#[tokio::test]
async fn the_document_states_what_a_create_requires() {
    let (app, _dir) = app().await;
    let (doc, admin) = document_and_admin(&app).await;
    for path in ENTITY_PATHS {
        let schema = &doc["paths"][format!("/api/v1/{path}")]["post"]["requestBody"]["content"]["application/json"]["schema"];
        let mut documented: Vec<String> =
            schema["allOf"][1]["required"].as_array().unwrap_or_else(|| panic!("{path}: {schema}")).iter().map(|f| f.as_str().unwrap().to_owned()).collect();
        let (s, b) = create(&app, &admin, &format!("/api/v1/{path}"), json!({})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {b}");
        let mut asked: Vec<String> = b["error"]["details"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["message"] == "is required")
            .map(|d| d["field"].as_str().unwrap().to_owned())
            .collect();
        documented.sort();
        asked.sort();
        assert_eq!(documented, asked, "{path}");
    }
}

/// Every integer range the document states for an entity's fields is the one the server
/// enforces (each bound accepted, one past it refused naming the field), and a field a create
/// requires is refused as null, as the document says.
#[tokio::test]
async fn the_documented_ranges_and_required_fields_are_the_servers() {
    let (app, _dir) = app().await;
    let (doc, admin) = document_and_admin(&app).await;
    let mut ranges = 0;
    for path in ENTITY_PATHS {
        let uri = format!("/api/v1/{path}");
        let schema = &doc["paths"][&uri]["post"]["requestBody"]["content"]["application/json"]["schema"];
        let input = schema["allOf"][0]["$ref"].as_str().unwrap().rsplit('/').next().unwrap();
        for (field, p) in doc["components"]["schemas"][input]["properties"].as_object().unwrap() {
            let (Some(lo), Some(hi)) = (p["minimum"].as_i64(), p["maximum"].as_i64()) else { continue };
            ranges += 1;
            for (v, refused) in [(lo - 1, true), (lo, false), (hi, false), (hi + 1, true)] {
                let details = refused_fields(&app, &admin, &uri, json!({field: v})).await;
                let names = details.iter().any(|d| d["field"] == field.as_str());
                assert_eq!(names, refused, "{path}.{field} = {v} (documented {lo}..={hi}): {details:?}");
            }
        }
        for field in schema["allOf"][1]["required"].as_array().unwrap() {
            let field = field.as_str().unwrap();
            let p = &schema["allOf"][1]["properties"][field];
            assert!(p.is_object(), "{path}: the create schema states {field}'s type");
            assert!(!p.to_string().contains("\"null\""), "{path}.{field} is not nullable on create: {p}");
            let details = refused_fields(&app, &admin, &uri, json!({field: null})).await;
            assert!(details.iter().any(|d| d["field"] == field && d["message"] == "is required"), "{path}.{field}: null is missing: {details:?}");
        }
    }
    assert!(ranges >= 15, "the document states the entities' ranges: {ranges}");
}

fn get_with_host(uri: &str, host: &str) -> Request<Body> {
    Request::get(uri).header(header::HOST, host).body(Body::empty()).unwrap()
}

/// DNS rebinding: before setup only addresses and localhost are served (setup would be anyone's
/// who reaches it through a name they control); once a hostname is set, only it besides them.
#[tokio::test]
async fn a_foreign_host_is_refused_before_setup_and_once_a_hostname_is_set() {
    let (app, _dir) = app().await;
    let (s, _, b) = call(&app, get_with_host("/api/v1/setup", "rebind.attacker.example:8080")).await;
    assert_eq!((s, b["error"]["code"].as_str()), (StatusCode::MISDIRECTED_REQUEST, Some("misdirected_request")), "{b}");
    let mut req = json_req("POST", "/api/v1/setup", json!({"username": "admin", "password": "12345678"}));
    req.headers_mut().insert(header::HOST, "rebind.attacker.example".parse().unwrap());
    assert_eq!(call(&app, req).await.0, StatusCode::MISDIRECTED_REQUEST, "setup through a rebound name");
    // the SPA and /ws too
    assert_eq!(call(&app, get_with_host("/", "rebind.attacker.example")).await.0, StatusCode::MISDIRECTED_REQUEST);
    for ok in ["127.0.0.1:8080", "localhost:8080", "[::1]:8080"] {
        assert_eq!(call(&app, get_with_host("/api/v1/setup", ok)).await.0, StatusCode::OK, "{ok}");
    }
    let mut req = json_req("POST", "/api/v1/setup", json!({"username": "admin", "password": "12345678", "hostname": "pbx.example.com"}));
    req.headers_mut().insert(header::HOST, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(call(&app, req).await.0, StatusCode::CREATED);
    assert_eq!(call(&app, get_with_host("/api/v1/health", "PBX.example.com:8080")).await.0, StatusCode::OK);
    assert_eq!(call(&app, get_with_host("/api/v1/health", "rebind.attacker.example")).await.0, StatusCode::MISDIRECTED_REQUEST);
    assert_eq!(call(&app, get_with_host("/api/v1/health", "pbx.example.com.attacker.example")).await.0, StatusCode::MISDIRECTED_REQUEST);
    // a request without Host (not a browser's) is served
    assert_eq!(call(&app, Request::get("/api/v1/health").body(Body::empty()).unwrap()).await.0, StatusCode::OK);
}

/// With setup done and no hostname configured, names are not checked (nothing to check them
/// against): a server reached as pbx.lan keeps working.
#[tokio::test]
async fn without_a_hostname_any_name_is_served_after_setup() {
    let (app, _dir) = app().await;
    call(&app, json_req("POST", "/api/v1/setup", json!({"username": "admin", "password": "12345678"}))).await;
    assert_eq!(call(&app, get_with_host("/api/v1/health", "pbx.lan")).await.0, StatusCode::OK);
}

/// Health shows components' details (error text, figures) to a signed-in caller only.
#[tokio::test]
async fn health_details_are_for_signed_in_callers() {
    let dir = tempfile::tempdir().unwrap();
    let store = store::Store::open(store::StoreOptions::new(dir.path().join("flowpbx.db"), store::SecretKey::generate(), "flowpbx")).await.unwrap();
    let state = api::AppState::new(
        store,
        api::ApiConfig { data_dir: dir.path().to_path_buf(), jwt_secret: [7; 32], max_upload_bytes: 1 << 20, version: "test" },
        api::SettingsLayers::default(),
    );
    state.register_health(
        "trunks",
        std::sync::Arc::new(|| api::ComponentStatus { status: "down", detail: Some("connect to 10.1.2.3:5060 failed: secret internals".into()) }),
    );
    let app = api::router(state);
    let (s, _, b) = call(&app, Request::get("/api/v1/health").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(b["data"]["components"]["trunks"], json!({"status": "down"}), "{b}");
    assert!(!b.to_string().contains("secret internals"));
    let (_, admin) = document_and_admin(&app).await;
    let mut req = Request::get("/api/v1/health").body(Body::empty()).unwrap();
    req.headers_mut().insert(header::COOKIE, admin.cookie.parse().unwrap());
    let (_, _, b) = call(&app, req).await;
    assert_eq!(b["data"]["components"]["trunks"]["detail"], "connect to 10.1.2.3:5060 failed: secret internals");
}

/// The document states the token scopes, the session-only operations and what a token
/// creation takes.
#[tokio::test]
async fn the_document_states_scopes_and_sessions() {
    let (app, _dir) = app().await;
    let (doc, _) = document_and_admin(&app).await;
    for (path, method) in [("/api/v1/auth/password", "post"), ("/api/v1/auth/sessions", "get"), ("/api/v1/auth/sessions", "delete"), ("/api/v1/auth/sessions/{id}", "delete")] {
        let op = &doc["paths"][path][method];
        assert!(op["responses"]["403"].is_object(), "{method} {path}: {op}");
    }
    let input = &doc["components"]["schemas"]["NewApiToken"];
    let required: Vec<&str> = input["required"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
    assert!(required.contains(&"scope") && required.contains(&"name"), "{input}");
    assert_eq!(input["properties"]["expires_in_days"]["maximum"], 365, "{input}");
    let scope = doc["components"]["schemas"]["TokenScope"].to_string();
    assert!(["read", "write", "admin"].iter().all(|s| scope.contains(s)), "{scope}");
    assert!(doc["components"]["securitySchemes"]["api_token"]["description"].as_str().unwrap().contains("scope"));
    assert!(doc["paths"]["/api/v1/extensions"]["get"]["responses"]["421"].is_object());
}
