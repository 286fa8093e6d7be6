//! Digest authentication (RFC 7616, RFC 2617), both sides.
//!
//! Server side: [`DigestServer`] issues challenges whose nonces are verifiable without state
//! (a timestamp and a salt, MACed with HMAC-SHA-256 together with the client's IP address
//! under a key the caller provides), verifies [`Credentials`] against a stored HA1 the caller
//! looks up, reports expired nonces as [`AuthError::Stale`] (answer with `stale=true`), and
//! refuses a nonce-count seen before using a [`ReplayGuard`] the caller owns.
//!
//! Client side: [`Challenge::parse`] reads a `WWW-Authenticate`/`Proxy-Authenticate` value and
//! [`Challenge::authorization`] computes the matching `Authorization` value.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write;
use std::net::IpAddr;
use std::time::Duration;

use hmac::{Hmac, Mac};
use md5::Md5;
use sha2::{Digest, Sha256};

use crate::ids::IdGenerator;
use crate::msg::{split_list, unquote, HeaderName, Message};
use crate::time::Instant;

/// Why authentication failed. Every case is answered with a new challenge (401/407); only
/// [`AuthError::Stale`] sets `stale=true` in it.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credentials, not Digest, or a required parameter is missing.
    #[error("malformed credentials")]
    Malformed,
    /// The credentials are for another realm.
    #[error("wrong realm")]
    WrongRealm,
    /// An algorithm other than MD5, SHA-256 and their -sess variants.
    #[error("unsupported algorithm")]
    UnsupportedAlgorithm,
    /// The nonce was not issued by us (or for another address).
    #[error("invalid nonce")]
    InvalidNonce,
    /// The nonce was ours but has expired: challenge again with `stale=true`.
    #[error("stale nonce")]
    Stale,
    /// The response does not match: wrong password (or wrong user).
    #[error("wrong credentials")]
    WrongResponse,
    /// This nonce-count was already used with this nonce.
    #[error("replayed nonce count")]
    Replay,
}

/// A digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// MD5 (RFC 2617; what most phones use).
    Md5,
    /// MD5-sess.
    Md5Sess,
    /// SHA-256 (RFC 7616).
    Sha256,
    /// SHA-256-sess.
    Sha256Sess,
}

