//! The Raft driver: one thread owns `RawNode<SledStorage>`, is fed by an mpsc of [`Msg`], batches every
//! pending proposal and message into one `Ready` (one append, one fsync), applies committed entries to
//! the state machine and completes the callers waiting on them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use protobuf::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeType, ConfChangeV2, Entry, EntryType, Message};
use raft::{GetEntriesContext, RawNode, StateRole};
use tokio::sync::{broadcast, oneshot, watch};

use super::members::{Member, Members};
use super::sled_storage::{CheckpointJob, SledStorage};
use super::{Batch, Committed, Error, Event, EventWindow, Result, StateMachine};

/// Where the driver's outbound Raft messages go: the gRPC transport in a member, an in-process
/// network in the deterministic harness. Sending *MUST NOT* block: a slow peer may not stall the driver.
pub(crate) trait Network: Send + Sync + 'static {
    /// Queues messages to their peers; undeliverable ones are dropped (Raft resends).
    fn send(&self, msgs: Vec<Message>);
    /// Makes the address book match the applied configuration.
    fn set_peers(&self, members: &Members);
}

/// The environment variable that turns on the planted ack-before-commit bug (see [`ack_before_commit`]).
pub const ACK_BEFORE_COMMIT_ENV: &str = "BERTH_TEST_ACK_BEFORE_COMMIT";

/// TEST-ONLY FAULT. With `BERTH_TEST_ACK_BEFORE_COMMIT=1` in the environment when the process starts,
/// a leader answers a write as soon as the entry is in its own log, *before* a quorum has it. A
/// leader that then loses its leadership loses writes it acknowledged: it exists so the
/// linearizability checker can prove it catches exactly that. Never set it on a real cluster.
/// Read once per process, so flipping the variable later changes nothing.
pub fn ack_before_commit() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| {
        let on = std::env::var(ACK_BEFORE_COMMIT_ENV).is_ok_and(|v| v == "1");
        if on {
            tracing::error!(
                "!!! {ACK_BEFORE_COMMIT_ENV}=1: TEST-ONLY FAULT ON: writes are acknowledged BEFORE \
                 they commit and may be lost; never run a real cluster like this !!!"
            );
        }
        on
    })
}

/// Requests to the driver thread.
pub(crate) enum Msg {
    /// A JSON-encoded [`Batch`] to replicate; answered when applied.
    Propose {
        data: Vec<u8>,
        tx: oneshot::Sender<Result<Committed>>,
    },
    /// A message from a peer.
    Raft(Box<Message>),
    /// A linearizable read barrier: answered with the index to wait for.
    ReadIndex(oneshot::Sender<Result<u64>>),
    /// A membership change; answered when applied.
    ConfChange {
        cc: ConfChange,
        tx: oneshot::Sender<Result<()>>,
    },
    /// The transport could not reach a peer.
    Unreachable(u64),
    /// The transport finished (or failed) sending a snapshot.
    SnapshotSent { to: u64, ok: bool },
    /// Raft status for tools and tests.
    Status(oneshot::Sender<Status>),
    /// The syncer made every Ready up to this number durable.
    Persisted(u64),
    /// The syncer's fsync failed: what was written since the last good one may not be on disk.
    SyncFailed(String),
}

/// A point-in-time view of this member's Raft state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// This member's id.
    pub id: u64,
    /// Known leader (0 when none).
    pub leader_id: u64,
    /// Current term.
    pub term: u64,
    /// Commit index.
    pub commit: u64,
    /// Applied index.
    pub applied: u64,
    /// First index still in the log (everything before is compacted into the snapshot).
    pub first_index: u64,
    /// Members of the configuration.
    pub members: Vec<Member>,
}

/// Who leads, as last seen by this member.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Leadership {
    /// Leader id (0 when unknown).
    pub leader_id: u64,
    /// Whether this member is the leader.
    pub is_leader: bool,
}

/// Applied state readers see: the state machine, the watch window and the event broadcast.
pub(crate) struct Applied {
    pub sm: StateMachine,
    pub window: EventWindow,
    pub events: broadcast::Sender<Arc<Vec<Event>>>,
}

