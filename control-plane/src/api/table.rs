//! `meta.k8s.io/v1` Table responses (`Accept: ...;as=Table`) with kubectl's column sets and cell
//! formats (`pkg/printers/internalversion/printers.go`), computed server-side like the real API server.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use serde_json::{json, Map, Value};

/// What each row carries in `object` (query parameter `includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    /// No `object` field.
    None,
    /// A `PartialObjectMetadata` with the object's metadata (the default).
    Metadata,
    /// The full object (`kubectl get --sort-by`).
    Object,
}

impl IncludeObject {
    /// Parses the `includeObject` query value; unknown or absent values give `Metadata`.
    pub fn from_query(v: Option<&str>) -> Self {
        match v {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// Builds the Table for `objects` of `resource` (plural, e.g. `pods`); ages are computed against `now`.
/// The server always produces the wide (`priority: 1`) columns; kubectl hides them without `-o wide`.
pub fn table(
    resource: &str,
    objects: &[&Value],
    include_object: IncludeObject,
    resource_version: &str,
    now: SystemTime,
) -> Value {
    let (columns, row_fn): (&[Col], RowFn) = match resource {
        "pods" => (POD_COLUMNS, pod_row),
        "deployments" => (DEPLOYMENT_COLUMNS, deployment_row),
        "replicasets" => (REPLICASET_COLUMNS, replicaset_row),
        "daemonsets" => (DAEMONSET_COLUMNS, daemonset_row),
        "jobs" => (JOB_COLUMNS, job_row),
        "services" => (SERVICE_COLUMNS, service_row),
        "endpoints" => (ENDPOINTS_COLUMNS, endpoints_row),
        "nodes" => (NODE_COLUMNS, node_row),
        "namespaces" => (NAMESPACE_COLUMNS, namespace_row),
        "configmaps" => (CONFIGMAP_COLUMNS, configmap_row),
        "secrets" => (SECRET_COLUMNS, secret_row),
        "events" => (EVENT_COLUMNS, event_row),
        "persistentvolumeclaims" => (PVC_COLUMNS, pvc_row),
        "leases" => (LEASE_COLUMNS, lease_row),
        "serviceaccounts" => (SERVICE_ACCOUNT_COLUMNS, service_account_row),
        "roles" | "clusterroles" => (ROLE_COLUMNS, role_row),
        "rolebindings" | "clusterrolebindings" => (ROLE_BINDING_COLUMNS, role_binding_row),
        _ => (GENERIC_COLUMNS, generic_row),
    };
    let column_definitions: Vec<Value> = columns
        .iter()
        .map(|c| {
            json!({"name": c.name, "type": c.kind, "format": c.format, "description": c.description, "priority": c.priority})
        })
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let (cells, conditions) = row_fn(o, now);
            let mut row = Map::new();
            row.insert("cells".into(), Value::Array(cells));
            if let Some(c) = conditions {
                row.insert("conditions".into(), c);
            }
            match include_object {
                IncludeObject::None => {}
                IncludeObject::Metadata => {
                    row.insert(
                        "object".into(),
                        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                               "metadata": o.get("metadata").cloned().unwrap_or_else(|| json!({}))}),
                    );
                }
                IncludeObject::Object => {
                    row.insert("object".into(), (*o).clone());
                }
            }
            Value::Object(row)
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": column_definitions,
        "rows": rows,
    })
}

type RowFn = fn(&Value, SystemTime) -> (Vec<Value>, Option<Value>);

struct Col {
    name: &'static str,
    kind: &'static str,
    format: &'static str,
    priority: u8,
    description: &'static str,
}

const fn col(
    name: &'static str,
    kind: &'static str,
    priority: u8,
    description: &'static str,
) -> Col {
    Col {
        name,
        kind,
        format: "",
        priority,
        description,
    }
}

const NAME_DESC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const AGE_DESC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
const NAME: Col = Col {
    name: "Name",
    kind: "string",
    format: "name",
    priority: 0,
    description: NAME_DESC,
};
const AGE: Col = col("Age", "string", 0, AGE_DESC);

