//! What store-bench and api-bench share: the timed client loop, medians over rounds, scratch
//! directories, and a 3-member etcd (plaintext or TLS with client certificates).
//!
//! Included by each benchmark with `#[path = "common/mod.rs"] mod common;`; each uses only part of it.

pub mod etcd;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// One measured row: a system at a client count.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    /// Which system and transport (`berth+tls`, `etcd`, …).
    pub system: String,
    /// Concurrent clients, each with one write in flight.
    pub clients: usize,
    /// Acknowledged writes.
    pub writes: usize,
    /// Failed writes.
    pub errors: usize,
    /// Wall time of the row.
    pub seconds: f64,
    /// Acknowledged writes per second.
    pub writes_per_sec: f64,
    /// Median write latency.
    pub p50_ms: f64,
    /// 99th percentile write latency.
    pub p99_ms: f64,
}

/// Runs `clients` loops of `op(client, i)` for `secs`, collecting per-write latency.
pub async fn measure<F, Fut>(system: &str, clients: usize, secs: f64, op: F) -> Row
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
        "{:>13} clients={:>2} writes/s={:>8.0} p50={:.2}ms p99={:.2}ms errors={}",
        row.system, row.clients, row.writes_per_sec, row.p50_ms, row.p99_ms, row.errors
    );
    row
}

/// Per system (in `systems` order) and client count, the round with the median throughput.
pub fn medians(all: &[Row], systems: &[&str], clients: &[usize]) -> Vec<Row> {
    let mut out = Vec::new();
    for system in systems {
        for &n in clients {
            let mut these: Vec<Row> = all
                .iter()
                .filter(|r| r.system == *system && r.clients == n)
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

/// Throughput of `system` at `clients` among `rows`.
pub fn throughput(rows: &[Row], system: &str, clients: usize) -> Option<f64> {
    rows.iter()
        .find(|r| r.system == system && r.clients == clients)
        .map(|r| r.writes_per_sec)
}

/// `a / b` when both are measured and `b` is not zero.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// The 1, 5 and 15 minute load averages, as `/proc/loadavg` shows them.
pub fn load_average() -> Option<String> {
    let load = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// An env knob: `name`, else `fallback`, parsed; `None` when neither is set or parses.
pub fn knob<T: std::str::FromStr>(name: &str, fallback: &str) -> Option<T> {
    [name, fallback]
        .iter()
        .find_map(|n| std::env::var(n).ok().and_then(|v| v.trim().parse().ok()))
}

/// A comma-separated list of client counts from `name` (else `fallback`).
pub fn clients_knob(name: &str, fallback: &str) -> Option<Vec<usize>> {
    [name, fallback].iter().find_map(|n| {
        let v = std::env::var(n).ok()?;
        let list: Vec<usize> = v.split(',').filter_map(|c| c.trim().parse().ok()).collect();
        (!list.is_empty()).then_some(list)
    })
}

/// A scratch directory removed on drop (tempfile is only a dev-dependency).
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new directory under the system temp dir, named after `prefix` and this process.
    pub fn new(prefix: &str) -> anyhow::Result<Self> {
        let p = std::env::temp_dir().join(format!(
            "{prefix}-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&p)?;
        Ok(TempDir(p))
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A port free on 127.0.0.1 a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
