//! Deterministic harness for the Raft driver: real members (the same [`Driver`] code, over sled and
//! the WAL in temp dirs) on an in-process network that a seeded RNG drops, reorders and partitions,
//! with ticks driven by the harness instead of a clock. After every step it checks that a term has
//! at most one leader and that committed entries never change; at the end, that every acknowledged
//! write is committed on every member and that the state machines agree.
//!
//! `cargo test -p control-plane --lib store::sim` runs [`DEFAULT_SEEDS`] seeds; `BERTH_SEEDS=N` runs N,
//! and `BERTH_SEED=S` runs only seed S. A failure names its seed.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use raft::eraftpb::{Message, MessageType};
use raft::{GetEntriesContext, StateRole};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde_json::json;
use tokio::sync::oneshot;

use super::members::{Member, Members};
use super::node::{self, Driver, DriverConfig, Msg, Network, Shared};
use super::sled_storage::SledStorage;
use super::{Batch, Committed, Op, Precondition, Result};

/// Seeds run by a plain `cargo test`.
const DEFAULT_SEEDS: u64 = 1000;

/// Collects what a member sends; the harness delivers it.
#[derive(Default)]
struct Outbox(Mutex<Vec<Message>>);

impl Network for Outbox {
    fn send(&self, msgs: Vec<Message>) {
        self.0.lock().expect("outbox lock").extend(msgs);
    }

    fn set_peers(&self, _: &Members) {}
}

struct SimNode {
    id: u64,
    dir: std::path::PathBuf,
    driver: Driver,
    shared: Arc<Shared>,
    outbox: Arc<Outbox>,
    /// Kept so the driver's receiver never sees a closed channel.
    _tx: std::sync::mpsc::Sender<Msg>,
    /// (term, role) when the election timeout was last drawn from the seed.
    drawn: (u64, StateRole),
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

impl SimNode {
    /// Opens (or reopens, after a crash) member `id` in `dir`.
    fn open(
        id: u64,
        dir: &std::path::Path,
        cluster: &[Member],
        nonce: u64,
        fault: bool,
    ) -> SimNode {
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
        let (sm, members) = super::raft_store::restore(&mut storage).expect("restore");
        let shared = node::new_shared(id, sm, 1000, members);
        let (tx, rx) = std::sync::mpsc::channel();
        let outbox = Arc::new(Outbox::default());
        let driver = Driver::inline(
            storage,
            rx,
            shared.clone(),
            outbox.clone(),
            driver_config(fault),
            nonce,
        )
        .expect("driver");
        SimNode {
            id,
            dir: dir.to_path_buf(),
            driver,
            shared,
            outbox,
            _tx: tx,
            drawn: (u64::MAX, StateRole::Follower),
        }
    }

    fn term_role(&self) -> (u64, StateRole) {
        let r = &self.driver.raw().raft;
        (r.term, r.state)
    }
}

/// A write the harness proposed and is waiting on.
struct Pending {
    data: Vec<u8>,
    rx: oneshot::Receiver<Result<Committed>>,
}

struct Sim {
    seed: u64,
    rng: StdRng,
    nodes: Vec<SimNode>,
    cluster: Vec<Member>,
    /// Messages on the wire, in no particular order (delivery picks at random).
    wire: Vec<Message>,
    /// `group[i]`: the partition side of member i+1; messages cross sides only when equal.
    group: Vec<u8>,
    drop_percent: u32,
    leaders: HashMap<u64, u64>,
    /// Every committed entry seen on any member: index → (term, data).
    committed: BTreeMap<u64, (u64, Vec<u8>)>,
    /// Per member: the highest committed index already checked.
    checked: Vec<u64>,
    pending: Vec<Pending>,
    /// Acknowledged writes: revision (index) → data.
    acked: BTreeMap<u64, Vec<u8>>,
    next_key: u64,
    /// Members run with the planted ack-before-commit bug.
    fault: bool,
    /// Acknowledged writes compacted away before the harness could compare them.
    unverified: usize,
    /// Kept alive until the end of the run.
    _root: tempfile::TempDir,
}

impl Sim {
    fn new(seed: u64) -> Sim {
        Sim::with_fault(seed, false)
    }

