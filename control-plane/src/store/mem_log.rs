//! An in-memory [`LogStore`] for the driver's unit tests: the same log, checkpoint and snapshot rules as
//! the WAL + sled storage, with nothing on disk (every write is durable at once).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, StorageError};
use serde_json::Value;

use super::log_cache::LogCache;
use super::log_store::{Checkpoint, Durable, LogStore};
use super::members::Members;
use super::snapshot::{encode_record, SharedObject, SnapshotData, SnapshotWriter};
use super::storage_error::Error;

/// What a checkpoint stored: objects (key → revision, JSON), members and conf state at `applied`.
#[derive(Debug, Default)]
struct Checkpointed {
    applied: u64,
    objects: BTreeMap<String, (u64, Value)>,
    members: Members,
    conf_state: ConfState,
}

/// In-memory Raft storage.
#[derive(Debug, Default)]
pub(crate) struct MemLog {
    log: LogCache,
    hard_state: HardState,
    /// Conf state as of the last applied entry.
    conf_state: ConfState,
    /// Shared with the checkpoint job, which writes it "off the driver thread" like sled's.
    checkpoint: Arc<Mutex<Checkpointed>>,
    /// Index the checkpoint is at, as the driver last learned it.
    applied: u64,
    dirty: HashSet<String>,
    checkpointing: bool,
}

impl MemLog {
    /// A member of a new cluster of `voters`, at the bootstrap point (index 1, term 1).
    pub(crate) fn bootstrap(voters: Vec<u64>, members: &Members) -> Self {
        let mut s = MemLog::default();
        s.hard_state.term = 1;
        s.hard_state.commit = 1;
        s.log.compact(1, 1);
        s.conf_state.voters = voters;
        let mut c = s.checkpoint.lock().expect("checkpoint lock");
        c.applied = 1;
        c.members = members.clone();
        c.conf_state = s.conf_state.clone();
        drop(c);
        s.applied = 1;
        s
    }
}

/// A checkpoint of the in-memory storage.
pub(crate) struct MemCheckpoint {
    into: Arc<Mutex<Checkpointed>>,
    applied: u64,
    changes: Vec<(String, Option<SharedObject>)>,
    members: Members,
    conf_state: ConfState,
}

impl Checkpoint for MemCheckpoint {
    fn write(self) -> Result<u64, String> {
        let mut c = self.into.lock().expect("checkpoint lock");
        for (key, value) in self.changes {
            match value {
                Some((v, rev)) => c.objects.insert(key, (rev, (*v).clone())),
                None => c.objects.remove(&key),
            };
        }
        c.applied = self.applied;
        c.members = self.members;
        c.conf_state = self.conf_state;
        Ok(self.applied)
    }
}

/// Nothing to sync: memory is as durable as this storage gets.
pub(crate) struct NoSync;

