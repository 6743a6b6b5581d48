//! The registry row of a kind: group, version, plural, kind, scope, short names, verbs and
//! subresources, as discovery, routing and the store keys read it.

/// Verbs of a full read-write resource.
pub(crate) const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// A subresource of a kind (`pods/log`, `deployments/scale`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subresource {
    /// Name after the object name in the path (`status`, `scale`).
    pub name: &'static str,
    /// Group of the kind the subresource answers with (`""` = core).
    pub group: &'static str,
    /// Version of the kind it answers with.
    pub version: &'static str,
    /// Kind it answers with (`Scale`, `Eviction`); empty when it streams bytes.
    pub kind: &'static str,
    /// Verbs it supports.
    pub verbs: &'static [&'static str],
}

/// One served resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceInfo {
    /// API group; `""` for the core group.
    pub group: &'static str,
    /// Version (`v1` for every kind served).
    pub version: &'static str,
    /// Plural name used in paths and store keys.
    pub resource: &'static str,
    /// Singular name.
    pub singular: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Short names kubectl accepts (`po`, `deploy`).
    pub short_names: &'static [&'static str],
    /// Categories (`all`).
    pub categories: &'static [&'static str],
    /// Verbs on the resource itself.
    pub verbs: &'static [&'static str],
    /// Subresources.
    pub subresources: &'static [Subresource],
}

pub(crate) const STATUS_VERBS: &[&str] = &["get", "patch", "update"];

pub(crate) const fn status(group: &'static str, kind: &'static str) -> Subresource {
    Subresource {
        name: "status",
        group,
        version: "v1",
        kind,
        verbs: STATUS_VERBS,
    }
}

pub(crate) const SCALE: Subresource = Subresource {
    name: "scale",
    group: "autoscaling",
    version: "v1",
    kind: "Scale",
    verbs: STATUS_VERBS,
};

/// A `rbac.authorization.k8s.io/v1` kind.
pub(crate) const fn rbac(
    resource: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
) -> ResourceInfo {
    ResourceInfo {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        resource,
        singular,
        kind,
        namespaced,
        short_names: &[],
        categories: &[],
        verbs: ALL_VERBS,
        subresources: &[],
    }
}

impl ResourceInfo {
    /// `apps/v1`, or `v1` for the core group: the objects' `apiVersion`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `deployments.apps`, or `pods` for the core group: how Kubernetes names the resource in messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_string()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    /// Key of one object in the store.
    pub fn key(&self, namespace: &str, name: &str) -> String {
        crate::store::key(self.group, self.resource, namespace, name)
    }

    /// Store prefix of every object, or of those in one namespace.
    pub fn prefix(&self, namespace: Option<&str>) -> String {
        crate::store::prefix(self.group, self.resource, namespace)
    }

    /// A subresource by name.
    pub fn subresource(&self, name: &str) -> Option<&'static Subresource> {
        self.subresources.iter().find(|s| s.name == name)
    }

    /// Whether the resource supports a verb.
    pub fn supports(&self, verb: &str) -> bool {
        self.verbs.contains(&verb)
    }
}
