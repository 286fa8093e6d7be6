//! The end-to-end harness: start the real `flowpbx` binary on a temporary data dir with free
//! ports, wait until it is healthy, talk to its API as a logged-in administrator, stop, kill
//! or restart it, and show its log when a test fails.
//!
//! ```no_run
//! # async fn t() -> anyhow::Result<()> {
//! let server = flowpbx_tests::Server::start().await?;
//! let admin = server.admin().await?; // first-boot setup + login
//! let r = admin.post("/extensions", &serde_json::json!({"extension": "101", "name": "A", "sip_password": "secret-pass"})).await?;
//! assert_eq!(r.status, 201);
//! # Ok(()) }
//! ```
//!
//! The binary is `$FLOWPBX_BIN`, else `$CARGO_TARGET_DIR/debug/flowpbx`, else
//! `<workspace>/target/debug/flowpbx`; when none exists it is built once with
//! `cargo build --bin flowpbx`.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::Method;
use serde_json::Value;

/// The administrator [`Server::admin`] creates.
pub const ADMIN_USER: &str = "admin";
pub const ADMIN_PASSWORD: &str = "correct horse battery";

/// How long start-up may take before the harness gives up.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The workspace root (the parent of `tests/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

/// The `flowpbx` binary to test, built once if it does not exist.
pub fn flowpbx_bin() -> anyhow::Result<PathBuf> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| locate_or_build().map_err(|e| format!("{e:#}"))).clone().map_err(|e| anyhow!(e))
}

fn locate_or_build() -> anyhow::Result<PathBuf> {
    if let Ok(p) = std::env::var("FLOWPBX_BIN") {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        bail!("FLOWPBX_BIN={} does not exist", p.display());
    }
    let root = workspace_root();
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    let target = if target.is_absolute() { target } else { root.join(target) };
    let bin = target.join("debug").join("flowpbx");
    if !bin.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo).args(["build", "--bin", "flowpbx"]).current_dir(&root).status().context("running cargo build --bin flowpbx")?;
        if !status.success() {
            bail!("cargo build --bin flowpbx failed: {status}");
        }
    }
    if !bin.is_file() {
        bail!("{} was not built", bin.display());
    }
    Ok(bin)
}

/// The ports a server listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub http: u16,
    /// SIP, UDP and TCP on the same number
    pub sip: u16,
    /// SIP over TLS
    pub sip_tls: u16,
    /// SIP over secure WebSocket
    pub sip_wss: u16,
    pub rtp_min: u16,
    pub rtp_max: u16,
}

impl Ports {
    /// Free ports on 127.0.0.1: HTTP (TCP), SIP (UDP and TCP on one number) and an RTP range
    /// of 200 ports whose first ones are free.
    pub fn free() -> anyhow::Result<Ports> {
        let http = free_tcp()?;
        let sip = loop {
            let p = free_tcp()?;
            if p != http && UdpSocket::bind((Ipv4Addr::LOCALHOST, p)).is_ok() {
                break p;
            }
        };
        let sip_tls = loop {
            let p = free_tcp()?;
            if p != http && p != sip {
                break p;
            }
        };
        let sip_wss = loop {
            let p = free_tcp()?;
            if p != http && p != sip && p != sip_tls {
                break p;
            }
        };
        let rtp_min = free_udp_range(200, &[http, sip, sip_tls, sip_wss])?;
        Ok(Ports { http, sip, sip_tls, sip_wss, rtp_min, rtp_max: rtp_min + 199 })
    }
}

/// A TCP port free on 127.0.0.1 now (for the listeners a test adds: HTTPS, HTTP-01).
pub fn free_tcp_port() -> anyhow::Result<u16> {
    free_tcp()
}

fn free_tcp() -> anyhow::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port())
}

