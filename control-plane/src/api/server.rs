//! The HTTP server: hyper HTTP/1.1 connections (with upgrades for exec) over a listener the caller
//! binds, each request passing authentication, authorization and the limits before the handlers.

use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse as _, Response};
use futures::StreamExt as _;
use http::Request;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::authn;
use super::authz::{self, Authorizer, Decision, UserInfo};
use super::handlers::handle;
use super::limits::Gate;
use super::state::{ApiConfig, ApiState};
use crate::metrics::{AgentMetrics, MetricsSource};
use crate::security::ClusterPki;
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

/// [`serve`] with explicit settings, usage read from the agents of the stored Nodes
/// ([`AgentMetrics`] with `config`'s PKI and agent port). With a PKI in `config` the port is HTTPS and every request is
/// authenticated and authorized; without one (in-process tests) it is plain HTTP and every request
/// acts as a cluster admin. Either way every request passes the [`Limits`](super::limits::Limits)
/// of `config`.
///
/// # Errors
/// When the listener fails.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    store: Arc<dyn ObjectStore>,
    config: ApiConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let metrics = Arc::new(AgentMetrics::new(store.clone(), config.kubelet_client()));
    serve_with_metrics(listener, store, config, metrics, shutdown).await
}

/// [`serve_with`] with the usage behind `metrics.k8s.io` from `metrics`: the process shares one
/// [`AgentMetrics`] (one scrape cache) between the API and the HPA controller, tests pass a table.
///
/// # Errors
/// When the listener fails.
pub async fn serve_with_metrics(
    listener: tokio::net::TcpListener,
    store: Arc<dyn ObjectStore>,
    config: ApiConfig,
    metrics: Arc<dyn MetricsSource>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let pki = config.pki.clone();
    let gate = Gate::new(config.limits.clone());
    let authorizer = Authorizer::new(store.clone());
    let state = Arc::new(ApiState {
        store,
        config,
        metrics,
        shutdown: shutdown.clone(),
    });
    let Some(pki) = pki else {
        let app = Arc::new(App {
            state,
            gate,
            secure: None,
        });
        let incoming = futures::stream::unfold(listener, |l| async move {
            loop {
                match l.accept().await {
                    Ok((io, _)) => return Some(((io, Peer { identity: None }), l)),
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                }
            }
        });
        serve_connections(Box::pin(incoming), app, shutdown).await;
        return Ok(());
    };
    // Every member serving the API keeps its own RBAC cache current.
    tokio::spawn(authorizer.clone().run(shutdown.clone()));
    let local = listener.local_addr()?;
    let tls = pki::net::incoming(listener, pki.api_server_config()?).filter_map(|r| async move {
        match r {
            Ok(tls) => {
                let identity = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .and_then(|c| pki::identity_of(c).ok());
                Some((tls, Peer { identity }))
            }
            Err(e) => {
                tracing::debug!(error = %e, "TLS accept failed");
                None
            }
        }
    });
    tracing::info!(addr = %local, "serving the Kubernetes API over HTTPS");
    let app = Arc::new(App {
        state,
        gate,
        secure: Some(Secure { pki, authorizer }),
    });
    serve_connections(Box::pin(tls), app, shutdown).await;
    Ok(())
}

/// Serves HTTP/1.1 (with upgrades, for exec) on every connection of `incoming` until `shutdown`,
/// then lets each connection finish its requests and waits for them.
async fn serve_connections<Io>(
    mut incoming: std::pin::Pin<Box<dyn futures::Stream<Item = (Io, Peer)> + Send>>,
    app: Arc<App>,
    shutdown: CancellationToken,
) where
    Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let header_read_timeout = app.gate.limits().header_read_timeout;
    let tracker = TaskTracker::new();
    loop {
        let (io, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            next = incoming.next() => match next {
                Some(c) => c,
                // The accept loop ended (the listener failed): serve nothing more, but never spin.
                None => {
                    shutdown.cancelled().await;
                    break;
                }
            },
        };
        let app = app.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let app = app.clone();
                let peer = peer.clone();
                async move {
                    Ok::<_, std::convert::Infallible>(app.handle(peer, req.map(Body::new)).await)
                }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            // The timer drives the header read timeout: a client that never finishes its request
            // headers (slow-loris) is dropped instead of holding a connection forever.
            builder.timer(hyper_util::rt::TokioTimer::new());
            if !header_read_timeout.is_zero() {
                builder.header_read_timeout(header_read_timeout);
            }
            let conn = builder
                .serve_connection(hyper_util::rt::TokioIo::new(io), svc)
                .with_upgrades();
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    tracker.close();
    tracker.wait().await;
}

