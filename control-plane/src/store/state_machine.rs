//! The pure state machine behind the store: applies a committed batch to the object map and records the
//! resulting events. No I/O; persistence and notification are the driver's job.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::Value;

use super::object_store::{
    Batch, Committed, Error, Event, EventType, Object, Op, Precondition, Result,
};

/// Objects by key, with the revision that last wrote each, and the index applied so far.
#[derive(Debug, Default, Clone)]
pub struct StateMachine {
    objects: BTreeMap<String, (Arc<Value>, u64)>,
    applied: u64,
}

impl StateMachine {
    /// An empty state machine at index 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds a state machine from persisted objects (key, JSON, revision) and the applied index.
    pub fn restore(objects: impl IntoIterator<Item = (String, Value, u64)>, applied: u64) -> Self {
        let objects = objects
            .into_iter()
            .map(|(k, v, r)| (k, (Arc::new(v), r)))
            .collect();
        StateMachine { objects, applied }
    }

    /// Index of the last applied entry.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// Marks an entry that carries no batch (empty entry, conf change) as applied.
    pub fn skip(&mut self, index: u64) {
        debug_assert!(index > self.applied, "index {index} applied twice");
        self.applied = index;
    }

    /// Number of stored objects.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// Reads one object.
    pub fn get(&self, key: &str) -> Option<Object> {
        self.objects.get(key).map(|(v, r)| Object {
            key: key.to_string(),
            value: (**v).clone(),
            revision: *r,
        })
    }

    /// One object's shared value and revision, without copying it (checkpoints).
    pub fn get_shared(&self, key: &str) -> Option<(Arc<Value>, u64)> {
        self.objects.get(key).map(|(v, r)| (v.clone(), *r))
    }

    /// Every object whose key starts with `prefix`, in key order.
    pub fn list(&self, prefix: &str) -> Vec<Object> {
        self.objects
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, (v, r))| Object {
                key: k.clone(),
                value: (**v).clone(),
                revision: *r,
            })
            .collect()
    }

    /// Every object, for snapshots.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Value, u64)> {
        self.objects.iter().map(|(k, (v, r))| (k, &**v, *r))
    }

    /// Applies the batch committed at `index`. Either every operation applies or none does; in both
    /// cases the index counts as applied, so replay never applies an entry twice.
    ///
    /// Returns the per-op results and the events to publish, or the first failed precondition.
    ///
    /// # Panics
    /// If `index` is not past the applied index: the driver must feed entries in order, once.
    pub fn apply(&mut self, index: u64, batch: &Batch) -> (Result<Committed>, Vec<Event>) {
        assert!(
            index > self.applied,
            "entry {index} applied out of order (applied {})",
            self.applied
        );
        self.applied = index;
        if let Err(e) = self.check(batch) {
            return (Err(e), Vec::new());
        }
        let mut results = Vec::with_capacity(batch.ops.len());
        let mut events = Vec::with_capacity(batch.ops.len());
        for op in &batch.ops {
            match op {
                Op::Put { key, value, .. } => {
                    let mut value = value.clone();
                    stamp_revision(&mut value, index);
                    let value = Arc::new(value);
                    let kind = if self.objects.contains_key(key) {
                        EventType::Modified
                    } else {
                        EventType::Added
                    };
                    self.objects.insert(key.clone(), (value.clone(), index));
                    results.push(Some(value.clone()));
                    events.push(Event {
                        kind,
                        key: key.clone(),
                        object: value,
                        revision: index,
                    });
                }
                Op::Merge { key, patch, .. } => {
                    let (current, _) = self
                        .objects
                        .get(key)
                        .expect("check() ensured the merge target exists");
                    let mut value = (**current).clone();
                    apimachinery::patch::merge_patch(&mut value, patch);
                    stamp_revision(&mut value, index);
                    let value = Arc::new(value);
                    self.objects.insert(key.clone(), (value.clone(), index));
                    results.push(Some(value.clone()));
                    events.push(Event {
                        kind: EventType::Modified,
                        key: key.clone(),
                        object: value,
                        revision: index,
                    });
                }
                Op::Delete { key, .. } => match self.objects.remove(key) {
                    Some((old, _)) => {
                        // Kubernetes reports a deleted object at the revision of the delete.
                        let mut last = (*old).clone();
                        stamp_revision(&mut last, index);
                        let last = Arc::new(last);
                        results.push(Some(last.clone()));
                        events.push(Event {
                            kind: EventType::Deleted,
                            key: key.clone(),
                            object: last,
                            revision: index,
                        });
                    }
                    None => results.push(None),
                },
            }
        }
        (
            Ok(Committed {
                revision: index,
                results,
            }),
            events,
        )
    }

    /// Checks every precondition against the state as the batch's earlier ops would leave it.
    fn check(&self, batch: &Batch) -> Result<()> {
        // Earlier ops in the same batch change what later ops see.
        let mut pending: BTreeMap<&str, Option<u64>> = BTreeMap::new();
        for (index, op) in batch.ops.iter().enumerate() {
            let key = op.key();
            let found = match pending.get(key) {
                Some(state) => *state,
                None => self.objects.get(key).map(|(_, r)| *r),
            };
            let precondition = match op {
                Op::Put { precondition, .. }
                | Op::Merge { precondition, .. }
                | Op::Delete { precondition, .. } => *precondition,
            };
            let merge_needs_object = matches!(op, Op::Merge { .. }) && found.is_none();
            let ok = !merge_needs_object
                && match precondition {
                    Precondition::None => true,
                    Precondition::Absent => found.is_none(),
                    Precondition::Exists => found.is_some(),
                    Precondition::Revision(r) => found == Some(r),
                };
            if !ok {
                return Err(Error::PreconditionFailed {
                    index,
                    key: key.to_string(),
                    expected: precondition,
                    found,
                });
            }
            // A put inside the batch gets the batch's revision, which no caller can know yet; u64::MAX
            // makes a later `Revision(_)` on the same key fail, as it would against the stored result.
            let after = match op {
                Op::Put { .. } | Op::Merge { .. } => Some(u64::MAX),
                Op::Delete { .. } => None,
            };
            pending.insert(key, after);
        }
        Ok(())
    }
}

