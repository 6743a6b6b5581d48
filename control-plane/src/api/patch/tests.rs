use super::*;
use proptest::prelude::*;
use serde_json::json;

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}, "finalizers": ["a"]},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
          "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
          "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
            "tolerations": [{"key": "a"}],
            "containers": [
              {"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80}],
               "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
              {"name": "sidecar", "image": "busybox"}
            ]}}}
    })
}

#[test]
fn smp_kubectl_apply_container_changes() {
    let mut d = deployment();
    let p = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "nginx"}],
        "containers": [{"env": null, "image": "nginx:1.28", "name": "nginx", "ports": [{"containerPort": 8080}]},
                       {"$patch": "delete", "name": "sidecar"}]}}}});
    strategic_merge_patch(&mut d, &p, "Deployment").unwrap();
    let c = &d["spec"]["template"]["spec"]["containers"];
    assert_eq!(c.as_array().unwrap().len(), 1);
    assert_eq!(
        c[0],
        json!({"name": "nginx", "image": "nginx:1.28", "ports": [{"containerPort": 80}, {"containerPort": 8080}]})
    );
    assert_eq!(d["spec"]["replicas"], 2);
}

#[test]
fn smp_adds_container_and_reorders() {
    let mut d = deployment();
    let p = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "init"}, {"name": "sidecar"}, {"name": "nginx"}],
        "containers": [{"name": "init", "image": "alpine"},
                       {"name": "nginx", "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}]}]}}}});
    strategic_merge_patch(&mut d, &p, "Deployment").unwrap();
    let c = d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    let names: Vec<&str> = c.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["init", "sidecar", "nginx"]);
    assert_eq!(
        c[2]["env"],
        json!([{"name": "A", "value": "1"}, {"name": "B", "value": "3"}, {"name": "C", "value": "4"}])
    );
    assert_eq!(c[2]["image"], "nginx:1.27");
}

#[test]
fn smp_service_ports_by_port() {
    let mut s = json!({"kind": "Service", "spec": {"ports": [{"port": 80, "targetPort": 80}, {"port": 443}]}});
    let p = json!({"spec": {"$setElementOrder/ports": [{"port": 8080}, {"port": 443}],
        "ports": [{"port": 8080, "targetPort": 80}, {"$patch": "delete", "port": 80}]}});
    strategic_merge_patch(&mut s, &p, "Service").unwrap();
    assert_eq!(
        s["spec"]["ports"],
        json!([{"port": 8080, "targetPort": 80}, {"port": 443}])
    );
}

#[test]
fn smp_replace_lists_without_merge_key_and_directives() {
    let mut d = deployment();
    let p = json!({"spec": {"template": {"spec": {"tolerations": [{"key": "b"}]}}}});
    strategic_merge_patch(&mut d, &p, "Deployment").unwrap();
    assert_eq!(
        d["spec"]["template"]["spec"]["tolerations"],
        json!([{"key": "b"}])
    );

    let mut d = deployment();
    let p = json!({"metadata": {"finalizers": ["b", "a"]},
                   "spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"},
                            "selector": {"$patch": "replace", "matchLabels": {"x": "y"}}}});
    strategic_merge_patch(&mut d, &p, "Deployment").unwrap();
    assert_eq!(d["metadata"]["finalizers"], json!(["a", "b"]));
    assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}));
    assert_eq!(d["spec"]["selector"], json!({"matchLabels": {"x": "y"}}));

    let mut d = deployment();
    let p = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]},
        "spec": {"template": {"spec": {"containers": [{"$patch": "replace"}, {"name": "only", "image": "x"}]}}}});
    strategic_merge_patch(&mut d, &p, "Deployment").unwrap();
    assert_eq!(d["metadata"]["finalizers"], json!([]));
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"],
        json!([{"name": "only", "image": "x"}])
    );

    let mut n = json!({"spec": {"unschedulable": true, "podCIDR": "10.244.1.0/24"}});
    strategic_merge_patch(&mut n, &json!({"spec": {"unschedulable": null}}), "Node").unwrap();
    assert_eq!(n, json!({"spec": {"podCIDR": "10.244.1.0/24"}}));
}

#[test]
fn smp_errors_leave_target_unchanged() {
    let mut d = deployment();
    let before = d.clone();
    let p =
        json!({"spec": {"replicas": 5, "template": {"spec": {"containers": [{"image": "x"}]}}}});
    let err = strategic_merge_patch(&mut d, &p, "Deployment").unwrap_err();
    assert!(
        err.contains("does not contain declared merge key: name"),
        "{err}"
    );
    assert_eq!(d, before);
    assert!(strategic_merge_patch(&mut d, &json!([1]), "Deployment").is_err());
    assert!(
        strategic_merge_patch(&mut d, &json!({"spec": {"$patch": "bogus"}}), "Deployment").is_err()
    );
    assert_eq!(d, before);
}

