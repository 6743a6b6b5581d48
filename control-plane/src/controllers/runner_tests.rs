//! Runner tests over `MemStore` with paused tokio time and a fake kubelet task that runs bound pods,
//! removes deleted ones and sends heartbeats for the nodes it keeps alive.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::context::failure_id;
use super::object::*;
use super::*;
use crate::informer::{Caches, Informer};
use crate::store::{self, Batch, Consistency, MemStore, Object, Op, Precondition};
use apimachinery::time::{parse_rfc3339, rfc3339};

struct Cluster {
    store: Arc<MemStore>,
    alive: Arc<Mutex<HashSet<String>>>,
    clock: Arc<TokioClock>,
    shutdown: CancellationToken,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn node(name: &str, now: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "uid": format!("uid-{name}"), "creationTimestamp": now,
                     "labels": {"kubernetes.io/hostname": name}},
        "spec": {},
        "status": {
            "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": now}],
        },
    })
}

async fn put(
    store: &MemStore,
    key: &str,
    v: Value,
    pre: Precondition,
) -> store::Result<store::Committed> {
    store
        .commit(Batch::one(Op::Put {
            key: key.into(),
            value: v,
            precondition: pre,
        }))
        .await
}

async fn get(store: &MemStore, key: &str) -> Option<Object> {
    store.get(key, Consistency::Linearizable).await.unwrap()
}

async fn list(store: &MemStore, prefix: &str) -> Vec<Value> {
    store
        .list(prefix, Consistency::Linearizable)
        .await
        .unwrap()
        .0
        .into_iter()
        .map(|o| o.value)
        .collect()
}

/// The fake kubelet: every 100 ms, runs bound pods of live nodes, removes their deleted pods, and every
/// second refreshes the Ready heartbeat of live nodes.
async fn kubelet(
    store: Arc<MemStore>,
    alive: Arc<Mutex<HashSet<String>>>,
    clock: Arc<TokioClock>,
    shutdown: CancellationToken,
) {
    let mut tick = 0u64;
    let mut ip = 2u32;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        tick += 1;
        let now = rfc3339(clock.now());
        let live: HashSet<String> = alive.lock().unwrap().clone();
        if tick.is_multiple_of(10) {
            for n in &live {
                let key = store::key("core", "nodes", "", n);
                if let Some(o) = get(&store, &key).await {
                    let mut v = o.value;
                    v["status"]["conditions"] = json!([{"type": "Ready", "status": "True", "lastHeartbeatTime": now,
                                                         "reason": "KubeletReady"}]);
                    let _ = put(&store, &key, v, Precondition::Revision(o.revision)).await;
                }
            }
        }
        for o in store
            .list("/core/pods/", Consistency::Linearizable)
            .await
            .unwrap()
            .0
        {
            let Some(n) = pod_node(&o.value) else {
                continue;
            };
            if !live.contains(n) {
                continue;
            }
            if deleting(&o.value) {
                let _ = store
                    .commit(Batch::one(Op::Delete {
                        key: o.key.clone(),
                        precondition: Precondition::Revision(o.revision),
                    }))
                    .await;
            } else if pod_phase(&o.value) != "Running" {
                let mut v = o.value.clone();
                ip += 1;
                v["status"]["phase"] = json!("Running");
                v["status"]["podIP"] = json!(format!("10.244.{}.{}", ip / 250, ip % 250));
                let conds = v["status"]["conditions"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let mut conds: Vec<Value> =
                    conds.into_iter().filter(|c| c["type"] != "Ready").collect();
                conds.push(json!({"type": "Ready", "status": "True", "lastTransitionTime": now}));
                v["status"]["conditions"] = json!(conds);
                let _ = put(&store, &o.key, v, Precondition::Revision(o.revision)).await;
            }
        }
    }
}

