//! rustls configurations for every port, with certificates that can be replaced while connections use
//! them (rotation without a restart), and reading who a peer certificate names.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::ResolvesClientCert;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::{Error, Result};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Parses every certificate in a PEM bundle.
///
/// # Errors
/// When the text holds no certificate or one does not parse.
pub fn parse_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Parse(format!("certificate PEM: {e}")))?;
    if certs.is_empty() {
        return Err(Error::Parse("no certificate in PEM".into()));
    }
    Ok(certs)
}

fn certified_key(cert_pem: &str, key_pem: &str) -> Result<Arc<CertifiedKey>> {
    let certs = parse_certs(cert_pem)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| Error::Parse(format!("private key PEM: {e}")))?;
    Ok(Arc::new(CertifiedKey::from_der(certs, key, &provider())?))
}

/// A certificate and key that connections present, replaceable at any time: new handshakes use the
/// new pair, established connections keep theirs. This is how certificates rotate without downtime.
#[derive(Debug)]
pub struct CertSource {
    current: RwLock<(Arc<CertifiedKey>, String)>,
}

impl CertSource {
    /// A source holding `cert_pem` (leaf first) and `key_pem`.
    ///
    /// # Errors
    /// When they do not parse or do not match.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Arc<CertSource>> {
        Ok(Arc::new(CertSource {
            current: RwLock::new((certified_key(cert_pem, key_pem)?, cert_pem.to_string())),
        }))
    }

    /// Replaces the pair; the next handshake uses it.
    ///
    /// # Errors
    /// When they do not parse or do not match (the old pair stays).
    pub fn replace(&self, cert_pem: &str, key_pem: &str) -> Result<()> {
        let ck = certified_key(cert_pem, key_pem)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = (ck, cert_pem.to_string());
        Ok(())
    }

    /// The certificate in use, PEM.
    pub fn cert_pem(&self) -> String {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .clone()
    }

    /// When the certificate in use expires.
    ///
    /// # Errors
    /// When it does not parse (it did when stored, so this is not expected).
    pub fn not_after(&self) -> Result<SystemTime> {
        not_after(&self.cert_pem())
    }

    fn key(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .clone()
    }
}

impl ResolvesServerCert for CertSource {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.key())
    }
}

impl ResolvesClientCert for CertSource {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.key())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

fn roots(ca_pem: &str) -> Result<Arc<RootCertStore>> {
    let mut store = RootCertStore::empty();
    for c in parse_certs(ca_pem)? {
        store.add(c)?;
    }
    Ok(Arc::new(store))
}

/// Whether a server asks clients for a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// A client certificate signed by the CA is required (the agent port).
    Required,
    /// Verified when presented; clients without one may connect (the API port, where bearer tokens
    /// also authenticate; the peer port, where join calls come before a certificate exists).
    Optional,
}

/// A server configuration presenting `cert` and verifying client certificates against `ca_pem`.
///
/// # Errors
/// When the CA does not parse.
pub fn server_config(
    ca_pem: &str,
    cert: Arc<CertSource>,
    client_auth: ClientAuth,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>> {
    let builder = WebPkiClientVerifier::builder_with_provider(roots(ca_pem)?, provider());
    let verifier = match client_auth {
        ClientAuth::Required => builder.build()?,
        ClientAuth::Optional => builder.allow_unauthenticated().build()?,
    };
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(cert);
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(cfg))
}

/// A client configuration trusting only `ca_pem`, presenting `cert` when given.
///
/// # Errors
/// When the CA does not parse.
pub fn client_config(
    ca_pem: &str,
    cert: Option<Arc<CertSource>>,
    alpn: &[&[u8]],
) -> Result<Arc<ClientConfig>> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots(ca_pem)?);
    let mut cfg = match cert {
        Some(c) => builder.with_client_cert_resolver(c),
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(cfg))
}

