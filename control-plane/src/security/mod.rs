//! The member's side of the cluster PKI: where the CA, keys and certificates live in the data dir,
//! making them on the first member and taking them from a running member on the others, rotating
//! this member's certificates before they expire, and naming who a gRPC caller is.
//!
//! Layout of `<data-dir>/pki` (0700; every key 0600): `ca.crt ca.key` (the cluster CA), `sa.key`
//! (ServiceAccount token signing secret), `token` (the cluster token, kubeadm form), `member.crt
//! member.key` (this member on 6443 and 6444, and as a client of its peers), `apiserver-client.crt
//! apiserver-client.key` (the API server towards agents on 10250), `admin.kubeconfig` (a
//! `system:masters` client certificate, as kubeadm's admin.conf).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use pki::{Ca, CertRequest, CertSource, ClientAuth, Identity, SigningKey, Token, Usage};

/// ALPN of gRPC (the peer port).
pub const ALPN_H2: &[u8] = b"h2";
/// ALPN of the API and the agent port: HTTP/1.1 only, as exec/attach upgrades need it.
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// Default validity of leaf certificates (members, agents, the admin).
pub const DEFAULT_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// A file whose presence asks the running member to rotate its certificates.
const ROTATE_MARKER: &str = "rotate-requested";
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Errors of the member PKI.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A certificate, key or file operation failed.
    #[error(transparent)]
    Pki(#[from] pki::Error),
    /// The data dir holds part of a PKI (say, a CA certificate without its key).
    #[error("{0}")]
    Incomplete(String),
}

/// Result with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Who this member is, for its certificate.
#[derive(Debug, Clone)]
pub struct MemberIdentity {
    /// Member name.
    pub name: String,
    /// IPs and DNS names the member is reached at.
    pub sans: Vec<String>,
    /// Validity of the certificates this member issues itself (short in rotation tests).
    pub validity: Duration,
}

/// Keys a joining member receives from a running one.
#[derive(Clone)]
pub struct MemberKeys {
    /// CA certificate.
    pub ca_cert_pem: String,
    /// CA key.
    pub ca_key_pem: String,
    /// ServiceAccount signing secret.
    pub sa_secret: String,
}

impl std::fmt::Debug for MemberKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberKeys").finish_non_exhaustive()
    }
}

/// The cluster PKI as one member holds it.
pub struct ClusterPki {
    dir: PathBuf,
    /// The cluster CA (with its key: every member can issue agent and user certificates).
    pub ca: Ca,
    /// The cluster token: agents and new members present it once to get their certificates.
    pub token: Token,
    /// Signs and checks ServiceAccount tokens.
    pub sa_key: SigningKey,
    /// This member's certificate (6443, 6444, and as a client of its peers).
    pub member: Arc<CertSource>,
    /// The API server's client certificate towards agents (10250).
    pub apiserver_client: Arc<CertSource>,
    identity: MemberIdentity,
}

impl std::fmt::Debug for ClusterPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterPki")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn read(dir: &Path, file: &str) -> Result<Option<String>> {
    Ok(pki::read_if_exists(&dir.join(file))?)
}

fn write(dir: &Path, file: &str, contents: &str) -> Result<()> {
    Ok(pki::write_private(&dir.join(file), contents.as_bytes())?)
}

/// The PKI directory of a data dir.
pub fn pki_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("pki")
}

impl ClusterPki {
    /// Opens the PKI of `data_dir` when it has one (a member that has run before).
    ///
    /// # Errors
    /// When part of it is missing or does not parse.
    pub fn open(data_dir: &Path, identity: &MemberIdentity) -> Result<Option<ClusterPki>> {
        let dir = pki_dir(data_dir);
        let Some(ca_cert) = read(&dir, "ca.crt")? else {
            return Ok(None);
        };
        let need = |f: &str| -> Result<String> {
            read(&dir, f)?.ok_or_else(|| {
                Error::Incomplete(format!(
                    "{} has ca.crt but no {f}: restore it or remove the pki dir and join again",
                    dir.display()
                ))
            })
        };
        let keys = MemberKeys {
            ca_cert_pem: ca_cert,
            ca_key_pem: need("ca.key")?,
            sa_secret: need("sa.key")?,
        };
        let token = Token::parse(&need("token")?)?;
        Self::assemble(dir, keys, token, identity).map(Some)
    }

