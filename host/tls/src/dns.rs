//! DNS-01 (RFC 8555 §8.4): a TXT record `_acme-challenge.<domain>` holding the key
//! authorization's digest, put there and taken away by a [`DnsProvider`]:
//! - [`ExecProvider`] runs an administrator's script: `script add|remove <name> <value>`
//!   (exit status 0 for success; what it prints on stderr is the error otherwise);
//! - [`CloudflareProvider`] uses Cloudflare's v4 API with an API token (Zone.DNS:Edit).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::error::DnsError;

/// Puts and removes the TXT records of DNS-01.
#[async_trait::async_trait]
pub trait DnsProvider: Send + Sync + std::fmt::Debug {
    /// Adds a TXT record `name` (fully qualified, no trailing dot) with `value`.
    async fn add(&self, name: &str, value: &str) -> Result<(), DnsError>;
    /// Removes the TXT record `name` with `value` (others of the same name stay).
    async fn remove(&self, name: &str, value: &str) -> Result<(), DnsError>;
}

/// The name of the TXT record for `domain` (a wildcard's is its base domain's).
pub fn record_name(domain: &str) -> String {
    format!("_acme-challenge.{}", domain.trim_start_matches("*.").trim_end_matches('.'))
}

/// Runs a script: `script add <name> <value>` and `script remove <name> <value>`.
#[derive(Debug, Clone)]
pub struct ExecProvider {
    pub script: PathBuf,
    /// How long the script may take.
    pub timeout: Duration,
}

impl ExecProvider {
    pub fn new(script: PathBuf) -> ExecProvider {
        ExecProvider { script, timeout: Duration::from_secs(120) }
    }

    async fn run(&self, action: &str, name: &str, value: &str) -> Result<(), DnsError> {
        let err = |why: String| DnsError::Script { script: self.script.clone(), why };
        let child = tokio::process::Command::new(&self.script)
            .arg(action)
            .arg(name)
            .arg(value)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| err(format!("cannot run it: {e}")))?;
        let out = tokio::time::timeout(self.timeout, child.wait_with_output())
            .await
            .map_err(|_| err(format!("{action} took longer than {:?}", self.timeout)))?
            .map_err(|e| err(e.to_string()))?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let said: String = stderr.trim().chars().take(500).collect();
        Err(err(format!("{action} {name} failed ({}){}", out.status, if said.is_empty() { String::new() } else { format!(": {said}") })))
    }
}

#[async_trait::async_trait]
impl DnsProvider for ExecProvider {
    async fn add(&self, name: &str, value: &str) -> Result<(), DnsError> {
        self.run("add", name, value).await
    }
    async fn remove(&self, name: &str, value: &str) -> Result<(), DnsError> {
        self.run("remove", name, value).await
    }
}

/// Cloudflare's API base.
pub const CLOUDFLARE_API: &str = "https://api.cloudflare.com/client/v4";

/// Cloudflare DNS through its v4 API. The zone is found by name: the longest suffix of the
/// record's name that is a zone of the account.
#[derive(Clone)]
pub struct CloudflareProvider {
    api: String,
    token: String,
    http: reqwest::Client,
}

impl std::fmt::Debug for CloudflareProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudflareProvider").field("api", &self.api).finish_non_exhaustive()
    }
}

