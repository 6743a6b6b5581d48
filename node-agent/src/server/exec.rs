//! `GET /exec/{ns}/{pod}/{container}?command=…&stdin=&stdout=&stderr=&tty=`: a WebSocket speaking
//! `v5.channel.k8s.io` (frames `[channel][payload]`: 0 stdin, 1 stdout, 2 stderr, 3 status, 4 resize;
//! `[255, 0]` closes stdin) around `crun exec`.

use super::text;
use super::AgentState;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use futures::{SinkExt, StreamExt};
use std::process::Stdio;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(v) => {
                    out.push(v);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a query string with repeated keys (`command=ls&command=/`).
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

struct ExecParams {
    command: Vec<String>,
    stdin: bool,
    tty: bool,
    container: Option<String>,
}

fn params(q: &str) -> ExecParams {
    let kv = parse_query(q);
    let flag = |k: &str| kv.iter().any(|(n, v)| n == k && (v == "true" || v == "1"));
    ExecParams {
        command: kv
            .iter()
            .filter(|(k, _)| k == "command")
            .map(|(_, v)| v.clone())
            .collect(),
        stdin: flag("stdin"),
        tty: flag("tty"),
        container: kv
            .iter()
            .find(|(k, _)| k == "container")
            .map(|(_, v)| v.clone()),
    }
}

pub(super) async fn exec_default(
    state: State<AgentState>,
    Path((ns, pod)): Path<(String, String)>,
    q: RawQuery,
    ws: WebSocketUpgrade,
) -> axum::response::Response {
    let container = params(q.0.as_deref().unwrap_or(""))
        .container
        .unwrap_or_default();
    exec(state, Path((ns, pod, container)), q, ws).await
}

pub(super) async fn exec(
    State(state): State<AgentState>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
    ws: WebSocketUpgrade,
) -> axum::response::Response {
    let p = params(q.as_deref().unwrap_or(""));
    if p.command.is_empty() {
        return text(
            StatusCode::BAD_REQUEST,
            "you must specify at least one command for the container",
        );
    }
    let id = {
        let lookup = state
            .lookup
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        lookup.get(&(ns.clone(), pod.clone())).and_then(|cs| {
            let c = if container.is_empty() {
                cs.first()
            } else {
                cs.iter().find(|c| c.name == container)
            };
            c.and_then(|c| c.current.clone())
        })
    };
    let Some(id) = id else {
        return text(
            StatusCode::NOT_FOUND,
            format!("container {container} of pod {ns}/{pod} is not running"),
        );
    };
    let cmd = match state.runtime.exec_command(&id, &p.command, p.tty) {
        Ok(c) => c,
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    ws.protocols(["v5.channel.k8s.io", "v4.channel.k8s.io"])
        .on_upgrade(move |socket| run_exec(socket, cmd, p.stdin))
}

/// A close frame with code 1000. kubectl (gorilla/websocket) treats a close without a status code (1005)
/// as an error and prints "error reading from error stream" even after a successful command.
fn normal_close() -> Message {
    Message::Close(Some(axum::extract::ws::CloseFrame {
        code: 1000,
        reason: "".into(),
    }))
}

fn status_frame(code: Option<i32>) -> Vec<u8> {
    let body = match code {
        Some(0) => serde_json::json!({"metadata": {}, "status": "Success"}),
        Some(c) => serde_json::json!({
            "metadata": {}, "status": "Failure", "message": format!("command terminated with non-zero exit code: {c}"),
            "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": c.to_string()}]}
        }),
        None => {
            serde_json::json!({"metadata": {}, "status": "Failure", "message": "exec failed", "reason": "InternalError"})
        }
    };
    let mut f = vec![3u8];
    f.extend_from_slice(body.to_string().as_bytes());
    f
}

async fn run_exec(socket: WebSocket, cmd: std::process::Command, stdin: bool) {
    let (mut sink, mut source) = socket.split();
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.stdin(if stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let mut f = vec![2u8];
            f.extend_from_slice(format!("exec failed: {e}\n").as_bytes());
            let _ = sink.send(Message::Binary(f.into())).await;
            let _ = sink.send(Message::Binary(status_frame(None).into())).await;
            let _ = sink.send(normal_close()).await;
            return;
        }
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
    let mut pumps = vec![];
    for (chan, reader) in [
        (
            1u8,
            child
                .stdout
                .take()
                .map(|r| Box::new(r) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        ),
        (
            2u8,
            child
                .stderr
                .take()
                .map(|r| Box::new(r) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        ),
    ] {
        let Some(mut reader) = reader else { continue };
        let tx = tx.clone();
        pumps.push(tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match reader.read(&mut buf[1..]).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        buf[0] = chan;
                        if tx.send(buf[..=n].to_vec()).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }));
    }
    drop(tx);
    let mut child_stdin = child.stdin.take();
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if sink.send(Message::Binary(frame.into())).await.is_err() {
                break;
            }
        }
        sink
    });
    let input = tokio::spawn(async move {
        while let Some(Ok(msg)) = source.next().await {
            match msg {
                Message::Binary(b) if !b.is_empty() => match b[0] {
                    0 => {
                        if let Some(w) = child_stdin.as_mut() {
                            if w.write_all(&b[1..]).await.is_err() {
                                child_stdin = None;
                            }
                        }
                    }
                    255 if b.get(1) == Some(&0) => child_stdin = None,
                    _ => {}
                },
                Message::Close(_) => break,
                _ => {}
            }
        }
    });
    let status = child.wait().await.ok().and_then(|s| s.code());
    for p in pumps {
        let _ = p.await;
    }
    input.abort();
    if let Ok(mut sink) = writer.await {
        let _ = sink
            .send(Message::Binary(status_frame(status.or(Some(1))).into()))
            .await;
        let _ = sink.send(normal_close()).await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn repeated_command_keys_are_kept_in_order() {
        let p =
            super::params("command=ls&command=%2F&container=main&stdout=true&tty=false&stdin=1");
        assert_eq!(p.command, vec!["ls", "/"]);
        assert_eq!(p.container.as_deref(), Some("main"));
        assert!(p.stdin);
        assert!(!p.tty);
        assert_eq!(super::percent_decode("a%20b+c"), "a b c");
    }
}
