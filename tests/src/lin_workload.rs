//! The key-value register workload of the linearizability drill: client threads read, write and
//! compare-and-set ConfigMaps through a lab's HTTPS API, recording each operation's invocation,
//! completion and outcome for [`crate::linearizability::check`]; plus the peer partition fault.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::linearizability::{Op, Operation, Outcome};
use crate::{https, Lab, Tls};

/// Namespace of the registers.
const NAMESPACE: &str = "default";

/// How the workload runs.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Register names (ConfigMaps).
    pub keys: Vec<String>,
    /// Client threads; client `i` starts on server `i % servers`.
    pub clients: usize,
    /// Per-operation bound (connect, send and receive each).
    pub op_timeout: Duration,
    /// Operations per client at most, whatever the duration.
    pub max_ops_per_client: usize,
    /// Percent of reads; of the rest, `cas_percent` are compare-and-sets and the others writes.
    pub read_percent: u64,
    /// Percent of compare-and-sets (over all operations).
    pub cas_percent: u64,
    /// Seed of the operation mix (logged so a run can be repeated).
    pub seed: u64,
}

/// A history being recorded, with the instant its times count from.
#[derive(Clone)]
pub struct Recorder {
    start: Instant,
    ops: Arc<Mutex<Vec<Operation>>>,
}

impl Recorder {
    /// A new, empty history starting now.
    pub fn new() -> Recorder {
        Recorder {
            start: Instant::now(),
            ops: Arc::default(),
        }
    }

    /// Nanoseconds since the history began.
    pub fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    fn push(&self, op: Operation) {
        self.ops.lock().unwrap_or_else(|e| e.into_inner()).push(op);
    }

    /// The operations recorded so far.
    pub fn history(&self) -> Vec<Operation> {
        self.ops.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

fn path(key: &str) -> String {
    format!("/api/v1/namespaces/{NAMESPACE}/configmaps/{key}")
}

fn body(key: &str, value: &str, resource_version: Option<&str>) -> String {
    let mut metadata = json!({ "name": key });
    if let Some(rv) = resource_version {
        metadata["resourceVersion"] = json!(rv);
    }
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {"value": value}})
        .to_string()
}

/// Creates the registers (recorded as writes of `init-KEY` by client `usize::MAX`), retrying across
/// servers for up to `limit`. An attempt that timed out may have created it: it is recorded as an
/// unknown write, and a later 409 AlreadyExists then ends the retries.
///
/// # Errors
/// When a register cannot be created in time.
pub fn create_registers(
    lab: &Lab,
    w: &Workload,
    history: &Recorder,
    limit: Duration,
) -> Result<()> {
    let servers = lab.api_addrs();
    for key in &w.keys {
        let value = format!("init-{key}");
        crate::wait_for(
            &format!("register {key} created"),
            limit,
            Duration::from_millis(200),
            || {
                let mut last = String::new();
                for &addr in &servers {
                    let invoke = history.now();
                    let r = https(
                        &lab.admin,
                        "POST",
                        addr,
                        &format!("/api/v1/namespaces/{NAMESPACE}/configmaps"),
                        Some(&body(key, &value, None)),
                        w.op_timeout,
                    );
                    match r {
                        Ok(r) if r.status == 201 => {
                            history.push(Operation {
                                client: usize::MAX,
                                key: key.clone(),
                                op: Op::Write(value.clone()),
                                invoke,
                                complete: history.now(),
                                outcome: Outcome::Ok(None),
                            });
                            return Ok(Some(()));
                        }
                        Ok(r) if r.status == 409 => return Ok(Some(())),
                        other => {
                            history.push(Operation {
                                client: usize::MAX,
                                key: key.clone(),
                                op: Op::Write(value.clone()),
                                invoke,
                                complete: history.now(),
                                outcome: Outcome::Unknown,
                            });
                            last = match other {
                                Ok(r) => format!("{addr}: {} {}", r.status, r.body),
                                Err(e) => format!("{addr}: {e:#}"),
                            };
                        }
                    }
                }
                anyhow::bail!("{last}")
            },
        )?;
    }
    Ok(())
}

