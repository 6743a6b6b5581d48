//! A shared informer per kind: list, then watch from the list's revision, re-list on `Gone`; a cache the
//! API's authorizer and the controllers read without I/O, and a change counter they wait on. Controllers write their committed
//! results through to the cache, so the next reconcile never acts on a state older than its own writes
//! (what kube's "expectations" are for).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub mod watcher;

use crate::store::{Batch, Committed, EventType, ObjectStore, Op};
use watcher::{Step, Watcher};

/// A cached object and the revision that wrote it.
#[derive(Debug, Clone)]
pub struct Cached {
    /// Store key.
    pub key: String,
    /// Object JSON.
    pub value: Arc<Value>,
    /// Revision that wrote it.
    pub revision: u64,
}

#[derive(Default)]
struct State {
    objects: BTreeMap<String, Cached>,
    /// Keys deleted by a write-through, with the deleting revision: older watch events must not revive them.
    tombstones: HashMap<String, u64>,
    revision: u64,
    ready: bool,
}

/// Cache of every object under one prefix.
pub struct Informer {
    prefix: String,
    state: Mutex<State>,
    changed: watch::Sender<u64>,
}

impl Informer {
    /// An informer over `prefix` (`store::prefix("apps", "deployments", None)`). Start it with [`Informer::run`].
    pub fn new(prefix: String) -> Arc<Informer> {
        Arc::new(Informer {
            prefix,
            state: Mutex::new(State::default()),
            changed: watch::channel(0).0,
        })
    }

    /// The prefix this informer caches.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A receiver that changes whenever the cache does.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Whether the first list has completed.
    pub fn is_ready(&self) -> bool {
        self.state.lock().expect("informer lock").ready
    }

    /// Every cached object, in key order.
    pub fn list(&self) -> Vec<Cached> {
        self.state
            .lock()
            .expect("informer lock")
            .objects
            .values()
            .cloned()
            .collect()
    }

    /// Cached objects whose key starts with `prefix` (a namespace's objects: `/core/pods/default/`).
    pub fn list_prefix(&self, prefix: &str) -> Vec<Cached> {
        let st = self.state.lock().expect("informer lock");
        st.objects
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, c)| c.clone())
            .collect()
    }

    /// One cached object.
    pub fn get(&self, key: &str) -> Option<Cached> {
        self.state
            .lock()
            .expect("informer lock")
            .objects
            .get(key)
            .cloned()
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    /// Records a committed write to `key` (a put's stored object, or `None` for a delete).
    pub fn write_through(&self, key: &str, value: Option<Arc<Value>>, revision: u64) {
        if !key.starts_with(&self.prefix) {
            return;
        }
        {
            let mut st = self.state.lock().expect("informer lock");
            if st.objects.get(key).is_some_and(|c| c.revision >= revision) {
                return;
            }
            match value {
                Some(v) => {
                    st.tombstones.remove(key);
                    st.objects.insert(
                        key.to_string(),
                        Cached {
                            key: key.to_string(),
                            value: v,
                            revision,
                        },
                    );
                }
                None => {
                    st.objects.remove(key);
                    st.tombstones.insert(key.to_string(), revision);
                }
            }
        }
        self.bump();
    }

    fn apply_event(
        &self,
        st: &mut State,
        kind: EventType,
        key: &str,
        object: Arc<Value>,
        revision: u64,
    ) {
        st.revision = st.revision.max(revision);
        if st.tombstones.get(key).is_some_and(|r| *r >= revision) {
            return;
        }
        st.tombstones.remove(key);
        if st.objects.get(key).is_some_and(|c| c.revision > revision) {
            return;
        }
        match kind {
            EventType::Deleted => {
                st.objects.remove(key);
            }
            EventType::Added | EventType::Modified => {
                st.objects.insert(
                    key.to_string(),
                    Cached {
                        key: key.to_string(),
                        value: object,
                        revision,
                    },
                );
            }
        }
    }

    /// Lists and watches (through the shared [`Watcher`]) until `shutdown`.
    pub async fn run(self: Arc<Self>, store: Arc<dyn ObjectStore>, shutdown: CancellationToken) {
        let mut watcher = Watcher::new(store, vec![self.prefix.clone()]);
        while let Some(step) = watcher.next(&shutdown).await {
            match step {
                Step::Listed(mut lists) | Step::Resumed(mut lists) => {
                    let Some((objects, at)) = lists.pop() else {
                        continue;
                    };
                    self.relisted(objects, at);
                }
                Step::Events(batch) => {
                    let mut st = self.state.lock().expect("informer lock");
                    for (_, ev) in batch {
                        self.apply_event(&mut st, ev.kind, &ev.key, ev.object, ev.revision);
                    }
                }
                // Nothing changed; the watcher backs off and lists again.
                Step::ListFailed(_) => continue,
            }
            self.bump();
        }
    }

    /// Replaces the cache with a list taken at revision `at`.
    fn relisted(&self, objects: Vec<crate::store::Object>, at: u64) {
        let mut st = self.state.lock().expect("informer lock");
        // Write-throughs newer than the list survive it.
        let mut fresh: BTreeMap<String, Cached> = objects
            .into_iter()
            .map(|o| {
                (
                    o.key.clone(),
                    Cached {
                        key: o.key,
                        value: Arc::new(o.value),
                        revision: o.revision,
                    },
                )
            })
            .collect();
        for (k, c) in &st.objects {
            if c.revision > at {
                fresh.insert(k.clone(), c.clone());
            }
        }
        st.tombstones.retain(|_, r| *r > at);
        let tombstones: Vec<String> = st.tombstones.keys().cloned().collect();
        for k in tombstones {
            fresh.remove(&k);
        }
        st.objects = fresh;
        st.revision = at;
        st.ready = true;
    }
}

