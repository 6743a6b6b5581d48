//! gRPC service the node agents talk to: `Join` admits a node and allocates its pod CIDR; `Sync` carries
//! heartbeats and pod statuses up, and the node's desired pods plus the cluster network view down.
//!
//! Every write goes through the [`ObjectStore`], so followers serve agents too (their writes are forwarded).

mod join;
mod sync;
mod view;

use crate::store::{self, Batch, Consistency, ObjectStore, Op, Precondition};
use proto::agentpb::agent_service_server::AgentServiceServer;
use serde_json::Value;
use std::sync::Arc;

pub use view::{desired_pods, network_view, pod_update};

/// Settings the agents service hands to nodes.
#[derive(Debug, Clone)]
pub struct AgentsConfig {
    /// Shared secret agents must present when `pki` is `None` (in-process tests only); with a PKI the
    /// cluster token and bootstrap tokens come from there and the store.
    pub token: String,
    /// Cluster pod CIDR; node /24s are carved from it.
    pub cluster_cidr: String,
    /// Service CIDR.
    pub service_cidr: String,
    /// Cluster DNS service IP.
    pub cluster_dns: String,
    /// Cluster DNS domain.
    pub cluster_domain: String,
    /// gRPC addresses of every server member, for agent failover.
    pub servers: Vec<String>,
    /// The cluster PKI: node certificates are issued at Join, callers are identified by their
    /// certificates, and pods get ServiceAccount tokens. `None` keeps the token-only protocol.
    pub pki: Option<Arc<crate::security::ClusterPki>>,
}

impl Default for AgentsConfig {
    fn default() -> Self {
        AgentsConfig {
            token: String::new(),
            cluster_cidr: "10.244.0.0/16".into(),
            service_cidr: "10.96.0.0/16".into(),
            cluster_dns: "10.96.0.10".into(),
            cluster_domain: "cluster.local".into(),
            servers: vec![],
            pki: None,
        }
    }
}

/// The agent protocol implementation over a store.
pub struct AgentsService {
    store: Arc<dyn ObjectStore>,
    config: AgentsConfig,
}

/// Builds the tonic service to mount on the gRPC port (6444) next to the Raft transport.
pub fn service(
    store: Arc<dyn ObjectStore>,
    config: AgentsConfig,
) -> AgentServiceServer<AgentsService> {
    AgentServiceServer::new(AgentsService { store, config })
}

fn now_rfc3339() -> String {
    #[allow(clippy::disallowed_methods)]
    let now = std::time::SystemTime::now();
    apimachinery::time::rfc3339(now)
}

fn store_status(e: store::Error) -> tonic::Status {
    match e {
        store::Error::NoLeader
        | store::Error::Timeout
        | store::Error::Dropped(_)
        | store::Error::Unavailable(_) => tonic::Status::unavailable(e.to_string()),
        store::Error::Invalid(_) => tonic::Status::invalid_argument(e.to_string()),
        _ => tonic::Status::internal(e.to_string()),
    }
}

/// Read-modify-write of one object with `Precondition::Revision`, retried on conflicts. `f` returns the
/// new object, or `None` to leave it alone. Returns the written object.
pub(crate) async fn update<F>(
    store: &dyn ObjectStore,
    key: &str,
    mut f: F,
) -> Result<Option<Value>, store::Error>
where
    F: FnMut(Value) -> Option<Value>,
{
    for _ in 0..16 {
        let Some(obj) = store.get(key, Consistency::Linearizable).await? else {
            return Ok(None);
        };
        let Some(new) = f(obj.value) else {
            return Ok(None);
        };
        let batch = Batch::one(Op::Put {
            key: key.to_string(),
            value: new,
            precondition: Precondition::Revision(obj.revision),
        });
        match store.commit(batch).await {
            Ok(c) => return Ok(c.into_first()),
            Err(store::Error::PreconditionFailed { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(store::Error::Timeout)
}

#[cfg(test)]
mod tests;
