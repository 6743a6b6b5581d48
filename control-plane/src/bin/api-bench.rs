//! `api-bench`: ConfigMap creates through the Kubernetes API of a 3-member berth cluster, the way
//! `kubectl create` sends them (POST of ~256 bytes of JSON, `application/json`), by 64 clients, each
//! on its own keep-alive connection to the leader's API. Three rows, interleaved over rounds:
//!
//! - `berth-api+tls`: HTTPS with an admin (`system:masters`) client certificate, as berth-server serves;
//! - `berth-api`: a second cluster whose API serves plain HTTP (`ApiConfig::pki = None`, no
//!   authentication); its peer port stays mutual TLS, as `server::run_with_listeners` always sets up;
//! - `etcd+tls`: 3-member etcd 3.4 with TLS and client certificates, `KV/Put` of the same bytes.
//!
//! Writes `bench-results/api.md` (markdown table + JSON).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bytes::Bytes;
use control_plane::api;
use control_plane::security::ClusterPki;
use control_plane::server::{self, Hooks, ServerConfig};
use control_plane::store::RaftStore;
use http_body_util::{BodyExt as _, Full};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[allow(dead_code)]
#[path = "common/mod.rs"]
mod common;

use common::{etcd, measure, Row, TempDir};

// The same allocator as berth-server, so the benchmark measures what a member runs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CLIENTS: usize = 64;
const ROUNDS: usize = 3;
/// Size of each POST body (a ConfigMap's JSON).
const BODY_BYTES: usize = 256;
/// Row names, in table order.
const SYSTEMS: [&str; 3] = ["berth-api+tls", "berth-api", "etcd+tls"];
/// gRPC connections the etcd clients share (as store-bench; kube-apiserver also multiplexes its
/// etcd clients over few HTTP/2 connections).
const ETCD_CONNECTIONS: usize = 4;
const CREATE_PATH: &str = "/api/v1/namespaces/default/configmaps";

/// A ConfigMap of exactly `BODY_BYTES` of JSON (when the name is short enough).
fn configmap(name: &str) -> Bytes {
    let body = |pad: usize| {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
               "data": {"v": "x".repeat(pad)}})
        .to_string()
    };
    let bare = body(0).len();
    Bytes::from(body(BODY_BYTES.saturating_sub(bare)))
}

/// A berth cluster in this process, with the API on every member.
struct ApiCluster {
    apis: Vec<SocketAddr>,
    stores: Vec<Arc<RaftStore>>,
    /// Trusts the cluster CA and presents an admin certificate; `None` when the API is plain HTTP.
    admin_tls: Option<Arc<rustls::ClientConfig>>,
    shutdown: CancellationToken,
    members: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: TempDir,
}

type Started = (Arc<RaftStore>, Arc<ClusterPki>);

