//! `metrics.k8s.io` end to end on 127.0.0.1: the API over HTTPS, stand-in agents serving a fixed
//! `/stats/summary` over mutual TLS, and the real `kubectl top` (1.32) reading them.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use bytes::Bytes;
use control_plane::api;
use control_plane::security::{ClusterPki, MemberIdentity, DEFAULT_VALIDITY};
use control_plane::store::{self, Batch, MemStore, ObjectStore, Op, Precondition};
use futures::StreamExt;
use http_body_util::{BodyExt, Empty, Full};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const KUBECTL: &str = "/usr/bin/kubectl";

fn cpu(nanocores: u64) -> Value {
    json!({"time": "2026-01-01T00:00:10Z", "windowNanoSeconds": 2_000_000_000u64,
        "usageNanoCores": nanocores, "usageCoreNanoSeconds": 1})
}

fn mem(bytes: u64) -> Value {
    json!({"time": "2026-01-01T00:00:10Z", "workingSetBytes": bytes, "usageBytes": bytes})
}

fn pod(ns: &str, name: &str, containers: &[(&str, u64, u64)]) -> Value {
    let cs: Vec<Value> = containers
        .iter()
        .map(|(n, c, m)| json!({"name": n, "cpu": cpu(*c), "memory": mem(*m)}))
        .collect();
    json!({"podRef": {"name": name, "namespace": ns, "uid": name}, "containers": cs})
}

/// What the stand-in agent of n1 measured.
fn summary() -> String {
    json!({"node": {"nodeName": "n1", "cpu": cpu(250_000_000), "memory": mem(512 << 20)},
    "pods": [
        pod("default", "web", &[("app", 150_000_000, 64 << 20), ("sidecar", 50_000_000, 16 << 20)]),
        pod("default", "db", &[("db", 300_000_000, 256 << 20)]),
        pod("kube-system", "dns", &[("dns", 5_000_000, 20 << 20)]),
    ]})
    .to_string()
}

/// A stand-in agent for `node`: its node certificate, a cluster client certificate required, and
/// `body` on every request.
async fn agent(pki: &ClusterPki, node: &str, body: String) -> u16 {
    let (csr, key) = pki::new_csr(node).unwrap();
    let cert = pki.issue_node_cert(node, "127.0.0.1", &csr).unwrap();
    let tls = pki::server_config(
        pki.ca_pem(),
        pki::CertSource::from_pem(&cert, &key).unwrap(),
        pki::ClientAuth::Required,
        &[b"http/1.1"],
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut incoming = std::pin::pin!(pki::net::incoming(listener, tls));
        while let Some(next) = incoming.next().await {
            let Ok(stream) = next else { continue };
            let body = body.clone();
            let svc = hyper::service::service_fn(move |req: http::Request<_>| {
                let body = body.clone();
                async move {
                    let status = if req.uri().path() == "/stats/summary" {
                        200
                    } else {
                        404
                    };
                    let mut resp = http::Response::new(Full::new(Bytes::from(body)));
                    *resp.status_mut() = http::StatusCode::from_u16(status).unwrap();
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc),
            );
        }
    });
    port
}

async fn put(store: &dyn ObjectStore, key: String, value: Value) {
    store
        .commit(Batch::one(Op::Put {
            key,
            value,
            precondition: Precondition::None,
        }))
        .await
        .unwrap();
}

async fn add_node(store: &dyn ObjectStore, name: &str, port: u16) {
    let node = json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name},
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                   "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
                   "capacity": {"cpu": "2", "memory": "2Gi", "pods": "110"},
                   "allocatable": {"cpu": "2", "memory": "2Gi", "pods": "110"}}});
    put(store, store::key("", "nodes", "", name), node).await;
}

async fn add_pod(store: &dyn ObjectStore, ns: &str, name: &str, app: &str) {
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": app},
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"nodeName": "n1", "containers": [{"name": "app", "image": "x"}]},
        "status": {"phase": "Running"}});
    put(store, store::key("", "pods", ns, name), pod).await;
}

