//! The web view on the API port (#16): `/ui` serves the embedded assets to anyone, with a strict
//! CSP; every data request and `/berth/v1/members` still need credentials (the members any
//! authenticated user, data only with a role); the members endpoint
//! answers an admin from a Raft member's view. Optionally, the page itself in headless Chromium.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use control_plane::api;
use control_plane::security::{ClusterPki, MemberIdentity, DEFAULT_VALIDITY};
use control_plane::store::ObjectStore;
use http_body_util::{BodyExt as _, Full};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

struct Server {
    addr: SocketAddr,
    pki: Arc<ClusterPki>,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The API over HTTPS with a fresh PKI and the default roles, on 127.0.0.1.
async fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> = common::raft_store(dir.path(), "127.0.0.1:2", None).await;
    api::bootstrap(&*store).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let identity = MemberIdentity {
        name: "a".into(),
        sans: vec!["127.0.0.1".into()],
        validity: DEFAULT_VALIDITY,
    };
    let pki = Arc::new(ClusterPki::create(&dir.path().join("member"), &identity, None).unwrap());
    let config = api::ApiConfig {
        advertise_address: addr.to_string(),
        pki: Some(pki.clone()),
        ..api::ApiConfig::default()
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(api::serve_with(listener, store, config, shutdown.clone()));
    Server {
        addr,
        pki,
        shutdown,
        _dir: dir,
    }
}

impl Server {
    /// TLS as `user` in `groups`; `None` presents no certificate (anonymous).
    fn tls(&self, user: Option<(&str, &[&str])>) -> Arc<rustls::ClientConfig> {
        let cert = user.map(|(u, g)| {
            let c = self.pki.issue_user_cert(u, g).unwrap();
            pki::CertSource::from_pem(&c.cert_pem, &c.key_pem).unwrap()
        });
        pki::client_config(self.pki.ca_pem(), cert, &[b"http/1.1"]).unwrap()
    }

    /// GET `path` over a fresh connection: status, headers and body.
    async fn get(
        &self,
        tls: &Arc<rustls::ClientConfig>,
        path: &str,
        extra: &[(&str, &str)],
    ) -> (u16, http::HeaderMap, Bytes) {
        let io = pki::net::connect(&self.addr.to_string(), tls.clone())
            .await
            .expect("TLS connection");
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
                .await
                .unwrap();
        tokio::spawn(conn);
        let mut req = http::Request::get(path).header("host", self.addr.to_string());
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        let resp = sender
            .send_request(req.body(Full::new(Bytes::new())).unwrap())
            .await
            .unwrap();
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        (parts.status.as_u16(), parts.headers, body)
    }
}

fn header<'a>(h: &'a http::HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

#[tokio::test]
async fn ui_assets_are_public_with_a_strict_csp() {
    let s = start().await;
    let anon = s.tls(None);
    let (code, h, _) = s.get(&anon, "/ui", &[]).await;
    assert_eq!((code, header(&h, "location")), (301, "/ui/"));

    let (code, h, body) = s.get(&anon, "/ui/", &[]).await;
    assert_eq!(code, 200);
    assert!(header(&h, "content-type").starts_with("text/html"));
    let csp = header(&h, "content-security-policy");
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(header(&h, "x-content-type-options"), "nosniff");
    assert_eq!(header(&h, "cache-control"), "no-cache");
    assert!(String::from_utf8_lossy(&body).contains("id=\"status\""));

    let (code, h, body) = s.get(&anon, "/ui/app.js", &[]).await;
    assert_eq!(code, 200);
    assert!(header(&h, "content-type").starts_with("text/javascript"));
    assert!(String::from_utf8_lossy(&body).contains("import "));
    // A reload that still has the bytes gets a 304.
    let etag = header(&h, "etag").to_string();
    let (code, _, body) = s
        .get(&anon, "/ui/app.js", &[("if-none-match", &etag)])
        .await;
    assert_eq!((code, body.len()), (304, 0));

    let (code, h, _) = s.get(&anon, "/ui/style.css", &[]).await;
    assert_eq!(
        (code, header(&h, "content-type")),
        (200, "text/css; charset=utf-8")
    );
    for missing in ["/ui/nope.js", "/ui/../api/v1/pods", "/uix"] {
        let (code, _, _) = s.get(&anon, missing, &[]).await;
        assert!(code == 404 || code == 401, "{missing}: {code}");
    }
    let (code, _, _) = s.get(&anon, "/ui/nope.js", &[]).await;
    assert_eq!(code, 404);
    // A browser presenting a client certificate of a user with no roles still gets the page.
    let nobody = s.tls(Some(("nobody", &[])));
    let (code, _, _) = s.get(&nobody, "/ui/", &[]).await;
    assert_eq!(code, 200);
}

#[tokio::test]
async fn data_and_members_need_credentials() {
    let s = start().await;
    let anon = s.tls(None);
    for path in ["/api/v1/pods", "/api/v1/nodes?watch=1", "/berth/v1/members"] {
        let (code, _, _) = s.get(&anon, path, &[]).await;
        assert_eq!(code, 401, "{path}");
    }
    // Authenticated but bound to nothing: the members, like discovery, but no data.
    let nobody = s.tls(Some(("nobody", &[])));
    let (code, _, body) = s.get(&nobody, "/berth/v1/members", &[]).await;
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let (code, _, _) = s.get(&nobody, "/api/v1/pods", &[]).await;
    assert_eq!(code, 403);
}

#[tokio::test]
async fn members_answer_an_admin() {
    let s = start().await;
    let admin = s.tls(Some(("test-admin", &[pki::GROUP_MASTERS])));
    let (code, h, body) = s.get(&admin, "/berth/v1/members", &[]).await;
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    assert!(header(&h, "content-type").starts_with("application/json"));
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["leader"], "a");
    assert_eq!(v["self"], "a");
    assert_eq!(v["ready"], true);
    let m = &v["members"][0];
    assert_eq!(
        (&m["name"], &m["id"], &m["role"], &m["self"]),
        (
            &Value::from("a"),
            &Value::from(1),
            &Value::from("leader"),
            &Value::from(true)
        )
    );
    assert_eq!(m["peerAddress"], "127.0.0.1:1");
    assert_eq!(m["apiAddress"], "127.0.0.1:2");
}

