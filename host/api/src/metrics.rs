//! `GET /metrics`: Prometheus metrics in the OpenMetrics text format (prometheus-client).
//!
//! Who may scrape: a request bearing the configured token (`Authorization: Bearer …`), or
//! one from an allow-listed network; with neither configured the endpoint answers 404 (off).
//! The binary can serve it on a listen address of its own ([`metrics_router`]); the public
//! port then answers 404 for it.
//!
//! Cost: nothing here runs per packet or per SIP message. The SIP stack and the media relay
//! bump atomics of their own; this module reads their snapshots when scraped (a
//! [`Collector`]). Only the HTTP request counter is kept here (one family lookup per request).

use std::net::IpAddr;
use std::sync::{OnceLock, Weak};
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use ipnet::IpNet;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::host_check::ConnInfo;
use crate::{AppState, Inner};

/// Who may scrape `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct MetricsAccess {
    /// A bearer token that grants the scrape.
    pub token: Option<String>,
    /// Source networks that may scrape without the token.
    pub allow: Vec<IpNet>,
    /// `/metrics` is served on its own listener ([`metrics_router`]), not on the API's ports.
    pub separate_listener: bool,
}

impl MetricsAccess {
    fn enabled(&self) -> bool {
        self.token.is_some() || !self.allow.is_empty()
    }

    /// Whether a request from `peer` with these headers may scrape.
    fn permits(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> bool {
        if let Some(ip) = peer {
            let ip = match ip {
                IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
                v4 => v4,
            };
            if self.allow.iter().any(|n| n.contains(&ip)) {
                return true;
            }
        }
        let Some(token) = &self.token else { return false };
        let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).map(str::trim);
        given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes()))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

type HttpLabels = [(&'static str, String); 3];

/// The metrics the API keeps itself, and the registry the scrape encodes.
pub(crate) struct ApiMetrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Family<[(&'static str, String); 1], Histogram>,
    db_query: Histogram,
    pub(crate) access: OnceLock<MetricsAccess>,
}

impl std::fmt::Debug for ApiMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiMetrics").finish_non_exhaustive()
    }
}

const HTTP_BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

impl ApiMetrics {
    pub(crate) fn new() -> ApiMetrics {
        let http_requests = Family::<HttpLabels, Counter>::default();
        let http_duration = Family::<[(&'static str, String); 1], Histogram>::new_with_constructor(|| Histogram::new(HTTP_BUCKETS));
        let mut registry = Registry::default();
        registry.register("flowpbx_http_requests", "HTTP requests by route, method and status", http_requests.clone());
        registry.register("flowpbx_http_request_duration_seconds", "HTTP request handling time by route", http_duration.clone());
        let db_query = Histogram::new([0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0]);
        registry.register(
            "flowpbx_db_query_seconds",
            "database round trips measured by the probe (a SELECT 1 every 15 s and at each health check)",
            db_query.clone(),
        );
        ApiMetrics { registry, http_requests, http_duration, db_query, access: OnceLock::new() }
    }

    /// Adds the collector that reads the PBX's, media's, flows', store's and process's
    /// counters at each scrape (it holds the state weakly: the state owns the registry).
    pub(crate) fn with_collector(mut self, state: Weak<Inner>) -> ApiMetrics {
        self.registry.register_collector(Box::new(PbxCollector { state }));
        self
    }
}

/// Counts every request by its route template (never the raw path: ids would make a series
/// each), method and status.
pub(crate) async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().as_str().to_owned();
    let began = Instant::now();
    let resp = next.run(req).await;
    let m = &state.0.metrics;
    m.http_duration.get_or_create(&[("route", route.clone())]).observe(began.elapsed().as_secs_f64());
    m.http_requests.get_or_create(&[("route", route), ("method", method), ("status", resp.status().as_u16().to_string())]).inc();
    resp
}

/// `GET /metrics` on the API's ports (404 when metrics are off or on their own listener).
async fn scrape_public(State(state): State<AppState>, req: Request) -> Response {
    match state.0.metrics.access.get() {
        Some(a) if a.enabled() && !a.separate_listener => scrape(&state, a, peer(&req), req.headers()),
        _ => crate::ApiError::NotFound.into_response(),
    }
}

/// `GET /metrics` on the metrics listener.
async fn scrape_separate(State(state): State<AppState>, req: Request) -> Response {
    match state.0.metrics.access.get() {
        Some(a) if a.enabled() => scrape(&state, a, peer(&req), req.headers()),
        _ => crate::ApiError::NotFound.into_response(),
    }
}

/// The client's address, from the connection (never from a header).
fn peer(req: &Request) -> Option<IpAddr> {
    let ext = req.extensions();
    ext.get::<ConnectInfo<ConnInfo>>().map(|c| c.0.remote.ip()).or_else(|| ext.get::<ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip()))
}

fn scrape(state: &AppState, access: &MetricsAccess, peer: Option<IpAddr>, headers: &HeaderMap) -> Response {
    if !access.permits(peer, headers) {
        let mut r = crate::ApiError::Unauthorized("metrics need the scrape token or an allowed address").into_response();
        r.headers_mut().insert(header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer realm=\"metrics\""));
        return r;
    }
    let mut body = String::with_capacity(16 * 1024);
    if let Err(e) = prometheus_client::encoding::text::encode(&mut body, &state.0.metrics.registry) {
        return crate::ApiError::Internal(format!("encoding metrics: {e}")).into_response();
    }
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body).into_response()
}

