//! berth node agent: the `berth-agent` library. Runs the pods bound to this node as Linux containers.
//!
//! # Layout
//! - [`images`]: content-addressed image store, OCI layout / docker-save import, registry pull, shared layers.
//! - [`runtime`]: the [`runtime::ContainerRuntime`] trait; crun/runc with one supervisor per container, and a fake.
//! - [`network`]: pod network (CNI bridge), VXLAN overlay, nftables services, node-local DNS.
//! - [`pod`]: the pod manager: sandboxes, container lifecycle, restarts, probes, volumes, pod status.
//! - [`agent`]: Join, the Sync stream with failover, heartbeats, the pod manager thread.
//! - [`metrics`]: container and node resource usage (cgroup v1/v2 sampler) for `/stats/summary`.
//! - [`server`]: HTTP on 10250: container logs, exec (WebSocket v5.channel.k8s.io), image load, stats.
//! - [`critical`]: how the pod manager thread ended; exit 70 through `apimachinery::runtime` when it died.
//! - `sys`: the few raw syscalls (the only `unsafe` code).

pub mod agent;
pub mod critical;
pub mod dockerd;
pub mod images;
pub mod metrics;
pub mod network;
pub mod pod;
pub mod runtime;
pub mod server;
mod sys;
