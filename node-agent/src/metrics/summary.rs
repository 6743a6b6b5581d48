//! From readings to a [`Summary`]: keeps each container's previous sample and turns two samples into
//! rates. Pure: the caller passes the readings and the clock.

use super::cgroup::{Memory, Reading};
use apimachinery::stats::{
    ContainerStats, CpuStats, MemoryStats, NodeStats, PodReference, PodStats, Summary,
};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// When a sample was taken: the wall clock for the timestamps, a monotonic clock for the windows (a
/// wall clock step must not make a rate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Wall clock, printed as `time`.
    pub wall: SystemTime,
    /// Monotonic time since any fixed origin.
    pub mono: Duration,
}

/// One running container as the sampler found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// Its pod.
    pub pod: PodReference,
    /// Container name in the pod spec.
    pub name: String,
    /// Runtime ID of the instance: a restart is a new ID, so a new baseline.
    pub id: String,
    /// What its cgroup said.
    pub reading: Reading,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    mono: Duration,
    cpu_ns: Option<u64>,
}

/// The previous sample of every container (and of the node), by (pod uid, container name).
#[derive(Debug, Default)]
pub struct Tracker {
    containers: BTreeMap<(String, String), (String, Sample)>,
    node: Option<Sample>,
}

/// CPU over the window from `prev` to `cur`: `None` without both counters, with no time passed, or when
/// the counter went backwards (a cgroup made anew under the same name).
fn cpu(prev: Sample, cur: Sample, now: Now) -> Option<CpuStats> {
    let (p, c) = (prev.cpu_ns?, cur.cpu_ns?);
    let used = c.checked_sub(p)?;
    let window = cur.mono.checked_sub(prev.mono)?.as_nanos();
    if window == 0 {
        return None;
    }
    let rate = u128::from(used) * 1_000_000_000 / window;
    Some(CpuStats {
        time: apimachinery::time::rfc3339(now.wall),
        window_nano_seconds: u64::try_from(window).unwrap_or(u64::MAX),
        usage_nano_cores: u64::try_from(rate).unwrap_or(u64::MAX),
        usage_core_nano_seconds: c,
    })
}

fn memory(m: Option<Memory>, now: Now) -> Option<MemoryStats> {
    m.map(|m| MemoryStats {
        time: apimachinery::time::rfc3339(now.wall),
        working_set_bytes: m.working_set_bytes,
        usage_bytes: m.usage_bytes,
    })
}

/// Sum of containers' CPU: rates and cumulative times add up; the window is the longest of them (they
/// differ only for a container first seen later than its siblings).
fn sum_cpu(cs: &[ContainerStats]) -> Option<CpuStats> {
    cs.iter()
        .filter_map(|c| c.cpu.as_ref())
        .fold(None, |acc, c| {
            let mut a: CpuStats = acc.unwrap_or_else(|| CpuStats {
                time: c.time.clone(),
                ..CpuStats::default()
            });
            a.window_nano_seconds = a.window_nano_seconds.max(c.window_nano_seconds);
            a.usage_nano_cores = a.usage_nano_cores.saturating_add(c.usage_nano_cores);
            a.usage_core_nano_seconds = a
                .usage_core_nano_seconds
                .saturating_add(c.usage_core_nano_seconds);
            Some(a)
        })
}

fn sum_memory(cs: &[ContainerStats]) -> Option<MemoryStats> {
    cs.iter()
        .filter_map(|c| c.memory.as_ref())
        .fold(None, |acc, m| {
            let mut a: MemoryStats = acc.unwrap_or_else(|| MemoryStats {
                time: m.time.clone(),
                ..MemoryStats::default()
            });
            a.working_set_bytes = a.working_set_bytes.saturating_add(m.working_set_bytes);
            a.usage_bytes = a.usage_bytes.saturating_add(m.usage_bytes);
            Some(a)
        })
}

impl Tracker {
    /// A tracker with no samples.
    pub fn new() -> Tracker {
        Tracker::default()
    }

