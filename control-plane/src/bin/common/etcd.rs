//! A 3-member etcd on 127.0.0.1 for comparison, plaintext or with TLS everywhere (client and peer
//! URLs `https://`, client certificates required on both, all from a CA made with the pki crate),
//! and the few `etcdserverpb` messages the benchmarks send over gRPC.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use tonic::transport::{Channel, Endpoint};

use super::{free_port, TempDir};

/// `etcdserverpb.PutRequest`, the two fields the benchmarks set.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PutRequest {
    /// The key.
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    /// The value.
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// `etcdserverpb.ResponseHeader`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ResponseHeader {
    /// The cluster.
    #[prost(uint64, tag = "1")]
    pub cluster_id: u64,
    /// The member that answered.
    #[prost(uint64, tag = "2")]
    pub member_id: u64,
}

/// `etcdserverpb.PutResponse` (fields other than the header are skipped).
#[derive(Clone, PartialEq, prost::Message)]
pub struct PutResponse {
    /// The header.
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
}

/// `etcdserverpb.StatusRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StatusRequest {}

/// `etcdserverpb.StatusResponse`: who answers and who leads.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StatusResponse {
    /// The header.
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
    /// The leader's member id.
    #[prost(uint64, tag = "4")]
    pub leader: u64,
}

/// One unary gRPC call of `path` on `channel`.
pub async fn unary<Req, Resp>(
    channel: Channel,
    path: &'static str,
    req: Req,
) -> anyhow::Result<Resp>
where
    Req: prost::Message + Send + Sync + 'static,
    Resp: prost::Message + Default + Send + Sync + 'static,
{
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.context("channel not ready")?;
    let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
    let resp = grpc
        .unary(
            tonic::Request::new(req),
            http::uri::PathAndQuery::from_static(path),
            codec,
        )
        .await
        .map_err(|s| anyhow::anyhow!("{path}: {}", s.message()))?;
    Ok(resp.into_inner())
}

/// `KV/Put` of `value` at `key`.
pub async fn put(channel: Channel, key: Vec<u8>, value: Vec<u8>) -> anyhow::Result<()> {
    let _: PutResponse = unary(channel, "/etcdserverpb.KV/Put", PutRequest { key, value }).await?;
    Ok(())
}

/// A lazily connecting gRPC channel to `addr`, over TLS with `tls` when given. The scheme stays
/// `http`: with TLS the connector wraps the stream before HTTP/2 starts.
pub fn channel(addr: &str, tls: Option<&Arc<rustls::ClientConfig>>) -> anyhow::Result<Channel> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true);
    Ok(match tls {
        Some(cfg) => endpoint.connect_with_connector_lazy(pki::net::grpc_connector(cfg.clone())),
        None => endpoint.connect_lazy(),
    })
}

