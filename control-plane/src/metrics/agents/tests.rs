use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;

use super::*;
use crate::store::{Batch, MemStore, Op, Precondition};

/// A stand-in agent on 127.0.0.1 answering `/stats/summary` with `body`; counts the scrapes.
async fn stub_agent(body: String) -> (u16, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().route(
        "/stats/summary",
        axum::routing::get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            let body = body.clone();
            async move { body }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, hits)
}

fn summary(node: &str, pod: &str, cpu: u64) -> String {
    json!({"node": {"nodeName": node,
        "cpu": {"time": "2026-01-01T00:00:10Z", "windowNanoSeconds": 2_000_000_000u64,
                "usageNanoCores": cpu, "usageCoreNanoSeconds": 1},
        "memory": {"time": "2026-01-01T00:00:10Z", "workingSetBytes": 1_048_576, "usageBytes": 2}},
      "pods": [{"podRef": {"name": pod, "namespace": "default", "uid": "u"},
        "containers": [{"name": "app",
            "cpu": {"time": "2026-01-01T00:00:10Z", "windowNanoSeconds": 2_000_000_000u64,
                    "usageNanoCores": cpu / 2, "usageCoreNanoSeconds": 1},
            "memory": {"time": "2026-01-01T00:00:10Z", "workingSetBytes": 4096, "usageBytes": 2}}]}]})
    .to_string()
}

async fn add_node(store: &MemStore, name: &str, port: u16) {
    store
        .commit(Batch::one(Op::Put {
            key: store::key("", "nodes", "", name),
            value: json!({"metadata": {"name": name},
                "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                           "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}}),
            precondition: Precondition::None,
        }))
        .await
        .unwrap();
}

/// A port nothing listens on.
async fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn every_answering_agent_counts_and_the_rest_are_left_out() {
    let store = Arc::new(MemStore::new());
    let (good, _) = stub_agent(summary("n1", "web", 300_000_000)).await;
    let (garbage, _) = stub_agent("{\"node\": [1, 2".into()).await;
    add_node(&store, "n1", good).await;
    add_node(&store, "n2", garbage).await;
    add_node(&store, "n3", closed_port().await).await;
    // A silent agent: accepts, never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    add_node(&store, "n4", silent.local_addr().unwrap().port()).await;
    let m = AgentMetrics::new(store, KubeletClient::new(None, 10250))
        .with_scrape_timeout(Duration::from_millis(300));
    let nodes = m.nodes().await.unwrap();
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    assert_eq!(
        (
            nodes[0].name.as_str(),
            nodes[0].cpu_nanocores,
            nodes[0].memory_bytes
        ),
        ("n1", 300_000_000, 1_048_576)
    );
    let pods = m.pods(Some("default")).await.unwrap();
    assert_eq!(pods.len(), 1);
    assert_eq!(
        (pods[0].name.as_str(), pods[0].cpu_nanocores()),
        ("web", 150_000_000)
    );
    assert!(m.pods(Some("other")).await.unwrap().is_empty());
    drop(silent);
}

#[tokio::test]
async fn an_oversized_summary_is_skipped() {
    let store = Arc::new(MemStore::new());
    let (port, _) = stub_agent(summary("n1", "web", 1)).await;
    add_node(&store, "n1", port).await;
    let m = AgentMetrics::new(store, KubeletClient::new(None, 10250)).with_max_summary_bytes(64);
    assert!(m.nodes().await.unwrap().is_empty());
}

#[tokio::test]
async fn callers_within_the_ttl_share_one_scrape() {
    let store = Arc::new(MemStore::new());
    let (port, hits) = stub_agent(summary("n1", "web", 1)).await;
    add_node(&store, "n1", port).await;
    let m = AgentMetrics::new(store, KubeletClient::new(None, 10250));
    let (a, b) = tokio::join!(m.nodes(), m.pods(None));
    assert_eq!((a.unwrap().len(), b.unwrap().len()), (1, 1));
    assert_eq!(m.nodes().await.unwrap().len(), 1);
    assert_eq!(hits.load(Ordering::SeqCst), 1, "one scrape for three asks");
    // Past the TTL the agent is asked again. Real time: the scrape is real I/O.
    tokio::time::sleep(CACHE_TTL + Duration::from_millis(100)).await;
    assert_eq!(m.nodes().await.unwrap().len(), 1);
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}
