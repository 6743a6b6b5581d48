//! The one controller loop: waits for the informers, then runs a controller's pass on every cache
//! change, on the earliest requeue and at least every resync interval, and commits what it decided.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::action::Actions;
use super::context::{failure_id, Ctx};
use super::events::Recorder;
use super::isolation;
use crate::informer::{Caches, Informer};
use crate::store;

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
