//! `lab ui`: the routing table, the header and address rules, and forwarding through a real TLS
//! upstream on 127.0.0.1 (failover past a dead server, streaming without buffering, the admin identity).

use super::*;
use futures::{SinkExt as _, StreamExt as _};
use http_body_util::StreamBody;
use hyper::body::Frame;

#[test]
fn routes() {
    let get = Method::GET;
    let post = Method::POST;
    let table: Vec<(&Method, &str, Route)> = vec![
        (&get, "/", Route::Redirect),
        (&get, "/ui", Route::Redirect),
        (&get, "/ui/", Route::Asset(String::new())),
        (&get, "/ui/app.js", Route::Asset("app.js".into())),
        (&post, "/ui/", Route::MethodNotAllowed),
        (&get, "/api", Route::Forward),
        (&get, "/api/v1/pods", Route::Forward),
        (
            &post,
            "/apis/apps/v1/namespaces/default/deployments",
            Route::Forward,
        ),
        (&Method::PATCH, "/apis/apps/v1/x", Route::Forward),
        (
            &Method::DELETE,
            "/api/v1/namespaces/d/pods/p",
            Route::Forward,
        ),
        (&get, "/berth/v1/members", Route::Forward),
        (&get, "/version", Route::Forward),
        (&get, "/apifoo", Route::NotFound),
        (&get, "/versions", Route::NotFound),
        (&get, "/lab/info", Route::Info),
        (&post, "/lab/info", Route::MethodNotAllowed),
        (&post, "/lab/heal", Route::Heal),
        (&get, "/lab/heal", Route::MethodNotAllowed),
        (
            &post,
            "/lab/kill/a1",
            Route::Fault(Fault::Kill, "a1".into()),
        ),
        (
            &post,
            "/lab/restart/s2",
            Route::Fault(Fault::Restart, "s2".into()),
        ),
        (
            &post,
            "/lab/partition/a3",
            Route::Fault(Fault::Partition, "a3".into()),
        ),
        (&get, "/lab/kill/a1", Route::MethodNotAllowed),
        (&post, "/lab/explode/a1", Route::BadVerb("explode".into())),
        (&post, "/lab/kill/", Route::NotFound),
        (&post, "/lab/kill/a1/x", Route::NotFound),
        (&get, "/readyz", Route::NotFound),
    ];
    for (m, p, want) in table {
        assert_eq!(route(m, p), want, "{m} {p}");
    }
}

#[test]
fn only_loopback_unless_allowed() {
    assert!(check_address("127.0.0.1".parse().unwrap(), false).is_ok());
    assert!(check_address("::1".parse().unwrap(), false).is_ok());
    let e = check_address("0.0.0.0".parse().unwrap(), false).unwrap_err();
    assert!(e.to_string().contains("lab admin"), "{e}");
    assert!(check_address("192.168.1.5".parse().unwrap(), false).is_err());
    assert!(check_address("0.0.0.0".parse().unwrap(), true).is_ok());
}

#[test]
fn upstream_headers_drop_hops_and_credentials() {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("accept", "application/json"),
        ("connection", "keep-alive"),
        ("authorization", "Bearer stale"),
        ("cookie", "a=b"),
        ("host", "127.0.0.1:8080"),
        ("transfer-encoding", "chunked"),
        ("content-type", "application/merge-patch+json"),
    ] {
        h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
    }
    let out = upstream_headers(&h, "172.29.0.11:6443".parse().unwrap());
    let mut names: Vec<_> = out.keys().map(|k| k.as_str().to_string()).collect();
    names.sort();
    assert_eq!(names, ["accept", "content-type", "host"]);
    assert_eq!(out[header::HOST], "172.29.0.11:6443");
}

#[test]
fn failover_order_starts_at_the_last_good_server() {
    assert_eq!(try_order(3, 0), [0, 1, 2]);
    assert_eq!(try_order(3, 2), [2, 0, 1]);
    assert_eq!(try_order(1, 0), [0]);
    assert!(try_order(0, 0).is_empty());
}