async fn start(nodes: &[&str]) -> Cluster {
    let store = Arc::new(MemStore::new());
    let clock = Arc::new(TokioClock::starting_at(
        parse_rfc3339("2026-01-01T00:00:00Z").unwrap(),
    ));
    let now = rfc3339(clock.now());
    for n in nodes {
        put(
            &store,
            &store::key("core", "nodes", "", n),
            node(n, &now),
            Precondition::Absent,
        )
        .await
        .unwrap();
    }
    let alive = Arc::new(Mutex::new(
        nodes.iter().map(|s| s.to_string()).collect::<HashSet<_>>(),
    ));
    let shutdown = CancellationToken::new();
    let config = ControllerConfig {
        clock: clock.clone(),
        seed: Some(42),
        ..ControllerConfig::default()
    };
    tokio::spawn(run(store.clone(), config, shutdown.clone()));
    tokio::spawn(kubelet(
        store.clone(),
        alive.clone(),
        clock.clone(),
        shutdown.clone(),
    ));
    Cluster {
        store,
        alive,
        clock,
        shutdown,
    }
}

fn deployment(name: &str, replicas: i64, image: &str, strategy: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"), "generation": 1,
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {
            "replicas": replicas, "strategy": strategy,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "c", "image": image, "ports": [{"name": "http", "containerPort": 8080}],
                                                  "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}},
        },
    })
}

