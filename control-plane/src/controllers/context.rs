//! What the controllers of one leadership term share: the store, the informer caches, the settings,
//! the clock and the seeded RNG, and [`Ctx::apply`], which commits a reconcile's actions.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::Value;

use super::action::{Action, Actions};
use super::events::{self, EventRecord, Recorder};
use super::isolation::{self, Backoff, Failures};
use super::object;
use crate::api::pod_security;
use crate::informer::Caches;
use crate::store::{self, Batch, ObjectStore, Op, Precondition};

/// Source of wall-clock time for the controllers. Pure code takes `now` as a parameter instead.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// Wall-clock time that advances with tokio's clock, so `tokio::time::pause()` freezes and advances it
/// in tests. Production uses it too: it is the system time at creation plus tokio's monotonic elapsed time.
#[derive(Debug, Clone)]
pub struct TokioClock {
    base: SystemTime,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// A clock starting at the current system time.
    #[allow(clippy::disallowed_methods)]
    pub fn new() -> TokioClock {
        TokioClock::starting_at(SystemTime::now())
    }

    /// A clock starting at `base`.
    pub fn starting_at(base: SystemTime) -> TokioClock {
        TokioClock {
            base,
            start: tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        TokioClock::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> SystemTime {
        self.base + self.start.elapsed()
    }
}

/// Settings of the controllers and the scheduler runner.
#[derive(Clone)]
pub struct ControllerConfig {
    /// A node whose Ready heartbeat is older than this becomes `Ready=Unknown` (default 10 s).
    pub node_monitor_grace_period: Duration,
    /// Pods on an unreachable node are deleted this long after it was tainted (default 5 s).
    pub pod_eviction_timeout: Duration,
    /// Most pods bound in one Raft proposal (default 500).
    pub scheduler_batch_size: usize,
    /// Pods with this `spec.schedulerName` (or none) are ours (default `default-scheduler`).
    pub scheduler_name: String,
    /// Write a `Scheduled` event per bound pod (default true; benchmarks may turn it off).
    pub scheduled_events: bool,
    /// How often leadership is polled (default 200 ms).
    pub leader_poll_interval: Duration,
    /// Every controller re-reconciles everything at least this often (default 30 s).
    pub resync_interval: Duration,
    /// Events whose `lastTimestamp` is older than this are deleted (default 1 h, as Kubernetes' `--event-ttl`).
    pub event_ttl: Duration,
    /// Time source.
    pub clock: Arc<dyn Clock>,
    /// Seed for generated names and uids; `None` draws one from the OS.
    pub seed: Option<u64>,
    /// How often each HorizontalPodAutoscaler reads usage and decides (default 3 s; kube's
    /// `--horizontal-pod-autoscaler-sync-period`, 15 s there).
    pub hpa_sync_period: Duration,
    /// Where the HPA controller reads pod usage; `None` leaves every HPA `ScalingActive=False`
    /// (`FailedGetResourceMetric`, "no metrics source").
    pub metrics: Option<Arc<dyn crate::metrics::MetricsSource>>,
}

impl std::fmt::Debug for ControllerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerConfig")
            .field("node_monitor_grace_period", &self.node_monitor_grace_period)
            .field("pod_eviction_timeout", &self.pod_eviction_timeout)
            .field("scheduler_batch_size", &self.scheduler_batch_size)
            .field("scheduler_name", &self.scheduler_name)
            .field("scheduled_events", &self.scheduled_events)
            .field("leader_poll_interval", &self.leader_poll_interval)
            .field("resync_interval", &self.resync_interval)
            .field("event_ttl", &self.event_ttl)
            .field("seed", &self.seed)
            .field("hpa_sync_period", &self.hpa_sync_period)
            .field("metrics", &self.metrics.is_some())
            .finish()
    }
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            node_monitor_grace_period: Duration::from_secs(10),
            pod_eviction_timeout: Duration::from_secs(5),
            scheduler_batch_size: 500,
            scheduler_name: "default-scheduler".into(),
            scheduled_events: true,
            leader_poll_interval: Duration::from_millis(200),
            resync_interval: Duration::from_secs(30),
            event_ttl: Duration::from_secs(3600),
            clock: Arc::new(TokioClock::new()),
            seed: None,
            hpa_sync_period: Duration::from_secs(3),
            metrics: None,
        }
    }
}

/// What every runner shares during one leadership term.
pub struct Ctx {
    /// The store.
    pub store: Arc<dyn ObjectStore>,
    /// Shared informers.
    pub caches: Caches,
    /// Settings.
    pub config: ControllerConfig,
    rng: Mutex<StdRng>,
    /// Keys whose reconcile failed, shared by every controller of the term (ids carry the kind).
    pub(super) failures: Mutex<Failures>,
    /// When this term started: heartbeats are judged from here at the earliest.
    pub started: SystemTime,
}