/// State shared between the driver thread and the async store handle.
pub(crate) struct Shared {
    pub id: u64,
    pub applied: RwLock<Applied>,
    pub applied_index: watch::Sender<u64>,
    pub leadership: watch::Sender<Leadership>,
    pub is_leader: watch::Sender<bool>,
    pub members: RwLock<Members>,
    pub stopped: AtomicBool,
    /// Why this member cannot persist (disk full, I/O error); `None` while it can. While set, it
    /// acknowledges nothing: no writes, no votes, no appends.
    pub storage_error: Mutex<Option<String>>,
}

pub(crate) const EVENT_CHANNEL: usize = 4096;

/// Tunables of the driver.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// One Raft tick.
    pub tick: Duration,
    /// Ticks without a heartbeat before an election.
    pub election_ticks: usize,
    /// Ticks between heartbeats.
    pub heartbeat_ticks: usize,
    /// Compact the log every this many applied entries.
    pub snapshot_every: u64,
    /// Test-only fault: acknowledge writes before they commit ([`ack_before_commit`]).
    pub ack_before_commit: bool,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            tick: Duration::from_millis(100),
            election_ticks: 10,
            heartbeat_ticks: 2,
            snapshot_every: 10_000,
            ack_before_commit: ack_before_commit(),
        }
    }
}

/// The single owner of `RawNode`.
pub(crate) struct Driver {
    node: RawNode<SledStorage>,
    rx: Receiver<Msg>,
    shared: Arc<Shared>,
    transport: Arc<dyn Network>,
    cfg: DriverConfig,
    /// Random per process, so entries replayed from before a restart never match a new waiter.
    nonce: u64,
    next_seq: u64,
    proposals: HashMap<u64, oneshot::Sender<Result<Committed>>>,
    conf_changes: HashMap<u64, oneshot::Sender<Result<()>>>,
    /// Proposals collected during this drain; they go to Raft as one `MsgPropose`.
    new_proposals: Vec<(Vec<u8>, oneshot::Sender<Result<Committed>>)>,
    /// Read requests collected during this drain; they share one `read_index` round.
    new_reads: Vec<oneshot::Sender<Result<u64>>>,
    reads: HashMap<u64, Vec<oneshot::Sender<Result<u64>>>>,
    next_read: u64,
    leader_id: u64,
    role: StateRole,
    /// Readies whose fsync is pending go to the syncer thread, so the driver keeps proposing,
    /// sending and applying while the disk works (raft-rs "async ready"). `None` (the deterministic
    /// harness) syncs inline instead.
    syncer: Option<std::sync::mpsc::Sender<PersistJob>>,
    syncer_thread: Option<std::thread::JoinHandle<()>>,
    /// A conf change was applied since the last checkpoint. Snapshots are built from the checkpoint,
    /// and raft-rs drops a snapshot whose conf state lacks its receiver, so a new member needs one.
    conf_changed: bool,
    /// Checkpoints are written by their own thread; it answers with the index written. `None` (the
    /// deterministic harness) writes them inline.
    checkpointer: Option<std::sync::mpsc::Sender<CheckpointJob>>,
    checkpoint_done: Receiver<std::result::Result<u64, String>>,
    /// Result of a checkpoint written inline, collected like the thread's.
    inline_checkpoint: Option<std::result::Result<u64, String>>,
    /// Keys of the checkpoint being written, put back as dirty if it fails.
    checkpoint_keys: Vec<String>,
    /// After a failed checkpoint, the next is not tried before this (a full disk stays full a while).
    checkpoint_retry_at: Option<Instant>,
    checkpointer_thread: Option<std::thread::JoinHandle<()>>,
}

/// One Ready's durability request: after the fsync, send its persisted messages and report its number.
struct PersistJob {
    number: u64,
    messages: Vec<Message>,
    /// The WAL segment written last; older segments were synced when they were closed.
    wal: Arc<std::fs::File>,
}