    /// Makes a new cluster CA, ServiceAccount key and (unless given) token: the first member.
    ///
    /// # Errors
    /// When the files cannot be written.
    pub fn create(
        data_dir: &Path,
        identity: &MemberIdentity,
        token: Option<Token>,
    ) -> Result<ClusterPki> {
        let ca = Ca::generate(&identity.name, CA_VALIDITY)?;
        let keys = MemberKeys {
            ca_cert_pem: ca.cert_pem().to_string(),
            ca_key_pem: ca.key_pem().to_string(),
            sa_secret: SigningKey::generate_secret()?,
        };
        let token = match token {
            Some(t) => t,
            None => Token::generate()?,
        };
        Self::adopt(data_dir, identity, keys, token)
    }

    /// Stores keys received from a running member (or made by [`ClusterPki::create`]) and issues this
    /// member's certificates.
    ///
    /// # Errors
    /// When the keys do not parse or the files cannot be written.
    pub fn adopt(
        data_dir: &Path,
        identity: &MemberIdentity,
        keys: MemberKeys,
        token: Token,
    ) -> Result<ClusterPki> {
        let dir = pki_dir(data_dir);
        pki::ensure_private_dir(&dir)?;
        // Check before writing anything, so a bad bundle leaves no half PKI behind.
        Ca::from_pem(&keys.ca_cert_pem, &keys.ca_key_pem)?;
        SigningKey::new(keys.sa_secret.as_bytes())?;
        write(&dir, "ca.key", &keys.ca_key_pem)?;
        write(&dir, "sa.key", &keys.sa_secret)?;
        write(&dir, "token", &format!("{token}\n"))?;
        // ca.crt last: its presence is what marks the PKI as complete.
        write(&dir, "ca.crt", &keys.ca_cert_pem)?;
        Self::assemble(dir, keys, token, identity)
    }

    fn assemble(
        dir: PathBuf,
        keys: MemberKeys,
        token: Token,
        identity: &MemberIdentity,
    ) -> Result<ClusterPki> {
        let ca = Ca::from_pem(&keys.ca_cert_pem, &keys.ca_key_pem)?;
        let sa_key = SigningKey::new(keys.sa_secret.as_bytes())?;
        let member = Self::load_or_issue(&dir, "member", &ca, &member_request(identity))?;
        let apiserver_client = Self::load_or_issue(
            &dir,
            "apiserver-client",
            &ca,
            &apiserver_client_request(identity.validity),
        )?;
        // A rotation asked for while the member was down happens now.
        let pki = ClusterPki {
            dir,
            ca,
            token,
            sa_key,
            member,
            apiserver_client,
            identity: identity.clone(),
        };
        pki.rotate(false)?;
        Ok(pki)
    }

    /// Loads `<name>.crt/.key`, or issues them when missing, unusable or past two thirds of their life.
    fn load_or_issue(
        dir: &Path,
        name: &str,
        ca: &Ca,
        req: &CertRequest,
    ) -> Result<Arc<CertSource>> {
        let (crt, key) = (format!("{name}.crt"), format!("{name}.key"));
        if let (Some(c), Some(k)) = (read(dir, &crt)?, read(dir, &key)?) {
            if let Ok(src) = CertSource::from_pem(&c, &k) {
                if !renewal_due(&c, req, SystemTime::now()) {
                    return Ok(src);
                }
            }
        }
        let issued = ca.issue(req)?;
        write(dir, &key, &issued.key_pem)?;
        write(dir, &crt, &issued.cert_pem)?;
        Ok(CertSource::from_pem(&issued.cert_pem, &issued.key_pem)?)
    }