impl Ctx {
    /// A context over `store` with fresh informers (not started).
    pub fn new(store: Arc<dyn ObjectStore>, config: ControllerConfig) -> Arc<Ctx> {
        let rng = match config.seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_entropy(),
        };
        let started = config.clock.now();
        Arc::new(Ctx {
            store,
            caches: Caches::new(),
            config,
            rng: Mutex::new(rng),
            failures: Mutex::new(Failures::new(Backoff::default())),
            started,
        })
    }

    /// The current time.
    pub fn now(&self) -> SystemTime {
        self.config.clock.now()
    }

    /// Runs `f` with the shared RNG.
    pub fn with_rng<T>(&self, f: impl FnOnce(&mut StdRng) -> T) -> T {
        f(&mut isolation::lock(&self.rng))
    }

    /// Reconciles one object in isolation: a panic inside `f` is caught and logged as
    /// `reconcile of <kind> <ns>/<name> failed`, and the key is retried with exponential back-off
    /// (it is skipped, with a requeue, until its delay has passed), so the other objects go on.
    pub fn reconcile_isolated(
        &self,
        kind: &'static str,
        key: &str,
        f: impl FnOnce(&mut StdRng) -> Actions,
    ) -> Actions {
        let id = failure_id(kind, key);
        let now = self.now();
        if let Some(wait) = isolation::lock(&self.failures).waiting(&id, now) {
            return Actions {
                requeue_after: Some(wait),
                ..Actions::default()
            };
        }
        let result = {
            // The panic is caught while the guard is still held, so the lock is never poisoned.
            let mut rng = isolation::lock(&self.rng);
            isolation::catch(|| f(&mut rng))
        };
        match result {
            Ok(mut actions) => {
                isolation::lock(&self.failures).succeeded(&id);
                actions.origin = Some((kind, key.to_string()));
                actions
            }
            Err(panic) => {
                let delay = self.reconcile_failed(kind, key, &panic);
                Actions {
                    requeue_after: Some(delay),
                    ..Actions::default()
                }
            }
        }
    }

    /// Records a failed reconcile of `kind` `key` (a panic or a failed write), logs it with the
    /// object's key and returns the delay before its retry.
    pub fn reconcile_failed(&self, kind: &str, key: &str, error: &str) -> Duration {
        let delay = isolation::lock(&self.failures).failed(&failure_id(kind, key), self.now());
        tracing::warn!(
            kind,
            key,
            retry_in = ?delay,
            "reconcile of {kind} {} failed: {error}",
            isolation::object_ref(key)
        );
        delay
    }

    /// Commits `actions` as one batch (events included) and writes the result through to the caches.
    ///
    /// # Errors
    /// The store's error; `PreconditionFailed` means the reconcile read a stale object and will rerun.
    pub async fn apply(&self, recorder: &Recorder, actions: Vec<Action>) -> store::Result<()> {
        let now = self.now();
        let mut ops = Vec::new();
        let mut events = Vec::new();
        let mut refused = Vec::new();
        for a in actions {
            match a {
                Action::None => {}
                Action::Create { key, object } => {
                    if let Some(e) = self.pod_security_refusal(&key, &object) {
                        refused.push(format!("Created pod: {}", object::name(&object)));
                        events.push(e);
                        continue;
                    }
                    ops.push(Op::Put {
                        key,
                        value: object,
                        precondition: Precondition::Absent,
                    })
                }
                Action::Update {
                    key,
                    object,
                    revision,
                } => ops.push(Op::Put {
                    key,
                    value: object,
                    precondition: Precondition::Revision(revision),
                }),
                Action::Delete { key, revision } => ops.push(Op::Delete {
                    key,
                    precondition: revision.map_or(Precondition::None, Precondition::Revision),
                }),
                Action::Event(e) => events.push(e),
            }
        }
        events.retain(|e| !(e.reason == "SuccessfulCreate" && refused.contains(&e.message)));
        if ops.is_empty() && events.is_empty() {
            return Ok(());
        }
        self.with_rng(|rng| {
            for e in &events {
                ops.push(recorder.op(e, now, rng));
            }
        });
        let batch = Batch { ops };
        let committed = self.store.commit(batch.clone()).await?;
        self.caches.write_through(&batch, &committed);
        Ok(())
    }
}

pub(super) fn failure_id(kind: &str, key: &str) -> String {
    format!("{kind} {key}")
}

impl Ctx {
    /// A pod a controller is about to create that its namespace's Pod Security level forbids: the API server
    /// refuses such templates, but a namespace made stricter afterwards must still stop new pods. Returns
    /// the owner's `FailedCreate` warning, as Kubernetes' controllers report the API server's refusal; the
    /// owner's next pass (on a change or the resync interval, never a hot loop) tries again.
    fn pod_security_refusal(&self, key: &str, pod: &Value) -> Option<EventRecord> {
        if !key.starts_with(&store::prefix("core", "pods", None)) {
            return None;
        }
        let ns = object::namespace(pod);
        let ns_obj = self
            .caches
            .namespaces
            .get(&store::key("core", "namespaces", "", ns));
        let level = pod_security::enforced_level(ns, ns_obj.as_ref().map(|c| &*c.value));
        let violations = pod_security::violations(level, &pod["spec"]);
        if violations.is_empty() {
            return None;
        }
        let owner = pod
            .pointer("/metadata/ownerReferences/0")
            .cloned()
            .unwrap_or(Value::Null);
        let involved = serde_json::json!({
            "apiVersion": owner["apiVersion"], "kind": owner["kind"],
            "metadata": {"name": owner["name"], "namespace": ns, "uid": owner["uid"]},
        });
        // As kube-apiserver, which admits a generated name's pod before naming it (`pods "web-5d4f-" is
        // forbidden`); it also makes the repeated refusals one aggregated event.
        let name = pod
            .pointer("/metadata/generateName")
            .and_then(Value::as_str)
            .unwrap_or_else(|| object::name(pod));
        let message = pod_security::forbidden_message("pods", name, level, &violations);
        Some(EventRecord::about(
            &involved,
            events::EventType::Warning,
            "FailedCreate",
            format!("Error creating: {message}"),
        ))
    }
}