impl Algorithm {
    /// The token as written in headers.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
        }
    }

    /// Reads the token (case-insensitive); a missing algorithm means MD5.
    pub fn parse(s: Option<&str>) -> Option<Algorithm> {
        let Some(s) = s else { return Some(Algorithm::Md5) };
        [Algorithm::Md5, Algorithm::Md5Sess, Algorithm::Sha256, Algorithm::Sha256Sess].into_iter().find(|a| a.as_str().eq_ignore_ascii_case(s))
    }

    /// The algorithm whose HA1 the store keeps for this one (MD5 for MD5-sess, ...).
    pub fn base(self) -> Algorithm {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => Algorithm::Md5,
            Algorithm::Sha256 | Algorithm::Sha256Sess => Algorithm::Sha256,
        }
    }

    fn is_sess(self) -> bool {
        matches!(self, Algorithm::Md5Sess | Algorithm::Sha256Sess)
    }

    /// Lowercase hex of the hash of `parts` joined by `:`.
    fn hash(self, parts: &[&[u8]]) -> String {
        fn run<D: Digest>(parts: &[&[u8]]) -> String {
            let mut d = D::new();
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    d.update(b":");
                }
                d.update(p);
            }
            hex(&d.finalize())
        }
        match self.base() {
            Algorithm::Md5 => run::<Md5>(parts),
            _ => run::<Sha256>(parts),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn unhex(s: &str, out: &mut [u8]) -> Option<()> {
    if s.len() != out.len() * 2 {
        return None;
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(())
}

/// Constant-time comparison, so a timing attack cannot find a response byte by byte.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// HA1 = H(username:realm:password), lowercase hex: what the store keeps (encrypted) per
/// extension and algorithm.
pub fn ha1(algorithm: Algorithm, username: &str, realm: &str, password: &str) -> String {
    algorithm.base().hash(&[username.as_bytes(), realm.as_bytes(), password.as_bytes()])
}

/// `key=value` pairs of a Digest challenge or credentials.
#[derive(Debug, Clone, Copy)]
struct DigestParams<'a>(&'a str);

impl<'a> DigestParams<'a> {
    fn parse(value: &'a str) -> Option<DigestParams<'a>> {
        let v = value.trim();
        let scheme_end = v.find(|c: char| c.is_ascii_whitespace())?;
        if !v[..scheme_end].eq_ignore_ascii_case("Digest") {
            return None;
        }
        Some(DigestParams(v[scheme_end..].trim_start()))
    }

    fn raw(&self, name: &str) -> Option<&'a str> {
        split_list(self.0).find_map(|p| {
            let (n, v) = p.split_once('=')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    fn get(&self, name: &str) -> Option<std::borrow::Cow<'a, str>> {
        self.raw(name).map(unquote)
    }
}

/// Digest credentials from an `Authorization` or `Proxy-Authorization` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The realm.
    pub realm: String,
    /// The nonce being answered.
    pub nonce: String,
    /// The digest-uri.
    pub uri: String,
    /// The response, lowercase hex.
    pub response: String,
    /// The algorithm.
    pub algorithm: Algorithm,
    /// `qop` (`auth`), absent for RFC 2069 clients.
    pub qop: Option<String>,
    /// The client nonce (with qop or -sess).
    pub cnonce: Option<String>,
    /// The nonce count (with qop).
    pub nc: Option<u32>,
    /// The opaque value, echoed.
    pub opaque: Option<String>,
}

impl Credentials {
    /// Parses a credentials value (`Digest username="..", ...`).
    pub fn parse(value: &str) -> Result<Credentials, AuthError> {
        let p = DigestParams::parse(value).ok_or(AuthError::Malformed)?;
        let req = |n: &str| p.get(n).map(|v| v.into_owned()).ok_or(AuthError::Malformed);
        let algorithm = Algorithm::parse(p.get("algorithm").as_deref()).ok_or(AuthError::UnsupportedAlgorithm)?;
        let qop = p.get("qop").map(|q| q.into_owned());
        let nc = match p.get("nc") {
            Some(nc) => Some(u32::from_str_radix(&nc, 16).map_err(|_| AuthError::Malformed)?),
            None => None,
        };
        let cnonce = p.get("cnonce").map(|c| c.into_owned());
        if qop.is_some() && (nc.is_none() || cnonce.is_none()) {
            return Err(AuthError::Malformed);
        }
        if algorithm.is_sess() && cnonce.is_none() {
            return Err(AuthError::Malformed);
        }
        Ok(Credentials {
            username: req("username")?,
            realm: req("realm")?,
            nonce: req("nonce")?,
            uri: req("uri")?,
            response: req("response")?.to_ascii_lowercase(),
            algorithm,
            qop,
            cnonce,
            nc,
            opaque: p.get("opaque").map(|o| o.into_owned()),
        })
    }

    /// The credentials of `msg` in `header` (Authorization or Proxy-Authorization) for
    /// `realm`; the first Digest value for that realm wins.
    pub fn from_message(msg: &Message, header: HeaderName, realm: &str) -> Result<Credentials, AuthError> {
        let mut found = Err(AuthError::Malformed);
        for v in msg.headers(header) {
            match Credentials::parse(v) {
                Ok(c) if c.realm == realm => return Ok(c),
                Ok(_) => found = Err(AuthError::WrongRealm),
                Err(e) if found.is_err() => found = Err(e),
                Err(_) => {}
            }
        }
        found
    }
}

/// Computes a digest response (RFC 7616 §3.4.1).
fn compute_response(
    algorithm: Algorithm,
    ha1_hex: &str,
    nonce: &str,
    cnonce: Option<&str>,
    nc: Option<u32>,
    qop: Option<&str>,
    method: &str,
    uri: &str,
) -> String {
    let ha1 = if algorithm.is_sess() { algorithm.hash(&[ha1_hex.as_bytes(), nonce.as_bytes(), cnonce.unwrap_or("").as_bytes()]) } else { ha1_hex.to_owned() };
    let ha2 = algorithm.hash(&[method.as_bytes(), uri.as_bytes()]);
    match qop {
        Some(q) => {
            let nc = format!("{:08x}", nc.unwrap_or(0));
            algorithm.hash(&[ha1.as_bytes(), nonce.as_bytes(), nc.as_bytes(), cnonce.unwrap_or("").as_bytes(), q.as_bytes(), ha2.as_bytes()])
        }
        None => algorithm.hash(&[ha1.as_bytes(), nonce.as_bytes(), ha2.as_bytes()]),
    }
}

/// Nonces are 64 hex characters: 8 bytes of issue time (ms since the driver's epoch), 8 bytes
/// of salt, 16 bytes of HMAC-SHA-256 over both and the client's IP address.
const NONCE_LEN: usize = 64;

/// The server side: challenges and verification. Stateless except for the caller-owned
/// [`ReplayGuard`].
#[derive(Clone)]
pub struct DigestServer {
    /// Invariant: secret; never logged. Rotating it invalidates every outstanding nonce.
    key: [u8; 32],
    realm: String,
    nonce_ttl: Duration,
}

impl std::fmt::Debug for DigestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestServer").field("realm", &self.realm).field("nonce_ttl", &self.nonce_ttl).finish_non_exhaustive()
    }
}

