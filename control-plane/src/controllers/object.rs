//! Helpers over stored JSON objects: metadata access, owner references, timestamps, pod readiness, and
//! the stamping every object a controller creates needs (uid, creationTimestamp, generation).

use std::time::{Duration, SystemTime};

use rand::RngCore;
use serde_json::{json, Map, Value};

use apimachinery::labels::{string_map, Labels};
use apimachinery::time::{parse_rfc3339, rfc3339};

/// A string field of `metadata`, or "".
pub fn meta_str<'a>(v: &'a Value, field: &str) -> &'a str {
    v.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// `metadata.name`.
pub fn name(v: &Value) -> &str {
    meta_str(v, "name")
}

/// `metadata.namespace`.
pub fn namespace(v: &Value) -> &str {
    meta_str(v, "namespace")
}

/// `metadata.uid`.
pub fn uid(v: &Value) -> &str {
    meta_str(v, "uid")
}

/// `metadata.labels`.
pub fn labels(v: &Value) -> Labels {
    string_map(v.pointer("/metadata/labels"))
}

/// `metadata.annotations`.
pub fn annotations(v: &Value) -> Labels {
    string_map(v.pointer("/metadata/annotations"))
}

/// One annotation.
pub fn annotation<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

/// `metadata.generation` (0 when absent).
pub fn generation(v: &Value) -> i64 {
    v.pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// `metadata.resourceVersion` as a revision (0 when absent).
pub fn revision(v: &Value) -> u64 {
    meta_str(v, "resourceVersion").parse().unwrap_or(0)
}

/// Whether `status` is there but not an object (`"x"`, `[]`): the API refuses such writes, but an
/// object stored before that check (or restored from an old snapshot) must be skipped, not trusted.
pub fn malformed_status(v: &Value) -> bool {
    v.get("status")
        .is_some_and(|s| !s.is_null() && !s.is_object())
}

/// The typed view `T` of `obj.spec` that a controller decides on, parsed once per reconcile while the object
/// itself stays JSON (written back with every field it came with). A missing or null spec reads as
/// `T::default()`, so views mark every field `#[serde(default)]`.
///
/// # Errors
/// When a field the view reads has the wrong JSON type. Such an object is hostile or predates validation:
/// the caller *MUST* skip it (and log), never fall back to defaults that would act on it.
pub fn spec_view<'a, T: serde::Deserialize<'a> + Default>(
    obj: &'a Value,
) -> Result<T, serde_json::Error> {
    match obj.get("spec") {
        None | Some(Value::Null) => Ok(T::default()),
        Some(spec) => T::deserialize(spec),
    }
}

/// Whether `metadata.deletionTimestamp` is set.
pub fn deleting(v: &Value) -> bool {
    v.pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
}

/// `metadata.finalizers`.
pub fn finalizers(v: &Value) -> Vec<String> {
    v.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The uid of the controlling owner reference (`controller: true`), if any.
pub fn controller_uid(v: &Value) -> Option<&str> {
    owner_refs(v)
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .and_then(|r| r.get("uid"))
        .and_then(Value::as_str)
}

/// `metadata.ownerReferences`.
pub fn owner_refs(v: &Value) -> &[Value] {
    v.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// An owner reference to `owner` that marks it the controller and blocks its foreground deletion.
pub fn controller_ref(owner: &Value) -> Value {
    json!({
        "apiVersion": owner.get("apiVersion").cloned().unwrap_or(Value::Null),
        "kind": owner.get("kind").cloned().unwrap_or(Value::Null),
        "name": name(owner),
        "uid": uid(owner),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// A random RFC 4122 v4 uid from `rng`.
pub fn new_uid(rng: &mut dyn RngCore) -> String {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    uuid::Builder::from_random_bytes(b).into_uuid().to_string()
}

/// `n` random lowercase alphanumerics, as Kubernetes' generateName suffix (no vowels, like `rand.String`).
pub fn random_suffix(rng: &mut dyn RngCore, n: usize) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..n)
        .map(|_| ALPHANUMS[(rng.next_u32() as usize) % ALPHANUMS.len()] as char)
        .collect()
}

/// Stamps what the API server would on create: uid, creationTimestamp, generation 1 (objects with spec).
pub fn stamp_new(v: &mut Value, now: SystemTime, rng: &mut dyn RngCore) {
    let has_spec = v.get("spec").is_some();
    let meta = ensure_object(v, "metadata");
    meta.insert("uid".into(), json!(new_uid(rng)));
    meta.insert("creationTimestamp".into(), json!(rfc3339(now)));
    if has_spec {
        meta.insert("generation".into(), json!(1));
    }
    meta.remove("resourceVersion");
}

/// `v[field]` as a mutable JSON object, created (replacing a non-object) when needed.
pub fn ensure_object<'a>(v: &'a mut Value, field: &str) -> &'a mut Map<String, Value> {
    if !v.is_object() {
        *v = json!({});
    }
    let obj = v.as_object_mut().expect("object");
    let entry = obj.entry(field.to_string()).or_insert_with(|| json!({}));
    if !entry.is_object() {
        *entry = json!({});
    }
    entry.as_object_mut().expect("object")
}

/// Sets one annotation.
pub fn set_annotation(v: &mut Value, key: &str, value: &str) {
    let meta = ensure_object(v, "metadata");
    let ann = meta.entry("annotations").or_insert_with(|| json!({}));
    if !ann.is_object() {
        *ann = json!({});
    }
    ann[key] = json!(value);
}

/// Pod phase.
pub fn pod_phase(p: &Value) -> &str {
    p.pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// A pod that can no longer run: `Succeeded` or `Failed`.
pub fn pod_terminal(p: &Value) -> bool {
    matches!(pod_phase(p), "Succeeded" | "Failed")
}

/// A pod that counts toward its controller: not terminal and not being deleted.
pub fn pod_active(p: &Value) -> bool {
    !pod_terminal(p) && !deleting(p)
}

/// A pod condition by type.
pub fn condition<'a>(v: &'a Value, ty: &str) -> Option<&'a Value> {
    v.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(ty))
}

