//! Kubernetes-compatible REST API (port 6443): discovery, OpenAPI, CRUD, list, watch, patch, Table, Status errors.
pub mod selector;
pub mod patch;
pub mod validation;
pub mod table;
pub mod protobuf;
