//! [`ClusterView`]: nodes, the pods bound to them and the claims pinned to them, with the indexes that keep
//! [`ClusterView::schedule`] close to O(log nodes) per pod: a score-ordered set of schedulable nodes, a
//! label index for node selectors, and per-owner replica counts.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::Value;

use super::model::{
    Node, Placement, Pod, Reason, Resources, TaintEffect, Unschedulable, PVC_NODE_ANNOTATION,
};

const SCORE_MAX: u64 = 1_000_000;

#[derive(Debug, Clone)]
struct NodeState {
    node: Node,
    /// Sum of the requests of the non-terminal pods bound here (what the filter compares).
    requested: Resources,
    /// Requests with kube-scheduler's non-zero defaults (what the score uses).
    score_cpu: i64,
    score_memory: i64,
    /// Current key in `ClusterView::order`, when the node is in it.
    ordered: Option<u64>,
}

impl NodeState {
    fn score(&self) -> u64 {
        let frac = |alloc: i64, used: i64| -> u64 {
            if alloc <= 0 {
                0
            } else {
                (alloc.saturating_sub(used).max(0) as u64).saturating_mul(SCORE_MAX) / alloc as u64
            }
        };
        (frac(self.node.allocatable.cpu, self.score_cpu)
            + frac(self.node.allocatable.memory, self.score_memory))
            / 2
    }

    fn schedulable(&self) -> bool {
        self.node.ready && !self.node.unschedulable
    }
}

/// Everything placement depends on, updated incrementally as nodes, pods and claims change.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    nodes: HashMap<String, NodeState>,
    /// Ready, uncordoned nodes by (descending score, name): the scan order of an unconstrained pod.
    order: BTreeSet<(Reverse<u64>, String)>,
    /// (label key, value) -> node names, to narrow `nodeSelector` candidates.
    label_index: HashMap<(String, String), BTreeSet<String>>,
    /// Bound, non-terminal pods by `namespace/name`.
    pods: HashMap<String, Pod>,
    /// Node name -> keys of the pods bound there (kept for nodes the view does not know yet).
    pods_by_node: HashMap<String, HashSet<String>>,
    /// Node name -> keys of pods there that carry anti-affinity terms.
    anti_by_node: HashMap<String, HashSet<String>>,
    /// Owner uid -> node name -> replicas there.
    owners: HashMap<String, HashMap<String, u32>>,
    /// (namespace, claim) -> node named by the claim's `berth.dev/node` annotation.
    claim_annotations: HashMap<(String, String), String>,
    /// (namespace, claim) -> node name -> pods there using it.
    claim_users: HashMap<(String, String), HashMap<String, u32>>,
    /// Node name -> (protocol, port) -> pods there holding it (more than one only if bound elsewhere).
    host_ports: HashMap<String, HashMap<(String, u16), u32>>,
}

