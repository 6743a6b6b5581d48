//! Table-driven scheduler tests over hand-built views, and property tests of its safety rules.

use super::*;
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

fn node(name: &str, cpu: &str, mem: &str) -> Value {
    json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {},
        "status": {
            "allocatable": {"cpu": cpu, "memory": mem, "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}]
        }
    })
}

fn pod(name: &str, cpu: &str, mem: &str) -> Value {
    json!({
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"), "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": mem}}}]}
    })
}

fn with(mut v: Value, pointer: &str, value: Value) -> Value {
    let mut parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    let last = parts.pop().unwrap();
    let mut cur = &mut v;
    for p in parts {
        if cur.get(p).is_none() {
            cur[p] = json!({});
        }
        cur = cur.get_mut(p).unwrap();
    }
    cur[last] = value;
    v
}

fn view(nodes: &[Value], bound: &[Value]) -> ClusterView {
    let mut v = ClusterView::new();
    for n in nodes {
        v.upsert_node_json(n);
    }
    for p in bound {
        v.upsert_pod_json(p);
    }
    v
}

fn owned(p: Value, owner: &str) -> Value {
    with(
        p,
        "/metadata/ownerReferences",
        json!([{"kind": "ReplicaSet", "name": owner, "uid": owner, "controller": true}]),
    )
}

#[test]
fn host_ports_are_one_pod_per_node_and_protocol() {
    let hp = |name: &str, port: u16, proto: &str| {
        let mut p = pod(name, "10m", "10Mi");
        p["spec"]["containers"][0]["ports"] =
            json!([{"containerPort": 80, "hostPort": port, "protocol": proto}]);
        p
    };
    let nodes = [node("a", "4", "4Gi"), node("b", "4", "4Gi")];
    let mut v = view(&nodes, &[]);
    let p1 = Pod::from_json(&hp("p1", 8080, "TCP"));
    assert_eq!(p1.host_ports, [("TCP".to_string(), 8080)]);
    let first = schedule(&v, &p1).unwrap().node;
    v.bind(&p1, &first);
    let p2 = Pod::from_json(&hp("p2", 8080, "TCP"));
    let second = schedule(&v, &p2).unwrap().node;
    assert_ne!(first, second, "the same host port twice on one node");
    v.bind(&p2, &second);
    let p3 = Pod::from_json(&hp("p3", 8080, "TCP"));
    let e = schedule(&v, &p3).unwrap_err();
    assert_eq!(
        e.message,
        "0/2 nodes are available: 2 node(s) didn't have free ports for the requested pod ports."
    );
    // Another protocol, or another port, is free.
    assert!(schedule(&v, &Pod::from_json(&hp("p4", 8080, "UDP"))).is_ok());
    assert!(schedule(&v, &Pod::from_json(&hp("p5", 8081, "TCP"))).is_ok());
    // A hostNetwork pod's container ports are node ports.
    let mut hn = with(pod("p6", "10m", "10Mi"), "/spec/hostNetwork", json!(true));
    hn["spec"]["containers"][0]["ports"] = json!([{"containerPort": 8080}]);
    assert!(schedule(&v, &Pod::from_json(&hn)).is_err());
    // Deleting a holder frees its port.
    v.remove_pod(&p1.key());
    assert_eq!(schedule(&v, &p3).unwrap().node, first);
}

