//! Configuration: the command line and environment (clap), layered over the stored settings
//! and the defaults: flag > environment > stored (`system_config`) > default.
//!
//! The result is [`Config`], made of plain per-crate settings structs that the binary hands to
//! each crate; there is no global configuration.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context};
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use pbx::settings::{keys, Resolved, SettingLayer, SettingSource, SettingsLayers};

/// FlowPBX: a self-hosted phone system whose call routing is a flow graph of WebAssembly nodes.
///
/// Every setting is a flag and an environment variable (FLOWPBX_<NAME>). Flags beat the
/// environment, the environment beats settings stored from the web UI, and those beat the
/// defaults shown here.
#[derive(Debug, Parser)]
#[command(name = "flowpbx", version, about, long_about, args_conflicts_with_subcommands = false)]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the PBX server (what `flowpbx` does with no subcommand).
    Serve,
    /// Write, build and try node plugins (WebAssembly components).
    Node {
        #[command(subcommand)]
        command: crate::flow_cli::NodeCommand,
    },
    /// Work with call flows outside the server.
    Flow {
        #[command(subcommand)]
        command: crate::flow_cli::FlowCommand,
    },
    /// Write a backup archive of the data dir (online: the server may run).
    Backup {
        /// The archive to write (refuses to overwrite).
        #[arg(long)]
        out: PathBuf,
        /// Include call recordings (they can be large).
        #[arg(long)]
        recordings: bool,
    },
    /// Restore a backup archive into an empty data dir (--data-dir).
    Restore {
        /// The archive `flowpbx backup` wrote.
        file: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SipLog {
    /// no SIP message logging
    Off,
    /// first line and headers of every SIP message
    Headers,
    /// whole SIP messages, bodies included
    Full,
}

impl SipLog {
    pub fn as_str(&self) -> &'static str {
        match self {
            SipLog::Off => "off",
            SipLog::Headers => "headers",
            SipLog::Full => "full",
        }
    }
}

/// Which RTP sources a call leg may learn before it latches (strict RTP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RtpLearning {
    /// the SDP's address at once; its IP on another port, or any address when the SDP's is
    /// private (RFC 1918, CGNAT, link-local, ULA), after the probation
    Nat,
    /// any address after the probation (peers that send from elsewhere than their SDP says)
    Any,
}

/// How the ACME CA checks that this server holds the domains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AcmeChallenge {
    /// a file on http://<domain>/.well-known/acme-challenge/ (port 80: --acme-http-port)
    #[value(name = "http-01")]
    Http01,
    /// a TLS handshake on the HTTPS port (443)
    #[value(name = "tls-alpn-01")]
    TlsAlpn01,
    /// a TXT record, put by --acme-dns-script or Cloudflare (--cloudflare-api-token); the
    /// only way to a wildcard certificate
    #[value(name = "dns-01")]
    Dns01,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// human-readable lines
    Text,
    /// one JSON object per line
    Json,
}

