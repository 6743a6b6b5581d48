//! Network modes: the server (TCP request/response echo, TCP sink, UDP echo on one port) and the
//! clients `tcp-rr`, `udp-rr` (netperf TCP_RR/UDP_RR style) and `tcp-stream` (bulk send).
//!
//! Wire protocol: a TCP client's first byte picks the mode, `R` (echo every byte back) or `S`
//! (discard until EOF, then answer the byte count as a big-endian u64, so the sender times what
//! actually arrived rather than what left its socket buffer). UDP datagrams are echoed as they are.

use crate::json::Obj;
use crate::stats;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Most connections the server handles at once; the bench opens one or two, so more is a stray client.
const MAX_CONNECTIONS: usize = 64;
/// A connection idle this long is dropped, so a vanished client cannot pin a thread.
const IDLE: Duration = Duration::from_secs(30);
/// How long a client keeps retrying to reach the server: a Service VIP's rules and a fresh pod's
/// listener may lag the bench's readiness check by a moment.
const CONNECT_WAIT: Duration = Duration::from_secs(20);
/// Count bound on the transactions of one run (about 40 s at 50 000/s); RTT samples are kept in
/// memory, 8 bytes each.
const MAX_TRANSACTIONS: usize = 4_000_000;
/// Count bound on bytes one stream sends (1 TiB).
const MAX_STREAM_BYTES: u64 = 1 << 40;
const STREAM_CHUNK: usize = 128 * 1024;