/// Running client threads; [`Clients::stop`] ends them.
pub struct Clients {
    stop: Arc<AtomicBool>,
    handles: Vec<JoinHandle<()>>,
}

impl Clients {
    /// Starts `w.clients` threads issuing operations into `history` until stopped.
    pub fn start(servers: Vec<SocketAddr>, tls: Tls, w: &Workload, history: &Recorder) -> Clients {
        let stop = Arc::new(AtomicBool::new(false));
        let handles = (0..w.clients)
            .map(|c| {
                let client = Client {
                    id: c,
                    servers: servers.clone(),
                    server: c % servers.len().max(1),
                    tls: tls.clone(),
                    w: w.clone(),
                    history: history.clone(),
                    rng: w.seed ^ (0x9e37_79b9_7f4a_7c15u64.wrapping_mul(c as u64 + 1)),
                    seen: HashMap::new(),
                    seq: 0,
                };
                let stop = stop.clone();
                std::thread::spawn(move || client.run(&stop))
            })
            .collect();
        Clients { stop, handles }
    }

    /// Stops the clients and waits for them (each finishes its operation in flight).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

struct Client {
    id: usize,
    servers: Vec<SocketAddr>,
    server: usize,
    tls: Tls,
    w: Workload,
    history: Recorder,
    rng: u64,
    /// Per key, the value and resourceVersion this client last read (what its CAS expects).
    seen: HashMap<String, (String, String)>,
    seq: u64,
}

impl Client {
    fn next(&mut self) -> u64 {
        // xorshift64: the mix is random but repeatable from the seed.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn run(mut self, stop: &AtomicBool) {
        for _ in 0..self.w.max_ops_per_client {
            if stop.load(Ordering::Relaxed) || self.servers.is_empty() {
                break;
            }
            let pick = (self.next() % self.w.keys.len() as u64) as usize;
            let key = self.w.keys[pick].clone();
            let dice = self.next() % 100;
            let known = self.outcome_known(&key, dice);
            if !known {
                // Unknown or refused: this server may be cut off or dead; try the next one.
                self.server = (self.server + 1) % self.servers.len();
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Issues one operation and records it; whether its outcome was known.
    fn outcome_known(&mut self, key: &str, dice: u64) -> bool {
        let addr = self.servers[self.server];
        let t = self.w.op_timeout;
        let cas_base = self.seen.get(key).cloned();
        let (op, rv) = if dice < self.w.read_percent
            || (dice >= 100 - self.w.cas_percent && cas_base.is_none())
        {
            (Op::Read, None)
        } else {
            self.seq += 1;
            let new = format!("c{}-{}", self.id, self.seq);
            match cas_base {
                Some((expected, rv)) if dice >= 100 - self.w.cas_percent => {
                    (Op::Cas { expected, new }, Some(rv))
                }
                _ => (Op::Write(new), None),
            }
        };
        let invoke = self.history.now();
        let outcome = match &op {
            Op::Read => match https(&self.tls, "GET", addr, &path(key), None, t) {
                Ok(r) if r.status == 200 => match r.json() {
                    Ok(v) => {
                        let value = v["data"]["value"].as_str().map(str::to_string);
                        let rv = v["metadata"]["resourceVersion"]
                            .as_str()
                            .map(str::to_string);
                        if let (Some(value), Some(rv)) = (&value, rv) {
                            self.seen.insert(key.to_string(), (value.clone(), rv));
                        }
                        Outcome::Ok(value)
                    }
                    Err(_) => Outcome::Unknown,
                },
                Ok(r) if r.status == 404 => Outcome::Ok(None),
                _ => Outcome::Unknown,
            },
            Op::Write(v) | Op::Cas { new: v, .. } => {
                let b = body(key, v, rv.as_deref());
                match https(&self.tls, "PUT", addr, &path(key), Some(&b), t) {
                    Ok(r) if r.status == 200 || r.status == 201 => Outcome::Ok(None),
                    // The resourceVersion did not match (checked by a linearizable read or by the
                    // commit's precondition): nothing was written. Without a resourceVersion it
                    // means every retry lost its race, so nothing was written either.
                    Ok(r) if r.status == 409 => Outcome::Fail,
                    // 5xx, 429, a dropped connection or a timeout: it may have been committed.
                    _ => Outcome::Unknown,
                }
            }
        };
        let complete = self.history.now();
        let known = outcome != Outcome::Unknown;
        self.history.push(Operation {
            client: self.id,
            key: key.to_string(),
            op,
            invoke,
            complete,
            outcome,
        });
        known
    }
}

/// Counts of operations by kind and outcome (`read/ok`, `cas/fail`, `write/unknown` ...).
pub fn tally(history: &[Operation]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for o in history {
        let kind = match o.op {
            Op::Read => "read",
            Op::Write(_) => "write",
            Op::Cas { .. } => "cas",
        };
        let outcome = match o.outcome {
            Outcome::Ok(_) => "ok",
            Outcome::Fail => "fail",
            Outcome::Unknown => "unknown",
        };
        *out.entry(format!("{kind}/{outcome}")).or_insert(0) += 1;
    }
    out
}

/// The nftables table a peer partition adds inside a node's namespace.
const PEER_TABLE: &str = "berth_lin_peer_partition";

/// Cuts a server off from its peers (Raft and forwarding on 6444) while clients still reach its API:
/// drops 6444 traffic both ways inside the node's network namespace. A leader cut off this way keeps
/// answering clients until it notices it lost its quorum.
///
/// # Errors
/// When the node is unknown or nft fails.
pub fn peer_partition(lab: &Lab, node: &str) -> Result<()> {
    let ns = netns_of(lab, node)?;
    let rules = format!(
        "table inet {PEER_TABLE} {{\n\
         chain input {{ type filter hook input priority 0; tcp dport 6444 drop; tcp sport 6444 drop; }}\n\
         chain output {{ type filter hook output priority 0; tcp dport 6444 drop; tcp sport 6444 drop; }}\n\
         }}\n"
    );
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("rules.nft");
    std::fs::write(&file, rules)?;
    crate::run(
        std::process::Command::new("ip")
            .args(["netns", "exec", &ns, "nft", "-f"])
            .arg(&file),
    )?;
    Ok(())
}

/// Undoes [`peer_partition`].
///
/// # Errors
/// When the node is unknown or nft fails.
pub fn peer_heal(lab: &Lab, node: &str) -> Result<()> {
    let ns = netns_of(lab, node)?;
    crate::run(std::process::Command::new("ip").args([
        "netns", "exec", &ns, "nft", "delete", "table", "inet", PEER_TABLE,
    ]))?;
    Ok(())
}

fn netns_of(lab: &Lab, node: &str) -> Result<String> {
    lab.state["plan"]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| {
            n["name"] == node
                || n["name"]
                    .as_str()
                    .is_some_and(|s| node.ends_with(&format!("-{s}")))
        })
        .and_then(|n| n["netns"].as_str())
        .map(str::to_string)
        .with_context(|| format!("lab {} has no node {node}", lab.name))
}

/// The member holding the leader Lease (as the servers publish it; it can lag a change of leader).
///
/// # Errors
/// When no server answers or the Lease has no holder.
pub fn leader(lab: &Lab) -> Result<String> {
    let lease: Value =
        lab.get_json("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/berth-leader")?;
    Ok(lease["spec"]["holderIdentity"]
        .as_str()
        .context("lease without holder")?
        .to_string())
}
