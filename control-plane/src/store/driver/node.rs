//! The single owner of `RawNode`: takes requests and peer messages, batches every pending proposal and
//! read into one `Ready`, and does what the `Ready` asks in raft-rs's documented order. Its I/O goes
//! through [`LogStore`], [`Network`] and [`Clock`], so it runs the same over sled and the gRPC
//! transport as over memory and an in-process network.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use raft::eraftpb::{Entry, Message};
use raft::{GetEntriesContext, RawNode, StateRole};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use tokio::sync::oneshot;

use super::super::log_store::{Durable as _, LogStore};
use super::super::object_store::{Committed, Error, Result};
use super::codec::{check_message, ctx, decode_batch};
use super::config::{DriverConfig, ACK_BEFORE_COMMIT_ENV};
use super::io::{Clock, Network};
use super::logging::raft_logger;
use super::msg::{Msg, Status};
use super::shared::{Leadership, Shared};

/// The single owner of `RawNode`, over storage `S`.
pub(crate) struct Driver<S: LogStore> {
    pub(super) node: RawNode<S>,
    pub(super) rx: Receiver<Msg>,
    pub(super) shared: Arc<Shared>,
    pub(super) transport: Arc<dyn Network>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) cfg: DriverConfig,
    /// Random per process, so entries replayed from before a restart never match a new waiter.
    pub(super) nonce: u64,
    /// Draws election timeouts in place of raft-rs's unseeded `thread_rng`, so a seed fixes elections.
    rng: StdRng,
    /// (term, role) when the election timeout was last drawn: raft-rs draws anew on every change.
    drawn: (u64, StateRole),
    next_seq: u64,
    pub(super) proposals: HashMap<u64, oneshot::Sender<Result<Committed>>>,
    pub(super) conf_changes: HashMap<u64, oneshot::Sender<Result<()>>>,
    /// Proposals collected during this drain; they go to Raft as one `MsgPropose`.
    new_proposals: Vec<(Vec<u8>, oneshot::Sender<Result<Committed>>)>,
    /// Read requests collected during this drain; they share one `read_index` round.
    new_reads: Vec<oneshot::Sender<Result<u64>>>,
    reads: HashMap<u64, Vec<oneshot::Sender<Result<u64>>>>,
    next_read: u64,
    leader_id: u64,
    pub(super) role: StateRole,
    /// Readies whose fsync is pending go to the syncer thread, so the driver keeps proposing,
    /// sending and applying while the disk works (raft-rs "async ready"). `None` (the deterministic
    /// harness) syncs inline instead.
    pub(super) syncer: Option<std::sync::mpsc::Sender<PersistJob<S::Durable>>>,
    pub(super) syncer_thread: Option<std::thread::JoinHandle<()>>,
    /// A conf change was applied since the last checkpoint. Snapshots are built from the checkpoint,
    /// and raft-rs drops a snapshot whose conf state lacks its receiver, so a new member needs one.
    pub(super) conf_changed: bool,
    /// Checkpoints are written by their own thread; it answers with the index written. `None` (the
    /// deterministic harness) writes them inline.
    pub(super) checkpointer: Option<std::sync::mpsc::Sender<S::Checkpoint>>,
    pub(super) checkpoint_done: Receiver<std::result::Result<u64, String>>,
    /// Result of a checkpoint written inline, collected like the thread's.
    pub(super) inline_checkpoint: Option<std::result::Result<u64, String>>,
    /// Keys of the checkpoint being written, put back as dirty if it fails.
    pub(super) checkpoint_keys: Vec<String>,
    /// After a failed checkpoint, the next is not tried before this (a full disk stays full a while).
    pub(super) checkpoint_retry_at: Option<Instant>,
    pub(super) checkpointer_thread: Option<std::thread::JoinHandle<()>>,
}

/// One Ready's durability request: after the fsync, send its persisted messages and report its number.
pub(super) struct PersistJob<D> {
    pub(super) number: u64,
    pub(super) messages: Vec<Message>,
    /// What to sync: the WAL segment written last (older segments were synced when they were closed).
    pub(super) wal: D,
}

