//! The agent's HTTP endpoint (port 10250): container logs, exec over WebSocket (`v5.channel.k8s.io`),
//! image import, and the usage summary (`/stats/summary`), as the API server proxies them for
//! `kubectl logs`, `kubectl exec` and `berthctl image load`, and reads them for `metrics.k8s.io`.

mod exec;
mod logs;
mod stats;

use crate::images::ImageStore;
use crate::pod::Lookup;
use crate::runtime::ContainerRuntime;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use futures::StreamExt;
use std::sync::{Arc, Mutex};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

/// What the HTTP endpoints need from a running agent. It lives here, not in `agent`, because the agent
/// starts this server: the dependency runs one way, agent to server.
#[derive(Clone)]
pub struct AgentState {
    /// Container runtime.
    pub runtime: Arc<dyn ContainerRuntime>,
    /// Image store.
    pub images: Arc<ImageStore>,
    /// Latest pod/container table from the pod manager.
    pub lookup: Arc<Mutex<Lookup>>,
    /// Latest usage summary from the metrics sampler ([`crate::metrics::Sampler`]).
    pub summary: Arc<crate::metrics::LatestSummary>,
}

/// The router, for tests that serve it themselves.
pub fn router(state: AgentState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/containerLogs/{ns}/{pod}/{container}",
            get(logs::container_logs),
        )
        .route(
            "/exec/{ns}/{pod}/{container}",
            get(exec::exec).post(exec::exec),
        )
        .route(
            "/exec/{ns}/{pod}",
            get(exec::exec_default).post(exec::exec_default),
        )
        .route("/images/load", post(load_images))
        .route("/images", get(list_images))
        .route("/stats/summary", get(stats::summary))
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// Serves the endpoint over HTTPS on `listener` until `shutdown`. `tls` must require a client
/// certificate of the cluster CA (see `NodeIdentity::http_config`); of those, only the API server's
/// ([`pki::APISERVER_USER`]) is served: any other certificate (a node's, a user's) gets 403 on every
/// request, as kubelet's authorizer answers callers without `nodes/proxy`.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    tls: std::sync::Arc<rustls::ServerConfig>,
    state: AgentState,
    shutdown: CancellationToken,
) {
    serve_tls_with(listener, tls, state, Limits::default(), shutdown).await;
}

/// Limits of the agent's endpoint. Streams (exec, follow logs, image loads) are exempt from the
/// request timeout but have their own concurrency cap.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most non-streaming requests in flight; more are answered 429.
    pub max_requests_inflight: usize,
    /// Most streams (exec, follow logs, image loads) open at once; more are answered 429.
    pub max_streams: usize,
    /// Longest a non-streaming request may take before a 504.
    pub request_timeout: std::time::Duration,
    /// A connection whose request headers are not complete by then is closed (slow-loris).
    pub header_read_timeout: std::time::Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_requests_inflight: 100,
            max_streams: 100,
            request_timeout: std::time::Duration::from_secs(60),
            header_read_timeout: std::time::Duration::from_secs(10),
        }
    }
}

/// Whether a request streams for as long as the client wants: exempt from the request timeout.
fn is_stream(req: &http::Request<axum::body::Body>) -> bool {
    let path = req.uri().path();
    let follow = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .any(|p| matches!(p, "follow=true" | "follow=1"));
    path.starts_with("/exec/")
        || path == "/images/load"
        || (path.starts_with("/containerLogs/") && follow)
}

/// In-flight slots of the endpoint.
struct Gate {
    limits: Limits,
    requests: std::sync::Arc<tokio::sync::Semaphore>,
    streams: std::sync::Arc<tokio::sync::Semaphore>,
}

impl Gate {
    fn new(limits: Limits) -> std::sync::Arc<Gate> {
        std::sync::Arc::new(Gate {
            requests: std::sync::Arc::new(tokio::sync::Semaphore::new(
                limits.max_requests_inflight,
            )),
            streams: std::sync::Arc::new(tokio::sync::Semaphore::new(limits.max_streams)),
            limits,
        })
    }