impl ClusterView {
    /// An empty view.
    pub fn new() -> ClusterView {
        ClusterView::default()
    }

    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Number of bound pods the view accounts for.
    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }

    /// A node by name.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.get(name).map(|n| &n.node)
    }

    /// Requests of the pods bound to `name`.
    pub fn requested(&self, name: &str) -> Option<Resources> {
        self.nodes.get(name).map(|n| n.requested)
    }

    /// The node a pod (`namespace/name`) is bound to in the view.
    pub fn pod_node(&self, key: &str) -> Option<&str> {
        self.pods.get(key).and_then(|p| p.node_name.as_deref())
    }

    /// Names of all nodes, sorted.
    pub fn node_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.nodes.keys().cloned().collect();
        v.sort();
        v
    }

    /// Adds or replaces a node, keeping what its bound pods request.
    pub fn upsert_node(&mut self, node: Node) {
        let name = node.name.clone();
        let (requested, score_cpu, score_memory) = match self.nodes.get(&name) {
            Some(old) => (old.requested, old.score_cpu, old.score_memory),
            None => self.sum_pods_on(&name),
        };
        self.remove_node(&name);
        for (k, v) in &node.labels {
            self.label_index
                .entry((k.clone(), v.clone()))
                .or_default()
                .insert(name.clone());
        }
        self.nodes.insert(
            name.clone(),
            NodeState {
                node,
                requested,
                score_cpu,
                score_memory,
                ordered: None,
            },
        );
        self.reorder(&name);
    }

    /// Adds or replaces a node from its JSON.
    pub fn upsert_node_json(&mut self, v: &Value) {
        if let Some(n) = Node::from_json(v) {
            self.upsert_node(n);
        }
    }

    /// Removes a node. Pods bound to it stay accounted under its name, should it come back.
    pub fn remove_node(&mut self, name: &str) {
        let Some(old) = self.nodes.remove(name) else {
            return;
        };
        if let Some(s) = old.ordered {
            self.order.remove(&(Reverse(s), name.to_string()));
        }
        for (k, v) in &old.node.labels {
            let key = (k.clone(), v.clone());
            if let Some(set) = self.label_index.get_mut(&key) {
                set.remove(name);
                if set.is_empty() {
                    self.label_index.remove(&key);
                }
            }
        }
    }

    fn sum_pods_on(&self, node: &str) -> (Resources, i64, i64) {
        let mut r = Resources::default();
        let (mut c, mut m) = (0i64, 0i64);
        for key in self.pods_by_node.get(node).into_iter().flatten() {
            if let Some(p) = self.pods.get(key) {
                r.add(&p.requests);
                let (pc, pm) = p.score_requests();
                c = c.saturating_add(pc);
                m = m.saturating_add(pm);
            }
        }
        (r, c, m)
    }

    fn reorder(&mut self, name: &str) {
        let Some(n) = self.nodes.get_mut(name) else {
            return;
        };
        if let Some(s) = n.ordered.take() {
            self.order.remove(&(Reverse(s), name.to_string()));
        }
        if n.schedulable() {
            let s = n.score();
            n.ordered = Some(s);
            self.order.insert((Reverse(s), name.to_string()));
        }
    }

    /// Accounts a pod from its JSON: bound non-terminal pods hold resources; anything else is dropped.
    pub fn upsert_pod_json(&mut self, v: &Value) {
        self.upsert_pod(Pod::from_json(v));
    }

    /// Accounts a pod: bound non-terminal pods hold resources; anything else is dropped from the view.
    pub fn upsert_pod(&mut self, pod: Pod) {
        let key = pod.key();
        self.remove_pod(&key);
        if let (Some(node), false) = (pod.node_name.clone(), pod.terminal) {
            self.add_pod(key, pod, node);
        }
    }

    /// Records `pod` as bound to `node` (what a committed binding will do).
    pub fn bind(&mut self, pod: &Pod, node: &str) {
        let mut pod = pod.clone();
        pod.node_name = Some(node.to_string());
        let key = pod.key();
        self.remove_pod(&key);
        self.add_pod(key, pod, node.to_string());
    }

    fn add_pod(&mut self, key: String, pod: Pod, node: String) {
        if let Some(owner) = &pod.owner {
            *self
                .owners
                .entry(owner.clone())
                .or_default()
                .entry(node.clone())
                .or_default() += 1;
        }
        for c in &pod.claims {
            *self
                .claim_users
                .entry((pod.namespace.clone(), c.clone()))
                .or_default()
                .entry(node.clone())
                .or_default() += 1;
        }
        if !pod.host_ports.is_empty() {
            let used = self.host_ports.entry(node.clone()).or_default();
            for hp in &pod.host_ports {
                *used.entry(hp.clone()).or_default() += 1;
            }
        }
        if !pod.anti_affinity.is_empty() {
            self.anti_by_node
                .entry(node.clone())
                .or_default()
                .insert(key.clone());
        }
        self.pods_by_node
            .entry(node.clone())
            .or_default()
            .insert(key.clone());
        if let Some(n) = self.nodes.get_mut(&node) {
            n.requested.add(&pod.requests);
            let (c, m) = pod.score_requests();
            n.score_cpu = n.score_cpu.saturating_add(c);
            n.score_memory = n.score_memory.saturating_add(m);
        }
        self.pods.insert(key, pod);
        self.reorder(&node);
    }

    /// Forgets a pod (`namespace/name`), releasing what it held.
    pub fn remove_pod(&mut self, key: &str) {
        let Some(pod) = self.pods.remove(key) else {
            return;
        };
        let node = pod.node_name.clone().unwrap_or_default();
        if let Some(owner) = &pod.owner {
            if let Some(m) = self.owners.get_mut(owner) {
                dec(m, &node);
                if m.is_empty() {
                    self.owners.remove(owner);
                }
            }
        }
        for c in &pod.claims {
            let k = (pod.namespace.clone(), c.clone());
            if let Some(m) = self.claim_users.get_mut(&k) {
                dec(m, &node);
                if m.is_empty() {
                    self.claim_users.remove(&k);
                }
            }
        }
        if let Some(used) = self.host_ports.get_mut(&node) {
            for hp in &pod.host_ports {
                if let Some(n) = used.get_mut(hp) {
                    *n -= 1;
                    if *n == 0 {
                        used.remove(hp);
                    }
                }
            }
            if used.is_empty() {
                self.host_ports.remove(&node);
            }
        }
        for index in [&mut self.pods_by_node, &mut self.anti_by_node] {
            if let Some(set) = index.get_mut(&node) {
                set.remove(key);
                if set.is_empty() {
                    index.remove(&node);
                }
            }
        }
        if let Some(n) = self.nodes.get_mut(&node) {
            n.requested.sub(&pod.requests);
            let (c, m) = pod.score_requests();
            n.score_cpu = n.score_cpu.saturating_sub(c);
            n.score_memory = n.score_memory.saturating_sub(m);
        }
        self.reorder(&node);
    }

    /// Records a PersistentVolumeClaim's `berth.dev/node` annotation, if any.
    pub fn upsert_claim_json(&mut self, v: &Value) {
        let ns = v
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("default");
        let name = v
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let key = (ns.to_string(), name.to_string());
        let annotations = apimachinery::labels::string_map(v.pointer("/metadata/annotations"));
        match annotations.get(PVC_NODE_ANNOTATION) {
            Some(node) if !node.is_empty() => {
                self.claim_annotations.insert(key, node.clone());
            }
            _ => {
                self.claim_annotations.remove(&key);
            }
        }
    }

    /// Forgets a claim's annotation.
    pub fn remove_claim(&mut self, namespace: &str, name: &str) {
        self.claim_annotations
            .remove(&(namespace.to_string(), name.to_string()));
    }

    /// The node a claim is pinned to: its annotation, else a node where a pod uses it.
    pub fn claim_node(&self, namespace: &str, claim: &str) -> Option<&str> {
        let k = (namespace.to_string(), claim.to_string());
        self.claim_annotations
            .get(&k)
            .map(String::as_str)
            .or_else(|| {
                self.claim_users
                    .get(&k)
                    .and_then(|m| m.keys().min().map(String::as_str))
            })
    }

    fn volume_ok(&self, pod: &Pod, node: &str) -> bool {
        pod.claims.iter().all(|c| {
            let k = (pod.namespace.clone(), c.clone());
            if let Some(n) = self.claim_annotations.get(&k) {
                if n != node {
                    return false;
                }
            }
            self.claim_users
                .get(&k)
                .is_none_or(|users| users.keys().all(|n| n == node))
        })
    }

    /// Runs the filters for `pod` on node `n`. With `all == false` it returns at the first failure and
    /// records nothing; with `all == true` it records the failing stage's reasons in `out`.
    fn filter(&self, n: &NodeState, pod: &Pod, out: &mut Vec<Reason>, all: bool) -> bool {
        let node = &n.node;
        if let Some(r) = node.untolerated(pod) {
            if all {
                out.push(r);
            }
            return false;
        }
        if !node.ready {
            if all {
                out.push(Reason::NotReady);
            }
            return false;
        }
        if !node.selected_by(pod) {
            if all {
                out.push(Reason::Affinity);
            }
            return false;
        }
        let r = &pod.requests;
        let a = &node.allocatable;
        let u = &n.requested;
        let cpu = r.cpu > 0 && u.cpu.saturating_add(r.cpu) > a.cpu;
        let mem = r.memory > 0 && u.memory.saturating_add(r.memory) > a.memory;
        let pods = u.pods.saturating_add(r.pods) > a.pods;
        if cpu || mem || pods {
            if all {
                if cpu {
                    out.push(Reason::InsufficientCpu);
                }
                if mem {
                    out.push(Reason::InsufficientMemory);
                }
                if pods {
                    out.push(Reason::TooManyPods);
                }
            }
            return false;
        }
        if !pod.claims.is_empty() && !self.volume_ok(pod, &node.name) {
            if all {
                out.push(Reason::VolumeConflict);
            }
            return false;
        }
        if !pod.host_ports.is_empty()
            && self
                .host_ports
                .get(&node.name)
                .is_some_and(|used| pod.host_ports.iter().any(|hp| used.contains_key(hp)))
        {
            if all {
                out.push(Reason::HostPorts);
            }
            return false;
        }
        if !pod.anti_affinity.is_empty() {
            let clash = self
                .pods_by_node
                .get(&node.name)
                .into_iter()
                .flatten()
                .filter_map(|k| self.pods.get(k))
                .any(|other| {
                    pod.anti_affinity.iter().any(|t| {
                        in_namespaces(&t.namespaces, &pod.namespace, &other.namespace)
                            && t.selector.matches_labels(&other.labels)
                    })
                });
            if clash {
                if all {
                    out.push(Reason::AntiAffinity);
                }
                return false;
            }
        }
        let existing = self
            .anti_by_node
            .get(&node.name)
            .into_iter()
            .flatten()
            .filter_map(|k| self.pods.get(k))
            .any(|other| {
                other.anti_affinity.iter().any(|t| {
                    in_namespaces(&t.namespaces, &other.namespace, &pod.namespace)
                        && t.selector.matches_labels(&pod.labels)
                })
            });
        if existing {
            if all {
                out.push(Reason::ExistingAntiAffinity);
            }
            return false;
        }
        true
    }

    /// (replicas of the same owner here, untolerated PreferNoSchedule taints): lower is better.
    fn soft_cost(
        &self,
        n: &NodeState,
        pod: &Pod,
        owner: Option<&HashMap<String, u32>>,
    ) -> (u32, u32) {
        let replicas = owner
            .and_then(|m| m.get(&n.node.name))
            .copied()
            .unwrap_or(0);
        let prefer = n
            .node
            .taints
            .iter()
            .filter(|t| {
                t.effect == TaintEffect::PreferNoSchedule
                    && !pod.tolerations.iter().any(|tol| tol.tolerates(t))
            })
            .count() as u32;
        (replicas, prefer)
    }

    /// Picks a node for `pod` or says why none fits (the contract is on the module's `schedule`).
    pub(crate) fn schedule(&self, pod: &Pod) -> Result<Placement, Unschedulable> {
        let owner = pod.owner.as_ref().and_then(|o| self.owners.get(o));
        let mut scratch = Vec::new();
        // A pod pinned by a claim, or restricted by a node selector, has few candidates: look only there.
        let pinned: Option<Vec<&str>> = pod
            .claims
            .iter()
            .find_map(|c| self.claim_node(&pod.namespace, c))
            .map(|n| vec![n])
            .or_else(|| {
                pod.node_selector
                    .iter()
                    .map(|(k, v)| {
                        self.label_index
                            .get(&(k.clone(), v.clone()))
                            .map(|s| s.iter().map(String::as_str).collect::<Vec<_>>())
                            .unwrap_or_default()
                    })
                    .min_by_key(Vec::len)
            });
        let best = match pinned {
            Some(candidates) => candidates
                .into_iter()
                .filter_map(|name| self.nodes.get(name))
                .filter(|n| self.filter(n, pod, &mut scratch, false))
                .min_by_key(|n| {
                    let (replicas, prefer) = self.soft_cost(n, pod, owner);
                    (replicas, prefer, Reverse(n.score()), n.node.name.clone())
                })
                .map(|n| n.node.name.clone()),
            None => {
                let mut best: Option<((u32, u32), &str)> = None;
                for (_, name) in &self.order {
                    let n = &self.nodes[name];
                    if !self.filter(n, pod, &mut scratch, false) {
                        continue;
                    }
                    let cost = self.soft_cost(n, pod, owner);
                    // The scan runs in score order, so the first node with no soft cost is the best one.
                    if cost == (0, 0) {
                        best = Some((cost, name));
                        break;
                    }
                    if best.is_none_or(|(c, _)| cost < c) {
                        best = Some((cost, name));
                    }
                }
                best.map(|(_, n)| n.to_string())
            }
        };
        match best {
            Some(node) => Ok(Placement { node }),
            None => Err(self.diagnose(pod)),
        }
    }

    fn diagnose(&self, pod: &Pod) -> Unschedulable {
        let per_node = self.nodes.values().map(|n| {
            let mut out = Vec::new();
            self.filter(n, pod, &mut out, true);
            out
        });
        Unschedulable::from_reasons(self.nodes.len(), per_node.collect::<Vec<_>>())
    }
}

fn in_namespaces(term_namespaces: &[String], term_owner_ns: &str, other_ns: &str) -> bool {
    if term_namespaces.is_empty() {
        term_owner_ns == other_ns
    } else {
        term_namespaces.iter().any(|n| n == other_ns)
    }
}

fn dec(m: &mut HashMap<String, u32>, node: &str) {
    if let Some(c) = m.get_mut(node) {
        *c -= 1;
        if *c == 0 {
            m.remove(node);
        }
    }
}
