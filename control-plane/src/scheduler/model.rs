//! What the scheduler reads: its views of nodes and pods (parsed once from the stored JSON), resources,
//! taints and tolerations, and the answers it gives (placement, or why a pod fits nowhere).

use std::collections::BTreeMap;

use apimachinery::labels::{self, LabelSelector, Labels, Operator, Requirement};
use serde_json::Value;

/// Annotation on a PersistentVolumeClaim naming the node that holds its local volume.
pub const PVC_NODE_ANNOTATION: &str = "berth.dev/node";

/// CPU (millicores), memory (bytes) and pod slots.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    /// CPU in millicores.
    pub cpu: i64,
    /// Memory in bytes.
    pub memory: i64,
    /// Number of pods.
    pub pods: i64,
}

impl Resources {
    // Saturating: a quantity like `1e30` reads as i64::MAX millicores, and the sum of two such
    // requests must neither panic nor wrap to a negative that would make a full node look empty.
    pub(super) fn add(&mut self, o: &Resources) {
        self.cpu = self.cpu.saturating_add(o.cpu);
        self.memory = self.memory.saturating_add(o.memory);
        self.pods = self.pods.saturating_add(o.pods);
    }
    pub(super) fn sub(&mut self, o: &Resources) {
        self.cpu = self.cpu.saturating_sub(o.cpu);
        self.memory = self.memory.saturating_sub(o.memory);
        self.pods = self.pods.saturating_sub(o.pods);
    }
}

/// Effect of a taint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaintEffect {
    /// New pods that do not tolerate it are not placed.
    NoSchedule,
    /// New pods that do not tolerate it are placed elsewhere when possible (scoring only).
    PreferNoSchedule,
    /// Like `NoSchedule`; the node lifecycle controller also evicts running pods.
    NoExecute,
}

impl TaintEffect {
    fn parse(s: &str) -> Option<TaintEffect> {
        match s {
            "NoSchedule" => Some(TaintEffect::NoSchedule),
            "PreferNoSchedule" => Some(TaintEffect::PreferNoSchedule),
            "NoExecute" => Some(TaintEffect::NoExecute),
            _ => None,
        }
    }
}

/// A node taint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taint {
    /// Taint key.
    pub key: String,
    /// Taint value (may be empty).
    pub value: String,
    /// Effect.
    pub effect: TaintEffect,
}

/// A pod toleration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toleration {
    /// Key; empty with `Exists` tolerates every taint.
    pub key: String,
    /// `true` for `operator: Exists`, `false` for `Equal` (the default).
    pub exists: bool,
    /// Value compared with `Equal`.
    pub value: String,
    /// Effect tolerated; `None` tolerates every effect.
    pub effect: Option<TaintEffect>,
}

impl Toleration {
    /// Parses one entry of `spec.tolerations`.
    pub fn from_json(v: &Value) -> Toleration {
        Toleration {
            key: str_at(v, "key").to_string(),
            exists: str_at(v, "operator") == "Exists",
            value: str_at(v, "value").to_string(),
            effect: v
                .get("effect")
                .and_then(Value::as_str)
                .and_then(TaintEffect::parse),
        }
    }

    /// Whether this toleration tolerates `t`.
    pub fn tolerates(&self, t: &Taint) -> bool {
        if self.effect.is_some_and(|e| e != t.effect) {
            return false;
        }
        if self.key.is_empty() {
            return self.exists;
        }
        self.key == t.key && (self.exists || self.value == t.value)
    }
}

/// The scheduler's view of a node.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Node name.
    pub name: String,
    /// Node labels.
    pub labels: Labels,
    /// `status.allocatable` (falls back to `status.capacity`).
    pub allocatable: Resources,
    /// `spec.taints`.
    pub taints: Vec<Taint>,
    /// The `Ready` condition is `True`.
    pub ready: bool,
    /// `spec.unschedulable` (cordoned).
    pub unschedulable: bool,
}

