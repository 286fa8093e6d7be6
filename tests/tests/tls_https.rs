//! HTTPS with certificate files and with the self-signed default, through the real binary:
//! the certificate served is the one configured (checked with a client trusting only the test
//! CA), changed files are served without a restart, bad ones are refused with the reason and
//! the old certificate stays, bad files at start stop it with the reason, plain HTTP
//! redirects to HTTPS once the certificate is CA-issued (HSTS then), and the session cookie
//! is `Secure` over HTTPS.

mod tls_support;

use std::path::Path;
use std::time::{Duration, Instant};

use flowpbx_tests::{free_tcp_port, Client, Server, ServerOptions};
use serde_json::Value;
use tls_support::*;

const NAME: &str = "pbx.flowpbx.test";

fn write(path: &Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn start_with_files(dir: &Path, https: u16, extra: &[&str]) -> anyhow::Result<Server> {
    let mut args = vec![
        "--https-port".to_owned(),
        https.to_string(),
        "--tls-cert".into(),
        dir.join("cert.pem").display().to_string(),
        "--tls-key".into(),
        dir.join("key.pem").display().to_string(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    Server::start_with(ServerOptions { args, ..Default::default() }).await
}

async fn tls_status(c: &Client) -> Value {
    let r = c.get("/system/tls").await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    r.data().clone()
}

async fn wait_for(c: &Client, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    let t0 = Instant::now();
    loop {
        let s = tls_status(c).await;
        if f(&s) {
            return s;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "{what}: {s:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn https_serves_the_files_redirects_sends_hsts_and_secures_the_cookie() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("FlowPBX e2e CA");
    let (cert, key) = ca.issue(&[NAME], -1, 90);
    write(&dir.path().join("cert.pem"), &cert);
    write(&dir.path().join("key.pem"), &key);
    let https = free_tcp_port().unwrap();
    let server = start_with_files(dir.path(), https, &["--hostname", NAME]).await.unwrap();

    // the HTTPS client trusts the test CA only: the handshake itself proves the certificate
    let c = Client::from_http(&format!("https://{NAME}:{https}"), https_client(&ca.pem, NAME));
    let login = c.setup_and_login().await.unwrap();
    let cookie = login.header("set-cookie").unwrap_or_default().to_owned();
    assert!(cookie.starts_with("flowpbx_session=") && cookie.contains("; Secure") && cookie.contains("HttpOnly"), "{cookie}");
    assert_eq!(login.header("strict-transport-security"), Some("max-age=31536000"));

    let s = tls_status(&c).await;
    assert_eq!(s["enabled"], true);
    assert_eq!(s["mode"], "file");
    assert_eq!(s["trusted"], true);
    assert_eq!(s["https_port"], https);
    assert_eq!(s["certificate"]["source"], "file");
    assert_eq!(s["certificate"]["sans"], serde_json::json!([NAME]));
    assert_eq!(s["certificate"]["self_signed"], false);
    assert!(s["certificate"]["issuer"].as_str().unwrap().contains("FlowPBX e2e CA"), "{s:#}");
    assert!((88..=90).contains(&s["certificate"]["days_left"].as_i64().unwrap()), "{s:#}");
    assert_eq!(s["files"]["cert"], dir.path().join("cert.pem").display().to_string());
    assert_eq!(s["listeners"]["https"]["address"], format!("127.0.0.1:{https}"));
    assert_eq!(s["health"], "ok");
    assert_eq!(served_fingerprint(https, NAME, &ca.pem).unwrap(), s["certificate"]["sha256_fingerprint"].as_str().unwrap());

    // the health endpoint's tls component
    let h = c.get("/health").await.unwrap();
    assert_eq!(h.data()["components"]["tls"]["status"], "ok", "{}", h.text);
    assert!(h.data()["components"]["tls"]["detail"].as_str().unwrap().contains("valid until"), "{}", h.text);

    // plain HTTP: a redirect to the same host, path and query on the HTTPS port...
    let http = server.ports().http;
    let r = raw_http(http, &format!("GET /calls?page=2 HTTP/1.0\r\nHost: {NAME}:{http}\r\n\r\n")).unwrap();
    assert!(r.starts_with("HTTP/1.0 308") || r.starts_with("HTTP/1.1 308"), "{r}");
    assert!(r.to_ascii_lowercase().contains(&format!("location: https://{NAME}:{https}/calls?page=2\r\n")), "{r}");
    assert!(!r.to_ascii_lowercase().contains("strict-transport-security"), "no HSTS over HTTP: {r}");
    // ... a POST stays a POST (308), and the health check is answered where it is asked
    let r = raw_http(http, &format!("POST /api/v1/auth/login HTTP/1.0\r\nHost: {NAME}\r\nContent-Length: 0\r\n\r\n")).unwrap();
    assert!(r.contains(" 308 ") && r.to_ascii_lowercase().contains(&format!("location: https://{NAME}:{https}/api/v1/auth/login")), "{r}");
    let r = raw_http(http, &format!("GET /api/v1/health HTTP/1.0\r\nHost: {NAME}\r\n\r\n")).unwrap();
    assert!(r.contains(" 200 "), "{r}");
    // a Host the server does not answer to is refused before any redirect
    let r = raw_http(http, "GET / HTTP/1.0\r\nHost: evil.example\r\n\r\n").unwrap();
    assert!(r.contains(" 421 "), "{r}");
    // the ACME path answers nothing it was not asked to
    let r = raw_http(http, &format!("GET /.well-known/acme-challenge/abc HTTP/1.0\r\nHost: {NAME}\r\n\r\n")).unwrap();
    assert!(r.contains(" 404 "), "{r}");

    // renewing is for ACME only, and for administrators
    let r = c.post("/system/tls/renew", &serde_json::json!({})).await.unwrap();
    assert_eq!(r.status, 409, "{}", r.text);
    assert!(r.text.contains("files"), "{}", r.text);
    let token = c.post("/api-tokens", &serde_json::json!({"name": "reader", "scope": "read"})).await.unwrap();
    let (reader, bearer) = (https_client(&ca.pem, NAME), token.data()["token"].as_str().unwrap().to_owned());
    let url = |p: &str| format!("https://{NAME}:{https}/api/v1{p}");
    assert_eq!(reader.get(url("/system/tls")).bearer_auth(&bearer).send().await.unwrap().status(), 200);
    assert_eq!(reader.post(url("/system/tls/renew")).bearer_auth(&bearer).send().await.unwrap().status(), 403);
    // and no one without credentials
    assert_eq!(Client::from_http(&format!("https://{NAME}:{https}"), https_client(&ca.pem, NAME)).get("/system/tls").await.unwrap().status, 401);
}

#[tokio::test]
async fn changed_files_are_served_without_a_restart_and_bad_ones_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let ca = TestCa::new("FlowPBX e2e CA");
    let (cert_a, key_a) = ca.issue(&[NAME], -1, 90);
    write(&cert_path, &cert_a);
    write(&key_path, &key_a);
    let https = free_tcp_port().unwrap();
    let _server = start_with_files(dir.path(), https, &["--hostname", NAME]).await.unwrap();
    let c = Client::from_http(&format!("https://{NAME}:{https}"), https_client(&ca.pem, NAME));
    c.setup_and_login().await.unwrap();
    let first = served_fingerprint(https, NAME, &ca.pem).unwrap();

    // a certificate whose key is another's: refused, the first one still served
    let (cert_b, _) = ca.issue(&[NAME], -1, 90);
    write(&cert_path, &cert_b);
    let s =
        wait_for(&c, "the mismatched pair is refused", |s| s["last_error"].as_str().is_some_and(|e| e.contains("does not belong to the certificate"))).await;
    assert_eq!(s["certificate"]["sha256_fingerprint"], first.as_str());
    assert_eq!(s["health"], "degraded");
    assert!(s["health_detail"].as_str().unwrap().contains("certificate files refused"), "{s:#}");
    assert_eq!(served_fingerprint(https, NAME, &ca.pem).unwrap(), first);
    let h = c.get("/health").await.unwrap();
    assert_eq!(h.data()["components"]["tls"]["status"], "degraded", "{}", h.text);
    assert!(h.data()["components"]["tls"]["detail"].as_str().unwrap().contains("does not belong"), "{}", h.text);

    // an expired pair
    let (old_cert, old_key) = ca.issue(&[NAME], -30, -1);
    write(&key_path, &old_key);
    write(&cert_path, &old_cert);
    wait_for(&c, "the expired pair is refused", |s| s["last_error"].as_str().is_some_and(|e| e.contains("the certificate expired on"))).await;
    assert_eq!(served_fingerprint(https, NAME, &ca.pem).unwrap(), first);

    // a key where the certificate should be: a key without its certificate
    write(&cert_path, &old_key);
    wait_for(&c, "no certificate", |s| s["last_error"].as_str().is_some_and(|e| e.contains("cert.pem: no certificate"))).await;
    assert_eq!(served_fingerprint(https, NAME, &ca.pem).unwrap(), first);

    // a good pair: served on the next connection, the error gone
    let (cert_d, key_d) = ca.issue(&[NAME, "pbx2.flowpbx.test"], -1, 60);
    write(&key_path, &key_d);
    write(&cert_path, &cert_d);
    let s = wait_for(&c, "the new pair is served", |s| s["certificate"]["sans"].as_array().is_some_and(|a| a.len() == 2) && s["last_error"].is_null()).await;
    assert_eq!(s["health"], "ok", "{s:#}");
    let now_served = served_fingerprint(https, NAME, &ca.pem).unwrap();
    assert_ne!(now_served, first);
    assert_eq!(now_served, s["certificate"]["sha256_fingerprint"].as_str().unwrap());
}

#[tokio::test]
async fn bad_files_at_start_stop_it_with_the_reason() {
    let ca = TestCa::new("FlowPBX e2e CA");
    let https = free_tcp_port().unwrap().to_string();
    type Prepare<'a> = Box<dyn Fn(&Path) + 'a>;
    let cases: Vec<(Prepare, &str)> = vec![
        (
            Box::new(|d: &Path| {
                let (c, k) = ca.issue(&[NAME], -20, -2);
                write(&d.join("cert.pem"), &c);
                write(&d.join("key.pem"), &k);
            }),
            "the certificate expired on",
        ),
        (
            Box::new(|d: &Path| {
                let (c, _) = ca.issue(&[NAME], -1, 20);
                let (_, k) = ca.issue(&[NAME], -1, 20);
                write(&d.join("cert.pem"), &c);
                write(&d.join("key.pem"), &k);
            }),
            "the private key does not belong to the certificate",
        ),
        (
            Box::new(|d: &Path| {
                let (c, _) = ca.issue(&[NAME], -1, 20);
                write(&d.join("cert.pem"), &c);
                write(&d.join("key.pem"), &c);
            }),
            "key.pem: no private key",
        ),
        (Box::new(|_: &Path| {}), "cert.pem: cannot read"),
    ];
    for (prepare, says) in cases {
        let dir = tempfile::tempdir().unwrap();
        prepare(dir.path());
        let e = start_with_files(dir.path(), https.parse().unwrap(), &[]).await.err().map(|e| format!("{e:#}")).unwrap_or_default();
        assert!(e.contains("exited during start-up") && e.contains(says), "{says}: {e}");
    }
    // a key without a certificate flag
    let e = Server::start_with(ServerOptions { args: vec!["--tls-key".into(), "/nonexistent.pem".into()], ..Default::default() })
        .await
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap_or_default();
    assert!(e.contains("--tls-key was given without --tls-cert"), "{e}");
}

#[tokio::test]
async fn a_self_signed_certificate_out_of_the_box() {
    let https = free_tcp_port().unwrap();
    let mut server = Server::start_with(ServerOptions { args: vec!["--https-port".into(), https.to_string()], ..Default::default() }).await.unwrap();
    let admin = server.admin().await.unwrap();
    let s = tls_status(&admin).await;
    assert_eq!(s["mode"], "self_signed");
    assert_eq!(s["trusted"], false);
    assert_eq!(s["certificate"]["source"], "self_signed");
    assert_eq!(s["certificate"]["self_signed"], true);
    assert!(s["certificate"]["sans"].as_array().unwrap().contains(&Value::from("localhost")), "{s:#}");
    assert_eq!(s["health"], "ok");
    let pem_path = server.data_dir().join("tls/self-signed.pem");
    use std::os::unix::fs::PermissionsExt;
    for f in ["tls/self-signed.pem", "tls/self-signed.key"] {
        assert_eq!(std::fs::metadata(server.data_dir().join(f)).unwrap().permissions().mode() & 0o777, 0o600, "{f}");
    }
    let pem = std::fs::read_to_string(&pem_path).unwrap();
    let fingerprint = s["certificate"]["sha256_fingerprint"].as_str().unwrap().to_owned();
    assert_eq!(served_fingerprint(https, "localhost", &pem).unwrap(), fingerprint);

    // not trusted: plain HTTP is not redirected, HTTPS sends no HSTS, the cookie is still Secure over TLS
    let r = raw_http(server.ports().http, "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    assert!(r.contains(" 200 "), "{}", r.lines().next().unwrap_or_default());
    let c = Client::from_http(&format!("https://localhost:{https}"), https_client(&pem, "localhost"));
    let login = c.login(flowpbx_tests::ADMIN_USER, flowpbx_tests::ADMIN_PASSWORD).await.unwrap();
    assert!(login.header("set-cookie").unwrap_or_default().contains("; Secure"), "{:?}", login.headers);
    assert_eq!(login.header("strict-transport-security"), None);
    assert_eq!(c.get("/auth/me").await.unwrap().status, 200, "the session works over HTTPS");
    // over plain HTTP the cookie is not Secure (the browser would not send it back)
    let plain = server.client();
    let r = plain.login(flowpbx_tests::ADMIN_USER, flowpbx_tests::ADMIN_PASSWORD).await.unwrap();
    assert!(!r.header("set-cookie").unwrap_or_default().contains("Secure"), "{:?}", r.headers);

    // the same certificate after a restart
    server.restart().await.unwrap();
    assert_eq!(served_fingerprint(https, "localhost", &pem).unwrap(), fingerprint);
}