/// Group commit: one fsync covers every Ready queued while the previous fsync ran.
fn run_syncer(
    rx: Receiver<PersistJob>,
    transport: Arc<dyn Network>,
    driver: std::sync::mpsc::Sender<Msg>,
) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while let Ok(j) = rx.try_recv() {
            jobs.push(j);
        }
        if let Err(e) = jobs.last().expect("one job").wal.sync_data() {
            // After a failed fsync the kernel may have dropped the dirty pages and a retry can
            // report success for data that is gone, so nothing here is acknowledged, ever: the driver
            // stops and the restarted member replays only what is really on disk.
            let _ = driver.send(Msg::SyncFailed(e.to_string()));
            return;
        }
        let mut last = 0;
        for j in jobs {
            // Votes and append acks promise durability: only after the fsync.
            if !j.messages.is_empty() {
                transport.send(j.messages);
            }
            last = j.number;
        }
        if driver.send(Msg::Persisted(last)).is_err() {
            break;
        }
    }
}

/// Checkpoints are background work (the log already holds every change), so their thread runs at
/// nice 19 and takes the CPU time client writes leave idle, like a database's compaction thread.
fn lower_priority() {
    // On Linux a thread id is a valid target of setpriority(PRIO_PROCESS).
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 19) {
        tracing::debug!(error = %e, "could not lower the checkpointer's priority");
    }
}

fn ctx(nonce: u64, seq: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(16);
    v.extend_from_slice(&nonce.to_be_bytes());
    v.extend_from_slice(&seq.to_be_bytes());
    v
}

