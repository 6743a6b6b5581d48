//! The scheduler runner: watches pods, nodes and claims, keeps a [`ClusterView`] up to date, and binds
//! pending pods in batches (one Raft proposal per batch, a `Revision` precondition per pod). Pods that fit
//! nowhere get `PodScheduled=False` (reason `Unschedulable`) and a `FailedScheduling` event, and wait for a
//! node, pod or claim change to be retried.

use apimachinery::time::rfc3339;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::context::ControllerConfig;
use super::events::{EventRecord, EventType, Recorder};
use super::object::{
    annotation, condition, deleting, ensure_object, malformed_status, pod_node, revision,
    set_annotation, set_condition, split_key,
};
use crate::informer::watcher::{Step, Watcher};
use crate::scheduler::{schedule_batch, ClusterView, Node, Pod, PVC_NODE_ANNOTATION};
use crate::store::{
    self, Batch, Consistency, Error, EventType as Kind, ObjectStore, Op, Precondition,
};

#[derive(Clone, Copy, Debug)]
enum Source {
    Pods,
    Nodes,
    Claims,
}

/// Counters of one runner, for tests and the benchmark.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Pods bound.
    pub bound: u64,
    /// Batches committed.
    pub batches: u64,
    /// Batches rejected by a precondition (and retried).
    pub conflicts: u64,
    /// Unschedulable reports written.
    pub unschedulable: u64,
}

struct Runner {
    store: Arc<dyn ObjectStore>,
    config: ControllerConfig,
    view: ClusterView,
    /// Pods to try, by store key.
    pending: BTreeMap<String, Arc<Value>>,
    /// Pods that fit nowhere, with the message last reported; retried when the cluster changes.
    parked: HashMap<String, (Arc<Value>, String)>,
    recorder: Recorder,
    rng: StdRng,
    stats: Stats,
    /// Bindings committed (or in flight) whose watch event has not come back yet: store key -> node.
    /// Their echo need not be parsed again, the view already has them.
    echo: HashMap<String, String>,
    /// PersistentVolumeClaims by store key, to pin a claim to the node of its first pod.
    claims: HashMap<String, Arc<Value>>,
}

fn view_key(store_key: &str) -> Option<String> {
    split_key(store_key).map(|(_, _, ns, name)| format!("{ns}/{name}"))
}

impl Runner {
    fn ours(&self, pod: &Value) -> bool {
        let name = pod
            .pointer("/spec/schedulerName")
            .and_then(Value::as_str)
            .unwrap_or("");
        pod_node(pod).is_none()
            && !deleting(pod)
            && (name.is_empty() || name == self.config.scheduler_name)
            && !super::object::pod_terminal(pod)
    }

    fn unpark_all(&mut self) {
        for (k, (v, _)) in self.parked.drain() {
            self.pending.insert(k, v);
        }
    }

    fn on_pod(&mut self, kind: Kind, key: &str, obj: Arc<Value>) {
        let Some(vk) = view_key(key) else { return };
        let was_bound = self.view.pod_node(&vk).is_some();
        match kind {
            Kind::Deleted => {
                self.view.remove_pod(&vk);
                self.pending.remove(key);
                self.parked.remove(key);
                self.echo.remove(key);
            }
            Kind::Added | Kind::Modified => {
                let node = pod_node(&obj);
                let echo = match (self.echo.remove(key), node) {
                    (Some(ours), Some(n)) => ours == n,
                    _ => false,
                };
                // Parsing is the runner's main cost: skip it for the echo of our own binding and for
                // pending pods the view never held.
                if !echo && (node.is_some() || was_bound) {
                    self.view.upsert_pod_json(&obj);
                }
                if self.ours(&obj) {
                    if let Some((_, msg)) = self.parked.remove(key) {
                        self.parked.insert(key.to_string(), (obj, msg));
                    } else {
                        self.pending.insert(key.to_string(), obj);
                    }
                } else {
                    self.pending.remove(key);
                    self.parked.remove(key);
                }
            }
        }
        if was_bound && self.view.pod_node(&vk).is_none() {
            // Room was freed.
            self.unpark_all();
        }
    }

    fn on_node(&mut self, kind: Kind, obj: &Value) {
        let Some(node) = Node::from_json(obj) else {
            return;
        };
        if kind != Kind::Deleted && malformed_status(obj) {
            // Placing pods on a node whose capacity cannot be read would overcommit it.
            tracing::warn!(node = %node.name, "skipping node whose status is not an object");
            self.view.remove_node(&node.name);
            return;
        }
        let changed = match kind {
            Kind::Deleted => {
                self.view.remove_node(&node.name);
                true
            }
            _ => {
                let changed = self.view.node(&node.name) != Some(&node);
                if changed {
                    self.view.upsert_node(node);
                }
                changed
            }
        };
        // Heartbeats change nothing the scheduler reads; only real changes retry parked pods.
        if changed {
            self.unpark_all();
        }
    }