const POD_COLUMNS: &[Col] = &[
    NAME,
    col("Ready", "string", 0, "The aggregate readiness state of this pod for accepting traffic."),
    col("Status", "string", 0, "The aggregate status of the containers in this pod."),
    col("Restarts", "string", 0, "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
    AGE,
    col("IP", "string", 1, "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."),
    col("Node", "string", 1, "NodeName indicates in which node this pod is scheduled."),
    col("Nominated Node", "string", 1, "nominatedNodeName is set only when this pod preempts other pods on the node."),
    col("Readiness Gates", "string", 1, "If specified, all readiness gates will be evaluated for pod readiness."),
];
const DEPLOYMENT_COLUMNS: &[Col] = &[
    NAME,
    col("Ready", "string", 0, "Number of the pod with ready state"),
    col("Up-to-date", "integer", 0, "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
    col("Available", "integer", 0, "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
    AGE,
    col("Containers", "string", 1, "Names of each container in the template."),
    col("Images", "string", 1, "Images referenced by each container in the template."),
    col("Selector", "string", 1, "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment."),
];
const REPLICASET_COLUMNS: &[Col] = &[
    NAME,
    col(
        "Desired",
        "integer",
        0,
        "Replicas is the number of desired pods.",
    ),
    col(
        "Current",
        "integer",
        0,
        "Replicas is the most recently observed number of replicas.",
    ),
    col(
        "Ready",
        "integer",
        0,
        "The number of ready replicas for this replica set.",
    ),
    AGE,
    col(
        "Containers",
        "string",
        1,
        "Names of each container in the template.",
    ),
    col(
        "Images",
        "string",
        1,
        "Images referenced by each container in the template.",
    ),
    col(
        "Selector",
        "string",
        1,
        "Selector is a label query over pods that should match the replica count.",
    ),
];
const DAEMONSET_COLUMNS: &[Col] = &[
    NAME,
    col("Desired", "integer", 0, "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod)."),
    col("Current", "integer", 0, "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod."),
    col("Ready", "integer", 0, "numberReady is the number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition."),
    col("Up-to-date", "integer", 0, "The total number of nodes that are running updated daemon pod"),
    col("Available", "integer", 0, "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)"),
    col("Node Selector", "string", 0, "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must match a node's labels for the pod to be scheduled on that node."),
    AGE,
    col("Containers", "string", 1, "Names of each container in the template."),
    col("Images", "string", 1, "Images referenced by each container in the template."),
    col("Selector", "string", 1, "A label query over pods that are managed by the daemon set. Must match in order to be controlled."),
];
const JOB_COLUMNS: &[Col] = &[
    NAME,
    col("Status", "string", 0, "Status of the job."),
    col("Completions", "string", 0, "The number of pods which reached phase Succeeded. The value increases monotonically for a given spec. However, it may decrease in reaction to scale down of elastic indexed jobs."),
    col("Duration", "string", 0, "Time required to complete the job."),
    AGE,
    col("Containers", "string", 1, "Names of each container in the template."),
    col("Images", "string", 1, "Images referenced by each container in the template."),
    col("Selector", "string", 1, "A label query over pods that should match the pod count. Normally, the system sets this field for you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors"),
];
const SERVICE_COLUMNS: &[Col] = &[
    NAME,
    col("Type", "string", 0, "type determines how the Service is exposed."),
    col("Cluster-IP", "string", 0, "clusterIP is the IP address of the service and is usually assigned randomly."),
    col("External-IP", "string", 0, "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),
    col("Port(s)", "string", 0, "The list of ports that are exposed by this service."),
    AGE,
    col("Selector", "string", 1, "Route service traffic to pods with label keys and values matching this selector."),
];
const ENDPOINTS_COLUMNS: &[Col] = &[
    NAME,
    col("Endpoints", "string", 0, "Endpoints of the service"),
    AGE,
];
const NODE_COLUMNS: &[Col] = &[
    NAME,
    col("Status", "string", 0, "The status of the node"),
    col("Roles", "string", 0, "The roles of the node"),
    AGE,
    col("Version", "string", 0, "Kubelet Version reported by the node."),
    col("Internal-IP", "string", 1, "List of addresses reachable to the node."),
    col("External-IP", "string", 1, "List of addresses reachable to the node."),
    col("OS-Image", "string", 1, "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."),
    col("Kernel-Version", "string", 1, "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."),
    col("Container-Runtime", "string", 1, "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2)."),
];
const NAMESPACE_COLUMNS: &[Col] = &[
    NAME,
    col("Status", "string", 0, "The status of the namespace"),
    AGE,
];
const CONFIGMAP_COLUMNS: &[Col] = &[
    NAME,
    col(
        "Data",
        "integer",
        0,
        "Data contains the configuration data.",
    ),
    AGE,
];
const SECRET_COLUMNS: &[Col] = &[
    NAME,
    col(
        "Type",
        "string",
        0,
        "Used to facilitate programmatic handling of secret data.",
    ),
    col("Data", "integer", 0, "Data contains the secret data."),
    AGE,
];
const EVENT_COLUMNS: &[Col] = &[
    col("Last Seen", "string", 0, "The time at which the most recent occurrence of this event was recorded."),
    col("Type", "string", 0, "Type of this event (Normal, Warning), new types could be added in the future."),
    col("Reason", "string", 0, "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
    col("Object", "string", 0, "The object that this event is about."),
    col("Subobject", "string", 1, "The subobject that this event is about."),
    col("Source", "string", 1, "The component reporting this event."),
    col("Message", "string", 0, "A human-readable description of the status of this operation."),
    col("First Seen", "string", 1, "The time at which the event was first recorded."),
    col("Count", "string", 1, "The number of times this event has occurred."),
    Col { name: "Name", kind: "string", format: "name", priority: 1, description: NAME_DESC },
];
const PVC_COLUMNS: &[Col] = &[
    NAME,
    col("Status", "string", 0, "phase represents the current phase of PersistentVolumeClaim."),
    col("Volume", "string", 0, "volumeName is the binding reference to the PersistentVolume backing this claim."),
    col("Capacity", "string", 0, "capacity represents the actual resources of the underlying volume."),
    col("Access Modes", "string", 0, "accessModes contains the actual access modes the volume backing the PVC has."),
    col("StorageClass", "string", 0, "storageClassName is the name of the StorageClass required by the claim."),
    col("VolumeAttributesClass", "string", 0, "volumeAttributesClassName may be used to set the VolumeAttributesClass used by this claim."),
    AGE,
    col("VolumeMode", "string", 1, "volumeMode defines what type of volume is required by the claim."),
];
const LEASE_COLUMNS: &[Col] = &[
    NAME,
    col(
        "Holder",
        "string",
        0,
        "holderIdentity contains the identity of the holder of a current lease.",
    ),
    AGE,
];
const GENERIC_COLUMNS: &[Col] = &[NAME, AGE];
const SERVICE_ACCOUNT_COLUMNS: &[Col] = &[
    NAME,
    col("Secrets", "string", 0, "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."),
    AGE,
];
const ROLE_COLUMNS: &[Col] = &[NAME, col("Created At", "date", 0, AGE_DESC)];
const ROLE_BINDING_COLUMNS: &[Col] = &[
    NAME,
    col("Role", "string", 0, "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error. This field is immutable."),
    AGE,
    col("Users", "string", 1, "Users in the roleBinding"),
    col("Groups", "string", 1, "Groups in the roleBinding"),
    col("ServiceAccounts", "string", 1, "ServiceAccounts in the roleBinding"),
];

fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn i(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn arr<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn or_none(v: &str) -> String {
    if v.is_empty() {
        "<none>".to_string()
    } else {
        v.to_string()
    }
}

pub use apimachinery::time::parse_rfc3339;

/// Formats a duration exactly like `k8s.io/apimachinery/pkg/util/duration.HumanDuration`
/// (`5s`, `2m3s`, `10m`, `3h4m`, `2d3h`, `40d`, `2y30d`); `nanos` may be negative (clock skew).
pub fn human_duration_nanos(nanos: i128) -> String {
    const S: i128 = 1_000_000_000;
    let seconds = nanos / S;
    if seconds < -1 {
        return "<invalid>".into();
    } else if seconds < 0 {
        return "0s".into();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = nanos / (60 * S);
    if minutes < 10 {
        let sec = seconds % 60;
        return if sec == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{sec}s")
        };
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = nanos / (3600 * S);
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        }
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        }
    } else if hours < 24 * 365 * 2 {
        format!("{}d", hours / 24)
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        }
    } else {
        format!("{}y", hours / 24 / 365)
    }
}

/// [`human_duration_nanos`] for a non-negative duration.
pub fn human_duration(d: Duration) -> String {
    human_duration_nanos(d.as_nanos() as i128)
}

fn since_nanos(t: SystemTime, now: SystemTime) -> i128 {
    match now.duration_since(t) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// `translateTimestampSince`: `<unknown>` for a missing timestamp, else the human age.
fn age(ts: &str, now: SystemTime) -> String {
    match parse_rfc3339(ts) {
        Some(t) => human_duration_nanos(since_nanos(t, now)),
        None => "<unknown>".into(),
    }
}

fn created_age(o: &Value, now: SystemTime) -> Value {
    Value::from(age(s(o, "/metadata/creationTimestamp"), now))
}

fn name(o: &Value) -> Value {
    Value::from(s(o, "/metadata/name"))
}

fn generic_row(o: &Value, now: SystemTime) -> (Vec<Value>, Option<Value>) {
    (vec![name(o), created_age(o, now)], None)
}

fn pod_row(pod: &Value, now: SystemTime) -> (Vec<Value>, Option<Value>) {
    let phase = s(pod, "/status/phase");
    let mut reason = phase.to_string();
    if !s(pod, "/status/reason").is_empty() {
        reason = s(pod, "/status/reason").to_string();
    }
    let conditions = arr(pod, "/status/conditions");
    if conditions
        .iter()
        .any(|c| s(c, "/type") == "PodScheduled" && s(c, "/reason") == "SchedulingGated")
    {
        reason = "SchedulingGated".into();
    }
    let row_conditions = match phase {
        "Succeeded" => Some(
            json!([{"type": "Completed", "status": "True", "reason": "Succeeded", "message": "The pod has completed successfully."}]),
        ),
        "Failed" => Some(
            json!([{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}]),
        ),
        _ => None,
    };
    let init_specs = arr(pod, "/spec/initContainers");
    let restartable = |name: &str| {
        init_specs
            .iter()
            .any(|c| s(c, "/name") == name && s(c, "/restartPolicy") == "Always")
    };
    let total = arr(pod, "/spec/containers").len()
        + init_specs
            .iter()
            .filter(|c| s(c, "/restartPolicy") == "Always")
            .count();
    let mut ready = 0;
    let mut restarts = 0i64;
    let mut sidecar_restarts = 0i64;
    let mut last_restart: Option<SystemTime> = None;
    let mut last_sidecar_restart: Option<SystemTime> = None;
    let finished = |c: &Value| parse_rfc3339(s(c, "/lastState/terminated/finishedAt"));
    let later = |a: Option<SystemTime>, b: Option<SystemTime>| match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let mut initializing = false;
    let init_statuses = arr(pod, "/status/initContainerStatuses");
    for (idx, c) in init_statuses.iter().enumerate() {
        restarts += i(c, "/restartCount");
        last_restart = later(last_restart, finished(c));
        let is_sidecar = restartable(s(c, "/name"));
        if is_sidecar {
            sidecar_restarts += i(c, "/restartCount");
            last_sidecar_restart = later(last_sidecar_restart, finished(c));
        }
        let terminated = c.pointer("/state/terminated").filter(|t| t.is_object());
        let waiting_reason = s(c, "/state/waiting/reason");
        if terminated.is_some() && i(c, "/state/terminated/exitCode") == 0 {
            continue;
        } else if is_sidecar && c.get("started").and_then(Value::as_bool) == Some(true) {
            if c.get("ready").and_then(Value::as_bool) == Some(true) {
                ready += 1;
            }
            continue;
        } else if terminated.is_some() {
            let r = s(c, "/state/terminated/reason");
            reason = if !r.is_empty() {
                format!("Init:{r}")
            } else if i(c, "/state/terminated/signal") != 0 {
                format!("Init:Signal:{}", i(c, "/state/terminated/signal"))
            } else {
                format!("Init:ExitCode:{}", i(c, "/state/terminated/exitCode"))
            };
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            reason = format!("Init:{waiting_reason}");
        } else {
            reason = format!("Init:{idx}/{}", init_specs.len());
        }
        initializing = true;
        break;
    }
    let initialized = conditions
        .iter()
        .any(|c| s(c, "/type") == "Initialized" && s(c, "/status") == "True");
    if !initializing || initialized {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for c in arr(pod, "/status/containerStatuses").iter().rev() {
            restarts += i(c, "/restartCount");
            last_restart = later(last_restart, finished(c));
            let terminated = c.pointer("/state/terminated").filter(|t| t.is_object());
            if !s(c, "/state/waiting/reason").is_empty() {
                reason = s(c, "/state/waiting/reason").to_string();
            } else if terminated.is_some() && !s(c, "/state/terminated/reason").is_empty() {
                reason = s(c, "/state/terminated/reason").to_string();
            } else if terminated.is_some() {
                let sig = i(c, "/state/terminated/signal");
                reason = if sig != 0 {
                    format!("Signal:{sig}")
                } else {
                    format!("ExitCode:{}", i(c, "/state/terminated/exitCode"))
                };
            } else if c.get("ready").and_then(Value::as_bool) == Some(true)
                && c.pointer("/state/running").is_some_and(Value::is_object)
            {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            let pod_ready = conditions
                .iter()
                .any(|c| s(c, "/type") == "Ready" && s(c, "/status") == "True");
            reason = if pod_ready {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }
    let deleting = pod
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null());
    if deleting && s(pod, "/status/reason") == "NodeLost" {
        reason = "Unknown".into();
    } else if deleting && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".into();
    }
    let restarts_str = match last_restart {
        Some(t) if restarts != 0 => format!(
            "{restarts} ({} ago)",
            human_duration_nanos(since_nanos(t, now))
        ),
        _ => restarts.to_string(),
    };
    let pod_ip = arr(pod, "/status/podIPs")
        .first()
        .map(|p| s(p, "/ip"))
        .filter(|ip| !ip.is_empty())
        .unwrap_or_else(|| s(pod, "/status/podIP"));
    let gates = arr(pod, "/spec/readinessGates");
    let gates_str = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let ok = gates
            .iter()
            .filter(|g| {
                conditions
                    .iter()
                    .find(|c| s(c, "/type") == s(g, "/conditionType"))
                    .is_some_and(|c| s(c, "/status") == "True")
            })
            .count();
        format!("{ok}/{}", gates.len())
    };
    let cells = vec![
        name(pod),
        Value::from(format!("{ready}/{total}")),
        Value::from(reason),
        Value::from(restarts_str),
        created_age(pod, now),
        Value::from(or_none(pod_ip)),
        Value::from(or_none(s(pod, "/spec/nodeName"))),
        Value::from(or_none(s(pod, "/status/nominatedNodeName"))),
        Value::from(gates_str),
    ];
    (cells, row_conditions)
}

fn containers_and_images(o: &Value) -> (Value, Value) {
    let cs = arr(o, "/spec/template/spec/containers");
    let names: Vec<&str> = cs.iter().map(|c| s(c, "/name")).collect();
    let images: Vec<&str> = cs.iter().map(|c| s(c, "/image")).collect();
    (Value::from(names.join(",")), Value::from(images.join(",")))
}

/// `metav1.LabelSelectorAsSelector(sel).String()`: requirements sorted by key; `<none>` when empty.
fn label_selector_string(sel: Option<&Value>) -> String {
    let Some(sel) = sel.filter(|s| !s.is_null()) else {
        return "<none>".into();
    };
    let mut parts: Vec<(String, String)> = Vec::new();
    if let Some(ml) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in ml {
            parts.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or(""))));
        }
    }
    for e in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let k = s(e, "/key");
        let vals: BTreeSet<&str> = arr(e, "/values").iter().filter_map(Value::as_str).collect();
        let vals: Vec<&str> = vals.into_iter().collect();
        let r = match s(e, "/operator") {
            "In" => format!("{k} in ({})", vals.join(",")),
            "NotIn" => format!("{k} notin ({})", vals.join(",")),
            "Exists" => k.to_string(),
            "DoesNotExist" => format!("!{k}"),
            _ => continue,
        };
        parts.push((k.to_string(), r));
    }
    parts.sort();
    if parts.is_empty() {
        return "<none>".into();
    }
    parts
        .into_iter()
        .map(|(_, r)| r)
        .collect::<Vec<_>>()
        .join(",")
}

