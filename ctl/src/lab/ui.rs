//! `lab ui`: the web view for one lab on a loopback port. It serves the page's embedded assets, forwards
//! the page's API calls to the lab's servers with the lab admin's client certificate (so the page needs no
//! login), and runs the fault drills for the page's lab buttons (`/lab/...`).
//!
//! Routing and header decisions are pure ([`route`], [`upstream_headers`], [`try_order`]); the sockets,
//! TLS and drills sit in the `serve`/`forward`/`drill` edges below them.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

use super::drill;
use super::plan::{AdminCredentials, Role};
use super::state::load_required;

/// How long to wait for one server's TCP connect and TLS handshake before trying the next: a killed
/// server refuses at once, a partitioned one never answers, and the page must not hang on it.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1500);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);

/// A fault drill the page can ask for on one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `lab kill`.
    Kill,
    /// `lab restart`.
    Restart,
    /// `lab partition`.
    Partition,
}

/// What a request to the local server is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/` and `/ui`: to `/ui/`, so the page's relative URLs resolve below it.
    Redirect,
    /// A file of the page (the path below `/ui/`).
    Asset(String),
    /// An API request, forwarded to a server unchanged.
    Forward,
    /// `GET /lab/info`: the lab's name and nodes (its presence turns on the page's fault buttons).
    Info,
    /// `POST /lab/{verb}/{node}`.
    Fault(Fault, String),
    /// `POST /lab/heal`: reconnect every partitioned node.
    Heal,
    /// A known path with the wrong method.
    MethodNotAllowed,
    /// An unknown `/lab/` verb.
    BadVerb(String),
    /// Anything else.
    NotFound,
}

/// Decides what a request is for from its method and path (no query).
pub fn route(method: &Method, path: &str) -> Route {
    let below = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
    if path == "/" || path == "/ui" {
        return Route::Redirect;
    }
    if let Some(rest) = path.strip_prefix("/ui/") {
        return match *method {
            Method::GET | Method::HEAD => Route::Asset(rest.to_string()),
            _ => Route::MethodNotAllowed,
        };
    }
    if below("/api") || below("/apis") || below("/berth") || path == "/version" {
        return Route::Forward;
    }
    let Some(rest) = path.strip_prefix("/lab/") else {
        return Route::NotFound;
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let want = |m: Method, r: Route| {
        if *method == m {
            r
        } else {
            Route::MethodNotAllowed
        }
    };
    match parts.as_slice() {
        ["info"] => want(Method::GET, Route::Info),
        ["heal"] => want(Method::POST, Route::Heal),
        [verb, node] if !node.is_empty() => {
            let fault = match *verb {
                "kill" => Fault::Kill,
                "restart" => Fault::Restart,
                "partition" => Fault::Partition,
                other => return Route::BadVerb(other.to_string()),
            };
            want(Method::POST, Route::Fault(fault, node.to_string()))
        }
        _ => Route::NotFound,
    }
}

/// Refuses a listen address off the loopback unless `allow_remote`: whoever reaches the port acts as the
/// lab admin, with no login.
///
/// # Errors
/// When `ip` is not a loopback address and `allow_remote` is false.
pub fn check_address(ip: IpAddr, allow_remote: bool) -> Result<()> {
    if ip.is_loopback() || allow_remote {
        return Ok(());
    }
    bail!(
        "refusing to listen on {ip}: lab ui forwards every request with the lab admin's client certificate \
         and asks for no login, so anyone who reaches the port is cluster admin; use a loopback address, \
         or --allow-remote if you really mean it"
    )
}

/// Headers that describe one hop, not the message (RFC 9110 7.6.1), plus the ones the proxy owns.
fn is_hop_header(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
    )
}

/// The headers to send upstream: the browser's, less hop-by-hop ones and any credentials of its own
/// (the proxy's identity is the admin certificate, and a stale bearer token from the page's login form
/// would otherwise win over it), with `Host` set to the server.
pub fn upstream_headers(from: &HeaderMap, server: SocketAddr) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (k, v) in from {
        if is_hop_header(k) || k == header::AUTHORIZATION || k == header::COOKIE {
            continue;
        }
        out.append(k.clone(), v.clone());
    }
    if let Ok(h) = HeaderValue::from_str(&server.to_string()) {
        out.insert(header::HOST, h);
    }
    out
}

/// The order to try `n` servers in: the last one that answered first, then the rest in turn.
pub fn try_order(n: usize, preferred: usize) -> Vec<usize> {
    (0..n).map(|i| (preferred + i) % n.max(1)).collect()
}