    /// The data dir's PKI directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        self.ca.cert_pem()
    }

    /// The validity of certificates this member issues.
    pub fn validity(&self) -> Duration {
        self.identity.validity
    }

    /// The peer port's server side: this member's certificate; client certificates verified when
    /// presented (joins come without one; each RPC checks who called).
    ///
    /// # Errors
    /// When the CA does not parse (it did at open).
    pub fn peer_server_config(&self) -> Result<Arc<rustls::ServerConfig>> {
        Ok(pki::server_config(
            self.ca_pem(),
            self.member.clone(),
            ClientAuth::Optional,
            &[ALPN_H2],
        )?)
    }

    /// Dialling other members: trust the CA, present this member's certificate.
    ///
    /// # Errors
    /// When the CA does not parse.
    pub fn peer_client_config(&self) -> Result<Arc<rustls::ClientConfig>> {
        Ok(pki::client_config(
            self.ca_pem(),
            Some(self.member.clone()),
            &[ALPN_H2],
        )?)
    }

    /// The API port: this member's certificate; client certificates verified when presented.
    ///
    /// # Errors
    /// When the CA does not parse.
    pub fn api_server_config(&self) -> Result<Arc<rustls::ServerConfig>> {
        Ok(pki::server_config(
            self.ca_pem(),
            self.member.clone(),
            ClientAuth::Optional,
            &[ALPN_HTTP1],
        )?)
    }

    /// Dialling agents' port 10250 as the API server.
    ///
    /// # Errors
    /// When the CA does not parse.
    pub fn agent_client_config(&self) -> Result<Arc<rustls::ClientConfig>> {
        Ok(pki::client_config(
            self.ca_pem(),
            Some(self.apiserver_client.clone()),
            &[ALPN_HTTP1],
        )?)
    }

    /// The keys a joining member receives.
    pub fn member_keys(&self) -> MemberKeys {
        MemberKeys {
            ca_cert_pem: self.ca.cert_pem().to_string(),
            ca_key_pem: self.ca.key_pem().to_string(),
            sa_secret: read(&self.dir, "sa.key").ok().flatten().unwrap_or_default(),
        }
    }

    /// Signs an agent's CSR as `system:node:<node>` in `system:nodes`, usable as server (10250, with
    /// the node's IP and name) and as client (6443, 6444).
    ///
    /// # Errors
    /// When the CSR does not parse or the IP is not an IP.
    pub fn issue_node_cert(&self, node: &str, node_ip: &str, csr_pem: &str) -> Result<String> {
        let mut req = CertRequest::client(
            &format!("{}{node}", pki::NODE_USER_PREFIX),
            &[pki::GROUP_NODES],
            self.identity.validity,
        );
        req.usage = Usage::ServerAndClient;
        req.dns_names = vec![node.to_string()];
        if let Ok(ip) = node_ip.parse() {
            req.ips = vec![ip];
        }
        Ok(self.ca.sign_csr(csr_pem, &req)?)
    }

    /// A client certificate for a user (the admin kubeconfig, tests' users).
    ///
    /// # Errors
    /// When signing fails.
    pub fn issue_user_cert(&self, user: &str, groups: &[&str]) -> Result<pki::Issued> {
        Ok(self
            .ca
            .issue(&CertRequest::client(user, groups, self.identity.validity))?)
    }

    /// Writes `admin.kubeconfig` (a `system:masters` certificate) pointing at `server` (an https URL).
    ///
    /// # Errors
    /// When signing or writing fails.
    pub fn write_admin_kubeconfig(&self, server: &str) -> Result<PathBuf> {
        let issued = self.issue_user_cert("berth-admin", &[pki::GROUP_MASTERS])?;
        let text = kubeconfig(server, self.ca_pem(), &issued, "berth", "berth-admin");
        let path = self.dir.join("admin.kubeconfig");
        write(&self.dir, "admin.kubeconfig", &text)?;
        Ok(path)
    }

    /// Re-issues this member's certificates when due (or when `force`), in the files and in the live
    /// sources, so new connections use them while established ones keep theirs. Files written by
    /// `berth-server certs rotate` while the member runs are picked up the same way.
    ///
    /// # Errors
    /// When signing or writing fails (the old certificates stay in use).
    pub fn rotate(&self, force: bool) -> Result<bool> {
        let marker = self.dir.join(ROTATE_MARKER);
        let requested = marker.exists();
        let force = force || requested;
        let mut rotated = false;
        let pairs = [
            ("member", &self.member, member_request(&self.identity)),
            (
                "apiserver-client",
                &self.apiserver_client,
                apiserver_client_request(self.identity.validity),
            ),
        ];
        for (name, source, req) in pairs {
            let (crt, key) = (format!("{name}.crt"), format!("{name}.key"));
            // Someone (the rotate command) may have written newer files: take them first.
            if let (Some(c), Some(k)) = (read(&self.dir, &crt)?, read(&self.dir, &key)?) {
                if c != source.cert_pem() && source.replace(&c, &k).is_ok() {
                    tracing::info!(cert = name, "loaded rotated certificate from disk");
                    rotated = true;
                }
            }
            if force || renewal_due(&source.cert_pem(), &req, SystemTime::now()) {
                let issued = self.ca.issue(&req)?;
                write(&self.dir, &key, &issued.key_pem)?;
                write(&self.dir, &crt, &issued.cert_pem)?;
                source.replace(&issued.cert_pem, &issued.key_pem)?;
                tracing::info!(cert = name, "rotated certificate");
                rotated = true;
            }
        }
        if requested {
            let _ = std::fs::remove_file(&marker);
        }
        Ok(rotated)
    }

    /// Whether `berth-server certs rotate` asked for a rotation that has not happened yet.
    pub fn rotation_requested(&self) -> bool {
        self.dir.join(ROTATE_MARKER).exists()
    }

    /// Asks the member running on `data_dir` to rotate its certificates now (what
    /// `berth-server certs rotate` does); a member that is not running rotates at its next start.
    ///
    /// # Errors
    /// When the data dir has no PKI or the request cannot be written.
    pub fn request_rotation(data_dir: &Path) -> Result<PathBuf> {
        let dir = pki_dir(data_dir);
        if !dir.join("ca.crt").exists() {
            return Err(Error::Incomplete(format!(
                "{} holds no cluster PKI",
                dir.display()
            )));
        }
        let marker = dir.join(ROTATE_MARKER);
        pki::write_private(&marker, b"")?;
        Ok(marker)
    }
}

