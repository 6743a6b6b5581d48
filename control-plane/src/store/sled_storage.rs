//! `raft::Storage` for one member: the Raft log and hard state in a write-ahead log (`wal`,
//! mirrored in memory for raft-rs), and in sled the snapshot metadata, this member's id and the
//! objects as of the last checkpoint. Writes happen only on the driver thread that owns `RawNode`.
//!
//! Objects are not written to sled per applied entry: the in-memory state machine is the live copy and
//! the log is the durable record of every change since the last checkpoint. A checkpoint (before each
//! compaction) syncs the log, then writes every object changed since the previous checkpoint together
//! with the applied index, conf state and members in one sled batch (a sled `Batch` is atomic only
//! within one tree, hence the reserved `\0` keys in `objects`). Restart = checkpoint + log replay.
//! Profiling the write path showed sled's per-key inserts and flushes as ~40% of a member's CPU.
//!
//! Trees: `raft` (snapshot metadata, this member's id) and `objects`.

use std::path::Path;

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, StorageError};
use serde_json::Value;
use std::collections::HashSet;
use std::sync::Arc;

use sled::Transactional as _;

use super::log_cache::LogCache;
use super::log_store::LogStore;
use super::members::Members;
use super::snapshot::{decode_record, encode_record, SnapshotWriter};
use super::storage_error::corrupt;
use super::wal::Wal;

pub use super::snapshot::{SharedObject, SnapshotData};
pub use super::storage_error::{Error, Result};

const SNAP_META: &[u8] = b"snapshot_meta";
const NODE_ID: &[u8] = b"id";
const APPLIED: &[u8] = b"\0applied";
const CONF_STATE: &[u8] = b"\0conf_state";
const MEMBERS: &[u8] = b"\0members";

/// The conf state stored with the last checkpoint (or installed snapshot).
fn stored_conf_state(objects: &sled::Tree) -> Result<ConfState> {
    match objects.get(CONF_STATE)? {
        Some(b) => ConfState::parse_from_bytes(&b).map_err(|e| corrupt("conf state", e)),
        None => Ok(ConfState::default()),
    }
}

fn raft_err(e: Error) -> raft::Error {
    raft::Error::Store(StorageError::Other(Box::new(e)))
}

/// A checkpoint's writes, runnable on another thread: sled inserts of thousands of objects and a
/// flush take hundreds of milliseconds, which on the driver thread stalled every write behind them.
pub struct CheckpointJob {
    db: sled::Db,
    objects: sled::Tree,
    wal: Arc<std::fs::File>,
    applied: u64,
    changes: Vec<(String, Option<SharedObject>)>,
    conf_state: Vec<u8>,
    members: Vec<u8>,
}

impl CheckpointJob {
    /// Syncs the log (so it holds every entry up to the checkpoint and the commit index), then writes
    /// the objects, applied index, conf state and members in one sled batch and flushes sled.
    /// Returns the checkpoint index.
    ///
    /// # Errors
    /// On I/O or sled failure.
    pub fn run(self) -> Result<u64> {
        self.wal.sync_data().map_err(|source| Error::Io {
            what: "wal fsync",
            source,
        })?;
        let mut batch = sled::Batch::default();
        for (key, value) in self.changes {
            match value {
                Some((v, rev)) => batch.insert(key.as_bytes(), encode_record(rev, &v)),
                None => batch.remove(key.as_bytes()),
            }
        }
        batch.insert(APPLIED, &self.applied.to_be_bytes());
        batch.insert(CONF_STATE, self.conf_state);
        batch.insert(MEMBERS, self.members);
        self.objects.apply_batch(batch)?;
        self.db.flush()?;
        Ok(self.applied)
    }
}

/// WAL + sled Raft storage. Reads (the `raft::Storage` methods) take `&self`; writes take
/// `&mut self` and are reached through `RawNode::mut_store` on the driver thread.
pub struct SledStorage {
    db: sled::Db,
    raft: sled::Tree,
    objects: sled::Tree,
    wal: Wal,
    /// The log after the compaction point, as written to the WAL.
    log: LogCache,
    hard_state: HardState,
    /// Conf state as of the last applied entry.
    conf_state: ConfState,
    /// Index the objects in sled are at (the last checkpoint).
    applied: u64,
    /// Keys written since the last checkpoint.
    dirty: HashSet<String>,
    /// A checkpoint job is writing sled.
    checkpointing: bool,
}

