//! The one list+watch loop: list every prefix, watch each from its list's revision, and list again
//! when a watch falls out of the store's window (410 Gone) or breaks. The informer caches and the
//! scheduler runner and the agents' `Sync` streams consume its [`Step`]s; none talks to the store's
//! list or watch itself.

use std::time::Duration;

use futures::stream::{BoxStream, SelectAll};
use futures::{FutureExt, StreamExt};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use crate::store::{self, Consistency, ObjectStore};

/// Most ready events handed over in one [`Step::Events`], so one wake-up covers a burst.
const MAX_BATCH: usize = 4096;

/// What the watcher saw since the last step.
#[derive(Debug)]
pub enum Step {
    /// Every prefix was (re-)listed: one list per prefix, in the order given to [`Watcher::new`], each
    /// with the revision it is consistent at. Whatever the consumer built before is stale.
    Listed(Lists),
    /// Every prefix was listed, but the watches replay from the revision given to
    /// [`Watcher::resume_from`]: the consumer's state as of that revision stands, and the events since
    /// it follow. Only the first list of a resuming watcher can be this.
    Resumed(Lists),
    /// Changes already delivered, in order, each with the index of its prefix.
    Events(Vec<(usize, store::Event)>),
    /// A list failed; the watcher lists again after a back-off on the next [`Watcher::next`]. Consumers
    /// that answer a client report it (an agent reconnects, perhaps to another member).
    ListFailed(store::Error),
}

/// Each prefix's watch, tagged with the prefix's index.
type Watches = SelectAll<BoxStream<'static, (usize, store::Result<store::Event>)>>;

/// One list per prefix, each with the revision it is consistent at.
type Lists = Vec<(Vec<store::Object>, u64)>;

/// A list+watch over a fixed set of prefixes. Every error is retryable: it ends in a new list.
pub struct Watcher {
    store: Arc<dyn ObjectStore>,
    prefixes: Vec<String>,
    /// The watches of every prefix, merged; `None` until listed, and after a watch ended.
    streams: Option<Watches>,
    /// The revision the first watches start after instead of the list's (0: none).
    resume: u64,
    /// The last list failed: wait before the next one, so a store without a leader is not hammered.
    backoff: bool,
}

impl Watcher {
    /// A watcher over `prefixes` (store prefixes such as `store::prefix("core", "pods", None)`).
    pub fn new(store: Arc<dyn ObjectStore>, prefixes: Vec<String>) -> Watcher {
        Watcher {
            store,
            prefixes,
            streams: None,
            resume: 0,
            backoff: false,
        }
    }

    /// Makes the first watches replay from `after` (a client that applied everything up to it) when
    /// the first list is at `after` or later; the first step is then [`Step::Resumed`]. When the store's
    /// window no longer reaches back to `after`, the consumer sees a fresh [`Step::Listed`] instead.
    pub fn resume_from(mut self, after: u64) -> Watcher {
        self.resume = after;
        self
    }

    /// The next step; `None` once `shutdown` is cancelled.
    pub async fn next(&mut self, shutdown: &CancellationToken) -> Option<Step> {
        loop {
            if shutdown.is_cancelled() {
                return None;
            }
            let Some(streams) = self.streams.as_mut() else {
                match self.list_and_watch(shutdown).await? {
                    Some(step) => return Some(step),
                    None => continue,
                }
            };
            let first = tokio::select! {
                _ = shutdown.cancelled() => return None,
                n = streams.next() => n,
            };
            let mut batch = Vec::new();
            let mut next = first;
            loop {
                match next {
                    Some((i, Ok(ev))) => batch.push((i, ev)),
                    Some((_, Err(e))) => {
                        tracing::debug!(error = %e, "watch ended; re-listing");
                        self.streams = None;
                        break;
                    }
                    None => {
                        self.streams = None;
                        break;
                    }
                }
                if batch.len() >= MAX_BATCH {
                    break;
                }
                match streams.next().now_or_never() {
                    Some(n) => next = n,
                    None => break,
                }
            }
            if !batch.is_empty() {
                return Some(Step::Events(batch));
            }
        }
    }

