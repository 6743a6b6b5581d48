//! The node's identity, as kubelet TLS bootstrap: the first start trades the join token for a node
//! certificate, later starts reuse the stored one, and a task renews it at two thirds of its life.
//!
//! First contact (`Bootstrap.Hello`) trusts nothing: the server must prove it holds the token, bound to
//! the TLS certificate this connection saw, before the agent trusts the CA it sent or sends the token.
//! Files: `<data-dir>/pki/{ca.crt,node.crt,node.key}` (dir 0700, files 0600).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use pki::{CertSource, Token};
use tonic::transport::Channel;

/// ALPN of gRPC.
pub const ALPN_H2: &[u8] = b"h2";
/// ALPN of the agent's HTTP port.
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// The node certificate in use and the CA it chains to.
#[derive(Debug, Clone)]
pub struct NodeIdentity {
    /// The cluster CA, PEM.
    pub ca_pem: String,
    /// The node certificate and key (presented on 6444 and served on 10250); renewed in place.
    pub cert: Arc<CertSource>,
    dir: PathBuf,
}

/// `<data-dir>/pki`.
pub fn pki_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("pki")
}

impl NodeIdentity {
    /// The identity stored under `data_dir`, if complete and not expired.
    ///
    /// # Errors
    /// When the files exist but cannot be read or do not parse.
    pub fn load(data_dir: &Path) -> anyhow::Result<Option<NodeIdentity>> {
        let dir = pki_dir(data_dir);
        let read = |f: &str| pki::read_if_exists(&dir.join(f));
        let (Some(ca_pem), Some(cert_pem), Some(key_pem)) =
            (read("ca.crt")?, read("node.crt")?, read("node.key")?)
        else {
            return Ok(None);
        };
        let cert = CertSource::from_pem(&cert_pem, &key_pem)
            .with_context(|| format!("node certificate in {}", dir.display()))?;
        #[allow(clippy::disallowed_methods)]
        if cert.not_after()? <= SystemTime::now() {
            tracing::warn!(dir = %dir.display(), "stored node certificate expired; a token is needed to join again");
            return Ok(None);
        }
        pki::parse_certs(&ca_pem).context("stored ca.crt")?;
        Ok(Some(NodeIdentity { ca_pem, cert, dir }))
    }

    /// Stores a new identity (ca.crt, node.key, node.crt) and returns it.
    ///
    /// # Errors
    /// When the files cannot be written or the pair does not parse.
    pub fn store(
        data_dir: &Path,
        ca_pem: &str,
        cert_pem: &str,
        key_pem: &str,
    ) -> anyhow::Result<NodeIdentity> {
        let cert = CertSource::from_pem(cert_pem, key_pem)?;
        let dir = pki_dir(data_dir);
        pki::ensure_private_dir(&dir)?;
        pki::write_private(&dir.join("ca.crt"), ca_pem.as_bytes())?;
        write_pair(&dir, cert_pem, key_pem)?;
        Ok(NodeIdentity {
            ca_pem: ca_pem.to_string(),
            cert,
            dir,
        })
    }

    /// Takes a renewed certificate: files first (a crash keeps a matching pair), then the live source.
    ///
    /// # Errors
    /// When the pair does not match or cannot be written (the old pair stays in use).
    pub fn renew(&self, cert_pem: &str, key_pem: &str) -> anyhow::Result<()> {
        CertSource::from_pem(cert_pem, key_pem)?;
        write_pair(&self.dir, cert_pem, key_pem)?;
        self.cert.replace(cert_pem, key_pem)?;
        Ok(())
    }

    /// Dialling servers on 6444: verify them by the CA, present the node certificate.
    ///
    /// # Errors
    /// When the CA does not parse.
    pub fn grpc_config(&self) -> anyhow::Result<Arc<rustls::ClientConfig>> {
        Ok(pki::client_config(
            &self.ca_pem,
            Some(self.cert.clone()),
            &[ALPN_H2],
        )?)
    }

    /// Serving 10250: the node certificate; clients must present a certificate of the CA (the caller
    /// is then checked to be the API server).
    ///
    /// # Errors
    /// When the CA does not parse.
    pub fn http_config(&self) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        Ok(pki::server_config(
            &self.ca_pem,
            self.cert.clone(),
            pki::ClientAuth::Required,
            &[ALPN_HTTP1],
        )?)
    }

    /// When to renew: two thirds into the certificate's life (its start taken from node.crt's mtime,
    /// written when it was issued).
    pub fn renew_at(&self) -> SystemTime {
        let not_after = self.cert.not_after().unwrap_or(SystemTime::UNIX_EPOCH);
        let issued = std::fs::metadata(self.dir.join("node.crt"))
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH)
            .min(not_after);
        let life = not_after.duration_since(issued).unwrap_or_default();
        issued + life * 2 / 3
    }
}

fn write_pair(dir: &Path, cert_pem: &str, key_pem: &str) -> anyhow::Result<()> {
    // Key before certificate: a crash in between leaves a pair that does not match, which load
    // refuses (then the token, if any, joins again) rather than a certificate without its key.
    pki::write_private(&dir.join("node.key"), key_pem.as_bytes())?;
    pki::write_private(&dir.join("node.crt"), cert_pem.as_bytes())?;
    Ok(())
}

/// A gRPC channel to `addr` over TLS with `config`, with the keepalives the Sync stream relies on.
///
/// # Errors
/// When the address is malformed, or the connection or handshake fails.
pub async fn channel(addr: &str, config: Arc<rustls::ClientConfig>) -> anyhow::Result<Channel> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(2))
        // A server that vanishes without closing TCP (partition, power loss) is noticed within ~6 s.
        .http2_keep_alive_interval(Duration::from_secs(2))
        .keep_alive_timeout(Duration::from_secs(4))
        .keep_alive_while_idle(true);
    Ok(tokio::time::timeout(
        Duration::from_secs(5),
        endpoint.connect_with_connector(pki::net::grpc_connector(config)),
    )
    .await
    .context("connect timed out")??)
}

/// First contact with the server at `addr`: the CA, once the server proved it holds `token`. The check
/// is [`pki::hello::verify_hello`], shared with joining members; only the channel (with the keepalives
/// the Sync stream relies on) is the agent's.
///
/// # Errors
/// As [`pki::hello::verify_hello`].
pub async fn verify_hello(addr: &str, token: &Token) -> anyhow::Result<String> {
    pki::hello::verify_hello(addr, token, ALPN_H2, |config| channel(addr, config)).await
}

/// Reads the join token: `--token-file` if given, else `BERTH_TOKEN` (taken out of the environment so
/// children never inherit it). `None` when neither is set.
///
/// # Errors
/// When the file cannot be read or the token is malformed.
pub fn read_token(token_file: Option<&Path>) -> anyhow::Result<Option<Token>> {
    let text = match token_file {
        Some(f) => Some(
            std::fs::read_to_string(f)
                .with_context(|| format!("failed to read the token file {}", f.display()))?,
        ),
        None => std::env::var("BERTH_TOKEN").ok(),
    };
    match text.filter(|t| !t.trim().is_empty()) {
        Some(t) => Ok(Some(Token::parse(&t)?)),
        None => Ok(None),
    }
}
