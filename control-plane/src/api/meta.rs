//! Object metadata and defaulting on create and update: names, uid, timestamps, generation, and the
//! per-kind defaults Kubernetes applies (Deployment strategy, Pod restart policy, Service type, Job
//! selector …).
//! Pure: the clock and the random parts come in as arguments.

use std::time::SystemTime;

use serde_json::{json, Map, Value};

use super::resources::ResourceInfo;
use super::status::{ApiError, Result};

pub use apimachinery::time::rfc3339;

/// What a create needs besides the object: the clock and the random parts.
#[derive(Debug, Clone)]
pub struct CreateContext {
    /// Creation time.
    pub now: SystemTime,
    /// The new object's uid.
    pub uid: String,
    /// Suffix appended to `metadata.generateName` (5 characters, as Kubernetes).
    pub name_suffix: String,
}

impl CreateContext {
    /// A context at `now` with a uuid v4 and a name suffix drawn from `rng`.
    pub fn new(now: SystemTime, rng: &mut impl rand::Rng) -> Self {
        // The alphabet Kubernetes uses for generated names: no vowels, no confusable digits.
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        let name_suffix = (0..5)
            .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
            .collect();
        CreateContext {
            now,
            uid: uuid::Builder::from_random_bytes(rng.gen())
                .into_uuid()
                .to_string(),
            name_suffix,
        }
    }

    /// A context with the current time and the thread's RNG; the edge of a request, where the
    /// clock is read.
    pub fn fresh() -> Self {
        CreateContext::new(SystemTime::now(), &mut rand::thread_rng())
    }
}

/// `metadata` of an object as a mutable map, created when missing.
pub fn metadata_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = json!({});
    }
    let map = obj.as_object_mut().expect("object");
    let meta = map.entry("metadata").or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({});
    }
    meta.as_object_mut().expect("metadata object")
}

/// `metadata.name`, or "" when absent.
pub fn name_of(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// `metadata.namespace`, or "" when absent.
pub fn namespace_of(obj: &Value) -> &str {
    obj.pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// `metadata.resourceVersion` parsed, when present and numeric.
pub fn resource_version_of(obj: &Value) -> Option<u64> {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
}

/// `metadata.resourceVersion` as a string, when present and non-empty.
pub fn resource_version_str(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn set_default(map: &mut Map<String, Value>, key: &str, value: Value) {
    match map.get(key) {
        Some(v) if !v.is_null() => {}
        _ => {
            map.insert(key.to_string(), value);
        }
    }
}

fn object_at<'a>(obj: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    let map = obj.as_object_mut().expect("object");
    let v = map.entry(key).or_insert_with(|| json!({}));
    if !v.is_object() {
        *v = json!({});
    }
    v.as_object_mut().expect("object")
}

/// Prepares a new object for storage: type meta, name (or `generateName`), namespace from the URL,
/// uid, creation timestamp, generation, and the kind's defaults. Client-set system fields are dropped.
///
/// # Errors
/// BadRequest when the body's namespace differs from the URL's; Invalid when there is no name.
pub fn prepare_create(
    info: &ResourceInfo,
    obj: &mut Value,
    namespace: Option<&str>,
    ctx: &CreateContext,
) -> Result<()> {
    if !obj.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    obj["apiVersion"] = json!(info.api_version());
    obj["kind"] = json!(info.kind);
    let meta = metadata_mut(obj);
    if info.namespaced {
        let url_ns = namespace.unwrap_or("default");
        match meta.get("namespace").and_then(Value::as_str) {
            Some(ns) if !ns.is_empty() && ns != url_ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ))
            }
            _ => {
                meta.insert("namespace".into(), json!(url_ns));
            }
        }
    } else {
        meta.remove("namespace");
    }
    let name = meta.get("name").and_then(Value::as_str).unwrap_or("");
    if name.is_empty() {
        match meta.get("generateName").and_then(Value::as_str) {
            Some(g) if !g.is_empty() => {
                let generated = format!("{g}{}", ctx.name_suffix);
                meta.insert("name".into(), json!(generated));
            }
            _ => {
                return Err(ApiError::invalid(
                    info,
                    "",
                    &[(
                        "FieldValueRequired".into(),
                        "metadata.name".into(),
                        "Required value: name or generateName is required".into(),
                    )],
                ))
            }
        }
    }
    for k in [
        "resourceVersion",
        "uid",
        "selfLink",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "managedFields",
        "generation",
        "creationTimestamp",
    ] {
        meta.remove(k);
    }
    meta.insert("uid".into(), json!(ctx.uid));
    meta.insert("creationTimestamp".into(), json!(rfc3339(ctx.now)));
    if obj.get("spec").is_some() || matches!(info.kind, "Deployment" | "ReplicaSet" | "Job") {
        metadata_mut(obj).insert("generation".into(), json!(1));
    }
    // The status of a workload is the controllers' to write; a client's status is meaningless.
    if matches!(info.kind, "Deployment" | "ReplicaSet" | "Job") {
        obj["status"] = json!({});
    }
    if info.kind == "Job" {
        // Only on create, as the job strategy's PrepareForCreate: an update keeps what was generated.
        generate_job_selector(obj);
    }
    if info.kind == "Namespace" {
        obj["status"] = json!({"phase": "Active"});
    }
    if info.kind == "Pod" {
        // The ServiceAccount admission plugin's default, on create only.
        default_service_account(object_at(obj, "spec"));
    }
    apply_defaults(info, obj);
    Ok(())
}