/// The settings, as flags and environment variables. The field names are the stored settings'
/// keys (pbx::settings::keys).
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Directory for the database, secret key, prompts, recordings and voicemail.
    #[arg(long, env = "FLOWPBX_DATA_DIR", default_value = "./data", global = true)]
    pub data_dir: PathBuf,
    /// Address the HTTP, SIP and RTP sockets listen on.
    #[arg(long, env = "FLOWPBX_BIND_ADDRESS", default_value = "0.0.0.0", global = true)]
    pub bind_address: IpAddr,
    /// HTTP port of the web UI and REST API.
    #[arg(long, env = "FLOWPBX_HTTP_PORT", default_value_t = 8080, global = true)]
    pub http_port: u16,
    /// Sets both SIP UDP and TCP ports (sip-udp-port and sip-tcp-port win when also given).
    #[arg(long, env = "FLOWPBX_SIP_PORT", global = true)]
    pub sip_port: Option<u16>,
    /// SIP port over UDP.
    #[arg(long, env = "FLOWPBX_SIP_UDP_PORT", default_value_t = 5060, global = true)]
    pub sip_udp_port: u16,
    /// SIP port over TCP.
    #[arg(long, env = "FLOWPBX_SIP_TCP_PORT", default_value_t = 5060, global = true)]
    pub sip_tcp_port: u16,
    /// SIP port over TLS, served with the same certificate as HTTPS (0: no SIP over TLS).
    #[arg(long, env = "FLOWPBX_SIP_TLS_PORT", default_value_t = 5061, global = true)]
    pub sip_tls_port: u16,
    /// SIP over secure WebSocket port for WebRTC phones (RFC 7118, path /ws/sip), served with
    /// the same certificate as HTTPS (0: no WSS).
    #[arg(long, env = "FLOWPBX_SIP_WSS_PORT", default_value_t = 8089, global = true)]
    pub sip_wss_port: u16,
    /// SIP over plain WebSocket, bound on 127.0.0.1 only, for local testing (0: off).
    #[arg(long, env = "FLOWPBX_SIP_WS_PORT", default_value_t = 0, global = true)]
    pub sip_ws_port: u16,
    /// Public IP address put in SDP and Contact headers when behind NAT.
    #[arg(long, env = "FLOWPBX_EXTERNAL_IP", global = true)]
    pub external_ip: Option<IpAddr>,
    /// Host name of this PBX (SIP domain; default realm).
    #[arg(long, env = "FLOWPBX_HOSTNAME", global = true)]
    pub hostname: Option<String>,
    /// SIP digest realm [default: the hostname, else "flowpbx"].
    #[arg(long, env = "FLOWPBX_SIP_REALM", global = true)]
    pub sip_realm: Option<String>,
    /// Lowest RTP port.
    #[arg(long, env = "FLOWPBX_RTP_PORT_MIN", default_value_t = 10000, global = true)]
    pub rtp_port_min: u16,
    /// Highest RTP port.
    #[arg(long, env = "FLOWPBX_RTP_PORT_MAX", default_value_t = 20000, global = true)]
    pub rtp_port_max: u16,
    /// Hang up a call after this many seconds without RTP.
    #[arg(long, env = "FLOWPBX_MEDIA_TIMEOUT_SECS", default_value_t = 60, global = true)]
    pub media_timeout_secs: u64,
    /// Strict RTP: consecutive in-sequence packets of one SSRC that a source other than the
    /// address the SDP named must send before a call leg accepts it (0 or 1: its first).
    #[arg(long, env = "FLOWPBX_RTP_STRICT_PROBATION", default_value_t = 4, value_parser = clap::value_parser!(u32).range(0..=50), global = true)]
    pub rtp_strict_probation: u32,
    /// Strict RTP: which sources a call leg may learn before it latches.
    #[arg(long, env = "FLOWPBX_RTP_STRICT_LEARNING", value_enum, default_value = "nat", global = true)]
    pub rtp_strict_learning: RtpLearning,
    /// Networks the built-in webhook node may reach although they are not public (loopback,
    /// RFC 1918, CGNAT, link-local, ULA): CIDRs or addresses, comma-separated (an internal CRM
    /// at 10.1.2.3 needs `10.1.2.3` or `10.1.0.0/16`). Plugins get theirs from their grants.
    #[arg(long, env = "FLOWPBX_WEBHOOK_ALLOW_NETWORKS", value_delimiter = ',', global = true)]
    pub webhook_allow_networks: Vec<String>,
    /// Ports the built-in webhook node may use besides 80 and 443, comma-separated.
    #[arg(long, env = "FLOWPBX_WEBHOOK_ALLOW_PORTS", value_delimiter = ',', global = true)]
    pub webhook_allow_ports: Vec<u16>,
    /// Where voicemail e-mail is submitted: `smtp://host:587?tls=required` (STARTTLS),
    /// `smtps://host:465` (implicit TLS), credentials as `smtp://user:password@host…`
    /// (percent-encoded). Unset: e-mail is queued and not sent.
    #[arg(long, env = "FLOWPBX_SMTP_URL", global = true, hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// The sender of FlowPBX's e-mail.
    #[arg(long, env = "FLOWPBX_SMTP_FROM", default_value = "FlowPBX <flowpbx@localhost>", global = true)]
    pub smtp_from: String,
    /// Emergency numbers, comma-separated: dialled from any extension they go out first,
    /// whatever its call classes and limits, with its emergency caller id.
    #[arg(long, env = "FLOWPBX_EMERGENCY_NUMBERS", value_delimiter = ',', default_value = "911,112,999,000", global = true)]
    pub emergency_numbers: Vec<String>,
    /// Outbound calls at once across the PBX (0: none).
    #[arg(long, env = "FLOWPBX_MAX_OUTBOUND_CALLS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(0..=10000), global = true)]
    pub max_outbound_calls: u32,
    /// SIP message logging.
    #[arg(long, env = "FLOWPBX_SIP_LOG", value_enum, default_value = "off", global = true)]
    pub sip_log: SipLog,
    /// Failed SIP authentications from one IP, within --sip-auth-fail-window-secs, that get the
    /// IP ignored for --sip-ban-secs (0: never ban).
    #[arg(long, env = "FLOWPBX_SIP_AUTH_FAIL_LIMIT", default_value_t = 10, global = true)]
    pub sip_auth_fail_limit: u32,
    /// The window failed SIP authentications are counted in, seconds.
    #[arg(long, env = "FLOWPBX_SIP_AUTH_FAIL_WINDOW_SECS", default_value_t = 60, global = true)]
    pub sip_auth_fail_window_secs: u64,
    /// How long a banned IP is ignored, seconds.
    #[arg(long, env = "FLOWPBX_SIP_BAN_SECS", default_value_t = 900, global = true)]
    pub sip_ban_secs: u64,
    /// SIP requests per second one source IP may send (0: no limit); trusted trunks are exempt.
    #[arg(long, env = "FLOWPBX_SIP_RATE_LIMIT", default_value_t = 200, global = true)]
    pub sip_rate_limit: u32,
    /// SIP requests one source IP may send in a burst above the rate.
    #[arg(long, env = "FLOWPBX_SIP_RATE_BURST", default_value_t = 400, global = true)]
    pub sip_rate_burst: u32,
    /// Digest algorithms offered to phones, in order of preference: md5, sha-256 (many phones
    /// fail on a challenge that offers SHA-256, so md5 alone is the default).
    #[arg(long, env = "FLOWPBX_SIP_DIGEST_ALGORITHMS", default_value = "md5", value_delimiter = ',', global = true)]
    pub sip_digest_algorithms: Vec<String>,
    /// Shortest registration accepted (shorter ones get 423 Interval Too Brief), seconds.
    #[arg(long, env = "FLOWPBX_SIP_MIN_EXPIRES", default_value_t = 60, global = true)]
    pub sip_min_expires: u32,
    /// Longest registration granted (longer ones are shortened), seconds.
    #[arg(long, env = "FLOWPBX_SIP_MAX_EXPIRES", default_value_t = 3600, global = true)]
    pub sip_max_expires: u32,
    /// Stop recording calls when the data dir's disk has less free space than this (MiB).
    #[arg(long, env = "FLOWPBX_RECORDING_MIN_FREE_MB", default_value_t = 500, global = true)]
    pub recording_min_free_mb: u64,
    /// Hours between scheduled backups into <data-dir>/backups (0: none).
    #[arg(long, env = "FLOWPBX_BACKUP_INTERVAL_HOURS", default_value_t = 24, global = true)]
    pub backup_interval_hours: u64,
    /// Scheduled backups kept (the oldest are deleted).
    #[arg(long, env = "FLOWPBX_BACKUP_KEEP", default_value_t = 7, global = true)]
    pub backup_keep: u64,
    /// Log filter: a level (error, warn, info, debug, trace) or tracing directives
    /// ("info,api=debug").
    #[arg(long, env = "FLOWPBX_LOG_LEVEL", default_value = "info", global = true)]
    pub log_level: String,
    /// Log format.
    #[arg(long, env = "FLOWPBX_LOG_FORMAT", value_enum, default_value = "text", global = true)]
    pub log_format: LogFormat,
    /// Directory for compiled node components (a cache: safe to delete) [default:
    /// <data-dir>/cache; for the node commands $XDG_CACHE_HOME/flowpbx or ~/.cache/flowpbx].
    #[arg(long, env = "FLOWPBX_CACHE_DIR", global = true)]
    pub cache_dir: Option<PathBuf>,
    /// Key that seals secrets at rest: 64 hex digits [default: <data-dir>/secret.key, created
    /// on first start].
    #[arg(long, env = "FLOWPBX_SECRET_KEY", hide_env_values = true, global = true)]
    pub secret_key: Option<String>,
    /// HTTPS port of the web UI and REST API, 0 for none [default: 443; when the default
    /// cannot be bound the server runs without HTTPS and health says why].
    #[arg(long, env = "FLOWPBX_HTTPS_PORT", global = true)]
    pub https_port: Option<u16>,
    /// PEM certificate chain (the server's certificate first) for HTTPS and SIP over TLS;
    /// read again when it changes [default: ACME with --acme, else a self-signed certificate
    /// made on first start].
    #[arg(long, env = "FLOWPBX_TLS_CERT", global = true)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "FLOWPBX_TLS_KEY", global = true)]
    pub tls_key: Option<PathBuf>,
    /// Get the certificate from an ACME CA (Let's Encrypt unless --acme-directory) and renew
    /// it; for --acme-domains, else the hostname.
    #[arg(long, env = "FLOWPBX_ACME", global = true)]
    pub acme: bool,
    /// Names of the ACME certificate, comma-separated (implies --acme) [default: the hostname].
    #[arg(long, env = "FLOWPBX_ACME_DOMAINS", value_delimiter = ',', global = true)]
    pub acme_domains: Vec<String>,
    /// The ACME CA's directory URL.
    #[arg(long, env = "FLOWPBX_ACME_DIRECTORY", default_value = tls::acme::LETS_ENCRYPT, global = true)]
    pub acme_directory: String,
    /// Contact e-mail given to the ACME CA (expiry notices).
    #[arg(long, env = "FLOWPBX_ACME_EMAIL", global = true)]
    pub acme_email: Option<String>,
    /// How the ACME CA validates the domains.
    #[arg(long, env = "FLOWPBX_ACME_CHALLENGE", value_enum, default_value = "http-01", global = true)]
    pub acme_challenge: AcmeChallenge,
    /// Port of the plain-HTTP listener that answers HTTP-01 (and redirects to HTTPS), 0 for
    /// none; CAs validate on 80.
    #[arg(long, env = "FLOWPBX_ACME_HTTP_PORT", default_value_t = 80, global = true)]
    pub acme_http_port: u16,
    /// PEM root certificate trusted for the ACME CA's own HTTPS instead of the system's (a
    /// private CA).
    #[arg(long, env = "FLOWPBX_ACME_CA_ROOT", global = true)]
    pub acme_ca_root: Option<PathBuf>,
    /// DNS-01 by a script run as `script add|remove <name> <value>`.
    #[arg(long, env = "FLOWPBX_ACME_DNS_SCRIPT", global = true)]
    pub acme_dns_script: Option<PathBuf>,
    /// DNS-01 through Cloudflare with this API token (Zone.DNS:Edit).
    #[arg(long, env = "FLOWPBX_CLOUDFLARE_API_TOKEN", hide_env_values = true, global = true)]
    pub cloudflare_api_token: Option<String>,
    /// Cloudflare's API base URL.
    #[arg(long, env = "FLOWPBX_CLOUDFLARE_API", default_value = tls::dns::CLOUDFLARE_API, global = true)]
    pub cloudflare_api: String,
    /// Seconds between putting the DNS-01 records and asking the CA to look.
    #[arg(long, env = "FLOWPBX_ACME_DNS_WAIT_SECS", default_value_t = 30, global = true)]
    pub acme_dns_wait_secs: u64,
    /// Bearer token a Prometheus scrape of /metrics must present (metrics are off without
    /// this or --metrics-allow).
    #[arg(long, env = "FLOWPBX_METRICS_TOKEN", hide_env_values = true, global = true)]
    pub metrics_token: Option<String>,
    /// Networks that may scrape /metrics without the token, comma-separated CIDRs.
    #[arg(long, env = "FLOWPBX_METRICS_ALLOW", value_delimiter = ',', global = true)]
    pub metrics_allow: Vec<ipnet::IpNet>,
    /// Serve /metrics on this address only (e.g. 127.0.0.1:9090), not on the HTTP ports.
    #[arg(long, env = "FLOWPBX_METRICS_LISTEN", global = true)]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Seconds a drain (SIGTERM, POST /api/v1/system/drain) lets calls in progress finish
    /// before ending them; a second SIGTERM ends them at once.
    #[arg(long, env = "FLOWPBX_DRAIN_TIMEOUT_SECS", default_value_t = 3600, global = true)]
    pub drain_timeout_secs: u64,
    /// Log to this file (rotated by size) instead of standard error.
    #[arg(long, env = "FLOWPBX_LOG_FILE", global = true)]
    pub log_file: Option<PathBuf>,
    /// Rotate the log file when it reaches this many MiB.
    #[arg(long, env = "FLOWPBX_LOG_MAX_MB", default_value_t = 50, global = true)]
    pub log_max_mb: u64,
    /// Rotated log files kept (file.1 … file.N).
    #[arg(long, env = "FLOWPBX_LOG_KEEP", default_value_t = 5, global = true)]
    pub log_keep: u32,
}