#[test]
fn smp_conditions_and_owner_references() {
    let mut rs = json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}]},
        "status": {"conditions": [{"type": "A", "status": "True"}, {"type": "B", "status": "False"}]}});
    let p = json!({"metadata": {"ownerReferences": [{"uid": "2", "name": "b"}]},
        "status": {"conditions": [{"type": "B", "status": "True"}]}});
    strategic_merge_patch(&mut rs, &p, "ReplicaSet").unwrap();
    assert_eq!(
        rs["metadata"]["ownerReferences"].as_array().unwrap().len(),
        2
    );
    assert_eq!(
        rs["status"]["conditions"][1],
        json!({"type": "B", "status": "True"})
    );
}

#[test]
fn json_patch_operations() {
    let mut d = json!({"a": {"b": [1, 2]}, "c/d": 1, "e~f": 2});
    let p = json!([
        {"op": "add", "path": "/a/b/-", "value": 3},
        {"op": "add", "path": "/a/b/0", "value": 0},
        {"op": "remove", "path": "/c~1d"},
        {"op": "replace", "path": "/e~0f", "value": 5},
        {"op": "copy", "from": "/a/b", "path": "/g"},
        {"op": "move", "from": "/g/0", "path": "/h"},
        {"op": "test", "path": "/h", "value": 0}
    ]);
    json_patch(&mut d, &p).unwrap();
    assert_eq!(
        d,
        json!({"a": {"b": [0, 1, 2, 3]}, "e~f": 5, "g": [1, 2, 3], "h": 0})
    );

    let before = d.clone();
    for bad in [
        json!([{"op": "replace", "path": "/zz", "value": 1}]),
        json!([{"op": "add", "path": "/a/b/9", "value": 1}]),
        json!([{"op": "remove", "path": "/a/b/01"}]),
        json!([{"op": "add", "path": "/x", "value": 1}, {"op": "test", "path": "/h", "value": 1}]),
        json!([{"op": "move", "from": "/a", "path": "/a/c"}]),
        json!([{"op": "frob", "path": "/a"}]),
        json!([{"op": "add", "path": "a"}]),
        json!({"op": "add"}),
    ] {
        assert!(json_patch(&mut d, &bad).is_err(), "{bad}");
        assert_eq!(d, before);
    }
}

/// Fuzz-style hostile input: each `copy` of the root doubles the document, so 64 of them would
/// ask for 2^64 times the object; the accumulated copy size stops it, as kube-apiserver does.
#[test]
fn json_patch_copy_amplification_is_refused() {
    let mut d = json!({"a": "x".repeat(1024)});
    let doubling: Vec<Value> = (0..64)
        .map(|i| json!({"op": "copy", "from": "", "path": format!("/c{i}")}))
        .collect();
    let err = json_patch(&mut d, &Value::Array(doubling)).unwrap_err();
    assert!(err.starts_with("Unable to complete the copy"), "{err}");
    assert_eq!(
        d,
        json!({"a": "x".repeat(1024)}),
        "a refused patch changes nothing"
    );

    let too_many = vec![json!({"op": "test", "path": "/a", "value": "x"}); 10_001];
    let err = json_patch(&mut d, &Value::Array(too_many)).unwrap_err();
    assert_eq!(
        err,
        "The allowed maximum operations in a JSON patch is 10000, but found 10001"
    );
    // Copies within the limit still apply.
    let few = json!([{"op": "copy", "from": "/a", "path": "/b"}]);
    json_patch(&mut d, &few).unwrap();
    assert_eq!(d["b"], d["a"]);
}

#[test]
fn json_patch_rollout_undo_shape() {
    let mut d = deployment();
    let p = json!([{"op": "replace", "path": "/spec/template", "value": {"spec": {"containers": []}}},
                   {"op": "replace", "path": "/metadata/annotations", "value": {"x": "1"}}]);
    // Replacing a missing key (`annotations`) is an error, as in the real server.
    assert!(json_patch(&mut d, &p).is_err());
    let p = json!([{"op": "replace", "path": "/spec/template", "value": {"spec": {"containers": []}}},
                   {"op": "add", "path": "/metadata/annotations", "value": {"x": "1"}}]);
    json_patch(&mut d, &p).unwrap();
    assert_eq!(d["metadata"]["annotations"]["x"], "1");
    assert_eq!(d["spec"]["template"], json!({"spec": {"containers": []}}));
}

