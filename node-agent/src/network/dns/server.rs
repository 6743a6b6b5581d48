//! The DNS server: answers cluster names from the shared [`DnsTable`], forwards other names to the configured
//! upstream (if any), over UDP and TCP. The listener sockets are passed in (bound by the caller, possibly inside
//! another netns), per STYLE rule 14.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::wire::{self, Message};
use super::{resolve, respond, DnsTable, Resolution};

/// The record table shared between the network-view applier (writer) and the server (reader).
pub type SharedTable = Arc<RwLock<DnsTable>>;

const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_IN_FLIGHT: usize = 128;

/// Binds the UDP and TCP sockets of a DNS server on `addr` (normally `GATEWAY:53`). Call this inside the netns the
/// server must serve (see `network::in_netns`); the returned sockets are non-blocking, ready for tokio.
///
/// # Errors
/// The address is not local or the port is taken.
pub fn bind_dns(addr: SocketAddr) -> std::io::Result<(std::net::UdpSocket, std::net::TcpListener)> {
    let udp = std::net::UdpSocket::bind(addr)?;
    udp.set_nonblocking(true)?;
    let tcp = std::net::TcpListener::bind(addr)?;
    tcp.set_nonblocking(true)?;
    Ok((udp, tcp))
}

/// A DNS server for one node.
#[derive(Debug, Clone)]
pub struct DnsServer {
    table: SharedTable,
    upstream: Option<SocketAddr>,
}

impl DnsServer {
    /// A server answering from `table`; names outside the cluster domain go to `upstream` or get SERVFAIL.
    pub fn new(table: SharedTable, upstream: Option<SocketAddr>) -> Self {
        DnsServer { table, upstream }
    }

    /// Computes the response to one raw query. With `udp` the reply is limited to 512 bytes (or the EDNS size, at most 1232);
    /// a larger answer is replaced by a truncated (TC) one. Returns `None` for garbage without a usable header.
    pub async fn answer(&self, raw: &[u8], udp: bool) -> Option<Vec<u8>> {
        let query = match wire::parse(raw) {
            Ok(m) if !m.response => m,
            Ok(_) => return None,
            Err(_) if raw.len() >= 12 => {
                let id = u16::from_be_bytes([raw[0], raw[1]]);
                return Some(wire::encode(&Message {
                    id,
                    response: true,
                    rcode: wire::RCODE_FORMERR,
                    ..Default::default()
                }));
            }
            Err(_) => return None,
        };
        let Some(question) = query.questions.first() else {
            let mut m = respond(&query, &Resolution::NxDomain);
            m.rcode = wire::RCODE_FORMERR;
            m.authoritative = false;
            return Some(wire::encode(&m));
        };
        if query.opcode != 0 {
            let mut m = respond(&query, &Resolution::NoData);
            m.rcode = wire::RCODE_NOTIMP;
            m.authoritative = false;
            return Some(wire::encode(&m));
        }
        let res = {
            let table = self.table.read().unwrap();
            resolve(&table, question)
        };
        if res == Resolution::NotOurs {
            if let Some(up) = self.upstream {
                if let Some(reply) = forward(up, raw).await {
                    return Some(reply);
                }
            }
        }
        let msg = respond(&query, &res);
        let bytes = wire::encode(&msg);
        let limit = if udp {
            usize::from(query.edns_udp_size.unwrap_or(512).clamp(512, 1232))
        } else {
            65535
        };
        if bytes.len() > limit {
            let mut t = msg;
            t.answers.clear();
            t.additionals.clear();
            t.truncated = true;
            return Some(wire::encode(&t));
        }
        Some(bytes)
    }

    /// Serves until `shutdown` is cancelled, then waits for in-flight queries.
    ///
    /// # Errors
    /// Receiving on the UDP socket failed for a reason other than a transient one.
    pub async fn run(
        self,
        udp: UdpSocket,
        tcp: TcpListener,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        let udp = Arc::new(udp);
        let tracker = TaskTracker::new();
        let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let mut buf = vec![0u8; 4096];
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                r = udp.recv_from(&mut buf) => {
                    let (n, peer) = match r {
                        Ok(x) => x,
                        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
                        Err(e) => return Err(e),
                    };
                    let Ok(permit) = permits.clone().try_acquire_owned() else { continue };
                    let (me, sock, q) = (self.clone(), udp.clone(), buf[..n].to_vec());
                    tracker.spawn(async move {
                        if let Some(resp) = me.answer(&q, true).await {
                            let _ = sock.send_to(&resp, peer).await;
                        }
                        drop(permit);
                    });
                }
                r = tcp.accept() => {
                    let Ok((stream, _)) = r else { continue };
                    let Ok(permit) = permits.clone().try_acquire_owned() else { continue };
                    let (me, stop) = (self.clone(), shutdown.clone());
                    tracker.spawn(async move {
                        tokio::select! {
                            _ = stop.cancelled() => {}
                            _ = me.serve_tcp(stream) => {}
                        }
                        drop(permit);
                    });
                }
            }
        }
        tracker.close();
        tracker.wait().await;
        Ok(())
    }

    async fn serve_tcp(&self, mut s: TcpStream) -> std::io::Result<()> {
        loop {
            let mut len = [0u8; 2];
            match tokio::time::timeout(TCP_IDLE_TIMEOUT, s.read_exact(&mut len)).await {
                Ok(Ok(_)) => {}
                _ => return Ok(()),
            }
            let mut q = vec![0u8; usize::from(u16::from_be_bytes(len))];
            tokio::time::timeout(TCP_IDLE_TIMEOUT, s.read_exact(&mut q))
                .await
                .map_err(|_| std::io::ErrorKind::TimedOut)??;
            let Some(resp) = self.answer(&q, false).await else {
                return Ok(());
            };
            let mut out = (resp.len() as u16).to_be_bytes().to_vec();
            out.extend_from_slice(&resp);
            s.write_all(&out).await?;
        }
    }
}

