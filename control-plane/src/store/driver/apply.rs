//! Applying what Raft committed: batches to the state machine (answering their proposers), conf
//! changes to the members, and snapshots from the leader.

use std::sync::Arc;

use protobuf::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeType, ConfChangeV2, Entry, EntryType};
use tokio::sync::{broadcast, oneshot};

use super::super::log_store::LogStore;
use super::super::members::{Member, Members};
use super::super::object_store::{Committed, Error, Event, Op, Result};
use super::super::state_machine::StateMachine;
use super::codec::{decode_batch, parse_ctx};
use super::node::Driver;
use super::shared::EVENT_CHANNEL;

impl<S: LogStore> Driver<S> {
    pub(super) fn install_snapshot(&mut self, snap: raft::eraftpb::Snapshot) {
        let index = snap.get_metadata().index;
        if self.node.store().checkpointing() {
            // The snapshot replaces what the checkpoint is writing: let it finish first.
            self.collect_checkpoint(true);
        }
        let data = self
            .node
            .mut_store()
            .apply_snapshot(&snap)
            .unwrap_or_else(|e| panic!("installing snapshot at {index} failed: {e}"));
        let shared = self.shared.clone();
        {
            let mut applied = shared.applied.write().expect("applied lock");
            applied.sm = StateMachine::restore(
                data.objects.into_iter().map(|(k, r, v)| (k, v, r)),
                data.applied,
            );
            applied.window.reset(data.applied);
            // Replacing the sender ends every live watch: they cannot see the changes the snapshot
            // skipped, so clients must re-list (and get Gone if they ask for a revision before it).
            let (events, _) = broadcast::channel(EVENT_CHANNEL);
            applied.events = events;
        }
        self.set_members(data.members);
        shared.applied_index.send_replace(data.applied);
        tracing::info!(id = shared.id, index, "installed snapshot");
    }

    pub(super) fn set_members(&self, members: Members) {
        self.transport.set_peers(&members);
        *self.shared.members.write().expect("members lock") = members;
    }

    pub(super) fn apply_entries(&mut self, entries: Vec<Entry>) {
        let Some(last) = entries.last().map(|e| e.index) else {
            return;
        };
        let shared = self.shared.clone();
        let mut events: Vec<Event> = Vec::new();
        let mut done: Vec<(oneshot::Sender<Result<Committed>>, Result<Committed>)> = Vec::new();
        let mut cc_done = Vec::new();
        let mut applied = shared.applied.write().expect("applied lock");
        for entry in entries {
            let index = entry.index;
            match entry.get_entry_type() {
                EntryType::EntryNormal if entry.data.is_empty() => applied.sm.skip(index),
                EntryType::EntryNormal => {
                    let result = match decode_batch(&entry.data) {
                        Ok(batch) => {
                            let (result, evs) = applied.sm.apply(index, &batch);
                            if result.is_ok() {
                                self.node
                                    .mut_store()
                                    .note_written(batch.ops.iter().map(Op::key));
                            }
                            events.extend(evs);
                            result
                        }
                        Err(e) => {
                            // Every member decodes the same bytes the same way, so all of them skip
                            // it and the state machines stay equal; panicking would crash-loop the
                            // whole cluster on replay of one bad entry.
                            tracing::error!(index, error = %e, "skipped a committed entry that holds no valid batch");
                            applied.sm.skip(index);
                            Err(e)
                        }
                    };
                    if let Some(tx) = parse_ctx(self.nonce, &entry.context)
                        .and_then(|s| self.proposals.remove(&s))
                    {
                        done.push((tx, result));
                    }
                }
                EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                    let parsed = if entry.get_entry_type() == EntryType::EntryConfChange {
                        ConfChange::parse_from_bytes(&entry.data).map(|cc| (Some(cc), None))
                    } else {
                        ConfChangeV2::parse_from_bytes(&entry.data).map(|cc| (None, Some(cc)))
                    };
                    let (cc1, cc2) = match parsed {
                        Ok(p) => p,
                        Err(e) => {
                            tracing::error!(index, error = %e, "skipped a committed entry that holds no valid conf change");
                            applied.sm.skip(index);
                            if let Some(tx) = parse_ctx(self.nonce, &entry.context)
                                .and_then(|s| self.conf_changes.remove(&s))
                            {
                                cc_done.push((
                                    tx,
                                    Err(Error::Invalid(format!(
                                        "entry {index} holds no valid conf change: {e}"
                                    ))),
                                ));
                            }
                            continue;
                        }
                    };
                    let (changes, context): (Vec<(ConfChangeType, u64)>, &[u8]) = match (&cc1, &cc2)
                    {
                        (Some(cc), _) => (vec![(cc.get_change_type(), cc.node_id)], &cc.context),
                        (_, Some(cc)) => (
                            cc.changes
                                .iter()
                                .map(|c| (c.get_change_type(), c.node_id))
                                .collect(),
                            &cc.context,
                        ),
                        _ => unreachable!(),
                    };
                    let mut members = shared.members.read().expect("members lock").clone();
                    for (ty, node_id) in changes {
                        match ty {
                            ConfChangeType::AddNode | ConfChangeType::AddLearnerNode => {
                                match serde_json::from_slice::<Member>(context) {
                                    Ok(m) if m.id == node_id => members.insert(m),
                                    _ => tracing::warn!(
                                        node = node_id,
                                        "conf change without member info"
                                    ),
                                }
                            }
                            ConfChangeType::RemoveNode => {
                                members.remove(node_id);
                            }
                        }
                    }
                    let applied_cc = match (&cc1, &cc2) {
                        (Some(cc), _) => self.node.apply_conf_change(cc),
                        (_, Some(cc)) => self.node.apply_conf_change(cc),
                        _ => unreachable!(),
                    };
                    let result = match applied_cc {
                        Ok(cs) => {
                            self.node.mut_store().set_conf_state(&cs);
                            self.conf_changed = true;
                            self.set_members(members);
                            tracing::info!(index, voters = ?cs.voters, "applied conf change");
                            Ok(())
                        }
                        Err(e) => {
                            tracing::warn!(index, error = %e, "conf change not applied");
                            Err(Error::Invalid(format!("conf change: {e}")))
                        }
                    };
                    applied.sm.skip(index);
                    if let Some(tx) = parse_ctx(self.nonce, &entry.context)
                        .and_then(|s| self.conf_changes.remove(&s))
                    {
                        cc_done.push((tx, result));
                    }
                }
            }
        }
        if !events.is_empty() {
            applied.window.push(events.iter().cloned());
            // Sent under the lock so subscribers see batches in revision order.
            let _ = applied.events.send(Arc::new(events));
        }
        drop(applied);
        shared.applied_index.send_replace(last);
        for (tx, r) in done {
            let _ = tx.send(r);
        }
        for (tx, r) in cc_done {
            let _ = tx.send(r);
        }
    }
}
