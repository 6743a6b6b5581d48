//! The API server's limits against a real in-process HTTPS server: 429 with `Retry-After` over
//! max-in-flight and the per-user watch cap, 504 on the request timeout, 413 over the body limit,
//! slow-loris connections dropped, and malformed input answered with a 400 Status.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use control_plane::api::{self, limits::Limits};
use control_plane::security::{ClusterPki, MemberIdentity, DEFAULT_VALIDITY};
use control_plane::store::{
    Batch, BoxFuture, Committed, Consistency, MemStore, Object, ObjectStore, Result as StoreResult,
    WatchStream,
};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// A MemStore whose reads and writes under `/core/configmaps/` wait for a permit of `release`, so
/// a test holds requests in flight without generating load.
struct Held {
    inner: MemStore,
    release: Arc<Semaphore>,
    /// Requests that have reached the store and wait there.
    waiting: std::sync::atomic::AtomicUsize,
}

const HELD: &str = "/core/configmaps/";

impl Held {
    async fn wait(&self, key: &str) {
        if key.starts_with(HELD) {
            self.waiting
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.release.acquire().await.unwrap().forget();
        }
    }
}

impl ObjectStore for Held {
    fn commit(&self, batch: Batch) -> BoxFuture<'_, StoreResult<Committed>> {
        Box::pin(async move {
            if let Some(op) = batch.ops.first() {
                self.wait(op.key()).await;
            }
            self.inner.commit(batch).await
        })
    }
    fn get<'a>(
        &'a self,
        key: &'a str,
        c: Consistency,
    ) -> BoxFuture<'a, StoreResult<Option<Object>>> {
        Box::pin(async move {
            self.wait(key).await;
            self.inner.get(key, c).await
        })
    }
    fn list<'a>(
        &'a self,
        prefix: &'a str,
        c: Consistency,
    ) -> BoxFuture<'a, StoreResult<(Vec<Object>, u64)>> {
        Box::pin(async move {
            self.wait(prefix).await;
            self.inner.list(prefix, c).await
        })
    }
    fn watch<'a>(&'a self, prefix: &'a str, after: u64) -> BoxFuture<'a, StoreResult<WatchStream>> {
        self.inner.watch(prefix, after)
    }
    fn revision(&self) -> u64 {
        self.inner.revision()
    }
    fn is_leader(&self) -> bool {
        true
    }
}

struct Server {
    addr: SocketAddr,
    store: Arc<Held>,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
    tls: Arc<rustls::ClientConfig>,
}

impl Drop for Server {
    fn drop(&mut self) {
        // Held requests end too, so no task outlives the test.
        self.store.release.add_permits(1000);
        self.shutdown.cancel();
    }
}

async fn start(limits: Limits) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Held {
        inner: MemStore::new(),
        release: Arc::new(Semaphore::new(0)),
        waiting: std::sync::atomic::AtomicUsize::new(0),
    });
    api::bootstrap(store.as_ref()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let identity = MemberIdentity {
        name: "a".into(),
        sans: vec!["127.0.0.1".into()],
        validity: DEFAULT_VALIDITY,
    };
    let pki = Arc::new(ClusterPki::create(&dir.path().join("member"), &identity, None).unwrap());
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
        pki: Some(pki),
        limits,
        ..api::ApiConfig::default()
    };
    let shutdown = CancellationToken::new();
    let dyn_store: Arc<dyn ObjectStore> = store.clone();
    tokio::spawn(api::serve_with(
        listener,
        dyn_store,
        config,
        shutdown.clone(),
    ));
    Server {
        addr,
        store,
        shutdown,
        _dir: dir,
        tls,
    }
}

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

async fn connect(s: &Server) -> Tls {
    pki::net::connect(&s.addr.to_string(), s.tls.clone())
        .await
        .expect("TLS connection to the API")
}