/// Carries the server-owned parts of `old` over to `new` for an update of the main resource: uid,
/// creation time, deletion fields, status (changed only through `/status`), and bumps `generation`
/// when the spec changed. Applies the kind's defaults.
pub fn prepare_update(info: &ResourceInfo, old: &Value, new: &mut Value) {
    if !new.is_object() {
        *new = json!({});
    }
    new["apiVersion"] = json!(info.api_version());
    new["kind"] = json!(info.kind);
    let old_meta = old.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let meta = metadata_mut(new);
    for k in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "namespace",
        "name",
    ] {
        match old_meta.get(k) {
            Some(v) => {
                meta.insert(k.into(), v.clone());
            }
            None => {
                meta.remove(k);
            }
        }
    }
    meta.remove("selfLink");
    meta.remove("managedFields");
    // resourceVersion is checked by the caller; what is stored is stamped by the store.
    meta.remove("resourceVersion");
    if info.subresource("status").is_some() {
        match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove("status");
                }
            }
        }
    }
    apply_defaults(info, new);
    bump_generation(old, new);
}

/// Sets `generation` from `old`: +1 when the spec changed (the only thing generation tracks).
fn bump_generation(old: &Value, new: &mut Value) {
    let old_gen = old.pointer("/metadata/generation").and_then(Value::as_i64);
    let Some(old_gen) = old_gen else {
        metadata_mut(new).remove("generation");
        if new.get("spec").is_some() {
            metadata_mut(new).insert("generation".into(), json!(1));
        }
        return;
    };
    let generation = if old.get("spec") != new.get("spec") {
        old_gen + 1
    } else {
        old_gen
    };
    metadata_mut(new).insert("generation".into(), json!(generation));
}

/// The object after a `/status` write: `old` with `status` taken from `new`, nothing else.
pub fn prepare_status_update(old: &Value, new: &Value) -> Value {
    let mut out = old.clone();
    match new.get("status") {
        Some(s) => out["status"] = s.clone(),
        None => {
            if let Some(m) = out.as_object_mut() {
                m.remove("status");
            }
        }
    }
    if let Some(m) = out.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    out
}

/// Applies the defaults Kubernetes applies to a kind. Idempotent.
pub fn apply_defaults(info: &ResourceInfo, obj: &mut Value) {
    match info.kind {
        "Deployment" => default_deployment(obj),
        "DaemonSet" => default_daemonset(obj),
        "ReplicaSet" => {
            let spec = object_at(obj, "spec");
            set_default(spec, "replicas", json!(1));
            if let Some(t) = spec.get_mut("template") {
                default_template(t);
            }
        }
        "Pod" => {
            default_pod_spec(object_at(obj, "spec"));
            let status = object_at(obj, "status");
            set_default(status, "phase", json!("Pending"));
        }
        "Service" => default_service(obj),
        "Job" => default_job(obj),
        "Namespace" => {
            let name = name_of(obj).to_string();
            let meta = metadata_mut(obj);
            let labels = meta.entry("labels").or_insert_with(|| json!({}));
            if !labels.is_object() {
                *labels = json!({});
            }
            labels["kubernetes.io/metadata.name"] = json!(name);
            let spec = object_at(obj, "spec");
            set_default(spec, "finalizers", json!(["kubernetes"]));
        }
        "Secret" => {
            if let Some(m) = obj.as_object_mut() {
                set_default(m, "type", json!("Opaque"));
            }
        }
        "RoleBinding" | "ClusterRoleBinding" => default_subjects(obj),
        "PersistentVolumeClaim" => {
            let spec = object_at(obj, "spec");
            set_default(spec, "volumeMode", json!("Filesystem"));
        }
        kind => {
            if let Some(k) = super::kinds::by_kind(kind) {
                k.apply_defaults(obj);
            }
        }
    }
}

