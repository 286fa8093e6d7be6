//! The `Host` check, against DNS rebinding: a page on an attacker's name that resolves to this
//! server would otherwise be same-origin with it in a victim's browser (on the LAN, or on the
//! server itself) and could drive the API, first-boot setup included.
//!
//! A request is served when its `Host` (or the authority of an absolute URI) names:
//! - the configured `hostname` (flag, environment or stored setting), any port;
//! - `localhost`;
//! - an IP literal that is loopback, the `external_ip` setting, or the local address the
//!   connection reached (when the server passes [`ConnInfo`]; without it any IP literal, which
//!   a rebinding page cannot send);
//!
//! and otherwise is answered 421 with the error envelope. The check applies once a hostname is
//! configured, and — whatever the settings — before first-boot setup is done (setup is then
//! the whole server for whoever reaches it). A request without `Host` (HTTP/1.0, or an
//! in-process call) is not a browser's and is served.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::connect_info::Connected;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::serve::IncomingStream;

use crate::error::ApiError;
use crate::AppState;
use pbx::settings::keys;

/// The addresses of a connection: the client's, and the local one it reached. Serve the
/// router with `into_make_service_with_connect_info::<ConnInfo>()` (a plain `SocketAddr`
/// works too, without the local address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnInfo {
    pub remote: SocketAddr,
    pub local: Option<SocketAddr>,
    /// The connection is TLS (the HTTPS listener).
    pub tls: bool,
}

impl Connected<IncomingStream<'_, tokio::net::TcpListener>> for ConnInfo {
    fn connect_info(stream: IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        ConnInfo { remote: *stream.remote_addr(), local: stream.io().local_addr().ok(), tls: false }
    }
}

/// What the check accepts, from the settings (cached in the state; refreshed when the
/// settings change or setup is done).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostPolicy {
    /// lower case, without a trailing dot
    hostname: Option<String>,
    /// the certificate's ACME domains (lower case; `*.` wildcards match one label)
    other_names: Vec<String>,
    external_ip: Option<IpAddr>,
    setup_done: bool,
}

impl HostPolicy {
    pub(crate) async fn load(state: &AppState) -> Result<HostPolicy, ApiError> {
        let store = state.store();
        let resolved = state.settings_layers().resolve(&store.settings().all().await?);
        let value = |k: &str| resolved.get(k).and_then(|r| r.value.clone()).filter(|v| !v.trim().is_empty());
        Ok(HostPolicy {
            hostname: value(keys::HOSTNAME).map(|h| normalise(&h)),
            other_names: state.https().map(|h| h.store.domains().iter().map(|d| normalise(d)).collect()).unwrap_or_default(),
            external_ip: value(keys::EXTERNAL_IP).and_then(|v| v.trim().parse().ok()),
            setup_done: store.admin_users().count().await? > 0,
        })
    }

    fn enforced(&self) -> bool {
        self.hostname.is_some() || !self.setup_done
    }

    /// Whether a request naming `host` (the `Host` value, port included) that reached
    /// `local` is served.
    pub(crate) fn accepts(&self, host: &str, local: Option<IpAddr>) -> bool {
        if !self.enforced() {
            return true;
        }
        let Some(name) = host_part(host) else { return false };
        if let Ok(ip) = name.parse::<IpAddr>() {
            let ip = ip.to_canonical();
            return ip.is_loopback()
                || Some(ip) == self.external_ip.map(|i| i.to_canonical())
                || self.hostname.as_deref().and_then(|h| h.parse::<IpAddr>().ok()).is_some_and(|h| h.to_canonical() == ip)
                || local.is_none_or(|l| l.to_canonical() == ip);
        }
        let name = normalise(name);
        name == "localhost"
            || self.hostname.as_deref() == Some(name.as_str())
            || self.other_names.iter().any(|o| match o.strip_prefix("*.") {
                Some(base) => name.split_once('.').is_some_and(|(first, rest)| !first.is_empty() && rest == base),
                None => *o == name,
            })
    }
}

