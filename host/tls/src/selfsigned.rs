//! The self-signed certificate FlowPBX makes on first start, so that TLS works out of the
//! box: kept under `<data-dir>/tls/` (mode 0600) and made again when it nears its end or no
//! longer names the server's names.

use std::path::Path;
use std::time::{Duration, SystemTime};

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use rustls::crypto::CryptoProvider;

use crate::cert::{parse_pair, LoadedCert};
use crate::error::Error;
use crate::fsutil::{read_if_exists, write_private};

pub const CERT_FILE: &str = "self-signed.pem";
pub const KEY_FILE: &str = "self-signed.key";

/// Lifetime of a generated certificate.
pub const LIFETIME: Duration = Duration::from_secs(365 * 86400);
/// A stored one this close to its end is made again.
pub const REMAKE_BEFORE: Duration = Duration::from_secs(30 * 86400);

/// The self-signed certificate in `dir` for `names` (DNS names and IP addresses; the first
/// is the subject's CN), made (and stored) when missing, unreadable, near its end or not
/// naming all of `names`. The flag says whether it was made now.
pub fn load_or_generate(dir: &Path, names: &[String], provider: &CryptoProvider, now: SystemTime) -> Result<(LoadedCert, bool), Error> {
    let (cert_path, key_path) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
    if let (Some(c), Some(k)) = (read_if_exists(&cert_path)?, read_if_exists(&key_path)?) {
        match parse_pair(&c, &k, &cert_path.display().to_string(), &key_path.display().to_string(), provider, now) {
            Ok(l) if l.info.remaining(now) > REMAKE_BEFORE && names.iter().all(|n| l.info.covers(n)) => return Ok((l, false)),
            Ok(_) => tracing::info!("the self-signed certificate is near its end or names other names: making a new one"),
            Err(e) => tracing::warn!(error = %e, "the stored self-signed certificate is unusable: making a new one"),
        }
    }
    let (cert_pem, key_pem) = generate(names, now)?;
    let loaded = parse_pair(cert_pem.as_bytes(), key_pem.as_bytes(), "generated certificate", "generated key", provider, now)?;
    write_private(&key_path, key_pem.as_bytes())?;
    write_private(&cert_path, cert_pem.as_bytes())?;
    Ok((loaded, true))
}

/// A new self-signed certificate (ECDSA P-256) for `names`: (certificate PEM, key PEM).
pub fn generate(names: &[String], now: SystemTime) -> Result<(String, String), Error> {
    let first = names.first().ok_or_else(|| Error::Config("a self-signed certificate needs at least one name".into()))?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(names.to_vec())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, first.as_str());
    dn.push(DnType::OrganizationName, "FlowPBX (self-signed)");
    params.distinguished_name = dn;
    let now = time::OffsetDateTime::from(now);
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::try_from(LIFETIME).map_err(|e| Error::Generate(e.to_string()))?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::provider;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn made_once_kept_private_and_remade_when_names_change() {
        let dir = tempfile::tempdir().unwrap();
        let tls = dir.path().join("tls");
        let p = provider();
        let now = SystemTime::now();
        let names = vec!["pbx.example.test".to_owned(), "localhost".to_owned(), "127.0.0.1".to_owned()];
        let (first, made) = load_or_generate(&tls, &names, &p, now).unwrap();
        assert!(made);
        assert!(first.info.self_signed);
        assert_eq!(first.info.sans, names);
        assert!(first.info.subject.contains("CN=pbx.example.test"));
        for f in [CERT_FILE, KEY_FILE] {
            let mode = std::fs::metadata(tls.join(f)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{f}");
        }
        assert_eq!(std::fs::metadata(&tls).unwrap().permissions().mode() & 0o777, 0o700);

        // the second start reuses it
        let (again, made) = load_or_generate(&tls, &names, &p, now).unwrap();
        assert!(!made);
        assert_eq!(again.info.sha256_fingerprint, first.info.sha256_fingerprint);

        // another hostname: a new one
        let other = vec!["other.example.test".to_owned()];
        let (third, made) = load_or_generate(&tls, &other, &p, now).unwrap();
        assert!(made);
        assert_ne!(third.info.sha256_fingerprint, first.info.sha256_fingerprint);

        // near its end: a new one
        let later = now + LIFETIME - REMAKE_BEFORE + Duration::from_secs(86400);
        let (_, made) = load_or_generate(&tls, &other, &p, later).unwrap();
        assert!(made);

        // a damaged file: a new one
        std::fs::write(tls.join(KEY_FILE), b"garbage").unwrap();
        let (_, made) = load_or_generate(&tls, &other, &p, now).unwrap();
        assert!(made);
    }
}
