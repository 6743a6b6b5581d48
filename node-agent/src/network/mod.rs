//! Cluster networking on one node: pod network (bridge `berth0` + veth via the standard CNI plugins), the VXLAN
//! overlay to other nodes, service load balancing in nftables, and the node-local DNS server.
//!
//! Layout: `netlink` (the OS seam: `ip`/`bridge`/`nft`), `cni` (pod network via CNI plugins), `overlay` (flannel-style
//! VXLAN), `services` (kube-proxy nftables mode), `dns` (wire format, names, server), `netns` (named namespaces),
//! `node` (the façade the agent drives), `fake` (recording fakes for unit tests), `testbed` (namespaced lab for tests).

mod cidr;
pub mod cni;
pub mod dns;
pub mod fake;
pub mod netlink;
mod netns;
pub mod node;
pub mod overlay;
pub mod services;
pub mod testbed;

use std::net::Ipv4Addr;
use std::path::Path;

pub use cidr::{nth, parse_cidr};
pub use ipnet::Ipv4Net;
pub use netns::{create_netns, delete_netns, in_netns, netns_name, netns_path};
pub use node::{NodeNetwork, NodeNetworkConfig};

/// Annotation that selects the pod network mode; the value `none` gives the pod a netns with loopback only.
pub const NETWORK_ANNOTATION: &str = "berth.dev/network";

/// Errors of the network layer. None is retryable by itself except `CommandFailed` caused by a concurrent change.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// An external tool (`ip`, `bridge`, `nft`, `sysctl`) could not be started.
    #[error("failed to run {cmd}: {reason}")]
    SpawnFailed {
        /// Command line.
        cmd: String,
        /// OS error text.
        reason: String,
    },
    /// An external tool exited with an error.
    #[error("{cmd} failed: {stderr}")]
    CommandFailed {
        /// Command line.
        cmd: String,
        /// Its standard error, trimmed.
        stderr: String,
    },
    /// A CNI plugin returned an error result.
    #[error("cni plugin {plugin} {command} failed: {msg}")]
    CniFailed {
        /// Plugin binary name.
        plugin: String,
        /// ADD, DEL or CHECK.
        command: String,
        /// Error message from the plugin's error JSON (or its stderr).
        msg: String,
    },
    /// Output of a tool or plugin could not be understood.
    #[error("failed to parse {what}: {detail}")]
    ParseFailed {
        /// What was being parsed.
        what: String,
        /// Why it failed.
        detail: String,
    },
    /// Configuration is invalid (bad CIDR, missing pod CIDR, ...).
    #[error("invalid network configuration: {0}")]
    InvalidConfig(String),
    /// A file operation failed.
    #[error("{op} {path} failed: {reason}")]
    IoFailed {
        /// Operation (read, write, create_dir).
        op: String,
        /// Path involved.
        path: String,
        /// OS error text.
        reason: String,
    },
}

/// Result with the network [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(op: &str, path: impl AsRef<Path>, err: std::io::Error) -> Self {
        Error::IoFailed {
            op: op.to_string(),
            path: path.as_ref().display().to_string(),
            reason: err.to_string(),
        }
    }
}

/// The address a pod got; reported in `status.podIP`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodIp {
    /// IPv4 address of the pod (the node IP for `hostNetwork` pods).
    pub ip: Ipv4Addr,
}

/// A port of the node forwarded to a pod (`containers[].ports[].hostPort`), what the CNI `portmap` plugin does
/// in Kubernetes; berth keeps it in its own nft table, next to the Services.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct HostPort {
    /// `tcp` or `udp` (nft's names).
    pub protocol: &'static str,
    /// The node's port.
    pub host_port: u16,
    /// The pod's port.
    pub container_port: u16,
}

