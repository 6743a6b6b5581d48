//! Server limits, as kube-apiserver's filters: max-in-flight (429 with `Retry-After`), the request
//! timeout (504), a cap on watches per user, and the HTTP/1 header read timeout. (The 3 MiB body
//! limit is enforced where bodies are read, `body::read_body`; the node proxy has its own.) Long-running requests (watch, exec/attach/port-forward, follow logs, node proxy) are
//! exempt from max-in-flight and the timeout, as in kube-apiserver.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse as _, Response};
use bytes::Bytes;
use http::{Method, Request};
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::route::{self, decode_bytes, Query, Route};
use super::status::ApiError;

/// Limits of the API server. A limit of 0 turns that limit off, as kube-apiserver's flags do.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Most non-mutating requests in flight (`--max-requests-inflight`, default 400).
    pub max_requests_inflight: usize,
    /// Most mutating requests in flight (`--max-mutating-requests-inflight`, default 200).
    pub max_mutating_requests_inflight: usize,
    /// Longest a non-long-running request may take (`--request-timeout`, default 60 s); a smaller
    /// `?timeout=` is honoured.
    pub request_timeout: Duration,
    /// Most open watches per user (default 500).
    pub max_watches_per_user: usize,
    /// A connection whose request headers are not complete this long after it started sending
    /// them is closed (slow-loris; default 10 s).
    pub header_read_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_requests_inflight: 400,
            max_mutating_requests_inflight: 200,
            request_timeout: Duration::from_secs(60),
            max_watches_per_user: 500,
            header_read_timeout: Duration::from_secs(10),
        }
    }
}

/// What the limits need to know about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A watch: exempt from max-in-flight and the timeout, counted per user.
    Watch,
    /// exec, attach, port-forward, follow logs, node proxy: exempt from every limit here.
    LongRunning,
    /// POST, PUT, PATCH, DELETE.
    Mutating,
    /// Everything else.
    ReadOnly,
}

/// Classifies a request as kube-apiserver's `LongRunningRequestCheck` and `isMutatingRequest` do.
pub fn classify(method: &Method, path: &str, query: &Query) -> Class {
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    // `/api/v1/watch/...` and `/apis/{g}/{v}/watch/...`: the deprecated watch paths.
    let watch_path = matches!(segs.as_slice(), ["", "api", _, "watch", ..])
        || matches!(segs.as_slice(), ["", "apis", _, _, "watch", ..]);
    // The merged watch streams as long as a plain one.
    if watch_path || query.flag("watch") || path.trim_end_matches('/') == route::MULTIWATCH_PATH {
        return Class::Watch;
    }
    let sub = match route::parse(path) {
        Some(Route::Resource(t)) => t.subresource,
        // Unserved subresources (attach, portforward) are still long-running to kube-apiserver.
        _ => segs.last().map(|s| s.to_string()),
    };
    let long = match sub.as_deref() {
        Some("exec" | "attach" | "portforward" | "proxy") => true,
        Some("log") => query.flag("follow"),
        _ => false,
    };
    if long {
        return Class::LongRunning;
    }
    match *method {
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE => Class::Mutating,
        _ => Class::ReadOnly,
    }
}

/// Parses a Go duration (`30s`, `1m30s`, `500ms`, `2h`) as `?timeout=` carries; `None` when it is not one.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(digits);
        let value: f64 = num.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let secs = match unit {
            "ns" => value / 1e9,
            "us" | "µs" => value / 1e6,
            "ms" => value / 1e3,
            "s" => value,
            "m" => value * 60.0,
            "h" => value * 3600.0,
            _ => return None,
        };
        total = total.checked_add(Duration::try_from_secs_f64(secs).ok()?)?;
        rest = tail;
    }
    Some(total)
}

/// The time a request may take: `?timeout=` when given and shorter than the server's limit.
pub fn request_timeout(query: &Query, limit: Duration) -> Duration {
    match query.non_empty("timeout").and_then(parse_go_duration) {
        Some(t) if !t.is_zero() && (limit.is_zero() || t < limit) => t,
        _ => limit,
    }
}

/// The first query key whose percent-decoded key or value is not UTF-8.
pub fn invalid_utf8(raw_query: Option<&str>) -> Option<String> {
    raw_query?.split('&').find_map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        let bad = std::str::from_utf8(&decode_bytes(k)).is_err()
            || std::str::from_utf8(&decode_bytes(v)).is_err();
        bad.then(|| String::from_utf8_lossy(&decode_bytes(k)).into_owned())
    })
}

