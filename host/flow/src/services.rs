//! What the engine needs from the rest of the PBX besides the call: entity data
//! ([`EntityCache`]), presence ([`Directory`]), persistent per-node-type state ([`KvStore`])
//! and outbound HTTP ([`HttpClient`]). Each has an in-memory implementation here (tests, the
//! simulator); the `call`/`store` crates provide the live ones (registrar presence, the
//! `plugin_kv` table) and [`ReqwestClient`] is the live HTTP client.

use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::egress::Egress;
use crate::entity::EntityCache;

/// An extension's presence now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Presence {
    /// Devices registered now.
    pub registered_devices: u32,
    /// On a call now.
    pub in_call: bool,
    /// When its last call ended; `None` when it has had none since start-up.
    pub last_call_ended: Option<jiff::Timestamp>,
}

/// Presence of extensions (the registrar and the call table know it).
pub trait Directory: Send + Sync {
    /// The presence of an extension by entity id (`Presence::default()` for one that has
    /// never registered).
    fn presence(&self, extension_id: i64) -> Presence;
}

/// A directory with presence set by hand.
#[derive(Debug, Default)]
pub struct StaticDirectory {
    map: Mutex<HashMap<i64, Presence>>,
}

impl StaticDirectory {
    pub fn new() -> StaticDirectory {
        StaticDirectory::default()
    }
    /// Sets an extension's presence.
    pub fn set(&self, extension_id: i64, p: Presence) {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).insert(extension_id, p);
    }
}

impl Directory for StaticDirectory {
    fn presence(&self, extension_id: i64) -> Presence {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).get(&extension_id).cloned().unwrap_or_default()
    }
}

/// Why a kv operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    #[error("the value is not a decimal integer")]
    NotANumber,
    #[error("the key quota is used up")]
    QuotaExceeded,
    #[error("storage failed: {0}")]
    Failed(String),
}

/// Persistent key-value state, one namespace per node type. Limits on key and value size
/// and the key quota are enforced by the engine before it calls here; `count` is how it
/// learns the quota's use.
#[async_trait]
pub trait KvStore: Send + Sync {
    async fn get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, KvError>;
    async fn set(&self, namespace: &str, key: &str, value: &[u8]) -> Result<(), KvError>;
    async fn delete(&self, namespace: &str, key: &str) -> Result<(), KvError>;
    /// Atomically adds `delta` to the decimal integer under `key` (absent = 0), stores it and
    /// returns it.
    async fn increment(&self, namespace: &str, key: &str, delta: i64) -> Result<i64, KvError>;
    /// How many keys the namespace holds.
    async fn count(&self, namespace: &str) -> Result<u64, KvError>;
}

/// A kv store in memory.
#[derive(Debug, Default)]
pub struct MemoryKv {
    map: Mutex<BTreeMap<(String, String), Vec<u8>>>,
}

impl MemoryKv {
    pub fn new() -> MemoryKv {
        MemoryKv::default()
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), Vec<u8>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
    /// Everything, for inspection: ((namespace, key), value).
    pub fn dump(&self) -> Vec<((String, String), Vec<u8>)> {
        self.lock().iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

#[async_trait]
impl KvStore for MemoryKv {
    async fn get(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.lock().get(&(ns.to_string(), key.to_string())).cloned())
    }
    async fn set(&self, ns: &str, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.lock().insert((ns.to_string(), key.to_string()), value.to_vec());
        Ok(())
    }
    async fn delete(&self, ns: &str, key: &str) -> Result<(), KvError> {
        self.lock().remove(&(ns.to_string(), key.to_string()));
        Ok(())
    }
    async fn increment(&self, ns: &str, key: &str, delta: i64) -> Result<i64, KvError> {
        let mut m = self.lock();
        let k = (ns.to_string(), key.to_string());
        let current = match m.get(&k) {
            None => 0,
            Some(v) => std::str::from_utf8(v).ok().and_then(|s| s.trim().parse::<i64>().ok()).ok_or(KvError::NotANumber)?,
        };
        let next = current.wrapping_add(delta);
        m.insert(k, next.to_string().into_bytes());
        Ok(next)
    }
    async fn count(&self, ns: &str) -> Result<u64, KvError> {
        Ok(self.lock().keys().filter(|(n, _)| n == ns).count() as u64)
    }
}

/// An outbound request, after the engine checked the grant.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HttpRequest {
    pub method: String,
    pub url: url::Url,
    pub headers: Vec<(String, String)>,
    #[serde(serialize_with = "lossy_body")]
    pub body: Vec<u8>,
    pub timeout: Duration,
    /// Where the node may connect beyond the public internet and ports 80 and 443 (its
    /// grant): a live client checks every address it would connect to against it.
    #[serde(skip)]
    pub egress: Egress,
}

fn lossy_body<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&String::from_utf8_lossy(b))
}

/// A response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Why a request got no response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("no response in time")]
    Timeout,
    #[error("the response is larger than the limit")]
    TooLarge,
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The destination is not one the node may reach (its address or port).
    #[error("denied: {0}")]
    Denied(String),
    #[error("{0}")]
    Failed(String),
}