async fn forward(upstream: SocketAddr, raw: &[u8]) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind(("0.0.0.0", 0)).await.ok()?;
    sock.connect(upstream).await.ok()?;
    sock.send(raw).await.ok()?;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(UPSTREAM_TIMEOUT, sock.recv(&mut buf))
        .await
        .ok()?
        .ok()?;
    buf.truncate(n);
    // Only relay an answer to this query: same ID.
    (n >= 2 && buf[..2] == raw[..2]).then_some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::dns::wire::{parse, query, RData, TYPE_A};
    use proto::agentpb::{Endpoint, ServiceView};

    fn table_with_many_pods(n: u8) -> SharedTable {
        let eps = (1..=n)
            .map(|i| Endpoint {
                ip: format!("10.244.1.{i}"),
                pod_name: String::new(),
                node_name: String::new(),
                ready: true,
            })
            .collect();
        let svc = ServiceView {
            namespace: "default".into(),
            name: "big".into(),
            cluster_ip: "None".into(),
            r#type: "ClusterIP".into(),
            session_affinity: String::new(),
            ports: vec![],
            endpoints: eps,
        };
        Arc::new(RwLock::new(DnsTable::from_services(
            "cluster.local",
            &[svc],
        )))
    }

    #[tokio::test]
    async fn answers_over_udp_and_tcp_on_loopback() {
        let table = table_with_many_pods(3);
        let (u, t) = bind_dns("127.0.0.1:0".parse().unwrap()).unwrap();
        let (udp_addr, tcp_addr) = (u.local_addr().unwrap(), t.local_addr().unwrap());
        let server = DnsServer::new(table.clone(), None);
        let stop = CancellationToken::new();
        let task = tokio::spawn(server.run(
            UdpSocket::from_std(u).unwrap(),
            TcpListener::from_std(t).unwrap(),
            stop.clone(),
        ));

        let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        c.send_to(&query(1, "big.default.svc.cluster.local", TYPE_A), udp_addr)
            .await
            .unwrap();
        let mut buf = [0u8; 1500];
        let n = c.recv(&mut buf).await.unwrap();
        let m = parse(&buf[..n]).unwrap();
        assert_eq!(m.answers.len(), 3);

        // A foreign name without an upstream is SERVFAIL, never forwarded.
        c.send_to(&query(2, "example.com", TYPE_A), udp_addr)
            .await
            .unwrap();
        let n = c.recv(&mut buf).await.unwrap();
        assert_eq!(parse(&buf[..n]).unwrap().rcode, wire::RCODE_SERVFAIL);

        let mut s = TcpStream::connect(tcp_addr).await.unwrap();
        let q = query(3, "big.default.svc.cluster.local", TYPE_A);
        let mut framed = (q.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&q);
        s.write_all(&framed).await.unwrap();
        let mut len = [0u8; 2];
        s.read_exact(&mut len).await.unwrap();
        let mut resp = vec![0u8; usize::from(u16::from_be_bytes(len))];
        s.read_exact(&mut resp).await.unwrap();
        let m = parse(&resp).unwrap();
        assert_eq!(m.id, 3);
        assert!(m.answers.iter().all(|a| matches!(a.data, RData::A(_))));

        stop.cancel();
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn oversized_udp_answer_is_truncated_but_tcp_is_not() {
        let server = DnsServer::new(table_with_many_pods(200), None);
        let q = query(5, "big.default.svc.cluster.local", TYPE_A);
        let udp = parse(&server.answer(&q, true).await.unwrap()).unwrap();
        assert!(udp.truncated && udp.answers.is_empty());
        let tcp = parse(&server.answer(&q, false).await.unwrap()).unwrap();
        assert!(!tcp.truncated);
        assert_eq!(tcp.answers.len(), 200);
    }

    #[tokio::test]
    async fn forwards_foreign_names_to_a_loopback_upstream() {
        // A fake upstream on 127.0.0.1 that answers everything with 192.0.2.1.
        let up = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let up_addr = up.local_addr().unwrap();
        let fake = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            let (n, peer) = up.recv_from(&mut buf).await.unwrap();
            let q = parse(&buf[..n]).unwrap();
            let mut r = respond(&q, &Resolution::NoData);
            r.answers.push(wire::Record {
                name: q.questions[0].name.clone(),
                ttl: 60,
                data: RData::A("192.0.2.1".parse().unwrap()),
            });
            up.send_to(&wire::encode(&r), peer).await.unwrap();
        });
        let server = DnsServer::new(table_with_many_pods(1), Some(up_addr));
        let m = parse(
            &server
                .answer(&query(8, "example.com", TYPE_A), true)
                .await
                .unwrap(),
        )
        .unwrap();
        assert_eq!(m.id, 8);
        assert_eq!(m.answers[0].data, RData::A("192.0.2.1".parse().unwrap()));
        fake.await.unwrap();
    }

    #[tokio::test]
    async fn garbage_gets_formerr_or_nothing() {
        let server = DnsServer::new(table_with_many_pods(1), None);
        assert!(server.answer(&[1, 2, 3], true).await.is_none());
        let mut junk = vec![0xAB, 0xCD, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        junk.extend_from_slice(&[0x80]);
        let m = parse(&server.answer(&junk, true).await.unwrap()).unwrap();
        assert_eq!((m.id, m.rcode), (0xABCD, wire::RCODE_FORMERR));
    }
}
