//! SIP over TLS (RFC 3261 §26, RFC 5630): what the event loop needs to run TLS connections —
//! the server configuration (the certificate store's, so a reloaded or renewed certificate is
//! served from the next handshake on), the client configurations towards trunks (certificate
//! verification on, against webpki's roots plus the system's store, which honours
//! `SSL_CERT_FILE`/`SSL_CERT_DIR`; or off, for a trunk whose `tls_verify` is off), and the
//! wording of a failed handshake for the trunk status.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

/// How SIP over TLS is set up: given to [`crate::SipConfig::tls`] by the binary.
#[derive(Clone)]
pub struct SipTls {
    /// The listener's configuration; its certificate resolver is read on every handshake.
    pub server: Arc<ServerConfig>,
    /// The process's crypto provider (the client configurations are built on it).
    pub provider: Arc<CryptoProvider>,
}

impl std::fmt::Debug for SipTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SipTls")
    }
}

/// The two client configurations: verifying (the default) and not.
pub(crate) struct Clients {
    pub verify: Arc<ClientConfig>,
    pub no_verify: Arc<ClientConfig>,
}

impl Clients {
    /// Builds both; the verifying one trusts webpki's roots and whatever the system store
    /// (or `SSL_CERT_FILE`/`SSL_CERT_DIR`) holds.
    pub(crate) fn new(provider: &Arc<CryptoProvider>) -> Result<Clients, rustls::Error> {
        let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            tracing::debug!(error = %e, "a system CA certificate could not be loaded");
        }
        let (added, ignored) = roots.add_parsable_certificates(native.certs);
        tracing::debug!(added, ignored, "system CA certificates for SIP over TLS");
        let verify =
            ClientConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?.with_root_certificates(roots).with_no_client_auth();
        let no_verify = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider.clone())))
            .with_no_client_auth();
        Ok(Clients { verify: Arc::new(verify), no_verify: Arc::new(no_verify) })
    }
}

/// A verifier for trunks with `tls_verify` off: any certificate is accepted (the handshake's
/// signatures are still checked, so the peer holds the key of the certificate it showed).
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The server name to verify a peer's certificate against: the trunk's domain (or proxy),
/// else the address itself.
pub(crate) fn server_name(host: Option<&str>, addr: std::net::SocketAddr) -> ServerName<'static> {
    if let Some(h) = host {
        let bare = h.trim_start_matches('[').trim_end_matches(']');
        if let Ok(n) = ServerName::try_from(bare.to_owned()) {
            return n;
        }
    }
    ServerName::IpAddress(addr.ip().into())
}

/// What a failed handshake says, for a trunk's status: "TLS certificate not trusted: …"
/// when it is the peer's certificate, else "TLS handshake failed: …".
pub(crate) fn describe(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(c) => {
            let why = match c {
                CertificateError::UnknownIssuer => "issued by an unknown CA (or self-signed)".to_owned(),
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => "not valid for the trunk's host name".to_owned(),
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => "expired".to_owned(),
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => "not valid yet".to_owned(),
                CertificateError::Revoked => "revoked".to_owned(),
                CertificateError::BadSignature => "bad signature".to_owned(),
                other => format!("{other:?}"),
            };
            format!("TLS certificate not trusted: {why}")
        }
        other => format!("TLS handshake failed: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_errors_are_worded_for_the_trunk_status() {
        assert_eq!(
            describe(&rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)),
            "TLS certificate not trusted: issued by an unknown CA (or self-signed)"
        );
        assert_eq!(
            describe(&rustls::Error::InvalidCertificate(CertificateError::NotValidForName)),
            "TLS certificate not trusted: not valid for the trunk's host name"
        );
        assert!(describe(&rustls::Error::DecryptError).starts_with("TLS handshake failed: "));
    }

    #[test]
    fn server_names() {
        let a: std::net::SocketAddr = "127.0.0.1:5061".parse().unwrap();
        assert_eq!(server_name(Some("sip.example.com"), a), ServerName::try_from("sip.example.com").unwrap());
        assert_eq!(server_name(Some("[::1]"), a), ServerName::try_from("::1").unwrap());
        assert_eq!(server_name(None, a), ServerName::try_from("127.0.0.1").unwrap());
        assert_eq!(server_name(Some("bad name!"), a), ServerName::try_from("127.0.0.1").unwrap());
    }
}
