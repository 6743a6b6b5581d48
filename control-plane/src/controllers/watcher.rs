//! The one list+watch loop: list every prefix, watch each from its list's revision, and list again
//! when a watch falls out of the store's window (410 Gone) or breaks. The informer caches and the
//! scheduler runner consume its [`Step`]s; neither talks to the store's list or watch itself.

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
    /// Changes already delivered, in order, each with the index of its prefix.
    Events(Vec<(usize, store::Event)>),
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
}

impl Watcher {
    /// A watcher over `prefixes` (store prefixes such as `store::prefix("core", "pods", None)`).
    pub fn new(store: Arc<dyn ObjectStore>, prefixes: Vec<String>) -> Watcher {
        Watcher {
            store,
            prefixes,
            streams: None,
        }
    }

    /// The next step; `None` once `shutdown` is cancelled.
    pub async fn next(&mut self, shutdown: &CancellationToken) -> Option<Step> {
        loop {
            if shutdown.is_cancelled() {
                return None;
            }
            let Some(streams) = self.streams.as_mut() else {
                match self.list_and_watch(shutdown).await? {
                    Some(listed) => return Some(Step::Listed(listed)),
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

    /// Lists every prefix and starts its watch. `Ok(None)` (outer `Some`) when a list or a watch failed
    /// and the caller should try again; `None` on shutdown.
    async fn list_and_watch(&mut self, shutdown: &CancellationToken) -> Option<Option<Lists>> {
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
                    tokio::select! {
                        _ = shutdown.cancelled() => return None,
                        _ = tokio::time::sleep(Duration::from_millis(500)) => return Some(None),
                    }
                }
            };
            let watch = tokio::select! {
                _ = shutdown.cancelled() => return None,
                w = self.store.watch(prefix, at) => w,
            };
            let Ok(stream) = watch else {
                return Some(None);
            };
            streams.push(stream.map(move |e| (i, e)).boxed());
            lists.push((objects, at));
        }
        self.streams = Some(streams);
        Some(Some(lists))
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
            Step::Listed(lists) => lists
                .iter()
                .flat_map(|(objects, _)| objects.iter().map(|o| o.key.clone()))
                .collect(),
            Step::Events(batch) => batch.iter().map(|(_, e)| e.key.clone()).collect(),
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
}
