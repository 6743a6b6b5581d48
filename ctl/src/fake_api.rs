//! A small in-process fake of the Kubernetes REST API on 127.0.0.1 for unit tests of the verbs: aggregated
//! discovery, objects keyed by path, server-side apply, Tables, `scale`, `eviction`, logs and Status errors.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::kubeconfig::{self, ConnectOptions, Session};

/// Shared state of the fake.
#[derive(Default)]
pub struct State {
    /// Objects by path (`/apis/apps/v1/namespaces/default/deployments/web`).
    pub objects: BTreeMap<String, Value>,
    /// Last resourceVersion handed out.
    pub rv: u64,
    /// `METHOD path?query` of every request.
    pub log: Vec<String>,
}

/// Handle on a running fake.
pub struct Fake {
    /// The state, to seed and inspect.
    pub state: Arc<Mutex<State>>,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

struct Kind {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
}

const KINDS: &[Kind] = &[
    Kind {
        group: "",
        version: "v1",
        plural: "pods",
        kind: "Pod",
        namespaced: true,
        short: &["po"],
    },
    Kind {
        group: "",
        version: "v1",
        plural: "services",
        kind: "Service",
        namespaced: true,
        short: &["svc"],
    },
    Kind {
        group: "",
        version: "v1",
        plural: "nodes",
        kind: "Node",
        namespaced: false,
        short: &["no"],
    },
    Kind {
        group: "",
        version: "v1",
        plural: "namespaces",
        kind: "Namespace",
        namespaced: false,
        short: &["ns"],
    },
    Kind {
        group: "",
        version: "v1",
        plural: "events",
        kind: "Event",
        namespaced: true,
        short: &["ev"],
    },
    Kind {
        group: "",
        version: "v1",
        plural: "configmaps",
        kind: "ConfigMap",
        namespaced: true,
        short: &["cm"],
    },
    Kind {
        group: "",
        version: "v1",
        plural: "persistentvolumeclaims",
        kind: "PersistentVolumeClaim",
        namespaced: true,
        short: &["pvc"],
    },
    Kind {
        group: "",
        version: "v1",
        plural: "secrets",
        kind: "Secret",
        namespaced: true,
        short: &[],
    },
    Kind {
        group: "apps",
        version: "v1",
        plural: "deployments",
        kind: "Deployment",
        namespaced: true,
        short: &["deploy"],
    },
    Kind {
        group: "apps",
        version: "v1",
        plural: "replicasets",
        kind: "ReplicaSet",
        namespaced: true,
        short: &["rs"],
    },
    Kind {
        group: "apps",
        version: "v1",
        plural: "daemonsets",
        kind: "DaemonSet",
        namespaced: true,
        short: &["ds"],
    },
];

fn discovery(core: bool) -> Value {
    let mut groups: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for k in KINDS.iter().filter(|k| k.group.is_empty() == core) {
        groups.entry(k.group).or_default().push(json!({
            "resource": k.plural,
            "responseKind": {"group": k.group, "version": k.version, "kind": k.kind},
            "scope": if k.namespaced { "Namespaced" } else { "Cluster" },
            "singularResource": k.kind.to_lowercase(),
            "shortNames": k.short,
            "verbs": ["create","delete","get","list","patch","update","watch"],
        }));
    }
    let items: Vec<Value> = groups
        .into_iter()
        .map(|(g, r)| json!({"metadata":{"name": g}, "versions":[{"version":"v1","resources": r}]}))
        .collect();
    json!({"kind":"APIGroupDiscoveryList","apiVersion":"apidiscovery.k8s.io/v2","metadata":{},"items":items})
}

/// Parses `/api/v1/...` or `/apis/g/v/...` into (kind, namespace, name, subresource).
/// A parsed request path: kind, namespace, name, subresource.
type Route = (
    &'static Kind,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn route(path: &str) -> Option<Route> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match segs.as_slice() {
        ["api", "v1", rest @ ..] => ("", rest),
        ["apis", g, "v1", rest @ ..] => (*g, rest),
        _ => return None,
    };
    let (ns, rest) = match rest {
        ["namespaces", ns, r, rest @ ..] => (Some(ns.to_string()), [&[*r][..], rest].concat()),
        r => (None, r.to_vec()),
    };
    let kind = KINDS
        .iter()
        .find(|k| k.group == group && Some(&k.plural) == rest.first())?;
    Some((
        kind,
        ns,
        rest.get(1).map(|s| s.to_string()),
        rest.get(2).map(|s| s.to_string()),
    ))
}

fn key(kind: &Kind, ns: Option<&str>, name: &str) -> String {
    let base = if kind.group.is_empty() {
        "/api/v1".to_string()
    } else {
        format!("/apis/{}/v1", kind.group)
    };
    match ns {
        Some(ns) if kind.namespaced => format!("{base}/namespaces/{ns}/{}/{name}", kind.plural),
        _ => format!("{base}/{}/{name}", kind.plural),
    }
}

