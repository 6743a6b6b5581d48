//! `net-bench`: request/response throughput and round-trip time between pods on one node, across nodes over the
//! VXLAN overlay, through a Service IP, and with host networking, on a namespaced lab (root only; no packet leaves
//! the namespaces it creates). Writes `bench-results/network.md` (or the path given as the first argument).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use node_agent::network::testbed::{self, Testbed};
use node_agent::network::{in_netns, netns_path};
use proto::agentpb::{Endpoint, ServicePort, ServiceView};

const MSG: usize = 64;
const PORT: u16 = 7000;
/// Round trips on one persistent connection per scenario.
const ROUND_TRIPS: usize = 5000;
/// New connections (one request each) per scenario.
const CONNECTIONS: usize = 1000;
/// Interleaved repetitions of all scenarios; medians are reported.
const ROUNDS: usize = 5;
/// Hard cap per measurement loop, so a broken path cannot hang the run.
const CAP: Duration = Duration::from_secs(20);

/// Starts an echo server (64-byte request -> 64-byte reply) listening on `addr` inside `netns`.
fn serve(netns: &Path, addr: SocketAddr) -> Result<()> {
    let listener = in_netns(netns, move || TcpListener::bind(addr))?
        .with_context(|| format!("bind {addr}"))?;
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { continue };
            std::thread::spawn(move || {
                let _ = s.set_nodelay(true);
                let mut buf = [0u8; MSG];
                while s.read_exact(&mut buf).is_ok() {
                    if s.write_all(&buf).is_err() {
                        break;
                    }
                }
            });
        }
    });
    Ok(())
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    conn_per_s: f64,
}

/// Runs both loops from inside `netns` against `to`.
fn measure(netns: &Path, to: SocketAddr) -> Result<Sample> {
    in_netns(netns, move || -> Result<Sample> {
        let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(2))
            .with_context(|| format!("connect {to}"))?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        let req = [7u8; MSG];
        let mut buf = [0u8; MSG];
        // Warm-up (ARP, conntrack, caches).
        for _ in 0..200 {
            s.write_all(&req)?;
            s.read_exact(&mut buf)?;
        }
        let mut lat = Vec::with_capacity(ROUND_TRIPS);
        let start = Instant::now();
        for _ in 0..ROUND_TRIPS {
            let t = Instant::now();
            s.write_all(&req)?;
            s.read_exact(&mut buf)?;
            lat.push(t.elapsed());
            if start.elapsed() > CAP {
                break;
            }
        }
        let rps = lat.len() as f64 / start.elapsed().as_secs_f64();
        lat.sort();
        let pct = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e6;
        drop(s);
        let start = Instant::now();
        let mut done = 0usize;
        for _ in 0..CONNECTIONS {
            let mut c = TcpStream::connect_timeout(&to, Duration::from_secs(2))?;
            c.set_nodelay(true)?;
            c.set_read_timeout(Some(Duration::from_secs(2)))?;
            c.write_all(&req)?;
            c.read_exact(&mut buf)?;
            done += 1;
            if start.elapsed() > CAP {
                break;
            }
        }
        let conn_per_s = done as f64 / start.elapsed().as_secs_f64();
        Ok(Sample {
            rps,
            p50_us: pct(0.5),
            p99_us: pct(0.99),
            conn_per_s,
        })
    })?
}