/// Whether the pod's `Ready` condition is `True`.
pub fn pod_ready(p: &Value) -> bool {
    condition(p, "Ready")
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str)
        == Some("True")
}

/// Whether the pod has been ready for at least `min_ready` at `now`.
pub fn pod_available(p: &Value, min_ready: Duration, now: SystemTime) -> bool {
    if !pod_ready(p) {
        return false;
    }
    if min_ready.is_zero() {
        return true;
    }
    let since = condition(p, "Ready")
        .and_then(|c| c.get("lastTransitionTime"))
        .and_then(Value::as_str)
        .and_then(parse_rfc3339);
    // A minReadySeconds past the end of the clock means never available, not a panic.
    since.is_some_and(|t| t.checked_add(min_ready).is_some_and(|at| at <= now))
}

/// `spec.nodeName`, when bound.
pub fn pod_node(p: &Value) -> Option<&str> {
    p.pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// `obj.status` to fill in: a copy of the stored one, or an empty object when it is missing or malformed.
pub fn status_of(obj: &Value) -> Value {
    obj.get("status")
        .filter(|s| s.is_object())
        .cloned()
        .unwrap_or_else(|| json!({}))
}

/// Removes the `keys` of `status` that are 0: Kubernetes omits optional counts that are zero.
pub fn omit_zero_counts(status: &mut Value, keys: &[&str]) {
    if let Some(m) = status.as_object_mut() {
        for k in keys {
            if m.get(*k) == Some(&json!(0)) {
                m.remove(*k);
            }
        }
    }
}

/// The write of `status` onto `obj` (stored at `key`, read at its revision), or `Action::None` when the
/// status did not change, so an idle controller writes nothing.
pub fn status_update(key: &str, obj: &Value, status: Value) -> super::Action {
    if obj.get("status") == Some(&status) {
        return super::Action::None;
    }
    let mut updated = obj.clone();
    updated["status"] = status;
    super::Action::Update {
        key: key.to_string(),
        object: updated,
        revision: revision(obj),
    }
}

/// Sets (or replaces) a condition, keeping `lastTransitionTime` when the status did not change.
/// Returns whether anything changed.
pub fn set_condition(
    status: &mut Map<String, Value>,
    ty: &str,
    value: &str,
    reason: &str,
    message: &str,
    now: &str,
    with_update_time: bool,
) -> bool {
    let conds = status.entry("conditions").or_insert_with(|| json!([]));
    if !conds.is_array() {
        *conds = json!([]);
    }
    let arr = conds.as_array_mut().expect("array");
    let pos = arr
        .iter()
        .position(|c| c.get("type").and_then(Value::as_str) == Some(ty));
    let old = pos.map(|i| arr[i].clone());
    let same_status = old
        .as_ref()
        .is_some_and(|c| c.get("status").and_then(Value::as_str) == Some(value));
    let same_all = same_status
        && old.as_ref().is_some_and(|c| {
            c.get("reason").and_then(Value::as_str) == Some(reason)
                && c.get("message").and_then(Value::as_str) == Some(message)
        });
    if same_all {
        return false;
    }
    let transition = if same_status {
        old.as_ref()
            .and_then(|c| c.get("lastTransitionTime").cloned())
            .unwrap_or(json!(now))
    } else {
        json!(now)
    };
    let mut c = json!({
        "type": ty,
        "status": value,
        "lastTransitionTime": transition,
        "reason": reason,
        "message": message,
    });
    if with_update_time {
        c["lastUpdateTime"] = json!(now);
    }
    match pos {
        Some(i) => arr[i] = c,
        None => arr.push(c),
    }
    true
}

/// Store key of a namespaced or cluster-scoped object given its kind (`None` for kinds berth does not store).
pub fn key_for_kind(kind: &str, namespace: &str, name: &str) -> Option<String> {
    let (group, resource, namespaced) = resource_of(kind)?;
    Some(crate::store::key(
        group,
        resource,
        if namespaced { namespace } else { "" },
        name,
    ))
}

/// (group, resource, namespaced) of a kind berth stores, from the registry of kinds; the core group
/// is named `core`, as in store keys. Kinds that are never stored (the create-only reviews) give `None`.
pub fn resource_of(kind: &str) -> Option<(&'static str, &'static str, bool)> {
    let r = crate::api::resources::by_kind(kind).filter(|r| r.supports("get"))?;
    let group = if r.group.is_empty() { "core" } else { r.group };
    Some((group, r.resource, r.namespaced))
}

/// Splits a store key into (group, resource, namespace, name).
pub fn split_key(key: &str) -> Option<(&str, &str, &str, &str)> {
    let mut it = key.strip_prefix('/')?.splitn(4, '/');
    Some((it.next()?, it.next()?, it.next()?, it.next()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::action::delete_pod;
    use rand::SeedableRng;

    #[test]
    fn stamps_and_names() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let s = random_suffix(&mut rng, 5);
        assert_eq!(s.len(), 5);
        assert!(s
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
        let mut v = json!({"metadata": {"name": "x", "resourceVersion": "4"}, "spec": {}});
        let t = parse_rfc3339("2026-11-25T07:58:00Z").unwrap();
        stamp_new(&mut v, t, &mut rng);
        assert_eq!(v["metadata"]["creationTimestamp"], "2026-11-25T07:58:00Z");
        assert_eq!(v["metadata"]["generation"], 1);
        assert_eq!(uid(&v).len(), 36);
        assert!(v["metadata"].get("resourceVersion").is_none());
        assert_eq!(
            split_key("/core/nodes//n1"),
            Some(("core", "nodes", "", "n1"))
        );
    }

    #[test]
    fn only_running_bound_pods_are_deleted_gracefully() {
        let t = parse_rfc3339("2026-11-25T07:58:00Z").unwrap();
        let pod = |node: Option<&str>, phase: &str| json!({"metadata": {"name": "p"}, "spec": {"nodeName": node}, "status": {"phase": phase}});
        let graceful = |p: &Value| {
            matches!(
                delete_pod("/core/pods/d/p", p, 3, t),
                crate::controllers::Action::Update { .. }
            )
        };
        assert!(graceful(&pod(Some("n1"), "Running")));
        assert!(!graceful(&pod(None, "Pending")), "nobody runs it");
        assert!(
            !graceful(&pod(Some("n1"), "Succeeded")),
            "its agent reports nothing new"
        );
        assert!(!graceful(&pod(Some("n1"), "Failed")));
    }

    #[test]
    fn conditions_keep_transition_time() {
        let mut st = Map::new();
        assert!(set_condition(
            &mut st, "Ready", "True", "R", "m", "t1", false
        ));
        assert!(!set_condition(
            &mut st, "Ready", "True", "R", "m", "t2", false
        ));
        assert!(set_condition(
            &mut st, "Ready", "True", "R2", "m", "t3", false
        ));
        assert_eq!(st["conditions"][0]["lastTransitionTime"], "t1");
        assert!(set_condition(
            &mut st, "Ready", "False", "R2", "m", "t4", false
        ));
        assert_eq!(st["conditions"][0]["lastTransitionTime"], "t4");
    }
}