struct Cluster {
    dir: tempfile::TempDir,
    addr: std::net::SocketAddr,
    pki: Arc<ClusterPki>,
    shutdown: CancellationToken,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The API over HTTPS; n1's agent answers, n2's port is closed, n3's agent answers garbage.
async fn start() -> Cluster {
    pki::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let identity = MemberIdentity {
        name: "a".into(),
        sans: vec!["127.0.0.1".into()],
        validity: DEFAULT_VALIDITY,
    };
    let pki = Arc::new(ClusterPki::create(&dir.path().join("member"), &identity, None).unwrap());
    let store: Arc<dyn ObjectStore> = Arc::new(MemStore::new());
    api::bootstrap(&*store).await.unwrap();
    let n1 = agent(&pki, "n1", summary()).await;
    let n3 = agent(&pki, "n3", "{\"node\": {\"nodeName\": 7".into()).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let n2 = closed.local_addr().unwrap().port();
    drop(closed);
    add_node(&*store, "n1", n1).await;
    add_node(&*store, "n2", n2).await;
    add_node(&*store, "n3", n3).await;
    add_pod(&*store, "default", "web", "web").await;
    add_pod(&*store, "default", "db", "db").await;
    add_pod(&*store, "kube-system", "dns", "dns").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let kubeconfig = pki
        .write_admin_kubeconfig(&format!("https://{addr}"))
        .unwrap();
    std::fs::copy(kubeconfig, dir.path().join("kubeconfig")).unwrap();
    let config = api::ApiConfig {
        advertise_address: addr.to_string(),
        pki: Some(pki.clone()),
        ..api::ApiConfig::default()
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(api::serve_with(listener, store, config, shutdown.clone()));
    Cluster {
        dir,
        addr,
        pki,
        shutdown,
    }
}

fn kubectl_command(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(KUBECTL);
    c.arg("--cache-dir")
        .arg(dir.join("cache"))
        .args(args)
        .env("KUBECONFIG", dir.join("kubeconfig"))
        .env("HOME", dir);
    c
}

impl Cluster {
    /// (success, stdout, stderr) of kubectl as the cluster admin.
    async fn kubectl(&self, args: &[&str]) -> (bool, String, String) {
        let mut cmd = kubectl_command(self.dir.path(), args);
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .unwrap()
            .expect("kubectl runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    async fn kubectl_ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.kubectl(args).await;
        assert!(ok, "kubectl {args:?} failed:\n{out}\n{err}");
        out
    }

    /// GET `path` as `user` (a client certificate with `groups`): status and JSON body.
    async fn get_as(&self, user: &str, groups: &[&str], path: &str) -> (u16, Value) {
        let issued = self.pki.issue_user_cert(user, groups).unwrap();
        let tls = pki::client_config(
            self.pki.ca_pem(),
            Some(pki::CertSource::from_pem(&issued.cert_pem, &issued.key_pem).unwrap()),
            &[b"http/1.1"],
        )
        .unwrap();
        let io = pki::net::connect(&self.addr.to_string(), tls)
            .await
            .unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
                .await
                .unwrap();
        tokio::spawn(conn);
        let req = http::Request::get(path)
            .header(http::header::HOST, self.addr.to_string())
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        let code = resp.status().as_u16();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (code, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }
}

/// The whitespace-separated cells of the line starting with `first`.
fn row<'a>(out: &'a str, first: &str) -> Option<Vec<&'a str>> {
    out.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&first))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_top_reads_the_agents() {
    let c = start().await;
    let out = c.kubectl_ok(&["top", "nodes"]).await;
    assert_eq!(
        row(&out, "n1"),
        Some(vec!["n1", "250m", "12%", "512Mi", "25%"]),
        "{out}"
    );
    let out = c.kubectl_ok(&["top", "pods", "-A"]).await;
    assert_eq!(
        out.lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|r| r.get(1) == Some(&"web")),
        Some(vec!["default", "web", "200m", "80Mi"]),
        "{out}"
    );
    assert!(out.contains("db") && out.contains("dns"), "{out}");
    let out = c.kubectl_ok(&["top", "pods", "-l", "app=web"]).await;
    assert_eq!(row(&out, "web"), Some(vec!["web", "200m", "80Mi"]), "{out}");
    assert!(!out.contains("db"), "{out}");
    let out = c.kubectl_ok(&["top", "pods", "web", "--containers"]).await;
    assert_eq!(
        row(&out, "web").map(|r| r[1..].to_vec()),
        Some(vec!["app", "150m", "64Mi"]),
        "{out}"
    );
    assert!(out.contains("sidecar"), "{out}");
    // `kubectl get` on the metrics kinds must not break either.
    let out = c.kubectl_ok(&["get", "podmetrics", "-n", "default"]).await;
    assert_eq!(
        row(&out, "web"),
        Some(vec!["web", "200m", "80Mi", "2s"]),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_and_broken_agents_are_left_out() {
    let c = start().await;
    let (code, list) = c
        .get_as(
            "admin",
            &[pki::GROUP_MASTERS],
            "/apis/metrics.k8s.io/v1beta1/nodes",
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(list["kind"], "NodeMetricsList");
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["n1"]);
    assert_eq!(
        list["items"][0]["usage"],
        json!({"cpu": "250m", "memory": "512Mi"})
    );
    let (code, status) = c
        .get_as(
            "admin",
            &[pki::GROUP_MASTERS],
            "/apis/metrics.k8s.io/v1beta1/nodes/n2",
        )
        .await;
    assert_eq!((code, status["reason"].as_str()), (404, Some("NotFound")));
    assert_eq!(
        status["message"],
        "nodemetrics.metrics.k8s.io \"n2\" not found"
    );
    let (ok, _, err) = c
        .kubectl(&[
            "get",
            "--raw",
            "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/nope",
        ])
        .await;
    assert!(!ok);
    assert!(
        err.contains("podmetrics.metrics.k8s.io \"nope\" not found"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_metrics_needs_rights() {
    let c = start().await;
    let path = "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods";
    let (code, status) = c.get_as("alice", &[], path).await;
    assert_eq!((code, status["kind"].as_str()), (403, Some("Status")));
    assert_eq!(
        status["message"],
        "pods.metrics.k8s.io is forbidden: User \"alice\" cannot list resource \"pods\" in API group \"metrics.k8s.io\" in the namespace \"default\""
    );
}
