//! PATCH bodies: JSON merge patch (RFC 7386), strategic merge patch as kubectl produces it, JSON patch
//! (RFC 6902), and server-side apply without field ownership. Pure functions over `serde_json::Value`.

use serde_json::{Map, Value};

/// Applies an RFC 7386 JSON merge patch: objects merge recursively, `null` deletes a key, anything else
/// (arrays included) replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("just made an object");
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// Computes the RFC 7386 merge patch that turns `original` into `modified` (the inverse of
/// [`merge_patch`]). `null` values inside objects of `modified` cannot be expressed and are dropped.
pub fn create_merge_patch(original: &Value, modified: &Value) -> Value {
    match (original, modified) {
        (Value::Object(o), Value::Object(m)) => {
            let mut out = Map::new();
            for k in o.keys() {
                if !m.contains_key(k) {
                    out.insert(k.clone(), Value::Null);
                }
            }
            for (k, mv) in m {
                match o.get(k) {
                    Some(ov) if ov == mv => {}
                    Some(ov @ Value::Object(_)) if mv.is_object() => {
                        out.insert(k.clone(), create_merge_patch(ov, mv));
                    }
                    _ => {
                        out.insert(k.clone(), mv.clone());
                    }
                }
            }
            Value::Object(out)
        }
        _ => modified.clone(),
    }
}

/// How a list field is merged by a strategic merge patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListStrategy {
    /// The patch's list replaces the live list (`atomic`; the default for unknown fields).
    Replace,
    /// Items are objects merged by the value of this key (`patchMergeKey`).
    MergeKey(&'static str),
    /// A set of primitives: patch items are added when missing (`metadata.finalizers`).
    MergePrimitives,
}

/// Where the `PodSpec` lives inside an object of `kind`.
fn pod_spec_prefix(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "Pod" => &["spec"],
        "PodTemplate" => &["template", "spec"],
        "Deployment"
        | "ReplicaSet"
        | "StatefulSet"
        | "DaemonSet"
        | "Job"
        | "ReplicationController" => &["spec", "template", "spec"],
        "CronJob" => &["spec", "jobTemplate", "spec", "template", "spec"],
        _ => return None,
    })
}

/// The patch strategy of the list at `path` (field names only, list indices omitted) in an object of
/// `kind`, following the `patchStrategy`/`patchMergeKey` tags of `k8s.io/api`.
pub fn list_strategy(kind: &str, path: &[String]) -> ListStrategy {
    use ListStrategy::*;
    let p: Vec<&str> = path.iter().map(String::as_str).collect();
    match p.as_slice() {
        ["metadata", "ownerReferences"] => return MergeKey("uid"),
        ["metadata", "finalizers"] => return MergePrimitives,
        ["status", "conditions"] => return MergeKey("type"),
        _ => {}
    }
    if let Some(prefix) = pod_spec_prefix(kind) {
        if let Some(rest) = p.strip_prefix(prefix) {
            let s = match rest {
                ["containers" | "initContainers" | "ephemeralContainers"] => MergeKey("name"),
                ["containers" | "initContainers" | "ephemeralContainers", "ports"] => {
                    MergeKey("containerPort")
                }
                ["containers" | "initContainers" | "ephemeralContainers", "env"] => {
                    MergeKey("name")
                }
                ["containers" | "initContainers" | "ephemeralContainers", "volumeMounts"] => {
                    MergeKey("mountPath")
                }
                ["containers" | "initContainers" | "ephemeralContainers", "volumeDevices"] => {
                    MergeKey("devicePath")
                }
                ["volumes" | "imagePullSecrets" | "resourceClaims" | "schedulingGates"] => {
                    MergeKey("name")
                }
                ["hostAliases"] => MergeKey("ip"),
                ["topologySpreadConstraints"] => MergeKey("topologyKey"),
                _ => Replace,
            };
            return s;
        }
    }
    match (kind, p.as_slice()) {
        ("Pod", ["status", "podIPs" | "hostIPs"]) => MergeKey("ip"),
        ("Pod", ["status", "resourceClaimStatuses"]) => MergeKey("name"),
        ("Service", ["spec", "ports"]) => MergeKey("port"),
        ("Node", ["spec", "podCIDRs"]) => MergePrimitives,
        ("Node", ["status", "addresses"]) => MergeKey("type"),
        _ => Replace,
    }
}

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER: &str = "$setElementOrder/";
const DELETE_FROM: &str = "$deleteFromPrimitiveList/";

