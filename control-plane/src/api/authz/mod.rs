//! Authorization: who may do what. RBAC over the four `rbac.authorization.k8s.io/v1` kinds (kept in
//! a list+watch cache, so a decision does no store round trip) and the Node authorizer for node
//! identities; request attributes and the 403 message as kube-apiserver words them;
//! `SelfSubjectAccessReview`, `SelfSubjectRulesReview` and `TokenRequest`.
//!
//! # Layout
//! - [`rbac`]: rules, bindings and the decision over a [`rbac::Snapshot`] (pure).
//! - [`node`]: the Node authorizer's rules and pod references (pure; the pods are read here).
//! - [`defaults`]: the default ClusterRoles and ClusterRoleBindings [`bootstrap`] creates.
//! - [`review`]: the access and rules reviews. [`token`]: ServiceAccount TokenRequest.
//! - [`escalation`]: RBAC writes may not grant more than their author holds.

pub mod defaults;
pub mod escalation;
pub mod node;
pub mod rbac;
pub mod review;
pub mod token;

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::informer::Informer;
use crate::store::{Consistency, ObjectStore};

pub use rbac::{service_account_groups, service_account_user, MASTERS};

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

impl UserInfo {
    /// The user a ServiceAccount token names: `system:serviceaccount:<ns>:<name>` with the
    /// account's uid, in `system:serviceaccounts`, `system:serviceaccounts:<ns>` and
    /// `system:authenticated`.
    pub fn service_account(namespace: &str, name: &str, uid: &str) -> UserInfo {
        UserInfo {
            name: service_account_user(namespace, name),
            uid: uid.to_string(),
            groups: service_account_groups(namespace),
        }
    }

    /// `(namespace, name)` of a ServiceAccount user, else `None`.
    pub fn as_service_account(&self) -> Option<(&str, &str)> {
        self.name
            .strip_prefix("system:serviceaccount:")?
            .split_once(':')
            .filter(|(ns, n)| !ns.is_empty() && !n.is_empty() && !n.contains(':'))
    }

    /// The anonymous user (`system:anonymous` in `system:unauthenticated`).
    pub fn anonymous() -> UserInfo {
        UserInfo {
            name: "system:anonymous".into(),
            uid: String::new(),
            groups: vec!["system:unauthenticated".into()],
        }
    }
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

/// Verbs that name themselves in the path (`/api/v1/watch/...`, the legacy form).
const SPECIAL_VERBS: &[&str] = &["proxy", "watch"];

/// `metadata.name=x` (or `==`) in a field selector: the one object a list or watch is about.
fn exact_name(field_selector: &str) -> Option<&str> {
    field_selector.split(',').find_map(|term| {
        let (k, v) = term
            .split_once("==")
            .or_else(|| term.split_once('='))
            .filter(|(k, _)| !k.ends_with('!'))?;
        (k.trim() == "metadata.name" && !v.is_empty() && !v.contains(['/', '%']))
            .then_some(v.trim())
    })
}

/// Derives the request attributes from the method, path and query, as kube-apiserver's
/// `RequestInfoFactory` does: `/api/{v}/...` and `/apis/{g}/{v}/...` with at least a resource are
/// resource requests (served or not); anything else is a non-resource path with the lower-case
/// method as verb.
pub fn attributes(method: &http::Method, uri: &http::Uri) -> Attributes {
    let path = uri.path().to_string();
    let mut attrs = Attributes {
        verb: method.as_str().to_ascii_lowercase(),
        path: path.clone(),
        ..Default::default()
    };
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let mut rest: &[&str] = match parts.as_slice() {
        ["api", _version, rest @ ..] if !rest.is_empty() => rest,
        ["apis", group, _version, rest @ ..] if !rest.is_empty() => {
            attrs.api_group = group.to_string();
            rest
        }
        _ => return attrs,
    };
    attrs.resource_request = true;
    let mut by_method = true;
    if SPECIAL_VERBS.contains(&rest[0]) && rest.len() >= 2 {
        attrs.verb = rest[0].to_string();
        by_method = false;
        rest = &rest[1..];
    } else {
        attrs.verb = match *method {
            http::Method::POST => "create",
            http::Method::GET | http::Method::HEAD => "get",
            http::Method::PUT => "update",
            http::Method::PATCH => "patch",
            http::Method::DELETE => "delete",
            _ => "",
        }
        .to_string();
    }
    if rest[0] == "namespaces" {
        if let Some(ns) = rest.get(1) {
            attrs.namespace = ns.to_string();
            // `namespaces/{ns}/status` and `/finalize` are subresources of the namespace itself.
            if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
                rest = &rest[2..];
            }
        }
    }
    if let Some(r) = rest.first() {
        attrs.resource = r.to_string();
    }
    if let Some(n) = rest.get(1) {
        attrs.name = n.to_string();
    }
    if let Some(s) = rest.get(2) {
        attrs.subresource = s.to_string();
    }
    let query = super::route::Query::parse(uri.query());
    if by_method && attrs.name.is_empty() && attrs.verb == "get" {
        attrs.verb = if query.flag("watch") { "watch" } else { "list" }.into();
    }
    if attrs.name.is_empty() && matches!(attrs.verb.as_str(), "get" | "list" | "watch") {
        if let Some(name) = query.get("fieldSelector").and_then(exact_name) {
            attrs.name = name.to_string();
        }
    }
    if attrs.name.is_empty() && attrs.verb == "delete" {
        attrs.verb = "deletecollection".into();
    }
    attrs
}

