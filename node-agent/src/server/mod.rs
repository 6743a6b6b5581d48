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

/// `POST /images/load`: the body is an OCI layout or `docker save` tar; answers the imported names as JSON.
async fn load_images(
    State(state): State<AgentState>,
    body: axum::body::Body,
) -> axum::response::Response {
    let tmp = std::env::temp_dir().join(format!("berth-load-{}.tar", uuid::Uuid::new_v4()));
    let res: anyhow::Result<Vec<String>> = async {
        let mut f = tokio::fs::File::create(&tmp).await?;
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            f.write_all(&chunk?).await?;
        }
        f.flush().await?;
        drop(f);
        let (images, path) = (state.images.clone(), tmp.clone());
        let recs = tokio::task::spawn_blocking(move || images.import_path(&path)).await??;
        Ok(recs.into_iter().map(|r| r.name).collect())
    }
    .await;
    let _ = tokio::fs::remove_file(&tmp).await;
    match res {
        Ok(names) => json(serde_json::json!({"images": names})),
        Err(e) => text(StatusCode::BAD_REQUEST, format!("image load failed: {e}")),
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
