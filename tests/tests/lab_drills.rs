//! End-to-end fault drills on a real lab: 3 servers and 3 agents in network namespaces, real containers.
//! One scenario, in order, because each step needs the cluster the previous one left: apply, scale, rolling
//! update, kill an agent node, kill the leader server, partition a minority server, restart everything.
//! A writer creates ConfigMaps throughout; every write the API acknowledged must exist at the end. The API
//! is HTTPS only: the drill checks that anonymous requests get 401, a bootstrap token 403, and that the
//! lab kubeconfig (admin client certificate) works for berthctl and stock kubectl.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use berth_tests::{http, https, skip_reason, wait_for, workspace, Lab, Tls};
use serde_json::Value;

const POLL: Duration = Duration::from_millis(500);

/// Writes ConfigMaps `ack-N` round-robin over the servers until stopped (at most `MAX_WRITES`), recording
/// every name the API acknowledged with 201 and the longest gap between two acknowledgements.
struct Writer {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<String>>>,
    longest_gap: Arc<Mutex<Duration>>,
    handle: Option<JoinHandle<()>>,
}

const MAX_WRITES: usize = 5_000;

impl Writer {
    fn start(servers: Vec<SocketAddr>, tls: Tls) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let longest_gap = Arc::new(Mutex::new(Duration::ZERO));
        let (s, a, g) = (stop.clone(), acked.clone(), longest_gap.clone());
        let handle = std::thread::spawn(move || {
            let mut last_ack = Instant::now();
            let mut server = 0usize;
            for n in 0..MAX_WRITES {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                let name = format!("ack-{n}");
                let body = format!(
                    r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}"}},"data":{{"n":"{n}"}}}}"#
                );
                // A write is retried on other servers until acknowledged or refused as a duplicate (an
                // earlier attempt that timed out may have committed).
                let started = Instant::now();
                while !s.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(30) {
                    let addr = servers[server % servers.len()];
                    match https(
                        &tls,
                        "POST",
                        addr,
                        "/api/v1/namespaces/default/configmaps",
                        Some(&body),
                        Duration::from_secs(2),
                    ) {
                        Ok(r) if r.status == 201 => {
                            a.lock().unwrap().push(name.clone());
                            let gap = last_ack.elapsed();
                            let mut longest = g.lock().unwrap();
                            *longest = (*longest).max(gap);
                            last_ack = Instant::now();
                            break;
                        }
                        Ok(r) if r.status == 409 => break,
                        _ => server += 1,
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Writer {
            stop,
            acked,
            longest_gap,
            handle: Some(handle),
        }
    }

    fn count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// Resets the gap measurement (call right before a fault).
    fn reset_gap(&self) {
        *self.longest_gap.lock().unwrap() = Duration::ZERO;
    }

    fn longest_gap(&self) -> Duration {
        *self.longest_gap.lock().unwrap()
    }

    fn finish(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        self.acked.lock().unwrap().clone()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn deployment(lab: &Lab) -> Result<Value> {
    lab.get_json("/apis/apps/v1/namespaces/default/deployments/web")
}

/// Pods of the web app that are not being deleted.
fn live_pods(lab: &Lab) -> Result<Vec<Value>> {
    lab.live_pods_of("web")
}

/// Waits until the Deployment has rolled out `replicas` available pods of its current template, and exactly
/// that many live pods, all ready.
fn wait_rolled_out(lab: &Lab, replicas: i64, limit: Duration) -> Result<Vec<Value>> {
    wait_for(
        &format!("web rolled out at {replicas} replicas"),
        limit,
        POLL,
        || {
            let d = deployment(lab)?;
            let s = &d["status"];
            let done = d["metadata"]["generation"].as_i64() <= s["observedGeneration"].as_i64()
                && s["updatedReplicas"].as_i64() == Some(replicas)
                && s["availableReplicas"].as_i64() == Some(replicas)
                && s["replicas"].as_i64() == Some(replicas);
            let pods = live_pods(lab)?;
            if done && pods.len() as i64 == replicas && pods.iter().all(berth_tests::pod_ready) {
                Ok(Some(pods))
            } else {
                Ok(None)
            }
        },
    )
    .with_context(|| diagnostics(lab))
}

fn node_of(pod: &Value) -> String {
    pod["spec"]["nodeName"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn diagnostics(lab: &Lab) -> String {
    let pods = lab
        .berthctl(&["get", "pods", "-o", "wide"])
        .unwrap_or_else(|e| format!("{e:#}"));
    let nodes = lab
        .berthctl(&["get", "nodes"])
        .unwrap_or_else(|e| format!("{e:#}"));
    format!("cluster state:\n{nodes}\n{pods}")
}

/// The member that holds the leader Lease.
fn leader(lab: &Lab) -> Result<String> {
    let lease =
        lab.get_json("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/berth-leader")?;
    Ok(lease["spec"]["holderIdentity"]
        .as_str()
        .context("lease without holder")?
        .to_string())
}

fn node_ready(lab: &Lab, node: &str) -> Result<bool> {
    let n = lab.get_json(&format!("/api/v1/nodes/{node}"))?;
    Ok(n["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    }))
}

/// Every agent's NodePort answers with a pod name.
fn check_nodeports(lab: &Lab, port: u16) -> Result<BTreeSet<String>> {
    let mut answered = BTreeSet::new();
    for (node, ip) in lab.nodes("agent") {
        let addr: SocketAddr = format!("{ip}:{port}").parse()?;
        for _ in 0..6 {
            let r = http("GET", addr, "/", None, Duration::from_secs(3))
                .with_context(|| format!("NodePort on {node}"))?;
            let who = r
                .body
                .trim()
                .strip_prefix("hello from ")
                .map(str::to_string);
            match who {
                Some(pod) if r.status == 200 => {
                    answered.insert(pod);
                }
                _ => bail!("NodePort on {node} answered {} {:?}", r.status, r.body),
            }
        }
    }
    Ok(answered)
}

/// The Compose sample through `berthctl stack`: 3 web replicas and a client that finds `web` by its Compose
/// name (read from a Swarm config), a global service on every agent's host port, the published port on every
/// agent, the Swarm-style listing, and `stack rm` taking it all down.
fn stack_deploy_and_rm(lab: &Lab) -> Result<()> {
    eprintln!("== stack deploy: the Compose sample, Swarm-style");
    let compose = workspace().join("manifests/web-stack.compose.yaml");
    let out = lab.berthctl(&["stack", "deploy", "-c", compose.to_str().unwrap(), "demo"])?;
    assert!(out.contains("Creating service demo_web"), "{out}");
    let pods = || -> Result<Vec<Value>> {
        Ok(lab.get_json("/api/v1/namespaces/demo/pods")?["items"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    };
    let live = wait_for(
        "the stack's 7 pods ready",
        Duration::from_secs(120),
        POLL,
        || {
            let items = pods()?;
            Ok((items.len() == 7 && items.iter().all(berth_tests::pod_ready)).then_some(items))
        },
    )?;
    let answered = wait_for(
        "published port 30081 answers on every agent",
        Duration::from_secs(30),
        POLL,
        || Ok(check_nodeports(lab, 30081).ok()),
    )?;
    assert!(
        answered.iter().all(|p| p.starts_with("web-")),
        "{answered:?}"
    );
    let probe = live
        .iter()
        .filter_map(|p| p["metadata"]["name"].as_str())
        .find(|n| n.starts_with("probe-"))
        .context("no probe pod")?
        .to_string();
    let mut seen = String::new();
    wait_for(
        "probe reaches web by its Compose name",
        Duration::from_secs(30),
        POLL,
        || {
            let last = lab.kubectl(&["exec", "-n", "demo", &probe, "--", "cat", "/tmp/last"]);
            seen = format!("{last:?}");
            Ok(last.ok().filter(|l| l.starts_with("hello from web-")))
        },
    )
    .with_context(|| {
        let logs = lab.kubectl(&["logs", "-n", "demo", &probe]);
        format!("the probe's last answer: {seen}; its log: {logs:?}")
    })?;
    let beacons: BTreeSet<String> = live
        .iter()
        .filter(|p| {
            p["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("beacon-"))
        })
        .map(node_of)
        .collect();
    assert_eq!(beacons.len(), 3, "one beacon per agent: {beacons:?}");
    for (node, ip) in lab.nodes("agent") {
        let addr: SocketAddr = format!("{ip}:30091").parse()?;
        let r = http("GET", addr, "/", None, Duration::from_secs(3))
            .with_context(|| format!("beacon host port on {node}"))?;
        assert!(r.body.starts_with("beacon on beacon-"), "{node}: {r:?}");
    }
    let services = lab.berthctl(&["stack", "services", "demo"])?;
    assert!(
        services.lines().any(|l| l.contains("demo_web")
            && l.contains("3/3")
            && l.contains("*:30081->8080/tcp")),
        "{services}"
    );
    assert!(
        services
            .lines()
            .any(|l| l.contains("demo_beacon") && l.contains("global") && l.contains("3/3")),
        "{services}"
    );
    let rm = lab.berthctl(&["stack", "rm", "demo"])?;
    assert!(
        rm.contains("Removing service demo_web") && rm.contains("Removing config demo_probe-conf"),
        "{rm}"
    );
    wait_for(
        "the stack's pods gone",
        Duration::from_secs(60),
        POLL,
        || Ok(pods()?.is_empty().then_some(())),
    )?;
    Ok(())
}

/// Every agent's hostPort 30090 answers with that agent's own name.
fn check_daemons(lab: &Lab) -> Result<()> {
    for (node, ip) in lab.nodes("agent") {
        let addr: SocketAddr = format!("{ip}:30090").parse()?;
        let r = http("GET", addr, "/", None, Duration::from_secs(3))
            .with_context(|| format!("hostPort on {node}"))?;
        let body = r.body.trim();
        if r.status != 200 || body != format!("hello from node {node}") {
            bail!("hostPort on {node} answered {} {body:?}", r.status);
        }
    }
    Ok(())
}

/// The node-hello sample with stock kubectl: one pod per agent, each answering on its own node's hostPort,
/// `rollout status` and a node-by-node `rollout restart`, and the pods going with the DaemonSet.
fn daemonset_rollout(lab: &Lab) -> Result<()> {
    eprintln!("== daemonset: one pod per agent, rolled node by node");
    let manifest = workspace().join("manifests/node-hello.yaml");
    let out = lab.kubectl(&["apply", "-f", manifest.to_str().unwrap()])?;
    assert!(out.contains("daemonset.apps/node-hello created"), "{out}");
    let status = lab.kubectl(&["rollout", "status", "ds/node-hello", "--timeout=120s"])?;
    assert!(status.contains("successfully rolled out"), "{status}");
    let pods = lab.live_pods_of("node-hello")?;
    let nodes: BTreeSet<_> = pods.iter().map(node_of).collect();
    assert_eq!(
        (pods.len(), nodes.len()),
        (3, 3),
        "one pod per agent: {nodes:?}"
    );
    wait_for(
        "every agent's hostPort names its node",
        Duration::from_secs(30),
        POLL,
        || Ok(check_daemons(lab).ok()),
    )?;
    let row = lab.kubectl(&["get", "ds", "node-hello", "--no-headers"])?;
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cells.get(1..6),
        Some(&["3", "3", "3", "3", "3"][..]),
        "{row}"
    );

    let before: BTreeSet<String> = pods
        .iter()
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    lab.kubectl(&["rollout", "restart", "ds/node-hello"])?;
    let status = lab.kubectl(&["rollout", "status", "ds/node-hello", "--timeout=120s"])?;
    assert!(status.contains("successfully rolled out"), "{status}");
    let after = lab.live_pods_of("node-hello")?;
    assert_eq!(after.len(), 3, "{after:?}");
    assert!(
        after
            .iter()
            .all(|p| !before.contains(p["metadata"]["name"].as_str().unwrap_or_default())),
        "every pod replaced"
    );
    wait_for(
        "hostPorts answer after the restart",
        Duration::from_secs(30),
        POLL,
        || Ok(check_daemons(lab).ok()),
    )?;
    lab.kubectl(&["delete", "ds", "node-hello"])?;
    wait_for(
        "the daemon pods gone",
        Duration::from_secs(60),
        POLL,
        || Ok(lab.live_pods_of("node-hello")?.is_empty().then_some(())),
    )?;
    Ok(())
}

/// The countdown Job with stock kubectl: 3 completions, 2 at a time, `kubectl wait` for Complete, the
/// Table's status columns, logs through `job/NAME`, and its pods going with it.
fn job_to_completion(lab: &Lab) -> Result<()> {
    eprintln!("== job: 3 completions, 2 at a time");
    let manifest = workspace().join("manifests/countdown-job.yaml");
    let out = lab.kubectl(&["apply", "-f", manifest.to_str().unwrap()])?;
    assert!(out.contains("job.batch/countdown created"), "{out}");
    let waited = lab.kubectl(&[
        "wait",
        "--for=condition=complete",
        "job/countdown",
        "--timeout=120s",
    ])?;
    assert!(waited.contains("condition met"), "{waited}");
    let job = lab.get_json("/apis/batch/v1/namespaces/default/jobs/countdown")?;
    assert_eq!(job["status"]["succeeded"], 3, "{job}");
    assert!(job["status"]["failed"].is_null(), "{job}");
    let row = lab.kubectl(&["get", "job", "countdown", "--no-headers"])?;
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells.get(1..3), Some(&["Complete", "3/3"][..]), "{row}");
    let logs = lab.kubectl(&["logs", "job/countdown"])?;
    assert!(logs.contains("counts 1") && logs.contains("done"), "{logs}");
    let pods = live_pods_of_job(lab)?;
    assert_eq!(pods.len(), 3, "finished pods stay for their logs");
    assert!(
        pods.iter().all(|p| p["status"]["phase"] == "Succeeded"),
        "{pods:?}"
    );
    lab.kubectl(&["delete", "job", "countdown"])?;
    wait_for("the job's pods gone", Duration::from_secs(60), POLL, || {
        Ok(live_pods_of_job(lab)?.is_empty().then_some(()))
    })?;
    Ok(())
}

fn live_pods_of_job(lab: &Lab) -> Result<Vec<Value>> {
    let list =
        lab.get_json("/api/v1/namespaces/default/pods?labelSelector=job-name%3Dcountdown")?;
    Ok(list["items"].as_array().cloned().unwrap_or_default())
}

/// Kills or partitions one random server at a time (a minority of 3), restarts or heals it, for `span`.
/// Returns, per fault, how long the writer went without an acknowledgement around it.
fn server_chaos(lab: &Lab, writer: &Writer, span: Duration) -> Result<Vec<Duration>> {
    let servers: Vec<String> = lab.nodes("server").into_iter().map(|(n, _)| n).collect();
    // A fixed xorshift sequence: the drill is random in what it hits but the same on every run.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let start = Instant::now();
    let mut gaps = Vec::new();
    while start.elapsed() < span {
        let victim = &servers[(next() % servers.len() as u64) as usize];
        let kill = next() % 2 == 0;
        let before = writer.count();
        writer.reset_gap();
        lab.lab(if kill { "kill" } else { "partition" }, Some(victim))?;
        wait_for(
            &format!(
                "writes after {} {victim}",
                if kill { "killing" } else { "partitioning" }
            ),
            Duration::from_secs(15),
            Duration::from_millis(100),
            || Ok((writer.count() > before + 5).then_some(())),
        )?;
        std::thread::sleep(Duration::from_secs(2));
        gaps.push(writer.longest_gap());
        if kill {
            lab.lab("restart", Some(victim))?;
        } else {
            lab.lab("heal", Some(victim))?;
        }
        // Let the member catch up before the next fault, or two faults could make a majority.
        std::thread::sleep(Duration::from_secs(3));
    }
    Ok(gaps)
}

/// Secure by default: the kubeconfig is private, the API answers only over TLS, anonymous requests get
/// 401 (except the health endpoints), a bootstrap token authenticates but may not read Secrets, and the
/// admin certificate in the kubeconfig works for berthctl and stock kubectl.
/// `berth-server certs rotate` on every member while the writer runs: each member switches to new
/// certificates without a restart, and writes keep being acknowledged.
fn rotate_server_certs(lab: &Lab, writer: &Writer) -> Result<()> {
    eprintln!("== rotate every server's certificates while writing");
    let lab_dir = lab
        .kubeconfig
        .parent()
        .context("kubeconfig has no directory")?
        .to_path_buf();
    let acked_before = writer.count();
    for (server, _) in lab.nodes("server") {
        let data_dir = lab_dir.join(&server);
        let cert = data_dir.join("pki/member.crt");
        let before = std::fs::read_to_string(&cert)?;
        let out = berth_tests::run(
            std::process::Command::new(berth_tests::bin_dir().join("berth-server"))
                .arg("--data-dir")
                .arg(&data_dir)
                .args(["certs", "rotate"]),
        )?;
        if !out.contains("certificates rotated") {
            bail!("{server}: {out}");
        }
        if std::fs::read_to_string(&cert)? == before {
            bail!("{server} kept its certificate");
        }
    }
    wait_for(
        "writes after the rotation",
        Duration::from_secs(20),
        POLL,
        || Ok((writer.count() > acked_before + 10).then_some(())),
    )?;
    // Agents reconnect to the rotated members with fresh handshakes: every node stays Ready.
    for (agent, _) in lab.nodes("agent") {
        wait_for(
            "agents Ready after the rotation",
            Duration::from_secs(30),
            POLL,
            || Ok(node_ready(lab, &agent)?.then_some(())),
        )?;
    }
    Ok(())
}

fn security(lab: &Lab) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    eprintln!("== security: TLS, 401 anonymous, 403 bootstrap token, admin certificate");
    let t = Duration::from_secs(3);
    let mode = std::fs::metadata(&lab.kubeconfig)?.permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "lab kubeconfig is {mode:o}");
    let addr = lab.api_addrs()[0];
    let r = https(&lab.anonymous, "GET", addr, "/api/v1/secrets", None, t)?;
    assert_eq!(r.status, 401, "anonymous list of secrets: {r:?}");
    assert_eq!(r.json()?["kind"], "Status", "{r:?}");
    for open in ["/readyz", "/healthz", "/livez", "/version"] {
        let r = https(&lab.anonymous, "GET", addr, open, None, t)?;
        assert_eq!(r.status, 200, "anonymous {open}: {r:?}");
    }
    // Plain HTTP on the API port gets nothing useful.
    if let Ok(r) = http("GET", addr, "/api/v1/secrets", None, t) {
        assert_ne!(r.status, 200, "plain HTTP served the API: {r:?}");
    }
    let bad = lab.anonymous.with_bearer("abcdef.0123456789abcdef");
    let r = https(&bad, "GET", addr, "/api/v1/secrets", None, t)?;
    assert_eq!(r.status, 401, "unknown bearer token: {r:?}");

    let token = lab.berthctl(&["token", "create", "--ttl", "1h"])?;
    let token = token.trim();
    let listed = lab.berthctl(&["token", "list"])?;
    assert!(listed.contains(token), "{listed}");
    let boot = lab.anonymous.with_bearer(token);
    let r = https(&boot, "GET", addr, "/api/v1/secrets", None, t)?;
    assert_eq!(r.status, 403, "a bootstrap token read secrets: {r:?}");
    // Not through the lab kubeconfig: its client certificate would authenticate the admin first.
    let tmp = tempfile::tempdir()?;
    let ca = tmp.path().join("ca.crt");
    std::fs::write(&ca, berth_tests::kubeconfig_credentials(&lab.kubeconfig)?.0)?;
    let denied = berth_tests::output(
        std::process::Command::new(berth_tests::bin_dir().join("berthctl"))
            .env("KUBECONFIG", tmp.path().join("none"))
            .arg("--server")
            .arg(format!("https://{addr}"))
            .arg("--certificate-authority")
            .arg(&ca)
            .args(["--token", token, "get", "secrets", "-A"]),
    )?;
    let err = String::from_utf8_lossy(&denied.stderr);
    assert!(
        !denied.status.success() && err.starts_with("Error from server (Forbidden)"),
        "{err}"
    );

    let r = lab.api(
        "GET",
        addr,
        "/api/v1/namespaces/kube-system/secrets",
        None,
        t,
    )?;
    assert_eq!(r.status, 200, "admin list of secrets: {r:?}");
    let nodes = lab.kubectl(&["get", "nodes"])?;
    assert!(nodes.contains("Ready"), "{nodes}");
    let nodes = lab.berthctl(&["get", "nodes"])?;
    assert!(nodes.contains("Ready"), "{nodes}");
    Ok(())
}

#[test]
fn lab_fault_drills() -> Result<()> {
    if let Some(why) = skip_reason() {
        eprintln!("skipping lab_fault_drills: {why}");
        return Ok(());
    }
    let image = berth_tests::busybox_oci_image()?;

    eprintln!("== up: 3 servers, 3 agents");
    let lab = Lab::up("e2e", 3, 3)?;
    security(&lab)?;
    lab.berthctl(&["image", "load", &image])?;

    eprintln!("== apply: web, 3 replicas spread over the agents");
    let manifest = workspace().join("manifests/web.yaml");
    let out = lab.berthctl(&["apply", "-f", manifest.to_str().unwrap()])?;
    assert!(out.contains("deployment.apps/web created"), "{out}");
    let pods = wait_rolled_out(&lab, 3, Duration::from_secs(120))?;
    let nodes: BTreeSet<_> = pods.iter().map(node_of).collect();
    assert_eq!(
        nodes.len(),
        3,
        "replicas not spread over 3 agents: {nodes:?}"
    );
    let answered = wait_for(
        "NodePort answers on every agent",
        Duration::from_secs(30),
        POLL,
        || Ok(check_nodeports(&lab, 30080).ok()),
    )?;
    assert!(!answered.is_empty());

    eprintln!(
        "== service name from inside a pod (kubectl exec, cluster DNS, ClusterIP over 3 nodes)"
    );
    let pod = pods[0]["metadata"]["name"]
        .as_str()
        .context("pod name")?
        .to_string();
    // The first lookups can fail while the node's DNS and service rules catch up with the new Service, so
    // this asks up to 40 times and counts who answered.
    let mut via_dns = BTreeSet::new();
    let mut errors = Vec::new();
    for _ in 0..40 {
        if via_dns.len() == 3 {
            break;
        }
        match lab.kubectl(&[
            "exec",
            &pod,
            "--",
            "wget",
            // No `-T`: busybox-static's wget crashes with it.
            "-qO-",
            "http://web.default.svc.cluster.local",
        ]) {
            Ok(out) => {
                if let Some(who) = out.trim().strip_prefix("hello from ") {
                    via_dns.insert(who.to_string());
                }
            }
            Err(e) => {
                errors.push(format!("{e:#}"));
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
    eprintln!(
        "   answered by {via_dns:?}; {} failed attempts",
        errors.len()
    );
    assert_eq!(
        via_dns.len(),
        3,
        "the Service did not spread over the 3 replicas: {via_dns:?}; errors: {errors:?}"
    );
    let failed = berth_tests::output(
        std::process::Command::new("kubectl")
            .env("KUBECONFIG", &lab.kubeconfig)
            .args(["exec", &pod, "--", "sh", "-c", "exit 3"]),
    )?;
    assert_eq!(
        failed.status.code(),
        Some(3),
        "exec exit code not propagated"
    );

    stack_deploy_and_rm(&lab)?;
    daemonset_rollout(&lab)?;
    job_to_completion(&lab)?;

    let writer = Writer::start(lab.api_addrs(), lab.admin.clone());

    eprintln!("== scale 3 -> 6 -> 2 with stock kubectl");
    lab.kubectl(&["scale", "deployment/web", "--replicas=6"])?;
    wait_rolled_out(&lab, 6, Duration::from_secs(90))?;
    lab.kubectl(&["scale", "deployment/web", "--replicas=2"])?;
    wait_rolled_out(&lab, 2, Duration::from_secs(90))?;
    lab.kubectl(&["scale", "deployment/web", "--replicas=3"])?;
    wait_rolled_out(&lab, 3, Duration::from_secs(90))?;

    eprintln!("== rolling update (rollout restart)");
    let before: BTreeSet<String> = live_pods(&lab)?
        .iter()
        .map(|p| {
            p["metadata"]["labels"]["pod-template-hash"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    lab.berthctl(&["rollout", "restart", "deployment/web"])?;
    let pods = wait_for(
        "pods of a new template",
        Duration::from_secs(120),
        POLL,
        || {
            let pods = wait_rolled_out(&lab, 3, Duration::from_secs(1)).ok();
            Ok(pods.filter(|ps| {
                ps.iter().all(|p| {
                    !before.contains(
                        p["metadata"]["labels"]["pod-template-hash"]
                            .as_str()
                            .unwrap_or(""),
                    )
                })
            }))
        },
    )
    .with_context(|| diagnostics(&lab))?;
    assert_eq!(pods.len(), 3);
    let history = lab.kubectl(&["rollout", "history", "deployment/web"])?;
    assert!(
        history.contains('2'),
        "rollout history shows no second revision: {history}"
    );

    eprintln!("== kill an agent: its pods are replaced on the others");
    let victim = node_of(&pods[0]);
    lab.lab("kill", Some(&victim))?;
    let healed = Instant::now();
    wait_for(
        &format!("{victim} NotReady"),
        Duration::from_secs(30),
        POLL,
        || Ok((!node_ready(&lab, &victim)?).then_some(())),
    )?;
    let pods = wait_for(
        "replacements on healthy agents",
        Duration::from_secs(90),
        POLL,
        || {
            let pods = wait_rolled_out(&lab, 3, Duration::from_secs(1)).ok();
            Ok(pods.filter(|ps| ps.iter().all(|p| node_of(p) != victim)))
        },
    )
    .with_context(|| diagnostics(&lab))?;
    eprintln!("   replaced in {:?} after the kill", healed.elapsed());
    assert!(pods.iter().all(|p| node_of(p) != victim));
    lab.lab("restart", Some(&victim))?;
    wait_for(
        &format!("{victim} Ready again"),
        Duration::from_secs(60),
        POLL,
        || Ok(node_ready(&lab, &victim)?.then_some(())),
    )?;

    eprintln!("== kill the leader server while writing");
    let old_leader = leader(&lab)?;
    let acked_before = writer.count();
    writer.reset_gap();
    lab.lab("kill", Some(&old_leader))?;
    wait_for("a new leader", Duration::from_secs(20), POLL, || {
        Ok(leader(&lab).ok().filter(|l| *l != old_leader))
    })?;
    wait_for(
        "writes after the leader died",
        Duration::from_secs(20),
        POLL,
        || Ok((writer.count() > acked_before + 10).then_some(())),
    )?;
    eprintln!(
        "   longest write gap around the leader kill: {:?}",
        writer.longest_gap()
    );
    lab.lab("restart", Some(&old_leader))?;

    eprintln!("== partition a minority server");
    let current = leader(&lab)?;
    let follower = lab
        .nodes("server")
        .into_iter()
        .map(|(n, _)| n)
        .find(|n| *n != current)
        .context("no follower")?;
    let acked_before = writer.count();
    lab.lab("partition", Some(&follower))?;
    wait_for(
        "writes during the partition",
        Duration::from_secs(20),
        POLL,
        || Ok((writer.count() > acked_before + 10).then_some(())),
    )?;
    lab.lab("heal", None)?;

    rotate_server_certs(&lab, &writer)?;

    eprintln!("== 60 s of random server faults, never a majority at once");
    let gaps = server_chaos(&lab, &writer, Duration::from_secs(60))?;
    let worst = gaps.iter().max().copied().unwrap_or_default();
    eprintln!(
        "   {} faults; longest write gap after a fault: {worst:?}",
        gaps.len()
    );
    assert!(!gaps.is_empty());

    eprintln!("== restart everything");
    for (node, _) in lab.nodes("server").into_iter().chain(lab.nodes("agent")) {
        lab.lab("restart", Some(&node))?;
    }
    wait_for(
        "every node Ready after the restart",
        Duration::from_secs(90),
        POLL,
        || {
            let all = lab
                .nodes("agent")
                .iter()
                .map(|(n, _)| node_ready(&lab, n))
                .collect::<Result<Vec<_>>>()?;
            Ok(all.into_iter().all(|r| r).then_some(()))
        },
    )?;
    wait_rolled_out(&lab, 3, Duration::from_secs(120))?;
    wait_for(
        "NodePort answers after the restart",
        Duration::from_secs(60),
        POLL,
        || Ok(check_nodeports(&lab, 30080).ok()),
    )?;

    eprintln!("== no acknowledged write lost");
    let acked = writer.finish();
    assert!(
        acked.len() > 50,
        "the writer made too little progress: {}",
        acked.len()
    );
    let list = lab.get_json("/api/v1/namespaces/default/configmaps")?;
    let stored: BTreeSet<String> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    let lost: Vec<_> = acked.iter().filter(|n| !stored.contains(*n)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost: {:?}",
        lost.len(),
        lost
    );
    eprintln!("   {} acknowledged writes, all present", acked.len());

    eprintln!("== down: nothing left behind");
    drop(lab);
    let netns = berth_tests::run(std::process::Command::new("ip").args(["netns", "list"]))?;
    assert!(
        !netns.lines().any(|l| l.starts_with("e2e-")),
        "lab namespaces left: {netns}"
    );
    Ok(())
}
