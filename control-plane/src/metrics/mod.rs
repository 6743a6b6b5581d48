//! Resource usage of nodes and pods, as the node agents measure it from their cgroups: the one source
//! behind `metrics.k8s.io` (served by `api::metrics`) and the HorizontalPodAutoscaler controller.
//!
//! Like metrics-server, nothing is stored in Raft: usage is read from the agents (their
//! `/stats/summary`, see [`apimachinery::stats`]) when asked, so any member answers and the store
//! carries no per-second writes.

pub mod agents;
pub mod convert;

pub use agents::AgentMetrics;

use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;

/// Use of one container over a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerUsage {
    /// Container name.
    pub name: String,
    /// Average CPU over the window, in billionths of a core.
    pub cpu_nanocores: u64,
    /// Working set (usage minus inactive file cache), in bytes.
    pub memory_bytes: u64,
}

/// Use of one pod: each container that has been measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodUsage {
    /// Pod namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// End of the measuring window.
    pub timestamp: SystemTime,
    /// Length of the window the CPU rate is taken over.
    pub window: Duration,
    /// The measured containers.
    pub containers: Vec<ContainerUsage>,
}

impl PodUsage {
    /// CPU of all containers, in billionths of a core.
    pub fn cpu_nanocores(&self) -> u64 {
        self.containers.iter().map(|c| c.cpu_nanocores).sum()
    }

    /// Working set of all containers, in bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.containers.iter().map(|c| c.memory_bytes).sum()
    }
}

/// Use of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeUsage {
    /// Node name.
    pub name: String,
    /// End of the measuring window.
    pub timestamp: SystemTime,
    /// Length of the window the CPU rate is taken over.
    pub window: Duration,
    /// Average CPU over the window, in billionths of a core.
    pub cpu_nanocores: u64,
    /// Working set, in bytes.
    pub memory_bytes: u64,
}

/// Why usage could not be read at all (one unreachable agent is not an error: its node and pods are
/// left out, as metrics-server leaves out a kubelet it cannot scrape).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsError(pub String);

impl std::fmt::Display for MetricsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MetricsError {}

/// Where usage comes from: the agents in a running server, a table in tests.
pub trait MetricsSource: Send + Sync + 'static {
    /// Every measured pod, or those of one namespace.
    fn pods<'a>(
        &'a self,
        namespace: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<PodUsage>, MetricsError>>;

    /// Every node that answered.
    fn nodes(&self) -> BoxFuture<'_, Result<Vec<NodeUsage>, MetricsError>>;
}
