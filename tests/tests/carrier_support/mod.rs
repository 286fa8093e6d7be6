//! A local SIP carrier for the trunk tests: Kamailio 5.6 (Debian package `kamailio`) running
//! `tests/carrier/kamailio.cfg` as the provider's registrar (digest auth, bindings in memory)
//! and proxy, with SIPp phones on the provider's side standing in for the PSTN.
//!
//! ```text
//!   PSTN caller (SIPp, a pstn_source address) ──INVITE DID──▶ carrier ──▶ contact the PBX registered
//!   PBX ──REGISTER / INVITE (digest)──▶ carrier ──▶ PSTN phone (SIPp UAS, chosen by number prefix)
//! ```
//!
//! A test file declares both helper modules (`mod sip_support; mod carrier_support;`), starts
//! a [`Carrier`] with its accounts, DIDs and PSTN phones, points the PBX at
//! [`Carrier::sip`], flips [`Switch`]es at run time (REGISTER answered 503/403/423, INVITEs
//! answered 503 or dropped, OPTIONS unanswered), and checks what crossed the carrier with
//! [`Carrier::events`], [`Carrier::registered_contacts`] and the SIPp phones' message traces.
//! Kamailio is controlled over JSON-RPC on a Unix datagram socket in its temporary run dir;
//! it is stopped when the `Carrier` is dropped (or when the test process dies: a shell
//! between the two holds a pipe from the test and terminates Kamailio when it closes), and
//! its log is printed when the test panics.
//!
//! ```ignore
//! let (phone, phone_addr) = pstn_phone("pstn_uas.xml", PSTN_IP, 1, &[])?;
//! let carrier = Carrier::start(CarrierOptions {
//!     accounts: vec![Account::new("acme", "acme-auth", "Trunk-pw-1", &["+15551230001"])],
//!     pstn_uas: Some(phone_addr), // where the PBX's calls out end up
//!     ..Default::default()
//! })?;
//! // the PBX's trunk: registrar carrier.sip(), username "acme", auth username "acme-auth"
//! carrier.wait_registered("acme", 1, Duration::from_secs(10))?;
//! pstn_call(&carrier, &PstnCall::to("+15551230001"), &[])?.wait(WAIT).assert_ok();
//! carrier.set(Switch::Register(Answer::ReplyRetryAfter(503, 5)))?;
//! ```
//!
//! Two carriers (failover) share 127.0.0.5 on different ports, or take other addresses
//! (`ip`); the PSTN side defaults to 127.0.0.6 (`PSTN_IP`: callers and phones).
#![allow(dead_code)] // each test file uses its own part

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use flowpbx_tests::workspace_root;
use serde_json::{json, Value};

use crate::sip_support::{free_port, sipp, users_csv, Sipp, SippResult};

/// The carrier's default address (the PBX listens on 127.0.0.1).
pub const CARRIER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 5);
/// The default address of the PSTN side: SIPp callers (a `pstn_source`) and phones.
pub const PSTN_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 6);
/// How long start-up may take (Kamailio starts in a fraction of a second).
pub const CARRIER_START_TIMEOUT: Duration = Duration::from_secs(15);

/// A registration account of the carrier (a registration trunk on the PBX side).
#[derive(Debug, Clone)]
pub struct Account {
    /// The user of the address of record (the To of the REGISTER), which the DIDs map to.
    pub aor: String,
    /// The digest username (may differ from `aor`).
    pub auth_user: String,
    pub password: String,
    /// Numbers whose calls from the PSTN go to this account's registered contacts.
    pub dids: Vec<String>,
}

impl Account {
    pub fn new(aor: &str, auth_user: &str, password: &str, dids: &[&str]) -> Account {
        Account { aor: aor.into(), auth_user: auth_user.into(), password: password.into(), dids: dids.iter().map(|d| d.to_string()).collect() }
    }
}

/// An IP-authenticated customer: requests from `peer`'s IP are trusted without digest, and
/// calls to `dids` are sent to `peer` (Request-URI `sip:<DID>@<peer>`).
#[derive(Debug, Clone)]
pub struct IpTrunk {
    pub peer: SocketAddr,
    pub dids: Vec<String>,
}