    /// Serves `req` with `app` within the limits.
    async fn serve(
        &self,
        app: Router,
        req: http::Request<axum::body::Body>,
    ) -> axum::response::Response {
        let stream = is_stream(&req);
        let sem = if stream {
            &self.streams
        } else {
            &self.requests
        };
        let Ok(permit) = sem.clone().try_acquire_owned() else {
            let mut resp = text(
                StatusCode::TOO_MANY_REQUESTS,
                "too many requests, please try again later",
            );
            resp.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_static("1"),
            );
            return resp;
        };
        let call = tower::ServiceExt::oneshot(app, req);
        if stream {
            let resp = match call.await {
                Ok(r) => r,
                Err(e) => match e {},
            };
            // The slot is held for as long as the stream's body runs (an upgraded exec has already
            // answered and runs on its own task).
            return resp.map(|b| {
                axum::body::Body::new(Held {
                    inner: b,
                    _permit: permit,
                })
            });
        }
        match tokio::time::timeout(self.limits.request_timeout, call).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => match e {},
            Err(_) => text(
                StatusCode::GATEWAY_TIMEOUT,
                "request did not complete within the allotted timeout",
            ),
        }
    }
}

/// A response body that holds an in-flight slot while it streams.
struct Held {
    inner: axum::body::Body,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl hyper::body::Body for Held {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// [`serve_tls`] with explicit [`Limits`].
pub async fn serve_tls_with(
    listener: tokio::net::TcpListener,
    tls: std::sync::Arc<rustls::ServerConfig>,
    state: AgentState,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let app = router(state);
    let header_read_timeout = limits.header_read_timeout;
    let gate = Gate::new(limits);
    let mut incoming = std::pin::pin!(pki::net::incoming(listener, tls));
    let conns = tokio_util::task::TaskTracker::new();
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            s = incoming.next() => match s {
                Some(Ok(s)) => s,
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "agent https accept failed");
                    continue;
                }
                None => break,
            },
        };
        let caller = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|c| pki::identity_of(c).ok());
        let allowed = caller
            .as_ref()
            .is_some_and(|id| id.user == pki::APISERVER_USER);
        let app = if allowed {
            app.clone()
        } else {
            let who = caller.map(|c| c.user).unwrap_or_default();
            tracing::warn!(user = %who, "refused a caller that is not the API server");
            forbidden(who)
        };
        let shutdown = shutdown.clone();
        let gate = gate.clone();
        conns.spawn(async move {
            let svc =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let app = app.clone();
                    let gate = gate.clone();
                    async move {
                        let req = req.map(axum::body::Body::new);
                        Ok::<_, std::convert::Infallible>(gate.serve(app, req).await)
                    }
                });
            let mut builder = hyper::server::conn::http1::Builder::new();
            // Drives the header read timeout: a client that never finishes its request headers
            // (slow-loris) is dropped instead of holding a connection and a task forever.
            builder.timer(hyper_util::rt::TokioTimer::new());
            builder.header_read_timeout(header_read_timeout);
            let conn = builder
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .with_upgrades();
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "agent https connection ended");
                    }
                }
                _ = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), conn).await;
                }
            }
        });
    }
    conns.close();
    conns.wait().await;
}

/// The answer to every request of a caller that is not the API server.
fn forbidden(user: String) -> Router {
    let msg = format!(
        "Forbidden (user={user}, verb=*, resource=nodes, subresource=proxy): only the API server may call the node agent"
    );
    Router::new().fallback(move || {
        let msg = msg.clone();
        async move { text(StatusCode::FORBIDDEN, msg) }
    })
}

/// Serves the endpoint over plain HTTP on `listener` until `shutdown` (tests that need no TLS).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AgentState,
    shutdown: CancellationToken,
) {
    let app = router(state);
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
    {
        tracing::error!(error = %e, "agent http server failed");
    }
}