/// A verified nonce: what [`ReplayGuard`] tracks.
type NonceId = [u8; 16];

impl DigestServer {
    /// A server for `realm` with a secret MAC key and a nonce lifetime (300 s is usual).
    /// Quotes, backslashes and control characters cannot stand in a realm written into a
    /// quoted challenge: they are dropped.
    pub fn new(key: [u8; 32], realm: impl Into<String>, nonce_ttl: Duration) -> Self {
        let mut realm = realm.into();
        realm.retain(|c| !c.is_control() && c != '"' && c != '\\');
        DigestServer { key, realm, nonce_ttl }
    }

    /// The realm.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    fn mac(&self, id: &NonceId, ip: IpAddr) -> [u8; 16] {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).unwrap_or_else(|_| {
            // HMAC accepts keys of any length; this branch cannot be taken.
            <Hmac<Sha256> as Mac>::new_from_slice(&[0u8; 32]).expect("32-byte HMAC key")
        });
        m.update(id);
        match ip {
            IpAddr::V4(a) => m.update(&a.octets()),
            IpAddr::V6(a) => m.update(&a.octets()),
        }
        let full = m.finalize().into_bytes();
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        out
    }

    /// A fresh nonce for a client at `ip`.
    pub fn nonce(&self, now: Instant, ip: IpAddr, ids: &mut IdGenerator) -> String {
        let mut id: NonceId = [0; 16];
        let ms = u64::try_from(now.since_epoch().as_millis()).unwrap_or(u64::MAX);
        id[..8].copy_from_slice(&ms.to_be_bytes());
        id[8..].copy_from_slice(&ids.bytes16()[..8]);
        let mac = self.mac(&id, ip);
        let mut s = hex(&id);
        s.push_str(&hex(&mac));
        s
    }

    /// One challenge value for WWW-Authenticate (401) or Proxy-Authenticate (407), `qop=auth`,
    /// with `stale=true` when answering [`AuthError::Stale`].
    pub fn challenge(&self, now: Instant, ip: IpAddr, ids: &mut IdGenerator, algorithm: Algorithm, stale: bool) -> String {
        let nonce = self.nonce(now, ip, ids);
        let mut v = String::with_capacity(160);
        let _ = write!(v, "Digest realm=\"{}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"", self.realm, algorithm.as_str());
        if stale {
            v.push_str(", stale=true");
        }
        v
    }

    /// Adds the challenges to a 401/407 response: SHA-256 first, then MD5 (RFC 7616 §3.7, so
    /// clients pick the strongest they know), with the same nonce.
    pub fn add_challenges(&self, resp: &mut Message, now: Instant, ip: IpAddr, ids: &mut IdGenerator, stale: bool) {
        let header = if resp.status() == Some(407) { HeaderName::ProxyAuthenticate } else { HeaderName::WwwAuthenticate };
        let nonce = self.nonce(now, ip, ids);
        for alg in [Algorithm::Sha256, Algorithm::Md5] {
            let mut v = format!("Digest realm=\"{}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"", self.realm, alg.as_str());
            if stale {
                v.push_str(", stale=true");
            }
            // the realm was made writable by `DigestServer::new`
            resp.push_copied(header, &v);
        }
    }

    /// Verifies credentials for a request with `method` from `ip`, against `ha1_hex` — the
    /// stored HA1 for `creds.username` and `creds.algorithm.base()`.
    ///
    /// Order of checks: realm, nonce MAC (bound to `ip`), nonce age ([`AuthError::Stale`]),
    /// response, then nonce-count replay (recorded only when everything else passed).
    pub fn verify(&self, now: Instant, ip: IpAddr, method: &str, creds: &Credentials, ha1_hex: &str, replay: &mut ReplayGuard) -> Result<(), AuthError> {
        if creds.realm != self.realm {
            return Err(AuthError::WrongRealm);
        }
        let (id, issued) = self.check_nonce(&creds.nonce, ip)?;
        let age = now.since_epoch().checked_sub(issued).ok_or(AuthError::InvalidNonce)?;
        if age > self.nonce_ttl {
            return Err(AuthError::Stale);
        }
        if creds.qop.as_deref().is_some_and(|q| !q.eq_ignore_ascii_case("auth")) {
            return Err(AuthError::Malformed);
        }
        let expected = compute_response(creds.algorithm, ha1_hex, &creds.nonce, creds.cnonce.as_deref(), creds.nc, creds.qop.as_deref(), method, &creds.uri);
        if !ct_eq(expected.as_bytes(), creds.response.as_bytes()) {
            return Err(AuthError::WrongResponse);
        }
        // Without qop (RFC 2069 clients) there is no nonce-count: the nonce is good for one
        // request, recorded as count 1, so the same response cannot be replayed.
        replay.check_and_record(id, issued, creds.nc.unwrap_or(1), now, self.nonce_ttl)?;
        Ok(())
    }

    fn check_nonce(&self, nonce: &str, ip: IpAddr) -> Result<(NonceId, Duration), AuthError> {
        if nonce.len() != NONCE_LEN {
            return Err(AuthError::InvalidNonce);
        }
        let mut id: NonceId = [0; 16];
        let mut mac = [0u8; 16];
        unhex(nonce.get(..32).ok_or(AuthError::InvalidNonce)?, &mut id).ok_or(AuthError::InvalidNonce)?;
        unhex(nonce.get(32..).ok_or(AuthError::InvalidNonce)?, &mut mac).ok_or(AuthError::InvalidNonce)?;
        if !ct_eq(&self.mac(&id, ip), &mac) {
            return Err(AuthError::InvalidNonce);
        }
        let mut ms = [0u8; 8];
        ms.copy_from_slice(&id[..8]);
        Ok((id, Duration::from_millis(u64::from_be_bytes(ms))))
    }
}

/// Whether the digest `uri` of the credentials names the request's Request-URI (RFC 2617
/// §3.2.2.5): the same text, or a SIP URI with the same scheme and host, the same port when
/// both write one, and the same user part when the digest's has one (parameters aside).
/// Credentials computed for another URI are someone else's request: above all another user
/// part (another number dialled). Two leniencies keep real clients working: SIPp writes
/// `sip:host:port` (no user, the port it sent to) as the digest uri of every request, and a
/// port written on one side only names the same server.
pub fn digest_uri_matches(digest_uri: &str, request_uri: &str) -> bool {
    use crate::msg::Uri;
    if digest_uri.eq_ignore_ascii_case(request_uri) {
        return true;
    }
    match (Uri::parse(digest_uri), Uri::parse(request_uri)) {
        (Some(Uri::Sip(a)), Some(Uri::Sip(b))) => {
            let ports_agree = match (a.port, b.port) {
                (Some(x), Some(y)) => x == y,
                _ => true,
            };
            let users_agree = a.user.is_none() || a.user_unescaped() == b.user_unescaped();
            a.secure == b.secure && users_agree && a.host.same_as(&b.host) && ports_agree
        }
        _ => false,
    }
}

/// The nonce-counts seen per nonce, bounded in size: a request whose `nc` is not higher than
/// the last accepted one for its nonce is a replay.
///
/// Entries older than the nonce lifetime are dropped. When full, the oldest entry is evicted
/// and every nonce issued up to it is then refused as stale (the client simply re-registers
/// with a fresh nonce), so eviction never opens a replay window.
#[derive(Debug)]
pub struct ReplayGuard {
    capacity: usize,
    seen: HashMap<NonceId, u32>,
    order: VecDeque<(Duration, NonceId)>,
    /// Nonces issued at or before this time that are not in `seen` are refused.
    floor: Option<Duration>,
}

impl ReplayGuard {
    /// A guard remembering at most `capacity` nonces (a few per active device is plenty).
    pub fn new(capacity: usize) -> Self {
        ReplayGuard { capacity: capacity.max(1), seen: HashMap::new(), order: VecDeque::new(), floor: None }
    }

    /// How many nonces are tracked.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no nonce is tracked.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    fn check_and_record(&mut self, id: NonceId, issued: Duration, nc: u32, now: Instant, ttl: Duration) -> Result<(), AuthError> {
        while let Some(&(t, old)) = self.order.front() {
            if now.since_epoch().saturating_sub(t) <= ttl {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&old);
        }
        match self.seen.get_mut(&id) {
            Some(last) if nc <= *last => Err(AuthError::Replay),
            Some(last) => {
                *last = nc;
                Ok(())
            }
            None => {
                if self.floor.is_some_and(|f| issued <= f) {
                    return Err(AuthError::Stale);
                }
                if self.seen.len() >= self.capacity {
                    if let Some((t, old)) = self.order.pop_front() {
                        self.seen.remove(&old);
                        self.floor = Some(self.floor.map_or(t, |f| f.max(t)));
                    }
                    if self.floor.is_some_and(|f| issued <= f) {
                        return Err(AuthError::Stale);
                    }
                }
                self.seen.insert(id, nc);
                // Kept in issue order is not guaranteed; ordering by issue time is close
                // enough for expiry since every nonce lives at most `ttl`.
                self.order.push_back((issued, id));
                Ok(())
            }
        }
    }
}

