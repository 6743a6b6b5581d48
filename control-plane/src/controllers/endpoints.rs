//! Endpoints controller: for each Service with a selector, an Endpoints object of the same name listing
//! ready pod IPs under `subsets[].addresses` and the others under `notReadyAddresses`, with ports resolved
//! from `targetPort` (a number, or a named container port).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Deserialize;
use serde_json::{json, Value};

use super::action::{Action, Actions};
use super::context::Ctx;
use super::object::*;
use super::runner::Controller;
use crate::informer::{Cached, Caches, Informer};
use crate::scheduler::container_ports;
use crate::store;
use apimachinery::labels::{string_map, LabelSelector};

/// (ready addresses, not-ready addresses, ports) of one subset being built.
type Subset = (Vec<Value>, Vec<Value>, Vec<Value>);

/// The parts of a Service's spec the controller decides on, read once per Service; the Endpoints it writes
/// stay JSON. Not k8s-openapi's `ServiceSpec`: its `ServicePort` requires `port` and types `appProtocol`,
/// where the old reads resolved a `targetPort` without `port` and copied `appProtocol` as it was.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ServiceSpecView {
    publish_not_ready_addresses: Option<bool>,
    ports: Option<Vec<ServicePortView>>,
}

/// One `spec.ports[]` entry; `targetPort` is k8s-openapi's [`IntOrString`].
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ServicePortView {
    name: Option<String>,
    protocol: Option<String>,
    port: Option<i64>,
    target_port: Option<IntOrString>,
    /// Copied to the Endpoints as it is, an explicit `null` included (as the old reads did).
    #[serde(deserialize_with = "present")]
    app_protocol: Option<Value>,
}

/// `Some` for a field that is there, even as `null` (serde's `Option` would read `null` as absent).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// Resolves a service port's `targetPort` against a pod: numbers as they are, names through the pod's
/// container ports. `None` when the name is not found.
fn resolve_port(svc_port: &ServicePortView, pod: &Value) -> Option<i64> {
    match &svc_port.target_port {
        None => svc_port.port,
        Some(IntOrString::Int(n)) => Some(i64::from(*n)),
        Some(IntOrString::String(s)) => match s.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => container_ports(pod.get("spec"))
                .find(|p| p.get("name").and_then(Value::as_str) == Some(s))
                .and_then(|p| p.get("containerPort"))
                .and_then(Value::as_i64),
        },
    }
}

/// The Endpoints a Service should have given `pods` (the pods of its namespace); `None` when the service
/// has no selector (its Endpoints are then managed by hand) or its spec does not parse (left alone, logged).
pub fn desired_subsets(svc: &Value, pods: &[Cached]) -> Option<Value> {
    let sel = string_map(svc.pointer("/spec/selector"));
    if sel.is_empty() {
        return None;
    }
    let spec: ServiceSpecView = match spec_view(svc) {
        Ok(spec) => spec,
        Err(e) => {
            tracing::warn!(service = %name(svc), namespace = %namespace(svc), error = %e,
                "skipping service whose spec does not parse");
            return None;
        }
    };
    let selector = LabelSelector::from_map(&sel);
    let publish_not_ready = spec.publish_not_ready_addresses.unwrap_or(false);
    let svc_ports = spec.ports.unwrap_or_default();
    // Pods with the same resolved ports share a subset, as in Kubernetes' repacking.
    let mut subsets: BTreeMap<String, Subset> = BTreeMap::new();
    for p in pods {
        let pod = &*p.value;
        if deleting(pod) || pod_terminal(pod) || !selector.matches_labels(&labels(pod)) {
            continue;
        }
        let Some(ip) = pod
            .pointer("/status/podIP")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        else {
            continue;
        };
        let mut ports = Vec::new();
        for sp in &svc_ports {
            if let Some(port) = resolve_port(sp, pod) {
                let mut e = json!({
                    "port": port,
                    "protocol": sp.protocol.as_deref().unwrap_or("TCP"),
                });
                if let Some(n) = sp.name.as_deref().filter(|n| !n.is_empty()) {
                    e["name"] = json!(n);
                }
                if let Some(a) = &sp.app_protocol {
                    e["appProtocol"] = a.clone();
                }
                ports.push(e);
            }
        }
        if ports.is_empty() && !svc_ports.is_empty() {
            continue;
        }
        ports.sort_by_key(|p| p.to_string());
        let mut addr = json!({
            "ip": ip,
            "targetRef": {"kind": "Pod", "namespace": namespace(pod), "name": name(pod), "uid": uid(pod)},
        });
        if let Some(n) = pod_node(pod) {
            addr["nodeName"] = json!(n);
        }
        let slot = subsets
            .entry(Value::Array(ports.clone()).to_string())
            .or_insert_with(|| (Vec::new(), Vec::new(), ports));
        if publish_not_ready || pod_ready(pod) {
            slot.0.push(addr);
        } else {
            slot.1.push(addr);
        }
    }
    let subsets: Vec<Value> = subsets
        .into_values()
        .map(|(mut ready, mut not_ready, ports)| {
            let by_ip = |a: &Value, b: &Value| a["ip"].as_str().cmp(&b["ip"].as_str());
            ready.sort_by(by_ip);
            not_ready.sort_by(by_ip);
            let mut s = json!({});
            if !ready.is_empty() {
                s["addresses"] = json!(ready);
            }
            if !not_ready.is_empty() {
                s["notReadyAddresses"] = json!(not_ready);
            }
            if !ports.is_empty() {
                s["ports"] = json!(ports);
            }
            s
        })
        .collect();
    Some(json!(subsets))
}

