use super::*;
use crate::controllers::sim::Sim;
use apimachinery::time::parse_rfc3339;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

fn ds(image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "agent", "namespace": "kube-system", "uid": "ds-uid", "generation": 3,
                     "resourceVersion": "9"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
                 "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
                 "template": {"metadata": {"labels": {"app": "agent"}},
                              "spec": {"containers": [{"name": "c", "image": image}]}}},
    })
}

fn node(name: &str) -> Node {
    node_json(name, json!({}))
}

fn node_json(name: &str, extra: Value) -> Node {
    let mut v = json!({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
                       "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
    if let Some(m) = extra.as_object() {
        for (k, x) in m {
            v["spec"][k] = x.clone();
        }
    }
    Node::from_json(&v).unwrap()
}

fn now() -> SystemTime {
    parse_rfc3339("2026-01-01T01:00:00Z").unwrap()
}

fn hash_of(d: &Value) -> String {
    pod_template_hash(d.pointer("/spec/template").unwrap(), None)
}

fn pod(name: &str, node: &str, hash: &str, ready: bool) -> Cached {
    let p = json!({
        "metadata": {"name": name, "namespace": "kube-system", "uid": format!("u-{name}"), "resourceVersion": "4",
                     "creationTimestamp": "2026-01-01T00:00:00Z",
                     "labels": {"app": "agent", HASH_LABEL: hash},
                     "ownerReferences": [{"uid": "ds-uid", "controller": true, "kind": "DaemonSet"}]},
        "spec": {"nodeName": node, "terminationGracePeriodSeconds": 30},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"},
                    "lastTransitionTime": "2026-01-01T00:00:00Z"}]},
    });
    Cached {
        key: format!("/core/pods/kube-system/{name}"),
        value: Arc::new(p),
        revision: 4,
    }
}

fn run(d: &Value, nodes: &[Node], pods: &[Cached]) -> Actions {
    reconcile(
        "/apps/daemonsets/kube-system/agent",
        d,
        nodes,
        pods,
        now(),
        &mut StdRng::seed_from_u64(7),
    )
}

fn created(a: &Actions) -> Vec<&Value> {
    a.actions
        .iter()
        .filter_map(|a| match a {
            Action::Create { object, .. } => Some(object),
            _ => None,
        })
        .collect()
}

/// Keys of pods deleted, gracefully (deletionTimestamp) or at once.
fn deleted(a: &Actions) -> Vec<String> {
    a.actions
        .iter()
        .filter_map(|a| match a {
            Action::Delete { key, .. } => Some(key.clone()),
            Action::Update { key, object, .. }
                if key.starts_with("/core/pods/") && deleting(object) =>
            {
                Some(key.clone())
            }
            _ => None,
        })
        .collect()
}

fn status(a: &Actions) -> Value {
    a.actions
        .iter()
        .find_map(|a| match a {
            Action::Update { key, object, .. } if key.starts_with("/apps/daemonsets/") => {
                Some(object["status"].clone())
            }
            _ => None,
        })
        .expect("a status update")
}

