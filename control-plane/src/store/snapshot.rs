//! The bytes of a Raft snapshot (every object with its revision, the applied index and the members)
//! and of one stored object record, and the size limit a snapshot must fit in to cross the peer port.

use std::sync::Arc;

use serde_json::Value;

use super::members::Members;
use super::storage_error::{corrupt, Result};

/// Largest gRPC message accepted or sent on the peer port, by the server and every client. A snapshot
/// carries the whole object set in one Raft message, so this is also the largest snapshot a member
/// can send ([`MAX_SNAPSHOT`]); batches of ordinary messages are packed to stay under it.
pub(crate) const MAX_MESSAGE: usize = 1 << 30;
/// Largest snapshot `data` a member builds: what fits in one [`MAX_MESSAGE`] with room for the
/// request's and the Raft message's own framing.
pub(crate) const MAX_SNAPSHOT: usize = MAX_MESSAGE - (1 << 20);

const SNAPSHOT_MAGIC: &[u8] = b"BRT1";

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

/// Builds a snapshot's `data` from records as they are stored, so a member does not decode and
/// re-encode every object to send one.
pub(crate) struct SnapshotWriter {
    data: Vec<u8>,
}

impl SnapshotWriter {
    /// Starts the data of a snapshot at `applied` with `members`.
    pub(crate) fn new(applied: u64, members: &Members) -> Self {
        let mut data = Vec::with_capacity(4096);
        data.extend_from_slice(SNAPSHOT_MAGIC);
        data.extend_from_slice(&applied.to_be_bytes());
        let members = serde_json::to_vec(members).expect("members encode");
        data.extend_from_slice(&(members.len() as u32).to_be_bytes());
        data.extend_from_slice(&members);
        SnapshotWriter { data }
    }

    /// Adds one object: its key and its record as [`encode_record`] wrote it.
    pub(crate) fn object(&mut self, key: &[u8], record: &[u8]) {
        self.data
            .extend_from_slice(&(key.len() as u32).to_be_bytes());
        self.data.extend_from_slice(key);
        self.data
            .extend_from_slice(&(record.len() as u32).to_be_bytes());
        self.data.extend_from_slice(record);
    }

    /// The data, or why it cannot be sent.
    ///
    /// # Errors
    /// `Corrupt` when it exceeds [`MAX_SNAPSHOT`]: sent, it would be refused by the peer's message
    /// limit over and over.
    pub(crate) fn finish(self) -> Result<Vec<u8>> {
        if self.data.len() > MAX_SNAPSHOT {
            return Err(corrupt(
                "snapshot",
                format!(
                    "{} bytes of objects exceed the {MAX_SNAPSHOT}-byte limit of one peer message",
                    self.data.len()
                ),
            ));
        }
        Ok(self.data)
    }
}
