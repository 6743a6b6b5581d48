use super::*;
use crate::api::kinds::common::config_data::{CONFIG_KEY_MSG, MAX_CONFIG_SIZE};
use apimachinery::validation::{LABEL_VALUE_MSG, QUALIFIED_NAME_MSG};
use serde_json::json;

/// The cause lines, sorted: map iteration order is not part of the contract (Go's is random).
fn lines(resource: &str, obj: Value) -> Vec<String> {
    let mut l: Vec<String> = validate(resource, &obj)
        .iter()
        .map(Cause::to_line)
        .collect();
    l.sort();
    l
}

fn sorted<S: ToString>(v: impl IntoIterator<Item = S>) -> Vec<String> {
    let mut l: Vec<String> = v.into_iter().map(|s| s.to_string()).collect();
    l.sort();
    l
}

fn deployment() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
          "template": {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]}}}})
}

fn with(mut base: Value, pointer: &str, v: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let parent = base
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("{pointer}"));
    match parent {
        Value::Array(a) => a[key.parse::<usize>().unwrap()] = v,
        other => {
            other.as_object_mut().unwrap().insert(key.to_string(), v);
        }
    }
    base
}

#[test]
fn valid_objects_have_no_causes() {
    assert_eq!(lines("deployments", deployment()), Vec::<String>::new());
    let pod = json!({"metadata": {"name": "p", "labels": {"app.kubernetes.io/name": "x"}},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "a", "image": "busybox", "env": [{"name": "A_B", "value": "1"}]}]}});
    assert_eq!(lines("pods", pod), Vec::<String>::new());
    let svc = json!({"metadata": {"name": "web"}, "spec": {"type": "NodePort", "selector": {"app": "web"},
        "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080}, {"name": "https", "port": 443, "targetPort": "https"}]}});
    assert_eq!(lines("services", svc), Vec::<String>::new());
    let headless = json!({"metadata": {"name": "db"}, "spec": {"clusterIP": "None"}});
    assert_eq!(lines("services", headless), Vec::<String>::new());
    let cm = json!({"metadata": {"name": "cfg.v1"}, "data": {"a.txt": "x", "KEY_1": "y"}});
    assert_eq!(lines("configmaps", cm), Vec::<String>::new());
    assert_eq!(
        lines("namespaces", json!({"metadata": {"name": "team-a"}})),
        Vec::<String>::new()
    );
    assert_eq!(
        lines("nodes", json!({"metadata": {"name": "node1.example"}})),
        Vec::<String>::new()
    );
    assert_eq!(
        lines(
            "pods",
            json!({"metadata": {"generateName": "web-"}, "spec": {"containers": [{"name": "a", "image": "b"}]}})
        ),
        Vec::<String>::new()
    );
}

#[test]
fn metadata_messages() {
    let cases: Vec<(&str, Value, Vec<String>)> = vec![
        ("configmaps", json!({"metadata": {"name": "Web_1"}}), vec![format!("metadata.name: Invalid value: \"Web_1\": {DNS1123_SUBDOMAIN_MSG}")]),
        ("configmaps", json!({"metadata": {}}), vec!["metadata.name: Required value: name or generateName is required".into()]),
        ("namespaces", json!({"metadata": {"name": "a.b"}}), vec![format!("metadata.name: Invalid value: \"a.b\": {DNS1123_LABEL_MSG}")]),
        ("services", json!({"metadata": {"name": "1web"}, "spec": {"ports": [{"port": 80}]}}), vec![format!("metadata.name: Invalid value: \"1web\": {DNS1035_LABEL_MSG}")]),
        ("namespaces", json!({"metadata": {"name": "a".repeat(64)}}), vec![format!("metadata.name: Invalid value: \"{}\": must be no more than 63 characters", "a".repeat(64))]),
        ("configmaps", json!({"metadata": {"name": "x", "labels": {"bad key": "ok", "k": "-bad"}}}), vec![
            format!("metadata.labels: Invalid value: \"bad key\": {QUALIFIED_NAME_MSG}"),
            format!("metadata.labels: Invalid value: \"-bad\": {LABEL_VALUE_MSG}"),
        ]),
        ("configmaps", json!({"metadata": {"name": "x", "labels": {"Example.com/a": "b"}}}), vec![
            format!("metadata.labels: Invalid value: \"Example.com/a\": prefix part {DNS1123_SUBDOMAIN_MSG}"),
        ]),
    ];
    for (res, obj, want) in cases {
        assert_eq!(lines(res, obj.clone()), sorted(want), "{obj}");
    }
    let c = &validate("configmaps", &json!({"metadata": {"name": "Web_1"}}))[0];
    assert_eq!(
        (c.reason.as_str(), c.field.as_str()),
        ("FieldValueInvalid", "metadata.name")
    );
    assert_eq!(
        validate("configmaps", &json!({"metadata": {}}))[0].reason,
        "FieldValueRequired"
    );
}

#[test]
fn deployment_messages() {
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (with(deployment(), "/spec/replicas", json!(-1)), vec!["spec.replicas: Invalid value: -1: must be greater than or equal to 0"]),
        (with(deployment(), "/spec/template/metadata/labels", json!({"app": "nginx"})),
            vec!["spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"nginx\"}: `selector` does not match template `labels`"]),
        (with(deployment(), "/spec/template/spec/containers/0/image", json!("")), vec!["spec.template.spec.containers[0].image: Required value"]),
        (with(deployment(), "/spec/template/spec/containers", json!([])), vec!["spec.template.spec.containers: Required value"]),
        (with(deployment(), "/spec/template/spec/containers/0/ports/0/containerPort", json!(70000)),
            vec!["spec.template.spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive"]),
        (with(deployment(), "/spec/template/spec/containers/0/ports/0/protocol", json!("XTP")),
            vec!["spec.template.spec.containers[0].ports[0].protocol: Unsupported value: \"XTP\": supported values: \"SCTP\", \"TCP\", \"UDP\""]),
        (with(deployment(), "/spec/template/spec/containers/0/imagePullPolicy", json!("Sometimes")),
            vec!["spec.template.spec.containers[0].imagePullPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\""]),
        (with(deployment(), "/spec/template/spec/containers/0/name", json!("")), vec!["spec.template.spec.containers[0].name: Required value"]),
        (with(deployment(), "/spec/template/spec/restartPolicy", json!("Never")), vec!["spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""]),
        (with(deployment(), "/spec/strategy", json!({"type": "BlueGreen"})), vec!["spec.strategy.type: Unsupported value: \"BlueGreen\": supported values: \"Recreate\", \"RollingUpdate\""]),
        (with(deployment(), "/spec/selector", json!({})), vec!["spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"]),
    ];
    for (obj, want) in cases {
        assert_eq!(lines("deployments", obj.clone()), sorted(want), "{obj}");
    }
    let mut d = deployment();
    d["spec"].as_object_mut().unwrap().remove("selector");
    assert_eq!(lines("deployments", d), ["spec.selector: Required value"]);
    assert_eq!(
        lines(
            "replicasets",
            with(deployment(), "/spec/replicas", json!(-3))
        ),
        ["spec.replicas: Invalid value: -3: must be greater than or equal to 0"]
    );
}

/// A Job as the server stores it after create (generated selector and labels, defaults).
fn job() -> Value {
    json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "pi", "namespace": "default", "uid": "u-1"},
        "spec": {"parallelism": 1, "completions": 1, "backoffLimit": 6, "completionMode": "NonIndexed",
          "suspend": false, "manualSelector": false, "podReplacementPolicy": "TerminatingOrFailed",
          "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}},
          "template": {"metadata": {"labels": {"batch.kubernetes.io/controller-uid": "u-1",
              "batch.kubernetes.io/job-name": "pi", "controller-uid": "u-1", "job-name": "pi"}},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "pi", "image": "perl"}]}}}})
}

