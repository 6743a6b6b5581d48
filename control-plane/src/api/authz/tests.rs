//! Tests of attributes, 403 messages, the default policy, the authorizer over a store, and reviews.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{Method, Uri};
use serde_json::{json, Value};

use super::*;
use crate::store::{Batch, MemStore, Op, Precondition};

fn attrs_of(method: Method, uri: &str) -> Attributes {
    attributes(&method, &uri.parse::<Uri>().unwrap())
}

fn res(verb: &str, group: &str, resource: &str, sub: &str, ns: &str, name: &str) -> Attributes {
    Attributes {
        verb: verb.into(),
        resource_request: true,
        api_group: group.into(),
        resource: resource.into(),
        subresource: sub.into(),
        namespace: ns.into(),
        name: name.into(),
        path: String::new(),
    }
}

#[test]
fn attributes_follow_request_info() {
    let cases: Vec<(Method, &str, Attributes)> = vec![
        (
            Method::GET,
            "/api/v1/namespaces/default/pods",
            res("list", "", "pods", "", "default", ""),
        ),
        (
            Method::GET,
            "/api/v1/namespaces/default/pods?watch=true",
            res("watch", "", "pods", "", "default", ""),
        ),
        (
            Method::GET,
            "/api/v1/pods?watch=1",
            res("watch", "", "pods", "", "", ""),
        ),
        (
            Method::GET,
            "/api/v1/namespaces/default/pods/x",
            res("get", "", "pods", "", "default", "x"),
        ),
        (
            Method::HEAD,
            "/api/v1/namespaces/default/pods/x",
            res("get", "", "pods", "", "default", "x"),
        ),
        (
            Method::GET,
            "/api/v1/namespaces/default/pods/x/log?follow=true",
            res("get", "", "pods", "log", "default", "x"),
        ),
        (
            Method::POST,
            "/api/v1/namespaces/default/pods/x/exec?command=ls",
            res("create", "", "pods", "exec", "default", "x"),
        ),
        (
            Method::POST,
            "/api/v1/namespaces/default/pods",
            res("create", "", "pods", "", "default", ""),
        ),
        (
            Method::PUT,
            "/apis/apps/v1/namespaces/d/deployments/web/scale",
            res("update", "apps", "deployments", "scale", "d", "web"),
        ),
        (
            Method::PATCH,
            "/api/v1/nodes/n1/status",
            res("patch", "", "nodes", "status", "", "n1"),
        ),
        (
            Method::DELETE,
            "/api/v1/namespaces/default/pods/x",
            res("delete", "", "pods", "", "default", "x"),
        ),
        (
            Method::DELETE,
            "/api/v1/namespaces/default/pods",
            res("deletecollection", "", "pods", "", "default", ""),
        ),
        // A namespace is in its own namespace; status and finalize are its subresources.
        (
            Method::GET,
            "/api/v1/namespaces/foo",
            res("get", "", "namespaces", "", "foo", "foo"),
        ),
        (
            Method::PUT,
            "/api/v1/namespaces/foo/finalize",
            res("update", "", "namespaces", "finalize", "foo", "foo"),
        ),
        (
            Method::GET,
            "/api/v1/namespaces",
            res("list", "", "namespaces", "", "", ""),
        ),
        // A list or watch of one object by field selector names it.
        (
            Method::GET,
            "/api/v1/nodes?fieldSelector=metadata.name%3Dn1&watch=true",
            res("watch", "", "nodes", "", "", "n1"),
        ),
        (
            Method::GET,
            "/api/v1/namespaces/default/secrets?fieldSelector=metadata.name%21%3Ds",
            res("list", "", "secrets", "", "default", ""),
        ),
        // Served or not, a resource path is a resource request.
        (
            Method::POST,
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            res(
                "create",
                "rbac.authorization.k8s.io",
                "clusterrolebindings",
                "",
                "",
                "",
            ),
        ),
        (
            Method::GET,
            "/apis/example.com/v1/widgets",
            res("list", "example.com", "widgets", "", "", ""),
        ),
        // The legacy watch prefix.
        (
            Method::GET,
            "/api/v1/watch/namespaces/default/pods/x",
            res("watch", "", "pods", "", "default", "x"),
        ),
    ];
    for (m, uri, mut want) in cases {
        want.path = uri.split('?').next().unwrap().into();
        assert_eq!(attrs_of(m.clone(), uri), want, "{m} {uri}");
    }
    for (m, uri, verb) in [
        (Method::GET, "/healthz", "get"),
        (Method::GET, "/api", "get"),
        (Method::GET, "/api/v1", "get"),
        (Method::GET, "/apis/apps/v1", "get"),
        (Method::GET, "/openapi/v3/apis/apps/v1?hash=x", "get"),
        (Method::POST, "/foo", "post"),
        (Method::HEAD, "/version", "head"),
    ] {
        let a = attrs_of(m, uri);
        assert!(!a.resource_request, "{uri}");
        assert_eq!(
            (a.verb.as_str(), a.path.as_str()),
            (verb, uri.split('?').next().unwrap())
        );
    }
}

