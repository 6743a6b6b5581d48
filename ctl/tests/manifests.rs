//! Exercises every sample manifest in `manifests/`: the structure (selectors, Services, volumes, images,
//! comment headers) always, and, as root with busybox, the containers' own shell commands run for real in a
//! busybox chroot inside a private network namespace (loopback only), with the Service hosts pointed at it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn manifests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests")
}

fn load(name: &str) -> Vec<Value> {
    let p = manifests_dir().join(name);
    ctl::manifest::read_sources(&[p.display().to_string()], &mut std::io::empty())
        .unwrap()
        .into_iter()
        .map(|d| d.object)
        .collect()
}

fn of_kind<'a>(objs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objs.iter().filter(|o| o["kind"] == kind).collect()
}

fn labels_match(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| labels[k] == *v))
}

/// Checks the rules every sample follows.
fn check_structure(name: &str, objs: &[Value]) {
    let text = std::fs::read_to_string(manifests_dir().join(name)).unwrap();
    assert!(text.starts_with("# "), "{name}: needs a comment header");
    assert!(
        text.contains("Shows:"),
        "{name}: the header must say what it shows"
    );
    // Jobs: the server generates their selector; their pods must run to an end.
    for j in of_kind(objs, "Job") {
        let spec = &j["spec"]["template"]["spec"];
        assert!(
            matches!(spec["restartPolicy"].as_str(), Some("Never" | "OnFailure")),
            "{name}: a Job's pods must end"
        );
        for c in spec["containers"].as_array().unwrap() {
            assert_eq!(
                c["image"], "berth/busybox:latest",
                "{name}: only the offline image"
            );
            assert_eq!(
                c["imagePullPolicy"], "IfNotPresent",
                "{name}: images are loaded"
            );
        }
    }
    // Deployments and DaemonSets: the workloads that own pod templates.
    let mut deployments = of_kind(objs, "Deployment");
    deployments.extend(of_kind(objs, "DaemonSet"));
    for d in &deployments {
        let tpl_labels = &d["spec"]["template"]["metadata"]["labels"];
        assert!(
            labels_match(&d["spec"]["selector"]["matchLabels"], tpl_labels),
            "{name}: {} {} selector must match its template",
            d["kind"],
            d["metadata"]["name"]
        );
        for c in d["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
        {
            assert_eq!(
                c["image"], "berth/busybox:latest",
                "{name}: only the offline image"
            );
            assert_eq!(
                c["imagePullPolicy"], "IfNotPresent",
                "{name}: images are loaded, not pulled"
            );
        }
        for v in d["spec"]["template"]["spec"]["volumes"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some(claim) = v["persistentVolumeClaim"]["claimName"].as_str() {
                assert!(
                    of_kind(objs, "PersistentVolumeClaim")
                        .iter()
                        .any(|p| p["metadata"]["name"] == claim),
                    "{name}: claim {claim} must be defined in the same file"
                );
            }
        }
    }
    for s in of_kind(objs, "Service") {
        let sel = &s["spec"]["selector"];
        assert!(
            deployments
                .iter()
                .any(|d| labels_match(sel, &d["spec"]["template"]["metadata"]["labels"])),
            "{name}: service {} selects no deployment",
            s["metadata"]["name"]
        );
        for p in s["spec"]["ports"].as_array().unwrap() {
            let target = p["targetPort"].as_i64().unwrap();
            let exposed = deployments.iter().any(|d| {
                d["spec"]["template"]["spec"]["containers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|c| {
                        c["ports"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|cp| cp["containerPort"] == target)
                    })
            });
            assert!(
                exposed,
                "{name}: service port {target} is not a container port"
            );
        }
    }
}

#[test]
fn web_manifest() {
    let objs = load("web.yaml");
    check_structure("web.yaml", &objs);
    let d = of_kind(&objs, "Deployment");
    assert_eq!(d.len(), 1);
    assert_eq!(d[0]["metadata"]["name"], "web");
    assert_eq!(d[0]["spec"]["replicas"], 3);
    let s = of_kind(&objs, "Service");
    assert_eq!(s[0]["metadata"]["name"], "web");
    assert_eq!(s[0]["spec"]["type"], "NodePort");
    assert_eq!(s[0]["spec"]["ports"][0]["nodePort"], 30080);
}

