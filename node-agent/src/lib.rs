//! berth node agent: the `berth-agent` library. Runs the pods bound to this node as Linux containers.
//!
//! # Layout
//! - [`images`]: content-addressed image store, OCI layout / docker-save import, registry pull, shared layers.
//! - [`runtime`]: the [`runtime::ContainerRuntime`] trait; crun/runc with one supervisor per container, and a fake.
//! - [`network`]: pod network (CNI bridge), VXLAN overlay, nftables services, node-local DNS.
//! - [`pod`]: the pod manager: sandboxes, container lifecycle, restarts, probes, volumes, pod status.
//! - `sys`: the few raw syscalls (the only `unsafe` code).

pub mod images;
pub mod pod;
pub mod network;
pub mod runtime;
mod sys;
