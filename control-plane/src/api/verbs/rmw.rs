//! The one read-modify-write loop of the API: read the object, let a decider choose, commit with a
//! resourceVersion precondition, and read again when the write lost a race; bounded by
//! [`MAX_RETRIES`].

use futures::future::BoxFuture;
use serde_json::Value;

use crate::api::status::{ApiError, Result};
use crate::store::{self, Batch, Consistency, Object, ObjectStore, Op};

/// How many times a read-modify-write is retried after losing a race before giving up.
pub const MAX_RETRIES: usize = 10;

/// Where each attempt's object comes from.
pub enum Read {
    /// Nothing is read: the decider builds the object (create).
    Nothing,
    /// The object under `key`, read at `consistency` on every attempt.
    Key {
        /// Object key.
        key: String,
        /// How fresh the read must be.
        consistency: Consistency,
    },
    /// An object the caller already read, then its key re-read linearizably after a lost race.
    Given(Object),
}

/// What a decider wants done with what it read.
pub enum Decision<T> {
    /// Answer without writing (nothing to change, a dry run, a refusal decided as an answer).
    Answer(T),
    /// Commit the write.
    Commit(Commit<T>),
    /// Read again and decide again: a race seen before writing.
    Retry,
}

/// A write and how to read its outcome.
pub struct Commit<T> {
    /// The operations; the first is the object itself, with a precondition on its revision (or
    /// absence).
    pub ops: Vec<Op>,
    /// The answer from the stored first object (`Null` when it was deleted).
    pub then: fn(Value) -> T,
    /// Precondition failures that are final answers, by key, instead of a lost race.
    pub refuse: Vec<(String, ApiError)>,
    /// The answer to any other precondition failure; `None` reads again and retries.
    pub otherwise: Option<ApiError>,
}

impl<T> Commit<T> {
    /// A write whose precondition failures are all lost races.
    pub fn retrying(ops: Vec<Op>, then: fn(Value) -> T) -> Self {
        Commit {
            ops,
            then,
            refuse: Vec::new(),
            otherwise: None,
        }
    }
}

/// Runs `decide` on what `read` yields until it answers, its write commits, or [`MAX_RETRIES`]
/// attempts lost their race (then `exhausted` is the answer). `decide` returns a boxed future
/// (not an async closure) so that the request's future stays `Send` for any borrow it holds.
///
/// # Errors
/// The decider's errors, a refused precondition, a store failure, or `exhausted`.
pub async fn run<'a, T>(
    store: &dyn ObjectStore,
    read: Read,
    exhausted: impl FnOnce() -> ApiError,
    decide: impl Fn(Option<Object>) -> BoxFuture<'a, Result<Decision<T>>>,
) -> Result<T> {
    let (mut given, key, consistency) = match read {
        Read::Nothing => (None, None, Consistency::Linearizable),
        Read::Key { key, consistency } => (None, Some(key), consistency),
        Read::Given(o) => {
            let key = o.key.clone();
            (Some(o), Some(key), Consistency::Linearizable)
        }
    };
    for _ in 0..MAX_RETRIES {
        let cur = match (given.take(), &key) {
            (Some(o), _) => Some(o),
            (None, Some(k)) => store
                .get(k, consistency)
                .await
                .map_err(ApiError::from_store)?,
            (None, None) => None,
        };
        let commit = match decide(cur).await? {
            Decision::Answer(t) => return Ok(t),
            Decision::Retry => continue,
            Decision::Commit(c) => c,
        };
        match store.commit(Batch { ops: commit.ops }).await {
            Ok(c) => return Ok((commit.then)(c.into_first().unwrap_or_default())),
            Err(store::Error::PreconditionFailed { key: failed, .. }) => {
                if let Some(i) = commit.refuse.iter().position(|(k, _)| *k == failed) {
                    return Err(commit.refuse.into_iter().nth(i).expect("found").1);
                }
                if let Some(e) = commit.otherwise {
                    return Err(e);
                }
            }
            Err(e) => return Err(ApiError::from_store(e)),
        }
    }
    Err(exhausted())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use serde_json::json;

    use super::*;
    use crate::store::{MemStore, Precondition};

    fn put(key: &str, rev: u64) -> Op {
        Op::Put {
            key: key.into(),
            value: json!({"metadata": {"name": "x"}}),
            precondition: Precondition::Revision(rev),
        }
    }

    #[tokio::test]
    async fn a_write_that_keeps_losing_gives_up_after_the_bound() {
        let store = MemStore::new();
        let attempts = AtomicUsize::new(0);
        let attempts_ref = &attempts;
        // Revision 999 never matches, so every commit fails its precondition.
        let out: Result<()> = run(
            &store,
            Read::Nothing,
            || ApiError::bad_request("exhausted"),
            move |_| {
                Box::pin(async move {
                    attempts_ref.fetch_add(1, Ordering::SeqCst);
                    Ok(Decision::Commit(Commit::retrying(
                        vec![put("/k", 999)],
                        |_| (),
                    )))
                })
            },
        )
        .await;
        assert_eq!(out.unwrap_err().message, "exhausted");
        assert_eq!(attempts.load(Ordering::SeqCst), MAX_RETRIES);
    }

    #[tokio::test]
    async fn refused_keys_and_stale_writes_answer_at_once() {
        let store = MemStore::new();
        let refused: Result<()> = run(
            &store,
            Read::Nothing,
            || ApiError::bad_request("exhausted"),
            |_| {
                Box::pin(async {
                    Ok(Decision::Commit(Commit {
                        ops: vec![put("/k", 999)],
                        then: |_| (),
                        refuse: vec![("/k".into(), ApiError::bad_request("taken"))],
                        otherwise: None,
                    }))
                })
            },
        )
        .await;
        assert_eq!(refused.unwrap_err().message, "taken");
        let stale: Result<()> = run(
            &store,
            Read::Nothing,
            || ApiError::bad_request("exhausted"),
            |_| {
                Box::pin(async {
                    Ok(Decision::Commit(Commit {
                        ops: vec![put("/k", 999)],
                        then: |_| (),
                        refuse: vec![],
                        otherwise: Some(ApiError::bad_request("stale")),
                    }))
                })
            },
        )
        .await;
        assert_eq!(stale.unwrap_err().message, "stale");
    }

    #[tokio::test]
    async fn the_decider_sees_the_stored_object_and_its_write_lands() {
        let store = MemStore::new();
        let created = Op::Put {
            key: "/k".into(),
            value: json!({"metadata": {"name": "x"}, "n": 1}),
            precondition: Precondition::Absent,
        };
        store.commit(Batch::one(created)).await.unwrap();
        let read = Read::Key {
            key: "/k".into(),
            consistency: Consistency::Linearizable,
        };
        let stored = run(
            &store,
            read,
            || ApiError::bad_request("exhausted"),
            |cur| {
                Box::pin(async move {
                    let cur = cur.expect("stored");
                    let mut next = cur.value.clone();
                    next["n"] = json!(2);
                    let op = Op::Put {
                        key: cur.key,
                        value: next,
                        precondition: Precondition::Revision(cur.revision),
                    };
                    Ok(Decision::Commit(Commit::retrying(
                        vec![op],
                        std::convert::identity,
                    )))
                })
            },
        )
        .await
        .unwrap();
        assert_eq!(stored["n"], 2);
    }
}
