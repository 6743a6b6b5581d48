//! What every request handler shares: the store, the settings, the usage source and the shutdown
//! signal.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::kubelet_client::KubeletClient;
use crate::metrics::MetricsSource;
use crate::store::ObjectStore;

/// Settings of the API server.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// `host:port` clients are told to use (`serverAddressByClientCIDRs`).
    pub advertise_address: String,
    /// Port of the node agents' HTTP API (logs, exec), used when a Node does not report
    /// `status.daemonEndpoints.kubeletEndpoint.Port`.
    pub kubelet_port: u16,
    /// The cluster PKI: TLS on the API port, the client certificate towards agents, ServiceAccount
    /// token signing. `None` serves plain HTTP with no authentication (in-process tests only).
    pub pki: Option<Arc<crate::security::ClusterPki>>,
    /// Max-in-flight, timeouts and the watch cap.
    pub limits: super::limits::Limits,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            advertise_address: "127.0.0.1:6443".into(),
            kubelet_port: 10250,
            pki: None,
            limits: super::limits::Limits::default(),
        }
    }
}

impl ApiConfig {
    /// How this server reaches the agents: its PKI's client certificate and the default agent port.
    pub fn kubelet_client(&self) -> KubeletClient {
        KubeletClient::new(self.pki.clone(), self.kubelet_port)
    }
}

/// Shared state of the handlers.
pub struct ApiState {
    /// The object store.
    pub store: Arc<dyn ObjectStore>,
    /// Settings.
    pub config: ApiConfig,
    /// Node and pod usage behind `metrics.k8s.io` (the agents in a server, a table in tests).
    pub metrics: Arc<dyn MetricsSource>,
    /// Cancelled at shutdown; ends watches and log streams.
    pub shutdown: CancellationToken,
}
