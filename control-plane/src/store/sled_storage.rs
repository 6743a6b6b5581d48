//! `raft::Storage` on sled: the Raft log, hard state and snapshot metadata, plus the applied objects,
//! so a member restarts from its data dir. Writes happen only on the driver thread that owns `RawNode`.
//!
//! Trees: `log` (index -> term + entry), `raft` (hard state, snapshot metadata, this member's id) and
//! `objects` (object records, and under reserved `\0` keys the applied index, conf state and members).
//! The applied index shares the `objects` tree with the objects because a sled `Batch` is atomic
//! only within one tree: one batch writes a committed slice's objects and its applied index.

use std::path::Path;

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, StorageError};
use serde_json::Value;
use sled::Transactional as _;

use super::members::Members;

/// Errors of the sled storage. Any of them makes the member inoperable (STYLE rule 24).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// sled failed.
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
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

const HARD_STATE: &[u8] = b"hard_state";
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

/// Object writes of one committed slice, applied with the applied index in one sled batch.
#[derive(Default)]
pub struct ObjectWrites {
    batch: sled::Batch,
    /// Whether anything was written (an empty slice still advances the applied index).
    pub len: usize,
}

impl ObjectWrites {
    /// Stores an object at a revision.
    pub fn put(&mut self, key: &str, revision: u64, value: &Value) {
        self.batch
            .insert(key.as_bytes(), encode_record(revision, value));
        self.len += 1;
    }

    /// Removes an object.
    pub fn delete(&mut self, key: &str) {
        self.batch.remove(key.as_bytes());
        self.len += 1;
    }
}

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

/// sled-backed Raft storage. Reads (the `raft::Storage` methods) take `&self`; writes take
/// `&mut self` and are reached through `RawNode::mut_store` on the driver thread.
pub struct SledStorage {
    db: sled::Db,
    log: sled::Tree,
    raft: sled::Tree,
    objects: sled::Tree,
    hard_state: HardState,
    conf_state: ConfState,
    /// Index and term of the last compaction point (or installed snapshot).
    snap_index: u64,
    snap_term: u64,
    last_index: u64,
    applied: u64,
}

fn idx_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

