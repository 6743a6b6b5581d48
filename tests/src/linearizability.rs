//! A linearizability checker for histories of read/write/compare-and-set operations on registers:
//! the Wing–Gong search with Lowe's memoization of (linearized set, register state), one register
//! (key) at a time as Porcupine partitions a key-value history. Pure: no clock, no I/O.
//!
//! An operation whose outcome is unknown (a timeout or a dropped connection: it may or may not have
//! taken effect) is treated as completing at +infinity, so it may be placed anywhere after its
//! invocation, or nowhere at all.

use std::collections::{BTreeMap, HashMap, HashSet};

/// What a client asked of one register.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Op {
    /// Read the register.
    Read,
    /// Set the register to a value.
    Write(String),
    /// Set the register to `new` if it holds `expected`.
    Cas {
        /// The value the register must hold.
        expected: String,
        /// The value it then gets.
        new: String,
    },
}

/// How an operation ended, as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// It took effect. For a read: the value seen (`None`: the register was empty).
    Ok(Option<String>),
    /// It definitely did not take effect (a CAS whose expectation did not hold).
    Fail,
    /// It may or may not have taken effect (timeout, connection error).
    Unknown,
}

/// One client operation on one register, with the times (any monotonic unit, e.g. nanoseconds since
/// the run began) at which the client invoked it and saw it complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// Which client issued it (for reports only).
    pub client: usize,
    /// The register.
    pub key: String,
    /// What was asked.
    pub op: Op,
    /// When the client sent it.
    pub invoke: u64,
    /// When the client saw the outcome (or gave up, for [`Outcome::Unknown`], which the checker
    /// treats as never completing).
    pub complete: u64,
    /// What the client saw.
    pub outcome: Outcome,
}

/// Bounds on the search, which is exponential in the worst case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Search steps (model applications) allowed per key before giving up with [`Verdict::Unknown`].
    pub steps_per_key: u64,
}

impl Default for Limit {
    fn default() -> Self {
        Limit {
            steps_per_key: 5_000_000,
        }
    }
}

/// The checker's answer for a whole history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every key's history has a linearization.
    Linearizable,
    /// Some key's history has none; the first such key and why.
    NotLinearizable(Violation),
    /// The search hit its limit on some key before deciding (no key was found non-linearizable).
    Unknown {
        /// The key whose search was cut short.
        key: String,
        /// Steps spent on it.
        steps: u64,
    },
}

/// Where the search got stuck on a key that has no linearization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The register.
    pub key: String,
    /// The longest linearizable prefix found, in order (indices into the history passed to [`check`]).
    pub longest_prefix: Vec<usize>,
    /// Operations that could have come next after that prefix but that the register refuses
    /// (indices into the history).
    pub stuck_on: Vec<usize>,
    /// The register's value after the longest prefix.
    pub state: Option<String>,
}

/// Per-key statistics and the overall verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The verdict.
    pub verdict: Verdict,
    /// Keys checked.
    pub keys: usize,
    /// Operations the search considered (reads that failed or whose outcome is unknown constrain
    /// nothing and are dropped, as are writes that definitely failed).
    pub considered: usize,
    /// Search steps over all keys.
    pub steps: u64,
}

/// Checks a history of operations on independent registers (all initially empty).
pub fn check(history: &[Operation], limit: Limit) -> Report {
    let mut by_key: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, o) in history.iter().enumerate() {
        if constrains(o) {
            by_key.entry(&o.key).or_default().push(i);
        }
    }
    let mut report = Report {
        verdict: Verdict::Linearizable,
        keys: by_key.len(),
        considered: by_key.values().map(Vec::len).sum(),
        steps: 0,
    };
    let mut undecided = None;
    for (key, ops) in by_key {
        let (result, steps) = check_register(history, &ops, limit);
        report.steps += steps;
        match result {
            Search::Found => {}
            Search::Impossible {
                longest_prefix,
                stuck_on,
                state,
            } => {
                report.verdict = Verdict::NotLinearizable(Violation {
                    key: key.to_string(),
                    longest_prefix,
                    stuck_on,
                    state,
                });
                return report;
            }
            Search::GaveUp => {
                undecided.get_or_insert(Verdict::Unknown {
                    key: key.to_string(),
                    steps,
                });
            }
        }
    }
    if let Some(v) = undecided {
        report.verdict = v;
    }
    report
}

