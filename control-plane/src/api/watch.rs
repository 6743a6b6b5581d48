//! Watch streams: chunked JSON lines of `{"type","object"}` events from a resourceVersion, with the
//! current objects first as ADDED when no version (or `0`) is given, selectors, Table objects,
//! bookmarks, `timeoutSeconds`, and 410 Gone as an ERROR event.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::StreamExt;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::resources::{to_served, ResourceInfo};
use super::status::ApiError;
use super::table::{table, IncludeObject};
use crate::store::{Consistency, EventType, ObjectStore};
use apimachinery::labels::{FieldSelector, LabelSelector};

/// How objects are rendered in responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Render {
    /// The object itself.
    Object,
    /// A `meta.k8s.io/v1` Table with rows carrying no object.
    TableNone,
    /// A Table with `PartialObjectMetadata` in each row (the default).
    TableMetadata,
    /// A Table with the full object in each row (`includeObject=Object`).
    TableObject,
}

impl Render {
    /// From the `Accept` header and the `includeObject` query parameter.
    pub fn from_request(accept: &str, include_object: Option<&str>) -> Self {
        if !accept.contains("as=Table") {
            return Render::Object;
        }
        match include_object {
            Some("None") => Render::TableNone,
            Some("Object") => Render::TableObject,
            _ => Render::TableMetadata,
        }
    }

    fn include(self) -> IncludeObject {
        match self {
            Render::TableNone => IncludeObject::None,
            Render::TableObject => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }

    /// Renders stored objects for a request at `served`'s version: a Table when asked for, else
    /// `None` (the caller answers [`Render::object`]s). Rows are computed from the stored form; the
    /// objects rows carry are converted.
    pub fn table(self, served: &ResourceInfo, objects: &[&Value], rv: &str) -> Option<Value> {
        (self != Render::Object).then(|| {
            let mut t = table(
                served.resource,
                objects,
                self.include(),
                rv,
                SystemTime::now(),
            );
            if self == Render::TableObject {
                if let Some(rows) = t["rows"].as_array_mut() {
                    for row in rows {
                        let obj = row["object"].take();
                        row["object"] = to_served(served, obj);
                    }
                }
            }
            t
        })
    }

    /// A stored object as the version `served` names: the one place answers are converted.
    pub fn object(served: &ResourceInfo, obj: &Value) -> Value {
        to_served(served, obj.clone())
    }
}

/// Both selectors of a request.
pub struct Selectors {
    /// `labelSelector`.
    pub label: Option<LabelSelector>,
    /// `fieldSelector`.
    pub field: Option<FieldSelector>,
}

impl Selectors {
    /// Parses `labelSelector` and `fieldSelector`.
    ///
    /// # Errors
    /// BadRequest on a malformed selector.
    pub fn parse(label: Option<&str>, field: Option<&str>) -> Result<Self, ApiError> {
        let label = label
            .filter(|s| !s.is_empty())
            .map(LabelSelector::parse)
            .transpose()
            .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
        let field = field
            .filter(|s| !s.is_empty())
            .map(FieldSelector::parse)
            .transpose()
            .map_err(|e| ApiError::bad_request(format!("invalid field selector: {e}")))?;
        Ok(Selectors { label, field })
    }

    /// Whether an object matches both selectors.
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
        self.label.as_ref().is_none_or(|l| l.matches(labels))
            && self.field.as_ref().is_none_or(|f| f.matches(obj))
    }
}

/// What to watch and how.
pub struct WatchRequest {
    /// The resource.
    pub info: &'static ResourceInfo,
    /// Store prefix (resource, or resource in a namespace).
    pub prefix: String,
    /// Revision to start after; `None` (absent or `0`) sends the current objects as ADDED first.
    pub from: Option<u64>,
    /// Selectors applied to every event.
    pub selectors: Selectors,
    /// Plain objects or Tables.
    pub render: Render,
    /// The stream ends after this long.
    pub timeout: Duration,
    /// Send BOOKMARK events.
    pub bookmarks: bool,
}

/// Interval between bookmarks. Kubernetes sends one about every minute; informers only need them to
/// resume from a recent revision after a reconnect, so a shorter period costs little.
const BOOKMARK_EVERY: Duration = Duration::from_secs(10);

fn line(event_type: &str, object: Value) -> Bytes {
    let mut bytes =
        serde_json::to_vec(&json!({"type": event_type, "object": object})).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

/// The ERROR event a watch ends with when it cannot go on.
pub fn error_line(err: &ApiError) -> Bytes {
    line("ERROR", err.to_status())
}

enum Step {
    Event(crate::store::Result<crate::store::Event>),
    End,
    Bookmark,
}

/// The event type a watcher with selectors sees for a store event, or `None` when the change is
/// outside its selection. An object that stops matching is DELETED for the watcher; one that starts
/// matching is ADDED when the watcher's view is `complete` (seeded from a list).
fn classify(
    kind: EventType,
    matches: bool,
    key: &str,
    known: &mut HashSet<String>,
    complete: bool,
) -> Option<&'static str> {
    if !matches {
        return known.remove(key).then_some("DELETED");
    }
    match kind {
        EventType::Deleted => {
            known.remove(key);
            Some("DELETED")
        }
        EventType::Added | EventType::Modified => {
            let seen = !known.insert(key.to_string());
            Some(match (seen, complete, kind) {
                (true, _, _) => "MODIFIED",
                (false, true, _) | (false, false, EventType::Added) => "ADDED",
                (false, false, _) => "MODIFIED",
            })
        }
    }
}

