//! `GET /containerLogs/{ns}/{pod}/{container}?follow=&tailLines=&previous=&timestamps=`.

use super::text;
use super::AgentState;
use crate::runtime::logs::{parse_record, read_lines};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use std::io::{BufRead, Seek};

/// Query parameters kubectl sends.
#[derive(Debug, Deserialize, Default)]
pub struct LogQuery {
    follow: Option<String>,
    #[serde(rename = "tailLines")]
    tail_lines: Option<usize>,
    previous: Option<String>,
    timestamps: Option<String>,
    #[serde(rename = "sinceSeconds")]
    since_seconds: Option<u64>,
    #[serde(rename = "limitBytes")]
    limit_bytes: Option<usize>,
}

fn truthy(v: &Option<String>) -> bool {
    matches!(v.as_deref(), Some("true") | Some("1") | Some(""))
}

pub(super) async fn container_logs(
    State(state): State<AgentState>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    Query(q): Query<LogQuery>,
) -> axum::response::Response {
    let entry = {
        let lookup = state
            .lookup
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        lookup
            .get(&(ns.clone(), pod.clone()))
            .and_then(|cs| cs.iter().find(|c| c.name == container).cloned())
    };
    let Some(c) = entry else {
        return text(
            StatusCode::NOT_FOUND,
            format!("container {container} in pod {ns}/{pod} not found"),
        );
    };
    let previous = truthy(&q.previous);
    let path = if previous { c.previous_log } else { c.log };
    let Some(path) = path.filter(|p| p.exists()) else {
        let what = if previous {
            "previous terminated container"
        } else {
            "container"
        };
        return text(
            StatusCode::BAD_REQUEST,
            format!("{what} \"{container}\" in pod \"{pod}\" not found"),
        );
    };
    let ts = truthy(&q.timestamps);
    if !truthy(&q.follow) || previous {
        let p = path.clone();
        let tail = q.tail_lines;
        let (since, limit) = (q.since_seconds, q.limit_bytes);
        let body = tokio::task::spawn_blocking(move || {
            let mut out = String::new();
            let lines = if ts || since.is_some() {
                read_records(&p, None)
            } else {
                read_lines(&p, None)
            };
            #[allow(clippy::disallowed_methods)]
            let cutoff =
                // Checked: sinceSeconds beyond the epoch means everything, not a panic (#13).
                since.map(|s| {
                    std::time::SystemTime::now()
                        .checked_sub(std::time::Duration::from_secs(s))
                        .unwrap_or(std::time::UNIX_EPOCH)
                });
            let mut lines: Vec<String> = lines
                .into_iter()
                .filter(|l| match cutoff {
                    None => true,
                    Some(c) => l
                        .split_once(' ')
                        .and_then(|(t, _)| apimachinery::time::parse_rfc3339(t))
                        .is_some_and(|t| t >= c),
                })
                // Timestamps were read only to filter by time: drop them unless asked for.
                .map(|l| match (since.is_some() && !ts, l.split_once(' ')) {
                    (true, Some((_, rest))) => rest.to_string(),
                    _ => l,
                })
                .collect();
            if let Some(n) = tail {
                let skip = lines.len().saturating_sub(n);
                lines.drain(..skip);
            }
            for l in lines {
                out.push_str(&l);
                out.push('\n');
            }
            if let Some(n) = limit {
                let mut cut = n.min(out.len());
                while !out.is_char_boundary(cut) {
                    cut -= 1;
                }
                out.truncate(cut);
            }
            out
        })
        .await
        .unwrap_or_default();
        return text(StatusCode::OK, body);
    }
    // Follow: existing lines (tail), then poll the file for appended records until the client goes away.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(64);
    let tail = q.tail_lines;
    tokio::task::spawn_blocking(move || {
        let lines = if ts {
            read_records(&path, tail)
        } else {
            read_lines(&path, tail)
        };
        for l in lines {
            if tx.blocking_send(Ok(format!("{l}\n"))).is_err() {
                return;
            }
        }
        let Ok(mut f) = std::fs::File::open(&path) else {
            return;
        };
        let mut pos = f.seek(std::io::SeekFrom::End(0)).unwrap_or(0);
        let mut partial = String::new();
        loop {
            if tx.is_closed() {
                return;
            }
            // Rotation replaces the file: reopen from its start when it shrank.
            if std::fs::metadata(&path)
                .map(|m| m.len() < pos)
                .unwrap_or(false)
            {
                if let Ok(nf) = std::fs::File::open(&path) {
                    f = nf;
                    pos = 0;
                }
            }
            let _ = f.seek(std::io::SeekFrom::Start(pos));
            let mut r = std::io::BufReader::new(&f);
            let mut line = String::new();
            let mut progressed = false;
            while let Ok(n) = r.read_line(&mut line) {
                if n == 0 || !line.ends_with('\n') {
                    break;
                }
                pos += n as u64;
                progressed = true;
                if let Some(rec) = parse_record(&line) {
                    partial.push_str(&rec.content);
                    if !rec.partial {
                        let out = if ts {
                            format!("{} {}\n", rec.time, partial)
                        } else {
                            format!("{partial}\n")
                        };
                        partial.clear();
                        if tx.blocking_send(Ok(out)).is_err() {
                            return;
                        }
                    }
                }
                line.clear();
            }
            if !progressed {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    axum::response::IntoResponse::into_response((
        [("content-type", "text/plain")],
        axum::body::Body::from_stream(stream),
    ))
}

/// Lines with their RFC3339Nano timestamps (`timestamps=true`).
fn read_records(path: &std::path::Path, tail: Option<usize>) -> Vec<String> {
    let mut out = vec![];
    for p in [crate::runtime::logs::rotated(path), path.to_path_buf()] {
        let Ok(f) = std::fs::File::open(&p) else {
            continue;
        };
        let mut cur = String::new();
        for l in std::io::BufReader::new(f).lines().map_while(Result::ok) {
            if let Some(r) = parse_record(&l) {
                cur.push_str(&r.content);
                if !r.partial {
                    out.push(format!("{} {}", r.time, std::mem::take(&mut cur)));
                }
            }
        }
    }
    if let Some(n) = tail {
        let skip = out.len().saturating_sub(n);
        out.drain(..skip);
    }
    out
}
