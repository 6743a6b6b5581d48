//! The one controller simulator for tests: a pure store of objects with revisions that applies a
//! reconcile's [`Actions`] as the runner would (creates must be new, updates must not be stale), so
//! each controller's test drives its reconcile, plus its own fake kubelet, step by step.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::{json, Value};

use super::action::{Action, Actions};
use super::object::revision;
use crate::informer::Cached;

/// Objects by store key, the revision counter, a seeded RNG and a clock the test moves.
pub(crate) struct Sim {
    objects: BTreeMap<String, Value>,
    rev: u64,
    /// The RNG the reconciles draw names and uids from.
    pub rng: StdRng,
    /// The time the reconciles are told.
    pub now: SystemTime,
}

impl Sim {
    /// An empty world at `now`.
    pub fn new(seed: u64, now: SystemTime) -> Sim {
        Sim {
            objects: BTreeMap::new(),
            rev: 1,
            rng: StdRng::seed_from_u64(seed),
            now,
        }
    }

    /// Writes `v` at `key` with the next revision.
    pub fn put(&mut self, key: String, mut v: Value) {
        self.rev += 1;
        v["metadata"]["resourceVersion"] = json!(self.rev.to_string());
        self.objects.insert(key, v);
    }

    /// The object at `key`.
    ///
    /// # Panics
    /// When there is none: the test's own setup is wrong.
    pub fn get(&self, key: &str) -> Value {
        self.objects
            .get(key)
            .cloned()
            .unwrap_or_else(|| panic!("no object {key}"))
    }

    /// Removes the object at `key` (what a kubelet does once a pod is gone).
    pub fn remove(&mut self, key: &str) {
        self.objects.remove(key);
    }

    /// Objects under `prefix`, as an informer would hand them out.
    pub fn cached(&self, prefix: &str) -> Vec<Cached> {
        self.objects
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| Cached {
                key: k.clone(),
                value: Arc::new(v.clone()),
                revision: revision(v),
            })
            .collect()
    }

    /// The values under `prefix`.
    pub fn values(&self, prefix: &str) -> Vec<Value> {
        self.cached(prefix)
            .into_iter()
            .map(|c| (*c.value).clone())
            .collect()
    }

    /// Applies a reconcile's writes as the runner's commit would.
    ///
    /// # Panics
    /// On a create of an existing key or an update read at an older revision: a reconcile that
    /// does that would have its batch refused.
    pub fn apply(&mut self, a: Actions) {
        for act in a.actions {
            match act {
                Action::Create { key, object } => {
                    assert!(!self.objects.contains_key(&key), "create of existing {key}");
                    self.put(key, object);
                }
                Action::Update {
                    key,
                    object,
                    revision: r,
                } => {
                    let cur = self.objects.get(&key).map(revision);
                    assert_eq!(cur, Some(r), "stale update of {key}");
                    self.put(key, object);
                }
                Action::Delete { key, .. } => {
                    self.objects.remove(&key);
                }
                Action::Event(_) | Action::None => {}
            }
        }
    }
}