fn default_deployment(obj: &mut Value) {
    let spec = object_at(obj, "spec");
    set_default(spec, "replicas", json!(1));
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(spec, "progressDeadlineSeconds", json!(600));
    default_rolling_update(spec, "strategy", json!("25%"), json!("25%"));
    if let Some(t) = spec.get_mut("template") {
        default_template(t);
    }
}

pub use super::kinds::job::{
    JOB_CONTROLLER_UID_LABEL, JOB_NAME_LABEL, LEGACY_JOB_CONTROLLER_UID_LABEL,
    LEGACY_JOB_NAME_LABEL,
};

/// `SetDefaults_Job` (`pkg/apis/batch/v1/defaults.go`), plus the pod template defaults.
fn default_job(obj: &mut Value) {
    let spec = object_at(obj, "spec");
    // A non-parallel job may leave both unset; then both are 1. Completions stays unset (a work
    // queue) when only parallelism is given.
    let unset = |spec: &Map<String, Value>, k: &str| spec.get(k).is_none_or(Value::is_null);
    if unset(spec, "completions") && unset(spec, "parallelism") {
        spec.insert("completions".into(), json!(1));
    }
    set_default(spec, "parallelism", json!(1));
    let per_index = !unset(spec, "backoffLimitPerIndex");
    set_default(
        spec,
        "backoffLimit",
        json!(if per_index { i64::from(i32::MAX) } else { 6 }),
    );
    set_default(spec, "completionMode", json!("NonIndexed"));
    set_default(spec, "suspend", json!(false));
    let failure_policy = !unset(spec, "podFailurePolicy");
    let rules = spec
        .get_mut("podFailurePolicy")
        .and_then(|p| p.get_mut("rules"));
    if let Some(Value::Array(rules)) = rules {
        for rule in rules.iter_mut() {
            if let Some(Value::Array(patterns)) = rule.get_mut("onPodConditions") {
                for p in patterns.iter_mut().filter_map(Value::as_object_mut) {
                    if p.get("status")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .is_empty()
                    {
                        p.insert("status".into(), json!("True"));
                    }
                }
            }
        }
    }
    set_default(
        spec,
        "podReplacementPolicy",
        json!(if failure_policy {
            "Failed"
        } else {
            "TerminatingOrFailed"
        }),
    );
    set_default(spec, "manualSelector", json!(false));
    if let Some(t) = spec.get_mut("template") {
        default_template(t);
    }
    // A Job without labels of its own takes its pod template's (which, after create, include the
    // generated job-name and controller-uid labels).
    let template_labels = obj
        .pointer("/spec/template/metadata/labels")
        .filter(|l| l.as_object().is_some_and(|m| !m.is_empty()))
        .cloned();
    if let Some(labels) = template_labels {
        let meta = metadata_mut(obj);
        let own = meta.get("labels").and_then(Value::as_object);
        if own.is_none_or(Map::is_empty) {
            meta.insert("labels".into(), labels);
        }
    }
}

/// `generateSelector` of the job strategy: unless `spec.manualSelector` is true, labels the pod
/// template with the Job's name and uid (keeping labels the user set, which validation then checks)
/// and selects on `batch.kubernetes.io/controller-uid`. Uses the uid `prepare_create` just assigned.
fn generate_job_selector(obj: &mut Value) {
    if obj.pointer("/spec/manualSelector").and_then(Value::as_bool) == Some(true) {
        return;
    }
    let name = name_of(obj).to_string();
    let uid = obj
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let spec = object_at(obj, "spec");
    let template = spec.entry("template").or_insert_with(|| json!({}));
    if !template.is_object() {
        *template = json!({});
    }
    let tmeta = object_at(template, "metadata");
    let labels = tmeta.entry("labels").or_insert_with(|| json!({}));
    if !labels.is_object() {
        *labels = json!({});
    }
    let labels = labels.as_object_mut().expect("object");
    for (key, value) in [
        (LEGACY_JOB_NAME_LABEL, &name),
        (JOB_NAME_LABEL, &name),
        (LEGACY_JOB_CONTROLLER_UID_LABEL, &uid),
        (JOB_CONTROLLER_UID_LABEL, &uid),
    ] {
        labels
            .entry(key)
            .or_insert_with(|| Value::String(value.clone()));
    }
    let selector = spec.entry("selector").or_insert_with(|| json!({}));
    if !selector.is_object() {
        *selector = json!({});
    }
    let match_labels = object_at(selector, "matchLabels");
    match_labels
        .entry(JOB_CONTROLLER_UID_LABEL)
        .or_insert_with(|| Value::String(uid));
}

