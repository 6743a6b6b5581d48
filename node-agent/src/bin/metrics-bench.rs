//! `metrics-bench`: the CPU the metrics sampler costs on a node running 100 containers (#15: "agent
//! overhead of metrics collection"). Starts real busybox `sleep` containers, samples them at the default
//! interval on a dedicated thread, and measures that thread's CPU time per pass with
//! getrusage(RUSAGE_THREAD). Writes `bench-results/metrics-overhead.md`. Needs root and crun.
//!
//! `metrics-bench [PODS] [SECONDS]` (defaults 100 and 30).

use node_agent::images::ImageStore;
use node_agent::metrics::{Host, LatestSummary, Now, Sampler, Tracker, DEFAULT_INTERVAL};
use node_agent::pod::{ContainerLookup, Lookup};
use node_agent::runtime::linux::LinuxRuntime;
use node_agent::runtime::{ContainerConfig, ContainerRuntime, RunState};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Kills and removes every container the bench started, even when it fails half-way.
struct Reset(Arc<LinuxRuntime>);

impl Drop for Reset {
    fn drop(&mut self) {
        let removed = self.0.reset();
        eprintln!("removed {} containers", removed.len());
    }
}

/// CPU time (user + system) of the calling thread.
fn thread_cpu() -> Duration {
    use nix::sys::resource::{getrusage, UsageWho};
    getrusage(UsageWho::RUSAGE_THREAD)
        .map(|u| {
            let t = |tv: nix::sys::time::TimeVal| {
                Duration::new(tv.tv_sec() as u64, tv.tv_usec() as u32 * 1000)
            };
            t(u.user_time()) + t(u.system_time())
        })
        .unwrap_or_default()
}

/// Mean, median and max of `v`, in microseconds.
fn stats(v: &mut [Duration]) -> (f64, f64, f64) {
    v.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let mean = v.iter().map(|d| us(*d)).sum::<f64>() / v.len().max(1) as f64;
    let med = v.get(v.len() / 2).copied().map(us).unwrap_or(0.0);
    let max = v.last().copied().map(us).unwrap_or(0.0);
    (mean, med, max)
}

fn test_image(ws: &Path) -> anyhow::Result<PathBuf> {
    let out = Command::new(ws.join("tests/images/build.sh"))
        .arg(ws.join("target/test-images"))
        .output()?;
    anyhow::ensure!(out.status.success(), "build.sh failed");
    Ok(PathBuf::from(
        String::from_utf8(out.stdout)?
            .lines()
            .next()
            .unwrap_or_default(),
    ))
}