#[test]
fn job_messages() {
    assert_eq!(lines("jobs", job()), Vec::<String>::new());
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (with(job(), "/spec/template/spec/restartPolicy", json!("Always")),
            vec!["spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\""]),
        (with(job(), "/spec/template/spec/restartPolicy", json!("Sometimes")), vec![
            "spec.template.spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
            "spec.template.spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"OnFailure\", \"Never\"",
        ]),
        (with(job(), "/spec/parallelism", json!(-1)), vec!["spec.parallelism: Invalid value: -1: must be greater than or equal to 0"]),
        (with(job(), "/spec/completions", json!(-2)), vec!["spec.completions: Invalid value: -2: must be greater than or equal to 0"]),
        (with(job(), "/spec/backoffLimit", json!(-3)), vec!["spec.backoffLimit: Invalid value: -3: must be greater than or equal to 0"]),
        (with(job(), "/spec/activeDeadlineSeconds", json!(-4)), vec!["spec.activeDeadlineSeconds: Invalid value: -4: must be greater than or equal to 0"]),
        (with(job(), "/spec/ttlSecondsAfterFinished", json!(-5)), vec!["spec.ttlSecondsAfterFinished: Invalid value: -5: must be greater than or equal to 0"]),
        (with(job(), "/spec/template/spec/securityContext", json!({"runAsUser": 4_294_967_296u64})), vec!["spec.template.spec.securityContext.runAsUser: Invalid value: 4294967296: must be between 0 and 2147483647, inclusive"]),
        (with(job(), "/spec/ttlSecondsAfterFinished", json!(i64::MAX)), vec!["spec.ttlSecondsAfterFinished: Invalid value: 9223372036854775807: must be less than or equal to 2147483647"]),
        (with(job(), "/spec/backoffLimit", json!(u64::MAX)), vec!["spec.backoffLimit: Invalid value: 18446744073709551615: must be an integer"]),
        (with(job(), "/spec/completionMode", json!("Sometimes")),
            vec!["spec.completionMode: Unsupported value: \"Sometimes\": supported values: \"NonIndexed\", \"Indexed\""]),
        (with(with(job(), "/spec/completionMode", json!("Indexed")), "/spec/completions", Value::Null),
            vec!["spec.completions: Required value: when completion mode is Indexed"]),
        (with(job(), "/spec/podReplacementPolicy", json!("Never")),
            vec!["spec.podReplacementPolicy: Unsupported value: \"Never\": supported values: \"Failed\", \"TerminatingOrFailed\""]),
        (with(job(), "/spec/template/spec/containers", json!([])), vec!["spec.template.spec.containers: Required value"]),
        (with(job(), "/spec/selector", Value::Null), vec!["spec.selector: Required value"]),
        // A selector the user picked without manualSelector: the server added the uid to it.
        (with(job(), "/spec/selector", json!({"matchLabels": {"app": "pi", "batch.kubernetes.io/controller-uid": "u-1"}})), vec![
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"pi\", \"batch.kubernetes.io/controller-uid\":\"u-1\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: `selector` not auto-generated",
            "spec.template.metadata.labels: Invalid value: map[string]string{\"batch.kubernetes.io/controller-uid\":\"u-1\", \"batch.kubernetes.io/job-name\":\"pi\", \"controller-uid\":\"u-1\", \"job-name\":\"pi\"}: `selector` does not match template `labels`",
        ]),
        (with(job(), "/spec/template/metadata/labels/job-name", json!("other")), vec![
            "spec.template.metadata.labels[job-name]: Invalid value: map[string]string{\"batch.kubernetes.io/controller-uid\":\"u-1\", \"batch.kubernetes.io/job-name\":\"pi\", \"controller-uid\":\"u-1\", \"job-name\":\"other\"}: must be 'pi'",
        ]),
    ];
    for (obj, want) in cases {
        assert_eq!(lines("jobs", obj.clone()), sorted(want), "{obj}");
    }
    let mut missing = job();
    missing["spec"]["template"]["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("controller-uid");
    assert_eq!(
        lines("jobs", missing),
        ["spec.template.metadata.labels[controller-uid]: Required value: must be 'u-1'"]
    );
    // With manualSelector the user's selector only has to match the template.
    let manual = json!({"metadata": {"name": "m", "uid": "u-2"},
        "spec": {"manualSelector": true, "selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["m"]}]},
          "template": {"metadata": {"labels": {"app": "m"}}, "spec": {"restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "i"}]}}}});
    assert_eq!(lines("jobs", manual.clone()), Vec::<String>::new());
    assert_eq!(
        lines("jobs", with(manual.clone(), "/spec/manualSelector", json!(false))),
        [
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement{v1.LabelSelectorRequirement{Key:\"app\", Operator:\"In\", Values:[]string{\"m\"}}}}: `selector` not auto-generated",
            "spec.template.metadata.labels[batch.kubernetes.io/controller-uid]: Required value: must be 'u-2'",
            "spec.template.metadata.labels[batch.kubernetes.io/job-name]: Required value: must be 'm'",
            "spec.template.metadata.labels[controller-uid]: Required value: must be 'u-2'",
            "spec.template.metadata.labels[job-name]: Required value: must be 'm'",
        ]
    );
    let pfp = with(
        with(manual, "/spec/podFailurePolicy", json!({"rules": []})),
        "/spec/podReplacementPolicy",
        json!("TerminatingOrFailed"),
    );
    assert_eq!(
        lines("jobs", pfp),
        [
            "spec.podReplacementPolicy: Unsupported value: \"TerminatingOrFailed\": supported values: \"Failed\"",
            "spec.template.spec.restartPolicy: Invalid value: \"OnFailure\": only \"Never\" is supported when podFailurePolicy is specified",
        ]
    );
    let c = &validate("jobs", &with(job(), "/spec/selector", Value::Null))[0];
    assert_eq!(
        (c.reason.as_str(), c.field.as_str()),
        ("FieldValueRequired", "spec.selector")
    );
}

#[test]
fn rbac_messages() {
    let rules = |r: Value| json!({"metadata": {"name": "system:x"}, "rules": r});
    assert!(lines(
        "clusterroles",
        rules(json!([{"verbs": ["*"], "nonResourceURLs": ["*"]}]))
    )
    .is_empty());
    assert!(lines(
        "roles",
        rules(json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]))
    )
    .is_empty());
    assert_eq!(
        lines("roles", rules(json!([{"verbs": [], "apiGroups": [""], "resources": ["pods"]}, {"verbs": ["get"], "nonResourceURLs": ["/x"]}, {"verbs": ["get"]}]))),
        sorted([
            "rules[0].verbs: Required value: verbs must contain at least one value",
            "rules[1].nonResourceURLs: Invalid value: []string{\"/x\"}: namespaced rules cannot apply to non-resource URLs",
            "rules[2].apiGroups: Required value: resource rules must supply at least one api group",
            "rules[2].resources: Required value: resource rules must supply at least one resource",
        ])
    );
    assert_eq!(
        lines("clusterroles", json!({"metadata": {"name": "a/b"}})),
        ["metadata.name: Invalid value: \"a/b\": may not contain '/'"]
    );
    let binding = |role_ref: Value, subjects: Value| json!({"metadata": {"name": "b"}, "roleRef": role_ref, "subjects": subjects});
    let view =
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"});
    let sa = json!([{"kind": "ServiceAccount", "name": "x"}]);
    assert!(lines("rolebindings", binding(view.clone(), sa.clone())).is_empty());
    assert_eq!(
        lines("clusterrolebindings", binding(view, sa)),
        ["subjects[0].namespace: Required value"]
    );
    assert_eq!(
        lines("rolebindings", binding(json!({}), json!([{"kind": "Robot", "name": "r"}, {"kind": "User", "name": ""}]))),
        sorted([
            "roleRef.apiGroup: Unsupported value: \"\": supported values: \"rbac.authorization.k8s.io\"",
            "roleRef.kind: Unsupported value: \"\": supported values: \"Role\", \"ClusterRole\"",
            "roleRef.name: Required value",
            "subjects[0].kind: Unsupported value: \"Robot\": supported values: \"ServiceAccount\", \"User\", \"Group\"",
            "subjects[1].apiGroup: Unsupported value: \"\": supported values: \"rbac.authorization.k8s.io\"",
            "subjects[1].name: Required value",
        ])
    );
    let old =
        json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "a"}});
    assert!(validate_update("rolebindings", &old, &old).is_empty());
    let new =
        json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "b"}});
    assert_eq!(
        validate_update("rolebindings", &old, &new)[0].to_line(),
        "roleRef: Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"Role\", Name:\"b\"}: cannot change roleRef"
    );
}