fn stamp_revision(value: &mut Value, revision: u64) {
    if let Value::Object(map) = value {
        let meta = map
            .entry("metadata")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Value::Object(meta) = meta {
            meta.insert(
                "resourceVersion".to_string(),
                Value::String(revision.to_string()),
            );
        }
    }
}

/// The most recent events, to replay a watch from a revision. Older revisions answer `Gone`.
#[derive(Debug)]
pub struct EventWindow {
    events: VecDeque<Event>,
    capacity: usize,
    /// Oldest revision a watch can start after. Everything after it is in `events`.
    floor: u64,
}

impl EventWindow {
    /// A window holding at most `capacity` events, starting at revision `floor`.
    pub fn new(capacity: usize, floor: u64) -> Self {
        EventWindow {
            events: VecDeque::with_capacity(capacity.min(4096)),
            capacity,
            floor,
        }
    }

    /// Appends events (in revision order).
    pub fn push(&mut self, events: impl IntoIterator<Item = Event>) {
        for e in events {
            debug_assert!(e.revision >= self.floor);
            self.events.push_back(e);
            while self.events.len() > self.capacity {
                let old = self.events.pop_front().expect("non-empty");
                // Events of one revision leave together, or a watch could see half a batch.
                self.floor = old.revision;
                while self
                    .events
                    .front()
                    .is_some_and(|e| e.revision == old.revision)
                {
                    self.events.pop_front();
                }
            }
        }
    }

    /// Events with revision greater than `after`, or `Gone` if some of them have left the window.
    pub fn since(&self, after: u64) -> Result<Vec<Event>> {
        if after < self.floor {
            return Err(Error::Gone {
                requested: after,
                oldest: self.floor,
            });
        }
        let start = self.events.partition_point(|e| e.revision <= after);
        Ok(self.events.iter().skip(start).cloned().collect())
    }

