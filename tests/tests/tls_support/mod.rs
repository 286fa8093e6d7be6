//! What the TLS tests share: test CAs made with rcgen, HTTPS clients that trust them and
//! resolve the test's names to 127.0.0.1, the certificate a server really presents, and
//! Pebble (Debian `pebble`, Let's Encrypt's ACME test server) with `pebble-challtestsrv` as
//! its DNS, both on 127.0.0.1 with free ports.
//!
//! Pebble and challtestsrv run under a shell that stops them when the test's pipe to it
//! closes (the handle dropped, or the test process dying), as the carrier rig does.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair};
use serde_json::{json, Value};
use sha2::Digest;

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    let _ = flowpbx_tests::http_builder(); // installs the process's provider once
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A test CA.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pub pem: String,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().expect("key");
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        p.distinguished_name = dn;
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = p.self_signed(&key).expect("CA");
        TestCa { issuer: Issuer::new(p, key), pem: cert.pem() }
    }

    /// A leaf for `names` valid from `from_days` to `to_days` (relative to now): (chain, key).
    pub fn issue(&self, names: &[&str], from_days: i64, to_days: i64) -> (String, String) {
        let key = KeyPair::generate().expect("key");
        let mut p = CertificateParams::new(names.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).expect("names");
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, names[0]);
        p.distinguished_name = dn;
        let now = time::OffsetDateTime::now_utc();
        p.not_before = now + time::Duration::days(from_days);
        p.not_after = now + time::Duration::days(to_days);
        let cert = p.signed_by(&key, &self.issuer).expect("leaf");
        (cert.pem(), key.serialize_pem())
    }
}

/// A rustls client configuration trusting `root_pem` only.
pub fn client_config(root_pem: &str) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(root_pem.as_bytes()) {
        roots.add(c.expect("root PEM")).expect("root");
    }
    rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

use rustls::pki_types::pem::PemObject;

