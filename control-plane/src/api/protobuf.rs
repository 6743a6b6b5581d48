//! Decodes `application/vnd.kubernetes.protobuf` request bodies (`k8s\0` + `runtime.Unknown`) into the
//! JSON the API uses, for the kinds `kubectl create <generator>`, `autoscale` and `drain` send.
//!
//! The decoder is driven by per-message field tables whose numbers follow upstream
//! `k8s.io/api/{core,apps,autoscaling,batch,rbac,authentication,authorization}/v1/generated.proto` and `apimachinery/.../meta/v1/generated.proto`.
//! Go marshals every non-pointer field, so zero values are dropped again the way `omitempty` would,
//! except for fields marked [`Emit::Present`] (pointers: `replicas: 0` matters) or [`Emit::Always`].

use base64::Engine as _;
use serde_json::{Map, Value};

/// The 4-byte prefix of every Kubernetes protobuf body.
pub const MAGIC: &[u8; 4] = b"k8s\0";

/// Decodes a protobuf request body into the object's JSON (with `apiVersion` and `kind`).
///
/// # Errors
/// A missing magic prefix, malformed protobuf, a non-empty `contentEncoding`, or a kind this
/// decoder has no table for.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let rest = body
        .strip_prefix(MAGIC.as_slice())
        .ok_or("protobuf body does not start with the \"k8s\\x00\" magic")?;
    let unknown = decode_message(rest, UNKNOWN)?;
    let api_version = unknown
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let kind = unknown
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if let Some(enc) = unknown.get("contentEncoding").and_then(Value::as_str) {
        return Err(format!("unsupported protobuf contentEncoding {enc:?}"));
    }
    let raw = match unknown.get("raw") {
        Some(Value::String(b64)) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| e.to_string())?,
        _ => Vec::new(),
    };
    let fields = kind_fields(&kind)
        .ok_or_else(|| format!("unsupported protobuf kind {api_version}/{kind}"))?;
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), Value::String(api_version));
    obj.insert("kind".into(), Value::String(kind));
    obj.extend(decode_message(&raw, fields)?);
    Ok(Value::Object(obj))
}

/// The field table of a top-level kind.
fn kind_fields(kind: &str) -> Option<&'static [F]> {
    Some(match kind {
        "Namespace" => NAMESPACE,
        "ConfigMap" => CONFIG_MAP,
        "Secret" => SECRET,
        "Service" => SERVICE,
        "Deployment" => DEPLOYMENT,
        "ReplicaSet" => REPLICA_SET,
        "Pod" => POD,
        "ServiceAccount" => SERVICE_ACCOUNT,
        "DeleteOptions" => DELETE_OPTIONS,
        "HorizontalPodAutoscaler" => HPA,
        "Job" => JOB,
        "Role" => ROLE,
        "ClusterRole" => CLUSTER_ROLE,
        "RoleBinding" | "ClusterRoleBinding" => ROLE_BINDING,
        "TokenRequest" => TOKEN_REQUEST,
        "SelfSubjectAccessReview" => SELF_SUBJECT_ACCESS_REVIEW,
        "SelfSubjectRulesReview" => SELF_SUBJECT_RULES_REVIEW,
        "SelfSubjectReview" => SELF_SUBJECT_REVIEW,
        _ => return None,
    })
}

/// When a decoded field appears in the JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emit {
    /// Dropped when zero/empty (Go `omitempty` on a value field).
    OmitEmpty,
    /// Kept whenever it is on the wire, even if zero (Go pointer fields).
    Present,
    /// Kept whenever it is on the wire (Go fields without `omitempty`).
    Always,
}