/// 429 as kube-apiserver's max-in-flight filter answers it.
pub fn too_many_requests() -> ApiError {
    ApiError {
        details: Some(json!({"retryAfterSeconds": 1})),
        ..ApiError::new(
            429,
            "TooManyRequests",
            "Too many requests, please try again later.",
        )
    }
}

/// 504 as kube-apiserver's timeout filter answers it.
pub fn timed_out() -> ApiError {
    ApiError {
        details: Some(json!({"retryAfterSeconds": 0})),
        ..ApiError::new(
            504,
            "Timeout",
            "Timeout: request did not complete within requested timeout - context deadline exceeded",
        )
    }
}

/// The shared state of the limits: in-flight slots and open watches per user.
#[derive(Debug)]
pub struct Gate {
    limits: Limits,
    read_only: Option<Arc<Semaphore>>,
    mutating: Option<Arc<Semaphore>>,
    watches: Arc<Mutex<HashMap<String, usize>>>,
}

impl Gate {
    /// A gate enforcing `limits`.
    pub fn new(limits: Limits) -> Arc<Gate> {
        let sem = |n: usize| (n > 0).then(|| Arc::new(Semaphore::new(n)));
        Arc::new(Gate {
            read_only: sem(limits.max_requests_inflight),
            mutating: sem(limits.max_mutating_requests_inflight),
            watches: Arc::new(Mutex::new(HashMap::new())),
            limits,
        })
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Takes a watch slot of `user`; `None` when the user has the most watches open already.
    pub fn open_watch(&self, user: &str) -> Option<WatchSlot> {
        let max = self.limits.max_watches_per_user;
        let mut w = self.watches.lock().unwrap_or_else(|e| e.into_inner());
        let n = w.entry(user.to_string()).or_default();
        if max > 0 && *n >= max {
            return None;
        }
        *n += 1;
        Some(WatchSlot {
            watches: self.watches.clone(),
            user: user.to_string(),
        })
    }

    /// Serves `req` for `user` through `handler` within the limits.
    pub async fn serve<F, Fut>(
        self: &Arc<Self>,
        user: &str,
        req: Request<Body>,
        handler: F,
    ) -> Response
    where
        F: FnOnce(Request<Body>) -> Fut,
        Fut: std::future::Future<Output = Response> + Send + 'static,
    {
        if let Some(key) = invalid_utf8(req.uri().query()) {
            return ApiError::bad_request(format!(
                "invalid query parameter {key:?}: the value is not valid UTF-8"
            ))
            .into_response();
        }
        let query = Query::parse(req.uri().query());
        let class = classify(req.method(), req.uri().path(), &query);
        match class {
            Class::LongRunning => handler(req).await,
            Class::Watch => {
                let Some(slot) = self.open_watch(user) else {
                    tracing::debug!(user, "watch refused: too many open watches");
                    return too_many_requests().into_response();
                };
                let resp = handler(req).await;
                // The slot is given back when the watch's body ends or the client goes away.
                resp.map(|b| {
                    Body::new(Guarded {
                        inner: b,
                        _slot: slot,
                    })
                })
            }
            Class::Mutating | Class::ReadOnly => {
                let sem = if class == Class::Mutating {
                    &self.mutating
                } else {
                    &self.read_only
                };
                let permit: Option<OwnedSemaphorePermit> = match sem {
                    Some(s) => match s.clone().try_acquire_owned() {
                        Ok(p) => Some(p),
                        Err(_) => return too_many_requests().into_response(),
                    },
                    None => None,
                };
                let timeout = request_timeout(&query, self.limits.request_timeout);
                let fut = handler(req);
                // Its own task: a request that times out keeps running to completion, as in
                // kube-apiserver (a write may still commit), and keeps its in-flight slot until
                // then; a panic in a handler becomes a 500 instead of a dropped connection.
                let task = tokio::spawn(async move {
                    let resp = fut.await;
                    drop(permit);
                    resp
                });
                let joined = if timeout.is_zero() {
                    Ok(task.await)
                } else {
                    tokio::time::timeout(timeout, task).await
                };
                match joined {
                    Ok(Ok(resp)) => resp,
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "request handler panicked");
                        ApiError::internal("the request handler failed").into_response()
                    }
                    Err(_) => timed_out().into_response(),
                }
            }
        }
    }
}

/// One open watch of a user; dropping it gives the slot back.
#[derive(Debug)]
pub struct WatchSlot {
    watches: Arc<Mutex<HashMap<String, usize>>>,
    user: String,
}

impl Drop for WatchSlot {
    fn drop(&mut self) {
        let mut w = self.watches.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = w.get_mut(&self.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                w.remove(&self.user);
            }
        }
    }
}