pub(crate) fn public_routes() -> Router<AppState> {
    Router::new().route("/metrics", get(scrape_public))
}

/// `/metrics` alone, for a listener of its own (`--metrics-listen`). Serve it with
/// `into_make_service_with_connect_info::<ConnInfo>()` so the allow-list sees the client.
pub fn metrics_router(state: AppState) -> Router {
    Router::new().route("/metrics", get(scrape_separate)).with_state(state)
}

impl AppState {
    /// Times one database round trip (`Store::ping`) into `flowpbx_db_query_seconds`.
    pub async fn probe_database(&self) -> Result<(), store::StoreError> {
        let began = Instant::now();
        let r = self.store().ping().await;
        self.0.metrics.db_query.observe(began.elapsed().as_secs_f64());
        r
    }

    /// Who may scrape `/metrics` (once, at start; without it metrics are off).
    pub fn set_metrics_access(&self, access: MetricsAccess) {
        let _ = self.0.metrics.access.set(access);
    }
}

// ----- the collector -----

#[derive(Debug)]
struct PbxCollector {
    state: Weak<Inner>,
}

type Labels<'a> = Vec<(&'static str, &'a str)>;

fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, series: &[(Labels<'_>, u64)]) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in series {
        m.encode_family(labels)?.encode_counter::<NoLabelSet, _, u64>(v, None)?;
    }
    Ok(())
}

fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, series: &[(Labels<'_>, f64)]) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in series {
        m.encode_family(labels)?.encode_gauge(v)?;
    }
    Ok(())
}

/// A histogram from non-cumulative counts per bound (`counts` has one more: over the last).
fn histogram(enc: &mut DescriptorEncoder, name: &str, help: &str, series: &[(Labels<'_>, f64, &[f64], &[u64])]) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, sum, bounds, counts) in series {
        let mut acc = 0;
        let mut buckets: Vec<(f64, u64)> = bounds
            .iter()
            .zip(counts.iter())
            .map(|(b, c)| {
                acc += c;
                (*b, acc)
            })
            .collect();
        let count: u64 = counts.iter().sum();
        buckets.push((f64::INFINITY, count));
        m.encode_family(labels)?.encode_histogram::<NoLabelSet>(*sum, count, &buckets, None)?;
    }
    Ok(())
}

fn snapshot_histogram(enc: &mut DescriptorEncoder, name: &str, help: &str, h: &call::HistogramSnapshot) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
    let mut buckets = h.buckets.clone();
    buckets.push((f64::INFINITY, h.count));
    m.encode_histogram::<NoLabelSet>(h.sum, h.count, &buckets, None)
}

