//! `raft::Storage` for one member: the Raft log and hard state in a write-ahead log ([`super::wal`],
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

use super::members::Members;
use super::wal::{self, Wal};

/// Errors of the sled storage. Any of them makes the member inoperable (STYLE rule 24).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// sled failed.
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    /// Reading or writing the log failed (disk full, I/O error).
    #[error("{what}: {source}")]
    Io {
        /// The step that failed.
        what: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Stored bytes did not decode.
    #[error("corrupt {what}: {detail}")]
    Corrupt {
        /// What was being decoded.
        what: &'static str,
        /// Decoder message.
        detail: String,
    },
}

/// Result type of the sled storage.
pub type Result<T, E = Error> = std::result::Result<T, E>;

const SNAP_META: &[u8] = b"snapshot_meta";
const NODE_ID: &[u8] = b"id";
const APPLIED: &[u8] = b"\0applied";
const CONF_STATE: &[u8] = b"\0conf_state";
const MEMBERS: &[u8] = b"\0members";
const SNAPSHOT_MAGIC: &[u8] = b"BRT1";

fn corrupt(what: &'static str, e: impl std::fmt::Display) -> Error {
    Error::Corrupt {
        what,
        detail: e.to_string(),
    }
}

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

/// Encodes an object as stored: revision (8 bytes BE) then the JSON.
pub fn encode_record(revision: u64, value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(&revision.to_be_bytes());
    serde_json::to_writer(&mut out, value).expect("json value always serializes");
    out
}

/// Decodes an object record written by [`encode_record`].
pub fn decode_record(bytes: &[u8]) -> Result<(u64, Value)> {
    if bytes.len() < 8 {
        return Err(corrupt("object record", "shorter than 8 bytes"));
    }
    let rev = u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes"));
    let value = serde_json::from_slice(&bytes[8..]).map_err(|e| corrupt("object record", e))?;
    Ok((rev, value))
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

/// An object's current value and revision, shared with the state machine (no copy).
pub type SharedObject = (Arc<Value>, u64);

/// The state a snapshot carries: every object, the applied index, and the members.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SnapshotData {
    /// Index the snapshot is at.
    pub applied: u64,
    /// Members at that index.
    pub members: Members,
    /// Objects: key, revision, JSON.
    pub objects: Vec<(String, u64, Value)>,
}

impl SnapshotData {
    /// Decodes the `data` of a Raft snapshot.
    pub fn decode(mut bytes: &[u8]) -> Result<Self> {
        fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Result<&'a [u8]> {
            if bytes.len() < n {
                return Err(corrupt("snapshot", "truncated"));
            }
            let (head, tail) = bytes.split_at(n);
            *bytes = tail;
            Ok(head)
        }
        fn take_u32(bytes: &mut &[u8]) -> Result<usize> {
            Ok(u32::from_be_bytes(take(bytes, 4)?.try_into().expect("4 bytes")) as usize)
        }
        if take(&mut bytes, 4)? != SNAPSHOT_MAGIC {
            return Err(corrupt("snapshot", "bad magic"));
        }
        let applied = u64::from_be_bytes(take(&mut bytes, 8)?.try_into().expect("8 bytes"));
        let n = take_u32(&mut bytes)?;
        let members = serde_json::from_slice(take(&mut bytes, n)?)
            .map_err(|e| corrupt("snapshot members", e))?;
        let mut objects = Vec::new();
        while !bytes.is_empty() {
            let n = take_u32(&mut bytes)?;
            let key = std::str::from_utf8(take(&mut bytes, n)?)
                .map_err(|e| corrupt("snapshot key", e))?
                .to_string();
            let n = take_u32(&mut bytes)?;
            let (rev, value) = decode_record(take(&mut bytes, n)?)?;
            objects.push((key, rev, value));
        }
        Ok(SnapshotData {
            applied,
            members,
            objects,
        })
    }
}