fn update_lines(old: &Value, new: Value) -> Vec<String> {
    let mut l: Vec<String> = validate_update("jobs", old, &new)
        .iter()
        .map(Cause::to_line)
        .collect();
    l.sort();
    l
}

#[test]
fn job_update_messages() {
    let old = job();
    // What may change: parallelism, suspend, backoffLimit, labels of the Job itself.
    let mut ok = with(old.clone(), "/spec/parallelism", json!(4));
    ok["spec"]["suspend"] = json!(true);
    ok["spec"]["backoffLimit"] = json!(1);
    ok["metadata"]["labels"] = json!({"x": "y"});
    assert_eq!(update_lines(&old, ok), Vec::<String>::new());
    assert!(validate_update("deployments", &deployment(), &json!({})).is_empty());

    let cases: Vec<(Value, Vec<&str>)> = vec![
        (with(old.clone(), "/spec/completions", json!(3)), vec!["spec.completions: Invalid value: 3: field is immutable"]),
        (with(old.clone(), "/spec/selector", json!({"matchLabels": {"a": "b"}})),
            vec!["spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"a\":\"b\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"]),
        (with(old.clone(), "/spec/completionMode", json!("Indexed")), vec!["spec.completionMode: Invalid value: \"Indexed\": field is immutable"]),
    ];
    for (obj, want) in cases {
        assert_eq!(update_lines(&old, obj.clone()), sorted(want), "{obj}");
    }
    let image = update_lines(
        &old,
        with(
            old.clone(),
            "/spec/template/spec/containers/0/image",
            json!("perl:2"),
        ),
    );
    assert_eq!(image.len(), 1);
    assert!(
        image[0].starts_with("spec.template: Invalid value: {"),
        "{image:?}"
    );
    assert!(image[0].ends_with(": field is immutable"), "{image:?}");

    // Indexed: completions may change together with parallelism (elastic Indexed Jobs).
    let mut indexed = with(old.clone(), "/spec/completionMode", json!("Indexed"));
    indexed["spec"]["completions"] = json!(2);
    indexed["spec"]["parallelism"] = json!(2);
    let both = with(
        with(indexed.clone(), "/spec/completions", json!(5)),
        "/spec/parallelism",
        json!(5),
    );
    assert_eq!(update_lines(&indexed, both), Vec::<String>::new());
    assert_eq!(
        update_lines(&indexed, with(indexed.clone(), "/spec/completions", json!(5))),
        ["spec.completions: Invalid value: 5: can only be modified in tandem with spec.parallelism"]
    );

    // A suspended Job that never started may move its pods (node selector, labels, tolerations).
    let suspended = with(old.clone(), "/spec/suspend", json!(true));
    let mut moved = with(
        suspended.clone(),
        "/spec/template/spec/nodeSelector",
        json!({"zone": "b"}),
    );
    moved["spec"]["template"]["metadata"]["annotations"] = json!({"a": "b"});
    assert_eq!(
        update_lines(&suspended, moved.clone()),
        Vec::<String>::new()
    );
    let mut started = suspended.clone();
    started["status"] = json!({"startTime": "2026-01-01T00:00:00Z"});
    assert_eq!(update_lines(&started, moved).len(), 1);
}

