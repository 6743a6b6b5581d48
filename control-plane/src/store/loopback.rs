//! A whole Raft cluster in one process on 127.0.0.1, each member with its own sled directory and peer port.
//! For benchmarks and tools that need real replication without separate processes.

use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::members::Member;
use super::object_store::{Error, Result};
use super::raft_store::{RaftStore, Start, StoreConfig};
use crate::security::{ClusterPki, MemberIdentity, DEFAULT_VALIDITY};

/// A cluster started by [`start_cluster_tls`]: its stores, and what a client needs to dial a peer port.
pub struct TlsCluster {
    /// The stores in member order.
    pub stores: Vec<Arc<RaftStore>>,
    /// Each member's PKI, in member order (one CA, made by the first).
    pub pkis: Vec<Arc<ClusterPki>>,
    /// Trusts the cluster CA and presents the first member's certificate, so its holder passes the
    /// peer service's member check (ALPN `h2`, for `pki::net::grpc_connector`).
    pub client_tls: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for TlsCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsCluster")
            .field("members", &self.stores.len())
            .finish_non_exhaustive()
    }
}

/// Starts `n` members named `{prefix}1..{prefix}n` under `dir`, serving their peer ports in plaintext
/// until `stop` is cancelled. Returns the stores in member order; a leader is not awaited.
///
/// # Errors
/// When a port cannot be bound or a store cannot be opened.
pub async fn start_cluster(
    dir: &Path,
    n: usize,
    prefix: &str,
    stop: &CancellationToken,
) -> Result<Vec<Arc<RaftStore>>> {
    Ok(start(dir, n, prefix, stop, false).await?.0)
}

/// [`start_cluster`] with the cluster PKI berth-server runs with: the first member makes the CA in its
/// directory, the others adopt its keys, and members dial each other and serve their peer ports over
/// mutual TLS, admitting only member certificates.
///
/// # Errors
/// When a port cannot be bound, a store cannot be opened, or the PKI cannot be made.
pub async fn start_cluster_tls(
    dir: &Path,
    n: usize,
    prefix: &str,
    stop: &CancellationToken,
) -> Result<TlsCluster> {
    let (stores, pkis) = start(dir, n, prefix, stop, true).await?;
    let client_tls = pkis
        .first()
        .ok_or_else(|| Error::Invalid("a cluster needs a member".into()))?
        .peer_client_config()
        .map_err(pki_error)?;
    Ok(TlsCluster {
        stores,
        pkis,
        client_tls,
    })
}

fn pki_error(e: crate::security::Error) -> Error {
    Error::Unavailable(format!("cluster PKI: {e}"))
}

async fn start(
    dir: &Path,
    n: usize,
    prefix: &str,
    stop: &CancellationToken,
    tls: bool,
) -> Result<(Vec<Arc<RaftStore>>, Vec<Arc<ClusterPki>>)> {
    let unavailable = |e: std::io::Error| Error::Unavailable(e.to_string());
    let mut listeners = Vec::with_capacity(n);
    for _ in 0..n {
        listeners.push(
            TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(unavailable)?,
        );
    }
    let mut members = Vec::with_capacity(n);
    for (i, l) in listeners.iter().enumerate() {
        members.push(Member {
            id: i as u64 + 1,
            name: format!("{prefix}{}", i + 1),
            peer_addr: l.local_addr().map_err(unavailable)?.to_string(),
            api_addr: String::new(),
        });
    }
    let mut stores = Vec::with_capacity(n);
    let mut pkis: Vec<Arc<ClusterPki>> = Vec::new();
    for (l, m) in listeners.into_iter().zip(&members) {
        let data_dir = dir.join(&m.name);
        let mut cfg = StoreConfig::new(
            &data_dir,
            &m.name,
            &m.peer_addr,
            "",
            Start::InitialCluster(members.clone()),
        );
        let server_tls = if tls {
            let identity = MemberIdentity {
                name: m.name.clone(),
                sans: vec!["127.0.0.1".into()],
                validity: DEFAULT_VALIDITY,
            };
            // The first member makes the CA; the others take its keys, as a joining member does
            // through the bootstrap service.
            let pki = match pkis.first() {
                None => ClusterPki::create(&data_dir, &identity, None),
                Some(first) => ClusterPki::adopt(
                    &data_dir,
                    &identity,
                    first.member_keys(),
                    first.token.clone(),
                ),
            }
            .map_err(pki_error)?;
            cfg.tls = Some(pki.peer_client_config().map_err(pki_error)?);
            let server = pki.peer_server_config().map_err(pki_error)?;
            pkis.push(Arc::new(pki));
            Some(server)
        } else {
            None
        };
        let store = RaftStore::open(cfg).await?;
        let svc = store.peer_service();
        let token = stop.clone();
        tokio::spawn(async move {
            let server = tonic::transport::Server::builder()
                .tcp_nodelay(true)
                .add_service(svc);
            let _ = match server_tls {
                Some(cfg) => {
                    server
                        .serve_with_incoming_shutdown(pki::net::incoming(l, cfg), token.cancelled())
                        .await
                }
                None => {
                    let incoming =
                        tonic::transport::server::TcpIncoming::from(l).with_nodelay(Some(true));
                    server
                        .serve_with_incoming_shutdown(incoming, token.cancelled())
                        .await
                }
            };
        });
        stores.push(store);
    }
    Ok((stores, pkis))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tls_cluster_elects_and_admits_only_member_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let stop = CancellationToken::new();
        let c = start_cluster_tls(dir.path(), 3, "m", &stop).await.unwrap();
        assert!(c.pkis.iter().all(|p| p.ca_pem() == c.pkis[0].ca_pem()));
        let addr = c.stores[0].members().by_id[&c.stores[0].id()]
            .peer_addr
            .clone();
        let member = Some(c.client_tls.clone());
        let mut leader = 0;
        // Bounded: 20 s for an election over mutual TLS.
        for _ in 0..200 {
            if let Ok(s) = super::super::transport::status(&addr, &member).await {
                leader = s.leader_id;
                if leader != 0 {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_ne!(leader, 0, "no leader elected over mutual TLS");
        // A valid certificate of the same CA that names no member is refused by the peer service.
        let user = c.pkis[0]
            .issue_user_cert("someone", &[pki::GROUP_MASTERS])
            .unwrap();
        let outsider = Some(
            pki::client_config(
                c.pkis[0].ca_pem(),
                Some(pki::CertSource::from_pem(&user.cert_pem, &user.key_pem).unwrap()),
                &[crate::security::ALPN_H2],
            )
            .unwrap(),
        );
        let refused = super::super::transport::status(&addr, &outsider)
            .await
            .unwrap_err();
        assert!(refused.to_string().contains("members only"), "{refused}");
        stop.cancel();
        for s in &c.stores {
            s.shutdown().await;
        }
    }
}
