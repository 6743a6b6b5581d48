use super::*;
use crate::store::Health;
use serde_json::json;

use futures::StreamExt;
use hyper_util::rt::TokioIo;

use crate::api::proxy::MAX_IMAGE_BYTES;
use crate::store;

#[test]
fn health_endpoints_report_the_raft_driver() {
    let ok = Health::default();
    let leaderless = Health {
        no_leader: true,
        ..Health::default()
    };
    let dead = Health {
        driver_stopped: true,
        no_leader: true,
        storage: None,
    };
    let full = Health {
        storage: Some("raft log append failed: No space left on device".into()),
        ..Health::default()
    };
    let code = |p: &str, h| health(p, h).status().as_u16();
    assert_eq!(code("/readyz", ok), 200);
    assert_eq!(code("/readyz", leaderless.clone()), 500);
    assert_eq!(code("/livez", leaderless), 200, "alive while electing");
    assert_eq!(code("/healthz", dead.clone()), 500);
    assert_eq!(code("/livez/ping", dead), 500);
    assert_eq!(
        code("/readyz", full.clone()),
        500,
        "a full disk is not ready"
    );
    assert_eq!(code("/livez", full), 200, "but it is alive and recovers");
}

/// The API server loads an image onto a node through `nodes/{node}/proxy/images/load`, over TLS
/// with its client certificate, verifying the agent by the node IP in the agent's certificate.
#[tokio::test]
async fn image_load_reaches_the_agent_over_mutual_tls() {
    use crate::security::{ClusterPki, MemberIdentity};
    use crate::store::{Batch, MemStore, ObjectStore, Op, Precondition};
    pki::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let id = MemberIdentity {
        name: "s1".into(),
        sans: vec!["127.0.0.1".into()],
        validity: std::time::Duration::from_secs(3600),
    };
    let cluster = Arc::new(ClusterPki::create(dir.path(), &id, None).unwrap());
    // A stand-in agent: the node certificate, the API server's certificate required.
    let (csr, key) = pki::new_csr("n1").unwrap();
    let cert = cluster.issue_node_cert("n1", "127.0.0.1", &csr).unwrap();
    let tls = pki::server_config(
        cluster.ca_pem(),
        pki::CertSource::from_pem(&cert, &key).unwrap(),
        pki::ClientAuth::Required,
        &[b"http/1.1"],
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut incoming = std::pin::pin!(pki::net::incoming(listener, tls));
        while let Some(Ok(stream)) = incoming.next().await {
            let who = stream.get_ref().1.peer_certificates().unwrap()[0].clone();
            let user = pki::identity_of(&who).unwrap().user;
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let user = user.clone();
                async move {
                    let path = req.uri().path().to_string();
                    let body = http_body_util::BodyExt::collect(req.into_body())
                        .await
                        .unwrap()
                        .to_bytes();
                    let answer = format!("{user} {path} {}", body.len());
                    Ok::<_, std::convert::Infallible>(http::Response::new(
                        http_body_util::Full::new(bytes::Bytes::from(answer)),
                    ))
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc),
            );
        }
    });
    let store: Arc<dyn ObjectStore> = Arc::new(MemStore::new());
    store
        .commit(Batch::one(Op::Put {
            key: store::key("", "nodes", "", "n1"),
            value: json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
                "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                           "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}}),
            precondition: Precondition::None,
        }))
        .await
        .unwrap();
    let state = Arc::new(ApiState {
        store,
        config: crate::api::state::ApiConfig {
            pki: Some(cluster),
            ..Default::default()
        },
        metrics: Arc::new(crate::metrics::AgentMetrics::new(
            Arc::new(MemStore::new()),
            crate::kubelet_client::KubeletClient::new(None, 10250),
        )),
        shutdown: tokio_util::sync::CancellationToken::new(),
    });
    let req = Request::post("/api/v1/nodes/n1/proxy/images/load")
        .header(header::CONTENT_LENGTH, "9")
        .body(Body::from("tar-bytes"))
        .unwrap();
    let resp = handle(state.clone(), req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(&body[..], b"berth:apiserver /images/load 9");
    // Only image paths are proxied, and a declared size over the bound is refused up front.
    let req = Request::get("/api/v1/nodes/n1/proxy/exec/default/p/c")
        .body(Body::empty())
        .unwrap();
    let resp = handle(state.clone(), req).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let req = Request::post("/api/v1/nodes/n1/proxy/images/load")
        .header(header::CONTENT_LENGTH, (MAX_IMAGE_BYTES + 1).to_string())
        .body(Body::empty())
        .unwrap();
    let resp = handle(state, req).await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
}
