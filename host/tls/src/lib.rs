//! FlowPBX's certificates: one [`CertStore`] holding the server certificate that every TLS
//! listener serves — HTTPS (the API's `/ws` included) and SIP over TLS (5061) — from
//! one of three sources:
//!
//! - **files** (`--tls-cert`, `--tls-key`): checked at start (a bad pair stops the start with
//!   the reason), then watched and served anew when they change; a changed pair that does not
//!   check out is refused and the previous certificate keeps serving ([`files`]);
//! - **ACME** (RFC 8555, any CA; Let's Encrypt by default): HTTP-01, TLS-ALPN-01 or DNS-01
//!   (a script, or Cloudflare), renewed 30 days before the end with backoff on failure
//!   ([`acme`], [`renew`], [`dns`]); the self-signed certificate serves until the first issue;
//! - **self-signed**, made on first start and kept in the data dir so TLS works out of the
//!   box ([`selfsigned`]).
//!
//! TLS servers take [`CertStore::server_config`] (or [`CertStore::resolver`]); the resolver
//! reads the current certificate on every handshake, so a new one is served from the next
//! connection on, and [`CertStore::watch`] says when it changed. [`TlsListener`] accepts
//! connections with handshakes bounded in time and number.
//!
//! **Architecture invariant:** nothing here knows HTTP routing, SIP or the API: the store
//! hands out certificates, challenge answers and status; the listeners' owners serve them.
//! **Architecture invariant:** a certificate is served only after [`cert::parse_pair`]
//! checked it (chain, key, the key matching the leaf, the validity period).
#![forbid(unsafe_code)]

pub mod acme;
pub mod cert;
pub mod dns;
pub mod error;
pub mod files;
mod fsutil;
pub mod listener;
pub mod renew;
pub mod selfsigned;
pub mod store;
#[cfg(test)]
mod testutil;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;

pub use acme::{AcmeConfig, Challenge};
pub use cert::{CertInfo, LoadedCert};
pub use dns::{CloudflareProvider, DnsProvider, ExecProvider};
pub use error::{CertError, DnsError, Error};
pub use files::FilesConfig;
pub use listener::{HandshakeLimits, TlsListener};
pub use renew::{RenewalPolicy, Renewer};
pub use store::{CertResolver, CertStore, Current, Source, TlsHealth, TlsStatus, ACME_TLS_ALPN};
/// The TLS stream type of [`TlsListener`]'s connections.
pub use tokio_rustls;

/// Where the certificate comes from.
#[derive(Debug, Clone)]
pub enum SourceConfig {
    SelfSigned,
    Files(FilesConfig),
    Acme(AcmeConfig),
}

/// What [`start`] needs.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// The data dir: the store keeps its files under `<data-dir>/tls/`.
    pub data_dir: PathBuf,
    pub source: SourceConfig,
    /// The names of the self-signed certificate (the hostname, `localhost`, addresses).
    pub self_signed_names: Vec<String>,
}

/// How often the self-signed certificate is looked at (it is made again near its end).
const SELF_SIGNED_CHECK: Duration = Duration::from_secs(12 * 3600);

/// Starts the store: the certificate is in place when this returns (files read, a stored or
/// new self-signed one, a stored ACME one), and the tasks that watch the files or renew run
/// on the current tokio runtime. Errors: unusable files, an ACME configuration that cannot
/// work, the data dir not writable.
pub fn start(provider: Arc<CryptoProvider>, config: TlsConfig) -> Result<CertStore, Error> {
    let dir = config.data_dir.join("tls");
    fsutil::private_dir(&dir)?;
    match config.source {
        SourceConfig::Files(files) => start_files(provider, files),
        SourceConfig::SelfSigned => {
            let store = CertStore::with_mode(provider, store::Mode::SelfSigned);
            install_self_signed(&store, &dir, &config.self_signed_names)?;
            tokio::spawn(keep_self_signed(store.clone(), dir, config.self_signed_names));
            Ok(store)
        }
        SourceConfig::Acme(acme) => {
            acme.check()?;
            let store = CertStore::with_mode(
                provider,
                store::Mode::Acme { directory: acme.directory.clone(), domains: acme.domains.clone(), challenge: acme.challenge.name() },
            );
            let mut names = acme.domains.iter().filter(|d| !d.starts_with("*.")).cloned().collect::<Vec<_>>();
            for n in &config.self_signed_names {
                if !names.contains(n) {
                    names.push(n.clone());
                }
            }
            install_self_signed(&store, &dir, &names)?;
            let acme_dir = dir.join("acme");
            fsutil::private_dir(&acme_dir)?;
            let mut renewer = Renewer::new(acme.policy);
            if let Some(stored) = acme::stored_certificate(&acme_dir, &acme.domains, store.provider(), SystemTime::now()) {
                renewer.set_certificate(stored.info.not_before, stored.info.not_after);
                store.install(stored, Source::Acme);
            }
            tokio::spawn(acme::run(store.clone(), acme::Client::new(acme, acme_dir), renewer));
            Ok(store)
        }
    }
}

/// The files source alone (no data dir needed).
pub fn start_files(provider: Arc<CryptoProvider>, files: FilesConfig) -> Result<CertStore, Error> {
    let store =
        CertStore::with_mode(provider, store::Mode::Files(store::FilesStatus { cert: files.cert.display().to_string(), key: files.key.display().to_string() }));
    let now = SystemTime::now();
    store.attempt_started(now);
    let since = files::stamps(&files);
    let loaded = files::load(&files, store.provider(), now)?;
    store.install(loaded, Source::File);
    store.attempt_succeeded(now);
    tokio::spawn(files::watch(store.clone(), files, since));
    Ok(store)
}

fn install_self_signed(store: &CertStore, dir: &std::path::Path, names: &[String]) -> Result<(), Error> {
    let (loaded, made) = selfsigned::load_or_generate(dir, names, store.provider(), SystemTime::now())?;
    if made {
        tracing::info!(names = ?names, "made a self-signed certificate");
    }
    store.install(loaded, Source::SelfSigned);
    Ok(())
}

async fn keep_self_signed(store: CertStore, dir: PathBuf, names: Vec<String>) {
    loop {
        tokio::time::sleep(SELF_SIGNED_CHECK).await;
        let near_end = store.current().is_none_or(|c| c.info.remaining(SystemTime::now()) <= selfsigned::REMAKE_BEFORE);
        if near_end && let Err(e) = install_self_signed(&store, &dir, &names) {
            tracing::warn!(error = %e, "cannot renew the self-signed certificate");
        }
    }
}

/// The crypto provider installed for the process, or ring's (the only one this build has).
pub fn default_provider() -> Arc<CryptoProvider> {
    CryptoProvider::get_default().cloned().unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()))
}