/// How a field's bytes become JSON.
#[derive(Clone, Copy)]
enum T {
    Str,
    /// `bytes` rendered as base64, as Go's JSON does for `[]byte`.
    Bytes,
    Bool,
    I32,
    I64,
    Msg(&'static [F]),
    /// An embedded struct whose fields JSON inlines into the parent (`LocalObjectReference`).
    Inline(&'static [F]),
    MapStr,
    MapBytes,
    MapQuantity,
    IntOrString,
    Quantity,
    Time,
}

struct F {
    num: u32,
    name: &'static str,
    t: T,
    repeated: bool,
    emit: Emit,
}

const fn f(num: u32, name: &'static str, t: T) -> F {
    F {
        num,
        name,
        t,
        repeated: false,
        emit: Emit::OmitEmpty,
    }
}
const fn p(num: u32, name: &'static str, t: T) -> F {
    F {
        num,
        name,
        t,
        repeated: false,
        emit: Emit::Present,
    }
}
const fn a(num: u32, name: &'static str, t: T) -> F {
    F {
        num,
        name,
        t,
        repeated: false,
        emit: Emit::Always,
    }
}
const fn r(num: u32, name: &'static str, t: T) -> F {
    F {
        num,
        name,
        t,
        repeated: true,
        emit: Emit::OmitEmpty,
    }
}

use T::*;

// k8s.io/apimachinery/pkg/runtime/generated.proto: Unknown{typeMeta 1 {apiVersion 1, kind 2}, raw 2,
// contentEncoding 3, contentType 4}.
const TYPE_META: &[F] = &[f(1, "apiVersion", Str), f(2, "kind", Str)];
const UNKNOWN: &[F] = &[
    f(1, "typeMeta", Inline(TYPE_META)),
    f(2, "raw", Bytes),
    f(3, "contentEncoding", Str),
    f(4, "contentType", Str),
];

// meta/v1
const OWNER_REFERENCE: &[F] = &[
    a(1, "kind", Str),
    a(3, "name", Str),
    a(4, "uid", Str),
    a(5, "apiVersion", Str),
    p(6, "controller", Bool),
    p(7, "blockOwnerDeletion", Bool),
];
const OBJECT_META: &[F] = &[
    f(1, "name", Str),
    f(2, "generateName", Str),
    f(3, "namespace", Str),
    f(4, "selfLink", Str),
    f(5, "uid", Str),
    f(6, "resourceVersion", Str),
    f(7, "generation", I64),
    f(8, "creationTimestamp", Time),
    p(9, "deletionTimestamp", Time),
    p(10, "deletionGracePeriodSeconds", I64),
    f(11, "labels", MapStr),
    f(12, "annotations", MapStr),
    r(13, "ownerReferences", Msg(OWNER_REFERENCE)),
    r(14, "finalizers", Str),
];
const LABEL_SELECTOR_REQUIREMENT: &[F] =
    &[a(1, "key", Str), a(2, "operator", Str), r(3, "values", Str)];
const LABEL_SELECTOR: &[F] = &[
    f(1, "matchLabels", MapStr),
    r(2, "matchExpressions", Msg(LABEL_SELECTOR_REQUIREMENT)),
];
const PRECONDITIONS: &[F] = &[p(1, "uid", Str), p(2, "resourceVersion", Str)];
const DELETE_OPTIONS: &[F] = &[
    p(1, "gracePeriodSeconds", I64),
    p(2, "preconditions", Msg(PRECONDITIONS)),
    p(3, "orphanDependents", Bool),
    p(4, "propagationPolicy", Str),
    r(5, "dryRun", Str),
    p(6, "ignoreStoreReadErrorWithClusterBreakingPotential", Bool),
];

// core/v1
const NAMESPACE_SPEC: &[F] = &[r(1, "finalizers", Str)];
const NAMESPACE_STATUS: &[F] = &[f(1, "phase", Str)];
const NAMESPACE: &[F] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "spec", Msg(NAMESPACE_SPEC)),
    f(3, "status", Msg(NAMESPACE_STATUS)),
];
const CONFIG_MAP: &[F] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "data", MapStr),
    f(3, "binaryData", MapBytes),
    p(4, "immutable", Bool),
];
const SECRET: &[F] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "data", MapBytes),
    f(3, "type", Str),
    f(4, "stringData", MapStr),
    p(5, "immutable", Bool),
];
const LOCAL_OBJECT_REFERENCE: &[F] = &[f(1, "name", Str)];
const OBJECT_REFERENCE: &[F] = &[
    f(1, "kind", Str),
    f(2, "namespace", Str),
    f(3, "name", Str),
    f(4, "uid", Str),
    f(5, "apiVersion", Str),
    f(6, "resourceVersion", Str),
    f(7, "fieldPath", Str),
];
const SERVICE_ACCOUNT: &[F] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    r(2, "secrets", Msg(OBJECT_REFERENCE)),
    r(3, "imagePullSecrets", Msg(LOCAL_OBJECT_REFERENCE)),
    p(4, "automountServiceAccountToken", Bool),
];
const SERVICE_PORT: &[F] = &[
    f(1, "name", Str),
    f(2, "protocol", Str),
    a(3, "port", I32),
    f(4, "targetPort", IntOrString),
    f(5, "nodePort", I32),
    p(6, "appProtocol", Str),
];
const CLIENT_IP_CONFIG: &[F] = &[p(1, "timeoutSeconds", I32)];
const SESSION_AFFINITY_CONFIG: &[F] = &[p(1, "clientIP", Msg(CLIENT_IP_CONFIG))];
const SERVICE_SPEC: &[F] = &[
    r(1, "ports", Msg(SERVICE_PORT)),
    f(2, "selector", MapStr),
    f(3, "clusterIP", Str),
    f(4, "type", Str),
    r(5, "externalIPs", Str),
    f(7, "sessionAffinity", Str),
    f(8, "loadBalancerIP", Str),
    r(9, "loadBalancerSourceRanges", Str),
    f(10, "externalName", Str),
    f(11, "externalTrafficPolicy", Str),
    f(12, "healthCheckNodePort", I32),
    f(13, "publishNotReadyAddresses", Bool),
    p(14, "sessionAffinityConfig", Msg(SESSION_AFFINITY_CONFIG)),
    p(17, "ipFamilyPolicy", Str),
    r(18, "clusterIPs", Str),
    r(19, "ipFamilies", Str),
    p(20, "allocateLoadBalancerNodePorts", Bool),
    p(21, "loadBalancerClass", Str),
    p(22, "internalTrafficPolicy", Str),
    p(23, "trafficDistribution", Str),
];
const SERVICE: &[F] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "spec", Msg(SERVICE_SPEC)),
];