/// The digest algorithm the carrier challenges with (one per carrier: Kamailio 5.6's auth
/// module has a single `algorithm` parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Digest {
    /// MD5 without an `algorithm=` parameter in the challenge (RFC 2617's default).
    #[default]
    Md5,
    /// MD5 with `algorithm=MD5` in the challenge.
    Md5Explicit,
    /// SHA-256 (RFC 7616 / 8760), `algorithm=SHA-256` in the challenge.
    Sha256,
}

impl Digest {
    fn param(self) -> &'static str {
        match self {
            Digest::Md5 => "",
            Digest::Md5Explicit => "MD5",
            Digest::Sha256 => "SHA-256",
        }
    }
}

/// How to start a carrier.
#[derive(Debug, Clone)]
pub struct CarrierOptions {
    /// The carrier's address: UDP and TCP on one port (`0`: a free one).
    pub ip: Ipv4Addr,
    pub port: u16,
    /// The realm of the digest challenges.
    pub realm: String,
    pub digest: Digest,
    /// Challenges carry `qop="auth"` (else no qop).
    pub qop: bool,
    pub accounts: Vec<Account>,
    pub ip_trunks: Vec<IpTrunk>,
    /// Source addresses of the PSTN side: an INVITE from one of them is a call to a DID;
    /// from anywhere else it is a customer's call out.
    pub pstn_sources: Vec<Ipv4Addr>,
    /// The PSTN phone that receives customers' calls when no prefix route matches.
    pub pstn_uas: Option<SocketAddr>,
    /// Number prefixes (of the Request-URI user, as the customer sent it) routed to other
    /// PSTN phones; the longest match wins.
    pub pstn_routes: Vec<(String, SocketAddr)>,
    /// How long the carrier waits for a provisional answer from the next hop before it
    /// answers 408 (tm fr_timer).
    pub no_reply_timeout: Duration,
    /// How long the carrier lets the next hop ring before it answers 408 (tm fr_inv_timer).
    pub ring_timeout: Duration,
    /// SIP over TLS too (Debian `kamailio-tls-modules`), on a port of its own, serving this
    /// PEM certificate chain and key.
    pub tls: Option<(String, String)>,
}

impl Default for CarrierOptions {
    fn default() -> Self {
        CarrierOptions {
            ip: CARRIER_IP,
            port: 0,
            realm: "carrier.test".into(),
            digest: Digest::Md5,
            qop: true,
            accounts: Vec::new(),
            ip_trunks: Vec::new(),
            pstn_sources: vec![PSTN_IP],
            pstn_uas: None,
            pstn_routes: Vec::new(),
            no_reply_timeout: Duration::from_secs(5),
            ring_timeout: Duration::from_secs(60),
            tls: None,
        }
    }
}

/// What the carrier does with a kind of request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The normal behaviour (register, relay, 200 to OPTIONS).
    Normal,
    /// This final status (with a stock reason phrase).
    Reply(u16),
    /// This final status with a `Retry-After` of that many seconds.
    ReplyRetryAfter(u16, u32),
    /// Nothing at all: the request is dropped (every retransmission too).
    Silence,
}

/// A run-time switch of the carrier. `Register` and `Invite` act after a successful digest
/// check (the challenge is still sent), `Options` on every out-of-dialog OPTIONS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    /// How REGISTERs are answered.
    Register(Answer),
    /// How INVITEs from customers (the PBX calling out) are answered.
    Invite(Answer),
    /// How OPTIONS are answered.
    Options(Answer),
    /// REGISTERs asking for fewer seconds get 423 with `Min-Expires: n` (0: off).
    MinExpires(u32),
    /// Bindings are granted for at most n seconds (0: whatever was asked).
    MaxExpires(u32),
    /// Calls to a DID reach the registered contact with the DID as Request-URI user (false:
    /// the contact exactly as registered; the DID is in To either way).
    DidInRequestUri(bool),
}

/// One registered contact, as usrloc holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Contact {
    pub uri: String,
    /// Seconds left.
    pub expires: i64,
    pub call_id: String,
    pub cseq: i64,
    pub user_agent: String,
    /// The carrier's socket it was received on (`udp:127.0.0.5:5060`).
    pub socket: String,
    pub raw: Value,
}

