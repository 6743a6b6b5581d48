//! Controllers: each a pure `reconcile(desired, observed) -> Actions` plus a thin runner on the Raft leader.
//! [`run`] starts the shared informers, every controller and the scheduler runner while this member leads.
//!
//! # Layout
//! - `informer`: list+watch caches shared by the controllers, with write-through of their own commits.
//! - `events`: v1 Event records and their aggregation.
//! - `isolation`: a reconcile's panic caught and retried per key with back-off; dead tasks reported.
//! - `replicaset`, `deployment`, `daemonset`, `job`, `endpoints`, `node_lifecycle`, `namespace`, `gc`,
//!   `serviceaccount`: one controller each.
//! - `scheduling`: the scheduler runner (watches pending pods, commits bindings in batches).
//! - `watcher`: the one list+watch loop (re-list on 410 Gone) under the informers and the scheduler runner.
//! - `bench`: bind throughput through any [`ObjectStore`].

pub mod bench;
pub mod daemonset;
pub mod deployment;
pub mod endpoints;
pub mod events;
pub mod gc;
pub mod informer;
pub mod isolation;
pub mod job;
pub mod namespace;
pub mod node_lifecycle;
pub mod object;
pub mod replicaset;
pub mod scheduling;
pub mod serviceaccount;
pub mod watcher;

#[cfg(test)]
mod runner_tests;
#[cfg(test)]
mod sim;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::pod_security;
use crate::store::{self, Batch, ObjectStore, Op, Precondition};
use events::{EventRecord, Recorder};
use informer::{Caches, Informer};
use isolation::{Backoff, Failures, TaskEnd};

/// One decision of a reconcile. The runner turns a reconcile's actions into one atomic batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Nothing (keeps helper code simple).
    None,
    /// Create an object that must not exist yet.
    Create {
        /// Store key.
        key: String,
        /// The object, stamped with uid and creationTimestamp.
        object: Value,
    },
    /// Replace an object read at `revision`.
    Update {
        /// Store key.
        key: String,
        /// The whole new object (unknown fields kept from the read).
        object: Value,
        /// Revision the object was read at (the write's precondition).
        revision: u64,
    },
    /// Remove an object at once.
    Delete {
        /// Store key.
        key: String,
        /// Revision it was read at; `None` deletes whatever is there.
        revision: Option<u64>,
    },
    /// Record an event.
    Event(EventRecord),
}

/// What a reconcile decided.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Actions {
    /// Writes and events, applied together.
    pub actions: Vec<Action>,
    /// Reconcile again after this long even if nothing changes (a timer: minReadySeconds, grace periods).
    pub requeue_after: Option<Duration>,
    /// The kind and store key of the object whose reconcile decided these, when one object did: a
    /// failed write backs off that key alone.
    pub origin: Option<(&'static str, String)>,
}

impl Actions {
    /// Adds an action.
    pub fn push(&mut self, a: Action) {
        if a != Action::None {
            self.actions.push(a);
        }
    }

    /// Asks for a reconcile no later than `d` from now.
    pub fn requeue(&mut self, d: Duration) {
        self.requeue_after = Some(self.requeue_after.map_or(d, |r| r.min(d)));
    }

    /// Whether the reconcile wants no writes.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }
}

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
    failures: Mutex<Failures>,
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

fn failure_id(kind: &str, key: &str) -> String {
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

/// A controller as the generic loop drives it: one level-triggered pass over everything it owns.
pub(crate) trait Controller: Send + 'static {
    /// `source.component` of its events.
    const COMPONENT: &'static str;
    /// Informers whose changes wake it.
    fn triggers(caches: &Caches) -> Vec<Arc<Informer>>;
    /// How long a burst of watch events may take to land before the next pass.
    const DEBOUNCE: Duration = Duration::from_millis(5);
    /// Reconciles everything against the caches; returns one `Actions` per object that needs writes.
    fn pass(&mut self, ctx: &Ctx) -> Vec<Actions>;
    /// I/O a pass decided on but could not do purely (confirming with the store, sweeping), run after
    /// the pass's writes; returns how soon to pass again, if sooner than the resync.
    fn settle<'a>(
        &'a mut self,
        _ctx: &'a Ctx,
        _recorder: &'a Recorder,
    ) -> futures::future::BoxFuture<'a, Option<Duration>> {
        Box::pin(async { None })
    }
}

