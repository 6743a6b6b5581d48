//! Container and node resource usage: a sampler reads every running container's cgroup (v1 or v2) and
//! the node's `/proc` every `--metrics-interval`, and keeps the latest [`Summary`] that
//! `GET /stats/summary` serves (`metrics.k8s.io` and the HorizontalPodAutoscaler read it).
//!
//! - `cgroup`: the file parsers (pure) and the reader of one host's layout.
//! - `summary`: two samples to rates and pod sums (pure, given the readings and the clock).
//! - this file: the sampler task and the shared latest summary.

pub mod cgroup;
mod summary;

pub use cgroup::{Host, Layout, Memory, Reading};
pub use summary::{Now, Observed, Tracker};

use crate::pod::Lookup;
use apimachinery::stats::{PodReference, Summary};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};
use tokio_util::sync::CancellationToken;

/// Default of `--metrics-interval`.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(2);
/// Longest `--metrics-interval`: #15 wants a sample no older than 5 s (the HPA's sync and
/// `kubectl top` read whatever the last one was).
pub const MAX_INTERVAL: Duration = Duration::from_secs(5);
/// Shortest `--metrics-interval`: below it the windows get too short for a stable rate.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// Parses `--metrics-interval`: `2s`, `1.5s`, `500ms` (a bare number is seconds), within
/// [`MIN_INTERVAL`]..=[`MAX_INTERVAL`].
///
/// # Errors
/// Not a duration, or out of range.
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else {
        (s.strip_suffix('s').unwrap_or(s), 1.0)
    };
    let d = num
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .and_then(|v| Duration::try_from_secs_f64(v * scale).ok())
        .ok_or_else(|| format!("invalid duration {s:?} (expected e.g. 2s or 500ms)"))?;
    if d < MIN_INTERVAL || d > MAX_INTERVAL {
        return Err(format!(
            "metrics interval {s} out of range: must be between {}ms and {}s",
            MIN_INTERVAL.as_millis(),
            MAX_INTERVAL.as_secs()
        ));
    }
    Ok(d)
}

/// The latest summary, shared by the sampler (writer) and `/stats/summary` (readers). Readers take an
/// `Arc` under the lock and serialise outside it, so a request never holds up the sampler.
#[derive(Debug)]
pub struct LatestSummary(Mutex<Arc<Summary>>);

impl LatestSummary {
    /// An empty summary of `node_name` (no sample yet).
    pub fn new(node_name: &str) -> LatestSummary {
        let mut s = Summary::default();
        s.node.node_name = node_name.to_string();
        LatestSummary(Mutex::new(Arc::new(s)))
    }

    /// The latest summary.
    pub fn get(&self) -> Arc<Summary> {
        // The critical sections only swap an Arc, so a poisoned lock still guards a whole value.
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the summary.
    pub fn set(&self, s: Summary) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(s);
    }
}

/// A running container to read: its pod, its name, its runtime ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Its pod.
    pub pod: PodReference,
    /// Container name.
    pub name: String,
    /// Runtime ID (names the cgroup with the pod uid).
    pub id: String,
}

/// The containers of `lookup` that have a running instance.
pub fn targets(lookup: &Lookup) -> Vec<Target> {
    lookup
        .iter()
        .flat_map(|((ns, name), cs)| {
            cs.iter().filter_map(move |c| {
                Some(Target {
                    pod: PodReference {
                        name: name.clone(),
                        namespace: ns.clone(),
                        uid: c.pod_uid.clone(),
                    },
                    name: c.name.clone(),
                    id: c.current.clone()?,
                })
            })
        })
        .collect()
}

/// Samples this node's containers into a [`LatestSummary`].
pub struct Sampler {
    /// Where to read.
    pub host: Host,
    /// Named in the summary.
    pub node_name: String,
    /// The pod manager's table of containers.
    pub lookup: Arc<Mutex<Lookup>>,
    /// Where each pass publishes.
    pub latest: Arc<LatestSummary>,
}

