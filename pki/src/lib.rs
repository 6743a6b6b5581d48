//! berth's cluster PKI: one CA per cluster (made by the first member), the certificates it issues to
//! members, agents, the API server and users, the rustls configurations every port uses, and the tokens
//! that let a new member or agent get its first certificate.
//!
//! Names follow Kubernetes: a certificate's CN is the user and its O entries the groups
//! (`system:node:<name>` in `system:nodes` for agents, `system:masters` for the admin).

mod ca;
mod files;
pub mod hello;
pub mod net;
mod tls;
mod token;

pub use ca::{new_csr, Ca, CertRequest, Issued, Usage};
pub use files::{ensure_private_dir, read_if_exists, write_private};
pub use tls::{
    client_config, identity_of, insecure_client_config, not_after, parse_certs, server_config,
    CertSource, ClientAuth, Identity, SeenServerCert,
};
pub use token::{ct_eq, hello_proof, proof, sha256_hex, ServiceAccountClaims, SigningKey, Token};

/// What can go wrong making, reading or using certificates and tokens.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// rcgen refused the parameters or the key.
    #[error("certificate: {0}")]
    Cert(#[from] rcgen::Error),
    /// rustls refused the configuration (bad key, no certificate).
    #[error("tls: {0}")]
    Tls(#[from] rustls::Error),
    /// Client-certificate verifier could not be built.
    #[error("tls client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// PEM or DER input that does not parse.
    #[error("{0}")]
    Parse(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Group of the cluster's superusers (bound to `cluster-admin`, as kubeadm's admin.conf).
pub const GROUP_MASTERS: &str = "system:masters";
/// Group of every node agent.
pub const GROUP_NODES: &str = "system:nodes";
/// Prefix of a node agent's user name.
pub const NODE_USER_PREFIX: &str = "system:node:";
/// Group of control-plane members (their peer certificates).
pub const GROUP_MEMBERS: &str = "berth:members";
/// Prefix of a member's user name.
pub const MEMBER_USER_PREFIX: &str = "berth:member:";
/// The API server's client identity towards agents (port 10250), as kube-apiserver-kubelet-client.
pub const APISERVER_USER: &str = "berth:apiserver";

/// Installs ring as rustls' process-wide crypto provider (idempotent). Every binary calls this once
/// at start so libraries that build their own rustls configs (kube, reqwest) use the same provider.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
