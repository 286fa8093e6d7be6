//! ACME (RFC 8555) with instant-acme: the account (created once, kept under
//! `<data-dir>/tls/acme/`), orders for the configured domains validated by HTTP-01 (the
//! HTTP listeners answer `/.well-known/acme-challenge/`), TLS-ALPN-01 (RFC 8737: the HTTPS
//! listener answers `acme-tls/1` handshakes with the validation certificate) or DNS-01 (a
//! [`DnsProvider`]), the certificate and its key kept beside the account, and the task that
//! renews on the [`Renewer`]'s schedule.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use instant_acme::{Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount, NewOrder, Order, OrderStatus, RetryPolicy};
use rcgen::{CertificateParams, CustomExtension, DistinguishedName, KeyPair};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};

use crate::cert::{parse_pair, LoadedCert};
use crate::dns::{record_name, DnsProvider};
use crate::error::Error;
use crate::fsutil::{read_if_exists, write_private};
use crate::renew::{RenewalPolicy, Renewer};
use crate::store::{CertStore, Source};

/// Let's Encrypt's production directory, the default CA.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

pub const ACCOUNT_FILE: &str = "account.json";
pub const CERT_FILE: &str = "cert.pem";
pub const KEY_FILE: &str = "key.pem";

/// How challenges are answered.
#[derive(Clone)]
pub enum Challenge {
    /// `http://<domain>/.well-known/acme-challenge/<token>` (port 80), answered by the HTTP
    /// listeners from the store.
    Http01,
    /// A TLS handshake on 443 offering `acme-tls/1`, answered by the HTTPS listener.
    TlsAlpn01,
    /// A TXT record put by the provider; the CA is asked to look `propagation` after.
    Dns01 { provider: Arc<dyn DnsProvider>, propagation: Duration },
}

impl std::fmt::Debug for Challenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Challenge {
    pub fn name(&self) -> &'static str {
        match self {
            Challenge::Http01 => "http-01",
            Challenge::TlsAlpn01 => "tls-alpn-01",
            Challenge::Dns01 { .. } => "dns-01",
        }
    }

    fn kind(&self) -> ChallengeType {
        match self {
            Challenge::Http01 => ChallengeType::Http01,
            Challenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
            Challenge::Dns01 { .. } => ChallengeType::Dns01,
        }
    }
}

/// The ACME source's settings.
#[derive(Debug, Clone)]
pub struct AcmeConfig {
    /// The CA's directory URL ([`LETS_ENCRYPT`] by default).
    pub directory: String,
    /// The names the certificate is for (a `*.` wildcard needs DNS-01).
    pub domains: Vec<String>,
    /// Contact e-mail addresses given to the CA (expiry notices).
    pub contact: Vec<String>,
    pub challenge: Challenge,
    /// A PEM root certificate to trust for the CA's own HTTPS instead of the system's (a
    /// private or test CA).
    pub ca_root: Option<PathBuf>,
    pub policy: RenewalPolicy,
    /// How long the CA may take to validate and to issue, each.
    pub order_timeout: Duration,
}

impl AcmeConfig {
    /// Checks what can be checked before talking to the CA.
    pub fn check(&self) -> Result<(), Error> {
        if self.domains.is_empty() {
            return Err(Error::Config("ACME needs at least one domain (--acme-domains or --hostname)".into()));
        }
        for d in &self.domains {
            check_domain(d).map_err(|why| Error::Config(format!("ACME domain {d:?}: {why}")))?;
            if d.starts_with("*.") && !matches!(self.challenge, Challenge::Dns01 { .. }) {
                return Err(Error::Config(format!("ACME domain {d:?}: a wildcard can only be validated with dns-01")));
            }
        }
        if !(self.directory.starts_with("https://") || self.directory.starts_with("http://")) {
            return Err(Error::Config(format!("ACME directory {:?} is not an http(s) URL", self.directory)));
        }
        Ok(())
    }
}

/// A DNS name an ACME CA can validate: letters, digits and hyphens in labels of 1–63, at
/// least two labels, 253 characters at most, a leading `*.` allowed; no IP address.
pub fn check_domain(d: &str) -> Result<(), &'static str> {
    let name = d.strip_prefix("*.").unwrap_or(d);
    if name.len() > 253 {
        return Err("longer than 253 characters");
    }
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Err("an IP address, not a DNS name");
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.len() < 2 {
        return Err("needs at least two labels (pbx.example.com)");
    }
    for l in labels {
        if l.is_empty() || l.len() > 63 {
            return Err("has an empty label or one longer than 63 characters");
        }
        if !l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') || l.starts_with('-') || l.ends_with('-') {
            return Err("has a character other than letters, digits and inner hyphens");
        }
    }
    Ok(())
}

