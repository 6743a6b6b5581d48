//! What the Raft driver needs from a member's storage beyond `raft::Storage`: appending and syncing
//! the log, checkpointing the applied objects off the driver thread, compacting, and installing a
//! snapshot. `SledStorage` (WAL + sled) is the production
//! implementation; the driver's unit tests use an in-memory one.

use std::fmt::Display;
use std::sync::Arc;

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use serde_json::Value;

use super::members::Members;
use super::snapshot::{SharedObject, SnapshotData};
use super::state_machine::StateMachine;

/// A member's Raft storage as the driver uses it. Every method is called on the driver's thread.
/// Any error makes the member inoperable: the driver panics on it, except where a method says it
/// waits out the failure (a full disk).
pub(crate) trait LogStore: raft::Storage + Send + 'static {
    /// Why an operation failed.
    type Error: Display;
    /// What the syncer fsyncs to make the writes so far durable.
    type Durable: Durable;
    /// A checkpoint's writes, run on the checkpointer thread.
    type Checkpoint: Checkpoint;

    /// Index the checkpointed objects are at; replay applies the log after it.
    fn applied(&self) -> u64;
    /// Index of the last compaction point (or installed snapshot).
    fn snapshot_index(&self) -> u64;
    /// Encoded size of the log since the compaction point.
    fn log_bytes(&self) -> u64;
    /// Whether a checkpoint is being written.
    fn checkpointing(&self) -> bool;
    /// The hard state as persisted.
    fn hard_state(&self) -> &HardState;
    /// Every checkpointed object: key, JSON, revision.
    ///
    /// # Errors
    /// When the stored objects cannot be read.
    fn objects(&self) -> Result<Vec<(String, Value, u64)>, Self::Error>;
    /// Members as of the checkpoint.
    ///
    /// # Errors
    /// When they cannot be read.
    fn members(&self) -> Result<Members, Self::Error>;

    /// Appends entries (and the hard state, if it changed), replacing any conflicting suffix. Not
    /// durable until synced. The driver retries a failed append (a full disk) until it succeeds.
    ///
    /// # Errors
    /// When the write fails.
    fn append(&mut self, ents: &[Entry], hs: Option<&HardState>) -> Result<(), Self::Error>;
    /// Persists the hard state (durable after the next sync).
    ///
    /// # Errors
    /// When the write fails.
    fn set_hard_state(&mut self, hs: &HardState) -> Result<(), Self::Error>;
    /// Updates only the commit index of the hard state.
    ///
    /// # Errors
    /// When the write fails.
    fn set_commit(&mut self, commit: u64) -> Result<(), Self::Error>;
    /// Makes every write so far durable, on the calling thread.
    ///
    /// # Errors
    /// When the sync fails.
    fn sync(&self) -> Result<(), Self::Error>;
    /// A handle the syncer thread syncs to make every write so far durable.
    fn sync_handle(&self) -> Self::Durable;

    /// Records keys written by applied entries; the next checkpoint stores their values.
    fn note_written<'a>(&mut self, keys: impl IntoIterator<Item = &'a str>);
    /// Keys written since the last checkpoint.
    fn take_dirty(&mut self) -> Vec<String>;
    /// Records the conf state an applied conf change produced.
    fn set_conf_state(&mut self, cs: &ConfState);
    /// Prepares a checkpoint at `applied` of the changed objects (`None` = deleted). Until
    /// [`finish_checkpoint`](Self::finish_checkpoint) no snapshot is built and nothing compacted.
    ///
    /// # Errors
    /// When the commit index cannot be written.
    fn begin_checkpoint(
        &mut self,
        applied: u64,
        changes: Vec<(String, Option<SharedObject>)>,
        members: &Members,
    ) -> Result<Self::Checkpoint, Self::Error>;
    /// Records a finished checkpoint (`0`: it failed, and none is in progress any more).
    fn finish_checkpoint(&mut self, applied: u64);
    /// Discards log entries up to and including `index`, which must be checkpointed.
    ///
    /// # Errors
    /// When the compaction point cannot be written.
    fn compact(&mut self, index: u64) -> Result<(), Self::Error>;
    /// Installs a snapshot from the leader, replacing the objects and the log; returns its state.
    ///
    /// # Errors
    /// When it cannot be written or does not decode.
    fn apply_snapshot(&mut self, snap: &Snapshot) -> Result<SnapshotData, Self::Error>;
}

/// What the syncer thread syncs.
pub(crate) trait Durable: Send + 'static {
    /// Makes every write before this handle was taken durable.
    ///
    /// # Errors
    /// The OS error of the sync.
    fn sync(&self) -> std::io::Result<()>;
}

impl Durable for Arc<std::fs::File> {
    fn sync(&self) -> std::io::Result<()> {
        self.sync_data()
    }
}

/// A checkpoint's writes, runnable on another thread.
pub(crate) trait Checkpoint: Send + 'static {
    /// Writes the checkpoint; returns its index.
    ///
    /// # Errors
    /// Why it could not be written (the log still holds every change, so this is not fatal).
    fn write(self) -> Result<u64, String>;
}

/// The state machine and members a member restarts with: the checkpoint (the log after it is applied
/// again by Raft). Shared by `RaftStore::open` and the harnesses.
///
/// # Errors
/// When the checkpoint cannot be read or the commit index repaired.
pub(crate) fn restore<S: LogStore>(storage: &mut S) -> Result<(StateMachine, Members), S::Error> {
    let objects = storage.objects()?;
    let mut applied = storage.applied();
    let mut hs = storage.hard_state().clone();
    if hs.commit < applied {
        // A crash between writing an installed snapshot's objects and resetting the log leaves the
        // log's commit index behind the applied one; an applied entry was committed.
        hs.commit = applied;
        storage.set_hard_state(&hs)?;
    }
    if applied == 0 && storage.snapshot_index() > 0 {
        applied = storage.snapshot_index();
    }
    let members = storage.members()?;
    Ok((StateMachine::restore(objects, applied), members))
}