/// HTTP server settings.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub bind: IpAddr,
    pub port: u16,
}

/// What the SIP stack reads (`sip_config` in main.rs).
#[derive(Debug, Clone)]
pub struct SipSettings {
    pub bind: IpAddr,
    pub udp_port: u16,
    pub tcp_port: u16,
    pub tls_port: u16,
    pub wss_port: u16,
    pub ws_port: u16,
    pub external_ip: Option<IpAddr>,
    pub hostname: Option<String>,
    pub realm: String,
    pub log: SipLog,
    pub auth_fail_limit: u32,
    pub auth_fail_window_secs: u64,
    pub ban_secs: u64,
    pub rate_limit: u32,
    pub rate_burst: u32,
    pub min_expires: u32,
    pub max_expires: u32,
    pub digest_algorithms: Vec<call::DigestAlgorithm>,
    pub emergency_numbers: Vec<String>,
    pub max_outbound_calls: u32,
}

/// What the media engine reads (`media_config` in main.rs).
#[derive(Debug, Clone)]
pub struct MediaSettings {
    pub bind: IpAddr,
    pub external_ip: Option<IpAddr>,
    pub rtp_port_min: u16,
    pub rtp_port_max: u16,
    pub media_timeout_secs: u64,
    pub rtp_strict_probation: u32,
    pub rtp_strict_learning: RtpLearning,
    pub recording_min_free_mb: u64,
}

