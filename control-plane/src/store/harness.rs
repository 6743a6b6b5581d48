//! The one simulator of the Raft driver: real members (the same [`Driver`] code, over a storage `S`:
//! sled and the WAL in temp dirs, or memory) on an in-process network that a seeded RNG drops, reorders
//! and partitions, with ticks and the clock driven by the harness. After every step it checks that a
//! term has at most one leader and that committed entries never change; at the end, that every
//! acknowledged write is committed on every member and that the state machines agree.
//!
//! `store::sim` runs it over many seeds; the driver's unit tests script scenarios on it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use raft::eraftpb::{Message, MessageType};
use raft::{GetEntriesContext, StateRole};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde_json::json;
use tokio::sync::oneshot;

use super::driver::{self, Clock, Driver, DriverConfig, Msg, Network, Shared};
use super::log_store::{restore, LogStore};
use super::mem_log::MemLog;
use super::members::{Member, Members};
use super::object_store::{Batch, Committed, Op, Precondition, Result};
use super::sled_storage::SledStorage;

/// A storage the harness can open for a member, and open again after a crash.
pub(crate) trait Disk: LogStore + Sized {
    /// Where a member's state lives across restarts.
    type Slot: Clone;
    /// The slot of member `id` under the run's scratch directory.
    fn slot(root: &std::path::Path, id: u64) -> Self::Slot;
    /// Opens member `id`'s storage, bootstrapped into `cluster` if the slot is empty.
    fn open(slot: &Self::Slot, id: u64, cluster: &[Member]) -> Self;
    /// Whether a member can be stopped and opened again from its slot.
    const RESTARTS: bool;
}

impl Disk for SledStorage {
    type Slot = std::path::PathBuf;
    const RESTARTS: bool = true;

    fn slot(root: &std::path::Path, id: u64) -> Self::Slot {
        root.join(format!("m{id}"))
    }

    fn open(dir: &Self::Slot, id: u64, cluster: &[Member]) -> Self {
        // sled lets go of its directory lock when its flusher thread notices the close: wait for it.
        let mut tries = 0;
        let mut storage = loop {
            match SledStorage::open(dir) {
                Ok(s) => break s,
                Err(e) if tries < 500 && e.to_string().contains("lock") => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => panic!("open storage: {e}"),
            }
        };
        if storage.node_id().expect("node id").is_none() {
            storage
                .bootstrap(
                    cluster.iter().map(|m| m.id).collect(),
                    &Members::initial(cluster),
                )
                .expect("bootstrap");
            storage.set_node_id(id).expect("node id");
        }
        storage
    }
}

impl Disk for MemLog {
    type Slot = ();
    const RESTARTS: bool = false;

    fn slot(_: &std::path::Path, _: u64) {}

    fn open(_: &(), _: u64, cluster: &[Member]) -> Self {
        MemLog::bootstrap(
            cluster.iter().map(|m| m.id).collect(),
            &Members::initial(cluster),
        )
    }
}

/// A clock only the harness moves: one tick of time per tick of every member.
#[derive(Debug)]
pub(crate) struct ManualClock(Mutex<std::time::Instant>);

impl ManualClock {
    #[allow(clippy::disallowed_methods)] // Only the starting point; the harness moves it from here.
    fn new() -> Self {
        ManualClock(Mutex::new(std::time::Instant::now()))
    }

    /// Moves the clock forward.
    pub(crate) fn advance(&self, by: std::time::Duration) {
        *self.0.lock().expect("clock lock") += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> std::time::Instant {
        *self.0.lock().expect("clock lock")
    }
}

/// Collects what a member sends; the harness delivers it.
#[derive(Default)]
pub(crate) struct Outbox(Mutex<Vec<Message>>);

impl Network for Outbox {
    fn send(&self, msgs: Vec<Message>) {
        self.0.lock().expect("outbox lock").extend(msgs);
    }