/// An instant-acme error as text, with the CA's problem type and detail.
pub(crate) fn describe(e: &instant_acme::Error) -> String {
    match e {
        instant_acme::Error::Api(p) => problem(p),
        instant_acme::Error::Timeout(_) => "the CA did not finish in time".into(),
        other => other.to_string(),
    }
}

fn problem(p: &instant_acme::Problem) -> String {
    let mut s = match (&p.r#type, &p.detail) {
        (Some(t), Some(d)) => format!("{d} ({t})"),
        (Some(t), None) => t.clone(),
        (None, Some(d)) => d.clone(),
        (None, None) => "the CA refused without saying why".into(),
    };
    for sp in &p.subproblems {
        s.push_str(&format!("; {sp}"));
    }
    s
}

#[derive(Serialize, Deserialize)]
struct StoredAccount {
    directory: String,
    credentials: AccountCredentials,
}

/// What an order put in place, taken away whatever its outcome.
#[derive(Default)]
struct Provisioned {
    http01: Vec<String>,
    alpn: Vec<String>,
    dns: Vec<(String, String)>,
}

/// The ACME client: account, orders.
pub(crate) struct Client {
    cfg: AcmeConfig,
    dir: PathBuf,
    account: Option<Account>,
}

impl Client {
    pub(crate) fn new(cfg: AcmeConfig, dir: PathBuf) -> Client {
        Client { cfg, dir, account: None }
    }

    fn builder(&self) -> Result<instant_acme::AccountBuilder, Error> {
        Ok(match &self.cfg.ca_root {
            Some(root) => Account::builder_with_root(root).map_err(|e| Error::Acme(format!("the CA root {}: {}", root.display(), describe(&e))))?,
            None => Account::builder()?,
        })
    }