impl<S: LogStore> Driver<S> {
    /// A driver without helper threads: fsyncs and checkpoints run inline, and nothing happens
    /// unless the caller calls [`handle`](Self::handle), [`tick`](Self::tick) and
    /// [`pump`](Self::pump). The deterministic harness and the unit tests drive members this way,
    /// so they run the same decision code as [`run`](Self::run). `seed` fixes this member's
    /// randomness: the nonce that tags its proposals and its election timeouts.
    ///
    /// # Errors
    /// `Unavailable` when raft-rs refuses the stored state.
    pub(crate) fn inline(
        storage: S,
        rx: Receiver<Msg>,
        shared: Arc<Shared>,
        transport: Arc<dyn Network>,
        clock: Arc<dyn Clock>,
        cfg: DriverConfig,
        seed: u64,
    ) -> Result<Self> {
        let raft_cfg = raft::Config {
            id: shared.id,
            election_tick: cfg.election_ticks,
            heartbeat_tick: cfg.heartbeat_ticks,
            applied: storage.applied(),
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            check_quorum: true,
            pre_vote: true,
            ..Default::default()
        };
        let node = RawNode::new(&raft_cfg, storage, &raft_logger(shared.id))
            .map_err(|e| Error::Unavailable(format!("raft init: {e}")))?;
        if cfg.ack_before_commit {
            tracing::error!(
                id = shared.id,
                "TEST-ONLY FAULT {ACK_BEFORE_COMMIT_ENV} is on: this member acknowledges writes before they commit"
            );
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let mut d = Driver {
            node,
            rx,
            shared,
            transport,
            clock,
            cfg,
            nonce: rng.gen(),
            rng,
            drawn: (u64::MAX, StateRole::Follower),
            next_seq: 1,
            proposals: HashMap::new(),
            new_proposals: Vec::new(),
            conf_changes: HashMap::new(),
            new_reads: Vec::new(),
            reads: HashMap::new(),
            next_read: 1,
            leader_id: 0,
            role: StateRole::Follower,
            syncer: None,
            syncer_thread: None,
            conf_changed: false,
            checkpointer: None,
            checkpoint_done: std::sync::mpsc::channel().1,
            inline_checkpoint: None,
            checkpoint_keys: Vec::new(),
            checkpoint_retry_at: None,
            checkpointer_thread: None,
        };
        d.redraw_election_timeout();
        Ok(d)
    }

    /// raft-rs draws a new election timeout from its own unseeded RNG whenever the term or role
    /// changes; this replaces each draw with one from the seeded RNG, in raft-rs's default range
    /// `[election_ticks, 2 * election_ticks)`.
    fn redraw_election_timeout(&mut self) {
        let now = (self.node.raft.term, self.node.raft.state);
        if now != self.drawn {
            let min = self.cfg.election_ticks;
            let ticks = self.rng.gen_range(min..2 * min);
            self.node.raft.set_randomized_election_timeout(ticks);
            self.drawn = now;
        }
    }

    /// One Raft tick (the caller owns the clock).
    pub(crate) fn tick(&mut self) {
        self.node.tick();
        self.prune_abandoned();
        // A checkpoint that finishes after the last write would otherwise wait for the next write
        // to be collected, leaving an idle member's log uncompacted.
        if self.node.store().checkpointing() {
            self.maybe_compact();
        }
    }

    /// Starts what [`handle`](Self::handle) collected and does the I/O the `Ready` asks for.
    pub(crate) fn pump(&mut self) {
        self.start_proposals();
        self.start_reads();
        self.on_ready();
        // After the Ready: whatever changed the term or role since the last pump has happened.
        self.redraw_election_timeout();
    }

    /// The member's Raft node (the harness reads its log and role).
    #[cfg(test)]
    pub(crate) fn raw(&self) -> &RawNode<S> {
        &self.node
    }

    /// Feeds one request or peer message to the driver; [`pump`](Self::pump) acts on it.
    ///
    /// # Panics
    /// On `Msg::SyncFailed`: what was written since the last good fsync can be neither
    /// acknowledged nor retried, so the member crashes and replays what is really on disk.
    pub(crate) fn handle(&mut self, m: Msg) {
        match m {
            Msg::Propose { data, tx } => {
                if self.role != StateRole::Leader {
                    let _ = tx.send(Err(Error::NoLeader));
                    return;
                }
                self.new_proposals.push((data, tx));
            }
            Msg::Raft(m) => {
                if let Err(e) = check_message(&m) {
                    tracing::error!(from = m.from, error = %e, "refused a forged raft message");
                    return;
                }
                if let Err(e) = self.node.step(*m) {
                    tracing::debug!(error = %e, "dropped raft message");
                }
            }
            Msg::ReadIndex(tx) => self.new_reads.push(tx),
            Msg::ConfChange { cc, tx } => {
                if self.role != StateRole::Leader {
                    let _ = tx.send(Err(Error::NoLeader));
                    return;
                }
                let seq = self.next_seq;
                self.next_seq += 1;
                match self.node.propose_conf_change(ctx(self.nonce, seq), cc) {
                    Ok(()) => {
                        self.conf_changes.insert(seq, tx);
                    }
                    Err(e) => {
                        let _ = tx.send(Err(Error::Invalid(format!("conf change rejected: {e}"))));
                    }
                }
            }
            Msg::Persisted(number) => self.node.on_persist_ready(number),
            Msg::SyncFailed(e) => {
                self.set_storage_error(Some(format!("raft log fsync failed: {e}")));
                // Crash-only: the un-synced Readies can be neither acknowledged nor retried.
                panic!("raft log fsync failed: {e}");
            }
            Msg::Unreachable(id) => self.node.report_unreachable(id),
            Msg::SnapshotSent { to, ok } => {
                let status = if ok {
                    raft::SnapshotStatus::Finish
                } else {
                    raft::SnapshotStatus::Failure
                };
                self.node.report_snapshot(to, status);
            }
            Msg::Status(tx) => {
                let _ = tx.send(self.status());
            }
        }
    }

    pub(super) fn status(&self) -> Status {
        Status {
            id: self.shared.id,
            leader_id: self.node.raft.leader_id,
            term: self.node.raft.term,
            commit: self.node.raft.raft_log.committed,
            applied: *self.shared.applied_index.borrow(),
            first_index: self.node.store().snapshot_index() + 1,
            members: self
                .shared
                .members
                .read()
                .expect("members lock")
                .iter()
                .cloned()
                .collect(),
        }
    }

    /// Proposes every write collected in this drain as one message. `RawNode::propose` takes one
    /// entry and broadcasts an append per call; with many clients that meant a message to every
    /// follower per write (and an ack back for each). Each write is still its own entry, so its
    /// resourceVersion (the entry index) stays unique.
    fn start_proposals(&mut self) {
        if self.new_proposals.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.new_proposals);
        let mut entries = Vec::with_capacity(pending.len());
        let mut seqs = Vec::with_capacity(pending.len());
        let mut waiters = Vec::with_capacity(pending.len());
        for (data, tx) in pending {
            let seq = self.next_seq;
            self.next_seq += 1;
            entries.push(Entry {
                data: data.into(),
                context: ctx(self.nonce, seq).into(),
                ..Default::default()
            });
            seqs.push(seq);
            waiters.push(tx);
        }
        let mut m = Message::default();
        m.set_msg_type(raft::eraftpb::MessageType::MsgPropose);
        m.from = self.shared.id;
        m.set_entries(entries.into());
        match self.node.step(m) {
            Ok(()) if self.cfg.ack_before_commit => self.ack_before_commit(&seqs, waiters),
            Ok(()) => self.proposals.extend(seqs.into_iter().zip(waiters)),
            // Not appended anywhere, so the callers may retry safely.
            Err(_) => {
                for tx in waiters {
                    let _ = tx.send(Err(Error::NoLeader));
                }
            }
        }
    }