const CONTAINER_PORT: &[F] = &[
    f(1, "name", Str),
    f(2, "hostPort", I32),
    a(3, "containerPort", I32),
    f(4, "protocol", Str),
    f(5, "hostIP", Str),
];
const OBJECT_FIELD_SELECTOR: &[F] = &[f(1, "apiVersion", Str), a(2, "fieldPath", Str)];
const RESOURCE_FIELD_SELECTOR: &[F] = &[
    f(1, "containerName", Str),
    a(2, "resource", Str),
    f(3, "divisor", Quantity),
];
const KEY_SELECTOR: &[F] = &[
    f(1, "localObjectReference", Inline(LOCAL_OBJECT_REFERENCE)),
    a(2, "key", Str),
    p(3, "optional", Bool),
];
const ENV_VAR_SOURCE: &[F] = &[
    p(1, "fieldRef", Msg(OBJECT_FIELD_SELECTOR)),
    p(2, "resourceFieldRef", Msg(RESOURCE_FIELD_SELECTOR)),
    p(3, "configMapKeyRef", Msg(KEY_SELECTOR)),
    p(4, "secretKeyRef", Msg(KEY_SELECTOR)),
];
const ENV_VAR: &[F] = &[
    a(1, "name", Str),
    f(2, "value", Str),
    p(3, "valueFrom", Msg(ENV_VAR_SOURCE)),
];
const ENV_SOURCE: &[F] = &[
    f(1, "localObjectReference", Inline(LOCAL_OBJECT_REFERENCE)),
    p(2, "optional", Bool),
];
const ENV_FROM_SOURCE: &[F] = &[
    f(1, "prefix", Str),
    p(2, "configMapRef", Msg(ENV_SOURCE)),
    p(3, "secretRef", Msg(ENV_SOURCE)),
];
const RESOURCE_CLAIM: &[F] = &[a(1, "name", Str), f(2, "request", Str)];
const RESOURCES: &[F] = &[
    f(1, "limits", MapQuantity),
    f(2, "requests", MapQuantity),
    r(3, "claims", Msg(RESOURCE_CLAIM)),
];
const VOLUME_MOUNT: &[F] = &[
    a(1, "name", Str),
    f(2, "readOnly", Bool),
    a(3, "mountPath", Str),
    f(4, "subPath", Str),
    p(5, "mountPropagation", Str),
    f(6, "subPathExpr", Str),
    p(7, "recursiveReadOnly", Str),
];
const VOLUME_DEVICE: &[F] = &[a(1, "name", Str), a(2, "devicePath", Str)];
const EXEC_ACTION: &[F] = &[r(1, "command", Str)];
const HTTP_HEADER: &[F] = &[a(1, "name", Str), a(2, "value", Str)];
const HTTP_GET_ACTION: &[F] = &[
    f(1, "path", Str),
    a(2, "port", IntOrString),
    f(3, "host", Str),
    f(4, "scheme", Str),
    r(5, "httpHeaders", Msg(HTTP_HEADER)),
];
const TCP_SOCKET_ACTION: &[F] = &[a(1, "port", IntOrString), f(2, "host", Str)];
const GRPC_ACTION: &[F] = &[a(1, "port", I32), p(2, "service", Str)];
const SLEEP_ACTION: &[F] = &[a(1, "seconds", I64)];
const PROBE_HANDLER: &[F] = &[
    p(1, "exec", Msg(EXEC_ACTION)),
    p(2, "httpGet", Msg(HTTP_GET_ACTION)),
    p(3, "tcpSocket", Msg(TCP_SOCKET_ACTION)),
    p(4, "grpc", Msg(GRPC_ACTION)),
];
const PROBE: &[F] = &[
    f(1, "handler", Inline(PROBE_HANDLER)),
    f(2, "initialDelaySeconds", I32),
    f(3, "timeoutSeconds", I32),
    f(4, "periodSeconds", I32),
    f(5, "successThreshold", I32),
    f(6, "failureThreshold", I32),
    p(7, "terminationGracePeriodSeconds", I64),
];
const LIFECYCLE_HANDLER: &[F] = &[
    p(1, "exec", Msg(EXEC_ACTION)),
    p(2, "httpGet", Msg(HTTP_GET_ACTION)),
    p(3, "tcpSocket", Msg(TCP_SOCKET_ACTION)),
    p(4, "sleep", Msg(SLEEP_ACTION)),
];
const LIFECYCLE: &[F] = &[
    p(1, "postStart", Msg(LIFECYCLE_HANDLER)),
    p(2, "preStop", Msg(LIFECYCLE_HANDLER)),
];
const CAPABILITIES: &[F] = &[r(1, "add", Str), r(2, "drop", Str)];
const SECCOMP_PROFILE: &[F] = &[a(1, "type", Str), p(2, "localhostProfile", Str)];
const SECURITY_CONTEXT: &[F] = &[
    p(1, "capabilities", Msg(CAPABILITIES)),
    p(2, "privileged", Bool),
    p(4, "runAsUser", I64),
    p(5, "runAsNonRoot", Bool),
    p(6, "readOnlyRootFilesystem", Bool),
    p(7, "allowPrivilegeEscalation", Bool),
    p(8, "runAsGroup", I64),
    p(9, "procMount", Str),
    p(11, "seccompProfile", Msg(SECCOMP_PROFILE)),
];
const RESIZE_POLICY: &[F] = &[a(1, "resourceName", Str), a(2, "restartPolicy", Str)];
const CONTAINER: &[F] = &[
    a(1, "name", Str),
    f(2, "image", Str),
    r(3, "command", Str),
    r(4, "args", Str),
    f(5, "workingDir", Str),
    r(6, "ports", Msg(CONTAINER_PORT)),
    r(7, "env", Msg(ENV_VAR)),
    f(8, "resources", Msg(RESOURCES)),
    r(9, "volumeMounts", Msg(VOLUME_MOUNT)),
    p(10, "livenessProbe", Msg(PROBE)),
    p(11, "readinessProbe", Msg(PROBE)),
    p(12, "lifecycle", Msg(LIFECYCLE)),
    f(13, "terminationMessagePath", Str),
    f(14, "imagePullPolicy", Str),
    p(15, "securityContext", Msg(SECURITY_CONTEXT)),
    f(16, "stdin", Bool),
    f(17, "stdinOnce", Bool),
    f(18, "tty", Bool),
    r(19, "envFrom", Msg(ENV_FROM_SOURCE)),
    f(20, "terminationMessagePolicy", Str),
    r(21, "volumeDevices", Msg(VOLUME_DEVICE)),
    p(22, "startupProbe", Msg(PROBE)),
    r(23, "resizePolicy", Msg(RESIZE_POLICY)),
    p(24, "restartPolicy", Str),
];
const KEY_TO_PATH: &[F] = &[a(1, "key", Str), a(2, "path", Str), p(3, "mode", I32)];
const HOST_PATH: &[F] = &[a(1, "path", Str), p(2, "type", Str)];
const EMPTY_DIR: &[F] = &[f(1, "medium", Str), p(2, "sizeLimit", Quantity)];
const SECRET_VOLUME: &[F] = &[
    f(1, "secretName", Str),
    r(2, "items", Msg(KEY_TO_PATH)),
    p(3, "defaultMode", I32),
    p(4, "optional", Bool),
];
const PVC_VOLUME: &[F] = &[a(1, "claimName", Str), f(2, "readOnly", Bool)];
const CONFIG_MAP_VOLUME: &[F] = &[
    f(1, "localObjectReference", Inline(LOCAL_OBJECT_REFERENCE)),
    r(2, "items", Msg(KEY_TO_PATH)),
    p(3, "defaultMode", I32),
    p(4, "optional", Bool),
];
const VOLUME_SOURCE: &[F] = &[
    p(1, "hostPath", Msg(HOST_PATH)),
    p(2, "emptyDir", Msg(EMPTY_DIR)),
    p(6, "secret", Msg(SECRET_VOLUME)),
    p(10, "persistentVolumeClaim", Msg(PVC_VOLUME)),
    p(19, "configMap", Msg(CONFIG_MAP_VOLUME)),
];
const VOLUME: &[F] = &[
    a(1, "name", Str),
    f(2, "volumeSource", Inline(VOLUME_SOURCE)),
];
const TOLERATION: &[F] = &[
    f(1, "key", Str),
    f(2, "operator", Str),
    f(3, "value", Str),
    f(4, "effect", Str),
    p(5, "tolerationSeconds", I64),
];
const HOST_ALIAS: &[F] = &[a(1, "ip", Str), r(2, "hostnames", Str)];
const READINESS_GATE: &[F] = &[a(1, "conditionType", Str)];
const SCHEDULING_GATE: &[F] = &[a(1, "name", Str)];
const POD_SECURITY_CONTEXT: &[F] = &[
    p(2, "runAsUser", I64),
    p(3, "runAsNonRoot", Bool),
    r(4, "supplementalGroups", I64),
    p(5, "fsGroup", I64),
    p(6, "runAsGroup", I64),
    p(10, "seccompProfile", Msg(SECCOMP_PROFILE)),
];
const POD_SPEC: &[F] = &[
    r(1, "volumes", Msg(VOLUME)),
    a(2, "containers", Msg(CONTAINER)).repeated(),
    f(3, "restartPolicy", Str),
    p(4, "terminationGracePeriodSeconds", I64),
    p(5, "activeDeadlineSeconds", I64),
    f(6, "dnsPolicy", Str),
    f(7, "nodeSelector", MapStr),
    f(8, "serviceAccountName", Str),
    f(9, "serviceAccount", Str),
    f(10, "nodeName", Str),
    f(11, "hostNetwork", Bool),
    f(12, "hostPID", Bool),
    f(13, "hostIPC", Bool),
    f(14, "securityContext", Msg(POD_SECURITY_CONTEXT)),
    r(15, "imagePullSecrets", Msg(LOCAL_OBJECT_REFERENCE)),
    f(16, "hostname", Str),
    f(17, "subdomain", Str),
    f(19, "schedulerName", Str),
    r(20, "initContainers", Msg(CONTAINER)),
    p(21, "automountServiceAccountToken", Bool),
    r(22, "tolerations", Msg(TOLERATION)),
    r(23, "hostAliases", Msg(HOST_ALIAS)),
    f(24, "priorityClassName", Str),
    p(25, "priority", I32),
    p(27, "shareProcessNamespace", Bool),
    r(28, "readinessGates", Msg(READINESS_GATE)),
    p(29, "runtimeClassName", Str),
    p(30, "enableServiceLinks", Bool),
    p(31, "preemptionPolicy", Str),
    f(32, "overhead", MapQuantity),
    p(35, "setHostnameAsFQDN", Bool),
    p(37, "hostUsers", Bool),
    r(38, "schedulingGates", Msg(SCHEDULING_GATE)),
];
const POD_TEMPLATE_SPEC: &[F] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "spec", Msg(POD_SPEC)),
];
const POD: &[F] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "spec", Msg(POD_SPEC)),
];