/// Starts the TCP and UDP server threads on the given sockets; they stop serving at `deadline`.
/// The sockets are passed in (not bound here) so tests serve on 127.0.0.1 port 0.
pub fn spawn_servers(tcp: TcpListener, udp: UdpSocket, deadline: Instant) {
    let active = Arc::new(AtomicUsize::new(0));
    thread::spawn(move || {
        for conn in tcp.incoming() {
            if Instant::now() >= deadline {
                break;
            }
            let Ok(conn) = conn else { continue };
            if active.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
                continue; // dropping the stream closes it
            }
            active.fetch_add(1, Ordering::SeqCst);
            let active = Arc::clone(&active);
            thread::spawn(move || {
                let _ = handle_tcp(conn, deadline);
                active.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    thread::spawn(move || serve_udp(&udp, deadline));
}

fn handle_tcp(mut s: TcpStream, deadline: Instant) -> io::Result<()> {
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(IDLE))?;
    s.set_write_timeout(Some(IDLE))?;
    let mut mode = [0u8; 1];
    s.read_exact(&mut mode)?;
    match mode[0] {
        b'R' => {
            let mut b = [0u8; 1];
            while Instant::now() < deadline {
                if s.read(&mut b)? == 0 {
                    return Ok(());
                }
                s.write_all(&b)?;
            }
            Ok(())
        }
        b'S' => {
            let mut buf = vec![0u8; STREAM_CHUNK];
            let mut total: u64 = 0;
            while Instant::now() < deadline {
                let n = s.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
            s.write_all(&total.to_be_bytes())
        }
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "unknown mode byte",
        )),
    }
}

fn serve_udp(udp: &UdpSocket, deadline: Instant) {
    // A read timeout so the loop notices the deadline even when no datagram comes.
    if udp.set_read_timeout(Some(Duration::from_secs(1))).is_err() {
        return;
    }
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        if let Ok((n, from)) = udp.recv_from(&mut buf) {
            let _ = udp.send_to(&buf[..n], from);
        }
    }
}

/// `berth-probe serve`: binds all IPv4 addresses, prints its one line once listening (the bench
/// reads it as the server's readiness), then serves until `max_seconds` have passed.
pub fn serve(port: u16, max_seconds: u64) -> Result<String, String> {
    let tcp =
        TcpListener::bind(("0.0.0.0", port)).map_err(|e| format!("bind tcp port {port}: {e}"))?;
    let udp =
        UdpSocket::bind(("0.0.0.0", port)).map_err(|e| format!("bind udp port {port}: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(max_seconds);
    spawn_servers(tcp, udp, deadline);
    let line = Obj::new()
        .str("mode", "serve")
        .num("port", f64::from(port))
        .num("max_seconds", max_seconds as f64)
        .bool("listening", true)
        .finish();
    let mut out = io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|_| out.flush())
        .map_err(|e| format!("stdout: {e}"))?;
    drop(out);
    let now = Instant::now();
    if deadline > now {
        thread::sleep(deadline - now);
    }
    Ok(String::new())
}

fn resolve(target: &str) -> Result<SocketAddr, String> {
    target
        .to_socket_addrs()
        .map_err(|e| format!("resolve {target}: {e}"))?
        .next()
        .ok_or_else(|| format!("resolve {target}: no address"))
}

fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
    let give_up = Instant::now() + CONNECT_WAIT;
    let mut last = String::new();
    // Bounded by time and by count (one attempt per 100 ms at most).
    for _ in 0..(CONNECT_WAIT.as_millis() / 100) {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(s) => {
                s.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
                s.set_read_timeout(Some(IDLE))
                    .map_err(|e| format!("timeout: {e}"))?;
                s.set_write_timeout(Some(IDLE))
                    .map_err(|e| format!("timeout: {e}"))?;
                return Ok(s);
            }
            Err(e) => last = e.to_string(),
        }
        if Instant::now() >= give_up {
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    Err(format!("connect {addr}: {last}"))
}

fn rr_line(mode: &str, target: &str, elapsed: Duration, ns: &mut [u64]) -> Obj {
    let transactions = ns.len();
    let secs = elapsed.as_secs_f64();
    let mut obj = Obj::new()
        .str("mode", mode)
        .str("target", target)
        .num("seconds", secs)
        .num("transactions", transactions as f64)
        .num(
            "tps",
            if secs > 0.0 {
                transactions as f64 / secs
            } else {
                0.0
            },
        );
    if let Some(s) = stats::summarize_ns(ns) {
        obj = obj.raw("rtt_us", &s.to_json());
    }
    obj
}

/// `berth-probe tcp-rr`: one-byte request/response over one connection for `seconds`.
pub fn tcp_rr(target: &str, seconds: u64) -> Result<String, String> {
    let addr = resolve(target)?;
    let mut s = connect(addr)?;
    s.write_all(b"R").map_err(|e| format!("send mode: {e}"))?;
    let mut b = [0u8; 1];
    let mut ns: Vec<u64> = Vec::new();
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    while ns.len() < MAX_TRANSACTIONS {
        let t = Instant::now();
        if t >= end {
            break;
        }
        s.write_all(&[1]).map_err(|e| format!("send: {e}"))?;
        s.read_exact(&mut b).map_err(|e| format!("receive: {e}"))?;
        ns.push(t.elapsed().as_nanos() as u64);
    }
    let elapsed = start.elapsed();
    if ns.is_empty() {
        return Err("no transaction completed".into());
    }
    Ok(rr_line("tcp-rr", target, elapsed, &mut ns).finish())
}

/// `berth-probe udp-rr`: request/response of one datagram (an 8-byte sequence number, so a late
/// answer is never counted for the wrong request) for `seconds`; an answer not back within
/// `timeout_ms` counts as lost.
pub fn udp_rr(target: &str, seconds: u64, timeout_ms: u64) -> Result<String, String> {
    let addr = resolve(target)?;
    let local: SocketAddr = if addr.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .map_err(|e| format!("{e}"))?;
    let sock = UdpSocket::bind(local).map_err(|e| format!("bind: {e}"))?;
    sock.connect(addr)
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let timeout = Duration::from_millis(timeout_ms.max(1));
    sock.set_read_timeout(Some(timeout))
        .map_err(|e| format!("timeout: {e}"))?;

    // Wait for the first answer (untimed) so a server still starting is not counted as loss.
    let give_up = Instant::now() + CONNECT_WAIT;
    let mut warm = false;
    let mut buf = [0u8; 64];
    while !warm && Instant::now() < give_up {
        let _ = sock.send(&u64::MAX.to_be_bytes());
        match sock.recv(&mut buf) {
            Ok(8) if buf[..8] == u64::MAX.to_be_bytes() => warm = true,
            Ok(_) => {}
            // A refused port (ICMP unreachable) answers at once: pace the retries.
            Err(_) => thread::sleep(Duration::from_millis(50)),
        }
    }
    if !warm {
        return Err(format!(
            "no udp answer from {addr} within {}s",
            CONNECT_WAIT.as_secs()
        ));
    }

    let mut ns: Vec<u64> = Vec::new();
    let mut lost: u64 = 0;
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    for seq in 0..MAX_TRANSACTIONS as u64 {
        let t = Instant::now();
        if t >= end {
            break;
        }
        let req = seq.to_be_bytes();
        if sock.send(&req).is_err() {
            lost += 1;
            continue;
        }
        // Skip stale answers (earlier sequence numbers that came back late), a bounded number of them.
        let mut answered = false;
        for _ in 0..64 {
            match sock.recv(&mut buf) {
                Ok(8) if buf[..8] == req => {
                    answered = true;
                    break;
                }
                Ok(_) => continue,
                Err(_) => break,
            }
        }
        if answered {
            ns.push(t.elapsed().as_nanos() as u64);
        } else {
            lost += 1;
        }
    }
    let elapsed = start.elapsed();
    if ns.is_empty() {
        return Err(format!("no udp transaction completed ({lost} lost)"));
    }
    Ok(rr_line("udp-rr", target, elapsed, &mut ns)
        .num("lost", lost as f64)
        .num("timeout_ms", timeout.as_millis() as f64)
        .finish())
}

/// `berth-probe tcp-stream`: sends as fast as it can for `seconds`, then times until the server
/// confirms how many bytes it received; throughput is that count over that time.
pub fn tcp_stream(target: &str, seconds: u64) -> Result<String, String> {
    let addr = resolve(target)?;
    let mut s = connect(addr)?;
    s.write_all(b"S").map_err(|e| format!("send mode: {e}"))?;
    let buf = vec![0x5au8; STREAM_CHUNK];
    let mut sent: u64 = 0;
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    while Instant::now() < end && sent < MAX_STREAM_BYTES {
        sent += s.write(&buf).map_err(|e| format!("send: {e}"))? as u64;
    }
    s.shutdown(Shutdown::Write)
        .map_err(|e| format!("shutdown: {e}"))?;
    let mut ack = [0u8; 8];
    s.read_exact(&mut ack)
        .map_err(|e| format!("receive count: {e}"))?;
    let elapsed = start.elapsed().as_secs_f64();
    let received = u64::from_be_bytes(ack);
    Ok(Obj::new()
        .str("mode", "tcp-stream")
        .str("target", target)
        .num("seconds", elapsed)
        .num("bytes_sent", sent as f64)
        .num("bytes_received", received as f64)
        .num(
            "mbit_s",
            if elapsed > 0.0 {
                received as f64 * 8.0 / elapsed / 1e6
            } else {
                0.0
            },
        )
        .finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server on 127.0.0.1 with TCP and UDP on one free port.
    fn loopback_server() -> String {
        for _ in 0..20 {
            let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = tcp.local_addr().unwrap().port();
            if let Ok(udp) = UdpSocket::bind(("127.0.0.1", port)) {
                spawn_servers(tcp, udp, Instant::now() + Duration::from_secs(60));
                return format!("127.0.0.1:{port}");
            }
        }
        panic!("no free port for tcp and udp");
    }

    fn field(line: &str, key: &str) -> f64 {
        let pat = format!("\"{key}\":");
        let rest =
            &line[line.find(&pat).unwrap_or_else(|| panic!("{key} in {line}")) + pat.len()..];
        let end = rest.find([',', '}']).unwrap();
        rest[..end].parse().unwrap()
    }

    #[test]
    fn loopback_serve_and_clients() {
        let target = loopback_server();
        let tcp = tcp_rr(&target, 1).unwrap();
        assert!(field(&tcp, "transactions") > 0.0, "{tcp}");
        assert!(field(&tcp, "tps") > 0.0);
        assert!(field(&tcp, "p50") <= field(&tcp, "p99"), "{tcp}");

        let udp = udp_rr(&target, 1, 200).unwrap();
        assert!(field(&udp, "transactions") > 0.0, "{udp}");
        assert!(field(&udp, "p50") <= field(&udp, "p99"), "{udp}");
        assert!(field(&udp, "lost") >= 0.0);

        let stream = tcp_stream(&target, 1).unwrap();
        assert!(field(&stream, "bytes_received") > 0.0, "{stream}");
        assert_eq!(
            field(&stream, "bytes_received"),
            field(&stream, "bytes_sent")
        );
        assert!(field(&stream, "mbit_s") > 0.0);
    }

    #[test]
    fn unreachable_target_is_an_error_not_a_panic() {
        assert!(resolve("not an address").is_err());
    }
}