#[test]
fn pod_messages() {
    let pod = json!({"metadata": {"name": "p"}, "spec": {"restartPolicy": "Sometimes", "containers": [
        {"name": "a", "image": "x"}, {"name": "a", "image": "y", "env": [{"name": "1X"}, {"name": "A=B"}]}]}});
    assert_eq!(lines("pods", pod), sorted([
        "spec.containers[1].name: Duplicate value: \"a\"",
        "spec.containers[1].env[1].name: Invalid value: \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='",
        "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
    ]));
    assert_eq!(
        lines("pods", json!({"metadata": {"name": "p"}, "spec": {}})),
        ["spec.containers: Required value"]
    );
    assert_eq!(
        lines(
            "pods",
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "Web", "image": "x"}]}})
        ),
        [format!(
            "spec.containers[0].name: Invalid value: \"Web\": {DNS1123_LABEL_MSG}"
        )]
    );
}

#[test]
fn service_messages() {
    let svc = |spec: Value| json!({"metadata": {"name": "web"}, "spec": spec});
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (svc(json!({})), vec!["spec.ports: Required value"]),
        (svc(json!({"ports": [{"port": 0}]})), vec!["spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"]),
        (svc(json!({"ports": [{"port": 70000}]})), vec!["spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive"]),
        (svc(json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]})),
            vec!["spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767"]),
        (svc(json!({"ports": [{"port": 80, "nodePort": 30080}]})), vec!["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"]),
        (svc(json!({"type": "Magic", "ports": [{"port": 80}]})),
            vec!["spec.type: Unsupported value: \"Magic\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""]),
        (svc(json!({"ports": [{"port": 80}, {"port": 81}]})), vec!["spec.ports[0].name: Required value", "spec.ports[1].name: Required value"]),
        (svc(json!({"ports": [{"port": 80, "protocol": "ICMP"}]})), vec!["spec.ports[0].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\""]),
        (svc(json!({"ports": [{"port": 80, "targetPort": 0}]})), vec!["spec.ports[0].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive"]),
    ];
    for (obj, want) in cases {
        assert_eq!(lines("services", obj.clone()), sorted(want), "{obj}");
    }
}