/// Where the certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    SelfSigned,
    Files { cert: PathBuf, key: PathBuf },
    Acme(AcmeSettings),
}

/// DNS-01's provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsProvider {
    Script(PathBuf),
    Cloudflare { api: String, token: String },
}

/// The ACME source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeSettings {
    pub directory: String,
    pub domains: Vec<String>,
    pub email: Option<String>,
    pub challenge: AcmeChallenge,
    pub ca_root: Option<PathBuf>,
    pub dns: Option<DnsProvider>,
    pub dns_wait_secs: u64,
}

/// HTTPS and its certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// 0: no HTTPS
    pub https_port: u16,
    /// given by a flag or the environment (a failure to bind it stops the start)
    pub https_port_explicit: bool,
    pub source: TlsSource,
    /// the HTTP-01 listener's port (0: none); used with ACME's http-01 only
    pub acme_http_port: u16,
    /// names of the self-signed certificate
    pub self_signed_names: Vec<String>,
}

/// What the flow engine is started with.
#[derive(Debug, Clone, Default)]
pub struct FlowSettings {
    /// What the built-in nodes' HTTP (the webhook) may reach besides public 80/443.
    pub builtin_egress: flow::egress::Egress,
}

/// The effective configuration.
#[derive(Debug, Clone)]
#[allow(dead_code)] // `data_dir`: main opens the data dir from the settings before this is built
pub struct Config {
    pub data_dir: PathBuf,
    pub http: HttpSettings,
    pub sip: SipSettings,
    pub media: MediaSettings,
    pub flow: FlowSettings,
    pub tls: TlsSettings,
}

/// Emergency numbers: each 2–6 of 0-9 (`911`, `112`, `000`).
fn emergency_numbers(v: &[String]) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for n in v.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        if !(2..=6).contains(&n.len()) || !n.bytes().all(|b| b.is_ascii_digit()) {
            bail!("--emergency-numbers: {n:?} must be 2 to 6 digits");
        }
        out.push(n.to_owned());
    }
    Ok(out)
}

/// The webhook's networks and ports, each checked.
fn builtin_egress(s: &Settings) -> anyhow::Result<flow::egress::Egress> {
    let mut egress = flow::egress::Egress::default();
    for n in &s.webhook_allow_networks {
        let n = flow::egress::parse_network(n).map_err(|e| anyhow::anyhow!("--webhook-allow-networks {n:?}: {e}"))?;
        egress.networks.push(n);
    }
    for &p in &s.webhook_allow_ports {
        if p == 0 {
            bail!("--webhook-allow-ports: 0 is no port");
        }
        egress.ports.push(p);
    }
    Ok(egress)
}

