//! A whole Raft cluster in one process on 127.0.0.1, each member with its own sled directory and peer port.
//! For benchmarks and tools that need real replication without separate processes.

use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{Member, RaftStore, Result, Start, StoreConfig};

/// Starts `n` members named `{prefix}1..{prefix}n` under `dir`, serving their peer ports until `stop` is
/// cancelled. Returns the stores in member order; a leader is not awaited.
///
/// # Errors
/// When a port cannot be bound or a store cannot be opened.
pub async fn start_cluster(
    dir: &Path,
    n: usize,
    prefix: &str,
    stop: &CancellationToken,
) -> Result<Vec<Arc<RaftStore>>> {
    let unavailable = |e: std::io::Error| super::Error::Unavailable(e.to_string());
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
    for (l, m) in listeners.into_iter().zip(&members) {
        let cfg = StoreConfig::new(
            dir.join(&m.name),
            &m.name,
            &m.peer_addr,
            "",
            Start::InitialCluster(members.clone()),
        );
        let store = RaftStore::open(cfg).await?;
        let svc = store.peer_service();
        let token = stop.clone();
        tokio::spawn(async move {
            let incoming = tonic::transport::server::TcpIncoming::from(l).with_nodelay(Some(true));
            let _ = tonic::transport::Server::builder()
                .tcp_nodelay(true)
                .add_service(svc)
                .serve_with_incoming_shutdown(incoming, token.cancelled())
                .await;
        });
        stores.push(store);
    }
    Ok(stores)
}
