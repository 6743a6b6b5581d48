//! Protobuf field tables of `core/v1` `PodSpec` and everything in it, shared by Pods and pod templates.

use super::fields::{a, LOCAL_OBJECT_REFERENCE, OBJECT_META};
use super::fields::{f, p, r, F, T::*};

pub(crate) const CONTAINER_PORT: &[F] = &[
    f(1, "name", Str),
    f(2, "hostPort", I32),
    a(3, "containerPort", I32),
    f(4, "protocol", Str),
    f(5, "hostIP", Str),
];

pub(crate) const OBJECT_FIELD_SELECTOR: &[F] = &[f(1, "apiVersion", Str), a(2, "fieldPath", Str)];

pub(crate) const RESOURCE_FIELD_SELECTOR: &[F] = &[
    f(1, "containerName", Str),
    a(2, "resource", Str),
    f(3, "divisor", Quantity),
];

pub(crate) const KEY_SELECTOR: &[F] = &[
    f(1, "localObjectReference", Inline(LOCAL_OBJECT_REFERENCE)),
    a(2, "key", Str),
    p(3, "optional", Bool),
];

pub(crate) const ENV_VAR_SOURCE: &[F] = &[
    p(1, "fieldRef", Msg(OBJECT_FIELD_SELECTOR)),
    p(2, "resourceFieldRef", Msg(RESOURCE_FIELD_SELECTOR)),
    p(3, "configMapKeyRef", Msg(KEY_SELECTOR)),
    p(4, "secretKeyRef", Msg(KEY_SELECTOR)),
];

pub(crate) const ENV_VAR: &[F] = &[
    a(1, "name", Str),
    f(2, "value", Str),
    p(3, "valueFrom", Msg(ENV_VAR_SOURCE)),
];

pub(crate) const ENV_SOURCE: &[F] = &[
    f(1, "localObjectReference", Inline(LOCAL_OBJECT_REFERENCE)),
    p(2, "optional", Bool),
];

pub(crate) const ENV_FROM_SOURCE: &[F] = &[
    f(1, "prefix", Str),
    p(2, "configMapRef", Msg(ENV_SOURCE)),
    p(3, "secretRef", Msg(ENV_SOURCE)),
];

pub(crate) const RESOURCE_CLAIM: &[F] = &[a(1, "name", Str), f(2, "request", Str)];

pub(crate) const RESOURCES: &[F] = &[
    f(1, "limits", MapQuantity),
    f(2, "requests", MapQuantity),
    r(3, "claims", Msg(RESOURCE_CLAIM)),
];

pub(crate) const VOLUME_MOUNT: &[F] = &[
    a(1, "name", Str),
    f(2, "readOnly", Bool),
    a(3, "mountPath", Str),
    f(4, "subPath", Str),
    p(5, "mountPropagation", Str),
    f(6, "subPathExpr", Str),
    p(7, "recursiveReadOnly", Str),
];

pub(crate) const VOLUME_DEVICE: &[F] = &[a(1, "name", Str), a(2, "devicePath", Str)];

pub(crate) const EXEC_ACTION: &[F] = &[r(1, "command", Str)];

pub(crate) const HTTP_HEADER: &[F] = &[a(1, "name", Str), a(2, "value", Str)];

pub(crate) const HTTP_GET_ACTION: &[F] = &[
    f(1, "path", Str),
    a(2, "port", IntOrString),
    f(3, "host", Str),
    f(4, "scheme", Str),
    r(5, "httpHeaders", Msg(HTTP_HEADER)),
];

pub(crate) const TCP_SOCKET_ACTION: &[F] = &[a(1, "port", IntOrString), f(2, "host", Str)];

pub(crate) const GRPC_ACTION: &[F] = &[a(1, "port", I32), p(2, "service", Str)];

pub(crate) const SLEEP_ACTION: &[F] = &[a(1, "seconds", I64)];

pub(crate) const PROBE_HANDLER: &[F] = &[
    p(1, "exec", Msg(EXEC_ACTION)),
    p(2, "httpGet", Msg(HTTP_GET_ACTION)),
    p(3, "tcpSocket", Msg(TCP_SOCKET_ACTION)),
    p(4, "grpc", Msg(GRPC_ACTION)),
];