impl Durable for NoSync {
    fn sync(&self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogStore for MemLog {
    type Error = Error;
    type Durable = NoSync;
    type Checkpoint = MemCheckpoint;

    fn applied(&self) -> u64 {
        self.applied
    }
    fn snapshot_index(&self) -> u64 {
        self.log.snapshot_index()
    }
    fn log_bytes(&self) -> u64 {
        self.log.bytes()
    }
    fn checkpointing(&self) -> bool {
        self.checkpointing
    }
    fn hard_state(&self) -> &HardState {
        &self.hard_state
    }
    fn objects(&self) -> Result<Vec<(String, Value, u64)>, Error> {
        let c = self.checkpoint.lock().expect("checkpoint lock");
        Ok(c.objects
            .iter()
            .map(|(k, (rev, v))| (k.clone(), v.clone(), *rev))
            .collect())
    }
    fn members(&self) -> Result<Members, Error> {
        Ok(self
            .checkpoint
            .lock()
            .expect("checkpoint lock")
            .members
            .clone())
    }
    fn append(&mut self, ents: &[Entry], hs: Option<&HardState>) -> Result<(), Error> {
        self.log.check_append(ents);
        self.log.append(ents)?;
        if let Some(hs) = hs {
            self.hard_state = hs.clone();
        }
        Ok(())
    }
    fn set_hard_state(&mut self, hs: &HardState) -> Result<(), Error> {
        self.hard_state = hs.clone();
        Ok(())
    }
    fn set_commit(&mut self, commit: u64) -> Result<(), Error> {
        self.hard_state.commit = commit;
        Ok(())
    }
    fn sync(&self) -> Result<(), Error> {
        Ok(())
    }
    fn sync_handle(&self) -> NoSync {
        NoSync
    }
    fn note_written<'a>(&mut self, keys: impl IntoIterator<Item = &'a str>) {
        self.dirty.extend(keys.into_iter().map(str::to_string));
    }
    fn take_dirty(&mut self) -> Vec<String> {
        self.dirty.drain().collect()
    }
    fn set_conf_state(&mut self, cs: &ConfState) {
        self.conf_state = cs.clone();
    }
    fn begin_checkpoint(
        &mut self,
        applied: u64,
        changes: Vec<(String, Option<SharedObject>)>,
        members: &Members,
    ) -> Result<MemCheckpoint, Error> {
        assert!(!self.checkpointing, "one checkpoint at a time");
        self.hard_state.commit = self.hard_state.commit.max(applied);
        self.checkpointing = true;
        Ok(MemCheckpoint {
            into: self.checkpoint.clone(),
            applied,
            changes,
            members: members.clone(),
            conf_state: self.conf_state.clone(),
        })
    }
    fn finish_checkpoint(&mut self, applied: u64) {
        self.checkpointing = false;
        self.applied = self.applied.max(applied);
    }
    fn compact(&mut self, index: u64) -> Result<(), Error> {
        if index <= self.log.snapshot_index() {
            return Ok(());
        }
        assert!(index <= self.applied, "compact {index} past checkpoint");
        let term = self.log.term_of(index)?;
        self.log.compact(index, term);
        Ok(())
    }
    fn apply_snapshot(&mut self, snap: &Snapshot) -> Result<SnapshotData, Error> {
        assert!(!self.checkpointing, "snapshot install during a checkpoint");
        let meta = snap.get_metadata();
        let data = SnapshotData::decode(&snap.data)?;
        *self.checkpoint.lock().expect("checkpoint lock") = Checkpointed {
            applied: meta.index,
            objects: data
                .objects
                .iter()
                .map(|(k, rev, v)| (k.clone(), (*rev, v.clone())))
                .collect(),
            members: data.members.clone(),
            conf_state: meta.get_conf_state().clone(),
        };
        self.hard_state.term = self.hard_state.term.max(meta.term);
        self.hard_state.commit = self.hard_state.commit.max(meta.index);
        self.log.reset(meta.index, meta.term);
        self.dirty.clear();
        self.conf_state = meta.get_conf_state().clone();
        self.applied = meta.index;
        Ok(data)
    }
}

impl raft::Storage for MemLog {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        self.log
            .entries(low, high, max_size.into().unwrap_or(u64::MAX))
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.log.term(idx)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.log.snapshot_index() + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.log.last_index())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        if self.applied < request_index || self.checkpointing {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        let c = self.checkpoint.lock().expect("checkpoint lock");
        let other = |e: Error| raft::Error::Store(StorageError::Other(Box::new(e)));
        let term = self.log.term_of(c.applied).map_err(other)?;
        let mut data = SnapshotWriter::new(c.applied, &c.members);
        for (key, (rev, value)) in &c.objects {
            data.object(key.as_bytes(), &encode_record(*rev, value));
        }
        let mut snap = Snapshot::default();
        snap.set_metadata(SnapshotMetadata {
            index: c.applied,
            term,
            conf_state: Some(c.conf_state.clone()).into(),
            ..Default::default()
        });
        snap.data = data.finish().map_err(other)?.into();
        Ok(snap)
    }
}
