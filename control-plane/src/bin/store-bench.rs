//! `store-bench`: write throughput and latency of a 3-member berth store (fsync on, loopback) next to a
//! 3-member etcd, both driven over gRPC to their leader with 256-byte values by 1, 16 and 64 clients,
//! each in plaintext and with TLS (berth: mutual TLS on the peer port as berth-server runs it; etcd:
//! TLS with client certificates on client and peer URLs). Writes `bench-results/store.md`
//! (markdown table + JSON).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use control_plane::store::{Batch, Op, Precondition, RaftStore};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

#[allow(dead_code)]
#[path = "common/mod.rs"]
mod common;

use common::{etcd, measure, Row, TempDir};

// The same allocator as berth-server, so the benchmark measures what a member runs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CLIENTS: [usize; 3] = [1, 16, 64];
const ROUNDS: usize = 3;
const VALUE_BYTES: usize = 256;
/// Row names, in table order.
const SYSTEMS: [&str; 4] = ["berth", "berth+tls", "etcd", "etcd+tls"];

/// The part of a `Committed` answer the benchmark client needs (other fields are skipped unparsed).
#[derive(serde::Deserialize)]
struct Acked {
    revision: u64,
}

/// Client connections to the leader, shared round-robin by the clients (etcd's benchmark tool has
/// `--conns` for the same reason: one HTTP/2 connection serializes every stream's frames).
const CONNECTIONS: usize = 4;

fn value_json(c: usize, i: usize) -> serde_json::Value {
    // About VALUE_BYTES of JSON, like a small ConfigMap.
    let name = format!("c{c}-{i}");
    let pad = VALUE_BYTES.saturating_sub(60 + name.len());
    json!({"kind": "ConfigMap", "metadata": {"name": name}, "data": {"v": "x".repeat(pad)}})
}

struct BerthCluster {
    stores: Vec<Arc<RaftStore>>,
    addrs: Vec<String>,
    /// The client side of the peer port's mutual TLS (a member certificate); `None` in plaintext.
    client_tls: Option<Arc<rustls::ClientConfig>>,
    stop: CancellationToken,
    _dir: TempDir,
}

async fn berth_cluster(tls: bool) -> anyhow::Result<BerthCluster> {
    let dir = TempDir::new("store-bench")?;
    let stop = CancellationToken::new();
    use control_plane::store::loopback;
    let (stores, client_tls) = if tls {
        let c = loopback::start_cluster_tls(dir.path(), 3, "t", &stop).await?;
        (c.stores, Some(c.client_tls))
    } else {
        (
            loopback::start_cluster(dir.path(), 3, "b", &stop).await?,
            None,
        )
    };
    let mut addrs = Vec::new();
    for s in &stores {
        addrs.push(s.members().by_id[&s.id()].peer_addr.clone());
    }
    Ok(BerthCluster {
        stores,
        addrs,
        client_tls,
        stop,
        _dir: dir,
    })
}

