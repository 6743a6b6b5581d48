//! Scheduler throughput measurements with simulated nodes (like kubemark/KWOK): the pure scheduler alone,
//! and binding through any [`ObjectStore`] with the real scheduler runner.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::context::ControllerConfig;
use super::scheduling::{run_with_stats, Stats};
use crate::scheduler::{schedule_batch, ClusterView, Pod};
use crate::store::{key, Batch, ObjectStore, Op, Precondition};

/// One measurement.
#[derive(Debug, Clone)]
pub struct Report {
    /// Simulated nodes.
    pub nodes: usize,
    /// Pods placed.
    pub pods: usize,
    /// Pods that could not be placed.
    pub unschedulable: usize,
    /// Time spent placing (and, through a store, committing).
    pub elapsed: Duration,
    /// Batches committed (store runs only).
    pub batches: u64,
    /// Batches rejected by a precondition (store runs only).
    pub conflicts: u64,
    /// Time until the first batch committed: the runner's initial list and view build (store runs only).
    pub startup: Duration,
}

impl Report {
    /// Placed pods per second.
    pub fn pods_per_sec(&self) -> f64 {
        self.pods as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Pods per second after start-up (`startup` ends when the first batch of `first_batch` pods
    /// committed), i.e. without the initial list and view build.
    pub fn steady_pods_per_sec(&self, first_batch: usize) -> f64 {
        self.pods.saturating_sub(first_batch) as f64
            / (self.elapsed - self.startup).as_secs_f64().max(1e-9)
    }
}

/// A simulated node: 32 CPUs, 128 GiB, 110 pods, Ready, with a zone label.
pub fn sim_node(i: usize) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": format!("node-{i:05}"), "uid": format!("node-uid-{i}"),
                     "labels": {"kubernetes.io/hostname": format!("node-{i:05}"), "topology.kubernetes.io/zone": format!("zone-{}", i % 3)}},
        "spec": {},
        "status": {
            "capacity": {"cpu": "32", "memory": "128Gi", "pods": "110"},
            "allocatable": {"cpu": "32", "memory": "128Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    })
}

/// A simulated pending pod of one of 1,000 ReplicaSets, requesting 100m CPU and 128 MiB.
pub fn sim_pod(i: usize) -> Value {
    let owner = i % 1000;
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("pod-{i:06}"), "namespace": "bench", "uid": format!("pod-uid-{i}"),
                     "labels": {"app": format!("app-{owner}")},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("rs-{owner}"),
                                          "uid": format!("rs-uid-{owner}"), "controller": true}]},
        "spec": {"containers": [{"name": "c", "image": "pause",
                                 "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]},
        "status": {"phase": "Pending"},
    })
}

/// Places `pods` pods on `nodes` nodes with the pure scheduler (batches of 500, as the runner does).
/// Parsing pods is counted, building the node view is not.
pub fn pure_throughput(nodes: usize, pods: usize) -> Report {
    let mut view = ClusterView::new();
    for i in 0..nodes {
        view.upsert_node_json(&sim_node(i));
    }
    let objects: Vec<Value> = (0..pods).map(sim_pod).collect();
    let start = Instant::now();
    let mut unschedulable = 0;
    for chunk in objects.chunks(500) {
        let batch: Vec<Pod> = chunk.iter().map(Pod::from_json).collect();
        unschedulable += schedule_batch(&mut view, batch)
            .iter()
            .filter(|(_, r)| r.is_err())
            .count();
    }
    Report {
        nodes,
        pods: pods - unschedulable,
        unschedulable,
        elapsed: start.elapsed(),
        batches: 0,
        conflicts: 0,
        startup: Duration::ZERO,
    }
}

async fn put_all(store: &dyn ObjectStore, items: Vec<(String, Value)>) -> crate::store::Result<()> {
    for chunk in items.chunks(1000) {
        let ops = chunk
            .iter()
            .map(|(k, v)| Op::Put {
                key: k.clone(),
                value: v.clone(),
                precondition: Precondition::None,
            })
            .collect();
        store.commit(Batch { ops }).await?;
    }
    Ok(())
}

/// Loads `nodes` simulated nodes and `pods` pending pods into `store`, then runs the scheduler runner
/// until every pod is bound (or `limit` passes) and measures bind throughput: pods bound per second of
/// runner time, each batch committed through the store.
///
/// # Errors
/// The store's error while loading the objects.
pub async fn bind_throughput(
    store: Arc<dyn ObjectStore>,
    nodes: usize,
    pods: usize,
    mut config: ControllerConfig,
    limit: Duration,
) -> crate::store::Result<Report> {
    put_all(
        &*store,
        (0..nodes)
            .map(|i| {
                (
                    key("core", "nodes", "", &format!("node-{i:05}")),
                    sim_node(i),
                )
            })
            .collect(),
    )
    .await?;
    put_all(
        &*store,
        (0..pods)
            .map(|i| {
                (
                    key("core", "pods", "bench", &format!("pod-{i:06}")),
                    sim_pod(i),
                )
            })
            .collect(),
    )
    .await?;
    config.scheduled_events = false;
    let (tx, mut rx) = tokio::sync::watch::channel(Stats::default());
    let shutdown = CancellationToken::new();
    let start = Instant::now();
    let task = tokio::spawn(run_with_stats(
        store.clone(),
        config,
        shutdown.clone(),
        Some(tx),
    ));
    let deadline = tokio::time::sleep(limit);
    tokio::pin!(deadline);
    let mut startup = None;
    loop {
        if startup.is_none() && rx.borrow().batches > 0 {
            startup = Some(start.elapsed());
        }
        if rx.borrow().bound as usize >= pods {
            break;
        }
        tokio::select! {
            _ = &mut deadline => break,
            r = rx.changed() => if r.is_err() { break },
        }
    }
    let elapsed = start.elapsed();
    let stats = rx.borrow().clone();
    shutdown.cancel();
    let _ = task.await;
    Ok(Report {
        nodes,
        pods: stats.bound as usize,
        unschedulable: pods.saturating_sub(stats.bound as usize),
        elapsed,
        batches: stats.batches,
        conflicts: stats.conflicts,
        startup: startup.unwrap_or(elapsed),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Consistency, MemStore};

    #[test]
    fn pure_places_everything_it_can() {
        let r = pure_throughput(10, 500);
        assert_eq!((r.pods, r.unschedulable), (500, 0));
        // 110 pods per node: 10 nodes hold 1,100.
        let r = pure_throughput(10, 1200);
        assert_eq!((r.pods, r.unschedulable), (1100, 100));
    }

    #[tokio::test]
    async fn binds_through_a_store() {
        let store = Arc::new(MemStore::new());
        let r = bind_throughput(
            store.clone(),
            5,
            300,
            ControllerConfig::default(),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
        assert_eq!(r.pods, 300);
        let (pods, _) = store.list("/core/pods/", Consistency::Local).await.unwrap();
        assert!(pods.iter().all(|p| p.value["spec"]["nodeName"].is_string()));
        let mut per_node = std::collections::HashMap::new();
        for p in &pods {
            *per_node
                .entry(p.value["spec"]["nodeName"].as_str().unwrap().to_string())
                .or_insert(0) += 1;
        }
        assert_eq!(per_node.len(), 5);
        assert!(per_node.values().all(|n| *n == 60), "{per_node:?}");
    }
}