/// The message kube-apiserver gives with a 403.
pub fn forbidden_message(user: &UserInfo, attrs: &Attributes) -> String {
    let who = &user.name;
    if !attrs.resource_request {
        return format!(
            "forbidden: User \"{who}\" cannot {} path \"{}\"",
            attrs.verb, attrs.path
        );
    }
    let resource = if attrs.subresource.is_empty() {
        attrs.resource.clone()
    } else {
        format!("{}/{}", attrs.resource, attrs.subresource)
    };
    let scope = if attrs.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace \"{}\"", attrs.namespace)
    };
    let qualified = if attrs.api_group.is_empty() {
        attrs.resource.clone()
    } else {
        format!("{}.{}", attrs.resource, attrs.api_group)
    };
    let object = if attrs.name.is_empty() {
        qualified
    } else {
        format!("{qualified} \"{}\"", attrs.name)
    };
    format!(
        "{object} is forbidden: User \"{who}\" cannot {} resource \"{resource}\" in API group \"{}\" {scope}",
        attrs.verb, attrs.api_group
    )
}

/// The whole 403 `Status` kube-apiserver answers (message, reason and details).
pub fn forbidden_status(user: &UserInfo, attrs: &Attributes) -> Value {
    let mut v = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": forbidden_message(user, attrs),
        "reason": "Forbidden",
        "code": 403,
    });
    if attrs.resource_request {
        v["details"] =
            json!({"name": attrs.name, "group": attrs.api_group, "kind": attrs.resource});
    }
    v
}

/// Store prefixes of Roles, ClusterRoles, RoleBindings and ClusterRoleBindings, in that order.
fn prefixes() -> [String; 4] {
    [
        "roles",
        "clusterroles",
        "rolebindings",
        "clusterrolebindings",
    ]
    .map(|r| crate::store::prefix(rbac::GROUP, r, None))
}

/// RBAC plus the Node authorizer over the store's objects.
///
/// Decisions read an in-memory snapshot of the RBAC objects, rebuilt when the list+watch caches
/// started by [`Authorizer::run`] change. Until those caches have listed (or when `run` was never
/// started) each decision lists the RBAC objects from the store instead, so it is never wrong, only slower.
pub struct Authorizer {
    store: Arc<dyn ObjectStore>,
    informers: [Arc<Informer>; 4],
    /// The snapshot and the informers' change counters it was built at.
    cache: Mutex<Option<([u64; 4], Arc<rbac::Snapshot>)>>,
}