#[test]
fn node_hello_manifest() {
    let objs = load("node-hello.yaml");
    check_structure("node-hello.yaml", &objs);
    let ds = of_kind(&objs, "DaemonSet");
    assert_eq!(ds.len(), 1);
    assert_eq!(ds[0]["metadata"]["name"], "node-hello");
    assert!(ds[0]["spec"].get("replicas").is_none());
    assert_eq!(ds[0]["spec"]["updateStrategy"]["type"], "RollingUpdate");
    let c = &ds[0]["spec"]["template"]["spec"]["containers"][0];
    assert!(
        c["ports"][0]["hostPort"].is_i64(),
        "published on its own node"
    );
}

#[test]
fn countdown_job_manifest() {
    let objs = load("countdown-job.yaml");
    check_structure("countdown-job.yaml", &objs);
    let job = of_kind(&objs, "Job");
    assert_eq!(job.len(), 1);
    assert_eq!(
        (
            job[0]["spec"]["completions"].clone(),
            job[0]["spec"]["parallelism"].clone()
        ),
        (3.into(), 2.into())
    );
    assert!(
        job[0]["spec"].get("selector").is_none(),
        "generated by the server"
    );
}

#[test]
fn multi_tier_manifest() {
    let objs = load("multi-tier.yaml");
    check_structure("multi-tier.yaml", &objs);
    let names: Vec<&str> = of_kind(&objs, "Deployment")
        .iter()
        .map(|d| d["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["db", "cache", "frontend"]);
    let db = of_kind(&objs, "Deployment")[0];
    assert_eq!(
        db["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
        "db-data"
    );
    assert_eq!(db["spec"]["strategy"]["type"], "Recreate");
    assert_eq!(of_kind(&objs, "PersistentVolumeClaim").len(), 1);
}

#[test]
fn web_stack_compose_file() {
    let name = "web-stack.compose.yaml";
    let file = manifests_dir().join(name).display().to_string();
    let env = |k: &str| std::env::var(k).ok();
    let stack = ctl::compose::load(&[file], "demo", &env).unwrap();
    assert_eq!(stack.warnings, Vec::<String>::new());
    check_structure(name, &stack.objects);
    let web = of_kind(&stack.objects, "Deployment")
        .into_iter()
        .find(|d| d["metadata"]["name"] == "web")
        .unwrap();
    assert_eq!(web["spec"]["replicas"], 3);
    let c = &web["spec"]["template"]["spec"]["containers"][0];
    assert!(c["args"][2]
        .as_str()
        .unwrap()
        .contains("hello from $(hostname)"));
    assert!(c["readinessProbe"]["exec"].is_object());
    let svc = of_kind(&stack.objects, "Service")
        .into_iter()
        .find(|s| s["metadata"]["name"] == "web")
        .unwrap();
    assert_eq!(svc["spec"]["ports"][0]["nodePort"], 30081);
    assert_eq!(stack.services().len(), 3);
    let beacon = of_kind(&stack.objects, "DaemonSet");
    assert_eq!(beacon.len(), 1, "beacon is global");
    let port = &beacon[0]["spec"]["template"]["spec"]["containers"][0]["ports"][0];
    assert_eq!(
        (port["containerPort"].clone(), port["hostPort"].clone()),
        (8080.into(), 30091.into())
    );
    let conf = of_kind(&stack.objects, "ConfigMap");
    assert_eq!(conf[0]["data"]["probe_conf"], "target=http://web:8080/");
    let probe = of_kind(&stack.objects, "Deployment")
        .into_iter()
        .find(|d| d["metadata"]["name"] == "probe")
        .unwrap();
    let c = &probe["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["volumeMounts"][0]["mountPath"], "/etc/probe.conf");
    assert!(c["args"][2]
        .as_str()
        .unwrap()
        .contains("wget -qO- \"$target\""));
}

#[test]
fn hpa_manifest() {
    let objs = load("hpa.yaml");
    check_structure("hpa.yaml", &objs);
    let d = of_kind(&objs, "Deployment");
    assert_eq!(d.len(), 1);
    assert_eq!(d[0]["spec"]["replicas"], 1);
    let res = &d[0]["spec"]["template"]["spec"]["containers"][0]["resources"];
    assert_eq!(
        (res["requests"]["cpu"].clone(), res["limits"]["cpu"].clone()),
        ("100m".into(), "500m".into()),
        "utilization needs a cpu request"
    );
    let hpa = of_kind(&objs, "HorizontalPodAutoscaler");
    assert_eq!(hpa.len(), 1);
    let h = hpa[0];
    assert_eq!(h["apiVersion"], "autoscaling/v2");
    let target = &h["spec"]["scaleTargetRef"];
    assert_eq!(
        (target["apiVersion"].clone(), target["kind"].clone()),
        ("apps/v1".into(), "Deployment".into())
    );
    assert_eq!(target["name"], d[0]["metadata"]["name"]);
    assert_eq!(
        (
            h["spec"]["minReplicas"].clone(),
            h["spec"]["maxReplicas"].clone()
        ),
        (1.into(), 6.into())
    );
    let cpu = &h["spec"]["metrics"][0]["resource"];
    assert_eq!(cpu["name"], "cpu");
    assert_eq!(cpu["target"]["averageUtilization"], 50);
    assert_eq!(
        h["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"],
        15
    );
    let svc = of_kind(&objs, "Service");
    assert_eq!(svc[0]["metadata"]["name"], "web");
    let job = of_kind(&objs, "Job");
    assert_eq!(job.len(), 1);
    assert_eq!(job[0]["spec"]["activeDeadlineSeconds"], 120);
    let load = job[0]["spec"]["template"]["spec"]["containers"][0]["command"][2]
        .as_str()
        .unwrap();
    assert!(load.contains("http://web/cgi-bin/burn"), "{load}");
    assert!(load.contains("-lt 2000"), "bounded in count: {load}");
}

#[test]
fn every_manifest_is_covered() {
    let mut files: Vec<String> = std::fs::read_dir(manifests_dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|f| f.ends_with(".yaml") || f.ends_with(".yml"))
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "countdown-job.yaml",
            "hpa.yaml",
            "multi-tier.yaml",
            "node-hello.yaml",
            "web-stack.compose.yaml",
            "web.yaml"
        ],
        "a new manifest needs a test here"
    );
}

/// A busybox chroot, a private netns with loopback, and the processes started in them; all removed on drop.
struct Sandbox {
    netns: String,
    root: tempfile::TempDir,
    children: Vec<Child>,
}

impl Sandbox {
    fn new(tag: &str) -> Option<Sandbox> {
        if !nix::unistd::geteuid().is_root() {
            println!("skipped: needs root for a network namespace and chroot");
            return None;
        }
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| Path::new(p).exists());
        let Some(busybox) = busybox else {
            println!("skipped: busybox is not installed");
            return None;
        };
        let root = tempfile::tempdir().unwrap();
        let bin = root.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for d in ["tmp", "dev", "etc"] {
            std::fs::create_dir_all(root.path().join(d)).unwrap();
        }
        std::fs::copy(busybox, bin.join("busybox")).unwrap();
        let list = Command::new(busybox).arg("--list").output().unwrap();
        for applet in String::from_utf8_lossy(&list.stdout)
            .lines()
            .filter(|a| *a != "busybox")
        {
            let _ = std::os::unix::fs::symlink("busybox", bin.join(applet));
        }
        // Containers always have /dev/null; mknod a real one rather than bind-mounting the host's /dev.
        assert!(Command::new("mknod")
            .args(["-m", "666"])
            .arg(root.path().join("dev/null"))
            .args(["c", "1", "3"])
            .status()
            .unwrap()
            .success());
        let netns = format!("bctlm{}{tag}", std::process::id());
        assert!(Command::new("ip")
            .args(["netns", "add", &netns])
            .status()
            .unwrap()
            .success());
        let sb = Sandbox {
            netns,
            root,
            children: vec![],
        };
        assert!(Command::new("ip")
            .args(["-n", &sb.netns, "link", "set", "lo", "up"])
            .status()
            .unwrap()
            .success());
        Some(sb)
    }

    /// Runs a container's `sh -c SCRIPT` in the chroot with Service hosts on loopback.
    fn start(&mut self, script: &str) {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.netns, "env", "-i", "PATH=/bin"])
            .args(["DB_SERVICE_HOST=127.0.0.1", "CACHE_SERVICE_HOST=127.0.0.1"])
            .arg("/usr/sbin/chroot")
            .arg(self.root.path())
            .args(["sh", "-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        self.children.push(child);
    }

    /// Waits (up to 5 s) until something accepts connections on the loopback `port`.
    fn wait_listening(&self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            // Bounded by timeout(1): busybox 1.35's `wget -T` crashes.
            let out = Command::new("timeout")
                .args(["3", "ip", "netns", "exec", &self.netns, "/usr/sbin/chroot"])
                .arg(self.root.path())
                .args([
                    "wget",
                    "-qO-",
                    &format!("http://127.0.0.1:{port}/nonexistent"),
                ])
                .output()
                .unwrap();
            if !String::from_utf8_lossy(&out.stderr).contains("can't connect") {
                return;
            }
            assert!(Instant::now() < deadline, "nothing listens on port {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// GET on loopback inside the netns, retried for up to 5 s while the servers start.
    fn get(&self, url: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            // Bounded by timeout(1): busybox 1.35's `wget -T` crashes.
            let out = Command::new("timeout")
                .args(["3", "ip", "netns", "exec", &self.netns, "/usr/sbin/chroot"])
                .arg(self.root.path())
                .args(["wget", "-qO-", url])
                .output()
                .unwrap();
            if out.status.success() {
                return String::from_utf8_lossy(&out.stdout).into_owned();
            }
            assert!(
                Instant::now() < deadline,
                "GET {url} kept failing: {:?} {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let pids = Command::new("ip")
            .args(["netns", "pids", &self.netns])
            .output();
        if let Ok(p) = pids {
            for pid in String::from_utf8_lossy(&p.stdout).lines() {
                let _ = Command::new("kill").args(["-9", pid.trim()]).status();
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
    }
}

fn script(d: &Value) -> String {
    let cmd = &d["spec"]["template"]["spec"]["containers"][0]["command"];
    assert_eq!(cmd[0], "sh");
    assert_eq!(cmd[1], "-c");
    cmd[2].as_str().unwrap().to_string()
}

#[test]
fn web_container_answers_with_its_name() {
    let Some(mut sb) = Sandbox::new("w") else {
        return;
    };
    let objs = load("web.yaml");
    sb.start(&script(of_kind(&objs, "Deployment")[0]));
    let page = sb.get("http://127.0.0.1:8080/");
    assert!(page.starts_with("hello from "), "{page}");
}

#[test]
fn hpa_container_burns_cpu_per_request() {
    let Some(mut sb) = Sandbox::new("h") else {
        return;
    };
    let objs = load("hpa.yaml");
    sb.start(&script(of_kind(&objs, "Deployment")[0]));
    let page = sb.get("http://127.0.0.1:8080/cgi-bin/burn");
    assert!(page.starts_with("burned on "), "{page}");
    // The CPU one request costs, as the container's httpd would spend it: user + system seconds.
    let out = Command::new("ip")
        .args(["netns", "exec", &sb.netns, "/usr/sbin/chroot"])
        .arg(sb.root.path())
        .args(["time", "-f", "%U %S", "sh", "/www/cgi-bin/burn"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let cpu: f64 = stderr
        .split_whitespace()
        .filter_map(|t| t.parse::<f64>().ok())
        .sum();
    assert!(
        cpu >= 0.01,
        "a request should burn tens of ms of CPU: {stderr}"
    );
}

#[test]
fn multi_tier_containers_count_visits_through_the_cache() {
    let Some(mut sb) = Sandbox::new("m") else {
        return;
    };
    let objs = load("multi-tier.yaml");
    // Start the tiers back to front, each once the one it calls listens, as Services with ready endpoints would.
    for (d, port) in of_kind(&objs, "Deployment")
        .into_iter()
        .zip([5432, 6379, 8080])
    {
        sb.start(&script(d));
        sb.wait_listening(port);
    }
    let first = sb.get("http://127.0.0.1:8080/cgi-bin/app");
    assert!(first.contains(": visits 1 (cached by "), "{first}");
    // Within 5 s the cache answers from memory: the count stays stale although the db has two visits now.
    let second = sb.get("http://127.0.0.1:8080/cgi-bin/app");
    assert!(second.contains(": visits 1 (cached by "), "{second}");
    let visits = std::fs::read_to_string(sb.root.path().join("data/visits")).unwrap();
    assert_eq!(visits.lines().count(), 2, "{visits}");
    let page = sb.get("http://127.0.0.1:8080/");
    assert!(page.contains("url=/cgi-bin/app"), "{page}");
}