/// `spec.{field}` defaults to RollingUpdate, whose `rollingUpdate` gets the kind's maxUnavailable and maxSurge.
fn default_rolling_update(
    spec: &mut Map<String, Value>,
    field: &str,
    max_unavailable: Value,
    max_surge: Value,
) {
    let strategy = spec.entry(field).or_insert_with(|| json!({}));
    if !strategy.is_object() {
        *strategy = json!({});
    }
    let s = strategy.as_object_mut().expect("object");
    set_default(s, "type", json!("RollingUpdate"));
    if s.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
        let ru = s.entry("rollingUpdate").or_insert_with(|| json!({}));
        if !ru.is_object() {
            *ru = json!({});
        }
        let ru = ru.as_object_mut().expect("object");
        set_default(ru, "maxUnavailable", max_unavailable);
        set_default(ru, "maxSurge", max_surge);
    }
}

fn default_daemonset(obj: &mut Value) {
    let spec = object_at(obj, "spec");
    set_default(spec, "revisionHistoryLimit", json!(10));
    default_rolling_update(spec, "updateStrategy", json!(1), json!(0));
    if let Some(t) = spec.get_mut("template") {
        default_template(t);
    }
}

fn default_template(template: &mut Value) {
    if !template.is_object() {
        return;
    }
    default_pod_spec(object_at(template, "spec"));
}

/// Applies the Pod spec defaults (restart policy, grace period, DNS policy, image pull policy,
/// container port protocol). Controllers that build pods from templates get the same result.
pub fn default_pod_spec(spec: &mut Map<String, Value>) {
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    set_default(spec, "securityContext", json!({}));
    for list in ["containers", "initContainers"] {
        if let Some(Value::Array(cs)) = spec.get_mut(list) {
            for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                let image = c.get("image").and_then(Value::as_str).unwrap_or("");
                set_default(c, "imagePullPolicy", json!(pull_policy(image)));
                set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
                set_default(c, "terminationMessagePolicy", json!("File"));
                if let Some(Value::Array(ports)) = c.get_mut("ports") {
                    for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                        set_default(p, "protocol", json!("TCP"));
                    }
                }
            }
        }
    }
}

/// Sets a pod's `serviceAccountName` to `default` when unset, and the deprecated `serviceAccount`
/// to the same name (as the API's v1 conversion shows it). Pods built by controllers from templates
/// should get this too, as they pass the same admission in Kubernetes.
pub fn default_service_account(spec: &mut Map<String, Value>) {
    let name = match spec.get("serviceAccountName").and_then(Value::as_str) {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => match spec.get("serviceAccount").and_then(Value::as_str) {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => "default".to_string(),
        },
    };
    spec.insert("serviceAccountName".into(), json!(name));
    spec.insert("serviceAccount".into(), json!(name));
}

/// A binding's User and Group subjects default to the RBAC API group (`SetDefaults_Subject`).
fn default_subjects(obj: &mut Value) {
    if let Some(Value::Array(subjects)) = obj.get_mut("subjects") {
        for s in subjects.iter_mut().filter_map(Value::as_object_mut) {
            let kind = s.get("kind").and_then(Value::as_str).unwrap_or("");
            if matches!(kind, "User" | "Group") {
                set_default(s, "apiGroup", json!("rbac.authorization.k8s.io"));
            }
        }
    }
}

/// `Always` for `:latest` or untagged images, else `IfNotPresent` (digests count as tagged).
pub fn pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    // The tag is after the last ':' that follows the last '/' (a registry port is not a tag).
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn default_service(obj: &mut Value) {
    let spec = object_at(obj, "spec");
    set_default(spec, "type", json!("ClusterIP"));
    set_default(spec, "sessionAffinity", json!("None"));
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if ty != "ExternalName" {
        set_default(spec, "ipFamilies", json!(["IPv4"]));
        set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
        set_default(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if matches!(ty.as_str(), "NodePort" | "LoadBalancer") {
        set_default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if let Some(Value::Array(ports)) = spec.get_mut("ports") {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            set_default(p, "protocol", json!("TCP"));
            if let Some(port) = p.get("port").cloned() {
                set_default(p, "targetPort", port);
            }
        }
    }
}

#[cfg(test)]
mod tests;
