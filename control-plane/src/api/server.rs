//! The HTTP server: one axum service whose fallback handler routes every request, served over a
//! listener the caller binds (plain HTTP/1.1, with upgrades for exec).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::Router;
use http::Request;
use tokio_util::sync::CancellationToken;

use super::handlers::{handle, ApiConfig, ApiState};
use crate::store::ObjectStore;

/// Serves the Kubernetes API on `listener` until `shutdown` is cancelled, advertising the listener's
/// own address and reaching node agents on port 10250.
///
/// # Errors
/// When the listener fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    store: Arc<dyn ObjectStore>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut config = ApiConfig::default();
    if let Ok(mut addr) = listener.local_addr() {
        // A wildcard bind is no address a client can use; loopback at least is.
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        config.advertise_address = addr.to_string();
    }
    serve_with(listener, store, config, shutdown).await
}

/// [`serve`] with explicit settings.
///
/// # Errors
/// When the listener fails.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    store: Arc<dyn ObjectStore>,
    config: ApiConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let state = Arc::new(ApiState {
        store,
        config,
        shutdown: shutdown.clone(),
    });
    let app = Router::new()
        .fallback(
            |State(state): State<Arc<ApiState>>, req: Request<Body>| async move {
                handle(state, req).await
            },
        )
        .with_state(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}

/// Namespaces every cluster has.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Creates the system namespaces that are missing (`default`, `kube-system`, `kube-public`,
/// `kube-node-lease`). Idempotent and safe to run on every member at start: a namespace someone
/// else created meanwhile is left alone.
///
/// # Errors
/// When the store cannot commit (no leader yet: retry later).
pub async fn bootstrap(store: &dyn ObjectStore) -> Result<(), crate::store::Error> {
    use super::meta::{prepare_create, CreateContext};
    use super::resources::lookup;
    use crate::store::{Batch, Consistency, Error, Op, Precondition};
    let info = lookup("", "v1", "namespaces").expect("namespaces are served");
    for name in SYSTEM_NAMESPACES {
        let key = info.key("", name);
        if store.get(&key, Consistency::Linearizable).await?.is_some() {
            continue;
        }
        let mut ns = serde_json::json!({"metadata": {"name": name}});
        prepare_create(info, &mut ns, None, &CreateContext::fresh())
            .expect("a system namespace is valid");
        let put = Op::Put {
            key,
            value: ns,
            precondition: Precondition::Absent,
        };
        match store.commit(Batch::one(put)).await {
            Ok(_) | Err(Error::PreconditionFailed { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
