//! kubectl-like verbs over the Kubernetes REST API, one file per verb.

pub mod apply;
pub mod delete;
pub mod get;
pub mod scale;
pub mod version;

#[cfg(test)]
mod fake_tests;