    fn set_peers(&self, _: &Members) {}
}

/// One member: its driver, what it publishes, and what it sent since the harness last looked.
pub(crate) struct SimNode<S: Disk> {
    pub(crate) id: u64,
    slot: S::Slot,
    pub(crate) driver: Driver<S>,
    pub(crate) shared: Arc<Shared>,
    outbox: Arc<Outbox>,
    /// Kept so the driver's receiver never sees a closed channel.
    _tx: std::sync::mpsc::Sender<Msg>,
}

fn scratch_root() -> std::path::PathBuf {
    // fsync on tmpfs is free, which keeps a thousand seeds fast; the code path is the same.
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

fn cluster_members(n: u64) -> Vec<Member> {
    (1..=n)
        .map(|id| Member {
            id,
            name: format!("m{id}"),
            peer_addr: format!("127.0.0.1:{id}"),
            api_addr: String::new(),
        })
        .collect()
}

fn driver_config(ack_before_commit: bool) -> DriverConfig {
    DriverConfig {
        election_ticks: 10,
        heartbeat_ticks: 2,
        // Small, so checkpoints, compaction and snapshots to lagging members happen in every run.
        snapshot_every: 16,
        ack_before_commit,
        ..DriverConfig::default()
    }
}

impl<S: Disk> SimNode<S> {
    /// Opens (or reopens, after a crash) member `id` from `slot`.
    fn open(
        id: u64,
        slot: &S::Slot,
        cluster: &[Member],
        clock: Arc<ManualClock>,
        seed: u64,
        fault: bool,
    ) -> SimNode<S> {
        let mut storage = S::open(slot, id, cluster);
        let (sm, members) = restore(&mut storage).unwrap_or_else(|e| panic!("restore: {e}"));
        let shared = driver::new_shared(id, sm, 1000, members);
        let (tx, rx) = std::sync::mpsc::channel();
        let outbox = Arc::new(Outbox::default());
        let driver = Driver::inline(
            storage,
            rx,
            shared.clone(),
            outbox.clone(),
            clock,
            driver_config(fault),
            seed,
        )
        .expect("driver");
        SimNode {
            id,
            slot: slot.clone(),
            driver,
            shared,
            outbox,
            _tx: tx,
        }
    }
}

/// A write the harness proposed and is waiting on.
pub(crate) struct Pending {
    data: Vec<u8>,
    rx: oneshot::Receiver<Result<Committed>>,
}

/// A cluster of members over storage `S`, the network between them, and what the checks saw.
pub(crate) struct Sim<S: Disk> {
    seed: u64,
    rng: StdRng,
    pub(crate) nodes: Vec<SimNode<S>>,
    pub(crate) cluster: Vec<Member>,
    clock: Arc<ManualClock>,
    /// Messages on the wire, in no particular order (delivery picks at random).
    pub(crate) wire: Vec<Message>,
    /// `group[i]`: the partition side of member i+1; messages cross sides only when equal.
    pub(crate) group: Vec<u8>,
    pub(crate) drop_percent: u32,
    leaders: HashMap<u64, u64>,
    /// Every committed entry seen on any member: index → (term, data).
    pub(crate) committed: BTreeMap<u64, (u64, Vec<u8>)>,
    /// Per member: the highest committed index already checked.
    checked: Vec<u64>,
    pending: Vec<Pending>,
    /// Acknowledged writes: revision (index) → data.
    pub(crate) acked: BTreeMap<u64, Vec<u8>>,
    next_key: u64,
    /// Members run with the planted ack-before-commit bug.
    fault: bool,
    /// Acknowledged writes compacted away before the harness could compare them.
    pub(crate) unverified: usize,
    /// Kept alive until the end of the run.
    _root: tempfile::TempDir,
}

impl<S: Disk> Sim<S> {
    /// A cluster of 3 or 5 members (the seed picks) with a seeded lossy network.
    pub(crate) fn new(seed: u64) -> Sim<S> {
        Sim::with_fault(seed, false)
    }

    /// [`new`](Self::new), with the planted ack-before-commit bug on every member when `fault`.
    pub(crate) fn with_fault(seed: u64, fault: bool) -> Sim<S> {
        let mut rng = StdRng::seed_from_u64(seed);
        let n = if rng.gen_bool(0.3) { 5 } else { 3 };
        let cluster = cluster_members(n);
        let root = tempfile::Builder::new()
            .prefix("berth-sim-")
            .tempdir_in(scratch_root())
            .expect("temp dir");
        let clock = Arc::new(ManualClock::new());
        let nodes = cluster
            .iter()
            .map(|m| {
                let slot = S::slot(root.path(), m.id);
                SimNode::open(m.id, &slot, &cluster, clock.clone(), rng.gen(), fault)
            })
            .collect();
        let drop_percent = rng.gen_range(0..20);
        Sim {
            seed,
            rng,
            nodes,
            cluster,
            clock,
            wire: Vec::new(),
            group: vec![0; n as usize],
            drop_percent,
            leaders: HashMap::new(),
            committed: BTreeMap::new(),
            checked: vec![0; n as usize],
            pending: Vec::new(),
            acked: BTreeMap::new(),
            next_key: 0,
            fault,
            unverified: 0,
            _root: root,
        }
    }

    fn fail(&self, what: String) -> ! {
        panic!(
            "seed {} (rerun with BERTH_SEED={}): {what}",
            self.seed, self.seed
        );
    }

    /// Lets member `i` act on what it was given, puts what it sent on the wire and checks safety.
    pub(crate) fn pump(&mut self, i: usize) {
        self.nodes[i].driver.pump();
        let mut out = std::mem::take(&mut *self.nodes[i].outbox.0.lock().expect("outbox lock"));
        // raft-rs walks its progress map in hash order: sort by receiver so a seed is a replay.
        out.sort_by_key(|m| m.to);
        self.wire.extend(out);
        self.check(i);
    }

    fn check(&mut self, i: usize) {
        let node = &self.nodes[i];
        let raft = &node.driver.raw().raft;
        if raft.state == StateRole::Leader {
            let prev = *self.leaders.entry(raft.term).or_insert(node.id);
            if prev != node.id {
                self.fail(format!(
                    "two leaders in term {}: {prev} and {}",
                    raft.term, node.id
                ));
            }
        }
        let log = &raft.raft_log;
        let first = log.first_index();
        let committed = log.committed;
        let from = self.checked[i].max(first - 1) + 1;
        if from <= committed {
            let ents = log
                .entries(from, u64::MAX, GetEntriesContext::empty(false))
                .unwrap_or_else(|e| {
                    self.fail(format!("member {} lost committed entries: {e}", node.id))
                });
            for e in ents.into_iter().take_while(|e| e.index <= committed) {
                let seen = (e.term, e.data.to_vec());
                let id = node.id;
                match self.committed.get(&e.index) {
                    Some(known) if *known != seen => self.fail(format!(
                        "member {id} committed a different entry at {}: term {} vs term {}",
                        e.index, seen.0, known.0
                    )),
                    Some(_) => {}
                    None => {
                        self.committed.insert(e.index, seen);
                    }
                }
            }
        }
        self.checked[i] = self.checked[i].max(committed);
        self.collect_acks();
    }

    fn collect_acks(&mut self) {
        let mut still = Vec::new();
        for mut p in std::mem::take(&mut self.pending) {
            match p.rx.try_recv() {
                Ok(Ok(c)) => {
                    match self.committed.get(&c.revision) {
                        Some((_, data)) if *data != p.data => self.fail(format!(
                            "write acknowledged at {} but another entry committed there",
                            c.revision
                        )),
                        _ => {}
                    }
                    self.acked.insert(c.revision, p.data);
                }
                Ok(Err(_)) | Err(oneshot::error::TryRecvError::Closed) => {}
                Err(oneshot::error::TryRecvError::Empty) => still.push(p),
            }
        }
        self.pending = still;
    }

    /// Proposes a write on member `i` (a leader takes it; anyone else answers `NoLeader`).
    pub(crate) fn propose(&mut self, i: usize) {
        self.next_key += 1;
        let batch = Batch::one(Op::Put {
            key: format!("/core/configmaps/default/k{}", self.next_key % 7),
            value: json!({"metadata": {"name": "k"}, "data": {"seq": self.next_key.to_string()}}),
            precondition: Precondition::None,
        });
        let data = serde_json::to_vec(&batch).expect("batch encodes");
        let (tx, rx) = oneshot::channel();
        self.nodes[i].driver.handle(Msg::Propose {
            data: data.clone(),
            tx,
        });
        self.pending.push(Pending { data, rx });
        self.pump(i);
    }

    /// Delivers one message off the wire, picked at random; unless `lossless`, partitions and the
    /// drop rate may lose it.
    pub(crate) fn deliver_one(&mut self, lossless: bool) {
        if self.wire.is_empty() {
            return;
        }
        let k = self.rng.gen_range(0..self.wire.len());
        let m = self.wire.swap_remove(k);
        let (from, to) = (m.from as usize - 1, m.to as usize - 1);
        if to >= self.nodes.len() {
            return;
        }
        let lost = !lossless
            && (self.group[from] != self.group[to]
                || self.rng.gen_range(0..100) < self.drop_percent);
        let snapshot = m.get_msg_type() == MessageType::MsgSnapshot;
        if !lost {
            self.nodes[to].driver.handle(Msg::Raft(Box::new(m)));
            self.pump(to);
        }
        // What the gRPC transport reports back to the sender: a failed send, and every snapshot's fate.
        let to_id = to as u64 + 1;
        if lost {
            self.nodes[from].driver.handle(Msg::Unreachable(to_id));
        }
        if snapshot {
            self.nodes[from].driver.handle(Msg::SnapshotSent {
                to: to_id,
                ok: !lost,
            });
        }
        if lost || snapshot {
            self.pump(from);
        }
    }

    /// One tick of member `i`; time moves on by a share of a tick.
    pub(crate) fn tick(&mut self, i: usize) {
        let share = driver_config(false).tick / self.nodes.len() as u32;
        self.clock.advance(share);
        self.nodes[i].driver.tick();
        self.pump(i);
    }

    fn partition(&mut self) {
        for g in &mut self.group {
            *g = self.rng.gen_range(0..2);
        }
    }

    /// Stops member `i` and starts it again from its data dir (a crash: everything it
    /// acknowledged was fsynced, so nothing acknowledged may be lost).
    pub(crate) fn restart(&mut self, i: usize) {
        let id = self.nodes[i].id;
        let slot = self.nodes[i].slot.clone();
        let seed = self.rng.gen();
        // Dropping the driver closes sled before it is opened again.
        drop(self.nodes.remove(i));
        let node = SimNode::open(
            id,
            &slot,
            &self.cluster,
            self.clock.clone(),
            seed,
            self.fault,
        );
        self.nodes.insert(i, node);
        self.checked[i] = 0;
        self.pump(i);
    }

    /// Runs `steps` random steps (deliveries, ticks, proposals, partitions, restarts), then settles.
    pub(crate) fn run(&mut self, steps: usize) {
        for _ in 0..steps {
            let n = self.nodes.len();
            let i = self.rng.gen_range(0..n);
            match self.rng.gen_range(0..100) {
                0..=49 => self.deliver_one(false),
                50..=74 => self.tick(i),
                75..=89 => self.propose(i),
                90..=95 => {
                    for j in 0..n {
                        self.tick(j);
                    }
                }
                96..=98 => self.partition(),
                _ => {
                    if self.rng.gen_bool(0.3) && S::RESTARTS {
                        self.restart(i);
                    } else {
                        self.group = vec![0; n];
                    }
                }
            }
        }
        self.settle();
    }

    /// Heals the network and runs until every member has applied everything committed.
    pub(crate) fn settle(&mut self) {
        self.group = vec![0; self.nodes.len()];
        for round in 0..2000 {
            while !self.wire.is_empty() {
                self.deliver_one(true);
            }
            let commits: Vec<u64> = self
                .nodes
                .iter()
                .map(|n| *n.shared.applied_index.borrow())
                .collect();
            let has_leader = self
                .nodes
                .iter()
                .any(|n| n.driver.raw().raft.state == StateRole::Leader);
            let max = self
                .nodes
                .iter()
                .map(|n| n.driver.raw().raft.raft_log.committed)
                .max()
                .unwrap_or(0);
            if has_leader && round > 0 && commits.iter().all(|c| *c == max) {
                self.final_checks(max);
                return;
            }
            for j in 0..self.nodes.len() {
                self.tick(j);
            }
        }
        let states: Vec<String> = self
            .nodes
            .iter()
            .map(|n| {
                let r = &n.driver.raw().raft;
                format!(
                    "m{}: term {} {:?} commit {} applied {} log {}..={}",
                    n.id,
                    r.term,
                    r.state,
                    r.raft_log.committed,
                    *n.shared.applied_index.borrow(),
                    r.raft_log.first_index(),
                    r.raft_log.last_index()
                )
            })
            .collect();
        self.fail(format!(
            "the cluster did not settle after healing: {states:?}"
        ));
    }

    fn final_checks(&mut self, commit: u64) {
        for (&index, data) in &self.acked {
            match self.committed.get(&index) {
                Some((_, d)) if d == data => {}
                Some(_) => self.fail(format!("acknowledged write at {index} was replaced")),
                None if index <= commit => {
                    // Compacted before this harness saw it on any member: the state machines below
                    // still have to agree, but the entry cannot be compared.
                    self.unverified += 1;
                }
                None => self.fail(format!(
                    "acknowledged write at {index} is not committed (commit {commit})"
                )),
            }
        }
        let state = |n: &SimNode<S>| {
            n.shared
                .applied
                .read()
                .expect("applied lock")
                .sm
                .list("")
                .into_iter()
                .map(|o| (o.key, o.value, o.revision))
                .collect::<Vec<_>>()
        };
        let first = state(&self.nodes[0]);
        for n in &self.nodes[1..] {
            if state(n) != first {
                self.fail(format!("state machines of members 1 and {} differ", n.id));
            }
        }
    }
}

impl<S: Disk> Sim<S> {
    /// Ticks a lossless network until some member leads; returns its position.
    pub(crate) fn elect(&mut self) -> usize {
        for _ in 0..500 {
            if let Some(i) = self
                .nodes
                .iter()
                .position(|n| n.driver.raw().raft.state == StateRole::Leader)
            {
                return i;
            }
            for j in 0..self.nodes.len() {
                self.tick(j);
            }
            while !self.wire.is_empty() {
                self.deliver_one(true);
            }
        }
        self.fail("no leader elected".into());
    }
}