    fn on_claim(&mut self, kind: Kind, key: &str, obj: Arc<Value>) {
        match kind {
            Kind::Deleted => {
                if let Some((_, _, ns, name)) = split_key(key) {
                    self.view.remove_claim(ns, name);
                }
                self.claims.remove(key);
            }
            _ => {
                self.view.upsert_claim_json(&obj);
                self.claims.insert(key.to_string(), obj);
            }
        }
        self.unpark_all();
    }

    /// [`Runner::on_event`], isolating a panic on one object: it is logged with the object's key
    /// and `false` is returned, since the view may be half-updated and must be rebuilt.
    fn on_event_isolated(&mut self, src: Source, ev: store::Event) -> bool {
        let key = ev.key.clone();
        match super::isolation::catch(|| self.on_event(src, ev)) {
            Ok(()) => true,
            Err(panic) => {
                tracing::error!(key = %key, "scheduling of {} failed: {panic}", super::isolation::object_ref(&key));
                false
            }
        }
    }

    /// Applies one step of the watcher. A list rebuilds the view from scratch (batches in flight are
    /// forgotten: their pods come back through the list). `false` when an object's panic left the view
    /// half-updated and it must be listed again.
    fn on_step(&mut self, step: Step, in_flight: &mut InFlight) -> bool {
        const SOURCES: [Source; 3] = [Source::Nodes, Source::Claims, Source::Pods];
        match step {
            // This runner never resumes: any list starts the view over.
            Step::Listed(lists) | Step::Resumed(lists) => {
                self.view = ClusterView::new();
                self.pending.clear();
                self.parked.clear();
                *in_flight = futures::stream::FuturesUnordered::new();
                for (src, (objects, _)) in SOURCES.into_iter().zip(lists) {
                    for o in objects {
                        // A panic here is logged and its object skipped; relisting would meet it again.
                        self.on_event_isolated(
                            src,
                            store::Event {
                                kind: Kind::Added,
                                key: o.key,
                                object: Arc::new(o.value),
                                revision: o.revision,
                            },
                        );
                    }
                }
                true
            }
            Step::Events(batch) => batch.into_iter().all(|(i, ev)| {
                let src = SOURCES.get(i).copied().unwrap_or(Source::Pods);
                self.on_event_isolated(src, ev)
            }),
            // Not listed yet: the watcher lists again on its next step.
            Step::ListFailed(_) => false,
        }
    }

    fn on_event(&mut self, src: Source, ev: store::Event) {
        match src {
            Source::Pods => self.on_pod(ev.kind, &ev.key, ev.object),
            Source::Nodes => self.on_node(ev.kind, &ev.object),
            Source::Claims => self.on_claim(ev.kind, &ev.key, ev.object),
        }
    }

