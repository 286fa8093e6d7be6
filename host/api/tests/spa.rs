//! The embedded SPA and `/ws`, driven with `oneshot` (the SPA) and over a real socket (`/ws`):
//! SPA fallback, caching, precompressed bodies, ETags, security headers, the API's JSON 404s,
//! and the WebSocket's origin check, authentication and first frame.

use std::net::SocketAddr;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use futures_util::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
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

async fn get(app: &axum::Router, uri: &str, headers: &[(&str, &str)]) -> (StatusCode, axum::http::HeaderMap, bytes::Bytes) {
    let mut req = Request::get(uri).body(Body::empty()).unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(header::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
    }
    let resp = app.clone().oneshot(req).await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    (status, headers, resp.into_body().collect().await.unwrap().to_bytes())
}

fn h<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> &'a str {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

#[tokio::test]
async fn the_spa_is_served_with_fallback_caching_and_security_headers() {
    let (app, _dir) = app().await;
    let (s, hd, body) = get(&app, "/", &[]).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h(&hd, "content-type"), "text/html; charset=utf-8");
    assert_eq!(h(&hd, "cache-control"), "no-cache");
    assert!(h(&hd, "content-security-policy").contains("frame-ancestors 'none'"));
    assert!(h(&hd, "content-security-policy").contains("script-src 'self'"));
    assert_eq!(h(&hd, "x-content-type-options"), "nosniff");
    let html = String::from_utf8(body.to_vec()).unwrap();
    assert!(html.contains("<div id=\"root\">"));

    // client-side routes get index.html
    for path in ["/flows/3", "/setup", "/login", "/extensions?x=1"] {
        let (s, hd, b) = get(&app, path, &[]).await;
        assert_eq!((s, h(&hd, "content-type")), (StatusCode::OK, "text/html; charset=utf-8"), "{path}");
        assert_eq!(b, html.as_bytes(), "{path}");
    }

    // the hashed bundle: immutable, precompressed, with an ETag
    let script = html.split("src=\"").nth(1).and_then(|s| s.split('"').next()).expect("index.html loads a script").to_owned();
    assert!(script.starts_with("/assets/") && script.ends_with(".js"), "{script}");
    let (s, hd, raw) = get(&app, &script, &[]).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h(&hd, "content-type"), "text/javascript; charset=utf-8");
    assert_eq!(h(&hd, "cache-control"), "public, max-age=31536000, immutable");
    assert_eq!(h(&hd, "content-encoding"), "");
    let (_, hd_br, br) = get(&app, &script, &[("accept-encoding", "gzip, deflate, br")]).await;
    assert_eq!(h(&hd_br, "content-encoding"), "br");
    assert_eq!(h(&hd_br, "vary"), "accept-encoding");
    assert!(br.len() < raw.len() / 2, "brotli {} of {}", br.len(), raw.len());
    let (_, hd_gz, gz) = get(&app, &script, &[("accept-encoding", "gzip")]).await;
    assert_eq!(h(&hd_gz, "content-encoding"), "gzip");
    assert_eq!(&gz[..2], &[0x1f, 0x8b]);
    let etag = h(&hd, "etag").to_owned();
    let (s, _, b) = get(&app, &script, &[("if-none-match", &etag)]).await;
    assert_eq!((s, b.len()), (StatusCode::NOT_MODIFIED, 0));

    // what is not the SPA stays JSON
    for path in ["/assets/missing-abc.js", "/api/v1/nowhere", "/api/nowhere", "/ws/x"] {
        let (s, hd, b) = get(&app, path, &[]).await;
        let v: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
        assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")), "{path}");
        assert!(h(&hd, "content-type").starts_with("application/json"), "{path}");
    }
    let resp = app.clone().oneshot(Request::post("/flows/3").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    // a plain GET of /ws (no upgrade) is refused with the envelope
    let (s, _, b) = get(&app, "/ws", &[]).await;
    let v: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
    assert!(s.is_client_error() && v["error"]["code"].is_string(), "{s} {v}");
}