/// The event stream of one watch, as chunks of JSON lines. It ends at the timeout, at shutdown,
/// when the store stream ends, or after an ERROR event.
pub fn stream(
    store: Arc<dyn ObjectStore>,
    req: WatchRequest,
    shutdown: CancellationToken,
) -> impl futures::Stream<Item = Result<Bytes, Infallible>> + Send {
    async_stream::stream! {
        let WatchRequest { info, prefix, from, selectors, render, timeout, bookmarks } = req;
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut first_table = true;
        let mut encode = move |obj: &Value, rv: u64| -> Value {
            match render.table(info, &[obj], &rv.to_string()) {
                Some(mut t) => {
                    // Like the real server, only the first Table event carries the columns.
                    if !first_table {
                        t["columnDefinitions"] = Value::Null;
                    }
                    first_table = false;
                    t
                }
                None => Render::object(info, obj),
            }
        };
        // Keys whose last event matched the selectors; `complete` when it was seeded from a list,
        // so that an object entering the selection is reported as ADDED and one leaving it as DELETED.
        let mut known: HashSet<String> = HashSet::new();
        let mut complete = false;
        let start = match from {
            Some(rv) => rv,
            None => match store.list(&prefix, Consistency::Local).await {
                Ok((objects, rev)) => {
                    for o in objects.iter().filter(|o| selectors.matches(&o.value)) {
                        known.insert(o.key.clone());
                        yield Ok(line("ADDED", encode(&o.value, o.revision)));
                    }
                    complete = true;
                    rev
                }
                Err(e) => {
                    yield Ok(error_line(&ApiError::from_store(e)));
                    return;
                }
            },
        };
        let mut events = match store.watch(&prefix, start).await {
            Ok(w) => w,
            Err(e) => {
                yield Ok(error_line(&ApiError::from_store(e)));
                return;
            }
        };
        let mut last = start;
        let mut ticker = tokio::time::interval(BOOKMARK_EVERY);
        ticker.tick().await;
        loop {
            let step = tokio::select! {
                _ = &mut deadline => Step::End,
                _ = shutdown.cancelled() => Step::End,
                _ = ticker.tick(), if bookmarks => Step::Bookmark,
                e = events.next() => match e {
                    Some(e) => Step::Event(e),
                    None => Step::End,
                },
            };
            match step {
                Step::End => break,
                Step::Bookmark => {
                    let obj = json!({"kind": info.kind, "apiVersion": info.api_version(),
                        "metadata": {"resourceVersion": last.to_string()}});
                    yield Ok(line("BOOKMARK", obj));
                }
                Step::Event(Err(e)) => {
                    yield Ok(error_line(&ApiError::from_store(e)));
                    break;
                }
                Step::Event(Ok(e)) => {
                    last = e.revision;
                    let matches = selectors.matches(&e.object);
                    let Some(kind) = classify(e.kind, matches, &e.key, &mut known, complete) else {
                        continue;
                    };
                    yield Ok(line(kind, encode(&e.object, e.revision)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_changes_become_added_and_deleted() {
        let mut known = HashSet::new();
        // Seeded from a list: a modified object entering the selection is ADDED …
        assert_eq!(
            classify(EventType::Modified, true, "a", &mut known, true),
            Some("ADDED")
        );
        assert_eq!(
            classify(EventType::Modified, true, "a", &mut known, true),
            Some("MODIFIED")
        );
        // … and leaving it is DELETED, once.
        assert_eq!(
            classify(EventType::Modified, false, "a", &mut known, true),
            Some("DELETED")
        );
        assert_eq!(
            classify(EventType::Modified, false, "a", &mut known, true),
            None
        );
        assert_eq!(
            classify(EventType::Added, false, "b", &mut known, true),
            None
        );
        assert_eq!(
            classify(EventType::Added, true, "b", &mut known, true),
            Some("ADDED")
        );
        assert_eq!(
            classify(EventType::Deleted, true, "b", &mut known, true),
            Some("DELETED")
        );
        assert!(known.is_empty());
        // From a resourceVersion the earlier state is unknown: the store's type stands.
        assert_eq!(
            classify(EventType::Modified, true, "c", &mut known, false),
            Some("MODIFIED")
        );
        assert_eq!(
            classify(EventType::Added, true, "d", &mut known, false),
            Some("ADDED")
        );
        assert_eq!(
            classify(EventType::Modified, false, "e", &mut known, false),
            None
        );
    }
}
