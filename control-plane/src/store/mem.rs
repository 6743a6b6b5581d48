//! A single-process [`ObjectStore`] over the same state machine and event window as the Raft store.
//! It is for unit tests of the API and the controllers, which need store semantics but not replication.

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use tokio::sync::broadcast;
use tokio_stream::wrappers::{errors::BroadcastStreamRecvError, BroadcastStream};

use super::object_store::{
    Batch, BoxFuture, Committed, Consistency, Error, Event, Object, ObjectStore, Result,
    WatchStream,
};
use super::state_machine::{EventWindow, StateMachine};

struct Inner {
    sm: StateMachine,
    window: EventWindow,
}

/// In-memory store: every commit is applied at the next index, as a one-member Raft would.
#[derive(Clone)]
pub struct MemStore {
    inner: Arc<Mutex<Inner>>,
    events: broadcast::Sender<Arc<Vec<Event>>>,
}

impl Default for MemStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemStore {
    /// An empty store with a 10,000-event window.
    pub fn new() -> Self {
        let (events, _) = broadcast::channel(1024);
        MemStore {
            inner: Arc::new(Mutex::new(Inner {
                sm: StateMachine::new(),
                window: EventWindow::new(10_000, 0),
            })),
            events,
        }
    }
}

/// Turns a broadcast of event batches into a watch stream for one prefix, starting after `after`,
/// with the replayed backlog first. Shared by the Raft store.
pub(crate) fn watch_stream(
    backlog: Vec<Event>,
    rx: broadcast::Receiver<Arc<Vec<Event>>>,
    prefix: String,
    after: u64,
) -> WatchStream {
    let last = backlog.last().map(|e| e.revision).unwrap_or(after);
    let backlog_prefix = prefix.clone();
    let backlog = futures::stream::iter(
        backlog
            .into_iter()
            .filter(move |e| e.key.starts_with(&backlog_prefix))
            .map(Ok),
    );
    let live = BroadcastStream::new(rx).flat_map(move |batch| {
        let items: Vec<Result<Event>> = match batch {
            Ok(batch) => batch
                .iter()
                // The backlog and the subscription overlap; skip what the backlog already sent.
                .filter(|e| e.revision > last && e.key.starts_with(&prefix))
                .cloned()
                .map(Ok)
                .collect(),
            Err(BroadcastStreamRecvError::Lagged(_)) => vec![Err(Error::Gone {
                requested: last,
                oldest: last,
            })],
        };
        futures::stream::iter(items)
    });
    // After a Gone the stream must end: the client cannot trust anything that follows.
    let mut gone = false;
    Box::pin(backlog.chain(live).take_while(move |item| {
        let stop = gone;
        gone = gone || item.is_err();
        futures::future::ready(!stop)
    }))
}

impl ObjectStore for MemStore {
    fn commit(&self, batch: Batch) -> BoxFuture<'_, Result<Committed>> {
        Box::pin(async move {
            let mut inner = self.inner.lock().expect("mem store lock");
            let index = inner.sm.applied() + 1;
            let (result, events) = inner.sm.apply(index, &batch);
            if !events.is_empty() {
                inner.window.push(events.clone());
                // Sent under the lock so subscribers see batches in revision order.
                let _ = self.events.send(Arc::new(events));
            }
            result
        })
    }

    fn get<'a>(&'a self, key: &'a str, _: Consistency) -> BoxFuture<'a, Result<Option<Object>>> {
        Box::pin(async move { Ok(self.inner.lock().expect("mem store lock").sm.get(key)) })
    }

    fn list<'a>(
        &'a self,
        prefix: &'a str,
        _: Consistency,
    ) -> BoxFuture<'a, Result<(Vec<Object>, u64)>> {
        Box::pin(async move {
            let inner = self.inner.lock().expect("mem store lock");
            Ok((inner.sm.list(prefix), inner.sm.applied()))
        })
    }

    fn watch<'a>(&'a self, prefix: &'a str, after: u64) -> BoxFuture<'a, Result<WatchStream>> {
        Box::pin(async move {
            let inner = self.inner.lock().expect("mem store lock");
            let rx = self.events.subscribe();
            let backlog = inner.window.since(after)?;
            Ok(watch_stream(backlog, rx, prefix.to_string(), after))
        })
    }

    fn revision(&self) -> u64 {
        self.inner.lock().expect("mem store lock").sm.applied()
    }

    fn is_leader(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::object_store::{EventType, Op, Precondition};
    use serde_json::json;

    #[tokio::test]
    async fn watch_replays_then_follows() {
        let s = MemStore::new();
        let put = |k: &str| {
            Batch::one(Op::Put {
                key: k.into(),
                value: json!({"metadata": {}}),
                precondition: Precondition::None,
            })
        };
        s.commit(put("/core/pods/a/1")).await.unwrap();
        s.commit(put("/core/cm/a/1")).await.unwrap();
        let mut w = s.watch("/core/pods/", 0).await.unwrap();
        s.commit(put("/core/pods/a/2")).await.unwrap();
        let e1 = w.next().await.unwrap().unwrap();
        let e2 = w.next().await.unwrap().unwrap();
        assert_eq!((e1.revision, e1.kind), (1, EventType::Added));
        assert_eq!(e2.revision, 3);
    }
}