/// Reconciles the Endpoints of one Service.
pub fn reconcile(
    svc: &Value,
    pods: &[Cached],
    existing: Option<&Cached>,
    now: std::time::SystemTime,
    rng: &mut dyn rand::RngCore,
) -> Actions {
    let mut out = Actions::default();
    if deleting(svc) {
        return out;
    }
    let Some(subsets) = desired_subsets(svc, pods) else {
        return out;
    };
    let ns = namespace(svc);
    let svc_name = name(svc);
    let key = store::key("core", "endpoints", ns, svc_name);
    let svc_labels = svc.pointer("/metadata/labels").cloned();
    match existing {
        Some(e) => {
            let mut v = (*e.value).clone();
            let empty = subsets.as_array().is_some_and(Vec::is_empty);
            if empty {
                if let Some(m) = v.as_object_mut() {
                    m.remove("subsets");
                }
            } else {
                v["subsets"] = subsets;
            }
            if let Some(l) = svc_labels {
                v["metadata"]["labels"] = l;
            }
            if v != *e.value {
                out.push(Action::Update {
                    key,
                    object: v,
                    revision: e.revision,
                });
            }
        }
        None => {
            let mut v = json!({
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": {"name": svc_name, "namespace": ns},
            });
            if let Some(l) = svc_labels {
                v["metadata"]["labels"] = l;
            }
            if subsets.as_array().is_some_and(|a| !a.is_empty()) {
                v["subsets"] = subsets;
            }
            stamp_new(&mut v, now, rng);
            out.push(Action::Create { key, object: v });
        }
    }
    out
}

/// The runner's view of the Endpoints controller.
pub struct EndpointsController;

impl Controller for EndpointsController {
    const COMPONENT: &'static str = "endpoints-controller";

    fn triggers(caches: &Caches) -> Vec<Arc<Informer>> {
        vec![
            caches.services.clone(),
            caches.pods.clone(),
            caches.endpoints.clone(),
        ]
    }

