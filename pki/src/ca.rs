//! The cluster CA and the certificates it issues.

use std::net::IpAddr;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use crate::{Error, Result};

/// How a certificate may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// TLS server only (the API port).
    Server,
    /// TLS client only (users, the API server towards agents).
    Client,
    /// Both (members dial each other and are dialled on the peer port).
    ServerAndClient,
}

/// What to put in a certificate.
#[derive(Debug, Clone)]
pub struct CertRequest {
    /// Subject CN: the user name.
    pub common_name: String,
    /// Subject O entries: the groups.
    pub organizations: Vec<String>,
    /// DNS SANs.
    pub dns_names: Vec<String>,
    /// IP SANs.
    pub ips: Vec<IpAddr>,
    /// Server, client or both.
    pub usage: Usage,
    /// How long it is valid from now.
    pub validity: Duration,
}

impl CertRequest {
    /// A client certificate for `user` in `groups`.
    pub fn client(user: &str, groups: &[&str], validity: Duration) -> Self {
        CertRequest {
            common_name: user.to_string(),
            organizations: groups.iter().map(|g| g.to_string()).collect(),
            dns_names: Vec::new(),
            ips: Vec::new(),
            usage: Usage::Client,
            validity,
        }
    }

    fn params(&self) -> Result<CertificateParams> {
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, self.common_name.as_str());
        // rcgen keeps one value per attribute type, so a certificate names at most one group.
        match self.organizations.as_slice() {
            [] => {}
            [o] => dn.push(DnType::OrganizationName, o.as_str()),
            _ => return Err(Error::Parse("a certificate names at most one group".into())),
        }
        p.distinguished_name = dn;
        let mut sans = Vec::new();
        for d in &self.dns_names {
            sans.push(SanType::DnsName(
                d.clone()
                    .try_into()
                    .map_err(|_| Error::Parse(format!("bad DNS name {d:?}")))?,
            ));
        }
        sans.extend(self.ips.iter().copied().map(SanType::IpAddress));
        p.subject_alt_names = sans;
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = match self.usage {
            Usage::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
            Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
            Usage::ServerAndClient => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        };
        // Backdated a minute: members' clocks differ a little and a fresh certificate must work at once.
        let now = time::OffsetDateTime::now_utc();
        p.not_before = now - time::Duration::minutes(1);
        p.not_after = now + to_time(self.validity);
        p.serial_number = Some(random_serial()?);
        p.use_authority_key_identifier_extension = true;
        Ok(p)
    }
}

fn to_time(d: Duration) -> time::Duration {
    time::Duration::try_from(d).unwrap_or(time::Duration::MAX)
}

fn random_serial() -> Result<rcgen::SerialNumber> {
    let mut b = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
        .map_err(|_| Error::Parse("no randomness for a serial number".into()))?;
    b[0] &= 0x7f; // positive, as DER INTEGER serials must be
    Ok(rcgen::SerialNumber::from_slice(&b))
}

/// A certificate and its freshly made private key, both PEM.
#[derive(Clone)]
pub struct Issued {
    /// The certificate.
    pub cert_pem: String,
    /// Its PKCS#8 private key.
    pub key_pem: String,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued").finish_non_exhaustive()
    }
}

/// The cluster certificate authority: signs every certificate in the cluster.
pub struct Ca {
    cert_pem: String,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

impl Ca {
    /// Makes a new self-signed CA (ECDSA P-256) named after the cluster.
    ///
    /// # Errors
    /// When key generation or signing fails.
    pub fn generate(cluster: &str, validity: Duration) -> Result<Ca> {
        let key = KeyPair::generate()?;
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("berth-ca@{cluster}"));
        p.distinguished_name = dn;
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = time::OffsetDateTime::now_utc();
        p.not_before = now - time::Duration::minutes(1);
        p.not_after = now + to_time(validity);
        p.serial_number = Some(random_serial()?);
        let cert = p.self_signed(&key)?;
        let cert_pem = cert.pem();
        let key_pem = key.serialize_pem();
        Ok(Ca {
            issuer: Issuer::new(p, key),
            cert_pem,
            key_pem,
        })
    }

    /// Loads a CA from its certificate and key.
    ///
    /// # Errors
    /// When either does not parse.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Ca> {
        let key = KeyPair::from_pem(key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)?;
        Ok(Ca {
            cert_pem: cert_pem.to_string(),
            key_pem: key_pem.to_string(),
            issuer,
        })
    }

    /// The CA certificate (what every party trusts).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA's private key (members keep it to sign agent and user certificates).
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// Issues a certificate with a new key.
    ///
    /// # Errors
    /// When the request has a bad name or signing fails.
    pub fn issue(&self, req: &CertRequest) -> Result<Issued> {
        let key = KeyPair::generate()?;
        let cert = req.params()?.signed_by(&key, &self.issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Signs the public key of a PEM CSR. Only the key is taken from the CSR: the subject, SANs and
    /// usage come from `req`, which the caller decides from who asked (never what the CSR claims).
    ///
    /// # Errors
    /// When the CSR does not parse or its signature is wrong.
    pub fn sign_csr(&self, csr_pem: &str, req: &CertRequest) -> Result<String> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)?;
        let cert = req.params()?.signed_by(&csr.public_key, &self.issuer)?;
        Ok(cert.pem())
    }
}

/// A new key pair and a CSR for it (what an agent sends when it joins), as PEM `(csr, key)`.
///
/// # Errors
/// When key generation fails.
pub fn new_csr(common_name: &str) -> Result<(String, String)> {
    let key = KeyPair::generate()?;
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    p.distinguished_name = dn;
    let csr = p.serialize_request(&key)?;
    Ok((csr.pem()?, key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity_of;

    #[test]
    fn issued_certificates_carry_user_and_groups() {
        let ca = Ca::generate("t", Duration::from_secs(3600)).unwrap();
        let ca2 = Ca::from_pem(ca.cert_pem(), ca.key_pem()).unwrap();
        let c = ca2
            .issue(&CertRequest::client(
                "alice",
                &["dev"],
                Duration::from_secs(60),
            ))
            .unwrap();
        assert!(ca2
            .issue(&CertRequest::client(
                "a",
                &["x", "y"],
                Duration::from_secs(1)
            ))
            .is_err());
        let der = crate::parse_certs(&c.cert_pem).unwrap();
        let id = identity_of(&der[0]).unwrap();
        assert_eq!(id.user, "alice");
        assert_eq!(id.groups, vec!["dev".to_string()]);
    }

    #[test]
    fn csr_signing_takes_the_subject_from_the_request_not_the_csr() {
        let ca = Ca::generate("t", Duration::from_secs(3600)).unwrap();
        let (csr, _key) = new_csr("system:masters-wannabe").unwrap();
        let req = CertRequest::client("system:node:n1", &["system:nodes"], Duration::from_secs(60));
        let pem = ca.sign_csr(&csr, &req).unwrap();
        let der = crate::parse_certs(&pem).unwrap();
        let id = identity_of(&der[0]).unwrap();
        assert_eq!(id.user, "system:node:n1");
        assert_eq!(id.groups, vec!["system:nodes".to_string()]);
        assert!(ca.sign_csr("not a csr", &req).is_err());
    }
}
