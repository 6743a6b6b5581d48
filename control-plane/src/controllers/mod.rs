//! Controllers: each a pure `reconcile(desired, observed) -> Actions` plus a thin runner on the Raft leader.
//! [`run`] starts the shared informers, every controller and the scheduler runner while this member leads.
//!
//! # Layout
//! - `action`, `context`, `runner`: what a reconcile decides, what the controllers share, and the one
//!   loop that drives each controller.
//! - `informer`, `watcher`: re-exports of [`crate::informer`], where the caches and the list+watch loop live.
//! - `events`: v1 Event records and their aggregation.
//! - `isolation`: a reconcile's panic caught and retried per key with back-off; dead tasks reported.
//! - `replicaset`, `deployment`, `daemonset`, `job`, `endpoints`, `node_lifecycle`, `namespace`, `gc`,
//!   `serviceaccount`, `hpa` (HorizontalPodAutoscaler): one controller each.
//! - `scheduling`: the scheduler runner (watches pending pods, commits bindings in batches).
//! - `bench`: bind throughput through any [`ObjectStore`].

pub mod bench;
pub mod daemonset;
pub mod deployment;
pub mod endpoints;
pub mod events;
pub mod gc;
pub mod hpa;
pub mod isolation;
pub mod job;
pub mod namespace;
pub mod node_lifecycle;
pub mod object;
pub mod replicaset;
pub mod scheduling;
pub mod serviceaccount;

mod action;
mod context;
mod runner;

#[cfg(test)]
mod runner_tests;
#[cfg(test)]
mod sim;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::store::ObjectStore;
use isolation::TaskEnd;

pub use action::{delete_pod, Action, Actions};
pub use context::{Clock, ControllerConfig, Ctx, TokioClock};
pub(crate) use runner::{drive, Controller};

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
            hpa::HorizontalPodAutoscalerController::COMPONENT,
            Box::pin(drive(
                hpa::HorizontalPodAutoscalerController::default(),
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