fn user(name: &str, groups: &[&str]) -> UserInfo {
    UserInfo {
        name: name.into(),
        uid: String::new(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

#[test]
fn service_account_users() {
    let u = UserInfo::service_account("default", "viewer", "u1");
    assert_eq!(u.name, "system:serviceaccount:default:viewer");
    assert_eq!(u.uid, "u1");
    assert_eq!(
        u.groups,
        [
            "system:serviceaccounts",
            "system:serviceaccounts:default",
            "system:authenticated"
        ]
    );
    assert_eq!(u.as_service_account(), Some(("default", "viewer")));
    assert_eq!(user("alice", &[]).as_service_account(), None);
    assert_eq!(
        user("system:serviceaccount:default", &[]).as_service_account(),
        None
    );
}

#[test]
fn forbidden_messages_match_kube_apiserver() {
    let viewer = user("system:serviceaccount:default:viewer", &[]);
    let x = user("x", &[]);
    let cases = [
        (
            &viewer,
            res("create", "", "pods", "", "default", ""),
            r#"pods is forbidden: User "system:serviceaccount:default:viewer" cannot create resource "pods" in API group "" in the namespace "default""#,
        ),
        (
            &x,
            res("get", "", "nodes", "", "", "n1"),
            r#"nodes "n1" is forbidden: User "x" cannot get resource "nodes" in API group "" at the cluster scope"#,
        ),
        (
            &x,
            res("create", "", "pods", "exec", "default", "p"),
            r#"pods "p" is forbidden: User "x" cannot create resource "pods/exec" in API group "" in the namespace "default""#,
        ),
        (
            &x,
            res("list", "apps", "deployments", "", "", ""),
            r#"deployments.apps is forbidden: User "x" cannot list resource "deployments" in API group "apps" at the cluster scope"#,
        ),
    ];
    for (u, a, want) in cases {
        assert_eq!(forbidden_message(u, &a), want);
    }
    let nr = Attributes {
        verb: "get".into(),
        path: "/foo".into(),
        ..Default::default()
    };
    assert_eq!(
        forbidden_message(&x, &nr),
        r#"forbidden: User "x" cannot get path "/foo""#
    );
    let st = forbidden_status(&x, &res("get", "", "nodes", "", "", "n1"));
    assert_eq!(st["code"], 403);
    assert_eq!(st["reason"], "Forbidden");
    assert_eq!(
        st["details"],
        json!({"name": "n1", "group": "", "kind": "nodes"})
    );
}

fn default_snapshot() -> rbac::Snapshot {
    let crs = defaults::cluster_roles();
    let crbs = defaults::cluster_role_bindings();
    rbac::Snapshot::build(&[], &crs, &[], &crbs)
}

fn bind(snapshot_extra: &[Value]) -> rbac::Snapshot {
    let crs = defaults::cluster_roles();
    let crbs = defaults::cluster_role_bindings();
    rbac::Snapshot::build(&[], &crs, snapshot_extra, &crbs)
}

fn sa_user(ns: &str, name: &str) -> UserInfo {
    let mut groups = service_account_groups(ns);
    groups.sort();
    UserInfo {
        name: service_account_user(ns, name),
        uid: "u".into(),
        groups,
    }
}

#[test]
fn default_policy() {
    let viewer_binding = json!({"metadata": {"name": "viewer", "namespace": "default"},
        "roleRef": {"apiGroup": rbac::GROUP, "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "ServiceAccount", "name": "viewer", "namespace": "default"}]});
    let editor_binding = json!({"metadata": {"name": "editor", "namespace": "default"},
        "roleRef": {"apiGroup": rbac::GROUP, "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"kind": "User", "name": "ed", "apiGroup": rbac::GROUP}]});
    let admin_binding = json!({"metadata": {"name": "admin", "namespace": "default"},
        "roleRef": {"apiGroup": rbac::GROUP, "kind": "ClusterRole", "name": "admin"},
        "subjects": [{"kind": "User", "name": "ad", "apiGroup": rbac::GROUP}]});
    let s = bind(&[viewer_binding, editor_binding, admin_binding]);
    let viewer = sa_user("default", "viewer");
    let ed = user("ed", &["system:authenticated"]);
    let ad = user("ad", &["system:authenticated"]);
    let nobody = user("nobody", &["system:authenticated"]);
    let anon = UserInfo::anonymous();
    let root = user("admin", &[MASTERS, "system:authenticated"]);
    let nr = |verb: &str, path: &str| Attributes {
        verb: verb.into(),
        path: path.into(),
        ..Default::default()
    };
    let cases: Vec<(&UserInfo, Attributes, bool)> = vec![
        (&viewer, res("get", "", "pods", "", "default", "p"), true),
        (&viewer, res("list", "", "pods", "", "default", ""), true),
        (&viewer, res("get", "", "pods", "log", "default", "p"), true),
        (&viewer, res("create", "", "pods", "", "default", ""), false),
        (
            &viewer,
            res("create", "", "pods", "exec", "default", "p"),
            false,
        ),
        (
            &viewer,
            res("get", "", "secrets", "", "default", "s"),
            false,
        ),
        (
            &viewer,
            res("list", "apps", "deployments", "", "default", ""),
            true,
        ),
        (
            &viewer,
            res("get", "", "pods", "", "kube-system", "p"),
            false,
        ),
        (&viewer, res("list", "", "pods", "", "", ""), false),
        (
            &viewer,
            res("list", rbac::GROUP, "roles", "", "default", ""),
            false,
        ),
        (&ed, res("create", "", "pods", "exec", "default", "p"), true),
        (
            &ed,
            res("delete", "apps", "deployments", "", "default", "w"),
            true,
        ),
        (&ed, res("get", "", "secrets", "", "default", "s"), true),
        (
            &ed,
            res("patch", "apps", "deployments", "scale", "default", "w"),
            true,
        ),
        (
            &ed,
            res("create", rbac::GROUP, "rolebindings", "", "default", ""),
            false,
        ),
        (
            &ad,
            res("create", rbac::GROUP, "rolebindings", "", "default", ""),
            true,
        ),
        (&ad, res("create", "", "namespaces", "", "", ""), false),
        // Every authenticated user may discover the API and review itself.
        (&nobody, nr("get", "/api"), true),
        (&nobody, nr("get", "/apis/apps/v1"), true),
        (&nobody, nr("get", "/openapi/v3"), true),
        (&nobody, nr("get", "/version"), true),
        (&nobody, nr("post", "/api"), false),
        (
            &nobody,
            res(
                "create",
                "authorization.k8s.io",
                "selfsubjectaccessreviews",
                "",
                "",
                "",
            ),
            true,
        ),
        (
            &nobody,
            res(
                "create",
                "authorization.k8s.io",
                "selfsubjectrulesreviews",
                "",
                "",
                "",
            ),
            true,
        ),
        (&nobody, res("get", "", "pods", "", "default", "p"), false),
        (&anon, nr("get", "/healthz"), true),
        (&anon, nr("get", "/api"), false),
        (
            &anon,
            res(
                "create",
                "authorization.k8s.io",
                "selfsubjectaccessreviews",
                "",
                "",
                "",
            ),
            false,
        ),
        (&root, res("delete", "", "nodes", "", "", "n1"), true),
        (&root, nr("get", "/metrics"), true),
    ];
    for (i, (u, a, want)) in cases.into_iter().enumerate() {
        assert_eq!(
            s.allowed_by(u, &a).is_some(),
            want,
            "case {i}: {} {a:?}",
            u.name
        );
    }
    // The defaults alone grant nothing on resources to a plain user.
    assert!(default_snapshot()
        .allowed_by(&nobody, &res("list", "", "namespaces", "", "", ""))
        .is_none());
}

async fn put(store: &MemStore, key: String, value: Value) {
    store
        .commit(Batch::one(Op::Put {
            key,
            value,
            precondition: Precondition::None,
        }))
        .await
        .unwrap();
}

fn pod(name: &str, node: &str, spec: Value) -> Value {
    let mut spec = spec;
    spec["nodeName"] = json!(node);
    json!({"metadata": {"name": name, "namespace": "default"}, "spec": spec})
}

#[tokio::test]
async fn authorizer_over_a_store() {
    let store = Arc::new(MemStore::new());
    bootstrap(&*store).await.unwrap();
    // Idempotent.
    bootstrap(&*store).await.unwrap();
    put(
        &store,
        crate::store::key(rbac::GROUP, "rolebindings", "default", "viewer"),
        json!({"metadata": {"name": "viewer", "namespace": "default"},
            "roleRef": {"apiGroup": rbac::GROUP, "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "ServiceAccount", "name": "viewer"}]}),
    )
    .await;
    put(
        &store,
        crate::store::key("", "pods", "default", "web"),
        pod(
            "web",
            "n1",
            json!({"volumes": [{"name": "s", "secret": {"secretName": "tls"}}]}),
        ),
    )
    .await;
    put(
        &store,
        crate::store::key("", "pods", "default", "db"),
        pod("db", "n2", json!({"containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": "db-config"}}]}]})),
    )
    .await;
    let authz = Authorizer::new(store.clone());
    let viewer = sa_user("default", "viewer");
    let n1 = user(
        "system:node:n1",
        &[node::NODES_GROUP, "system:authenticated"],
    );
    // Before the cache has listed, decisions read the store; after, the cache.
    for round in 0..2 {
        let cases: Vec<(&UserInfo, Attributes, bool)> = vec![
            (&viewer, res("get", "", "pods", "", "default", "web"), true),
            (&viewer, res("create", "", "pods", "", "default", ""), false),
            (&n1, res("get", "", "nodes", "", "", "n1"), true),
            (&n1, res("get", "", "nodes", "", "", "n2"), false),
            (&n1, res("update", "", "nodes", "status", "", "n1"), true),
            (&n1, res("get", "", "pods", "", "default", "web"), true),
            (&n1, res("get", "", "pods", "", "default", "db"), false),
            (
                &n1,
                res("patch", "", "pods", "status", "default", "web"),
                true,
            ),
            (
                &n1,
                res("patch", "", "pods", "status", "default", "db"),
                false,
            ),
            (&n1, res("get", "", "secrets", "", "default", "tls"), true),
            (
                &n1,
                res("get", "", "configmaps", "", "default", "db-config"),
                false,
            ),
            (&n1, res("create", "", "events", "", "default", ""), true),
            (&n1, res("delete", "", "pods", "", "default", "web"), false),
            (&n1, res("list", "", "secrets", "", "", ""), false),
        ];
        for (i, (u, a, want)) in cases.into_iter().enumerate() {
            let d = authz.authorize(u, &a).await;
            assert_eq!(
                d == Decision::Allow,
                want,
                "round {round} case {i}: {} {a:?} {d:?}",
                u.name
            );
        }
        if round == 0 {
            let shutdown = tokio_util::sync::CancellationToken::new();
            tokio::spawn(authz.clone().run(shutdown.clone()));
            for _ in 0..200 {
                if authz.is_ready() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            assert!(authz.is_ready());
        }
    }
    assert_eq!(
        authz
            .authorize(&n1, &res("get", "", "pods", "", "default", "db"))
            .await,
        Decision::Deny("no relationship found between node 'n1' and this object".into())
    );
    // A binding created later is seen through the watch.
    put(
        &store,
        crate::store::key(rbac::GROUP, "clusterrolebindings", "", "viewer-admin"),
        json!({"metadata": {"name": "viewer-admin"},
            "roleRef": {"apiGroup": rbac::GROUP, "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": "viewer", "namespace": "default"}]}),
    )
    .await;
    let create = res("create", "", "pods", "", "default", "");
    for _ in 0..200 {
        if authz.authorize(&viewer, &create).await == Decision::Allow {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(authz.authorize(&viewer, &create).await, Decision::Allow);
}

#[tokio::test]
async fn reviews() {
    let store = Arc::new(MemStore::new());
    bootstrap(&*store).await.unwrap();
    let authz = Authorizer::new(store.clone());
    let info =
        crate::api::resources::lookup("authorization.k8s.io", "v1", "selfsubjectaccessreviews")
            .unwrap();
    let nobody = user("nobody", &["system:authenticated"]);
    let ask = |verb: &str, resource: &str| {
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"namespace": "default", "verb": verb, "resource": resource}}})
    };
    let a = review::access(&authz, info, &nobody, &ask("create", "pods"))
        .await
        .unwrap();
    assert_eq!(a["status"], json!({"allowed": false}));
    assert_eq!(a["spec"]["resourceAttributes"]["verb"], "create");
    let a = review::access(
        &authz,
        info,
        &nobody,
        &json!({"spec": {"nonResourceAttributes": {"path": "/version", "verb": "get"}}}),
    )
    .await
    .unwrap();
    assert_eq!(a["status"]["allowed"], true);
    assert_eq!(
        a["status"]["reason"],
        "RBAC: allowed by ClusterRoleBinding \"system:discovery\" of ClusterRole \"system:discovery\" to Group \"system:authenticated\""
    );
    let root = user("root", &[MASTERS]);
    let a = review::access(&authz, info, &root, &ask("delete", "nodes"))
        .await
        .unwrap();
    assert_eq!(a["status"]["allowed"], true);
    let err = review::access(&authz, info, &root, &json!({"spec": {}}))
        .await
        .unwrap_err();
    assert_eq!(err.code, 422);
    assert!(err
        .message
        .contains("exactly one of nonResourceAttributes or resourceAttributes"));

    let r = review::rules(&authz, &nobody, &json!({"spec": {"namespace": "default"}}))
        .await
        .unwrap();
    assert_eq!(r["status"]["incomplete"], false);
    let resources: Vec<&Value> = r["status"]["resourceRules"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    assert!(resources.iter().any(|x| x["resources"]
        .as_array()
        .unwrap()
        .contains(&json!("selfsubjectaccessreviews"))));
    assert!(r["status"]["nonResourceRules"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["nonResourceURLs"]
            .as_array()
            .unwrap()
            .contains(&json!("/api"))));
    let me = review::whoami(&sa_user("default", "x"));
    assert_eq!(
        me["status"]["userInfo"]["username"],
        "system:serviceaccount:default:x"
    );
    assert_eq!(me["status"]["userInfo"]["uid"], "u");
}

#[test]
fn token_requests() {
    let sa = json!({"metadata": {"name": "viewer", "namespace": "default", "uid": "sa-uid"}});
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let key = pki::SigningKey::new(&[7u8; 32]).unwrap();

    let (aud, secs) = token::spec("viewer", &json!({"spec": {}})).unwrap();
    assert_eq!((aud, secs), (vec![token::ISSUER.to_string()], 3600));
    let (aud, secs) = token::spec(
        "viewer",
        &json!({"spec": {"audiences": ["a"], "expirationSeconds": 600}}),
    )
    .unwrap();
    assert_eq!((aud, secs), (vec!["a".to_string()], 600));
    let cases = [
        (json!(599), "spec.expirationSeconds: Invalid value: 599: may not specify a duration less than 10 minutes"),
        (json!(0), "spec.expirationSeconds: Invalid value: 0: may not specify a duration less than 10 minutes"),
        (
            json!(4_294_967_297i64),
            "spec.expirationSeconds: Invalid value: 4294967297: may not specify a duration larger than 2^32 seconds",
        ),
    ];
    for (secs, want) in cases {
        let err = token::spec("viewer", &json!({"spec": {"expirationSeconds": secs}})).unwrap_err();
        assert_eq!(err.code, 422);
        assert_eq!(
            err.message,
            format!("TokenRequest.authentication.k8s.io \"viewer\" is invalid: {want}")
        );
    }
    assert!(token::spec(
        "viewer",
        &json!({"spec": {"expirationSeconds": 4_294_967_296i64}})
    )
    .is_ok());

    let answer = token::answer(
        Some(&key),
        &sa,
        &json!({"spec": {"expirationSeconds": 7200}}),
        now,
    )
    .unwrap();
    assert_eq!(answer["kind"], "TokenRequest");
    assert_eq!(
        answer["status"]["expirationTimestamp"],
        "2027-01-15T10:00:00Z"
    );
    let jwt = answer["status"]["token"].as_str().unwrap();
    let claims = key.verify(jwt, 1_800_000_001).unwrap();
    assert_eq!(claims.sub, "system:serviceaccount:default:viewer");
    assert_eq!(claims.uid, "sa-uid");
    assert_eq!(claims.iss, token::ISSUER);
    assert_eq!(claims.exp - claims.iat, 7200);
    assert_eq!(claims.aud, [token::ISSUER]);

    let err = token::answer(None, &sa, &json!({"spec": {}}), now).unwrap_err();
    assert_eq!(err.code, 503);
}

mod served {
    //! The new kinds through the request handler, as kubectl drives them.

    use std::sync::Arc;

    use axum::body::Body;
    use http::{Method, Request, StatusCode};
    use http_body_util::BodyExt;
    use serde_json::{json, Value};

    use super::super::{Authorizer, UserInfo, MASTERS};
    use crate::api::handlers::{handle, ApiConfig, ApiState};
    use crate::store::MemStore;

    async fn state() -> Arc<ApiState> {
        let store = Arc::new(MemStore::new());
        crate::api::bootstrap(&*store).await.unwrap();
        super::super::bootstrap(&*store).await.unwrap();
        Arc::new(ApiState {
            store,
            config: ApiConfig::default(),
            metrics: Arc::new(crate::metrics::AgentMetrics::new(
                Arc::new(MemStore::new()),
                crate::kubelet_client::KubeletClient::new(None, 10250),
            )),
            shutdown: tokio_util::sync::CancellationToken::new(),
        })
    }

    async fn call(
        st: &Arc<ApiState>,
        method: Method,
        uri: &str,
        body: Option<Value>,
        user: Option<UserInfo>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap();
        if let Some(u) = user {
            req.extensions_mut().insert(u);
        }
        let resp = handle(st.clone(), req).await;
        let code = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    #[tokio::test]
    async fn rbac_objects_service_accounts_tokens_and_reviews() {
        let st = state().await;
        let rbac = "/apis/rbac.authorization.k8s.io/v1";

        // kubectl create role / rolebinding.
        let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "pod-reader"},
            "rules": [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}]});
        let (code, _) = call(
            &st,
            Method::POST,
            &format!("{rbac}/namespaces/default/roles"),
            Some(role),
            None,
        )
        .await;
        assert_eq!(code, StatusCode::CREATED);
        let bad = json!({"metadata": {"name": "bad"}, "rules": [{"verbs": [], "apiGroups": [""], "resources": ["pods"]}]});
        let (code, body) = call(
            &st,
            Method::POST,
            &format!("{rbac}/namespaces/default/roles"),
            Some(bad),
            None,
        )
        .await;
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(body["message"]
            .as_str()
            .unwrap()
            .contains("rules[0].verbs: Required value: verbs must contain at least one value"));
        let rb = json!({"metadata": {"name": "read-pods"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
            "subjects": [{"kind": "User", "name": "alice"}, {"kind": "ServiceAccount", "name": "viewer", "namespace": "default"}]});
        let (code, created) = call(
            &st,
            Method::POST,
            &format!("{rbac}/namespaces/default/rolebindings"),
            Some(rb),
            None,
        )
        .await;
        assert_eq!(code, StatusCode::CREATED);
        assert_eq!(
            created["subjects"][0]["apiGroup"],
            "rbac.authorization.k8s.io"
        );
        let mut changed = created.clone();
        changed["roleRef"]["name"] = json!("other");
        let (code, body) = call(
            &st,
            Method::PUT,
            &format!("{rbac}/namespaces/default/rolebindings/read-pods"),
            Some(changed),
            None,
        )
        .await;
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(body["message"].as_str().unwrap().contains(
            r#"roleRef: Invalid value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"Role", Name:"other"}: cannot change roleRef"#
        ), "{body}");
        let (code, body) = call(
            &st,
            Method::GET,
            &format!("{rbac}/clusterroles/system:discovery"),
            None,
            None,
        )
        .await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(body["rules"][0]["verbs"], json!(["get"]));

        // Pods get the default ServiceAccount.
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
        let (code, body) = call(
            &st,
            Method::POST,
            "/api/v1/namespaces/default/pods",
            Some(pod),
            None,
        )
        .await;
        assert_eq!(code, StatusCode::CREATED);
        assert_eq!(body["spec"]["serviceAccountName"], "default");
        assert_eq!(body["spec"]["serviceAccount"], "default");

        // TokenRequest: 404 without the account, 422 for a short lifetime, 503 without a PKI.
        let tr = |secs: i64| {
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"expirationSeconds": secs}})
        };
        let token_uri = "/api/v1/namespaces/default/serviceaccounts/viewer/token";
        let (code, body) = call(&st, Method::POST, token_uri, Some(tr(3600)), None).await;
        assert_eq!(code, StatusCode::NOT_FOUND, "{body}");
        let (code, _) = call(
            &st,
            Method::POST,
            "/api/v1/namespaces/default/serviceaccounts",
            Some(json!({"metadata": {"name": "viewer"}})),
            None,
        )
        .await;
        assert_eq!(code, StatusCode::CREATED);
        let (code, body) = call(&st, Method::POST, token_uri, Some(tr(60)), None).await;
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            body["details"]["causes"][0]["field"],
            "spec.expirationSeconds"
        );
        let (code, _) = call(&st, Method::POST, token_uri, Some(tr(3600)), None).await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);

        // SelfSubjectAccessReview with the caller from the request's extensions.
        let ssar = |verb: &str| {
            json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"namespace": "default", "verb": verb, "resource": "pods"}}})
        };
        let uri = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
        let viewer = UserInfo {
            name: "system:serviceaccount:default:viewer".into(),
            uid: String::new(),
            groups: super::service_account_groups("default"),
        };
        let (code, body) = call(
            &st,
            Method::POST,
            uri,
            Some(ssar("list")),
            Some(viewer.clone()),
        )
        .await;
        assert_eq!(code, StatusCode::CREATED);
        assert_eq!(body["status"]["allowed"], true);
        let (_, body) = call(
            &st,
            Method::POST,
            uri,
            Some(ssar("create")),
            Some(viewer.clone()),
        )
        .await;
        assert_eq!(body["status"], json!({"allowed": false}));
        let (_, body) = call(&st, Method::POST, uri, Some(ssar("create")), None).await;
        assert_eq!(body["status"]["allowed"], false);
        let root = UserInfo {
            name: "root".into(),
            uid: String::new(),
            groups: vec![MASTERS.into()],
        };
        let (_, body) = call(&st, Method::POST, uri, Some(ssar("create")), Some(root)).await;
        assert_eq!(body["status"]["allowed"], true);
        // A shared authorizer in the extensions is used when present.
        let mut req = Request::builder()
            .method(Method::POST)
            .uri("/apis/authorization.k8s.io/v1/selfsubjectrulesreviews")
            .body(Body::from(
                json!({"kind": "SelfSubjectRulesReview", "spec": {"namespace": "default"}})
                    .to_string(),
            ))
            .unwrap();
        req.extensions_mut().insert(viewer);
        req.extensions_mut()
            .insert(Authorizer::new(st.store.clone()));
        let resp = handle(st.clone(), req).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        let body: Value =
            serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
        assert!(body["status"]["resourceRules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["resources"] == json!(["pods"])));
        let (code, _) = call(&st, Method::GET, uri, None, None).await;
        assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);
        let (code, body) = call(
            &st,
            Method::POST,
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            Some(json!({"kind": "SelfSubjectReview"})),
            None,
        )
        .await;
        assert_eq!(code, StatusCode::CREATED);
        assert_eq!(body["status"]["userInfo"]["username"], "system:anonymous");
    }

    #[tokio::test]
    async fn rbac_writes_may_not_escalate() {
        let st = state().await;
        let rbac = "/apis/rbac.authorization.k8s.io/v1";
        let (code, _) = call(&st, Method::POST, &format!("{rbac}/namespaces/default/rolebindings"), Some(json!({
            "metadata": {"name": "ad"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
            "subjects": [{"kind": "User", "name": "ad"}]})), None).await;
        assert_eq!(code, StatusCode::CREATED);
        let ad = UserInfo {
            name: "ad".into(),
            uid: String::new(),
            groups: vec!["system:authenticated".into()],
        };
        let role = |name: &str, resource: &str| {
            json!({"metadata": {"name": name},
            "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": [resource]}]})
        };
        let roles = format!("{rbac}/namespaces/default/roles");
        let (code, _) = call(
            &st,
            Method::POST,
            &roles,
            Some(role("ok", "pods")),
            Some(ad.clone()),
        )
        .await;
        assert_eq!(code, StatusCode::CREATED);
        let (code, body) = call(
            &st,
            Method::POST,
            &roles,
            Some(role("nodes", "nodes")),
            Some(ad.clone()),
        )
        .await;
        assert_eq!(code, StatusCode::FORBIDDEN);
        assert_eq!(
            body["message"],
            "roles.rbac.authorization.k8s.io \"nodes\" is forbidden: user \"ad\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"nodes\"], Verbs:[\"get\"]}"
        );
        let binding = |name: &str, role: &str| {
            json!({"metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "User", "name": "mallory"}]})
        };
        let bindings = format!("{rbac}/namespaces/default/rolebindings");
        let (code, _) = call(
            &st,
            Method::POST,
            &bindings,
            Some(binding("v", "view")),
            Some(ad.clone()),
        )
        .await;
        assert_eq!(code, StatusCode::CREATED);
        let (code, body) = call(
            &st,
            Method::POST,
            &bindings,
            Some(binding("ca", "cluster-admin")),
            Some(ad.clone()),
        )
        .await;
        assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
        let (code, body) = call(
            &st,
            Method::POST,
            &bindings,
            Some(binding("gone", "no-such-role")),
            Some(ad.clone()),
        )
        .await;
        assert_eq!(code, StatusCode::FORBIDDEN);
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .ends_with(r#"clusterroles.rbac.authorization.k8s.io "no-such-role" not found"#),
            "{body}"
        );
        // An update is checked too; a superuser may do anything.
        let (_, mut ok_role) = call(&st, Method::GET, &format!("{roles}/ok"), None, None).await;
        ok_role["rules"][0]["resources"] = json!(["nodes"]);
        let (code, _) = call(
            &st,
            Method::PUT,
            &format!("{roles}/ok"),
            Some(ok_role.clone()),
            Some(ad),
        )
        .await;
        assert_eq!(code, StatusCode::FORBIDDEN);
        let root = UserInfo {
            name: "root".into(),
            uid: String::new(),
            groups: vec![MASTERS.into()],
        };
        let (code, _) = call(
            &st,
            Method::PUT,
            &format!("{roles}/ok"),
            Some(ok_role),
            Some(root),
        )
        .await;
        assert_eq!(code, StatusCode::OK);
    }
}