/// Whether an operation says anything about the register: a read that failed or might not have
/// happened says nothing, nor does a write that definitely did not happen.
fn constrains(o: &Operation) -> bool {
    !matches!(
        (&o.op, &o.outcome),
        (Op::Read, Outcome::Fail | Outcome::Unknown) | (Op::Write(_), Outcome::Fail)
    )
}

enum Search {
    Found,
    Impossible {
        longest_prefix: Vec<usize>,
        stuck_on: Vec<usize>,
        state: Option<String>,
    },
    GaveUp,
}

/// An operation of one register, with values interned (0 = empty register).
#[derive(Clone, Copy)]
struct Call {
    invoke: u64,
    /// `u64::MAX` for an unknown outcome.
    complete: u64,
    step: Step,
    /// Whether a linearization must include it (its outcome is known).
    required: bool,
    /// An unknown write of a value nobody observed: all of these are alike (see [`candidates`]).
    interchangeable: bool,
}

#[derive(Clone, Copy)]
enum Step {
    /// A read that saw this value.
    Read(u32),
    /// A write (of any outcome that is not a definite failure).
    Write(u32),
    /// A CAS that succeeded.
    CasOk { expected: u32, new: u32 },
    /// A CAS that failed: the register did not hold `expected`.
    CasFail { expected: u32 },
    /// A CAS that may or may not have happened.
    CasMaybe { expected: u32, new: u32 },
}

/// The register model: the state after `step`, or `None` when the step is impossible from `state`.
fn apply(state: u32, step: Step) -> Option<u32> {
    match step {
        Step::Read(v) => (v == state).then_some(state),
        Step::Write(v) => Some(v),
        Step::CasOk { expected, new } => (expected == state).then_some(new),
        Step::CasFail { expected } => (expected != state).then_some(state),
        // Either outcome is consistent with what the client saw.
        Step::CasMaybe { expected, new } => Some(if expected == state { new } else { state }),
    }
}

/// A set of operations (by position in the register's sorted list).
#[derive(Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn get(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
    /// The first position not in the set (or `n`).
    fn first_clear(&self, n: usize) -> usize {
        for (w, word) in self.0.iter().enumerate() {
            if *word != u64::MAX {
                return (w * 64 + word.trailing_ones() as usize).min(n);
            }
        }
        n
    }
}

/// Interns values per register so the memo holds small states. Values that no read saw and no CAS
/// expected all get one id ([`UNSEEN`]): the register model cannot tell them apart, and merging
/// them lets the memo merge the states they lead to.
struct Values {
    ids: HashMap<String, u32>,
    names: Vec<String>,
    observed: HashSet<String>,
}

/// The id of every value that no operation observed.
const UNSEEN: u32 = u32::MAX;

impl Values {
    fn id(&mut self, v: &str) -> u32 {
        if !self.observed.contains(v) {
            return UNSEEN;
        }
        if let Some(&i) = self.ids.get(v) {
            return i;
        }
        self.names.push(v.to_string());
        let i = self.names.len() as u32;
        self.ids.insert(v.to_string(), i);
        i
    }
    fn name(&self, id: u32) -> Option<String> {
        match id {
            0 => None,
            UNSEEN => Some("(a value no operation observed)".into()),
            _ => Some(self.names[id as usize - 1].clone()),
        }
    }
}