/// Whether a certificate should be renewed: past two thirds of its life (as kubelet and k3s renew),
/// unreadable, or naming other SANs than wanted.
pub fn renewal_due(cert_pem: &str, req: &CertRequest, now: SystemTime) -> bool {
    let Ok(not_after) = pki::not_after(cert_pem) else {
        return true;
    };
    let Some(left) = not_after.duration_since(now).ok() else {
        return true;
    };
    if left < req.validity / 3 {
        return true;
    }
    // A member whose addresses changed needs a certificate for the new ones.
    let Ok(certs) = pki::parse_certs(cert_pem) else {
        return true;
    };
    let Ok((_, x)) = x509_parser::parse_x509_certificate(&certs[0]) else {
        return true;
    };
    let mut have: Vec<String> = Vec::new();
    if let Ok(Some(san)) = x.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                x509_parser::extensions::GeneralName::DNSName(d) => have.push(d.to_string()),
                x509_parser::extensions::GeneralName::IPAddress(b) => {
                    if let Ok(a) = <[u8; 4]>::try_from(*b) {
                        have.push(std::net::IpAddr::from(a).to_string());
                    } else if let Ok(a) = <[u8; 16]>::try_from(*b) {
                        have.push(std::net::IpAddr::from(a).to_string());
                    }
                }
                _ => {}
            }
        }
    }
    let want = req
        .dns_names
        .iter()
        .cloned()
        .chain(req.ips.iter().map(|i| i.to_string()));
    want.into_iter().any(|w| !have.contains(&w))
}

