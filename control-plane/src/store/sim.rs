//! The deterministic simulation over many seeds: the `harness` cluster over sled and
//! the WAL in temp dirs, with drops, reorders, partitions and crashes.
//!
//! `cargo test -p control-plane --lib store::sim` runs [`DEFAULT_SEEDS`] seeds; `BERTH_SEEDS=N` runs N,
//! and `BERTH_SEED=S` runs only seed S. A failure names its seed.

use raft::eraftpb::{Message, MessageType};
use serde_json::json;
use tokio::sync::oneshot;

use super::driver::{check_message, Msg};
use super::harness;
use super::object_store::{Batch, Op, Precondition};
use super::sled_storage::SledStorage;

/// Seeds run by a plain `cargo test`.
const DEFAULT_SEEDS: u64 = 1000;

/// The simulated cluster over the production storage.
type Sim = harness::Sim<SledStorage>;

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
    assert!(check_message(&m).is_err());
    sim.nodes[follower].driver.handle(Msg::Raft(Box::new(m)));
    sim.pump(follower);
    assert!(sim.nodes[follower].driver.raw().raft.raft_log.committed < 1000);
    sim.propose(leader);
    sim.settle();
    assert_eq!(sim.acked.len(), 1);
}