impl F {
    const fn repeated(self) -> F {
        F {
            repeated: true,
            ..self
        }
    }
}

// apps/v1
const ROLLING_UPDATE_DEPLOYMENT: &[F] = &[
    p(1, "maxUnavailable", IntOrString),
    p(2, "maxSurge", IntOrString),
];
const DEPLOYMENT_STRATEGY: &[F] = &[
    f(1, "type", Str),
    p(2, "rollingUpdate", Msg(ROLLING_UPDATE_DEPLOYMENT)),
];
const DEPLOYMENT_SPEC: &[F] = &[
    p(1, "replicas", I32),
    p(2, "selector", Msg(LABEL_SELECTOR)),
    a(3, "template", Msg(POD_TEMPLATE_SPEC)),
    f(4, "strategy", Msg(DEPLOYMENT_STRATEGY)),
    f(5, "minReadySeconds", I32),
    p(6, "revisionHistoryLimit", I32),
    f(7, "paused", Bool),
    p(9, "progressDeadlineSeconds", I32),
];
const DEPLOYMENT: &[F] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "spec", Msg(DEPLOYMENT_SPEC)),
];
const REPLICA_SET_SPEC: &[F] = &[
    p(1, "replicas", I32),
    p(2, "selector", Msg(LABEL_SELECTOR)),
    f(3, "template", Msg(POD_TEMPLATE_SPEC)),
    f(4, "minReadySeconds", I32),
];
const REPLICA_SET: &[F] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "spec", Msg(REPLICA_SET_SPEC)),
];

// batch/v1
const POD_FAILURE_POLICY_ON_EXIT_CODES: &[F] = &[
    p(1, "containerName", Str),
    a(2, "operator", Str),
    r(3, "values", I32),
];
const POD_FAILURE_POLICY_ON_POD_CONDITIONS: &[F] = &[a(1, "type", Str), f(2, "status", Str)];
const POD_FAILURE_POLICY_RULE: &[F] = &[
    a(1, "action", Str),
    p(2, "onExitCodes", Msg(POD_FAILURE_POLICY_ON_EXIT_CODES)),
    r(
        3,
        "onPodConditions",
        Msg(POD_FAILURE_POLICY_ON_POD_CONDITIONS),
    ),
];
const POD_FAILURE_POLICY: &[F] = &[r(1, "rules", Msg(POD_FAILURE_POLICY_RULE))];
const SUCCESS_POLICY_RULE: &[F] = &[p(1, "succeededIndexes", Str), p(2, "succeededCount", I32)];
const SUCCESS_POLICY: &[F] = &[r(1, "rules", Msg(SUCCESS_POLICY_RULE))];
const JOB_SPEC: &[F] = &[
    p(1, "parallelism", I32),
    p(2, "completions", I32),
    p(3, "activeDeadlineSeconds", I64),
    p(4, "selector", Msg(LABEL_SELECTOR)),
    p(5, "manualSelector", Bool),
    a(6, "template", Msg(POD_TEMPLATE_SPEC)),
    p(7, "backoffLimit", I32),
    p(8, "ttlSecondsAfterFinished", I32),
    p(9, "completionMode", Str),
    p(10, "suspend", Bool),
    p(11, "podFailurePolicy", Msg(POD_FAILURE_POLICY)),
    p(12, "backoffLimitPerIndex", I32),
    p(13, "maxFailedIndexes", I32),
    p(14, "podReplacementPolicy", Str),
    p(15, "managedBy", Str),
    p(16, "successPolicy", Msg(SUCCESS_POLICY)),
];
const JOB_CONDITION: &[F] = &[
    a(1, "type", Str),
    a(2, "status", Str),
    f(3, "lastProbeTime", Time),
    f(4, "lastTransitionTime", Time),
    f(5, "reason", Str),
    f(6, "message", Str),
];
const UNCOUNTED_TERMINATED_PODS: &[F] = &[r(1, "succeeded", Str), r(2, "failed", Str)];
const JOB_STATUS: &[F] = &[
    r(1, "conditions", Msg(JOB_CONDITION)),
    p(2, "startTime", Time),
    p(3, "completionTime", Time),
    f(4, "active", I32),
    f(5, "succeeded", I32),
    f(6, "failed", I32),
    f(7, "completedIndexes", Str),
    p(8, "uncountedTerminatedPods", Msg(UNCOUNTED_TERMINATED_PODS)),
    p(9, "ready", I32),
    p(10, "failedIndexes", Str),
    p(11, "terminating", I32),
];
const JOB: &[F] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "spec", Msg(JOB_SPEC)),
    f(3, "status", Msg(JOB_STATUS)),
];

