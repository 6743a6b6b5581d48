//! `net-bench`: request/response throughput and round-trip time between pods on one node, across nodes over the
//! VXLAN overlay, through a Service IP, and with host networking, on a namespaced lab (root only; no packet leaves
//! the namespaces it creates). Writes `bench-results/network.md` (or the path given as the first argument).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use node_agent::network::netlink::{IpTool, Netlink as _};
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
const ROUNDS: usize = 7;
/// Hard cap per measurement loop, so a broken path cannot hang the run.
const CAP: Duration = Duration::from_secs(20);

/// The CPU both ends of the current measurement run on; -1 leaves placement to the scheduler.
static PIN: AtomicI32 = AtomicI32::new(-1);

/// Pins the calling thread to [`PIN`]'s CPU, if set. With both ends on one CPU the round trip costs the
/// path's CPU work plus two context switches, without cross-CPU wakeups, whose cost swings with the host.
fn pin_current_thread() {
    let Ok(cpu) = usize::try_from(PIN.load(Ordering::SeqCst)) else {
        return;
    };
    let mut set = nix::sched::CpuSet::new();
    if set.set(cpu).is_ok() {
        let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set);
    }
}

/// Starts an echo server (64-byte request -> 64-byte reply) listening on `addr` inside `netns`.
fn serve(netns: &Path, addr: SocketAddr) -> Result<()> {
    let listener = in_netns(netns, move || TcpListener::bind(addr))?
        .with_context(|| format!("bind {addr}"))?;
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { continue };
            std::thread::spawn(move || {
                pin_current_thread();
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
        pin_current_thread();
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

/// Turns a built lab into the floor reference: a direct veth between the 2 nodes instead of the switch, and no
/// netfilter on the nodes (no Service rules, no conntrack, no br_netfilter). What is left is the kernel path any
/// VXLAN overlay on these namespaces takes: veth, bridge, routing and VXLAN encap/decap.
fn strip_to_floor(tb: &Testbed) -> Result<()> {
    tb.rewire_direct()?;
    for n in &tb.nodes {
        let tool = IpTool::in_netns(&n.netns);
        tool.nft("flush ruleset\n")?;
        // Best effort: without br_netfilter there is nothing to turn off.
        let _ = tool.sysctl("net.bridge.bridge-nf-call-iptables", "0");
    }
    Ok(())
}

/// How the two ends of a measurement are placed on CPUs.
#[derive(Debug, Clone, Copy)]
enum Placement {
    Scheduler,
    OneCpu,
}

impl Placement {
    fn pin(self) -> i32 {
        match self {
            Placement::Scheduler => -1,
            Placement::OneCpu => 0,
        }
    }

    fn title(self) -> &'static str {
        match self {
            Placement::Scheduler => "Threads placed by the scheduler (what applications see)",
            Placement::OneCpu => {
                "Client and server pinned to CPU 0 (the path's CPU cost, without cross-CPU wakeups)"
            }
        }
    }
}

/// Scenario indices, in the order of the table.
const SAME: usize = 0;
const OVERLAY: usize = 1;
const SVC_SAME: usize = 2;
const SVC_OTHER: usize = 3;
const HOST: usize = 4;
const FLOOR_SAME: usize = 5;
const FLOOR_OVERLAY: usize = 6;

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

    // The floor lab: the same pods on a second lab stripped by `strip_to_floor`.
    let mut floor = Testbed::new(2).context("build floor lab")?;
    let fs1 = floor.add_pod(0, "srv1")?;
    let fc1 = floor.add_pod(0, "cli1")?;
    let fs2 = floor.add_pod(1, "srv2")?;
    floor.apply(&[])?;
    strip_to_floor(&floor).context("strip floor lab")?;
    for p in [&fs1, &fs2] {
        serve(&netns_path(&p.netns), SocketAddr::new(p.ip.into(), PORT))?;
    }

    let cli = netns_path(&c1.netns);
    let fcli = netns_path(&fc1.netns);
    let vip = |last: u8| SocketAddr::new(Ipv4Addr::new(10, 96, 0, last).into(), 80);
    let at = |ip: Ipv4Addr| SocketAddr::new(ip.into(), PORT);
    let scenarios: Vec<(&str, &Path, SocketAddr)> = vec![
        ("pod -> pod, same node", &cli, at(s1.ip)),
        ("pod -> pod, other node (VXLAN)", &cli, at(s2.ip)),
        ("pod -> Service IP -> pod, same node", &cli, vip(90)),
        ("pod -> Service IP -> pod, other node", &cli, vip(91)),
        ("host network, node -> node (underlay)", &n1, at(n2_ip)),
        ("floor: pod -> pod, same node", &fcli, at(fs1.ip)),
        ("floor: pod -> pod, other node (VXLAN)", &fcli, at(fs2.ip)),
    ];
    let placements = [Placement::Scheduler, Placement::OneCpu];
    // Rounds interleave scenarios and placements so background load (shared CPUs) hits them alike; the median
    // is reported.
    let mut runs: Vec<Vec<Vec<Sample>>> = vec![vec![Vec::new(); scenarios.len()]; placements.len()];
    for round in 0..ROUNDS {
        for (pi, placement) in placements.iter().enumerate() {
            PIN.store(placement.pin(), Ordering::SeqCst);
            for (i, (name, from, to)) in scenarios.iter().enumerate() {
                let s = measure(from, *to).with_context(|| format!("scenario {name}"))?;
                eprintln!("round {round} {placement:?} {name}: {s:?}");
                runs[pi][i].push(s);
            }
        }
    }
    PIN.store(-1, Ordering::SeqCst);
    let median = |v: &[Sample], f: fn(&Sample) -> f64| {
        let mut x: Vec<f64> = v.iter().map(f).collect();
        x.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
        x[x.len() / 2]
    };
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut md = String::new();
    md.push_str("# berth network benchmark\n\n");
    md.push_str(&format!(
        "Produced by `net-bench` (node-agent/src/bin/net-bench.rs) on {} CPUs, kernel {}. Lab: 2 node namespaces on a \
         veth switch, pods attached by the CNI bridge plugin, VXLAN overlay, nftables Service DNAT. Each scenario: \
         {ROUND_TRIPS} round trips of {MSG}-byte request/response on one persistent TCP connection (req/s, RTT \
         percentiles), then {CONNECTIONS} fresh connections with one request each (conn/s; every new connection goes \
         through conntrack and, for Service IPs, the DNAT chains). Single client thread, so numbers are latency-bound. \
         Median of {ROUNDS} rounds that interleave every scenario and placement; load average at the end: {}. The CPUs \
         are shared with other builds, so compare ratios rather than absolute numbers.\n\n\
         The `floor` rows run on a second lab with the switch replaced by one veth pair between the nodes and all \
         netfilter removed from the nodes (no Service rules, no conntrack, no br_netfilter): the least any \
         kernel-routed VXLAN overlay on these namespaces can cost. Services do not work there; it is a reference, \
         not a configuration.\n\n",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    ));
    for (pi, placement) in placements.iter().enumerate() {
        let r: Vec<Sample> = runs[pi]
            .iter()
            .map(|v| Sample {
                rps: median(v, |s| s.rps),
                p50_us: median(v, |s| s.p50_us),
                p99_us: median(v, |s| s.p99_us),
                conn_per_s: median(v, |s| s.conn_per_s),
            })
            .collect();
        md.push_str(&format!("## {}\n\n", placement.title()));
        md.push_str("| scenario | req/s (persistent) | RTT p50 (µs) | RTT p99 (µs) | new conn/s |\n|---|---:|---:|---:|---:|\n");
        for ((name, _, _), s) in scenarios.iter().zip(&r) {
            md.push_str(&format!(
                "| {name} | {:.0} | {:.1} | {:.1} | {:.0} |\n",
                s.rps, s.p50_us, s.p99_us, s.conn_per_s
            ));
        }
        md.push_str("\nRatios:\n\n");
        // (what, scenario, its reference, whether new conn/s compare too)
        let ratios = [
            ("Service IP vs direct, same node", SVC_SAME, SAME, true),
            ("Service IP vs direct, other node", SVC_OTHER, OVERLAY, true),
            ("Overlay (other node) vs same node", OVERLAY, SAME, false),
            (
                "Overlay vs host networking across nodes",
                OVERLAY,
                HOST,
                false,
            ),
            (
                "Floor, overlay vs same node",
                FLOOR_OVERLAY,
                FLOOR_SAME,
                false,
            ),
        ];
        for (what, a, b, conns) in ratios {
            md.push_str(&format!(
                "- {what}: RTT p50 x{:.2}, req/s x{:.2}",
                r[a].p50_us / r[b].p50_us,
                r[a].rps / r[b].rps
            ));
            if conns {
                md.push_str(&format!(
                    ", new conn/s x{:.2}",
                    r[a].conn_per_s / r[b].conn_per_s
                ));
            }
            md.push('\n');
        }
        md.push('\n');
    }
    drop(floor);
    drop(tb);
    if let Some(dir) = Path::new(&out).parent() {
        std::fs::create_dir_all(dir).ok();
    }
    std::fs::write(&out, &md).with_context(|| format!("write {out}"))?;
    print!("{md}");
    Ok(())
}
