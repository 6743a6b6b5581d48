//! The real berth API server on 127.0.0.1:0 over the in-memory store, with TLS and the cluster's
//! admin client certificate, for tests of the verbs. No controllers run: what they would write
//! (statuses, owned objects) is seeded straight into the store.

use std::sync::Arc;
use std::time::Duration;

use control_plane::api;
use control_plane::security::{ClusterPki, MemberIdentity, DEFAULT_VALIDITY};
use control_plane::store::{self, Batch, Consistency, MemStore, ObjectStore, Op, Precondition};
use futures::StreamExt as _;
use http_body_util::Full;
use hyper::body::Bytes;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::kubeconfig::{self, ConnectOptions, Session};

/// A running API server; dropping it stops the server.
pub struct Api {
    /// The store under the server, to seed and inspect objects as controllers would.
    pub store: Arc<MemStore>,
    /// The cluster PKI the server serves with.
    pki: Arc<ClusterPki>,
    /// The admin kubeconfig (CA and a `system:masters` client certificate).
    kubeconfig: std::path::PathBuf,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for Api {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The store key of the REST path `/api/v1/namespaces/ns/pods/x` or `/apis/g/v/...`.
fn store_key(path: &str) -> String {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match segs.as_slice() {
        ["api", _, rest @ ..] => ("", rest),
        ["apis", g, _, rest @ ..] => (*g, rest),
        _ => panic!("not a REST object path: {path}"),
    };
    match rest {
        ["namespaces", ns, resource, name] => store::key(group, resource, ns, name),
        [resource, name] => store::key(group, resource, "", name),
        _ => panic!("not a REST object path: {path}"),
    }
}

/// The REST path of a manifest-shaped object (its plural is the lower-case kind plus `s`, which
/// holds for every kind these tests seed).
fn object_path(obj: &Value) -> String {
    let api_version = obj["apiVersion"].as_str().expect("apiVersion");
    let plural = format!("{}s", obj["kind"].as_str().expect("kind").to_lowercase());
    let base = if api_version.contains('/') {
        format!("/apis/{api_version}")
    } else {
        format!("/api/{api_version}")
    };
    let name = obj["metadata"]["name"].as_str().expect("metadata.name");
    match obj["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{base}/namespaces/{ns}/{plural}/{name}"),
        None => format!("{base}/{plural}/{name}"),
    }
}

impl Api {
    /// Starts the API with a fresh cluster PKI and the system namespaces.
    pub async fn start() -> Api {
        pki::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(MemStore::new());
        api::bootstrap(&*store).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let identity = MemberIdentity {
            name: "a".into(),
            sans: vec!["127.0.0.1".into()],
            validity: DEFAULT_VALIDITY,
        };
        let pki =
            Arc::new(ClusterPki::create(&dir.path().join("member"), &identity, None).unwrap());
        let kubeconfig = pki
            .write_admin_kubeconfig(&format!("https://{addr}"))
            .unwrap();
        let config = api::ApiConfig {
            advertise_address: addr.to_string(),
            pki: Some(pki.clone()),
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
        Api {
            store,
            pki,
            kubeconfig,
            shutdown,
            _dir: dir,
        }
    }

    /// A session as the admin, in namespace `default`.
    pub async fn session(&self) -> Session {
        kubeconfig::connect(&ConnectOptions {
            kubeconfig: Some(self.kubeconfig.clone()),
            ..Default::default()
        })
        .await
        .unwrap()
    }

    /// Stores a manifest-shaped object as a controller would, bypassing admission, so that tests
    /// can seed statuses and owner references.
    pub async fn put(&self, obj: Value) {
        self.store
            .commit(Batch::one(Op::Put {
                key: store_key(&object_path(&obj)),
                value: obj,
                precondition: Precondition::None,
            }))
            .await
            .unwrap();
    }

    /// The stored object at the REST path `path`.
    pub async fn object(&self, path: &str) -> Option<Value> {
        self.store
            .get(&store_key(path), Consistency::Linearizable)
            .await
            .unwrap()
            .map(|o| o.value)
    }

    /// [`Api::object`] with an owned path, for closures that build it.
    pub async fn object_at(&self, path: String) -> Option<Value> {
        self.object(&path).await
    }

    /// Edits the stored object at the REST path `path` in place.
    pub async fn edit(&self, path: &str, f: impl FnOnce(&mut Value)) {
        let mut obj = self.object(path).await.expect("object to edit");
        f(&mut obj);
        self.store
            .commit(Batch::one(Op::Put {
                key: store_key(path),
                value: obj,
                precondition: Precondition::Exists,
            }))
            .await
            .unwrap();
    }

    /// Plays the node agents' part in graceful deletion: every pod marked for deletion is removed,
    /// as an agent does once its containers have stopped. Runs until the server stops.
    pub fn finish_pod_deletions(&self) {
        let store = self.store.clone();
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            let prefix = store::prefix("", "pods", None);
            while !shutdown.is_cancelled() {
                let (pods, _) = store.list(&prefix, Consistency::Local).await.unwrap();
                for p in pods {
                    if p.value["metadata"]["deletionTimestamp"].is_string() {
                        let _ = store
                            .commit(Batch::one(Op::Delete {
                                key: p.key,
                                precondition: Precondition::Revision(p.revision),
                            }))
                            .await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
    }

    /// A node agent on 127.0.0.1 that answers every `containerLogs` request with
    /// `log of POD container=NAME`, behind a node certificate of this cluster with client
    /// certificates required (as a real agent serves); returns its port for the Node's
    /// `daemonEndpoints`.
    pub async fn agent(&self) -> u16 {
        let mut req =
            pki::CertRequest::client("system:node:a1", &[pki::GROUP_NODES], DEFAULT_VALIDITY);
        req.usage = pki::Usage::ServerAndClient;
        req.ips = vec!["127.0.0.1".parse().unwrap()];
        let cert = self.pki.ca.issue(&req).unwrap();
        let tls = pki::server_config(
            self.pki.ca_pem(),
            pki::CertSource::from_pem(&cert.cert_pem, &cert.key_pem).unwrap(),
            pki::ClientAuth::Required,
            &[b"http/1.1"],
        )
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut incoming = Box::pin(pki::net::incoming(listener, tls));
        tokio::spawn(async move {
            while let Some(Ok(conn)) = incoming.next().await {
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(|req: hyper::Request<_>| async move {
                        // /containerLogs/{namespace}/{pod}/{container}
                        let segs: Vec<String> =
                            req.uri().path().split('/').map(str::to_string).collect();
                        let body = match segs.as_slice() {
                            [_, logs, _, pod, container] if logs == "containerLogs" => {
                                format!("log of {pod} container={container}\n")
                            }
                            _ => String::new(),
                        };
                        hyper::Response::builder()
                            .status(200)
                            .header("content-type", "text/plain")
                            .body(Full::new(Bytes::from(body)))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(conn), svc)
                        .await;
                });
            }
        });
        port
    }
}
