//! kubectl-like verbs over the Kubernetes REST API, one file per verb.

pub mod apply;
pub mod autoscale;
pub mod delete;
pub mod describe;
pub mod get;
pub mod image;
pub mod logs;
pub mod node;
pub mod rollout;
pub mod scale;
pub mod stack;
pub mod token;
pub mod top;
pub mod version;

#[cfg(test)]
mod api_tests;
#[cfg(test)]
mod hpa_api_tests;