/// A response body that holds a watch slot for as long as it streams.
struct Guarded {
    inner: Body,
    _slot: WatchSlot,
}

impl HttpBody for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Query {
        Query::parse(Some(s))
    }

    #[test]
    fn classification_follows_kube_apiserver() {
        let c = |m: Method, p: &str, query: &str| classify(&m, p, &q(query));
        assert_eq!(c(Method::GET, "/api/v1/pods", "watch=true"), Class::Watch);
        assert_eq!(c(Method::GET, "/api/v1/pods", "watch=1"), Class::Watch);
        assert_eq!(c(Method::GET, "/api/v1/watch/pods", ""), Class::Watch);
        assert_eq!(
            c(Method::GET, "/berth/v1/watch", "resources=pods"),
            Class::Watch
        );
        assert_eq!(
            c(
                Method::GET,
                "/apis/apps/v1/watch/namespaces/d/deployments",
                ""
            ),
            Class::Watch
        );
        assert_eq!(
            c(Method::GET, "/api/v1/pods", "watch=false"),
            Class::ReadOnly
        );
        assert_eq!(
            c(
                Method::GET,
                "/api/v1/namespaces/d/pods/p/exec",
                "command=ls"
            ),
            Class::LongRunning
        );
        assert_eq!(
            c(Method::POST, "/api/v1/namespaces/d/pods/p/portforward", ""),
            Class::LongRunning
        );
        assert_eq!(
            c(
                Method::GET,
                "/api/v1/namespaces/d/pods/p/log",
                "follow=true"
            ),
            Class::LongRunning
        );
        assert_eq!(
            c(Method::GET, "/api/v1/namespaces/d/pods/p/log", ""),
            Class::ReadOnly
        );
        assert_eq!(
            c(Method::POST, "/api/v1/nodes/n1/proxy/images/load", ""),
            Class::LongRunning
        );
        assert_eq!(
            c(Method::POST, "/api/v1/namespaces/d/pods", ""),
            Class::Mutating
        );
        assert_eq!(
            c(Method::PATCH, "/api/v1/nodes/n1/status", ""),
            Class::Mutating
        );
        assert_eq!(
            c(Method::DELETE, "/api/v1/namespaces/d/pods/p", ""),
            Class::Mutating
        );
        assert_eq!(
            c(Method::GET, "/api/v1/namespaces/d/pods/p", ""),
            Class::ReadOnly
        );
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_go_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("10"), None);
        assert_eq!(parse_go_duration("s"), None);
        assert_eq!(parse_go_duration("-1s"), None);
        assert_eq!(parse_go_duration("99999999999999999999999h"), None);
    }

    #[test]
    fn the_query_timeout_is_capped_by_the_server_limit() {
        let limit = Duration::from_secs(60);
        assert_eq!(
            request_timeout(&q("timeout=5s"), limit),
            Duration::from_secs(5)
        );
        assert_eq!(request_timeout(&q("timeout=5m"), limit), limit);
        assert_eq!(request_timeout(&q("timeout=junk"), limit), limit);
        assert_eq!(request_timeout(&q(""), limit), limit);
        assert_eq!(request_timeout(&q("timeout=0s"), limit), limit);
    }

    #[test]
    fn invalid_utf8_in_the_query_is_found() {
        assert_eq!(invalid_utf8(Some("command=%FF")), Some("command".into()));
        assert_eq!(
            invalid_utf8(Some("command=ls&command=%C3%28")),
            Some("command".into())
        );
        assert_eq!(invalid_utf8(Some("command=%C3%A9&x=%2F")), None);
        assert_eq!(invalid_utf8(Some("a=%ZZ")), None);
        assert_eq!(invalid_utf8(None), None);
    }

    #[test]
    fn watch_slots_are_capped_per_user_and_given_back() {
        let gate = Gate::new(Limits {
            max_watches_per_user: 2,
            ..Limits::default()
        });
        let a = gate.open_watch("alice").unwrap();
        let _b = gate.open_watch("alice").unwrap();
        assert!(gate.open_watch("alice").is_none());
        let _c = gate.open_watch("bob").unwrap();
        drop(a);
        assert!(gate.open_watch("alice").is_some());
    }

    #[test]
    fn status_bodies_match_kube_apiserver() {
        let s = too_many_requests().to_status();
        assert_eq!(s["code"], 429);
        assert_eq!(s["reason"], "TooManyRequests");
        assert_eq!(s["message"], "Too many requests, please try again later.");
        assert_eq!(s["details"]["retryAfterSeconds"], 1);
        let s = timed_out().to_status();
        assert_eq!(s["code"], 504);
        assert_eq!(s["reason"], "Timeout");
    }
}