/// `labels.FormatLabels`: `k=v` pairs sorted by key, `<none>` when empty.
fn format_labels(m: Option<&Value>) -> String {
    let Some(m) = m.and_then(Value::as_object).filter(|m| !m.is_empty()) else {
        return "<none>".into();
    };
    let mut pairs: Vec<String> = m
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    pairs.sort();
    pairs.join(",")
}

fn deployment_row(d: &Value, now: SystemTime) -> (Vec<Value>, Option<Value>) {
    let desired = d
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let (containers, images) = containers_and_images(d);
    let cells = vec![
        name(d),
        Value::from(format!("{}/{desired}", i(d, "/status/readyReplicas"))),
        Value::from(i(d, "/status/updatedReplicas")),
        Value::from(i(d, "/status/availableReplicas")),
        created_age(d, now),
        containers,
        images,
        Value::from(label_selector_string(d.pointer("/spec/selector"))),
    ];
    (cells, None)
}

fn replicaset_row(rs: &Value, now: SystemTime) -> (Vec<Value>, Option<Value>) {
    let desired = rs
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let (containers, images) = containers_and_images(rs);
    let cells = vec![
        name(rs),
        Value::from(desired),
        Value::from(i(rs, "/status/replicas")),
        Value::from(i(rs, "/status/readyReplicas")),
        created_age(rs, now),
        containers,
        images,
        Value::from(label_selector_string(rs.pointer("/spec/selector"))),
    ];
    (cells, None)
}