fn free_udp_range(len: u16, avoid: &[u16]) -> anyhow::Result<u16> {
    for _ in 0..200 {
        // an even start in 20000..60000 from a free ephemeral port's low bits
        let seed = free_tcp()? as u32 * 7919 + std::process::id();
        let base = 20000 + ((seed % 20000) as u16) * 2;
        if avoid.iter().any(|a| (base..base + len).contains(a)) {
            continue;
        }
        if (base..base + 8).all(|p| UdpSocket::bind((Ipv4Addr::LOCALHOST, p)).is_ok()) {
            return Ok(base);
        }
    }
    bail!("no free RTP port range")
}

/// How to start a server.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// More flags for the binary (after the harness's own).
    pub args: Vec<String>,
    /// Environment variables to set.
    pub env: Vec<(String, String)>,
    /// Use this data dir instead of a fresh temporary one.
    pub data_dir: Option<PathBuf>,
    /// Use these ports instead of free ones.
    pub ports: Option<Ports>,
    /// Run this binary instead of [`flowpbx_bin`] (benchmarks use a release build).
    pub binary: Option<PathBuf>,
}

/// A running `flowpbx` process.
pub struct Server {
    child: Option<Child>,
    ports: Ports,
    data_dir: PathBuf,
    _temp: Option<Arc<tempfile::TempDir>>,
    log: Arc<Mutex<Vec<String>>>,
    opts: ServerOptions,
    started_in: Duration,
    ready_in: Duration,
}

impl Server {
    /// Starts the binary with defaults: a new temporary data dir and free ports.
    pub async fn start() -> anyhow::Result<Server> {
        Self::start_with(ServerOptions::default()).await
    }

    pub async fn start_with(opts: ServerOptions) -> anyhow::Result<Server> {
        let (data_dir, temp) = match &opts.data_dir {
            Some(d) => (d.clone(), None),
            None => {
                let t = tempfile::Builder::new().prefix("flowpbx-test-").tempdir()?;
                (t.path().to_path_buf(), Some(Arc::new(t)))
            }
        };
        let ports = match opts.ports {
            Some(p) => p,
            None => Ports::free()?,
        };
        let mut s = Server {
            child: None,
            ports,
            data_dir,
            _temp: temp,
            log: Arc::new(Mutex::new(Vec::new())),
            opts,
            started_in: Duration::ZERO,
            ready_in: Duration::ZERO,
        };
        s.spawn().await?;
        Ok(s)
    }

