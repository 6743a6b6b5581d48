//! Linearizability of the API under faults, on a real lab (3 servers, no agents): client threads
//! read, write and compare-and-set a few ConfigMaps through the HTTPS API of different servers while
//! the leader is killed and partitioned; the recorded history must be linearizable. The same
//! workload on servers started with `BERTH_TEST_ACK_BEFORE_COMMIT=1` (the leader acknowledges writes
//! before they commit) must be caught.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use berth_tests::lin_workload::{
    create_registers, leader, peer_heal, peer_partition, tally, Clients, Recorder, Workload,
};
use berth_tests::linearizability::{check, Limit, Operation, Report, Verdict};
use berth_tests::{skip_reason, wait_for, Lab};

/// The two drills share the machine's one lab subnet: never both at once.
static ONE_LAB: Mutex<()> = Mutex::new(());

/// The planted bug's switch in berth-server.
const ACK_BEFORE_COMMIT: &str = "BERTH_TEST_ACK_BEFORE_COMMIT";

fn workload(seed: u64) -> Workload {
    Workload {
        keys: (0..4).map(|k| format!("reg-{k}")).collect(),
        clients: 5,
        op_timeout: Duration::from_secs(2),
        max_ops_per_client: 5_000,
        read_percent: 55,
        cas_percent: 15,
        seed,
    }
}

/// One fault, in seconds since the history began.
struct Fault {
    what: String,
    node: String,
    at: Duration,
    lasted: Duration,
}

/// Records the faults of a schedule as it runs them.
struct Schedule<'a> {
    lab: &'a Lab,
    history: &'a Recorder,
    faults: Vec<Fault>,
}

impl Schedule<'_> {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.history.now())
    }

    /// The current leader, waiting (bounded) for one that is not `not`.
    fn leader(&self, not: Option<&str>) -> Result<String> {
        wait_for(
            "a leader",
            Duration::from_secs(20),
            Duration::from_millis(200),
            || Ok(leader(self.lab).ok().filter(|l| Some(l.as_str()) != not)),
        )
    }

    /// Runs `fault` on `node`, waits `hold`, undoes it, then lets the cluster settle for `settle`.
    fn run(
        &mut self,
        what: &str,
        node: &str,
        hold: Duration,
        settle: Duration,
        fault: impl FnOnce(&Lab, &str) -> Result<()>,
        undo: impl FnOnce(&Lab, &str) -> Result<()>,
    ) -> Result<()> {
        let at = self.now();
        eprintln!("   {:>5.1}s {what} {node}", at.as_secs_f64());
        fault(self.lab, node)?;
        std::thread::sleep(hold);
        undo(self.lab, node)?;
        self.faults.push(Fault {
            what: what.to_string(),
            node: node.to_string(),
            at,
            lasted: self.now() - at,
        });
        std::thread::sleep(settle);
        Ok(())
    }

    fn kill(&mut self, node: &str, hold: Duration, settle: Duration) -> Result<()> {
        self.run(
            "kill -9 + restart",
            node,
            hold,
            settle,
            |lab, n| lab.lab("kill", Some(n)).map(drop),
            |lab, n| lab.lab("restart", Some(n)).map(drop),
        )
    }

    /// Cut off from everything, clients included (the host-side veth down).
    fn isolate(&mut self, node: &str, hold: Duration, settle: Duration) -> Result<()> {
        self.run(
            "partition (veth down) + heal",
            node,
            hold,
            settle,
            |lab, n| lab.lab("partition", Some(n)).map(drop),
            |lab, n| lab.lab("heal", Some(n)).map(drop),
        )
    }

    /// Cut off from its peers only: clients still reach it.
    fn cut_peers(&mut self, node: &str, hold: Duration, settle: Duration) -> Result<()> {
        self.run(
            "peer partition (6444 dropped) + heal",
            node,
            hold,
            settle,
            peer_partition,
            peer_heal,
        )
    }

    fn follower(&self, leader: &str) -> String {
        self.lab
            .nodes("server")
            .into_iter()
            .map(|(n, _)| n)
            .find(|n| !leader.ends_with(n.as_str()))
            .unwrap_or_default()
    }
}

/// What one drill saw.
struct Run {
    history: Vec<Operation>,
    faults: Vec<Fault>,
    report: Report,
    checked_in: Duration,
    span: Duration,
    /// Whether any server's log mentions the planted bug's switch (a server that implements it says
    /// so when it starts), to tell "the checker missed it" from "this build lacks the switch".
    logs_mention_planted_bug: bool,
}

/// Up a lab (with `env` for the servers), run the workload under `schedule`, check the history.
fn drill(
    name: &str,
    env: &[(&str, &str)],
    seed: u64,
    schedule: impl FnOnce(&mut Schedule) -> Result<()>,
) -> Result<Run> {
    let lab = Lab::up_with_env(name, 3, 0, env)?;
    let w = workload(seed);
    eprintln!(
        "== {name}: {} clients on {} registers, seed {seed:#x}",
        w.clients,
        w.keys.len()
    );
    let history = Recorder::new();
    create_registers(&lab, &w, &history, Duration::from_secs(20))?;
    let clients = Clients::start(lab.api_addrs(), lab.admin.clone(), &w, &history);
    let mut s = Schedule {
        lab: &lab,
        history: &history,
        faults: vec![],
    };
    let ran = schedule(&mut s);
    let faults = std::mem::take(&mut s.faults);
    clients.stop();
    let span = Duration::from_nanos(history.now());
    ran?;
    let lab_dir = lab
        .kubeconfig
        .parent()
        .context("kubeconfig has no directory")?;
    let logs_mention_planted_bug = lab.nodes("server").iter().any(|(n, _)| {
        std::fs::read_to_string(lab_dir.join(format!("{n}.log")))
            .is_ok_and(|log| log.contains(ACK_BEFORE_COMMIT))
    });
    drop(lab);
    let history = history.history();
    let started = Instant::now();
    let report = check(
        &history,
        Limit {
            steps_per_key: 3_000_000,
        },
    );
    let checked_in = started.elapsed();
    let run = Run {
        history,
        faults,
        report,
        checked_in,
        span,
        logs_mention_planted_bug,
    };
    summary(name, &run);
    Ok(run)
}