fn daemonset_row(ds: &Value, now: SystemTime) -> (Vec<Value>, Option<Value>) {
    let (containers, images) = containers_and_images(ds);
    // kubectl prints the node selector as `k=v,k=v` in key order, `<none>` when empty.
    let node_selector = ds
        .pointer("/spec/template/spec/nodeSelector")
        .and_then(Value::as_object)
        .filter(|m| !m.is_empty())
        .map_or_else(
            || "<none>".to_string(),
            |m| {
                let mut kv: Vec<String> = m
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                    .collect();
                kv.sort();
                kv.join(",")
            },
        );
    let cells = vec![
        name(ds),
        Value::from(i(ds, "/status/desiredNumberScheduled")),
        Value::from(i(ds, "/status/currentNumberScheduled")),
        Value::from(i(ds, "/status/numberReady")),
        Value::from(i(ds, "/status/updatedNumberScheduled")),
        Value::from(i(ds, "/status/numberAvailable")),
        Value::from(node_selector),
        created_age(ds, now),
        containers,
        images,
        Value::from(label_selector_string(ds.pointer("/spec/selector"))),
    ];
    (cells, None)
}

/// `hasJobCondition`: the first condition of the type decides, and it must be `True`.
fn has_job_condition(job: &Value, kind: &str) -> bool {
    arr(job, "/status/conditions")
        .iter()
        .find(|c| s(c, "/type") == kind)
        .is_some_and(|c| s(c, "/status") == "True")
}