fn is_directive_key(k: &str) -> bool {
    k == DIRECTIVE || k == RETAIN_KEYS || k.starts_with(SET_ORDER) || k.starts_with(DELETE_FROM)
}

/// Applies a strategic merge patch (`application/strategic-merge-patch+json`) to an object of `kind`.
/// Maps merge and `null` deletes; lists merge by the patch merge key of [`list_strategy`] (other
/// lists are replaced); honours `$patch: replace|delete|merge`, `$setElementOrder/<list>`,
/// `$retainKeys` and `$deleteFromPrimitiveList/<list>`.
///
/// # Errors
/// A malformed patch (not an object, an unknown `$patch` value, a list item without its merge key).
/// `target` is left unchanged on error.
pub fn strategic_merge_patch(target: &mut Value, patch: &Value, kind: &str) -> Result<(), String> {
    let Value::Object(p) = patch else {
        return Err("strategic merge patch must be a JSON object".to_string());
    };
    let mut out = match target {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    let mut path = Vec::new();
    let deleted = merge_map(&mut out, p, &mut path, kind)?;
    if deleted {
        out.clear();
    }
    *target = Value::Object(out);
    Ok(())
}

/// Merges `patch` into `orig`; returns true when the map carried `$patch: delete`.
fn merge_map(
    orig: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    path: &mut Vec<String>,
    kind: &str,
) -> Result<bool, String> {
    match patch.get(DIRECTIVE) {
        None => {}
        Some(Value::String(d)) if d == "replace" => {
            let mut fresh = Map::new();
            let stripped: Map<String, Value> = patch
                .iter()
                .filter(|(k, _)| k.as_str() != DIRECTIVE)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            merge_map(&mut fresh, &stripped, path, kind)?;
            *orig = fresh;
            return Ok(false);
        }
        Some(Value::String(d)) if d == "delete" => return Ok(true),
        Some(Value::String(d)) if d == "merge" => {}
        Some(other) => {
            return Err(format!(
                "unknown patch type: {other} in map: {}",
                Value::Object(patch.clone())
            ))
        }
    }
    if let Some(retain) = patch.get(RETAIN_KEYS) {
        let keep: Vec<&str> = retain
            .as_array()
            .ok_or("$retainKeys must be a list")?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        orig.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (k, v) in patch {
        if let Some(list) = k.strip_prefix(DELETE_FROM) {
            let del = v.as_array().ok_or_else(|| format!("{k} must be a list"))?;
            if let Some(Value::Array(items)) = orig.get_mut(list) {
                items.retain(|i| !del.contains(i));
            }
        }
    }
    for (k, pv) in patch {
        if is_directive_key(k) {
            continue;
        }
        path.push(k.clone());
        let res = merge_field(orig, k, pv, path, kind);
        path.pop();
        res?;
    }
    for (k, order) in patch {
        if let Some(list) = k.strip_prefix(SET_ORDER) {
            let order = order
                .as_array()
                .ok_or_else(|| format!("{k} must be a list"))?;
            path.push(list.to_string());
            let strategy = list_strategy(kind, path);
            path.pop();
            if let Some(Value::Array(items)) = orig.get_mut(list) {
                reorder(items, order, strategy);
            }
        }
    }
    Ok(false)
}

fn merge_field(
    orig: &mut Map<String, Value>,
    k: &str,
    pv: &Value,
    path: &mut Vec<String>,
    kind: &str,
) -> Result<(), String> {
    if pv.is_null() {
        orig.remove(k);
        return Ok(());
    }
    match (orig.get_mut(k), pv) {
        (Some(Value::Object(o)), Value::Object(p)) => {
            if merge_map(o, p, path, kind)? {
                orig.remove(k);
            }
        }
        (Some(Value::Array(o)), Value::Array(p)) => merge_list(o, p, path, kind)?,
        (_, Value::Object(p)) => {
            let mut fresh = Map::new();
            if !merge_map(&mut fresh, p, path, kind)? {
                orig.insert(k.to_string(), Value::Object(fresh));
            } else {
                orig.remove(k);
            }
        }
        (_, Value::Array(p)) => {
            let mut fresh = Vec::new();
            merge_list(&mut fresh, p, path, kind)?;
            orig.insert(k.to_string(), Value::Array(fresh));
        }
        (_, other) => {
            orig.insert(k.to_string(), other.clone());
        }
    }
    Ok(())
}

fn directive_of(v: &Value) -> Option<&str> {
    v.get(DIRECTIVE).and_then(Value::as_str)
}

fn merge_list(
    orig: &mut Vec<Value>,
    patch: &[Value],
    path: &mut Vec<String>,
    kind: &str,
) -> Result<(), String> {
    let strategy = list_strategy(kind, path);
    if patch.iter().any(|i| directive_of(i) == Some("replace")) {
        orig.clear();
        for item in patch.iter().filter(|i| directive_of(i) != Some("replace")) {
            orig.push(clean_item(item, path, kind)?);
        }
        return Ok(());
    }
    match strategy {
        ListStrategy::Replace => {
            *orig = patch.to_vec();
        }
        ListStrategy::MergePrimitives => {
            for item in patch {
                if !orig.contains(item) {
                    orig.push(item.clone());
                }
            }
        }
        ListStrategy::MergeKey(mk) => {
            for item in patch {
                let Value::Object(pm) = item else {
                    if !orig.contains(item) {
                        orig.push(item.clone());
                    }
                    continue;
                };
                let key = pm.get(mk).ok_or_else(|| {
                    format!("map: {item} does not contain declared merge key: {mk}")
                })?;
                if directive_of(item) == Some("delete") {
                    orig.retain(|o| o.get(mk) != Some(key));
                    continue;
                }
                match orig.iter_mut().find(|o| o.get(mk) == Some(key)) {
                    Some(Value::Object(om)) => {
                        merge_map(om, pm, path, kind)?;
                    }
                    Some(other) => *other = clean_item(item, path, kind)?,
                    None => orig.push(clean_item(item, path, kind)?),
                }
            }
        }
    }
    Ok(())
}

/// A patch list item with its directives resolved against nothing (what gets inserted when new).
fn clean_item(item: &Value, path: &mut Vec<String>, kind: &str) -> Result<Value, String> {
    match item {
        Value::Object(p) => {
            let mut fresh = Map::new();
            merge_map(&mut fresh, p, path, kind)?;
            Ok(Value::Object(fresh))
        }
        other => Ok(other.clone()),
    }
}

/// Reorders `items` after `$setElementOrder`: listed items take the listed order; items the order does
/// not mention stay right after the listed item that preceded them.
fn reorder(items: &mut Vec<Value>, order: &[Value], strategy: ListStrategy) {
    let key_of = |v: &Value| -> Option<Value> {
        match strategy {
            ListStrategy::MergeKey(mk) => v.get(mk).cloned(),
            _ => Some(v.clone()),
        }
    };
    let order_keys: Vec<Option<Value>> = order.iter().map(key_of).collect();
    let mut last_rank = -1.0f64;
    let mut ranked: Vec<(f64, usize, Value)> = Vec::with_capacity(items.len());
    for (i, item) in items.drain(..).enumerate() {
        let k = key_of(&item);
        let rank = match order_keys.iter().position(|o| o.is_some() && *o == k) {
            Some(pos) => {
                last_rank = pos as f64;
                last_rank
            }
            None => last_rank + 0.5,
        };
        ranked.push((rank, i, item));
    }
    ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    items.extend(ranked.into_iter().map(|(_, _, v)| v));
}

/// Applies an RFC 6902 JSON patch (`add`, `remove`, `replace`, `move`, `copy`, `test`). Atomic: on
/// error `target` is left unchanged.
///
/// # Errors
/// A malformed operation, a missing path, an out-of-range index or a failed `test`.
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), String> {
    let ops = patch
        .as_array()
        .ok_or("json patch must be a list of operations")?;
    if ops.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(format!(
            "The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, but found {}",
            ops.len()
        ));
    }
    let mut doc = target.clone();
    let mut copied = 0;
    for op in ops {
        apply_op(&mut doc, op, &mut copied)?;
    }
    *target = doc;
    Ok(())
}

