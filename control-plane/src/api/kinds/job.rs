//! The Job kind: its registry entry, validation, immutable fields, table columns, protobuf table,
//! pod spec location and OpenAPI schema.

use std::time::SystemTime;

use apimachinery::time::parse_rfc3339;
use serde_json::{Map, Value};

use super::common::columns::{
    arr, col, containers_and_images, created_age, human_duration_nanos, i, label_selector_string,
    name, s, since_nanos, Col, Row, AGE, NAME,
};
use super::common::errs::{go_label_selector, go_value, int_field, is_set, nonnegative, Errs};
use super::common::fields::T::*;
use super::common::fields::{a, f, p, r, F, LABEL_SELECTOR, OBJECT_META};
use super::common::names::{selector_selects_template, validate_labels};
use super::common::pod_fields::POD_TEMPLATE_SPEC;
use super::common::pod_spec::{scrub_scheduling_directives, validate_pod_spec};
use super::info::{status, ResourceInfo, ALL_VERBS};
use super::strategy::Kind;

/// The `Job` strategy.
pub(crate) struct Job;

static INFO: ResourceInfo = ResourceInfo {
    group: "batch",
    version: "v1",
    resource: "jobs",
    singular: "job",
    kind: "Job",
    namespaced: true,
    short_names: &[],
    categories: &["all"],
    verbs: ALL_VERBS,
    subresources: &[status("batch", "Job")],
};

impl Kind for Job {
    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn validate(&self, e: &mut Errs, object: &Value) {
        validate_job(e, object);
    }

    fn validate_update(&self, e: &mut Errs, old: &Value, new: &Value) {
        validate_job_update(e, old, new);
    }

    fn columns(&self) -> &'static [Col] {
        JOB_COLUMNS
    }

    fn row(&self, object: &Value, now: SystemTime) -> Row {
        job_row(object, now)
    }

    fn protobuf_fields(&self) -> Option<&'static [F]> {
        Some(JOB)
    }

    fn pod_spec_path(&self) -> Option<(&'static str, &'static str)> {
        Some(("/spec/template/spec", "spec.template.spec"))
    }

    fn openapi_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<k8s_openapi::api::batch::v1::Job>()
    }
}

const JOB_LABELS: [(&str, bool); 4] = [
    (crate::api::meta::LEGACY_JOB_CONTROLLER_UID_LABEL, true),
    (crate::api::meta::LEGACY_JOB_NAME_LABEL, false),
    (crate::api::meta::JOB_CONTROLLER_UID_LABEL, true),
    (crate::api::meta::JOB_NAME_LABEL, false),
];

/// Largest parallelism of an Indexed Job.
const MAX_PARALLELISM_INDEXED: i64 = 100_000;