fn main() -> Result<()> {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "bench-results/network.md".into());
    if !testbed::is_root() {
        bail!("net-bench needs root (it builds network namespaces)");
    }
    let mut tb = Testbed::new(2).context("build lab")?;
    let s1 = tb.add_pod(0, "srv1")?;
    let c1 = tb.add_pod(0, "cli1")?;
    let s2 = tb.add_pod(1, "srv2")?;
    let ep = |p: &testbed::TestPod| Endpoint {
        ip: p.ip.to_string(),
        pod_name: p.name.clone(),
        node_name: format!("n{}", p.node + 1),
        ready: true,
    };
    let svc = |name: &str, ip: &str, p: &testbed::TestPod| ServiceView {
        namespace: "bench".into(),
        name: name.into(),
        cluster_ip: ip.into(),
        r#type: "ClusterIP".into(),
        session_affinity: "None".into(),
        ports: vec![ServicePort {
            name: "echo".into(),
            protocol: "TCP".into(),
            port: 80,
            node_port: 0,
            target_port: PORT as u32,
        }],
        endpoints: vec![ep(p)],
    };
    tb.apply(&[
        svc("local", "10.96.0.90", &s1),
        svc("remote", "10.96.0.91", &s2),
    ])?;
    for p in [&s1, &s2] {
        serve(&netns_path(&p.netns), SocketAddr::new(p.ip.into(), PORT))?;
    }
    // Host networking: the server lives in node 2's own netns, reached on its node IP over the plain underlay.
    let n1 = netns_path(&tb.nodes[0].netns);
    let n2 = netns_path(&tb.nodes[1].netns);
    let n2_ip = tb.nodes[1].ip;
    serve(&n2, SocketAddr::new(n2_ip.into(), PORT))?;

    let cli = netns_path(&c1.netns);
    let vip = |last: u8| SocketAddr::new(Ipv4Addr::new(10, 96, 0, last).into(), 80);
    let scenarios: Vec<(&str, &Path, SocketAddr)> = vec![
        (
            "pod -> pod, same node",
            &cli,
            SocketAddr::new(s1.ip.into(), PORT),
        ),
        (
            "pod -> pod, other node (VXLAN)",
            &cli,
            SocketAddr::new(s2.ip.into(), PORT),
        ),
        ("pod -> Service IP -> pod, same node", &cli, vip(90)),
        ("pod -> Service IP -> pod, other node", &cli, vip(91)),
        (
            "host network, node -> node (underlay)",
            &n1,
            SocketAddr::new(n2_ip.into(), PORT),
        ),
    ];
    // Rounds interleave the scenarios so background load (shared CPUs) hits them alike; the median is reported.
    let mut runs: Vec<Vec<Sample>> = vec![Vec::new(); scenarios.len()];
    for round in 0..ROUNDS {
        for (i, (name, from, to)) in scenarios.iter().enumerate() {
            let s = measure(from, *to).with_context(|| format!("scenario {name}"))?;
            eprintln!("round {round} {name}: {s:?}");
            runs[i].push(s);
        }
    }
    let median = |v: &[Sample], f: fn(&Sample) -> f64| {
        let mut x: Vec<f64> = v.iter().map(f).collect();
        x.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
        x[x.len() / 2]
    };
    let results: Vec<(&str, Sample)> = scenarios
        .iter()
        .zip(&runs)
        .map(|((name, _, _), v)| {
            let s = Sample {
                rps: median(v, |s| s.rps),
                p50_us: median(v, |s| s.p50_us),
                p99_us: median(v, |s| s.p99_us),
                conn_per_s: median(v, |s| s.conn_per_s),
            };
            (*name, s)
        })
        .collect();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let r = |i: usize| results[i].1;
    let mut md = String::new();
    md.push_str("# berth network benchmark\n\n");
    md.push_str(&format!(
        "Produced by `net-bench` (node-agent/src/bin/net-bench.rs) on {} CPUs, kernel {}. Lab: 2 node namespaces on a \
         veth switch, pods attached by the CNI bridge plugin, VXLAN overlay, nftables Service DNAT. Each scenario: \
         {ROUND_TRIPS} round trips of {MSG}-byte request/response on one persistent TCP connection (req/s, RTT \
         percentiles), then {CONNECTIONS} fresh connections with one request each (conn/s; every new connection goes \
         through conntrack and, for Service IPs, the DNAT chains). Single client thread, so numbers are latency-bound. \
         Median of {ROUNDS} interleaved rounds; load average at the end: {}. The CPUs are shared with other builds, so \
         compare ratios rather than absolute numbers.\n\n",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    ));
    md.push_str("| scenario | req/s (persistent) | RTT p50 (µs) | RTT p99 (µs) | new conn/s |\n|---|---:|---:|---:|---:|\n");
    for (name, s) in &results {
        md.push_str(&format!(
            "| {name} | {:.0} | {:.1} | {:.1} | {:.0} |\n",
            s.rps, s.p50_us, s.p99_us, s.conn_per_s
        ));
    }
    md.push_str("\n## Ratios\n\n");
    md.push_str(&format!(
        "- Service IP vs direct, same node: RTT p50 x{:.2}, req/s x{:.2}, new conn/s x{:.2}\n",
        r(2).p50_us / r(0).p50_us,
        r(2).rps / r(0).rps,
        r(2).conn_per_s / r(0).conn_per_s
    ));
    md.push_str(&format!(
        "- Service IP vs direct, other node: RTT p50 x{:.2}, req/s x{:.2}, new conn/s x{:.2}\n",
        r(3).p50_us / r(1).p50_us,
        r(3).rps / r(1).rps,
        r(3).conn_per_s / r(1).conn_per_s
    ));
    md.push_str(&format!(
        "- Overlay (other node) vs same node: RTT p50 x{:.2}, req/s x{:.2}\n",
        r(1).p50_us / r(0).p50_us,
        r(1).rps / r(0).rps
    ));
    md.push_str(&format!(
        "- Overlay vs host networking across nodes: RTT p50 x{:.2}, req/s x{:.2}\n",
        r(1).p50_us / r(4).p50_us,
        r(1).rps / r(4).rps
    ));
    drop(tb);
    if let Some(dir) = Path::new(&out).parent() {
        std::fs::create_dir_all(dir).ok();
    }
    std::fs::write(&out, &md).with_context(|| format!("write {out}"))?;
    print!("{md}");
    Ok(())
}
