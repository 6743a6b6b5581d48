//! Kubernetes-compatible REST API (port 6443): discovery, OpenAPI, CRUD, list, watch, patch, Table, Status errors.
//!
//! # Layout
//! - [`server`]: `serve(listener, store, shutdown)`, the axum service. [`state`]: what handlers share.
//! - [`handlers`]: dispatch by route and verb. [`verbs`]: get, list, watch, create, update, patch,
//!   delete, deletecollection and the subresources, over one read-modify-write executor.
//! - [`body`]: request bodies. [`patch`]: JSON, merge and strategic merge patches, server-side apply.
//! - [`route`]: path and query parsing. [`resources`]: lookups over the registry of kinds.
//! - `kinds`: one file per kind (validation, table columns, protobuf table, schema) and the registry.
//! - [`discovery`], [`openapi`]: what kubectl reads before it acts.
//! - [`meta`]: metadata and per-kind defaults. [`alloc`]: ClusterIP/NodePort allocation.
//! - [`limits`]: max-in-flight, request timeout and the watch cap (kube-apiserver's filters).
//! - [`watch`]: watch streams. [`status`]: `metav1.Status` errors. [`proxy`]: logs and exec via the agent.
//! - [`metrics`]: `metrics.k8s.io` NodeMetrics and PodMetrics from the agents' usage.
//! - [`ui`]: the web view's static assets at `/ui/`. [`members`]: `/berth/v1/members`.
//! - [`multiwatch`]: `/berth/v1/watch`, several cluster-wide watches in one tagged stream.
pub mod alloc;
pub mod authn;
pub mod authz;
pub mod body;
pub mod discovery;
pub mod handlers;
pub(crate) mod kinds;
pub mod limits;
pub mod members;
pub mod meta;
pub mod metrics;
pub mod multiwatch;
pub mod openapi;
pub mod patch;
pub mod pod_security;
pub mod protobuf;
pub mod proxy;
pub mod resources;
pub mod route;
pub mod server;
pub mod state;
pub mod status;
pub mod table;
pub mod ui;
pub mod validation;
pub mod verbs;
pub mod watch;

pub use server::{bootstrap, serve, serve_with, serve_with_metrics};
pub use state::ApiConfig;