/// `ValidateJob` (`pkg/apis/batch/validation`): the generated selector and labels, the counts, the
/// completion mode, the pod replacement policy, the pod template (restart policy OnFailure or
/// Never) and the selector against the template labels.
fn validate_job(e: &mut Errs, job: &Value) {
    let spec = job.get("spec").unwrap_or(&Value::Null);
    let selector = spec.get("selector").filter(|s| !s.is_null());
    let template_labels = spec.pointer("/template/metadata/labels");
    // validateGeneratedSelector: a Job that did not ask for a manual selector must carry exactly
    // what the server generated on create.
    if spec.get("manualSelector").and_then(Value::as_bool) != Some(true) {
        if let Some(sel) = selector {
            let uid = job
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or("");
            let name = crate::api::meta::name_of(job);
            if uid.is_empty() {
                e.required("metadata.uid", "");
            }
            let mut expected = Map::new();
            for (key, is_uid) in JOB_LABELS {
                let want = if is_uid { uid } else { name };
                let field = format!("spec.template.metadata.labels[{key}]");
                match template_labels.and_then(|l| l.get(key)) {
                    None => e.required(&field, &format!("must be '{want}'")),
                    Some(v) if v.as_str() != Some(want) => e.invalid(
                        &field,
                        template_labels.unwrap_or(&Value::Null),
                        &format!("must be '{want}'"),
                    ),
                    Some(_) => {}
                }
                expected.insert(key.to_string(), Value::from(want));
            }
            if let Ok(s) = apimachinery::labels::LabelSelector::from_label_selector_json(sel) {
                if !s.matches(Some(&expected)) {
                    e.invalid_raw(
                        "spec.selector",
                        &go_label_selector(Some(sel)),
                        "`selector` not auto-generated",
                    );
                }
            }
        }
    }
    for key in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
        "backoffLimitPerIndex",
        "maxFailedIndexes",
    ] {
        nonnegative(e, spec, key, "spec");
    }
    if is_set(spec, "maxFailedIndexes") && !is_set(spec, "backoffLimitPerIndex") {
        e.required(
            "spec.backoffLimitPerIndex",
            "when maxFailedIndexes is specified",
        );
    }
    let mode = spec.get("completionMode").and_then(Value::as_str);
    match mode {
        None | Some("NonIndexed") => {
            for key in ["backoffLimitPerIndex", "maxFailedIndexes"] {
                if let Some(v) = spec.get(key).filter(|v| !v.is_null()) {
                    e.invalid(
                        &format!("spec.{key}"),
                        v,
                        "requires indexed completion mode",
                    );
                }
            }
        }
        Some("Indexed") => {
            if !is_set(spec, "completions") {
                e.required("spec.completions", "when completion mode is Indexed");
            }
            if let Some(p) = int_field(spec, "parallelism").filter(|p| *p > MAX_PARALLELISM_INDEXED)
            {
                e.invalid(
                    "spec.parallelism",
                    &Value::from(p),
                    &format!("must be less than or equal to {MAX_PARALLELISM_INDEXED} when completion mode is Indexed"),
                );
            }
        }
        Some(other) => e.not_supported("spec.completionMode", other, &["NonIndexed", "Indexed"]),
    }
    let failure_policy = is_set(spec, "podFailurePolicy");
    if let Some(p) = spec.get("podReplacementPolicy").and_then(Value::as_str) {
        if failure_policy {
            if p != "Failed" {
                e.not_supported("spec.podReplacementPolicy", p, &["Failed"]);
            }
        } else if !["Failed", "TerminatingOrFailed"].contains(&p) {
            e.not_supported(
                "spec.podReplacementPolicy",
                p,
                &["Failed", "TerminatingOrFailed"],
            );
        }
    }
    match spec.get("template").filter(|t| !t.is_null()) {
        None => e.required("spec.template.spec.containers", ""),
        Some(t) => {
            validate_labels(e, template_labels, "spec.template.metadata.labels");
            validate_pod_spec(
                e,
                t.get("spec").unwrap_or(&Value::Null),
                "spec.template.spec",
                None,
            );
        }
    }
    // The pod defaults make an unset restart policy `Always`, so both mean "not set for a Job".
    let field = "spec.template.spec.restartPolicy";
    match spec
        .pointer("/template/spec/restartPolicy")
        .and_then(Value::as_str)
        .unwrap_or("")
    {
        "" | "Always" => e.required(field, "valid values: \"OnFailure\", \"Never\""),
        "Never" => {}
        "OnFailure" if failure_policy => e.invalid_str(
            field,
            "OnFailure",
            "only \"Never\" is supported when podFailurePolicy is specified",
        ),
        "OnFailure" => {}
        other => e.not_supported(field, other, &["OnFailure", "Never"]),
    }
    match selector {
        None => e.required("spec.selector", ""),
        Some(sel) => {
            selector_selects_template(e, sel, template_labels);
        }
    }
}

/// `ValidateJobSpecUpdate`: completions (except in tandem with parallelism for Indexed Jobs),
/// selector, template, completion mode and the failure/success policies are immutable. A suspended
/// Job that never started may still change its pods' scheduling directives, labels and annotations.
fn validate_job_update(e: &mut Errs, old: &Value, new: &Value) {
    let null = Value::Null;
    let spec = new.get("spec").unwrap_or(&null);
    let old_spec = old.get("spec").unwrap_or(&null);
    let get = |s: &'_ Value, k: &str| s.get(k).filter(|v| !v.is_null()).cloned();
    let changed = |k: &str| get(spec, k) != get(old_spec, k);
    let render = |k: &str| go_value(&get(spec, k).unwrap_or(Value::Null));
    if changed("completions") {
        let indexed = spec.get("completionMode").and_then(Value::as_str) == Some("Indexed");
        match (indexed, int_field(spec, "completions")) {
            (false, _) => e.immutable("spec.completions", &render("completions")),
            // An Indexed Job without completions is already refused by `validate`.
            (true, None) => {}
            (true, Some(c)) => {
                if int_field(spec, "parallelism") != Some(c) {
                    e.invalid(
                        "spec.completions",
                        &Value::from(c),
                        "can only be modified in tandem with spec.parallelism",
                    );
                }
            }
        }
    }
    if changed("selector") {
        e.immutable("spec.selector", &go_label_selector(spec.get("selector")));
    }
    let mut template = get(spec, "template").unwrap_or(Value::Null);
    let mut old_template = get(old_spec, "template").unwrap_or(Value::Null);
    let suspended = old_spec.get("suspend").and_then(Value::as_bool) == Some(true);
    let started = old
        .pointer("/status/startTime")
        .is_some_and(|v| !v.is_null());
    if suspended && !started {
        for t in [&mut template, &mut old_template] {
            scrub_scheduling_directives(t);
        }
    }
    if template != old_template {
        e.immutable("spec.template", &render("template"));
    }
    for key in [
        "completionMode",
        "podFailurePolicy",
        "backoffLimitPerIndex",
        "managedBy",
        "successPolicy",
    ] {
        if changed(key) {
            e.immutable(&format!("spec.{key}"), &render(key));
        }
    }
}

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