/// HTTPS and the certificate's source, from the flags; `hostname` is the resolved setting.
fn tls_settings(s: &Settings, hostname: Option<&str>, external_ip: Option<IpAddr>, http_port: u16) -> anyhow::Result<TlsSettings> {
    let files = match (&s.tls_cert, &s.tls_key) {
        (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
        (None, None) => None,
        (None, Some(_)) => bail!("--tls-key was given without --tls-cert (the certificate it belongs to)"),
        (Some(_), None) => bail!("--tls-cert was given without --tls-key"),
    };
    let acme = s.acme || !s.acme_domains.is_empty();
    let source = match (files, acme) {
        (Some(_), true) => bail!("choose one source of the certificate: --tls-cert/--tls-key or --acme"),
        (Some((cert, key)), false) => TlsSource::Files { cert, key },
        (None, false) => TlsSource::SelfSigned,
        (None, true) => {
            let mut domains: Vec<String> =
                s.acme_domains.iter().map(|d| d.trim().trim_end_matches('.').to_ascii_lowercase()).filter(|d| !d.is_empty()).collect();
            if domains.is_empty() {
                match hostname {
                    Some(h) => domains.push(h.trim().trim_end_matches('.').to_ascii_lowercase()),
                    None => bail!("--acme needs --acme-domains or a hostname (--hostname)"),
                }
            }
            domains.dedup();
            for d in &domains {
                tls::acme::check_domain(d).map_err(|why| anyhow!("ACME domain {d:?}: {why}"))?;
            }
            if let Some(e) = &s.acme_email
                && (e.contains(char::is_whitespace) || e.contains(',') || e.split_once('@').is_none_or(|(u, h)| u.is_empty() || !h.contains('.')))
            {
                bail!("--acme-email {e:?} is not an e-mail address");
            }
            let dns = match (&s.acme_dns_script, &s.cloudflare_api_token) {
                (Some(_), Some(_)) => bail!("choose one DNS-01 provider: --acme-dns-script or --cloudflare-api-token"),
                (Some(script), None) => Some(DnsProvider::Script(script.clone())),
                (None, Some(token)) => Some(DnsProvider::Cloudflare { api: s.cloudflare_api.clone(), token: token.clone() }),
                (None, None) => None,
            };
            if s.acme_challenge == AcmeChallenge::Dns01 && dns.is_none() {
                bail!("--acme-challenge dns-01 needs --acme-dns-script or --cloudflare-api-token");
            }
            if let Some(d) = domains.iter().find(|d| d.starts_with("*."))
                && s.acme_challenge != AcmeChallenge::Dns01
            {
                bail!("ACME domain {d:?}: a wildcard needs --acme-challenge dns-01");
            }
            TlsSource::Acme(AcmeSettings {
                directory: s.acme_directory.clone(),
                domains,
                email: s.acme_email.clone(),
                challenge: s.acme_challenge,
                ca_root: s.acme_ca_root.clone(),
                dns,
                dns_wait_secs: s.acme_dns_wait_secs,
            })
        }
    };
    let https_port = s.https_port.unwrap_or(443);
    if https_port != 0 && https_port == http_port {
        bail!("https_port and http_port are both {https_port}");
    }
    let acme_http_port = match &source {
        TlsSource::Acme(a) if a.challenge == AcmeChallenge::Http01 => s.acme_http_port,
        _ => 0,
    };
    if acme_http_port != 0 && acme_http_port == https_port {
        bail!("--acme-http-port and --https-port are both {https_port}");
    }
    if let TlsSource::Acme(a) = &source
        && a.challenge == AcmeChallenge::TlsAlpn01
        && https_port == 0
    {
        bail!("--acme-challenge tls-alpn-01 needs HTTPS (--https-port is 0)");
    }
    let mut names: Vec<String> = Vec::new();
    if let Some(h) = hostname {
        names.push(h.trim().trim_end_matches('.').to_ascii_lowercase());
    }
    names.extend(["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()]);
    for ip in [external_ip, Some(s.bind_address).filter(|ip| !ip.is_unspecified())].into_iter().flatten() {
        names.push(ip.to_string());
    }
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    Ok(TlsSettings { https_port, https_port_explicit: s.https_port.is_some(), source, acme_http_port, self_signed_names: names })
}

/// The stored-setting keys with their clap ids (the same names).
const LAYERED: &[&str] = &[
    keys::HTTP_PORT,
    keys::SIP_UDP_PORT,
    keys::SIP_TCP_PORT,
    keys::SIP_TLS_PORT,
    keys::EXTERNAL_IP,
    keys::HOSTNAME,
    keys::SIP_REALM,
    keys::RTP_PORT_MIN,
    keys::RTP_PORT_MAX,
    keys::MEDIA_TIMEOUT_SECS,
    keys::SIP_LOG,
    keys::RECORDING_MIN_FREE_MB,
    keys::BACKUP_INTERVAL_HOURS,
    keys::BACKUP_KEEP,
];

/// Parses the command line.
pub fn parse() -> (Cli, ArgMatches) {
    // `--version` names the database schema this binary writes, too
    let version: &'static str = Box::leak(format!("{} (schema {})", env!("CARGO_PKG_VERSION"), store::latest_schema_version()).into_boxed_str());
    let matches = Cli::command().version(version).get_matches();
    match Cli::from_arg_matches(&matches) {
        Ok(cli) => (cli, matches),
        Err(e) => e.exit(),
    }
}

fn raw(m: &ArgMatches, id: &str) -> Option<String> {
    m.get_raw(id).and_then(|mut v| v.next()).map(|s| s.to_string_lossy().into_owned())
}

fn source(m: &ArgMatches, id: &str) -> Option<SettingSource> {
    match m.value_source(id) {
        Some(ValueSource::CommandLine) => Some(SettingSource::Flag),
        Some(ValueSource::EnvVariable) => Some(SettingSource::Env),
        _ => None,
    }
}

/// The flag/env/default layers of every stored setting, from the parsed command line.
pub fn layers(m: &ArgMatches) -> SettingsLayers {
    let cmd = Cli::command();
    let default_of = |id: &str| {
        cmd.get_arguments().find(|a| a.get_id().as_str() == id).and_then(|a| a.get_default_values().first().map(|v| v.to_string_lossy().into_owned()))
    };
    // what the administrator would change: the flag as typed, or the environment variable
    let named = |id: &str, src: SettingSource| {
        let arg = cmd.get_arguments().find(|a| a.get_id().as_str() == id)?;
        match src {
            SettingSource::Flag => arg.get_long().map(|l| format!("--{l}")),
            SettingSource::Env => arg.get_env().map(|e| e.to_string_lossy().into_owned()),
            _ => None,
        }
    };
    let sip_port = source(m, "sip_port").and_then(|s| raw(m, "sip_port").map(|v| (v, s)));
    SettingsLayers::new(
        LAYERED
            .iter()
            .map(|key| {
                let mut fixed = source(m, key).and_then(|s| raw(m, key).map(|v| (v, s)));
                let mut fixed_by = fixed.as_ref().and_then(|(_, s)| named(key, *s));
                // --sip-port stands for both UDP and TCP unless those are given themselves
                if (*key == keys::SIP_UDP_PORT || *key == keys::SIP_TCP_PORT) && sip_port.is_some() {
                    let specific_is_flag = fixed.as_ref().is_some_and(|(_, s)| *s == SettingSource::Flag);
                    let general_is_flag = sip_port.as_ref().is_some_and(|(_, s)| *s == SettingSource::Flag);
                    if fixed.is_none() || (general_is_flag && !specific_is_flag) {
                        fixed = sip_port.clone();
                        fixed_by = sip_port.as_ref().and_then(|(_, s)| named("sip_port", *s));
                    }
                }
                SettingLayer { key, fixed, fixed_by, default: default_of(key) }
            })
            .collect(),
    )
}

fn get<'a>(resolved: &'a BTreeMap<&'static str, Resolved>, key: &str) -> Option<&'a str> {
    resolved.get(key).and_then(|r| r.value.as_deref()).filter(|v| !v.is_empty())
}

fn parse_value<T: std::str::FromStr>(resolved: &BTreeMap<&'static str, Resolved>, key: &str) -> anyhow::Result<T>
where
    T::Err: std::fmt::Display,
{
    let r = resolved.get(key).ok_or_else(|| anyhow!("setting {key} has no value"))?;
    let v = r.value.as_deref().ok_or_else(|| anyhow!("setting {key} has no value"))?;
    v.parse::<T>().map_err(|e| anyhow!("setting {key} = {v:?} (from {:?}) is invalid: {e}", r.source))
}

fn digest_algorithms(names: &[String]) -> anyhow::Result<Vec<call::DigestAlgorithm>> {
    let mut out = Vec::new();
    for n in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        match call::DigestAlgorithm::parse(Some(n)) {
            Some(a) if a == a.base() => {
                if !out.contains(&a) {
                    out.push(a)
                }
            }
            _ => bail!("sip_digest_algorithms: {n:?} must be md5 or sha-256"),
        }
    }
    if out.is_empty() {
        bail!("sip_digest_algorithms names no algorithm");
    }
    Ok(out)
}

/// Builds the effective configuration from the layers and the stored settings.
pub fn resolve(s: &Settings, layers: &SettingsLayers, stored: &BTreeMap<String, String>) -> anyhow::Result<Config> {
    let r = layers.resolve(stored);
    let external_ip = match get(&r, keys::EXTERNAL_IP) {
        Some(v) => Some(v.parse::<IpAddr>().with_context(|| format!("external_ip {v:?} is not an IP address"))?),
        None => None,
    };
    let sip_log = match get(&r, keys::SIP_LOG).unwrap_or("off") {
        "off" => SipLog::Off,
        "headers" => SipLog::Headers,
        "full" => SipLog::Full,
        other => bail!("sip_log {other:?} must be off, headers or full"),
    };
    let config = Config {
        data_dir: s.data_dir.clone(),
        http: HttpSettings { bind: s.bind_address, port: parse_value(&r, keys::HTTP_PORT)? },
        sip: SipSettings {
            bind: s.bind_address,
            udp_port: parse_value(&r, keys::SIP_UDP_PORT)?,
            tcp_port: parse_value(&r, keys::SIP_TCP_PORT)?,
            tls_port: parse_value(&r, keys::SIP_TLS_PORT)?,
            wss_port: s.sip_wss_port,
            ws_port: s.sip_ws_port,
            external_ip,
            hostname: get(&r, keys::HOSTNAME).map(str::to_owned),
            realm: get(&r, keys::SIP_REALM).unwrap_or(pbx::settings::DEFAULT_REALM).to_owned(),
            log: sip_log,
            auth_fail_limit: s.sip_auth_fail_limit,
            auth_fail_window_secs: s.sip_auth_fail_window_secs,
            ban_secs: s.sip_ban_secs,
            rate_limit: s.sip_rate_limit,
            rate_burst: s.sip_rate_burst,
            min_expires: s.sip_min_expires,
            max_expires: s.sip_max_expires,
            digest_algorithms: digest_algorithms(&s.sip_digest_algorithms)?,
            emergency_numbers: emergency_numbers(&s.emergency_numbers)?,
            max_outbound_calls: s.max_outbound_calls,
        },
        media: MediaSettings {
            bind: s.bind_address,
            external_ip,
            rtp_port_min: parse_value(&r, keys::RTP_PORT_MIN)?,
            rtp_port_max: parse_value(&r, keys::RTP_PORT_MAX)?,
            media_timeout_secs: parse_value(&r, keys::MEDIA_TIMEOUT_SECS)?,
            rtp_strict_probation: s.rtp_strict_probation,
            rtp_strict_learning: s.rtp_strict_learning,
            recording_min_free_mb: parse_value(&r, keys::RECORDING_MIN_FREE_MB)?,
        },
        flow: FlowSettings { builtin_egress: builtin_egress(s)? },
        tls: tls_settings(s, get(&r, keys::HOSTNAME), external_ip, parse_value(&r, keys::HTTP_PORT)?)?,
    };
    if config.media.rtp_port_min >= config.media.rtp_port_max {
        bail!("rtp_port_min ({}) must be below rtp_port_max ({})", config.media.rtp_port_min, config.media.rtp_port_max);
    }
    if config.sip.min_expires > config.sip.max_expires {
        bail!("sip_min_expires ({}) must not exceed sip_max_expires ({})", config.sip.min_expires, config.sip.max_expires);
    }
    if config.http.port == config.sip.tcp_port {
        bail!("http_port and sip_tcp_port are both {}", config.http.port);
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(args: &[&str]) -> ArgMatches {
        Cli::command().try_get_matches_from(std::iter::once("flowpbx").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn defaults_and_precedence() {
        let m = matches(&[]);
        let cli = Cli::from_arg_matches(&m).unwrap();
        let l = layers(&m);
        let c = resolve(&cli.settings, &l, &BTreeMap::new()).unwrap();
        assert_eq!((c.http.port, c.sip.udp_port, c.sip.tcp_port, c.sip.tls_port), (8080, 5060, 5060, 5061));
        assert_eq!((c.media.rtp_port_min, c.media.rtp_port_max, c.media.media_timeout_secs), (10000, 20000, 60));
        assert_eq!((c.media.rtp_strict_probation, c.media.rtp_strict_learning), (4, RtpLearning::Nat));
        assert_eq!(c.sip.realm, "flowpbx");
        assert_eq!(cli.settings.data_dir, PathBuf::from("./data"));

        // stored beats default, flag beats stored
        let mut stored = BTreeMap::new();
        stored.insert("http_port".to_owned(), "9000".to_owned());
        stored.insert("hostname".to_owned(), "pbx.example.com".to_owned());
        let c = resolve(&cli.settings, &l, &stored).unwrap();
        assert_eq!(c.http.port, 9000);
        assert_eq!(c.sip.realm, "pbx.example.com");
        let m = matches(&["--http-port", "9100", "--sip-port", "5080"]);
        let cli = Cli::from_arg_matches(&m).unwrap();
        let c = resolve(&cli.settings, &layers(&m), &stored).unwrap();
        assert_eq!((c.http.port, c.sip.udp_port, c.sip.tcp_port), (9100, 5080, 5080));
        let m = matches(&["--sip-port", "5080", "--sip-tcp-port", "5090", "serve"]);
        let cli = Cli::from_arg_matches(&m).unwrap();
        assert!(matches!(cli.command, Some(Command::Serve)));
        let c = resolve(&cli.settings, &layers(&m), &stored).unwrap();
        assert_eq!((c.sip.udp_port, c.sip.tcp_port), (5080, 5090));
        // the Settings page names what fixes a value: the flag as typed
        let by = |l: &SettingsLayers, k: &str| l.layer(k).and_then(|x| x.fixed_by.clone());
        let l = layers(&m);
        assert_eq!(by(&l, keys::SIP_UDP_PORT).as_deref(), Some("--sip-port"));
        assert_eq!(by(&l, keys::SIP_TCP_PORT).as_deref(), Some("--sip-tcp-port"));
        assert_eq!(by(&l, keys::HTTP_PORT), None);
    }

    #[test]
    fn a_flag_is_named_as_what_fixes_a_setting() {
        // (an environment variable is named FLOWPBX_…: the web e2e test starts the binary so)
        let m = Cli::command().try_get_matches_from(["flowpbx", "--rtp-port-min", "30000"]).unwrap();
        let l = layers(&m);
        assert_eq!(l.layer(keys::RTP_PORT_MIN).and_then(|x| x.fixed_by.clone()).as_deref(), Some("--rtp-port-min"));
        assert_eq!(l.layer(keys::RTP_PORT_MIN).and_then(|x| x.fixed.clone()).map(|f| f.1), Some(SettingSource::Flag));
    }

    #[test]
    fn strict_rtp_flags() {
        let m = matches(&["--rtp-strict-probation", "0", "--rtp-strict-learning", "any"]);
        let cli = Cli::from_arg_matches(&m).unwrap();
        let c = resolve(&cli.settings, &layers(&m), &BTreeMap::new()).unwrap();
        assert_eq!((c.media.rtp_strict_probation, c.media.rtp_strict_learning), (0, RtpLearning::Any));
        for bad in [&["--rtp-strict-probation", "51"][..], &["--rtp-strict-probation", "-1"], &["--rtp-strict-learning", "off"]] {
            let args = std::iter::once("flowpbx").chain(bad.iter().copied());
            assert!(Cli::command().try_get_matches_from(args).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn outbound_flags() {
        let m = matches(&[]);
        let cli = Cli::from_arg_matches(&m).unwrap();
        let c = resolve(&cli.settings, &layers(&m), &BTreeMap::new()).unwrap();
        assert_eq!(c.sip.emergency_numbers, vec!["911", "112", "999", "000"]);
        assert_eq!(c.sip.max_outbound_calls, 10);
        let m = matches(&["--emergency-numbers", "000,106", "--max-outbound-calls", "4"]);
        let cli = Cli::from_arg_matches(&m).unwrap();
        let c = resolve(&cli.settings, &layers(&m), &BTreeMap::new()).unwrap();
        assert_eq!((c.sip.emergency_numbers.clone(), c.sip.max_outbound_calls), (vec!["000".to_string(), "106".to_string()], 4));
        let m = matches(&["--emergency-numbers", "9x1"]);
        let cli = Cli::from_arg_matches(&m).unwrap();
        assert!(resolve(&cli.settings, &layers(&m), &BTreeMap::new()).is_err());
    }

    #[test]
    fn webhook_egress_flags() {
        let m = matches(&["--webhook-allow-networks", "10.1.0.0/16,127.0.0.1", "--webhook-allow-ports", "8080"]);
        let cli = Cli::from_arg_matches(&m).unwrap();
        let c = resolve(&cli.settings, &layers(&m), &BTreeMap::new()).unwrap();
        assert_eq!(c.flow.builtin_egress.networks.len(), 2);
        assert_eq!(c.flow.builtin_egress.ports, vec![8080]);
        let m = matches(&["--webhook-allow-networks", "10.1.2.3/8"]);
        let cli = Cli::from_arg_matches(&m).unwrap();
        let err = resolve(&cli.settings, &layers(&m), &BTreeMap::new()).unwrap_err().to_string();
        assert!(err.contains("webhook-allow-networks"), "{err}");
        let m = matches(&[]);
        let cli = Cli::from_arg_matches(&m).unwrap();
        assert!(resolve(&cli.settings, &layers(&m), &BTreeMap::new()).unwrap().flow.builtin_egress.networks.is_empty());
    }

    fn tls_of(args: &[&str]) -> anyhow::Result<TlsSettings> {
        let m = matches(args);
        let cli = Cli::from_arg_matches(&m).unwrap();
        resolve(&cli.settings, &layers(&m), &BTreeMap::new()).map(|c| c.tls)
    }

    #[test]
    fn tls_sources() {
        let t = tls_of(&[]).unwrap();
        assert_eq!((t.https_port, t.https_port_explicit, t.source, t.acme_http_port), (443, false, TlsSource::SelfSigned, 0));
        assert!(t.self_signed_names.contains(&"localhost".to_owned()));
        let t = tls_of(&["--https-port", "0", "--tls-cert", "/c.pem", "--tls-key", "/k.pem"]).unwrap();
        assert_eq!((t.https_port, t.https_port_explicit), (0, true));
        assert_eq!(t.source, TlsSource::Files { cert: "/c.pem".into(), key: "/k.pem".into() });
        let t = tls_of(&["--hostname", "PBX.example.com", "--acme", "--acme-email", "ops@example.com"]).unwrap();
        let TlsSource::Acme(a) = &t.source else { panic!("{t:?}") };
        assert_eq!((a.domains.clone(), a.challenge, t.acme_http_port), (vec!["pbx.example.com".to_owned()], AcmeChallenge::Http01, 80));
        assert_eq!(a.directory, tls::acme::LETS_ENCRYPT);
        assert_eq!(t.self_signed_names[0], "pbx.example.com");
        let t = tls_of(&["--acme-domains", "a.example.com,*.example.com", "--acme-challenge", "dns-01", "--acme-dns-script", "/bin/dns"]).unwrap();
        let TlsSource::Acme(a) = &t.source else { panic!() };
        assert_eq!(a.dns, Some(DnsProvider::Script("/bin/dns".into())));
        assert_eq!(t.acme_http_port, 0, "no HTTP-01 listener for dns-01");
    }

    #[test]
    fn tls_mistakes_are_refused_with_the_flag_named() {
        for (args, says) in [
            (&["--tls-key", "/k.pem"][..], "--tls-key was given without --tls-cert"),
            (&["--tls-cert", "/c.pem"], "without --tls-key"),
            (&["--tls-cert", "/c", "--tls-key", "/k", "--acme", "--hostname", "a.example.com"], "choose one source"),
            (&["--acme"], "needs --acme-domains or a hostname"),
            (&["--acme-domains", "localhost"], "two labels"),
            (&["--acme-domains", "*.example.com"], "wildcard needs --acme-challenge dns-01"),
            (&["--acme-domains", "a.example.com", "--acme-challenge", "dns-01"], "needs --acme-dns-script"),
            (&["--acme-domains", "a.example.com", "--acme-email", "nobody"], "not an e-mail"),
            (&["--acme-domains", "a.example.com", "--acme-challenge", "tls-alpn-01", "--https-port", "0"], "needs HTTPS"),
            (&["--https-port", "8080"], "https_port and http_port"),
        ] {
            let e = tls_of(args).unwrap_err().to_string();
            assert!(e.contains(says), "{args:?}: {e}");
        }
    }

    #[test]
    fn bad_values_are_refused() {
        let m = matches(&["--rtp-port-min", "30000"]);
        let cli = Cli::from_arg_matches(&m).unwrap();
        assert!(resolve(&cli.settings, &layers(&m), &BTreeMap::new()).is_err());
        let mut stored = BTreeMap::new();
        stored.insert("sip_udp_port".to_owned(), "nope".to_owned());
        let m = matches(&[]);
        let cli = Cli::from_arg_matches(&m).unwrap();
        let err = resolve(&cli.settings, &layers(&m), &stored).unwrap_err().to_string();
        assert!(err.contains("sip_udp_port"), "{err}");
    }
}