/// Drives a controller until `shutdown`: waits for the informers, then reruns its pass on every cache
/// change, on the earliest requeue, and at least every resync interval.
pub(crate) async fn drive<C: Controller>(mut c: C, ctx: Arc<Ctx>, shutdown: CancellationToken) {
    let recorder = Recorder::new(C::COMPONENT);
    let informers = C::triggers(&ctx.caches);
    let mut rxs: Vec<_> = informers.iter().map(|i| i.subscribe()).collect();
    while !ctx.caches.ready() {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
    loop {
        for rx in &mut rxs {
            rx.mark_unchanged();
        }
        let mut wait = ctx.config.resync_interval;
        // Per-object reconciles isolate their own panics; this catches what a pass does around them.
        let pass_id = failure_id(C::COMPONENT, "");
        let work = match isolation::catch(|| c.pass(&ctx)) {
            Ok(work) => {
                isolation::lock(&ctx.failures).succeeded(&pass_id);
                work
            }
            Err(panic) => {
                wait = isolation::lock(&ctx.failures).failed(&pass_id, ctx.now());
                tracing::error!(component = C::COMPONENT, retry_in = ?wait, "pass of {} failed: {panic}", C::COMPONENT);
                Vec::new()
            }
        };
        for actions in work {
            if let Some(r) = actions.requeue_after {
                wait = wait.min(r);
            }
            if actions.is_empty() {
                continue;
            }
            let origin = actions.origin;
            if let Err(e) = ctx.apply(&recorder, actions.actions).await {
                let retry = match (&e, origin) {
                    // A stale read: the next pass sees the newer object; no back-off needed.
                    (store::Error::PreconditionFailed { .. }, _) | (_, None) => {
                        tracing::debug!(component = C::COMPONENT, error = %e, "apply failed; will retry");
                        Duration::from_millis(100)
                    }
                    (_, Some((kind, key))) => ctx.reconcile_failed(kind, &key, &e.to_string()),
                };
                wait = wait.min(retry);
            }
            if shutdown.is_cancelled() {
                return;
            }
        }
        if let Some(r) = c.settle(&ctx, &recorder).await {
            wait = wait.min(r);
        }
        let changed = futures::future::select_all(rxs.iter_mut().map(|rx| Box::pin(rx.changed())));
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
            _ = changed => tokio::time::sleep(C::DEBOUNCE).await,
        }
    }
}

/// Runs `fut` as a task of `tracker` that must live until `term` is cancelled: if it returns earlier
/// or panics, the process exits (see [`die`]).
fn supervise(
    tracker: &TaskTracker,
    name: &'static str,
    term: CancellationToken,
    fut: futures::future::BoxFuture<'static, ()>,
) {
    let task = tokio::spawn(fut);
    tracker.spawn(async move {
        let end = isolation::watch_task(task, || term.is_cancelled()).await;
        if end.is_death() {
            die(name, &end);
        }
    });
}

/// A controller task died. Limping on without it would leave its objects unreconciled while the
/// member still holds the leader lease, so the process exits for its supervisor to restart it and
/// another member to take over (a panic has already been logged by the panic hook).
fn die(name: &str, end: &TaskEnd) -> ! {
    tracing::error!(task = name, end = ?end, "critical controller task died; exiting");
    std::process::exit(70)
}

/// Runs every controller and the scheduler runner while `store.is_leader()`; stops them when leadership
/// is lost and starts them again, with fresh caches, when it returns. Returns after `shutdown`, once
/// every task has stopped.
pub async fn run(
    store: Arc<dyn ObjectStore>,
    config: ControllerConfig,
    shutdown: CancellationToken,
) {
    loop {
        while !store.is_leader() {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(config.leader_poll_interval) => {}
            }
        }
        tracing::info!("leading: starting controllers");
        let term = shutdown.child_token();
        let tracker = TaskTracker::new();
        let ctx = Ctx::new(store.clone(), config.clone());
        let spawn = |name: &'static str, fut: futures::future::BoxFuture<'static, ()>| {
            supervise(&tracker, name, term.clone(), fut);
        };
        for informer in ctx.caches.all() {
            spawn(
                "informer",
                Box::pin(informer.clone().run(store.clone(), term.clone())),
            );
        }
        // Creates the defaults and ends: only a panic of it is a death.
        let defaults = tokio::spawn(namespace::ensure_defaults(ctx.clone(), term.clone()));
        tracker.spawn(async move {
            if let end @ TaskEnd::Panicked(_) = isolation::watch_task(defaults, || true).await {
                die("namespace-defaults", &end);
            }
        });
        spawn(
            replicaset::ReplicaSetController::COMPONENT,
            Box::pin(drive(
                replicaset::ReplicaSetController,
                ctx.clone(),
                term.clone(),
            )),
        );
        spawn(
            deployment::DeploymentController::COMPONENT,
            Box::pin(drive(
                deployment::DeploymentController,
                ctx.clone(),
                term.clone(),
            )),
        );
        spawn(
            daemonset::DaemonSetController::COMPONENT,
            Box::pin(drive(
                daemonset::DaemonSetController,
                ctx.clone(),
                term.clone(),
            )),
        );
        spawn(
            job::JobController::COMPONENT,
            Box::pin(drive(job::JobController, ctx.clone(), term.clone())),
        );
        spawn(
            endpoints::EndpointsController::COMPONENT,
            Box::pin(drive(
                endpoints::EndpointsController,
                ctx.clone(),
                term.clone(),
            )),
        );
        spawn(
            node_lifecycle::NodeLifecycleController::COMPONENT,
            Box::pin(drive(
                node_lifecycle::NodeLifecycleController,
                ctx.clone(),
                term.clone(),
            )),
        );
        spawn(
            "namespace-controller",
            Box::pin(namespace::run(ctx.clone(), term.clone())),
        );
        spawn(
            "serviceaccount-controller",
            Box::pin(serviceaccount::run(ctx.clone(), term.clone())),
        );
        spawn(
            "garbage-collector",
            Box::pin(drive(
                gc::GarbageCollector::default(),
                ctx.clone(),
                term.clone(),
            )),
        );
        spawn(
            "scheduler",
            Box::pin(scheduling::run(store.clone(), config.clone(), term.clone())),
        );
        tracker.close();
        let stop = loop {
            tokio::select! {
                _ = shutdown.cancelled() => break true,
                _ = tokio::time::sleep(config.leader_poll_interval) => {
                    if !store.is_leader() {
                        break false;
                    }
                }
            }
        };
        term.cancel();
        tracker.wait().await;
        if stop {
            return;
        }
        tracing::info!("leadership lost: controllers stopped");
    }
}