impl Authorizer {
    /// An authorizer reading RBAC objects from `store`.
    pub fn new(store: Arc<dyn ObjectStore>) -> Arc<Self> {
        Arc::new(Authorizer {
            store,
            informers: prefixes().map(Informer::new),
            cache: Mutex::new(None),
        })
    }

    /// Keeps the RBAC cache current (list, then watch) until `shutdown`. Run it on every member
    /// that serves the API.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let runs = self
            .informers
            .iter()
            .map(|i| i.clone().run(self.store.clone(), shutdown.clone()));
        futures::future::join_all(runs).await;
    }

    /// Whether the cache has listed every kind once.
    pub fn is_ready(&self) -> bool {
        self.informers.iter().all(|i| i.is_ready())
    }

    /// Decides whether `user` may do `attrs`.
    pub async fn authorize(&self, user: &UserInfo, attrs: &Attributes) -> Decision {
        match self.decide(user, attrs).await {
            Ok(_) => Decision::Allow,
            Err(reason) => Decision::Deny(reason),
        }
    }

    /// [`Authorizer::authorize`] with the reason of an allow too: `Ok(why)` or `Err(why not)`.
    /// The Node authorizer decides first for node identities, then RBAC.
    ///
    /// # Errors
    /// `Err(reason)` when denied; the reason is empty when simply no rule allows it.
    pub async fn decide(&self, user: &UserInfo, attrs: &Attributes) -> Result<String, String> {
        let mut node_reason = String::new();
        if let Some(node) = node::node_name(user) {
            match self.node_verdict(node, attrs).await {
                Ok(()) => return Ok(String::new()),
                Err(reason) => node_reason = reason,
            }
        }
        match self.snapshot().await {
            Ok(s) => s.allowed_by(user, attrs).ok_or(node_reason),
            Err(e) => Err(format!("authorizer error: {e}")),
        }
    }

    /// The rules that apply to `user` in `namespace` (for `SelfSubjectRulesReview`).
    ///
    /// # Errors
    /// When the RBAC objects cannot be read.
    pub async fn rules_for(
        &self,
        user: &UserInfo,
        namespace: &str,
    ) -> Result<Vec<rbac::PolicyRule>, crate::store::Error> {
        Ok(self.snapshot().await?.rules_for(user, namespace))
    }

    fn stamp(&self) -> [u64; 4] {
        let mut out = [0; 4];
        for (o, i) in out.iter_mut().zip(&self.informers) {
            *o = *i.subscribe().borrow();
        }
        out
    }

    async fn snapshot(&self) -> Result<Arc<rbac::Snapshot>, crate::store::Error> {
        if !self.is_ready() {
            return self.snapshot_from_store().await.map(Arc::new);
        }
        let stamp = self.stamp();
        if let Some((at, s)) = &*self.cache.lock().expect("authz cache lock") {
            if *at == stamp {
                return Ok(s.clone());
            }
        }
        let lists = self.informers.each_ref().map(|i| i.list());
        let [r, cr, rb, crb] = lists.each_ref().map(|l| l.iter().map(|c| &*c.value));
        let snapshot = Arc::new(rbac::Snapshot::build(r, cr, rb, crb));
        *self.cache.lock().expect("authz cache lock") = Some((stamp, snapshot.clone()));
        Ok(snapshot)
    }

    async fn snapshot_from_store(&self) -> Result<rbac::Snapshot, crate::store::Error> {
        let mut lists: [Vec<Value>; 4] = Default::default();
        for (list, prefix) in lists.iter_mut().zip(prefixes()) {
            let (objects, _) = self.store.list(&prefix, Consistency::Local).await?;
            *list = objects.into_iter().map(|o| o.value).collect();
        }
        let [r, cr, rb, crb] = &lists;
        Ok(rbac::Snapshot::build(r, cr, rb, crb))
    }

    /// The Node authorizer: `Ok` when it allows, else the reason it gives (possibly empty).
    async fn node_verdict(&self, node: &str, attrs: &Attributes) -> Result<(), String> {
        let denied = || format!("no relationship found between node '{node}' and this object");
        match node::verdict(node, attrs) {
            node::Verdict::Allow => Ok(()),
            node::Verdict::NoOpinion(reason) => Err(reason),
            node::Verdict::IfPodBound { namespace, name } => {
                let key = crate::store::key("", "pods", &namespace, &name);
                match self.store.get(&key, Consistency::Local).await {
                    Ok(Some(pod)) if node::bound_to(&pod.value, node) => Ok(()),
                    _ => Err(denied()),
                }
            }
            node::Verdict::IfReferenced {
                namespace,
                kind,
                name,
            } => {
                let prefix = crate::store::prefix("", "pods", Some(&namespace));
                let (pods, _) = self
                    .store
                    .list(&prefix, Consistency::Local)
                    .await
                    .map_err(|e| format!("authorizer error: {e}"))?;
                if pods.iter().any(|p| {
                    node::bound_to(&p.value, node) && node::references(&p.value, kind, &name)
                }) {
                    Ok(())
                } else {
                    Err(denied())
                }
            }
        }
    }
}