/// The server certificate a trust-on-first-use connection saw, so that a join can bind the server's
/// token proof to exactly this certificate (a man in the middle presents another one).
#[derive(Debug, Default)]
pub struct SeenServerCert(Mutex<Option<Vec<u8>>>);

impl SeenServerCert {
    /// The DER of the leaf the server presented, once the handshake ran.
    pub fn get(&self) -> Option<Vec<u8>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[derive(Debug)]
struct RecordingVerifier {
    seen: Arc<SeenServerCert>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        *self.seen.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(end_entity.to_vec());
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A client configuration that accepts any server certificate and records it. Only for the first
/// call of a join, whose answer the client checks with the token before trusting anything.
pub fn insecure_client_config(alpn: &[&[u8]]) -> (Arc<ClientConfig>, Arc<SeenServerCert>) {
    let seen = Arc::new(SeenServerCert::default());
    let verifier = Arc::new(RecordingVerifier {
        seen: seen.clone(),
        provider: provider(),
    });
    let mut cfg = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    (Arc::new(cfg), seen)
}

/// Who a verified certificate names: CN is the user, O entries the groups (Kubernetes' x509 rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Subject CN.
    pub user: String,
    /// Subject O entries.
    pub groups: Vec<String>,
    /// End of validity.
    pub not_after: SystemTime,
}

/// Reads the user and groups of a DER certificate. Call only on a certificate the TLS layer verified.
///
/// # Errors
/// When it does not parse or has no CN.
pub fn identity_of(der: &[u8]) -> Result<Identity> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| Error::Parse(format!("certificate: {e}")))?;
    let subject = cert.subject();
    let user = subject
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .ok_or_else(|| Error::Parse("certificate has no common name".into()))?
        .to_string();
    let groups = subject
        .iter_organization()
        .filter_map(|a| a.as_str().ok())
        .map(str::to_string)
        .collect();
    let ts = cert.validity().not_after.timestamp();
    let not_after = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(ts).unwrap_or(0));
    Ok(Identity {
        user,
        groups,
        not_after,
    })
}

/// When the first certificate of a PEM bundle expires.
///
/// # Errors
/// When it does not parse.
pub fn not_after(cert_pem: &str) -> Result<SystemTime> {
    let certs = parse_certs(cert_pem)?;
    Ok(identity_of(&certs[0])?.not_after)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Ca, CertRequest, Usage};

    #[test]
    fn replaced_certificates_are_used_and_bad_ones_refused() {
        let ca = Ca::generate("t", Duration::from_secs(3600)).unwrap();
        let a = ca
            .issue(&CertRequest::client("a", &[], Duration::from_secs(60)))
            .unwrap();
        let b = ca
            .issue(&CertRequest::client("b", &[], Duration::from_secs(120)))
            .unwrap();
        let src = CertSource::from_pem(&a.cert_pem, &a.key_pem).unwrap();
        let before = src.not_after().unwrap();
        src.replace(&b.cert_pem, &b.key_pem).unwrap();
        assert!(src.not_after().unwrap() > before);
        // A key that does not belong to the certificate is refused and the old pair stays.
        assert!(src.replace(&a.cert_pem, &b.key_pem).is_err());
        assert_eq!(src.cert_pem(), b.cert_pem);
    }

    #[test]
    fn configs_build_for_every_port() {
        let ca = Ca::generate("t", Duration::from_secs(3600)).unwrap();
        let s = ca
            .issue(&CertRequest {
                common_name: "s1".into(),
                organizations: vec![],
                dns_names: vec!["localhost".into()],
                ips: vec!["127.0.0.1".parse().unwrap()],
                usage: Usage::ServerAndClient,
                validity: Duration::from_secs(60),
            })
            .unwrap();
        let src = CertSource::from_pem(&s.cert_pem, &s.key_pem).unwrap();
        server_config(ca.cert_pem(), src.clone(), ClientAuth::Required, &[b"h2"]).unwrap();
        client_config(ca.cert_pem(), Some(src), &[b"h2"]).unwrap();
        assert!(client_config("garbage", None, &[]).is_err());
    }
}