/// One request the carrier handled: what it received and what it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub method: String,
    /// `udp:127.0.0.1:5060`
    pub source: String,
    /// The Request-URI as received.
    pub ruri: String,
    pub from: String,
    pub to: String,
    /// The digest username of the request's credentials, if any.
    pub auth_user: Option<String>,
    pub call_id: String,
    /// What the carrier did: `challenge`, `registered (asked expires 300)`, `relay to pstn
    /// 127.0.0.6:5062 (account trunk)`, `503 Service Unavailable (switch inv)`, `dropped
    /// (switch opt)`, `200 options`, `relay in-dialog`, ...
    pub outcome: String,
    /// When the harness read the line (within milliseconds of the request's arrival): the
    /// spacing of a PBX's REGISTER attempts, say.
    pub at: Instant,
}

/// A reply the carrier relayed back to the caller side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayedReply {
    pub method: String,
    pub status: u16,
    pub reason: String,
    pub call_id: String,
    pub at: Instant,
}

/// A running carrier.
pub struct Carrier {
    child: Option<Child>,
    /// The pipe whose closing stops Kamailio.
    lifeline: Option<ChildStdin>,
    dir: tempfile::TempDir,
    addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
    opts: CarrierOptions,
    /// Kamailio's output lines and when the harness read them.
    log: Arc<Mutex<Vec<(Instant, String)>>>,
    rpc_seq: AtomicU64,
    started_in: Duration,
}

/// The `kamailio` binary: on the PATH, else where Debian installs it (/usr/sbin is not on
/// every user's PATH).
fn kamailio_bin() -> anyhow::Result<PathBuf> {
    let on_path = std::env::var_os("PATH").map(|p| std::env::split_paths(&p).map(|d| d.join("kamailio")).collect::<Vec<_>>()).unwrap_or_default();
    on_path
        .into_iter()
        .chain(["/usr/sbin/kamailio", "/usr/local/sbin/kamailio"].map(PathBuf::from))
        .find(|p| p.is_file())
        .context("kamailio is not installed (Debian package `kamailio`; scripts/setup installs it)")
}

/// Kamailio's module directory.
fn module_dir() -> anyhow::Result<&'static str> {
    [
        "/usr/lib/x86_64-linux-gnu/kamailio/modules",
        "/usr/lib/aarch64-linux-gnu/kamailio/modules",
        "/usr/lib/kamailio/modules",
        "/usr/lib64/kamailio/modules",
        "/usr/local/lib64/kamailio/modules",
    ]
    .into_iter()
    .find(|d| Path::new(d).join("tm.so").is_file())
    .context("no Kamailio module directory with tm.so")
}

/// The stock reason phrase of a status the switches send.
fn reason(code: u16) -> &'static str {
    match code {
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        420 => "Bad Extension",
        480 => "Temporarily Unavailable",
        484 => "Address Incomplete",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        500 => "Server Internal Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => "Carrier Says So",
    }
}

/// Renders the configuration template.
fn render(opts: &CarrierOptions, port: u16, tls_port: u16, run_dir: &Path) -> anyhow::Result<String> {
    if opts.realm.is_empty() || !opts.realm.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-') {
        bail!("realm {:?}: letters, digits, dots and dashes only", opts.realm);
    }
    let template_path = workspace_root().join("tests").join("carrier").join("kamailio.cfg");
    let template = std::fs::read_to_string(&template_path).with_context(|| format!("reading {}", template_path.display()))?;
    let ms = |d: Duration| d.as_millis().max(100).to_string();
    let cfg = template
        .replace("@IP@", &opts.ip.to_string())
        .replace("@PORT@", &port.to_string())
        .replace("@TLS_PORT@", &tls_port.to_string())
        .replace("@MPATH@", module_dir()?)
        .replace("@RUNDIR@", &run_dir.display().to_string())
        .replace("@REALM@", &opts.realm)
        .replace("@ALGORITHM@", opts.digest.param())
        .replace("@QOP@", if opts.qop { "1" } else { "0" })
        .replace("@FR_TIMER@", &ms(opts.no_reply_timeout))
        .replace("@FR_INV_TIMER@", &ms(opts.ring_timeout));
    // every placeholder is filled (an @NAME@ left over is a template the harness forgot)
    for (i, _) in cfg.match_indices('@') {
        let rest = &cfg[i + 1..];
        if let Some(end) = rest.find('@') {
            let name = &rest[..end];
            if !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                bail!("tests/carrier/kamailio.cfg: placeholder @{name}@ is not filled in");
            }
        }
    }
    Ok(cfg)
}