impl SledStorage {
    /// Opens (or creates) the storage in `dir`.
    ///
    /// # Errors
    /// When sled cannot open the directory or stored state does not decode.
    pub fn open(dir: &Path) -> Result<Self> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(256 << 20)
            .mode(sled::Mode::HighThroughput)
            .open()?;
        Self::from_db(db)
    }

    /// A storage in a temporary directory removed on drop (tests, benchmarks).
    ///
    /// # Errors
    /// When sled cannot create it.
    pub fn temporary() -> Result<Self> {
        Self::from_db(sled::Config::new().temporary(true).open()?)
    }

    fn from_db(db: sled::Db) -> Result<Self> {
        let log = db.open_tree("log")?;
        let raft = db.open_tree("raft")?;
        let objects = db.open_tree("objects")?;
        let hard_state = match raft.get(HARD_STATE)? {
            Some(b) => HardState::parse_from_bytes(&b).map_err(|e| corrupt("hard state", e))?,
            None => HardState::default(),
        };
        let conf_state = match objects.get(CONF_STATE)? {
            Some(b) => ConfState::parse_from_bytes(&b).map_err(|e| corrupt("conf state", e))?,
            None => ConfState::default(),
        };
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
        let last_index = match log.last()? {
            Some((k, _)) => {
                u64::from_be_bytes(k.as_ref().try_into().map_err(|e| corrupt("log key", e))?)
            }
            None => 0,
        }
        .max(snap_index);
        Ok(SledStorage {
            db,
            log,
            raft,
            objects,
            hard_state,
            conf_state,
            snap_index,
            snap_term,
            last_index,
            applied,
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
        self.write_snap_meta(1, 1)?;
        let mut w = ObjectWrites::default();
        w.batch
            .insert(CONF_STATE, cs.write_to_bytes().expect("conf state encodes"));
        w.batch.insert(
            MEMBERS,
            serde_json::to_vec(members).expect("members encode"),
        );
        self.apply_writes(w, 1)?;
        self.conf_state = cs;
        self.last_index = self.last_index.max(1);
        self.db.flush()?;
        Ok(())
    }

    /// Index of the last applied entry, as persisted.
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

    /// Appends entries to the log, replacing any conflicting suffix. Not durable until [`flush`](Self::flush).
    ///
    /// # Panics
    /// If the entries would leave a gap or overwrite compacted entries (a Raft invariant).
    pub fn append(&mut self, ents: &[Entry]) -> Result<()> {
        let Some(first) = ents.first() else {
            return Ok(());
        };
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
        let mut batch = sled::Batch::default();
        let new_last = ents.last().expect("non-empty").index;
        for i in (new_last + 1)..=self.last_index {
            batch.remove(&idx_key(i));
        }
        for e in ents {
            let mut v = Vec::with_capacity(8 + e.compute_size() as usize);
            v.extend_from_slice(&e.term.to_be_bytes());
            e.write_to_vec(&mut v).expect("entry encodes");
            batch.insert(&idx_key(e.index), v);
        }
        self.log.apply_batch(batch)?;
        self.last_index = new_last;
        Ok(())
    }

    /// Persists the hard state (durable after [`flush`](Self::flush)).
    ///
    /// # Errors
    /// On sled failure.
    pub fn set_hard_state(&mut self, hs: &HardState) -> Result<()> {
        self.raft
            .insert(HARD_STATE, hs.write_to_bytes().expect("hard state encodes"))?;
        self.hard_state = hs.clone();
        Ok(())
    }

    /// Updates only the commit index of the hard state.
    ///
    /// # Errors
    /// On sled failure.
    pub fn set_commit(&mut self, commit: u64) -> Result<()> {
        let mut hs = self.hard_state.clone();
        hs.commit = commit;
        self.set_hard_state(&hs)
    }

    /// Writes a committed slice's objects and the applied index in one atomic batch.
    ///
    /// # Errors
    /// On sled failure.
    pub fn apply_writes(&mut self, mut writes: ObjectWrites, applied: u64) -> Result<()> {
        writes.batch.insert(APPLIED, &applied.to_be_bytes());
        self.objects.apply_batch(writes.batch)?;
        self.applied = applied;
        Ok(())
    }

    /// Records a conf change in the same batch as the applied index (see [`apply_writes`](Self::apply_writes)).
    pub fn stage_conf_change(
        &mut self,
        writes: &mut ObjectWrites,
        cs: &ConfState,
        members: &Members,
    ) {
        writes
            .batch
            .insert(CONF_STATE, cs.write_to_bytes().expect("conf state encodes"));
        writes.batch.insert(
            MEMBERS,
            serde_json::to_vec(members).expect("members encode"),
        );
        self.conf_state = cs.clone();
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

    /// Discards log entries up to and including `index` (which must be applied). The snapshot point
    /// is written first, so a crash between the two steps leaves only unreachable entries behind.
    ///
    /// # Panics
    /// If `index` is past the applied index.
    pub fn compact(&mut self, index: u64) -> Result<()> {
        if index <= self.snap_index {
            return Ok(());
        }
        assert!(
            index <= self.applied,
            "compact {index} past applied {}",
            self.applied
        );
        let term = self.term_of(index)?;
        self.write_snap_meta(index, term)?;
        self.db.flush()?;
        Ok(())
    }

    /// Deletes up to `max` log entries below the compaction point. Compaction only moves the
    /// snapshot point; the driver purges a little per Ready so a 10,000-entry compaction never stalls it.
    ///
    /// # Errors
    /// On sled failure.
    pub fn purge_some(&mut self, max: usize) -> Result<usize> {
        let mut batch = sled::Batch::default();
        let mut n = 0;
        for kv in self.log.range(..idx_key(self.snap_index + 1)) {
            if n == max {
                break;
            }
            batch.remove(kv?.0);
            n += 1;
        }
        if n > 0 {
            self.log.apply_batch(batch)?;
        }
        Ok(n)
    }

    /// Installs a snapshot received from the leader: replaces every object, the applied index,
    /// conf state and members in one transaction together with the snapshot point, then drops the log.
    /// Returns the decoded state for the in-memory state machine.
    ///
    /// # Errors
    /// On sled failure or undecodable snapshot data.
    pub fn apply_snapshot(&mut self, snap: &Snapshot) -> Result<SnapshotData> {
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
        let hs_bytes = hs.write_to_bytes().expect("hard state encodes");
        (&self.objects, &self.raft)
            .transaction(|(o, r)| {
                o.apply_batch(&obj_batch)?;
                r.insert(SNAP_META, &snap_meta)?;
                r.insert(HARD_STATE, hs_bytes.clone())?;
                Ok::<(), sled::transaction::ConflictableTransactionError<()>>(())
            })
            .map_err(|e| match e {
                sled::transaction::TransactionError::Storage(e) => Error::Sled(e),
                sled::transaction::TransactionError::Abort(()) => corrupt("snapshot", "aborted"),
            })?;
        self.log.clear()?;
        self.db.flush()?;
        self.hard_state = hs;
        self.conf_state = meta.get_conf_state().clone();
        self.snap_index = meta.index;
        self.snap_term = meta.term;
        self.last_index = meta.index;
        self.applied = meta.index;
        Ok(data)
    }

    /// A handle on the database, for fsyncing from another thread.
    pub fn db(&self) -> sled::Db {
        self.db.clone()
    }

    /// Makes every write so far durable (fsync).
    ///
    /// # Errors
    /// On sled failure.
    pub fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    fn term_of(&self, idx: u64) -> Result<u64> {
        match self.log.get(idx_key(idx))? {
            Some(v) if v.len() >= 8 => Ok(u64::from_be_bytes(v[..8].try_into().expect("8"))),
            _ => Err(corrupt("log", format!("entry {idx} missing"))),
        }
    }

    /// Builds a snapshot of the current applied state (objects, members, conf state) at the applied index.
    fn build_snapshot(&self) -> Result<Snapshot> {
        let applied = self.applied;
        let term = if applied == self.snap_index {
            self.snap_term
        } else {
            self.term_of(applied)?
        };
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
        let meta = SnapshotMetadata {
            index: applied,
            term,
            conf_state: Some(self.conf_state.clone()).into(),
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
        let mut out = Vec::with_capacity((high - low) as usize);
        let mut size = 0u64;
        let mut truncated = false;
        for kv in self.log.range(idx_key(low)..idx_key(high)) {
            let (_, v) = kv.map_err(|e| raft_err(e.into()))?;
            let e = Entry::parse_from_bytes(&v[8..]).map_err(|e| raft_err(corrupt("entry", e)))?;
            size += u64::from(e.compute_size());
            if !out.is_empty() && size > max {
                truncated = true;
                break;
            }
            out.push(e);
        }
        if !truncated && out.len() as u64 != high - low {
            return Err(raft_err(corrupt(
                "log",
                format!("entries [{low}, {high}) incomplete"),
            )));
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
        if self.applied < request_index {
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

    fn storage_with(ents: &[Entry]) -> SledStorage {
        let mut s = SledStorage::temporary().unwrap();
        s.append(ents).unwrap();
        s
    }

    #[test]
    fn empty_storage_starts_at_one() {
        let s = SledStorage::temporary().unwrap();
        assert_eq!(s.first_index().unwrap(), 1);
        assert_eq!(s.last_index().unwrap(), 0);
        assert_eq!(s.term(0).unwrap(), 0);
        assert!(!s.initial_state().unwrap().initialized());
    }

    #[test]
    fn entries_term_and_bounds() {
        let s = storage_with(&[ent(1, 1), ent(2, 1), ent(3, 2)]);
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
        let mut s = storage_with(&[ent(1, 1), ent(2, 1), ent(3, 1), ent(4, 1)]);
        s.append(&[ent(3, 2)]).unwrap();
        assert_eq!(s.last_index().unwrap(), 3);
        assert_eq!(s.term(3).unwrap(), 2);
        assert_eq!(s.entries(1, 4, None, ctx()).unwrap().len(), 3);
    }

    #[test]
    fn compact_moves_first_index_and_keeps_term() {
        let mut s = storage_with(&[ent(1, 1), ent(2, 1), ent(3, 2), ent(4, 3)]);
        s.apply_writes(ObjectWrites::default(), 3).unwrap();
        s.compact(3).unwrap();
        assert_eq!(s.purge_some(2).unwrap(), 2);
        assert_eq!(s.purge_some(10).unwrap(), 1);
        assert_eq!(s.purge_some(10).unwrap(), 0);
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
            s.append(&[ent(1, 1), ent(2, 1)]).unwrap();
            let hs = HardState {
                term: 1,
                vote: 7,
                commit: 2,
                ..Default::default()
            };
            s.set_hard_state(&hs).unwrap();
            let mut w = ObjectWrites::default();
            w.put("/core/pods/a/x", 2, &json!({"a": 1}));
            s.apply_writes(w, 2).unwrap();
            s.flush().unwrap();
        }
        let s = SledStorage::open(dir.path()).unwrap();
        assert_eq!(s.node_id().unwrap(), Some(7));
        assert_eq!(s.initial_state().unwrap().hard_state.vote, 7);
        assert_eq!(s.last_index().unwrap(), 2);
        assert_eq!(s.applied(), 2);
        assert_eq!(
            s.objects().unwrap(),
            vec![("/core/pods/a/x".to_string(), json!({"a": 1}), 2)]
        );
    }

    #[test]
    fn snapshot_round_trip_replaces_state() {
        let mut leader = storage_with(&[ent(1, 1), ent(2, 1), ent(3, 2)]);
        let members = Members::initial(&[super::super::members::Member {
            id: 1,
            name: "a".into(),
            peer_addr: "127.0.0.1:1".into(),
            api_addr: String::new(),
        }]);
        let mut w = ObjectWrites::default();
        let cs = ConfState {
            voters: vec![1, 2],
            ..Default::default()
        };
        leader.stage_conf_change(&mut w, &cs, &members);
        w.put("/core/pods/a/x", 3, &json!({"x": true}));
        leader.apply_writes(w, 3).unwrap();
        let snap = leader.snapshot(0, 2).unwrap();
        assert_eq!(snap.get_metadata().index, 3);
        assert_eq!(snap.get_metadata().term, 2);

        let mut follower = storage_with(&[ent(1, 1)]);
        let mut w = ObjectWrites::default();
        w.put("/core/pods/a/stale", 1, &json!({}));
        follower.apply_writes(w, 1).unwrap();
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
            s.append(&[e]).unwrap();
            s.flush().unwrap();
        }
        eprintln!("append+flush: {:?} each", t.elapsed() / n as u32);
    }
}