/// The `lab/info` document: the lab's name and its nodes.
pub fn info(name: &str, nodes: &[(String, Role, IpAddr)]) -> serde_json::Value {
    let nodes: Vec<_> = nodes
        .iter()
        .map(|(n, role, ip)| {
            let role = match role {
                Role::Server => "server",
                Role::Agent => "agent",
            };
            json!({"name": n, "role": role, "ip": ip.to_string()})
        })
        .collect();
    json!({"name": name, "nodes": nodes})
}

/// Options of `lab ui`.
#[derive(Debug, Clone)]
pub struct UiOptions {
    /// Lab name.
    pub name: String,
    /// Lab directory (`--dir`).
    pub dir: Option<PathBuf>,
}

type Body = BoxBody<Bytes, hyper::Error>;

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into())
        .map_err(|n: Infallible| match n {})
        .boxed()
}

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

/// Errors are Kubernetes `Status` objects, like the API's own, so the page shows both the same way.
fn status_error(code: StatusCode, message: &str) -> Response<Body> {
    let reason = code.canonical_reason().unwrap_or("Error").replace(' ', "");
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16(),
    });
    reply(code, "application/json", body.to_string())
}

/// Everything the server needs, loaded once at start.
struct Lab {
    name: String,
    dir: Option<PathBuf>,
    nodes: Vec<(String, Role, IpAddr)>,
    servers: Vec<SocketAddr>,
    tls: tokio_rustls::TlsConnector,
    /// Index in `servers` of the last one that took a connection.
    preferred: AtomicUsize,
}

impl Lab {
    fn load(opts: &UiOptions) -> Result<Lab> {
        use base64::Engine as _;
        let state = load_required(&opts.name, opts.dir.as_deref())?;
        let text = std::fs::read_to_string(&state.kubeconfig).with_context(|| {
            format!(
                "failed to read the lab kubeconfig {} (is the lab up?)",
                state.kubeconfig.display()
            )
        })?;
        let creds = AdminCredentials::from_kubeconfig(&text)?;
        let pem = |b64: &str| -> Result<String> {
            let raw = base64::engine::general_purpose::STANDARD.decode(b64)?;
            Ok(String::from_utf8(raw)?)
        };
        pki::install_crypto_provider();
        let cert = pki::CertSource::from_pem(&pem(&creds.cert_data)?, &pem(&creds.key_data)?)?;
        let cfg = pki::client_config(&pem(&creds.ca_data)?, Some(cert), &[b"http/1.1"])?;
        let nodes = state
            .plan
            .nodes
            .iter()
            .map(|n| (n.name.clone(), n.role, IpAddr::V4(n.ip)))
            .collect();
        let servers = state
            .plan
            .servers()
            .map(|s| SocketAddr::new(IpAddr::V4(s.ip), 6443))
            .collect();
        Ok(Lab {
            name: opts.name.clone(),
            dir: opts.dir.clone(),
            nodes,
            servers,
            tls: tokio_rustls::TlsConnector::from(cfg),
            preferred: AtomicUsize::new(0),
        })
    }