/// WAL + sled Raft storage. Reads (the `raft::Storage` methods) take `&self`; writes take
/// `&mut self` and are reached through `RawNode::mut_store` on the driver thread.
pub struct SledStorage {
    db: sled::Db,
    raft: sled::Tree,
    objects: sled::Tree,
    wal: Wal,
    /// The log after the compaction point, as written to the WAL (raft-rs reads it back often).
    log: Vec<Entry>,
    /// Encoded size of `log`, to compact by size as well as by count.
    log_bytes: u64,
    hard_state: HardState,
    /// Conf state as of the last applied entry.
    conf_state: ConfState,
    /// Index and term of the last compaction point (or installed snapshot).
    snap_index: u64,
    snap_term: u64,
    last_index: u64,
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
        let mut log = replayed.entries;
        // Segments keep entries below the compaction point until they are deleted whole.
        let below = log.iter().take_while(|e| e.index <= snap_index).count();
        log.drain(..below);
        if let Some(first) = log.first() {
            if first.index != snap_index + 1 {
                return Err(corrupt(
                    "wal",
                    format!(
                        "log starts at {} after compaction point {snap_index}",
                        first.index
                    ),
                ));
            }
        }
        let last_index = log.last().map_or(snap_index, |e| e.index);
        if applied > last_index {
            return Err(corrupt(
                "wal",
                format!("objects checkpointed at {applied} but the log ends at {last_index}"),
            ));
        }
        let log_bytes = log.iter().map(|e| u64::from(e.compute_size())).sum();
        Ok(SledStorage {
            db,
            raft,
            objects,
            wal,
            log,
            log_bytes,
            hard_state: replayed.hard_state.unwrap_or_default(),
            conf_state,
            snap_index,
            snap_term,
            last_index,
            applied,
            dirty: HashSet::new(),
            checkpointing: false,
        })
    }

    /// Whether this data dir already holds a Raft state (restart) rather than nothing (first start).
    pub fn is_initialized(&self) -> bool {
        self.conf_state != ConfState::default()
            || self.last_index > 0
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
        self.last_index = self.last_index.max(1);
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
        self.snap_index
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
        if let Some(first) = ents.first() {
            assert!(
                first.index > self.snap_index,
                "append overwrites compacted log: compacted {}, append {}",
                self.snap_index,
                first.index
            );
            assert!(
                first.index <= self.last_index + 1,
                "log gap: last {}, append {}",
                self.last_index,
                first.index
            );
        }
        self.wal.append(ents, hs)?;
        if let Some(first) = ents.first() {
            let keep = (first.index - self.snap_index - 1) as usize;
            for e in self.log.drain(keep.min(self.log.len())..) {
                self.log_bytes -= u64::from(e.compute_size());
            }
            for e in ents {
                self.log_bytes += u64::from(e.compute_size());
                wal::push_entry(&mut self.log, e.clone())?;
            }
            self.last_index = ents.last().expect("non-empty").index;
        }
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
        self.log_bytes
    }

    fn write_snap_meta(&mut self, index: u64, term: u64) -> Result<()> {
        let mut v = [0u8; 16];
        v[..8].copy_from_slice(&index.to_be_bytes());
        v[8..].copy_from_slice(&term.to_be_bytes());
        self.raft.insert(SNAP_META, &v)?;
        self.snap_index = index;
        self.snap_term = term;
        Ok(())
    }

    /// Discards log entries up to and including `index`, which must be checkpointed. The compaction
    /// point is flushed first, so a crash between the two steps leaves only unreachable entries behind.
    ///
    /// # Panics
    /// If `index` is past the checkpoint.
    pub fn compact(&mut self, index: u64) -> Result<()> {
        if index <= self.snap_index {
            return Ok(());
        }
        assert!(
            index <= self.applied,
            "compact {index} past checkpoint {}",
            self.applied
        );
        let term = self.term_of(index)?;
        let n = (index - self.snap_index) as usize;
        self.write_snap_meta(index, term)?;
        self.db.flush()?;
        for e in self.log.drain(..n.min(self.log.len())) {
            self.log_bytes -= u64::from(e.compute_size());
        }
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
        self.log.clear();
        self.log_bytes = 0;
        self.dirty.clear();
        self.hard_state = hs;
        self.conf_state = meta.get_conf_state().clone();
        self.snap_index = meta.index;
        self.snap_term = meta.term;
        self.last_index = meta.index;
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

    fn term_of(&self, idx: u64) -> Result<u64> {
        if idx == self.snap_index {
            return Ok(self.snap_term);
        }
        idx.checked_sub(self.snap_index + 1)
            .and_then(|i| self.log.get(i as usize))
            .map(|e| e.term)
            .ok_or_else(|| corrupt("log", format!("entry {idx} missing")))
    }

    /// Builds a snapshot of the checkpointed state (objects, members, conf state, all as stored
    /// in sled at the checkpoint index); the follower gets the rest from the log.
    fn build_snapshot(&self) -> Result<Snapshot> {
        let applied = self.applied;
        let term = self.term_of(applied)?;
        let conf_state = stored_conf_state(&self.objects)?;
        let mut data = Vec::with_capacity(4096);
        data.extend_from_slice(SNAPSHOT_MAGIC);
        data.extend_from_slice(&applied.to_be_bytes());
        let members = serde_json::to_vec(&self.members()?).expect("members encode");
        data.extend_from_slice(&(members.len() as u32).to_be_bytes());
        data.extend_from_slice(&members);
        for kv in self.objects.iter() {
            let (k, v) = kv?;
            if k.first() == Some(&0) {
                continue;
            }
            data.extend_from_slice(&(k.len() as u32).to_be_bytes());
            data.extend_from_slice(&k);
            data.extend_from_slice(&(v.len() as u32).to_be_bytes());
            data.extend_from_slice(&v);
        }
        if data.len() > super::transport::MAX_SNAPSHOT {
            // Sent, it would be refused by the peer's message limit over and over; say so instead.
            return Err(corrupt(
                "snapshot",
                format!(
                    "{} bytes of objects exceed the {}-byte limit of one peer message",
                    data.len(),
                    super::transport::MAX_SNAPSHOT
                ),
            ));
        }
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
        if low <= self.snap_index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        assert!(
            high <= self.last_index + 1,
            "entries out of bound (last {}, high {high})",
            self.last_index
        );
        let max = max_size.into().unwrap_or(u64::MAX);
        let from = (low - self.snap_index - 1) as usize;
        let to = (high - self.snap_index - 1) as usize;
        let mut out = Vec::with_capacity(to - from);
        let mut size = 0u64;
        for e in &self.log[from..to] {
            size += u64::from(e.compute_size());
            if !out.is_empty() && size > max {
                break;
            }
            out.push(e.clone());
        }
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.snap_index {
            return Ok(self.snap_term);
        }
        if idx < self.snap_index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > self.last_index {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        self.term_of(idx).map_err(raft_err)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.snap_index + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last_index)
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

#[cfg(test)]
mod tests {
    use super::*;
    use raft::Storage;
    use serde_json::json;

    fn ent(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            data: vec![index as u8; 10].into(),
            ..Default::default()
        }
    }

    fn ctx() -> GetEntriesContext {
        GetEntriesContext::empty(false)
    }

    /// A storage holding `ents`; the directory lives as long as the storage.
    fn storage_with(ents: &[Entry]) -> (tempfile::TempDir, SledStorage) {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SledStorage::open(dir.path()).unwrap();
        s.append(ents, None).unwrap();
        (dir, s)
    }

    fn put(key: &str, rev: u64, v: Value) -> (String, Option<SharedObject>) {
        (key.to_string(), Some((Arc::new(v), rev)))
    }

    #[test]
    fn empty_storage_starts_at_one() {
        let (_dir, s) = storage_with(&[]);
        assert_eq!(s.first_index().unwrap(), 1);
        assert_eq!(s.last_index().unwrap(), 0);
        assert_eq!(s.term(0).unwrap(), 0);
        assert!(!s.initial_state().unwrap().initialized());
    }

    #[test]
    fn entries_term_and_bounds() {
        let (_dir, s) = storage_with(&[ent(1, 1), ent(2, 1), ent(3, 2)]);
        assert_eq!(s.first_index().unwrap(), 1);
        assert_eq!(s.last_index().unwrap(), 3);
        assert_eq!(s.term(3).unwrap(), 2);
        assert_eq!(
            s.term(4),
            Err(raft::Error::Store(StorageError::Unavailable))
        );
        let got = s.entries(1, 4, None, ctx()).unwrap();
        assert_eq!(got, vec![ent(1, 1), ent(2, 1), ent(3, 2)]);
        // max_size keeps at least one entry, then stops before exceeding the limit.
        let one = ent(1, 1).compute_size() as u64;
        assert_eq!(s.entries(1, 4, Some(0), ctx()).unwrap().len(), 1);
        assert_eq!(s.entries(1, 4, Some(one * 2), ctx()).unwrap().len(), 2);
    }

    #[test]
    fn append_truncates_conflicting_suffix() {
        let (_dir, mut s) = storage_with(&[ent(1, 1), ent(2, 1), ent(3, 1), ent(4, 1)]);
        s.append(&[ent(3, 2)], None).unwrap();
        assert_eq!(s.last_index().unwrap(), 3);
        assert_eq!(s.term(3).unwrap(), 2);
        assert_eq!(s.entries(1, 4, None, ctx()).unwrap().len(), 3);
    }

    #[test]
    fn compact_moves_first_index_and_keeps_term() {
        let (_dir, mut s) = storage_with(&[ent(1, 1), ent(2, 1), ent(3, 2), ent(4, 3)]);
        s.checkpoint(3, Vec::new(), &Members::default()).unwrap();
        s.compact(3).unwrap();
        assert_eq!(s.first_index().unwrap(), 4);
        assert_eq!(s.last_index().unwrap(), 4);
        assert_eq!(s.term(3).unwrap(), 2);
        assert_eq!(s.term(2), Err(raft::Error::Store(StorageError::Compacted)));
        assert_eq!(
            s.entries(3, 5, None, ctx()),
            Err(raft::Error::Store(StorageError::Compacted))
        );
        assert_eq!(s.entries(4, 5, None, ctx()).unwrap(), vec![ent(4, 3)]);
    }

    #[test]
    fn state_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = SledStorage::open(dir.path()).unwrap();
            s.set_node_id(7).unwrap();
            let hs = HardState {
                term: 1,
                vote: 7,
                commit: 2,
                ..Default::default()
            };
            s.append(&[ent(1, 1), ent(2, 1)], Some(&hs)).unwrap();
            s.checkpoint(
                2,
                vec![put("/core/pods/a/x", 2, json!({"a": 1}))],
                &Members::default(),
            )
            .unwrap();
            s.append(&[ent(3, 1)], None).unwrap();
            s.sync().unwrap();
        }
        let s = SledStorage::open(dir.path()).unwrap();
        assert_eq!(s.node_id().unwrap(), Some(7));
        assert_eq!(s.initial_state().unwrap().hard_state.vote, 7);
        assert_eq!(s.last_index().unwrap(), 3);
        assert_eq!(s.applied(), 2);
        assert_eq!(
            s.objects().unwrap(),
            vec![("/core/pods/a/x".to_string(), json!({"a": 1}), 2)]
        );
    }

    #[test]
    fn snapshot_round_trip_replaces_state() {
        let (_ldir, mut leader) = storage_with(&[ent(1, 1), ent(2, 1), ent(3, 2)]);
        let members = Members::initial(&[super::super::members::Member {
            id: 1,
            name: "a".into(),
            peer_addr: "127.0.0.1:1".into(),
            api_addr: String::new(),
        }]);
        let cs = ConfState {
            voters: vec![1, 2],
            ..Default::default()
        };
        leader.set_conf_state(&cs);
        leader
            .checkpoint(
                3,
                vec![put("/core/pods/a/x", 3, json!({"x": true}))],
                &members,
            )
            .unwrap();
        // Applied later but not checkpointed: the snapshot is of the checkpoint, not of this.
        leader.set_conf_state(&ConfState::default());
        leader.append(&[ent(4, 2)], None).unwrap();
        let snap = leader.snapshot(0, 2).unwrap();
        assert_eq!(snap.get_metadata().index, 3);
        assert_eq!(snap.get_metadata().term, 2);

        let (fdir, mut follower) = storage_with(&[ent(1, 1)]);
        follower
            .checkpoint(
                1,
                vec![put("/core/pods/a/stale", 1, json!({}))],
                &Members::default(),
            )
            .unwrap();
        let data = follower.apply_snapshot(&snap).unwrap();
        assert_eq!(data.applied, 3);
        assert_eq!(data.members, members);
        assert_eq!(
            follower.objects().unwrap(),
            vec![("/core/pods/a/x".to_string(), json!({"x": true}), 3)]
        );
        assert_eq!(follower.first_index().unwrap(), 4);
        assert_eq!(follower.last_index().unwrap(), 3);
        assert_eq!(follower.term(3).unwrap(), 2);
        assert_eq!(
            follower.initial_state().unwrap().conf_state.voters,
            vec![1, 2]
        );
        assert_eq!(follower.applied(), 3);
        assert_eq!(follower.members().unwrap(), members);
        follower.append(&[ent(4, 2)], None).unwrap();
        drop(follower);
        let again = SledStorage::open(fdir.path()).unwrap();
        assert_eq!(again.first_index().unwrap(), 4);
        assert_eq!(again.entries(4, 5, None, ctx()).unwrap(), vec![ent(4, 2)]);
        assert_eq!(again.applied(), 3);
    }

    #[test]
    fn restart_after_compaction_replays_only_the_log_after_it() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = SledStorage::open(dir.path()).unwrap();
            let ents: Vec<Entry> = (1..=10).map(|i| ent(i, 1)).collect();
            s.append(&ents, None).unwrap();
            s.checkpoint(6, vec![put("/k", 6, json!(6))], &Members::default())
                .unwrap();
            s.compact(5).unwrap();
            s.append(&[ent(11, 2)], None).unwrap();
            s.sync().unwrap();
        }
        let s = SledStorage::open(dir.path()).unwrap();
        assert_eq!(s.first_index().unwrap(), 6);
        assert_eq!(s.last_index().unwrap(), 11);
        assert_eq!(s.term(5).unwrap(), 1);
        assert_eq!(s.term(11).unwrap(), 2);
        assert_eq!(s.applied(), 6);
        assert_eq!(s.hard_state().commit, 6);
        assert_eq!(s.objects().unwrap(), vec![("/k".to_string(), json!(6), 6)]);
    }
}

#[cfg(test)]
mod timing {
    use super::*;

    /// Prints the cost of one append + fsync (run with `--ignored --nocapture`).
    #[test]
    #[ignore]
    fn append_flush_latency() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SledStorage::open(dir.path()).unwrap();
        let n = 200u64;
        let t = std::time::Instant::now();
        for i in 1..=n {
            let e = Entry {
                index: i,
                term: 1,
                data: vec![7u8; 300].into(),
                ..Default::default()
            };
            s.append(&[e], None).unwrap();
            s.sync().unwrap();
        }
        eprintln!("append+flush: {:?} each", t.elapsed() / n as u32);
    }
}
