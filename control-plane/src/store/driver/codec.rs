//! Encoding the driver puts around entries and checks on what it receives: proposal contexts (which
//! waiter an entry answers), committed batches, and snapshots before raft-rs takes them.

use raft::eraftpb::Message;

use super::super::object_store::{Batch, Error, Result};
use super::super::snapshot::SnapshotData;

/// The context of a proposal: this process's nonce and the proposal's sequence number.
pub(super) fn ctx(nonce: u64, seq: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(16);
    v.extend_from_slice(&nonce.to_be_bytes());
    v.extend_from_slice(&seq.to_be_bytes());
    v
}

/// The sequence number of a proposal this process made, from its entry's context.
pub(super) fn parse_ctx(nonce: u64, ctx: &[u8]) -> Option<u64> {
    if ctx.len() != 16 || ctx[..8] != nonce.to_be_bytes() {
        return None;
    }
    Some(u64::from_be_bytes(ctx[8..].try_into().expect("8 bytes")))
}

/// Decodes a committed entry's batch and refuses what no honest proposer writes: bytes that are no
/// batch, and keys the state machine reserves (`\0…` keys hold the checkpoint's own records).
///
/// # Errors
/// `Invalid` naming what is wrong.
pub(crate) fn decode_batch(data: &[u8]) -> Result<Batch> {
    let batch: Batch = serde_json::from_slice(data)
        .map_err(|e| Error::Invalid(format!("entry holds no valid batch: {e}")))?;
    if let Some(key) = batch.invalid_key() {
        return Err(Error::Invalid(format!(
            "entry writes the invalid key {key:?}"
        )));
    }
    Ok(batch)
}

/// Refuses a message raft-rs would accept but this member could not use: a snapshot whose data does
/// not decode (or disagrees with its metadata) would be accepted into the Raft state first and then
/// fail to install, leaving the member neither at the snapshot nor before it.
///
/// # Errors
/// `Invalid` naming what is wrong.
pub(crate) fn check_message(m: &Message) -> Result<()> {
    if m.get_msg_type() == raft::eraftpb::MessageType::MsgSnapshot {
        let snap = m.get_snapshot();
        let data = SnapshotData::decode(&snap.data)
            .map_err(|e| Error::Invalid(format!("snapshot from {}: {e}", m.from)))?;
        if data.applied != snap.get_metadata().index {
            return Err(Error::Invalid(format!(
                "snapshot from {} holds state at {} but claims index {}",
                m.from,
                data.applied,
                snap.get_metadata().index
            )));
        }
    }
    Ok(())
}