mod kubectl {
    //! The real kubectl against the handlers, with the caller named by kubectl's impersonation
    //! headers (`--as`, `--as-group`) standing in for authentication. Skipped without kubectl.

    use std::net::SocketAddr;
    use std::path::Path;
    use std::process::Command;
    use std::sync::Arc;
    use std::time::Duration;

    use axum::body::Body;
    use axum::extract::State;
    use axum::Router;
    use http::Request;

    use super::super::{bootstrap, service_account_groups, UserInfo};
    use crate::api::handlers::{handle, ApiConfig, ApiState};
    use crate::security::{ClusterPki, MemberIdentity};
    use crate::store::MemStore;

    const KUBECTL: &str = "/usr/bin/kubectl";

    fn caller(req: &Request<Body>) -> Option<UserInfo> {
        let name = req
            .headers()
            .get("impersonate-user")?
            .to_str()
            .ok()?
            .to_string();
        let mut groups: Vec<String> = req
            .headers()
            .get_all("impersonate-group")
            .iter()
            .filter_map(|v| v.to_str().ok().map(String::from))
            .collect();
        if let Some(ns) = name
            .strip_prefix("system:serviceaccount:")
            .and_then(|r| r.split(':').next())
        {
            groups.extend(service_account_groups(ns));
        } else {
            groups.push("system:authenticated".into());
        }
        Some(UserInfo {
            name,
            uid: String::new(),
            groups,
        })
    }