/// Names every member certificate carries besides the member's own addresses: what in-cluster clients
/// (`kubernetes.default.svc`) and local tools (`localhost`) dial.
const COMMON_SANS: &[&str] = &[
    "localhost",
    "127.0.0.1",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
    "10.96.0.1",
];

pub(crate) fn member_request(identity: &MemberIdentity) -> CertRequest {
    let mut req = CertRequest::client(
        &format!("{}{}", pki::MEMBER_USER_PREFIX, identity.name),
        &[pki::GROUP_MEMBERS],
        identity.validity,
    );
    req.usage = Usage::ServerAndClient;
    let mut names: Vec<String> = identity
        .sans
        .iter()
        .cloned()
        .chain(std::iter::once(identity.name.clone()))
        .chain(COMMON_SANS.iter().map(|s| s.to_string()))
        .collect();
    names.sort();
    names.dedup();
    for n in names {
        let host = n.trim_start_matches('[').trim_end_matches(']');
        match host.parse::<std::net::IpAddr>() {
            Ok(ip) => req.ips.push(ip),
            Err(_) if !host.is_empty() && host != "0.0.0.0" => req.dns_names.push(host.to_string()),
            Err(_) => {}
        }
    }
    req.ips.retain(|ip| !ip.is_unspecified());
    req
}

fn apiserver_client_request(validity: Duration) -> CertRequest {
    CertRequest::client(pki::APISERVER_USER, &[], validity)
}

/// A kubeconfig with one cluster, one user (client certificate) and one context.
pub fn kubeconfig(
    server: &str,
    ca_pem: &str,
    user: &pki::Issued,
    cluster: &str,
    name: &str,
) -> String {
    use base64::Engine as _;
    let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {cluster}\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\nusers:\n- name: {name}\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: {cluster}\n  context:\n    cluster: {cluster}\n    user: {name}\ncurrent-context: {cluster}\n",
        b(ca_pem),
        b(&user.cert_pem),
        b(&user.key_pem)
    )
}

/// Who called a gRPC method, from the verified client certificate; `None` without one.
pub fn peer_identity<T>(req: &tonic::Request<T>) -> Option<Identity> {
    let certs = req.peer_certs()?;
    pki::identity_of(certs.first()?).ok()
}

/// Whether a gRPC caller is a control-plane member (by its certificate).
pub fn is_member(id: Option<&Identity>) -> bool {
    id.is_some_and(|i| {
        i.groups.iter().any(|g| g == pki::GROUP_MEMBERS)
            && i.user.starts_with(pki::MEMBER_USER_PREFIX)
    })
}