    fn with_fault(seed: u64, fault: bool) -> Sim {
        let mut rng = StdRng::seed_from_u64(seed);
        let n = if rng.gen_bool(0.3) { 5 } else { 3 };
        let cluster = cluster_members(n);
        let root = tempfile::Builder::new()
            .prefix("berth-sim-")
            .tempdir_in(scratch_root())
            .expect("temp dir");
        let nodes = cluster
            .iter()
            .map(|m| {
                let dir = root.path().join(format!("m{}", m.id));
                SimNode::open(m.id, &dir, &cluster, rng.gen(), fault)
            })
            .collect();
        let drop_percent = rng.gen_range(0..20);
        let mut sim = Sim {
            seed,
            rng,
            nodes,
            cluster,
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
        };
        for i in 0..sim.nodes.len() {
            sim.redraw_timeout(i);
        }
        sim
    }

    fn fail(&self, what: String) -> ! {
        panic!(
            "seed {} (rerun with BERTH_SEED={}): {what}",
            self.seed, self.seed
        );
    }

    /// raft-rs draws election timeouts from its own RNG whenever the term or role changes; the
    /// harness replaces each draw with one from the seed.
    fn redraw_timeout(&mut self, i: usize) {
        let now = self.nodes[i].term_role();
        if now != self.nodes[i].drawn {
            let t = self.rng.gen_range(10..20);
            self.nodes[i].driver.set_election_timeout(t);
            self.nodes[i].drawn = now;
        }
    }