/// The `hostPort`s of a pod spec.
///
/// # Errors
/// A port with a protocol other than TCP or UDP, or out of range.
pub fn host_ports(pod_spec: &serde_json::Value) -> std::result::Result<Vec<HostPort>, String> {
    let mut out = Vec::new();
    for c in pod_spec["containers"].as_array().into_iter().flatten() {
        for p in c["ports"].as_array().into_iter().flatten() {
            let Some(host) = p["hostPort"].as_u64().filter(|n| *n != 0) else {
                continue;
            };
            let container = p["containerPort"].as_u64().unwrap_or(0);
            let protocol = match p["protocol"].as_str().unwrap_or("TCP") {
                "TCP" => "tcp",
                "UDP" => "udp",
                other => {
                    return Err(format!(
                        "hostPort {host}/{other}: only TCP and UDP are supported"
                    ))
                }
            };
            let (Ok(host_port), Ok(container_port)) =
                (u16::try_from(host), u16::try_from(container))
            else {
                return Err(format!("hostPort {host} -> {container}: out of range"));
            };
            if container_port == 0 {
                return Err(format!("hostPort {host}: containerPort is required"));
            }
            out.push(HostPort {
                protocol,
                host_port,
                container_port,
            });
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// How a pod is attached to the network (Docker's bridge/overlay = `Pod`, host = `Host`, none = `Isolated`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    /// Own netns with a veth on `berth0` and a cluster-routable IP (the default).
    Pod,
    /// `hostNetwork: true`: the pod shares the node's netns.
    Host,
    /// Annotation `berth.dev/network: none`: own netns with loopback only.
    Isolated,
}

/// Picks the network mode of a pod from `spec.hostNetwork` and its annotations.
pub fn network_mode<'a>(
    host_network: bool,
    mut annotations: impl Iterator<Item = (&'a str, &'a str)>,
) -> NetworkMode {
    if host_network {
        return NetworkMode::Host;
    }
    if annotations.any(|(k, v)| k == NETWORK_ANNOTATION && v.eq_ignore_ascii_case("none")) {
        NetworkMode::Isolated
    } else {
        NetworkMode::Pod
    }
}

/// What the pod manager calls to attach and detach pod sandboxes. Implemented by [`cni::CniPodNetwork`] and
/// [`fake::FakePodNetwork`].
///
/// Contract: the pod manager creates the sandbox netns first (see [`create_netns`]), calls `setup`, and starts the
/// containers in that netns; on stop it calls `teardown` *before* [`delete_netns`]. Both calls are idempotent: calling
/// `setup` twice for the same pod returns the same IP, and `teardown` of an unknown pod is `Ok`.
pub trait PodNetwork: Send + Sync {
    /// Attaches the pod's netns to the pod network (veth on `berth0`, IP from the node's pod CIDR, loopback up).
    /// With `host_network` nothing is configured and the node IP is returned.
    ///
    /// # Errors
    /// A CNI plugin or an `ip` command failed; the caller should tear down and retry later.
    fn setup(
        &self,
        pod_uid: &str,
        pod_ns: &str,
        pod_name: &str,
        netns_path: &Path,
        host_network: bool,
    ) -> Result<PodIp, Error>;

    /// Sets up a pod with network mode "none": only loopback is brought up in its netns, no IP is assigned.
    ///
    /// # Errors
    /// The loopback plugin failed.
    fn setup_isolated(&self, pod_uid: &str, netns_path: &Path) -> Result<(), Error>;

    /// Forwards the node's `ports` to the pod at `ip` (`hostPort`), replacing what the pod published before;
    /// `teardown` withdraws them.
    ///
    /// # Errors
    /// Another pod on this node holds one of the ports, or the rules could not be written.
    fn publish(&self, pod_uid: &str, ip: Ipv4Addr, ports: &[HostPort]) -> Result<(), Error>;

    /// Releases the pod's IP and removes its veth. Safe to call for pods that were never set up, for
    /// `hostNetwork` pods, and when the netns is already gone.
    ///
    /// # Errors
    /// A CNI plugin failed to release the address (the pod manager should retry).
    fn teardown(&self, pod_uid: &str, netns_path: &Path) -> Result<(), Error>;
}