    /// A TLS connection to the first server that takes one, in [`try_order`].
    async fn connect(&self) -> Result<(SocketAddr, tokio_rustls::client::TlsStream<TcpStream>)> {
        let mut errors = Vec::new();
        for i in try_order(self.servers.len(), self.preferred.load(Ordering::Relaxed)) {
            let addr = self.servers[i];
            let attempt = async {
                let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
                    .await
                    .context("connect timed out")??;
                tcp.set_nodelay(true)?;
                let name = pki::net::server_name(&addr.ip().to_string())?;
                let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.tls.connect(name, tcp))
                    .await
                    .context("TLS handshake timed out")??;
                anyhow::Ok(tls)
            };
            match attempt.await {
                Ok(s) => {
                    self.preferred.store(i, Ordering::Relaxed);
                    return Ok((addr, s));
                }
                Err(e) => errors.push(format!("{addr}: {e:#}")),
            }
        }
        bail!("no lab server answered ({})", errors.join("; "))
    }

    /// Sends `req` to a server and streams the answer back as it comes (watches never end on their own).
    async fn forward(&self, req: Request<Incoming>) -> Result<Response<Body>> {
        let (addr, stream) = self.connect().await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP handshake")?;
        // The connection task lives as long as the response body: dropping the body (the browser went
        // away) ends it.
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let (parts, body) = req.into_parts();
        let uri = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
            .to_string();
        let mut up = Request::builder()
            .method(parts.method)
            .uri(uri)
            .body(body)?;
        *up.headers_mut() = upstream_headers(&parts.headers, addr);
        let resp = sender.send_request(up).await.context("request")?;
        let (mut parts, body) = resp.into_parts();
        let hop: Vec<HeaderName> = parts
            .headers
            .keys()
            .filter(|k| is_hop_header(k))
            .cloned()
            .collect();
        for k in hop {
            parts.headers.remove(k);
        }
        Ok(Response::from_parts(parts, body.boxed()))
    }

    /// Runs a drill on a blocking thread (the drills wait for processes) and answers with its message.
    async fn drill(&self, fault: Option<(Fault, String)>) -> Response<Body> {
        if let Some((_, node)) = &fault {
            if !self.nodes.iter().any(|(n, _, _)| n == node) {
                return status_error(
                    StatusCode::NOT_FOUND,
                    &format!("lab {} has no node {node:?}", self.name),
                );
            }
        }
        let (name, dir) = (self.name.clone(), self.dir.clone());
        let done = tokio::task::spawn_blocking(move || {
            let dir = dir.as_deref();
            match fault {
                Some((Fault::Kill, n)) => drill::kill(&name, dir, &n),
                Some((Fault::Restart, n)) => drill::restart(&name, dir, &n),
                Some((Fault::Partition, n)) => drill::partition(&name, dir, &n),
                None => drill::heal(&name, dir, None).map(|l| l.join("; ")),
            }
        })
        .await;
        match done {
            Ok(Ok(msg)) => {
                tracing::info!("{msg}");
                reply(
                    StatusCode::OK,
                    "text/plain; charset=utf-8",
                    format!("{msg}\n"),
                )
            }
            Ok(Err(e)) => status_error(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e:#}")),
            Err(e) => status_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        }
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let path = req.uri().path().to_string();
        match route(req.method(), &path) {
            Route::Redirect => {
                let mut r = reply(StatusCode::FOUND, "text/plain", "");
                r.headers_mut()
                    .insert(header::LOCATION, HeaderValue::from_static("/ui/"));
                r
            }
            Route::Asset(p) => match ui::asset(&p) {
                Some(a) => {
                    let mut r = reply(StatusCode::OK, a.content_type, a.body);
                    // The assets change with the binary: never serve a stale page after an upgrade.
                    r.headers_mut()
                        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
                    r
                }
                None => status_error(StatusCode::NOT_FOUND, &format!("no asset {path}")),
            },
            Route::Forward => match self.forward(req).await {
                Ok(r) => r,
                Err(e) => status_error(StatusCode::BAD_GATEWAY, &format!("{e:#}")),
            },
            Route::Info => reply(
                StatusCode::OK,
                "application/json",
                info(&self.name, &self.nodes).to_string(),
            ),
            Route::Fault(f, node) => self.drill(Some((f, node))).await,
            Route::Heal => self.drill(None).await,
            Route::MethodNotAllowed => {
                status_error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
            }
            Route::BadVerb(v) => status_error(
                StatusCode::BAD_REQUEST,
                &format!("unknown lab verb {v:?} (kill, restart, partition, heal)"),
            ),
            Route::NotFound => status_error(StatusCode::NOT_FOUND, &format!("no {path}")),
        }
    }
}

/// Serves the web view of lab `opts.name` on `listener` until `shutdown` completes.
///
/// # Errors
/// When the lab does not exist or its kubeconfig is unusable.
pub async fn serve(
    opts: &UiOptions,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    run(Arc::new(Lab::load(opts)?), listener, shutdown).await;
    Ok(())
}

async fn run(lab: Arc<Lab>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let (tcp, _) = tokio::select! {
            _ = &mut shutdown => return,
            a = listener.accept() => match a {
                Ok(a) => a,
                // Out of descriptors and the like: keep serving the connections that work.
                Err(e) => { tracing::warn!("accept: {e}"); continue; }
            },
        };
        let _ = tcp.set_nodelay(true);
        let lab = lab.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let lab = lab.clone();
                async move { Ok::<_, Infallible>(lab.handle(req).await) }
            });
            // No header or body timeouts: a watch is one response that lasts as long as the page.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}

/// `berthctl lab ui`: binds `addr` (loopback unless `allow_remote`; port 0 picks one), prints the
/// page's URL and serves until Ctrl-C.
///
/// # Errors
/// When the address is refused or taken, or the lab cannot be loaded.
pub async fn ui(opts: &UiOptions, addr: SocketAddr, allow_remote: bool) -> Result<()> {
    check_address(addr.ip(), allow_remote)?;
    // Load before binding and printing, so a missing lab fails instead of printing a URL that cannot work.
    let lab = Arc::new(Lab::load(opts)?);
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("failed to listen on {addr}"))?;
    let local = listener.local_addr()?;
    println!("berth web view: http://{local}/ui/");
    run(lab, listener, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;
    Ok(())
}

#[cfg(test)]
#[path = "ui_tests.rs"]
mod tests;