    /// The planted bug ([`ack_before_commit`]): answers each proposal just appended to the leader's
    /// log as if it had committed, with the results of a dry run on the applied state.
    fn ack_before_commit(
        &mut self,
        seqs: &[u64],
        waiters: Vec<oneshot::Sender<Result<Committed>>>,
    ) {
        let last = self.node.raft.raft_log.last_index();
        let first = last + 1 - seqs.len() as u64;
        let mut dry = self.shared.applied.read().expect("applied lock").sm.clone();
        for (i, tx) in waiters.into_iter().enumerate() {
            let index = first + i as u64;
            let result =
                match self
                    .node
                    .raft
                    .raft_log
                    .entries(index, 1, GetEntriesContext::empty(false))
                {
                    Ok(es) if !es.is_empty() => match decode_batch(&es[0].data) {
                        Ok(batch) if index > dry.applied() => dry.apply(index, &batch).0,
                        Ok(_) => Err(Error::Dropped("not in the leader's log".into())),
                        Err(e) => Err(e),
                    },
                    _ => Err(Error::Dropped("not in the leader's log".into())),
                };
            let _ = tx.send(result);
        }
    }

    fn start_reads(&mut self) {
        if self.new_reads.is_empty() {
            return;
        }
        let waiters = std::mem::take(&mut self.new_reads);
        if self.node.raft.leader_id == raft::INVALID_ID {
            for tx in waiters {
                let _ = tx.send(Err(Error::NoLeader));
            }
            return;
        }
        let id = self.next_read;
        self.next_read += 1;
        self.node.read_index(id.to_be_bytes().to_vec());
        self.reads.insert(id, waiters);
    }

    /// Forgets waiters whose callers gave up (timed out), so the maps do not grow without bound.
    fn prune_abandoned(&mut self) {
        self.reads.retain(|_, ws| {
            ws.retain(|w| !w.is_closed());
            !ws.is_empty()
        });
        self.proposals.retain(|_, tx| !tx.is_closed());
        self.conf_changes.retain(|_, tx| !tx.is_closed());
    }

    pub(super) fn fail_all(&mut self, err: Error) {
        for (_, tx) in self.proposals.drain() {
            let _ = tx.send(Err(err.clone()));
        }
        for (_, tx) in self.conf_changes.drain() {
            let _ = tx.send(Err(err.clone()));
        }
        for (_, ws) in self.reads.drain() {
            for w in ws {
                let _ = w.send(Err(err.clone()));
            }
        }
    }