    /// Events already delivered, without waiting; `None` when there are none or no watch is running
    /// (a list is never started here, so a caller may poll this between other work).
    pub fn try_next(&mut self) -> Option<Step> {
        let streams = self.streams.as_mut()?;
        let mut batch = Vec::new();
        while batch.len() < MAX_BATCH {
            match streams.next().now_or_never() {
                Some(Some((i, Ok(ev)))) => batch.push((i, ev)),
                Some(Some((_, Err(_))) | None) => {
                    self.streams = None;
                    break;
                }
                None => break,
            }
        }
        (!batch.is_empty()).then_some(Step::Events(batch))
    }

    /// Drops the watches: the next [`Watcher::next`] lists again (a consumer whose state may be
    /// half-updated rebuilds it from a fresh list).
    pub fn relist(&mut self) {
        self.streams = None;
    }

    /// Lists every prefix and starts its watch. `Ok(None)` (outer `Some`) when a watch failed to start
    /// and the caller should try again; `None` on shutdown.
    async fn list_and_watch(&mut self, shutdown: &CancellationToken) -> Option<Option<Step>> {
        if std::mem::take(&mut self.backoff) {
            tokio::select! {
                _ = shutdown.cancelled() => return None,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
        // Resuming is a one-shot: after any failure the consumer rebuilds from a full list.
        let resume = std::mem::take(&mut self.resume);
        let mut resumed = resume > 0;
        let mut lists = Vec::with_capacity(self.prefixes.len());
        let mut streams = SelectAll::new();
        for (i, prefix) in self.prefixes.iter().enumerate() {
            let listed = tokio::select! {
                _ = shutdown.cancelled() => return None,
                r = self.store.list(prefix, Consistency::Linearizable) => r,
            };
            let (objects, at) = match listed {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!(%prefix, error = %e, "list failed");
                    self.backoff = true;
                    return Some(Some(Step::ListFailed(e)));
                }
            };
            let mut watch = None;
            if resumed && resume <= at {
                watch = tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    w = self.store.watch(prefix, resume) => w.ok(),
                };
            }
            if resumed && watch.is_none() {
                if i > 0 {
                    // Earlier prefixes already replay from `resume`: start over, all from lists.
                    return Some(None);
                }
                resumed = false;
            }
            let watch = match watch {
                Some(w) => Ok(w),
                None => tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    w = self.store.watch(prefix, at) => w,
                },
            };
            let Ok(stream) = watch else {
                return Some(None);
            };
            streams.push(stream.map(move |e| (i, e)).boxed());
            lists.push((objects, at));
        }
        self.streams = Some(streams);
        Some(Some(if resumed {
            Step::Resumed(lists)
        } else {
            Step::Listed(lists)
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use serde_json::json;

    use super::*;
    use crate::store::{
        Batch, BoxFuture, Committed, MemStore, Object, Op, Precondition, WatchStream,
    };

    /// A MemStore whose next watch ends at once with `Gone`, as a watch that fell out of the window.
    struct GoneOnce {
        inner: MemStore,
        gone: AtomicBool,
    }

    impl ObjectStore for GoneOnce {
        fn commit(&self, batch: Batch) -> BoxFuture<'_, store::Result<Committed>> {
            self.inner.commit(batch)
        }
        fn get<'a>(
            &'a self,
            key: &'a str,
            consistency: Consistency,
        ) -> BoxFuture<'a, store::Result<Option<Object>>> {
            self.inner.get(key, consistency)
        }
        fn list<'a>(
            &'a self,
            prefix: &'a str,
            consistency: Consistency,
        ) -> BoxFuture<'a, store::Result<(Vec<Object>, u64)>> {
            self.inner.list(prefix, consistency)
        }
        fn watch<'a>(
            &'a self,
            prefix: &'a str,
            after: u64,
        ) -> BoxFuture<'a, store::Result<WatchStream>> {
            if self.gone.swap(false, Ordering::SeqCst) {
                let gone = store::Error::Gone {
                    requested: after,
                    oldest: after + 1,
                };
                return Box::pin(async move {
                    Ok(Box::pin(futures::stream::iter([Err(gone)])) as WatchStream)
                });
            }
            self.inner.watch(prefix, after)
        }
        fn revision(&self) -> u64 {
            self.inner.revision()
        }
        fn is_leader(&self) -> bool {
            true
        }
    }

    async fn put(store: &dyn ObjectStore, key: &str) {
        store
            .commit(Batch::one(Op::Put {
                key: key.into(),
                value: json!({"metadata": {"name": key}}),
                precondition: Precondition::None,
            }))
            .await
            .unwrap();
    }

    fn keys(step: &Step) -> Vec<String> {
        match step {
            Step::Listed(lists) | Step::Resumed(lists) => lists
                .iter()
                .flat_map(|(objects, _)| objects.iter().map(|o| o.key.clone()))
                .collect(),
            Step::Events(batch) => batch.iter().map(|(_, e)| e.key.clone()).collect(),
            Step::ListFailed(_) => vec![],
        }
    }

    #[tokio::test]
    async fn lists_then_watches_and_relists_after_gone() {
        let store = Arc::new(GoneOnce {
            inner: MemStore::new(),
            gone: AtomicBool::new(false),
        });
        put(store.as_ref(), "/core/pods/default/a").await;
        let shutdown = CancellationToken::new();
        let mut w = Watcher::new(store.clone(), vec!["/core/pods/".into()]);
        let first = w.next(&shutdown).await.unwrap();
        assert!(matches!(first, Step::Listed(_)));
        assert_eq!(keys(&first), ["/core/pods/default/a"]);

        put(store.as_ref(), "/core/pods/default/b").await;
        let second = w.next(&shutdown).await.unwrap();
        assert!(matches!(second, Step::Events(_)));
        assert_eq!(keys(&second), ["/core/pods/default/b"]);

        // The watch falls out of the window: the watcher lists again, and the list has both.
        store.gone.store(true, Ordering::SeqCst);
        w.relist();
        let third = w.next(&shutdown).await.unwrap();
        assert!(matches!(third, Step::Listed(_)));
        let fourth = w.next(&shutdown).await.unwrap();
        assert!(matches!(fourth, Step::Listed(_)), "re-listed after Gone");
        assert_eq!(
            keys(&fourth),
            ["/core/pods/default/a", "/core/pods/default/b"]
        );
        assert!(w.try_next().is_none());

        shutdown.cancel();
        assert!(w.next(&shutdown).await.is_none());
    }

    #[tokio::test]
    async fn resumes_from_a_revision_in_the_window_and_lists_otherwise() {
        let store = Arc::new(MemStore::new());
        put(store.as_ref(), "/core/pods/default/a").await;
        let seen = store.revision();
        put(store.as_ref(), "/core/pods/default/b").await;
        let shutdown = CancellationToken::new();

        let mut w = Watcher::new(store.clone(), vec!["/core/pods/".into()]).resume_from(seen);
        let first = w.next(&shutdown).await.unwrap();
        assert!(matches!(first, Step::Resumed(_)));
        let replayed = w.next(&shutdown).await.unwrap();
        assert_eq!(
            keys(&replayed),
            ["/core/pods/default/b"],
            "only what came after"
        );

        // A revision the store has not reached yet cannot be resumed from.
        let ahead = store.revision() + 100;
        let mut w = Watcher::new(store.clone(), vec!["/core/pods/".into()]).resume_from(ahead);
        assert!(matches!(w.next(&shutdown).await.unwrap(), Step::Listed(_)));

        // After a failure the watcher lists afresh: resuming is one-shot.
        let mut w = Watcher::new(store.clone(), vec!["/core/pods/".into()]).resume_from(seen);
        assert!(matches!(w.next(&shutdown).await.unwrap(), Step::Resumed(_)));
        w.relist();
        assert!(matches!(w.next(&shutdown).await.unwrap(), Step::Listed(_)));
    }
}