fn text(code: StatusCode, msg: impl Into<String>) -> axum::response::Response {
    axum::response::IntoResponse::into_response((
        code,
        [("content-type", "text/plain")],
        msg.into(),
    ))
}

/// Largest image tar `POST /images/load` accepts: the API server's bound on the same upload
/// (`nodes/{node}/proxy/images/load`), enforced again here since the agent writes it to disk.
pub const MAX_IMAGE_LOAD_BYTES: u64 = 8 << 30;

/// Why an upload was not received whole.
#[derive(Debug, thiserror::Error)]
enum ReceiveError {
    #[error("image tar larger than {0} bytes")]
    TooLarge(u64),
    #[error("reading the upload failed: {0}")]
    Body(#[source] axum::Error),
    #[error("writing the upload failed: {0}")]
    Write(#[source] std::io::Error),
}

/// Streams `body` into `out`, refusing it as soon as it passes `limit` bytes (a declared
/// Content-Length over the limit is refused before anything is read).
async fn receive(
    headers: &http::HeaderMap,
    body: axum::body::Body,
    out: &mut (impl tokio::io::AsyncWrite + Unpin),
    limit: u64,
) -> Result<u64, ReceiveError> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|l| l > limit) {
        return Err(ReceiveError::TooLarge(limit));
    }
    let mut stream = body.into_data_stream();
    let mut total = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(ReceiveError::Body)?;
        total += chunk.len() as u64;
        if total > limit {
            return Err(ReceiveError::TooLarge(limit));
        }
        out.write_all(&chunk).await.map_err(ReceiveError::Write)?;
    }
    out.flush().await.map_err(ReceiveError::Write)?;
    Ok(total)
}

/// `POST /images/load`: the body is an OCI layout or `docker save` tar of at most
/// [`MAX_IMAGE_LOAD_BYTES`]; answers the imported names as JSON, 413 for a larger body.
async fn load_images(
    State(state): State<AgentState>,
    headers: http::HeaderMap,
    body: axum::body::Body,
) -> axum::response::Response {
    // In the store's scratch directory: on its filesystem, not a RAM-backed /tmp.
    let tmp = state.images.scratch_path("-load.tar");
    let res: Result<Vec<String>, (StatusCode, String)> = async {
        let bad = |e: String| (StatusCode::BAD_REQUEST, format!("image load failed: {e}"));
        let mut f = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| bad(e.to_string()))?;
        match receive(&headers, body, &mut f, MAX_IMAGE_LOAD_BYTES).await {
            Ok(_) => {}
            Err(e @ ReceiveError::TooLarge(_)) => {
                return Err((StatusCode::PAYLOAD_TOO_LARGE, e.to_string()))
            }
            Err(e) => return Err(bad(e.to_string())),
        }
        drop(f);
        let (images, path) = (state.images.clone(), tmp.clone());
        let recs = tokio::task::spawn_blocking(move || images.import_path(&path))
            .await
            .map_err(|e| bad(e.to_string()))?
            .map_err(|e| bad(e.to_string()))?;
        Ok(recs.into_iter().map(|r| r.name).collect())
    }
    .await;
    let _ = tokio::fs::remove_file(&tmp).await;
    match res {
        Ok(names) => json(serde_json::json!({"images": names})),
        Err((code, msg)) => text(code, msg),
    }
}

fn json(v: serde_json::Value) -> axum::response::Response {
    axum::response::IntoResponse::into_response((
        [("content-type", "application/json")],
        v.to_string(),
    ))
}