/// The stored default ClusterRole or ClusterRoleBinding with what `default` adds to it, or `None` when
/// nothing is missing or its owner opted out (`rbac.authorization.kubernetes.io/autoupdate: "false"`).
/// Like kube-apiserver's reconciliation it only adds (rules, subjects): what an admin added stays.
fn reconcile_default(existing: &Value, default: &Value) -> Option<Value> {
    let opted_out = existing
        .pointer("/metadata/annotations/rbac.authorization.kubernetes.io~1autoupdate")
        .and_then(Value::as_str)
        == Some("false");
    if opted_out {
        return None;
    }
    let mut out = existing.clone();
    let mut changed = false;
    for field in ["rules", "subjects"] {
        let Some(wanted) = default.get(field).and_then(Value::as_array) else {
            continue;
        };
        let have = out
            .as_object_mut()?
            .entry(field)
            .or_insert_with(|| Value::Array(Vec::new()));
        let Some(have) = have.as_array_mut() else {
            continue;
        };
        for item in wanted {
            if !have.contains(item) {
                have.push(item.clone());
                changed = true;
            }
        }
    }
    changed.then_some(out)
}

/// Creates the default ClusterRoles and ClusterRoleBindings that are missing. Idempotent: an
/// object someone created or changed meanwhile is left alone.
///
/// # Errors
/// When the store cannot commit.
pub async fn bootstrap(store: &dyn ObjectStore) -> Result<(), crate::store::Error> {
    use super::meta::{prepare_create, CreateContext};
    use super::resources::lookup;
    use crate::store::{Batch, Error, Op, Precondition};
    let kinds = [
        ("clusterroles", defaults::cluster_roles()),
        ("clusterrolebindings", defaults::cluster_role_bindings()),
    ];
    for (resource, objects) in kinds {
        let info = lookup(rbac::GROUP, "v1", resource).expect("rbac kinds are served");
        for mut obj in objects {
            let name = super::meta::name_of(&obj).to_string();
            let key = info.key("", &name);
            if let Some(existing) = store.get(&key, Consistency::Linearizable).await? {
                // A cluster made by an older release lacks what newer defaults grant (the web
                // view's `/berth/v1/watch`): add it, as kube-apiserver reconciles bootstrap roles.
                if let Some(value) = reconcile_default(&existing.value, &obj) {
                    let put = Op::Put {
                        key,
                        value,
                        precondition: Precondition::Revision(existing.revision),
                    };
                    match store.commit(Batch::one(put)).await {
                        Ok(_) | Err(Error::PreconditionFailed { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
                continue;
            }
            prepare_create(info, &mut obj, None, &CreateContext::fresh())
                .expect("a default RBAC object is valid");
            let put = Op::Put {
                key,
                value: obj,
                precondition: Precondition::Absent,
            };
            match store.commit(Batch::one(put)).await {
                Ok(_) | Err(Error::PreconditionFailed { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
