//! A certificate chain and its private key, checked: parsed from PEM, the key loaded by the
//! crypto provider and matched against the leaf certificate, the validity period checked, and
//! what the certificate says read out for status ([`CertInfo`]).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use serde::Serialize;

use crate::error::CertError;

/// How far a certificate's start of validity may lie in the future (clock skew between the
/// CA and this machine).
pub const NOT_BEFORE_SKEW: Duration = Duration::from_secs(300);

/// What a certificate says, for status pages and health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertInfo {
    /// The subject's distinguished name, e.g. `CN=pbx.example.com`.
    pub subject: String,
    /// Subject alternative names: DNS names and IP addresses, as text.
    pub sans: Vec<String>,
    /// The issuer's distinguished name.
    pub issuer: String,
    #[serde(serialize_with = "ser_time")]
    pub not_before: SystemTime,
    #[serde(serialize_with = "ser_time")]
    pub not_after: SystemTime,
    /// Serial number, hex.
    pub serial: String,
    /// SHA-256 of the leaf certificate's DER, lower-case hex.
    pub sha256_fingerprint: String,
    /// Issued by itself (subject = issuer): no client trusts it without being told to.
    pub self_signed: bool,
}

impl CertInfo {
    /// Whether the certificate names `name` (a DNS name, case-insensitive, wildcards over one
    /// label; or an IP address).
    pub fn covers(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.sans.iter().any(|san| {
            let san = san.to_ascii_lowercase();
            if san == name {
                return true;
            }
            match (san.strip_prefix("*."), name.split_once('.')) {
                (Some(base), Some((first, rest))) => !first.is_empty() && rest == base,
                _ => false,
            }
        })
    }

    /// Time left until `not_after` (zero once expired).
    pub fn remaining(&self, now: SystemTime) -> Duration {
        self.not_after.duration_since(now).unwrap_or_default()
    }
}

/// A checked certificate chain and key, ready to serve.
#[derive(Debug, Clone)]
pub struct LoadedCert {
    pub key: Arc<CertifiedKey>,
    pub info: CertInfo,
}

/// Parses and checks a PEM certificate chain (leaf first) and a PEM private key (PKCS#8,
/// PKCS#1 or SEC1). `cert_what`/`key_what` name where each came from in errors (a path).
///
/// Refused: no certificate, no key, malformed PEM, a key the provider cannot use, a key that
/// does not belong to the leaf certificate, a certificate outside its validity period at
/// `now` (not-before with [`NOT_BEFORE_SKEW`]).
pub fn parse_pair(
    cert_pem: &[u8],
    key_pem: &[u8],
    cert_what: &str,
    key_what: &str,
    provider: &CryptoProvider,
    now: SystemTime,
) -> Result<LoadedCert, CertError> {
    let chain = parse_chain(cert_pem, cert_what)?;
    let key = parse_key(key_pem, key_what)?;
    let info = describe(&chain[0])?;
    if now > info.not_after {
        return Err(CertError::Expired { not_after: info.not_after });
    }
    if info.not_before > now + NOT_BEFORE_SKEW {
        return Err(CertError::NotYetValid { not_before: info.not_before });
    }
    let signing = provider.key_provider.load_private_key(key).map_err(|e| CertError::UnsupportedKey(e.to_string()))?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) => {}
        // the key cannot tell its public key: nothing to compare, the handshake will tell
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => return Err(CertError::KeyMismatch),
        Err(e) => return Err(CertError::BadCertificate(e.to_string())),
    }
    Ok(LoadedCert { key: Arc::new(certified), info })
}

fn pem_error(what: &str, e: pem::Error) -> CertError {
    CertError::BadPem { what: what.to_owned(), why: e.to_string() }
}

/// The certificates of a PEM text, in order.
pub fn parse_chain(pem_text: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let mut chain = Vec::new();
    for c in CertificateDer::pem_slice_iter(pem_text) {
        chain.push(c.map_err(|e| pem_error(what, e))?);
    }
    if chain.is_empty() {
        return Err(CertError::NoCertificate { what: what.to_owned() });
    }
    Ok(chain)
}

/// The first private key of a PEM text.
pub fn parse_key(pem_text: &[u8], what: &str) -> Result<PrivateKeyDer<'static>, CertError> {
    match PrivateKeyDer::from_pem_slice(pem_text) {
        Ok(k) => Ok(k),
        Err(pem::Error::NoItemsFound) => Err(CertError::NoKey { what: what.to_owned() }),
        Err(e) => Err(pem_error(what, e)),
    }
}