/// The head of an answer, with a body still to read (watches).
async fn open(
    s: &Server,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> http::Response<hyper::body::Incoming> {
    let io = hyper_util::rt::TokioIo::new(connect(s).await);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(conn);
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", s.addr.to_string())
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    tokio::time::timeout(Duration::from_secs(20), sender.send_request(req))
        .await
        .expect("answer in time")
        .unwrap()
}

/// One request: status code, `Retry-After`, and the JSON body.
async fn call(
    s: &Server,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Option<String>, Value) {
    let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    let resp = open(s, method, path, body).await;
    let code = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = tokio::time::timeout(Duration::from_secs(20), resp.into_body().collect())
        .await
        .expect("body in time")
        .unwrap()
        .to_bytes();
    (
        code,
        retry,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Starts a request that the held store keeps in flight, and waits until the server holds it:
/// probing earlier could take the only slot and get the held request itself refused.
async fn hold(
    s: &Server,
    method: &'static str,
    path: &'static str,
    body: Option<Value>,
) -> tokio::task::JoinHandle<u16> {
    let addr = s.addr;
    let tls = s.tls.clone();
    let before = s.store.waiting.load(std::sync::atomic::Ordering::SeqCst);
    let task = tokio::spawn(async move {
        let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let io =
            hyper_util::rt::TokioIo::new(pki::net::connect(&addr.to_string(), tls).await.unwrap());
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", addr.to_string())
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        sender.send_request(req).await.unwrap().status().as_u16()
    });
    for _ in 0..1000 {
        if s.store.waiting.load(std::sync::atomic::Ordering::SeqCst) > before {
            return task;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{method} {path} never reached the store");
}

fn assert_429(code: u16, retry: Option<String>, st: &Value) {
    assert_eq!(code, 429, "{st}");
    assert_eq!(retry.as_deref(), Some("1"));
    assert_eq!(st["kind"], "Status");
    assert_eq!(st["reason"], "TooManyRequests");
    assert_eq!(st["message"], "Too many requests, please try again later.");
    assert_eq!(st["details"]["retryAfterSeconds"], 1);
}

/// Retries `f` until it answers 429 (the held request may take a moment to reach the store).
async fn until_429(
    s: &Server,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Option<String>, Value) {
    for _ in 0..100 {
        let r = call(s, method, path, body.clone()).await;
        if r.0 == 429 {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{method} {path} never answered 429");
}

/// A Secret with a generated name: creating it again and again never conflicts.
fn generated() -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"generateName": "g-"}})
}

/// Sends a request with a large body over a raw TLS connection while reading the answer, since
/// the server answers before it has read the whole body (and then closes). Returns the status code
/// and the body text.
async fn upload(s: &Server, path: &str, body: Vec<u8>) -> (u16, String) {
    let tls = connect(s).await;
    let (mut rd, mut wr) = tokio::io::split(tls);
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        s.addr,
        body.len()
    );
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(head.as_bytes()).await;
        let _ = wr.write_all(&body).await;
        let _ = wr.flush().await;
        wr
    });
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    // Read until the head and a JSON body are in; the server may close or keep the connection.
    for _ in 0..1000 {
        let n = tokio::time::timeout(Duration::from_secs(20), rd.read(&mut chunk))
            .await
            .expect("answer in time")
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if text.contains("\r\n\r\n") && text.trim_end().ends_with('}') {
            break;
        }
    }
    writer.abort();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (code, body)
}