#[test]
fn configmap_and_secret_messages() {
    let cm = json!({"metadata": {"name": "c"}, "data": {"bad key": "x", "..x": "y"}, "binaryData": {"ok": ""}});
    assert_eq!(
        lines("configmaps", cm),
        sorted([
            "data[..x]: Invalid value: \"..x\": must not start with '..'",
            format!("data[bad key]: Invalid value: \"bad key\": {CONFIG_KEY_MSG}").as_str(),
        ])
    );
    let cm = json!({"metadata": {"name": "c"}, "data": {"k": "x"}, "binaryData": {"k": ""}});
    assert_eq!(
        lines("configmaps", cm),
        ["binaryData[k]: Invalid value: \"k\": duplicate of key present in data"]
    );
    let big = json!({"metadata": {"name": "c"}, "data": {"k": "x".repeat(MAX_CONFIG_SIZE + 1)}});
    assert_eq!(
        lines("configmaps", big),
        ["Too long: may not be more than 1048576 bytes"]
    );
    let tls = json!({"metadata": {"name": "s"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "eA=="}});
    assert_eq!(lines("secrets", tls), ["data[tls.key]: Required value"]);
    let s = json!({"metadata": {"name": "s"}, "stringData": {"a/b": "x"}});
    assert_eq!(
        lines("secrets", s),
        [format!(
            "stringData[a/b]: Invalid value: \"a/b\": {CONFIG_KEY_MSG}"
        )]
    );
}