    /// Schedules up to one batch of pending pods into a [`Prepared`] binding batch (the view already
    /// counts the placements). `None` when nothing is pending.
    fn prepare(&mut self) -> Option<Prepared> {
        if self.pending.is_empty() {
            return None;
        }
        let n = self.config.scheduler_batch_size.max(1);
        let mut taken = Vec::with_capacity(n.min(self.pending.len()));
        while taken.len() < n {
            let Some((k, v)) = self.pending.pop_first() else {
                break;
            };
            taken.push((k, v));
        }
        let pods: Vec<Pod> = taken.iter().map(|(_, v)| Pod::from_json(v)).collect();
        let results = schedule_batch(&mut self.view, pods);
        let now = self.config.clock.now();
        let now_s = rfc3339(now);
        let mut ops = Vec::new();
        let mut events = Vec::new();
        let mut placed = Vec::new();
        let mut parked = Vec::new();
        let mut unschedulable = 0;
        let mut pinned = Vec::new();
        for ((key, obj), (pod, result)) in taken.iter().zip(results) {
            match result {
                Ok(p) => {
                    let mut v = (**obj).clone();
                    ensure_object(&mut v, "spec").insert("nodeName".into(), json!(p.node));
                    let status = ensure_object(&mut v, "status");
                    set_condition(status, "PodScheduled", "True", "", "", &now_s, false);
                    if let Some(c) = status
                        .get_mut("conditions")
                        .and_then(Value::as_array_mut)
                        .and_then(|a| a.iter_mut().find(|c| c["type"] == "PodScheduled"))
                    {
                        if let Some(m) = c.as_object_mut() {
                            m.remove("reason");
                            m.remove("message");
                        }
                    }
                    // A binding is a small merge, not the whole pod: a batch of 500 bindings stays a
                    // small Raft entry (the revision precondition still guards against lost updates).
                    ops.push(Op::Merge {
                        key: key.clone(),
                        patch: json!({
                            "spec": {"nodeName": p.node},
                            "status": {"conditions": v["status"]["conditions"].clone()},
                        }),
                        precondition: Precondition::Revision(pod.revision),
                    });
                    if self.config.scheduled_events {
                        events.push(EventRecord::about(
                            obj,
                            EventType::Normal,
                            "Scheduled",
                            format!(
                                "Successfully assigned {}/{} to {}",
                                pod.namespace, pod.name, p.node
                            ),
                        ));
                    }
                    self.echo.insert(key.clone(), p.node.clone());
                    // A local volume lives where its first pod runs: record that on the claim, so
                    // the pod's replacements come back to this node after it is gone.
                    for c in &pod.claims {
                        let ck = store::key("core", "persistentvolumeclaims", &pod.namespace, c);
                        let Some(claim) = self.claims.get(&ck).cloned() else {
                            continue;
                        };
                        if annotation(&claim, PVC_NODE_ANNOTATION).is_some() {
                            continue;
                        }
                        let mut v = (*claim).clone();
                        set_annotation(&mut v, PVC_NODE_ANNOTATION, &p.node);
                        ops.push(Op::Put {
                            key: ck.clone(),
                            value: v.clone(),
                            precondition: Precondition::Revision(revision(&claim)),
                        });
                        self.view.upsert_claim_json(&v);
                        self.claims.insert(ck, Arc::new(v));
                        pinned.push(claim);
                    }
                    placed.push(pod.key());
                }
                Err(u) => {
                    let reported = condition(obj, "PodScheduled").is_some_and(|c| {
                        c["status"] == "False"
                            && c["reason"] == "Unschedulable"
                            && c["message"] == u.message.as_str()
                    });
                    if !reported {
                        let mut v = (**obj).clone();
                        let status = ensure_object(&mut v, "status");
                        status.entry("phase").or_insert(json!("Pending"));
                        set_condition(
                            status,
                            "PodScheduled",
                            "False",
                            "Unschedulable",
                            &u.message,
                            &now_s,
                            false,
                        );
                        ops.push(Op::Put {
                            key: key.clone(),
                            value: v,
                            precondition: Precondition::Revision(pod.revision),
                        });
                        events.push(EventRecord::about(
                            obj,
                            EventType::Warning,
                            "FailedScheduling",
                            u.message.clone(),
                        ));
                        unschedulable += 1;
                    }
                    parked.push((key.clone(), obj.clone(), u.message));
                }
            }
        }
        for e in &events {
            ops.push(self.recorder.op(e, now, &mut self.rng));
        }
        Some(Prepared {
            ops,
            meta: BatchMeta {
                pinned,
                placed,
                taken,
                parked,
                unschedulable,
            },
        })
    }

    /// Records the outcome of a committed (or rejected) batch. Returns the key of a pod that must be
    /// re-read, when a precondition failed on it.
    fn finish(&mut self, meta: BatchMeta, result: store::Result<u64>) -> Option<String> {
        match result {
            Ok(_) => {
                self.stats.batches += 1;
                self.stats.bound += meta.placed.len() as u64;
                self.stats.unschedulable += meta.unschedulable;
                for (k, v, m) in meta.parked {
                    self.parked.insert(k, (v, m));
                }
                None
            }
            Err(e) => {
                // Nothing applied: forget the bindings made in the view and try again with fresh pods.
                for vk in &meta.placed {
                    self.view.remove_pod(vk);
                }
                for claim in meta.pinned {
                    self.view.upsert_claim_json(&claim);
                    let ck = store::key(
                        "core",
                        "persistentvolumeclaims",
                        super::object::namespace(&claim),
                        super::object::name(&claim),
                    );
                    self.claims.insert(ck, claim);
                }
                for (k, _) in &meta.taken {
                    self.echo.remove(k);
                }
                let stale = match &e {
                    Error::PreconditionFailed { key, .. } => {
                        self.stats.conflicts += 1;
                        Some(key.clone())
                    }
                    _ => {
                        tracing::debug!(error = %e, "binding batch failed; retrying");
                        None
                    }
                };
                for (k, v) in meta.taken {
                    if Some(&k) != stale.as_ref() {
                        self.pending.insert(k, v);
                    }
                }
                stale
            }
        }
    }

    async fn refresh(&mut self, key: &str) {
        if let Ok(Some(o)) = self.store.get(key, Consistency::Linearizable).await {
            let v = Arc::new(o.value);
            if self.ours(&v) {
                self.pending.insert(key.to_string(), v);
            }
        }
    }
}

/// A binding batch ready to commit.
struct Prepared {
    ops: Vec<Op>,
    meta: BatchMeta,
}

