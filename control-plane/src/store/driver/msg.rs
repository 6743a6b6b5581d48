//! What the driver is asked ([`Msg`], through its inbox) and what it answers about itself ([`Status`]).

use raft::eraftpb::{ConfChange, Message};
use tokio::sync::oneshot;

use super::super::members::Member;
use super::super::object_store::{Committed, Result};

/// Requests to the driver thread.
pub(crate) enum Msg {
    /// A JSON-encoded batch to replicate; answered when applied.
    Propose {
        data: Vec<u8>,
        tx: oneshot::Sender<Result<Committed>>,
    },
    /// A message from a peer.
    Raft(Box<Message>),
    /// A linearizable read barrier: answered with the index to wait for.
    ReadIndex(oneshot::Sender<Result<u64>>),
    /// A membership change; answered when applied.
    ConfChange {
        cc: ConfChange,
        tx: oneshot::Sender<Result<()>>,
    },
    /// The transport could not reach a peer.
    Unreachable(u64),
    /// The transport finished (or failed) sending a snapshot.
    SnapshotSent { to: u64, ok: bool },
    /// Raft status for tools and tests.
    Status(oneshot::Sender<Status>),
    /// The syncer made every Ready up to this number durable.
    Persisted(u64),
    /// The syncer's fsync failed: what was written since the last good one may not be on disk.
    SyncFailed(String),
}

/// A point-in-time view of this member's Raft state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// This member's id.
    pub id: u64,
    /// Known leader (0 when none).
    pub leader_id: u64,
    /// Current term.
    pub term: u64,
    /// Commit index.
    pub commit: u64,
    /// Applied index.
    pub applied: u64,
    /// First index still in the log (everything before is compacted into the snapshot).
    pub first_index: u64,
    /// Members of the configuration.
    pub members: Vec<Member>,
}