// The shell between the test and Kamailio: it starts Kamailio, and terminates it when its
// standard input (a pipe from the test) reaches end of file — when the Carrier is dropped or
// the test process dies, however it dies. It exits with Kamailio's status.
const LIFELINE: &str = r#"exec 3<&0
"$@" 3<&- </dev/null &
k=$!
( read x <&3; kill -TERM $k 2>/dev/null ) &
w=$!
wait $k
rc=$?
kill $w 2>/dev/null
exit $rc"#;

impl Carrier {
    /// Starts Kamailio with `opts`, waits until its control socket answers, and loads the
    /// accounts, DIDs, IP trunks and PSTN routes.
    pub fn start(opts: CarrierOptions) -> anyhow::Result<Carrier> {
        let port = if opts.port == 0 { free_port(opts.ip) } else { opts.port };
        let dir = tempfile::Builder::new().prefix("carrier-").tempdir()?;
        let cfg_path = dir.path().join("kamailio.cfg");
        let tls_port = match &opts.tls {
            Some((chain, key)) => {
                let tls_port = loop {
                    let p = free_port(opts.ip);
                    if p != port {
                        break p;
                    }
                };
                std::fs::write(dir.path().join("cert.pem"), chain)?;
                std::fs::write(dir.path().join("key.pem"), key)?;
                let d = dir.path().display();
                std::fs::write(
                    dir.path().join("tls.cfg"),
                    format!(
                        "[server:default]\nmethod = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\ncertificate = {d}/cert.pem\nprivate_key = {d}/key.pem\n\n\
                         [client:default]\nmethod = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\n"
                    ),
                )?;
                tls_port
            }
            None => 0,
        };
        std::fs::write(&cfg_path, render(&opts, port, tls_port, dir.path())?)?;
        let bin = kamailio_bin()?;
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(LIFELINE)
            .arg("carrier")
            .arg(&bin)
            // foreground, log to stderr, 32 MiB shared and 4 MiB private memory per process,
            // pid file and run-time files in the temporary dir
            .args(["-DD", "-E", "-m", "32", "-M", "4"])
            .args(if tls_port != 0 { &["-A", "WITH_TLS"][..] } else { &[] })
            .arg("-f")
            .arg(&cfg_path)
            .arg("-Y")
            .arg(dir.path())
            .arg("-P")
            .arg(dir.path().join("kamailio.pid"))
            .current_dir(dir.path())
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let t0 = Instant::now();
        let mut child = cmd.spawn().with_context(|| format!("starting {}", bin.display()))?;
        let log = Arc::new(Mutex::new(Vec::new()));
        for pipe in [
            child.stdout.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            child.stderr.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if let Ok(mut l) = log.lock() {
                        l.push((Instant::now(), line));
                    }
                }
            });
        }
        let lifeline = child.stdin.take();
        let mut carrier = Carrier {
            child: Some(child),
            lifeline,
            dir,
            addr: SocketAddr::from((opts.ip, port)),
            tls_addr: (tls_port != 0).then(|| SocketAddr::from((opts.ip, tls_port))),
            opts,
            log,
            rpc_seq: AtomicU64::new(0),
            started_in: Duration::ZERO,
        };
        carrier.wait_ready()?;
        carrier.load()?;
        carrier.started_in = t0.elapsed();
        Ok(carrier)
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let t0 = Instant::now();
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.child = None;
                bail!("kamailio exited during start-up ({status}); log:\n{}", self.logs());
            }
            if self.dir.path().join("rpc.sock").exists() && self.rpc_timeout("core.version", json!([]), Duration::from_millis(500)).is_ok() {
                return Ok(());
            }
            if t0.elapsed() > CARRIER_START_TIMEOUT {
                bail!("kamailio did not answer on its control socket within {CARRIER_START_TIMEOUT:?}; log:\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn load(&self) -> anyhow::Result<()> {
        for a in self.opts.accounts.clone() {
            self.add_account(&a)?;
        }
        for t in self.opts.ip_trunks.clone() {
            self.add_ip_trunk(&t)?;
        }
        for ip in self.opts.pstn_sources.clone() {
            self.add_pstn_source(ip)?;
        }
        if let Some(uas) = self.opts.pstn_uas {
            self.route_pstn("", uas)?;
        }
        for (prefix, uas) in self.opts.pstn_routes.clone() {
            self.route_pstn(&prefix, uas)?;
        }
        Ok(())
    }

    /// The carrier's SIP address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its SIP-over-TLS address (with [`CarrierOptions::tls`]).
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// `127.0.0.5:<port>` (what a trunk's host/registrar field holds).
    pub fn sip(&self) -> String {
        self.addr.to_string()
    }

    pub fn realm(&self) -> &str {
        &self.opts.realm
    }

    pub fn options(&self) -> &CarrierOptions {
        &self.opts
    }

    /// How long start-up took (spawn to data loaded).
    pub fn startup_time(&self) -> Duration {
        self.started_in
    }

    /// Adds (or updates) an account and its DIDs.
    pub fn add_account(&self, a: &Account) -> anyhow::Result<()> {
        self.hset("acct", &format!("pw::{}", a.auth_user), &a.password)?;
        self.hset("acct", &format!("aor::{}", a.auth_user), &a.aor)?;
        for d in &a.dids {
            self.hset("didreg", d, &a.aor)?;
        }
        Ok(())
    }

    /// Removes an account's credentials (its bindings stay until they expire).
    pub fn remove_account(&self, auth_user: &str) -> anyhow::Result<()> {
        self.hdel("acct", &format!("pw::{auth_user}"))?;
        self.hdel("acct", &format!("aor::{auth_user}"))
    }

    /// Trusts `t.peer`'s IP as a customer and sends calls to its DIDs there.
    pub fn add_ip_trunk(&self, t: &IpTrunk) -> anyhow::Result<()> {
        self.hset("peer", &t.peer.ip().to_string(), "1")?;
        for d in &t.dids {
            self.hset("didip", d, &t.peer.to_string())?;
        }
        Ok(())
    }

    /// INVITEs from `ip` are PSTN calls to DIDs.
    pub fn add_pstn_source(&self, ip: Ipv4Addr) -> anyhow::Result<()> {
        self.hset("pstnsrc", &ip.to_string(), "1")
    }

    /// Customers' calls whose Request-URI user starts with `prefix` go to `uas` (`""`: the
    /// default route).
    pub fn route_pstn(&self, prefix: &str, uas: SocketAddr) -> anyhow::Result<()> {
        let key = if prefix.is_empty() { "default" } else { prefix };
        self.hset("pstn", key, &uas.to_string())
    }

    /// Flips a switch for every account.
    pub fn set(&self, switch: Switch) -> anyhow::Result<()> {
        self.set_scoped(None, switch)
    }

    /// Flips a `Register` or `Invite` switch for one account only (by its auth username); it
    /// wins over the carrier-wide one.
    pub fn set_for(&self, auth_user: &str, switch: Switch) -> anyhow::Result<()> {
        match switch {
            Switch::Register(_) | Switch::Invite(_) => self.set_scoped(Some(auth_user), switch),
            other => bail!("{other:?} is carrier-wide: use set()"),
        }
    }

    fn set_scoped(&self, acct: Option<&str>, switch: Switch) -> anyhow::Result<()> {
        let answer = |name: &str, a: Answer| -> anyhow::Result<()> {
            let key = match acct {
                Some(u) => format!("{name}::{u}"),
                None => name.to_owned(),
            };
            match a {
                Answer::Normal => self.hdel("sw", &key),
                Answer::Silence => self.hset("sw", &key, "0||0"),
                Answer::Reply(code) => self.hset("sw", &key, &format!("{code}|{}|0", reason(code))),
                Answer::ReplyRetryAfter(code, secs) => self.hset("sw", &key, &format!("{code}|{}|{secs}", reason(code))),
            }
        };
        match switch {
            Switch::Register(a) => answer("reg", a),
            Switch::Invite(a) => answer("inv", a),
            Switch::Options(a) => answer("opt", a),
            Switch::MinExpires(n) => self.rpc("cfg.seti", json!(["registrar", "min_expires", n])).map(drop),
            Switch::MaxExpires(n) => self.rpc("cfg.seti", json!(["registrar", "max_expires", n])).map(drop),
            Switch::DidInRequestUri(on) => {
                if on {
                    self.rpc("htable.seti", json!(["sw", "ruri_did", 1])).map(drop)
                } else {
                    self.hdel("sw", "ruri_did")
                }
            }
        }
    }

    fn hset(&self, table: &str, key: &str, value: &str) -> anyhow::Result<()> {
        self.rpc("htable.sets", json!([table, key, value])).map(drop)
    }

    fn hdel(&self, table: &str, key: &str) -> anyhow::Result<()> {
        // deleting a key that is not there is not an error here
        self.rpc("htable.delete", json!([table, key])).map(drop).or_else(|e| if format!("{e:#}").contains("not found") { Ok(()) } else { Err(e) })
    }

    /// The contacts registered for `aor` (empty when none).
    pub fn registered_contacts(&self, aor: &str) -> anyhow::Result<Vec<Contact>> {
        let r = match self.rpc("ul.lookup", json!(["location", aor])) {
            Ok(r) => r,
            Err(e) if format!("{e:#}").contains("AOR not found") => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let contacts = r["Contacts"].as_array().cloned().unwrap_or_default();
        Ok(contacts
            .into_iter()
            .map(|c| {
                let c = c["Contact"].clone();
                let s = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
                Contact {
                    uri: s("Address"),
                    expires: c["Expires"].as_i64().unwrap_or(-1),
                    call_id: s("Call-ID"),
                    cseq: c["CSeq"].as_i64().unwrap_or(-1),
                    user_agent: s("User-Agent"),
                    socket: s("Socket"),
                    raw: c,
                }
            })
            .collect())
    }

    /// Polls until `aor` has exactly `n` contacts; returns them.
    pub fn wait_registered(&self, aor: &str, n: usize, timeout: Duration) -> anyhow::Result<Vec<Contact>> {
        let t0 = Instant::now();
        loop {
            let c = self.registered_contacts(aor)?;
            if c.len() == n {
                return Ok(c);
            }
            if t0.elapsed() > timeout {
                bail!("{aor} has {} contacts at the carrier, not {n}: {c:?}\nevents: {:#?}", c.len(), self.events());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Removes `aor`'s bindings at the carrier (as if they had expired or the carrier had
    /// restarted).
    pub fn drop_registrations(&self, aor: &str) -> anyhow::Result<()> {
        match self.rpc("ul.rm", json!(["location", aor])) {
            Err(e) if !format!("{e:#}").contains("not found") => Err(e),
            _ => Ok(()),
        }
    }

    /// Everything Kamailio wrote to stdout and stderr so far.
    pub fn logs(&self) -> String {
        self.log.lock().map(|l| l.iter().map(|(_, line)| line.as_str()).collect::<Vec<_>>().join("\n")).unwrap_or_default()
    }

    /// The requests the carrier handled, in order.
    pub fn events(&self) -> Vec<Event> {
        let lines = self.log.lock().map(|l| l.clone()).unwrap_or_default();
        lines
            .iter()
            .filter_map(|(at, l)| {
                let rest = &l[l.find("CARRIER|")? + "CARRIER|".len()..];
                let f: Vec<&str> = rest.splitn(8, '|').collect();
                if f.len() < 8 {
                    return None;
                }
                Some(Event {
                    method: f[0].into(),
                    source: f[1].into(),
                    ruri: f[2].into(),
                    from: f[3].into(),
                    to: f[4].into(),
                    auth_user: Some(f[5]).filter(|u| *u != "<null>" && !u.is_empty()).map(str::to_owned),
                    call_id: f[6].into(),
                    outcome: f[7].into(),
                    at: *at,
                })
            })
            .collect()
    }

    /// The events of one method.
    pub fn events_of(&self, method: &str) -> Vec<Event> {
        self.events().into_iter().filter(|e| e.method == method).collect()
    }

    /// Waits for an event that satisfies `pred`; returns it.
    pub fn wait_event(&self, timeout: Duration, pred: impl Fn(&Event) -> bool) -> anyhow::Result<Event> {
        let t0 = Instant::now();
        loop {
            if let Some(e) = self.events().into_iter().find(&pred) {
                return Ok(e);
            }
            if t0.elapsed() > timeout {
                bail!("no such carrier event within {timeout:?}; events: {:#?}", self.events());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The replies the carrier relayed back (from the PSTN phone or the PBX), in order.
    pub fn relayed_replies(&self) -> Vec<RelayedReply> {
        let lines = self.log.lock().map(|l| l.clone()).unwrap_or_default();
        lines
            .iter()
            .filter_map(|(at, l)| {
                let rest = &l[l.find("CARRIER-REPLY|")? + "CARRIER-REPLY|".len()..];
                let f: Vec<&str> = rest.splitn(4, '|').collect();
                if f.len() < 4 {
                    return None;
                }
                Some(RelayedReply { method: f[0].into(), status: f[1].parse().ok()?, reason: f[2].into(), call_id: f[3].into(), at: *at })
            })
            .collect()
    }

    /// A JSON-RPC call to Kamailio (`htable.dump`, `ul.dump`, `tm.stats`, ...): its `result`.
    pub fn rpc(&self, method: &str, params: Value) -> anyhow::Result<Value> {
        self.rpc_timeout(method, params, Duration::from_secs(5))
    }

    fn rpc_timeout(&self, method: &str, params: Value, timeout: Duration) -> anyhow::Result<Value> {
        let n = self.rpc_seq.fetch_add(1, Ordering::Relaxed);
        let client = self.dir.path().join(format!("rpc-client-{n}.sock"));
        let sock = UnixDatagram::bind(&client).with_context(|| format!("binding {}", client.display()))?;
        let result = (|| {
            sock.set_read_timeout(Some(timeout))?;
            let req = json!({"jsonrpc": "2.0", "method": method, "params": params, "id": n});
            sock.send_to(req.to_string().as_bytes(), self.dir.path().join("rpc.sock"))?;
            let mut buf = vec![0u8; 1 << 20];
            let len = sock.recv(&mut buf).with_context(|| format!("no answer to {method} within {timeout:?}"))?;
            let v: Value = serde_json::from_slice(&buf[..len]).with_context(|| format!("answer to {method}: {}", String::from_utf8_lossy(&buf[..len])))?;
            if let Some(err) = v.get("error") {
                return Err(anyhow!("{method} {params}: {}", err["message"].as_str().unwrap_or(&err.to_string())));
            }
            Ok(v["result"].clone())
        })();
        let _ = std::fs::remove_file(&client);
        result
    }

    /// Kamailio's pid (the main process).
    pub fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.path().join("kamailio.pid")).ok()?.trim().parse().ok()
    }

    /// Whether Kamailio is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Stops Kamailio (SIGTERM through the lifeline; SIGKILL to its process group after 5 s).
    pub fn stop(&mut self) {
        drop(self.lifeline.take());
        if let Some(mut child) = self.child.take() {
            let t0 = Instant::now();
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if t0.elapsed() < Duration::from_secs(5) => std::thread::sleep(Duration::from_millis(10)),
                    _ => {
                        // the shell leads its own process group, Kamailio's processes in it
                        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).status();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
    }
}

impl Drop for Carrier {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("----- carrier (kamailio {}) log -----\n{}\n----- end of carrier log -----", self.addr, self.logs());
        }
    }
}

/// A call from the PSTN (`tests/sip/pstn_uac.xml`).
#[derive(Debug, Clone)]
pub struct PstnCall {
    /// The caller's address (one of the carrier's `pstn_sources`).
    pub from_ip: Ipv4Addr,
    pub did: String,
    /// The From user and display name.
    pub caller: String,
    pub caller_name: String,
    /// The P-Asserted-Identity URI to send, if any.
    pub pai: Option<String>,
    /// One more header line to send (`Remote-Party-ID: ...`, `Privacy: id`), if any.
    pub header: Option<String>,
    /// How long the call stays up after the answer before the caller hangs up.
    pub hold: Duration,
}

impl PstnCall {
    pub fn to(did: &str) -> PstnCall {
        PstnCall {
            from_ip: PSTN_IP,
            did: did.into(),
            caller: "+15550001111".into(),
            caller_name: "PSTN Caller".into(),
            pai: None,
            header: None,
            hold: Duration::from_millis(500),
        }
    }
}

/// Starts a SIPp PSTN caller through `carrier` (`extra`: more SIPp flags).
pub fn pstn_call(carrier: &Carrier, call: &PstnCall, extra: &[&str]) -> anyhow::Result<Sipp> {
    let pai = match &call.pai {
        Some(uri) => format!("P-Asserted-Identity: <{uri}>"),
        None => "X-No-PAI: 1".to_owned(),
    };
    let extra_header = call.header.clone().unwrap_or_else(|| "X-No-Extra: 1".to_owned());
    let hold = call.hold.as_millis().to_string();
    let mut args = vec![
        "-s",
        &call.did,
        "-key",
        "caller",
        &call.caller,
        "-key",
        "caller_name",
        &call.caller_name,
        "-key",
        "pai",
        &pai,
        "-key",
        "extra",
        &extra_header,
        "-d",
        &hold,
        "-m",
        "1",
    ];
    args.extend_from_slice(extra);
    sipp("pstn_uac.xml", (call.from_ip, free_port(call.from_ip)), Some(&carrier.sip()), &args)
}

/// Starts a SIPp phone on the PSTN side (`pstn_uas.xml`, `pstn_uas_press1.xml`,
/// `pstn_uas_busy.xml`, ...) on a free port of `ip`, for `calls` calls; returns it and its
/// address (a `pstn_uas` / `route_pstn` target).
pub fn pstn_phone(scenario: &str, ip: Ipv4Addr, calls: u32, extra: &[&str]) -> anyhow::Result<(Sipp, SocketAddr)> {
    let port = free_port(ip);
    let calls = calls.to_string();
    let mut args = vec!["-m", calls.as_str()];
    args.extend_from_slice(extra);
    let run = sipp(scenario, (ip, port), None, &args)?;
    Ok((run, SocketAddr::from((ip, port))))
}

/// Registers `account` at `carrier` with SIPp from a socket of its own on `contact`'s IP,
/// binding `contact` (a SIPp phone listening there, or any address) for `expires` seconds:
/// `register.xml` (which wants a 200) or `register_answer.xml` (any final answer, for the
/// test to read in the trace). `extra`: more SIPp flags (`-t t1` for TCP).
pub fn register_account(carrier: &Carrier, scenario: &str, account: &Account, contact: SocketAddr, expires: u32, extra: &[&str]) -> anyhow::Result<SippResult> {
    let ip = match contact.ip() {
        std::net::IpAddr::V4(ip) => ip,
        std::net::IpAddr::V6(_) => bail!("IPv4 contacts only"),
    };
    let tmp = tempfile::tempdir()?;
    let csv = users_csv(tmp.path(), &[(account.aor.clone(), account.password.clone())])?;
    let csv = csv.to_string_lossy().into_owned();
    let (cp, ex) = (contact.port().to_string(), expires.to_string());
    let mut args = vec!["-inf", &csv, "-au", &account.auth_user, "-ap", &account.password, "-key", "contact_port", &cp, "-key", "expires", &ex, "-m", "1"];
    args.extend_from_slice(extra);
    let run = sipp(scenario, (ip, free_port(ip)), Some(&carrier.sip()), &args)?;
    Ok(run.wait(Duration::from_secs(20)))
}

/// Sends one out-of-dialog OPTIONS from a socket of its own on `from_ip` and returns the
/// status of the final answer, or None when nothing came within `timeout` (the request is
/// retransmitted every 500 ms meanwhile, as a UAC does over UDP).
pub fn options_ping(carrier: SocketAddr, from_ip: Ipv4Addr, timeout: Duration) -> anyhow::Result<Option<u16>> {
    let sock = UdpSocket::bind((from_ip, 0))?;
    let local = sock.local_addr()?;
    let branch = format!("z9hG4bK-opt-{}-{}", std::process::id(), local.port());
    let msg = format!(
        "OPTIONS sip:{carrier} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch};rport\r\nFrom: <sip:ping@{local}>;tag=p{port}\r\nTo: <sip:{carrier}>\r\nCall-ID: opt-{port}-{pid}@{ip}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        port = local.port(),
        pid = std::process::id(),
        ip = local.ip(),
    );
    let t0 = Instant::now();
    let mut buf = [0u8; 4096];
    while t0.elapsed() < timeout {
        sock.send_to(msg.as_bytes(), carrier)?;
        let until = (t0.elapsed() + Duration::from_millis(500)).min(timeout);
        while t0.elapsed() < until {
            sock.set_read_timeout(Some((until - t0.elapsed()).max(Duration::from_millis(1))))?;
            let Ok((len, _)) = sock.recv_from(&mut buf) else { break };
            let text = String::from_utf8_lossy(&buf[..len]);
            let status = text.strip_prefix("SIP/2.0 ").and_then(|s| s.get(..3)).and_then(|s| s.parse::<u16>().ok());
            if let Some(code) = status
                && code >= 200
            {
                return Ok(Some(code));
            }
        }
    }
    Ok(None)
}