// autoscaling/v1
const CROSS_VERSION_OBJECT_REFERENCE: &[F] = &[
    a(1, "kind", Str),
    a(2, "name", Str),
    f(3, "apiVersion", Str),
];
const HPA_SPEC: &[F] = &[
    a(1, "scaleTargetRef", Msg(CROSS_VERSION_OBJECT_REFERENCE)),
    p(2, "minReplicas", I32),
    a(3, "maxReplicas", I32),
    p(4, "targetCPUUtilizationPercentage", I32),
];
const HPA: &[F] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "spec", Msg(HPA_SPEC)),
];

// rbac/v1
const POLICY_RULE: &[F] = &[
    r(1, "verbs", Str),
    r(2, "apiGroups", Str),
    r(3, "resources", Str),
    r(4, "resourceNames", Str),
    r(5, "nonResourceURLs", Str),
];
const ROLE: &[F] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    r(2, "rules", Msg(POLICY_RULE)),
];
const AGGREGATION_RULE: &[F] = &[r(1, "clusterRoleSelectors", Msg(LABEL_SELECTOR))];
const CLUSTER_ROLE: &[F] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    r(2, "rules", Msg(POLICY_RULE)),
    p(3, "aggregationRule", Msg(AGGREGATION_RULE)),
];
const SUBJECT: &[F] = &[
    a(1, "kind", Str),
    f(2, "apiGroup", Str),
    a(3, "name", Str),
    f(4, "namespace", Str),
];
const ROLE_REF: &[F] = &[a(1, "apiGroup", Str), a(2, "kind", Str), a(3, "name", Str)];
const ROLE_BINDING: &[F] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    r(2, "subjects", Msg(SUBJECT)),
    a(3, "roleRef", Msg(ROLE_REF)),
];

// authentication/v1
const BOUND_OBJECT_REFERENCE: &[F] = &[
    f(1, "kind", Str),
    f(2, "apiVersion", Str),
    f(3, "name", Str),
    f(4, "uid", Str),
];
const TOKEN_REQUEST_SPEC: &[F] = &[
    r(1, "audiences", Str),
    p(3, "boundObjectRef", Msg(BOUND_OBJECT_REFERENCE)),
    p(4, "expirationSeconds", I64),
];
const TOKEN_REQUEST: &[F] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    a(2, "spec", Msg(TOKEN_REQUEST_SPEC)),
];
const SELF_SUBJECT_REVIEW: &[F] = &[f(1, "metadata", Msg(OBJECT_META))];

// authorization/v1
const RESOURCE_ATTRIBUTES: &[F] = &[
    f(1, "namespace", Str),
    f(2, "verb", Str),
    f(3, "group", Str),
    f(4, "version", Str),
    f(5, "resource", Str),
    f(6, "subresource", Str),
    f(7, "name", Str),
];
const NON_RESOURCE_ATTRIBUTES: &[F] = &[f(1, "path", Str), f(2, "verb", Str)];
const SELF_SUBJECT_ACCESS_REVIEW_SPEC: &[F] = &[
    p(1, "resourceAttributes", Msg(RESOURCE_ATTRIBUTES)),
    p(2, "nonResourceAttributes", Msg(NON_RESOURCE_ATTRIBUTES)),
];
const SELF_SUBJECT_ACCESS_REVIEW: &[F] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    a(2, "spec", Msg(SELF_SUBJECT_ACCESS_REVIEW_SPEC)),
];
const SELF_SUBJECT_RULES_REVIEW_SPEC: &[F] = &[f(1, "namespace", Str)];
const SELF_SUBJECT_RULES_REVIEW: &[F] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    a(2, "spec", Msg(SELF_SUBJECT_RULES_REVIEW_SPEC)),
];

const INT_OR_STRING: &[F] = &[f(1, "type", I64), f(2, "intVal", I32), f(3, "strVal", Str)];
const QUANTITY: &[F] = &[f(1, "string", Str)];
const TIME: &[F] = &[f(1, "seconds", I64), f(2, "nanos", I32)];
const MAP_ENTRY: &[F] = &[f(1, "key", Str), f(2, "value", Bytes)];

/// One wire-format field: its number and its payload.
enum Wire<'a> {
    Varint(u64),
    Len(&'a [u8]),
    Fixed,
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut out = 0u64;
        for i in 0..10 {
            let (&b, rest) = self.buf.split_first().ok_or("truncated varint")?;
            self.buf = rest;
            out |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(out);
            }
        }
        Err("varint longer than 10 bytes".to_string())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.buf.len() < n {
            return Err("truncated protobuf field".to_string());
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn next_field(&mut self) -> Result<Option<(u32, Wire<'a>)>, String> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let num = u32::try_from(key >> 3).map_err(|_| "field number out of range")?;
        if num == 0 {
            return Err("protobuf field number 0".to_string());
        }
        let wire = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Wire::Fixed
            }
            2 => {
                let n = usize::try_from(self.varint()?).map_err(|_| "length out of range")?;
                Wire::Len(self.take(n)?)
            }
            5 => {
                self.take(4)?;
                Wire::Fixed
            }
            w => return Err(format!("unsupported protobuf wire type {w}")),
        };
        Ok(Some((num, wire)))
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Bool(b) => !b,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

fn b64(bytes: &[u8]) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn utf8(bytes: &[u8]) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| "protobuf string is not UTF-8".to_string())
}

fn expect_len<'a>(w: Wire<'a>, name: &str) -> Result<&'a [u8], String> {
    match w {
        Wire::Len(b) => Ok(b),
        _ => Err(format!("field {name}: expected a length-delimited value")),
    }
}

fn expect_varint(w: Wire<'_>, name: &str) -> Result<u64, String> {
    match w {
        Wire::Varint(v) => Ok(v),
        _ => Err(format!("field {name}: expected a varint")),
    }
}