    /// Forgets everything up to `revision` (after a snapshot install replaced the state).
    pub fn reset(&mut self, revision: u64) {
        self.events.clear();
        self.floor = revision;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn put(key: &str, precondition: Precondition) -> Op {
        Op::Put {
            key: key.into(),
            value: json!({"metadata": {"name": key}}),
            precondition,
        }
    }

    #[test]
    fn put_stamps_resource_version_with_index() {
        let mut sm = StateMachine::new();
        let (res, events) = sm.apply(
            7,
            &Batch::one(put("/core/pods/default/a", Precondition::Absent)),
        );
        let c = res.unwrap();
        assert_eq!(c.revision, 7);
        assert_eq!(
            c.results[0].as_ref().unwrap()["metadata"]["resourceVersion"],
            "7"
        );
        assert_eq!(events[0].kind, EventType::Added);
        assert_eq!(sm.get("/core/pods/default/a").unwrap().revision, 7);
    }

    #[test]
    fn failed_precondition_applies_nothing_but_consumes_index() {
        let mut sm = StateMachine::new();
        sm.apply(1, &Batch::one(put("/a", Precondition::Absent)))
            .0
            .unwrap();
        let batch = Batch {
            ops: vec![
                put("/b", Precondition::Absent),
                put("/a", Precondition::Absent),
            ],
        };
        let (res, events) = sm.apply(2, &batch);
        assert_eq!(
            res.unwrap_err(),
            Error::PreconditionFailed {
                index: 1,
                key: "/a".into(),
                expected: Precondition::Absent,
                found: Some(1)
            }
        );
        assert!(events.is_empty());
        assert!(sm.get("/b").is_none());
        assert_eq!(sm.applied(), 2);
    }

    #[test]
    fn revision_precondition_detects_conflicts() {
        let mut sm = StateMachine::new();
        sm.apply(1, &Batch::one(put("/a", Precondition::Absent)))
            .0
            .unwrap();
        sm.apply(2, &Batch::one(put("/a", Precondition::Revision(1))))
            .0
            .unwrap();
        let (res, _) = sm.apply(3, &Batch::one(put("/a", Precondition::Revision(1))));
        assert!(matches!(
            res,
            Err(Error::PreconditionFailed { found: Some(2), .. })
        ));
    }

    #[test]
    fn later_ops_see_earlier_ops_in_the_batch() {
        let mut sm = StateMachine::new();
        let batch = Batch {
            ops: vec![
                put("/a", Precondition::Absent),
                Op::Delete {
                    key: "/a".into(),
                    precondition: Precondition::Exists,
                },
                put("/a", Precondition::Absent),
            ],
        };
        let (res, events) = sm.apply(1, &batch);
        res.unwrap();
        assert_eq!(
            events.iter().map(|e| e.kind).collect::<Vec<_>>(),
            vec![EventType::Added, EventType::Deleted, EventType::Added]
        );
    }

    #[test]
    fn merge_patches_an_existing_object_only() {
        let mut sm = StateMachine::new();
        sm.apply(1, &Batch::one(put("/p", Precondition::Absent)))
            .0
            .unwrap();
        let merge = |pre| {
            Batch::one(Op::Merge {
                key: "/p".into(),
                patch: json!({"spec": {"nodeName": "n1"}, "metadata": {"name": null}}),
                precondition: pre,
            })
        };
        let (res, events) = sm.apply(2, &merge(Precondition::Revision(1)));
        let stored = (*res.unwrap().results[0].clone().unwrap()).clone();
        assert_eq!(stored["spec"]["nodeName"], "n1");
        assert!(stored["metadata"].get("name").is_none());
        assert_eq!(stored["metadata"]["resourceVersion"], "2");
        assert_eq!(events[0].kind, EventType::Modified);
        // A stale revision, or a missing object, fails like any precondition.
        assert!(sm.apply(3, &merge(Precondition::Revision(1))).0.is_err());
        let missing = Batch::one(Op::Merge {
            key: "/nope".into(),
            patch: json!({}),
            precondition: Precondition::None,
        });
        assert!(matches!(
            sm.apply(4, &missing).0,
            Err(Error::PreconditionFailed { found: None, .. })
        ));
    }

    #[test]
    fn list_is_prefix_bounded() {
        let mut sm = StateMachine::new();
        for (i, k) in ["/core/pods/a/x", "/core/pods/b/y", "/core/podsx/a/z"]
            .iter()
            .enumerate()
        {
            sm.apply(i as u64 + 1, &Batch::one(put(k, Precondition::None)))
                .0
                .unwrap();
        }
        let keys: Vec<_> = sm.list("/core/pods/").into_iter().map(|o| o.key).collect();
        assert_eq!(keys, vec!["/core/pods/a/x", "/core/pods/b/y"]);
    }

    #[test]
    fn window_replays_and_reports_gone() {
        let mut sm = StateMachine::new();
        let mut w = EventWindow::new(3, 0);
        for i in 1..=5u64 {
            let (_, ev) = sm.apply(i, &Batch::one(put(&format!("/k{i}"), Precondition::None)));
            w.push(ev);
        }
        assert_eq!(
            w.since(2)
                .unwrap()
                .iter()
                .map(|e| e.revision)
                .collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
        assert_eq!(w.since(5).unwrap(), vec![]);
        assert!(matches!(w.since(1), Err(Error::Gone { .. })));
    }
}