fn configmap(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_in_flight_answers_429_with_retry_after_per_pool() {
    let s = start(Limits {
        max_requests_inflight: 1,
        max_mutating_requests_inflight: 1,
        ..Limits::default()
    })
    .await;
    // One read held: the next read is refused, a write still goes through its own pool.
    let read = hold(&s, "GET", "/api/v1/namespaces/default/configmaps", None).await;
    let (code, retry, st) = until_429(&s, "GET", "/api/v1/namespaces", None).await;
    assert_429(code, retry, &st);
    let (code, _, st) = call(
        &s,
        "POST",
        "/api/v1/namespaces/default/secrets",
        Some(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}})),
    )
    .await;
    assert_eq!(code, 201, "{st}");
    // One write held: the next write is refused.
    let write = hold(
        &s,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        Some(configmap("a")),
    )
    .await;
    let (code, retry, st) = until_429(
        &s,
        "POST",
        "/api/v1/namespaces/default/secrets",
        Some(generated()),
    )
    .await;
    assert_429(code, retry, &st);
    // Watches are exempt from max-in-flight.
    let w = open(
        &s,
        "GET",
        "/api/v1/namespaces/default/pods?watch=true",
        vec![],
    )
    .await;
    assert_eq!(w.status(), 200);
    // Released, both finish and the slots come back.
    s.store.release.add_permits(2);
    assert_eq!(read.await.unwrap(), 200);
    assert_eq!(write.await.unwrap(), 201);
    let (code, _, _) = call(&s, "GET", "/api/v1/namespaces", None).await;
    assert_eq!(code, 200);
    let (code, _, _) = call(
        &s,
        "POST",
        "/api/v1/namespaces/default/secrets",
        Some(generated()),
    )
    .await;
    assert_eq!(code, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_time_out_with_504_but_watches_do_not() {
    let s = start(Limits {
        request_timeout: Duration::from_millis(300),
        ..Limits::default()
    })
    .await;
    let (code, _, st) = call(&s, "GET", "/api/v1/namespaces/default/configmaps", None).await;
    assert_eq!(code, 504, "{st}");
    assert_eq!(st["reason"], "Timeout");
    assert_eq!(
        st["message"],
        "Timeout: request did not complete within requested timeout - context deadline exceeded"
    );
    // A watch outlives the request timeout and still delivers events.
    let w = open(
        &s,
        "GET",
        "/api/v1/namespaces/default/secrets?watch=true",
        vec![],
    )
    .await;
    assert_eq!(w.status(), 200);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (code, _, _) = call(
        &s,
        "POST",
        "/api/v1/namespaces/default/secrets",
        Some(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "late"}})),
    )
    .await;
    assert_eq!(code, 201);
    let mut body = w.into_body();
    let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("a watch event after the request timeout")
        .unwrap()
        .unwrap();
    let line = String::from_utf8_lossy(frame.data_ref().unwrap()).into_owned();
    assert!(line.contains("\"late\""), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shorter_timeout_parameter_is_honoured() {
    let s = start(Limits::default()).await;
    let started = std::time::Instant::now();
    let (code, _, st) = call(
        &s,
        "GET",
        "/api/v1/namespaces/default/configmaps?timeout=200ms",
        None,
    )
    .await;
    assert_eq!((code, st["reason"].as_str()), (504, Some("Timeout")));
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_per_user_are_capped() {
    let s = start(Limits {
        max_watches_per_user: 2,
        ..Limits::default()
    })
    .await;
    let a = open(
        &s,
        "GET",
        "/api/v1/namespaces/default/pods?watch=true",
        vec![],
    )
    .await;
    let b = open(
        &s,
        "GET",
        "/api/v1/namespaces/default/secrets?watch=true",
        vec![],
    )
    .await;
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    let (code, retry, st) = call(&s, "GET", "/api/v1/pods?watch=1", None).await;
    assert_429(code, retry, &st);
    // Plain requests of the same user are not watches.
    let (code, _, _) = call(&s, "GET", "/api/v1/pods", None).await;
    assert_eq!(code, 200);
    // A watch that ends gives its slot back.
    drop(a);
    let mut ok = false;
    for _ in 0..100 {
        let r = open(&s, "GET", "/api/v1/pods?watch=1", vec![]).await;
        if r.status() == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok, "the closed watch's slot never came back");
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_3_mib_are_refused_but_image_loads_are_not() {
    let s = start(Limits::default()).await;
    let mut big = configmap("big");
    big["data"]["k"] = json!("x".repeat(3 * 1024 * 1024 + 1));
    let (code, body) = upload(
        &s,
        "/api/v1/namespaces/default/configmaps",
        big.to_string().into_bytes(),
    )
    .await;
    let st: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    assert_eq!(code, 413, "{body}");
    assert_eq!(st["reason"], "RequestEntityTooLarge");
    assert_eq!(st["message"], "Request entity too large: limit is 3145728");
    // The image proxy has its own, larger bound: a 4 MiB tar is not refused as too large (the
    // node does not exist, so it is a 404).
    let (code, body) = upload(&s, "/api/v1/nodes/n1/proxy/images/load", vec![0u8; 4 << 20]).await;
    assert_eq!(code, 404, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_headers_is_dropped() {
    let s = start(Limits {
        header_read_timeout: Duration::from_millis(300),
        ..Limits::default()
    })
    .await;
    let mut tls = connect(&s).await;
    tls.write_all(b"GET /api HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    tls.flush().await.unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the server kept a slow-loris connection open");
    // A well-behaved client on a fresh connection is served.
    let (code, _, _) = call(&s, "GET", "/api", None).await;
    assert_eq!(code, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_utf8_exec_parameters_are_a_400() {
    let s = start(Limits::default()).await;
    let (code, _, st) = call(
        &s,
        "GET",
        "/api/v1/namespaces/default/pods/p/exec?command=%FF&stdout=true",
        None,
    )
    .await;
    assert_eq!(code, 400, "{st}");
    assert_eq!(st["kind"], "Status");
    assert!(st["message"].as_str().unwrap().contains("command"), "{st}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_status_that_is_not_an_object_is_refused() {
    let s = start(Limits::default()).await;
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
                      "status": {"capacity": {"cpu": "2"}}});
    let (code, _, st) = call(&s, "POST", "/api/v1/nodes", Some(node.clone())).await;
    assert_eq!(code, 201, "{st}");
    let mut bad = node.clone();
    bad["status"] = json!("x");
    let (code, _, st) = call(
        &s,
        "POST",
        "/api/v1/nodes",
        Some({
            let mut b = bad.clone();
            b["metadata"]["name"] = json!("n2");
            b
        }),
    )
    .await;
    assert_eq!(
        (code, st["reason"].as_str()),
        (400, Some("BadRequest")),
        "{st}"
    );
    assert_eq!(
        st["message"],
        "Node in version \"v1\" cannot be handled as a Node: json: cannot unmarshal string into Go struct field Node.status of type v1.NodeStatus"
    );
    for path in ["/api/v1/nodes/n1", "/api/v1/nodes/n1/status"] {
        let (code, _, st) = call(&s, "PUT", path, Some(bad.clone())).await;
        assert_eq!(code, 400, "PUT {path}: {st}");
        for status in [json!("x"), json!([])] {
            let resp = {
                let io = hyper_util::rt::TokioIo::new(connect(&s).await);
                let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
                tokio::spawn(conn);
                let req = http::Request::builder()
                    .method("PATCH")
                    .uri(path)
                    .header("host", s.addr.to_string())
                    .header("content-type", "application/merge-patch+json")
                    .body(Full::new(Bytes::from(
                        json!({"status": status}).to_string(),
                    )))
                    .unwrap();
                sender.send_request(req).await.unwrap()
            };
            assert_eq!(resp.status(), 400, "PATCH {path} with status {status}");
        }
    }
    // Nothing was stored: the node keeps its status.
    let (code, _, n) = call(&s, "GET", "/api/v1/nodes/n1", None).await;
    assert_eq!(code, 200);
    assert_eq!(n["status"]["capacity"]["cpu"], "2");
}