/// kube-apiserver's cap on the operations of one JSON patch.
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// kube-apiserver's cap on the bytes all `copy` operations of one patch may add (three request
/// bodies): each `copy` of the root doubles the document, so a few dozen would exhaust memory.
pub const MAX_JSON_PATCH_COPY_BYTES: usize = 3 * super::handlers::MAX_BODY;

fn parse_pointer(p: &str) -> Result<Vec<String>, String> {
    if p.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = p.strip_prefix('/') else {
        return Err(format!("invalid JSON pointer: {p:?}"));
    };
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn array_index(tok: &str, len: usize, allow_end: bool) -> Result<usize, String> {
    if allow_end && tok == "-" {
        return Ok(len);
    }
    if tok.is_empty()
        || (tok.len() > 1 && tok.starts_with('0'))
        || !tok.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(format!("invalid array index: {tok:?}"));
    }
    let i: usize = tok
        .parse()
        .map_err(|_| format!("invalid array index: {tok:?}"))?;
    let max = if allow_end {
        len
    } else {
        len.saturating_sub(1)
    };
    if i > max || (!allow_end && len == 0) {
        return Err(format!("array index out of bounds: {i}"));
    }
    Ok(i)
}

fn get_mut<'a>(doc: &'a mut Value, toks: &[String], ptr: &str) -> Result<&'a mut Value, String> {
    let mut cur = doc;
    for t in toks {
        cur = match cur {
            Value::Object(m) => m.get_mut(t),
            Value::Array(a) => {
                let i = array_index(t, a.len(), false)?;
                a.get_mut(i)
            }
            _ => None,
        }
        .ok_or_else(|| format!("doc is missing path: {ptr:?}"))?;
    }
    Ok(cur)
}