/// Starts three members at once, each with an API hook (HTTPS over the member PKI when `tls`, plain
/// HTTP otherwise) and a leader hook that makes the system namespaces, as berth-server does.
async fn api_cluster(tls: bool) -> anyhow::Result<ApiCluster> {
    let dir = TempDir::new(if tls { "api-bench-tls" } else { "api-bench" })?;
    let shutdown = CancellationToken::new();
    let token = pki::Token::generate()?;
    let mut peers = Vec::new();
    let mut apis = Vec::new();
    for _ in 0..3 {
        peers.push(TcpListener::bind("127.0.0.1:0").await?);
        apis.push(TcpListener::bind("127.0.0.1:0").await?);
    }
    let initial: Vec<(String, String)> = peers
        .iter()
        .enumerate()
        .map(|(i, l)| Ok((format!("s{}", i + 1), l.local_addr()?.to_string())))
        .collect::<std::io::Result<_>>()?;
    let mut members = Vec::new();
    let mut started = Vec::new();
    let mut api_addrs = Vec::new();
    for (i, (peer, api_l)) in peers.into_iter().zip(apis).enumerate() {
        let name = format!("s{}", i + 1);
        let api = api_l.local_addr()?;
        let mut config = ServerConfig::new(&name);
        config.data_dir = dir.path().join(&name);
        config.listen_peer = peer.local_addr()?;
        config.listen_api = api;
        config.advertise_api = Some(api.to_string());
        config.initial_cluster = initial.clone();
        // The first member makes the CA with this token; the others fetch it with the same.
        config.token = Some(token.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<Started>();
        let hooks = Hooks {
            api: Some(Box::new(move |ctx, listener, shutdown| {
                let _ = tx.send((ctx.store.clone(), ctx.pki.clone()));
                let config = api::ApiConfig {
                    advertise_address: api.to_string(),
                    pki: tls.then(|| ctx.pki.clone()),
                    ..api::ApiConfig::default()
                };
                let store: Arc<dyn control_plane::store::ObjectStore> = ctx.store.clone();
                Box::pin(api::serve_with(listener, store, config, shutdown))
            })),
            on_leader: Some(Arc::new(|ctx, shutdown| {
                Box::pin(async move {
                    // Bounded by the leader's term (its token) and by count.
                    for _ in 0..600 {
                        if api::bootstrap(ctx.store.as_ref()).await.is_ok() {
                            return;
                        }
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                        }
                    }
                })
            })),
            grpc: None,
        };
        members.push(tokio::spawn(server::run_with_listeners(
            config,
            peer,
            api_l,
            hooks,
            shutdown.child_token(),
        )));
        started.push(rx);
        api_addrs.push(api);
    }
    let mut stores = Vec::new();
    let mut pkis = Vec::new();
    for rx in started {
        let (store, pki) = tokio::time::timeout(Duration::from_secs(60), rx)
            .await
            .context("a member did not start its API within 60 s")?
            .context("a member stopped before serving its API")?;
        stores.push(store);
        pkis.push(pki);
    }
    let admin_tls = if tls {
        let admin = pkis[0].issue_user_cert("bench-admin", &[pki::GROUP_MASTERS])?;
        Some(pki::client_config(
            pkis[0].ca_pem(),
            Some(pki::CertSource::from_pem(&admin.cert_pem, &admin.key_pem)?),
            &[b"http/1.1"],
        )?)
    } else {
        None
    };
    Ok(ApiCluster {
        apis: api_addrs,
        stores,
        admin_tls,
        shutdown,
        members,
        _dir: dir,
    })
}

