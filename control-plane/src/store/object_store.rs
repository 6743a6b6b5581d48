//! The store's contract, [`ObjectStore`], and the values that cross it: batches of operations with
//! preconditions, committed results, objects, watch events and the store's [`Error`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Result type of the store.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of the store. `PreconditionFailed` and `Gone` are answers, not faults; `NotLeader`,
/// `Unavailable` and `Timeout` are retryable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum Error {
    /// An operation's precondition did not hold; nothing in the batch was applied.
    #[error("precondition failed on {key}: expected {expected:?}, found revision {found:?}")]
    PreconditionFailed {
        /// Index of the failing operation in the batch.
        index: usize,
        /// Key of the failing operation.
        key: String,
        /// What the operation required.
        expected: Precondition,
        /// Revision of the stored object, `None` when absent.
        found: Option<u64>,
    },
    /// The requested revision is older than the event window (HTTP 410 Gone).
    #[error("too old resource version: {requested} (oldest in window {oldest})")]
    Gone {
        /// The revision the caller asked to watch from.
        requested: u64,
        /// Oldest revision the window can replay from.
        oldest: u64,
    },
    /// This member has no leader to forward to (election in progress, or partitioned).
    #[error("no raft leader is known")]
    NoLeader,
    /// The write or read did not complete in time.
    #[error("timed out waiting for raft")]
    Timeout,
    /// The proposal was dropped (leadership changed before it committed); the write may be retried.
    #[error("proposal dropped: {0}")]
    Dropped(String),
    /// The store is shutting down or failed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The request was malformed (bad key, invalid JSON).
    #[error("invalid request: {0}")]
    Invalid(String),
}

/// What must hold for an operation to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Precondition {
    /// No condition.
    None,
    /// The key must not exist (create).
    Absent,
    /// The key must exist, with any revision.
    Exists,
    /// The key must exist with exactly this revision (optimistic concurrency).
    Revision(u64),
}

/// One write in a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// Store `value` under `key`. The state machine stamps `metadata.resourceVersion`.
    Put {
        /// Object key.
        key: String,
        /// Object JSON.
        value: Value,
        /// Condition for this write.
        precondition: Precondition,
    },
    /// Merge `patch` (RFC 7386 JSON merge patch) into the stored object, which must exist. Small
    /// writes to big objects (a pod binding) keep Raft entries small.
    Merge {
        /// Object key.
        key: String,
        /// The merge patch.
        patch: Value,
        /// Condition for this write (the object must exist whatever it says).
        precondition: Precondition,
    },
    /// Remove `key`.
    Delete {
        /// Object key.
        key: String,
        /// Condition for this delete.
        precondition: Precondition,
    },
}

impl Op {
    /// The key this operation touches.
    pub fn key(&self) -> &str {
        match self {
            Op::Put { key, .. } | Op::Merge { key, .. } | Op::Delete { key, .. } => key,
        }
    }
}

/// Operations applied atomically: all or none.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// The operations, applied in order.
    pub ops: Vec<Op>,
}

impl Batch {
    /// A batch of one operation.
    pub fn one(op: Op) -> Self {
        Batch { ops: vec![op] }
    }

    /// The first key no client may write, if any: an empty key, or one the state machine reserves
    /// (`\0…` keys hold the checkpoint's own records). Checked where a batch enters the store, where
    /// a peer forwards one, and again where a committed entry is applied.
    pub fn invalid_key(&self) -> Option<&str> {
        self.ops
            .iter()
            .map(Op::key)
            .find(|k| k.is_empty() || k.starts_with('\0'))
    }
}

/// What a committed batch produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Committed {
    /// Raft index of the batch; the `resourceVersion` of every object it wrote.
    pub revision: u64,
    /// Per operation: the stored object after a put or merge, the removed object after a delete
    /// (`None` when a delete with `Precondition::None` found nothing).
    /// Shared with the state machine: most results are never read (followers, replay), and
    /// copying every written object was the largest cost of applying scheduler bindings.
    pub results: Vec<Option<std::sync::Arc<Value>>>,
}

impl Committed {
    /// The first operation's object, owned (a copy only if the state machine still shares it).
    pub fn into_first(self) -> Option<Value> {
        self.results
            .into_iter()
            .next()
            .flatten()
            .map(std::sync::Arc::unwrap_or_clone)
    }
}

/// A stored object and the revision that wrote it.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    /// Object key.
    pub key: String,
    /// Object JSON, with `metadata.resourceVersion` set.
    pub value: Value,
    /// Revision (Raft index) that last wrote it.
    pub revision: u64,
}