fn pointer_of(op: &Value, field: &str) -> Result<(String, Vec<String>), String> {
    let s = op
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("operation {op} is missing {field:?}"))?;
    Ok((s.to_string(), parse_pointer(s)?))
}

fn add(doc: &mut Value, toks: &[String], ptr: &str, value: Value) -> Result<(), String> {
    let Some((last, parent)) = toks.split_last() else {
        *doc = value;
        return Ok(());
    };
    match get_mut(doc, parent, ptr)? {
        Value::Object(m) => {
            m.insert(last.clone(), value);
        }
        Value::Array(a) => {
            let i = array_index(last, a.len(), true)?;
            a.insert(i, value);
        }
        _ => return Err(format!("doc is missing path: {ptr:?}")),
    }
    Ok(())
}

fn remove(doc: &mut Value, toks: &[String], ptr: &str) -> Result<Value, String> {
    let Some((last, parent)) = toks.split_last() else {
        return Err("cannot remove the document root".to_string());
    };
    match get_mut(doc, parent, ptr)? {
        Value::Object(m) => m
            .remove(last)
            .ok_or_else(|| format!("doc is missing path: {ptr:?}")),
        Value::Array(a) => {
            let i = array_index(last, a.len(), false)?;
            Ok(a.remove(i))
        }
        _ => Err(format!("doc is missing path: {ptr:?}")),
    }
}