fn normalise(h: &str) -> String {
    h.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// The host of a `Host` value: `name`, `name:port`, `1.2.3.4:port`, `[v6]:port`. None when
/// it is not one of those.
pub(crate) fn host_part(v: &str) -> Option<&str> {
    if let Some(rest) = v.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        return (after.is_empty() || after.strip_prefix(':').is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))).then_some(ip);
    }
    let host = match v.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        Some(_) => return None,
        None => v,
    };
    (!host.is_empty() && !host.contains(':')).then_some(host)
}

/// The middleware: 421 with the envelope for a `Host` the server does not answer to.
pub(crate) async fn check_host(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let host = match req.headers().get(header::HOST) {
        Some(v) => match v.to_str() {
            Ok(s) => Some(s.to_owned()),
            Err(_) => return ApiError::bad_request("the Host header is not text").into_response(),
        },
        None => req.uri().authority().map(|a| a.as_str().rsplit('@').next().unwrap_or_default().to_owned()),
    };
    let Some(host) = host else { return next.run(req).await };
    let policy = match state.host_policy().await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let local = req.extensions().get::<axum::extract::ConnectInfo<ConnInfo>>().and_then(|c| c.0.local).map(|a| a.ip());
    if policy.accepts(&host, local) {
        return next.run(req).await;
    }
    tracing::warn!(host = %host.chars().take(100).collect::<String>(), "refused a request for a host this server does not answer to");
    ApiError::MisdirectedRequest(if policy.hostname.is_some() {
        "this server does not answer to that host name: use its configured hostname or IP address"
    } else {
        "until setup is done this server answers only to its IP address or localhost (or set --hostname)"
    })
    .into_response()
}

/// The cached policy.
pub(crate) type SharedPolicy = tokio::sync::RwLock<Option<Arc<HostPolicy>>>;

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(hostname: Option<&str>, external_ip: Option<&str>, setup_done: bool) -> HostPolicy {
        HostPolicy { hostname: hostname.map(normalise), other_names: vec![], external_ip: external_ip.map(|i| i.parse().unwrap()), setup_done }
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn a_configured_hostname_is_the_only_name_served() {
        let p = policy(Some("PBX.example.com."), Some("203.0.113.9"), true);
        for ok in
            ["pbx.example.com", "pbx.example.com:8080", "PBX.EXAMPLE.COM.", "localhost:8080", "127.0.0.1:8080", "[::1]:8080", "203.0.113.9", "192.0.2.10:80"]
        {
            assert!(p.accepts(ok, ip("192.0.2.10")), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "pbx.example.com.evil.example",
            "192.0.2.11:80",
            "[2001:db8::1]",
            "",
            ":80",
            "a:b:c",
            "[::1",
            "pbx.example.com:http",
        ] {
            assert!(!p.accepts(bad, ip("192.0.2.10")), "{bad}");
        }
        // without the local address any IP literal (a rebinding page names a host, not an IP)
        assert!(p.accepts("192.0.2.11", None));
        assert!(!p.accepts("evil.example", None));
        // IPv4-mapped local addresses compare as IPv4
        assert!(p.accepts("192.0.2.10", ip("::ffff:192.0.2.10")));
    }

    #[test]
    fn acme_domains_are_served_too() {
        let mut p = policy(Some("pbx.example.com"), None, true);
        p.other_names = vec!["sip.example.com".into(), "*.phones.example.com".into()];
        for ok in ["sip.example.com", "SIP.example.com:443", "desk1.phones.example.com"] {
            assert!(p.accepts(ok, ip("192.0.2.10")), "{ok}");
        }
        for bad in ["phones.example.com", "a.b.phones.example.com", "evil.example.com"] {
            assert!(!p.accepts(bad, ip("192.0.2.10")), "{bad}");
        }
    }

    #[test]
    fn before_setup_only_addresses_and_localhost_are_served() {
        let p = policy(None, None, false);
        assert!(p.accepts("127.0.0.1:8080", ip("127.0.0.1")));
        assert!(p.accepts("localhost", ip("127.0.0.1")));
        assert!(!p.accepts("rebind.attacker.example:8080", ip("127.0.0.1")));
        // after setup, with no hostname configured, names are not checked
        assert!(policy(None, None, true).accepts("pbx.lan", ip("192.0.2.10")));
    }
}