/// Waits (in virtual time) until `f` holds, for at most `secs` seconds.
async fn eventually<F, Fut>(secs: u64, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..secs * 10 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn edit(store: &MemStore, key: &str, f: impl Fn(&mut Value)) {
    loop {
        let o = get(store, key).await.unwrap();
        let mut v = o.value;
        f(&mut v);
        v["metadata"]["generation"] = json!(generation(&v) + 1);
        if put(store, key, v, Precondition::Revision(o.revision))
            .await
            .is_ok()
        {
            return;
        }
    }
}

async fn rolled_out(store: &MemStore, key: &str) -> bool {
    let Some(o) = get(store, key).await else {
        return false;
    };
    let d = o.value;
    let st = &d["status"];
    let g = |f: &str| st.get(f).and_then(Value::as_i64).unwrap_or(-1);
    let want = d["spec"]["replicas"].as_i64().unwrap();
    g("observedGeneration") >= generation(&d)
        && g("updatedReplicas") == want
        && g("replicas") == want
        && g("availableReplicas") == want
}

async fn running_pods(store: &MemStore, app: &str) -> Vec<Value> {
    list(store, "/core/pods/default/")
        .await
        .into_iter()
        .filter(|p| {
            labels(p).get("app").map(String::as_str) == Some(app) && pod_active(p) && pod_ready(p)
        })
        .collect()
}

const DKEY: &str = "/apps/deployments/default/web";

#[tokio::test(start_paused = true)]
async fn deployment_reaches_desired_replicas() {
    let c = start(&["n1", "n2"]).await;
    put(
        &c.store,
        DKEY,
        deployment("web", 3, "a", json!({})),
        Precondition::Absent,
    )
    .await
    .unwrap();
    eventually(30, "rollout", || rolled_out(&c.store, DKEY)).await;
    let pods = running_pods(&c.store, "web").await;
    assert_eq!(pods.len(), 3);
    let nodes: HashSet<&str> = pods.iter().filter_map(pod_node).collect();
    assert_eq!(nodes.len(), 2, "replicas spread over both nodes");
    for ns in ["default", "kube-system", "kube-public"] {
        assert!(
            get(&c.store, &store::key("core", "namespaces", "", ns))
                .await
                .is_some(),
            "{ns}"
        );
    }
    let events = list(&c.store, "/core/events/default/").await;
    let reasons: HashSet<&str> = events.iter().filter_map(|e| e["reason"].as_str()).collect();
    for r in ["ScalingReplicaSet", "SuccessfulCreate", "Scheduled"] {
        assert!(reasons.contains(r), "missing {r} in {reasons:?}");
    }
    let d = get(&c.store, DKEY).await.unwrap().value;
    assert_eq!(annotation(&d, deployment::REVISION), Some("1"));
    let prog = condition(&d, "Progressing").unwrap();
    assert_eq!(prog["reason"], "NewReplicaSetAvailable");
}

#[tokio::test(start_paused = true)]
async fn rollout_without_unavailability_then_undo() {
    let c = start(&["n1", "n2"]).await;
    let strategy =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}});
    put(
        &c.store,
        DKEY,
        deployment("web", 4, "a", strategy),
        Precondition::Absent,
    )
    .await
    .unwrap();
    eventually(30, "first rollout", || rolled_out(&c.store, DKEY)).await;
    let first_rs = list(&c.store, "/apps/replicasets/default/").await.remove(0);
    edit(&c.store, DKEY, |d| {
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("b")
    })
    .await;
    // Sample availability while the rollout runs: it never drops below 4.
    let mut min_ready = usize::MAX;
    for _ in 0..600 {
        min_ready = min_ready.min(running_pods(&c.store, "web").await.len());
        if rolled_out(&c.store, DKEY).await
            && list(&c.store, "/core/pods/default/").await.len() == 4
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(rolled_out(&c.store, DKEY).await, "second rollout");
    assert!(min_ready >= 4, "availability dropped to {min_ready}");
    let rss = list(&c.store, "/apps/replicasets/default/").await;
    assert_eq!(rss.len(), 2);
    // kubectl rollout undo: the previous RS's template without its hash label.
    let mut tmpl = first_rs["spec"]["template"].clone();
    tmpl["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove(deployment::HASH_LABEL);
    edit(&c.store, DKEY, |d| d["spec"]["template"] = tmpl.clone()).await;
    eventually(60, "undo", || async {
        rolled_out(&c.store, DKEY).await
            && running_pods(&c.store, "web")
                .await
                .iter()
                .all(|p| controller_uid(p) == Some(uid(&first_rs)))
    })
    .await;
    let rss = list(&c.store, "/apps/replicasets/default/").await;
    assert_eq!(rss.len(), 2, "undo re-used the old replica set");
    let reused = rss.iter().find(|r| uid(r) == uid(&first_rs)).unwrap();
    assert_eq!(annotation(reused, deployment::REVISION), Some("3"));
}

#[tokio::test(start_paused = true)]
async fn lost_node_pods_are_replaced_elsewhere() {
    let c = start(&["n1", "n2"]).await;
    put(
        &c.store,
        DKEY,
        deployment("web", 4, "a", json!({})),
        Precondition::Absent,
    )
    .await
    .unwrap();
    eventually(30, "rollout", || rolled_out(&c.store, DKEY)).await;
    assert!(running_pods(&c.store, "web")
        .await
        .iter()
        .any(|p| pod_node(p) == Some("n1")));
    c.alive.lock().unwrap().remove("n1");
    let lost_at = c.clock.now();
    eventually(60, "pods replaced on n2", || async {
        let pods = list(&c.store, "/core/pods/default/").await;
        pods.len() == 4
            && pods
                .iter()
                .all(|p| pod_node(p) == Some("n2") && pod_ready(p))
    })
    .await;
    let took = c.clock.now().duration_since(lost_at).unwrap();
    // Grace (10 s) + eviction (5 s), plus heartbeat and loop granularity.
    assert!(
        took >= Duration::from_secs(14) && took < Duration::from_secs(25),
        "took {took:?}"
    );
    let n1 = get(&c.store, "/core/nodes//n1").await.unwrap().value;
    assert_eq!(condition(&n1, "Ready").unwrap()["status"], "Unknown");
    assert_eq!(n1["spec"]["taints"][0]["key"], node_lifecycle::UNREACHABLE);
    assert!(rolled_out(&c.store, DKEY).await);
    // The node comes back: the taint goes.
    c.alive.lock().unwrap().insert("n1".into());
    eventually(10, "taint removed", || async {
        get(&c.store, "/core/nodes//n1").await.unwrap().value["spec"]
            .get("taints")
            .is_none()
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn unschedulable_pod_is_reported_then_placed() {
    let c = start(&["n1", "n2"]).await;
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "big", "namespace": "default", "uid": "big-uid"},
        "spec": {"containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": "6"}}}]},
    });
    put(
        &c.store,
        "/core/pods/default/big",
        pod,
        Precondition::Absent,
    )
    .await
    .unwrap();
    eventually(10, "unschedulable condition", || async {
        let p = get(&c.store, "/core/pods/default/big").await.unwrap().value;
        condition(&p, "PodScheduled").is_some_and(|c| {
            c["status"] == "False"
                && c["reason"] == "Unschedulable"
                && c["message"] == "0/2 nodes are available: 2 Insufficient cpu."
        })
    })
    .await;
    let events = list(&c.store, "/core/events/default/").await;
    let failed = events
        .iter()
        .find(|e| e["reason"] == "FailedScheduling")
        .expect("FailedScheduling event");
    assert_eq!(failed["type"], "Warning");
    assert_eq!(failed["involvedObject"]["name"], "big");
    let mut big = node("n3", &rfc3339(c.clock.now()));
    big["status"]["allocatable"]["cpu"] = json!("8");
    put(&c.store, "/core/nodes//n3", big, Precondition::Absent)
        .await
        .unwrap();
    c.alive.lock().unwrap().insert("n3".into());
    eventually(10, "bound to n3", || async {
        pod_node(&get(&c.store, "/core/pods/default/big").await.unwrap().value) == Some("n3")
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn endpoints_follow_ready_pods_and_gc_collects() {
    let c = start(&["n1"]).await;
    put(
        &c.store,
        DKEY,
        deployment("web", 2, "a", json!({})),
        Precondition::Absent,
    )
    .await
    .unwrap();
    let svc = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default", "uid": "svc-uid"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    });
    put(
        &c.store,
        "/core/services/default/web",
        svc,
        Precondition::Absent,
    )
    .await
    .unwrap();
    eventually(30, "endpoints", || async {
        get(&c.store, "/core/endpoints/default/web")
            .await
            .is_some_and(|e| {
                e.value["subsets"][0]["addresses"]
                    .as_array()
                    .is_some_and(|a| a.len() == 2)
                    && e.value["subsets"][0]["ports"][0]["port"] == 8080
            })
    })
    .await;
    // Deleting the Deployment (background) takes its ReplicaSet and pods with it.
    c.store
        .commit(Batch::one(Op::Delete {
            key: DKEY.into(),
            precondition: Precondition::None,
        }))
        .await
        .unwrap();
    eventually(30, "garbage collected", || async {
        list(&c.store, "/apps/replicasets/").await.is_empty()
            && list(&c.store, "/core/pods/").await.is_empty()
    })
    .await;
    eventually(10, "endpoints emptied", || async {
        get(&c.store, "/core/endpoints/default/web")
            .await
            .is_some_and(|e| e.value.get("subsets").is_none())
    })
    .await;
    // Deleting the Service removes its Endpoints.
    c.store
        .commit(Batch::one(Op::Delete {
            key: "/core/services/default/web".into(),
            precondition: Precondition::None,
        }))
        .await
        .unwrap();
    eventually(10, "endpoints deleted", || async {
        get(&c.store, "/core/endpoints/default/web").await.is_none()
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn namespace_deletion_empties_then_removes_it() {
    let c = start(&["n1"]).await;
    eventually(5, "default namespaces", || async {
        get(&c.store, "/core/namespaces//kube-system")
            .await
            .is_some()
    })
    .await;
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team", "uid": "team-uid"},
                    "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}});
    put(&c.store, "/core/namespaces//team", ns, Precondition::Absent)
        .await
        .unwrap();
    put(
        &c.store,
        "/core/configmaps/team/cfg",
        json!({"metadata": {"name": "cfg", "namespace": "team"}}),
        Precondition::Absent,
    )
    .await
    .unwrap();
    let mut d = deployment("api", 1, "a", json!({}));
    d["metadata"]["namespace"] = json!("team");
    put(
        &c.store,
        "/apps/deployments/team/api",
        d,
        Precondition::Absent,
    )
    .await
    .unwrap();
    eventually(30, "pod running", || async {
        list(&c.store, "/core/pods/team/")
            .await
            .iter()
            .any(pod_ready)
    })
    .await;
    edit(&c.store, "/core/namespaces//team", |n| {
        n["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:30Z")
    })
    .await;
    eventually(30, "namespace gone", || async {
        get(&c.store, "/core/namespaces//team").await.is_none()
    })
    .await;
    assert!(list(&c.store, "/core/pods/team/").await.is_empty());
    assert!(get(&c.store, "/core/configmaps/team/cfg").await.is_none());
}

#[tokio::test(start_paused = true)]
async fn foreground_deletion_removes_dependents_first() {
    let c = start(&["n1"]).await;
    put(
        &c.store,
        DKEY,
        deployment("web", 2, "a", json!({})),
        Precondition::Absent,
    )
    .await
    .unwrap();
    eventually(30, "rollout", || rolled_out(&c.store, DKEY)).await;
    edit(&c.store, DKEY, |d| {
        d["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:01:00Z");
        d["metadata"]["finalizers"] = json!(["foregroundDeletion"]);
    })
    .await;
    // The Deployment is still there while any dependent exists, and goes last.
    let mut saw_owner_without_dependents = false;
    for _ in 0..300 {
        let owner = get(&c.store, DKEY).await.is_some();
        let deps = !list(&c.store, "/apps/replicasets/").await.is_empty()
            || !list(&c.store, "/core/pods/").await.is_empty();
        if !owner {
            assert!(!deps, "owner deleted before its dependents");
            break;
        }
        saw_owner_without_dependents |= !deps;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(get(&c.store, DKEY).await.is_none());
    let _ = saw_owner_without_dependents;
}

#[tokio::test(start_paused = true)]
async fn claim_is_pinned_to_its_first_node() {
    let c = start(&["n1", "n2"]).await;
    let pvc = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                     "metadata": {"name": "data", "namespace": "default", "uid": "pvc-uid"}, "spec": {}});
    put(
        &c.store,
        "/core/persistentvolumeclaims/default/data",
        pvc,
        Precondition::Absent,
    )
    .await
    .unwrap();
    let mut d = deployment("db", 1, "a", json!({"type": "Recreate"}));
    d["spec"]["template"]["spec"]["volumes"] =
        json!([{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]);
    put(
        &c.store,
        "/apps/deployments/default/db",
        d,
        Precondition::Absent,
    )
    .await
    .unwrap();
    eventually(30, "db running", || async {
        running_pods(&c.store, "db").await.len() == 1
    })
    .await;
    let first = running_pods(&c.store, "db").await.remove(0);
    let node = pod_node(&first).unwrap().to_string();
    let pvc = get(&c.store, "/core/persistentvolumeclaims/default/data")
        .await
        .unwrap()
        .value;
    assert_eq!(
        annotation(&pvc, crate::scheduler::PVC_NODE_ANNOTATION),
        Some(node.as_str())
    );
    // Load the claim's node so that, unpinned, replacements would prefer the other one.
    let filler = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "filler", "namespace": "default", "uid": "filler-uid"},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": "3"}}}]}});
    put(
        &c.store,
        "/core/pods/default/filler",
        filler,
        Precondition::Absent,
    )
    .await
    .unwrap();
    // The replacement of a deleted pod comes back to the claim's node.
    for _ in 0..3 {
        let pods = list(&c.store, "/core/pods/default/").await;
        let p = pods
            .iter()
            .find(|p| labels(p).get("app").map(String::as_str) == Some("db"))
            .unwrap();
        let key = format!("/core/pods/default/{}", name(p));
        c.store
            .commit(Batch::one(Op::Delete {
                key,
                precondition: Precondition::None,
            }))
            .await
            .unwrap();
        eventually(30, "replacement running", || async {
            running_pods(&c.store, "db").await.len() == 1
        })
        .await;
        assert_eq!(
            pod_node(&running_pods(&c.store, "db").await[0]),
            Some(node.as_str())
        );
    }
}

/// A controller whose reconcile panics on the Deployment named `bad` and annotates every other one.
struct Panicky {
    attempts: Arc<Mutex<Vec<String>>>,
}

impl Controller for Panicky {
    const COMPONENT: &'static str = "panicky-controller";

    fn triggers(caches: &Caches) -> Vec<Arc<Informer>> {
        vec![caches.deployments.clone()]
    }

    fn pass(&mut self, ctx: &Ctx) -> Vec<Actions> {
        ctx.caches
            .deployments
            .list()
            .into_iter()
            .map(|d| {
                ctx.reconcile_isolated("Deployment", &d.key, |_| {
                    self.attempts
                        .lock()
                        .unwrap()
                        .push(name(&d.value).to_string());
                    assert!(name(&d.value) != "bad", "reconcile of a bad object");
                    let mut out = Actions::default();
                    if d.value.pointer("/metadata/annotations/seen").is_none() {
                        let mut v = (*d.value).clone();
                        v["metadata"]["annotations"] = json!({"seen": "yes"});
                        out.push(Action::Update {
                            key: d.key.clone(),
                            object: v,
                            revision: d.revision,
                        });
                    }
                    out
                })
            })
            .filter(|a| !a.is_empty() || a.requeue_after.is_some())
            .collect()
    }
}

#[tokio::test(start_paused = true)]
async fn a_reconcile_that_panics_on_one_key_does_not_stop_the_others() {
    let store = Arc::new(MemStore::new());
    for n in ["a", "bad", "c"] {
        put(
            &store,
            &store::key("apps", "deployments", "default", n),
            deployment(n, 1, "x", json!({})),
            Precondition::Absent,
        )
        .await
        .unwrap();
    }
    let shutdown = CancellationToken::new();
    let ctx = Ctx::new(
        store.clone(),
        ControllerConfig {
            seed: Some(1),
            ..ControllerConfig::default()
        },
    );
    for i in ctx.caches.all() {
        tokio::spawn(i.clone().run(store.clone(), shutdown.clone()));
    }
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let task = tokio::spawn(drive(
        Panicky {
            attempts: attempts.clone(),
        },
        ctx.clone(),
        shutdown.clone(),
    ));
    // The good objects are reconciled and written in spite of the bad one.
    eventually(5, "both good deployments annotated", || async {
        let mut seen = 0;
        for n in ["a", "c"] {
            let key = store::key("apps", "deployments", "default", n);
            if get(&store, &key)
                .await
                .is_some_and(|o| o.value.pointer("/metadata/annotations/seen").is_some())
            {
                seen += 1;
            }
        }
        seen == 2
    })
    .await;
    // Later changes to a good object are still reconciled: the runner is alive.
    let c = store::key("apps", "deployments", "default", "c");
    edit(&store, &c, |v| {
        v["metadata"]["annotations"] = json!({});
    })
    .await;
    eventually(5, "the edited deployment annotated again", || async {
        get(&store, &c)
            .await
            .is_some_and(|o| o.value.pointer("/metadata/annotations/seen").is_some())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!task.is_finished(), "the runner died with its bad object");
    // The bad key is retried, but with back-off: over ~4 s a 5 ms doubling delay allows about ten
    // attempts, where the passes alone (every change and requeue) would have tried far more often.
    let bad = attempts
        .lock()
        .unwrap()
        .iter()
        .filter(|n| *n == "bad")
        .count();
    assert!((2..=12).contains(&bad), "bad object attempted {bad} times");
    let bad_key = store::key("apps", "deployments", "default", "bad");
    assert!(isolation::lock(&ctx.failures).count(&failure_id("Deployment", &bad_key)) >= 2);
    // The shared RNG was held across the panicking reconcile and is still usable.
    ctx.with_rng(|_| ());
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn nodes_whose_status_is_not_an_object_are_skipped() {
    let c = start(&["n1"]).await;
    let mut odd = Vec::new();
    for (n, status) in [("scalar", json!("x")), ("list", json!([]))] {
        let mut v = node(n, "2026-01-01T00:00:00Z");
        v["status"] = status;
        let key = store::key("core", "nodes", "", n);
        let rev = put(&c.store, &key, v, Precondition::Absent)
            .await
            .unwrap()
            .revision;
        odd.push((key, rev));
    }
    put(
        &c.store,
        DKEY,
        deployment("web", 2, "a", json!({})),
        Precondition::Absent,
    )
    .await
    .unwrap();
    eventually(30, "rollout", || rolled_out(&c.store, DKEY)).await;
    let pods = running_pods(&c.store, "web").await;
    assert!(pods.iter().all(|p| pod_node(p) == Some("n1")));
    // Well past the node grace period: the lifecycle controller left them alone.
    tokio::time::sleep(Duration::from_secs(15)).await;
    for (key, rev) in odd {
        assert_eq!(get(&c.store, &key).await.unwrap().revision, rev, "{key}");
    }
}

/// A Deployment whose numbers once panicked the ReplicaSet controller (minReadySeconds added to the
/// clock) no longer stops the others: a normal Deployment next to it still gets its pods.
#[tokio::test(start_paused = true)]
async fn a_deployment_that_once_crashed_a_controller_does_not_stop_the_others() {
    let c = start(&["n1", "n2"]).await;
    let mut huge = deployment("huge", 2, "a", json!({}));
    huge["spec"]["minReadySeconds"] = json!(i64::MAX);
    huge["spec"]["progressDeadlineSeconds"] = json!(i64::MAX);
    huge["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = json!(i64::MAX);
    put(
        &c.store,
        "/apps/deployments/default/huge",
        huge,
        Precondition::Absent,
    )
    .await
    .unwrap();
    put(
        &c.store,
        DKEY,
        deployment("web", 3, "a", json!({})),
        Precondition::Absent,
    )
    .await
    .unwrap();
    eventually(30, "rollout of web", || rolled_out(&c.store, DKEY)).await;
    assert_eq!(running_pods(&c.store, "web").await.len(), 3);
    // The odd one runs its pods too; they are just never counted available.
    eventually(30, "huge's pods running", || async {
        running_pods(&c.store, "huge").await.len() == 2
    })
    .await;
    let d = get(&c.store, "/apps/deployments/default/huge")
        .await
        .unwrap()
        .value;
    assert_eq!(
        d["status"]["availableReplicas"].as_i64().unwrap_or(0),
        0,
        "{d}"
    );
}

/// A Deployment whose template its namespace's Pod Security level forbids (written past the API, as one
/// created before the namespace was made stricter): no pod is created, the ReplicaSet reports
/// `FailedCreate` with the API server's words, and the controllers neither panic nor spin.
#[tokio::test(start_paused = true)]
async fn pods_the_namespace_forbids_are_not_created_and_reported() {
    let c = start(&["n1"]).await;
    let mut d = deployment("web", 2, "a", json!({}));
    d["spec"]["template"]["spec"]["hostNetwork"] = json!(true);
    put(&c.store, DKEY, d, Precondition::Absent).await.unwrap();
    let failed = || async {
        list(&c.store, "/core/events/default/")
            .await
            .iter()
            .any(|e| e["reason"] == "FailedCreate")
    };
    eventually(30, "FailedCreate", failed).await;
    let events = list(&c.store, "/core/events/default/").await;
    let e = events
        .iter()
        .find(|e| e["reason"] == "FailedCreate")
        .unwrap();
    assert_eq!(e["involvedObject"]["kind"], "ReplicaSet");
    assert!(
        e["message"].as_str().unwrap().ends_with(
            "is forbidden: violates PodSecurity \"baseline:latest\": host namespaces (hostNetwork=true)"
        ),
        "{e}"
    );
    assert!(!events
        .iter()
        .any(|e| e["reason"] == "SuccessfulCreate" && e["involvedObject"]["kind"] == "ReplicaSet"));
    // A minute of virtual time later: still no pod, and the refusals aggregate instead of piling up.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(list(&c.store, "/core/pods/default/").await.is_empty());
    let failed: Vec<Value> = list(&c.store, "/core/events/default/")
        .await
        .into_iter()
        .filter(|e| e["reason"] == "FailedCreate")
        .collect();
    assert!(failed.len() <= 2, "{} FailedCreate events", failed.len());

    // Labelled privileged, the namespace admits the pods.
    edit(&c.store, "/core/namespaces//default", |ns| {
        ns["metadata"]["labels"] = json!({"pod-security.kubernetes.io/enforce": "privileged"});
    })
    .await;
    // The owner retries at its next pass: at the latest after the resync interval.
    eventually(90, "pods admitted", || async {
        list(&c.store, "/core/pods/default/").await.len() == 2
    })
    .await;
}
