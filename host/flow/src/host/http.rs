//! `flowpbx:node/http`: outbound requests to granted hosts only.

use std::net::IpAddr;
use std::time::Duration;

use super::HostState;
use crate::bindings::http::{Host, HttpError, Request, Response};
use crate::services::{self, HttpRequest};

const METHODS: [&str; 6] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"];
const MAX_BODY: usize = 1 << 20;

impl Host for HostState {
    async fn send(&mut self, req: Request) -> Result<Response, HttpError> {
        let url: url::Url = req.url.parse().map_err(|e| HttpError::InvalidRequest(format!("url {:?}: {e}", req.url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(HttpError::InvalidRequest(format!("scheme {:?} (only http and https)", url.scheme())));
        }
        let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        if host.is_empty() {
            return Err(HttpError::InvalidRequest("the url has no host".into()));
        }
        if !self.grants.allows_host(&host) {
            self.log_line("warn", &format!("denied: http to {host} was not granted"));
            return Err(HttpError::Denied(host));
        }
        // The port, and an address written in the URL, are checked here (a simulation too);
        // the addresses a name resolves to, by the live client when it resolves it.
        let egress = self.grants.egress().clone();
        let port = url.port_or_known_default().unwrap_or(0);
        let literal = match url.host() {
            Some(url::Host::Ipv4(a)) => Some(IpAddr::V4(a)),
            Some(url::Host::Ipv6(a)) => Some(IpAddr::V6(a)),
            _ => None,
        };
        if let Err(d) = egress.check_port(port).and_then(|()| literal.map_or(Ok(()), |a| egress.check_addr(a).map(|_| ()))) {
            self.log_line("warn", &format!("denied: http to {host}: {d}"));
            return Err(HttpError::Denied(host));
        }
        let method = req.method.to_ascii_uppercase();
        if !METHODS.contains(&method.as_str()) {
            return Err(HttpError::InvalidRequest(format!("method {:?}", req.method)));
        }
        if req.body.len() > MAX_BODY {
            return Err(HttpError::InvalidRequest("the body is larger than 1 MiB".into()));
        }
        for (k, v) in &req.headers {
            let bad =
                k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)) || v.bytes().any(|b| b == b'\r' || b == b'\n');
            if bad {
                return Err(HttpError::InvalidRequest(format!("header {k:?}")));
            }
        }
        let out = HttpRequest {
            method,
            url,
            headers: req.headers,
            body: req.body,
            timeout: Duration::from_millis(u64::from(req.timeout_ms).clamp(100, 30_000)),
            egress,
        };
        let http = self.services.http.clone();
        match self.timed(http.send(out)).await {
            Ok(r) => Ok(Response { status: r.status, headers: r.headers.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect(), body: r.body }),
            Err(services::HttpError::Timeout) => Err(HttpError::Timeout),
            Err(services::HttpError::TooLarge) => Err(HttpError::TooLarge),
            Err(services::HttpError::Invalid(m)) => Err(HttpError::InvalidRequest(m)),
            // (the guest gets the host, as the contract says; the trace says why)
            Err(services::HttpError::Denied(m)) => {
                self.log_line("warn", &format!("denied: http to {m}"));
                Err(HttpError::Denied(host))
            }
            Err(services::HttpError::Failed(m)) => Err(HttpError::Failed(m)),
        }
    }
}