impl SledStorage {
    /// Opens (or creates) the storage in `dir` (sled files, and the log under `dir/wal`).
    ///
    /// # Errors
    /// When sled or the WAL cannot open the directory or stored state does not decode.
    pub fn open(dir: &Path) -> Result<Self> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(256 << 20)
            .mode(sled::Mode::HighThroughput)
            .open()?;
        Self::from_parts(db, &dir.join("wal"))
    }

    fn from_parts(db: sled::Db, wal_dir: &Path) -> Result<Self> {
        let raft = db.open_tree("raft")?;
        let objects = db.open_tree("objects")?;
        let conf_state = stored_conf_state(&objects)?;
        let (snap_index, snap_term) = match raft.get(SNAP_META)? {
            Some(b) if b.len() == 16 => (
                u64::from_be_bytes(b[..8].try_into().expect("8")),
                u64::from_be_bytes(b[8..].try_into().expect("8")),
            ),
            Some(_) => return Err(corrupt("snapshot metadata", "wrong length")),
            None => (0, 0),
        };
        let applied = match objects.get(APPLIED)? {
            Some(b) => u64::from_be_bytes(
                b.as_ref()
                    .try_into()
                    .map_err(|e| corrupt("applied index", e))?,
            ),
            None => 0,
        };
        let (wal, replayed) = Wal::open(wal_dir)?;
        let log = LogCache::new(snap_index, snap_term, replayed.entries)?;
        let last_index = log.last_index();
        if applied > last_index {
            return Err(corrupt(
                "wal",
                format!("objects checkpointed at {applied} but the log ends at {last_index}"),
            ));
        }
        Ok(SledStorage {
            db,
            raft,
            objects,
            wal,
            log,
            hard_state: replayed.hard_state.unwrap_or_default(),
            conf_state,
            applied,
            dirty: HashSet::new(),
            checkpointing: false,
        })
    }

    /// Whether this data dir already holds a Raft state (restart) rather than nothing (first start).
    pub fn is_initialized(&self) -> bool {
        self.conf_state != ConfState::default()
            || self.log.last_index() > 0
            || self.node_id().ok().flatten().is_some()
    }

    /// The Raft id stored for this member, if any.
    ///
    /// # Errors
    /// On sled failure or a corrupt value.
    pub fn node_id(&self) -> Result<Option<u64>> {
        match self.raft.get(NODE_ID)? {
            Some(b) => Ok(Some(u64::from_be_bytes(
                b.as_ref().try_into().map_err(|e| corrupt("node id", e))?,
            ))),
            None => Ok(None),
        }
    }

    /// Records this member's Raft id (flushed).
    ///
    /// # Errors
    /// On sled failure.
    pub fn set_node_id(&mut self, id: u64) -> Result<()> {
        self.raft.insert(NODE_ID, &id.to_be_bytes())?;
        self.db.flush()?;
        Ok(())
    }

    /// Bootstraps a fresh member of an initial cluster: every initial member writes the same state,
    /// a snapshot point at index 1 / term 1 with the voters, so a member added later catches up by
    /// snapshot first and then sees exactly the same log.
    ///
    /// # Errors
    /// On sled failure.
    pub fn bootstrap(&mut self, voters: Vec<u64>, members: &Members) -> Result<()> {
        let cs = ConfState {
            voters,
            ..Default::default()
        };
        let hs = HardState {
            term: 1,
            commit: 1,
            ..Default::default()
        };
        self.set_hard_state(&hs)?;
        self.wal.sync()?;
        self.write_snap_meta(1, 1)?;
        self.conf_state = cs;
        self.checkpoint(1, Vec::new(), members)?;
        Ok(())
    }

    /// Index the objects in sled are at (the last checkpoint); replay applies the log after it.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// The hard state as persisted.
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// The conf state as of the applied index.
    pub fn conf_state(&self) -> &ConfState {
        &self.conf_state
    }

    /// Index of the last compaction / snapshot point.
    pub fn snapshot_index(&self) -> u64 {
        self.log.snapshot_index()
    }

    /// Members as of the applied index.
    ///
    /// # Errors
    /// On sled failure or corrupt value.
    pub fn members(&self) -> Result<Members> {
        match self.objects.get(MEMBERS)? {
            Some(b) => serde_json::from_slice(&b).map_err(|e| corrupt("members", e)),
            None => Ok(Members::default()),
        }
    }

    /// Every stored object: key, JSON, revision (to rebuild the in-memory state machine).
    ///
    /// # Errors
    /// On sled failure or a corrupt record.
    pub fn objects(&self) -> Result<Vec<(String, Value, u64)>> {
        let mut out = Vec::new();
        for kv in self.objects.iter() {
            let (k, v) = kv?;
            if k.first() == Some(&0) {
                continue;
            }
            let key = String::from_utf8(k.to_vec()).map_err(|e| corrupt("object key", e))?;
            let (rev, value) = decode_record(&v)?;
            out.push((key, value, rev));
        }
        Ok(out)
    }

    /// Appends entries (and the hard state, if it changed) to the log, replacing any conflicting
    /// suffix. Not durable until the WAL is synced ([`sync_handle`](Self::sync_handle)).
    ///
    /// # Panics
    /// If the entries would leave a gap or overwrite compacted entries (a Raft invariant).
    pub fn append(&mut self, ents: &[Entry], hs: Option<&HardState>) -> Result<()> {
        self.log.check_append(ents);
        self.wal.append(ents, hs)?;
        self.log.append(ents)?;
        if let Some(hs) = hs {
            self.hard_state = hs.clone();
        }
        self.wal.maybe_rotate(&self.hard_state)?;
        Ok(())
    }

    /// Persists the hard state (durable after the WAL is synced).
    ///
    /// # Errors
    /// On I/O failure.
    pub fn set_hard_state(&mut self, hs: &HardState) -> Result<()> {
        self.append(&[], Some(hs))
    }

    /// Updates only the commit index of the hard state.
    ///
    /// # Errors
    /// On I/O failure.
    pub fn set_commit(&mut self, commit: u64) -> Result<()> {
        let mut hs = self.hard_state.clone();
        hs.commit = commit;
        self.set_hard_state(&hs)
    }

    /// Records keys written by applied entries; the next checkpoint stores their values.
    pub fn note_written<'a>(&mut self, keys: impl IntoIterator<Item = &'a str>) {
        for k in keys {
            if !self.dirty.contains(k) {
                self.dirty.insert(k.to_string());
            }
        }
    }

    /// Keys written since the last checkpoint (the driver looks up their current values).
    pub fn take_dirty(&mut self) -> Vec<String> {
        self.dirty.drain().collect()
    }

    /// Records the conf state an applied conf change produced (stored by the next checkpoint).
    pub fn set_conf_state(&mut self, cs: &ConfState) {
        self.conf_state = cs.clone();
    }

    /// Stores the state as of `applied` before returning (bootstrap, tests); the driver uses
    /// [`begin_checkpoint`](Self::begin_checkpoint) so the write happens off its thread.
    ///
    /// # Errors
    /// On I/O or sled failure.
    pub fn checkpoint(
        &mut self,
        applied: u64,
        changes: Vec<(String, Option<SharedObject>)>,
        members: &Members,
    ) -> Result<()> {
        let job = self.begin_checkpoint(applied, changes, members)?;
        let done = job.run()?;
        self.finish_checkpoint(done);
        Ok(())
    }

    /// Prepares a checkpoint at `applied`: the changed objects (`None` = deleted) with the applied
    /// index, conf state and members. Until [`finish_checkpoint`](Self::finish_checkpoint), snapshots
    /// are unavailable (sled is being written) and the log is not compacted.
    ///
    /// # Errors
    /// On I/O failure writing the commit index.
    pub fn begin_checkpoint(
        &mut self,
        applied: u64,
        changes: Vec<(String, Option<SharedObject>)>,
        members: &Members,
    ) -> Result<CheckpointJob> {
        assert!(!self.checkpointing, "one checkpoint at a time");
        if self.hard_state.commit < applied {
            let mut hs = self.hard_state.clone();
            hs.commit = applied;
            self.set_hard_state(&hs)?;
        }
        self.checkpointing = true;
        Ok(CheckpointJob {
            db: self.db.clone(),
            objects: self.objects.clone(),
            wal: self.wal.sync_handle(),
            applied,
            changes,
            conf_state: self
                .conf_state
                .write_to_bytes()
                .expect("conf state encodes"),
            members: serde_json::to_vec(members).expect("members encode"),
        })
    }

    /// Records a checkpoint written by [`CheckpointJob::run`].
    pub fn finish_checkpoint(&mut self, applied: u64) {
        self.checkpointing = false;
        self.applied = self.applied.max(applied);
    }

    /// Whether a checkpoint is being written.
    pub fn checkpointing(&self) -> bool {
        self.checkpointing
    }

    /// Encoded size of the log kept in memory (and on disk) since the compaction point.
    pub fn log_bytes(&self) -> u64 {
        self.log.bytes()
    }

    fn write_snap_meta(&mut self, index: u64, term: u64) -> Result<()> {
        let mut v = [0u8; 16];
        v[..8].copy_from_slice(&index.to_be_bytes());
        v[8..].copy_from_slice(&term.to_be_bytes());
        self.raft.insert(SNAP_META, &v)?;
        self.log.compact(index, term);
        Ok(())
    }

    /// Discards log entries up to and including `index`, which must be checkpointed. The compaction
    /// point is flushed first, so a crash between the two steps leaves only unreachable entries behind.
    ///
    /// # Panics
    /// If `index` is past the checkpoint.
    pub fn compact(&mut self, index: u64) -> Result<()> {
        if index <= self.log.snapshot_index() {
            return Ok(());
        }
        assert!(
            index <= self.applied,
            "compact {index} past checkpoint {}",
            self.applied
        );
        let term = self.log.term_of(index)?;
        // The compaction point is flushed before the entries go, so a crash between the two steps
        // leaves only unreachable entries behind.
        let mut v = [0u8; 16];
        v[..8].copy_from_slice(&index.to_be_bytes());
        v[8..].copy_from_slice(&term.to_be_bytes());
        self.raft.insert(SNAP_META, &v)?;
        self.db.flush()?;
        self.log.compact(index, term);
        self.wal.purge(index)?;
        Ok(())
    }

    /// Installs a snapshot received from the leader: replaces every object, the applied index,
    /// conf state and members in one transaction together with the snapshot point, then drops the log.
    /// Returns the decoded state for the in-memory state machine.
    ///
    /// # Errors
    /// On sled failure or undecodable snapshot data.
    pub fn apply_snapshot(&mut self, snap: &Snapshot) -> Result<SnapshotData> {
        assert!(!self.checkpointing, "snapshot install during a checkpoint");
        let meta = snap.get_metadata();
        let data = SnapshotData::decode(&snap.data)?;
        let mut obj_batch = sled::Batch::default();
        for kv in self.objects.iter() {
            obj_batch.remove(kv?.0);
        }
        for (key, rev, value) in &data.objects {
            obj_batch.insert(key.as_bytes(), encode_record(*rev, value));
        }
        obj_batch.insert(APPLIED, &meta.index.to_be_bytes());
        obj_batch.insert(
            CONF_STATE,
            meta.get_conf_state()
                .write_to_bytes()
                .expect("conf state encodes"),
        );
        obj_batch.insert(
            MEMBERS,
            serde_json::to_vec(&data.members).expect("members encode"),
        );
        let mut hs = self.hard_state.clone();
        hs.term = hs.term.max(meta.term);
        hs.commit = hs.commit.max(meta.index);
        let mut snap_meta = [0u8; 16];
        snap_meta[..8].copy_from_slice(&meta.index.to_be_bytes());
        snap_meta[8..].copy_from_slice(&meta.term.to_be_bytes());
        (&self.objects, &self.raft)
            .transaction(|(o, r)| {
                o.apply_batch(&obj_batch)?;
                r.insert(SNAP_META, &snap_meta)?;
                Ok::<(), sled::transaction::ConflictableTransactionError<()>>(())
            })
            .map_err(|e| match e {
                sled::transaction::TransactionError::Storage(e) => Error::Sled(e),
                sled::transaction::TransactionError::Abort(()) => corrupt("snapshot", "aborted"),
            })?;
        self.db.flush()?;
        // Replay drops log entries at or below the snapshot point, so a crash before this reset
        // leaves a log that still follows on from the snapshot.
        self.wal.reset(&hs)?;
        self.log.reset(meta.index, meta.term);
        self.dirty.clear();
        self.hard_state = hs;
        self.conf_state = meta.get_conf_state().clone();
        self.applied = meta.index;
        Ok(data)
    }

    /// The file to `fdatasync` to make every log write so far durable (the syncer thread's job).
    pub fn sync_handle(&self) -> Arc<std::fs::File> {
        self.wal.sync_handle()
    }

    /// Makes every log write so far durable.
    ///
    /// # Errors
    /// On I/O failure.
    pub fn sync(&self) -> Result<()> {
        self.wal.sync()
    }

    /// Builds a snapshot of the checkpointed state (objects, members, conf state, all as stored
    /// in sled at the checkpoint index); the follower gets the rest from the log.
    fn build_snapshot(&self) -> Result<Snapshot> {
        let applied = self.applied;
        let term = self.log.term_of(applied)?;
        let conf_state = stored_conf_state(&self.objects)?;
        let mut data = SnapshotWriter::new(applied, &self.members()?);
        for kv in self.objects.iter() {
            let (k, v) = kv?;
            if k.first() == Some(&0) {
                continue;
            }
            data.object(&k, &v);
        }
        let data = data.finish()?;
        let meta = SnapshotMetadata {
            index: applied,
            term,
            conf_state: Some(conf_state).into(),
            ..Default::default()
        };
        let mut snap = Snapshot::default();
        snap.set_metadata(meta);
        snap.data = data.into();
        Ok(snap)
    }
}

