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

/// Serves the endpoint on `listener` until `shutdown`.
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
