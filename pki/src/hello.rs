//! The bootstrap Hello, the first contact of a joining member or agent with a server it cannot yet
//! trust: one implementation for both, since a mistake here lets a man in the middle hand out the CA.

use std::future::Future;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use proto::bootstrappb::bootstrap_client::BootstrapClient;
use proto::bootstrappb::HelloRequest;
use ring::rand::SecureRandom as _;
use tonic::transport::Channel;

use crate::{ct_eq, hello_proof, insecure_client_config, parse_certs, Token};

/// Asks the server at `addr` for the cluster CA and checks its proof that it holds `token`, bound to
/// the nonce and to the certificate this connection saw. `connect` dials `addr` with the TLS
/// configuration it is given (each caller keeps its own timeouts and keepalives). Returns the CA to
/// trust from now on.
///
/// # Errors
/// When the server cannot be reached, presents no certificate, or its proof is wrong (not a server of
/// this cluster, or a man in the middle).
pub async fn verify_hello<F, Fut>(
    addr: &str,
    token: &Token,
    alpn: &[u8],
    connect: F,
) -> anyhow::Result<String>
where
    F: FnOnce(Arc<rustls::ClientConfig>) -> Fut,
    Fut: Future<Output = anyhow::Result<Channel>>,
{
    let (config, seen) = insecure_client_config(&[alpn]);
    let mut client = BootstrapClient::new(connect(config).await?);
    let mut nonce = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| anyhow::anyhow!("no randomness"))?;
    let resp = client
        .hello(HelloRequest {
            nonce: nonce.to_vec(),
            token_id: token.id.clone(),
        })
        .await
        .with_context(|| format!("bootstrap hello to {addr}"))?
        .into_inner();
    let Some(leaf) = seen.get() else {
        bail!("{addr} presented no certificate");
    };
    let want = hello_proof(token, &nonce, &resp.ca_pem, &leaf);
    if !ct_eq(want.as_bytes(), resp.proof.as_bytes()) {
        bail!("{addr} does not hold the token (wrong token, or not a server of this cluster)");
    }
    parse_certs(&resp.ca_pem).context("server sent a CA that does not parse")?;
    Ok(resp.ca_pem)
}