async fn serve() -> (SocketAddr, axum::Router, tempfile::TempDir) {
    let (app, dir) = app().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = app.clone();
    tokio::spawn(async move { axum::serve(listener, served.into_make_service_with_connect_info::<SocketAddr>()).await });
    (addr, app, dir)
}

async fn post(app: &axum::Router, uri: &str, body: Value, auth: Option<(&str, &str)>) -> (StatusCode, axum::http::HeaderMap, Value) {
    let mut req = Request::post(uri).header(header::CONTENT_TYPE, "application/json").body(Body::from(body.to_string())).unwrap();
    if let Some((cookie, csrf)) = auth {
        req.headers_mut().insert(header::COOKIE, cookie.parse().unwrap());
        req.headers_mut().insert("x-csrf-token", csrf.parse().unwrap());
    }
    let resp = app.clone().oneshot(req).await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let b = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

/// Runs first-boot setup, logs in and adds an IP trunk; returns the session cookie.
async fn login(app: &axum::Router) -> String {
    let creds = json!({"username": "admin", "password": "12345678"});
    assert_eq!(post(app, "/api/v1/setup", creds.clone(), None).await.0, StatusCode::CREATED);
    let (s, hd, b) = post(app, "/api/v1/auth/login", creds, None).await;
    assert_eq!(s, StatusCode::OK);
    let cookie = hd[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
    let csrf = b["data"]["csrf_token"].as_str().unwrap().to_owned();
    let trunk = json!({"name": "Carrier", "type": "ip", "remote_hosts": ["203.0.113.5/32"]});
    let (s, _, b) = post(app, "/api/v1/trunks", trunk, Some((&cookie, &csrf))).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["data"]["status"], "failed", "no PBX attached: {b}");
    cookie
}

async fn next_text<S: StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin>(ws: &mut S) -> Option<Message> {
    tokio::time::timeout(std::time::Duration::from_secs(5), ws.next()).await.ok().flatten().and_then(Result::ok)
}

#[tokio::test]
async fn ws_checks_origin_and_session_then_sends_a_snapshot() {
    let (addr, app, _dir) = serve().await;
    let url = format!("ws://{addr}/ws");

    // not signed in: upgraded, then closed with 4401
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    match next_text(&mut ws).await {
        Some(Message::Close(Some(f))) => assert_eq!(u16::from(f.code), 4401),
        other => panic!("expected close 4401, got {other:?}"),
    }

    let cookie = login(&app).await;
    // another site's page: refused before the upgrade
    let mut req = url.as_str().into_client_request().unwrap();
    req.headers_mut().insert(header::COOKIE, cookie.parse().unwrap());
    req.headers_mut().insert(header::ORIGIN, "http://evil.example".parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 403),
        other => panic!("cross-origin upgrade was not refused: {other:?}"),
    }

    // the SPA's own origin with the session cookie: a snapshot first
    let mut req = url.as_str().into_client_request().unwrap();
    req.headers_mut().insert(header::COOKIE, cookie.parse().unwrap());
    req.headers_mut().insert(header::ORIGIN, format!("http://{addr}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let Some(Message::Text(t)) = next_text(&mut ws).await else { panic!("no snapshot") };
    let v: Value = serde_json::from_str(&t).unwrap();
    assert_eq!(v["type"], "snapshot");
    assert_eq!(v["data"]["calls"], json!([]));
    assert_eq!(v["data"]["registrations"], json!({}));
    let trunk = &v["data"]["trunks"][0];
    // no PBX attached in this test: the trunk cannot be working, and says why
    assert_eq!((trunk["status"].as_str(), trunk["detail"].as_str()), (Some("failed"), Some("the SIP stack is not running")));
    ws.send(Message::Text("ignored".into())).await.unwrap();
    ws.close(None).await.unwrap();
}