    async fn spawn(&mut self) -> anyhow::Result<()> {
        let bin = match &self.opts.binary {
            Some(b) => b.clone(),
            None => flowpbx_bin()?,
        };
        let p = self.ports;
        let mut cmd = Command::new(&bin);
        cmd.arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--bind-address", "127.0.0.1"])
            .args(["--http-port", &p.http.to_string()])
            .args(["--sip-port", &p.sip.to_string()])
            .args(["--rtp-port-min", &p.rtp_min.to_string()])
            .args(["--rtp-port-max", &p.rtp_max.to_string()])
            .args(&self.opts.args)
            .env_remove("FLOWPBX_SECRET_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if !self.opts.args.iter().any(|a| a == "--drain-timeout-secs") {
            // SIGTERM drains: calls in progress may finish for up to an hour. A test that
            // stops its server with a call still up (a phone gone without a BYE) does not
            // wait for that; the drain tests give their own deadline
            cmd.args(["--drain-timeout-secs", "5"]);
        }
        if !self.opts.args.iter().any(|a| a == "--https-port") {
            // HTTPS's default is 443, which one server alone could bind: a test that wants
            // HTTPS gives a free port
            cmd.args(["--https-port", "0"]);
        }
        if !self.opts.args.iter().any(|a| a == "--sip-tls-port") {
            // SIP over TLS's default is 5061, which one server alone could bind
            cmd.args(["--sip-tls-port", &p.sip_tls.to_string()]);
        }
        if !self.opts.args.iter().any(|a| a == "--sip-wss-port") {
            // likewise WSS's 8089
            cmd.args(["--sip-wss-port", &p.sip_wss.to_string()]);
        }
        if !self.opts.args.iter().any(|a| a == "--cache-dir") {
            // compiled node components shared by every test's server (the cache is written
            // atomically): a start does not recompile every built-in node
            cmd.arg("--cache-dir").arg(bin.with_file_name("flowpbx-test-component-cache"));
        }
        if !self.opts.args.iter().any(|a| a == "--log-level") {
            cmd.args(["--log-level", "info,api=debug,store=debug"]);
        }
        for (k, v) in &self.opts.env {
            cmd.env(k, v);
        }
        let t0 = Instant::now();
        let mut child = cmd.spawn().with_context(|| format!("starting {}", bin.display()))?;
        for pipe in [
            child.stdout.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            child.stderr.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = self.log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if let Ok(mut l) = log.lock() {
                        l.push(line);
                    }
                }
            });
        }
        self.child = Some(child);
        let client = http_builder().timeout(Duration::from_secs(2)).build()?;
        let url = self.url("/api/v1/health");
        // HTTP and SIP serve at once; the flow engine finishes starting in the background
        // (health says "starting"): tests begin once it is up
        let mut healthy_at = None;
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.child = None;
                bail!("flowpbx exited during start-up ({status}); log:\n{}", self.logs());
            }
            if let Ok(r) = client.get(&url).send().await
                && r.status().is_success()
            {
                healthy_at.get_or_insert(t0.elapsed());
                let starting = r.json::<Value>().await.map(|h| h["data"]["components"]["flows"]["status"] == "starting").unwrap_or(true);
                if !starting {
                    break;
                }
            }
            if t0.elapsed() > START_TIMEOUT {
                let what = if healthy_at.is_some() { "the flow engine of flowpbx did not start" } else { "flowpbx was not healthy" };
                bail!("{what} within {START_TIMEOUT:?}; log:\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.started_in = healthy_at.unwrap_or_default();
        self.ready_in = t0.elapsed();
        Ok(())
    }

    pub fn ports(&self) -> Ports {
        self.ports
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The database file.
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join(store::DB_FILE)
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.http)
    }

    /// `http://127.0.0.1:<port><path>`
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url())
    }

    /// How long the last start took until `/api/v1/health` answered 200 (the flow engine
    /// may still have been starting).
    pub fn startup_time(&self) -> Duration {
        self.started_in
    }

    /// How long the last start took until the flow engine was up too.
    pub fn ready_time(&self) -> Duration {
        self.ready_in
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Everything the server wrote to stdout and stderr so far.
    pub fn logs(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    /// A new API client (no session) for this server.
    pub fn client(&self) -> Client {
        Client::new(&self.base_url())
    }

    /// Runs first-boot setup (when needed) and returns a client logged in as the administrator.
    pub async fn admin(&self) -> anyhow::Result<Client> {
        let c = self.client();
        let r = c.get("/setup").await?;
        if r.body["data"]["required"] == Value::Bool(true) {
            let r = c.post("/setup", &serde_json::json!({"username": ADMIN_USER, "password": ADMIN_PASSWORD})).await?;
            if r.status != 201 {
                bail!("setup failed: {} {}", r.status, r.text);
            }
        }
        c.login(ADMIN_USER, ADMIN_PASSWORD).await?;
        Ok(c)
    }

    /// SIGTERM and wait for the exit (graceful shutdown); SIGKILL after `timeout`.
    pub fn stop_timeout(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let Some(mut child) = self.child.take() else { bail!("server is not running") };
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let t0 = Instant::now();
        loop {
            if let Some(s) = child.try_wait()? {
                return Ok(s);
            }
            if t0.elapsed() > timeout {
                let _ = child.kill();
                let s = child.wait()?;
                bail!("flowpbx did not stop within {timeout:?} after SIGTERM (killed: {s})");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits up to `timeout` for the process to exit by itself (no signal sent); None if it
    /// still runs then.
    pub fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<Option<ExitStatus>> {
        let Some(child) = self.child.as_mut() else { bail!("server is not running") };
        let t0 = Instant::now();
        while t0.elapsed() < timeout {
            if let Some(s) = child.try_wait()? {
                self.child = None;
                return Ok(Some(s));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(None)
    }

    /// SIGTERM, waiting up to 10 s.
    pub fn stop(&mut self) -> anyhow::Result<ExitStatus> {
        self.stop_timeout(Duration::from_secs(10))
    }

    /// SIGKILL (a crash).
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Stops (gracefully) if running, then starts again on the same data dir and ports.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            self.stop()?;
        }
        self.spawn().await
    }

    /// The process's resident set size in KiB (Linux: VmRSS of /proc/<pid>/status).
    pub fn rss_kib(&self) -> Option<u64> {
        self.status_kib("VmRSS")
    }

    /// A size field of the server's `/proc/<pid>/status` in KiB (`VmRSS`, `RssAnon`,
    /// `RssFile`, …).
    pub fn status_kib(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        status.lines().find_map(|l| l.strip_prefix(field)?.strip_prefix(':')).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("----- flowpbx log ({}) -----\n{}\n----- end of flowpbx log -----", self.data_dir.display(), self.logs());
        }
    }
}

/// A response: status, headers and body (parsed as JSON when it is JSON, else Null).
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Response {
    /// `body.data`
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }

    /// `body.error.code`
    pub fn error_code(&self) -> Option<&str> {
        self.body["error"]["code"].as_str()
    }

    /// The fields named in `error.details`.
    pub fn error_fields(&self) -> Vec<String> {
        self.body["error"]["details"].as_array().map(|a| a.iter().filter_map(|d| d["field"].as_str().map(str::to_owned)).collect()).unwrap_or_default()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// An HTTP client for `/api/v1` that keeps the session cookie and sends the CSRF token.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    csrf: Arc<Mutex<Option<String>>>,
    bearer: Option<String>,
}

/// A reqwest builder that works whatever TLS features the workspace unifies
/// into reqwest: the flow crate turns on `rustls-no-provider`, and a client
/// built without a process-wide rustls provider panics, so one is installed
/// first (ring, the provider the flow crate uses too).
pub fn http_builder() -> reqwest::ClientBuilder {
    static PROVIDER: std::sync::Once = std::sync::Once::new();
    PROVIDER.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
}

/// A flow node for a test graph (placed at the origin).
pub fn flow_node(id: &str, ty: &str, data: Value) -> Value {
    serde_json::json!({"id": id, "type": ty, "position": {"x": 0, "y": 0}, "data": data})
}

/// A flow edge from `from`'s output `output` to `to`.
pub fn flow_edge(from: &str, output: &str, to: &str) -> Value {
    serde_json::json!({"id": format!("{from}-{output}-{to}"), "source": from, "sourceHandle": output, "target": to})
}

impl Client {
    /// Creates the flow `name` from `nodes` and `edges`, publishes it and routes `number`
    /// arriving through `trunk` to its node `in`: the flow's id.
    pub async fn publish_flow_for_number(&self, name: &str, nodes: Vec<Value>, edges: Vec<Value>, number: &str, trunk: i64) -> anyhow::Result<i64> {
        let r = self.post("/flows", &serde_json::json!({"name": name, "flow_data": {"nodes": nodes, "edges": edges}})).await?;
        anyhow::ensure!(r.status == 201, "{}", r.text);
        let flow = r.data()["id"].as_i64().context("flow id")?;
        let r = self.post(&format!("/flows/{flow}/publish"), &serde_json::json!({})).await?;
        anyhow::ensure!(r.status == 200, "publish: {}", r.text);
        let r = self.post("/numbers", &serde_json::json!({"number": number, "trunk_id": trunk, "flow_id": flow, "flow_entry_node": "in"})).await?;
        anyhow::ensure!(r.status == 201, "{}", r.text);
        Ok(flow)
    }

    pub fn new(base_url: &str) -> Client {
        let http = http_builder().cookie_store(true).timeout(Duration::from_secs(30)).build().unwrap_or_default();
        Client { http, base: base_url.trim_end_matches('/').to_owned(), csrf: Arc::new(Mutex::new(None)), bearer: None }
    }

    /// A client over a reqwest client of the test's own (HTTPS with a test CA's root, names
    /// resolved to the test's addresses); give it a cookie store to keep a session.
    pub fn from_http(base_url: &str, http: reqwest::Client) -> Client {
        Client { http, base: base_url.trim_end_matches('/').to_owned(), csrf: Arc::new(Mutex::new(None)), bearer: None }
    }

    /// First-boot setup (when needed) and login as the administrator, through this client.
    pub async fn setup_and_login(&self) -> anyhow::Result<Response> {
        let r = self.get("/setup").await?;
        if r.body["data"]["required"] == Value::Bool(true) {
            let r = self.post("/setup", &serde_json::json!({"username": ADMIN_USER, "password": ADMIN_PASSWORD})).await?;
            if r.status != 201 {
                bail!("setup failed: {} {}", r.status, r.text);
            }
        }
        self.login(ADMIN_USER, ADMIN_PASSWORD).await
    }

    /// A client that authenticates with an API token instead of a session.
    pub fn with_bearer(&self, token: &str) -> Client {
        Client { http: http_builder().build().unwrap_or_default(), base: self.base.clone(), csrf: Arc::new(Mutex::new(None)), bearer: Some(token.to_owned()) }
    }

    /// The underlying reqwest client (cookie jar included) for requests the helpers do not cover.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// `<base>/api/v1<path>`
    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    pub fn csrf_token(&self) -> Option<String> {
        self.csrf.lock().ok().and_then(|c| c.clone())
    }

    /// Forgets the CSRF token (to check that state-changing requests need it).
    pub fn clear_csrf(&self) {
        if let Ok(mut c) = self.csrf.lock() {
            *c = None;
        }
    }

    /// Logs in; keeps the cookie and the CSRF token.
    pub async fn login(&self, username: &str, password: &str) -> anyhow::Result<Response> {
        let r = self.post("/auth/login", &serde_json::json!({"username": username, "password": password})).await?;
        if r.status != 200 {
            bail!("login failed: {} {}", r.status, r.text);
        }
        if let Ok(mut c) = self.csrf.lock() {
            *c = r.data()["csrf_token"].as_str().map(str::to_owned);
        }
        Ok(r)
    }

    /// Sends a request with an optional JSON body (CSRF header and bearer token included).
    pub async fn request(&self, method: Method, path: &str, body: Option<&Value>) -> anyhow::Result<Response> {
        let mut req = self.http.request(method, self.url(path));
        if let Some(b) = body {
            req = req.json(b);
        }
        self.send(req).await
    }

    /// Sends a prepared request, adding the CSRF header and bearer token.
    pub async fn send(&self, mut req: reqwest::RequestBuilder) -> anyhow::Result<Response> {
        if let Some(t) = self.csrf_token()
            && let Ok(v) = HeaderValue::from_str(&t)
        {
            req = req.header("x-csrf-token", v);
        }
        if let Some(b) = &self.bearer {
            req = req.bearer_auth(b);
        }
        let r = req.send().await?;
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await?;
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Response { status, headers, body, text })
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Response> {
        self.request(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Response> {
        self.request(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> anyhow::Result<Response> {
        self.request(Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<Response> {
        self.request(Method::DELETE, path, None).await
    }

    /// GETs with extra request headers (`Range`, …).
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> anyhow::Result<Response> {
        let mut req = self.http.get(self.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(req).await
    }

    /// POSTs a raw body with a content type (malformed-input tests).
    pub async fn post_raw(&self, path: &str, content_type: &str, body: impl Into<reqwest::Body>) -> anyhow::Result<Response> {
        let req = self.http.post(self.url(path)).header("content-type", content_type).body(body);
        self.send(req).await
    }

    /// POSTs a multipart form.
    pub async fn post_multipart(&self, path: &str, form: reqwest::multipart::Form) -> anyhow::Result<Response> {
        let req = self.http.post(self.url(path)).multipart(form);
        self.send(req).await
    }
}
