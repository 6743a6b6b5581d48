//! berthctl: kubectl-like verbs for berth clusters and `lab` verbs that build local multi-node clusters out of
//! network namespaces.
//!
//! # Layout
//! - [`kubeconfig`]: kubeconfig/flag resolution into a connected [`kubeconfig::Session`].
//! - [`resources`]: discovery catalog, type-name resolution (`po`, `deploy`, `deployments.apps`) and REST paths.
//! - [`bench`]: `berthctl bench`, the seed's metrics measured side by side on a cluster.
//! - [`compose`]: Compose files as Kubernetes objects for `stack deploy` (pure).
//! - [`jsonpath`]: kubectl's `-o jsonpath` templates (pure).
//! - [`manifest`]: reading `-f` files, directories and stdin (multi-document YAML/JSON).
//! - [`rest`]: raw REST helpers (Tables, patches, subresources, watches).
//! - [`table`]: kubectl-style printing of server-side Tables.
//! - [`errors`]: kubectl-style one-line error messages.
//! - [`kubectl`]: the verbs (`apply`, `get`, `delete`, `scale`, ...).
//! - [`lab`]: local clusters in network namespaces (`plan` is pure, `host` runs `ip` and processes).

pub mod bench;
pub mod compose;
pub mod errors;
pub mod jsonpath;
pub mod kubeconfig;
pub mod kubectl;
pub mod lab;
pub mod manifest;
pub mod resources;
pub mod rest;
pub mod table;

#[cfg(test)]
mod test_server;
#[cfg(test)]
mod tls_tests;
