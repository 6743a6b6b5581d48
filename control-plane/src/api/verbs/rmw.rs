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