/// A reqwest client trusting `root_pem`, resolving `name` to 127.0.0.1, keeping cookies,
/// following no redirect (the tests look at them).
pub fn https_client(root_pem: &str, name: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(client_config(root_pem))
        .resolve(name, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// SHA-256 (hex) of the certificate the server on `port` presents for `sni`, checked against
/// `root_pem` (a handshake that does not verify is an error).
pub fn served_fingerprint(port: u16, sni: &str, root_pem: &str) -> anyhow::Result<String> {
    let name = rustls::pki_types::ServerName::try_from(sni.to_owned())?;
    let mut conn = rustls::ClientConnection::new(Arc::new(client_config(root_pem)), name)?;
    let mut tcp = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)?;
    }
    let leaf = conn.peer_certificates().and_then(|c| c.first()).context("no certificate")?;
    Ok(hex(&sha2::Sha256::digest(leaf.as_ref())))
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A child under `sh`, stopped when the pipe to the shell closes.
pub struct Supervised {
    child: Child,
    _stdin: ChildStdin,
    pub log: PathBuf,
}

impl Supervised {
    fn spawn(program: &str, args: &[String], env: &[(&str, &str)], log: PathBuf) -> anyhow::Result<Supervised> {
        let script = r#"prog="$1"; shift; "$prog" "$@" & pid=$!; cat > /dev/null; kill $pid 2>/dev/null; wait $pid"#;
        let out = std::fs::File::create(&log)?;
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(script).arg("sh").arg(program).args(args).stdin(Stdio::piped()).stdout(out.try_clone()?).stderr(out);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().with_context(|| format!("starting {program}"))?;
        let stdin = child.stdin.take().context("stdin")?;
        Ok(Supervised { child, _stdin: stdin, log })
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        // closing stdin (dropped after this) stops the shell's child; do not wait for long
        let _ = self.child.try_wait();
    }
}

fn wait_port(port: u16, what: &str, proc: &Supervised) -> anyhow::Result<()> {
    let t0 = Instant::now();
    while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
        if t0.elapsed() > Duration::from_secs(15) {
            bail!("{what} did not listen on {port}; log:\n{}", proc.logs());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// pebble-challtestsrv as a DNS server: every name is 127.0.0.1 (A) and has no AAAA, unless
/// set otherwise through its management API.
pub struct ChallTestSrv {
    pub dns: SocketAddr,
    pub management: u16,
    proc: Supervised,
}

impl ChallTestSrv {
    pub fn start(dir: &Path) -> anyhow::Result<ChallTestSrv> {
        let dns_port = flowpbx_tests::free_tcp_port()?;
        let management = flowpbx_tests::free_tcp_port()?;
        let args = [
            "-dns01".to_owned(),
            format!("127.0.0.1:{dns_port}"),
            "-management".into(),
            format!("127.0.0.1:{management}"),
            "-http01".into(),
            String::new(),
            "-https01".into(),
            String::new(),
            "-tlsalpn01".into(),
            String::new(),
            "-defaultIPv4".into(),
            "127.0.0.1".into(),
            "-defaultIPv6".into(),
            String::new(),
        ];
        let proc = Supervised::spawn("pebble-challtestsrv", &args, &[], dir.join("challtestsrv.log"))?;
        wait_port(management, "pebble-challtestsrv", &proc)?;
        Ok(ChallTestSrv { dns: SocketAddr::from((Ipv4Addr::LOCALHOST, dns_port)), management, proc })
    }

    /// POSTs JSON to the management API.
    pub async fn manage(&self, path: &str, body: Value) -> anyhow::Result<()> {
        let r = flowpbx_tests::http_builder().build()?.post(format!("http://127.0.0.1:{}{path}", self.management)).json(&body).send().await?;
        if !r.status().is_success() {
            bail!("challtestsrv {path}: {}", r.status());
        }
        Ok(())
    }

    /// `host` answers A queries with `ip`.
    pub async fn add_a(&self, host: &str, ip: &str) -> anyhow::Result<()> {
        self.manage("/add-a", json!({"host": format!("{host}."), "addresses": [ip]})).await
    }

    pub fn logs(&self) -> String {
        self.proc.logs()
    }
}

/// Pebble on 127.0.0.1, validating HTTP-01 on `http_port` and TLS-ALPN-01 on `tls_port`,
/// with challtestsrv as its DNS and its own HTTPS certificate from a test CA.
pub struct Pebble {
    pub dir: tempfile::TempDir,
    pub directory: String,
    /// The test CA Pebble's own HTTPS (the directory, management) is signed by, as a file.
    pub api_root: PathBuf,
    pub api_root_pem: String,
    pub management: u16,
    pub dns: ChallTestSrv,
    proc: Supervised,
}

impl Pebble {
    pub fn start(http_port: u16, tls_port: u16) -> anyhow::Result<Pebble> {
        let dir = tempfile::Builder::new().prefix("flowpbx-pebble-").tempdir()?;
        let ca = TestCa::new("Pebble API test CA");
        let (cert, key) = ca.issue(&["localhost", "127.0.0.1"], -1, 30);
        std::fs::write(dir.path().join("api-cert.pem"), &cert)?;
        std::fs::write(dir.path().join("api-key.pem"), &key)?;
        let api_root = dir.path().join("api-root.pem");
        std::fs::write(&api_root, &ca.pem)?;
        let listen = flowpbx_tests::free_tcp_port()?;
        let management = flowpbx_tests::free_tcp_port()?;
        let config = json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{listen}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": dir.path().join("api-cert.pem"),
            "privateKey": dir.path().join("api-key.pem"),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        let config_path = dir.path().join("pebble-config.json");
        std::fs::write(&config_path, serde_json::to_vec_pretty(&config)?)?;
        let dns = ChallTestSrv::start(dir.path())?;
        let args = ["-config".to_owned(), config_path.display().to_string(), "-dnsserver".into(), dns.dns.to_string()];
        // no random sleeps before validating, no rejected nonces, a fresh validation for every
        // order (a renewal is validated again)
        let env = [("PEBBLE_VA_NOSLEEP", "1"), ("PEBBLE_WFE_NONCEREJECT", "0"), ("PEBBLE_AUTHZREUSE", "0")];
        let proc = Supervised::spawn("pebble", &args, &env, dir.path().join("pebble.log"))?;
        wait_port(listen, "pebble", &proc)?;
        wait_port(management, "pebble's management interface", &proc)?;
        Ok(Pebble { directory: format!("https://127.0.0.1:{listen}/dir"), api_root, api_root_pem: ca.pem, management, dns, proc, dir })
    }

    /// The root of the certificates Pebble issues (made anew at every start).
    pub async fn issuing_root(&self) -> anyhow::Result<String> {
        let c = reqwest::Client::builder().use_preconfigured_tls(client_config(&self.api_root_pem)).build()?;
        let r = c.get(format!("https://127.0.0.1:{}/roots/0", self.management)).send().await?;
        if !r.status().is_success() {
            bail!("pebble roots/0: {}", r.status());
        }
        Ok(r.text().await?)
    }

    pub fn logs(&self) -> String {
        format!("--- pebble ---\n{}\n--- challtestsrv ---\n{}", self.proc.logs(), self.dns.logs())
    }
}

/// Reads a whole HTTP/1.0 exchange over a plain socket (for a request reqwest would not
/// send as it is).
pub fn raw_http(port: u16, request: &str) -> anyhow::Result<String> {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(request.as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}