    /// Lets member `i` act on what it was given, puts what it sent on the wire and checks safety.
    fn pump(&mut self, i: usize) {
        self.nodes[i].driver.pump();
        let mut out = std::mem::take(&mut *self.nodes[i].outbox.0.lock().expect("outbox lock"));
        // raft-rs walks its progress map in hash order: sort by receiver so a seed is a replay.
        out.sort_by_key(|m| m.to);
        self.wire.extend(out);
        self.redraw_timeout(i);
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

    fn propose(&mut self, i: usize) {
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

    fn deliver_one(&mut self, lossless: bool) {
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

    fn tick(&mut self, i: usize) {
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
    fn restart(&mut self, i: usize) {
        let id = self.nodes[i].id;
        let dir = self.nodes[i].dir.clone();
        let nonce = self.rng.gen();
        // Dropping the driver closes sled before it is opened again.
        drop(self.nodes.remove(i));
        let node = SimNode::open(id, &dir, &self.cluster, nonce, self.fault);
        self.nodes.insert(i, node);
        self.checked[i] = 0;
        self.pump(i);
    }

    fn run(&mut self, steps: usize) {
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
                    if self.rng.gen_bool(0.3) {
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
    fn settle(&mut self) {
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
        let state = |n: &SimNode| {
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

fn seeds() -> std::ops::Range<u64> {
    if let Some(s) = std::env::var("BERTH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return s..s + 1;
    }
    let n = std::env::var("BERTH_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_SEEDS);
    0..n
}

/// Raft paper §5.2 (election safety), §5.3/§5.4 (log matching, leader completeness, state machine
/// safety) under drops, reorders, partitions and crashes, over many seeds.
#[test]
fn raft_safety_over_seeds() {
    let steps: usize = std::env::var("BERTH_SIM_STEPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(800);
    let (mut acked, mut committed, mut compacted, mut runs, mut unverified) = (0, 0, 0, 0, 0);
    for seed in seeds() {
        let mut sim = Sim::new(seed);
        sim.run(steps);
        runs += 1;
        acked += sim.acked.len();
        unverified += sim.unverified;
        committed += sim.committed.len();
        compacted += sim
            .nodes
            .iter()
            .filter(|n| n.driver.raw().raft.raft_log.first_index() > 2)
            .count();
    }
    eprintln!("{runs} seeds: {committed} entries committed, {acked} writes acknowledged ({unverified} compacted before compared), {compacted} members compacted");
    // A harness that never gets a write through, or never compacts, proves nothing.
    assert!(
        acked >= runs,
        "too few writes acknowledged: {acked} in {runs} seeds"
    );
    assert!(
        compacted > 0 || runs < 20,
        "no member ever compacted its log"
    );
    assert!(
        unverified * 100 <= acked,
        "{unverified} of {acked} acknowledged writes were compacted before they could be compared"
    );
}

/// The harness is only as good as what it catches: with the planted ack-before-commit bug, some seed
/// must end with an acknowledged write lost or replaced.
#[test]
fn the_harness_catches_the_planted_ack_before_commit_bug() {
    let caught = (0..200u64).find(|&seed| {
        std::panic::catch_unwind(|| {
            let mut sim = Sim::with_fault(seed, true);
            sim.run(800);
        })
        .is_err()
    });
    assert!(
        caught.is_some(),
        "no seed caught acknowledged writes that never committed"
    );
}

/// The planted bug (`BERTH_TEST_ACK_BEFORE_COMMIT=1`) acknowledges a write that cannot commit: its
/// leader is cut off from every follower.
#[test]
fn the_ack_before_commit_fault_acks_an_uncommitted_write() {
    let mut sim = Sim::with_fault(44, true);
    let leader = sim.elect();
    sim.group = vec![1; sim.nodes.len()];
    sim.group[leader] = 0;
    let (tx, mut rx) = oneshot::channel();
    sim.nodes[leader].driver.handle(Msg::Propose {
        data: serde_json::to_vec(&Batch::one(Op::Delete {
            key: "/core/pods/a/x".into(),
            precondition: Precondition::None,
        }))
        .unwrap(),
        tx,
    });
    sim.pump(leader);
    let c = rx
        .try_recv()
        .expect("answered at once")
        .expect("acknowledged");
    assert!(c.revision > sim.nodes[leader].driver.raw().raft.raft_log.committed);
}

/// A seed is a replay: the same seed gives the same committed log.
#[test]
fn a_seed_replays_the_same_history() {
    let run = |seed| {
        let mut sim = Sim::new(seed);
        sim.run(300);
        (sim.committed.clone(), sim.acked.clone())
    };
    assert_eq!(run(7), run(7));
}

/// An entry whose bytes are no batch (a forged or corrupted proposal) is skipped on every member
/// with an error to its proposer; nothing panics and later writes commit.
#[test]
fn a_forged_entry_is_skipped_with_an_error_on_every_member() {
    let mut sim = Sim::new(42);
    let leader = sim.elect();
    let (tx, mut rx) = oneshot::channel();
    sim.nodes[leader].driver.handle(Msg::Propose {
        data: b"\x00not json".to_vec(),
        tx,
    });
    let (tx2, mut rx2) = oneshot::channel();
    let key = Batch::one(Op::Put {
        key: "\0applied".into(),
        value: json!(1),
        precondition: Precondition::None,
    });
    sim.nodes[leader].driver.handle(Msg::Propose {
        data: serde_json::to_vec(&key).unwrap(),
        tx: tx2,
    });
    sim.pump(leader);
    sim.propose(leader);
    sim.settle();
    let err = rx.try_recv().expect("answered").unwrap_err();
    assert!(err.to_string().contains("no valid batch"), "{err}");
    let err = rx2.try_recv().expect("answered").unwrap_err();
    assert!(err.to_string().contains("invalid key"), "{err}");
    assert_eq!(sim.acked.len(), 1, "the valid write after them commits");
}

/// A snapshot whose data does not decode is refused before raft-rs takes it; the member keeps
/// working and catches up normally.
#[test]
fn a_forged_snapshot_is_refused_and_the_member_keeps_working() {
    let mut sim = Sim::new(43);
    let leader = sim.elect();
    let follower = (leader + 1) % sim.nodes.len();
    let term = sim.nodes[leader].driver.raw().raft.term;
    let mut m = Message::default();
    m.set_msg_type(MessageType::MsgSnapshot);
    m.from = sim.nodes[leader].id;
    m.to = sim.nodes[follower].id;
    m.term = term;
    let snap = m.mut_snapshot();
    snap.data = b"BRT1 but not really".to_vec().into();
    let meta = snap.mut_metadata();
    meta.index = 1000;
    meta.term = term;
    meta.mut_conf_state().voters = sim.cluster.iter().map(|c| c.id).collect();
    assert!(node::check_message(&m).is_err());
    sim.nodes[follower].driver.handle(Msg::Raft(Box::new(m)));
    sim.pump(follower);
    assert!(sim.nodes[follower].driver.raw().raft.raft_log.committed < 1000);
    sim.propose(leader);
    sim.settle();
    assert_eq!(sim.acked.len(), 1);
}

impl Sim {
    /// Ticks a lossless network until some member leads; returns its position.
    fn elect(&mut self) -> usize {
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
