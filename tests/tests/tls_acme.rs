//! ACME against Pebble (Debian `pebble`), with `pebble-challtestsrv` as its DNS (every name
//! is 127.0.0.1), everything on 127.0.0.1 with free ports: Pebble validates HTTP-01 on the
//! server's `--acme-http-port` and TLS-ALPN-01 on its `--https-port`.
//!
//! - HTTP-01: the certificate is issued and served over HTTPS (a client trusting only
//!   Pebble's root gets it), HTTP redirects and HSTS follow, a forced renewal serves a new
//!   certificate without a restart, and a restart serves the stored one without an order;
//! - TLS-ALPN-01: issued through the HTTPS listener;
//! - DNS-01: a wildcard through an exec script that sets challtestsrv's TXT records;
//! - a CA that refuses (the domain points where this server is not): a status error, health
//!   degraded, the self-signed certificate kept, backoff, a forced retry.

mod tls_support;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use flowpbx_tests::{free_tcp_port, Client, Server, ServerOptions};
use serde_json::{json, Value};
use tls_support::*;

const NAME: &str = "pbx.flowpbx.test";

fn acme_args(pebble: &Pebble, https: u16, extra: &[String]) -> Vec<String> {
    let mut a = vec![
        "--https-port".to_owned(),
        https.to_string(),
        "--acme-directory".into(),
        pebble.directory.clone(),
        "--acme-ca-root".into(),
        pebble.api_root.display().to_string(),
    ];
    a.extend(extra.iter().cloned());
    a
}