/// `printJob`: terminal conditions first, then deletion, suspension and the interim conditions.
fn job_row(job: &Value, now: SystemTime) -> (Vec<Value>, Option<Value>) {
    let succeeded = i(job, "/status/succeeded");
    let completions = match job.pointer("/spec/completions").and_then(Value::as_i64) {
        Some(c) => format!("{succeeded}/{c}"),
        None => match i(job, "/spec/parallelism") {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let start = parse_rfc3339(s(job, "/status/startTime"));
    let completion = parse_rfc3339(s(job, "/status/completionTime"));
    let duration = match (start, completion) {
        (None, _) => String::new(),
        (Some(st), None) => human_duration_nanos(since_nanos(st, now)),
        (Some(st), Some(done)) => human_duration_nanos(since_nanos(st, done)),
    };
    let status = if has_job_condition(job, "Complete") {
        "Complete"
    } else if has_job_condition(job, "Failed") {
        "Failed"
    } else if job
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
    {
        "Terminating"
    } else if has_job_condition(job, "Suspended") {
        "Suspended"
    } else if has_job_condition(job, "FailureTarget") {
        "FailureTarget"
    } else if has_job_condition(job, "SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else {
        "Running"
    };
    let (containers, images) = containers_and_images(job);
    let cells = vec![
        name(job),
        Value::from(status),
        Value::from(completions),
        Value::from(duration),
        created_age(job, now),
        containers,
        images,
        Value::from(label_selector_string(job.pointer("/spec/selector"))),
    ];
    (cells, None)
}

fn strings(v: &[Value]) -> Vec<String> {
    v.iter()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

fn service_external_ip(svc: &Value) -> String {
    let external_ips = strings(arr(svc, "/spec/externalIPs"));
    match s(svc, "/spec/type") {
        "" | "ClusterIP" | "NodePort" => {
            if external_ips.is_empty() {
                "<none>".into()
            } else {
                external_ips.join(",")
            }
        }
        "LoadBalancer" => {
            let mut all: Vec<String> = arr(svc, "/status/loadBalancer/ingress")
                .iter()
                .map(|ing| {
                    if s(ing, "/ip").is_empty() {
                        s(ing, "/hostname")
                    } else {
                        s(ing, "/ip")
                    }
                    .to_string()
                })
                .filter(|x| !x.is_empty())
                .collect();
            all.extend(external_ips);
            if all.is_empty() {
                "<pending>".into()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => s(svc, "/spec/externalName").to_string(),
        _ => "<unknown>".into(),
    }
}

fn service_row(svc: &Value, now: SystemTime) -> (Vec<Value>, Option<Value>) {
    let cluster_ip = arr(svc, "/spec/clusterIPs")
        .first()
        .and_then(Value::as_str)
        .unwrap_or_else(|| s(svc, "/spec/clusterIP"));
    let ports: Vec<String> = arr(svc, "/spec/ports")
        .iter()
        .map(|p| {
            let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
            let np = i(p, "/nodePort");
            if np > 0 {
                format!("{}:{np}/{proto}", i(p, "/port"))
            } else {
                format!("{}/{proto}", i(p, "/port"))
            }
        })
        .collect();
    let svc_type = svc
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    let cells = vec![
        name(svc),
        Value::from(svc_type),
        Value::from(or_none(cluster_ip)),
        Value::from(service_external_ip(svc)),
        Value::from(or_none(&ports.join(","))),
        created_age(svc, now),
        Value::from(format_labels(svc.pointer("/spec/selector"))),
    ];
    (cells, None)
}

fn join_host_port(ip: &str, port: i64) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

fn endpoints_row(ep: &Value, now: SystemTime) -> (Vec<Value>, Option<Value>) {
    const MAX: usize = 3;
    let subsets = arr(ep, "/subsets");
    let text = if subsets.is_empty() {
        "<none>".to_string()
    } else {
        let mut list = Vec::new();
        let mut count = 0;
        let mut more = false;
        for ss in subsets {
            let addrs = arr(ss, "/addresses");
            let ports = arr(ss, "/ports");
            if ports.is_empty() {
                count += addrs.len();
                for a in addrs {
                    if list.len() == MAX {
                        more = true;
                        break;
                    }
                    list.push(s(a, "/ip").to_string());
                }
                continue;
            }
            for p in ports {
                count += addrs.len();
                for a in addrs {
                    if list.len() == MAX {
                        more = true;
                        break;
                    }
                    list.push(join_host_port(s(a, "/ip"), i(p, "/port")));
                }
            }
        }
        if more {
            format!("{} + {} more...", list.join(","), count - MAX)
        } else {
            list.join(",")
        }
    };
    (
        vec![name(ep), Value::from(text), created_age(ep, now)],
        None,
    )
}

fn node_row(node: &Value, now: SystemTime) -> (Vec<Value>, Option<Value>) {
    let mut status: Vec<String> = Vec::new();
    if let Some(c) = arr(node, "/status/conditions")
        .iter()
        .rev()
        .find(|c| s(c, "/type") == "Ready")
    {
        status.push(if s(c, "/status") == "True" {
            "Ready".into()
        } else {
            "NotReady".into()
        });
    }
    if status.is_empty() {
        status.push("Unknown".into());
    }
    if node.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push("SchedulingDisabled".into());
    }
    let mut roles = BTreeSet::new();
    if let Some(labels) = node.pointer("/metadata/labels").and_then(Value::as_object) {
        for (k, v) in labels {
            if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.insert(role.to_string());
                }
            } else if k == "kubernetes.io/role" {
                if let Some(v) = v.as_str().filter(|v| !v.is_empty()) {
                    roles.insert(v.to_string());
                }
            }
        }
    }
    let roles: Vec<String> = roles.into_iter().collect();
    let address = |t: &str| {
        arr(node, "/status/addresses")
            .iter()
            .find(|a| s(a, "/type") == t)
            .map(|a| s(a, "/address").to_string())
            .unwrap_or_else(|| "<none>".into())
    };
    let unknown = |p: &str| {
        let v = s(node, p);
        if v.is_empty() {
            "<unknown>".to_string()
        } else {
            v.to_string()
        }
    };
    let cells = vec![
        name(node),
        Value::from(status.join(",")),
        Value::from(or_none(&roles.join(","))),
        created_age(node, now),
        Value::from(s(node, "/status/nodeInfo/kubeletVersion")),
        Value::from(address("InternalIP")),
        Value::from(address("ExternalIP")),
        Value::from(unknown("/status/nodeInfo/osImage")),
        Value::from(unknown("/status/nodeInfo/kernelVersion")),
        Value::from(unknown("/status/nodeInfo/containerRuntimeVersion")),
    ];
    (cells, None)
}

fn namespace_row(ns: &Value, now: SystemTime) -> (Vec<Value>, Option<Value>) {
    (
        vec![
            name(ns),
            Value::from(s(ns, "/status/phase")),
            created_age(ns, now),
        ],
        None,
    )
}

fn map_len(o: &Value, pointer: &str) -> usize {
    o.pointer(pointer)
        .and_then(Value::as_object)
        .map_or(0, Map::len)
}

fn configmap_row(cm: &Value, now: SystemTime) -> (Vec<Value>, Option<Value>) {
    let n = map_len(cm, "/data") + map_len(cm, "/binaryData");
    (vec![name(cm), Value::from(n), created_age(cm, now)], None)
}

fn secret_row(sec: &Value, now: SystemTime) -> (Vec<Value>, Option<Value>) {
    let mut keys: BTreeSet<&String> = BTreeSet::new();
    for p in ["/data", "/stringData"] {
        if let Some(m) = sec.pointer(p).and_then(Value::as_object) {
            keys.extend(m.keys());
        }
    }
    let t = sec.get("type").and_then(Value::as_str).unwrap_or("Opaque");
    (
        vec![
            name(sec),
            Value::from(t),
            Value::from(keys.len()),
            created_age(sec, now),
        ],
        None,
    )
}

fn event_row(ev: &Value, now: SystemTime) -> (Vec<Value>, Option<Value>) {
    let first_ts = s(ev, "/firstTimestamp");
    let first = if first_ts.is_empty() {
        age(s(ev, "/eventTime"), now)
    } else {
        age(first_ts, now)
    };
    let mut last = if s(ev, "/lastTimestamp").is_empty() {
        first.clone()
    } else {
        age(s(ev, "/lastTimestamp"), now)
    };
    let mut count = i(ev, "/count");
    if ev.get("series").is_some_and(Value::is_object) {
        last = age(s(ev, "/series/lastObservedTime"), now);
        count = i(ev, "/series/count");
    } else if count == 0 {
        count = 1;
    }
    let kind = s(ev, "/involvedObject/kind").to_lowercase();
    let obj_name = s(ev, "/involvedObject/name");
    let target = if obj_name.is_empty() {
        kind
    } else {
        format!("{kind}/{obj_name}")
    };
    let component = if s(ev, "/source/component").is_empty() {
        s(ev, "/reportingComponent")
    } else {
        s(ev, "/source/component")
    };
    let host = if s(ev, "/source/host").is_empty() {
        s(ev, "/reportingInstance")
    } else {
        s(ev, "/source/host")
    };
    let source = if host.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {host}")
    };
    let cells = vec![
        Value::from(last),
        Value::from(s(ev, "/type")),
        Value::from(s(ev, "/reason")),
        Value::from(target),
        Value::from(s(ev, "/involvedObject/fieldPath")),
        Value::from(source),
        Value::from(s(ev, "/message").trim()),
        Value::from(first),
        Value::from(count),
        name(ev),
    ];
    (cells, None)
}

fn pvc_row(pvc: &Value, now: SystemTime) -> (Vec<Value>, Option<Value>) {
    let deleting = pvc
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null());
    let phase = if deleting {
        "Terminating"
    } else {
        s(pvc, "/status/phase")
    };
    let volume = s(pvc, "/spec/volumeName");
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        let modes: Vec<&str> = arr(pvc, "/status/accessModes")
            .iter()
            .filter_map(Value::as_str)
            .map(|m| match m {
                "ReadWriteOnce" => "RWO",
                "ReadOnlyMany" => "ROX",
                "ReadWriteMany" => "RWX",
                "ReadWriteOncePod" => "RWOP",
                other => other,
            })
            .collect();
        (
            s(pvc, "/status/capacity/storage").to_string(),
            modes.join(","),
        )
    };
    let class = pvc
        .pointer("/spec/storageClassName")
        .and_then(Value::as_str)
        .or_else(|| {
            pvc.pointer("/metadata/annotations/volume.beta.kubernetes.io~1storage-class")
                .and_then(Value::as_str)
        })
        .unwrap_or("");
    let unset = |p: &str| {
        let v = s(pvc, p);
        if v.is_empty() {
            "<unset>".to_string()
        } else {
            v.to_string()
        }
    };
    let cells = vec![
        name(pvc),
        Value::from(phase),
        Value::from(volume),
        Value::from(capacity),
        Value::from(modes),
        Value::from(class),
        Value::from(unset("/spec/volumeAttributesClassName")),
        created_age(pvc, now),
        Value::from(unset("/spec/volumeMode")),
    ];
    (cells, None)
}

