//! berth control plane: the `berth-server` library.
//!
//! # Layout
//! - [`store`]: Raft-replicated object store (raft-rs `RawNode` + sled), watch windows.
//! - [`api`]: Kubernetes-compatible REST API on port 6443.
//! - [`scheduler`]: pure placement of pods on nodes.
//! - [`informer`]: the one list+watch loop and the informer caches over it, shared by the API's
//!   authorizer, the agents service, the scheduler runner and the controllers.
//! - [`controllers`]: Deployment, ReplicaSet, NodeLifecycle, Endpoints, Namespace, GarbageCollector.
//! - [`agents`]: gRPC service the node agents talk to. [`bootstrap`]: first contact of joining members
//!   and agents (the CA against a token proof). [`security`]: the member's certificates and keys.
//! - [`metrics`]: node and pod resource usage read from the agents (metrics.k8s.io, the HPA).
//! - [`kubelet_client`]: how the server reaches an agent (address, TLS), for the proxy and metrics.
//! - [`server`]: process wiring of `berth-server` (store, peer gRPC, hooks for the API and controllers).

pub mod agents;
pub mod api;
pub mod bootstrap;
pub mod controllers;
pub mod informer;
pub mod kubelet_client;
pub mod leader_lease;
pub mod metrics;
pub mod scheduler;
pub mod security;
pub mod server;
pub mod store;