#[allow(clippy::disallowed_methods)]
fn main() -> anyhow::Result<()> {
    anyhow::ensure!(
        nix::unistd::Uid::effective().is_root(),
        "metrics-bench needs root"
    );
    let mut args = std::env::args().skip(1);
    let pods: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(100);
    let seconds: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(30);
    let ws = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let oci_tar = test_image(&ws)?;
    let data = tempfile::tempdir()?;
    let store = ImageStore::open(data.path())?;
    let rec = store.import_path(&oci_tar)?.remove(0);
    let layers = store.layer_dirs(&rec)?;
    let exe = std::env::current_exe()?
        .parent()
        .unwrap()
        .join("berth-agent");
    let rt = Arc::new(LinuxRuntime::new(data.path(), exe)?);
    let _reset = Reset(rt.clone());

    let t0 = Instant::now();
    let mut lookup = Lookup::new();
    let mut ids = vec![];
    for i in 0..pods {
        let uid = format!("mbench{i}");
        let cfg = ContainerConfig {
            id: format!("{uid}-c-0"),
            pod_uid: uid.clone(),
            pod_namespace: "bench".into(),
            pod_name: format!("p{i}"),
            container_name: "c".into(),
            image: "berth/busybox".into(),
            image_id: rec.config_digest.clone(),
            layers: layers.clone(),
            args: vec!["sleep".into(), "3600".into()],
            env: vec!["PATH=/bin".into()],
            cwd: "/".into(),
            hostname: "bench".into(),
            memory_limit: Some(16 << 20),
            log_path: data.path().join(format!("logs/{uid}/0.log")),
            ..Default::default()
        };
        let st = rt.start(&cfg)?;
        anyhow::ensure!(st.state == RunState::Running, "{st:?}");
        lookup.insert(
            ("bench".into(), cfg.pod_name.clone()),
            vec![ContainerLookup {
                name: "c".into(),
                pod_uid: uid.clone(),
                current: Some(cfg.id.clone()),
                log: None,
                previous_log: None,
            }],
        );
        ids.push((uid, cfg.id));
    }
    eprintln!("started {pods} containers in {:?}", t0.elapsed());

    let host = Host::detect();
    let layout = format!("{:?}", host.layout);
    let sampler = Sampler {
        host,
        node_name: "bench".into(),
        lookup: Arc::new(Mutex::new(lookup)),
        latest: Arc::new(LatestSummary::new("bench")),
    };
    let interval = DEFAULT_INTERVAL;
    // The sampler's own thread, as in the agent (where passes run on a blocking-pool thread), so that
    // RUSAGE_THREAD counts the pass and nothing else.
    let (paced, tight, measured) = std::thread::scope(|s| {
        s.spawn(|| {
            let origin = Instant::now();
            let now = || Now {
                wall: SystemTime::now(),
                mono: origin.elapsed(),
            };
            let mut tracker = Tracker::new();
            let (mut cpu, mut wall) = (vec![], vec![]);
            let end = Instant::now() + Duration::from_secs(seconds);
            while Instant::now() < end {
                let (c0, w0) = (thread_cpu(), Instant::now());
                sampler.sample(&mut tracker, now());
                cpu.push(thread_cpu() - c0);
                wall.push(w0.elapsed());
                std::thread::sleep(interval.saturating_sub(w0.elapsed()));
            }
            let measured = sampler
                .latest
                .get()
                .pods
                .iter()
                .map(|p| p.containers.len())
                .sum::<usize>();
            // Back to back, for a per-pass figure over many more passes than the paced run gives.
            let n = 200;
            let c0 = thread_cpu();
            for _ in 0..n {
                sampler.sample(&mut tracker, now());
            }
            let tight = (thread_cpu() - c0) / n;
            ((cpu, wall), tight, measured)
        })
        .join()
        .expect("sampler thread")
    });
    let (mut cpu, mut wall) = paced;
    let passes = cpu.len();
    let (cpu_mean, cpu_med, cpu_max) = stats(&mut cpu);
    let (wall_mean, _, wall_max) = stats(&mut wall);
    let share = |us: f64| us / (interval.as_secs_f64() * 1e6) * 100.0;

    for (_, id) in &ids {
        let _ = rt.signal(id, 9);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline
        && ids
            .iter()
            .any(|(_, id)| rt.status(id).is_some_and(|s| s.state == RunState::Running))
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    for (uid, id) in &ids {
        let _ = rt.remove(id);
        let _ = rt.remove_sandbox(uid);
    }

    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    let mut md = String::from("# berth-agent: CPU cost of metrics collection (#15)\n\n");
    md.push_str(&format!(
        "Machine: {} CPUs ({cpu_model}), {} MiB RAM, kernel {}, cgroup layout `{layout}`, {} build. \
         The machine was shared with other builds while this ran, so wall times are noisy; CPU times \
         (getrusage RUSAGE_THREAD of the sampling thread) are not.\n\n\
         Setup: {pods} pods of one busybox `sleep 3600` container each (real containers, crun, \
         host network), the sampler at the default interval ({} s) for {seconds} s: {passes} passes, \
         each reading every container's cpuacct.usage, memory.usage_in_bytes and memory.stat, plus \
         /proc/stat and /proc/meminfo, and building the Summary. Containers in the last summary: {measured}.\n\n",
        node_agent::agent::node_info::cpus(),
        node_agent::agent::node_info::mem_total_kib() / 1024,
        kernel.trim(),
        if cfg!(debug_assertions) { "debug (unoptimised)" } else { "release" },
        interval.as_secs_f64(),
    ));
    md.push_str("| measure | per pass | per container | share of one core at the default interval |\n|---|---|---|---|\n");
    md.push_str(&format!(
        "| CPU, paced run (mean) | {cpu_mean:.0} µs | {:.1} µs | {:.3} % |\n",
        cpu_mean / pods as f64,
        share(cpu_mean)
    ));
    md.push_str(&format!(
        "| CPU, paced run (median / max) | {cpu_med:.0} / {cpu_max:.0} µs | | |\n"
    ));
    let tight_us = tight.as_secs_f64() * 1e6;
    md.push_str(&format!(
        "| CPU, 200 passes back to back (mean) | {tight_us:.0} µs | {:.1} µs | {:.3} % |\n",
        tight_us / pods as f64,
        share(tight_us)
    ));
    md.push_str(&format!(
        "| wall, paced run (mean / max) | {wall_mean:.0} / {wall_max:.0} µs | | |\n"
    ));
    md.push_str(
        "\nThe request path (`GET /stats/summary`) reads no cgroup: it serialises the last summary.\n\n\
         Rerun (root, crun): `cargo build -p node-agent --bins && sudo target/debug/metrics-bench [PODS] [SECONDS]` \
         (add `--release` to both for an optimised figure). Every container it starts is removed at the end, \
         or by `Drop` when it fails.\n",
    );
    std::fs::create_dir_all(ws.join("bench-results"))?;
    std::fs::write(ws.join("bench-results/metrics-overhead.md"), &md)?;
    print!("{md}");
    Ok(())
}