impl Collector for PbxCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(inner) = self.state.upgrade() else { return Ok(()) };
        let state = AppState(inner);
        process_metrics(&mut enc)?;
        let (size, idle) = state.store().pool_stats();
        gauge(
            &mut enc,
            "flowpbx_db_pool_connections",
            "database connections held by the pool",
            &[(vec![("state", "idle")], idle as f64), (vec![("state", "busy")], size.saturating_sub(idle as u32) as f64)],
        )?;
        let fm = state.flow_service().metrics();
        let nodes = fm.snapshot();
        counter(&mut enc, "flowpbx_flow_walks", "flow walks finished", &[(vec![], fm.walks())])?;
        let per = |f: fn(&pbx::metrics::NodeStats) -> u64| nodes.iter().map(|(t, s)| (vec![("node_type", t.as_str())], f(s))).collect::<Vec<_>>();
        counter(&mut enc, "flowpbx_flow_node_runs", "node runs by node type", &per(|s| s.runs))?;
        counter(&mut enc, "flowpbx_flow_node_errors", "node runs that failed, by node type", &per(|s| s.errors))?;
        counter(&mut enc, "flowpbx_plugin_traps", "node runs that trapped (a crash in the component), by node type", &per(|s| s.traps))?;
        counter(&mut enc, "flowpbx_plugin_limit_hits", "node runs stopped by a limit (CPU, memory, wall clock), by node type", &per(|s| s.limit_hits))?;
        let series: Vec<_> = nodes
            .iter()
            .map(|(t, s)| (vec![("node_type", t.as_str())], s.duration_sum, &pbx::metrics::NODE_BUCKETS[..], s.duration_counts.as_slice()))
            .collect();
        histogram(&mut enc, "flowpbx_flow_node_duration_seconds", "node run duration by node type", &series)?;

        let Some(pbx) = state.pbx() else { return Ok(()) };
        let h = pbx.health();
        let s = pbx.metrics();
        gauge(&mut enc, "flowpbx_draining", "1 while the server drains (refuses new calls)", &[(vec![], if pbx.is_draining() { 1.0 } else { 0.0 })])?;
        let mut active: std::collections::BTreeMap<&'static str, f64> = store::CallDirection::ALL.iter().map(|d| (d.as_str(), 0.0)).collect();
        for c in pbx.active_calls() {
            *active.entry(c.direction.as_str()).or_default() += 1.0;
        }
        gauge(
            &mut enc,
            "flowpbx_calls_active",
            "calls in progress by direction",
            &active.iter().map(|(d, n)| (vec![("direction", *d)], *n)).collect::<Vec<_>>(),
        )?;
        counter(
            &mut enc,
            "flowpbx_calls_started",
            "calls started by direction",
            &s.calls_started.iter().map(|(d, n)| (vec![("direction", d.as_str())], *n)).collect::<Vec<_>>(),
        )?;
        counter(
            &mut enc,
            "flowpbx_calls_ended",
            "calls ended by direction and disposition",
            &s.calls_ended.iter().map(|(d, x, n)| (vec![("direction", d.as_str()), ("disposition", x.as_str())], *n)).collect::<Vec<_>>(),
        )?;
        snapshot_histogram(&mut enc, "flowpbx_call_setup_seconds", "INVITE received to the caller answered", &s.setup)?;
        gauge(&mut enc, "flowpbx_registrations", "registered contacts", &[(vec![], h.registrations as f64)])?;
        let methods = |v: &[u64]| call::SIP_METHODS.iter().zip(v).map(|(m, n)| (vec![("method", *m)], *n)).collect::<Vec<_>>();
        counter(&mut enc, "flowpbx_sip_requests_received", "SIP requests received by method", &methods(&s.requests_in))?;
        counter(&mut enc, "flowpbx_sip_requests_sent", "SIP requests sent by method", &methods(&s.requests_out))?;
        const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "6xx"];
        let classes = |v: &[u64]| CLASSES.iter().zip(v).map(|(c, n)| (vec![("class", *c)], *n)).collect::<Vec<_>>();
        counter(&mut enc, "flowpbx_sip_responses_received", "SIP responses received by class", &classes(&s.responses_in))?;
        counter(&mut enc, "flowpbx_sip_responses_sent", "SIP responses sent by class", &classes(&s.responses_out))?;
        counter(&mut enc, "flowpbx_sip_retransmissions", "SIP messages sent again by the transaction timers", &[(vec![], s.retransmissions)])?;
        counter(&mut enc, "flowpbx_sip_send_errors", "SIP sends that failed", &[(vec![], h.messages.2)])?;
        counter(&mut enc, "flowpbx_sip_auth_failures", "failed SIP digest authentications", &[(vec![], s.auth_failures)])?;
        counter(&mut enc, "flowpbx_sip_bans", "sources banned for failed authentications", &[(vec![], s.bans)])?;
        gauge(&mut enc, "flowpbx_sip_banned_sources", "sources banned now", &[(vec![], h.guard.banned as f64)])?;
        counter(&mut enc, "flowpbx_drain_refused", "new calls and OPTIONS answered 503 while draining", &[(vec![], s.drain_refused)])?;
        snapshot_histogram(&mut enc, "flowpbx_db_write_seconds", "write-behind flushes to the database (one transaction each)", &s.store_flush)?;
        counter(&mut enc, "flowpbx_db_write_errors", "write-behind flushes that failed", &[(vec![], s.store_flush_errors)])?;

        let trunks = pbx.trunk_statuses();
        let ids: Vec<String> = trunks.iter().map(|(id, _)| id.to_string()).collect();
        gauge(
            &mut enc,
            "flowpbx_trunk_up",
            "1 when a trunk is usable (registered, or answering OPTIONS), 0 when not",
            &trunks
                .iter()
                .zip(&ids)
                .map(|((_, t), id)| {
                    (vec![("trunk_id", id.as_str()), ("state", t.summary())], if matches!(t.summary(), "registered" | "up") { 1.0 } else { 0.0 })
                })
                .collect::<Vec<_>>(),
        )?;
        gauge(
            &mut enc,
            "flowpbx_trunk_options_rtt_seconds",
            "the last OPTIONS round trip per trunk",
            &trunks.iter().zip(&ids).filter_map(|((_, t), id)| t.rtt_ms.map(|ms| (vec![("trunk_id", id.as_str())], ms as f64 / 1000.0))).collect::<Vec<_>>(),
        )?;

        if let Some(media) = pbx.media_engine() {
            let m = media.metrics();
            gauge(&mut enc, "flowpbx_media_sessions", "media sessions open", &[(vec![], m.sessions_open as f64)])?;
            counter(&mut enc, "flowpbx_media_sessions_closed", "media sessions closed", &[(vec![], m.sessions_closed)])?;
            gauge(
                &mut enc,
                "flowpbx_rtp_port_pairs",
                "RTP port pairs in use and in the range",
                &[(vec![("state", "in_use")], m.port_pairs_in_use as f64), (vec![("state", "total")], m.port_pairs as f64)],
            )?;
            counter(
                &mut enc,
                "flowpbx_rtp_packets",
                "RTP packets of the closed sessions (both legs)",
                &[(vec![("direction", "received")], m.packets_received), (vec![("direction", "sent")], m.packets_sent)],
            )?;
            counter(&mut enc, "flowpbx_rtp_packets_lost", "RTP packets lost (by sequence numbers) in the closed sessions", &[(vec![], m.packets_lost)])?;
            counter(
                &mut enc,
                "flowpbx_rtp_packets_expected",
                "RTP packets expected (by sequence numbers) in the closed sessions",
                &[(vec![], m.packets_expected)],
            )?;
            histogram(
                &mut enc,
                "flowpbx_rtp_jitter_seconds",
                "interarrival jitter per leg at session close",
                &[(vec![], m.jitter_sum, &media::engine::JITTER_BUCKETS[..], &m.jitter_counts)],
            )?;
            histogram(
                &mut enc,
                "flowpbx_rtp_loss_ratio",
                "fraction of packets lost per leg at session close",
                &[(vec![], m.loss_sum, &media::engine::LOSS_BUCKETS[..], &m.loss_counts)],
            )?;
            counter(&mut enc, "flowpbx_srtp_auth_failures", "SRTP packets dropped for a bad tag", &[(vec![], m.srtp_auth_failures)])?;
            counter(&mut enc, "flowpbx_srtp_replays", "SRTP packets dropped as replays", &[(vec![], m.srtp_replays)])?;
        }
        Ok(())
    }
}