impl ApiCluster {
    /// The leader's API address, once a leader exists and a create succeeds there (the leader hook
    /// has made the `default` namespace). Waits up to 30 s.
    async fn ready_leader_api(&self) -> anyhow::Result<SocketAddr> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = String::from("no leader");
        for attempt in 0..3000u32 {
            if Instant::now() > deadline {
                break;
            }
            let leader = self.stores.iter().position(|s| {
                use control_plane::store::ObjectStore;
                s.is_leader()
            });
            if let Some(l) = leader {
                let mut conn = Conn::new(self.apis[l], self.admin_tls.clone());
                match conn.create(&format!("ready-{attempt}")).await {
                    Ok(()) => return Ok(self.apis[l]),
                    Err(e) => last = format!("{e:#}"),
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("the berth API did not accept a create within 30 s: {last}")
    }

    async fn stop(self) {
        self.shutdown.cancel();
        for m in self.members {
            // The member gives its tasks 10 s, then closes the store.
            let _ = tokio::time::timeout(Duration::from_secs(20), m).await;
        }
    }
}

/// One client's keep-alive connection to an API, made on first use and again after a failure.
struct Conn {
    addr: SocketAddr,
    tls: Option<Arc<rustls::ClientConfig>>,
    sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
}

impl Conn {
    fn new(addr: SocketAddr, tls: Option<Arc<rustls::ClientConfig>>) -> Self {
        Conn {
            addr,
            tls,
            sender: None,
        }
    }

    async fn connect(
        &self,
    ) -> anyhow::Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
        use hyper::client::conn::http1::handshake;
        use hyper_util::rt::TokioIo;
        let sender = match &self.tls {
            Some(cfg) => {
                let io = pki::net::connect(&self.addr.to_string(), cfg.clone()).await?;
                let (sender, conn) = handshake(TokioIo::new(io)).await?;
                tokio::spawn(conn);
                sender
            }
            None => {
                let tcp = tokio::net::TcpStream::connect(self.addr).await?;
                tcp.set_nodelay(true)?;
                let (sender, conn) = handshake(TokioIo::new(tcp)).await?;
                tokio::spawn(conn);
                sender
            }
        };
        Ok(sender)
    }

    /// POSTs ConfigMap `name`; anything but 201 is an error.
    async fn create(&mut self, name: &str) -> anyhow::Result<()> {
        let mut sender = match self.sender.take() {
            Some(s) if !s.is_closed() => s,
            _ => self.connect().await?,
        };
        sender.ready().await?;
        let req = http::Request::post(CREATE_PATH)
            .header(http::header::HOST, self.addr.to_string())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json")
            .header(http::header::USER_AGENT, "api-bench (kubectl-equivalent)")
            .body(Full::new(configmap(name)))?;
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        // A connection that answered stays in use (keep-alive), whatever the status.
        self.sender = Some(sender);
        if status != http::StatusCode::CREATED {
            bail!(
                "POST {name}: {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            );
        }
        Ok(())
    }
}

/// Ratios at 64 clients: the issue's targets.
#[derive(Debug, Clone, Copy, serde::Serialize)]
struct Ratios {
    /// berth API over HTTPS / etcd with TLS (target ≥ 1.0).
    berth_api_tls_vs_etcd_tls: Option<f64>,
    /// berth API over HTTPS / the same API in plain HTTP (target ≥ 0.85).
    berth_api_tls_vs_berth_api: Option<f64>,
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "not measured".into(), |r| format!("**{r:.2}x**"))
}

fn markdown(rows: &[Row], clients: usize, ratios: &Ratios, note: &str) -> String {
    let mut s = String::new();
    s.push_str("# API create benchmark: berth API (HTTPS, plain HTTP) vs etcd with TLS\n\n");
    s.push_str(&format!(
        "3 members on 127.0.0.1, fsync on, one machine (2 cores). Each client POSTs ConfigMaps \
         (`{CREATE_PATH}`, {BODY_BYTES} bytes of JSON, `application/json`, as `kubectl create` sends) to \
         the leader's API, one request in flight per client, each client on its own HTTP/1.1 keep-alive \
         connection, for a fixed time per row; a write counts when the answer is `201 Created`. \
         `berth-api+tls`: HTTPS with an admin (`system:masters`) client certificate, as berth-server serves \
         it (client-certificate authentication; `system:masters` skips the RBAC lookup). `berth-api`: a second \
         cluster whose API hook passes `pki: None`, so the API is plain HTTP with no authentication; its peer \
         port (replication) still runs mutual TLS, as `server::run_with_listeners` always sets it up. \
         `etcd+tls`: etcd 3.4 with TLS and client certificates on client and peer URLs, `KV/Put` of the same \
         bytes to the leader over {ETCD_CONNECTIONS} shared gRPC connections (what the API stores, without \
         the API: berth also adds metadata — uid, resourceVersion, creationTimestamp — before storing). \
         Produced by `cargo run --release --bin api-bench`.\n\n"
    ));
    s.push_str("| system | clients | creates/s | p50 ms | p99 ms | creates | errors |\n|---|---:|---:|---:|---:|---:|---:|\n");
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {:.0} | {:.2} | {:.2} | {} | {} |\n",
            r.system, r.clients, r.writes_per_sec, r.p50_ms, r.p99_ms, r.writes, r.errors
        ));
    }
    s.push_str(&format!("\nThroughput ratios at {clients} clients:\n\n"));
    s.push_str(&format!(
        "- berth API TLS / etcd TLS: {} (target ≥ 1.0x)\n- berth API TLS / berth API plain (TLS cost): {} (target ≥ 0.85x)\n",
        fmt_ratio(ratios.berth_api_tls_vs_etcd_tls),
        fmt_ratio(ratios.berth_api_tls_vs_berth_api),
    ));
    if !note.is_empty() {
        s.push_str(&format!("\n{note}\n"));
    }
    s.push_str("\n```json\n");
    s.push_str(
        &serde_json::to_string_pretty(&json!({"rows": rows, "ratios": ratios})).expect("json"),
    );
    s.push_str("\n```\n");
    s
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    pki::install_crypto_provider();
    // API_BENCH_* knobs, falling back to store-bench's, narrow the run.
    let secs: f64 = common::knob("API_BENCH_SECS", "STORE_BENCH_SECS").unwrap_or(5.0);
    let rounds: usize = common::knob("API_BENCH_ROUNDS", "STORE_BENCH_ROUNDS").unwrap_or(ROUNDS);
    let clients: usize = common::knob("API_BENCH_CLIENTS", "API_BENCH_CLIENTS").unwrap_or(CLIENTS);
    let out: PathBuf = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("bench-results/api.md"));

    let mut notes: Vec<String> = Vec::new();
    let tls = api_cluster(true).await?;
    let plain = api_cluster(false).await?;
    let tls_api = tls.ready_leader_api().await?;
    let plain_api = plain.ready_leader_api().await?;
    let etcd_bin =
        PathBuf::from(std::env::var("ETCD_BIN").unwrap_or_else(|_| "/usr/bin/etcd".into()));
    let mut etcd = None;
    if etcd_bin.exists() {
        let e = etcd::start(&etcd_bin, true)?;
        match e.leader().await {
            Ok(l) => {
                let chs = e.channels(l, ETCD_CONNECTIONS)?;
                etcd = Some((e, chs));
            }
            Err(err) => notes.push(format!("etcd+tls comparison not made: {err:#}")),
        }
    } else {
        notes.push(format!(
            "etcd comparison not made: {} not found",
            etcd_bin.display()
        ));
    }

    // Every cluster stays up and the rows interleave, so a noisy moment on the shared CPUs hits
    // every system alike; each row reports the median round.
    let mut runs: Vec<Row> = Vec::new();
    for round in 0..rounds {
        for (name, addr, cfg) in [
            ("berth-api+tls", tls_api, tls.admin_tls.clone()),
            ("berth-api", plain_api, None),
        ] {
            let conns: Arc<Vec<tokio::sync::Mutex<Conn>>> = Arc::new(
                (0..clients)
                    .map(|_| tokio::sync::Mutex::new(Conn::new(addr, cfg.clone())))
                    .collect(),
            );
            let row = measure(name, clients, secs, move |c, i| {
                let conns = conns.clone();
                async move {
                    // Each client owns its connection: the lock is never contended.
                    conns[c]
                        .lock()
                        .await
                        .create(&format!("r{round}-c{c}-{i}"))
                        .await
                }
            })
            .await;
            runs.push(row);
        }
        if let Some((_, chs)) = &etcd {
            let chs = chs.clone();
            let row = measure("etcd+tls", clients, secs, move |c, i| {
                let ch = chs[c % chs.len()].clone();
                let name = format!("r{round}-c{c}-{i}");
                let key = format!("/registry/configmaps/default/{name}").into_bytes();
                etcd::put(ch, key, configmap(&name).to_vec())
            })
            .await;
            runs.push(row);
        }
    }
    tls.stop().await;
    plain.stop().await;
    drop(etcd);

    let rows = common::medians(&runs, &SYSTEMS, &[clients]);
    if rounds > 1 {
        notes.push(format!(
            "Each row is the median (by creates/s) of {rounds} interleaved rounds."
        ));
    }
    if let Some(load) = common::load_average() {
        notes.push(format!(
            "Load average at the end of the run: {load} (2 cores, shared with other builds)."
        ));
    }
    let t = |sys: &str| common::throughput(&rows, sys, clients);
    let ratios = Ratios {
        berth_api_tls_vs_etcd_tls: common::ratio(t("berth-api+tls"), t("etcd+tls")),
        berth_api_tls_vs_berth_api: common::ratio(t("berth-api+tls"), t("berth-api")),
    };
    eprintln!("ratios at {clients} clients: {ratios:?}");
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&out, markdown(&rows, clients, &ratios, &notes.join("\n\n")))?;
    eprintln!("wrote {}", out.display());
    Ok(())
}