async fn list_images(State(state): State<AgentState>) -> axum::response::Response {
    let list: Vec<serde_json::Value> = state
        .images
        .list()
        .into_iter()
        .map(|r| serde_json::json!({"name": r.name, "id": r.config_digest, "layers": r.layers.len()}))
        .collect();
    json(serde_json::json!({"images": list}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn slow_app(release: std::sync::Arc<tokio::sync::Notify>) -> Router {
        Router::new()
            .route(
                "/slow",
                get(move || {
                    let release = release.clone();
                    async move {
                        release.notified().await;
                        "done"
                    }
                }),
            )
            .route("/healthz", get(|| async { "ok" }))
            .route("/exec/{ns}/{pod}", get(|| async { "stream" }))
    }

    fn get_req(path: &str) -> http::Request<axum::body::Body> {
        http::Request::get(path)
            .body(axum::body::Body::empty())
            .unwrap()
    }

    #[test]
    fn streams_are_exec_follow_logs_and_image_loads() {
        assert!(is_stream(&get_req("/exec/d/p/c?command=sh")));
        assert!(is_stream(&get_req("/containerLogs/d/p/c?follow=true")));
        assert!(is_stream(&get_req("/images/load")));
        assert!(!is_stream(&get_req("/containerLogs/d/p/c?tailLines=5")));
        assert!(!is_stream(&get_req("/images")));
        assert!(!is_stream(&get_req("/healthz")));
    }

    #[tokio::test]
    async fn over_the_in_flight_limit_is_429_and_slow_requests_time_out() {
        let release = std::sync::Arc::new(tokio::sync::Notify::new());
        let gate = Gate::new(Limits {
            max_requests_inflight: 1,
            max_streams: 1,
            request_timeout: Duration::from_millis(200),
            ..Limits::default()
        });
        let app = slow_app(release.clone());
        let g = gate.clone();
        let a = app.clone();
        let held = tokio::spawn(async move { g.serve(a, get_req("/slow")).await.status() });
        // Wait until the slow request holds the only slot.
        for _ in 0..100 {
            if gate.requests.available_permits() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let busy = gate.serve(app.clone(), get_req("/healthz")).await;
        assert_eq!(busy.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(busy.headers()[http::header::RETRY_AFTER], "1");
        // Streams have their own slots.
        let s = gate.serve(app.clone(), get_req("/exec/d/p")).await;
        assert_eq!(s.status(), StatusCode::OK);
        assert_eq!(held.await.unwrap(), StatusCode::GATEWAY_TIMEOUT);
        // The timed-out request gave its slot back.
        let ok = gate.serve(app, get_req("/healthz")).await;
        assert_eq!(ok.status(), StatusCode::OK);
    }

    fn headers(len: Option<u64>) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        if let Some(l) = len {
            h.insert(http::header::CONTENT_LENGTH, l.into());
        }
        h
    }

    #[tokio::test]
    async fn uploads_past_the_limit_are_refused_while_streaming() {
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![Ok(vec![1; 6]), Ok(vec![2; 6])];
        let body = axum::body::Body::from_stream(futures::stream::iter(chunks));
        let mut out = Vec::new();
        let err = receive(&headers(None), body, &mut out, 10)
            .await
            .unwrap_err();
        assert!(matches!(err, ReceiveError::TooLarge(10)), "{err}");
        assert_eq!(err.to_string(), "image tar larger than 10 bytes");
        assert_eq!(out.len(), 6, "nothing past the limit is written");
    }

    #[tokio::test]
    async fn a_declared_length_past_the_limit_is_refused_unread() {
        let mut out = Vec::new();
        let body = axum::body::Body::from(vec![0u8; 4]);
        let err = receive(&headers(Some(11)), body, &mut out, 10)
            .await
            .unwrap_err();
        assert!(matches!(err, ReceiveError::TooLarge(10)), "{err}");
        assert!(out.is_empty());
        let body = axum::body::Body::from(vec![7u8; 10]);
        assert_eq!(
            receive(&headers(Some(10)), body, &mut out, 10)
                .await
                .unwrap(),
            10
        );
        assert_eq!(out, vec![7u8; 10]);
    }
}