impl CloudflareProvider {
    /// A client of `api` (normally [`CLOUDFLARE_API`]) with an API token.
    pub fn new(api: &str, token: &str, provider: Arc<rustls::crypto::CryptoProvider>) -> Result<CloudflareProvider, DnsError> {
        let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| DnsError::Cloudflare(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("FlowPBX/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| DnsError::Cloudflare(e.to_string()))?;
        if token.trim().is_empty() {
            return Err(DnsError::Cloudflare("the API token is empty".into()));
        }
        Ok(CloudflareProvider { api: api.trim_end_matches('/').to_owned(), token: token.trim().to_owned(), http })
    }

    /// Sends a request and returns the envelope's `result`, or the API's errors.
    async fn call(&self, req: reqwest::RequestBuilder) -> Result<Value, DnsError> {
        let resp = req.bearer_auth(&self.token).send().await.map_err(|e| DnsError::Cloudflare(format!("request failed: {e}")))?;
        let status = resp.status();
        let body: Value = resp.json().await.map_err(|e| DnsError::Cloudflare(format!("HTTP {status}, unreadable answer: {e}")))?;
        if status.is_success() && body["success"] == Value::Bool(true) {
            return Ok(body["result"].clone());
        }
        let errors: Vec<String> =
            body["errors"].as_array().map(|a| a.iter().map(|e| format!("{} {}", e["code"], e["message"].as_str().unwrap_or(""))).collect()).unwrap_or_default();
        Err(DnsError::Cloudflare(format!("HTTP {status}: {}", if errors.is_empty() { "no error given".to_owned() } else { errors.join("; ") })))
    }

    /// The zone id of the longest suffix of `name` the account holds.
    async fn zone(&self, name: &str) -> Result<String, DnsError> {
        let labels: Vec<&str> = name.split('.').collect();
        for i in 0..labels.len().saturating_sub(1) {
            let candidate = labels[i..].join(".");
            let zones = self.call(self.http.get(format!("{}/zones", self.api)).query(&[("name", candidate.as_str())])).await?;
            if let Some(id) = zones.as_array().and_then(|z| z.first()).and_then(|z| z["id"].as_str()) {
                return Ok(id.to_owned());
            }
        }
        Err(DnsError::NoZone(name.to_owned()))
    }
}

#[async_trait::async_trait]
impl DnsProvider for CloudflareProvider {
    async fn add(&self, name: &str, value: &str) -> Result<(), DnsError> {
        let zone = self.zone(name).await?;
        let body = json!({"type": "TXT", "name": name, "content": value, "ttl": 60});
        self.call(self.http.post(format!("{}/zones/{zone}/dns_records", self.api)).json(&body)).await?;
        Ok(())
    }

    async fn remove(&self, name: &str, value: &str) -> Result<(), DnsError> {
        let zone = self.zone(name).await?;
        let url = format!("{}/zones/{zone}/dns_records", self.api);
        let found = self.call(self.http.get(&url).query(&[("type", "TXT"), ("name", name), ("content", value)])).await?;
        for id in found.as_array().into_iter().flatten().filter_map(|r| r["id"].as_str()) {
            self.call(self.http.delete(format!("{url}/{id}"))).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::{Path, Query, State};
    use axum::http::{HeaderMap, Method, StatusCode, Uri};
    use axum::routing::{any, get};
    use axum::{Json, Router};
    use std::collections::BTreeMap;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Mutex;

    #[test]
    fn record_names() {
        assert_eq!(record_name("pbx.example.com"), "_acme-challenge.pbx.example.com");
        assert_eq!(record_name("*.example.com"), "_acme-challenge.example.com");
    }

    #[tokio::test]
    async fn the_script_gets_action_name_and_value_and_its_failure_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("calls");
        let script = dir.path().join("dns.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\necho \"$1 $2 $3\" >> {}\n[ \"$2\" = \"_acme-challenge.bad.test\" ] && {{ echo 'zone not ours' >&2; exit 3; }}\nexit 0\n",
                log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();
        let p = ExecProvider::new(script.clone());
        p.add("_acme-challenge.pbx.test", "v4lue").await.unwrap();
        p.remove("_acme-challenge.pbx.test", "v4lue").await.unwrap();
        let e = p.add("_acme-challenge.bad.test", "x").await.unwrap_err();
        assert!(e.to_string().contains("zone not ours") && e.to_string().contains("exit status: 3"), "{e}");
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "add _acme-challenge.pbx.test v4lue\nremove _acme-challenge.pbx.test v4lue\nadd _acme-challenge.bad.test x\n"
        );
        let missing = ExecProvider::new(dir.path().join("nope.sh"));
        assert!(missing.add("a", "b").await.unwrap_err().to_string().contains("cannot run it"));
        let mut slow = ExecProvider::new(PathBuf::from("/bin/sleep"));
        slow.timeout = Duration::from_millis(100);
        // `sleep add …` fails at once on its argument; a script that hangs is what times out
        let hang = dir.path().join("hang.sh");
        std::fs::write(&hang, "#!/bin/sh\nsleep 30\n").unwrap();
        std::fs::set_permissions(&hang, std::fs::Permissions::from_mode(0o700)).unwrap();
        slow.script = hang;
        assert!(slow.add("a", "b").await.unwrap_err().to_string().contains("took longer"));
    }

    /// A fake of Cloudflare's API that checks every request strictly: the bearer token, the
    /// method, the path, the query and the JSON body; anything else is a 400 it records.
    #[derive(Default)]
    struct Fake {
        records: Mutex<BTreeMap<String, (String, String)>>,
        log: Mutex<Vec<String>>,
        problems: Mutex<Vec<String>>,
    }

    const TOKEN: &str = "cf-test-token";
    const ZONE: &str = "zone-123";

    fn ok(result: Value) -> (StatusCode, Json<Value>) {
        (StatusCode::OK, Json(json!({"success": true, "errors": [], "messages": [], "result": result})))
    }

    fn bad(fake: &Fake, why: String) -> (StatusCode, Json<Value>) {
        fake.problems.lock().unwrap().push(why.clone());
        (StatusCode::BAD_REQUEST, Json(json!({"success": false, "errors": [{"code": 1004, "message": why}], "result": null})))
    }

    async fn handler(
        State(fake): State<Arc<Fake>>,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        Query(q): Query<BTreeMap<String, String>>,
        body: axum::body::Bytes,
    ) -> (StatusCode, Json<Value>) {
        fake.log.lock().unwrap().push(format!("{method} {uri}"));
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {TOKEN}")) {
            return (StatusCode::FORBIDDEN, Json(json!({"success": false, "errors": [{"code": 10000, "message": "Authentication error"}]})));
        }
        let path = uri.path();
        match (method.as_str(), path) {
            ("GET", "/client/v4/zones") => {
                if q.keys().any(|k| k != "name") {
                    return bad(&fake, format!("unexpected query {q:?}"));
                }
                let zones = if q.get("name").map(String::as_str) == Some("example.test") { json!([{"id": ZONE, "name": "example.test"}]) } else { json!([]) };
                ok(zones)
            }
            ("POST", p) if p == format!("/client/v4/zones/{ZONE}/dns_records") => {
                if headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/json") {
                    return bad(&fake, "content type".into());
                }
                let Ok(v) = serde_json::from_slice::<Value>(&body) else { return bad(&fake, "body is not JSON".into()) };
                let keys: Vec<&String> = v.as_object().map(|o| o.keys().collect()).unwrap_or_default();
                if keys != ["content", "name", "ttl", "type"]
                    || v["type"] != "TXT"
                    || !v["ttl"].is_u64()
                    || !v["name"].as_str().is_some_and(|n| n.starts_with("_acme-challenge."))
                {
                    return bad(&fake, format!("bad record {v}"));
                }
                let id = format!("rec-{}", fake.records.lock().unwrap().len() + 1);
                fake.records.lock().unwrap().insert(id.clone(), (v["name"].as_str().unwrap_or("").to_owned(), v["content"].as_str().unwrap_or("").to_owned()));
                ok(json!({"id": id}))
            }
            ("GET", p) if p == format!("/client/v4/zones/{ZONE}/dns_records") => {
                let want: Vec<&str> = q.keys().map(String::as_str).collect();
                if want != ["content", "name", "type"] || q["type"] != "TXT" {
                    return bad(&fake, format!("unexpected query {q:?}"));
                }
                let found: Vec<Value> =
                    fake.records.lock().unwrap().iter().filter(|(_, (n, c))| *n == q["name"] && *c == q["content"]).map(|(id, _)| json!({"id": id})).collect();
                ok(Value::Array(found))
            }
            _ => bad(&fake, format!("unexpected {method} {path}")),
        }
    }

    async fn delete(State(fake): State<Arc<Fake>>, headers: HeaderMap, Path((zone, id)): Path<(String, String)>) -> (StatusCode, Json<Value>) {
        fake.log.lock().unwrap().push(format!("DELETE {zone}/{id}"));
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {TOKEN}")) || zone != ZONE {
            return bad(&fake, "delete: bad token or zone".into());
        }
        match fake.records.lock().unwrap().remove(&id) {
            Some(_) => ok(json!({"id": id})),
            None => (StatusCode::NOT_FOUND, Json(json!({"success": false, "errors": [{"code": 81044, "message": "Record does not exist."}]}))),
        }
    }