fn js(v: Value) -> Response {
    ([("content-type", "application/json")], v.to_string()).into_response()
}

fn status(code: u16, reason: &str, message: String) -> Response {
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        js(
            json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
            "message":message,"reason":reason,"code":code}),
        ),
    )
        .into_response()
}

fn not_found(kind: &Kind, name: &str) -> Response {
    let q = if kind.group.is_empty() {
        kind.plural.to_string()
    } else {
        format!("{}.{}", kind.plural, kind.group)
    };
    status(404, "NotFound", format!("{q} \"{name}\" not found"))
}

fn table(objs: &[Value], rv: u64) -> Value {
    json!({"kind":"Table","apiVersion":"meta.k8s.io/v1","metadata":{"resourceVersion": rv.to_string()},
        "columnDefinitions":[{"name":"Name","type":"string","priority":0},{"name":"Ready","type":"string","priority":0},
            {"name":"Node","type":"string","priority":1}],
        "rows": objs.iter().map(|o| json!({
            "cells":[o["metadata"]["name"], o["status"]["ready"].as_str().unwrap_or("1/1"), o["spec"]["nodeName"]],
            "object":{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":o["metadata"]}})).collect::<Vec<_>>()})
}

fn labels_match(obj: &Value, selector: &str) -> bool {
    selector
        .split(',')
        .filter(|s| !s.is_empty())
        .all(|term| match term.split_once('=') {
            Some((k, v)) => obj["metadata"]["labels"][k].as_str() == Some(v),
            None => obj["metadata"]["labels"].get(term).is_some(),
        })
}

fn field_match(obj: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let Some((k, v)) = term.split_once('=') else {
            return true;
        };
        let mut cur = obj;
        for p in k.split('.') {
            cur = &cur[p];
        }
        cur.as_str() == Some(v)
    })
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query(uri: &Uri) -> BTreeMap<String, String> {
    uri.query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), decode(v)))
        .collect()
}

fn merge(into: &mut Value, patch: &Value) {
    match (into, patch) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                if v.is_null() {
                    a.remove(k);
                } else {
                    merge(a.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (a, b) => *a = b.clone(),
    }
}

fn handle(
    state: &Arc<Mutex<State>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut st = state.lock().unwrap();
    st.log.push(format!("{method} {uri}"));
    let path = uri.path().to_string();
    let q = query(&uri);
    let accept = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let aggregated = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
    match (method.as_str(), path.as_str()) {
        ("GET", "/version") => {
            return js(json!({"major":"1","minor":"32","gitVersion":"v1.32.0-fake"}))
                .into_response()
        }
        ("GET", "/api") => {
            return ([("content-type", aggregated)], discovery(true).to_string()).into_response()
        }
        ("GET", "/apis") => {
            return ([("content-type", aggregated)], discovery(false).to_string()).into_response()
        }
        _ => {}
    }
    let Some((kind, ns, name, sub)) = route(&path) else {
        return status(
            404,
            "NotFound",
            "the server could not find the requested resource".into(),
        );
    };
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    match (method.as_str(), name, sub.as_deref()) {
        ("GET", None, _) => {
            let prefix = key(kind, ns.as_deref(), "");
            let mut objs: Vec<Value> = st
                .objects
                .iter()
                .filter(|(k, _)| {
                    if ns.is_some() || !kind.namespaced {
                        k.starts_with(&prefix) && !k[prefix.len()..].contains('/')
                    } else {
                        route(k).is_some_and(|(kk, _, n, s)| {
                            std::ptr::eq(kk, kind) && n.is_some() && s.is_none()
                        })
                    }
                })
                .map(|(_, v)| v.clone())
                .collect();
            if let Some(l) = q.get("labelSelector") {
                objs.retain(|o| labels_match(o, l));
            }
            if let Some(f) = q.get("fieldSelector") {
                objs.retain(|o| field_match(o, f));
            }
            if accept.contains("as=Table") {
                return js(table(&objs, st.rv)).into_response();
            }
            js(
                json!({"kind": format!("{}List", kind.kind), "apiVersion":"v1",
                "metadata":{"resourceVersion": st.rv.to_string()}, "items": objs}),
            )
            .into_response()
        }
        ("GET", Some(n), None) => match st.objects.get(&key(kind, ns.as_deref(), &n)) {
            Some(o) if accept.contains("as=Table") => {
                js(table(std::slice::from_ref(o), st.rv)).into_response()
            }
            Some(o) => js(o.clone()).into_response(),
            None => not_found(kind, &n),
        },
        ("GET", Some(n), Some("log")) => match st.objects.get(&key(kind, ns.as_deref(), &n)) {
            Some(_) => format!(
                "log of {n} container={}\n",
                q.get("container").cloned().unwrap_or_default()
            )
            .into_response(),
            None => not_found(kind, &n),
        },
        ("PATCH", Some(n), Some("scale")) => {
            let k = key(kind, ns.as_deref(), &n);
            st.rv += 1;
            let rv = st.rv;
            match st.objects.get_mut(&k) {
                Some(o) => {
                    o["spec"]["replicas"] = body["spec"]["replicas"].clone();
                    o["metadata"]["resourceVersion"] = rv.to_string().into();
                    js(json!({"kind":"Scale","apiVersion":"autoscaling/v1","spec":{"replicas":o["spec"]["replicas"]}})).into_response()
                }
                None => not_found(kind, &n),
            }
        }
        ("POST", None, None) => {
            let Some(n) = body["metadata"]["name"].as_str().map(str::to_string) else {
                return status(422, "Invalid", "metadata.name: Required value".into());
            };
            let k = key(kind, ns.as_deref(), &n);
            if st.objects.contains_key(&k) {
                return status(
                    409,
                    "AlreadyExists",
                    format!("{} \"{n}\" already exists", kind.plural),
                );
            }
            st.rv += 1;
            let mut obj = body;
            obj["metadata"]["resourceVersion"] = st.rv.to_string().into();
            st.objects.insert(k, obj.clone());
            (StatusCode::CREATED, js(obj)).into_response()
        }
        ("POST", Some(n), Some("eviction")) => {
            let k = key(kind, ns.as_deref(), &n);
            match st.objects.remove(&k) {
                Some(_) => (
                    StatusCode::CREATED,
                    js(json!({"kind":"Status","apiVersion":"v1","status":"Success"})),
                )
                    .into_response(),
                None => not_found(kind, &n),
            }
        }
        ("PATCH", Some(n), None) => {
            let k = key(kind, ns.as_deref(), &n);
            let existing = st.objects.get(&k).cloned();
            let mut obj = existing.clone().unwrap_or_else(|| json!({}));
            if ct.starts_with("application/apply-patch") {
                // Apply replaces spec wholesale, as if the manager owned every field it sent.
                for (f, v) in body.as_object().cloned().unwrap_or_default() {
                    if f == "metadata" {
                        merge(&mut obj["metadata"], &v);
                    } else {
                        obj[f.as_str()] = v;
                    }
                }
            } else if ct.starts_with("application/json-patch") {
                for op in body.as_array().cloned().unwrap_or_default() {
                    if op["op"] == "replace" {
                        let ptr = op["path"].as_str().unwrap_or_default().to_string();
                        if let Some(slot) = obj.pointer_mut(&ptr) {
                            *slot = op["value"].clone();
                        }
                    }
                }
            } else {
                if existing.is_none() {
                    return not_found(kind, &n);
                }
                merge(&mut obj, &body);
            }
            let changed = existing.as_ref() != Some(&obj);
            if changed {
                st.rv += 1;
                obj["metadata"]["resourceVersion"] = st.rv.to_string().into();
                if existing.is_none() {
                    obj["metadata"]["uid"] = format!("uid-{n}").into();
                    obj["metadata"]["creationTimestamp"] = "2024-01-01T00:00:00Z".into();
                }
                st.objects.insert(k, obj.clone());
            }
            let code = if existing.is_none() {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (code, js(obj)).into_response()
        }
        ("DELETE", Some(n), None) => match st.objects.remove(&key(kind, ns.as_deref(), &n)) {
            Some(_) => js(
                json!({"kind":"Status","apiVersion":"v1","status":"Success","details":{"name":n}}),
            )
            .into_response(),
            None => not_found(kind, &n),
        },
        _ => status(405, "MethodNotAllowed", format!("{method} not supported")),
    }
}

impl Fake {
    /// Starts the fake on an ephemeral loopback port.
    pub async fn start() -> Fake {
        let state: Arc<Mutex<State>> = Arc::default();
        let st = state.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let st = st.clone();
                async move { handle(&st, method, uri, headers, body) }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.ok() });
        Fake { state, url }
    }

    /// A session against the fake in namespace `default`.
    pub async fn session(&self) -> Session {
        kubeconfig::connect(&ConnectOptions {
            server: Some(self.url.clone()),
            ..Default::default()
        })
        .await
        .unwrap()
    }

    /// Stores an object at the path its `apiVersion`/`kind`/namespace/name imply.
    pub fn put(&self, obj: Value) {
        let kind = KINDS
            .iter()
            .find(|k| k.kind == obj["kind"])
            .expect("known kind");
        let k = key(
            kind,
            obj["metadata"]["namespace"].as_str(),
            obj["metadata"]["name"].as_str().unwrap(),
        );
        let mut st = self.state.lock().unwrap();
        st.rv += 1;
        let mut obj = obj;
        obj["metadata"]["resourceVersion"] = st.rv.to_string().into();
        st.objects.insert(k, obj);
    }

    /// The stored object at `path`.
    pub fn object(&self, path: &str) -> Option<Value> {
        self.state.lock().unwrap().objects.get(path).cloned()
    }

    /// Requests seen so far.
    pub fn log(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }
}