#[test]
fn filters_and_scores_table() {
    let small = node("a", "1", "1Gi");
    let big = node("b", "4", "8Gi");
    let tainted = with(
        node("t", "8", "8Gi"),
        "/spec/taints",
        json!([{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]),
    );
    let cordoned = with(node("c", "8", "8Gi"), "/spec/unschedulable", json!(true));
    let not_ready = with(
        node("n", "8", "8Gi"),
        "/status/conditions",
        json!([{"type": "Ready", "status": "False"}]),
    );
    let ssd = with(node("s", "2", "2Gi"), "/metadata/labels/disk", json!("ssd"));
    let prefer = with(
        node("p", "8", "16Gi"),
        "/spec/taints",
        json!([{"key": "spot", "value": "yes", "effect": "PreferNoSchedule"}]),
    );
    type Case = (
        &'static str,
        Vec<Value>,
        Vec<Value>,
        Value,
        Result<&'static str, &'static str>,
    );
    let cases: Vec<Case> = vec![
        (
            "least allocated wins",
            vec![small.clone(), big.clone()],
            vec![with(pod("old", "100m", "0"), "/spec/nodeName", json!("a"))],
            pod("x", "100m", "64Mi"),
            Ok("b"),
        ),
        ("fits only the big node", vec![small.clone(), big.clone()], vec![], pod("x", "2", "64Mi"), Ok("b")),
        (
            "kube-style reason message",
            vec![small.clone(), tainted.clone(), node("d", "1", "1Gi")],
            vec![],
            pod("x", "2", "64Mi"),
            Err("0/3 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }, 2 Insufficient cpu."),
        ),
        (
            "cpu and memory both reported",
            vec![small.clone()],
            vec![],
            pod("x", "2", "2Gi"),
            Err("0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory."),
        ),
        (
            "cordoned and not-ready nodes are skipped",
            vec![cordoned.clone(), not_ready.clone()],
            vec![],
            pod("x", "100m", "1Mi"),
            Err("0/2 nodes are available: 1 node(s) were not ready, 1 node(s) were unschedulable."),
        ),
        (
            "toleration lets a pod on a tainted node",
            vec![tainted.clone()],
            vec![],
            with(pod("x", "1", "1Mi"), "/spec/tolerations", json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists"}])),
            Ok("t"),
        ),
        (
            "nodeSelector",
            vec![big.clone(), ssd.clone()],
            vec![],
            with(pod("x", "100m", "1Mi"), "/spec/nodeSelector", json!({"disk": "ssd"})),
            Ok("s"),
        ),
        (
            "nodeSelector without match",
            vec![big.clone()],
            vec![],
            with(pod("x", "100m", "1Mi"), "/spec/nodeSelector", json!({"disk": "ssd"})),
            Err("0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."),
        ),
        (
            "required node affinity NotIn",
            vec![big.clone(), ssd.clone()],
            vec![],
            with(
                pod("x", "100m", "1Mi"),
                "/spec/affinity",
                json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "NotIn", "values": ["b"]}]}
                ]}}}),
            ),
            Ok("s"),
        ),
        (
            "PreferNoSchedule only lowers the score",
            vec![prefer.clone(), small.clone()],
            vec![],
            pod("x", "100m", "1Mi"),
            Ok("a"),
        ),
        (
            "PreferNoSchedule node used when it is the only fit",
            vec![prefer.clone(), small.clone()],
            vec![],
            pod("x", "3", "1Mi"),
            Ok("p"),
        ),
        (
            "pod count is a resource",
            vec![with(node("a", "8", "8Gi"), "/status/allocatable/pods", json!("1"))],
            vec![with(pod("old", "0", "0"), "/spec/nodeName", json!("a"))],
            pod("x", "100m", "1Mi"),
            Err("0/1 nodes are available: 1 Too many pods."),
        ),
        (
            "terminal pods hold nothing",
            vec![small.clone()],
            vec![with(with(pod("old", "1", "0"), "/spec/nodeName", json!("a")), "/status/phase", json!("Succeeded"))],
            pod("x", "1", "1Mi"),
            Ok("a"),
        ),
        (
            "replicas spread before least allocated",
            vec![node("a", "4", "4Gi"), node("b", "2", "2Gi")],
            vec![with(owned(pod("r1", "100m", "1Mi"), "rs1"), "/spec/nodeName", json!("a"))],
            owned(pod("r2", "100m", "1Mi"), "rs1"),
            Ok("b"),
        ),
        (
            "tie broken by name",
            vec![node("z", "2", "2Gi"), node("m", "2", "2Gi")],
            vec![],
            pod("x", "100m", "1Mi"),
            Ok("m"),
        ),
        (
            "anti-affinity by hostname",
            vec![node("a", "4", "4Gi"), node("b", "1", "1Gi")],
            vec![with(pod("w1", "0", "0"), "/spec/nodeName", json!("a"))],
            with(
                pod("x", "100m", "1Mi"),
                "/spec/affinity",
                json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}
                ]}}),
            ),
            Ok("b"),
        ),
        (
            "existing pod's anti-affinity",
            vec![node("a", "4", "4Gi")],
            vec![with(
                with(
                    pod("w1", "0", "0"),
                    "/spec/affinity",
                    json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                        {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}
                    ]}}),
                ),
                "/spec/nodeName",
                json!("a"),
            )],
            pod("x", "100m", "1Mi"),
            Err("0/1 nodes are available: 1 node(s) didn't satisfy existing pods anti-affinity rules."),
        ),
        (
            "claim used on a node pins the pod there",
            vec![node("a", "1", "1Gi"), node("b", "8", "8Gi")],
            vec![with(
                with(pod("db-0", "100m", "1Mi"), "/spec/volumes", json!([{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}])),
                "/spec/nodeName",
                json!("a"),
            )],
            with(pod("x", "100m", "1Mi"), "/spec/volumes", json!([{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}])),
            Ok("a"),
        ),
        ("no nodes", vec![], vec![], pod("x", "1", "1Mi"), Err("no nodes available to schedule pods")),
    ];
    for (name, nodes, bound, p, want) in cases {
        let v = view(&nodes, &bound);
        let got = schedule(&v, &Pod::from_json(&p));
        match (got, want) {
            (Ok(pl), Ok(n)) => assert_eq!(pl.node, n, "{name}"),
            (Err(e), Err(m)) => assert_eq!(e.message, m, "{name}"),
            (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn claim_annotation_pins_pod() {
    let mut v = view(&[node("a", "1", "1Gi"), node("b", "8", "8Gi")], &[]);
    v.upsert_claim_json(&json!({"metadata": {"name": "data", "namespace": "default", "annotations": {"berth.dev/node": "a"}}}));
    let p = with(
        pod("x", "100m", "1Mi"),
        "/spec/volumes",
        json!([{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]),
    );
    assert_eq!(schedule(&v, &Pod::from_json(&p)).unwrap().node, "a");
    let mut big = p;
    big["spec"]["containers"][0]["resources"]["requests"]["cpu"] = json!("2");
    let err = schedule(&v, &Pod::from_json(&big)).unwrap_err();
    assert_eq!(
        err.message,
        "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had volume node affinity conflict."
    );
}

#[test]
fn batch_never_overcommits_and_spreads() {
    let mut v = view(&[node("a", "1", "1Gi"), node("b", "1", "1Gi")], &[]);
    let pods: Vec<Pod> = (0..5)
        .map(|i| Pod::from_json(&owned(pod(&format!("p{i}"), "400m", "1Mi"), "rs")))
        .collect();
    let out = schedule_batch(&mut v, pods);
    let placed: Vec<_> = out
        .iter()
        .map(|(_, r)| r.as_ref().map(|p| p.node.clone()).ok())
        .collect();
    assert_eq!(
        placed,
        vec![
            Some("a".into()),
            Some("b".into()),
            Some("a".into()),
            Some("b".into()),
            None
        ]
    );
    assert_eq!(v.requested("a").unwrap().cpu, 800);
    // Removing a bound pod frees its room.
    v.remove_pod("default/p0");
    assert_eq!(v.requested("a").unwrap().cpu, 400);
    let (_, r) =
        schedule_batch(&mut v, vec![Pod::from_json(&pod("late", "400m", "1Mi"))]).remove(0);
    assert_eq!(r.unwrap().node, "a");
}

#[test]
fn node_updates_keep_accounting() {
    let mut v = view(
        &[node("a", "1", "1Gi")],
        &[with(pod("p", "600m", "0"), "/spec/nodeName", json!("a"))],
    );
    v.upsert_node_json(&with(
        node("a", "1", "1Gi"),
        "/spec/unschedulable",
        json!(true),
    ));
    assert_eq!(v.requested("a").unwrap().cpu, 600);
    assert!(schedule(&v, &Pod::from_json(&pod("x", "100m", "0"))).is_err());
    v.upsert_node_json(&node("a", "1", "1Gi"));
    let err = schedule(&v, &Pod::from_json(&pod("x", "500m", "0"))).unwrap_err();
    assert_eq!(err.message, "0/1 nodes are available: 1 Insufficient cpu.");
    // A pod bound to a node the view has not seen yet is counted once the node appears.
    v.upsert_pod_json(&with(
        pod("q", "300m", "0"),
        "/spec/nodeName",
        json!("late"),
    ));
    v.upsert_node_json(&node("late", "1", "1Gi"));
    assert_eq!(v.requested("late").unwrap().cpu, 300);
}

fn arb_node(i: usize) -> impl Strategy<Value = Value> {
    (
        1u32..8,
        1u32..8,
        any::<bool>(),
        any::<bool>(),
        0u32..3,
        1u32..6,
    )
        .prop_map(move |(cpu, mem, ready, cordoned, zone, pods)| {
            let mut n = node(&format!("n{i}"), &cpu.to_string(), &format!("{mem}Gi"));
            n["metadata"]["labels"]["zone"] = json!(format!("z{zone}"));
            n["status"]["allocatable"]["pods"] = json!(pods.to_string());
            n["spec"]["unschedulable"] = json!(cordoned);
            if !ready {
                n["status"]["conditions"][0]["status"] = json!("Unknown");
            }
            n
        })
}

fn arb_pod(i: usize) -> impl Strategy<Value = Value> {
    (
        0u32..3000,
        0u32..3000,
        proptest::option::of(0u32..3),
        0u32..4,
        proptest::option::of((8080u16..8083, any::<bool>(), any::<bool>())),
    )
        .prop_map(move |(cpu, mem, zone, owner, port)| {
            let mut p = owned(
                pod(&format!("p{i}"), &format!("{cpu}m"), &format!("{mem}Mi")),
                &format!("o{owner}"),
            );
            if let Some(z) = zone {
                p["spec"]["nodeSelector"] = json!({"zone": format!("z{z}")});
            }
            if let Some((port, udp, host_network)) = port {
                let proto = if udp { "UDP" } else { "TCP" };
                p["spec"]["containers"][0]["ports"] = if host_network {
                    p["spec"]["hostNetwork"] = json!(true);
                    json!([{"containerPort": port, "protocol": proto}])
                } else {
                    json!([{"containerPort": 80, "hostPort": port, "protocol": proto}])
                };
            }
            p
        })
}

fn arb_world() -> impl Strategy<Value = (Vec<Value>, Vec<Value>)> {
    (1usize..12, 1usize..60).prop_flat_map(|(n, p)| {
        (
            (0..n).map(arb_node).collect::<Vec<_>>(),
            (0..p).map(arb_pod).collect::<Vec<_>>(),
        )
    })
}

proptest! {
    #[test]
    fn batch_placement_is_safe((nodes, pods) in arb_world()) {
        let mut v = view(&nodes, &[]);
        let pods: Vec<Pod> = pods.iter().map(Pod::from_json).collect();
        let out = schedule_batch(&mut v, pods);
        let mut used: BTreeMap<String, Resources> = BTreeMap::new();
        let mut ports: BTreeSet<(String, (String, u16))> = BTreeSet::new();
        for (p, r) in &out {
            match r {
                Ok(pl) => {
                    for hp in &p.host_ports {
                        prop_assert!(ports.insert((pl.node.clone(), hp.clone())),
                            "host port {:?} taken twice on {}", hp, pl.node);
                    }
                    let n = v.node(&pl.node).unwrap();
                    prop_assert!(n.ready, "bound to not-ready node");
                    prop_assert!(!n.unschedulable, "bound to cordoned node");
                    for (k, val) in &p.node_selector {
                        prop_assert_eq!(n.labels.get(k), Some(val));
                    }
                    used.entry(pl.node.clone()).or_default().add(&p.requests);
                }
                Err(_) => {
                    // Unschedulable only when no node really fits at that moment: re-check by brute force
                    // against the final state is too strict, so check the pod does not fit now either.
                    prop_assert!(schedule(&v, p).is_err());
                }
            }
        }
        for (name, u) in used {
            let a = v.node(&name).unwrap().allocatable;
            prop_assert!(u.cpu <= a.cpu && u.memory <= a.memory && u.pods <= a.pods,
                "node {} over-committed: {:?} > {:?}", name, u, a);
            prop_assert_eq!(v.requested(&name).unwrap(), u);
        }
    }
}

/// Fuzz finding (fuzz target `quantity`, input `9e18`): huge quantities read as i64::MAX
/// millicores, and summing two containers' requests overflowed (a panic in debug builds, a wrap to a
/// negative request in release that made the node look empty). Quantities are now bounded by
/// `apimachinery::quantity::MAX` and sums saturate.
#[test]
fn huge_quantities_are_bounded_and_never_overflow() {
    let huge = "9e18";
    let two_containers = |name: &str| {
        with(
            pod(name, huge, huge),
            "/spec/containers",
            json!([
                {"name": "a", "resources": {"requests": {"cpu": huge, "memory": huge}}},
                {"name": "b", "resources": {"requests": {"cpu": huge, "memory": huge}}},
            ]),
        )
    };
    let p = Pod::from_json(&two_containers("p0"));
    assert_eq!(p.requests.cpu, 2 * apimachinery::quantity::MAX);
    assert_eq!(p.requests.memory, 2 * apimachinery::quantity::MAX);

    // Pods bound past the node's size: the view's sums and scores stay exact, a new pod does not
    // fit, and removing them frees the node again.
    let bound: Vec<Value> = (0..3)
        .map(|i| {
            with(
                two_containers(&format!("b{i}")),
                "/spec/nodeName",
                json!("n1"),
            )
        })
        .collect();
    let mut v = view(&[node("n1", huge, huge)], &bound);
    assert_eq!(
        v.requested("n1").unwrap().cpu,
        6 * apimachinery::quantity::MAX
    );
    assert!(schedule(&v, &Pod::from_json(&pod("new", "1", "1Mi"))).is_err());
    for i in 0..3 {
        v.remove_pod(&format!("default/b{i}"));
    }
    assert_eq!(v.requested("n1").unwrap().cpu, 0);
    assert!(schedule(&v, &Pod::from_json(&pod("new", "1", "1Mi"))).is_ok());
}