pub(crate) const PROBE: &[F] = &[
    f(1, "handler", Inline(PROBE_HANDLER)),
    f(2, "initialDelaySeconds", I32),
    f(3, "timeoutSeconds", I32),
    f(4, "periodSeconds", I32),
    f(5, "successThreshold", I32),
    f(6, "failureThreshold", I32),
    p(7, "terminationGracePeriodSeconds", I64),
];

pub(crate) const LIFECYCLE_HANDLER: &[F] = &[
    p(1, "exec", Msg(EXEC_ACTION)),
    p(2, "httpGet", Msg(HTTP_GET_ACTION)),
    p(3, "tcpSocket", Msg(TCP_SOCKET_ACTION)),
    p(4, "sleep", Msg(SLEEP_ACTION)),
];

pub(crate) const LIFECYCLE: &[F] = &[
    p(1, "postStart", Msg(LIFECYCLE_HANDLER)),
    p(2, "preStop", Msg(LIFECYCLE_HANDLER)),
];

pub(crate) const CAPABILITIES: &[F] = &[r(1, "add", Str), r(2, "drop", Str)];

pub(crate) const SECCOMP_PROFILE: &[F] = &[a(1, "type", Str), p(2, "localhostProfile", Str)];

pub(crate) const SECURITY_CONTEXT: &[F] = &[
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

pub(crate) const RESIZE_POLICY: &[F] = &[a(1, "resourceName", Str), a(2, "restartPolicy", Str)];

pub(crate) const CONTAINER: &[F] = &[
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

pub(crate) const KEY_TO_PATH: &[F] = &[a(1, "key", Str), a(2, "path", Str), p(3, "mode", I32)];

pub(crate) const HOST_PATH: &[F] = &[a(1, "path", Str), p(2, "type", Str)];

pub(crate) const EMPTY_DIR: &[F] = &[f(1, "medium", Str), p(2, "sizeLimit", Quantity)];

pub(crate) const SECRET_VOLUME: &[F] = &[
    f(1, "secretName", Str),
    r(2, "items", Msg(KEY_TO_PATH)),
    p(3, "defaultMode", I32),
    p(4, "optional", Bool),
];

pub(crate) const PVC_VOLUME: &[F] = &[a(1, "claimName", Str), f(2, "readOnly", Bool)];

pub(crate) const CONFIG_MAP_VOLUME: &[F] = &[
    f(1, "localObjectReference", Inline(LOCAL_OBJECT_REFERENCE)),
    r(2, "items", Msg(KEY_TO_PATH)),
    p(3, "defaultMode", I32),
    p(4, "optional", Bool),
];

pub(crate) const VOLUME_SOURCE: &[F] = &[
    p(1, "hostPath", Msg(HOST_PATH)),
    p(2, "emptyDir", Msg(EMPTY_DIR)),
    p(6, "secret", Msg(SECRET_VOLUME)),
    p(10, "persistentVolumeClaim", Msg(PVC_VOLUME)),
    p(19, "configMap", Msg(CONFIG_MAP_VOLUME)),
];

pub(crate) const VOLUME: &[F] = &[
    a(1, "name", Str),
    f(2, "volumeSource", Inline(VOLUME_SOURCE)),
];

pub(crate) const TOLERATION: &[F] = &[
    f(1, "key", Str),
    f(2, "operator", Str),
    f(3, "value", Str),
    f(4, "effect", Str),
    p(5, "tolerationSeconds", I64),
];

pub(crate) const HOST_ALIAS: &[F] = &[a(1, "ip", Str), r(2, "hostnames", Str)];

pub(crate) const READINESS_GATE: &[F] = &[a(1, "conditionType", Str)];

pub(crate) const SCHEDULING_GATE: &[F] = &[a(1, "name", Str)];

pub(crate) const POD_SECURITY_CONTEXT: &[F] = &[
    p(2, "runAsUser", I64),
    p(3, "runAsNonRoot", Bool),
    r(4, "supplementalGroups", I64),
    p(5, "fsGroup", I64),
    p(6, "runAsGroup", I64),
    p(10, "seccompProfile", Msg(SECCOMP_PROFILE)),
];

pub(crate) const POD_SPEC: &[F] = &[
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

pub(crate) const POD_TEMPLATE_SPEC: &[F] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "spec", Msg(POD_SPEC)),
];