#[test]
fn info_lists_nodes_with_roles() {
    let v = info(
        "ui",
        &[
            ("s1".into(), Role::Server, "172.29.0.11".parse().unwrap()),
            ("a1".into(), Role::Agent, "172.29.0.101".parse().unwrap()),
        ],
    );
    assert_eq!(
        v,
        json!({"name": "ui", "nodes": [
            {"name": "s1", "role": "server", "ip": "172.29.0.11"},
            {"name": "a1", "role": "agent", "ip": "172.29.0.101"},
        ]})
    );
}

/// An HTTPS server on 127.0.0.1 that requires a client certificate and answers every request with a
/// body streamed from the returned channel, after a first line saying what it saw.
async fn upstream(
    ca: &pki::Ca,
) -> (
    SocketAddr,
    futures::channel::mpsc::Sender<Result<Frame<Bytes>, Infallible>>,
) {
    let issued = ca
        .issue(&pki::CertRequest {
            common_name: "api".into(),
            organizations: vec![],
            dns_names: vec![],
            ips: vec!["127.0.0.1".parse().unwrap()],
            usage: pki::Usage::Server,
            validity: Duration::from_secs(600),
        })
        .unwrap();
    let cfg = pki::server_config(
        ca.cert_pem(),
        pki::CertSource::from_pem(&issued.cert_pem, &issued.key_pem).unwrap(),
        pki::ClientAuth::Required,
        &[b"http/1.1"],
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = futures::channel::mpsc::channel(8);
    let rx = Arc::new(std::sync::Mutex::new(Some(rx)));
    tokio::spawn(async move {
        loop {
            let (tcp, _) = l.accept().await.unwrap();
            let tls = acceptor.accept(tcp).await.unwrap();
            let rx = rx.clone();
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let rx = rx.lock().unwrap().take().expect("one request");
                let saw = format!(
                    "{} {} auth={:?}\n",
                    req.method(),
                    req.uri(),
                    req.headers().get(header::AUTHORIZATION)
                );
                let first = futures::stream::iter([Ok(Frame::data(Bytes::from(saw)))]);
                async move { Ok::<_, Infallible>(Response::new(StreamBody::new(first.chain(rx)))) }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), svc),
            );
        }
    });
    (addr, tx)
}

/// The next data frame of `b`, as text, within 5 s.
async fn next(b: &mut Incoming) -> String {
    let f = tokio::time::timeout(Duration::from_secs(5), b.frame())
        .await
        .expect("a frame within 5 s");
    String::from_utf8(f.unwrap().unwrap().into_data().unwrap().to_vec()).unwrap()
}

#[tokio::test]
async fn forwards_past_a_dead_server_and_streams_as_it_comes() {
    pki::install_crypto_provider();
    let ca = pki::Ca::generate("t", Duration::from_secs(600)).unwrap();
    let admin = ca
        .issue(&pki::CertRequest::client(
            "berth-admin",
            &[pki::GROUP_MASTERS],
            Duration::from_secs(600),
        ))
        .unwrap();
    let (live, mut tx) = upstream(&ca).await;
    // A port nobody listens on: the first server in the list is down.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let cfg = pki::client_config(
        ca.cert_pem(),
        Some(pki::CertSource::from_pem(&admin.cert_pem, &admin.key_pem).unwrap()),
        &[b"http/1.1"],
    )
    .unwrap();
    let lab = Arc::new(Lab {
        name: "t".into(),
        dir: None,
        nodes: vec![],
        servers: vec![dead, live],
        tls: tokio_rustls::TlsConnector::from(cfg),
        preferred: AtomicUsize::new(0),
    });
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = l.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(run(lab.clone(), l, async {
        let _ = stopped.await;
    }));

    let tcp = TcpStream::connect(proxy).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::get("/api/v1/pods?watch=1")
        .header(header::AUTHORIZATION, "Bearer stale")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    // The first line arrives while the upstream still holds the response open: nothing is buffered.
    assert_eq!(
        next(&mut body).await,
        "GET /api/v1/pods?watch=1 auth=None\n"
    );
    tx.send(Ok(Frame::data(Bytes::from("event 1\n"))))
        .await
        .unwrap();
    assert_eq!(next(&mut body).await, "event 1\n");
    assert_eq!(
        lab.preferred.load(Ordering::Relaxed),
        1,
        "the live server is remembered"
    );
    drop(tx);
    assert!(
        body.frame().await.is_none(),
        "the end of the watch reaches the browser"
    );
    stop.send(()).unwrap();
    server.await.unwrap();
}