fn pod_with(spec: Value) -> Value {
    let mut base = json!({"containers": [{"name": "c", "image": "busybox"}]});
    for (k, v) in spec.as_object().unwrap() {
        base[k] = v.clone();
    }
    json!({"metadata": {"name": "p"}, "spec": base})
}

fn pod_lines(obj: &Value) -> Vec<String> {
    validate("pods", obj).iter().map(Cause::to_line).collect()
}

#[test]
fn volume_item_paths_stay_inside_the_volume_with_kubes_words() {
    let p = pod_with(
        json!({"volumes": [{"name": "v", "configMap": {"name": "cm", "items": [
        {"key": "a", "path": "../x"}, {"key": "b", "path": "/etc/passwd"}, {"key": "c", "path": "..data"},
        {"key": "d", "path": "ok/file"}]}}]}),
    );
    assert_eq!(
        pod_lines(&p),
        vec![
            r#"spec.volumes[0].configMap.items[0].path: Invalid value: "../x": must not contain '..'"#,
            r#"spec.volumes[0].configMap.items[1].path: Invalid value: "/etc/passwd": must be a relative path"#,
            r#"spec.volumes[0].configMap.items[2].path: Invalid value: "..data": must not start with '..'"#,
        ]
    );
    let p = pod_with(
        json!({"volumes": [{"name": "s", "secret": {"secretName": "s", "defaultMode": 4096,
        "items": [{"key": "k", "path": "a/../../b"}]}}]}),
    );
    assert_eq!(
        pod_lines(&p),
        vec![
            "spec.volumes[0].secret.defaultMode: Invalid value: 4096: must be a number between 0 and 0777 (octal), both inclusive",
            r#"spec.volumes[0].secret.items[0].path: Invalid value: "a/../../b": must not contain '..'"#,
        ]
    );
}

