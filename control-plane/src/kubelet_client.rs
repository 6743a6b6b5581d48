//! How the API server reaches a node agent (port 10250), named after Kubernetes' `pkg/kubelet/client`:
//! the agent's address from its Node object, and a connection to it. The one home of that, shared
//! by the logs/exec/image proxy (`api::proxy`) and the usage scraper (`metrics::agents`).
//!
//! With a cluster PKI the agent is dialled over TLS, verified by the node IP in its certificate, with
//! the API server's client certificate (the only one agents serve). Plain HTTP only without a PKI
//! (in-process tests).

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::security::ClusterPki;

/// How long dialling an agent (TCP and TLS) may take.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why an agent's address is unknown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The Node has no `InternalIP` address (yet).
    #[error("node {node} reports no InternalIP")]
    NoInternalIp {
        /// The node's name.
        node: String,
    },
}

/// A connection to an agent, TLS or (without a PKI) plain.
pub trait AgentIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> AgentIo for T {}

/// What the server needs to reach any agent: its client identity and the default agent port.
#[derive(Clone)]
pub struct KubeletClient {
    /// `None` dials plain TCP (in-process tests only).
    pki: Option<Arc<ClusterPki>>,
    /// Used when a Node does not advertise `status.daemonEndpoints.kubeletEndpoint.Port`.
    default_port: u16,
}

impl std::fmt::Debug for KubeletClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeletClient")
            .field("tls", &self.pki.is_some())
            .field("default_port", &self.default_port)
            .finish()
    }
}

impl KubeletClient {
    /// A client that dials with `pki`'s API server client certificate (plain TCP without one),
    /// using `default_port` for Nodes that advertise no port.
    pub fn new(pki: Option<Arc<ClusterPki>>, default_port: u16) -> Self {
        KubeletClient { pki, default_port }
    }

    /// `host:port` of a Node's agent: its InternalIP and advertised daemon port.
    ///
    /// # Errors
    /// [`Error::NoInternalIp`] when the Node reports no InternalIP.
    pub fn node_address(&self, node: &Value) -> Result<String, Error> {
        let name = node
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let ip = node
            .pointer("/status/addresses")
            .and_then(Value::as_array)
            .and_then(|addrs| {
                addrs
                    .iter()
                    .find(|a| a.get("type").and_then(Value::as_str) == Some("InternalIP"))
            })
            .and_then(|a| a.get("address").and_then(Value::as_str))
            .filter(|ip| !ip.is_empty())
            .ok_or_else(|| Error::NoInternalIp {
                node: name.to_string(),
            })?;
        let port = node
            .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0)
            .unwrap_or(self.default_port);
        Ok(if ip.contains(':') {
            format!("[{ip}]:{port}")
        } else {
            format!("{ip}:{port}")
        })
    }

    /// Dials the agent at `addr`: TLS with the API server's client certificate, verifying the
    /// agent's certificate by the address, when the cluster has a PKI. At most [`DIAL_TIMEOUT`].
    ///
    /// # Errors
    /// When the connection or the handshake fails or times out.
    pub async fn dial(&self, addr: &str) -> std::io::Result<Box<dyn AgentIo>> {
        let connect = async {
            Ok::<Box<dyn AgentIo>, std::io::Error>(match &self.pki {
                Some(pki) => {
                    let config = pki.agent_client_config().map_err(std::io::Error::other)?;
                    Box::new(pki::net::connect(addr, config).await?)
                }
                None => Box::new(TcpStream::connect(addr).await?),
            })
        };
        tokio::time::timeout(DIAL_TIMEOUT, connect)
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"))?
    }

    /// Sends one HTTP/1.1 request to the agent at `addr` on a fresh connection; the response body
    /// streams from that connection.
    ///
    /// # Errors
    /// When the agent cannot be reached or the exchange fails before a response head.
    pub async fn send<B>(
        &self,
        addr: &str,
        req: Request<B>,
    ) -> std::io::Result<Response<hyper::body::Incoming>>
    where
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let io = self.dial(addr).await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "agent connection ended");
            }
        });
        sender
            .send_request(req)
            .await
            .map_err(std::io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn node_address_from_internal_ip_and_daemon_port() {
        let c = KubeletClient::new(None, 10250);
        let node = |addrs: Value, port: Value| {
            json!({"metadata": {"name": "n1"}, "status": {"addresses": addrs,
                "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}})
        };
        let ip = json!([{"type": "Hostname", "address": "n1"},
                        {"type": "InternalIP", "address": "10.0.0.5"}]);
        assert_eq!(
            c.node_address(&node(ip.clone(), json!(11250))).unwrap(),
            "10.0.0.5:11250"
        );
        // No port, or one out of range: the default.
        assert_eq!(
            c.node_address(&node(ip.clone(), json!(0))).unwrap(),
            "10.0.0.5:10250"
        );
        assert_eq!(
            c.node_address(&node(ip, json!(70000))).unwrap(),
            "10.0.0.5:10250"
        );
        let v6 = json!([{"type": "InternalIP", "address": "fd00::5"}]);
        assert_eq!(
            c.node_address(&node(v6, json!(10250))).unwrap(),
            "[fd00::5]:10250"
        );
        assert_eq!(
            c.node_address(&node(json!([]), json!(1))).unwrap_err(),
            Error::NoInternalIp { node: "n1".into() }
        );
    }
}