    async fn fake_api() -> (String, Arc<Fake>) {
        let fake = Arc::new(Fake::default());
        let app = Router::new()
            .route("/client/v4/zones/{zone}/dns_records/{id}", axum::routing::delete(delete))
            .route("/client/v4/zones", get(handler))
            .route("/client/v4/zones/{zone}/dns_records", any(handler))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}/client/v4"), fake)
    }

    #[tokio::test]
    async fn cloudflare_adds_finds_and_removes_the_record() {
        let (api, fake) = fake_api().await;
        let p = CloudflareProvider::new(&api, TOKEN, Arc::new(crate::testutil::provider())).unwrap();
        p.add("_acme-challenge.pbx.example.test", "digest-1").await.unwrap();
        p.add("_acme-challenge.pbx.example.test", "digest-2").await.unwrap();
        assert_eq!(fake.records.lock().unwrap().len(), 2);
        p.remove("_acme-challenge.pbx.example.test", "digest-1").await.unwrap();
        let left: Vec<(String, String)> = fake.records.lock().unwrap().values().cloned().collect();
        assert_eq!(left, vec![("_acme-challenge.pbx.example.test".to_owned(), "digest-2".to_owned())]);
        assert!(fake.problems.lock().unwrap().is_empty(), "{:?}", fake.problems.lock().unwrap());
        let log = fake.log.lock().unwrap().clone();
        // the zone is looked up from the longest name down
        assert_eq!(log[0], "GET /client/v4/zones?name=_acme-challenge.pbx.example.test");
        assert_eq!(log[1], "GET /client/v4/zones?name=pbx.example.test");
        assert_eq!(log[2], "GET /client/v4/zones?name=example.test");
        assert_eq!(log[3], format!("POST /client/v4/zones/{ZONE}/dns_records"));
        assert!(log.contains(&format!("DELETE {ZONE}/rec-1")), "{log:?}");
    }

    #[tokio::test]
    async fn cloudflare_errors_are_reported() {
        let (api, _fake) = fake_api().await;
        let p = CloudflareProvider::new(&api, "wrong-token", Arc::new(crate::testutil::provider())).unwrap();
        let e = p.add("_acme-challenge.pbx.example.test", "d").await.unwrap_err();
        assert!(e.to_string().contains("403") && e.to_string().contains("Authentication error"), "{e}");
        let p = CloudflareProvider::new(&api, TOKEN, Arc::new(crate::testutil::provider())).unwrap();
        let e = p.add("_acme-challenge.pbx.elsewhere.test", "d").await.unwrap_err();
        assert_eq!(e, DnsError::NoZone("_acme-challenge.pbx.elsewhere.test".into()));
        assert!(CloudflareProvider::new(&api, " ", Arc::new(crate::testutil::provider())).is_err());
        let closed = CloudflareProvider::new("http://127.0.0.1:9/client/v4", TOKEN, Arc::new(crate::testutil::provider())).unwrap();
        assert!(closed.add("_acme-challenge.pbx.example.test", "d").await.unwrap_err().to_string().contains("request failed"));
    }
}