    /// The account: restored from the data dir when it was made on this directory, else
    /// created (and stored).
    async fn account(&mut self, store: &CertStore) -> Result<Account, Error> {
        if let Some(a) = &self.account {
            return Ok(a.clone());
        }
        let path = self.dir.join(ACCOUNT_FILE);
        let stored = read_if_exists(&path)?.and_then(|b| match serde_json::from_slice::<StoredAccount>(&b) {
            Ok(s) if s.directory == self.cfg.directory => Some(s),
            Ok(_) => {
                tracing::info!("the stored ACME account belongs to another directory: creating one");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, path = %path.display(), "the stored ACME account is unreadable: creating one");
                None
            }
        });
        let account = match stored {
            Some(s) => self.builder()?.from_credentials(s.credentials).await?,
            None => {
                let contact: Vec<String> = self.cfg.contact.iter().map(|c| format!("mailto:{c}")).collect();
                let contact: Vec<&str> = contact.iter().map(String::as_str).collect();
                let new = NewAccount { contact: &contact, terms_of_service_agreed: true, only_return_existing: false };
                let (account, credentials) = self.builder()?.create(&new, self.cfg.directory.clone(), None).await?;
                let text =
                    serde_json::to_vec_pretty(&StoredAccount { directory: self.cfg.directory.clone(), credentials }).map_err(|e| Error::Acme(e.to_string()))?;
                write_private(&path, &text)?;
                tracing::info!(account = account.id(), directory = %self.cfg.directory, "ACME account created");
                account
            }
        };
        store.set_account(account.id());
        self.account = Some(account.clone());
        Ok(account)
    }

    /// Orders a certificate for the domains, answers the challenges, and returns the checked
    /// certificate (also written to the data dir).
    pub(crate) async fn issue(&mut self, store: &CertStore) -> Result<LoadedCert, Error> {
        let account = self.account(store).await?;
        let identifiers: Vec<Identifier> = self.cfg.domains.iter().map(|d| Identifier::Dns(d.clone())).collect();
        let mut order = account.new_order(&NewOrder::new(&identifiers)).await?;
        let mut provisioned = Provisioned::default();
        let result = self.complete(&mut order, store, &mut provisioned).await;
        self.unprovision(store, provisioned).await;
        let (chain, key) = result?;
        let now = SystemTime::now();
        let loaded = parse_pair(chain.as_bytes(), key.as_bytes(), "the certificate from the CA", "its key", store.provider(), now)?;
        if let Some(d) = self.cfg.domains.iter().find(|d| !loaded.info.covers(d)) {
            return Err(Error::Acme(format!("the CA's certificate does not name {d}")));
        }
        write_private(&self.dir.join(KEY_FILE), key.as_bytes())?;
        write_private(&self.dir.join(CERT_FILE), chain.as_bytes())?;
        Ok(loaded)
    }

    /// Answers the authorizations and finalizes: (chain PEM, key PEM).
    async fn complete(&self, order: &mut Order, store: &CertStore, provisioned: &mut Provisioned) -> Result<(String, String), Error> {
        let kind = self.cfg.challenge.kind();
        // first every challenge is put in place, then (DNS-01: after the records spread) the
        // CA is told they are ready
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz?;
            match authz.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => return Err(Error::Acme(format!("the authorization for {} is {other:?}", authz.identifier()))),
            }
            let domain = match authz.identifier().identifier {
                Identifier::Dns(d) => d.clone(),
                other => return Err(Error::Acme(format!("unexpected identifier {other:?}"))),
            };
            let name = self.cfg.challenge.name();
            let challenge = authz.challenge(kind.clone()).ok_or_else(|| Error::Acme(format!("the CA offers no {name} challenge for {domain}")))?;
            let key_auth = challenge.key_authorization();
            match &self.cfg.challenge {
                Challenge::Http01 => {
                    store.put_http01(&challenge.token, key_auth.as_str());
                    provisioned.http01.push(challenge.token.clone());
                }
                Challenge::TlsAlpn01 => {
                    store.put_alpn(&domain, alpn_certificate(&domain, key_auth.digest().as_ref(), store.provider())?);
                    provisioned.alpn.push(domain.clone());
                }
                Challenge::Dns01 { provider, .. } => {
                    // a wildcard's authorization names its base domain: the same record
                    let record = record_name(&domain);
                    let value = key_auth.dns_value();
                    provider.add(&record, &value).await?;
                    provisioned.dns.push((record, value));
                }
            }
        }
        if let Challenge::Dns01 { propagation, .. } = &self.cfg.challenge
            && !propagation.is_zero()
        {
            tokio::time::sleep(*propagation).await;
        }
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz?;
            if authz.status != AuthorizationStatus::Pending {
                continue;
            }
            if let Some(mut challenge) = authz.challenge(kind.clone()) {
                challenge.set_ready().await?;
            }
        }
        let retry = RetryPolicy::new().initial_delay(Duration::from_millis(250)).backoff(1.5).timeout(self.cfg.order_timeout);
        match order.poll_ready(&retry).await {
            Ok(OrderStatus::Ready) => {}
            Ok(status) => return Err(Error::Acme(format!("the order is {status:?}: {}", why_invalid(order).await))),
            Err(instant_acme::Error::Timeout(_)) => {
                return Err(Error::Acme(format!("the CA did not validate within {:?}: {}", self.cfg.order_timeout, why_invalid(order).await)))
            }
            Err(e) => return Err(Error::Acme(format!("the CA refused: {}", describe(&e)))),
        }
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(self.cfg.domains.clone())?;
        params.distinguished_name = DistinguishedName::new();
        let csr = params.serialize_request(&key)?;
        order.finalize_csr(csr.der()).await?;
        let chain = order.poll_certificate(&retry).await?;
        Ok((chain, key.serialize_pem()))
    }

    async fn unprovision(&self, store: &CertStore, p: Provisioned) {
        for token in p.http01 {
            store.remove_http01(&token);
        }
        for domain in p.alpn {
            store.remove_alpn(&domain);
        }
        if let Challenge::Dns01 { provider, .. } = &self.cfg.challenge {
            for (name, value) in p.dns {
                if let Err(e) = provider.remove(&name, &value).await {
                    tracing::warn!(error = %e, record = %name, "could not remove the DNS-01 record");
                }
            }
        }
    }
}

/// What the CA said about each failed challenge.
async fn why_invalid(order: &mut Order) -> String {
    let mut out = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authz)) = authorizations.next().await {
        if let Ok(state) = authz.refresh().await {
            for c in &state.challenges {
                if let Some(p) = &c.error {
                    out.push(format!("{}: {}", state.identifier(), problem(p)));
                }
            }
        }
    }
    if out.is_empty() {
        "no reason given".into()
    } else {
        out.join("; ")
    }
}

/// The TLS-ALPN-01 validation certificate of `domain` (RFC 8737 §3): self-signed, naming only
/// the domain, with the critical acmeIdentifier extension holding the key authorization's
/// SHA-256.
pub(crate) fn alpn_certificate(domain: &str, digest: &[u8], provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, Error> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec![domain.to_owned()])?;
    params.custom_extensions = vec![CustomExtension::new_acme_identifier(digest)];
    let cert = params.self_signed(&key)?;
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signing = provider.key_provider.load_private_key(der).map_err(|e| Error::Generate(e.to_string()))?;
    Ok(Arc::new(CertifiedKey::new(vec![cert.der().clone()], signing)))
}

