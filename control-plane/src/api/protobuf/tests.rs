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
    assert_eq!(body, include_bytes!("../testdata/namespace.bin"));
    assert_eq!(
        decode(&body).unwrap(),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "foo"}})
    );
}

#[test]
fn captured_configmap_and_secret() {
    assert_eq!(
        decode(include_bytes!("../testdata/configmap.bin")).unwrap(),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "default"},
               "data": {"a": "1", "b": "two"}})
    );
    assert_eq!(
        decode(include_bytes!("../testdata/secret.bin")).unwrap(),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sec", "namespace": "default"},
               "data": {"pw": "czNjcjN0", "user": "YWRtaW4="}})
    );
}

#[test]
fn captured_deployment() {
    assert_eq!(
        decode(include_bytes!("../testdata/deployment.bin")).unwrap(),
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
        decode(include_bytes!("../testdata/service_clusterip.bin")).unwrap(),
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"ports": [{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080}],
                     "selector": {"app": "web"}, "type": "ClusterIP"}})
    );
    assert_eq!(
        decode(include_bytes!("../testdata/service_nodeport.bin")).unwrap(),
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "np", "namespace": "default", "labels": {"app": "np"}},
            "spec": {"ports": [{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080, "nodePort": 30080}],
                     "selector": {"app": "np"}, "type": "NodePort"}})
    );
}

#[test]
fn captured_more_generators() {
    assert_eq!(
        decode(include_bytes!("../testdata/deployment_multi.bin")).unwrap(),
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "multi", "namespace": "default", "labels": {"app": "multi"}},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "multi"}},
              "template": {"metadata": {"labels": {"app": "multi"}},
                "spec": {"containers": [{"name": "busybox", "image": "busybox"}, {"name": "nginx", "image": "nginx"}]}}}})
    );
    assert_eq!(
        decode(include_bytes!("../testdata/configmap_binary.bin")).unwrap(),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bin", "namespace": "default"},
               "binaryData": {"blob": "AAEC/w=="}})
    );
    assert_eq!(
        decode(include_bytes!("../testdata/secret_docker.bin")).unwrap(),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "reg", "namespace": "default"},
               "type": "kubernetes.io/dockerconfigjson",
               "data": {".dockerconfigjson": "eyJhdXRocyI6eyJyZWdpc3RyeS5sb2NhbCI6eyJ1c2VybmFtZSI6InUiLCJwYXNzd29yZCI6InAiLCJhdXRoIjoiZFRwdyJ9fX0="}})
    );
    assert_eq!(
        decode(include_bytes!("../testdata/service_externalname.bin")).unwrap(),
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "ext", "namespace": "default", "labels": {"app": "ext"}},
            "spec": {"selector": {"app": "ext"}, "type": "ExternalName", "externalName": "example.com"}})
    );
}

#[test]
fn captured_drain_delete_options() {
    assert_eq!(
        decode(include_bytes!("../testdata/drain.bin")).unwrap(),
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
    let body = include_bytes!("../testdata/deployment.bin");
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
