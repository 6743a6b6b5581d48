//! PATCH bodies: JSON merge patch (RFC 7386, `apimachinery`'s), strategic merge patch as kubectl
//! produces it, JSON patch (RFC 6902, the `json-patch` crate under kube-apiserver's limits), and
//! server-side apply without field ownership. Pure functions over `serde_json::Value`.

use serde::Deserialize as _;
use serde_json::{Map, Value};

use super::body::media_type;
use super::status::{ApiError, Result};

pub use apimachinery::patch::merge_patch;

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

/// The field path of the pod spec an object of `kind` carries (`["spec", "template", "spec"]`),
/// from the kind's strategy.
fn pod_spec_prefix(kind: &str) -> Option<Vec<&'static str>> {
    let (_, fields) = super::kinds::by_kind(kind)?.pod_spec_path()?;
    Some(fields.split('.').collect())
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
        if let Some(rest) = p.strip_prefix(prefix.as_slice()) {
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
/// A malformed operation, a missing path, an out-of-range index, a failed `test`, more than
/// [`MAX_JSON_PATCH_OPERATIONS`] operations, or copies adding more than [`MAX_JSON_PATCH_COPY_BYTES`].
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), String> {
    let ops = patch
        .as_array()
        .ok_or("json patch must be a list of operations")?;
    // Counted before decoding, so a huge patch costs no more than its parse.
    if ops.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(format!(
            "The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, but found {}",
            ops.len()
        ));
    }
    let ops: json_patch::Patch = json_patch::Patch::deserialize(patch)
        .map_err(|e| format!("invalid json patch operation: {e}"))?;
    // Applied to a copy, one operation at a time, so the copy budget is checked before each `copy`
    // grows the document, and a refused patch leaves `target` as it was.
    let mut doc = target.clone();
    let mut copied = 0usize;
    for (i, op) in ops.iter().enumerate() {
        if let json_patch::PatchOperation::Copy(c) = op {
            let size = doc
                .pointer(c.from.as_str())
                .map_or(0, |v| serde_json::to_vec(v).map_or(usize::MAX, |b| b.len()));
            copied = copied.saturating_add(size);
            if copied > MAX_JSON_PATCH_COPY_BYTES {
                return Err(format!(
                    "Unable to complete the copy, the accumulated size increase of copy is {copied}, exceeding the limit {MAX_JSON_PATCH_COPY_BYTES}"
                ));
            }
        }
        // `patch_unsafe`: no undo log, since a failure throws `doc` away.
        json_patch::patch_unsafe(&mut doc, std::slice::from_ref(op)).map_err(|e| {
            format!(
                "operation {i} failed at path {:?}: {}",
                e.path.as_str(),
                e.kind
            )
        })?;
    }
    *target = doc;
    Ok(())
}

/// kube-apiserver's cap on the operations of one JSON patch.
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// kube-apiserver's cap on the bytes all `copy` operations of one patch may add (three request
/// bodies): each `copy` of the root doubles the document, so a few dozen would exhaust memory.
pub const MAX_JSON_PATCH_COPY_BYTES: usize = 3 * super::body::MAX_BODY;

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

/// The four patch formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// RFC 6902 (`application/json-patch+json`).
    Json,
    /// RFC 7386 (`application/merge-patch+json`).
    Merge,
    /// Kubernetes strategic merge patch.
    Strategic,
    /// Server-side apply (`application/apply-patch+yaml`).
    Apply,
}

impl PatchType {
    /// From the request's content type.
    ///
    /// # Errors
    /// 415 for anything else.
    pub fn from_content_type(content_type: &str) -> Result<Self> {
        match media_type(content_type).as_str() {
            "application/json-patch+json" => Ok(PatchType::Json),
            "application/merge-patch+json" => Ok(PatchType::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Ok(PatchType::Apply),
            _ => Err(ApiError::unsupported_media_type(content_type)),
        }
    }

    /// Parses a patch body (YAML for apply, JSON otherwise).
    ///
    /// # Errors
    /// 400 on a malformed body.
    pub fn parse_body(self, body: &[u8]) -> Result<Value> {
        let parsed = if self == PatchType::Apply {
            serde_yaml::from_slice::<Value>(body).map_err(|e| e.to_string())
        } else {
            serde_json::from_slice::<Value>(body).map_err(|e| e.to_string())
        };
        let value =
            parsed.map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
        let shape_ok = match self {
            PatchType::Json => value.is_array(),
            _ => value.is_object(),
        };
        if !shape_ok {
            return Err(ApiError::bad_request(
                "the patch body has the wrong shape for its content type",
            ));
        }
        Ok(value)
    }

    /// Applies the patch to `target`.
    ///
    /// # Errors
    /// 422 when the patch cannot be applied.
    pub fn apply(self, target: &mut Value, patch_body: &Value, kind: &str) -> Result<()> {
        let result = match self {
            PatchType::Merge => {
                merge_patch(target, patch_body);
                Ok(())
            }
            PatchType::Strategic => strategic_merge_patch(target, patch_body, kind),
            PatchType::Json => json_patch(target, patch_body),
            PatchType::Apply => apply_patch(Some(target), patch_body, kind).map(|v| {
                *target = v;
            }),
        };
        result.map_err(|e| {
            ApiError::new(
                422,
                "Invalid",
                format!("the patch could not be applied: {e}"),
            )
        })
    }
}

#[cfg(test)]
mod tests;