#[test]
fn sub_paths_claims_and_mount_names() {
    let p = pod_with(json!({
        "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "../../etc"}}],
        "containers": [{"name": "c", "image": "busybox", "volumeMounts": [
            {"name": "d", "mountPath": "/d", "subPath": "../up"},
            {"name": "d", "mountPath": "/e", "subPath": "/abs"},
            {"name": "nope", "mountPath": "/f"},
            {"name": "d", "mountPath": "/g", "mountPropagation": "Bidirectional"}]}]}));
    let l = pod_lines(&p);
    assert!(l[0].starts_with(r#"spec.volumes[0].persistentVolumeClaim.claimName: Invalid value: "../../etc": a lowercase RFC 1123 subdomain"#), "{l:?}");
    assert_eq!(
        l[1..],
        [
            r#"spec.containers[0].volumeMounts[0].subPath: Invalid value: "../up": must not contain '..'"#,
            r#"spec.containers[0].volumeMounts[1].subPath: Invalid value: "/abs": must be a relative path"#,
            r#"spec.containers[0].volumeMounts[2].name: Not found: "nope""#,
            "spec.containers[0].volumeMounts[3].mountPropagation: Forbidden: not supported by berth nodes",
        ]
    );
}

#[test]
fn security_context_fields_are_honoured_or_refused() {
    let ok = pod_with(
        json!({"securityContext": {"runAsNonRoot": true, "supplementalGroups": [1],
        "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{"name": "c", "image": "busybox", "securityContext": {
            "privileged": false, "readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}]}),
    );
    assert!(pod_lines(&ok).is_empty(), "{:?}", pod_lines(&ok));
    let bad = pod_with(
        json!({"securityContext": {"fsGroup": 2000, "seLinuxOptions": {"level": "s0"},
        "sysctls": [{"name": "kernel.panic", "value": "1"}]},
        "containers": [{"name": "c", "image": "busybox", "securityContext": {
            "privileged": true, "allowPrivilegeEscalation": false,
            "seccompProfile": {"type": "Localhost"}, "capabilities": {"add": ["NOT_A_CAP"]}}}]}),
    );
    let l = pod_lines(&bad);
    for want in [
        "spec.securityContext.seLinuxOptions: Forbidden: not supported by berth nodes",
        "spec.securityContext.fsGroup: Forbidden: not supported by berth nodes",
        r#"spec.securityContext.sysctls[0].name: Forbidden: sysctl "kernel.panic" is not one of the safe sysctls berth nodes set"#,
        "spec.containers[0].securityContext.seccompProfile.type: Forbidden: Localhost profiles are not supported by berth nodes",
        r#"spec.containers[0].securityContext.capabilities.add[0]: Invalid value: "NOT_A_CAP": must be a Linux capability name (e.g. 'NET_ADMIN') or 'ALL'"#,
        "spec.containers[0].securityContext: Invalid value: securityContext: cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
    ] {
        assert!(l.contains(&want.to_string()), "{want} not in {l:#?}");
    }
}