    fn on_soft_state(&mut self, leader_id: u64, role: StateRole) {
        let was_leader = self.role == StateRole::Leader;
        let leader_changed = leader_id != self.leader_id;
        self.role = role;
        self.leader_id = leader_id;
        if was_leader && role != StateRole::Leader {
            self.fail_all(Error::Dropped("leadership lost before commit".into()));
        } else if leader_changed {
            // raft-rs forgets pending read-index requests when the leader changes.
            for (_, ws) in self.reads.drain() {
                for w in ws {
                    let _ = w.send(Err(Error::Dropped("leader changed".into())));
                }
            }
        }
        let is_leader = role == StateRole::Leader;
        tracing::info!(
            id = self.shared.id,
            leader_id,
            ?role,
            "raft leadership changed"
        );
        self.shared.leadership.send_replace(Leadership {
            leader_id,
            is_leader,
        });
        self.shared.is_leader.send_if_modified(|v| {
            let changed = *v != is_leader;
            *v = is_leader;
            changed
        });
    }

    fn send(&self, msgs: Vec<Message>) {
        if !msgs.is_empty() {
            self.transport.send(msgs);
        }
    }

    fn on_ready(&mut self) {
        if !self.node.has_ready() {
            return;
        }
        let mut rd = self.node.ready();
        if let Some(ss) = rd.ss() {
            let (leader, role) = (ss.leader_id, ss.raft_state);
            self.on_soft_state(leader, role);
        }
        // A leader's messages can go out before its own fsync (raft thesis 10.2.1).
        self.send(rd.take_messages());
        let has_snapshot = !rd.snapshot().is_empty();
        if has_snapshot {
            self.install_snapshot(rd.snapshot().clone());
        }
        self.apply_entries(rd.take_committed_entries());
        if !rd.entries().is_empty() || rd.hs().is_some() {
            let mut backoff = Duration::from_millis(50);
            while let Err(e) = self.node.mut_store().append(rd.entries(), rd.hs()) {
                // Disk full: the Ready is held, so nothing it carries (votes, append acks, the
                // leader's own commit) is acknowledged until the same append succeeds.
                self.stall(&format!("raft log append failed: {e}"), &mut backoff);
                if self.shared.stopped.load(Ordering::Acquire) {
                    self.fail_all(Error::Unavailable("store stopped".into()));
                    return;
                }
            }
            self.set_storage_error(None);
        }
        for rs in rd.take_read_states() {
            let id = rs
                .request_ctx
                .as_slice()
                .try_into()
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            if let Some(ws) = self.reads.remove(&id) {
                for w in ws {
                    let _ = w.send(Ok(rs.index));
                }
            }
        }
        if has_snapshot {
            // Raft must learn the snapshot is durable before anything is applied past it, so this
            // Ready takes the synchronous path (one fsync covers every earlier Ready too).
            self.node
                .store()
                .sync()
                .unwrap_or_else(|e| panic!("raft fsync failed: {e}"));
            self.send(rd.take_persisted_messages());
            let mut light = self.node.advance(rd);
            if let Some(commit) = light.commit_index() {
                self.node
                    .mut_store()
                    .set_commit(commit)
                    .unwrap_or_else(|e| panic!("commit index write failed: {e}"));
            }
            self.send(light.take_messages());
            self.apply_entries(light.take_committed_entries());
            self.node.advance_apply();
            self.maybe_compact();
            return;
        }
        let job = PersistJob {
            number: rd.number(),
            messages: rd.take_persisted_messages(),
            wal: self.node.store().sync_handle(),
        };
        // The entries are readable from storage already (not yet durable), as advance_append_async requires.
        self.node.advance_append_async(rd);
        self.node.advance_apply();
        match &self.syncer {
            Some(s) => s
                .send(job)
                .unwrap_or_else(|_| panic!("raft syncer thread died")),
            None => {
                if let Err(e) = job.wal.sync() {
                    self.handle(Msg::SyncFailed(e.to_string()));
                }
                self.send(job.messages);
                self.node.on_persist_ready(job.number);
            }
        }
        self.maybe_compact();
    }

    pub(super) fn set_storage_error(&self, e: Option<String>) {
        let mut cur = self
            .shared
            .storage_error
            .lock()
            .expect("storage error lock");
        if *cur != e {
            match &e {
                Some(why) => {
                    tracing::error!(id = self.shared.id, error = %why, "storage failed: this member acknowledges nothing until it recovers")
                }
                None => tracing::warn!(
                    id = self.shared.id,
                    "storage recovered: acknowledging again"
                ),
            }
            *cur = e;
        }
    }
}