/// The Wing–Gong search over one register's operations (`ops`: indices into `history`).
fn check_register(history: &[Operation], ops: &[usize], limit: Limit) -> (Search, u64) {
    let observed = ops
        .iter()
        .filter_map(|&i| match (&history[i].op, &history[i].outcome) {
            (Op::Read, Outcome::Ok(Some(v))) | (Op::Cas { expected: v, .. }, _) => Some(v.clone()),
            _ => None,
        })
        .collect();
    let mut values = Values {
        ids: HashMap::new(),
        names: vec![],
        observed,
    };
    let mut order: Vec<usize> = ops.to_vec();
    order.sort_by_key(|&i| (history[i].invoke, i));
    let calls: Vec<Call> = order
        .iter()
        .map(|&i| {
            let o = &history[i];
            let known = o.outcome != Outcome::Unknown;
            let step = match (&o.op, &o.outcome) {
                (Op::Read, Outcome::Ok(v)) => Step::Read(v.as_deref().map_or(0, |v| values.id(v))),
                (Op::Write(v), _) => Step::Write(values.id(v)),
                (Op::Cas { expected, new }, Outcome::Ok(_)) => Step::CasOk {
                    expected: values.id(expected),
                    new: values.id(new),
                },
                (Op::Cas { expected, .. }, Outcome::Fail) => Step::CasFail {
                    expected: values.id(expected),
                },
                (Op::Cas { expected, new }, Outcome::Unknown) => Step::CasMaybe {
                    expected: values.id(expected),
                    new: values.id(new),
                },
                (Op::Read, _) => unreachable!("reads without a value are dropped by `constrains`"),
            };
            Call {
                invoke: o.invoke,
                complete: if known { o.complete } else { u64::MAX },
                step,
                required: known,
                interchangeable: !known && matches!(step, Step::Write(UNSEEN)),
            }
        })
        .collect();
    let n = calls.len();
    let required = calls.iter().filter(|c| c.required).count();

    let mut done = Bits::new(n);
    let mut seen: HashSet<(Bits, u32)> = HashSet::new();
    // The current linearization: (position, state before it, the candidates left to try after it).
    let mut path: Vec<(usize, u32)> = Vec::new();
    let mut state = 0u32;
    let mut placed_required = 0usize;
    let mut steps = 0u64;
    let mut best: (Vec<usize>, u32, Bits) = (vec![], 0, done.clone());
    // Each frame: the candidates at that depth and how many were tried.
    let mut frames: Vec<(Vec<usize>, usize)> = vec![(candidates(&calls, &done, n), 0)];
    loop {
        if placed_required == required {
            return (Search::Found, steps);
        }
        let Some((cands, tried)) = frames.last_mut() else {
            break;
        };
        if *tried < cands.len() {
            let c = cands[*tried];
            *tried += 1;
            steps += 1;
            if steps > limit.steps_per_key {
                return (Search::GaveUp, steps);
            }
            let Some(next) = apply(state, calls[c].step) else {
                continue;
            };
            done.set(c);
            if !seen.insert((done.clone(), next)) {
                done.clear(c);
                continue;
            }
            path.push((c, state));
            state = next;
            if calls[c].required {
                placed_required += 1;
            }
            if path.len() > best.0.len() {
                best = (path.iter().map(|p| p.0).collect(), state, done.clone());
            }
            frames.push((candidates(&calls, &done, n), 0));
        } else {
            frames.pop();
            let Some((c, before)) = path.pop() else {
                break;
            };
            done.clear(c);
            state = before;
            if calls[c].required {
                placed_required -= 1;
            }
        }
    }
    let (prefix, at, bits) = best;
    let stuck_on = candidates(&calls, &bits, n)
        .into_iter()
        .filter(|&c| calls[c].required)
        .map(|c| order[c])
        .collect();
    (
        Search::Impossible {
            longest_prefix: prefix.into_iter().map(|c| order[c]).collect(),
            stuck_on,
            state: values.name(at),
        },
        steps,
    )
}