/// The largest response body a node gets.
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// Outbound HTTP.
#[async_trait]
pub trait HttpClient: Send + Sync {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, HttpError>;
}

/// Name resolution for the live HTTP client.
#[async_trait]
pub trait Resolver: Send + Sync {
    /// The addresses of a DNS name.
    async fn lookup(&self, name: &str) -> Result<Vec<IpAddr>, std::io::Error>;
}

/// The system's resolver (`getaddrinfo`: `/etc/hosts`, then DNS).
pub struct SystemResolver;

#[async_trait]
impl Resolver for SystemResolver {
    async fn lookup(&self, name: &str) -> Result<Vec<IpAddr>, std::io::Error> {
        let found = tokio::net::lookup_host((name, 0)).await?;
        Ok(found.map(|a| a.ip()).collect())
    }
}

/// reqwest's own resolver for the per-request clients: refuses every name. Every name a
/// request may reach is given to the client, already checked, with `resolve_to_addrs`;
/// anything else failing here means no lookup happens behind the check.
struct NoLookups;

impl reqwest::dns::Resolve for NoLookups {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let msg = format!("{} was not resolved and checked first", name.as_str());
        Box::pin(async move { Err(msg.into()) })
    }
}

/// Why the live HTTP client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// rustls refused the protocol versions.
    #[error("{0}")]
    Tls(#[source] rustls::Error),
    /// reqwest refused the configuration.
    #[error("{0}")]
    Build(#[source] reqwest::Error),
}

/// The live client: reqwest over rustls (ring, Mozilla's roots). Each request resolves its
/// host once ([`Resolver`]), keeps the addresses its grant allows ([`Egress::check_addr`]:
/// public ones, and non-public ones only in a granted network), and connects to exactly
/// those (a client per request, told the addresses; its own lookups fail), on port 80, 443
/// or a granted one. No redirects (a node sees the 3xx; following one could leave the
/// checked destination), no proxy from the environment, the request's own timeout over the
/// lookup and the whole exchange, and bodies cut off at [`MAX_RESPONSE_BYTES`].
pub struct ReqwestClient {
    tls: rustls::ClientConfig,
    resolver: Arc<dyn Resolver>,
}

impl ReqwestClient {
    /// A client with the system resolver. Fails only if TLS cannot be set up.
    pub fn new() -> Result<ReqwestClient, ClientError> {
        ReqwestClient::with_resolver(Arc::new(SystemResolver))
    }

    /// A client resolving names with `resolver`.
    pub fn with_resolver(resolver: Arc<dyn Resolver>) -> Result<ReqwestClient, ClientError> {
        let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(ClientError::Tls)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        // the configuration is checked once here, not on every request
        ReqwestClient::client(tls.clone()).build().map_err(ClientError::Build)?;
        Ok(ReqwestClient { tls, resolver })
    }

    fn client(tls: rustls::ClientConfig) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(NoLookups))
            .pool_max_idle_per_host(0)
            .user_agent(concat!("FlowPBX/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
    }

    /// The addresses a request may connect to: its host's (resolved once), each checked
    /// against the grant. `None` for an IP literal (connected to as it is, once checked).
    async fn destinations(&self, url: &url::Url, egress: &Egress) -> Result<Option<Vec<SocketAddr>>, HttpError> {
        let port = url.port_or_known_default().ok_or_else(|| HttpError::Invalid("the url has no port".into()))?;
        egress.check_port(port).map_err(|d| HttpError::Denied(d.to_string()))?;
        let name = match url.host() {
            None => return Err(HttpError::Invalid("the url has no host".into())),
            Some(url::Host::Ipv4(a)) => return egress.check_addr(a.into()).map(|_| None).map_err(|d| HttpError::Denied(d.to_string())),
            Some(url::Host::Ipv6(a)) => return egress.check_addr(a.into()).map(|_| None).map_err(|d| HttpError::Denied(d.to_string())),
            Some(url::Host::Domain(name)) => name,
        };
        let found = self.resolver.lookup(name).await.map_err(|e| HttpError::Failed(format!("resolving {name}: {e}")))?;
        let mut open: Vec<SocketAddr> = Vec::new();
        let mut refused = None;
        for ip in found {
            match egress.check_addr(ip) {
                Ok(ip) if !open.iter().any(|a| a.ip() == ip) => open.push(SocketAddr::new(ip, port)),
                Ok(_) => {}
                Err(d) => refused = Some(refused.unwrap_or(d)),
            }
        }
        match (open.is_empty(), refused) {
            (false, _) => Ok(Some(open)),
            (true, Some(d)) => Err(HttpError::Denied(format!("{name}: {d}"))),
            (true, None) => Err(HttpError::Failed(format!("{name} has no address"))),
        }
    }
}

/// An error and its sources, `: `-separated (reqwest's own text hides why a connection failed).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        next = cause.source();
    }
    s
}