/// Waits until the HTTPS port serves a certificate for `sni` that Pebble's root verifies.
async fn wait_issued(https: u16, sni: &str, root: &str, server: &Server, pebble: &Pebble) -> String {
    let t0 = Instant::now();
    loop {
        if let Ok(f) = served_fingerprint(https, sni, root) {
            return f;
        }
        if t0.elapsed() > Duration::from_secs(60) {
            panic!("no ACME certificate served for {sni}\n--- flowpbx ---\n{}\n{}", server.logs(), pebble.logs());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn tls_status(c: &Client) -> Value {
    let r = c.get("/system/tls").await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    r.data().clone()
}

#[tokio::test]
async fn http01_issues_serves_renews_and_keeps_the_certificate() {
    let (https, acme_http) = (free_tcp_port().unwrap(), free_tcp_port().unwrap());
    let pebble = Pebble::start(acme_http, https).unwrap();
    let args = acme_args(
        &pebble,
        https,
        &["--acme-domains".into(), NAME.into(), "--acme-http-port".into(), acme_http.to_string(), "--acme-email".into(), "ops@flowpbx.test".into()],
    );
    let mut server = Server::start_with(ServerOptions { args, ..Default::default() }).await.unwrap();
    let root = pebble.issuing_root().await.unwrap();
    let first = wait_issued(https, NAME, &root, &server, &pebble).await;

    let c = Client::from_http(&format!("https://{NAME}:{https}"), https_client(&root, NAME));
    let login = c.setup_and_login().await.unwrap();
    assert!(login.header("set-cookie").unwrap_or_default().contains("; Secure"), "{:?}", login.headers);
    assert_eq!(login.header("strict-transport-security"), Some("max-age=31536000"));
    let s = tls_status(&c).await;
    assert_eq!(s["mode"], "acme");
    assert_eq!(s["trusted"], true);
    assert_eq!(s["certificate"]["source"], "acme");
    assert_eq!(s["certificate"]["sans"], json!([NAME]));
    assert!(s["certificate"]["issuer"].as_str().unwrap().contains("Pebble"), "{s:#}");
    assert_eq!(s["certificate"]["sha256_fingerprint"], first.as_str());
    assert_eq!(s["acme"]["directory"], pebble.directory.as_str());
    assert_eq!(s["acme"]["challenge"], "http-01");
    assert_eq!(s["acme"]["domains"], json!([NAME]));
    assert!(s["acme"]["account"].as_str().is_some_and(|a| a.starts_with("https://127.0.0.1:")), "{s:#}");
    assert!(s["last_error"].is_null() && s["failures"] == 0, "{s:#}");
    assert!(s["next_renewal"].is_string(), "{s:#}");
    assert_eq!(s["listeners"]["acme-http"]["address"], format!("127.0.0.1:{acme_http}"));
    assert_eq!(s["health"], "ok");

    // plain HTTP redirects now, on the HTTP port and on the HTTP-01 one
    for port in [server.ports().http, acme_http] {
        let r = raw_http(port, &format!("GET /flows HTTP/1.0\r\nHost: {NAME}\r\n\r\n")).unwrap();
        assert!(r.contains(" 308 ") && r.to_ascii_lowercase().contains(&format!("location: https://{NAME}:{https}/flows")), "{port}: {r}");
    }

    // what is kept in the data dir, for the server's user alone
    for f in ["tls/acme/account.json", "tls/acme/cert.pem", "tls/acme/key.pem"] {
        let meta = std::fs::metadata(server.data_dir().join(f)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{f}");
    }

    // a forced renewal: a new certificate, served on the next connection without a restart
    let r = c.post("/system/tls/renew", &json!({})).await.unwrap();
    assert_eq!(r.status, 202, "{}", r.text);
    let t0 = Instant::now();
    let renewed = loop {
        let s = tls_status(&c).await;
        let f = s["certificate"]["sha256_fingerprint"].as_str().unwrap().to_owned();
        if f != first && !s["renewing"].as_bool().unwrap_or(true) {
            assert!(s["last_error"].is_null(), "{s:#}");
            break f;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "no renewal: {s:#}\n{}", pebble.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(served_fingerprint(https, NAME, &root).unwrap(), renewed);
    let audit = c.get("/audit-log?entity_type=tls_certificate").await.unwrap();
    assert_eq!(audit.data().as_array().map(Vec::len), Some(1), "{}", audit.text);

    // a restart serves the stored certificate at once and orders nothing
    server.restart().await.unwrap();
    assert_eq!(served_fingerprint(https, NAME, &root).unwrap(), renewed);
    let c = Client::from_http(&format!("https://{NAME}:{https}"), https_client(&root, NAME));
    c.setup_and_login().await.unwrap();
    let s = tls_status(&c).await;
    assert!(s["last_attempt"].is_null(), "{s:#}");
    assert_eq!(s["certificate"]["source"], "acme");
}

#[tokio::test]
async fn tls_alpn01_issues_through_the_https_listener() {
    // nothing listens on Pebble's HTTP-01 port: only TLS-ALPN-01 can succeed
    let (https, unused) = (free_tcp_port().unwrap(), free_tcp_port().unwrap());
    let pebble = Pebble::start(unused, https).unwrap();
    let args = acme_args(&pebble, https, &["--acme-domains".into(), NAME.into(), "--acme-challenge".into(), "tls-alpn-01".into()]);
    let server = Server::start_with(ServerOptions { args, ..Default::default() }).await.unwrap();
    let root = pebble.issuing_root().await.unwrap();
    let served = wait_issued(https, NAME, &root, &server, &pebble).await;
    let c = Client::from_http(&format!("https://{NAME}:{https}"), https_client(&root, NAME));
    c.setup_and_login().await.unwrap();
    let s = tls_status(&c).await;
    assert_eq!(s["acme"]["challenge"], "tls-alpn-01");
    assert_eq!(s["certificate"]["sha256_fingerprint"], served.as_str());
    assert!(s["listeners"].get("acme-http").is_none(), "no HTTP-01 listener: {s:#}");
    // the validation certificate is gone with the order: acme-tls/1 now gets no certificate
    let mut cfg = client_config(&root);
    cfg.alpn_protocols = vec![b"acme-tls/1".to_vec()];
    let mut conn = rustls::ClientConnection::new(std::sync::Arc::new(cfg), rustls::pki_types::ServerName::try_from(NAME).unwrap()).unwrap();
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", https)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut failed = false;
    while conn.is_handshaking() {
        if conn.complete_io(&mut tcp).is_err() {
            failed = true;
            break;
        }
    }
    assert!(failed, "an acme-tls/1 handshake outside an order must fail");
}

#[tokio::test]
async fn dns01_issues_a_wildcard_through_a_script() {
    let https = free_tcp_port().unwrap();
    let pebble = Pebble::start(free_tcp_port().unwrap(), free_tcp_port().unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("calls.log");
    let script = dir.path().join("dns.sh");
    // sets the TXT records in challtestsrv through its management API, with bash alone
    std::fs::write(
        &script,
        format!(
            r#"#!/bin/bash
set -eu
echo "$1 $2 $3" >> {calls}
case "$1" in
  add) path=/set-txt; body="{{\"host\":\"$2.\",\"value\":\"$3\"}}" ;;
  remove) path=/clear-txt; body="{{\"host\":\"$2.\"}}" ;;
  *) echo "unknown action $1" >&2; exit 2 ;;
esac
exec 3<>/dev/tcp/127.0.0.1/{port}
printf 'POST %s HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s' "$path" "${{#body}}" "$body" >&3
read -r proto code rest <&3
[ "$code" = 200 ] || {{ echo "challtestsrv answered $code" >&2; exit 1; }}
"#,
            calls = calls.display(),
            port = pebble.dns.management
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();
    let domains = "dns.flowpbx.test,*.dns.flowpbx.test".to_owned();
    let args = acme_args(
        &pebble,
        https,
        &[
            "--acme-domains".into(),
            domains,
            "--acme-challenge".into(),
            "dns-01".into(),
            "--acme-dns-script".into(),
            script.display().to_string(),
            "--acme-dns-wait-secs".into(),
            "0".into(),
        ],
    );
    let server = Server::start_with(ServerOptions { args, ..Default::default() }).await.unwrap();
    let root = pebble.issuing_root().await.unwrap();
    // the wildcard covers any one label
    wait_issued(https, "desk1.dns.flowpbx.test", &root, &server, &pebble).await;
    assert!(served_fingerprint(https, "dns.flowpbx.test", &root).is_ok());
    let log = std::fs::read_to_string(&calls).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.iter().filter(|l| l.starts_with("add _acme-challenge.dns.flowpbx.test ")).count(), 2, "{log}");
    assert_eq!(lines.iter().filter(|l| l.starts_with("remove _acme-challenge.dns.flowpbx.test ")).count(), 2, "{log}");
    let c = Client::from_http(&format!("https://dns.flowpbx.test:{https}"), https_client(&root, "dns.flowpbx.test"));
    c.setup_and_login().await.unwrap();
    let s = tls_status(&c).await;
    assert_eq!(s["acme"]["challenge"], "dns-01");
    assert_eq!(s["certificate"]["sans"].as_array().map(Vec::len), Some(2), "{s:#}");
    assert!(s["certificate"]["sans"].as_array().unwrap().contains(&Value::from("*.dns.flowpbx.test")), "{s:#}");
}

#[tokio::test]
async fn a_refusing_ca_is_a_status_error_and_the_self_signed_certificate_stays() {
    let (https, acme_http) = (free_tcp_port().unwrap(), free_tcp_port().unwrap());
    let pebble = Pebble::start(acme_http, https).unwrap();
    // the domain points at an address where this server is not: the CA cannot validate it
    const REFUSED: &str = "elsewhere.flowpbx.test";
    pebble.dns.add_a(REFUSED, "127.0.0.254").await.unwrap();
    let args = acme_args(&pebble, https, &["--acme-domains".into(), REFUSED.into(), "--acme-http-port".into(), acme_http.to_string()]);
    let server = Server::start_with(ServerOptions { args, ..Default::default() }).await.unwrap();
    // not trusted: HTTP serves the API as it is
    let admin = server.admin().await.unwrap();
    let t0 = Instant::now();
    let s = loop {
        let s = tls_status(&admin).await;
        if s["failures"].as_u64().unwrap_or(0) >= 1 {
            break s;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "no failure reported: {s:#}\n{}", pebble.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let error = s["last_error"].as_str().unwrap();
    assert!(error.contains("the CA refused") && error.contains("urn:ietf:params:acme:error:"), "{error}");
    assert!(error.contains("127.0.0.254") || error.contains(REFUSED), "{error}");
    assert_eq!(s["certificate"]["source"], "self_signed", "{s:#}");
    assert_eq!(s["trusted"], false);
    assert_eq!(s["health"], "degraded");
    assert!(s["health_detail"].as_str().unwrap().contains("renewal failing"), "{s:#}");
    // the next attempt backs off 5 minutes from the failed one
    let last = time::OffsetDateTime::parse(s["last_attempt"].as_str().unwrap(), &time::format_description::well_known::Rfc3339).unwrap();
    let next = time::OffsetDateTime::parse(s["next_renewal"].as_str().unwrap(), &time::format_description::well_known::Rfc3339).unwrap();
    let backoff = (next - last).whole_seconds();
    assert!((295..=305).contains(&backoff), "backoff {backoff} s: {s:#}");
    let h = admin.get("/health").await.unwrap();
    assert_eq!(h.data()["components"]["tls"]["status"], "degraded", "{}", h.text);
    // plain HTTP is not redirected to a certificate browsers would refuse
    let r = raw_http(server.ports().http, "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    assert!(r.contains(" 200 "), "{}", r.lines().next().unwrap_or_default());

    // an administrator's renewal goes at once, whatever the backoff, and fails again
    assert_eq!(admin.post("/system/tls/renew", &json!({})).await.unwrap().status, 202);
    let t0 = Instant::now();
    loop {
        let s = tls_status(&admin).await;
        if s["failures"].as_u64().unwrap_or(0) >= 2 {
            assert!(s["last_error"].as_str().is_some_and(|e| e.contains("the CA refused")), "{s:#}");
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "the forced attempt did not run: {s:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