impl Sampler {
    /// One pass at `now`: reads the node and every running container, and publishes the summary that
    /// makes with `tracker`'s previous samples. Holds the lookup lock only to copy the container list.
    pub fn sample(&self, tracker: &mut Tracker, now: Now) {
        let targets = targets(&self.lookup.lock().unwrap_or_else(PoisonError::into_inner));
        let observed = targets
            .into_iter()
            .map(|t| Observed {
                reading: self
                    .host
                    .layout
                    .read(&crate::runtime::bundle::cgroup_path_of(&t.pod.uid, &t.id)),
                pod: t.pod,
                name: t.name,
                id: t.id,
            })
            .collect();
        let s = tracker.observe(&self.node_name, now, self.host.read_node(), observed);
        self.latest.set(s);
    }

    /// Samples every `interval` until `shutdown`. The reads run on a blocking thread; a pass that
    /// panics (it should not: no input panics the parsers) costs the baselines, not the sampler.
    pub async fn run(self, interval: Duration, shutdown: CancellationToken) {
        let me = Arc::new(self);
        let origin = Instant::now();
        let mut tracker = Tracker::new();
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let m = me.clone();
            let pass = tokio::task::spawn_blocking(move || {
                let now = Now {
                    wall: SystemTime::now(),
                    mono: origin.elapsed(),
                };
                m.sample(&mut tracker, now);
                tracker
            });
            tracker = match pass.await {
                Ok(t) => t,
                Err(e) => {
                    tracing::error!(error = %e, "metrics sampling pass failed");
                    Tracker::new()
                }
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pod::ContainerLookup;

    #[test]
    fn interval_parses_within_range() {
        assert_eq!(parse_interval("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_interval("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_interval("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_interval("5s"), Ok(MAX_INTERVAL));
        for bad in ["6s", "0", "10ms", "", "x", "-1s", "NaN", "inf", "1e308s"] {
            assert!(parse_interval(bad).is_err(), "{bad:?}");
        }
    }

    fn c(name: &str, uid: &str, current: Option<&str>) -> ContainerLookup {
        ContainerLookup {
            name: name.into(),
            pod_uid: uid.into(),
            current: current.map(String::from),
            log: None,
            previous_log: None,
        }
    }

    #[test]
    fn targets_are_the_running_containers() {
        let mut l = Lookup::new();
        l.insert(
            ("ns".into(), "p".into()),
            vec![c("init", "u1", None), c("app", "u1", Some("id1"))],
        );
        assert_eq!(
            targets(&l),
            vec![Target {
                pod: PodReference {
                    name: "p".into(),
                    namespace: "ns".into(),
                    uid: "u1".into()
                },
                name: "app".into(),
                id: "id1".into()
            }]
        );
    }

    #[test]
    fn a_pass_publishes_from_fixture_files_and_survives_a_poisoned_lookup() {
        let d = tempfile::tempdir().unwrap();
        let cg = d.path().join("cg");
        let dir = cg.join("cpuacct/berth/podu1/id1");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(cg.join("memory/berth/podu1/id1")).unwrap();
        std::fs::write(
            cg.join("memory/berth/podu1/id1/memory.usage_in_bytes"),
            "4096",
        )
        .unwrap();
        let lookup = Arc::new(Mutex::new(Lookup::new()));
        lookup
            .lock()
            .unwrap()
            .insert(("ns".into(), "p".into()), vec![c("app", "u1", Some("id1"))]);
        let l2 = lookup.clone();
        let _ = std::thread::spawn(move || {
            let _g = l2.lock().unwrap();
            panic!("poison the lookup");
        })
        .join();
        assert!(lookup.is_poisoned());
        let s = Sampler {
            host: Host::at(&cg, d.path()),
            node_name: "n1".into(),
            lookup,
            latest: Arc::new(LatestSummary::new("n1")),
        };
        let mut t = Tracker::new();
        let at = |ms: u64| Now {
            wall: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            mono: Duration::from_millis(ms),
        };
        std::fs::write(dir.join("cpuacct.usage"), "0").unwrap();
        s.sample(&mut t, at(0));
        assert!(s.latest.get().pods.is_empty());
        std::fs::write(dir.join("cpuacct.usage"), "250000000").unwrap();
        s.sample(&mut t, at(500));
        let got = s.latest.get();
        let cs = &got.pods[0].containers[0];
        assert_eq!(cs.cpu.as_ref().unwrap().usage_nano_cores, 500_000_000);
        assert_eq!(cs.memory.as_ref().unwrap().working_set_bytes, 4096);
        assert_eq!(got.node.node_name, "n1");
    }
}
