//! Unit tests of the driver: scripted scenarios on the [`harness`](crate::store::harness) cluster over
//! in-memory storage, an in-process network and a clock the harness moves. Named after the Raft paper
//! section they check; the harness's safety checks run after every step of each.

use raft::StateRole;
use tokio::sync::oneshot;

use super::super::harness;
use super::super::log_store::LogStore as _;
use super::super::mem_log::MemLog;
use super::super::object_store::Error;
use super::Msg;

type Sim = harness::Sim<MemLog>;

/// A cluster on a network that loses nothing but what partitions cut.
fn cluster(seed: u64) -> Sim {
    let mut sim = Sim::new(seed);
    sim.drop_percent = 0;
    sim
}

/// Delivers what is on the wire, honouring partitions.
fn flush(sim: &mut Sim) {
    for _ in 0..100_000 {
        if sim.wire.is_empty() {
            return;
        }
        sim.deliver_one(false);
    }
    panic!("the wire never drained");
}

/// `n` ticks of every member, delivering after each.
fn ticks(sim: &mut Sim, n: usize) {
    for _ in 0..n {
        for j in 0..sim.nodes.len() {
            sim.tick(j);
        }
        flush(sim);
    }
}

fn role(sim: &Sim, i: usize) -> StateRole {
    sim.nodes[i].driver.raw().raft.state
}

fn term(sim: &Sim, i: usize) -> u64 {
    sim.nodes[i].driver.raw().raft.term
}

fn applied(sim: &Sim, i: usize) -> u64 {
    *sim.nodes[i].shared.applied_index.borrow()
}

/// Cuts member `i` off from every other member.
fn isolate(sim: &mut Sim, i: usize) {
    sim.group = vec![0; sim.nodes.len()];
    sim.group[i] = 1;
}

fn heal(sim: &mut Sim) {
    sim.group = vec![0; sim.nodes.len()];
}

/// Proposes `n` writes on member `i`, delivering after each.
fn write(sim: &mut Sim, i: usize, n: usize) {
    for _ in 0..n {
        sim.propose(i);
        flush(sim);
    }
}

/// Reference: section 5.2. An election makes exactly one leader, and every member learns who it is.
#[test]
fn election_makes_one_leader_that_every_member_knows() {
    for seed in 0..20 {
        let mut sim = cluster(seed);
        let leader = sim.elect();
        ticks(&mut sim, 3);
        let leaders: Vec<usize> = (0..sim.nodes.len())
            .filter(|&i| role(&sim, i) == StateRole::Leader)
            .collect();
        assert_eq!(leaders, vec![leader], "seed {seed}");
        let id = sim.nodes[leader].id;
        for n in &sim.nodes {
            let seen = *n.shared.leadership.borrow();
            assert_eq!(seen.leader_id, id, "seed {seed}: member {}", n.id);
            assert_eq!(seen.is_leader, n.id == id);
            assert_eq!(*n.shared.is_leader.borrow(), n.id == id);
        }
    }
}

/// Reference: section 5.3. A leader's writes are acknowledged once committed and applied on every
/// member, in the same order.
#[test]
fn replication_applies_every_acknowledged_write_on_every_member() {
    let mut sim = cluster(1);
    let leader = sim.elect();
    write(&mut sim, leader, 10);
    ticks(&mut sim, 2);
    assert_eq!(sim.acked.len(), 10);
    let last = *sim.acked.keys().last().expect("acknowledged");
    for i in 0..sim.nodes.len() {
        assert!(
            applied(&sim, i) >= last,
            "member {i} applied {}",
            applied(&sim, i)
        );
    }
    sim.settle();
}

/// Reference: section 8 (client interaction). A follower does not propose: it answers `NoLeader`
/// at once, so the store forwards the write to the leader and nothing is proposed twice.
#[test]
fn a_follower_refuses_proposals_so_the_store_forwards_them() {
    let mut sim = cluster(2);
    let leader = sim.elect();
    let follower = (leader + 1) % sim.nodes.len();
    let (tx, mut rx) = oneshot::channel();
    sim.nodes[follower].driver.handle(Msg::Propose {
        data: b"{}".to_vec(),
        tx,
    });
    assert_eq!(
        rx.try_recv().expect("answered at once"),
        Err(Error::NoLeader)
    );
}

