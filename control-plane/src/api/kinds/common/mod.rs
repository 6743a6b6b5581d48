//! Pieces several kinds share, so no kind carries its own copy: field errors, names and metadata,
//! pod spec validation, table columns and protobuf field tables.

pub(crate) mod columns;
pub(crate) mod config_data;
pub(crate) mod errs;
pub(crate) mod fields;
pub(crate) mod names;
pub(crate) mod pod_fields;
pub(crate) mod pod_spec;
pub(crate) mod rbac;
pub(crate) mod security;
pub(crate) mod volumes;
pub(crate) mod workload;