/// What [`Runner::finish`] needs to know about a batch in flight.
struct BatchMeta {
    /// Claims annotated by the batch, as they were before.
    pinned: Vec<Arc<Value>>,
    /// View keys of the pods bound in the view.
    placed: Vec<String>,
    /// Every pod taken from `pending`, by store key.
    taken: Vec<(String, Arc<Value>)>,
    /// Pods that fit nowhere, with their message.
    parked: Vec<(String, Arc<Value>, String)>,
    /// Unschedulable reports written by the batch.
    unschedulable: u64,
}

/// Most binding batches in flight at once: while one is being replicated the next is being placed.
const MAX_IN_FLIGHT: usize = 8;

type InFlight = futures::stream::FuturesUnordered<
    futures::future::BoxFuture<'static, (BatchMeta, store::Result<u64>)>,
>;

/// Runs the scheduler runner until `shutdown` (the caller runs it only on the leader).
pub async fn run(
    store: Arc<dyn ObjectStore>,
    config: ControllerConfig,
    shutdown: CancellationToken,
) {
    run_with_stats(store, config, shutdown, None).await;
}

/// [`run`], publishing its [`Stats`] after every batch.
pub async fn run_with_stats(
    store: Arc<dyn ObjectStore>,
    config: ControllerConfig,
    shutdown: CancellationToken,
    stats: Option<tokio::sync::watch::Sender<Stats>>,
) {
    let rng = match config.seed {
        Some(s) => StdRng::seed_from_u64(s ^ 0x5ced),
        None => StdRng::from_entropy(),
    };
    let mut r = Runner {
        store: store.clone(),
        recorder: Recorder::new(&config.scheduler_name),
        config,
        view: ClusterView::new(),
        pending: BTreeMap::new(),
        parked: HashMap::new(),
        rng,
        stats: Stats::default(),
        echo: HashMap::new(),
        claims: HashMap::new(),
    };
    // In the order of `Runner::on_step`'s sources.
    let prefixes = vec![
        store::prefix("core", "nodes", None),
        store::prefix("core", "persistentvolumeclaims", None),
        store::prefix("core", "pods", None),
    ];
    let mut watcher = Watcher::new(store.clone(), prefixes);
    let mut in_flight: InFlight = futures::stream::FuturesUnordered::new();
    let mut listed = false;
    loop {
        if !listed {
            match watcher.next(&shutdown).await {
                None => return,
                Some(step) => {
                    if r.on_step(step, &mut in_flight) {
                        listed = true;
                    } else {
                        watcher.relist();
                    }
                }
            }
            continue;
        }
        // Keep the view current with whatever already arrived.
        while let Some(step) = watcher.try_next() {
            if !r.on_step(step, &mut in_flight) {
                watcher.relist();
            }
        }
        while let Some(Some((meta, result))) = in_flight.next().now_or_never() {
            if let Some(stale) = r.finish(meta, result) {
                r.refresh(&stale).await;
            }
            if let Some(s) = &stats {
                let _ = s.send(r.stats.clone());
            }
        }
        if in_flight.len() < MAX_IN_FLIGHT {
            if let Some(p) = r.prepare() {
                if p.ops.is_empty() {
                    // Only pods already reported unschedulable: nothing to write.
                    for (k, v, m) in p.meta.parked {
                        r.parked.insert(k, (v, m));
                    }
                    continue;
                }
                let store = store.clone();
                let ops = p.ops;
                // A task per commit: with MemStore the commit is CPU work that can run on the
                // other core; with Raft it overlaps replication of one batch with placing the next.
                // Dropping the committed objects also happens on that task, off the runner's.
                let handle =
                    tokio::spawn(
                        async move { store.commit(Batch { ops }).await.map(|c| c.revision) },
                    );
                let meta = p.meta;
                in_flight.push(Box::pin(async move {
                    let result = handle.await.unwrap_or_else(|e| {
                        Err(Error::Unavailable(format!("commit task failed: {e}")))
                    });
                    (meta, result)
                }));
                if shutdown.is_cancelled() {
                    return;
                }
                continue;
            }
        }
        let retry = if r.parked.is_empty() {
            Duration::from_secs(3600)
        } else {
            Duration::from_secs(10)
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(retry) => r.unpark_all(),
            Some((meta, result)) = in_flight.next(), if !in_flight.is_empty() => {
                if let Some(stale) = r.finish(meta, result) {
                    r.refresh(&stale).await;
                }
                if let Some(s) = &stats {
                    let _ = s.send(r.stats.clone());
                }
            }
            step = watcher.next(&shutdown) => match step {
                None => return,
                Some(step) => {
                    if !r.on_step(step, &mut in_flight) {
                        watcher.relist();
                    }
                }
            },
        }
    }
}
