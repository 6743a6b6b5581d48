//! `store-bench`: write throughput and latency of a 3-member berth store (fsync on, loopback) next to a
//! 3-member etcd, both driven over gRPC to their leader with 256-byte values by 1, 16 and 64 clients.
//! Writes `bench-results/store.md` (markdown table + JSON).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use control_plane::store::{Batch, Op, Precondition, RaftStore};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};

// The same allocator as berth-server, so the benchmark measures what a member runs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CLIENTS: [usize; 3] = [1, 16, 64];
const ROUNDS: usize = 3;
const VALUE_BYTES: usize = 256;

/// `etcdserverpb.PutRequest`, the two fields the benchmark sets.
#[derive(Clone, PartialEq, prost::Message)]
struct PutRequest {
    #[prost(bytes = "vec", tag = "1")]
    key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

/// `etcdserverpb.ResponseHeader`.
#[derive(Clone, PartialEq, prost::Message)]
struct ResponseHeader {
    #[prost(uint64, tag = "1")]
    cluster_id: u64,
    #[prost(uint64, tag = "2")]
    member_id: u64,
}

/// `etcdserverpb.PutResponse` (fields other than the header are skipped).
#[derive(Clone, PartialEq, prost::Message)]
struct PutResponse {
    #[prost(message, optional, tag = "1")]
    header: Option<ResponseHeader>,
}

/// `etcdserverpb.StatusRequest`.
#[derive(Clone, PartialEq, prost::Message)]
struct EtcdStatusRequest {}

/// `etcdserverpb.StatusResponse`: who answers and who leads.
#[derive(Clone, PartialEq, prost::Message)]
struct EtcdStatusResponse {
    #[prost(message, optional, tag = "1")]
    header: Option<ResponseHeader>,
    #[prost(uint64, tag = "4")]
    leader: u64,
}

async fn unary<Req, Resp>(channel: Channel, path: &'static str, req: Req) -> anyhow::Result<Resp>
where
    Req: prost::Message + Send + Sync + 'static,
    Resp: prost::Message + Default + Send + Sync + 'static,
{
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.context("channel not ready")?;
    let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
    let resp = grpc
        .unary(
            tonic::Request::new(req),
            http::uri::PathAndQuery::from_static(path),
            codec,
        )
        .await
        .map_err(|s| anyhow::anyhow!("{path}: {}", s.message()))?;
    Ok(resp.into_inner())
}

fn channel(addr: &str) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))?
        .tcp_nodelay(true)
        .connect_lazy())
}

/// The part of a `Committed` answer the benchmark client needs (other fields are skipped unparsed).
#[derive(serde::Deserialize)]
struct Acked {
    revision: u64,
}

/// Client connections to the leader, shared round-robin by the clients (etcd's benchmark tool has
/// `--conns` for the same reason: one HTTP/2 connection serializes every stream's frames).
const CONNECTIONS: usize = 4;

fn channels(addr: &str) -> anyhow::Result<Vec<Channel>> {
    (0..CONNECTIONS).map(|_| channel(addr)).collect()
}

#[derive(Debug, Clone, serde::Serialize)]
struct Row {
    system: String,
    clients: usize,
    writes: usize,
    errors: usize,
    seconds: f64,
    writes_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// Runs `clients` loops of `op` for `secs`, collecting per-write latency.
async fn measure<F, Fut>(system: &str, clients: usize, secs: f64, op: F) -> Row
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let op = Arc::new(op);
    let stop = CancellationToken::new();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let op = op.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(4096);
            let mut errors = 0usize;
            // Bounded by time (the stop token) and by count.
            for i in 0..10_000_000usize {
                if stop.is_cancelled() {
                    break;
                }
                let t = Instant::now();
                match op(c, i).await {
                    Ok(()) => lat.push(t.elapsed()),
                    Err(e) => {
                        errors += 1;
                        if errors < 3 {
                            eprintln!("write failed: {e:#}");
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            (lat, errors)
        }));
    }
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.cancel();
    let mut lat = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.expect("client task");
        lat.extend(l);
        errors += e;
    }
    let seconds = start.elapsed().as_secs_f64();
    lat.sort();
    let pct = |p: f64| {
        if lat.is_empty() {
            0.0
        } else {
            lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)].as_secs_f64() * 1000.0
        }
    };
    let row = Row {
        system: system.to_string(),
        clients,
        writes: lat.len(),
        errors,
        seconds,
        writes_per_sec: lat.len() as f64 / seconds,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    };
    eprintln!(
        "{:>6} clients={:>2} writes/s={:>8.0} p50={:.2}ms p99={:.2}ms errors={}",
        row.system, row.clients, row.writes_per_sec, row.p50_ms, row.p99_ms, row.errors
    );
    row
}

fn value_json(c: usize, i: usize) -> serde_json::Value {
    // About VALUE_BYTES of JSON, like a small ConfigMap.
    let name = format!("c{c}-{i}");
    let pad = VALUE_BYTES.saturating_sub(60 + name.len());
    json!({"kind": "ConfigMap", "metadata": {"name": name}, "data": {"v": "x".repeat(pad)}})
}