/// The informers the controllers share, one per kind.
#[derive(Clone)]
pub struct Caches {
    /// Pods.
    pub pods: Arc<Informer>,
    /// Nodes.
    pub nodes: Arc<Informer>,
    /// ReplicaSets.
    pub replicasets: Arc<Informer>,
    /// Deployments.
    pub deployments: Arc<Informer>,
    /// DaemonSets.
    pub daemonsets: Arc<Informer>,
    /// Jobs.
    pub jobs: Arc<Informer>,
    /// Services.
    pub services: Arc<Informer>,
    /// Endpoints.
    pub endpoints: Arc<Informer>,
    /// Namespaces.
    pub namespaces: Arc<Informer>,
    /// HorizontalPodAutoscalers (the stored `autoscaling/v2` form).
    pub horizontalpodautoscalers: Arc<Informer>,
}

impl Caches {
    /// Informers for every kind the controllers read (not started).
    pub fn new() -> Caches {
        use crate::store::prefix;
        Caches {
            pods: Informer::new(prefix("core", "pods", None)),
            nodes: Informer::new(prefix("core", "nodes", None)),
            replicasets: Informer::new(prefix("apps", "replicasets", None)),
            deployments: Informer::new(prefix("apps", "deployments", None)),
            daemonsets: Informer::new(prefix("apps", "daemonsets", None)),
            jobs: Informer::new(prefix("batch", "jobs", None)),
            services: Informer::new(prefix("core", "services", None)),
            endpoints: Informer::new(prefix("core", "endpoints", None)),
            namespaces: Informer::new(prefix("core", "namespaces", None)),
            horizontalpodautoscalers: Informer::new(prefix(
                "autoscaling",
                "horizontalpodautoscalers",
                None,
            )),
        }
    }

    /// Every informer.
    pub fn all(&self) -> [&Arc<Informer>; 10] {
        [
            &self.jobs,
            &self.pods,
            &self.nodes,
            &self.replicasets,
            &self.deployments,
            &self.daemonsets,
            &self.services,
            &self.endpoints,
            &self.namespaces,
            &self.horizontalpodautoscalers,
        ]
    }

    /// Whether every informer has listed once.
    pub fn ready(&self) -> bool {
        self.all().iter().all(|i| i.is_ready())
    }

    /// Records a committed batch in the caches.
    pub fn write_through(&self, batch: &Batch, committed: &Committed) {
        for (op, result) in batch.ops.iter().zip(&committed.results) {
            let value = match op {
                Op::Put { .. } | Op::Merge { .. } => result.clone(),
                Op::Delete { .. } => None,
            };
            for i in self.all() {
                i.write_through(op.key(), value.clone(), committed.revision);
            }
        }
    }
}

impl Default for Caches {
    fn default() -> Self {
        Caches::new()
    }
}
