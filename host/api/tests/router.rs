//! The router driven with `oneshot`: no port, a real store in a temporary directory.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

async fn app() -> (axum::Router, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = store::Store::open(store::StoreOptions::new(dir.path().join("flowpbx.db"), store::SecretKey::generate(), "flowpbx")).await.unwrap();
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
const ENTITY_PATHS: [&str; 10] =
    ["extensions", "trunks", "outbound-routes", "numbers", "voicemail-boxes", "ring-groups", "ivr-menus", "time-switches", "conferences", "flows"];

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
            // a range, or alternatives of ranges (`oneOf`: 0, or 5 to 3600): a value is
            // accepted when one of them holds it
            let alternatives: Vec<&Value> = match p["oneOf"].as_array() {
                Some(items) => items.iter().collect(),
                None => vec![p],
            };
            let stated: Vec<(i64, i64)> = alternatives.iter().filter_map(|a| Some((a["minimum"].as_i64()?, a["maximum"].as_i64()?))).collect();
            for &(lo, hi) in &stated {
                ranges += 1;
                for v in [lo - 1, lo, hi, hi + 1] {
                    let refused = !stated.iter().any(|&(l, h)| (l..=h).contains(&v));
                    let details = refused_fields(&app, &admin, &uri, json!({field: v})).await;
                    let names = details.iter().any(|d| d["field"] == field.as_str());
                    assert_eq!(names, refused, "{path}.{field} = {v} (documented {stated:?}): {details:?}");
                }
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
    for (path, method) in
        [("/api/v1/auth/password", "post"), ("/api/v1/auth/sessions", "get"), ("/api/v1/auth/sessions", "delete"), ("/api/v1/auth/sessions/{id}", "delete")]
    {
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

// ---------------------------------------------------------------------------------------------
// trunks, extensions' outbound limits and outbound routes

/// A request as the administrator: the status and the response body.
async fn send(app: &axum::Router, admin: &Admin, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut req = match body {
        Some(b) => json_req(method, uri, b),
        None => Request::builder().method(method).uri(uri).body(Body::empty()).unwrap(),
    };
    req.headers_mut().insert(header::COOKIE, admin.cookie.parse().unwrap());
    req.headers_mut().insert("x-csrf-token", admin.csrf.parse().unwrap());
    let (s, _, b) = call(app, req).await;
    (s, b)
}

/// The fields a 422 names.
fn fields_of(b: &Value) -> Vec<String> {
    b["error"]["details"].as_array().map(|d| d.iter().filter_map(|d| d["field"].as_str().map(str::to_owned)).collect()).unwrap_or_default()
}

/// The body is refused with a 422 naming `field` (and only fields in `field`'s family).
#[track_caller]
fn refused(s: StatusCode, b: &Value, field: &str) {
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "expected a 422 naming {field}: {b}");
    let fields = fields_of(b);
    assert!(fields.iter().any(|f| f == field), "expected {field} among {fields:?}: {b}");
}

/// A body the server takes: its data.
#[track_caller]
fn taken(s: StatusCode, b: &Value) -> Value {
    assert!(s == StatusCode::OK || s == StatusCode::CREATED, "{s}: {b}");
    b["data"].clone()
}

#[tokio::test]
async fn trunk_keep_alive_numbering_and_proxy_fields_are_validated_and_kept() {
    let (app, _dir) = app().await;
    let (_, admin) = document_and_admin(&app).await;
    let ip = |extra: Value| {
        let mut b = json!({"name": "Carrier", "type": "ip", "remote_hosts": ["198.51.100.1"]});
        b.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        b
    };
    // each rule, refused naming its field
    for (extra, field) in [
        (json!({"outbound_proxy": "proxy.example.com:0"}), "outbound_proxy"),
        (json!({"outbound_proxy": "http://proxy.example.com"}), "outbound_proxy"),
        (json!({"outbound_proxy": "sip:proxy example"}), "outbound_proxy"),
        (json!({"outbound_proxy": "2001:db8::1"}), "outbound_proxy"),
        (json!({"outbound_proxy": format!("sip:{}.example.com", "a".repeat(250))}), "outbound_proxy"),
        (json!({"options_interval": 4}), "options_interval"),
        (json!({"options_interval": 1}), "options_interval"),
        (json!({"options_interval": 3601}), "options_interval"),
        (json!({"options_interval": -1}), "options_interval"),
        (json!({"country_code": "1234"}), "country_code"),
        (json!({"country_code": "61a"}), "country_code"),
        (json!({"country_code": "061"}), "country_code"),
        (json!({"national_prefix": "0000000"}), "national_prefix"),
        (json!({"national_prefix": "0", "country_code": ""}), "national_prefix"),
        (json!({"international_prefix": "00+"}), "international_prefix"),
        (json!({"international_prefix": "0011223"}), "international_prefix"),
        (json!({"options_interval": "30"}), "options_interval"),
    ] {
        let (s, b) = create(&app, &admin, "/api/v1/trunks", ip(extra.clone())).await;
        refused(s, &b, field);
        assert_eq!(fields_of(&b), vec![field.to_owned()], "only {field} is wrong in {extra}");
    }
    // the bounds of each are taken
    for extra in [
        json!({"outbound_proxy": "proxy.example.com"}),
        json!({"outbound_proxy": "10.0.0.1:5070"}),
        json!({"outbound_proxy": "[2001:db8::1]:5060"}),
        json!({"outbound_proxy": "sips:edge.example.com:5061;transport=tcp;lr"}),
        json!({"options_interval": 0}),
        json!({"options_interval": 5}),
        json!({"options_interval": 3600}),
        json!({"country_code": "1", "national_prefix": "1", "international_prefix": "011"}),
        json!({"country_code": "998", "national_prefix": "000000", "international_prefix": "000000"}),
        json!({"country_code": "", "national_prefix": "", "international_prefix": "00"}),
    ] {
        let (s, b) = create(&app, &admin, "/api/v1/trunks", ip(extra.clone())).await;
        let d = taken(s, &b);
        for (k, v) in extra.as_object().unwrap() {
            assert_eq!(&d[k], v, "{k} of {extra}");
        }
    }

    // defaults, absent keeps, null and empty clear
    let (s, b) =
        create(&app, &admin, "/api/v1/trunks", ip(json!({"outbound_proxy": " sip:proxy.example.com;lr ", "country_code": " 61 ", "national_prefix": "0"})))
            .await;
    let t = taken(s, &b);
    assert_eq!(
        (t["outbound_proxy"].as_str(), t["options_interval"].as_i64()),
        (Some("sip:proxy.example.com;lr"), Some(30)),
        "trimmed; OPTIONS every 30 s by default"
    );
    assert_eq!((t["country_code"].as_str(), t["international_prefix"].as_str()), (Some("61"), Some("")));
    let uri = format!("/api/v1/trunks/{}", t["id"]);
    let (s, _) = send(&app, &admin, "PUT", &uri, Some(json!({"options_interval": 60}))).await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = send(&app, &admin, "GET", &uri, None).await;
    let d = taken(s, &b);
    assert_eq!(
        (d["options_interval"].as_i64(), d["outbound_proxy"].as_str(), d["national_prefix"].as_str()),
        (Some(60), Some("sip:proxy.example.com;lr"), Some("0"))
    );
    let (s, b) = send(&app, &admin, "PUT", &uri, Some(json!({"outbound_proxy": null}))).await;
    assert!(taken(s, &b)["outbound_proxy"].is_null());
    let (s, b) = send(&app, &admin, "PUT", &uri, Some(json!({"outbound_proxy": "  "}))).await;
    assert!(taken(s, &b)["outbound_proxy"].is_null(), "blank is none");
    // a national prefix needs the country code it stands for, also on an update
    let (s, b) = send(&app, &admin, "PUT", &uri, Some(json!({"country_code": ""}))).await;
    refused(s, &b, "national_prefix");
    let (s, b) = send(&app, &admin, "PUT", &uri, Some(json!({"country_code": "", "national_prefix": ""}))).await;
    assert_eq!(taken(s, &b)["country_code"], "");
}

#[tokio::test]
async fn registration_trunks_need_their_credentials_and_passwords_are_bounded() {
    let (app, _dir) = app().await;
    let (_, admin) = document_and_admin(&app).await;
    let reg = json!({"name": "Provider", "type": "register", "host": "sip.provider.example", "username": "acct", "password": "p"});
    for (drop, field) in [("host", "host"), ("username", "username"), ("password", "password")] {
        let mut b = reg.clone();
        b.as_object_mut().unwrap().remove(drop);
        let (s, body) = create(&app, &admin, "/api/v1/trunks", b).await;
        refused(s, &body, field);
    }
    let with_pw = |pw: String| {
        let mut b = reg.clone();
        b["password"] = pw.into();
        b
    };
    let (s, b) = create(&app, &admin, "/api/v1/trunks", with_pw("é".repeat(129))).await;
    refused(s, &b, "password");
    let (s, b) = create(&app, &admin, "/api/v1/trunks", with_pw("p".repeat(129))).await;
    refused(s, &b, "password");
    let (s, b) = create(&app, &admin, "/api/v1/trunks", with_pw(String::new())).await;
    refused(s, &b, "password");
    let (s, b) = create(&app, &admin, "/api/v1/trunks", with_pw("é".repeat(128))).await;
    let t = taken(s, &b);
    assert_eq!(t["password_set"], true);
    assert!(t.get("password").is_none(), "a secret is never returned");
    // an update keeps the stored password; removing it from a registration trunk is refused
    let uri = format!("/api/v1/trunks/{}", t["id"]);
    assert_eq!(send(&app, &admin, "PUT", &uri, Some(json!({"port": 5080}))).await.0, StatusCode::OK);
    let (s, b) = send(&app, &admin, "PUT", &uri, Some(json!({"password": null}))).await;
    refused(s, &b, "password");
    let (s, b) = send(&app, &admin, "PUT", &uri, Some(json!({"username": null}))).await;
    refused(s, &b, "username");
    let (s, b) = send(&app, &admin, "PUT", &uri, Some(json!({"password": "x".repeat(129)}))).await;
    refused(s, &b, "password");
}

#[tokio::test]
async fn extension_outbound_caller_ids_classes_and_limits() {
    let (app, _dir) = app().await;
    let (_, admin) = document_and_admin(&app).await;
    let ext = |n: u32, extra: Value| {
        let mut b = json!({"extension": format!("{n}"), "name": "A", "sip_password": "password-1"});
        b.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        b
    };
    for (extra, field) in [
        (json!({"outbound_caller_id_num": "+"}), "outbound_caller_id_num"),
        (json!({"outbound_caller_id_num": "02 9000 0000"}), "outbound_caller_id_num"),
        (json!({"outbound_caller_id_num": format!("+{}", "1".repeat(33))}), "outbound_caller_id_num"),
        (json!({"emergency_caller_id_num": "++61"}), "emergency_caller_id_num"),
        (json!({"emergency_caller_id_num": "61a"}), "emergency_caller_id_num"),
        (json!({"outbound_caller_id_name": "n".repeat(65)}), "outbound_caller_id_name"),
        (json!({"outbound_caller_id_name": "Acme\u{0007}"}), "outbound_caller_id_name"),
        (json!({"outbound_caller_id_name": "Acme\r\nX-Evil: 1"}), "outbound_caller_id_name"),
        (json!({"call_classes": ["local", "local"]}), "call_classes[1]"),
        (json!({"call_classes": ["local", "galactic"]}), "call_classes[1]"),
        (json!({"call_classes": "local"}), "call_classes"),
        (json!({"max_outbound_calls": 101}), "max_outbound_calls"),
        (json!({"max_outbound_calls": -1}), "max_outbound_calls"),
        (json!({"daily_outbound_minutes": 100_001}), "daily_outbound_minutes"),
    ] {
        let (s, b) = create(&app, &admin, "/api/v1/extensions", ext(201, extra.clone())).await;
        refused(s, &b, field);
        assert_eq!(fields_of(&b).len(), 1, "only {field} is wrong in {extra}: {b}");
    }
    // defaults: local and national, 2 calls at once, no daily cap, no caller ids
    let (s, b) = create(&app, &admin, "/api/v1/extensions", ext(201, json!({}))).await;
    let e = taken(s, &b);
    assert_eq!(e["call_classes"], json!(["local", "national"]));
    assert_eq!((e["max_outbound_calls"].as_i64(), e["daily_outbound_minutes"].as_i64()), (Some(2), Some(0)));
    assert!(e["outbound_caller_id_num"].is_null() && e["emergency_caller_id_num"].is_null());
    let uri = format!("/api/v1/extensions/{}", e["id"]);
    let all = json!({"outbound_caller_id_name": "Acme Pty Ltd", "outbound_caller_id_num": "+61290000001", "emergency_caller_id_num": "0290000009",
                     "call_classes": ["international", "premium", "local"], "max_outbound_calls": 100, "daily_outbound_minutes": 100000});
    let (s, b) = send(&app, &admin, "PUT", &uri, Some(all.clone())).await;
    let d = taken(s, &b);
    for (k, v) in all.as_object().unwrap() {
        assert_eq!(&d[k], v, "{k}");
    }
    // absent keeps, null clears, an empty class list is allowed (emergency calls only)
    let (s, b) = send(&app, &admin, "PUT", &uri, Some(json!({"outbound_caller_id_num": null, "call_classes": [], "max_outbound_calls": 0}))).await;
    let d = taken(s, &b);
    assert!(d["outbound_caller_id_num"].is_null());
    assert_eq!((d["call_classes"].clone(), d["max_outbound_calls"].as_i64()), (json!([]), Some(0)));
    assert_eq!((d["outbound_caller_id_name"].as_str(), d["emergency_caller_id_num"].as_str()), (Some("Acme Pty Ltd"), Some("0290000009")));
}

/// Two trunks and an extension to route with: their ids.
async fn carriers(app: &axum::Router, admin: &Admin) -> (i64, i64, i64) {
    let t = |name: &str, host: &str| json!({"name": name, "type": "ip", "remote_hosts": [host]});
    let (s, body) = create(app, admin, "/api/v1/trunks", t("A", "198.51.100.1")).await;
    let a = taken(s, &body);
    let (s, body) = create(app, admin, "/api/v1/trunks", t("B", "198.51.100.2")).await;
    let b = taken(s, &body);
    let (s, body) = create(app, admin, "/api/v1/extensions", json!({"extension": "101", "name": "A", "sip_password": "password-1"})).await;
    let e = taken(s, &body);
    (a["id"].as_i64().unwrap(), b["id"].as_i64().unwrap(), e["id"].as_i64().unwrap())
}

#[tokio::test]
async fn outbound_routes_round_trip_in_order_with_their_trunks() {
    let (app, _dir) = app().await;
    let (_, admin) = document_and_admin(&app).await;
    let (a, b, ext) = carriers(&app, &admin).await;
    let body = json!({"name": "National", "position": 20, "enabled": true, "patterns": ["0", "_0[2-9]XXXXXXXX", "^\\+61[0-9]{9}$"],
                      "call_class": "national", "strip_digits": 1, "prepend": "+61", "caller_id_mode": "route",
                      "caller_id_name": "Acme", "caller_id_num": "+61290000000", "extension_ids": [ext], "trunk_ids": [b, a]});
    let (s, r) = create(&app, &admin, "/api/v1/outbound-routes", body.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    let route = r["data"].clone();
    for (k, v) in body.as_object().unwrap() {
        assert_eq!(&route[k], v, "{k}");
    }
    assert_eq!(route["warnings"], json!([]));
    let id = route["id"].as_i64().unwrap();
    let uri = format!("/api/v1/outbound-routes/{id}");
    let (s, got) = send(&app, &admin, "GET", &uri, None).await;
    assert_eq!((s, &got["data"]), (StatusCode::OK, &route));

    // defaults, and Asterisk letters read as upper case
    let (s, r) = create(&app, &admin, "/api/v1/outbound-routes", json!({"name": " Mobile ", "patterns": [" _04xxxxxxxx "], "trunk_ids": [a]})).await;
    let m = taken(s, &r);
    assert_eq!(m["name"], "Mobile");
    assert_eq!(m["patterns"], json!(["_04XXXXXXXX"]));
    assert_eq!((m["position"].as_i64(), m["enabled"].as_bool(), m["call_class"].as_str()), (Some(10), Some(true), Some("national")));
    assert_eq!((m["strip_digits"].as_i64(), m["prepend"].as_str(), m["caller_id_mode"].as_str()), (Some(0), Some(""), Some("extension")));
    assert_eq!(m["extension_ids"], json!([]));

    // listed in the order they are tried, paged
    let (s, l) = send(&app, &admin, "GET", "/api/v1/outbound-routes?limit=1", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(l["meta"], json!({"total": 2, "limit": 1, "offset": 0}));
    assert_eq!(l["data"][0]["name"], "Mobile", "position 10 before 20");
    let (_, l) = send(&app, &admin, "GET", "/api/v1/outbound-routes?offset=1", None).await;
    assert_eq!(l["data"][0]["id"], id);

    // an update keeps what it does not send, reorders trunks, clears with null
    let (s, r) = send(&app, &admin, "PUT", &uri, Some(json!({"trunk_ids": [a, b], "caller_id_name": null, "caller_id_mode": "anonymous"}))).await;
    let u = taken(s, &r);
    assert_eq!(u["trunk_ids"], json!([a, b]));
    assert!(u["caller_id_name"].is_null());
    assert_eq!((u["patterns"].clone(), u["prepend"].as_str()), (body["patterns"].clone(), Some("+61")));
    let (s, r) = send(&app, &admin, "PUT", &uri, Some(json!({"trunk_ids": [b]}))).await;
    assert_eq!(taken(s, &r)["trunk_ids"], json!([b]));

    // every change has its audit row
    let (_, audit) = send(&app, &admin, "GET", "/api/v1/audit-log?entity_type=outbound_route", None).await;
    let actions: Vec<&str> = audit["data"].as_array().unwrap().iter().filter_map(|a| a["action"].as_str()).collect();
    assert_eq!(actions.iter().filter(|a| **a == "create").count(), 2, "{audit}");
    assert_eq!(actions.iter().filter(|a| **a == "update").count(), 2, "{audit}");

    // a route's delete is plain; then it is gone
    let (s, d) = send(&app, &admin, "DELETE", &uri, None).await;
    assert_eq!((s, &d["data"]), (StatusCode::OK, &json!({"id": id, "deleted": true})));
    assert_eq!(send(&app, &admin, "GET", &uri, None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(send(&app, &admin, "PUT", &uri, Some(json!({"position": 1}))).await.0, StatusCode::NOT_FOUND);
    assert_eq!(send(&app, &admin, "DELETE", &uri, None).await.0, StatusCode::NOT_FOUND);
    let (_, audit) = send(&app, &admin, "GET", &format!("/api/v1/audit-log?entity_type=outbound_route&entity_id={id}"), None).await;
    assert!(audit["data"].as_array().unwrap().iter().any(|a| a["action"] == "delete"), "{audit}");
}

#[tokio::test]
async fn outbound_route_validation_names_each_field() {
    let (app, _dir) = app().await;
    let (_, admin) = document_and_admin(&app).await;
    let (a, b, ext) = carriers(&app, &admin).await;
    let route = |extra: Value| {
        let mut r = json!({"name": "R", "patterns": ["9"], "trunk_ids": [a]});
        r.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        r
    };
    let cases = [
        (json!({"name": ""}), "name"),
        (json!({"name": "   "}), "name"),
        (json!({"name": "n".repeat(65)}), "name"),
        (json!({"name": "Bad\u{0000}name"}), "name"),
        (json!({"patterns": []}), "patterns"),
        (json!({"patterns": (0..21).map(|i| format!("{i}")).collect::<Vec<_>>()}), "patterns"),
        (json!({"patterns": ["9", "9x"]}), "patterns[1]"),
        (json!({"patterns": ["9", "8", "_9[2-"]}), "patterns[2]"),
        (json!({"patterns": ["_9[5-2]"]}), "patterns[0]"),
        (json!({"patterns": ["_9]"]}), "patterns[0]"),
        (json!({"patterns": ["_9.X"]}), "patterns[0]"),
        (json!({"patterns": ["_9Q"]}), "patterns[0]"),
        (json!({"patterns": ["_"]}), "patterns[0]"),
        (json!({"patterns": ["^(0"]}), "patterns[0]"),
        (json!({"patterns": ["^(((([0-9]{100}){100}){100}){100})"]}), "patterns[0]"),
        (json!({"patterns": [""]}), "patterns[0]"),
        (json!({"patterns": ["9", "9"]}), "patterns[1]"),
        (json!({"patterns": [9]}), "patterns[0]"),
        (json!({"trunk_ids": []}), "trunk_ids"),
        (json!({"trunk_ids": [a, 4242]}), "trunk_ids[1]"),
        (json!({"trunk_ids": [a, b, a]}), "trunk_ids[2]"),
        (json!({"trunk_ids": (0..21).collect::<Vec<_>>()}), "trunk_ids"),
        (json!({"extension_ids": [ext, 4242]}), "extension_ids[1]"),
        (json!({"extension_ids": [ext, ext]}), "extension_ids[1]"),
        (json!({"extension_ids": (0..1001).collect::<Vec<_>>()}), "extension_ids"),
        (json!({"patterns": (0..21).map(|i| format!("_{i}x[")).collect::<Vec<_>>()}), "patterns"),
        (json!({"strip_digits": 21}), "strip_digits"),
        (json!({"strip_digits": -1}), "strip_digits"),
        (json!({"prepend": "+61a"}), "prepend"),
        (json!({"prepend": "1".repeat(21)}), "prepend"),
        (json!({"position": 10001}), "position"),
        (json!({"position": -1}), "position"),
        (json!({"caller_id_mode": "route"}), "caller_id_num"),
        (json!({"caller_id_mode": "route", "caller_id_num": ""}), "caller_id_num"),
        (json!({"caller_id_mode": "somebody"}), "caller_id_mode"),
        (json!({"caller_id_num": "12 34"}), "caller_id_num"),
        (json!({"caller_id_name": "x".repeat(65)}), "caller_id_name"),
        (json!({"caller_id_name": "a\u{009b}b"}), "caller_id_name"),
        (json!({"call_class": "internal"}), "call_class"),
        (json!({"colour": "red"}), "colour"),
    ];
    for (extra, field) in cases {
        let (s, body) = create(&app, &admin, "/api/v1/outbound-routes", route(extra.clone())).await;
        refused(s, &body, field);
        assert_eq!(fields_of(&body), vec![field.to_owned()], "only {field} is wrong in {extra}");
    }
    // the messages say what is wrong
    let (_, body) = create(&app, &admin, "/api/v1/outbound-routes", route(json!({"patterns": ["_9[5-2]", "^(0", "abc"], "trunk_ids": [4242]}))).await;
    let msgs: Vec<String> =
        body["error"]["details"].as_array().unwrap().iter().map(|d| format!("{}: {}", d["field"].as_str().unwrap(), d["message"].as_str().unwrap())).collect();
    assert!(msgs[0].starts_with("patterns[0]") && msgs[0].contains("backwards"), "{msgs:?}");
    assert!(msgs[1].starts_with("patterns[1]") && msgs[1].contains("unclosed group"), "{msgs:?}");
    assert!(msgs[2].starts_with("patterns[2]") && msgs[2].contains("prefix"), "{msgs:?}");
    assert!(msgs[3].starts_with("trunk_ids[0]") && msgs[3].contains("4242"), "{msgs:?}");
    // required on create, null included
    for field in ["name", "patterns", "trunk_ids"] {
        let mut r = route(json!({}));
        r[field] = Value::Null;
        let (s, body) = create(&app, &admin, "/api/v1/outbound-routes", r).await;
        refused(s, &body, field);
    }
    // an update is validated as a whole: it cannot empty the trunks or break the mode
    let (s, body) = create(&app, &admin, "/api/v1/outbound-routes", route(json!({"caller_id_mode": "route", "caller_id_num": "+61290000000"}))).await;
    let uri = format!("/api/v1/outbound-routes/{}", taken(s, &body)["id"]);
    for (change, field) in
        [(json!({"trunk_ids": []}), "trunk_ids"), (json!({"caller_id_num": null}), "caller_id_num"), (json!({"patterns": ["_["]}), "patterns[0]")]
    {
        let (s, body) = send(&app, &admin, "PUT", &uri, Some(change)).await;
        refused(s, &body, field);
    }
    // nothing refused was written
    let (_, l) = send(&app, &admin, "GET", "/api/v1/outbound-routes", None).await;
    assert_eq!(l["meta"]["total"], 1, "{l}");
}

#[tokio::test]
async fn overlapping_routes_clash_at_one_position_and_warn_when_shadowed() {
    let (app, _dir) = app().await;
    let (_, admin) = document_and_admin(&app).await;
    let (a, b, ext) = carriers(&app, &admin).await;
    let new = |body: Value| {
        let app = app.clone();
        let admin = Admin { cookie: admin.cookie.clone(), csrf: admin.csrf.clone() };
        async move { create(&app, &admin, "/api/v1/outbound-routes", body).await }
    };
    let (s, body) = new(json!({"name": "Intl", "position": 10, "call_class": "international", "patterns": ["0011", "_00."], "trunk_ids": [a]})).await;
    let intl = taken(s, &body);
    let intl_id = intl["id"].as_i64().unwrap();

    // the same pattern at the same position: which one wins would be an accident of ids
    let (s, body) = new(json!({"name": "Intl 2", "position": 10, "call_class": "international", "patterns": ["1", "_00."], "trunk_ids": [b]})).await;
    refused(s, &body, "patterns[1]");
    let msg = body["error"]["details"][0]["message"].as_str().unwrap();
    assert!(msg.contains("\"Intl\"") && msg.contains(&format!("id {intl_id}")), "names the other route: {msg}");
    // a disabled one, or another position, is allowed
    let (s, body) =
        new(json!({"name": "Intl spare", "position": 10, "enabled": false, "call_class": "international", "patterns": ["_00."], "trunk_ids": [b]})).await;
    let spare = taken(s, &body);
    assert_eq!(spare["warnings"], json!([]), "a disabled route shadows nothing and is not shadowed");
    // ... but enabling the disabled one at that position is the same clash
    let (s, body) = send(&app, &admin, "PUT", &format!("/api/v1/outbound-routes/{}", spare["id"]), Some(json!({"enabled": true}))).await;
    refused(s, &body, "patterns[0]");

    // later routes whose patterns an earlier prefix takes: saved, with warnings at both ends
    let (s, body) =
        new(json!({"name": "UK", "position": 20, "call_class": "international", "patterns": ["_0044X.", "^\\+44", "001144"], "trunk_ids": [b]})).await;
    let uk = taken(s, &body);
    let w = uk["warnings"].as_array().unwrap();
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!((w[0]["field"].as_str(), w[0]["other_route_id"].as_i64()), (Some("patterns[2]"), Some(intl_id)));
    assert!(w[0]["message"].as_str().unwrap().contains("0011"), "{w:?}");
    let (_, got) = send(&app, &admin, "GET", &format!("/api/v1/outbound-routes/{intl_id}"), None).await;
    let w = got["data"]["warnings"].as_array().unwrap();
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!((w[0]["field"].as_str(), w[0]["other_route_id"].as_i64()), (Some("patterns[0]"), uk["id"].as_i64()));
    assert!(w[0]["message"].as_str().unwrap().contains("001144"), "{w:?}");

    // a different class, or a route limited to some extensions, lets calls through: no warning
    let (s, body) = new(json!({"name": "Premium", "position": 30, "call_class": "premium", "patterns": ["00119"], "trunk_ids": [b]})).await;
    assert_eq!(taken(s, &body)["warnings"], json!([]));
    let (s, body) =
        new(json!({"name": "Boss only", "position": 5, "call_class": "international", "extension_ids": [ext], "patterns": ["0"], "trunk_ids": [b]})).await;
    let boss = taken(s, &body);
    assert_eq!(boss["warnings"], json!([]), "a route open to some extensions shadows nothing for the others");
    // the same pattern at another position: the later one never takes a call
    let (s, body) = new(json!({"name": "Intl late", "position": 40, "call_class": "international", "patterns": ["_00."], "trunk_ids": [b]})).await;
    let late = taken(s, &body);
    assert_eq!(late["warnings"][0]["field"], "patterns[0]", "{late}");
    assert!(late["warnings"][0]["message"].as_str().unwrap().contains("the same pattern"), "{late}");
    // lists carry them too
    let (_, l) = send(&app, &admin, "GET", "/api/v1/outbound-routes?limit=100", None).await;
    let listed = l["data"].as_array().unwrap().iter().find(|r| r["id"] == late["id"]).unwrap().clone();
    assert_eq!(listed["warnings"], late["warnings"]);
}

#[tokio::test]
async fn outbound_routes_are_reordered_in_one_go() {
    let (app, _dir) = app().await;
    let (_, admin) = document_and_admin(&app).await;
    let (a, _, _) = carriers(&app, &admin).await;
    let mut ids = Vec::new();
    // two disabled routes with the same pattern at the same position, and one other
    for (name, position, enabled) in [("First", 10, true), ("Second", 10, false), ("Third", 5, true)] {
        let (s, body) = create(
            &app,
            &admin,
            "/api/v1/outbound-routes",
            json!({"name": name, "position": position, "enabled": enabled, "patterns": ["9"], "trunk_ids": [a]}),
        )
        .await;
        ids.push(taken(s, &body)["id"].as_i64().unwrap());
    }
    let (first, second, third) = (ids[0], ids[1], ids[2]);
    let order = |ids: Value| send(&app, &admin, "PUT", "/api/v1/outbound-routes/order", Some(json!({ "ids": ids })));

    // not every route once: refused naming the entry, nothing moves
    let (s, b) = order(json!([second, first])).await;
    refused(s, &b, "ids");
    assert!(b["error"]["details"][0]["message"].as_str().unwrap().contains(&format!("\"Third\" (id {third})")), "{b}");
    let (s, b) = order(json!([second, first, third, 4242])).await;
    refused(s, &b, "ids[3]");
    let (s, b) = order(json!([second, first, second, third])).await;
    refused(s, &b, "ids[2]");
    let (s, b) = order(json!({"first": first})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let (_, l) = send(&app, &admin, "GET", "/api/v1/outbound-routes", None).await;
    let names: Vec<&str> = l["data"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Third", "First", "Second"]);

    // the new order, with room between the positions; the answer is the list in that order
    let (s, b) = order(json!([second, first, third])).await;
    let listed = taken(s, &b);
    let got: Vec<(i64, i64)> = listed.as_array().unwrap().iter().map(|r| (r["id"].as_i64().unwrap(), r["position"].as_i64().unwrap())).collect();
    assert_eq!(got, vec![(second, 10), (first, 20), (third, 30)]);
    let (_, l) = send(&app, &admin, "GET", "/api/v1/outbound-routes", None).await;
    assert_eq!(l["data"], listed);
    // "Second" no longer shares a position with "First": it can be enabled now
    let (s, b) = send(&app, &admin, "PUT", &format!("/api/v1/outbound-routes/{second}"), Some(json!({"enabled": true}))).await;
    taken(s, &b);
    // the routes that moved have their audit rows ("Second" stayed at 10)
    let (_, audit) = send(&app, &admin, "GET", "/api/v1/audit-log?entity_type=outbound_route&limit=100", None).await;
    let moved: Vec<String> =
        audit["data"].as_array().unwrap().iter().filter(|a| a["action"] == "update").map(|a| a["entity_id"].to_string().trim_matches('"').to_owned()).collect();
    assert!(moved.contains(&first.to_string()) && moved.contains(&third.to_string()), "{audit}");
    // the same order again changes nothing
    let (s, b) = order(json!([second, first, third])).await;
    assert_eq!(taken(s, &b).as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn deleting_a_routed_trunk_or_a_routes_extension_is_a_409_naming_the_routes() {
    let (app, _dir) = app().await;
    let (_, admin) = document_and_admin(&app).await;
    let (a, b, ext) = carriers(&app, &admin).await;
    let (s, body) =
        create(&app, &admin, "/api/v1/outbound-routes", json!({"name": "National", "patterns": ["0"], "trunk_ids": [a, b], "extension_ids": [ext]})).await;
    let route = taken(s, &body);
    let (s, body) = create(&app, &admin, "/api/v1/outbound-routes", json!({"name": "Backup", "position": 50, "patterns": ["1"], "trunk_ids": [b]})).await;
    let backup = taken(s, &body);

    let (s, body) = send(&app, &admin, "DELETE", &format!("/api/v1/trunks/{b}"), None).await;
    assert_eq!((s, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("conflict")), "{body}");
    let refs: Vec<(String, i64, String)> = body["error"]["references"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["entity_type"].as_str().unwrap().to_owned(), r["entity_id"].as_i64().unwrap(), r["via"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        refs,
        vec![
            ("outbound_route".into(), route["id"].as_i64().unwrap(), "trunk_ids".into()),
            ("outbound_route".into(), backup["id"].as_i64().unwrap(), "trunk_ids".into())
        ]
    );
    assert_eq!(body["error"]["references"][0]["name"], "National");
    assert_eq!(fields_of(&body), vec![format!("outbound_route:{}", route["id"]), format!("outbound_route:{}", backup["id"])]);
    let (s, body) = send(&app, &admin, "DELETE", &format!("/api/v1/extensions/{ext}"), None).await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["references"][0]["via"], "extension_ids");
    // the trunk is still there and still routed
    assert_eq!(send(&app, &admin, "GET", &format!("/api/v1/trunks/{b}"), None).await.0, StatusCode::OK);

    // once no route uses it, it goes
    let (s, _) = send(&app, &admin, "PUT", &format!("/api/v1/outbound-routes/{}", route["id"]), Some(json!({"trunk_ids": [a], "extension_ids": []}))).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(send(&app, &admin, "DELETE", &format!("/api/v1/outbound-routes/{}", backup["id"]), None).await.0, StatusCode::OK);
    assert_eq!(send(&app, &admin, "DELETE", &format!("/api/v1/trunks/{b}"), None).await.0, StatusCode::OK);
    assert_eq!(send(&app, &admin, "DELETE", &format!("/api/v1/extensions/{ext}"), None).await.0, StatusCode::OK);
    assert_eq!(send(&app, &admin, "DELETE", &format!("/api/v1/trunks/{a}"), None).await.0, StatusCode::CONFLICT);
}

#[tokio::test]
async fn the_document_describes_outbound_routes_and_the_new_fields() {
    let (app, _dir) = app().await;
    let (doc, _) = document_and_admin(&app).await;
    for (path, methods) in [("/api/v1/outbound-routes", &["get", "post"][..]), ("/api/v1/outbound-routes/{id}", &["get", "put", "delete"][..])] {
        for m in methods {
            assert!(doc["paths"][path][m].is_object(), "{m} {path}");
        }
    }
    assert!(doc["paths"]["/api/v1/outbound-routes/{id}"]["delete"]["responses"]["409"].is_object());
    let schemas = &doc["components"]["schemas"];
    for name in ["OutboundRoute", "OutboundRouteInput", "OutboundRouteView", "RouteWarning", "CallClass", "RouteCallerId"] {
        assert!(schemas[name].is_object(), "{name}");
    }
    let input = &schemas["OutboundRouteInput"]["properties"];
    assert_eq!((input["patterns"]["minItems"].as_i64(), input["patterns"]["maxItems"].as_i64()), (Some(1), Some(20)), "{}", input["patterns"]);
    assert_eq!((input["trunk_ids"]["minItems"].as_i64(), input["trunk_ids"]["uniqueItems"].as_bool()), (Some(1), Some(true)), "{}", input["trunk_ids"]);
    assert_eq!(input["extension_ids"]["uniqueItems"], true);
    assert_eq!(input["name"]["maxLength"], 64);
    let post = &doc["paths"]["/api/v1/outbound-routes"]["post"]["requestBody"]["content"]["application/json"]["schema"];
    let required: Vec<&str> = post["allOf"][1]["required"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(required, ["name", "patterns", "trunk_ids"]);
    let ext = &schemas["ExtensionInput"]["properties"];
    assert_eq!(ext["call_classes"]["uniqueItems"], true, "{}", ext["call_classes"]);
    assert_eq!(ext["max_outbound_calls"]["maximum"], 100);
    assert_eq!(ext["daily_outbound_minutes"]["maximum"], 100000);
    let trunk = &schemas["TrunkInput"]["properties"];
    assert_eq!(trunk["password"]["maxLength"], 128);
    let alts = trunk["options_interval"]["oneOf"].as_array().unwrap_or_else(|| panic!("{}", trunk["options_interval"]));
    let ranges: Vec<(Option<i64>, Option<i64>)> = alts.iter().map(|a| (a["minimum"].as_i64(), a["maximum"].as_i64())).collect();
    assert_eq!(ranges, vec![(Some(0), Some(0)), (Some(5), Some(3600)), (None, None)]);
    assert!(schemas["Trunk"].to_string().contains("options_interval") || schemas["TrunkFields"].to_string().contains("options_interval"));
    // the route view lists its warnings
    assert!(schemas["OutboundRouteView"].to_string().contains("warnings"), "{}", schemas["OutboundRouteView"]);
}