#[async_trait]
impl HttpClient for ReqwestClient {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let method = reqwest::Method::from_bytes(req.method.as_bytes()).map_err(|_| HttpError::Invalid(format!("method {:?}", req.method)))?;
        let classify = |e: reqwest::Error| if e.is_timeout() { HttpError::Timeout } else { HttpError::Failed(error_chain(&e)) };
        let exchange = async {
            let mut client = ReqwestClient::client(self.tls.clone());
            if let (Some(addrs), Some(name)) = (self.destinations(&req.url, &req.egress).await?, req.url.host_str()) {
                client = client.resolve_to_addrs(name, &addrs);
            }
            let client = client.build().map_err(|e| HttpError::Failed(error_chain(&e)))?;
            let mut b = client.request(method, req.url).timeout(req.timeout).body(req.body);
            for (k, v) in &req.headers {
                b = b.header(k.as_str(), v.as_str());
            }
            let mut resp = b.send().await.map_err(classify)?;
            let status = resp.status().as_u16();
            let headers = resp.headers().iter().map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).to_string())).collect();
            if resp.content_length().is_some_and(|n| n > MAX_RESPONSE_BYTES as u64) {
                return Err(HttpError::TooLarge);
            }
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(classify)? {
                if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    return Err(HttpError::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(HttpResponse { status, headers, body })
        };
        // reqwest's timeout covers its exchange, but the lookup and the body loop are ours:
        // bound them too.
        tokio::time::timeout(req.timeout, exchange).await.unwrap_or(Err(HttpError::Timeout))
    }
}

/// What the engine uses besides the call. Cheap to clone.
#[derive(Clone)]
pub struct Services {
    pub entities: Arc<EntityCache>,
    pub directory: Arc<dyn Directory>,
    pub kv: Arc<dyn KvStore>,
    pub http: Arc<dyn HttpClient>,
}

impl Services {
    /// In-memory services with an empty entity cache, no presence, memory kv and an HTTP
    /// client that refuses everything: for tests.
    pub fn in_memory() -> Services {
        Services { entities: Arc::new(EntityCache::new()), directory: Arc::new(StaticDirectory::new()), kv: Arc::new(MemoryKv::new()), http: Arc::new(NoHttp) }
    }
}

/// An HTTP client that fails every request (no network configured).
pub struct NoHttp;

#[async_trait]
impl HttpClient for NoHttp {
    async fn send(&self, _req: HttpRequest) -> Result<HttpResponse, HttpError> {
        Err(HttpError::Failed("outbound HTTP is not available here".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_kv_increments_atomically_and_rejects_non_numbers() {
        let kv = Arc::new(MemoryKv::new());
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let kv = kv.clone();
            tasks.push(tokio::spawn(async move { kv.increment("ns", "n", 1).await.unwrap() }));
        }
        let mut got = Vec::new();
        for t in tasks {
            got.push(t.await.unwrap());
        }
        got.sort();
        assert_eq!(got, (1..=50).collect::<Vec<_>>());
        kv.set("ns", "s", b"abc").await.unwrap();
        assert_eq!(kv.increment("ns", "s", 1).await, Err(KvError::NotANumber));
        assert_eq!(kv.count("ns").await.unwrap(), 2);
        assert_eq!(kv.count("other").await.unwrap(), 0);
        kv.delete("ns", "s").await.unwrap();
        assert_eq!(kv.get("ns", "s").await.unwrap(), None);
    }

    /// A one-shot HTTP server on 127.0.0.1 answering with `response` after `delay`.
    async fn serve(response: Vec<u8>, delay: Duration) -> std::net::SocketAddr {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            tokio::time::sleep(delay).await;
            let _ = s.write_all(&response).await;
        });
        addr
    }

    fn get(addr: std::net::SocketAddr, timeout_ms: u64) -> HttpRequest {
        HttpRequest {
            method: "GET".into(),
            url: format!("http://{addr}/x").parse().unwrap(),
            headers: vec![("x-test".into(), "1".into())],
            body: vec![],
            timeout: Duration::from_millis(timeout_ms),
            egress: Egress { networks: vec!["127.0.0.0/8".parse().unwrap()], ports: vec![addr.port()] },
        }
    }

    #[tokio::test]
    async fn the_live_client_reads_a_response_times_out_and_refuses_huge_bodies() {
        let c = ReqwestClient::new().unwrap();
        let addr = serve(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-a: b\r\n\r\nhi".to_vec(), Duration::ZERO).await;
        let r = c.send(get(addr, 2000)).await.unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hi"[..]));
        assert!(r.headers.contains(&("x-a".into(), "b".into())));

        let addr = serve(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".to_vec(), Duration::from_secs(5)).await;
        assert_eq!(c.send(get(addr, 200)).await, Err(HttpError::Timeout));

        let huge = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", MAX_RESPONSE_BYTES + 1).into_bytes();
        let addr = serve(huge, Duration::ZERO).await;
        assert_eq!(c.send(get(addr, 2000)).await, Err(HttpError::TooLarge));

        let addr = serve(b"HTTP/1.1 302 Found\r\nlocation: http://elsewhere.test/\r\ncontent-length: 0\r\n\r\n".to_vec(), Duration::ZERO).await;
        assert_eq!(c.send(get(addr, 2000)).await.unwrap().status, 302);
    }
}