/// The certificate a previous run got, when it still checks out and names every domain.
pub(crate) fn stored_certificate(dir: &Path, domains: &[String], provider: &CryptoProvider, now: SystemTime) -> Option<LoadedCert> {
    let (cert_path, key_path) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
    let (cert, key) = match (read_if_exists(&cert_path), read_if_exists(&key_path)) {
        (Ok(Some(c)), Ok(Some(k))) => (c, k),
        _ => return None,
    };
    match parse_pair(&cert, &key, &cert_path.display().to_string(), &key_path.display().to_string(), provider, now) {
        Ok(l) if domains.iter().all(|d| l.info.covers(d)) => Some(l),
        Ok(_) => {
            tracing::info!("the stored ACME certificate names other domains: ordering one");
            None
        }
        Err(e) => {
            tracing::info!(error = %e, "the stored ACME certificate is unusable: ordering one");
            None
        }
    }
}

/// Longest a whole order may take before it counts as failed (a CA that stops answering).
const ATTEMPT_LIMIT: Duration = Duration::from_secs(15 * 60);
/// The task wakes at least this often to look at the clock again (a suspended machine).
const MAX_SLEEP: Duration = Duration::from_secs(3600);

/// Renews for as long as the process runs.
pub(crate) async fn run(store: CertStore, mut client: Client, mut renewer: Renewer) {
    loop {
        let next = renewer.next_attempt();
        store.set_next_renewal(Some(next));
        if let Ok(wait) = next.duration_since(SystemTime::now())
            && !wait.is_zero()
        {
            tokio::select! {
                _ = tokio::time::sleep(wait.min(MAX_SLEEP)) => {}
                _ = store.renewal_requested() => renewer.force(),
            }
            continue;
        }
        let now = SystemTime::now();
        renewer.started(now);
        store.set_renewing(true);
        store.attempt_started(now);
        tracing::info!(domains = ?client.cfg.domains, challenge = client.cfg.challenge.name(), directory = %client.cfg.directory, "ordering a certificate");
        let outcome = match tokio::time::timeout(ATTEMPT_LIMIT, client.issue(&store)).await {
            Ok(r) => r,
            Err(_) => Err(Error::Acme(format!("the order took longer than {ATTEMPT_LIMIT:?}"))),
        };
        match outcome {
            Ok(loaded) => {
                renewer.succeeded(loaded.info.not_before, loaded.info.not_after);
                store.install(loaded, Source::Acme);
                store.attempt_succeeded(SystemTime::now());
            }
            Err(e) => {
                renewer.failed();
                tracing::warn!(error = %e, failures = renewer.failures(), retry_in = ?renewer.policy().backoff(renewer.failures()), "ACME order failed");
                store.attempt_failed(SystemTime::now(), &e);
            }
        }
        store.set_renewing(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_checked() {
        for good in ["pbx.example.com", "*.example.com", "a-b.c0.example"] {
            assert!(check_domain(good).is_ok(), "{good}");
        }
        for bad in [
            "localhost",
            "127.0.0.1",
            "-a.example.com",
            "a..example.com",
            "a_b.example.com",
            "pbx.example.com.",
            "a.*.example.com",
            &format!("{}.com", "a".repeat(64)),
        ] {
            assert!(check_domain(bad).is_err(), "{bad}");
        }
        let cfg = |domains: &[&str], challenge| AcmeConfig {
            directory: LETS_ENCRYPT.into(),
            domains: domains.iter().map(|s| (*s).to_owned()).collect(),
            contact: vec![],
            challenge,
            ca_root: None,
            policy: RenewalPolicy::default(),
            order_timeout: Duration::from_secs(60),
        };
        assert!(cfg(&["pbx.example.com"], Challenge::Http01).check().is_ok());
        assert!(cfg(&[], Challenge::Http01).check().is_err());
        let e = cfg(&["*.example.com"], Challenge::TlsAlpn01).check().unwrap_err();
        assert!(e.to_string().contains("dns-01"), "{e}");
    }

    #[test]
    fn the_alpn_certificate_names_the_domain_and_carries_the_digest() {
        let digest = [7u8; 32];
        let key = alpn_certificate("pbx.example.test", &digest, &crate::testutil::provider()).unwrap();
        let der = key.end_entity_cert().unwrap();
        let (_, x509) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        let san = x509.subject_alternative_name().unwrap().unwrap();
        assert_eq!(san.value.general_names.len(), 1);
        let ext = x509.extensions().iter().find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31").expect("acmeIdentifier");
        assert!(ext.critical);
        // an OCTET STRING of the 32 bytes
        assert_eq!(&ext.value[..2], &[0x04, 32]);
        assert_eq!(&ext.value[2..], &digest);
    }
}