impl BerthCluster {
    async fn leader(&self) -> anyhow::Result<usize> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(i) = self.stores.iter().position(|s| {
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

    async fn leader_channels(&self) -> anyhow::Result<Vec<Channel>> {
        let l = self.leader().await?;
        (0..CONNECTIONS)
            .map(|_| etcd::channel(&self.addrs[l], self.client_tls.as_ref()))
            .collect()
    }

    async fn shutdown(self) {
        self.stop.cancel();
        for s in &self.stores {
            s.shutdown().await;
        }
    }
}

/// One berth write: a one-op batch proposed to the leader's peer service.
async fn berth_write(ch: Channel, key: String, c: usize, i: usize) -> anyhow::Result<()> {
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

/// Ratios at 64 clients: the issue's targets.
#[derive(Debug, Clone, Copy, serde::Serialize)]
struct Ratios {
    /// berth / etcd, both plaintext.
    berth_vs_etcd: Option<f64>,
    /// berth+tls / etcd+tls (target ≥ 1.0).
    berth_tls_vs_etcd_tls: Option<f64>,
    /// berth+tls / berth (target ≥ 0.85: TLS costs at most 15%).
    berth_tls_vs_berth: Option<f64>,
    /// etcd+tls / etcd, for reference.
    etcd_tls_vs_etcd: Option<f64>,
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "not measured".into(), |r| format!("**{r:.2}x**"))
}

fn markdown(rows: &[Row], ratios: &Ratios, note: &str) -> String {
    let mut s = String::new();
    s.push_str("# Store write benchmark: berth vs etcd, plaintext and TLS\n\n");
    s.push_str(
        "3 members on 127.0.0.1, fsync on, one machine (2 cores). Each client writes 256-byte values to new keys \
         over gRPC to the leader (berth: `RaftPeer/Propose` with a one-op batch; etcd 3.4: `KV/Put`), \
         one write in flight per client, for a fixed time per row, over 4 shared HTTP/2 connections. \
         `berth+tls`: members replicate over mutual TLS and the client dials the leader's peer port with a \
         member certificate, as berth-server runs (`store::loopback::start_cluster_tls`). `etcd+tls`: \
         `https://` client and peer URLs with `--client-cert-auth` and `--peer-client-cert-auth`, certificates \
         from the pki crate (ECDSA P-256), the client presenting a client certificate. \
         Produced by `cargo run --release --bin store-bench`.\n\n",
    );
    s.push_str("| system | clients | writes/s | p50 ms | p99 ms | writes | errors |\n|---|---:|---:|---:|---:|---:|---:|\n");
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {:.0} | {:.2} | {:.2} | {} | {} |\n",
            r.system, r.clients, r.writes_per_sec, r.p50_ms, r.p99_ms, r.writes, r.errors
        ));
    }
    s.push_str("\nThroughput ratios at 64 clients:\n\n");
    s.push_str(&format!(
        "- berth+tls / etcd+tls: {} (target ≥ 1.0x)\n- berth+tls / berth (TLS cost): {} (target ≥ 0.85x, i.e. TLS costs ≤ 15%)\n- berth / etcd (plaintext): {}\n- etcd+tls / etcd: {}\n",
        fmt_ratio(ratios.berth_tls_vs_etcd_tls),
        fmt_ratio(ratios.berth_tls_vs_berth),
        fmt_ratio(ratios.berth_vs_etcd),
        fmt_ratio(ratios.etcd_tls_vs_etcd),
    ));
    if !note.is_empty() {
        s.push_str(&format!("\n{note}\n"));
    }
    s.push_str("\n```json\n");
    s.push_str(
        &serde_json::to_string_pretty(&json!({"rows": rows, "ratios_64_clients": ratios}))
            .expect("json"),
    );
    s.push_str("\n```\n");
    s
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    pki::install_crypto_provider();
    let secs: f64 = common::knob("STORE_BENCH_SECS", "STORE_BENCH_SECS").unwrap_or(5.0);
    let out: PathBuf = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("bench-results/store.md"));
    // Profiling aids: STORE_BENCH_CLIENTS=64, STORE_BENCH_ETCD=0 and STORE_BENCH_TLS=0 narrow the run.
    let clients_list = common::clients_knob("STORE_BENCH_CLIENTS", "STORE_BENCH_CLIENTS")
        .unwrap_or_else(|| CLIENTS.to_vec());
    let on = |name: &str| std::env::var(name).map(|v| v != "0").unwrap_or(true);
    let (run_etcd, run_tls) = (on("STORE_BENCH_ETCD"), on("STORE_BENCH_TLS"));
    let rounds: usize = common::knob("STORE_BENCH_ROUNDS", "STORE_BENCH_ROUNDS").unwrap_or(ROUNDS);

    let mut berth = vec![("berth", berth_cluster(false).await?)];
    if run_tls {
        berth.push(("berth+tls", berth_cluster(true).await?));
    }
    let mut berth_channels = Vec::new();
    for (name, c) in &berth {
        berth_channels.push((*name, c.leader_channels().await?));
    }
    let mut notes: Vec<String> = Vec::new();
    let etcd_bin =
        PathBuf::from(std::env::var("ETCD_BIN").unwrap_or_else(|_| "/usr/bin/etcd".into()));
    // Every cluster stays up and the rows interleave, so a noisy moment on the shared CPUs hits
    // every system alike; each row reports the median round.
    let mut etcds = Vec::new();
    if !run_etcd {
        notes.push("etcd skipped (STORE_BENCH_ETCD=0)".into());
    } else if etcd_bin.exists() {
        let variants: &[(&str, bool)] = if run_tls {
            &[("etcd", false), ("etcd+tls", true)]
        } else {
            &[("etcd", false)]
        };
        for &(name, tls) in variants {
            let e = etcd::start(&etcd_bin, tls)?;
            match e.leader().await {
                Ok(l) => {
                    let chs = e.channels(l, CONNECTIONS)?;
                    etcds.push((name, e, chs));
                }
                Err(err) => notes.push(format!("{name} comparison not made: {err:#}")),
            }
        }
    } else {
        notes.push(format!(
            "etcd comparison not made: {} not found",
            etcd_bin.display()
        ));
    }
    let mut runs: Vec<Row> = Vec::new();
    for round in 0..rounds {
        for &clients in &clients_list {
            for (name, chs) in &berth_channels {
                let chs = chs.clone();
                let prefix = format!("r{round}n{clients}");
                let row = measure(name, clients, secs, move |c, i| {
                    let ch = chs[c % chs.len()].clone();
                    let key = format!("/core/configmaps/{prefix}/c{c}-{i}");
                    berth_write(ch, key, c, i)
                })
                .await;
                runs.push(row);
            }
            for (name, _, chs) in &etcds {
                let chs = chs.clone();
                let prefix = format!("/r{round}n{clients}");
                let row = measure(name, clients, secs, move |c, i| {
                    let ch = chs[c % chs.len()].clone();
                    etcd::put(
                        ch,
                        format!("{prefix}/c{c}-{i}").into_bytes(),
                        vec![b'x'; VALUE_BYTES],
                    )
                })
                .await;
                runs.push(row);
            }
        }
    }
    for (_, c) in berth {
        c.shutdown().await;
    }
    drop(etcds);
    let rows = common::medians(&runs, &SYSTEMS, &clients_list);
    if rounds > 1 {
        notes.push(format!(
            "Each row is the median (by writes/s) of {rounds} interleaved rounds."
        ));
    }
    // Other work on the machine skews every system; record how busy it was.
    if let Some(load) = common::load_average() {
        notes.push(format!(
            "Load average at the end of the run: {load} (2 cores, shared with other builds)."
        ));
    }
    let t = |sys: &str| common::throughput(&rows, sys, 64);
    let ratios = Ratios {
        berth_vs_etcd: common::ratio(t("berth"), t("etcd")),
        berth_tls_vs_etcd_tls: common::ratio(t("berth+tls"), t("etcd+tls")),
        berth_tls_vs_berth: common::ratio(t("berth+tls"), t("berth")),
        etcd_tls_vs_etcd: common::ratio(t("etcd+tls"), t("etcd")),
    };
    eprintln!("ratios at 64 clients: {ratios:?}");
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&out, markdown(&rows, &ratios, &notes.join("\n\n")))?;
    eprintln!("wrote {}", out.display());
    Ok(())
}
