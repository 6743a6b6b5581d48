//! The API server driven by the real `kubectl` (1.32, through the packaged dispatcher) and by raw
//! HTTP: apply/get/scale/delete/watch, errors with kubectl's messages, allocation, deletion rules,
//! watch semantics, the logs and exec proxies, and the Python `kubernetes` client.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use control_plane::api;
use control_plane::security::{ClusterPki, MemberIdentity, DEFAULT_VALIDITY};
use control_plane::store::{
    Batch, BoxFuture, Committed, Consistency, Error as StoreError, MemStore, Object, ObjectStore,
    Op, Precondition, Result as StoreResult, WatchStream,
};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

const KUBECTL: &str = "/usr/bin/kubectl";

struct Server {
    addr: SocketAddr,
    store: Arc<dyn ObjectStore>,
    shutdown: CancellationToken,
    dir: tempfile::TempDir,
    pki: Arc<ClusterPki>,
    /// TLS as a cluster admin (a `system:masters` client certificate).
    tls: Arc<rustls::ClientConfig>,
}

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

/// A TLS connection to the API with `tls`.
async fn connect(addr: SocketAddr, tls: &Arc<rustls::ClientConfig>) -> Tls {
    pki::net::connect(&addr.to_string(), tls.clone())
        .await
        .expect("TLS connection to the API")
}

/// One HTTP/1.1 request over a fresh TLS connection.
async fn send(
    addr: SocketAddr,
    tls: &Arc<rustls::ClientConfig>,
    req: http::Request<Full<Bytes>>,
) -> http::Response<hyper::body::Incoming> {
    let io = hyper_util::rt::TokioIo::new(connect(addr, tls).await);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(conn);
    sender.send_request(req).await.unwrap()
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Events a watch can replay in these tests: small, so that a 410 needs few writes.
const EVENT_WINDOW: usize = 300;

/// The API over a single-member Raft store, with the system namespaces.
async fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> = common::raft_store(dir.path(), "", Some(EVENT_WINDOW)).await;
    start_with(store, dir).await
}

async fn start_with(store: Arc<dyn ObjectStore>, dir: tempfile::TempDir) -> Server {
    api::bootstrap(&*store).await.unwrap();
    serve_secure(store, dir).await
}

/// The API over HTTPS with a fresh cluster PKI in `dir`.
async fn serve_secure(store: Arc<dyn ObjectStore>, dir: tempfile::TempDir) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let identity = MemberIdentity {
        name: "a".into(),
        sans: vec!["127.0.0.1".into()],
        validity: DEFAULT_VALIDITY,
    };
    let pki = Arc::new(ClusterPki::create(&dir.path().join("member"), &identity, None).unwrap());
    let kubeconfig = pki
        .write_admin_kubeconfig(&format!("https://{addr}"))
        .unwrap();
    std::fs::copy(kubeconfig, dir.path().join("kubeconfig")).unwrap();
    let admin = pki
        .issue_user_cert("test-admin", &[pki::GROUP_MASTERS])
        .unwrap();
    let tls = pki::client_config(
        pki.ca_pem(),
        Some(pki::CertSource::from_pem(&admin.cert_pem, &admin.key_pem).unwrap()),
        &[b"http/1.1"],
    )
    .unwrap();
    let config = api::ApiConfig {
        advertise_address: addr.to_string(),
        pki: Some(pki.clone()),
        ..api::ApiConfig::default()
    };
    tokio::spawn(api::serve_with(
        listener,
        store.clone(),
        config,
        shutdown.clone(),
    ));
    Server {
        addr,
        store,
        shutdown,
        dir,
        pki,
        tls,
    }
}

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// Stock kubectl with the server's admin kubeconfig (HTTPS, a client certificate).
fn kubectl_command(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(KUBECTL);
    c.arg("--cache-dir")
        .arg(dir.join("cache"))
        .args(args)
        // No user kubeconfig may leak in.
        .env("KUBECONFIG", dir.join("kubeconfig"))
        .env("HOME", dir);
    c
}