/// Reference: section 8 (read-only queries, ReadIndex). A follower's read barrier goes through the
/// leader and answers with an index at or past every write acknowledged before it.
#[test]
fn a_follower_read_index_covers_every_acknowledged_write() {
    let mut sim = cluster(3);
    let leader = sim.elect();
    let follower = (leader + 1) % sim.nodes.len();
    write(&mut sim, leader, 5);
    let last = *sim.acked.keys().last().expect("acknowledged");
    let (tx, mut rx) = oneshot::channel();
    sim.nodes[follower].driver.handle(Msg::ReadIndex(tx));
    sim.pump(follower);
    flush(&mut sim);
    let index = rx.try_recv().expect("answered").expect("read index");
    assert!(
        index >= last,
        "read index {index} before acknowledged write {last}"
    );
    assert!(
        applied(&sim, follower) >= index,
        "follower applied up to the barrier"
    );
}

/// A read barrier with no leader known fails at once rather than waiting for an election.
#[test]
fn a_read_index_without_a_leader_answers_no_leader() {
    let mut sim = cluster(4);
    let (tx, mut rx) = oneshot::channel();
    sim.nodes[0].driver.handle(Msg::ReadIndex(tx));
    sim.pump(0);
    assert_eq!(rx.try_recv().expect("answered"), Err(Error::NoLeader));
}

/// Reference: section 7 (log compaction). A member cut off while the leader compacts its log past
/// what the member has catches up by snapshot, then from the log.
#[test]
fn a_lagging_member_catches_up_by_snapshot() {
    let mut sim = cluster(5);
    let leader = sim.elect();
    let lagging = (leader + 1) % sim.nodes.len();
    isolate(&mut sim, lagging);
    sim.group[leader] = 0;
    // Long enough for the leader to see the member inactive, so compaction does not wait for it.
    ticks(&mut sim, 30);
    assert_eq!(role(&sim, leader), StateRole::Leader);
    write(&mut sim, leader, 60);
    ticks(&mut sim, 2);
    let compacted = sim.nodes[leader].driver.raw().store().snapshot_index();
    assert!(
        compacted > applied(&sim, lagging) + 1,
        "leader compacted to {compacted}, member has {}",
        applied(&sim, lagging)
    );
    heal(&mut sim);
    // The leader's log no longer holds what the member misses: only a snapshot can bring it there.
    ticks(&mut sim, 50);
    assert!(sim.nodes[lagging].driver.raw().store().snapshot_index() >= compacted);
    assert_eq!(applied(&sim, lagging), applied(&sim, leader));
    sim.settle();
}

/// Reference: sections 5.2 and 5.4 (leader completeness). When the leader is cut off the others
/// elect a new one in a higher term that has every committed write; writes continue there, the old
/// leader's uncommitted proposal is dropped with a retryable error, and the old leader follows.
#[test]
fn leader_loss_elects_a_new_leader_that_keeps_every_committed_write() {
    let mut sim = cluster(6);
    let old = sim.elect();
    let old_term = term(&sim, old);
    write(&mut sim, old, 5);
    assert_eq!(sim.acked.len(), 5);
    isolate(&mut sim, old);
    let (tx, mut stranded) = oneshot::channel();
    sim.nodes[old].driver.handle(Msg::Propose {
        data: b"{\"ops\":[]}".to_vec(),
        tx,
    });
    sim.pump(old);
    ticks(&mut sim, 40);
    let new = (0..sim.nodes.len())
        .find(|&i| i != old && role(&sim, i) == StateRole::Leader)
        .expect("the others elected a leader");
    assert!(term(&sim, new) > old_term);
    assert_ne!(
        role(&sim, old),
        StateRole::Leader,
        "check-quorum deposed it"
    );
    match stranded.try_recv() {
        Ok(Err(Error::Dropped(_))) => {}
        other => panic!("stranded proposal: {other:?}"),
    }
    write(&mut sim, new, 5);
    assert_eq!(sim.acked.len(), 10);
    heal(&mut sim);
    ticks(&mut sim, 5);
    assert_eq!(role(&sim, old), StateRole::Follower);
    assert_eq!(
        sim.nodes[old].shared.leadership.borrow().leader_id,
        sim.nodes[new].id
    );
    // Every acknowledged write is committed on every member and the state machines agree.
    sim.settle();
}

/// Elections depend only on the seed the driver is given: the same seed replays the same history.
#[test]
fn the_seed_fixes_elections_and_history() {
    let run = |seed| {
        let mut sim = Sim::new(seed);
        sim.run(300);
        let terms: Vec<u64> = (0..sim.nodes.len()).map(|i| term(&sim, i)).collect();
        (sim.committed.clone(), sim.acked.clone(), terms)
    };
    assert_eq!(run(11), run(11));
}

/// The random schedule of the simulation, over memory: safety holds on every seed.
#[test]
fn random_schedules_over_memory_stay_safe() {
    for seed in 0..30 {
        let mut sim = Sim::new(seed);
        sim.run(400);
    }
}
