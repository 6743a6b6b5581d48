//! The conversion's state, shared by the modules that convert each part of a service.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

/// The conversion's state: what the document declares and what services have asked for so far.
pub(super) struct Converter<'a> {
    pub(super) stack: String,
    pub(super) base: std::path::PathBuf,
    pub(super) volumes: Map<String, Value>,
    pub(super) claims: BTreeSet<String>,
    /// Top-level configs and secrets by (kind, Compose name).
    pub(super) files: BTreeMap<(FileKind, String), StackFile>,
    pub(super) ignored: BTreeSet<String>,
    pub(super) warnings: Vec<String>,
    pub(super) env: &'a dyn Fn(&str) -> Option<String>,
}

/// Compose's two kinds of files handed to services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum FileKind {
    Config,
    Secret,
}

impl FileKind {
    pub(super) fn section(self) -> &'static str {
        match self {
            FileKind::Config => "configs",
            FileKind::Secret => "secrets",
        }
    }
    pub(super) fn singular(self) -> &'static str {
        match self {
            FileKind::Config => "config",
            FileKind::Secret => "secret",
        }
    }
}

/// A top-level config or secret: the object that holds it (none when external) and where to find its data.
#[derive(Debug, Clone)]
pub(super) struct StackFile {
    /// The ConfigMap or Secret name.
    pub(super) object_name: String,
    /// The data key holding the content.
    pub(super) key: String,
    /// The object to create; `None` for `external: true`.
    pub(super) object: Option<Value>,
}