/// The node a gRPC caller's certificate names, if it is an agent's.
pub fn node_of(id: Option<&Identity>) -> Option<&str> {
    let id = id?;
    if !id.groups.iter().any(|g| g == pki::GROUP_NODES) {
        return None;
    }
    id.user.strip_prefix(pki::NODE_USER_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(validity: Duration) -> MemberIdentity {
        MemberIdentity {
            name: "s1".into(),
            sans: vec!["127.0.0.1:6444".into(), "10.0.0.1".into()],
            validity,
        }
    }

    #[test]
    fn first_member_creates_and_restart_reopens_the_same_pki() {
        let d = tempfile::tempdir().unwrap();
        let id = identity(DEFAULT_VALIDITY);
        assert!(ClusterPki::open(d.path(), &id).unwrap().is_none());
        let a = ClusterPki::create(d.path(), &id, None).unwrap();
        let b = ClusterPki::open(d.path(), &id).unwrap().unwrap();
        assert_eq!(a.ca_pem(), b.ca_pem());
        assert_eq!(a.token, b.token);
        assert_eq!(a.member.cert_pem(), b.member.cert_pem());
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&pki_dir(d.path())), 0o700);
        for f in [
            "ca.key",
            "sa.key",
            "token",
            "member.key",
            "apiserver-client.key",
        ] {
            assert_eq!(mode(&pki_dir(d.path()).join(f)), 0o600, "{f}");
        }
    }

    #[test]
    fn a_joining_member_adopts_the_keys_and_gets_its_own_certificate() {
        let d1 = tempfile::tempdir().unwrap();
        let d2 = tempfile::tempdir().unwrap();
        let first = ClusterPki::create(d1.path(), &identity(DEFAULT_VALIDITY), None).unwrap();
        let mut id2 = identity(DEFAULT_VALIDITY);
        id2.name = "s2".into();
        let second =
            ClusterPki::adopt(d2.path(), &id2, first.member_keys(), first.token.clone()).unwrap();
        assert_eq!(first.ca_pem(), second.ca_pem());
        let der = pki::parse_certs(&second.member.cert_pem()).unwrap();
        let who = pki::identity_of(&der[0]).unwrap();
        assert_eq!(who.user, "berth:member:s2");
        assert!(is_member(Some(&who)));
        assert_eq!(node_of(Some(&who)), None);
    }

    #[test]
    fn a_half_written_pki_is_refused_not_replaced() {
        let d = tempfile::tempdir().unwrap();
        let id = identity(DEFAULT_VALIDITY);
        ClusterPki::create(d.path(), &id, None).unwrap();
        std::fs::remove_file(pki_dir(d.path()).join("ca.key")).unwrap();
        let e = ClusterPki::open(d.path(), &id).unwrap_err();
        assert!(e.to_string().contains("no ca.key"), "{e}");
    }

    #[test]
    fn certificates_rotate_when_due_and_on_request() {
        let d = tempfile::tempdir().unwrap();
        let p = ClusterPki::create(d.path(), &identity(Duration::from_secs(3600)), None).unwrap();
        let before = p.member.cert_pem();
        assert!(!p.rotate(false).unwrap(), "a fresh certificate is not due");
        assert!(p.rotate(true).unwrap());
        assert_ne!(p.member.cert_pem(), before);
        // The command's request is honoured once.
        let before = p.member.cert_pem();
        ClusterPki::request_rotation(d.path()).unwrap();
        assert!(p.rotate(false).unwrap());
        assert_ne!(p.member.cert_pem(), before);
        assert!(!p.rotate(false).unwrap());
        let on_disk = std::fs::read_to_string(p.dir().join("member.crt")).unwrap();
        assert_eq!(on_disk, p.member.cert_pem());
        // A certificate past two thirds of its life is due.
        let req = member_request(&identity(Duration::from_secs(3600)));
        let later = SystemTime::now() + Duration::from_secs(2500);
        assert!(renewal_due(&on_disk, &req, later));
        assert!(!renewal_due(&on_disk, &req, SystemTime::now()));
        // New addresses make it due too.
        let mut moved = identity(Duration::from_secs(3600));
        moved.sans.push("10.9.9.9".into());
        assert!(renewal_due(
            &on_disk,
            &member_request(&moved),
            SystemTime::now()
        ));
    }

    #[test]
    fn node_certificates_name_the_node_whatever_the_csr_says() {
        let d = tempfile::tempdir().unwrap();
        let p = ClusterPki::create(d.path(), &identity(DEFAULT_VALIDITY), None).unwrap();
        let (csr, _) = pki::new_csr("system:node:other").unwrap();
        let pem = p.issue_node_cert("n1", "10.0.0.11", &csr).unwrap();
        let der = pki::parse_certs(&pem).unwrap();
        let who = pki::identity_of(&der[0]).unwrap();
        assert_eq!(node_of(Some(&who)), Some("n1"));
    }
}
