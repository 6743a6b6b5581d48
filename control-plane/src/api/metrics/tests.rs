use super::*;
use crate::metrics::{ContainerUsage, MetricsSource};
use crate::store::{Batch, MemStore, ObjectStore, Op, Precondition};
use futures::future::{BoxFuture, FutureExt};

#[test]
fn quantities_as_metrics_server_prints_them() {
    assert_eq!(cpu_quantity(0), "0");
    assert_eq!(cpu_quantity(123_456), "123456n");
    assert_eq!(cpu_quantity(136_045_238), "136045238n");
    assert_eq!(cpu_quantity(250_000_000), "250m");
    assert_eq!(cpu_quantity(1_500_000), "1500u");
    assert_eq!(cpu_quantity(2_000_000_000), "2");
    assert_eq!(memory_quantity(1_263_616), "1234Ki");
    assert_eq!(memory_quantity(5 << 20), "5Mi");
    assert_eq!(memory_quantity(1_234_567), "1234567");
    assert_eq!(memory_quantity(0), "0");
    assert_eq!(memory_quantity(1000), "1k");
    assert_eq!(memory_quantity(512), "512");
    assert_eq!(
        (parse_cpu("250m"), parse_memory("1234Ki")),
        (250_000_000, 1_263_616)
    );
    assert_eq!((parse_cpu("x"), parse_memory("1k")), (0, 1000));
}

#[test]
fn windows_as_go_prints_durations() {
    let d = Duration::from_millis;
    assert_eq!(go_duration(Duration::from_secs(2)), "2s");
    assert_eq!(go_duration(d(10_062)), "10.062s");
    assert_eq!(go_duration(d(1_500)), "1.5s");
    assert_eq!(go_duration(d(500)), "500ms");
    assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
    assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
    assert_eq!(go_duration(Duration::ZERO), "0s");
}

fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

fn web_usage() -> PodUsage {
    PodUsage {
        namespace: "default".into(),
        name: "web".into(),
        timestamp: t(1_767_225_610),
        window: Duration::from_secs(2),
        containers: vec![ContainerUsage {
            name: "app".into(),
            cpu_nanocores: 123_456,
            memory_bytes: 1_263_616,
        }],
    }
}

#[test]
fn objects_as_metrics_server_renders_them() {
    let node = json!({"metadata": {"name": "n1", "labels": {"zone": "a"}, "uid": "x"}});
    let u = NodeUsage {
        name: "n1".into(),
        timestamp: t(1_767_225_610),
        window: Duration::from_millis(10_062),
        cpu_nanocores: 250_000_000,
        memory_bytes: 512 << 20,
    };
    assert_eq!(
        node_metrics(&u, &node, t(1_767_225_611)),
        json!({"kind": "NodeMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
            "metadata": {"name": "n1", "labels": {"zone": "a"},
                         "creationTimestamp": "2026-01-01T00:00:11Z"},
            "timestamp": "2026-01-01T00:00:10Z", "window": "10.062s",
            "usage": {"cpu": "250m", "memory": "512Mi"}})
    );
    let pod = json!({"metadata": {"name": "web", "namespace": "default"}});
    assert_eq!(
        pod_metrics(&web_usage(), &pod, t(1_767_225_611)),
        json!({"kind": "PodMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
            "metadata": {"name": "web", "namespace": "default",
                         "creationTimestamp": "2026-01-01T00:00:11Z"},
            "timestamp": "2026-01-01T00:00:10Z", "window": "2s",
            "containers": [{"name": "app", "usage": {"cpu": "123456n", "memory": "1234Ki"}}]})
    );
}

/// Usage from a table.
struct Fixed;

impl MetricsSource for Fixed {
    fn pods<'a>(
        &'a self,
        namespace: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<PodUsage>, MetricsError>> {
        let all = vec![web_usage()];
        async move {
            Ok(all
                .into_iter()
                .filter(|p| namespace.is_none_or(|ns| p.namespace == ns))
                .collect())
        }
        .boxed()
    }

    fn nodes(&self) -> BoxFuture<'_, Result<Vec<NodeUsage>, MetricsError>> {
        async { Err(MetricsError("no agents".into())) }.boxed()
    }
}

async fn state() -> Arc<ApiState> {
    let store = Arc::new(MemStore::new());
    for (name, app) in [("web", "web"), ("db", "db")] {
        store
            .commit(Batch::one(Op::Put {
                key: store::key("", "pods", "default", name),
                value: json!({"metadata": {"name": name, "namespace": "default",
                    "labels": {"app": app}}}),
                precondition: Precondition::None,
            }))
            .await
            .unwrap();
    }
    Arc::new(ApiState {
        store,
        config: Default::default(),
        metrics: Arc::new(Fixed),
        shutdown: tokio_util::sync::CancellationToken::new(),
    })
}

async fn call(st: &Arc<ApiState>, method: Method, uri: &str, accept: &str) -> (u16, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::ACCEPT, accept)
        .body(Body::empty())
        .unwrap();
    let resp = super::super::handlers::handle(st.clone(), req).await;
    let code = resp.status().as_u16();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    (code, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn pod_metrics_join_the_store_and_answer_statuses() {
    let st = state().await;
    let base = "/apis/metrics.k8s.io/v1beta1";
    let (code, list) = call(
        &st,
        Method::GET,
        &format!("{base}/pods"),
        "application/json",
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(list["kind"], "PodMetricsList");
    assert_eq!(list["metadata"], json!({}));
    // db has no usage: left out.
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        list["items"][0]["metadata"]["labels"],
        json!({"app": "web"})
    );
    let sel = format!("{base}/namespaces/default/pods?labelSelector=app%3Ddb");
    let (_, list) = call(&st, Method::GET, &sel, "application/json").await;
    assert_eq!(list["items"], json!([]));
    let sel = format!("{base}/namespaces/default/pods?fieldSelector=metadata.name%3Dweb");
    let (_, list) = call(&st, Method::GET, &sel, "application/json").await;
    assert_eq!(list["items"][0]["metadata"]["name"], "web");
    let (code, one) = call(
        &st,
        Method::GET,
        &format!("{base}/namespaces/default/pods/web"),
        "",
    )
    .await;
    assert_eq!((code, one["kind"].as_str()), (200, Some("PodMetrics")));
    for missing in ["nope", "db"] {
        let uri = format!("{base}/namespaces/default/pods/{missing}");
        let (code, status) = call(&st, Method::GET, &uri, "").await;
        assert_eq!(code, 404);
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["reason"], "NotFound");
        assert_eq!(
            status["message"],
            format!("podmetrics.metrics.k8s.io \"{missing}\" not found")
        );
    }
    let (code, status) = call(&st, Method::DELETE, &format!("{base}/pods"), "").await;
    assert_eq!((code, status["kind"].as_str()), (405, Some("Status")));
    // Usage unreadable: a Status, not a panic.
    let (code, status) = call(&st, Method::GET, &format!("{base}/nodes"), "").await;
    assert_eq!((code, status["kind"].as_str()), (503, Some("Status")));
    let (_, table) = call(
        &st,
        Method::GET,
        &format!("{base}/pods"),
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
    )
    .await;
    assert_eq!(table["kind"], "Table");
    assert_eq!(
        table["rows"][0]["cells"],
        json!(["web", "123456n", "1234Ki", "2s"])
    );
    assert_eq!(table["rows"][0]["object"]["metadata"]["name"], "web");
    let (_, disco) = call(&st, Method::GET, base, "").await;
    assert_eq!(disco["kind"], "APIResourceList");
}
