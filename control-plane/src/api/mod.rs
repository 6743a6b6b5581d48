//! Kubernetes-compatible REST API (port 6443): discovery, OpenAPI, CRUD, list, watch, patch, Table, Status errors.
//!
//! # Layout
//! - [`server`]: `serve(listener, store, shutdown)`, the axum service.
//! - [`handlers`]: dispatch by route and verb; CRUD, patch, delete, subresources.
//! - [`route`]: path and query parsing. [`resources`]: the registry of kinds.
//! - [`discovery`], [`openapi`]: what kubectl reads before it acts.
//! - [`meta`]: metadata and per-kind defaults. [`alloc`]: ClusterIP/NodePort allocation.
//! - [`limits`]: max-in-flight, request timeout and the watch cap (kube-apiserver's filters).
//! - [`watch`]: watch streams. [`status`]: `metav1.Status` errors. [`proxy`]: logs and exec via the agent.
pub mod alloc;
pub mod authn;
pub mod authz;
pub mod discovery;
pub mod handlers;
pub mod limits;
pub mod meta;
pub mod openapi;
pub mod patch;
pub mod pod_security;
pub mod protobuf;
pub mod proxy;
pub mod resources;
pub mod route;
pub mod server;
pub mod status;
pub mod table;
pub mod validation;
pub mod watch;

pub use handlers::ApiConfig;
pub use server::{bootstrap, serve, serve_with};
