//! [`AgentMetrics`], the real [`MetricsSource`]: every Node's agent asked for its `/stats/summary`
//! concurrently, each answer kept for about a second so `kubectl top` and the HPA asking at once
//! cost one scrape. An agent that cannot be reached, is slow, or answers garbage is left out with a
//! log line, as metrics-server leaves out a kubelet it cannot scrape.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apimachinery::stats::Summary;
use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt, Shared};
use http::{header, Request};
use http_body_util::{BodyExt, Empty, Limited};
use serde_json::Value;
use tokio::time::Instant;

use super::convert::{node_usage, pod_usages};
use super::{MetricsError, MetricsSource, NodeUsage, PodUsage};
use crate::kubelet_client::KubeletClient;
use crate::store::{self, Consistency, ObjectStore};

/// How long one agent may take to answer (dial, head and body), as metrics-server's scrape timeout.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a node's summary is reused.
pub const CACHE_TTL: Duration = Duration::from_secs(1);

/// Largest summary read from an agent: a node with thousands of pods stays well below it.
pub const MAX_SUMMARY_BYTES: usize = 16 << 20;

/// One scrape, shared by everyone who asks while it runs or is fresh: when it finished, and the
/// summary (`None` when the agent was skipped, so a dead agent is not hammered either).
type Scrape = Shared<BoxFuture<'static, (Instant, Option<Arc<Summary>>)>>;

struct Entry {
    /// The address scraped: a Node that moved is scraped afresh.
    addr: String,
    scrape: Scrape,
}

/// Usage read from the agents of the Nodes in the local store.
pub struct AgentMetrics {
    store: Arc<dyn ObjectStore>,
    client: KubeletClient,
    timeout: Duration,
    ttl: Duration,
    max_body: usize,
    /// Node name to its latest scrape. A `std` mutex: held only to look up and insert, never
    /// across an await.
    cache: Mutex<HashMap<String, Entry>>,
}

impl AgentMetrics {
    /// Reads Nodes from `store` and reaches their agents with `client`, with [`SCRAPE_TIMEOUT`],
    /// [`CACHE_TTL`] and [`MAX_SUMMARY_BYTES`].
    pub fn new(store: Arc<dyn ObjectStore>, client: KubeletClient) -> Self {
        AgentMetrics {
            store,
            client,
            timeout: SCRAPE_TIMEOUT,
            ttl: CACHE_TTL,
            max_body: MAX_SUMMARY_BYTES,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The same with another per-agent timeout (tests of a silent agent).
    pub fn with_scrape_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The same with another body bound (tests of an oversized summary).
    pub fn with_max_summary_bytes(mut self, max: usize) -> Self {
        self.max_body = max;
        self
    }

    /// The summary of every Node whose agent answered, with the Node's name.
    async fn summaries(&self) -> Result<Vec<(String, Arc<Summary>)>, MetricsError> {
        let (nodes, _) = self
            .store
            .list(&store::prefix("", "nodes", None), Consistency::Local)
            .await
            .map_err(|e| MetricsError(format!("unable to list nodes: {e}")))?;
        let mut scrapes = Vec::with_capacity(nodes.len());
        {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            let mut live = HashMap::with_capacity(nodes.len());
            for node in &nodes {
                let Some(name) = node.value.pointer("/metadata/name").and_then(Value::as_str)
                else {
                    continue;
                };
                let addr = match self.client.node_address(&node.value) {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::debug!(node = name, error = %e, "node usage skipped");
                        continue;
                    }
                };
                let scrape = match cache.remove(name) {
                    Some(e) if e.addr == addr && self.fresh(&e.scrape) => e.scrape,
                    _ => self.scrape(name, &addr),
                };
                scrapes.push((name.to_string(), scrape.clone()));
                live.insert(name.to_string(), Entry { addr, scrape });
            }
            // Nodes that are gone drop out of the cache with this swap.
            *cache = live;
        }
        let results = futures::future::join_all(
            scrapes
                .into_iter()
                .map(|(name, s)| async move { (name, s.await.1) }),
        )
        .await;
        Ok(results
            .into_iter()
            .filter_map(|(name, s)| Some((name, s?)))
            .collect())
    }

    /// Whether a scrape may still be used: running, or finished less than the TTL ago.
    fn fresh(&self, scrape: &Scrape) -> bool {
        scrape
            .peek()
            .is_none_or(|(done, _)| done.elapsed() < self.ttl)
    }

    fn scrape(&self, node: &str, addr: &str) -> Scrape {
        let client = self.client.clone();
        let (node, addr) = (node.to_string(), addr.to_string());
        let (timeout, max_body) = (self.timeout, self.max_body);
        async move {
            let summary = match tokio::time::timeout(timeout, fetch(&client, &addr, max_body)).await
            {
                Ok(Ok(s)) => Some(Arc::new(s)),
                Ok(Err(why)) => {
                    tracing::warn!(node, addr, "node usage skipped: {why}");
                    None
                }
                Err(_) => {
                    tracing::warn!(node, addr, ?timeout, "node usage skipped: timed out");
                    None
                }
            };
            (Instant::now(), summary)
        }
        .boxed()
        .shared()
    }
}

/// `GET /stats/summary` from the agent at `addr`, the body bounded by `max_body`.
async fn fetch(client: &KubeletClient, addr: &str, max_body: usize) -> Result<Summary, String> {
    let req = Request::get("/stats/summary")
        .header(header::HOST, addr)
        .header(header::ACCEPT, "application/json")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = client
        .send(addr, req)
        .await
        .map_err(|e| format!("unreachable: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("the agent answered {}", resp.status()));
    }
    let body = Limited::new(resp.into_body(), max_body)
        .collect()
        .await
        .map_err(|e| format!("reading the summary failed: {e}"))?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|e| format!("undecodable summary: {e}"))
}

impl MetricsSource for AgentMetrics {
    fn pods<'a>(
        &'a self,
        namespace: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<PodUsage>, MetricsError>> {
        async move {
            let mut seen = std::collections::HashSet::new();
            let mut out = Vec::new();
            for (_, summary) in self.summaries().await? {
                for p in pod_usages(&summary, namespace) {
                    // A pod two agents claim (one moved, or one lies) is reported once.
                    if seen.insert((p.namespace.clone(), p.name.clone())) {
                        out.push(p);
                    }
                }
            }
            Ok(out)
        }
        .boxed()
    }

    fn nodes(&self) -> BoxFuture<'_, Result<Vec<NodeUsage>, MetricsError>> {
        async move {
            Ok(self
                .summaries()
                .await?
                .iter()
                .filter_map(|(name, s)| node_usage(name, s))
                .collect())
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests;
