//! The cluster PKI in a running 3-member cluster, real processes' code paths over real TLS: members
//! started at once agree on one CA (the first makes it, the others fetch it with the token), and
//! certificates with a short life rotate on their own, and on request, while a client keeps writing
//! through fresh HTTPS connections — no request fails beyond retries.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use control_plane::api;
use control_plane::security::ClusterPki;
use control_plane::server::{self, Hooks, ServerConfig};
use http_body_util::{BodyExt as _, Full};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

struct Member {
    api: SocketAddr,
    data_dir: std::path::PathBuf,
    pki: tokio::sync::oneshot::Receiver<Arc<ClusterPki>>,
}

/// Starts three members at once, each with an API hook over its PKI; certificates live `validity`.
async fn cluster(
    root: &std::path::Path,
    validity: Duration,
    token: &pki::Token,
    shutdown: &CancellationToken,
) -> Vec<Member> {
    let mut peers = Vec::new();
    let mut apis = Vec::new();
    for _ in 0..3 {
        peers.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
        apis.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
    }
    let initial: Vec<(String, String)> = peers
        .iter()
        .enumerate()
        .map(|(i, l)| (format!("s{}", i + 1), l.local_addr().unwrap().to_string()))
        .collect();
    let mut members = Vec::new();
    for (i, (peer, api_l)) in peers.into_iter().zip(apis).enumerate() {
        let name = format!("s{}", i + 1);
        let mut config = ServerConfig::new(&name);
        config.data_dir = root.join(&name);
        config.listen_peer = peer.local_addr().unwrap();
        config.listen_api = api_l.local_addr().unwrap();
        config.advertise_api = Some(api_l.local_addr().unwrap().to_string());
        config.initial_cluster = initial.clone();
        config.driver.tick = Duration::from_millis(20);
        config.cert_validity = validity;
        // Only the first member could do without it: it makes the CA with this token.
        config.token = Some(token.clone());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let api = api_l.local_addr().unwrap();
        let hooks = Hooks {
            api: Some(Box::new(move |ctx, listener, shutdown| {
                let _ = tx.send(ctx.pki.clone());
                let config = api::ApiConfig {
                    advertise_address: api.to_string(),
                    pki: Some(ctx.pki.clone()),
                    ..api::ApiConfig::default()
                };
                let store: Arc<dyn control_plane::store::ObjectStore> = ctx.store.clone();
                Box::pin(api::serve_with(listener, store, config, shutdown))
            })),
            // The leader makes the system namespaces, as berth-server's leader hook does.
            on_leader: Some(Arc::new(|ctx, shutdown| {
                Box::pin(async move {
                    while api::bootstrap(ctx.store.as_ref()).await.is_err() {
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                        }
                    }
                })
            })),
            grpc: None,
        };
        tokio::spawn(server::run_with_listeners(
            config,
            peer,
            api_l,
            hooks,
            shutdown.child_token(),
        ));
        members.push(Member {
            api,
            data_dir: root.join(&name),
            pki: rx,
        });
    }
    members
}

/// One POST over a fresh TLS connection (so every request does a handshake with the server's
/// current certificate); the status code, or `None` when the connection failed.
async fn create(addr: SocketAddr, tls: Arc<rustls::ClientConfig>, name: &str) -> Option<u16> {
    let io = pki::net::connect(&addr.to_string(), tls).await.ok()?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .ok()?;
    tokio::spawn(conn);
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}});
    let req = http::Request::post("/api/v1/namespaces/default/configmaps")
        .header("host", addr.to_string())
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .ok()?;
    let resp = sender.send_request(req).await.ok()?;
    let code = resp.status().as_u16();
    let _ = resp.into_body().collect().await;
    Some(code)
}

/// The certificate a server presents now (DER), seen by a client that trusts anything.
async fn presented(addr: SocketAddr) -> Vec<u8> {
    let (cfg, seen) = pki::insecure_client_config(&[b"http/1.1"]);
    let _ = pki::net::connect(&addr.to_string(), cfg).await;
    seen.get().expect("the server presented a certificate")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_rotate_under_a_writer_without_failed_requests() {
    let root = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let token = pki::Token::generate().unwrap();
    // Six seconds of life: each member renews at two thirds, so a 14 s run sees two rotations, and
    // any certificate not rotated would have expired long before the end.
    let validity = Duration::from_secs(6);
    let members = cluster(root.path(), validity, &token, &shutdown).await;
    let mut pkis = Vec::new();
    let mut apis = Vec::new();
    for m in members {
        pkis.push(
            tokio::time::timeout(Duration::from_secs(30), m.pki)
                .await
                .unwrap()
                .unwrap(),
        );
        apis.push((m.api, m.data_dir));
    }
    // One CA for the whole cluster, made by s1 and fetched by s2 and s3 with the token.
    assert!(pkis.iter().all(|p| p.ca_pem() == pkis[0].ca_pem()));
    assert!(pkis.iter().all(|p| p.token == token));

    // The writer's own certificate lives long: what rotates here is the members'.
    let admin = pkis[0]
        .ca
        .issue(&pki::CertRequest::client(
            "writer",
            &[pki::GROUP_MASTERS],
            Duration::from_secs(3600),
        ))
        .unwrap();
    let tls = pki::client_config(
        pkis[0].ca_pem(),
        Some(pki::CertSource::from_pem(&admin.cert_pem, &admin.key_pem).unwrap()),
        &[b"http/1.1"],
    )
    .unwrap();

    let first_certs: Vec<Vec<u8>> =
        futures::future::join_all(apis.iter().map(|(a, _)| presented(*a))).await;
    let start = Instant::now();
    let (mut ok, mut retried, mut i) = (0usize, 0usize, 0usize);
    let mut rotate_requested = false;
    while start.elapsed() < Duration::from_secs(14) {
        i += 1;
        let name = format!("w{i}");
        let mut done = false;
        // Retries are what a client does anyway (no leader yet at the start, a 503 during an
        // election); a request that fails them all is a failure of rotation.
        for attempt in 0..20 {
            let (addr, _) = &apis[(i + attempt) % apis.len()];
            match create(*addr, tls.clone(), &name).await {
                Some(201) => {
                    done = true;
                    break;
                }
                // Created by an earlier attempt whose answer was lost.
                Some(409) if attempt > 0 => {
                    done = true;
                    break;
                }
                _ => {
                    retried += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        assert!(
            done,
            "request {name} failed after retries ({:?} in)",
            start.elapsed()
        );
        ok += 1;
        if !rotate_requested && start.elapsed() > Duration::from_secs(2) {
            // The command path: ask s2 to rotate now, as `berth-server certs rotate` does.
            ClusterPki::request_rotation(&apis[1].1).unwrap();
            rotate_requested = true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("{ok} writes, {retried} retried attempts");
    assert!(ok > 20, "only {ok} writes in 14 s");
    assert!(retried < ok, "{retried} retries for {ok} writes");
    // Every member now presents another certificate than at the start, signed by the same CA.
    for ((addr, _), before) in apis.iter().zip(&first_certs) {
        let now = presented(*addr).await;
        assert_ne!(&now, before, "{addr} still presents its first certificate");
    }
    shutdown.cancel();
}