/// Kind of change in a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    /// The key was created.
    Added,
    /// The key was updated.
    Modified,
    /// The key was deleted; the object is its last state.
    Deleted,
}

/// One change to one key.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// What happened.
    pub kind: EventType,
    /// Key changed.
    pub key: String,
    /// The new object (the last state, with the deleting revision, for `Deleted`).
    pub object: std::sync::Arc<Value>,
    /// Revision of the change.
    pub revision: u64,
}

/// How fresh a read must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    /// Linearizable: confirmed with the leader by ReadIndex before serving.
    Linearizable,
    /// Whatever this member has applied (`resourceVersion=0`).
    Local,
}

/// Builds the key of an object: `/{group}/{resource}/{namespace}/{name}`. The core group is `core`;
/// cluster-scoped objects use an empty namespace segment.
pub fn key(group: &str, resource: &str, namespace: &str, name: &str) -> String {
    let group = if group.is_empty() { "core" } else { group };
    format!("/{group}/{resource}/{namespace}/{name}")
}

/// Prefix matching every object of a resource, or of a resource in one namespace when `namespace` is `Some`.
pub fn prefix(group: &str, resource: &str, namespace: Option<&str>) -> String {
    let group = if group.is_empty() { "core" } else { group };
    match namespace {
        Some(ns) => format!("/{group}/{resource}/{ns}/"),
        None => format!("/{group}/{resource}/"),
    }
}

/// A stream of watch events. It ends with `Err(Error::Gone)` when the watcher fell too far behind; the
/// client then re-lists, as Kubernetes clients do on 410.
pub type WatchStream = std::pin::Pin<Box<dyn futures::Stream<Item = Result<Event>> + Send>>;

/// Boxed future returned by [`ObjectStore`] methods (keeps the trait object-safe).
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// What the API server and the controllers need from the store. The production implementation is
/// the Raft-replicated store; `MemStore` is a single-process one for unit tests.
pub trait ObjectStore: Send + Sync + 'static {
    /// Commits a batch atomically (through Raft: on a follower it is forwarded to the leader).
    ///
    /// # Errors
    /// `PreconditionFailed` when a precondition did not hold (nothing applied); retryable
    /// `NoLeader`/`Timeout`/`Dropped` when the cluster could not commit it.
    fn commit(&self, batch: Batch) -> BoxFuture<'_, Result<Committed>>;

    /// Reads one object.
    fn get<'a>(
        &'a self,
        key: &'a str,
        consistency: Consistency,
    ) -> BoxFuture<'a, Result<Option<Object>>>;

    /// Reads every object under `prefix`, and the revision the list is consistent at.
    fn list<'a>(
        &'a self,
        prefix: &'a str,
        consistency: Consistency,
    ) -> BoxFuture<'a, Result<(Vec<Object>, u64)>>;

    /// Streams every change under `prefix` with revision greater than `after`.
    ///
    /// # Errors
    /// `Gone` when `after` is older than the event window.
    fn watch<'a>(&'a self, prefix: &'a str, after: u64) -> BoxFuture<'a, Result<WatchStream>>;

    /// The last revision this member applied.
    fn revision(&self) -> u64;

    /// Whether this member is the Raft leader now (controllers and the scheduler run only there).
    fn is_leader(&self) -> bool;

    /// What `/livez`, `/healthz` and `/readyz` report: an in-memory store is always healthy.
    fn health(&self) -> Health {
        Health::default()
    }

    /// The control-plane members and the leader as this member knows them (a follower answers
    /// from its own view); `None` for a store that is no Raft member (the in-memory one).
    fn membership(&self) -> Option<Membership> {
        None
    }
}

/// The Raft configuration as one member sees it, for `/berth/v1/members`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Membership {
    /// The member answering.
    pub self_id: u64,
    /// The leader it knows (0 when none).
    pub leader_id: u64,
    /// Members of the configuration as of its applied index.
    pub members: Vec<super::Member>,
}

/// A member's health as the health endpoints report it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// The Raft driver thread has stopped: the member can neither commit nor read (not live).
    pub driver_stopped: bool,
    /// No leader is known: writes and linearizable reads wait (not ready).
    pub no_leader: bool,
    /// Why this member's storage refuses writes (a full disk, say): it acknowledges nothing until
    /// a write succeeds again (not ready).
    pub storage: Option<String>,
}