/// The page in headless Chromium against a plain in-process API (every request an admin): the
/// modules load under the CSP the server sends, with no script error and no CSP refusal logged.
/// `--dump-dom` dumps at the load event, before the first list answers, and the streaming watches
/// keep `--virtual-time-budget` from ever expiring, so the rendered views are left to the CDP
/// browser tests of `berthctl lab ui`. Ignored by default (Chromium is no build dependency); run
/// with `cargo test -p control-plane --test api_ui -- --ignored`. Nothing leaves 127.0.0.1.
#[tokio::test]
#[ignore = "needs chromium; run by hand"]
async fn page_renders_live_in_headless_chromium() {
    if std::process::Command::new("chromium")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("chromium not installed: skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> = common::raft_store(dir.path(), "127.0.0.1:2", None).await;
    api::bootstrap(&*store).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(api::serve(listener, store, shutdown.clone()));
    let post = |path: &'static str, body: Value| async move {
        let io = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
                .await
                .unwrap();
        tokio::spawn(conn);
        let req = http::Request::post(path)
            .header("host", addr.to_string())
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
        let code = sender.send_request(req).await.unwrap().status();
        assert!(code.is_success(), "{path}: {code}");
    };
    post(
        "/api/v1/nodes",
        serde_json::json!({"metadata": {"name": "n1"}, "status": {"conditions": [
            {"type": "Ready", "status": "True"}], "allocatable": {"cpu": "2", "memory": "4Gi"}}}),
    )
    .await;
    for (name, node) in [("web-1", Some("n1")), ("waiting", None)] {
        let mut pod = serde_json::json!({"metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
        if let Some(n) = node {
            pod["spec"]["nodeName"] = n.into();
        }
        post("/api/v1/namespaces/default/pods", pod).await;
    }
    let out = tokio::task::spawn_blocking(move || {
        // `timeout`: a page that never settles must not hang the run; `--timeout` dumps the DOM
        // after that long (the watches keep the network busy, so there is no idle point).
        std::process::Command::new("timeout")
            .args([
                "60",
                "chromium",
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                "--enable-logging=stderr",
                "--v=0",
                "--dump-dom",
                &format!("http://{addr}/ui/"),
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    shutdown.cancel();
    let dom = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(dom.contains(r#"id="status""#), "no page:\n{dom}\n{log}");
    for line in log.lines().filter(|l| l.contains("CONSOLE")) {
        eprintln!("{line}");
        for bad in [
            "Uncaught",
            "Refused to",
            "SyntaxError",
            "Failed to load module",
        ] {
            assert!(!line.contains(bad), "{line}");
        }
    }
}

impl Server {
    /// `method path` with a JSON body over a fresh connection; the response body is left to stream
    /// (a watch never ends on its own).
    async fn send(
        &self,
        tls: &Arc<rustls::ClientConfig>,
        method: http::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, hyper::body::Incoming) {
        let io = pki::net::connect(&self.addr.to_string(), tls.clone())
            .await
            .expect("TLS connection");
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
                .await
                .unwrap();
        tokio::spawn(conn);
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string())
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            )))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        (resp.status().as_u16(), resp.into_body())
    }

    /// POSTs `body` as `tls`'s user and asserts it was created.
    async fn create(&self, tls: &Arc<rustls::ClientConfig>, path: &str, body: Value) {
        let (code, resp) = self.send(tls, http::Method::POST, path, Some(body)).await;
        let text = resp.collect().await.unwrap().to_bytes();
        assert_eq!(code, 201, "{path}: {}", String::from_utf8_lossy(&text));
    }
}

/// The next `n` JSON lines of a streaming body, within 10 s.
async fn lines(body: &mut hyper::body::Incoming, buf: &mut Vec<u8>, n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while out.len() < n {
            while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=nl).collect();
                out.push(serde_json::from_slice(&line).unwrap());
            }
            if out.len() >= n {
                break;
            }
            let frame = body.frame().await.expect("stream open").unwrap();
            if let Ok(data) = frame.into_data() {
                buf.extend_from_slice(&data);
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{n} lines within 10 s; got {out:?}"));
    out
}

#[tokio::test]
async fn multiwatch_tags_the_events_of_every_kind() {
    let s = start().await;
    let admin = s.tls(Some(("test-admin", &[pki::GROUP_MASTERS])));
    let (code, _, body) = s.get(&admin, "/api/v1/pods", &[]).await;
    assert_eq!(code, 200);
    let rv = serde_json::from_slice::<Value>(&body).unwrap()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    // Revisions are Raft indexes, so one list's revision is a valid start for every kind.
    let path = format!("/berth/v1/watch?resources=pods:{rv},configmaps:{rv}");
    let (code, mut stream) = s.send(&admin, http::Method::GET, &path, None).await;
    assert_eq!(code, 200);
    s.create(
        &admin,
        "/api/v1/namespaces/default/configmaps",
        serde_json::json!({"metadata": {"name": "cm"}, "data": {"k": "v"}}),
    )
    .await;
    s.create(
        &admin,
        "/api/v1/namespaces/default/pods",
        serde_json::json!({"metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
    )
    .await;
    let mut buf = Vec::new();
    let got = lines(&mut stream, &mut buf, 2).await;
    let tagged: Vec<(&str, &str, &str)> = got
        .iter()
        .map(|v| {
            (
                v["resource"].as_str().unwrap(),
                v["type"].as_str().unwrap(),
                v["object"]["metadata"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        tagged,
        [("configmaps", "ADDED", "cm"), ("pods", "ADDED", "p")]
    );
    assert_eq!(got[0]["object"]["kind"], "ConfigMap");
}

#[tokio::test]
async fn multiwatch_refuses_unknown_kinds_the_unauthorized_and_the_anonymous() {
    let s = start().await;
    let admin = s.tls(Some(("test-admin", &[pki::GROUP_MASTERS])));
    let (code, _, body) = s
        .get(&admin, "/berth/v1/watch?resources=pods,gizmos", &[])
        .await;
    assert_eq!(code, 400);
    assert!(String::from_utf8_lossy(&body).contains("gizmos"));

    // `partial` may list and watch pods cluster-wide, not nodes.
    s.create(
        &admin,
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        serde_json::json!({"metadata": {"name": "pod-reader"}, "rules": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]}),
    )
    .await;
    s.create(
        &admin,
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        serde_json::json!({"metadata": {"name": "partial-pods"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "pod-reader"},
            "subjects": [{"kind": "User", "name": "partial", "apiGroup": "rbac.authorization.k8s.io"}]}),
    )
    .await;
    let partial = s.tls(Some(("partial", &[])));
    // The authorizer's cache follows the binding shortly after it is written.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (code, stream) = s
            .send(
                &partial,
                http::Method::GET,
                "/berth/v1/watch?resources=pods",
                None,
            )
            .await;
        drop(stream);
        if code == 200 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "pods: {code}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, _, body) = s
        .get(&partial, "/berth/v1/watch?resources=pods,nodes", &[])
        .await;
    assert_eq!(code, 403, "{}", String::from_utf8_lossy(&body));
    let status: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status["reason"], "Forbidden");
    assert_eq!(status["details"]["kind"], "nodes");
    let message = status["message"].as_str().unwrap();
    assert!(message.contains("\"nodes\""), "{message}");

    let anon = s.tls(None);
    let (code, _, _) = s.get(&anon, "/berth/v1/watch?resources=pods", &[]).await;
    assert_eq!(code, 401);
}