    /// Records this round's readings and answers the summary they make with the previous round's.
    /// A container is in it only from its second sample of the same instance (so every CPU rate spans
    /// a real window); a container missing from `containers` is forgotten. Pods are ordered by
    /// namespace and name, containers as given.
    pub fn observe(
        &mut self,
        node_name: &str,
        now: Now,
        node: Reading,
        containers: Vec<Observed>,
    ) -> Summary {
        let node_cur = Sample {
            mono: now.mono,
            cpu_ns: node.cpu_ns,
        };
        let node_stats = NodeStats {
            node_name: node_name.to_string(),
            cpu: self.node.and_then(|p| cpu(p, node_cur, now)),
            memory: memory(node.memory, now),
        };
        self.node = Some(node_cur);

        let mut next = BTreeMap::new();
        let mut pods: BTreeMap<(String, String, String), PodStats> = BTreeMap::new();
        for o in containers {
            let cur = Sample {
                mono: now.mono,
                cpu_ns: o.reading.cpu_ns,
            };
            let key = (o.pod.uid.clone(), o.name.clone());
            let prev = self
                .containers
                .remove(&key)
                .filter(|(id, _)| *id == o.id)
                .map(|(_, s)| s);
            next.insert(key, (o.id, cur));
            let Some(prev) = prev else { continue };
            if prev.mono >= now.mono {
                continue;
            }
            let backwards = matches!((prev.cpu_ns, cur.cpu_ns), (Some(p), Some(c)) if c < p);
            let stats = ContainerStats {
                name: o.name,
                cpu: cpu(prev, cur, now),
                memory: memory(o.reading.memory, now),
            };
            if backwards || (stats.cpu.is_none() && stats.memory.is_none()) {
                continue;
            }
            let pk = (
                o.pod.namespace.clone(),
                o.pod.name.clone(),
                o.pod.uid.clone(),
            );
            pods.entry(pk)
                .or_insert_with(|| PodStats {
                    pod_ref: o.pod,
                    ..PodStats::default()
                })
                .containers
                .push(stats);
        }
        self.containers = next;
        let pods = pods
            .into_values()
            .map(|mut p| {
                p.cpu = sum_cpu(&p.containers);
                p.memory = sum_memory(&p.containers);
                p
            })
            .collect();
        Summary {
            node: node_stats,
            pods,
        }
    }

    /// Containers with a baseline (for tests and the bench).
    pub fn tracked(&self) -> usize {
        self.containers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> Now {
        Now {
            wall: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs),
            mono: Duration::from_secs(secs),
        }
    }

    fn pod(name: &str) -> PodReference {
        PodReference {
            name: name.into(),
            namespace: "default".into(),
            uid: format!("uid-{name}"),
        }
    }

    fn obs(p: &str, c: &str, id: &str, cpu_ns: u64, ws: u64) -> Observed {
        Observed {
            pod: pod(p),
            name: c.into(),
            id: id.into(),
            reading: Reading {
                cpu_ns: Some(cpu_ns),
                memory: Some(Memory {
                    usage_bytes: ws.saturating_add(100),
                    working_set_bytes: ws,
                }),
            },
        }
    }

    fn node(cpu_ns: u64) -> Reading {
        Reading {
            cpu_ns: Some(cpu_ns),
            memory: Some(Memory {
                usage_bytes: 10,
                working_set_bytes: 5,
            }),
        }
    }

    #[test]
    fn two_samples_make_a_rate_and_one_sample_is_absent() {
        let mut t = Tracker::new();
        let s = t.observe("n1", at(0), node(0), vec![obs("a", "c", "id1", 1_000, 10)]);
        assert!(s.pods.is_empty(), "one sample: no container yet");
        assert_eq!(s.node.cpu, None);
        assert_eq!(s.node.memory.as_ref().unwrap().working_set_bytes, 5);
        // 1 s of CPU over 2 s: half a core.
        let s = t.observe(
            "n1",
            at(2),
            node(4_000_000_000),
            vec![
                obs("a", "c", "id1", 1_000_001_000, 20),
                obs("b", "c", "id2", 5, 1),
            ],
        );
        assert_eq!(s.pods.len(), 1, "{s:?}");
        let c = &s.pods[0].containers[0];
        let cpu = c.cpu.as_ref().unwrap();
        assert_eq!(cpu.usage_nano_cores, 500_000_000);
        assert_eq!(cpu.window_nano_seconds, 2_000_000_000);
        assert_eq!(cpu.usage_core_nano_seconds, 1_000_001_000);
        assert_eq!(cpu.time, apimachinery::time::rfc3339(at(2).wall));
        assert_eq!(c.memory.as_ref().unwrap().working_set_bytes, 20);
        assert_eq!(c.memory.as_ref().unwrap().usage_bytes, 120);
        assert_eq!(s.node.cpu.as_ref().unwrap().usage_nano_cores, 2_000_000_000);
        assert_eq!(s.node.node_name, "n1");
    }

