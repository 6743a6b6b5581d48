//! The Raft log after the compaction point, held in memory for raft-rs (which reads it back often):
//! the part of `raft::Storage` every storage of the driver shares, whatever makes the log durable.

use protobuf::Message as _;
use raft::eraftpb::Entry;
use raft::StorageError;

use super::storage_error::{corrupt, Result};
use super::wal;

/// The entries after the compaction point (or installed snapshot) and that point's index and term.
#[derive(Debug, Default)]
pub(crate) struct LogCache {
    entries: Vec<Entry>,
    /// Encoded size of `entries`, to compact by size as well as by count.
    bytes: u64,
    snap_index: u64,
    snap_term: u64,
    last_index: u64,
}

impl LogCache {
    /// The log replayed from disk, trimmed to what follows the compaction point `snap_index`.
    ///
    /// # Errors
    /// `Corrupt` when the log does not continue right after the compaction point.
    pub(crate) fn new(snap_index: u64, snap_term: u64, mut entries: Vec<Entry>) -> Result<Self> {
        // Segments keep entries below the compaction point until they are deleted whole.
        let below = entries.iter().take_while(|e| e.index <= snap_index).count();
        entries.drain(..below);
        if let Some(first) = entries.first() {
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
        let last_index = entries.last().map_or(snap_index, |e| e.index);
        let bytes = entries.iter().map(|e| u64::from(e.compute_size())).sum();
        Ok(LogCache {
            entries,
            bytes,
            snap_index,
            snap_term,
            last_index,
        })
    }

    /// Checks that `ents` may be appended, before anything is written for them.
    ///
    /// # Panics
    /// If the entries would leave a gap or overwrite compacted entries (a Raft invariant).
    pub(crate) fn check_append(&self, ents: &[Entry]) {
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
    }

    /// Appends entries, replacing any conflicting suffix.
    ///
    /// # Errors
    /// `Corrupt` when an entry would leave a gap.
    pub(crate) fn append(&mut self, ents: &[Entry]) -> Result<()> {
        let Some(first) = ents.first() else {
            return Ok(());
        };
        let keep = (first.index - self.snap_index - 1) as usize;
        for e in self.entries.drain(keep.min(self.entries.len())..) {
            self.bytes -= u64::from(e.compute_size());
        }
        for e in ents {
            self.bytes += u64::from(e.compute_size());
            wal::push_entry(&mut self.entries, e.clone())?;
        }
        self.last_index = ents.last().expect("non-empty").index;
        Ok(())
    }

    /// Moves the compaction point to `index` (of `term`), dropping the entries up to it.
    pub(crate) fn compact(&mut self, index: u64, term: u64) {
        let n = index.saturating_sub(self.snap_index) as usize;
        for e in self.entries.drain(..n.min(self.entries.len())) {
            self.bytes -= u64::from(e.compute_size());
        }
        self.snap_index = index;
        self.snap_term = term;
        self.last_index = self.last_index.max(index);
    }

    /// Drops the whole log for a snapshot at `index` (of `term`).
    pub(crate) fn reset(&mut self, index: u64, term: u64) {
        self.entries.clear();
        self.bytes = 0;
        self.snap_index = index;
        self.snap_term = term;
        self.last_index = index;
    }

    /// Index of the compaction point.
    pub(crate) fn snapshot_index(&self) -> u64 {
        self.snap_index
    }

    /// Index of the last entry (the compaction point when the log is empty).
    pub(crate) fn last_index(&self) -> u64 {
        self.last_index
    }

    /// Encoded size of the entries held.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The term of entry `idx`, which must be the compaction point or held.
    ///
    /// # Errors
    /// `Corrupt` when the entry is not held.
    pub(crate) fn term_of(&self, idx: u64) -> Result<u64> {
        if idx == self.snap_index {
            return Ok(self.snap_term);
        }
        idx.checked_sub(self.snap_index + 1)
            .and_then(|i| self.entries.get(i as usize))
            .map(|e| e.term)
            .ok_or_else(|| corrupt("log", format!("entry {idx} missing")))
    }

    /// `raft::Storage::entries`.
    ///
    /// # Errors
    /// `Compacted` when `low` is at or before the compaction point.
    ///
    /// # Panics
    /// When `high` is past the end of the log (raft-rs never asks for that).
    pub(crate) fn entries(&self, low: u64, high: u64, max_size: u64) -> raft::Result<Vec<Entry>> {
        if low <= self.snap_index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        assert!(
            high <= self.last_index + 1,
            "entries out of bound (last {}, high {high})",
            self.last_index
        );
        let from = (low - self.snap_index - 1) as usize;
        let to = (high - self.snap_index - 1) as usize;
        let mut out = Vec::with_capacity(to - from);
        let mut size = 0u64;
        for e in &self.entries[from..to] {
            size += u64::from(e.compute_size());
            if !out.is_empty() && size > max_size {
                break;
            }
            out.push(e.clone());
        }
        Ok(out)
    }

    /// `raft::Storage::term`.
    ///
    /// # Errors
    /// `Compacted` before the compaction point, `Unavailable` after the last entry.
    pub(crate) fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.snap_index {
            return Ok(self.snap_term);
        }
        if idx < self.snap_index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > self.last_index {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        self.term_of(idx)
            .map_err(|e| raft::Error::Store(StorageError::Other(Box::new(e))))
    }
}