/// Result of one kubectl run.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Server {
    async fn kubectl(&self, args: &[&str]) -> Run {
        let mut cmd = kubectl_command(self.dir.path(), args);
        let out: Output = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .unwrap()
            .expect("kubectl runs");
        Run {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    async fn kubectl_ok(&self, args: &[&str]) -> String {
        let r = self.kubectl(args).await;
        assert!(r.ok, "kubectl {args:?} failed:\n{}\n{}", r.stdout, r.stderr);
        r.stdout
    }

    async fn http(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> (u16, Value) {
        let (code, bytes) = self.http_raw(method, path, content_type, body, None).await;
        let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (code, v)
    }

    async fn http_raw(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Option<Vec<u8>>,
        accept: Option<&str>,
    ) -> (u16, Vec<u8>) {
        let mut req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string());
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        if let Some(a) = accept {
            req = req.header("accept", a);
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .unwrap();
        let resp = tokio::time::timeout(Duration::from_secs(20), send(self.addr, &self.tls, req))
            .await
            .expect("request in time");
        let code = resp.status().as_u16();
        let bytes = tokio::time::timeout(Duration::from_secs(20), resp.into_body().collect())
            .await
            .expect("body in time")
            .unwrap()
            .to_bytes();
        (code, bytes.to_vec())
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.http(
            "POST",
            path,
            Some("application/json"),
            Some(body.to_string().into_bytes()),
        )
        .await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.http("GET", path, None, None).await
    }
}

fn deployment(name: &str, replicas: i64) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_configure_unchanged_server_side_scale_delete() {
    let s = start().await;
    let web = fixture("web.yaml");
    let v2 = fixture("web-v2.yaml");
    let out = s.kubectl_ok(&["apply", "-f", &web]).await;
    assert!(out.contains("deployment.apps/web created"), "{out}");
    assert!(out.contains("service/web created"), "{out}");

    let out = s.kubectl_ok(&["apply", "-f", &v2]).await;
    assert!(out.contains("deployment.apps/web configured"), "{out}");
    assert!(out.contains("service/web unchanged"), "{out}");
    let out = s.kubectl_ok(&["apply", "-f", &v2]).await;
    assert!(out.contains("deployment.apps/web unchanged"), "{out}");

    let d: Value =
        serde_json::from_str(&s.kubectl_ok(&["get", "deploy", "web", "-o", "json"]).await).unwrap();
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(d["metadata"]["generation"], 2);
    let containers = d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 2);
    assert_eq!(containers[0]["image"], "nginx:1.28");
    assert_eq!(containers[0]["env"][0]["value"], "prod");
    assert!(
        d["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .is_string()
    );

    // Back to v1: the sidecar goes, the env goes (strategic merge patch with $patch: delete).
    let out = s.kubectl_ok(&["apply", "-f", &web]).await;
    assert!(out.contains("deployment.apps/web configured"), "{out}");
    let d: Value =
        serde_json::from_str(&s.kubectl_ok(&["get", "deploy", "web", "-o", "json"]).await).unwrap();
    let containers = d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 1, "{d}");
    assert!(containers[0].get("env").is_none(), "{d}");

    let out = s.kubectl_ok(&["apply", "--server-side", "-f", &v2]).await;
    assert!(
        out.contains("deployment.apps/web serverside-applied"),
        "{out}"
    );
    assert!(out.contains("service/web serverside-applied"), "{out}");
    let replicas = s
        .kubectl_ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"])
        .await;
    assert_eq!(replicas, "3");

    let out = s.kubectl_ok(&["scale", "deploy/web", "--replicas=5"]).await;
    assert!(out.contains("deployment.apps/web scaled"), "{out}");
    let replicas = s
        .kubectl_ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"])
        .await;
    assert_eq!(replicas, "5");

    let yaml = s.kubectl_ok(&["get", "svc", "web", "-o", "yaml"]).await;
    assert!(yaml.contains("kind: Service"), "{yaml}");
    assert!(yaml.contains("clusterIP: 10.96."), "{yaml}");

    let out = s.kubectl_ok(&["delete", "-f", &web]).await;
    assert!(out.contains("deployment.apps \"web\" deleted"), "{out}");
    assert!(out.contains("service \"web\" deleted"), "{out}");
    let r = s.kubectl(&["get", "deploy", "web"]).await;
    assert!(!r.ok);
    assert!(
        r.stderr
            .contains("Error from server (NotFound): deployments.apps \"web\" not found"),
        "{}",
        r.stderr
    );
    // The Service's ClusterIP was released with it.
    let (ips, _) = s
        .store
        .list("/core/ipallocations/", Consistency::Local)
        .await
        .unwrap();
    assert!(ips.is_empty(), "{ips:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_tables_and_formats() {
    let s = start().await;
    s.kubectl_ok(&["apply", "-f", &fixture("web.yaml")]).await;
    s.kubectl_ok(&["apply", "-f", &fixture("pod.yaml")]).await;

    let pods = s.kubectl_ok(&["get", "pods", "-o", "wide"]).await;
    let header: Vec<&str> = pods.lines().next().unwrap().split_whitespace().collect();
    for col in ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"] {
        assert!(header.contains(&col), "{pods}");
    }
    assert!(pods.contains("solo") && pods.contains("Pending"), "{pods}");

    let deploy = s.kubectl_ok(&["get", "deploy", "-o", "wide"]).await;
    let header: Vec<&str> = deploy.lines().next().unwrap().split_whitespace().collect();
    for col in [
        "NAME",
        "READY",
        "UP-TO-DATE",
        "AVAILABLE",
        "AGE",
        "CONTAINERS",
        "IMAGES",
        "SELECTOR",
    ] {
        assert!(header.contains(&col), "{deploy}");
    }
    assert!(
        deploy.contains("nginx:1.27") && deploy.contains("app=web"),
        "{deploy}"
    );

    let svc = s.kubectl_ok(&["get", "svc"]).await;
    let header: Vec<&str> = svc.lines().next().unwrap().split_whitespace().collect();
    for col in [
        "NAME",
        "TYPE",
        "CLUSTER-IP",
        "EXTERNAL-IP",
        "PORT(S)",
        "AGE",
    ] {
        assert!(header.contains(&col), "{svc}");
    }
    assert!(svc.contains("ClusterIP") && svc.contains("80/TCP"), "{svc}");

    let all = s.kubectl_ok(&["get", "all"]).await;
    assert!(
        all.contains("pod/solo") && all.contains("deployment.apps/web"),
        "{all}"
    );

    let list: Value =
        serde_json::from_str(&s.kubectl_ok(&["get", "pods", "-o", "json"]).await).unwrap();
    assert_eq!(list["items"][0]["metadata"]["name"], "solo");
    assert_eq!(list["items"][0]["spec"]["restartPolicy"], "Always");
    assert_eq!(
        list["items"][0]["spec"]["containers"][0]["imagePullPolicy"],
        "IfNotPresent"
    );

    let labels = s.kubectl_ok(&["get", "pods", "--show-labels"]).await;
    assert!(labels.contains("app=solo"), "{labels}");
    let sorted = s
        .kubectl_ok(&["get", "pods", "--sort-by=.metadata.name", "-l", "app=solo"])
        .await;
    assert!(sorted.contains("solo"), "{sorted}");
    let none = s.kubectl(&["get", "pods", "-l", "app=nothing"]).await;
    assert!(
        none.ok && none.stderr.contains("No resources found"),
        "{}",
        none.stderr
    );

    let ns = s.kubectl_ok(&["get", "ns"]).await;
    assert!(ns.contains("default") && ns.contains("Active"), "{ns}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_create_generators_send_protobuf() {
    let s = start().await;
    let out = s.kubectl_ok(&["create", "namespace", "foo"]).await;
    assert!(out.contains("namespace/foo created"), "{out}");
    let ns = s.kubectl_ok(&["get", "ns"]).await;
    assert!(
        ns.lines()
            .any(|l| l.starts_with("foo ") && l.contains("Active")),
        "{ns}"
    );
    let out = s
        .kubectl_ok(&[
            "create",
            "configmap",
            "cfg",
            "-n",
            "foo",
            "--from-literal=a=b",
        ])
        .await;
    assert!(out.contains("configmap/cfg created"), "{out}");
    let data = s
        .kubectl_ok(&["get", "cm", "cfg", "-n", "foo", "-o", "jsonpath={.data.a}"])
        .await;
    assert_eq!(data, "b");
    let r = s
        .kubectl(&["create", "configmap", "cfg", "-n", "foo"])
        .await;
    assert!(
        r.stderr.contains("configmaps \"cfg\" already exists"),
        "{}",
        r.stderr
    );
    let r = s.kubectl(&["create", "configmap", "x", "-n", "nope"]).await;
    assert!(
        r.stderr.contains("namespaces \"nope\" not found"),
        "{}",
        r.stderr
    );
    // A Job goes out as protobuf too; the server generates its selector and labels.
    let out = s
        .kubectl_ok(&[
            "create",
            "job",
            "pi",
            "-n",
            "foo",
            "--image=busybox:1.36",
            "--",
            "sh",
            "-c",
            "echo 3.14",
        ])
        .await;
    assert!(out.contains("job.batch/pi created"), "{out}");
    let job: Value = serde_json::from_str(
        &s.kubectl_ok(&["get", "job", "pi", "-n", "foo", "-o", "json"])
            .await,
    )
    .unwrap();
    let uid = job["metadata"]["uid"].as_str().unwrap();
    assert_eq!(
        job["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
        uid
    );
    assert_eq!(
        job["spec"]["template"]["metadata"]["labels"]["job-name"],
        "pi"
    );
    assert_eq!(job["spec"]["template"]["spec"]["restartPolicy"], "Never");
    assert_eq!(
        job["spec"]["template"]["spec"]["containers"][0]["command"],
        json!(["sh", "-c", "echo 3.14"])
    );
    assert_eq!(
        (
            job["spec"]["completions"].clone(),
            job["spec"]["backoffLimit"].clone()
        ),
        (json!(1), json!(6))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_errors_use_kubernetes_messages() {
    let s = start().await;
    let r = s.kubectl(&["apply", "-f", &fixture("bad.yaml")]).await;
    assert!(!r.ok);
    assert!(
        r.stderr.contains("The Deployment \"Bad_Name\" is invalid"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("spec.replicas: Invalid value: -1: must be greater than or equal to 0"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("metadata.name: Invalid value: \"Bad_Name\""),
        "{}",
        r.stderr
    );

    let r = s.kubectl(&["get", "deploy", "nosuch"]).await;
    assert!(
        r.stderr
            .contains("Error from server (NotFound): deployments.apps \"nosuch\" not found"),
        "{}",
        r.stderr
    );
    let r = s.kubectl(&["get", "foo"]).await;
    assert!(
        r.stderr
            .contains("the server doesn't have a resource type \"foo\""),
        "{}",
        r.stderr
    );
    let r = s.kubectl(&["delete", "ns", "default"]).await;
    assert!(r.stderr.contains("may not be deleted"), "{}", r.stderr);
}

/// Reads lines of a child's stdout on a thread, so the test can wait for one with a deadline.
fn line_reader(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn wait_for_line(rx: &std::sync::mpsc::Receiver<String>, needle: &str) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(l) => {
                let hit = l.contains(needle);
                seen.push(l);
                if hit {
                    return seen;
                }
            }
            Err(_) => break,
        }
    }
    panic!("no line with {needle:?} in {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_watch_prints_new_objects() {
    let s = start().await;
    s.kubectl_ok(&["create", "-f", &fixture("pod.yaml")]).await;
    let mut child = kubectl_command(s.dir.path(), &["get", "pods", "-w"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rx = line_reader(&mut child);
    let (seen, rx) = tokio::task::spawn_blocking(move || (wait_for_line(&rx, "solo"), rx))
        .await
        .unwrap();
    assert!(seen[0].contains("NAME"), "{seen:?}");
    // A new pod arrives as a watch event and is printed as a row.
    let pod2 = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "second"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    let (code, _) = s.post("/api/v1/namespaces/default/pods", pod2).await;
    assert_eq!(code, 201);
    let seen = tokio::task::spawn_blocking(move || wait_for_line(&rx, "second"))
        .await
        .unwrap();
    assert!(seen.last().unwrap().contains("Pending"), "{seen:?}");
    // Rows only: the watch's first Table event must not make kubectl print a second header.
    assert!(!seen.iter().any(|l| l.starts_with("NAME")), "{seen:?}");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_create_conflict_paging_and_selectors() {
    let s = start().await;
    let base = "/apis/apps/v1/namespaces/default/deployments";
    let (code, d) = s.post(base, deployment("a", 1)).await;
    assert_eq!(code, 201);
    assert_eq!(d["metadata"]["generation"], 1);
    assert!(d["metadata"]["uid"].as_str().unwrap().len() == 36);
    let rv = d["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();

    // generateName, and a namespace that does not exist.
    let mut g = deployment("", 1);
    g["metadata"] = json!({"generateName": "gen-", "labels": {"app": "gen"}});
    let (code, created) = s.post(base, g).await;
    assert_eq!(code, 201);
    assert!(created["metadata"]["name"]
        .as_str()
        .unwrap()
        .starts_with("gen-"));
    let (code, st) = s
        .post(
            "/apis/apps/v1/namespaces/nope/deployments",
            deployment("x", 1),
        )
        .await;
    assert_eq!(code, 404);
    assert_eq!(st["message"], "namespaces \"nope\" not found");

    // PUT with the current resourceVersion succeeds and bumps generation; a stale one conflicts.
    let mut upd = d.clone();
    upd["spec"]["replicas"] = json!(4);
    let (code, u) = s
        .http(
            "PUT",
            &format!("{base}/a"),
            Some("application/json"),
            Some(upd.to_string().into_bytes()),
        )
        .await;
    assert_eq!(code, 200, "{u}");
    assert_eq!(u["metadata"]["generation"], 2);
    let mut stale = d.clone();
    stale["metadata"]["resourceVersion"] = json!(rv);
    let (code, st) = s
        .http(
            "PUT",
            &format!("{base}/a"),
            None,
            Some(stale.to_string().into_bytes()),
        )
        .await;
    assert_eq!(code, 409);
    assert_eq!(st["reason"], "Conflict");
    assert_eq!(
        st["message"],
        "Operation cannot be fulfilled on deployments.apps \"a\": the object has been modified; please apply your changes to the latest version and try again"
    );

    for n in ["b", "c", "d"] {
        assert_eq!(s.post(base, deployment(n, 1)).await.0, 201);
    }
    // Paging: 5 objects, 2 per page.
    let mut names = Vec::new();
    let mut cont = String::new();
    for _ in 0..5 {
        let (code, page) = s.get(&format!("{base}?limit=2&continue={cont}")).await;
        assert_eq!(code, 200);
        assert_eq!(page["kind"], "DeploymentList");
        for i in page["items"].as_array().unwrap() {
            names.push(i["metadata"]["name"].as_str().unwrap().to_string());
        }
        match page["metadata"]["continue"].as_str() {
            Some(c) => cont = c.to_string(),
            None => break,
        }
    }
    assert_eq!(names.len(), 5, "{names:?}");
    let (_, sel) = s
        .get(&format!("{base}?labelSelector=app%20in%20(b,c)"))
        .await;
    assert_eq!(sel["items"].as_array().unwrap().len(), 2);
    let (_, f) = s
        .get(&format!("{base}?fieldSelector=metadata.name%3Dd"))
        .await;
    assert_eq!(f["items"][0]["metadata"]["name"], "d");
    let (_, all) = s.get("/apis/apps/v1/deployments").await;
    assert_eq!(all["items"].as_array().unwrap().len(), 5);

    // dryRun never persists.
    let (code, _) = s
        .post(&format!("{base}?dryRun=All"), deployment("dry", 1))
        .await;
    assert_eq!(code, 201);
    assert_eq!(s.get(&format!("{base}/dry")).await.0, 404);

    // Bodies: too large, unknown type, malformed.
    let big = vec![b' '; 3 * 1024 * 1024 + 10];
    let (code, _) = s
        .http("POST", base, Some("application/json"), Some(big))
        .await;
    assert_eq!(code, 413);
    let (code, _) = s
        .http(
            "POST",
            base,
            Some("application/xml"),
            Some(b"<x/>".to_vec()),
        )
        .await;
    assert_eq!(code, 415);
    let (code, st) = s.http("POST", base, None, Some(b"{nope".to_vec())).await;
    assert_eq!((code, st["reason"].as_str()), (400, Some("BadRequest")));
    let (code, _) = s
        .http(
            "PATCH",
            base,
            Some("application/merge-patch+json"),
            Some(b"{}".to_vec()),
        )
        .await;
    assert_eq!(code, 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_patches_status_scale_and_apply() {
    let s = start().await;
    let base = "/apis/apps/v1/namespaces/default/deployments";
    let (_, d) = s.post(base, deployment("p", 1)).await;
    assert_eq!(d["status"], json!({}));
    let url = format!("{base}/p");
    let patch = |ct: &'static str, body: Value| {
        let url = url.clone();
        let s = &s;
        async move {
            s.http("PATCH", &url, Some(ct), Some(body.to_string().into_bytes()))
                .await
        }
    };
    let (code, v) = patch(
        "application/merge-patch+json",
        json!({"metadata": {"labels": {"m": "1"}}}),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(v["metadata"]["labels"]["m"], "1");
    assert_eq!(v["metadata"]["generation"], 1);
    let (code, v) = patch(
        "application/strategic-merge-patch+json",
        json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox:2"}]}}}}),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(v["metadata"]["generation"], 2);
    assert_eq!(
        v["spec"]["template"]["spec"]["containers"][0]["image"],
        "busybox:2"
    );
    let (code, v) = patch(
        "application/json-patch+json",
        json!([{"op": "replace", "path": "/spec/replicas", "value": 3}]),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(v["spec"]["replicas"], 3);
    // A patch that changes nothing is not written: same resourceVersion, as Kubernetes.
    let rv = v["metadata"]["resourceVersion"].clone();
    let (code, same) = patch(
        "application/merge-patch+json",
        json!({"spec": {"replicas": 3}}),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(same["metadata"]["resourceVersion"], rv);
    // A patch carrying a stale resourceVersion conflicts.
    let (code, _) = patch(
        "application/merge-patch+json",
        json!({"metadata": {"resourceVersion": "1"}, "spec": {"replicas": 9}}),
    )
    .await;
    assert_eq!(code, 409);
    let (code, _) = patch("text/plain", json!({})).await;
    assert_eq!(code, 415);

    // Status: only status changes, through /status.
    let (code, v) = s
        .http(
            "PATCH",
            &format!("{url}/status"),
            Some("application/merge-patch+json"),
            Some(json!({"spec": {"replicas": 50}, "status": {"replicas": 3, "observedGeneration": 3}}).to_string().into_bytes()),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(v["status"]["replicas"], 3);
    assert_eq!(v["spec"]["replicas"], 3);
    // And a main-resource write cannot change status.
    let (_, v) = patch(
        "application/merge-patch+json",
        json!({"status": {"replicas": 99}}),
    )
    .await;
    assert_eq!(v["status"]["replicas"], 3);

    // Scale.
    let (code, sc) = s.get(&format!("{url}/scale")).await;
    assert_eq!(code, 200);
    assert_eq!(sc["kind"], "Scale");
    assert_eq!(sc["status"]["selector"], "app=p");
    let (code, sc) = s
        .http(
            "PUT",
            &format!("{url}/scale"),
            Some("application/json"),
            Some(json!({"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": {"name": "p"}, "spec": {"replicas": 7}}).to_string().into_bytes()),
        )
        .await;
    assert_eq!((code, sc["spec"]["replicas"].as_i64()), (200, Some(7)));
    let (code, sc) = s
        .http(
            "PATCH",
            &format!("{url}/scale"),
            Some("application/merge-patch+json"),
            Some(br#"{"spec":{"replicas":-1}}"#.to_vec()),
        )
        .await;
    assert_eq!(code, 422, "{sc}");

    // Server-side apply creates (201), then updates (200); YAML bodies are accepted.
    let apply_url = format!("{base}/ssa?fieldManager=test");
    let yaml = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: ssa\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {app: ssa}\n  template:\n    metadata:\n      labels: {app: ssa}\n    spec:\n      containers:\n      - name: c\n        image: busybox\n";
    let (code, v) = s
        .http(
            "PATCH",
            &apply_url,
            Some("application/apply-patch+yaml"),
            Some(yaml.as_bytes().to_vec()),
        )
        .await;
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["spec"]["replicas"], 2);
    let (code, v) = s
        .http(
            "PATCH",
            &apply_url,
            Some("application/apply-patch+yaml"),
            Some(yaml.replace("replicas: 2", "replicas: 4").into_bytes()),
        )
        .await;
    assert_eq!((code, v["spec"]["replicas"].as_i64()), (200, Some(4)));
    let (code, _) = s
        .http(
            "PATCH",
            &format!("{base}/nosuch"),
            Some("application/merge-patch+json"),
            Some(b"{}".to_vec()),
        )
        .await;
    assert_eq!(code, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_services_get_unique_cluster_ips_and_node_ports() {
    let s = start().await;
    let base = "/api/v1/namespaces/default/services";
    let mut ips = std::collections::HashSet::new();
    for i in 0..20 {
        let svc = json!({"metadata": {"name": format!("s{i}")}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}});
        let (code, v) = s.post(base, svc).await;
        assert_eq!(code, 201, "{v}");
        assert!(ips.insert(v["spec"]["clusterIP"].as_str().unwrap().to_string()));
        assert_eq!(v["spec"]["ports"][0]["targetPort"], 80);
    }
    let (code, v) = s
        .post(base, json!({"metadata": {"name": "dns"}, "spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 53, "protocol": "UDP"}]}}))
        .await;
    assert_eq!(
        (code, v["spec"]["clusterIP"].as_str()),
        (201, Some("10.96.0.10"))
    );
    let (code, v) = s
        .post(base, json!({"metadata": {"name": "dns2"}, "spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 53}]}}))
        .await;
    assert_eq!(code, 422, "{v}");
    assert!(v["message"]
        .as_str()
        .unwrap()
        .contains("provided IP is already allocated"));
    let (code, v) = s
        .post(base, json!({"metadata": {"name": "headless"}, "spec": {"clusterIP": "None", "ports": [{"port": 80}]}}))
        .await;
    assert_eq!(
        (code, v["spec"]["clusterIPs"].clone()),
        (201, json!(["None"]))
    );
    // NodePorts via kubectl apply, unique across services.
    let out = s
        .kubectl_ok(&["apply", "-f", &fixture("nodeport.yaml")])
        .await;
    assert!(out.contains("service/np created"), "{out}");
    let (_, list) = s.get(base).await;
    let mut ports = std::collections::HashSet::new();
    for svc in list["items"].as_array().unwrap() {
        if let Some(p) = svc["spec"]["ports"][0]["nodePort"].as_u64() {
            assert!((30000..=32767).contains(&p));
            assert!(ports.insert(p), "duplicate {p}");
        }
    }
    assert_eq!(ports.len(), 21);
    // Deleting frees the IP: it can be requested again.
    assert_eq!(
        s.http("DELETE", &format!("{base}/dns"), None, None).await.0,
        200
    );
    let (code, _) = s
        .post(base, json!({"metadata": {"name": "dns3"}, "spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 53}]}}))
        .await;
    assert_eq!(code, 201);
}

async fn put_node(store: &dyn ObjectStore, name: &str, port: u16) {
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
        "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}});
    store
        .commit(Batch::one(Op::Put {
            key: format!("/core/nodes//{name}"),
            value: node,
            precondition: Precondition::None,
        }))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_deletion_rules() {
    let s = start().await;
    put_node(&*s.store, "node1", 1).await;
    let pods = "/api/v1/namespaces/default/pods";
    let pod = |name: &str, node: Option<&str>| {
        let mut p = json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
        if let Some(n) = node {
            p["spec"]["nodeName"] = json!(n);
        }
        p
    };
    // Bound pod: graceful; unbound: at once; gone node: at once; grace 0: at once.
    s.post(pods, pod("bound", Some("node1"))).await;
    s.post(pods, pod("unbound", None)).await;
    s.post(pods, pod("orphan", Some("gone-node"))).await;
    s.post(pods, pod("forced", Some("node1"))).await;
    let (code, v) = s.http("DELETE", &format!("{pods}/bound"), None, None).await;
    assert_eq!(code, 200);
    assert_eq!(v["metadata"]["deletionGracePeriodSeconds"], 30);
    assert!(v["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(s.get(&format!("{pods}/bound")).await.0, 200);
    for n in ["unbound", "orphan"] {
        assert_eq!(
            s.http("DELETE", &format!("{pods}/{n}"), None, None).await.0,
            200
        );
        assert_eq!(s.get(&format!("{pods}/{n}")).await.0, 404, "{n}");
    }
    let (code, _) = s
        .http(
            "DELETE",
            &format!("{pods}/forced"),
            Some("application/json"),
            Some(br#"{"gracePeriodSeconds":0}"#.to_vec()),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(s.get(&format!("{pods}/forced")).await.0, 404);

    // Eviction of a bound pod: 201 Success, the pod terminates gracefully.
    s.post(pods, pod("ev", Some("node1"))).await;
    let (code, st) = s
        .post(&format!("{pods}/ev/eviction"), json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "ev"}, "deleteOptions": {}}))
        .await;
    assert_eq!((code, st["status"].as_str()), (201, Some("Success")));
    assert!(s.get(&format!("{pods}/ev")).await.1["metadata"]["deletionTimestamp"].is_string());

    // Binding: an unbound pod gets its node once.
    s.post(pods, pod("tobind", None)).await;
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "tobind"},
        "target": {"kind": "Node", "name": "node1"}});
    let (code, _) = s
        .post(&format!("{pods}/tobind/binding"), binding.clone())
        .await;
    assert_eq!(code, 201);
    assert_eq!(
        s.get(&format!("{pods}/tobind")).await.1["spec"]["nodeName"],
        "node1"
    );
    let (code, st) = s.post(&format!("{pods}/tobind/binding"), binding).await;
    assert_eq!(code, 409);
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .contains("is already assigned to node \"node1\""),
        "{st}"
    );

    // Foreground: the finalizer the garbage collector acts on; Background: gone at once.
    let deps = "/apis/apps/v1/namespaces/default/deployments";
    s.post(deps, deployment("fg", 1)).await;
    s.post(deps, deployment("bg", 1)).await;
    let (code, v) = s
        .http(
            "DELETE",
            &format!("{deps}/fg"),
            Some("application/json"),
            Some(br#"{"propagationPolicy":"Foreground"}"#.to_vec()),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(v["metadata"]["finalizers"], json!(["foregroundDeletion"]));
    assert!(v["metadata"]["deletionTimestamp"].is_string());
    // When the collector removes the finalizer, the object goes.
    let (code, _) = s
        .http(
            "PATCH",
            &format!("{deps}/fg"),
            Some("application/merge-patch+json"),
            Some(br#"{"metadata":{"finalizers":null}}"#.to_vec()),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(s.get(&format!("{deps}/fg")).await.0, 404);
    let (code, st) = s
        .http(
            "DELETE",
            &format!("{deps}/bg"),
            Some("application/json"),
            Some(br#"{"propagationPolicy":"Background"}"#.to_vec()),
        )
        .await;
    assert_eq!(
        (code, st["status"].as_str(), st["details"]["kind"].as_str()),
        (200, Some("Success"), Some("deployments"))
    );
    assert_eq!(s.get(&format!("{deps}/bg")).await.0, 404);

    // Namespaces: Terminating, and no new content.
    assert_eq!(
        s.post("/api/v1/namespaces", json!({"metadata": {"name": "t"}}))
            .await
            .0,
        201
    );
    let (code, v) = s.http("DELETE", "/api/v1/namespaces/t", None, None).await;
    assert_eq!(code, 200);
    assert_eq!(v["status"]["phase"], "Terminating");
    let (code, v) = s
        .post(
            "/api/v1/namespaces/t/configmaps",
            json!({"metadata": {"name": "c"}}),
        )
        .await;
    assert_eq!(code, 403, "{v}");
    // The namespace controller finalizes it: then it is gone.
    let (code, _) = s
        .http(
            "PUT",
            "/api/v1/namespaces/t/finalize",
            None,
            Some(
                json!({"metadata": {"name": "t"}, "spec": {"finalizers": []}})
                    .to_string()
                    .into_bytes(),
            ),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(s.get("/api/v1/namespaces/t").await.0, 404);

    // deletecollection by label.
    let cms = "/api/v1/namespaces/default/configmaps";
    for (n, l) in [("c1", "x"), ("c2", "x"), ("c3", "y")] {
        s.post(cms, json!({"metadata": {"name": n, "labels": {"k": l}}}))
            .await;
    }
    let (code, v) = s
        .http("DELETE", &format!("{cms}?labelSelector=k%3Dx"), None, None)
        .await;
    assert_eq!(code, 200);
    assert_eq!(v["items"].as_array().unwrap().len(), 2);
    let (_, left) = s.get(cms).await;
    assert_eq!(left["items"].as_array().unwrap().len(), 1);
}

/// Reads watch lines from a streaming response until `n` events or the stream ends.
async fn watch_lines(
    (addr, tls): (SocketAddr, Arc<rustls::ClientConfig>),
    path: &str,
    accept: Option<&str>,
    n: usize,
) -> Vec<Value> {
    let mut stream = connect(addr, &tls).await;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nAccept: {}\r\nConnection: close\r\n\r\n",
        accept.unwrap_or("application/json")
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    stream.flush().await.unwrap();
    let mut buf = Vec::new();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let mut chunk = [0u8; 4096];
        let read = tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await;
        let Ok(Ok(k)) = read else { break };
        if k == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..k]);
        // Chunked framing: pick out the JSON lines between the size lines.
        events = String::from_utf8_lossy(&buf)
            .lines()
            .filter(|l| l.starts_with('{'))
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .collect();
        if events.len() >= n {
            break;
        }
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_watch_replays_filters_times_out_and_expires() {
    let s = start().await;
    let cms = "/api/v1/namespaces/default/configmaps";
    let (_, a) = s
        .post(
            cms,
            json!({"metadata": {"name": "a", "labels": {"k": "1"}}}),
        )
        .await;
    s.post(
        cms,
        json!({"metadata": {"name": "b", "labels": {"k": "2"}}}),
    )
    .await;
    let rv_a: u64 = a["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    // No resourceVersion: the current objects as ADDED, then live events; the selector applies.
    let watcher = {
        let path = format!("{cms}?watch=true&labelSelector=k%3D1&timeoutSeconds=5");
        let addr = (s.addr, s.tls.clone());
        tokio::spawn(async move { watch_lines(addr, &path, None, 3).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.http(
        "PATCH",
        &format!("{cms}/a"),
        Some("application/merge-patch+json"),
        Some(br#"{"data":{"x":"y"}}"#.to_vec()),
    )
    .await;
    s.http(
        "PATCH",
        &format!("{cms}/b"),
        Some("application/merge-patch+json"),
        Some(br#"{"data":{"x":"y"}}"#.to_vec()),
    )
    .await;
    // Leaving the selection is a DELETED event for this watcher.
    s.http(
        "PATCH",
        &format!("{cms}/a"),
        Some("application/merge-patch+json"),
        Some(br#"{"metadata":{"labels":{"k":"3"}}}"#.to_vec()),
    )
    .await;
    let events = watcher.await.unwrap();
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(events[2]["type"], "DELETED");
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(events[0]["object"]["metadata"]["name"], "a");
    assert_eq!(events[1]["type"], "MODIFIED");
    assert_eq!(events[1]["object"]["data"]["x"], "y");
    assert_eq!(events[1]["object"]["kind"], "ConfigMap");

    // From a resourceVersion: only later changes, including the delete.
    s.http("DELETE", &format!("{cms}/b"), None, None).await;
    let events = watch_lines(
        (s.addr, s.tls.clone()),
        &format!("{cms}?watch=1&resourceVersion={rv_a}&timeoutSeconds=1"),
        None,
        10,
    )
    .await;
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        ["ADDED", "MODIFIED", "MODIFIED", "MODIFIED", "DELETED"],
        "{events:?}"
    );

    // Tables in watch events, as `kubectl get -w` asks; the first carries the columns.
    let table_accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
    let events = watch_lines(
        (s.addr, s.tls.clone()),
        &format!("{cms}?watch=true&timeoutSeconds=1"),
        Some(table_accept),
        1,
    )
    .await;
    assert_eq!(events[0]["object"]["kind"], "Table");
    assert!(events[0]["object"]["columnDefinitions"].is_array());

    // A revision older than the window: ERROR 410 Expired.
    for i in 0..EVENT_WINDOW + 10 {
        s.store
            .commit(Batch::one(Op::Put {
                key: format!("/core/events/default/e{}", i % 3),
                value: json!({"metadata": {"name": "e"}}),
                precondition: Precondition::None,
            }))
            .await
            .unwrap();
    }
    let events = watch_lines(
        (s.addr, s.tls.clone()),
        &format!("{cms}?watch=true&resourceVersion=1"),
        None,
        1,
    )
    .await;
    assert_eq!(events[0]["type"], "ERROR");
    assert_eq!(events[0]["object"]["code"], 410);
    assert_eq!(events[0]["object"]["reason"], "Expired");

    // Bookmarks carry the revision watched so far.
    let start = std::time::Instant::now();
    let events = watch_lines(
        (s.addr, s.tls.clone()),
        &format!(
            "{cms}?watch=true&timeoutSeconds=2&allowWatchBookmarks=true&resourceVersion={}",
            s.store.revision()
        ),
        None,
        1,
    )
    .await;
    assert!(
        events.is_empty() || events[0]["type"] == "BOOKMARK",
        "{events:?}"
    );
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_openapi_and_version() {
    // Over the in-memory store: the API needs nothing Raft-specific.
    let s = start_with(Arc::new(MemStore::new()), tempfile::tempdir().unwrap()).await;
    let (code, v) = s.get("/version").await;
    assert_eq!((code, v["minor"].as_str()), (200, Some("32")));
    let agg =
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
    let resp = send(
        s.addr,
        &s.tls,
        http::Request::get("/apis")
            .header("host", s.addr.to_string())
            .header("accept", agg)
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(
        resp.headers()["content-type"],
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    );
    let (_, v1) = s.get("/api/v1").await;
    assert!(v1["resources"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == "pods/eviction"));
    let (code, _) = s.get("/openapi/v2").await;
    assert_eq!(code, 404);
    let (_, idx) = s.get("/openapi/v3").await;
    let url = idx["paths"]["apis/apps/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, doc) = s.get(&url).await;
    assert_eq!(code, 200);
    assert!(doc["paths"].as_object().unwrap().len() >= 2);
    let out = s.kubectl_ok(&["api-resources"]).await;
    assert!(
        out.contains("deployments") && out.contains("deploy") && out.contains("leases"),
        "{out}"
    );
    let out = s.kubectl_ok(&["version"]).await;
    assert!(out.contains("Server Version: v1.32.0"), "{out}");
}

/// `kubectl explain` reads the per-group-version OpenAPI v3 documents: each kind's schema is found by
/// its `x-kubernetes-group-version-kind` and fields are followed through `$ref`s to their docs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_explain_prints_field_docs() {
    let s = start_with(Arc::new(MemStore::new()), tempfile::tempdir().unwrap()).await;
    let out = s.kubectl_ok(&["explain", "deployment.spec.replicas"]).await;
    assert!(
        out.contains("KIND:") && out.contains("Deployment") && out.contains("apps"),
        "{out}"
    );
    assert!(out.contains("FIELD: replicas <integer>"), "{out}");
    assert!(out.contains("Number of desired pods"), "{out}");
    let out = s.kubectl_ok(&["explain", "pods"]).await;
    assert!(out.contains("KIND:") && out.contains("Pod"), "{out}");
    assert!(
        out.contains("Pod is a collection of containers that can run on a host"),
        "{out}"
    );
    for field in ["apiVersion", "kind", "metadata", "spec", "status"] {
        assert!(out.contains(field), "{field}: {out}");
    }
    let out = s
        .kubectl_ok(&["explain", "pods.spec.containers.image"])
        .await;
    assert!(out.contains("Container image name"), "{out}");
    let out = s.kubectl_ok(&["explain", "jobs.spec.backoffLimit"]).await;
    assert!(out.contains("batch"), "{out}");
}

/// A fake node agent: answers one logs request, or upgrades one exec request and echoes bytes.
/// What a real agent serves on 10250: its node certificate (IP SAN 127.0.0.1), client certificates
/// required, so only the API server's gets through.
fn agent_tls(pki: &ClusterPki) -> Arc<rustls::ServerConfig> {
    let mut req =
        pki::CertRequest::client("system:node:node1", &[pki::GROUP_NODES], DEFAULT_VALIDITY);
    req.usage = pki::Usage::ServerAndClient;
    req.ips = vec!["127.0.0.1".parse().unwrap()];
    let cert = pki.ca.issue(&req).unwrap();
    pki::server_config(
        pki.ca_pem(),
        pki::CertSource::from_pem(&cert.cert_pem, &cert.key_pem).unwrap(),
        pki::ClientAuth::Required,
        &[b"http/1.1"],
    )
    .unwrap()
}

async fn fake_agent(pki: &ClusterPki) -> (u16, tokio::task::JoinHandle<String>) {
    let tls = agent_tls(pki);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (tcp, _) = l.accept().await.unwrap();
        let mut c = tokio_rustls::TlsAcceptor::from(tls)
            .accept(tcp)
            .await
            .unwrap();
        let mut buf = Vec::new();
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let mut chunk = [0u8; 1024];
            let n = c.read(&mut chunk).await.unwrap();
            assert!(n > 0);
            buf.extend_from_slice(&chunk[..n]);
        }
        let head = String::from_utf8_lossy(&buf).to_string();
        let first = head.lines().next().unwrap().to_string();
        if first.contains("/containerLogs/") {
            let body = "line one\nline two\n";
            let resp = format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            c.write_all(resp.as_bytes()).await.unwrap();
            c.flush().await.unwrap();
        } else {
            c.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n").await.unwrap();
            let mut echo = [0u8; 64];
            c.flush().await.unwrap();
            let n = c.read(&mut echo).await.unwrap();
            c.write_all(&echo[..n]).await.unwrap();
            c.flush().await.unwrap();
        }
        c.shutdown().await.ok();
        first
    });
    (port, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_and_exec_are_proxied_to_the_agent() {
    let s = start().await;
    let (port, agent) = fake_agent(&s.pki).await;
    put_node(&*s.store, "node1", port).await;
    let pod = json!({"metadata": {"name": "lp"}, "spec": {"nodeName": "node1", "containers": [{"name": "main", "image": "busybox"}]}});
    assert_eq!(s.post("/api/v1/namespaces/default/pods", pod).await.0, 201);
    let out = s.kubectl_ok(&["logs", "lp", "--tail=2"]).await;
    assert_eq!(out, "line one\nline two\n");
    let first = agent.await.unwrap();
    assert!(
        first.starts_with("GET /containerLogs/default/lp/main?"),
        "{first}"
    );
    assert!(first.contains("tailLines=2"), "{first}");

    let (port, agent) = fake_agent(&s.pki).await;
    put_node(&*s.store, "node1", port).await;
    let mut c = connect(s.addr, &s.tls).await;
    c.write_all(b"GET /api/v1/namespaces/default/pods/lp/exec?command=ls&command=%2F&stdout=true HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n").await.unwrap();
    c.flush().await.unwrap();
    let mut buf = Vec::new();
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let mut chunk = [0u8; 1024];
        let n = c.read(&mut chunk).await.unwrap();
        assert!(n > 0, "{}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-protocol: v5.channel.k8s.io"),
        "{head}"
    );
    c.write_all(b"\x01ping").await.unwrap();
    c.flush().await.unwrap();
    let mut echo = [0u8; 5];
    tokio::time::timeout(Duration::from_secs(10), c.read_exact(&mut echo))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echo, b"\x01ping");
    let first = agent.await.unwrap();
    assert!(
        first.starts_with("GET /exec/default/lp/main?command=ls&command=%2F&stdout=true"),
        "{first}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_kubernetes_client() {
    let has_module = Command::new("python3")
        .args(["-c", "import kubernetes"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !has_module {
        println!("skipped: python3 or its kubernetes module is missing (pip install kubernetes)");
        return;
    }
    let s = start().await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python_client.py");
    let url = s.dir.path().join("kubeconfig");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(script)
            .arg(url)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("python client: ok"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_node_and_everyday_verbs() {
    let s = start().await;
    put_node(&*s.store, "node1", 1).await;
    s.kubectl_ok(&["apply", "-f", &fixture("web.yaml")]).await;
    let pod = json!({"metadata": {"name": "onnode", "ownerReferences": []},
        "spec": {"nodeName": "node1", "containers": [{"name": "c", "image": "busybox"}]}});
    assert_eq!(s.post("/api/v1/namespaces/default/pods", pod).await.0, 201);

    let out = s.kubectl_ok(&["cordon", "node1"]).await;
    assert!(out.contains("node/node1 cordoned"), "{out}");
    let u = s
        .kubectl_ok(&[
            "get",
            "node",
            "node1",
            "-o",
            "jsonpath={.spec.unschedulable}",
        ])
        .await;
    assert_eq!(u, "true");
    let r = s
        .kubectl(&[
            "drain",
            "node1",
            "--force",
            "--grace-period=0",
            "--timeout=20s",
        ])
        .await;
    assert!(r.ok, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("node/node1 drained"), "{}", r.stdout);
    assert!(r.stdout.contains("pod/onnode evicted"), "{}", r.stdout);
    let out = s.kubectl_ok(&["uncordon", "node1"]).await;
    assert!(out.contains("node/node1 uncordoned"), "{out}");

    let out = s.kubectl_ok(&["label", "deploy", "web", "tier=fe"]).await;
    assert!(out.contains("deployment.apps/web labeled"), "{out}");
    let out = s.kubectl_ok(&["annotate", "svc", "web", "note=x"]).await;
    assert!(out.contains("service/web annotated"), "{out}");
    let out = s
        .kubectl_ok(&[
            "patch",
            "deploy",
            "web",
            "--type=json",
            "-p",
            r#"[{"op":"replace","path":"/spec/replicas","value":4}]"#,
        ])
        .await;
    assert!(out.contains("deployment.apps/web patched"), "{out}");
    let out = s.kubectl_ok(&["rollout", "restart", "deploy/web"]).await;
    assert!(out.contains("deployment.apps/web restarted"), "{out}");
    let out = s.kubectl_ok(&["replace", "-f", &fixture("web.yaml")]).await;
    assert!(out.contains("deployment.apps/web replaced"), "{out}");
    let out = s.kubectl_ok(&["describe", "deploy", "web"]).await;
    assert!(out.contains("Name:") && out.contains("web"), "{out}");

    let out = s
        .kubectl_ok(&["create", "deployment", "d2", "--image=busybox:1.36"])
        .await;
    assert!(out.contains("deployment.apps/d2 created"), "{out}");
    let out = s
        .kubectl_ok(&["expose", "deployment", "d2", "--port=80"])
        .await;
    assert!(out.contains("service/d2 exposed"), "{out}");
    let out = s
        .kubectl_ok(&["create", "secret", "generic", "sec", "--from-literal=a=b"])
        .await;
    assert!(out.contains("secret/sec created"), "{out}");
    let out = s.kubectl_ok(&["run", "r1", "--image=busybox"]).await;
    assert!(out.contains("pod/r1 created"), "{out}");
    let out = s.kubectl_ok(&["get", "pods", "-A"]).await;
    assert!(out.contains("NAMESPACE") && out.contains("r1"), "{out}");
    let out = s.kubectl_ok(&["delete", "pod", "r1"]).await;
    assert!(out.contains("pod \"r1\" deleted"), "{out}");
    let out = s.kubectl_ok(&["cluster-info"]).await;
    assert!(out.contains("is running at"), "{out}");
}

/// A store whose cluster has no leader: every call fails with a retryable error.
struct Leaderless;

impl ObjectStore for Leaderless {
    fn commit(&self, _: Batch) -> BoxFuture<'_, StoreResult<Committed>> {
        Box::pin(async { Err(StoreError::NoLeader) })
    }
    fn get<'a>(&'a self, _: &'a str, _: Consistency) -> BoxFuture<'a, StoreResult<Option<Object>>> {
        Box::pin(async { Err(StoreError::Timeout) })
    }
    fn list<'a>(
        &'a self,
        _: &'a str,
        _: Consistency,
    ) -> BoxFuture<'a, StoreResult<(Vec<Object>, u64)>> {
        Box::pin(async { Err(StoreError::NoLeader) })
    }
    fn watch<'a>(&'a self, _: &'a str, _: u64) -> BoxFuture<'a, StoreResult<WatchStream>> {
        Box::pin(async { Err(StoreError::NoLeader) })
    }
    fn revision(&self) -> u64 {
        0
    }
    fn is_leader(&self) -> bool {
        false
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_unavailability_is_retryable() {
    let store: Arc<dyn ObjectStore> = Arc::new(Leaderless);
    let s = serve_secure(store, tempfile::tempdir().unwrap()).await;
    let (code, st) = s.get("/api/v1/namespaces/default/pods").await;
    assert_eq!(
        (code, st["reason"].as_str()),
        (503, Some("ServiceUnavailable"))
    );
    assert_eq!(st["details"]["retryAfterSeconds"], 1);
    let (code, st) = s.get("/api/v1/namespaces/default/pods/x").await;
    assert_eq!((code, st["reason"].as_str()), (504, Some("Timeout")));
    let events = watch_lines(
        (s.addr, s.tls.clone()),
        "/api/v1/namespaces/default/pods?watch=true&resourceVersion=5",
        None,
        1,
    )
    .await;
    assert_eq!(events[0]["type"], "ERROR");
    assert_eq!(events[0]["object"]["code"], 503);
}

/// SHA-1 (RFC 3174), only to answer a WebSocket handshake in the fake agent below.
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (i, x) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

/// A server-to-client WebSocket binary frame (unmasked) carrying one v5 channel message.
fn ws_frame(channel: u8, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() + 1;
    assert!(len < 126);
    let mut f = vec![0x82, len as u8, channel];
    f.extend_from_slice(payload);
    f
}

/// A fake agent speaking just enough v5.channel.k8s.io for `kubectl exec` to print a line and exit.
async fn fake_exec_agent(pki: &ClusterPki) -> (u16, tokio::task::JoinHandle<String>) {
    let tls = agent_tls(pki);
    use base64::Engine;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (tcp, _) = l.accept().await.unwrap();
        let mut c = tokio_rustls::TlsAcceptor::from(tls)
            .accept(tcp)
            .await
            .unwrap();
        let mut buf = Vec::new();
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let mut chunk = [0u8; 1024];
            let n = c.read(&mut chunk).await.unwrap();
            assert!(n > 0);
            buf.extend_from_slice(&chunk[..n]);
        }
        let head = String::from_utf8_lossy(&buf).to_string();
        let key = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("sec-websocket-key")
                    .then(|| v.trim().to_string())
            })
            .expect("a websocket key");
        let accept = base64::engine::general_purpose::STANDARD.encode(sha1(
            format!("{key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11").as_bytes(),
        ));
        let resp = format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n");
        c.write_all(resp.as_bytes()).await.unwrap();
        c.write_all(&ws_frame(1, b"hello from exec\n"))
            .await
            .unwrap();
        c.write_all(&ws_frame(3, br#"{"metadata":{},"status":"Success"}"#))
            .await
            .unwrap();
        c.write_all(&[0x88, 0x02, 0x03, 0xE8]).await.unwrap();
        // TLS buffers what is written until flushed.
        c.flush().await.unwrap();
        // Let kubectl close its side before we drop the connection.
        let mut rest = [0u8; 256];
        let _ = tokio::time::timeout(Duration::from_secs(5), c.read(&mut rest)).await;
        head.lines().next().unwrap().to_string()
    });
    (port, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_exec_goes_through_the_websocket_proxy() {
    assert_eq!(
        sha1(b"abc")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
        "a9993e364706816aba3e25717850c26c9cd0d89d"
    );
    let s = start().await;
    let (port, agent) = fake_exec_agent(&s.pki).await;
    put_node(&*s.store, "node1", port).await;
    let pod = json!({"metadata": {"name": "ex"}, "spec": {"nodeName": "node1", "containers": [{"name": "main", "image": "busybox"}]}});
    assert_eq!(s.post("/api/v1/namespaces/default/pods", pod).await.0, 201);
    let out = s
        .kubectl_ok(&["exec", "ex", "--", "echo", "hi there"])
        .await;
    assert_eq!(out, "hello from exec\n");
    let first = agent.await.unwrap();
    assert!(
        first.starts_with("GET /exec/default/ex/main?command=echo&command=hi+there"),
        "{first}"
    );
}

/// Sequential create and get latency over a single-member Raft store (run with `--ignored`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, not a check"]
async fn measure_create_and_get_latency() {
    let s = start().await;
    let n = 300;
    let t = std::time::Instant::now();
    for i in 0..n {
        let (code, _) = s
            .post(
                "/api/v1/namespaces/default/configmaps",
                json!({"metadata": {"name": format!("m{i}")}, "data": {"k": "v"}}),
            )
            .await;
        assert_eq!(code, 201);
    }
    let create = t.elapsed() / n;
    let t = std::time::Instant::now();
    for i in 0..n {
        assert_eq!(
            s.get(&format!("/api/v1/namespaces/default/configmaps/m{i}"))
                .await
                .0,
            200
        );
    }
    let get = t.elapsed() / n;
    let t = std::time::Instant::now();
    let (_, list) = s.get("/api/v1/namespaces/default/configmaps").await;
    assert_eq!(list["items"].as_array().unwrap().len(), n as usize);
    println!(
        "create {create:?}/op, get {get:?}/op, list of {n} {:?}",
        t.elapsed()
    );
}

/// What a client with `tls` gets for `GET path` (with an optional bearer token); `None` when TLS
/// refused the connection.
async fn status_of(
    s: &Server,
    tls: Arc<rustls::ClientConfig>,
    path: &str,
    token: Option<&str>,
) -> Option<(u16, Value)> {
    let io = pki::net::connect(&s.addr.to_string(), tls).await.ok()?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .ok()?;
    tokio::spawn(conn);
    let mut req = http::Request::get(path).header("host", s.addr.to_string());
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    // TLS 1.3 reports a refused client certificate only on the first read.
    let resp = sender
        .send_request(req.body(Full::new(Bytes::new())).unwrap())
        .await
        .ok()?;
    let code = resp.status().as_u16();
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    Some((code, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_refuses_anonymous_wrong_ca_and_expired_clients() {
    let s = start().await;
    let h1: &[&[u8]] = &[b"http/1.1"];
    let anonymous = pki::client_config(s.pki.ca_pem(), None, h1).unwrap();
    let (code, st) = status_of(&s, anonymous.clone(), "/api/v1/secrets", None)
        .await
        .unwrap();
    assert_eq!(code, 401, "{st}");
    assert_eq!(
        (
            st["kind"].as_str(),
            st["reason"].as_str(),
            st["code"].as_u64()
        ),
        (Some("Status"), Some("Unauthorized"), Some(401))
    );
    for open in ["/healthz", "/readyz", "/livez", "/version"] {
        let (code, _) = status_of(&s, anonymous.clone(), open, None).await.unwrap();
        assert_eq!(code, 200, "{open} is open to anyone, as in Kubernetes");
    }
    // A bad token is refused even where anonymous requests pass.
    for path in ["/api/v1/secrets", "/version"] {
        let (code, _) = status_of(&s, anonymous.clone(), path, Some("not-a-token"))
            .await
            .unwrap();
        assert_eq!(code, 401, "{path}");
    }

    // A client certificate from another CA, or an expired one from the right CA: TLS refuses.
    let other = pki::Ca::generate("other", Duration::from_secs(3600)).unwrap();
    let forged = other
        .issue(&pki::CertRequest::client(
            "berth-admin",
            &[pki::GROUP_MASTERS],
            Duration::from_secs(3600),
        ))
        .unwrap();
    let cfg = pki::client_config(
        s.pki.ca_pem(),
        Some(pki::CertSource::from_pem(&forged.cert_pem, &forged.key_pem).unwrap()),
        h1,
    )
    .unwrap();
    assert_eq!(status_of(&s, cfg, "/api/v1/secrets", None).await, None);
    let old = s
        .pki
        .ca
        .issue(&pki::CertRequest::client(
            "berth-admin",
            &[pki::GROUP_MASTERS],
            Duration::ZERO,
        ))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let cfg = pki::client_config(
        s.pki.ca_pem(),
        Some(pki::CertSource::from_pem(&old.cert_pem, &old.key_pem).unwrap()),
        h1,
    )
    .unwrap();
    assert_eq!(status_of(&s, cfg, "/api/v1/secrets", None).await, None);

    // The server's own certificate is checked by clients: one that trusts another CA refuses it.
    let distrust = pki::client_config(other.cert_pem(), None, h1).unwrap();
    assert_eq!(status_of(&s, distrust, "/version", None).await, None);

    // The admin certificate works.
    let (code, _) = status_of(&s, s.tls.clone(), "/api/v1/secrets", None)
        .await
        .unwrap();
    assert_eq!(code, 200);
}

impl Server {
    /// Stock kubectl with a kubeconfig that holds only the CA and `token` (no client certificate).
    async fn kubectl_with_token(&self, token: &str, args: &[&str]) -> Run {
        let path = self.dir.path().join("token.kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://{}\n    certificate-authority-data: {}\nusers:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\n",
            self.addr,
            base64_encode(self.pki.ca_pem())
        );
        std::fs::write(&path, text).unwrap();
        let mut cmd = Command::new(KUBECTL);
        cmd.arg("--cache-dir")
            .arg(self.dir.path().join("cache-token"))
            .args(args)
            .env("KUBECONFIG", &path)
            .env("HOME", self.dir.path());
        let out: Output = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .unwrap()
            .expect("kubectl runs");
        Run {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

fn base64_encode(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_a_view_only_user_can_get_but_not_create_or_exec() {
    let s = start().await;
    s.kubectl_ok(&["create", "-f", &fixture("pod.yaml")]).await;
    s.kubectl_ok(&["create", "serviceaccount", "viewer"]).await;
    s.kubectl_ok(&[
        "create",
        "rolebinding",
        "viewer-view",
        "--clusterrole=view",
        "--serviceaccount=default:viewer",
    ])
    .await;
    let token = s.kubectl_ok(&["create", "token", "viewer"]).await;
    let token = token.trim();
    assert!(token.len() > 40, "{token}");

    let r = s.kubectl_with_token(token, &["get", "pods"]).await;
    assert!(r.ok, "{}", r.stderr);
    assert!(r.stdout.contains("solo"), "{}", r.stdout);

    let r = s
        .kubectl_with_token(token, &["create", "configmap", "x", "--from-literal=a=b"])
        .await;
    assert!(!r.ok);
    assert!(
        r.stderr.contains(r#"configmaps is forbidden: User "system:serviceaccount:default:viewer" cannot create resource "configmaps" in API group "" in the namespace "default""#),
        "{}",
        r.stderr
    );
    let r = s
        .kubectl_with_token(token, &["exec", "solo", "--", "ls"])
        .await;
    assert!(!r.ok);
    assert!(
        r.stderr.contains(r#"cannot create resource "pods/exec""#)
            || r.stderr.contains(r#"cannot get resource "pods/exec""#),
        "{}",
        r.stderr
    );
    let r = s.kubectl_with_token(token, &["get", "secrets"]).await;
    assert!(!r.ok, "view does not read Secrets: {}", r.stdout);

    for (args, want) in [
        (vec!["auth", "can-i", "get", "pods"], "yes"),
        (vec!["auth", "can-i", "create", "pods"], "no"),
        (vec!["auth", "can-i", "create", "pods/exec"], "no"),
    ] {
        let r = s.kubectl_with_token(token, &args).await;
        assert_eq!(r.stdout.trim(), want, "{args:?}: {}", r.stderr);
    }
    // The admin may do anything.
    let r = s.kubectl(&["auth", "can-i", "create", "pods/exec"]).await;
    assert_eq!(r.stdout.trim(), "yes", "{}", r.stderr);

    // A token whose ServiceAccount is gone no longer authenticates.
    s.kubectl_ok(&["delete", "serviceaccount", "viewer"]).await;
    let r = s.kubectl_with_token(token, &["get", "pods"]).await;
    assert!(!r.ok);
    assert!(r.stderr.contains("Unauthorized"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_identity_sees_only_its_own_pods_secrets_and_status() {
    let s = start().await;
    put_node(&*s.store, "n1", 1).await;
    put_node(&*s.store, "n2", 1).await;
    for (pod, node, secret) in [("p1", "n1", "s1"), ("p2", "n2", "s2")] {
        let (code, v) = s
            .post(
                "/api/v1/namespaces/default/secrets",
                json!({"metadata": {"name": secret}, "stringData": {"k": "v"}}),
            )
            .await;
        assert_eq!(code, 201, "{v}");
        let (code, v) = s
            .post(
                "/api/v1/namespaces/default/pods",
                json!({"metadata": {"name": pod}, "spec": {"nodeName": node,
                    "containers": [{"name": "c", "image": "busybox"}],
                    "volumes": [{"name": "s", "secret": {"secretName": secret}}]}}),
            )
            .await;
        assert_eq!(code, 201, "{v}");
    }
    let n1 = s
        .pki
        .issue_user_cert("system:node:n1", &[pki::GROUP_NODES])
        .unwrap();
    let tls = pki::client_config(
        s.pki.ca_pem(),
        Some(pki::CertSource::from_pem(&n1.cert_pem, &n1.key_pem).unwrap()),
        &[b"http/1.1"],
    )
    .unwrap();
    let get = |path: &'static str| {
        let tls = tls.clone();
        let s = &s;
        async move { status_of(s, tls, path, None).await.unwrap().0 }
    };
    assert_eq!(get("/api/v1/namespaces/default/secrets/s1").await, 200);
    assert_eq!(get("/api/v1/namespaces/default/secrets/s2").await, 403);
    assert_eq!(get("/api/v1/namespaces/default/pods/p1").await, 200);
    assert_eq!(get("/api/v1/namespaces/default/pods/p2").await, 403);
    assert_eq!(get("/api/v1/nodes/n1").await, 200);
    assert_eq!(get("/api/v1/nodes/n2").await, 403);
    assert_eq!(get("/api/v1/namespaces/default/secrets").await, 403);

    // Status writes: its own node's, never another's.
    let patch = |path: String| {
        let tls = tls.clone();
        let addr = s.addr;
        async move {
            let body = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
            let req = http::Request::patch(path)
                .header("host", addr.to_string())
                .header("content-type", "application/merge-patch+json")
                .body(Full::new(Bytes::from(body.to_string())))
                .unwrap();
            send(addr, &tls, req).await.status().as_u16()
        }
    };
    assert_eq!(patch("/api/v1/nodes/n1/status".into()).await, 200);
    assert_eq!(patch("/api/v1/nodes/n2/status".into()).await, 403);
    assert_eq!(
        patch("/api/v1/namespaces/default/pods/p2/status".into()).await,
        403
    );
}

/// Pod Security admission: host access is refused where the namespace enforces baseline (the default),
/// allowed in kube-system and in namespaces labelled privileged, for pods and workload templates alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_security_admission_follows_namespace_labels() {
    let s = start().await;
    let pod = |name: &str, spec: Value| json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec});
    let host = json!({"hostNetwork": true,
        "containers": [{"name": "c", "image": "busybox", "securityContext": {"privileged": true}}],
        "volumes": [{"name": "v", "hostPath": {"path": "/"}}]});
    let (code, st) = s
        .post("/api/v1/namespaces/default/pods", pod("x", host.clone()))
        .await;
    assert_eq!(code, 403, "{st}");
    assert_eq!(st["reason"], "Forbidden");
    assert_eq!(
        st["message"],
        "pods \"x\" is forbidden: violates PodSecurity \"baseline:latest\": host namespaces (hostNetwork=true), privileged (container \"c\" must not set securityContext.privileged=true), hostPath volumes (volume \"v\")"
    );
    let (code, st) = s
        .post(
            "/api/v1/namespaces/kube-system/pods",
            pod("x", host.clone()),
        )
        .await;
    assert_eq!(code, 201, "kube-system is privileged: {st}");

    let ns = |name: &str, level: &str| {
        json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "labels": {"pod-security.kubernetes.io/enforce": level}}})
    };
    assert_eq!(
        s.post("/api/v1/namespaces", ns("ops", "privileged"))
            .await
            .0,
        201
    );
    assert_eq!(
        s.post("/api/v1/namespaces/ops/pods", pod("x", host.clone()))
            .await
            .0,
        201
    );

    let mut d = deployment("d", 1);
    d["spec"]["template"]["spec"] = host.clone();
    let (code, st) = s
        .post("/apis/apps/v1/namespaces/default/deployments", d.clone())
        .await;
    assert_eq!(code, 403, "{st}");
    assert!(
        st["message"].as_str().unwrap().starts_with(
            "deployments.apps \"d\" is forbidden: violates PodSecurity \"baseline:latest\": host namespaces"
        ),
        "{st}"
    );
    assert_eq!(
        s.post("/apis/apps/v1/namespaces/ops/deployments", d)
            .await
            .0,
        201
    );

    // restricted: an ordinary pod is refused, a hardened one admitted.
    assert_eq!(
        s.post("/api/v1/namespaces", ns("tight", "restricted"))
            .await
            .0,
        201
    );
    let plain = json!({"containers": [{"name": "c", "image": "busybox"}]});
    let (code, st) = s
        .post("/api/v1/namespaces/tight/pods", pod("p", plain))
        .await;
    assert_eq!(code, 403, "{st}");
    assert!(
        st["message"].as_str().unwrap().contains(
            "violates PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false"
        ),
        "{st}"
    );
    let hardened = json!({"securityContext": {"runAsNonRoot": true, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{"name": "c", "image": "busybox", "securityContext": {
            "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]});
    let (code, st) = s
        .post("/api/v1/namespaces/tight/pods", pod("p", hardened))
        .await;
    assert_eq!(code, 201, "{st}");
}

/// #15: HorizontalPodAutoscalers through stock kubectl. `kubectl autoscale` (1.32) posts an
/// `autoscaling/v1` object as protobuf; `get`, `describe` and `explain` read the preferred v2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_autoscale_and_hpa_at_two_versions() {
    let s = start_with(Arc::new(MemStore::new()), tempfile::tempdir().unwrap()).await;
    let (code, _) = s
        .post(
            "/apis/apps/v1/namespaces/default/deployments",
            deployment("web", 1),
        )
        .await;
    assert_eq!(code, 201);
    let r = s
        .kubectl(&[
            "autoscale",
            "deployment",
            "web",
            "--cpu-percent=50",
            "--min=1",
            "--max=10",
            "-v=8",
        ])
        .await;
    assert!(r.ok, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(
        r.stdout.trim(),
        "horizontalpodautoscaler.autoscaling/web autoscaled"
    );
    // It reads the target first, then posts a v1 object as protobuf.
    assert!(
        r.stderr.contains("application/vnd.kubernetes.protobuf"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("/apis/apps/v1/namespaces/default/deployments/web"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("POST https://")
            && r.stderr
                .contains("/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers"),
        "{}",
        r.stderr
    );

    let out = s.kubectl_ok(&["get", "hpa"]).await;
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "REFERENCE",
            "TARGETS",
            "MINPODS",
            "MAXPODS",
            "REPLICAS",
            "AGE"
        ]
    );
    assert!(
        out.contains("Deployment/web") && out.contains("cpu: <unknown>/50%"),
        "{out}"
    );
    // kubectl 1.32 drops the version of a short name (`hpa.v1.autoscaling` reads the preferred v2:
    // its shortcut expander builds a fresh GroupVersionResource), so the v1 read names the resource.
    let cpu = s
        .kubectl_ok(&[
            "get",
            "horizontalpodautoscalers.v1.autoscaling",
            "web",
            "-o",
            "jsonpath={.spec.targetCPUUtilizationPercentage}",
        ])
        .await;
    assert_eq!(cpu, "50");
    let yaml = s.kubectl_ok(&["get", "hpa", "web", "-o", "yaml"]).await;
    assert!(
        yaml.contains("apiVersion: autoscaling/v2") && yaml.contains("averageUtilization: 50"),
        "{yaml}"
    );
    let described = s.kubectl_ok(&["describe", "hpa", "web"]).await;
    assert!(
        described.contains("Deployment/web") && described.contains("Max replicas"),
        "{described}"
    );
    let explained = s.kubectl_ok(&["explain", "hpa.spec.behavior"]).await;
    assert!(
        explained.contains("scaleDown") && explained.contains("autoscaling"),
        "{explained}"
    );

    // The same object at both versions, over HTTP.
    let base = "/apis/autoscaling/{v}/namespaces/default/horizontalpodautoscalers";
    let (code, v1) = s.get(&format!("{}/web", base.replace("{v}", "v1"))).await;
    assert_eq!((code, &v1["apiVersion"]), (200, &json!("autoscaling/v1")));
    let (_, list) = s.get(&base.replace("{v}", "v1")).await;
    assert_eq!(list["apiVersion"], "autoscaling/v1");
    assert_eq!(
        list["items"][0]["spec"]["targetCPUUtilizationPercentage"],
        50
    );
    let (_, v2) = s.get(&format!("{}/web", base.replace("{v}", "v2"))).await;
    assert_eq!(
        v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        50
    );
    let (_, group) = s.get("/apis/autoscaling").await;
    assert_eq!(group["preferredVersion"]["version"], "v2");
    assert_eq!(group["versions"].as_array().unwrap().len(), 2);

    // A patch at v1 applies to the v1 form and keeps what only v2 says.
    let behavior = json!({"spec": {"behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}});
    let (code, _) = s
        .http(
            "PATCH",
            &format!("{}/web", base.replace("{v}", "v2")),
            Some("application/merge-patch+json"),
            Some(behavior.to_string().into_bytes()),
        )
        .await;
    assert_eq!(code, 200);
    let patch = json!({"spec": {"targetCPUUtilizationPercentage": 70}});
    let (code, patched) = s
        .http(
            "PATCH",
            &format!("{}/web", base.replace("{v}", "v1")),
            Some("application/merge-patch+json"),
            Some(patch.to_string().into_bytes()),
        )
        .await;
    assert_eq!(
        (code, &patched["spec"]["targetCPUUtilizationPercentage"]),
        (200, &json!(70)),
        "{patched}"
    );
    let (_, v2) = s.get(&format!("{}/web", base.replace("{v}", "v2"))).await;
    assert_eq!(
        v2["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"], 60,
        "{v2}"
    );
    assert_eq!(
        v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        70
    );
    assert!(v2["metadata"]["annotations"]
        .get("autoscaling.alpha.kubernetes.io/behavior")
        .is_none());

    let bad = s.dir.path().join("bad-hpa.yaml");
    std::fs::write(
        &bad,
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: bad\nspec:\n  scaleTargetRef:\n    apiVersion: apps/v1\n    kind: Deployment\n    name: web\n  minReplicas: 1\n  maxReplicas: 0\n",
    )
    .unwrap();
    let r = s.kubectl(&["create", "-f", bad.to_str().unwrap()]).await;
    assert!(!r.ok);
    assert!(
        r.stderr
            .contains("The HorizontalPodAutoscaler \"bad\" is invalid")
            && r.stderr
                .contains("spec.maxReplicas: Invalid value: 0: must be greater than 0"),
        "{}",
        r.stderr
    );

    let out = s.kubectl_ok(&["delete", "hpa", "web"]).await;
    assert_eq!(
        out.trim(),
        "horizontalpodautoscaler.autoscaling \"web\" deleted"
    );
}