/// RSS, CPU time, open file descriptors and threads of this process, from `/proc/self`.
fn process_metrics(enc: &mut DescriptorEncoder) -> std::fmt::Result {
    let Some(p) = ProcStats::read() else { return Ok(()) };
    gauge(enc, "process_resident_memory_bytes", "resident set size", &[(vec![], p.rss_bytes as f64)])?;
    gauge(enc, "process_virtual_memory_bytes", "virtual memory size", &[(vec![], p.vsize_bytes as f64)])?;
    let mut m = enc.encode_descriptor("process_cpu_seconds", "user and system CPU time", None, MetricType::Counter)?;
    m.encode_counter::<NoLabelSet, _, u64>(&p.cpu_seconds, None)?;
    gauge(enc, "process_open_fds", "open file descriptors", &[(vec![], p.open_fds as f64)])?;
    gauge(enc, "process_threads", "threads", &[(vec![], p.threads as f64)])?;
    Ok(())
}

/// What `/proc/self` says of this process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcStats {
    pub rss_bytes: u64,
    pub vsize_bytes: u64,
    pub cpu_seconds: f64,
    pub open_fds: u64,
    pub threads: u64,
}

impl ProcStats {
    /// Reads `/proc/self/stat` and counts `/proc/self/fd` (None off Linux).
    pub fn read() -> Option<ProcStats> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // fields after the command name (which may hold spaces and parentheses)
        let rest = stat.rsplit_once(')')?.1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        // rest[0] is field 3 (state): utime 14, stime 15, threads 20, vsize 23, rss 24
        let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
        let ticks = CLOCK_TICKS;
        let open_fds = std::fs::read_dir("/proc/self/fd").map(|d| d.count() as u64).unwrap_or(0);
        Some(ProcStats {
            cpu_seconds: (field(14)? + field(15)?) as f64 / ticks,
            threads: field(20)?,
            vsize_bytes: field(23)?,
            rss_bytes: vm_rss_kib()? * 1024,
            open_fds,
        })
    }
}

