//! What a reconcile decides: writes and events as [`Action`]s, gathered with a requeue timer in
//! [`Actions`], which the runner commits as one batch.

use std::time::{Duration, SystemTime};

use apimachinery::time::rfc3339;
use serde_json::{json, Value};

use super::events::EventRecord;
use super::object::{deleting, ensure_object, pod_node, pod_terminal};

/// One decision of a reconcile. The runner turns a reconcile's actions into one atomic batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Nothing (keeps helper code simple).
    None,
    /// Create an object that must not exist yet.
    Create {
        /// Store key.
        key: String,
        /// The object, stamped with uid and creationTimestamp.
        object: Value,
    },
    /// Replace an object read at `revision`.
    Update {
        /// Store key.
        key: String,
        /// The whole new object (unknown fields kept from the read).
        object: Value,
        /// Revision the object was read at (the write's precondition).
        revision: u64,
    },
    /// Remove an object at once.
    Delete {
        /// Store key.
        key: String,
        /// Revision it was read at; `None` deletes whatever is there.
        revision: Option<u64>,
    },
    /// Record an event.
    Event(EventRecord),
}

/// What a reconcile decided.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Actions {
    /// Writes and events, applied together.
    pub actions: Vec<Action>,
    /// Reconcile again after this long even if nothing changes (a timer: minReadySeconds, grace periods).
    pub requeue_after: Option<Duration>,
    /// The kind and store key of the object whose reconcile decided these, when one object did: a
    /// failed write backs off that key alone.
    pub origin: Option<(&'static str, String)>,
}

impl Actions {
    /// Adds an action.
    pub fn push(&mut self, a: Action) {
        if a != Action::None {
            self.actions.push(a);
        }
    }

    /// Asks for a reconcile no later than `d` from now.
    pub fn requeue(&mut self, d: Duration) {
        self.requeue_after = Some(self.requeue_after.map_or(d, |r| r.min(d)));
    }

    /// Whether the reconcile wants no writes.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }
}

/// Graceful deletion of a pod as the API does it: a running bound pod gets `deletionTimestamp` (its node
/// agent stops it and removes it); an unbound or finished pod is removed at once, since nothing on a node
/// would ever finish its deletion. `rev` is the revision it was read at.
pub fn delete_pod(key: &str, pod: &Value, rev: u64, now: SystemTime) -> Action {
    if pod_node(pod).is_none() || pod_terminal(pod) {
        return Action::Delete {
            key: key.to_string(),
            revision: Some(rev),
        };
    }
    if deleting(pod) {
        return Action::None;
    }
    let grace = pod
        .pointer("/spec/terminationGracePeriodSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(30);
    let mut p = pod.clone();
    let meta = ensure_object(&mut p, "metadata");
    meta.insert("deletionTimestamp".into(), json!(rfc3339(now)));
    meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
    Action::Update {
        key: key.to_string(),
        object: p,
        revision: rev,
    }
}
