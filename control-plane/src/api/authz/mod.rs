//! Authorization: who may do what. CONTRACT FILE — replaced by the RBAC work (see the issue notes).
//! The types and signatures below are what the API server calls; their bodies are filled in there.

use std::sync::Arc;

use crate::store::ObjectStore;

/// An authenticated caller (Kubernetes' user.Info).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserInfo {
    /// User name (`system:node:n1`, `system:serviceaccount:ns:sa`, a certificate's CN).
    pub name: String,
    /// Uid (ServiceAccounts), else empty.
    pub uid: String,
    /// Groups, including `system:authenticated`.
    pub groups: Vec<String>,
}

/// What a request asks to do (Kubernetes' authorizer.Attributes).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attributes {
    /// `get list watch create update patch delete deletecollection` for resources; the lower-case
    /// HTTP method for non-resource paths.
    pub verb: String,
    /// Whether this is a resource request (else `path` is a non-resource URL).
    pub resource_request: bool,
    /// API group (`""` = core).
    pub api_group: String,
    /// Resource (`pods`).
    pub resource: String,
    /// Subresource (`status`, `log`, `exec`), else empty.
    pub subresource: String,
    /// Namespace, else empty.
    pub namespace: String,
    /// Object name, else empty.
    pub name: String,
    /// Request path.
    pub path: String,
}

/// An authorization decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed.
    Allow,
    /// Denied, with why (for logs and SubjectAccessReview).
    Deny(String),
}

/// Derives the request attributes from the method, path and query.
pub fn attributes(method: &http::Method, uri: &http::Uri) -> Attributes {
    let _ = (method, uri);
    unimplemented!("filled in by the RBAC work")
}

/// The message kube-apiserver gives with a 403.
pub fn forbidden_message(user: &UserInfo, attrs: &Attributes) -> String {
    let _ = (user, attrs);
    unimplemented!("filled in by the RBAC work")
}

/// RBAC plus the Node authorizer over the store's objects.
pub struct Authorizer {
    _store: Arc<dyn ObjectStore>,
}

impl Authorizer {
    /// An authorizer reading RBAC objects from `store`.
    pub fn new(store: Arc<dyn ObjectStore>) -> Arc<Self> {
        Arc::new(Authorizer { _store: store })
    }

    /// Decides whether `user` may do `attrs`.
    pub async fn authorize(&self, user: &UserInfo, attrs: &Attributes) -> Decision {
        let _ = (user, attrs);
        unimplemented!("filled in by the RBAC work")
    }
}

/// Creates the default ClusterRoles and ClusterRoleBindings that are missing.
///
/// # Errors
/// When the store cannot commit.
pub async fn bootstrap(store: &dyn ObjectStore) -> Result<(), crate::store::Error> {
    let _ = store;
    unimplemented!("filled in by the RBAC work")
}
