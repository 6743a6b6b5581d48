//! TLS over TCP for every port: an accept loop that hands out finished TLS streams (bounded handshakes,
//! failures logged and dropped), and dialling helpers, including a connector for tonic channels.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::ServerName;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{client, server, TlsAcceptor, TlsConnector};

/// A handshake that takes longer than this is dropped, so a client that opens TCP and says nothing
/// cannot hold a slot.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in flight per listener; more wait in the kernel's backlog.
const MAX_HANDSHAKES: usize = 256;

/// Accepts TCP connections on `listener`, runs TLS handshakes concurrently, and yields the finished
/// streams. Ends when the listener fails for good.
pub fn incoming(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
) -> impl futures_core::Stream<Item = std::io::Result<server::TlsStream<TcpStream>>> + Send + 'static
{
    let acceptor = TlsAcceptor::from(config);
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE and friends pass; back off a little instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    if tx.is_closed() {
                        return;
                    }
                    continue;
                }
            };
            if tx.is_closed() {
                return;
            }
            let _ = tcp.set_nodelay(true);
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let _permit = permit;
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send(Ok(tls)).await;
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// The name to verify a server by: its IP when `host` is one, else the DNS name.
///
/// # Errors
/// When `host` is neither.
pub fn server_name(host: &str) -> std::io::Result<ServerName<'static>> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
}

fn split_host(addr: &str) -> &str {
    let a = addr
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let a = a.split('/').next().unwrap_or(a);
    match a.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() => h,
        _ => a,
    }
}

/// Dials `addr` (`host:port`) and runs a TLS handshake verifying the server by `host`.
///
/// # Errors
/// When the connection or the handshake fails.
pub async fn connect(
    addr: &str,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<client::TlsStream<TcpStream>> {
    let hostport = addr
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let hostport = hostport.split('/').next().unwrap_or(hostport);
    let name = server_name(split_host(addr))?;
    let tcp = match hostport.parse::<SocketAddr>() {
        Ok(sa) => TcpStream::connect(sa).await?,
        Err(_) => TcpStream::connect(hostport).await?,
    };
    tcp.set_nodelay(true)?;
    TlsConnector::from(config).connect(name, tcp).await
}

/// A connector for `tonic::transport::Endpoint::connect_with_connector`: dials the endpoint's URI
/// over TLS with `config` (which must offer ALPN `h2`).
pub fn grpc_connector(
    config: Arc<rustls::ClientConfig>,
) -> impl tower::Service<
    http::Uri,
    Response = hyper_util::rt::TokioIo<client::TlsStream<TcpStream>>,
    Error = std::io::Error,
    Future = impl Send,
> + Clone
       + Send
       + 'static {
    tower::service_fn(move |uri: http::Uri| {
        let config = config.clone();
        async move {
            let authority = uri
                .authority()
                .map(|a| a.as_str().to_string())
                .ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::InvalidInput, "URI has no authority")
                })?;
            Ok(hyper_util::rt::TokioIo::new(
                connect(&authority, config).await?,
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_split_from_addresses() {
        assert_eq!(split_host("10.0.0.1:6444"), "10.0.0.1");
        assert_eq!(split_host("https://[::1]:6443/x"), "[::1]");
        assert_eq!(split_host("server-1"), "server-1");
        assert!(server_name("[::1]").is_ok());
        assert!(server_name("10.0.0.1").is_ok());
    }
}