/// Clock ticks per second of `/proc` CPU times (USER_HZ, fixed at 100 by the kernel ABI).
const CLOCK_TICKS: f64 = 100.0;

/// `VmRSS` of `/proc/self/status`, KiB (page-size independent).
fn vm_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_needs_the_token_or_an_allowed_address() {
        let a = MetricsAccess { token: Some("s3cret".into()), allow: vec!["10.0.0.0/8".parse().unwrap()], separate_listener: false };
        let mut h = HeaderMap::new();
        assert!(!a.permits(Some("192.0.2.1".parse().unwrap()), &h));
        assert!(a.permits(Some("10.1.2.3".parse().unwrap()), &h));
        assert!(a.permits(Some("::ffff:10.1.2.3".parse().unwrap()), &h));
        h.insert(header::AUTHORIZATION, "Bearer wrong".parse().unwrap());
        assert!(!a.permits(Some("192.0.2.1".parse().unwrap()), &h));
        h.insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert!(a.permits(Some("192.0.2.1".parse().unwrap()), &h));
        assert!(!MetricsAccess::default().enabled());
    }

    #[test]
    fn proc_stats_are_read() {
        let p = ProcStats::read().expect("linux /proc");
        assert!(p.rss_bytes > 0 && p.open_fds > 0 && p.threads > 0);
    }
}
