//! Certificates for the unit tests, made with rcgen.

use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair};
use rustls::crypto::CryptoProvider;
use time::OffsetDateTime;

pub fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

pub fn days_from_now(days: i64) -> OffsetDateTime {
    OffsetDateTime::now_utc() + time::Duration::days(days)
}

fn params(names: &[&str], not_before: OffsetDateTime, not_after: OffsetDateTime) -> CertificateParams {
    let mut p = CertificateParams::new(names.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).expect("test names");
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, names[0]);
    p.distinguished_name = dn;
    p.not_before = not_before;
    p.not_after = not_after;
    p
}

/// A self-signed certificate and its key, PEM.
pub fn self_signed(names: &[&str], not_before: OffsetDateTime, not_after: OffsetDateTime) -> (String, String) {
    let key = KeyPair::generate().expect("key");
    let cert = params(names, not_before, not_after).self_signed(&key).expect("cert");
    (cert.pem(), key.serialize_pem())
}

/// A test CA that issues leaf certificates.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pub pem: String,
}

impl TestCa {
    pub fn new() -> TestCa {
        let key = KeyPair::generate().expect("key");
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "FlowPBX unit-test CA");
        p.distinguished_name = dn;
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = p.self_signed(&key).expect("ca");
        TestCa { issuer: Issuer::new(p, key), pem: cert.pem() }
    }

    /// A leaf for `names` valid for `days` from yesterday: (chain PEM, key PEM).
    pub fn issue(&self, names: &[&str], days: i64) -> (String, String) {
        let key = KeyPair::generate().expect("key");
        let cert = params(names, days_from_now(-1), days_from_now(days)).signed_by(&key, &self.issuer).expect("leaf");
        (format!("{}{}", cert.pem(), self.pem), key.serialize_pem())
    }
}

/// Polls `f` until it is true, for at most `limit`.
pub async fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t0 = std::time::Instant::now();
    while t0.elapsed() < limit {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}