fn parse_ctx(nonce: u64, ctx: &[u8]) -> Option<u64> {
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
    if let Some(op) = batch
        .ops
        .iter()
        .find(|op| op.key().is_empty() || op.key().starts_with('\0'))
    {
        return Err(Error::Invalid(format!(
            "entry writes the invalid key {:?}",
            op.key()
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
        let data = super::sled_storage::SnapshotData::decode(&snap.data)
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

/// Runs a thread the member cannot live without (the Raft driver). If it panics, the process exits
/// (status 70) instead of living on as a member that answers health checks but can neither commit
/// nor vote: a supervisor restarts it and the cluster sees a member down, not a zombie.
pub(crate) fn supervise(what: &str, f: impl FnOnce()) {
    if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        let why = crate::controllers::isolation::panic_message(panic.as_ref());
        tracing::error!(
            thread = what,
            error = %why,
            "thread died; exiting so a supervisor restarts this member"
        );
        eprintln!("{what} died: {why}; exiting");
        std::process::exit(70);
    }
}

/// Forwards raft-rs's slog records to tracing.
struct TracingDrain;

impl slog::Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(
        &self,
        record: &slog::Record<'_>,
        _: &slog::OwnedKVList,
    ) -> std::result::Result<(), slog::Never> {
        match record.level() {
            slog::Level::Critical | slog::Level::Error => {
                tracing::error!(target: "raft", "{}", record.msg())
            }
            slog::Level::Warning => tracing::warn!(target: "raft", "{}", record.msg()),
            slog::Level::Info => tracing::info!(target: "raft", "{}", record.msg()),
            _ => tracing::trace!(target: "raft", "{}", record.msg()),
        }
        Ok(())
    }
}

pub(crate) fn raft_logger(id: u64) -> slog::Logger {
    slog::Logger::root(TracingDrain, slog::o!("raft_id" => id))
}

impl Driver {
    pub(crate) fn new(
        storage: SledStorage,
        rx: Receiver<Msg>,
        driver_tx: std::sync::mpsc::Sender<Msg>,
        shared: Arc<Shared>,
        transport: Arc<dyn Network>,
        cfg: DriverConfig,
    ) -> Result<Self> {
        let mut d = Self::inline(storage, rx, shared, transport, cfg, rand::random())?;
        let (syncer, syncer_rx) = std::sync::mpsc::channel();
        let syncer_transport = d.transport.clone();
        d.syncer_thread = Some(
            std::thread::Builder::new()
                .name(format!("raft-sync-{}", d.shared.id))
                .spawn(move || run_syncer(syncer_rx, syncer_transport, driver_tx))
                .map_err(|e| Error::Unavailable(format!("spawning syncer: {e}")))?,
        );
        d.syncer = Some(syncer);
        let (checkpointer, jobs) = std::sync::mpsc::channel::<CheckpointJob>();
        let (done_tx, checkpoint_done) = std::sync::mpsc::channel();
        d.checkpointer_thread = Some(
            std::thread::Builder::new()
                .name(format!("raft-ckpt-{}", d.shared.id))
                .spawn(move || {
                    lower_priority();
                    while let Ok(job) = jobs.recv() {
                        if done_tx.send(job.run().map_err(|e| e.to_string())).is_err() {
                            break;
                        }
                    }
                })
                .map_err(|e| Error::Unavailable(format!("spawning checkpointer: {e}")))?,
        );
        d.checkpointer = Some(checkpointer);
        d.checkpoint_done = checkpoint_done;
        Ok(d)
    }

    /// A driver without helper threads: fsyncs and checkpoints run inline, and nothing happens
    /// unless the caller calls [`handle`](Self::handle), [`tick`](Self::tick) and
    /// [`pump`](Self::pump). The deterministic harness drives members this way, so it runs the
    /// same decision code as [`run`](Self::run). `nonce` tags this process's proposals.
    pub(crate) fn inline(
        storage: SledStorage,
        rx: Receiver<Msg>,
        shared: Arc<Shared>,
        transport: Arc<dyn Network>,
        cfg: DriverConfig,
        nonce: u64,
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
        Ok(Driver {
            node,
            rx,
            shared,
            transport,
            cfg,
            nonce,
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
        })
    }

    /// Runs until the store is stopped or every sender is gone. Blocking: call on a dedicated thread.
    pub(crate) fn run(mut self) {
        let mut next_tick = Instant::now() + self.cfg.tick;
        loop {
            if self.shared.stopped.load(Ordering::Acquire) {
                break;
            }
            let wait = next_tick.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(wait) {
                Ok(m) => {
                    self.handle(m);
                    // Drain everything queued so many writes share one Ready and one fsync.
                    let mut n = 0;
                    while n < 16_384 {
                        match self.rx.try_recv() {
                            Ok(m) => self.handle(m),
                            Err(_) => break,
                        }
                        n += 1;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            let now = Instant::now();
            if now >= next_tick {
                self.tick();
                next_tick = now + self.cfg.tick;
            }
            self.pump();
        }
        self.fail_all(Error::Unavailable("store stopped".into()));
        // The syncer and checkpointer hold files and sled handles: wait for them so the database is
        // closed (and any checkpoint written) when `run` returns.
        drop(self.syncer.take());
        if let Some(t) = self.syncer_thread.take() {
            let _ = t.join();
        }
        drop(self.checkpointer.take());
        if let Some(t) = self.checkpointer_thread.take() {
            let _ = t.join();
        }
        tracing::info!(id = self.shared.id, "raft driver stopped");
    }

    /// One Raft tick (the caller owns the clock).
    pub(crate) fn tick(&mut self) {
        self.node.tick();
        self.prune_abandoned();
    }

    /// Starts what [`handle`](Self::handle) collected and does the I/O the `Ready` asks for.
    pub(crate) fn pump(&mut self) {
        self.start_proposals();
        self.start_reads();
        self.on_ready();
    }

    /// The member's Raft node (the harness reads its log and role).
    #[cfg(test)]
    pub(crate) fn raw(&self) -> &RawNode<SledStorage> {
        &self.node
    }

    /// Overrides the election timeout raft-rs drew from its own RNG, so a seed fixes elections.
    #[cfg(test)]
    pub(crate) fn set_election_timeout(&mut self, ticks: usize) {
        self.node.raft.set_randomized_election_timeout(ticks);
    }

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

    fn status(&self) -> Status {
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

    fn fail_all(&mut self, err: Error) {
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
                if let Err(e) = job.wal.sync_data() {
                    self.handle(Msg::SyncFailed(e.to_string()));
                }
                self.send(job.messages);
                self.node.on_persist_ready(job.number);
            }
        }
        self.maybe_compact();
    }

    fn set_storage_error(&self, e: Option<String>) {
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

    /// Waits out a storage failure: every waiting or new write gets the reason, raft messages are
    /// dropped (peers resend), and the caller retries after the wait.
    fn stall(&mut self, why: &str, backoff: &mut Duration) {
        self.set_storage_error(Some(why.to_string()));
        let err = Error::Unavailable(format!(
            "{why}; this member acknowledges nothing until it can persist again \
             (a write it already proposed may still commit)"
        ));
        self.fail_all(err.clone());
        let until = Instant::now() + *backoff;
        *backoff = (*backoff * 2).min(Duration::from_secs(1));
        while let Some(wait) = until.checked_duration_since(Instant::now()) {
            match self.rx.recv_timeout(wait) {
                Ok(Msg::Propose { tx, .. }) => {
                    let _ = tx.send(Err(err.clone()));
                }
                Ok(Msg::ConfChange { tx, .. }) => {
                    let _ = tx.send(Err(err.clone()));
                }
                Ok(Msg::ReadIndex(tx)) => {
                    let _ = tx.send(Err(err.clone()));
                }
                Ok(Msg::Status(tx)) => {
                    let _ = tx.send(self.status());
                }
                Ok(m @ (Msg::Persisted(_) | Msg::SyncFailed(_) | Msg::SnapshotSent { .. })) => {
                    self.handle(m)
                }
                Ok(Msg::Raft(_) | Msg::Unreachable(_)) => {}
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.shared.stopped.store(true, Ordering::Release);
                    return;
                }
            }
            if self.shared.stopped.load(Ordering::Acquire) {
                return;
            }
        }
    }

    fn install_snapshot(&mut self, snap: raft::eraftpb::Snapshot) {
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

    fn set_members(&self, members: Members) {
        self.transport.set_peers(&members);
        *self.shared.members.write().expect("members lock") = members;
    }

    fn apply_entries(&mut self, entries: Vec<Entry>) {
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
                                    .note_written(batch.ops.iter().map(super::Op::key));
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

    /// Every `snapshot_every` applied entries (or `CHECKPOINT_LOG_BYTES` of log, or after a conf
    /// change), checkpoints the objects into sled on the checkpointer thread; once written, compacts
    /// the log up to it. A leader keeps the entries that live followers still miss, so they catch up
    /// from the log rather than by snapshot.
    fn maybe_compact(&mut self) {
        if self.node.store().checkpointing() {
            match self.collect_checkpoint(false) {
                Some(index) => self.compact_to(index),
                None => return,
            }
        }
        if self
            .checkpoint_retry_at
            .is_some_and(|at| Instant::now() < at)
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
            None => self.inline_checkpoint = Some(job.run().map_err(|e| e.to_string())),
        }
    }

    /// A checkpoint that could not be written (disk full) is not fatal: the log still holds every
    /// change, so the member keeps serving and retries at the next checkpoint point. Its keys are
    /// dirty again, or the retry would leave them out of sled and a restart would lose them.
    fn checkpoint_failed(&mut self, applied: u64, why: &str) {
        tracing::error!(id = self.shared.id, applied, error = %why, "checkpoint failed; the log is kept until one succeeds");
        self.checkpoint_retry_at = Some(Instant::now() + Duration::from_secs(5));
        let keys = std::mem::take(&mut self.checkpoint_keys);
        let store = self.node.mut_store();
        store.note_written(keys.iter().map(String::as_str));
        if store.checkpointing() {
            store.finish_checkpoint(0);
        }
    }

    /// Records the checkpoint the checkpointer thread finished and returns its index; `None` while
    /// it still runs, unless `wait` blocks until it is done.
    fn collect_checkpoint(&mut self, wait: bool) -> Option<u64> {
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
    fn compact_to(&mut self, checkpoint: u64) {
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

/// Shared-state constructor used by the store handle.
pub(crate) fn new_shared(
    id: u64,
    sm: StateMachine,
    window_capacity: usize,
    members: Members,
) -> Arc<Shared> {
    let applied_index = sm.applied();
    let (events, _) = broadcast::channel(EVENT_CHANNEL);
    Arc::new(Shared {
        id,
        applied: RwLock::new(Applied {
            // Index 1 is the bootstrap point, which carries no objects: a watch from 0 misses nothing.
            window: EventWindow::new(
                window_capacity,
                if applied_index <= 1 { 0 } else { applied_index },
            ),
            sm,
            events,
        }),
        applied_index: watch::channel(applied_index).0,
        leadership: watch::channel(Leadership::default()).0,
        is_leader: watch::channel(false).0,
        members: RwLock::new(members),
        stopped: AtomicBool::new(false),
        storage_error: Mutex::new(None),
    })
}

/// The driver thread's join handle, shared so `shutdown` can wait for sled to close.
pub(crate) type DriverThread = Mutex<Option<std::thread::JoinHandle<()>>>;