/// Operations not yet linearized that may come next: those invoked no later than the earliest
/// completion among the operations not yet linearized (each of which must come after anything
/// that completed before it was invoked). `calls` is sorted by invocation, so the scan stops at the
/// first operation invoked after that bound.
fn candidates(calls: &[Call], done: &Bits, n: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut bound = u64::MAX;
    for (i, c) in calls.iter().enumerate().skip(done.first_clear(n)) {
        if c.invoke > bound {
            break;
        }
        if done.get(i) {
            continue;
        }
        out.push(i);
        bound = bound.min(c.complete);
    }
    // Operations whose outcome is known first: an unknown one is needed only to explain what others
    // saw, and trying it first sends the search down branches it must then undo.
    out.sort_by_key(|&i| !calls[i].required);
    // Interchangeable writes have the same effect, and once one may come next it stays available
    // (it never completes, and the bound above only grows as operations are placed): trying one of
    // them is enough. Without this, k of them cost 2^k memo states.
    let mut first = true;
    out.retain(|&i| !calls[i].interchangeable || std::mem::take(&mut first));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn op(client: usize, op: Op, invoke: u64, complete: u64, outcome: Outcome) -> Operation {
        Operation {
            client,
            key: "k".into(),
            op,
            invoke,
            complete,
            outcome,
        }
    }
    fn w(v: &str) -> Op {
        Op::Write(v.into())
    }
    fn ok(v: &str) -> Outcome {
        Outcome::Ok(Some(v.into()))
    }
    fn done() -> Outcome {
        Outcome::Ok(None)
    }
    fn verdict(h: &[Operation]) -> Verdict {
        check(h, Limit::default()).verdict
    }
    fn violation(h: &[Operation]) -> Violation {
        match verdict(h) {
            Verdict::NotLinearizable(v) => v,
            other => panic!("expected a violation, got {other:?}"),
        }
    }

    #[test]
    fn sequential_and_concurrent_histories_pass() {
        let h = [
            op(0, w("a"), 0, 10, done()),
            op(1, Op::Read, 20, 30, ok("a")),
            op(
                1,
                Op::Cas {
                    expected: "a".into(),
                    new: "b".into(),
                },
                40,
                50,
                done(),
            ),
            op(0, Op::Read, 60, 70, ok("b")),
        ];
        assert_eq!(verdict(&h), Verdict::Linearizable);
        // A read overlapping a write may see either value; two overlapping reads may disagree.
        let h = [
            op(0, w("a"), 0, 10, done()),
            op(1, w("b"), 20, 60, done()),
            op(2, Op::Read, 25, 30, ok("b")),
            op(3, Op::Read, 26, 70, ok("b")),
            op(4, Op::Read, 21, 22, ok("a")),
        ];
        assert_eq!(verdict(&h), Verdict::Linearizable);
        // Reading an empty register before any write.
        let h = [
            op(0, Op::Read, 0, 5, Outcome::Ok(None)),
            op(1, w("a"), 1, 10, done()),
        ];
        assert_eq!(verdict(&h), Verdict::Linearizable);
    }

    #[test]
    fn stale_read_after_a_completed_write_fails() {
        let h = [
            op(0, w("a"), 0, 10, done()),
            op(0, w("b"), 20, 30, done()),
            op(1, Op::Read, 40, 50, ok("a")),
        ];
        let v = violation(&h);
        assert_eq!(v.key, "k");
        assert_eq!(v.longest_prefix, vec![0, 1]);
        assert_eq!(v.stuck_on, vec![2]);
        // Nobody read b, so the report cannot name it.
        assert_eq!(v.state.as_deref(), Some("(a value no operation observed)"));
    }

    #[test]
    fn reads_seeing_two_writes_in_opposite_orders_fail() {
        // Writes a and b overlap, so either order is fine, but not both: reader 2 sees a then b,
        // reader 3 sees b then a, all while both writes are in flight.
        let h = [
            op(0, w("a"), 0, 100, done()),
            op(1, w("b"), 0, 100, done()),
            op(2, Op::Read, 10, 20, ok("a")),
            op(2, Op::Read, 30, 40, ok("b")),
            op(3, Op::Read, 10, 20, ok("b")),
            op(3, Op::Read, 30, 40, ok("a")),
        ];
        violation(&h);
        // Either reader alone is fine.
        assert_eq!(verdict(&h[..4]), Verdict::Linearizable);
    }

    #[test]
    fn a_lost_acknowledged_write_fails() {
        // b is acknowledged, then every later read still sees a: b was lost.
        let h = [
            op(0, w("a"), 0, 10, done()),
            op(1, w("b"), 20, 30, done()),
            op(2, Op::Read, 40, 50, ok("a")),
            op(2, Op::Read, 60, 70, ok("a")),
        ];
        violation(&h);
        // Had b's outcome been unknown (a timeout), it may simply not have happened.
        let mut h = h.to_vec();
        h[1].outcome = Outcome::Unknown;
        assert_eq!(verdict(&h), Verdict::Linearizable);
    }

    #[test]
    fn unknown_operations_may_take_effect_late_or_never() {
        // The unknown write is seen long after the client gave up: it completes at +infinity.
        let h = [
            op(0, w("a"), 0, 10, done()),
            op(1, w("b"), 20, 30, Outcome::Unknown),
            op(2, Op::Read, 40, 50, ok("a")),
            op(2, Op::Read, 1000, 1010, ok("b")),
        ];
        assert_eq!(verdict(&h), Verdict::Linearizable);
        // But it cannot take effect before it was invoked.
        let h = [
            op(0, w("a"), 0, 10, done()),
            op(2, Op::Read, 12, 15, ok("b")),
            op(1, w("b"), 20, 30, Outcome::Unknown),
        ];
        violation(&h);
        // An unknown CAS either happened or not; reads that failed or timed out say nothing.
        let h = [
            op(0, w("a"), 0, 10, done()),
            op(
                1,
                Op::Cas {
                    expected: "a".into(),
                    new: "c".into(),
                },
                20,
                30,
                Outcome::Unknown,
            ),
            op(2, Op::Read, 40, 50, ok("a")),
            op(2, Op::Read, 60, 70, ok("c")),
            op(3, Op::Read, 40, 50, Outcome::Unknown),
            op(3, Op::Read, 40, 50, Outcome::Fail),
        ];
        let r = check(&h, Limit::default());
        assert_eq!(r.verdict, Verdict::Linearizable);
        assert_eq!(r.considered, 4);
    }

    #[test]
    fn failed_cas_means_the_expectation_did_not_hold() {
        let cas = |e: &str, n: &str| Op::Cas {
            expected: e.into(),
            new: n.into(),
        };
        // Fails although nothing else could have changed a: not linearizable.
        let h = [
            op(0, w("a"), 0, 10, done()),
            op(1, cas("a", "b"), 20, 30, Outcome::Fail),
        ];
        violation(&h);
        // Fails because a concurrent write replaced a first: fine.
        let h = [
            op(0, w("a"), 0, 10, done()),
            op(2, w("x"), 15, 40, done()),
            op(1, cas("a", "b"), 20, 30, Outcome::Fail),
        ];
        assert_eq!(verdict(&h), Verdict::Linearizable);
        // Two CASes from the same value cannot both succeed.
        let h = [
            op(0, w("a"), 0, 10, done()),
            op(1, cas("a", "b"), 20, 30, done()),
            op(2, cas("a", "c"), 20, 30, done()),
        ];
        violation(&h);
    }

    #[test]
    fn keys_are_independent() {
        let mut h = vec![
            op(0, w("a"), 0, 10, done()),
            op(1, Op::Read, 20, 30, ok("a")),
        ];
        let mut other = op(0, w("z"), 0, 10, done());
        other.key = "j".into();
        h.push(other);
        let mut read = op(1, Op::Read, 20, 30, Outcome::Ok(None));
        read.key = "j".into();
        h.push(read);
        let r = check(&h, Limit::default());
        assert_eq!(r.keys, 2);
        assert_eq!(violation(&h).key, "j");
    }

    #[test]
    fn unknown_writes_nobody_saw_stay_cheap_and_still_explain_a_failed_cas() {
        let cas = |e: &str, n: &str| Op::Cas {
            expected: e.into(),
            new: n.into(),
        };
        // The CAS can only have failed because one of the unknown writes landed first.
        let mut h = vec![op(0, w("a"), 0, 10, done())];
        h.extend((0..40).map(|i| op(i + 1, w(&format!("u{i}")), 20, 30, Outcome::Unknown)));
        h.push(op(99, cas("a", "b"), 40, 50, Outcome::Fail));
        h.push(op(99, Op::Read, 60, 70, ok("a")));
        // ... and then a later read sees a again: a is gone for good, so that read is impossible.
        let r = check(
            &h,
            Limit {
                steps_per_key: 10_000,
            },
        );
        assert!(matches!(r.verdict, Verdict::NotLinearizable(_)), "{r:?}");
        assert!(r.steps < 1_000, "{} steps", r.steps);
        h.pop();
        let r = check(
            &h,
            Limit {
                steps_per_key: 10_000,
            },
        );
        assert_eq!(r.verdict, Verdict::Linearizable);
        // Without any unknown write the CAS could not have failed.
        let h = [h[0].clone(), h[41].clone()];
        violation(&h);
    }

    #[test]
    fn the_search_gives_up_distinctly_at_its_limit() {
        // Many concurrent writes and a read of a value nobody wrote: a violation, but proving it
        // takes more than three steps.
        let mut h: Vec<Operation> = (0..12)
            .map(|i| op(i, w(&format!("v{i}")), 0, 100, done()))
            .collect();
        h.push(op(99, Op::Read, 200, 210, ok("nobody")));
        let r = check(&h, Limit { steps_per_key: 3 });
        assert_eq!(
            r.verdict,
            Verdict::Unknown {
                key: "k".into(),
                steps: 4
            }
        );
        // With the memo the full search is quick: 2^12 subsets at most.
        violation(&h);
    }

    /// Ops an atomic register executed at `at` within [invoke, complete], with outcomes it computed.
    #[derive(Debug, Clone)]
    struct Planned {
        client: usize,
        key: usize,
        kind: u8,
        value: u8,
        invoke: u64,
        at: u64,
        complete: u64,
        /// 0: known; 1: unknown but applied; 2: unknown and never applied.
        fate: u8,
    }

    fn planned() -> impl Strategy<Value = Planned> {
        (
            0usize..5,
            0usize..3,
            0u8..3,
            0u8..4,
            0u64..1_000,
            0u64..50,
            0u64..50,
            prop_oneof![8 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)],
        )
            .prop_map(
                |(client, key, kind, value, invoke, to_at, to_end, fate)| Planned {
                    client,
                    key,
                    kind,
                    value,
                    invoke,
                    at: invoke + to_at,
                    complete: invoke + to_at + to_end,
                    fate,
                },
            )
    }

    /// Runs the planned ops on an atomic in-memory register in the order of their linearization
    /// points and records what each client would have seen.
    fn execute(mut plan: Vec<Planned>) -> Vec<Operation> {
        plan.sort_by_key(|p| p.at);
        let mut regs: HashMap<usize, String> = HashMap::new();
        let mut out = Vec::new();
        for (n, p) in plan.into_iter().enumerate() {
            // Unique values, as the lab workload writes: value `p.value` picks which current value
            // a CAS expects (the real one or a stale guess).
            let new = format!("c{}-{n}", p.client);
            let cur = regs.get(&p.key).cloned();
            let applies = p.fate != 2;
            let (op, outcome) = match p.kind {
                0 => (Op::Read, Outcome::Ok(cur.clone())),
                1 => {
                    if applies {
                        regs.insert(p.key, new.clone());
                    }
                    (Op::Write(new), Outcome::Ok(None))
                }
                _ => {
                    let expected = match (p.value, &cur) {
                        (0 | 1, Some(c)) => c.clone(),
                        _ => format!("stale{}", p.value),
                    };
                    let holds = cur.as_deref() == Some(expected.as_str());
                    if holds && applies {
                        regs.insert(p.key, new.clone());
                    }
                    let outcome = if holds {
                        Outcome::Ok(None)
                    } else {
                        Outcome::Fail
                    };
                    (Op::Cas { expected, new }, outcome)
                }
            };
            out.push(Operation {
                client: p.client,
                key: format!("k{}", p.key),
                op,
                invoke: p.invoke,
                complete: p.complete,
                outcome: if p.fate == 0 {
                    outcome
                } else {
                    Outcome::Unknown
                },
            });
        }
        out
    }

    proptest! {
        #[test]
        fn histories_of_an_atomic_register_are_linearizable(plan in prop::collection::vec(planned(), 0..120)) {
            let h = execute(plan);
            let r = check(&h, Limit::default());
            prop_assert_eq!(r.verdict, Verdict::Linearizable, "{:#?}", h);
        }

        #[test]
        fn a_read_of_a_value_never_written_is_caught(plan in prop::collection::vec(planned(), 1..80), pick in any::<prop::sample::Index>()) {
            let mut h = execute(plan);
            let i = pick.index(h.len());
            h[i].op = Op::Read;
            h[i].outcome = Outcome::Ok(Some("never-written".into()));
            let r = check(&h, Limit::default());
            prop_assert!(matches!(r.verdict, Verdict::NotLinearizable(_)), "{:?}", r.verdict);
        }
    }
}
