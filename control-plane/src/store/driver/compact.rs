//! Checkpoints and log compaction: when to checkpoint the objects (off the driver thread), what to do
//! when a checkpoint fails, and how far a leader may compact without cutting off a live follower.

use std::time::Duration;

use raft::StateRole;

use super::super::log_store::{Checkpoint as _, LogStore};
use super::node::Driver;

impl<S: LogStore> Driver<S> {
    /// Every `snapshot_every` applied entries (or `CHECKPOINT_LOG_BYTES` of log, or after a conf
    /// change), checkpoints the objects into sled on the checkpointer thread; once written, compacts
    /// the log up to it. A leader keeps the entries that live followers still miss, so they catch up
    /// from the log rather than by snapshot.
    pub(super) fn maybe_compact(&mut self) {
        if self.node.store().checkpointing() {
            match self.collect_checkpoint(false) {
                Some(index) => self.compact_to(index),
                None => return,
            }
        }
        if self
            .checkpoint_retry_at
            .is_some_and(|at| self.clock.now() < at)
        {
            return;
        }
        let applied = *self.shared.applied_index.borrow();
        let store = self.node.store();
        let checkpoint = store.applied();
        if applied <= checkpoint
            || (applied < checkpoint + self.cfg.snapshot_every
                && store.log_bytes() < CHECKPOINT_LOG_BYTES
                && !self.conf_changed)
        {
            return;
        }
        self.conf_changed = false;
        let dirty = self.node.mut_store().take_dirty();
        let (changes, members) = {
            let state = self.shared.applied.read().expect("applied lock");
            debug_assert_eq!(state.sm.applied(), applied);
            let changes: Vec<_> = dirty
                .into_iter()
                .map(|k| {
                    let v = state.sm.get_shared(&k);
                    (k, v)
                })
                .collect();
            (
                changes,
                self.shared.members.read().expect("members lock").clone(),
            )
        };
        self.checkpoint_keys = changes.iter().map(|(k, _)| k.clone()).collect();
        let job = match self
            .node
            .mut_store()
            .begin_checkpoint(applied, changes, &members)
        {
            Ok(job) => job,
            Err(e) => {
                self.checkpoint_failed(applied, &e.to_string());
                return;
            }
        };
        match &self.checkpointer {
            Some(c) => c
                .send(job)
                .unwrap_or_else(|_| panic!("checkpointer thread died")),
            None => self.inline_checkpoint = Some(job.write()),
        }
    }

    /// A checkpoint that could not be written (disk full) is not fatal: the log still holds every
    /// change, so the member keeps serving and retries at the next checkpoint point. Its keys are
    /// dirty again, or the retry would leave them out of sled and a restart would lose them.
    pub(super) fn checkpoint_failed(&mut self, applied: u64, why: &str) {
        tracing::error!(id = self.shared.id, applied, error = %why, "checkpoint failed; the log is kept until one succeeds");
        self.checkpoint_retry_at = Some(self.clock.now() + Duration::from_secs(5));
        let keys = std::mem::take(&mut self.checkpoint_keys);
        let store = self.node.mut_store();
        store.note_written(keys.iter().map(String::as_str));
        if store.checkpointing() {
            store.finish_checkpoint(0);
        }
    }

    /// Records the checkpoint the checkpointer thread finished and returns its index; `None` while
    /// it still runs, unless `wait` blocks until it is done.
    pub(super) fn collect_checkpoint(&mut self, wait: bool) -> Option<u64> {
        use std::sync::mpsc::TryRecvError;
        let done = if let Some(done) = self.inline_checkpoint.take() {
            Some(done)
        } else if wait {
            self.checkpoint_done.recv().ok()
        } else {
            match self.checkpoint_done.try_recv() {
                Ok(done) => Some(done),
                Err(TryRecvError::Empty) => return None,
                Err(TryRecvError::Disconnected) => None,
            }
        };
        let index = match done.unwrap_or_else(|| panic!("checkpointer thread gone")) {
            Ok(index) => index,
            Err(e) => {
                let at = *self.shared.applied_index.borrow();
                self.checkpoint_failed(at, &e);
                return None;
            }
        };
        self.checkpoint_keys.clear();
        self.checkpoint_retry_at = None;
        self.node.mut_store().finish_checkpoint(index);
        Some(index)
    }

    /// Compacts the log up to the checkpoint at `checkpoint`, keeping what live followers miss.
    pub(super) fn compact_to(&mut self, checkpoint: u64) {
        let mut index = checkpoint;
        if self.role == StateRole::Leader {
            let applied = *self.shared.applied_index.borrow();
            let floor = applied.saturating_sub(self.cfg.snapshot_every);
            for (id, pr) in self.node.raft.prs().iter() {
                if *id != self.shared.id && pr.recent_active && pr.matched > floor {
                    index = index.min(pr.matched);
                }
            }
        }
        if index <= self.node.store().snapshot_index() {
            return;
        }
        self.node
            .mut_store()
            .compact(index)
            .unwrap_or_else(|e| panic!("log compaction at {index} failed: {e}"));
        tracing::debug!(id = self.shared.id, checkpoint, index, "compacted raft log");
    }
}

/// Log size that triggers a checkpoint before `snapshot_every` entries (big batches, e.g. scheduling).
const CHECKPOINT_LOG_BYTES: u64 = 64 << 20;