    fn pass(&mut self, ctx: &Ctx) -> Vec<Actions> {
        let now = ctx.now();
        let services = ctx.caches.services.list();
        let mut out = Vec::new();
        let mut with_service = HashSet::new();
        for s in &services {
            let ns = namespace(&s.value);
            with_service.insert((ns.to_string(), name(&s.value).to_string()));
            let pods = ctx
                .caches
                .pods
                .list_prefix(&store::prefix("core", "pods", Some(ns)));
            let existing =
                ctx.caches
                    .endpoints
                    .get(&store::key("core", "endpoints", ns, name(&s.value)));
            let a = ctx.reconcile_isolated("Service", &s.key, |rng| {
                reconcile(&s.value, &pods, existing.as_ref(), now, rng)
            });
            if !a.is_empty() {
                out.push(a);
            }
        }
        // Endpoints whose Service is gone go with it.
        for e in ctx.caches.endpoints.list() {
            let id = (namespace(&e.value).to_string(), name(&e.value).to_string());
            if !with_service.contains(&id) {
                out.push(Actions {
                    actions: vec![Action::Delete {
                        key: e.key.clone(),
                        revision: Some(e.revision),
                    }],
                    requeue_after: None,
                    origin: None,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn pod(name: &str, ip: Option<&str>, ready: bool, app: &str) -> Cached {
        let mut p = json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("u-{name}"), "labels": {"app": app}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]},
        });
        if let Some(ip) = ip {
            p["status"]["podIP"] = json!(ip);
        }
        Cached {
            key: format!("/core/pods/default/{name}"),
            value: Arc::new(p),
            revision: 1,
        }
    }

    fn svc(target: Value) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default", "uid": "s"},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": target}]},
        })
    }

    #[test]
    fn table() {
        let cases: Vec<(&str, Value, Vec<Cached>, Value)> = vec![
            (
                "ready and not ready, named port",
                svc(json!("http")),
                vec![
                    pod("b", Some("10.244.0.3"), true, "web"),
                    pod("a", Some("10.244.0.2"), false, "web"),
                    pod("o", Some("10.244.0.9"), true, "other"),
                    pod("n", None, true, "web"),
                ],
                json!([{
                    "addresses": [{"ip": "10.244.0.3", "nodeName": "n1", "targetRef": {"kind": "Pod", "namespace": "default", "name": "b", "uid": "u-b"}}],
                    "notReadyAddresses": [{"ip": "10.244.0.2", "nodeName": "n1", "targetRef": {"kind": "Pod", "namespace": "default", "name": "a", "uid": "u-a"}}],
                    "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                }]),
            ),
            (
                "numeric target port",
                svc(json!(9090)),
                vec![pod("b", Some("10.244.0.3"), true, "web")],
                json!([{
                    "addresses": [{"ip": "10.244.0.3", "nodeName": "n1", "targetRef": {"kind": "Pod", "namespace": "default", "name": "b", "uid": "u-b"}}],
                    "ports": [{"name": "http", "port": 9090, "protocol": "TCP"}],
                }]),
            ),
            (
                "unknown port name drops the pod",
                svc(json!("grpc")),
                vec![pod("b", Some("10.244.0.3"), true, "web")],
                json!([]),
            ),
            ("no pods", svc(json!(80)), vec![], json!([])),
        ];
        for (name, s, pods, want) in cases {
            assert_eq!(desired_subsets(&s, &pods).unwrap(), want, "{name}");
        }
        let mut no_sel = svc(json!(80));
        no_sel["spec"].as_object_mut().unwrap().remove("selector");
        assert!(desired_subsets(&no_sel, &[]).is_none());
    }

    #[test]
    fn app_protocol_is_copied_as_it_is_and_a_spec_that_does_not_parse_is_left_alone() {
        let pods = vec![pod("b", Some("10.244.0.3"), true, "web")];
        for a in [json!("http"), Value::Null] {
            let mut s = svc(json!(80));
            s["spec"]["ports"][0]["appProtocol"] = a.clone();
            let got = desired_subsets(&s, &pods).unwrap();
            assert_eq!(got[0]["ports"][0]["appProtocol"], a);
            assert!(got[0]["ports"][0].get("appProtocol").is_some());
        }
        // Hostile stored objects: the typed read refuses a wrong JSON type, and the Endpoints stay as they are.
        for (field, bad) in [
            ("ports", json!("80")),
            ("publishNotReadyAddresses", json!("yes")),
        ] {
            let mut s = svc(json!(80));
            s["spec"][field] = bad;
            assert!(desired_subsets(&s, &pods).is_none(), "{field}");
        }
        let mut s = svc(json!(true));
        s["spec"]["ports"][0]["port"] = json!(80);
        assert!(desired_subsets(&s, &pods).is_none(), "a boolean targetPort");
    }

    #[test]
    fn creates_then_is_idempotent() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let now = std::time::SystemTime::UNIX_EPOCH;
        let pods = vec![pod("b", Some("10.244.0.3"), true, "web")];
        let a = reconcile(&svc(json!(80)), &pods, None, now, &mut rng);
        let Some(Action::Create { key, object }) = a.actions.first() else {
            panic!("{a:?}")
        };
        assert_eq!(key, "/core/endpoints/default/web");
        assert_eq!(object["kind"], "Endpoints");
        let existing = Cached {
            key: key.clone(),
            value: Arc::new(object.clone()),
            revision: 5,
        };
        assert!(reconcile(&svc(json!(80)), &pods, Some(&existing), now, &mut rng).is_empty());
        let a = reconcile(&svc(json!(80)), &[], Some(&existing), now, &mut rng);
        let Some(Action::Update {
            object,
            revision: 5,
            ..
        }) = a.actions.first()
        else {
            panic!("{a:?}")
        };
        assert!(object.get("subsets").is_none());
    }
}