#[test]
fn apply_keeps_omitted_fields_and_status() {
    let live = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "uid": "u1", "resourceVersion": "7", "labels": {"app": "web", "extra": "x"},
                     "annotations": {"deployment.kubernetes.io/revision": "1"}},
        "spec": {"replicas": 3, "paused": false, "template": {"spec": {"containers": [{"name": "n", "image": "a", "imagePullPolicy": "Always"}]}}},
        "status": {"replicas": 3}});
    let applied = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "uid": "other", "labels": {"app": "web", "tier": "t"}},
        "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "n", "image": "b"}]}}},
        "status": {"replicas": 99}});
    let out = apply_patch(Some(&live), &applied, "Deployment").unwrap();
    assert_eq!(out["metadata"]["uid"], "u1");
    assert_eq!(out["metadata"]["resourceVersion"], "7");
    assert_eq!(
        out["metadata"]["labels"],
        json!({"app": "web", "extra": "x", "tier": "t"})
    );
    assert_eq!(
        out["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );
    assert_eq!(out["spec"]["replicas"], 2);
    assert_eq!(out["spec"]["paused"], false);
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0],
        json!({"name": "n", "image": "b", "imagePullPolicy": "Always"})
    );
    assert_eq!(out["status"], json!({"replicas": 3}));
    assert_eq!(apply_patch(None, &applied, "Deployment").unwrap(), applied);
    assert!(apply_patch(None, &json!("x"), "Deployment").is_err());
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        (-5i64..5).prop_map(Value::from),
        "[a-c]{0,2}".prop_map(Value::from),
    ]
}

/// JSON without nulls inside objects (a merge patch cannot express those).
fn json_no_null() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            proptest::collection::btree_map("[a-d]", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Object-rooted patches over plain maps (and replaced arrays), with nulls as deletions.
fn patch_json() -> impl Strategy<Value = Value> {
    let l = prop_oneof![4 => leaf(), 1 => Just(Value::Null)];
    l.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(leaf(), 0..3).prop_map(Value::Array),
            proptest::collection::btree_map("[a-d]", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .prop_map(|v| if v.is_object() { v } else { json!({"a": v}) })
}

fn op_strategy() -> impl Strategy<Value = Value> {
    let path =
        proptest::collection::vec(prop_oneof!["[a-d]", "[0-3]", Just("-".to_string())], 0..3)
            .prop_map(|t| t.iter().map(|s| format!("/{s}")).collect::<String>());
    (
        prop_oneof![
            Just("add"),
            Just("remove"),
            Just("replace"),
            Just("move"),
            Just("copy"),
            Just("test")
        ],
        path.clone(),
        path,
        json_no_null(),
    )
        .prop_map(|(op, p, from, v)| json!({"op": op, "path": p, "from": from, "value": v}))
}

proptest! {
    #[test]
    fn merge_patch_of_diff_reproduces_target(a in json_no_null(), b in json_no_null()) {
        let patch = create_merge_patch(&a, &b);
        let mut t = a.clone();
        merge_patch(&mut t, &patch);
        prop_assert_eq!(t, b);
    }

    #[test]
    fn json_patch_errors_leave_value_unchanged(doc in json_no_null(), ops in proptest::collection::vec(op_strategy(), 1..4)) {
        let mut d = doc.clone();
        if json_patch(&mut d, &Value::Array(ops)).is_err() {
            prop_assert_eq!(d, doc);
        }
    }

    #[test]
    fn smp_without_directives_equals_merge_patch(doc in json_no_null(), patch in patch_json()) {
        let doc = if doc.is_object() { doc } else { json!({"z": doc}) };
        let mut a = doc.clone();
        let mut b = doc;
        merge_patch(&mut a, &patch);
        strategic_merge_patch(&mut b, &patch, "ConfigMap").unwrap();
        prop_assert_eq!(a, b);
    }
}

#[test]
fn patch_types_by_content_type_and_body_shape() {
    assert_eq!(
        PatchType::from_content_type("application/apply-patch+yaml").unwrap(),
        PatchType::Apply
    );
    assert_eq!(
        PatchType::from_content_type("application/merge-patch+json; charset=utf-8").unwrap(),
        PatchType::Merge
    );
    assert_eq!(
        PatchType::from_content_type("text/plain").unwrap_err().code,
        415
    );
    assert!(PatchType::Json.parse_body(b"{}").is_err());
    assert_eq!(
        PatchType::Apply
            .parse_body(b"metadata:\n  name: x\n")
            .unwrap()["metadata"]["name"],
        "x"
    );
    let mut d = json!({"a": 1});
    let err = PatchType::Json
        .apply(
            &mut d,
            &json!([{"op": "remove", "path": "/zz"}]),
            "ConfigMap",
        )
        .unwrap_err();
    assert_eq!(err.code, 422);
    assert!(
        err.message.starts_with("the patch could not be applied: "),
        "{}",
        err.message
    );
}