/// A running 3-member etcd; killed on drop.
pub struct Etcd {
    children: Vec<Child>,
    /// Client addresses (`127.0.0.1:port`) in member order.
    pub clients: Vec<String>,
    /// How a client dials with TLS (trusts the CA, presents a client certificate); `None` when plaintext.
    pub client_tls: Option<Arc<rustls::ClientConfig>>,
    _dir: TempDir,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Certificates valid for a day: longer than any run.
const VALIDITY: Duration = Duration::from_secs(24 * 3600);

/// A CA, one certificate per member (server and client: members dial each other with it), and a
/// client certificate, written as PEM files under `dir`.
struct EtcdPki {
    client_tls: Arc<rustls::ClientConfig>,
}

fn write_pki(dir: &Path, members: usize) -> anyhow::Result<EtcdPki> {
    let ca = pki::Ca::generate("etcd-bench", VALIDITY)?;
    let write = |name: &str, text: &str| -> anyhow::Result<()> {
        pki::write_private(&dir.join(name), text.as_bytes())?;
        Ok(())
    };
    write("ca.crt", ca.cert_pem())?;
    for i in 1..=members {
        let req = pki::CertRequest {
            common_name: format!("e{i}"),
            organizations: Vec::new(),
            dns_names: vec!["localhost".into()],
            ips: vec![std::net::Ipv4Addr::LOCALHOST.into()],
            usage: pki::Usage::ServerAndClient,
            validity: VALIDITY,
        };
        let issued = ca.issue(&req)?;
        write(&format!("e{i}.crt"), &issued.cert_pem)?;
        write(&format!("e{i}.key"), &issued.key_pem)?;
    }
    let client = ca.issue(&pki::CertRequest::client("root", &[], VALIDITY))?;
    let source = pki::CertSource::from_pem(&client.cert_pem, &client.key_pem)?;
    Ok(EtcdPki {
        client_tls: pki::client_config(ca.cert_pem(), Some(source), &[b"h2"])?,
    })
}

/// Starts 3 etcd members from `bin`, with TLS and client certificates on client and peer URLs when `tls`.
///
/// # Errors
/// When a port, the certificates or a process cannot be had.
pub fn start(bin: &Path, tls: bool) -> anyhow::Result<Etcd> {
    let dir = TempDir::new(if tls { "etcd-tls" } else { "etcd" })?;
    let pki = if tls {
        Some(write_pki(dir.path(), 3)?)
    } else {
        None
    };
    let scheme = if tls { "https" } else { "http" };
    let mut peers = Vec::new();
    let mut clients = Vec::new();
    for _ in 0..3 {
        peers.push(format!("127.0.0.1:{}", free_port()?));
        clients.push(format!("127.0.0.1:{}", free_port()?));
    }
    let initial: Vec<String> = peers
        .iter()
        .enumerate()
        .map(|(i, p)| format!("e{}={scheme}://{p}", i + 1))
        .collect();
    let mut etcd = Etcd {
        children: Vec::new(),
        clients: clients.clone(),
        client_tls: pki.map(|p| p.client_tls),
        _dir: dir,
    };
    for i in 0..3 {
        let name = format!("e{}", i + 1);
        let mut cmd = Command::new(bin);
        cmd.arg("--name")
            .arg(&name)
            .arg("--data-dir")
            .arg(etcd._dir.path().join(&name))
            .arg("--listen-client-urls")
            .arg(format!("{scheme}://{}", clients[i]))
            .arg("--advertise-client-urls")
            .arg(format!("{scheme}://{}", clients[i]))
            .arg("--listen-peer-urls")
            .arg(format!("{scheme}://{}", peers[i]))
            .arg("--initial-advertise-peer-urls")
            .arg(format!("{scheme}://{}", peers[i]))
            .arg("--initial-cluster")
            .arg(initial.join(","))
            .arg("--initial-cluster-state")
            .arg("new")
            .arg("--initial-cluster-token")
            .arg("berth-bench")
            .arg("--log-level")
            .arg("error");
        if tls {
            let f = |n: &str| etcd._dir.path().join(n);
            let (crt, key) = (f(&format!("{name}.crt")), f(&format!("{name}.key")));
            cmd.arg("--cert-file")
                .arg(&crt)
                .arg("--key-file")
                .arg(&key)
                .arg("--client-cert-auth")
                .arg("--trusted-ca-file")
                .arg(f("ca.crt"))
                .arg("--peer-cert-file")
                .arg(&crt)
                .arg("--peer-key-file")
                .arg(&key)
                .arg("--peer-client-cert-auth")
                .arg("--peer-trusted-ca-file")
                .arg(f("ca.crt"));
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("failed to start {}", bin.display()))?;
        // Pushed at once, so a later failure still kills what started.
        etcd.children.push(child);
    }
    Ok(etcd)
}

impl Etcd {
    /// `n` channels to member `i` (etcd's benchmark tool spreads its clients over `--conns` the same way).
    ///
    /// # Errors
    /// When the address does not parse.
    pub fn channels(&self, i: usize, n: usize) -> anyhow::Result<Vec<Channel>> {
        (0..n)
            .map(|_| channel(&self.clients[i], self.client_tls.as_ref()))
            .collect()
    }

    /// Waits (up to 30 s) until a member reports itself leader; returns its index.
    ///
    /// # Errors
    /// When no leader was elected in time.
    pub async fn leader(&self) -> anyhow::Result<usize> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = None;
        loop {
            for (i, addr) in self.clients.iter().enumerate() {
                let ch = channel(addr, self.client_tls.as_ref())?;
                let res: anyhow::Result<StatusResponse> =
                    unary(ch, "/etcdserverpb.Maintenance/Status", StatusRequest {}).await;
                match res {
                    Ok(s)
                        if s.leader != 0
                            && s.header.as_ref().map(|h| h.member_id) == Some(s.leader) =>
                    {
                        return Ok(i)
                    }
                    Ok(_) => {}
                    Err(e) => last = Some(e),
                }
            }
            if Instant::now() > deadline {
                match last {
                    Some(e) => bail!("etcd elected no leader (last error: {e:#})"),
                    None => bail!("etcd elected no leader"),
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
