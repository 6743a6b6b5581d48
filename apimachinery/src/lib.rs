//! One home for the Kubernetes concepts that berth's API server, controllers, scheduler, node agent and
//! CLI all need, so that they parse and compare them the same way (as k8s.io/apimachinery does for
//! Kubernetes): resource quantities, human durations, label and field selectors, RFC 3339 times,
//! stable short hashes, name and label validation, JSON merge patches, and the Linux security tables
//! the API and the agents must agree on.
//!
//! Pure functions only (no I/O, no clock, no randomness), except [`runtime`], the crash-only exit of
//! a process whose critical thread died.

pub mod duration;
pub mod hash;
pub mod labels;
pub mod patch;
pub mod quantity;
pub mod runtime;
pub mod security;
pub mod stats;
pub mod time;
pub mod validation;