fn apply_op(doc: &mut Value, op: &Value, copied: &mut usize) -> Result<(), String> {
    let name = op
        .get("op")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("operation {op} has no \"op\""))?;
    let (ptr, toks) = pointer_of(op, "path")?;
    let value = || {
        op.get("value")
            .cloned()
            .ok_or_else(|| format!("operation {name} at {ptr:?} has no value"))
    };
    match name {
        "add" => add(doc, &toks, &ptr, value()?),
        "remove" => remove(doc, &toks, &ptr).map(|_| ()),
        "replace" => {
            let v = value()?;
            *get_mut(doc, &toks, &ptr)? = v;
            Ok(())
        }
        "move" => {
            let (from, from_toks) = pointer_of(op, "from")?;
            if toks.len() > from_toks.len() && toks[..from_toks.len()] == from_toks[..] {
                return Err(format!("cannot move {from:?} into its own child {ptr:?}"));
            }
            let v = remove(doc, &from_toks, &from)?;
            add(doc, &toks, &ptr, v)
        }
        "copy" => {
            let (from, from_toks) = pointer_of(op, "from")?;
            let v = get_mut(doc, &from_toks, &from)?;
            let size = serde_json::to_vec(v).map_or(usize::MAX, |b| b.len());
            *copied = copied.saturating_add(size);
            if *copied > MAX_JSON_PATCH_COPY_BYTES {
                return Err(format!(
                    "Unable to complete the copy, the accumulated size increase of copy is {copied}, exceeding the limit {MAX_JSON_PATCH_COPY_BYTES}"
                ));
            }
            let v = v.clone();
            add(doc, &toks, &ptr, v)
        }
        "test" => {
            let want = value()?;
            let got = get_mut(doc, &toks, &ptr)?;
            if *got == want {
                Ok(())
            } else {
                Err(format!(
                    "testing value {ptr:?} failed: test operation does not apply"
                ))
            }
        }
        other => Err(format!("unexpected json patch operation {other:?}")),
    }
}

/// Metadata fields the server owns: an apply never changes them on an existing object.
const SERVER_METADATA: &[&str] = &[
    "uid",
    "creationTimestamp",
    "generation",
    "resourceVersion",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

/// Server-side apply (`application/apply-patch+yaml`) without field ownership: with no live object the
/// result is `applied`; otherwise `applied` is strategically merged onto `live`, so fields the applier
/// omits are kept, labels/annotations merge, and `status` plus server-owned metadata (uid,
/// creationTimestamp, generation, resourceVersion, deletionTimestamp) keep their live values.
/// The caller still checks `applied.metadata.resourceVersion` as a precondition if it wants to.
///
/// # Errors
/// `applied` is not an object, or it is malformed as a strategic merge patch.
pub fn apply_patch(live: Option<&Value>, applied: &Value, kind: &str) -> Result<Value, String> {
    if !applied.is_object() {
        return Err("apply patch must be a JSON/YAML object".to_string());
    }
    let Some(live) = live else {
        return Ok(applied.clone());
    };
    let mut patch = applied.clone();
    let pm = patch.as_object_mut().expect("checked above");
    pm.remove("status");
    if let Some(Value::Object(meta)) = pm.get_mut("metadata") {
        for f in SERVER_METADATA {
            meta.remove(*f);
        }
    }
    let mut out = live.clone();
    strategic_merge_patch(&mut out, &patch, kind)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn merge_patch_rfc7386_examples() {
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (
                json!({"a": "b", "b": "c"}),
                json!({"a": null}),
                json!({"b": "c"}),
            ),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a": "b"}), json!(["c"]), json!(["c"])),
            (json!({"a": "foo"}), json!(null), json!(null)),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
            (
                json!([1, 2]),
                json!({"a": "b", "c": null}),
                json!({"a": "b"}),
            ),
            (
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
        ];
        for (mut t, p, want) in cases {
            merge_patch(&mut t, &p);
            assert_eq!(t, want, "patch {p}");
        }
    }

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
        let p = json!({"spec": {"replicas": 5, "template": {"spec": {"containers": [{"image": "x"}]}}}});
        let err = strategic_merge_patch(&mut d, &p, "Deployment").unwrap_err();
        assert!(
            err.contains("does not contain declared merge key: name"),
            "{err}"
        );
        assert_eq!(d, before);
        assert!(strategic_merge_patch(&mut d, &json!([1]), "Deployment").is_err());
        assert!(
            strategic_merge_patch(&mut d, &json!({"spec": {"$patch": "bogus"}}), "Deployment")
                .is_err()
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
}
