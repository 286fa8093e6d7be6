//! The crate's one error enum, with the narrower [`CertError`] (what is wrong with a
//! certificate and its key) and [`DnsError`] (a DNS-01 provider's failure) inside it.

use std::path::PathBuf;
use std::time::SystemTime;

use crate::cert::rfc3339;

/// What is wrong with a certificate chain and its private key. Each says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    #[error("{path}: cannot read: {why}")]
    Unreadable { path: PathBuf, why: String },
    #[error("{what}: no certificate (a PEM `CERTIFICATE` block) found")]
    NoCertificate { what: String },
    #[error("{what}: no private key (a PEM `PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY` block) found")]
    NoKey { what: String },
    #[error("{what}: malformed PEM: {why}")]
    BadPem { what: String, why: String },
    #[error("the certificate cannot be parsed: {0}")]
    BadCertificate(String),
    #[error("the private key is not usable: {0}")]
    UnsupportedKey(String),
    #[error("the private key does not belong to the certificate (their public keys differ)")]
    KeyMismatch,
    #[error("the certificate expired on {}", rfc3339(*not_after))]
    Expired { not_after: SystemTime },
    #[error("the certificate is not valid before {}", rfc3339(*not_before))]
    NotYetValid { not_before: SystemTime },
}

/// A DNS-01 provider's failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    #[error("DNS script {script}: {why}")]
    Script { script: PathBuf, why: String },
    #[error("Cloudflare API: {0}")]
    Cloudflare(String),
    #[error("no DNS zone of this account holds {0}")]
    NoZone(String),
}

/// Everything the certificate store can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Cert(#[from] CertError),
    #[error(transparent)]
    Dns(#[from] DnsError),
    #[error("ACME: {0}")]
    Acme(String),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("TLS configuration: {0}")]
    Config(String),
    #[error("generating a certificate: {0}")]
    Generate(String),
    #[error("the certificate comes from {0}, not from an ACME CA: there is nothing to renew")]
    NotAcme(&'static str),
}

impl From<instant_acme::Error> for Error {
    fn from(e: instant_acme::Error) -> Self {
        Error::Acme(crate::acme::describe(&e))
    }
}

impl From<rcgen::Error> for Error {
    fn from(e: rcgen::Error) -> Self {
        Error::Generate(e.to_string())
    }
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}
