//! Secrets at rest: AES-256-GCM sealing, the secret key, SIP digest HA1s, argon2id hashes.

use std::fmt;
use std::io::Write;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{AeadCore, Aes256Gcm, Key, Nonce};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use md5::Md5;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::error::{Result, StoreError};

const NONCE_LEN: usize = 12;

/// The 32-byte key everything secret is sealed under.
///
/// Invariant: exactly 32 bytes; never logged (Debug prints nothing of it).
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    /// Parses a key given as 64 hex digits (what `secret.key` holds and what
    /// `FLOWPBX_SECRET_KEY` takes).
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        let bytes = hex::decode(text).map_err(|_| StoreError::InvalidSecretKey("expected 64 hexadecimal digits".into()))?;
        let arr: [u8; 32] = bytes.try_into().map_err(|_| StoreError::InvalidSecretKey("expected 64 hexadecimal digits (32 bytes)".into()))?;
        Ok(Self(arr))
    }

    pub fn generate() -> Self {
        let mut k = [0u8; 32];
        OsRng.fill_bytes(&mut k);
        Self(k)
    }

    /// Reads `path`, or creates it (mode 0600) holding a new random key.
    pub fn load_or_create(path: &Path) -> Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text).map_err(|e| match e {
                StoreError::InvalidSecretKey(m) => StoreError::InvalidSecretKey(format!("{}: {m}", path.display())),
                other => other,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate();
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    opts.mode(0o600);
                }
                let mut f = opts.open(path)?;
                f.write_all(hex::encode(key.0).as_bytes())?;
                f.write_all(b"\n")?;
                f.sync_all()?;
                tracing::info!(path = %path.display(), "created a new secret key");
                Ok(key)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A key for another purpose derived from this one (SHA-256 of a label and the key), so
    /// that e.g. the JWT signing key is not the sealing key.
    pub fn derive(&self, label: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"flowpbx-derive-v1\0");
        h.update(label.as_bytes());
        h.update([0u8]);
        h.update(self.0);
        h.finalize().into()
    }
}

/// Seals and opens secrets with AES-256-GCM. The associated data names the column a value
/// belongs to, so a sealed value copied into another column does not open.
#[derive(Clone)]
pub struct Cipher {
    aead: Aes256Gcm,
}

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cipher(..)")
    }
}

impl Cipher {
    pub fn new(key: &SecretKey) -> Self {
        Self { aead: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key.0)) }
    }

    /// nonce (12 bytes) || ciphertext || tag
    pub fn seal(&self, column: &str, plaintext: &[u8]) -> Vec<u8> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + 16);
        out.extend_from_slice(&nonce);
        // Encryption with a valid key and a fresh nonce only fails for plaintexts over 64 GiB.
        let ct = self.aead.encrypt(&nonce, Payload { msg: plaintext, aad: column.as_bytes() }).unwrap_or_default();
        out.extend_from_slice(&ct);
        out
    }

    pub fn open(&self, column: &str, sealed: &[u8]) -> Result<Vec<u8>> {
        if sealed.len() < NONCE_LEN + 16 {
            return Err(StoreError::Decrypt);
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        self.aead.decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: column.as_bytes() }).map_err(|_| StoreError::Decrypt)
    }

    pub fn seal_str(&self, column: &str, s: &str) -> Vec<u8> {
        self.seal(column, s.as_bytes())
    }

    pub fn open_string(&self, column: &str, sealed: &[u8]) -> Result<String> {
        String::from_utf8(self.open(column, sealed)?).map_err(|_| StoreError::Decrypt)
    }
}

/// HA1 for SIP digest authentication (RFC 2617 / RFC 7616): H(username ":" realm ":" password)
/// as lowercase hex, for MD5 and SHA-256.
pub fn ha1_md5(username: &str, realm: &str, password: &str) -> String {
    let mut h = Md5::new();
    h.update(username.as_bytes());
    h.update(b":");
    h.update(realm.as_bytes());
    h.update(b":");
    h.update(password.as_bytes());
    hex::encode(h.finalize())
}