/// Who acts when the API runs without TLS (in-process tests): a member of `system:masters`.
fn superuser() -> UserInfo {
    UserInfo {
        name: "berth-admin".into(),
        uid: String::new(),
        groups: vec![pki::GROUP_MASTERS.into(), authn::AUTHENTICATED.into()],
    }
}

/// What a connection's TLS handshake told: the client's verified certificate.
#[derive(Clone, Debug)]
struct Peer {
    identity: Option<pki::Identity>,
}

/// The API behind every connection: authentication and authorization when secure, then the limits,
/// then the handlers.
struct App {
    state: Arc<ApiState>,
    gate: Arc<Gate>,
    secure: Option<Secure>,
}

/// What the HTTPS API needs on top of the handlers.
struct Secure {
    pki: Arc<ClusterPki>,
    authorizer: Arc<Authorizer>,
}

impl App {
    async fn handle(&self, peer: Peer, mut req: Request<Body>) -> Response {
        let Some(secure) = &self.secure else {
            let user = superuser();
            let name = user.name.clone();
            req.extensions_mut().insert(user);
            return self.limited(&name, req).await;
        };
        let user = match authn::authenticate(
            &secure.pki,
            self.state.store.as_ref(),
            peer.identity.as_ref(),
            req.headers(),
        )
        .await
        {
            Ok(Some(u)) => u,
            Ok(None) if authn::is_public_path(req.uri().path()) => {
                return self.limited("system:anonymous", req).await;
            }
            Ok(None) => return authn::unauthorized().into_response(),
            Err(e) => return e.into_response(),
        };
        // system:masters is allowed everything, as kube-apiserver's superuser group; it is also the
        // hot path of every controller-like client, so it skips the RBAC lookup.
        if !user.groups.iter().any(|g| g == pki::GROUP_MASTERS) {
            let attrs = authz::attributes(req.method(), req.uri());
            if let Decision::Deny(why) = secure.authorizer.authorize(&user, &attrs).await {
                tracing::debug!(user = %user.name, verb = %attrs.verb, resource = %attrs.resource,
                    reason = %why, "forbidden");
                return forbidden(&user, &attrs);
            }
        }
        let name = user.name.clone();
        req.extensions_mut().insert(user);
        // Reviews and the escalation check reuse this cache instead of reading the store.
        req.extensions_mut().insert(secure.authorizer.clone());
        self.limited(&name, req).await
    }

    /// The handlers, within the limits; watches count against `user`.
    async fn limited(&self, user: &str, req: Request<Body>) -> Response {
        let state = self.state.clone();
        self.gate
            .serve(user, req, move |req| handle(state, req))
            .await
    }
}

/// 403 with kube-apiserver's message and details.
fn forbidden(user: &UserInfo, attrs: &authz::Attributes) -> Response {
    super::status::json_response(
        http::StatusCode::FORBIDDEN,
        &authz::forbidden_status(user, attrs),
    )
}

/// Namespaces every cluster has.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Creates the system namespaces that are missing (`default`, `kube-system`, `kube-public`,
/// `kube-node-lease`) and the default RBAC roles and bindings. Idempotent and safe to run on every member at start: a namespace someone
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
    // The default ClusterRoles and bindings: without them nobody but system:masters may even discover.
    super::authz::bootstrap(store).await
}
