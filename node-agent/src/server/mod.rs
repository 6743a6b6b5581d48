//! The agent's HTTP endpoint (port 10250): container logs, exec over WebSocket (`v5.channel.k8s.io`), and
//! image import, as the API server proxies them for `kubectl logs`, `kubectl exec` and `berthctl image load`.

mod exec;
mod logs;

use crate::agent::AgentState;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

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
    let app = router(state);
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
        conns.spawn(async move {
            let svc =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let app = app.clone();
                    async move {
                        let req = req.map(axum::body::Body::new);
                        tower::ServiceExt::oneshot(app, req).await
                    }
                });
            let conn = hyper::server::conn::http1::Builder::new()
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
