//! The settings the binary hands to the PBX: where to listen, who we are, the registrar's
//! bounds and the SIP security thresholds. Every threshold has a default; tests on loopback
//! lower them.

use std::net::IpAddr;
use std::time::Duration;

use sip::auth::Algorithm;

/// How much of every SIP message is logged (one structured line per message, carrying the
/// Call-ID, at target `flowpbx::sip`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SipLogMode {
    /// Nothing is formatted.
    #[default]
    Off,
    /// The start line and headers.
    Headers,
    /// The whole message, body included.
    Full,
}

/// The PBX's settings.
#[derive(Debug, Clone)]
pub struct SipConfig {
    /// Address the SIP sockets listen on (`0.0.0.0` for every interface).
    pub bind: IpAddr,
    /// UDP port (0 disables UDP).
    pub udp_port: u16,
    /// TCP port (0 disables TCP).
    pub tcp_port: u16,
    /// TLS port (0, or no [`SipConfig::tls`], disables SIP over TLS).
    pub tls_port: u16,
    /// The TLS server configuration (the certificate store's) and crypto provider; `None`
    /// runs without SIP over TLS.
    pub tls: Option<crate::sip_tls::SipTls>,
    /// SIP over secure WebSocket (RFC 7118) port, path [`crate::WS_PATH`]; served with
    /// [`SipConfig::tls`]'s certificate (0, or no `tls`, disables WSS).
    pub wss_port: u16,
    /// SIP over plain WebSocket port, for loopback testing: bound on 127.0.0.1 only (0: off).
    pub ws_port: u16,
    /// Public address written in Via and Contact for peers outside the local networks.
    pub external_ip: Option<IpAddr>,
    /// The PBX's SIP domain, written in From/To of the calls it places; the address when None.
    pub hostname: Option<String>,
    /// Message logging.
    pub log: SipLogMode,
    /// Key of the stateless digest nonces (derive it from the secret key so nonces survive
    /// a restart).
    pub digest_key: [u8; 32],
    /// Lifetime of a digest nonce.
    pub nonce_ttl: Duration,
    /// The digest algorithms offered in a challenge, in order of preference. MD5 alone by
    /// default: phones built on libre (baresip) give up on a 401 that also offers SHA-256,
    /// and SIPp 3.6 and others take the first challenge and fail when it is SHA-256.
    pub digest_algorithms: Vec<Algorithm>,
    /// RFC 3261 transaction timers.
    pub timers: sip::transaction::Config,
    /// Registrar bounds.
    pub registrar: RegistrarConfig,
    /// SIP security thresholds.
    pub security: SecurityConfig,
    /// How often the in-memory directory (credentials, extensions, trunks, numbers) checks
    /// the store for changes.
    pub directory_refresh: Duration,
    /// Session-Expires granted to callers that ask for a session timer (RFC 4028), seconds.
    pub session_expires: u32,
    /// The User-Agent / Server header value.
    pub user_agent: String,
    /// Emergency numbers and the PBX-wide outbound limit.
    pub outbound: OutboundConfig,
}

/// Outbound calling: the numbers that always go out, and how many calls may be out at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundConfig {
    /// Emergency numbers: routed first, whatever the extension's classes and limits, with its
    /// emergency caller id.
    pub emergency_numbers: Vec<String>,
    /// Outbound calls at once across the PBX (0: none).
    pub max_calls: u32,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        OutboundConfig { emergency_numbers: ["911", "112", "999", "000"].map(String::from).to_vec(), max_calls: 10 }
    }
}

impl SipConfig {
    /// Defaults for everything but the addresses and the key.
    pub fn new(bind: IpAddr, udp_port: u16, tcp_port: u16, digest_key: [u8; 32]) -> Self {
        SipConfig {
            bind,
            udp_port,
            tcp_port,
            tls_port: 0,
            wss_port: 0,
            ws_port: 0,
            tls: None,
            external_ip: None,
            hostname: None,
            log: SipLogMode::Off,
            digest_key,
            nonce_ttl: Duration::from_secs(300),
            digest_algorithms: vec![Algorithm::Md5],
            timers: sip::transaction::Config::default(),
            registrar: RegistrarConfig::default(),
            security: SecurityConfig::default(),
            directory_refresh: Duration::from_millis(500),
            session_expires: 1800,
            user_agent: concat!("FlowPBX/", env!("CARGO_PKG_VERSION")).to_owned(),
            outbound: OutboundConfig::default(),
        }
    }
}

/// Registrar bounds (RFC 3261 §10.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistrarConfig {
    /// Shorter registrations get 423 Interval Too Brief with this Min-Expires, seconds.
    pub min_expires: u32,
    /// Longer registrations are shortened to this, seconds.
    pub max_expires: u32,
    /// Used when the REGISTER names no expiry, seconds.
    pub default_expires: u32,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig { min_expires: 60, max_expires: 3600, default_expires: 3600 }
    }
}

/// SIP security thresholds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityConfig {
    /// Failed authentications from one IP within `auth_fail_window` that get it banned
    /// (0 disables banning).
    pub auth_fail_limit: u32,
    /// The window failed authentications are counted in.
    pub auth_fail_window: Duration,
    /// How long a banned IP is ignored.
    pub ban_duration: Duration,
    /// Requests per second one source IP may send (0 disables the limit); trusted trunk
    /// addresses are exempt.
    pub rate_limit: u32,
    /// Requests a source may send in a burst above the rate.
    pub rate_burst: u32,
    /// User-Agent substrings (case-insensitive) whose requests are dropped without an answer.
    pub scanner_user_agents: Vec<String>,
    /// TCP connections accepted at once, and from one IP.
    pub max_tcp_connections: usize,
    /// TCP connections one IP may hold (TLS connections count as TCP ones).
    pub max_tcp_per_ip: usize,
    /// How long a TLS handshake may take before the connection is closed (a client that
    /// opens a connection and never finishes its handshake holds nothing longer).
    pub tls_handshake_timeout: Duration,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            auth_fail_limit: 10,
            auth_fail_window: Duration::from_secs(60),
            ban_duration: Duration::from_secs(15 * 60),
            rate_limit: 200,
            rate_burst: 400,
            scanner_user_agents: ["friendly-scanner", "sipvicious", "sipcli", "sip-scan", "iwar"].into_iter().map(str::to_owned).collect(),
            max_tcp_connections: 4096,
            max_tcp_per_ip: 64,
            tls_handshake_timeout: Duration::from_secs(10),
        }
    }
}