/// What a DER certificate says.
pub fn describe(der: &CertificateDer<'_>) -> Result<CertInfo, CertError> {
    let (_, x509) = x509_parser::parse_x509_certificate(der.as_ref()).map_err(|e| CertError::BadCertificate(e.to_string()))?;
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = x509.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(d) => sans.push((*d).to_owned()),
                x509_parser::extensions::GeneralName::IPAddress(b) => {
                    let ip = match b.len() {
                        4 => <[u8; 4]>::try_from(*b).ok().map(IpAddr::from),
                        16 => <[u8; 16]>::try_from(*b).ok().map(IpAddr::from),
                        _ => None,
                    };
                    if let Some(ip) = ip {
                        sans.push(ip.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    let time = |t: i64| if t >= 0 { UNIX_EPOCH + Duration::from_secs(t as u64) } else { UNIX_EPOCH };
    let digest = ring::digest::digest(&ring::digest::SHA256, der.as_ref());
    Ok(CertInfo {
        subject: x509.subject().to_string(),
        sans,
        issuer: x509.issuer().to_string(),
        not_before: time(x509.validity().not_before.timestamp()),
        not_after: time(x509.validity().not_after.timestamp()),
        serial: hex(x509.tbs_certificate.raw_serial()),
        sha256_fingerprint: hex(digest.as_ref()),
        self_signed: x509.subject().as_raw() == x509.issuer().as_raw(),
    })
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// RFC 3339 in UTC, for messages and the wire.
pub fn rfc3339(t: SystemTime) -> String {
    time::OffsetDateTime::from(t).format(&time::format_description::well_known::Rfc3339).unwrap_or_else(|_| format!("{t:?}"))
}

pub(crate) fn ser_time<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*t))
}

pub(crate) fn ser_opt_time<S: serde::Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&rfc3339(*t)),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[test]
    fn a_good_pair_is_described() {
        let (cert, key) = self_signed(&["pbx.example.test", "127.0.0.1"], days_from_now(-1), days_from_now(30));
        let l = parse_pair(cert.as_bytes(), key.as_bytes(), "c.pem", "k.pem", &provider(), SystemTime::now()).unwrap();
        assert_eq!(l.info.sans, vec!["pbx.example.test".to_owned(), "127.0.0.1".to_owned()]);
        assert!(l.info.self_signed);
        assert!(l.info.subject.contains("CN=pbx.example.test"), "{}", l.info.subject);
        assert_eq!(l.info.sha256_fingerprint.len(), 64);
        assert!(l.info.covers("PBX.example.test") && l.info.covers("127.0.0.1") && !l.info.covers("other.test"));
    }

    #[test]
    fn wildcards_cover_one_label() {
        let (cert, _) = self_signed(&["*.example.test"], days_from_now(-1), days_from_now(30));
        let info = describe(&parse_chain(cert.as_bytes(), "c").unwrap()[0]).unwrap();
        assert!(info.covers("pbx.example.test"));
        assert!(!info.covers("a.pbx.example.test") && !info.covers("example.test"));
    }

    #[test]
    fn bad_pairs_are_refused_with_what_is_wrong() {
        let p = provider();
        let now = SystemTime::now();
        let (cert, key) = self_signed(&["a.test"], days_from_now(-10), days_from_now(-1));
        let e = parse_pair(cert.as_bytes(), key.as_bytes(), "c", "k", &p, now).unwrap_err();
        assert!(matches!(e, CertError::Expired { .. }), "{e}");
        assert!(e.to_string().starts_with("the certificate expired on "), "{e}");

        let (cert, key) = self_signed(&["a.test"], days_from_now(2), days_from_now(20));
        assert!(matches!(parse_pair(cert.as_bytes(), key.as_bytes(), "c", "k", &p, now), Err(CertError::NotYetValid { .. })));

        let (cert, _) = self_signed(&["a.test"], days_from_now(-1), days_from_now(20));
        let (_, other_key) = self_signed(&["a.test"], days_from_now(-1), days_from_now(20));
        let e = parse_pair(cert.as_bytes(), other_key.as_bytes(), "c", "k", &p, now).unwrap_err();
        assert_eq!(e, CertError::KeyMismatch);

        // a key where the certificate should be, and the other way round
        let (cert, key) = self_signed(&["a.test"], days_from_now(-1), days_from_now(20));
        assert_eq!(parse_pair(key.as_bytes(), key.as_bytes(), "c.pem", "k.pem", &p, now).unwrap_err(), CertError::NoCertificate { what: "c.pem".into() });
        assert_eq!(parse_pair(cert.as_bytes(), cert.as_bytes(), "c.pem", "k.pem", &p, now).unwrap_err(), CertError::NoKey { what: "k.pem".into() });
        assert!(matches!(parse_pair(b"", key.as_bytes(), "c", "k", &p, now), Err(CertError::NoCertificate { .. })));

        // a broken base64 body
        let broken = cert.replace(&cert.lines().nth(2).unwrap_or_default().to_owned(), "!!!!");
        assert!(matches!(parse_pair(broken.as_bytes(), key.as_bytes(), "c", "k", &p, now), Err(CertError::BadPem { .. } | CertError::BadCertificate(_))));
        // garbage DER inside a well-formed PEM block
        let garbage = "-----BEGIN CERTIFICATE-----\nAAECAwQF\n-----END CERTIFICATE-----\n";
        assert!(matches!(parse_pair(garbage.as_bytes(), key.as_bytes(), "c", "k", &p, now), Err(CertError::BadCertificate(_))));
    }
}