#[test]
fn one_pod_per_fitting_node_pinned_and_tolerant() {
    let d = ds("img:1");
    let tainted = node_json(
        "tainted",
        json!({"taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]}),
    );
    let cordoned = node_json("cordoned", json!({"unschedulable": true}));
    let a = run(&d, &[node("n1"), node("n2"), tainted, cordoned], &[]);
    let pods = created(&a);
    let mut on: Vec<&str> = pods
        .iter()
        .map(|p| p["spec"]["nodeName"].as_str().unwrap())
        .collect();
    on.sort();
    assert_eq!(
        on,
        ["cordoned", "n1", "n2"],
        "a cordoned node keeps its daemon, a tainted one gets none"
    );
    let p = pods[0];
    assert_eq!(p["metadata"]["labels"][HASH_LABEL], json!(hash_of(&d)));
    assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "DaemonSet");
    assert_eq!(p["metadata"]["ownerReferences"][0]["uid"], "ds-uid");
    let tolerated: Vec<&str> = p["spec"]["tolerations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["key"].as_str().unwrap())
        .collect();
    assert!(tolerated.contains(&"node.kubernetes.io/unreachable"));
    assert!(tolerated.contains(&"node.kubernetes.io/unschedulable"));
    let s = status(&a);
    assert_eq!(s["desiredNumberScheduled"], 3);
    assert_eq!(s["currentNumberScheduled"], 0);
    assert_eq!(s["numberUnavailable"], 3);
    assert_eq!(s["observedGeneration"], 3);
}

#[test]
fn node_selector_and_tolerations_in_the_template_choose_nodes() {
    let mut d = ds("img:1");
    d["spec"]["template"]["spec"]["nodeSelector"] = json!({"kubernetes.io/hostname": "n2"});
    let a = run(&d, &[node("n1"), node("n2")], &[]);
    let pods = created(&a);
    assert_eq!(pods.len(), 1);
    assert_eq!(pods[0]["spec"]["nodeName"], "n2");

    let mut d = ds("img:1");
    d["spec"]["template"]["spec"]["tolerations"] =
        json!([{"key": "dedicated", "operator": "Exists"}]);
    let tainted = node_json(
        "tainted",
        json!({"taints": [{"key": "dedicated", "value": "db", "effect": "NoExecute"}]}),
    );
    assert_eq!(created(&run(&d, &[tainted], &[])).len(), 1);
}

#[test]
fn misscheduled_failed_duplicate_and_orphaned_pods_go() {
    let mut d_sel = ds("img:1");
    d_sel["spec"]["template"]["spec"]["nodeSelector"] = json!({"role": "db"});
    let h = hash_of(&d_sel);
    let mut failed = pod("failed", "n1", &h, false);
    Arc::make_mut(&mut failed.value)["status"]["phase"] = json!("Failed");
    let mut n2 = node("n2");
    n2.labels.insert("role".into(), "db".into());
    let pods = vec![
        failed,
        pod("wrong-node", "n1", &h, true),
        pod("gone-node", "n9", &h, true),
        pod("keep", "n2", &h, true),
        pod("dup", "n2", &h, false),
    ];
    let a = run(&d_sel, &[node("n1"), n2], &pods);
    let mut gone = deleted(&a);
    gone.sort();
    assert_eq!(
        gone,
        [
            "/core/pods/kube-system/dup",
            "/core/pods/kube-system/failed",
            "/core/pods/kube-system/gone-node",
            "/core/pods/kube-system/wrong-node",
        ]
    );
    assert!(
        created(&a).is_empty(),
        "n2 keeps its ready pod, n1 does not fit"
    );
    let s = status(&a);
    assert_eq!(s["numberMisscheduled"], 1);
    assert_eq!(s["desiredNumberScheduled"], 1);
    assert_eq!(s["numberReady"], 1);
}

#[test]
fn rolling_update_replaces_unavailable_old_pods_first_then_one_at_a_time() {
    let old = ds("img:1");
    let d = ds("img:2");
    let (ho, hn) = (hash_of(&old), hash_of(&d));
    assert_ne!(ho, hn);
    let nodes = [node("n1"), node("n2"), node("n3")];
    let pods = vec![
        pod("a", "n1", &ho, true),
        pod("b", "n2", &ho, true),
        pod("c", "n3", &ho, false),
    ];
    let a = run(&d, &nodes, &pods);
    assert_eq!(
        deleted(&a),
        ["/core/pods/kube-system/c"],
        "the unready old pod costs no availability; with c down the budget of 1 is spent"
    );
    let pods = vec![pod("a", "n1", &ho, true), pod("b", "n2", &ho, true)];
    let a = run(&d, &nodes, &pods);
    assert_eq!(
        created(&a).len(),
        1,
        "n3 has no pod: it gets the new template"
    );
    assert!(deleted(&a).is_empty(), "n3 is unavailable: budget spent");
    let pods = vec![
        pod("a", "n1", &ho, true),
        pod("b", "n2", &ho, true),
        pod("c2", "n3", &hn, true),
    ];
    let a = run(&d, &nodes, &pods);
    assert_eq!(deleted(&a), ["/core/pods/kube-system/a"]);
    assert_eq!(status(&a)["updatedNumberScheduled"], 1);
}

#[test]
fn a_terminating_pod_holds_its_node_until_gone_without_surge() {
    let d = ds("img:2");
    let mut old = pod("a", "n1", &hash_of(&ds("img:1")), true);
    Arc::make_mut(&mut old.value)["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:59:00Z");
    assert!(created(&run(&d, &[node("n1")], &[old.clone()])).is_empty());
    let mut surge = d.clone();
    surge["spec"]["updateStrategy"]["rollingUpdate"] = json!({"maxSurge": 1, "maxUnavailable": 0});
    assert_eq!(created(&run(&surge, &[node("n1")], &[old])).len(), 1);
}

#[test]
fn surge_starts_the_new_pod_beside_the_old_and_removes_the_old_once_available() {
    let mut d = ds("img:2");
    d["spec"]["updateStrategy"]["rollingUpdate"] = json!({"maxSurge": 1, "maxUnavailable": 0});
    let (ho, hn) = (hash_of(&ds("img:1")), hash_of(&d));
    let nodes = [node("n1"), node("n2")];
    let a = run(
        &d,
        &nodes,
        &[pod("a", "n1", &ho, true), pod("b", "n2", &ho, true)],
    );
    assert_eq!(created(&a).len(), 1, "one surge pod at a time");
    assert!(deleted(&a).is_empty());
    let pods = vec![
        pod("a", "n1", &ho, true),
        pod("a2", "n1", &hn, false),
        pod("b", "n2", &ho, true),
    ];
    let a = run(&d, &nodes, &pods);
    assert!(
        created(&a).is_empty() && deleted(&a).is_empty(),
        "the surge slot is taken until a2 is ready"
    );
    let pods = vec![
        pod("a", "n1", &ho, true),
        pod("a2", "n1", &hn, true),
        pod("b", "n2", &ho, true),
    ];
    let a = run(&d, &nodes, &pods);
    assert_eq!(deleted(&a), ["/core/pods/kube-system/a"]);
}

#[test]
fn on_delete_leaves_old_pods_alone() {
    let mut d = ds("img:2");
    d["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
    let a = run(
        &d,
        &[node("n1")],
        &[pod("a", "n1", &hash_of(&ds("img:1")), true)],
    );
    assert!(deleted(&a).is_empty() && created(&a).is_empty());
    assert!(status(&a).get("updatedNumberScheduled").is_none());
}

/// Drives a rollout on a simulated cluster: created pods become ready on the next step (or never, on a
/// stuck node), deleted pods vanish after one step. On the nodes that are not stuck, availability never
/// drops below their count minus maxUnavailable, no node ever holds more than 1 + maxSurge pods, and
/// without a stuck node the rollout reaches every node. (A stuck new pod holds its slot of the budget and
/// stalls the rollout, as in Kubernetes.)
fn simulate(nodes: usize, max_unavailable: i64, surge: i64, stuck: Option<usize>, seed: u64) {
    let mut d = ds("img:2");
    d["spec"]["updateStrategy"]["rollingUpdate"] =
        json!({"maxSurge": surge, "maxUnavailable": max_unavailable});
    let ho = hash_of(&ds("img:1"));
    let hn = hash_of(&d);
    let names: Vec<String> = (0..nodes).map(|i| format!("n{i}")).collect();
    let cluster: Vec<Node> = names.iter().map(|n| node(n)).collect();
    let mut sim = Sim::new(seed, now());
    for n in &names {
        let p = pod(&format!("old-{n}"), n, &ho, true);
        sim.put(p.key, (*p.value).clone());
    }
    let budget = if surge == 0 && max_unavailable == 0 {
        1
    } else {
        max_unavailable
    };
    for _ in 0..(4 * nodes + 10) {
        let list = sim.cached("/core/pods/");
        let mut a = reconcile(
            "/apps/daemonsets/kube-system/agent",
            &d,
            &cluster,
            &list,
            now(),
            &mut sim.rng,
        );
        // Terminating pods vanish, new ones get ready (except on the stuck node).
        for p in list {
            if deleting(&p.value) {
                sim.remove(&p.key);
                continue;
            }
            let on_stuck = stuck.is_some_and(|s| pod_node(&p.value) == Some(names[s].as_str()));
            if !on_stuck {
                let mut v = (*p.value).clone();
                v["status"]["conditions"][0]["status"] = json!("True");
                sim.put(p.key, v);
            }
        }
        // The DaemonSet's own status is not simulated: only pod writes land.
        a.actions.retain(|act| match act {
            Action::Create { key, .. }
            | Action::Update { key, .. }
            | Action::Delete { key, .. } => key.starts_with("/core/pods/"),
            _ => false,
        });
        for act in &mut a.actions {
            match act {
                Action::Create { object, .. } => {
                    object["status"] = json!({"phase": "Running", "conditions": [
                        {"type": "Ready", "status": "False", "lastTransitionTime": "2026-01-01T00:00:00Z"}]});
                }
                // The kubelet bumped the pod's revision above; the deletion was decided on what it read.
                Action::Update { key, revision, .. } => {
                    *revision = super::revision(&sim.get(key));
                }
                _ => {}
            }
        }
        sim.apply(a);
        let pods = sim.values("/core/pods/");
        let healthy_nodes = nodes - usize::from(stuck.is_some());
        let available = names
            .iter()
            .enumerate()
            .filter(|(i, n)| {
                Some(*i) != stuck
                    && pods
                        .iter()
                        .any(|p| pod_node(p) == Some(n.as_str()) && !deleting(p) && pod_ready(p))
            })
            .count() as i64;
        assert!(
            available >= healthy_nodes as i64 - budget,
            "availability {available} of {healthy_nodes} under budget {budget}"
        );
        for n in &names {
            let on = pods
                .iter()
                .filter(|p| pod_node(p) == Some(n.as_str()))
                .count() as i64;
            assert!(on <= 1 + surge, "{n} runs {on} pods");
        }
    }
    if stuck.is_some() {
        return;
    }
    for n in &names {
        let updated = sim.values("/core/pods/").iter().any(|p| {
            pod_node(p) == Some(n.as_str())
                && labels(p).get(HASH_LABEL) == Some(&hn)
                && !deleting(p)
        });
        assert!(updated, "node {n} not rolled");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn rollouts_finish_within_their_budget(
        nodes in 1usize..8,
        max_unavailable in 0i64..3,
        surge in 0i64..2,
        stuck in proptest::option::of(0usize..8),
        seed in any::<u64>(),
    ) {
        let max_unavailable = if surge > 0 { 0 } else { max_unavailable };
        simulate(nodes, max_unavailable, surge, stuck.filter(|s| *s < nodes), seed);
    }
}

#[test]
fn a_daemonset_whose_spec_does_not_parse_is_skipped() {
    // Hostile stored objects: the typed read refuses a wrong JSON type, and the DaemonSet is left alone.
    for (field, bad) in [
        ("minReadySeconds", json!(1.5)),
        ("updateStrategy", json!("OnDelete")),
        (
            "updateStrategy",
            json!({"rollingUpdate": {"maxUnavailable": true}}),
        ),
    ] {
        let mut d = ds("a");
        d["spec"][field] = bad;
        assert!(run(&d, &[node("n1")], &[]).is_empty(), "{field}");
    }
    let mut d = ds("a");
    d["spec"]["minReadySeconds"] = json!(-5);
    assert_eq!(
        created(&run(&d, &[node("n1")], &[])).len(),
        1,
        "negative reads as 0"
    );
}