impl Node {
    /// Reads a Node object. A node without a name yields `None`.
    pub fn from_json(v: &Value) -> Option<Node> {
        let name = v.pointer("/metadata/name")?.as_str()?.to_string();
        let status = v.get("status");
        let alloc = status
            .and_then(|s| s.get("allocatable"))
            .filter(|a| a.as_object().is_some_and(|m| !m.is_empty()))
            .or_else(|| status.and_then(|s| s.get("capacity")));
        let get = |k: &str| alloc.and_then(|a| a.get(k));
        let allocatable = Resources {
            cpu: get("cpu")
                .and_then(apimachinery::quantity::millis)
                .unwrap_or(0),
            memory: get("memory")
                .and_then(apimachinery::quantity::units)
                .unwrap_or(0),
            pods: get("pods")
                .and_then(apimachinery::quantity::units)
                .unwrap_or(110),
        };
        let taints = v
            .pointer("/spec/taints")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|t| {
                Some(Taint {
                    key: str_at(t, "key").to_string(),
                    value: str_at(t, "value").to_string(),
                    effect: TaintEffect::parse(t.get("effect")?.as_str()?)?,
                })
            })
            .collect();
        Some(Node {
            name,
            labels: labels::string_map(v.pointer("/metadata/labels")),
            allocatable,
            taints,
            ready: node_ready(v),
            unschedulable: v
                .pointer("/spec/unschedulable")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }
}

impl Node {
    /// The cordon or the first `NoSchedule`/`NoExecute` taint that `pod` does not tolerate.
    pub(crate) fn untolerated(&self, pod: &Pod) -> Option<Reason> {
        let cordon = Taint {
            key: "node.kubernetes.io/unschedulable".into(),
            value: String::new(),
            effect: TaintEffect::NoSchedule,
        };
        if self.unschedulable && !pod.tolerations.iter().any(|t| t.tolerates(&cordon)) {
            return Some(Reason::Unschedulable);
        }
        self.taints
            .iter()
            .find(|t| {
                t.effect != TaintEffect::PreferNoSchedule
                    && !pod.tolerations.iter().any(|tol| tol.tolerates(t))
            })
            .map(|t| Reason::Taint(format!("{{{}: {}}}", t.key, t.value)))
    }

    /// Whether the node's labels satisfy the pod's `nodeSelector` and required node affinity.
    pub fn selected_by(&self, pod: &Pod) -> bool {
        pod.node_selector
            .iter()
            .all(|(k, v)| self.labels.get(k) == Some(v))
            && match &pod.node_affinity {
                None => true,
                Some(terms) if terms.is_empty() => true,
                Some(terms) => terms
                    .iter()
                    .any(|t| !t.is_empty() && t.iter().all(|r| r.matches_labels(&self.labels))),
            }
    }
}

/// Whether a Node object's `Ready` condition is `True`.
pub fn node_ready(v: &Value) -> bool {
    v.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| str_at(c, "type") == "Ready" && str_at(c, "status") == "True")
}

/// A required pod anti-affinity term with `topologyKey: kubernetes.io/hostname`.
#[derive(Debug, Clone, PartialEq)]
pub struct AntiAffinityTerm {
    /// Pods selected by this selector must not share a node with the pod.
    pub selector: LabelSelector,
    /// Namespaces the selector looks in; empty means the pod's own namespace.
    pub namespaces: Vec<String>,
}

/// The scheduler's view of a pod: what placement depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct Pod {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `metadata.uid`.
    pub uid: String,
    /// `metadata.resourceVersion`, for the binding's precondition.
    pub revision: u64,
    /// Labels.
    pub labels: Labels,
    /// Effective requests (containers summed, init containers maxed); `pods` is 1.
    pub requests: Resources,
    /// `spec.nodeSelector`.
    pub node_selector: Labels,
    /// Required node affinity: any term matches, each term's requirements all match. `None` = no constraint.
    pub node_affinity: Option<Vec<Vec<Requirement>>>,
    /// `spec.tolerations`.
    pub tolerations: Vec<Toleration>,
    /// Required anti-affinity terms by hostname.
    pub anti_affinity: Vec<AntiAffinityTerm>,
    /// uid of the controlling owner, used to spread replicas.
    pub owner: Option<String>,
    /// PersistentVolumeClaims the pod mounts (in its namespace).
    pub claims: Vec<String>,
    /// Ports the pod takes on its node, `(protocol, port)`: every `hostPort`, and with `hostNetwork` every
    /// `containerPort` (which is then the node's port).
    pub host_ports: Vec<(String, u16)>,
    /// `spec.nodeName`, when bound.
    pub node_name: Option<String>,
    /// Phase is `Succeeded` or `Failed`: holds no resources.
    pub terminal: bool,
}