impl raft::Storage for SledStorage {
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

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<raft::eraftpb::Snapshot> {
        if self.applied < request_index || self.checkpointing {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        self.build_snapshot().map_err(raft_err)
    }
}

impl super::log_store::Checkpoint for CheckpointJob {
    fn write(self) -> std::result::Result<u64, String> {
        self.run().map_err(|e| e.to_string())
    }
}

impl LogStore for SledStorage {
    type Error = Error;
    type Durable = Arc<std::fs::File>;
    type Checkpoint = CheckpointJob;

    fn applied(&self) -> u64 {
        SledStorage::applied(self)
    }
    fn snapshot_index(&self) -> u64 {
        SledStorage::snapshot_index(self)
    }
    fn log_bytes(&self) -> u64 {
        SledStorage::log_bytes(self)
    }
    fn checkpointing(&self) -> bool {
        SledStorage::checkpointing(self)
    }
    fn hard_state(&self) -> &HardState {
        SledStorage::hard_state(self)
    }
    fn objects(&self) -> Result<Vec<(String, Value, u64)>> {
        SledStorage::objects(self)
    }
    fn members(&self) -> Result<Members> {
        SledStorage::members(self)
    }
    fn append(&mut self, ents: &[Entry], hs: Option<&HardState>) -> Result<()> {
        SledStorage::append(self, ents, hs)
    }
    fn set_hard_state(&mut self, hs: &HardState) -> Result<()> {
        SledStorage::set_hard_state(self, hs)
    }
    fn set_commit(&mut self, commit: u64) -> Result<()> {
        SledStorage::set_commit(self, commit)
    }
    fn sync(&self) -> Result<()> {
        SledStorage::sync(self)
    }
    fn sync_handle(&self) -> Arc<std::fs::File> {
        SledStorage::sync_handle(self)
    }
    fn note_written<'a>(&mut self, keys: impl IntoIterator<Item = &'a str>) {
        SledStorage::note_written(self, keys);
    }
    fn take_dirty(&mut self) -> Vec<String> {
        SledStorage::take_dirty(self)
    }
    fn set_conf_state(&mut self, cs: &ConfState) {
        SledStorage::set_conf_state(self, cs);
    }
    fn begin_checkpoint(
        &mut self,
        applied: u64,
        changes: Vec<(String, Option<SharedObject>)>,
        members: &Members,
    ) -> Result<CheckpointJob> {
        SledStorage::begin_checkpoint(self, applied, changes, members)
    }
    fn finish_checkpoint(&mut self, applied: u64) {
        SledStorage::finish_checkpoint(self, applied);
    }
    fn compact(&mut self, index: u64) -> Result<()> {
        SledStorage::compact(self, index)
    }
    fn apply_snapshot(&mut self, snap: &Snapshot) -> Result<SnapshotData> {
        SledStorage::apply_snapshot(self, snap)
    }
}

#[cfg(test)]
mod tests;