fn summary(name: &str, r: &Run) {
    eprintln!(
        "== {name}: {} operations in {:.1}s",
        r.history.len(),
        r.span.as_secs_f64()
    );
    for (k, n) in tally(&r.history) {
        eprintln!("   {k:<16} {n}");
    }
    for f in &r.faults {
        eprintln!(
            "   fault at {:>5.1}s for {:>4.1}s: {} {}",
            f.at.as_secs_f64(),
            f.lasted.as_secs_f64(),
            f.what,
            f.node
        );
    }
    let verdict = match &r.report.verdict {
        Verdict::Linearizable => "linearizable".to_string(),
        Verdict::NotLinearizable(v) => format!("NOT linearizable (key {})", v.key),
        Verdict::Unknown { key, steps } => {
            format!("undecided: gave up on {key} after {steps} steps")
        }
    };
    eprintln!(
        "   checker: {verdict}; {} keys, {} operations considered, {} steps, {:?}",
        r.report.keys, r.report.considered, r.report.steps, r.checked_in
    );
    if let Verdict::NotLinearizable(v) = &r.report.verdict {
        let show = |i: &usize| format!("{:?}", r.history[*i]);
        let tail: Vec<String> = v
            .longest_prefix
            .iter()
            .rev()
            .take(5)
            .rev()
            .map(show)
            .collect();
        eprintln!(
            "   key {}: after {} operations (ending {:#?}) the register holds {:?} and cannot take any of {:#?}",
            v.key,
            v.longest_prefix.len(),
            tail,
            v.state,
            v.stuck_on.iter().map(show).collect::<Vec<_>>()
        );
    }
}

fn skip(test: &str) -> bool {
    match skip_reason() {
        Some(why) => {
            eprintln!("skipping {test}: {why}");
            true
        }
        None => false,
    }
}

#[test]
fn lab_history_is_linearizable_under_leader_kills_and_partitions() -> Result<()> {
    if skip("lab_history_is_linearizable_under_leader_kills_and_partitions") {
        return Ok(());
    }
    let _one = ONE_LAB.lock().unwrap_or_else(|e| e.into_inner());
    let run = drill("lin", &[], 0x5eed_0001, |s| {
        let secs = Duration::from_secs;
        std::thread::sleep(secs(4));
        let l = s.leader(None)?;
        s.kill(&l, secs(4), secs(4))?;
        let l = s.leader(None)?;
        s.cut_peers(&l, secs(5), secs(4))?;
        let l = s.leader(None)?;
        s.isolate(&l, secs(4), secs(4))?;
        let f = s.follower(&s.leader(None)?);
        s.isolate(&f, secs(3), secs(3))?;
        let l = s.leader(None)?;
        s.kill(&l, secs(3), secs(4))
    })?;
    let ok = run
        .history
        .iter()
        .filter(|o| matches!(o.outcome, berth_tests::linearizability::Outcome::Ok(_)))
        .count();
    assert!(
        ok > 200,
        "too little progress to mean anything: {ok} operations succeeded"
    );
    assert!(run.faults.len() >= 5, "not every fault ran");
    assert_eq!(
        run.report.verdict,
        Verdict::Linearizable,
        "the API's history is not linearizable (see above)"
    );
    Ok(())
}

#[test]
fn lab_checker_catches_acknowledgement_before_commit() -> Result<()> {
    if skip("lab_checker_catches_acknowledgement_before_commit") {
        return Ok(());
    }
    let _one = ONE_LAB.lock().unwrap_or_else(|e| e.into_inner());
    // A leader cut off from its peers (but not from clients) acknowledges writes it can never
    // commit; the majority elects another leader and serves the older values: lost writes and
    // stale reads, if the leader acknowledges before commit.
    let run = drill("linbug", &[(ACK_BEFORE_COMMIT, "1")], 0x5eed_0002, |s| {
        let secs = Duration::from_secs;
        std::thread::sleep(secs(3));
        for _ in 0..3 {
            let l = s.leader(None)?;
            s.cut_peers(&l, secs(5), secs(4))?;
        }
        let l = s.leader(None)?;
        s.kill(&l, secs(3), secs(3))
    })
    .context("the planted-bug drill did not run")?;
    assert!(
        matches!(run.report.verdict, Verdict::NotLinearizable(_)),
        "the checker did not catch a leader that acknowledges before commit ({:?}); the servers' \
         logs {} {ACK_BEFORE_COMMIT}",
        run.report.verdict,
        if run.logs_mention_planted_bug {
            "mention"
        } else {
            "never mention (is it implemented in this berth-server?)"
        }
    );
    Ok(())
}
