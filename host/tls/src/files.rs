//! Certificate files (`--tls-cert`, `--tls-key`): read at start, then watched (their size,
//! modification time and inode, polled) and read again when either changes. A pair that does
//! not check out (unreadable, no certificate, no key, expired, key of another certificate) is
//! refused with the reason in status and health, and the certificate served so far stays.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;

use crate::cert::{parse_pair, LoadedCert};
use crate::error::{CertError, Error};
use crate::store::{CertStore, Source};

/// How often the files are checked for changes by default.
pub const DEFAULT_POLL: Duration = Duration::from_secs(2);

/// The certificate chain and key files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilesConfig {
    /// PEM: the certificate, then its intermediates.
    pub cert: PathBuf,
    /// PEM: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// How often to look for changes.
    pub poll: Duration,
}

fn read(path: &Path) -> Result<Vec<u8>, CertError> {
    std::fs::read(path).map_err(|e| CertError::Unreadable { path: path.to_path_buf(), why: e.to_string() })
}

/// Reads and checks the pair.
pub fn load(cfg: &FilesConfig, provider: &CryptoProvider, now: SystemTime) -> Result<LoadedCert, CertError> {
    let cert = read(&cfg.cert)?;
    let key = read(&cfg.key)?;
    parse_pair(&cert, &key, &cfg.cert.display().to_string(), &cfg.key.display().to_string(), provider, now)
}

/// What changes when a file is replaced or rewritten.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp(Option<(u64, i64, i64, u64)>);

fn stamp(path: &Path) -> Stamp {
    Stamp(std::fs::metadata(path).ok().map(|m| (m.len(), m.mtime(), m.mtime_nsec(), m.ino())))
}

/// Reads the files again and serves them, or records why not.
pub(crate) fn reload(store: &CertStore, cfg: &FilesConfig) -> Result<(), Error> {
    let now = SystemTime::now();
    store.attempt_started(now);
    match load(cfg, store.provider(), now) {
        Ok(l) => {
            store.install(l, Source::File);
            store.attempt_succeeded(now);
            Ok(())
        }
        Err(e) => {
            let e = Error::from(e);
            tracing::warn!(error = %e, "certificate files refused; still serving the previous certificate");
            store.attempt_failed(now, &e);
            Err(e)
        }
    }
}

/// The files' stamps, taken before they are read, so a change made while (or after) they
/// are read is seen by [`watch`].
pub(crate) struct Stamps((Stamp, Stamp));

pub(crate) fn stamps(cfg: &FilesConfig) -> Stamps {
    Stamps((stamp(&cfg.cert), stamp(&cfg.key)))
}

/// Watches the files for as long as the process runs.
pub(crate) async fn watch(store: CertStore, cfg: FilesConfig, since: Stamps) {
    let mut last = since.0;
    loop {
        tokio::time::sleep(cfg.poll).await;
        let now = (stamp(&cfg.cert), stamp(&cfg.key));
        if now != last {
            last = now;
            let _ = reload(&store, &cfg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use std::sync::Arc;

    fn write(path: &Path, text: &str) {
        // a new file renamed over the old one, as editors and certbot do
        let tmp = path.with_extension("new");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }

    #[tokio::test]
    async fn reloaded_on_change_and_bad_files_keep_the_old_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = FilesConfig { cert: dir.path().join("cert.pem"), key: dir.path().join("key.pem"), poll: Duration::from_millis(30) };
        let ca = TestCa::new();
        let (c, k) = ca.issue(&["one.test"], 90);
        write(&cfg.cert, &c);
        write(&cfg.key, &k);
        let store = crate::start_files(Arc::new(provider()), cfg.clone()).unwrap();
        assert_eq!(store.current().unwrap().info.sans, vec!["one.test"]);
        assert_eq!(store.status().mode, Source::File);
        let mut rx = store.watch();
        rx.borrow_and_update();

        // a new pair: served without a restart
        let (c2, k2) = ca.issue(&["two.test"], 90);
        write(&cfg.key, &k2);
        write(&cfg.cert, &c2);
        tokio::time::timeout(Duration::from_secs(10), async {
            while store.current().unwrap().info.sans != vec!["two.test"] {
                rx.changed().await.unwrap();
            }
        })
        .await
        .unwrap_or_else(|_| panic!("the new certificate is not served: {:?}", store.status()));
        let v = store.version();
        assert!(store.status().last_error.is_none());

        // an expired certificate: refused, the old one stays, status says why
        let (old, old_key) = self_signed(&["three.test"], days_from_now(-30), days_from_now(-1));
        write(&cfg.key, &old_key);
        write(&cfg.cert, &old);
        assert!(
            eventually(Duration::from_secs(10), || store.status().last_error.as_deref().is_some_and(|e| e.contains("expired"))).await,
            "{:?}",
            store.status()
        );
        assert_eq!(store.version(), v);
        assert_eq!(store.current().unwrap().info.sans, vec!["two.test"]);
        assert_eq!(store.health(SystemTime::now()).status, "degraded");

        // a key of another certificate
        let (c4, _) = ca.issue(&["four.test"], 90);
        write(&cfg.cert, &c4);
        assert!(eventually(Duration::from_secs(10), || store.status().last_error.as_deref().is_some_and(|e| e.contains("does not belong"))).await);
        assert_eq!(store.current().unwrap().info.sans, vec!["two.test"]);

        // the key file gone: unreadable, named
        std::fs::remove_file(&cfg.key).unwrap();
        assert!(
            eventually(Duration::from_secs(10), || store.status().last_error.as_deref().is_some_and(|e| e.contains("key.pem") && e.contains("cannot read")))
                .await
        );
        assert_eq!(store.version(), v);

        // fixed: served, and the error is gone
        let (c5, k5) = ca.issue(&["five.test"], 90);
        write(&cfg.key, &k5);
        write(&cfg.cert, &c5);
        assert!(eventually(Duration::from_secs(10), || store.current().unwrap().info.sans == vec!["five.test"]).await);
        assert!(store.status().last_error.is_none());
        assert_eq!(store.health(SystemTime::now()).status, "ok");
    }

    #[test]
    fn bad_files_at_start_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = FilesConfig { cert: dir.path().join("cert.pem"), key: dir.path().join("key.pem"), poll: DEFAULT_POLL };
        let e = load(&cfg, &provider(), SystemTime::now()).unwrap_err();
        assert!(e.to_string().contains("cert.pem: cannot read"), "{e}");
        let (c, k) = self_signed(&["a.test"], days_from_now(-1), days_from_now(9));
        std::fs::write(&cfg.cert, &k).unwrap();
        std::fs::write(&cfg.key, &k).unwrap();
        assert!(matches!(load(&cfg, &provider(), SystemTime::now()), Err(CertError::NoCertificate { .. })));
        std::fs::write(&cfg.cert, &c).unwrap();
        assert!(load(&cfg, &provider(), SystemTime::now()).is_ok());
    }
}
