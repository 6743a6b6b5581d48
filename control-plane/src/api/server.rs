//! The HTTP server: one axum service whose fallback handler routes every request, served over a
//! listener the caller binds (plain HTTP/1.1, with upgrades for exec).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse as _, Response};
use axum::Router;
use http::Request;
use tokio_util::sync::CancellationToken;

use super::authn;
use super::authz::{self, Authorizer, Decision, UserInfo};
use super::handlers::{handle, ApiConfig, ApiState};
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

/// [`serve`] with explicit settings. With a PKI in `config` the port is HTTPS and every request is
/// authenticated and authorized; without one (in-process tests) it is plain HTTP and every request
/// acts as a cluster admin.
///
/// # Errors
/// When the listener fails.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    store: Arc<dyn ObjectStore>,
    config: ApiConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let pki = config.pki.clone();
    let authorizer = Authorizer::new(store.clone());
    let state = Arc::new(ApiState {
        store,
        config,
        shutdown: shutdown.clone(),
    });
    let Some(pki) = pki else {
        let app = Router::new()
            .fallback(
                |State(state): State<Arc<ApiState>>, mut req: Request<Body>| async move {
                    req.extensions_mut().insert(superuser());
                    handle(state, req).await
                },
            )
            .with_state(state);
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await?;
        return Ok(());
    };
    // Every member serving the API keeps its own RBAC cache current.
    tokio::spawn(authorizer.clone().run(shutdown.clone()));
    let local = listener.local_addr()?;
    let tls = TlsListener {
        incoming: Box::pin(pki::net::incoming(listener, pki.api_server_config()?)),
        local,
    };
    tracing::info!(addr = %local, "serving the Kubernetes API over HTTPS");
    let secure = Arc::new(Secure {
        pki,
        authorizer,
        state,
    });
    let app = Router::new()
        .fallback(
            |State(secure): State<Arc<Secure>>,
             ConnectInfo(peer): ConnectInfo<Peer>,
             req: Request<Body>| async move { secure.handle(peer, req).await },
        )
        .with_state(secure);
    axum::serve(tls, app.into_make_service_with_connect_info::<Peer>())
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}

/// Who acts when the API runs without TLS (in-process tests): a member of `system:masters`.
fn superuser() -> UserInfo {
    UserInfo {
        name: "berth-admin".into(),
        uid: String::new(),
        groups: vec![pki::GROUP_MASTERS.into(), authn::AUTHENTICATED.into()],
    }
}

/// What a connection's TLS handshake told: the client's address and its verified certificate.
#[derive(Clone, Debug)]
struct Peer {
    identity: Option<pki::Identity>,
}

type TlsStream = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;

/// Finished TLS streams as an axum listener.
struct TlsListener {
    incoming:
        std::pin::Pin<Box<dyn futures::Stream<Item = std::io::Result<TlsStream>> + Send + 'static>>,
    local: std::net::SocketAddr,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream;
    type Addr = Peer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        use futures::StreamExt as _;
        loop {
            match self.incoming.next().await {
                Some(Ok(tls)) => {
                    let identity = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .and_then(|c| pki::identity_of(c).ok());
                    return (tls, Peer { identity });
                }
                Some(Err(e)) => tracing::debug!(error = %e, "TLS accept failed"),
                // The accept loop ended (the listener failed): serve nothing more, but never spin.
                None => std::future::pending::<()>().await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        let _ = self.local;
        Ok(Peer { identity: None })
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// The HTTPS API: authentication and authorization in front of the handlers.
struct Secure {
    pki: Arc<ClusterPki>,
    authorizer: Arc<Authorizer>,
    state: Arc<ApiState>,
}

impl Secure {
    async fn handle(&self, peer: Peer, mut req: Request<Body>) -> Response {
        let user = match authn::authenticate(
            &self.pki,
            self.state.store.as_ref(),
            peer.identity.as_ref(),
            req.headers(),
        )
        .await
        {
            Ok(Some(u)) => u,
            Ok(None) if authn::is_public_path(req.uri().path()) => {
                return handle(self.state.clone(), req).await;
            }
            Ok(None) => return authn::unauthorized().into_response(),
            Err(e) => return e.into_response(),
        };
        // system:masters is allowed everything, as kube-apiserver's superuser group; it is also the
        // hot path of every controller-like client, so it skips the RBAC lookup.
        if !user.groups.iter().any(|g| g == pki::GROUP_MASTERS) {
            let attrs = authz::attributes(req.method(), req.uri());
            if let Decision::Deny(why) = self.authorizer.authorize(&user, &attrs).await {
                tracing::debug!(user = %user.name, verb = %attrs.verb, resource = %attrs.resource,
                    reason = %why, "forbidden");
                return forbidden(&user, &attrs);
            }
        }
        req.extensions_mut().insert(user);
        // Reviews and the escalation check reuse this cache instead of reading the store.
        req.extensions_mut().insert(self.authorizer.clone());
        handle(self.state.clone(), req).await
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