/// Requests the scoring uses for containers that request nothing, as kube-scheduler does, so that
/// best-effort pods still spread.
const DEFAULT_SCORE_CPU: i64 = 100;
const DEFAULT_SCORE_MEMORY: i64 = 200 * 1024 * 1024;

impl Pod {
    /// Reads a Pod object.
    pub fn from_json(v: &Value) -> Pod {
        let meta = v.get("metadata");
        let spec = v.get("spec");
        let m = |k: &str| meta.and_then(|m| m.get(k));
        let sum_containers = |field: &str| -> (Resources, Resources) {
            let mut total = Resources::default();
            let mut score = Resources::default();
            for c in spec
                .and_then(|s| s.get(field))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let r = container_requests(c);
                total.add(&r);
                score.add(&Resources {
                    cpu: if r.cpu == 0 { DEFAULT_SCORE_CPU } else { r.cpu },
                    memory: if r.memory == 0 {
                        DEFAULT_SCORE_MEMORY
                    } else {
                        r.memory
                    },
                    pods: 0,
                });
            }
            (total, score)
        };
        let (mut requests, _) = sum_containers("containers");
        for c in spec
            .and_then(|s| s.get("initContainers"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let r = container_requests(c);
            requests.cpu = requests.cpu.max(r.cpu);
            requests.memory = requests.memory.max(r.memory);
        }
        requests.pods = 1;
        let node_affinity = spec
            .and_then(|s| {
                s.pointer("/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
            })
            .and_then(Value::as_array)
            .map(|terms| {
                terms
                    .iter()
                    .map(|t| {
                        t.get("matchExpressions")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                            .map(|e| {
                                // An unreadable requirement fails its term alone, as the API would have
                                // refused it; the other terms still count.
                                Requirement::from_json_lenient(e).unwrap_or(Requirement {
                                    key: String::new(),
                                    operator: Operator::In,
                                    values: Default::default(),
                                })
                            })
                            .collect()
                    })
                    .collect()
            });
        let anti_affinity = spec
            .and_then(|s| {
                s.pointer(
                    "/affinity/podAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution",
                )
            })
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|t| str_at(t, "topologyKey") == "kubernetes.io/hostname")
            .map(|t| AntiAffinityTerm {
                selector: t
                    .get("labelSelector")
                    .map_or_else(LabelSelector::everything, LabelSelector::from_json_lenient),
                namespaces: t
                    .get("namespaces")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|s| s.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect();
        let owner = m("ownerReferences")
            .and_then(Value::as_array)
            .and_then(|refs| {
                refs.iter()
                    .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
            })
            .map(|r| str_at(r, "uid").to_string());
        let claims = spec
            .and_then(|s| s.get("volumes"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|vol| {
                vol.pointer("/persistentVolumeClaim/claimName")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .collect();
        let host_network = spec
            .and_then(|s| s.get("hostNetwork"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let mut host_ports: Vec<(String, u16)> = container_ports(spec)
            .filter_map(|p| {
                let field = if host_network {
                    "containerPort"
                } else {
                    "hostPort"
                };
                let port = p
                    .get(field)
                    .and_then(Value::as_u64)
                    .filter(|n| (1..=65535).contains(n))?;
                let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
                Some((proto.to_string(), port as u16))
            })
            .collect();
        host_ports.sort();
        host_ports.dedup();
        let phase = v.pointer("/status/phase").and_then(Value::as_str);
        Pod {
            namespace: m("namespace")
                .and_then(Value::as_str)
                .unwrap_or("default")
                .to_string(),
            name: m("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            uid: m("uid")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            revision: m("resourceVersion")
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
            labels: labels::string_map(m("labels")),
            requests,
            node_selector: labels::string_map(spec.and_then(|s| s.get("nodeSelector"))),
            node_affinity,
            tolerations: spec
                .and_then(|s| s.get("tolerations"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(Toleration::from_json)
                .collect(),
            anti_affinity,
            owner,
            claims,
            host_ports,
            node_name: spec
                .and_then(|s| s.get("nodeName"))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            terminal: matches!(phase, Some("Succeeded") | Some("Failed")),
        }
    }

    /// `namespace/name`, the pod's identity in the view.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Requests used for scoring: zero container requests replaced by kube-scheduler's defaults.
    pub(super) fn score_requests(&self) -> (i64, i64) {
        (
            if self.requests.cpu == 0 {
                DEFAULT_SCORE_CPU
            } else {
                self.requests.cpu
            },
            if self.requests.memory == 0 {
                DEFAULT_SCORE_MEMORY
            } else {
                self.requests.memory
            },
        )
    }
}

fn container_requests(c: &Value) -> Resources {
    let res = c.get("resources");
    let pick = |k: &str| {
        res.and_then(|r| r.get("requests"))
            .and_then(|r| r.get(k))
            // Kubernetes defaults a missing request to the limit.
            .or_else(|| res.and_then(|r| r.get("limits")).and_then(|l| l.get(k)))
    };
    Resources {
        cpu: pick("cpu")
            .and_then(apimachinery::quantity::millis)
            .unwrap_or(0),
        memory: pick("memory")
            .and_then(apimachinery::quantity::units)
            .unwrap_or(0),
        pods: 0,
    }
}

/// Every `containers[].ports[]` entry of a pod spec.
pub fn container_ports(spec: Option<&Value>) -> impl Iterator<Item = &Value> {
    spec.and_then(|s| s.get("containers"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|c| {
            c.get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
}

pub(crate) fn str_at<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

/// Where a pod goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The chosen node.
    pub node: String,
}

/// Why a pod fits no node, in kube-scheduler's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Unschedulable {
    /// `0/3 nodes are available: 1 node(s) had untolerated taint {k: v}, 2 Insufficient cpu.`
    pub message: String,
    /// Per reason, how many nodes it excluded.
    pub reasons: BTreeMap<String, usize>,
}

/// Why one node was filtered out (a node may fail several resource checks at once).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Reason {
    Unschedulable,
    Taint(String),
    NotReady,
    Affinity,
    InsufficientCpu,
    InsufficientMemory,
    TooManyPods,
    VolumeConflict,
    HostPorts,
    AntiAffinity,
    ExistingAntiAffinity,
}

impl Reason {
    fn text(&self) -> String {
        match self {
            Reason::Unschedulable => "node(s) were unschedulable".into(),
            Reason::Taint(t) => format!("node(s) had untolerated taint {t}"),
            Reason::NotReady => "node(s) were not ready".into(),
            Reason::Affinity => "node(s) didn't match Pod's node affinity/selector".into(),
            Reason::InsufficientCpu => "Insufficient cpu".into(),
            Reason::InsufficientMemory => "Insufficient memory".into(),
            Reason::TooManyPods => "Too many pods".into(),
            Reason::VolumeConflict => "node(s) had volume node affinity conflict".into(),
            Reason::HostPorts => {
                "node(s) didn't have free ports for the requested pod ports".into()
            }
            Reason::AntiAffinity => "node(s) didn't match pod anti-affinity rules".into(),
            Reason::ExistingAntiAffinity => {
                "node(s) didn't satisfy existing pods anti-affinity rules".into()
            }
        }
    }
}

impl Unschedulable {
    pub(super) fn from_reasons(
        total: usize,
        per_node: impl IntoIterator<Item = Vec<Reason>>,
    ) -> Unschedulable {
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        for rs in per_node {
            for r in rs {
                *reasons.entry(r.text()).or_default() += 1;
            }
        }
        if total == 0 {
            return Unschedulable {
                message: "no nodes available to schedule pods".into(),
                reasons,
            };
        }
        let mut parts: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
        parts.sort();
        Unschedulable {
            message: format!("0/{total} nodes are available: {}.", parts.join(", ")),
            reasons,
        }
    }
}