/// Formats Unix seconds as RFC 3339 UTC (`metav1.Time` has second precision in JSON).
pub fn format_rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86400);
    let sod = secs.rem_euclid(86400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

fn decode_value(t: T, w: Wire<'_>, name: &str) -> Result<Value, String> {
    Ok(match t {
        Str => Value::String(utf8(expect_len(w, name)?)?),
        Bytes => b64(expect_len(w, name)?),
        Bool => Value::Bool(expect_varint(w, name)? != 0),
        // Negative int32s are sign-extended to 64 bits on the wire.
        I32 => Value::from(expect_varint(w, name)? as i64 as i32),
        I64 => Value::from(expect_varint(w, name)? as i64),
        Msg(fields) | Inline(fields) => {
            Value::Object(decode_message(expect_len(w, name)?, fields)?)
        }
        IntOrString => {
            let m = decode_message(expect_len(w, name)?, INT_OR_STRING)?;
            if m.get("type").and_then(Value::as_i64) == Some(1) {
                m.get("strVal")
                    .cloned()
                    .unwrap_or_else(|| Value::String(String::new()))
            } else {
                m.get("intVal").cloned().unwrap_or_else(|| Value::from(0))
            }
        }
        Quantity => decode_message(expect_len(w, name)?, QUANTITY)?
            .remove("string")
            .unwrap_or_else(|| Value::String(String::new())),
        Time => {
            let m = decode_message(expect_len(w, name)?, TIME)?;
            match m.get("seconds").and_then(Value::as_i64) {
                None | Some(0) => Value::Null,
                Some(s) => Value::String(format_rfc3339(s)),
            }
        }
        MapStr | MapBytes | MapQuantity => unreachable!("maps are decoded entry by entry"),
    })
}

fn decode_map_entry(t: T, bytes: &[u8]) -> Result<(String, Value), String> {
    let entry = decode_message(bytes, MAP_ENTRY)?;
    let key = entry
        .get("key")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let raw = match entry.get("value").and_then(Value::as_str) {
        Some(s) => base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(|e| e.to_string())?,
        None => Vec::new(),
    };
    let value = match t {
        MapStr => Value::String(utf8(&raw)?),
        MapBytes => b64(&raw),
        _ => decode_value(Quantity, Wire::Len(&raw), &key)?,
    };
    Ok((key, value))
}

fn decode_message(buf: &[u8], fields: &[F]) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    let mut present: Vec<&str> = Vec::new();
    let mut reader = Reader { buf };
    while let Some((num, wire)) = reader.next_field()? {
        // Fields this decoder does not know (newer API fields, affinity, ...) are skipped.
        let Some(fd) = fields.iter().find(|fd| fd.num == num) else {
            continue;
        };
        present.push(fd.name);
        match fd.t {
            MapStr | MapBytes | MapQuantity => {
                let (k, v) = decode_map_entry(fd.t, expect_len(wire, fd.name)?)?;
                let m = out
                    .entry(fd.name)
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(m) = m {
                    m.insert(k, v);
                }
            }
            Inline(_) => {
                if let Value::Object(m) = decode_value(fd.t, wire, fd.name)? {
                    out.extend(m);
                }
            }
            t if fd.repeated => {
                let v = decode_value(t, wire, fd.name)?;
                let list = out
                    .entry(fd.name)
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(l) = list {
                    l.push(v);
                }
            }
            t => {
                let v = decode_value(t, wire, fd.name)?;
                out.insert(fd.name.to_string(), v);
            }
        }
    }
    for fd in fields {
        if matches!(fd.t, Inline(_)) {
            continue;
        }
        let keep = match out.get(fd.name) {
            None => continue,
            Some(Value::Null) => false,
            Some(v) => match fd.emit {
                Emit::OmitEmpty => !is_empty(v),
                Emit::Present | Emit::Always => present.contains(&fd.name),
            },
        };
        if !keep {
            out.remove(fd.name);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Hand-encodes protobuf fields for tests.
    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    fn ld(num: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        varint(u64::from(num) << 3 | 2, &mut out);
        varint(payload.len() as u64, &mut out);
        out.extend_from_slice(payload);
        out
    }
    fn vi(num: u32, v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        varint(u64::from(num) << 3, &mut out);
        varint(v, &mut out);
        out
    }
    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let type_meta = [ld(1, api_version.as_bytes()), ld(2, kind.as_bytes())].concat();
        [
            MAGIC.to_vec(),
            ld(1, &type_meta),
            ld(2, raw),
            ld(3, b""),
            ld(4, b""),
        ]
        .concat()
    }

    #[test]
    fn rbac_and_auth_kinds() {
        let meta = ld(1, &ld(1, b"read-pods"));
        let subject = [
            ld(1, b"ServiceAccount"),
            ld(2, b""),
            ld(3, b"viewer"),
            ld(4, b"default"),
        ]
        .concat();
        let role_ref = [
            ld(1, b"rbac.authorization.k8s.io"),
            ld(2, b"ClusterRole"),
            ld(3, b"view"),
        ]
        .concat();
        let raw = [meta.clone(), ld(2, &subject), ld(3, &role_ref)].concat();
        let v = decode(&envelope(
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
            &raw,
        ))
        .unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": "read-pods"},
                "subjects": [{"kind": "ServiceAccount", "name": "viewer", "namespace": "default"}],
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}})
        );
        let rule = [ld(1, b"get"), ld(1, b"list"), ld(2, b""), ld(3, b"pods")].concat();
        let raw = [meta.clone(), ld(2, &rule)].concat();
        let v = decode(&envelope("rbac.authorization.k8s.io/v1", "Role", &raw)).unwrap();
        assert_eq!(
            v["rules"],
            json!([{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}])
        );
        let spec = [ld(1, b"api"), vi(4, 600)].concat();
        let raw = [ld(1, b""), ld(2, &spec)].concat();
        let v = decode(&envelope("authentication.k8s.io/v1", "TokenRequest", &raw)).unwrap();
        assert_eq!(
            v["spec"],
            json!({"audiences": ["api"], "expirationSeconds": 600})
        );
        let attrs = [
            ld(1, b"default"),
            ld(2, b"create"),
            ld(5, b"pods"),
            ld(6, b"exec"),
        ]
        .concat();
        let raw = [ld(1, b""), ld(2, &ld(1, &attrs))].concat();
        let v = decode(&envelope(
            "authorization.k8s.io/v1",
            "SelfSubjectAccessReview",
            &raw,
        ))
        .unwrap();
        assert_eq!(
            v["spec"],
            json!({"resourceAttributes": {"namespace": "default", "verb": "create", "resource": "pods", "subresource": "exec"}})
        );
        let raw = [ld(1, b""), ld(2, &ld(1, b"default"))].concat();
        let v = decode(&envelope(
            "authorization.k8s.io/v1",
            "SelfSubjectRulesReview",
            &raw,
        ))
        .unwrap();
        assert_eq!(v["spec"], json!({"namespace": "default"}));
    }

    #[test]
    fn kubectl_create_namespace_54_bytes() {
        // The body described in kubectl-wire-protocol.md §10, built by hand.
        let meta = [
            ld(1, b"foo"),
            ld(2, b""),
            ld(3, b""),
            ld(4, b""),
            ld(5, b""),
            ld(6, b""),
            vi(7, 0),
            ld(8, b""),
        ]
        .concat();
        let raw = [ld(1, &meta), ld(2, b""), ld(3, &ld(1, b""))].concat();
        let body = envelope("v1", "Namespace", &raw);
        assert_eq!(body.len(), 54);
        assert_eq!(body, include_bytes!("testdata/namespace.bin"));
        assert_eq!(
            decode(&body).unwrap(),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "foo"}})
        );
    }

    #[test]
    fn captured_configmap_and_secret() {
        assert_eq!(
            decode(include_bytes!("testdata/configmap.bin")).unwrap(),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "default"},
                   "data": {"a": "1", "b": "two"}})
        );
        assert_eq!(
            decode(include_bytes!("testdata/secret.bin")).unwrap(),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sec", "namespace": "default"},
                   "data": {"pw": "czNjcjN0", "user": "YWRtaW4="}})
        );
    }

    #[test]
    fn captured_deployment() {
        assert_eq!(
            decode(include_bytes!("testdata/deployment.bin")).unwrap(),
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                  "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]}}}})
        );
    }

    #[test]
    fn captured_services() {
        assert_eq!(
            decode(include_bytes!("testdata/service_clusterip.bin")).unwrap(),
            json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
                "spec": {"ports": [{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080}],
                         "selector": {"app": "web"}, "type": "ClusterIP"}})
        );
        assert_eq!(
            decode(include_bytes!("testdata/service_nodeport.bin")).unwrap(),
            json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "np", "namespace": "default", "labels": {"app": "np"}},
                "spec": {"ports": [{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080, "nodePort": 30080}],
                         "selector": {"app": "np"}, "type": "NodePort"}})
        );
    }

    #[test]
    fn captured_more_generators() {
        assert_eq!(
            decode(include_bytes!("testdata/deployment_multi.bin")).unwrap(),
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "multi", "namespace": "default", "labels": {"app": "multi"}},
                "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "multi"}},
                  "template": {"metadata": {"labels": {"app": "multi"}},
                    "spec": {"containers": [{"name": "busybox", "image": "busybox"}, {"name": "nginx", "image": "nginx"}]}}}})
        );
        assert_eq!(
            decode(include_bytes!("testdata/configmap_binary.bin")).unwrap(),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bin", "namespace": "default"},
                   "binaryData": {"blob": "AAEC/w=="}})
        );
        assert_eq!(
            decode(include_bytes!("testdata/secret_docker.bin")).unwrap(),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "reg", "namespace": "default"},
                   "type": "kubernetes.io/dockerconfigjson",
                   "data": {".dockerconfigjson": "eyJhdXRocyI6eyJyZWdpc3RyeS5sb2NhbCI6eyJ1c2VybmFtZSI6InUiLCJwYXNzd29yZCI6InAiLCJhdXRoIjoiZFRwdyJ9fX0="}})
        );
        assert_eq!(
            decode(include_bytes!("testdata/service_externalname.bin")).unwrap(),
            json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "ext", "namespace": "default", "labels": {"app": "ext"}},
                "spec": {"selector": {"app": "ext"}, "type": "ExternalName", "externalName": "example.com"}})
        );
    }

    #[test]
    fn captured_drain_delete_options() {
        assert_eq!(
            decode(include_bytes!("testdata/drain.bin")).unwrap(),
            json!({"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 10})
        );
        let raw = [vi(1, 0), ld(4, b"Foreground"), ld(5, b"All")].concat();
        assert_eq!(
            decode(&envelope("v1", "DeleteOptions", &raw)).unwrap(),
            json!({"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0, "propagationPolicy": "Foreground", "dryRun": ["All"]})
        );
    }

    #[test]
    fn hand_built_pod_covers_field_kinds() {
        let owner = [
            ld(1, b"ReplicaSet"),
            ld(3, b"web-abc"),
            ld(4, b"u1"),
            ld(5, b"apps/v1"),
            vi(6, 1),
        ]
        .concat();
        let time = [vi(1, 1_764_072_000), vi(2, 0)].concat();
        let meta = [
            ld(1, b"p"),
            ld(8, &time),
            ld(12, &[ld(1, b"a/b"), ld(2, b"c")].concat()),
            ld(13, &owner),
            ld(14, b"f1"),
            ld(14, b"f2"),
        ]
        .concat();
        let quantity = ld(1, b"500m");
        let resources = ld(2, &[ld(1, b"cpu"), ld(2, &quantity)].concat());
        let probe = [
            ld(
                1,
                &ld(
                    2,
                    &[
                        ld(1, b"/healthz"),
                        ld(2, &[vi(1, 1), ld(3, b"http")].concat()),
                    ]
                    .concat(),
                ),
            ),
            vi(2, 5),
        ]
        .concat();
        let env = [
            ld(1, b"K"),
            ld(3, &ld(3, &[ld(1, &ld(1, b"cfg")), ld(2, b"key")].concat())),
        ]
        .concat();
        let container = [
            ld(1, b"app"),
            ld(2, b"busybox"),
            ld(3, b"sh"),
            ld(3, b"-c"),
            ld(7, &env),
            ld(8, &resources),
            ld(10, &probe),
            vi(99, 7),
        ]
        .concat();
        let volume = [ld(1, b"scratch"), ld(2, &ld(2, b""))].concat();
        let spec = [
            ld(1, &volume),
            ld(2, &container),
            ld(3, b"Never"),
            vi(4, 0),
            vi(25, u64::MAX),
            ld(7, &[ld(1, b"disk"), ld(2, b"ssd")].concat()),
        ]
        .concat();
        let raw = [ld(1, &meta), ld(2, &spec)].concat();
        assert_eq!(
            decode(&envelope("v1", "Pod", &raw)).unwrap(),
            json!({"apiVersion": "v1", "kind": "Pod",
              "metadata": {"name": "p", "creationTimestamp": "2025-11-25T12:00:00Z", "annotations": {"a/b": "c"},
                "ownerReferences": [{"kind": "ReplicaSet", "name": "web-abc", "uid": "u1", "apiVersion": "apps/v1", "controller": true}],
                "finalizers": ["f1", "f2"]},
              "spec": {"volumes": [{"name": "scratch", "emptyDir": {}}],
                "containers": [{"name": "app", "image": "busybox", "command": ["sh", "-c"],
                  "env": [{"name": "K", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "key"}}}],
                  "resources": {"requests": {"cpu": "500m"}},
                  "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "initialDelaySeconds": 5}}],
                "restartPolicy": "Never", "terminationGracePeriodSeconds": 0, "priority": -1, "nodeSelector": {"disk": "ssd"}}})
        );
    }

    #[test]
    fn hand_built_job_as_kubectl_create_job_sends_it() {
        // `kubectl create job pi --image=perl:5.34 -- perl -e 1`: Go marshals every non-pointer
        // field, so the empty ObjectMeta strings, the template's metadata and the status counters
        // are all on the wire.
        let empty_meta = [
            ld(1, b""),
            ld(2, b""),
            ld(3, b""),
            ld(4, b""),
            ld(5, b""),
            ld(6, b""),
            vi(7, 0),
            ld(8, b""),
        ]
        .concat();
        let meta = [
            ld(1, b"pi"),
            ld(2, b""),
            ld(3, b"default"),
            ld(4, b""),
            ld(5, b""),
            ld(6, b""),
            vi(7, 0),
            ld(8, b""),
        ]
        .concat();
        let container = [
            ld(1, b"pi"),
            ld(2, b"perl:5.34"),
            ld(3, b"perl"),
            ld(3, b"-e"),
            ld(3, b"1"),
            ld(5, b""),
            ld(8, b""),
            ld(13, b""),
            ld(14, b""),
            vi(16, 0),
            vi(17, 0),
            vi(18, 0),
            ld(20, b""),
        ]
        .concat();
        let pod_spec = [
            ld(2, &container),
            ld(3, b"Never"),
            ld(6, b""),
            ld(8, b""),
            ld(9, b""),
            ld(10, b""),
            vi(11, 0),
            vi(12, 0),
            vi(13, 0),
            ld(16, b""),
            ld(17, b""),
            ld(19, b""),
            ld(24, b""),
        ]
        .concat();
        let template = [ld(1, &empty_meta), ld(2, &pod_spec)].concat();
        let spec = ld(6, &template);
        let status = [vi(4, 0), vi(5, 0), vi(6, 0), ld(7, b"")].concat();
        let raw = [ld(1, &meta), ld(2, &spec), ld(3, &status)].concat();
        assert_eq!(
            decode(&envelope("batch/v1", "Job", &raw)).unwrap(),
            json!({"apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": "pi", "namespace": "default"},
                "spec": {"template": {"spec": {
                    "containers": [{"name": "pi", "image": "perl:5.34", "command": ["perl", "-e", "1"]}],
                    "restartPolicy": "Never"}}}})
        );
    }

    #[test]
    fn hand_built_job_with_pointers_and_status() {
        let selector = ld(1, &[ld(1, b"app"), ld(2, b"q")].concat());
        let rule = [
            ld(1, b"FailJob"),
            ld(2, &[ld(2, b"In"), vi(3, 42), vi(3, 43)].concat()),
        ]
        .concat();
        let spec = [
            vi(1, 0),
            vi(2, 5),
            vi(3, 600),
            ld(4, &selector),
            vi(5, 1),
            ld(6, b""),
            vi(7, 0),
            vi(8, 100),
            ld(9, b"Indexed"),
            vi(10, 0),
            ld(11, &ld(1, &rule)),
            ld(14, b"Failed"),
        ]
        .concat();
        let time = |s: u64| vi(1, s);
        let condition = [
            ld(1, b"Complete"),
            ld(2, b"True"),
            ld(3, b""),
            ld(4, &time(1_764_072_120)),
            ld(5, b""),
            ld(6, b""),
        ]
        .concat();
        let status = [
            ld(1, &condition),
            ld(2, &time(1_764_072_000)),
            ld(3, &time(1_764_072_120)),
            vi(4, 0),
            vi(5, 5),
            vi(6, 1),
            ld(7, b"0-4"),
            ld(8, b""),
            vi(9, 0),
            vi(11, 0),
        ]
        .concat();
        let raw = [ld(1, &ld(1, b"q")), ld(2, &spec), ld(3, &status)].concat();
        assert_eq!(
            decode(&envelope("batch/v1", "Job", &raw)).unwrap(),
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "q"},
                "spec": {"parallelism": 0, "completions": 5, "activeDeadlineSeconds": 600,
                  "selector": {"matchLabels": {"app": "q"}}, "manualSelector": true, "template": {},
                  "backoffLimit": 0, "ttlSecondsAfterFinished": 100, "completionMode": "Indexed", "suspend": false,
                  "podFailurePolicy": {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42, 43]}}]},
                  "podReplacementPolicy": "Failed"},
                "status": {"conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": "2025-11-25T12:02:00Z"}],
                  "startTime": "2025-11-25T12:00:00Z", "completionTime": "2025-11-25T12:02:00Z",
                  "succeeded": 5, "failed": 1, "completedIndexes": "0-4", "uncountedTerminatedPods": {},
                  "ready": 0, "terminating": 0}})
        );
    }

    #[test]
    fn errors() {
        assert!(decode(b"{\"kind\":\"Namespace\"}")
            .unwrap_err()
            .contains("magic"));
        assert!(decode(&envelope("v1", "Frobnicator", b""))
            .unwrap_err()
            .contains("unsupported protobuf kind v1/Frobnicator"));
        let body = include_bytes!("testdata/deployment.bin");
        for cut in [10, 60, body.len() - 5] {
            assert!(decode(&body[..cut]).is_err(), "cut at {cut}");
        }
        let gz = [
            MAGIC.to_vec(),
            ld(1, &[ld(1, b"v1"), ld(2, b"Namespace")].concat()),
            ld(3, b"gzip"),
        ]
        .concat();
        assert!(decode(&gz).unwrap_err().contains("contentEncoding"));
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