struct BerthCluster {
    stores: Vec<Arc<RaftStore>>,
    addrs: Vec<String>,
    stop: CancellationToken,
    _dir: TempDir,
}

async fn berth_cluster() -> anyhow::Result<BerthCluster> {
    let dir = TempDir::new()?;
    let stop = CancellationToken::new();
    let stores = control_plane::store::loopback::start_cluster(dir.path(), 3, "b", &stop).await?;
    let mut addrs = Vec::new();
    for s in &stores {
        addrs.push(s.members().by_id[&s.id()].peer_addr.clone());
    }
    Ok(BerthCluster {
        stores,
        addrs,
        stop,
        _dir: dir,
    })
}

async fn berth_leader(c: &BerthCluster) -> anyhow::Result<usize> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(i) = c.stores.iter().position(|s| {
            use control_plane::store::ObjectStore;
            s.is_leader()
        }) {
            return Ok(i);
        }
        if Instant::now() > deadline {
            bail!("berth cluster elected no leader");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Etcd {
    children: Vec<Child>,
    clients: Vec<String>,
    _dir: TempDir,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A scratch directory removed on drop (tempfile is only a dev-dependency).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> anyhow::Result<Self> {
        let p = std::env::temp_dir().join(format!(
            "store-bench-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&p)?;
        Ok(TempDir(p))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn start_etcd(bin: &Path) -> anyhow::Result<Etcd> {
    let dir = TempDir::new()?;
    let mut peers = Vec::new();
    let mut clients = Vec::new();
    for _ in 0..3 {
        peers.push(format!("127.0.0.1:{}", free_port()?));
        clients.push(format!("127.0.0.1:{}", free_port()?));
    }
    let initial: Vec<String> = peers
        .iter()
        .enumerate()
        .map(|(i, p)| format!("e{}=http://{p}", i + 1))
        .collect();
    let mut children = Vec::new();
    for i in 0..3 {
        let child = Command::new(bin)
            .arg("--name")
            .arg(format!("e{}", i + 1))
            .arg("--data-dir")
            .arg(dir.path().join(format!("e{}", i + 1)))
            .arg("--listen-client-urls")
            .arg(format!("http://{}", clients[i]))
            .arg("--advertise-client-urls")
            .arg(format!("http://{}", clients[i]))
            .arg("--listen-peer-urls")
            .arg(format!("http://{}", peers[i]))
            .arg("--initial-advertise-peer-urls")
            .arg(format!("http://{}", peers[i]))
            .arg("--initial-cluster")
            .arg(initial.join(","))
            .arg("--initial-cluster-state")
            .arg("new")
            .arg("--initial-cluster-token")
            .arg("berth-bench")
            .arg("--log-level")
            .arg("error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("failed to start {}", bin.display()))?;
        children.push(child);
    }
    Ok(Etcd {
        children,
        clients,
        _dir: dir,
    })
}

async fn etcd_leader(e: &Etcd) -> anyhow::Result<usize> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for (i, addr) in e.clients.iter().enumerate() {
            let res: anyhow::Result<EtcdStatusResponse> = unary(
                channel(addr)?,
                "/etcdserverpb.Maintenance/Status",
                EtcdStatusRequest {},
            )
            .await;
            if let Ok(s) = res {
                if s.leader != 0 && s.header.map(|h| h.member_id) == Some(s.leader) {
                    return Ok(i);
                }
            }
        }
        if Instant::now() > deadline {
            bail!("etcd elected no leader");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Per system and client count, the round with the median throughput.
fn medians(all: &[Row], clients: &[usize]) -> Vec<Row> {
    let mut out = Vec::new();
    for system in ["berth", "etcd"] {
        for &n in clients {
            let mut these: Vec<Row> = all
                .iter()
                .filter(|r| r.system == system && r.clients == n)
                .cloned()
                .collect();
            these.sort_by(|a, b| a.writes_per_sec.total_cmp(&b.writes_per_sec));
            if !these.is_empty() {
                out.push(these[these.len() / 2].clone());
            }
        }
    }
    out
}

fn markdown(rows: &[Row], ratio64: Option<f64>, note: &str) -> String {
    let mut s = String::new();
    s.push_str("# Store write benchmark: berth vs etcd\n\n");
    s.push_str(
        "3 members on 127.0.0.1, fsync on, one machine (2 cores). Each client writes 256-byte values to new keys \
         over gRPC to the leader (berth: `RaftPeer/Propose` with a one-op batch; etcd 3.4: `KV/Put`), \
         one write in flight per client, for a fixed time per row. Produced by `cargo run --release --bin store-bench`.\n\n",
    );
    s.push_str("| system | clients | writes/s | p50 ms | p99 ms | writes | errors |\n|---|---:|---:|---:|---:|---:|---:|\n");
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {:.0} | {:.2} | {:.2} | {} | {} |\n",
            r.system, r.clients, r.writes_per_sec, r.p50_ms, r.p99_ms, r.writes, r.errors
        ));
    }
    if let Some(r) = ratio64 {
        s.push_str(&format!(
            "\nberth / etcd throughput at 64 clients: **{r:.2}x**\n"
        ));
    }
    if !note.is_empty() {
        s.push_str(&format!("\n{note}\n"));
    }
    s.push_str("\n```json\n");
    s.push_str(
        &serde_json::to_string_pretty(&json!({"rows": rows, "ratio_64_clients": ratio64}))
            .expect("json"),
    );
    s.push_str("\n```\n");
    s
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let secs: f64 = std::env::var("STORE_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let out: PathBuf = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("bench-results/store.md"));
    // Profiling aids: STORE_BENCH_CLIENTS=64 and STORE_BENCH_ETCD=0 narrow the run.
    let clients_list: Vec<usize> = std::env::var("STORE_BENCH_CLIENTS")
        .ok()
        .map(|s| s.split(',').filter_map(|c| c.trim().parse().ok()).collect())
        .unwrap_or_else(|| CLIENTS.to_vec());
    let run_etcd = std::env::var("STORE_BENCH_ETCD")
        .map(|v| v != "0")
        .unwrap_or(true);
    let rounds: usize = std::env::var("STORE_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(ROUNDS);

    let cluster = berth_cluster().await?;
    let l = berth_leader(&cluster).await?;
    let berth_channels = channels(&cluster.addrs[l])?;
    let mut note = String::new();
    let etcd_bin =
        PathBuf::from(std::env::var("ETCD_BIN").unwrap_or_else(|_| "/usr/bin/etcd".into()));
    // Both clusters stay up and the rows interleave, so a noisy moment on the shared CPUs hits
    // both systems alike; each row reports the median round.
    let mut etcd = None;
    if !run_etcd {
        note = "etcd skipped (STORE_BENCH_ETCD=0)".into();
    } else if etcd_bin.exists() {
        let e = start_etcd(&etcd_bin)?;
        match etcd_leader(&e).await {
            Ok(l) => {
                let chs = channels(&e.clients[l])?;
                etcd = Some((e, chs));
            }
            Err(err) => note = format!("etcd comparison not made: {err:#}"),
        }
    } else {
        note = format!("etcd comparison not made: {} not found", etcd_bin.display());
    }
    let mut runs: Vec<Row> = Vec::new();
    for round in 0..rounds {
        for &clients in &clients_list {
            let chs = berth_channels.clone();
            let prefix = format!("r{round}n{clients}");
            let row = measure("berth", clients, secs, move |c, i| {
                let ch = chs[c % chs.len()].clone();
                let key = format!("/core/configmaps/{prefix}/c{c}-{i}");
                async move {
                    let batch = Batch::one(Op::Put {
                        key,
                        value: value_json(c, i),
                        precondition: Precondition::None,
                    });
                    let mut client = proto::raftpb::raft_peer_client::RaftPeerClient::new(ch);
                    let resp = client
                        .propose(proto::raftpb::ProposeRequest {
                            batch: serde_json::to_vec(&batch)?,
                        })
                        .await
                        .map_err(|s| anyhow::anyhow!("propose: {}", s.message()))?;
                    // Like etcd's client reading only the header, skip the stored object in the answer.
                    let r: Result<Acked, control_plane::store::Error> =
                        serde_json::from_slice(&resp.into_inner().result)?;
                    anyhow::ensure!(r?.revision > 0, "acknowledged without a revision");
                    Ok(())
                }
            })
            .await;
            runs.push(row);
            if let Some((_, chs)) = &etcd {
                let chs = chs.clone();
                let prefix = format!("/r{round}n{clients}");
                let row = measure("etcd", clients, secs, move |c, i| {
                    let ch = chs[c % chs.len()].clone();
                    let req = PutRequest {
                        key: format!("{prefix}/c{c}-{i}").into_bytes(),
                        value: vec![b'x'; VALUE_BYTES],
                    };
                    async move {
                        let _: PutResponse = unary(ch, "/etcdserverpb.KV/Put", req).await?;
                        Ok(())
                    }
                })
                .await;
                runs.push(row);
            }
        }
    }
    cluster.stop.cancel();
    for s in &cluster.stores {
        s.shutdown().await;
    }
    drop(cluster);
    drop(etcd);
    let rows = medians(&runs, &clients_list);
    if rounds > 1 {
        note = format!(
            "{note}\n\nEach row is the median (by writes/s) of {rounds} interleaved rounds."
        );
    }

    // Other work on the machine skews both systems; record how busy it was.
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        let load = load
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ");
        note = format!("{note}\n\nLoad average at the end of the run: {load} (2 cores).")
            .trim()
            .to_string();
    }
    let tput = |sys: &str| {
        rows.iter()
            .find(|r| r.system == sys && r.clients == 64)
            .map(|r| r.writes_per_sec)
    };
    let ratio = match (tput("berth"), tput("etcd")) {
        (Some(b), Some(e)) if e > 0.0 => Some(b / e),
        _ => None,
    };
    if let Some(r) = ratio {
        eprintln!("berth/etcd at 64 clients: {r:.2}x");
    }
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&out, markdown(&rows, ratio, &note))?;
    eprintln!("wrote {}", out.display());
    Ok(())
}