/// A challenge read from WWW-Authenticate or Proxy-Authenticate (the client side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The realm.
    pub realm: String,
    /// The nonce.
    pub nonce: String,
    /// The opaque value to echo.
    pub opaque: Option<String>,
    /// The algorithm.
    pub algorithm: Algorithm,
    /// Whether `qop=auth` was offered.
    pub qop_auth: bool,
    /// Whether the server said our previous nonce was stale (retry without asking the user).
    pub stale: bool,
}

impl Challenge {
    /// Parses a Digest challenge value. Fails on other schemes, missing realm/nonce,
    /// algorithms we do not implement, or a qop list without `auth`.
    pub fn parse(value: &str) -> Result<Challenge, AuthError> {
        let p = DigestParams::parse(value).ok_or(AuthError::Malformed)?;
        let algorithm = Algorithm::parse(p.get("algorithm").as_deref()).ok_or(AuthError::UnsupportedAlgorithm)?;
        let qop_auth = match p.get("qop") {
            Some(q) => {
                if !q.split(',').any(|t| t.trim().eq_ignore_ascii_case("auth")) {
                    return Err(AuthError::Malformed);
                }
                true
            }
            None => false,
        };
        Ok(Challenge {
            realm: p.get("realm").ok_or(AuthError::Malformed)?.into_owned(),
            nonce: p.get("nonce").ok_or(AuthError::Malformed)?.into_owned(),
            opaque: p.get("opaque").map(|o| o.into_owned()),
            algorithm,
            qop_auth,
            stale: p.get("stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }

    /// The strongest challenge we support among the response's WWW-Authenticate and
    /// Proxy-Authenticate headers (SHA-256 over MD5).
    pub fn best_in(resp: &Message) -> Option<(HeaderName, Challenge)> {
        let mut best: Option<(HeaderName, Challenge)> = None;
        for (h, out) in [(HeaderName::WwwAuthenticate, HeaderName::Authorization), (HeaderName::ProxyAuthenticate, HeaderName::ProxyAuthorization)] {
            for v in resp.headers(h) {
                if let Ok(c) = Challenge::parse(v) {
                    let better = best.as_ref().is_none_or(|(_, b)| b.algorithm.base() == Algorithm::Md5 && c.algorithm.base() == Algorithm::Sha256);
                    if better {
                        best = Some((out, c));
                    }
                }
            }
        }
        best
    }

    /// The Authorization/Proxy-Authorization value answering this challenge for a request
    /// with `method` and Request-URI `uri`. `nc` counts the requests made with this nonce
    /// (start at 1); `cnonce` comes from [`IdGenerator::hex`].
    pub fn authorization(&self, method: &str, uri: &str, username: &str, password: &str, cnonce: &str, nc: u32) -> String {
        let ha1 = ha1(self.algorithm, username, &self.realm, password);
        let qop = self.qop_auth.then_some("auth");
        let needs_cnonce = qop.is_some() || self.algorithm.is_sess();
        let cn = needs_cnonce.then_some(cnonce);
        let response = compute_response(self.algorithm, &ha1, &self.nonce, cn, Some(nc), qop, method, uri);
        let mut v = String::with_capacity(256);
        let _ = write!(
            v,
            "Digest username=\"{username}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", response=\"{response}\", algorithm={}",
            self.realm,
            self.nonce,
            self.algorithm.as_str()
        );
        if let Some(q) = qop {
            let _ = write!(v, ", qop={q}, nc={nc:08x}");
        }
        if let Some(c) = cn {
            let _ = write!(v, ", cnonce=\"{c}\"");
        }
        if let Some(o) = &self.opaque {
            let _ = write!(v, ", opaque=\"{o}\"");
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7));

    fn server() -> DigestServer {
        DigestServer::new([42; 32], "pbx.example.com", Duration::from_secs(300))
    }

    /// One challenge/response round: returns the credentials a client computes.
    fn round(srv: &DigestServer, ids: &mut IdGenerator, now: Instant, alg: Algorithm, password: &str, nc: u32) -> Credentials {
        let ch = Challenge::parse(&srv.challenge(now, IP, ids, alg, false)).unwrap();
        assert_eq!(ch.algorithm, alg);
        let v = ch.authorization("REGISTER", "sip:pbx.example.com", "1001", password, "cn0ncE", nc);
        Credentials::parse(&v).unwrap()
    }

    #[test]
    fn rfc2617_known_answer() {
        // RFC 2617 §3.5's example (with the HTTP method and uri).
        let ha1 = ha1(Algorithm::Md5, "Mufasa", "testrealm@host.com", "Circle Of Life");
        let r = compute_response(Algorithm::Md5, &ha1, "dcd98b7102dd2f0e8b11d0f600bfb0c093", Some("0a4f113b"), Some(1), Some("auth"), "GET", "/dir/index.html");
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn rfc7616_sha256_known_answer() {
        // RFC 7616 §3.9.1's example, SHA-256.
        let ha1 = ha1(Algorithm::Sha256, "Mufasa", "http-auth@example.org", "Circle of Life");
        let r = compute_response(
            Algorithm::Sha256,
            &ha1,
            "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            Some("f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"),
            Some(1),
            Some("auth"),
            "GET",
            "/dir/index.html",
        );
        assert_eq!(r, "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1");
    }

    #[test]
    fn round_trips_for_every_algorithm() {
        let srv = server();
        let mut ids = IdGenerator::new([1; 32]);
        let now = Instant::from_millis(1_000_000);
        for alg in [Algorithm::Md5, Algorithm::Sha256, Algorithm::Md5Sess, Algorithm::Sha256Sess] {
            let mut guard = ReplayGuard::new(16);
            let creds = round(&srv, &mut ids, now, alg, "s3cret", 1);
            let stored = ha1(alg.base(), "1001", "pbx.example.com", "s3cret");
            assert_eq!(srv.verify(now, IP, "REGISTER", &creds, &stored, &mut guard), Ok(()), "{alg:?}");
            let wrong = round(&srv, &mut ids, now, alg, "guess", 1);
            assert_eq!(srv.verify(now, IP, "REGISTER", &wrong, &stored, &mut guard), Err(AuthError::WrongResponse));
        }
    }

    #[test]
    fn stale_nonce_and_foreign_nonce() {
        let srv = server();
        let mut ids = IdGenerator::new([2; 32]);
        let mut guard = ReplayGuard::new(16);
        let stored = ha1(Algorithm::Md5, "1001", "pbx.example.com", "pw");
        let creds = round(&srv, &mut ids, Instant::from_millis(0), Algorithm::Md5, "pw", 1);
        let later = Instant::from_millis(301_000);
        assert_eq!(srv.verify(later, IP, "REGISTER", &creds, &stored, &mut guard), Err(AuthError::Stale));
        // A nonce from another address, another key or made up is invalid, not stale.
        let other_ip: IpAddr = "192.0.2.8".parse().unwrap();
        assert_eq!(srv.verify(Instant::from_millis(1), other_ip, "REGISTER", &creds, &stored, &mut guard), Err(AuthError::InvalidNonce));
        let other = DigestServer::new([43; 32], "pbx.example.com", Duration::from_secs(300));
        assert_eq!(other.verify(Instant::from_millis(1), IP, "REGISTER", &creds, &stored, &mut guard), Err(AuthError::InvalidNonce));
        let mut forged = creds.clone();
        forged.nonce = "00".repeat(32);
        assert_eq!(srv.verify(Instant::from_millis(1), IP, "REGISTER", &forged, &stored, &mut guard), Err(AuthError::InvalidNonce));
        let mut multibyte = creds.clone();
        multibyte.nonce = format!("{}é{}", "0".repeat(31), "0".repeat(31));
        assert_eq!(multibyte.nonce.len(), 64);
        assert_eq!(srv.verify(Instant::from_millis(1), IP, "REGISTER", &multibyte, &stored, &mut guard), Err(AuthError::InvalidNonce));
        let mut realm = creds.clone();
        realm.realm = "evil".into();
        assert_eq!(srv.verify(Instant::from_millis(1), IP, "REGISTER", &realm, &stored, &mut guard), Err(AuthError::WrongRealm));
        // The stale challenge says so and the client sees it.
        let v = srv.challenge(later, IP, &mut ids, Algorithm::Md5, true);
        assert!(Challenge::parse(&v).unwrap().stale);
    }

    #[test]
    fn nonce_count_replay_is_refused() {
        let srv = server();
        let mut ids = IdGenerator::new([3; 32]);
        let mut guard = ReplayGuard::new(16);
        let now = Instant::from_millis(5_000);
        let stored = ha1(Algorithm::Sha256, "1001", "pbx.example.com", "pw");
        let ch = Challenge::parse(&srv.challenge(now, IP, &mut ids, Algorithm::Sha256, false)).unwrap();
        let c1 = Credentials::parse(&ch.authorization("REGISTER", "sip:pbx", "1001", "pw", "c", 1)).unwrap();
        let c2 = Credentials::parse(&ch.authorization("REGISTER", "sip:pbx", "1001", "pw", "c", 2)).unwrap();
        assert_eq!(srv.verify(now, IP, "REGISTER", &c1, &stored, &mut guard), Ok(()));
        assert_eq!(srv.verify(now, IP, "REGISTER", &c1, &stored, &mut guard), Err(AuthError::Replay));
        assert_eq!(srv.verify(now, IP, "REGISTER", &c2, &stored, &mut guard), Ok(()));
        assert_eq!(srv.verify(now, IP, "REGISTER", &c1, &stored, &mut guard), Err(AuthError::Replay));
        assert_eq!(guard.len(), 1);
    }

    #[test]
    fn replay_guard_eviction_never_reopens_a_nonce() {
        let srv = server();
        let mut ids = IdGenerator::new([4; 32]);
        let mut guard = ReplayGuard::new(2);
        let stored = ha1(Algorithm::Md5, "1001", "pbx.example.com", "pw");
        let creds: Vec<_> = (0..3).map(|i| round(&srv, &mut ids, Instant::from_millis(i * 10), Algorithm::Md5, "pw", 1)).collect();
        let now = Instant::from_millis(100);
        for c in &creds {
            assert_eq!(srv.verify(now, IP, "REGISTER", c, &stored, &mut guard), Ok(()));
        }
        assert_eq!(guard.len(), 2);
        // The first nonce was evicted: replaying it is refused as stale, not accepted.
        assert_eq!(srv.verify(now, IP, "REGISTER", &creds[0], &stored, &mut guard), Err(AuthError::Stale));
    }

    #[test]
    fn challenges_in_a_response_and_best_choice() {
        let srv = server();
        let mut ids = IdGenerator::new([5; 32]);
        let mut resp = Message::response(407, "Proxy Authentication Required");
        srv.add_challenges(&mut resp, Instant::from_millis(0), IP, &mut ids, false);
        assert_eq!(resp.headers(HeaderName::ProxyAuthenticate).count(), 2);
        let (h, ch) = Challenge::best_in(&resp).unwrap();
        assert_eq!(h, HeaderName::ProxyAuthorization);
        assert_eq!(ch.algorithm, Algorithm::Sha256);
        assert!(ch.qop_auth);
        // Unknown schemes and algorithms are refused.
        assert!(Challenge::parse("Basic realm=\"x\"").is_err());
        assert_eq!(Challenge::parse("Digest realm=\"x\", nonce=\"n\", algorithm=SHA-512-256"), Err(AuthError::UnsupportedAlgorithm));
        assert!(Credentials::parse("Digest username=\"a\"").is_err());
        assert!(Credentials::parse("Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"x\", qop=auth").is_err());
    }

    #[test]
    fn rfc2069_style_credentials_without_qop() {
        let srv = server();
        let mut ids = IdGenerator::new([6; 32]);
        let mut guard = ReplayGuard::new(4);
        let now = Instant::from_millis(0);
        let nonce = srv.nonce(now, IP, &mut ids);
        let ch = Challenge { realm: "pbx.example.com".into(), nonce, opaque: Some("op".into()), algorithm: Algorithm::Md5, qop_auth: false, stale: false };
        let v = ch.authorization("INVITE", "sip:1002@pbx", "1001", "pw", "unused", 1);
        assert!(!v.contains("qop") && v.contains("opaque=\"op\""));
        let creds = Credentials::parse(&v).unwrap();
        let stored = ha1(Algorithm::Md5, "1001", "pbx.example.com", "pw");
        assert_eq!(srv.verify(now, IP, "INVITE", &creds, &stored, &mut guard), Ok(()));
        assert_eq!(srv.verify(now, IP, "BYE", &creds, &stored, &mut guard), Err(AuthError::WrongResponse));
    }

    #[test]
    fn digest_uri_must_name_the_request_uri() {
        assert!(digest_uri_matches("sip:pbx.test", "sip:pbx.test"));
        assert!(digest_uri_matches("sip:pbx.test", "sip:PBX.test:5060;transport=udp"));
        assert!(digest_uri_matches("sip:102@pbx.test", "sip:102@pbx.test;user=phone"));
        assert!(!digest_uri_matches("sip:102@pbx.test", "sip:900@pbx.test"));
        assert!(!digest_uri_matches("sip:102@pbx.test", "sip:pbx.test"));
        assert!(digest_uri_matches("sip:pbx.test:5060", "sip:900@pbx.test"), "SIPp's host-only digest uri");
        assert!(!digest_uri_matches("sip:pbx.test", "sip:other.test"));
        assert!(digest_uri_matches("sip:pbx.test:5070", "sip:pbx.test"), "a port on one side only");
        assert!(!digest_uri_matches("sip:pbx.test:5070", "sip:pbx.test:5060"));
        assert!(!digest_uri_matches("sips:pbx.test", "sip:pbx.test"));
        assert!(digest_uri_matches("tel:+15551234", "tel:+15551234"));
        assert!(!digest_uri_matches("garbage", "sip:pbx.test"));
    }

    #[test]
    fn a_response_without_qop_is_good_for_one_request() {
        let srv = DigestServer::new([7; 32], "pbx", Duration::from_secs(300));
        let mut ids = IdGenerator::new([3; 32]);
        let now = Instant::from_millis(1_000);
        let nonce = srv.nonce(now, IP, &mut ids);
        let ha1 = ha1(Algorithm::Md5, "alice", "pbx", "pw");
        let response = compute_response(Algorithm::Md5, &ha1, &nonce, None, None, None, "REGISTER", "sip:pbx");
        let creds = Credentials::parse(&format!(
            "Digest username=\"alice\", realm=\"pbx\", nonce=\"{nonce}\", uri=\"sip:pbx\", response=\"{response}\", algorithm=MD5"
        ))
        .unwrap();
        let mut guard = ReplayGuard::new(10);
        assert_eq!(srv.verify(now, IP, "REGISTER", &creds, &ha1, &mut guard), Ok(()));
        assert_eq!(srv.verify(now, IP, "REGISTER", &creds, &ha1, &mut guard), Err(AuthError::Replay), "replayed");
    }
}