    async fn serve(dir: &Path) -> SocketAddr {
        let store = Arc::new(MemStore::new());
        crate::api::bootstrap(&*store).await.unwrap();
        bootstrap(&*store).await.unwrap();
        let identity = MemberIdentity {
            name: "a".into(),
            sans: vec!["127.0.0.1".into()],
            validity: Duration::from_secs(3600),
        };
        let pki = ClusterPki::create(dir, &identity, None).unwrap();
        let state = Arc::new(ApiState {
            store,
            config: ApiConfig {
                pki: Some(Arc::new(pki)),
                ..ApiConfig::default()
            },
            metrics: Arc::new(crate::metrics::AgentMetrics::new(
                Arc::new(MemStore::new()),
                crate::kubelet_client::KubeletClient::new(None, 10250),
            )),
            shutdown: tokio_util::sync::CancellationToken::new(),
        });
        let app = Router::new()
            .fallback(
                |State(state): State<Arc<ApiState>>, mut req: Request<Body>| async move {
                    if let Some(u) = caller(&req) {
                        req.extensions_mut().insert(u);
                    }
                    handle(state, req).await
                },
            )
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    async fn run(addr: SocketAddr, dir: &Path, args: &[&str]) -> (bool, String) {
        let mut c = Command::new(KUBECTL);
        c.arg("--server")
            .arg(format!("http://{addr}"))
            .arg("--cache-dir")
            .arg(dir.join("cache"))
            .args(args)
            .env("KUBECONFIG", dir.join("kubeconfig-none"))
            .env("HOME", dir);
        let out = tokio::task::spawn_blocking(move || c.output())
            .await
            .unwrap()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kubectl_drives_rbac_tokens_and_can_i() {
        if !Path::new(KUBECTL).exists() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let addr = serve(dir.path()).await;
        let d = dir.path();
        let ok = |args: &'static [&'static str]| async move {
            let (ok, out) = run(addr, d, args).await;
            assert!(ok, "kubectl {args:?}: {out}");
            out
        };
        ok(&["create", "serviceaccount", "viewer", "-n", "default"]).await;
        ok(&[
            "create",
            "role",
            "pod-reader",
            "--verb=get,list",
            "--resource=pods",
            "-n",
            "default",
        ])
        .await;
        ok(&[
            "create",
            "rolebinding",
            "viewer",
            "--clusterrole=view",
            "--serviceaccount=default:viewer",
            "-n",
            "default",
        ])
        .await;
        ok(&[
            "create",
            "clusterrolebinding",
            "ops",
            "--clusterrole=view",
            "--group=ops",
            "--user=alice",
        ])
        .await;
        let out = ok(&["get", "clusterroles"]).await;
        assert!(
            out.starts_with("NAME") && out.contains("CREATED AT") && out.contains("cluster-admin"),
            "{out}"
        );
        let out = ok(&["get", "rolebindings", "-n", "default", "-o", "wide"]).await;
        assert!(
            out.contains("ClusterRole/view") && out.contains("default/viewer"),
            "{out}"
        );
        let out = ok(&["get", "clusterrolebinding", "ops", "-o", "wide"]).await;
        assert!(out.contains("alice") && out.contains("ops"), "{out}");
        let out = ok(&["get", "sa", "-n", "default"]).await;
        assert!(out.contains("viewer"), "{out}");
        let out = ok(&[
            "get",
            "role",
            "pod-reader",
            "-n",
            "default",
            "-o",
            "jsonpath={.rules[0].verbs}",
        ])
        .await;
        assert_eq!(out, r#"["get","list"]"#);

        let sa = "--as=system:serviceaccount:default:viewer";
        let (_, out) = run(
            addr,
            d,
            &["auth", "can-i", "list", "pods", "-n", "default", sa],
        )
        .await;
        assert_eq!(out.trim(), "yes");
        let (_, out) = run(
            addr,
            d,
            &["auth", "can-i", "create", "pods", "-n", "default", sa],
        )
        .await;
        assert_eq!(out.trim(), "no");
        let (_, out) = run(
            addr,
            d,
            &[
                "auth",
                "can-i",
                "create",
                "pods",
                "--subresource=exec",
                "-n",
                "default",
                sa,
            ],
        )
        .await;
        assert_eq!(out.trim(), "no");
        let (_, out) = run(
            addr,
            d,
            &[
                "auth",
                "can-i",
                "get",
                "pods",
                "--subresource=log",
                "-n",
                "default",
                sa,
            ],
        )
        .await;
        assert_eq!(out.trim(), "yes");
        let (_, out) = run(
            addr,
            d,
            &["auth", "can-i", "get", "secrets", "-n", "default", sa],
        )
        .await;
        assert_eq!(out.trim(), "no");
        let (_, out) = run(
            addr,
            d,
            &[
                "auth",
                "can-i",
                "list",
                "deployments",
                "-n",
                "default",
                "--as=alice",
            ],
        )
        .await;
        assert_eq!(out.trim(), "yes");
        let (_, out) = run(addr, d, &["auth", "can-i", "--list", "-n", "default", sa]).await;
        assert!(
            out.contains("selfsubjectaccessreviews.authorization.k8s.io") && out.contains("pods"),
            "{out}"
        );
        let out = ok(&[
            "auth",
            "whoami",
            "--as=system:serviceaccount:default:viewer",
        ])
        .await;
        assert!(
            out.contains("system:serviceaccount:default:viewer"),
            "{out}"
        );

        let manifest = d.join("rbac.yaml");
        std::fs::write(
            &manifest,
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: secrets-view\n  labels:\n    rbac.authorization.k8s.io/aggregate-to-view: \"true\"\nrules:\n- apiGroups: [\"\"]\n  resources: [secrets]\n  verbs: [get, list]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: secrets-readers\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: secrets-view\nsubjects:\n- kind: Group\n  name: readers\n",
        )
        .unwrap();
        let m = manifest.to_str().unwrap().to_string();
        let (okk, out) = run(addr, d, &["apply", "-f", &m]).await;
        assert!(okk, "{out}");
        let (okk, out) = run(addr, d, &["apply", "-f", &m]).await;
        assert!(okk && out.contains("unchanged"), "{out}");
        let out = ok(&["describe", "clusterrole", "secrets-view"]).await;
        assert!(
            out.contains("secrets") && out.contains("[get list]"),
            "{out}"
        );
        let out = ok(&["describe", "rolebinding", "viewer", "-n", "default"]).await;
        assert!(
            out.contains("ServiceAccount") && out.contains("viewer"),
            "{out}"
        );
        // The aggregated rule reaches view (and so the viewer account).
        let (_, out) = run(
            addr,
            d,
            &["auth", "can-i", "get", "secrets", "-n", "default", sa],
        )
        .await;
        assert_eq!(out.trim(), "yes");

        let token = ok(&["create", "token", "viewer", "-n", "default"]).await;
        assert_eq!(token.trim().split('.').count(), 3, "{token}");
        let (okk, out) = run(
            addr,
            d,
            &[
                "create",
                "token",
                "viewer",
                "-n",
                "default",
                "--duration=1m",
            ],
        )
        .await;
        assert!(
            !okk && out.contains("may not specify a duration less than 10 minutes"),
            "{out}"
        );
        let (okk, out) = run(addr, d, &["create", "token", "nobody", "-n", "default"]).await;
        assert!(
            !okk && out.contains(r#"serviceaccounts "nobody" not found"#),
            "{out}"
        );
    }
}

#[test]
fn reconciling_a_default_only_adds_and_respects_the_opt_out() {
    let default = json!({"metadata": {"name": "r"}, "rules": [{"verbs": ["get"], "nonResourceURLs": ["/a"]},
        {"verbs": ["get"], "nonResourceURLs": ["/b"]}]});
    let stale = json!({"metadata": {"name": "r"}, "rules": [{"verbs": ["get"], "nonResourceURLs": ["/a"]},
        {"verbs": ["get"], "nonResourceURLs": ["/mine"]}]});
    let merged = reconcile_default(&stale, &default).unwrap();
    assert_eq!(
        merged["rules"],
        json!([{"verbs": ["get"], "nonResourceURLs": ["/a"]}, {"verbs": ["get"], "nonResourceURLs": ["/mine"]},
            {"verbs": ["get"], "nonResourceURLs": ["/b"]}])
    );
    assert_eq!(reconcile_default(&merged, &default), None);
    let mut opted_out = stale.clone();
    opted_out["metadata"]["annotations"] =
        json!({"rbac.authorization.kubernetes.io/autoupdate": "false"});
    assert_eq!(reconcile_default(&opted_out, &default), None);
    let binding = json!({"subjects": [{"kind": "Group", "name": "system:authenticated"}]});
    let emptied = json!({"subjects": []});
    assert_eq!(reconcile_default(&emptied, &binding).unwrap(), binding);
}

#[tokio::test]
async fn bootstrap_brings_an_older_clusters_default_roles_up_to_date() {
    let store = Arc::new(MemStore::new());
    bootstrap(&*store).await.unwrap();
    let role = defaults::cluster_roles()
        .into_iter()
        .find(|r| r["metadata"]["name"] == "system:berth-members-viewer")
        .unwrap();
    let key = crate::store::key(
        rbac::GROUP,
        "clusterroles",
        "",
        "system:berth-members-viewer",
    );
    let mut old = store
        .get(&key, Consistency::Linearizable)
        .await
        .unwrap()
        .unwrap()
        .value;
    old["rules"] = json!([]);
    put(&store, key.clone(), old).await;
    bootstrap(&*store).await.unwrap();
    let now = store
        .get(&key, Consistency::Linearizable)
        .await
        .unwrap()
        .unwrap()
        .value;
    assert_eq!(now["rules"], role["rules"]);
}