    #[test]
    fn a_counter_going_backwards_gives_no_rate_and_a_new_baseline() {
        let mut t = Tracker::new();
        t.observe(
            "n",
            at(0),
            node(0),
            vec![obs("a", "c", "id1", 9_000_000, 1)],
        );
        let s = t.observe("n", at(1), node(0), vec![obs("a", "c", "id1", 10, 1)]);
        assert!(s.pods.is_empty(), "{s:?}");
        let s = t.observe(
            "n",
            at(2),
            node(0),
            vec![obs("a", "c", "id1", 100_000_010, 1)],
        );
        assert_eq!(
            s.pods[0].containers[0]
                .cpu
                .as_ref()
                .unwrap()
                .usage_nano_cores,
            100_000_000
        );
    }

    #[test]
    fn a_restarted_container_starts_over() {
        let mut t = Tracker::new();
        t.observe("n", at(0), node(0), vec![obs("a", "c", "id1", 0, 1)]);
        let s = t.observe("n", at(1), node(0), vec![obs("a", "c", "id2", 5_000, 1)]);
        assert!(s.pods.is_empty(), "new instance, one sample: {s:?}");
        let s = t.observe("n", at(2), node(0), vec![obs("a", "c", "id2", 6_000, 1)]);
        assert_eq!(s.pods[0].containers.len(), 1);
    }

    #[test]
    fn gone_containers_are_forgotten() {
        let mut t = Tracker::new();
        t.observe("n", at(0), node(0), vec![obs("a", "c", "id1", 0, 1)]);
        assert_eq!(t.tracked(), 1);
        let s = t.observe("n", at(1), node(0), vec![]);
        assert!(s.pods.is_empty());
        assert_eq!(t.tracked(), 0);
        // Back with the same ID after a gap: a fresh baseline, not a rate over the gap.
        let s = t.observe("n", at(2), node(0), vec![obs("a", "c", "id1", 9, 1)]);
        assert!(s.pods.is_empty());
    }

    #[test]
    fn pods_sum_their_containers() {
        let mut t = Tracker::new();
        let round = |cpu: u64| {
            vec![
                obs("a", "c1", "x1", cpu, 100),
                obs("a", "c2", "x2", 2 * cpu, 50),
                obs("b", "c1", "y1", cpu, 7),
            ]
        };
        t.observe("n", at(0), node(0), round(0));
        let s = t.observe("n", at(1), node(0), round(100_000_000));
        let names: Vec<&str> = s.pods.iter().map(|p| p.pod_ref.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        let a = &s.pods[0];
        assert_eq!(a.containers.len(), 2);
        let cpu = a.cpu.as_ref().unwrap();
        assert_eq!(cpu.usage_nano_cores, 300_000_000);
        assert_eq!(cpu.usage_core_nano_seconds, 300_000_000);
        assert_eq!(cpu.window_nano_seconds, 1_000_000_000);
        let mem = a.memory.as_ref().unwrap();
        assert_eq!(mem.working_set_bytes, 150);
        assert_eq!(mem.usage_bytes, 350);
        assert_eq!(s.pods[1].memory.as_ref().unwrap().working_set_bytes, 7);
    }

    #[test]
    fn unreadable_counters_and_a_stopped_clock_give_no_rate() {
        let mut t = Tracker::new();
        let mut o = obs("a", "c", "id1", 0, 1);
        t.observe("n", at(0), node(0), vec![o.clone()]);
        // No time passed (two passes in the same instant): nothing to divide by.
        let s = t.observe("n", at(0), node(0), vec![o.clone()]);
        assert!(s.pods.is_empty());
        assert_eq!(s.node.cpu, None);
        // CPU unreadable this round: memory only.
        o.reading.cpu_ns = None;
        let s = t.observe("n", at(1), node(0), vec![o.clone()]);
        assert_eq!(s.pods[0].containers[0].cpu, None);
        assert!(s.pods[0].containers[0].memory.is_some());
        // Nothing readable: absent.
        o.reading = Reading::default();
        let s = t.observe("n", at(2), node(0), vec![o]);
        assert!(s.pods.is_empty());
    }

    #[test]
    fn extreme_counters_do_not_overflow() {
        let mut t = Tracker::new();
        t.observe("n", at(0), node(0), vec![obs("a", "c", "id1", 0, u64::MAX)]);
        let mut o = obs("a", "c", "id1", u64::MAX, u64::MAX);
        o.name = "c".into();
        let s = t.observe(
            "n",
            at(1),
            node(u64::MAX),
            vec![o.clone(), {
                let mut o2 = o.clone();
                o2.name = "d".into();
                o2
            }],
        );
        // "d" has one sample only; "c" has an enormous but finite rate.
        let c = &s.pods[0].containers[0].cpu.as_ref().unwrap();
        assert_eq!(c.usage_nano_cores, u64::MAX);
        assert_eq!(s.node.cpu.as_ref().unwrap().usage_nano_cores, u64::MAX);
    }
}
