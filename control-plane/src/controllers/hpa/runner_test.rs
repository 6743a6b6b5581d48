//! The HPA controller driven by [`super::super::run`] over `MemStore` with paused tokio time, a fake
//! kubelet and a table-backed [`MetricsSource`]: a load spread over the running pods.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::super::object::{deleting, pod_node, pod_phase};
use super::super::{run, Clock, ControllerConfig, TokioClock};
use crate::metrics::{ContainerUsage, MetricsError, MetricsSource, NodeUsage, PodUsage};
use crate::store::{self, Batch, Consistency, MemStore, ObjectStore, Op, Precondition};
use apimachinery::time::{parse_rfc3339, rfc3339};

/// A total CPU load (millicores) shared evenly by the namespace's running pods.
struct Load {
    store: Arc<MemStore>,
    clock: Arc<TokioClock>,
    millicores: AtomicU64,
}

impl MetricsSource for Load {
    fn pods<'a>(
        &'a self,
        namespace: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<PodUsage>, MetricsError>> {
        Box::pin(async move {
            let prefix = store::prefix("core", "pods", namespace);
            let (pods, _) = self
                .store
                .list(&prefix, Consistency::Linearizable)
                .await
                .map_err(|e| MetricsError(e.to_string()))?;
            let running: Vec<_> = pods
                .into_iter()
                .filter(|p| pod_phase(&p.value) == "Running" && !deleting(&p.value))
                .collect();
            let each =
                self.millicores.load(Ordering::SeqCst) * 1_000_000 / running.len().max(1) as u64;
            Ok(running
                .iter()
                .map(|p| PodUsage {
                    namespace: "default".into(),
                    name: super::super::object::name(&p.value).to_string(),
                    timestamp: self.clock.now(),
                    window: Duration::from_secs(15),
                    containers: vec![ContainerUsage {
                        name: "c".into(),
                        cpu_nanocores: each,
                        memory_bytes: 1 << 20,
                    }],
                })
                .collect())
        })
    }

    fn nodes(&self) -> BoxFuture<'_, Result<Vec<NodeUsage>, MetricsError>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

async fn put(store: &MemStore, key: &str, v: Value) {
    store
        .commit(Batch::one(Op::Put {
            key: key.into(),
            value: v,
            precondition: Precondition::None,
        }))
        .await
        .unwrap();
}

/// Runs bound pods (Ready, with a start time), removes deleted ones, keeps the node's heartbeat fresh.
async fn kubelet(store: Arc<MemStore>, clock: Arc<TokioClock>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        let now = rfc3339(clock.now());
        let key = store::key("core", "nodes", "", "n1");
        put(&store, &key, node(&now)).await;
        let (pods, _) = store
            .list("/core/pods/", Consistency::Linearizable)
            .await
            .unwrap();
        for o in pods {
            if pod_node(&o.value).is_none() {
                continue;
            }
            let op = if deleting(&o.value) {
                Op::Delete {
                    key: o.key.clone(),
                    precondition: Precondition::Revision(o.revision),
                }
            } else if pod_phase(&o.value) != "Running" {
                let mut v = o.value.clone();
                v["status"]["phase"] = json!("Running");
                v["status"]["startTime"] = json!(now);
                v["status"]["podIP"] = json!("10.244.0.9");
                v["status"]["conditions"] =
                    json!([{"type": "Ready", "status": "True", "lastTransitionTime": now}]);
                Op::Put {
                    key: o.key.clone(),
                    value: v,
                    precondition: Precondition::Revision(o.revision),
                }
            } else {
                continue;
            };
            let _ = store.commit(Batch::one(op)).await;
        }
    }
}

fn node(now: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "n1", "uid": "uid-n1", "creationTimestamp": "2026-01-01T00:00:00Z",
                     "labels": {"kubernetes.io/hostname": "n1"}},
        "spec": {},
        "status": {"allocatable": {"cpu": "16", "memory": "32Gi", "pods": "110"},
                   "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": now}]},
    })
}

async fn get(store: &MemStore, key: &str) -> Value {
    store
        .get(key, Consistency::Linearizable)
        .await
        .unwrap()
        .map(|o| o.value)
        .unwrap_or(Value::Null)
}

async fn replicas(store: &MemStore) -> i64 {
    get(store, "/apps/deployments/default/web").await["spec"]["replicas"]
        .as_i64()
        .unwrap_or(-1)
}

/// Steps virtual time up to `secs` seconds until the Deployment asks for `want` replicas.
async fn eventually(store: &MemStore, secs: u64, what: &str, want: i64) {
    for _ in 0..secs * 10 {
        if replicas(store).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(start_paused = true)]
async fn high_cpu_scales_up_and_low_cpu_scales_back_after_the_window() {
    let store = Arc::new(MemStore::new());
    let clock = Arc::new(TokioClock::starting_at(
        parse_rfc3339("2026-01-01T00:00:00Z").unwrap(),
    ));
    let load = Arc::new(Load {
        store: store.clone(),
        clock: clock.clone(),
        millicores: AtomicU64::new(200),
    });
    let shutdown = CancellationToken::new();
    let _guard = shutdown.clone().drop_guard();
    put(&store, "/core/nodes//n1", node(&rfc3339(clock.now()))).await;
    let config = ControllerConfig {
        clock: clock.clone(),
        seed: Some(7),
        metrics: Some(load.clone()),
        ..ControllerConfig::default()
    };
    tokio::spawn(run(store.clone(), config, shutdown.clone()));
    tokio::spawn(kubelet(store.clone(), clock.clone(), shutdown.clone()));
    put(&store, "/apps/deployments/default/web", json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "uid": "uid-web", "generation": 1,
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "a",
                                                       "resources": {"requests": {"cpu": "100m"}}}]}}},
    }))
    .await;
    // 200m on one pod requesting 100m: 200 % of a 50 % target asks for 4.
    put(&store, "/autoscaling/horizontalpodautoscalers/default/web", json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "default", "uid": "uid-hpa", "generation": 1},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                 "minReplicas": 1, "maxReplicas": 10,
                 "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                              "target": {"type": "Utilization", "averageUtilization": 50}}}]},
    }))
    .await;
    eventually(&store, 30, "scale up to 4", 4).await;
    let hpa = get(&store, "/autoscaling/horizontalpodautoscalers/default/web").await;
    assert_eq!(hpa["status"]["desiredReplicas"], 4, "{hpa}");
    assert!(hpa["status"]["lastScaleTime"].is_string());
    let (events, _) = store
        .list("/core/events/default/", Consistency::Linearizable)
        .await
        .unwrap();
    assert!(
        events.iter().any(|e| e.value["reason"] == "SuccessfulRescale"
            && e.value["message"]
                == "New size: 4; reason: cpu resource utilization (percentage of request) above target"
            && e.value["source"]["component"] == "horizontal-pod-autoscaler"),
        "no SuccessfulRescale event"
    );
    // Spread over four pods the load is at target: the count holds.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(replicas(&store).await, 4);

    // Idle: the scale down waits out the 300 s stabilization window, then goes to 1 at once.
    load.millicores.store(4, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(240)).await;
    assert_eq!(replicas(&store).await, 4, "scaled down inside the window");
    eventually(&store, 120, "scale down to 1", 1).await;
    let hpa = get(&store, "/autoscaling/horizontalpodautoscalers/default/web").await;
    assert_eq!(hpa["status"]["desiredReplicas"], 1, "{hpa}");
}