fn lease_row(lease: &Value, now: SystemTime) -> (Vec<Value>, Option<Value>) {
    (
        vec![
            name(lease),
            Value::from(s(lease, "/spec/holderIdentity")),
            created_age(lease, now),
        ],
        None,
    )
}

fn service_account_row(sa: &Value, now: SystemTime) -> (Vec<Value>, Option<Value>) {
    let secrets = arr(sa, "/secrets").len();
    (
        vec![name(sa), Value::from(secrets), created_age(sa, now)],
        None,
    )
}

/// ClusterRole and Role: the creation time as RFC 3339, as kubectl prints it (not an age).
fn role_row(role: &Value, _now: SystemTime) -> (Vec<Value>, Option<Value>) {
    let created = s(role, "/metadata/creationTimestamp");
    (vec![name(role), Value::from(created)], None)
}

/// RoleBinding and ClusterRoleBinding: `Kind/name` of the role, age, and the subjects by kind
/// (ServiceAccounts as `namespace/name`), each list joined with ", ".
fn role_binding_row(b: &Value, now: SystemTime) -> (Vec<Value>, Option<Value>) {
    let role = format!("{}/{}", s(b, "/roleRef/kind"), s(b, "/roleRef/name"));
    let (mut users, mut groups, mut sas) = (vec![], vec![], vec![]);
    for subject in arr(b, "/subjects") {
        let n = s(subject, "/name");
        match s(subject, "/kind") {
            "User" => users.push(n.to_string()),
            "Group" => groups.push(n.to_string()),
            "ServiceAccount" => sas.push(format!("{}/{n}", s(subject, "/namespace"))),
            _ => {}
        }
    }
    (
        vec![
            name(b),
            Value::from(role),
            created_age(b, now),
            Value::from(users.join(", ")),
            Value::from(groups.join(", ")),
            Value::from(sas.join(", ")),
        ],
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> SystemTime {
        parse_rfc3339("2026-11-25T12:00:00Z").unwrap()
    }

    fn cells(resource: &str, obj: Value) -> Vec<Value> {
        let t = table(resource, &[&obj], IncludeObject::Metadata, "42", now());
        t["rows"][0]["cells"].as_array().unwrap().clone()
    }

    fn column_names(resource: &str) -> Vec<(String, i64)> {
        let t = table(resource, &[], IncludeObject::None, "1", now());
        t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap().to_string(),
                    c["priority"].as_i64().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn rbac_and_service_account_rows() {
        let names =
            |r: &str| -> Vec<String> { column_names(r).into_iter().map(|(n, _)| n).collect() };
        assert_eq!(names("clusterroles"), ["Name", "Created At"]);
        assert_eq!(
            names("rolebindings"),
            ["Name", "Role", "Age", "Users", "Groups", "ServiceAccounts"]
        );
        assert_eq!(
            column_names("clusterrolebindings")[3],
            ("Users".to_string(), 1)
        );
        assert_eq!(names("serviceaccounts"), ["Name", "Secrets", "Age"]);
        let created = json!({"name": "x", "creationTimestamp": "2026-11-25T11:00:00Z"});
        assert_eq!(
            cells("roles", json!({"metadata": created})),
            [json!("x"), json!("2026-11-25T11:00:00Z")]
        );
        let b = json!({"metadata": created,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "User", "name": "a"}, {"kind": "User", "name": "b"},
                         {"kind": "Group", "name": "g"},
                         {"kind": "ServiceAccount", "name": "s", "namespace": "default"}]});
        assert_eq!(
            cells("rolebindings", b),
            [
                json!("x"),
                json!("ClusterRole/view"),
                json!("60m"),
                json!("a, b"),
                json!("g"),
                json!("default/s")
            ]
        );
        assert_eq!(
            cells("serviceaccounts", json!({"metadata": created})),
            [json!("x"), json!(0), json!("60m")]
        );
    }

    #[test]
    fn human_duration_matches_kubectl() {
        let cases: &[(i128, &str)] = &[
            (-3, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (123, "2m3s"),
            (599, "9m59s"),
            (600, "10m"),
            (179 * 60 + 59, "179m"),
            (3 * 3600 + 4 * 60, "3h4m"),
            (5 * 3600, "5h"),
            (8 * 3600 + 59 * 60, "8h"),
            (47 * 3600, "47h"),
            (2 * 86400 + 3 * 3600, "2d3h"),
            (3 * 86400, "3d"),
            (40 * 86400, "40d"),
            (729 * 86400, "729d"),
            ((730 + 30) * 86400, "2y30d"),
            (3 * 365 * 86400, "3y"),
            (9 * 365 * 86400 + 100 * 86400, "9y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration_nanos(secs * 1_000_000_000), *want, "{secs}s");
        }
        assert_eq!(human_duration(Duration::from_millis(61_900)), "61s");
    }

    #[test]
    fn rfc3339_parsing() {
        let t = parse_rfc3339("1970-01-02T00:00:01Z").unwrap();
        assert_eq!(
            t.duration_since(std::time::UNIX_EPOCH).unwrap(),
            Duration::from_secs(86401)
        );
        let a = parse_rfc3339("2026-11-25T13:30:00.5+01:30").unwrap();
        let b = parse_rfc3339("2026-11-25T12:00:00.500Z").unwrap();
        assert_eq!(a, b);
        assert!(parse_rfc3339("2026-13-01T00:00:00Z").is_none());
        assert!(parse_rfc3339("yesterday").is_none());
        assert_eq!(age("", now()), "<unknown>");
    }

    #[test]
    fn pod_columns_and_statuses() {
        assert_eq!(
            column_names("pods"),
            [
                ("Name", 0),
                ("Ready", 0),
                ("Status", 0),
                ("Restarts", 0),
                ("Age", 0),
                ("IP", 1),
                ("Node", 1),
                ("Nominated Node", 1),
                ("Readiness Gates", 1)
            ]
            .map(|(n, p)| (n.to_string(), p))
        );
        let running = json!({"metadata": {"name": "web-1", "creationTimestamp": "2026-11-25T11:57:57Z"},
            "spec": {"nodeName": "node1", "containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "podIP": "10.244.1.5", "podIPs": [{"ip": "10.244.1.5"}], "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 3, "state": {"running": {}},
                 "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2026-11-25T11:59:55Z"}}},
                {"name": "b", "ready": true, "restartCount": 0, "state": {"running": {}}}]}});
        assert_eq!(
            cells("pods", running),
            [
                json!("web-1"),
                json!("2/2"),
                json!("Running"),
                json!("3 (5s ago)"),
                json!("2m3s"),
                json!("10.244.1.5"),
                json!("node1"),
                json!("<none>"),
                json!("<none>")
            ]
        );
        let status = |statuses: Value, phase: &str| {
            let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]},
                "status": {"phase": phase, "containerStatuses": statuses}});
            cells("pods", pod)[2].as_str().unwrap().to_string()
        };
        assert_eq!(
            status(
                json!([{"state": {"waiting": {"reason": "CrashLoopBackOff"}}, "restartCount": 4}]),
                "Running"
            ),
            "CrashLoopBackOff"
        );
        assert_eq!(
            status(
                json!([{"state": {"waiting": {"reason": "ContainerCreating"}}}]),
                "Pending"
            ),
            "ContainerCreating"
        );
        assert_eq!(
            status(
                json!([{"state": {"terminated": {"reason": "Completed", "exitCode": 0}}}]),
                "Succeeded"
            ),
            "Completed"
        );
        assert_eq!(
            status(
                json!([{"state": {"terminated": {"exitCode": 2}}}]),
                "Failed"
            ),
            "ExitCode:2"
        );
        assert_eq!(
            status(
                json!([{"state": {"terminated": {"signal": 9, "exitCode": 137}}}]),
                "Failed"
            ),
            "Signal:9"
        );
        assert_eq!(status(json!([]), "Pending"), "Pending");
        let terminating = json!({"metadata": {"name": "p", "deletionTimestamp": "2026-11-25T12:00:00Z"},
            "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Running", "containerStatuses": [{"ready": true, "state": {"running": {}}}]}});
        assert_eq!(cells("pods", terminating)[2], "Terminating");
        let init = json!({"metadata": {"name": "p"}, "spec": {"initContainers": [{"name": "i1"}, {"name": "i2"}], "containers": [{"name": "a"}]},
            "status": {"phase": "Pending", "initContainerStatuses": [
                {"name": "i1", "state": {"terminated": {"exitCode": 0}}},
                {"name": "i2", "state": {"running": {}}}],
                "containerStatuses": [{"name": "a", "state": {"waiting": {"reason": "PodInitializing"}}}]}});
        assert_eq!(cells("pods", init)[2], "Init:1/2");
        let t = table(
            "pods",
            &[&json!({"metadata": {"name": "x"}, "status": {"phase": "Succeeded"}})],
            IncludeObject::None,
            "1",
            now(),
        );
        assert_eq!(t["rows"][0]["conditions"][0]["type"], "Completed");
        assert!(t["rows"][0].get("object").is_none());
    }

    #[test]
    fn table_envelope_and_objects() {
        let obj = json!({"kind": "ConfigMap", "metadata": {"name": "c", "namespace": "ns1", "labels": {"a": "b"}}, "data": {"x": "1", "y": "2"}});
        let t = table("configmaps", &[&obj], IncludeObject::Metadata, "127", now());
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(t["metadata"]["resourceVersion"], "127");
        assert_eq!(t["columnDefinitions"][0]["format"], "name");
        assert_eq!(
            t["rows"][0]["object"],
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]})
        );
        assert_eq!(t["rows"][0]["cells"], json!(["c", 2, "<unknown>"]));
        let t = table("configmaps", &[&obj], IncludeObject::Object, "127", now());
        assert_eq!(t["rows"][0]["object"], obj);
        assert_eq!(
            IncludeObject::from_query(Some("Object")),
            IncludeObject::Object
        );
        assert_eq!(IncludeObject::from_query(None), IncludeObject::Metadata);
    }

    #[test]
    fn workload_rows() {
        let d = json!({"metadata": {"name": "web", "creationTimestamp": "2026-11-25T09:00:00Z"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"tier": "f", "app": "web"}, "matchExpressions": [{"key": "env", "operator": "In", "values": ["b", "a"]}]},
              "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}, {"name": "side", "image": "busybox"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        assert_eq!(
            cells("deployments", d.clone()),
            [
                json!("web"),
                json!("2/3"),
                json!(3),
                json!(2),
                json!("3h"),
                json!("nginx,side"),
                json!("nginx:1.27,busybox"),
                json!("app=web,env in (a,b),tier=f")
            ]
        );
        assert_eq!(
            column_names("deployments")
                .iter()
                .map(|c| c.0.as_str())
                .collect::<Vec<_>>(),
            [
                "Name",
                "Ready",
                "Up-to-date",
                "Available",
                "Age",
                "Containers",
                "Images",
                "Selector"
            ]
        );
        let rs = json!({"metadata": {"name": "web-abc", "creationTimestamp": "2026-11-23T09:00:00Z"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": {"spec": {"containers": [{"name": "n", "image": "i"}]}}},
            "status": {"replicas": 3, "readyReplicas": 1}});
        assert_eq!(
            cells("replicasets", rs),
            [
                json!("web-abc"),
                json!(3),
                json!(3),
                json!(1),
                json!("2d3h"),
                json!("n"),
                json!("i"),
                json!("app=web")
            ]
        );
    }

    #[test]
    fn job_rows() {
        assert_eq!(
            column_names("jobs"),
            [
                ("Name".to_string(), 0),
                ("Status".to_string(), 0),
                ("Completions".to_string(), 0),
                ("Duration".to_string(), 0),
                ("Age".to_string(), 0),
                ("Containers".to_string(), 1),
                ("Images".to_string(), 1),
                ("Selector".to_string(), 1),
            ]
        );
        let base = json!({"metadata": {"name": "pi", "creationTimestamp": "2026-11-25T11:00:00Z"},
            "spec": {"completions": 3, "parallelism": 1,
              "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}},
              "template": {"spec": {"containers": [{"name": "pi", "image": "perl:5.34"}]}}}});
        // Not started yet: no duration.
        assert_eq!(
            cells("jobs", base.clone()),
            [
                json!("pi"),
                json!("Running"),
                json!("0/3"),
                json!(""),
                json!("60m"),
                json!("pi"),
                json!("perl:5.34"),
                json!("batch.kubernetes.io/controller-uid=u-1")
            ]
        );
        let with_status = |status: Value| {
            let mut j = base.clone();
            j["status"] = status;
            cells("jobs", j)
        };
        // Running: the duration runs until now.
        let running =
            with_status(json!({"startTime": "2026-11-25T11:58:30Z", "active": 1, "succeeded": 1}));
        assert_eq!(
            running[1..4],
            [json!("Running"), json!("1/3"), json!("90s")]
        );
        // Complete: completion minus start.
        let done = with_status(
            json!({"startTime": "2026-11-25T11:00:00Z", "completionTime": "2026-11-25T11:02:05Z",
            "succeeded": 3, "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]}),
        );
        assert_eq!(done[1..4], [json!("Complete"), json!("3/3"), json!("2m5s")]);
        for (conditions, want) in [
            (
                json!([{"type": "Failed", "status": "True"}, {"type": "FailureTarget", "status": "True"}]),
                "Failed",
            ),
            (
                json!([{"type": "Suspended", "status": "True"}]),
                "Suspended",
            ),
            (json!([{"type": "Suspended", "status": "False"}]), "Running"),
            (
                json!([{"type": "FailureTarget", "status": "True"}]),
                "FailureTarget",
            ),
            (
                json!([{"type": "SuccessCriteriaMet", "status": "True"}]),
                "SuccessCriteriaMet",
            ),
            (json!([{"type": "Complete", "status": "False"}]), "Running"),
        ] {
            assert_eq!(
                with_status(json!({"conditions": conditions}))[1],
                json!(want),
                "{conditions}"
            );
        }
        let mut deleting = base.clone();
        deleting["metadata"]["deletionTimestamp"] = json!("2026-11-25T11:59:00Z");
        assert_eq!(cells("jobs", deleting)[1], json!("Terminating"));
        // Without completions: "n/1", or "n/1 of p" with parallelism above 1.
        let mut queue = base.clone();
        queue["spec"].as_object_mut().unwrap().remove("completions");
        assert_eq!(cells("jobs", queue.clone())[2], json!("0/1"));
        queue["spec"]["parallelism"] = json!(4);
        queue["status"] = json!({"succeeded": 2});
        assert_eq!(cells("jobs", queue)[2], json!("2/1 of 4"));
    }

    #[test]
    fn service_and_endpoint_rows() {
        let svc = json!({"metadata": {"name": "web", "creationTimestamp": "2026-11-25T11:50:00Z"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.12", "clusterIPs": ["10.96.0.12"], "selector": {"app": "web"},
                     "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}});
        assert_eq!(
            cells("services", svc),
            [
                json!("web"),
                json!("NodePort"),
                json!("10.96.0.12"),
                json!("<none>"),
                json!("80:30080/TCP,53/UDP"),
                json!("10m"),
                json!("app=web")
            ]
        );
        let headless = json!({"metadata": {"name": "db"}, "spec": {"clusterIP": "None"}});
        assert_eq!(
            cells("services", headless),
            [
                json!("db"),
                json!("ClusterIP"),
                json!("None"),
                json!("<none>"),
                json!("<none>"),
                json!("<unknown>"),
                json!("<none>")
            ]
        );
        let lb = json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 443}]}});
        assert_eq!(cells("services", lb)[3], "<pending>");
        let ep = json!({"metadata": {"name": "web"}, "subsets": [{"addresses": [{"ip": "10.244.1.2"}, {"ip": "10.244.2.2"}, {"ip": "10.244.3.2"}, {"ip": "10.244.4.2"}], "ports": [{"port": 80}]}]});
        assert_eq!(
            cells("endpoints", ep)[1],
            "10.244.1.2:80,10.244.2.2:80,10.244.3.2:80 + 1 more..."
        );
        assert_eq!(
            cells("endpoints", json!({"metadata": {"name": "e"}}))[1],
            "<none>"
        );
    }

    #[test]
    fn node_namespace_config_rows() {
        let node = json!({"metadata": {"name": "node1", "creationTimestamp": "2026-10-16T12:00:00Z", "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "True"}], "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
                       "nodeInfo": {"kubeletVersion": "v1.32.0", "osImage": "Debian", "kernelVersion": "6.1", "containerRuntimeVersion": "berth://0.1"}}});
        assert_eq!(
            cells("nodes", node),
            [
                json!("node1"),
                json!("Ready,SchedulingDisabled"),
                json!("control-plane"),
                json!("40d"),
                json!("v1.32.0"),
                json!("10.0.0.1"),
                json!("<none>"),
                json!("Debian"),
                json!("6.1"),
                json!("berth://0.1")
            ]
        );
        let down = json!({"metadata": {"name": "n2"}, "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
        assert_eq!(cells("nodes", down)[1], "NotReady");
        assert_eq!(
            cells("nodes", json!({"metadata": {"name": "n3"}}))[1],
            "Unknown"
        );
        let ns = json!({"metadata": {"name": "default", "creationTimestamp": "2026-11-25T11:59:55Z"}, "status": {"phase": "Active"}});
        assert_eq!(
            cells("namespaces", ns),
            [json!("default"), json!("Active"), json!("5s")]
        );
        let sec = json!({"metadata": {"name": "s"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}});
        assert_eq!(
            cells("secrets", sec),
            [
                json!("s"),
                json!("kubernetes.io/tls"),
                json!(2),
                json!("<unknown>")
            ]
        );
        assert_eq!(
            cells(
                "leases",
                json!({"metadata": {"name": "l"}, "spec": {"holderIdentity": "node1"}})
            )[1],
            "node1"
        );
        assert_eq!(
            cells("widgets", json!({"metadata": {"name": "w"}})),
            [json!("w"), json!("<unknown>")]
        );
        let pvc = json!({"metadata": {"name": "data"}, "spec": {"volumeName": "pv1", "storageClassName": "local"},
            "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]}});
        assert_eq!(
            cells("persistentvolumeclaims", pvc),
            [
                json!("data"),
                json!("Bound"),
                json!("pv1"),
                json!("1Gi"),
                json!("RWO"),
                json!("local"),
                json!("<unset>"),
                json!("<unknown>"),
                json!("<unset>")
            ]
        );
    }

    #[test]
    fn event_rows() {
        let ev = json!({"metadata": {"name": "web-1.abc"}, "type": "Warning", "reason": "BackOff", "message": " Back-off restarting \n",
            "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{a}"},
            "source": {"component": "kubelet", "host": "node1"},
            "firstTimestamp": "2026-11-25T11:00:00Z", "lastTimestamp": "2026-11-25T11:59:30Z", "count": 7});
        assert_eq!(
            cells("events", ev),
            [
                json!("30s"),
                json!("Warning"),
                json!("BackOff"),
                json!("pod/web-1"),
                json!("spec.containers{a}"),
                json!("kubelet, node1"),
                json!("Back-off restarting"),
                json!("60m"),
                json!(7),
                json!("web-1.abc")
            ]
        );
        assert_eq!(column_names("events")[0].0, "Last Seen");
    }
}