pub fn ha1_sha256(username: &str, realm: &str, password: &str) -> String {
    let mut h = Sha256::new();
    h.update(username.as_bytes());
    h.update(b":");
    h.update(realm.as_bytes());
    h.update(b":");
    h.update(password.as_bytes());
    hex::encode(h.finalize())
}

/// SHA-256 as lowercase hex (session ids are stored as the hash of the cookie token).
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// A random token of `bytes` bytes as lowercase hex.
pub fn random_token(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// argon2id, 9 MiB, 4 passes, 1 lane: one of OWASP's equivalent recommended settings,
/// chosen over 19 MiB/2 passes because the allocator keeps a hash's memory after it is freed,
/// and idle memory matters more here than the pass count.
fn hasher() -> Argon2<'static> {
    // these parameters are within argon2's limits, so new() cannot fail; the default is the
    // fallback all the same
    let params = argon2::Params::new(9 * 1024, 4, 1, None).unwrap_or_default();
    Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
}

/// Hashes a password (argon2id, PHC string). Runs on the blocking pool: hashing takes tens
/// of milliseconds of CPU. Verification reads the parameters from the hash, so hashes made
/// with other parameters keep working.
pub async fn hash_password(password: &str) -> Result<String> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        hasher().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| StoreError::Hash(e.to_string()))
    })
    .await
    .map_err(|e| StoreError::Hash(e.to_string()))?
}

/// Checks `password` against an argon2 PHC string; false for a mismatch or a malformed hash.
pub async fn verify_password(password: &str, phc: &str) -> bool {
    let password = password.to_owned();
    let phc = phc.to_owned();
    tokio::task::spawn_blocking(move || match PasswordHash::new(&phc) {
        Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    })
    .await
    .unwrap_or(false)
}

/// Equality in time independent of where the first difference is.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_roundtrip_and_column_binding() {
        let c = Cipher::new(&SecretKey::generate());
        let s = c.seal_str("extensions.sip_password", "hunter22");
        assert!(!s.windows(8).any(|w| w == b"hunter22"));
        assert_eq!(c.open_string("extensions.sip_password", &s).unwrap(), "hunter22");
        assert!(c.open("trunks.password", &s).is_err());
        let other = Cipher::new(&SecretKey::generate());
        assert!(other.open("extensions.sip_password", &s).is_err());
        assert!(c.open("x", &[1, 2, 3]).is_err());
    }

    #[test]
    fn ha1_known_values() {
        // RFC 2617 §3.5: Mufasa / testrealm@host.com / Circle Of Life
        assert_eq!(ha1_md5("Mufasa", "testrealm@host.com", "Circle Of Life"), "939e7578ed9e3c518a452acee763bce9");
        // RFC 7616 §3.9.1: Mufasa / http-auth@example.org / Circle of Life (SHA-256)
        assert_eq!(ha1_sha256("Mufasa", "http-auth@example.org", "Circle of Life"), "7987c64c30e25f1b74be53f966b49b90f2808aa92faf9a00262392d7b4794232");
    }

    #[test]
    fn key_parse() {
        assert!(SecretKey::parse("zz").is_err());
        assert!(SecretKey::parse(&"ab".repeat(31)).is_err());
        assert!(SecretKey::parse(&"ab".repeat(32)).is_ok());
    }

    #[tokio::test]
    async fn argon2_roundtrip() {
        let h = hash_password("correct horse").await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h).await);
        assert!(!verify_password("wrong", &h).await);
        assert!(!verify_password("x", "not a hash").await);
    }

    #[test]
    fn key_file_created_0600() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secret.key");
        let k1 = SecretKey::load_or_create(&p).unwrap();
        let k2 = SecretKey::load_or_create(&p).unwrap();
        assert_eq!(k1.0, k2.0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
}
