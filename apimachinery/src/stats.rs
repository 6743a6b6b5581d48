//! The agent's resource usage summary (`GET /stats/summary` on port 10250), a subset of kubelet's
//! Summary API (`k8s.io/kubelet/pkg/apis/stats/v1alpha1`) with the same field names, so the API server's
//! `metrics.k8s.io` and the HorizontalPodAutoscaler read what the agent measured from its cgroups.
//!
//! CPU is a rate: `usageNanoCores` over the agent's last sampling window (`windowNanoSeconds`, an
//! addition to kubelet's shape: metrics-server computes the window from two scrapes, berth's agent
//! samples itself). A container appears only once it has two samples, so every rate is real.

use serde::{Deserialize, Serialize};

/// The whole summary of one node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// The node's own usage (the whole machine, as kubelet's root cgroup).
    pub node: NodeStats,
    /// Pods with at least one measured container.
    #[serde(default)]
    pub pods: Vec<PodStats>,
}

/// Usage of the node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStats {
    /// The node's name.
    pub node_name: String,
    /// CPU, when measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    /// Memory, when measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
}

/// Names a pod.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodReference {
    /// Pod name.
    pub name: String,
    /// Pod namespace.
    pub namespace: String,
    /// Pod uid.
    pub uid: String,
}

/// Usage of one pod: the sum of its containers, and each of them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStats {
    /// Which pod.
    pub pod_ref: PodReference,
    /// Sum of the containers' CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    /// Sum of the containers' memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
    /// Each running container.
    #[serde(default)]
    pub containers: Vec<ContainerStats>,
}

/// Usage of one container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStats {
    /// Container name, as in the pod spec.
    pub name: String,
    /// CPU, when measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    /// Memory, when measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
}

/// CPU use over a window ending at `time`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CpuStats {
    /// End of the window (RFC 3339).
    pub time: String,
    /// Length of the window the rate is taken over, in nanoseconds.
    pub window_nano_seconds: u64,
    /// Average use over the window, in billionths of a core.
    pub usage_nano_cores: u64,
    /// Cumulative CPU time since the container (or node) started, in nanoseconds.
    pub usage_core_nano_seconds: u64,
}

/// Memory use at `time`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryStats {
    /// When it was read (RFC 3339).
    pub time: String,
    /// Usage minus inactive file cache: what kubelet, metrics-server and the HPA call memory use.
    pub working_set_bytes: u64,
    /// Total usage, page cache included.
    pub usage_bytes: u64,
}
